//! Markdown tables in answers: a signed mention through slack-ingress, slack-worker against the
//! scripted agent (events/agent/table_answer.json) and the fake Slack. The answer's table arrives
//! as a Slack `table` block between mrkdwn sections; when Slack refuses table blocks, the same
//! answer is sent once more as text, the table as a fixed-width code block.

use std::time::Duration;

use serde_json::{json, Value};
use shared::domain::{ThreadRef, TurnStatus};
use shared::ports::ConversationStore;
use slack_gateway::stream::{StreamSettings, MORE_MARKER};
use tests::fake_slack::{Fault, RecordedCall};
use tests::harness::{emulators, Gateway};
use tests::resources::TEST_SIGNING_SECRET;
use tests::slack_events::{body_of, fixture, request, with_body};

/// The app_mention fixture's message ts (its thread).
const MENTION_TS: &str = "1713534720.001234";
/// Matches the table_answer script.
const QUESTION: &str = "Show last week's cost per model as a table";

/// The table as Slack should show it: header first, inline Markdown stripped, links as labels.
fn expected_rows() -> Vec<Vec<&'static str>> {
    vec![
        vec!["Model", "Calls", "Cost (USD)", "Trend"],
        vec!["Claude 3 Haiku", "1,204", "$4.12", "flat"],
        vec!["Claude 3.5 Sonnet", "310", "$18.90", "up"],
        vec!["Titan Embeddings", "5,880", "$0.59", "down"],
    ]
}

/// The fixed-width code block the text carries (and a refused message falls back to).
const CODE_BLOCK: &str = "```\n\
Model              Calls  Cost (USD)                    Trend\n\
-----------------  -----  ----------  ------------------------------------------\n\
Claude 3 Haiku     1,204       $4.12                     flat\n\
Claude 3.5 Sonnet    310      $18.90  up (https://wiki.example.com/costs/sonnet)\n\
Titan Embeddings   5,880       $0.59                     down\n\
```";

/// A gateway whose turns stream after `delay` (None: streaming off, every answer posted once).
async fn gateway(prefix: &str, delay: Option<Duration>) -> Gateway {
    let mut gw = Gateway::new(prefix).await;
    gw.worker.settings.stream = match delay {
        // The edited-message path: its progress edits are text only.
        Some(delay) => StreamSettings {
            enabled: true,
            delay,
            update_interval: Duration::from_millis(1200),
            native: slack_gateway::stream::NativeMode::Off,
        },
        None => StreamSettings { enabled: false, ..StreamSettings::default() },
    };
    gw
}

/// Sends the table question as a mention in `channel` and runs the worker over the queue.
async fn ask(gw: &Gateway, tag: &str, channel: &str) {
    let event = fixture("slack/app_mention");
    let mut body = body_of(&event);
    body["event_id"] = json!(format!("EvTable{tag}"));
    body["event"]["channel"] = json!(channel);
    body["event"]["text"] = json!(format!("<@UBOT> {QUESTION}"));
    let signed = with_body(event, &body, TEST_SIGNING_SECRET, chrono::Utc::now().timestamp());
    assert_eq!(gw.ingress.handle(&request(&signed)).await.status_code, 200);
    let resp = gw.run_worker().await;
    assert!(resp.batch_item_failures.is_empty(), "worker failures: {:?}", resp.batch_item_failures);
}

fn calls_of(channel: &str, method: &str) -> Vec<RecordedCall> {
    emulators().slack.calls_for(channel).into_iter().filter(|c| c.method == method).collect()
}

/// The cells of a `table` block, row by row; every cell must be raw_text.
fn cells(table: &Value) -> Vec<Vec<String>> {
    let rows = table["rows"].as_array().unwrap_or_else(|| panic!("no rows: {table}"));
    rows.iter()
        .map(|row| {
            row.as_array()
                .unwrap_or_else(|| panic!("row is not an array: {row}"))
                .iter()
                .map(|cell| {
                    assert_eq!(cell["type"], "raw_text", "{cell}");
                    cell["text"].as_str().unwrap_or_default().to_string()
                })
                .collect()
        })
        .collect()
}

