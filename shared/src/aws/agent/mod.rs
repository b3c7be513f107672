//! The Bedrock Agent adapter: InvokeAgent with traces on, the whole event stream folded into an
//! [`AgentTurn`] by [`TurnCollector`], failures classified into [`AgentError`] kinds.

use std::time::Instant;

use async_trait::async_trait;
use aws_sdk_bedrockagentruntime::config::retry::RetryConfig;
use aws_sdk_bedrockagentruntime::error::BuildError;
use aws_sdk_bedrockagentruntime::operation::invoke_agent::InvokeAgentError;
use aws_sdk_bedrockagentruntime::primitives::Blob;
use aws_sdk_bedrockagentruntime::types::error::ResponseStreamError;
use aws_sdk_bedrockagentruntime::types::{
    ByteContentFile, FileSource, FileSourceType, FileUseCase as SdkFileUseCase, InputFile, ResponseStream, SessionState,
};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::display::DisplayErrorContext;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

mod collector;
#[cfg(test)]
mod proptests;
mod sources;
#[cfg(any(test, feature = "test-support"))]
pub mod wire;

pub use collector::TurnCollector;

use crate::domain::{AgentTurn, ModelCall};
use crate::ports::{
    AgentClient, AgentError, AgentErrorKind, AgentInputFile, AgentRequest, FileUseCase, SpentCalls, TextSink,
};
use crate::utf8::Utf8Deltas;

/// The `code` of an error that cut the event stream half-way (connection lost, bad frame).
pub const STREAM_INTERRUPTED: &str = "StreamInterrupted";

/// A Bedrock Agent Runtime client for [`BedrockAgent`]. The SDK's own retries are off: the
/// worker retries with a deadline-aware backoff and keeps the tokens each attempt spent, and
/// two layers of retries would multiply.
pub fn agent_client(sdk: &aws_config::SdkConfig) -> aws_sdk_bedrockagentruntime::Client {
    let config = aws_sdk_bedrockagentruntime::config::Builder::from(sdk).retry_config(RetryConfig::disabled()).build();
    aws_sdk_bedrockagentruntime::Client::from_conf(config)
}

/// One Bedrock Agent alias, invoked with traces enabled.
#[derive(Debug, Clone)]
pub struct BedrockAgent {
    client: aws_sdk_bedrockagentruntime::Client,
    agent_id: String,
    agent_alias_id: String,
}

impl BedrockAgent {
    /// The agent `agent_id`, alias `agent_alias_id`, through `client`.
    pub fn new(
        client: aws_sdk_bedrockagentruntime::Client,
        agent_id: impl Into<String>,
        agent_alias_id: impl Into<String>,
    ) -> Self {
        BedrockAgent { client, agent_id: agent_id.into(), agent_alias_id: agent_alias_id.into() }
    }
}

#[async_trait]
impl AgentClient for BedrockAgent {
    async fn invoke(&self, request: &AgentRequest) -> Result<AgentTurn, AgentError> {
        self.run(request, None, &SpentCalls::default()).await
    }

    async fn invoke_streaming(
        &self,
        request: &AgentRequest,
        on_text: TextSink<'_>,
        spent: &SpentCalls,
    ) -> Result<AgentTurn, AgentError> {
        self.run(request, Some(on_text), spent).await
    }
}

