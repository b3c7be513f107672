//! Slack's native streaming (chat.startStream / appendStream / stopStream): signed Slack events
//! through slack-ingress, slack-worker against the scripted agent (events/agent/slow_*.json spread
//! their chunks over seconds), and what the fake Slack saw and shows. The edited-message path
//! these turns fall back to is tests/tests/streaming.rs.
//!
//! The figures printed (calls per turn, time to first visible text) compare the two paths on the
//! same scripted turn; they are measurements on loopback, not a benchmark.

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use shared::aws::conversations::DynamoDbConversations;
use shared::domain::{ThreadRef, TurnStatus};
use shared::ports::{ConversationStore, StreamContent, StreamTarget, TurnRecord};
use slack_gateway::stream::{NativeMode, StreamSettings, MORE_MARKER, PLACEHOLDER};
use tests::fake_slack::{Fault, RecordedCall};
use tests::harness::{emulators, Gateway};
use tests::resources::TEST_SIGNING_SECRET;
use tests::slack_events::{body_of, fixture, request, with_body};

const INTERVAL: Duration = Duration::from_millis(1200);
const DELAY: Duration = Duration::from_millis(600);
/// The app_mention fixture's message ts (its thread) and author.
const MENTION_TS: &str = "1713534720.001234";
const ASKER: &str = "U024BE7LH";
const SLOW: &str = "Walk me through the laptop migration step by step";
const FAST: &str = "How do I get access to the staging VPN?";
const STREAM_METHODS: [&str; 3] = ["chat.startStream", "chat.appendStream", "chat.stopStream"];

async fn gateway(prefix: &str, native: NativeMode) -> Gateway {
    let mut gw = Gateway::new(prefix).await;
    gw.worker.settings.stream = StreamSettings { enabled: true, delay: DELAY, update_interval: INTERVAL, native };
    gw
}

/// Sends a mention with `text` through the ingress and runs the worker; returns when it started.
async fn ask(gw: &Gateway, tag: &str, channel: &str, text: &str) -> Instant {
    let event = fixture("slack/app_mention");
    let mut body = body_of(&event);
    body["event_id"] = json!(format!("Ev{tag}"));
    body["event"]["channel"] = json!(channel);
    body["event"]["text"] = json!(format!("<@UBOT> {text}"));
    let signed = with_body(event, &body, TEST_SIGNING_SECRET, chrono::Utc::now().timestamp());
    let started = Instant::now();
    assert_eq!(gw.ingress.handle(&request(&signed)).await.status_code, 200);
    let resp = gw.run_worker().await;
    assert!(resp.batch_item_failures.is_empty(), "worker failures: {:?}", resp.batch_item_failures);
    started
}

fn calls(channel: &str) -> Vec<(RecordedCall, Instant)> {
    emulators().slack.timed_calls_in(channel)
}

fn of<'a>(calls: &'a [(RecordedCall, Instant)], method: &str) -> Vec<&'a (RecordedCall, Instant)> {
    calls.iter().filter(|(c, _)| c.method == method).collect()
}

/// The Slack calls that write the reply (posts, edits, stream calls), by method.
fn reply_calls(all: &[(RecordedCall, Instant)]) -> Vec<&str> {
    all.iter()
        .map(|(c, _)| c.method.as_str())
        .filter(|m| STREAM_METHODS.contains(m) || *m == "chat.postMessage" || *m == "chat.update")
        .collect()
}

/// What a streaming call carried as Markdown.
fn markdown(c: &RecordedCall) -> String {
    let mut text = c.param("markdown_text").to_string();
    for chunk in c.params.get("chunks").and_then(Value::as_array).into_iter().flatten() {
        text.push_str(chunk["text"].as_str().unwrap_or_default());
    }
    text
}

fn message(channel: &str, ts: &str) -> Value {
    emulators().slack.message(channel, ts).unwrap_or_else(|| panic!("no message {ts} in {channel}"))
}

fn thread(channel: &str) -> ThreadRef {
    ThreadRef { team_id: "T0001".into(), channel_id: channel.into(), thread_ts: MENTION_TS.into() }
}

async fn stored_turn(gw: &Gateway, channel: &str) -> TurnRecord {
    DynamoDbConversations::new(aws_sdk_dynamodb::Client::new(&gw.sdk), &gw.resources.conversations_table)
        .turn(&thread(channel), MENTION_TS)
        .await
        .expect("conversations table")
        .expect("turn recorded")
}

