//! DynamoDB conversations table: one item per turn, pk = thread, sk = message ts.
//!
//! Besides the turn items, a thread's partition holds one item per feedback reaction
//! (sk `FEEDBACK#<message ts>#<user>#<reaction>`). Three sparse GSIs keep the readers' cost
//! proportional to recent activity, never to the table's size:
//! - [`OPEN_TURNS_INDEX`]: only turns still `received` (the SLA check of metrics-publisher);
//! - [`BY_HOUR_INDEX`]: turns and feedback by UTC hour bucket and time (last hour's KPIs);
//! - [`BY_REPLY_INDEX`]: turns by their reply's channel and ts (a reaction finds its turn);
//! - [`PENDING_COPIES_INDEX`]: only turns still holding an undelivered analytics or usage copy,
//!   oldest first (metrics-publisher's sweeper: no horizon, however long an outage lasted).

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{AttributeValue, Delete, Put, TransactWriteItem, Update};

use super::Conditional;
use crate::domain::{Activity, FeedbackEntry, Sentiment, ThreadRef, TurnActivity, TurnKey, TurnStatus};
use crate::ports::{ConversationStore, TurnRecord, TurnStart};
use crate::{Error, Result};

/// How long turn records are kept (TTL), for feedback, SLA checks and session history.
const RETENTION_SECS: i64 = 90 * 24 * 3600;

/// The conversations table (`pk` + `sk` strings, TTL attribute `expires_at`).
#[derive(Debug, Clone)]
pub struct DynamoDbConversations {
    client: aws_sdk_dynamodb::Client,
    table: String,
    /// (usage table, agent id): feedback is also counted into the day x agent feedback rollup
    /// that reports and the admin API read (`rollups::feedback_sk`).
    feedback_rollup: Option<(String, String)>,
}

impl DynamoDbConversations {
    pub fn new(client: aws_sdk_dynamodb::Client, table: impl Into<String>) -> Self {
        DynamoDbConversations { client, table: table.into(), feedback_rollup: None }
    }

    /// Counts feedback into `usage_table`'s day x `agent_id` rollup too, in the same transaction
    /// as the feedback item, on the day the answered turn was received.
    pub fn with_feedback_rollup(mut self, usage_table: impl Into<String>, agent_id: impl Into<String>) -> Self {
        self.feedback_rollup = Some((usage_table.into(), agent_id.into()));
        self
    }

    async fn get(&self, thread: &ThreadRef, message_ts: &str) -> Result<Option<TurnRecord>> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(thread_pk(thread)))
            .key("sk", s(turn_sk(message_ts)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| Error::from_sdk("dynamodb", "GetItem", e))?;
        out.item.map(|i| from_item(&i)).transpose()
    }
}

/// Partition key of a thread.
pub fn thread_pk(t: &ThreadRef) -> String {
    format!("THREAD#{}#{}#{}", t.team_id, t.channel_id, t.thread_ts)
}

/// Sort key of a turn.
pub fn turn_sk(message_ts: &str) -> String {
    format!("TURN#{message_ts}")
}

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn n(v: i64) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

fn to_item(t: &TurnRecord) -> HashMap<String, AttributeValue> {
    let mut item = HashMap::from([
        ("pk".to_string(), s(thread_pk(&t.thread))),
        ("sk".to_string(), s(turn_sk(&t.message_ts))),
        ("team_id".to_string(), s(&t.thread.team_id)),
        ("channel_id".to_string(), s(&t.thread.channel_id)),
        ("thread_ts".to_string(), s(&t.thread.thread_ts)),
        ("message_ts".to_string(), s(&t.message_ts)),
        ("event_id".to_string(), s(&t.event_id)),
        ("user_id".to_string(), s(&t.user_id)),
        ("status".to_string(), s(t.status.as_str())),
        ("received_at_ms".to_string(), n(t.received_at_ms)),
        ("expires_at".to_string(), n(t.received_at_ms / 1000 + RETENTION_SECS)),
    ]);
    let optional = [
        ("reply_ts", t.reply_ts.clone()),
        ("outcome", t.outcome.clone()),
        ("error_code", t.error_code.clone()),
        ("pending_analytics", t.pending_analytics.clone()),
        ("pending_usage", t.pending_usage.clone()),
    ];
    for (k, v) in optional {
        if let Some(v) = v {
            item.insert(k.to_string(), s(v));
        }
    }
    if let Some(f) = t.finished_at_ms {
        item.insert("finished_at_ms".into(), n(f));
    }
    add_index_attributes(t, &mut item);
    item
}

