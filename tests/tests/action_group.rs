//! The action-group Lambda end to end: events in both forms (events/action-group/*.json and built
//! ones) through the handler in-process, with real SDK clients against moto (the Jira secret, the
//! usage rollups) and the real Jira client against a fake Jira on loopback. Good calls, the
//! user's mistakes (REPROMPT) and outages (FAILURE), the OpenAPI schema against the handler, and
//! no credential in any log line or response.

use std::collections::BTreeSet;
use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use action_group::events::gateway::{GatewayContext, ToolResult};
use action_group::events::{ActionGroupEvent, ActionGroupResponse, ResponseState};
use action_group::handler::{Handler, Reply};
use action_group::jira::JiraClient;
use action_group::jql::Projects;
use action_group::routes::ROUTES;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
};
use base64::Engine;
use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use shared::aws::secrets::JsonSecret;
use shared::aws::usage::DynamoDbUsageReader;
use shared::retry::Backoff;
use shared::rollups::{Spend, SPEND_ATTRIBUTES};
use shared::telemetry::Metrics;
use tests::fake_jira::{FakeIssue, FakeJira, Fault, API_TOKEN, EMAIL};
use tests::function_process::FunctionProcess;
use tests::gateway_binaries::binary;
use tests::harness::emulators;
use tests::lambda_runtime_api::Outcome;
use tests::moto::workspace_root;
use tests::slack_events::fixture;

/// The projects the tests' action group may search (JIRA_PROJECTS): every key the tests use,
/// except SECRETQ, the project no search may reach.
const PROJECTS: &str = "ITSUP, FLAKYQ, SLOWQ, LEAKQ, AUTHQ, ROTQ, RATEQ, MISTK, SAFEQ, CONFQ, SCHEMA, ANY";
/// The confinement every query starts with.
const CONFINED: &str =
    "project IN (ITSUP, FLAKYQ, SLOWQ, LEAKQ, AUTHQ, ROTQ, RATEQ, MISTK, SAFEQ, CONFQ, SCHEMA, ANY) AND ";

/// The user and team of the events/action-group fixtures.
const USER: &str = "U024BE7LH";
const TEAM: &str = "T0001";

fn jira() -> &'static FakeJira {
    FakeJira::shared().unwrap_or_else(|e| panic!("{e}"))
}

/// Everything the tests log, at debug level, to check that no credential is ever written.
fn logs() -> &'static Arc<Mutex<Vec<u8>>> {
    static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let sink = buf.clone();
        let _ = tracing_subscriber::fmt()
            .json()
            .with_env_filter(tracing_subscriber::EnvFilter::new("debug"))
            .with_writer(move || LogWriter(sink.clone()))
            .try_init();
        buf
    })
}

struct LogWriter(Arc<Mutex<Vec<u8>>>);

