//! Lambda entry point of slack-ingress (Function URL).

use aws_lambda_events::event::lambda_function_urls::LambdaFunctionUrlRequest;
use lambda_runtime::{run, service_fn, Error, LambdaEvent};
use shared::telemetry::{init_logging, Metrics};
use slack_gateway::ingress::{Ingress, IngressConfig};

#[tokio::main]
async fn main() -> Result<(), Error> {
    init_logging();
    let config = IngressConfig::from_env()?;
    let sdk = shared::aws::sdk_config().await;
    let ingress = Ingress::from_config(&config, &sdk, Metrics::from_env()?).await?;
    let ingress = &ingress;
    run(service_fn(move |event: LambdaEvent<LambdaFunctionUrlRequest>| async move {
        Ok::<_, Error>(ingress.handle(&event.payload).await)
    }))
    .await
}
