//! Ports: the narrow interfaces domain code depends on. Adapters in `aws` and `slack`
//! implement them; tests may implement them in memory.

use std::time::Duration;

use async_trait::async_trait;

use crate::domain::{AnalyticsEvent, ThreadRef, TurnStatus, UsageRecord};
use crate::ledger::{LedgerError, LedgerTurn, RollupUpdate, WriteOutcome};
use crate::slack::SlackSecret;
use crate::Result;

mod agent;
mod stream;

pub use agent::*;
pub use stream::*;

/// What claiming a dedupe key found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// The caller holds the key: pending until confirmed, released, or its lease runs out.
    Acquired,
    /// The key was confirmed by someone: the work was handed on already.
    Taken,
    /// Another caller holds a pending lease on the key, until `until_ms` (epoch ms).
    Pending { until_ms: i64 },
}

/// Remembers keys for a while. A claim is first a short pending lease, confirmed once the work
/// was handed on; a lease that is neither confirmed nor released lapses by itself, so a crash
/// or a failed release between claim and hand-over never blocks the key for long.
#[async_trait]
pub trait DedupStore: Send + Sync {
    /// Claims `key` for `owner` as pending until `lease` from now, unless a live claim exists.
    async fn claim(&self, key: &str, owner: &str, lease: Duration) -> Result<Claim>;
    /// Makes `owner`'s claim on `key` a confirmed one, kept for `ttl`. Ok(false) when the key is
    /// no longer `owner`'s (its lease lapsed and someone else claimed it).
    async fn confirm(&self, key: &str, owner: &str, ttl: Duration) -> Result<bool>;
    /// Drops `owner`'s claim on `key` (the work could not be handed on); a key that is no longer
    /// `owner`'s is left alone.
    async fn release(&self, key: &str, owner: &str) -> Result<()>;
}

/// A FIFO queue of accepted work.
#[async_trait]
pub trait WorkQueue: Send + Sync {
    /// Enqueues `body` in FIFO group `group_id`, deduplicated by `dedup_id`.
    async fn enqueue(&self, group_id: &str, dedup_id: &str, body: &str) -> Result<()>;
}

/// Where analytics events go (Firehose).
#[async_trait]
pub trait AnalyticsSink: Send + Sync {
    async fn publish(&self, event: &AnalyticsEvent) -> Result<()>;
}

/// Where usage records go (SQS usage queue).
#[async_trait]
pub trait UsageSink: Send + Sync {
    async fn publish(&self, record: &UsageRecord) -> Result<()>;
}

/// What the conversations table knows about one turn.
#[derive(Debug, Clone, PartialEq)]
pub struct TurnRecord {
    pub thread: ThreadRef,
    /// The user message's ts (the turn key inside the thread).
    pub message_ts: String,
    pub event_id: String,
    pub user_id: String,
    pub status: TurnStatus,
    pub received_at_ms: i64,
    pub finished_at_ms: Option<i64>,
    pub reply_ts: Option<String>,
    pub outcome: Option<String>,
    pub error_code: Option<String>,
    /// Records not yet delivered (JSON), kept here so a failure to publish loses nothing.
    pub pending_analytics: Option<String>,
    pub pending_usage: Option<String>,
}

impl TurnRecord {
    /// A turn as first recorded, when its message is received.
    pub fn received(
        thread: ThreadRef,
        message_ts: impl Into<String>,
        event_id: impl Into<String>,
        user_id: impl Into<String>,
        received_at_ms: i64,
    ) -> TurnRecord {
        TurnRecord {
            thread,
            message_ts: message_ts.into(),
            event_id: event_id.into(),
            user_id: user_id.into(),
            status: TurnStatus::Received,
            received_at_ms,
            finished_at_ms: None,
            reply_ts: None,
            outcome: None,
            error_code: None,
            pending_analytics: None,
            pending_usage: None,
        }
    }
}

