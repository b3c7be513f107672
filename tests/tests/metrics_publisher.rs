//! metrics-publisher against the conversations table and the usage queue in moto: turns and
//! feedback written by the real adapter, read back through the sparse GSIs, turned into the exact
//! metrics the alarms use. (PutMetricData is tested with aws-smithy-mocks in the crate, and here
//! against a recording endpoint: moto does not serve the Rust SDK's CBOR protocol for CloudWatch.)

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use aws_sdk_dynamodb::types::AttributeValue;
use metrics_publisher::cloudwatch::{MetricDatum, MetricSink, MetricUnit};
use metrics_publisher::handler::MetricsPublisher;
use metrics_publisher::kpi::KpiSettings;
use metrics_publisher::sweep::SweepReport;
use shared::aws::conversations::DynamoDbConversations;
use shared::domain::{FeedbackEntry, Sentiment};
use shared::domain::{ThreadRef, TurnStatus};
use shared::ports::{ConversationStore, TurnRecord};
use tests::fake_cloudwatch::FakeCloudWatch;
use tests::harness::emulators;
use tests::resources::{create_conversations_table, drain_queue, ledger_turns, read_objects, GatewayResources};

/// 2026-11-23T17:10:00Z: ten minutes into an hour, so the last hour spans two hour buckets.
const NOW: i64 = 1_795_453_800_000;
const MIN: i64 = 60_000;

#[derive(Default)]
struct Recorded(Mutex<Vec<(Vec<MetricDatum>, i64)>>);

#[async_trait]
impl MetricSink for Recorded {
    async fn put(&self, datums: &[MetricDatum], ts: i64) -> shared::Result<()> {
        self.0.lock().unwrap().push((datums.to_vec(), ts));
        Ok(())
    }
}

async fn table(name: &str) -> (DynamoDbConversations, aws_sdk_dynamodb::Client, String) {
    let sdk = emulators().moto.sdk_config();
    let ddb = aws_sdk_dynamodb::Client::new(&sdk);
    let table = format!("{name}-conversations");
    create_conversations_table(&ddb, &table).await.expect("create table");
    (DynamoDbConversations::new(ddb.clone(), &table), ddb, table)
}

fn turn(n: u32, received_at_ms: i64) -> TurnRecord {
    let ts = format!("{}.{n:06}", received_at_ms / 1000);
    TurnRecord::received(
        ThreadRef { team_id: "T1".into(), channel_id: "CMP".into(), thread_ts: ts.clone() },
        ts,
        format!("Ev{n}"),
        "U1",
        received_at_ms,
    )
}

/// Begins and finishes a turn the way the worker does; `delivered` clears the pending copies.
async fn finished(
    store: &DynamoDbConversations,
    n: u32,
    received_at_ms: i64,
    status: TurnStatus,
    knowledge_bases: &[&str],
    delivered: bool,
) -> TurnRecord {
    let mut t = turn(n, received_at_ms);
    store.begin_turn(&t).await.expect("begin");
    t.status = status;
    t.finished_at_ms = Some(received_at_ms + 4_000);
    t.reply_ts = Some(format!("{}.{n:06}", received_at_ms / 1000 + 4));
    t.outcome = Some(status.as_str().into());
    t.pending_analytics = Some(serde_json::json!({ "knowledge_bases": knowledge_bases }).to_string());
    t.pending_usage = Some("{}".into());
    store.finish_turn(&t).await.expect("finish");
    if delivered {
        store.clear_pending(&t.thread, &t.message_ts, true, true).await.expect("clear");
    }
    t
}

fn feedback(user: &str, sentiment: Sentiment, at_ms: i64) -> FeedbackEntry {
    let reaction = if sentiment == Sentiment::Positive { "+1" } else { "-1" };
    FeedbackEntry { user_id: user.into(), reaction: reaction.into(), sentiment, at_ms, event_id: format!("Ev{user}") }
}

fn by_name(datums: &[MetricDatum]) -> BTreeMap<String, (f64, MetricUnit)> {
    datums
        .iter()
        .map(|d| {
            let key = match d.dimensions.as_slice() {
                [] => d.name.to_string(),
                dims => format!("{}{:?}", d.name, dims),
            };
            (key, (d.value, d.unit))
        })
        .collect()
}

