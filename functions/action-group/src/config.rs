//! Settings read once at init from env vars; a missing value fails the init naming the variable.

use shared::config::{metrics_namespace, required};

use crate::jql::Projects;

/// What the action group needs from its environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActionGroupConfig {
    /// JIRA_SECRET_ARN: the secret `{"base_url", "email", "api_token"}`, read on every invocation.
    pub jira_secret_arn: String,
    /// USAGE_TABLE: the usage rollups.
    pub usage_table: String,
    /// METRICS_NAMESPACE (default `BedrockUsage`).
    pub metrics_namespace: String,
    /// JIRA_PROJECTS: the project keys every Jira search and lookup is confined to
    /// (comma-separated). Set but blank: Jira is not set up, and ticket tools say so.
    pub jira_projects: Option<Projects>,
}

impl ActionGroupConfig {
    pub fn from_env() -> shared::Result<Self> {
        Ok(ActionGroupConfig {
            jira_secret_arn: required("JIRA_SECRET_ARN")?,
            usage_table: required("USAGE_TABLE")?,
            metrics_namespace: metrics_namespace(),
            jira_projects: jira_projects()?,
        })
    }
}

/// JIRA_PROJECTS: must be set (the template always sets it, blank when Jira is not used); a
/// malformed key fails the init.
fn jira_projects() -> shared::Result<Option<Projects>> {
    let list = std::env::var("JIRA_PROJECTS").map_err(|_| {
        shared::Error::Config("JIRA_PROJECTS is not set (comma-separated Jira project keys, or blank)".into())
    })?;
    Projects::parse(&list).map_err(|e| shared::Error::Config(format!("JIRA_PROJECTS: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    // The only test in this crate that touches these variables (tests run in parallel).
    #[test]
    fn reads_the_environment_and_names_what_is_missing() {
        std::env::remove_var("JIRA_SECRET_ARN");
        std::env::set_var("USAGE_TABLE", "usage");
        let e = ActionGroupConfig::from_env().unwrap_err().to_string();
        assert!(e.contains("JIRA_SECRET_ARN is not set"), "{e}");
        std::env::set_var("JIRA_SECRET_ARN", "arn:aws:secretsmanager:us-east-1:123456789012:secret:jira");
        std::env::set_var("USAGE_TABLE", " ");
        let e = ActionGroupConfig::from_env().unwrap_err().to_string();
        assert!(e.contains("USAGE_TABLE is set but empty"), "{e}");
        std::env::set_var("USAGE_TABLE", "usage");
        std::env::set_var("METRICS_NAMESPACE", "Custom");
        std::env::remove_var("JIRA_PROJECTS");
        let e = ActionGroupConfig::from_env().unwrap_err().to_string();
        assert!(e.contains("JIRA_PROJECTS is not set"), "{e}");
        std::env::set_var("JIRA_PROJECTS", "ITSUP, OPS) OR (X");
        let e = ActionGroupConfig::from_env().unwrap_err().to_string();
        assert!(e.contains("JIRA_PROJECTS: \"OPS) OR (X\" is not a Jira project key"), "{e}");
        std::env::set_var("JIRA_PROJECTS", " ");
        assert_eq!(ActionGroupConfig::from_env().unwrap().jira_projects, None, "blank: Jira not set up");
        std::env::set_var("JIRA_PROJECTS", "itsup,OPS");
        let config = ActionGroupConfig::from_env().unwrap();
        assert_eq!(config.usage_table, "usage");
        assert_eq!(config.metrics_namespace, "Custom");
        assert_eq!(config.jira_projects.unwrap().keys(), ["ITSUP", "OPS"]);
    }
}
