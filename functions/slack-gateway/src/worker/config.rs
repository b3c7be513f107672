//! The worker's configuration, read once at init: a missing or malformed variable fails the init
//! with its name.

use std::time::Duration;

use shared::domain::AgentBackend;
use shared::retry::Backoff;

use super::budget::Budgets;
use crate::status::StatusSettings;
use crate::stream::StreamSettings;

/// Settings read from the environment at init.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    pub slack_secret_arn: String,
    pub slack_api_base: String,
    pub usage_queue_url: String,
    pub events_stream_name: String,
    pub conversations_table: String,
    pub usage_table: String,
    pub agent_id: String,
    pub agent_alias_id: String,
    /// Which agent answers (AGENT_BACKEND) and where it is.
    pub agent: AgentTarget,
    pub metrics_namespace: String,
    pub settings: WorkerSettings,
    /// FEEDBACK_STREAM_NAME: the feedback Firehose stream; unset = feedback is not streamed.
    pub feedback_stream_name: Option<String>,
    /// FEEDBACK_POSITIVE_REACTIONS / FEEDBACK_NEGATIVE_REACTIONS.
    pub feedback: crate::feedback::FeedbackSettings,
    /// SLACK_FILE_HOSTS: where users' files may be downloaded from (default: Slack's file hosts).
    pub file_hosts: shared::slack::files::FileHosts,
}

/// Behaviour knobs of the worker.
#[derive(Debug, Clone)]
pub struct WorkerSettings {
    pub agent_id: String,
    pub agent_alias_id: String,
    /// Bedrock's idle session TTL: past it, the thread's history is re-injected.
    pub session_idle_ttl: Duration,
    /// Store message text in analytics (off by default: privacy).
    pub store_message_text: bool,
    /// The status shown while the agent works (assistant thread status or reaction).
    pub status: StatusSettings,
    /// Early message and progress edits (or a native stream) for slow turns.
    pub stream: StreamSettings,
    /// What this container learnt about native streaming in its workspace (shared by its turns).
    pub native_gate: crate::stream::NativeGate,
    /// Retries of throttled or failed agent calls.
    pub agent_backoff: Backoff,
    /// Time kept back from the Lambda deadline to post an apology and record the turn: every
    /// agent attempt ends this long before the deadline.
    pub deadline_reserve: Duration,
    /// The least time an agent attempt is started with (an attempt cut short is billed for
    /// nothing); with less left before the reserve, the turn ends with the apology instead.
    pub min_agent_attempt: Duration,
    /// Per-user budgets; `None` = no limit.
    pub budgets: Budgets,
    /// Limits on the user's files passed to the agent.
    pub files: crate::attachments::FileSettings,
    /// Whether guests and Slack Connect users are answered (ALLOW_GUESTS, ALLOW_EXTERNAL_USERS).
    pub access: crate::access::AccessPolicy,
    /// The suggested prompts of new assistant threads (SUGGESTED_PROMPTS).
    pub assistant: crate::assistant::AssistantSettings,
}

impl WorkerSettings {
    /// Defaults for the given agent.
    pub fn new(agent_id: impl Into<String>, agent_alias_id: impl Into<String>) -> Self {
        WorkerSettings {
            agent_id: agent_id.into(),
            agent_alias_id: agent_alias_id.into(),
            session_idle_ttl: Duration::from_secs(600),
            store_message_text: false,
            status: StatusSettings::default(),
            stream: StreamSettings::default(),
            native_gate: crate::stream::NativeGate::default(),
            agent_backoff: Backoff { base: Duration::from_millis(500), cap: Duration::from_secs(8), max_attempts: 4 },
            deadline_reserve: Duration::from_secs(10),
            min_agent_attempt: Duration::from_secs(5),
            budgets: Budgets::default(),
            files: crate::attachments::FileSettings::default(),
            access: crate::access::AccessPolicy::default(),
            assistant: crate::assistant::AssistantSettings::default(),
        }
    }
}

/// The agent the worker invokes, by backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AgentTarget {
    /// A Bedrock Agents alias (AGENT_ID, AGENT_ALIAS_ID).
    Classic,
    /// An AgentCore harness: HARNESS_ARN, HARNESS_QUALIFIER (endpoint; unset = DEFAULT), and
    /// HARNESS_MODEL_ID, the harness's model, its usage is priced by (unset = unattributed).
    Harness { arn: String, qualifier: Option<String>, model_id: Option<String> },
    /// An AgentCore Runtime agent: AGENT_RUNTIME_ARN, AGENT_RUNTIME_QUALIFIER, and
    /// AGENT_RUNTIME_MODEL_ID for usage events that do not name their model.
    Runtime { arn: String, qualifier: Option<String>, model_id: Option<String> },
}

