//! Status while working, streaming long answers, and the queued-turn status: signed Slack events
//! through slack-ingress, slack-worker against the scripted agent (events/agent/slow_*.json spread
//! their chunks over seconds), and what the fake Slack saw, with the time of each call.
//!
//! Timing assertions are about behaviour (an edit rate bound, an acknowledgement well inside
//! Slack's 3 s), with generous margins: this is not a benchmark.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use shared::aws::conversations::DynamoDbConversations;
use shared::domain::{ThreadRef, TurnStatus};
use shared::ports::{AgentClient, AgentRequest, ChatClient, ConversationStore, TurnRecord};
use shared::slack::client::SlackWebClient;
use slack_gateway::status::{AssistantMode, QueuedStatus, StatusIndicator, StatusSettings, DEFAULT_ASSISTANT_STATUS};
use slack_gateway::stream::{NativeMode, StreamSettings, MORE_MARKER, PLACEHOLDER};
use slack_gateway::worker::APOLOGY;
use tests::fake_slack::{Fault, RecordedCall};
use tests::harness::{emulators, Gateway, AGENT_ALIAS_ID, AGENT_ID};
use tests::moto::sdk_config_for;
use tests::resources::{TEST_BOT_TOKEN, TEST_SIGNING_SECRET};
use tests::slack_events::{body_of, fixture, request, with_body};

/// Edits at most this often in these tests (Slack's floor is 1.2 s).
const INTERVAL: Duration = Duration::from_millis(1200);
/// A turn still running after this gets its early message.
const DELAY: Duration = Duration::from_millis(600);
/// The app_mention fixture's message ts (its thread).
const MENTION_TS: &str = "1713534720.001234";

async fn gateway(prefix: &str) -> Gateway {
    let mut gw = Gateway::new(prefix).await;
    // The edited-message path (tests/tests/native_streaming.rs covers Slack's streaming methods).
    gw.worker.settings.stream =
        StreamSettings { enabled: true, delay: DELAY, update_interval: INTERVAL, native: NativeMode::Off };
    gw
}

/// The signed Function URL request of `fixture` with its ids, channel and text replaced.
fn slack_request(
    fixture_name: &str,
    tag: &str,
    channel: &str,
    text: &str,
) -> (aws_lambda_events::event::lambda_function_urls::LambdaFunctionUrlRequest, Value) {
    let event = fixture(fixture_name);
    let mut body = body_of(&event);
    body["event_id"] = json!(format!("Ev{tag}"));
    body["event"]["channel"] = json!(channel);
    body["event"]["text"] = json!(text);
    let signed = with_body(event, &body, TEST_SIGNING_SECRET, chrono::Utc::now().timestamp());
    (request(&signed), body)
}

/// Sends a mention with `text` through the ingress and runs the worker over the queue.
async fn ask(gw: &Gateway, tag: &str, channel: &str, text: &str) {
    let (req, _) = slack_request("slack/app_mention", tag, channel, &format!("<@UBOT> {text}"));
    assert_eq!(gw.ingress.handle(&req).await.status_code, 200);
    let resp = gw.run_worker().await;
    assert!(resp.batch_item_failures.is_empty(), "worker failures: {:?}", resp.batch_item_failures);
}

fn calls(channel: &str) -> Vec<(RecordedCall, Instant)> {
    emulators().slack.timed_calls_in(channel)
}

fn of<'a>(calls: &'a [(RecordedCall, Instant)], method: &str) -> Vec<&'a (RecordedCall, Instant)> {
    calls.iter().filter(|(c, _)| c.method == method).collect()
}

/// The text of message `ts` in `channel` as a Slack user sees it now (edits applied).
fn shown_text(channel: &str, ts: &str) -> String {
    emulators()
        .slack
        .threads()
        .into_iter()
        .filter(|((c, _), _)| c == channel)
        .flat_map(|(_, messages)| messages)
        .find(|m| m["ts"] == ts)
        .and_then(|m| m["text"].as_str().map(str::to_string))
        .unwrap_or_else(|| panic!("no message {ts} in {channel}"))
}

fn conversations(gw: &Gateway) -> DynamoDbConversations {
    DynamoDbConversations::new(aws_sdk_dynamodb::Client::new(&gw.sdk), &gw.resources.conversations_table)
}

