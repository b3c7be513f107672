//! The pending-records sweeper: a turn whose analytics event or usage record could not be
//! published keeps a copy in its conversation record (`pending_analytics` / `pending_usage`) and
//! stays in the sparse `pending_copies` index until the copy is delivered. Each run re-publishes
//! the copies of the turns that finished at least `after_ms` ago (so the worker's own attempt is
//! over), oldest first and whatever their age (an outage of hours loses nothing), at most
//! `max_turns` per run and within `time_budget`, and clears what was delivered. A sink that fails
//! with a transient error is not tried again in the same run (it is down: the run would only
//! spend its time on retries); the next run starts again from the oldest copy. Usage records keep
//! their stable `record_id` (token-logging is idempotent); analytics duplicates share `event_id`.
//! Reading, publishing and clearing the copies is `shared::outbox`, the worker's too, with its one
//! rule for a copy that no longer parses (its schema changed, or it is corrupted): it can never be
//! delivered, so it is counted as SchemaDrift, logged once without its content, and cleared, so
//! no run meets it again.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use shared::aws::conversations::DynamoDbConversations;
use shared::domain::TurnKey;
use shared::outbox::{Copies, CopyStore, Outbox};
use shared::ports::{AnalyticsSink, TurnRecord, UsageSink};
use shared::telemetry::Metrics;
use tracing::{error, info, warn};

/// At most this many turns are swept per run by default: with runs every 5 minutes, 6,000 turns
/// an hour, more than a 6-hour outage of a busy workspace leaves behind.
pub const MAX_TURNS_PER_RUN: usize = 500;

/// A run stops sweeping after this long by default (the function's timeout is 60 s).
pub const SWEEP_TIME_BUDGET: Duration = Duration::from_secs(30);

/// Finds and reads the turns with pending copies (and, as every outbox store, clears them).
#[async_trait]
pub trait PendingTurns: CopyStore {
    /// Turns holding a copy since `before_ms` or earlier, oldest first, at most `limit`.
    async fn pending_due(&self, before_ms: i64, limit: usize) -> shared::Result<Vec<TurnKey>>;
    async fn turn_by_key(&self, key: &TurnKey) -> shared::Result<Option<TurnRecord>>;
}

#[async_trait]
impl PendingTurns for DynamoDbConversations {
    async fn pending_due(&self, before_ms: i64, limit: usize) -> shared::Result<Vec<TurnKey>> {
        DynamoDbConversations::pending_copies_due(self, before_ms, limit).await
    }
    async fn turn_by_key(&self, key: &TurnKey) -> shared::Result<Option<TurnRecord>> {
        DynamoDbConversations::turn_by_key(self, key).await
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
    /// Copies not tried because their sink already failed transiently in this run.
    pub deferred: usize,
}

/// Re-publishes pending analytics and usage copies.
pub struct Sweeper {
    pub turns: Arc<dyn PendingTurns>,
    pub analytics: Arc<dyn AnalyticsSink>,
    pub usage: Arc<dyn UsageSink>,
    /// Only turns finished at least this long ago.
    pub after_ms: i64,
    /// At most this many turns per run ([`MAX_TURNS_PER_RUN`]).
    pub max_turns: usize,
    /// No new turn is started after this long ([`SWEEP_TIME_BUDGET`]).
    pub time_budget: Duration,
    /// SchemaDrift of unparseable copies (EMF).
    pub metrics: Metrics,
}

/// Which sinks failed transiently in this run.
#[derive(Default)]
struct Down {
    analytics: bool,
    usage: bool,
}

impl Sweeper {
    /// Sweeps the oldest turns with pending copies that finished at least `after_ms` before `now_ms`.
    pub async fn sweep(&self, now_ms: i64) -> SweepReport {
        let started = tokio::time::Instant::now();
        let mut report = SweepReport::default();
        let due = match self.turns.pending_due(now_ms - self.after_ms, self.max_turns).await {
            Ok(keys) => keys,
            Err(e) => {
                report.failed += 1;
                error!(error = %e, "could not read the turns with pending copies; next run retries");
                return report;
            }
        };
        let mut down = Down::default();
        for (i, key) in due.iter().enumerate() {
            if started.elapsed() >= self.time_budget {
                warn!(left = due.len() - i, "sweep time budget spent; the next run continues with the oldest");
                break;
            }
            if down.analytics && down.usage {
                break; // both sinks are down: nothing more can be delivered in this run
            }
            self.sweep_turn(key, &mut report, &mut down).await;
        }
        if report != SweepReport::default() {
            info!(
                analytics = report.analytics_republished,
                usage = report.usage_republished,
                failed = report.failed,
                unparseable = report.unparseable,
                deferred = report.deferred,
                "pending turn records swept"
            );
        }
        report
    }

