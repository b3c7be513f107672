//! Issue 13's faults end to end through the real binaries: slack-ingress, slack-worker,
//! token-logging and metrics-publisher each run as Lambda runs them (a process under a local
//! Runtime API), against moto (through a fault proxy where AWS must fail), the fake Slack and the
//! scripted agent. For each fault: what the user sees, and that nothing accepted is lost or
//! counted twice. The same faults are tested in-process in slack_faults, metrics_publisher and
//! token_logging; these prove `main` wires the same behaviour. scripts/test builds the binaries
//! before the tests run.

use std::collections::BTreeSet;
use std::time::Duration;

use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage};
use aws_sdk_dynamodb::types::AttributeValue;
use serde_json::Value;
use shared::aws::conversations::{thread_pk, turn_sk, DynamoDbConversations};
use shared::domain::{ThreadRef, TurnStatus, UsageRecord};
use shared::ports::{ConversationStore, TurnRecord};
use slack_gateway::worker::APOLOGY;
use tests::fake_cloudwatch::FakeCloudWatch;
use tests::fake_slack::Fault as SlackFault;
use tests::fault_proxy::{Fault, FaultProxy};
use tests::function_process::FunctionProcess;
use tests::gateway_binaries::{binary, blocking, env, queue_mention, worker_env};
use tests::harness::emulators;
use tests::lambda_runtime_api::Outcome;
use tests::resources::{drain_queue, ledger_turns, read_objects, GatewayResources};
use tests::slack_events::{body_of, fixture};

/// The most deliveries SQS makes before the dead-letter queue (template: maxReceiveCount).
const MAX_DELIVERIES: usize = 8;
const SIX_HOURS_MS: i64 = 6 * 3_600_000;

/// A function binary started for one test, its log named after the test.
fn start(name: &str, prefix: &str, env: &[(String, String)]) -> FunctionProcess {
    let log = std::env::temp_dir().join(format!("{prefix}-{name}.log"));
    FunctionProcess::start(&binary(name, "debug"), env, 256, &log).unwrap_or_else(|e| panic!("start {name}: {e}"))
}

/// Invokes `process` with `event` off the async runtime; the response payload, or a panic with
/// its output.
async fn invoke(process: FunctionProcess, event: Value) -> (Value, FunctionProcess) {
    let (outcome, process) = blocking(move || (process.invoke(event, Duration::from_secs(60)), process)).await;
    match outcome {
        Ok(Outcome::Response(v)) => (v, process),
        other => panic!("{other:?}\n{}", process.output()),
    }
}

/// The item ids a batch response hands back to the queue.
fn failed_ids(response: &Value) -> BTreeSet<String> {
    let failures =
        response["batchItemFailures"].as_array().unwrap_or_else(|| panic!("not a batch response: {response}"));
    failures.iter().filter_map(|f| f["itemIdentifier"].as_str().map(str::to_string)).collect()
}

/// One question: its resources and the work item the ingress binary queued for it.
struct Question {
    prefix: String,
    channel: String,
    res: GatewayResources,
    work: Vec<SqsMessage>,
}

impl Question {
    /// Sends the fixture's mention from `channel` through the ingress binary.
    async fn ask(prefix: &str, channel: &str) -> Question {
        let sdk = emulators().moto.sdk_config();
        let res = GatewayResources::create(&sdk, prefix).await.expect("resources");
        let (response, ingress, work) = queue_mention("debug", prefix, channel, None, &res).await;
        match response {
            Ok(Outcome::Response(v)) => assert_eq!(v["statusCode"], 200, "{v}\n{}", ingress.output()),
            other => panic!("ingress: {other:?}\n{}", ingress.output()),
        }
        assert_eq!(work.len(), 1, "queued once\n{}", ingress.output());
        Question { prefix: prefix.into(), channel: channel.into(), res, work }
    }