#[tokio::test]
async fn a_slow_turn_streams_natively_in_one_message_within_the_calls_of_the_edited_one() {
    let gw = gateway("nativeslow", NativeMode::Auto).await;
    let channel = "CNATIVESLOW";
    let asked = ask(&gw, "ns", channel, SLOW).await;
    let all = calls(channel);
    assert_eq!(reply_calls(&all).iter().filter(|m| **m == "chat.postMessage" || **m == "chat.update").count(), 0);
    let (start, started_at) = of(&all, "chat.startStream").first().copied().cloned().expect("a stream");
    assert_eq!(of(&all, "chat.startStream").len(), 1, "{all:#?}");
    assert_eq!(of(&all, "chat.stopStream").len(), 1, "{all:#?}");
    assert_eq!((start.param("thread_ts"), start.param("recipient_user_id")), (MENTION_TS, ASKER));
    assert_eq!(start.param("recipient_team_id"), "T0001", "required in channels");
    let appends = of(&all, "chat.appendStream");
    // About 4 s of text, appended at most every 1.2 s.
    assert!(appends.len() <= 4, "{} appends: {appends:#?}", appends.len());
    let times: Vec<Instant> = std::iter::once(started_at).chain(appends.iter().map(|(_, t)| *t)).collect();
    for gap in times.windows(2).map(|w| w[1] - w[0]) {
        assert!(gap >= INTERVAL.mul_f64(0.9), "appends {gap:?} apart");
    }

    // What the user sees: the calls' Markdown, assembled; the answer with its sources.
    let ts = of(&all, "chat.stopStream")[0].0.param("ts").to_string();
    let shown = message(channel, &ts);
    assert_eq!(shown["streaming_state"], "completed");
    let sent: String =
        all.iter().filter(|(c, _)| STREAM_METHODS.contains(&c.method.as_str())).map(|(c, _)| markdown(c)).collect();
    assert_eq!(shown["text"].as_str(), Some(sent.as_str()));
    assert!(sent.starts_with("Here is the laptop migration, **step by step**"), "Markdown, not mrkdwn: {sent}");
    assert!(sent.contains("wiped after 14 days") && sent.contains("**Sources**"), "{sent}");
    assert!(sent.contains("laptop-migration.pdf") && !sent.ends_with(MORE_MARKER), "{sent}");
    let turn = stored_turn(&gw, channel).await;
    assert_eq!((turn.status, turn.reply_ts.as_deref()), (TurnStatus::Answered, Some(ts.as_str())));
    // The stop puts Slack's feedback buttons under the streamed answer, as under a posted one.
    let stop = &of(&all, "chat.stopStream")[0].0;
    let buttons = stop.params["blocks"].as_array().and_then(|b| b.iter().find(|b| b["type"] == "context_actions"));
    let buttons = buttons.unwrap_or_else(|| panic!("no feedback buttons under the stream: {:?}", stop.params));
    assert_eq!(buttons["elements"][0]["type"], "feedback_buttons", "{buttons}");
    assert!(buttons["block_id"].as_str().is_some_and(|id| id.ends_with(MENTION_TS)), "{buttons}");

    // The same turn the edited-message way, for the figures.
    let old = gateway("nativeslowold", NativeMode::Off).await;
    let old_channel = "CNATIVESLOWOLD";
    let old_asked = ask(&old, "nso", old_channel, SLOW).await;
    let old_all = calls(old_channel);
    let first_text = old_all
        .iter()
        .find(|(c, _)| {
            matches!(c.method.as_str(), "chat.postMessage" | "chat.update") && c.param("text") != PLACEHOLDER
        })
        .map(|(_, t)| *t - old_asked);
    let old_bytes: usize = old_all
        .iter()
        .filter(|(c, _)| matches!(c.method.as_str(), "chat.postMessage" | "chat.update"))
        .map(|(c, _)| c.param("text").len())
        .sum();
    eprintln!(
        "native: {} calls (1 start, {} appends, 1 stop), {} bytes of text sent, first text after {:?}; \
         edited message: {} calls ({:?}), {} bytes of text sent, first text after {:?}",
        reply_calls(&all).len(),
        appends.len(),
        sent.len(),
        started_at - asked,
        reply_calls(&old_all).len(),
        reply_calls(&old_all),
        old_bytes,
        first_text
    );
    assert!(reply_calls(&all).len() <= reply_calls(&old_all).len() + 1);
}

#[tokio::test]
async fn a_fast_turn_posts_once_without_a_stream() {
    let gw = gateway("nativefast", NativeMode::On).await;
    let channel = "CNATIVEFAST";
    ask(&gw, "nf", channel, FAST).await;
    let all = calls(channel);
    assert_eq!(reply_calls(&all), vec!["chat.postMessage"], "{all:#?}");
}

