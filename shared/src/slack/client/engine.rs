//! The call engine behind every Web API method: one request, what Slack's answer means, and
//! the retries and token re-read around it.

use super::*;
use crate::http::{RetryPolicy, Transport};

impl SlackWebClient {
    /// Calls `method`, retrying as the failure allows; `idempotent` calls are also retried after
    /// a transport failure that may have reached Slack (a repeated post would show twice).
    pub(super) async fn call(
        &self,
        method: &'static str,
        payload: Payload<'_>,
        idempotent: bool,
    ) -> std::result::Result<Value, ChatError> {
        self.call_with(method, payload, idempotent, true).await
    }

    /// [`Self::call`], or with `patient` false a single attempt: a rate limit or a transient
    /// failure is returned at once instead of waited out.
    pub(super) async fn call_with(
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
pub(super) fn transport<T>(method: &'static str, err: reqwest::Error) -> Verdict<T, String> {
    let failure = Transport::from(err);
    tracing::debug!(slack_method = method, kind = failure.kind(), error = %failure, "slack transport failure");
    failure.verdict("transport".into())
}

/// Interprets one HTTP answer from the Web API.
pub(super) fn classify(status: u16, retry_after: Option<&str>, body: &[u8]) -> Attempt {
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
