//! Every read of USAGE_TABLE (keys in [`crate::rollups`]): [`DynamoDbUsageReader`] is the
//! adapter of the read ports, [`UsageReader`] (budgets), [`UsageHistory`] ("my usage") and
//! [`RollupStore`] (reports and the admin API). Key lookups and Queries on rollup partitions
//! only, never a scan. The ledger's writes are [`super::ledger`]'s.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes};
use chrono::NaiveDate;

use super::Item;
use crate::ports::{RollupStore, UsageHistory, UsageReader};
use crate::retry::Backoff;
use crate::rollups::{
    day_pk, day_sk, month_sk, user_pk, AgentModelSpend, DayRollups, Feedback, HourSpend, KnownUser, Spend,
    UserAgentSpend, UserSpend, UserUsage, AGENTS_PK, SPEND_ATTRIBUTES, USERS_PK,
};
use crate::{Error, Result};

/// The reads of the usage table; counts the Query pages and items it reads.
#[derive(Debug)]
pub struct DynamoDbUsageReader {
    client: aws_sdk_dynamodb::Client,
    table: String,
    items_read: AtomicU64,
    queries: AtomicU64,
}

impl DynamoDbUsageReader {
    pub fn new(client: aws_sdk_dynamodb::Client, table: impl Into<String>) -> Self {
        DynamoDbUsageReader { client, table: table.into(), items_read: AtomicU64::new(0), queries: AtomicU64::new(0) }
    }

    /// Items read so far by Queries (every page).
    pub fn items_read(&self) -> u64 {
        self.items_read.load(Ordering::Relaxed)
    }

    /// Query requests sent so far.
    pub fn queries(&self) -> u64 {
        self.queries.load(Ordering::Relaxed)
    }

    /// All items of partition `pk` whose sort key is between `range` (inclusive), every page.
    async fn partition(&self, pk: String, range: Option<(String, String)>, consistent: bool) -> Result<Vec<Item>> {
        let query = self
            .client
            .query()
            .table_name(&self.table)
            .expression_attribute_values(":pk", AttributeValue::S(pk))
            // Only "my usage" asks for a consistent read: the user's last turn must show.
            .set_consistent_read(consistent.then_some(true));
        let query = match range {
            Some((from, to)) => query
                .key_condition_expression("pk = :pk AND sk BETWEEN :from AND :to")
                .expression_attribute_values(":from", AttributeValue::S(from))
                .expression_attribute_values(":to", AttributeValue::S(to)),
            None => query.key_condition_expression("pk = :pk"),
        };
        let mut out = Vec::new();
        super::query_pages(query, |items| {
            self.queries.fetch_add(1, Ordering::Relaxed);
            self.items_read.fetch_add(items.len() as u64, Ordering::Relaxed);
            out.extend(items);
            true
        })
        .await?;
        Ok(out)
    }

    /// A user's day rollups between two days (inclusive), oldest first.
    async fn days_of_user(
        &self,
        team_id: &str,
        user_id: &str,
        from: NaiveDate,
        to: NaiveDate,
        consistent: bool,
    ) -> Result<Vec<(NaiveDate, Spend)>> {
        let items = self.partition(user_pk(team_id, user_id), Some((day_sk(from), day_sk(to))), consistent).await?;
        Ok(user_days_from_items(&items))
    }
}

/// Rounds of BatchGetItem for keys DynamoDB left unprocessed (throttling, or its 16 MB limit).
const UNPROCESSED_BACKOFF: Backoff =
    Backoff { base: Duration::from_millis(50), cap: Duration::from_millis(800), max_attempts: 6 };

impl DynamoDbUsageReader {
    /// Every item of `keys`: keys DynamoDB returns as UnprocessedKeys are asked for again with
    /// backoff; if some are still unprocessed after the last round, the read fails (a missing
    /// rollup would read as no spend at all, and the budget would not hold).
    async fn batch_get(&self, keys: KeysAndAttributes) -> Result<Vec<Item>> {
        let mut items = Vec::new();
        let mut pending = keys;
        let mut round = 0;
        loop {
            let out = super::with_retries(|| async {
                self.client
                    .batch_get_item()
                    .request_items(&self.table, pending.clone())
                    .send()
                    .await
                    .map_err(|e| Error::from_sdk("dynamodb", "BatchGetItem", e))
            })
            .await?;
            items.extend(out.responses.and_then(|mut r| r.remove(&self.table)).unwrap_or_default());
            let left = out.unprocessed_keys.and_then(|mut u| u.remove(&self.table)).filter(|k| !k.keys().is_empty());
            let Some(left) = left else { return Ok(items) };
            match UNPROCESSED_BACKOFF.next_delay(round, None, None, Duration::ZERO) {
                Some(delay) => {
                    tracing::warn!(
                        unprocessed = left.keys().len(),
                        round,
                        "BatchGetItem left keys unprocessed; asking again"
                    );
                    tokio::time::sleep(delay).await;
                    pending = left;
                    round += 1;
                }
                None => {
                    return Err(Error::Aws {
                        service: "dynamodb",
                        operation: "BatchGetItem",
                        code: "UnprocessedKeys".into(),
                        message: format!("{} keys still unprocessed after {} rounds", left.keys().len(), round + 1),
                        retryable: true,
                    })
                }
            }
        }
    }
}

