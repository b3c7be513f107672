//! token-logging against moto (DynamoDB, SQS, S3): the real SDK adapter writes the ledger and the
//! rollups with TransactWriteItems; redelivery, duplicates, throttling, partial failures, a failing
//! table and a few hundred generated turns check that every turn counts exactly once.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_config::SdkConfig;
use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use aws_sdk_dynamodb::config::retry::RetryConfig;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
};
use aws_sdk_sqs::types::QueueAttributeName;
use serde_json::{json, Value};
use shared::aws::ledger::DynamoDbLedger;
use shared::aws::usage::DynamoDbUsageReader;
use shared::domain::{ModelCall, UsageRecord};
use shared::ports::TokenLedger;
use shared::ports::UsageReader;
use shared::pricing::{PriceTable, Usd};
use shared::retry::Backoff;
use shared::telemetry::{parse_emf, Metrics};
use tests::function_process::{binary_path, FunctionProcess};
use tests::harness::emulators;
use tests::lambda_runtime_api::Outcome;
use tests::moto::workspace_root;
use token_logging::faults::{FaultyLedger, LedgerFault};
use token_logging::handler::{BatchSummary, TokenLogger};
use token_logging::writer::WriterSettings;

type Item = HashMap<String, AttributeValue>;

/// One test's usage table and a logger over it (optionally through a wrapper around the adapter).
struct Logging {
    sdk: SdkConfig,
    ddb: aws_sdk_dynamodb::Client,
    table: String,
    logger: TokenLogger,
    emf: Arc<Mutex<Vec<u8>>>,
}

/// Wraps the real adapter in a ledger failing the calls `fail` picks (1 = the first) with `fault`.
fn faulty(
    fault: LedgerFault,
    fail: impl Fn(u32) -> bool + Send + Sync + 'static,
) -> impl FnOnce(Arc<dyn TokenLedger>) -> Arc<dyn TokenLedger> {
    move |inner| Arc::new(FaultyLedger::new(inner, fault, move |call, _| fail(call)))
}

fn fast_settings() -> WriterSettings {
    WriterSettings {
        backoff: Backoff { base: Duration::from_millis(5), cap: Duration::from_millis(20), max_attempts: 4 },
        deadline_reserve: Duration::ZERO,
        ..WriterSettings::default()
    }
}

impl Logging {
    async fn new(prefix: &str) -> Logging {
        Logging::with(prefix, |l| l, fast_settings()).await
    }

    /// `wrap` gets the real adapter and returns the ledger the logger uses.
    async fn with(
        prefix: &str,
        wrap: impl FnOnce(Arc<dyn TokenLedger>) -> Arc<dyn TokenLedger>,
        settings: WriterSettings,
    ) -> Logging {
        let sdk = emulators().moto.sdk_config();
        // As in production: one SDK attempt per call, the writer does the retrying.
        let ddb = aws_sdk_dynamodb::Client::from_conf(
            aws_sdk_dynamodb::config::Builder::from(&sdk)
                .retry_config(RetryConfig::standard().with_max_attempts(1))
                .build(),
        );
        let table = format!("{prefix}-usage");
        create_usage_table(&ddb, &table).await;
        let ledger = wrap(Arc::new(DynamoDbLedger::new(ddb.clone(), &table)));
        let (metrics, emf) = Metrics::capture("BedrockUsage");
        let logger = TokenLogger::new(ledger, PriceTable::embedded(), metrics, &table, settings);
        Logging { sdk, ddb, table, logger, emf }
    }

    async fn handle(&self, event: SqsEvent) -> (SqsBatchResponse, BatchSummary) {
        self.logger.handle_batch_with_summary(event, None).await
    }

    fn metric_sum(&self, name: &str, dim: Option<(&str, &str)>) -> f64 {
        parse_emf(&self.emf.lock().map(|b| b.clone()).unwrap_or_default())
            .iter()
            .filter(|d| dim.is_none_or(|(k, v)| d[k] == v))
            .filter_map(|d| d[name].as_f64())
            .sum()
    }

    async fn get(&self, pk: &str, sk: &str) -> Option<Item> {
        self.ddb
            .get_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(pk.into()))
            .key("sk", AttributeValue::S(sk.into()))
            .consistent_read(true)
            .send()
            .await
            .expect("get item")
            .item
    }

    async fn scan(&self) -> Vec<Item> {
        let mut items = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let page = self
                .ddb
                .scan()
                .table_name(&self.table)
                .consistent_read(true)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .expect("scan");
            items.extend(page.items.unwrap_or_default());
            match page.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => return items,
            }
        }
    }
}

