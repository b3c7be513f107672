//! What to do with a verified Slack request body: pure, so every rule is unit-tested.

use serde_json::Value;

use crate::reactions::FeedbackSettings;
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
/// (`assistant_thread_context_changed`: the answers do not depend on the channel being viewed.)
const IGNORED_EVENT_TYPES: &[&str] = &[
    "assistant_thread_context_changed",
    "app_uninstalled",
    "tokens_revoked",
    "member_joined_channel",
    "member_left_channel",
];

fn str_of<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str).filter(|s| !s.is_empty())
}

/// Decides what to do with a verified request body. `feedback` says which reactions are
/// feedback: only those are queued.
pub fn classify(body: &Value, received_at_ms: i64, feedback: &FeedbackSettings) -> Decision {
    let envelope_type = str_of(body, "type").unwrap_or("");
    match envelope_type {
        "url_verification" => match str_of(body, "challenge") {
            Some(c) => Decision::Challenge(c.to_string()),
            None => drift("url_verification", "challenge missing"),
        },
        "event_callback" => classify_callback(body, received_at_ms, feedback),
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

fn classify_callback(body: &Value, received_at_ms: i64, feedback: &FeedbackSettings) -> Decision {
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
            let reaction = Reaction { event_type, event_id, team_id, bot_user_id: bot_user_id.as_deref() };
            classify_reaction(&reaction, event, received_at_ms, feedback)
        }
        "assistant_thread_started" => {
            crate::assistant::classify_thread_started(event, event_id, team_id, received_at_ms)
        }
        "app_home_opened" => crate::home::classify_home_opened(event, event_id, team_id, received_at_ms),
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

/// The envelope fields a reaction is classified with.
struct Reaction<'a> {
    event_type: &'a str,
    event_id: &'a str,
    team_id: &'a str,
    bot_user_id: Option<&'a str>,
}

fn classify_reaction(r: &Reaction, event: &Value, received_at_ms: i64, feedback: &FeedbackSettings) -> Decision {
    let event_type = r.event_type;
    let ignore = |reason| Decision::Ignore { event_type: event_type.to_string(), reason };
    let Some(item) = event.get("item") else {
        return drift(event_type, "item missing");
    };
    if str_of(item, "type") != Some("message") {
        return ignore("reaction on something other than a message");
    }
    let (Some(user), Some(reaction), Some(channel), Some(item_ts)) =
        (str_of(event, "user"), str_of(event, "reaction"), str_of(item, "channel"), str_of(item, "ts"))
    else {
        return drift(event_type, "user, reaction, item.channel or item.ts missing");
    };
    // The bot's own status reactions (and anything else it reacts with) are not work.
    if r.bot_user_id == Some(user) {
        return ignore("reaction by this app");
    }
    // Only feedback reactions do anything in the worker: the rest are not queued at all.
    if feedback.sentiment(reaction).is_none() {
        return ignore("reaction is not feedback");
    }
    Decision::Accept(Box::new(WorkItem::Reaction(ReactionWork {
        event_id: r.event_id.to_string(),
        team_id: r.team_id.to_string(),
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

    fn classify_(body: &Value, received_at_ms: i64) -> Decision {
        classify(body, received_at_ms, &FeedbackSettings::default())
    }

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
        let d = classify_(&json!({"type": "url_verification", "challenge": "abc", "token": "x"}), 0);
        assert_eq!(d, Decision::Challenge("abc".into()));
    }

    #[test]
    fn app_mention_in_channel_is_accepted_and_mention_stripped() {
        let m = accepted(classify_(
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
        let dm = accepted(classify_(
            &callback(
                json!({"type": "message", "channel_type": "im", "user": "U1", "channel": "D1", "ts": "2.1", "text": "hello"}),
            ),
            0,
        ));
        assert!(!dm.requires_bot_thread);
        let reply = accepted(classify_(
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
        let in_thread = accepted(classify_(
            &callback(
                json!({"type": "message", "channel_type": "im", "user": "U1", "channel": "D1", "ts": "2.2", "thread_ts": "2.1", "text": "hi"}),
            ),
            0,
        ));
        assert!(in_thread.assistant_thread);
        let top_level = accepted(classify_(
            &callback(
                json!({"type": "message", "channel_type": "im", "user": "U1", "channel": "D1", "ts": "2.1", "text": "hi"}),
            ),
            0,
        ));
        assert!(!top_level.assistant_thread);
        let mention = accepted(classify_(
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
            assert!(matches!(classify_(&callback(c.clone()), 0), Decision::Ignore { .. }), "{c}");
        }
    }

    #[test]
    fn file_shares_are_answered_with_their_files() {
        let m = accepted(classify_(
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
        let d = classify_(
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
    fn only_feedback_reactions_by_people_are_queued() {
        let reaction = |user: &str, name: &str| {
            callback(json!({"type": "reaction_added", "user": user, "reaction": name, "item_user": "UBOT",
                            "item": {"type": "message", "channel": "C1", "ts": "9.9"}}))
        };
        let queued = |d: Decision| matches!(d, Decision::Accept(_));
        // The bot's own status reaction, and any other reaction it adds.
        assert!(!queued(classify_(&reaction("UBOT", crate::status::DEFAULT_STATUS_REACTION), 0)));
        assert!(!queued(classify_(&reaction("UBOT", "+1"), 0)));
        // People's reactions that are not feedback.
        assert!(!queued(classify_(&reaction("U1", crate::status::DEFAULT_STATUS_REACTION), 0)));
        assert!(!queued(classify_(&reaction("U1", "tada"), 0)));
        // Feedback, with or without a skin tone, added or removed.
        assert!(queued(classify_(&reaction("U1", "+1::skin-tone-3"), 0)));
        assert!(queued(classify_(&reaction("U1", "thumbsdown"), 0)));
        let mut removed = reaction("U1", "-1");
        removed["event"]["type"] = json!("reaction_removed");
        assert!(queued(classify_(&removed, 0)));
        // The configured lists, not the defaults, decide.
        let custom = FeedbackSettings { positive: vec!["white_check_mark".into()], negative: vec!["x".into()] };
        assert!(queued(classify(&reaction("U1", "white_check_mark"), 0, &custom)));
        assert!(!queued(classify(&reaction("U1", "+1"), 0, &custom)));
    }

    #[test]
    fn unexpected_types_and_shapes_are_drift() {
        let d = classify_(&callback(json!({"type": "workflow_step_execute", "x": 1})), 0);
        assert_eq!(
            d,
            Decision::Drift { event_type: "workflow_step_execute".into(), detail: "unexpected event type".into() }
        );
        let d = classify_(&callback(json!({"type": "app_mention", "channel": "C1", "ts": "1", "text": "hi"})), 0);
        assert!(matches!(d, Decision::Drift { ref detail, .. } if detail == "user missing"), "{d:?}");
        let d = classify_(
            &callback(
                json!({"type": "message", "subtype": "brand_new_subtype", "user": "U1", "channel": "C1", "ts": "1", "text": "x"}),
            ),
            0,
        );
        assert!(matches!(d, Decision::Drift { ref detail, .. } if detail.contains("brand_new_subtype")));
        assert!(matches!(
            classify_(&json!({"type": "event_callback", "team_id": "T1", "event_id": "E"}), 0),
            Decision::Drift { .. }
        ));
        assert!(matches!(classify_(&json!({"type": "interactive_message"}), 0), Decision::Drift { .. }));
    }
}

/// Generated input: no JSON makes classification panic, and whatever it accepts carries the ids
/// the worker keys on. Arbitrary JSON trees (built from the words Slack payloads use, so that
/// they reach deep into the rules) and mutations of the real fixtures in events/slack/.
/// Cases: PROPTEST_CASES (default 256) per property.
#[cfg(test)]
mod properties {
    use proptest::prelude::*;
    use serde_json::{Map, Value};

    use super::*;

    const WORDS: &[&str] = &[
        "type",
        "event",
        "event_id",
        "team_id",
        "team",
        "user",
        "channel",
        "ts",
        "thread_ts",
        "text",
        "subtype",
        "bot_id",
        "bot_profile",
        "channel_type",
        "files",
        "id",
        "item",
        "reaction",
        "item_user",
        "authorizations",
        "user_id",
        "is_bot",
        "challenge",
        "assistant_thread",
        "event_callback",
        "url_verification",
        "app_mention",
        "message",
        "reaction_added",
        "reaction_removed",
        "file_share",
        "thread_broadcast",
        "bot_message",
        "im",
        "channel",
        "D1",
        "C1",
        "U1",
        "UBOT",
        "T1",
        "Ev1",
        "1.1",
        "1.2",
        "+1",
        "-1",
        "thumbsup",
        "+1::skin-tone-2",
        "hourglass_flowing_sand",
        "<@UBOT> hi",
        "",
        " ",
        "mode",
        "tombstone",
        "url_private_download",
    ];

    fn word() -> impl Strategy<Value = String> {
        prop_oneof![
            4 => prop::sample::select(WORDS).prop_map(str::to_string),
            1 => any::<String>(),
        ]
    }

    fn json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<f64>().prop_map(Value::from),
            word().prop_map(Value::String),
        ];
        leaf.prop_recursive(5, 64, 8, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                prop::collection::vec((word(), inner), 0..8)
                    .prop_map(|kv| Value::Object(kv.into_iter().collect::<Map<String, Value>>())),
            ]
        })
    }

    /// The Slack bodies of the fixtures in events/slack/.
    fn fixtures() -> Vec<Value> {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../events/slack");
        let mut out = Vec::new();
        for entry in std::fs::read_dir(&dir).expect("events/slack").flatten() {
            let event: Value =
                serde_json::from_str(&std::fs::read_to_string(entry.path()).expect("fixture")).expect("fixture json");
            // Interactive payloads (form-encoded) are interactive.rs's to test.
            if event["headers"]["content-type"].as_str().is_some_and(|t| t.starts_with("application/x-www-form")) {
                continue;
            }
            let raw = event["body"].as_str().unwrap_or_default();
            let raw = if event["isBase64Encoded"].as_bool().unwrap_or(false) {
                use base64::Engine;
                String::from_utf8(base64::engine::general_purpose::STANDARD.decode(raw).expect("base64"))
                    .expect("utf-8")
            } else {
                raw.to_string()
            };
            out.push(serde_json::from_str(&raw).expect("body json"));
        }
        assert!(out.len() >= 8, "fixtures found: {}", out.len());
        out
    }

    /// Every place in a tree, as a path of object keys and array indexes.
    fn paths(v: &Value, here: Vec<Value>, out: &mut Vec<Vec<Value>>) {
        out.push(here.clone());
        match v {
            Value::Object(m) => m.iter().for_each(|(k, c)| {
                let mut p = here.clone();
                p.push(Value::String(k.clone()));
                paths(c, p, out)
            }),
            Value::Array(a) => a.iter().enumerate().for_each(|(i, c)| {
                let mut p = here.clone();
                p.push(Value::from(i));
                paths(c, p, out)
            }),
            _ => {}
        }
    }

    fn at<'a>(v: &'a mut Value, path: &[Value]) -> Option<&'a mut Value> {
        path.iter().try_fold(v, |v, step| match step {
            Value::String(k) => v.get_mut(k.as_str()),
            Value::Number(i) => v.get_mut(i.as_u64()? as usize),
            _ => None,
        })
    }

    /// A fixture with a few of its places replaced by arbitrary JSON or removed.
    fn mutated_fixture() -> impl Strategy<Value = Value> {
        let all = fixtures();
        (prop::sample::select(all), prop::collection::vec((any::<prop::sample::Index>(), json(), any::<bool>()), 1..4))
            .prop_map(|(mut body, edits)| {
                for (pick, value, remove) in edits {
                    let mut ps = Vec::new();
                    paths(&body, Vec::new(), &mut ps);
                    let path = ps[pick.index(ps.len())].clone();
                    match (remove, path.split_last()) {
                        (true, Some((Value::String(k), parent))) => {
                            if let Some(Value::Object(m)) = at(&mut body, parent) {
                                m.remove(k);
                            }
                        }
                        _ => {
                            if let Some(slot) = at(&mut body, &path) {
                                *slot = value;
                            }
                        }
                    }
                }
                body
            })
    }

    /// What an accepted item must carry.
    fn check_ids(d: &Decision) -> Result<(), TestCaseError> {
        let Decision::Accept(item) = d else { return Ok(()) };
        match item.as_ref() {
            WorkItem::Message(m) => {
                for (name, v) in [
                    ("event_id", &m.event_id),
                    ("team", &m.team_id),
                    ("channel", &m.channel_id),
                    ("ts", &m.ts),
                    ("user", &m.user_id),
                ] {
                    prop_assert!(!v.is_empty(), "accepted message without {}: {:?}", name, m);
                }
                prop_assert!(!m.text.trim().is_empty() || !m.files.is_empty(), "empty message accepted: {:?}", m);
            }
            WorkItem::Reaction(r) => {
                for (name, v) in [
                    ("event_id", &r.event_id),
                    ("team", &r.team_id),
                    ("channel", &r.channel_id),
                    ("item ts", &r.item_ts),
                    ("user", &r.user_id),
                ] {
                    prop_assert!(!v.is_empty(), "accepted reaction without {}: {:?}", name, r);
                }
                prop_assert!(FeedbackSettings::default().sentiment(&r.reaction).is_some(), "not feedback: {:?}", r);
            }
            WorkItem::AssistantThread(t) => {
                for v in [&t.event_id, &t.team_id, &t.channel_id, &t.thread_ts, &t.user_id] {
                    prop_assert!(!v.is_empty(), "accepted thread start with an empty id: {:?}", t);
                }
            }
            WorkItem::Home(h) => {
                for v in [&h.event_id, &h.team_id, &h.user_id] {
                    prop_assert!(!v.is_empty(), "accepted Home tab with an empty id: {:?}", h);
                }
            }
            WorkItem::FeedbackButton(b) => prop_assert!(false, "an event classified as a button press: {:?}", b),
        }
        Ok(())
    }

    proptest! {
        #[test]
        fn any_json_is_classified_without_panic(body in json()) {
            check_ids(&classify(&body, 0, &FeedbackSettings::default()))?;
        }

        #[test]
        fn any_event_callback_is_classified_without_panic(event in json(), team in word(), id in word()) {
            let body = serde_json::json!({"type": "event_callback", "team_id": team, "event_id": id, "event": event,
                                          "authorizations": [{"user_id": "UBOT", "is_bot": true}]});
            check_ids(&classify(&body, 0, &FeedbackSettings::default()))?;
        }

        #[test]
        fn mutated_fixtures_are_classified_without_panic(body in mutated_fixture()) {
            check_ids(&classify(&body, 0, &FeedbackSettings::default()))?;
        }
    }

    #[test]
    fn the_fixtures_themselves_are_classified_as_expected() {
        let accepted = fixtures()
            .iter()
            .filter(|b| matches!(classify(b, 0, &FeedbackSettings::default()), Decision::Accept(_)))
            .count();
        // app_mention, assistant thread, dm, file_share, reaction_added (+1), thread_reply.
        assert!(accepted >= 5, "{accepted}");
    }
}