fn thread(channel: &str, thread_ts: &str) -> ThreadRef {
    ThreadRef { team_id: "T0001".into(), channel_id: channel.into(), thread_ts: thread_ts.into() }
}

async fn stored_turn(gw: &Gateway, channel: &str, thread_ts: &str, message_ts: &str) -> TurnRecord {
    conversations(gw)
        .turn(&thread(channel, thread_ts), message_ts)
        .await
        .expect("conversations table")
        .expect("turn recorded")
}

/// The gaps between successive progress edits (texts still carrying the "more" marker), and
/// between the early message and the first edit.
fn progress_gaps(post_at: Instant, updates: &[&(RecordedCall, Instant)]) -> Vec<Duration> {
    let mut times = vec![post_at];
    times.extend(updates.iter().filter(|(c, _)| c.param("text").ends_with(MORE_MARKER)).map(|(_, t)| *t));
    times.windows(2).map(|w| w[1] - w[0]).collect()
}

#[tokio::test]
async fn a_slow_turn_posts_early_then_edits_the_same_message_at_a_bounded_rate() {
    let gw = gateway("slowturn").await;
    let channel = "CSLOWTURN";
    ask(&gw, "slow", channel, "Walk me through the laptop migration step by step").await;

    let all = calls(channel);
    let posts = of(&all, "chat.postMessage");
    assert_eq!(posts.len(), 1, "one message for the whole answer: {all:#?}");
    let (post, post_at) = posts[0];
    let early = post.param("text");
    assert!(early == PLACEHOLDER || early.ends_with(MORE_MARKER), "early message: {early}");
    assert_eq!(post.param("thread_ts"), MENTION_TS);

    let updates: Vec<&(RecordedCall, Instant)> =
        of(&all, "chat.update").into_iter().filter(|(c, _)| c.fault.is_none()).collect();
    assert!(updates.len() >= 2, "progress edits and the final answer: {updates:#?}");
    let reply_ts = updates[0].0.param("ts").to_string();
    assert!(updates.iter().all(|(c, _)| c.param("ts") == reply_ts), "every edit is of the one message");
    let progress: Vec<_> = updates.iter().filter(|(c, _)| c.param("text").ends_with(MORE_MARKER)).collect();
    assert!(!progress.is_empty(), "the answer was shown while it streamed: {updates:#?}");
    assert!(progress.iter().any(|(c, _)| c.param("text").contains("step by step")), "{progress:#?}");

    // The final answer, with its sources, replaced the early message.
    let final_text = shown_text(channel, &reply_ts);
    assert!(final_text.contains("wiped after 14 days") && final_text.contains("*Sources*"), "{final_text}");
    assert!(final_text.contains("laptop-migration.pdf") && !final_text.ends_with(MORE_MARKER), "{final_text}");
    let last = updates.last().map(|(c, _)| c.param("text").to_string()).unwrap_or_default();
    assert_eq!(last, final_text, "the final answer is the last edit");

    // Progress edits no more often than the configured interval (10 % timer slack).
    for gap in progress_gaps(*post_at, &updates) {
        assert!(gap >= INTERVAL.mul_f64(0.9), "edits {gap:?} apart, faster than {INTERVAL:?}");
    }

    // The turn points at the streamed message (feedback and redelivery dedupe use it).
    let turn = stored_turn(&gw, channel, MENTION_TS, MENTION_TS).await;
    assert_eq!(turn.status, TurnStatus::Answered);
    assert_eq!(turn.reply_ts.as_deref(), Some(reply_ts.as_str()));
    eprintln!(
        "slow turn: early message after {:?}, {} progress edits, final after {:?}",
        DELAY,
        progress.len(),
        updates.last().map(|(_, t)| *t - *post_at)
    );
}

