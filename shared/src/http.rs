//! The one HTTP engine behind the Slack Web API, Jira and Slack file transfers: how a client is
//! built, how `Retry-After` is read, and the retry loop. Callers keep their own error types and
//! decide what each answer means (a [`Verdict`]); the engine decides whether, when and how often
//! to try again: jittered backoff ([`Backoff`]), rate limits waited out as the server asks,
//! never past a deadline, and never a repeat of a request that is not safe to repeat once it
//! may have reached the server.
//!
//! Nothing here prints a URL: a URL can carry a token, a channel or a customer's Jira host.

use std::future::Future;
use std::time::{Duration, Instant};

use crate::retry::Backoff;
use crate::{Error, Result};

/// Connecting takes well under this on a healthy network.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// Short: pooled sockets die while a Lambda sandbox is frozen between invocations.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(4);

/// Whether a client follows redirects itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Redirects {
    /// reqwest's default policy.
    Follow,
    /// Returned to the caller, e.g. to re-check every hop against an allow-list.
    Manual,
}

/// A reqwest client (rustls) with this product's connect timeout and short idle pool.
/// `request_timeout` bounds each request (None: the caller sets one per request); `name` only
/// says in the error which client could not be built.
pub fn client(
    name: &str,
    user_agent: &str,
    request_timeout: Option<Duration>,
    redirects: Redirects,
) -> Result<reqwest::Client> {
    let mut builder = reqwest::Client::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .pool_idle_timeout(POOL_IDLE_TIMEOUT)
        .user_agent(user_agent);
    if let Some(timeout) = request_timeout {
        builder = builder.timeout(timeout);
    }
    if redirects == Redirects::Manual {
        builder = builder.redirect(reqwest::redirect::Policy::none());
    }
    builder.build().map_err(|e| Error::Config(format!("cannot build the {name} HTTP client: {}", Transport::from(e))))
}

/// `Retry-After` as delay-seconds or an HTTP date (RFC 9110 allows both); `default` when absent
/// or unreadable, zero for a date already past.
pub fn parse_retry_after(header: Option<&str>, default: Duration) -> Duration {
    let Some(value) = header.map(str::trim) else { return default };
    if let Ok(secs) = value.parse::<u64>() {
        return Duration::from_secs(secs);
    }
    chrono::DateTime::parse_from_rfc2822(value)
        .ok()
        .map(|at| (at.with_timezone(&chrono::Utc) - chrono::Utc::now()).to_std().unwrap_or(Duration::ZERO))
        .unwrap_or(default)
}

/// The `Retry-After` header of a response, as text.
pub fn retry_after_header(response: &reqwest::Response) -> Option<String> {
    response.headers().get(reqwest::header::RETRY_AFTER).and_then(|v| v.to_str().ok()).map(str::to_owned)
}

/// A request that got no usable answer, described without its URL.
#[derive(Debug)]
pub struct Transport {
    timeout: bool,
    connect: bool,
    detail: String,
}

impl Transport {
    /// `timeout`, `connect` or `io`: short enough for a metric or an error code.
    pub fn kind(&self) -> &'static str {
        if self.timeout {
            "timeout"
        } else if self.connect {
            "connect"
        } else {
            "io"
        }
    }

    /// The attempt ran out of time.
    pub fn is_timeout(&self) -> bool {
        self.timeout
    }

    /// No connection was made, so the request cannot have reached the server.
    pub fn is_connect(&self) -> bool {
        self.connect
    }

    /// The verdict on this failure, as `error`: a request that never left is [`Verdict::NotSent`],
    /// anything else may have been acted on ([`Verdict::MaybeSent`]).
    pub fn verdict<T, E>(&self, error: E) -> Verdict<T, E> {
        if self.connect {
            Verdict::NotSent(error)
        } else {
            Verdict::MaybeSent(error)
        }
    }
}

impl From<reqwest::Error> for Transport {
    fn from(err: reqwest::Error) -> Self {
        let (timeout, connect) = (err.is_timeout(), err.is_connect());
        // reqwest's Display ends with "for url (...)"; the chain below it names no URL.
        let err = err.without_url();
        let mut detail = err.to_string();
        let mut source = std::error::Error::source(&err);
        while let Some(e) = source {
            detail.push_str(": ");
            detail.push_str(&e.to_string());
            source = e.source();
        }
        Transport { timeout, connect, detail }
    }
}

impl std::fmt::Display for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.detail)
    }
}

