//! The computed metrics, from what the conversations table says about recent turns and feedback.
//!
//! Queue depth and oldest-message age (work, usage and their DLQs) are NOT computed here: the
//! alarms and dashboards use the AWS/SQS metrics (ApproximateNumberOfMessagesVisible,
//! ApproximateAgeOfOldestMessage), which are free and already per queue. The one exception is
//! the seed's [`LOGGING_QUEUE_DEPTH`] (full level only), which the handler reads from SQS.

use shared::domain::TurnStatus;
use shared::domain::{Activity, Sentiment, TurnActivity};

use crate::cloudwatch::{MetricDatum, MetricUnit};

/// Metric names (the alarms and dashboards in template.yaml use the same).
pub const HEARTBEAT: &str = "Heartbeat";
pub const UNANSWERED_CONVERSATIONS: &str = "UnansweredConversations";
pub const OLDEST_UNANSWERED_SECONDS: &str = "OldestUnansweredSeconds";
pub const SATISFACTION_SCORE: &str = "SatisfactionScore";
pub const FEEDBACK_COUNT: &str = "FeedbackCount";
pub const KNOWLEDGE_BASE_GAP_RATE: &str = "KnowledgeBaseGapRate";
pub const ACTION_SUCCESS_RATE: &str = "ActionSuccessRate";
/// The usage queue's records not yet logged, waiting + in flight (read by the handler).
pub const LOGGING_QUEUE_DEPTH: &str = "LoggingQueueDepth";
/// The `Action` dimension's values of [`ACTION_SUCCESS_RATE`].
pub const ACTIONS: [&str; 4] = ["AgentInvoke", "ReplyPosted", "AnalyticsPublished", "UsagePublished"];

/// Windows and thresholds of the computation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KpiSettings {
    /// A turn not answered (or failed) this long after it was received is unanswered.
    pub sla_ms: i64,
    /// Open turns older than this are no longer counted (their message is in the DLQ by then,
    /// which has its own alarm); keeps one lost turn from alarming for the table's TTL.
    pub unanswered_window_ms: i64,
    /// The window of the rates and the satisfaction score.
    pub kpi_window_ms: i64,
}

impl Default for KpiSettings {
    fn default() -> Self {
        KpiSettings { sla_ms: 60_000, unanswered_window_ms: 24 * 3_600_000, kpi_window_ms: 3_600_000 }
    }
}

/// What was read for one run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// `received_at_ms` of the open turns received in the unanswered window and before the SLA.
    pub overdue_received_ms: Vec<i64>,
    /// Turns received and feedback given in the KPI window.
    pub activity: Vec<Activity>,
}

fn percent(ok: usize, all: usize) -> Option<f64> {
    (all > 0).then(|| ok as f64 * 100.0 / all as f64)
}