/// GSI keys and the small facts metrics-publisher reads from the by-hour index.
fn add_index_attributes(t: &TurnRecord, item: &mut HashMap<String, AttributeValue>) {
    item.insert(AT_MS.into(), n(t.received_at_ms));
    item.insert(HOUR.into(), s(hour_bucket(t.received_at_ms)));
    if t.status == TurnStatus::Received {
        item.insert(OPEN_TURN.into(), s(OPEN_TURN_VALUE));
    }
    if let Some(r) = &t.reply_ts {
        item.insert(REPLY_KEY.into(), s(reply_key(&t.thread.team_id, &t.thread.channel_id, r)));
    }
    if t.status.is_final() {
        // The analytics event is the turn's full description; keep the one fact the KPI needs.
        let kb = t
            .pending_analytics
            .as_deref()
            .and_then(|a| serde_json::from_str::<serde_json::Value>(a).ok())
            .and_then(|v| v.get("knowledge_bases").and_then(|k| k.as_array()).map(|k| !k.is_empty()));
        if let Some(kb) = kb {
            item.insert(KB_CONSULTED.into(), AttributeValue::Bool(kb));
        }
        item.insert(HAS_USAGE.into(), AttributeValue::Bool(t.pending_usage.is_some()));
    }
    if t.pending_analytics.is_some() {
        item.insert(ANALYTICS_PENDING.into(), AttributeValue::Bool(true));
    }
    if t.pending_usage.is_some() {
        item.insert(USAGE_PENDING.into(), AttributeValue::Bool(true));
    }
    if t.pending_analytics.is_some() || t.pending_usage.is_some() {
        // Removed with the last copy (`clear_pending`): the index holds only what is still owed.
        item.insert(PENDING_COPY.into(), s(PENDING_COPY_VALUE));
        item.insert(PENDING_SINCE_MS.into(), n(t.finished_at_ms.unwrap_or(t.received_at_ms)));
    }
}

fn from_item(item: &HashMap<String, AttributeValue>) -> Result<TurnRecord> {
    let get_s = |k: &str| item.get(k).and_then(|v| v.as_s().ok()).cloned();
    let get_n = |k: &str| item.get(k).and_then(|v| v.as_n().ok()).and_then(|v| v.parse::<i64>().ok());
    let bad = |what: &str| Error::Malformed { what: "conversation item", reason: format!("missing or invalid {what}") };
    Ok(TurnRecord {
        thread: ThreadRef {
            team_id: get_s("team_id").ok_or_else(|| bad("team_id"))?,
            channel_id: get_s("channel_id").ok_or_else(|| bad("channel_id"))?,
            thread_ts: get_s("thread_ts").ok_or_else(|| bad("thread_ts"))?,
        },
        message_ts: get_s("message_ts").ok_or_else(|| bad("message_ts"))?,
        event_id: get_s("event_id").unwrap_or_default(),
        user_id: get_s("user_id").unwrap_or_default(),
        status: get_s("status").as_deref().and_then(TurnStatus::parse).ok_or_else(|| bad("status"))?,
        received_at_ms: get_n("received_at_ms").ok_or_else(|| bad("received_at_ms"))?,
        finished_at_ms: get_n("finished_at_ms"),
        reply_ts: get_s("reply_ts"),
        outcome: get_s("outcome"),
        error_code: get_s("error_code"),
        pending_analytics: get_s("pending_analytics"),
        pending_usage: get_s("pending_usage"),
    })
}

#[async_trait]
impl ConversationStore for DynamoDbConversations {
    async fn begin_turn(&self, turn: &TurnRecord) -> Result<TurnStart> {
        let res = super::with_retries(|| async {
            self.client
                .put_item()
                .table_name(&self.table)
                .set_item(Some(to_item(turn)))
                .condition_expression("attribute_not_exists(pk)")
                .send()
                .await
                .applied("PutItem")
                .map(|applied| applied.is_some())
        })
        .await?;
        if res {
            return Ok(TurnStart::New);
        }
        match self.get(&turn.thread, &turn.message_ts).await? {
            Some(existing) if existing.status.is_final() => Ok(TurnStart::Finished(Box::new(existing))),
            _ => Ok(TurnStart::Resumed),
        }
    }