#[tokio::test]
async fn a_refused_stream_falls_back_to_the_edited_message_once_and_auto_stops_trying() {
    let gw = gateway("nativerefused", NativeMode::Auto).await;
    let channel = "CNATIVEREFUSED";
    emulators().slack.refuse_streaming(channel, "not_allowed_token_type");
    ask(&gw, "nr", channel, SLOW).await;
    let all = calls(channel);
    let starts = of(&all, "chat.startStream");
    assert_eq!(starts.len(), 1, "tried once: {all:#?}");
    assert!(starts[0].0.fault.is_some());
    assert!(of(&all, "chat.appendStream").is_empty() && of(&all, "chat.stopStream").is_empty(), "{all:#?}");
    let posts = of(&all, "chat.postMessage");
    assert_eq!(posts.len(), 1, "today's early message: {all:#?}");
    let ts = of(&all, "chat.update").last().map(|(c, _)| c.param("ts").to_string()).expect("edits");
    let text = message(channel, &ts)["text"].as_str().unwrap_or_default().to_string();
    assert!(text.contains("wiped after 14 days") && text.contains("*Sources*"), "mrkdwn answer: {text}");
    assert_eq!(stored_turn(&gw, channel).await.reply_ts.as_deref(), Some(ts.as_str()));

    // The workspace refused the token type: the container's next turns do not try again.
    let next = "CNATIVEREFUSED2";
    ask(&gw, "nr2", next, SLOW).await;
    let next_calls = calls(next);
    assert!(of(&next_calls, "chat.startStream").is_empty(), "{next_calls:#?}");
    assert_eq!(of(&next_calls, "chat.postMessage").len(), 1);
}

#[tokio::test]
async fn a_channel_refusal_with_streaming_on_falls_back_for_that_turn_only() {
    let gw = gateway("nativechannel", NativeMode::On).await;
    let channel = "CNATIVECHAN";
    emulators().slack.refuse_streaming(channel, "channel_type_not_supported");
    ask(&gw, "nc", channel, SLOW).await;
    assert_eq!(of(&calls(channel), "chat.startStream").len(), 1);
    let other = "CNATIVECHAN2";
    ask(&gw, "nc2", other, SLOW).await;
    let other_calls = calls(other);
    assert_eq!(of(&other_calls, "chat.startStream").len(), 1, "still tried elsewhere");
    assert!(of(&other_calls, "chat.postMessage").is_empty(), "{other_calls:#?}");
}

#[tokio::test]
async fn an_append_slack_refuses_ends_with_the_full_answer_once() {
    let gw = gateway("nativecut", NativeMode::On).await;
    let channel = "CNATIVECUT";
    let slack = &emulators().slack;
    slack.fail_next("chat.appendStream", Some(channel), Fault::SlackError("message_not_in_streaming_state".into()));
    ask(&gw, "nc", channel, SLOW).await;
    let all = calls(channel);
    assert_eq!(of(&all, "chat.startStream").len(), 1);
    assert_eq!(of(&all, "chat.appendStream").len(), 1, "no appends after the refusal: {all:#?}");
    assert!(of(&all, "chat.postMessage").is_empty(), "{all:#?}");
    let ts = of(&all, "chat.startStream")[0].0.clone();
    let stream_ts = of(&all, "chat.stopStream").first().map(|(c, _)| c.param("ts").to_string()).expect("closed");
    let updates = of(&all, "chat.update");
    assert_eq!(updates.len(), 1, "the answer once: {all:#?}");
    assert_eq!(updates[0].0.param("ts"), stream_ts);
    let text = message(channel, &stream_ts)["text"].as_str().unwrap_or_default().to_string();
    assert!(text.starts_with("Here is the laptop migration, *step by step*"), "{text}");
    assert!(text.contains("wiped after 14 days") && text.contains("*Sources*"), "{text}");
    let turn = stored_turn(&gw, channel).await;
    assert_eq!(turn.reply_ts.as_deref(), Some(stream_ts.as_str()), "{ts:?}");
}

#[tokio::test]
async fn a_redelivery_after_a_crash_mid_stream_finishes_that_message_without_a_second_stream() {
    let gw = gateway("nativeresume", NativeMode::On).await;
    let channel = "CNATIVERESUME";
    // An earlier delivery started a stream, recorded it, and died.
    let target = StreamTarget { channel, thread_ts: MENTION_TS, recipient_user_id: ASKER, recipient_team_id: "T0001" };
    let earlier =
        gw.worker.chat.start_stream(&target, &StreamContent::markdown("Let me check the VPN")).await.expect("stream");
    let store = DynamoDbConversations::new(aws_sdk_dynamodb::Client::new(&gw.sdk), &gw.resources.conversations_table);
    let record =
        TurnRecord::received(thread(channel), MENTION_TS, "Evnr", ASKER, chrono::Utc::now().timestamp_millis());
    store.begin_turn(&record).await.expect("begin");
    store.record_reply(&record.thread, MENTION_TS, &earlier).await.expect("record");

    ask(&gw, "nr", channel, FAST).await;
    let all = calls(channel);
    assert_eq!(of(&all, "chat.startStream").len(), 1, "only the earlier delivery's: {all:#?}");
    assert!(of(&all, "chat.postMessage").is_empty(), "{all:#?}");
    let shown = message(channel, &earlier);
    assert_eq!(shown["streaming_state"], "completed", "the open stream was closed");
    assert!(shown["text"].as_str().is_some_and(|t| t.contains("staging VPN")), "{shown}");
    let turn = stored_turn(&gw, channel).await;
    assert_eq!((turn.status, turn.reply_ts.as_deref()), (TurnStatus::Answered, Some(earlier.as_str())));
}