    /// Feeds the work item to the worker binary as the SQS event source would: what it hands
    /// back is delivered again (receive count up), until nothing fails or SQS would give up.
    /// Returns the deliveries made and whether the last one still failed.
    async fn work(&self, worker: FunctionProcess) -> (usize, bool, FunctionProcess) {
        let mut pending = self.work.clone();
        let mut worker = worker;
        let mut deliveries = 0;
        while !pending.is_empty() && deliveries < MAX_DELIVERIES {
            deliveries += 1;
            for m in &mut pending {
                m.attributes.insert("ApproximateReceiveCount".into(), deliveries.to_string());
            }
            let mut batch = SqsEvent::default();
            batch.records = pending.clone();
            let (response, back) = invoke(worker, serde_json::to_value(&batch).expect("event")).await;
            worker = back;
            let failed = failed_ids(&response);
            pending.retain(|m| m.message_id.as_ref().is_some_and(|id| failed.contains(id)));
        }
        (deliveries, !pending.is_empty(), worker)
    }

    /// InvokeAgent calls made for this question.
    fn agent_invocations(&self) -> usize {
        let channel = Some(self.channel.as_str());
        let requests = emulators().agent.requests();
        requests.iter().filter(|r| r.session_attributes.get("slack_channel_id").map(String::as_str) == channel).count()
    }

    /// The bot's messages in the channel as a Slack user sees them now (edits applied).
    fn seen(&self) -> Vec<String> {
        let threads = emulators().slack.threads();
        let mine = threads.into_iter().filter(|((c, _), _)| *c == self.channel).flat_map(|(_, messages)| messages);
        mine.filter(|m| m["bot_id"] == "BBOT").map(|m| m["text"].as_str().unwrap_or_default().to_string()).collect()
    }

    /// The Slack calls of `method` in the channel, as (faulted, all).
    fn slack_calls(&self, method: &str) -> (usize, usize) {
        let calls: Vec<_> =
            emulators().slack.calls_for(&self.channel).into_iter().filter(|c| c.method == method).collect();
        (calls.iter().filter(|c| c.fault.is_some()).count(), calls.len())
    }

    fn thread(&self) -> (ThreadRef, String) {
        let body = body_of(&fixture("slack/app_mention"));
        let ts = body["event"]["ts"].as_str().unwrap_or_default().to_string();
        (ThreadRef { team_id: "T0001".into(), channel_id: self.channel.clone(), thread_ts: ts.clone() }, ts)
    }

    /// The turn as the conversations table holds it.
    async fn turn(&self) -> TurnRecord {
        let (thread, ts) = self.thread();
        let ddb = aws_sdk_dynamodb::Client::new(&emulators().moto.sdk_config());
        let store = DynamoDbConversations::new(ddb, &self.res.conversations_table);
        store.turn(&thread, &ts).await.expect("read turn").expect("the turn is recorded")
    }

    /// Drains the usage queue: the records published.
    async fn usage(&self) -> (Vec<SqsMessage>, Vec<UsageRecord>) {
        let messages = drain_queue(&emulators().moto.sdk_config(), &self.res.usage_queue_url).await.expect("usage");
        let records = messages
            .iter()
            .map(|m| serde_json::from_str(m.body.as_deref().unwrap_or_default()).expect("usage record"))
            .collect();
        (messages, records)
    }

    /// The record ids in the ledger (one `TURN#` item per turn).
    async fn ledger(&self) -> Vec<String> {
        ledger_turns(&aws_sdk_dynamodb::Client::new(&emulators().moto.sdk_config()), &self.res.usage_table).await
    }

    /// The worker binary with its AWS calls to `aws_endpoint` and `extra` settings.
    fn worker(&self, aws_endpoint: &str, extra: &[(&str, &str)]) -> FunctionProcess {
        let mut vars = worker_env(aws_endpoint, &self.res);
        vars.extend(env(extra));
        start("slack-worker", &self.prefix, &vars)
    }

    /// The token-logging binary with its AWS calls to `aws_endpoint`.
    fn token_logging(&self, aws_endpoint: &str, name: &str) -> FunctionProcess {
        let vars = env(&[("AWS_ENDPOINT_URL", aws_endpoint), ("USAGE_TABLE", &self.res.usage_table)]);
        start("token-logging", &format!("{}-{name}", self.prefix), &vars)
    }
}

