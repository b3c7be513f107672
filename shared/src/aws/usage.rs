//! Reads usage rollups from USAGE_TABLE (see [`crate::rollups`] for the keys).

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes};
use chrono::NaiveDate;

use crate::ports::UsageReader;
use crate::rollups::{day_sk, month_sk, user_pk, Spend, UserSpend, SPEND_ATTRIBUTES};
use crate::{Error, Result};

/// Rollup reads from the usage table.
#[derive(Debug, Clone)]
pub struct DynamoDbUsageReader {
    client: aws_sdk_dynamodb::Client,
    table: String,
}

impl DynamoDbUsageReader {
    pub fn new(client: aws_sdk_dynamodb::Client, table: impl Into<String>) -> Self {
        DynamoDbUsageReader { client, table: table.into() }
    }
}

/// Reads a rollup item's numbers; absent attributes are zero.
pub fn spend_from_item(item: &HashMap<String, AttributeValue>) -> Spend {
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
        let out = super::with_retries(|| async {
            self.client
                .batch_get_item()
                .request_items(&self.table, keys.clone())
                .send()
                .await
                .map_err(|e| Error::from_sdk("dynamodb", "BatchGetItem", e))
        })
        .await?;
        let mut spend = UserSpend::default();
        for item in out.responses.and_then(|mut r| r.remove(&self.table)).unwrap_or_default() {
            match item.get("sk").and_then(|v| v.as_s().ok()) {
                Some(sk) if *sk == dsk => spend.day = spend_from_item(&item),
                Some(sk) if *sk == msk => spend.month = spend_from_item(&item),
                _ => {}
            }
        }
        Ok(spend)
    }
}
