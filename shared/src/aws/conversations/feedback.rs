//! Feedback reactions: an item per user and reaction, the turn's counter and the day rollup,
//! written in one transaction.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::{Delete, Put, TransactWriteItem, Update};

use super::*;
use crate::domain::{FeedbackEntry, Sentiment};

impl DynamoDbConversations {
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

    /// Whether `entry` (its user and reaction) is recorded on `turn` (a consistent read).
    pub async fn has_feedback(&self, turn: &TurnRecord, entry: &FeedbackEntry) -> Result<bool> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(thread_pk(&turn.thread)))
            .key("sk", s(feedback_sk(&turn.message_ts, &entry.user_id, &entry.reaction)))
            .projection_expression("pk")
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| Error::from_sdk("dynamodb", "GetItem", e))?;
        Ok(out.item.is_some())
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
        with_retries(|| async {
            match self.client.transact_write_items().set_transact_items(Some(items.clone())).send().await {
                Ok(_) => Ok(true),
                Err(e) if e.as_service_error().is_some_and(is_conditional_failure) => Ok(false),
                Err(e) => Err(Error::from_sdk("dynamodb", "TransactWriteItems", e)),
            }
        })
        .await
    }
}

/// The turn item's counter of one kind of feedback.
fn counter(sentiment: Sentiment) -> &'static str {
    match sentiment {
        Sentiment::Positive => "feedback_positive",
        Sentiment::Negative => "feedback_negative",
    }
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
