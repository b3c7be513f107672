//! A scripted Bedrock Agent Runtime.
//!
//! Serves `POST /agents/{agentId}/agentAliases/{agentAliasId}/sessions/{sessionId}/text` on
//! 127.0.0.1 and answers with the real `application/vnd.amazon.eventstream` framing (frames
//! encoded by aws-smithy-eventstream), so the real SDK decodes what a test scripted.
//!
//! Scripts are the JSON files of one directory (events/agent), read in file-name order:
//!
//! ```json
//! { "name": "busy", "match": "busy", "default": false,
//!   "attempts": [
//!     { "error": { "status": 429, "type": "ThrottlingException", "message": "Rate exceeded." } },
//!     { "events": [
//!         { "trace": { "orchestrationTrace": { "rationale": { "traceId": "t-0", "text": "..." } } } },
//!         { "chunk": { "text": "Hello", "attribution": { "citations": [] } }, "delay_ms": 50 },
//!         { "exception": { "type": "throttlingException", "message": "..." } },
//!         { "files": { "files": [ { "name": "a.csv", "type": "text/csv", "bytes": "<base64>" } ] } },
//!         { "returnControl": { "invocationId": "...", "invocationInputs": [] } },
//!         { "cut": true } ] } ] }
//! ```
//!
//! A stall (`{ "stall_ms": 30000 }`) is an agent that hangs: nothing more goes on the wire for
//! that long, then the connection drops. It outlasts the deadline under test yet stops by itself,
//! so an abandoned request never holds the fake.
//!
//! Requests are recorded, with the files of `sessionState.files` decoded ([`RecordedFile`]).
//!
//! The first script whose `match` occurs in the input text (ignoring case) answers, else the
//! `default` one. `attempts[n]` answers the n-th invocation of one session id; the last repeats.
//! `error` is an HTTP error before the stream (x-amzn-errortype + JSON body); `trace` is the
//! Trace union, wrapped in a TracePart with the request's ids; `chunk.text` is base64-encoded
//! for the payload; `exception` is an exception frame; `cut` drops the connection in the middle
//! of the next frame; `stall_ms` is a long silence, then a cut. `delay_ms` pauses before an
//! event's frame goes on the wire.
//!
//! The same server and port also serve the AgentCore data plane (InvokeHarness and
//! InvokeAgentRuntime, scripted in events/harness and events/runtime) when started with
//! [`FakeAgent::start_all`]: see [`crate::fake_agentcore`], which shares the script format, the
//! loading and the pacing defined here.
//!
//! The server runs on its own thread and runtime so one instance outlives every test runtime
//! of a test binary. Pauses and cuts happen on the wire: a listener wraps each connection and
//! paces the bytes axum writes (the response itself is an ordinary complete body).

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::connect_info::Connected;
use axum::extract::{ConnectInfo, Path as UrlPath, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::serve::{IncomingStream, Listener};
use axum::Router;
use base64::Engine as _;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Value};
use shared::domain::AgentBackend;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::oneshot;

use crate::fake_agentcore::AgentCore;
pub use crate::fake_agentcore::RecordedAgentCoreInvoke;

/// One InvokeAgent request the fake received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedInvoke {
    pub agent_id: String,
    pub agent_alias_id: String,
    pub session_id: String,
    pub input_text: String,
    pub enable_trace: bool,
    pub session_attributes: HashMap<String, String>,
    /// `sessionState.files`, decoded.
    pub files: Vec<RecordedFile>,
}

/// One file of a request's `sessionState.files`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedFile {
    pub name: String,
    /// `CODE_INTERPRETER` or `CHAT`.
    pub use_case: String,
    /// `BYTE_CONTENT` or `S3`.
    pub source_type: String,
    pub media_type: String,
    /// The decoded `byteContent.data`.
    pub bytes: Vec<u8>,
}

fn recorded_files(session_state: &Value) -> Vec<RecordedFile> {
    let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
    session_state["files"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|f| RecordedFile {
            name: text(&f["name"]),
            use_case: text(&f["useCase"]),
            source_type: text(&f["source"]["sourceType"]),
            media_type: text(&f["source"]["byteContent"]["mediaType"]),
            bytes: base64::engine::general_purpose::STANDARD
                .decode(f["source"]["byteContent"]["data"].as_str().unwrap_or_default())
                .unwrap_or_default(),
        })
        .collect()
}

