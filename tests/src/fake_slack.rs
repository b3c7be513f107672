//! A fake Slack Web API on loopback: it records every call (method, parameters, whether the bot
//! token was presented), answers like Slack does, keeps threads for `conversations.replies`
//! (with each message's Block Kit blocks), streams replies (`chat.startStream` / `appendStream` /
//! `stopStream`, the streamed text assembled as the user sees it), and injects faults (rate
//! limits, 5xx, Slack errors, a refusal of table blocks or of streaming) on demand.
//!
//! The server runs on its own thread and runtime, so one instance ([`FakeSlack::shared`]) can
//! serve every test of a binary concurrently; tests keep apart by using their own channel ids.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use serde_json::{json, Map, Value};
use tokio::sync::oneshot;

/// The bot token the fake expects unless started with [`FakeSlack::new_with_token`].
pub const BOT_TOKEN: &str = "xoxb-test-token";
/// The bot's user id, as `auth.test` reports it and as posted messages carry it.
pub const BOT_USER_ID: &str = "UBOT";
/// The bot's bot id.
pub const BOT_ID: &str = "BBOT";
/// The workspace id.
pub const TEAM_ID: &str = "T0001";

/// A file shared in a channel through the external upload flow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SharedFile {
    pub file_id: String,
    /// The filename given to `files.getUploadURLExternal`.
    pub filename: String,
    /// The title given to `files.completeUploadExternal`.
    pub title: String,
    /// The bytes received at the upload URL.
    pub bytes: Vec<u8>,
    /// The thread it was shared in, if any.
    pub thread_ts: Option<String>,
}

/// A failure to inject into the next matching call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// HTTP 429 with `Retry-After: <secs>` and `{"ok":false,"error":"ratelimited"}`.
    RateLimited { retry_after_secs: u64 },
    /// HTTP 500 with an HTML body.
    ServerError,
    /// HTTP 500 with an HTML body after doing what was asked (a post that lands although the
    /// caller sees a failure).
    ServerErrorAfterDoing,
    /// HTTP 200 with `{"ok":false,"error":<this>}`.
    SlackError(String),
}

/// One request the fake received.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedCall {
    /// The Web API method, e.g. `chat.postMessage`.
    pub method: String,
    /// `GET` or `POST`.
    pub http_method: String,
    /// The query string and the body (JSON or form-encoded) merged into one JSON object;
    /// form values are strings.
    pub params: Value,
    /// Whether `Authorization: Bearer <expected token>` was sent.
    pub authorized: bool,
    /// The raw query string and body, for checks on exactly what was sent.
    pub raw_query: String,
    pub raw_body: String,
    /// Every request header except `Authorization`.
    pub headers: Vec<(String, String)>,
    /// The fault injected into this call, if any.
    pub fault: Option<Fault>,
}

impl RecordedCall {
    /// A string parameter (`""` when absent or not a string).
    pub fn param(&self, name: &str) -> &str {
        self.params.get(name).and_then(Value::as_str).unwrap_or_default()
    }

    /// The Block Kit blocks sent with the call (`blocks`), if any.
    pub fn blocks(&self) -> Option<&Vec<Value>> {
        self.params.get("blocks").and_then(Value::as_array)
    }
}

/// Whether `blocks` (a call's `blocks` parameter) hold a `table` block.
fn has_table(blocks: Option<&Value>) -> bool {
    blocks.and_then(Value::as_array).is_some_and(|b| b.iter().any(|block| block["type"] == "table"))
}

struct PendingFault {
    method: String,
    channel: Option<String>,
    fault: Fault,
}

#[derive(Default)]
struct Store {
    calls: Vec<RecordedCall>,
    faults: Vec<PendingFault>,
    /// (channel, thread ts) -> messages, oldest first.
    threads: HashMap<(String, String), Vec<Value>>,
    ts_counter: u64,
    /// Files of the external upload flow: file id -> (filename, bytes received at its upload URL).
    uploads: HashMap<String, (String, Vec<u8>)>,
    /// Users' files served at `/files/<id>/<name>`: id -> (content type, bytes).
    hosted: HashMap<String, (String, Vec<u8>)>,
    /// When each call of `calls` arrived (same index): every request records exactly one call.
    times: Vec<std::time::Instant>,
    /// Channels where messages with a table block are refused with `invalid_blocks`.
    refuse_tables: std::collections::HashSet<String>,
    /// users.info fields by user id (`is_restricted`, `team_id`...), set with `set_user`.
    users: HashMap<String, Value>,
    /// Channels where `chat.startStream` is refused (`refuse_streaming`), with the error.
    refuse_streams: HashMap<String, String>,
}

