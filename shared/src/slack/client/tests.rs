use super::engine::classify;
use super::methods::{reaction_name, thread_messages};
use super::*;

const TOKEN: &str = "xoxb-unit-test-token";

#[test]
fn classifies_web_api_answers() {
    let ok = classify(200, None, br#"{"ok":true,"ts":"1.2"}"#);
    assert_eq!(ok, Attempt::Done(json!({"ok": true, "ts": "1.2"})));
    assert_eq!(
        classify(200, None, br#"{"ok":false,"error":"channel_not_found"}"#),
        Attempt::Permanent("channel_not_found".into())
    );
    assert_eq!(classify(200, None, br#"{"ok":false}"#), Attempt::Permanent("unknown_error".into()));
    assert_eq!(
        classify(200, Some("7"), br#"{"ok":false,"error":"ratelimited"}"#),
        Attempt::RateLimited { wait: Duration::from_secs(7), error: "ratelimited".into() }
    );
    assert_eq!(
        classify(429, Some("3"), b""),
        Attempt::RateLimited { wait: Duration::from_secs(3), error: "ratelimited".into() }
    );
    assert_eq!(
        classify(429, Some("soon"), b""),
        Attempt::RateLimited { wait: DEFAULT_RETRY_AFTER, error: "ratelimited".into() }
    );
    assert_eq!(
        classify(429, None, b""),
        Attempt::RateLimited { wait: DEFAULT_RETRY_AFTER, error: "ratelimited".into() }
    );
    let past = Some("Wed, 21 Oct 2015 07:28:00 GMT");
    assert_eq!(classify(429, past, b""), Attempt::RateLimited { wait: Duration::ZERO, error: "ratelimited".into() });
    assert_eq!(classify(503, None, b"<html>"), Attempt::MaybeSent("http_503".into()));
    assert_eq!(classify(500, None, br#"{"ok":true}"#), Attempt::MaybeSent("http_500".into()));
    assert_eq!(classify(404, None, b"not found"), Attempt::Permanent("http_404".into()));
    assert_eq!(
        classify(400, None, br#"{"ok":false,"error":"invalid_arguments"}"#),
        Attempt::Permanent("invalid_arguments".into())
    );
    assert_eq!(classify(200, None, b"<html>"), Attempt::Permanent("invalid_response".into()));
}

#[test]
fn maps_thread_messages() {
    let answer = json!({
        "ok": true,
        "messages": [
            {"type": "message", "user": "U1", "text": "question", "ts": "1.000001", "thread_ts": "1.000001"},
            {"type": "message", "user": "UBOT", "bot_id": "B1", "text": "answer", "ts": "1.000002"},
            {"type": "message", "subtype": "bot_message", "bot_id": "B2", "ts": "1.000003"},
            {"type": "message", "user": "U2", "bot_id": null, "text": "more", "ts": "1.000004"},
            {"type": "message", "text": "no ts"}
        ]
    });
    let messages = thread_messages(&answer, 10);
    assert_eq!(messages.len(), 4);
    assert_eq!(
        messages[0],
        ThreadMessage { user: Some("U1".into()), bot: false, ts: "1.000001".into(), text: "question".into() }
    );
    assert!(messages[1].bot && messages[2].bot && !messages[3].bot);
    assert_eq!(messages[2].user, None);
    assert_eq!(messages[2].text, "");
    assert_eq!(thread_messages(&answer, 2).len(), 2);
    assert!(thread_messages(&json!({"ok": true}), 10).is_empty());
}

#[test]
fn refusals_of_blocks_are_told_apart_from_other_failures() {
    let error = |e: &str| ChatError { method: "chat.postMessage", error: e.into() };
    for refused in ["invalid_blocks", "invalid_blocks_format", "only_one_table_allowed", "msg_blocks_too_long"] {
        assert!(error(refused).refused_blocks(), "{refused}");
    }
    for other in ["ratelimited", "channel_not_found", "transport", "http_500", "msg_too_long"] {
        assert!(!error(other).refused_blocks(), "{other}");
    }
}

#[test]
fn permanent_errors_are_told_apart_from_transient_ones() {
    let error = |e: &str| ChatError { method: "chat.postMessage", error: e.into() };
    for permanent in [
        "channel_not_found",
        "not_in_channel",
        "is_archived",
        "invalid_auth",
        "token_revoked",
        "account_inactive",
        "msg_too_long",
        "not_authed",
    ] {
        assert!(error(permanent).is_permanent(), "{permanent}");
    }
    for transient in ["ratelimited", "http_500", "http_503", "transport", "fatal_error", "internal_error", "new"] {
        assert!(!error(transient).is_permanent(), "{transient}");
    }
    assert!(error("token_revoked").is_auth_failure() && !error("channel_not_found").is_auth_failure());
    assert!(error("msg_too_long").refused_content() && !error("is_archived").refused_content());
}

#[test]
fn reaction_names_lose_their_colons() {
    assert_eq!(reaction_name(":eyes:"), "eyes");
    assert_eq!(reaction_name("white_check_mark"), "white_check_mark");
}

#[test]
fn new_validates_without_revealing_the_token() {
    let client = SlackWebClient::new("http://127.0.0.1:9/api/", SecretString::from(TOKEN)).unwrap();
    assert_eq!(client.api_base.as_str(), "http://127.0.0.1:9/api/");
    assert_eq!(client.api_base.join("chat.postMessage").unwrap().as_str(), "http://127.0.0.1:9/api/chat.postMessage");
    let debug = format!("{client:?}");
    assert!(!debug.contains(TOKEN) && debug.contains("127.0.0.1"), "{debug}");
    assert!(client.authorization().is_sensitive());

    let e = SlackWebClient::new("not a url", SecretString::from(TOKEN)).unwrap_err().to_string();
    assert!(e.contains("SLACK_API_BASE"), "{e}");
    let e = SlackWebClient::new("ftp://example.com", SecretString::from(TOKEN)).unwrap_err().to_string();
    assert!(e.contains("SLACK_API_BASE"), "{e}");
    let e = SlackWebClient::new("https://slack.com/api", SecretString::from("  ")).unwrap_err().to_string();
    assert!(e.contains("empty"), "{e}");
    let bad = "xoxb-bad\ntoken";
    let e = SlackWebClient::new("https://slack.com/api", SecretString::from(bad)).unwrap_err().to_string();
    assert!(!e.contains("xoxb-bad"), "{e}");
}

#[tokio::test]
async fn connection_refused_is_retried_then_reported_as_transport() {
    // Port 9 (discard) is closed on loopback: every attempt fails to connect.
    let client = SlackWebClient::new("http://127.0.0.1:9/api", SecretString::from(TOKEN))
        .unwrap()
        .with_backoff(Backoff { base: Duration::from_millis(1), cap: Duration::from_millis(2), max_attempts: 3 });
    let err = client.post_message("C1", "1.0", "hi").await.unwrap_err();
    assert_eq!(err.method, "chat.postMessage");
    assert_eq!(err.error, "transport");
    assert!(!err.to_string().contains(TOKEN));
}
