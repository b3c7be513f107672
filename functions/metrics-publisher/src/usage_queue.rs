//! The usage queue's depth for LoggingQueueDepth: SQS GetQueueAttributes on the queue
//! token-logging consumes.

use async_trait::async_trait;
use aws_sdk_sqs::types::QueueAttributeName;
use shared::{Error, Result};

/// Reads how many usage records are on the queue.
#[async_trait]
pub trait QueueDepth: Send + Sync {
    /// Records not yet deleted by token-logging: waiting + in flight.
    async fn depth(&self) -> Result<u64>;
}

/// GetQueueAttributes on one queue.
#[derive(Debug, Clone)]
pub struct SqsQueueDepth {
    client: aws_sdk_sqs::Client,
    queue_url: String,
}

impl SqsQueueDepth {
    /// Reads the queue at `queue_url`.
    pub fn new(client: aws_sdk_sqs::Client, queue_url: impl Into<String>) -> Self {
        SqsQueueDepth { client, queue_url: queue_url.into() }
    }
}

/// Both counts: token-logging's poller receives waiting records at once, so while it fails or
/// is throttled the backlog sits in flight (invisible until the visibility timeout), not waiting.
const COUNTED: [QueueAttributeName; 2] =
    [QueueAttributeName::ApproximateNumberOfMessages, QueueAttributeName::ApproximateNumberOfMessagesNotVisible];

#[async_trait]
impl QueueDepth for SqsQueueDepth {
    async fn depth(&self) -> Result<u64> {
        let out = self
            .client
            .get_queue_attributes()
            .queue_url(&self.queue_url)
            .set_attribute_names(Some(COUNTED.to_vec()))
            .send()
            .await
            .map_err(|e| Error::from_sdk("sqs", "GetQueueAttributes", e))?;
        let mut total = 0u64;
        for a in &COUNTED {
            let value = out.attributes().and_then(|m| m.get(a)).ok_or_else(|| Error::Malformed {
                what: "GetQueueAttributes response",
                reason: format!("{} is missing", a.as_str()),
            })?;
            total += value.parse::<u64>().map_err(|_| Error::Malformed {
                what: "GetQueueAttributes response",
                reason: format!("{} is not a count: {value:?}", a.as_str()),
            })?;
        }
        Ok(total)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use aws_sdk_sqs::operation::get_queue_attributes::{GetQueueAttributesError, GetQueueAttributesOutput};
    use aws_sdk_sqs::types::error::QueueDoesNotExist;
    use aws_sdk_sqs::Client;
    use aws_smithy_mocks::{mock, mock_client, RuleMode};

    use super::*;

    #[tokio::test]
    async fn depth_is_waiting_plus_in_flight_of_the_configured_queue() {
        type Asked = Arc<Mutex<Vec<(String, Vec<QueueAttributeName>)>>>;
        let asked: Asked = Arc::default();
        let seen = asked.clone();
        let rule = mock!(Client::get_queue_attributes)
            .match_requests(move |req| {
                seen.lock()
                    .unwrap()
                    .push((req.queue_url().unwrap_or_default().to_string(), req.attribute_names().to_vec()));
                true
            })
            .then_output(|| {
                GetQueueAttributesOutput::builder()
                    .attributes(QueueAttributeName::ApproximateNumberOfMessages, "7")
                    .attributes(QueueAttributeName::ApproximateNumberOfMessagesNotVisible, "3")
                    .build()
            });
        let client = mock_client!(aws_sdk_sqs, RuleMode::MatchAny, [&rule]);
        let depth = SqsQueueDepth::new(client, "https://sqs/usage").depth().await.expect("depth");
        assert_eq!(depth, 10);
        assert_eq!(*asked.lock().unwrap(), vec![("https://sqs/usage".to_string(), COUNTED.to_vec())]);
    }

    #[tokio::test]
    async fn a_failed_call_or_a_missing_count_is_an_error() {
        let failing = mock!(Client::get_queue_attributes).then_error(|| {
            GetQueueAttributesError::QueueDoesNotExist(QueueDoesNotExist::builder().message("gone").build())
        });
        let client = mock_client!(aws_sdk_sqs, RuleMode::MatchAny, [&failing]);
        let e = SqsQueueDepth::new(client, "q").depth().await.unwrap_err().to_string();
        assert!(e.contains("GetQueueAttributes"), "{e}");

        let partial = mock!(Client::get_queue_attributes).then_output(|| {
            GetQueueAttributesOutput::builder().attributes(QueueAttributeName::ApproximateNumberOfMessages, "7").build()
        });
        let client = mock_client!(aws_sdk_sqs, RuleMode::MatchAny, [&partial]);
        let e = SqsQueueDepth::new(client, "q").depth().await.unwrap_err().to_string();
        assert!(e.contains("ApproximateNumberOfMessagesNotVisible is missing"), "{e}");
    }
}
