//! The turn item: its attributes, the index keys written with it, and reading it back.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;

use super::*;
use crate::domain::{Activity, Sentiment, TurnActivity, TurnKey, TurnStatus};

/// The turn attributes [`to_item`] writes only when they have a value: finishing a turn removes
/// those it no longer has (and the kept answer), leaving every other attribute (feedback) alone.
pub(super) const TURN_OPTIONAL_ATTRIBUTES: &[&str] = &[
    "reply_ts",
    "outcome",
    "error_code",
    "pending_analytics",
    "pending_usage",
    "finished_at_ms",
    OPEN_TURN,
    REPLY_KEY,
    KB_CONSULTED,
    HAS_USAGE,
    ANALYTICS_PENDING,
    USAGE_PENDING,
    KEPT_ANSWER,
];

pub(super) fn to_item(t: &TurnRecord) -> HashMap<String, AttributeValue> {
    let mut item = HashMap::from([
        ("pk".to_string(), s(thread_pk(&t.thread))),
        ("sk".to_string(), s(turn_sk(&t.message_ts))),
        ("team_id".to_string(), s(&t.thread.team_id)),
        ("channel_id".to_string(), s(&t.thread.channel_id)),
        ("thread_ts".to_string(), s(&t.thread.thread_ts)),
        ("message_ts".to_string(), s(&t.message_ts)),
        ("event_id".to_string(), s(&t.event_id)),
        ("user_id".to_string(), s(&t.user_id)),
        ("status".to_string(), s(t.status.as_str())),
        ("received_at_ms".to_string(), n(t.received_at_ms)),
        ("expires_at".to_string(), n(t.received_at_ms / 1000 + RETENTION_SECS)),
    ]);
    let optional = [
        ("reply_ts", t.reply_ts.clone()),
        ("outcome", t.outcome.clone()),
        ("error_code", t.error_code.clone()),
        ("pending_analytics", t.pending_analytics.clone()),
        ("pending_usage", t.pending_usage.clone()),
    ];
    for (k, v) in optional {
        if let Some(v) = v {
            item.insert(k.to_string(), s(v));
        }
    }
    if let Some(f) = t.finished_at_ms {
        item.insert("finished_at_ms".into(), n(f));
    }
    add_index_attributes(t, &mut item);
    item
}

/// GSI keys and the small facts metrics-publisher reads from the by-hour index.
fn add_index_attributes(t: &TurnRecord, item: &mut HashMap<String, AttributeValue>) {
    item.insert(AT_MS.into(), n(t.received_at_ms));
    item.insert(HOUR.into(), s(hour_bucket(t.received_at_ms)));
    if t.status == TurnStatus::Received {
        item.insert(OPEN_TURN.into(), s(OPEN_TURN_VALUE));
    }
    if let Some(r) = &t.reply_ts {
        item.insert(REPLY_KEY.into(), s(reply_key(&t.thread.team_id, &t.thread.channel_id, r)));
    }
    if t.status.is_final() {
        // The analytics event is the turn's full description; keep the one fact the KPI needs.
        let kb = t
            .pending_analytics
            .as_deref()
            .and_then(|a| serde_json::from_str::<serde_json::Value>(a).ok())
            .and_then(|v| v.get("knowledge_bases").and_then(|k| k.as_array()).map(|k| !k.is_empty()));
        if let Some(kb) = kb {
            item.insert(KB_CONSULTED.into(), AttributeValue::Bool(kb));
        }
        item.insert(HAS_USAGE.into(), AttributeValue::Bool(t.pending_usage.is_some()));
    }
    if t.pending_analytics.is_some() {
        item.insert(ANALYTICS_PENDING.into(), AttributeValue::Bool(true));
    }
    if t.pending_usage.is_some() {
        item.insert(USAGE_PENDING.into(), AttributeValue::Bool(true));
    }
    if t.pending_analytics.is_some() || t.pending_usage.is_some() {
        // Removed with the last copy (`clear_pending`): the index holds only what is still owed.
        item.insert(PENDING_COPY.into(), s(PENDING_COPY_VALUE));
        item.insert(PENDING_SINCE_MS.into(), n(t.finished_at_ms.unwrap_or(t.received_at_ms)));
    }
}

pub(super) fn from_item(item: &HashMap<String, AttributeValue>) -> Result<TurnRecord> {
    let get_s = |k: &str| item.get(k).and_then(|v| v.as_s().ok()).cloned();
    let get_n = |k: &str| item.get(k).and_then(|v| v.as_n().ok()).and_then(|v| v.parse::<i64>().ok());
    let bad = |what: &str| Error::Malformed { what: "conversation item", reason: format!("missing or invalid {what}") };
    Ok(TurnRecord {
        thread: ThreadRef {
            team_id: get_s("team_id").ok_or_else(|| bad("team_id"))?,
            channel_id: get_s("channel_id").ok_or_else(|| bad("channel_id"))?,
            thread_ts: get_s("thread_ts").ok_or_else(|| bad("thread_ts"))?,
        },
        message_ts: get_s("message_ts").ok_or_else(|| bad("message_ts"))?,
        event_id: get_s("event_id").unwrap_or_default(),
        user_id: get_s("user_id").unwrap_or_default(),
        status: get_s("status").as_deref().and_then(TurnStatus::parse).ok_or_else(|| bad("status"))?,
        received_at_ms: get_n("received_at_ms").ok_or_else(|| bad("received_at_ms"))?,
        finished_at_ms: get_n("finished_at_ms"),
        reply_ts: get_s("reply_ts"),
        outcome: get_s("outcome"),
        error_code: get_s("error_code"),
        pending_analytics: get_s("pending_analytics"),
        pending_usage: get_s("pending_usage"),
    })
}

