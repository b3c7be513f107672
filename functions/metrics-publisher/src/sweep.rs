//! The pending-records sweeper: a turn whose analytics event or usage record could not be
//! published keeps a copy in its conversation record (`pending_analytics` / `pending_usage`);
//! before, only a Slack redelivery of the same message retried it. Each run re-publishes the
//! copies of turns received in the last hour and finished at least `after_ms` ago (so the
//! worker's own attempt is over), and clears what was delivered. Usage records keep their stable
//! `record_id` (token-logging is idempotent); analytics duplicates share `event_id`. A copy that
//! no longer parses (its schema changed, or it is corrupted) can never be delivered: it is counted
//! as SchemaDrift, logged once without its content, and cleared, so no run meets it again.

use std::sync::Arc;

use async_trait::async_trait;
use shared::aws::conversations::{Activity, DynamoDbConversations, TurnKey};
use shared::domain::{AnalyticsEvent, ThreadRef, UsageRecord};
use shared::ports::{AnalyticsSink, ConversationStore, TurnRecord, UsageSink};
use shared::telemetry::Metrics;
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
    /// Copies that no longer parse: never deliverable, so counted (SchemaDrift) and cleared.
    pub unparseable: usize,
}

/// Re-publishes pending analytics and usage copies.
pub struct Sweeper {
    pub turns: Arc<dyn PendingTurns>,
    pub analytics: Arc<dyn AnalyticsSink>,
    pub usage: Arc<dyn UsageSink>,
    /// Only turns finished at least this long ago.
    pub after_ms: i64,
    /// SchemaDrift of unparseable copies (EMF).
    pub metrics: Metrics,
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
            let (a, u) = self.republish(&t.key, &record, &mut report).await;
            if a || u {
                if let Err(e) = self.turns.clear_pending(&record.thread, &record.message_ts, a, u).await {
                    // Still marked pending: the next run publishes a duplicate (or counts and
                    // logs an unparseable copy again).
                    warn!(error = %e, event_id = %record.event_id, "could not clear swept records");
                }
            }
        }
        if report != SweepReport::default() {
            info!(
                analytics = report.analytics_republished,
                usage = report.usage_republished,
                failed = report.failed,
                unparseable = report.unparseable,
                "pending turn records swept"
            );
        }
        report
    }

    /// Publishes the turn's pending copies; returns which to clear (delivered or unparseable).
    async fn republish(&self, key: &TurnKey, record: &TurnRecord, report: &mut SweepReport) -> (bool, bool) {
        let analytics = match record.pending_analytics.as_deref().map(serde_json::from_str::<AnalyticsEvent>) {
            None => false,
            Some(Err(_)) => self.unparseable(key, record, "pending_analytics", report),
            Some(Ok(ev)) => match self.analytics.publish(&ev).await {
                Ok(()) => {
                    report.analytics_republished += 1;
                    true
                }
                Err(e) => {
                    report.failed += 1;
                    warn!(error = %e, event_id = %record.event_id, "could not republish analytics");
                    false
                }
            },
        };
        let usage = match record.pending_usage.as_deref().map(serde_json::from_str::<UsageRecord>) {
            None => false,
            Some(Err(_)) => self.unparseable(key, record, "pending_usage", report),
            Some(Ok(rec)) => match self.usage.publish(&rec).await {
                Ok(()) => {
                    report.usage_republished += 1;
                    true
                }
                Err(e) => {
                    report.failed += 1;
                    warn!(error = %e, event_id = %record.event_id, "could not republish usage");
                    false
                }
            },
        };
        (analytics, usage)
    }

    /// Counts and logs a copy that can never be delivered; returns true (clear it).
    fn unparseable(&self, key: &TurnKey, record: &TurnRecord, copy: &'static str, report: &mut SweepReport) -> bool {
        report.unparseable += 1;
        self.metrics.count_with_total("SchemaDrift", 1.0, &[("EventType", copy)]);
        // Neither the copy nor serde's error: its messages quote the offending value, and the
        // copy may hold message text.
        error!(
            pk = %key.pk,
            sk = %key.sk,
            event_id = %record.event_id,
            copy,
            "schema drift: a pending copy no longer parses and can never be delivered; cleared from the turn"
        );
        true
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use shared::aws::conversations::TurnActivity;
    use shared::domain::TurnStatus;

    use super::*;

    const NOW: i64 = 1_763_913_600_000;

    /// One stored turn; records the clears.
    struct Turns {
        record: TurnRecord,
        cleared: Mutex<Vec<(bool, bool)>>,
    }

    #[async_trait]
    impl PendingTurns for Turns {
        async fn turn_by_key(&self, _key: &TurnKey) -> shared::Result<Option<TurnRecord>> {
            Ok(Some(self.record.clone()))
        }
        async fn clear_pending(&self, _: &ThreadRef, _: &str, analytics: bool, usage: bool) -> shared::Result<()> {
            self.cleared.lock().unwrap().push((analytics, usage));
            Ok(())
        }
    }

    /// Sinks that accept (and count) or fail everything.
    struct Sinks {
        ok: bool,
        published: Mutex<usize>,
    }

    impl Sinks {
        fn result(&self) -> shared::Result<()> {
            *self.published.lock().unwrap() += usize::from(self.ok);
            if self.ok {
                Ok(())
            } else {
                Err(shared::Error::Aws {
                    service: "sqs",
                    operation: "SendMessage",
                    code: "ServiceUnavailable".into(),
                    message: "down".into(),
                    retryable: true,
                })
            }
        }
    }

    #[async_trait]
    impl AnalyticsSink for Sinks {
        async fn publish(&self, _: &AnalyticsEvent) -> shared::Result<()> {
            self.result()
        }
    }

    #[async_trait]
    impl UsageSink for Sinks {
        async fn publish(&self, _: &UsageRecord) -> shared::Result<()> {
            self.result()
        }
    }

    fn usage_json() -> String {
        serde_json::to_string(&UsageRecord {
            record_id: "T1:Ev1".into(),
            timestamp: "2026-11-23T17:00:00.000Z".into(),
            user_id: "U1".into(),
            team_id: "T1".into(),
            channel_id: "C1".into(),
            thread_id: "1.1".into(),
            agent_id: "A".into(),
            agent_alias_id: "B".into(),
            calls: vec![],
        })
        .expect("json")
    }

    fn record(analytics: Option<&str>, usage: Option<String>) -> TurnRecord {
        TurnRecord {
            thread: ThreadRef { team_id: "T1".into(), channel_id: "C1".into(), thread_ts: "1.1".into() },
            message_ts: "1.1".into(),
            event_id: "Ev1".into(),
            user_id: "U1".into(),
            status: TurnStatus::Answered,
            received_at_ms: NOW - 600_000,
            finished_at_ms: Some(NOW - 590_000),
            reply_ts: Some("1.2".into()),
            outcome: Some("answered".into()),
            error_code: None,
            pending_analytics: analytics.map(str::to_string),
            pending_usage: usage,
        }
    }

    fn pending_turn() -> Activity {
        Activity::Turn(TurnActivity {
            key: TurnKey { pk: "THREAD#T1#C1#1.1".into(), sk: "TURN#1.1".into() },
            status: TurnStatus::Answered,
            received_at_ms: NOW - 600_000,
            finished_at_ms: Some(NOW - 590_000),
            replied: true,
            kb_consulted: Some(true),
            has_usage: true,
            analytics_pending: true,
            usage_pending: true,
        })
    }

    /// Captured EMF output.
    type Emf = Arc<Mutex<Vec<u8>>>;

    fn sweeper(record: TurnRecord, sinks_ok: bool) -> (Sweeper, Arc<Turns>, Arc<Sinks>, Emf) {
        let turns = Arc::new(Turns { record, cleared: Mutex::default() });
        let sinks = Arc::new(Sinks { ok: sinks_ok, published: Mutex::default() });
        let (metrics, emf) = Metrics::capture("BedrockUsage");
        let s = Sweeper {
            turns: turns.clone(),
            analytics: sinks.clone(),
            usage: sinks.clone(),
            after_ms: 300_000,
            metrics,
        };
        (s, turns, sinks, emf)
    }

    fn drift(emf: &Mutex<Vec<u8>>) -> Vec<(String, f64)> {
        shared::telemetry::parse_emf(&emf.lock().unwrap())
            .iter()
            .filter_map(|d| Some((d["EventType"].as_str()?.to_string(), d["SchemaDrift"].as_f64()?)))
            .collect()
    }

    #[tokio::test]
    async fn an_unparseable_copy_is_counted_and_cleared_and_a_failed_publish_is_kept() {
        // The analytics copy is corrupted; the usage copy parses but its queue is down.
        let (s, turns, _, emf) = sweeper(record(Some(r#"{"message_text": "secret"#), Some(usage_json())), false);
        let report = s.sweep(&[pending_turn()], NOW).await;
        assert_eq!(report, SweepReport { failed: 1, unparseable: 1, ..SweepReport::default() });
        assert_eq!(*turns.cleared.lock().unwrap(), vec![(true, false)], "only the analytics copy is cleared");
        assert_eq!(drift(&emf), vec![("pending_analytics".to_string(), 1.0)]);
    }

    #[tokio::test]
    async fn an_outdated_usage_copy_is_cleared_and_a_delivered_one_too() {
        // A usage copy of an older shape (no record_id): it will never parse.
        let (s, turns, sinks, emf) = sweeper(record(None, Some(r#"{"id": 1}"#.into())), true);
        let report = s.sweep(&[pending_turn()], NOW).await;
        assert_eq!(report, SweepReport { unparseable: 1, ..SweepReport::default() });
        assert_eq!(*turns.cleared.lock().unwrap(), vec![(false, true)]);
        assert_eq!(*sinks.published.lock().unwrap(), 0);
        assert_eq!(drift(&emf), vec![("pending_usage".to_string(), 1.0)]);

        let (s, turns, sinks, emf) = sweeper(record(None, Some(usage_json())), true);
        let report = s.sweep(&[pending_turn()], NOW).await;
        assert_eq!(report, SweepReport { usage_republished: 1, ..SweepReport::default() });
        assert_eq!(*turns.cleared.lock().unwrap(), vec![(false, true)]);
        assert_eq!(*sinks.published.lock().unwrap(), 1);
        assert!(drift(&emf).is_empty());
    }
}
