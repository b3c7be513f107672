//! One mention through the real `slack-ingress` and `slack-worker` binaries, each running as a
//! process under a local Lambda Runtime API, against the shared emulators. Used by the binaries
//! test (debug build) and the footprint bench (release build).

use std::path::PathBuf;
use std::time::Duration;

use aws_lambda_events::event::sqs::SqsMessage;
use serde_json::{json, Value};
use shared::domain::AgentBackend;

use crate::function_process::{binary_path, FunctionProcess};
use crate::harness::{emulators, AGENT_ALIAS_ID, AGENT_ID};
use crate::lambda_runtime_api::Outcome;
use crate::resources::{drain_queue, GatewayResources, TEST_SIGNING_SECRET};
use crate::slack_events::{body_of, fixture, with_body};

/// What one round trip produced.
pub struct RoundTrip {
    pub resources: GatewayResources,
    pub ingress_response: Result<Outcome, String>,
    pub worker_response: Result<Outcome, String>,
    pub ingress_output: String,
    pub worker_output: String,
    pub ingress_peak_rss_kib: Option<u64>,
    pub worker_peak_rss_kib: Option<u64>,
    /// The worker's init: process start to its first request for work.
    pub worker_init: Option<Duration>,
    pub queued: usize,
}

/// The binary for `profile`, or a clear panic telling how to build it.
pub fn binary(name: &str, profile: &str) -> PathBuf {
    let path = binary_path(name, profile);
    let flag = if profile == "release" { " --release" } else { "" };
    assert!(path.exists(), "{} is missing: run `cargo build{flag} --workspace --bins` first", path.display());
    path
}

/// `(name, value)` pairs as owned strings, for [`FunctionProcess::start`].
pub fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

/// Sends a signed app_mention from `channel` through both binaries.
pub async fn round_trip(profile: &str, prefix: &str, channel: &str) -> RoundTrip {
    round_trip_with(profile, prefix, channel, &Trip::default()).await
}

/// What a round trip varies.
#[derive(Debug, Clone)]
pub struct Trip {
    /// The mention's text (default: the fixture's question).
    pub text: Option<String>,
    /// The worker's invocation timeout, which is also the deadline its runtime reports.
    pub worker_timeout: Duration,
    /// The agent the worker invokes (AGENT_BACKEND), each on the fake agent's endpoint.
    pub backend: AgentBackend,
}

impl Default for Trip {
    fn default() -> Self {
        Trip { text: None, worker_timeout: Duration::from_secs(60), backend: AgentBackend::Classic }
    }
}

/// The worker's env naming the agent of `backend` as the template sets it (the local stack's
/// [`LocalAgent`](crate::local_stack::LocalAgent)), AgentCore on the fake agent's endpoint too.
pub fn backend_env(backend: AgentBackend) -> Vec<(String, String)> {
    let mut out = crate::local_stack::LocalAgent::new(backend).worker_env();
    out.extend(env(&[("AWS_ENDPOINT_URL_BEDROCK_AGENTCORE", &emulators().agent.endpoint())]));
    out
}

/// [`round_trip`], with the text and the worker's deadline of `trip`.
pub async fn round_trip_with(profile: &str, prefix: &str, channel: &str, trip: &Trip) -> RoundTrip {
    let emu = emulators();
    let sdk = emu.moto.sdk_config();
    let res = GatewayResources::create(&sdk, prefix).await.unwrap_or_else(|e| panic!("resources: {e:?}"));
    let (ingress_response, ingress, records) =
        queue_mention(profile, prefix, channel, trip.text.as_deref(), &res).await;
    let queued = records.len();
    let mut sqs_event: Value = fixture("sqs/work_message");
    if let Some(r) = records.first() {
        sqs_event["Records"][0]["body"] = json!(r.body);
        sqs_event["Records"][0]["messageId"] = json!(r.message_id);
    }
    let mut worker_env = worker_env(&emu.moto.endpoint(), &res);
    worker_env.extend(env(&[("USER_DAILY_BUDGET_USD", "5")]));
    // On AgentCore, AGENT_ID / AGENT_ALIAS_ID default to the ARN's resource and the endpoint.
    worker_env.retain(|(k, _)| k != "AGENT_ID" && k != "AGENT_ALIAS_ID");
    worker_env.extend(backend_env(trip.backend));
    let worker = FunctionProcess::start(
        &binary("slack-worker", profile),
        &worker_env,
        256,
        &std::env::temp_dir().join(format!("{prefix}-worker.log")),
    )
    .unwrap_or_else(|e| panic!("start worker: {e}"));
    let timeout = trip.worker_timeout;
    let (worker_response, worker) = blocking(move || (worker.invoke(sqs_event, timeout), worker)).await;

    RoundTrip {
        resources: res,
        ingress_response,
        worker_response,
        ingress_output: ingress.output(),
        worker_output: worker.output(),
        ingress_peak_rss_kib: ingress.peak_rss_kib(),
        worker_peak_rss_kib: worker.peak_rss_kib(),
        worker_init: worker.init_time(),
        queued,
    }
}