struct Inner {
    /// The bot token accepted now ([`FakeSlack::rotate_token`] replaces it).
    token: Mutex<String>,
    /// Unix seconds at start: posted messages get ts values after it.
    base_secs: u64,
    /// `http://ADDR/upload/`: where `files.getUploadURLExternal` sends the bytes.
    upload_base: String,
    store: Mutex<Store>,
}

impl Inner {
    fn store(&self) -> MutexGuard<'_, Store> {
        // A panicking test must not take the shared fake down with it.
        self.store.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A running fake Slack Web API. Dropping it stops the server.
pub struct FakeSlack {
    addr: SocketAddr,
    inner: Arc<Inner>,
    shutdown: Option<oneshot::Sender<()>>,
}

impl std::fmt::Debug for FakeSlack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeSlack").field("addr", &self.addr).finish_non_exhaustive()
    }
}

impl Drop for FakeSlack {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

impl FakeSlack {
    /// Starts a fake expecting [`BOT_TOKEN`] on 127.0.0.1 and an ephemeral port.
    pub fn start() -> std::io::Result<FakeSlack> {
        Self::new_with_token(BOT_TOKEN)
    }

    /// The fake shared by every test of this binary, started on first use.
    pub fn shared() -> std::io::Result<&'static FakeSlack> {
        static SHARED: OnceLock<Result<FakeSlack, String>> = OnceLock::new();
        SHARED
            .get_or_init(|| FakeSlack::start().map_err(|e| e.to_string()))
            .as_ref()
            .map_err(|e| std::io::Error::other(format!("fake Slack did not start: {e}")))
    }

