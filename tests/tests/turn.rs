//! The turn logic over the in-memory ports (shared::memory): a signed Slack request through the
//! ingress to the queue, the work item through the worker, with no emulator started. These run
//! in milliseconds; the same paths against moto, the fake Slack and the scripted agent stream
//! are the end-to-end layer (gateway.rs, slack_faults.rs, streaming.rs, binaries.rs).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage};
use serde_json::Value;
use shared::domain::{AgentTurn, FeedbackEntry, ModelCall, TurnStatus};
use shared::memory::{
    AgentStep, FixedSpend, MemoryChat, MemoryConversations, MemoryDedup, MemoryFiles, MemoryQueue, MemorySinks,
    ScriptedAgent, StaticSecret,
};
use shared::ports::{AgentError, AgentErrorKind, SlackUser, TurnRecord};
use shared::telemetry::Metrics;
use slack_gateway::feedback::{FeedbackRecorder, FeedbackSettings, FeedbackStore};
use slack_gateway::ingress::Ingress;
use slack_gateway::worker::{Worker, WorkerSettings, APOLOGY};
use tests::harness::{AGENT_ALIAS_ID, AGENT_ID};
use tests::resources::{TEST_BOT_TOKEN, TEST_SIGNING_SECRET};
use tests::slack_events::signed;

/// Feedback is not what these tests are about: no turn is ever found for a reply.
struct NoFeedback;

#[async_trait]
impl FeedbackStore for NoFeedback {
    async fn turn_for_reply(&self, _: &str, _: &str, _: &str) -> shared::Result<Option<TurnRecord>> {
        Ok(None)
    }
    async fn turn(&self, _: &shared::domain::ThreadRef, _: &str) -> shared::Result<Option<TurnRecord>> {
        Ok(None)
    }
    async fn has_feedback(&self, _: &TurnRecord, _: &FeedbackEntry) -> shared::Result<bool> {
        Ok(false)
    }
    async fn add_feedback(&self, _: &TurnRecord, _: &FeedbackEntry) -> shared::Result<bool> {
        Ok(false)
    }
    async fn remove_feedback(&self, _: &TurnRecord, _: &FeedbackEntry) -> shared::Result<bool> {
        Ok(false)
    }
}

/// The gateway over in-memory ports.
struct Memory {
    ingress: Ingress,
    worker: Worker,
    queue: Arc<MemoryQueue>,
    chat: Arc<MemoryChat>,
    agent: Arc<ScriptedAgent>,
    sinks: Arc<MemorySinks>,
    conversations: Arc<MemoryConversations>,
}

fn answer(text: &str) -> AgentStep {
    let call = |step: &str, input, output| ModelCall {
        model_id: "anthropic.claude-3-5-sonnet-20241022-v2:0".into(),
        input_tokens: input,
        output_tokens: output,
        step: step.into(),
        ..ModelCall::default()
    };
    AgentStep::Answer(Box::new(AgentTurn {
        text: text.into(),
        model_calls: vec![call("orchestration", 1200, 80), call("post_processing", 300, 40)],
        ..AgentTurn::default()
    }))
}

impl Memory {
    async fn new(steps: Vec<AgentStep>) -> Memory {
        let (queue, chat) = (Arc::new(MemoryQueue::default()), Arc::new(MemoryChat::default()));
        let agent = Arc::new(ScriptedAgent::new(steps));
        let (sinks, conversations) = (Arc::new(MemorySinks::default()), Arc::new(MemoryConversations::default()));
        let ingress = Ingress::new(
            Arc::new(StaticSecret::new(TEST_SIGNING_SECRET, TEST_BOT_TOKEN)),
            Arc::new(MemoryDedup::default()),
            queue.clone(),
            Metrics::capture("BedrockUsage").0,
        )
        .await
        .unwrap_or_else(|e| panic!("ingress: {e}"));
        let mut settings = WorkerSettings::new(AGENT_ID, AGENT_ALIAS_ID);
        settings.agent_backoff.base = Duration::from_millis(1);
        let worker = Worker {
            agent: agent.clone(),
            chat: chat.clone(),
            analytics: sinks.clone(),
            usage: sinks.clone(),
            conversations: conversations.clone(),
            spend: Arc::new(FixedSpend::default()),
            prices: Arc::new(shared::pricing::PriceTable::embedded()),
            metrics: Metrics::capture("BedrockUsage").0,
            settings,
            feedback: Arc::new(FeedbackRecorder {
                store: Arc::new(NoFeedback),
                sink: None,
                settings: FeedbackSettings::default(),
                agent_id: AGENT_ID.into(),
                agent_alias_id: AGENT_ALIAS_ID.into(),
            }),
            files: Arc::new(MemoryFiles::default()),
            home: None,
        };
        Memory { ingress, worker, queue, chat, agent, sinks, conversations }
    }

