//! AgentCore's answers on the wire, for the scripted fakes, the property tests and the
//! benchmark (feature `test-support`): InvokeHarness event-stream frames, and an AgentCore
//! client whose every request is answered with a given body over no network, so the real SDK
//! decodes what a test wrote.

use aws_sdk_bedrockagentcore::config::retry::RetryConfig;
use aws_sdk_bedrockagentcore::config::{BehaviorVersion, Credentials, Region};

pub use crate::aws::agent::wire::frame;
use crate::aws::agent::wire::Answering;

/// A client whose every request is answered with `body` as `content_type` (SDK retries off).
pub fn answering_client(body: Vec<u8>, content_type: &'static str) -> aws_sdk_bedrockagentcore::Client {
    let config = aws_sdk_bedrockagentcore::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("wire", "wire", None, None, "wire"))
        .retry_config(RetryConfig::disabled())
        .http_client(Answering { body, headers: vec![("content-type", content_type)] })
        .build();
    aws_sdk_bedrockagentcore::Client::from_conf(config)
}

/// A client answering every InvokeHarness with these event-stream `frames`.
pub fn harness_client(frames: Vec<u8>) -> aws_sdk_bedrockagentcore::Client {
    answering_client(frames, "application/vnd.amazon.eventstream")
}
