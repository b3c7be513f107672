//! Slack's native streaming (`chat.startStream` / `appendStream` / `stopStream`): a slow turn's
//! answer streams into one message as Markdown (Slack renders it), appended at a bounded rate,
//! and the stop adds the rest with the sources. Decided per turn, once: where Slack refuses to
//! stream (the workspace, the channel, the recipient) or is busy (startStream is Tier 2, about
//! 20 calls a minute per workspace), the turn takes the edited-message way of the parent module.
//! An append Slack refuses mid-way (it cut the stream off) ends the appends; the full answer then
//! replaces the message with `chat.update` (or is posted when that fails too), once.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use shared::ports::{ChatError, StreamContent, StreamTarget, MAX_STREAM_CALL_CHARS};
use tokio::sync::watch;
use tokio::time::Instant;
use tracing::{info, warn};

use super::append::{split_at_chars, Appender};
use super::{wait_until, LiveReply, Progress};

/// How long a container that learnt the workspace cannot stream (auto mode) stops trying.
pub const REFUSAL_MEMORY: Duration = Duration::from_secs(600);

/// SLACK_NATIVE_STREAMING: whether slow answers use Slack's streaming methods.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum NativeMode {
    /// Never: the early message edited with `chat.update`.
    Off,
    /// Try per turn; after a refusal that holds for the whole workspace, this container stops
    /// trying for [`REFUSAL_MEMORY`].
    #[default]
    Auto,
    /// Try on every slow turn, whatever earlier turns met.
    On,
}

impl std::str::FromStr for NativeMode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "auto" | "" => Ok(NativeMode::Auto),
            "true" | "on" | "yes" | "1" => Ok(NativeMode::On),
            "false" | "off" | "no" | "0" => Ok(NativeMode::Off),
            other => Err(format!("expected true, false or auto, got {other:?}")),
        }
    }
}

/// What this container learnt about streaming in its workspace (shared by its turns).
#[derive(Debug, Clone, Default)]
pub struct NativeGate(Arc<Mutex<Option<std::time::Instant>>>);

impl NativeGate {
    /// Whether turns may try to stream now.
    pub fn open(&self) -> bool {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).is_none_or(|until| std::time::Instant::now() >= until)
    }

    fn close_for(&self, period: Duration) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = Some(std::time::Instant::now() + period);
    }
}

/// Who a natively streamed reply is for, and the container's gate.
#[derive(Debug, Clone)]
pub struct Native {
    pub mode: NativeMode,
    /// The asking user and their team (Slack requires them outside DMs).
    pub recipient_user_id: String,
    pub recipient_team_id: String,
    pub gate: NativeGate,
}

/// The turn's stream, once started.
#[derive(Debug)]
pub(super) struct Stream {
    ts: String,
    appender: Appender,
    /// Slack refused an append (or the agent started over): no more appends; the final answer
    /// replaces the message the edited-message way.
    broken: bool,
}

/// The Markdown a natively streamed answer ends as: the answer, its sources, then the notice.
pub fn stream_markdown(answer: &str, sources: &[String], notice: Option<&str>) -> String {
    let mut out = answer.to_string();
    let mut seen: Vec<&str> = Vec::new();
    for s in sources.iter().map(|s| s.trim()).filter(|s| !s.is_empty()) {
        if !seen.contains(&s) {
            seen.push(s);
        }
    }
    if !seen.is_empty() {
        out.push_str("\n\n**Sources**");
        for s in seen {
            out.push_str("\n- ");
            out.push_str(s);
        }
    }
    if let Some(n) = notice.filter(|n| !n.trim().is_empty()) {
        out.push_str("\n\n");
        out.push_str(n);
    }
    out
}

/// The blocks under a streamed answer when it stops: Slack's feedback buttons, as on every
/// final answer (the press names the thread and the user's message, like a posted answer's).
pub fn closing_blocks(thread_ts: &str, message_ts: &str) -> Option<Vec<serde_json::Value>> {
    Some(vec![crate::interactive::feedback_block(thread_ts, message_ts)])
}

