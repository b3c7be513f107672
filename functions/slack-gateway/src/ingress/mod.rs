//! slack-ingress: verify, classify, dedupe, enqueue, and acknowledge well inside Slack's 3 s.

mod interaction;
mod wiring;

use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_lambda_events::event::lambda_function_urls::{LambdaFunctionUrlRequest, LambdaFunctionUrlResponse};
use aws_lambda_events::http::{HeaderMap, HeaderValue};
use base64::Engine;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{json, Value};
use shared::ports::{Claim, DedupStore, SlackSecretSource, WorkQueue};
use shared::telemetry::Metrics;
use tokio::sync::RwLock;
use tracing::{error, info, warn};

use crate::classify::{classify, Decision};
use crate::status::QueuedStatus;
use crate::work::WorkItem;

/// How long event ids and (channel, ts) pairs are remembered once queued. Slack's last retry
/// comes about 5 minutes after the first delivery; the margin covers replays.
pub const DEDUP_TTL: Duration = Duration::from_secs(6 * 3600);
/// The time the ingress gives itself to answer. Slack waits 3 s for the acknowledgement; on a
/// timeout or a non-2xx answer it retries the event up to 3 times: nearly immediately (on a
/// timeout, 3 s after sending, without waiting for the first answer), then after 1 minute, then
/// after 5 minutes (Slack's Events API docs, docs.slack.dev/apis/events-api, "failure
/// conditions" and "graceful retries", with `x-slack-retry-num` / `x-slack-retry-reason`).
pub const ACK_BUDGET: Duration = Duration::from_millis(2500);
/// How long a claim stays pending while its event is handed to the queue. The enqueue is bounded
/// by the lease, so a claim never outlives a failed or unfinished enqueue (a refused release, a
/// crash, a timeout) by more than this: it has lapsed before Slack's first retry on a timeout
/// (3 s), and a retry that arrives sooner waits for it inside its own budget.
pub const CLAIM_LEASE: Duration = Duration::from_millis(1500);
/// An enqueue is not started with less time than this left.
const MIN_ENQUEUE_TIME: Duration = Duration::from_millis(300);
/// Kept between a lease's end and the end of the enqueue it bounds (clock skew, a slow answer).
const LEASE_MARGIN: Duration = Duration::from_millis(100);
/// The longest pause between two looks at a claim another delivery holds.
const MAX_CLAIM_POLL: Duration = Duration::from_millis(200);
/// After a failed verification the secret is re-read at most this often (rotation).
pub const SECRET_REFRESH_INTERVAL: Duration = Duration::from_secs(60);

/// Settings read from the environment at init.
#[derive(Debug, Clone)]
pub struct IngressConfig {
    pub slack_secret_arn: String,
    pub work_queue_url: String,
    pub dedup_table: String,
    pub metrics_namespace: String,
    /// SLACK_API_BASE, for the queued-turn status.
    pub slack_api_base: String,
    /// INGRESS_STATUS (+ SLACK_ASSISTANT, STATUS_REACTION, INGRESS_STATUS_TIMEOUT_MS): the status
    /// shown as soon as a message is queued; `None` = left to the worker.
    pub queued_status: Option<(crate::status::StatusSettings, Duration)>,
    /// FEEDBACK_POSITIVE_REACTIONS / FEEDBACK_NEGATIVE_REACTIONS: only these reactions are queued.
    pub feedback: crate::reactions::FeedbackSettings,
}

impl IngressConfig {
    /// Reads the config; a missing variable fails init with its name.
    pub fn from_env() -> shared::Result<Self> {
        use shared::config::{metrics_namespace, optional, required};
        Ok(IngressConfig {
            slack_secret_arn: required("SLACK_SECRET_ARN")?,
            work_queue_url: required("WORK_QUEUE_URL")?,
            dedup_table: required("DEDUP_TABLE")?,
            metrics_namespace: metrics_namespace(),
            slack_api_base: optional("SLACK_API_BASE").unwrap_or_else(|| "https://slack.com/api".into()),
            queued_status: crate::status::queued_status_from_env()?,
            feedback: crate::reactions::FeedbackSettings::from_env()?,
        })
    }
}

struct SigningKey {
    secret: SecretString,
    last_refresh: Instant,
}

/// The ingress handler and its long-lived dependencies.
pub struct Ingress {
    secrets: Arc<dyn SlackSecretSource>,
    key: RwLock<SigningKey>,
    dedup: Arc<dyn DedupStore>,
    queue: Arc<dyn WorkQueue>,
    metrics: Metrics,
    refresh_interval: Duration,
    /// Shows the working status of a queued message (None = the worker alone shows it).
    queued_status: Option<QueuedStatus>,
    feedback: crate::reactions::FeedbackSettings,
}

