//! The Web API methods the product calls: posting, updating, reactions, assistant status,
//! thread history, user info and file uploads.

use super::engine::transport;
use super::*;
use crate::http::RetryPolicy;

impl SlackWebClient {
    /// Replaces the text of a message the bot posted (`chat.update`).
    pub async fn update_message(&self, channel: &str, ts: &str, text: &str) -> std::result::Result<(), ChatError> {
        let body = json!({ "channel": channel, "ts": ts, "text": text });
        self.call("chat.update", Payload::Json(body), true).await.map(|_| ())
    }

    /// `chat.postMessage` in the thread (top level when `thread_ts` is empty), with `blocks`
    /// when given; returns the new message's ts.
    async fn post_in_thread(
        &self,
        channel: &str,
        thread_ts: &str,
        text: &str,
        blocks: Option<&[Value]>,
    ) -> std::result::Result<String, ChatError> {
        let mut body = json!({ "channel": channel, "text": text, "unfurl_links": false });
        if !thread_ts.is_empty() {
            body["thread_ts"] = json!(thread_ts);
        }
        if let Some(blocks) = blocks {
            body["blocks"] = json!(blocks);
        }
        let answer = self.call("chat.postMessage", Payload::Json(body), false).await?;
        answer
            .get("ts")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| ChatError { method: "chat.postMessage", error: "invalid_response".into() })
    }

    /// Posts a top-level Block Kit message (`text` is the notification fallback); returns its ts.
    pub async fn post_blocks(
        &self,
        channel: &str,
        text: &str,
        blocks: Value,
    ) -> std::result::Result<String, ChatError> {
        let body = json!({ "channel": channel, "text": text, "blocks": blocks, "unfurl_links": false });
        let answer = self.call("chat.postMessage", Payload::Json(body), false).await?;
        answer
            .get("ts")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| ChatError { method: "chat.postMessage", error: "invalid_response".into() })
    }

    /// Shares a file in `channel` with Slack's external upload flow: `files.getUploadURLExternal`,
    /// the bytes POSTed to the returned upload URL (which is pre-signed: the bot token is not
    /// sent there), then `files.completeUploadExternal`. Returns the file id.
    pub async fn upload_file(&self, upload: FileUpload<'_>) -> std::result::Result<String, ChatError> {
        let query = [("filename", upload.filename.to_string()), ("length", upload.bytes.len().to_string())];
        let answer = self.call("files.getUploadURLExternal", Payload::Query(&query), true).await?;
        let invalid = |method: &'static str| ChatError { method, error: "invalid_response".into() };
        let upload_url =
            answer.get("upload_url").and_then(Value::as_str).ok_or_else(|| invalid("files.getUploadURLExternal"))?;
        let file_id =
            answer.get("file_id").and_then(Value::as_str).ok_or_else(|| invalid("files.getUploadURLExternal"))?;
        self.put_upload(upload_url, upload.bytes).await?;
        let mut body = json!({
            "files": [{ "id": file_id, "title": upload.title }],
            "channel_id": upload.channel,
        });
        if let Some(comment) = upload.initial_comment {
            body["initial_comment"] = json!(comment);
        }
        if let Some(thread_ts) = upload.thread_ts.filter(|t| !t.is_empty()) {
            body["thread_ts"] = json!(thread_ts);
        }
        self.call("files.completeUploadExternal", Payload::Json(body), false).await?;
        Ok(file_id.to_string())
    }

    /// Sends a file's bytes to the upload URL `files.getUploadURLExternal` returned.
    async fn put_upload(&self, upload_url: &str, bytes: &[u8]) -> std::result::Result<(), ChatError> {
        let fail = |error: String| ChatError { method: "files.upload_url", error };
        let url = Url::parse(upload_url)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https"))
            .ok_or_else(|| fail("invalid_upload_url".into()))?;
        // Re-sending the same bytes to the same URL is harmless: the file is not shared yet.
        let policy = RetryPolicy::new(self.backoff, true);
        crate::http::retry(
            &policy,
            "files.upload_url",
            || "timeout".to_string(),
            |_| async {
                let sent = self
                    .http
                    .post(url.clone())
                    .header(CONTENT_TYPE, "application/octet-stream")
                    .body(bytes.to_vec())
                    .send();
                match sent.await {
                    Ok(r) if r.status().is_success() => Verdict::Done(()),
                    Ok(r) if r.status().is_server_error() => {
                        Verdict::MaybeSent(format!("http_{}", r.status().as_u16()))
                    }
                    Ok(r) => Verdict::Permanent(format!("http_{}", r.status().as_u16())),
                    Err(e) => transport("files.upload_url", e),
                }
            },
        )
        .await
        .map_err(fail)
    }
}

/// Adds a streaming call's `markdown_text` or `chunks` to its body.
fn with_content(body: &mut Value, content: &crate::ports::StreamContent) {
    if let Value::Object(fields) = body {
        fields.extend(content.fields());
    }
}

