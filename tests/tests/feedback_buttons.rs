//! Feedback buttons end to end: every final answer carries Slack's feedback buttons; a press
//! (a signed, form-encoded block_actions payload) goes through slack-ingress and slack-worker
//! (real adapters on moto) into the same table items, counters, rollup and Firehose stream as a
//! reaction, counted once however often it arrives, with an ephemeral thanks to the presser.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use metrics_publisher::cloudwatch::{MetricDatum, MetricSink};
use metrics_publisher::handler::MetricsPublisher;
use metrics_publisher::kpi::KpiSettings;
use shared::aws::conversations::DynamoDbConversations;

use aws_sdk_dynamodb::types::AttributeValue;
use serde_json::{json, Value};
use tests::harness::{emulators, Gateway, AGENT_ID};
use tests::resources::{read_objects, TEST_SIGNING_SECRET};
use tests::slack_events::{body_of, fixture, interaction_payload, request, signed_interaction, with_body};

/// The question's ts in events/slack/app_mention.json: the thread and the turn.
const THREAD_TS: &str = "1713534720.001234";

/// Asks `text` in `channel` (a fresh thread); returns the turn's reply ts.
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

/// The feedback block of the message `ts` as Slack shows it, if it has one.
fn buttons_of(channel: &str, ts: &str) -> Option<Value> {
    let blocks = emulators().slack.message_blocks(channel, ts)?;
    blocks.as_array()?.iter().find(|b| b["type"] == "context_actions").cloned()
}

/// The fixture's press, moved onto the message `ts` in `channel` (its block id taken from the
/// message, as Slack sends it), by `user`, `value`, at `action_ts`.
fn press_payload(channel: &str, ts: &str, user: &str, value: &str, action_ts: &str) -> Value {
    let mut p = interaction_payload(&fixture("slack/block_actions_feedback"));
    let block_id = buttons_of(channel, ts).map(|b| b["block_id"].clone()).unwrap_or(json!("Xy1"));
    p["user"]["id"] = json!(user);
    p["channel"]["id"] = json!(channel);
    p["container"]["channel_id"] = json!(channel);
    p["container"]["message_ts"] = json!(ts);
    p["message"]["ts"] = json!(ts);
    p["actions"][0]["block_id"] = block_id;
    p["actions"][0]["value"] = json!(value);
    p["actions"][0]["action_ts"] = json!(action_ts);
    p
}

/// Sends a press through the ingress (checking the empty 200) and the worker.
async fn press(gw: &Gateway, payload: &Value) {
    let resp =
        gw.ingress.handle(&signed_interaction(payload, TEST_SIGNING_SECRET, chrono::Utc::now().timestamp())).await;
    assert_eq!((resp.status_code, resp.body.as_deref()), (200, Some("")), "acknowledged with an empty 200");
    let resp = gw.run_worker().await;
    assert!(resp.batch_item_failures.is_empty(), "worker failures: {:?}", resp.batch_item_failures);
}

async fn turn_item(gw: &Gateway, channel: &str) -> HashMap<String, AttributeValue> {
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

async fn feedback_items(gw: &Gateway, channel: &str) -> Vec<HashMap<String, AttributeValue>> {
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

fn n(item: &HashMap<String, AttributeValue>, name: &str) -> i64 {
    item.get(name).and_then(|v| v.as_n().ok()).and_then(|n| n.parse().ok()).unwrap_or(0)
}

fn s<'a>(item: &'a HashMap<String, AttributeValue>, name: &str) -> &'a str {
    item.get(name).and_then(|v| v.as_s().ok()).map(String::as_str).unwrap_or_default()
}