#[tokio::test]
async fn a_slow_answer_longer_than_one_message_continues_after_the_streamed_one() {
    let gw = gateway("slowlong").await;
    let channel = "CSLOWLONG";
    ask(&gw, "long", channel, "Give me the onboarding checklist in full detail").await;

    let all = calls(channel);
    let posts = of(&all, "chat.postMessage");
    assert_eq!(posts.len(), 2, "the early message, then the rest of the answer: {all:#?}");
    let updates = of(&all, "chat.update");
    let (final_edit, final_at) = updates.last().copied().expect("the first part replaces the early message");
    let reply_ts = final_edit.param("ts").to_string();
    let first = shown_text(channel, &reply_ts);
    assert!(first.starts_with("The onboarding checklist, in full detail") && !first.ends_with(MORE_MARKER), "{first}");
    assert!(first.chars().count() <= shared::slack::MAX_MESSAGE_CHARS);
    let (rest, rest_at) = posts[1];
    assert!(rest_at > final_at, "the rest is posted after the first part is in place");
    assert!(rest.param("text").contains("That is the whole checklist."), "{:?}", rest.params);
    assert_eq!(rest.param("thread_ts"), MENTION_TS);
    let turn = stored_turn(&gw, channel, MENTION_TS, MENTION_TS).await;
    assert_eq!(turn.reply_ts.as_deref(), Some(reply_ts.as_str()), "the turn points at the first message");
}

#[tokio::test]
async fn a_fast_turn_posts_once_with_the_status_reaction_and_no_edits() {
    let gw = gateway("fastturn").await;
    let channel = "CFASTTURN";
    ask(&gw, "fast", channel, "How do I get access to the staging VPN?").await;

    let all = calls(channel);
    let posts = of(&all, "chat.postMessage");
    assert_eq!(posts.len(), 1, "{all:#?}");
    assert!(posts[0].0.param("text").contains("staging VPN"), "{:?}", posts[0].0.params);
    assert!(of(&all, "chat.update").is_empty(), "no placeholder churn: {all:#?}");
    // Not an assistant thread: the reaction, added before the answer and removed after it.
    assert!(of(&all, "assistant.threads.setStatus").is_empty(), "{all:#?}");
    let methods: Vec<&str> = all.iter().map(|(c, _)| c.method.as_str()).collect();
    let add = methods.iter().position(|m| *m == "reactions.add").expect("status reaction added");
    let post = methods.iter().position(|m| *m == "chat.postMessage").expect("answer");
    let remove = methods.iter().rposition(|m| *m == "reactions.remove").expect("status reaction removed");
    assert!(add < post && post < remove, "{methods:?}");
}

#[tokio::test]
async fn rate_limited_edits_are_skipped_and_the_answer_still_lands_in_the_one_message() {
    let gw = gateway("ratelimit").await;
    let channel = "CRATELIMIT";
    let slack = &emulators().slack;
    slack.fail_next("chat.update", Some(channel), Fault::RateLimited { retry_after_secs: 1 });
    slack.fail_next("chat.update", Some(channel), Fault::RateLimited { retry_after_secs: 1 });
    ask(&gw, "rl", channel, "Walk me through the laptop migration step by step").await;

    let all = calls(channel);
    let posts = of(&all, "chat.postMessage");
    assert_eq!(posts.len(), 1, "no extra messages: {all:#?}");
    let updates = of(&all, "chat.update");
    let limited: Vec<_> = updates.iter().filter(|(c, _)| c.fault.is_some()).collect();
    assert_eq!(limited.len(), 2, "{updates:#?}");
    let (first_limited, limited_at) = limited[0];
    // A skipped progress edit is not retried at once: the next edit waits (twice the interval),
    // unless it is the final answer, which must land.
    if let Some((next, next_at)) = updates.iter().find(|(_, t)| t > limited_at) {
        let is_final = !next.param("text").ends_with(MORE_MARKER);
        assert!(is_final || *next_at - *limited_at >= INTERVAL.mul_f64(1.8), "{first_limited:?} then {next:?}");
    }
    let reply_ts = first_limited.param("ts").to_string();
    let text = shown_text(channel, &reply_ts);
    assert!(text.contains("wiped after 14 days") && text.contains("*Sources*"), "{text}");
    let turn = stored_turn(&gw, channel, MENTION_TS, MENTION_TS).await;
    assert_eq!(turn.reply_ts.as_deref(), Some(reply_ts.as_str()));
}