/// Reaction names are sent without the surrounding colons.
pub(super) fn reaction_name(name: &str) -> &str {
    name.trim().trim_matches(':')
}

/// The messages of a `conversations.replies` answer, oldest first, at most `limit`.
pub(super) fn thread_messages(answer: &Value, limit: usize) -> Vec<ThreadMessage> {
    let Some(messages) = answer.get("messages").and_then(Value::as_array) else {
        return Vec::new();
    };
    messages
        .iter()
        .filter_map(|m| {
            let ts = m.get("ts").and_then(Value::as_str)?;
            Some(ThreadMessage {
                user: m.get("user").and_then(Value::as_str).map(str::to_owned),
                bot: m.get("bot_id").is_some_and(|b| !b.is_null()),
                ts: ts.to_string(),
                text: m.get("text").and_then(Value::as_str).unwrap_or_default().to_string(),
            })
        })
        .take(limit)
        .collect()
}

#[async_trait]
impl ChatClient for SlackWebClient {
    async fn post_message(&self, channel: &str, thread_ts: &str, text: &str) -> std::result::Result<String, ChatError> {
        self.post_in_thread(channel, thread_ts, text, None).await
    }

    async fn post_message_with_blocks(
        &self,
        channel: &str,
        thread_ts: &str,
        text: &str,
        blocks: &[Value],
    ) -> std::result::Result<String, ChatError> {
        self.post_in_thread(channel, thread_ts, text, Some(blocks)).await
    }

    async fn add_reaction(&self, channel: &str, ts: &str, name: &str) -> std::result::Result<(), ChatError> {
        let body = json!({ "channel": channel, "timestamp": ts, "name": reaction_name(name) });
        match self.call("reactions.add", Payload::Json(body), true).await {
            Err(e) if e.error == "already_reacted" => Ok(()),
            other => other.map(|_| ()),
        }
    }

    async fn remove_reaction(&self, channel: &str, ts: &str, name: &str) -> std::result::Result<(), ChatError> {
        let body = json!({ "channel": channel, "timestamp": ts, "name": reaction_name(name) });
        match self.call("reactions.remove", Payload::Json(body), true).await {
            Err(e) if e.error == "no_reaction" => Ok(()),
            other => other.map(|_| ()),
        }
    }

    async fn update_message(&self, channel: &str, ts: &str, text: &str) -> std::result::Result<(), ChatError> {
        SlackWebClient::update_message(self, channel, ts, text).await
    }

    async fn update_message_with_blocks(
        &self,
        channel: &str,
        ts: &str,
        text: &str,
        blocks: &[Value],
    ) -> std::result::Result<(), ChatError> {
        let body = json!({ "channel": channel, "ts": ts, "text": text, "blocks": blocks });
        self.call("chat.update", Payload::Json(body), true).await.map(|_| ())
    }

    async fn try_update_message(&self, channel: &str, ts: &str, text: &str) -> std::result::Result<(), ChatError> {
        let body = json!({ "channel": channel, "ts": ts, "text": text });
        self.call_with("chat.update", Payload::Json(body), true, false).await.map(|_| ())
    }

    async fn set_assistant_status(
        &self,
        channel: &str,
        thread_ts: &str,
        status: &str,
    ) -> std::result::Result<(), ChatError> {
        let body = json!({ "channel_id": channel, "thread_ts": thread_ts, "status": status });
        // A status is a hint: never hold a turn up waiting out a rate limit for it.
        self.call_with("assistant.threads.setStatus", Payload::Json(body), true, false).await.map(|_| ())
    }

    async fn thread_replies(
        &self,
        channel: &str,
        thread_ts: &str,
        limit: u32,
    ) -> std::result::Result<Vec<ThreadMessage>, ChatError> {
        // Slack returns a thread oldest first: page through to its newest messages, keeping the
        // thread's first message (the topic) and the newest after it.
        let limit = limit.clamp(1, 1000) as usize;
        let mut kept: std::collections::VecDeque<ThreadMessage> = std::collections::VecDeque::new();
        let mut first: Option<ThreadMessage> = None;
        let mut cursor: Option<String> = None;
        for page in 0..MAX_REPLIES_PAGES {
            let mut query = vec![
                ("channel", channel.to_string()),
                ("ts", thread_ts.to_string()),
                ("limit", REPLIES_PAGE.to_string()),
            ];
            if let Some(c) = cursor.take() {
                query.push(("cursor", c));
            }
            let answer = self.call("conversations.replies", Payload::Query(&query), true).await?;
            for message in thread_messages(&answer, usize::MAX) {
                match &first {
                    None => {
                        first = Some(message);
                        continue;
                    }
                    // Slack may repeat the thread's first message at the top of every page.
                    Some(f) if f.ts == message.ts => continue,
                    Some(_) => {}
                }
                kept.push_back(message);
                if kept.len() >= limit {
                    kept.pop_front();
                }
            }
            cursor = answer
                .pointer("/response_metadata/next_cursor")
                .and_then(Value::as_str)
                .filter(|c| !c.is_empty())
                .map(str::to_owned);
            if cursor.is_none() {
                break;
            }
            if page + 1 == MAX_REPLIES_PAGES {
                tracing::warn!(
                    pages = MAX_REPLIES_PAGES,
                    "thread longer than the pages read; its newest messages are missing"
                );
            }
        }
        Ok(first.into_iter().chain(kept).take(limit).collect())
    }

