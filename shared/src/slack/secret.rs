//! The Slack app's credentials, as stored in the secret SLACK_SECRET_ARN names.

use secrecy::SecretString;
use serde::Deserialize;

/// The Slack app's credentials. Debug output never shows the values.
#[derive(Clone, Deserialize)]
pub struct SlackSecret {
    pub signing_secret: SecretString,
    pub bot_token: SecretString,
}

impl std::fmt::Debug for SlackSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SlackSecret { .. }")
    }
}