impl Ingress {
    /// Builds the handler, reading the signing secret once.
    pub async fn new(
        secrets: Arc<dyn SlackSecretSource>,
        dedup: Arc<dyn DedupStore>,
        queue: Arc<dyn WorkQueue>,
        metrics: Metrics,
    ) -> shared::Result<Self> {
        let secret = secrets.load().await?.signing_secret;
        let key = RwLock::new(SigningKey { secret, last_refresh: Instant::now() });
        Ok(Ingress {
            secrets,
            key,
            dedup,
            queue,
            metrics,
            refresh_interval: SECRET_REFRESH_INTERVAL,
            queued_status: None,
            feedback: crate::reactions::FeedbackSettings::default(),
        })
    }

    /// Changes how often the secret may be re-read after a failed verification.
    pub fn with_refresh_interval(mut self, interval: Duration) -> Self {
        self.refresh_interval = interval;
        self
    }

    /// Which reactions are feedback (the worker's lists): only those are queued.
    pub fn with_feedback(mut self, feedback: crate::reactions::FeedbackSettings) -> Self {
        self.feedback = feedback;
        self
    }

    /// Shows the working status (assistant status or reaction) as soon as a message is queued,
    /// so a turn waiting behind the worker's concurrency limit is never met with silence.
    pub fn with_queued_status(mut self, status: QueuedStatus) -> Self {
        self.queued_status = Some(status);
        self
    }

    /// Handles one Function URL request. Never fails: every outcome is an HTTP response.
    pub async fn handle(&self, req: &LambdaFunctionUrlRequest) -> LambdaFunctionUrlResponse {
        let deadline = tokio::time::Instant::now() + ACK_BUDGET;
        let method = req.request_context.http.method.as_deref().unwrap_or("POST");
        if !method.eq_ignore_ascii_case("POST") {
            return respond(405, "method not allowed");
        }
        let raw = match body_bytes(req) {
            Ok(b) => b,
            Err(reason) => return respond(400, reason),
        };
        if let Err(reason) = self.verify(&req.headers, &raw).await {
            self.metrics.count("SignatureFailures", 1.0, &[]);
            warn!(reason, "rejected a request with a bad Slack signature");
            return respond(401, reason);
        }
        let received_at_ms = chrono::Utc::now().timestamp_millis();
        if interaction::is_interaction(&req.headers) {
            return self.interaction(&raw, received_at_ms, retry_info(&req.headers), deadline).await;
        }
        let body: Value = match serde_json::from_slice(&raw) {
            Ok(v) => v,
            Err(e) => {
                self.drift(
                    "unparseable",
                    &format!("body is not JSON ({:?} at column {})", e.classify(), e.column()),
                    None,
                );
                return respond(200, "");
            }
        };
        let event_id = body.get("event_id").and_then(Value::as_str);
        match classify(&body, received_at_ms, &self.feedback) {
            Decision::Challenge(c) => json_response(200, json!({ "challenge": c })),
            Decision::Ignore { event_type, reason } => {
                info!(event_type, event_id, reason, "ignored Slack event");
                respond(200, "")
            }
            Decision::Drift { event_type, detail } => {
                self.drift(&event_type, &detail, Some(&body));
                respond(200, "")
            }
            Decision::Accept(item) => self.accept(*item, retry_info(&req.headers), deadline).await,
        }
    }