impl AgentTarget {
    /// The backend this target is.
    pub fn backend(&self) -> AgentBackend {
        match self {
            AgentTarget::Classic => AgentBackend::Classic,
            AgentTarget::Harness { .. } => AgentBackend::Harness,
            AgentTarget::Runtime { .. } => AgentBackend::Runtime,
        }
    }

    /// The target named by AGENT_BACKEND, with the agent id and alias the ledger records: for
    /// Classic the alias invoked; for AgentCore AGENT_ID (default: the resource's name in its ARN)
    /// and AGENT_ALIAS_ID (default: the endpoint, else DEFAULT).
    pub fn from_env() -> shared::Result<(AgentTarget, String, String)> {
        use shared::config::{optional, required};
        let backend: AgentBackend = match optional("AGENT_BACKEND") {
            None => AgentBackend::Classic,
            Some(v) => v.parse().map_err(|e| shared::Error::Config(format!("AGENT_BACKEND: {e}")))?,
        };
        let (arn_var, qualifier_var, model_var) = match backend {
            AgentBackend::Classic => {
                return Ok((AgentTarget::Classic, required("AGENT_ID")?, required("AGENT_ALIAS_ID")?))
            }
            AgentBackend::Harness => ("HARNESS_ARN", "HARNESS_QUALIFIER", "HARNESS_MODEL_ID"),
            AgentBackend::Runtime => ("AGENT_RUNTIME_ARN", "AGENT_RUNTIME_QUALIFIER", "AGENT_RUNTIME_MODEL_ID"),
        };
        let arn = required(arn_var)?;
        if !arn.starts_with("arn:") {
            return Err(shared::Error::Config(format!("{arn_var} must be an ARN: {arn:?}")));
        }
        let qualifier = optional(qualifier_var);
        let model_id = optional(model_var);
        let agent_id = match optional("AGENT_ID") {
            Some(id) => id,
            None => shared::aws::agentcore::arn_resource_id(&arn).map(str::to_owned).ok_or_else(|| {
                shared::Error::Config(format!("AGENT_ID is unset and {arn_var} names no resource: {arn:?}"))
            })?,
        };
        let alias = optional("AGENT_ALIAS_ID").or_else(|| qualifier.clone()).unwrap_or_else(|| "DEFAULT".into());
        let target = match backend {
            AgentBackend::Runtime => AgentTarget::Runtime { arn, qualifier, model_id },
            _ => AgentTarget::Harness { arn, qualifier, model_id },
        };
        Ok((target, agent_id, alias))
    }
}