#[tokio::test]
async fn publishes_sla_satisfaction_gap_and_success_rates_from_the_table() {
    let (store, _ddb, _) = table("mpfull").await;

    // Answered with a knowledge base, 50 min ago (previous hour bucket), delivered.
    let a = finished(&store, 1, NOW - 50 * MIN, TurnStatus::Answered, &["KB1"], true).await;
    // Answered without a knowledge base, 5 min ago, delivered.
    let b = finished(&store, 2, NOW - 5 * MIN, TurnStatus::Answered, &[], true).await;
    // Failed 10 min ago; its analytics and usage never got published.
    finished(&store, 3, NOW - 10 * MIN, TurnStatus::Failed, &[], false).await;
    // Answered two hours ago: outside the KPI hour.
    finished(&store, 4, NOW - 120 * MIN, TurnStatus::Answered, &[], false).await;
    // Open turns: 3 min (overdue), 30 s (within the SLA), 2 h (overdue, outside the KPI hour),
    // 3 days (past the unanswered window: its message is in the DLQ by now).
    for (n, at) in [(5, NOW - 3 * MIN), (6, NOW - 30_000), (7, NOW - 120 * MIN), (8, NOW - 3 * 24 * 60 * MIN)] {
        store.begin_turn(&turn(n, at)).await.expect("begin open turn");
    }
    // Feedback in the last hour: two positive, one negative; one positive given 70 min ago; one
    // positive given and taken back.
    assert!(store.add_feedback(&a, &feedback("UP1", Sentiment::Positive, NOW - MIN)).await.expect("fb"));
    assert!(store.add_feedback(&a, &feedback("UDOWN", Sentiment::Negative, NOW - 2 * MIN)).await.expect("fb"));
    assert!(store.add_feedback(&b, &feedback("UP2", Sentiment::Positive, NOW - 3 * MIN)).await.expect("fb"));
    assert!(store.add_feedback(&b, &feedback("UOLD", Sentiment::Positive, NOW - 70 * MIN)).await.expect("fb"));
    let undone = feedback("UUNDO", Sentiment::Positive, NOW - 4 * MIN);
    assert!(store.add_feedback(&b, &undone).await.expect("fb"));
    assert!(store.remove_feedback(&b, &undone).await.expect("remove"));
    assert!(!store.remove_feedback(&b, &undone).await.expect("remove again"), "nothing left to remove");

    let sink = Arc::new(Recorded::default());
    let publisher = MetricsPublisher {
        conversations: Arc::new(store),
        sink: sink.clone(),
        settings: KpiSettings::default(),
        sweeper: None,
        usage_queue: None,
    };
    let out = publisher.run(NOW).await.expect("run");
    let sent = sink.0.lock().unwrap().clone();
    assert_eq!(sent.len(), 1, "one batched publish per run");
    assert_eq!(sent[0], (out.clone(), NOW));

    let m = by_name(&out);
    let pct = |v: f64| (v, MetricUnit::Percent);
    let third = 200.0 / 3.0;
    let expected: BTreeMap<String, (f64, MetricUnit)> = [
        ("Heartbeat".to_string(), (1.0, MetricUnit::Count)),
        ("UnansweredConversations".into(), (2.0, MetricUnit::Count)),
        ("OldestUnansweredSeconds".into(), (7200.0, MetricUnit::Seconds)),
        ("FeedbackCount".into(), (3.0, MetricUnit::Count)),
        ("SatisfactionScore".into(), pct(third)),
        ("KnowledgeBaseGapRate".into(), pct(50.0)),
        ("ActionSuccessRate[(\"Action\", \"AgentInvoke\")]".into(), pct(third)),
        // 3 finished turns replied; the overdue open turn (3 min) did not.
        ("ActionSuccessRate[(\"Action\", \"ReplyPosted\")]".into(), pct(75.0)),
        ("ActionSuccessRate[(\"Action\", \"AnalyticsPublished\")]".into(), pct(third)),
        ("ActionSuccessRate[(\"Action\", \"UsagePublished\")]".into(), pct(third)),
    ]
    .into_iter()
    .collect();
    assert_eq!(m.keys().collect::<Vec<_>>(), expected.keys().collect::<Vec<_>>());
    for (k, (v, unit)) in &expected {
        let (got, got_unit) = m[k];
        assert!((got - v).abs() < 1e-9 && got_unit == *unit, "{k}: {got} {got_unit:?}, expected {v} {unit:?}");
    }
}

#[tokio::test]
async fn the_open_turns_index_holds_only_open_turns() {
    let (store, ddb, table) = table("mpsparse").await;
    let open = turn(1, NOW - 5 * MIN);
    store.begin_turn(&open).await.expect("begin");
    finished(&store, 2, NOW - 6 * MIN, TurnStatus::Answered, &[], true).await;
    finished(&store, 3, NOW - 7 * MIN, TurnStatus::RefusedBudget, &[], true).await;

    let index = ddb
        .scan()
        .table_name(&table)
        .index_name(shared::aws::conversations::OPEN_TURNS_INDEX)
        .send()
        .await
        .expect("scan index")
        .items
        .unwrap_or_default();
    assert_eq!(index.len(), 1, "{index:?}");
    assert_eq!(index[0]["sk"], AttributeValue::S(format!("TURN#{}", open.message_ts)));

    // Finishing it takes it out of the index (and out of UnansweredConversations).
    let before = store.open_turns_received_between(NOW - 60 * MIN, NOW).await.expect("query");
    assert_eq!(before, vec![NOW - 5 * MIN]);
    let mut done = open.clone();
    done.status = TurnStatus::Answered;
    done.finished_at_ms = Some(NOW);
    done.reply_ts = Some("9.9".into());
    store.finish_turn(&done).await.expect("finish");
    assert!(store.open_turns_received_between(NOW - 60 * MIN, NOW).await.expect("query").is_empty());

    // And its reply now finds it.
    let found = store.turn_for_reply("T1", "CMP", "9.9").await.expect("lookup").expect("turn");
    assert_eq!(found.event_id, "Ev1");
    assert!(store.turn_for_reply("T1", "CMP", "1.1").await.expect("lookup").is_none());
}

