//! A press of an answer's feedback buttons: recorded like a reaction (feedback.rs), then a short
//! thanks only the presser sees.
//!
//! The thanks goes out with `chat.postEphemeral` in the answer's thread rather than the
//! payload's `response_url`: the bot token and the Slack client (retries, token rotation, the
//! fake Slack in tests) are already here, the call reaches only Slack's API host (a
//! `response_url` is a URL from the request, one more host to trust and fetch), and it works for
//! a press the queue delivers late (a `response_url` lapses after 30 minutes).

use tracing::warn;

use super::{WorkError, Worker};
use crate::feedback::ButtonOutcome;
use crate::interactive::ButtonWork;

/// The thanks for a positive press.
pub const THANKS_POSITIVE: &str = "Thanks for the feedback! Glad it helped.";
/// The thanks for a negative press.
pub const THANKS_NEGATIVE: &str = "Thanks for the feedback. It helps us improve these answers.";

impl Worker {
    /// Records the press; a press on something that is not a bot answer is drift, not an error.
    pub(super) async fn feedback_button(&self, b: &ButtonWork) -> Result<(), WorkError> {
        match self.feedback.handle_button(b).await? {
            ButtonOutcome::NotABotAnswer => {
                self.metrics.count_with_total("SchemaDrift", 1.0, &[("EventType", "block_actions")]);
                // Ids only: the payload's content stays out of the logs.
                warn!(event_id = %b.event_id, "feedback buttons on a message that is no bot answer (schema drift)");
            }
            ButtonOutcome::Unchanged => {}
            ButtonOutcome::Recorded { thread_ts } | ButtonOutcome::Switched { thread_ts } => {
                self.thank(b, &thread_ts).await
            }
        }
        Ok(())
    }

    /// The ephemeral thanks: a courtesy, so a failure is counted and logged, never retried.
    async fn thank(&self, b: &ButtonWork, thread_ts: &str) {
        let text = match b.sentiment {
            shared::domain::Sentiment::Positive => THANKS_POSITIVE,
            shared::domain::Sentiment::Negative => THANKS_NEGATIVE,
        };
        if let Err(e) = self.chat.post_ephemeral(&b.channel_id, &b.user_id, thread_ts, text).await {
            self.metrics.count_with_total("APIErrors", 1.0, &[("ErrorCode", "SlackEphemeral")]);
            warn!(error = %e, event_id = %b.event_id, "could not thank for the feedback");
        }
    }
}