    async fn verify(&self, headers: &HeaderMap, raw: &[u8]) -> Result<(), &'static str> {
        let ts = header(headers, "x-slack-request-timestamp");
        let sig = header(headers, "x-slack-signature");
        let now = chrono::Utc::now().timestamp();
        let first = {
            let key = self.key.read().await;
            shared::slack::signature::verify(key.secret.expose_secret().as_bytes(), ts, sig, raw, now)
        };
        let Err(first_err) = first else { return Ok(()) };
        // The secret may have been rotated: re-read it, at most once a minute.
        let mut key = self.key.write().await;
        if key.last_refresh.elapsed() < self.refresh_interval {
            return Err(first_err.reason());
        }
        key.last_refresh = Instant::now();
        match self.secrets.load().await {
            Ok(s) => key.secret = s.signing_secret,
            Err(e) => {
                error!(error = %e, "could not re-read the Slack signing secret");
                return Err(first_err.reason());
            }
        }
        shared::slack::signature::verify(key.secret.expose_secret().as_bytes(), ts, sig, raw, now)
            .map_err(|e| e.reason())
    }

    fn drift(&self, event_type: &str, detail: &str, body: Option<&Value>) {
        self.metrics.count_with_total("SchemaDrift", 1.0, &[("EventType", event_type)]);
        // Log the shape, never the values: payloads carry user text.
        let shape = body.map(shape_of).unwrap_or(Value::Null);
        warn!(event_type, detail, shape = %shape, "unexpected Slack payload (schema drift)");
    }

    async fn accept(
        &self,
        item: WorkItem,
        retry: Option<(String, String)>,
        deadline: tokio::time::Instant,
    ) -> LambdaFunctionUrlResponse {
        let event_id = item.event_id().to_string();
        let keys = item.dedup_keys();
        // This delivery's claims: each is pending until the queue has the event.
        let owner = format!("{event_id}/{:016x}", fastrand::u64(..));
        let mut held: Vec<String> = Vec::new();
        let mut lease_end = deadline;
        for key in &keys {
            match self.claim(key, &owner, deadline).await {
                Claimed::Held(end) => {
                    held.push(key.clone());
                    lease_end = lease_end.min(end);
                }
                Claimed::Duplicate => {
                    self.metrics.count("DuplicateEvents", 1.0, &[]);
                    info!(
                        event_id,
                        key,
                        retry_num = retry.as_ref().map(|r| r.0.as_str()),
                        retry_reason = retry.as_ref().map(|r| r.1.as_str()),
                        "duplicate Slack event acknowledged"
                    );
                    // Handled by an earlier delivery or its twin: so is this event id.
                    self.confirm(&held, &owner).await;
                    return respond(200, "");
                }
                Claimed::InProgress => {
                    // Another delivery is still queueing it: acknowledging now could lose the
                    // message if that one fails. Slack retries in a minute, when it is settled.
                    warn!(event_id, key, "another delivery of this event is still being queued; Slack will retry");
                    self.release(&held, &owner).await;
                    return respond(503, "in progress, retry later");
                }
                // Without the dedupe table, the FIFO queue's own 5-minute dedupe on the event id
                // still absorbs Slack's retries: accepting beats losing the message.
                Claimed::StoreDown(e) => {
                    self.metrics.count_with_total("APIErrors", 1.0, &[("ErrorCode", &e.code())]);
                    error!(error = %e, event_id, "dedupe table unavailable; enqueueing anyway");
                }
            }
        }
        let body = match serde_json::to_string(&item) {
            Ok(b) => b,
            Err(e) => {
                error!(error = %e, event_id, "could not serialise work item");
                self.release(&held, &owner).await;
                return respond(500, "internal error");
            }
        };
        match self.enqueue_within(&item, &event_id, &body, lease_end).await {
            Ok(()) => {
                info!(event_id, group = %item.group_id(), "queued Slack event");
                self.confirm(&held, &owner).await;
                self.show_queued(&item, deadline).await;
                respond(200, "")
            }
            Err(e) => {
                self.metrics.count_with_total("APIErrors", 1.0, &[("ErrorCode", &e.code())]);
                error!(error = %e, event_id, "could not queue Slack event; Slack will retry");
                // Let Slack's retry through the dedupe. Should the release fail too, the lease
                // lapses by itself.
                self.release(&held, &owner).await;
                respond(500, "temporarily unavailable")
            }
        }
    }

    /// Queues the work item, bounded by the claims' lease: when it lapses, the enqueue is over,
    /// one way or the other.
    async fn enqueue_within(
        &self,
        item: &WorkItem,
        event_id: &str,
        body: &str,
        lease_end: tokio::time::Instant,
    ) -> shared::Result<()> {
        let limit = lease_end.saturating_duration_since(tokio::time::Instant::now()).saturating_sub(LEASE_MARGIN);
        match tokio::time::timeout(limit, self.queue.enqueue(&item.group_id(), event_id, body)).await {
            Ok(r) => r,
            Err(_) => Err(shared::Error::Aws {
                service: "sqs",
                operation: "SendMessage",
                code: "Timeout".into(),
                message: format!("no answer within {} ms", limit.as_millis()),
                retryable: true,
            }),
        }
    }

    /// Shows the queued status on a queued message, when one is configured. Bounded by its
    /// timeout and what is left of the budget: the acknowledgement still goes out well inside 3 s.
    async fn show_queued(&self, item: &WorkItem, deadline: tokio::time::Instant) {
        if let (Some(status), WorkItem::Message(m)) = (&self.queued_status, item) {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let status = QueuedStatus { timeout: status.timeout.min(left), ..status.clone() };
            if !status.timeout.is_zero() {
                status.show(m).await;
            }
        }
    }

    /// Claims `key`, waiting (within the budget) for a claim another delivery holds to settle:
    /// the message / app_mention twins arrive together, and one should not cost a Slack retry.
    async fn claim(&self, key: &str, owner: &str, deadline: tokio::time::Instant) -> Claimed {
        let mut pause = Duration::from_millis(25);
        loop {
            let now = tokio::time::Instant::now();
            let lease = CLAIM_LEASE.min(deadline.saturating_duration_since(now));
            if lease < MIN_ENQUEUE_TIME {
                return Claimed::InProgress;
            }
            match self.dedup.claim(key, owner, lease).await {
                Ok(Claim::Acquired) => return Claimed::Held(now + lease),
                Ok(Claim::Taken) => return Claimed::Duplicate,
                Err(e) => return Claimed::StoreDown(e),
                Ok(Claim::Pending { until_ms }) => {
                    // Look again soon, and just after the other lease runs out.
                    let lapses_in = (until_ms - chrono::Utc::now().timestamp_millis()).max(0) as u64;
                    let wait = pause.min(Duration::from_millis(lapses_in + 20));
                    if tokio::time::Instant::now() + wait + MIN_ENQUEUE_TIME > deadline {
                        return Claimed::InProgress;
                    }
                    tokio::time::sleep(wait).await;
                    pause = (pause * 2).min(MAX_CLAIM_POLL);
                }
            }
        }
    }

    async fn confirm(&self, keys: &[String], owner: &str) {
        for k in keys {
            match self.dedup.confirm(k, owner, DEDUP_TTL).await {
                Ok(true) => {}
                // Its lease lapsed and another delivery holds it: that one settles it.
                Ok(false) => warn!(key = %k, "dedupe claim lapsed before it was confirmed"),
                // The pending claim lapses by itself; a later duplicate may then be queued
                // again, and the worker's turn record keeps it from being answered twice.
                Err(e) => error!(error = %e, key = %k, "could not confirm dedupe claim"),
            }
        }
    }

    async fn release(&self, keys: &[String], owner: &str) {
        for k in keys {
            if let Err(e) = self.dedup.release(k, owner).await {
                error!(error = %e, key = %k, "could not release dedupe claim; it lapses with its lease");
            }
        }
    }
}