/// Sends a signed app_mention from `channel` (event id `Ev{prefix}`, the fixture's question
/// unless `text` is given) through the ingress binary, against moto and the fake Slack; returns
/// its answer, the process and what it queued (drained from the work queue).
pub async fn queue_mention(
    profile: &str,
    prefix: &str,
    channel: &str,
    text: Option<&str>,
    res: &GatewayResources,
) -> (Result<Outcome, String>, FunctionProcess, Vec<SqsMessage>) {
    let emu = emulators();
    let moto = emu.moto.endpoint();
    let ingress_env = env(&[
        ("AWS_ENDPOINT_URL", &moto),
        ("SLACK_SECRET_ARN", &res.secret_arn),
        ("WORK_QUEUE_URL", &res.work_queue_url),
        ("DEDUP_TABLE", &res.dedup_table),
        // The queued-turn status goes to the fake Slack too.
        ("SLACK_API_BASE", &emu.slack.api_base()),
    ]);
    let ingress = FunctionProcess::start(
        &binary("slack-ingress", profile),
        &ingress_env,
        128,
        &std::env::temp_dir().join(format!("{prefix}-ingress.log")),
    )
    .unwrap_or_else(|e| panic!("start ingress: {e}"));
    let event = fixture("slack/app_mention");
    let mut body = body_of(&event);
    body["event_id"] = json!(format!("Ev{prefix}"));
    body["event"]["channel"] = json!(channel);
    if let Some(text) = text {
        body["event"]["text"] = json!(text);
    }
    let event = with_body(event, &body, TEST_SIGNING_SECRET, chrono::Utc::now().timestamp());
    let (response, ingress) = blocking(move || (ingress.invoke(event, Duration::from_secs(30)), ingress)).await;
    let records = drain_queue(&emu.moto.sdk_config(), &res.work_queue_url).await.unwrap_or_default();
    (response, ingress, records)
}

/// The worker's env for `res`: AWS calls to `aws_endpoint` (moto, or a fault proxy in front of
/// it), the agent and Slack to the shared fakes.
pub fn worker_env(aws_endpoint: &str, res: &GatewayResources) -> Vec<(String, String)> {
    let emu = emulators();
    env(&[
        ("AWS_ENDPOINT_URL", aws_endpoint),
        ("AWS_ENDPOINT_URL_BEDROCK_AGENT_RUNTIME", &emu.agent.endpoint()),
        ("SLACK_SECRET_ARN", &res.secret_arn),
        ("SLACK_API_BASE", &emu.slack.api_base()),
        ("USAGE_QUEUE_URL", &res.usage_queue_url),
        ("EVENTS_STREAM_NAME", &res.stream),
        ("CONVERSATIONS_TABLE", &res.conversations_table),
        ("USAGE_TABLE", &res.usage_table),
        ("AGENT_ID", AGENT_ID),
        ("AGENT_ALIAS_ID", AGENT_ALIAS_ID),
    ])
}

/// Runs `f` (a blocking invocation) off the async runtime.
pub async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    match tokio::task::spawn_blocking(f).await {
        Ok(v) => v,
        Err(e) => panic!("blocking task failed: {e}"),
    }
}
