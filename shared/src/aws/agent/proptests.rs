//! Generated event streams through [`TurnCollector`]: whatever the agent sends, in any order
//! (chunks with any bytes, traces with or without usage, unmatched inputs and outputs, failure
//! and guardrail traces, events this SDK does not know), the collector never panics and the
//! turn's tokens are the sum of what the stream reported, at the end and at every step on the
//! way (what a caller cut off by a deadline records).
//!
//! CI runs [`CI_CASES`] cases; `PROPTEST_CASES=1000000 cargo test --workspace --lib aws::agent::proptests`
//! runs the long run.

use std::time::Instant;

use aws_sdk_bedrockagentruntime::primitives::Blob;
use aws_sdk_bedrockagentruntime::types::{
    FailureTrace, FilePart, GuardrailAction, GuardrailTrace, Metadata, ModelInvocationInput,
    OrchestrationModelInvocationOutput, OrchestrationTrace, OutputFile, PayloadPart,
    PostProcessingModelInvocationOutput, PostProcessingTrace, PreProcessingModelInvocationOutput,
    PreProcessingParsedResponse, PreProcessingTrace, Rationale, ResponseStream, ReturnControlPayload,
    RoutingClassifierModelInvocationOutput, RoutingClassifierTrace, Trace, TracePart, Usage,
};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use proptest::prelude::*;
use serde_json::{json, Value};

use super::TurnCollector;
use crate::aws::agent::BedrockAgent;
use crate::domain::{total_tokens, ModelCall};
use crate::ports::{AgentClient, AgentRequest, SpentCalls};

/// Cases per property in CI (PROPTEST_CASES overrides).
const CI_CASES: u32 = 256;

fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(CI_CASES);
    ProptestConfig { cases, failure_persistence: None, ..ProptestConfig::default() }
}

/// One stream item, described small enough to shrink well.
#[derive(Debug, Clone)]
enum Item {
    Chunk(Vec<u8>),
    /// A `modelInvocationInput` of trace kind `step` (0..4), agent `agent`, trace id `trace`.
    Input {
        step: u8,
        agent: Option<u8>,
        trace: Option<u8>,
        model: Option<String>,
    },
    /// A `modelInvocationOutput`; `usage` None = no usage block at all.
    Output {
        step: u8,
        agent: Option<u8>,
        trace: Option<u8>,
        usage: Option<(Option<i32>, Option<i32>)>,
        ms: Option<i64>,
    },
    Rationale(String),
    Failure(Option<i32>, Option<String>),
    Guardrail(u8),
    ReturnControl(Option<String>),
    Files(Vec<u8>),
    /// A trace part that carries no trace.
    EmptyTrace,
    /// A trace kind, or a member of a kind, this SDK version does not know.
    UnknownTrace(u8),
    /// A stream event this SDK version does not know.
    UnknownEvent,
}

impl Item {
    /// The tokens this item reports, as the ledger must count them (a negative count is none).
    fn reported(&self) -> (u64, u64) {
        match self {
            Item::Output { usage: Some((i, o)), .. } => (count(*i), count(*o)),
            _ => (0, 0),
        }
    }

