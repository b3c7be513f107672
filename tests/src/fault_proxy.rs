//! A loopback HTTP proxy in front of an AWS emulator that fails chosen operations, so a test can
//! make production's failures happen through the real SDK: a SendMessage that fails, a role
//! without DeleteItem, a throttled table, a stream that is down for hours. Everything it is not
//! told to fail goes to the emulator unchanged (headers included, so signatures still match).
//!
//! Operations are told apart as the SDKs send them: the JSON protocols' `X-Amz-Target`
//! (`AmazonSQS.SendMessage`, `DynamoDB_20120810.PutItem`, `Firehose_20150804.PutRecordBatch`)
//! or the query protocol's `Action=` form field. A fault may also require a piece of the request
//! body (a queue URL, a table name) so that only one resource fails.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{to_bytes, Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;

/// What a matched request gets instead of (or before) the emulator's answer.
#[derive(Debug, Clone)]
pub enum Reply {
    /// An AWS error response: HTTP status, error code (`InternalError`, `AccessDeniedException`,
    /// `ProvisionedThroughputExceededException`...) and message, in the request's protocol.
    Error { status: u16, code: String, message: String },
    /// Waits, then forwards the request (a slow dependency).
    Delay(Duration),
}

/// One injected fault.
#[derive(Debug, Clone)]
pub struct Fault {
    operation: String,
    body_contains: Option<String>,
    /// How many matching requests it still applies to (None: until removed).
    remaining: Option<usize>,
    reply: Reply,
}

impl Fault {
    /// `operation` (e.g. `SendMessage`) answers with an AWS error until removed.
    pub fn error(operation: &str, status: u16, code: &str, message: &str) -> Fault {
        Fault {
            operation: operation.to_string(),
            body_contains: None,
            remaining: None,
            reply: Reply::Error { status, code: code.to_string(), message: message.to_string() },
        }
    }

    /// The error AWS returns when the caller's role does not allow `action` (`dynamodb:DeleteItem`).
    pub fn access_denied(operation: &str, action: &str) -> Fault {
        Fault::error(
            operation,
            400,
            "AccessDeniedException",
            &format!(
                "User: arn:aws:sts::123456789012:assumed-role/ingress/fn is not authorized to perform: {action} \
                 because no identity-based policy allows the {action} action"
            ),
        )
    }

    /// `operation` is delayed by `by`, then answered by the emulator.
    pub fn delay(operation: &str, by: Duration) -> Fault {
        Fault { operation: operation.to_string(), body_contains: None, remaining: None, reply: Reply::Delay(by) }
    }

    /// Only requests whose body contains `needle` (a queue URL, a table name).
    pub fn when_body_contains(mut self, needle: &str) -> Fault {
        self.body_contains = Some(needle.to_string());
        self
    }

    /// Only the next `n` matching requests (the SDK's own retries count: 3 attempts by default).
    pub fn times(mut self, n: usize) -> Fault {
        self.remaining = Some(n);
        self
    }
}

#[derive(Default)]
struct Inner {
    faults: Vec<Fault>,
    /// (operation, faulted) per request seen.
    seen: Vec<(String, bool)>,
}

/// The running proxy. It stops when the test process exits.
pub struct FaultProxy {
    addr: SocketAddr,
    inner: Arc<Mutex<Inner>>,
}

#[derive(Clone)]
struct Ctx {
    upstream: String,
    client: reqwest::Client,
    inner: Arc<Mutex<Inner>>,
}

impl FaultProxy {
    /// Starts a proxy to `upstream` (e.g. moto's endpoint) on 127.0.0.1, on its own thread.
    pub fn start(upstream: &str) -> std::io::Result<FaultProxy> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let inner = Arc::new(Mutex::new(Inner::default()));
        let client = reqwest::Client::builder()
            .no_proxy()
            .pool_idle_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(60))
            .build()
            .map_err(std::io::Error::other)?;
        let ctx = Ctx { upstream: upstream.trim_end_matches('/').to_string(), client, inner: Arc::clone(&inner) };
        let app = Router::new().fallback(forward).with_state(ctx);
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build()?;
        std::thread::Builder::new().name("fault-proxy".into()).spawn(move || {
            runtime.block_on(async move {
                if let Ok(l) = tokio::net::TcpListener::from_std(listener) {
                    let _ = axum::serve(l, app).await;
                }
            });
        })?;
        Ok(FaultProxy { addr, inner })
    }

    /// The endpoint URL for AWS_ENDPOINT_URL / `endpoint_url`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// An SDK config pointed at the proxy.
    pub fn sdk_config(&self) -> aws_config::SdkConfig {
        crate::moto::sdk_config_for(&self.endpoint())
    }

    /// Adds a fault; the first matching fault of a request applies.
    pub fn inject(&self, fault: Fault) {
        if let Ok(mut i) = self.inner.lock() {
            i.faults.push(fault);
        }
    }

    /// Removes every fault on `operation`: it works again.
    pub fn heal(&self, operation: &str) {
        if let Ok(mut i) = self.inner.lock() {
            i.faults.retain(|f| f.operation != operation);
        }
    }

    /// Requests seen for `operation`: (all, faulted).
    pub fn seen(&self, operation: &str) -> (usize, usize) {
        let i = self.inner.lock().map(|i| i.seen.clone()).unwrap_or_default();
        let all: Vec<_> = i.iter().filter(|(op, _)| op == operation).collect();
        (all.len(), all.iter().filter(|(_, f)| *f).count())
    }
}

