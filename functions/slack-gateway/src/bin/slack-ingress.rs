//! Lambda entry point of slack-ingress (Function URL).

use std::sync::Arc;

use aws_lambda_events::event::lambda_function_urls::LambdaFunctionUrlRequest;
use lambda_runtime::{run, service_fn, Error, LambdaEvent};
use shared::aws::dedup::DynamoDbDedup;
use shared::aws::secrets::SecretsManagerSlackSecret;
use shared::aws::sqs::SqsWorkQueue;
use shared::telemetry::{init_logging, Metrics};
use slack_gateway::ingress::{Ingress, IngressConfig};

#[tokio::main]
async fn main() -> Result<(), Error> {
    init_logging();
    let config = IngressConfig::from_env()?;
    let sdk = shared::config::aws_sdk_config().await;
    let ingress = Ingress::new(
        Arc::new(SecretsManagerSlackSecret::new(aws_sdk_secretsmanager::Client::new(&sdk), &config.slack_secret_arn)),
        Arc::new(DynamoDbDedup::new(aws_sdk_dynamodb::Client::new(&sdk), &config.dedup_table)),
        Arc::new(SqsWorkQueue::new(aws_sdk_sqs::Client::new(&sdk), &config.work_queue_url)),
        Metrics::stdout(&config.metrics_namespace),
    )
    .await?;
    let ingress = &ingress;
    run(service_fn(move |event: LambdaEvent<LambdaFunctionUrlRequest>| async move {
        Ok::<_, Error>(ingress.handle(&event.payload).await)
    }))
    .await
}
