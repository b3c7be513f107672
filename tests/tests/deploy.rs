//! The template deploys, and what it deploys is what the code needs.
//!
//! `tests/cfn/deploy_to_moto.py` does what `sam deploy` does against the local emulator: translate
//! the Serverless transform (aws-sam-translator), put the code in S3, create the stack. Then this
//! test reads every deployed function's configuration and checks that each env var its code
//! requires is set, that each one it sets is read by the code, and that each one naming a
//! resource names a resource of the right kind that exists - and is the one the stack's outputs
//! give the user.
//!
//! moto's CloudFormation does not take every resource type. Those are listed in `NOT_EMULATED`
//! with the reason; the script takes them out of the stack and leaves a marker where they were
//! referenced, so an env var can still be checked to point at the right (skipped) resource.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;
use tests::binary_sources::{binary_sources, crate_of, rust_files};
use tests::moto::{tools_bin, workspace_root, Moto};

const MARK: &str = "EMULATOR-SKIPPED:";

/// Resource types of template.yaml that moto's CloudFormation cannot create (checked with
/// moto.cloudformation.parsing.get_model_map), and why that is acceptable here.
const NOT_EMULATED: &[(&str, &str)] = &[
    (
        "AWS::SecretsManager::Secret",
        "moto serves the Secrets Manager API but not the resource type; env vars are checked to name it",
    ),
    ("AWS::S3::BucketPolicy", "no CloudFormation model in moto; the policy is checked by cfn-lint and checkov"),
    ("AWS::Logs::LogStream", "no CloudFormation model in moto (Firehose's error log stream)"),
    (
        "AWS::KinesisFirehose::DeliveryStream",
        "no CloudFormation model in moto; the worker's stream name is checked to name it",
    ),
    ("AWS::Glue::Database", "no CloudFormation model in moto; the SQL is tested with an embedded engine"),
    ("AWS::Glue::Table", "no CloudFormation model in moto; columns are checked against the event type"),
    ("AWS::Bedrock::Agent", "Bedrock is not emulated (created only when CreateAgent=true)"),
    ("AWS::Bedrock::AgentAlias", "Bedrock is not emulated (created only when CreateAgent=true)"),
    ("AWS::BedrockAgentCore::Harness", "AgentCore is not emulated (created only when CreateHarness=true)"),
    ("AWS::BedrockAgentCore::HarnessEndpoint", "AgentCore is not emulated (created only when CreateHarness=true)"),
    ("AWS::BedrockAgentCore::Gateway", "AgentCore is not emulated (created only when CreateHarness=true)"),
    (
        "AWS::BedrockAgentCore::GatewayTarget",
        "AgentCore is not emulated; its tool schemas are checked in action_group.rs",
    ),
    ("AWS::Lambda::Url", "no CloudFormation model in moto; its target and auth type are checked below"),
    ("AWS::Athena::WorkGroup", "no CloudFormation model in moto"),
    ("AWS::Athena::NamedQuery", "no CloudFormation model in moto; every named query runs in the SQL tests"),
    ("AWS::CloudWatch::Alarm", "no CloudFormation model in moto; alarms are cross-checked against emitted metrics"),
    (
        "AWS::CloudWatch::Dashboard",
        "no CloudFormation model in moto; widgets are cross-checked against emitted metrics",
    ),
    ("AWS::CloudWatch::AnomalyDetector", "no CloudFormation model in moto"),
    ("AWS::Logs::QueryDefinition", "no CloudFormation model in moto"),
    ("AWS::SNS::Subscription", "no CloudFormation model in moto (optional email subscription)"),
    ("AWS::SNS::TopicPolicy", "no CloudFormation model in moto"),
    ("AWS::Chatbot::SlackChannelConfiguration", "AWS Chatbot is not emulated (optional)"),
    ("AWS::Scheduler::Schedule", "no CloudFormation model in moto"),
    ("AWS::SQS::QueuePolicy", "no CloudFormation model in moto"),
    ("AWS::Lambda::EventInvokeConfig", "no CloudFormation model in moto"),
    ("AWS::Logs::MetricFilter", "no CloudFormation model in moto"),
    ("AWS::KMS::Alias", "no CloudFormation model in moto"),
];

/// Env vars set by the Lambda runtime or the SDK, never by the template.
const RUNTIME_VARS: &[&str] = &["AWS_REGION", "AWS_LAMBDA_FUNCTION_NAME", "AWS_ENDPOINT_URL", "RUST_LOG"];

struct Deployed {
    doc: Value,
}

impl Deployed {
    fn deploy(moto: &Moto, params: &[(&str, &str)]) -> Deployed {
        Deployed::deploy_stack(moto, "dev", params)
    }

