//! Streaming long answers: a turn still running after a short delay gets an early message (the
//! text so far, or a placeholder), edited with `chat.update` at a bounded rate as the agent's
//! chunks arrive; the final answer then replaces it. Fast turns post once, as before.
//!
//! Rate limits: `chat.update` is a Tier 3 method (50+ calls a minute per workspace), so one
//! message is edited at most every [`MIN_UPDATE_INTERVAL`]; progress edits are single attempts,
//! and a rate-limited one is skipped (the next waits twice as long) rather than queued. Only the
//! final edit waits a rate limit out: the answer must land.
//!
//! Redeliveries: the early message's ts is recorded on the turn as soon as it is posted, so a
//! delivery that resumes the turn after a crash edits that message instead of answering twice.
//!
//! Where Slack streams natively (`native`: chat.startStream and friends, SLACK_NATIVE_STREAMING),
//! a slow turn streams its Markdown into one message instead, and this module's edited early
//! message is the fallback, decided per turn; `append` is how the text is cut into calls.

mod append;
mod native;

pub use append::{split_at_chars, Appender};
pub use native::{closing_blocks, stream_markdown, Native, NativeGate, NativeMode, REFUSAL_MEMORY};

use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use shared::domain::ThreadRef;
use shared::ports::{ChatClient, ChatError, ConversationStore};
use shared::slack::{split_message, to_mrkdwn, Reply, MAX_MESSAGE_CHARS};
use tokio::sync::watch;
use tokio::time::Instant;
use tracing::{info, warn};

/// The early message while no text has arrived yet.
pub const PLACEHOLDER: &str = "_Working on it…_";
/// Appended to the text so far while the answer is still coming.
pub const MORE_MARKER: &str = " …";
/// The most often one message is edited: Slack's Tier 3 allows about 50 `chat.update` a minute.
pub const MIN_UPDATE_INTERVAL: Duration = Duration::from_millis(1200);

/// When and how often a running turn's answer is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamSettings {
    /// STREAM_REPLIES: off = every answer is posted once, when complete.
    pub enabled: bool,
    /// STREAM_DELAY_MS: a turn still running this long after the agent was called gets an
    /// early message.
    pub delay: Duration,
    /// STREAM_UPDATE_INTERVAL_MS: the shortest time between two edits of the message (or two
    /// appends to a native stream).
    pub update_interval: Duration,
    /// SLACK_NATIVE_STREAMING: whether slow answers use Slack's streaming methods.
    pub native: NativeMode,
}

impl Default for StreamSettings {
    fn default() -> Self {
        StreamSettings {
            enabled: true,
            delay: Duration::from_millis(1500),
            update_interval: Duration::from_millis(1500),
            native: NativeMode::Auto,
        }
    }
}

impl StreamSettings {
    /// Reads STREAM_REPLIES, STREAM_DELAY_MS, STREAM_UPDATE_INTERVAL_MS, SLACK_NATIVE_STREAMING; a
    /// malformed value, or an interval faster than Slack allows, fails init naming the variable.
    pub fn from_env() -> shared::Result<Self> {
        use shared::config::parsed;
        let defaults = StreamSettings::default();
        let delay_ms: u64 = parsed("STREAM_DELAY_MS", defaults.delay.as_millis() as u64)?;
        let interval_ms: u64 = parsed("STREAM_UPDATE_INTERVAL_MS", defaults.update_interval.as_millis() as u64)?;
        let settings = StreamSettings {
            enabled: parsed("STREAM_REPLIES", true)?,
            delay: Duration::from_millis(delay_ms),
            update_interval: Duration::from_millis(interval_ms),
            native: match shared::config::optional("SLACK_NATIVE_STREAMING") {
                None => defaults.native,
                Some(v) => {
                    v.parse().map_err(|e| shared::Error::Config(format!("SLACK_NATIVE_STREAMING is not valid: {e}")))?
                }
            },
        };
        settings.validate()?;
        Ok(settings)
    }

