//! Firehose feedback stream: one newline-terminated JSON record per feedback event
//! (same bucket as the analytics events, prefix `feedback/`).

use serde::Serialize;

use crate::Result;

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
    pub async fn put<T: Serialize + Sync>(&self, event: &T) -> Result<()> {
        super::firehose::put_record(&self.client, &self.stream, super::firehose::ndjson_line("feedback event", event)?)
            .await
    }
}