    fn deploy_stack(moto: &Moto, stack: &str, params: &[(&str, &str)]) -> Deployed {
        let python = tools_bin().expect("tools").join("python");
        let script = workspace_root().join("tests/cfn/deploy_to_moto.py");
        let mut cmd = Command::new(python);
        cmd.arg(&script).arg(workspace_root().join("template.yaml")).arg(moto.endpoint()).arg(stack);
        for (k, v) in params {
            cmd.arg(format!("{k}={v}"));
        }
        let out = cmd.env("AWS_DEFAULT_REGION", "us-east-1").output().expect("run deploy_to_moto.py");
        assert!(
            out.status.success(),
            "deploy_to_moto.py failed:\n{}",
            String::from_utf8_lossy(&out.stderr).lines().rev().take(30).collect::<Vec<_>>().join("\n")
        );
        Deployed { doc: serde_json::from_slice(&out.stdout).expect("deploy_to_moto.py prints JSON") }
    }

    fn functions(&self) -> &serde_json::Map<String, Value> {
        self.doc["functions"].as_object().expect("functions")
    }

    fn skipped_type(&self, logical: &str) -> Option<&str> {
        self.doc["skipped"][logical].as_str()
    }
}

/// Env var names read by the code in `files`: (those passed to `required("X")`, those passed to any
/// other function call). Unit-test modules are left out.
fn env_reads(files: &[PathBuf]) -> (BTreeSet<String>, BTreeSet<String>) {
    let (mut required, mut optional) = (BTreeSet::new(), BTreeSet::new());
    for file in files {
        let text = std::fs::read_to_string(file).unwrap_or_else(|e| panic!("read {}: {e}", file.display()));
        let code = text.split("#[cfg(test)]").next().unwrap_or_default();
        required.extend(names_passed_to(code, "required(\""));
        // Anything else that hands an env-var-shaped literal to a function (optional, parsed, or a
        // local wrapper such as the worker's budget `limit("X")`) reads it, or may.
        optional.extend(names_passed_to(code, "(\""));
    }
    optional.retain(|n| !required.contains(n));
    (required, optional)
}

/// The env-var-shaped string literals passed as first argument of `call` (e.g. `required("`).
fn names_passed_to<'a>(code: &'a str, call: &'a str) -> impl Iterator<Item = String> + 'a {
    code.split(call).skip(1).filter_map(|piece| piece.split('"').next()).filter_map(|name| {
        let env_like =
            !name.is_empty() && name.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
        env_like.then(|| name.to_string())
    })
}

