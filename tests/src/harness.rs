//! The emulators, started once per test binary, and a gateway (ingress + worker) wired to them
//! with real SDK clients, built per test on its own resources.

use std::sync::{Arc, Mutex, OnceLock};

use aws_config::SdkConfig;
use shared::domain::AgentBackend;
use shared::slack::files::FileHosts;
use shared::telemetry::Metrics;
use slack_gateway::ingress::{Ingress, IngressConfig};
use slack_gateway::worker::{AgentTarget, Worker, WorkerConfig, WorkerSettings};

use crate::fake_agent::FakeAgent;
use crate::fake_slack::FakeSlack;
use crate::moto::{sdk_config_for, workspace_root, Moto};
use crate::resources::GatewayResources;

/// Agent ids the tests configure.
pub const AGENT_ID: &str = "AGENT12345";
pub const AGENT_ALIAS_ID: &str = "ALIAS12345";
/// The AgentCore harness the harness backend invokes (scripts: events/harness).
pub const HARNESS_ARN: &str = "arn:aws:bedrock-agentcore:us-east-1:111122223333:harness/support-a1b2";
/// The AgentCore Runtime agent the runtime backend invokes (scripts: events/runtime).
pub const RUNTIME_ARN: &str = "arn:aws:bedrock-agentcore:us-east-1:111122223333:runtime/support_agent-a1b2c3d4e5";
/// The endpoint of both AgentCore targets.
pub const AGENTCORE_QUALIFIER: &str = "DEFAULT";
/// The model the AgentCore targets' usage is attributed to when an event names none (priced in
/// the embedded price table).
pub const AGENTCORE_MODEL_ID: &str = "us.anthropic.claude-sonnet-4-20250514-v1:0";

/// The worker's agent target for `backend`, against the scripted agent.
pub fn agent_target(backend: AgentBackend) -> AgentTarget {
    let (qualifier, model_id) = (Some(AGENTCORE_QUALIFIER.to_owned()), Some(AGENTCORE_MODEL_ID.to_owned()));
    match backend {
        AgentBackend::Classic => AgentTarget::Classic,
        AgentBackend::Harness => AgentTarget::Harness { arn: HARNESS_ARN.into(), qualifier, model_id },
        AgentBackend::Runtime => AgentTarget::Runtime { arn: RUNTIME_ARN.into(), qualifier, model_id },
    }
}

/// Emulators shared by every test of one binary.
pub struct Emulators {
    pub moto: Moto,
    pub slack: FakeSlack,
    pub agent: FakeAgent,
}

static EMULATORS: OnceLock<Emulators> = OnceLock::new();

/// Starts the emulators on first use (moto, fake Slack, the scripted agent of every backend:
/// events/agent, events/harness, events/runtime on one endpoint) and returns them.
pub fn emulators() -> &'static Emulators {
    EMULATORS.get_or_init(|| {
        let moto = Moto::start().unwrap_or_else(|e| panic!("starting moto: {e}"));
        let slack = FakeSlack::start().unwrap_or_else(|e| panic!("starting the fake Slack: {e}"));
        let agent = FakeAgent::start_all(&workspace_root().join("events"))
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
    /// Creates resources named after `prefix` and builds both handlers, the worker invoking the
    /// Classic agent.
    pub async fn new(prefix: &str) -> Gateway {
        Gateway::with_backend(prefix, AgentBackend::Classic).await
    }

    /// As [`Gateway::new`], the worker invoking the scripted agent of `backend` (Classic: the
    /// Bedrock agent AGENT_ID; AgentCore: [`HARNESS_ARN`] or [`RUNTIME_ARN`] at
    /// [`AGENTCORE_QUALIFIER`], usage attributed to [`AGENTCORE_MODEL_ID`]).
    pub async fn with_backend(prefix: &str, backend: AgentBackend) -> Gateway {
        let emu = emulators();
        let sdk = emu.moto.sdk_config();
        let resources =
            GatewayResources::create(&sdk, prefix).await.unwrap_or_else(|e| panic!("creating resources: {e:?}"));
        let (metrics, emf) = Metrics::capture("BedrockUsage");
        let ingress_config = IngressConfig {
            slack_secret_arn: resources.secret_arn.clone(),
            work_queue_url: resources.work_queue_url.clone(),
            dedup_table: resources.dedup_table.clone(),
            metrics_namespace: "BedrockUsage".into(),
            slack_api_base: emu.slack.api_base(),
            queued_status: None,
            feedback: slack_gateway::reactions::FeedbackSettings::default(),
        };
        let ingress = Ingress::from_config(&ingress_config, &sdk, metrics.clone())
            .await
            .unwrap_or_else(|e| panic!("ingress init: {e}"));
        let mut settings = WorkerSettings::new(AGENT_ID, AGENT_ALIAS_ID);
        settings.agent_backoff.base = std::time::Duration::from_millis(50);
        let worker_config = WorkerConfig {
            slack_secret_arn: resources.secret_arn.clone(),
            slack_api_base: emu.slack.api_base(),
            usage_queue_url: resources.usage_queue_url.clone(),
            events_stream_name: resources.stream.clone(),
            conversations_table: resources.conversations_table.clone(),
            usage_table: resources.usage_table.clone(),
            agent_id: AGENT_ID.into(),
            agent_alias_id: AGENT_ALIAS_ID.into(),
            agent: agent_target(backend),
            metrics_namespace: "BedrockUsage".into(),
            settings,
            feedback_stream_name: Some(resources.feedback_stream.clone()),
            feedback: slack_gateway::feedback::FeedbackSettings::default(),
            // The fake Slack serves users' files over plain http on loopback: listed explicitly.
            file_hosts: FileHosts::parse(&emu.slack.host()).unwrap_or_else(|e| panic!("file hosts: {e}")),
        };
        let agent_sdk = sdk_config_for(&emu.agent.endpoint());
        let worker =
            Worker::from_config(&worker_config, &sdk, &agent_sdk, shared::pricing::PriceTable::embedded(), metrics)
                .await
                .unwrap_or_else(|e| panic!("worker init: {e}"));
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
