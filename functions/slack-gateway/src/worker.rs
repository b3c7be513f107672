//! slack-worker: one turn per queued message. Invoke the agent, answer in the thread, then record
//! what happened (analytics, usage, conversation) without ever delaying or failing the answer.
//!
//! This module runs a batch and orchestrates one turn; the turn's steps live beside it: `config`
//! (settings read at init), `budget` (the per-user budget policy), `agent` (the agent retry loop),
//! `history` (the thread-history prompt), `kept` (the answer kept on the turn before it is
//! posted), `finish` (posting the answer and recording the turn), `records` (the analytics event
//! and the usage record) and `outbox` (delivering them, through `shared::outbox`).

mod agent;
mod budget;
mod buttons;
mod config;
mod finish;
mod history;
mod kept;
mod outbox;
mod records;
mod wiring;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};
use shared::domain::{AgentTurn, ModelCall, Outcome};
use shared::ports::{
    AgentClient, AgentError, AgentRequest, AnalyticsSink, ChatClient, ConversationStore, FileTransfer, TurnRecord,
    TurnStart, UsageReader, UsageSink,
};
use shared::telemetry::Metrics;
use tracing::{error, info, warn};

pub use budget::{BudgetVerdict, Budgets, BUDGET_NOTICE_SHARE};
pub use buttons::{THANKS_NEGATIVE, THANKS_POSITIVE};
pub use config::{AgentTarget, WorkerConfig, WorkerSettings};

use crate::status::StatusIndicator;
use crate::stream::{LiveReply, Native};
use crate::work::{MessageWork, ReactionWork, WorkItem};
use kept::KeptAnswer;