    /// The item as the SDK hands it over; None for unknown ones, which only the SDK's decoder
    /// can make (see [`Item::frame`]).
    fn event(&self) -> Option<ResponseStream> {
        Some(match self {
            Item::Chunk(bytes) => ResponseStream::Chunk(PayloadPart::builder().bytes(Blob::new(bytes.clone())).build()),
            Item::Input { step, agent, trace, model } => {
                let input = ModelInvocationInput::builder()
                    .set_trace_id(trace.map(|t| format!("t-{t}")))
                    .set_foundation_model(model.clone())
                    .build();
                let t = match step % 4 {
                    0 => Trace::PreProcessingTrace(PreProcessingTrace::ModelInvocationInput(input)),
                    1 => Trace::OrchestrationTrace(OrchestrationTrace::ModelInvocationInput(input)),
                    2 => Trace::PostProcessingTrace(PostProcessingTrace::ModelInvocationInput(input)),
                    _ => Trace::RoutingClassifierTrace(RoutingClassifierTrace::ModelInvocationInput(input)),
                };
                traced(*agent, Some(t))
            }
            Item::Output { step, agent, trace, usage, ms } => {
                let metadata = Metadata::builder()
                    .set_usage(usage.map(|(i, o)| Usage::builder().set_input_tokens(i).set_output_tokens(o).build()))
                    .set_total_time_ms(*ms)
                    .build();
                let trace_id = trace.map(|t| format!("t-{t}"));
                let t = match step % 4 {
                    0 => Trace::PreProcessingTrace(PreProcessingTrace::ModelInvocationOutput(
                        PreProcessingModelInvocationOutput::builder()
                            .set_trace_id(trace_id)
                            .parsed_response(PreProcessingParsedResponse::builder().rationale("r").build())
                            .metadata(metadata)
                            .build(),
                    )),
                    1 => Trace::OrchestrationTrace(OrchestrationTrace::ModelInvocationOutput(
                        OrchestrationModelInvocationOutput::builder().set_trace_id(trace_id).metadata(metadata).build(),
                    )),
                    2 => Trace::PostProcessingTrace(PostProcessingTrace::ModelInvocationOutput(
                        PostProcessingModelInvocationOutput::builder()
                            .set_trace_id(trace_id)
                            .metadata(metadata)
                            .build(),
                    )),
                    _ => Trace::RoutingClassifierTrace(RoutingClassifierTrace::ModelInvocationOutput(
                        RoutingClassifierModelInvocationOutput::builder()
                            .set_trace_id(trace_id)
                            .metadata(metadata)
                            .build(),
                    )),
                };
                traced(*agent, Some(t))
            }
            Item::Rationale(text) => traced(
                Some(0),
                Some(Trace::OrchestrationTrace(OrchestrationTrace::Rationale(Rationale::builder().text(text).build()))),
            ),
            Item::Failure(code, reason) => traced(
                Some(0),
                Some(Trace::FailureTrace(
                    FailureTrace::builder().set_failure_code(*code).set_failure_reason(reason.clone()).build(),
                )),
            ),
            Item::Guardrail(n) => {
                let action = match n % 3 {
                    0 => GuardrailAction::None,
                    1 => GuardrailAction::Intervened,
                    _ => GuardrailAction::from("SOMETHING_NEW"),
                };
                traced(Some(0), Some(Trace::GuardrailTrace(GuardrailTrace::builder().action(action).build())))
            }
            Item::ReturnControl(id) => {
                ResponseStream::ReturnControl(ReturnControlPayload::builder().set_invocation_id(id.clone()).build())
            }
            Item::Files(bytes) => ResponseStream::Files(
                FilePart::builder()
                    .files(OutputFile::builder().name("f.bin").bytes(Blob::new(bytes.clone())).build())
                    .build(),
            ),
            Item::EmptyTrace => traced(Some(0), None),
            Item::UnknownTrace(_) | Item::UnknownEvent => return None,
        })
    }

