//! Jittered exponential backoff bounded by a deadline.

use std::time::{Duration, Instant};

/// Backoff policy: full jitter over `base * 2^attempt`, capped, never past a deadline.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    pub base: Duration,
    pub cap: Duration,
    pub max_attempts: u32,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff { base: Duration::from_millis(200), cap: Duration::from_secs(5), max_attempts: 4 }
    }
}

impl Backoff {
    /// The delay before attempt `attempt + 1` (attempt counts from 0), or None when the attempts
    /// are used up or the delay plus `reserve` would pass `deadline`. A server's `hint`
    /// (Retry-After) takes precedence over the computed delay.
    pub fn next_delay(
        &self,
        attempt: u32,
        hint: Option<Duration>,
        deadline: Option<Instant>,
        reserve: Duration,
    ) -> Option<Duration> {
        if attempt + 1 >= self.max_attempts {
            return None;
        }
        let delay = hint.unwrap_or_else(|| {
            let exp = self.base.saturating_mul(1u32 << attempt.min(16)).min(self.cap);
            let ms = exp.as_millis() as u64;
            Duration::from_millis(fastrand::u64(ms / 2..=ms.max(1)))
        });
        match deadline {
            Some(d) if Instant::now() + delay + reserve > d => None,
            _ => Some(delay),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stops_after_max_attempts_and_before_deadline() {
        let b = Backoff { base: Duration::from_millis(100), cap: Duration::from_secs(1), max_attempts: 3 };
        assert!(b.next_delay(0, None, None, Duration::ZERO).is_some());
        assert!(b.next_delay(1, None, None, Duration::ZERO).is_some());
        assert!(b.next_delay(2, None, None, Duration::ZERO).is_none());
        let soon = Instant::now() + Duration::from_millis(50);
        assert!(b.next_delay(0, Some(Duration::from_millis(100)), Some(soon), Duration::ZERO).is_none());
        let d = b.next_delay(1, None, None, Duration::ZERO).unwrap();
        assert!(d >= Duration::from_millis(100) && d <= Duration::from_millis(200), "{d:?}");
        assert_eq!(b.next_delay(0, Some(Duration::from_secs(2)), None, Duration::ZERO), Some(Duration::from_secs(2)));
    }
}