#[tokio::test]
async fn a_quiet_table_publishes_the_heartbeat_and_zero_unanswered_only() {
    let (store, _, _) = table("mpquiet").await;
    let sink = Arc::new(Recorded::default());
    let publisher = MetricsPublisher {
        conversations: Arc::new(store),
        sink: sink.clone(),
        settings: KpiSettings::default(),
        sweeper: None,
        usage_queue: None,
    };
    let out = publisher.run(NOW).await.expect("run");
    let names: Vec<&str> = out.iter().map(|d| d.name).collect();
    assert_eq!(names, ["Heartbeat", "UnansweredConversations", "OldestUnansweredSeconds", "FeedbackCount"]);
    assert!(out[1..].iter().all(|d| d.value == 0.0));
}

#[tokio::test]
async fn a_missing_table_still_sends_the_heartbeat_and_fails_the_run() {
    let sdk = emulators().moto.sdk_config();
    let store = DynamoDbConversations::new(aws_sdk_dynamodb::Client::new(&sdk), "mp-no-such-table");
    let sink = Arc::new(Recorded::default());
    let publisher = MetricsPublisher {
        conversations: Arc::new(store),
        sink: sink.clone(),
        settings: KpiSettings::default(),
        sweeper: None,
        usage_queue: None,
    };
    let e = publisher.run(NOW).await.unwrap_err().to_string();
    assert!(e.contains("Query") && e.contains("ResourceNotFound"), "{e}");
    let sent = sink.0.lock().unwrap();
    assert_eq!(sent[0].0, vec![MetricDatum::new("Heartbeat", 1.0, MetricUnit::Count)]);
}

fn analytics_for(t: &TurnRecord) -> shared::domain::AnalyticsEvent {
    shared::domain::AnalyticsEvent {
        timestamp: "2026-11-23T17:00:00.000Z".into(),
        user_id: t.user_id.clone(),
        thread_id: t.thread.thread_ts.clone(),
        message_length: 10,
        response_length: 20,
        knowledge_bases: vec![],
        search_queries: vec![],
        rationale: None,
        event_id: t.event_id.clone(),
        team_id: t.thread.team_id.clone(),
        channel_id: t.thread.channel_id.clone(),
        agent_id: "A".into(),
        agent_alias_id: "B".into(),
        session_id: t.thread.session_id(),
        action_groups: vec![],
        sources: vec![],
        model_ids: vec!["m".into()],
        input_tokens: 5,
        output_tokens: 6,
        estimated_cost_usd: None,
        latency_ms: 100,
        first_token_ms: None,
        outcome: shared::domain::Outcome::Answered,
        error_code: None,
        guardrail_action: None,
        schema_version: shared::domain::ANALYTICS_SCHEMA_VERSION,
        agent_backend: Default::default(),
        message_text: None,
    }
}

/// A finished turn whose analytics and usage could not be published, finished `age_ms` ago.
async fn undelivered(store: &DynamoDbConversations, n: u32, age_ms: i64) -> TurnRecord {
    let mut t = turn(n, NOW - age_ms - 4_000);
    store.begin_turn(&t).await.expect("begin");
    t.status = TurnStatus::Answered;
    t.finished_at_ms = Some(NOW - age_ms);
    t.reply_ts = Some(format!("{n}.5"));
    t.outcome = Some("answered".into());
    t.pending_analytics = Some(serde_json::to_string(&analytics_for(&t)).expect("json"));
    let usage = shared::domain::UsageRecord {
        record_id: format!("T1:{}", t.event_id),
        timestamp: "2026-11-23T17:00:00.000Z".into(),
        user_id: t.user_id.clone(),
        team_id: "T1".into(),
        channel_id: "CMP".into(),
        thread_id: t.thread.thread_ts.clone(),
        agent_id: "A".into(),
        agent_alias_id: "B".into(),
        agent_backend: Default::default(),
        tokens_unreported: false,
        calls: vec![],
    };
    t.pending_usage = Some(serde_json::to_string(&usage).expect("json"));
    store.finish_turn(&t).await.expect("finish");
    t
}