/// What one attempt came to, as the caller reads the answer.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict<T, E> {
    Done(T),
    /// Retrying cannot help.
    Permanent(E),
    /// The server asked to wait this long first.
    RateLimited {
        wait: Duration,
        error: E,
    },
    /// Failed before the request could reach the server: safe to repeat any request.
    NotSent(E),
    /// Failed after the request may have reached the server (5xx, timeout, a lost connection):
    /// repeated only when the request is idempotent.
    MaybeSent(E),
}

/// How rate-limit waits are counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateLimitWaits {
    /// Each wait uses up an attempt of the backoff, like any retry.
    ShareAttempts,
    /// At most this many waits, on top of the backoff's attempts.
    AtMost(u32),
}

/// When and how often a call is retried.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    pub backoff: Backoff,
    /// No attempt starts, and no wait is taken, that leaves less than `reserve` before it.
    pub deadline: Option<Instant>,
    pub reserve: Duration,
    /// Whether the request may be repeated after it may have reached the server.
    pub idempotent: bool,
    /// The most time one call spends waiting out rate limits.
    pub max_rate_limit_wait: Duration,
    pub rate_limit_waits: RateLimitWaits,
}

impl RetryPolicy {
    /// `backoff`, no deadline, rate-limit waits counted as attempts and otherwise unbounded.
    pub fn new(backoff: Backoff, idempotent: bool) -> Self {
        RetryPolicy {
            backoff,
            deadline: None,
            reserve: Duration::ZERO,
            idempotent,
            max_rate_limit_wait: Duration::MAX,
            rate_limit_waits: RateLimitWaits::ShareAttempts,
        }
    }

    /// The time left before the deadline, or None without one.
    fn time_left(&self) -> Option<Duration> {
        self.deadline.map(|d| d.saturating_duration_since(Instant::now()))
    }
}

/// One attempt's context.
#[derive(Debug, Clone, Copy)]
pub struct Attempt {
    /// Counts from 0; rate-limit waits kept apart from the backoff's attempts do not count.
    pub number: u32,
    /// Until the deadline, when there is one: a per-request timeout should not outlast it.
    pub time_left: Option<Duration>,
}

/// The rate-limit waits one call has taken so far.
#[derive(Debug, Default)]
struct RateLimitBudget {
    /// Waits kept apart from the backoff's attempts ([`RateLimitWaits::AtMost`]).
    waits: u32,
    waited: Duration,
}

impl RateLimitBudget {
    /// The delay to take before repeating a call the server asked to wait `wait`, counted in the
    /// budget; None (logged) when the wait outlasts the budget, the deadline or the attempts left.
    fn admit(&mut self, policy: &RetryPolicy, label: &str, wait: Duration, number: u32) -> Option<Duration> {
        if self.waited.saturating_add(wait) > policy.max_rate_limit_wait {
            tracing::warn!(
                call = label,
                retry_after_ms = wait.as_millis() as u64,
                "rate limit outlasts the wait budget"
            );
            return None;
        }
        let delay = match policy.rate_limit_waits {
            RateLimitWaits::ShareAttempts => {
                policy.backoff.next_delay(number, Some(wait), policy.deadline, policy.reserve)
            }
            RateLimitWaits::AtMost(max) => {
                let fits = policy.deadline.is_none_or(|d| Instant::now() + wait + policy.reserve <= d);
                (fits && self.waits < max).then_some(wait)
            }
        };
        let Some(delay) = delay else {
            tracing::warn!(
                call = label,
                retry_after_ms = wait.as_millis() as u64,
                "rate limit outlasts the time or attempts left"
            );
            return None;
        };
        self.waited = self.waited.saturating_add(delay);
        if let RateLimitWaits::AtMost(_) = policy.rate_limit_waits {
            self.waits += 1;
            tracing::warn!(call = label, retry_after_ms = delay.as_millis() as u64, "rate limited; waiting as asked");
        }
        Some(delay)
    }
}

