//! The third event form: the function as an AgentCore Gateway Lambda target. The gateway sends
//! the tool's arguments as the event (a bare JSON object, no envelope) and names the tool in the
//! Lambda client context: `context.client_context.custom["bedrockAgentCoreToolName"]`, as
//! `<target name>___<tool name>` (AgentCore developer guide, "AWS Lambda function targets" and
//! "Understand how AgentCore Gateway tools are named"). The function's return value is the tool's
//! result; a Lambda *error* reaches the agent only as the gateway's generic "An internal error
//! occurred" (developer guide, "Debugging your gateway"), so failures are returned as an MCP
//! error result (`isError` with a text content) the agent can read and relay.

use std::collections::{BTreeMap, HashMap};
use std::hash::BuildHasher;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Client-context key of the tool name, `<target>___<tool>`.
pub const TOOL_NAME: &str = "bedrockAgentCoreToolName";
/// Client-context keys of the invocation's other metadata.
pub const GATEWAY_ID: &str = "bedrockAgentCoreGatewayId";
pub const TARGET_ID: &str = "bedrockAgentCoreTargetId";
pub const MESSAGE_VERSION: &str = "bedrockAgentCoreMessageVersion";
pub const AWS_REQUEST_ID: &str = "bedrockAgentCoreAwsRequestId";
pub const MCP_MESSAGE_ID: &str = "bedrockAgentCoreMcpMessageId";
/// What the gateway puts between the target name and the tool name.
pub const TARGET_DELIMITER: &str = "___";

/// What the gateway says about one tool call, from the Lambda client context's `custom` map.
/// Plain data, so the handler is tested without the Lambda runtime. It carries no identity of
/// the person asking: nothing in it is the Slack user (see `getMyUsage` in the README).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GatewayContext {
    /// The tool as the gateway names it: `<target name>___<tool name>`.
    pub tool_name: String,
    pub gateway_id: Option<String>,
    pub target_id: Option<String>,
    pub message_version: Option<String>,
    pub aws_request_id: Option<String>,
    pub mcp_message_id: Option<String>,
}

impl GatewayContext {
    /// The gateway's metadata, when the client context has a tool name (a gateway call);
    /// `None` for any other invocation.
    pub fn from_custom<S: BuildHasher>(custom: &HashMap<String, String, S>) -> Option<Self> {
        let get = |key: &str| custom.get(key).cloned();
        Some(GatewayContext {
            tool_name: get(TOOL_NAME)?,
            gateway_id: get(GATEWAY_ID),
            target_id: get(TARGET_ID),
            message_version: get(MESSAGE_VERSION),
            aws_request_id: get(AWS_REQUEST_ID),
            mcp_message_id: get(MCP_MESSAGE_ID),
        })
    }

    /// A context for `tool_name` alone (tests, local invokes).
    pub fn for_tool(tool_name: impl Into<String>) -> Self {
        GatewayContext { tool_name: tool_name.into(), ..GatewayContext::default() }
    }

    /// The tool's own name: the target prefix stripped.
    pub fn tool(&self) -> &str {
        strip_target_prefix(&self.tool_name)
    }
}

/// The tool name without the target prefix: everything up to and including the first `___`
/// goes (target names cannot contain `_`, so the first one ends the prefix). A name without the
/// delimiter is already bare.
pub fn strip_target_prefix(name: &str) -> &str {
    name.split_once(TARGET_DELIMITER).map_or(name, |(_, tool)| tool)
}

/// What is wrong with a tool call's arguments. The message names the problem for the model and
/// never repeats a value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ArgumentsError {
    #[error("The tool arguments must be a JSON object, not {0}.")]
    NotAnObject(&'static str),
    #[error("The argument {name:?} must be a string or a number, not {kind}.")]
    NotScalar { name: String, kind: &'static str },
    #[error("This tool has no argument {name:?}; it takes {accepted}.")]
    Unknown { name: String, accepted: String },
}

impl ArgumentsError {
    /// A short name of the problem, for logs and metrics (never the content).
    pub fn problem(&self) -> &'static str {
        match self {
            ArgumentsError::NotAnObject(_) => "arguments_not_an_object",
            ArgumentsError::NotScalar { .. } => "argument_not_a_scalar",
            ArgumentsError::Unknown { .. } => "unknown_argument",
        }
    }
}

/// The arguments of a tool call as text by name, as the other forms carry their parameters:
/// strings as they are, numbers and booleans as their text, `null` as absent. `accepted` are the
/// tool's declared arguments; anything else is refused, so a schema that drifted from the code
/// is noticed rather than half-served.
pub fn parse_arguments(event: &Value, accepted: &[&str]) -> Result<BTreeMap<String, String>, ArgumentsError> {
    let object = match event {
        Value::Object(object) => object,
        // A tool called with no arguments at all.
        Value::Null => return Ok(BTreeMap::new()),
        other => return Err(ArgumentsError::NotAnObject(kind(other))),
    };
    let mut arguments = BTreeMap::new();
    for (name, value) in object {
        if !accepted.contains(&name.as_str()) {
            let accepted = if accepted.is_empty() { "no arguments".to_string() } else { accepted.join(", ") };
            return Err(ArgumentsError::Unknown { name: crate::jira::cut(name, 40), accepted });
        }
        let text = match value {
            Value::String(s) => s.clone(),
            Value::Number(_) | Value::Bool(_) => value.to_string(),
            Value::Null => continue,
            Value::Array(_) | Value::Object(_) => {
                return Err(ArgumentsError::NotScalar { name: name.clone(), kind: kind(value) })
            }
        };
        arguments.insert(name.clone(), text);
    }
    Ok(arguments)
}

/// The JSON type of a value, in words.
fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// What the function returns to the gateway: the operation's JSON answer, or an error result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ToolResult {
    Error(ToolError),
    Answer(Value),
}

/// An MCP tool error result: `{"isError": true, "content": [{"type": "text", "text": "..."}]}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolError {
    #[serde(rename = "isError")]
    pub is_error: bool,
    pub content: Vec<TextContent>,
}

/// One text item of a tool result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TextContent {
    #[serde(rename = "type")]
    pub kind: String,
    pub text: String,
}

impl ToolResult {
    /// An error result carrying `message` for the agent to relay.
    pub fn error(message: impl Into<String>) -> Self {
        ToolResult::Error(ToolError {
            is_error: true,
            content: vec![TextContent { kind: "text".into(), text: message.into() }],
        })
    }

    pub fn is_error(&self) -> bool {
        matches!(self, ToolResult::Error(e) if e.is_error)
    }

    /// The answer's JSON text, or the error's message.
    pub fn text(&self) -> String {
        match self {
            ToolResult::Answer(v) => v.to_string(),
            ToolResult::Error(e) => e.content.iter().map(|c| c.text.as_str()).collect::<Vec<_>>().join("\n"),
        }
    }
}

#[cfg(test)]
mod tests;