async fn create_usage_table(ddb: &aws_sdk_dynamodb::Client, name: &str) {
    let attr = |n: &str| {
        AttributeDefinition::builder().attribute_name(n).attribute_type(ScalarAttributeType::S).build().expect("attr")
    };
    let key = |n: &str, t: KeyType| KeySchemaElement::builder().attribute_name(n).key_type(t).build().expect("key");
    ddb.create_table()
        .table_name(name)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(attr("pk"))
        .attribute_definitions(attr("sk"))
        .key_schema(key("pk", KeyType::Hash))
        .key_schema(key("sk", KeyType::Range))
        .send()
        .await
        .expect("create table");
}

fn fixture(name: &str) -> SqsEvent {
    let path = workspace_root().join(format!("events/usage/{name}.json"));
    serde_json::from_str(&std::fs::read_to_string(path).expect("fixture")).expect("SQS event")
}

fn event_of(records: &[UsageRecord], id_prefix: &str) -> SqsEvent {
    let mut event = SqsEvent::default();
    event.records = records
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let mut m = SqsMessage::default();
            m.message_id = Some(format!("{id_prefix}-{i}"));
            m.body = Some(serde_json::to_string(r).expect("json"));
            m
        })
        .collect();
    event
}

fn s<'a>(item: &'a Item, k: &str) -> &'a str {
    item.get(k).and_then(|v| v.as_s().ok()).map(String::as_str).unwrap_or_default()
}

fn n(item: &Item, k: &str) -> u64 {
    item.get(k).and_then(|v| v.as_n().ok()).and_then(|v| v.parse().ok()).unwrap_or(0)
}

/// A dollar amount attribute as exact units; None when NULL or absent.
fn usd(item: &Item, k: &str) -> Option<Usd> {
    item.get(k).and_then(|v| v.as_n().ok()).map(|v| Usd::from_f64(v.parse::<f64>().expect("number")))
}

#[tokio::test]
async fn a_batch_is_priced_into_the_ledger_and_the_rollups_budgets_read() {
    let l = Logging::new("tl-fixture").await;
    let (resp, summary) = l.handle(fixture("batch")).await;
    assert!(resp.batch_item_failures.is_empty(), "{resp:?}");
    assert_eq!((summary.written, summary.requests), (3, 1), "three turns, one transaction");

    let turn = l.get("TURN#T0001:Ev0001USAGE", "TURN").await.expect("ledger item");
    assert_eq!(usd(&turn, "cost_usd").map(|c| c.to_string()).as_deref(), Some("0.0109"));
    assert_eq!((n(&turn, "input_tokens"), n(&turn, "output_tokens")), (2200, 580));
    assert_eq!(s(&turn, "price_table_version"), PriceTable::embedded().version());
    let calls = turn["calls"].as_l().expect("calls");
    let sonnet = calls[1].as_m().expect("call");
    assert_eq!(s(sonnet, "model_id"), "us.anthropic.claude-3-5-sonnet-20241022-v2:0");
    assert_eq!(s(sonnet, "model"), "anthropic.claude-3-5-sonnet-20241022");
    assert_eq!(usd(sonnet, "cost_usd").map(|c| c.to_string()).as_deref(), Some("0.0105"));

    let unpriced = l.get("TURN#T0001:Ev0003USAGE", "TURN").await.expect("ledger item");
    assert!(matches!(unpriced.get("cost_usd"), Some(AttributeValue::Null(true))), "unpriced turn: null cost");
    assert_eq!(usd(&unpriced, "priced_cost_usd").map(|c| c.to_string()).as_deref(), Some("0.00165"));
    assert_eq!(n(&unpriced, "unpriced_tokens"), 790);

    let day = l.get("USER#T0001#U024BE7LH", "DAY#2026-04-19").await.expect("user day rollup");
    assert_eq!(usd(&day, "cost_usd").map(|c| c.to_string()).as_deref(), Some("0.01255"));
    assert_eq!((n(&day, "turns"), n(&day, "unpriced_tokens"), n(&day, "input_tokens")), (2, 790, 3400));
    let model = l
        .get("DAY#2026-04-19", "AGENT#AGENT12345#MODEL#anthropic.claude-sonnet-4-5-20250929")
        .await
        .expect("day x agent x model rollup");
    assert_eq!(usd(&model, "cost_usd").map(|c| c.to_string()).as_deref(), Some("0.01575"), "global price");
    assert_eq!((n(&model, "cache_read_tokens"), n(&model, "cache_write_tokens")), (5000, 1000));
    assert_eq!(s(&model, "model_id"), "anthropic.claude-sonnet-4-5-20250929");
    let hour = l.get("DAY#2026-04-19", "HOUR#14#AGENT#AGENT12345").await.expect("hour rollup");
    assert_eq!((n(&hour, "turns"), s(&hour, "hour")), (2, "14"));

    // The worker's budget check reads these rollups with one BatchGetItem.
    let reader = DynamoDbUsageReader::new(l.ddb.clone(), &l.table);
    let spend = reader
        .user_spend("T0001", "U024BE7LH", chrono::NaiveDate::from_ymd_opt(2026, 4, 19).expect("date"))
        .await
        .expect("spend");
    assert!((spend.day.cost_usd - 0.01255).abs() < 1e-12 && spend.month.turns == 2, "{spend:?}");

    // A report reads a whole day with one Query.
    let day_items = l
        .ddb
        .query()
        .table_name(&l.table)
        .key_condition_expression("pk = :d AND begins_with(sk, :a)")
        .expression_attribute_values(":d", AttributeValue::S("DAY#2026-04-19".into()))
        .expression_attribute_values(":a", AttributeValue::S("AGENT#".into()))
        .send()
        .await
        .expect("query")
        .items
        .unwrap_or_default();
    assert_eq!(day_items.len(), 6, "six models that day (one unpriced)");
}