impl LiveReply {
    /// Whether this turn tries to stream natively.
    pub(super) fn native_wanted(&self) -> bool {
        self.native.as_ref().is_some_and(|n| n.mode != NativeMode::Off && n.gate.open()) && self.ts().is_none()
    }

    /// After the delay: starts the stream at the first text. Returns false when Slack would not
    /// stream here (the caller posts the early message instead); true when the turn is done
    /// with the pump (streamed, or finished before any text came).
    pub(super) async fn pump_native(&self, rx: &mut watch::Receiver<Progress>) -> bool {
        let Some(native) = self.native.as_ref() else { return false };
        let Some(text) = first_text(rx).await else { return true };
        let (opening, _) = split_at_chars(&text, MAX_STREAM_CALL_CHARS);
        let target = StreamTarget {
            channel: &self.thread.channel_id,
            thread_ts: &self.thread.thread_ts,
            recipient_user_id: &native.recipient_user_id,
            recipient_team_id: &native.recipient_team_id,
        };
        let ts = match self.chat.start_stream(&target, &StreamContent::markdown(opening)).await {
            Ok(ts) => ts,
            Err(e) => {
                self.streaming_refused(native, &e);
                return false;
            }
        };
        info!(reply_ts = %ts, "slow turn: streaming natively");
        self.set_ts(&ts);
        let appender = Appender::new(opening, Instant::now().into_std(), self.settings.update_interval);
        *self.stream() = Some(Stream { ts: ts.clone(), appender, broken: false });
        self.remember(&ts).await;
        self.append_loop(rx, &ts).await;
        true
    }

    fn streaming_refused(&self, native: &Native, e: &ChatError) {
        if native.mode == NativeMode::Auto && e.refused_streaming_everywhere() {
            native.gate.close_for(REFUSAL_MEMORY);
        }
        warn!(slack_method = e.method, error = %e.error, "slack did not start the stream; editing an early message instead");
    }

    /// Appends the new text at most every interval until the work is done or Slack cuts off.
    async fn append_loop(&self, rx: &mut watch::Receiver<Progress>, ts: &str) {
        loop {
            let next = self.stream().as_ref().map(|s| s.appender.next_at());
            let Some(next) = next else { return };
            if !wait_until(rx, Instant::from_std(next)).await || !wait_for_news(rx, self).await {
                return;
            }
            let text = rx.borrow().text.clone();
            let now = Instant::now().into_std();
            let piece = {
                let mut guard = self.stream();
                let Some(stream) = guard.as_mut() else { return };
                if !stream.appender.extends(&text) {
                    // The agent started over after text was shown: the answer replaces it at the end.
                    stream.broken = true;
                    return;
                }
                stream.appender.due(&text, now).map(str::to_owned)
            };
            let Some(piece) = piece else { continue };
            match self.chat.append_stream(&self.thread.channel_id, ts, &StreamContent::markdown(&piece)).await {
                Ok(()) => self.with_stream(|s| s.appender.appended(&piece, now)),
                Err(e) if e.error == "ratelimited" => {
                    warn!("chat.appendStream rate limited; the text waits for the next append");
                    self.with_stream(|s| s.appender.back_off(now));
                }
                Err(e) => {
                    warn!(error = %e, "slack cut the stream off; the full answer replaces it at the end");
                    self.with_stream(|s| s.broken = true);
                    return;
                }
            }
        }
    }

