//! The pending-copies outbox, one for the worker and the sweeper. A finished turn keeps a copy of
//! its analytics event and usage record (`pending_analytics` / `pending_usage`) until each is
//! delivered to its sink and cleared: the worker delivers right after the answer (and again on a
//! redelivery of the message), metrics-publisher's sweeper whatever the worker could not. A copy
//! that no longer parses (its schema changed, or it is corrupted) can never be delivered: it is
//! counted as SchemaDrift, logged once without its content, and cleared, so nobody meets it again.
//! Tested through its two users: the sweeper's unit tests (in-memory sinks and store) and the
//! end-to-end tests of the worker and the sweeper.

use async_trait::async_trait;
use tracing::{error, warn};

use crate::domain::{AnalyticsEvent, ThreadRef, TurnKey, UsageRecord};
use crate::ports::{AnalyticsSink, ConversationStore, TurnRecord, UsageSink};
use crate::telemetry::Metrics;
use crate::Result;

/// Clears a turn's copies: the one store call the outbox needs.
#[async_trait]
pub trait CopyStore: Send + Sync {
    /// Clears the named copies from the turn.
    async fn clear_pending(&self, thread: &ThreadRef, message_ts: &str, analytics: bool, usage: bool) -> Result<()>;
}

#[async_trait]
impl<T: ConversationStore + ?Sized> CopyStore for T {
    async fn clear_pending(&self, thread: &ThreadRef, message_ts: &str, analytics: bool, usage: bool) -> Result<()> {
        ConversationStore::clear_pending(self, thread, message_ts, analytics, usage).await
    }
}

/// Which of a turn's two copies something applies to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Copies {
    pub analytics: bool,
    pub usage: bool,
}

impl Copies {
    /// Whether it applies to either copy.
    pub fn any(self) -> bool {
        self.analytics || self.usage
    }

    /// How many copies it applies to.
    pub fn count(self) -> usize {
        usize::from(self.analytics) + usize::from(self.usage)
    }

    /// The copies in both.
    pub fn and(self, other: Copies) -> Copies {
        Copies { analytics: self.analytics && other.analytics, usage: self.usage && other.usage }
    }

    /// The copies in either.
    pub fn or(self, other: Copies) -> Copies {
        Copies { analytics: self.analytics || other.analytics, usage: self.usage || other.usage }
    }
}

/// A turn's copies read back: the ones that parse, and the ones that no longer do (to clear).
#[derive(Debug, Default)]
pub struct PendingCopies {
    pub analytics: Option<AnalyticsEvent>,
    pub usage: Option<UsageRecord>,
    /// Copies that no longer parse: already counted and logged; clear them.
    pub drifted: Copies,
}

/// What publishing the copies gave, per sink; `None` where nothing was published.
#[derive(Debug, Default)]
pub struct Published {
    pub analytics: Option<Result<()>>,
    pub usage: Option<Result<()>>,
}

impl Published {
    /// The copies their sink accepted.
    pub fn delivered(&self) -> Copies {
        Copies { analytics: matches!(self.analytics, Some(Ok(()))), usage: matches!(self.usage, Some(Ok(()))) }
    }
}

/// Keeps copies of the turn's records on it, to be cleared once each is delivered.
pub fn keep(record: &mut TurnRecord, analytics: Option<&AnalyticsEvent>, usage: Option<&UsageRecord>) {
    record.pending_analytics = analytics.and_then(|a| serde_json::to_string(a).ok());
    record.pending_usage = usage.and_then(|u| serde_json::to_string(u).ok());
}

/// The sinks the copies go to, and the metrics their drift is counted in.
pub struct Outbox<'a> {
    pub analytics: &'a dyn AnalyticsSink,
    pub usage: &'a dyn UsageSink,
    pub metrics: &'a Metrics,
}

impl Outbox<'_> {
    /// Reads the turn's copies back; one that no longer parses is counted and logged here (`key`
    /// names the turn's item in the log when the caller knows it).
    pub fn read(&self, record: &TurnRecord, key: Option<&TurnKey>) -> PendingCopies {
        let mut copies = PendingCopies::default();
        if let Some(json) = record.pending_analytics.as_deref() {
            match serde_json::from_str(json) {
                Ok(ev) => copies.analytics = Some(ev),
                Err(_) => copies.drifted.analytics = self.drifted(record, key, "pending_analytics"),
            }
        }
        if let Some(json) = record.pending_usage.as_deref() {
            match serde_json::from_str(json) {
                Ok(rec) => copies.usage = Some(rec),
                Err(_) => copies.drifted.usage = self.drifted(record, key, "pending_usage"),
            }
        }
        copies
    }

    /// Counts and logs a copy that can never be delivered; returns true (clear it).
    fn drifted(&self, record: &TurnRecord, key: Option<&TurnKey>, copy: &'static str) -> bool {
        self.metrics.count_with_total("SchemaDrift", 1.0, &[("EventType", copy)]);
        // Neither the copy nor serde's error: its messages quote the offending value, and the
        // copy may hold message text.
        error!(
            pk = key.map(|k| k.pk.as_str()),
            sk = key.map(|k| k.sk.as_str()),
            event_id = %record.event_id,
            copy,
            "schema drift: a pending copy no longer parses and can never be delivered; cleared from the turn"
        );
        true
    }

    /// Publishes the given copies, each to its sink, concurrently.
    pub async fn publish(&self, analytics: Option<&AnalyticsEvent>, usage: Option<&UsageRecord>) -> Published {
        let a = async {
            match analytics {
                Some(ev) => Some(self.analytics.publish(ev).await),
                None => None,
            }
        };
        let u = async {
            match usage {
                Some(rec) => Some(self.usage.publish(rec).await),
                None => None,
            }
        };
        let (analytics, usage) = tokio::join!(a, u);
        Published { analytics, usage }
    }
}

/// Clears `which` copies from the turn; a failure leaves them to be sent again (a duplicate is
/// harmless: usage records keep their stable id, analytics duplicates share `event_id`).
pub async fn clear<S: CopyStore + ?Sized>(store: &S, record: &TurnRecord, which: Copies) {
    if !which.any() {
        return;
    }
    if let Err(e) = store.clear_pending(&record.thread, &record.message_ts, which.analytics, which.usage).await {
        warn!(error = %e, event_id = %record.event_id, "could not clear the turn's delivered copies");
    }
}