    /// The item as an event-stream frame on the wire (InvokeAgent's JSON shapes).
    fn frame(&self) -> Vec<u8> {
        const KINDS: [&str; 4] =
            ["preProcessingTrace", "orchestrationTrace", "postProcessingTrace", "routingClassifierTrace"];
        let part = |agent: Option<u8>, trace: Option<Value>| {
            let mut p = json!({ "sessionId": "T1-C1-1.2", "agentAliasId": "TSTALIASID" });
            if let Some(a) = agent {
                p["agentId"] = json!(format!("AGENT{a}"));
            }
            if let Some(t) = trace {
                p["trace"] = t;
            }
            p
        };
        let trace_id = |t: &Option<u8>| t.map(|t| json!(format!("t-{t}"))).unwrap_or(Value::Null);
        let (kind, payload) = match self {
            Item::Chunk(bytes) => ("chunk", json!({ "bytes": B64.encode(bytes) })),
            Item::Input { step, agent, trace, model } => {
                let input = strip_nulls(json!({ "traceId": trace_id(trace), "foundationModel": model }));
                (
                    "trace",
                    part(*agent, Some(json!({ KINDS[usize::from(step % 4)]: { "modelInvocationInput": input } }))),
                )
            }
            Item::Output { step, agent, trace, usage, ms } => {
                let mut metadata = strip_nulls(json!({ "totalTimeMs": ms }));
                if let Some((i, o)) = usage {
                    metadata["usage"] = strip_nulls(json!({ "inputTokens": i, "outputTokens": o }));
                }
                let mut output = strip_nulls(json!({ "traceId": trace_id(trace) }));
                output["metadata"] = metadata;
                if step % 4 == 0 {
                    output["parsedResponse"] = json!({ "isValid": true, "rationale": "r" });
                }
                (
                    "trace",
                    part(*agent, Some(json!({ KINDS[usize::from(step % 4)]: { "modelInvocationOutput": output } }))),
                )
            }
            Item::Rationale(text) => {
                ("trace", part(Some(0), Some(json!({ "orchestrationTrace": { "rationale": { "text": text } } }))))
            }
            Item::Failure(code, reason) => (
                "trace",
                part(
                    Some(0),
                    Some(
                        json!({ "failureTrace": strip_nulls(json!({ "failureCode": code, "failureReason": reason })) }),
                    ),
                ),
            ),
            Item::Guardrail(n) => {
                let action = ["NONE", "INTERVENED", "SOMETHING_NEW"][usize::from(n % 3)];
                ("trace", part(Some(0), Some(json!({ "guardrailTrace": { "action": action } }))))
            }
            Item::ReturnControl(id) => ("returnControl", strip_nulls(json!({ "invocationId": id }))),
            Item::Files(bytes) => (
                "files",
                json!({ "files": [ { "name": "f.bin", "type": "application/octet-stream", "bytes": B64.encode(bytes) } ] }),
            ),
            Item::EmptyTrace => ("trace", part(Some(0), None)),
            Item::UnknownTrace(n) => {
                let trace = match n % 3 {
                    0 => json!({ "someNewTrace": { "traceId": "n-0" } }),
                    1 => json!({ "orchestrationTrace": { "someNewMember": { "x": 1 } } }),
                    _ => json!({ "preProcessingTrace": { "someNewMember": { "x": 1 } } }),
                };
                ("trace", part(Some(0), Some(trace)))
            }
            Item::UnknownEvent => ("someNewEvent", json!({ "x": 1 })),
        };
        super::wire::frame("event", kind, &payload.to_string()).unwrap_or_else(|e| panic!("frame: {e}"))
    }
}

fn strip_nulls(mut v: Value) -> Value {
    if let Some(map) = v.as_object_mut() {
        map.retain(|_, x| !x.is_null());
    }
    v
}

/// The Bedrock adapter over the real SDK, answered with `body`.
fn agent_answering(body: Vec<u8>) -> BedrockAgent {
    BedrockAgent::new(super::wire::answering_client(body), "AGENT0", "TSTALIASID")
}

fn count(n: Option<i32>) -> u64 {
    n.map_or(0, |n| u64::try_from(n).unwrap_or(0))
}

fn traced(agent: Option<u8>, trace: Option<Trace>) -> ResponseStream {
    ResponseStream::Trace(
        TracePart::builder()
            .set_agent_id(agent.map(|a| format!("AGENT{a}")))
            .session_id("T1-C1-1.2")
            .set_trace(trace)
            .build(),
    )
}

fn tokens_count() -> impl Strategy<Value = Option<i32>> {
    prop_oneof![
        6 => (0..200_000i32).prop_map(Some),
        1 => Just(None),
        1 => any::<i32>().prop_map(Some),
    ]
}

fn item() -> impl Strategy<Value = Item> {
    let small = || proptest::option::of(0..3u8);
    prop_oneof![
        3 => proptest::collection::vec(any::<u8>(), 0..12).prop_map(Item::Chunk),
        4 => (0..4u8, small(), small(), proptest::option::of(prop_oneof![Just(String::new()), "[a-z.:-]{1,20}"]))
            .prop_map(|(step, agent, trace, model)| Item::Input { step, agent, trace, model }),
        5 => (0..4u8, small(), small(), proptest::option::of((tokens_count(), tokens_count())), proptest::option::of(any::<i64>()))
            .prop_map(|(step, agent, trace, usage, ms)| Item::Output { step, agent, trace, usage, ms }),
        1 => ".{0,8}".prop_map(Item::Rationale),
        1 => (proptest::option::of(any::<i32>()), proptest::option::of(".{0,8}")).prop_map(|(c, r)| Item::Failure(c, r)),
        1 => any::<u8>().prop_map(Item::Guardrail),
        1 => proptest::option::of("[a-z0-9-]{0,8}").prop_map(Item::ReturnControl),
        1 => proptest::collection::vec(any::<u8>(), 0..8).prop_map(Item::Files),
        1 => Just(Item::EmptyTrace),
        1 => any::<u8>().prop_map(Item::UnknownTrace),
        1 => Just(Item::UnknownEvent),
    ]
}