/// How beginning a turn went.
#[derive(Debug, Clone, PartialEq)]
pub enum TurnStart {
    /// A new turn: go ahead.
    New,
    /// A previous delivery got as far as `Received` without finishing: go ahead again.
    Resumed,
    /// The turn already finished: do not answer again.
    Finished(Box<TurnRecord>),
}

/// The conversations table: one record per turn, keyed by thread and message ts.
#[async_trait]
pub trait ConversationStore: Send + Sync {
    /// Records that a turn was received, unless it already was.
    async fn begin_turn(&self, turn: &TurnRecord) -> Result<TurnStart>;
    /// Records how the turn finished.
    async fn finish_turn(&self, turn: &TurnRecord) -> Result<()>;
    /// Clears the pending analytics/usage copies once they were delivered.
    async fn clear_pending(&self, thread: &ThreadRef, message_ts: &str, analytics: bool, usage: bool) -> Result<()>;
    /// The most recent turn in the thread other than `except_ts`, if any.
    async fn last_turn(&self, thread: &ThreadRef, except_ts: &str) -> Result<Option<TurnRecord>>;
    /// The stored turn of `message_ts` in `thread`, if any.
    async fn turn(&self, thread: &ThreadRef, message_ts: &str) -> Result<Option<TurnRecord>>;
    /// Records `reply_ts` on a turn that is still running (the early message of a streamed
    /// answer), so a redelivery edits that message instead of posting a second answer.
    async fn record_reply(&self, thread: &ThreadRef, message_ts: &str, reply_ts: &str) -> Result<()>;
    /// Keeps `answer` (the worker's JSON) on a turn that is still running, before it is posted:
    /// a redelivery after a failed post posts it without invoking the agent again. Removed by
    /// [`Self::finish_turn`].
    async fn keep_answer(&self, thread: &ThreadRef, message_ts: &str, answer: &str) -> Result<()>;
    /// The answer kept on the turn of `message_ts`, if any.
    async fn kept_answer(&self, thread: &ThreadRef, message_ts: &str) -> Result<Option<String>>;
}

/// Why a user's file could not be downloaded from Slack.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FileFetchError {
    /// The URL (or a redirect) points somewhere other than an allowed Slack file host.
    #[error("not an allowed file URL: {0}")]
    NotAllowed(String),
    /// The body is larger than the limit (checked while it streams).
    #[error("file larger than {limit} bytes")]
    TooLarge { limit: u64 },
    /// More redirects than a Slack download needs.
    #[error("too many redirects")]
    TooManyRedirects,
    /// Slack answered with an error status.
    #[error("http {0}")]
    Http(u16),
    /// Slack answered with a web page instead of the file (typically: no `files:read` scope).
    #[error("a web page instead of the file")]
    NotAFile,
    /// Timeout, connection or read failure.
    #[error("transport: {0}")]
    Transport(&'static str),
}

/// A downloaded file.
#[derive(Clone, PartialEq, Eq)]
pub struct DownloadedFile {
    pub bytes: Vec<u8>,
    /// The Content-Type Slack sent, if any.
    pub content_type: Option<String>,
}

impl std::fmt::Debug for DownloadedFile {
    // The size, never the content.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DownloadedFile")
            .field("len", &self.bytes.len())
            .field("content_type", &self.content_type)
            .finish()
    }
}

/// Slack files: users' uploads in, the agent's files out.
#[async_trait]
pub trait FileTransfer: Send + Sync {
    /// Downloads a user's upload from `url` (only from allowed Slack file hosts), at most
    /// `max_bytes`.
    async fn download(&self, url: &str, max_bytes: u64) -> std::result::Result<DownloadedFile, FileFetchError>;
    /// Shares `bytes` as `filename` in the thread; returns the Slack file id.
    async fn upload(
        &self,
        channel: &str,
        thread_ts: &str,
        filename: &str,
        bytes: &[u8],
    ) -> std::result::Result<String, ChatError>;
}

