//! Lambda entry point of cost-analyzer (EventBridge daily schedule and the admin Function URL).

use std::sync::Arc;
use std::time::Duration;

use cost_analyzer::api::AdminApi;
use cost_analyzer::athena::AthenaAnalytics;
use cost_analyzer::audit::DynamoDbAuditLog;
use cost_analyzer::handler::{ArchiveCompaction, ReportChannel};
use cost_analyzer::s3::{S3Archive, S3ReportStore};
use cost_analyzer::{Config, CostAnalyzer};
use lambda_runtime::{run, service_fn, Error, LambdaEvent};
use shared::aws::secrets::JsonSecret;
use shared::aws::usage::DynamoDbUsageReader;
use shared::ports::SlackSecretSource;
use shared::slack::client::SlackWebClient;
use shared::telemetry::init_logging;

#[tokio::main]
async fn main() -> Result<(), Error> {
    init_logging();
    let config = Config::from_env()?;
    let sdk = shared::aws::sdk_config().await;
    let dynamodb = aws_sdk_dynamodb::Client::new(&sdk);
    let rollups = Arc::new(DynamoDbUsageReader::new(dynamodb.clone(), &config.usage_table));
    let channel = match (&config.report_channel, &config.slack_secret_arn) {
        (Some(channel), Some(arn)) => {
            let secrets: Arc<dyn SlackSecretSource> =
                Arc::new(JsonSecret::new(aws_sdk_secretsmanager::Client::new(&sdk), arn));
            let secret = secrets.load().await?;
            // A rotated or reinstalled token is re-read when Slack refuses the one loaded here.
            let slack: Arc<dyn ReportChannel> = Arc::new(
                SlackWebClient::new(&config.slack_api_base, secret.bot_token)?
                    .with_token_source(secrets, shared::slack::client::TOKEN_REFRESH_INTERVAL),
            );
            Some((channel.clone(), slack))
        }
        _ => None,
    };
    let s3 = aws_sdk_s3::Client::new(&sdk);
    let athena = Arc::new(AthenaAnalytics::new(
        aws_sdk_athena::Client::new(&sdk),
        &config.athena_workgroup,
        &config.glue_database,
        &config.events_table,
        Duration::from_secs(config.athena_max_wait_secs),
    ));
    let analyzer = CostAnalyzer {
        rollups: rollups.clone(),
        reports: Arc::new(S3ReportStore::new(s3.clone(), &config.analytics_bucket)),
        channel,
        api: AdminApi {
            rollups,
            analytics: athena.clone(),
            audit: Arc::new(DynamoDbAuditLog::new(dynamodb, &config.audit_table)),
            agent_names: config.agent_names.clone(),
        },
        agent_names: config.agent_names.clone(),
        archive: Some(ArchiveCompaction {
            objects: Arc::new(S3Archive::new(s3, &config.analytics_bucket)),
            unloader: athena,
            bucket: config.analytics_bucket.clone(),
        }),
    };
    let analyzer = &analyzer;
    run(service_fn(move |event: LambdaEvent<serde_json::Value>| async move {
        analyzer.handle(event.payload, chrono::Utc::now()).await
    }))
    .await
}