/// The metrics of one run. Rates are only published when they have a denominator (no data is
/// not 0 %); the heartbeat, the unanswered figures and the feedback count always are.
pub fn compute(snapshot: &Snapshot, now_ms: i64, settings: &KpiSettings) -> Vec<MetricDatum> {
    let mut out = vec![MetricDatum::new(HEARTBEAT, 1.0, MetricUnit::Count)];

    let overdue = &snapshot.overdue_received_ms;
    let oldest_secs = overdue.iter().min().map_or(0.0, |r| (now_ms - r).max(0) as f64 / 1000.0);
    out.push(MetricDatum::new(UNANSWERED_CONVERSATIONS, overdue.len() as f64, MetricUnit::Count));
    out.push(MetricDatum::new(OLDEST_UNANSWERED_SECONDS, oldest_secs, MetricUnit::Seconds));

    let turns: Vec<&TurnActivity> = snapshot
        .activity
        .iter()
        .filter_map(|a| match a {
            Activity::Turn(t) => Some(t),
            Activity::Feedback { .. } => None,
        })
        .collect();
    let (positive, feedback) = snapshot.activity.iter().fold((0, 0), |(p, all), a| match a {
        Activity::Feedback { sentiment, .. } => (p + usize::from(*sentiment == Sentiment::Positive), all + 1),
        Activity::Turn(_) => (p, all),
    });
    out.push(MetricDatum::new(FEEDBACK_COUNT, feedback as f64, MetricUnit::Count));
    if let Some(score) = percent(positive, feedback) {
        out.push(MetricDatum::new(SATISFACTION_SCORE, score, MetricUnit::Percent));
    }

    // Turns where the agent answered: did it consult a knowledge base?
    let answered: Vec<&&TurnActivity> =
        turns.iter().filter(|t| t.status == TurnStatus::Answered && t.kb_consulted.is_some()).collect();
    let gaps = answered.iter().filter(|t| t.kb_consulted == Some(false)).count();
    if let Some(rate) = percent(gaps, answered.len()) {
        out.push(MetricDatum::new(KNOWLEDGE_BASE_GAP_RATE, rate, MetricUnit::Percent));
    }

    let finished = |t: &&&TurnActivity| t.status.is_final();
    let overdue_open =
        |t: &&&TurnActivity| t.status == TurnStatus::Received && now_ms - t.received_at_ms >= settings.sla_ms;
    // Publishing happens right after the turn is recorded: give it the SLA before judging it.
    let settled = |t: &&&TurnActivity| t.finished_at_ms.is_some_and(|f| now_ms - f >= settings.sla_ms);
    let rates: [(&'static str, usize, usize); 4] = {
        let invoked: Vec<_> =
            turns.iter().filter(|t| matches!(t.status, TurnStatus::Answered | TurnStatus::Failed)).collect();
        let due: Vec<_> = turns.iter().filter(|t| finished(t) || overdue_open(t)).collect();
        let settled_turns: Vec<_> = turns.iter().filter(|t| finished(t) && settled(t)).collect();
        let with_usage: Vec<_> = settled_turns.iter().filter(|t| t.has_usage).collect();
        [
            ("AgentInvoke", invoked.iter().filter(|t| t.status == TurnStatus::Answered).count(), invoked.len()),
            ("ReplyPosted", due.iter().filter(|t| t.status.is_final() && t.replied).count(), due.len()),
            ("AnalyticsPublished", settled_turns.iter().filter(|t| !t.analytics_pending).count(), settled_turns.len()),
            ("UsagePublished", with_usage.iter().filter(|t| !t.usage_pending).count(), with_usage.len()),
        ]
    };
    for (action, ok, all) in rates {
        if let Some(rate) = percent(ok, all) {
            out.push(MetricDatum {
                name: ACTION_SUCCESS_RATE,
                value: rate,
                unit: MetricUnit::Percent,
                dimensions: vec![("Action", action)],
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_763_913_600_000;

    fn turn(status: TurnStatus, age_s: i64) -> TurnActivity {
        TurnActivity {
            key: Default::default(),
            status,
            received_at_ms: NOW - age_s * 1000,
            finished_at_ms: status.is_final().then_some(NOW - age_s * 1000 + 5_000),
            replied: status.is_final(),
            kb_consulted: (status == TurnStatus::Answered).then_some(true),
            has_usage: status != TurnStatus::RefusedBudget,
            analytics_pending: false,
            usage_pending: false,
        }
    }

    fn value(out: &[MetricDatum], name: &str, action: Option<&str>) -> Option<f64> {
        out.iter()
            .find(|d| d.name == name && action.is_none_or(|a| d.dimensions == vec![("Action", a)]))
            .map(|d| d.value)
    }

    #[test]
    fn quiet_period_publishes_heartbeat_zero_unanswered_and_no_rates() {
        let out = compute(&Snapshot::default(), NOW, &KpiSettings::default());
        let names: Vec<&str> = out.iter().map(|d| d.name).collect();
        assert_eq!(names, vec![HEARTBEAT, UNANSWERED_CONVERSATIONS, OLDEST_UNANSWERED_SECONDS, FEEDBACK_COUNT]);
        assert!(out.iter().all(|d| d.dimensions.is_empty()));
        assert_eq!(value(&out, HEARTBEAT, None), Some(1.0));
        assert_eq!(value(&out, UNANSWERED_CONVERSATIONS, None), Some(0.0));
    }

    #[test]
    fn rates_score_and_unanswered() {
        let mut kb_gap = turn(TurnStatus::Answered, 600);
        kb_gap.kb_consulted = Some(false);
        let mut analytics_stuck = turn(TurnStatus::Answered, 900);
        analytics_stuck.analytics_pending = true;
        analytics_stuck.usage_pending = true;
        let mut just_finished = turn(TurnStatus::Answered, 10);
        just_finished.analytics_pending = true; // being published right now: not judged yet
        let snapshot = Snapshot {
            overdue_received_ms: vec![NOW - 300_000, NOW - 120_000],
            activity: vec![
                Activity::Turn(turn(TurnStatus::Answered, 1200)),
                Activity::Turn(kb_gap),
                Activity::Turn(analytics_stuck),
                Activity::Turn(just_finished),
                Activity::Turn(turn(TurnStatus::Failed, 800)),
                Activity::Turn(turn(TurnStatus::RefusedBudget, 700)),
                Activity::Turn(turn(TurnStatus::Received, 300)),
                Activity::Turn(turn(TurnStatus::Received, 20)), // within the SLA
                Activity::Feedback { sentiment: Sentiment::Positive, at_ms: NOW - 1000 },
                Activity::Feedback { sentiment: Sentiment::Positive, at_ms: NOW - 2000 },
                Activity::Feedback { sentiment: Sentiment::Negative, at_ms: NOW - 3000 },
                Activity::Feedback { sentiment: Sentiment::Positive, at_ms: NOW - 4000 },
            ],
        };
        let out = compute(&snapshot, NOW, &KpiSettings::default());
        assert_eq!(value(&out, UNANSWERED_CONVERSATIONS, None), Some(2.0));
        assert_eq!(value(&out, OLDEST_UNANSWERED_SECONDS, None), Some(300.0));
        assert_eq!(value(&out, FEEDBACK_COUNT, None), Some(4.0));
        assert_eq!(value(&out, SATISFACTION_SCORE, None), Some(75.0));
        // 4 answered turns, one without a knowledge base.
        assert_eq!(value(&out, KNOWLEDGE_BASE_GAP_RATE, None), Some(25.0));
        // Agent: 4 answered of 5 invoked (the refusal never invoked it).
        assert_eq!(value(&out, ACTION_SUCCESS_RATE, Some("AgentInvoke")), Some(80.0));
        // Replies: 6 finished turns replied, 1 overdue open turn did not.
        let reply = value(&out, ACTION_SUCCESS_RATE, Some("ReplyPosted")).unwrap();
        assert!((reply - 600.0 / 7.0).abs() < 1e-9, "{reply}");
        // Analytics: 5 settled finished turns, one still pending.
        assert_eq!(value(&out, ACTION_SUCCESS_RATE, Some("AnalyticsPublished")), Some(80.0));
        // Usage: 4 settled turns with usage (not the refusal), one pending.
        assert_eq!(value(&out, ACTION_SUCCESS_RATE, Some("UsagePublished")), Some(75.0));
        for d in &out {
            assert!(d.dimensions.iter().all(|(k, _)| *k == "Action"), "{d:?}");
        }
    }
}
