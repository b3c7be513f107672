//! Domain types: what an agent turn produced, and the records the system keeps about it.
//! Field names of [`AnalyticsEvent`] and [`UsageRecord`] are a contract (ARCHITECTURE.md).

use serde::{Deserialize, Serialize};

/// Version of the analytics event schema written by this code (2: `agent_backend`).
pub const ANALYTICS_SCHEMA_VERSION: u32 = 2;

/// Which kind of agent answered a turn (`AGENT_BACKEND`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AgentBackend {
    /// A Bedrock Agents ("Classic") agent, through InvokeAgent.
    #[default]
    Classic,
    /// An AgentCore managed harness, through InvokeHarness.
    Harness,
    /// A code-defined agent on AgentCore Runtime, through InvokeAgentRuntime.
    Runtime,
}

impl AgentBackend {
    /// Every backend, in the order the docs list them.
    pub const ALL: [AgentBackend; 3] = [AgentBackend::Classic, AgentBackend::Harness, AgentBackend::Runtime];

    /// The value of `AGENT_BACKEND` and of the records' `agent_backend`.
    pub fn as_str(self) -> &'static str {
        match self {
            AgentBackend::Classic => "classic",
            AgentBackend::Harness => "harness",
            AgentBackend::Runtime => "runtime",
        }
    }
}

impl std::fmt::Display for AgentBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for AgentBackend {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        AgentBackend::ALL
            .into_iter()
            .find(|b| b.as_str() == s.trim().to_ascii_lowercase())
            .ok_or_else(|| format!("unknown agent backend {s:?} (expected classic, harness or runtime)"))
    }
}

/// The model id of usage a backend reported without saying which model it was: never in the
/// price table, so its tokens are counted as unpriced, never priced at a guess.
pub const UNATTRIBUTED_MODEL: &str = "unattributed";

/// One model invocation inside an agent turn, with its token usage.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelCall {
    pub model_id: String,
    pub input_tokens: u64,
    pub output_tokens: u64,
    #[serde(default)]
    pub cache_read_tokens: u64,
    #[serde(default)]
    pub cache_write_tokens: u64,
    #[serde(default)]
    pub latency_ms: u64,
    /// pre_processing | orchestration | post_processing | routing_classifier | ...
    pub step: String,
}

/// A file the agent returned in the stream (code interpreter output).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentFile {
    pub name: String,
    pub media_type: String,
    pub bytes: Vec<u8>,
}

/// A failure the agent reported in a failure trace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentFailure {
    pub code: Option<i32>,
    pub reason: String,
}

/// Everything one agent invocation produced, whatever the backend: the answer and what the agent did to get it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AgentTurn {
    /// The answer text, concatenated from the stream's chunks.
    pub text: String,
    /// De-duplicated source names (S3 object basename, web URL, ...), in first-seen order.
    pub sources: Vec<String>,
    /// The agent's rationale: pre-processing parsed response, else the orchestration rationale.
    pub rationale: Option<String>,
    /// Knowledge base ids consulted, de-duplicated.
    pub knowledge_bases: Vec<String>,
    /// The text the agent searched the knowledge bases with.
    pub search_queries: Vec<String>,
    /// Action groups invoked (name, or name/apiPath or name/function), de-duplicated.
    pub action_groups: Vec<String>,
    /// Every model call with its usage.
    pub model_calls: Vec<ModelCall>,
    /// The guardrail action when a guardrail intervened (e.g. "INTERVENED").
    pub guardrail_action: Option<String>,
    /// A failure trace, when the agent reported one.
    pub failure: Option<AgentFailure>,
    /// Files the agent returned.
    pub files: Vec<AgentFile>,
    /// The agent asked the caller to run an action (returnControl); this gateway does not.
    pub return_control: Vec<String>,
    /// Milliseconds from the request to the first answer chunk.
    pub first_token_ms: Option<u64>,
    /// The stream reported no token usage although the agent worked: the tokens are unknown
    /// (counted and alarmed, never priced at a guess).
    pub usage_unreported: bool,
    /// Kinds of stream events this code does not know (names only, never their content).
    pub unknown_events: Vec<String>,
}

