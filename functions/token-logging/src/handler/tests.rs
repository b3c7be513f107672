use std::sync::Mutex;
use std::time::Duration;

use aws_lambda_events::event::sqs::SqsEvent;
use serde_json::Value;
use shared::retry::Backoff;
use shared::telemetry::parse_emf;

use super::*;
use crate::faults::{FaultyLedger, LedgerFault};
use crate::memory::MemoryLedger;

fn fixture(name: &str) -> SqsEvent {
    let path = format!("{}/../../events/usage/{name}.json", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(&path).expect("fixture")).expect("SQS event")
}

fn fast() -> WriterSettings {
    WriterSettings {
        backoff: Backoff { base: Duration::from_millis(1), cap: Duration::from_millis(5), max_attempts: 4 },
        deadline_reserve: Duration::ZERO,
        ..WriterSettings::default()
    }
}

struct Harness {
    logger: TokenLogger,
    emf: Arc<Mutex<Vec<u8>>>,
}

impl Harness {
    fn new(ledger: Arc<dyn TokenLedger>, settings: WriterSettings) -> Self {
        let (metrics, emf) = Metrics::capture("BedrockUsage");
        Harness { logger: TokenLogger::new(ledger, PriceTable::embedded(), metrics, "usage", settings), emf }
    }

    fn docs(&self) -> Vec<Value> {
        parse_emf(&self.emf.lock().expect("emf").clone())
    }

    fn sum(&self, name: &str, dim: Option<(&str, &str)>) -> f64 {
        self.docs().iter().filter(|d| dim.is_none_or(|(k, v)| d[k] == v)).filter_map(|d| d[name].as_f64()).sum()
    }
}

fn failed_ids(resp: &SqsBatchResponse) -> Vec<&str> {
    resp.batch_item_failures.iter().map(|f| f.item_identifier.as_str()).collect()
}

#[tokio::test]
async fn a_batch_is_priced_written_once_and_measured() {
    let ledger = Arc::new(MemoryLedger::new());
    let h = Harness::new(ledger.clone(), fast());
    let (resp, summary) = h.logger.handle_batch_with_summary(fixture("batch"), None).await;
    assert!(resp.batch_item_failures.is_empty());
    assert_eq!((summary.written, summary.requests), (3, 1));
    let state = ledger.snapshot();
    let cost = |id: &str| state.turns[id].cost.map(|c| c.to_string());
    assert_eq!(cost("T0001:Ev0001USAGE").as_deref(), Some("0.0109"));
    assert_eq!(cost("T0001:Ev0002USAGE").as_deref(), Some("0.01639"));
    assert_eq!(cost("T0001:Ev0003USAGE"), None, "an unpriced call makes the turn's cost null");
    assert_eq!(state.turns["T0001:Ev0003USAGE"].priced_cost.to_string(), "0.00165");
    let user = &state.rollups[&("USER#T0001#U024BE7LH".to_string(), "DAY#2026-04-19".to_string())];
    assert_eq!((user.cost.to_string().as_str(), user.turns, user.unpriced_tokens), ("0.01255", 2, 790));
    let month = &state.rollups[&("USER#T0001#U024BE7LH".to_string(), "MONTH#2026-04".to_string())];
    assert_eq!(month, user);

    assert_eq!(h.sum("InputTokens", Some(("ModelId", "anthropic.claude-3-5-sonnet-20241022"))), 1000.0);
    assert_eq!(h.sum("EstimatedCost", Some(("ModelId", "anthropic.claude-3-5-sonnet-20241022"))), 0.0105);
    assert_eq!(h.sum("UnpricedTokens", Some(("ModelId", "unknown"))), 790.0);
    assert_eq!(
        h.sum("TotalTokens", Some(("AgentId", "AGENT12345"))),
        (1200 + 80 + 1500 + 2300 + 500 + 700 + 790) as f64
    );
    assert!(h.docs().iter().filter(|d| d.get("LoggingLatency").is_some()).count() == 3);
    assert!(h.docs().iter().any(|d| d.get("BatchProcessingTime").is_some()));
    for doc in h.docs() {
        let dims = doc["_aws"]["CloudWatchMetrics"][0]["Dimensions"][0].to_string();
        assert!(!dims.contains("User"), "user ids are never dimensions: {dims}");
        assert!(doc.get("EstimatedCost").is_none() || doc["ModelId"] != "unknown", "unpriced models have no cost");
    }
}

#[tokio::test]
async fn redelivered_and_in_batch_duplicates_never_count_twice() {
    let ledger = Arc::new(MemoryLedger::new());
    let h = Harness::new(ledger.clone(), fast());
    assert!(h.logger.handle_batch(fixture("batch"), None).await.batch_item_failures.is_empty());
    let before = ledger.snapshot().rollups;
    let (resp, summary) = h.logger.handle_batch_with_summary(fixture("redelivery"), None).await;
    assert!(resp.batch_item_failures.is_empty(), "duplicates are acknowledged");
    assert_eq!((summary.already_logged, summary.duplicates_in_batch, summary.written), (1, 1, 0));
    assert_eq!(ledger.snapshot().rollups, before);
    assert_eq!(h.sum("DuplicateEvents", None), 2.0);
    assert_eq!(h.sum("InputTokens", Some(("ModelId", "anthropic.claude-3-haiku-20240307"))), 1200.0);
}