    /// Starts a fake that accepts `token` as the bot token.
    pub fn new_with_token(token: &str) -> std::io::Result<FakeSlack> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("fake-slack")
            .enable_all()
            .build()?;
        let base_secs = SystemTime::now().duration_since(UNIX_EPOCH).map_or(1_700_000_000, |d| d.as_secs());
        let upload_base = format!("http://{addr}/upload/");
        let inner = Arc::new(Inner {
            token: Mutex::new(token.to_string()),
            base_secs,
            upload_base,
            store: Mutex::new(Store::default()),
        });
        let app = Router::new().fallback(handle).with_state(Arc::clone(&inner));
        let (shutdown, stopped) = oneshot::channel::<()>();
        std::thread::Builder::new().name("fake-slack".into()).spawn(move || {
            runtime.block_on(async move {
                let listener = match tokio::net::TcpListener::from_std(listener) {
                    Ok(l) => l,
                    Err(e) => {
                        eprintln!("fake Slack: cannot listen: {e}");
                        return;
                    }
                };
                let _ = axum::serve(listener, app)
                    .with_graceful_shutdown(async {
                        let _ = stopped.await;
                    })
                    .await;
            });
        })?;
        Ok(FakeSlack { addr, inner, shutdown: Some(shutdown) })
    }

    /// The Web API base URL to give a client, e.g. `http://127.0.0.1:PORT/api`.
    pub fn api_base(&self) -> String {
        format!("http://{}/api", self.addr)
    }

    /// Every call received so far, in order.
    pub fn calls(&self) -> Vec<RecordedCall> {
        self.inner.store().calls.clone()
    }

    /// The calls whose `channel` parameter is `channel`.
    pub fn calls_for(&self, channel: &str) -> Vec<RecordedCall> {
        self.inner
            .store()
            .calls
            .iter()
            .filter(|c| c.params.get("channel").and_then(Value::as_str) == Some(channel))
            .cloned()
            .collect()
    }

    /// Every call so far with the time it arrived, in order (for rate checks).
    pub fn timed_calls(&self) -> Vec<(RecordedCall, std::time::Instant)> {
        let store = self.inner.store();
        store.calls.iter().cloned().zip(store.times.iter().copied()).collect()
    }

    /// The calls in `channel` addressed by `channel` or, like `assistant.threads.setStatus` and
    /// the upload flow, by `channel_id`, each with the time it arrived.
    pub fn timed_calls_in(&self, channel: &str) -> Vec<(RecordedCall, std::time::Instant)> {
        self.timed_calls()
            .into_iter()
            .filter(|(c, _)| c.param("channel") == channel || c.param("channel_id") == channel)
            .collect()
    }

    /// The `assistant.threads.setStatus` statuses set in `channel`, in order (`""` = cleared).
    pub fn assistant_statuses(&self, channel: &str) -> Vec<String> {
        self.timed_calls_in(channel)
            .into_iter()
            .filter(|(c, _)| c.method == "assistant.threads.setStatus" && c.fault.is_none() && c.authorized)
            .map(|(c, _)| c.param("status").to_string())
            .collect()
    }

    /// The calls of `method` in `channel` (by `channel` or `channel_id`) that Slack answered
    /// with `ok: true`, in order.
    fn answered(&self, method: &str, channel: &str) -> Vec<RecordedCall> {
        self.timed_calls_in(channel).into_iter().map(|(c, _)| c).filter(|c| c.method == method && accepted(c)).collect()
    }

    /// The `assistant.threads.setSuggestedPrompts` calls Slack accepted in `channel`, in order:
    /// (thread ts, title, prompts as sent).
    pub fn suggested_prompts(&self, channel: &str) -> Vec<(String, String, Value)> {
        self.answered("assistant.threads.setSuggestedPrompts", channel)
            .into_iter()
            .map(|c| (c.param("thread_ts").to_string(), c.param("title").to_string(), c.params["prompts"].clone()))
            .collect()
    }

    /// The `assistant.threads.setTitle` calls Slack accepted in `channel`, in order:
    /// (thread ts, title).
    pub fn assistant_titles(&self, channel: &str) -> Vec<(String, String)> {
        self.answered("assistant.threads.setTitle", channel)
            .into_iter()
            .map(|c| (c.param("thread_ts").to_string(), c.param("title").to_string()))
            .collect()
    }

    /// The Home tab views published for `user` (`views.publish` calls Slack accepted), in order.
    pub fn published_views(&self, user: &str) -> Vec<Value> {
        self.calls()
            .into_iter()
            .filter(|c| c.method == "views.publish" && accepted(c) && c.param("user_id") == user)
            .map(|c| match &c.params["view"] {
                Value::String(s) => serde_json::from_str(s).unwrap_or(Value::Null),
                v => v.clone(),
            })
            .collect()
    }

    /// The texts the bot posted in `channel` (successful `chat.postMessage` calls), in order.
    pub fn posted_texts(&self, channel: &str) -> Vec<String> {
        self.calls_for(channel)
            .into_iter()
            .filter(|c| c.method == "chat.postMessage" && c.fault.is_none() && c.authorized)
            .map(|c| c.param("text").to_string())
            .collect()
    }

    /// The ephemeral messages the bot showed in `channel` (successful `chat.postEphemeral`
    /// calls), in order.
    pub fn ephemerals(&self, channel: &str) -> Vec<RecordedCall> {
        self.calls_for(channel)
            .into_iter()
            .filter(|c| c.method == "chat.postEphemeral" && c.fault.is_none() && c.authorized)
            .collect()
    }

    /// Sets the messages `conversations.replies` returns for the thread (oldest first; each
    /// should have at least `ts`). Messages the bot posts in the thread are appended.
    pub fn seed_thread(&self, channel: &str, thread_ts: &str, messages: Vec<Value>) {
        self.inner.store().threads.insert((channel.to_string(), thread_ts.to_string()), messages);
    }

    /// Every thread as it stands now (edits applied), keyed by (channel, thread ts), messages
    /// oldest first: what a Slack user would see.
    pub fn threads(&self) -> std::collections::BTreeMap<(String, String), Vec<Value>> {
        self.inner.store().threads.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
    }

    /// `127.0.0.1:PORT`: the fake's host, as an entry of SLACK_FILE_HOSTS.
    pub fn host(&self) -> String {
        self.addr.to_string()
    }

    /// Serves `bytes` as a user's upload (the bot token is required, as Slack requires it);
    /// returns its `url_private_download`. Downloads are recorded as `files.download` calls.
    pub fn host_file(&self, id: &str, name: &str, content_type: &str, bytes: &[u8]) -> String {
        self.inner.store().hosted.insert(id.to_string(), (content_type.to_string(), bytes.to_vec()));
        format!("http://{}/files/{id}/{name}", self.addr)
    }

    /// A URL on this fake that redirects (302) to `to`; requests are recorded as `redirect`.
    pub fn redirect_url(&self, to: &str) -> String {
        let mut encoded = String::new();
        for b in to.bytes() {
            match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => encoded.push(b as char),
                _ => encoded.push_str(&format!("%{b:02X}")),
            }
        }
        format!("http://{}/redirect?to={encoded}", self.addr)
    }

    /// The files shared with `files.completeUploadExternal` in `channel`, in order.
    pub fn shared_files(&self, channel: &str) -> Vec<SharedFile> {
        let store = self.inner.store();
        store
            .calls
            .iter()
            .filter(|c| c.method == "files.completeUploadExternal" && c.fault.is_none() && c.authorized)
            .filter(|c| c.param("channel_id") == channel)
            .flat_map(|c| {
                let thread_ts = c.params.get("thread_ts").and_then(Value::as_str).map(str::to_string);
                let ids: Vec<(String, String)> = c
                    .params
                    .get("files")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .map(|f| {
                        let field = |k: &str| f.get(k).and_then(Value::as_str).unwrap_or_default().to_string();
                        (field("id"), field("title"))
                    })
                    .collect();
                ids.into_iter().map(move |(id, title)| (id, title, thread_ts.clone()))
            })
            .map(|(file_id, title, thread_ts)| {
                let (filename, bytes) = store.uploads.get(&file_id).cloned().unwrap_or_default();
                SharedFile { file_id, filename, title, bytes, thread_ts }
            })
            .collect()
    }

    /// The bytes uploaded for `file_id` through the external upload flow, with its filename.
    pub fn uploaded(&self, file_id: &str) -> Option<(String, Vec<u8>)> {
        self.inner.store().uploads.get(file_id).cloned()
    }

    /// What users.info answers for `user` on top of a plain member of [`TEAM_ID`], e.g.
    /// `{"is_restricted": true}` for a guest or `{"team_id": "T0THEM"}` for a Slack Connect user.
    pub fn set_user(&self, user: &str, fields: Value) {
        self.inner.store().users.insert(user.to_string(), fields);
    }

    /// From now on, refuses every `chat.postMessage` and `chat.update` in `channel` that carries
    /// a `table` block, with `invalid_blocks` (as a workspace without table blocks would); the
    /// refused calls are recorded with that fault.
    pub fn refuse_table_blocks(&self, channel: &str) {
        self.inner.store().refuse_tables.insert(channel.to_string());
    }

    /// From now on, refuses every `chat.startStream` in `channel` with `error` (as a workspace or
    /// channel without streaming would, e.g. `not_allowed_token_type`); recorded as that fault.
    pub fn refuse_streaming(&self, channel: &str, error: &str) {
        self.inner.store().refuse_streams.insert(channel.to_string(), error.to_string());
    }

    /// The message `ts` in `channel` as a Slack user sees it now (edits and streamed text
    /// applied): for a streamed message `text` is the Markdown assembled from its start, appends
    /// and stop, `streaming_state` is `in_progress` or `completed`, and `tasks` holds the last
    /// state of each `task_update` chunk by id.
    pub fn message(&self, channel: &str, ts: &str) -> Option<Value> {
        self.inner
            .store()
            .threads
            .iter()
            .filter(|((c, _), _)| c == channel)
            .flat_map(|(_, messages)| messages.iter())
            .find(|m| m.get("ts").and_then(Value::as_str) == Some(ts))
            .cloned()
    }

    /// The Block Kit blocks of message `ts` in `channel` as a Slack user sees it now (edits
    /// applied); None for a text-only message.
    pub fn message_blocks(&self, channel: &str, ts: &str) -> Option<Value> {
        self.inner
            .store()
            .threads
            .iter()
            .filter(|((c, _), _)| c == channel)
            .flat_map(|(_, messages)| messages.iter())
            .find(|m| m.get("ts").and_then(Value::as_str) == Some(ts))
            .and_then(|m| m.get("blocks").cloned())
    }

    /// Makes the next call of `method` (in `channel`, when given) fail with `fault`. Faults
    /// queue: several for the same call apply to successive calls, in order.
    pub fn fail_next(&self, method: &str, channel: Option<&str>, fault: Fault) {
        self.fail_times(method, channel, fault, 1);
    }

    /// Makes the next `times` calls of `method` (in `channel`, when given) fail with `fault`.
    pub fn fail_times(&self, method: &str, channel: Option<&str>, fault: Fault, times: usize) {
        let mut store = self.inner.store();
        for _ in 0..times {
            store.faults.push(PendingFault {
                method: method.to_string(),
                channel: channel.map(str::to_string),
                fault: fault.clone(),
            });
        }
    }

    /// From now on accepts only `token` (a rotation or reinstall of the app): calls with the
    /// old one get `invalid_auth`.
    pub fn rotate_token(&self, token: &str) {
        *self.inner.token.lock().unwrap_or_else(PoisonError::into_inner) = token.to_string();
    }
}