    async fn finish_turn(&self, turn: &TurnRecord) -> Result<()> {
        // An update of the turn's own attributes, never a replacement: the item also holds the
        // feedback counters a reaction on the early message may have added meanwhile.
        let mut item = to_item(turn);
        item.remove("pk");
        item.remove("sk");
        let mut names = HashMap::new();
        let mut values = HashMap::new();
        let mut set = Vec::new();
        let mut attrs: Vec<(String, AttributeValue)> = item.into_iter().collect();
        attrs.sort_by(|a, b| a.0.cmp(&b.0));
        for (i, (name, value)) in attrs.iter().enumerate() {
            names.insert(format!("#s{i}"), name.clone());
            values.insert(format!(":s{i}"), value.clone());
            set.push(format!("#s{i} = :s{i}"));
        }
        let mut remove = Vec::new();
        for (i, name) in TURN_OPTIONAL_ATTRIBUTES.iter().filter(|a| !attrs.iter().any(|(n, _)| n == *a)).enumerate() {
            names.insert(format!("#r{i}"), name.to_string());
            remove.push(format!("#r{i}"));
        }
        let mut expression = format!("SET {}", set.join(", "));
        if !remove.is_empty() {
            expression.push_str(&format!(" REMOVE {}", remove.join(", ")));
        }
        super::with_retries(|| async {
            self.client
                .update_item()
                .table_name(&self.table)
                .key("pk", s(thread_pk(&turn.thread)))
                .key("sk", s(turn_sk(&turn.message_ts)))
                .update_expression(&expression)
                .set_expression_attribute_names(Some(names.clone()))
                .set_expression_attribute_values(Some(values.clone()))
                .send()
                .await
                .map(|_| ())
                .map_err(|e| Error::from_sdk("dynamodb", "UpdateItem", e))
        })
        .await
    }

    async fn keep_answer(&self, thread: &ThreadRef, message_ts: &str, answer: &str) -> Result<()> {
        // Only on a turn still running: a finished turn's record is final.
        super::with_retries(|| async {
            self.client
                .update_item()
                .table_name(&self.table)
                .key("pk", s(thread_pk(thread)))
                .key("sk", s(turn_sk(message_ts)))
                .update_expression("SET #ka = :a")
                .condition_expression("#st = :received")
                .expression_attribute_names("#ka", KEPT_ANSWER)
                .expression_attribute_names("#st", "status")
                .expression_attribute_values(":a", s(answer))
                .expression_attribute_values(":received", s(TurnStatus::Received.as_str()))
                .send()
                .await
                .map(|_| ())
                .map_err(|e| Error::from_sdk("dynamodb", "UpdateItem", e))
        })
        .await
    }

