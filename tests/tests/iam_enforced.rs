//! slack-ingress under enforced IAM: moto started with INITIAL_NO_AUTH_ACTION_COUNT (through
//! tests/moto/serve_iam.py, which fixes moto's signature check of DynamoDB requests), the
//! ingress's SDK clients signed as a moto IAM user holding exactly the actions of
//! SlackIngressFunction's statements in template.yaml. The path that needs the least-used grant:
//! SendMessage fails, the ingress releases its dedupe claims (DeleteItem), and Slack's retry is
//! queued. With the grant missing (the template before this check) the release is denied and the
//! retry is acknowledged as a duplicate: the message is lost, and this test fails.
//!
//! What moto cannot check: resources (it matches most services' actions against `*`, so the
//! user's statements use `Resource: '*'`) and conditions (no dynamodb:LeadingKeys). And only the
//! ingress runs here: token-logging and the worker write with TransactWriteItems, which AWS
//! authorises per item (PutItem, UpdateItem...) but moto as the action
//! `dynamodb:TransactWriteItems`, which no IAM policy of AWS grants; their roles are held to
//! their code by the static check (tests/tests/permissions.rs).

use aws_config::SdkConfig;
use shared::aws::dedup::DynamoDbDedup;
use shared::aws::secrets::JsonSecret;
use shared::aws::sqs::SqsWorkQueue;
use shared::telemetry::Metrics;
use slack_gateway::ingress::Ingress;
use std::sync::Arc;
use tests::moto::{sdk_config_for, workspace_root, Moto};
use tests::resources::{drain_queue, GatewayResources, TEST_SIGNING_SECRET};
use tests::slack_events::signed;
use tests::template::{PolicyKind, Template};

/// IAM users made before moto starts enforcing (three requests each: the no-auth allowance).
const USERS: usize = 3;

fn form_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn between<'a>(xml: &'a str, tag: &str) -> &'a str {
    let start = xml.find(&format!("<{tag}>")).map(|i| i + tag.len() + 2).unwrap_or_else(|| panic!("no {tag} in {xml}"));
    &xml[start..start + xml[start..].find('<').expect("closing tag")]
}

/// Creates an IAM user allowed `actions` on `*` and returns an SDK config signing as it. Only
/// valid while moto's no-auth allowance lasts (the requests are not signed).
async fn user(moto: &Moto, name: &str, actions: &[String]) -> SdkConfig {
    let http = reqwest::Client::new();
    let policy = serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": actions, "Resource": "*"}]
    });
    let mut last = String::new();
    for params in [
        vec![("Action", "CreateUser".to_string()), ("UserName", name.to_string())],
        vec![
            ("Action", "PutUserPolicy".to_string()),
            ("UserName", name.to_string()),
            ("PolicyName", "role".to_string()),
            ("PolicyDocument", policy.to_string()),
        ],
        vec![("Action", "CreateAccessKey".to_string()), ("UserName", name.to_string())],
    ] {
        let body: Vec<String> = params
            .iter()
            .chain(&[("Version", "2010-05-08".to_string())])
            .map(|(k, v)| format!("{k}={}", form_encode(v)))
            .collect();
        let resp = http
            .post(moto.endpoint())
            .header("Content-Type", "application/x-www-form-urlencoded")
            // Routes the request to IAM; moto checks no signature within the allowance.
            .header(
                "Authorization",
                "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20260101/us-east-1/iam/aws4_request, SignedHeaders=host, Signature=0",
            )
            .body(body.join("&"))
            .send()
            .await
            .expect("IAM request");
        let status = resp.status();
        last = resp.text().await.expect("IAM response");
        assert!(status.is_success(), "{name}: {params:?}: {status} {last}");
    }
    let creds = aws_sdk_s3::config::Credentials::new(
        between(&last, "AccessKeyId"),
        between(&last, "SecretAccessKey"),
        None,
        None,
        "moto-iam-user",
    );
    sdk_config_for(&moto.endpoint())
        .into_builder()
        .credentials_provider(aws_sdk_s3::config::SharedCredentialsProvider::new(creds))
        .build()
}

