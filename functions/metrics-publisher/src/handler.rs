//! One scheduled run: read the open turns and the last hour's activity and the usage queue's
//! depth, compute the metrics, publish them. The heartbeat goes out even when reading the table
//! fails (the run then fails too, so the function's Errors alarm sees it); a failed read of the
//! queue only leaves LoggingQueueDepth out of that run.

mod wiring;

use std::sync::Arc;

use async_trait::async_trait;
use shared::aws::conversations::DynamoDbConversations;
use shared::config::{metrics_namespace, optional, parsed, required};
use shared::domain::Activity;
use tracing::{error, info, warn};

use crate::cloudwatch::{MetricDatum, MetricSink, MetricUnit};
use crate::kpi::{compute, KpiSettings, Snapshot, HEARTBEAT, LOGGING_QUEUE_DEPTH};
use crate::sweep::Sweeper;
use crate::usage_queue::QueueDepth;

/// Configuration read once at init.
#[derive(Debug, Clone)]
pub struct Config {
    pub conversations_table: String,
    pub metrics_namespace: String,
    pub kpi: KpiSettings,
    /// EVENTS_STREAM_NAME and USAGE_QUEUE_URL: where the sweeper re-publishes pending records
    /// (both or neither; neither = no sweeping).
    pub sweep_targets: Option<(String, String)>,
    /// PENDING_SWEEP_AFTER_SECS (default 300): a finished turn's pending records are swept after this.
    pub sweep_after_ms: i64,
}

impl Config {
    /// USAGE_QUEUE_URL: the queue swept into, and whose depth is LoggingQueueDepth.
    pub fn usage_queue_url(&self) -> Option<&str> {
        self.sweep_targets.as_ref().map(|(_, queue)| queue.as_str())
    }
}

impl Config {
    /// Reads CONVERSATIONS_TABLE, METRICS_NAMESPACE, UNANSWERED_SLA_SECS (default 60),
    /// UNANSWERED_WINDOW_SECS (default 86400), EVENTS_STREAM_NAME + USAGE_QUEUE_URL (optional,
    /// together) and PENDING_SWEEP_AFTER_SECS (default 300).
    pub fn from_env() -> shared::Result<Config> {
        let sla: u32 = parsed("UNANSWERED_SLA_SECS", 60)?;
        let window: u32 = parsed("UNANSWERED_WINDOW_SECS", 86_400)?;
        if sla == 0 {
            return Err(shared::Error::Config("UNANSWERED_SLA_SECS must be at least 1".into()));
        }
        if window <= sla {
            return Err(shared::Error::Config(format!(
                "UNANSWERED_WINDOW_SECS ({window}) must be greater than UNANSWERED_SLA_SECS ({sla})"
            )));
        }
        let sweep_targets = match (optional("EVENTS_STREAM_NAME"), optional("USAGE_QUEUE_URL")) {
            (Some(stream), Some(queue)) => Some((stream, queue)),
            (None, None) => None,
            (Some(_), None) => {
                return Err(shared::Error::Config("USAGE_QUEUE_URL is not set (EVENTS_STREAM_NAME is)".into()))
            }
            (None, Some(_)) => {
                return Err(shared::Error::Config("EVENTS_STREAM_NAME is not set (USAGE_QUEUE_URL is)".into()))
            }
        };
        let sweep_after: u32 = parsed("PENDING_SWEEP_AFTER_SECS", 300)?;
        Ok(Config {
            sweep_targets,
            sweep_after_ms: i64::from(sweep_after) * 1000,
            conversations_table: required("CONVERSATIONS_TABLE")?,
            metrics_namespace: metrics_namespace(),
            kpi: KpiSettings {
                sla_ms: i64::from(sla) * 1000,
                unanswered_window_ms: i64::from(window) * 1000,
                ..KpiSettings::default()
            },
        })
    }
}

