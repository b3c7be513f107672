//! The worker's side of the pending-copies outbox (`shared::outbox`, shared with the sweeper): a
//! turn's records go out right after the answer; what could not be delivered stays on the turn
//! for the message's redelivery or the sweeper.

use shared::domain::{AnalyticsEvent, UsageRecord};
use shared::outbox::{Copies, Outbox};
use shared::ports::TurnRecord;
use tracing::{error, info};

use super::Worker;
use crate::work::MessageWork;

impl Worker {
    fn outbox(&self) -> Outbox<'_> {
        Outbox { analytics: self.analytics.as_ref(), usage: self.usage.as_ref(), metrics: &self.metrics }
    }

    /// Publishes analytics and usage concurrently; what was delivered is cleared from the record,
    /// what was not stays there (and is retried when the message is delivered again).
    pub(super) async fn deliver(
        &self,
        record: &TurnRecord,
        analytics: Option<&AnalyticsEvent>,
        usage: Option<&UsageRecord>,
    ) {
        self.deliver_and_clear(record, analytics, usage, Copies::default()).await;
    }

    /// Publishes the copies of a turn that already finished, and clears what was delivered or no
    /// longer parses (the outbox's one rule, as the sweeper does).
    pub(super) async fn redeliver_pending(&self, done: &TurnRecord) {
        let copies = self.outbox().read(done, None);
        if copies.analytics.is_some() || copies.usage.is_some() {
            info!(event_id = %done.event_id, "re-publishing records a previous delivery could not");
        }
        self.deliver_and_clear(done, copies.analytics.as_ref(), copies.usage.as_ref(), copies.drifted).await;
    }

    async fn deliver_and_clear(
        &self,
        record: &TurnRecord,
        analytics: Option<&AnalyticsEvent>,
        usage: Option<&UsageRecord>,
        drifted: Copies,
    ) {
        let published = self.outbox().publish(analytics, usage).await;
        for (sink, result) in [("analytics", &published.analytics), ("usage", &published.usage)] {
            if let Some(Err(e)) = result {
                self.metrics.count_with_total("LoggingErrors", 1.0, &[("Sink", sink)]);
                error!(error = %e, sink, event_id = %record.event_id, "could not publish turn record; kept in the conversations table");
            }
        }
        // Only the copies the turn holds (a record kept nowhere has nothing to clear).
        let held = Copies { analytics: record.pending_analytics.is_some(), usage: record.pending_usage.is_some() };
        let clear = published.delivered().and(held).or(drifted);
        shared::outbox::clear(self.conversations.as_ref(), record, clear).await;
    }

    /// Publishes the usage of an answer that could not be posted (the tokens were spent though
    /// nobody saw it) before the message goes back to the queue.
    pub(super) async fn publish_unposted_usage(&self, m: &MessageWork, usage: Option<&UsageRecord>, stored: bool) {
        let Some(usage) = usage else { return };
        // A kept answer is posted by the redelivery, with this same record: its stable id makes
        // the ledger count it once. Otherwise the turn runs again and that run's record keeps the
        // stable id; this attempt's tokens need an id of their own or the ledger would skip them.
        let record = if stored {
            usage.clone()
        } else {
            let mut fresh = self.usage_record(m, &usage.calls, usage.tokens_unreported);
            fresh.record_id = format!("{}:unposted-{:016x}", fresh.record_id, fastrand::u64(..));
            fresh
        };
        if let Err(e) = self.usage.publish(&record).await {
            self.metrics.count_with_total("LoggingErrors", 1.0, &[("Sink", "usage")]);
            error!(error = %e, event_id = %m.event_id, "could not publish usage of an unposted answer");
        }
    }
}
