//! The Lambda invocation's deadline as an [`Instant`], for timers that must not outlast it.

use std::time::{Duration, Instant};

/// The runtime's deadline (`Context::deadline`, epoch milliseconds) as an Instant; None when it
/// has already passed or cannot be read.
pub fn from_epoch_ms(deadline_ms: u64) -> Option<Instant> {
    let now_ms = chrono::Utc::now().timestamp_millis();
    let left = i64::try_from(deadline_ms).ok()?.checked_sub(now_ms)?;
    (left > 0).then(|| Instant::now() + Duration::from_millis(left.unsigned_abs()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadlines_come_from_epoch_milliseconds() {
        let in_ten = (chrono::Utc::now().timestamp_millis() + 10_000) as u64;
        let d = from_epoch_ms(in_ten).unwrap();
        let left = d.saturating_duration_since(Instant::now());
        assert!(left > Duration::from_secs(9) && left <= Duration::from_secs(10), "{left:?}");
        assert!(from_epoch_ms(1).is_none(), "long past");
        assert!(from_epoch_ms(u64::MAX).is_none(), "not an epoch time");
    }
}