    /// A user's mention through the ingress: the queued work item.
    async fn mention(&self, tag: &str) -> SqsMessage {
        let (req, body) = signed("slack/app_mention", TEST_SIGNING_SECRET, tag, "CTURN");
        let team = body["team_id"].as_str().unwrap_or_default().to_string();
        self.chat.set_user(
            body["event"]["user"].as_str().unwrap_or_default(),
            SlackUser { team_id: Some(team), ..SlackUser::default() },
        );
        let resp = self.ingress.handle(&req).await;
        assert_eq!(resp.status_code, 200, "{:?}", resp.body);
        let (group, dedup, work) = self.queue.sent().pop().unwrap_or_else(|| panic!("nothing queued"));
        let mut msg = SqsMessage::default();
        msg.message_id = Some(dedup);
        msg.body = Some(work);
        msg.attributes = HashMap::from([
            ("MessageGroupId".to_string(), group),
            ("ApproximateReceiveCount".to_string(), "1".to_string()),
        ]);
        msg
    }

    /// One delivery of `msg`; true when the worker handed it back to the queue.
    async fn deliver(&self, msg: &SqsMessage, deadline: Option<Instant>) -> bool {
        let mut event = SqsEvent::default();
        event.records = vec![msg.clone()];
        !self.worker.handle_batch(event, deadline).await.batch_item_failures.is_empty()
    }

    fn posted(&self) -> Vec<String> {
        let mut texts = self.chat.texts("chat.postMessage");
        texts.extend(self.chat.texts("chat.update"));
        texts
    }

    fn only_turn(&self) -> TurnRecord {
        let turns = self.conversations.turns();
        assert_eq!(turns.len(), 1, "{turns:?}");
        turns[0].clone()
    }
}

/// Tokens of the distinct usage records (a record may be published again under its stable
/// `record_id`, which token-logging counts once).
fn tokens(records: &[shared::domain::UsageRecord]) -> u64 {
    let distinct: HashMap<&str, &shared::domain::UsageRecord> =
        records.iter().map(|r| (r.record_id.as_str(), r)).collect();
    distinct.values().flat_map(|r| &r.calls).map(|c| c.input_tokens + c.output_tokens).sum()
}

#[tokio::test]
async fn a_mention_is_answered_once_with_its_records() {
    let m = Memory::new(vec![answer("The runbook says restart the **worker**.")]).await;
    let msg = m.mention("-turn-ok").await;
    assert!(!m.deliver(&msg, None).await);
    assert!(m.posted().iter().any(|t| t.contains("restart the *worker*")), "{:?}", m.posted());
    assert_eq!(m.agent.requests().len(), 1);
    assert_eq!(m.sinks.events().len(), 1);
    assert_eq!(tokens(&m.sinks.records()), 1620, "both model calls in the usage record");
    let turn = m.only_turn();
    assert_eq!(turn.status, TurnStatus::Answered);
    assert!(turn.pending_analytics.is_none() && turn.pending_usage.is_none(), "{turn:?}");
}

#[tokio::test]
async fn a_redelivered_turn_is_neither_asked_nor_answered_again() {
    let m = Memory::new(vec![answer("once")]).await;
    let msg = m.mention("-turn-again").await;
    assert!(!m.deliver(&msg, None).await);
    let posts = m.posted().len();
    assert!(!m.deliver(&msg, None).await);
    assert_eq!(m.agent.requests().len(), 1);
    assert_eq!(m.posted().len(), posts);
    assert_eq!(m.sinks.records().len(), 1, "the usage record is not published twice");
}

