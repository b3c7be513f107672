//! The AgentCore Runtime adapter: InvokeAgentRuntime with the gateway's JSON payload, the
//! agent's streamed events (server-sent events) or whole answer folded into an [`AgentTurn`]
//! by [`RuntimeCollector`].

use std::time::Instant;

use async_trait::async_trait;
use aws_smithy_types::Blob;

use super::runtime_collector::RuntimeCollector;
use super::sse::SseParser;
use super::{incomplete, request_error};
use crate::aws::agent::STREAM_INTERRUPTED;
use crate::domain::{AgentBackend, AgentTurn, ThreadRef};
use crate::ports::{AgentClient, AgentError, AgentErrorKind, AgentRequest, SpentCalls, TextSink};

/// The `code` of an `{"error": ...}` event from the agent's own code.
pub const AGENT_RUNTIME_ERROR: &str = "AgentRuntimeError";

/// One AgentCore Runtime agent (and endpoint), invoked for every turn.
#[derive(Debug, Clone)]
pub struct AgentCoreRuntime {
    client: aws_sdk_bedrockagentcore::Client,
    arn: String,
    qualifier: Option<String>,
    model_id: Option<String>,
}

impl AgentCoreRuntime {
    /// The runtime agent `arn` at endpoint `qualifier` (None: DEFAULT); usage events without a
    /// model are attributed to `model_id` (None: unattributed, so unpriced).
    pub fn new(
        client: aws_sdk_bedrockagentcore::Client,
        arn: impl Into<String>,
        qualifier: Option<String>,
        model_id: Option<String>,
    ) -> Self {
        AgentCoreRuntime { client, arn: arn.into(), qualifier, model_id }
    }
}

/// The payload the gateway sends (docs/agentcore-runtime.md): `prompt` is what a Strands
/// entrypoint reads; the rest lets any agent know who asks and where.
pub fn payload(request: &AgentRequest) -> serde_json::Value {
    let attribute = |k: &str| request.session_attributes.get(k).cloned().unwrap_or_default();
    serde_json::json!({
        "prompt": request.input_text,
        "session_id": request.session_id,
        "user_id": request.user_id,
        "slack": {
            "team_id": attribute("slack_team_id"),
            "channel_id": attribute("slack_channel_id"),
        },
    })
}

#[async_trait]
impl AgentClient for AgentCoreRuntime {
    fn backend(&self) -> AgentBackend {
        AgentBackend::Runtime
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

impl AgentCoreRuntime {
    async fn run(
        &self,
        request: &AgentRequest,
        on_text: Option<TextSink<'_>>,
        spent: &SpentCalls,
    ) -> Result<AgentTurn, AgentError> {
        super::text_only(request, "the runtime payload carries text only")?;
        let started = Instant::now();
        let mut call = self
            .client
            .invoke_agent_runtime()
            .agent_runtime_arn(&self.arn)
            .set_qualifier(self.qualifier.clone())
            .runtime_session_id(&request.session_id)
            .content_type("application/json")
            .accept("text/event-stream, application/json")
            .payload(Blob::new(payload(request).to_string()));
        if !request.user_id.is_empty() {
            call = call.runtime_user_id(&request.user_id);
        }
        let mut output = call.send().await.map_err(|e| request_error("InvokeAgentRuntime", e))?;
        let streamed = output.content_type.starts_with("text/event-stream");
        let mut collector = RuntimeCollector::new(started, self.model_id.as_deref());
        let mut sse = SseParser::default();
        let mut body = Vec::new();
        let emit = |collector: &mut RuntimeCollector, data: &str| {
            let usage_before = collector.spent().len();
            if let (Some(text), Some(sink)) = (collector.push(data), on_text) {
                sink(&text);
            }
            if collector.spent().len() != usage_before {
                spent.report(collector.spent());
            }
        };
        loop {
            match output.response.next().await {
                Some(Ok(bytes)) if streamed => {
                    for data in sse.push(&bytes) {
                        emit(&mut collector, &data);
                    }
                }
                Some(Ok(bytes)) => body.extend_from_slice(&bytes),
                Some(Err(e)) => return Err(self.cut(&collector, &e.to_string())),
                None => break,
            }
        }
        if streamed {
            if let Some(data) = sse.finish() {
                emit(&mut collector, &data);
            }
        } else if let (Some(text), Some(sink)) = (collector.push_body(&String::from_utf8_lossy(&body)), on_text) {
            sink(&text);
            spent.report(collector.spent());
        }
        Self::outcome(collector)
    }

    /// The turn, or why it failed: the agent's own error event, or a stream that never said it
    /// was done. Either way the usage already reported is kept.
    fn outcome(collector: RuntimeCollector) -> Result<AgentTurn, AgentError> {
        let mut e = if let Some(error) = collector.error() {
            // The agent's own message is not shown to users or logged whole: it may carry data.
            tracing::warn!(chars = error.len(), "the runtime agent reported an error");
            AgentError::new(
                AgentErrorKind::Rejected,
                AGENT_RUNTIME_ERROR,
                "the agent reported an error",
                collector.spent(),
            )
        } else if !collector.is_complete() {
            incomplete("InvokeAgentRuntime", collector.spent())
        } else {
            return Ok(collector.finish());
        };
        e.usage_unreported = collector.usage_unreported();
        Err(e)
    }

    /// The body broke off mid-way: keep what was reported.
    fn cut(&self, collector: &RuntimeCollector, why: &str) -> AgentError {
        tracing::warn!(error = %why, spent_calls = collector.spent().len(), "InvokeAgentRuntime stream failed");
        let mut e = AgentError::new(AgentErrorKind::Interrupted, STREAM_INTERRUPTED, why, collector.spent());
        e.usage_unreported = collector.usage_unreported();
        e
    }
}
