//! Load: 1,000 distinct user messages, each delivered 1-4 times as Slack does (the app_mention
//! event, Slack's retries of it with `x-slack-retry-num`, and the `message` twin Slack sends for
//! the same message under another event id, and its retries), all in a shuffled order through the
//! ingress concurrently, while worker pumps play the work queue's event source and a usage pump
//! feeds token-logging. Against moto, the fake Slack and the scripted agent, loopback only.
//!
//! Expected: exactly one answer per message in the fake Slack (0 duplicates, 0 lost), one agent
//! invocation per message, and one ledger turn per message. Prints the throughput and the
//! ingress acknowledgement p50/p99.
//!
//! Ignored by default (minutes of moto). Run:
//!
//! ```text
//! cargo test --workspace --test load -- --ignored --nocapture
//! ```
//!
//! `LOAD_MESSAGES=n` changes the number of messages (default 1000); the whole run is bounded by
//! `LOAD_TIMEOUT_SECS` (default 900) and fails, with the counts so far, when that runs out.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage};
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_sqs::types::MessageSystemAttributeName;
use serde_json::{json, Value};
use shared::pricing::PriceTable;
use shared::telemetry::Metrics;
use tests::harness::{emulators, Gateway};
use tests::resources::TEST_SIGNING_SECRET;
use tests::slack_events::{body_of, fixture, request, with_body};
use token_logging::handler::TokenLogger;
use token_logging::writer::WriterSettings;

/// Requests the ingress handles at once (Lambda would run as many instances).
const INGRESS_CONCURRENCY: usize = 32;
/// Worker pumps: turns at once (WorkerReservedConcurrency's role).
const WORKERS: usize = 8;
/// Usage pumps feeding token-logging, with batches of this size.
const USAGE_PUMPS: usize = 2;
const USAGE_BATCH: i32 = 10;
/// Channels the messages are spread over (each message starts its own thread).
const CHANNELS: usize = 20;
/// The worker's Lambda timeout in template.yaml.
const WORKER_TIMEOUT: Duration = Duration::from_secs(120);

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// A small deterministic generator (the run is the same every time).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        self.0 >> 33
    }
}

/// One delivery Slack makes: the body (signed when sent) and its retry number, if a retry.
#[derive(Clone)]
struct Delivery {
    body: Value,
    retry: Option<u32>,
}

fn channel_of(i: usize) -> String {
    format!("CLOAD{:02}", i % CHANNELS)
}

fn ts_of(i: usize) -> String {
    format!("1790000000.{i:06}")
}

/// The app_mention event of message `i` and its `message` twin (same message, other event id).
fn events_of(i: usize) -> (Value, Value) {
    let mut mention = body_of(&fixture("slack/app_mention"));
    let ts = ts_of(i);
    let text = format!("<@UBOT> load question {i}: how do I reset my laptop?");
    mention["event_id"] = json!(format!("EvLOAD{i:05}M"));
    mention["event"]["ts"] = json!(ts);
    mention["event"]["event_ts"] = json!(ts);
    mention["event"]["channel"] = json!(channel_of(i));
    mention["event"]["text"] = json!(text);
    mention["event"]["client_msg_id"] = json!(format!("load-{i:05}"));
    if let Some(o) = mention["event"].as_object_mut() {
        o.remove("blocks");
    }
    let mut twin = mention.clone();
    twin["event_id"] = json!(format!("EvLOAD{i:05}T"));
    twin["event"]["type"] = json!("message");
    twin["event"]["channel_type"] = json!("channel");
    (mention, twin)
}