    async fn kept_answer(&self, thread: &ThreadRef, message_ts: &str) -> Result<Option<String>> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(thread_pk(thread)))
            .key("sk", s(turn_sk(message_ts)))
            .projection_expression("#ka")
            .expression_attribute_names("#ka", KEPT_ANSWER)
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| Error::from_sdk("dynamodb", "GetItem", e))?;
        Ok(out.item.and_then(|i| i.get(KEPT_ANSWER).and_then(|v| v.as_s().ok()).cloned()))
    }

    async fn clear_pending(&self, thread: &ThreadRef, message_ts: &str, analytics: bool, usage: bool) -> Result<()> {
        let mut attrs = Vec::new();
        if analytics {
            attrs.extend(["pending_analytics", ANALYTICS_PENDING]);
        }
        if usage {
            attrs.extend(["pending_usage", USAGE_PENDING]);
        }
        if attrs.is_empty() {
            return Ok(());
        }
        // Both cleared (the usual case): the turn leaves the pending index in the same write.
        if analytics && usage {
            attrs.extend([PENDING_COPY, PENDING_SINCE_MS]);
        }
        let expr = format!("REMOVE {}", attrs.join(", "));
        let left = super::with_retries(|| async {
            self.client
                .update_item()
                .table_name(&self.table)
                .key("pk", s(thread_pk(thread)))
                .key("sk", s(turn_sk(message_ts)))
                .update_expression(&expr)
                .condition_expression("attribute_exists(pk)")
                .return_values(aws_sdk_dynamodb::types::ReturnValue::AllNew)
                .send()
                .await
                .applied("UpdateItem")
                .map(|out| out.and_then(|o| o.attributes).unwrap_or_default()) // expired meanwhile: nothing to clear
        })
        .await?;
        let owes_nothing = !left.contains_key("pending_analytics") && !left.contains_key("pending_usage");
        if owes_nothing && left.contains_key(PENDING_COPY) {
            self.leave_pending_index(thread, message_ts).await?;
        }
        Ok(())
    }

    async fn turn(&self, thread: &ThreadRef, message_ts: &str) -> Result<Option<TurnRecord>> {
        self.get(thread, message_ts).await
    }

    async fn record_reply(&self, thread: &ThreadRef, message_ts: &str, reply_ts: &str) -> Result<()> {
        // Only on a turn still running: a finished turn's record is final.
        super::with_retries(|| async {
            self.client
                .update_item()
                .table_name(&self.table)
                .key("pk", s(thread_pk(thread)))
                .key("sk", s(turn_sk(message_ts)))
                .update_expression("SET reply_ts = :r, #rk = :k")
                .condition_expression("#st = :received")
                .expression_attribute_names("#rk", REPLY_KEY)
                .expression_attribute_names("#st", "status")
                .expression_attribute_values(":r", s(reply_ts))
                .expression_attribute_values(":k", s(reply_key(&thread.team_id, &thread.channel_id, reply_ts)))
                .expression_attribute_values(":received", s(TurnStatus::Received.as_str()))
                .send()
                .await
                .applied("UpdateItem")
                .map(|_| ())
        })
        .await
    }

    async fn last_turn(&self, thread: &ThreadRef, except_ts: &str) -> Result<Option<TurnRecord>> {
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk AND begins_with(sk, :turn)")
            .expression_attribute_values(":pk", s(thread_pk(thread)))
            .expression_attribute_values(":turn", s("TURN#"))
            .scan_index_forward(false)
            .limit(2)
            .send()
            .await
            .map_err(|e| Error::from_sdk("dynamodb", "Query", e))?;
        for item in out.items() {
            let rec = from_item(item)?;
            if rec.message_ts != except_ts {
                return Ok(Some(rec));
            }
        }
        Ok(None)
    }
}

/// Sparse GSI of the turns still `received`: hash `open_turn`, range `received_at_ms`, keys only.
pub const OPEN_TURNS_INDEX: &str = "open_turns";
/// GSI of turns and feedback by UTC hour: hash `hour` (`YYYY-MM-DDTHH`), range `at_ms`.
pub const BY_HOUR_INDEX: &str = "by_hour";
/// Sparse GSI of answered turns by their reply: hash `reply_key`, keys only.
pub const BY_REPLY_INDEX: &str = "by_reply";
/// Sparse GSI of the turns holding an undelivered copy: hash `pending_copy` (one value), range
/// `pending_since_ms` (when the turn finished), keys only. One partition: every turn passes
/// through it (written with its copies, removed once they are delivered), two index writes per
/// turn, far below a partition's 1,000 writes a second.
pub const PENDING_COPIES_INDEX: &str = "pending_copies";
/// Non-key attributes [`BY_HOUR_INDEX`] projects (template.yaml declares the same list).
/// A turn's `at_ms` is its `received_at_ms`.
pub const BY_HOUR_PROJECTION: &[&str] =
    &["status", "finished_at_ms", REPLY_KEY, KB_CONSULTED, HAS_USAGE, ANALYTICS_PENDING, USAGE_PENDING, SENTIMENT];