/// Feeds usage messages to a token-logging process; the ids it hands back.
async fn log(logger: FunctionProcess, messages: &[SqsMessage]) -> (BTreeSet<String>, FunctionProcess) {
    let mut batch = SqsEvent::default();
    batch.records = messages.to_vec();
    let (response, logger) = invoke(logger, serde_json::to_value(&batch).expect("event")).await;
    (failed_ids(&response), logger)
}

/// Runs the turn's usage through token-logging (against moto) and checks the ledger holds the
/// turn once: a usage record published `n` times is still one turn.
async fn ledgered_once(q: &Question) -> Vec<String> {
    let (messages, records) = q.usage().await;
    let ids: BTreeSet<&str> = records.iter().map(|r| r.record_id.as_str()).collect();
    assert_eq!(ids.len(), 1, "one usage record id per turn: {ids:?}");
    let tokens: u64 = records[0].calls.iter().map(|c| c.input_tokens + c.output_tokens).sum();
    assert!(tokens > 0, "the turn's tokens are in its usage record: {:?}", records[0]);
    let (failed, logger) = log(q.token_logging(&emulators().moto.endpoint(), "tl"), &messages).await;
    assert!(failed.is_empty(), "{failed:?}\n{}", logger.output());
    let ledger = q.ledger().await;
    assert_eq!(ledger, vec![records[0].record_id.clone()], "the ledger counts the turn once");
    ledger
}

/// Slack rate-limits the early message's post and its edit: the worker waits out Retry-After,
/// the user sees one answer, the agent ran once and the turn is ledgered once.
#[tokio::test(flavor = "multi_thread")]
async fn slack_rate_limits_are_waited_out_and_the_user_sees_one_answer() {
    let q = Question::ask("fb429", "CFB429").await;
    let slack = &emulators().slack;
    slack.fail_next("chat.postMessage", Some(&q.channel), SlackFault::RateLimited { retry_after_secs: 1 });
    slack.fail_next("chat.update", Some(&q.channel), SlackFault::RateLimited { retry_after_secs: 1 });
    // An early message at once, so the answer is an edit of it (chat.update) too: the
    // edited-message path (a native stream has no chat.update to rate-limit).
    let worker =
        q.worker(&emulators().moto.endpoint(), &[("STREAM_DELAY_MS", "0"), ("SLACK_NATIVE_STREAMING", "false")]);
    let (deliveries, still_failing, worker) = q.work(worker).await;
    let output = worker.output();
    assert_eq!((deliveries, still_failing), (1, false), "{output}");
    let posts = q.slack_calls("chat.postMessage");
    let updates = q.slack_calls("chat.update");
    eprintln!("chat.postMessage (faulted, all) {posts:?}, chat.update {updates:?}");
    assert_eq!(posts, (1, 2), "one rate-limited post, then the post\n{output}");
    assert!(updates.0 == 1 && updates.1 >= 2, "one rate-limited edit, then the edit\n{output}");
    assert_eq!(q.agent_invocations(), 1);
    let seen = q.seen();
    assert_eq!(seen.len(), 1, "one answer: {seen:?}");
    assert_ne!(seen[0], APOLOGY);
    assert_eq!(q.turn().await.status, TurnStatus::Answered);
    ledgered_once(&q).await;
}

