//! Issue 13's fault "SendMessage failing once at ingress", end to end through the real binaries:
//! slack-ingress runs as Lambda runs it, its AWS calls going through a fault proxy in front of
//! moto that fails SendMessage during Slack's first delivery. Slack then retries (as it does:
//! nearly immediately, then after 1 and 5 minutes); the retry must be queued, and the user gets
//! exactly one answer from slack-worker, with one conversation turn and one usage record.
//! scripts/test builds the binaries before the tests run.

use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use serde_json::{json, Value};
use tests::fault_proxy::{Fault, FaultProxy};
use tests::function_process::FunctionProcess;
use tests::gateway_binaries::{binary, blocking, env, worker_env};
use tests::harness::emulators;
use tests::lambda_runtime_api::Outcome;
use tests::resources::{drain_queue, GatewayResources, TEST_SIGNING_SECRET};
use tests::slack_events::{body_of, fixture, with_body};

fn status_of(outcome: &Result<Outcome, String>, output: &str) -> i64 {
    match outcome {
        Ok(Outcome::Response(v)) => v["statusCode"].as_i64().unwrap_or(0),
        other => panic!("ingress: {other:?}\n{output}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn sendmessage_failing_at_ingress_is_retried_by_slack_and_answered_once() {
    let prefix = "sendfail-bin";
    let channel = "CSENDFAILBIN";
    let emu = emulators();
    let sdk = emu.moto.sdk_config();
    let res = GatewayResources::create(&sdk, prefix).await.expect("resources");
    let proxy = FaultProxy::start(&emu.moto.endpoint()).expect("fault proxy");
    let logs = std::env::temp_dir();

    let ingress_env = env(&[
        ("AWS_ENDPOINT_URL", &proxy.endpoint()),
        ("SLACK_SECRET_ARN", &res.secret_arn),
        ("WORK_QUEUE_URL", &res.work_queue_url),
        ("DEDUP_TABLE", &res.dedup_table),
        ("SLACK_API_BASE", &emu.slack.api_base()),
        ("FEEDBACK_POSITIVE_REACTIONS", "+1,thumbsup"),
        ("FEEDBACK_NEGATIVE_REACTIONS", "-1,thumbsdown"),
    ]);
    let ingress = FunctionProcess::start(
        &binary("slack-ingress", "debug"),
        &ingress_env,
        128,
        &logs.join(format!("{prefix}-ingress.log")),
    )
    .expect("start ingress");

    let mut body = body_of(&fixture("slack/app_mention"));
    body["event_id"] = json!(format!("Ev{prefix}"));
    body["event"]["channel"] = json!(channel);
    let ts = body["event"]["ts"].as_str().expect("ts").to_string();
    let delivery = |retry: Option<u32>| -> Value {
        let mut e = with_body(fixture("slack/app_mention"), &body, TEST_SIGNING_SECRET, chrono::Utc::now().timestamp());
        if let Some(n) = retry {
            e["headers"]["x-slack-retry-num"] = json!(n.to_string());
            e["headers"]["x-slack-retry-reason"] = json!("http_error");
        }
        e
    };

    // Slack's first delivery: every SendMessage attempt (the SDK retries too) fails.
    proxy.inject(Fault::error("SendMessage", 500, "InternalError", "We encountered an internal error."));
    let first = delivery(None);
    let (outcome, ingress) = blocking(move || (ingress.invoke(first, Duration::from_secs(30)), ingress)).await;
    let first_status = status_of(&outcome, &ingress.output());
    assert!(first_status >= 500, "not queued, so not acknowledged: {first_status}\n{}", ingress.output());
    let (sends, failed) = proxy.seen("SendMessage");
    assert!(sends >= 1 && failed == sends, "SendMessage tried {sends}, failed {failed}");
    proxy.heal("SendMessage");

    // Slack's retries: the first one gets through, the later ones are duplicates.
    let mut statuses = Vec::new();
    let mut ingress = ingress;
    for n in 1..=2 {
        let retry = delivery(Some(n));
        let (outcome, back) = blocking(move || (ingress.invoke(retry, Duration::from_secs(30)), ingress)).await;
        ingress = back;
        statuses.push(status_of(&outcome, &ingress.output()));
    }
    assert_eq!(statuses, vec![200, 200], "retry 1 queued, retry 2 a duplicate\n{}", ingress.output());
    let records = drain_queue(&sdk, &res.work_queue_url).await.expect("drain");
    assert_eq!(records.len(), 1, "queued exactly once\n{}", ingress.output());

    // The worker binary answers it.
    let mut sqs_event: Value = fixture("sqs/work_message");
    sqs_event["Records"][0]["body"] = json!(records[0].body);
    sqs_event["Records"][0]["messageId"] = json!(records[0].message_id);
    let worker_env = worker_env(&emu.moto.endpoint(), &res);
    let worker = FunctionProcess::start(
        &binary("slack-worker", "debug"),
        &worker_env,
        256,
        &logs.join(format!("{prefix}-worker.log")),
    )
    .expect("start worker");
    let (outcome, worker) = blocking(move || (worker.invoke(sqs_event, Duration::from_secs(60)), worker)).await;
    match &outcome {
        Ok(Outcome::Response(v)) => assert_eq!(v["batchItemFailures"], json!([]), "{v}\n{}", worker.output()),
        other => panic!("worker: {other:?}\n{}", worker.output()),
    }

    // What the user saw in Slack.
    let calls = emu.slack.calls_for(channel);
    let seen: Vec<String> = calls.iter().map(|c| c.method.clone()).collect();
    eprintln!("Slack calls in {channel}: {seen:?}");
    assert_eq!(seen.iter().filter(|m| *m == "chat.postMessage").count(), 1, "one answer: {seen:?}");
    let turns = aws_sdk_dynamodb::Client::new(&sdk)
        .query()
        .table_name(&res.conversations_table)
        .key_condition_expression("pk = :pk AND begins_with(sk, :turn)")
        .expression_attribute_values(":pk", AttributeValue::S(format!("THREAD#T0001#{channel}#{ts}")))
        .expression_attribute_values(":turn", AttributeValue::S("TURN#".into()))
        .send()
        .await
        .expect("turns")
        .count;
    assert_eq!(turns, 1, "one conversation turn");
    assert_eq!(drain_queue(&sdk, &res.usage_queue_url).await.expect("usage").len(), 1, "one usage record");
    assert!(!ingress.output().contains(TEST_SIGNING_SECRET), "no secret in the logs");
}
