//! Lambda entry point of action-group: invoked by a Bedrock Agent's action group (Classic) or by
//! an AgentCore Gateway (the tool named in the Lambda client context).

use std::sync::Arc;

use action_group::events::gateway::GatewayContext;
use action_group::jira::JiraClient;
use action_group::{ActionGroupConfig, Handler};
use lambda_runtime::{run, service_fn, Error, LambdaEvent};
use shared::aws::secrets::JsonSecret;
use shared::aws::usage::DynamoDbUsageReader;
use shared::telemetry::{init_logging, Metrics};

#[tokio::main]
async fn main() -> Result<(), Error> {
    init_logging();
    let config = ActionGroupConfig::from_env()?;
    let sdk = shared::aws::sdk_config().await;
    // One adapter of the usage table serves both usage ports.
    let usage = Arc::new(DynamoDbUsageReader::new(aws_sdk_dynamodb::Client::new(&sdk), &config.usage_table));
    let handler = Handler {
        jira_credentials: Arc::new(JsonSecret::new(aws_sdk_secretsmanager::Client::new(&sdk), &config.jira_secret_arn)),
        jira: JiraClient::new()?,
        projects: config.jira_projects.clone(),
        usage: usage.clone(),
        usage_history: usage,
        metrics: Metrics::from_env()?,
    };
    let handler = &handler;
    run(service_fn(move |event: LambdaEvent<serde_json::Value>| async move {
        let deadline = shared::deadline::from_epoch_ms(event.context.deadline);
        let gateway = event.context.client_context.as_ref().and_then(|c| GatewayContext::from_custom(&c.custom));
        handler.handle_invocation(event.payload, gateway.as_ref(), deadline).await
    }))
    .await
}