/// A suggested prompt of an assistant thread: the button's title and the message it sends.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SuggestedPrompt {
    pub title: String,
    pub message: String,
}

/// A message already in a Slack thread.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThreadMessage {
    pub user: Option<String>,
    pub bot: bool,
    pub ts: String,
    pub text: String,
}

/// What users.info says about who a user is (for the access check).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SlackUser {
    /// The user's home team.
    pub team_id: Option<String>,
    /// The user's Enterprise Grid org, if any.
    pub enterprise_id: Option<String>,
    /// A multi-channel guest.
    pub is_restricted: bool,
    /// A single-channel guest.
    pub is_ultra_restricted: bool,
    /// A user of another organisation the workspace shares no relationship with (Slack Connect).
    pub is_stranger: bool,
}

/// A Slack Web API failure.
#[derive(Debug, Clone, thiserror::Error)]
#[error("slack {method}: {error}")]
pub struct ChatError {
    pub method: &'static str,
    /// Slack's `error` string, or `http_<status>` / `transport`.
    pub error: String,
}

impl ChatError {
    /// Whether Slack refused the message's Block Kit blocks (`invalid_blocks`,
    /// `invalid_blocks_format`, `only_one_table_allowed`, `msg_blocks_too_long`): nothing was
    /// posted, and the same message without blocks can be sent.
    pub fn refused_blocks(&self) -> bool {
        self.error.starts_with("invalid_blocks")
            || matches!(self.error.as_str(), "only_one_table_allowed" | "msg_blocks_too_long")
    }

    /// Whether sending the same call again can never succeed (the channel is gone or closed to
    /// the bot, the app is uninstalled or its token revoked, the message is refused): such a
    /// turn ends as failed instead of going back to the queue. Anything not known to be
    /// permanent (5xx, transport, rate limits, unknown codes) counts as transient.
    pub fn is_permanent(&self) -> bool {
        self.is_auth_failure()
            || self.refused_content()
            || matches!(
                self.error.as_str(),
                "channel_not_found"
                    | "not_in_channel"
                    | "is_archived"
                    | "account_inactive"
                    | "team_access_not_granted"
                    | "ekm_access_denied"
                    | "missing_scope"
                    | "no_permission"
                    | "not_allowed_token_type"
                    | "restricted_action"
                    | "restricted_action_read_only_channel"
                    | "restricted_action_thread_only_channel"
                    | "restricted_action_non_threadable_channel"
                    | "cannot_reply_to_message"
                    | "thread_locked"
                    | "message_not_found"
                    | "cant_update_message"
                    | "edit_window_closed"
                    | "invalid_arguments"
                    | "http_400"
                    | "http_403"
                    | "http_404"
                    | "http_410"
                    | "method_deprecated"
                    | "deprecated_endpoint"
                    | "two_factor_setup_required"
                    | "org_login_required"
            )
    }

    /// Whether Slack refused the bot token itself (revoked, rotated away, missing): the token
    /// may have been rotated, so it is worth re-reading once.
    pub fn is_auth_failure(&self) -> bool {
        matches!(self.error.as_str(), "invalid_auth" | "token_revoked" | "not_authed" | "token_expired")
    }

    /// Whether Slack refused this message's content (too long, empty, bad blocks): a different
    /// message (an apology) may still be posted in the same place.
    pub fn refused_content(&self) -> bool {
        self.refused_blocks() || matches!(self.error.as_str(), "msg_too_long" | "no_text" | "too_many_attachments")
    }
}

