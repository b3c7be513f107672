//! AWS adapters of the ports, over the AWS SDK.

pub mod agent;
pub mod agentcore;
pub mod conversations;
pub mod dedup;
pub mod firehose;
pub mod ledger;
pub mod prices;
pub mod secrets;
pub mod sqs;
pub mod usage;

use std::collections::HashMap;
use std::future::Future;
use std::time::Duration;

use aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

use crate::error::is_retryable_code;
use crate::retry::Backoff;
use crate::{Error, Result};

/// Loads the AWS SDK config once (honours AWS_ENDPOINT_URL and per-service overrides).
pub async fn sdk_config() -> aws_config::SdkConfig {
    aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await
}

impl Error {
    /// Builds an [`Error::Aws`] from any SDK error, classifying throttling and server faults.
    pub fn from_sdk<E, R>(
        service: &'static str,
        operation: &'static str,
        err: aws_smithy_runtime_api::client::result::SdkError<E, R>,
    ) -> Self
    where
        E: aws_smithy_types::error::metadata::ProvideErrorMetadata + std::error::Error + 'static,
        R: std::fmt::Debug,
    {
        use aws_smithy_runtime_api::client::result::SdkError;
        let (code, message, retryable) = match &err {
            SdkError::ServiceError(ctx) => {
                let e = ctx.err();
                let code = e.code().unwrap_or("Unknown").to_string();
                let retryable = is_retryable_code(&code);
                (code, e.message().unwrap_or_default().to_string(), retryable)
            }
            SdkError::TimeoutError(_) => ("Timeout".into(), "request timed out".into(), true),
            SdkError::DispatchFailure(_) => ("Dispatch".into(), "connection failed".into(), true),
            SdkError::ResponseError(_) => ("Response".into(), "unreadable response".into(), true),
            _ => ("Construction".into(), "request could not be built".into(), false),
        };
        Error::Aws { service, operation, code, message, retryable }
    }
}

/// The answer of a DynamoDB conditional write, read once for every adapter.
pub(crate) trait Conditional<T> {
    /// Some(output) when the write was applied, None when its condition did not hold, the
    /// error otherwise.
    fn applied(self, operation: &'static str) -> Result<Option<T>>;
}

impl<T, E, R> Conditional<T> for std::result::Result<T, SdkError<E, R>>
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    fn applied(self, operation: &'static str) -> Result<Option<T>> {
        match self {
            Ok(out) => Ok(Some(out)),
            Err(e)
                if e.as_service_error().and_then(ProvideErrorMetadata::code)
                    == Some("ConditionalCheckFailedException") =>
            {
                Ok(None)
            }
            Err(e) => Err(Error::from_sdk("dynamodb", operation, e)),
        }
    }
}

/// A DynamoDB item.
pub type Item = HashMap<String, AttributeValue>;

/// Sends `query`, then asks for each next page from where the last one ended, handing every
/// page's items to `take`, until the last page or until `take` returns false (it has enough).
/// A page holds at most 1 MB, so every Query that can match more must page.
pub async fn query_pages(query: QueryFluentBuilder, mut take: impl FnMut(Vec<Item>) -> bool + Send) -> Result<()> {
    let mut start: Option<Item> = None;
    loop {
        let page = query
            .clone()
            .set_exclusive_start_key(start.take())
            .send()
            .await
            .map_err(|e| Error::from_sdk("dynamodb", "Query", e))?;
        let more = take(page.items.unwrap_or_default());
        match page.last_evaluated_key {
            Some(key) if more && !key.is_empty() => start = Some(key),
            _ => return Ok(()),
        }
    }
}

/// Retries `op` on retryable errors with jittered backoff (a few attempts, about a second).
/// The SDK already retries each call; this covers the longer hiccups that outlast its budget.
pub(crate) async fn with_retries<T, F, Fut>(op: F) -> Result<T>
where
    F: Fn() -> Fut,
    Fut: Future<Output = Result<T>>,
{
    let backoff = Backoff { base: Duration::from_millis(100), cap: Duration::from_secs(1), max_attempts: 3 };
    let mut attempt = 0;
    loop {
        match op().await {
            Err(e) if e.is_retryable() => match backoff.next_delay(attempt, None, None, Duration::ZERO) {
                Some(d) => {
                    tracing::warn!(error = %e, attempt, "retrying after a transient AWS error");
                    tokio::time::sleep(d).await;
                    attempt += 1;
                }
                None => return Err(e),
            },
            other => return other,
        }
    }
}

/// Seconds since the epoch, now.
pub(crate) fn now_epoch() -> i64 {
    chrono::Utc::now().timestamp()
}