/// Reads recent activity from the conversations table (proportional to recent turns).
#[async_trait]
pub trait ConversationActivity: Send + Sync {
    /// `received_at_ms` of open turns received in `[from_ms, to_ms]`.
    async fn open_turns_received_between(&self, from_ms: i64, to_ms: i64) -> shared::Result<Vec<i64>>;
    /// Turns received and feedback given in `[from_ms, to_ms]`.
    async fn activity_between(&self, from_ms: i64, to_ms: i64) -> shared::Result<Vec<Activity>>;
}

#[async_trait]
impl ConversationActivity for DynamoDbConversations {
    async fn open_turns_received_between(&self, from_ms: i64, to_ms: i64) -> shared::Result<Vec<i64>> {
        DynamoDbConversations::open_turns_received_between(self, from_ms, to_ms).await
    }
    async fn activity_between(&self, from_ms: i64, to_ms: i64) -> shared::Result<Vec<Activity>> {
        DynamoDbConversations::activity_between(self, from_ms, to_ms).await
    }
}

/// Why a run failed.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("reading the conversations table: {0}")]
    Read(shared::Error),
    #[error("publishing metrics: {0}")]
    Publish(shared::Error),
}

/// The scheduled publisher.
pub struct MetricsPublisher {
    pub conversations: Arc<dyn ConversationActivity>,
    pub sink: Arc<dyn MetricSink>,
    pub settings: KpiSettings,
    /// Re-publishes pending turn records after the metrics are out; None = off.
    pub sweeper: Option<Sweeper>,
    /// The usage queue, for LoggingQueueDepth; None = not published.
    pub usage_queue: Option<Arc<dyn QueueDepth>>,
}

impl MetricsPublisher {
    /// Reads what the metrics need at `now_ms`.
    pub async fn snapshot(&self, now_ms: i64) -> shared::Result<Snapshot> {
        let s = &self.settings;
        let (overdue, activity) = tokio::join!(
            self.conversations.open_turns_received_between(now_ms - s.unanswered_window_ms, now_ms - s.sla_ms),
            self.conversations.activity_between(now_ms - s.kpi_window_ms, now_ms),
        );
        Ok(Snapshot { overdue_received_ms: overdue?, activity: activity? })
    }

    /// LoggingQueueDepth, or None without a queue or when it could not be read: a monitoring
    /// read must not cost the run its other metrics.
    async fn logging_queue_depth(&self) -> Option<MetricDatum> {
        match self.usage_queue.as_ref()?.depth().await {
            Ok(n) => Some(MetricDatum::new(LOGGING_QUEUE_DEPTH, n as f64, MetricUnit::Count)),
            Err(e) => {
                warn!(error = %e, "could not read the usage queue's depth; LoggingQueueDepth skipped this run");
                None
            }
        }
    }

