//! slack-worker: one turn per queued message. Invoke the agent, answer in the thread, then record
//! what happened (analytics, usage, conversation) without ever delaying or failing the answer.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};
use shared::domain::{
    AgentTurn, AnalyticsEvent, ModelCall, Outcome, TurnStatus, UsageRecord, ANALYTICS_SCHEMA_VERSION,
};
use shared::ports::{
    AgentClient, AgentError, AgentRequest, AnalyticsSink, ChatClient, ConversationStore, FileTransfer, SpentCalls,
    TextSink, TurnRecord, TurnStart, UsageReader, UsageSink,
};
use shared::retry::Backoff;
use shared::slack::Reply;
use shared::telemetry::{Metrics, Unit};
use tracing::{error, info, warn};

use crate::status::{StatusIndicator, StatusSettings};
use crate::stream::{LiveReply, StreamSettings};
use crate::work::{MessageWork, ReactionWork, WorkItem};

/// The apology posted when a turn cannot be answered.
pub const APOLOGY: &str = "Sorry, I couldn't answer that just now. Please try again in a moment.";
/// Posted when the agent ran but produced no text.
pub const NO_ANSWER: &str = "I don't have an answer to that.";

/// Settings read from the environment at init.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    pub slack_secret_arn: String,
    pub slack_api_base: String,
    pub usage_queue_url: String,
    pub events_stream_name: String,
    pub conversations_table: String,
    pub usage_table: String,
    pub agent_id: String,
    pub agent_alias_id: String,
    pub metrics_namespace: String,
    pub settings: WorkerSettings,
    /// FEEDBACK_STREAM_NAME: the feedback Firehose stream; unset = feedback is not streamed.
    pub feedback_stream_name: Option<String>,
    /// FEEDBACK_POSITIVE_REACTIONS / FEEDBACK_NEGATIVE_REACTIONS.
    pub feedback: crate::feedback::FeedbackSettings,
    /// SLACK_FILE_HOSTS: where users' files may be downloaded from (default: Slack's file hosts).
    pub file_hosts: shared::slack::files::FileHosts,
}

/// Behaviour knobs of the worker.
#[derive(Debug, Clone)]
pub struct WorkerSettings {
    pub agent_id: String,
    pub agent_alias_id: String,
    /// Bedrock's idle session TTL: past it, the thread's history is re-injected.
    pub session_idle_ttl: Duration,
    /// Store message text in analytics (off by default: privacy).
    pub store_message_text: bool,
    /// The status shown while the agent works (assistant thread status or reaction).
    pub status: StatusSettings,
    /// Early message and progress edits for slow turns.
    pub stream: StreamSettings,
    /// Retries of throttled or failed agent calls.
    pub agent_backoff: Backoff,
    /// Time kept back from the Lambda deadline to post an apology and record the turn: every
    /// agent attempt ends this long before the deadline.
    pub deadline_reserve: Duration,
    /// The least time an agent attempt is started with (an attempt cut short is billed for
    /// nothing); with less left before the reserve, the turn ends with the apology instead.
    pub min_agent_attempt: Duration,
    /// Per-user budgets; `None` = no limit.
    pub budgets: Budgets,
    /// Limits on the user's files passed to the agent.
    pub files: crate::files::FileSettings,
    /// Whether guests and Slack Connect users are answered (ALLOW_GUESTS, ALLOW_EXTERNAL_USERS).
    pub access: crate::access::AccessPolicy,
}

/// Per-user spend limits in USD (USER_DAILY_BUDGET_USD, USER_MONTHLY_BUDGET_USD).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Budgets {
    pub daily_usd: Option<f64>,
    pub monthly_usd: Option<f64>,
}

/// Share of a budget at which the answer carries a notice.
pub const BUDGET_NOTICE_SHARE: f64 = 0.8;

/// What the budget check decided for one turn.
#[derive(Debug, Clone, PartialEq)]
pub enum BudgetVerdict {
    /// Under every limit (or no limits).
    Ok,
    /// Close to a limit: answer, with this notice appended.
    Notice(String),
    /// At or over a limit: refuse with this message; the agent is not invoked.
    Refuse(String),
}

impl Budgets {
    /// Whether any limit is set (otherwise no spend is read).
    pub fn enabled(&self) -> bool {
        self.daily_usd.is_some() || self.monthly_usd.is_some()
    }

    /// Checks `spend` against the limits; `now` gives the reset times. Only priced tokens count.
    pub fn verdict(&self, spend: &shared::rollups::UserSpend, now: chrono::DateTime<chrono::Utc>) -> BudgetVerdict {
        self.verdict_counting_unpriced(spend, now, None)
    }

