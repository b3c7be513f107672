//! Slack refusing the answer, end to end through ingress, worker (real SDK against moto, the
//! scripted agent) and token-logging: a rate limit, a 5xx and permanent errors on
//! `chat.postMessage`. For each: what the user sees, that the agent ran exactly once whatever
//! the redeliveries, and that the ledger counts the turn's tokens once.

use std::collections::BTreeSet;

use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage};
use aws_sdk_dynamodb::types::AttributeValue;
use serde_json::json;
use shared::aws::conversations::DynamoDbConversations;
use shared::aws::usage::DynamoDbUsageReader;
use shared::domain::{FeedbackEntry, Sentiment};
use shared::domain::{ThreadRef, TurnStatus, UsageRecord};
use shared::ports::{ConversationStore, TurnRecord, UsageReader};
use shared::telemetry::Metrics;
use slack_gateway::worker::APOLOGY;
use tests::fake_slack::Fault;
use tests::harness::{emulators, Gateway};
use tests::resources::{drain_queue, TEST_SIGNING_SECRET};
use tests::slack_events::{body_of, fixture, request, with_body};
use token_logging::handler::TokenLogger;
use token_logging::writer::WriterSettings;

/// The most deliveries SQS makes before the dead-letter queue (template: maxReceiveCount).
const MAX_DELIVERIES: usize = 8;

/// What one question came to.
struct Turn {
    /// Deliveries of the work item the worker saw (1 = no redelivery).
    deliveries: usize,
    /// Whether the last delivery was still returned as a batch item failure.
    still_failing: bool,
    /// InvokeAgent calls for the question.
    agent_invocations: usize,
    /// The texts the user sees in the thread (successful posts, edits applied).
    seen: Vec<String>,
    /// The usage records published, and the ledger's input and output tokens for the user today.
    usage: Vec<UsageRecord>,
    ledger_tokens: (u64, u64),
}

/// Asks a question in `channel` through the ingress and runs the worker, redelivering what it
/// returns as SQS would; then runs token-logging over the usage queue.
async fn ask(gw: &Gateway, channel: &str) -> Turn {
    let event = fixture("slack/app_mention");
    let mut body = body_of(&event);
    body["event_id"] = json!(format!("Ev{channel}"));
    body["event"]["channel"] = json!(channel);
    let req = request(&with_body(event, &body, TEST_SIGNING_SECRET, chrono::Utc::now().timestamp()));
    assert_eq!(gw.ingress.handle(&req).await.status_code, 200);

    let mut pending: Vec<SqsMessage> = drain_queue(&gw.sdk, &gw.resources.work_queue_url).await.expect("drain work");
    assert_eq!(pending.len(), 1);
    let mut deliveries = 0;
    while !pending.is_empty() && deliveries < MAX_DELIVERIES {
        deliveries += 1;
        let mut batch = SqsEvent::default();
        batch.records = pending.clone();
        let failed: BTreeSet<String> = gw
            .worker
            .handle_batch(batch, None)
            .await
            .batch_item_failures
            .into_iter()
            .map(|f| f.item_identifier)
            .collect();
        pending.retain(|m| m.message_id.as_ref().is_some_and(|id| failed.contains(id)));
    }

    let emu = emulators();
    let agent_invocations = emu
        .agent
        .requests()
        .iter()
        .filter(|r| r.session_attributes.get("slack_channel_id").map(String::as_str) == Some(channel))
        .count();
    let seen = emu
        .slack
        .threads()
        .into_iter()
        .filter(|((c, _), _)| c == channel)
        .flat_map(|(_, messages)| messages)
        .filter(|m| m["bot_id"] == "BBOT")
        .map(|m| m["text"].as_str().unwrap_or_default().to_string())
        .collect();

    let usage_messages = drain_queue(&gw.sdk, &gw.resources.usage_queue_url).await.expect("drain usage");
    let usage: Vec<UsageRecord> = usage_messages
        .iter()
        .map(|m| serde_json::from_str(m.body.as_deref().unwrap_or_default()).expect("usage record"))
        .collect();
    let (metrics, _) = Metrics::capture("BedrockUsage");
    let config = token_logging::handler::Config {
        usage_table: gw.resources.usage_table.clone(),
        metrics_namespace: "BedrockUsage".into(),
    };
    let logger = TokenLogger::from_config(
        &config,
        &gw.sdk,
        shared::pricing::PriceTable::embedded(),
        metrics,
        WriterSettings::default(),
    );
    let mut batch = SqsEvent::default();
    batch.records = usage_messages;
    assert!(logger.handle_batch(batch, None).await.batch_item_failures.is_empty());
    let user = body["event"]["user"].as_str().unwrap_or_default();
    let team = body["team_id"].as_str().unwrap_or_default();
    let spend = DynamoDbUsageReader::new(aws_sdk_dynamodb::Client::new(&gw.sdk), &gw.resources.usage_table)
        .user_spend(team, user, chrono::Utc::now().date_naive())
        .await
        .expect("read spend");
    Turn {
        deliveries,
        still_failing: !pending.is_empty(),
        agent_invocations,
        seen,
        usage,
        ledger_tokens: (spend.day.input_tokens, spend.day.output_tokens),
    }
}

