//! Lambda entry point of token-logging (SQS usage queue, partial batch failures).

use std::sync::Arc;
use std::time::Duration;

use aws_lambda_events::event::sqs::SqsEvent;
use aws_sdk_dynamodb::config::retry::RetryConfig;
use aws_sdk_dynamodb::config::timeout::TimeoutConfig;
use lambda_runtime::{run, service_fn, Error, LambdaEvent};
use shared::aws::ledger::DynamoDbLedger;
use shared::telemetry::{init_logging, Metrics};
use token_logging::handler::{Config, TokenLogger};
use token_logging::writer::WriterSettings;

#[tokio::main]
async fn main() -> Result<(), Error> {
    init_logging();
    let config = Config::from_env()?;
    let sdk = shared::aws::sdk_config().await;
    let prices = shared::aws::prices::load_configured(&sdk).await?;
    // The writer retries (and counts throttles for DynamoDBThrottles and the circuit breaker)
    // itself, so the SDK makes one attempt per call, each bounded in time.
    let dynamodb = aws_sdk_dynamodb::Client::from_conf(
        aws_sdk_dynamodb::config::Builder::from(&sdk)
            .retry_config(RetryConfig::standard().with_max_attempts(1))
            .timeout_config(TimeoutConfig::builder().operation_attempt_timeout(Duration::from_secs(5)).build())
            .build(),
    );
    let logger = TokenLogger::new(
        Arc::new(DynamoDbLedger::new(dynamodb, &config.usage_table)),
        prices,
        Metrics::from_env()?,
        &config.usage_table,
        WriterSettings::default(),
    );
    let logger = &logger;
    run(service_fn(move |event: LambdaEvent<SqsEvent>| async move {
        let deadline = shared::deadline::from_epoch_ms(event.context.deadline);
        Ok::<_, Error>(logger.handle_batch(event.payload, deadline).await)
    }))
    .await
}
