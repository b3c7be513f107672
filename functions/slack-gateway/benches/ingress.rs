//! Ingress handler time for a valid, signed app_mention, and for a signed feedback button press
//! (a form-encoded interactive payload), with in-process fakes for the dedupe table, the queue
//! and the secret: what the function itself adds to Slack's 3 s budget. Prints p50/p99 over many
//! requests (a bench binary, not a timed test).

// A benchmark, like a test, may panic on broken fixtures.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use aws_lambda_events::event::lambda_function_urls::LambdaFunctionUrlRequest;
use serde_json::{json, Value};
use shared::ports::{Claim, DedupStore, SlackSecretSource, WorkQueue};
use shared::slack::SlackSecret;
use shared::telemetry::Metrics;
use slack_gateway::ingress::Ingress;

const SECRET: &str = "8f742231b10e8888abcd99yyyzzz85a5";

struct MemDedup(Mutex<HashSet<String>>);
#[async_trait]
impl DedupStore for MemDedup {
    async fn claim(&self, key: &str, _owner: &str, _lease: Duration) -> shared::Result<Claim> {
        let new = self.0.lock().map(|mut s| s.insert(key.to_string())).unwrap_or(false);
        Ok(if new { Claim::Acquired } else { Claim::Taken })
    }
    async fn confirm(&self, _key: &str, _owner: &str, _ttl: Duration) -> shared::Result<bool> {
        Ok(true)
    }
    async fn release(&self, key: &str, _owner: &str) -> shared::Result<()> {
        if let Ok(mut s) = self.0.lock() {
            s.remove(key);
        }
        Ok(())
    }
}

struct MemQueue(Mutex<usize>);
#[async_trait]
impl WorkQueue for MemQueue {
    async fn enqueue(&self, _g: &str, _d: &str, body: &str) -> shared::Result<()> {
        if let Ok(mut n) = self.0.lock() {
            *n += body.len();
        }
        Ok(())
    }
}

struct StaticSecret;
#[async_trait]
impl SlackSecretSource for StaticSecret {
    async fn load(&self) -> shared::Result<SlackSecret> {
        serde_json::from_value(json!({"signing_secret": SECRET, "bot_token": "xoxb-bench"}))
            .map_err(|e| shared::Error::Config(e.to_string()))
    }
}

fn request(i: usize) -> LambdaFunctionUrlRequest {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../events/slack/app_mention.json");
    let mut event: Value = serde_json::from_str(&std::fs::read_to_string(path).expect("fixture")).expect("json");
    let mut body: Value = serde_json::from_str(event["body"].as_str().expect("body")).expect("body json");
    body["event_id"] = json!(format!("EvBENCH{i}"));
    body["event"]["ts"] = json!(format!("1713534720.{i:06}"));
    let raw = body.to_string();
    let ts = chrono::Utc::now().timestamp();
    event["body"] = json!(raw);
    event["headers"]["x-slack-request-timestamp"] = json!(ts.to_string());
    event["headers"]["x-slack-signature"] =
        json!(shared::slack::signature::sign(SECRET.as_bytes(), ts, raw.as_bytes()));
    serde_json::from_value(event).expect("function url event")
}

/// The block_actions fixture's press, with a distinct action ts per request, signed now.
fn press(i: usize) -> LambdaFunctionUrlRequest {
    use base64::Engine;
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../events/slack/block_actions_feedback.json");
    let mut event: Value = serde_json::from_str(&std::fs::read_to_string(path).expect("fixture")).expect("json");
    let b64 = base64::engine::general_purpose::STANDARD;
    let raw = b64.decode(event["body"].as_str().expect("body")).expect("base64");
    let mut payload = slack_gateway::interactive::form_payload(&raw).expect("payload");
    payload["actions"][0]["action_ts"] = json!(format!("1713534801.{i:06}"));
    let raw = slack_gateway::interactive::form_body(&payload);
    let ts = chrono::Utc::now().timestamp();
    event["body"] = json!(b64.encode(raw.as_bytes()));
    event["headers"]["x-slack-request-timestamp"] = json!(ts.to_string());
    event["headers"]["x-slack-signature"] =
        json!(shared::slack::signature::sign(SECRET.as_bytes(), ts, raw.as_bytes()));
    serde_json::from_value(event).expect("function url event")
}

/// Runs every request through the ingress; prints p50, p99 and max.
async fn measure(ingress: &Ingress, label: &str, requests: &[LambdaFunctionUrlRequest]) {
    let mut times = Vec::with_capacity(requests.len());
    for req in requests {
        let start = Instant::now();
        let resp = ingress.handle(req).await;
        times.push(start.elapsed());
        assert_eq!((resp.status_code, resp.body.as_deref()), (200, Some("")));
    }
    times.sort();
    let pct = |p: f64| times[((times.len() as f64 * p) as usize).min(times.len() - 1)];
    println!(
        "ingress handler, {} {label}: p50 {:?}, p99 {:?}, max {:?}",
        requests.len(),
        pct(0.50),
        pct(0.99),
        times[times.len() - 1]
    );
}

fn main() {
    let n: usize = std::env::var("BENCH_REQUESTS").ok().and_then(|v| v.parse().ok()).unwrap_or(20_000);
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    rt.block_on(async {
        let (metrics, _buf) = Metrics::capture("BedrockUsage");
        let ingress = Ingress::new(
            Arc::new(StaticSecret),
            Arc::new(MemDedup(Mutex::new(HashSet::new()))),
            Arc::new(MemQueue(Mutex::new(0))),
            metrics,
        )
        .await
        .expect("ingress");
        let requests: Vec<_> = (0..n).map(request).collect();
        measure(&ingress, "signed app_mention requests", &requests).await;
        let presses: Vec<_> = (0..n).map(press).collect();
        measure(&ingress, "signed feedback button presses (form-encoded block_actions)", &presses).await;
    });
}
