//! The emulators, started once per test binary, and a gateway (ingress + worker) wired to them
//! with real SDK clients, built per test on its own resources.

use std::sync::{Arc, Mutex, OnceLock};

use aws_config::SdkConfig;
use shared::aws::agent::BedrockAgent;
use shared::aws::conversations::DynamoDbConversations;
use shared::aws::dedup::DynamoDbDedup;
use shared::aws::firehose::FirehoseAnalytics;
use shared::aws::secrets::JsonSecret;
use shared::aws::sqs::{SqsUsageSink, SqsWorkQueue};
use shared::aws::usage::DynamoDbUsageReader;
use shared::slack::client::SlackWebClient;
use shared::slack::files::{FileHosts, SlackFileFetcher, SlackFiles};
use shared::telemetry::Metrics;
use slack_gateway::ingress::Ingress;
use slack_gateway::worker::{Worker, WorkerSettings};

use crate::fake_agent::FakeAgent;
use crate::fake_slack::FakeSlack;
use crate::moto::{sdk_config_for, workspace_root, Moto};
use crate::resources::{GatewayResources, TEST_BOT_TOKEN};

/// Agent ids the tests configure.
pub const AGENT_ID: &str = "AGENT12345";
pub const AGENT_ALIAS_ID: &str = "ALIAS12345";

/// Emulators shared by every test of one binary.
pub struct Emulators {
    pub moto: Moto,
    pub slack: FakeSlack,
    pub agent: FakeAgent,
}

static EMULATORS: OnceLock<Emulators> = OnceLock::new();

/// Starts the emulators on first use (moto, fake Slack, scripted agent) and returns them.
pub fn emulators() -> &'static Emulators {
    EMULATORS.get_or_init(|| {
        let moto = Moto::start().unwrap_or_else(|e| panic!("starting moto: {e}"));
        let slack = FakeSlack::start().unwrap_or_else(|e| panic!("starting the fake Slack: {e}"));
        let agent = FakeAgent::start(&workspace_root().join("events/agent"))
            .unwrap_or_else(|e| panic!("starting the fake agent: {e}"));
        Emulators { moto, slack, agent }
    })
}

/// One test's gateway: its resources, the ingress and worker over real adapters, and the
/// captured EMF output of both.
pub struct Gateway {
    pub sdk: SdkConfig,
    pub resources: GatewayResources,
    pub ingress: Ingress,
    pub worker: Worker,
    pub emf: Arc<Mutex<Vec<u8>>>,
}

impl Gateway {
    /// Creates resources named after `prefix` and builds both handlers.
    pub async fn new(prefix: &str) -> Gateway {
        let emu = emulators();
        let sdk = emu.moto.sdk_config();
        let resources =
            GatewayResources::create(&sdk, prefix).await.unwrap_or_else(|e| panic!("creating resources: {e:?}"));
        let (metrics, emf) = Metrics::capture("BedrockUsage");
        let ingress = Ingress::new(
            Arc::new(JsonSecret::new(aws_sdk_secretsmanager::Client::new(&sdk), &resources.secret_arn)),
            Arc::new(DynamoDbDedup::new(aws_sdk_dynamodb::Client::new(&sdk), &resources.dedup_table)),
            Arc::new(SqsWorkQueue::new(aws_sdk_sqs::Client::new(&sdk), &resources.work_queue_url)),
            metrics.clone(),
        )
        .await
        .unwrap_or_else(|e| panic!("ingress init: {e}"));
        let agent_sdk = sdk_config_for(&emu.agent.endpoint());
        let mut settings = WorkerSettings::new(AGENT_ID, AGENT_ALIAS_ID);
        settings.agent_backoff.base = std::time::Duration::from_millis(50);
        let slack = Arc::new(
            SlackWebClient::new(&emu.slack.api_base(), TEST_BOT_TOKEN.to_string().into())
                .unwrap_or_else(|e| panic!("slack client: {e}")),
        );
        // The fake Slack serves users' files over plain http on loopback: listed explicitly.
        let file_hosts = FileHosts::parse(&emu.slack.host()).unwrap_or_else(|e| panic!("file hosts: {e}"));
        let fetcher = SlackFileFetcher::new(&TEST_BOT_TOKEN.to_string().into(), file_hosts)
            .unwrap_or_else(|e| panic!("file fetcher: {e}"));
        let worker = Worker {
            agent: Arc::new(BedrockAgent::new(shared::aws::agent::agent_client(&agent_sdk), AGENT_ID, AGENT_ALIAS_ID)),
            chat: slack.clone(),
            files: Arc::new(SlackFiles::new(fetcher, slack)),
            analytics: Arc::new(FirehoseAnalytics::new(aws_sdk_firehose::Client::new(&sdk), &resources.stream)),
            usage: Arc::new(SqsUsageSink::new(aws_sdk_sqs::Client::new(&sdk), &resources.usage_queue_url)),
            conversations: Arc::new(DynamoDbConversations::new(
                aws_sdk_dynamodb::Client::new(&sdk),
                &resources.conversations_table,
            )),
            spend: Arc::new(DynamoDbUsageReader::new(aws_sdk_dynamodb::Client::new(&sdk), &resources.usage_table)),
            prices: Arc::new(shared::pricing::PriceTable::embedded()),
            metrics,
            settings,
            feedback: Arc::new(slack_gateway::feedback::FeedbackRecorder {
                store: Arc::new(
                    DynamoDbConversations::new(aws_sdk_dynamodb::Client::new(&sdk), &resources.conversations_table)
                        .with_feedback_rollup(&resources.usage_table, AGENT_ID),
                ),
                sink: Some(Arc::new(shared::aws::firehose::FirehoseFeedback::new(
                    aws_sdk_firehose::Client::new(&sdk),
                    &resources.feedback_stream,
                ))),
                settings: slack_gateway::feedback::FeedbackSettings::default(),
                agent_id: AGENT_ID.into(),
                agent_alias_id: AGENT_ALIAS_ID.into(),
            }),
        };
        Gateway { sdk, resources, ingress, worker, emf }
    }

    /// The EMF documents emitted so far.
    pub fn metrics(&self) -> Vec<serde_json::Value> {
        shared::telemetry::parse_emf(&self.emf.lock().map(|b| b.clone()).unwrap_or_default())
    }

    /// Sum of a metric over the EMF documents, optionally restricted to one dimension value.
    pub fn metric_sum(&self, name: &str, dimension: Option<(&str, &str)>) -> f64 {
        self.metrics()
            .iter()
            .filter(|d| dimension.is_none_or(|(k, v)| d[k] == v))
            .filter_map(|d| d[name].as_f64())
            .sum()
    }

    /// Moves everything on the work queue through the worker, as the SQS event source would.
    pub async fn run_worker(&self) -> aws_lambda_events::event::sqs::SqsBatchResponse {
        let records = crate::resources::drain_queue(&self.sdk, &self.resources.work_queue_url)
            .await
            .unwrap_or_else(|e| panic!("draining the work queue: {e:?}"));
        let mut event = aws_lambda_events::event::sqs::SqsEvent::default();
        event.records = records;
        self.worker.handle_batch(event, None).await
    }
}