impl BedrockAgent {
    /// One InvokeAgent call, its stream folded into a turn; answer text also goes to `on_text`
    /// as each chunk arrives, and the model calls to `spent` as each trace arrives.
    async fn run(
        &self,
        request: &AgentRequest,
        on_text: Option<TextSink<'_>>,
        spent: &SpentCalls,
    ) -> Result<AgentTurn, AgentError> {
        let started = Instant::now();
        let mut call = self
            .client
            .invoke_agent()
            .agent_id(&self.agent_id)
            .agent_alias_id(&self.agent_alias_id)
            .session_id(&request.session_id)
            .input_text(&request.input_text)
            .enable_trace(true);
        if !request.session_attributes.is_empty() || !request.files.is_empty() {
            let files = request.files.iter().map(input_file).collect::<Result<Vec<_>, _>>()?;
            let attributes = (!request.session_attributes.is_empty()).then(|| request.session_attributes.clone());
            call = call.session_state(
                SessionState::builder()
                    .set_session_attributes(attributes)
                    .set_files((!files.is_empty()).then_some(files))
                    .build(),
            );
        }
        let output = call.send().await.map_err(request_error)?;
        let mut stream = output.completion;
        let mut collector = TurnCollector::new(started);
        let mut deltas = Utf8Deltas::default();
        loop {
            match stream.recv().await {
                Ok(Some(event)) => {
                    if let (Some(sink), ResponseStream::Chunk(part)) = (on_text, &event) {
                        let delta = part.bytes.as_ref().map(|b| deltas.push(b.as_ref())).unwrap_or_default();
                        if !delta.is_empty() {
                            sink(&delta);
                        }
                    }
                    let traced = matches!(event, ResponseStream::Trace(_));
                    collector.push(event);
                    if traced {
                        spent.report(collector.spent());
                    }
                }
                Ok(None) => break,
                Err(e) => return Err(stream_error(e, collector.spent())),
            }
        }
        let turn = collector.finish();
        tracing::debug!(
            session_id = %request.session_id,
            model_calls = turn.model_calls.len(),
            latency_ms = started.elapsed().as_millis() as u64,
            "agent turn read"
        );
        Ok(turn)
    }
}

/// A user's file, inline (`BYTE_CONTENT`), for the use case the request names.
fn input_file(file: &AgentInputFile) -> Result<InputFile, AgentError> {
    let rejected = |e: BuildError| {
        AgentError::new(
            AgentErrorKind::Rejected,
            "ConstructionFailure",
            format!("input file {:?}: {e}", file.name),
            Vec::new(),
        )
    };
    let content = ByteContentFile::builder()
        .media_type(&file.media_type)
        .data(Blob::new(file.bytes.clone()))
        .build()
        .map_err(rejected)?;
    let source = FileSource::builder()
        .source_type(FileSourceType::ByteContent)
        .byte_content(content)
        .build()
        .map_err(rejected)?;
    let use_case = match file.use_case {
        FileUseCase::CodeInterpreter => SdkFileUseCase::CodeInterpreter,
        FileUseCase::Chat => SdkFileUseCase::Chat,
    };
    InputFile::builder().name(&file.name).source(source).use_case(use_case).build().map_err(rejected)
}

