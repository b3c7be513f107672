//! The local stack: the whole gateway running on this machine without AWS or Slack. moto with
//! the gateway's resources, the fake Slack, the scripted agent, and the real function binaries
//! under local Lambda Runtime APIs; Slack's requests reach slack-ingress over HTTP, and a pump
//! plays the SQS event source for slack-worker.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

use crate::function_process::FunctionProcess;
use crate::gateway_binaries::binary;
use crate::harness::{emulators, AGENT_ALIAS_ID, AGENT_ID};
use crate::lambda_runtime_api::Outcome;
use crate::resources::{drain_queue, GatewayResources};

/// Prints a progress line with the time since start.
pub struct Progress(Instant);

impl Progress {
    pub fn new() -> Self {
        Progress(Instant::now())
    }
    pub fn say(&self, what: &str) {
        println!("[{:6.1}s] {what}", self.0.elapsed().as_secs_f64());
    }
}

impl Default for Progress {
    fn default() -> Self {
        Self::new()
    }
}

/// The running stack.
pub struct LocalStack {
    pub resources: GatewayResources,
    pub ingress: Arc<FunctionProcess>,
    pub worker: Arc<FunctionProcess>,
    pub url: String,
    busy: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
}

impl LocalStack {
    /// Starts everything; `port` 0 picks a free port for the Slack endpoint.
    pub async fn start(progress: &Progress, port: u16, daily_budget_usd: f64) -> Result<LocalStack, String> {
        let emu = emulators();
        progress.say(&format!(
            "moto {} · fake Slack {} · scripted agent {}",
            emu.moto.endpoint(),
            emu.slack.api_base(),
            emu.agent.endpoint()
        ));
        let sdk = emu.moto.sdk_config();
        let prefix = format!("local{}", std::process::id());
        let resources =
            GatewayResources::create(&sdk, &prefix).await.map_err(|e| format!("creating resources: {e:?}"))?;
        progress.say(
            "created tables, FIFO work queue, usage queue, analytics bucket, Firehose stream and Slack secret in moto",
        );

        let logs = std::env::temp_dir();
        let moto = emu.moto.endpoint();
        let pairs = |p: &[(&str, &str)]| p.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<Vec<_>>();
        let ingress = FunctionProcess::start(
            &binary("slack-ingress", "debug"),
            &pairs(&[
                ("AWS_ENDPOINT_URL", &moto),
                ("SLACK_SECRET_ARN", &resources.secret_arn),
                ("WORK_QUEUE_URL", &resources.work_queue_url),
                ("DEDUP_TABLE", &resources.dedup_table),
            ]),
            128,
            &logs.join(format!("{prefix}-slack-ingress.log")),
        )
        .map_err(|e| format!("starting slack-ingress: {e}"))?;
        let budget = daily_budget_usd.to_string();
        let worker = FunctionProcess::start(
            &binary("slack-worker", "debug"),
            &pairs(&[
                ("AWS_ENDPOINT_URL", &moto),
                ("AWS_ENDPOINT_URL_BEDROCK_AGENT_RUNTIME", &emu.agent.endpoint()),
                ("SLACK_SECRET_ARN", &resources.secret_arn),
                ("SLACK_API_BASE", &emu.slack.api_base()),
                ("USAGE_QUEUE_URL", &resources.usage_queue_url),
                ("EVENTS_STREAM_NAME", &resources.stream),
                ("FEEDBACK_STREAM_NAME", &resources.feedback_stream),
                ("CONVERSATIONS_TABLE", &resources.conversations_table),
                ("USAGE_TABLE", &resources.usage_table),
                ("AGENT_ID", AGENT_ID),
                ("AGENT_ALIAS_ID", AGENT_ALIAS_ID),
                ("USER_DAILY_BUDGET_USD", &budget),
            ]),
            256,
            &logs.join(format!("{prefix}-slack-worker.log")),
        )
        .map_err(|e| format!("starting slack-worker: {e}"))?;
        progress.say("slack-ingress and slack-worker binaries running under local Lambda Runtime APIs");

        let ingress = Arc::new(ingress);
        let worker = Arc::new(worker);
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
        tokio::spawn(pump(
            sdk,
            resources.work_queue_url.clone(),
            Arc::clone(&worker),
            Arc::clone(&busy),
            Arc::clone(&stop),
        ));
        Ok(LocalStack { resources, ingress, worker, url, busy, stop })
    }

