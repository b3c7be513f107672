//! The token-logging handler: one SQS batch of usage records -> priced turns in the ledger with
//! their rollups -> EMF metrics. Malformed records and turns that could not be written are
//! returned as batch item failures (the queue retries them, then its DLQ keeps them); turns
//! already in the ledger are acknowledged without counting them again.

mod wiring;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Instant;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use chrono::Utc;
use shared::config::{metrics_namespace, required};
use shared::ledger::LedgerTurn;
use shared::ports::TokenLedger;
use shared::pricing::{PriceTable, Usd};
use shared::telemetry::{Metrics, Unit};
use tracing::{error, info, warn};

use crate::plan::{parse_record, price_turn};
use crate::writer::{LedgerWriter, TurnOutcome, WriteReport, WriterSettings};

/// Configuration read once at init.
#[derive(Debug, Clone)]
pub struct Config {
    pub usage_table: String,
    pub metrics_namespace: String,
}

impl Config {
    /// Reads USAGE_TABLE and METRICS_NAMESPACE (PRICE_TABLE_OVERRIDE and
    /// APPLICATION_INFERENCE_PROFILES are read by [`shared::aws::prices::load_configured`]).
    pub fn from_env() -> shared::Result<Config> {
        Ok(Config { usage_table: required("USAGE_TABLE")?, metrics_namespace: metrics_namespace() })
    }
}

/// The handler and what it holds across invocations (prices, the breaker's state).
pub struct TokenLogger {
    writer: LedgerWriter,
    prices: PriceTable,
    metrics: Metrics,
    table_name: String,
}

/// Counts of one batch, for the summary log line and the tests.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct BatchSummary {
    pub messages: usize,
    pub malformed: usize,
    pub duplicates_in_batch: usize,
    pub written: usize,
    pub already_logged: usize,
    pub failed: usize,
    pub requests: u64,
}

impl TokenLogger {
    pub fn new(
        ledger: Arc<dyn TokenLedger>,
        prices: PriceTable,
        metrics: Metrics,
        table_name: impl Into<String>,
        settings: WriterSettings,
    ) -> Self {
        TokenLogger { writer: LedgerWriter::new(ledger, settings), prices, metrics, table_name: table_name.into() }
    }

    /// The price table in use.
    pub fn prices(&self) -> &PriceTable {
        &self.prices
    }

    /// Processes one batch; the response lists the messages to retry.
    pub async fn handle_batch(&self, event: SqsEvent, deadline: Option<Instant>) -> SqsBatchResponse {
        self.handle_batch_with_summary(event, deadline).await.0
    }

    /// [`handle_batch`](Self::handle_batch), also returning the batch's counts.
    pub async fn handle_batch_with_summary(
        &self,
        event: SqsEvent,
        deadline: Option<Instant>,
    ) -> (SqsBatchResponse, BatchSummary) {
        let started = Instant::now();
        let mut summary = BatchSummary { messages: event.records.len(), ..BatchSummary::default() };
        let mut failed_messages: Vec<String> = Vec::new();
        // Every message carrying a record id: a failed record fails all its copies.
        let mut messages_of: HashMap<String, Vec<String>> = HashMap::new();
        let mut turns: Vec<LedgerTurn> = Vec::new();
        for msg in event.records {
            let message_id = msg.message_id.clone().unwrap_or_default();
            match parse_record(msg.body.as_deref().unwrap_or("")) {
                Err(reason) => {
                    summary.malformed += 1;
                    self.metrics.count_with_total("SchemaDrift", 1.0, &[("EventType", "usage_record")]);
                    warn!(message_id = %message_id, reason = %reason, "malformed usage record; left for the dead-letter queue");
                    failed_messages.push(message_id);
                }
                Ok((record, at)) => {
                    let copies = messages_of.entry(record.record_id.clone()).or_default();
                    copies.push(message_id);
                    if copies.len() > 1 {
                        summary.duplicates_in_batch += 1;
                        info!(record_id = %record.record_id, "record delivered twice in one batch; counted once");
                        continue;
                    }
                    turns.push(price_turn(record, at, &self.prices));
                }
            }
        }

        let report = self.writer.write(turns, deadline).await;
        summary.requests = report.requests;
        for (turn, outcome) in &report.outcomes {
            match outcome {
                TurnOutcome::Written => summary.written += 1,
                TurnOutcome::AlreadyLogged => {
                    summary.already_logged += 1;
                    info!(record_id = %turn.record.record_id, "already in the ledger; not counted again");
                }
                TurnOutcome::Failed(why) => {
                    summary.failed += 1;
                    warn!(record_id = %turn.record.record_id, reason = why.as_str(), "turn not written; returned to the queue");
                    failed_messages.extend(messages_of.remove(&turn.record.record_id).unwrap_or_default());
                }
            }
        }
        self.emit_metrics(&report, &summary, started);
        info!(
            messages = summary.messages,
            written = summary.written,
            already_logged = summary.already_logged,
            duplicates_in_batch = summary.duplicates_in_batch,
            malformed = summary.malformed,
            failed = summary.failed,
            requests = summary.requests,
            throttles = report.throttles,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "usage batch processed"
        );
        let mut response = SqsBatchResponse::default();
        for id in failed_messages {
            if id.is_empty() {
                // Lambda fails the whole batch for an empty identifier: nothing is lost.
                error!("a failed message has no message id");
            }
            response.add_failure(id);
        }
        (response, summary)
    }

