use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use shared::domain::TurnStatus;

use super::*;
use crate::feedback::{FeedbackEvent, FeedbackSettings, FeedbackSink, FeedbackStore};
use crate::interactive::AnsweredTurn;

/// A conversations table in memory: one answered turn (question 1.0, reply 2.0, in thread 1.0).
#[derive(Default)]
struct Table {
    items: Mutex<BTreeSet<(String, String)>>,
    counters: Mutex<BTreeMap<&'static str, i64>>,
    events: Mutex<Vec<(String, String, String)>>,
    /// The stream fails this many times more.
    sink_failures: Mutex<u32>,
}

fn turn() -> TurnRecord {
    TurnRecord {
        thread: ThreadRef { team_id: "T1".into(), channel_id: "C1".into(), thread_ts: "1.0".into() },
        message_ts: "1.0".into(),
        event_id: "EvTurn".into(),
        user_id: "UASK".into(),
        status: TurnStatus::Answered,
        received_at_ms: 0,
        finished_at_ms: Some(1),
        reply_ts: Some("2.0".into()),
        outcome: Some("answered".into()),
        error_code: None,
        pending_analytics: None,
        pending_usage: None,
    }
}

#[async_trait]
impl FeedbackStore for Table {
    async fn turn_for_reply(&self, _: &str, _: &str, reply_ts: &str) -> shared::Result<Option<TurnRecord>> {
        Ok((reply_ts == "2.0").then(turn))
    }
    async fn turn(&self, thread: &ThreadRef, message_ts: &str) -> shared::Result<Option<TurnRecord>> {
        Ok((thread.thread_ts == "1.0" && message_ts == "1.0").then(turn))
    }
    async fn has_feedback(&self, _: &TurnRecord, e: &FeedbackEntry) -> shared::Result<bool> {
        Ok(self.items.lock().unwrap().contains(&(e.user_id.clone(), e.reaction.clone())))
    }
    async fn add_feedback(&self, _: &TurnRecord, e: &FeedbackEntry) -> shared::Result<bool> {
        let added = self.items.lock().unwrap().insert((e.user_id.clone(), e.reaction.clone()));
        if added {
            *self.counters.lock().unwrap().entry(e.sentiment.as_str()).or_default() += 1;
        }
        Ok(added)
    }
    async fn remove_feedback(&self, _: &TurnRecord, e: &FeedbackEntry) -> shared::Result<bool> {
        let removed = self.items.lock().unwrap().remove(&(e.user_id.clone(), e.reaction.clone()));
        if removed {
            *self.counters.lock().unwrap().entry(e.sentiment.as_str()).or_default() -= 1;
        }
        Ok(removed)
    }
}

#[async_trait]
impl FeedbackSink for Table {
    async fn publish(&self, event: &FeedbackEvent) -> shared::Result<()> {
        let mut failures = self.sink_failures.lock().unwrap();
        if *failures > 0 {
            *failures -= 1;
            return Err(shared::Error::Malformed { what: "test", reason: "stream down".into() });
        }
        self.events.lock().unwrap().push((
            event.event_id.clone(),
            event.action.clone(),
            event.sentiment.as_str().into(),
        ));
        Ok(())
    }
}

impl Table {
    fn counts(&self) -> (i64, i64) {
        let c = self.counters.lock().unwrap();
        (c.get("positive").copied().unwrap_or(0), c.get("negative").copied().unwrap_or(0))
    }
}

fn recorder(table: Arc<Table>) -> FeedbackRecorder {
    FeedbackRecorder {
        store: table.clone(),
        sink: Some(table),
        settings: FeedbackSettings::default(),
        agent_id: "A".into(),
        agent_alias_id: "B".into(),
    }
}

