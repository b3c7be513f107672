//! Least privilege in template.yaml: every IAM statement (functions' `Policies`, roles, key,
//! bucket and queue policies) names the stack's own resources. A wildcard - `Resource: '*'`, an
//! action like `s3:*` or `cloudwatch:Get*`, a `*` in an ARN other than objects under a resource
//! of the stack - is allowed only where `ALLOWED` says why (AWS requires it, or it is a key
//! policy's own key), with the condition key that narrows it. Managed policies and SAM policy
//! templates are not allowed at all (their statements are not reviewable here). Reads the
//! template only; every optional resource is switched on so that its statements are checked too.
//!
//! Not seen here: the AWSLambdaBasicExecutionRole that SAM attaches to every function role it
//! generates (logs:CreateLogGroup / CreateLogStream / PutLogEvents on '*'); it is added by the
//! transform, not written in the template.

use shared::metric_names::MetricsLevel;
use tests::moto::workspace_root;
use tests::template::{PolicyKind, PolicyStatement, Template};

/// (owner logical id, action, condition key the statement must use, why the wildcard is needed).
const ALLOWED: &[(&str, &str, Option<&str>, &str)] = &[
    (
        "SlackWorkerFunction",
        "bedrock-agentcore:InvokeAgentRuntime",
        None,
        "the endpoints (qualifiers) of the one runtime named by AgentRuntimeArn: \
         runtime/<id>/runtime-endpoint/<name> are sub-resources of that runtime",
    ),
    (
        "MetricsPublisherFunction",
        "cloudwatch:PutMetricData",
        Some("cloudwatch:namespace"),
        "PutMetricData has no resource type (Service Authorization Reference): Resource must be '*'; \
         the namespace condition keeps it to the stack's namespace",
    ),
    (
        "ChatbotRole",
        "cloudwatch:Describe*",
        None,
        "AWS Chatbot's notification-only permissions: reads alarms to render a notification",
    ),
    (
        "ChatbotRole",
        "cloudwatch:Get*",
        None,
        "AWS Chatbot's notification-only permissions: GetMetricData / GetMetricWidgetImage have no resource type",
    ),
    (
        "ChatbotRole",
        "cloudwatch:List*",
        None,
        "AWS Chatbot's notification-only permissions: ListMetrics has no resource type",
    ),
    (
        "AlarmTopicKey",
        "kms:*",
        None,
        "the account-root statement of a key policy: without it IAM policies cannot grant the key and \
         the key cannot be managed; '*' in a key policy is the key itself",
    ),
    (
        "AlarmTopicKey",
        "kms:GenerateDataKey*",
        Some("aws:SourceAccount"),
        "AWS's key policy for CloudWatch alarms publishing to an encrypted SNS topic",
    ),
];

/// The template with every optional permission-bearing resource created.
fn everything(level: MetricsLevel) -> Template {
    switch_on(Template::load(&workspace_root().join("template.yaml")).expect("template.yaml"), level)
}

fn switch_on(t: Template, level: MetricsLevel) -> Template {
    t.at_level(level)
        .with_parameter("CreateAgent", "true")
        .with_parameter("ChatbotSlackWorkspaceId", "T0123ABCD")
        .with_parameter("ChatbotSlackChannelId", "C0123ABCD")
        .with_parameter("PriceTableOverrideBucket", "prices-bucket")
        .with_parameter("AlarmEmail", "ops@example.com")
        .with_parameter("ReportChannelId", "C0123REPORT")
}

fn wildcard_action(a: &str) -> bool {
    a.contains('*')
}

/// '*' itself, an ARN whose resource part is '*', or a '*' anywhere but at the end of a path under
/// a resource of the stack (`<Bucket.Arn>/events/*`).
fn wildcard_resource(r: &str) -> bool {
    if !r.contains('*') {
        return false;
    }
    let under_stack_resource =
        r.starts_with('<') && r.find('/').is_some_and(|i| !r[i..].trim_end_matches('*').contains('*'));
    !under_stack_resource
}

fn allowed(
    owner: &str,
    action: &str,
) -> Option<&'static (&'static str, &'static str, Option<&'static str>, &'static str)> {
    ALLOWED.iter().find(|(o, a, _, _)| *o == owner && *a == action)
}

/// Problems with the template's IAM (empty = least privilege as far as this check sees).
fn check(t: &Template) -> Vec<String> {
    let (statements, attached) = match t.policy_statements() {
        Ok(x) => x,
        Err(e) => return vec![e],
    };
    let keys: Vec<String> = t.resources_of_type("AWS::KMS::Key").into_iter().map(|(id, _)| id).collect();
    let mut problems: Vec<String> = attached
        .iter()
        .map(|a| format!("{} attaches {}: write the statements it needs instead", a.owner, a.name))
        .collect();
    // A statement under a condition that is false here is not granted here.
    for s in statements.iter().filter(|s| s.when.as_deref().is_none_or(|c| t.condition(c).unwrap_or(true))) {
        let PolicyStatement { owner, kind, sid, effect, actions, resources, condition_keys, when: _ } = s;
        let at = format!("{owner} {}", sid.as_deref().unwrap_or("(no Sid)"));
        if effect == "Deny" {
            continue; // A deny only narrows, whatever its wildcards.
        }
        if actions.is_empty() || (resources.is_empty() && *kind == PolicyKind::Identity) {
            problems.push(format!("{at}: no Action or no Resource"));
        }
        let star_is_self = *kind == PolicyKind::Resource && keys.contains(owner);
        let broad_resource = resources.iter().any(|r| wildcard_resource(r)) && !star_is_self;
        for a in actions {
            if !(wildcard_action(a) || broad_resource) {
                continue;
            }
            match allowed(owner, a) {
                None if wildcard_action(a) => problems.push(format!("{at}: wildcard action {a} is not in ALLOWED")),
                None => problems.push(format!("{at}: {a} on {resources:?} (a wildcard resource) is not in ALLOWED")),
                Some((_, _, Some(key), _)) if !condition_keys.iter().any(|k| k == key) => {
                    problems.push(format!("{at}: {a} is allowed only with a {key} condition"))
                }
                Some(_) => {}
            }
        }
    }
    problems
}