/// The Slack Web API, as far as this product uses it.
#[async_trait]
pub trait ChatClient: Send + Sync {
    /// Posts `text` (mrkdwn) in the thread; returns the new message's ts.
    async fn post_message(&self, channel: &str, thread_ts: &str, text: &str) -> std::result::Result<String, ChatError>;
    /// Posts a message shown as Block Kit `blocks`, with `text` as its notification and
    /// fallback text. Clients that cannot send blocks post the text alone.
    async fn post_message_with_blocks(
        &self,
        channel: &str,
        thread_ts: &str,
        text: &str,
        _blocks: &[serde_json::Value],
    ) -> std::result::Result<String, ChatError> {
        self.post_message(channel, thread_ts, text).await
    }
    async fn add_reaction(&self, channel: &str, ts: &str, name: &str) -> std::result::Result<(), ChatError>;
    async fn remove_reaction(&self, channel: &str, ts: &str, name: &str) -> std::result::Result<(), ChatError>;
    /// Replaces the text of a message the bot posted (`chat.update`), waiting out rate limits.
    async fn update_message(&self, channel: &str, ts: &str, text: &str) -> std::result::Result<(), ChatError>;
    /// Replaces a message the bot posted with `blocks` and `text` (as [`Self::update_message`]).
    /// Clients that cannot send blocks replace the text alone.
    async fn update_message_with_blocks(
        &self,
        channel: &str,
        ts: &str,
        text: &str,
        _blocks: &[serde_json::Value],
    ) -> std::result::Result<(), ChatError> {
        self.update_message(channel, ts, text).await
    }
    /// One `chat.update` attempt: a rate limit or failure comes back at once (error
    /// `ratelimited`...), for progress edits that are better skipped than queued.
    async fn try_update_message(&self, channel: &str, ts: &str, text: &str) -> std::result::Result<(), ChatError>;
    /// Sets the assistant thread's status (`assistant.threads.setStatus`); `""` clears it.
    async fn set_assistant_status(
        &self,
        channel: &str,
        thread_ts: &str,
        status: &str,
    ) -> std::result::Result<(), ChatError>;
    /// Sets an assistant thread's suggested prompts under `title`
    /// (`assistant.threads.setSuggestedPrompts`, scope assistant:write, at most 4 prompts).
    async fn set_suggested_prompts(
        &self,
        _channel: &str,
        _thread_ts: &str,
        _title: &str,
        _prompts: &[SuggestedPrompt],
    ) -> std::result::Result<(), ChatError> {
        Err(ChatError { method: "assistant.threads.setSuggestedPrompts", error: "not_supported".into() })
    }
    /// Sets an assistant thread's title in the app's history (`assistant.threads.setTitle`).
    async fn set_assistant_title(
        &self,
        _channel: &str,
        _thread_ts: &str,
        _title: &str,
    ) -> std::result::Result<(), ChatError> {
        Err(ChatError { method: "assistant.threads.setTitle", error: "not_supported".into() })
    }
    /// Publishes `user`'s own Home tab (`views.publish`, a `home` view of `blocks`).
    async fn publish_home(&self, _user: &str, _blocks: &[serde_json::Value]) -> std::result::Result<(), ChatError> {
        Err(ChatError { method: "views.publish", error: "not_supported".into() })
    }
    /// The thread's messages, oldest first, at most `limit`.
    async fn thread_replies(
        &self,
        channel: &str,
        thread_ts: &str,
        limit: u32,
    ) -> std::result::Result<Vec<ThreadMessage>, ChatError>;
    /// Shows `text` to `user` alone in the thread (`chat.postEphemeral`). Clients that cannot
    /// post ephemeral messages fail.
    async fn post_ephemeral(
        &self,
        _channel: &str,
        _user: &str,
        _thread_ts: &str,
        _text: &str,
    ) -> std::result::Result<(), ChatError> {
        Err(ChatError { method: "chat.postEphemeral", error: "not_supported".into() })
    }
    /// Who a user is (`users.info`, scope users:read): team, guest flags. Clients that cannot
    /// look users up fail, and the access check then refuses.
    async fn user_info(&self, _user: &str) -> std::result::Result<SlackUser, ChatError> {
        Err(ChatError { method: "users.info", error: "not_supported".into() })
    }
    /// Starts a streamed reply in the thread (`chat.startStream`, one attempt: a refusal or a
    /// rate limit comes back at once and the caller answers the other way); returns its ts.
    /// Clients that cannot stream refuse with `not_supported`.
    async fn start_stream(
        &self,
        _target: &StreamTarget<'_>,
        _content: &StreamContent,
    ) -> std::result::Result<String, ChatError> {
        Err(ChatError { method: "chat.startStream", error: "not_supported".into() })
    }
    /// Adds to a streamed reply (`chat.appendStream`, one attempt: appending is not idempotent).
    async fn append_stream(
        &self,
        _channel: &str,
        _ts: &str,
        _content: &StreamContent,
    ) -> std::result::Result<(), ChatError> {
        Err(ChatError { method: "chat.appendStream", error: "not_supported".into() })
    }
    /// Ends a streamed reply with its last content and `blocks` under it (`chat.stopStream`),
    /// waiting out rate limits: the end of the answer must land.
    async fn stop_stream(
        &self,
        _channel: &str,
        _ts: &str,
        _content: &StreamContent,
        _blocks: Option<&[serde_json::Value]>,
    ) -> std::result::Result<(), ChatError> {
        Err(ChatError { method: "chat.stopStream", error: "not_supported".into() })
    }
}

