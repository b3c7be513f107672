//! "Working on it" while a turn waits and runs: Slack's assistant thread status ("is
//! thinking...") in assistant threads, a reaction on the user's message everywhere else.
//!
//! Both are hints. A Slack error here is logged and never fails or delays a turn for long: the
//! status call is a single attempt (no rate-limit waits), and the ingress bounds it with a timeout.

use std::sync::Arc;
use std::time::Duration;

use shared::ports::ChatClient;
use tracing::{debug, warn};

use crate::work::MessageWork;

/// The status text shown in assistant threads by default.
pub const DEFAULT_ASSISTANT_STATUS: &str = "is thinking...";
/// The reaction shown on the user's message by default.
pub const DEFAULT_STATUS_REACTION: &str = "hourglass_flowing_sand";

/// SLACK_ASSISTANT: whether the app is a Slack assistant app (Agents & AI Apps feature).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AssistantMode {
    /// Never the assistant status: always the reaction.
    Off,
    /// The assistant status in assistant threads (as the event says), the reaction elsewhere.
    #[default]
    Auto,
    /// The assistant status in every thread (Slack accepts it with `chat:write` in channels too).
    On,
}

impl std::str::FromStr for AssistantMode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "auto" | "" => Ok(AssistantMode::Auto),
            "true" | "on" | "yes" | "1" => Ok(AssistantMode::On),
            "false" | "off" | "no" | "0" => Ok(AssistantMode::Off),
            other => Err(format!("expected true, false or auto, got {other:?}")),
        }
    }
}

/// How the status is shown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusSettings {
    pub assistant: AssistantMode,
    /// The assistant thread status text.
    pub assistant_status: String,
    /// The reaction (without colons).
    pub reaction: String,
}

impl Default for StatusSettings {
    fn default() -> Self {
        StatusSettings {
            assistant: AssistantMode::Auto,
            assistant_status: DEFAULT_ASSISTANT_STATUS.into(),
            reaction: DEFAULT_STATUS_REACTION.into(),
        }
    }
}

impl StatusSettings {
    /// SLACK_ASSISTANT (true | false | auto, default auto), STATUS_REACTION; a malformed value
    /// fails init naming the variable.
    pub fn from_env() -> shared::Result<Self> {
        let mut settings = StatusSettings::default();
        if let Some(v) = shared::config::optional("SLACK_ASSISTANT") {
            settings.assistant =
                v.parse().map_err(|e| shared::Error::Config(format!("SLACK_ASSISTANT is not valid: {e}")))?;
        }
        if let Some(r) = shared::config::optional("STATUS_REACTION") {
            let r = r.trim().trim_matches(':').to_string();
            if r.is_empty() || r.contains(char::is_whitespace) {
                return Err(shared::Error::Config(format!("STATUS_REACTION is not a reaction name: {r:?}")));
            }
            settings.reaction = r;
        }
        Ok(settings)
    }
}

/// Which status a [`StatusIndicator::show`] put up, so the same one is taken down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shown {
    Assistant,
    Reaction,
    Nothing,
}

/// Shows and clears the working status of one message.
#[derive(Clone)]
pub struct StatusIndicator {
    chat: Arc<dyn ChatClient>,
    settings: StatusSettings,
}

impl StatusIndicator {
    pub fn new(chat: Arc<dyn ChatClient>, settings: StatusSettings) -> Self {
        StatusIndicator { chat, settings }
    }

    /// The settings in use.
    pub fn settings(&self) -> &StatusSettings {
        &self.settings
    }

    /// Whether `m` gets the assistant status rather than the reaction.
    pub fn uses_assistant_status(&self, m: &MessageWork) -> bool {
        match self.settings.assistant {
            AssistantMode::Off => false,
            AssistantMode::On => true,
            AssistantMode::Auto => m.assistant_thread,
        }
    }

    /// Puts the status up. When the assistant status is refused (the app is not an assistant
    /// app, a missing scope), the reaction is used instead so the user still sees something.
    pub async fn show(&self, m: &MessageWork) -> Shown {
        if self.uses_assistant_status(m) {
            let thread = m.thread();
            match self
                .chat
                .set_assistant_status(&thread.channel_id, &thread.thread_ts, &self.settings.assistant_status)
                .await
            {
                Ok(()) => return Shown::Assistant,
                Err(e) => warn!(error = %e, "could not set the assistant thread status; using the reaction"),
            }
        }
        match self.chat.add_reaction(&m.channel_id, &m.ts, &self.settings.reaction).await {
            Ok(()) => Shown::Reaction,
            Err(e) => {
                warn!(error = %e, "could not add the status reaction");
                Shown::Nothing
            }
        }
    }

    /// Takes down what [`Self::show`] put up.
    pub async fn clear(&self, m: &MessageWork, shown: Shown) {
        let result = match shown {
            Shown::Assistant => {
                let thread = m.thread();
                self.chat.set_assistant_status(&thread.channel_id, &thread.thread_ts, "").await
            }
            Shown::Reaction => self.chat.remove_reaction(&m.channel_id, &m.ts, &self.settings.reaction).await,
            Shown::Nothing => Ok(()),
        };
        if let Err(e) = result {
            warn!(error = %e, ?shown, "could not clear the status");
        }
    }
}

/// The ingress's status for a message it just queued: the user sees it even while the turn
/// waits in the queue behind the worker's concurrency limit. Bounded so that Slack's 3 s
/// acknowledgement is never at risk; skipped when it would take longer.
#[derive(Clone)]
pub struct QueuedStatus {
    pub indicator: StatusIndicator,
    pub timeout: Duration,
}

impl QueuedStatus {
    /// Shows the status of a queued message within the timeout. Thread replies the bot may not
    /// answer (channel replies without a mention) get none: the worker decides those.
    pub async fn show(&self, m: &MessageWork) -> Option<Shown> {
        if m.requires_bot_thread {
            return None;
        }
        let started = std::time::Instant::now();
        match tokio::time::timeout(self.timeout, self.indicator.show(m)).await {
            Ok(shown) => {
                debug!(elapsed_ms = started.elapsed().as_millis() as u64, ?shown, "queued-turn status shown");
                Some(shown)
            }
            Err(_) => {
                warn!(timeout_ms = self.timeout.as_millis() as u64, "queued-turn status skipped: Slack was too slow");
                None
            }
        }
    }
}

/// INGRESS_STATUS (default true) and INGRESS_STATUS_TIMEOUT_MS (default 700, at most 1500).
pub fn queued_status_from_env() -> shared::Result<Option<(StatusSettings, Duration)>> {
    use shared::config::parsed;
    if !parsed("INGRESS_STATUS", true)? {
        return Ok(None);
    }
    let ms: u64 = parsed("INGRESS_STATUS_TIMEOUT_MS", 700)?;
    if ms == 0 || ms > 1500 {
        return Err(shared::Error::Config(format!(
            "INGRESS_STATUS_TIMEOUT_MS must be 1..=1500 (Slack's 3 s acknowledgement comes first): {ms}"
        )));
    }
    Ok(Some((StatusSettings::from_env()?, Duration::from_millis(ms))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assistant_modes_parse() {
        assert_eq!("auto".parse::<AssistantMode>(), Ok(AssistantMode::Auto));
        assert_eq!("TRUE".parse::<AssistantMode>(), Ok(AssistantMode::On));
        assert_eq!("false".parse::<AssistantMode>(), Ok(AssistantMode::Off));
        assert!("sometimes".parse::<AssistantMode>().unwrap_err().contains("sometimes"));
    }
}
