//! The handler over the real adapters, built from its config and an SDK config: the one
//! constructor its main uses (and tests that point the SDK at moto can use).

use std::sync::Arc;

use aws_config::SdkConfig;
use shared::aws::secrets::JsonSecret;
use shared::aws::usage::DynamoDbUsageReader;
use shared::telemetry::{metrics_level, Metrics};

use super::Handler;
use crate::config::ActionGroupConfig;
use crate::jira::JiraClient;

impl Handler {
    /// The handler over the Jira secret and the usage table `config` names; EMF metrics in the
    /// config's namespace at the level `METRICS_LEVEL` sets.
    pub fn from_config(config: &ActionGroupConfig, sdk: &SdkConfig) -> shared::Result<Handler> {
        // One adapter of the usage table serves both usage ports.
        let usage = Arc::new(DynamoDbUsageReader::new(aws_sdk_dynamodb::Client::new(sdk), &config.usage_table));
        Ok(Handler {
            jira_credentials: Arc::new(JsonSecret::new(
                aws_sdk_secretsmanager::Client::new(sdk),
                &config.jira_secret_arn,
            )),
            jira: JiraClient::new()?,
            projects: config.jira_projects.clone(),
            usage: usage.clone(),
            usage_history: usage,
            metrics: Metrics::stdout(config.metrics_namespace.clone()).at_level(metrics_level()?),
        })
    }
}
