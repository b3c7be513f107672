use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chrono::NaiveDate;
use serde_json::json;
use shared::ports::{UsageHistory, UsageReader};
use shared::rollups::{Spend, UserSpend};
use shared::telemetry::{parse_emf, Metrics};

use super::*;
use crate::jira::{JiraClient, JiraCredentialSource, JiraCredentials};
use crate::jql::Projects;

/// Every store the handler reads, counting its calls and refusing them (no network here).
#[derive(Default)]
struct Stores {
    calls: AtomicUsize,
}

impl Stores {
    fn refuse(&self) -> shared::Error {
        self.calls.fetch_add(1, Ordering::SeqCst);
        shared::Error::Config("not in these tests".into())
    }
}

#[async_trait]
impl UsageReader for Stores {
    async fn user_spend(&self, _team: &str, _user: &str, _day: NaiveDate) -> shared::Result<UserSpend> {
        Err(self.refuse())
    }
}

#[async_trait]
impl UsageHistory for Stores {
    async fn days(&self, _t: &str, _u: &str, _f: NaiveDate, _to: NaiveDate) -> shared::Result<Vec<(NaiveDate, Spend)>> {
        Err(self.refuse())
    }
}

#[async_trait]
impl JiraCredentialSource for Stores {
    async fn load(&self) -> shared::Result<JiraCredentials> {
        Err(self.refuse())
    }
}

struct Fixture {
    handler: Handler,
    stores: Arc<Stores>,
    emf: Arc<Mutex<Vec<u8>>>,
}

fn fixture(projects: Option<&str>) -> Fixture {
    let stores = Arc::new(Stores::default());
    let (metrics, emf) = Metrics::capture("BedrockUsage");
    let handler = Handler {
        jira_credentials: stores.clone(),
        jira: JiraClient::new().unwrap(),
        projects: projects.and_then(|p| Projects::parse(p).unwrap()),
        usage: stores.clone(),
        usage_history: stores.clone(),
        metrics,
    };
    Fixture { handler, stores, emf }
}

impl Fixture {
    async fn call(&self, tool_name: &str, arguments: Value) -> ToolResult {
        let context = GatewayContext::for_tool(tool_name);
        self.handler.handle_tool_call(&arguments, &context, None, Utc::now()).await
    }

    fn metric(&self, name: &str, dimension: Option<(&str, &str)>) -> f64 {
        let docs = parse_emf(&self.emf.lock().unwrap());
        docs.iter().filter(|d| dimension.is_none_or(|(k, v)| d[k] == v)).filter_map(|d| d[name].as_f64()).sum()
    }
}

#[tokio::test]
async fn the_target_prefix_is_stripped_and_the_tool_routed() {
    let f = fixture(Some("ITSUP"));
    // Routed to getTicket (its own validation answers, before any store is read).
    let r = f.call("TicketTools___getTicket", json!({"key": "not a key"})).await;
    assert!(r.is_error());
    assert!(r.text().contains("is not a Jira ticket key"), "{}", r.text());
    let r = f.call("TicketTools___getTicket", json!({"key": "OPS-1"})).await;
    assert!(r.text().contains("only look up tickets in the Jira projects ITSUP"), "{}", r.text());
    let r = f.call("TicketTools___getTicket", json!({})).await;
    assert!(r.text().contains("Which ticket?"), "{}", r.text());
    // A bare name is served too (a direct invoke).
    let r = f.call("searchTickets", json!({"jql": "project = OPS"})).await;
    assert!(r.text().contains("OPS"), "{}", r.text());
    assert_eq!(f.stores.calls.load(Ordering::SeqCst), 0);
    assert_eq!(f.metric("ActionErrors", Some(("Action", "getTicket"))), 3.0);
    assert_eq!(f.metric("SchemaDrift", None), 0.0, "the user's mistakes are not drift");
}