/// The tokens of the turn's one usage record; every published copy has the same id.
fn tokens_of_the_turn(turn: &Turn) -> (u64, u64) {
    let ids: BTreeSet<&str> = turn.usage.iter().map(|u| u.record_id.as_str()).collect();
    assert_eq!(ids.len(), 1, "one usage record id per turn: {ids:?}");
    let calls = &turn.usage[0].calls;
    let tokens = (calls.iter().map(|c| c.input_tokens).sum(), calls.iter().map(|c| c.output_tokens).sum());
    assert!(tokens.0 > 0 && tokens.1 > 0, "{tokens:?}");
    tokens
}

async fn stored_turn(gw: &Gateway, channel: &str) -> TurnRecord {
    let body = body_of(&fixture("slack/app_mention"));
    let ts = body["event"]["ts"].as_str().unwrap_or_default().to_string();
    let thread = ThreadRef { team_id: "T0001".into(), channel_id: channel.into(), thread_ts: ts.clone() };
    DynamoDbConversations::new(aws_sdk_dynamodb::Client::new(&gw.sdk), &gw.resources.conversations_table)
        .turn(&thread, &ts)
        .await
        .expect("read turn")
        .expect("the turn is recorded")
}

#[tokio::test]
async fn a_rate_limited_answer_is_posted_after_retry_after() {
    let gw = Gateway::new("sf429").await;
    let channel = "CSF429";
    emulators().slack.fail_next("chat.postMessage", Some(channel), Fault::RateLimited { retry_after_secs: 1 });
    let turn = ask(&gw, channel).await;
    assert_eq!((turn.deliveries, turn.still_failing), (1, false));
    assert_eq!(turn.agent_invocations, 1);
    assert_eq!(turn.seen.len(), 1, "one answer: {:?}", turn.seen);
    assert_ne!(turn.seen[0], APOLOGY);
    assert_eq!(turn.ledger_tokens, tokens_of_the_turn(&turn));
    assert_eq!(stored_turn(&gw, channel).await.status, TurnStatus::Answered);
}

#[tokio::test]
async fn a_failing_post_is_redelivered_without_asking_the_agent_again() {
    let gw = Gateway::new("sf5xx").await;
    let channel = "CSF5XX";
    // More 5xx than one delivery's client retries allowed before: the message went back to the
    // queue and every redelivery invoked the agent again.
    emulators().slack.fail_times("chat.postMessage", Some(channel), Fault::ServerError, 5);
    let turn = ask(&gw, channel).await;
    assert!(!turn.still_failing, "answered within {MAX_DELIVERIES} deliveries");
    assert_eq!(turn.deliveries, 6, "a 5xx post is not repeated by the client, the redelivery posts it");
    assert_eq!(turn.agent_invocations, 1, "the kept answer is posted, the agent is not asked again");
    assert_eq!(turn.seen.len(), 1, "one answer: {:?}", turn.seen);
    assert_ne!(turn.seen[0], APOLOGY);
    assert_eq!(turn.ledger_tokens, tokens_of_the_turn(&turn), "the ledger counts the turn once");
    let stored = stored_turn(&gw, channel).await;
    assert_eq!(stored.status, TurnStatus::Answered);
    assert!(stored.reply_ts.is_some());
}

#[tokio::test]
async fn a_post_that_landed_despite_a_5xx_is_not_posted_again() {
    let gw = Gateway::new("sf5xxlanded").await;
    let channel = "CSF5XXLANDED";
    emulators().slack.fail_next("chat.postMessage", Some(channel), Fault::ServerErrorAfterDoing);
    let turn = ask(&gw, channel).await;
    assert_eq!((turn.deliveries, turn.still_failing), (2, false));
    assert_eq!(turn.agent_invocations, 1);
    assert_eq!(turn.seen.len(), 1, "the answer that landed is found, not posted again: {:?}", turn.seen);
    assert_eq!(turn.ledger_tokens, tokens_of_the_turn(&turn));
    assert_eq!(stored_turn(&gw, channel).await.status, TurnStatus::Answered);
}

