//! A scripted Amazon Bedrock AgentCore data plane, served by the same server and port as the
//! scripted Classic agent ([`FakeAgent::start_all`](crate::fake_agent::FakeAgent::start_all)),
//! so the one endpoint the worker's SDK config names serves every backend:
//!
//! - InvokeHarness: `POST /harnesses/invoke?harnessArn=ARN&qualifier=Q`, the prompt in the
//!   body's `messages[].content[].text`; answered with the harness's events as real
//!   `application/vnd.amazon.eventstream` frames (scripts: events/harness).
//! - InvokeAgentRuntime: `POST /runtimes/{percent-encoded ARN}/invocations?qualifier=Q`, the
//!   gateway's JSON payload (`prompt`, `session_id`, `user_id`, `slack`) as the body; answered
//!   as `text/event-stream`, one `data: {json}` line per event (scripts: events/runtime).
//!
//! Both take the session in `X-Amzn-Bedrock-AgentCore-Runtime-Session-Id` and the user in
//! `X-Amzn-Bedrock-AgentCore-Runtime-User-Id`. Every request is recorded
//! ([`RecordedAgentCoreInvoke`]) before it is answered.
//!
//! Scripts have the format of events/agent ([`crate::fake_agent`]): `name`, `description`,
//! `match` (a word of the prompt, ignoring case), `default`, and `attempts` answering the n-th
//! invocation of one session (the last repeats), each either an HTTP `error` before the stream
//! (`{ "status": 429, "type": "ThrottlingException", "message": "..." }`, the type in
//! x-amzn-errortype) or `events`. Every event may carry `delay_ms` (a pause before it goes on
//! the wire); `{ "cut": true }` drops the connection in the middle of the next event and
//! `{ "stall_ms": N }` is a silence, then a cut. A harness event is one of:
//!
//! ```json
//! { "messageStart": { "role": "assistant" } }
//! { "contentBlockStart": { "contentBlockIndex": 1, "start": { "toolUse": { "toolUseId": "tu-1", "name": "kb___retrieve", "type": "tool_use" } } } }
//! { "contentBlockDelta": { "contentBlockIndex": 0, "delta": { "text": "Hello" } }, "delay_ms": 20 }
//! { "contentBlockStop": { "contentBlockIndex": 0 } }
//! { "messageStop": { "stopReason": "end_turn" } }
//! { "metadata": { "usage": { "inputTokens": 1930, "outputTokens": 76, "totalTokens": 2006,
//!                            "cacheReadInputTokens": 0, "cacheWriteInputTokens": 0 },
//!                 "metrics": { "latencyMs": 1840 } } }
//! { "hookEvent": { ... } }
//! { "exception": { "type": "internalServerException", "message": "..." } }
//! { "unmodelled": { "type": "citationDelta", "payload": { ... } } }
//! ```
//!
//! each framed as the service frames it (`:message-type` event, `:event-type` the key, the
//! value as the JSON payload; an exception frame for `exception`). A runtime event is
//! `{ "sse": <any JSON> }`, sent as `data: <json>\n\n`: the gateway's contract
//! (`{"data": "text"}`, `{"usage": {...}}`, `{"tool": "name"}`, `{"sources": [...]}`,
//! `{"stop_reason": "end_turn"}`, `{"error": "..."}`) or a Strands agent's
//! (`{"event": {"contentBlockDelta": ...}}`, lifecycle events), see docs/agentcore-runtime.md.

use std::collections::HashMap;
use std::io;
use std::path::Path;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::{ConnectInfo, Path as UrlPath, Query, State};
use axum::http::{HeaderMap, HeaderValue};
use axum::response::Response;
use axum::routing::post;
use axum::Router;
use serde::Deserialize;
use serde_json::{json, Value};
use shared::domain::AgentBackend;

use crate::fake_agent::{
    error_response, exactly_one, frame, load_scripts, paced_response, Attempt, PacedBody, Script, ScriptedEvent,
    Scripts, Wire, WirePlan,
};

/// The session header of both operations.
pub const SESSION_HEADER: &str = "x-amzn-bedrock-agentcore-runtime-session-id";
/// The user header of both operations.
pub const USER_HEADER: &str = "x-amzn-bedrock-agentcore-runtime-user-id";