    fn emit_metrics(&self, report: &WriteReport, summary: &BatchSummary, started: Instant) {
        let now = Utc::now();
        // Per agent and model: tokens and cost of turns written now (not of those already logged).
        let mut by_model: BTreeMap<(&str, &str), (u64, u64, Usd, bool)> = BTreeMap::new();
        let mut unpriced: BTreeMap<&str, u64> = BTreeMap::new();
        let mut unreported: BTreeMap<&str, u64> = BTreeMap::new();
        for (turn, outcome) in &report.outcomes {
            if *outcome != TurnOutcome::Written {
                continue;
            }
            if turn.record.tokens_unreported {
                // The agent worked but said nothing of its tokens: what it cost is unknown.
                *unreported.entry(&turn.record.agent_id).or_default() += 1;
            }
            let latency_ms = (now - turn.at).num_milliseconds().max(0);
            self.metrics.record(&[]).put("LoggingLatency", latency_ms as f64, Unit::Milliseconds).emit();
            for (call, priced) in turn.record.calls.iter().zip(&turn.calls) {
                let e = by_model.entry((&turn.record.agent_id, &priced.model)).or_insert((0, 0, Usd::ZERO, false));
                e.0 += call.input_tokens;
                e.1 += call.output_tokens;
                match priced.cost {
                    Some(c) => {
                        e.2 += c;
                        e.3 = true;
                    }
                    None => *unpriced.entry(&priced.model).or_default() += shared::pricing::call_tokens(call),
                }
            }
        }
        for ((agent, model), (input, output, cost, priced)) in by_model {
            let mut set = self
                .metrics
                .record(&[("AgentId", agent), ("ModelId", model)])
                // The dimensionless series feed the cost alarms (alarms cannot SEARCH).
                .with_total()
                .put("InputTokens", input as f64, Unit::Count)
                .put("OutputTokens", output as f64, Unit::Count)
                .put("TotalTokens", (input + output) as f64, Unit::Count);
            if priced {
                set = set.put("EstimatedCost", cost.as_f64(), Unit::None);
            }
            set.emit();
        }
        let total_unpriced: u64 = unpriced.values().sum();
        for (model, tokens) in unpriced {
            self.metrics.count("UnpricedTokens", tokens as f64, &[("ModelId", model)]);
        }
        if total_unpriced > 0 {
            // Without dimensions too, so that one alarm covers every unpriced model.
            self.metrics.count("UnpricedTokens", total_unpriced as f64, &[]);
        }
        for (agent, turns) in unreported {
            self.metrics.count_with_total("UnreportedUsage", turns as f64, &[("AgentId", agent)]);
        }
        let duplicates = summary.already_logged + summary.duplicates_in_batch;
        if duplicates > 0 {
            self.metrics.count("DuplicateEvents", duplicates as f64, &[("Source", "usage_record")]);
        }
        if summary.failed > 0 {
            self.metrics.count_with_total("LoggingErrors", summary.failed as f64, &[("Sink", "usage_table")]);
        }
        if report.breaker_trips > 0 {
            self.metrics.count("CircuitBreakerTrips", report.breaker_trips as f64, &[("Component", "usage_table")]);
        }
        self.metrics.count("DynamoDBThrottles", report.throttles as f64, &[("TableName", &self.table_name)]);
        self.metrics
            .record(&[])
            .put("BatchProcessingTime", started.elapsed().as_millis() as f64, Unit::Milliseconds)
            .emit();
    }
}

#[cfg(test)]
mod tests;
