//! Jira Cloud REST v3 over reqwest (rustls): the enhanced JQL search (`POST
//! /rest/api/3/search/jql`, paged with `nextPageToken`) and one issue by key.
//!
//! The credentials come from a secret read on every invocation (a rotation takes effect at once)
//! and travel only in a sensitive `Authorization: Basic` header. Every call is a read, so every
//! failure that may pass is retried: 429 after the `Retry-After` Jira asks for, 5xx and transport
//! failures with jittered backoff, always within the invocation's deadline. The retry loop and
//! the client are [`shared::http`]'s; this module decides what each Jira answer means.

use std::time::{Duration, Instant};

use async_trait::async_trait;
use base64::Engine;
use reqwest::header::{HeaderValue, ACCEPT, AUTHORIZATION, CONTENT_TYPE};
use reqwest::{Method, Url};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use shared::aws::secrets::JsonSecret;
use shared::http::{RateLimitWaits, RetryPolicy, Transport, Verdict};
use shared::retry::Backoff;

/// Per attempt; the invocation's deadline bounds the whole call.
const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(8);
/// An attempt with less time than this left is not started.
const MIN_ATTEMPT: Duration = Duration::from_millis(250);
/// When a 429 comes without a usable `Retry-After`.
const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(2);
/// Rate-limit waits per call, at most.
const MAX_RATE_LIMIT_WAITS: u32 = 3;
/// Jira's own messages are relayed to the user, cut to this length.
const MAX_MESSAGE_CHARS: usize = 500;
/// Summaries are cut to this length, keeping the answer well inside Bedrock's response size.
const MAX_SUMMARY_CHARS: usize = 200;
/// Issues requested per search page.
const MAX_PAGE: usize = 100;
/// The fields a ticket answer shows.
const FIELDS: [&str; 5] = ["summary", "status", "assignee", "updated", "priority"];

/// The Jira secret: `{"base_url": "...", "email": "...", "api_token": "..."}`.
#[derive(Clone, Deserialize)]
pub struct JiraCredentials {
    pub base_url: String,
    pub email: String,
    pub api_token: SecretString,
}

impl std::fmt::Debug for JiraCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JiraCredentials").field("base_url", &self.base_url).finish_non_exhaustive()
    }
}

/// Where the Jira credentials are read from, on every invocation.
#[async_trait]
pub trait JiraCredentialSource: Send + Sync {
    async fn load(&self) -> shared::Result<JiraCredentials>;
}

/// The Jira secret in Secrets Manager (JIRA_SECRET_ARN).
#[async_trait]
impl JiraCredentialSource for JsonSecret {
    async fn load(&self) -> shared::Result<JiraCredentials> {
        self.read().await
    }
}

/// Why a Jira call failed. Messages never carry a credential.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JiraError {
    /// The secret holds placeholders or an unusable value.
    #[error("the Jira secret is not usable: {0}")]
    NotConfigured(String),
    /// 401 or 403: the credentials were refused.
    #[error("Jira refused the credentials (HTTP {status})")]
    Rejected { status: u16 },
    /// 404, with Jira's message.
    #[error("Jira: not found ({message})")]
    NotFound { message: String },
    /// 400 (a bad JQL query), with Jira's message.
    #[error("Jira refused the request: {message}")]
    BadRequest { message: String },
    /// 429 that outlasted the time left or the waits allowed.
    #[error("Jira rate limit (retry after {}s)", retry_after.as_secs())]
    RateLimited { retry_after: Duration },
    /// 5xx after the retries.
    #[error("Jira unavailable (HTTP {status})")]
    Unavailable { status: u16 },
    /// No answer in time.
    #[error("Jira did not answer in time")]
    Timeout,
    /// No connection.
    #[error("Jira unreachable: {0}")]
    Unreachable(String),
    /// An answer that is not what the API documents.
    #[error("unexpected Jira answer (HTTP {status}): {reason}")]
    Unexpected { status: u16, reason: String },
}

