//! The function binaries themselves, started as Lambda starts them (a process talking to a local
//! Runtime API) with their env vars: proves `main` wires config, clients and handlers, which
//! the in-process tests bypass. scripts/test builds the binaries before the tests run.

use std::time::Duration;

use aws_lambda_events::event::sqs::SqsEvent;
use serde_json::json;
use shared::aws::usage::DynamoDbUsageReader;
use shared::domain::AgentBackend;
use shared::ports::UsageReader;
use tests::function_process::FunctionProcess;
use tests::gateway_binaries::{binary, round_trip, round_trip_with, Trip};
use tests::harness::emulators;
use tests::lambda_runtime_api::Outcome;
use tests::resources::{drain_queue, TEST_BOT_TOKEN, TEST_SIGNING_SECRET};

#[tokio::test(flavor = "multi_thread")]
async fn ingress_and_worker_binaries_answer_a_mention_end_to_end() {
    let channel = "CBINARIES";
    let rt = round_trip("debug", "binaries", channel).await;
    match &rt.ingress_response {
        Ok(Outcome::Response(v)) => assert_eq!(v["statusCode"], 200, "{v}\n{}", rt.ingress_output),
        other => panic!("ingress: {other:?}\n{}", rt.ingress_output),
    }
    assert_eq!(rt.queued, 1);
    match &rt.worker_response {
        Ok(Outcome::Response(v)) => assert_eq!(v["batchItemFailures"], json!([]), "{v}\n{}", rt.worker_output),
        other => panic!("worker: {other:?}\n{}", rt.worker_output),
    }
    assert_eq!(emulators().slack.posted_texts(channel).len(), 1, "{}", rt.worker_output);
    assert!(rt.worker_output.contains("\"APILatency\""), "EMF on stdout: {}", rt.worker_output);
    for out in [&rt.ingress_output, &rt.worker_output] {
        assert!(!out.contains(TEST_SIGNING_SECRET) && !out.contains(TEST_BOT_TOKEN), "no secret in logs: {out}");
    }
    let sdk = emulators().moto.sdk_config();
    assert_eq!(drain_queue(&sdk, &rt.resources.usage_queue_url).await.expect("usage").len(), 1);
}

/// The agent stalls past the runtime's deadline (events/agent/stall.json): the user sees the
/// apology in place of the early message, the worker answers its runtime in time (so the message
/// is not redelivered and re-run), and token-logging counts the stalled attempt's tokens once.
#[tokio::test(flavor = "multi_thread")]
async fn an_agent_stalling_past_the_runtime_deadline_gets_the_apology_and_its_tokens_counted_once() {
    let channel = "CBINSTALL";
    // Short for a worker (its template timeout is 120 s), long enough for the 10 s reserve.
    let trip = Trip {
        text: Some("<@UBOT> Why does the nightly report job take forever?".into()),
        worker_timeout: Duration::from_secs(18),
        ..Trip::default()
    };
    let rt = round_trip_with("debug", "binstall", channel, &trip).await;
    assert_eq!(rt.queued, 1);
    match &rt.worker_response {
        Ok(Outcome::Response(v)) => assert_eq!(v["batchItemFailures"], json!([]), "{v}\n{}", rt.worker_output),
        other => panic!("the worker did not answer within its deadline: {other:?}\n{}", rt.worker_output),
    }
    // One message (an early message edited, or a native stream closed and edited): the apology.
    let slack = &emulators().slack;
    let shown: Vec<String> = slack
        .threads()
        .into_iter()
        .filter(|((c, _), _)| c == channel)
        .flat_map(|(_, messages)| messages)
        .filter_map(|m| m["text"].as_str().map(str::to_string))
        .collect();
    assert_eq!(shown, vec![slack_gateway::worker::APOLOGY.to_string()], "what the user sees");

    // The usage record through token-logging, delivered twice as SQS may: counted once.
    let sdk = emulators().moto.sdk_config();
    let mut usage = SqsEvent::default();
    usage.records = drain_queue(&sdk, &rt.resources.usage_queue_url).await.expect("usage");
    assert_eq!(usage.records.len(), 1, "{}", rt.worker_output);
    let env = vec![
        ("AWS_ENDPOINT_URL".to_string(), emulators().moto.endpoint()),
        ("USAGE_TABLE".to_string(), rt.resources.usage_table.clone()),
    ];
    let log = std::env::temp_dir().join("binstall-token-logging.log");
    let logger = FunctionProcess::start(&binary("token-logging", "debug"), &env, 256, &log).expect("start");
    let event = serde_json::to_value(&usage).expect("event");
    let (outcomes, logger) = tokio::task::spawn_blocking(move || {
        let first = logger.invoke(event.clone(), Duration::from_secs(30));
        let again = logger.invoke(event, Duration::from_secs(30));
        ((first, again), logger)
    })
    .await
    .expect("join");
    for outcome in [outcomes.0, outcomes.1] {
        match outcome {
            Ok(Outcome::Response(v)) => assert_eq!(v["batchItemFailures"], json!([]), "{v}\n{}", logger.output()),
            other => panic!("token-logging: {other:?}\n{}", logger.output()),
        }
    }
    let reader = DynamoDbUsageReader::new(aws_sdk_dynamodb::Client::new(&sdk), &rt.resources.usage_table);
    let spend = reader.user_spend("T0001", "U024BE7LH", chrono::Utc::now().date_naive()).await.expect("spend");
    assert_eq!(spend.day.turns, 1, "{spend:?}");
    assert_eq!((spend.day.input_tokens, spend.day.output_tokens), (1190 + 1722, 52 + 214), "{spend:?}");
}

