//! Slack's assistant threads (the Agents & AI Apps container): suggested prompts when a user
//! opens a thread, and the thread's title from its first question.
//!
//! The ingress only classifies `assistant_thread_started` and queues it; the worker sets the
//! prompts. The work queue's group is the thread, so the prompts are set before the thread's
//! first question is answered, the 3 s acknowledgement never waits on Slack, and Slack's retries
//! are absorbed by the ingress's dedupe (setting the same prompts twice would be harmless
//! anyway: the call replaces them). Both calls are hints: a failure is logged and counted,
//! never retried through the queue (it would hold up the thread's first question).

use serde_json::Value;
use shared::ports::{ChatClient, SuggestedPrompt};
use shared::telemetry::Metrics;
use tracing::{info, warn};

use crate::classify::Decision;
use crate::work::{AssistantThreadWork, MessageWork, WorkItem};

/// The heading of the suggested prompts.
pub const PROMPTS_TITLE: &str = "Try asking";
/// Slack shows at most this many suggested prompts.
pub const MAX_PROMPTS: usize = 4;
/// A thread title longer than this is cut at a word boundary, with "…".
pub const MAX_TITLE_CHARS: usize = 60;

/// SUGGESTED_PROMPTS: the prompts offered in a new assistant thread (`[]` = none).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssistantSettings {
    pub prompts: Vec<SuggestedPrompt>,
}

impl Default for AssistantSettings {
    fn default() -> Self {
        AssistantSettings { prompts: default_prompts() }
    }
}

/// Helpdesk questions most teams get (the template's default too).
pub fn default_prompts() -> Vec<SuggestedPrompt> {
    let p = |title: &str, message: &str| SuggestedPrompt { title: title.into(), message: message.into() };
    vec![
        p("Reset my password", "How do I reset my password?"),
        p("VPN trouble", "My VPN keeps disconnecting. What should I check?"),
        p("Request software", "How do I request new software for my laptop?"),
        p("My usage", "How much have I used the assistant this month?"),
    ]
}

impl AssistantSettings {
    /// SUGGESTED_PROMPTS (a JSON array of `{"title", "message"}`, at most 4; unset = the
    /// defaults); a malformed value fails init naming the variable.
    pub fn from_env() -> shared::Result<Self> {
        match shared::config::optional("SUGGESTED_PROMPTS") {
            None => Ok(AssistantSettings::default()),
            Some(json) => parse_prompts(&json)
                .map(|prompts| AssistantSettings { prompts })
                .map_err(|e| shared::Error::Config(format!("SUGGESTED_PROMPTS: {e}"))),
        }
    }
}

/// Reads a JSON array of at most [`MAX_PROMPTS`] prompts, each with a non-empty `title` and
/// `message` (trimmed).
pub fn parse_prompts(json: &str) -> Result<Vec<SuggestedPrompt>, String> {
    let prompts: Vec<SuggestedPrompt> = serde_json::from_str(json)
        .map_err(|e| format!("expected a JSON array of {{\"title\", \"message\"}} objects ({e})"))?;
    if prompts.len() > MAX_PROMPTS {
        return Err(format!("Slack shows at most {MAX_PROMPTS} suggested prompts, got {}", prompts.len()));
    }
    prompts
        .into_iter()
        .enumerate()
        .map(|(i, p)| {
            let (title, message) = (p.title.trim().to_string(), p.message.trim().to_string());
            if title.is_empty() || message.is_empty() {
                return Err(format!("prompt {} needs a non-empty title and message", i + 1));
            }
            Ok(SuggestedPrompt { title, message })
        })
        .collect()
}

/// `assistant_thread_started`: queue the thread's prompts; a shape without the thread's
/// channel, ts or user is drift.
pub fn classify_thread_started(event: &Value, event_id: &str, team_id: &str, received_at_ms: i64) -> Decision {
    let thread = event.get("assistant_thread").filter(|t| t.is_object());
    let field = |k: &str| thread.and_then(|t| t.get(k)).and_then(Value::as_str).filter(|s| !s.is_empty());
    let (Some(channel_id), Some(thread_ts), Some(user_id)) =
        (field("channel_id"), field("thread_ts"), field("user_id"))
    else {
        return Decision::Drift {
            event_type: "assistant_thread_started".into(),
            detail: "assistant_thread.channel_id, thread_ts or user_id missing".into(),
        };
    };
    Decision::Accept(Box::new(WorkItem::AssistantThread(AssistantThreadWork {
        event_id: event_id.to_string(),
        team_id: team_id.to_string(),
        channel_id: channel_id.to_string(),
        thread_ts: thread_ts.to_string(),
        user_id: user_id.to_string(),
        received_at_ms,
    })))
}

