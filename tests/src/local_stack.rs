//! The local stack: the whole product running on this machine without AWS or Slack. moto with
//! the template's resources, the fake Slack, the scripted agent (Classic, or an AgentCore harness
//! or runtime: the worker's AGENT_BACKEND), the fake Jira, a CloudWatch
//! endpoint that records PutMetricData, and every function binary under its own local Lambda
//! Runtime API. Slack's requests reach slack-ingress over HTTP; pumps play the SQS event source
//! mappings (work queue -> slack-worker, usage queue -> token-logging, with the queues' redrive
//! policies); the stack plays Bedrock's side of the action group and EventBridge's schedules.
//! It also observes what AWS itself would publish (Lambda Errors, SQS queue age and dead-letter
//! depth) so the alarms can be judged afterwards (crate::local_alarms).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};
use shared::domain::AgentBackend;

use crate::fake_jira::{FakeIssue, FakeJira, API_TOKEN as JIRA_TOKEN, EMAIL as JIRA_EMAIL};
use crate::function_process::FunctionProcess;
use crate::gateway_binaries::binary;
use crate::harness::{
    emulators, AGENTCORE_MODEL_ID, AGENTCORE_QUALIFIER, AGENT_ALIAS_ID, AGENT_ID, HARNESS_ARN, RUNTIME_ARN,
};
use crate::lambda_runtime_api::Outcome;
use crate::local_alarms::Datapoint;
use crate::moto::workspace_root;
use crate::resources::{drain_queue, hand_written_drift, GatewayResources, TemplateResources};

/// Prints a progress line with the time since start.
pub struct Progress(Instant);

impl Progress {
    pub fn new() -> Self {
        Progress(Instant::now())
    }

    /// `[  12.3s] what`
    pub fn say(&self, what: &str) {
        println!("[{:6.1}s] {what}", self.0.elapsed().as_secs_f64());
    }

    /// `[  12.3s] what (took 1.2s)`, for a step that started at `since`.
    pub fn done(&self, what: &str, since: Instant) {
        self.say(&format!("{what} (took {:.1}s)", since.elapsed().as_secs_f64()));
    }
}

impl Default for Progress {
    fn default() -> Self {
        Self::new()
    }
}

/// One function binary under its local Runtime API, with what AWS/Lambda would count of it.
pub struct LocalFunction {
    /// The binary's name.
    pub name: &'static str,
    /// The template's logical id (its alarms name it as `<LogicalId>`).
    pub logical_id: &'static str,
    process: FunctionProcess,
    /// (time, failed) of every invocation: the Errors metric.
    invocations: Mutex<Vec<(i64, bool)>>,
}

impl LocalFunction {
    /// Invokes the function and records whether it failed (an error or a timeout).
    pub fn invoke(&self, event: Value, timeout: Duration) -> Result<Outcome, String> {
        let out = self.process.invoke(event, timeout);
        let failed = !matches!(out, Ok(Outcome::Response(_)));
        if let Ok(mut v) = self.invocations.lock() {
            v.push((chrono::Utc::now().timestamp_millis(), failed));
        }
        out
    }

    /// Invokes from async code without blocking the runtime.
    pub async fn call(self: &Arc<Self>, event: Value, timeout: Duration) -> Result<Outcome, String> {
        let f = Arc::clone(self);
        tokio::task::spawn_blocking(move || f.invoke(event, timeout)).await.map_err(|e| e.to_string())?
    }

    /// As [`LocalFunction::call`], with a Lambda client context (`{"custom": {...}}`), as an
    /// AgentCore Gateway invokes its Lambda targets.
    pub async fn call_with_client_context(
        self: &Arc<Self>,
        event: Value,
        client_context: Value,
        timeout: Duration,
    ) -> Result<Outcome, String> {
        let f = Arc::clone(self);
        tokio::task::spawn_blocking(move || {
            let out = f.process.invoke_with_client_context(event, &client_context, timeout);
            let failed = !matches!(out, Ok(Outcome::Response(_)));
            if let Ok(mut v) = f.invocations.lock() {
                v.push((chrono::Utc::now().timestamp_millis(), failed));
            }
            out
        })
        .await
        .map_err(|e| e.to_string())?
    }

    /// What the function printed (JSON logs and EMF lines).
    pub fn output(&self) -> String {
        self.process.output()
    }

    /// (invocations, errors) so far.
    pub fn counts(&self) -> (usize, usize) {
        let v = self.invocations.lock().map(|v| v.clone()).unwrap_or_default();
        (v.len(), v.iter().filter(|(_, failed)| *failed).count())
    }

    /// The AWS/Lambda Errors datapoints of this function.
    pub fn error_datapoints(&self) -> Vec<Datapoint> {
        let dims = format!("<{}>", self.logical_id);
        self.invocations
            .lock()
            .map(|v| v.clone())
            .unwrap_or_default()
            .into_iter()
            .map(|(at, failed)| {
                Datapoint::new("AWS/Lambda", "Errors", &[("FunctionName", &dims)], at, if failed { 1.0 } else { 0.0 })
            })
            .collect()
    }
}