/// One InvokeHarness or InvokeAgentRuntime request the fake received.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedAgentCoreInvoke {
    /// [`AgentBackend::Harness`] or [`AgentBackend::Runtime`]: which operation.
    pub backend: AgentBackend,
    /// `harnessArn`, or the runtime ARN of the path (decoded).
    pub arn: String,
    pub qualifier: Option<String>,
    /// X-Amzn-Bedrock-AgentCore-Runtime-Session-Id ("" when absent).
    pub session_id: String,
    /// X-Amzn-Bedrock-AgentCore-Runtime-User-Id.
    pub user_id: Option<String>,
    /// The harness messages' text, or the runtime payload's `prompt`.
    pub prompt: String,
    pub content_type: Option<String>,
    pub accept: Option<String>,
    /// The request body as JSON (Null when it is not JSON).
    pub body: Value,
}

/// The AgentCore side of the fake: its scripts and what it was asked.
#[derive(Default)]
pub(crate) struct AgentCore {
    harness: Scripts<HarnessEvent>,
    runtime: Scripts<RuntimeEvent>,
    requests: Mutex<Vec<RecordedAgentCoreInvoke>>,
}

impl AgentCore {
    /// The scripts of both directories.
    pub(crate) fn load(harness_dir: &Path, runtime_dir: &Path) -> io::Result<AgentCore> {
        Ok(AgentCore {
            harness: Scripts::new(load_scripts(harness_dir)?),
            runtime: Scripts::new(load_scripts(runtime_dir)?),
            requests: Mutex::new(Vec::new()),
        })
    }

    pub(crate) fn requests(&self) -> Vec<RecordedAgentCoreInvoke> {
        self.requests.lock().map(|r| r.clone()).unwrap_or_default()
    }

    pub(crate) fn script_names(&self, backend: AgentBackend) -> Vec<String> {
        match backend {
            AgentBackend::Harness => self.harness.names(),
            AgentBackend::Runtime => self.runtime.names(),
            AgentBackend::Classic => Vec::new(),
        }
    }

    fn record(&self, request: RecordedAgentCoreInvoke) {
        if let Ok(mut r) = self.requests.lock() {
            r.push(request);
        }
    }
}

/// The AgentCore routes, to merge into the fake's router.
pub(crate) fn router(agentcore: Arc<AgentCore>) -> Router {
    Router::new()
        .route("/harnesses/invoke", post(invoke_harness))
        .route("/runtimes/{arn}/invocations", post(invoke_runtime))
        .with_state(agentcore)
}

// ---------------------------------------------------------------------------------------------
// Scripts

/// One InvokeHarness stream event of a script.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct HarnessEvent {
    #[serde(default, rename = "delay_ms")]
    delay_ms: u64,
    #[serde(default)]
    message_start: Option<Value>,
    #[serde(default)]
    content_block_start: Option<Value>,
    #[serde(default)]
    content_block_delta: Option<Value>,
    #[serde(default)]
    content_block_stop: Option<Value>,
    #[serde(default)]
    message_stop: Option<Value>,
    #[serde(default)]
    metadata: Option<Value>,
    #[serde(default)]
    hook_event: Option<Value>,
    #[serde(default)]
    exception: Option<ExceptionEvent>,
    /// An event type the SDK does not model (a newer service's): framed under its own name.
    #[serde(default)]
    unmodelled: Option<UnmodelledEvent>,
    #[serde(default)]
    cut: Option<bool>,
    #[serde(default, rename = "stall_ms")]
    stall_ms: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct UnmodelledEvent {
    #[serde(rename = "type")]
    event_type: String,
    payload: Value,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExceptionEvent {
    #[serde(rename = "type")]
    exception_type: String,
    message: String,
}

impl HarnessEvent {
    /// The event's `:event-type` and payload, when it is a stream event.
    fn stream_event(&self) -> Option<(&str, &Value)> {
        if let Some(u) = &self.unmodelled {
            return Some((u.event_type.as_str(), &u.payload));
        }
        [
            ("messageStart", &self.message_start),
            ("contentBlockStart", &self.content_block_start),
            ("contentBlockDelta", &self.content_block_delta),
            ("contentBlockStop", &self.content_block_stop),
            ("messageStop", &self.message_stop),
            ("metadata", &self.metadata),
            ("hookEvent", &self.hook_event),
        ]
        .into_iter()
        .find_map(|(kind, payload)| payload.as_ref().map(|p| (kind, p)))
    }
}

impl ScriptedEvent for HarnessEvent {
    fn check(&self) -> Result<(), String> {
        let set = [
            self.message_start.is_some(),
            self.content_block_start.is_some(),
            self.content_block_delta.is_some(),
            self.content_block_stop.is_some(),
            self.message_stop.is_some(),
            self.metadata.is_some(),
            self.hook_event.is_some(),
            self.exception.is_some(),
            self.unmodelled.is_some(),
            self.cut == Some(true),
            self.stall_ms.is_some(),
        ];
        exactly_one(
            &set,
            "messageStart, contentBlockStart, contentBlockDelta, contentBlockStop, messageStop, metadata, \
             hookEvent, exception, unmodelled, cut, stall_ms",
        )
    }
}

/// One server-sent event of an InvokeAgentRuntime script.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuntimeEvent {
    #[serde(default)]
    delay_ms: u64,
    /// Sent as one `data:` line.
    #[serde(default)]
    sse: Option<Value>,
    #[serde(default)]
    cut: Option<bool>,
    #[serde(default)]
    stall_ms: Option<u64>,
}