    /// Ends the turn's stream with `closing` (the whole answer's Markdown): the rest of it, then
    /// the stop. Some(ts) when the stream holds the answer; None when the caller must put the
    /// answer in the message the other way (no stream, cut off, or an answer that does not
    /// continue what was streamed, such as the apology).
    pub(super) async fn finish_stream(&self, closing: Option<&str>) -> Option<String> {
        let stream = self.stream().take()?;
        let channel = self.thread.channel_id.as_str();
        let plan = closing.filter(|_| !stream.broken).and_then(|c| stream.appender.closing(c));
        if let Some((appends, last)) = plan {
            let mut landed = true;
            for piece in appends {
                if let Err(e) = self.chat.append_stream(channel, &stream.ts, &StreamContent::markdown(piece)).await {
                    warn!(error = %e, "could not append the end of the answer; replacing the message");
                    landed = false;
                    break;
                }
            }
            if landed {
                let blocks = closing_blocks(&self.thread.thread_ts, &self.message_ts);
                let end = StreamContent::markdown(last);
                match self.chat.stop_stream(channel, &stream.ts, &end, blocks.as_deref()).await {
                    Ok(()) => return Some(stream.ts),
                    Err(e) => warn!(error = %e, "could not stop the stream with the answer; replacing the message"),
                }
            }
        }
        self.close_stream(&stream.ts).await;
        None
    }

    /// Takes message `ts` out of its streaming state (best effort: Slack refuses a message that
    /// is not streaming, which is fine), so it can be edited like any other.
    pub(super) async fn close_stream(&self, ts: &str) {
        let nothing = StreamContent::default();
        if let Err(e) = self.chat.stop_stream(&self.thread.channel_id, ts, &nothing, None).await {
            info!(error = %e.error, "no open stream to close");
        }
    }

    /// A redelivered turn's message may be a stream an earlier delivery left open: closed once.
    pub(super) async fn close_earlier_stream(&self) {
        let native = self.native.as_ref().is_some_and(|n| n.mode != NativeMode::Off);
        let earlier = self.earlier.lock().unwrap_or_else(PoisonError::into_inner).take();
        if let Some(ts) = earlier.filter(|_| native) {
            self.close_stream(&ts).await;
        }
    }

    pub(super) fn stream(&self) -> std::sync::MutexGuard<'_, Option<Stream>> {
        self.stream.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn with_stream(&self, f: impl FnOnce(&mut Stream)) {
        if let Some(s) = self.stream().as_mut() {
            f(s);
        }
    }
}

/// Waits for the answer's first text; None when the work finished first.
async fn first_text(rx: &mut watch::Receiver<Progress>) -> Option<String> {
    loop {
        {
            let p = rx.borrow_and_update();
            if p.done {
                return None;
            }
            if !p.text.trim().is_empty() {
                return Some(p.text.clone());
            }
        }
        rx.changed().await.ok()?;
    }
}

/// Waits until there is text not yet streamed; false when the work finished first.
async fn wait_for_news(rx: &mut watch::Receiver<Progress>, live: &LiveReply) -> bool {
    loop {
        {
            let p = rx.borrow_and_update();
            if p.done {
                return false;
            }
            let streamed = live.stream().as_ref().map(|s| s.appender.streamed().len()).unwrap_or(usize::MAX);
            if p.text.len() != streamed {
                return true;
            }
        }
        if rx.changed().await.is_err() {
            return false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_switch_reads_true_false_or_auto() {
        assert_eq!("auto".parse(), Ok(NativeMode::Auto));
        assert_eq!("TRUE".parse(), Ok(NativeMode::On));
        assert_eq!("false".parse(), Ok(NativeMode::Off));
        assert!("sometimes".parse::<NativeMode>().is_err());
    }

    #[test]
    fn the_closing_markdown_lists_each_source_once_then_the_notice() {
        let sources = vec!["https://wiki/a".to_string(), " https://wiki/a ".into(), "runbook.pdf".into()];
        let md = stream_markdown("Answer.", &sources, Some("_85% of your budget_"));
        assert_eq!(md, "Answer.\n\n**Sources**\n- https://wiki/a\n- runbook.pdf\n\n_85% of your budget_");
        assert_eq!(stream_markdown("Answer.", &[], None), "Answer.");
    }

    #[test]
    fn a_workspace_refusal_closes_the_gate_for_a_while() {
        let gate = NativeGate::default();
        assert!(gate.open());
        gate.close_for(Duration::from_secs(60));
        assert!(!gate.open());
        assert!(!gate.clone().open(), "clones share what was learnt");
    }
}