/// AgentCore turns share the ledger with Classic ones: the backend is on every ledger item; a
/// harness turn is priced as its model; a runtime turn whose agent reported no usage has an
/// unknown cost (null, never 0), is counted in UnreportedUsage per agent, and only once however
/// often it is redelivered.
#[tokio::test]
async fn agentcore_turns_carry_their_backend_and_unreported_usage_is_counted_not_priced() {
    use shared::domain::AgentBackend;
    let l = Logging::new("tl-backends").await;
    let mut records = generate(3, 2, 7);
    records[0].agent_backend = AgentBackend::Harness;
    records[0].agent_id = "support-a1b2".into();
    records[0].calls = vec![ModelCall {
        model_id: "us.anthropic.claude-haiku-4-5-20251001-v1:0".into(),
        input_tokens: 1000,
        output_tokens: 100,
        cache_read_tokens: 0,
        cache_write_tokens: 0,
        latency_ms: 900,
        step: "orchestration".into(),
    }];
    records[1].agent_backend = AgentBackend::Runtime;
    records[1].agent_id = "support_agent-a1b2c3d4e5".into();
    records[1].calls = Vec::new();
    records[1].tokens_unreported = true;
    let (resp, summary) = l.handle(event_of(&records, "be")).await;
    assert!(resp.batch_item_failures.is_empty(), "{resp:?}");
    assert_eq!(summary.written, 3);

    let turn = |r: &UsageRecord| format!("TURN#{}", r.record_id);
    let harness = l.get(&turn(&records[0]), "TURN").await.expect("harness turn");
    assert_eq!(s(&harness, "agent_backend"), "harness");
    assert_eq!(harness.get("tokens_unreported"), Some(&AttributeValue::Bool(false)));
    let price = PriceTable::embedded().cost(&records[0].calls[0]).expect("haiku 4.5 is priced");
    assert_eq!(usd(&harness, "cost_usd"), Some(Usd::from_f64(price)), "priced as the harness's model");
    let runtime = l.get(&turn(&records[1]), "TURN").await.expect("runtime turn");
    assert_eq!(s(&runtime, "agent_backend"), "runtime");
    assert_eq!(runtime.get("tokens_unreported"), Some(&AttributeValue::Bool(true)));
    assert!(matches!(runtime.get("cost_usd"), Some(AttributeValue::Null(true))), "unknown, not zero: {runtime:?}");
    let classic = l.get(&turn(&records[2]), "TURN").await.expect("classic turn");
    assert_eq!(s(&classic, "agent_backend"), "classic");

    assert_eq!(l.metric_sum("UnreportedUsage", Some(("AgentId", "support_agent-a1b2c3d4e5"))), 1.0);
    assert_eq!(l.metric_sum("UnreportedUsage", Some(("AgentId", "support-a1b2"))), 0.0);
    // Redelivered: already logged, not counted again.
    let (_, again) = l.handle(event_of(&records, "be-again")).await;
    assert_eq!(again.already_logged, 3);
    assert_eq!(l.metric_sum("UnreportedUsage", Some(("AgentId", "support_agent-a1b2c3d4e5"))), 1.0);
}