/// The worker binary configured for each AgentCore backend the way the template configures it
/// (AGENT_BACKEND and the ARN; AGENT_ID left to default to the ARN's resource) answers through
/// that backend, and its usage record says which, priced as the configured model.
#[tokio::test(flavor = "multi_thread")]
async fn the_worker_binary_answers_through_each_agentcore_backend() {
    for (backend, channel, agent_id) in [
        (AgentBackend::Harness, "CBINHARNESS", "support-a1b2"),
        (AgentBackend::Runtime, "CBINRUNTIME", "support_agent-a1b2c3d4e5"),
    ] {
        let trip = Trip { backend, ..Trip::default() };
        let rt = round_trip_with("debug", &format!("bin{backend}"), channel, &trip).await;
        match &rt.worker_response {
            Ok(Outcome::Response(v)) => assert_eq!(v["batchItemFailures"], json!([]), "{v}\n{}", rt.worker_output),
            other => panic!("{backend} worker: {other:?}\n{}", rt.worker_output),
        }
        assert_eq!(emulators().slack.posted_texts(channel).len(), 1, "{backend}: {}", rt.worker_output);
        let asked = emulators().agent.agentcore_requests();
        assert!(
            asked
                .iter()
                .any(|r| r.backend == backend && r.user_id.as_deref() == Some("U024BE7LH") && r.session_id.len() >= 33),
            "{backend}: the fake AgentCore was not asked as the thread's user: {asked:?}"
        );
        let sdk = emulators().moto.sdk_config();
        let usage = drain_queue(&sdk, &rt.resources.usage_queue_url).await.expect("usage");
        assert_eq!(usage.len(), 1, "{backend}: {}", rt.worker_output);
        let record: shared::domain::UsageRecord =
            serde_json::from_str(usage[0].body.as_deref().unwrap_or_default()).expect("usage record");
        assert_eq!((record.agent_backend, record.agent_id.as_str()), (backend, agent_id));
        assert!(!record.calls.is_empty(), "{backend}: {record:?}");
        // The harness's stream names no model: its usage is priced as HARNESS_MODEL_ID. (A
        // runtime agent's usage events may name theirs; the configured one fills the gaps.)
        if backend == AgentBackend::Harness {
            assert!(record.calls.iter().all(|c| c.model_id == tests::harness::AGENTCORE_MODEL_ID), "{record:?}");
        }
    }
}

#[test]
fn a_missing_env_var_fails_init_and_names_the_variable() {
    let env = [
        ("SLACK_SECRET_ARN".to_string(), "arn:aws:secretsmanager:us-east-1:123456789012:secret:x".to_string()),
        ("WORK_QUEUE_URL".to_string(), "http://q".to_string()),
    ];
    let log = std::env::temp_dir().join("binaries-missing-env.log");
    let mut ingress = FunctionProcess::start(&binary("slack-ingress", "debug"), &env, 128, &log).expect("start");
    let status = ingress.wait_exit(Duration::from_secs(20)).expect("exits at init");
    assert!(!status.success());
    assert!(ingress.output().contains("DEDUP_TABLE is not set"), "{}", ingress.output());
}
