//! The harness adapter over the wire: scripted InvokeHarness event streams, framed as the service
//! frames them and decoded by the real SDK, folded into turns.

use serde_json::{json, Value};

use super::super::harness::{AgentCoreHarness, FILES_UNSUPPORTED};
use super::super::wire::{frame, harness_client};
use super::super::STREAM_INCOMPLETE;
use crate::domain::{AgentBackend, ThreadRef, UNATTRIBUTED_MODEL};
use crate::ports::{AgentClient, AgentErrorKind, AgentInputFile, AgentRequest, SpentCalls};

const ARN: &str = "arn:aws:bedrock-agentcore:us-east-1:111122223333:harness/support-a1b2";
const MODEL: &str = "us.anthropic.claude-sonnet-4-20250514-v1:0";

fn event(kind: &str, payload: Value) -> Vec<u8> {
    frame("event", kind, &payload.to_string()).unwrap()
}

fn text_message(index: i32, parts: &[&str], stop: &str) -> Vec<u8> {
    let mut out = event("messageStart", json!({"role": "assistant"}));
    for part in parts {
        out.extend(event("contentBlockDelta", json!({"contentBlockIndex": index, "delta": {"text": part}})));
    }
    out.extend(event("contentBlockStop", json!({"contentBlockIndex": index})));
    out.extend(event("messageStop", json!({"stopReason": stop})));
    out
}

fn usage(input: u64, output: u64, cache_read: u64, cache_write: u64, latency: u64) -> Vec<u8> {
    event(
        "metadata",
        json!({
            "usage": {"inputTokens": input, "outputTokens": output, "totalTokens": input + output,
                      "cacheReadInputTokens": cache_read, "cacheWriteInputTokens": cache_write},
            "metrics": {"latencyMs": latency}
        }),
    )
}

/// The model asks for a knowledge-base search, the harness runs it and hands back the result.
fn kb_search() -> Vec<u8> {
    let mut out = event("messageStart", json!({"role": "assistant"}));
    out.extend(event("contentBlockDelta", json!({"contentBlockIndex": 0, "delta": {"reasoningContent": {"text": "The user asks about VPN; search the handbook."}}})));
    out.extend(event("contentBlockStop", json!({"contentBlockIndex": 0})));
    out.extend(event(
        "contentBlockStart",
        json!({"contentBlockIndex": 1, "start": {"toolUse": {"toolUseId": "tu-1", "name": "kb___retrieve", "type": "tool_use"}}}),
    ));
    out.extend(event(
        "contentBlockDelta",
        json!({"contentBlockIndex": 1, "delta": {"toolUse": {"input": "{\"knowledgeBaseId\":\"KB12345678\","}}}),
    ));
    out.extend(event(
        "contentBlockDelta",
        json!({"contentBlockIndex": 1, "delta": {"toolUse": {"input": "\"query\":\"vpn setup\"}"}}}),
    ));
    out.extend(event("contentBlockStop", json!({"contentBlockIndex": 1})));
    out.extend(event("messageStop", json!({"stopReason": "tool_use"})));
    out.extend(usage(1200, 80, 1000, 0, 900));
    out.extend(event("messageStart", json!({"role": "user"})));
    out.extend(event(
        "contentBlockStart",
        json!({"contentBlockIndex": 0, "start": {"toolResult": {"toolUseId": "tu-1", "status": "success"}}}),
    ));
    let result = json!({"retrievalResults": [
        {"content": {"text": "Install the client..."}, "location": {"type": "S3", "s3Location": {"uri": "s3://kb/handbook.pdf"}},
         "metadata": {"x-amz-bedrock-kb-document-page-number": 4}}
    ]});
    out.extend(event(
        "contentBlockDelta",
        json!({"contentBlockIndex": 0, "delta": {"toolResult": [{"json": result}]}}),
    ));
    out.extend(event(
        "contentBlockDelta",
        json!({"contentBlockIndex": 0, "delta": {"text": "tool output, not the answer"}}),
    ));
    out.extend(event("contentBlockStop", json!({"contentBlockIndex": 0})));
    out.extend(event("messageStop", json!({"stopReason": "tool_result"})));
    out
}

