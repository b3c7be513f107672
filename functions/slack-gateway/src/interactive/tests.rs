//! Examples from the fixture and Slack's documented shapes, then properties on generated input:
//! no bytes or JSON make the parser panic, and what it accepts round-trips.

use base64::Engine;
use proptest::prelude::*;
use serde_json::{json, Value};

use super::*;

/// The fixture's form-encoded body (events/slack/block_actions_feedback.json).
fn fixture_body() -> Vec<u8> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../events/slack/block_actions_feedback.json");
    let event: Value = serde_json::from_str(&std::fs::read_to_string(path).expect("fixture")).expect("json");
    assert_eq!(event["headers"]["content-type"], "application/x-www-form-urlencoded");
    let raw = event["body"].as_str().expect("body");
    assert_eq!(event["isBase64Encoded"], true, "Function URLs base64-encode form bodies");
    base64::engine::general_purpose::STANDARD.decode(raw).expect("base64")
}

fn accepted(d: Decision) -> ButtonWork {
    match d {
        Decision::Accept(item) => match *item {
            WorkItem::FeedbackButton(b) => b,
            other => panic!("expected a button press, got {other:?}"),
        },
        other => panic!("expected a button press, got {other:?}"),
    }
}

fn drift_of(d: Decision) -> (String, String) {
    match d {
        Decision::Drift { event_type, detail } => (event_type, detail),
        other => panic!("expected drift, got {other:?}"),
    }
}

#[test]
fn the_fixture_is_a_positive_press_on_a_named_turn() {
    let payload = form_payload(&fixture_body()).expect("payload");
    let b = accepted(classify_interaction(&payload, 7));
    assert_eq!(b.event_id, "Fb-U024BE7LH-1713534801.417263");
    assert_eq!((b.team_id.as_str(), b.user_id.as_str(), b.channel_id.as_str()), ("T0001", "U024BE7LH", "C024BE91L"));
    assert_eq!(b.message_ts, "1713534725.000200");
    assert_eq!(b.sentiment, Sentiment::Positive);
    assert_eq!(
        b.turn,
        Some(AnsweredTurn { thread_ts: "1713534720.001234".into(), message_ts: "1713534720.001234".into() })
    );
    assert_eq!(b.received_at_ms, 7);
    assert_eq!(b.group().thread_ts, b.message_ts, "presses on one message are one FIFO group");
}

#[test]
fn the_block_we_send_is_the_block_we_parse() {
    let block = feedback_block("1.1", "1.2");
    assert_eq!(block["type"], "context_actions");
    let buttons = &block["elements"][0];
    assert_eq!(
        (buttons["type"].as_str(), buttons["action_id"].as_str()),
        (Some("feedback_buttons"), Some(FEEDBACK_ACTION_ID))
    );
    assert_eq!(
        (buttons["positive_button"]["value"].as_str(), buttons["negative_button"]["value"].as_str()),
        (Some(POSITIVE), Some(NEGATIVE))
    );
    let block_id = block["block_id"].as_str().expect("block id");
    assert!(block_id.len() <= 255);
    assert_eq!(turn_of_block(block_id), Some(AnsweredTurn { thread_ts: "1.1".into(), message_ts: "1.2".into() }));
    assert_eq!(turn_of_block("answer_feedback/1.1"), None);
    assert_eq!(turn_of_block("answer_feedback/x/1.2"), None);
    assert_eq!(turn_of_block("other/1.1/1.2"), None);
}

#[test]
fn other_actions_types_and_shapes_are_drift() {
    let payload = form_payload(&fixture_body()).expect("payload");
    let mut unknown = payload.clone();
    unknown["actions"][0]["action_id"] = json!("approve_button");
    assert_eq!(drift_of(classify_interaction(&unknown, 0)), ("block_actions".into(), "unknown action_id".into()));
    let mut value = payload.clone();
    value["actions"][0]["value"] = json!("positive_feedback");
    assert_eq!(drift_of(classify_interaction(&value, 0)).0, "block_actions");
    let mut shortcut = payload.clone();
    shortcut["type"] = json!("view_submission");
    assert_eq!(drift_of(classify_interaction(&shortcut, 0)).0, "view_submission");
    let mut odd = payload.clone();
    odd["type"] = json!("a brand new type with user text");
    assert_eq!(drift_of(classify_interaction(&odd, 0)).0, "interactive", "untrusted types never become dimensions");
    let mut no_user = payload.clone();
    no_user["user"] = json!({"id": "U1; DROP"});
    assert_eq!(drift_of(classify_interaction(&no_user, 0)).0, "block_actions");
    // No turn in the block id: still a press, matched on the message it is on.
    let mut anonymous = payload;
    anonymous["actions"][0]["block_id"] = json!("Xy1");
    assert_eq!(accepted(classify_interaction(&anonymous, 0)).turn, None);
}

