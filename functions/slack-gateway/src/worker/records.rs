//! Record building: the turn's analytics event and usage record, and the metrics only the worker
//! knows.

use shared::domain::{AgentTurn, AnalyticsEvent, ModelCall, Outcome, UsageRecord, ANALYTICS_SCHEMA_VERSION};
use shared::telemetry::Unit;

use super::Worker;
use crate::work::MessageWork;

impl Worker {
    /// Token and cost metrics are token-logging's (priced, once per turn even when a usage record
    /// is redelivered); the worker emits only what it alone knows.
    pub(super) fn emit_turn_metrics(&self, latency_ms: u64, error_code: Option<&str>, unknown_events: &[String]) {
        let agent = self.settings.agent_id.as_str();
        self.metrics.record(&[("AgentId", agent)]).put("APILatency", latency_ms as f64, Unit::Milliseconds).emit();
        // Failed attempts are counted as they happen; a failure trace is only known here.
        if error_code == Some("AgentFailureTrace") {
            self.metrics.count_with_total("APIErrors", 1.0, &[("ErrorCode", "AgentFailureTrace")]);
        }
        // Stream events this code does not know: counted by kind, their content never logged.
        for kind in unknown_events {
            tracing::warn!(event_kind = %kind, backend = %self.agent.backend(), "unknown agent stream event ignored");
            self.metrics.count_with_total("SchemaDrift", 1.0, &[("EventType", "agent_stream")]);
        }
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn analytics_event(
        &self,
        m: &MessageWork,
        session_id: &str,
        turn: &AgentTurn,
        calls: &[ModelCall],
        outcome: Outcome,
        error_code: Option<String>,
        latency_ms: u64,
    ) -> AnalyticsEvent {
        let (input_tokens, output_tokens) = shared::domain::total_tokens(calls);
        let question = m.question();
        AnalyticsEvent {
            timestamp: iso_ms(m.received_at_ms),
            user_id: m.user_id.clone(),
            thread_id: m.thread().thread_ts,
            message_length: question.chars().count() as u64,
            response_length: turn.text.chars().count() as u64,
            knowledge_bases: turn.knowledge_bases.clone(),
            search_queries: turn.search_queries.clone(),
            rationale: turn.rationale.clone(),
            event_id: m.event_id.clone(),
            team_id: m.team_id.clone(),
            channel_id: m.channel_id.clone(),
            agent_id: self.settings.agent_id.clone(),
            agent_alias_id: self.settings.agent_alias_id.clone(),
            session_id: session_id.to_string(),
            action_groups: turn.action_groups.clone(),
            sources: turn.sources.clone(),
            model_ids: shared::domain::model_ids(calls),
            input_tokens,
            output_tokens,
            // None when any model of the turn is missing from the price table: never a guess.
            estimated_cost_usd: self.prices.turn_cost(calls).0,
            latency_ms,
            first_token_ms: turn.first_token_ms,
            outcome,
            error_code,
            guardrail_action: turn.guardrail_action.clone(),
            schema_version: ANALYTICS_SCHEMA_VERSION,
            agent_backend: self.agent.backend(),
            message_text: self.settings.store_message_text.then_some(question),
        }
    }

    /// The turn's usage record; `unreported` when the agent worked but its stream said nothing
    /// of what it spent.
    pub(super) fn usage_record(&self, m: &MessageWork, calls: &[ModelCall], unreported: bool) -> UsageRecord {
        UsageRecord {
            // Stable across redeliveries of the same Slack event.
            record_id: format!("{}:{}", m.team_id, m.event_id),
            timestamp: iso_ms(chrono::Utc::now().timestamp_millis()),
            user_id: m.user_id.clone(),
            team_id: m.team_id.clone(),
            channel_id: m.channel_id.clone(),
            thread_id: m.thread().thread_ts,
            agent_id: self.settings.agent_id.clone(),
            agent_alias_id: self.settings.agent_alias_id.clone(),
            agent_backend: self.agent.backend(),
            calls: calls.to_vec(),
            tokens_unreported: unreported,
        }
    }
}

fn iso_ms(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms).unwrap_or_default().format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}