/// Sets the suggested prompts of a new assistant thread (none configured: nothing to do).
pub async fn start_thread(
    chat: &dyn ChatClient,
    settings: &AssistantSettings,
    t: &AssistantThreadWork,
    metrics: &Metrics,
) {
    if settings.prompts.is_empty() {
        return;
    }
    match chat.set_suggested_prompts(&t.channel_id, &t.thread_ts, PROMPTS_TITLE, &settings.prompts).await {
        Ok(()) => info!(event_id = %t.event_id, prompts = settings.prompts.len(), "suggested prompts set"),
        Err(e) => {
            metrics.count_with_total("APIErrors", 1.0, &[("ErrorCode", "SlackSuggestedPrompts")]);
            warn!(error = %e, event_id = %t.event_id, "could not set the suggested prompts");
        }
    }
}

/// A thread title from its first question: the first non-blank line, whitespace collapsed,
/// cut at a word boundary to [`MAX_TITLE_CHARS`]. None for a question without text.
pub fn title_of(question: &str) -> Option<String> {
    let line = question.lines().map(str::trim).find(|l| !l.is_empty())?;
    let words: Vec<&str> = line.split_whitespace().collect();
    let whole = words.join(" ");
    if whole.chars().count() <= MAX_TITLE_CHARS {
        return Some(whole);
    }
    let mut title = String::new();
    for word in words {
        let len = title.chars().count() + usize::from(!title.is_empty()) + word.chars().count();
        if len > MAX_TITLE_CHARS - 1 {
            break;
        }
        if !title.is_empty() {
            title.push(' ');
        }
        title.push_str(word);
    }
    if title.is_empty() {
        // One very long word: cut inside it.
        title = whole.chars().take(MAX_TITLE_CHARS - 1).collect();
    }
    title.push('…');
    Some(title)
}

/// Titles an assistant thread after its first question. The caller calls this for the first
/// turn only, so a later question never overwrites the title.
pub async fn title_thread(chat: &dyn ChatClient, m: &MessageWork, metrics: &Metrics) {
    let Some(title) = title_of(&m.question()) else { return };
    let thread = m.thread();
    if let Err(e) = chat.set_assistant_title(&thread.channel_id, &thread.thread_ts, &title).await {
        metrics.count_with_total("APIErrors", 1.0, &[("ErrorCode", "SlackThreadTitle")]);
        warn!(error = %e, event_id = %m.event_id, "could not set the assistant thread's title");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn prompts_parse_or_say_what_is_wrong() {
        let two = parse_prompts(r#"[{"title": " VPN ", "message": "Fix my VPN"}, {"title": "a", "message": "b"}]"#);
        assert_eq!(two.unwrap()[0], SuggestedPrompt { title: "VPN".into(), message: "Fix my VPN".into() });
        assert_eq!(parse_prompts("[]"), Ok(vec![]));
        assert!(parse_prompts(r#"{"title": "a"}"#).unwrap_err().contains("JSON array"));
        assert!(parse_prompts(r#"[{"title": "a"}]"#).unwrap_err().contains("JSON array"));
        assert!(parse_prompts(r#"[{"title": " ", "message": "b"}]"#).unwrap_err().contains("prompt 1"));
        let five = serde_json::to_string(&vec![json!({"title": "a", "message": "b"}); 5]).unwrap();
        assert!(parse_prompts(&five).unwrap_err().contains("at most 4"));
        assert_eq!(default_prompts().len(), MAX_PROMPTS);
    }

    #[test]
    fn the_title_is_the_first_line_trimmed_and_cut_at_a_word() {
        assert_eq!(title_of("  How do I   reset my password?\nThanks").as_deref(), Some("How do I reset my password?"));
        assert_eq!(title_of("\n \n"), None);
        let long = "Why does the VPN client disconnect every twenty minutes when I am on the office wifi network";
        let title = title_of(long).unwrap();
        assert!(title.chars().count() <= MAX_TITLE_CHARS && title.ends_with('…'), "{title}");
        assert!(long.starts_with(title.trim_end_matches('…')), "{title}");
        assert_eq!(title_of(&"x".repeat(100)).unwrap().chars().count(), MAX_TITLE_CHARS);
    }

    #[test]
    fn a_thread_start_is_queued_and_a_shape_without_the_thread_is_drift() {
        let event = json!({"type": "assistant_thread_started", "assistant_thread": {
            "user_id": "U1", "channel_id": "D1", "thread_ts": "1.2", "context": {"channel_id": "C9"}}});
        let Decision::Accept(item) = classify_thread_started(&event, "Ev1", "T1", 5) else { panic!("not accepted") };
        let WorkItem::AssistantThread(t) = *item else { panic!("not a thread start") };
        assert_eq!((t.channel_id.as_str(), t.thread_ts.as_str(), t.user_id.as_str()), ("D1", "1.2", "U1"));
        assert_eq!(WorkItem::AssistantThread(t.clone()).group_id(), t.thread().group_id());
        let bare = json!({"type": "assistant_thread_started", "channel": "D1"});
        assert!(matches!(classify_thread_started(&bare, "Ev1", "T1", 5), Decision::Drift { .. }));
    }
}