/// Checks the blocks of the answer: intro section, the table, the closing section with sources,
/// then the feedback buttons.
fn assert_answer_blocks(blocks: &[Value]) {
    assert_eq!(blocks.len(), 4, "{blocks:#?}");
    assert_eq!(blocks[3]["type"], "context_actions", "the feedback buttons end the answer");
    assert_eq!(
        blocks[0],
        json!({ "type": "section", "text": { "type": "mrkdwn", "text": "Here is last week's cost per model:" } })
    );
    let table = &blocks[1];
    assert_eq!(table["type"], "table");
    assert_eq!(cells(table), expected_rows());
    let aligns: Vec<&str> =
        table["column_settings"].as_array().into_iter().flatten().filter_map(|s| s["align"].as_str()).collect();
    assert_eq!(aligns, vec!["left", "right", "right", "center"]);
    assert_eq!(blocks[2]["type"], "section");
    let closing = blocks[2]["text"]["text"].as_str().unwrap_or_default();
    assert!(closing.starts_with("Sonnet is most of the spend"), "{closing}");
    assert!(closing.contains("*Sources*") && closing.contains("daily-cost-report.pdf"), "{closing}");
    assert!(blocks.iter().filter(|b| b["type"] == "table").count() == 1);
}

/// The text of the answer: the code-block rendering, whole.
fn assert_answer_text(text: &str) {
    assert!(text.starts_with("Here is last week's cost per model:\n\n"), "{text}");
    assert!(text.contains(CODE_BLOCK), "the table as a fixed-width code block:\n{text}");
    assert!(text.contains("Sonnet is most of the spend") && text.contains("*Sources*"), "{text}");
    assert!(!text.contains("| Model |") && !text.contains("**"), "no raw Markdown: {text}");
}

/// The ts of the one bot message in `channel` (panics unless there is exactly one).
fn only_message_ts(channel: &str) -> String {
    let threads = emulators().slack.threads();
    let messages: Vec<&Value> = threads.iter().filter(|((c, _), _)| c == channel).flat_map(|(_, m)| m).collect();
    assert_eq!(messages.len(), 1, "one message in {channel}: {messages:#?}");
    messages[0]["ts"].as_str().unwrap_or_default().to_string()
}

async fn assert_answered(gw: &Gateway, channel: &str, reply_ts: &str) {
    let store = shared::aws::conversations::DynamoDbConversations::new(
        aws_sdk_dynamodb::Client::new(&gw.sdk),
        &gw.resources.conversations_table,
    );
    let thread = ThreadRef { team_id: "T0001".into(), channel_id: channel.into(), thread_ts: MENTION_TS.into() };
    let turn = store.turn(&thread, MENTION_TS).await.expect("conversations table").expect("turn recorded");
    assert_eq!(turn.status, TurnStatus::Answered);
    assert_eq!(turn.reply_ts.as_deref(), Some(reply_ts));
}

#[tokio::test]
async fn a_table_in_the_answer_is_posted_as_a_table_block() {
    let gw = gateway("tableblock", None).await;
    let channel = "CTABLEBLOCK";
    ask(&gw, "block", channel).await;

    let posts = calls_of(channel, "chat.postMessage");
    assert_eq!(posts.len(), 1, "one message: {posts:#?}");
    let post = &posts[0];
    assert!(post.fault.is_none());
    assert_eq!(post.param("thread_ts"), MENTION_TS);
    assert_answer_text(post.param("text"));
    assert_answer_blocks(post.blocks().expect("the answer went with blocks"));

    // What the user sees: one message, carrying the blocks.
    let reply_ts = only_message_ts(channel);
    let shown = emulators().slack.message_blocks(channel, &reply_ts).expect("blocks shown");
    assert_answer_blocks(shown.as_array().expect("an array"));
    assert!(calls_of(channel, "chat.update").is_empty());
    assert_answered(&gw, channel, &reply_ts).await;
}

