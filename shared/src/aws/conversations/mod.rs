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

mod feedback;
mod indexes;
mod item;
mod turns;

use aws_sdk_dynamodb::types::AttributeValue;

// Imported here so that the submodules reach them as `super::` (the IAM scan follows
// `crate::` paths, and the aws module's own files are no part of this adapter).
use super::{with_retries, Conditional};
use crate::domain::ThreadRef;
use crate::ports::TurnRecord;
use crate::{Error, Result};
use item::from_item;

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
