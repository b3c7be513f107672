//! Slack requests from `events/slack/*.json` (Function URL events), re-signed with the current time.

use aws_lambda_events::event::lambda_function_urls::LambdaFunctionUrlRequest;
use base64::Engine;
use serde_json::Value;

use crate::moto::workspace_root;

/// Loads a fixture's JSON.
pub fn fixture(name: &str) -> Value {
    let path = workspace_root().join("events").join(format!("{name}.json"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("parsing {}: {e}", path.display()))
}

/// The Slack body inside a Function URL fixture (decoding base64 bodies).
pub fn body_of(event: &Value) -> Value {
    let raw = event["body"].as_str().unwrap_or_default();
    let text = if event["isBase64Encoded"].as_bool().unwrap_or(false) {
        String::from_utf8(base64::engine::general_purpose::STANDARD.decode(raw).unwrap_or_default()).unwrap_or_default()
    } else {
        raw.to_string()
    };
    serde_json::from_str(&text).unwrap_or(Value::Null)
}

/// Replaces the body of a Function URL event (keeping its base64-ness) and signs it.
pub fn with_body(mut event: Value, body: &Value, secret: &str, timestamp: i64) -> Value {
    let raw = body.to_string();
    let b64 = event["isBase64Encoded"].as_bool().unwrap_or(false);
    event["body"] =
        Value::String(if b64 { base64::engine::general_purpose::STANDARD.encode(raw.as_bytes()) } else { raw.clone() });
    event["headers"]["x-slack-request-timestamp"] = Value::String(timestamp.to_string());
    event["headers"]["x-slack-signature"] =
        Value::String(shared::slack::signature::sign(secret.as_bytes(), timestamp, raw.as_bytes()));
    event
}

/// Parses a Function URL event into the Lambda type.
pub fn request(event: &Value) -> LambdaFunctionUrlRequest {
    serde_json::from_value(event.clone()).unwrap_or_else(|e| panic!("not a Function URL event: {e}"))
}

/// A fixture signed now, with its event ids, channel and ts rewritten so concurrent tests do
/// not share dedupe keys or Slack threads.
pub fn signed(name: &str, secret: &str, tag: &str, channel: &str) -> (LambdaFunctionUrlRequest, Value) {
    let event = fixture(name);
    let mut body = body_of(&event);
    if let Some(id) = body["event_id"].as_str() {
        body["event_id"] = Value::String(format!("{id}{tag}"));
    }
    if body["event"]["channel"].is_string() {
        body["event"]["channel"] = Value::String(channel.to_string());
    }
    if body["event"]["item"]["channel"].is_string() {
        body["event"]["item"]["channel"] = Value::String(channel.to_string());
    }
    let signed = with_body(event, &body, secret, chrono::Utc::now().timestamp());
    (request(&signed), body)
}

/// The interactive payload of a form-encoded Function URL fixture (`payload=<JSON>`), e.g.
/// `slack/block_actions_feedback`.
pub fn interaction_payload(event: &Value) -> Value {
    let raw = event["body"].as_str().unwrap_or_default();
    let bytes = if event["isBase64Encoded"].as_bool().unwrap_or(false) {
        base64::engine::general_purpose::STANDARD.decode(raw).unwrap_or_default()
    } else {
        raw.as_bytes().to_vec()
    };
    let form = String::from_utf8(bytes).unwrap_or_default();
    let field = form.split('&').find_map(|pair| pair.strip_prefix("payload=")).unwrap_or_default();
    serde_json::from_str(&crate::fake_slack::percent_decode(field)).unwrap_or(Value::Null)
}

/// `payload` form-encoded as Slack sends interactive payloads: `payload=<url-encoded JSON>`
/// (the gateway's own encoder, which its parser is property-tested against).
pub fn form_encode(payload: &Value) -> String {
    slack_gateway::interactive::form_body(payload)
}

/// The block_actions fixture's request with `payload` as its body: form-encoded, base64 (as a
/// Function URL passes form bodies), signed with `secret` at `timestamp`.
pub fn signed_interaction(payload: &Value, secret: &str, timestamp: i64) -> LambdaFunctionUrlRequest {
    let mut event = fixture("slack/block_actions_feedback");
    let raw = form_encode(payload);
    event["body"] = Value::String(base64::engine::general_purpose::STANDARD.encode(raw.as_bytes()));
    event["isBase64Encoded"] = Value::Bool(true);
    event["headers"]["x-slack-request-timestamp"] = Value::String(timestamp.to_string());
    event["headers"]["x-slack-signature"] =
        Value::String(shared::slack::signature::sign(secret.as_bytes(), timestamp, raw.as_bytes()));
    request(&event)
}