fn totals(calls: &[ModelCall]) -> (u64, u64) {
    total_tokens(calls)
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn any_stream_is_read_without_panic_and_its_tokens_are_the_reported_ones(
        items in proptest::collection::vec(item(), 0..40)
    ) {
        let mut collector = TurnCollector::new(Instant::now());
        let mut reported = (0u64, 0u64);
        let mut outputs = 0usize;
        let mut text = Vec::new();
        for item in &items {
            let (i, o) = item.reported();
            reported = (reported.0 + i, reported.1 + o);
            outputs += usize::from(matches!(item, Item::Output { .. }));
            if let Item::Chunk(bytes) = item {
                text.extend_from_slice(bytes);
            }
            if let Some(event) = item.event() {
                collector.push(event);
            }
            // What a caller cut off here would record.
            prop_assert_eq!(totals(&collector.spent()), reported);
        }
        let turn = collector.finish();
        prop_assert_eq!(totals(&turn.model_calls), reported);
        // Every output is one call; an input adds one only when no output completed it.
        let inputs = items.iter().filter(|i| matches!(i, Item::Input { .. })).count();
        prop_assert!(turn.model_calls.len() >= outputs && turn.model_calls.len() <= outputs + inputs);
        prop_assert_eq!(turn.text, String::from_utf8_lossy(&text).into_owned());
    }

    /// The same through the SDK's decoder and the adapter, unknown events and trace kinds
    /// included, the stream cut at any byte: what the caller keeps (the turn, or the error's
    /// spent calls, and the calls reported while the stream ran) adds up to what the complete
    /// frames reported.
    #[test]
    fn any_stream_cut_anywhere_through_the_adapter_keeps_the_reported_tokens(
        items in proptest::collection::vec(item(), 0..24),
        cut in proptest::option::of(any::<prop::sample::Index>()),
    ) {
        let frames: Vec<Vec<u8>> = items.iter().map(Item::frame).collect();
        let mut body: Vec<u8> = frames.concat();
        let cut_at = cut.map_or(body.len(), |i| i.index(body.len() + 1));
        body.truncate(cut_at);
        // The frames that arrived whole, and what they reported.
        let (mut whole_len, mut reported, mut text) = (0usize, (0u64, 0u64), Vec::new());
        for (item, frame) in items.iter().zip(&frames) {
            whole_len += frame.len();
            if whole_len > cut_at {
                break;
            }
            let (i, o) = item.reported();
            reported = (reported.0 + i, reported.1 + o);
            if let Item::Chunk(bytes) = item {
                text.extend_from_slice(bytes);
            }
        }
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let agent = agent_answering(body);
        let request = AgentRequest { session_id: "T1-C1-1.2".into(), input_text: "q".into(), ..AgentRequest::default() };
        let spent = SpentCalls::default();
        let streamed = std::sync::Mutex::new(String::new());
        let sink = |d: &str| streamed.lock().unwrap().push_str(d);
        let result = rt.block_on(agent.invoke_streaming(&request, &sink, &spent));
        prop_assert_eq!(totals(&spent.snapshot()), reported);
        match result {
            Ok(turn) => {
                prop_assert_eq!(totals(&turn.model_calls), reported);
                prop_assert_eq!(&turn.text, &String::from_utf8_lossy(&text).into_owned());
                if std::str::from_utf8(&text).is_ok() {
                    prop_assert_eq!(&*streamed.lock().unwrap(), &turn.text);
                }
            }
            Err(e) => {
                // Only a stream cut short fails.
                prop_assert!(cut_at < frames.iter().map(Vec::len).sum::<usize>(), "{}", e);
                prop_assert_eq!(totals(&e.spent), reported);
            }
        }
    }
}
