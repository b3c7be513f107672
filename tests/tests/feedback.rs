//! Feedback end to end: a signed reaction event through slack-ingress and slack-worker (real
//! adapters on moto), stored with the turn, streamed by Firehose into S3 under feedback/, and
//! counted into SatisfactionScore by metrics-publisher reading the same table.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use aws_sdk_dynamodb::types::AttributeValue;
use metrics_publisher::cloudwatch::{MetricDatum, MetricSink};
use metrics_publisher::handler::MetricsPublisher;
use metrics_publisher::kpi::KpiSettings;
use serde_json::{json, Value};
use shared::aws::conversations::DynamoDbConversations;
use tests::harness::{Gateway, AGENT_ID};
use tests::resources::{read_objects, TEST_SIGNING_SECRET};
use tests::slack_events::{body_of, fixture, request, with_body};

const THREAD_TS: &str = "1713534720.001234";

/// Asks a question in `channel` (a fresh thread) and returns the bot answer's ts.
async fn ask(gw: &Gateway, tag: &str, channel: &str, text: &str) -> String {
    let event = fixture("slack/app_mention");
    let mut body = body_of(&event);
    body["event_id"] = json!(format!("Ev{tag}"));
    body["event"]["channel"] = json!(channel);
    body["event"]["text"] = json!(format!("<@UBOT> {text}"));
    let req = request(&with_body(event, &body, TEST_SIGNING_SECRET, chrono::Utc::now().timestamp()));
    assert_eq!(gw.ingress.handle(&req).await.status_code, 200);
    let resp = gw.run_worker().await;
    assert!(resp.batch_item_failures.is_empty(), "worker failures: {:?}", resp.batch_item_failures);
    let turn = turn_item(gw, channel).await;
    turn.get("reply_ts").and_then(|v| v.as_s().ok()).cloned().expect("the turn has a reply ts")
}

/// Sends a reaction event through ingress and worker; returns the worker's failures.
async fn react(gw: &Gateway, tag: &str, channel: &str, item_ts: &str, reaction: &str, added: bool, user: &str) {
    let event = fixture("slack/reaction_added");
    let mut body = body_of(&event);
    body["event_id"] = json!(format!("Ev{tag}"));
    body["event"]["type"] = json!(if added { "reaction_added" } else { "reaction_removed" });
    body["event"]["user"] = json!(user);
    body["event"]["reaction"] = json!(reaction);
    body["event"]["item"]["channel"] = json!(channel);
    body["event"]["item"]["ts"] = json!(item_ts);
    let req = request(&with_body(event, &body, TEST_SIGNING_SECRET, chrono::Utc::now().timestamp()));
    assert_eq!(gw.ingress.handle(&req).await.status_code, 200);
    let resp = gw.run_worker().await;
    assert!(resp.batch_item_failures.is_empty(), "worker failures: {:?}", resp.batch_item_failures);
}

async fn turn_item(gw: &Gateway, channel: &str) -> std::collections::HashMap<String, AttributeValue> {
    aws_sdk_dynamodb::Client::new(&gw.sdk)
        .get_item()
        .table_name(&gw.resources.conversations_table)
        .key("pk", AttributeValue::S(format!("THREAD#T0001#{channel}#{THREAD_TS}")))
        .key("sk", AttributeValue::S(format!("TURN#{THREAD_TS}")))
        .send()
        .await
        .expect("get")
        .item
        .expect("turn record")
}

async fn feedback_items(gw: &Gateway, channel: &str) -> Vec<std::collections::HashMap<String, AttributeValue>> {
    aws_sdk_dynamodb::Client::new(&gw.sdk)
        .query()
        .table_name(&gw.resources.conversations_table)
        .key_condition_expression("pk = :pk AND begins_with(sk, :f)")
        .expression_attribute_values(":pk", AttributeValue::S(format!("THREAD#T0001#{channel}#{THREAD_TS}")))
        .expression_attribute_values(":f", AttributeValue::S("FEEDBACK#".into()))
        .send()
        .await
        .expect("query")
        .items
        .unwrap_or_default()
}

fn counter(item: &std::collections::HashMap<String, AttributeValue>, name: &str) -> i64 {
    item.get(name).and_then(|v| v.as_n().ok()).and_then(|n| n.parse().ok()).unwrap_or(0)
}

async fn feedback_events(gw: &Gateway) -> Vec<Value> {
    read_objects(&gw.sdk, &gw.resources.bucket, "feedback/")
        .await
        .expect("s3")
        .iter()
        .flat_map(|(_, text)| {
            text.lines().map(|l| serde_json::from_str::<Value>(l).expect("NDJSON")).collect::<Vec<_>>()
        })
        .collect()
}