#[tokio::test]
async fn redelivered_batches_and_duplicates_in_a_batch_count_once() {
    let l = Logging::new("tl-redeliver").await;
    assert!(l.handle(fixture("batch")).await.0.batch_item_failures.is_empty());
    let before = l.scan().await;
    // The same record twice in one batch, already in the ledger; then the whole batch again.
    let (resp, summary) = l.handle(fixture("redelivery")).await;
    assert!(resp.batch_item_failures.is_empty());
    assert_eq!((summary.written, summary.already_logged, summary.duplicates_in_batch), (0, 1, 1));
    let (resp, summary) = l.handle(fixture("batch")).await;
    assert!(resp.batch_item_failures.is_empty());
    assert_eq!(summary.already_logged, 3);
    let strip = |items: Vec<Item>| {
        let mut v: Vec<Item> = items
            .into_iter()
            .map(|mut i| {
                i.remove("logged_at");
                i
            })
            .collect();
        v.sort_by(|a, b| (s(a, "pk"), s(a, "sk")).cmp(&(s(b, "pk"), s(b, "sk"))));
        v
    };
    assert!(strip(l.scan().await) == strip(before), "nothing changed");
    assert_eq!(l.metric_sum("DuplicateEvents", Some(("Source", "usage_record"))), 5.0);
    // Token metrics count each turn once, when it is first written.
    assert_eq!(l.metric_sum("InputTokens", Some(("ModelId", "anthropic.claude-3-haiku-20240307"))), 1200.0);

    // Duplicates inside a first delivery: written once.
    let fresh = generate(5, 3, 7);
    let mut doubled = fresh.clone();
    doubled.extend(fresh.iter().cloned());
    let (resp, summary) = l.handle(event_of(&doubled, "dup")).await;
    assert!(resp.batch_item_failures.is_empty());
    assert_eq!((summary.written, summary.duplicates_in_batch), (5, 5));
    assert_rollups_match_ledger(&l.scan().await);
}

#[tokio::test]
async fn throttling_is_backed_off_and_retried() {
    for (prefix, as_cancellation) in [("tl-throttle-err", false), ("tl-throttle-cancel", true)] {
        let fault = if as_cancellation { LedgerFault::ThrottledCancellation } else { LedgerFault::Throttled };
        let l = Logging::with(prefix, faulty(fault, |call| call <= 3), fast_settings()).await;
        let records = generate(40, 10, 1);
        let (resp, summary) = l.handle(event_of(&records, "thr")).await;
        assert!(resp.batch_item_failures.is_empty(), "{prefix}");
        assert_eq!(summary.written, 40);
        assert_eq!(l.metric_sum("DynamoDBThrottles", None), 3.0);
        let items = l.scan().await;
        assert_eq!(ledger_items(&items).len(), 40);
        assert_rollups_match_ledger(&items);
    }
}

/// Polls like the Lambda event source: receive, handle, delete what succeeded.
async fn poll_once(l: &Logging, queue: &str) -> Option<(SqsBatchResponse, BatchSummary)> {
    let sqs = aws_sdk_sqs::Client::new(&l.sdk);
    let got = sqs.receive_message().queue_url(queue).max_number_of_messages(10).send().await.expect("receive");
    let msgs = got.messages.unwrap_or_default();
    if msgs.is_empty() {
        return None;
    }
    let mut event = SqsEvent::default();
    let mut receipts = HashMap::new();
    for m in &msgs {
        let mut rec = SqsMessage::default();
        rec.message_id = m.message_id.clone();
        rec.body = m.body.clone();
        receipts.insert(m.message_id.clone().unwrap_or_default(), m.receipt_handle.clone().unwrap_or_default());
        event.records.push(rec);
    }
    let (resp, summary) = l.handle(event).await;
    for f in &resp.batch_item_failures {
        receipts.remove(&f.item_identifier);
    }
    for receipt in receipts.values() {
        sqs.delete_message().queue_url(queue).receipt_handle(receipt).send().await.expect("delete");
    }
    Some((resp, summary))
}

