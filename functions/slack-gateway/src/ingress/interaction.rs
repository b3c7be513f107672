//! Interactive payloads (Slack interactivity: the answers' feedback buttons) at the same endpoint
//! as events, after the same signature check: a press is queued like an event (deduped, FIFO)
//! and acknowledged with an empty 200; anything else is acknowledged and counted as drift.

use aws_lambda_events::event::lambda_function_urls::LambdaFunctionUrlResponse;
use aws_lambda_events::http::HeaderMap;

use super::{header, respond, Ingress};
use crate::classify::Decision;
use crate::interactive::{classify_interaction, form_payload};

/// Whether the request is form-encoded, as Slack sends interactive payloads (events are JSON).
pub(super) fn is_interaction(headers: &HeaderMap) -> bool {
    header(headers, "content-type").is_some_and(|t| {
        t.split(';').next().is_some_and(|m| m.trim().eq_ignore_ascii_case("application/x-www-form-urlencoded"))
    })
}

impl Ingress {
    /// Handles a verified interactive body. Nothing here waits on Slack: the thanks is the
    /// worker's, so the acknowledgement costs one dedupe claim and one enqueue, like an event.
    pub(super) async fn interaction(
        &self,
        raw: &[u8],
        received_at_ms: i64,
        retry: Option<(String, String)>,
        deadline: tokio::time::Instant,
    ) -> LambdaFunctionUrlResponse {
        let payload = match form_payload(raw) {
            Ok(p) => p,
            Err(detail) => {
                self.drift("interactive", detail, None);
                return respond(200, "");
            }
        };
        match classify_interaction(&payload, received_at_ms) {
            Decision::Accept(item) => self.accept(*item, retry, deadline).await,
            Decision::Drift { event_type, detail } => {
                self.drift(&event_type, &detail, Some(&payload));
                respond(200, "")
            }
            Decision::Ignore { .. } | Decision::Challenge(_) => respond(200, ""),
        }
    }
}