impl JiraError {
    /// A short, stable code for metrics and logs.
    pub fn code(&self) -> &'static str {
        match self {
            JiraError::NotConfigured(_) => "JiraNotConfigured",
            JiraError::Rejected { .. } => "JiraAuth",
            JiraError::NotFound { .. } => "JiraNotFound",
            JiraError::BadRequest { .. } => "JiraBadRequest",
            JiraError::RateLimited { .. } => "JiraRateLimited",
            JiraError::Unavailable { .. } => "JiraUnavailable",
            JiraError::Timeout => "JiraTimeout",
            JiraError::Unreachable(_) => "JiraUnreachable",
            JiraError::Unexpected { .. } => "JiraUnexpected",
        }
    }

    /// Whether what was already fetched is still worth returning (the failure is passing).
    fn is_transient(&self) -> bool {
        matches!(
            self,
            JiraError::RateLimited { .. }
                | JiraError::Unavailable { .. }
                | JiraError::Timeout
                | JiraError::Unreachable(_)
        )
    }
}

/// One Jira site and the credentials for it, for one invocation.
pub struct JiraSite {
    /// Always ends with `/`, so relative API paths join under it.
    base: Url,
    /// `Basic base64(email:api_token)`, marked sensitive.
    authorization: HeaderValue,
}

impl std::fmt::Debug for JiraSite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JiraSite").field("base", &self.base.as_str()).finish_non_exhaustive()
    }
}

impl JiraSite {
    /// Validates the secret's values without ever quoting the token.
    pub fn new(credentials: &JiraCredentials) -> Result<Self, JiraError> {
        let token = credentials.api_token.expose_secret().trim();
        let email = credentials.email.trim();
        let placeholder = |v: &str| v.is_empty() || v.contains("REPLACE_ME");
        if placeholder(email) || placeholder(token) || placeholder(&credentials.base_url) {
            return Err(JiraError::NotConfigured("it still holds placeholder values".into()));
        }
        let trimmed = credentials.base_url.trim().trim_end_matches('/');
        let base =
            Url::parse(&format!("{trimmed}/")).map_err(|_| JiraError::NotConfigured("base_url is not a URL".into()))?;
        let loopback = matches!(base.host_str(), Some("127.0.0.1" | "localhost" | "[::1]"));
        // Basic auth over plain HTTP would hand the token to anyone on the path.
        if !(base.scheme() == "https" || (base.scheme() == "http" && loopback)) || base.host().is_none() {
            return Err(JiraError::NotConfigured("base_url must be an https:// URL".into()));
        }
        if !base.username().is_empty() || base.password().is_some() {
            return Err(JiraError::NotConfigured("base_url must not carry credentials".into()));
        }
        let raw = base64::engine::general_purpose::STANDARD.encode(format!("{email}:{token}"));
        let mut authorization = HeaderValue::from_str(&format!("Basic {raw}"))
            .map_err(|_| JiraError::NotConfigured("the credentials cannot be sent in a header".into()))?;
        authorization.set_sensitive(true);
        Ok(JiraSite { base, authorization })
    }

    /// The web link of an issue: `{base_url}/browse/{key}`.
    pub fn browse_url(&self, key: &str) -> String {
        let mut url = self.base.clone();
        if let Ok(mut segments) = url.path_segments_mut() {
            segments.pop_if_empty().push("browse").push(key);
        }
        url.to_string()
    }

    fn url(&self, segments: &[&str]) -> Result<Url, JiraError> {
        let mut url = self.base.clone();
        url.path_segments_mut()
            .map_err(|_| JiraError::NotConfigured("base_url cannot have paths".into()))?
            .pop_if_empty()
            .extend(segments);
        Ok(url)
    }
}