const OPEN_TURN: &str = "open_turn";
const OPEN_TURN_VALUE: &str = "OPEN";
const HOUR: &str = "hour";
const AT_MS: &str = "at_ms";
const REPLY_KEY: &str = "reply_key";
const KB_CONSULTED: &str = "kb_consulted";
const HAS_USAGE: &str = "has_usage";
const ANALYTICS_PENDING: &str = "analytics_pending";
const USAGE_PENDING: &str = "usage_pending";
const SENTIMENT: &str = "sentiment";
const PENDING_COPY: &str = "pending_copy";
const PENDING_COPY_VALUE: &str = "PENDING";
const PENDING_SINCE_MS: &str = "pending_since_ms";
const FEEDBACK_PREFIX: &str = "FEEDBACK#";
/// A running turn's answer, kept before it is posted (removed when the turn finishes).
const KEPT_ANSWER: &str = "kept_answer";
/// The turn attributes [`to_item`] writes only when they have a value: finishing a turn removes
/// those it no longer has (and the kept answer), leaving every other attribute (feedback) alone.
const TURN_OPTIONAL_ATTRIBUTES: &[&str] = &[
    "reply_ts",
    "outcome",
    "error_code",
    "pending_analytics",
    "pending_usage",
    "finished_at_ms",
    OPEN_TURN,
    REPLY_KEY,
    KB_CONSULTED,
    HAS_USAGE,
    ANALYTICS_PENDING,
    USAGE_PENDING,
    KEPT_ANSWER,
];

/// The UTC hour bucket of an epoch-ms instant, e.g. `2026-11-23T16`.
pub fn hour_bucket(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms).unwrap_or_default().format("%Y-%m-%dT%H").to_string()
}

/// The by-reply key of a bot answer.
pub fn reply_key(team_id: &str, channel_id: &str, reply_ts: &str) -> String {
    format!("REPLY#{team_id}#{channel_id}#{reply_ts}")
}

/// Sort key of one user's reaction on a turn's answer.
pub fn feedback_sk(message_ts: &str, user_id: &str, reaction: &str) -> String {
    format!("{FEEDBACK_PREFIX}{message_ts}#{user_id}#{reaction}")
}

/// The turn item's counter of one kind of feedback.
fn counter(sentiment: Sentiment) -> &'static str {
    match sentiment {
        Sentiment::Positive => "feedback_positive",
        Sentiment::Negative => "feedback_negative",
    }
}

fn activity_from_item(item: &HashMap<String, AttributeValue>) -> Option<Activity> {
    let get_n = |k: &str| item.get(k).and_then(|v| v.as_n().ok()).and_then(|v| v.parse::<i64>().ok());
    let get_b = |k: &str| item.get(k).and_then(|v| v.as_bool().ok()).copied();
    let sk = item.get("sk").and_then(|v| v.as_s().ok())?;
    if sk.starts_with(FEEDBACK_PREFIX) {
        let sentiment = match item.get(SENTIMENT).and_then(|v| v.as_s().ok()).map(String::as_str) {
            Some("positive") => Sentiment::Positive,
            Some("negative") => Sentiment::Negative,
            _ => return None,
        };
        return Some(Activity::Feedback { sentiment, at_ms: get_n(AT_MS)? });
    }
    Some(Activity::Turn(TurnActivity {
        key: TurnKey { pk: item.get("pk").and_then(|v| v.as_s().ok())?.clone(), sk: sk.clone() },
        status: item.get("status").and_then(|v| v.as_s().ok()).and_then(|v| TurnStatus::parse(v))?,
        received_at_ms: get_n(AT_MS)?,
        finished_at_ms: get_n("finished_at_ms"),
        replied: item.contains_key(REPLY_KEY),
        kb_consulted: get_b(KB_CONSULTED),
        has_usage: get_b(HAS_USAGE).unwrap_or(false),
        analytics_pending: get_b(ANALYTICS_PENDING).unwrap_or(false),
        usage_pending: get_b(USAGE_PENDING).unwrap_or(false),
    }))
}

fn is_conditional_failure(e: &aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError) -> bool {
    use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError as E;
    match e {
        E::TransactionCanceledException(c) => {
            c.cancellation_reasons().iter().any(|r| r.code() == Some("ConditionalCheckFailed"))
        }
        _ => false,
    }
}