/// The actions SlackIngressFunction's role allows in template.yaml.
fn ingress_actions() -> Vec<String> {
    let t = Template::load(&workspace_root().join("template.yaml")).expect("template.yaml");
    let (statements, _) = t.policy_statements().expect("statements");
    let mut actions: Vec<String> = statements
        .into_iter()
        .filter(|s| s.owner == "SlackIngressFunction" && s.kind == PolicyKind::Identity && s.effect == "Allow")
        .flat_map(|s| s.actions)
        .collect();
    actions.sort();
    actions.dedup();
    assert!(actions.contains(&"sqs:SendMessage".to_string()), "{actions:?}");
    actions
}

async fn ingress(user: &SdkConfig, r: &GatewayResources, queue_url: &str) -> Ingress {
    Ingress::new(
        Arc::new(JsonSecret::new(aws_sdk_secretsmanager::Client::new(user), &r.secret_arn)),
        Arc::new(DynamoDbDedup::new(aws_sdk_dynamodb::Client::new(user), &r.dedup_table)),
        Arc::new(SqsWorkQueue::new(aws_sdk_sqs::Client::new(user), queue_url)),
        Metrics::capture("BedrockUsage").0,
    )
    .await
    .expect("ingress init as the IAM user (GetSecretValue)")
}

/// A mention whose first enqueue fails, then Slack's retry: the dedupe claims left right after the
/// failure (0 once released), and how many work items were queued.
async fn queued_after_a_failed_enqueue(moto: &Moto, admin: &SdkConfig, user: &SdkConfig, tag: &str) -> (i32, usize) {
    let r = GatewayResources::create(admin, &format!("enforced-{tag}")).await.expect("resources");
    let (first, _) = signed("slack/app_mention", TEST_SIGNING_SECRET, tag, "CENFORCED");
    let missing = format!("{}/123456789012/missing-{tag}.fifo", moto.endpoint());
    let failing = ingress(user, &r, &missing).await;
    assert_eq!(failing.handle(&first).await.status_code, 500, "SendMessage to a missing queue fails");
    let claims_left =
        aws_sdk_dynamodb::Client::new(admin).scan().table_name(&r.dedup_table).send().await.expect("scan").count();
    let mut retry = first.clone();
    retry.headers.insert("x-slack-retry-num", "1".parse().expect("header"));
    retry.headers.insert("x-slack-retry-reason", "http_error".parse().expect("header"));
    let healthy = ingress(user, &r, &r.work_queue_url).await;
    assert_eq!(healthy.handle(&retry).await.status_code, 200);
    (claims_left, drain_queue(admin, &r.work_queue_url).await.expect("drain").len())
}

#[tokio::test]
async fn the_ingress_role_of_the_template_lets_a_failed_enqueue_be_retried() {
    let moto = Moto::start_with("serve_iam.py", &[("INITIAL_NO_AUTH_ACTION_COUNT", &(USERS * 3).to_string())])
        .expect("moto enforcing IAM");
    let actions = ingress_actions();
    let without_delete: Vec<String> = actions.iter().filter(|a| *a != "dynamodb:DeleteItem").cloned().collect();
    let admin = user(&moto, "admin", &["*".to_string()]).await;
    let role = user(&moto, "slack-ingress", &actions).await;
    let old_role = user(&moto, "slack-ingress-without-delete", &without_delete).await;

    // The allowance is spent: unknown credentials are refused from now on.
    let anonymous = sdk_config_for(&moto.endpoint());
    assert!(aws_sdk_sqs::Client::new(&anonymous).list_queues().send().await.is_err(), "moto does not enforce IAM");

    assert_eq!(
        queued_after_a_failed_enqueue(&moto, &admin, &role, "role").await,
        (0, 1),
        "with the role's actions {actions:?}, the claims are released and Slack's retry after a failed enqueue is queued"
    );
    // The grant the template lacked before: DeleteItem is denied and the claims stay, but only
    // as a short lease, so Slack's retry is still queued (before the fix it was taken for a
    // duplicate and the message was lost).
    assert_eq!(
        queued_after_a_failed_enqueue(&moto, &admin, &old_role, "old").await,
        (2, 1),
        "without dynamodb:DeleteItem the release must be denied (is IAM enforced?) and the lease must still let the retry through"
    );
}
