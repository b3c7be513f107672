//! Secrets Manager: the Slack secret `{"signing_secret": "...", "bot_token": "xoxb-..."}`.

use crate::ports::SlackSecretSource;
use crate::slack::SlackSecret;
use crate::{Error, Result};

/// Reads a JSON secret and deserialises it; errors name the ARN and the problem, never the value.
pub async fn read_json_secret<T: serde::de::DeserializeOwned>(
    client: &aws_sdk_secretsmanager::Client,
    arn: &str,
) -> Result<T> {
    let out = super::with_retries(|| async {
        client
            .get_secret_value()
            .secret_id(arn)
            .send()
            .await
            .map_err(|e| Error::from_sdk("secretsmanager", "GetSecretValue", e))
    })
    .await
    .map_err(|e| Error::Secret { arn: arn.to_string(), reason: e.to_string() })?;
    let text = out
        .secret_string()
        .ok_or_else(|| Error::Secret { arn: arn.to_string(), reason: "has no SecretString".into() })?;
    // serde_json's message can quote input; report only the position and category.
    serde_json::from_str(text).map_err(|e| Error::Secret {
        arn: arn.to_string(),
        reason: format!(
            "is not the expected JSON ({:?} error at line {} column {})",
            e.classify(),
            e.line(),
            e.column()
        ),
    })
}

/// A JSON secret in Secrets Manager, read anew on every load (the Slack secret, the Jira secret).
#[derive(Debug, Clone)]
pub struct JsonSecret {
    client: aws_sdk_secretsmanager::Client,
    arn: String,
}

impl JsonSecret {
    pub fn new(client: aws_sdk_secretsmanager::Client, arn: impl Into<String>) -> Self {
        JsonSecret { client, arn: arn.into() }
    }

    /// Reads the secret as a `T`; errors name the ARN, never the value.
    pub async fn read<T: serde::de::DeserializeOwned>(&self) -> Result<T> {
        read_json_secret(&self.client, &self.arn).await
    }
}

#[async_trait::async_trait]
impl SlackSecretSource for JsonSecret {
    async fn load(&self) -> Result<SlackSecret> {
        self.read().await
    }
}
