//! In-memory implementations of the gateway's ports, for fast tests of the logic behind them
//! (feature `test-support`; never in a Lambda build). Each keeps what it was sent, and the ones
//! whose real counterpart can fail take failures to play back, so a test can refuse a call the
//! way the service would. moto and the HTTP fakes stay the end-to-end layer.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;

use crate::domain::{AgentTurn, AnalyticsEvent, ThreadRef, UsageRecord};
use crate::ports::{
    AgentClient, AgentError, AgentRequest, AnalyticsSink, ChatClient, ChatError, Claim, ConversationStore, DedupStore,
    DownloadedFile, FileFetchError, FileTransfer, SlackSecretSource, SlackUser, ThreadMessage, TurnRecord, TurnStart,
    UsageReader, UsageSink, WorkQueue,
};
use crate::rollups::UserSpend;
use crate::slack::SlackSecret;
use crate::{Error, Result};

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The error a DynamoDB conditional write answers when its condition does not hold.
fn condition_failed(operation: &'static str) -> Error {
    Error::Aws {
        service: "dynamodb",
        operation,
        code: "ConditionalCheckFailedException".into(),
        message: "The conditional request failed".into(),
        retryable: false,
    }
}

/// A service error that may pass (throttling), as a test's scripted failure.
pub fn transient(service: &'static str, operation: &'static str) -> Error {
    Error::Aws { service, operation, code: "ThrottlingException".into(), message: "scripted".into(), retryable: true }
}

mod chat;
pub use chat::{ChatCall, MemoryChat};

type TurnKey = (String, String, String, String);

fn key(thread: &ThreadRef, message_ts: &str) -> TurnKey {
    (thread.team_id.clone(), thread.channel_id.clone(), thread.thread_ts.clone(), message_ts.to_string())
}

/// The conversations table, with the adapter's conditions: a turn begins once, a running turn
/// takes a reply ts and a kept answer, finishing removes the kept answer.
#[derive(Debug, Default)]
pub struct MemoryConversations {
    turns: Mutex<BTreeMap<TurnKey, TurnRecord>>,
    kept: Mutex<HashMap<TurnKey, String>>,
}

impl MemoryConversations {
    /// Every stored turn, in key order.
    pub fn turns(&self) -> Vec<TurnRecord> {
        lock(&self.turns).values().cloned().collect()
    }
}

#[async_trait]
impl ConversationStore for MemoryConversations {
    async fn begin_turn(&self, turn: &TurnRecord) -> Result<TurnStart> {
        let mut turns = lock(&self.turns);
        match turns.get(&key(&turn.thread, &turn.message_ts)) {
            None => {
                turns.insert(key(&turn.thread, &turn.message_ts), turn.clone());
                Ok(TurnStart::New)
            }
            Some(existing) if existing.status.is_final() => Ok(TurnStart::Finished(Box::new(existing.clone()))),
            Some(_) => Ok(TurnStart::Resumed),
        }
    }

    async fn finish_turn(&self, turn: &TurnRecord) -> Result<()> {
        lock(&self.turns).insert(key(&turn.thread, &turn.message_ts), turn.clone());
        lock(&self.kept).remove(&key(&turn.thread, &turn.message_ts));
        Ok(())
    }

    async fn clear_pending(&self, thread: &ThreadRef, message_ts: &str, analytics: bool, usage: bool) -> Result<()> {
        if let Some(t) = lock(&self.turns).get_mut(&key(thread, message_ts)) {
            if analytics {
                t.pending_analytics = None;
            }
            if usage {
                t.pending_usage = None;
            }
        }
        Ok(())
    }

    async fn last_turn(&self, thread: &ThreadRef, except_ts: &str) -> Result<Option<TurnRecord>> {
        let turns = lock(&self.turns);
        let thread_key = key(thread, "");
        Ok(turns.values().rev().find(|t| key(&t.thread, "") == thread_key && t.message_ts != except_ts).cloned())
    }

    async fn turn(&self, thread: &ThreadRef, message_ts: &str) -> Result<Option<TurnRecord>> {
        Ok(lock(&self.turns).get(&key(thread, message_ts)).cloned())
    }