#[derive(Default)]
struct Recorded(Mutex<Vec<MetricDatum>>);

#[async_trait]
impl MetricSink for Recorded {
    async fn put(&self, datums: &[MetricDatum], _ts: i64) -> shared::Result<()> {
        self.0.lock().unwrap().extend_from_slice(datums);
        Ok(())
    }
}

/// Runs metrics-publisher over the gateway's table now; returns name -> value (no dimensions).
async fn publish(gw: &Gateway) -> Vec<MetricDatum> {
    let sink = Arc::new(Recorded::default());
    let p = MetricsPublisher {
        conversations: Arc::new(DynamoDbConversations::new(
            aws_sdk_dynamodb::Client::new(&gw.sdk),
            &gw.resources.conversations_table,
        )),
        sink: sink.clone(),
        settings: KpiSettings::default(),
        sweeper: None,
        usage_queue: None,
    };
    p.run(chrono::Utc::now().timestamp_millis()).await.expect("publisher run");
    let out = sink.0.lock().unwrap().clone();
    out
}

/// (positive, negative) of today's day x agent feedback rollup in the usage table, which the
/// daily report and the admin API read.
async fn feedback_rollup(gw: &Gateway) -> (i64, i64) {
    let day = chrono::Utc::now().date_naive();
    let item = aws_sdk_dynamodb::Client::new(&gw.sdk)
        .get_item()
        .table_name(&gw.resources.usage_table)
        .key("pk", AttributeValue::S(shared::rollups::day_pk(day)))
        .key("sk", AttributeValue::S(shared::rollups::feedback_sk(AGENT_ID)))
        .consistent_read(true)
        .send()
        .await
        .expect("get feedback rollup")
        .item
        .unwrap_or_default();
    (counter(&item, "positive"), counter(&item, "negative"))
}

fn value(datums: &[MetricDatum], name: &str) -> Option<f64> {
    datums.iter().find(|d| d.name == name && d.dimensions.is_empty()).map(|d| d.value)
}

#[tokio::test]
async fn thumbs_on_a_bot_answer_become_feedback_and_removal_takes_it_back() {
    let gw = Gateway::new("fbthumbs").await;
    let channel = "CFBTHUMBS";
    let reply_ts = ask(&gw, "fbq1", channel, "What is our password rotation policy?").await;

    react(&gw, "fbr1", channel, &reply_ts, "+1", true, "UFAN1").await;
    react(&gw, "fbr2", channel, &reply_ts, "thumbsdown::skin-tone-3", true, "UCRITIC").await;
    react(&gw, "fbr3", channel, &reply_ts, "thumbsup", true, "UFAN2").await;

    let turn = turn_item(&gw, channel).await;
    assert_eq!((counter(&turn, "feedback_positive"), counter(&turn, "feedback_negative")), (2, 1));
    assert_eq!(feedback_rollup(&gw).await, (2, 1), "the day x agent rollup the reports read");
    let items = feedback_items(&gw, channel).await;
    assert_eq!(items.len(), 3);
    let critic =
        items.iter().find(|i| i["user_id"].as_s().ok().map(String::as_str) == Some("UCRITIC")).expect("critic");
    assert_eq!(critic["reaction"].as_s().ok().map(String::as_str), Some("thumbsdown"));
    assert_eq!(critic["sentiment"].as_s().ok().map(String::as_str), Some("negative"));

    let events = feedback_events(&gw).await;
    assert_eq!(events.len(), 3, "{events:?}");
    let ev = events.iter().find(|e| e["user_id"] == "UCRITIC").expect("critic's event");
    let turn_event_id = turn["event_id"].as_s().expect("turn event id");
    assert_eq!(ev["action"], "added");
    assert_eq!(ev["sentiment"], "negative");
    assert_eq!(ev["reaction"], "thumbsdown");
    assert_eq!(ev["turn_event_id"], json!(turn_event_id));
    assert_eq!(ev["reply_ts"], json!(reply_ts));
    assert_eq!((ev["channel_id"].as_str(), ev["thread_id"].as_str()), (Some(channel), Some(THREAD_TS)));
    assert_eq!(ev["agent_id"], AGENT_ID);
    assert_eq!(ev["outcome"], "answered");
    assert_eq!(ev["schema_version"], 1);

    let m = publish(&gw).await;
    assert_eq!(value(&m, "FeedbackCount"), Some(3.0));
    let score = value(&m, "SatisfactionScore").expect("score");
    assert!((score - 200.0 / 3.0).abs() < 1e-9, "{score}");
    assert_eq!(value(&m, "KnowledgeBaseGapRate"), Some(0.0), "the kb_lookup script consults a knowledge base");

    // The critic changes their mind.
    react(&gw, "fbr4", channel, &reply_ts, "thumbsdown::skin-tone-3", false, "UCRITIC").await;
    let turn = turn_item(&gw, channel).await;
    assert_eq!((counter(&turn, "feedback_positive"), counter(&turn, "feedback_negative")), (2, 0));
    assert_eq!(feedback_rollup(&gw).await, (2, 0));
    assert_eq!(feedback_items(&gw, channel).await.len(), 2);
    let events = feedback_events(&gw).await;
    assert!(events.iter().any(|e| e["user_id"] == "UCRITIC" && e["action"] == "removed" && e["event_id"] == "Evfbr4"));
    let m = publish(&gw).await;
    assert_eq!(value(&m, "FeedbackCount"), Some(2.0));
    assert_eq!(value(&m, "SatisfactionScore"), Some(100.0));
}