/// The apology posted when a turn cannot be answered.
pub const APOLOGY: &str = "Sorry, I couldn't answer that just now. Please try again in a moment.";
/// Posted when the agent ran but produced no text.
pub const NO_ANSWER: &str = "I don't have an answer to that.";

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
    /// The rollup reads of the App Home tab (with `spend`); None = Home tabs are not published.
    pub home: Option<Arc<crate::home::HomeSources>>,
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
            WorkItem::AssistantThread(t) => {
                if self.settings.status.assistant != crate::status::AssistantMode::Off {
                    crate::assistant::start_thread(self.chat.as_ref(), &self.settings.assistant, &t, &self.metrics)
                        .await;
                }
                Ok(())
            }
            WorkItem::Home(h) => {
                if let Some(home) = &self.home {
                    let (chat, spend) = (self.chat.as_ref(), self.spend.as_ref());
                    let b = &self.settings.budgets;
                    let limits = crate::home::Limits { daily_usd: b.daily_usd, monthly_usd: b.monthly_usd };
                    crate::home::publish(chat, spend, home, &limits, &h, &self.metrics).await;
                }
                Ok(())
            }
            WorkItem::FeedbackButton(b) => self.feedback_button(&b).await,
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
        let record = received(m);
        let Some(resumed) = self.begin(m, &record).await? else {
            return Ok(());
        };
        let kept = self.kept_answer(m, resumed).await;
        let earlier_reply = self.earlier_reply(m, resumed, kept.as_ref()).await;
        let live = LiveReply::new(
            self.chat.clone(),
            self.conversations.clone(),
            thread,
            &m.ts,
            self.settings.stream,
            earlier_reply,
        )
        .with_native(Native {
            mode: self.settings.stream.native,
            recipient_user_id: m.user_id.clone(),
            recipient_team_id: m.user_team.clone().unwrap_or_else(|| m.team_id.clone()),
            gate: self.settings.native_gate.clone(),
        });
        // Shown (again: the ingress may have) right away, and cleared on every way out below.
        let status = StatusIndicator::new(self.chat.clone(), self.settings.status.clone());
        let shown = status.show(m).await;
        // The thread's first turn names it in the app's history; later turns never rename it.
        // Beside the turn, not before it: the title is no reason to answer later.
        let titled = previous.is_none()
            && m.assistant_thread
            && self.settings.status.assistant != crate::status::AssistantMode::Off;
        let title = async {
            if titled {
                crate::assistant::title_thread(self.chat.as_ref(), m, &self.metrics).await;
            }
        };
        let ((), ran) = tokio::join!(title, self.run(m, record, kept, previous.as_ref(), deadline, &live));
        status.clear(m, shown).await;
        ran
    }

    /// Begins the turn: `Some(resumed)` to go on; `None` when it already finished (its pending
    /// copies are delivered again then, never the answer).
    async fn begin(&self, m: &MessageWork, record: &TurnRecord) -> Result<Option<bool>, WorkError> {
        match self.conversations.begin_turn(record).await? {
            TurnStart::Finished(done) => {
                self.metrics.count("DuplicateEvents", 1.0, &[]);
                info!(event_id = %m.event_id, status = done.status.as_str(), "turn already finished; not answering twice");
                self.redeliver_pending(&done).await;
                Ok(None)
            }
            TurnStart::Resumed => {
                warn!(event_id = %m.event_id, "resuming a turn an earlier delivery did not finish");
                Ok(Some(true))
            }
            TurnStart::New => Ok(Some(false)),
        }
    }

    /// The reply an earlier delivery of a resumed turn left in the thread: a resumed turn may
    /// already have its (early) message or its kept answer there, to edit, never to repost.
    async fn earlier_reply(&self, m: &MessageWork, resumed: bool, kept: Option<&KeptAnswer>) -> Option<String> {
        let recorded = if resumed {
            match self.conversations.turn(&m.thread(), &m.ts).await {
                Ok(t) => t.and_then(|t| t.reply_ts),
                Err(e) => {
                    warn!(error = %e, "could not read the resumed turn back; answering as new");
                    None
                }
            }
        } else {
            None
        };
        match (recorded, kept) {
            (None, Some(kept)) => self.kept_answer_in_thread(m, kept).await,
            (earlier, _) => earlier,
        }
    }

    /// The turn once its status is shown: post the answer an earlier delivery kept, or refuse,
    /// or ask the agent and answer.
    async fn run(
        &self,
        m: &MessageWork,
        record: TurnRecord,
        kept: Option<KeptAnswer>,
        previous: Option<&TurnRecord>,
        deadline: Option<Instant>,
        live: &LiveReply,
    ) -> Result<(), WorkError> {
        // The agent already answered an earlier delivery: post that answer, never ask again.
        if let Some(kept) = kept {
            info!(event_id = %m.event_id, "posting the answer an earlier delivery kept; the agent is not invoked again");
            return self.post_and_record(m, record, kept, true, live, &[]).await;
        }
        let started = Instant::now();
        let notice = match self.admit(m).await {
            Admission::Admitted { notice } => notice,
            Admission::Refused { text, access } => return self.refuse(m, record, &text, started, live, access).await,
        };
        let asked = self.ask(m, previous, deadline, live).await;
        let notice = crate::attachments::with_notes(notice, &asked.file_notes);
        let latency_ms = started.elapsed().as_millis() as u64;
        let judged = judge(m, asked.result);
        let unknown = judged.turn.as_ref().map(|t| t.unknown_events.as_slice()).unwrap_or_default();
        self.emit_turn_metrics(latency_ms, judged.error_code.as_deref(), unknown);
        // The answer (or the one apology) goes out before anything is recorded, but is kept on
        // the turn first: a redelivery after a failed post posts it without re-invoking the agent.
        let kept = self.kept_for(m, &asked.session_id, &judged, notice.as_deref(), latency_ms);
        let stored = self.keep_answer(m, &kept).await;
        // The agent's files are not kept (too large for the turn): only this delivery shares them.
        let files = judged.turn.map(|t| t.files).unwrap_or_default();
        self.post_and_record(m, record, kept, stored, live, &files).await
    }

    /// Whether the agent may run for this user. Guests and Slack Connect users are refused
    /// before any spend is read or any token used; then the budget decides.
    async fn admit(&self, m: &MessageWork) -> Admission {
        let asker = crate::access::Asker {
            installing_team: &m.team_id,
            user_team: m.user_team.as_deref(),
            enterprise_id: m.enterprise_id.as_deref(),
        };
        if let Some(refusal) = crate::access::check(self.chat.as_ref(), &self.settings.access, &asker, &m.user_id).await
        {
            return Admission::Refused { text: refusal.message().to_string(), access: Some(refusal) };
        }
        match self.check_budget(m).await {
            BudgetVerdict::Ok => Admission::Admitted { notice: None },
            BudgetVerdict::Notice(n) => Admission::Admitted { notice: Some(n) },
            BudgetVerdict::Refuse(text) => Admission::Refused { text, access: None },
        }
    }

    /// Asks the agent: the user's files gathered, the thread's history added when the session
    /// expired; asked once more without the files when the agent rejected them.
    async fn ask(
        &self,
        m: &MessageWork,
        previous: Option<&TurnRecord>,
        deadline: Option<Instant>,
        live: &LiveReply,
    ) -> Asked {
        let files_in =
            crate::attachments::gather(&m.files, self.files.as_ref(), &self.settings.files, &self.metrics, &m.event_id)
                .await;
        let mut request = AgentRequest {
            session_id: self.agent.session_id(&m.thread()),
            user_id: m.user_id.clone(),
            input_text: crate::attachments::input_or_placeholder(self.input_with_context(m, previous).await, &files_in),
            session_attributes: HashMap::from([
                ("slack_user_id".to_string(), m.user_id.clone()),
                ("slack_team_id".to_string(), m.team_id.clone()),
                ("slack_channel_id".to_string(), m.channel_id.clone()),
            ]),
            files: files_in.files,
        };
        let mut file_notes = files_in.notes;
        let mut result = live.run(self.invoke_with_retries(&request, deadline, live)).await;
        if let Some(note) =
            result.as_ref().err().and_then(|e| crate::attachments::drop_files_after_rejection(e, &mut request))
        {
            file_notes.push(note);
            result = live.run(self.invoke_with_retries(&request, deadline, live)).await;
        }
        Asked { session_id: request.session_id, result, file_notes }
    }
}