impl ScriptedEvent for RuntimeEvent {
    fn check(&self) -> Result<(), String> {
        exactly_one(&[self.sse.is_some(), self.cut == Some(true), self.stall_ms.is_some()], "sse, cut, stall_ms")
    }
}

/// The event-stream body of a harness attempt.
fn render_harness(events: &[HarnessEvent]) -> Result<(Vec<u8>, WirePlan), String> {
    let mut body = PacedBody::default();
    for event in events {
        let filler = || {
            let delta = json!({ "contentBlockIndex": 0, "delta": { "text": "" } });
            frame("event", "contentBlockDelta", delta.to_string())
        };
        if body.control(event.delay_ms, event.cut, event.stall_ms, filler)? {
            break;
        }
        let encoded = if let Some((kind, payload)) = event.stream_event() {
            frame("event", kind, payload.to_string())?
        } else if let Some(e) = &event.exception {
            frame("exception", &e.exception_type, json!({ "message": e.message }).to_string())?
        } else {
            return Err("empty event".into());
        };
        body.push(&encoded);
    }
    Ok(body.finish())
}

/// One server-sent event carrying `data`.
fn sse_line(data: &Value) -> Vec<u8> {
    format!("data: {data}\n\n").into_bytes()
}

/// The `text/event-stream` body of a runtime attempt.
fn render_runtime(events: &[RuntimeEvent]) -> Result<(Vec<u8>, WirePlan), String> {
    let mut body = PacedBody::default();
    for event in events {
        let filler = || Ok(sse_line(&json!({ "data": "" })));
        if body.control(event.delay_ms, event.cut, event.stall_ms, filler)? {
            break;
        }
        match &event.sse {
            Some(data) => body.push(&sse_line(data)),
            None => return Err("empty event".into()),
        }
    }
    Ok(body.finish())
}

// ---------------------------------------------------------------------------------------------
// The handlers

fn header(headers: &HeaderMap, name: &str) -> Option<String> {
    headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned)
}

/// The text of every message's text blocks, in order.
fn harness_prompt(body: &Value) -> String {
    let texts = body["messages"].as_array().into_iter().flatten().flat_map(|m| {
        m["content"].as_array().into_iter().flatten().filter_map(|c| c["text"].as_str()).collect::<Vec<_>>()
    });
    texts.collect::<Vec<_>>().join("\n")
}

/// The script's answer for this invocation, or the response that ends it (an HTTP error).
fn pick<'a, E>(
    scripts: &'a Scripts<E>,
    session_id: &str,
    prompt: &str,
) -> Result<(&'a Script<E>, &'a [E]), Box<Response>> {
    let (script, attempt): (&Script<E>, &Attempt<E>) = scripts.answer(session_id, prompt)?;
    if let Some(err) = &attempt.error {
        return Err(Box::new(error_response(err.status, &err.error_type, &err.message)));
    }
    Ok((script, attempt.events.as_deref().unwrap_or_default()))
}

async fn invoke_harness(
    State(agentcore): State<Arc<AgentCore>>,
    ConnectInfo(wire): ConnectInfo<Wire>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let request: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => return error_response(400, "ValidationException", &format!("request body: {e}")),
    };
    let recorded = RecordedAgentCoreInvoke {
        backend: AgentBackend::Harness,
        arn: query.get("harnessArn").cloned().unwrap_or_default(),
        qualifier: query.get("qualifier").cloned(),
        session_id: header(&headers, SESSION_HEADER).unwrap_or_default(),
        user_id: header(&headers, USER_HEADER),
        prompt: harness_prompt(&request),
        content_type: header(&headers, "content-type"),
        accept: header(&headers, "accept"),
        body: request,
    };
    let (session_id, prompt) = (recorded.session_id.clone(), recorded.prompt.clone());
    agentcore.record(recorded);
    let (script, events) = match pick(&agentcore.harness, &session_id, &prompt) {
        Ok(found) => found,
        Err(response) => return *response,
    };
    match render_harness(events) {
        Ok((body, plan)) => paced_response(&wire, body, plan, "application/vnd.amazon.eventstream"),
        Err(e) => error_response(500, "InternalServerException", &format!("script {}: {e}", script.name)),
    }
}

