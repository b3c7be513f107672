//! The turn's life in the table: begun, answer kept, reply recorded, finished, copies cleared.

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::types::AttributeValue;

use super::item::{to_item, TURN_OPTIONAL_ATTRIBUTES};
use super::*;
use crate::domain::TurnStatus;
use crate::ports::{ConversationStore, TurnStart};

#[async_trait]
impl ConversationStore for DynamoDbConversations {
    async fn begin_turn(&self, turn: &TurnRecord) -> Result<TurnStart> {
        let res = with_retries(|| async {
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
        with_retries(|| async {
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
        with_retries(|| async {
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
        let left = with_retries(|| async {
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
        with_retries(|| async {
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