    /// One run at `now_ms`; returns what was published.
    pub async fn run(&self, now_ms: i64) -> Result<Vec<MetricDatum>, PublishError> {
        let (snapshot, queue_depth) = tokio::join!(self.snapshot(now_ms), self.logging_queue_depth());
        let (mut datums, snapshot) = match snapshot {
            Ok(snapshot) => (compute(&snapshot, now_ms, &self.settings), Ok(())),
            Err(e) => (vec![MetricDatum::new(HEARTBEAT, 1.0, MetricUnit::Count)], Err(e)),
        };
        datums.extend(queue_depth);
        let published = self.sink.put(&datums, now_ms).await;
        if let Some(sweeper) = &self.sweeper {
            // The metrics above describe the first attempts; the sweep repairs what they show. It
            // reads its own index, so it runs even when the activity or CloudWatch failed.
            sweeper.sweep(now_ms).await;
        }
        published.map_err(|e| {
            error!(error = %e, "could not publish metrics");
            PublishError::Publish(e)
        })?;
        snapshot.map_err(|e| {
            error!(error = %e, "could not read the conversations table; published the heartbeat (and LoggingQueueDepth) only");
            PublishError::Read(e)
        })?;
        let summary: Vec<String> = datums
            .iter()
            .map(|d| match d.dimensions.first() {
                Some((_, v)) => format!("{}[{v}]={:.1}", d.name, d.value),
                None => format!("{}={:.1}", d.name, d.value),
            })
            .collect();
        info!(metrics = ?summary, count = datums.len(), "metrics published");
        Ok(datums)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use shared::domain::TurnStatus;
    use shared::domain::{Sentiment, TurnActivity};

    use super::*;

    const NOW: i64 = 1_763_913_600_000;

    struct Fake {
        fail: bool,
        asked: Mutex<Vec<(&'static str, i64, i64)>>,
    }

    #[async_trait]
    impl ConversationActivity for Fake {
        async fn open_turns_received_between(&self, from: i64, to: i64) -> shared::Result<Vec<i64>> {
            self.asked.lock().unwrap().push(("open", from, to));
            Ok(vec![NOW - 90_000])
        }
        async fn activity_between(&self, from: i64, to: i64) -> shared::Result<Vec<Activity>> {
            self.asked.lock().unwrap().push(("activity", from, to));
            if self.fail {
                return Err(shared::Error::Malformed { what: "test", reason: "boom".into() });
            }
            Ok(vec![
                Activity::Feedback { sentiment: Sentiment::Negative, at_ms: NOW - 1 },
                Activity::Turn(TurnActivity {
                    key: Default::default(),
                    status: TurnStatus::Answered,
                    received_at_ms: NOW - 600_000,
                    finished_at_ms: Some(NOW - 590_000),
                    replied: true,
                    kb_consulted: Some(true),
                    has_usage: true,
                    analytics_pending: false,
                    usage_pending: false,
                }),
            ])
        }
    }

    #[derive(Default)]
    struct Sink(Mutex<Vec<(Vec<MetricDatum>, i64)>>);

    #[async_trait]
    impl MetricSink for Sink {
        async fn put(&self, datums: &[MetricDatum], ts: i64) -> shared::Result<()> {
            self.0.lock().unwrap().push((datums.to_vec(), ts));
            Ok(())
        }
    }

    #[tokio::test]
    async fn reads_the_configured_windows_and_publishes_once() {
        let fake = Arc::new(Fake { fail: false, asked: Mutex::default() });
        let sink = Arc::new(Sink::default());
        let p = MetricsPublisher {
            conversations: fake.clone(),
            sink: sink.clone(),
            settings: KpiSettings::default(),
            sweeper: None,
            usage_queue: None,
        };
        let out = p.run(NOW).await.expect("run");
        let mut asked = fake.asked.lock().unwrap().clone();
        asked.sort();
        assert_eq!(asked, vec![("activity", NOW - 3_600_000, NOW), ("open", NOW - 86_400_000, NOW - 60_000)]);
        let sent = sink.0.lock().unwrap();
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0], (out.clone(), NOW));
        let find = |n: &str| out.iter().find(|d| d.name == n).map(|d| d.value);
        assert_eq!(find("UnansweredConversations"), Some(1.0));
        assert_eq!(find("OldestUnansweredSeconds"), Some(90.0));
        assert_eq!(find("SatisfactionScore"), Some(0.0));
        assert_eq!(find("KnowledgeBaseGapRate"), Some(0.0));
    }

    #[tokio::test]
    async fn heartbeat_still_goes_out_when_reading_fails() {
        let fake = Arc::new(Fake { fail: true, asked: Mutex::default() });
        let sink = Arc::new(Sink::default());
        let p = MetricsPublisher {
            conversations: fake,
            sink: sink.clone(),
            settings: KpiSettings::default(),
            sweeper: None,
            usage_queue: None,
        };
        let e = p.run(NOW).await.unwrap_err();
        assert!(matches!(e, PublishError::Read(_)), "{e}");
        let sent = sink.0.lock().unwrap();
        assert_eq!(sent[0].0, vec![MetricDatum::new("Heartbeat", 1.0, MetricUnit::Count)]);
    }

    /// A usage queue holding `Ok(n)` records, or failing to be read.
    struct Queue(Result<u64, ()>);

