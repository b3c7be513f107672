//! Lambda entry point of cost-analyzer (EventBridge daily schedule and the admin Function URL).

use cost_analyzer::{Config, CostAnalyzer};
use lambda_runtime::{run, service_fn, Error, LambdaEvent};
use shared::telemetry::init_logging;

#[tokio::main]
async fn main() -> Result<(), Error> {
    init_logging();
    let config = Config::from_env()?;
    let sdk = shared::aws::sdk_config().await;
    let analyzer = CostAnalyzer::from_config(&config, &sdk).await?;
    let analyzer = &analyzer;
    run(service_fn(move |event: LambdaEvent<serde_json::Value>| async move {
        analyzer.handle(event.payload, chrono::Utc::now()).await
    }))
    .await
}