#[tokio::test]
async fn a_failure_after_the_early_message_turns_it_into_the_apology() {
    let gw = gateway("slowfail").await;
    let channel = "CSLOWFAIL";
    ask(&gw, "sf", channel, "The VPN broke half-way through my call").await;

    let all = calls(channel);
    let posts = of(&all, "chat.postMessage");
    assert_eq!(posts.len(), 1, "the apology replaces the early message, not a second one: {all:#?}");
    let early = posts[0].0.param("text");
    assert!(early.contains("VPN gateway logs") || early == PLACEHOLDER, "{early}");
    let updates = of(&all, "chat.update");
    let reply_ts = updates.last().map(|(c, _)| c.param("ts").to_string()).expect("the apology edit");
    assert_eq!(shown_text(channel, &reply_ts), APOLOGY);
    let turn = stored_turn(&gw, channel, MENTION_TS, MENTION_TS).await;
    assert_eq!(turn.status, TurnStatus::Failed);
    assert_eq!(turn.reply_ts.as_deref(), Some(reply_ts.as_str()));
    // The status reaction is cleared on failure too.
    assert!(!of(&all, "reactions.remove").is_empty(), "{all:#?}");
}

#[tokio::test]
async fn an_assistant_thread_gets_the_assistant_status_set_then_cleared_and_no_reaction() {
    let mut gw = gateway("assistant").await;
    gw.worker.settings.status.assistant = AssistantMode::Auto;
    let channel = "DASSISTANT1";
    let (req, body) =
        slack_request("slack/assistant_thread_message", "as", channel, "How do I get access to the staging VPN?");
    assert_eq!(gw.ingress.handle(&req).await.status_code, 200);
    let resp = gw.run_worker().await;
    assert!(resp.batch_item_failures.is_empty());

    let all = calls(channel);
    let statuses = emulators().slack.assistant_statuses(channel);
    assert_eq!(statuses, vec![DEFAULT_ASSISTANT_STATUS.to_string(), String::new()], "{all:#?}");
    let thread_ts = body["event"]["thread_ts"].as_str().unwrap_or_default();
    assert!(of(&all, "assistant.threads.setStatus").iter().all(|(c, _)| c.param("thread_ts") == thread_ts));
    assert!(of(&all, "reactions.add").is_empty(), "{all:#?}");
    let posts = of(&all, "chat.postMessage");
    assert_eq!(posts.len(), 1);
    assert_eq!(posts[0].0.param("thread_ts"), thread_ts);
    // Set before the answer, cleared after it.
    let methods: Vec<&str> = all.iter().map(|(c, _)| c.method.as_str()).collect();
    let post = methods.iter().position(|m| *m == "chat.postMessage").unwrap_or_default();
    assert!(methods[..post].contains(&"assistant.threads.setStatus"), "{methods:?}");
    assert_eq!(methods.last(), Some(&"assistant.threads.setStatus"), "{methods:?}");
}

#[tokio::test]
async fn an_app_that_is_not_an_assistant_falls_back_to_the_reaction() {
    let mut gw = gateway("notassistant").await;
    gw.worker.settings.status.assistant = AssistantMode::On;
    let channel = "CNOTASSIST";
    emulators().slack.fail_next(
        "assistant.threads.setStatus",
        Some(channel),
        Fault::SlackError("not_allowed_token_type".into()),
    );
    ask(&gw, "na", channel, "How do I get access to the staging VPN?").await;
    let all = calls(channel);
    let status_calls = of(&all, "assistant.threads.setStatus");
    assert_eq!(status_calls.len(), 1, "refused once, then not used for this turn: {all:#?}");
    assert!(status_calls[0].0.fault.is_some());
    let methods: Vec<&str> = all.iter().map(|(c, _)| c.method.as_str()).collect();
    let add = methods.iter().position(|m| *m == "reactions.add").expect("fallback reaction");
    let remove = methods.iter().rposition(|m| *m == "reactions.remove").expect("fallback reaction removed");
    assert!(add < remove, "{methods:?}");
}