#[tokio::test]
async fn partial_failures_return_to_the_queue_and_malformed_records_reach_the_dlq() {
    // Several transactions per batch; the second one stays throttled past the retries once.
    let mut settings = fast_settings();
    // A turn of four models needs 15 actions (its put and 14 rollups).
    settings.max_actions = 20;
    let l = Logging::with("tl-partial", faulty(LedgerFault::Throttled, |call| (2..=5).contains(&call)), settings).await;
    let sqs = aws_sdk_sqs::Client::new(&l.sdk);
    let dlq =
        sqs.create_queue().queue_name("tl-partial-usage-dlq").send().await.expect("dlq").queue_url.unwrap_or_default();
    let dlq_arn = sqs
        .get_queue_attributes()
        .queue_url(&dlq)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .expect("attrs")
        .attributes
        .and_then(|a| a.get(&QueueAttributeName::QueueArn).cloned())
        .unwrap_or_default();
    let queue = sqs
        .create_queue()
        .queue_name("tl-partial-usage")
        .attributes(QueueAttributeName::VisibilityTimeout, "1")
        .attributes(
            QueueAttributeName::RedrivePolicy,
            json!({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": "2"}).to_string(),
        )
        .send()
        .await
        .expect("queue")
        .queue_url
        .unwrap_or_default();
    let records = generate(9, 9, 3);
    for r in &records {
        sqs.send_message()
            .queue_url(&queue)
            .message_body(serde_json::to_string(r).expect("json"))
            .send()
            .await
            .expect("send");
    }
    sqs.send_message()
        .queue_url(&queue)
        .message_body("{\"record_id\": \"no-calls-no-user\"}")
        .send()
        .await
        .expect("send");

    let (resp, summary) = poll_once(&l, &queue).await.expect("first delivery");
    assert!(summary.written > 0 && summary.failed > 0, "{summary:?}");
    assert_eq!(resp.batch_item_failures.len(), summary.failed + 1, "failed turns and the malformed record");
    assert_eq!(ledger_items(&l.scan().await).len(), summary.written);

    // The queue redelivers what failed; the malformed record moves to the DLQ after two receives.
    for _ in 0..5 {
        tokio::time::sleep(Duration::from_millis(1_100)).await;
        if poll_once(&l, &queue).await.is_none() {
            break;
        }
    }
    let items = l.scan().await;
    assert_eq!(ledger_items(&items).len(), 9, "every turn written once in the end");
    assert_rollups_match_ledger(&items);
    let dead = sqs.receive_message().queue_url(&dlq).max_number_of_messages(10).send().await.expect("dlq receive");
    let dead = dead.messages.unwrap_or_default();
    assert_eq!(dead.len(), 1);
    assert!(dead[0].body().unwrap_or_default().contains("no-calls-no-user"));
    assert_eq!(l.metric_sum("SchemaDrift", Some(("EventType", "usage_record"))), 2.0);
}

#[tokio::test]
async fn a_missing_table_trips_the_circuit_breaker() {
    let sdk = emulators().moto.sdk_config();
    let ddb = aws_sdk_dynamodb::Client::new(&sdk);
    let (metrics, emf) = Metrics::capture("BedrockUsage");
    let mut settings = fast_settings();
    settings.max_actions = 20;
    settings.breaker_threshold = 2;
    let logger = TokenLogger::new(
        Arc::new(DynamoDbLedger::new(ddb, "tl-no-such-table")),
        PriceTable::embedded(),
        metrics,
        "x",
        settings,
    );
    let (resp, summary) = logger.handle_batch_with_summary(event_of(&generate(12, 12, 4), "nt"), None).await;
    assert_eq!(resp.batch_item_failures.len(), 12, "everything goes back to the queue");
    assert_eq!(summary.requests, 2, "two failures open the breaker; later transactions are not sent");
    let trips: f64 = parse_emf(&emf.lock().map(|b| b.clone()).unwrap_or_default())
        .iter()
        .filter_map(|d| d["CircuitBreakerTrips"].as_f64())
        .sum();
    assert_eq!(trips, 1.0);
}

#[tokio::test]
async fn a_crash_after_the_write_neither_loses_nor_doubles_rollups() {
    let l = Logging::with("tl-lost", faulty(LedgerFault::LostAnswer, |call| call == 1), fast_settings()).await;
    let records = generate(20, 5, 5);
    let (resp, _) = l.handle(event_of(&records, "lost")).await;
    assert!(resp.batch_item_failures.is_empty());
    // The function dies before answering: SQS delivers the whole batch again.
    let (resp, summary) = l.handle(event_of(&records, "lost-again")).await;
    assert!(resp.batch_item_failures.is_empty());
    assert_eq!(summary.already_logged, 20);
    let items = l.scan().await;
    assert_eq!(ledger_items(&items).len(), 20);
    assert_rollups_match_ledger(&items);
    let total_turns: u64 = items.iter().filter(|i| s(i, "sk").starts_with("DAY#")).map(|i| n(i, "turns")).sum();
    assert_eq!(total_turns, 20);
}

#[tokio::test]
async fn rollups_add_up_to_the_ledger_over_hundreds_of_turns() {
    // Sized for moto, which copies the whole table for every action of a transaction (the
    // benchmark runs 10,000 records in process); each turn now feeds the cost-analyzer's rollups
    // too (about twice the items), hence 120 turns.
    let l = Logging::new("tl-rollups").await;
    let records = generate(120, 25, 42);
    for (i, batch) in records.chunks(100).enumerate() {
        let (resp, _) = l.handle(event_of(batch, &format!("b{i}"))).await;
        assert!(resp.batch_item_failures.is_empty());
    }
    // A partly redelivered batch changes nothing.
    let (_, summary) = l.handle(event_of(&records[90..120], "again")).await;
    assert_eq!(summary.already_logged, 30);

    let items = l.scan().await;
    let ledger = ledger_items(&items);
    assert_eq!(ledger.len(), 120);
    assert_rollups_match_ledger(&items);
    // And the ledger holds exactly what was sent.
    let sent_input: u64 = records.iter().flat_map(|r| &r.calls).map(|c| c.input_tokens).sum();
    assert_eq!(ledger.iter().map(|i| n(i, "input_tokens")).sum::<u64>(), sent_input);
    let sent_cost: Usd =
        records.iter().flat_map(|r| &r.calls).filter_map(|c| PriceTable::embedded().cost(c)).map(Usd::from_f64).sum();
    assert_eq!(ledger.iter().filter_map(|i| usd(i, "priced_cost_usd")).sum::<Usd>(), sent_cost);
    assert!(items.iter().any(|i| s(i, "sk") == "MONTH#2026-01") && items.iter().any(|i| s(i, "sk") == "MONTH#2026-02"));
}

#[tokio::test]
async fn price_overrides_are_read_from_s3_and_validated() {
    let sdk = emulators().moto.sdk_config();
    let s3 = aws_sdk_s3::Client::new(&sdk);
    let bucket = "tl-price-overrides";
    s3.create_bucket().bucket(bucket).send().await.expect("bucket");
    let put = |key: &'static str, body: String| {
        let s3 = s3.clone();
        async move { s3.put_object().bucket(bucket).key(key).body(body.into_bytes().into()).send().await.expect("put") }
    };
    put(
        "good.json",
        json!({"version": "acme-1", "models": [
            {"model": "mistral.mistral-large-2407", "effective_date": "2024-07-24", "input": 2, "output": 6}
        ]})
        .to_string(),
    )
    .await;
    put("bad.json", json!({"version": "acme-2", "models": [{"model": "x.y", "effective_date": "2024-07-24", "input": "2", "output": 6}]}).to_string()).await;

    let base = PriceTable::embedded();
    assert!(base.price("mistral.mistral-large-2407-v1:0").is_none());
    let table = shared::aws::prices::with_override(base.clone(), "s3://tl-price-overrides/good.json", &s3)
        .await
        .expect("valid override");
    assert_eq!(table.price("us.mistral.mistral-large-2407-v1:0").map(|p| p.output), Some(6.0));
    assert!(table.version().ends_with("+acme-1"));

    let e = shared::aws::prices::with_override(base.clone(), "s3://tl-price-overrides/bad.json", &s3)
        .await
        .expect_err("invalid")
        .to_string();
    assert!(e.contains("PRICE_TABLE_OVERRIDE") && e.contains("models[0] (x.y)"), "{e}");
    let e = shared::aws::prices::with_override(base, "s3://tl-price-overrides/missing.json", &s3)
        .await
        .expect_err("missing")
        .to_string();
    assert!(e.contains("PRICE_TABLE_OVERRIDE") && e.contains("NoSuchKey"), "{e}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_binary_logs_a_batch_and_refuses_a_bad_price_override_at_init() {
    let bin = binary_path("token-logging", "debug");
    assert!(bin.exists(), "{} is missing: run `cargo build --workspace --bins` first", bin.display());
    let emu = emulators();
    let sdk = emu.moto.sdk_config();
    let table = "tl-binary-usage";
    create_usage_table(&aws_sdk_dynamodb::Client::new(&sdk), table).await;
    let s3 = aws_sdk_s3::Client::new(&sdk);
    s3.create_bucket().bucket("tl-binary-prices").send().await.expect("bucket");
    let bad = json!({"version": "x", "models": [{"model": "a.b", "effective_date": "2025-01-01", "input": 1}]});
    s3.put_object()
        .bucket("tl-binary-prices")
        .key("bad.json")
        .body(bad.to_string().into_bytes().into())
        .send()
        .await
        .expect("put");
    let env = |extra: &[(&str, &str)]| {
        let mut env =
            vec![("AWS_ENDPOINT_URL".to_string(), emu.moto.endpoint()), ("USAGE_TABLE".to_string(), table.to_string())];
        env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        env
    };
    let logs = std::env::temp_dir();

    let f = FunctionProcess::start(&bin, &env(&[]), 256, &logs.join("tl-binary.log")).expect("start");
    let event: Value = serde_json::to_value(fixture("batch")).expect("event");
    let (outcome, f) =
        tokio::task::spawn_blocking(move || (f.invoke(event, Duration::from_secs(30)), f)).await.expect("join");
    match outcome {
        Ok(Outcome::Response(v)) => assert_eq!(v["batchItemFailures"], json!([]), "{v}\n{}", f.output()),
        other => panic!("{other:?}\n{}", f.output()),
    }
    let item = aws_sdk_dynamodb::Client::new(&sdk)
        .get_item()
        .table_name(table)
        .key("pk", AttributeValue::S("TURN#T0001:Ev0002USAGE".into()))
        .key("sk", AttributeValue::S("TURN".into()))
        .send()
        .await
        .expect("get")
        .item
        .expect("ledger item written by the binary");
    assert_eq!(usd(&item, "cost_usd").map(|c| c.to_string()).as_deref(), Some("0.01639"));
    assert!(f.output().contains("\"EstimatedCost\""), "EMF on stdout: {}", f.output());

    let mut f = FunctionProcess::start(
        &bin,
        &env(&[("PRICE_TABLE_OVERRIDE", "s3://tl-binary-prices/bad.json")]),
        256,
        &logs.join("tl-binary-bad.log"),
    )
    .expect("start");
    let status = f.wait_exit(Duration::from_secs(20)).expect("exits at init");
    assert!(!status.success());
    let out = f.output();
    assert!(out.contains("PRICE_TABLE_OVERRIDE") && out.contains("models[0] (a.b)"), "{out}");
}

// ------------------------------------------------------------------------------------------ helpers

const MODELS: [&str; 5] = [
    "us.anthropic.claude-3-5-sonnet-20241022-v2:0",
    "anthropic.claude-3-haiku-20240307-v1:0",
    "global.anthropic.claude-sonnet-4-5-20250929-v1:0",
    "arn:aws:bedrock:us-east-1::foundation-model/amazon.nova-pro-v1:0",
    "some.model-not-in-the-table-v1:0",
];

/// `count` realistic turns of `users` users, 3 agents, 1-4 calls each, around a month boundary.
fn generate(count: usize, users: usize, seed: u64) -> Vec<UsageRecord> {
    let mut rng = fastrand_like(seed);
    let start = chrono::DateTime::parse_from_rfc3339("2026-01-31T21:00:00Z").expect("ts").timestamp_millis();
    (0..count)
        .map(|i| {
            let calls = (0..1 + rng() % 4)
                .map(|c| ModelCall {
                    model_id: MODELS[(rng() % MODELS.len() as u64) as usize].to_string(),
                    input_tokens: 200 + rng() % 6_000,
                    output_tokens: 20 + rng() % 900,
                    cache_read_tokens: if c == 0 { 0 } else { rng() % 3 * 1_000 },
                    cache_write_tokens: 0,
                    latency_ms: 300 + rng() % 3_000,
                    step: if c == 0 { "pre_processing".into() } else { "orchestration".into() },
                })
                .collect();
            let at = start + (rng() % (6 * 3_600_000)) as i64;
            UsageRecord {
                record_id: format!("T0001:EvGEN{seed}-{i:05}"),
                timestamp: chrono::DateTime::from_timestamp_millis(at)
                    .expect("ts")
                    .format("%Y-%m-%dT%H:%M:%S%.3fZ")
                    .to_string(),
                user_id: format!("U{:04}", rng() % users as u64),
                team_id: "T0001".into(),
                channel_id: "C0001".into(),
                thread_id: format!("{}.000100", 1_769_000_000 + i),
                agent_id: format!("AGENT{}", rng() % 3),
                agent_alias_id: "ALIAS12345".into(),
                agent_backend: Default::default(),
                tokens_unreported: false,
                calls,
            }
        })
        .collect()
}

/// A small deterministic generator (xorshift), so failures reproduce.
fn fastrand_like(seed: u64) -> impl FnMut() -> u64 {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    }
}

fn ledger_items(items: &[Item]) -> Vec<&Item> {
    items.iter().filter(|i| s(i, "sk") == "TURN").collect()
}

/// Every rollup item equals the sum of the ledger turns that belong to it, and no rollup item
/// exists without ledger turns.
fn assert_rollups_match_ledger(items: &[Item]) {
    #[derive(Debug, Default, PartialEq)]
    struct Sum {
        cost: Usd,
        input: u64,
        output: u64,
        cache_read: u64,
        cache_write: u64,
        turns: u64,
        unpriced: u64,
    }
    let mut expected: BTreeMap<(String, String), Sum> = BTreeMap::new();
    for turn in ledger_items(items) {
        let ts = chrono::DateTime::parse_from_rfc3339(s(turn, "timestamp")).expect("ts").with_timezone(&chrono::Utc);
        let (day, month, hour) = (ts.format("%Y-%m-%d").to_string(), ts.format("%Y-%m").to_string(), ts.format("%H"));
        let user = format!("USER#{}#{}", s(turn, "team_id"), s(turn, "user_id"));
        let agent = s(turn, "agent_id");
        let calls: Vec<&Item> = turn["calls"].as_l().expect("calls").iter().map(|c| c.as_m().expect("call")).collect();
        let add = |sum: &mut Sum, calls: &[&Item]| {
            for c in calls {
                sum.input += n(c, "input_tokens");
                sum.output += n(c, "output_tokens");
                sum.cache_read += n(c, "cache_read_tokens");
                sum.cache_write += n(c, "cache_write_tokens");
                match usd(c, "cost_usd") {
                    Some(cost) => sum.cost += cost,
                    None => {
                        sum.unpriced += ["input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens"]
                            .iter()
                            .map(|k| n(c, k))
                            .sum::<u64>()
                    }
                }
            }
            sum.turns += 1;
        };
        for key in [
            (user.clone(), format!("DAY#{day}")),
            (user.clone(), format!("MONTH#{month}")),
            (format!("DAY#{day}"), format!("HOUR#{hour}#AGENT#{agent}")),
            (format!("DAY#{day}"), format!("{}#AGENT#{agent}", user)),
            ("USERS".to_string(), user.clone()),
            ("AGENTS".to_string(), format!("AGENT#{agent}")),
        ] {
            add(expected.entry(key).or_default(), &calls);
        }
        let mut models: Vec<&str> = calls.iter().map(|c| s(c, "model")).collect();
        models.sort();
        models.dedup();
        for model in models {
            let of_model: Vec<&Item> = calls.iter().copied().filter(|c| s(c, "model") == model).collect();
            add(expected.entry((format!("DAY#{day}"), format!("AGENT#{agent}#MODEL#{model}"))).or_default(), &of_model);
            let usage_sk = format!("USAGE#{day}#AGENT#{agent}#MODEL#{model}");
            add(expected.entry((user.clone(), usage_sk)).or_default(), &of_model);
        }
        // The ledger's own totals agree with its calls.
        let mut own = Sum::default();
        add(&mut own, &calls);
        assert_eq!(usd(turn, "priced_cost_usd"), Some(own.cost));
        assert_eq!(n(turn, "unpriced_tokens"), own.unpriced);
        assert_eq!(usd(turn, "cost_usd"), (own.unpriced == 0).then_some(own.cost));
    }
    let actual: BTreeMap<(String, String), Sum> = items
        .iter()
        .filter(|i| s(i, "sk") != "TURN")
        .map(|i| {
            let sum = Sum {
                cost: usd(i, "cost_usd").unwrap_or_default(),
                input: n(i, "input_tokens"),
                output: n(i, "output_tokens"),
                cache_read: n(i, "cache_read_tokens"),
                cache_write: n(i, "cache_write_tokens"),
                turns: n(i, "turns"),
                unpriced: n(i, "unpriced_tokens"),
            };
            ((s(i, "pk").to_string(), s(i, "sk").to_string()), sum)
        })
        .collect();
    assert_eq!(actual.len(), expected.len(), "rollup items");
    for (key, want) in &expected {
        assert_eq!(actual.get(key), Some(want), "{key:?}");
    }
}