/// Reads a rollup item's numbers; absent attributes are zero.
fn spend_from_item(item: &Item) -> Spend {
    let num = |k: &str| item.get(k).and_then(|v| v.as_n().ok()).and_then(|n| n.parse::<f64>().ok()).unwrap_or(0.0);
    let [cost, input, output, cache_read, cache_write, turns, unpriced] = SPEND_ATTRIBUTES.map(num);
    Spend {
        cost_usd: cost,
        input_tokens: input as u64,
        output_tokens: output as u64,
        cache_read_tokens: cache_read as u64,
        cache_write_tokens: cache_write as u64,
        turns: turns as u64,
        unpriced_tokens: unpriced as u64,
    }
}

fn text(item: &Item, key: &str) -> String {
    item.get(key).and_then(|v| v.as_s().ok()).cloned().unwrap_or_default()
}

fn number(item: &Item, key: &str) -> u64 {
    item.get(key).and_then(|v| v.as_n().ok()).and_then(|n| n.parse::<f64>().ok()).map_or(0, |n| n.max(0.0) as u64)
}

/// Reads the items of a day partition; items of unknown shape are skipped.
pub fn day_rollups_from_items<'a>(items: impl IntoIterator<Item = &'a Item>) -> DayRollups {
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

/// Reads user usage items (`USAGE#{date}#AGENT#..#MODEL#..`).
fn user_usage_from_items<'a>(items: impl IntoIterator<Item = &'a Item>) -> Vec<UserUsage> {
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
fn user_days_from_items<'a>(items: impl IntoIterator<Item = &'a Item>) -> Vec<(NaiveDate, Spend)> {
    items
        .into_iter()
        .filter_map(|item| {
            let sk = text(item, "sk");
            let day = NaiveDate::parse_from_str(sk.strip_prefix("DAY#")?, "%Y-%m-%d").ok()?;
            Some((day, spend_from_item(item)))
        })
        .collect()
}

#[async_trait]
impl UsageReader for DynamoDbUsageReader {
    async fn user_spend(&self, team_id: &str, user_id: &str, day: NaiveDate) -> Result<UserSpend> {
        let pk = user_pk(team_id, user_id);
        let key = |sk: String| {
            HashMap::from([
                ("pk".to_string(), AttributeValue::S(pk.clone())),
                ("sk".to_string(), AttributeValue::S(sk)),
            ])
        };
        let (dsk, msk) = (day_sk(day), month_sk(day));
        let keys = KeysAndAttributes::builder()
            .keys(key(dsk.clone()))
            .keys(key(msk.clone()))
            .consistent_read(true)
            .build()
            .map_err(|e| Error::Malformed { what: "batch get", reason: e.to_string() })?;
        let items = self.batch_get(keys).await?;
        let mut spend = UserSpend::default();
        for item in items {
            match item.get("sk").and_then(|v| v.as_s().ok()) {
                Some(sk) if *sk == dsk => spend.day = spend_from_item(&item),
                Some(sk) if *sk == msk => spend.month = spend_from_item(&item),
                _ => {}
            }
        }
        Ok(spend)
    }
}

#[async_trait]
impl UsageHistory for DynamoDbUsageReader {
    async fn days(
        &self,
        team_id: &str,
        user_id: &str,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Result<Vec<(NaiveDate, Spend)>> {
        self.days_of_user(team_id, user_id, from, to, true).await
    }
}

#[async_trait]
impl RollupStore for DynamoDbUsageReader {
    async fn day(&self, day: NaiveDate) -> Result<DayRollups> {
        Ok(day_rollups_from_items(&self.partition(day_pk(day), None, false).await?))
    }

    async fn user_usage(&self, team_id: &str, user_id: &str, from: NaiveDate, to: NaiveDate) -> Result<Vec<UserUsage>> {
        // `~` sorts after every character of an id: the last day's items are all included.
        let range = (format!("USAGE#{}", from.format("%Y-%m-%d")), format!("USAGE#{}#~", to.format("%Y-%m-%d")));
        Ok(user_usage_from_items(&self.partition(user_pk(team_id, user_id), Some(range), false).await?))
    }