#[tokio::test]
async fn the_sweeper_republishes_records_the_worker_could_not_deliver() {
    let sdk = emulators().moto.sdk_config();
    let res = GatewayResources::create(&sdk, "mpsweep").await.expect("resources");
    let ddb = aws_sdk_dynamodb::Client::new(&sdk);
    let store = DynamoDbConversations::new(ddb.clone(), &res.conversations_table);
    let stuck = undelivered(&store, 1, 10 * MIN).await;
    // Finished 30 s ago: the worker may still be delivering it; neither swept nor judged yet.
    let recent = undelivered(&store, 2, 30_000).await;

    let publisher = MetricsPublisher {
        conversations: Arc::new(store.clone()),
        sink: Arc::new(Recorded::default()),
        settings: KpiSettings::default(),
        sweeper: Some(metrics_publisher::sweep::Sweeper {
            turns: Arc::new(store.clone()),
            analytics: Arc::new(shared::aws::firehose::FirehoseAnalytics::new(
                aws_sdk_firehose::Client::new(&sdk),
                &res.stream,
            )),
            usage: Arc::new(shared::aws::sqs::SqsUsageSink::new(aws_sdk_sqs::Client::new(&sdk), &res.usage_queue_url)),
            after_ms: 5 * MIN,
            max_turns: metrics_publisher::sweep::MAX_TURNS_PER_RUN,
            time_budget: metrics_publisher::sweep::SWEEP_TIME_BUDGET,
            metrics: shared::telemetry::Metrics::capture("BedrockUsage").0,
        }),
        usage_queue: None,
    };
    let out = publisher.run(NOW).await.expect("run");
    // The metrics describe the state before the sweep: both turns' analytics were pending, but
    // only the settled one is judged.
    let rate = out
        .iter()
        .find(|d| d.name == "ActionSuccessRate" && d.dimensions == vec![("Action", "AnalyticsPublished")])
        .map(|d| d.value);
    assert_eq!(rate, Some(0.0));

    let objects = read_objects(&sdk, &res.bucket, "events/").await.expect("s3");
    let events: Vec<serde_json::Value> = objects
        .iter()
        .flat_map(|(_, t)| t.lines().map(|l| serde_json::from_str(l).expect("json")).collect::<Vec<_>>())
        .collect();
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["event_id"], "Ev1");
    let usage = drain_queue(&sdk, &res.usage_queue_url).await.expect("usage queue");
    assert_eq!(usage.len(), 1);
    assert!(usage[0].body.as_deref().unwrap_or_default().contains("\"record_id\":\"T1:Ev1\""));

    let swept = turn_item(&ddb, &res.conversations_table, &stuck).await;
    for attr in ["pending_analytics", "pending_usage", "analytics_pending", "usage_pending"] {
        assert!(!swept.contains_key(attr), "{attr} still set");
    }
    let waiting = turn_item(&ddb, &res.conversations_table, &recent).await;
    assert!(waiting.contains_key("pending_analytics") && waiting.contains_key("usage_pending"));

    // The next run finds nothing more to sweep for the first turn, and now judges it published.
    let out = publisher.run(NOW + 10_000).await.expect("second run");
    assert_eq!(read_objects(&sdk, &res.bucket, "events/").await.expect("s3").len(), objects.len());
    let rate = out
        .iter()
        .find(|d| d.name == "ActionSuccessRate" && d.dimensions == vec![("Action", "AnalyticsPublished")])
        .map(|d| d.value);
    assert_eq!(rate, Some(100.0));
}