impl AgentTurn {
    /// Total input and output tokens over all model calls.
    pub fn tokens(&self) -> (u64, u64) {
        total_tokens(&self.model_calls)
    }

    /// Distinct model ids in call order.
    pub fn model_ids(&self) -> Vec<String> {
        model_ids(&self.model_calls)
    }
}

/// Total input and output tokens of `calls`.
pub fn total_tokens(calls: &[ModelCall]) -> (u64, u64) {
    calls.iter().fold((0, 0), |(i, o), c| (i + c.input_tokens, o + c.output_tokens))
}

/// Distinct model ids of `calls`, in call order.
pub fn model_ids(calls: &[ModelCall]) -> Vec<String> {
    let mut ids: Vec<String> = Vec::new();
    for c in calls {
        if !ids.contains(&c.model_id) {
            ids.push(c.model_id.clone());
        }
    }
    ids
}

/// How a turn ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Answered,
    Failed,
    RefusedBudget,
    GuardrailBlocked,
    /// A guest or Slack Connect user the deployment does not serve (ALLOW_GUESTS / ALLOW_EXTERNAL_USERS).
    RefusedAccess,
}

impl Outcome {
    /// The value stored in analytics and conversation records.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Answered => "answered",
            Outcome::Failed => "failed",
            Outcome::RefusedBudget => "refused_budget",
            Outcome::GuardrailBlocked => "guardrail_blocked",
            Outcome::RefusedAccess => "refused_access",
        }
    }
}

/// One analytics event per turn (Firehose record, newline-delimited JSON).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnalyticsEvent {
    pub timestamp: String,
    pub user_id: String,
    pub thread_id: String,
    pub message_length: u64,
    pub response_length: u64,
    pub knowledge_bases: Vec<String>,
    pub search_queries: Vec<String>,
    pub rationale: Option<String>,
    pub event_id: String,
    pub team_id: String,
    pub channel_id: String,
    pub agent_id: String,
    pub agent_alias_id: String,
    pub session_id: String,
    pub action_groups: Vec<String>,
    pub sources: Vec<String>,
    pub model_ids: Vec<String>,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub estimated_cost_usd: Option<f64>,
    pub latency_ms: u64,
    pub first_token_ms: Option<u64>,
    pub outcome: Outcome,
    pub error_code: Option<String>,
    pub guardrail_action: Option<String>,
    pub schema_version: u32,
    /// Which backend answered; events written before there was a choice were Classic's.
    #[serde(default)]
    pub agent_backend: AgentBackend,
    /// Only present when the deployer opts in to storing message text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_text: Option<String>,
}

/// The analytics event's columns in the Glue table's order (the event's fields, then the
/// opt-in `message_text`). Whatever rewrites the archive (the daily compaction) selects exactly
/// these, so a rewritten object has the same columns as one Firehose wrote.
pub const ANALYTICS_COLUMNS: [&str; 28] = [
    "timestamp",
    "user_id",
    "thread_id",
    "message_length",
    "response_length",
    "knowledge_bases",
    "search_queries",
    "rationale",
    "event_id",
    "team_id",
    "channel_id",
    "agent_id",
    "agent_alias_id",
    "session_id",
    "action_groups",
    "sources",
    "model_ids",
    "input_tokens",
    "output_tokens",
    "estimated_cost_usd",
    "latency_ms",
    "first_token_ms",
    "outcome",
    "error_code",
    "guardrail_action",
    "schema_version",
    "agent_backend",
    "message_text",
];

/// One usage record per turn (SQS "usage"); `record_id` makes processing idempotent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsageRecord {
    pub record_id: String,
    pub timestamp: String,
    pub user_id: String,
    pub team_id: String,
    pub channel_id: String,
    pub thread_id: String,
    pub agent_id: String,
    pub agent_alias_id: String,
    /// Which backend answered; records written before there was a choice were Classic's.
    #[serde(default)]
    pub agent_backend: AgentBackend,
    pub calls: Vec<ModelCall>,
    /// The agent worked but its stream reported no token usage: `calls` says nothing of what
    /// the turn cost (counted and alarmed as UnreportedUsage).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub tokens_unreported: bool,
}