#[test]
fn form_bodies_decode_as_slack_encodes_them() {
    assert_eq!(form_payload(b"payload=%7B%22a%22%3A+%22b+c%25%22%7D").expect("ok"), json!({"a": "b c%"}));
    assert_eq!(form_payload(b"x=1&payload=%7B%7D&y=2").expect("ok"), json!({}));
    assert!(form_payload(b"payload=%7B").is_err());
    assert!(form_payload(b"{\"type\":\"event_callback\"}").is_err());
    assert!(form_payload(b"payload=%FF%FE").is_err());
    assert_eq!(percent_decode(b"%zz%4%", Plus::Space), b"%zz%4%");
}

/// The payload Slack would send for `b` (the inverse of classification, for the round trip).
fn payload_of(b: &ButtonWork) -> Value {
    let block_id = match &b.turn {
        Some(t) => format!("{FEEDBACK_BLOCK_PREFIX}{}/{}", t.thread_ts, t.message_ts),
        None => "Xy1".to_string(),
    };
    json!({
        "type": "block_actions",
        "user": {"id": b.user_id, "team_id": b.team_id},
        "team": {"id": b.team_id},
        "channel": {"id": b.channel_id},
        "container": {"type": "message", "message_ts": b.message_ts, "channel_id": b.channel_id},
        "actions": [{"type": "feedback_buttons", "action_id": FEEDBACK_ACTION_ID, "block_id": block_id,
                     "value": b.sentiment.as_str(), "action_ts": b.action_ts}],
    })
}

fn id() -> impl Strategy<Value = String> {
    "[A-Z0-9]{1,20}"
}

fn ts() -> impl Strategy<Value = String> {
    "[0-9]{1,10}\\.[0-9]{1,6}"
}

prop_compose! {
    fn button()(team in id(), user in id(), channel in id(), message_ts in ts(), action_ts in ts(),
                turn in proptest::option::of((ts(), ts())), positive in any::<bool>(), at in any::<i64>()) -> ButtonWork {
        ButtonWork {
            event_id: format!("Fb-{user}-{action_ts}"),
            team_id: team,
            user_id: user,
            channel_id: channel,
            message_ts,
            turn: turn.map(|(thread_ts, message_ts)| AnsweredTurn { thread_ts, message_ts }),
            sentiment: if positive { Sentiment::Positive } else { Sentiment::Negative },
            action_ts,
            received_at_ms: at,
        }
    }
}

fn json_value() -> impl Strategy<Value = Value> {
    let word = prop_oneof![
        prop::sample::select(vec![
            "type",
            "block_actions",
            "actions",
            "action_id",
            FEEDBACK_ACTION_ID,
            "value",
            POSITIVE,
            NEGATIVE,
            "user",
            "id",
            "team",
            "channel",
            "container",
            "message_ts",
            "action_ts",
            "block_id",
            "1.2",
            "U1",
            "",
        ])
        .prop_map(str::to_string),
        any::<String>(),
    ];
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        word.clone().prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 48, 6, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(word.clone(), inner, 0..6).prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #[test]
    fn any_bytes_parse_without_panic(raw in prop::collection::vec(any::<u8>(), 0..512)) {
        if let Ok(payload) = form_payload(&raw) {
            let _ = classify_interaction(&payload, 0);
        }
    }

    #[test]
    fn any_json_is_classified_without_panic_and_accepted_presses_are_well_formed(payload in json_value()) {
        if let Decision::Accept(item) = classify_interaction(&payload, 0) {
            let WorkItem::FeedbackButton(b) = *item else { return Err(TestCaseError::fail("not a press")) };
            prop_assert!(!b.user_id.is_empty() && !b.team_id.is_empty() && !b.channel_id.is_empty());
            prop_assert!(is_ts(&b.message_ts) && is_ts(&b.action_ts));
            prop_assert!(b.event_id.len() <= 128, "a FIFO deduplication id");
        }
    }

    #[test]
    fn accepted_presses_round_trip_through_the_form_body(b in button()) {
        let body = form_body(&payload_of(&b));
        let payload = form_payload(body.as_bytes()).map_err(TestCaseError::fail)?;
        prop_assert_eq!(classify_interaction(&payload, b.received_at_ms), Decision::Accept(Box::new(WorkItem::FeedbackButton(b.clone()))));
        let queued: WorkItem = serde_json::from_str(&serde_json::to_string(&WorkItem::FeedbackButton(b.clone())).map_err(|e| TestCaseError::fail(e.to_string()))?)
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(queued, WorkItem::FeedbackButton(b));
    }

    #[test]
    fn any_json_round_trips_through_the_form_encoding(payload in json_value()) {
        prop_assert_eq!(form_payload(form_body(&payload).as_bytes()).map_err(TestCaseError::fail)?, payload);
    }
}