    /// Waits until the work queue is empty and the worker idle (at most `timeout`).
    pub async fn settle(&self, timeout: Duration) -> bool {
        let sqs = aws_sdk_sqs::Client::new(&emulators().moto.sdk_config());
        let started = Instant::now();
        let mut quiet_since: Option<Instant> = None;
        while started.elapsed() < timeout {
            let attrs = sqs
                .get_queue_attributes()
                .queue_url(&self.resources.work_queue_url)
                .attribute_names(aws_sdk_sqs::types::QueueAttributeName::All)
                .send()
                .await
                .ok()
                .and_then(|o| o.attributes)
                .unwrap_or_default();
            let count = |k: aws_sdk_sqs::types::QueueAttributeName| {
                attrs.get(&k).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0)
            };
            let pending = count(aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages)
                + count(aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessagesNotVisible);
            if pending == 0 && self.busy.load(Ordering::SeqCst) == 0 {
                let since = *quiet_since.get_or_insert_with(Instant::now);
                if since.elapsed() > Duration::from_millis(1500) {
                    return true;
                }
            } else {
                quiet_since = None;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        false
    }

    /// Stops the pump (the processes stop when the stack is dropped).
    pub fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// HTTP -> Function URL event -> slack-ingress -> HTTP, as the Lambda Function URL does.
async fn front_door(State(ingress): State<Arc<FunctionProcess>>, headers: HeaderMap, body: Bytes) -> Response {
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
    let ingress2 = Arc::clone(&ingress);
    let out = tokio::task::spawn_blocking(move || ingress2.invoke(event, Duration::from_secs(10))).await;
    match out {
        Ok(Ok(Outcome::Response(v))) => {
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

/// The SQS event source mapping: batches from the work queue into slack-worker; failed items stay.
async fn pump(
    sdk: aws_config::SdkConfig,
    url: String,
    worker: Arc<FunctionProcess>,
    busy: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
) {
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let mut attempts: HashMap<String, u32> = HashMap::new();
    while !stop.load(Ordering::SeqCst) {
        busy.fetch_add(1, Ordering::SeqCst);
        let records = drain_queue(&sdk, &url).await.unwrap_or_default();
        if records.is_empty() {
            busy.fetch_sub(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(250)).await;
            continue;
        }
        for chunk in records.chunks(10) {
            let event = json!({"Records": chunk.iter().map(|r| json!({
                "messageId": r.message_id, "receiptHandle": "local", "body": r.body,
                "attributes": r.attributes, "messageAttributes": {}, "eventSource": "aws:sqs", "awsRegion": "us-east-1",
            })).collect::<Vec<_>>()});
            let w = Arc::clone(&worker);
            let out = tokio::task::spawn_blocking(move || w.invoke(event, Duration::from_secs(120))).await;
            let failed: Vec<String> = match out {
                Ok(Ok(Outcome::Response(v))) => v["batchItemFailures"]
                    .as_array()
                    .map(|a| a.iter().filter_map(|f| f["itemIdentifier"].as_str().map(str::to_string)).collect())
                    .unwrap_or_default(),
                _ => chunk.iter().filter_map(|r| r.message_id.clone()).collect(),
            };
            // drain_queue deleted the batch; put back what the worker returned (the queue's redrive).
            for r in chunk.iter().filter(|r| r.message_id.as_ref().is_some_and(|id| failed.contains(id))) {
                let group = r.attributes.get("MessageGroupId").cloned().unwrap_or_default();
                let body = r.body.clone().unwrap_or_default();
                let receives = attempts.entry(body).and_modify(|n| *n += 1).or_insert(1);
                let receives = *receives;
                if receives >= 3 {
                    println!("  ! a work item failed 3 times and would go to the dead-letter queue");
                    continue;
                }
                let _ = sqs
                    .send_message()
                    .queue_url(&url)
                    .message_group_id(group)
                    .message_deduplication_id(format!("{}-retry{receives}", r.message_id.clone().unwrap_or_default()))
                    .message_body(r.body.clone().unwrap_or_default())
                    .send()
                    .await;
            }
        }
        busy.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Sums the EMF metrics in a function's output, by metric name and dimension values.
pub fn emf_totals(output: &str) -> HashMap<String, f64> {
    let mut totals = HashMap::new();
    for doc in shared::telemetry::parse_emf(output.as_bytes()) {
        let Some(defs) = doc["_aws"]["CloudWatchMetrics"][0]["Metrics"].as_array() else { continue };
        let dims: Vec<String> = doc["_aws"]["CloudWatchMetrics"][0]["Dimensions"][0]
            .as_array()
            .map(|a| {
                a.iter().filter_map(|d| d.as_str()).map(|d| format!("{d}={}", doc[d].as_str().unwrap_or(""))).collect()
            })
            .unwrap_or_default();
        for def in defs {
            let name = def["Name"].as_str().unwrap_or_default();
            let key = if dims.is_empty() { name.to_string() } else { format!("{name} {{{}}}", dims.join(", ")) };
            *totals.entry(key).or_insert(0.0) += doc[name].as_f64().unwrap_or(0.0);
        }
    }
    totals
}