#[tokio::test]
async fn the_ingress_shows_the_status_of_a_queued_turn_within_its_bound() {
    let gw = gateway("queued").await;
    let channel = "CQUEUED";
    let status = QueuedStatus {
        indicator: StatusIndicator::new(gw.worker.chat.clone(), StatusSettings::default()),
        timeout: Duration::from_millis(700),
    };
    let ingress = gw.ingress.with_queued_status(status);
    let (req, _) = slack_request("slack/app_mention", "q1", channel, "<@UBOT> How do I get access to the staging VPN?");
    let started = Instant::now();
    assert_eq!(ingress.handle(&req).await.status_code, 200);
    let acked = started.elapsed();

    // The turn has not run (it waits in the queue): the user already sees the reaction.
    let before = calls(channel);
    assert_eq!(before.iter().map(|(c, _)| c.method.as_str()).collect::<Vec<_>>(), vec!["reactions.add"]);
    assert_eq!(before[0].0.param("timestamp"), MENTION_TS);
    assert!(acked < Duration::from_millis(2500), "acknowledged after {acked:?}");
    eprintln!("ingress with the queued-turn status: acknowledged in {acked:?}");

    // A channel reply the bot may not answer gets no status from the ingress.
    let reply_channel = "CQUEUEDREPLY";
    let (reply, _) = slack_request("slack/thread_reply", "q2", reply_channel, "and another thing");
    assert_eq!(ingress.handle(&reply).await.status_code, 200);
    assert!(of(&calls(reply_channel), "reactions.add").is_empty());

    // The worker takes the status down with the answer.
    let mut batch = aws_lambda_events::event::sqs::SqsEvent::default();
    batch.records = tests::resources::drain_queue(&gw.sdk, &gw.resources.work_queue_url).await.expect("drain");
    let resp = gw.worker.handle_batch(batch, None).await;
    assert!(resp.batch_item_failures.is_empty());
    let methods: Vec<String> = calls(channel).into_iter().map(|(c, _)| c.method).collect();
    assert_eq!(methods.last().map(String::as_str), Some("reactions.remove"), "{methods:?}");
    assert_eq!(methods.iter().filter(|m| *m == "chat.postMessage").count(), 1, "{methods:?}");
}

#[tokio::test]
async fn a_slack_that_does_not_answer_never_delays_the_acknowledgement_past_the_bound() {
    let gw = gateway("queuedslow").await;
    // Accepts connections (the kernel's backlog) and never answers.
    let black_hole = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let base = format!("http://{}/api", black_hole.local_addr().expect("addr"));
    let chat: Arc<dyn ChatClient> =
        Arc::new(SlackWebClient::new(&base, TEST_BOT_TOKEN.to_string().into()).expect("client"));
    let timeout = Duration::from_millis(500);
    let ingress = gw
        .ingress
        .with_queued_status(QueuedStatus { indicator: StatusIndicator::new(chat, StatusSettings::default()), timeout });
    let (req, _) = slack_request("slack/app_mention", "qs", "CQUEUEDSLOW", "<@UBOT> anyone there?");
    let started = Instant::now();
    assert_eq!(ingress.handle(&req).await.status_code, 200);
    let acked = started.elapsed();
    assert!(acked >= timeout, "the status call was waited for up to its bound: {acked:?}");
    assert!(acked < timeout + Duration::from_millis(2000), "acknowledged after {acked:?}");
    let queued = tests::resources::drain_queue(&gw.sdk, &gw.resources.work_queue_url).await.expect("drain");
    assert_eq!(queued.len(), 1, "the message is queued whatever Slack does");
    drop(black_hole);
}

#[tokio::test]
async fn a_redelivered_turn_edits_the_message_an_earlier_delivery_posted() {
    let gw = gateway("resumed").await;
    let channel = "CRESUMED";
    // An earlier delivery got as far as its early message, then the worker died.
    let chat = gw.worker.chat.clone();
    let early_ts = chat.post_message(channel, MENTION_TS, PLACEHOLDER).await.expect("early message");
    let store = conversations(&gw);
    let (req, body) =
        slack_request("slack/app_mention", "rs", channel, "<@UBOT> How do I get access to the staging VPN?");
    let record = TurnRecord::received(
        thread(channel, MENTION_TS),
        MENTION_TS,
        body["event_id"].as_str().unwrap_or_default(),
        body["event"]["user"].as_str().unwrap_or_default(),
        chrono::Utc::now().timestamp_millis(),
    );
    store.begin_turn(&record).await.expect("begin");
    store.record_reply(&record.thread, MENTION_TS, &early_ts).await.expect("record reply");

    assert_eq!(gw.ingress.handle(&req).await.status_code, 200);
    let resp = gw.run_worker().await;
    assert!(resp.batch_item_failures.is_empty());
    let all = calls(channel);
    assert_eq!(of(&all, "chat.postMessage").len(), 1, "only the earlier delivery's message: {all:#?}");
    let text = shown_text(channel, &early_ts);
    assert!(text.contains("staging VPN"), "the answer went into the earlier message: {text}");
    let turn = stored_turn(&gw, channel, MENTION_TS, MENTION_TS).await;
    assert_eq!(turn.reply_ts.as_deref(), Some(early_ts.as_str()));
    assert_eq!(turn.status, TurnStatus::Answered);
}