#[tokio::test(flavor = "multi_thread")]
async fn the_binary_publishes_on_a_scheduled_event() {
    use tests::function_process::FunctionProcess;
    use tests::gateway_binaries::binary;
    use tests::lambda_runtime_api::Outcome;

    let (store, _, table) = table("mpbinary").await;
    let now = chrono::Utc::now().timestamp_millis();
    store.begin_turn(&turn(1, now - 5 * MIN)).await.expect("open turn");
    let cw = FakeCloudWatch::start();
    let env: Vec<(String, String)> = [
        ("AWS_ENDPOINT_URL", emulators().moto.endpoint()),
        ("AWS_ENDPOINT_URL_CLOUDWATCH", cw.endpoint()),
        ("CONVERSATIONS_TABLE", table),
        ("METRICS_NAMESPACE", "BinaryTestNamespace".to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let log = std::env::temp_dir().join("metrics-publisher-binary.log");
    let process = FunctionProcess::start(&binary("metrics-publisher", "debug"), &env, 128, &log).expect("start");
    let event = tests::slack_events::fixture("schedule/metrics_publisher");
    let (outcome, process) =
        tokio::task::spawn_blocking(move || (process.invoke(event, std::time::Duration::from_secs(60)), process))
            .await
            .expect("invoke");
    match outcome {
        Ok(Outcome::Response(v)) => assert_eq!(v["published"], 5, "{v}\n{}", process.output()),
        other => panic!("{other:?}\n{}", process.output()),
    }
    let requests = cw.requests();
    assert_eq!(requests.len(), 1, "one PutMetricData call: {requests:?}");
    let (path, body) = &requests[0];
    assert!(path.ends_with("/operation/PutMetricData"), "{path}");
    // CBOR text strings are UTF-8 bytes: the namespace and the names are in the body as-is.
    let contains = |s: &str| body.windows(s.len()).any(|w| w == s.as_bytes());
    // The overdue open turn also makes ReplyPosted 0 %.
    for s in [
        "BinaryTestNamespace",
        "Heartbeat",
        "UnansweredConversations",
        "OldestUnansweredSeconds",
        "FeedbackCount",
        "ActionSuccessRate",
        "ReplyPosted",
    ] {
        assert!(contains(s), "{s} not sent");
    }
    assert!(process.output().contains("metrics published"), "{}", process.output());
}

#[test]
fn the_binary_fails_init_naming_a_missing_variable() {
    use tests::function_process::FunctionProcess;
    use tests::gateway_binaries::binary;
    let log = std::env::temp_dir().join("metrics-publisher-missing-env.log");
    let env = [("UNANSWERED_SLA_SECS".to_string(), "60".to_string())];
    let mut p = FunctionProcess::start(&binary("metrics-publisher", "debug"), &env, 128, &log).expect("start");
    let status = p.wait_exit(std::time::Duration::from_secs(20)).expect("exits at init");
    assert!(!status.success());
    assert!(p.output().contains("CONVERSATIONS_TABLE is not set"), "{}", p.output());
}

#[tokio::test]
async fn logging_queue_depth_counts_waiting_and_in_flight_usage_records_at_full_only() {
    use metrics_publisher::cloudwatch::CloudWatchMetrics;
    use metrics_publisher::usage_queue::SqsQueueDepth;
    use shared::metric_names::MetricsLevel;

    let sdk = emulators().moto.sdk_config();
    let (store, _, _) = table("mpdepth").await;
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let url = sqs.create_queue().queue_name("mpdepth-usage").send().await.expect("queue").queue_url.expect("url");
    for i in 0..5 {
        sqs.send_message().queue_url(&url).message_body(format!("{{\"n\":{i}}}")).send().await.expect("send");
    }
    // token-logging holds two of them: in flight, not waiting, and not logged yet either.
    let held = sqs
        .receive_message()
        .queue_url(&url)
        .max_number_of_messages(2)
        .visibility_timeout(300)
        .send()
        .await
        .expect("receive");
    assert_eq!(held.messages().len(), 2);

    let cw = FakeCloudWatch::start();
    let cloudwatch = aws_sdk_cloudwatch::Client::from_conf(
        aws_sdk_cloudwatch::config::Builder::from(&sdk).endpoint_url(cw.endpoint()).build(),
    );
    let mut returned = Vec::new();
    for level in [MetricsLevel::Full, MetricsLevel::Essential] {
        let publisher = MetricsPublisher {
            conversations: Arc::new(store.clone()),
            sink: Arc::new(CloudWatchMetrics::new(cloudwatch.clone(), "DepthTest").at_level(level)),
            settings: KpiSettings::default(),
            sweeper: None,
            usage_queue: Some(Arc::new(SqsQueueDepth::new(sqs.clone(), &url))),
        };
        returned.push(publisher.run(NOW).await.expect("run"));
    }
    // Both runs compute it; only the full level sends it.
    for out in &returned {
        assert_eq!(out.last(), Some(&MetricDatum::new("LoggingQueueDepth", 5.0, MetricUnit::Count)));
    }
    let requests = cw.requests();
    assert_eq!(requests.len(), 2, "one PutMetricData per run");
    let sent: Vec<Vec<(String, f64)>> = requests
        .iter()
        .map(|(_, body)| {
            tests::local_alarms::put_metric_data_datapoints(body)
                .expect("cbor")
                .into_iter()
                .map(|p| {
                    assert!(p.dimensions.is_empty() && p.namespace == "DepthTest", "{p:?}");
                    (p.metric, p.value)
                })
                .collect()
        })
        .collect();
    let depth = |points: &[(String, f64)]| points.iter().find(|(m, _)| m == "LoggingQueueDepth").map(|(_, v)| *v);
    assert_eq!(depth(&sent[0]), Some(5.0), "full: {:?}", sent[0]);
    assert_eq!(depth(&sent[1]), None, "essential: {:?}", sent[1]);
    assert_eq!(sent[1], vec![("UnansweredConversations".to_string(), 0.0)]);
}

/// Log lines written on this thread while the guard lives (JSON, as in Lambda).
fn capture_logs() -> (Arc<Mutex<Vec<u8>>>, impl Sized) {
    use tracing_subscriber::util::SubscriberInitExt;

    struct Buf(Arc<Mutex<Vec<u8>>>);
    impl std::io::Write for Buf {
        fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(data);
            Ok(data.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let buf: Arc<Mutex<Vec<u8>>> = Arc::default();
    let out = buf.clone();
    let guard = tracing_subscriber::fmt()
        .json()
        .with_env_filter(tracing_subscriber::EnvFilter::new("info"))
        .with_writer(move || Buf(out.clone()))
        .finish()
        .set_default();
    (buf, guard)
}

/// A finished turn, `age_ms` ago, keeping these pending copies.
async fn finished_with_copies(
    store: &DynamoDbConversations,
    n: u32,
    age_ms: i64,
    analytics: Option<String>,
    usage: Option<String>,
) -> TurnRecord {
    let mut t = turn(n, NOW - age_ms - 4_000);
    store.begin_turn(&t).await.expect("begin");
    t.status = TurnStatus::Answered;
    t.finished_at_ms = Some(NOW - age_ms);
    t.reply_ts = Some(format!("{n}.5"));
    t.outcome = Some("answered".into());
    t.pending_analytics = analytics;
    t.pending_usage = usage;
    store.finish_turn(&t).await.expect("finish");
    t
}

#[tokio::test]
async fn the_sweeper_clears_copies_that_no_longer_parse_and_keeps_undelivered_ones() {
    let sdk = emulators().moto.sdk_config();
    let res = GatewayResources::create(&sdk, "mpdrift").await.expect("resources");
    let ddb = aws_sdk_dynamodb::Client::new(&sdk);
    let store = DynamoDbConversations::new(ddb.clone(), &res.conversations_table);
    const SECRET: &str = "the user's private question";
    // An analytics copy cut short, and a usage copy of another shape: serde's errors for these
    // quote the text ("invalid type: string ...").
    let broken = finished_with_copies(
        &store,
        1,
        10 * MIN,
        Some(format!(r#"{{"message_text": "{SECRET}", "input_tokens": "#)),
        Some(format!(r#"{{"record_id": "r1", "calls": "{SECRET}"}}"#)),
    )
    .await;
    // Copies that parse, but whose stream and queue do not exist: publishing fails.
    let stuck = undelivered(&store, 2, 10 * MIN).await;

    let (metrics, emf) = shared::telemetry::Metrics::capture("BedrockUsage");
    let sweeper = metrics_publisher::sweep::Sweeper {
        turns: Arc::new(store.clone()),
        analytics: Arc::new(shared::aws::firehose::FirehoseAnalytics::new(
            aws_sdk_firehose::Client::new(&sdk),
            "mpdrift-no-such-stream",
        )),
        usage: Arc::new(shared::aws::sqs::SqsUsageSink::new(
            aws_sdk_sqs::Client::new(&sdk),
            format!("{}-gone", res.usage_queue_url),
        )),
        after_ms: 5 * MIN,
        max_turns: metrics_publisher::sweep::MAX_TURNS_PER_RUN,
        time_budget: metrics_publisher::sweep::SWEEP_TIME_BUDGET,
        metrics,
    };
    let (logs, guard) = capture_logs();
    let report = sweeper.sweep(NOW).await;
    assert_eq!(report, SweepReport { failed: 2, unparseable: 2, ..SweepReport::default() });
    let first_run = String::from_utf8(logs.lock().unwrap().clone()).expect("utf-8");

    // The unparseable copies are gone after one run; the undeliverable-for-now ones are kept.
    let cleared = turn_item(&ddb, &res.conversations_table, &broken).await;
    for attr in ["pending_analytics", "pending_usage", "analytics_pending", "usage_pending"] {
        assert!(!cleared.contains_key(attr), "{attr} still set");
    }
    let kept = turn_item(&ddb, &res.conversations_table, &stuck).await;
    for attr in ["pending_analytics", "pending_usage", "analytics_pending", "usage_pending"] {
        assert!(kept.contains_key(attr), "{attr} cleared on a copy that parses");
    }

    // Counted as drift, per copy, with the dimensionless total the alarm watches.
    let docs = shared::telemetry::parse_emf(&emf.lock().unwrap());
    let drift: Vec<(&str, f64)> =
        docs.iter().filter_map(|d| Some((d["EventType"].as_str()?, d["SchemaDrift"].as_f64()?))).collect();
    assert_eq!(drift, vec![("pending_analytics", 1.0), ("pending_usage", 1.0)]);
    let directives = docs[0]["_aws"]["CloudWatchMetrics"][0]["Dimensions"].clone();
    assert_eq!(directives, serde_json::json!([["EventType"], []]));

    // Logged once per copy with the turn key and event id, never with the copy's content.
    let lines: Vec<serde_json::Value> = first_run.lines().map(|l| serde_json::from_str(l).expect("json log")).collect();
    let dropped: Vec<&serde_json::Value> = lines
        .iter()
        .filter(|l| l["fields"]["message"].as_str().is_some_and(|m| m.contains("no longer parses")))
        .collect();
    assert_eq!(dropped.len(), 2, "{first_run}");
    for (line, copy) in dropped.iter().zip(["pending_analytics", "pending_usage"]) {
        let f = &line["fields"];
        assert_eq!(f["event_id"], "Ev1");
        assert_eq!(f["copy"], copy);
        assert_eq!(f["pk"], format!("THREAD#T1#CMP#{}", broken.thread.thread_ts));
        assert_eq!(f["sk"], format!("TURN#{}", broken.message_ts));
    }
    assert!(!first_run.contains(SECRET), "the log holds a copy's content:\n{first_run}");

    // The next run meets only the turn that still waits for its sinks.
    logs.lock().unwrap().clear();
    let report = sweeper.sweep(NOW + 10_000).await;
    assert_eq!(report, SweepReport { failed: 2, ..SweepReport::default() });
    let second_run = String::from_utf8(logs.lock().unwrap().clone()).expect("utf-8");
    drop(guard);
    assert!(!second_run.contains("no longer parses"), "{second_run}");
    assert_eq!(shared::telemetry::parse_emf(&emf.lock().unwrap()).len(), docs.len(), "no new drift");
    assert!(turn_item(&ddb, &res.conversations_table, &stuck).await.contains_key("pending_usage"));
}

/// A turn's item in the conversations table, as the sweeper left it.
async fn turn_item(
    ddb: &aws_sdk_dynamodb::Client,
    table: &str,
    t: &TurnRecord,
) -> std::collections::HashMap<String, AttributeValue> {
    ddb.get_item()
        .table_name(table)
        .key("pk", AttributeValue::S(format!("THREAD#T1#CMP#{}", t.thread.thread_ts)))
        .key("sk", AttributeValue::S(format!("TURN#{}", t.message_ts)))
        .send()
        .await
        .expect("get")
        .item
        .expect("item")
}

/// An endpoint on loopback where nothing listens: a bound and released port refuses connections,
/// as an unreachable service does.
fn dead_endpoint() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    drop(listener);
    format!("http://{addr}")
}

/// Feeds the usage queue's messages to token-logging (the library, over the real ledger adapter).
async fn log_usage(
    sdk: &aws_config::SdkConfig,
    table: &str,
    messages: Vec<aws_lambda_events::event::sqs::SqsMessage>,
) -> token_logging::handler::BatchSummary {
    let logger = token_logging::handler::TokenLogger::new(
        Arc::new(shared::aws::ledger::DynamoDbLedger::new(aws_sdk_dynamodb::Client::new(sdk), table)),
        shared::pricing::PriceTable::embedded(),
        shared::telemetry::Metrics::capture("BedrockUsage").0,
        table,
        token_logging::writer::WriterSettings::default(),
    );
    let mut event = aws_lambda_events::event::sqs::SqsEvent::default();
    event.records = messages;
    let (resp, summary) = logger.handle_batch_with_summary(event, None).await;
    assert!(resp.batch_item_failures.is_empty(), "{resp:?}");
    summary
}

#[tokio::test]
async fn a_six_hour_outage_of_firehose_and_the_usage_queue_loses_nothing() {
    let sdk = emulators().moto.sdk_config();
    let res = GatewayResources::create(&sdk, "mpoutage").await.expect("resources");
    let ddb = aws_sdk_dynamodb::Client::new(&sdk);
    let store = DynamoDbConversations::new(ddb.clone(), &res.conversations_table);
    // Firehose and the usage queue were unreachable for six hours: every turn of that time
    // finished with its analytics event and usage record kept on the turn. One turn every 36
    // minutes, the oldest finished six hours ago.
    let mut turns = Vec::new();
    for i in 0..10u32 {
        turns.push(undelivered(&store, 100 + i, (360 - 36 * i64::from(i)) * MIN).await);
    }
    let expected: Vec<String> = turns.iter().map(|t| format!("T1:{}", t.event_id)).collect();

    // As in production, except that a dead endpoint is given up after one attempt.
    let sweeper = |firehose: Option<String>, sqs: Option<String>| {
        let one_attempt = aws_sdk_dynamodb::config::retry::RetryConfig::standard().with_max_attempts(1);
        let mut firehose_conf = aws_sdk_firehose::config::Builder::from(&sdk);
        if let Some(url) = firehose {
            firehose_conf = firehose_conf.endpoint_url(url).retry_config(one_attempt.clone());
        }
        let mut sqs_conf = aws_sdk_sqs::config::Builder::from(&sdk);
        if let Some(url) = sqs {
            sqs_conf = sqs_conf.endpoint_url(url).retry_config(one_attempt);
        }
        metrics_publisher::sweep::Sweeper {
            turns: Arc::new(store.clone()),
            analytics: Arc::new(shared::aws::firehose::FirehoseAnalytics::new(
                aws_sdk_firehose::Client::from_conf(firehose_conf.build()),
                &res.stream,
            )),
            usage: Arc::new(shared::aws::sqs::SqsUsageSink::new(
                aws_sdk_sqs::Client::from_conf(sqs_conf.build()),
                &res.usage_queue_url,
            )),
            after_ms: 5 * MIN,
            // Bounded per run: 4 turns (500 in production).
            max_turns: 4,
            time_budget: metrics_publisher::sweep::SWEEP_TIME_BUDGET,
            metrics: shared::telemetry::Metrics::capture("BedrockUsage").0,
        }
    };
    let publisher = |sweeper| MetricsPublisher {
        conversations: Arc::new(store.clone()),
        sink: Arc::new(Recorded::default()),
        settings: KpiSettings::default(),
        sweeper: Some(sweeper),
        usage_queue: None,
    };

    // The last run of the outage: both services still unreachable. Each is tried once (a down
    // sink is not hammered for every turn) and every copy is kept.
    let report = sweeper(Some(dead_endpoint()), Some(dead_endpoint())).sweep(NOW).await;
    assert_eq!(report, SweepReport { failed: 2, ..SweepReport::default() });
    for t in &turns {
        let item = turn_item(&ddb, &res.conversations_table, t).await;
        assert!(item.contains_key("pending_analytics") && item.contains_key("pending_usage"), "{}", t.event_id);
    }
    assert_eq!(ledger_turns(&ddb, &res.usage_table).await, Vec::<String>::new(), "ledger before");

    // The services are back: runs every 5 minutes deliver everything, oldest first, 4 a run.
    let up = publisher(sweeper(None, None));
    let mut per_run = Vec::new();
    let mut queued = Vec::new();
    for run in 1..=5 {
        up.run(NOW + run * 5 * MIN).await.expect("run");
        let messages = drain_queue(&sdk, &res.usage_queue_url).await.expect("usage queue");
        let ids: Vec<String> = messages
            .iter()
            .map(|m| {
                let v: serde_json::Value = serde_json::from_str(m.body.as_deref().unwrap_or_default()).expect("json");
                v["record_id"].as_str().unwrap_or_default().to_string()
            })
            .collect();
        per_run.push(ids);
        queued.extend(messages);
    }
    let sizes: Vec<usize> = per_run.iter().map(Vec::len).collect();
    assert_eq!(sizes, [4, 4, 2, 0, 0], "{per_run:?}");
    assert_eq!(per_run.concat(), expected, "every usage record once, oldest first");
    let mut events: Vec<String> = read_objects(&sdk, &res.bucket, "events/")
        .await
        .expect("s3")
        .iter()
        .flat_map(|(_, text)| text.lines().map(str::to_string).collect::<Vec<_>>())
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(&l).expect("json");
            v["event_id"].as_str().unwrap_or_default().to_string()
        })
        .collect();
    events.sort();
    let mut want: Vec<String> = turns.iter().map(|t| t.event_id.clone()).collect();
    want.sort();
    assert_eq!(events, want, "every analytics event once");
    for t in &turns {
        let item = turn_item(&ddb, &res.conversations_table, t).await;
        for attr in ["pending_analytics", "pending_usage", "pending_copy", "pending_since_ms"] {
            assert!(!item.contains_key(attr), "{}: {attr} left", t.event_id);
        }
    }

    // token-logging counts each turn once, also when a record arrives twice (the worker's own
    // SendMessage got through after all, before its client gave up).
    let mut with_duplicate = queued.clone();
    with_duplicate.push(queued[0].clone());
    log_usage(&sdk, &res.usage_table, with_duplicate).await;
    let mut want_ledger = expected.clone();
    want_ledger.sort();
    assert_eq!(ledger_turns(&ddb, &res.usage_table).await, want_ledger, "ledger after");
}

#[tokio::test]
async fn a_turn_leaves_the_pending_index_with_its_last_copy_only() {
    let (store, _, _) = table("mppendingidx").await;
    let t = undelivered(&store, 1, 10 * MIN).await;
    let due = |at: i64| {
        let store = store.clone();
        async move { store.pending_copies_due(at, 10).await.expect("query").len() }
    };
    assert_eq!(due(NOW - 5 * MIN).await, 1);
    assert_eq!(due(NOW - 11 * MIN).await, 0, "not due before it finished");
    // The analytics event got through, the usage record did not: still owed, still indexed.
    store.clear_pending(&t.thread, &t.message_ts, true, false).await.expect("clear analytics");
    assert_eq!(due(NOW).await, 1);
    // The usage record too: nothing owed, out of the index.
    store.clear_pending(&t.thread, &t.message_ts, false, true).await.expect("clear usage");
    assert_eq!(due(NOW).await, 0);
    // Clearing a turn that expired meanwhile creates nothing.
    let gone = turn(99, NOW);
    store.clear_pending(&gone.thread, &gone.message_ts, true, true).await.expect("clear a missing turn");
    assert!(store.turn(&gone.thread, &gone.message_ts).await.expect("get").is_none());
}
