//! The Slack Web API over reqwest (rustls): posting replies, status reactions, thread history.
//!
//! Rate limits (HTTP 429) are waited out as Slack asks, within a bound; 5xx answers and
//! connection failures are retried with jittered backoff, but only for calls that are safe to
//! repeat: a 5xx or a timeout after `chat.postMessage` may mean Slack posted it, so a post is
//! never re-sent blindly. Slack's own `ok: false` errors are returned as they are, except that a
//! refused token (`invalid_auth`, `token_revoked`, `not_authed`) makes the client re-read the
//! secret (at most once a minute) and retry once with the new token: a rotation or a reinstall
//! takes effect in warm containers. The bot token only ever travels in the `Authorization` header.
//! The retry loop, the client and `Retry-After` (seconds or a date) are [`crate::http`]'s; this
//! module decides what each Slack answer means.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use reqwest::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE};
use reqwest::Url;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{json, Value};

use crate::http::{RetryPolicy, Transport, Verdict};
use crate::ports::{ChatClient, ChatError, SlackSecretSource, ThreadMessage};
use crate::retry::Backoff;
use crate::{Error, Result};

/// The bot token as an `Authorization: Bearer` header, marked sensitive so it is never logged.
/// The error never quotes the token: it only says what is wrong with it.
pub(crate) fn bearer(bot_token: &SecretString) -> Result<HeaderValue> {
    let token = bot_token.expose_secret().trim();
    if token.is_empty() {
        return Err(Error::Config("the Slack bot token is empty".into()));
    }
    let mut authorization = HeaderValue::from_str(&format!("Bearer {token}"))
        .map_err(|_| Error::Config("the Slack bot token contains characters not allowed in a header".into()))?;
    authorization.set_sensitive(true);
    Ok(authorization)
}

/// Per attempt; the worker's own deadline bounds the whole turn.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Sent with every request to Slack (the Web API and file transfers).
pub(crate) const USER_AGENT: &str = concat!("bedrock-slack-gateway/", env!("CARGO_PKG_VERSION"));
/// The most time one call spends waiting out Slack's rate limits before giving up.
pub const DEFAULT_MAX_RATE_LIMIT_WAIT: Duration = Duration::from_secs(30);
/// When a 429 comes without a usable `Retry-After`.
const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(1);
/// The shortest time between two re-reads of the bot token after Slack refused it: a revoked
/// token must not turn every call into a Secrets Manager read.
pub const TOKEN_REFRESH_INTERVAL: Duration = Duration::from_secs(60);
/// Messages per `conversations.replies` page (Slack recommends at most 200).
const REPLIES_PAGE: u32 = 200;
/// Pages read to reach the newest messages of a long thread.
const MAX_REPLIES_PAGES: usize = 10;

/// Where a refused bot token is re-read from, and when it last was.
struct TokenRefresh {
    source: Arc<dyn SlackSecretSource>,
    interval: Duration,
    last: tokio::sync::Mutex<Option<Instant>>,
}

/// A [`ChatClient`] speaking to the Slack Web API with a bot token.
pub struct SlackWebClient {
    http: reqwest::Client,
    /// Always ends with `/`, so joining a method name appends it.
    api_base: Url,
    /// `Bearer <token>`, marked sensitive so it is never shown in debug output; replaced when
    /// a refused token is re-read.
    authorization: RwLock<HeaderValue>,
    refresh: Option<TokenRefresh>,
    backoff: Backoff,
    max_rate_limit_wait: Duration,
}

impl std::fmt::Debug for SlackWebClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SlackWebClient").field("api_base", &self.api_base.as_str()).finish_non_exhaustive()
    }
}

/// A file to share in a channel with [`SlackWebClient::upload_file`].
#[derive(Debug, Clone, Copy)]
pub struct FileUpload<'a> {
    pub channel: &'a str,
    pub filename: &'a str,
    pub title: &'a str,
    pub bytes: &'a [u8],
    /// A message posted with the file.
    pub initial_comment: Option<&'a str>,
    /// Share the file as a reply in this thread instead of the channel.
    pub thread_ts: Option<&'a str>,
}

