use std::collections::{BTreeMap, HashMap};

use proptest::prelude::*;
use serde_json::{json, Map, Value};

use super::*;

/// The client context of the developer guide's Lambda input example (every documented key).
fn documented_custom(tool_name: &str) -> HashMap<String, String> {
    [
        (TOOL_NAME, tool_name),
        (MESSAGE_VERSION, "1.0"),
        (AWS_REQUEST_ID, "req-1"),
        (MCP_MESSAGE_ID, "msg-1"),
        (GATEWAY_ID, "gw-1"),
        (TARGET_ID, "tgt-1"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

#[test]
fn reads_the_documented_client_context() {
    let context = GatewayContext::from_custom(&documented_custom("TicketTools___getTicket")).unwrap();
    assert_eq!(context.tool_name, "TicketTools___getTicket");
    assert_eq!(context.tool(), "getTicket");
    assert_eq!(context.gateway_id.as_deref(), Some("gw-1"));
    assert_eq!(context.target_id.as_deref(), Some("tgt-1"));
    assert_eq!(context.message_version.as_deref(), Some("1.0"));
    assert_eq!(context.aws_request_id.as_deref(), Some("req-1"));
    assert_eq!(context.mcp_message_id.as_deref(), Some("msg-1"));
    // Not a gateway call: a client context without a tool name (or none at all).
    let mut other = documented_custom("x");
    other.remove(TOOL_NAME);
    assert_eq!(GatewayContext::from_custom(&other), None);
    assert_eq!(GatewayContext::from_custom(&HashMap::new()), None);
}

#[test]
fn strips_the_target_prefix_once() {
    assert_eq!(strip_target_prefix("TicketTools___searchTickets"), "searchTickets");
    assert_eq!(strip_target_prefix("my-target___get_my_usage"), "get_my_usage");
    assert_eq!(strip_target_prefix("t___a___b"), "a___b", "only the first delimiter ends the prefix");
    assert_eq!(strip_target_prefix("t____x"), "_x");
    assert_eq!(strip_target_prefix("getTicket"), "getTicket", "a bare name stays");
    assert_eq!(strip_target_prefix("t__getTicket"), "t__getTicket", "two underscores are not the delimiter");
    assert_eq!(strip_target_prefix("t___"), "");
    assert_eq!(GatewayContext::for_tool("T___getMyUsage").tool(), "getMyUsage");
}

#[test]
fn arguments_are_text_by_name() {
    let accepted = ["query", "limit", "status", "open"];
    let args = parse_arguments(&json!({"query": "VPN", "limit": 5, "open": true, "status": null}), &accepted).unwrap();
    assert_eq!(
        args,
        BTreeMap::from([
            ("query".to_string(), "VPN".to_string()),
            ("limit".to_string(), "5".to_string()),
            ("open".to_string(), "true".to_string()),
        ])
    );
    assert!(parse_arguments(&json!({}), &accepted).unwrap().is_empty());
    assert!(parse_arguments(&Value::Null, &accepted).unwrap().is_empty(), "no arguments at all");
}

#[test]
fn malformed_arguments_say_what_is_wrong_without_the_values() {
    let e = parse_arguments(&json!(["VPN"]), &["query"]).unwrap_err();
    assert_eq!(e, ArgumentsError::NotAnObject("an array"));
    assert_eq!(e.to_string(), "The tool arguments must be a JSON object, not an array.");
    assert_eq!(e.problem(), "arguments_not_an_object");
    let e = parse_arguments(&json!("secret text"), &["query"]).unwrap_err();
    assert!(!e.to_string().contains("secret"), "{e}");
    let e = parse_arguments(&json!({"query": {"nested": "secret"}}), &["query"]).unwrap_err();
    assert_eq!(e.problem(), "argument_not_a_scalar");
    assert_eq!(e.to_string(), "The argument \"query\" must be a string or a number, not an object.");
    let e = parse_arguments(&json!({"user_id": "U999"}), &["period", "start_date"]).unwrap_err();
    assert_eq!(e.problem(), "unknown_argument");
    assert_eq!(e.to_string(), "This tool has no argument \"user_id\"; it takes period, start_date.");
    assert!(!e.to_string().contains("U999"));
    let e = parse_arguments(&json!({"x": 1}), &[]).unwrap_err();
    assert!(e.to_string().ends_with("it takes no arguments."), "{e}");
}

#[test]
fn results_are_json_answers_or_mcp_error_results() {
    let answer = ToolResult::Answer(json!({"key": "ITSUP-1"}));
    assert_eq!(serde_json::to_value(&answer).unwrap(), json!({"key": "ITSUP-1"}));
    assert!(!answer.is_error());
    assert_eq!(answer.text(), r#"{"key":"ITSUP-1"}"#);
    let error = ToolResult::error("Jira is down.");
    assert_eq!(
        serde_json::to_value(&error).unwrap(),
        json!({"isError": true, "content": [{"type": "text", "text": "Jira is down."}]})
    );
    assert!(error.is_error());
    assert_eq!(error.text(), "Jira is down.");
    let back: ToolResult = serde_json::from_value(serde_json::to_value(&error).unwrap()).unwrap();
    assert_eq!(back, error);
    let back: ToolResult = serde_json::from_value(json!({"count": 0})).unwrap();
    assert_eq!(back, ToolResult::Answer(json!({"count": 0})));
}

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(256)
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        "\\PC{0,12}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::vec(("[a-z_]{0,8}", inner), 0..6)
                .prop_map(|kv| Value::Object(kv.into_iter().collect::<Map<String, Value>>())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases()))]

    /// Any name: no panic, the result is a suffix, and exactly one prefix (up to and including
    /// the first delimiter) is gone.
    #[test]
    fn stripping_any_name_removes_exactly_one_prefix(name in "(\\PC|_){0,40}") {
        let tool = strip_target_prefix(&name);
        prop_assert!(name.ends_with(tool));
        match name.find(TARGET_DELIMITER) {
            Some(at) => prop_assert_eq!(tool.len(), name.len() - at - TARGET_DELIMITER.len()),
            None => prop_assert_eq!(tool, name.as_str()),
        }
    }

    /// A gateway name built from a target (no `_`, as target names are) and any tool name
    /// strips back to that tool name, even one with underscores or a `___` of its own.
    #[test]
    fn target_and_tool_round_trip(target in "[A-Za-z0-9-]{1,20}", tool in "[A-Za-z0-9_-]{0,30}") {
        let gateway_name = format!("{target}{TARGET_DELIMITER}{tool}");
        prop_assert_eq!(strip_target_prefix(&gateway_name), tool.as_str());
        let custom = HashMap::from([(TOOL_NAME.to_string(), gateway_name.clone())]);
        let context = GatewayContext::from_custom(&custom).expect("a tool name");
        prop_assert_eq!(context.tool(), tool.as_str());
        prop_assert_eq!(context.tool_name, gateway_name);
    }

    /// Any client-context map: no panic, a gateway call exactly when it names a tool.
    #[test]
    fn any_client_context_is_read_without_panic(custom in prop::collection::hash_map("\\PC{0,30}", "\\PC{0,30}", 0..8)) {
        prop_assert_eq!(GatewayContext::from_custom(&custom).is_some(), custom.contains_key(TOOL_NAME));
    }

    /// Any JSON as the event: parsed or refused, never a panic; what is accepted is only
    /// declared names, and an error never repeats a string value.
    #[test]
    fn any_json_arguments_are_parsed_or_refused_without_panic(event in json_value()) {
        let accepted = ["query", "limit", "a", "b_c"];
        match parse_arguments(&event, &accepted) {
            Ok(args) => {
                for name in args.keys() {
                    prop_assert!(accepted.contains(&name.as_str()));
                }
            }
            Err(ArgumentsError::Unknown { name, .. }) => prop_assert!(!accepted.contains(&name.as_str())),
            Err(_) => {}
        }
    }

    /// Scalar arguments round-trip: an object of declared names and string or integer values
    /// comes back as the same names and texts.
    #[test]
    fn scalar_arguments_round_trip(values in prop::collection::btree_map(
        prop::sample::select(vec!["query", "jql", "status", "limit"]),
        prop_oneof!["\\PC{0,20}".prop_map(Value::String), any::<i64>().prop_map(Value::from)],
        0..4,
    )) {
        let event = Value::Object(values.iter().map(|(k, v)| (k.to_string(), v.clone())).collect());
        let args = parse_arguments(&event, &["query", "jql", "status", "limit"]).expect("scalars parse");
        let expected: BTreeMap<String, String> = values
            .iter()
            .map(|(k, v)| (k.to_string(), v.as_str().map_or_else(|| v.to_string(), str::to_owned)))
            .collect();
        prop_assert_eq!(args, expected);
    }
}