impl Write for LogWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        if let Ok(mut b) = self.0.lock() {
            b.extend_from_slice(data);
        }
        Ok(data.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// One test's action group: its own Jira secret and usage table in moto, the handler over them.
struct Stack {
    sdk: aws_config::SdkConfig,
    secret_arn: String,
    table: String,
    handler: Handler,
    emf: Arc<Mutex<Vec<u8>>>,
    responses: Mutex<Vec<String>>,
}

impl Stack {
    /// A stack whose secret holds the credentials the fake Jira accepts.
    async fn new(prefix: &str) -> Stack {
        Stack::with_secret(prefix, &secret_json(&jira().base_url(), EMAIL, API_TOKEN)).await
    }

    async fn with_secret(prefix: &str, secret: &str) -> Stack {
        logs();
        let sdk = emulators().moto.sdk_config();
        let secrets = aws_sdk_secretsmanager::Client::new(&sdk);
        let secret_arn = secrets
            .create_secret()
            .name(format!("{prefix}/jira"))
            .secret_string(secret)
            .send()
            .await
            .unwrap_or_else(|e| panic!("creating the Jira secret: {e:?}"))
            .arn
            .unwrap_or_default();
        let table = format!("{prefix}-usage");
        let ddb = aws_sdk_dynamodb::Client::new(&sdk);
        let key = |name: &str, kind: KeyType| KeySchemaElement::builder().attribute_name(name).key_type(kind).build();
        let attr = |name: &str| {
            AttributeDefinition::builder().attribute_name(name).attribute_type(ScalarAttributeType::S).build()
        };
        ddb.create_table()
            .table_name(&table)
            .billing_mode(BillingMode::PayPerRequest)
            .attribute_definitions(attr("pk").expect("attr"))
            .attribute_definitions(attr("sk").expect("attr"))
            .key_schema(key("pk", KeyType::Hash).expect("key"))
            .key_schema(key("sk", KeyType::Range).expect("key"))
            .send()
            .await
            .unwrap_or_else(|e| panic!("creating the usage table: {e:?}"));
        let (metrics, emf) = Metrics::capture("BedrockUsage");
        let handler = Handler {
            jira_credentials: Arc::new(JsonSecret::new(secrets, &secret_arn)),
            jira: JiraClient::new().expect("jira client").with_backoff(Backoff {
                base: Duration::from_millis(20),
                cap: Duration::from_millis(100),
                max_attempts: 3,
            }),
            projects: Projects::parse(PROJECTS).expect("valid keys"),
            usage: Arc::new(DynamoDbUsageReader::new(ddb.clone(), &table)),
            usage_history: Arc::new(DynamoDbUsageReader::new(ddb, &table)),
            metrics,
        };
        Stack { sdk, secret_arn, table, handler, emf, responses: Mutex::new(Vec::new()) }
    }

    /// Runs the handler as the runtime would, with `budget` until the Lambda deadline.
    async fn call_within(&self, event: Value, budget: Duration) -> ActionGroupResponse {
        let response = self
            .handler
            .handle(event, Some(Instant::now() + budget))
            .await
            .unwrap_or_else(|e| panic!("the handler refused the event: {e}"));
        let text = serde_json::to_string(&response).expect("response serialises");
        self.responses.lock().expect("responses").push(text);
        response
    }

    async fn call(&self, event: Value) -> ActionGroupResponse {
        self.call_within(event, Duration::from_secs(10)).await
    }

    /// Runs a parsed event as of `now`.
    async fn call_at(&self, event: Value, now: DateTime<Utc>) -> ActionGroupResponse {
        let event: ActionGroupEvent = serde_json::from_value(event).expect("an action-group event");
        let response = self.handler.handle_event(&event, Some(Instant::now() + Duration::from_secs(10)), now).await;
        self.responses.lock().expect("responses").push(serde_json::to_string(&response).expect("serialises"));
        response
    }

    /// A gateway tool call as the gateway makes it: `arguments` as the event, `tool_name`
    /// (`<target>___<tool>`) in the client context of events/action-group-gateway.
    async fn call_tool(&self, tool_name: &str, arguments: Value) -> ToolResult {
        let mut client_context = fixture("action-group-gateway/client_context");
        client_context["custom"]["bedrockAgentCoreToolName"] = json!(tool_name);
        let custom: std::collections::HashMap<String, String> =
            serde_json::from_value(client_context["custom"].clone()).expect("string values");
        let gateway = GatewayContext::from_custom(&custom).expect("a tool name");
        let reply = self
            .handler
            .handle_invocation(arguments, Some(&gateway), Some(Instant::now() + Duration::from_secs(10)))
            .await
            .unwrap_or_else(|e| panic!("a gateway call is never a Lambda error: {e}"));
        self.responses.lock().expect("responses").push(serde_json::to_string(&reply).expect("serialises"));
        match reply {
            Reply::Tool(result) => result,
            other => panic!("not a tool result: {other:?}"),
        }
    }

    async fn rotate(&self, secret: &str) {
        aws_sdk_secretsmanager::Client::new(&self.sdk)
            .put_secret_value()
            .secret_id(&self.secret_arn)
            .secret_string(secret)
            .send()
            .await
            .unwrap_or_else(|e| panic!("rotating the Jira secret: {e:?}"));
    }

    /// Writes a rollup item as token-logging does: every attribute of [`Spend`].
    async fn put_rollup(&self, team: &str, user: &str, sk: &str, spend: Spend) {
        let values = [
            spend.cost_usd.to_string(),
            spend.input_tokens.to_string(),
            spend.output_tokens.to_string(),
            spend.cache_read_tokens.to_string(),
            spend.cache_write_tokens.to_string(),
            spend.turns.to_string(),
            spend.unpriced_tokens.to_string(),
        ];
        let mut put = aws_sdk_dynamodb::Client::new(&self.sdk)
            .put_item()
            .table_name(&self.table)
            .item("pk", AttributeValue::S(shared::rollups::user_pk(team, user)))
            .item("sk", AttributeValue::S(sk.to_string()));
        for (name, value) in SPEND_ATTRIBUTES.iter().zip(values) {
            put = put.item(*name, AttributeValue::N(value));
        }
        put.send().await.unwrap_or_else(|e| panic!("seeding a rollup: {e:?}"));
    }

    fn metric_sum(&self, name: &str, dimension: Option<(&str, &str)>) -> f64 {
        let docs = shared::telemetry::parse_emf(&self.emf.lock().map(|b| b.clone()).unwrap_or_default());
        docs.iter().filter(|d| dimension.is_none_or(|(k, v)| d[k] == v)).filter_map(|d| d[name].as_f64()).sum()
    }
}

/// A rollup's figures.
fn spend(cost_usd: f64, input_tokens: u64, output_tokens: u64, turns: u64) -> Spend {
    Spend { cost_usd, input_tokens, output_tokens, turns, ..Spend::default() }
}

fn secret_json(base_url: &str, email: &str, token: &str) -> String {
    json!({ "base_url": base_url, "email": email, "api_token": token }).to_string()
}

/// A function-form event of the TicketActions group, with the fixtures' session attributes.
fn function_event(function: &str, params: &[(&str, &str)]) -> Value {
    let mut event = fixture("action-group/get_ticket_function");
    event["function"] = json!(function);
    event["parameters"] = json!(params
        .iter()
        .map(|(name, value)| json!({"name": name, "type": "string", "value": value}))
        .collect::<Vec<_>>());
    event
}

/// An OpenAPI-form event of the TicketActions group, with the fixtures' session attributes.
fn api_event(method: &str, path: &str, params: &[(&str, &str)]) -> Value {
    let mut event = fixture("action-group/get_ticket_openapi");
    event["httpMethod"] = json!(method);
    event["apiPath"] = json!(path);
    event["parameters"] = json!(params
        .iter()
        .map(|(name, value)| json!({"name": name, "type": "string", "value": value}))
        .collect::<Vec<_>>());
    event
}

fn state(r: &ActionGroupResponse) -> Option<ResponseState> {
    r.function().unwrap_or_else(|| panic!("not a function-form response: {r:?}")).function_response.response_state
}

fn status(r: &ActionGroupResponse) -> u16 {
    r.api().unwrap_or_else(|| panic!("not an OpenAPI-form response: {r:?}")).http_status_code
}

fn body_json(r: &ActionGroupResponse) -> Value {
    serde_json::from_str(r.body()).unwrap_or_else(|e| panic!("body is not JSON ({e}): {}", r.body()))
}

fn keys(answer: &Value) -> Vec<String> {
    answer["tickets"]
        .as_array()
        .map(|ts| ts.iter().map(|t| t["key"].as_str().unwrap_or("").to_string()).collect())
        .unwrap_or_default()
}

fn seed_itsup() {
    let j = jira();
    for issue in [
        FakeIssue::new(
            "ITSUP-4182",
            "VPN drops every 30 minutes on macOS 15",
            "In Progress",
            Some("Dana Whitfield"),
            "2025-03-10T09:12:44.000+0000",
        ),
        FakeIssue::new(
            "ITSUP-4201",
            "Staging VPN disconnects during large uploads",
            "Open",
            None,
            "2025-03-11T08:00:00.000+0000",
        ),
        FakeIssue::new(
            "ITSUP-4150",
            "VPN client disconnects after sleep",
            "Done",
            Some("Sam Ortiz"),
            "2025-02-01T10:00:00.000+0000",
        ),
        FakeIssue::new(
            "ITSUP-4099",
            "VPN split tunnel for the new office",
            "To Do",
            None,
            "2025-01-20T10:00:00.000+0000",
        ),
        FakeIssue::new("ITSUP-4060", "Laptop fan noise", "Open", None, "2025-03-12T10:00:00.000+0000"),
        FakeIssue::new("ITSUP-3990", "VPN MFA prompt loops", "Done", None, "2024-12-01T10:00:00.000+0000"),
    ] {
        j.add_issue(issue);
    }
}

#[tokio::test]
async fn the_fixtures_get_answers_in_their_own_form() {
    seed_itsup();
    let stack = Stack::new("ag-fixtures").await;
    let now: DateTime<Utc> = "2026-04-19T12:00:00Z".parse().expect("time");
    stack.put_rollup(TEAM, USER, "DAY#2026-04-19", spend(0.42, 1000, 200, 3)).await;
    stack.put_rollup(TEAM, USER, "MONTH#2026-04", spend(5.5, 20000, 4000, 40)).await;
    stack.put_rollup(TEAM, USER, "DAY#2026-04-13", spend(1.0, 100, 10, 1)).await;
    stack.put_rollup(TEAM, USER, "DAY#2026-04-12", spend(9.0, 900, 90, 9)).await; // outside the last 7 days

    // OpenAPI: search "VPN disconnect", open only.
    let event = fixture("action-group/search_tickets_openapi");
    let r = stack.call(event.clone()).await;
    let api = r.api().expect("OpenAPI form");
    assert_eq!(
        (api.action_group.as_str(), api.api_path.as_str(), api.http_method.as_str()),
        ("TicketActions", "/tickets/search", "GET")
    );
    assert_eq!(api.http_status_code, 200);
    let answer = body_json(&r);
    assert_eq!(keys(&answer), ["ITSUP-4201"], "{answer}");
    assert_eq!(answer["more"], false);
    assert_eq!(answer["tickets"][0]["status"], "Open");
    assert!(answer["tickets"][0]["assignee"].is_null());
    assert_eq!(answer["tickets"][0]["url"], format!("{}/browse/ITSUP-4201", jira().base_url()));
    let v = serde_json::to_value(&r).expect("json");
    assert_eq!(v["messageVersion"], "1.0");
    assert_eq!(v["sessionAttributes"], event["sessionAttributes"], "session attributes pass through");
    assert_eq!(v["promptSessionAttributes"], event["promptSessionAttributes"]);
    let sent = jira().requests_matching("VPN disconnect");
    assert!(!sent.is_empty());
    assert!(sent.iter().all(|r| r.authorized && r.auth_scheme.as_deref() == Some("Basic") && r.method == "POST"));
    assert_eq!(sent[0].path, "/rest/api/3/search/jql");
    assert_eq!(
        sent[0].jql,
        format!(r#"{CONFINED}text ~ "VPN disconnect" AND statusCategory != Done ORDER BY updated DESC"#)
    );
    assert_eq!(sent[0].body["fields"], json!(["summary", "status", "assignee", "updated", "priority"]));

    // Function: search with JQL and a limit of 5, over two pages (the fake serves 3 per page).
    let r = stack.call(fixture("action-group/search_tickets_function")).await;
    assert_eq!(state(&r), None, "success carries no responseState");
    let f = r.function().expect("function form");
    assert_eq!((f.action_group.as_str(), f.function.as_str()), ("TicketActions", "searchTickets"));
    let answer = body_json(&r);
    assert_eq!(keys(&answer), ["ITSUP-4201", "ITSUP-4182", "ITSUP-4150", "ITSUP-4099", "ITSUP-3990"]);
    assert_eq!(answer["count"], 5);
    assert_eq!(answer["more"], false);
    let pages: Vec<_> = jira().requests_matching("(project = ITSUP) AND text ~ \"VPN\"");
    assert_eq!(pages.len(), 2, "{pages:?}");
    assert_eq!(pages[0].body["maxResults"], 5);
    assert!(pages[0].body.get("nextPageToken").is_none());
    assert_eq!(pages[1].body["nextPageToken"], "page-3");
    assert_eq!(pages[1].body["maxResults"], 2);

    // Both forms of getTicket; the function form's key is in lower case.
    for name in ["get_ticket_openapi", "get_ticket_function"] {
        let r = stack.call(fixture(&format!("action-group/{name}"))).await;
        let ticket = body_json(&r);
        assert_eq!(ticket["key"], "ITSUP-4182", "{name}");
        assert_eq!(ticket["summary"], "VPN drops every 30 minutes on macOS 15");
        assert_eq!(ticket["status"], "In Progress");
        assert_eq!(ticket["assignee"], "Dana Whitfield");
        assert_eq!(ticket["updated"], "2025-03-10T09:12:44.000+0000");
        assert_eq!(ticket["url"], format!("{}/browse/ITSUP-4182", jira().base_url()));
    }
    assert_eq!(status(&stack.call(fixture("action-group/get_ticket_openapi")).await), 200);
    let get = jira().requests_matching("/rest/api/3/issue/ITSUP-4182");
    assert!(get.iter().all(|r| r.method == "GET" && r.authorized && r.raw_query.contains("fields=summary")));

    // My usage: today and this month (OpenAPI), the last 7 days (function).
    let r = stack.call_at(fixture("action-group/my_usage_openapi"), now).await;
    assert_eq!(status(&r), 200);
    let usage = body_json(&r);
    assert_eq!(usage["today"]["date"], "2026-04-19");
    assert_eq!(usage["today"]["cost_usd"], 0.42);
    assert_eq!(usage["today"]["total_tokens"], 1200);
    assert_eq!(usage["this_month"]["month"], "2026-04");
    assert_eq!(usage["this_month"]["cost_usd"], 5.5);
    assert_eq!(usage["this_month"]["turns"], 40);
    let r = stack.call_at(fixture("action-group/my_usage_function"), now).await;
    assert_eq!(state(&r), None);
    let week = body_json(&r);
    assert_eq!((week["from"].as_str(), week["to"].as_str()), (Some("2026-04-13"), Some("2026-04-19")));
    assert_eq!(week["cost_usd"], 1.42);
    assert_eq!(week["input_tokens"], 1100);
    assert_eq!(week["days_with_usage"], 2);

    // EMF: latency per action, no user in any dimension.
    assert!(stack.metric_sum("ActionLatency", Some(("Action", "searchTickets"))) >= 0.0);
    let docs = shared::telemetry::parse_emf(&stack.emf.lock().expect("emf").clone());
    assert_eq!(docs.len(), 7, "one latency document per call, no errors");
    for doc in docs {
        let dims = doc["_aws"]["CloudWatchMetrics"][0]["Dimensions"][0].to_string();
        assert!(!dims.contains("User") && !dims.contains("Team"), "{dims}");
    }
}

#[tokio::test]
async fn user_text_cannot_change_the_query() {
    let j = jira();
    j.add_issue(FakeIssue::new("SAFEQ-1", "Printer jams on floor 3", "Open", None, "2026-01-02T00:00:00.000+0000"));
    j.add_issue(FakeIssue::new("SECRETQ-1", "Printer budget", "Open", None, "2026-01-03T00:00:00.000+0000"));
    let stack = Stack::new("ag-safejql").await;
    let r = stack
        .call(function_event(
            "searchTickets",
            &[
                ("query", r#"printer" OR project = SECRETQ OR text ~ "x"#),
                ("jql", "project = SAFEQ"),
                ("status", r#"Open" OR project = "SECRETQ"#),
            ],
        ))
        .await;
    assert_eq!(state(&r), None, "{}", r.body());
    let sent = jira().requests_matching("project = SAFEQ");
    assert_eq!(sent.len(), 1);
    assert_eq!(
        sent[0].jql,
        format!(
            r#"{CONFINED}(project = SAFEQ) AND text ~ "printer or project = SECRETQ or text x" AND status = "Open\" OR project = \"SECRETQ" ORDER BY updated DESC"#
        )
    );
    assert!(!body_json(&r).to_string().contains("SECRETQ-1"));
}

#[tokio::test]
async fn the_users_mistakes_are_reprompted() {
    jira().add_issue(FakeIssue::new("MISTK-1", "Something", "Open", None, "2026-01-01T00:00:00.000+0000"));
    let stack = Stack::new("ag-mistakes").await;

    // Bad JQL: Jira's own message goes back to the model, in both forms.
    let r = stack.call(function_event("searchTickets", &[("jql", "project = MISTK AND nosuchfield = 1")])).await;
    assert_eq!(state(&r), Some(ResponseState::Reprompt));
    assert!(r.body().contains("Field 'nosuchfield' does not exist"), "{}", r.body());
    // JQL that is not a well-formed filter is refused before Jira is asked.
    let r = stack.call(api_event("GET", "/tickets/search", &[("jql", "project = MISTK AND (status = Open")])).await;
    assert_eq!(status(&r), 400);
    assert!(body_json(&r)["error"].as_str().unwrap_or("").contains("a `(` is not closed"), "{}", r.body());
    assert!(jira().requests_matching("(status = Open").is_empty());

    // Nothing to search for: asked back without calling Jira.
    let r = stack.call(function_event("searchTickets", &[("query", " *?* "), ("status", "any")])).await;
    assert_eq!(state(&r), Some(ResponseState::Reprompt));
    assert!(r.body().contains("what to search for"), "{}", r.body());

    // A key that is not a key, or none at all: asked back without calling Jira.
    let r = stack.call(function_event("getTicket", &[("key", "the VPN one")])).await;
    assert_eq!(state(&r), Some(ResponseState::Reprompt));
    assert!(r.body().contains("is not a Jira ticket key"), "{}", r.body());
    let r = stack.call(api_event("GET", "/tickets/{key}", &[])).await;
    assert_eq!(status(&r), 400);
    assert!(jira().requests_matching("the VPN one").is_empty() && jira().requests_matching("/issue/THE").is_empty());

    // An unknown key: Jira's 404 becomes "check the key", in both forms.
    let r = stack.call(function_event("getTicket", &[("key", "MISTK-404")])).await;
    assert_eq!(state(&r), Some(ResponseState::Reprompt));
    assert!(r.body().contains("There is no Jira ticket MISTK-404"), "{}", r.body());
    let r = stack.call(api_event("GET", "/tickets/MISTK-404", &[])).await;
    assert_eq!(status(&r), 404, "a concrete path works too");

    // A usage period that makes no sense.
    let r = stack.call(function_event("getMyUsage", &[("period", "fortnight")])).await;
    assert_eq!(state(&r), Some(ResponseState::Reprompt));
    assert!(r.body().contains("last_7_days"), "{}", r.body());

    assert_eq!(stack.metric_sum("ActionErrors", Some(("ErrorCode", "JiraBadRequest"))), 1.0);
    assert_eq!(stack.metric_sum("ActionErrors", Some(("ErrorCode", "InvalidJql"))), 1.0);
    assert_eq!(stack.metric_sum("ActionErrors", Some(("ErrorCode", "JiraNotFound"))), 2.0);
}

#[tokio::test]
async fn rejected_credentials_fail_with_a_clear_message() {
    jira().add_issue(FakeIssue::new("AUTHQ-1", "Something", "Open", None, "2026-01-01T00:00:00.000+0000"));
    let wrong = secret_json(&jira().base_url(), EMAIL, "not-the-token");
    let stack = Stack::with_secret("ag-authfail", &wrong).await;
    let r = stack.call(function_event("getTicket", &[("key", "AUTHQ-1")])).await;
    assert_eq!(state(&r), Some(ResponseState::Failure));
    assert!(r.body().contains("Jira rejected the bot's credentials (HTTP 401)"), "{}", r.body());
    let sent = jira().requests_matching("/issue/AUTHQ-1");
    assert_eq!(sent.len(), 1, "401 is not retried");
    assert!(!sent[0].authorized && sent[0].auth_scheme.as_deref() == Some("Basic"));

    // 403 likewise, in the OpenAPI form.
    let good = Stack::new("ag-authforbid").await;
    jira().fail_next("/issue/AUTHQ-1", Fault::Status(403));
    let r = good.call(api_event("GET", "/tickets/{key}", &[("key", "AUTHQ-1")])).await;
    assert_eq!(status(&r), 502);
    assert!(body_json(&r)["error"].as_str().unwrap_or("").contains("HTTP 403"), "{}", r.body());
}

#[tokio::test]
async fn a_rotated_token_takes_effect_on_the_next_call() {
    jira().add_issue(FakeIssue::new("ROTQ-1", "Something", "Open", None, "2026-01-01T00:00:00.000+0000"));
    let rotated = "ATATT3xFfGF0-rotated-token-91b2";
    let stack = Stack::with_secret("ag-rotate", &secret_json(&jira().base_url(), EMAIL, rotated)).await;
    let r = stack.call(function_event("getTicket", &[("key", "ROTQ-1")])).await;
    assert_eq!(state(&r), Some(ResponseState::Failure), "Jira does not know the new token yet");

    // The administrator rotates the token in Jira, then in the secret: the same warm handler
    // uses it on its very next invocation.
    jira().accept_token(rotated);
    let r = stack.call(function_event("getTicket", &[("key", "ROTQ-1")])).await;
    assert_eq!(state(&r), None, "{}", r.body());
    stack.rotate(&secret_json(&jira().base_url(), EMAIL, "revoked-again")).await;
    let r = stack.call(function_event("getTicket", &[("key", "ROTQ-1")])).await;
    assert_eq!(state(&r), Some(ResponseState::Failure));
}

#[tokio::test]
async fn setup_problems_fail_as_not_configured() {
    // The template's placeholder, as created.
    let placeholder =
        r#"{"base_url":"https://your-domain.atlassian.net","email":"REPLACE_ME","api_token":"REPLACE_ME"}"#;
    let stack = Stack::with_secret("ag-placeholder", placeholder).await;
    let r = stack.call(function_event("searchTickets", &[("query", "vpn")])).await;
    assert_eq!(state(&r), Some(ResponseState::Failure));
    assert!(r.body().contains("not set up"), "{}", r.body());

    let not_json = Stack::with_secret("ag-notjson", "xoxb-not-json").await;
    let r = not_json.call(api_event("GET", "/tickets/search", &[("query", "vpn")])).await;
    assert_eq!(status(&r), 503);
    assert!(!r.body().contains("xoxb-not-json"), "{}", r.body());
    assert_eq!(not_json.metric_sum("ActionErrors", Some(("ErrorCode", "JiraSecretUnavailable"))), 1.0);

    // Basic auth never goes over plain HTTP to a remote host.
    let insecure = Stack::with_secret("ag-insecure", &secret_json("http://jira.example.com", EMAIL, API_TOKEN)).await;
    let r = insecure.call(function_event("getTicket", &[("key", "ANY-1")])).await;
    assert_eq!(state(&r), Some(ResponseState::Failure));
}

#[tokio::test]
async fn rate_limits_are_waited_out_within_the_deadline() {
    jira().add_issue(FakeIssue::new("RATEQ-1", "Rate limited", "Open", None, "2026-01-01T00:00:00.000+0000"));
    let stack = Stack::new("ag-ratelimit").await;

    jira().fail_next("/issue/RATEQ-1", Fault::RateLimited { retry_after_secs: 1 });
    let started = Instant::now();
    let r = stack.call(function_event("getTicket", &[("key", "RATEQ-1")])).await;
    assert_eq!(state(&r), None, "{}", r.body());
    assert!(started.elapsed() >= Duration::from_secs(1), "Retry-After was respected");
    let sent = jira().requests_matching("/issue/RATEQ-1");
    assert_eq!(sent.iter().map(|r| r.status).collect::<Vec<_>>(), [429, 200]);

    // A wait longer than the time left: no waiting, a FAILURE that says when to come back.
    jira().fail_next("/issue/RATEQ-1", Fault::RateLimited { retry_after_secs: 60 });
    let started = Instant::now();
    let r = stack.call_within(function_event("getTicket", &[("key", "RATEQ-1")]), Duration::from_secs(10)).await;
    assert!(started.elapsed() < Duration::from_secs(3), "{:?}", started.elapsed());
    assert_eq!(state(&r), Some(ResponseState::Failure));
    assert!(r.body().contains("rate-limiting") && r.body().contains("60 seconds"), "{}", r.body());
    jira().fail_next("/issue/RATEQ-1", Fault::RateLimited { retry_after_secs: 60 });
    let r = stack.call(api_event("GET", "/tickets/{key}", &[("key", "RATEQ-1")])).await;
    assert_eq!(status(&r), 429);
}

#[tokio::test]
async fn server_errors_are_retried_then_reported() {
    jira().add_issue(FakeIssue::new("FLAKYQ-1", "Flaky", "Open", None, "2026-01-01T00:00:00.000+0000"));
    let stack = Stack::new("ag-5xx").await;
    jira().fail_next("project = FLAKYQ", Fault::Status(500));
    let r = stack.call(function_event("searchTickets", &[("jql", "project = FLAKYQ")])).await;
    assert_eq!(state(&r), None, "{}", r.body());
    assert_eq!(keys(&body_json(&r)), ["FLAKYQ-1"]);

    for _ in 0..3 {
        jira().fail_next("/issue/FLAKYQ-1", Fault::Status(503));
    }
    let r = stack.call(function_event("getTicket", &[("key", "FLAKYQ-1")])).await;
    assert_eq!(state(&r), Some(ResponseState::Failure));
    assert!(r.body().contains("Jira is having problems right now (HTTP 503)"), "{}", r.body());
    assert_eq!(jira().requests_matching("/issue/FLAKYQ-1").len(), 3, "three attempts, then give up");
    assert_eq!(stack.metric_sum("ActionErrors", Some(("ErrorCode", "JiraUnavailable"))), 1.0);
}

#[tokio::test]
async fn a_slow_jira_fails_before_the_lambda_deadline() {
    jira().add_issue(FakeIssue::new("SLOWQ-1", "Slow", "Open", None, "2026-01-01T00:00:00.000+0000"));
    let stack = Stack::new("ag-slow").await;
    for _ in 0..5 {
        jira().fail_next("/issue/SLOWQ-1", Fault::Slow { delay_ms: 6_000 });
    }
    let budget = Duration::from_secs(3);
    let started = Instant::now();
    let r = stack.call_within(function_event("getTicket", &[("key", "SLOWQ-1")]), budget).await;
    let took = started.elapsed();
    assert!(took < budget, "answered after {took:?}, past the deadline");
    assert_eq!(state(&r), Some(ResponseState::Failure));
    assert!(r.body().contains("did not answer in time"), "{}", r.body());
}

#[tokio::test]
async fn usage_is_only_ever_the_askers_own() {
    let stack = Stack::new("ag-usage").await;
    let now: DateTime<Utc> = "2026-03-31T23:00:00Z".parse().expect("time");
    stack.put_rollup(TEAM, USER, "DAY#2026-03-31", spend(0.25, 100, 50, 1)).await;
    stack.put_rollup(TEAM, USER, "MONTH#2026-03", spend(3.0, 3000, 500, 12)).await;
    stack.put_rollup(TEAM, "UOTHER", "DAY#2026-03-31", spend(99.0, 9, 9, 9)).await;
    stack.put_rollup(TEAM, "UOTHER", "MONTH#2026-03", spend(99.0, 9, 9, 9)).await;
    stack.put_rollup("T0002", USER, "MONTH#2026-03", spend(77.0, 9, 9, 9)).await;
    for day in 1..=28 {
        stack.put_rollup(TEAM, USER, &format!("DAY#2026-02-{day:02}"), spend(0.5, 10, 5, 1)).await;
    }

    // A parameter naming someone else is ignored: the session attributes say who asks.
    let mut event =
        function_event("getMyUsage", &[("period", "today"), ("user_id", "UOTHER"), ("slack_user_id", "UOTHER")]);
    event["parameters"]
        .as_array_mut()
        .expect("params")
        .push(json!({"name": "team_id", "type": "string", "value": "T0002"}));
    let r = stack.call_at(event, now).await;
    let today = body_json(&r);
    assert_eq!(today["today"]["cost_usd"], 0.25, "{today}");
    assert!(today.get("this_month").is_none());

    let r = stack.call_at(function_event("getMyUsage", &[("period", "this_month")]), now).await;
    let month = body_json(&r);
    assert_eq!(month["this_month"]["cost_usd"], 3.0);
    assert!(month.get("today").is_none());

    // last_month: all of February and nothing of March; then a span across the month end.
    let r = stack.call_at(function_event("getMyUsage", &[("period", "last_month")]), now).await;
    let feb = body_json(&r);
    assert_eq!((feb["from"].as_str(), feb["to"].as_str()), (Some("2026-02-01"), Some("2026-02-28")));
    assert_eq!(feb["days_with_usage"], 28);
    assert_eq!(feb["cost_usd"], 14.0);
    let r = stack
        .call_at(function_event("getMyUsage", &[("start_date", "2026-02-27"), ("end_date", "2026-03-31")]), now)
        .await;
    let span = body_json(&r);
    assert_eq!(span["days_with_usage"], 3, "{span}");
    assert_eq!(span["cost_usd"], 1.25);

    // No user in the session (the console's test window, say): asked back, nothing read.
    let mut anonymous = function_event("getMyUsage", &[]);
    anonymous["sessionAttributes"] = json!({});
    let r = stack.call_at(anonymous, now).await;
    assert_eq!(state(&r), Some(ResponseState::Reprompt));
    assert!(r.body().contains("which Slack user"), "{}", r.body());
    let mut anonymous = api_event("GET", "/usage/me", &[]);
    anonymous["sessionAttributes"] = json!({"slack_user_id": USER});
    assert_eq!(status(&stack.call_at(anonymous, now).await), 400);

    // No rollups yet: zeros, not an error.
    let mut newcomer = function_event("getMyUsage", &[]);
    newcomer["sessionAttributes"]["slack_user_id"] = json!("UNEW");
    let r = stack.call_at(newcomer, now).await;
    let zero = body_json(&r);
    assert_eq!(zero["today"]["cost_usd"], 0.0);
    assert_eq!(zero["this_month"]["turns"], 0);
}

#[tokio::test]
async fn usage_lookups_that_fail_are_reported_as_outages() {
    let stack = Stack::new("ag-usagefail").await;
    aws_sdk_dynamodb::Client::new(&stack.sdk).delete_table().table_name(&stack.table).send().await.expect("delete");
    let r = stack.call(function_event("getMyUsage", &[])).await;
    assert_eq!(state(&r), Some(ResponseState::Failure));
    assert!(r.body().contains("couldn't read the usage records"), "{}", r.body());
    let r = stack.call(api_event("GET", "/usage/me", &[("period", "last_7_days")])).await;
    assert_eq!(status(&r), 503);
}

#[tokio::test]
async fn unknown_operations_and_malformed_events() {
    let stack = Stack::new("ag-unknown").await;
    let r = stack.call(function_event("deleteTicket", &[("key", "A-1")])).await;
    assert_eq!(state(&r), Some(ResponseState::Failure));
    assert!(r.body().contains("no operation deleteTicket"), "{}", r.body());
    let r = stack.call(api_event("DELETE", "/tickets/{key}", &[("key", "A-1")])).await;
    assert_eq!(status(&r), 404);
    assert_eq!(stack.metric_sum("ActionErrors", Some(("Action", "unknown"))), 2.0);

    let err = stack.handler.handle(json!({"messageVersion": "1.0", "actionGroup": "A"}), None).await.unwrap_err();
    assert!(err.to_string().contains("neither `apiPath` nor `function`"), "{err}");
}

/// Every path and method in the OpenAPI schema is served by the handler (an event built from the
/// schema is routed, never answered "no operation"), and every operation the handler serves is
/// in the schema.
#[tokio::test]
async fn the_openapi_schema_and_the_handler_agree() {
    let path = workspace_root().join("functions/action-group/openapi/tickets.json");
    let schema: Value =
        serde_json::from_str(&std::fs::read_to_string(&path).expect("schema file")).expect("schema JSON");
    assert_eq!(schema["openapi"], "3.0.0");
    assert_eq!(serde_json::from_str::<Value>(action_group::OPENAPI_SCHEMA).expect("embedded"), schema);

    let stack = Stack::new("ag-schema").await;
    let mut in_schema = BTreeSet::new();
    let mut functions = BTreeSet::new();
    for (path, item) in schema["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("operations") {
            let method = method.to_uppercase();
            in_schema.insert((method.clone(), path.clone()));
            let op_id = op["operationId"].as_str().expect("operationId");
            functions.insert(op_id.to_string());
            assert!(op["description"].as_str().is_some_and(|d| !d.is_empty()), "Bedrock needs a description: {path}");
            // Required parameters get a value (a ticket key that does not exist).
            let params: Vec<(String, String)> = op["parameters"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|p| p["required"] == true)
                .map(|p| (p["name"].as_str().unwrap_or_default().to_string(), "SCHEMA-1".to_string()))
                .collect();
            let params: Vec<(&str, &str)> = params.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            for event in [api_event(&method, path, &params), function_event(op_id, &params)] {
                let r = stack.call(event).await;
                assert!(!r.body().contains("no operation"), "{method} {path} ({op_id}) is not handled: {}", r.body());
            }
        }
    }
    let handled: BTreeSet<(String, String)> =
        ROUTES.iter().map(|r| (r.method.to_string(), r.path.to_string())).collect();
    assert_eq!(handled, in_schema, "the handler's routes and the schema's paths differ");
    let handled_functions: BTreeSet<String> = ROUTES.iter().map(|r| r.function().to_string()).collect();
    assert_eq!(handled_functions, functions, "operationIds are the function names");

    // The template's optional agent declares the same functions (function details).
    let template = std::fs::read_to_string(workspace_root().join("template.yaml")).expect("template");
    let section = template.split("FunctionSchema:").nth(1).expect("the agent's action group has a FunctionSchema");
    let section = section.split("AgentAlias").next().unwrap_or(section);
    let declared: BTreeSet<String> =
        section.lines().filter_map(|l| l.trim().strip_prefix("- Name: ")).map(|n| n.trim().to_string()).collect();
    assert_eq!(declared, functions, "template FunctionSchema");
}

/// The gateway the stack creates for its harness (CreateHarness=true) offers exactly the tools of
/// tools/agentcore-tools.json: its target's inline tool schema is the same document, in
/// CloudFormation's spelling.
#[test]
fn the_created_gateway_target_inlines_the_generated_tool_schemas() {
    // CloudFormation's PascalCase keys to the API's camelCase; parameter names are kept as they are.
    fn api_spelling(v: &Value, parameter_names: bool) -> Value {
        match v {
            Value::Object(map) => Value::Object(
                map.iter()
                    .filter(|(_, v)| v.as_array().is_none_or(|a| !a.is_empty()))
                    .map(|(k, v)| {
                        let key = if parameter_names {
                            k.clone()
                        } else {
                            let mut c = k.chars();
                            c.next().map(|f| f.to_ascii_lowercase().to_string() + c.as_str()).unwrap_or_default()
                        };
                        (key, api_spelling(v, !parameter_names && k == "Properties"))
                    })
                    .collect(),
            ),
            Value::Array(items) => Value::Array(items.iter().map(|i| api_spelling(i, false)).collect()),
            other => other.clone(),
        }
    }
    fn without_empty_lists(v: &Value) -> Value {
        match v {
            Value::Object(map) => Value::Object(
                map.iter()
                    .filter(|(_, v)| v.as_array().is_none_or(|a| !a.is_empty()))
                    .map(|(k, v)| (k.clone(), without_empty_lists(v)))
                    .collect(),
            ),
            Value::Array(items) => Value::Array(items.iter().map(without_empty_lists).collect()),
            other => other.clone(),
        }
    }
    let template = tests::template::Template::load(&workspace_root().join("template.yaml")).expect("template");
    let targets = template.resources_of_type("AWS::BedrockAgentCore::GatewayTarget");
    assert_eq!(targets.len(), 1, "one gateway target: the action-group Lambda");
    let target: Value = serde_json::to_value(targets[0].1).expect("target as JSON");
    let lambda = &target["Properties"]["TargetConfiguration"]["Mcp"]["Lambda"];
    assert_eq!(
        template.resolve(&targets[0].1["Properties"]["TargetConfiguration"]["Mcp"]["Lambda"]["LambdaArn"]),
        Ok("<ActionGroupFunction.Arn>".to_string()),
        "the target is the action-group Lambda"
    );
    let inline = api_spelling(&lambda["ToolSchema"]["InlinePayload"], false);
    assert_eq!(
        inline,
        without_empty_lists(&action_group::gateway_tools()),
        "template ToolSchema vs the generated tools"
    );
    // And the committed file is that same document.
    let committed: Value = serde_json::from_str(action_group::GATEWAY_TOOLS).expect("agentcore-tools.json");
    assert_eq!(committed, action_group::gateway_tools());
}

/// Calls that fail in every way, then the logs and the responses are searched for the token, the
/// Basic credentials, and the Authorization header.
#[tokio::test]
async fn no_credential_in_any_log_line_or_response() {
    jira().add_issue(FakeIssue::new("LEAKQ-1", "Leak check", "Open", None, "2026-01-01T00:00:00.000+0000"));
    let stack = Stack::new("ag-noleak").await;
    jira().fail_next("/issue/LEAKQ-1", Fault::Status(500));
    jira().fail_next("/issue/LEAKQ-2", Fault::Status(401));
    jira().fail_next("project = LEAKQ", Fault::RateLimited { retry_after_secs: 30 });
    for event in [
        function_event("getTicket", &[("key", "LEAKQ-1")]),
        function_event("getTicket", &[("key", "LEAKQ-2")]),
        api_event("GET", "/tickets/search", &[("jql", "project = LEAKQ")]),
        function_event("searchTickets", &[("jql", "project = LEAKQ AND nosuchfield = 2")]),
    ] {
        stack.call(event).await;
    }
    let wrong =
        Stack::with_secret("ag-noleak-wrong", &secret_json(&jira().base_url(), EMAIL, "wrong-token-d41d8cd9")).await;
    wrong.call(function_event("getTicket", &[("key", "LEAKQ-1")])).await;

    let basic = base64::engine::general_purpose::STANDARD.encode(format!("{EMAIL}:{API_TOKEN}"));
    let wrong_basic = base64::engine::general_purpose::STANDARD.encode(format!("{EMAIL}:wrong-token-d41d8cd9"));
    let logs = String::from_utf8_lossy(&logs().lock().expect("logs").clone()).into_owned();
    assert!(logs.contains("action group call"), "the handler's logs were captured");
    let responses =
        [stack.responses.lock().expect("r").join("\n"), wrong.responses.lock().expect("r").join("\n")].join("\n");
    for (name, text) in [("logs", &logs), ("responses", &responses)] {
        for secret in [API_TOKEN, basic.as_str(), "wrong-token-d41d8cd9", wrong_basic.as_str()] {
            assert!(!text.contains(secret), "a credential is in the {name}");
        }
        assert!(!text.contains("Basic "), "an Authorization header is in the {name}");
    }
}

/// The `action-group` binary itself, started as Lambda starts it (a process talking to a local
/// Runtime API) with the template's env vars: proves `main` wires config, clients and handler.
/// scripts/test builds the binaries before the tests run.
#[tokio::test(flavor = "multi_thread")]
async fn the_binary_answers_under_the_lambda_runtime() {
    seed_itsup();
    let stack = Stack::new("ag-binary").await;
    let env: Vec<(String, String)> = [
        ("AWS_ENDPOINT_URL", emulators().moto.endpoint()),
        ("JIRA_SECRET_ARN", stack.secret_arn.clone()),
        ("USAGE_TABLE", stack.table.clone()),
        ("METRICS_NAMESPACE", "BedrockUsage".to_string()),
        ("JIRA_PROJECTS", PROJECTS.to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let log = std::env::temp_dir().join("action-group-binary.log");
    let function = FunctionProcess::start(&binary("action-group", "debug"), &env, 128, &log).expect("start");
    let invoke = |event: Value| tokio::task::block_in_place(|| function.invoke(event, Duration::from_secs(20)));

    match invoke(fixture("action-group/get_ticket_function")) {
        Ok(Outcome::Response(v)) => {
            let body = v["response"]["functionResponse"]["responseBody"]["TEXT"]["body"].as_str().unwrap_or_default();
            let ticket: Value =
                serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {v}\n{}", function.output()));
            assert_eq!(ticket["key"], "ITSUP-4182");
            assert_eq!(v["sessionAttributes"]["slack_user_id"], USER);
        }
        other => panic!("{other:?}\n{}", function.output()),
    }
    match invoke(json!({"messageVersion": "1.0", "actionGroup": "TicketActions"})) {
        Ok(Outcome::Error(e)) => assert!(e.contains("MalformedEvent"), "{e}"),
        other => panic!("a malformed event is a Lambda error: {other:?}"),
    }
    // The AgentCore Gateway form: the arguments as the event, the tool in the client context.
    let client_context = fixture("action-group-gateway/client_context");
    let gateway = |event: Value, client_context: &Value| {
        tokio::task::block_in_place(|| {
            function.invoke_with_client_context(event, client_context, Duration::from_secs(20))
        })
    };
    match gateway(fixture("action-group-gateway/get_ticket"), &client_context) {
        Ok(Outcome::Response(v)) => assert_eq!(v["key"], "ITSUP-4182", "{v}\n{}", function.output()),
        other => panic!("{other:?}\n{}", function.output()),
    }
    let mut unknown = client_context.clone();
    unknown["custom"]["bedrockAgentCoreToolName"] = json!("TicketTools___deleteTicket");
    match gateway(json!({"key": "ITSUP-4182"}), &unknown) {
        Ok(Outcome::Response(v)) => {
            assert_eq!(v["isError"], true, "{v}");
            assert!(v["content"][0]["text"].as_str().unwrap_or_default().contains("has no tool"), "{v}");
        }
        other => panic!("an unknown tool is an error result, not a Lambda error: {other:?}"),
    }
    let output = function.output();
    assert!(output.contains("\"ActionLatency\""), "EMF on stdout: {output}");
    assert!(output.contains("action group call"), "{output}");
    assert!(!output.contains(API_TOKEN), "no credential in the function's output");

    let mut missing = FunctionProcess::start(
        &binary("action-group", "debug"),
        &env[1..].iter().filter(|(k, _)| k != "JIRA_SECRET_ARN").cloned().collect::<Vec<_>>(),
        128,
        &std::env::temp_dir().join("action-group-missing-env.log"),
    )
    .expect("start");
    let status = tokio::task::block_in_place(|| missing.wait_exit(Duration::from_secs(20))).expect("exits at init");
    assert!(!status.success());
    assert!(missing.output().contains("JIRA_SECRET_ARN is not set"), "{}", missing.output());
}

/// Issue 15: the same tools as an AgentCore Gateway Lambda target. The fixtures of
/// events/action-group-gateway (the arguments as the event, the tool in the client context) get
/// the answers the Classic forms get; failures are error results with a message and no secret;
/// getMyUsage is refused (no Slack identity reaches the function), and an unknown tool or
/// malformed arguments are counted as drift without their content in any log line.
#[tokio::test]
async fn the_gateway_form_serves_the_same_tools() {
    seed_itsup();
    let stack = Stack::new("ag-gateway").await;
    let today = Utc::now().format("DAY#%Y-%m-%d").to_string();
    stack.put_rollup(TEAM, USER, &today, spend(0.42, 1000, 200, 3)).await;

    let r = stack.call_tool("TicketTools___getTicket", fixture("action-group-gateway/get_ticket")).await;
    let ToolResult::Answer(ticket) = &r else { panic!("an answer: {r:?}") };
    assert_eq!(ticket["key"], "ITSUP-4182");
    assert_eq!(ticket["status"], "In Progress");
    let classic = stack.call(function_event("getTicket", &[("key", "ITSUP-4182")])).await;
    assert_eq!(&body_json(&classic), ticket, "the same answer as the function form");

    let r = stack.call_tool("TicketTools___searchTickets", fixture("action-group-gateway/search_tickets")).await;
    let ToolResult::Answer(answer) = &r else { panic!("an answer: {r:?}") };
    assert_eq!(keys(answer), ["ITSUP-4201"], "{answer}");
    assert_eq!(
        answer["jql"],
        format!(r#"{CONFINED}text ~ "VPN disconnect" AND statusCategory != Done ORDER BY updated DESC"#)
    );

    // The user's mistakes and the confinement: error results the agent relays.
    let r = stack.call_tool("TicketTools___getTicket", json!({"key": "SECRETQ-7"})).await;
    assert!(r.is_error() && r.text().contains("SECRETQ-7 is in another project"), "{r:?}");
    let r = stack.call_tool("TicketTools___searchTickets", json!({"jql": "project = SECRETQ"})).await;
    assert!(r.is_error(), "{r:?}");

    // Usage: refused whatever the arguments, even naming the user of the rollup above.
    let r = stack.call_tool("TicketTools___getMyUsage", json!({"period": "today"})).await;
    assert!(r.is_error());
    assert_eq!(r.text(), action_group::handler::USAGE_REFUSED);
    let r = stack.call_tool("TicketTools___getMyUsage", json!({"slack_user_id": USER})).await;
    assert!(r.is_error() && !r.text().contains("0.42"), "{r:?}");

    // Drift: counted, answered clearly, never logged with its content.
    let r = stack.call_tool("TicketTools___exfiltrateZq81", json!({"note": "drift-content-Yq77"})).await;
    assert!(r.is_error() && r.text().contains("has no tool"), "{r:?}");
    let r = stack.call_tool("TicketTools___searchTickets", json!({"query": ["drift-content-Yq77"]})).await;
    assert!(r.is_error() && r.text().contains("must be a string or a number"), "{r:?}");
    // Three: the unknown tool, the array, and the undeclared `slack_user_id` of getMyUsage.
    assert_eq!(stack.metric_sum("SchemaDrift", Some(("EventType", "gateway_tool_call"))), 3.0);
    let logged = String::from_utf8_lossy(&logs().lock().map(|b| b.clone()).unwrap_or_default()).into_owned();
    assert!(logged.contains("schema drift"), "the drift is logged");
    for content in ["exfiltrateZq81", "drift-content-Yq77"] {
        assert!(!logged.contains(content), "{content} was logged");
    }
    assert_eq!(stack.metric_sum("ActionErrors", Some(("ErrorCode", "UsageNeedsSlackIdentity"))), 1.0);
}

/// The fixtures are valid action-group events in the form their name says.
#[test]
fn the_fixtures_parse_in_their_form() {
    let dir = workspace_root().join("events/action-group");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).expect("events/action-group") {
        let path = entry.expect("entry").path();
        let name = path.file_stem().and_then(|s| s.to_str()).unwrap_or_default().to_string();
        let event: ActionGroupEvent = serde_json::from_str(&std::fs::read_to_string(&path).expect("read"))
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        match (&event, name.ends_with("_openapi"), name.ends_with("_function")) {
            (ActionGroupEvent::Api(_), true, _) | (ActionGroupEvent::Function(_), _, true) => {}
            _ => panic!("{name} is not in the form its name says"),
        }
        assert_eq!(event.context().session_attributes.get("slack_user_id").map(String::as_str), Some(USER));
        seen += 1;
    }
    assert_eq!(seen, 6);
}

/// Issue 13, defect 4: whatever JQL the agent passes (so any Slack user's text), Jira is asked
/// only about the projects the bot may search, and a ticket of another project is never fetched.
/// The fake Jira evaluates AND / OR / NOT, so a query that escaped would return SECRETQ-7.
#[tokio::test]
async fn hostile_jql_cannot_leave_the_allowed_projects() {
    let j = jira();
    j.add_issue(FakeIssue::new("CONFQ-1", "Printer jams on floor 3", "Open", None, "2026-01-02T00:00:00.000+0000"));
    j.add_issue(FakeIssue::new("SECRETQ-7", "Salary review printer", "Open", None, "2026-01-03T00:00:00.000+0000"));
    let stack = Stack::new("ag-confine").await;
    for (hostile, refused) in [
        ("x) OR project = SECRETQ OR (x", Some("expected an operator after x")),
        ("priority = High) OR project = SECRETQ OR (priority = High", Some("without its `(`")),
        ("priority = High OR project = SECRETQ", Some("SECRETQ is not one of them")),
        ("project in (CONFQ, SECRETQ)", Some("SECRETQ is not one of them")),
        ("priority = High ORDER BY key) OR (project = SECRETQ", Some("without its `(`")),
        // An escaped quote stays inside the string, as Jira reads it: one (odd) summary search.
        ("summary ~ \"printer\\\" OR project = SECRETQ OR summary ~ \"", None),
        ("summary ~ \"printer\\\" OR project = SECRETQ OR summary ~ \"x", Some("unexpected x")),
        ("key = SECRETQ-7 OR text ~ printer", None),
        ("NOT project = CONFQ", None),
        ("project != CONFQ OR key = SECRETQ-7 ORDER BY key", None),
    ] {
        let before = jira().requests().len();
        let r = stack.call(function_event("searchTickets", &[("jql", hostile)])).await;
        if state(&r).is_none() {
            let found = keys(&body_json(&r));
            assert!(
                !found.iter().any(|k| k.starts_with("SECRETQ-")),
                "{hostile}: a ticket outside the projects leaked"
            );
        }
        let sent = jira().requests()[before..].to_vec();
        match refused {
            Some(says) => {
                assert_eq!(state(&r), Some(ResponseState::Reprompt), "{hostile}: {}", r.body());
                assert!(r.body().contains(says), "{hostile}: {}", r.body());
                assert!(sent.is_empty(), "{hostile}: refused, yet Jira was asked: {sent:?}");
            }
            None => {
                assert_eq!(state(&r), None, "{hostile}: {}", r.body());
                assert!(!sent.is_empty());
                for s in &sent {
                    assert!(s.jql.starts_with(&format!("{CONFINED}(")), "{hostile}: unconfined {}", s.jql);
                }
            }
        }
    }
    // What the model sees when it reaches outside: the projects it may search.
    let r = stack.call(api_event("GET", "/tickets/search", &[("jql", "project = SECRETQ")])).await;
    assert_eq!(status(&r), 403);
    assert!(body_json(&r)["error"].as_str().unwrap_or("").contains("may only search the Jira projects ITSUP,"));

    let r = stack.call(function_event("getTicket", &[("key", "SECRETQ-7")])).await;
    assert_eq!(state(&r), Some(ResponseState::Reprompt), "{}", r.body());
    assert!(r.body().contains("SECRETQ-7 is in another project"), "{}", r.body());
    assert!(jira().requests_matching("/issue/SECRETQ-7").is_empty(), "a ticket outside the projects was fetched");
    assert_eq!(stack.metric_sum("ActionErrors", Some(("ErrorCode", "ProjectNotAllowed"))), 4.0);

    // No projects configured: ticket tools fail with a message for the administrator.
    let mut unset = Stack::new("ag-noprojects").await;
    unset.handler.projects = None;
    for event in
        [function_event("searchTickets", &[("query", "printer")]), function_event("getTicket", &[("key", "CONFQ-1")])]
    {
        let r = unset.call(event).await;
        assert_eq!(state(&r), Some(ResponseState::Failure));
        assert!(r.body().contains("JiraProjects parameter"), "{}", r.body());
    }
}