async fn handle(
    State(inner): State<Arc<Inner>>,
    http_method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path();
    let method = path.strip_prefix("/api/").unwrap_or(path.trim_start_matches('/')).to_string();
    let raw_query = uri.query().unwrap_or_default().to_string();
    let raw_body = String::from_utf8_lossy(&body).into_owned();

    let mut params = parse_form(&raw_query);
    let is_json = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|v| v.contains("json"))
        || raw_body.trim_start().starts_with('{');
    if is_json {
        if let Ok(Value::Object(fields)) = serde_json::from_str::<Value>(&raw_body) {
            params.extend(fields);
        }
    } else {
        params.extend(parse_form(&raw_body));
    }
    let params = Value::Object(params);

    let authorization = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
    let token = inner.token.lock().unwrap_or_else(PoisonError::into_inner).clone();
    let authorized = authorization == Some(format!("Bearer {token}").as_str());
    let recorded_headers = headers
        .iter()
        .filter(|(name, _)| *name != header::AUTHORIZATION)
        .map(|(name, value)| (name.to_string(), String::from_utf8_lossy(value.as_bytes()).into_owned()))
        .collect();
    // files.completeUploadExternal names its channel `channel_id`.
    let channel =
        params.get("channel").or_else(|| params.get("channel_id")).and_then(Value::as_str).map(str::to_string);

    let mut store = inner.store();
    store.times.push(std::time::Instant::now());
    // A user's file: served only with the bot token, like `url_private_download`.
    if let Some(rest) = method.strip_prefix("files/") {
        let id = rest.split('/').next().unwrap_or_default().to_string();
        let hosted = store.hosted.get(&id).cloned();
        store.calls.push(RecordedCall {
            method: "files.download".into(),
            http_method: http_method.to_string(),
            params: json!({ "file_id": id }),
            authorized,
            raw_query,
            raw_body: String::new(),
            headers: recorded_headers,
            fault: None,
        });
        return match hosted {
            Some(_) if !authorized => (StatusCode::FORBIDDEN, "not authorized").into_response(),
            Some((content_type, bytes)) => ([(header::CONTENT_TYPE, content_type)], bytes).into_response(),
            None => (StatusCode::NOT_FOUND, "no such file").into_response(),
        };
    }
    if method == "redirect" {
        let to = parse_form(&raw_query).get("to").and_then(Value::as_str).unwrap_or_default().to_string();
        store.calls.push(RecordedCall {
            method: "redirect".into(),
            http_method: http_method.to_string(),
            params: json!({ "to": to }),
            authorized,
            raw_query,
            raw_body: String::new(),
            headers: recorded_headers,
            fault: None,
        });
        return (StatusCode::FOUND, [(header::LOCATION, to)]).into_response();
    }
    // An upload URL of the external upload flow: pre-signed, so no bot token is expected.
    if let Some(file_id) = method.strip_prefix("upload/") {
        let known = match store.uploads.get_mut(file_id) {
            Some((_, stored)) => {
                *stored = body.to_vec();
                true
            }
            None => false,
        };
        store.calls.push(RecordedCall {
            method: "upload".into(),
            http_method: http_method.to_string(),
            params: json!({ "file_id": file_id, "length": body.len() }),
            authorized,
            raw_query,
            raw_body: String::new(),
            headers: recorded_headers,
            fault: None,
        });
        return if known {
            (StatusCode::OK, format!("OK - {}", body.len())).into_response()
        } else {
            (StatusCode::NOT_FOUND, "unknown file").into_response()
        };
    }
    let fault_at =
        store.faults.iter().position(|f| f.method == method && (f.channel.is_none() || f.channel == channel));
    let mut fault = fault_at.map(|i| store.faults.remove(i).fault);
    let refuses_tables = channel.as_ref().is_some_and(|c| store.refuse_tables.contains(c));
    if fault.is_none()
        && refuses_tables
        && matches!(method.as_str(), "chat.postMessage" | "chat.update")
        && has_table(params.get("blocks"))
    {
        fault = Some(Fault::SlackError("invalid_blocks".into()));
    }

    if fault.is_none() && method == "chat.startStream" {
        fault = channel.as_ref().and_then(|c| store.refuse_streams.get(c)).map(|e| Fault::SlackError(e.clone()));
    }

    let response = match &fault {
        Some(fault @ Fault::ServerErrorAfterDoing) if authorized => {
            store.answer(&method, &params, inner.base_secs, &inner.upload_base);
            fault_response(fault)
        }
        Some(fault) => fault_response(fault),
        None if authorization.is_none() => slack_error("not_authed"),
        None if !authorized => slack_error("invalid_auth"),
        None => Json(store.answer(&method, &params, inner.base_secs, &inner.upload_base)).into_response(),
    };
    store.calls.push(RecordedCall {
        method,
        http_method: http_method.to_string(),
        params,
        authorized,
        raw_query,
        raw_body,
        headers: recorded_headers,
        fault,
    });
    response
}

