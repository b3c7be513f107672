//! The runtime adapter over the wire: server-sent event bodies (a Strands Agents entrypoint
//! through the AgentCore app, and the gateway's own contract) decoded by the real SDK.

use serde_json::{json, Value};

use super::runtime::{payload, AgentCoreRuntime, AGENT_RUNTIME_ERROR};
use super::wire::answering_client;
use super::STREAM_INCOMPLETE;
use crate::domain::{AgentBackend, UNATTRIBUTED_MODEL};
use crate::ports::{AgentClient, AgentErrorKind, AgentRequest, SpentCalls};

const ARN: &str = "arn:aws:bedrock-agentcore:us-east-1:111122223333:runtime/helpdesk-XyZ12";
const MODEL: &str = "us.anthropic.claude-sonnet-4-20250514-v1:0";

fn sse(events: &[Value]) -> Vec<u8> {
    events.iter().map(|e| format!("data: {e}\n\n")).collect::<String>().into_bytes()
}

fn runtime(body: Vec<u8>, content_type: &'static str, model: Option<&str>) -> AgentCoreRuntime {
    AgentCoreRuntime::new(answering_client(body, content_type), ARN, None, model.map(str::to_owned))
}

fn request() -> AgentRequest {
    AgentRequest {
        session_id: "slack-thread-T1-C1-1713534720.001234".into(),
        user_id: "U42".into(),
        input_text: "Is the VPN down?".into(),
        ..AgentRequest::default()
    }
}

/// What a Strands agent's `stream_async` events look like once the AgentCore app serialised
/// them: the model's raw events, the same text again as `data`, lifecycle events, and events
/// the app could only print as a string.
fn strands_turn() -> Vec<Value> {
    vec![
        json!({"init_event_loop": true}),
        json!({"start": true}),
        json!({"start_event_loop": true}),
        json!({"event": {"messageStart": {"role": "assistant"}}}),
        json!({"event": {"contentBlockStart": {"start": {"toolUse": {"toolUseId": "t1", "name": "jira___searchTickets"}}, "contentBlockIndex": 0}}}),
        json!({"event": {"contentBlockStop": {"contentBlockIndex": 0}}}),
        json!({"event": {"messageStop": {"stopReason": "tool_use"}}}),
        json!({"event": {"metadata": {"usage": {"inputTokens": 900, "outputTokens": 40, "totalTokens": 940}, "metrics": {"latencyMs": 800}}}}),
        json!("{'message': {'role': 'user', 'content': [...]}, 'agent': <strands.agent.agent.Agent object at 0x7f>}"),
        json!({"event": {"messageStart": {"role": "assistant"}}}),
        json!({"event": {"contentBlockDelta": {"delta": {"text": "No, the VPN "}, "contentBlockIndex": 0}}}),
        json!({"data": "No, the VPN ", "delta": {"text": "No, the VPN "}}),
        json!({"event": {"contentBlockDelta": {"delta": {"text": "is up (OPS-12)."}, "contentBlockIndex": 0}}}),
        json!({"data": "is up (OPS-12).", "delta": {"text": "is up (OPS-12)."}}),
        json!({"event": {"contentBlockStop": {"contentBlockIndex": 0}}}),
        json!({"event": {"messageStop": {"stopReason": "end_turn"}}}),
        json!({"event": {"metadata": {"usage": {"inputTokens": 1300, "outputTokens": 25, "totalTokens": 1325, "cacheReadInputTokens": 800}, "metrics": {"latencyMs": 600}}}}),
        json!({"result": "AgentResult(stop_reason='end_turn', ...)"}),
    ]
}

#[tokio::test]
async fn a_strands_stream_gives_the_text_once_the_tools_and_every_call() {
    let streamed = std::sync::Mutex::new(Vec::new());
    let on_text = |t: &str| streamed.lock().unwrap().push(t.to_owned());
    let spent = SpentCalls::default();
    let agent = runtime(sse(&strands_turn()), "text/event-stream", Some(MODEL));
    let turn = agent.invoke_streaming(&request(), &on_text, &spent).await.unwrap();
    assert_eq!(turn.text, "No, the VPN is up (OPS-12).");
    assert_eq!(*streamed.lock().unwrap(), ["No, the VPN ", "is up (OPS-12)."]);
    assert_eq!(turn.action_groups, ["searchTickets"]);
    let calls: Vec<_> = turn
        .model_calls
        .iter()
        .map(|c| (c.model_id.as_str(), c.input_tokens, c.output_tokens, c.cache_read_tokens, c.latency_ms))
        .collect();
    assert_eq!(calls, [(MODEL, 900, 40, 0, 800), (MODEL, 1300, 25, 800, 600)]);
    assert_eq!(spent.snapshot(), turn.model_calls);
    assert!(!turn.usage_unreported);
    assert!(turn.unknown_events.is_empty(), "{:?}", turn.unknown_events);
}

