//! The worker's configuration, read once at init: a missing or malformed variable fails the init
//! with its name.

use std::time::Duration;

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
    /// Early message and progress edits for slow turns.
    pub stream: StreamSettings,
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
    pub files: crate::files::FileSettings,
    /// Whether guests and Slack Connect users are answered (ALLOW_GUESTS, ALLOW_EXTERNAL_USERS).
    pub access: crate::access::AccessPolicy,
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
            agent_backoff: Backoff { base: Duration::from_millis(500), cap: Duration::from_secs(8), max_attempts: 4 },
            deadline_reserve: Duration::from_secs(10),
            min_agent_attempt: Duration::from_secs(5),
            budgets: Budgets::default(),
            files: crate::files::FileSettings::default(),
            access: crate::access::AccessPolicy::default(),
        }
    }
}

impl WorkerConfig {
    /// Reads the config; a missing or malformed variable fails init with its name.
    pub fn from_env() -> shared::Result<Self> {
        use shared::config::{metrics_namespace, optional, parsed, required};
        let agent_id = required("AGENT_ID")?;
        let agent_alias_id = required("AGENT_ALIAS_ID")?;
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
        settings.files = crate::files::FileSettings::from_env()?;
        settings.access = crate::access::AccessPolicy::from_env()?;
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
            metrics_namespace: metrics_namespace(),
            settings,
            feedback_stream_name: optional("FEEDBACK_STREAM_NAME"),
            feedback: crate::feedback::FeedbackSettings::from_env()?,
            file_hosts,
        })
    }
}