/// A ticket as the agent gets it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ticket {
    pub key: String,
    pub summary: String,
    pub status: Option<String>,
    /// `None` when unassigned.
    pub assignee: Option<String>,
    /// Jira's ISO-8601 timestamp.
    pub updated: Option<String>,
    pub priority: Option<String>,
    /// `{base_url}/browse/{key}`.
    pub url: String,
}

/// What a search found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchResult {
    pub tickets: Vec<Ticket>,
    /// Jira has more matches than were fetched.
    pub more: bool,
}

/// The Jira REST client: one HTTP connection pool for the sandbox's life.
#[derive(Debug, Clone)]
pub struct JiraClient {
    http: reqwest::Client,
    backoff: Backoff,
    request_timeout: Duration,
}

/// What one attempt came to.
type Attempt = Verdict<Value, JiraError>;

impl JiraClient {
    pub fn new() -> shared::Result<Self> {
        // No client-wide timeout: each attempt gets one that fits the invocation's deadline.
        let user_agent = concat!("bedrock-slack-action-group/", env!("CARGO_PKG_VERSION"));
        let http = shared::http::client("Jira", user_agent, None, shared::http::Redirects::Follow)?;
        Ok(JiraClient { http, backoff: Backoff::default(), request_timeout: DEFAULT_REQUEST_TIMEOUT })
    }

    /// Replaces the retry policy for 5xx and transport failures.
    pub fn with_backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    /// Replaces the per-attempt timeout (the deadline still bounds it).
    pub fn with_request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// Up to `limit` issues matching `jql`, following `nextPageToken` while time allows.
    pub async fn search(
        &self,
        site: &JiraSite,
        jql: &str,
        limit: usize,
        deadline: Instant,
    ) -> Result<SearchResult, JiraError> {
        let url = site.url(&["rest", "api", "3", "search", "jql"])?;
        let mut tickets: Vec<Ticket> = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let want = limit.saturating_sub(tickets.len()).clamp(1, MAX_PAGE);
            let mut body = json!({ "jql": jql, "maxResults": want, "fields": FIELDS });
            if let Some(t) = &token {
                body["nextPageToken"] = json!(t);
            }
            let page = match self.call(site, Method::POST, url.clone(), Some(&body), deadline).await {
                Ok(page) => page,
                // A later page failing for a passing reason: what was found is still an answer.
                Err(e) if !tickets.is_empty() && e.is_transient() => {
                    tracing::warn!(error = %e, found = tickets.len(), "jira search stopped early");
                    return Ok(SearchResult { tickets, more: true });
                }
                Err(e) => return Err(e),
            };
            let issues = page
                .get("issues")
                .and_then(Value::as_array)
                .ok_or_else(|| JiraError::Unexpected { status: 200, reason: "search answer without issues".into() })?;
            tickets.extend(issues.iter().filter_map(|i| ticket(site, i)));
            token = page.get("nextPageToken").and_then(Value::as_str).filter(|t| !t.is_empty()).map(str::to_owned);
            let last = page.get("isLast").and_then(Value::as_bool).unwrap_or(token.is_none());
            let has_more = !last && token.is_some();
            if tickets.len() >= limit || !has_more || issues.is_empty() {
                let more = has_more || tickets.len() > limit;
                tickets.truncate(limit);
                return Ok(SearchResult { tickets, more });
            }
            if deadline.saturating_duration_since(Instant::now()) < MIN_ATTEMPT * 4 {
                return Ok(SearchResult { tickets, more: true });
            }
        }
    }

    /// One issue by key (`GET /rest/api/3/issue/{key}`).
    pub async fn issue(&self, site: &JiraSite, key: &str, deadline: Instant) -> Result<Ticket, JiraError> {
        let mut url = site.url(&["rest", "api", "3", "issue", key])?;
        url.query_pairs_mut().append_pair("fields", &FIELDS.join(","));
        let answer = self.call(site, Method::GET, url, None, deadline).await?;
        ticket(site, &answer).ok_or_else(|| JiraError::Unexpected { status: 200, reason: "issue without a key".into() })
    }

    /// Sends one request, retrying as the failure allows, never past `deadline`.
    async fn call(
        &self,
        site: &JiraSite,
        method: Method,
        url: Url,
        body: Option<&Value>,
        deadline: Instant,
    ) -> Result<Value, JiraError> {
        let body = body.map(|b| serde_json::to_vec(b).unwrap_or_default());
        // Every Jira call here is a read: safe to repeat whatever happened to the last attempt.
        let policy = RetryPolicy {
            deadline: Some(deadline),
            reserve: MIN_ATTEMPT,
            rate_limit_waits: RateLimitWaits::AtMost(MAX_RATE_LIMIT_WAITS),
            ..RetryPolicy::new(self.backoff, true)
        };
        shared::http::retry(
            &policy,
            "jira",
            || JiraError::Timeout,
            |attempt| {
                let left = attempt.time_left.unwrap_or(self.request_timeout);
                let mut request = self
                    .http
                    .request(method.clone(), url.clone())
                    .timeout(self.request_timeout.min(left))
                    .header(ACCEPT, "application/json")
                    .header(AUTHORIZATION, site.authorization.clone());
                if let Some(bytes) = &body {
                    request = request.header(CONTENT_TYPE, "application/json").body(bytes.clone());
                }
                async move {
                    match request.send().await {
                        Ok(response) => {
                            let status = response.status().as_u16();
                            let retry_after = shared::http::retry_after_header(&response);
                            match response.bytes().await {
                                Ok(bytes) => classify(status, retry_after.as_deref(), &bytes),
                                Err(e) => transport(e),
                            }
                        }
                        Err(e) => transport(e),
                    }
                }
            },
        )
        .await
    }
}

