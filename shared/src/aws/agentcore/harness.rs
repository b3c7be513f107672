//! The AgentCore managed harness adapter: InvokeHarness with the Slack thread's session and
//! user, the whole event stream folded into an [`AgentTurn`] by [`HarnessCollector`].

use std::time::Instant;

use async_trait::async_trait;
use aws_sdk_bedrockagentcore::types::error::InvokeHarnessStreamOutputError;
use aws_sdk_bedrockagentcore::types::{HarnessContentBlock, HarnessConversationRole, HarnessMessage};

use super::{incomplete, request_error, stream_error, HarnessCollector};
use crate::domain::{AgentBackend, AgentTurn, ThreadRef};
use crate::ports::{AgentClient, AgentError, AgentErrorKind, AgentRequest, SpentCalls, TextSink};

/// The `code` of a request with files: the harness takes text only, so the worker asks again
/// without them and tells the user.
pub const FILES_UNSUPPORTED: &str = "FilesUnsupported";

/// One AgentCore harness (and endpoint), invoked for every turn.
#[derive(Debug, Clone)]
pub struct AgentCoreHarness {
    client: aws_sdk_bedrockagentcore::Client,
    arn: String,
    qualifier: Option<String>,
    model_id: Option<String>,
}

impl AgentCoreHarness {
    /// The harness `arn` at endpoint `qualifier` (None: DEFAULT), its usage attributed to
    /// `model_id` (the harness's configured model; None: unattributed, so unpriced).
    pub fn new(
        client: aws_sdk_bedrockagentcore::Client,
        arn: impl Into<String>,
        qualifier: Option<String>,
        model_id: Option<String>,
    ) -> Self {
        AgentCoreHarness { client, arn: arn.into(), qualifier, model_id }
    }
}

#[async_trait]
impl AgentClient for AgentCoreHarness {
    fn backend(&self) -> AgentBackend {
        AgentBackend::Harness
    }

    fn session_id(&self, thread: &ThreadRef) -> String {
        thread.agentcore_session_id()
    }

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

impl AgentCoreHarness {
    async fn run(
        &self,
        request: &AgentRequest,
        on_text: Option<TextSink<'_>>,
        spent: &SpentCalls,
    ) -> Result<AgentTurn, AgentError> {
        super::text_only(request, "the harness takes text only")?;
        let started = Instant::now();
        let message = HarnessMessage::builder()
            .role(HarnessConversationRole::User)
            .content(HarnessContentBlock::Text(request.input_text.clone()))
            .build()
            .map_err(|e| AgentError::new(AgentErrorKind::Rejected, "ConstructionFailure", e.to_string(), Vec::new()))?;
        let mut call = self
            .client
            .invoke_harness()
            .harness_arn(&self.arn)
            .set_qualifier(self.qualifier.clone())
            .runtime_session_id(&request.session_id)
            .messages(message);
        if !request.user_id.is_empty() {
            call = call.runtime_user_id(&request.user_id);
        }
        let output = call.send().await.map_err(|e| request_error("InvokeHarness", e))?;
        let mut stream = output.stream;
        let mut collector = HarnessCollector::new(started, self.model_id.as_deref());
        loop {
            match stream.recv().await {
                Ok(Some(event)) => {
                    let usage = event.is_metadata();
                    if let (Some(text), Some(sink)) = (collector.push(event), on_text) {
                        sink(&text);
                    }
                    if usage {
                        spent.report(collector.spent());
                    }
                }
                Ok(None) => break,
                Err(e) => return Err(stream_error("InvokeHarness", e, stream_exception, collector.spent())),
            }
        }
        if !collector.is_complete() {
            return Err(incomplete("InvokeHarness", collector.spent()));
        }
        let turn = collector.finish();
        tracing::debug!(
            session_id = %request.session_id,
            model_calls = turn.model_calls.len(),
            latency_ms = started.elapsed().as_millis() as u64,
            "harness turn read"
        );
        Ok(turn)
    }
}

/// The modelled exceptions of the InvokeHarness stream, by shape.
fn stream_exception(err: &InvokeHarnessStreamOutputError) -> Option<&'static str> {
    match err {
        InvokeHarnessStreamOutputError::InternalServerException(_) => Some("internalServerException"),
        InvokeHarnessStreamOutputError::ValidationException(_) => Some("validationException"),
        InvokeHarnessStreamOutputError::RuntimeClientError(_) => Some("runtimeClientError"),
        _ => None,
    }
}