/// The running fake; stops when dropped.
pub struct FakeAgent {
    addr: SocketAddr,
    shared: Arc<Shared>,
    agentcore: Arc<AgentCore>,
    shutdown: Option<oneshot::Sender<()>>,
}

impl FakeAgent {
    /// Loads the Classic scripts of `script_dir` and starts serving on a free loopback port
    /// (AgentCore requests find no script).
    pub fn start(script_dir: &Path) -> io::Result<FakeAgent> {
        FakeAgent::serve(load_scripts(script_dir)?, AgentCore::default())
    }

    /// Loads the scripts of every backend under `events_dir` (`agent/`, `harness/`, `runtime/`)
    /// and starts serving them on one free loopback port.
    pub fn start_all(events_dir: &Path) -> io::Result<FakeAgent> {
        let agentcore = AgentCore::load(&events_dir.join("harness"), &events_dir.join("runtime"))?;
        FakeAgent::serve(load_scripts(&events_dir.join("agent"))?, agentcore)
    }

    fn serve(scripts: Vec<Script<ScriptEvent>>, agentcore: AgentCore) -> io::Result<FakeAgent> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared { scripts: Scripts::new(scripts), requests: Mutex::new(Vec::new()) });
        let agentcore = Arc::new(agentcore);
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("fake-agent")
            .enable_all()
            .build()?;
        let (shutdown, stopped) = oneshot::channel::<()>();
        let app = Router::new()
            .route("/agents/{agent_id}/agentAliases/{agent_alias_id}/sessions/{session_id}/text", post(invoke))
            .with_state(shared.clone())
            .merge(crate::fake_agentcore::router(agentcore.clone()));
        std::thread::Builder::new().name("fake-agent".into()).spawn(move || {
            runtime.block_on(async move {
                let listener = match tokio::net::TcpListener::from_std(listener) {
                    Ok(l) => PacedListener(l),
                    Err(e) => return eprintln!("fake agent: {e}"),
                };
                let service = app.into_make_service_with_connect_info::<Wire>();
                let served = axum::serve(listener, service).with_graceful_shutdown(async {
                    let _ = stopped.await;
                });
                if let Err(e) = served.await {
                    eprintln!("fake agent: {e}");
                }
            });
        })?;
        Ok(FakeAgent { addr, shared, agentcore, shutdown: Some(shutdown) })
    }

    /// `http://127.0.0.1:PORT`, for the SDK's `endpoint_url` (the Classic and AgentCore clients alike).
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every InvokeAgent request received so far, in arrival order.
    pub fn requests(&self) -> Vec<RecordedInvoke> {
        self.shared.requests.lock().map(|r| r.clone()).unwrap_or_default()
    }

    /// The InvokeAgent requests of one session, in arrival order.
    pub fn requests_for(&self, session_id: &str) -> Vec<RecordedInvoke> {
        self.requests().into_iter().filter(|r| r.session_id == session_id).collect()
    }

    /// The names of the loaded Classic scripts, in matching order.
    pub fn script_names(&self) -> Vec<String> {
        self.shared.scripts.names()
    }

    /// Every InvokeHarness and InvokeAgentRuntime request received so far, in arrival order.
    pub fn agentcore_requests(&self) -> Vec<RecordedAgentCoreInvoke> {
        self.agentcore.requests()
    }

    /// The AgentCore requests (either operation) of one runtime session, in arrival order.
    pub fn agentcore_requests_for(&self, session_id: &str) -> Vec<RecordedAgentCoreInvoke> {
        self.agentcore_requests().into_iter().filter(|r| r.session_id == session_id).collect()
    }

    /// The InvokeHarness requests received so far.
    pub fn harness_requests(&self) -> Vec<RecordedAgentCoreInvoke> {
        self.agentcore_requests().into_iter().filter(|r| r.backend == AgentBackend::Harness).collect()
    }

    /// The InvokeAgentRuntime requests received so far.
    pub fn runtime_requests(&self) -> Vec<RecordedAgentCoreInvoke> {
        self.agentcore_requests().into_iter().filter(|r| r.backend == AgentBackend::Runtime).collect()
    }

    /// The names of the loaded scripts of an AgentCore backend, in matching order (Classic: see
    /// [`FakeAgent::script_names`]).
    pub fn agentcore_script_names(&self, backend: AgentBackend) -> Vec<String> {
        self.agentcore.script_names(backend)
    }
}

