//! slack-ingress: verify, classify, dedupe, enqueue, and acknowledge well inside Slack's 3 s.

use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_lambda_events::event::lambda_function_urls::{LambdaFunctionUrlRequest, LambdaFunctionUrlResponse};
use aws_lambda_events::http::{HeaderMap, HeaderValue};
use base64::Engine;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{json, Value};
use shared::ports::{DedupStore, SlackSecretSource, WorkQueue};
use shared::telemetry::Metrics;
use tokio::sync::RwLock;
use tracing::{error, info, warn};

use crate::classify::{classify, Decision};
use crate::status::QueuedStatus;
use crate::work::WorkItem;

/// How long event ids and (channel, ts) pairs are remembered. Slack retries for about an hour.
pub const DEDUP_TTL: Duration = Duration::from_secs(6 * 3600);
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
        })
    }

    /// Changes how often the secret may be re-read after a failed verification.
    pub fn with_refresh_interval(mut self, interval: Duration) -> Self {
        self.refresh_interval = interval;
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
        match classify(&body, received_at_ms) {
            Decision::Challenge(c) => json_response(200, json!({ "challenge": c })),
            Decision::Ignore { event_type, reason } => {
                info!(event_type, event_id, reason, "ignored Slack event");
                respond(200, "")
            }
            Decision::Drift { event_type, detail } => {
                self.drift(&event_type, &detail, Some(&body));
                respond(200, "")
            }
            Decision::Accept(item) => self.accept(*item, retry_info(&req.headers)).await,
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

    async fn accept(&self, item: WorkItem, retry: Option<(String, String)>) -> LambdaFunctionUrlResponse {
        let event_id = item.event_id().to_string();
        let mut claims = vec![format!("evt#{event_id}")];
        if let WorkItem::Message(m) = &item {
            // app_mention and message.* both fire for one message, with different event ids.
            claims.push(format!("msg#{}#{}#{}", m.team_id, m.channel_id, m.ts));
        }
        let mut claimed = Vec::new();
        for key in &claims {
            match self.dedup.claim(key, DEDUP_TTL).await {
                Ok(true) => claimed.push(key.clone()),
                Ok(false) => {
                    self.metrics.count("DuplicateEvents", 1.0, &[]);
                    info!(
                        event_id,
                        key,
                        retry_num = retry.as_ref().map(|r| r.0.as_str()),
                        retry_reason = retry.as_ref().map(|r| r.1.as_str()),
                        "duplicate Slack event acknowledged"
                    );
                    return respond(200, "");
                }
                // Without the dedupe table, the FIFO queue's own 5-minute dedupe on the event id
                // still absorbs Slack's retries: accepting beats losing the message.
                Err(e) => {
                    self.metrics.count_with_total("APIErrors", 1.0, &[("ErrorCode", &e.code())]);
                    error!(error = %e, event_id, "dedupe table unavailable; enqueueing anyway");
                }
            }
        }
        let body = match serde_json::to_string(&item) {
            Ok(b) => b,
            Err(e) => {
                error!(error = %e, event_id, "could not serialise work item");
                self.release(&claimed).await;
                return respond(500, "internal error");
            }
        };
        match self.queue.enqueue(&item.group_id(), &event_id, &body).await {
            Ok(()) => {
                info!(event_id, group = %item.group_id(), "queued Slack event");
                if let (Some(status), WorkItem::Message(m)) = (&self.queued_status, &item) {
                    // Bounded by its timeout: the acknowledgement still goes out well inside 3 s.
                    status.show(m).await;
                }
                respond(200, "")
            }
            Err(e) => {
                self.metrics.count_with_total("APIErrors", 1.0, &[("ErrorCode", &e.code())]);
                error!(error = %e, event_id, "could not queue Slack event; Slack will retry");
                // Let Slack's retry through the dedupe.
                self.release(&claimed).await;
                respond(500, "temporarily unavailable")
            }
        }
    }

    async fn release(&self, keys: &[String]) {
        for k in keys {
            if let Err(e) = self.dedup.release(k).await {
                error!(error = %e, key = %k, "could not release dedupe claim");
            }
        }
    }
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
