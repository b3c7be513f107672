//! Each function's role in template.yaml allows exactly what its code calls: every AWS operation a
//! binary can call is allowed by its function's `Policies`, and every action a function's role
//! allows is needed by some call of that binary. A static cross-check (tests/src/sdk_calls.rs):
//! the SDK operations in the source each binary is built from, mapped to IAM actions, against the
//! template's statements. No emulator: reads files and `cargo metadata` only.
//!
//! What it cannot see:
//! - resources and conditions: it compares actions. `dynamodb:GetItem` granted on the usage table
//!   satisfies a GetItem the code makes on the conversations table; a wrong ARN or a
//!   `dynamodb:LeadingKeys` prefix the code's keys do not match passes (tests/tests/iam.rs checks
//!   that statements name the stack's resources; the emulator runs check the keys' shapes);
//! - calls made through something other than an SDK client method named in the file
//!   (a raw HTTP request to an AWS endpoint, a client handed over as a generic type from a file
//!   that names no `aws_sdk_*` crate);
//! - configuration: a call the code makes only when a setting is on is counted always, so the
//!   check runs with every optional parameter on, and at the defaults only tolerates the
//!   `CONDITIONAL` calls;
//! - permissions the Lambda service uses with the role, which SAM adds in the transform and the
//!   template does not spell out: AWSLambdaBasicExecutionRole (logs:CreateLogGroup,
//!   CreateLogStream, PutLogEvents) on every function, AWSLambdaSQSQueueExecutionRole
//!   (sqs:ReceiveMessage, DeleteMessage, GetQueueAttributes) for the SQS event sources;
//! - KMS: no queue, secret, table or stream of the template uses a customer managed key (checked
//!   below), so no call needs kms:Decrypt / GenerateDataKey; one that does must add them here.

use std::collections::{BTreeMap, BTreeSet};

use tests::moto::workspace_root;
use tests::sdk_calls::{binary_files, calls, Call, SdkOperations};
use tests::template::{PolicyKind, Template};

/// Calls the code makes only when a parameter is set, and the template grants under the same
/// condition: (binary, action, parameter that switches both on).
const CONDITIONAL: &[(&str, &str, &str)] = &[
    // PRICE_TABLE_OVERRIDE is set, and s3:GetObject granted, only with PriceTableOverrideBucket.
    ("slack-worker", "s3:GetObject", "PriceTableOverrideBucket"),
    ("token-logging", "s3:GetObject", "PriceTableOverrideBucket"),
];

/// The agent backends (AgentBackend) and the one invoke action each lets the worker's role call.
const BACKENDS: &[(&str, &str)] = &[
    ("classic", "bedrock:InvokeAgent"),
    ("harness", "bedrock-agentcore:InvokeHarness"),
    ("runtime", "bedrock-agentcore:InvokeAgentRuntime"),
];

fn template_text() -> String {
    std::fs::read_to_string(workspace_root().join("template.yaml")).expect("template.yaml")
}

/// Every optional permission-bearing parameter on (the grants are then a superset).
fn switched_on(text: &str) -> Template {
    Template::parse(text)
        .expect("template.yaml parses")
        .with_parameter("CreateAgent", "true")
        .with_parameter("PriceTableOverrideBucket", "prices-bucket")
        .with_parameter("ReportChannelId", "C0123REPORT")
        .with_parameter("AlarmEmail", "ops@example.com")
}

/// The template's functions: (logical id, binary).
fn functions(t: &Template) -> Vec<(String, String)> {
    t.created_of_type("AWS::Serverless::Function")
        .expect("functions")
        .into_iter()
        .map(|(id, r)| {
            let binary = r["Metadata"]["BuildProperties"]["Binary"].as_str().unwrap_or_default().to_string();
            assert!(!binary.is_empty(), "{id} has no Metadata.BuildProperties.Binary");
            (id, binary)
        })
        .collect()
}

/// The calls of every binary the template deploys.
fn code_calls(t: &Template) -> BTreeMap<String, Vec<Call>> {
    let ops = SdkOperations::load().expect("SDK operations");
    let mut out = BTreeMap::new();
    for (_, binary) in functions(t) {
        let files = binary_files(&binary).expect("sources");
        let (found, problems) = calls(&files, &ops);
        assert!(problems.is_empty(), "{binary}: the scan cannot read some calls:\n{}", problems.join("\n"));
        out.insert(binary, found);
    }
    out
}

fn matches(pattern: &str, action: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => action.starts_with(prefix),
        None => pattern == action,
    }
}

