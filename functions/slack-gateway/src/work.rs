//! The work item the ingress queues and the worker consumes (SQS FIFO message body).

use serde::{Deserialize, Serialize};
use shared::domain::ThreadRef;

/// Accepted Slack work.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum WorkItem {
    /// A user message the bot should answer.
    Message(MessageWork),
    /// A reaction added to or removed from a message (feedback on bot answers).
    Reaction(ReactionWork),
}

impl WorkItem {
    /// The Slack event id this item came from.
    pub fn event_id(&self) -> &str {
        match self {
            WorkItem::Message(m) => &m.event_id,
            WorkItem::Reaction(r) => &r.event_id,
        }
    }

    /// The FIFO group: the Slack thread the item belongs to.
    pub fn group_id(&self) -> String {
        match self {
            WorkItem::Message(m) => m.thread().group_id(),
            WorkItem::Reaction(r) => {
                ThreadRef { team_id: r.team_id.clone(), channel_id: r.channel_id.clone(), thread_ts: r.item_ts.clone() }
                    .group_id()
            }
        }
    }
}

/// A user message: one turn.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageWork {
    pub event_id: String,
    pub team_id: String,
    pub channel_id: String,
    /// `im`, `channel`, `group`, `mpim` when Slack says.
    pub channel_type: Option<String>,
    pub user_id: String,
    pub ts: String,
    pub thread_ts: Option<String>,
    pub text: String,
    /// The bot's own user id, to strip its mention from the text.
    pub bot_user_id: Option<String>,
    /// A channel thread reply without a mention: answer only in threads the bot is already in.
    pub requires_bot_thread: bool,
    /// Files attached to the message, as Slack sent them (handled by the files feature).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<serde_json::Value>,
    /// When the ingress accepted the event (epoch ms).
    pub received_at_ms: i64,
}

impl MessageWork {
    /// The thread this message belongs to (it starts one when it is not a reply).
    pub fn thread(&self) -> ThreadRef {
        ThreadRef {
            team_id: self.team_id.clone(),
            channel_id: self.channel_id.clone(),
            thread_ts: self.thread_ts.clone().unwrap_or_else(|| self.ts.clone()),
        }
    }

    /// Whether the message is a reply inside an existing thread.
    pub fn is_thread_reply(&self) -> bool {
        self.thread_ts.as_deref().is_some_and(|t| t != self.ts)
    }

    /// The question text: the bot's mention removed, whitespace trimmed.
    pub fn question(&self) -> String {
        let mut text = self.text.clone();
        if let Some(bot) = &self.bot_user_id {
            text = text.replace(&format!("<@{bot}>"), "");
        }
        text.trim().to_string()
    }
}

/// A reaction event on a message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReactionWork {
    pub event_id: String,
    pub team_id: String,
    pub user_id: String,
    pub reaction: String,
    pub added: bool,
    pub channel_id: String,
    pub item_ts: String,
    pub item_user: Option<String>,
    pub received_at_ms: i64,
}
