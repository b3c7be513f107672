//! The one constructor of the handler: its adapters built from the config and an SDK config,
//! used by the main and the test harness alike.

use std::sync::Arc;
use std::time::Duration;

use aws_config::SdkConfig;
use shared::aws::secrets::JsonSecret;
use shared::aws::usage::DynamoDbUsageReader;
use shared::ports::SlackSecretSource;
use shared::slack::client::SlackWebClient;

use super::{ArchiveCompaction, CostAnalyzer, ReportChannel};
use crate::api::AdminApi;
use crate::athena::AthenaAnalytics;
use crate::audit::DynamoDbAuditLog;
use crate::s3::{S3Archive, S3ReportStore};
use crate::Config;

impl CostAnalyzer {
    /// The handler over AWS: rollups, audit log, report store and archive in DynamoDB and S3,
    /// Athena for queries, and the report channel on Slack when REPORT_CHANNEL_ID is set (its
    /// token read once here, and again whenever Slack refuses it).
    pub async fn from_config(config: &Config, sdk: &SdkConfig) -> shared::Result<CostAnalyzer> {
        let dynamodb = aws_sdk_dynamodb::Client::new(sdk);
        let rollups = Arc::new(DynamoDbUsageReader::new(dynamodb.clone(), &config.usage_table));
        let channel = match (&config.report_channel, &config.slack_secret_arn) {
            (Some(channel), Some(arn)) => {
                let secrets: Arc<dyn SlackSecretSource> =
                    Arc::new(JsonSecret::new(aws_sdk_secretsmanager::Client::new(sdk), arn));
                let secret = secrets.load().await?;
                let slack: Arc<dyn ReportChannel> = Arc::new(
                    SlackWebClient::new(&config.slack_api_base, secret.bot_token)?
                        .with_token_source(secrets, shared::slack::client::TOKEN_REFRESH_INTERVAL),
                );
                Some((channel.clone(), slack))
            }
            _ => None,
        };
        let s3 = aws_sdk_s3::Client::new(sdk);
        let athena = Arc::new(AthenaAnalytics::new(
            aws_sdk_athena::Client::new(sdk),
            &config.athena_workgroup,
            &config.glue_database,
            &config.events_table,
            Duration::from_secs(config.athena_max_wait_secs),
        ));
        Ok(CostAnalyzer {
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
        })
    }
}