#[tokio::test]
async fn the_agent_adapter_hands_over_text_as_the_chunks_arrive() {
    let agent = shared::aws::agent::BedrockAgent::new(
        shared::aws::agent::agent_client(&sdk_config_for(&emulators().agent.endpoint())),
        AGENT_ID,
        AGENT_ALIAS_ID,
    );
    let req = AgentRequest {
        session_id: "T0001-CADAPTER-1.000001".into(),
        input_text: "Walk me through the laptop migration step by step".into(),
        ..AgentRequest::default()
    };
    let seen: Mutex<Vec<(String, Instant)>> = Mutex::new(Vec::new());
    let sink = |d: &str| seen.lock().expect("lock").push((d.to_string(), Instant::now()));
    let turn = agent.invoke_streaming(&req, &sink, &Default::default()).await.expect("turn");
    let seen = seen.into_inner().expect("lock");
    assert_eq!(seen.len(), 6, "one delta per chunk: {seen:?}");
    assert_eq!(seen.iter().map(|(d, _)| d.as_str()).collect::<String>(), turn.text);
    let spread = seen[5].1 - seen[0].1;
    assert!(spread >= Duration::from_secs(3), "deltas arrived as streamed, not at the end: {spread:?}");
}

#[test]
fn the_template_bounds_turns_at_once_by_the_reserved_concurrency() {
    let template = tests::template::Template::load(&tests::moto::workspace_root().join("template.yaml"))
        .unwrap_or_else(|e| panic!("{e}"));
    let worker = template
        .resources_of_type("AWS::Serverless::Function")
        .into_iter()
        .find(|(id, _)| id == "SlackWorkerFunction")
        .map(|(_, r)| r.clone())
        .expect("SlackWorkerFunction");
    let props = &worker["Properties"];
    let trigger = &props["Events"]["Work"]["Properties"];
    // One turn per invocation, so the function's concurrency counts turns.
    assert_eq!(template.resolve(&trigger["BatchSize"]).expect("BatchSize"), "1");
    let none = "<AWS::NoValue>".to_string();
    for (reserved, expect_reserved, expect_max) in
        [("10", "10".to_string(), "10".to_string()), ("1", "1".into(), none.clone()), ("0", none.clone(), none.clone())]
    {
        let t = template.clone().with_parameter("WorkerReservedConcurrency", reserved);
        let resolve = |v: &serde_yaml::Value| t.resolve(v).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(resolve(&props["ReservedConcurrentExecutions"]), expect_reserved, "reserved {reserved}");
        // The queue trigger stops polling at the same limit (its minimum is 2).
        assert_eq!(
            resolve(&trigger["ScalingConfig"]["MaximumConcurrency"]),
            expect_max,
            "MaximumConcurrency at reserved {reserved}"
        );
    }
}

#[tokio::test]
async fn a_progress_edit_gives_up_on_a_rate_limit_at_once_while_the_final_edit_waits_it_out() {
    let slack = &emulators().slack;
    let channel = "CCLIENTRL";
    let chat: Arc<dyn ChatClient> =
        Arc::new(SlackWebClient::new(&slack.api_base(), TEST_BOT_TOKEN.to_string().into()).expect("client"));
    let ts = chat.post_message(channel, "1.000001", "draft …").await.expect("post");

    slack.fail_next("chat.update", Some(channel), Fault::RateLimited { retry_after_secs: 5 });
    let started = Instant::now();
    let err = chat.try_update_message(channel, &ts, "more …").await.expect_err("rate limited");
    assert_eq!(err.error, "ratelimited");
    assert!(started.elapsed() < Duration::from_secs(2), "not waited out: {:?}", started.elapsed());

    slack.fail_next("chat.update", Some(channel), Fault::RateLimited { retry_after_secs: 1 });
    chat.update_message(channel, &ts, "final").await.expect("the final edit lands after the wait");
    assert_eq!(shown_text(channel, &ts), "final");
    let updates: Vec<_> = calls(channel).into_iter().filter(|(c, _)| c.method == "chat.update").collect();
    assert_eq!(updates.len(), 3, "one skipped progress edit, the final one rate limited then retried");
}

