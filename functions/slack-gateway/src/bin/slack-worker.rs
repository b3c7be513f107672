//! Lambda entry point of slack-worker (SQS FIFO event source, partial batch failures).

use aws_lambda_events::event::sqs::SqsEvent;
use lambda_runtime::{run, service_fn, Error, LambdaEvent};
use shared::telemetry::{init_logging, Metrics};
use slack_gateway::worker::{Worker, WorkerConfig};

#[tokio::main]
async fn main() -> Result<(), Error> {
    init_logging();
    let config = WorkerConfig::from_env()?;
    let sdk = shared::aws::sdk_config().await;
    let prices = shared::aws::prices::load_configured(&sdk).await?;
    let worker = Worker::from_config(&config, &sdk, &sdk, prices, Metrics::from_env()?).await?;
    let worker = &worker;
    run(service_fn(move |event: LambdaEvent<SqsEvent>| async move {
        let deadline = shared::deadline::from_epoch_ms(event.context.deadline);
        Ok::<_, Error>(worker.handle_batch(event.payload, deadline).await)
    }))
    .await
}
