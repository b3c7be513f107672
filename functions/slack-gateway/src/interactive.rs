//! Slack's feedback buttons: the `context_actions` block every final answer ends with, and the
//! interactive payload a press sends to the ingress (`POST`, form-encoded `payload=<JSON>` of
//! type `block_actions`, signed like events). Both sides of the contract live here; parsing is
//! pure and total (untrusted input: every rule is unit- and property-tested).

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use shared::domain::{Sentiment, ThreadRef};
use shared::encoding::{form_encode, percent_decode, Plus};

use crate::classify::Decision;
use crate::work::WorkItem;

/// The action_id of the answers' feedback buttons: a press with any other action_id is drift.
pub const FEEDBACK_ACTION_ID: &str = "answer_feedback";
/// The block id of the buttons starts with this, then names the answered turn
/// (`<thread_ts>/<question ts>`): the buttons sit on the last message of a split answer, which is
/// not the turn's recorded reply.
pub const FEEDBACK_BLOCK_PREFIX: &str = "answer_feedback/";
/// The buttons' values.
pub const POSITIVE: &str = "positive";
pub const NEGATIVE: &str = "negative";
/// Interaction types Slack documents; any other `type` is counted under `interactive`, so an
/// untrusted string never becomes a metric dimension.
const KNOWN_TYPES: &[&str] = &[
    "block_actions",
    "block_suggestion",
    "interactive_message",
    "message_action",
    "shortcut",
    "view_closed",
    "view_submission",
];
/// Longest Slack id or ts accepted (Slack's are about 11 and 17 characters).
const MAX_ID_LEN: usize = 64;

/// The turn a feedback block belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AnsweredTurn {
    pub thread_ts: String,
    /// The user's message the answer answers (the turn's key).
    pub message_ts: String,
}

/// A press of an answer's feedback buttons, as queued for the worker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ButtonWork {
    /// Stable per press (Slack's retries of it share it): `Fb-<user>-<action_ts>`.
    pub event_id: String,
    pub team_id: String,
    /// Who pressed.
    pub user_id: String,
    pub channel_id: String,
    /// The message the buttons are on.
    pub message_ts: String,
    /// The turn the block names, when it names one.
    pub turn: Option<AnsweredTurn>,
    pub sentiment: Sentiment,
    pub action_ts: String,
    pub received_at_ms: i64,
}

impl ButtonWork {
    /// The FIFO group: presses (and reactions) on one message are handled in order.
    pub fn group(&self) -> ThreadRef {
        ThreadRef {
            team_id: self.team_id.clone(),
            channel_id: self.channel_id.clone(),
            thread_ts: self.message_ts.clone(),
        }
    }
}

/// The `context_actions` block with the thumbs up / down buttons for the answer to `message_ts`.
pub fn feedback_block(thread_ts: &str, message_ts: &str) -> Value {
    let button = |emoji: &str, value: &str, label: &str| json!({ "text": { "type": "plain_text", "text": emoji }, "value": value, "accessibility_label": label });
    json!({
        "type": "context_actions",
        "block_id": format!("{FEEDBACK_BLOCK_PREFIX}{thread_ts}/{message_ts}"),
        "elements": [{
            "type": "feedback_buttons",
            "action_id": FEEDBACK_ACTION_ID,
            "positive_button": button("👍", POSITIVE, "This answer helped"),
            "negative_button": button("👎", NEGATIVE, "This answer did not help"),
        }]
    })
}

/// The JSON of a form-encoded interactive body (`payload=<url-encoded JSON>`).
pub fn form_payload(raw: &[u8]) -> Result<Value, &'static str> {
    let field = raw
        .split(|b| *b == b'&')
        .find_map(|pair| pair.strip_prefix(b"payload="))
        .ok_or("form body has no payload field")?;
    let text = String::from_utf8(percent_decode(field, Plus::Space)).map_err(|_| "payload is not UTF-8")?;
    serde_json::from_str(&text).map_err(|_| "payload is not JSON")
}

