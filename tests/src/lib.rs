//! Local emulators for tests and the local stack: moto (AWS), a fake Slack Web API, a scripted
//! Bedrock Agent Runtime speaking the real event-stream framing, and Slack request signing.

pub mod alerts;
pub mod binary_sources;
pub mod costs;
pub mod fake_agent;
pub mod fake_agentcore;
pub mod fake_cloudwatch;
pub mod fake_jira;
pub mod fake_slack;
pub mod fault_proxy;
pub mod function_process;
pub mod gateway_binaries;
pub mod harness;
pub mod lambda_runtime_api;
pub mod local_alarms;
pub mod local_stack;
pub mod metric_scan;
pub mod moto;
pub mod resources;
pub mod sdk_calls;
pub mod slack_events;
pub mod sql;
pub mod template;
