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
    /// A user opened an assistant thread: its suggested prompts are set.
    AssistantThread(AssistantThreadWork),
    /// A user opened the app's Home tab: their own usage view is published.
    Home(HomeWork),
    /// A press of an answer's feedback buttons (Slack interactivity).
    FeedbackButton(crate::interactive::ButtonWork),
}

impl WorkItem {
    /// The Slack event id this item came from.
    pub fn event_id(&self) -> &str {
        match self {
            WorkItem::Message(m) => &m.event_id,
            WorkItem::Reaction(r) => &r.event_id,
            WorkItem::AssistantThread(t) => &t.event_id,
            WorkItem::Home(h) => &h.event_id,
            WorkItem::FeedbackButton(b) => &b.event_id,
        }
    }

    /// The ingress's dedupe keys: the event id, plus one per message (app_mention and
    /// message.* both fire for one message, with different event ids) and one per user and
    /// minute for the Home tab (each open of the tab is a new event; one refresh a minute is
    /// plenty, and more would only pile up in the queue).
    pub fn dedup_keys(&self) -> Vec<String> {
        let mut keys = vec![format!("evt#{}", self.event_id())];
        match self {
            WorkItem::Message(m) => keys.push(format!("msg#{}#{}#{}", m.team_id, m.channel_id, m.ts)),
            WorkItem::Home(h) => {
                keys.push(format!("home#{}#{}#{}", h.team_id, h.user_id, h.received_at_ms.div_euclid(HOME_REFRESH_MS)))
            }
            WorkItem::Reaction(_) | WorkItem::AssistantThread(_) | WorkItem::FeedbackButton(_) => {}
        }
        keys
    }

    /// The FIFO group: the Slack thread the item belongs to.
    pub fn group_id(&self) -> String {
        match self {
            WorkItem::Message(m) => m.thread().group_id(),
            WorkItem::Reaction(r) => {
                ThreadRef { team_id: r.team_id.clone(), channel_id: r.channel_id.clone(), thread_ts: r.item_ts.clone() }
                    .group_id()
            }
            // The thread's own group: its prompts are set before its first question is answered.
            WorkItem::AssistantThread(t) => t.thread().group_id(),
            // One group per user: a user's refreshes run one at a time, apart from any thread.
            WorkItem::Home(h) => format!("home:{}:{}", h.team_id, h.user_id),
            WorkItem::FeedbackButton(b) => b.group().group_id(),
        }
    }
}

/// The Home tab is refreshed at most once per user in this many milliseconds.
pub const HOME_REFRESH_MS: i64 = 60_000;

/// `assistant_thread_started`: a user opened an assistant thread (the app's DM, in a thread).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AssistantThreadWork {
    pub event_id: String,
    pub team_id: String,
    pub channel_id: String,
    pub thread_ts: String,
    pub user_id: String,
    pub received_at_ms: i64,
}

impl AssistantThreadWork {
    /// The assistant thread.
    pub fn thread(&self) -> ThreadRef {
        ThreadRef {
            team_id: self.team_id.clone(),
            channel_id: self.channel_id.clone(),
            thread_ts: self.thread_ts.clone(),
        }
    }
}

/// `app_home_opened` on the Home tab.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HomeWork {
    pub event_id: String,
    pub team_id: String,
    pub user_id: String,
    pub received_at_ms: i64,
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
    /// Files attached to the message (absent in items queued before files were handled).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<SlackFile>,
    /// When the ingress accepted the event (epoch ms).
    pub received_at_ms: i64,
    /// The message is a user's message in an assistant thread (Slack's Agents & AI Apps
    /// container: a thread in the app's DM), where `assistant.threads.setStatus` applies.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub assistant_thread: bool,
    /// The asker's team when Slack says (`user_team` / `source_team`): another team's user is a
    /// Slack Connect user (see access.rs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_team: Option<String>,
    /// The envelope's Enterprise Grid org, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enterprise_id: Option<String>,
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

/// A file attached to a user's message: the fields of Slack's file object the worker needs.
/// Unknown fields are ignored and every field is optional, so any file object Slack sends (and
/// any item queued by an older version) parses.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlackFile {
    #[serde(default)]
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mimetype: Option<String>,
    /// Slack's short type (`csv`, `pdf`, `xlsx`...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filetype: Option<String>,
    /// Bytes, as Slack reports it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url_private_download: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url_private: Option<String>,
}

impl SlackFile {
    /// Reads a file object from an event, leniently: a field of an unexpected type is dropped,
    /// not the message.
    pub fn from_event(v: &serde_json::Value) -> Option<SlackFile> {
        let s = |k: &str| v.get(k).and_then(serde_json::Value::as_str).filter(|x| !x.is_empty()).map(str::to_string);
        let id = s("id")?;
        Some(SlackFile {
            id,
            name: s("name").or_else(|| s("title")),
            mimetype: s("mimetype"),
            filetype: s("filetype"),
            size: v.get("size").and_then(serde_json::Value::as_u64),
            url_private_download: s("url_private_download"),
            url_private: s("url_private"),
        })
    }

    /// Where to download the file from: the download URL, else the private URL.
    pub fn download_url(&self) -> Option<&str> {
        self.url_private_download.as_deref().or(self.url_private.as_deref())
    }

    /// A name to show and to pass on (Slack may send none).
    pub fn display_name(&self) -> String {
        match &self.name {
            Some(n) if !n.trim().is_empty() => n.trim().to_string(),
            _ => format!("file {}", self.id),
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_queued_before_and_after_files_parse() {
        let base = serde_json::json!({
            "kind": "message", "event_id": "E1", "team_id": "T1", "channel_id": "D1", "channel_type": "im",
            "user_id": "U1", "ts": "1.1", "thread_ts": null, "text": "hi", "bot_user_id": "UBOT",
            "requires_bot_thread": false, "received_at_ms": 5
        });
        let WorkItem::Message(m) = serde_json::from_value(base.clone()).unwrap() else { panic!("not a message") };
        assert!(m.files.is_empty());
        // An older version queued Slack's raw file objects.
        let mut raw = base;
        raw["files"] = serde_json::json!([{"id": "F1", "name": "a.csv", "size": 3, "mimetype": "text/csv",
            "url_private": "https://files.slack.com/a.csv", "thumb_64": "x", "shares": {}}]);
        let WorkItem::Message(m) = serde_json::from_value(raw).unwrap() else { panic!("not a message") };
        assert_eq!(m.files[0].name.as_deref(), Some("a.csv"));
        assert_eq!(m.files[0].download_url(), Some("https://files.slack.com/a.csv"));
        let again: WorkItem =
            serde_json::from_str(&serde_json::to_string(&WorkItem::Message(m.clone())).unwrap()).unwrap();
        assert_eq!(again, WorkItem::Message(m));
    }
}