/// Runs `attempt` until it is done, fails for good, or `policy` allows no more; `label` names
/// the call in logs. With a deadline and less than `reserve` left before an attempt, returns
/// `out_of_time()` instead of starting it.
pub async fn retry<T, E, F, Fut>(
    policy: &RetryPolicy,
    label: &str,
    out_of_time: impl Fn() -> E,
    mut attempt: F,
) -> std::result::Result<T, E>
where
    E: std::fmt::Display,
    F: FnMut(Attempt) -> Fut,
    Fut: Future<Output = Verdict<T, E>>,
{
    let mut number: u32 = 0;
    let mut budget = RateLimitBudget::default();
    loop {
        let time_left = policy.time_left();
        if time_left.is_some_and(|left| left < policy.reserve) {
            return Err(out_of_time());
        }
        let (error, delay) = match attempt(Attempt { number, time_left }).await {
            Verdict::Done(value) => return Ok(value),
            Verdict::Permanent(error) => return Err(error),
            // It may have been acted on: only the caller can tell whether to repeat it.
            Verdict::MaybeSent(error) if !policy.idempotent => {
                tracing::warn!(call = label, error = %error, "call failed; not repeated (not idempotent)");
                return Err(error);
            }
            Verdict::RateLimited { wait, error } => {
                let Some(delay) = budget.admit(policy, label, wait, number) else { return Err(error) };
                if let RateLimitWaits::AtMost(_) = policy.rate_limit_waits {
                    // Kept apart from the backoff: this wait uses up no attempt.
                    tokio::time::sleep(delay).await;
                    continue;
                }
                (error, Some(delay))
            }
            Verdict::NotSent(error) | Verdict::MaybeSent(error) => {
                let delay = policy.backoff.next_delay(number, None, policy.deadline, policy.reserve);
                (error, delay)
            }
        };
        let Some(delay) = delay else {
            tracing::warn!(call = label, error = %error, attempts = number + 1, "call failed; giving up");
            return Err(error);
        };
        tracing::warn!(
            call = label,
            error = %error,
            attempt = number + 1,
            delay_ms = delay.as_millis() as u64,
            "call failed; retrying"
        );
        tokio::time::sleep(delay).await;
        number += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::cell::RefCell;

    const DEFAULT: Duration = Duration::from_secs(2);

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        assert_eq!(parse_retry_after(Some(" 3 "), DEFAULT), Duration::from_secs(3));
        assert_eq!(parse_retry_after(Some("soon"), DEFAULT), DEFAULT);
        assert_eq!(parse_retry_after(None, DEFAULT), DEFAULT);
        assert_eq!(parse_retry_after(Some("-1"), DEFAULT), DEFAULT);
        assert_eq!(
            parse_retry_after(Some("Wed, 21 Oct 2015 07:28:00 GMT"), DEFAULT),
            Duration::ZERO,
            "a date in the past"
        );
        let later = (chrono::Utc::now() + chrono::Duration::seconds(30)).to_rfc2822();
        let d = parse_retry_after(Some(&later), DEFAULT);
        assert!(d > Duration::from_secs(25) && d <= Duration::from_secs(30), "{d:?}");
        let http_date = (chrono::Utc::now() + chrono::Duration::seconds(30)).format("%a, %d %b %Y %H:%M:%S GMT");
        let d = parse_retry_after(Some(&http_date.to_string()), DEFAULT);
        assert!(d > Duration::from_secs(25) && d <= Duration::from_secs(30), "{d:?}");
    }

    fn config() -> ProptestConfig {
        let cases = std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(256);
        ProptestConfig { cases, failure_persistence: None, ..ProptestConfig::default() }
    }

    proptest! {
        #![proptest_config(config())]

        #[test]
        fn retry_after_never_panics(header in proptest::option::of(".{0,64}")) {
            let _ = parse_retry_after(header.as_deref(), DEFAULT);
        }

        #[test]
        fn retry_after_seconds_round_trip(secs in any::<u64>(), pad in "[ \t]{0,3}") {
            let header = format!("{pad}{secs}{pad}");
            prop_assert_eq!(parse_retry_after(Some(&header), DEFAULT), Duration::from_secs(secs));
        }
    }

    /// A retry policy with delays short enough for a unit test.
    fn quick(max_attempts: u32, idempotent: bool) -> RetryPolicy {
        let backoff = Backoff { base: Duration::from_millis(1), cap: Duration::from_millis(2), max_attempts };
        RetryPolicy::new(backoff, idempotent)
    }

    /// Runs `policy` over scripted verdicts; returns the result and the attempts made.
    async fn run(
        policy: &RetryPolicy,
        script: Vec<Verdict<&'static str, String>>,
    ) -> (std::result::Result<&'static str, String>, usize) {
        let script = RefCell::new(script.into_iter());
        let made = RefCell::new(0);
        let result = retry(
            policy,
            "test",
            || "out of time".to_string(),
            |_| {
                *made.borrow_mut() += 1;
                let next = script.borrow_mut().next().unwrap_or(Verdict::Permanent("script ended".into()));
                async move { next }
            },
        )
        .await;
        (result, made.into_inner())
    }

    fn maybe(e: &str) -> Verdict<&'static str, String> {
        Verdict::MaybeSent(e.into())
    }

    #[tokio::test]
    async fn passing_failures_are_retried_up_to_the_attempts() {
        let (r, n) = run(&quick(4, true), vec![maybe("a"), Verdict::NotSent("b".into()), Verdict::Done("ok")]).await;
        assert_eq!((r, n), (Ok("ok"), 3));
        let (r, n) = run(&quick(3, true), vec![maybe("a"), maybe("b"), maybe("c"), Verdict::Done("late")]).await;
        assert_eq!((r, n), (Err("c".into()), 3));
        let (r, n) = run(&quick(3, true), vec![Verdict::Permanent("no".into()), Verdict::Done("never")]).await;
        assert_eq!((r, n), (Err("no".into()), 1));
    }

    #[tokio::test]
    async fn a_request_that_may_have_arrived_is_repeated_only_when_idempotent() {
        let (r, n) = run(&quick(4, false), vec![maybe("http_500"), Verdict::Done("twice")]).await;
        assert_eq!((r, n), (Err("http_500".into()), 1));
        // A refused connection proves nothing was sent: even a post may go again.
        let (r, n) = run(&quick(4, false), vec![Verdict::NotSent("connect".into()), Verdict::Done("ok")]).await;
        assert_eq!((r, n), (Ok("ok"), 2));
    }

    #[tokio::test]
    async fn rate_limits_respect_the_wait_budget_and_the_count() {
        let limited = |ms| Verdict::RateLimited { wait: Duration::from_millis(ms), error: "ratelimited".to_string() };
        let mut policy = quick(4, false);
        policy.max_rate_limit_wait = Duration::from_millis(5);
        let (r, n) = run(&policy, vec![limited(2), limited(2), limited(2), Verdict::Done("late")]).await;
        assert_eq!((r, n), (Err("ratelimited".into()), 3), "the third wait passes the budget");
        let (r, n) = run(&quick(2, false), vec![limited(1), limited(1), Verdict::Done("late")]).await;
        assert_eq!((r, n), (Err("ratelimited".into()), 2), "waits share the attempts");

        let mut apart = quick(1, true);
        apart.rate_limit_waits = RateLimitWaits::AtMost(2);
        let (r, n) = run(&apart, vec![limited(1), limited(1), Verdict::Done("ok")]).await;
        assert_eq!((r, n), (Ok("ok"), 3), "waits kept apart from a single attempt");
        let (r, n) = run(&apart, vec![limited(1), limited(1), limited(1), Verdict::Done("late")]).await;
        assert_eq!((r, n), (Err("ratelimited".into()), 3));
    }

    #[tokio::test]
    async fn nothing_starts_or_waits_past_the_deadline() {
        let mut policy = quick(4, true);
        policy.deadline = Some(Instant::now());
        policy.reserve = Duration::from_millis(250);
        let (r, n) = run(&policy, vec![Verdict::Done("never")]).await;
        assert_eq!((r, n), (Err("out of time".into()), 0));

        policy.deadline = Some(Instant::now() + Duration::from_secs(60));
        policy.rate_limit_waits = RateLimitWaits::AtMost(3);
        let long = Verdict::RateLimited { wait: Duration::from_secs(3600), error: "ratelimited".to_string() };
        let (r, n) = run(&policy, vec![long, Verdict::Done("late")]).await;
        assert_eq!((r, n), (Err("ratelimited".into()), 1), "a wait past the deadline is not taken");
    }

    #[tokio::test]
    async fn transport_failures_never_print_the_url() {
        // Port 9 (discard) is closed on loopback: the connection is refused.
        let http = client("test", "test-agent", Some(Duration::from_secs(5)), Redirects::Manual).unwrap();
        let err = http.get("http://127.0.0.1:9/api/secret-path?token=xoxb-in-url").send().await.unwrap_err();
        assert!(err.to_string().contains("xoxb-in-url"), "reqwest itself prints the URL: {err}");
        let failure = Transport::from(err);
        let text = failure.to_string();
        assert!(
            !text.contains("xoxb-in-url") && !text.contains("secret-path") && !text.contains("127.0.0.1"),
            "{text}"
        );
        assert!(!text.is_empty());
        assert!(failure.is_connect() && failure.kind() == "connect", "{failure:?}");
        assert_eq!(failure.verdict::<(), _>("transport"), Verdict::NotSent("transport"));
    }
}
