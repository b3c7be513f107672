//! Folds an InvokeHarness event stream into an [`AgentTurn`]: the answer's text, the tools the
//! agent used (knowledge-base searches with their queries, gateway tools, code interpreter),
//! the sources its tool results named, its reasoning, one model call per metadata event, and
//! how the last message stopped.
//!
//! The harness runs the agent loop itself: a turn is several messages (the model's, then the
//! tool results, then the model's again...), each with content blocks that start, stream deltas
//! and stop. Only the assistant's text blocks are the answer. The metadata events carry token
//! usage without a model id, so every call is attributed to the harness's configured model
//! (`HARNESS_MODEL_ID`), or to [`UNATTRIBUTED_MODEL`] (priced as unpriced, never guessed).

use std::collections::HashMap;
use std::time::Instant;

use aws_sdk_bedrockagentcore::types::{
    HarnessContentBlockDelta, HarnessContentBlockStart, HarnessConversationRole, HarnessMetadataEvent,
    HarnessReasoningContentBlockDelta, HarnessStopReason, HarnessToolResultBlockDelta, HarnessToolUseType,
    InvokeHarnessStreamOutput,
};

use super::json::{document_json, SourceNames};
use crate::domain::{AgentFailure, AgentTurn, ModelCall, UNATTRIBUTED_MODEL};

/// The `step` of a harness model call: the harness's agent loop.
pub const HARNESS_STEP: &str = "orchestration";
/// The guardrail action recorded when the model's output was filtered.
pub const CONTENT_FILTERED: &str = "INTERVENED";
/// The longest rationale kept (the model's reasoning can be long).
const RATIONALE_MAX: usize = 2000;

/// What a content block is, from its start event (text and reasoning blocks have none).
#[derive(Debug, Clone)]
enum Block {
    ToolUse { name: String, input: String },
    ToolResult { output: String },
}

/// Folds InvokeHarness stream events into an [`AgentTurn`].
#[derive(Debug)]
pub struct HarnessCollector {
    started: Instant,
    model_id: String,
    role: Option<HarnessConversationRole>,
    text: String,
    first_token_ms: Option<u64>,
    reasoning: String,
    blocks: HashMap<i32, Block>,
    tools: Vec<String>,
    knowledge_bases: Vec<String>,
    search_queries: Vec<String>,
    sources: SourceNames,
    calls: Vec<ModelCall>,
    last_stop: Option<HarnessStopReason>,
    unknown: Vec<String>,
}

impl HarnessCollector {
    /// A collector for a turn sent at `started`, its usage attributed to `model_id` (None: the
    /// harness's model is not known here, so the usage is unattributed).
    pub fn new(started: Instant, model_id: Option<&str>) -> Self {
        HarnessCollector {
            started,
            model_id: model_id.filter(|m| !m.trim().is_empty()).unwrap_or(UNATTRIBUTED_MODEL).to_owned(),
            role: None,
            text: String::new(),
            first_token_ms: None,
            reasoning: String::new(),
            blocks: HashMap::new(),
            tools: Vec::new(),
            knowledge_bases: Vec::new(),
            search_queries: Vec::new(),
            sources: SourceNames::default(),
            calls: Vec::new(),
            last_stop: None,
            unknown: Vec::new(),
        }
    }

    /// Takes one event into account; returns the answer text it added (for live streaming).
    pub fn push(&mut self, event: InvokeHarnessStreamOutput) -> Option<String> {
        match event {
            InvokeHarnessStreamOutput::MessageStart(start) => {
                self.role = Some(start.role);
                self.last_stop = None;
            }
            InvokeHarnessStreamOutput::ContentBlockStart(start) => {
                self.on_block_start(start.content_block_index, start.start)
            }
            InvokeHarnessStreamOutput::ContentBlockDelta(delta) => {
                return self.on_delta(delta.content_block_index, delta.delta)
            }
            InvokeHarnessStreamOutput::ContentBlockStop(stop) => self.on_block_stop(stop.content_block_index),
            InvokeHarnessStreamOutput::MessageStop(stop) => self.last_stop = Some(stop.stop_reason),
            InvokeHarnessStreamOutput::Metadata(metadata) => self.on_metadata(metadata),
            // Hooks the harness ran: nothing a user or the ledger needs.
            InvokeHarnessStreamOutput::HookEvent(_) => {}
            _ => self.unknown.push("invoke_harness_event".into()),
        }
        None
    }