#[tokio::test]
async fn a_streamed_answer_gets_its_table_block_with_the_final_edit_only() {
    let gw = gateway("tablestream", Some(Duration::from_millis(300))).await;
    let channel = "CTABLESTREAM";
    ask(&gw, "stream", channel).await;

    let posts = calls_of(channel, "chat.postMessage");
    assert_eq!(posts.len(), 1, "the early message only: {posts:#?}");
    assert!(posts[0].blocks().is_none(), "the early message is text: {:?}", posts[0].params);
    let updates: Vec<RecordedCall> =
        calls_of(channel, "chat.update").into_iter().filter(|c| c.fault.is_none()).collect();
    let (last, progress) = updates.split_last().expect("the final edit");
    for edit in progress {
        assert!(edit.param("text").ends_with(MORE_MARKER), "only the last edit is final: {:?}", edit.params);
        assert!(edit.blocks().is_none(), "progress edits are text: {:?}", edit.params);
    }
    assert_answer_text(last.param("text"));
    assert_answer_blocks(last.blocks().expect("the final edit carries the blocks"));
    let reply_ts = last.param("ts").to_string();
    assert_eq!(only_message_ts(channel), reply_ts, "the early message became the answer");
    let shown = emulators().slack.message_blocks(channel, &reply_ts).expect("blocks shown");
    assert_answer_blocks(shown.as_array().expect("an array"));
    assert_answered(&gw, channel, &reply_ts).await;
}

#[tokio::test]
async fn refused_table_blocks_fall_back_to_one_text_answer_with_a_code_block() {
    let gw = gateway("tablerefused", None).await;
    let channel = "CTABLEREFUSED";
    emulators().slack.refuse_table_blocks(channel);
    ask(&gw, "refused", channel).await;

    let posts = calls_of(channel, "chat.postMessage");
    assert_eq!(posts.len(), 2, "the refused post, then the text: {posts:#?}");
    assert_eq!(posts[0].fault, Some(Fault::SlackError("invalid_blocks".into())));
    assert!(posts[0].blocks().is_some());
    let answer = &posts[1];
    assert!(answer.fault.is_none() && answer.blocks().is_none(), "{:?}", answer.params);
    assert_answer_text(answer.param("text"));
    assert_eq!(posts[0].param("text"), answer.param("text"), "the same part, as text");

    // Exactly one answer in the thread: text-only, with the code block.
    let texts = emulators().slack.posted_texts(channel);
    assert_eq!(texts.len(), 1, "{texts:#?}");
    assert!(texts[0].contains(CODE_BLOCK));
    let reply_ts = only_message_ts(channel);
    assert_eq!(emulators().slack.message_blocks(channel, &reply_ts), None);
    assert_answered(&gw, channel, &reply_ts).await;
}

#[tokio::test]
async fn refused_table_blocks_in_the_final_edit_fall_back_to_a_text_edit() {
    let gw = gateway("tablerefusededit", Some(Duration::from_millis(300))).await;
    let channel = "CTABLEREFUSEDEDIT";
    emulators().slack.refuse_table_blocks(channel);
    ask(&gw, "refusededit", channel).await;

    let posts = calls_of(channel, "chat.postMessage");
    assert_eq!(posts.len(), 1, "the early message only, no second answer: {posts:#?}");
    let updates = calls_of(channel, "chat.update");
    let refused: Vec<&RecordedCall> = updates.iter().filter(|c| c.fault.is_some()).collect();
    assert_eq!(refused.len(), 1, "{updates:#?}");
    assert!(refused[0].blocks().is_some());
    let last = updates.last().expect("the final edit");
    assert!(last.fault.is_none() && last.blocks().is_none(), "{:?}", last.params);
    assert_answer_text(last.param("text"));
    let reply_ts = last.param("ts").to_string();
    assert_eq!(only_message_ts(channel), reply_ts);
    assert_eq!(emulators().slack.message_blocks(channel, &reply_ts), None);
    assert_answered(&gw, channel, &reply_ts).await;
}
