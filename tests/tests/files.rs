//! Files through the Slack gateway: a user's uploads downloaded from the fake Slack (behind the
//! SSRF guard) and passed to the scripted agent in `sessionState.files`; files the agent returns
//! shared into the thread with Slack's external upload flow.

use aws_lambda_events::event::sqs::SqsEvent;
use base64::Engine as _;
use serde_json::{json, Value};
use tests::fake_slack::{FakeSlack, Fault};
use tests::harness::{emulators, Gateway};
use tests::resources::{drain_queue, TEST_SIGNING_SECRET};
use tests::slack_events::{body_of, fixture, request, with_body};

/// The file_share fixture's message ts: a DM, so it starts the thread.
const SHARE_TS: &str = "1713534900.000200";

/// One file of a message: its name and where it is served.
struct Attached<'a> {
    id: &'a str,
    name: &'a str,
    size: u64,
    url: String,
}

/// Sends the file_share fixture into `channel` with `files`, through the ingress and the worker.
async fn share(gw: &Gateway, tag: &str, channel: &str, files: &[Attached<'_>]) {
    let event = fixture("slack/file_share");
    let mut body = body_of(&event);
    body["event_id"] = json!(format!("Ev{tag}"));
    body["event"]["channel"] = json!(channel);
    let template = body["event"]["files"][0].clone();
    body["event"]["files"] = files
        .iter()
        .map(|f| {
            let mut file = template.clone();
            file["id"] = json!(f.id);
            file["name"] = json!(f.name);
            file["title"] = json!(f.name);
            file["size"] = json!(f.size);
            file["url_private"] = json!(f.url);
            file["url_private_download"] = json!(f.url);
            file
        })
        .collect();
    let req = request(&with_body(event, &body, TEST_SIGNING_SECRET, chrono::Utc::now().timestamp()));
    assert_eq!(gw.ingress.handle(&req).await.status_code, 200);
    let resp = gw.run_worker().await;
    assert!(resp.batch_item_failures.is_empty(), "worker failures: {:?}", resp.batch_item_failures);
}

/// What a Slack user sees in the thread: every message's text, edits applied.
fn thread_text(channel: &str, thread_ts: &str) -> String {
    emulators()
        .slack
        .threads()
        .get(&(channel.to_string(), thread_ts.to_string()))
        .map(|messages| {
            messages.iter().map(|m| m["text"].as_str().unwrap_or_default().to_string()).collect::<Vec<_>>().join("\n")
        })
        .unwrap_or_default()
}

fn downloads_of(file_id: &str) -> Vec<tests::fake_slack::RecordedCall> {
    emulators()
        .slack
        .calls()
        .into_iter()
        .filter(|c| c.method == "files.download" && c.param("file_id") == file_id)
        .collect()
}

#[tokio::test]
async fn a_users_files_reach_the_agent_byte_for_byte() {
    let gw = Gateway::new("filesin").await;
    let channel = "DFILESIN";
    let slack = &emulators().slack;
    let csv = b"region,revenue\nEMEA,1200\nAMER,2300\n".to_vec();
    let json_doc = br#"{"quarter":"Q3","total":3500}"#.to_vec();
    let direct = slack.host_file("FIN1", "q3-revenue.csv", "text/csv", &csv);
    // The second is reached through a redirect that stays on the allowed host.
    let redirected = slack.redirect_url(&slack.host_file("FIN2", "summary.json", "application/json", &json_doc));
    share(
        &gw,
        "fin",
        channel,
        &[
            Attached { id: "FIN1", name: "q3-revenue.csv", size: csv.len() as u64, url: direct },
            Attached { id: "FIN2", name: "summary.json", size: json_doc.len() as u64, url: redirected },
        ],
    )
    .await;

    let invokes = emulators().agent.requests_for(&format!("T0001-{channel}-{SHARE_TS}"));
    assert_eq!(invokes.len(), 1);
    let files = &invokes[0].files;
    assert_eq!(files.len(), 2, "{files:?}");
    assert_eq!((files[0].name.as_str(), files[0].media_type.as_str()), ("q3-revenue.csv", "text/csv"));
    assert_eq!(files[0].bytes, csv);
    assert_eq!((files[1].name.as_str(), files[1].bytes.as_slice()), ("summary.json", json_doc.as_slice()));
    assert!(files.iter().all(|f| f.use_case == "CODE_INTERPRETER" && f.source_type == "BYTE_CONTENT"));
    assert!(invokes[0].input_text.contains("total revenue"), "{}", invokes[0].input_text);

    // Downloaded once each, with the bot token.
    for id in ["FIN1", "FIN2"] {
        let d = downloads_of(id);
        assert_eq!(d.len(), 1, "{id}");
        assert!(d[0].authorized, "{id} was fetched without the bot token");
    }
    let text = thread_text(channel, SHARE_TS);
    assert!(!text.is_empty() && !text.contains("Skipped"), "{text}");
    assert_ne!(text, slack_gateway::worker::APOLOGY);
}

#[tokio::test]
async fn files_over_the_size_limit_are_skipped_and_the_user_is_told() {
    let mut gw = Gateway::new("filesbig").await;
    gw.worker.settings.files.max_total_bytes = 1024;
    let channel = "DFILESBIG";
    let slack = &emulators().slack;
    let big = vec![b'7'; 4096];
    let declared = slack.host_file("FBIG1", "declared.csv", "text/csv", &big);
    // Slack's size says it fits; the body does not: the limit holds while it streams.
    let understated = slack.host_file("FBIG2", "understated.csv", "text/csv", &big);
    share(
        &gw,
        "fbig",
        channel,
        &[
            Attached { id: "FBIG1", name: "declared.csv", size: big.len() as u64, url: declared },
            Attached { id: "FBIG2", name: "understated.csv", size: 100, url: understated },
        ],
    )
    .await;

    assert!(downloads_of("FBIG1").is_empty(), "a file declared too large is not downloaded");
    assert_eq!(downloads_of("FBIG2").len(), 1);
    let invokes = emulators().agent.requests_for(&format!("T0001-{channel}-{SHARE_TS}"));
    assert_eq!(invokes.len(), 1, "the turn still runs");
    assert!(invokes[0].files.is_empty());
    let text = thread_text(channel, SHARE_TS);
    assert!(text.contains("Skipped `declared.csv`: it is 4 KB; files can be at most 1 KB per message"), "{text}");
    assert!(text.contains("Skipped `understated.csv`: it is larger than the 1 KB per message limit"), "{text}");
    assert!(text.contains("staging VPN"), "the answer is there too: {text}");
}

#[tokio::test]
async fn files_on_other_hosts_are_never_fetched() {
    let gw = Gateway::new("filesssrf").await;
    let channel = "DFILESSSRF";
    // Another server on loopback: a different port is a different host to the guard.
    let other = FakeSlack::start().expect("second fake");
    let elsewhere = other.host_file("FOUT1", "internal.csv", "text/csv", b"secret,1\n");
    let bounced = emulators().slack.redirect_url(&other.host_file("FOUT2", "bounced.csv", "text/csv", b"secret,2\n"));
    share(
        &gw,
        "fssrf",
        channel,
        &[
            Attached { id: "FOUT1", name: "internal.csv", size: 9, url: elsewhere },
            Attached { id: "FOUT2", name: "bounced.csv", size: 9, url: bounced },
            Attached { id: "FOUT3", name: "metadata.csv", size: 9, url: "http://169.254.169.254/latest/".into() },
        ],
    )
    .await;

    assert!(other.calls().is_empty(), "the other host received requests: {:?}", other.calls());
    let redirects = emulators().slack.calls().into_iter().filter(|c| c.method == "redirect").count();
    assert!(redirects >= 1, "the allowed host's redirect was requested, its target was not");
    let invokes = emulators().agent.requests_for(&format!("T0001-{channel}-{SHARE_TS}"));
    assert_eq!(invokes.len(), 1);
    assert!(invokes[0].files.is_empty());
    let text = thread_text(channel, SHARE_TS);
    for name in ["internal.csv", "bounced.csv", "metadata.csv"] {
        assert!(text.contains(&format!("Skipped `{name}`: it isn't stored on Slack's file servers")), "{name}: {text}");
    }
}

/// The files_out script's files, decoded.
fn scripted_files() -> Vec<(String, Vec<u8>)> {
    let script = fixture("agent/files_out");
    let events = script["attempts"][0]["events"].as_array().cloned().unwrap_or_default();
    events
        .iter()
        .filter_map(|e| e["files"]["files"].as_array().cloned())
        .flatten()
        .map(|f| {
            let bytes = base64::engine::general_purpose::STANDARD.decode(f["bytes"].as_str().unwrap_or_default());
            (f["name"].as_str().unwrap_or_default().to_string(), bytes.expect("base64 in the fixture"))
        })
        .collect()
}

async fn mention(gw: &Gateway, tag: &str, channel: &str, ts: &str, text: &str) -> SqsEvent {
    let event = fixture("slack/app_mention");
    let mut body = body_of(&event);
    body["event_id"] = json!(format!("Ev{tag}"));
    body["event"]["channel"] = json!(channel);
    body["event"]["ts"] = json!(ts);
    body["event"]["text"] = json!(format!("<@UBOT> {text}"));
    let req = request(&with_body(event, &body, TEST_SIGNING_SECRET, chrono::Utc::now().timestamp()));
    assert_eq!(gw.ingress.handle(&req).await.status_code, 200);
    let mut sqs = SqsEvent::default();
    sqs.records = drain_queue(&gw.sdk, &gw.resources.work_queue_url).await.expect("work queue");
    assert_eq!(sqs.records.len(), 1);
    sqs
}

#[tokio::test]
async fn files_the_agent_returns_are_shared_in_the_thread_once() {
    let gw = Gateway::new("filesout").await;
    let channel = "CFILESOUT";
    let ts = "1713534720.001234";
    let work = mention(&gw, "fo1", channel, ts, "Please draw a chart of the quarterly revenue.").await;
    assert!(gw.worker.handle_batch(work.clone(), None).await.batch_item_failures.is_empty());
    // Redelivered: the turn is finished, so neither the answer nor the files come again.
    assert!(gw.worker.handle_batch(work, None).await.batch_item_failures.is_empty());

    let expected = scripted_files();
    assert_eq!(expected.len(), 2);
    let shared = emulators().slack.shared_files(channel);
    assert_eq!(shared.len(), expected.len(), "{shared:?}");
    for (file, (name, bytes)) in shared.iter().zip(&expected) {
        assert_eq!(&file.filename, name);
        assert_eq!(&file.bytes, bytes, "{name}");
        assert_eq!(file.thread_ts.as_deref(), Some(ts), "{name} must go into the thread");
    }
    // After the text answer.
    let calls = emulators().slack.calls();
    let in_channel =
        |c: &&tests::fake_slack::RecordedCall| c.param("channel") == channel || c.param("channel_id") == channel;
    let methods: Vec<&str> = calls.iter().filter(in_channel).map(|c| c.method.as_str()).collect();
    let answer = methods.iter().position(|m| *m == "chat.postMessage").expect("answer posted");
    let upload = methods.iter().position(|m| *m == "files.completeUploadExternal").expect("files shared");
    assert!(answer < upload, "{methods:?}");
    assert_eq!(methods.iter().filter(|m| **m == "chat.postMessage").count(), 1, "one answer: {methods:?}");
    assert!(thread_text(channel, ts).contains("quarterly revenue chart"));
}

#[tokio::test]
async fn a_failed_upload_is_counted_and_the_turn_still_answered() {
    let gw = Gateway::new("filesfail").await;
    let channel = "CFILESFAIL";
    let ts = "1713534720.005678";
    for _ in 0..2 {
        emulators().slack.fail_next(
            "files.completeUploadExternal",
            Some(channel),
            Fault::SlackError("not_in_channel".into()),
        );
    }
    let work = mention(&gw, "ff1", channel, ts, "draw a chart of the failures").await;
    assert!(gw.worker.handle_batch(work, None).await.batch_item_failures.is_empty());
    assert!(emulators().slack.shared_files(channel).is_empty());
    assert_eq!(gw.metric_sum("APIErrors", Some(("ErrorCode", "SlackFileUpload"))), 2.0);
    assert!(thread_text(channel, ts).contains("quarterly revenue chart"), "the answer went out");
    let item = aws_sdk_dynamodb::Client::new(&gw.sdk)
        .get_item()
        .table_name(&gw.resources.conversations_table)
        .key("pk", aws_sdk_dynamodb::types::AttributeValue::S(format!("THREAD#T0001#{channel}#{ts}")))
        .key("sk", aws_sdk_dynamodb::types::AttributeValue::S(format!("TURN#{ts}")))
        .send()
        .await
        .expect("get")
        .item
        .expect("turn record");
    assert_eq!(item["status"].as_s().ok().map(String::as_str), Some("answered"));
}

#[test]
fn the_file_share_fixture_is_a_file_share_from_slack_hosts() {
    let body: Value = body_of(&fixture("slack/file_share"));
    assert_eq!(body["event"]["subtype"], "file_share");
    let url = body["event"]["files"][0]["url_private_download"].as_str().unwrap_or_default();
    assert!(url.starts_with("https://files.slack.com/"), "{url}");
    shared::slack::files::FileHosts::slack()
        .check(&reqwest::Url::parse(url).expect("url"))
        .expect("the fixture's URL passes the production guard");
}
