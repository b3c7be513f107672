//! Firehose feedback stream: one newline-terminated JSON record per feedback event
//! (same bucket as the analytics events, prefix `feedback/`).

use aws_sdk_firehose::primitives::Blob;
use aws_sdk_firehose::types::Record;
use serde::Serialize;

use crate::{Error, Result};

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
        let mut bytes = serde_json::to_vec(event)
            .map_err(|e| Error::Malformed { what: "feedback event", reason: e.to_string() })?;
        bytes.push(b'\n');
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