    /// Re-publishes one turn's copies and clears what was delivered or no longer parses. A clear
    /// that fails leaves the copy marked: the next run publishes a duplicate (or counts and logs
    /// an unparseable copy again).
    async fn sweep_turn(&self, key: &TurnKey, report: &mut SweepReport, down: &mut Down) {
        let record = match self.turns.turn_by_key(key).await {
            Ok(Some(r)) => r,
            Ok(None) => return,
            Err(e) => {
                report.failed += 1;
                warn!(error = %e, "could not read a pending turn; next run retries");
                return;
            }
        };
        if !record.status.is_final() {
            return; // still running: the worker delivers its copies
        }
        let clear = if record.pending_analytics.is_none() && record.pending_usage.is_none() {
            // Owes nothing (its index entry outlived a clear): drop it from the index.
            Copies { analytics: true, usage: true }
        } else {
            self.republish(key, &record, report, down).await
        };
        shared::outbox::clear(self.turns.as_ref(), &record, clear).await;
    }

    /// Publishes the turn's pending copies, except to a sink that is down; returns which to clear
    /// (delivered, or no longer parsing).
    async fn republish(&self, key: &TurnKey, record: &TurnRecord, report: &mut SweepReport, down: &mut Down) -> Copies {
        let outbox = Outbox { analytics: self.analytics.as_ref(), usage: self.usage.as_ref(), metrics: &self.metrics };
        let mut copies = outbox.read(record, Some(key));
        report.unparseable += copies.drifted.count();
        if down.analytics && copies.analytics.take().is_some() {
            report.deferred += 1;
        }
        if down.usage && copies.usage.take().is_some() {
            report.deferred += 1;
        }
        let published = outbox.publish(copies.analytics.as_ref(), copies.usage.as_ref()).await;
        let delivered = published.delivered();
        report.analytics_republished += usize::from(delivered.analytics);
        report.usage_republished += usize::from(delivered.usage);
        for (sink, result, is_down) in
            [("analytics", published.analytics, &mut down.analytics), ("usage", published.usage, &mut down.usage)]
        {
            if let Some(Err(e)) = result {
                report.failed += 1;
                *is_down = e.is_retryable();
                warn!(error = %e, event_id = %record.event_id, sink, "could not republish a pending copy");
            }
        }
        copies.drifted.or(delivered)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use shared::domain::{AnalyticsEvent, ThreadRef, TurnStatus, UsageRecord};

    use super::*;

    const NOW: i64 = 1_763_913_600_000;

    /// One stored turn; records the clears.
    struct Turns {
        record: TurnRecord,
        cleared: Mutex<Vec<(bool, bool)>>,
    }

    #[async_trait]
    impl PendingTurns for Turns {
        async fn pending_due(&self, before_ms: i64, limit: usize) -> shared::Result<Vec<TurnKey>> {
            let due = self.record.finished_at_ms.is_some_and(|f| f <= before_ms);
            Ok(vec![key(); usize::from(due)].into_iter().take(limit).collect())
        }
        async fn turn_by_key(&self, _key: &TurnKey) -> shared::Result<Option<TurnRecord>> {
            Ok(Some(self.record.clone()))
        }
    }

    #[async_trait]
    impl CopyStore for Turns {
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
            agent_backend: Default::default(),
            tokens_unreported: false,
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

    fn key() -> TurnKey {
        TurnKey { pk: "THREAD#T1#C1#1.1".into(), sk: "TURN#1.1".into() }
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
            max_turns: MAX_TURNS_PER_RUN,
            time_budget: SWEEP_TIME_BUDGET,
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
        let report = s.sweep(NOW).await;
        assert_eq!(report, SweepReport { failed: 1, unparseable: 1, ..SweepReport::default() });
        assert_eq!(*turns.cleared.lock().unwrap(), vec![(true, false)], "only the analytics copy is cleared");
        assert_eq!(drift(&emf), vec![("pending_analytics".to_string(), 1.0)]);
    }

    #[tokio::test]
    async fn an_outdated_usage_copy_is_cleared_and_a_delivered_one_too() {
        // A usage copy of an older shape (no record_id): it will never parse.
        let (s, turns, sinks, emf) = sweeper(record(None, Some(r#"{"id": 1}"#.into())), true);
        let report = s.sweep(NOW).await;
        assert_eq!(report, SweepReport { unparseable: 1, ..SweepReport::default() });
        assert_eq!(*turns.cleared.lock().unwrap(), vec![(false, true)]);
        assert_eq!(*sinks.published.lock().unwrap(), 0);
        assert_eq!(drift(&emf), vec![("pending_usage".to_string(), 1.0)]);

        let (s, turns, sinks, emf) = sweeper(record(None, Some(usage_json())), true);
        let report = s.sweep(NOW).await;
        assert_eq!(report, SweepReport { usage_republished: 1, ..SweepReport::default() });
        assert_eq!(*turns.cleared.lock().unwrap(), vec![(false, true)]);
        assert_eq!(*sinks.published.lock().unwrap(), 1);
        assert!(drift(&emf).is_empty());
    }

    /// Turns with pending copies, in an index ordered by when they finished; records the clears.
    struct Backlog(Mutex<Vec<TurnRecord>>);

    #[async_trait]
    impl PendingTurns for Backlog {
        async fn pending_due(&self, before_ms: i64, limit: usize) -> shared::Result<Vec<TurnKey>> {
            let mut due: Vec<&TurnRecord> = Vec::new();
            let turns = self.0.lock().unwrap();
            due.extend(turns.iter().filter(|t| t.pending_analytics.is_some() || t.pending_usage.is_some()));
            due.retain(|t| t.finished_at_ms.is_some_and(|f| f <= before_ms));
            due.sort_by_key(|t| t.finished_at_ms);
            Ok(due.iter().take(limit).map(|t| TurnKey { pk: String::new(), sk: t.message_ts.clone() }).collect())
        }
        async fn turn_by_key(&self, key: &TurnKey) -> shared::Result<Option<TurnRecord>> {
            Ok(self.0.lock().unwrap().iter().find(|t| t.message_ts == key.sk).cloned())
        }
    }

    #[async_trait]
    impl CopyStore for Backlog {
        async fn clear_pending(&self, _: &ThreadRef, ts: &str, analytics: bool, usage: bool) -> shared::Result<()> {
            for t in self.0.lock().unwrap().iter_mut().filter(|t| t.message_ts == ts) {
                if analytics {
                    t.pending_analytics = None;
                }
                if usage {
                    t.pending_usage = None;
                }
            }
            Ok(())
        }
    }

    /// A usage queue that is down (transiently) until switched on, and records what it got.
    #[derive(Default)]
    struct Queue {
        up: std::sync::atomic::AtomicBool,
        attempts: Mutex<usize>,
        got: Mutex<Vec<String>>,
    }

    #[async_trait]
    impl UsageSink for Queue {
        async fn publish(&self, r: &UsageRecord) -> shared::Result<()> {
            *self.attempts.lock().unwrap() += 1;
            if !self.up.load(std::sync::atomic::Ordering::SeqCst) {
                return Err(shared::Error::Aws {
                    service: "sqs",
                    operation: "SendMessage",
                    code: "Dispatch".into(),
                    message: "connection failed".into(),
                    retryable: true,
                });
            }
            self.got.lock().unwrap().push(r.record_id.clone());
            Ok(())
        }
    }

    #[tokio::test]
    async fn a_backlog_of_any_age_is_delivered_oldest_first_a_bounded_number_a_run() {
        const HOUR: i64 = 3_600_000;
        // Twelve turns of a six-hour outage, stored newest first.
        let turns: Vec<TurnRecord> = (0..12)
            .rev()
            .map(|i| {
                let mut usage: UsageRecord = serde_json::from_str(&usage_json()).unwrap();
                usage.record_id = format!("r{i:02}");
                let mut t = record(None, Some(serde_json::to_string(&usage).unwrap()));
                t.message_ts = format!("{i}.0");
                t.finished_at_ms = Some(NOW - 6 * HOUR + i * HOUR / 2);
                t
            })
            .collect();
        let backlog = Arc::new(Backlog(Mutex::new(turns)));
        let queue = Arc::new(Queue::default());
        let sinks = Arc::new(Sinks { ok: true, published: Mutex::default() });
        let s = Sweeper {
            turns: backlog.clone(),
            analytics: sinks,
            usage: queue.clone(),
            after_ms: 300_000,
            max_turns: 5,
            time_budget: SWEEP_TIME_BUDGET,
            metrics: Metrics::capture("BedrockUsage").0,
        };
        // Down: tried once, not once per turn; nothing cleared.
        let report = s.sweep(NOW).await;
        assert_eq!(report, SweepReport { failed: 1, deferred: 4, ..SweepReport::default() });
        assert_eq!(*queue.attempts.lock().unwrap(), 1);
        // Back: 5, 5, then 2, oldest first; then nothing is left.
        queue.up.store(true, std::sync::atomic::Ordering::SeqCst);
        let mut delivered = Vec::new();
        for run in 1..=4 {
            let report = s.sweep(NOW + run * 300_000).await;
            delivered.push(report.usage_republished);
        }
        assert_eq!(delivered, [5, 5, 2, 0]);
        let want: Vec<String> = (0..12).map(|i| format!("r{i:02}")).collect();
        assert_eq!(*queue.got.lock().unwrap(), want);
    }
}
