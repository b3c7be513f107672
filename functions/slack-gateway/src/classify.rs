//! What to do with a verified Slack request body: pure, so every rule is unit-tested.

use serde_json::Value;

use crate::work::{MessageWork, ReactionWork, SlackFile, WorkItem};

/// The ingress's decision for one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// `url_verification`: echo the challenge.
    Challenge(String),
    /// Queue this work.
    Accept(Box<WorkItem>),
    /// Acknowledge and drop on purpose (bot messages, edits, channel chatter...).
    Ignore { event_type: String, reason: &'static str },
    /// An event type or shape the code does not expect: acknowledge, count and log.
    Drift { event_type: String, detail: String },
}

/// Message subtypes that are not user questions.
const IGNORED_SUBTYPES: &[&str] = &[
    "bot_message",
    "message_changed",
    "message_deleted",
    "message_replied",
    "channel_join",
    "channel_leave",
    "channel_topic",
    "channel_purpose",
    "channel_name",
    "channel_archive",
    "channel_unarchive",
    "channel_convert_to_private",
    "channel_convert_to_public",
    "channel_posting_permissions",
    "group_join",
    "group_leave",
    "group_topic",
    "group_purpose",
    "group_name",
    "group_archive",
    "group_unarchive",
    "bot_add",
    "bot_remove",
    "pinned_item",
    "unpinned_item",
    "reminder_add",
    "ekm_access_denied",
    "tombstone",
    "huddle_thread",
    "assistant_app_thread",
    "joiner_notification",
    "slackbot_response",
];

/// Message subtypes that still carry a user's question.
const QUESTION_SUBTYPES: &[&str] = &["file_share", "thread_broadcast", "me_message"];

/// Event types Slack may send that this product deliberately does not act on.
const IGNORED_EVENT_TYPES: &[&str] =
    &["app_home_opened", "app_uninstalled", "tokens_revoked", "member_joined_channel", "member_left_channel"];

fn str_of<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str).filter(|s| !s.is_empty())
}

/// Decides what to do with a verified request body.
pub fn classify(body: &Value, received_at_ms: i64) -> Decision {
    let envelope_type = str_of(body, "type").unwrap_or("");
    match envelope_type {
        "url_verification" => match str_of(body, "challenge") {
            Some(c) => Decision::Challenge(c.to_string()),
            None => drift("url_verification", "challenge missing"),
        },
        "event_callback" => classify_callback(body, received_at_ms),
        "app_rate_limited" => {
            Decision::Ignore { event_type: "app_rate_limited".into(), reason: "Slack is rate limiting event delivery" }
        }
        "" => drift("unknown", "envelope has no type"),
        other => drift(other, "unexpected envelope type"),
    }
}

fn drift(event_type: &str, detail: impl Into<String>) -> Decision {
    Decision::Drift { event_type: event_type.to_string(), detail: detail.into() }
}

fn classify_callback(body: &Value, received_at_ms: i64) -> Decision {
    let Some(event) = body.get("event").filter(|e| e.is_object()) else {
        return drift("event_callback", "event object missing");
    };
    let Some(event_type) = str_of(event, "type") else {
        return drift("event_callback", "event.type missing");
    };
    let Some(event_id) = str_of(body, "event_id") else {
        return drift(event_type, "event_id missing");
    };
    let team_id = str_of(body, "team_id").or_else(|| str_of(event, "team")).unwrap_or_default();
    if team_id.is_empty() {
        return drift(event_type, "team_id missing");
    }
    // The bot's own user id, from the authorizations Slack attaches to every event.
    let bot_user_id = body
        .get("authorizations")
        .and_then(Value::as_array)
        .and_then(|a| a.iter().find(|x| x.get("is_bot").and_then(Value::as_bool).unwrap_or(false)).or(a.first()))
        .and_then(|a| str_of(a, "user_id"))
        .map(str::to_string);

    match event_type {
        "app_mention" | "message" => {
            let enterprise_id = str_of(body, "enterprise_id");
            classify_message(event_type, event, event_id, team_id, bot_user_id, enterprise_id, received_at_ms)
        }
        "reaction_added" | "reaction_removed" => {
            classify_reaction(event_type, event, event_id, team_id, received_at_ms)
        }
        t if IGNORED_EVENT_TYPES.contains(&t) => {
            Decision::Ignore { event_type: t.into(), reason: "event type not acted on" }
        }
        t => drift(t, "unexpected event type"),
    }
}