/// Slack answers the post with 5xx for longer than one delivery: the worker hands the message
/// back, the redelivery posts the kept answer without asking the agent again.
#[tokio::test(flavor = "multi_thread")]
async fn a_slack_5xx_is_redelivered_and_posted_without_asking_the_agent_again() {
    let q = Question::ask("fb5xx", "CFB5XX").await;
    emulators().slack.fail_times("chat.postMessage", Some(&q.channel), SlackFault::ServerError, 3);
    let worker = q.worker(&emulators().moto.endpoint(), &[]);
    let (deliveries, still_failing, worker) = q.work(worker).await;
    let output = worker.output();
    eprintln!("deliveries {deliveries}, chat.postMessage (faulted, all) {:?}", q.slack_calls("chat.postMessage"));
    assert!(!still_failing, "answered within {MAX_DELIVERIES} deliveries\n{output}");
    assert!(deliveries > 1, "a 5xx post goes back to the queue\n{output}");
    assert_eq!(q.slack_calls("chat.postMessage"), (3, 4), "{output}");
    assert_eq!(q.agent_invocations(), 1, "the kept answer is posted, the agent is not asked again");
    let seen = q.seen();
    assert_eq!(seen.len(), 1, "one answer: {seen:?}");
    assert_ne!(seen[0], APOLOGY);
    let turn = q.turn().await;
    assert_eq!(turn.status, TurnStatus::Answered);
    assert!(turn.reply_ts.is_some());
    ledgered_once(&q).await;
}

/// A permanent Slack error (the channel is gone): the turn ends failed, the batch hands nothing
/// back (a redelivery cannot help), the agent ran once and its tokens are counted once.
#[tokio::test(flavor = "multi_thread")]
async fn a_permanent_slack_error_fails_the_turn_without_redelivery_and_counts_its_tokens() {
    let q = Question::ask("fbperm", "CFBPERM").await;
    let fault = SlackFault::SlackError("channel_not_found".into());
    emulators().slack.fail_times("chat.postMessage", Some(&q.channel), fault, MAX_DELIVERIES);
    let worker = q.worker(&emulators().moto.endpoint(), &[]);
    let (deliveries, still_failing, worker) = q.work(worker).await;
    let output = worker.output();
    assert_eq!((deliveries, still_failing), (1, false), "no redelivery\n{output}");
    assert_eq!(q.agent_invocations(), 1);
    assert!(q.seen().is_empty(), "nothing can be posted: {:?}", q.seen());
    let turn = q.turn().await;
    assert_eq!(turn.status, TurnStatus::Failed);
    assert_eq!(turn.error_code.as_deref(), Some("slack_channel_not_found"));
    assert!(output.contains("SlackPermanent"), "APIErrors by ErrorCode in the EMF\n{output}");
    ledgered_once(&q).await;
}