/// Interprets one HTTP answer.
fn classify(status: u16, retry_after: Option<&str>, body: &[u8]) -> Attempt {
    match status {
        200..=299 => match serde_json::from_slice::<Value>(body) {
            Ok(value) => Attempt::Done(value),
            Err(_) => Attempt::Permanent(JiraError::Unexpected { status, reason: "the answer is not JSON".into() }),
        },
        401 | 403 => Attempt::Permanent(JiraError::Rejected { status }),
        404 => Attempt::Permanent(JiraError::NotFound { message: jira_message(body) }),
        400 => Attempt::Permanent(JiraError::BadRequest { message: jira_message(body) }),
        429 => {
            let wait = shared::http::parse_retry_after(retry_after, DEFAULT_RETRY_AFTER);
            Attempt::RateLimited { wait, error: JiraError::RateLimited { retry_after: wait } }
        }
        408 => Attempt::MaybeSent(JiraError::Timeout),
        500..=599 => Attempt::MaybeSent(JiraError::Unavailable { status }),
        _ => Attempt::Permanent(JiraError::Unexpected { status, reason: jira_message(body) }),
    }
}

/// A request that got no answer (all Jira calls here are reads, so it is safe to try again).
fn transport(err: reqwest::Error) -> Attempt {
    let failure = Transport::from(err);
    if failure.is_timeout() {
        return failure.verdict(JiraError::Timeout);
    }
    let kind = if failure.is_connect() { "connection failed" } else { "connection lost" };
    // The message stays generic; the detail (without the URL) only goes to the debug log.
    tracing::debug!(error = %failure, kind, "jira transport failure");
    failure.verdict(JiraError::Unreachable(kind.into()))
}

/// Jira's error messages (`errorMessages` and `errors`), joined and cut.
fn jira_message(body: &[u8]) -> String {
    let Ok(value) = serde_json::from_slice::<Value>(body) else { return String::new() };
    let mut parts: Vec<String> = value
        .get("errorMessages")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).map(str::to_owned).collect())
        .unwrap_or_default();
    if let Some(errors) = value.get("errors").and_then(Value::as_object) {
        parts.extend(errors.iter().filter_map(|(k, v)| v.as_str().map(|m| format!("{k}: {m}"))));
    }
    cut(&parts.join("; "), MAX_MESSAGE_CHARS)
}

