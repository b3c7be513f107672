//! Folds the events an AgentCore Runtime agent streams into an [`AgentTurn`].
//!
//! Two shapes are read (docs/agentcore-runtime.md has the contract):
//! - **Strands Agents** through the AgentCore app: each `yield`ed event is one SSE `data:` JSON
//!   object. The model's own stream arrives as `{"event": {...}}` (messageStart,
//!   contentBlockStart/Delta/Stop, messageStop, metadata with each model call's usage), and the
//!   same text again as `{"data": "..."}`; lifecycle events (`init_event_loop`, `message`,
//!   `result`, ...) and events the app could only print as a string are ignored.
//! - **The gateway's contract**, for any other framework: `{"data": "text"}` pieces,
//!   `{"usage": {"model_id", "input_tokens", "output_tokens", "cache_read_tokens",
//!   "cache_write_tokens", "latency_ms"}}` once per model call, optional `{"tool": "name"}` and
//!   `{"sources": [...]}`, and `{"stop_reason": "end_turn"}` last; `{"error": "..."}` fails the turn.
//!
//! A turn whose stream reported no usage is marked unreported: its tokens are unknown, never
//! guessed.

use std::time::Instant;

use serde_json::Value;

use super::json::SourceNames;
use crate::domain::{AgentFailure, AgentTurn, ModelCall, UNATTRIBUTED_MODEL};

/// The `step` of a runtime agent's model call.
pub const RUNTIME_STEP: &str = "orchestration";

/// Keys of Strands' lifecycle and bookkeeping events: known, carry nothing for the turn.
const STRANDS_LIFECYCLE: [&str; 12] = [
    "init_event_loop",
    "start_event_loop",
    "start",
    "message",
    "result",
    "complete",
    "force_stop",
    "current_tool_use",
    "tool_stream_event",
    "reasoning",
    "reasoningText",
    "delta",
];

/// Folds runtime stream events into an [`AgentTurn`].
#[derive(Debug)]
pub struct RuntimeCollector {
    started: Instant,
    model_id: String,
    text: String,
    /// The model's own text deltas were seen: `data` events repeat them and are skipped.
    raw_text: bool,
    first_token_ms: Option<u64>,
    tools: Vec<String>,
    sources: SourceNames,
    calls: Vec<ModelCall>,
    stop_reason: Option<String>,
    error: Option<String>,
    /// Any event arrived (the agent ran).
    worked: bool,
    unknown: Vec<String>,
}

impl RuntimeCollector {
    /// A collector for a turn sent at `started`; usage events that do not name their model are
    /// attributed to `model_id` (None: unattributed, so unpriced).
    pub fn new(started: Instant, model_id: Option<&str>) -> Self {
        RuntimeCollector {
            started,
            model_id: model_id.filter(|m| !m.trim().is_empty()).unwrap_or(UNATTRIBUTED_MODEL).to_owned(),
            text: String::new(),
            raw_text: false,
            first_token_ms: None,
            tools: Vec::new(),
            sources: SourceNames::default(),
            calls: Vec::new(),
            stop_reason: None,
            error: None,
            worked: false,
            unknown: Vec::new(),
        }
    }

    /// Takes one event's data in; returns the answer text it added.
    pub fn push(&mut self, data: &str) -> Option<String> {
        self.worked = true;
        match serde_json::from_str::<Value>(data) {
            Ok(Value::Object(event)) => self.on_event(&event),
            // The AgentCore app prints what it cannot serialise as a JSON string: nothing to read.
            Ok(Value::String(_)) => None,
            _ => {
                self.unknown.push("runtime_event".into());
                None
            }
        }
    }

    /// A whole non-streamed answer (`application/json`): a string, or an object with the text
    /// under `result`, `response`, `text` or `output`.
    pub fn push_body(&mut self, body: &str) -> Option<String> {
        self.worked = true;
        let value: Value = serde_json::from_str(body).unwrap_or_else(|_| Value::String(body.to_owned()));
        let text = match &value {
            Value::String(s) => Some(s.clone()),
            Value::Object(map) => {
                if let Some(usage) = map.get("usage") {
                    self.on_usage(usage);
                }
                if let Some(sources) = map.get("sources") {
                    self.sources.collect(&serde_json::json!({ "sources": sources }));
                }
                ["result", "response", "text", "output"].iter().find_map(|k| map.get(*k)?.as_str().map(str::to_owned))
            }
            _ => None,
        };
        self.stop_reason = Some("end_turn".into());
        text.map(|t| self.add_text(&t))
    }

    /// The model calls reported so far.
    pub fn spent(&self) -> Vec<ModelCall> {
        self.calls.clone()
    }

    /// The agent's own error event, if it sent one.
    pub fn error(&self) -> Option<&str> {
        self.error.as_deref()
    }

    /// Whether the stream said the turn ended (its last stop was not a hand-over to a tool).
    pub fn is_complete(&self) -> bool {
        self.stop_reason.as_deref().is_some_and(|r| r != "tool_use")
    }

    /// Whether the agent ran but reported no usage at all.
    pub fn usage_unreported(&self) -> bool {
        self.worked && self.calls.is_empty()
    }

