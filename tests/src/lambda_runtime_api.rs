//! A local Lambda Runtime API (2018-06-01): runs a real function binary (the `bootstrap`) as
//! Lambda would, feeds it events and collects its responses. Used by the footprint bench and the
//! local stack; only `next`, `response`, `error` and `init/error` are served. An invocation may
//! carry a client context (the `lambda-runtime-client-context` header), as a gateway's does.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde_json::Value;

/// How an invocation ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// The function's response payload.
    Response(Value),
    /// The function reported an error (error type and message).
    Error(String),
}

#[derive(Default)]
struct Store {
    /// (request id, event, timeout, client context JSON).
    pending: VecDeque<(String, Value, Duration, Option<String>)>,
    done: HashMap<String, Outcome>,
    init_error: Option<String>,
    seq: u64,
    /// When the function first asked for work: the end of its init.
    first_next: Option<Instant>,
}

struct Inner {
    store: Mutex<Store>,
    changed: Condvar,
    waiters: tokio::sync::Notify,
}

/// The Runtime API server. Its address goes into `AWS_LAMBDA_RUNTIME_API` of the function.
pub struct RuntimeApi {
    addr: SocketAddr,
    inner: Arc<Inner>,
}

impl RuntimeApi {
    /// Starts the server on 127.0.0.1 and an ephemeral port, on its own thread and runtime.
    pub fn start() -> std::io::Result<RuntimeApi> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let inner = Arc::new(Inner {
            store: Mutex::new(Store::default()),
            changed: Condvar::new(),
            waiters: tokio::sync::Notify::new(),
        });
        let app = Router::new()
            .route("/2018-06-01/runtime/invocation/next", get(next))
            .route("/2018-06-01/runtime/invocation/{id}/response", post(response))
            .route("/2018-06-01/runtime/invocation/{id}/error", post(error))
            .route("/2018-06-01/runtime/init/error", post(init_error))
            .with_state(Arc::clone(&inner));
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        std::thread::Builder::new().name("lambda-runtime-api".into()).spawn(move || {
            runtime.block_on(async move {
                if let Ok(l) = tokio::net::TcpListener::from_std(listener) {
                    let _ = axum::serve(l, app).await;
                }
            });
        })?;
        Ok(RuntimeApi { addr, inner })
    }

    /// When the function first asked for an invocation (its init was over), if it has.
    pub fn first_next(&self) -> Option<Instant> {
        self.inner.store.lock().ok().and_then(|s| s.first_next)
    }

    /// The value for `AWS_LAMBDA_RUNTIME_API` (host:port).
    pub fn address(&self) -> String {
        self.addr.to_string()
    }

    /// Queues `event` and waits for the function's answer, at most `timeout` (also the deadline
    /// the function is told).
    pub fn invoke(&self, event: Value, timeout: Duration) -> Result<Outcome, String> {
        self.invoke_with(event, None, timeout)
    }

    /// As [`RuntimeApi::invoke`], with a client context (`{"custom": {...}}`), as a caller of
    /// Invoke with `ClientContext` (an AgentCore Gateway) sends it.
    pub fn invoke_with_client_context(
        &self,
        event: Value,
        client_context: &Value,
        timeout: Duration,
    ) -> Result<Outcome, String> {
        self.invoke_with(event, Some(client_context.to_string()), timeout)
    }

    fn invoke_with(&self, event: Value, client_context: Option<String>, timeout: Duration) -> Result<Outcome, String> {
        let id = {
            let mut s = self.inner.store.lock().map_err(|e| e.to_string())?;
            s.seq += 1;
            let id = format!("00000000-0000-4000-8000-{:012}", s.seq);
            s.pending.push_back((id.clone(), event, timeout, client_context));
            id
        };
        self.inner.waiters.notify_one();
        let started = Instant::now();
        let mut s = self.inner.store.lock().map_err(|e| e.to_string())?;
        loop {
            if let Some(out) = s.done.remove(&id) {
                return Ok(out);
            }
            if let Some(e) = &s.init_error {
                return Err(format!("function failed to start: {e}"));
            }
            let left = timeout.checked_sub(started.elapsed()).ok_or_else(|| format!("no answer within {timeout:?}"))?;
            s = self.inner.changed.wait_timeout(s, left).map_err(|e| e.to_string())?.0;
        }
    }

    /// The init error the function reported, if any.
    pub fn init_error(&self) -> Option<String> {
        self.inner.store.lock().ok().and_then(|s| s.init_error.clone())
    }
}

async fn next(State(inner): State<Arc<Inner>>) -> Response {
    if let Ok(mut s) = inner.store.lock() {
        s.first_next.get_or_insert_with(Instant::now);
    }
    loop {
        let notified = inner.waiters.notified();
        let item = inner.store.lock().ok().and_then(|mut s| s.pending.pop_front());
        if let Some((id, event, timeout, client_context)) = item {
            let deadline = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default() + timeout;
            let mut headers = HeaderMap::new();
            let mut put = |k: &'static str, v: String| {
                if let Ok(v) = HeaderValue::from_str(&v) {
                    headers.insert(k, v);
                }
            };
            put("lambda-runtime-aws-request-id", id);
            put("lambda-runtime-deadline-ms", deadline.as_millis().to_string());
            put("lambda-runtime-invoked-function-arn", "arn:aws:lambda:us-east-1:123456789012:function:local".into());
            put("lambda-runtime-trace-id", "Root=1-00000000-000000000000000000000000;Sampled=0".into());
            put("content-type", "application/json".into());
            if let Some(client_context) = client_context {
                put("lambda-runtime-client-context", client_context);
            }
            return (StatusCode::OK, headers, event.to_string()).into_response();
        }
        notified.await;
    }
}

fn finish(inner: &Inner, id: String, outcome: Outcome) -> Response {
    if let Ok(mut s) = inner.store.lock() {
        s.done.insert(id, outcome);
    }
    inner.changed.notify_all();
    (StatusCode::ACCEPTED, "{\"status\":\"OK\"}").into_response()
}

async fn response(State(inner): State<Arc<Inner>>, Path(id): Path<String>, body: Bytes) -> Response {
    let value =
        serde_json::from_slice(&body).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into_owned()));
    finish(&inner, id, Outcome::Response(value))
}

async fn error(State(inner): State<Arc<Inner>>, Path(id): Path<String>, body: Bytes) -> Response {
    finish(&inner, id, Outcome::Error(String::from_utf8_lossy(&body).into_owned()))
}

async fn init_error(State(inner): State<Arc<Inner>>, body: Bytes) -> Response {
    if let Ok(mut s) = inner.store.lock() {
        s.init_error = Some(String::from_utf8_lossy(&body).into_owned());
    }
    inner.changed.notify_all();
    (StatusCode::ACCEPTED, "{\"status\":\"OK\"}").into_response()
}