    async fn start_stream(
        &self,
        target: &crate::ports::StreamTarget<'_>,
        content: &crate::ports::StreamContent,
    ) -> std::result::Result<String, ChatError> {
        let mut body = json!({ "channel": target.channel, "thread_ts": target.thread_ts });
        // Slack requires the recipient outside DMs; sending it in DMs too is harmless.
        if !target.recipient_user_id.is_empty() {
            body["recipient_user_id"] = json!(target.recipient_user_id);
            body["recipient_team_id"] = json!(target.recipient_team_id);
        }
        with_content(&mut body, content);
        // One attempt: a refusal or a rate limit (Tier 2) sends the turn the edited-message way.
        let answer = self.call_with("chat.startStream", Payload::Json(body), false, false).await?;
        answer
            .get("ts")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| ChatError { method: "chat.startStream", error: "invalid_response".into() })
    }

    async fn append_stream(
        &self,
        channel: &str,
        ts: &str,
        content: &crate::ports::StreamContent,
    ) -> std::result::Result<(), ChatError> {
        let mut body = json!({ "channel": channel, "ts": ts });
        with_content(&mut body, content);
        // Text appended twice would show twice: never repeated, and a rate limit is not waited out.
        self.call_with("chat.appendStream", Payload::Json(body), false, false).await.map(|_| ())
    }

    async fn stop_stream(
        &self,
        channel: &str,
        ts: &str,
        content: &crate::ports::StreamContent,
        blocks: Option<&[Value]>,
    ) -> std::result::Result<(), ChatError> {
        let mut body = json!({ "channel": channel, "ts": ts });
        with_content(&mut body, content);
        if let Some(blocks) = blocks.filter(|b| !b.is_empty()) {
            body["blocks"] = json!(blocks);
        }
        // The end of the answer must land: rate limits are waited out; not repeated after a
        // failure that may have reached Slack (the text would show twice).
        self.call("chat.stopStream", Payload::Json(body), false).await.map(|_| ())
    }

    async fn set_suggested_prompts(
        &self,
        channel: &str,
        thread_ts: &str,
        title: &str,
        prompts: &[crate::ports::SuggestedPrompt],
    ) -> std::result::Result<(), ChatError> {
        let body = json!({ "channel_id": channel, "thread_ts": thread_ts, "title": title, "prompts": prompts });
        // Setting the same prompts again replaces them: safe to repeat.
        self.call("assistant.threads.setSuggestedPrompts", Payload::Json(body), true).await.map(|_| ())
    }

    async fn set_assistant_title(
        &self,
        channel: &str,
        thread_ts: &str,
        title: &str,
    ) -> std::result::Result<(), ChatError> {
        let body = json!({ "channel_id": channel, "thread_ts": thread_ts, "title": title });
        self.call("assistant.threads.setTitle", Payload::Json(body), true).await.map(|_| ())
    }

    async fn publish_home(&self, user: &str, blocks: &[Value]) -> std::result::Result<(), ChatError> {
        let body = json!({ "user_id": user, "view": { "type": "home", "blocks": blocks } });
        // The whole view is replaced each time: publishing it twice is harmless.
        self.call("views.publish", Payload::Json(body), true).await.map(|_| ())
    }

    async fn post_ephemeral(
        &self,
        channel: &str,
        user: &str,
        thread_ts: &str,
        text: &str,
    ) -> std::result::Result<(), ChatError> {
        let mut body = json!({ "channel": channel, "user": user, "text": text });
        if !thread_ts.is_empty() {
            body["thread_ts"] = json!(thread_ts);
        }
        // Not idempotent (a retry after a lost answer shows the note twice); a note, so one try
        // at rate limits.
        self.call_with("chat.postEphemeral", Payload::Json(body), false, false).await.map(|_| ())
    }

    async fn user_info(&self, user: &str) -> std::result::Result<crate::ports::SlackUser, ChatError> {
        let query = [("user", user.to_string())];
        let answer = self.call("users.info", Payload::Query(&query), true).await?;
        let u = &answer["user"];
        let text = |v: &Value| v.as_str().filter(|s| !s.is_empty()).map(str::to_owned);
        let flag = |k: &str| u[k].as_bool().unwrap_or(false);
        Ok(crate::ports::SlackUser {
            team_id: text(&u["team_id"]),
            enterprise_id: text(&u["enterprise_user"]["enterprise_id"]).or_else(|| text(&u["enterprise_id"])),
            is_restricted: flag("is_restricted"),
            is_ultra_restricted: flag("is_ultra_restricted"),
            is_stranger: flag("is_stranger"),
        })
    }
}