    async fn user_days(
        &self,
        team_id: &str,
        user_id: &str,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Result<Vec<(NaiveDate, Spend)>> {
        self.days_of_user(team_id, user_id, from, to, false).await
    }

    async fn known_users(&self) -> Result<Vec<KnownUser>> {
        let items = self.partition(USERS_PK.to_string(), None, false).await?;
        Ok(items
            .iter()
            .map(|i| KnownUser { team_id: text(i, "team_id"), user_id: text(i, "user_id"), spend: spend_from_item(i) })
            .filter(|u| !u.user_id.is_empty())
            .collect())
    }

    async fn known_agents(&self) -> Result<Vec<String>> {
        let items = self.partition(AGENTS_PK.to_string(), None, false).await?;
        Ok(items.iter().map(|i| text(i, "agent_id")).filter(|a| !a.is_empty()).collect())
    }
}

#[cfg(test)]
mod tests {
    use std::io::{BufRead, BufReader, Read, Write};
    use std::sync::{Arc, Mutex};

    use super::*;

    /// A DynamoDB endpoint on loopback answering BatchGetItem with `responses` in turn (the last
    /// one again when they run out); records the request bodies.
    fn fake_dynamodb(responses: Vec<serde_json::Value>) -> (String, Arc<Mutex<Vec<serde_json::Value>>>) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let seen: Arc<Mutex<Vec<serde_json::Value>>> = Arc::default();
        let requests = seen.clone();
        std::thread::spawn(move || {
            for (i, conn) in listener.incoming().flatten().enumerate() {
                let mut reader = BufReader::new(conn);
                let mut len = 0usize;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line.trim().is_empty() {
                        break;
                    }
                    if let Some((k, v)) = line.split_once(':') {
                        if k.eq_ignore_ascii_case("content-length") {
                            len = v.trim().parse().unwrap_or(0);
                        }
                    }
                }
                let mut body = vec![0u8; len];
                let _ = reader.read_exact(&mut body);
                requests.lock().unwrap().push(serde_json::from_slice(&body).unwrap_or_default());
                let out = responses[i.min(responses.len() - 1)].to_string();
                let mut conn = reader.into_inner();
                let _ = write!(
                    conn,
                    "HTTP/1.1 200 OK\r\ncontent-type: application/x-amz-json-1.0\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{out}",
                    out.len()
                );
            }
        });
        (url, seen)
    }

    fn reader(url: &str) -> DynamoDbUsageReader {
        let conf = aws_sdk_dynamodb::Config::builder()
            .behavior_version(aws_sdk_dynamodb::config::BehaviorVersion::latest())
            .region(aws_sdk_dynamodb::config::Region::new("us-east-1"))
            .credentials_provider(aws_sdk_dynamodb::config::Credentials::new("AKID", "SECRET", None, None, "test"))
            .endpoint_url(url)
            .build();
        DynamoDbUsageReader::new(aws_sdk_dynamodb::Client::from_conf(conf), "usage")
    }

    fn item(sk: &str, cost: &str) -> serde_json::Value {
        serde_json::json!({"pk": {"S": "USER#T1#U1"}, "sk": {"S": sk}, "cost_usd": {"N": cost}})
    }

    fn unprocessed(sk: &str) -> serde_json::Value {
        serde_json::json!({"usage": {"Keys": [{"pk": {"S": "USER#T1#U1"}, "sk": {"S": sk}}], "ConsistentRead": true}})
    }

    #[tokio::test]
    async fn unprocessed_keys_are_asked_for_again() {
        let day = NaiveDate::from_ymd_opt(2026, 11, 23).unwrap();
        // DynamoDB returns the day rollup and leaves the month's unprocessed, twice.
        let (url, seen) = fake_dynamodb(vec![
            serde_json::json!({"Responses": {"usage": [item("DAY#2026-11-23", "4.5")]}, "UnprocessedKeys": unprocessed("MONTH#2026-11")}),
            serde_json::json!({"Responses": {"usage": []}, "UnprocessedKeys": unprocessed("MONTH#2026-11")}),
            serde_json::json!({"Responses": {"usage": [item("MONTH#2026-11", "80")]}, "UnprocessedKeys": {}}),
        ]);
        let spend = reader(&url).user_spend("T1", "U1", day).await.unwrap();
        assert_eq!((spend.day.cost_usd, spend.month.cost_usd), (4.5, 80.0));
        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), 3);
        // The later rounds ask only for what was left.
        assert_eq!(seen[1]["RequestItems"]["usage"]["Keys"].as_array().map(Vec::len), Some(1));
        assert_eq!(seen[2]["RequestItems"]["usage"]["Keys"][0]["sk"]["S"], "MONTH#2026-11");
    }

    #[tokio::test]
    async fn keys_left_unprocessed_every_round_fail_the_read_instead_of_reading_as_zero() {
        let day = NaiveDate::from_ymd_opt(2026, 11, 23).unwrap();
        let (url, seen) = fake_dynamodb(vec![
            serde_json::json!({"Responses": {"usage": [item("DAY#2026-11-23", "4.5")]}, "UnprocessedKeys": unprocessed("MONTH#2026-11")}),
        ]);
        let e = reader(&url).user_spend("T1", "U1", day).await.unwrap_err().to_string();
        assert!(e.contains("UnprocessedKeys"), "{e}");
        assert_eq!(seen.lock().unwrap().len(), UNPROCESSED_BACKOFF.max_attempts as usize);
    }
}
