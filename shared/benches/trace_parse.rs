//! Throughput of reading an InvokeAgent event stream into an AgentTurn.
//!
//! The stream is every scripted turn of events/agent (traces with usage, knowledge base
//! references with citations, action groups, guardrail and failure traces, Markdown chunks)
//! framed as `application/vnd.amazon.eventstream`, about what a long multi-step turn sends.
//!
//! - `sdk_decode_and_collect`: `BedrockAgent::invoke` over the real SDK, with an in-memory HTTP
//!   client answering the framed body: frame decoding, the SDK's JSON deserializers and the
//!   TurnCollector (plus one request signing per turn). Bytes are the framed body.
//! - `collector_only`: the same items, already decoded, pushed into a TurnCollector. Bytes are
//!   the JSON payloads of the frames.

// A benchmark, like a test, may panic on broken fixtures.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::hint::black_box;
use std::path::Path;
use std::time::Instant;

use aws_sdk_bedrockagentruntime::types::ResponseStream;
use base64::Engine as _;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use serde_json::{json, Value};
use shared::aws::agent::{wire, BedrockAgent, TurnCollector};
use shared::ports::{AgentClient, AgentRequest};

/// The framed body and the total size of its JSON payloads.
fn scripted_stream() -> (Vec<u8>, usize) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../events/agent");
    let mut paths: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    paths.sort();
    let (mut body, mut json_bytes) = (Vec::new(), 0);
    for path in paths {
        let script: Value = serde_json::from_slice(&std::fs::read(&path).unwrap_or_else(|e| panic!("{e}")))
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        for attempt in script["attempts"].as_array().into_iter().flatten() {
            for event in attempt["events"].as_array().into_iter().flatten() {
                let (kind, payload) = if let Some(chunk) = event.get("chunk") {
                    let text = chunk["text"].as_str().unwrap_or_default();
                    let mut p = json!({ "bytes": base64::engine::general_purpose::STANDARD.encode(text) });
                    if let Some(a) = chunk.get("attribution") {
                        p["attribution"] = a.clone();
                    }
                    ("chunk", p)
                } else if let Some(trace) = event.get("trace") {
                    let part = json!({
                        "agentId": "AGENT12345", "agentAliasId": "TSTALIASID", "agentVersion": "1",
                        "sessionId": "bench-session", "eventTime": "2025-03-11T10:02:11.204Z", "trace": trace,
                    });
                    ("trace", part)
                } else if let Some(files) = event.get("files") {
                    ("files", files.clone())
                } else if let Some(rc) = event.get("returnControl") {
                    ("returnControl", rc.clone())
                } else {
                    continue; // exceptions and cuts end a stream; not part of a complete turn
                };
                let payload = payload.to_string();
                json_bytes += payload.len();
                body.extend_from_slice(&wire::frame("event", kind, &payload).unwrap_or_else(|e| panic!("frame: {e}")));
            }
        }
    }
    (body, json_bytes)
}

fn bench(c: &mut Criterion) {
    let (body, json_bytes) = scripted_stream();
    let rt =
        tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap_or_else(|e| panic!("runtime: {e}"));
    let client = wire::answering_client(body.clone());
    let agent = BedrockAgent::new(client.clone(), "AGENT12345", "TSTALIASID");
    let request = AgentRequest {
        session_id: "bench-session".into(),
        input_text: "What is our password rotation policy?".into(),
        user_id: "U0BENCH".into(),
        session_attributes: HashMap::new(),
        files: Vec::new(),
    };

    // The decoded items, once, for the collector-only measurement.
    let items: Vec<ResponseStream> = rt.block_on(async {
        let mut out = client
            .invoke_agent()
            .agent_id("AGENT12345")
            .agent_alias_id("TSTALIASID")
            .session_id("bench-session")
            .input_text("x")
            .send()
            .await
            .unwrap_or_else(|e| panic!("invoke: {e:?}"));
        let mut items = Vec::new();
        while let Some(item) = out.completion.recv().await.unwrap_or_else(|e| panic!("recv: {e:?}")) {
            items.push(item);
        }
        items
    });
    let turn = rt.block_on(agent.invoke(&request)).unwrap_or_else(|e| panic!("{e}"));
    eprintln!(
        "stream: {} frames, {} framed bytes, {} JSON bytes; turn: {} model calls, {} sources, {} chars",
        items.len(),
        body.len(),
        json_bytes,
        turn.model_calls.len(),
        turn.sources.len(),
        turn.text.len()
    );

    let mut group = c.benchmark_group("trace_parse");
    group.throughput(Throughput::Bytes(body.len() as u64));
    group.bench_function("sdk_decode_and_collect", |b| {
        b.iter(|| black_box(rt.block_on(agent.invoke(&request)).map(|t| t.model_calls.len())))
    });
    group.throughput(Throughput::Bytes(json_bytes as u64));
    group.bench_function("collector_only", |b| {
        b.iter_batched(
            || items.clone(),
            |items| {
                let mut collector = TurnCollector::new(Instant::now());
                for item in items {
                    collector.push(item);
                }
                black_box(collector.finish())
            },
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