impl Store {
    fn next_ts(&mut self, base_secs: u64) -> String {
        self.ts_counter += 1;
        let n = self.ts_counter;
        format!("{}.{:06}", base_secs + n / 1_000_000, n % 1_000_000)
    }

    /// Slack's answer to a well-authenticated call.
    fn answer(&mut self, method: &str, params: &Value, base_secs: u64, upload_base: &str) -> Value {
        let str_param = |name: &str| params.get(name).and_then(Value::as_str).filter(|s| !s.is_empty());
        match method {
            "chat.postMessage" => {
                let Some(channel) = str_param("channel") else { return error_body("channel_not_found") };
                let Some(text) = str_param("text") else { return error_body("no_text") };
                let ts = self.next_ts(base_secs);
                let thread_ts = str_param("thread_ts");
                let mut message = json!({
                    "type": "message",
                    "user": BOT_USER_ID,
                    "bot_id": BOT_ID,
                    "team": TEAM_ID,
                    "text": text,
                    "ts": ts,
                });
                if let Some(thread_ts) = thread_ts {
                    message["thread_ts"] = json!(thread_ts);
                }
                if let Some(blocks) = params.get("blocks").filter(|b| b.is_array()) {
                    message["blocks"] = blocks.clone();
                }
                let root = thread_ts.unwrap_or(&ts).to_string();
                self.threads.entry((channel.to_string(), root)).or_default().push(message.clone());
                json!({ "ok": true, "channel": channel, "ts": ts, "message": message })
            }
            "chat.update" => {
                let (Some(channel), Some(ts)) = (str_param("channel"), str_param("ts")) else {
                    return error_body("message_not_found");
                };
                let text = str_param("text").unwrap_or_default();
                // As Slack does: an edit without `blocks` keeps the message's blocks.
                let blocks = params.get("blocks").filter(|b| b.is_array());
                let found = self
                    .threads
                    .iter_mut()
                    .filter(|((c, _), _)| c == channel)
                    .flat_map(|(_, messages)| messages.iter_mut())
                    .filter(|m| m.get("ts").and_then(Value::as_str) == Some(ts))
                    .map(|m| {
                        m["text"] = json!(text);
                        if let Some(blocks) = blocks {
                            m["blocks"] = blocks.clone();
                        }
                    })
                    .count();
                if found == 0 {
                    return error_body("message_not_found");
                }
                json!({ "ok": true, "channel": channel, "ts": ts, "text": text })
            }
            "chat.startStream" | "chat.appendStream" | "chat.stopStream" => self.stream_call(method, params, base_secs),
            "reactions.add" | "reactions.remove" => json!({ "ok": true }),
            // Shown to one user only: nothing is added to the thread.
            "chat.postEphemeral" => match (str_param("channel"), str_param("user"), str_param("text")) {
                (None, _, _) => error_body("channel_not_found"),
                (_, None, _) => error_body("user_not_in_channel"),
                (_, _, None) => error_body("no_text"),
                _ => json!({ "ok": true, "message_ts": self.next_ts(base_secs) }),
            },
            "assistant.threads.setStatus" => {
                // `status` may be empty (it clears the status) but must be sent.
                match (str_param("channel_id"), str_param("thread_ts"), params.get("status")) {
                    (Some(_), Some(_), Some(Value::String(_))) => json!({ "ok": true }),
                    _ => error_body("invalid_arguments"),
                }
            }
            "assistant.threads.setSuggestedPrompts" => answer_suggested_prompts(params),
            "assistant.threads.setTitle" => match (str_param("channel_id"), str_param("thread_ts"), str_param("title"))
            {
                (Some(_), Some(_), Some(_)) => json!({ "ok": true }),
                _ => error_body("invalid_arguments"),
            },
            "views.publish" => answer_views_publish(params),
            "files.getUploadURLExternal" => {
                let Some(filename) = str_param("filename") else { return error_body("invalid_arguments") };
                let length_ok = str_param("length").and_then(|l| l.parse::<u64>().ok()).is_some_and(|l| l > 0);
                if !length_ok {
                    return error_body("invalid_arguments");
                }
                self.ts_counter += 1;
                let file_id = format!("F{:08}", self.ts_counter);
                self.uploads.insert(file_id.clone(), (filename.to_string(), Vec::new()));
                json!({ "ok": true, "upload_url": format!("{upload_base}{file_id}"), "file_id": file_id })
            }
            "files.completeUploadExternal" => {
                let Some(files) = params.get("files").and_then(Value::as_array) else {
                    return error_body("invalid_arguments");
                };
                let mut done = Vec::new();
                for f in files {
                    let id = f.get("id").and_then(Value::as_str).unwrap_or_default();
                    match self.uploads.get(id) {
                        Some((name, bytes)) if !bytes.is_empty() => {
                            done.push(json!({ "id": id, "name": name, "title": f.get("title") }))
                        }
                        _ => return error_body("file_not_found"),
                    }
                }
                json!({ "ok": true, "files": done })
            }
            "conversations.replies" => {
                let (Some(channel), Some(ts)) = (str_param("channel"), str_param("ts")) else {
                    return error_body("invalid_arguments");
                };
                let limit = match params.get("limit") {
                    Some(Value::Number(n)) => n.as_u64(),
                    Some(Value::String(s)) => s.parse().ok(),
                    _ => None,
                }
                .unwrap_or(1000) as usize;
                // Oldest first, a page at a time; the cursor is the offset of the next page.
                let offset = str_param("cursor").and_then(|c| c.parse::<usize>().ok()).unwrap_or(0);
                let messages = self.threads.get(&(channel.to_string(), ts.to_string())).cloned().unwrap_or_default();
                let has_more = messages.len() > offset + limit;
                let page: Vec<Value> = messages.into_iter().skip(offset).take(limit).collect();
                let next_cursor = if has_more { (offset + limit).to_string() } else { String::new() };
                json!({
                    "ok": true,
                    "messages": page,
                    "has_more": has_more,
                    "response_metadata": { "next_cursor": next_cursor },
                })
            }
            // users.info: a member of TEAM_ID unless a test registered the user with `set_user`.
            "users.info" => {
                let Some(user) = str_param("user") else { return error_body("user_not_found") };
                let mut answer =
                    json!({"id": user, "team_id": TEAM_ID, "is_restricted": false, "is_ultra_restricted": false});
                if let Some(Value::Object(fields)) = self.users.get(user) {
                    for (k, v) in fields {
                        answer[k] = v.clone();
                    }
                }
                json!({ "ok": true, "user": answer })
            }
            "auth.test" => json!({
                "ok": true,
                "url": "https://fake-workspace.slack.com/",
                "team": "Fake Workspace",
                "user": "bedrock-bot",
                "team_id": TEAM_ID,
                "user_id": BOT_USER_ID,
                "bot_id": BOT_ID,
            }),
            _ => error_body("unknown_method"),
        }
    }
}

