//! What the reports and the API read: the usage rollups (keys in [`shared::rollups`]), read a day
//! partition or a user's range at a time, so the work grows with days x keys and never with the
//! number of turns. [`RollupStore`] is the port; [`DynamoDbRollups`] reads USAGE_TABLE and counts
//! the items it reads.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use aws_sdk_dynamodb::types::AttributeValue;
use chrono::NaiveDate;
use shared::aws::usage::spend_from_item;
use shared::rollups::{day_pk, day_sk, user_pk, Spend, AGENTS_PK, USERS_PK};
use shared::{Error, Result};

/// A DynamoDB item.
pub type Item = HashMap<String, AttributeValue>;

/// One agent's spend on one model in a day.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentModelSpend {
    pub agent_id: String,
    pub model: String,
    pub spend: Spend,
}

/// One agent's spend in one hour (UTC) of a day.
#[derive(Debug, Clone, PartialEq)]
pub struct HourSpend {
    pub hour: u32,
    pub agent_id: String,
    pub spend: Spend,
}

/// One user's spend with one agent in a day.
#[derive(Debug, Clone, PartialEq)]
pub struct UserAgentSpend {
    pub team_id: String,
    pub user_id: String,
    pub agent_id: String,
    pub spend: Spend,
}

/// Feedback on one agent's answers in a day.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Feedback {
    pub positive: u64,
    pub negative: u64,
}

impl Feedback {
    /// Share of positive ratings (0-1), None without ratings.
    pub fn score(&self) -> Option<f64> {
        let total = self.positive + self.negative;
        (total > 0).then(|| self.positive as f64 / total as f64)
    }
}

impl std::ops::AddAssign for Feedback {
    fn add_assign(&mut self, o: Feedback) {
        self.positive += o.positive;
        self.negative += o.negative;
    }
}

/// Everything the rollups hold for one UTC day.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DayRollups {
    pub models: Vec<AgentModelSpend>,
    pub hours: Vec<HourSpend>,
    pub users: Vec<UserAgentSpend>,
    /// agent id -> feedback.
    pub feedback: Vec<(String, Feedback)>,
}

impl DayRollups {
    /// The day's totals (turns counted once each, from the hour items).
    pub fn total(&self) -> Spend {
        let mut t = Spend::default();
        for h in &self.hours {
            t += h.spend;
        }
        t
    }

    /// Reads the items of a day partition; items of unknown shape are skipped.
    pub fn from_items<'a>(items: impl IntoIterator<Item = &'a Item>) -> DayRollups {
        let mut day = DayRollups::default();
        for item in items {
            let sk = text(item, "sk");
            let spend = || spend_from_item(item);
            if sk.starts_with("AGENT#") {
                day.models.push(AgentModelSpend {
                    agent_id: text(item, "agent_id"),
                    model: text(item, "model_id"),
                    spend: spend(),
                });
            } else if sk.starts_with("HOUR#") {
                let hour = text(item, "hour").parse().unwrap_or(0);
                day.hours.push(HourSpend { hour, agent_id: text(item, "agent_id"), spend: spend() });
            } else if sk.starts_with("USER#") {
                day.users.push(UserAgentSpend {
                    team_id: text(item, "team_id"),
                    user_id: text(item, "user_id"),
                    agent_id: text(item, "agent_id"),
                    spend: spend(),
                });
            } else if let Some(agent) = sk.strip_prefix("FEEDBACK#AGENT#") {
                let positive = number(item, "positive");
                let negative = number(item, "negative");
                day.feedback.push((agent.to_string(), Feedback { positive, negative }));
            }
        }
        day
    }
}

/// One user's spend with one agent and model in a day.
#[derive(Debug, Clone, PartialEq)]
pub struct UserUsage {
    pub day: NaiveDate,
    pub agent_id: String,
    pub model: String,
    pub spend: Spend,
}

/// A user the registry knows, with lifetime totals.
#[derive(Debug, Clone, PartialEq)]
pub struct KnownUser {
    pub team_id: String,
    pub user_id: String,
    pub spend: Spend,
}

fn text(item: &Item, key: &str) -> String {
    item.get(key).and_then(|v| v.as_s().ok()).cloned().unwrap_or_default()
}

fn number(item: &Item, key: &str) -> u64 {
    item.get(key).and_then(|v| v.as_n().ok()).and_then(|n| n.parse::<f64>().ok()).map_or(0, |n| n.max(0.0) as u64)
}

/// Reads user usage items (`USAGE#{date}#AGENT#..#MODEL#..`).
pub fn user_usage_from_items<'a>(items: impl IntoIterator<Item = &'a Item>) -> Vec<UserUsage> {
    items
        .into_iter()
        .filter_map(|item| {
            let sk = text(item, "sk");
            let day = sk.strip_prefix("USAGE#").and_then(|r| r.get(..10))?;
            let day = NaiveDate::parse_from_str(day, "%Y-%m-%d").ok()?;
            Some(UserUsage {
                day,
                agent_id: text(item, "agent_id"),
                model: text(item, "model_id"),
                spend: spend_from_item(item),
            })
        })
        .collect()
}

