//! SQS adapters: the FIFO work queue and the usage queue.

use async_trait::async_trait;

use crate::domain::UsageRecord;
use crate::ports::{UsageSink, WorkQueue};
use crate::{Error, Result};

/// A FIFO queue of accepted Slack events.
#[derive(Debug, Clone)]
pub struct SqsWorkQueue {
    client: aws_sdk_sqs::Client,
    url: String,
}

impl SqsWorkQueue {
    pub fn new(client: aws_sdk_sqs::Client, url: impl Into<String>) -> Self {
        SqsWorkQueue { client, url: url.into() }
    }
}

#[async_trait]
impl WorkQueue for SqsWorkQueue {
    async fn enqueue(&self, group_id: &str, dedup_id: &str, body: &str) -> Result<()> {
        super::with_retries(|| async {
            self.client
                .send_message()
                .queue_url(&self.url)
                .message_group_id(group_id)
                .message_deduplication_id(dedup_id)
                .message_body(body)
                .send()
                .await
                .map(|_| ())
                .map_err(|e| Error::from_sdk("sqs", "SendMessage", e))
        })
        .await
    }
}

/// Sends usage records to the usage queue for token-logging.
#[derive(Debug, Clone)]
pub struct SqsUsageSink {
    client: aws_sdk_sqs::Client,
    url: String,
}

impl SqsUsageSink {
    pub fn new(client: aws_sdk_sqs::Client, url: impl Into<String>) -> Self {
        SqsUsageSink { client, url: url.into() }
    }
}

#[async_trait]
impl UsageSink for SqsUsageSink {
    async fn publish(&self, record: &UsageRecord) -> Result<()> {
        let body = serde_json::to_string(record)
            .map_err(|e| Error::Malformed { what: "usage record", reason: e.to_string() })?;
        super::with_retries(|| async {
            self.client
                .send_message()
                .queue_url(&self.url)
                .message_body(&body)
                .send()
                .await
                .map(|_| ())
                .map_err(|e| Error::from_sdk("sqs", "SendMessage", e))
        })
        .await
    }
}