/// AgentCore's shortest runtime session id.
pub const AGENTCORE_SESSION_MIN: usize = 33;

/// Where a Slack message sits: enough to reply in its thread and to key its records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ThreadRef {
    pub team_id: String,
    pub channel_id: String,
    /// The thread's root ts (the message's own ts when it starts a thread).
    pub thread_ts: String,
}

impl ThreadRef {
    /// A Bedrock session id for this thread, within `[0-9a-zA-Z._:-]{2,100}`.
    pub fn session_id(&self) -> String {
        let raw = format!("{}-{}-{}", self.team_id, self.channel_id, self.thread_ts);
        let mut id: String =
            raw.chars().map(|c| if c.is_ascii_alphanumeric() || "._:-".contains(c) { c } else { '_' }).collect();
        if id.len() > 100 {
            // Keep the distinguishing tail (channel and thread) rather than the team prefix.
            id = id[id.len() - 100..].to_string();
        }
        while id.len() < 2 {
            id.push('_');
        }
        id
    }

    /// An AgentCore runtime session id for this thread: stable per thread, at least 33
    /// characters (AgentCore's minimum) and at most 120, within `[0-9a-zA-Z._:-]`.
    pub fn agentcore_session_id(&self) -> String {
        let mut id = format!("slack-thread-{}", self.session_id());
        while id.len() < AGENTCORE_SESSION_MIN {
            id.push('0');
        }
        id
    }

    /// The SQS FIFO group: one Slack thread, so turns of one session never run concurrently.
    pub fn group_id(&self) -> String {
        format!("{}:{}:{}", self.team_id, self.channel_id, self.thread_ts)
    }
}

/// Status of a turn in the conversations table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TurnStatus {
    Received,
    Answered,
    Failed,
    RefusedBudget,
    /// Refused: a guest or Slack Connect user (see Outcome::RefusedAccess).
    RefusedAccess,
}

impl TurnStatus {
    /// The stored value.
    pub fn as_str(self) -> &'static str {
        match self {
            TurnStatus::Received => "received",
            TurnStatus::Answered => "answered",
            TurnStatus::Failed => "failed",
            TurnStatus::RefusedBudget => "refused_budget",
            TurnStatus::RefusedAccess => "refused_access",
        }
    }

    /// Parses a stored value.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "received" => TurnStatus::Received,
            "answered" => TurnStatus::Answered,
            "failed" => TurnStatus::Failed,
            "refused_budget" => TurnStatus::RefusedBudget,
            "refused_access" => TurnStatus::RefusedAccess,
            _ => return None,
        })
    }

    /// Whether the user has already been told something for this turn.
    pub fn is_final(self) -> bool {
        !matches!(self, TurnStatus::Received)
    }
}

/// Whether feedback says the answer helped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Sentiment {
    Positive,
    Negative,
}

impl Sentiment {
    /// The stored value.
    pub fn as_str(self) -> &'static str {
        match self {
            Sentiment::Positive => "positive",
            Sentiment::Negative => "negative",
        }
    }
}

/// One user's reaction on a bot answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedbackEntry {
    pub user_id: String,
    /// The reaction name, skin tone removed.
    pub reaction: String,
    pub sentiment: Sentiment,
    /// When the reaction was given (epoch ms).
    pub at_ms: i64,
    /// The Slack event that carried it.
    pub event_id: String,
}

/// The table key of a turn item, as the indexes return it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TurnKey {
    pub pk: String,
    pub sk: String,
}

/// What the by-hour index tells about one turn.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TurnActivity {
    pub key: TurnKey,
    pub status: TurnStatus,
    pub received_at_ms: i64,
    pub finished_at_ms: Option<i64>,
    /// A reply (answer, apology or refusal) was posted.
    pub replied: bool,
    /// Whether a knowledge base was consulted; None when the turn's analytics were not known.
    pub kb_consulted: Option<bool>,
    /// The turn spent tokens, so it has a usage record.
    pub has_usage: bool,
    /// The analytics event is still waiting to be published.
    pub analytics_pending: bool,
    /// The usage record is still waiting to be published.
    pub usage_pending: bool,
}

