//! The function binaries themselves, started as Lambda starts them (a process talking to a local
//! Runtime API) with their env vars: proves `main` wires config, clients and handlers, which
//! the in-process tests bypass. scripts/test builds the binaries before the tests run.

use std::time::Duration;

use serde_json::json;
use tests::function_process::FunctionProcess;
use tests::gateway_binaries::{binary, round_trip};
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