/// Reads a user's day items (`DAY#{date}`).
pub fn user_days_from_items<'a>(items: impl IntoIterator<Item = &'a Item>) -> Vec<(NaiveDate, Spend)> {
    items
        .into_iter()
        .filter_map(|item| {
            let sk = text(item, "sk");
            let day = NaiveDate::parse_from_str(sk.strip_prefix("DAY#")?, "%Y-%m-%d").ok()?;
            Some((day, spend_from_item(item)))
        })
        .collect()
}

/// The rollups, as reports and the API read them.
#[async_trait]
pub trait RollupStore: Send + Sync {
    /// Every rollup of one UTC day.
    async fn day(&self, day: NaiveDate) -> Result<DayRollups>;
    /// One user's day x agent x model spend between two days (inclusive).
    async fn user_usage(&self, team_id: &str, user_id: &str, from: NaiveDate, to: NaiveDate) -> Result<Vec<UserUsage>>;
    /// One user's day totals between two days (inclusive), oldest first.
    async fn user_days(
        &self,
        team_id: &str,
        user_id: &str,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Result<Vec<(NaiveDate, Spend)>>;
    /// Every user ever seen.
    async fn known_users(&self) -> Result<Vec<KnownUser>>;
    /// Every agent ever seen.
    async fn known_agents(&self) -> Result<Vec<String>>;
}

/// [`RollupStore`] over USAGE_TABLE with Queries on the rollup partitions.
#[derive(Debug)]
pub struct DynamoDbRollups {
    client: aws_sdk_dynamodb::Client,
    table: String,
    items_read: AtomicU64,
    queries: AtomicU64,
}

impl DynamoDbRollups {
    pub fn new(client: aws_sdk_dynamodb::Client, table: impl Into<String>) -> Self {
        DynamoDbRollups { client, table: table.into(), items_read: AtomicU64::new(0), queries: AtomicU64::new(0) }
    }

    /// Items read so far (every page of every Query).
    pub fn items_read(&self) -> u64 {
        self.items_read.load(Ordering::Relaxed)
    }

    /// Query requests sent so far.
    pub fn queries(&self) -> u64 {
        self.queries.load(Ordering::Relaxed)
    }

    /// All items of partition `pk` whose sort key is between `range` (inclusive), every page.
    async fn query(&self, pk: String, range: Option<(String, String)>) -> Result<Vec<Item>> {
        let mut out = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let mut q = self
                .client
                .query()
                .table_name(&self.table)
                .expression_attribute_values(":pk", AttributeValue::S(pk.clone()))
                .set_exclusive_start_key(start.take());
            q = match &range {
                Some((from, to)) => q
                    .key_condition_expression("pk = :pk AND sk BETWEEN :from AND :to")
                    .expression_attribute_values(":from", AttributeValue::S(from.clone()))
                    .expression_attribute_values(":to", AttributeValue::S(to.clone())),
                None => q.key_condition_expression("pk = :pk"),
            };
            let page = q.send().await.map_err(|e| Error::from_sdk("dynamodb", "Query", e))?;
            self.queries.fetch_add(1, Ordering::Relaxed);
            let items = page.items.unwrap_or_default();
            self.items_read.fetch_add(items.len() as u64, Ordering::Relaxed);
            out.extend(items);
            match page.last_evaluated_key {
                Some(key) if !key.is_empty() => start = Some(key),
                _ => return Ok(out),
            }
        }
    }
}

#[async_trait]
impl RollupStore for DynamoDbRollups {
    async fn day(&self, day: NaiveDate) -> Result<DayRollups> {
        Ok(DayRollups::from_items(&self.query(day_pk(day), None).await?))
    }

    async fn user_usage(&self, team_id: &str, user_id: &str, from: NaiveDate, to: NaiveDate) -> Result<Vec<UserUsage>> {
        // `~` sorts after every character of an id: the last day's items are all included.
        let range = (format!("USAGE#{}", from.format("%Y-%m-%d")), format!("USAGE#{}#~", to.format("%Y-%m-%d")));
        Ok(user_usage_from_items(&self.query(user_pk(team_id, user_id), Some(range)).await?))
    }

    async fn user_days(
        &self,
        team_id: &str,
        user_id: &str,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Result<Vec<(NaiveDate, Spend)>> {
        let items = self.query(user_pk(team_id, user_id), Some((day_sk(from), day_sk(to)))).await?;
        Ok(user_days_from_items(&items))
    }

    async fn known_users(&self) -> Result<Vec<KnownUser>> {
        let items = self.query(USERS_PK.to_string(), None).await?;
        Ok(items
            .iter()
            .map(|i| KnownUser { team_id: text(i, "team_id"), user_id: text(i, "user_id"), spend: spend_from_item(i) })
            .filter(|u| !u.user_id.is_empty())
            .collect())
    }

    async fn known_agents(&self) -> Result<Vec<String>> {
        let items = self.query(AGENTS_PK.to_string(), None).await?;
        Ok(items.iter().map(|i| text(i, "agent_id")).filter(|a| !a.is_empty()).collect())
    }
}
