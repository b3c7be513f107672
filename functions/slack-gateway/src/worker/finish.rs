//! The end of a turn: the kept answer (or a refusal) is posted first, then the turn is recorded
//! with copies of its records, then the records are delivered; the answer never waits for them.

use std::time::Instant;

use shared::domain::{AgentFile, AgentTurn, AnalyticsEvent, Outcome, TurnStatus, UsageRecord};
use shared::ports::{ChatError, TurnRecord};
use shared::slack::Reply;
use tracing::{error, info, warn};

use super::kept::KeptAnswer;
use super::{WorkError, Worker, APOLOGY};
use crate::stream::LiveReply;
use crate::work::MessageWork;

impl Worker {
    /// Posts the kept answer and records the turn. A permanent Slack refusal ends the turn as
    /// failed (counted, logged, recorded, usage published, not returned to the queue); a
    /// transient one returns the message to the queue, whose redelivery posts the kept answer.
    pub(super) async fn post_and_record(
        &self,
        m: &MessageWork,
        record: TurnRecord,
        mut kept: KeptAnswer,
        stored: bool,
        live: &LiveReply,
        files: &[AgentFile],
    ) -> Result<(), WorkError> {
        let reply_ts = match self.post(m, &mut kept, live).await {
            Ok(ts) => ts,
            Err(e) => {
                // Tokens were spent even though nobody saw the answer: record them before retrying.
                self.publish_unposted_usage(m, kept.usage.as_ref(), stored).await;
                return Err(WorkError::Slack(e));
            }
        };
        let outcome = kept.analytics.outcome;
        let status = if outcome == Outcome::Failed { TurnStatus::Failed } else { TurnStatus::Answered };
        let answered = reply_ts.is_some();
        let record = self.finish(m, record, status, reply_ts, &kept.analytics, kept.usage.as_ref()).await;
        // After the turn is recorded: a failure or a crash here can never bring a second answer.
        if answered {
            crate::attachments::share(files, &m.thread(), self.files.as_ref(), &self.metrics, &m.event_id).await;
        }
        self.deliver(&record, Some(&kept.analytics), kept.usage.as_ref()).await;
        info!(
            event_id = %m.event_id,
            outcome = outcome.as_str(),
            latency_ms = kept.analytics.latency_ms,
            agent_id = %self.settings.agent_id,
            "turn finished"
        );
        Ok(())
    }

    /// Posts the answer and returns the turn's reply, if any. Slack refusing the message's content
    /// gets the apology posted instead; Slack refusing for good ends the turn as failed. Both are
    /// written into the kept analytics. An error is transient: the message goes back to the queue.
    async fn post(
        &self,
        m: &MessageWork,
        kept: &mut KeptAnswer,
        live: &LiveReply,
    ) -> Result<Option<String>, ChatError> {
        let parts: Vec<Reply> = kept.parts.iter().cloned().map(Reply::from).collect();
        let post = match live.deliver_answer(parts, kept.markdown.as_deref()).await {
            // Slack refused this message, not the place: the user still gets the apology.
            Err(e) if e.refused_content() && kept.analytics.outcome != Outcome::Failed => {
                warn!(slack_method = e.method, error = %e.error, event_id = %m.event_id, "slack refused the answer; posting the apology");
                kept.analytics.outcome = Outcome::Failed;
                kept.analytics.error_code = Some(slack_error_code(&e));
                live.deliver(vec![Reply::plain(APOLOGY)]).await
            }
            other => other,
        };
        match post {
            Ok(ts) => Ok(Some(ts)),
            Err(e) if e.is_permanent() => {
                self.metrics.count_with_total("APIErrors", 1.0, &[("ErrorCode", "SlackPermanent")]);
                error!(
                    slack_method = e.method,
                    error = %e.error,
                    event_id = %m.event_id,
                    channel = %m.channel_id,
                    "slack refused the answer for good; the turn ends as failed"
                );
                kept.analytics.outcome = Outcome::Failed;
                kept.analytics.error_code = Some(slack_error_code(&e));
                // An early message may be up: it stays the turn's reply.
                Ok(live.ts())
            }
            Err(e) => Err(e),
        }
    }

    /// Tells the user their budget is spent (`access` None) or that they may not use the bot;
    /// the agent is not invoked and no tokens are used.
    pub(super) async fn refuse(
        &self,
        m: &MessageWork,
        record: TurnRecord,
        text: &str,
        started: Instant,
        live: &LiveReply,
        access: Option<crate::access::Refusal>,
    ) -> Result<(), WorkError> {
        let (outcome, status) = match access {
            None => (Outcome::RefusedBudget, TurnStatus::RefusedBudget),
            Some(_) => (Outcome::RefusedAccess, TurnStatus::RefusedAccess),
        };
        let error_code = access.map(|a| a.code().to_string());
        let reply_ts = live.deliver(vec![Reply::plain(text)]).await?;
        let latency_ms = started.elapsed().as_millis() as u64;
        let session_id = self.agent.session_id(&m.thread());
        let analytics =
            self.analytics_event(m, &session_id, &AgentTurn::default(), &[], outcome, error_code, latency_ms);
        let record = self.finish(m, record, status, Some(reply_ts), &analytics, None).await;
        self.deliver(&record, Some(&analytics), None).await;
        info!(event_id = %m.event_id, outcome = outcome.as_str(), error_code = record.error_code.as_deref().unwrap_or_default(), "turn refused");
        Ok(())
    }

    /// Records the finished turn, with copies of its records until they are delivered. A failure
    /// is counted and logged, not returned: a redelivery would answer the user a second time.
    async fn finish(
        &self,
        m: &MessageWork,
        mut record: TurnRecord,
        status: TurnStatus,
        reply_ts: Option<String>,
        analytics: &AnalyticsEvent,
        usage: Option<&UsageRecord>,
    ) -> TurnRecord {
        record.status = status;
        record.finished_at_ms = Some(chrono::Utc::now().timestamp_millis());
        record.reply_ts = reply_ts;
        record.outcome = Some(analytics.outcome.as_str().to_string());
        record.error_code = analytics.error_code.clone();
        shared::outbox::keep(&mut record, Some(analytics), usage);
        if let Err(e) = self.conversations.finish_turn(&record).await {
            self.metrics.count_with_total("LoggingErrors", 1.0, &[("Sink", "conversations")]);
            error!(error = %e, event_id = %m.event_id, status = status.as_str(), "could not record the finished turn");
        }
        record
    }
}

/// The error code a Slack refusal leaves on the turn, e.g. `slack_channel_not_found`.
fn slack_error_code(e: &ChatError) -> String {
    format!("slack_{}", e.error)
}