/// The resource type an env var's name says it points at, by the naming convention of the contract.
fn expected_type(var: &str) -> Option<&'static str> {
    let by_suffix: &[(&str, &str)] = &[
        ("_SECRET_ARN", "AWS::SecretsManager::Secret"),
        ("_QUEUE_URL", "AWS::SQS::Queue"),
        ("_STREAM_NAME", "AWS::KinesisFirehose::DeliveryStream"),
        ("_TABLE", "AWS::DynamoDB::Table"),
        ("_BUCKET", "AWS::S3::Bucket"),
        ("GLUE_DATABASE", "AWS::Glue::Database"),
        ("ATHENA_WORKGROUP", "AWS::Athena::WorkGroup"),
        ("_TOPIC_ARN", "AWS::SNS::Topic"),
    ];
    by_suffix.iter().find(|(s, _)| var.ends_with(s)).map(|(_, t)| *t)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_template_deploys_and_every_function_gets_the_env_its_code_reads() {
    let moto = Moto::start().expect("moto");
    let deployed = Deployed::deploy(
        &moto,
        &[("AgentId", "AGENT12345"), ("AgentAliasId", "ALIAS12345"), ("WorkerMemorySize", "512")],
    );
    let doc = &deployed.doc;
    assert_eq!(doc["status"], "CREATE_COMPLETE", "stack: {} {:?}", doc["reason"], doc["failures"]);
    assert_eq!(doc["failures"].as_array().map(Vec::len), Some(0), "failed resources: {}", doc["failures"]);

    // Every resource moto could not create is a known, explained gap - nothing new slips by.
    let explained: BTreeMap<&str, &str> = NOT_EMULATED.iter().copied().collect();
    for (logical, ty) in doc["skipped"].as_object().expect("skipped") {
        let ty = ty.as_str().unwrap_or_default();
        assert!(explained.contains_key(ty), "{logical} ({ty}) is not created by the emulator and not in NOT_EMULATED");
    }

    let sdk = moto.sdk_config();
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let ddb = aws_sdk_dynamodb::Client::new(&sdk);
    let s3 = aws_sdk_s3::Client::from_conf(aws_sdk_s3::config::Builder::from(&sdk).force_path_style(true).build());
    let (shared_required, shared_optional) = env_reads(&rust_files(&workspace_root().join("shared/src")));
    let outputs: BTreeSet<String> =
        doc["outputs"].as_object().expect("outputs").values().filter_map(|v| v.as_str().map(String::from)).collect();

    let binaries = doc["binaries"].as_object().expect("binaries");
    assert!(binaries.len() >= 4, "expected every function of the template, got {binaries:?}");
    for (logical, binary) in binaries {
        let binary = binary.as_str().unwrap_or_else(|| panic!("{logical} has no BuildProperties.Binary"));
        let function = deployed.functions().get(logical).unwrap_or_else(|| panic!("{logical} was not deployed"));
        let env = function["env"].as_object().expect("env");
        let (required, optional) = env_reads(&binary_sources(&crate_of(binary), binary));
        assert!(!required.is_empty(), "{binary}: no required(\"..\") found, the source scan is broken");

        for var in &required {
            let value = env.get(var).map(|v| v.to_string().trim_matches('"').to_string()).unwrap_or_default();
            assert!(!value.is_empty(), "{logical} ({binary}) requires {var} but the template does not set it");
        }
        for (var, value) in env {
            assert!(
                [&required, &optional, &shared_required, &shared_optional].iter().any(|set| set.contains(var)),
                "{logical} ({binary}) is given {var}, which its code never reads"
            );
            assert!(!RUNTIME_VARS.contains(&var.as_str()), "{logical} sets {var}, which the runtime owns");
            let Some(want) = expected_type(var) else { continue };
            let value = value.as_str().unwrap_or_default();
            if let Some(marker) = value.strip_prefix(MARK) {
                let target = marker.split('.').next().unwrap_or_default();
                assert_eq!(deployed.skipped_type(target), Some(want), "{logical}: {var} names {target}");
            } else {
                match want {
                    "AWS::SQS::Queue" => {
                        sqs.get_queue_attributes()
                            .queue_url(value)
                            .send()
                            .await
                            .unwrap_or_else(|e| panic!("{logical}: {var}={value} is not a queue: {e:?}"));
                    }
                    "AWS::DynamoDB::Table" => {
                        ddb.describe_table()
                            .table_name(value)
                            .send()
                            .await
                            .unwrap_or_else(|e| panic!("{logical}: {var}={value} is not a table: {e:?}"));
                    }
                    "AWS::S3::Bucket" => {
                        s3.head_bucket()
                            .bucket(value)
                            .send()
                            .await
                            .unwrap_or_else(|e| panic!("{logical}: {var}={value} is not a bucket: {e:?}"));
                    }
                    other => {
                        panic!("{logical}: {var}={value} should name a {other}, which the emulator does not create")
                    }
                }
            }
            assert!(
                outputs.contains(value),
                "{logical}: {var}={value} is not among the stack's outputs, so a user cannot find it"
            );
        }
    }

    // Parameters reach the functions (moto drops Architectures from CloudFormation, so memory it is).
    assert_eq!(deployed.functions()["SlackWorkerFunction"]["memory"], 512, "WorkerMemorySize ignored");

    // The Slack request URL: moto does not create Function URLs, so check the resource itself.
    let url = doc["skipped_properties"]["SlackIngressFunctionUrl"].clone();
    assert_eq!(url["TargetFunctionArn"], serde_json::json!({"Ref": "SlackIngressFunction"}));
    assert_eq!(url["AuthType"], "NONE", "Slack signs its own requests; the function verifies them");
    assert_eq!(doc["outputs"]["SlackRequestUrl"], "EMULATOR-SKIPPED:SlackIngressFunctionUrl.FunctionUrl");

    // MonitoringLevel: the default deploys essential (no alarm-topic key, no dashboard output);
    // full deploys too, as a second stack in the same emulator, and its functions publish all.
    let metrics_level = |d: &Deployed| -> BTreeSet<String> {
        d.functions().values().map(|f| f["env"]["METRICS_LEVEL"].as_str().unwrap_or("unset").to_string()).collect()
    };
    assert_eq!(metrics_level(&deployed), BTreeSet::from(["essential".to_string()]));
    assert!(doc["physical"].get("AlarmTopicKey").is_none(), "essential creates no KMS key: {}", doc["physical"]);
    assert!(doc["physical"].get("AlarmTopic").is_some(), "the alarm topic exists at every level");
    assert!(doc["outputs"].get("BotHealthDashboardUrl").is_none());
    // The full stack also creates an AgentCore harness and answers through it (AgentBackend
    // harness, HarnessArn empty): the worker is pointed at the created harness's live endpoint.
    let full = Deployed::deploy_stack(
        &moto,
        "full",
        &[("MonitoringLevel", "full"), ("AgentBackend", "harness"), ("CreateHarness", "true")],
    );
    assert_eq!(full.doc["status"], "CREATE_COMPLETE", "full: {} {:?}", full.doc["reason"], full.doc["failures"]);
    assert_eq!(full.doc["failures"].as_array().map(Vec::len), Some(0), "full: {}", full.doc["failures"]);
    for (logical, ty) in full.doc["skipped"].as_object().expect("skipped") {
        let ty = ty.as_str().unwrap_or_default();
        assert!(explained.contains_key(ty), "full: {logical} ({ty}) is not in NOT_EMULATED");
    }
    assert_eq!(metrics_level(&full), BTreeSet::from(["full".to_string()]));
    assert_eq!(full.doc["physical"]["AlarmTopicKey"]["type"], "AWS::KMS::Key", "full encrypts the alarm topic");
    assert!(full.doc["outputs"].get("BotHealthDashboardUrl").is_some());

    let worker = &full.functions()["SlackWorkerFunction"]["env"];
    assert_eq!(worker["AGENT_BACKEND"], "harness");
    assert_eq!(
        worker["HARNESS_ARN"], "EMULATOR-SKIPPED:AgentCoreHarness.Arn",
        "the worker invokes the created harness"
    );
    assert_eq!(worker["HARNESS_QUALIFIER"], "live", "through the endpoint the stack created");
    assert_eq!(worker["HARNESS_QUALIFIER"], full.doc["skipped_properties"]["AgentCoreHarnessEndpoint"]["EndpointName"]);
    // The harness's tokens are priced as the model it was created with.
    let harness = &full.doc["skipped_properties"]["AgentCoreHarness"];
    assert_eq!(harness["Model"]["BedrockModelConfig"]["ModelId"], serde_json::json!({"Ref": "HarnessFoundationModel"}));
    let template = tests::template::Template::load(&workspace_root().join("template.yaml")).expect("template");
    let model = template.parameter_default("HarnessFoundationModel").expect("HarnessFoundationModel default");
    assert_eq!(worker["HARNESS_MODEL_ID"].as_str(), Some(model.as_str()));
    assert!(
        shared::pricing::PriceTable::embedded().price(&model).is_some(),
        "the default harness model {model} is in the price table"
    );
    assert!(worker.get("AGENT_ID").is_none() && worker.get("AGENT_RUNTIME_ARN").is_none(), "{worker}");
    for (logical, ty) in [
        ("AgentCoreHarness", "AWS::BedrockAgentCore::Harness"),
        ("AgentCoreHarnessEndpoint", "AWS::BedrockAgentCore::HarnessEndpoint"),
        ("ToolsGateway", "AWS::BedrockAgentCore::Gateway"),
        ("ToolsGatewayTarget", "AWS::BedrockAgentCore::GatewayTarget"),
    ] {
        assert_eq!(full.skipped_type(logical), Some(ty), "{logical}");
    }
    // What the emulator can create of it: the two roles.
    for role in ["AgentCoreHarnessRole", "ToolsGatewayRole"] {
        assert_eq!(full.doc["physical"][role]["type"], "AWS::IAM::Role", "{role}: {}", full.doc["physical"]);
    }
    let target = &full.doc["skipped_properties"]["ToolsGatewayTarget"]["TargetConfiguration"]["Mcp"]["Lambda"];
    assert_eq!(target["LambdaArn"], serde_json::json!({"Fn::GetAtt": ["ActionGroupFunction", "Arn"]}), "{target}");
    assert!(doc["physical"].get("AgentCoreHarnessRole").is_none(), "the default stack creates no harness");
}

#[test]
fn the_env_scan_finds_what_the_code_reads() {
    // Guards the scanner itself: a function whose config it cannot see would pass vacuously.
    let gateway = crate_of("slack-worker");
    let (required, optional) = env_reads(&binary_sources(&gateway, "slack-worker"));
    for var in ["AGENT_ID", "AGENT_ALIAS_ID", "USAGE_QUEUE_URL", "EVENTS_STREAM_NAME", "CONVERSATIONS_TABLE"] {
        assert!(required.contains(var), "{var} not found in {required:?}");
    }
    assert!(optional.contains("STORE_MESSAGE_TEXT"), "{optional:?}");
    // The ingress shares the crate but not the worker's config.
    let (ingress, _) = env_reads(&binary_sources(&gateway, "slack-ingress"));
    assert!(ingress.contains("WORK_QUEUE_URL") && !ingress.contains("AGENT_ID"), "{ingress:?}");
    assert_eq!(expected_type("WORK_QUEUE_URL"), Some("AWS::SQS::Queue"));
    assert_eq!(expected_type("AGENT_ID"), None);
}