/// The request failed before any event arrived: nothing was spent.
fn request_error(err: SdkError<InvokeAgentError, HttpResponse>) -> AgentError {
    let (kind, code, message) = match &err {
        SdkError::ServiceError(ctx) => {
            let e = ctx.err();
            let status = Some(ctx.raw().status().as_u16());
            let code = e
                .code()
                .map(str::to_owned)
                .unwrap_or_else(|| status.map_or_else(|| "Unknown".into(), |s| format!("Http{s}")));
            (kind_of(&code, status), code, e.message().unwrap_or_default().to_owned())
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
    tracing::warn!(kind = ?kind, code = %code, message = %message, "InvokeAgent failed");
    AgentError::new(kind, code, message, Vec::new())
}

/// The stream failed after it began: keep what the turn already spent.
fn stream_error<R: std::fmt::Debug>(err: SdkError<ResponseStreamError, R>, spent: Vec<ModelCall>) -> AgentError {
    let (kind, code, message) = match &err {
        SdkError::ServiceError(ctx) => {
            let e = ctx.err();
            let code = stream_error_code(e);
            (kind_of(&code, None), code, e.message().unwrap_or_default().to_owned())
        }
        // A cut connection, a truncated or unparsable frame, a timeout while reading.
        _ => (AgentErrorKind::Interrupted, STREAM_INTERRUPTED.into(), DisplayErrorContext(&err).to_string()),
    };
    tracing::warn!(
        kind = ?kind,
        code = %code,
        message = %message,
        spent_calls = spent.len(),
        "InvokeAgent stream failed"
    );
    AgentError::new(kind, code, message, spent)
}

/// Exceptions inside the stream carry their type in a frame header, not always in the
/// payload, so name the modelled ones after their shape.
fn stream_error_code(err: &ResponseStreamError) -> String {
    let modelled = match err {
        ResponseStreamError::ThrottlingException(_) => "ThrottlingException",
        ResponseStreamError::ServiceQuotaExceededException(_) => "ServiceQuotaExceededException",
        ResponseStreamError::InternalServerException(_) => "InternalServerException",
        ResponseStreamError::DependencyFailedException(_) => "DependencyFailedException",
        ResponseStreamError::BadGatewayException(_) => "BadGatewayException",
        ResponseStreamError::ModelNotReadyException(_) => "ModelNotReadyException",
        ResponseStreamError::ValidationException(_) => "ValidationException",
        ResponseStreamError::AccessDeniedException(_) => "AccessDeniedException",
        ResponseStreamError::ResourceNotFoundException(_) => "ResourceNotFoundException",
        ResponseStreamError::ConflictException(_) => "ConflictException",
        other => return other.code().unwrap_or("UnknownStreamException").to_owned(),
    };
    modelled.to_owned()
}

/// Classifies a service error code (either spelling: `ThrottlingException` in HTTP errors,
/// `throttlingException` in stream frames), falling back on the HTTP status. AgentCore's
/// `RuntimeClientError` (the agent's own code failed) is not retried: another attempt would
/// most likely fail the same way, and bill again.
pub(crate) fn kind_of(code: &str, status: Option<u16>) -> AgentErrorKind {
    let lower = code.to_ascii_lowercase();
    let name = lower.strip_suffix("exception").unwrap_or(&lower);
    match name {
        "throttling" | "servicequotaexceeded" | "toomanyrequests" => AgentErrorKind::Throttled,
        "internalserver" | "internalfailure" | "dependencyfailed" | "badgateway" | "modelnotready"
        | "serviceunavailable" | "retryableconflict" => AgentErrorKind::Unavailable,
        "validation" | "accessdenied" | "resourcenotfound" | "conflict" | "runtimeclienterror" => {
            AgentErrorKind::Rejected
        }
        _ => match status {
            Some(429) => AgentErrorKind::Throttled,
            Some(s) if s >= 500 => AgentErrorKind::Unavailable,
            Some(s) if s >= 400 => AgentErrorKind::Rejected,
            // An unmodelled exception inside the stream: a server-side fault.
            _ => AgentErrorKind::Unavailable,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn input_files_are_inline_byte_content() {
        let file = AgentInputFile {
            name: "q3.csv".into(),
            media_type: "text/csv".into(),
            bytes: b"a,b\n".to_vec(),
            use_case: FileUseCase::Chat,
        };
        let built = input_file(&file).unwrap();
        assert_eq!(built.name(), "q3.csv");
        assert_eq!(built.use_case(), &SdkFileUseCase::Chat);
        let source = built.source().unwrap();
        assert_eq!(source.source_type(), &FileSourceType::ByteContent);
        let content = source.byte_content().unwrap();
        assert_eq!((content.media_type(), content.data().as_ref()), ("text/csv", &b"a,b\n"[..]));
        assert!(!format!("{file:?}").contains("a,b"), "debug output never shows the bytes");
    }

    #[test]
    fn codes_map_to_kinds() {
        use AgentErrorKind::*;
        assert_eq!(kind_of("ThrottlingException", Some(429)), Throttled);
        assert_eq!(kind_of("throttlingException", None), Throttled);
        assert_eq!(kind_of("ServiceQuotaExceededException", Some(400)), Throttled);
        assert_eq!(kind_of("InternalServerException", Some(500)), Unavailable);
        assert_eq!(kind_of("dependencyFailedException", None), Unavailable);
        assert_eq!(kind_of("BadGatewayException", Some(502)), Unavailable);
        assert_eq!(kind_of("ModelNotReadyException", Some(424)), Unavailable);
        assert_eq!(kind_of("ValidationException", Some(400)), Rejected);
        assert_eq!(kind_of("AccessDeniedException", Some(403)), Rejected);
        assert_eq!(kind_of("ResourceNotFoundException", Some(404)), Rejected);
        assert_eq!(kind_of("ConflictException", Some(409)), Rejected);
        assert_eq!(kind_of("RetryableConflictException", Some(409)), Unavailable);
        assert_eq!(kind_of("runtimeClientError", None), Rejected);
        assert_eq!(kind_of("SomethingNew", Some(503)), Unavailable);
        assert_eq!(kind_of("SomethingNew", Some(429)), Throttled);
        assert_eq!(kind_of("SomethingNew", Some(418)), Rejected);
        assert_eq!(kind_of("SomethingNew", None), Unavailable);
    }
}
