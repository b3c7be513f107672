//! Lambda entry point of token-logging (SQS usage queue, partial batch failures).

use aws_lambda_events::event::sqs::SqsEvent;
use lambda_runtime::{run, service_fn, Error, LambdaEvent};
use shared::telemetry::{init_logging, Metrics};
use token_logging::handler::{Config, TokenLogger};
use token_logging::writer::WriterSettings;

#[tokio::main]
async fn main() -> Result<(), Error> {
    init_logging();
    let config = Config::from_env()?;
    let sdk = shared::aws::sdk_config().await;
    let prices = shared::aws::prices::load_configured(&sdk).await?;
    let logger = TokenLogger::from_config(&config, &sdk, prices, Metrics::from_env()?, WriterSettings::default());
    let logger = &logger;
    run(service_fn(move |event: LambdaEvent<SqsEvent>| async move {
        let deadline = shared::deadline::from_epoch_ms(event.context.deadline);
        Ok::<_, Error>(logger.handle_batch(event.payload, deadline).await)
    }))
    .await
}
