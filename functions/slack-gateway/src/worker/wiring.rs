//! The worker over the real adapters, built from its config and an SDK config: the one
//! constructor its main and the end-to-end tests (the SDK pointed at the local emulators) use.

use std::sync::Arc;

use aws_config::SdkConfig;
use shared::aws::agent::BedrockAgent;
use shared::aws::agentcore::harness::AgentCoreHarness;
use shared::aws::agentcore::runtime::AgentCoreRuntime;
use shared::aws::conversations::DynamoDbConversations;
use shared::aws::firehose::{FirehoseAnalytics, FirehoseFeedback};
use shared::aws::secrets::JsonSecret;
use shared::aws::sqs::SqsUsageSink;
use shared::aws::usage::DynamoDbUsageReader;
use shared::ports::{AgentClient, SlackSecretSource};
use shared::pricing::PriceTable;
use shared::slack::client::{SlackWebClient, TOKEN_REFRESH_INTERVAL};
use shared::slack::files::{SlackFileFetcher, SlackFiles};
use shared::telemetry::Metrics;

use super::config::AgentTarget;
use super::{Worker, WorkerConfig};
use crate::feedback::{FeedbackRecorder, FeedbackSink};
use crate::home::HomeSources;

impl Worker {
    /// The worker: AWS adapters over `sdk`, the agent over `agent_sdk` (the same config in Lambda),
    /// the Slack client with its token re-read on refusal.
    pub async fn from_config(
        config: &WorkerConfig,
        sdk: &SdkConfig,
        agent_sdk: &SdkConfig,
        prices: PriceTable,
        metrics: Metrics,
    ) -> shared::Result<Worker> {
        let secrets: Arc<dyn SlackSecretSource> =
            Arc::new(JsonSecret::new(aws_sdk_secretsmanager::Client::new(sdk), &config.slack_secret_arn));
        let secret = secrets.load().await?;
        let dynamodb = aws_sdk_dynamodb::Client::new(sdk);
        let fetcher = SlackFileFetcher::new(&secret.bot_token, config.file_hosts.clone())?;
        // A rotated or reinstalled token is re-read when Slack refuses the one loaded here.
        let slack = Arc::new(
            SlackWebClient::new(&config.slack_api_base, secret.bot_token)?
                .with_token_source(secrets, TOKEN_REFRESH_INTERVAL),
        );
        let conversations = || DynamoDbConversations::new(dynamodb.clone(), &config.conversations_table);
        let usage = Arc::new(DynamoDbUsageReader::new(dynamodb.clone(), &config.usage_table));
        Ok(Worker {
            agent: agent(config, agent_sdk),
            chat: slack.clone(),
            files: Arc::new(SlackFiles::new(fetcher, slack)),
            analytics: Arc::new(FirehoseAnalytics::new(aws_sdk_firehose::Client::new(sdk), &config.events_stream_name)),
            usage: Arc::new(SqsUsageSink::new(aws_sdk_sqs::Client::new(sdk), &config.usage_queue_url)),
            conversations: Arc::new(conversations()),
            feedback: Arc::new(FeedbackRecorder {
                store: Arc::new(conversations().with_feedback_rollup(&config.usage_table, &config.agent_id)),
                sink: config.feedback_stream_name.as_ref().map(|s| {
                    Arc::new(FirehoseFeedback::new(aws_sdk_firehose::Client::new(sdk), s)) as Arc<dyn FeedbackSink>
                }),
                settings: config.feedback.clone(),
                agent_id: config.agent_id.clone(),
                agent_alias_id: config.agent_alias_id.clone(),
            }),
            spend: usage.clone(),
            // The same reader: budgets, "my usage" and the Home tab read the rollups one way.
            home: Some(Arc::new(HomeSources { days: usage.clone(), usage })),
            prices: Arc::new(prices),
            metrics,
            settings: config.settings.clone(),
        })
    }
}

/// The agent adapter of the configured backend.
fn agent(config: &WorkerConfig, sdk: &SdkConfig) -> Arc<dyn AgentClient> {
    match &config.agent {
        AgentTarget::Classic => {
            Arc::new(BedrockAgent::new(shared::aws::agent::agent_client(sdk), &config.agent_id, &config.agent_alias_id))
        }
        AgentTarget::Harness { arn, qualifier, model_id } => Arc::new(AgentCoreHarness::new(
            shared::aws::agentcore::agentcore_client(sdk),
            arn,
            qualifier.clone(),
            model_id.clone(),
        )),
        AgentTarget::Runtime { arn, qualifier, model_id } => Arc::new(AgentCoreRuntime::new(
            shared::aws::agentcore::agentcore_client(sdk),
            arn,
            qualifier.clone(),
            model_id.clone(),
        )),
    }
}