#[test]
fn every_statement_names_the_stacks_resources_or_says_why_not() {
    for (backend, param, arn) in [
        ("harness", "HarnessArn", "arn:aws:bedrock-agentcore:us-east-1:111122223333:harness/support-a1b2"),
        ("runtime", "AgentRuntimeArn", "arn:aws:bedrock-agentcore:us-east-1:111122223333:runtime/helpdesk-XyZ12"),
    ] {
        let t = everything(MetricsLevel::Full).with_parameter("AgentBackend", backend).with_parameter(param, arn);
        let problems = check(&t);
        assert!(problems.is_empty(), "AgentBackend {backend}:\n{}", problems.join("\n"));
    }
    for level in MetricsLevel::ALL {
        let t = everything(level);
        let problems = check(&t);
        assert!(problems.is_empty(), "MonitoringLevel {}:\n{}", level.as_str(), problems.join("\n"));
        let (statements, _) = t.policy_statements().expect("statements");
        // The check saw the functions' policies, the roles' and the key's (a check of nothing passes).
        for owner in [
            "SlackIngressFunction",
            "SlackWorkerFunction",
            "MetricsPublisherFunction",
            "EventsStreamRole",
            "BedrockAgentRole",
            "ChatbotRole",
        ] {
            assert!(statements.iter().any(|s| s.owner == owner), "{level:?}: no statement of {owner}");
        }
        assert_eq!(
            statements.iter().any(|s| s.owner == "AlarmTopicKey"),
            level == MetricsLevel::Full,
            "the alarm topic's key exists at full only"
        );
    }
    // Every ALLOWED entry is used: a wildcard that went away leaves no stale excuse behind.
    let (statements, _) = everything(MetricsLevel::Full).policy_statements().expect("statements");
    for (owner, action, _, why) in ALLOWED {
        assert!(!why.is_empty());
        assert!(
            statements.iter().any(|s| s.owner == *owner && s.actions.iter().any(|a| a == action)),
            "ALLOWED lists {owner} {action}, which the template no longer has"
        );
    }
}

#[test]
fn a_wildcard_action_or_resource_or_a_dropped_condition_fails_the_check() {
    let text = std::fs::read_to_string(workspace_root().join("template.yaml")).expect("template.yaml");
    let mutate = |from: &str, to: &str| -> Vec<String> {
        let mutated = text.replacen(from, to, 1);
        assert_ne!(mutated, text, "{from} is in the template");
        check(&switch_on(Template::parse(&mutated).expect("parse"), MetricsLevel::Full))
    };
    // A service-wide action.
    let p = mutate(
        "              Action: sqs:SendMessage\n              Resource: !GetAtt WorkQueue.Arn",
        "              Action: 'sqs:*'\n              Resource: !GetAtt WorkQueue.Arn",
    );
    assert!(p.iter().any(|p| p.contains("SlackIngressFunction") && p.contains("sqs:*")), "{p:?}");
    // A secret readable everywhere.
    let p = mutate(
        "              Action: secretsmanager:GetSecretValue\n              Resource: !Ref SlackSecret",
        "              Action: secretsmanager:GetSecretValue\n              Resource: '*'",
    );
    assert!(p.iter().any(|p| p.contains("secretsmanager:GetSecretValue") && p.contains("wildcard resource")), "{p:?}");
    // PutMetricData without its namespace condition.
    let p = mutate(
        "                  cloudwatch:namespace: !Ref MetricsNamespace",
        "                  aws:RequestedRegion: !Ref AWS::Region",
    );
    assert!(p.iter().any(|p| p.contains("PutMetricData") && p.contains("cloudwatch:namespace")), "{p:?}");
    // A bucket-wide object grant in an ARN.
    let p = mutate(
        "                  - !Sub ${AnalyticsBucket.Arn}/events/*",
        "                  - arn:aws:s3:::*/events/*",
    );
    assert!(p.iter().any(|p| p.contains("EventsStreamRole") && p.contains("s3:PutObject")), "{p:?}");
    // A managed policy.
    let p = mutate("      Policies:\n        - PolicyName: render-alarm-notifications", "      ManagedPolicyArns: [arn:aws:iam::aws:policy/ReadOnlyAccess]\n      Policies:\n        - PolicyName: render-alarm-notifications");
    assert!(p.iter().any(|p| p.contains("ReadOnlyAccess")), "{p:?}");
}

#[test]
fn wildcards_under_a_resource_of_the_stack_are_paths_not_wildcards() {
    assert!(!wildcard_resource("<AnalyticsBucket.Arn>/events/*"));
    assert!(!wildcard_resource("<ConversationsTable.Arn>/index/by_reply"));
    assert!(wildcard_resource("*"));
    assert!(wildcard_resource("arn:aws:s3:::*"));
    assert!(wildcard_resource("<AnalyticsBucket.Arn>/*/x"));
    assert!(wildcard_action("s3:*") && wildcard_action("cloudwatch:Get*") && !wildcard_action("s3:GetObject"));
}