impl Store {
    /// The streaming methods: a start posts a message in `streaming_state` `in_progress`, appends
    /// add to its text (and tasks), a stop adds its last content and blocks and completes it.
    fn stream_call(&mut self, method: &str, params: &Value, base_secs: u64) -> Value {
        let str_param = |name: &str| params.get(name).and_then(Value::as_str).filter(|s| !s.is_empty());
        let Some(channel) = str_param("channel") else { return error_body("channel_not_found") };
        let (markdown, tasks) = match stream_content(params) {
            Ok(content) => content,
            Err(error) => return error_body(error),
        };
        if method == "chat.startStream" {
            let Some(thread_ts) = str_param("thread_ts") else { return error_body("invalid_arguments") };
            // Outside DMs Slack needs to know who the stream is for.
            if !channel.starts_with('D') {
                if str_param("recipient_user_id").is_none() {
                    return error_body("missing_recipient_user_id");
                }
                if str_param("recipient_team_id").is_none() {
                    return error_body("missing_recipient_team_id");
                }
            }
            let ts = self.next_ts(base_secs);
            let message = json!({
                "type": "message", "user": BOT_USER_ID, "bot_id": BOT_ID, "team": TEAM_ID,
                "text": markdown, "ts": ts, "thread_ts": thread_ts, "streaming_state": "in_progress",
                "tasks": Value::Object(tasks),
            });
            self.threads.entry((channel.to_string(), thread_ts.to_string())).or_default().push(message);
            return json!({ "ok": true, "channel": channel, "ts": ts });
        }
        let Some(ts) = str_param("ts") else { return error_body("invalid_arguments") };
        let Some(message) = self
            .threads
            .iter_mut()
            .filter(|((c, _), _)| c == channel)
            .flat_map(|(_, messages)| messages.iter_mut())
            .find(|m| m.get("ts").and_then(Value::as_str) == Some(ts))
        else {
            return error_body("message_not_found");
        };
        if message["streaming_state"] != "in_progress" {
            return error_body("message_not_in_streaming_state");
        }
        let text = format!("{}{markdown}", message["text"].as_str().unwrap_or_default());
        message["text"] = json!(text);
        if let Value::Object(known) = &mut message["tasks"] {
            known.extend(tasks);
        }
        if method == "chat.stopStream" {
            message["streaming_state"] = json!("completed");
            if let Some(blocks) = params.get("blocks").filter(|b| b.is_array()) {
                message["blocks"] = blocks.clone();
            }
        }
        json!({ "ok": true, "channel": channel, "ts": ts })
    }
}