    /// The model calls reported so far.
    pub fn spent(&self) -> Vec<ModelCall> {
        self.calls.clone()
    }

    /// Whether the stream ended as a finished turn: the last message stopped, for a reason
    /// other than handing over to a tool.
    pub fn is_complete(&self) -> bool {
        matches!(&self.last_stop, Some(reason) if !matches!(reason, HarnessStopReason::ToolUse | HarnessStopReason::ToolResult))
    }

    /// The turn as the stream described it.
    pub fn finish(mut self) -> AgentTurn {
        let (guardrail_action, failure) = match &self.last_stop {
            Some(HarnessStopReason::ContentFiltered) => (Some(CONTENT_FILTERED.to_owned()), None),
            Some(reason) if is_failure(reason) => {
                (None, Some(AgentFailure { code: None, reason: format!("harness stopped: {}", reason.as_str()) }))
            }
            _ => (None, None),
        };
        let rationale = non_empty(std::mem::take(&mut self.reasoning)).map(|r| clip(&r, RATIONALE_MAX));
        AgentTurn {
            text: self.text,
            sources: self.sources.into_names(),
            rationale,
            knowledge_bases: self.knowledge_bases,
            search_queries: self.search_queries,
            action_groups: self.tools,
            model_calls: self.calls,
            guardrail_action,
            failure,
            files: Vec::new(),
            return_control: Vec::new(),
            first_token_ms: self.first_token_ms,
            usage_unreported: false,
            unknown_events: self.unknown,
        }
    }

    fn on_block_start(&mut self, index: i32, start: Option<HarnessContentBlockStart>) {
        let block = match start {
            Some(HarnessContentBlockStart::ToolUse(tool)) => {
                let name = tool_name(&tool.name, tool.server_name.as_deref(), tool.r#type.as_ref());
                Block::ToolUse { name, input: String::new() }
            }
            Some(HarnessContentBlockStart::ToolResult(_)) => Block::ToolResult { output: String::new() },
            Some(_) => {
                self.unknown.push("content_block_start".into());
                return;
            }
            None => return,
        };
        self.blocks.insert(index, block);
    }

    fn on_delta(&mut self, index: i32, delta: Option<HarnessContentBlockDelta>) -> Option<String> {
        match delta? {
            HarnessContentBlockDelta::Text(text) => {
                // Text in a tool result message is the tool's, not the answer.
                if matches!(self.role, Some(HarnessConversationRole::User)) {
                    return None;
                }
                if text.is_empty() {
                    return None;
                }
                if self.first_token_ms.is_none() {
                    self.first_token_ms = Some(u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX));
                }
                self.text.push_str(&text);
                return Some(text);
            }
            HarnessContentBlockDelta::ToolUse(part) => {
                if let Some(Block::ToolUse { input, .. }) = self.blocks.get_mut(&index) {
                    input.push_str(&part.input);
                }
            }
            HarnessContentBlockDelta::ToolResult(parts) => {
                if let Some(Block::ToolResult { output, .. }) = self.blocks.get_mut(&index) {
                    for part in parts {
                        match part {
                            HarnessToolResultBlockDelta::Text(t) => output.push_str(&t),
                            HarnessToolResultBlockDelta::Json(d) => output.push_str(&document_json(&d).to_string()),
                            _ => self.unknown.push("tool_result_delta".into()),
                        }
                    }
                }
            }
            HarnessContentBlockDelta::ReasoningContent(HarnessReasoningContentBlockDelta::Text(t)) => {
                if self.reasoning.len() < RATIONALE_MAX {
                    self.reasoning.push_str(&t);
                }
            }
            // Signatures and redacted reasoning: nothing readable.
            HarnessContentBlockDelta::ReasoningContent(_) | HarnessContentBlockDelta::ToolResultMetadata(_) => {}
            _ => self.unknown.push("content_block_delta".into()),
        }
        None
    }

