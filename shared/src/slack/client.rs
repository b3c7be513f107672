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

mod engine;
mod methods;

use crate::http::Verdict;
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
}

#[cfg(test)]
mod tests;