async fn invoke_runtime(
    State(agentcore): State<Arc<AgentCore>>,
    ConnectInfo(wire): ConnectInfo<Wire>,
    UrlPath(arn): UrlPath<String>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let request: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let recorded = RecordedAgentCoreInvoke {
        backend: AgentBackend::Runtime,
        arn,
        qualifier: query.get("qualifier").cloned(),
        session_id: header(&headers, SESSION_HEADER).unwrap_or_default(),
        user_id: header(&headers, USER_HEADER),
        prompt: request["prompt"].as_str().unwrap_or_default().to_owned(),
        content_type: header(&headers, "content-type"),
        accept: header(&headers, "accept"),
        body: request,
    };
    let (session_id, prompt) = (recorded.session_id.clone(), recorded.prompt.clone());
    agentcore.record(recorded);
    let (script, events) = match pick(&agentcore.runtime, &session_id, &prompt) {
        Ok(found) => found,
        Err(response) => return *response,
    };
    match render_runtime(events) {
        Ok((body, plan)) => {
            let mut response = paced_response(&wire, body, plan, "text/event-stream");
            if let Ok(v) = HeaderValue::from_str(&session_id) {
                response.headers_mut().insert(SESSION_HEADER, v);
            }
            response
        }
        Err(e) => error_response(500, "InternalServerException", &format!("script {}: {e}", script.name)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn harness_events_are_framed_as_the_service_frames_them_and_cuts_withhold_half_a_frame() {
        let events: Vec<HarnessEvent> = serde_json::from_value(json!([
            { "messageStart": { "role": "assistant" } },
            { "delay_ms": 15, "contentBlockDelta": { "contentBlockIndex": 0, "delta": { "text": "Hi" } } },
            { "cut": true },
            { "messageStop": { "stopReason": "end_turn" } }
        ]))
        .unwrap();
        events.iter().for_each(|e| e.check().unwrap());
        let (body, plan) = render_harness(&events).unwrap();
        let first = frame("event", "messageStart", json!({ "role": "assistant" }).to_string()).unwrap();
        let second = frame(
            "event",
            "contentBlockDelta",
            json!({ "contentBlockIndex": 0, "delta": { "text": "Hi" } }).to_string(),
        )
        .unwrap();
        assert_eq!(&body[..first.len()], &first[..]);
        assert_eq!(&body[first.len()..first.len() + second.len()], &second[..]);
        assert_eq!(plan.pauses.front().map(|p| p.0), Some(first.len()));
        let cut = plan.cut_at.unwrap();
        assert!(cut > first.len() + second.len() && cut < body.len(), "{cut} of {}", body.len());
    }

    #[test]
    fn runtime_events_are_data_lines_and_malformed_events_are_refused() {
        let events: Vec<RuntimeEvent> =
            serde_json::from_value(json!([{ "sse": { "data": "Hi" } }, { "sse": { "stop_reason": "end_turn" } }]))
                .unwrap();
        let (body, plan) = render_runtime(&events).unwrap();
        assert_eq!(
            String::from_utf8(body).unwrap(),
            "data: {\"data\":\"Hi\"}\n\ndata: {\"stop_reason\":\"end_turn\"}\n\n"
        );
        assert!(plan.cut_at.is_none() && plan.pauses.is_empty());

        let two: RuntimeEvent = serde_json::from_value(json!({ "sse": {}, "cut": true })).unwrap();
        assert!(two.check().is_err());
        let typo = serde_json::from_value::<HarnessEvent>(json!({ "messageStrat": {} }));
        assert!(typo.is_err(), "unknown event kinds are refused when the script loads");
    }

    #[test]
    fn the_prompt_is_every_text_block() {
        let body = json!({ "messages": [{ "role": "user", "content": [{ "text": "a" }, { "text": "b" }] }] });
        assert_eq!(harness_prompt(&body), "a\nb");
    }
}