fn press(user: &str, positive: bool, action_ts: &str, message_ts: &str) -> ButtonWork {
    ButtonWork {
        event_id: format!("Fb-{user}-{action_ts}"),
        team_id: "T1".into(),
        user_id: user.into(),
        channel_id: "C1".into(),
        message_ts: message_ts.into(),
        turn: Some(AnsweredTurn { thread_ts: "1.0".into(), message_ts: "1.0".into() }),
        sentiment: if positive { Sentiment::Positive } else { Sentiment::Negative },
        action_ts: action_ts.into(),
        received_at_ms: 1_763_913_600_000,
    }
}

fn recorded() -> ButtonOutcome {
    ButtonOutcome::Recorded { thread_ts: "1.0".into() }
}

#[tokio::test]
async fn one_feedback_per_user_per_answer_and_a_switch_replaces_it() {
    let table = Arc::new(Table::default());
    let r = recorder(table.clone());
    assert_eq!(r.handle_button(&press("U1", true, "5.1", "2.0")).await.unwrap(), recorded());
    // A double click and a redelivery of the first press.
    assert_eq!(r.handle_button(&press("U1", true, "5.2", "2.0")).await.unwrap(), ButtonOutcome::Unchanged);
    assert_eq!(r.handle_button(&press("U1", true, "5.1", "2.0")).await.unwrap(), ButtonOutcome::Unchanged);
    assert_eq!(table.counts(), (1, 0));
    // The user changes their mind, and back.
    let switched = ButtonOutcome::Switched { thread_ts: "1.0".into() };
    assert_eq!(r.handle_button(&press("U1", false, "5.3", "2.0")).await.unwrap(), switched);
    assert_eq!(table.counts(), (0, 1));
    assert_eq!(r.handle_button(&press("U1", true, "5.4", "2.0")).await.unwrap(), switched);
    assert_eq!(table.counts(), (1, 0));
    // Another user counts on their own.
    assert_eq!(r.handle_button(&press("U2", false, "5.5", "2.0")).await.unwrap(), recorded());
    assert_eq!(table.counts(), (1, 1));
    let events = table.events.lock().unwrap().clone();
    let e = |id: &str, action: &str, s: &str| (id.to_string(), action.to_string(), s.to_string());
    assert_eq!(
        events,
        vec![
            e("Fb-U1-5.1", "added", "positive"),
            e("Fb-U1-5.3-replaced", "removed", "positive"),
            e("Fb-U1-5.3", "added", "negative"),
            e("Fb-U1-5.4-replaced", "removed", "negative"),
            e("Fb-U1-5.4", "added", "positive"),
            e("Fb-U2-5.5", "added", "negative"),
        ]
    );
}

#[tokio::test]
async fn presses_on_the_last_part_find_the_named_turn_and_others_are_not_answers() {
    let table = Arc::new(Table::default());
    let r = recorder(table.clone());
    // The last message of a split answer (3.0) is not the recorded reply: the block names the turn.
    assert_eq!(r.handle_button(&press("U1", false, "6.1", "3.0")).await.unwrap(), recorded());
    let mut foreign = press("U2", true, "6.2", "9.0");
    foreign.turn = None;
    assert_eq!(r.handle_button(&foreign).await.unwrap(), ButtonOutcome::NotABotAnswer);
    foreign.turn = Some(AnsweredTurn { thread_ts: "8.0".into(), message_ts: "8.0".into() });
    assert_eq!(r.handle_button(&foreign).await.unwrap(), ButtonOutcome::NotABotAnswer);
    assert_eq!(table.counts(), (0, 1));
}

#[tokio::test]
async fn a_stream_failure_stores_nothing_and_the_retry_counts_once() {
    let table = Arc::new(Table::default());
    let r = recorder(table.clone());
    *table.sink_failures.lock().unwrap() = 1;
    assert!(r.handle_button(&press("U1", true, "7.1", "2.0")).await.is_err(), "retried through the queue");
    assert_eq!(table.counts(), (0, 0));
    assert_eq!(r.handle_button(&press("U1", true, "7.1", "2.0")).await.unwrap(), recorded());
    assert_eq!(table.counts(), (1, 0));
    assert_eq!(table.events.lock().unwrap().len(), 1);
}