    async fn record_reply(&self, thread: &ThreadRef, message_ts: &str, reply_ts: &str) -> Result<()> {
        if let Some(t) = lock(&self.turns).get_mut(&key(thread, message_ts)) {
            if !t.status.is_final() {
                t.reply_ts = Some(reply_ts.to_string());
            }
        }
        Ok(())
    }

    async fn keep_answer(&self, thread: &ThreadRef, message_ts: &str, answer: &str) -> Result<()> {
        match lock(&self.turns).get(&key(thread, message_ts)) {
            Some(t) if !t.status.is_final() => {
                lock(&self.kept).insert(key(thread, message_ts), answer.to_string());
                Ok(())
            }
            _ => Err(condition_failed("UpdateItem")),
        }
    }

    async fn kept_answer(&self, thread: &ThreadRef, message_ts: &str) -> Result<Option<String>> {
        Ok(lock(&self.kept).get(&key(thread, message_ts)).cloned())
    }
}

/// One scripted answer of [`ScriptedAgent`].
#[derive(Debug, Clone)]
pub enum AgentStep {
    Answer(Box<AgentTurn>),
    Fail(AgentError),
    /// Never answers within `Duration` (a stalled stream); the caller's deadline must cut it.
    Stall(Duration),
}

/// The agent: plays back its steps in order (the last one again when they run out), records
/// every request.
#[derive(Debug, Default)]
pub struct ScriptedAgent {
    steps: Mutex<VecDeque<AgentStep>>,
    requests: Mutex<Vec<AgentRequest>>,
}

impl ScriptedAgent {
    /// An agent that answers `steps` in order.
    pub fn new(steps: impl IntoIterator<Item = AgentStep>) -> Self {
        ScriptedAgent { steps: Mutex::new(steps.into_iter().collect()), requests: Mutex::default() }
    }

    /// The requests received, in order.
    pub fn requests(&self) -> Vec<AgentRequest> {
        lock(&self.requests).clone()
    }
}

#[async_trait]
impl AgentClient for ScriptedAgent {
    async fn invoke(&self, request: &AgentRequest) -> std::result::Result<AgentTurn, AgentError> {
        lock(&self.requests).push(request.clone());
        let step = {
            let mut steps = lock(&self.steps);
            if steps.len() > 1 {
                steps.pop_front()
            } else {
                steps.front().cloned()
            }
        };
        match step {
            Some(AgentStep::Answer(turn)) => Ok(*turn),
            Some(AgentStep::Fail(e)) => Err(e),
            Some(AgentStep::Stall(d)) => {
                tokio::time::sleep(d).await;
                Ok(AgentTurn::default())
            }
            None => Ok(AgentTurn::default()),
        }
    }
}

/// The analytics stream and the usage queue: keep what they were sent, or refuse the next
/// `n` publications ([`MemorySinks::refuse`]).
#[derive(Debug, Default)]
pub struct MemorySinks {
    events: Mutex<Vec<AnalyticsEvent>>,
    records: Mutex<Vec<UsageRecord>>,
    refuse_events: Mutex<usize>,
    refuse_records: Mutex<usize>,
}

impl MemorySinks {
    /// The next `events` analytics publications and `records` usage publications fail.
    pub fn refuse(&self, events: usize, records: usize) {
        *lock(&self.refuse_events) = events;
        *lock(&self.refuse_records) = records;
    }

    pub fn events(&self) -> Vec<AnalyticsEvent> {
        lock(&self.events).clone()
    }

    pub fn records(&self) -> Vec<UsageRecord> {
        lock(&self.records).clone()
    }
}

fn refused(left: &Mutex<usize>) -> bool {
    let mut n = lock(left);
    let refuse = *n > 0;
    *n = n.saturating_sub(1);
    refuse
}

#[async_trait]
impl AnalyticsSink for MemorySinks {
    async fn publish(&self, event: &AnalyticsEvent) -> Result<()> {
        if refused(&self.refuse_events) {
            return Err(transient("firehose", "PutRecord"));
        }
        lock(&self.events).push(event.clone());
        Ok(())
    }
}

#[async_trait]
impl UsageSink for MemorySinks {
    async fn publish(&self, record: &UsageRecord) -> Result<()> {
        if refused(&self.refuse_records) {
            return Err(transient("sqs", "SendMessage"));
        }
        lock(&self.records).push(record.clone());
        Ok(())
    }
}

/// A user's spend, the same for everyone.
#[derive(Debug, Default)]
pub struct FixedSpend(pub Mutex<UserSpend>);