fn request() -> AgentRequest {
    AgentRequest {
        session_id: "slack-thread-T1-C1-1713534720.001234".into(),
        user_id: "U42".into(),
        input_text: "How do I set up the VPN?".into(),
        ..AgentRequest::default()
    }
}

fn harness(body: Vec<u8>, model: Option<&str>) -> AgentCoreHarness {
    AgentCoreHarness::new(harness_client(body), ARN, Some("prod".into()), model.map(str::to_owned))
}

#[tokio::test]
async fn a_tool_using_turn_yields_answer_tools_sources_and_every_call() {
    let mut body = kb_search();
    body.extend(text_message(0, &["Install the ", "client, then sign in."], "end_turn"));
    body.extend(usage(1500, 60, 1000, 200, 700));
    let streamed = std::sync::Mutex::new(Vec::new());
    let on_text = |t: &str| streamed.lock().unwrap().push(t.to_owned());
    let spent = SpentCalls::default();
    let turn = harness(body, Some(MODEL)).invoke_streaming(&request(), &on_text, &spent).await.unwrap();

    assert_eq!(turn.text, "Install the client, then sign in.");
    assert_eq!(*streamed.lock().unwrap(), ["Install the ", "client, then sign in."]);
    assert_eq!(turn.action_groups, ["retrieve"]);
    assert_eq!(turn.knowledge_bases, ["KB12345678"]);
    assert_eq!(turn.search_queries, ["vpn setup"]);
    assert_eq!(turn.sources, ["handbook.pdf (p. 4)"]);
    assert_eq!(turn.rationale.as_deref(), Some("The user asks about VPN; search the handbook."));
    let calls: Vec<_> = turn
        .model_calls
        .iter()
        .map(|c| {
            (
                c.model_id.as_str(),
                c.input_tokens,
                c.output_tokens,
                c.cache_read_tokens,
                c.cache_write_tokens,
                c.latency_ms,
            )
        })
        .collect();
    assert_eq!(calls, [(MODEL, 1200, 80, 1000, 0, 900), (MODEL, 1500, 60, 1000, 200, 700)]);
    assert_eq!(spent.snapshot(), turn.model_calls, "every call is reported as it arrives");
    assert!(turn.first_token_ms.is_some());
    assert!(turn.failure.is_none() && turn.guardrail_action.is_none() && turn.unknown_events.is_empty());
}

#[tokio::test]
async fn usage_without_a_known_model_is_unattributed_never_guessed() {
    let mut body = text_message(0, &["Hi."], "end_turn");
    body.extend(usage(10, 2, 0, 0, 100));
    let turn = harness(body, None).invoke(&request()).await.unwrap();
    assert_eq!(turn.model_calls.len(), 1);
    assert_eq!(turn.model_calls[0].model_id, UNATTRIBUTED_MODEL);
}

#[tokio::test]
async fn filtered_content_is_a_guardrail_and_a_failed_loop_a_failure() {
    let mut body = text_message(0, &["Sorry, I can't help with that."], "content_filtered");
    body.extend(usage(10, 2, 0, 0, 100));
    let turn = harness(body, Some(MODEL)).invoke(&request()).await.unwrap();
    assert_eq!(turn.guardrail_action.as_deref(), Some(super::CONTENT_FILTERED));

    let body = text_message(0, &[], "max_iterations_exceeded");
    let turn = harness(body, Some(MODEL)).invoke(&request()).await.unwrap();
    assert_eq!(turn.failure.map(|f| f.reason).as_deref(), Some("harness stopped: max_iterations_exceeded"));
}

#[tokio::test]
async fn a_stream_without_its_final_stop_is_incomplete_and_keeps_its_tokens() {
    // Ends after the tool result: the model never answered.
    let err = harness(kb_search(), Some(MODEL)).invoke(&request()).await.unwrap_err();
    assert_eq!((err.kind, err.code.as_str()), (AgentErrorKind::Interrupted, STREAM_INCOMPLETE));
    assert_eq!(err.spent.len(), 1);
    assert_eq!(err.spent[0].input_tokens, 1200);

    // Text, but no message stop at all.
    let mut body = event("messageStart", json!({"role": "assistant"}));
    body.extend(event("contentBlockDelta", json!({"contentBlockIndex": 0, "delta": {"text": "Half an ans"}})));
    let err = harness(body, Some(MODEL)).invoke(&request()).await.unwrap_err();
    assert_eq!(err.code, STREAM_INCOMPLETE);
}