/// How a request is sent: Web API writes take JSON, reads take a query string.
enum Payload<'a> {
    Json(Value),
    Query(&'a [(&'a str, String)]),
}

/// What one attempt came to; the error is Slack's code (or `http_<status>`, `transport`).
type Attempt = Verdict<Value, String>;

impl SlackWebClient {
    /// A client for the Web API at `api_base` (e.g. `https://slack.com/api`).
    pub fn new(api_base: &str, bot_token: SecretString) -> Result<Self> {
        let trimmed = api_base.trim().trim_end_matches('/');
        let api_base = Url::parse(&format!("{trimmed}/"))
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
            .ok_or_else(|| Error::Config(format!("SLACK_API_BASE is not an http(s) URL: {trimmed:?}")))?;
        let authorization = bearer(&bot_token)?;
        let http = crate::http::client("Slack", USER_AGENT, Some(REQUEST_TIMEOUT), crate::http::Redirects::Follow)?;
        Ok(SlackWebClient {
            http,
            api_base,
            authorization: RwLock::new(authorization),
            refresh: None,
            backoff: Backoff::default(),
            max_rate_limit_wait: DEFAULT_MAX_RATE_LIMIT_WAIT,
        })
    }

    /// Replaces the retry policy for 5xx and transport failures (and caps rate-limit retries).
    pub fn with_backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    /// Replaces the bound on time spent waiting out rate limits in one call.
    pub fn with_max_rate_limit_wait(mut self, max_wait: Duration) -> Self {
        self.max_rate_limit_wait = max_wait;
        self
    }

    /// Re-reads the bot token from `source` when Slack refuses the current one, at most once
    /// per `interval` (see [`TOKEN_REFRESH_INTERVAL`]), and retries the refused call once.
    pub fn with_token_source(mut self, source: Arc<dyn SlackSecretSource>, interval: Duration) -> Self {
        self.refresh = Some(TokenRefresh { source, interval, last: tokio::sync::Mutex::new(None) });
        self
    }

