//! Lambda entry point of action-group: invoked by a Bedrock Agent's action group (Classic) or by
//! an AgentCore Gateway (the tool named in the Lambda client context).

use action_group::events::gateway::GatewayContext;
use action_group::{ActionGroupConfig, Handler};
use lambda_runtime::{run, service_fn, Error, LambdaEvent};
use shared::telemetry::init_logging;

#[tokio::main]
async fn main() -> Result<(), Error> {
    init_logging();
    let config = ActionGroupConfig::from_env()?;
    let sdk = shared::aws::sdk_config().await;
    let handler = Handler::from_config(&config, &sdk)?;
    let handler = &handler;
    run(service_fn(move |event: LambdaEvent<serde_json::Value>| async move {
        let deadline = shared::deadline::from_epoch_ms(event.context.deadline);
        let gateway = event.context.client_context.as_ref().and_then(|c| GatewayContext::from_custom(&c.custom));
        handler.handle_invocation(event.payload, gateway.as_ref(), deadline).await
    }))
    .await
}