impl WorkerConfig {
    /// Reads the config; a missing or malformed variable fails init with its name.
    pub fn from_env() -> shared::Result<Self> {
        use shared::config::{metrics_namespace, optional, parsed, required};
        let (agent, agent_id, agent_alias_id) = AgentTarget::from_env()?;
        let mut settings = WorkerSettings::new(&agent_id, &agent_alias_id);
        settings.session_idle_ttl = Duration::from_secs(parsed("AGENT_SESSION_IDLE_TTL_SECS", 600u64)?);
        settings.store_message_text = parsed("STORE_MESSAGE_TEXT", false)?;
        settings.status = StatusSettings::from_env()?;
        settings.stream = StreamSettings::from_env()?;
        let limit = |name: &str| -> shared::Result<Option<f64>> {
            let v: f64 = parsed(name, 0.0)?;
            if v < 0.0 || !v.is_finite() {
                return Err(shared::Error::Config(format!("{name} must be a non-negative number of USD: {v}")));
            }
            Ok((v > 0.0).then_some(v))
        };
        settings.budgets =
            Budgets { daily_usd: limit("USER_DAILY_BUDGET_USD")?, monthly_usd: limit("USER_MONTHLY_BUDGET_USD")? };
        settings.files = crate::attachments::FileSettings::from_env()?;
        settings.access = crate::access::AccessPolicy::from_env()?;
        settings.assistant = crate::assistant::AssistantSettings::from_env()?;
        let file_hosts = match optional("SLACK_FILE_HOSTS") {
            None => shared::slack::files::FileHosts::slack(),
            Some(list) => shared::slack::files::FileHosts::parse(&list)
                .map_err(|e| shared::Error::Config(format!("SLACK_FILE_HOSTS: {e}")))?,
        };
        Ok(WorkerConfig {
            slack_secret_arn: required("SLACK_SECRET_ARN")?,
            slack_api_base: optional("SLACK_API_BASE").unwrap_or_else(|| "https://slack.com/api".into()),
            usage_queue_url: required("USAGE_QUEUE_URL")?,
            events_stream_name: required("EVENTS_STREAM_NAME")?,
            conversations_table: required("CONVERSATIONS_TABLE")?,
            usage_table: required("USAGE_TABLE")?,
            agent_id,
            agent_alias_id,
            agent,
            metrics_namespace: metrics_namespace(),
            settings,
            feedback_stream_name: optional("FEEDBACK_STREAM_NAME"),
            feedback: crate::feedback::FeedbackSettings::from_env()?,
            file_hosts,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One test: it alone sets these variables in this binary, and in sequence.
    #[test]
    fn the_backend_and_its_agent_come_from_the_environment_or_init_fails_naming_the_variable() {
        let clear = || {
            for v in
                ["AGENT_BACKEND", "AGENT_ID", "AGENT_ALIAS_ID", "HARNESS_ARN", "HARNESS_QUALIFIER", "HARNESS_MODEL_ID"]
            {
                std::env::remove_var(v);
            }
            for v in ["AGENT_RUNTIME_ARN", "AGENT_RUNTIME_QUALIFIER", "AGENT_RUNTIME_MODEL_ID"] {
                std::env::remove_var(v);
            }
        };
        let err = |r: shared::Result<(AgentTarget, String, String)>| r.err().map(|e| e.to_string()).unwrap_or_default();
        clear();
        assert!(err(AgentTarget::from_env()).contains("AGENT_ID"), "Classic is the default and needs its agent");
        std::env::set_var("AGENT_ID", "AGENT12345");
        std::env::set_var("AGENT_ALIAS_ID", "ALIAS12345");
        assert_eq!(AgentTarget::from_env().unwrap(), (AgentTarget::Classic, "AGENT12345".into(), "ALIAS12345".into()));
        std::env::set_var("AGENT_BACKEND", "bedrock");
        let e = err(AgentTarget::from_env());
        assert!(e.contains("AGENT_BACKEND") && e.contains("classic, harness or runtime"), "{e}");

        clear();
        std::env::set_var("AGENT_BACKEND", "harness");
        assert!(err(AgentTarget::from_env()).contains("HARNESS_ARN"));
        std::env::set_var("HARNESS_ARN", "support-a1b2");
        assert!(err(AgentTarget::from_env()).contains("HARNESS_ARN must be an ARN"));
        std::env::set_var("HARNESS_ARN", "arn:aws:bedrock-agentcore:us-east-1:111122223333:harness/support-a1b2");
        std::env::set_var("HARNESS_QUALIFIER", "prod");
        std::env::set_var("HARNESS_MODEL_ID", "us.anthropic.claude-sonnet-4-20250514-v1:0");
        let (target, agent_id, alias) = AgentTarget::from_env().unwrap();
        assert_eq!(target.backend(), AgentBackend::Harness);
        assert_eq!((agent_id.as_str(), alias.as_str()), ("support-a1b2", "prod"), "named after the harness");
        assert!(matches!(target, AgentTarget::Harness { model_id: Some(_), .. }));

        clear();
        std::env::set_var("AGENT_BACKEND", "Runtime");
        std::env::set_var(
            "AGENT_RUNTIME_ARN",
            "arn:aws:bedrock-agentcore:us-east-1:111122223333:runtime/helpdesk-XyZ12",
        );
        std::env::set_var("AGENT_ID", "helpdesk");
        let (target, agent_id, alias) = AgentTarget::from_env().unwrap();
        assert_eq!(
            target,
            AgentTarget::Runtime {
                arn: "arn:aws:bedrock-agentcore:us-east-1:111122223333:runtime/helpdesk-XyZ12".into(),
                qualifier: None,
                model_id: None
            }
        );
        assert_eq!((agent_id.as_str(), alias.as_str()), ("helpdesk", "DEFAULT"));
        clear();
    }
}
