//! Feedback: a thumbs up / down reaction on a bot answer becomes feedback on that answer's turn.
//! It is stored with the conversation record (a feedback item and the turn's counters), sent to
//! the feedback Firehose stream, and counted into SatisfactionScore by metrics-publisher.
//! A reaction that is not feedback, or is not on a bot answer, is ignored without error.

use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use shared::aws::conversations::DynamoDbConversations;
use shared::aws::firehose::FirehoseFeedback;
use shared::domain::{FeedbackEntry, Sentiment, ThreadRef};
use shared::ports::{ConversationStore, TurnRecord};
use tracing::{debug, info};

use crate::work::ReactionWork;

mod buttons;
pub use buttons::{ButtonOutcome, BUTTON_NEGATIVE, BUTTON_POSITIVE};

pub use crate::reactions::{base_reaction, FeedbackSettings, DEFAULT_NEGATIVE, DEFAULT_POSITIVE};

/// Version of the feedback event schema written by this code.
pub const FEEDBACK_SCHEMA_VERSION: u32 = 1;

/// One feedback event (Firehose record, newline-delimited JSON; Glue table `feedback_events`).
/// Delivery is at least once: dedupe on `event_id`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeedbackEvent {
    pub timestamp: String,
    /// The Slack event of the reaction.
    pub event_id: String,
    /// `added` or `removed`.
    pub action: String,
    pub sentiment: Sentiment,
    pub reaction: String,
    /// Who reacted.
    pub user_id: String,
    pub team_id: String,
    pub channel_id: String,
    pub thread_id: String,
    /// The bot answer reacted on.
    pub reply_ts: String,
    /// The answered turn's event id: joins `events.event_id`.
    pub turn_event_id: String,
    pub outcome: Option<String>,
    pub agent_id: String,
    pub agent_alias_id: String,
    pub schema_version: u32,
}

/// Where feedback is stored: the conversations table.
#[async_trait]
pub trait FeedbackStore: Send + Sync {
    /// The turn whose answer is the message `reply_ts`, if it is a bot answer.
    async fn turn_for_reply(
        &self,
        team_id: &str,
        channel_id: &str,
        reply_ts: &str,
    ) -> shared::Result<Option<TurnRecord>>;
    /// The turn of the user's message `message_ts` in `thread`.
    async fn turn(&self, thread: &ThreadRef, message_ts: &str) -> shared::Result<Option<TurnRecord>>;
    /// Whether `entry` (its user and reaction) is recorded on `turn`.
    async fn has_feedback(&self, turn: &TurnRecord, entry: &FeedbackEntry) -> shared::Result<bool>;
    /// Ok(false) when already recorded.
    async fn add_feedback(&self, turn: &TurnRecord, entry: &FeedbackEntry) -> shared::Result<bool>;
    /// Ok(false) when there was nothing to remove.
    async fn remove_feedback(&self, turn: &TurnRecord, entry: &FeedbackEntry) -> shared::Result<bool>;
}

#[async_trait]
impl FeedbackStore for DynamoDbConversations {
    async fn turn_for_reply(
        &self,
        team_id: &str,
        channel_id: &str,
        reply_ts: &str,
    ) -> shared::Result<Option<TurnRecord>> {
        DynamoDbConversations::turn_for_reply(self, team_id, channel_id, reply_ts).await
    }
    async fn turn(&self, thread: &ThreadRef, message_ts: &str) -> shared::Result<Option<TurnRecord>> {
        ConversationStore::turn(self, thread, message_ts).await
    }
    async fn has_feedback(&self, turn: &TurnRecord, entry: &FeedbackEntry) -> shared::Result<bool> {
        DynamoDbConversations::has_feedback(self, turn, entry).await
    }
    async fn add_feedback(&self, turn: &TurnRecord, entry: &FeedbackEntry) -> shared::Result<bool> {
        DynamoDbConversations::add_feedback(self, turn, entry).await
    }
    async fn remove_feedback(&self, turn: &TurnRecord, entry: &FeedbackEntry) -> shared::Result<bool> {
        DynamoDbConversations::remove_feedback(self, turn, entry).await
    }
}

/// Where feedback events go: the feedback Firehose stream.
#[async_trait]
pub trait FeedbackSink: Send + Sync {
    async fn publish(&self, event: &FeedbackEvent) -> shared::Result<()>;
}

#[async_trait]
impl FeedbackSink for FirehoseFeedback {
    async fn publish(&self, event: &FeedbackEvent) -> shared::Result<()> {
        self.put(event).await
    }
}

/// What a reaction turned out to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FeedbackOutcome {
    /// Not one of the feedback reactions.
    NotFeedback,
    /// Not on a bot answer (a user's message, an unknown message, a later part of a long answer).
    NotABotAnswer,
    Recorded,
    Removed,
    /// Already recorded, or nothing to remove (a redelivery, or a reaction older than the feature).
    Unchanged,
}

