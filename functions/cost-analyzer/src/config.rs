//! Settings read once at init from env vars; a missing or malformed value fails the init naming
//! the variable.

use std::collections::BTreeMap;

use shared::config::{metrics_namespace, optional, parsed, required};
use shared::Error;

/// What cost-analyzer needs from its environment.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// USAGE_TABLE: the priced ledger and its rollups.
    pub usage_table: String,
    /// CONVERSATIONS_TABLE: turns and their feedback.
    pub conversations_table: String,
    /// AUDIT_TABLE: one item per admin API call.
    pub audit_table: String,
    /// ANALYTICS_BUCKET: reports go to `reports/daily/DATE.json`.
    pub analytics_bucket: String,
    /// ATHENA_WORKGROUP and GLUE_DATABASE: for what the rollups cannot answer.
    pub athena_workgroup: String,
    pub glue_database: String,
    /// EVENTS_TABLE_NAME: the Glue table of analytics events (default `events`).
    pub events_table: String,
    /// REPORT_CHANNEL_ID: where the daily report is posted; unset = S3 only.
    pub report_channel: Option<String>,
    /// SLACK_SECRET_ARN: the bot token, needed only to post the report.
    pub slack_secret_arn: Option<String>,
    /// SLACK_API_BASE (default `https://slack.com/api`).
    pub slack_api_base: String,
    /// AGENT_NAMES: optional JSON object of agent id -> display name.
    pub agent_names: BTreeMap<String, String>,
    /// ATHENA_MAX_WAIT_SECONDS: how long an API call waits for an Athena query (default 20).
    pub athena_max_wait_secs: u64,
    /// METRICS_NAMESPACE (default `BedrockUsage`).
    pub metrics_namespace: String,
}

impl Config {
    pub fn from_env() -> shared::Result<Self> {
        let report_channel = optional("REPORT_CHANNEL_ID");
        let slack_secret_arn = optional("SLACK_SECRET_ARN");
        if report_channel.is_some() && slack_secret_arn.is_none() {
            return Err(Error::Config("SLACK_SECRET_ARN is not set but REPORT_CHANNEL_ID is".into()));
        }
        let agent_names = match optional("AGENT_NAMES") {
            None => BTreeMap::new(),
            Some(v) => serde_json::from_str(&v)
                .map_err(|e| Error::Config(format!("AGENT_NAMES is not a JSON object of strings: {e}")))?,
        };
        let athena_max_wait_secs = parsed("ATHENA_MAX_WAIT_SECONDS", 20u64)?;
        if athena_max_wait_secs == 0 || athena_max_wait_secs > 600 {
            return Err(Error::Config(format!("ATHENA_MAX_WAIT_SECONDS must be 1-600, not {athena_max_wait_secs}")));
        }
        Ok(Config {
            usage_table: required("USAGE_TABLE")?,
            conversations_table: required("CONVERSATIONS_TABLE")?,
            audit_table: required("AUDIT_TABLE")?,
            analytics_bucket: required("ANALYTICS_BUCKET")?,
            athena_workgroup: required("ATHENA_WORKGROUP")?,
            glue_database: required("GLUE_DATABASE")?,
            events_table: optional("EVENTS_TABLE_NAME").unwrap_or_else(|| "events".into()),
            report_channel,
            slack_secret_arn,
            slack_api_base: optional("SLACK_API_BASE").unwrap_or_else(|| "https://slack.com/api".into()),
            agent_names,
            athena_max_wait_secs,
            metrics_namespace: metrics_namespace(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The only test in this crate that touches these variables (tests run in parallel).
    #[test]
    fn reads_the_environment_and_names_what_is_wrong() {
        for (k, v) in [
            ("USAGE_TABLE", "usage"),
            ("CONVERSATIONS_TABLE", "conv"),
            ("AUDIT_TABLE", "audit"),
            ("ANALYTICS_BUCKET", "bucket"),
            ("ATHENA_WORKGROUP", "wg"),
            ("GLUE_DATABASE", "db"),
        ] {
            std::env::set_var(k, v);
        }
        std::env::remove_var("SLACK_SECRET_ARN");
        std::env::set_var("REPORT_CHANNEL_ID", "C1");
        let e = Config::from_env().unwrap_err().to_string();
        assert!(e.contains("SLACK_SECRET_ARN"), "{e}");
        std::env::remove_var("REPORT_CHANNEL_ID");
        std::env::set_var("AGENT_NAMES", "[1]");
        let e = Config::from_env().unwrap_err().to_string();
        assert!(e.contains("AGENT_NAMES"), "{e}");
        std::env::set_var("AGENT_NAMES", r#"{"A1": "Helpdesk"}"#);
        std::env::set_var("ATHENA_MAX_WAIT_SECONDS", "0");
        let e = Config::from_env().unwrap_err().to_string();
        assert!(e.contains("ATHENA_MAX_WAIT_SECONDS"), "{e}");
        std::env::remove_var("ATHENA_MAX_WAIT_SECONDS");
        std::env::remove_var("AUDIT_TABLE");
        let e = Config::from_env().unwrap_err().to_string();
        assert!(e.contains("AUDIT_TABLE is not set"), "{e}");
        std::env::set_var("AUDIT_TABLE", "audit");
        let c = Config::from_env().unwrap();
        assert_eq!((c.report_channel, c.events_table.as_str()), (None, "events"));
        assert_eq!(c.agent_names.get("A1").map(String::as_str), Some("Helpdesk"));
        assert_eq!(c.athena_max_wait_secs, 20);
    }
}