/// The agent the worker of a local stack invokes: its backend, the env that names it, and the
/// agent id and alias the ledger records for it.
#[derive(Debug, Clone)]
pub struct LocalAgent {
    pub backend: AgentBackend,
    /// AGENT_ID as the ledger records it: the Classic agent, or the AgentCore resource's name.
    pub agent_id: String,
    /// AGENT_ALIAS_ID as the ledger records it: the alias, or the AgentCore endpoint.
    pub agent_alias_id: String,
    /// The ARN invoked (AgentCore only).
    pub arn: Option<&'static str>,
    /// The model the AgentCore usage is attributed to when an event names none.
    pub model_id: Option<&'static str>,
}

impl LocalAgent {
    /// The scripted agent of `backend`: Classic AGENT_ID / AGENT_ALIAS_ID, or the harness and
    /// runtime ARNs the tests use, at [`AGENTCORE_QUALIFIER`], usage priced as
    /// [`AGENTCORE_MODEL_ID`] (in the embedded price table).
    pub fn new(backend: AgentBackend) -> LocalAgent {
        let arn = match backend {
            AgentBackend::Classic => None,
            AgentBackend::Harness => Some(HARNESS_ARN),
            AgentBackend::Runtime => Some(RUNTIME_ARN),
        };
        match arn {
            None => LocalAgent {
                backend,
                agent_id: AGENT_ID.into(),
                agent_alias_id: AGENT_ALIAS_ID.into(),
                arn: None,
                model_id: None,
            },
            // The worker's own defaults when AGENT_ID is unset (as the template leaves it for
            // AgentCore): the resource's name in its ARN, and the endpoint.
            Some(arn) => LocalAgent {
                backend,
                agent_id: shared::aws::agentcore::arn_resource_id(arn).unwrap_or(arn).into(),
                agent_alias_id: AGENTCORE_QUALIFIER.into(),
                arn: Some(arn),
                model_id: Some(AGENTCORE_MODEL_ID),
            },
        }
    }

