//! The pending-records sweeper: a turn whose analytics event or usage record could not be
//! published keeps a copy in its conversation record (`pending_analytics` / `pending_usage`);
//! before, only a Slack redelivery of the same message retried it. Each run re-publishes the
//! copies of turns received in the last hour and finished at least `after_ms` ago (so the
//! worker's own attempt is over), and clears what was delivered. Usage records keep their stable
//! `record_id` (token-logging is idempotent); analytics duplicates share `event_id`.

use std::sync::Arc;

use async_trait::async_trait;
use shared::aws::conversations::{Activity, DynamoDbConversations, TurnKey};
use shared::domain::{AnalyticsEvent, ThreadRef, UsageRecord};
use shared::ports::{AnalyticsSink, ConversationStore, TurnRecord, UsageSink};
use tracing::{error, info, warn};

/// At most this many turns are swept per run, bounding the run's time.
pub const MAX_TURNS_PER_RUN: usize = 100;

/// Reads and clears the pending copies of turns.
#[async_trait]
pub trait PendingTurns: Send + Sync {
    async fn turn_by_key(&self, key: &TurnKey) -> shared::Result<Option<TurnRecord>>;
    async fn clear_pending(
        &self,
        thread: &ThreadRef,
        message_ts: &str,
        analytics: bool,
        usage: bool,
    ) -> shared::Result<()>;
}

#[async_trait]
impl PendingTurns for DynamoDbConversations {
    async fn turn_by_key(&self, key: &TurnKey) -> shared::Result<Option<TurnRecord>> {
        DynamoDbConversations::turn_by_key(self, key).await
    }
    async fn clear_pending(
        &self,
        thread: &ThreadRef,
        message_ts: &str,
        analytics: bool,
        usage: bool,
    ) -> shared::Result<()> {
        ConversationStore::clear_pending(self, thread, message_ts, analytics, usage).await
    }
}

/// What one sweep did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SweepReport {
    pub analytics_republished: usize,
    pub usage_republished: usize,
    /// Copies that could not be published (or read) this time; the next run tries again.
    pub failed: usize,
}

/// Re-publishes pending analytics and usage copies.
pub struct Sweeper {
    pub turns: Arc<dyn PendingTurns>,
    pub analytics: Arc<dyn AnalyticsSink>,
    pub usage: Arc<dyn UsageSink>,
    /// Only turns finished at least this long ago.
    pub after_ms: i64,
}

impl Sweeper {
    /// Sweeps the pending turns among `activity` (the last hour's, from the by-hour index).
    pub async fn sweep(&self, activity: &[Activity], now_ms: i64) -> SweepReport {
        let mut report = SweepReport::default();
        let due = activity
            .iter()
            .filter_map(|a| match a {
                Activity::Turn(t) => Some(t),
                Activity::Feedback { .. } => None,
            })
            .filter(|t| t.status.is_final() && (t.analytics_pending || t.usage_pending))
            .filter(|t| t.finished_at_ms.is_some_and(|f| now_ms - f >= self.after_ms))
            .take(MAX_TURNS_PER_RUN);
        for t in due {
            let record = match self.turns.turn_by_key(&t.key).await {
                Ok(Some(r)) => r,
                Ok(None) => continue,
                Err(e) => {
                    report.failed += 1;
                    warn!(error = %e, "could not read a pending turn; next run retries");
                    continue;
                }
            };
            let (a, u) = self.republish(&record, &mut report).await;
            if a || u {
                if let Err(e) = self.turns.clear_pending(&record.thread, &record.message_ts, a, u).await {
                    // Published but still marked pending: the next run publishes a duplicate.
                    warn!(error = %e, event_id = %record.event_id, "could not clear republished records");
                }
            }
        }
        if report != SweepReport::default() {
            info!(
                analytics = report.analytics_republished,
                usage = report.usage_republished,
                failed = report.failed,
                "pending turn records swept"
            );
        }
        report
    }

    async fn republish(&self, record: &TurnRecord, report: &mut SweepReport) -> (bool, bool) {
        let mut cleared = (false, false);
        if let Some(json) = &record.pending_analytics {
            match serde_json::from_str::<AnalyticsEvent>(json) {
                Ok(ev) => match self.analytics.publish(&ev).await {
                    Ok(()) => {
                        report.analytics_republished += 1;
                        cleared.0 = true;
                    }
                    Err(e) => {
                        report.failed += 1;
                        warn!(error = %e, event_id = %record.event_id, "could not republish analytics");
                    }
                },
                Err(e) => {
                    report.failed += 1;
                    error!(error = %e, event_id = %record.event_id, "pending analytics copy is not an analytics event");
                }
            }
        }
        if let Some(json) = &record.pending_usage {
            match serde_json::from_str::<UsageRecord>(json) {
                Ok(rec) => match self.usage.publish(&rec).await {
                    Ok(()) => {
                        report.usage_republished += 1;
                        cleared.1 = true;
                    }
                    Err(e) => {
                        report.failed += 1;
                        warn!(error = %e, event_id = %record.event_id, "could not republish usage");
                    }
                },
                Err(e) => {
                    report.failed += 1;
                    error!(error = %e, event_id = %record.event_id, "pending usage copy is not a usage record");
                }
            }
        }
        cleared
    }
}
