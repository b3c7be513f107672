//! Lambda entry point of metrics-publisher (EventBridge schedule, every 5 minutes).

use lambda_runtime::{run, service_fn, Error, LambdaEvent};
use metrics_publisher::handler::{Config, MetricsPublisher};
use shared::telemetry::{init_logging, Metrics};

#[tokio::main]
async fn main() -> Result<(), Error> {
    init_logging();
    let config = Config::from_env()?;
    let sdk = shared::aws::sdk_config().await;
    let publisher = MetricsPublisher::from_config(&config, &sdk, Metrics::from_env()?);
    let publisher = &publisher;
    // The scheduled event carries nothing the run needs: it reads the clock.
    run(service_fn(move |_event: LambdaEvent<serde_json::Value>| async move {
        let datums = publisher.run(chrono::Utc::now().timestamp_millis()).await?;
        Ok::<_, Error>(serde_json::json!({ "published": datums.len() }))
    }))
    .await
}