impl DynamoDbConversations {
    /// The `received_at_ms` of every turn still open that was received in `[from_ms, to_ms]`,
    /// oldest first. Reads only the open turns (a sparse index).
    pub async fn open_turns_received_between(&self, from_ms: i64, to_ms: i64) -> Result<Vec<i64>> {
        let query = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(OPEN_TURNS_INDEX)
            .key_condition_expression("#o = :o AND received_at_ms BETWEEN :from AND :to")
            .expression_attribute_names("#o", OPEN_TURN)
            .expression_attribute_values(":o", s(OPEN_TURN_VALUE))
            .expression_attribute_values(":from", n(from_ms))
            .expression_attribute_values(":to", n(to_ms));
        let mut out = Vec::new();
        super::query_pages(query, |items| {
            out.extend(items.iter().filter_map(|i| {
                i.get("received_at_ms").and_then(|v| v.as_n().ok()).and_then(|v| v.parse::<i64>().ok())
            }));
            true
        })
        .await?;
        Ok(out)
    }

    /// Turns received and feedback given in `[from_ms, to_ms]`: one query per UTC hour bucket.
    pub async fn activity_between(&self, from_ms: i64, to_ms: i64) -> Result<Vec<Activity>> {
        const HOUR_MS: i64 = 3_600_000;
        let mut out = Vec::new();
        let mut bucket_start = from_ms - from_ms.rem_euclid(HOUR_MS);
        while bucket_start <= to_ms {
            let hour = hour_bucket(bucket_start);
            let query = self
                .client
                .query()
                .table_name(&self.table)
                .index_name(BY_HOUR_INDEX)
                .key_condition_expression("#h = :h AND at_ms BETWEEN :from AND :to")
                .expression_attribute_names("#h", HOUR)
                .expression_attribute_values(":h", s(&hour))
                .expression_attribute_values(":from", n(from_ms))
                .expression_attribute_values(":to", n(to_ms));
            super::query_pages(query, |items| {
                out.extend(items.iter().filter_map(activity_from_item));
                true
            })
            .await?;
            bucket_start += HOUR_MS;
        }
        Ok(out)
    }

