//! DynamoDB dedupe store: a conditional put per key, expired by TTL.

use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_dynamodb::types::AttributeValue;

use crate::ports::DedupStore;
use crate::{Error, Result};

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

#[async_trait]
impl DedupStore for DynamoDbDedup {
    async fn claim(&self, key: &str, ttl: Duration) -> Result<bool> {
        let now = super::now_epoch();
        let expires = now + ttl.as_secs() as i64;
        // A key whose TTL passed but which DynamoDB has not deleted yet may be claimed again.
        let res = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("pk", AttributeValue::S(key.to_string()))
            .item("expires_at", AttributeValue::N(expires.to_string()))
            .condition_expression("attribute_not_exists(pk) OR expires_at < :now")
            .expression_attribute_values(":now", AttributeValue::N(now.to_string()))
            .send()
            .await;
        match res {
            Ok(_) => Ok(true),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_conditional_check_failed_exception()) => Ok(false),
            Err(e) => Err(Error::from_sdk("dynamodb", "PutItem", e)),
        }
    }

    async fn release(&self, key: &str) -> Result<()> {
        super::with_retries(|| async {
            self.client
                .delete_item()
                .table_name(&self.table)
                .key("pk", AttributeValue::S(key.to_string()))
                .send()
                .await
                .map(|_| ())
                .map_err(|e| Error::from_sdk("dynamodb", "DeleteItem", e))
        })
        .await
    }
}
