//! The thread-history prompt: when the agent's session has expired, the question is preceded by
//! the thread's recent messages.

use shared::ports::TurnRecord;
use tracing::warn;

use super::Worker;
use crate::work::MessageWork;

impl Worker {
    /// The question, preceded by the thread's history when the agent's session has expired.
    pub(super) async fn input_with_context(&self, m: &MessageWork, previous: Option<&TurnRecord>) -> String {
        let question = m.question();
        let now_ms = chrono::Utc::now().timestamp_millis();
        let session_alive = previous.is_some_and(|p| {
            let last = p.finished_at_ms.unwrap_or(p.received_at_ms);
            now_ms - last < self.settings.session_idle_ttl.as_millis() as i64
        });
        if !m.is_thread_reply() || session_alive {
            return question;
        }
        let thread = m.thread();
        let history = match self.chat.thread_replies(&thread.channel_id, &thread.thread_ts, 50).await {
            Ok(h) => h,
            Err(e) => {
                warn!(error = %e, "could not read the thread's history; answering without it");
                return question;
            }
        };
        let mut lines: Vec<String> = history
            .iter()
            .filter(|h| h.ts != m.ts && !h.text.trim().is_empty())
            .map(|h| format!("{}: {}", if h.bot { "assistant" } else { "user" }, h.text.trim()))
            .collect();
        // Keep the most recent history within a bounded size.
        let mut total = 0;
        let mut keep = 0;
        for l in lines.iter().rev() {
            total += l.len();
            if total > 6000 {
                break;
            }
            keep += 1;
        }
        lines.drain(..lines.len() - keep);
        if lines.is_empty() {
            return question;
        }
        format!(
            "Earlier messages in this Slack thread, for context:\n{}\n\nThe user's new message:\n{}",
            lines.join("\n"),
            question
        )
    }
}