/// Whether a turn may invoke the agent.
enum Admission {
    /// Yes, with the budget notice (if any) for the answer.
    Admitted { notice: Option<String> },
    /// No: this text is the reply; `access` is set for an access refusal, unset for a budget one.
    Refused { text: String, access: Option<crate::access::Refusal> },
}

/// What asking the agent gave.
struct Asked {
    session_id: String,
    result: Result<AgentTurn, AgentError>,
    /// What the user is told about their files (skipped, dropped after a rejection).
    file_notes: Vec<String>,
}

/// How the agent's result ends the turn.
struct Judged {
    outcome: Outcome,
    /// The agent's turn, when it answered.
    turn: Option<AgentTurn>,
    error_code: Option<String>,
    /// Every model call the turn was billed for, failed attempts included.
    spent: Vec<ModelCall>,
    /// The agent worked but its stream did not say what it spent.
    usage_unreported: bool,
}

/// The outcome of the agent's result.
fn judge(m: &MessageWork, result: Result<AgentTurn, AgentError>) -> Judged {
    match result {
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
            let error_code = (outcome == Outcome::Failed).then(|| "AgentFailureTrace".to_string());
            let usage_unreported = turn.usage_unreported;
            Judged { outcome, spent: turn.model_calls.clone(), turn: Some(turn), error_code, usage_unreported }
        }
        Err(e) => Judged {
            outcome: Outcome::Failed,
            turn: None,
            error_code: Some(e.code),
            spent: e.spent,
            usage_unreported: e.usage_unreported,
        },
    }
}

/// The turn as first recorded, when its message is received.
fn received(m: &MessageWork) -> TurnRecord {
    TurnRecord::received(m.thread(), m.ts.clone(), m.event_id.clone(), m.user_id.clone(), m.received_at_ms)
}