/// A streaming call's Markdown (`markdown_text`, or its `markdown_text` chunks) and its
/// `task_update` chunks by id; Slack's 12,000-character limit per call is enforced.
fn stream_content(params: &Value) -> Result<(String, Map<String, Value>), &'static str> {
    let mut markdown = params.get("markdown_text").and_then(Value::as_str).unwrap_or_default().to_string();
    let mut tasks = Map::new();
    for chunk in params.get("chunks").and_then(Value::as_array).into_iter().flatten() {
        match chunk["type"].as_str() {
            Some("markdown_text") => markdown.push_str(chunk["text"].as_str().unwrap_or_default()),
            Some("task_update") => {
                let Some(id) = chunk["id"].as_str() else { return Err("invalid_chunks") };
                tasks.insert(id.to_string(), chunk.clone());
            }
            Some("plan_update" | "blocks") => {}
            _ => return Err("invalid_chunks"),
        }
    }
    if markdown.chars().count() > 12_000 {
        return Err("msg_too_long");
    }
    Ok((markdown, tasks))
}

/// Whether Slack answered `call` with `ok: true` (for the methods whose answer has no side
/// effects: the assistant thread methods and `views.publish`).
fn accepted(call: &RecordedCall) -> bool {
    call.fault.is_none() && call.authorized && Store::default().answer(&call.method, &call.params, 0, "")["ok"] == true
}

