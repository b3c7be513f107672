//! The AgentCore Gateway form: the tool's arguments as the event, the tool named in the Lambda
//! client context. The same routes and operations as the Classic forms; the answer is the
//! operation's JSON, every failure an error result whose text the agent relays.
//!
//! `getMyUsage` is refused here: nothing the gateway sends says which Slack user is asking (the
//! client context carries the gateway, target, request and tool names only), and who asks must
//! never come from the model's arguments.

use std::time::Instant;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;

use super::{work_deadline, Arguments, CallLog, Handler};
use crate::events::gateway::{parse_arguments, GatewayContext, ToolResult};
use crate::events::ActionGroupResponse;
use crate::jira::cut;
use crate::outcome::Outcome;
use crate::routes::{self, Action, Route};

/// `EventType` of the SchemaDrift a malformed gateway call counts.
pub const GATEWAY_DRIFT: &str = "gateway_tool_call";

/// The answer to an invocation, in the form it came in.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Reply {
    /// A Bedrock Agents (Classic) action-group response.
    ActionGroup(ActionGroupResponse),
    /// An AgentCore Gateway tool result.
    Tool(ToolResult),
}

impl Handler {
    /// Handles one gateway tool call (`arguments` is the Lambda event) as of `now`.
    pub async fn handle_tool_call(
        &self,
        arguments: &Value,
        gateway: &GatewayContext,
        deadline: Option<Instant>,
        now: DateTime<Utc>,
    ) -> ToolResult {
        let started = Instant::now();
        let work_deadline = work_deadline(deadline, started);
        let (action, operation, outcome) = match routes::find_function(gateway.tool()) {
            None => {
                self.drift(GATEWAY_DRIFT, "unknown_tool");
                let message = format!(
                    "This tool target has no tool {:?}; it has {}.",
                    cut(gateway.tool(), 80),
                    routes::ROUTES.iter().map(|r| r.function()).collect::<Vec<_>>().join(", ")
                );
                // The name is not logged: it is whatever the caller sent.
                ("unknown", "unknown".to_string(), Outcome::failure(404, "UnknownTool", message))
            }
            Some(route) => {
                let outcome = self.run_tool(route, arguments, work_deadline, now).await;
                (route.function(), route.function().to_string(), outcome)
            }
        };
        let group = gateway.target_id.as_deref().unwrap_or_default();
        self.record(&CallLog { form: "gateway", operation, group }, action, &outcome, started);
        match outcome {
            Outcome::Answer(answer) => ToolResult::Answer(answer),
            Outcome::Reprompt { message, .. } | Outcome::Failure { message, .. } => ToolResult::error(message),
        }
    }

    async fn run_tool(&self, route: &Route, event: &Value, deadline: Instant, now: DateTime<Utc>) -> Outcome {
        let declared: Vec<&str> = route.parameters.iter().map(|p| p.name).collect();
        let arguments: Arguments = match parse_arguments(event, &declared) {
            Ok(arguments) => arguments,
            Err(e) => {
                self.drift(GATEWAY_DRIFT, e.problem());
                return Outcome::reprompt(400, "MalformedArguments", e.to_string());
            }
        };
        if route.action == Action::MyUsage {
            return Outcome::reprompt(403, "UsageNeedsSlackIdentity", USAGE_REFUSED);
        }
        self.run(route.action, &arguments, None, deadline, now).await
    }
}

/// Why `getMyUsage` is not answered over the gateway, for the agent to relay.
pub const USAGE_REFUSED: &str = "I can't look up usage here: this tool connection does not say which Slack user is asking, and usage is only ever shown to the person it belongs to, so it is never taken from the conversation. Ask an administrator of the bot for your usage figures.";

#[cfg(test)]
mod tests;