    #[async_trait]
    impl QueueDepth for Queue {
        async fn depth(&self) -> shared::Result<u64> {
            self.0.map_err(|()| shared::Error::Aws {
                service: "sqs",
                operation: "GetQueueAttributes",
                code: "AccessDenied".into(),
                message: "not allowed".into(),
                retryable: false,
            })
        }
    }

    fn publisher(fail_table: bool, queue: Option<Queue>) -> (MetricsPublisher, Arc<Sink>) {
        let sink = Arc::new(Sink::default());
        let p = MetricsPublisher {
            conversations: Arc::new(Fake { fail: fail_table, asked: Mutex::default() }),
            sink: sink.clone(),
            settings: KpiSettings::default(),
            sweeper: None,
            usage_queue: queue.map(|q| Arc::new(q) as Arc<dyn QueueDepth>),
        };
        (p, sink)
    }

    #[tokio::test]
    async fn the_usage_queue_depth_is_published_with_the_other_metrics() {
        let (p, sink) = publisher(false, Some(Queue(Ok(4))));
        let out = p.run(NOW).await.expect("run");
        assert_eq!(out.last(), Some(&MetricDatum::new("LoggingQueueDepth", 4.0, MetricUnit::Count)));
        assert_eq!(sink.0.lock().unwrap().len(), 1, "still one publish per run");
        // Also when the table cannot be read: the queue says something on its own.
        let (p, sink) = publisher(true, Some(Queue(Ok(0))));
        assert!(p.run(NOW).await.is_err());
        assert_eq!(
            sink.0.lock().unwrap()[0].0,
            vec![
                MetricDatum::new("Heartbeat", 1.0, MetricUnit::Count),
                MetricDatum::new("LoggingQueueDepth", 0.0, MetricUnit::Count)
            ]
        );
    }

    #[tokio::test]
    async fn a_failed_queue_read_skips_only_logging_queue_depth() {
        let (without_queue, _) = publisher(false, None);
        let expected = without_queue.run(NOW).await.expect("run");
        let (p, sink) = publisher(false, Some(Queue(Err(()))));
        let out = p.run(NOW).await.expect("a failed queue read does not fail the run");
        assert_eq!(out, expected);
        assert!(out.len() > 1 && out.iter().all(|d| d.name != "LoggingQueueDepth"), "{out:?}");
        assert_eq!(sink.0.lock().unwrap()[0], (expected, NOW));
    }

    #[test]
    fn config_errors_name_the_variable() {
        // The only test in this binary that touches these variables.
        std::env::set_var("CONVERSATIONS_TABLE", "t");
        std::env::set_var("UNANSWERED_SLA_SECS", "soon");
        let e = Config::from_env().unwrap_err().to_string();
        assert!(e.contains("UNANSWERED_SLA_SECS") && e.contains("soon"), "{e}");
        std::env::set_var("UNANSWERED_SLA_SECS", "600");
        std::env::set_var("UNANSWERED_WINDOW_SECS", "60");
        let e = Config::from_env().unwrap_err().to_string();
        assert!(e.contains("UNANSWERED_WINDOW_SECS"), "{e}");
        std::env::set_var("UNANSWERED_WINDOW_SECS", "7200");
        let c = Config::from_env().expect("config");
        assert_eq!((c.kpi.sla_ms, c.kpi.unanswered_window_ms), (600_000, 7_200_000));
        assert_eq!((c.sweep_targets.as_ref(), c.sweep_after_ms), (None, 300_000));
        std::env::set_var("EVENTS_STREAM_NAME", "events");
        let e = Config::from_env().unwrap_err().to_string();
        assert!(e.contains("USAGE_QUEUE_URL is not set"), "{e}");
        std::env::set_var("USAGE_QUEUE_URL", "https://sqs/usage");
        let c = Config::from_env().expect("config");
        assert_eq!(c.sweep_targets, Some(("events".into(), "https://sqs/usage".into())));
        assert_eq!(c.usage_queue_url(), Some("https://sqs/usage"));
    }
}