#[tokio::test]
async fn exceptions_in_the_stream_are_classified_and_keep_the_tokens() {
    let mut body = kb_search();
    body.extend(frame("exception", "internalServerException", r#"{"message":"boom"}"#).unwrap());
    let err = harness(body, Some(MODEL)).invoke(&request()).await.unwrap_err();
    assert_eq!((err.kind, err.code.as_str()), (AgentErrorKind::Unavailable, "internalServerException"));
    assert_eq!(err.spent.len(), 1);

    // A type the SDK does not model is named by its frame header, and classified by it.
    let mut body = kb_search();
    body.extend(frame("exception", "throttlingException", r#"{"message":"slow down"}"#).unwrap());
    let err = harness(body, Some(MODEL)).invoke(&request()).await.unwrap_err();
    assert_eq!((err.kind, err.code.as_str()), (AgentErrorKind::Throttled, "throttlingException"));
    assert_eq!(err.spent.len(), 1);

    let body = frame("exception", "validationException", r#"{"message":"bad session"}"#).unwrap();
    let err = harness(body, Some(MODEL)).invoke(&request()).await.unwrap_err();
    assert_eq!(err.kind, AgentErrorKind::Rejected);
    assert!(!err.is_retryable());
}

#[tokio::test]
async fn unknown_events_are_counted_by_kind_never_kept() {
    let mut body = event("brandNewEvent", json!({"secret": "do not log me"}));
    body.extend(text_message(0, &["Hi."], "end_turn"));
    let turn = harness(body, Some(MODEL)).invoke(&request()).await.unwrap();
    assert_eq!(turn.text, "Hi.");
    assert_eq!(turn.unknown_events, ["invoke_harness_event"]);
    assert!(!format!("{turn:?}").contains("do not log me"));
}

#[tokio::test]
async fn files_are_refused_before_the_call_so_the_worker_asks_without_them() {
    let mut req = request();
    req.files.push(AgentInputFile {
        name: "a.csv".into(),
        media_type: "text/csv".into(),
        bytes: b"a".to_vec(),
        use_case: Default::default(),
    });
    let err = harness(Vec::new(), Some(MODEL)).invoke(&req).await.unwrap_err();
    assert_eq!((err.kind, err.code.as_str()), (AgentErrorKind::Rejected, FILES_UNSUPPORTED));
}

#[test]
fn the_harness_names_its_backend_and_long_sessions() {
    let h = harness(Vec::new(), None);
    assert_eq!(h.backend(), AgentBackend::Harness);
    let thread = ThreadRef { team_id: "T1".into(), channel_id: "C1".into(), thread_ts: "1.2".into() };
    assert!(h.session_id(&thread).len() >= 33);
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]
    /// Any sequence of well-framed events with arbitrary payloads: the adapter answers or
    /// fails with an error, never panics, and never invents usage.
    #[test]
    fn arbitrary_event_sequences_never_panic(events in proptest::collection::vec(
        (proptest::sample::select(vec!["messageStart", "contentBlockStart", "contentBlockDelta", "contentBlockStop",
                                       "messageStop", "metadata", "hookEvent", "other"]),
         "\\PC{0,60}"), 0..12)) {
        let mut body = Vec::new();
        for (kind, payload) in &events {
            body.extend(frame("event", kind, payload).unwrap());
        }
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let result = runtime.block_on(harness(body, Some(MODEL)).invoke(&request()));
        let reported = events.iter().filter(|(k, _)| *k == "metadata").count();
        let calls = match result { Ok(turn) => turn.model_calls.len(), Err(e) => e.spent.len() };
        proptest::prop_assert!(calls <= reported);
    }
}