    /// As [`Budgets::verdict`], with the tokens of unpriced models counted at
    /// `unpriced_usd_per_million` (the worker passes the price table's highest rate): a model
    /// nobody priced yet must not be a way around the budget. The ledger keeps them unpriced;
    /// the notice and the refusal say how they were counted.
    pub fn verdict_counting_unpriced(
        &self,
        spend: &shared::rollups::UserSpend,
        now: chrono::DateTime<chrono::Utc>,
        unpriced_usd_per_million: Option<f64>,
    ) -> BudgetVerdict {
        let (day_end, month_end) = shared::rollups::period_ends(now);
        let counted = |s: &shared::rollups::Spend| match unpriced_usd_per_million {
            Some(rate) if s.unpriced_tokens > 0 => (
                s.cost_usd + s.unpriced_tokens as f64 * rate / 1_000_000.0,
                format!(
                    ", counting {} tokens of a model without a price at ${rate:.2} per million, the highest known rate",
                    s.unpriced_tokens
                ),
            ),
            _ => (s.cost_usd, String::new()),
        };
        let (day_used, day_note) = counted(&spend.day);
        let (month_used, month_note) = counted(&spend.month);
        let checks = [
            ("daily", self.daily_usd, day_used, day_note, day_end),
            ("monthly", self.monthly_usd, month_used, month_note, month_end),
        ];
        let mut notice = None;
        for (name, limit, used, note, resets) in checks {
            let Some(limit) = limit else { continue };
            if used >= limit {
                return BudgetVerdict::Refuse(format!(
                    "You've reached your {name} budget for this assistant (${used:.2} of ${limit:.2}{note}), so I can't answer right now. \
                     It resets {} ({}).",
                    resets.format("%Y-%m-%d %H:%M UTC"),
                    in_words(resets - now)
                ));
            }
            if used >= limit * BUDGET_NOTICE_SHARE && notice.is_none() {
                notice = Some(format!(
                    "_You've used {:.0}% of your {name} budget (${used:.2} of ${limit:.2}{note}); it resets {}._",
                    used / limit * 100.0,
                    resets.format("%Y-%m-%d %H:%M UTC")
                ));
            }
        }
        notice.map_or(BudgetVerdict::Ok, BudgetVerdict::Notice)
    }
}

fn in_words(d: chrono::TimeDelta) -> String {
    let mins = d.num_minutes().max(1);
    match mins {
        m if m < 60 => format!("in {m} min"),
        m if m < 48 * 60 => format!("in {} h {} min", m / 60, m % 60),
        m => format!("in {} days", m / (24 * 60)),
    }
}

impl WorkerSettings {
    /// Defaults for the given agent.
    pub fn new(agent_id: impl Into<String>, agent_alias_id: impl Into<String>) -> Self {
        WorkerSettings {
            agent_id: agent_id.into(),
            agent_alias_id: agent_alias_id.into(),
            session_idle_ttl: Duration::from_secs(600),
            store_message_text: false,
            status: StatusSettings::default(),
            stream: StreamSettings::default(),
            agent_backoff: Backoff { base: Duration::from_millis(500), cap: Duration::from_secs(8), max_attempts: 4 },
            deadline_reserve: Duration::from_secs(10),
            min_agent_attempt: Duration::from_secs(5),
            budgets: Budgets::default(),
            files: crate::files::FileSettings::default(),
            access: crate::access::AccessPolicy::default(),
        }
    }
}

impl WorkerConfig {
    /// Reads the config; a missing or malformed variable fails init with its name.
    pub fn from_env() -> shared::Result<Self> {
        use shared::config::{metrics_namespace, optional, parsed, required};
        let agent_id = required("AGENT_ID")?;
        let agent_alias_id = required("AGENT_ALIAS_ID")?;
        let mut settings = WorkerSettings::new(&agent_id, &agent_alias_id);
        settings.session_idle_ttl = Duration::from_secs(parsed("AGENT_SESSION_IDLE_TTL_SECS", 600u64)?);
        settings.store_message_text = parsed("STORE_MESSAGE_TEXT", false)?;
        settings.status = StatusSettings::from_env()?;
        settings.stream = StreamSettings::from_env()?;
        let limit = |name: &str| -> shared::Result<Option<f64>> {
            let v: f64 = parsed(name, 0.0)?;
            if v < 0.0 || !v.is_finite() {
                return Err(shared::Error::Config(format!("{name} must be a non-negative number of USD: {v}")));
            }
            Ok((v > 0.0).then_some(v))
        };
        settings.budgets =
            Budgets { daily_usd: limit("USER_DAILY_BUDGET_USD")?, monthly_usd: limit("USER_MONTHLY_BUDGET_USD")? };
        settings.files = crate::files::FileSettings::from_env()?;
        settings.access = crate::access::AccessPolicy::from_env()?;
        let file_hosts = match optional("SLACK_FILE_HOSTS") {
            None => shared::slack::files::FileHosts::slack(),
            Some(list) => shared::slack::files::FileHosts::parse(&list)
                .map_err(|e| shared::Error::Config(format!("SLACK_FILE_HOSTS: {e}")))?,
        };
        Ok(WorkerConfig {
            slack_secret_arn: required("SLACK_SECRET_ARN")?,
            slack_api_base: optional("SLACK_API_BASE").unwrap_or_else(|| "https://slack.com/api".into()),
            usage_queue_url: required("USAGE_QUEUE_URL")?,
            events_stream_name: required("EVENTS_STREAM_NAME")?,
            conversations_table: required("CONVERSATIONS_TABLE")?,
            usage_table: required("USAGE_TABLE")?,
            agent_id,
            agent_alias_id,
            metrics_namespace: metrics_namespace(),
            settings,
            feedback_stream_name: optional("FEEDBACK_STREAM_NAME"),
            feedback: crate::feedback::FeedbackSettings::from_env()?,
            file_hosts,
        })
    }
}

/// The worker and its long-lived dependencies.
pub struct Worker {
    pub agent: Arc<dyn AgentClient>,
    pub chat: Arc<dyn ChatClient>,
    pub analytics: Arc<dyn AnalyticsSink>,
    pub usage: Arc<dyn UsageSink>,
    pub conversations: Arc<dyn ConversationStore>,
    /// Reads the user's spend for the budget check.
    pub spend: Arc<dyn UsageReader>,
    /// Prices the turn for the analytics event (token-logging prices the ledger the same way).
    pub prices: Arc<shared::pricing::PriceTable>,
    pub metrics: Metrics,
    pub settings: WorkerSettings,
    /// Reactions on bot answers -> feedback.
    pub feedback: Arc<crate::feedback::FeedbackRecorder>,
    /// Users' files in, the agent's files out.
    pub files: Arc<dyn FileTransfer>,
}

