//! action-group: the agent's tools. Jira ticket search and lookup (credentials read from
//! Secrets Manager on every invocation) and the asking user's own usage from the rollups, served
//! in both Bedrock Agents action-group forms (OpenAPI schema and function details) and as an
//! AgentCore Gateway Lambda target.
//!
//! The logic starts in [`handler`]; [`events`] holds the request and response shapes of every
//! form, [`routes`] defines the operations once, [`schemas`] generates from them the OpenAPI
//! document (`openapi/tickets.json`) and the Gateway tool schema (`tools/agentcore-tools.json`);
//! [`my_usage`] reads the user's usage questions and shapes the answers.

pub mod config;
pub mod events;
pub mod handler;
pub mod jira;
pub mod jql;
pub mod my_usage;
pub mod outcome;
pub mod routes;
pub mod schemas;

pub use config::ActionGroupConfig;
pub use handler::{ActionGroupError, Handler};
pub use schemas::{gateway_tools, GATEWAY_TOOLS};

/// The OpenAPI schema of the action group (also the file to upload when creating it).
pub const OPENAPI_SCHEMA: &str = include_str!("../openapi/tickets.json");