/// Firehose and the usage queue refuse everything for six hours. The user's answer is posted
/// and the work item is not handed back (no re-run of the agent); the turn keeps its copies.
/// metrics-publisher runs while the outage lasts (copies kept), and once the services are back
/// republishes each copy once; token-logging ledgers the turn once.
#[tokio::test(flavor = "multi_thread")]
async fn a_six_hour_outage_of_firehose_and_the_usage_queue_loses_nothing() {
    let q = Question::ask("fbout", "CFBOUT").await;
    let emu = emulators();
    let sdk = emu.moto.sdk_config();
    let proxy = FaultProxy::start(&emu.moto.endpoint()).expect("fault proxy");
    let unavailable = |op: &str, needle: &str| {
        Fault::error(op, 503, "ServiceUnavailable", "Service is unavailable").when_body_contains(needle)
    };
    proxy.inject(unavailable("PutRecord", &q.res.stream));
    proxy.inject(unavailable("SendMessage", &q.res.usage_queue_url));

    let worker = q.worker(&proxy.endpoint(), &[]);
    let (deliveries, still_failing, worker) = q.work(worker).await;
    let output = worker.output();
    assert_eq!((deliveries, still_failing), (1, false), "not handed back\n{output}");
    let (puts, puts_failed) = proxy.seen("PutRecord");
    let (sends, sends_failed) = proxy.seen("SendMessage");
    eprintln!(
        "worker: PutRecord {puts} tried, {puts_failed} refused; SendMessage {sends} tried, {sends_failed} refused"
    );
    assert!(puts_failed >= 1 && puts_failed == puts, "{output}");
    assert!(sends_failed >= 1 && sends_failed == sends, "{output}");
    assert_eq!(q.agent_invocations(), 1);
    let seen = q.seen();
    assert_eq!(seen.len(), 1, "the user's answer is posted: {seen:?}");
    assert_ne!(seen[0], APOLOGY);
    let turn = q.turn().await;
    assert_eq!(turn.status, TurnStatus::Answered);
    assert!(turn.pending_analytics.is_some() && turn.pending_usage.is_some(), "copies kept: {turn:?}");

    // Six hours pass: the turn finished (and has waited in the pending index) since then.
    let (thread, ts) = q.thread();
    let six_hours_ago = chrono::Utc::now().timestamp_millis() - SIX_HOURS_MS;
    aws_sdk_dynamodb::Client::new(&sdk)
        .update_item()
        .table_name(&q.res.conversations_table)
        .key("pk", AttributeValue::S(thread_pk(&thread)))
        .key("sk", AttributeValue::S(turn_sk(&ts)))
        .update_expression("SET pending_since_ms = :t, finished_at_ms = :t")
        .expression_attribute_values(":t", AttributeValue::N(six_hours_ago.to_string()))
        .send()
        .await
        .expect("age the copies");

    let cloudwatch = FakeCloudWatch::start();
    let publisher_env = env(&[
        ("AWS_ENDPOINT_URL", &proxy.endpoint()),
        ("AWS_ENDPOINT_URL_CLOUDWATCH", &cloudwatch.endpoint()),
        ("CONVERSATIONS_TABLE", &q.res.conversations_table),
        ("EVENTS_STREAM_NAME", &q.res.stream),
        ("USAGE_QUEUE_URL", &q.res.usage_queue_url),
    ]);
    let publisher = start("metrics-publisher", &q.prefix, &publisher_env);
    let schedule = fixture("schedule/metrics_publisher");

    // The last run of the outage: the sweep tries each sink, is refused, and keeps the copies.
    let refused_before = (proxy.seen("PutRecord").1, proxy.seen("SendMessage").1);
    let (response, publisher) = invoke(publisher, schedule.clone()).await;
    assert!(response["published"].as_u64().is_some_and(|n| n > 0), "{response}\n{}", publisher.output());
    let refused_after = (proxy.seen("PutRecord").1, proxy.seen("SendMessage").1);
    eprintln!(
        "metrics-publisher during the outage: refused (PutRecord, SendMessage) {refused_before:?} -> {refused_after:?}"
    );
    assert!(
        refused_after.0 > refused_before.0 && refused_after.1 > refused_before.1,
        "the sweep tried both sinks\n{}",
        publisher.output()
    );
    let turn = q.turn().await;
    assert!(turn.pending_analytics.is_some() && turn.pending_usage.is_some(), "copies kept: {turn:?}");
    assert_eq!(q.usage().await.1.len(), 0, "nothing reached the usage queue");
    assert_eq!(events_in(&q).await, Vec::<String>::new(), "nothing reached the analytics bucket");

    // The services are back: the next runs deliver each copy once.
    proxy.heal("PutRecord");
    proxy.heal("SendMessage");
    let (_, publisher) = invoke(publisher, schedule.clone()).await;
    let (_, publisher) = invoke(publisher, schedule).await;
    let turn = q.turn().await;
    assert!(turn.pending_analytics.is_none() && turn.pending_usage.is_none(), "copies cleared: {turn:?}");
    let event_id = format!("Ev{}", q.prefix);
    assert_eq!(events_in(&q).await, vec![event_id], "one analytics event\n{}", publisher.output());
    let ledger = ledgered_once(&q).await;
    eprintln!("after the outage: ledger {ledger:?}");
}

/// The event ids of the analytics events delivered to the bucket (Firehose delivers to S3 in moto).
async fn events_in(q: &Question) -> Vec<String> {
    let objects = read_objects(&emulators().moto.sdk_config(), &q.res.bucket, "events/").await.expect("s3");
    let lines = objects.iter().flat_map(|(_, text)| text.lines().map(str::to_string).collect::<Vec<_>>());
    lines
        .map(|l| {
            let v: Value = serde_json::from_str(&l).expect("json");
            v["event_id"].as_str().unwrap_or_default().to_string()
        })
        .collect()
}