/// `assistant.threads.setSuggestedPrompts`: a channel, a thread and 1 to 4 prompts, each with a
/// non-empty `title` and `message` (Slack's limit of four).
fn answer_suggested_prompts(params: &Value) -> Value {
    let text = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).is_some_and(|s| !s.trim().is_empty());
    let prompts = params.get("prompts").and_then(Value::as_array);
    let well_formed =
        prompts.is_some_and(|p| (1..=4).contains(&p.len()) && p.iter().all(|x| text(x, "title") && text(x, "message")));
    if text(params, "channel_id") && text(params, "thread_ts") && well_formed {
        json!({ "ok": true })
    } else {
        error_body("invalid_arguments")
    }
}

/// `views.publish`: a user and a `home` view of at most 100 blocks (the view as an object or,
/// as in a form body, JSON-encoded); answers with the view, as Slack does.
fn answer_views_publish(params: &Value) -> Value {
    let view = match params.get("view") {
        Some(Value::String(s)) => serde_json::from_str(s).unwrap_or(Value::Null),
        Some(v) => v.clone(),
        None => Value::Null,
    };
    let user = params.get("user_id").and_then(Value::as_str).filter(|u| !u.is_empty());
    let blocks = view.get("blocks").and_then(Value::as_array);
    match (user, view.get("type").and_then(Value::as_str), blocks) {
        (Some(_), Some("home"), Some(b)) if b.len() <= 100 => json!({ "ok": true, "view": view }),
        (Some(_), Some(_), Some(b)) if b.len() <= 100 => error_body("invalid_arguments"),
        (Some(_), _, Some(_)) => error_body("invalid_blocks"),
        _ => error_body("invalid_arguments"),
    }
}

fn error_body(error: &str) -> Value {
    json!({ "ok": false, "error": error })
}

fn slack_error(error: &str) -> Response {
    Json(error_body(error)).into_response()
}

fn fault_response(fault: &Fault) -> Response {
    match fault {
        Fault::RateLimited { retry_after_secs } => {
            let mut response = (StatusCode::TOO_MANY_REQUESTS, Json(error_body("ratelimited"))).into_response();
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(*retry_after_secs));
            response
        }
        Fault::ServerError | Fault::ServerErrorAfterDoing => (
            StatusCode::INTERNAL_SERVER_ERROR,
            [(header::CONTENT_TYPE, "text/html")],
            "<html><body>Internal Server Error</body></html>",
        )
            .into_response(),
        Fault::SlackError(error) => slack_error(error),
    }
}

/// `application/x-www-form-urlencoded` (also query strings) as a JSON object of strings.
fn parse_form(encoded: &str) -> Map<String, Value> {
    encoded
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(key), Value::String(percent_decode(value)))
        })
        .collect()
}

/// Decodes `+` and `%XX` of form and query encoding; malformed escapes stay as they are.
pub(crate) fn percent_decode(text: &str) -> String {
    shared::encoding::percent_decode_str(text, shared::encoding::Plus::Space)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_forms_and_queries() {
        let form = parse_form("channel=C1&text=a+b%26c%3D%E2%9C%93&empty=&flag&bad=%zz%4");
        assert_eq!(form["channel"], "C1");
        assert_eq!(form["text"], "a b&c=✓");
        assert_eq!(form["empty"], "");
        assert_eq!(form["flag"], "");
        assert_eq!(form["bad"], "%zz%4");
        assert!(parse_form("").is_empty());
    }
}