/// A ticket from an issue JSON (search result or single issue).
fn ticket(site: &JiraSite, issue: &Value) -> Option<Ticket> {
    let key = issue.get("key").and_then(Value::as_str)?.to_string();
    let fields = issue.get("fields").unwrap_or(&Value::Null);
    let text = |v: Option<&Value>| v.and_then(Value::as_str).map(str::to_owned);
    Some(Ticket {
        url: site.browse_url(&key),
        summary: cut(fields.get("summary").and_then(Value::as_str).unwrap_or_default(), MAX_SUMMARY_CHARS),
        status: text(fields.pointer("/status/name")),
        assignee: text(fields.pointer("/assignee/displayName")),
        updated: text(fields.get("updated")),
        priority: text(fields.pointer("/priority/name")),
        key,
    })
}

/// `text` cut to `max` characters, with an ellipsis when cut.
pub(crate) fn cut(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((at, _)) => format!("{}…", text[..at].trim_end()),
        None => text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn credentials(base_url: &str, email: &str, token: &str) -> JiraCredentials {
        JiraCredentials { base_url: base_url.into(), email: email.into(), api_token: SecretString::from(token) }
    }

    fn site_header(email: &str, token: &str) -> HeaderValue {
        let raw = base64::engine::general_purpose::STANDARD.encode(format!("{email}:{token}"));
        HeaderValue::from_str(&format!("Basic {raw}")).unwrap()
    }

    #[test]
    fn site_validates_the_secret_without_revealing_the_token() {
        let site = JiraSite::new(&credentials("https://acme.atlassian.net/", "bot@acme.test", "tok-123")).unwrap();
        assert!(site.authorization.is_sensitive());
        let expected = base64::engine::general_purpose::STANDARD.encode("bot@acme.test:tok-123");
        assert_eq!(site.authorization.to_str().unwrap(), format!("Basic {expected}"));
        assert_eq!(site.browse_url("ITSUP-1"), "https://acme.atlassian.net/browse/ITSUP-1");
        assert_eq!(
            site.url(&["rest", "api", "3", "search", "jql"]).unwrap().as_str(),
            "https://acme.atlassian.net/rest/api/3/search/jql"
        );
        assert_eq!(
            site.url(&["rest", "api", "3", "issue", "A/B?c"]).unwrap().as_str(),
            "https://acme.atlassian.net/rest/api/3/issue/A%2FB%3Fc"
        );
        let debug = format!("{site:?} {:?}", credentials("https://a.test", "e", "tok-123"));
        assert!(!debug.contains("tok-123") && !debug.contains(&expected), "{debug}");

        let not_configured = |c: JiraCredentials| matches!(JiraSite::new(&c), Err(JiraError::NotConfigured(_)));
        assert!(not_configured(credentials("https://your-domain.atlassian.net", "REPLACE_ME", "REPLACE_ME")));
        assert!(not_configured(credentials("https://a.test", "e", " ")));
        assert!(not_configured(credentials("not a url", "e", "t")));
        assert!(not_configured(credentials("http://jira.example.com", "e", "t")), "no basic auth over plain http");
        assert!(not_configured(credentials("https://u:p@jira.example.com", "e", "t")));
        assert!(JiraSite::new(&credentials("http://127.0.0.1:8080", "e", "t")).is_ok(), "loopback is fine");
        // A token pasted with its newline still works: the header carries it base64-encoded, trimmed.
        let pasted = JiraSite::new(&credentials("https://a.test", "e", "tok-123\n")).unwrap();
        assert_eq!(pasted.authorization, site_header("e", "tok-123"));
    }

    #[test]
    fn classifies_jira_answers() {
        assert!(matches!(classify(200, None, br#"{"issues":[]}"#), Attempt::Done(_)));
        assert!(matches!(classify(200, None, b"<html>"), Attempt::Permanent(JiraError::Unexpected { .. })));
        assert!(matches!(classify(401, None, b""), Attempt::Permanent(JiraError::Rejected { status: 401 })));
        assert!(matches!(classify(403, None, b""), Attempt::Permanent(JiraError::Rejected { status: 403 })));
        let Attempt::Permanent(JiraError::BadRequest { message }) = classify(
            400,
            None,
            br#"{"errorMessages":["Error in the JQL Query: Expecting operator but got 'foo'."],"errors":{"jql":"bad"}}"#,
        ) else {
            panic!("400 is a bad request")
        };
        assert_eq!(message, "Error in the JQL Query: Expecting operator but got 'foo'.; jql: bad");
        assert!(matches!(classify(404, None, b"{}"), Attempt::Permanent(JiraError::NotFound { .. })));
        assert!(
            matches!(classify(429, Some("7"), b""), Attempt::RateLimited { wait, .. } if wait == Duration::from_secs(7))
        );
        assert!(
            matches!(classify(429, None, b""), Attempt::RateLimited { wait, error: JiraError::RateLimited { retry_after } }
            if wait == DEFAULT_RETRY_AFTER && retry_after == wait)
        );
        assert!(matches!(classify(503, None, b""), Attempt::MaybeSent(JiraError::Unavailable { status: 503 })));
        assert!(matches!(classify(302, None, b""), Attempt::Permanent(JiraError::Unexpected { status: 302, .. })));
    }

    #[test]
    fn maps_issues_to_tickets() {
        let site = JiraSite::new(&credentials("https://acme.atlassian.net", "e", "t")).unwrap();
        let issue = json!({
            "id": "10001", "key": "ITSUP-4182",
            "fields": {
                "summary": "VPN drops every 30 minutes on macOS 15",
                "status": {"name": "In Progress", "statusCategory": {"key": "indeterminate"}},
                "assignee": {"displayName": "Dana Whitfield", "emailAddress": "dana@example.com"},
                "updated": "2025-03-10T09:12:44.000+0000",
                "priority": {"name": "High"}
            }
        });
        let t = ticket(&site, &issue).unwrap();
        assert_eq!(t.key, "ITSUP-4182");
        assert_eq!(t.status.as_deref(), Some("In Progress"));
        assert_eq!(t.assignee.as_deref(), Some("Dana Whitfield"));
        assert_eq!(t.url, "https://acme.atlassian.net/browse/ITSUP-4182");
        let unassigned = ticket(&site, &json!({"key": "A-1", "fields": {"summary": "x", "assignee": null}})).unwrap();
        assert_eq!(unassigned.assignee, None);
        assert!(ticket(&site, &json!({"fields": {}})).is_none());
        assert_eq!(cut("abcdef", 3), "abc…");
        assert_eq!(cut("abc", 3), "abc");
    }

    #[tokio::test]
    async fn an_unreachable_jira_fails_within_the_deadline() {
        // Port 9 (discard) is closed on loopback: every attempt fails to connect.
        let site = JiraSite::new(&credentials("http://127.0.0.1:9", "e", "t")).unwrap();
        let client = JiraClient::new().unwrap().with_backoff(Backoff {
            base: Duration::from_millis(1),
            cap: Duration::from_millis(5),
            max_attempts: 3,
        });
        let started = Instant::now();
        let err = client.issue(&site, "A-1", Instant::now() + Duration::from_secs(5)).await.unwrap_err();
        assert!(matches!(err, JiraError::Unreachable(_)), "{err:?}");
        assert!(started.elapsed() < Duration::from_secs(5));
        let err = client.issue(&site, "A-1", Instant::now()).await.unwrap_err();
        assert_eq!(err, JiraError::Timeout, "no attempt without time left");
    }
}