/// Where the Slack app's credentials are read from.
#[async_trait]
pub trait SlackSecretSource: Send + Sync {
    async fn load(&self) -> Result<SlackSecret>;
}

/// Reads a user's spend from the usage rollups.
#[async_trait]
pub trait UsageReader: Send + Sync {
    /// The user's spend on `day` (UTC) and in that day's month.
    async fn user_spend(
        &self,
        team_id: &str,
        user_id: &str,
        day: chrono::NaiveDate,
    ) -> Result<crate::rollups::UserSpend>;
}

/// A user's day rollups over a date range ("my usage" periods).
#[async_trait]
pub trait UsageHistory: Send + Sync {
    /// The day rollups of the user between `from` and `to` (inclusive, UTC), oldest first; days
    /// without usage have no rollup.
    async fn days(
        &self,
        team_id: &str,
        user_id: &str,
        from: chrono::NaiveDate,
        to: chrono::NaiveDate,
    ) -> Result<Vec<(chrono::NaiveDate, crate::rollups::Spend)>>;
}

/// The rollups as reports and the admin API read them: a day partition or a user's range at a
/// time, so the work grows with days x keys and never with the number of turns.
#[async_trait]
pub trait RollupStore: Send + Sync {
    /// Every rollup of one UTC day.
    async fn day(&self, day: chrono::NaiveDate) -> Result<crate::rollups::DayRollups>;
    /// One user's day x agent x model spend between two days (inclusive).
    async fn user_usage(
        &self,
        team_id: &str,
        user_id: &str,
        from: chrono::NaiveDate,
        to: chrono::NaiveDate,
    ) -> Result<Vec<crate::rollups::UserUsage>>;
    /// One user's day totals between two days (inclusive), oldest first.
    async fn user_days(
        &self,
        team_id: &str,
        user_id: &str,
        from: chrono::NaiveDate,
        to: chrono::NaiveDate,
    ) -> Result<Vec<(chrono::NaiveDate, crate::rollups::Spend)>>;
    /// Every user ever seen.
    async fn known_users(&self) -> Result<Vec<crate::rollups::KnownUser>>;
    /// Every agent ever seen.
    async fn known_agents(&self) -> Result<Vec<String>>;
}

/// The priced usage ledger.
#[async_trait]
pub trait TokenLedger: Send + Sync {
    /// Writes `turns` (each only if not in the ledger yet) and `rollups`, all or nothing. `token`
    /// makes a repeat of the same request idempotent when the first one's outcome was unknown.
    async fn write(
        &self,
        turns: &[&LedgerTurn],
        rollups: &[RollupUpdate],
        token: &str,
    ) -> Result<WriteOutcome, LedgerError>;
}