    fn authorization(&self) -> HeaderValue {
        self.authorization.read().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// After Slack refused `used`: true when a different token is now in place (re-read from
    /// the secret, or already by a concurrent call), so the call is worth one more attempt.
    async fn refresh_token(&self, used: &HeaderValue) -> bool {
        let Some(refresh) = &self.refresh else { return false };
        let mut last = refresh.last.lock().await;
        if self.authorization() != *used {
            return true;
        }
        if last.is_some_and(|at| at.elapsed() < refresh.interval) {
            return false;
        }
        *last = Some(Instant::now());
        let fresh = match refresh.source.load().await {
            Ok(secret) => bearer(&secret.bot_token),
            Err(e) => Err(e),
        };
        match fresh {
            Ok(header) if header == *used => {
                tracing::warn!("slack refused the bot token and the secret still holds the same one");
                false
            }
            Ok(header) => {
                *self.authorization.write().unwrap_or_else(PoisonError::into_inner) = header;
                tracing::info!("slack refused the bot token; re-read a new one from the secret");
                true
            }
            Err(e) => {
                tracing::warn!(error = %e, "slack refused the bot token and the secret could not be re-read");
                false
            }
        }
    }

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

    /// Calls `method`, retrying as the failure allows; `idempotent` calls are also retried after
    /// a transport failure that may have reached Slack (a repeated post would show twice).
    async fn call(
        &self,
        method: &'static str,
        payload: Payload<'_>,
        idempotent: bool,
    ) -> std::result::Result<Value, ChatError> {
        self.call_with(method, payload, idempotent, true).await
    }

    /// [`Self::call`], or with `patient` false a single attempt: a rate limit or a transient
    /// failure is returned at once instead of waited out.
    async fn call_with(
        &self,
        method: &'static str,
        payload: Payload<'_>,
        idempotent: bool,
        patient: bool,
    ) -> std::result::Result<Value, ChatError> {
        let fail = |error: &str| ChatError { method, error: error.to_string() };
        let mut url = self.api_base.join(method).map_err(|_| fail("invalid_url"))?;
        let body = match &payload {
            Payload::Json(value) => Some(serde_json::to_vec(value).map_err(|_| fail("invalid_request"))?),
            Payload::Query(pairs) => {
                url.query_pairs_mut().extend_pairs(pairs.iter().map(|(k, v)| (*k, v.as_str())));
                None
            }
        };

        // A single attempt when impatient: a rate limit or a passing failure comes back at once.
        let backoff = if patient { self.backoff } else { Backoff { max_attempts: 1, ..self.backoff } };
        let policy =
            RetryPolicy { max_rate_limit_wait: self.max_rate_limit_wait, ..RetryPolicy::new(backoff, idempotent) };
        let token_reread = AtomicBool::new(false);
        let sent = crate::http::retry(
            &policy,
            method,
            || "timeout".to_string(),
            |_| async {
                loop {
                    let request = match &body {
                        Some(bytes) => self
                            .http
                            .post(url.clone())
                            .header(CONTENT_TYPE, "application/json; charset=utf-8")
                            .body(bytes.clone()),
                        None => self.http.get(url.clone()),
                    };
                    let authorization = self.authorization();
                    let request = request.header(AUTHORIZATION, authorization.clone());
                    let verdict = match request.send().await {
                        Ok(response) => {
                            let status = response.status().as_u16();
                            let retry_after = crate::http::retry_after_header(&response);
                            match response.bytes().await {
                                Ok(bytes) => classify(status, retry_after.as_deref(), &bytes),
                                Err(_) if status == 429 => classify(status, retry_after.as_deref(), b""),
                                Err(e) => transport(method, e),
                            }
                        }
                        Err(e) => transport(method, e),
                    };
                    // A refused token reached nothing, so even a post may be sent again, once.
                    if let Verdict::Permanent(error) = &verdict {
                        if !token_reread.load(Ordering::Relaxed)
                            && fail(error).is_auth_failure()
                            && self.refresh_token(&authorization).await
                        {
                            token_reread.store(true, Ordering::Relaxed);
                            continue;
                        }
                    }
                    return verdict;
                }
            },
        )
        .await;
        sent.map_err(|error| fail(&error))
    }
}

/// A request that got no usable answer. Only a failed connection proves the request never
/// reached Slack; anything else is repeated only for idempotent calls.
fn transport<T>(method: &'static str, err: reqwest::Error) -> Verdict<T, String> {
    let failure = Transport::from(err);
    tracing::debug!(slack_method = method, kind = failure.kind(), error = %failure, "slack transport failure");
    failure.verdict("transport".into())
}

/// Interprets one HTTP answer from the Web API.
fn classify(status: u16, retry_after: Option<&str>, body: &[u8]) -> Attempt {
    let rate_limited = || Attempt::RateLimited {
        wait: crate::http::parse_retry_after(retry_after, DEFAULT_RETRY_AFTER),
        error: "ratelimited".into(),
    };
    if status == 429 {
        return rate_limited();
    }
    // Slack may have acted on it before failing.
    if (500..600).contains(&status) {
        return Attempt::MaybeSent(format!("http_{status}"));
    }
    let parsed: Option<Value> = serde_json::from_slice(body).ok();
    let slack_error = parsed
        .as_ref()
        .filter(|v| v.get("ok") == Some(&Value::Bool(false)))
        .map(|v| v.get("error").and_then(Value::as_str).unwrap_or("unknown_error").to_string());
    if let Some(error) = slack_error {
        return if error == "ratelimited" { rate_limited() } else { Attempt::Permanent(error) };
    }
    if !(200..300).contains(&status) {
        return Attempt::Permanent(format!("http_{status}"));
    }
    match parsed {
        Some(value) if value.get("ok") == Some(&Value::Bool(true)) => Attempt::Done(value),
        _ => Attempt::Permanent("invalid_response".into()),
    }
}

/// Reaction names are sent without the surrounding colons.
fn reaction_name(name: &str) -> &str {
    name.trim().trim_matches(':')
}

/// The messages of a `conversations.replies` answer, oldest first, at most `limit`.
fn thread_messages(answer: &Value, limit: usize) -> Vec<ThreadMessage> {
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

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: &str = "xoxb-unit-test-token";

    #[test]
    fn classifies_web_api_answers() {
        let ok = classify(200, None, br#"{"ok":true,"ts":"1.2"}"#);
        assert_eq!(ok, Attempt::Done(json!({"ok": true, "ts": "1.2"})));
        assert_eq!(
            classify(200, None, br#"{"ok":false,"error":"channel_not_found"}"#),
            Attempt::Permanent("channel_not_found".into())
        );
        assert_eq!(classify(200, None, br#"{"ok":false}"#), Attempt::Permanent("unknown_error".into()));
        assert_eq!(
            classify(200, Some("7"), br#"{"ok":false,"error":"ratelimited"}"#),
            Attempt::RateLimited { wait: Duration::from_secs(7), error: "ratelimited".into() }
        );
        assert_eq!(
            classify(429, Some("3"), b""),
            Attempt::RateLimited { wait: Duration::from_secs(3), error: "ratelimited".into() }
        );
        assert_eq!(
            classify(429, Some("soon"), b""),
            Attempt::RateLimited { wait: DEFAULT_RETRY_AFTER, error: "ratelimited".into() }
        );
        assert_eq!(
            classify(429, None, b""),
            Attempt::RateLimited { wait: DEFAULT_RETRY_AFTER, error: "ratelimited".into() }
        );
        let past = Some("Wed, 21 Oct 2015 07:28:00 GMT");
        assert_eq!(
            classify(429, past, b""),
            Attempt::RateLimited { wait: Duration::ZERO, error: "ratelimited".into() }
        );
        assert_eq!(classify(503, None, b"<html>"), Attempt::MaybeSent("http_503".into()));
        assert_eq!(classify(500, None, br#"{"ok":true}"#), Attempt::MaybeSent("http_500".into()));
        assert_eq!(classify(404, None, b"not found"), Attempt::Permanent("http_404".into()));
        assert_eq!(
            classify(400, None, br#"{"ok":false,"error":"invalid_arguments"}"#),
            Attempt::Permanent("invalid_arguments".into())
        );
        assert_eq!(classify(200, None, b"<html>"), Attempt::Permanent("invalid_response".into()));
    }

    #[test]
    fn maps_thread_messages() {
        let answer = json!({
            "ok": true,
            "messages": [
                {"type": "message", "user": "U1", "text": "question", "ts": "1.000001", "thread_ts": "1.000001"},
                {"type": "message", "user": "UBOT", "bot_id": "B1", "text": "answer", "ts": "1.000002"},
                {"type": "message", "subtype": "bot_message", "bot_id": "B2", "ts": "1.000003"},
                {"type": "message", "user": "U2", "bot_id": null, "text": "more", "ts": "1.000004"},
                {"type": "message", "text": "no ts"}
            ]
        });
        let messages = thread_messages(&answer, 10);
        assert_eq!(messages.len(), 4);
        assert_eq!(
            messages[0],
            ThreadMessage { user: Some("U1".into()), bot: false, ts: "1.000001".into(), text: "question".into() }
        );
        assert!(messages[1].bot && messages[2].bot && !messages[3].bot);
        assert_eq!(messages[2].user, None);
        assert_eq!(messages[2].text, "");
        assert_eq!(thread_messages(&answer, 2).len(), 2);
        assert!(thread_messages(&json!({"ok": true}), 10).is_empty());
    }

    #[test]
    fn refusals_of_blocks_are_told_apart_from_other_failures() {
        let error = |e: &str| ChatError { method: "chat.postMessage", error: e.into() };
        for refused in ["invalid_blocks", "invalid_blocks_format", "only_one_table_allowed", "msg_blocks_too_long"] {
            assert!(error(refused).refused_blocks(), "{refused}");
        }
        for other in ["ratelimited", "channel_not_found", "transport", "http_500", "msg_too_long"] {
            assert!(!error(other).refused_blocks(), "{other}");
        }
    }

    #[test]
    fn permanent_errors_are_told_apart_from_transient_ones() {
        let error = |e: &str| ChatError { method: "chat.postMessage", error: e.into() };
        for permanent in [
            "channel_not_found",
            "not_in_channel",
            "is_archived",
            "invalid_auth",
            "token_revoked",
            "account_inactive",
            "msg_too_long",
            "not_authed",
        ] {
            assert!(error(permanent).is_permanent(), "{permanent}");
        }
        for transient in ["ratelimited", "http_500", "http_503", "transport", "fatal_error", "internal_error", "new"] {
            assert!(!error(transient).is_permanent(), "{transient}");
        }
        assert!(error("token_revoked").is_auth_failure() && !error("channel_not_found").is_auth_failure());
        assert!(error("msg_too_long").refused_content() && !error("is_archived").refused_content());
    }

    #[test]
    fn reaction_names_lose_their_colons() {
        assert_eq!(reaction_name(":eyes:"), "eyes");
        assert_eq!(reaction_name("white_check_mark"), "white_check_mark");
    }

    #[test]
    fn new_validates_without_revealing_the_token() {
        let client = SlackWebClient::new("http://127.0.0.1:9/api/", SecretString::from(TOKEN)).unwrap();
        assert_eq!(client.api_base.as_str(), "http://127.0.0.1:9/api/");
        assert_eq!(
            client.api_base.join("chat.postMessage").unwrap().as_str(),
            "http://127.0.0.1:9/api/chat.postMessage"
        );
        let debug = format!("{client:?}");
        assert!(!debug.contains(TOKEN) && debug.contains("127.0.0.1"), "{debug}");
        assert!(client.authorization().is_sensitive());

        let e = SlackWebClient::new("not a url", SecretString::from(TOKEN)).unwrap_err().to_string();
        assert!(e.contains("SLACK_API_BASE"), "{e}");
        let e = SlackWebClient::new("ftp://example.com", SecretString::from(TOKEN)).unwrap_err().to_string();
        assert!(e.contains("SLACK_API_BASE"), "{e}");
        let e = SlackWebClient::new("https://slack.com/api", SecretString::from("  ")).unwrap_err().to_string();
        assert!(e.contains("empty"), "{e}");
        let bad = "xoxb-bad\ntoken";
        let e = SlackWebClient::new("https://slack.com/api", SecretString::from(bad)).unwrap_err().to_string();
        assert!(!e.contains("xoxb-bad"), "{e}");
    }

    #[tokio::test]
    async fn connection_refused_is_retried_then_reported_as_transport() {
        // Port 9 (discard) is closed on loopback: every attempt fails to connect.
        let client = SlackWebClient::new("http://127.0.0.1:9/api", SecretString::from(TOKEN))
            .unwrap()
            .with_backoff(Backoff { base: Duration::from_millis(1), cap: Duration::from_millis(2), max_attempts: 3 });
        let err = client.post_message("C1", "1.0", "hi").await.unwrap_err();
        assert_eq!(err.method, "chat.postMessage");
        assert_eq!(err.error, "transport");
        assert!(!err.to_string().contains(TOKEN));
    }
}