/// Turns reactions into feedback.
pub struct FeedbackRecorder {
    pub store: Arc<dyn FeedbackStore>,
    /// None when FEEDBACK_STREAM_NAME is unset: feedback is then stored and scored, not streamed.
    pub sink: Option<Arc<dyn FeedbackSink>>,
    pub settings: FeedbackSettings,
    pub agent_id: String,
    pub agent_alias_id: String,
}

impl FeedbackRecorder {
    /// Handles one reaction. Errors are storage or stream failures (the work item is retried);
    /// a reaction that is not feedback is Ok.
    pub async fn handle(&self, r: &ReactionWork) -> shared::Result<FeedbackOutcome> {
        let Some(sentiment) = self.settings.sentiment(&r.reaction) else {
            debug!(event_id = %r.event_id, reaction = %r.reaction, ignored = "not_feedback", "reaction ignored");
            return Ok(FeedbackOutcome::NotFeedback);
        };
        let Some(turn) = self.store.turn_for_reply(&r.team_id, &r.channel_id, &r.item_ts).await? else {
            debug!(event_id = %r.event_id, channel = %r.channel_id, item_ts = %r.item_ts, ignored = "not_a_bot_answer", "reaction ignored");
            return Ok(FeedbackOutcome::NotABotAnswer);
        };
        let entry = FeedbackEntry {
            user_id: r.user_id.clone(),
            reaction: base_reaction(&r.reaction).to_string(),
            sentiment,
            at_ms: r.received_at_ms,
            event_id: r.event_id.clone(),
        };
        // The event goes first: if storing then fails, the retry sends it again (same event_id)
        // rather than losing it.
        self.publish(&turn, &entry, r.added, &r.item_ts).await?;
        let changed = if r.added {
            self.store.add_feedback(&turn, &entry).await?
        } else {
            self.store.remove_feedback(&turn, &entry).await?
        };
        let outcome = match (changed, r.added) {
            (false, _) => FeedbackOutcome::Unchanged,
            (true, true) => FeedbackOutcome::Recorded,
            (true, false) => FeedbackOutcome::Removed,
        };
        info!(
            event_id = %r.event_id,
            turn_event_id = %turn.event_id,
            sentiment = sentiment.as_str(),
            added = r.added,
            outcome = ?outcome,
            "feedback"
        );
        Ok(outcome)
    }

    /// Sends the feedback event of `entry` (added or removed) on the message `reply_ts`, when
    /// there is a stream.
    async fn publish(
        &self,
        turn: &TurnRecord,
        entry: &FeedbackEntry,
        added: bool,
        reply_ts: &str,
    ) -> shared::Result<()> {
        match &self.sink {
            Some(sink) => sink.publish(&self.event(turn, entry, added, reply_ts)).await,
            None => Ok(()),
        }
    }