fn classify_message(
    event_type: &str,
    event: &Value,
    event_id: &str,
    team_id: &str,
    bot_user_id: Option<String>,
    enterprise_id: Option<&str>,
    received_at_ms: i64,
) -> Decision {
    let ignore = |reason| Decision::Ignore { event_type: event_type.to_string(), reason };
    if let Some(sub) = str_of(event, "subtype") {
        if IGNORED_SUBTYPES.contains(&sub) {
            return ignore("message subtype is not a question");
        }
        if !QUESTION_SUBTYPES.contains(&sub) {
            return drift(event_type, format!("unexpected message subtype {sub}"));
        }
    }
    if event.get("bot_id").is_some_and(|b| !b.is_null()) || event.get("bot_profile").is_some_and(|b| !b.is_null()) {
        return ignore("message from a bot");
    }
    let user = match str_of(event, "user") {
        Some(u) => u,
        None => return drift(event_type, "user missing"),
    };
    if bot_user_id.as_deref() == Some(user) {
        return ignore("message from this app");
    }
    let (Some(channel), Some(ts)) = (str_of(event, "channel"), str_of(event, "ts")) else {
        return drift(event_type, "channel or ts missing");
    };
    let Some(text) = event.get("text").and_then(Value::as_str) else {
        return drift(event_type, "text missing");
    };
    let files: Vec<SlackFile> =
        event.get("files").and_then(Value::as_array).into_iter().flatten().filter_map(SlackFile::from_event).collect();
    if text.trim().is_empty() && files.is_empty() {
        return ignore("empty message");
    }
    let thread_ts = str_of(event, "thread_ts").map(str::to_string);
    let channel_type = str_of(event, "channel_type").map(str::to_string);
    let is_dm = channel_type.as_deref() == Some("im") || channel.starts_with('D');
    let is_reply = thread_ts.as_deref().is_some_and(|t| t != ts);
    let mentions_bot = bot_user_id.as_deref().is_some_and(|b| text.contains(&format!("<@{b}>")));

    let requires_bot_thread = match event_type {
        "app_mention" => false,
        _ if is_dm => false,
        // A channel message mentioning the bot also arrives as app_mention: that one answers.
        _ if mentions_bot => return ignore("channel message that mentions the bot (handled as app_mention)"),
        _ if is_reply => true,
        _ => return ignore("channel message not addressed to the bot"),
    };
    let assistant_thread = is_assistant_thread(event_type, event, is_dm, thread_ts.is_some());
    Decision::Accept(Box::new(WorkItem::Message(MessageWork {
        event_id: event_id.to_string(),
        team_id: team_id.to_string(),
        channel_id: channel.to_string(),
        channel_type,
        user_id: user.to_string(),
        ts: ts.to_string(),
        thread_ts,
        text: text.to_string(),
        bot_user_id,
        requires_bot_thread,
        files,
        received_at_ms,
        assistant_thread,
        // For the access check: Slack Connect messages carry the asker's own team.
        user_team: str_of(event, "user_team").or_else(|| str_of(event, "source_team")).map(str::to_string),
        enterprise_id: enterprise_id.map(str::to_string),
    })))
}

/// Whether a message belongs to an assistant thread. Slack's AI-app containers are threads in
/// the app's DM: the user's messages arrive as `message` events with `channel_type: im` and a
/// `thread_ts` (as Slack's Bolt SDKs recognise them); some also carry an `assistant_thread`
/// object. Whether the app really is an assistant app is the worker's setting (SLACK_ASSISTANT).
fn is_assistant_thread(event_type: &str, event: &Value, is_dm: bool, in_thread: bool) -> bool {
    let marked = event.get("assistant_thread").is_some_and(Value::is_object);
    marked || (event_type == "message" && is_dm && in_thread)
}