    /// Turns holding an undelivered analytics or usage copy since `before_ms` or earlier, oldest
    /// first, at most `limit`: whatever their age (no horizon), read from a sparse index.
    pub async fn pending_copies_due(&self, before_ms: i64, limit: usize) -> Result<Vec<TurnKey>> {
        let mut out = Vec::new();
        let mut start: Option<HashMap<String, AttributeValue>> = None;
        while out.len() < limit {
            let page = self
                .client
                .query()
                .table_name(&self.table)
                .index_name(PENDING_COPIES_INDEX)
                .key_condition_expression("#p = :p AND #since <= :before")
                .expression_attribute_names("#p", PENDING_COPY)
                .expression_attribute_names("#since", PENDING_SINCE_MS)
                .expression_attribute_values(":p", s(PENDING_COPY_VALUE))
                .expression_attribute_values(":before", n(before_ms))
                .scan_index_forward(true)
                .limit(i32::try_from(limit - out.len()).unwrap_or(i32::MAX))
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| Error::from_sdk("dynamodb", "Query", e))?;
            out.extend(page.items().iter().filter_map(|i| {
                let key = |k: &str| i.get(k).and_then(|v| v.as_s().ok()).cloned();
                Some(TurnKey { pk: key("pk")?, sk: key("sk")? })
            }));
            match page.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => break,
            }
        }
        out.truncate(limit);
        Ok(out)
    }

    /// Takes a turn out of the pending index once it owes nothing (only if it still owes nothing:
    /// a concurrent finish may have stored new copies).
    async fn leave_pending_index(&self, thread: &ThreadRef, message_ts: &str) -> Result<()> {
        super::with_retries(|| async {
            self.client
                .update_item()
                .table_name(&self.table)
                .key("pk", s(thread_pk(thread)))
                .key("sk", s(turn_sk(message_ts)))
                .update_expression("REMOVE #p, #since")
                .condition_expression(
                    "attribute_exists(pk) AND attribute_not_exists(pending_analytics) \
                     AND attribute_not_exists(pending_usage)",
                )
                .expression_attribute_names("#p", PENDING_COPY)
                .expression_attribute_names("#since", PENDING_SINCE_MS)
                .send()
                .await
                .applied("UpdateItem")
                .map(|_| ())
        })
        .await
    }

    /// The turn stored under `key` (from an index), if it is still there.
    pub async fn turn_by_key(&self, key: &TurnKey) -> Result<Option<TurnRecord>> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(&key.pk))
            .key("sk", s(&key.sk))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| Error::from_sdk("dynamodb", "GetItem", e))?;
        out.item.map(|i| from_item(&i)).transpose()
    }

    /// The turn whose (first) reply message is `reply_ts` in `channel_id`, if any.
    pub async fn turn_for_reply(&self, team_id: &str, channel_id: &str, reply_ts: &str) -> Result<Option<TurnRecord>> {
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(BY_REPLY_INDEX)
            .key_condition_expression("reply_key = :r")
            .expression_attribute_values(":r", s(reply_key(team_id, channel_id, reply_ts)))
            .limit(1)
            .send()
            .await
            .map_err(|e| Error::from_sdk("dynamodb", "Query", e))?;
        let Some(keys) = out.items().first() else { return Ok(None) };
        let (Some(pk), Some(sk)) = (keys.get("pk").cloned(), keys.get("sk").cloned()) else { return Ok(None) };
        let item = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", pk)
            .key("sk", sk)
            .send()
            .await
            .map_err(|e| Error::from_sdk("dynamodb", "GetItem", e))?;
        item.item.map(|i| from_item(&i)).transpose()
    }

    /// Records `entry` on `turn`: a feedback item plus the turn's counter, in one transaction.
    /// Ok(false) when this user's reaction was already recorded (a redelivery).
    pub async fn add_feedback(&self, turn: &TurnRecord, entry: &FeedbackEntry) -> Result<bool> {
        let pk = thread_pk(&turn.thread);
        let item = HashMap::from([
            ("pk".to_string(), s(&pk)),
            ("sk".to_string(), s(feedback_sk(&turn.message_ts, &entry.user_id, &entry.reaction))),
            ("message_ts".to_string(), s(&turn.message_ts)),
            ("user_id".to_string(), s(&entry.user_id)),
            ("reaction".to_string(), s(&entry.reaction)),
            (SENTIMENT.to_string(), s(entry.sentiment.as_str())),
            ("event_id".to_string(), s(&entry.event_id)),
            (AT_MS.to_string(), n(entry.at_ms)),
            (HOUR.to_string(), s(hour_bucket(entry.at_ms))),
            ("expires_at".to_string(), n(entry.at_ms / 1000 + RETENTION_SECS)),
        ]);
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk)")
            .build()
            .map_err(|e| Error::Malformed { what: "feedback put", reason: e.to_string() })?;
        self.feedback_transaction(turn, TransactWriteItem::builder().put(put).build(), entry.sentiment, 1).await
    }

    /// Removes `entry` (its user and reaction) from `turn`. Ok(false) when it was not recorded.
    pub async fn remove_feedback(&self, turn: &TurnRecord, entry: &FeedbackEntry) -> Result<bool> {
        let delete = Delete::builder()
            .table_name(&self.table)
            .key("pk", s(thread_pk(&turn.thread)))
            .key("sk", s(feedback_sk(&turn.message_ts, &entry.user_id, &entry.reaction)))
            .condition_expression("attribute_exists(pk)")
            .build()
            .map_err(|e| Error::Malformed { what: "feedback delete", reason: e.to_string() })?;
        self.feedback_transaction(turn, TransactWriteItem::builder().delete(delete).build(), entry.sentiment, -1).await
    }

    async fn feedback_transaction(
        &self,
        turn: &TurnRecord,
        feedback_write: TransactWriteItem,
        sentiment: Sentiment,
        delta: i64,
    ) -> Result<bool> {
        let counter = Update::builder()
            .table_name(&self.table)
            .key("pk", s(thread_pk(&turn.thread)))
            .key("sk", s(turn_sk(&turn.message_ts)))
            .update_expression("ADD #c :d")
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_names("#c", counter(sentiment))
            .expression_attribute_values(":d", n(delta))
            .build()
            .map_err(|e| Error::Malformed { what: "feedback counter update", reason: e.to_string() })?;
        let counter = TransactWriteItem::builder().update(counter).build();
        let rollup = match &self.feedback_rollup {
            None => None,
            Some((usage_table, agent_id)) => {
                let day = chrono::DateTime::from_timestamp_millis(turn.received_at_ms)
                    .map(|t| t.date_naive())
                    .ok_or(Error::Malformed { what: "turn", reason: "received_at_ms out of range".into() })?;
                let attribute = match sentiment {
                    Sentiment::Positive => crate::rollups::FEEDBACK_ATTRIBUTES[0],
                    Sentiment::Negative => crate::rollups::FEEDBACK_ATTRIBUTES[1],
                };
                let update = Update::builder()
                    .table_name(usage_table)
                    .key("pk", s(crate::rollups::day_pk(day)))
                    .key("sk", s(crate::rollups::feedback_sk(agent_id)))
                    .update_expression("ADD #c :d")
                    .expression_attribute_names("#c", attribute)
                    .expression_attribute_values(":d", n(delta))
                    .build()
                    .map_err(|e| Error::Malformed { what: "feedback rollup update", reason: e.to_string() })?;
                Some(TransactWriteItem::builder().update(update).build())
            }
        };
        let items: Vec<TransactWriteItem> =
            [Some(feedback_write), Some(counter), rollup].into_iter().flatten().collect();
        super::with_retries(|| async {
            match self.client.transact_write_items().set_transact_items(Some(items.clone())).send().await {
                Ok(_) => Ok(true),
                Err(e) if e.as_service_error().is_some_and(is_conditional_failure) => Ok(false),
                Err(e) => Err(Error::from_sdk("dynamodb", "TransactWriteItems", e)),
            }
        })
        .await
    }
}