/// One item of the by-hour index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Activity {
    Turn(TurnActivity),
    Feedback { sentiment: Sentiment, at_ms: i64 },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_id_is_within_bedrock_pattern() {
        let t = ThreadRef {
            team_id: "T0001".into(),
            channel_id: "C024BE91L".into(),
            thread_ts: "1713534720.001234".into(),
        };
        assert_eq!(t.session_id(), "T0001-C024BE91L-1713534720.001234");
        let long = ThreadRef { team_id: "T".repeat(120), channel_id: "C/1".into(), thread_ts: "1.2".into() };
        let id = long.session_id();
        assert_eq!(id.len(), 100);
        assert!(id.ends_with("-C_1-1.2"));
        assert!(id.chars().all(|c| c.is_ascii_alphanumeric() || "._:-".contains(c)));
    }

    #[test]
    fn agentcore_session_ids_are_long_enough_and_stable() {
        let t = ThreadRef { team_id: "T1".into(), channel_id: "C1".into(), thread_ts: "1.2".into() };
        assert_eq!(t.agentcore_session_id(), format!("slack-thread-T1-C1-1.2{}", "0".repeat(11)));
        let real = ThreadRef {
            team_id: "T0001".into(),
            channel_id: "C024BE91L".into(),
            thread_ts: "1713534720.001234".into(),
        };
        assert_eq!(real.agentcore_session_id(), "slack-thread-T0001-C024BE91L-1713534720.001234");
    }

    proptest::proptest! {
        #[test]
        fn agentcore_session_ids_keep_the_service_rules(team in ".{0,130}", channel in ".{0,20}", ts in ".{0,30}") {
            let t = ThreadRef { team_id: team, channel_id: channel, thread_ts: ts };
            let id = t.agentcore_session_id();
            proptest::prop_assert!((AGENTCORE_SESSION_MIN..=120).contains(&id.len()), "{} chars", id.len());
            proptest::prop_assert!(id.chars().all(|c| c.is_ascii_alphanumeric() || "._:-".contains(c)));
            proptest::prop_assert_eq!(id, t.clone().agentcore_session_id());
        }
    }

    #[test]
    fn analytics_event_serialises_contract_field_names() {
        let e = AnalyticsEvent {
            timestamp: "2026-04-19T14:32:00Z".into(),
            user_id: "U1".into(),
            thread_id: "1.2".into(),
            message_length: 3,
            response_length: 4,
            knowledge_bases: vec![],
            search_queries: vec![],
            rationale: None,
            event_id: "Ev1".into(),
            team_id: "T1".into(),
            channel_id: "C1".into(),
            agent_id: "A".into(),
            agent_alias_id: "B".into(),
            session_id: "s".into(),
            action_groups: vec![],
            sources: vec![],
            model_ids: vec![],
            input_tokens: 1,
            output_tokens: 2,
            estimated_cost_usd: None,
            latency_ms: 5,
            first_token_ms: None,
            outcome: Outcome::RefusedBudget,
            error_code: None,
            guardrail_action: None,
            schema_version: ANALYTICS_SCHEMA_VERSION,
            agent_backend: AgentBackend::Harness,
            message_text: None,
        };
        let v = serde_json::to_value(&e).unwrap();
        let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(keys.len(), 27, "{keys:?}");
        let mut with_text = e.clone();
        with_text.message_text = Some("hi".into());
        let v2 = serde_json::to_value(&with_text).unwrap();
        let all: std::collections::BTreeSet<&str> = v2.as_object().unwrap().keys().map(String::as_str).collect();
        let listed: std::collections::BTreeSet<&str> = ANALYTICS_COLUMNS.iter().copied().collect();
        assert_eq!(all, listed, "ANALYTICS_COLUMNS must name every field of the event");
        assert_eq!(v["outcome"], "refused_budget");
        assert!(v["estimated_cost_usd"].is_null());
    }
}
