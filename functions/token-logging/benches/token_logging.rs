//! token-logging over 10,000 realistic usage records (200 users, 3 agents, 4 models, 1-4 model
//! calls per turn), delivered as SQS batches of 100, against the in-process ledger (DynamoDB's
//! transaction semantics, no network): DynamoDB write requests and item writes per record,
//! against writing each turn's items separately, and handler time per record and per batch.
//! A bench binary, not a timed test: `cargo bench -p token-logging` (BENCH_RECORDS to change N).

// A benchmark, like a test, may panic on broken fixtures.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage};
use shared::domain::{ModelCall, UsageRecord};
use shared::pricing::PriceTable;
use shared::telemetry::Metrics;
use token_logging::handler::TokenLogger;
use token_logging::memory::MemoryLedger;
use token_logging::plan::rollups_of;
use token_logging::writer::WriterSettings;

const MODELS: [&str; 4] = [
    "us.anthropic.claude-3-5-sonnet-20241022-v2:0",
    "anthropic.claude-3-haiku-20240307-v1:0",
    "global.anthropic.claude-sonnet-4-5-20250929-v1:0",
    "us.amazon.nova-pro-v1:0",
];

fn records(n: usize) -> Vec<UsageRecord> {
    let mut rng = fastrand::Rng::with_seed(2026);
    // A working day: turns spread over 9 hours, delivered in time order as the queue would.
    let start = chrono::DateTime::parse_from_rfc3339("2026-04-20T08:00:00Z").expect("ts").timestamp_millis();
    let mut at: Vec<i64> = (0..n).map(|_| start + rng.i64(0..9 * 3_600_000)).collect();
    at.sort();
    at.into_iter()
        .enumerate()
        .map(|(i, ts)| {
            let calls = (0..rng.usize(1..=4))
                .map(|c| ModelCall {
                    // Pre-processing on the small model, orchestration on the agent's model.
                    model_id: if c == 0 { MODELS[1].into() } else { MODELS[rng.usize(0..MODELS.len())].into() },
                    input_tokens: rng.u64(300..8_000),
                    output_tokens: rng.u64(30..1_200),
                    cache_read_tokens: if c > 0 && rng.bool() { rng.u64(0..4_000) } else { 0 },
                    cache_write_tokens: 0,
                    latency_ms: rng.u64(200..4_000),
                    step: if c == 0 { "pre_processing".into() } else { "orchestration".into() },
                })
                .collect();
            UsageRecord {
                record_id: format!("T0001:EvBENCH{i:06}"),
                timestamp: chrono::DateTime::from_timestamp_millis(ts)
                    .expect("ts")
                    .format("%Y-%m-%dT%H:%M:%S%.3fZ")
                    .to_string(),
                user_id: format!("U{:05}", rng.usize(0..200)),
                team_id: "T0001".into(),
                channel_id: format!("C{:03}", rng.usize(0..20)),
                thread_id: format!("{}.{:06}", 1_776_672_000 + i, i),
                agent_id: format!("AGENT{}", rng.usize(0..3)),
                agent_alias_id: "ALIAS12345".into(),
                agent_backend: Default::default(),
                tokens_unreported: false,
                calls,
            }
        })
        .collect()
}

fn batch(records: &[UsageRecord], offset: usize) -> SqsEvent {
    let mut event = SqsEvent::default();
    event.records = records
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let mut m = SqsMessage::default();
            m.message_id = Some(format!("m{}", offset + i));
            m.body = Some(serde_json::to_string(r).expect("json"));
            m
        })
        .collect();
    event
}

fn main() {
    let n: usize = std::env::var("BENCH_RECORDS").ok().and_then(|v| v.parse().ok()).unwrap_or(10_000);
    let records = records(n);
    let prices = PriceTable::embedded();
    // Items per turn if every turn's ledger item and rollups were written on their own.
    let separate_items: usize = records
        .iter()
        .map(|r| {
            let at = chrono::DateTime::parse_from_rfc3339(&r.timestamp).expect("ts").with_timezone(&chrono::Utc);
            1 + rollups_of(&token_logging::plan::price_turn(r.clone(), at, &prices)).len()
        })
        .sum();
    let batches: Vec<SqsEvent> = records.chunks(100).enumerate().map(|(i, c)| batch(c, i * 100)).collect();

    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    rt.block_on(async {
        let ledger = Arc::new(MemoryLedger::new());
        let (metrics, emf) = Metrics::capture("BedrockUsage");
        let logger = TokenLogger::new(ledger.clone(), prices.clone(), metrics, "usage", WriterSettings::default());
        let mut times: Vec<Duration> = Vec::with_capacity(batches.len());
        let started = Instant::now();
        for event in batches {
            let t = Instant::now();
            let resp = logger.handle_batch(event, None).await;
            times.push(t.elapsed());
            assert!(resp.batch_item_failures.is_empty());
            if let Ok(mut b) = emf.lock() {
                b.clear();
            }
        }
        let total = started.elapsed();
        let state = ledger.snapshot();
        assert_eq!(state.turns.len(), n);
        times.sort();
        let pct = |p: f64| times[((times.len() as f64 * p) as usize).min(times.len() - 1)];
        let per_record = |x: u64| x as f64 / n as f64;
        println!("token-logging, {n} usage records in batches of 100 (200 users, 3 agents, 4 models, 1-4 calls)");
        println!("  ledger: in-process (DynamoDB transaction semantics, no network)");
        println!(
            "  write requests: {} TransactWriteItems = {:.4} per record ({:.1} per batch)",
            state.requests,
            per_record(state.requests),
            state.requests as f64 / times.len() as f64
        );
        println!(
            "  item writes: {} = {:.2} per record (each turn written on its own: {:.2} items and requests per record)",
            state.item_writes,
            per_record(state.item_writes),
            separate_items as f64 / n as f64,
        );
        println!("  rollup items in the table: {}", state.rollups.len());
        println!(
            "  handler time: {:.1} us per record; per batch p50 {:?}, p99 {:?}, max {:?}; total {:?}",
            total.as_secs_f64() * 1e6 / n as f64,
            pct(0.50),
            pct(0.99),
            times[times.len() - 1],
            total
        );
    });
}