/// How claiming a dedupe key ended.
enum Claimed {
    /// This delivery holds the key until the given instant (its lease).
    Held(tokio::time::Instant),
    /// Already handed on.
    Duplicate,
    /// Another delivery holds it and did not settle within the budget.
    InProgress,
    /// The dedupe table failed.
    StoreDown(shared::Error),
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn retry_info(headers: &HeaderMap) -> Option<(String, String)> {
    header(headers, "x-slack-retry-num")
        .map(|n| (n.to_string(), header(headers, "x-slack-retry-reason").unwrap_or("").to_string()))
}

fn body_bytes(req: &LambdaFunctionUrlRequest) -> Result<Vec<u8>, &'static str> {
    let body = req.body.as_deref().unwrap_or("");
    if req.is_base64_encoded {
        base64::engine::general_purpose::STANDARD.decode(body).map_err(|_| "body is not valid base64")
    } else {
        Ok(body.as_bytes().to_vec())
    }
}

/// The JSON shape of a payload (keys and value kinds), for drift logs without user data.
fn shape_of(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(m.iter().map(|(k, v)| (k.clone(), shape_of(v))).collect()),
        Value::Array(a) => Value::Array(a.first().map(shape_of).into_iter().collect()),
        Value::String(_) => json!("string"),
        Value::Number(_) => json!("number"),
        Value::Bool(_) => json!("bool"),
        Value::Null => json!("null"),
    }
}

fn respond(status: i64, text: &str) -> LambdaFunctionUrlResponse {
    let mut r = LambdaFunctionUrlResponse::default();
    r.status_code = status;
    r.headers.insert("content-type", HeaderValue::from_static("text/plain; charset=utf-8"));
    r.body = Some(text.to_string());
    r
}

fn json_response(status: i64, body: Value) -> LambdaFunctionUrlResponse {
    let mut r = LambdaFunctionUrlResponse::default();
    r.status_code = status;
    r.headers.insert("content-type", HeaderValue::from_static("application/json"));
    r.body = Some(body.to_string());
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shape_hides_values() {
        let s = shape_of(&json!({"event": {"text": "secret plans", "n": 1, "files": [{"name": "x"}]}}));
        assert_eq!(s, json!({"event": {"text": "string", "n": "number", "files": [{"name": "string"}]}}));
        assert!(!s.to_string().contains("secret plans"));
    }
}