#[cfg(test)]
mod index_tests {
    use super::*;

    fn turn(status: TurnStatus) -> TurnRecord {
        TurnRecord {
            thread: ThreadRef { team_id: "T1".into(), channel_id: "C1".into(), thread_ts: "1.0".into() },
            message_ts: "1.0".into(),
            event_id: "Ev1".into(),
            user_id: "U1".into(),
            status,
            received_at_ms: 1_763_913_600_000, // 2025-11-23T16:00:00Z
            finished_at_ms: None,
            reply_ts: None,
            outcome: None,
            error_code: None,
            pending_analytics: None,
            pending_usage: None,
        }
    }

    #[test]
    fn open_turns_are_in_the_sparse_index_until_finished() {
        let t = turn(TurnStatus::Received);
        let item = to_item(&t);
        assert_eq!(item.get(OPEN_TURN), Some(&s(OPEN_TURN_VALUE)));
        assert_eq!(item.get(HOUR), Some(&s("2025-11-23T16")));
        assert!(!item.contains_key(REPLY_KEY) && !item.contains_key(KB_CONSULTED));

        let mut done = turn(TurnStatus::Answered);
        done.reply_ts = Some("2.0".into());
        done.pending_analytics = Some(r#"{"knowledge_bases":["KB1"]}"#.into());
        let item = to_item(&done);
        assert!(!item.contains_key(OPEN_TURN));
        assert_eq!(item.get(REPLY_KEY), Some(&s("REPLY#T1#C1#2.0")));
        assert_eq!(item.get(KB_CONSULTED), Some(&AttributeValue::Bool(true)));
        assert_eq!(item.get(HAS_USAGE), Some(&AttributeValue::Bool(false)));
        assert_eq!(item.get(ANALYTICS_PENDING), Some(&AttributeValue::Bool(true)));
        assert!(!item.contains_key(USAGE_PENDING));
        // In the pending index, by when it finished (or was received, if that is unknown).
        assert_eq!(item.get(PENDING_COPY), Some(&s(PENDING_COPY_VALUE)));
        assert_eq!(item.get(PENDING_SINCE_MS), Some(&n(done.received_at_ms)));
        done.finished_at_ms = Some(done.received_at_ms + 5);
        assert_eq!(to_item(&done).get(PENDING_SINCE_MS), Some(&n(done.received_at_ms + 5)));
        done.pending_analytics = None;
        assert!(!to_item(&done).contains_key(PENDING_COPY), "nothing owed: not in the pending index");
        match activity_from_item(&item) {
            Some(Activity::Turn(a)) => {
                assert!(a.replied && a.analytics_pending && !a.usage_pending);
                assert_eq!(a.kb_consulted, Some(true));
            }
            other => panic!("{other:?}"),
        }
    }
}