#[tokio::test]
async fn a_failed_post_is_redelivered_and_posts_the_kept_answer() {
    let m = Memory::new(vec![answer("kept for the retry")]).await;
    let msg = m.mention("-turn-5xx").await;
    m.chat.fail("chat.postMessage", "http_500");
    assert!(m.deliver(&msg, None).await, "a 5xx sends the work item back");
    assert!(!m.deliver(&msg, None).await);
    assert_eq!(m.agent.requests().len(), 1, "the redelivery posts without asking the agent again");
    assert_eq!(m.posted().iter().filter(|t| t.contains("kept for the retry")).count(), 1);
    assert_eq!(m.only_turn().status, TurnStatus::Answered);
    assert_eq!(tokens(&m.sinks.records()), 1620);
}

#[tokio::test]
async fn a_permanent_slack_error_ends_the_turn_failed_without_redelivery() {
    let m = Memory::new(vec![answer("nobody will see this")]).await;
    let msg = m.mention("-turn-gone").await;
    for _ in 0..3 {
        m.chat.fail("chat.postMessage", "channel_not_found");
        m.chat.fail("chat.update", "channel_not_found");
    }
    assert!(!m.deliver(&msg, None).await);
    let turn = m.only_turn();
    assert_eq!(turn.status, TurnStatus::Failed);
    assert_eq!(turn.error_code.as_deref(), Some("slack_channel_not_found"), "{turn:?}");
    assert_eq!(m.agent.requests().len(), 1);
    assert_eq!(tokens(&m.sinks.records()), 1620, "the tokens spent are still recorded");
}

#[tokio::test]
async fn copies_the_sinks_refuse_stay_on_the_turn() {
    let m = Memory::new(vec![answer("answered anyway")]).await;
    let msg = m.mention("-turn-outage").await;
    m.sinks.refuse(100, 100);
    assert!(!m.deliver(&msg, None).await, "an analytics outage never blocks the answer");
    assert!(m.posted().iter().any(|t| t.contains("answered anyway")));
    let turn = m.only_turn();
    assert!(turn.pending_analytics.is_some() && turn.pending_usage.is_some(), "{turn:?}");
    let kept: Value = serde_json::from_str(turn.pending_usage.as_deref().unwrap_or("null")).unwrap_or(Value::Null);
    assert_eq!(kept["calls"].as_array().map(Vec::len), Some(2), "{kept}");
}

#[tokio::test]
async fn an_agent_that_refuses_the_request_gets_the_apology() {
    let refused = AgentError::new(AgentErrorKind::Rejected, "ValidationException", "bad", vec![]);
    let m = Memory::new(vec![AgentStep::Fail(refused)]).await;
    let msg = m.mention("-turn-refused").await;
    assert!(!m.deliver(&msg, None).await);
    assert_eq!(m.agent.requests().len(), 1, "a rejected request is not retried");
    assert!(m.posted().iter().any(|t| t == APOLOGY), "{:?}", m.posted());
    assert_eq!(m.only_turn().status, TurnStatus::Failed);
}

#[tokio::test]
async fn no_attempt_starts_that_cannot_finish_before_the_deadline() {
    let m = Memory::new(vec![answer("too late")]).await;
    let msg = m.mention("-turn-late").await;
    // 12 s left: less than the 10 s reserve plus the 5 s an attempt needs.
    assert!(!m.deliver(&msg, Some(Instant::now() + Duration::from_secs(12))).await);
    assert_eq!(m.agent.requests().len(), 0);
    assert!(m.posted().iter().any(|t| t == APOLOGY), "{:?}", m.posted());
    let turn = m.only_turn();
    assert_eq!((turn.status, turn.error_code.as_deref()), (TurnStatus::Failed, Some("AgentTimeout")));
}

#[tokio::test]
async fn a_stalled_agent_is_cut_at_the_reserve_and_apologised_for() {
    let m = Memory::new(vec![AgentStep::Stall(Duration::from_secs(60))]).await;
    let msg = m.mention("-turn-stall").await;
    let deadline = Instant::now() + Duration::from_millis(15_300);
    assert!(!m.deliver(&msg, Some(deadline)).await);
    assert!(Instant::now() < deadline, "the apology came before the deadline");
    assert_eq!(m.agent.requests().len(), 1);
    assert!(m.posted().iter().any(|t| t == APOLOGY), "{:?}", m.posted());
    assert_eq!(m.only_turn().error_code.as_deref(), Some("AgentTimeout"));
}