    /// Refuses an update interval faster than Slack's documented `chat.update` rate.
    pub fn validate(&self) -> shared::Result<()> {
        if self.update_interval < MIN_UPDATE_INTERVAL {
            return Err(shared::Error::Config(format!(
                "STREAM_UPDATE_INTERVAL_MS must be at least {} (chat.update allows about 50 calls a minute): {}",
                MIN_UPDATE_INTERVAL.as_millis(),
                self.update_interval.as_millis()
            )));
        }
        Ok(())
    }
}

/// The answer text so far, shared by the agent's text sink and the pump.
#[derive(Debug, Default)]
struct Progress {
    text: String,
    /// Bumped on every change, so the pump knows whether an edit would show anything new.
    version: u64,
    /// The turn's work is over: the pump stops.
    done: bool,
}

/// The reply of one turn while it is being written.
pub struct LiveReply {
    chat: Arc<dyn ChatClient>,
    conversations: Arc<dyn ConversationStore>,
    thread: ThreadRef,
    /// The user's message (the turn's key).
    message_ts: String,
    settings: StreamSettings,
    progress: watch::Sender<Progress>,
    /// The message the reply lives in, once posted (or found on the turn by a redelivery).
    ts: Mutex<Option<String>>,
    /// Native streaming, when the turn may use it.
    native: Option<Native>,
    /// The turn's native stream, while it is open.
    stream: Mutex<Option<native::Stream>>,
    /// An earlier delivery's message, until it is closed as a stream (it may have been one).
    earlier: Mutex<Option<String>>,
}

impl LiveReply {
    /// The reply to `message_ts` in `thread`; `existing_ts` is a message an earlier delivery of
    /// the same turn already posted (it is edited, never posted again).
    pub fn new(
        chat: Arc<dyn ChatClient>,
        conversations: Arc<dyn ConversationStore>,
        thread: ThreadRef,
        message_ts: &str,
        settings: StreamSettings,
        existing_ts: Option<String>,
    ) -> Self {
        LiveReply {
            chat,
            conversations,
            thread,
            message_ts: message_ts.to_string(),
            settings,
            progress: watch::Sender::new(Progress::default()),
            ts: Mutex::new(existing_ts.clone()),
            native: None,
            stream: Mutex::new(None),
            earlier: Mutex::new(existing_ts),
        }
    }

    /// Lets the turn stream natively (when its settings allow) to the asking user.
    pub fn with_native(mut self, native: Native) -> Self {
        self.native = Some(native).filter(|_| self.settings.native != NativeMode::Off);
        self
    }

    /// Appends answer text as it arrives (the agent's text sink).
    pub fn push(&self, delta: &str) {
        if delta.is_empty() {
            return;
        }
        self.progress.send_modify(|p| {
            p.text.push_str(delta);
            p.version += 1;
        });
    }

    /// A new agent attempt starts: the text of the failed one is dropped.
    pub fn restart(&self) {
        self.progress.send_modify(|p| {
            if !p.text.is_empty() {
                p.text.clear();
                p.version += 1;
            }
        });
    }