impl Drop for FakeAgent {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Scripts

/// One script file, of any backend: `E` is the backend's event.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, bound(deserialize = "E: Deserialize<'de>"))]
pub(crate) struct Script<E> {
    pub(crate) name: String,
    /// For the humans reading the script.
    #[serde(default)]
    #[allow(dead_code)]
    description: Option<String>,
    #[serde(rename = "match", default)]
    matches: Option<String>,
    #[serde(default)]
    default: bool,
    attempts: Vec<Attempt<E>>,
}

/// One invocation's answer: an HTTP error before the stream, or the stream's events.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, bound(deserialize = "E: Deserialize<'de>"))]
pub(crate) struct Attempt<E> {
    #[serde(default)]
    pub(crate) error: Option<HttpError>,
    #[serde(default)]
    pub(crate) events: Option<Vec<E>>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct HttpError {
    pub(crate) status: u16,
    #[serde(rename = "type")]
    pub(crate) error_type: String,
    pub(crate) message: String,
}

/// A script event of some backend, checked when its script is loaded.
pub(crate) trait ScriptedEvent: DeserializeOwned {
    /// Why the event is malformed (e.g. not exactly one kind), if it is.
    fn check(&self) -> Result<(), String>;
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ScriptEvent {
    #[serde(default)]
    delay_ms: u64,
    #[serde(default)]
    chunk: Option<ChunkEvent>,
    #[serde(default)]
    trace: Option<Value>,
    #[serde(default)]
    exception: Option<ExceptionEvent>,
    #[serde(default)]
    files: Option<Value>,
    #[serde(rename = "returnControl", default)]
    return_control: Option<Value>,
    #[serde(default)]
    cut: Option<bool>,
    /// Silence for this long, then a cut: the stream stalls past a deadline but ends by itself.
    #[serde(default)]
    stall_ms: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ChunkEvent {
    text: String,
    #[serde(default)]
    attribution: Option<Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExceptionEvent {
    #[serde(rename = "type")]
    exception_type: String,
    message: String,
}

impl ScriptedEvent for ScriptEvent {
    fn check(&self) -> Result<(), String> {
        let set = [
            self.chunk.is_some(),
            self.trace.is_some(),
            self.exception.is_some(),
            self.files.is_some(),
            self.return_control.is_some(),
            self.cut == Some(true),
            self.stall_ms.is_some(),
        ];
        exactly_one(&set, "chunk, trace, exception, files, returnControl, cut, stall_ms")
    }
}

/// `Ok` when exactly one of `set` holds, else the message naming `kinds`.
pub(crate) fn exactly_one(set: &[bool], kinds: &str) -> Result<(), String> {
    match set.iter().filter(|s| **s).count() {
        1 => Ok(()),
        _ => Err(format!("each event needs exactly one of {kinds}")),
    }
}

fn invalid(path: &Path, why: impl std::fmt::Display) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("{}: {why}", path.display()))
}

/// The scripts of one directory, in file-name order, each checked.
pub(crate) fn load_scripts<E: ScriptedEvent>(dir: &Path) -> io::Result<Vec<Script<E>>> {
    let mut paths: Vec<_> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    paths.sort();
    let mut scripts = Vec::new();
    for path in paths {
        let script: Script<E> = serde_json::from_slice(&std::fs::read(&path)?).map_err(|e| invalid(&path, e))?;
        if script.attempts.is_empty() {
            return Err(invalid(&path, "no attempts"));
        }
        for attempt in &script.attempts {
            match (&attempt.error, &attempt.events) {
                (Some(_), None) => {}
                (None, Some(events)) => {
                    for event in events {
                        event.check().map_err(|e| invalid(&path, e))?;
                    }
                }
                _ => return Err(invalid(&path, "an attempt is either {\"error\"} or {\"events\"}")),
            }
        }
        scripts.push(script);
    }
    if scripts.is_empty() {
        return Err(invalid(dir, "no scripts"));
    }
    Ok(scripts)
}

/// Loaded scripts and the invocations seen per session id.
pub(crate) struct Scripts<E> {
    scripts: Vec<Script<E>>,
    attempts: Mutex<HashMap<String, usize>>,
}

impl<E> Default for Scripts<E> {
    fn default() -> Self {
        Scripts::new(Vec::new())
    }
}

impl<E> Scripts<E> {
    pub(crate) fn new(scripts: Vec<Script<E>>) -> Self {
        Scripts { scripts, attempts: Mutex::new(HashMap::new()) }
    }