/// Mismatches between the code's calls and the roles (empty = each role is what its code needs).
fn check(t: &Template, code: &BTreeMap<String, Vec<Call>>) -> Vec<String> {
    let (statements, _) = match t.policy_statements() {
        Ok(s) => s,
        Err(e) => return vec![e],
    };
    let mut problems = Vec::new();
    for (id, binary) in functions(t) {
        let grants: Vec<(String, String)> = statements
            .iter()
            .filter(|s| s.owner == id && s.kind == PolicyKind::Identity && s.effect == "Allow")
            // A statement under a backend's condition grants only when that backend is chosen.
            .filter(|s| match &s.when {
                Some(c) if c.starts_with("Use") => t.condition(c).unwrap_or(true),
                _ => true,
            })
            .flat_map(|s| s.actions.iter().map(|a| (a.clone(), s.sid.clone().unwrap_or_else(|| "(no Sid)".into()))))
            .collect();
        let calls = code.get(&binary).map(Vec::as_slice).unwrap_or_default();
        let mut reported = BTreeSet::new();
        for c in calls {
            if grants.iter().any(|(g, _)| matches(g, &c.action)) || !reported.insert(c.action.clone()) {
                continue;
            }
            let conditional = CONDITIONAL.iter().any(|(b, a, param)| {
                *b == binary && *a == c.action && t.parameter_value(param).unwrap_or_default().is_empty()
            }) || BACKENDS.iter().any(|(backend, action)| {
                binary == "slack-worker"
                    && *action == c.action
                    && t.parameter_value("AgentBackend").as_deref() != Some(*backend)
            });
            if !conditional {
                problems.push(format!(
                    "{id} ({binary}) calls {} at {}, which needs {}: its role in template.yaml does not allow it",
                    c.operation, c.at, c.action
                ));
            }
        }
        for (g, sid) in &grants {
            if !calls.iter().any(|c| matches(g, &c.action)) {
                problems.push(format!(
                    "{id} ({binary}): its role allows {g} (statement {sid}), which no code of {binary} calls"
                ));
            }
        }
    }
    problems
}

/// Resources of the template encrypted with a customer managed key (their callers would need KMS
/// actions this check does not derive).
fn customer_keys(t: &Template) -> Vec<String> {
    let mut out = Vec::new();
    for (ty, path) in [
        ("AWS::SQS::Queue", &["KmsMasterKeyId"][..]),
        ("AWS::SecretsManager::Secret", &["KmsKeyId"][..]),
        ("AWS::DynamoDB::Table", &["SSESpecification", "KMSMasterKeyId"][..]),
        ("AWS::KinesisFirehose::DeliveryStream", &["DeliveryStreamEncryptionConfigurationInput", "KeyARN"][..]),
    ] {
        for (id, r) in t.resources_of_type(ty) {
            let v = path.iter().fold(r.get("Properties"), |v, k| v.and_then(|v| v.get(*k)));
            if v.is_some() {
                out.push(format!("{id} ({ty}) uses a customer managed key"));
            }
        }
    }
    out
}

#[test]
fn every_call_is_allowed_and_every_grant_is_used() {
    let text = template_text();
    let on = switched_on(&text);
    let code = code_calls(&on);
    let problems = check(&on, &code);
    assert!(problems.is_empty(), "every optional parameter on:\n{}", problems.join("\n"));
    let defaults = Template::parse(&text).expect("parse");
    let problems = check(&defaults, &code);
    assert!(problems.is_empty(), "default parameters:\n{}", problems.join("\n"));
    for (backend, _) in BACKENDS {
        let problems = check(&switched_on(&text).with_parameter("AgentBackend", backend), &code);
        assert!(problems.is_empty(), "AgentBackend={backend}:\n{}", problems.join("\n"));
    }
    assert!(customer_keys(&on).is_empty(), "{:?}: derive the KMS actions their callers need", customer_keys(&on));
}

#[test]
fn the_worker_may_invoke_only_the_chosen_backend() {
    let text = template_text();
    let (statements, _) = switched_on(&text).policy_statements().expect("statements");
    for (backend, action) in BACKENDS {
        let t = switched_on(&text).with_parameter("AgentBackend", backend);
        let granted: BTreeSet<&str> = statements
            .iter()
            .filter(|s| s.owner == "SlackWorkerFunction" && s.effect == "Allow")
            .filter(|s| s.when.as_deref().is_none_or(|c| t.condition(c).unwrap_or(true)))
            .flat_map(|s| s.actions.iter().map(String::as_str))
            .filter(|a| BACKENDS.iter().any(|(_, x)| x == a))
            .collect();
        assert_eq!(granted, BTreeSet::from([*action]), "AgentBackend={backend}");
    }
}