/// The operation a request calls: `X-Amz-Target`'s suffix, or the query protocol's `Action`.
fn operation_of(headers: &HeaderMap, body: &[u8]) -> String {
    if let Some(t) = headers.get("x-amz-target").and_then(|v| v.to_str().ok()) {
        return t.rsplit('.').next().unwrap_or(t).to_string();
    }
    let text = String::from_utf8_lossy(body);
    text.split('&').find_map(|kv| kv.strip_prefix("Action=")).unwrap_or_default().to_string()
}

fn take_fault(inner: &Mutex<Inner>, operation: &str, body: &[u8]) -> Option<Reply> {
    let mut i = inner.lock().ok()?;
    let text = String::from_utf8_lossy(body);
    let pos = i.faults.iter().position(|f| {
        f.operation == operation
            && f.remaining != Some(0)
            && f.body_contains.as_deref().is_none_or(|n| text.contains(n))
    });
    let reply = pos.map(|p| {
        let f = &mut i.faults[p];
        if let Some(n) = f.remaining.as_mut() {
            *n -= 1;
        }
        f.reply.clone()
    });
    let faulted = matches!(reply, Some(Reply::Error { .. }));
    i.seen.push((operation.to_string(), faulted));
    reply
}

async fn forward(State(ctx): State<Ctx>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let body = match to_bytes(body, 64 * 1024 * 1024).await {
        Ok(b) => b,
        Err(e) => return (StatusCode::BAD_REQUEST, format!("fault proxy: unreadable body: {e}")).into_response(),
    };
    let operation = operation_of(&parts.headers, &body);
    match take_fault(&ctx.inner, &operation, &body) {
        Some(Reply::Error { status, code, message }) => return aws_error(&parts.headers, status, &code, &message),
        Some(Reply::Delay(d)) => tokio::time::sleep(d).await,
        None => {}
    }
    let path = parts.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    let mut upstream = ctx.client.request(parts.method.clone(), format!("{}{path}", ctx.upstream));
    for (name, value) in &parts.headers {
        if !hop_by_hop(name) {
            upstream = upstream.header(name, value);
        }
    }
    match upstream.body(body).send().await {
        Ok(resp) => {
            let status = resp.status();
            let headers = resp.headers().clone();
            let bytes = resp.bytes().await.unwrap_or_else(|_| Bytes::new());
            let mut out = Response::new(Body::from(bytes));
            *out.status_mut() = status;
            for (name, value) in &headers {
                if !hop_by_hop(name) {
                    out.headers_mut().append(name, value.clone());
                }
            }
            out
        }
        Err(e) => (StatusCode::BAD_GATEWAY, format!("fault proxy: upstream failed: {e}")).into_response(),
    }
}

fn hop_by_hop(name: &HeaderName) -> bool {
    matches!(name.as_str(), "connection" | "content-length" | "transfer-encoding" | "keep-alive" | "upgrade")
}

/// An AWS error in the request's protocol: awsJson (`__type`) or the query protocol's XML.
fn aws_error(request: &HeaderMap, status: u16, code: &str, message: &str) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let json = request.contains_key("x-amz-target");
    let (content_type, body) = if json {
        ("application/x-amz-json-1.0", serde_json::json!({ "__type": code, "message": message }).to_string())
    } else {
        (
            "text/xml",
            format!(
                "<ErrorResponse><Error><Type>Sender</Type><Code>{code}</Code><Message>{message}</Message></Error>\
                 <RequestId>fault-proxy</RequestId></ErrorResponse>"
            ),
        )
    };
    let mut resp = (status, body).into_response();
    resp.headers_mut().insert("content-type", HeaderValue::from_static(content_type));
    // SQS's JSON protocol also names the error in this header (its query-compatible code).
    if let Ok(v) = HeaderValue::from_str(&format!("{code};Sender")) {
        resp.headers_mut().insert("x-amzn-query-error", v);
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operations_are_read_from_the_target_or_the_action() {
        let mut h = HeaderMap::new();
        h.insert("x-amz-target", HeaderValue::from_static("AmazonSQS.SendMessage"));
        assert_eq!(operation_of(&h, b"{}"), "SendMessage");
        h.insert("x-amz-target", HeaderValue::from_static("DynamoDB_20120810.DeleteItem"));
        assert_eq!(operation_of(&h, b"{}"), "DeleteItem");
        assert_eq!(operation_of(&HeaderMap::new(), b"Action=SendMessage&QueueUrl=x"), "SendMessage");
        assert_eq!(operation_of(&HeaderMap::new(), b""), "");
    }

    #[test]
    fn a_counted_fault_runs_out_and_a_body_filter_narrows_it() {
        let inner = Mutex::new(Inner::default());
        inner.lock().unwrap().faults.push(Fault::error("SendMessage", 500, "InternalError", "x").times(2));
        inner.lock().unwrap().faults.push(Fault::delay("PutItem", Duration::ZERO).when_body_contains("dedup"));
        assert!(take_fault(&inner, "SendMessage", b"").is_some());
        assert!(take_fault(&inner, "SendMessage", b"").is_some());
        assert!(take_fault(&inner, "SendMessage", b"").is_none());
        assert!(take_fault(&inner, "PutItem", b"{\"TableName\":\"usage\"}").is_none());
        assert!(take_fault(&inner, "PutItem", b"{\"TableName\":\"x-dedup\"}").is_some());
        let seen = inner.lock().unwrap().seen.clone();
        assert_eq!(seen.iter().filter(|(op, f)| op == "SendMessage" && *f).count(), 2);
    }
}