/// DynamoDB throttles the ledger's transactions through the token-logging binary: a few
/// throttles are backed off and retried within the batch (DynamoDBThrottles in the EMF); a
/// throttle that outlasts the retries hands the records back, and the redelivery ledgers them.
/// Each turn is in the ledger once, whatever was retried or delivered twice.
#[tokio::test(flavor = "multi_thread")]
async fn ledger_throttling_is_backed_off_and_each_turn_is_ledgered_once() {
    let q = Question::ask("fbthrottle", "CFBTHROTTLE").await;
    let emu = emulators();
    let (deliveries, still_failing, _) = q.work(q.worker(&emu.moto.endpoint(), &[])).await;
    assert_eq!((deliveries, still_failing), (1, false));
    let (messages, records) = q.usage().await;
    assert_eq!(records.len(), 1);
    let throttled = || {
        Fault::error(
            "TransactWriteItems",
            400,
            "ProvisionedThroughputExceededException",
            "The level of configured provisioned throughput for the table was exceeded. \
             Consider increasing your provisioning level with the UpdateTable API.",
        )
    };

    // Three throttles: backed off and retried inside the invocation.
    let proxy = FaultProxy::start(&emu.moto.endpoint()).expect("fault proxy");
    proxy.inject(throttled().times(3));
    let (failed, logger) = log(q.token_logging(&proxy.endpoint(), "tl-retried"), &messages).await;
    let output = logger.output();
    let (tried, refused) = proxy.seen("TransactWriteItems");
    eprintln!("TransactWriteItems: {tried} tried, {refused} throttled; handed back {failed:?}");
    assert!(failed.is_empty(), "{failed:?}\n{output}");
    assert_eq!(refused, 3, "{output}");
    assert_eq!(emf_sum(&output, "DynamoDBThrottles"), 3.0, "{output}");
    assert_eq!(q.ledger().await, vec![records[0].record_id.clone()]);

    // Throttled past the retries: the record goes back to the queue; the redelivery (to a fresh
    // sandbox: the first one's breaker is open) ledgers it, and the turn is still counted once.
    let second = Question::ask("fbthrottle2", "CFBTHROTTLE2").await;
    let (deliveries, still_failing, _) = second.work(second.worker(&emu.moto.endpoint(), &[])).await;
    assert_eq!((deliveries, still_failing), (1, false));
    let (mut messages, records) = second.usage().await;
    assert_eq!(records.len(), 1);
    let proxy = FaultProxy::start(&emu.moto.endpoint()).expect("fault proxy");
    proxy.inject(throttled());
    let (failed, logger) = log(second.token_logging(&proxy.endpoint(), "tl-throttled"), &messages).await;
    let output = logger.output();
    let (tried, refused) = proxy.seen("TransactWriteItems");
    eprintln!("TransactWriteItems: {tried} tried, {refused} throttled; handed back {failed:?}");
    let ids: BTreeSet<String> = messages.iter().filter_map(|m| m.message_id.clone()).collect();
    assert_eq!(failed, ids, "handed back for redelivery\n{output}");
    let (throttles, trips) = (emf_sum(&output, "DynamoDBThrottles"), emf_sum(&output, "CircuitBreakerTrips"));
    eprintln!("DynamoDBThrottles {throttles}, CircuitBreakerTrips {trips}");
    assert_eq!(throttles, refused as f64, "every throttle counted\n{output}");
    assert_eq!(second.ledger().await, Vec::<String>::new(), "nothing half-written");
    proxy.heal("TransactWriteItems");
    // SQS redelivers it, and (at least once) the original too: the ledger counts it once.
    messages.push(messages[0].clone());
    let (failed, logger) = log(second.token_logging(&proxy.endpoint(), "tl-redelivered"), &messages).await;
    assert!(failed.is_empty(), "{failed:?}\n{}", logger.output());
    assert_eq!(second.ledger().await, vec![records[0].record_id.clone()]);
}

/// Sum of a metric over the EMF documents a binary printed.
fn emf_sum(output: &str, name: &str) -> f64 {
    shared::telemetry::parse_emf(output.as_bytes()).iter().filter_map(|d| d[name].as_f64()).sum()
}