async fn counters(gw: &Gateway, channel: &str) -> (i64, i64) {
    let turn = turn_item(gw, channel).await;
    (n(&turn, "feedback_positive"), n(&turn, "feedback_negative"))
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

/// (positive, negative) of today's day x agent feedback rollup (the reports and admin API).
async fn feedback_rollup(gw: &Gateway) -> (i64, i64) {
    let item = aws_sdk_dynamodb::Client::new(&gw.sdk)
        .get_item()
        .table_name(&gw.resources.usage_table)
        .key("pk", AttributeValue::S(shared::rollups::day_pk(chrono::Utc::now().date_naive())))
        .key("sk", AttributeValue::S(shared::rollups::feedback_sk(AGENT_ID)))
        .consistent_read(true)
        .send()
        .await
        .expect("get feedback rollup")
        .item
        .unwrap_or_default();
    (n(&item, "positive"), n(&item, "negative"))
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

/// metrics-publisher's figure `name` (no dimensions) over the gateway's table now.
async fn published(gw: &Gateway, name: &str) -> Option<f64> {
    let sink = Arc::new(Recorded::default());
    let conversations =
        DynamoDbConversations::new(aws_sdk_dynamodb::Client::new(&gw.sdk), &gw.resources.conversations_table);
    let p = MetricsPublisher {
        conversations: Arc::new(conversations),
        sink: sink.clone(),
        settings: KpiSettings::default(),
        sweeper: None,
        usage_queue: None,
    };
    p.run(chrono::Utc::now().timestamp_millis()).await.expect("publisher run");
    let datums = sink.0.lock().unwrap().clone();
    datums.iter().find(|d| d.name == name && d.dimensions.is_empty()).map(|d| d.value)
}

fn ephemerals(channel: &str) -> Vec<(String, String, String)> {
    emulators()
        .slack
        .ephemerals(channel)
        .iter()
        .map(|c| (c.param("user").to_string(), c.param("thread_ts").to_string(), c.param("text").to_string()))
        .collect()
}

#[tokio::test]
async fn an_answer_carries_the_buttons_and_a_press_is_recorded_like_a_reaction() {
    let gw = Gateway::new("fbbuttons").await;
    let channel = "CFBBUTTONS";
    let reply_ts = ask(&gw, "fbbq1", channel, "What is our password rotation policy?").await;

    let block = buttons_of(channel, &reply_ts).expect("the answer ends with the feedback buttons");
    let blocks = emulators().slack.message_blocks(channel, &reply_ts).expect("blocks");
    assert_eq!(blocks.as_array().and_then(|b| b.last()), Some(&block), "after the answer and its sources");
    let buttons = &block["elements"][0];
    assert_eq!(buttons["type"], "feedback_buttons");
    assert_eq!(buttons["action_id"], "answer_feedback");
    assert_eq!(
        (&buttons["positive_button"]["value"], &buttons["negative_button"]["value"]),
        (&json!("positive"), &json!("negative"))
    );
    let text = emulators().slack.posted_texts(channel).pop().expect("posted");
    assert!(text.contains("password") && !text.contains("answer_feedback"), "fallback text unchanged: {text}");

    press(&gw, &press_payload(channel, &reply_ts, "UFAN1", "positive", "1713534801.000001")).await;
    press(&gw, &press_payload(channel, &reply_ts, "UCRITIC", "negative", "1713534802.000001")).await;

    assert_eq!(counters(&gw, channel).await, (1, 1));
    assert_eq!(feedback_rollup(&gw).await, (1, 1), "the day x agent rollup the reports read");
    let items = feedback_items(&gw, channel).await;
    assert_eq!(items.len(), 2);
    let critic = items.iter().find(|i| s(i, "user_id") == "UCRITIC").expect("critic");
    assert_eq!((s(critic, "sentiment"), s(critic, "reaction")), ("negative", "button:negative"));

    let events = feedback_events(&gw).await;
    assert_eq!(events.len(), 2, "{events:?}");
    let ev = events.iter().find(|e| e["user_id"] == "UCRITIC").expect("critic's event");
    let turn = turn_item(&gw, channel).await;
    assert_eq!((ev["action"].as_str(), ev["sentiment"].as_str()), (Some("added"), Some("negative")));
    assert_eq!(ev["turn_event_id"].as_str(), Some(s(&turn, "event_id")));
    assert_eq!(ev["reply_ts"], json!(reply_ts));
    assert_eq!(ev["event_id"], "Fb-UCRITIC-1713534802.000001");

    assert_eq!(
        ephemerals(channel),
        vec![
            ("UFAN1".into(), THREAD_TS.into(), slack_gateway::worker::THANKS_POSITIVE.into()),
            ("UCRITIC".into(), THREAD_TS.into(), slack_gateway::worker::THANKS_NEGATIVE.into()),
        ]
    );
}

#[tokio::test]
async fn double_clicks_and_retries_count_once_and_the_other_thumb_replaces_the_sentiment() {
    let gw = Gateway::new("fbbclicks").await;
    let channel = "CFBBCLICKS";
    let reply_ts = ask(&gw, "fbbq2", channel, "How do I reset my laptop?").await;
    let first = press_payload(channel, &reply_ts, "UONCE", "positive", "1713534801.000001");
    press(&gw, &first).await;
    // Slack delivers the same press again (a retry), and the user clicks again.
    let mut retry = signed_interaction(&first, TEST_SIGNING_SECRET, chrono::Utc::now().timestamp());
    retry.headers.insert("x-slack-retry-num", "1".parse().expect("header"));
    assert_eq!(gw.ingress.handle(&retry).await.status_code, 200);
    assert_eq!(gw.metric_sum("DuplicateEvents", None), 1.0, "the retry is deduped at the ingress");
    press(&gw, &press_payload(channel, &reply_ts, "UONCE", "positive", "1713534803.000001")).await;
    assert_eq!(counters(&gw, channel).await, (1, 0));
    assert_eq!(feedback_rollup(&gw).await, (1, 0));
    assert_eq!(feedback_items(&gw, channel).await.len(), 1);
    assert_eq!(feedback_events(&gw).await.len(), 1);
    assert_eq!(ephemerals(channel).len(), 1, "thanked once");
    assert_eq!(published(&gw, "FeedbackCount").await, Some(1.0));
    assert_eq!(published(&gw, "SatisfactionScore").await, Some(100.0));

    // Thumbs down instead: the positive is taken back, as removing a reaction would.
    press(&gw, &press_payload(channel, &reply_ts, "UONCE", "negative", "1713534804.000001")).await;
    assert_eq!(counters(&gw, channel).await, (0, 1));
    assert_eq!(feedback_rollup(&gw).await, (0, 1));
    let items = feedback_items(&gw, channel).await;
    assert_eq!((items.len(), s(&items[0], "sentiment")), (1, "negative"));
    let actions: Vec<(String, String)> = feedback_events(&gw)
        .await
        .iter()
        .map(|e| (e["action"].as_str().unwrap_or_default().into(), e["sentiment"].as_str().unwrap_or_default().into()))
        .collect();
    for expected in [("added", "positive"), ("removed", "positive"), ("added", "negative")] {
        assert!(actions.contains(&(expected.0.into(), expected.1.into())), "{expected:?} in {actions:?}");
    }
    assert_eq!(actions.len(), 3, "{actions:?}");
    assert_eq!(ephemerals(channel).len(), 2);
    assert_eq!(published(&gw, "FeedbackCount").await, Some(1.0), "still one feedback");
    assert_eq!(published(&gw, "SatisfactionScore").await, Some(0.0));
}

#[tokio::test]
async fn bad_signatures_are_refused_and_unknown_actions_and_foreign_messages_are_drift() {
    let gw = Gateway::new("fbbbad").await;
    let channel = "CFBBBAD";
    let reply_ts = ask(&gw, "fbbq3", channel, "Where is the VPN guide?").await;
    let good = press_payload(channel, &reply_ts, "U1", "positive", "1713534801.000001");

    let forged = signed_interaction(&good, "not-the-signing-secret", chrono::Utc::now().timestamp());
    assert_eq!(gw.ingress.handle(&forged).await.status_code, 401);
    assert_eq!(gw.metric_sum("SignatureFailures", None), 1.0);

    let mut unknown = good.clone();
    unknown["actions"][0]["action_id"] = json!("approve_request");
    press(&gw, &unknown).await;
    assert_eq!(gw.metric_sum("SchemaDrift", Some(("EventType", "block_actions"))), 1.0, "counted at the ingress");

    // A message that is no bot answer: the turn lookup finds nothing.
    let foreign = press_payload(channel, "1999999999.000100", "U1", "positive", "1713534802.000001");
    press(&gw, &foreign).await;
    assert_eq!(gw.metric_sum("SchemaDrift", Some(("EventType", "block_actions"))), 2.0, "counted by the worker");

    assert_eq!(counters(&gw, channel).await, (0, 0));
    assert!(feedback_items(&gw, channel).await.is_empty());
    assert!(feedback_events(&gw).await.is_empty());
    assert!(ephemerals(channel).is_empty());
}

#[tokio::test]
async fn a_streamed_answer_gets_the_buttons_with_its_final_edit_and_a_split_one_on_its_last_part() {
    let gw = Gateway::new("fbbstream").await;
    let channel = "CFBBSTREAM";
    let reply_ts = ask(&gw, "fbbq4", channel, "Walk me through it step by step").await;
    // Streamed natively (chat.stopStream ends it) or the edited-message way (the final
    // chat.update): either way the call that ends the answer carries the buttons, and only it.
    let edits: Vec<_> = emulators()
        .slack
        .calls_for(channel)
        .into_iter()
        .filter(|c| ["chat.update", "chat.appendStream", "chat.stopStream"].contains(&c.method.as_str()))
        .collect();
    let last = edits.last().expect("the final edit or stop");
    assert_eq!(last.param("ts"), reply_ts);
    assert!(last.blocks().is_some_and(|b| b.iter().any(|b| b["type"] == "context_actions")), "{:?}", last.params);
    assert!(edits[..edits.len() - 1].iter().all(|e| e.blocks().is_none()), "progress edits are text");

    // A split answer exists on the edited-message path (a native stream holds the whole answer).
    let mut gw = gw;
    gw.worker.settings.stream.native = slack_gateway::stream::NativeMode::Off;
    let channel = "CFBBSPLIT";
    let reply_ts = ask(&gw, "fbbq5", channel, "Give me the onboarding checklist in full detail").await;
    assert!(buttons_of(channel, &reply_ts).is_none(), "not on the first part");
    let posts: Vec<_> =
        emulators().slack.calls_for(channel).into_iter().filter(|c| c.method == "chat.postMessage").collect();
    let last_part = emulators().slack.threads()[&(channel.to_string(), THREAD_TS.to_string())]
        .last()
        .and_then(|m| m["ts"].as_str().map(str::to_string))
        .expect("the last part");
    assert_ne!(last_part, reply_ts, "{posts:?}");
    assert!(buttons_of(channel, &last_part).is_some(), "the last part ends with the buttons");
    press(&gw, &press_payload(channel, &last_part, "U1", "negative", "1713534801.000001")).await;
    assert_eq!(counters(&gw, channel).await, (0, 1), "a press on the last part is feedback on the turn");
}
