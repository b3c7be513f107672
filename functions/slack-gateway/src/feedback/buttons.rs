//! Feedback buttons: a press is recorded through the same store, counters, rollup and stream as
//! a reaction. One feedback per user per answer: a press of the sentiment already recorded
//! changes nothing (double clicks, Slack's retries, SQS redeliveries), and a press of the other
//! sentiment replaces it the way a reaction change does (a `removed` event and the old item and
//! counter taken back, then an `added` one).
//!
//! Each step reads before it writes, and the event goes out before the store changes (as for
//! reactions): a retry after a crash or a stream failure sends the same event again (same
//! event_id, which consumers dedupe on) and never double-counts. Presses on one message are one
//! FIFO group, so no two run at once.

use shared::domain::{FeedbackEntry, Sentiment, ThreadRef};
use shared::ports::TurnRecord;
use tracing::info;

use super::FeedbackRecorder;
use crate::interactive::ButtonWork;

/// The feedback item (its `reaction`) a positive press records: apart from the emoji
/// reactions, so a press and a reaction never take each other back.
pub const BUTTON_POSITIVE: &str = "button:positive";
/// The feedback item a negative press records.
pub const BUTTON_NEGATIVE: &str = "button:negative";

/// What a press turned out to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ButtonOutcome {
    /// The message is not a bot answer of a known turn.
    NotABotAnswer,
    /// This sentiment was already recorded for this user on this answer.
    Unchanged,
    /// Recorded (the user had no button feedback on the answer); the turn's thread.
    Recorded { thread_ts: String },
    /// Replaced the user's other sentiment; the turn's thread.
    Switched { thread_ts: String },
}

fn item_name(sentiment: Sentiment) -> &'static str {
    match sentiment {
        Sentiment::Positive => BUTTON_POSITIVE,
        Sentiment::Negative => BUTTON_NEGATIVE,
    }
}

fn opposite(sentiment: Sentiment) -> Sentiment {
    match sentiment {
        Sentiment::Positive => Sentiment::Negative,
        Sentiment::Negative => Sentiment::Positive,
    }
}

fn entry(b: &ButtonWork, sentiment: Sentiment, event_id: String) -> FeedbackEntry {
    FeedbackEntry {
        user_id: b.user_id.clone(),
        reaction: item_name(sentiment).to_string(),
        sentiment,
        at_ms: b.received_at_ms,
        event_id,
    }
}

impl FeedbackRecorder {
    /// Records one press. Errors are storage or stream failures (the work item is retried).
    pub async fn handle_button(&self, b: &ButtonWork) -> shared::Result<ButtonOutcome> {
        let Some(turn) = self.turn_for_press(b).await? else {
            return Ok(ButtonOutcome::NotABotAnswer);
        };
        let chosen = entry(b, b.sentiment, b.event_id.clone());
        let other = entry(b, opposite(b.sentiment), format!("{}-replaced", b.event_id));
        let switched = self.store.has_feedback(&turn, &other).await?;
        if switched {
            self.publish(&turn, &other, false, &b.message_ts).await?;
            self.store.remove_feedback(&turn, &other).await?;
        }
        let recorded = !self.store.has_feedback(&turn, &chosen).await?;
        if recorded {
            self.publish(&turn, &chosen, true, &b.message_ts).await?;
            self.store.add_feedback(&turn, &chosen).await?;
        }
        let thread_ts = turn.thread.thread_ts.clone();
        let outcome = match (switched, recorded) {
            (true, _) => ButtonOutcome::Switched { thread_ts },
            (false, true) => ButtonOutcome::Recorded { thread_ts },
            (false, false) => ButtonOutcome::Unchanged,
        };
        info!(
            event_id = %b.event_id,
            turn_event_id = %turn.event_id,
            sentiment = b.sentiment.as_str(),
            outcome = ?outcome,
            "feedback button"
        );
        Ok(outcome)
    }

    /// The answered turn of the pressed message: the turn whose reply it is, else the turn the
    /// buttons' block names (the last message of a split answer), if that turn was answered.
    async fn turn_for_press(&self, b: &ButtonWork) -> shared::Result<Option<TurnRecord>> {
        if let Some(turn) = self.store.turn_for_reply(&b.team_id, &b.channel_id, &b.message_ts).await? {
            return Ok(Some(turn));
        }
        let Some(named) = &b.turn else { return Ok(None) };
        let thread = ThreadRef {
            team_id: b.team_id.clone(),
            channel_id: b.channel_id.clone(),
            thread_ts: named.thread_ts.clone(),
        };
        Ok(self.store.turn(&thread, &named.message_ts).await?.filter(|t| t.reply_ts.is_some()))
    }
}

#[cfg(test)]
mod tests;