    pub(crate) fn names(&self) -> Vec<String> {
        self.scripts.iter().map(|s| s.name.clone()).collect()
    }

    /// The first script whose `match` occurs in `input` (ignoring case), else the default one.
    fn script_for(&self, input: &str) -> Option<&Script<E>> {
        let input = input.to_lowercase();
        self.scripts
            .iter()
            .find(|s| s.matches.as_ref().is_some_and(|m| !m.is_empty() && input.contains(&m.to_lowercase())))
            .or_else(|| self.scripts.iter().find(|s| s.default))
    }

    /// Counts one invocation of `session_id` and picks its answer: the script matching `input`,
    /// its attempt for this invocation (the last one repeats). An error response when none fits.
    pub(crate) fn answer(&self, session_id: &str, input: &str) -> Result<(&Script<E>, &Attempt<E>), Box<Response>> {
        let n = match self.attempts.lock() {
            Ok(mut a) => {
                let n = a.entry(session_id.to_owned()).or_insert(0);
                *n += 1;
                *n - 1
            }
            Err(_) => 0,
        };
        let Some(script) = self.script_for(input) else {
            return Err(Box::new(error_response(
                400,
                "ValidationException",
                "no script matches this input and none is the default",
            )));
        };
        match script.attempts.get(n).or(script.attempts.last()) {
            Some(attempt) => Ok((script, attempt)),
            None => Err(Box::new(error_response(500, "InternalServerException", "script without attempts"))),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The handler

struct Shared {
    scripts: Scripts<ScriptEvent>,
    requests: Mutex<Vec<RecordedInvoke>>,
}

async fn invoke(
    State(shared): State<Arc<Shared>>,
    ConnectInfo(wire): ConnectInfo<Wire>,
    UrlPath((agent_id, agent_alias_id, session_id)): UrlPath<(String, String, String)>,
    body: Bytes,
) -> Response {
    let request: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => return error_response(400, "ValidationException", &format!("request body: {e}")),
    };
    let input_text = request["inputText"].as_str().unwrap_or_default().to_string();
    let session_attributes = request["sessionState"]["sessionAttributes"]
        .as_object()
        .map(|m| m.iter().map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string())).collect())
        .unwrap_or_default();
    let recorded = RecordedInvoke {
        agent_id: agent_id.clone(),
        agent_alias_id: agent_alias_id.clone(),
        session_id: session_id.clone(),
        input_text: input_text.clone(),
        enable_trace: request["enableTrace"].as_bool().unwrap_or(false),
        session_attributes,
        files: recorded_files(&request["sessionState"]),
    };
    if let Ok(mut r) = shared.requests.lock() {
        r.push(recorded);
    }
    let (script, attempt) = match shared.scripts.answer(&session_id, &input_text) {
        Ok(found) => found,
        Err(response) => return *response,
    };
    if let Some(err) = &attempt.error {
        return error_response(err.status, &err.error_type, &err.message);
    }
    let ids = Ids { agent_id: &agent_id, agent_alias_id: &agent_alias_id, session_id: &session_id };
    let (body, plan) = match render(attempt.events.as_deref().unwrap_or_default(), &ids) {
        Ok(rendered) => rendered,
        Err(e) => return error_response(500, "InternalServerException", &format!("script {}: {e}", script.name)),
    };
    let mut response = paced_response(&wire, body, plan, "application/vnd.amazon.eventstream");
    let headers = response.headers_mut();
    headers.insert("x-amzn-bedrock-agent-content-type", HeaderValue::from_static("application/json"));
    if let Ok(v) = HeaderValue::from_str(&session_id) {
        headers.insert("x-amz-bedrock-agent-session-id", v);
    }
    response
}

/// A 200 answer whose `body` goes out on the wire as `plan` says.
pub(crate) fn paced_response(wire: &Wire, body: Vec<u8>, plan: WirePlan, content_type: &'static str) -> Response {
    wire.arm(plan);
    let mut response = Response::new(Body::from(body));
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert("x-amzn-requestid", request_id());
    response
}

/// An HTTP error the SDK parses like Bedrock's: the type in x-amzn-errortype, a JSON message.
pub(crate) fn error_response(status: u16, error_type: &str, message: &str) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = (status, axum::Json(json!({ "message": message }))).into_response();
    let headers = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(error_type) {
        headers.insert("x-amzn-errortype", v);
    }
    headers.insert("x-amzn-requestid", request_id());
    response
}

fn request_id() -> HeaderValue {
    let n =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or_default();
    HeaderValue::from_str(&format!("fa4e0000-0000-4000-8000-{:012x}", n & 0xffff_ffff_ffff))
        .unwrap_or(HeaderValue::from_static("fa4e0000-0000-4000-8000-000000000000"))
}

struct Ids<'a> {
    agent_id: &'a str,
    agent_alias_id: &'a str,
    session_id: &'a str,
}

/// The response body (frames, plus the tail a cut withholds) and how to pace it on the wire.
fn render(events: &[ScriptEvent], ids: &Ids<'_>) -> Result<(Vec<u8>, WirePlan), String> {
    let mut body = PacedBody::default();
    for event in events {
        let filler = || frame("event", "chunk", json!({ "bytes": "" }).to_string());
        if body.control(event.delay_ms, event.cut, event.stall_ms, filler)? {
            break;
        }
        let encoded = if let Some(chunk) = &event.chunk {
            let mut payload = json!({ "bytes": base64::engine::general_purpose::STANDARD.encode(&chunk.text) });
            if let Some(attribution) = &chunk.attribution {
                payload["attribution"] = attribution.clone();
            }
            frame("event", "chunk", payload.to_string())?
        } else if let Some(trace) = &event.trace {
            let part = json!({
                "agentId": ids.agent_id,
                "agentAliasId": ids.agent_alias_id,
                "agentVersion": "1",
                "sessionId": ids.session_id,
                "eventTime": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                "trace": trace,
            });
            frame("event", "trace", part.to_string())?
        } else if let Some(files) = &event.files {
            frame("event", "files", files.to_string())?
        } else if let Some(payload) = &event.return_control {
            frame("event", "returnControl", payload.to_string())?
        } else if let Some(e) = &event.exception {
            frame("exception", &e.exception_type, json!({ "message": e.message }).to_string())?
        } else {
            return Err("empty event".into());
        };
        body.push(&encoded);
    }
    Ok(body.finish())
}

pub(crate) fn frame(message_type: &str, kind: &str, payload: String) -> Result<Vec<u8>, String> {
    shared::aws::agent::wire::frame(message_type, kind, &payload)
}

// ---------------------------------------------------------------------------------------------
// Pacing on the wire

/// How the next response body on a connection goes out: pauses at body offsets, an optional
/// cut (the connection drops once that many body bytes went out).
#[derive(Debug, Default)]
pub(crate) struct WirePlan {
    pub(crate) pauses: VecDeque<(usize, Duration)>,
    pub(crate) cut_at: Option<usize>,
    body_len: usize,
}

/// A response body being written with its wire plan: pauses before events, and a cut.
#[derive(Debug, Default)]
pub(crate) struct PacedBody {
    body: Vec<u8>,
    plan: WirePlan,
}

impl PacedBody {
    /// Applies an event's pacing: `delay_ms` before it; a `stall_ms` silence then a cut, or a
    /// `cut`, each withholding half of `filler` (bytes declared but never fully sent). True
    /// when the stream ends here.
    pub(crate) fn control(
        &mut self,
        delay_ms: u64,
        cut: Option<bool>,
        stall_ms: Option<u64>,
        filler: impl FnOnce() -> Result<Vec<u8>, String>,
    ) -> Result<bool, String> {
        self.pause(delay_ms);
        if let Some(stall) = stall_ms {
            self.pause(stall);
        }
        if cut == Some(true) || stall_ms.is_some() {
            let filler = filler()?;
            self.plan.cut_at = Some(self.body.len() + filler.len() / 2);
            self.body.extend_from_slice(&filler);
            return Ok(true);
        }
        Ok(false)
    }

