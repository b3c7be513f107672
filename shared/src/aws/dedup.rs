//! DynamoDB dedupe store: a conditional put per key (a short pending lease, then confirmed),
//! expired by TTL.
//!
//! Item: `pk`, `owner` (who holds it), `state` (`pending` | `confirmed`), `lease_until_ms` (end of
//! a pending lease, epoch ms) and `expires_at` (epoch seconds, the table's TTL attribute). Items
//! written before leases existed have `expires_at` only and count as confirmed until then.

use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValuesOnConditionCheckFailure};

use super::Conditional;
use crate::ports::{Claim, DedupStore};
use crate::{Error, Result};

const PENDING: &str = "pending";
const CONFIRMED: &str = "confirmed";

/// Claims keys in a table with partition key `pk` and TTL attribute `expires_at`.
#[derive(Debug, Clone)]
pub struct DynamoDbDedup {
    client: aws_sdk_dynamodb::Client,
    table: String,
}

impl DynamoDbDedup {
    pub fn new(client: aws_sdk_dynamodb::Client, table: impl Into<String>) -> Self {
        DynamoDbDedup { client, table: table.into() }
    }
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

fn s(v: &str) -> AttributeValue {
    AttributeValue::S(v.to_string())
}

fn n(v: i64) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

/// What an existing item means to a new claim (the item the failed condition returned).
fn existing(item: Option<&std::collections::HashMap<String, AttributeValue>>) -> Claim {
    let Some(item) = item else { return Claim::Taken };
    let pending = item.get("state").and_then(|v| v.as_s().ok()).is_some_and(|v| v == PENDING);
    let until_ms = item.get("lease_until_ms").and_then(|v| v.as_n().ok()).and_then(|v| v.parse().ok());
    match (pending, until_ms) {
        (true, Some(until_ms)) => Claim::Pending { until_ms },
        _ => Claim::Taken,
    }
}

#[async_trait]
impl DedupStore for DynamoDbDedup {
    async fn claim(&self, key: &str, owner: &str, lease: Duration) -> Result<Claim> {
        let now = now_ms();
        let until = now + lease.as_millis() as i64;
        // A pending lease that ran out, or a key whose TTL passed but which DynamoDB has not
        // deleted yet, may be claimed again. The failed condition returns the item (no read
        // permission needed), so a pending claim is told apart from a confirmed one.
        let res = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(key))
            .item("owner", s(owner))
            .item("state", s(PENDING))
            .item("lease_until_ms", n(until))
            .item("expires_at", n(until.div_euclid(1000) + 1))
            .condition_expression(
                "attribute_not_exists(pk) OR expires_at < :now_s OR (#state = :pending AND lease_until_ms < :now_ms)",
            )
            .expression_attribute_names("#state", "state")
            .expression_attribute_values(":now_s", n(now.div_euclid(1000)))
            .expression_attribute_values(":now_ms", n(now))
            .expression_attribute_values(":pending", s(PENDING))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match res {
            Ok(_) => Ok(Claim::Acquired),
            Err(e) => match e.as_service_error() {
                Some(aws_sdk_dynamodb::operation::put_item::PutItemError::ConditionalCheckFailedException(c)) => {
                    Ok(existing(c.item()))
                }
                _ => Err(Error::from_sdk("dynamodb", "PutItem", e)),
            },
        }
    }

    async fn confirm(&self, key: &str, owner: &str, ttl: Duration) -> Result<bool> {
        let expires = super::now_epoch() + ttl.as_secs() as i64;
        let res = super::with_retries(|| async {
            self.client
                .put_item()
                .table_name(&self.table)
                .item("pk", s(key))
                .item("owner", s(owner))
                .item("state", s(CONFIRMED))
                .item("expires_at", n(expires))
                .condition_expression("#owner = :owner")
                .expression_attribute_names("#owner", "owner")
                .expression_attribute_values(":owner", s(owner))
                .send()
                .await
                .applied("PutItem")
                .map(|applied| applied.is_some())
        })
        .await;
        res
    }

    async fn release(&self, key: &str, owner: &str) -> Result<()> {
        super::with_retries(|| async {
            self.client
                .delete_item()
                .table_name(&self.table)
                .key("pk", s(key))
                .condition_expression("#owner = :owner")
                .expression_attribute_names("#owner", "owner")
                .expression_attribute_values(":owner", s(owner))
                .send()
                .await
                .applied("DeleteItem")
                .map(|_| ())
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(pairs: &[(&str, AttributeValue)]) -> std::collections::HashMap<String, AttributeValue> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.clone())).collect()
    }

    #[test]
    fn an_existing_item_is_pending_only_with_a_lease() {
        assert_eq!(existing(None), Claim::Taken);
        assert_eq!(existing(Some(&item(&[("expires_at", n(5))]))), Claim::Taken, "written before leases");
        assert_eq!(existing(Some(&item(&[("state", s(CONFIRMED)), ("expires_at", n(5))]))), Claim::Taken);
        assert_eq!(
            existing(Some(&item(&[("state", s(PENDING)), ("lease_until_ms", n(1234))]))),
            Claim::Pending { until_ms: 1234 }
        );
    }
}
