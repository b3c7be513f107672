use super::*;
use crate::jira::SearchResult;
use crate::jira::Ticket;
use crate::outcome::MAX_BODY_BYTES;

fn function_event(name: &str) -> ActionGroupEvent {
    serde_json::from_value(json!({"actionGroup": "TicketActions", "function": name})).unwrap()
}

fn api_event(path: &str) -> ActionGroupEvent {
    serde_json::from_value(json!({"actionGroup": "TicketActions", "apiPath": path, "httpMethod": "GET"})).unwrap()
}

#[test]
fn normalizes_ticket_keys() {
    assert_eq!(normalize_key("itsup-42").as_deref(), Some("ITSUP-42"));
    assert_eq!(normalize_key(" OPS_2-7 ").as_deref(), Some("OPS_2-7"));
    assert_eq!(normalize_key("https://acme.atlassian.net/browse/ITSUP-42?focused=1").as_deref(), Some("ITSUP-42"));
    for bad in ["", "42", "ITSUP", "ITSUP-", "-42", "1TSUP-42", "ITSUP-4x", "ITSUP 42", "A-1-2", "ÄB-1"] {
        assert_eq!(normalize_key(bad), None, "{bad:?}");
    }
}

#[test]
fn outcomes_take_the_form_of_the_event() {
    let reprompt = || Outcome::reprompt(404, "JiraNotFound", "no such ticket");
    let failure = || Outcome::failure(503, "JiraUnavailable", "Jira is down");

    let f = respond(&function_event("getTicket"), Outcome::Answer(json!({"key": "A-1"})));
    let v = serde_json::to_value(&f).unwrap();
    assert!(v["response"]["functionResponse"].get("responseState").is_none());
    assert_eq!(f.body(), r#"{"key":"A-1"}"#);
    let v = serde_json::to_value(respond(&function_event("getTicket"), reprompt())).unwrap();
    assert_eq!(v["response"]["functionResponse"]["responseState"], "REPROMPT");
    assert_eq!(v["response"]["functionResponse"]["responseBody"]["TEXT"]["body"], "no such ticket");
    let v = serde_json::to_value(respond(&function_event("getTicket"), failure())).unwrap();
    assert_eq!(v["response"]["functionResponse"]["responseState"], "FAILURE");

    let a = respond(&api_event("/tickets/{key}"), Outcome::Answer(json!({"key": "A-1"})));
    assert_eq!(a.api().unwrap().http_status_code, 200);
    let a = respond(&api_event("/tickets/{key}"), reprompt());
    assert_eq!(a.api().unwrap().http_status_code, 404);
    assert_eq!(serde_json::from_str::<Value>(a.body()).unwrap(), json!({"error": "no such ticket"}));
    assert_eq!(respond(&api_event("/x"), failure()).api().unwrap().http_status_code, 503);
}

#[test]
fn jira_failures_become_messages_the_agent_can_relay() {
    let kind = |o: &Outcome| o.kind();
    assert_eq!(kind(&jira_outcome(JiraError::Rejected { status: 401 }, None)), "failure");
    let Outcome::Failure { message, .. } = jira_outcome(JiraError::Rejected { status: 403 }, None) else { panic!() };
    assert!(message.contains("Jira rejected the bot's credentials (HTTP 403)"), "{message}");
    let Outcome::Reprompt { message, status, .. } =
        jira_outcome(JiraError::NotFound { message: "Issue does not exist".into() }, Some("ITSUP-9"))
    else {
        panic!()
    };
    assert_eq!(status, 404);
    assert!(message.contains("ITSUP-9"), "{message}");
    let Outcome::Reprompt { message, .. } =
        jira_outcome(JiraError::BadRequest { message: "Field 'foo' does not exist.".into() }, None)
    else {
        panic!()
    };
    assert!(message.contains("Field 'foo' does not exist."), "{message}");
    let Outcome::Failure { message, status, .. } =
        jira_outcome(JiraError::RateLimited { retry_after: Duration::from_secs(42) }, None)
    else {
        panic!()
    };
    assert_eq!(status, 429);
    assert!(message.contains("42 seconds"), "{message}");
    for e in [
        JiraError::Unavailable { status: 500 },
        JiraError::Timeout,
        JiraError::Unreachable("x".into()),
        JiraError::NotConfigured("x".into()),
        JiraError::Unexpected { status: 302, reason: "x".into() },
    ] {
        assert_eq!(kind(&jira_outcome(e, None)), "failure");
    }
}

#[test]
fn search_answers_fit_the_response_size() {
    let ticket = |i: usize| Ticket {
        key: format!("BIG-{i}"),
        summary: "s".repeat(200),
        status: Some("Open".into()),
        assignee: Some("Someone With A Long Name".into()),
        updated: Some("2026-01-01T00:00:00.000+0000".into()),
        priority: Some("Medium".into()),
        url: format!("https://acme.atlassian.net/browse/BIG-{i}"),
    };
    let many = SearchResult { tickets: (0..200).map(ticket).collect(), more: false };
    let answer = search_answer("project = BIG", many);
    assert!(answer.to_string().len() <= MAX_BODY_BYTES);
    assert_eq!(answer["more"], true);
    assert_eq!(answer["count"].as_u64().unwrap() as usize, answer["tickets"].as_array().unwrap().len());
    let none = search_answer("x", SearchResult { tickets: vec![], more: false });
    assert_eq!(none["count"], 0);
    assert!(none["message"].is_string());
}

#[test]
fn a_malformed_event_is_a_lambda_error_with_a_meaningful_type() {
    let d: Diagnostic = ActionGroupError::MalformedEvent("no apiPath".into()).into();
    assert_eq!(d.error_type, "MalformedEvent");
    assert!(d.error_message.contains("no apiPath"));
}