    fn pause(&mut self, ms: u64) {
        if ms > 0 {
            self.plan.pauses.push_back((self.body.len(), Duration::from_millis(ms)));
        }
    }

    pub(crate) fn push(&mut self, bytes: &[u8]) {
        self.body.extend_from_slice(bytes);
    }

    pub(crate) fn finish(mut self) -> (Vec<u8>, WirePlan) {
        self.plan.body_len = self.body.len();
        (self.body, self.plan)
    }
}

/// A connection's plan slot, reachable from handlers as connect info.
#[derive(Debug, Clone, Default)]
pub(crate) struct Wire(Arc<Mutex<Option<WirePlan>>>);

impl Wire {
    fn arm(&self, plan: WirePlan) {
        if let Ok(mut slot) = self.0.lock() {
            *slot = Some(plan);
        }
    }

    fn take(&self) -> Option<WirePlan> {
        self.0.lock().ok().and_then(|mut slot| slot.take())
    }
}

impl Connected<IncomingStream<'_, PacedListener>> for Wire {
    fn connect_info(stream: IncomingStream<'_, PacedListener>) -> Self {
        stream.io().wire.clone()
    }
}

struct PacedListener(tokio::net::TcpListener);

impl Listener for PacedListener {
    type Io = PacedStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            match self.0.accept().await {
                Ok((stream, addr)) => {
                    let _ = stream.set_nodelay(true);
                    return (PacedStream::new(stream), addr);
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(5)).await,
            }
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.0.local_addr()
    }
}

