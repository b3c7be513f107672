//! The Amazon Bedrock AgentCore adapters of the agent port: a managed harness through
//! InvokeHarness ([`harness::AgentCoreHarness`]) and a code-defined agent on AgentCore Runtime
//! through InvokeAgentRuntime. Both answer with the same [`AgentTurn`](crate::domain::AgentTurn)
//! as the Classic adapter, so the worker, the ledger and the archive never ask which it was.

use aws_sdk_bedrockagentcore::config::retry::RetryConfig;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::display::DisplayErrorContext;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use aws_smithy_types::event_stream::RawMessage;

pub mod harness;
mod harness_collector;
pub mod json;
pub mod runtime;
mod runtime_collector;
#[cfg(test)]
mod runtime_tests;
pub mod sse;
#[cfg(any(test, feature = "test-support"))]
pub mod wire;

pub use harness_collector::{HarnessCollector, CONTENT_FILTERED, HARNESS_STEP};
pub use runtime_collector::{RuntimeCollector, RUNTIME_STEP};

use super::agent::{kind_of, STREAM_INTERRUPTED};
use crate::domain::ModelCall;
use crate::ports::{AgentError, AgentErrorKind, AgentRequest};

/// The `code` of a stream that ended without finishing its answer (no final message stop).
pub const STREAM_INCOMPLETE: &str = "StreamIncomplete";

/// An AgentCore data-plane client. The SDK's own retries are off, as for Classic: the worker
/// retries with a deadline-aware backoff and keeps the tokens each attempt spent.
pub fn agentcore_client(sdk: &aws_config::SdkConfig) -> aws_sdk_bedrockagentcore::Client {
    let config = aws_sdk_bedrockagentcore::config::Builder::from(sdk).retry_config(RetryConfig::disabled()).build();
    aws_sdk_bedrockagentcore::Client::from_conf(config)
}

/// The request failed before any event arrived: nothing was spent.
pub(crate) fn request_error<E>(operation: &str, err: SdkError<E, HttpResponse>) -> AgentError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let (kind, code, message) = match &err {
        SdkError::ServiceError(ctx) => {
            let status = ctx.raw().status().as_u16();
            let code = ctx.err().code().map_or_else(|| format!("Http{status}"), str::to_owned);
            (kind_of(&code, Some(status)), code, ctx.err().message().unwrap_or_default().to_owned())
        }
        SdkError::TimeoutError(_) => {
            (AgentErrorKind::Unavailable, "Timeout".into(), DisplayErrorContext(&err).to_string())
        }
        SdkError::DispatchFailure(_) => {
            (AgentErrorKind::Unavailable, "DispatchFailure".into(), DisplayErrorContext(&err).to_string())
        }
        SdkError::ResponseError(_) => {
            (AgentErrorKind::Unavailable, "ResponseError".into(), DisplayErrorContext(&err).to_string())
        }
        _ => (AgentErrorKind::Rejected, "ConstructionFailure".into(), DisplayErrorContext(&err).to_string()),
    };
    tracing::warn!(kind = ?kind, code = %code, message = %message, operation, "AgentCore request failed");
    AgentError::new(kind, code, message, Vec::new())
}

/// The stream failed after it began (an exception event, a cut connection, a bad frame):
/// keep what the turn already spent.
/// Exceptions inside a stream carry their type in a frame header, not in the payload: `named`
/// names the modelled ones after their shape.
/// An exception of a type the SDK does not model is named by the frame's `:exception-type`
/// header (the payload only has its message).
pub(crate) fn stream_error<E>(
    operation: &str,
    err: SdkError<E, RawMessage>,
    named: fn(&E) -> Option<&'static str>,
    spent: Vec<ModelCall>,
) -> AgentError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let (kind, code, message) = match &err {
        SdkError::ServiceError(ctx) => {
            let e = ctx.err();
            let code = named(e)
                .map(str::to_owned)
                .or_else(|| exception_type(ctx.raw()))
                .or_else(|| e.code().map(str::to_owned))
                .unwrap_or_else(|| "UnknownStreamException".to_owned());
            (kind_of(&code, None), code, ctx.err().message().unwrap_or_default().to_owned())
        }
        _ => (AgentErrorKind::Interrupted, STREAM_INTERRUPTED.into(), DisplayErrorContext(&err).to_string()),
    };
    tracing::warn!(kind = ?kind, code = %code, message = %message, spent_calls = spent.len(), operation, "AgentCore stream failed");
    AgentError::new(kind, code, message, spent)
}

/// AgentCore takes the question as text: a request with files is refused before the call
/// (`FILES_UNSUPPORTED`), so the worker asks again without them and tells the user.
pub(crate) fn text_only(request: &AgentRequest, why: &str) -> Result<(), AgentError> {
    if request.files.is_empty() {
        return Ok(());
    }
    let message = format!("{why}; {} file(s) not sent", request.files.len());
    Err(AgentError::new(AgentErrorKind::Rejected, harness::FILES_UNSUPPORTED, message, Vec::new()))
}

/// The `:exception-type` header of an exception frame.
fn exception_type(raw: &RawMessage) -> Option<String> {
    let RawMessage::Decoded(message) = raw else { return None };
    let header = message.headers().iter().find(|h| h.name().as_str() == ":exception-type")?;
    let name = header.value().as_string().ok()?.as_str().trim();
    // Header values are the service's: keep only what can be a type name.
    (!name.is_empty() && name.len() <= 64 && name.chars().all(|c| c.is_ascii_alphanumeric())).then(|| name.to_owned())
}

/// The stream ended cleanly but the answer was not finished (no final message stop): like a
/// cut stream, another attempt may finish it; the tokens reported so far count as spent.
pub(crate) fn incomplete(operation: &str, spent: Vec<ModelCall>) -> AgentError {
    tracing::warn!(spent_calls = spent.len(), operation, "AgentCore stream ended before the answer was finished");
    AgentError::new(
        AgentErrorKind::Interrupted,
        STREAM_INCOMPLETE,
        "the stream ended before the agent finished its answer",
        spent,
    )
}

/// The resource name at the end of an AgentCore ARN (`...:harness/support-bot-a1b2`), the
/// agent id the ledger records when AGENT_ID is not set.
pub fn arn_resource_id(arn: &str) -> Option<&str> {
    let resource = arn.rsplit(':').next()?;
    let id = resource.rsplit('/').next()?;
    (!id.is_empty() && resource.contains('/')).then_some(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arns_name_their_resource() {
        let arn = "arn:aws:bedrock-agentcore:us-east-1:111122223333:harness/support-bot-a1b2";
        assert_eq!(arn_resource_id(arn), Some("support-bot-a1b2"));
        let runtime = "arn:aws:bedrock-agentcore:us-east-1:111122223333:runtime/helpdesk_agent-XyZ12";
        assert_eq!(arn_resource_id(runtime), Some("helpdesk_agent-XyZ12"));
        assert_eq!(arn_resource_id("not-an-arn"), None);
        assert_eq!(arn_resource_id("arn:aws:bedrock-agentcore:us-east-1:1:harness/"), None);
    }
}
