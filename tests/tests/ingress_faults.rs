//! The ingress when its dependencies fail as they do in AWS (issue 13, defect 1): SendMessage
//! fails on Slack's first delivery, and releasing the dedupe claim is refused (the role had no
//! dynamodb:DeleteItem) or succeeds. Slack's retry must then be queued, and the user answered
//! exactly once. The faults come from a proxy in front of moto, through the real SDK clients.

use std::sync::Arc;
use std::time::Duration;

use aws_lambda_events::event::lambda_function_urls::{LambdaFunctionUrlRequest, LambdaFunctionUrlResponse};
use aws_sdk_dynamodb::types::AttributeValue;
use shared::aws::dedup::DynamoDbDedup;
use shared::aws::secrets::JsonSecret;
use shared::aws::sqs::SqsWorkQueue;
use shared::telemetry::Metrics;
use slack_gateway::ingress::Ingress;
use tests::fault_proxy::{Fault, FaultProxy};
use tests::harness::{emulators, Gateway};
use tests::resources::{drain_queue, TEST_SIGNING_SECRET};
use tests::slack_events::signed;

/// The gateway's resources and worker on moto, and an ingress whose dedupe table and work queue
/// are reached through a fault proxy.
async fn gateway_behind_proxy(prefix: &str) -> (Gateway, Ingress, FaultProxy) {
    let gw = Gateway::new(prefix).await;
    let proxy = FaultProxy::start(&emulators().moto.endpoint()).expect("fault proxy");
    let faulty = proxy.sdk_config();
    let (metrics, _) = Metrics::capture("BedrockUsage");
    let ingress = Ingress::new(
        Arc::new(JsonSecret::new(aws_sdk_secretsmanager::Client::new(&gw.sdk), &gw.resources.secret_arn)),
        Arc::new(DynamoDbDedup::new(aws_sdk_dynamodb::Client::new(&faulty), &gw.resources.dedup_table)),
        Arc::new(SqsWorkQueue::new(aws_sdk_sqs::Client::new(&faulty), &gw.resources.work_queue_url)),
        metrics,
    )
    .await
    .expect("ingress");
    (gw, ingress, proxy)
}

fn as_retry(req: &LambdaFunctionUrlRequest, n: u32) -> LambdaFunctionUrlRequest {
    let mut r = req.clone();
    r.headers.insert("x-slack-retry-num", n.to_string().parse().expect("header"));
    r.headers.insert("x-slack-retry-reason", "http_error".parse().expect("header"));
    r
}

fn status(r: &LambdaFunctionUrlResponse) -> i64 {
    r.status_code
}

fn answers(channel: &str) -> usize {
    emulators().slack.calls_for(channel).iter().filter(|c| c.method == "chat.postMessage").count()
}

/// Turn records of the thread `ts` in `channel` (the conversations table).
async fn turns(gw: &Gateway, channel: &str, ts: &str) -> usize {
    aws_sdk_dynamodb::Client::new(&gw.sdk)
        .query()
        .table_name(&gw.resources.conversations_table)
        .key_condition_expression("pk = :pk AND begins_with(sk, :turn)")
        .expression_attribute_values(":pk", AttributeValue::S(format!("THREAD#T0001#{channel}#{ts}")))
        .expression_attribute_values(":turn", AttributeValue::S("TURN#".into()))
        .send()
        .await
        .expect("query turns")
        .count as usize
}