    /// The turn as the stream described it.
    pub fn finish(self) -> AgentTurn {
        let usage_unreported = self.usage_unreported();
        let (guardrail_action, failure) = match self.stop_reason.as_deref() {
            Some("guardrail_intervened" | "content_filtered") => (Some(super::CONTENT_FILTERED.to_owned()), None),
            Some(r @ ("max_iterations_exceeded" | "malformed_model_output" | "timeout_exceeded")) => {
                (None, Some(AgentFailure { code: None, reason: format!("agent stopped: {r}") }))
            }
            _ => (None, None),
        };
        AgentTurn {
            text: self.text,
            sources: self.sources.into_names(),
            action_groups: self.tools,
            model_calls: self.calls,
            guardrail_action,
            failure,
            first_token_ms: self.first_token_ms,
            usage_unreported,
            unknown_events: self.unknown,
            ..AgentTurn::default()
        }
    }

    fn on_event(&mut self, event: &serde_json::Map<String, Value>) -> Option<String> {
        if let Some(raw) = event.get("event").and_then(Value::as_object) {
            return self.on_model_event(raw);
        }
        if let Some(text) = event.get("data").and_then(Value::as_str) {
            return (!self.raw_text).then(|| self.add_text(text)).filter(|t| !t.is_empty());
        }
        if let Some(usage) = event.get("usage") {
            self.on_usage(usage);
        } else if let Some(tool) = event.get("tool").and_then(Value::as_str) {
            push_unique(&mut self.tools, tool);
        } else if event.contains_key("sources") {
            self.sources.collect(&Value::Object(event.clone()));
        } else if let Some(reason) = event.get("stop_reason").and_then(Value::as_str) {
            self.stop_reason = Some(reason.to_owned());
        } else if let Some(error) = event.get("error") {
            self.error = Some(error.as_str().map_or_else(|| error.to_string(), str::to_owned));
        } else if !event.keys().any(|k| STRANDS_LIFECYCLE.contains(&k.as_str())) {
            self.unknown.push("runtime_event".into());
        }
        None
    }

    /// One event of the model's own stream (Bedrock ConverseStream's shape, as Strands relays it).
    fn on_model_event(&mut self, raw: &serde_json::Map<String, Value>) -> Option<String> {
        if let Some(delta) = raw.get("contentBlockDelta") {
            if let Some(text) = delta.pointer("/delta/text").and_then(Value::as_str) {
                self.raw_text = true;
                let added = self.add_text(text);
                return (!added.is_empty()).then_some(added);
            }
        } else if let Some(start) = raw.get("contentBlockStart") {
            if let Some(name) = start.pointer("/start/toolUse/name").and_then(Value::as_str) {
                push_unique(&mut self.tools, name.split_once("___").map_or(name, |(_, t)| t));
            }
        } else if let Some(stop) = raw.get("messageStop") {
            self.stop_reason = stop.get("stopReason").and_then(Value::as_str).map(str::to_owned);
        } else if let Some(metadata) = raw.get("metadata") {
            let mut usage = metadata.get("usage").cloned().unwrap_or(Value::Null);
            if let (Some(map), Some(latency)) = (usage.as_object_mut(), metadata.pointer("/metrics/latencyMs")) {
                map.insert("latencyMs".into(), latency.clone());
            }
            if let Some(model) = metadata.get("model_id").or_else(|| metadata.get("modelId")) {
                if let Some(map) = usage.as_object_mut() {
                    map.insert("model_id".into(), model.clone());
                }
            }
            self.on_usage(&usage);
        } else if !raw.contains_key("messageStart") && !raw.contains_key("contentBlockStop") {
            self.unknown.push("runtime_model_event".into());
        }
        None
    }

    /// One model call's usage, in either spelling (`inputTokens` or `input_tokens`).
    fn on_usage(&mut self, usage: &Value) {
        let Some(map) = usage.as_object() else {
            self.unknown.push("runtime_usage".into());
            return;
        };
        let count = |keys: [&str; 2]| keys.iter().find_map(|k| map.get(*k)?.as_u64()).unwrap_or(0);
        let model = ["model_id", "modelId"].iter().find_map(|k| map.get(*k)?.as_str()).filter(|m| !m.trim().is_empty());
        self.calls.push(ModelCall {
            model_id: model.unwrap_or(&self.model_id).to_owned(),
            input_tokens: count(["inputTokens", "input_tokens"]),
            output_tokens: count(["outputTokens", "output_tokens"]),
            cache_read_tokens: count(["cacheReadInputTokens", "cache_read_tokens"]),
            cache_write_tokens: count(["cacheWriteInputTokens", "cache_write_tokens"]),
            latency_ms: count(["latencyMs", "latency_ms"]),
            step: RUNTIME_STEP.into(),
        });
    }

    fn add_text(&mut self, text: &str) -> String {
        if !text.is_empty() && self.first_token_ms.is_none() {
            self.first_token_ms = Some(u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX));
        }
        self.text.push_str(text);
        text.to_owned()
    }
}

fn push_unique(list: &mut Vec<String>, item: &str) {
    let item = item.trim();
    if !item.is_empty() && !list.iter().any(|t| t == item) {
        list.push(item.to_owned());
    }
}
