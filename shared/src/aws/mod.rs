//! AWS adapters of the ports, over the AWS SDK.

pub mod agent;
pub mod conversations;
pub mod dedup;
pub mod feedback;
pub mod firehose;
pub mod ledger;
pub mod secrets;
pub mod sqs;
pub mod usage;

use std::future::Future;
use std::time::Duration;

use crate::retry::Backoff;
use crate::Result;

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