/// Slack's first delivery meets a failing SendMessage; then (Slack's retries) it works again.
async fn fail_first_delivery_then_retry(release_denied: bool, tag: &str) {
    let channel = format!("C{}", tag.to_uppercase());
    let (gw, ingress, proxy) = gateway_behind_proxy(tag).await;
    if release_denied {
        proxy.inject(Fault::access_denied("DeleteItem", "dynamodb:DeleteItem"));
    }
    proxy.inject(Fault::error("SendMessage", 500, "InternalError", "We encountered an internal error."));
    let (req, body) = signed("slack/app_mention", TEST_SIGNING_SECRET, tag, &channel);

    let first = ingress.handle(&req).await;
    assert!(status(&first) >= 500, "a message that was not queued must not be acknowledged: {first:?}");
    let (sends, failed) = proxy.seen("SendMessage");
    assert!(sends >= 1 && failed == sends, "SendMessage was tried and failed: {sends} {failed}");
    proxy.heal("SendMessage");

    // Slack retries nearly immediately, then after 1 and 5 minutes: the first retry that gets a
    // 2xx ends it. Every further delivery must be a duplicate.
    let mut acked_at = None;
    for n in 1..=3 {
        let resp = ingress.handle(&as_retry(&req, n)).await;
        if status(&resp) == 200 {
            acked_at = Some(n);
            break;
        }
        assert!(status(&resp) >= 500, "retry {n}: {resp:?}");
    }
    let acked_at = acked_at.expect("one of Slack's retries must be acknowledged");
    assert_eq!(acked_at, 1, "with the claim released or lapsed, Slack's first retry is queued");
    assert_eq!(status(&ingress.handle(&as_retry(&req, 2)).await), 200, "later retries are duplicates");

    let queued = drain_queue(&gw.sdk, &gw.resources.work_queue_url).await.expect("drain");
    assert_eq!(queued.len(), 1, "the message was queued once (release denied: {release_denied})");
    let mut event = aws_lambda_events::event::sqs::SqsEvent::default();
    event.records = queued;
    let resp = gw.worker.handle_batch(event, None).await;
    assert!(resp.batch_item_failures.is_empty(), "{:?}", resp.batch_item_failures);
    assert_eq!(answers(&channel), 1, "the user gets one answer");
    let ts = body["event"]["ts"].as_str().expect("ts");
    assert_eq!(turns(&gw, &channel, ts).await, 1, "one conversation turn");
    assert_eq!(drain_queue(&gw.sdk, &gw.resources.usage_queue_url).await.expect("usage").len(), 1, "one usage record");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_enqueue_with_release_denied_still_lets_slacks_retry_through() {
    fail_first_delivery_then_retry(true, "enqdenied").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_enqueue_releases_its_claim_for_slacks_retry() {
    fail_first_delivery_then_retry(false, "enqrelease").await;
}

/// The message and app_mention twins arrive almost together: while one is being queued the
/// other waits for it instead of costing a Slack retry, and the message is queued once.
#[tokio::test(flavor = "multi_thread")]
async fn twins_arriving_together_are_both_acknowledged_and_queued_once() {
    let tag = "twins";
    let channel = "CTWINS";
    let (gw, ingress, proxy) = gateway_behind_proxy(tag).await;
    proxy.inject(Fault::delay("SendMessage", Duration::from_millis(400)).times(1));
    let (first, body) = signed("slack/app_mention", TEST_SIGNING_SECRET, tag, channel);
    let mut twin_body = body.clone();
    twin_body["event_id"] = serde_json::json!(format!("EvTWIN{tag}"));
    let twin = tests::slack_events::request(&tests::slack_events::with_body(
        tests::slack_events::fixture("slack/app_mention"),
        &twin_body,
        TEST_SIGNING_SECRET,
        chrono::Utc::now().timestamp(),
    ));
    let ingress = Arc::new(ingress);
    let a = tokio::spawn({
        let ingress = Arc::clone(&ingress);
        async move { ingress.handle(&first).await }
    });
    // The second arrives while the first is inside its (delayed) SendMessage.
    tokio::time::sleep(Duration::from_millis(150)).await;
    let b = ingress.handle(&twin).await;
    let a = a.await.expect("first");
    assert_eq!((status(&a), status(&b)), (200, 200), "both twins acknowledged: {a:?} {b:?}");
    assert_eq!(drain_queue(&gw.sdk, &gw.resources.work_queue_url).await.expect("drain").len(), 1);
}

/// A delivery that crashes (or times out) between claim and enqueue leaves a pending claim:
/// it lapses with its lease, and only its owner can confirm or release it.
#[tokio::test(flavor = "multi_thread")]
async fn a_claim_left_pending_lapses_with_its_lease_and_only_its_owner_settles_it() {
    use shared::ports::{Claim, DedupStore};
    let gw = Gateway::new("dedupelease").await;
    let store = DynamoDbDedup::new(aws_sdk_dynamodb::Client::new(&gw.sdk), &gw.resources.dedup_table);
    let lease = Duration::from_millis(300);
    assert_eq!(store.claim("evt#crash", "a", lease).await.expect("claim"), Claim::Acquired);
    assert!(matches!(store.claim("evt#crash", "b", lease).await.expect("claim"), Claim::Pending { .. }));
    // "a" crashed: neither confirmed nor released. Its lease runs out.
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(store.claim("evt#crash", "b", lease).await.expect("claim"), Claim::Acquired);
    assert!(!store.confirm("evt#crash", "a", Duration::from_secs(60)).await.expect("confirm"), "no longer a's");
    store.release("evt#crash", "a").await.expect("a release of someone else's claim is a no-op");
    assert!(store.confirm("evt#crash", "b", Duration::from_secs(60)).await.expect("confirm"));
    assert_eq!(store.claim("evt#crash", "c", lease).await.expect("claim"), Claim::Taken);
    // A confirmed claim does not lapse with the lease.
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(store.claim("evt#crash", "c", lease).await.expect("claim"), Claim::Taken);
    // A released claim is free at once.
    assert_eq!(store.claim("evt#free", "d", lease).await.expect("claim"), Claim::Acquired);
    store.release("evt#free", "d").await.expect("release");
    assert_eq!(store.claim("evt#free", "e", lease).await.expect("claim"), Claim::Acquired);
}
