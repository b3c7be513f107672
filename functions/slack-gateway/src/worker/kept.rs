//! The answer kept on the turn before it is posted: a redelivery after a failed post posts it
//! again without invoking the agent, and edits the message when the post did reach the thread.

use shared::domain::{AgentTurn, AnalyticsEvent, Outcome, UsageRecord};
use shared::slack::Reply;
use tracing::{error, warn};

use super::{Judged, Worker, APOLOGY, NO_ANSWER};
use crate::work::MessageWork;

/// A turn's answer as kept on the turn before it is posted: what to post, and the records to
/// publish once it is.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub(super) struct KeptAnswer {
    pub(super) parts: Vec<KeptPart>,
    /// The answer as Markdown with its sources, for a native stream to end with (an apology has
    /// none: it replaces the stream's message).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) markdown: Option<String>,
    pub(super) analytics: AnalyticsEvent,
    pub(super) usage: Option<UsageRecord>,
}

/// One Slack message of a kept answer.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub(super) struct KeptPart {
    text: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    blocks: Option<Vec<serde_json::Value>>,
}

impl From<Reply> for KeptPart {
    fn from(r: Reply) -> Self {
        KeptPart { text: r.text, blocks: r.blocks }
    }
}

impl From<KeptPart> for Reply {
    fn from(p: KeptPart) -> Self {
        Reply { text: p.text, blocks: p.blocks }
    }
}

impl Worker {
    /// The answer (or the one apology) as Slack messages with the turn's records: what is kept on
    /// the turn before it is posted. When an early message is up, the answer replaces it.
    pub(super) fn kept_for(
        &self,
        m: &MessageWork,
        session_id: &str,
        judged: &Judged,
        notice: Option<&str>,
        latency_ms: u64,
    ) -> KeptAnswer {
        let (parts, markdown) = match (&judged.turn, judged.outcome) {
            (Some(t), Outcome::Answered | Outcome::GuardrailBlocked) => {
                let text = if t.text.trim().is_empty() { NO_ANSWER } else { &t.text };
                let mut parts = reply_parts(text, &t.sources, notice);
                // Slack's feedback buttons end the answer: on its last message only.
                if let Some(last) = parts.last_mut() {
                    last.push_block(crate::interactive::feedback_block(&m.thread().thread_ts, &m.ts));
                }
                (parts, Some(crate::stream::stream_markdown(text, &t.sources, notice)))
            }
            _ => (vec![Reply::plain(APOLOGY)], None),
        };
        let empty = AgentTurn::default();
        let turn = judged.turn.as_ref().unwrap_or(&empty);
        let error_code = judged.error_code.clone();
        KeptAnswer {
            parts: parts.into_iter().map(KeptPart::from).collect(),
            markdown,
            analytics: self.analytics_event(m, session_id, turn, &judged.spent, judged.outcome, error_code, latency_ms),
            usage: (!judged.spent.is_empty() || judged.usage_unreported)
                .then(|| self.usage_record(m, &judged.spent, judged.usage_unreported)),
        }
    }

    /// Keeps the answer on the turn before it is posted; false when it could not be (the turn
    /// then runs again after a failed post, as before).
    pub(super) async fn keep_answer(&self, m: &MessageWork, kept: &KeptAnswer) -> bool {
        let stored = match serde_json::to_string(kept) {
            Ok(json) => self.conversations.keep_answer(&m.thread(), &m.ts, &json).await,
            Err(e) => Err(shared::Error::Malformed { what: "kept answer", reason: e.to_string() }),
        };
        match stored {
            Ok(()) => true,
            Err(e) => {
                self.metrics.count_with_total("LoggingErrors", 1.0, &[("Sink", "conversations")]);
                error!(error = %e, event_id = %m.event_id, "could not keep the answer on the turn before posting it");
                false
            }
        }
    }

    /// The answer an earlier delivery of a resumed turn kept, if any.
    pub(super) async fn kept_answer(&self, m: &MessageWork, resumed: bool) -> Option<KeptAnswer> {
        if !resumed {
            return None;
        }
        match self.conversations.kept_answer(&m.thread(), &m.ts).await {
            Ok(kept) => kept.and_then(|json| match serde_json::from_str(&json) {
                Ok(k) => Some(k),
                Err(e) => {
                    self.metrics.count_with_total("SchemaDrift", 1.0, &[("EventType", "kept_answer")]);
                    warn!(error = %e, event_id = %m.event_id, "unreadable kept answer; running the turn again");
                    None
                }
            }),
            Err(e) => {
                warn!(error = %e, event_id = %m.event_id, "could not read a kept answer; running the turn again");
                None
            }
        }
    }

    /// The kept answer's first message when a post that failed (a 5xx, a timeout) had in fact
    /// reached the thread: the redelivery then edits it instead of posting the answer twice.
    pub(super) async fn kept_answer_in_thread(&self, m: &MessageWork, kept: &KeptAnswer) -> Option<String> {
        let first = kept.parts.first()?;
        let thread = m.thread();
        match self.chat.thread_replies(&thread.channel_id, &thread.thread_ts, 50).await {
            Ok(history) => history
                .into_iter()
                .rev()
                .find(|h| h.bot && h.text == first.text && h.ts.as_str() > m.ts.as_str())
                .map(|h| h.ts),
            Err(e) => {
                warn!(error = %e, event_id = %m.event_id, "could not look for the kept answer in the thread");
                None
            }
        }
    }
}

/// The answer as Slack messages: mrkdwn, sources listed, split to Slack's size, a table as a
/// table block where Slack can show one, the budget notice (if any) on the last message.
fn reply_parts(text: &str, sources: &[String], notice: Option<&str>) -> Vec<Reply> {
    let mut parts = shared::slack::mrkdwn::render_reply(text, sources);
    if let Some(n) = notice {
        match parts.last_mut() {
            Some(last) if last.text.chars().count() + n.chars().count() + 2 <= shared::slack::MAX_MESSAGE_CHARS => {
                last.push_paragraph(n);
            }
            _ => parts.push(Reply::plain(n)),
        }
    }
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_notice_ends_the_last_message_in_its_text_and_its_blocks() {
        let notice = "_You've used 85% of your daily budget._";
        let parts = reply_parts("Costs:\n\n| Model | Cost |\n|---|--:|\n| Haiku | $4 |", &[], Some(notice));
        assert_eq!(parts.len(), 1);
        assert!(parts[0].text.starts_with("Costs:\n\n```\n") && parts[0].text.ends_with(notice), "{}", parts[0].text);
        let blocks = parts[0].blocks.as_ref().expect("a table block");
        assert_eq!(blocks[1]["type"], "table");
        assert_eq!(blocks.last().map(|b| &b["text"]["text"]), Some(&serde_json::json!(notice)));

        let parts = reply_parts("No table here.", &[], Some(notice));
        assert_eq!(parts, vec![Reply::plain(format!("No table here.\n\n{notice}"))]);
    }
}
