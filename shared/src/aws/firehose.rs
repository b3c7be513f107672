//! Firehose analytics sink: one newline-terminated JSON record per event.

use async_trait::async_trait;
use aws_sdk_firehose::primitives::Blob;
use aws_sdk_firehose::types::Record;

use crate::domain::AnalyticsEvent;
use crate::ports::AnalyticsSink;
use crate::{Error, Result};

/// Puts analytics events on a Firehose delivery stream.
#[derive(Debug, Clone)]
pub struct FirehoseAnalytics {
    client: aws_sdk_firehose::Client,
    stream: String,
}

impl FirehoseAnalytics {
    pub fn new(client: aws_sdk_firehose::Client, stream: impl Into<String>) -> Self {
        FirehoseAnalytics { client, stream: stream.into() }
    }
}

/// The record bytes for one event: JSON and a newline, so objects are valid NDJSON for Athena.
pub fn encode_event(event: &AnalyticsEvent) -> Result<Vec<u8>> {
    let mut bytes =
        serde_json::to_vec(event).map_err(|e| Error::Malformed { what: "analytics event", reason: e.to_string() })?;
    bytes.push(b'\n');
    Ok(bytes)
}

#[async_trait]
impl AnalyticsSink for FirehoseAnalytics {
    async fn publish(&self, event: &AnalyticsEvent) -> Result<()> {
        let bytes = encode_event(event)?;
        super::with_retries(|| async {
            let record = Record::builder()
                .data(Blob::new(bytes.clone()))
                .build()
                .map_err(|e| Error::Malformed { what: "firehose record", reason: e.to_string() })?;
            self.client
                .put_record()
                .delivery_stream_name(&self.stream)
                .record(record)
                .send()
                .await
                .map(|_| ())
                .map_err(|e| Error::from_sdk("firehose", "PutRecord", e))
        })
        .await
    }
}
