//! The agent retry loop: throttled or failed agent calls are retried with backoff, every attempt
//! ends in time to answer and record the turn before the Lambda deadline, and the model calls of
//! failed attempts count as spent.

use std::time::Instant;

use shared::domain::{AgentTurn, ModelCall};
use shared::ports::{AgentError, AgentRequest, SpentCalls, TextSink};
use tracing::{error, warn};

use super::Worker;
use crate::stream::LiveReply;

impl Worker {
    /// The agent's turn for `request`, retried while retryable and the deadline allows.
    pub(super) async fn invoke_with_retries(
        &self,
        request: &AgentRequest,
        deadline: Option<Instant>,
        live: &LiveReply,
    ) -> Result<AgentTurn, AgentError> {
        let mut attempt = 0;
        let mut spent: Vec<ModelCall> = Vec::new();
        // Whether any attempt worked without saying what it spent.
        let mut unreported = false;
        let on_text = |delta: &str| live.push(delta);
        // Attempts end here at the latest: the reserve answers the user and records the turn.
        let cutoff = deadline.map(|d| d.checked_sub(self.settings.deadline_reserve).unwrap_or_else(Instant::now));
        loop {
            live.restart();
            match self.attempt(request, &on_text, cutoff).await {
                Ok(mut turn) => {
                    // Calls of failed attempts were billed too.
                    spent.append(&mut turn.model_calls);
                    turn.model_calls = spent;
                    turn.usage_unreported |= unreported;
                    return Ok(turn);
                }
                Err(mut e) => {
                    self.metrics.count_with_total("APIErrors", 1.0, &[("ErrorCode", &e.code)]);
                    spent.append(&mut e.spent);
                    unreported |= e.usage_unreported;
                    // A retry must still have a whole attempt's time after its delay.
                    let keep = self.settings.deadline_reserve + self.settings.min_agent_attempt;
                    let delay = e
                        .is_retryable()
                        .then(|| self.settings.agent_backoff.next_delay(attempt, None, deadline, keep))
                        .flatten();
                    match delay {
                        Some(d) => {
                            warn!(code = %e.code, attempt, delay_ms = d.as_millis() as u64, "agent call failed; retrying");
                            tokio::time::sleep(d).await;
                            attempt += 1;
                        }
                        None => {
                            error!(code = %e.code, message = %e.message, attempt, "agent call failed; giving up");
                            e.spent = spent;
                            e.usage_unreported = unreported;
                            return Err(e);
                        }
                    }
                }
            }
        }
    }

    /// One agent call, cut off at `cutoff`; the model calls the stream reported by then are kept
    /// as spent. Not started when less than the minimum attempt time is left.
    async fn attempt(
        &self,
        request: &AgentRequest,
        on_text: TextSink<'_>,
        cutoff: Option<Instant>,
    ) -> Result<AgentTurn, AgentError> {
        let reported = SpentCalls::default();
        let Some(cutoff) = cutoff else {
            return self.agent.invoke_streaming(request, on_text, &reported).await;
        };
        let left = cutoff.saturating_duration_since(Instant::now());
        if left < self.settings.min_agent_attempt {
            let message = format!(
                "{} ms left for the agent, an attempt needs {} ms",
                left.as_millis(),
                self.settings.min_agent_attempt.as_millis()
            );
            return Err(AgentError::timed_out(message, Vec::new()));
        }
        match tokio::time::timeout(left, self.agent.invoke_streaming(request, on_text, &reported)).await {
            Ok(result) => result,
            Err(_) => {
                let message = format!("no complete answer within {} ms", left.as_millis());
                Err(AgentError::timed_out(message, reported.snapshot()))
            }
        }
    }
}