    /// The message the reply lives in, if one was posted.
    pub fn ts(&self) -> Option<String> {
        self.ts.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    fn set_ts(&self, ts: &str) {
        *self.ts.lock().unwrap_or_else(PoisonError::into_inner) = Some(ts.to_string());
    }

    /// Runs the turn's `work` while showing its progress; returns the work's result once the
    /// last progress edit is done (so the final answer is always the last edit).
    pub async fn run<T>(&self, work: impl Future<Output = T>) -> T {
        // Runs again (a retry of the whole turn) stream into the same message.
        self.progress.send_modify(|p| p.done = false);
        let work = async {
            let out = work.await;
            self.progress.send_modify(|p| p.done = true);
            out
        };
        if !self.settings.enabled {
            return work.await;
        }
        let (out, ()) = tokio::join!(work, self.pump());
        out
    }

    /// Posts the early message after the delay, then edits it as text arrives.
    async fn pump(&self) {
        let mut rx = self.progress.subscribe();
        if !wait_until(&mut rx, Instant::now() + self.settings.delay).await {
            return;
        }
        if self.native_wanted() && self.pump_native(&mut rx).await {
            return;
        }
        self.close_earlier_stream().await;
        let (text, mut shown) = snapshot(&rx);
        let body = preview(&text);
        match self.ts() {
            // An earlier delivery posted it: show this run's progress there.
            Some(ts) => {
                if let Err(e) = self.chat.try_update_message(&self.thread.channel_id, &ts, &body).await {
                    warn!(error = %e, "could not refresh the message of a resumed turn");
                }
            }
            None => match self.chat.post_message(&self.thread.channel_id, &self.thread.thread_ts, &body).await {
                Ok(ts) => {
                    self.set_ts(&ts);
                    info!(reply_ts = %ts, "slow turn: early message posted");
                    self.remember(&ts).await;
                }
                Err(e) => {
                    // The final answer is posted as usual.
                    warn!(error = %e, "could not post the early message; the answer will be posted when complete");
                    return;
                }
            },
        }
        let Some(ts) = self.ts() else { return };
        let mut next = Instant::now() + self.settings.update_interval;
        loop {
            if !wait_until(&mut rx, next).await {
                return;
            }
            // Nothing new to show: wait for text (or the end).
            loop {
                {
                    let p = rx.borrow_and_update();
                    if p.done {
                        return;
                    }
                    if p.version != shown {
                        break;
                    }
                }
                if rx.changed().await.is_err() {
                    return;
                }
            }
            let (text, version) = snapshot(&rx);
            match self.chat.try_update_message(&self.thread.channel_id, &ts, &preview(&text)).await {
                Ok(()) => {
                    shown = version;
                    next = Instant::now() + self.settings.update_interval;
                }
                Err(e) if e.error == "ratelimited" => {
                    warn!("chat.update rate limited; skipping progress edits for a while");
                    next = Instant::now() + self.settings.update_interval * 2;
                }
                Err(e) => {
                    warn!(error = %e, "could not edit the streamed message; will try again with more text");
                    next = Instant::now() + self.settings.update_interval;
                }
            }
        }
    }

    /// Records the early message on the turn (best effort: without it a redelivery after a
    /// crash would post a second answer, which is what happened before streaming anyway).
    async fn remember(&self, ts: &str) {
        if let Err(e) = self.conversations.record_reply(&self.thread, &self.message_ts, ts).await {
            warn!(error = %e, "could not record the early message on the turn");
        }
    }

    /// Ends the turn's reply with the answer: into its native stream when one is open and
    /// `closing` (the answer's Markdown) continues it, else as [`Self::deliver`] does (into the
    /// stream's message, replacing it). Returns the ts of the reply's first message.
    pub async fn deliver_answer(&self, parts: Vec<Reply>, closing: Option<&str>) -> Result<String, ChatError> {
        if let Some(ts) = self.finish_stream(closing).await {
            return Ok(ts);
        }
        self.deliver(parts).await
    }

    /// Sends the final message parts: the first replaces the early message when there is one
    /// (or is posted), the rest are posted after it. Returns the ts of the first.
    ///
    /// A part with blocks (a table) is sent with them; when Slack refuses them, the same part
    /// goes again as text (its tables as code blocks), and the turn's other parts go as text too.
    /// A refused call posts or edits nothing, so the answer is never lost nor shown twice.
    pub async fn deliver(&self, parts: Vec<Reply>) -> Result<String, ChatError> {
        self.finish_stream(None).await;
        self.close_earlier_stream().await;
        let more = parts.len() > 1;
        let mut blocks_ok = true;
        let mut parts = parts.into_iter();
        let Some(first) = parts.next() else {
            return Ok(self.ts().unwrap_or_default());
        };
        let first_ts = match self.ts() {
            Some(ts) => match self.update_part(&ts, &first, &mut blocks_ok).await {
                Ok(()) => ts,
                Err(e) => {
                    // Deleted by someone, or Slack refuses the edit: the answer must still land.
                    warn!(error = %e, "could not put the answer into the early message; posting it");
                    self.post_part(&first, &mut blocks_ok).await?
                }
            },
            None => {
                let ts = self.post_part(&first, &mut blocks_ok).await?;
                if more {
                    // A failure posting the rest redelivers the turn: it must find this one.
                    self.remember(&ts).await;
                }
                ts
            }
        };
        self.set_ts(&first_ts);
        for part in parts {
            self.post_part(&part, &mut blocks_ok).await?;
        }
        Ok(first_ts)
    }

    /// Posts one part in the thread: with its blocks while Slack takes them, else as text.
    async fn post_part(&self, part: &Reply, blocks_ok: &mut bool) -> Result<String, ChatError> {
        let channel = self.thread.channel_id.as_str();
        let thread_ts = self.thread.thread_ts.as_str();
        if let Some(blocks) = part.blocks.as_deref().filter(|_| *blocks_ok) {
            match self.chat.post_message_with_blocks(channel, thread_ts, &part.text, blocks).await {
                Err(e) if e.refused_blocks() => blocks_refused(&e, blocks_ok),
                other => return other,
            }
        }
        self.chat.post_message(channel, thread_ts, &part.text).await
    }

    /// Replaces message `ts` with one part: with its blocks while Slack takes them, else as text.
    async fn update_part(&self, ts: &str, part: &Reply, blocks_ok: &mut bool) -> Result<(), ChatError> {
        let channel = self.thread.channel_id.as_str();
        if let Some(blocks) = part.blocks.as_deref().filter(|_| *blocks_ok) {
            match self.chat.update_message_with_blocks(channel, ts, &part.text, blocks).await {
                Err(e) if e.refused_blocks() => blocks_refused(&e, blocks_ok),
                other => return other,
            }
        }
        self.chat.update_message(channel, ts, &part.text).await
    }
}

/// Slack refused a part's blocks: warns (the error code only, never the content) and sends the
/// rest of the turn as text.
fn blocks_refused(e: &ChatError, blocks_ok: &mut bool) {
    warn!(slack_method = e.method, error = %e.error, "slack refused the answer's table blocks; sending it as text");
    *blocks_ok = false;
}

/// The text so far and its version.
fn snapshot(rx: &watch::Receiver<Progress>) -> (String, u64) {
    let p = rx.borrow();
    (p.text.clone(), p.version)
}

/// Waits until `deadline`; false when the work finished first.
async fn wait_until(rx: &mut watch::Receiver<Progress>, deadline: Instant) -> bool {
    loop {
        if rx.borrow_and_update().done {
            return false;
        }
        tokio::select! {
            _ = tokio::time::sleep_until(deadline) => return !rx.borrow().done,
            changed = rx.changed() => {
                if changed.is_err() {
                    return false;
                }
            }
        }
    }
}

/// The early message: the text so far in mrkdwn (its first message's worth) with a marker
/// saying more is coming, or the placeholder while there is no text.
pub fn preview(markdown: &str) -> String {
    if markdown.trim().is_empty() {
        return PLACEHOLDER.to_string();
    }
    let limit = MAX_MESSAGE_CHARS - MORE_MARKER.chars().count();
    let first = split_message(&to_mrkdwn(markdown), limit).into_iter().next().unwrap_or_default();
    if first.trim().is_empty() {
        return PLACEHOLDER.to_string();
    }
    format!("{}{MORE_MARKER}", first.trim_end())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn previews_show_the_text_so_far_with_a_marker() {
        assert_eq!(preview(""), PLACEHOLDER);
        assert_eq!(preview("  \n"), PLACEHOLDER);
        assert_eq!(preview("Hello **world**"), "Hello *world* …");
        let long = "word ".repeat(2000);
        let p = preview(&long);
        assert!(p.chars().count() <= MAX_MESSAGE_CHARS && p.ends_with(MORE_MARKER), "{}", p.len());
    }

    #[test]
    fn intervals_faster_than_slack_allows_are_refused() {
        let mut s = StreamSettings::default();
        assert!(s.validate().is_ok());
        s.update_interval = Duration::from_millis(500);
        let e = s.validate().unwrap_err().to_string();
        assert!(e.contains("STREAM_UPDATE_INTERVAL_MS"), "{e}");
    }
}