    /// The worker's env naming this agent, as template.yaml sets it for the backend (AGENT_ID
    /// and AGENT_ALIAS_ID for Classic only).
    pub fn worker_env(&self) -> Vec<(String, String)> {
        let pairs: Vec<(&str, &str)> = match (self.backend, self.arn, self.model_id) {
            (AgentBackend::Harness, Some(arn), Some(model)) => vec![
                ("AGENT_BACKEND", "harness"),
                ("HARNESS_ARN", arn),
                ("HARNESS_QUALIFIER", AGENTCORE_QUALIFIER),
                ("HARNESS_MODEL_ID", model),
            ],
            (AgentBackend::Runtime, Some(arn), Some(model)) => vec![
                ("AGENT_BACKEND", "runtime"),
                ("AGENT_RUNTIME_ARN", arn),
                ("AGENT_RUNTIME_QUALIFIER", AGENTCORE_QUALIFIER),
                ("AGENT_RUNTIME_MODEL_ID", model),
            ],
            _ => vec![("AGENT_BACKEND", "classic"), ("AGENT_ID", AGENT_ID), ("AGENT_ALIAS_ID", AGENT_ALIAS_ID)],
        };
        pairs.into_iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    /// One line for the story: which agent answers.
    pub fn describe(&self) -> String {
        match (self.arn, self.model_id) {
            (Some(arn), Some(model)) => format!(
                "{} backend: {} {arn} at {}, usage priced as {model}",
                self.backend,
                if self.backend == AgentBackend::Harness { "InvokeHarness" } else { "InvokeAgentRuntime" },
                self.agent_alias_id
            ),
            _ => format!("classic backend: InvokeAgent, agent {} alias {}", self.agent_id, self.agent_alias_id),
        }
    }
}

/// The running stack.
pub struct LocalStack {
    /// The agent the worker invokes.
    pub agent: LocalAgent,
    pub resources: GatewayResources,
    pub template_resources: TemplateResources,
    pub ingress: Arc<LocalFunction>,
    pub worker: Arc<LocalFunction>,
    pub token_logging: Arc<LocalFunction>,
    pub action_group: Arc<LocalFunction>,
    pub cost_analyzer: Arc<LocalFunction>,
    pub metrics_publisher: Arc<LocalFunction>,
    pub jira: FakeJira,
    /// The Slack channel the daily cost report goes to.
    pub report_channel: String,
    /// The Slack request URL (the Function URL stand-in).
    pub url: String,
    /// What AWS would publish itself (queue ages, dead-letter depth) as observed by the pumps.
    observed: Arc<Mutex<Vec<Datapoint>>>,
    /// PutMetricData request bodies the recording CloudWatch endpoint received.
    cloudwatch: Arc<Mutex<Vec<Vec<u8>>>>,
    busy: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
}

/// The largest batch a local pump delivers (see the usage pump).
const LOCAL_BATCH_CAP: usize = 5;
/// How long a failed item first stays invisible before it is delivered again: the template's
/// visibility timeouts (minutes) scaled down to the local day. It doubles with every receive, so
/// the redeliveries of a standard queue span a minute: token-logging's circuit breaker (open for
/// 60 s) has closed before the queue would give up on an item, as in AWS.
const REDELIVERY_DELAY_S: i32 = 4;

/// The BatchSize of each SQS event source in template.yaml, by queue logical id.
fn event_source_batch_sizes() -> Result<HashMap<String, usize>, String> {
    let template = crate::template::Template::load(&workspace_root().join("template.yaml"))?;
    let mut out = HashMap::new();
    for (_, f) in template.resources_of_type("AWS::Serverless::Function") {
        let events = f.get("Properties").and_then(|p| p.get("Events")).and_then(serde_yaml::Value::as_mapping);
        for (_, e) in events.into_iter().flatten() {
            if e.get("Type").and_then(serde_yaml::Value::as_str) != Some("SQS") {
                continue;
            }
            let Some(props) = e.get("Properties") else { continue };
            let queue = props.get("Queue").map(|q| template.resolve(q)).transpose()?.unwrap_or_default();
            let id = queue.trim_start_matches('<').trim_end_matches(".Arn>").to_string();
            let size = props.get("BatchSize").map(|b| template.resolve(b)).transpose()?;
            out.insert(id, size.and_then(|b| b.parse().ok()).unwrap_or(10));
        }
    }
    Ok(out)
}

/// Where the daily cost report is posted.
pub const REPORT_CHANNEL: &str = "CCOSTREPORT";

impl LocalStack {
    /// Starts everything; `port` 0 picks a free port for the Slack endpoint. `metrics_level`
    /// (`essential` or `full`) is what the template's MonitoringLevel would set as METRICS_LEVEL;
    /// the worker invokes the scripted agent of `backend`.
    pub async fn start(
        progress: &Progress,
        port: u16,
        daily_budget_usd: f64,
        metrics_level: &str,
        backend: AgentBackend,
    ) -> Result<LocalStack, String> {
        let agent = LocalAgent::new(backend);
        let t = Instant::now();
        let emu = emulators();
        progress.done(
            &format!(
                "moto {} · fake Slack {} · scripted agent {} ({} {backend} scripts)",
                emu.moto.endpoint(),
                emu.slack.api_base(),
                emu.agent.endpoint(),
                match backend {
                    AgentBackend::Classic => emu.agent.script_names().len(),
                    _ => emu.agent.agentcore_script_names(backend).len(),
                }
            ),
            t,
        );
        let t = Instant::now();
        let jira = FakeJira::start().map_err(|e| format!("starting the fake Jira: {e}"))?;
        seed_jira(&jira);
        let cloudwatch: Arc<Mutex<Vec<Vec<u8>>>> = Arc::default();
        let cloudwatch_url = recording_cloudwatch(Arc::clone(&cloudwatch))?;
        progress.done(
            &format!("fake Jira {} (6 ITSUP issues) · recording CloudWatch endpoint {cloudwatch_url}", jira.base_url()),
            t,
        );

        let t = Instant::now();
        let sdk = emu.moto.sdk_config();
        let prefix = format!("local{}", std::process::id());
        let jira_secret = json!({"base_url": jira.base_url(), "email": JIRA_EMAIL, "api_token": JIRA_TOKEN});
        let template_resources =
            TemplateResources::create(&sdk, &prefix, &workspace_root().join("template.yaml"), &jira_secret)
                .await
                .map_err(|e| format!("creating the template's resources: {e:?}"))?;
        for line in &template_resources.created {
            println!("           {line}");
        }
        progress.done("created the template's tables, queues, bucket, Firehose streams and secrets in moto", t);
        let t = Instant::now();
        let hand = GatewayResources::create(&sdk, &format!("{prefix}-tests"))
            .await
            .map_err(|e| format!("creating the tests' resources: {e:?}"))?;
        let drift = hand_written_drift(&sdk, &hand, &template_resources).await.map_err(|e| format!("{e:?}"))?;
        if !drift.is_empty() {
            return Err(format!(
                "the tests' hand-written resources drifted from template.yaml:\n  {}",
                drift.join("\n  ")
            ));
        }
        progress.done("the tests' hand-written tables and queues match template.yaml", t);
        let resources = template_resources.gateway.clone();

        let t = Instant::now();
        let logs = run_logs_dir().map_err(|e| format!("creating the log directory: {e}"))?;
        let moto = emu.moto.endpoint();
        let budget = daily_budget_usd.to_string();
        let table = |id: &str| template_resources.tables.get(id).cloned().unwrap_or_default();
        let start = |name: &'static str, logical_id: &'static str, memory: u32, env: &[(&str, &str)]| {
            let mut pairs: Vec<(String, String)> = vec![
                ("AWS_ENDPOINT_URL".into(), moto.clone()),
                ("METRICS_NAMESPACE".into(), "BedrockUsage".into()),
                ("METRICS_LEVEL".into(), metrics_level.into()),
            ];
            pairs.extend(env.iter().map(|(k, v)| (k.to_string(), v.to_string())));
            let process =
                FunctionProcess::start(&binary(name, "debug"), &pairs, memory, &logs.join(format!("{name}.log")))
                    .map_err(|e| format!("starting {name}: {e}"))?;
            Ok::<_, String>(Arc::new(LocalFunction { name, logical_id, process, invocations: Mutex::default() }))
        };
        let slack_api = emu.slack.api_base();
        let ingress = start(
            "slack-ingress",
            "SlackIngressFunction",
            128,
            &[
                ("SLACK_SECRET_ARN", &resources.secret_arn),
                ("WORK_QUEUE_URL", &resources.work_queue_url),
                ("DEDUP_TABLE", &resources.dedup_table),
                // The queued-turn status goes to the fake Slack too.
                ("SLACK_API_BASE", &slack_api),
                // Only feedback reactions are queued (the template's defaults, as the worker's).
                ("FEEDBACK_POSITIVE_REACTIONS", "+1,thumbsup"),
                ("FEEDBACK_NEGATIVE_REACTIONS", "-1,thumbsdown"),
            ],
        )?;
        let agent_endpoint = emu.agent.endpoint();
        let agent_env = agent.worker_env();
        let mut worker_env: Vec<(&str, &str)> = vec![
            ("SLACK_SECRET_ARN", &resources.secret_arn),
            ("SLACK_API_BASE", &slack_api),
            ("USAGE_QUEUE_URL", &resources.usage_queue_url),
            ("EVENTS_STREAM_NAME", &resources.stream),
            ("FEEDBACK_STREAM_NAME", &resources.feedback_stream),
            ("FEEDBACK_POSITIVE_REACTIONS", "+1,thumbsup"),
            ("FEEDBACK_NEGATIVE_REACTIONS", "-1,thumbsdown"),
            ("CONVERSATIONS_TABLE", &resources.conversations_table),
            ("USAGE_TABLE", &resources.usage_table),
            ("USER_DAILY_BUDGET_USD", &budget),
            // Both agent services point at the scripted agent, whichever the backend: a call to
            // the wrong one is recorded there (and the day reports it) instead of leaving the
            // machine.
            ("AWS_ENDPOINT_URL_BEDROCK_AGENT_RUNTIME", &agent_endpoint),
            // aws-sdk-bedrockagentcore's per-service override (service id "Bedrock AgentCore").
            ("AWS_ENDPOINT_URL_BEDROCK_AGENTCORE", &agent_endpoint),
        ];
        worker_env.extend(agent_env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        let worker = start("slack-worker", "SlackWorkerFunction", 256, &worker_env)?;
        let token_logging =
            start("token-logging", "TokenLoggingFunction", 256, &[("USAGE_TABLE", &resources.usage_table)])?;
        let action_group = start(
            "action-group",
            "ActionGroupFunction",
            128,
            &[
                ("JIRA_SECRET_ARN", &template_resources.jira_secret_arn),
                ("USAGE_TABLE", &resources.usage_table),
                ("JIRA_PROJECTS", "ITSUP"),
            ],
        )?;
        let agent_names = json!({ agent.agent_id.as_str(): "IT helpdesk" }).to_string();
        let audit_table = table("AdminAuditTable");
        let cost_analyzer = start(
            "cost-analyzer",
            "CostAnalyzerFunction",
            512,
            &[
                ("USAGE_TABLE", &resources.usage_table),
                ("CONVERSATIONS_TABLE", &resources.conversations_table),
                ("AUDIT_TABLE", &audit_table),
                ("ANALYTICS_BUCKET", &resources.bucket),
                ("ATHENA_WORKGROUP", "primary"),
                ("GLUE_DATABASE", "local"),
                ("REPORT_CHANNEL_ID", REPORT_CHANNEL),
                ("SLACK_SECRET_ARN", &resources.secret_arn),
                ("SLACK_API_BASE", &slack_api),
                ("AGENT_NAMES", &agent_names),
            ],
        )?;
        let metrics_publisher = start(
            "metrics-publisher",
            "MetricsPublisherFunction",
            128,
            &[
                ("AWS_ENDPOINT_URL_CLOUDWATCH", &cloudwatch_url),
                ("CONVERSATIONS_TABLE", &resources.conversations_table),
                ("EVENTS_STREAM_NAME", &resources.stream),
                ("USAGE_QUEUE_URL", &resources.usage_queue_url),
            ],
        )?;
        progress.done(
            &format!(
                "6 function binaries running under local Lambda Runtime APIs, METRICS_LEVEL={metrics_level}, the worker on the {} (logs in {})",
                agent.describe(),
                logs.strip_prefix(workspace_root()).unwrap_or(&logs).display()
            ),
            t,
        );

        let listener =
            tokio::net::TcpListener::bind(("127.0.0.1", port)).await.map_err(|e| format!("binding :{port}: {e}"))?;
        let addr: SocketAddr = listener.local_addr().map_err(|e| e.to_string())?;
        let app = axum::Router::new().fallback(front_door).with_state(Arc::clone(&ingress));
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        let url = format!("http://{addr}/slack/events");
        progress.say(&format!("Slack request URL (Function URL stand-in): {url}"));

        let busy = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let observed: Arc<Mutex<Vec<Datapoint>>> = Arc::default();
        let batch_sizes = event_source_batch_sizes()?;
        for (queue, dlq, function) in [
            ("WorkQueue", "WorkDeadLetterQueue", Arc::clone(&worker)),
            ("UsageQueue", "UsageDeadLetterQueue", Arc::clone(&token_logging)),
        ] {
            let template_batch = batch_sizes.get(queue).copied().unwrap_or(10);
            let url_of = |id: &str| {
                template_resources.queues.get(id).cloned().ok_or_else(|| format!("template.yaml has no {id}"))
            };
            let pump = Pump {
                sdk: sdk.clone(),
                queue: queue.into(),
                url: url_of(queue)?,
                dlq: dlq.into(),
                dlq_url: url_of(dlq)?,
                function,
                // moto copies the whole table on every TransactWriteItems, so the 100-record
                // batches of the template make token-logging's transactions slow enough to time
                // out there; 5 keeps them quick and still exercises batching.
                batch: template_batch.min(LOCAL_BATCH_CAP),
                busy: Arc::clone(&busy),
                stop: Arc::clone(&stop),
                observed: Arc::clone(&observed),
            };
            tokio::spawn(pump.run());
        }
        progress.say(&format!(
            "SQS pumps: WorkQueue -> slack-worker (batches of {}), UsageQueue -> token-logging (batches of {}, template {})",
            batch_sizes.get("WorkQueue").copied().unwrap_or(10).min(LOCAL_BATCH_CAP),
            batch_sizes.get("UsageQueue").copied().unwrap_or(10).min(LOCAL_BATCH_CAP),
            batch_sizes.get("UsageQueue").copied().unwrap_or(10),
        ));
        Ok(LocalStack {
            agent,
            resources,
            template_resources,
            ingress,
            worker,
            token_logging,
            action_group,
            cost_analyzer,
            metrics_publisher,
            jira,
            report_channel: REPORT_CHANNEL.into(),
            url,
            observed,
            cloudwatch,
            busy,
            stop,
        })
    }

    /// Every function, in flow order.
    pub fn functions(&self) -> Vec<&Arc<LocalFunction>> {
        vec![
            &self.ingress,
            &self.worker,
            &self.token_logging,
            &self.action_group,
            &self.cost_analyzer,
            &self.metrics_publisher,
        ]
    }

    /// Waits until both queues are empty and their consumers idle (at most `timeout`).
    pub async fn settle(&self, timeout: Duration) -> bool {
        let sqs = aws_sdk_sqs::Client::new(&emulators().moto.sdk_config());
        let started = Instant::now();
        let mut quiet_since: Option<Instant> = None;
        while started.elapsed() < timeout {
            let mut pending = 0;
            for url in [&self.resources.work_queue_url, &self.resources.usage_queue_url] {
                let attrs = sqs
                    .get_queue_attributes()
                    .queue_url(url)
                    .attribute_names(aws_sdk_sqs::types::QueueAttributeName::All)
                    .send()
                    .await
                    .ok()
                    .and_then(|o| o.attributes)
                    .unwrap_or_default();
                let count = |k: aws_sdk_sqs::types::QueueAttributeName| {
                    attrs.get(&k).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0)
                };
                pending += count(aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages)
                    + count(aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
                    + count(aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessagesDelayed);
            }
            if pending == 0 && self.busy.load(Ordering::SeqCst) == 0 {
                let since = *quiet_since.get_or_insert_with(Instant::now);
                if since.elapsed() > Duration::from_millis(1200) {
                    return true;
                }
            } else {
                quiet_since = None;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        false
    }

    /// Every datapoint of the run: the functions' EMF lines, metrics-publisher's PutMetricData,
    /// the Lambda Errors and the SQS figures the stack observed.
    pub fn datapoints(&self) -> Vec<Datapoint> {
        let mut points = Vec::new();
        for f in self.functions() {
            points.extend(crate::local_alarms::emf_datapoints(&f.output()));
            points.extend(f.error_datapoints());
        }
        points.extend(self.published_metrics());
        points.extend(self.observed.lock().map(|o| o.clone()).unwrap_or_default());
        points
    }

    /// The datapoints metrics-publisher sent with PutMetricData, decoded from the CBOR bodies.
    pub fn published_metrics(&self) -> Vec<Datapoint> {
        let mut points = Vec::new();
        for body in self.cloudwatch.lock().map(|b| b.clone()).unwrap_or_default() {
            match crate::local_alarms::put_metric_data_datapoints(&body) {
                Ok(p) => points.extend(p),
                Err(e) => println!("  ! a PutMetricData body could not be read: {e}"),
            }
        }
        points
    }

    /// How many PutMetricData calls the recording CloudWatch received.
    pub fn put_metric_data_calls(&self) -> usize {
        self.cloudwatch.lock().map(|b| b.len()).unwrap_or_default()
    }

    /// Stops the pumps (the processes stop when the stack is dropped).
    pub fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// `target/local-stack/logs-PID/` for this run's function logs; the directories of runs that
/// have ended are removed (runs may overlap, e.g. a developer's and scripts/test).
fn run_logs_dir() -> std::io::Result<std::path::PathBuf> {
    let root = workspace_root().join("target/local-stack");
    std::fs::create_dir_all(&root)?;
    for entry in std::fs::read_dir(&root)?.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Some(pid) = name.strip_prefix("logs-") {
            if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    }
    let dir = root.join(format!("logs-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// The tickets the action group finds (the same ITSUP issues the action-group tests use).
fn seed_jira(jira: &FakeJira) {
    for (key, summary, status, assignee, updated) in [
        ("ITSUP-4182", "VPN drops every 30 minutes on macOS 15", "In Progress", Some("Dana Whitfield"), "2025-03-10"),
        ("ITSUP-4201", "Staging VPN disconnects during large uploads", "Open", None, "2025-03-11"),
        ("ITSUP-4150", "VPN client disconnects after sleep", "Done", Some("Sam Ortiz"), "2025-02-01"),
        ("ITSUP-4099", "VPN split tunnel for the new office", "To Do", None, "2025-01-20"),
        ("ITSUP-4060", "Laptop fan noise", "Open", None, "2025-03-12"),
        ("ITSUP-3990", "VPN MFA prompt loops", "Done", None, "2024-12-01"),
    ] {
        jira.add_issue(FakeIssue::new(key, summary, status, assignee, &format!("{updated}T10:00:00.000+0000")));
    }
}

/// A CloudWatch endpoint that accepts every PutMetricData (RPC-v2 CBOR, empty output) and keeps
/// the request bodies (gunzipped when the SDK compressed them). Returns its URL.
fn recording_cloudwatch(bodies: Arc<Mutex<Vec<Vec<u8>>>>) -> Result<String, String> {
    use std::io::{BufRead, BufReader, Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    std::thread::Builder::new()
        .name("recording-cloudwatch".into())
        .spawn(move || {
            for conn in listener.incoming().flatten() {
                let _ = conn.set_read_timeout(Some(Duration::from_secs(10)));
                let mut reader = BufReader::new(conn);
                let mut line = String::new();
                if reader.read_line(&mut line).is_err() {
                    continue;
                }
                let (mut len, mut gzip) = (0usize, false);
                loop {
                    let mut h = String::new();
                    if reader.read_line(&mut h).is_err() || h.trim().is_empty() {
                        break;
                    }
                    if let Some((k, v)) = h.split_once(':') {
                        if k.eq_ignore_ascii_case("content-length") {
                            len = v.trim().parse().unwrap_or(0);
                        }
                        if k.eq_ignore_ascii_case("content-encoding") && v.trim().eq_ignore_ascii_case("gzip") {
                            gzip = true;
                        }
                    }
                }
                let mut body = vec![0u8; len.min(4 << 20)];
                if reader.read_exact(&mut body).is_err() {
                    continue;
                }
                if gzip {
                    let mut out = Vec::new();
                    if flate2::read::GzDecoder::new(&body[..]).read_to_end(&mut out).is_ok() {
                        body = out;
                    }
                }
                if line.contains("PutMetricData") {
                    if let Ok(mut b) = bodies.lock() {
                        b.push(body);
                    }
                }
                let _ = reader.into_inner().write_all(
                    b"HTTP/1.1 200 OK\r\nsmithy-protocol: rpc-v2-cbor\r\ncontent-type: application/cbor\r\n\
                      content-length: 1\r\nconnection: close\r\n\r\n\xa0",
                );
            }
        })
        .map_err(|e| e.to_string())?;
    Ok(format!("http://{addr}"))
}

/// HTTP -> Function URL event -> slack-ingress -> HTTP, as the Lambda Function URL does.
async fn front_door(State(ingress): State<Arc<LocalFunction>>, headers: HeaderMap, body: Bytes) -> Response {
    let mut h = serde_json::Map::new();
    for (k, v) in &headers {
        if let Ok(v) = v.to_str() {
            h.insert(k.as_str().to_string(), json!(v));
        }
    }
    // The fixture gives a complete Function URL request context; headers and body are the request's.
    let mut event = crate::slack_events::fixture("slack/app_mention");
    event["headers"] = Value::Object(h);
    event["body"] = json!(String::from_utf8_lossy(&body));
    event["isBase64Encoded"] = json!(false);
    event["requestContext"]["timeEpoch"] = json!(chrono::Utc::now().timestamp_millis());
    match ingress.call(event, Duration::from_secs(10)).await {
        Ok(Outcome::Response(v)) => {
            let status = v["statusCode"]
                .as_u64()
                .and_then(|s| StatusCode::from_u16(s as u16).ok())
                .unwrap_or(StatusCode::BAD_GATEWAY);
            let ct = v["headers"]["content-type"].as_str().unwrap_or("text/plain").to_string();
            (status, [("content-type", ct)], v["body"].as_str().unwrap_or_default().to_string()).into_response()
        }
        other => (StatusCode::BAD_GATEWAY, format!("slack-ingress failed: {other:?}")).into_response(),
    }
}

/// One SQS event source mapping: batches of up to 10 from a queue into a function; the items it
/// reports failed go back on the queue, and after the queue's maxReceiveCount to its
/// dead-letter queue, as the redrive policy would.
struct Pump {
    sdk: aws_config::SdkConfig,
    queue: String,
    url: String,
    dlq: String,
    dlq_url: String,
    function: Arc<LocalFunction>,
    /// Records per invocation at most.
    batch: usize,
    busy: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    observed: Arc<Mutex<Vec<Datapoint>>>,
}

impl Pump {
    async fn run(self) {
        let sqs = aws_sdk_sqs::Client::new(&self.sdk);
        let attrs = sqs
            .get_queue_attributes()
            .queue_url(&self.url)
            .attribute_names(aws_sdk_sqs::types::QueueAttributeName::All)
            .send()
            .await
            .ok()
            .and_then(|o| o.attributes)
            .unwrap_or_default();
        let fifo = attrs.get(&aws_sdk_sqs::types::QueueAttributeName::FifoQueue).is_some_and(|v| v == "true");
        let max_receives = attrs
            .get(&aws_sdk_sqs::types::QueueAttributeName::RedrivePolicy)
            .and_then(|p| serde_json::from_str::<Value>(p).ok())
            .and_then(|p| p["maxReceiveCount"].as_u64().or_else(|| p["maxReceiveCount"].as_str()?.parse().ok()))
            .unwrap_or(3) as u32;
        let queue_dim = format!("<{}.QueueName>", self.queue);
        let dlq_dim = format!("<{}.QueueName>", self.dlq);
        let mut attempts: HashMap<String, u32> = HashMap::new();
        let mut dead = 0u32;
        while !self.stop.load(Ordering::SeqCst) {
            self.busy.fetch_add(1, Ordering::SeqCst);
            let records = drain_queue(&self.sdk, &self.url).await.unwrap_or_default();
            if records.is_empty() {
                self.busy.fetch_sub(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(250)).await;
                continue;
            }
            let now = chrono::Utc::now().timestamp_millis();
            let oldest = records
                .iter()
                .filter_map(|r| r.attributes.get("SentTimestamp").and_then(|t| t.parse::<i64>().ok()))
                .min()
                .unwrap_or(now);
            self.observe(Datapoint::new(
                "AWS/SQS",
                "ApproximateAgeOfOldestMessage",
                &[("QueueName", &queue_dim)],
                now,
                ((now - oldest).max(0) / 1000) as f64,
            ));
            for chunk in records.chunks(self.batch.max(1)) {
                let event = json!({"Records": chunk.iter().map(|r| json!({
                    "messageId": r.message_id, "receiptHandle": "local", "body": r.body,
                    "attributes": r.attributes, "messageAttributes": {}, "eventSource": "aws:sqs", "awsRegion": "us-east-1",
                })).collect::<Vec<_>>()});
                let failed: Vec<String> = match self.function.call(event, Duration::from_secs(120)).await {
                    Ok(Outcome::Response(v)) => v["batchItemFailures"]
                        .as_array()
                        .map(|a| a.iter().filter_map(|f| f["itemIdentifier"].as_str().map(str::to_string)).collect())
                        .unwrap_or_default(),
                    _ => chunk.iter().filter_map(|r| r.message_id.clone()).collect(),
                };
                // drain_queue deleted the batch; put back what the function returned.
                for r in chunk.iter().filter(|r| r.message_id.as_ref().is_some_and(|id| failed.contains(id))) {
                    let body = r.body.clone().unwrap_or_default();
                    let receives = attempts.entry(body.clone()).and_modify(|n| *n += 1).or_insert(1);
                    let receives = *receives;
                    let (target, to_dlq) =
                        if receives >= max_receives { (&self.dlq_url, true) } else { (&self.url, false) };
                    if to_dlq {
                        dead += 1;
                        println!("  ! a {} item failed {receives} times: moved to {}", self.queue, self.dlq);
                        self.observe(Datapoint::new(
                            "AWS/SQS",
                            "ApproximateNumberOfMessagesVisible",
                            &[("QueueName", &dlq_dim)],
                            chrono::Utc::now().timestamp_millis(),
                            f64::from(dead),
                        ));
                    }
                    let mut send = sqs.send_message().queue_url(target).message_body(body);
                    if fifo {
                        // FIFO queues take no per-message delay; the group's order holds anyway.
                        let group = r.attributes.get("MessageGroupId").cloned().unwrap_or_default();
                        send = send.message_group_id(group).message_deduplication_id(format!(
                            "{}-retry{receives}",
                            r.message_id.clone().unwrap_or_default()
                        ));
                    } else if !to_dlq {
                        send = send.delay_seconds((REDELIVERY_DELAY_S << (receives - 1).min(8)).min(900));
                    }
                    if let Err(e) = send.send().await {
                        println!("  ! could not return a failed {} item: {e}", self.queue);
                    }
                }
            }
            self.busy.fetch_sub(1, Ordering::SeqCst);
        }
    }

    fn observe(&self, p: Datapoint) {
        if let Ok(mut o) = self.observed.lock() {
            o.push(p);
        }
    }
}

/// Sums the EMF metrics in a function's output emitted at or after `since_ms`, by metric name
/// and dimension values (every dimension set of a document, as CloudWatch would).
pub fn emf_totals(output: &str, since_ms: i64) -> HashMap<String, f64> {
    let mut totals = HashMap::new();
    for p in crate::local_alarms::emf_datapoints(output).into_iter().filter(|p| p.at_ms >= since_ms) {
        let dims: Vec<String> = p.dimensions.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let key = if dims.is_empty() { p.metric.clone() } else { format!("{} {{{}}}", p.metric, dims.join(", ")) };
        *totals.entry(key).or_insert(0.0) += p.value;
    }
    totals
}

/// What the scripted agent reported for one request it answered.
#[derive(Debug, Clone)]
pub struct ScriptedTurn {
    pub session_id: String,
    /// The script that answered (its `name`).
    pub script: String,
    /// The model calls of the attempt it played, the models attributed as the worker does.
    pub calls: Vec<shared::domain::ModelCall>,
}

/// The usage the scripted agent of `agent`'s backend reported, request by request: for every
/// request it recorded, in arrival order, the attempt its script played, replayed with the fake's
/// own rules (the first script in file-name order whose `match` occurs in the prompt, ignoring
/// case, else the default one; the n-th request of a session plays attempt n, the last repeating;
/// an `error` attempt reports nothing; a cut, stall or exception ends what reached the worker).
/// Models are attributed as the worker attributes them: a Classic call to its trace's
/// `foundationModel`, a harness call to HARNESS_MODEL_ID, a runtime call to the model its usage
/// names, else AGENT_RUNTIME_MODEL_ID.
pub fn scripted_turns(agent: &LocalAgent) -> Result<Vec<ScriptedTurn>, String> {
    let agent_fake = &emulators().agent;
    let (dir, requests): (&str, Vec<(String, String)>) = match agent.backend {
        AgentBackend::Classic => {
            ("agent", agent_fake.requests().into_iter().map(|r| (r.session_id, r.input_text)).collect())
        }
        backend => (
            if backend == AgentBackend::Harness { "harness" } else { "runtime" },
            agent_fake
                .agentcore_requests()
                .into_iter()
                .filter(|r| r.backend == backend)
                .map(|r| (r.session_id, r.prompt))
                .collect(),
        ),
    };
    let scripts = load_script_values(&workspace_root().join("events").join(dir))?;
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut turns = Vec::new();
    for (session_id, prompt) in requests {
        let n = seen.entry(session_id.clone()).or_insert(0);
        let attempt_index = *n;
        *n += 1;
        let prompt = prompt.to_lowercase();
        let script = scripts
            .iter()
            .find(|s| s["match"].as_str().is_some_and(|m| !m.is_empty() && prompt.contains(&m.to_lowercase())))
            .or_else(|| scripts.iter().find(|s| s["default"] == true))
            .ok_or_else(|| format!("no script of events/{dir} answers {prompt:?}"))?;
        let attempts = script["attempts"].as_array().cloned().unwrap_or_default();
        let attempt = attempts.get(attempt_index).or(attempts.last()).cloned().unwrap_or(Value::Null);
        let mut calls = Vec::new();
        let mut models: HashMap<String, String> = HashMap::new();
        for event in attempt["events"].as_array().into_iter().flatten() {
            if event.get("cut").is_some() || event.get("stall_ms").is_some() || event.get("exception").is_some() {
                break;
            }
            match agent.backend {
                AgentBackend::Classic => classic_calls(event, &mut models, &mut calls),
                AgentBackend::Harness => {
                    if let Some(usage) = event.pointer("/metadata/usage") {
                        calls.push(call_of(usage, agent.model_id.unwrap_or_default()));
                    }
                }
                AgentBackend::Runtime => {
                    let sse = &event["sse"];
                    let (usage, named) = match (sse.get("usage"), sse.pointer("/event/metadata")) {
                        (Some(usage), _) => (Some(usage), usage.get("model_id").or(usage.get("modelId"))),
                        (None, Some(metadata)) => {
                            (metadata.get("usage"), metadata.get("model_id").or(metadata.get("modelId")))
                        }
                        _ => (None, None),
                    };
                    if let Some(usage) = usage {
                        let model = named.and_then(Value::as_str).filter(|m| !m.trim().is_empty());
                        calls.push(call_of(usage, model.or(agent.model_id).unwrap_or_default()));
                    }
                }
            }
        }
        turns.push(ScriptedTurn { session_id, script: script["name"].as_str().unwrap_or_default().to_string(), calls });
    }
    Ok(turns)
}

/// The scripts of one events/ directory as JSON, in file-name order (the fake's matching order).
fn load_script_values(dir: &std::path::Path) -> Result<Vec<Value>, String> {
    let mut paths: Vec<_> = std::fs::read_dir(dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    paths.sort();
    paths
        .iter()
        .map(|p| {
            let text = std::fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()))?;
            serde_json::from_str(&text).map_err(|e| format!("{}: {e}", p.display()))
        })
        .collect()
}

/// A Classic trace event's model calls: an input names the model of its trace id, an output
/// carries the call's usage.
fn classic_calls(event: &Value, models: &mut HashMap<String, String>, calls: &mut Vec<shared::domain::ModelCall>) {
    for part in event["trace"].as_object().into_iter().flat_map(|t| t.values()) {
        if let Some(input) = part.get("modelInvocationInput") {
            let trace = input["traceId"].as_str().unwrap_or_default().to_string();
            models.insert(trace, input["foundationModel"].as_str().unwrap_or("unknown").to_string());
        }
        if let Some(output) = part.get("modelInvocationOutput") {
            let model = models.get(output["traceId"].as_str().unwrap_or_default()).cloned().unwrap_or_default();
            if let Some(usage) = output.pointer("/metadata/usage") {
                calls.push(call_of(usage, &model));
            }
        }
    }
}

/// One model call of `usage` (camelCase or snake_case token counts) on `model`.
fn call_of(usage: &Value, model: &str) -> shared::domain::ModelCall {
    let count = |keys: [&str; 2]| keys.iter().find_map(|k| usage.get(*k)?.as_u64()).unwrap_or(0);
    shared::domain::ModelCall {
        model_id: model.to_string(),
        input_tokens: count(["inputTokens", "input_tokens"]),
        output_tokens: count(["outputTokens", "output_tokens"]),
        cache_read_tokens: count(["cacheReadInputTokens", "cache_read_tokens"]),
        cache_write_tokens: count(["cacheWriteInputTokens", "cache_write_tokens"]),
        ..Default::default()
    }
}