#[tokio::test]
async fn outages_and_setup_problems_are_error_results_without_secrets() {
    let f = fixture(None);
    let r = f.call("T___searchTickets", json!({"query": "VPN", "limit": 5})).await;
    assert!(r.is_error());
    assert!(r.text().contains("Jira search is not set up"), "{}", r.text());
    let f = fixture(Some("ITSUP"));
    let r = f.call("T___getTicket", json!({"key": "itsup-7"})).await;
    assert_eq!(
        serde_json::to_value(&r).unwrap(),
        json!({"isError": true, "content": [{"type": "text", "text": "I couldn't read the bot's Jira credentials right now. Try again in a moment."}]})
    );
    assert_eq!(f.stores.calls.load(Ordering::SeqCst), 1, "the secret was read");
}

#[tokio::test]
async fn my_usage_is_refused_on_the_gateway_whatever_the_arguments_say() {
    let f = fixture(Some("ITSUP"));
    for arguments in [json!({}), json!({"period": "today"}), json!({"start_date": "2026-01-01"})] {
        let r = f.call("T___getMyUsage", arguments).await;
        assert!(r.is_error());
        assert_eq!(r.text(), USAGE_REFUSED);
    }
    // Naming someone is not an argument of the tool: refused as malformed, and drift.
    let r = f.call("T___getMyUsage", json!({"slack_user_id": "U999", "team": "T1"})).await;
    assert!(r.is_error());
    assert!(r.text().contains("no argument"), "{}", r.text());
    assert!(!r.text().contains("U999"));
    assert_eq!(f.stores.calls.load(Ordering::SeqCst), 0, "the usage table is never read");
    assert_eq!(f.metric("ActionErrors", Some(("ErrorCode", "UsageNeedsSlackIdentity"))), 3.0);
    assert_eq!(f.metric("SchemaDrift", Some(("EventType", GATEWAY_DRIFT))), 1.0);
}

#[tokio::test]
async fn unknown_tools_and_malformed_arguments_are_drift() {
    let f = fixture(Some("ITSUP"));
    let r = f.call("T___deleteTicket", json!({"key": "ITSUP-1"})).await;
    assert!(r.is_error());
    assert_eq!(r.text(), "This tool target has no tool \"deleteTicket\"; it has searchTickets, getTicket, getMyUsage.");
    let r = f.call("T___searchTickets", json!(["VPN"])).await;
    assert_eq!(r.text(), "The tool arguments must be a JSON object, not an array.");
    let r = f.call("T___searchTickets", json!({"query": {"text": "VPN"}})).await;
    assert!(r.text().contains("must be a string or a number"), "{}", r.text());
    assert_eq!(f.metric("SchemaDrift", Some(("EventType", GATEWAY_DRIFT))), 3.0);
    assert_eq!(f.metric("SchemaDrift", None), 3.0, "nothing else counted");
    assert_eq!(f.metric("ActionErrors", Some(("Action", "unknown"))), 1.0);
    assert_eq!(f.stores.calls.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn invocations_are_answered_in_their_own_form() {
    let f = fixture(None);
    let tool = GatewayContext::for_tool("T___getTicket");
    let reply = f.handler.handle_invocation(json!({"key": "nope"}), Some(&tool), None).await.unwrap();
    let Reply::Tool(result) = &reply else { panic!("not a tool result: {reply:?}") };
    assert!(result.is_error());
    assert_eq!(serde_json::to_value(&reply).unwrap()["isError"], true);

    let classic = json!({"messageVersion": "1.0", "actionGroup": "TicketActions", "function": "getTicket",
        "parameters": [{"name": "key", "type": "string", "value": "nope"}]});
    let reply = f.handler.handle_invocation(classic, None, None).await.unwrap();
    let Reply::ActionGroup(response) = &reply else { panic!("not an action-group response: {reply:?}") };
    assert!(response.body().contains("is not a Jira ticket key"), "{}", response.body());
    assert_eq!(serde_json::to_value(&reply).unwrap()["messageVersion"], "1.0");

    // Without a tool name in the client context, the arguments are not an action-group event.
    let e = f.handler.handle_invocation(json!({"key": "ITSUP-1"}), None, None).await.unwrap_err();
    assert!(e.to_string().contains("neither `apiPath` nor `function`"), "{e}");
    assert_eq!(f.metric("SchemaDrift", Some(("EventType", "action_group_event"))), 1.0);
}