#[async_trait]
impl UsageReader for FixedSpend {
    async fn user_spend(&self, _team: &str, _user: &str, _day: chrono::NaiveDate) -> Result<UserSpend> {
        Ok(*lock(&self.0))
    }
}

/// The dedupe table: leases and confirmed keys, with the adapter's rules (a live claim blocks,
/// only the owner confirms or releases).
#[derive(Debug, Default)]
pub struct MemoryDedup {
    /// key -> (owner, confirmed, lease end as epoch ms).
    claims: Mutex<HashMap<String, (String, bool, i64)>>,
}

#[async_trait]
impl DedupStore for MemoryDedup {
    async fn claim(&self, key: &str, owner: &str, lease: Duration) -> Result<Claim> {
        let now = chrono::Utc::now().timestamp_millis();
        let mut claims = lock(&self.claims);
        match claims.get(key) {
            Some((_, true, _)) => Ok(Claim::Taken),
            Some((_, false, until)) if *until > now => Ok(Claim::Pending { until_ms: *until }),
            _ => {
                let until = now + i64::try_from(lease.as_millis()).unwrap_or(i64::MAX);
                claims.insert(key.to_string(), (owner.to_string(), false, until));
                Ok(Claim::Acquired)
            }
        }
    }

    async fn confirm(&self, key: &str, owner: &str, _ttl: Duration) -> Result<bool> {
        match lock(&self.claims).get_mut(key) {
            Some(claim) if claim.0 == owner => {
                claim.1 = true;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn release(&self, key: &str, owner: &str) -> Result<()> {
        let mut claims = lock(&self.claims);
        if claims.get(key).is_some_and(|c| c.0 == owner) {
            claims.remove(key);
        }
        Ok(())
    }
}

/// The work queue: keeps (group, dedup id, body), refuses the next `n` sends when told to.
#[derive(Debug, Default)]
pub struct MemoryQueue {
    sent: Mutex<Vec<(String, String, String)>>,
    refuse: Mutex<usize>,
}

impl MemoryQueue {
    /// The next `n` sends fail.
    pub fn refuse(&self, n: usize) {
        *lock(&self.refuse) = n;
    }

    pub fn sent(&self) -> Vec<(String, String, String)> {
        lock(&self.sent).clone()
    }
}

#[async_trait]
impl WorkQueue for MemoryQueue {
    async fn enqueue(&self, group_id: &str, dedup_id: &str, body: &str) -> Result<()> {
        if refused(&self.refuse) {
            return Err(transient("sqs", "SendMessage"));
        }
        lock(&self.sent).push((group_id.into(), dedup_id.into(), body.into()));
        Ok(())
    }
}

/// Slack files: no user file can be fetched; uploads are kept as (channel, filename, bytes).
#[derive(Debug, Default)]
pub struct MemoryFiles {
    uploads: Mutex<Vec<(String, String, Vec<u8>)>>,
}

impl MemoryFiles {
    pub fn uploads(&self) -> Vec<(String, String, Vec<u8>)> {
        lock(&self.uploads).clone()
    }
}

#[async_trait]
impl FileTransfer for MemoryFiles {
    async fn download(&self, url: &str, _max: u64) -> std::result::Result<DownloadedFile, FileFetchError> {
        Err(FileFetchError::NotAllowed(url.to_string()))
    }

    async fn upload(
        &self,
        channel: &str,
        _thread_ts: &str,
        filename: &str,
        bytes: &[u8],
    ) -> std::result::Result<String, ChatError> {
        let mut uploads = lock(&self.uploads);
        uploads.push((channel.into(), filename.into(), bytes.to_vec()));
        Ok(format!("F{:08}", uploads.len()))
    }
}

/// The Slack secret, fixed.
#[derive(Debug, Clone)]
pub struct StaticSecret(pub SlackSecret);

impl StaticSecret {
    pub fn new(signing_secret: &str, bot_token: &str) -> Self {
        StaticSecret(SlackSecret {
            signing_secret: signing_secret.to_string().into(),
            bot_token: bot_token.to_string().into(),
        })
    }
}

#[async_trait]
impl SlackSecretSource for StaticSecret {
    async fn load(&self) -> Result<SlackSecret> {
        Ok(self.0.clone())
    }
}