#[tokio::test]
async fn a_redelivered_reaction_counts_once() {
    let gw = Gateway::new("fbredeliver").await;
    let channel = "CFBREDELIVER";
    let reply_ts = ask(&gw, "fbq2", channel, "How do I reset my laptop?").await;
    react(&gw, "fbd1", channel, &reply_ts, "-1", true, "UONCE").await;
    // The same work item again, as SQS redelivers after a timeout (the ingress deduped Slack's
    // retry, so this can only come from the queue).
    let item = json!({"kind": "reaction", "event_id": "Evfbd1", "team_id": "T0001", "user_id": "UONCE",
        "reaction": "-1", "added": true, "channel_id": channel, "item_ts": reply_ts, "item_user": "UBOT",
        "received_at_ms": chrono::Utc::now().timestamp_millis()});
    let mut msg = aws_lambda_events::event::sqs::SqsMessage::default();
    msg.message_id = Some("redelivered".into());
    msg.body = Some(item.to_string());
    let mut event = aws_lambda_events::event::sqs::SqsEvent::default();
    event.records = vec![msg];
    assert!(gw.worker.handle_batch(event, None).await.batch_item_failures.is_empty());

    let turn = turn_item(&gw, channel).await;
    assert_eq!((counter(&turn, "feedback_positive"), counter(&turn, "feedback_negative")), (0, 1));
    assert_eq!(feedback_rollup(&gw).await, (0, 1), "counted once in the rollup too");
    assert_eq!(feedback_items(&gw, channel).await.len(), 1);
    let m = publish(&gw).await;
    assert_eq!(value(&m, "FeedbackCount"), Some(1.0));
    assert_eq!(value(&m, "SatisfactionScore"), Some(0.0));
    assert_eq!(value(&m, "KnowledgeBaseGapRate"), Some(100.0), "the plain answer consulted no knowledge base");
}

#[tokio::test]
async fn reactions_that_are_not_feedback_on_a_bot_answer_are_ignored_without_error() {
    let gw = Gateway::new("fbignored").await;
    let channel = "CFBIGNORED";
    let reply_ts = ask(&gw, "fbq3", channel, "Where is the VPN guide?").await;

    // Thumbs up on the user's own question, on an unknown message, and a non-feedback emoji on
    // the answer: each goes through without a failure and leaves nothing behind.
    react(&gw, "fbi1", channel, THREAD_TS, "+1", true, "UOTHER").await;
    react(&gw, "fbi2", channel, "1999999999.000100", "-1", true, "UOTHER").await;
    react(&gw, "fbi3", channel, &reply_ts, "tada", true, "UOTHER").await;
    react(&gw, "fbi4", "COTHERCHANNEL", &reply_ts, "+1", true, "UOTHER").await;
    // Removing a reaction that was never recorded is not an error either.
    react(&gw, "fbi5", channel, &reply_ts, "tada", false, "UOTHER").await;

    let turn = turn_item(&gw, channel).await;
    assert!(!turn.contains_key("feedback_positive") && !turn.contains_key("feedback_negative"));
    assert!(feedback_items(&gw, channel).await.is_empty());
    assert!(feedback_events(&gw).await.is_empty());
    let m = publish(&gw).await;
    assert_eq!(value(&m, "FeedbackCount"), Some(0.0));
    assert_eq!(value(&m, "SatisfactionScore"), None, "no feedback, no score");
}