/// Why a work item must go back to the queue.
#[derive(Debug, thiserror::Error)]
pub enum WorkError {
    #[error("malformed work item: {0}")]
    Malformed(String),
    #[error("conversation store: {0}")]
    Store(#[from] shared::Error),
    #[error("could not reach Slack: {0}")]
    Slack(#[from] shared::ports::ChatError),
}

impl Worker {
    /// Processes a batch. Groups (Slack threads) run concurrently; messages within a group run in
    /// order, and after a failure the rest of that group is returned too, so a thread's turns
    /// never run out of order.
    pub async fn handle_batch(&self, event: SqsEvent, deadline: Option<Instant>) -> SqsBatchResponse {
        let mut groups: Vec<(String, Vec<SqsMessage>)> = Vec::new();
        for msg in event.records {
            let g = msg.attributes.get("MessageGroupId").cloned().unwrap_or_default();
            match groups.iter_mut().find(|(k, _)| *k == g) {
                Some((_, v)) => v.push(msg),
                None => groups.push((g, vec![msg])),
            }
        }
        let runs = groups.iter().map(|(_, msgs)| self.run_group(msgs, deadline));
        let failed: Vec<String> = futures::future::join_all(runs).await.into_iter().flatten().collect();
        let mut resp = SqsBatchResponse::default();
        resp.batch_item_failures = failed
            .into_iter()
            .map(|id| {
                let mut f = BatchItemFailure::default();
                f.item_identifier = id;
                f
            })
            .collect();
        resp
    }

    async fn run_group(&self, msgs: &[SqsMessage], deadline: Option<Instant>) -> Vec<String> {
        let mut failed = Vec::new();
        for msg in msgs {
            let id = msg.message_id.clone().unwrap_or_default();
            if !failed.is_empty() {
                failed.push(id);
                continue;
            }
            if let Err(e) = self.process(msg, deadline).await {
                error!(error = %e, message_id = %id, "work item failed; returned to the queue");
                failed.push(id);
            }
        }
        failed
    }

    async fn process(&self, msg: &SqsMessage, deadline: Option<Instant>) -> Result<(), WorkError> {
        let body = msg.body.as_deref().unwrap_or("");
        let item: WorkItem = serde_json::from_str(body).map_err(|e| {
            self.metrics.count_with_total("SchemaDrift", 1.0, &[("EventType", "work_item")]);
            WorkError::Malformed(format!("{:?} error at column {}", e.classify(), e.column()))
        })?;
        match item {
            WorkItem::Message(m) => self.answer(&m, deadline).await,
            WorkItem::Reaction(r) => self.reaction(&r).await,
        }
    }

    /// A reaction: feedback when it is a thumbs up / down on a bot answer, otherwise ignored.
    async fn reaction(&self, r: &ReactionWork) -> Result<(), WorkError> {
        self.feedback.handle(r).await?;
        Ok(())
    }

    async fn answer(&self, m: &MessageWork, deadline: Option<Instant>) -> Result<(), WorkError> {
        let thread = m.thread();
        let previous = self.conversations.last_turn(&thread, &m.ts).await?;
        if m.requires_bot_thread && previous.is_none() {
            info!(event_id = %m.event_id, channel = %m.channel_id, "thread reply in a thread the bot is not part of; ignored");
            return Ok(());
        }
        let record = TurnRecord {
            thread: thread.clone(),
            message_ts: m.ts.clone(),
            event_id: m.event_id.clone(),
            user_id: m.user_id.clone(),
            status: TurnStatus::Received,
            received_at_ms: m.received_at_ms,
            finished_at_ms: None,
            reply_ts: None,
            outcome: None,
            error_code: None,
            pending_analytics: None,
            pending_usage: None,
        };
        let mut resumed = false;
        match self.conversations.begin_turn(&record).await? {
            TurnStart::Finished(done) => {
                self.metrics.count("DuplicateEvents", 1.0, &[]);
                info!(event_id = %m.event_id, status = done.status.as_str(), "turn already finished; not answering twice");
                self.redeliver_pending(&done).await;
                return Ok(());
            }
            TurnStart::Resumed => {
                warn!(event_id = %m.event_id, "resuming a turn an earlier delivery did not finish");
                resumed = true;
            }
            TurnStart::New => {}
        }
        // A resumed turn may already have its (early) message in the thread: edit, never repost.
        let earlier_reply = match resumed.then(|| self.conversations.turn(&thread, &m.ts)) {
            None => None,
            Some(read) => match read.await {
                Ok(t) => t.and_then(|t| t.reply_ts),
                Err(e) => {
                    warn!(error = %e, "could not read the resumed turn back; answering as new");
                    None
                }
            },
        };
        let kept = self.kept_answer(m, resumed).await;
        let earlier_reply = match (earlier_reply, &kept) {
            (None, Some(kept)) => self.kept_answer_in_thread(m, kept).await,
            (earlier, _) => earlier,
        };
        let live = LiveReply::new(
            self.chat.clone(),
            self.conversations.clone(),
            thread.clone(),
            &m.ts,
            self.settings.stream,
            earlier_reply,
        );
        // Shown (again: the ingress may have) right away, and cleared on every way out below.
        let status = StatusIndicator::new(self.chat.clone(), self.settings.status.clone());
        let shown = status.show(m).await;
        // The agent already answered an earlier delivery: post that answer, never ask again.
        if let Some(kept) = kept {
            info!(event_id = %m.event_id, "posting the answer an earlier delivery kept; the agent is not invoked again");
            let posted = self.post_and_record(m, record, kept, true, &live, &[]).await;
            status.clear(m, shown).await;
            return posted;
        }
        let started = Instant::now();
        // Guests and Slack Connect users: refused before any spend is read or any token used.
        let asker = crate::access::Asker {
            installing_team: &m.team_id,
            user_team: m.user_team.as_deref(),
            enterprise_id: m.enterprise_id.as_deref(),
        };
        if let Some(refusal) = crate::access::check(self.chat.as_ref(), &self.settings.access, &asker, &m.user_id).await
        {
            let refused = self.refuse(m, record, refusal.message(), started, &live, Some(refusal)).await;
            status.clear(m, shown).await;
            return refused;
        }
        let notice = match self.check_budget(m).await {
            BudgetVerdict::Ok => None,
            BudgetVerdict::Notice(n) => Some(n),
            BudgetVerdict::Refuse(text) => {
                let refused = self.refuse(m, record, &text, started, &live, None).await;
                status.clear(m, shown).await;
                return refused;
            }
        };

        let files_in =
            crate::files::gather(&m.files, self.files.as_ref(), &self.settings.files, &self.metrics, &m.event_id).await;
        let mut request = AgentRequest {
            session_id: thread.session_id(),
            input_text: crate::files::input_or_placeholder(
                self.input_with_context(m, previous.as_ref()).await,
                &files_in,
            ),
            session_attributes: HashMap::from([
                ("slack_user_id".to_string(), m.user_id.clone()),
                ("slack_team_id".to_string(), m.team_id.clone()),
                ("slack_channel_id".to_string(), m.channel_id.clone()),
            ]),
            files: files_in.files,
        };
        let mut file_notes = files_in.notes;
        let mut result = live.run(self.invoke_with_retries(&request, deadline, &live)).await;
        if let Some(note) =
            result.as_ref().err().and_then(|e| crate::files::drop_files_after_rejection(e, &mut request))
        {
            file_notes.push(note);
            result = live.run(self.invoke_with_retries(&request, deadline, &live)).await;
        }
        let notice = crate::files::with_notes(notice, &file_notes);
        let latency_ms = started.elapsed().as_millis() as u64;

        let (outcome, turn, error_code, spent) = match result {
            Ok(turn) => {
                if !turn.return_control.is_empty() {
                    // This gateway runs no client-side actions; the agent should use Lambda action groups.
                    warn!(event_id = %m.event_id, actions = ?turn.return_control, "agent returned control; not executed");
                }
                let outcome = if turn.guardrail_action.as_deref() == Some("INTERVENED") {
                    Outcome::GuardrailBlocked
                } else if turn.text.trim().is_empty() && turn.failure.is_some() {
                    Outcome::Failed
                } else {
                    Outcome::Answered
                };
                let code = (outcome == Outcome::Failed).then(|| "AgentFailureTrace".to_string());
                let spent = turn.model_calls.clone();
                (outcome, Some(turn), code, spent)
            }
            Err(e) => (Outcome::Failed, None, Some(e.code.clone()), e.spent.clone()),
        };

        // The answer (or the one apology) goes out before anything is recorded, but is kept on
        // the turn first: a redelivery after a failed post posts it without re-invoking the agent.
        // When an early message is up, the answer (or apology) replaces it.
        let parts = match (&turn, outcome) {
            (Some(t), Outcome::Answered | Outcome::GuardrailBlocked) => {
                let text = if t.text.trim().is_empty() { NO_ANSWER } else { &t.text };
                reply_parts(text, &t.sources, notice.as_deref())
            }
            _ => vec![Reply::plain(APOLOGY)],
        };
        self.emit_turn_metrics(latency_ms, error_code.as_deref());
        let empty = AgentTurn::default();
        let turn_ref = turn.as_ref().unwrap_or(&empty);
        let kept = KeptAnswer {
            parts: parts.into_iter().map(KeptPart::from).collect(),
            analytics: self.analytics_event(
                m,
                &request.session_id,
                turn_ref,
                &spent,
                outcome,
                error_code.clone(),
                latency_ms,
            ),
            usage: (!spent.is_empty()).then(|| self.usage_record(m, &spent)),
        };
        let stored = self.keep_answer(m, &kept).await;
        // The agent's files are not kept (too large for the turn): only this delivery shares them.
        let files = turn.map(|t| t.files).unwrap_or_default();
        let posted = self.post_and_record(m, record, kept, stored, &live, &files).await;
        status.clear(m, shown).await;
        posted
    }

    /// Keeps the answer on the turn before it is posted; false when it could not be (the turn
    /// then runs again after a failed post, as before).
    async fn keep_answer(&self, m: &MessageWork, kept: &KeptAnswer) -> bool {
        let stored = match serde_json::to_string(kept) {
            Ok(json) => self.conversations.keep_answer(&m.thread(), &m.ts, &json).await,
            Err(e) => Err(shared::Error::Malformed { what: "kept answer", reason: e.to_string() }),
        };
        match stored {
            Ok(()) => true,
            Err(e) => {
                self.metrics.count_with_total("LoggingErrors", 1.0, &[("Sink", "conversations")]);
                error!(error = %e, event_id = %m.event_id, "could not keep the answer on the turn before posting it");
                false
            }
        }
    }

    /// The answer an earlier delivery of a resumed turn kept, if any.
    async fn kept_answer(&self, m: &MessageWork, resumed: bool) -> Option<KeptAnswer> {
        if !resumed {
            return None;
        }
        match self.conversations.kept_answer(&m.thread(), &m.ts).await {
            Ok(kept) => kept.and_then(|json| match serde_json::from_str(&json) {
                Ok(k) => Some(k),
                Err(e) => {
                    self.metrics.count_with_total("SchemaDrift", 1.0, &[("EventType", "kept_answer")]);
                    warn!(error = %e, event_id = %m.event_id, "unreadable kept answer; running the turn again");
                    None
                }
            }),
            Err(e) => {
                warn!(error = %e, event_id = %m.event_id, "could not read a kept answer; running the turn again");
                None
            }
        }
    }

    /// The kept answer's first message when a post that failed (a 5xx, a timeout) had in fact
    /// reached the thread: the redelivery then edits it instead of posting the answer twice.
    async fn kept_answer_in_thread(&self, m: &MessageWork, kept: &KeptAnswer) -> Option<String> {
        let first = kept.parts.first()?;
        let thread = m.thread();
        match self.chat.thread_replies(&thread.channel_id, &thread.thread_ts, 50).await {
            Ok(history) => history
                .into_iter()
                .rev()
                .find(|h| h.bot && h.text == first.text && h.ts.as_str() > m.ts.as_str())
                .map(|h| h.ts),
            Err(e) => {
                warn!(error = %e, event_id = %m.event_id, "could not look for the kept answer in the thread");
                None
            }
        }
    }

    /// Posts the kept answer and records the turn. A permanent Slack refusal ends the turn as
    /// failed (counted, logged, recorded, usage published, not returned to the queue); a
    /// transient one returns the message to the queue, whose redelivery posts the kept answer.
    async fn post_and_record(
        &self,
        m: &MessageWork,
        mut record: TurnRecord,
        mut kept: KeptAnswer,
        stored: bool,
        live: &LiveReply,
        files: &[shared::domain::AgentFile],
    ) -> Result<(), WorkError> {
        let parts: Vec<Reply> = kept.parts.iter().cloned().map(Reply::from).collect();
        let post = match live.deliver(parts).await {
            // Slack refused this message, not the place: the user still gets the apology.
            Err(e) if e.refused_content() && kept.analytics.outcome != Outcome::Failed => {
                warn!(slack_method = e.method, error = %e.error, event_id = %m.event_id, "slack refused the answer; posting the apology");
                kept.analytics.outcome = Outcome::Failed;
                kept.analytics.error_code = Some(slack_error_code(&e));
                live.deliver(vec![Reply::plain(APOLOGY)]).await
            }
            other => other,
        };
        let reply_ts = match post {
            Ok(ts) => Some(ts),
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
                live.ts()
            }
            Err(e) => {
                // Tokens were spent even though nobody saw the answer: record them before retrying.
                match (&kept.usage, stored) {
                    // The redelivery posts the kept answer and publishes the same record again:
                    // its stable id makes the ledger count it once.
                    (Some(usage), true) => {
                        if let Err(e) = self.usage.publish(usage).await {
                            self.metrics.count_with_total("LoggingErrors", 1.0, &[("Sink", "usage")]);
                            error!(error = %e, event_id = %m.event_id, "could not publish usage of an unposted answer");
                        }
                    }
                    (Some(usage), false) => self.publish_usage_now(m, &usage.calls).await,
                    (None, _) => {}
                }
                return Err(WorkError::Slack(e));
            }
        };

        let outcome = kept.analytics.outcome;
        record.status = if outcome == Outcome::Failed { TurnStatus::Failed } else { TurnStatus::Answered };
        record.finished_at_ms = Some(chrono::Utc::now().timestamp_millis());
        record.reply_ts = reply_ts.clone();
        record.outcome = Some(outcome.as_str().to_string());
        record.error_code = kept.analytics.error_code.clone();
        record.pending_analytics = serde_json::to_string(&kept.analytics).ok();
        record.pending_usage = kept.usage.as_ref().and_then(|u| serde_json::to_string(u).ok());
        if let Err(e) = self.conversations.finish_turn(&record).await {
            // Not returned as a failure: a redelivery would answer the user a second time.
            self.metrics.count_with_total("LoggingErrors", 1.0, &[("Sink", "conversations")]);
            error!(error = %e, event_id = %m.event_id, "could not record the finished turn");
        }
        // After the turn is recorded: a failure or a crash here can never bring a second answer.
        if reply_ts.is_some() {
            crate::files::share(files, &m.thread(), self.files.as_ref(), &self.metrics, &m.event_id).await;
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

    async fn check_budget(&self, m: &MessageWork) -> BudgetVerdict {
        let budgets = self.settings.budgets;
        if !budgets.enabled() {
            return BudgetVerdict::Ok;
        }
        let now = chrono::Utc::now();
        match self.spend.user_spend(&m.team_id, &m.user_id, now.date_naive()).await {
            Ok(spend) => budgets.verdict_counting_unpriced(&spend, now, self.prices.highest_rate_per_million()),
            Err(e) => {
                // An unreadable ledger must not take the bot down: answer, and say so loudly.
                self.metrics.count_with_total("APIErrors", 1.0, &[("ErrorCode", "BudgetCheck")]);
                error!(error = %e, event_id = %m.event_id, "could not read the user's spend; answering without a budget check");
                BudgetVerdict::Ok
            }
        }
    }

    /// Tells the user their budget is spent (`access` None) or that they may not use the bot;
    /// the agent is not invoked and no tokens are used.
    async fn refuse(
        &self,
        m: &MessageWork,
        mut record: TurnRecord,
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
        let thread = m.thread();
        let reply_ts = live.deliver(vec![Reply::plain(text)]).await?;
        let latency_ms = started.elapsed().as_millis() as u64;
        let analytics = self.analytics_event(
            m,
            &thread.session_id(),
            &AgentTurn::default(),
            &[],
            outcome,
            error_code.clone(),
            latency_ms,
        );
        record.status = status;
        record.finished_at_ms = Some(chrono::Utc::now().timestamp_millis());
        record.reply_ts = Some(reply_ts);
        record.outcome = Some(outcome.as_str().to_string());
        record.error_code = error_code;
        record.pending_analytics = serde_json::to_string(&analytics).ok();
        if let Err(e) = self.conversations.finish_turn(&record).await {
            self.metrics.count_with_total("LoggingErrors", 1.0, &[("Sink", "conversations")]);
            error!(error = %e, event_id = %m.event_id, "could not record the refused turn");
        }
        self.deliver(&record, Some(&analytics), None).await;
        info!(event_id = %m.event_id, outcome = outcome.as_str(), error_code = record.error_code.as_deref().unwrap_or_default(), "turn refused");
        Ok(())
    }

    async fn invoke_with_retries(
        &self,
        request: &AgentRequest,
        deadline: Option<Instant>,
        live: &LiveReply,
    ) -> Result<AgentTurn, AgentError> {
        let mut attempt = 0;
        let mut spent: Vec<ModelCall> = Vec::new();
        let on_text = |delta: &str| live.push(delta);
        // Attempts end here at the latest: the reserve answers the user and records the turn.
        let cutoff = deadline.map(|d| d.checked_sub(self.settings.deadline_reserve).unwrap_or_else(Instant::now));
        loop {
            live.restart();
            match self.attempt(request, &on_text, cutoff).await {
                Ok(mut turn) => {
                    // Calls of failed attempts were billed too.
                    spent.append(&mut turn.model_calls);
                    turn.model_calls = spent;
                    return Ok(turn);
                }
                Err(mut e) => {
                    self.metrics.count_with_total("APIErrors", 1.0, &[("ErrorCode", &e.code)]);
                    spent.append(&mut e.spent);
                    // A retry must still have a whole attempt's time after its delay.
                    let keep = self.settings.deadline_reserve + self.settings.min_agent_attempt;
                    let delay = e
                        .is_retryable()
                        .then(|| self.settings.agent_backoff.next_delay(attempt, None, deadline, keep))
                        .flatten();
                    match delay {
                        Some(d) => {
                            warn!(code = %e.code, attempt, delay_ms = d.as_millis() as u64, "agent call failed; retrying");
                            tokio::time::sleep(d).await;
                            attempt += 1;
                        }
                        None => {
                            error!(code = %e.code, message = %e.message, attempt, "agent call failed; giving up");
                            e.spent = spent;
                            return Err(e);
                        }
                    }
                }
            }
        }
    }

    /// One agent call, cut off at `cutoff`; the model calls the stream reported by then are kept
    /// as spent. Not started when less than the minimum attempt time is left.
    async fn attempt(
        &self,
        request: &AgentRequest,
        on_text: TextSink<'_>,
        cutoff: Option<Instant>,
    ) -> Result<AgentTurn, AgentError> {
        let reported = SpentCalls::default();
        let Some(cutoff) = cutoff else {
            return self.agent.invoke_streaming(request, on_text, &reported).await;
        };
        let left = cutoff.saturating_duration_since(Instant::now());
        if left < self.settings.min_agent_attempt {
            let message = format!(
                "{} ms left for the agent, an attempt needs {} ms",
                left.as_millis(),
                self.settings.min_agent_attempt.as_millis()
            );
            return Err(AgentError::timed_out(message, Vec::new()));
        }
        match tokio::time::timeout(left, self.agent.invoke_streaming(request, on_text, &reported)).await {
            Ok(result) => result,
            Err(_) => {
                let message = format!("no complete answer within {} ms", left.as_millis());
                Err(AgentError::timed_out(message, reported.snapshot()))
            }
        }
    }

    /// The question, preceded by the thread's history when the agent's session has expired.
    async fn input_with_context(&self, m: &MessageWork, previous: Option<&TurnRecord>) -> String {
        let question = m.question();
        let now_ms = chrono::Utc::now().timestamp_millis();
        let session_alive = previous.is_some_and(|p| {
            let last = p.finished_at_ms.unwrap_or(p.received_at_ms);
            now_ms - last < self.settings.session_idle_ttl.as_millis() as i64
        });
        if !m.is_thread_reply() || session_alive {
            return question;
        }
        let thread = m.thread();
        let history = match self.chat.thread_replies(&thread.channel_id, &thread.thread_ts, 50).await {
            Ok(h) => h,
            Err(e) => {
                warn!(error = %e, "could not read the thread's history; answering without it");
                return question;
            }
        };
        let mut lines: Vec<String> = history
            .iter()
            .filter(|h| h.ts != m.ts && !h.text.trim().is_empty())
            .map(|h| format!("{}: {}", if h.bot { "assistant" } else { "user" }, h.text.trim()))
            .collect();
        // Keep the most recent history within a bounded size.
        let mut total = 0;
        let mut keep = 0;
        for l in lines.iter().rev() {
            total += l.len();
            if total > 6000 {
                break;
            }
            keep += 1;
        }
        lines.drain(..lines.len() - keep);
        if lines.is_empty() {
            return question;
        }
        format!(
            "Earlier messages in this Slack thread, for context:\n{}\n\nThe user's new message:\n{}",
            lines.join("\n"),
            question
        )
    }

    /// Token and cost metrics are token-logging's (priced, once per turn even when a usage record
    /// is redelivered); the worker emits only what it alone knows.
    fn emit_turn_metrics(&self, latency_ms: u64, error_code: Option<&str>) {
        let agent = self.settings.agent_id.as_str();
        self.metrics.record(&[("AgentId", agent)]).put("APILatency", latency_ms as f64, Unit::Milliseconds).emit();
        // Failed attempts are counted as they happen; a failure trace is only known here.
        if error_code == Some("AgentFailureTrace") {
            self.metrics.count_with_total("APIErrors", 1.0, &[("ErrorCode", "AgentFailureTrace")]);
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn analytics_event(
        &self,
        m: &MessageWork,
        session_id: &str,
        turn: &AgentTurn,
        calls: &[ModelCall],
        outcome: Outcome,
        error_code: Option<String>,
        latency_ms: u64,
    ) -> AnalyticsEvent {
        let (input_tokens, output_tokens) = shared::domain::total_tokens(calls);
        let question = m.question();
        AnalyticsEvent {
            timestamp: iso_ms(m.received_at_ms),
            user_id: m.user_id.clone(),
            thread_id: m.thread().thread_ts,
            message_length: question.chars().count() as u64,
            response_length: turn.text.chars().count() as u64,
            knowledge_bases: turn.knowledge_bases.clone(),
            search_queries: turn.search_queries.clone(),
            rationale: turn.rationale.clone(),
            event_id: m.event_id.clone(),
            team_id: m.team_id.clone(),
            channel_id: m.channel_id.clone(),
            agent_id: self.settings.agent_id.clone(),
            agent_alias_id: self.settings.agent_alias_id.clone(),
            session_id: session_id.to_string(),
            action_groups: turn.action_groups.clone(),
            sources: turn.sources.clone(),
            model_ids: shared::domain::model_ids(calls),
            input_tokens,
            output_tokens,
            // None when any model of the turn is missing from the price table: never a guess.
            estimated_cost_usd: self.prices.turn_cost(calls).0,
            latency_ms,
            first_token_ms: turn.first_token_ms,
            outcome,
            error_code,
            guardrail_action: turn.guardrail_action.clone(),
            schema_version: ANALYTICS_SCHEMA_VERSION,
            message_text: self.settings.store_message_text.then_some(question),
        }
    }

    fn usage_record(&self, m: &MessageWork, calls: &[ModelCall]) -> UsageRecord {
        UsageRecord {
            // Stable across redeliveries of the same Slack event.
            record_id: format!("{}:{}", m.team_id, m.event_id),
            timestamp: iso_ms(chrono::Utc::now().timestamp_millis()),
            user_id: m.user_id.clone(),
            team_id: m.team_id.clone(),
            channel_id: m.channel_id.clone(),
            thread_id: m.thread().thread_ts,
            agent_id: self.settings.agent_id.clone(),
            agent_alias_id: self.settings.agent_alias_id.clone(),
            calls: calls.to_vec(),
        }
    }

    async fn publish_usage_now(&self, m: &MessageWork, calls: &[ModelCall]) {
        if calls.is_empty() {
            return;
        }
        // The turn will run again when the message is redelivered, and that run's record keeps the
        // stable id; this attempt's tokens need an id of their own or the ledger would skip them.
        let mut record = self.usage_record(m, calls);
        record.record_id = format!("{}:unposted-{:016x}", record.record_id, fastrand::u64(..));
        if let Err(e) = self.usage.publish(&record).await {
            self.metrics.count_with_total("LoggingErrors", 1.0, &[("Sink", "usage")]);
            error!(error = %e, event_id = %m.event_id, "could not publish usage of an unanswered turn");
        }
    }

    /// Publishes analytics and usage concurrently; what was delivered is cleared from the record,
    /// what was not stays there (and is retried when the message is delivered again).
    async fn deliver(&self, record: &TurnRecord, analytics: Option<&AnalyticsEvent>, usage: Option<&UsageRecord>) {
        let a = async {
            match analytics {
                Some(ev) => self.analytics.publish(ev).await.map(|_| true),
                None => Ok(false),
            }
        };
        let u = async {
            match usage {
                Some(rec) => self.usage.publish(rec).await.map(|_| true),
                None => Ok(false),
            }
        };
        let (ra, ru) = tokio::join!(a, u);
        let mut cleared = (false, false);
        for (sink, r, slot) in [("analytics", ra, &mut cleared.0), ("usage", ru, &mut cleared.1)] {
            match r {
                Ok(done) => *slot = done,
                Err(e) => {
                    self.metrics.count_with_total("LoggingErrors", 1.0, &[("Sink", sink)]);
                    error!(error = %e, sink, event_id = %record.event_id, "could not publish turn record; kept in the conversations table");
                }
            }
        }
        let pending_a = record.pending_analytics.is_some() && cleared.0;
        let pending_u = record.pending_usage.is_some() && cleared.1;
        if pending_a || pending_u {
            if let Err(e) =
                self.conversations.clear_pending(&record.thread, &record.message_ts, pending_a, pending_u).await
            {
                warn!(error = %e, "could not clear delivered records from the turn");
            }
        }
    }

    async fn redeliver_pending(&self, done: &TurnRecord) {
        let analytics: Option<AnalyticsEvent> =
            done.pending_analytics.as_deref().and_then(|s| serde_json::from_str(s).ok());
        let usage: Option<UsageRecord> = done.pending_usage.as_deref().and_then(|s| serde_json::from_str(s).ok());
        if analytics.is_some() || usage.is_some() {
            info!(event_id = %done.event_id, "re-publishing records a previous delivery could not");
            self.deliver(done, analytics.as_ref(), usage.as_ref()).await;
        }
    }
}

/// A turn's answer as kept on the turn before it is posted: what to post, and the records to
/// publish once it is.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct KeptAnswer {
    parts: Vec<KeptPart>,
    analytics: AnalyticsEvent,
    usage: Option<UsageRecord>,
}

/// One Slack message of a kept answer.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct KeptPart {
    text: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    blocks: Option<Vec<serde_json::Value>>,
}

impl From<Reply> for KeptPart {
    fn from(r: Reply) -> Self {
        KeptPart { text: r.text, blocks: r.blocks }
    }
}

impl From<KeptPart> for Reply {
    fn from(p: KeptPart) -> Self {
        Reply { text: p.text, blocks: p.blocks }
    }
}

/// The error code a Slack refusal leaves on the turn, e.g. `slack_channel_not_found`.
fn slack_error_code(e: &shared::ports::ChatError) -> String {
    format!("slack_{}", e.error)
}

/// The answer as Slack messages: mrkdwn, sources listed, split to Slack's size, a table as a
/// table block where Slack can show one, the budget notice (if any) on the last message.
fn reply_parts(text: &str, sources: &[String], notice: Option<&str>) -> Vec<Reply> {
    let mut parts = shared::slack::mrkdwn::render_reply(text, sources);
    if let Some(n) = notice {
        match parts.last_mut() {
            Some(last) if last.text.chars().count() + n.chars().count() + 2 <= shared::slack::MAX_MESSAGE_CHARS => {
                last.push_paragraph(n);
            }
            _ => parts.push(Reply::plain(n)),
        }
    }
    parts
}

fn iso_ms(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms).unwrap_or_default().format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::rollups::{Spend, UserSpend};

    fn spend(day: f64, month: f64) -> UserSpend {
        UserSpend {
            day: Spend { cost_usd: day, ..Spend::default() },
            month: Spend { cost_usd: month, ..Spend::default() },
        }
    }

    #[test]
    fn the_budget_notice_ends_the_last_message_in_its_text_and_its_blocks() {
        let notice = "_You've used 85% of your daily budget._";
        let parts = reply_parts("Costs:\n\n| Model | Cost |\n|---|--:|\n| Haiku | $4 |", &[], Some(notice));
        assert_eq!(parts.len(), 1);
        assert!(parts[0].text.starts_with("Costs:\n\n```\n") && parts[0].text.ends_with(notice), "{}", parts[0].text);
        let blocks = parts[0].blocks.as_ref().expect("a table block");
        assert_eq!(blocks[1]["type"], "table");
        assert_eq!(blocks.last().map(|b| &b["text"]["text"]), Some(&serde_json::json!(notice)));

        let parts = reply_parts("No table here.", &[], Some(notice));
        assert_eq!(parts, vec![Reply::plain(format!("No table here.\n\n{notice}"))]);
    }

    #[test]
    fn unpriced_tokens_count_toward_a_budget_at_the_highest_known_rate_and_say_so() {
        let now = chrono::DateTime::parse_from_rfc3339("2026-11-23T22:30:00Z").unwrap().with_timezone(&chrono::Utc);
        let b = Budgets { daily_usd: Some(1.0), monthly_usd: None };
        // Only an unpriced model: no priced cost at all, 200,000 tokens.
        let mut s = spend(0.0, 0.0);
        s.day.unpriced_tokens = 200_000;
        s.month.unpriced_tokens = 200_000;
        let rate = shared::pricing::PriceTable::embedded().highest_rate_per_million().expect("a priced model");
        assert!(rate >= 10.0, "{rate}");
        match b.verdict_counting_unpriced(&s, now, Some(rate)) {
            BudgetVerdict::Refuse(t) => {
                assert!(
                    t.contains("200000 tokens of a model without a price") && t.contains("highest known rate"),
                    "{t}"
                )
            }
            other => panic!("{other:?}"),
        }
        s.day.unpriced_tokens = 1_000_000 * 85 / 100 / rate as u64;
        match b.verdict_counting_unpriced(&s, now, Some(rate)) {
            BudgetVerdict::Notice(n) => assert!(n.contains("without a price") && n.contains("daily"), "{n}"),
            other => panic!("{other:?}"),
        }
        // Without unpriced tokens the message is as before.
        assert_eq!(b.verdict_counting_unpriced(&spend(0.5, 0.5), now, Some(rate)), BudgetVerdict::Ok);
    }

    #[test]
    fn budget_verdicts() {
        let now = chrono::DateTime::parse_from_rfc3339("2026-11-23T22:30:00Z").unwrap().with_timezone(&chrono::Utc);
        let off = Budgets::default();
        assert!(!off.enabled());
        assert_eq!(off.verdict(&spend(1e9, 1e9), now), BudgetVerdict::Ok);

        let b = Budgets { daily_usd: Some(10.0), monthly_usd: Some(100.0) };
        assert_eq!(b.verdict(&spend(7.99, 50.0), now), BudgetVerdict::Ok);
        match b.verdict(&spend(8.5, 50.0), now) {
            BudgetVerdict::Notice(n) => assert!(n.contains("85%") && n.contains("daily"), "{n}"),
            other => panic!("{other:?}"),
        }
        match b.verdict(&spend(10.0, 50.0), now) {
            BudgetVerdict::Refuse(t) => {
                assert!(t.contains("daily") && t.contains("2026-11-24 00:00 UTC") && t.contains("in 1 h 30 min"), "{t}")
            }
            other => panic!("{other:?}"),
        }
        match b.verdict(&spend(0.0, 120.0), now) {
            BudgetVerdict::Refuse(t) => assert!(t.contains("monthly") && t.contains("2026-12-01 00:00 UTC"), "{t}"),
            other => panic!("{other:?}"),
        }
    }
}