#[test]
fn the_scan_sees_each_binarys_calls_and_only_its_own() {
    // Guards the scan: a binary whose calls it cannot see would pass the check vacuously.
    let code = code_calls(&switched_on(&template_text()));
    let actions = |b: &str| -> BTreeSet<String> { code[b].iter().map(|c| c.action.clone()).collect() };
    for b in code.keys() {
        println!("{b}: {:?}", actions(b));
    }
    let has = |b: &str, a: &[&str]| {
        let got = actions(b);
        for x in a {
            assert!(got.contains(*x), "{b}: {x} not found in {got:?}");
        }
    };
    has(
        "slack-ingress",
        &["dynamodb:PutItem", "dynamodb:DeleteItem", "sqs:SendMessage", "secretsmanager:GetSecretValue"],
    );
    has(
        "slack-worker",
        &[
            "bedrock:InvokeAgent",
            "bedrock-agentcore:InvokeHarness",
            "bedrock-agentcore:InvokeAgentRuntime",
            "firehose:PutRecord",
            "dynamodb:BatchGetItem",
            "dynamodb:DeleteItem",
        ],
    );
    has("token-logging", &["dynamodb:PutItem", "dynamodb:UpdateItem"]);
    has("cost-analyzer", &["athena:StartQueryExecution", "glue:GetTable", "s3:ListBucket", "s3:DeleteObject"]);
    has("metrics-publisher", &["cloudwatch:PutMetricData", "sqs:GetQueueAttributes", "dynamodb:Query"]);
    // metrics-publisher reads turns through DynamoDbConversations but never writes feedback;
    // the ingress shares the worker's crate but not its agent.
    assert!(!actions("metrics-publisher").contains("dynamodb:DeleteItem"), "{:?}", actions("metrics-publisher"));
    assert!(!actions("slack-ingress").contains("bedrock:InvokeAgent"), "{:?}", actions("slack-ingress"));
}

#[test]
fn a_call_without_its_grant_or_a_grant_without_its_call_fails_the_check() {
    let text = template_text();
    let code = code_calls(&switched_on(&text));
    let mutate = |from: &str, to: &str| -> Vec<String> {
        let mutated = text.replacen(from, to, 1);
        assert_ne!(mutated, text, "{from} is in the template");
        check(&switched_on(&mutated), &code)
    };
    // A call whose grant is gone.
    let p = mutate(
        "              Action: sqs:SendMessage\n              Resource: !GetAtt WorkQueue.Arn",
        "              Action: sqs:SendMessageBatch\n              Resource: !GetAtt WorkQueue.Arn",
    );
    assert!(
        p.iter().any(|p| p
            .starts_with("SlackIngressFunction (slack-ingress) calls sqs SendMessage at shared/src/aws/sqs.rs:")
            && p.contains("needs sqs:SendMessage")),
        "{p:?}"
    );
    // ... which is also a grant no code uses.
    assert!(
        p.iter().any(|p| p.contains("allows sqs:SendMessageBatch") && p.contains("no code of slack-ingress")),
        "{p:?}"
    );
    // A grant no code uses.
    let p = mutate(
        "              Action: sqs:GetQueueAttributes\n              Resource: !GetAtt UsageQueue.Arn",
        "              Action: [sqs:GetQueueAttributes, sqs:PurgeQueue]\n              Resource: !GetAtt UsageQueue.Arn",
    );
    assert_eq!(
        p,
        vec!["MetricsPublisherFunction (metrics-publisher): its role allows sqs:PurgeQueue (statement ReadUsageQueueDepth), \
              which no code of metrics-publisher calls"
            .to_string()]
    );
    // A call the code gains: the ledger's writer deleting an item.
    let mut more = code.clone();
    more.get_mut("token-logging").expect("token-logging").push(Call {
        action: "dynamodb:DeleteItem".into(),
        operation: "dynamodb DeleteItem".into(),
        at: "shared/src/aws/ledger.rs:1".into(),
    });
    let p = check(&switched_on(&text), &more);
    assert_eq!(p.len(), 1, "{p:?}");
    assert!(p[0].contains("TokenLoggingFunction (token-logging) calls dynamodb DeleteItem"), "{p:?}");
}
