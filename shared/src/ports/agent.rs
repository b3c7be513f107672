//! The agent port: one invocation's request, how it fails (with what it already spent), and
//! the client every backend implements.

use std::collections::HashMap;

use async_trait::async_trait;

use crate::domain::{AgentBackend, AgentTurn, ModelCall, ThreadRef};

/// One request to the agent, whatever the backend.
#[derive(Debug, Clone, Default)]
pub struct AgentRequest {
    /// The agent session of the Slack thread ([`AgentClient::session_id`]).
    pub session_id: String,
    /// The Slack user who asked (AgentCore's runtimeUserId).
    pub user_id: String,
    pub input_text: String,
    pub session_attributes: HashMap<String, String>,
    /// Files the user attached, passed inline in `sessionState.files`.
    pub files: Vec<AgentInputFile>,
}

/// How the agent should use an attached file (Bedrock's `FileUseCase`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum FileUseCase {
    /// The code interpreter works on the file (analysis, charts); the agent needs it enabled.
    #[default]
    CodeInterpreter,
    /// The file is context for the conversation.
    Chat,
}

impl std::str::FromStr for FileUseCase {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        match s.trim().to_ascii_uppercase().as_str() {
            "CODE_INTERPRETER" => Ok(FileUseCase::CodeInterpreter),
            "CHAT" => Ok(FileUseCase::Chat),
            other => Err(format!("unknown file use case {other:?} (expected CODE_INTERPRETER or CHAT)")),
        }
    }
}

/// A file passed to the agent with the request.
#[derive(Clone, PartialEq, Eq)]
pub struct AgentInputFile {
    pub name: String,
    pub media_type: String,
    pub bytes: Vec<u8>,
    pub use_case: FileUseCase,
}

impl std::fmt::Debug for AgentInputFile {
    // Never the bytes: a debug print of a request must not put a user's file in the logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentInputFile")
            .field("name", &self.name)
            .field("media_type", &self.media_type)
            .field("len", &self.bytes.len())
            .field("use_case", &self.use_case)
            .finish()
    }
}

/// Why an agent invocation failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AgentErrorKind {
    /// Throttled: retry later.
    Throttled,
    /// A server-side fault (5xx, dependency failure): retry.
    Unavailable,
    /// The stream ended before the answer was complete: retry.
    Interrupted,
    /// The request itself is wrong (validation, access denied, not found): do not retry.
    Rejected,
    /// The caller's time ran out before the answer was complete: no time to retry.
    TimedOut,
}

/// The `code` of an attempt cut off (or never started) for want of time before the deadline.
pub const AGENT_TIMEOUT: &str = "AgentTimeout";

/// An agent invocation error, with the model calls already spent before it failed.
#[derive(Debug, Clone, thiserror::Error)]
#[error("agent {kind:?} ({code}): {message}")]
pub struct AgentError {
    pub kind: AgentErrorKind,
    pub code: String,
    pub message: String,
    /// Tokens are billed even when the stream fails: keep them for the usage record.
    pub spent: Vec<ModelCall>,
    /// The agent worked before it failed but its stream reported no usage: what it spent is
    /// unknown.
    pub usage_unreported: bool,
}

impl AgentError {
    /// Whether another attempt may succeed.
    pub fn is_retryable(&self) -> bool {
        !matches!(self.kind, AgentErrorKind::Rejected | AgentErrorKind::TimedOut)
    }

    /// An attempt that ran out of time, having spent `spent`.
    pub fn timed_out(message: impl Into<String>, spent: Vec<ModelCall>) -> Self {
        AgentError::new(AgentErrorKind::TimedOut, AGENT_TIMEOUT, message, spent)
    }

    /// An error of `kind` with its service `code`, having spent `spent`.
    pub fn new(
        kind: AgentErrorKind,
        code: impl Into<String>,
        message: impl Into<String>,
        spent: Vec<ModelCall>,
    ) -> Self {
        AgentError { kind, code: code.into(), message: message.into(), spent, usage_unreported: false }
    }
}

/// The model calls an invocation's stream has reported so far, shared with the caller: a caller
/// that abandons the invocation at its deadline (dropping the future) still records what was
/// billed.
#[derive(Debug, Clone, Default)]
pub struct SpentCalls(std::sync::Arc<std::sync::Mutex<Vec<ModelCall>>>);

impl SpentCalls {
    /// Replaces what was reported with `calls` (the stream's calls so far, completed or not).
    pub fn report(&self, calls: Vec<ModelCall>) {
        *self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = calls;
    }

    /// The calls reported so far.
    pub fn snapshot(&self) -> Vec<ModelCall> {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }
}

/// Receives the answer's text as it streams in, one piece (a UTF-8 complete delta) at a time.
pub type TextSink<'a> = &'a (dyn Fn(&str) + Send + Sync);

/// The agent: a Bedrock Agents (Classic) alias, an AgentCore harness or an AgentCore Runtime
/// agent, each an adapter of this port.
#[async_trait]
pub trait AgentClient: Send + Sync {
    /// Which backend this is (recorded with every turn).
    fn backend(&self) -> AgentBackend {
        AgentBackend::Classic
    }

    /// The agent session id of a Slack thread: stable per thread, in the backend's own form.
    fn session_id(&self, thread: &ThreadRef) -> String {
        thread.session_id()
    }

    async fn invoke(&self, request: &AgentRequest) -> std::result::Result<AgentTurn, AgentError>;

    /// Like [`AgentClient::invoke`], handing each piece of answer text to `on_text` as it
    /// arrives and each model call to `spent` as the stream reports it. Clients that cannot
    /// stream hand over the whole text once, at the end, and report no calls before it.
    async fn invoke_streaming(
        &self,
        request: &AgentRequest,
        on_text: TextSink<'_>,
        _spent: &SpentCalls,
    ) -> std::result::Result<AgentTurn, AgentError> {
        let turn = self.invoke(request).await?;
        if !turn.text.is_empty() {
            on_text(&turn.text);
        }
        Ok(turn)
    }
}