/// Message `i`'s deliveries: the mention first, then 0-3 more of retries and the twin.
fn deliveries_of(i: usize, rng: &mut Lcg) -> Vec<Delivery> {
    let (mention, twin) = events_of(i);
    let count = 1 + (rng.next() % 4) as usize;
    let mut out = vec![Delivery { body: mention.clone(), retry: None }];
    let (mut mention_retries, mut twin_sent, mut twin_retries) = (0, false, 0);
    while out.len() < count {
        match rng.next() % 3 {
            0 => {
                mention_retries += 1;
                out.push(Delivery { body: mention.clone(), retry: Some(mention_retries) });
            }
            1 if !twin_sent => {
                twin_sent = true;
                out.push(Delivery { body: twin.clone(), retry: None });
            }
            _ if twin_sent => {
                twin_retries += 1;
                out.push(Delivery { body: twin.clone(), retry: Some(twin_retries) });
            }
            _ => {
                twin_sent = true;
                out.push(Delivery { body: twin.clone(), retry: None });
            }
        }
    }
    out
}

/// A received SQS message as the Lambda event record the event source would pass.
fn record(m: &aws_sdk_sqs::types::Message) -> SqsMessage {
    let mut rec = SqsMessage::default();
    rec.message_id = m.message_id.clone();
    rec.receipt_handle = m.receipt_handle.clone();
    rec.body = m.body.clone();
    rec.attributes =
        m.attributes.clone().unwrap_or_default().into_iter().map(|(k, v)| (k.as_str().to_string(), v)).collect();
    rec
}