/// The body Slack sends for `payload` (form encoding, as the tests and the bench send it).
pub fn form_body(payload: &Value) -> String {
    format!("payload={}", form_encode(&payload.to_string()))
}

fn drift(event_type: &str, detail: &str) -> Decision {
    Decision::Drift { event_type: event_type.to_string(), detail: detail.to_string() }
}

fn str_at<'a>(v: &'a Value, pointer: &str) -> Option<&'a str> {
    v.pointer(pointer).and_then(Value::as_str).filter(|s| !s.is_empty())
}

/// A Slack id (team, user, channel): ASCII letters and digits.
fn id_at<'a>(v: &'a Value, pointers: &[&str]) -> Option<&'a str> {
    let id = pointers.iter().find_map(|p| str_at(v, p))?;
    (id.len() <= MAX_ID_LEN && id.bytes().all(|b| b.is_ascii_alphanumeric())).then_some(id)
}

/// A Slack timestamp: digits and dots, at least one digit.
fn is_ts(ts: &str) -> bool {
    !ts.is_empty()
        && ts.len() <= MAX_ID_LEN
        && ts.bytes().all(|b| b.is_ascii_digit() || b == b'.')
        && ts.bytes().any(|b| b.is_ascii_digit())
}

fn ts_at<'a>(v: &'a Value, pointers: &[&str]) -> Option<&'a str> {
    pointers.iter().find_map(|p| str_at(v, p)).filter(|t| is_ts(t))
}

/// The turn a feedback block id names, if it names one.
pub fn turn_of_block(block_id: &str) -> Option<AnsweredTurn> {
    let (thread_ts, message_ts) = block_id.strip_prefix(FEEDBACK_BLOCK_PREFIX)?.split_once('/')?;
    (is_ts(thread_ts) && is_ts(message_ts))
        .then(|| AnsweredTurn { thread_ts: thread_ts.to_string(), message_ts: message_ts.to_string() })
}

/// Decides what to do with a verified interactive payload: a press of an answer's feedback
/// buttons is queued; anything else is drift (acknowledged, counted, never queued).
pub fn classify_interaction(payload: &Value, received_at_ms: i64) -> Decision {
    let kind = match str_at(payload, "/type") {
        Some("block_actions") => "block_actions",
        Some(t) if KNOWN_TYPES.contains(&t) => return drift(t, "interaction type not handled"),
        _ => return drift("interactive", "unknown interaction type"),
    };
    let actions = payload.get("actions").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
    let Some(action) = actions.iter().find(|a| str_at(a, "/action_id") == Some(FEEDBACK_ACTION_ID)) else {
        return drift(kind, "unknown action_id");
    };
    let sentiment = match str_at(action, "/value") {
        Some(POSITIVE) => Sentiment::Positive,
        Some(NEGATIVE) => Sentiment::Negative,
        _ => return drift(kind, "feedback value is neither positive nor negative"),
    };
    let user = id_at(payload, &["/user/id"]);
    let team = id_at(payload, &["/team/id", "/user/team_id"]);
    let channel = id_at(payload, &["/channel/id", "/container/channel_id"]);
    let message_ts = ts_at(payload, &["/container/message_ts", "/message/ts"]);
    let action_ts = ts_at(action, &["/action_ts"]);
    let (Some(user), Some(team), Some(channel), Some(message_ts), Some(action_ts)) =
        (user, team, channel, message_ts, action_ts)
    else {
        return drift(kind, "user, team, channel, message ts or action ts missing or malformed");
    };
    Decision::Accept(Box::new(WorkItem::FeedbackButton(ButtonWork {
        event_id: format!("Fb-{user}-{action_ts}"),
        team_id: team.to_string(),
        user_id: user.to_string(),
        channel_id: channel.to_string(),
        message_ts: message_ts.to_string(),
        turn: str_at(action, "/block_id").and_then(turn_of_block),
        sentiment,
        action_ts: action_ts.to_string(),
        received_at_ms,
    })))
}

#[cfg(test)]
mod tests;