/// A response being paced: first the head passes untouched, then the body per the plan.
struct Pacing {
    plan: WirePlan,
    /// The last bytes of the head written so far, to find its end across writes.
    head_tail: Vec<u8>,
    in_body: bool,
    body_pos: usize,
}

struct PacedStream {
    inner: TcpStream,
    wire: Wire,
    pacing: Option<Pacing>,
    pause: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl PacedStream {
    fn new(inner: TcpStream) -> Self {
        PacedStream { inner, wire: Wire::default(), pacing: None, pause: None }
    }
}

impl AsyncRead for PacedStream {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for PacedStream {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        loop {
            if this.pacing.is_none() {
                // A plan is armed by the handler before its response is written.
                this.pacing =
                    this.wire.take().map(|plan| Pacing { plan, head_tail: Vec::new(), in_body: false, body_pos: 0 });
            }
            let Some(pacing) = this.pacing.as_mut() else {
                return Pin::new(&mut this.inner).poll_write(cx, buf);
            };
            if !pacing.in_body {
                let end = head_end(&pacing.head_tail, buf);
                let limit = end.unwrap_or(buf.len());
                if limit == 0 {
                    pacing.in_body = true;
                    continue;
                }
                let written = std::task::ready!(Pin::new(&mut this.inner).poll_write(cx, &buf[..limit]))?;
                pacing.head_tail.extend_from_slice(&buf[..written]);
                let keep_from = pacing.head_tail.len().saturating_sub(3);
                pacing.head_tail.drain(..keep_from);
                if end == Some(written) {
                    pacing.in_body = true;
                }
                return Poll::Ready(Ok(written));
            }
            if pacing.body_pos >= pacing.plan.body_len {
                this.pacing = None;
                continue;
            }
            if let Some(&(at, delay)) = pacing.plan.pauses.front() {
                if at <= pacing.body_pos {
                    let sleep = this.pause.get_or_insert_with(|| Box::pin(tokio::time::sleep(delay)));
                    std::task::ready!(sleep.as_mut().poll(cx));
                    this.pause = None;
                    pacing.plan.pauses.pop_front();
                    continue;
                }
            }
            if let Some(cut) = pacing.plan.cut_at {
                if pacing.body_pos >= cut {
                    this.pacing = None;
                    return Poll::Ready(Err(io::Error::new(io::ErrorKind::ConnectionReset, "scripted cut")));
                }
            }
            let mut limit = buf.len().min(pacing.plan.body_len - pacing.body_pos);
            if let Some(&(at, _)) = pacing.plan.pauses.front() {
                limit = limit.min(at - pacing.body_pos);
            }
            if let Some(cut) = pacing.plan.cut_at {
                limit = limit.min(cut - pacing.body_pos);
            }
            let written = std::task::ready!(Pin::new(&mut this.inner).poll_write(cx, &buf[..limit]))?;
            pacing.body_pos += written;
            if pacing.body_pos >= pacing.plan.body_len {
                this.pacing = None;
            }
            return Poll::Ready(Ok(written));
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// How many bytes of `buf` belong to the response head, when the head ends inside `buf`
/// (`tail` is the end of the head written before).
fn head_end(tail: &[u8], buf: &[u8]) -> Option<usize> {
    let mut joined = Vec::with_capacity(tail.len() + buf.len().min(64 * 1024));
    joined.extend_from_slice(tail);
    joined.extend_from_slice(buf);
    joined.windows(4).position(|w| w == b"\r\n\r\n").map(|i| (i + 4).saturating_sub(tail.len()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn head_end_is_found_across_writes() {
        assert_eq!(head_end(b"", b"HTTP/1.1 200 OK\r\nA: b\r\n\r\nBODY"), Some(25));
        assert_eq!(head_end(b"", b"HTTP/1.1 200 OK\r\nA: b\r\n"), None);
        assert_eq!(head_end(b"b\r\n", b"\r\nBODY"), Some(2));
        assert_eq!(head_end(b"\r\n\r", b"\nBODY"), Some(1));
    }

    #[test]
    fn cut_withholds_half_a_frame_and_pauses_sit_at_frame_offsets() {
        let events: Vec<ScriptEvent> = serde_json::from_value(json!([
            { "chunk": { "text": "Hello" } },
            { "delay_ms": 15, "trace": { "failureTrace": { "traceId": "t", "failureReason": "x" } } },
            { "cut": true },
            { "chunk": { "text": "never sent" } }
        ]))
        .unwrap();
        let ids = Ids { agent_id: "A", agent_alias_id: "B", session_id: "S" };
        let (body, plan) = render(&events, &ids).unwrap();
        let first = frame("event", "chunk", json!({ "bytes": "SGVsbG8=" }).to_string()).unwrap();
        assert_eq!(&body[..first.len()], &first[..]);
        assert_eq!(plan.pauses, VecDeque::from([(first.len(), Duration::from_millis(15))]));
        let cut = plan.cut_at.unwrap();
        assert!(cut > first.len() && cut < body.len(), "{cut} of {}", body.len());
        assert_eq!(plan.body_len, body.len());
    }

    #[test]
    fn a_stall_is_a_long_silence_then_a_cut() {
        let events: Vec<ScriptEvent> = serde_json::from_value(json!([
            { "chunk": { "text": "Hello" } },
            { "stall_ms": 30000 },
            { "chunk": { "text": "never sent" } }
        ]))
        .unwrap();
        let ids = Ids { agent_id: "A", agent_alias_id: "B", session_id: "S" };
        let (body, plan) = render(&events, &ids).unwrap();
        let first = frame("event", "chunk", json!({ "bytes": "SGVsbG8=" }).to_string()).unwrap();
        assert_eq!(plan.pauses, VecDeque::from([(first.len(), Duration::from_secs(30))]));
        let cut = plan.cut_at.unwrap();
        assert!(cut > first.len() && cut < body.len(), "{cut} of {}", body.len());
    }
}
