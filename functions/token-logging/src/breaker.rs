//! A circuit breaker around the usage table: after `threshold` consecutive failures it opens and
//! callers fail fast (their records go back to the queue) instead of hammering a failing table;
//! after `cool_down` it lets one trial call through (half-open), which closes or re-opens it.
//! State lives in the warm sandbox, across invocations.

use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Closed { failures: u32 },
    Open { until: Instant },
    HalfOpen { trial_in_flight: bool },
}

/// See the module docs.
#[derive(Debug)]
pub struct CircuitBreaker {
    state: Mutex<State>,
    threshold: u32,
    cool_down: Duration,
}

impl CircuitBreaker {
    /// Opens after `threshold` consecutive failures; half-opens `cool_down` later.
    pub fn new(threshold: u32, cool_down: Duration) -> Self {
        CircuitBreaker { state: Mutex::new(State::Closed { failures: 0 }), threshold: threshold.max(1), cool_down }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding this lock cannot leave the state half-updated: take it as is.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Whether a call may go ahead now. Every `true` must be followed by
    /// [`record_success`](Self::record_success) or [`record_failure`](Self::record_failure).
    pub fn allow(&self) -> bool {
        let mut state = self.lock();
        match *state {
            State::Closed { .. } => true,
            State::Open { until } if Instant::now() >= until => {
                *state = State::HalfOpen { trial_in_flight: true };
                true
            }
            State::Open { .. } => false,
            State::HalfOpen { trial_in_flight: true } => false,
            State::HalfOpen { trial_in_flight: false } => {
                *state = State::HalfOpen { trial_in_flight: true };
                true
            }
        }
    }

    /// The store answered: close the breaker.
    pub fn record_success(&self) {
        *self.lock() = State::Closed { failures: 0 };
    }

    /// The store failed; returns true when this failure opened the breaker (a trip).
    pub fn record_failure(&self) -> bool {
        let mut state = self.lock();
        let open = State::Open { until: Instant::now() + self.cool_down };
        match *state {
            State::Closed { failures } if failures + 1 >= self.threshold => {
                *state = open;
                true
            }
            State::Closed { failures } => {
                *state = State::Closed { failures: failures + 1 };
                false
            }
            State::HalfOpen { .. } => {
                *state = open;
                true
            }
            State::Open { .. } => false,
        }
    }

    /// Whether calls are currently refused.
    pub fn is_open(&self) -> bool {
        matches!(*self.lock(), State::Open { until } if Instant::now() < until)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_threshold_and_half_opens_after_cool_down() {
        let b = CircuitBreaker::new(3, Duration::from_millis(30));
        assert!(b.allow() && !b.record_failure());
        assert!(b.allow() && !b.record_failure());
        b.record_success();
        assert!(!b.record_failure() && !b.record_failure());
        assert!(b.record_failure(), "third consecutive failure trips");
        assert!(b.is_open() && !b.allow());
        std::thread::sleep(Duration::from_millis(40));
        assert!(b.allow(), "half-open: one trial");
        assert!(!b.allow(), "only one trial at a time");
        assert!(b.record_failure(), "a failed trial re-opens (and counts as a trip)");
        assert!(!b.allow());
        std::thread::sleep(Duration::from_millis(40));
        assert!(b.allow());
        b.record_success();
        assert!(b.allow() && b.allow() && !b.is_open());
    }
}