/// An agent that stalls past the Lambda deadline (events/agent/stall.json: two model calls with
/// usage, the first words, then 30 s of silence). The attempt is cut at the deadline less the
/// reserve; the early message becomes the apology before the deadline; the tokens the stream had
/// reported are billed once; the turn ends failed and does not go back to the queue to run again.
#[tokio::test]
async fn an_agent_stalling_past_the_deadline_gets_the_apology_in_time_and_its_tokens_billed() {
    let mut gw = gateway("stall").await;
    let reserve = Duration::from_secs(3);
    gw.worker.settings.deadline_reserve = reserve;
    let channel = "CSTALL";
    let (req, body) =
        slack_request("slack/app_mention", "st", channel, "<@UBOT> Why does the nightly report job take forever?");
    assert_eq!(gw.ingress.handle(&req).await.status_code, 200);
    let mut batch = aws_lambda_events::event::sqs::SqsEvent::default();
    batch.records = tests::resources::drain_queue(&gw.sdk, &gw.resources.work_queue_url).await.expect("drain");
    assert_eq!(batch.records.len(), 1);

    let deadline = Instant::now() + Duration::from_secs(10);
    let resp = gw.worker.handle_batch(batch, Some(deadline)).await;
    let returned = Instant::now();
    assert!(resp.batch_item_failures.is_empty(), "not returned for redelivery: {:?}", resp.batch_item_failures);
    assert!(returned < deadline, "the worker returned {:?} past the deadline", returned - deadline);

    // What the user sees: the early message, then the apology in its place, before the deadline.
    let all = calls(channel);
    let posts = of(&all, "chat.postMessage");
    assert_eq!(posts.len(), 1, "the apology replaces the early message: {all:#?}");
    assert_eq!(posts[0].0.param("thread_ts"), MENTION_TS);
    let updates = of(&all, "chat.update");
    let (last, edited_at) = updates.last().copied().unwrap_or_else(|| panic!("the apology edit: {all:#?}"));
    assert_eq!(last.param("text"), APOLOGY);
    assert!(*edited_at < deadline, "apology edited {:?} past the deadline", *edited_at - deadline);
    eprintln!(
        "stalled agent: apology {:?} and worker done {:?} before the deadline",
        deadline - *edited_at,
        deadline - returned
    );
    let reply_ts = last.param("ts").to_string();
    assert_eq!(shown_text(channel, &reply_ts), APOLOGY);
    assert!(!of(&all, "reactions.remove").is_empty(), "status cleared: {all:#?}");

    // The turn: failed, with a clear code; counted; the agent was asked once.
    let turn = stored_turn(&gw, channel, MENTION_TS, MENTION_TS).await;
    assert_eq!(turn.status, TurnStatus::Failed);
    assert_eq!(turn.error_code.as_deref(), Some("AgentTimeout"));
    assert_eq!(turn.reply_ts.as_deref(), Some(reply_ts.as_str()));
    assert_eq!(gw.metric_sum("APIErrors", Some(("ErrorCode", "AgentTimeout"))), 1.0);
    let session = thread(channel, MENTION_TS).session_id();
    assert_eq!(emulators().agent.requests_for(&session).len(), 1, "no attempt after the time ran out");

    // The tokens the stalled stream reported: one usage record, both calls.
    let usage = tests::resources::drain_queue(&gw.sdk, &gw.resources.usage_queue_url).await.expect("usage queue");
    assert_eq!(usage.len(), 1, "one usage record");
    let record: shared::domain::UsageRecord =
        serde_json::from_str(usage[0].body.as_deref().unwrap_or_default()).expect("usage record");
    assert_eq!(record.record_id, format!("T0001:{}", body["event_id"].as_str().unwrap_or_default()));
    assert_eq!(shared::domain::total_tokens(&record.calls), (1190 + 1722, 52 + 214), "{:?}", record.calls);
    let analytics = tests::resources::read_objects(&gw.sdk, &gw.resources.bucket, "events/").await.expect("s3");
    let events: Vec<Value> =
        analytics.iter().flat_map(|(_, t)| t.lines().map(|l| serde_json::from_str(l).expect("json"))).collect();
    assert_eq!(events.len(), 1);
    assert_eq!(
        (events[0]["outcome"].as_str(), events[0]["error_code"].as_str()),
        (Some("failed"), Some("AgentTimeout"))
    );
    assert_eq!(events[0]["input_tokens"], 1190 + 1722);
}