pub(super) fn activity_from_item(item: &HashMap<String, AttributeValue>) -> Option<Activity> {
    let get_n = |k: &str| item.get(k).and_then(|v| v.as_n().ok()).and_then(|v| v.parse::<i64>().ok());
    let get_b = |k: &str| item.get(k).and_then(|v| v.as_bool().ok()).copied();
    let sk = item.get("sk").and_then(|v| v.as_s().ok())?;
    if sk.starts_with(FEEDBACK_PREFIX) {
        let sentiment = match item.get(SENTIMENT).and_then(|v| v.as_s().ok()).map(String::as_str) {
            Some("positive") => Sentiment::Positive,
            Some("negative") => Sentiment::Negative,
            _ => return None,
        };
        return Some(Activity::Feedback { sentiment, at_ms: get_n(AT_MS)? });
    }
    Some(Activity::Turn(TurnActivity {
        key: TurnKey { pk: item.get("pk").and_then(|v| v.as_s().ok())?.clone(), sk: sk.clone() },
        status: item.get("status").and_then(|v| v.as_s().ok()).and_then(|v| TurnStatus::parse(v))?,
        received_at_ms: get_n(AT_MS)?,
        finished_at_ms: get_n("finished_at_ms"),
        replied: item.contains_key(REPLY_KEY),
        kb_consulted: get_b(KB_CONSULTED),
        has_usage: get_b(HAS_USAGE).unwrap_or(false),
        analytics_pending: get_b(ANALYTICS_PENDING).unwrap_or(false),
        usage_pending: get_b(USAGE_PENDING).unwrap_or(false),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn turn(status: TurnStatus) -> TurnRecord {
        TurnRecord {
            thread: ThreadRef { team_id: "T1".into(), channel_id: "C1".into(), thread_ts: "1.0".into() },
            message_ts: "1.0".into(),
            event_id: "Ev1".into(),
            user_id: "U1".into(),
            status,
            received_at_ms: 1_763_913_600_000, // 2025-11-23T16:00:00Z
            finished_at_ms: None,
            reply_ts: None,
            outcome: None,
            error_code: None,
            pending_analytics: None,
            pending_usage: None,
        }
    }

    #[test]
    fn open_turns_are_in_the_sparse_index_until_finished() {
        let t = turn(TurnStatus::Received);
        let item = to_item(&t);
        assert_eq!(item.get(OPEN_TURN), Some(&s(OPEN_TURN_VALUE)));
        assert_eq!(item.get(HOUR), Some(&s("2025-11-23T16")));
        assert!(!item.contains_key(REPLY_KEY) && !item.contains_key(KB_CONSULTED));

        let mut done = turn(TurnStatus::Answered);
        done.reply_ts = Some("2.0".into());
        done.pending_analytics = Some(r#"{"knowledge_bases":["KB1"]}"#.into());
        let item = to_item(&done);
        assert!(!item.contains_key(OPEN_TURN));
        assert_eq!(item.get(REPLY_KEY), Some(&s("REPLY#T1#C1#2.0")));
        assert_eq!(item.get(KB_CONSULTED), Some(&AttributeValue::Bool(true)));
        assert_eq!(item.get(HAS_USAGE), Some(&AttributeValue::Bool(false)));
        assert_eq!(item.get(ANALYTICS_PENDING), Some(&AttributeValue::Bool(true)));
        assert!(!item.contains_key(USAGE_PENDING));
        // In the pending index, by when it finished (or was received, if that is unknown).
        assert_eq!(item.get(PENDING_COPY), Some(&s(PENDING_COPY_VALUE)));
        assert_eq!(item.get(PENDING_SINCE_MS), Some(&n(done.received_at_ms)));
        done.finished_at_ms = Some(done.received_at_ms + 5);
        assert_eq!(to_item(&done).get(PENDING_SINCE_MS), Some(&n(done.received_at_ms + 5)));
        done.pending_analytics = None;
        assert!(!to_item(&done).contains_key(PENDING_COPY), "nothing owed: not in the pending index");
        match activity_from_item(&item) {
            Some(Activity::Turn(a)) => {
                assert!(a.replied && a.analytics_pending && !a.usage_pending);
                assert_eq!(a.kb_consulted, Some(true));
            }
            other => panic!("{other:?}"),
        }
    }
}
