//! Lambda entry point of slack-ingress (Function URL).

use std::sync::Arc;
use std::time::Duration;

use aws_lambda_events::event::lambda_function_urls::LambdaFunctionUrlRequest;
use lambda_runtime::{run, service_fn, Error, LambdaEvent};
use shared::aws::dedup::DynamoDbDedup;
use shared::aws::secrets::JsonSecret;
use shared::aws::sqs::SqsWorkQueue;
use shared::ports::SlackSecretSource;
use shared::retry::Backoff;
use shared::slack::client::SlackWebClient;
use shared::telemetry::{init_logging, Metrics};
use slack_gateway::ingress::{Ingress, IngressConfig};
use slack_gateway::status::{QueuedStatus, StatusIndicator};

#[tokio::main]
async fn main() -> Result<(), Error> {
    init_logging();
    let config = IngressConfig::from_env()?;
    let sdk = shared::aws::sdk_config().await;
    let secrets: Arc<dyn SlackSecretSource> =
        Arc::new(JsonSecret::new(aws_sdk_secretsmanager::Client::new(&sdk), &config.slack_secret_arn));
    let ingress = Ingress::new(
        secrets.clone(),
        Arc::new(DynamoDbDedup::new(aws_sdk_dynamodb::Client::new(&sdk), &config.dedup_table)),
        Arc::new(SqsWorkQueue::new(aws_sdk_sqs::Client::new(&sdk), &config.work_queue_url)),
        Metrics::from_env()?,
    )
    .await?
    .with_feedback(config.feedback.clone());
    let ingress = match config.queued_status.clone() {
        Some((settings, timeout)) => {
            // One attempt, no rate-limit waits: the status is a hint, the acknowledgement is not.
            let token = secrets.load().await?.bot_token;
            let chat = SlackWebClient::new(&config.slack_api_base, token)?
                .with_backoff(Backoff { max_attempts: 1, ..Backoff::default() })
                .with_max_rate_limit_wait(Duration::ZERO)
                .with_token_source(secrets.clone(), shared::slack::client::TOKEN_REFRESH_INTERVAL);
            ingress
                .with_queued_status(QueuedStatus { indicator: StatusIndicator::new(Arc::new(chat), settings), timeout })
        }
        None => ingress,
    };
    let ingress = &ingress;
    run(service_fn(move |event: LambdaEvent<LambdaFunctionUrlRequest>| async move {
        Ok::<_, Error>(ingress.handle(&event.payload).await)
    }))
    .await
}
