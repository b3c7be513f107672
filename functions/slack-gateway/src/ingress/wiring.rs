//! The ingress over the real adapters, built from its config and an SDK config: the one
//! constructor its main and the end-to-end tests (the SDK pointed at the local emulators) use.

use std::sync::Arc;
use std::time::Duration;

use aws_config::SdkConfig;
use shared::aws::dedup::DynamoDbDedup;
use shared::aws::secrets::JsonSecret;
use shared::aws::sqs::SqsWorkQueue;
use shared::ports::SlackSecretSource;
use shared::retry::Backoff;
use shared::slack::client::{SlackWebClient, TOKEN_REFRESH_INTERVAL};
use shared::telemetry::Metrics;

use super::{Ingress, IngressConfig};
use crate::status::{QueuedStatus, StatusIndicator};

impl Ingress {
    /// The ingress: the signing secret read once, dedupe and queue over `sdk`, the queued status
    /// when configured.
    pub async fn from_config(config: &IngressConfig, sdk: &SdkConfig, metrics: Metrics) -> shared::Result<Ingress> {
        let secrets: Arc<dyn SlackSecretSource> =
            Arc::new(JsonSecret::new(aws_sdk_secretsmanager::Client::new(sdk), &config.slack_secret_arn));
        let ingress = Ingress::new(
            secrets.clone(),
            Arc::new(DynamoDbDedup::new(aws_sdk_dynamodb::Client::new(sdk), &config.dedup_table)),
            Arc::new(SqsWorkQueue::new(aws_sdk_sqs::Client::new(sdk), &config.work_queue_url)),
            metrics,
        )
        .await?
        .with_feedback(config.feedback.clone());
        let Some((settings, timeout)) = config.queued_status.clone() else { return Ok(ingress) };
        // One attempt, no rate-limit waits: the status is a hint, the acknowledgement is not.
        let token = secrets.load().await?.bot_token;
        let chat = SlackWebClient::new(&config.slack_api_base, token)?
            .with_backoff(Backoff { max_attempts: 1, ..Backoff::default() })
            .with_max_rate_limit_wait(Duration::ZERO)
            .with_token_source(secrets, TOKEN_REFRESH_INTERVAL);
        Ok(ingress
            .with_queued_status(QueuedStatus { indicator: StatusIndicator::new(Arc::new(chat), settings), timeout }))
    }
}
