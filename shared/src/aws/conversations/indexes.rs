//! Readers of the sparse indexes: open turns (SLA), activity by hour (KPIs), pending copies
//! (the sweeper), a turn by its reply (reactions).

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;

use super::item::activity_from_item;
use super::*;
use crate::domain::{Activity, TurnKey};

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
        crate::aws::query_pages(query, |items| {
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
            crate::aws::query_pages(query, |items| {
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
    pub(super) async fn leave_pending_index(&self, thread: &ThreadRef, message_ts: &str) -> Result<()> {
        with_retries(|| async {
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
}