fn classify_reaction(event_type: &str, event: &Value, event_id: &str, team_id: &str, received_at_ms: i64) -> Decision {
    let Some(item) = event.get("item") else {
        return drift(event_type, "item missing");
    };
    if str_of(item, "type") != Some("message") {
        return Decision::Ignore {
            event_type: event_type.into(),
            reason: "reaction on something other than a message",
        };
    }
    let (Some(user), Some(reaction), Some(channel), Some(item_ts)) =
        (str_of(event, "user"), str_of(event, "reaction"), str_of(item, "channel"), str_of(item, "ts"))
    else {
        return drift(event_type, "user, reaction, item.channel or item.ts missing");
    };
    Decision::Accept(Box::new(WorkItem::Reaction(ReactionWork {
        event_id: event_id.to_string(),
        team_id: team_id.to_string(),
        user_id: user.to_string(),
        reaction: reaction.to_string(),
        added: event_type == "reaction_added",
        channel_id: channel.to_string(),
        item_ts: item_ts.to_string(),
        item_user: str_of(event, "item_user").map(str::to_string),
        received_at_ms,
    })))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn callback(event: Value) -> Value {
        json!({
            "type": "event_callback", "team_id": "T1", "event_id": "Ev1", "event": event,
            "authorizations": [{"user_id": "UBOT", "is_bot": true, "team_id": "T1"}]
        })
    }

    fn accepted(d: Decision) -> MessageWork {
        match d {
            Decision::Accept(item) => match *item {
                WorkItem::Message(m) => m,
                other => panic!("expected a message, got {other:?}"),
            },
            other => panic!("expected an accepted message, got {other:?}"),
        }
    }

    #[test]
    fn challenge_is_echoed() {
        let d = classify(&json!({"type": "url_verification", "challenge": "abc", "token": "x"}), 0);
        assert_eq!(d, Decision::Challenge("abc".into()));
    }

    #[test]
    fn app_mention_in_channel_is_accepted_and_mention_stripped() {
        let m = accepted(classify(
            &callback(
                json!({"type": "app_mention", "user": "U1", "channel": "C1", "ts": "1.1", "text": "<@UBOT> hi there"}),
            ),
            5,
        ));
        assert_eq!(m.question(), "hi there");
        assert!(!m.requires_bot_thread);
        assert_eq!(m.thread().thread_ts, "1.1");
        assert_eq!(m.received_at_ms, 5);
    }

    #[test]
    fn dm_and_thread_replies() {
        let dm = accepted(classify(
            &callback(
                json!({"type": "message", "channel_type": "im", "user": "U1", "channel": "D1", "ts": "2.1", "text": "hello"}),
            ),
            0,
        ));
        assert!(!dm.requires_bot_thread);
        let reply = accepted(classify(
            &callback(
                json!({"type": "message", "channel_type": "channel", "user": "U1", "channel": "C1", "ts": "3.2", "thread_ts": "3.1", "text": "and then?"}),
            ),
            0,
        ));
        assert!(reply.requires_bot_thread && reply.is_thread_reply());
        assert_eq!(reply.thread().thread_ts, "3.1");
    }

    #[test]
    fn dm_thread_messages_are_assistant_threads() {
        let in_thread = accepted(classify(
            &callback(
                json!({"type": "message", "channel_type": "im", "user": "U1", "channel": "D1", "ts": "2.2", "thread_ts": "2.1", "text": "hi"}),
            ),
            0,
        ));
        assert!(in_thread.assistant_thread);
        let top_level = accepted(classify(
            &callback(
                json!({"type": "message", "channel_type": "im", "user": "U1", "channel": "D1", "ts": "2.1", "text": "hi"}),
            ),
            0,
        ));
        assert!(!top_level.assistant_thread);
        let mention = accepted(classify(
            &callback(
                json!({"type": "app_mention", "user": "U1", "channel": "C1", "ts": "3.2", "thread_ts": "3.1", "text": "<@UBOT> hi"}),
            ),
            0,
        ));
        assert!(!mention.assistant_thread);
    }

    #[test]
    fn drops_bots_self_edits_and_chatter() {
        let cases = [
            json!({"type": "message", "subtype": "bot_message", "bot_id": "B1", "channel": "C1", "ts": "1", "text": "x"}),
            json!({"type": "message", "bot_id": "B1", "user": "U9", "channel": "D1", "channel_type": "im", "ts": "1", "text": "x"}),
            json!({"type": "message", "user": "UBOT", "channel": "D1", "channel_type": "im", "ts": "1", "text": "x"}),
            json!({"type": "message", "subtype": "message_changed", "channel": "C1", "ts": "1"}),
            json!({"type": "message", "subtype": "channel_join", "user": "U1", "channel": "C1", "ts": "1", "text": "joined"}),
            json!({"type": "message", "channel_type": "channel", "user": "U1", "channel": "C1", "ts": "1", "text": "lunch?"}),
            json!({"type": "message", "channel_type": "channel", "user": "U1", "channel": "C1", "ts": "1.2", "thread_ts": "1.1", "text": "<@UBOT> hi"}),
        ];
        for c in cases {
            assert!(matches!(classify(&callback(c.clone()), 0), Decision::Ignore { .. }), "{c}");
        }
    }

    #[test]
    fn file_shares_are_answered_with_their_files() {
        let m = accepted(classify(
            &callback(json!({
                "type": "message", "subtype": "file_share", "channel_type": "im", "user": "U1", "channel": "D1",
                "ts": "4.1", "text": "",
                "files": [
                    {"id": "F1", "name": "q3.csv", "mimetype": "text/csv", "filetype": "csv", "size": 12,
                     "url_private": "https://files.slack.com/files-pri/T1-F1/q3.csv",
                     "url_private_download": "https://files.slack.com/files-pri/T1-F1/download/q3.csv",
                     "thumb_64": "https://files.slack.com/x", "shares": {"private": {}}},
                    {"id": "F2", "mode": "tombstone"},
                    {"name": "no id"},
                    "not an object"
                ]
            })),
            0,
        ));
        assert_eq!(m.files.len(), 2, "{:?}", m.files);
        assert_eq!(m.files[0].download_url(), Some("https://files.slack.com/files-pri/T1-F1/download/q3.csv"));
        assert_eq!((m.files[0].size, m.files[0].filetype.as_deref()), (Some(12), Some("csv")));
        assert_eq!(m.files[1].download_url(), None);
        assert_eq!(m.files[1].display_name(), "file F2");
    }

    #[test]
    fn reactions_are_accepted() {
        let d = classify(
            &callback(
                json!({"type": "reaction_added", "user": "U1", "reaction": "+1", "item_user": "UBOT", "item": {"type": "message", "channel": "C1", "ts": "9.9"}}),
            ),
            0,
        );
        match d {
            Decision::Accept(item) => match *item {
                WorkItem::Reaction(r) => {
                    assert!(r.added);
                    assert_eq!((r.reaction.as_str(), r.item_ts.as_str()), ("+1", "9.9"));
                }
                other => panic!("{other:?}"),
            },
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn unexpected_types_and_shapes_are_drift() {
        let d = classify(&callback(json!({"type": "workflow_step_execute", "x": 1})), 0);
        assert_eq!(
            d,
            Decision::Drift { event_type: "workflow_step_execute".into(), detail: "unexpected event type".into() }
        );
        let d = classify(&callback(json!({"type": "app_mention", "channel": "C1", "ts": "1", "text": "hi"})), 0);
        assert!(matches!(d, Decision::Drift { ref detail, .. } if detail == "user missing"), "{d:?}");
        let d = classify(
            &callback(
                json!({"type": "message", "subtype": "brand_new_subtype", "user": "U1", "channel": "C1", "ts": "1", "text": "x"}),
            ),
            0,
        );
        assert!(matches!(d, Decision::Drift { ref detail, .. } if detail.contains("brand_new_subtype")));
        assert!(matches!(
            classify(&json!({"type": "event_callback", "team_id": "T1", "event_id": "E"}), 0),
            Decision::Drift { .. }
        ));
        assert!(matches!(classify(&json!({"type": "interactive_message"}), 0), Decision::Drift { .. }));
    }
}
