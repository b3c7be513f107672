//! DynamoDB conversations table: one item per turn, pk = thread, sk = message ts.

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::types::AttributeValue;

use crate::domain::{ThreadRef, TurnStatus};
use crate::ports::{ConversationStore, TurnRecord, TurnStart};
use crate::{Error, Result};

/// How long turn records are kept (TTL), for feedback, SLA checks and session history.
const RETENTION_SECS: i64 = 90 * 24 * 3600;

/// The conversations table (`pk` + `sk` strings, TTL attribute `expires_at`).
#[derive(Debug, Clone)]
pub struct DynamoDbConversations {
    client: aws_sdk_dynamodb::Client,
    table: String,
}

impl DynamoDbConversations {
    pub fn new(client: aws_sdk_dynamodb::Client, table: impl Into<String>) -> Self {
        DynamoDbConversations { client, table: table.into() }
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
    item
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
                .map(|_| true)
                .or_else(|e| {
                    if e.as_service_error().is_some_and(|s| s.is_conditional_check_failed_exception()) {
                        Ok(false)
                    } else {
                        Err(Error::from_sdk("dynamodb", "PutItem", e))
                    }
                })
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
        super::with_retries(|| async {
            self.client
                .put_item()
                .table_name(&self.table)
                .set_item(Some(to_item(turn)))
                .send()
                .await
                .map(|_| ())
                .map_err(|e| Error::from_sdk("dynamodb", "PutItem", e))
        })
        .await
    }

    async fn clear_pending(&self, thread: &ThreadRef, message_ts: &str, analytics: bool, usage: bool) -> Result<()> {
        let mut attrs = Vec::new();
        if analytics {
            attrs.push("pending_analytics");
        }
        if usage {
            attrs.push("pending_usage");
        }
        if attrs.is_empty() {
            return Ok(());
        }
        let expr = format!("REMOVE {}", attrs.join(", "));
        super::with_retries(|| async {
            self.client
                .update_item()
                .table_name(&self.table)
                .key("pk", s(thread_pk(thread)))
                .key("sk", s(turn_sk(message_ts)))
                .update_expression(&expr)
                .send()
                .await
                .map(|_| ())
                .map_err(|e| Error::from_sdk("dynamodb", "UpdateItem", e))
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
