//! The Slack Web API in memory: every call recorded, scripted failures played back per method.

use super::*;

/// One call the chat client received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatCall {
    /// The Web API method (`chat.postMessage`, `chat.update`, `reactions.add`...).
    pub method: &'static str,
    pub channel: String,
    /// The thread (posts) or the message (updates, reactions).
    pub ts: String,
    /// The text, or the reaction name.
    pub text: String,
}

/// The Slack Web API: records every call, answers with increasing message ts, and plays back
/// scripted failures per method, in order ([`MemoryChat::fail`]).
#[derive(Debug, Default)]
pub struct MemoryChat {
    calls: Mutex<Vec<ChatCall>>,
    failures: Mutex<HashMap<&'static str, VecDeque<String>>>,
    replies: Mutex<HashMap<(String, String), Vec<ThreadMessage>>>,
    users: Mutex<HashMap<String, SlackUser>>,
}

impl MemoryChat {
    /// The next `method` call fails with Slack's `error` (`ratelimited`, `http_500`,
    /// `channel_not_found`...), after the failures already scripted.
    pub fn fail(&self, method: &'static str, error: &str) {
        lock(&self.failures).entry(method).or_default().push_back(error.to_string());
    }

    /// Every call so far.
    pub fn calls(&self) -> Vec<ChatCall> {
        lock(&self.calls).clone()
    }

    /// The texts that reached `method` successfully.
    pub fn texts(&self, method: &str) -> Vec<String> {
        lock(&self.calls).iter().filter(|c| c.method == method).map(|c| c.text.clone()).collect()
    }

    /// What `conversations.replies` answers for a thread.
    pub fn set_replies(&self, channel: &str, thread_ts: &str, messages: Vec<ThreadMessage>) {
        lock(&self.replies).insert((channel.to_string(), thread_ts.to_string()), messages);
    }

    /// What `users.info` answers for a user (unknown users are plain members of no team).
    pub fn set_user(&self, user: &str, info: SlackUser) {
        lock(&self.users).insert(user.to_string(), info);
    }

    fn call(
        &self,
        method: &'static str,
        channel: &str,
        ts: &str,
        text: &str,
    ) -> std::result::Result<String, ChatError> {
        if let Some(error) = lock(&self.failures).get_mut(method).and_then(VecDeque::pop_front) {
            return Err(ChatError { method, error });
        }
        let mut calls = lock(&self.calls);
        calls.push(ChatCall { method, channel: channel.into(), ts: ts.into(), text: text.into() });
        Ok(format!("1700000000.{:06}", calls.len()))
    }
}

#[async_trait]
impl ChatClient for MemoryChat {
    async fn post_message(&self, channel: &str, thread_ts: &str, text: &str) -> std::result::Result<String, ChatError> {
        self.call("chat.postMessage", channel, thread_ts, text)
    }

    async fn add_reaction(&self, channel: &str, ts: &str, name: &str) -> std::result::Result<(), ChatError> {
        self.call("reactions.add", channel, ts, name).map(drop)
    }

    async fn remove_reaction(&self, channel: &str, ts: &str, name: &str) -> std::result::Result<(), ChatError> {
        self.call("reactions.remove", channel, ts, name).map(drop)
    }

    async fn update_message(&self, channel: &str, ts: &str, text: &str) -> std::result::Result<(), ChatError> {
        self.call("chat.update", channel, ts, text).map(drop)
    }

    async fn try_update_message(&self, channel: &str, ts: &str, text: &str) -> std::result::Result<(), ChatError> {
        self.call("chat.update", channel, ts, text).map(drop)
    }

    async fn set_assistant_status(
        &self,
        channel: &str,
        thread_ts: &str,
        status: &str,
    ) -> std::result::Result<(), ChatError> {
        self.call("assistant.threads.setStatus", channel, thread_ts, status).map(drop)
    }

    async fn thread_replies(
        &self,
        channel: &str,
        thread_ts: &str,
        limit: u32,
    ) -> std::result::Result<Vec<ThreadMessage>, ChatError> {
        self.call("conversations.replies", channel, thread_ts, "")?;
        let replies = lock(&self.replies).get(&(channel.to_string(), thread_ts.to_string())).cloned();
        let mut replies = replies.unwrap_or_default();
        let keep = usize::try_from(limit).unwrap_or(usize::MAX);
        let skip = replies.len().saturating_sub(keep);
        Ok(replies.split_off(skip))
    }

    async fn set_suggested_prompts(
        &self,
        channel: &str,
        thread_ts: &str,
        title: &str,
        prompts: &[crate::ports::SuggestedPrompt],
    ) -> std::result::Result<(), ChatError> {
        let text = serde_json::json!({ "title": title, "prompts": prompts }).to_string();
        self.call("assistant.threads.setSuggestedPrompts", channel, thread_ts, &text).map(drop)
    }

    async fn set_assistant_title(
        &self,
        channel: &str,
        thread_ts: &str,
        title: &str,
    ) -> std::result::Result<(), ChatError> {
        self.call("assistant.threads.setTitle", channel, thread_ts, title).map(drop)
    }

    async fn publish_home(&self, user: &str, blocks: &[serde_json::Value]) -> std::result::Result<(), ChatError> {
        self.call("views.publish", user, "", &serde_json::Value::Array(blocks.to_vec()).to_string()).map(drop)
    }

    async fn user_info(&self, user: &str) -> std::result::Result<SlackUser, ChatError> {
        self.call("users.info", "", "", user)?;
        Ok(lock(&self.users).get(user).cloned().unwrap_or_default())
    }
}
