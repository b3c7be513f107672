//! Slack's native streaming of a reply (`chat.startStream`, `chat.appendStream`,
//! `chat.stopStream`): what the calls carry, and how their refusals are told apart from
//! passing failures.

use serde_json::{json, Value};

use super::ChatError;

/// The most Markdown one streaming call may carry (Slack's limit on `markdown_text`).
pub const MAX_STREAM_CALL_CHARS: usize = 12_000;

/// Where a streamed reply goes, and who it is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamTarget<'a> {
    pub channel: &'a str,
    /// The thread the reply streams into (streamed messages are always replies).
    pub thread_ts: &'a str,
    /// The user who asked: Slack requires the recipient outside DMs.
    pub recipient_user_id: &'a str,
    /// The asking user's team.
    pub recipient_team_id: &'a str,
}

/// What one streaming call adds to the message: Markdown text and/or chunks (`task_update`,
/// `plan_update`, `blocks`), text first.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StreamContent {
    pub markdown: String,
    pub chunks: Vec<Value>,
}

impl StreamContent {
    /// Markdown only.
    pub fn markdown(text: impl Into<String>) -> Self {
        StreamContent { markdown: text.into(), chunks: Vec::new() }
    }

    /// Nothing to add.
    pub fn is_empty(&self) -> bool {
        self.markdown.is_empty() && self.chunks.is_empty()
    }

    /// The call's fields: `markdown_text` alone, or with chunks everything as `chunks` (the
    /// text as a `markdown_text` chunk first), since Slack takes one or the other.
    pub fn fields(&self) -> serde_json::Map<String, Value> {
        let mut fields = serde_json::Map::new();
        if self.chunks.is_empty() {
            if !self.markdown.is_empty() {
                fields.insert("markdown_text".into(), json!(self.markdown));
            }
            return fields;
        }
        let mut chunks = Vec::with_capacity(self.chunks.len() + 1);
        if !self.markdown.is_empty() {
            chunks.push(json!({ "type": "markdown_text", "text": self.markdown }));
        }
        chunks.extend(self.chunks.iter().cloned());
        fields.insert("chunks".into(), Value::Array(chunks));
        fields
    }
}

/// Slack errors of `chat.startStream` that mean streaming is not available here (the workspace,
/// the app, the channel or the recipient), as opposed to a passing failure.
const STREAM_REFUSALS: &[&str] = &[
    "not_supported",
    "unknown_method",
    "method_not_supported",
    "method_not_supported_for_channel_type",
    "channel_type_not_supported",
    "feature_not_enabled",
    "not_allowed",
    "not_allowed_token_type",
    "restricted_action",
    "missing_scope",
    "invalid_arguments",
    "missing_recipient_user_id",
    "missing_recipient_team_id",
    "invalid_recipient",
    "user_not_found",
    "team_not_found",
    "team_access_not_granted",
    "http_400",
    "http_404",
];

/// Of those, the ones that say the whole app or workspace cannot stream (not just this channel
/// or recipient): no other turn of this container needs to try again soon.
const WORKSPACE_REFUSALS: &[&str] = &[
    "not_supported",
    "unknown_method",
    "method_not_supported",
    "feature_not_enabled",
    "not_allowed_token_type",
    "missing_scope",
    "http_404",
];

impl ChatError {
    /// Whether Slack refused to stream here: the reply goes the edited-message way instead.
    pub fn refused_streaming(&self) -> bool {
        STREAM_REFUSALS.contains(&self.error.as_str())
    }

    /// Whether the refusal holds for the whole workspace or app, not just this place.
    pub fn refused_streaming_everywhere(&self) -> bool {
        WORKSPACE_REFUSALS.contains(&self.error.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_goes_as_markdown_text_or_as_chunks() {
        assert_eq!(StreamContent::markdown("**hi**").fields()["markdown_text"], "**hi**");
        assert!(StreamContent::default().fields().is_empty());
        let task = json!({"type": "task_update", "id": "kb", "title": "Searching", "status": "in_progress"});
        let with_task = StreamContent { markdown: "so far".into(), chunks: vec![task.clone()] }.fields();
        assert!(with_task.get("markdown_text").is_none());
        assert_eq!(with_task["chunks"], json!([{"type": "markdown_text", "text": "so far"}, task]));
    }

    #[test]
    fn refusals_are_told_from_passing_failures() {
        let e = |error: &str| ChatError { method: "chat.startStream", error: error.into() };
        for refused in ["not_allowed_token_type", "missing_recipient_team_id", "channel_type_not_supported"] {
            assert!(e(refused).refused_streaming(), "{refused}");
        }
        for passing in ["ratelimited", "http_500", "transport", "timeout"] {
            assert!(!e(passing).refused_streaming(), "{passing}");
        }
        assert!(e("feature_not_enabled").refused_streaming_everywhere());
        assert!(!e("missing_recipient_user_id").refused_streaming_everywhere());
    }
}