#[tokio::test]
async fn a_permanent_slack_error_ends_the_turn_as_failed_without_redelivery() {
    let gw = Gateway::new("sfperm").await;
    let channel = "CSFPERM";
    emulators().slack.fail_times(
        "chat.postMessage",
        Some(channel),
        Fault::SlackError("channel_not_found".into()),
        MAX_DELIVERIES,
    );
    let turn = ask(&gw, channel).await;
    assert_eq!((turn.deliveries, turn.still_failing), (1, false), "no redelivery");
    assert_eq!(turn.agent_invocations, 1);
    assert!(turn.seen.is_empty(), "nothing can be posted: {:?}", turn.seen);
    assert_eq!(turn.ledger_tokens, tokens_of_the_turn(&turn), "usage is still counted, once");
    let stored = stored_turn(&gw, channel).await;
    assert_eq!(stored.status, TurnStatus::Failed);
    assert_eq!(stored.error_code.as_deref(), Some("slack_channel_not_found"));
    assert_eq!(gw.metric_sum("APIErrors", Some(("ErrorCode", "SlackPermanent"))), 1.0);
}

#[tokio::test]
async fn an_answer_slack_refuses_is_replaced_by_the_apology() {
    let gw = Gateway::new("sftoolong").await;
    let channel = "CSFTOOLONG";
    emulators().slack.fail_next("chat.postMessage", Some(channel), Fault::SlackError("msg_too_long".into()));
    let turn = ask(&gw, channel).await;
    assert_eq!((turn.deliveries, turn.still_failing), (1, false));
    assert_eq!(turn.agent_invocations, 1);
    assert_eq!(turn.seen, vec![APOLOGY.to_string()]);
    assert_eq!(turn.ledger_tokens, tokens_of_the_turn(&turn));
    let stored = stored_turn(&gw, channel).await;
    assert_eq!(stored.status, TurnStatus::Failed);
    assert_eq!(stored.error_code.as_deref(), Some("slack_msg_too_long"));
}

#[tokio::test]
async fn finishing_a_turn_keeps_feedback_given_on_its_early_message() {
    let gw = Gateway::new("sffeedback").await;
    let ddb = aws_sdk_dynamodb::Client::new(&gw.sdk);
    let store = DynamoDbConversations::new(ddb.clone(), &gw.resources.conversations_table);
    let thread = ThreadRef { team_id: "T0001".into(), channel_id: "CSFFEED".into(), thread_ts: "1.000001".into() };
    let mut turn =
        TurnRecord::received(thread.clone(), "1.000001", "EvFeed", "U1", chrono::Utc::now().timestamp_millis());
    store.begin_turn(&turn).await.expect("begin");
    store.record_reply(&thread, "1.000001", "1.000002").await.expect("early message");
    store.keep_answer(&thread, "1.000001", "{}").await.expect("keep");
    let entry = FeedbackEntry {
        user_id: "U2".into(),
        reaction: "+1".into(),
        sentiment: Sentiment::Positive,
        at_ms: turn.received_at_ms,
        event_id: "EvReact".into(),
    };
    assert!(store.add_feedback(&turn, &entry).await.expect("feedback"));

    turn.status = TurnStatus::Answered;
    turn.finished_at_ms = Some(turn.received_at_ms + 5);
    turn.reply_ts = Some("1.000002".into());
    turn.outcome = Some("answered".into());
    store.finish_turn(&turn).await.expect("finish");

    let item = ddb
        .get_item()
        .table_name(&gw.resources.conversations_table)
        .key("pk", AttributeValue::S(shared::aws::conversations::thread_pk(&thread)))
        .key("sk", AttributeValue::S(shared::aws::conversations::turn_sk("1.000001")))
        .send()
        .await
        .expect("get")
        .item
        .expect("item");
    assert_eq!(item.get("feedback_positive"), Some(&AttributeValue::N("1".into())), "{item:?}");
    assert_eq!(item.get("status"), Some(&AttributeValue::S("answered".into())));
    assert!(!item.contains_key("open_turn") && !item.contains_key("kept_answer"), "{item:?}");
    assert_eq!(store.turn(&thread, "1.000001").await.expect("read").expect("turn"), turn);
}