    fn on_block_stop(&mut self, index: i32) {
        match self.blocks.remove(&index) {
            Some(Block::ToolUse { name, input }) => {
                let arguments = serde_json::from_str::<serde_json::Value>(&input).unwrap_or_default();
                if is_retrieval(&name) {
                    push_unique(&mut self.knowledge_bases, knowledge_base_id(&arguments));
                    push_unique(&mut self.search_queries, search_query(&arguments));
                }
                push_unique(&mut self.tools, Some(name));
            }
            Some(Block::ToolResult { output }) => {
                if let Ok(value) = serde_json::from_str::<serde_json::Value>(&output) {
                    self.sources.collect(&value);
                }
            }
            None => {}
        }
    }

    fn on_metadata(&mut self, metadata: HarnessMetadataEvent) {
        let Some(usage) = metadata.usage else {
            return;
        };
        let count = |n: i32| u64::try_from(n).unwrap_or(0);
        self.calls.push(ModelCall {
            model_id: self.model_id.clone(),
            input_tokens: count(usage.input_tokens),
            output_tokens: count(usage.output_tokens),
            cache_read_tokens: usage.cache_read_input_tokens.map_or(0, count),
            cache_write_tokens: usage.cache_write_input_tokens.map_or(0, count),
            latency_ms: metadata.metrics.map_or(0, |m| u64::try_from(m.latency_ms).unwrap_or(0)),
            step: HARNESS_STEP.into(),
        });
    }
}

/// A stop that means the agent did not finish its answer.
fn is_failure(reason: &HarnessStopReason) -> bool {
    use HarnessStopReason as R;
    matches!(
        reason,
        R::MalformedModelOutput
            | R::MalformedToolUse
            | R::MaxIterationsExceeded
            | R::ModelContextWindowExceeded
            | R::TimeoutExceeded
            | R::HookStopped
            | R::Interrupted
    )
}

/// The tool as the analytics show it: a gateway tool without its target prefix
/// (`target___tool`), an MCP tool under its server's name.
fn tool_name(name: &str, server: Option<&str>, kind: Option<&HarnessToolUseType>) -> String {
    let bare = name.split_once("___").map_or(name, |(_, tool)| tool);
    match (server.filter(|s| !s.is_empty()), kind) {
        (Some(server), Some(HarnessToolUseType::McpToolUse)) => format!("{server}/{bare}"),
        _ => bare.to_owned(),
    }
}

/// A knowledge-base search, by the tool's name (the Bedrock retrieve tools and gateway
/// targets over a knowledge base).
fn is_retrieval(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    lower.contains("retrieve") || lower.contains("knowledge")
}

fn knowledge_base_id(arguments: &serde_json::Value) -> Option<String> {
    ["knowledgeBaseId", "knowledge_base_id", "kbId"]
        .iter()
        .find_map(|k| arguments.get(k).and_then(serde_json::Value::as_str))
        .map(str::to_owned)
}

fn search_query(arguments: &serde_json::Value) -> Option<String> {
    let nested = arguments.pointer("/retrievalQuery/text").and_then(serde_json::Value::as_str);
    nested
        .or_else(|| ["query", "text", "searchQuery"].iter().find_map(|k| arguments.get(k)?.as_str()))
        .map(str::to_owned)
}

fn non_empty(s: String) -> Option<String> {
    (!s.trim().is_empty()).then(|| s.trim().to_owned())
}

fn clip(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

fn push_unique(list: &mut Vec<String>, item: Option<String>) {
    if let Some(item) = item.and_then(non_empty) {
        if !list.contains(&item) {
            list.push(item);
        }
    }
}

#[cfg(test)]
#[path = "harness_collector_tests.rs"]
mod tests;