/// Plays an SQS event source: receives up to `batch`, hands them to `handle`, deletes what did
/// not fail and makes the failures visible again at once. Returns (batches, failed items).
async fn pump<F, Fut>(
    sdk: aws_config::SdkConfig,
    url: String,
    batch: i32,
    stop: Arc<AtomicBool>,
    handle: F,
) -> (usize, usize)
where
    F: Fn(SqsEvent) -> Fut,
    Fut: std::future::Future<Output = aws_lambda_events::event::sqs::SqsBatchResponse>,
{
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let (mut batches, mut failed) = (0, 0);
    while !stop.load(Ordering::SeqCst) {
        let got = sqs
            .receive_message()
            .queue_url(&url)
            .max_number_of_messages(batch)
            .wait_time_seconds(1)
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .send()
            .await;
        let messages = match got {
            Ok(o) => o.messages.unwrap_or_default(),
            Err(e) => {
                eprintln!("receive from {url}: {e:?}");
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
        if messages.is_empty() {
            continue;
        }
        batches += 1;
        let mut event = SqsEvent::default();
        event.records = messages.iter().map(record).collect();
        let response = handle(event).await;
        let failures: Vec<String> = response.batch_item_failures.iter().map(|f| f.item_identifier.clone()).collect();
        for m in &messages {
            let Some(handle) = m.receipt_handle() else { continue };
            if failures.iter().any(|f| Some(f.as_str()) == m.message_id()) {
                failed += 1;
                let _ = sqs
                    .change_message_visibility()
                    .queue_url(&url)
                    .receipt_handle(handle)
                    .visibility_timeout(1)
                    .send()
                    .await;
            } else if let Err(e) = sqs.delete_message().queue_url(&url).receipt_handle(handle).send().await {
                eprintln!("delete from {url}: {e:?}");
            }
        }
    }
    (batches, failed)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// Ledger turns (`TURN#{record_id}` items) in the usage table.
async fn ledger_turns(ddb: &aws_sdk_dynamodb::Client, table: &str) -> usize {
    let mut count = 0;
    let mut start: Option<std::collections::HashMap<String, AttributeValue>> = None;
    loop {
        let out = ddb
            .scan()
            .table_name(table)
            .filter_expression("begins_with(pk, :t)")
            .expression_attribute_values(":t", AttributeValue::S("TURN#".into()))
            .set_exclusive_start_key(start.take())
            .send()
            .await
            .expect("scan the usage table");
        count += out.count as usize;
        match out.last_evaluated_key {
            Some(k) if !k.is_empty() => start = Some(k),
            _ => return count,
        }
    }
}

/// Answers per (channel, thread) in the fake Slack: the worker's chat.postMessage calls.
fn answers() -> BTreeMap<(String, String), usize> {
    let mut out = BTreeMap::new();
    for c in emulators().slack.calls() {
        let channel = c.params["channel"].as_str().unwrap_or_default();
        if c.method == "chat.postMessage" && channel.starts_with("CLOAD") {
            let thread = c.params["thread_ts"].as_str().unwrap_or_default().to_string();
            *out.entry((channel.to_string(), thread)).or_default() += 1;
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "load test (minutes against moto): cargo test --workspace --test load -- --ignored --nocapture"]
async fn a_thousand_messages_delivered_one_to_four_times_are_answered_and_counted_once_each() {
    let messages = env_number("LOAD_MESSAGES", 1000) as usize;
    let bound = Duration::from_secs(env_number("LOAD_TIMEOUT_SECS", 900));
    let started = Instant::now();
    let gw = Arc::new(Gateway::new(&format!("load{}", std::process::id())).await);
    let sdk = gw.sdk.clone();
    let ddb = aws_sdk_dynamodb::Client::new(&sdk);
    let (metrics, _emf) = Metrics::capture("BedrockUsage");
    let config = token_logging::handler::Config {
        usage_table: gw.resources.usage_table.clone(),
        metrics_namespace: "BedrockUsage".into(),
    };
    let logger =
        Arc::new(TokenLogger::from_config(&config, &sdk, PriceTable::embedded(), metrics, WriterSettings::default()));

    let mut rng = Lcg(13);
    let mut all: Vec<Delivery> = (0..messages).flat_map(|i| deliveries_of(i, &mut rng)).collect();
    for i in (1..all.len()).rev() {
        all.swap(i, rng.next() as usize % (i + 1));
    }
    let delivered = all.len();
    println!("{messages} messages, {delivered} deliveries (shuffled), ingress x{INGRESS_CONCURRENCY}, workers x{WORKERS}, usage pumps x{USAGE_PUMPS}");

    let stop = Arc::new(AtomicBool::new(false));
    let mut pumps = Vec::new();
    for _ in 0..WORKERS {
        let gw = Arc::clone(&gw);
        let (sdk, url, stop) = (sdk.clone(), gw.resources.work_queue_url.clone(), Arc::clone(&stop));
        pumps.push(tokio::spawn(async move {
            // BatchSize 1 in template.yaml.
            pump(sdk, url, 1, stop, |event| {
                let gw = Arc::clone(&gw);
                async move { gw.worker.handle_batch(event, Some(Instant::now() + WORKER_TIMEOUT)).await }
            })
            .await
        }));
    }
    for _ in 0..USAGE_PUMPS {
        let logger = Arc::clone(&logger);
        let (sdk, url, stop) = (sdk.clone(), gw.resources.usage_queue_url.clone(), Arc::clone(&stop));
        pumps.push(tokio::spawn(async move {
            pump(sdk, url, USAGE_BATCH, stop, |event| {
                let logger = Arc::clone(&logger);
                async move { logger.handle_batch(event, Some(Instant::now() + Duration::from_secs(60))).await }
            })
            .await
        }));
    }

    // The ingress: every delivery, signed as it is sent; a refusal is retried as Slack would.
    let acks: Arc<Mutex<Vec<Duration>>> = Arc::default();
    let refused = Arc::new(AtomicUsize::new(0));
    let queue = Arc::new(Mutex::new(all));
    let ingress_started = Instant::now();
    let mut senders = Vec::new();
    for _ in 0..INGRESS_CONCURRENCY {
        let (gw, queue, acks, refused) = (Arc::clone(&gw), Arc::clone(&queue), Arc::clone(&acks), Arc::clone(&refused));
        senders.push(tokio::spawn(async move {
            loop {
                let Some(d) = queue.lock().expect("queue").pop() else { return };
                let signed = with_body(
                    fixture("slack/app_mention"),
                    &d.body,
                    TEST_SIGNING_SECRET,
                    chrono::Utc::now().timestamp(),
                );
                let mut req = request(&signed);
                if let Some(n) = d.retry {
                    req.headers.insert("x-slack-retry-num", n.to_string().parse().expect("header"));
                    req.headers.insert("x-slack-retry-reason", "http_timeout".parse().expect("header"));
                }
                let t = Instant::now();
                let resp = gw.ingress.handle(&req).await;
                acks.lock().expect("acks").push(t.elapsed());
                if resp.status_code != 200 {
                    refused.fetch_add(1, Ordering::SeqCst);
                    let retry = d.retry.unwrap_or(0) + 1;
                    if retry <= 3 {
                        queue.lock().expect("queue").insert(0, Delivery { body: d.body.clone(), retry: Some(retry) });
                    }
                }
            }
        }));
    }
    for s in senders {
        s.await.expect("ingress sender");
    }
    let ingress_secs = ingress_started.elapsed().as_secs_f64();
    println!("ingress done after {ingress_secs:.1} s; {} answered so far", answers().len());

    // Wait for every answer and every ledger turn (or the bound).
    let mut turns = 0;
    let mut answered = 0;
    let mut said = Instant::now();
    while started.elapsed() < bound {
        answered = answers().len();
        if said.elapsed() > Duration::from_secs(30) {
            said = Instant::now();
            let t = ledger_turns(&ddb, &gw.resources.usage_table).await;
            println!("  {:.0} s: {answered} answered, {t} ledger turns", started.elapsed().as_secs_f64());
        }
        if answered >= messages {
            turns = ledger_turns(&ddb, &gw.resources.usage_table).await;
            if turns >= messages {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let all_answered_secs = started.elapsed().as_secs_f64();
    // A little longer, so late duplicates (a redelivery, a second turn) show up in the counts.
    tokio::time::sleep(Duration::from_secs(3)).await;
    stop.store(true, Ordering::SeqCst);
    let mut stats = Vec::new();
    for p in pumps {
        stats.push(p.await.expect("pump"));
    }
    let turns_final = ledger_turns(&ddb, &gw.resources.usage_table).await;
    let threads = answers();
    let duplicates: Vec<_> = threads.iter().filter(|(_, n)| **n > 1).collect();
    let expected: Vec<(String, String)> = (0..messages).map(|i| (channel_of(i), ts_of(i))).collect();
    let lost: Vec<_> = expected.iter().filter(|k| !threads.contains_key(*k)).collect();
    let invocations = emulators().agent.requests().iter().filter(|r| r.session_id.contains("-CLOAD")).count();

    let mut sorted = acks.lock().expect("acks").clone();
    sorted.sort();
    let (worker_batches, worker_failed) = stats[..WORKERS].iter().fold((0, 0), |a, s| (a.0 + s.0, a.1 + s.1));
    let (usage_batches, usage_failed) = stats[WORKERS..].iter().fold((0, 0), |a, s| (a.0 + s.0, a.1 + s.1));
    println!(
        "ingress: {} requests in {ingress_secs:.1} s ({:.0}/s), {} refused (retried as Slack would)",
        sorted.len(),
        sorted.len() as f64 / ingress_secs,
        refused.load(Ordering::SeqCst)
    );
    println!(
        "ingress ack: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        percentile(&sorted, 0.50).as_secs_f64() * 1e3,
        percentile(&sorted, 0.99).as_secs_f64() * 1e3,
        sorted.last().copied().unwrap_or_default().as_secs_f64() * 1e3
    );
    println!(
        "end to end: {answered} answered and {turns} ledger turns after {all_answered_secs:.1} s ({:.1} messages/s)",
        answered as f64 / all_answered_secs
    );
    println!("worker: {worker_batches} turns run, {worker_failed} failed and redelivered; token-logging: {usage_batches} batches, {usage_failed} records failed and redelivered");
    println!(
        "answers: {} threads, {} duplicated, {} lost; agent invocations {invocations}; ledger turns {turns_final}",
        threads.len(),
        duplicates.len(),
        lost.len()
    );
    assert!(duplicates.is_empty(), "threads answered more than once: {duplicates:?}");
    assert!(lost.is_empty(), "{} messages never answered, e.g. {:?}", lost.len(), &lost[..lost.len().min(5)]);
    assert_eq!(threads.len(), messages, "answers outside the messages' threads: {threads:?}");
    assert_eq!(invocations, messages, "the agent must be invoked once per message");
    assert_eq!(turns_final, messages, "one ledger turn per message");
}