#[tokio::test]
async fn the_contract_stream_names_its_models_sources_and_stop() {
    let body = sse(&[
        json!({"tool": "retrieve"}),
        json!({"usage": {"model_id": "amazon.nova-pro-v1:0", "input_tokens": 500, "output_tokens": 20, "latency_ms": 300}}),
        json!({"data": "See the handbook."}),
        json!({"sources": ["s3://kb/handbook.pdf"]}),
        json!({"usage": {"input_tokens": 700, "output_tokens": 30, "cache_write_tokens": 100}}),
        json!({"stop_reason": "end_turn"}),
    ]);
    let turn = runtime(body, "text/event-stream", None).invoke(&request()).await.unwrap();
    assert_eq!(turn.text, "See the handbook.");
    assert_eq!(turn.sources, ["handbook.pdf"]);
    assert_eq!(turn.action_groups, ["retrieve"]);
    let models: Vec<_> = turn.model_calls.iter().map(|c| c.model_id.as_str()).collect();
    assert_eq!(models, ["amazon.nova-pro-v1:0", UNATTRIBUTED_MODEL], "a call without a model is never guessed");
    assert_eq!(turn.model_calls[1].cache_write_tokens, 100);
}

#[tokio::test]
async fn a_stream_without_usage_is_unreported() {
    let body = sse(&[json!({"data": "Hello."}), json!({"stop_reason": "end_turn"})]);
    let turn = runtime(body, "text/event-stream", Some(MODEL)).invoke(&request()).await.unwrap();
    assert_eq!(turn.text, "Hello.");
    assert!(turn.model_calls.is_empty());
    assert!(turn.usage_unreported);
}

#[tokio::test]
async fn a_whole_json_answer_is_read_too() {
    let body = json!({"result": "Done.", "usage": {"input_tokens": 10, "output_tokens": 2}}).to_string().into_bytes();
    let turn = runtime(body, "application/json", Some(MODEL)).invoke(&request()).await.unwrap();
    assert_eq!(turn.text, "Done.");
    assert_eq!(turn.model_calls.len(), 1);
    assert!(!turn.usage_unreported);
}

#[tokio::test]
async fn errors_and_unfinished_streams_fail_the_attempt_keeping_the_tokens() {
    let body = sse(&[
        json!({"event": {"metadata": {"usage": {"inputTokens": 100, "outputTokens": 5, "totalTokens": 105}}}}),
        json!({"error": "KeyError: 'secret-ish detail'"}),
    ]);
    let err = runtime(body, "text/event-stream", Some(MODEL)).invoke(&request()).await.unwrap_err();
    assert_eq!((err.kind, err.code.as_str()), (AgentErrorKind::Rejected, AGENT_RUNTIME_ERROR));
    assert_eq!(err.spent.len(), 1);
    assert!(!err.message.contains("secret-ish"), "the agent's own error text is not passed on");

    let body = sse(&[json!({"data": "Half"})]);
    let err = runtime(body, "text/event-stream", Some(MODEL)).invoke(&request()).await.unwrap_err();
    assert_eq!((err.kind, err.code.as_str()), (AgentErrorKind::Interrupted, STREAM_INCOMPLETE));
    assert!(err.usage_unreported);
}

#[tokio::test]
async fn unknown_events_are_counted_by_kind() {
    let body = sse(&[json!({"brand_new": {"secret": 1}}), json!({"data": "Hi."}), json!({"stop_reason": "end_turn"})]);
    let turn = runtime(body, "text/event-stream", Some(MODEL)).invoke(&request()).await.unwrap();
    assert_eq!(turn.unknown_events, ["runtime_event"]);
}

#[test]
fn the_payload_carries_the_prompt_and_who_asks() {
    let mut req = request();
    req.session_attributes.insert("slack_team_id".into(), "T1".into());
    let p = payload(&req);
    assert_eq!(p["prompt"], "Is the VPN down?");
    assert_eq!(p["user_id"], "U42");
    assert_eq!(p["slack"]["team_id"], "T1");
    assert_eq!(runtime(Vec::new(), "text/event-stream", None).backend(), AgentBackend::Runtime);
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]
    /// Any body: the adapter answers or fails, never panics, and reports no call it was not told.
    #[test]
    fn arbitrary_bodies_never_panic(body in "\\PC{0,400}", streamed in proptest::bool::ANY) {
        let content_type = if streamed { "text/event-stream" } else { "application/json" };
        let runtime_rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let result = runtime_rt.block_on(runtime(body.clone().into_bytes(), content_type, None).invoke(&request()));
        let calls = match result { Ok(t) => t.model_calls.len(), Err(e) => e.spent.len() };
        proptest::prop_assert!(calls <= body.matches("usage").count().max(body.matches("metadata").count()));
    }
}