    fn event(&self, turn: &TurnRecord, entry: &FeedbackEntry, added: bool, reply_ts: &str) -> FeedbackEvent {
        FeedbackEvent {
            timestamp: chrono::DateTime::from_timestamp_millis(entry.at_ms)
                .unwrap_or_default()
                .format("%Y-%m-%dT%H:%M:%S%.3fZ")
                .to_string(),
            event_id: entry.event_id.clone(),
            action: if added { "added" } else { "removed" }.to_string(),
            sentiment: entry.sentiment,
            reaction: entry.reaction.clone(),
            user_id: entry.user_id.clone(),
            team_id: turn.thread.team_id.clone(),
            channel_id: turn.thread.channel_id.clone(),
            thread_id: turn.thread.thread_ts.clone(),
            reply_ts: reply_ts.to_string(),
            turn_event_id: turn.event_id.clone(),
            outcome: turn.outcome.clone(),
            agent_id: self.agent_id.clone(),
            agent_alias_id: self.agent_alias_id.clone(),
            schema_version: FEEDBACK_SCHEMA_VERSION,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use shared::domain::TurnStatus;

    use super::*;

    /// Records calls in order; the sink fails when told to.
    #[derive(Default)]
    struct Log {
        calls: Mutex<Vec<String>>,
        sink_fails: bool,
    }

    #[async_trait]
    impl FeedbackStore for Log {
        async fn turn_for_reply(&self, _: &str, _: &str, reply_ts: &str) -> shared::Result<Option<TurnRecord>> {
            Ok((reply_ts == "2.0").then(|| TurnRecord {
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
            }))
        }
        async fn turn(&self, _: &ThreadRef, _: &str) -> shared::Result<Option<TurnRecord>> {
            Ok(None)
        }
        async fn has_feedback(&self, _: &TurnRecord, _: &FeedbackEntry) -> shared::Result<bool> {
            Ok(false)
        }
        async fn add_feedback(&self, _: &TurnRecord, e: &FeedbackEntry) -> shared::Result<bool> {
            self.calls.lock().unwrap().push(format!("add {} {}", e.reaction, e.sentiment.as_str()));
            Ok(true)
        }
        async fn remove_feedback(&self, _: &TurnRecord, e: &FeedbackEntry) -> shared::Result<bool> {
            self.calls.lock().unwrap().push(format!("remove {}", e.reaction));
            Ok(true)
        }
    }

    #[async_trait]
    impl FeedbackSink for Log {
        async fn publish(&self, event: &FeedbackEvent) -> shared::Result<()> {
            if self.sink_fails {
                return Err(shared::Error::Malformed { what: "test", reason: "stream down".into() });
            }
            self.calls.lock().unwrap().push(format!("publish {} {}", event.action, event.turn_event_id));
            Ok(())
        }
    }

    fn recorder(log: Arc<Log>) -> FeedbackRecorder {
        FeedbackRecorder {
            store: log.clone(),
            sink: Some(log),
            settings: FeedbackSettings::default(),
            agent_id: "A".into(),
            agent_alias_id: "B".into(),
        }
    }

    fn reaction(name: &str, item_ts: &str, added: bool) -> ReactionWork {
        ReactionWork {
            event_id: "EvR".into(),
            team_id: "T1".into(),
            user_id: "U1".into(),
            reaction: name.into(),
            added,
            channel_id: "C1".into(),
            item_ts: item_ts.into(),
            item_user: None,
            received_at_ms: 1_763_913_600_000,
        }
    }

    #[tokio::test]
    async fn the_event_goes_out_before_the_store_and_a_stream_failure_stores_nothing() {
        let log = Arc::new(Log::default());
        let r = recorder(log.clone());
        assert_eq!(r.handle(&reaction("+1::skin-tone-2", "2.0", true)).await.unwrap(), FeedbackOutcome::Recorded);
        assert_eq!(r.handle(&reaction("+1", "2.0", false)).await.unwrap(), FeedbackOutcome::Removed);
        assert_eq!(r.handle(&reaction("tada", "2.0", true)).await.unwrap(), FeedbackOutcome::NotFeedback);
        assert_eq!(r.handle(&reaction("-1", "3.0", true)).await.unwrap(), FeedbackOutcome::NotABotAnswer);
        assert_eq!(
            *log.calls.lock().unwrap(),
            vec!["publish added EvTurn", "add +1 positive", "publish removed EvTurn", "remove +1"]
        );

        let failing = Arc::new(Log { sink_fails: true, ..Log::default() });
        let r = recorder(failing.clone());
        assert!(r.handle(&reaction("-1", "2.0", true)).await.is_err(), "retried through the queue");
        assert!(failing.calls.lock().unwrap().is_empty(), "nothing stored without the event");
    }

    #[test]
    fn default_reactions_and_skin_tones() {
        let s = FeedbackSettings::default();
        assert_eq!(s.sentiment("+1"), Some(Sentiment::Positive));
        assert_eq!(s.sentiment("thumbsup"), Some(Sentiment::Positive));
        assert_eq!(s.sentiment("+1::skin-tone-4"), Some(Sentiment::Positive));
        assert_eq!(s.sentiment("-1"), Some(Sentiment::Negative));
        assert_eq!(s.sentiment("thumbsdown::skin-tone-2"), Some(Sentiment::Negative));
        assert_eq!(s.sentiment("hourglass_flowing_sand"), None);
        assert_eq!(s.sentiment("tada"), None);
    }

    #[test]
    fn lists_from_env_and_errors_name_the_variable() {
        // The only test in this crate that touches these variables.
        std::env::set_var("FEEDBACK_POSITIVE_REACTIONS", " :white_check_mark:, heart ");
        std::env::set_var("FEEDBACK_NEGATIVE_REACTIONS", "x");
        let s = FeedbackSettings::from_env().expect("settings");
        assert_eq!(s.positive, vec!["white_check_mark", "heart"]);
        assert_eq!(s.sentiment("x"), Some(Sentiment::Negative));
        assert_eq!(s.sentiment("+1"), None);
        std::env::set_var("FEEDBACK_NEGATIVE_REACTIONS", "heart");
        let e = FeedbackSettings::from_env().unwrap_err().to_string();
        assert!(e.contains("FEEDBACK_NEGATIVE_REACTIONS") && e.contains("heart"), "{e}");
        std::env::set_var("FEEDBACK_NEGATIVE_REACTIONS", " , ");
        let e = FeedbackSettings::from_env().unwrap_err().to_string();
        assert!(e.contains("FEEDBACK_NEGATIVE_REACTIONS"), "{e}");
        std::env::remove_var("FEEDBACK_POSITIVE_REACTIONS");
        std::env::remove_var("FEEDBACK_NEGATIVE_REACTIONS");
    }
}
