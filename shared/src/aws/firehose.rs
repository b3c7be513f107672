//! Firehose delivery streams: the analytics events and the feedback events, one
//! newline-terminated JSON record per event (the feedback stream writes to the analytics
//! bucket too, under the prefix `feedback/`).

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

/// Puts feedback events on a Firehose delivery stream.
#[derive(Debug, Clone)]
pub struct FirehoseFeedback {
    client: aws_sdk_firehose::Client,
    stream: String,
}

impl FirehoseFeedback {
    pub fn new(client: aws_sdk_firehose::Client, stream: impl Into<String>) -> Self {
        FirehoseFeedback { client, stream: stream.into() }
    }

    /// Puts `event` as one NDJSON line.
    pub async fn put<T: serde::Serialize + Sync>(&self, event: &T) -> Result<()> {
        put_record(&self.client, &self.stream, ndjson_line("feedback event", event)?).await
    }
}

/// The record bytes for one event: JSON and a newline, so objects are valid NDJSON for Athena.
pub fn encode_event(event: &AnalyticsEvent) -> Result<Vec<u8>> {
    ndjson_line("analytics event", event)
}

/// `value` as one newline-terminated JSON line (`what` names it in the error).
fn ndjson_line<T: serde::Serialize + ?Sized>(what: &'static str, value: &T) -> Result<Vec<u8>> {
    let mut bytes = serde_json::to_vec(value).map_err(|e| Error::Malformed { what, reason: e.to_string() })?;
    bytes.push(b'\n');
    Ok(bytes)
}

/// Puts one record on `stream`, with the adapters' retries.
async fn put_record(client: &aws_sdk_firehose::Client, stream: &str, bytes: Vec<u8>) -> Result<()> {
    super::with_retries(|| async {
        let record = Record::builder()
            .data(Blob::new(bytes.clone()))
            .build()
            .map_err(|e| Error::Malformed { what: "firehose record", reason: e.to_string() })?;
        client
            .put_record()
            .delivery_stream_name(stream)
            .record(record)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| Error::from_sdk("firehose", "PutRecord", e))
    })
    .await
}

#[async_trait]
impl AnalyticsSink for FirehoseAnalytics {
    async fn publish(&self, event: &AnalyticsEvent) -> Result<()> {
        put_record(&self.client, &self.stream, encode_event(event)?).await
    }
}