#[tokio::test]
async fn malformed_records_are_failed_for_the_dlq_and_counted() {
    let ledger = Arc::new(MemoryLedger::new());
    let h = Harness::new(ledger.clone(), fast());
    let resp = h.logger.handle_batch(fixture("malformed"), None).await;
    assert_eq!(failed_ids(&resp), vec!["9a8b7c6d-0000-4000-8000-000000000002", "9a8b7c6d-0000-4000-8000-000000000003"]);
    assert_eq!(h.sum("SchemaDrift", Some(("EventType", "usage_record"))), 2.0);
    assert_eq!(ledger.snapshot().turns.len(), 1, "the valid record of the batch is written");
}

#[tokio::test]
async fn throttling_backs_off_and_then_writes_or_fails_the_records() {
    for fault in [LedgerFault::Throttled, LedgerFault::ThrottledCancellation] {
        let memory = Arc::new(MemoryLedger::new());
        let ledger = Arc::new(FaultyLedger::first(memory.clone(), fault, 2));
        let h = Harness::new(ledger.clone(), fast());
        let resp = h.logger.handle_batch(fixture("batch"), None).await;
        assert!(resp.batch_item_failures.is_empty());
        assert_eq!(memory.snapshot().turns.len(), 3);
        assert_eq!(h.sum("DynamoDBThrottles", Some(("TableName", "usage"))), 2.0);
    }
    // Throttled past the retries: every record goes back to the queue, nothing is half-written.
    let memory = Arc::new(MemoryLedger::new());
    let ledger = Arc::new(FaultyLedger::first(memory.clone(), LedgerFault::Throttled, 100));
    let mut settings = fast();
    settings.breaker_threshold = 100;
    let h = Harness::new(ledger.clone(), settings);
    let resp = h.logger.handle_batch(fixture("batch"), None).await;
    assert_eq!(resp.batch_item_failures.len(), 3);
    assert!(memory.snapshot().rollups.is_empty());
    assert_eq!(h.sum("LoggingErrors", Some(("Sink", "usage_table"))), 3.0);
}

#[tokio::test]
async fn the_circuit_breaker_stops_calls_to_a_failing_table() {
    let memory = Arc::new(MemoryLedger::new());
    let ledger = Arc::new(FaultyLedger::first(memory.clone(), LedgerFault::Throttled, 1000));
    let mut settings = fast();
    settings.max_actions = 12; // several transactions per batch (a turn of two models needs 11 actions)
    settings.breaker_threshold = 3;
    settings.breaker_cool_down = Duration::from_millis(50);
    let h = Harness::new(ledger.clone(), settings);
    let (resp, summary) = h.logger.handle_batch_with_summary(fixture("batch"), None).await;
    assert_eq!(resp.batch_item_failures.len(), 3);
    assert_eq!(summary.requests, 3, "the breaker opened after three failures; later chunks never called the table");
    assert_eq!(h.sum("CircuitBreakerTrips", Some(("Component", "usage_table"))), 1.0);
    // Still open: fails fast without a call.
    let (_, summary) = h.logger.handle_batch_with_summary(fixture("batch"), None).await;
    assert_eq!(summary.requests, 0);
    // Half-open after the cool-down: one trial, which succeeds and closes the breaker.
    ledger.heal();
    tokio::time::sleep(Duration::from_millis(60)).await;
    let resp = h.logger.handle_batch(fixture("batch"), None).await;
    assert!(resp.batch_item_failures.is_empty());
    assert_eq!(memory.snapshot().turns.len(), 3);
}

#[tokio::test]
async fn a_lost_answer_after_commit_neither_loses_nor_doubles_rollups() {
    let memory = Arc::new(MemoryLedger::new());
    let ledger = Arc::new(FaultyLedger::first(memory.clone(), LedgerFault::LostAnswer, 1));
    let h = Harness::new(ledger.clone(), fast());
    let (resp, summary) = h.logger.handle_batch_with_summary(fixture("batch"), None).await;
    assert!(resp.batch_item_failures.is_empty());
    assert_eq!(summary.already_logged, 3, "the retry finds the turns already recorded");
    let state = memory.snapshot();
    let user = &state.rollups[&("USER#T0001#U024BE7LH".to_string(), "DAY#2026-04-19".to_string())];
    assert_eq!(user.turns, 2);
}

#[tokio::test]
async fn a_turn_the_table_refuses_is_isolated_and_the_rest_written() {
    let memory = Arc::new(MemoryLedger::new());
    let ledger = Arc::new(FaultyLedger::refusing(memory.clone(), "T0001:Ev0002USAGE"));
    let h = Harness::new(ledger.clone(), fast());
    let (resp, summary) = h.logger.handle_batch_with_summary(fixture("batch"), None).await;
    assert_eq!(failed_ids(&resp), vec!["0e1f6a52-7c1d-4d35-9f0e-1a2b3c4d5e02"]);
    assert_eq!((summary.written, summary.failed), (2, 1));
    assert_eq!(memory.snapshot().turns.len(), 2);
    assert!(!h.logger.writer.breaker_open(), "a refused record is not a failing table");
}
