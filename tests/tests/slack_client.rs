//! SlackWebClient against the fake Slack Web API: what it sends, how it retries, what it reports.
//! Tests share one fake and run concurrently, each in its own channel.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use shared::ports::ChatClient;
use shared::retry::Backoff;
use shared::slack::SlackWebClient;
use tests::fake_slack::{FakeSlack, Fault, BOT_TOKEN};

fn fake() -> &'static FakeSlack {
    FakeSlack::shared().expect("the fake Slack starts")
}

/// A client with short backoff so retry tests stay fast.
fn client_with_token(fake: &FakeSlack, token: &str) -> SlackWebClient {
    SlackWebClient::new(&fake.api_base(), token.to_string().into()).expect("client builds").with_backoff(Backoff {
        base: Duration::from_millis(20),
        cap: Duration::from_millis(100),
        max_attempts: 4,
    })
}

fn client(fake: &FakeSlack) -> SlackWebClient {
    client_with_token(fake, BOT_TOKEN)
}

#[tokio::test]
async fn posts_threaded_and_top_level_messages() {
    let fake = fake();
    let slack = client(fake);
    let ts1 = slack.post_message("CPOST", "1700000000.000100", "*hello* &amp; welcome").await.unwrap();
    let ts2 = slack.post_message("CPOST", "1700000000.000100", "second").await.unwrap();
    let top = slack.post_message("CPOST", "", "top level").await.unwrap();
    assert!(!ts1.is_empty() && ts2 > ts1 && top > ts2, "{ts1} {ts2} {top}");

    let calls = fake.calls_for("CPOST");
    assert_eq!(calls.len(), 3);
    let first = &calls[0];
    assert_eq!(first.method, "chat.postMessage");
    assert_eq!(first.http_method, "POST");
    assert!(first.authorized);
    assert_eq!(
        first.params,
        json!({
            "channel": "CPOST",
            "thread_ts": "1700000000.000100",
            "text": "*hello* &amp; welcome",
            "unfurl_links": false
        })
    );
    assert!(first.headers.iter().any(|(k, v)| k == "content-type" && v.starts_with("application/json")));
    assert!(calls[2].params.get("thread_ts").is_none(), "a top-level post has no thread_ts");
    assert_eq!(fake.posted_texts("CPOST"), vec!["*hello* &amp; welcome", "second", "top level"]);
}

#[tokio::test]
async fn updates_a_posted_message() {
    let fake = fake();
    let slack = client(fake);
    let ts = slack.post_message("CUPDATE", "1.000001", "thinking…").await.unwrap();
    slack.update_message("CUPDATE", &ts, "done").await.unwrap();
    let calls = fake.calls_for("CUPDATE");
    assert_eq!(calls[1].method, "chat.update");
    assert_eq!(calls[1].params, json!({"channel": "CUPDATE", "ts": ts, "text": "done"}));

    let err = slack.update_message("CUPDATE", "9.999999", "x").await.unwrap_err();
    assert_eq!((err.method, err.error.as_str()), ("chat.update", "message_not_found"));
}

#[tokio::test]
async fn reactions_treat_already_done_as_success() {
    let fake = fake();
    let slack = client(fake);
    slack.add_reaction("CREACT", "1.000001", ":eyes:").await.unwrap();
    fake.fail_next("reactions.add", Some("CREACT"), Fault::SlackError("already_reacted".into()));
    slack.add_reaction("CREACT", "1.000001", "eyes").await.unwrap();
    fake.fail_next("reactions.remove", Some("CREACT"), Fault::SlackError("no_reaction".into()));
    slack.remove_reaction("CREACT", "1.000001", "eyes").await.unwrap();
    fake.fail_next("reactions.remove", Some("CREACT"), Fault::SlackError("message_not_found".into()));
    let err = slack.remove_reaction("CREACT", "1.000001", "eyes").await.unwrap_err();
    assert_eq!((err.method, err.error.as_str()), ("reactions.remove", "message_not_found"));

    let calls = fake.calls_for("CREACT");
    let methods: Vec<&str> = calls.iter().map(|c| c.method.as_str()).collect();
    assert_eq!(methods, ["reactions.add", "reactions.add", "reactions.remove", "reactions.remove"]);
    assert_eq!(calls[0].params, json!({"channel": "CREACT", "timestamp": "1.000001", "name": "eyes"}));
}

#[tokio::test]
async fn reads_thread_replies() {
    let fake = fake();
    let slack = client(fake);
    fake.seed_thread(
        "CREPLY",
        "1700000000.000100",
        vec![
            json!({"type": "message", "user": "U1", "text": "how many days off?", "ts": "1700000000.000100", "thread_ts": "1700000000.000100"}),
            json!({"type": "message", "user": "UBOT", "bot_id": "BBOT", "text": "25", "ts": "1700000001.000100", "thread_ts": "1700000000.000100"}),
            json!({"type": "message", "user": "U1", "text": "and sick days?", "ts": "1700000002.000100", "thread_ts": "1700000000.000100"}),
        ],
    );
    let messages = slack.thread_replies("CREPLY", "1700000000.000100", 10).await.unwrap();
    assert_eq!(messages.len(), 3);
    assert_eq!(messages[0].user.as_deref(), Some("U1"));
    assert_eq!(messages[0].text, "how many days off?");
    assert!(!messages[0].bot && messages[1].bot && !messages[2].bot);
    assert_eq!(messages[2].ts, "1700000002.000100");

    let call = fake.calls_for("CREPLY").pop().unwrap();
    assert_eq!(call.method, "conversations.replies");
    assert_eq!(call.http_method, "GET");
    assert!(call.authorized && call.raw_body.is_empty());
    assert_eq!(call.params, json!({"channel": "CREPLY", "ts": "1700000000.000100", "limit": "200"}));

    // The bot's own reply shows up in the thread; the limit is honoured.
    slack.post_message("CREPLY", "1700000000.000100", "10").await.unwrap();
    let messages = slack.thread_replies("CREPLY", "1700000000.000100", 100).await.unwrap();
    assert_eq!(messages.len(), 4);
    assert!(messages[3].bot && messages[3].text == "10");
    assert_eq!(slack.thread_replies("CREPLY", "1700000000.000100", 2).await.unwrap().len(), 2);
    assert!(slack.thread_replies("CREPLY", "1.1", 10).await.unwrap().is_empty());
}

#[tokio::test]
async fn waits_out_a_rate_limit_then_succeeds() {
    let fake = fake();
    let slack = client(fake);
    fake.fail_next("chat.postMessage", Some("CRATE"), Fault::RateLimited { retry_after_secs: 1 });
    let started = Instant::now();
    let ts = slack.post_message("CRATE", "1.000001", "hi").await.unwrap();
    let waited = started.elapsed();
    assert!(!ts.is_empty());
    assert!(waited >= Duration::from_secs(1), "retried after {waited:?}, before Retry-After");
    assert!(waited < Duration::from_secs(5), "{waited:?}");
    let calls = fake.calls_for("CRATE");
    assert_eq!(calls.len(), 2, "one rate-limited attempt, one retry");
    assert_eq!(calls[0].fault, Some(Fault::RateLimited { retry_after_secs: 1 }));
    assert_eq!(calls[1].fault, None);
}

#[tokio::test]
async fn a_ratelimited_error_in_the_body_is_retried_too() {
    let fake = fake();
    let slack = client(fake);
    fake.fail_next("reactions.add", Some("CRATEBODY"), Fault::SlackError("ratelimited".into()));
    slack.add_reaction("CRATEBODY", "1.000001", "eyes").await.unwrap();
    assert_eq!(fake.calls_for("CRATEBODY").len(), 2);
}

#[tokio::test]
async fn a_rate_limit_longer_than_the_budget_fails_at_once() {
    let fake = fake();
    let slack = client(fake);
    fake.fail_next("chat.postMessage", Some("CRATELONG"), Fault::RateLimited { retry_after_secs: 120 });
    let started = Instant::now();
    let err = slack.post_message("CRATELONG", "1.000001", "hi").await.unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!((err.method, err.error.as_str()), ("chat.postMessage", "ratelimited"));
    assert_eq!(fake.calls_for("CRATELONG").len(), 1);
}

#[tokio::test]
async fn retries_a_server_error_then_succeeds() {
    let fake = fake();
    let slack = client(fake);
    let ts = slack.post_message("C5XX", "1.000001", "hi").await.unwrap();
    fake.fail_next("chat.update", Some("C5XX"), Fault::ServerError);
    slack.update_message("C5XX", &ts, "edited").await.unwrap();
    let calls = fake.calls_for("C5XX");
    assert_eq!(calls.len(), 3);
    assert_eq!(calls[1].fault, Some(Fault::ServerError));
    assert_eq!(calls[2].params, calls[1].params, "the retry sends the same request");
}

#[tokio::test]
async fn a_post_is_not_repeated_after_a_server_error() {
    // Slack may have posted it before failing: a blind retry could show the answer twice.
    let fake = fake();
    let slack = client(fake);
    fake.fail_next("chat.postMessage", Some("C5XXPOST"), Fault::ServerError);
    let err = slack.post_message("C5XXPOST", "1.000001", "hi").await.unwrap_err();
    assert_eq!((err.method, err.error.as_str()), ("chat.postMessage", "http_500"));
    assert!(!err.is_permanent(), "the caller may try again when it knows the post did not land");
    assert_eq!(fake.calls_for("C5XXPOST").len(), 1);
    // Rate limits say nothing was done: still waited out and retried.
    fake.fail_next("chat.postMessage", Some("C5XXPOST"), Fault::RateLimited { retry_after_secs: 0 });
    slack.post_message("C5XXPOST", "1.000001", "hi").await.unwrap();
    assert_eq!(fake.calls_for("C5XXPOST").len(), 3);
}

#[tokio::test]
async fn a_long_thread_is_read_to_its_newest_messages() {
    let fake = fake();
    let slack = client(fake);
    let root = "1700000000.000000";
    let messages: Vec<_> = (0..450)
        .map(|i| json!({"type": "message", "user": "U1", "text": format!("m{i}"), "ts": format!("1700000000.{i:06}")}))
        .collect();
    fake.seed_thread("CLONG", root, messages);
    let history = slack.thread_replies("CLONG", root, 50).await.unwrap();
    let texts: Vec<&str> = history.iter().map(|m| m.text.as_str()).collect();
    assert_eq!(texts.len(), 50);
    assert_eq!(texts[0], "m0", "the thread's first message (its topic) is kept");
    assert_eq!(texts[1], "m401");
    assert_eq!(texts[49], "m449", "the newest message is there");
    assert_eq!(fake.calls_for("CLONG").len(), 3, "pages of 200");
}

/// The Slack secret as a test controls it; counts its reads.
struct RotatingSecret {
    token: std::sync::Mutex<String>,
    reads: std::sync::atomic::AtomicUsize,
}

#[async_trait::async_trait]
impl shared::ports::SlackSecretSource for RotatingSecret {
    async fn load(&self) -> shared::Result<shared::slack::SlackSecret> {
        self.reads.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let token = self.token.lock().unwrap().clone();
        Ok(shared::slack::SlackSecret { signing_secret: "s".to_string().into(), bot_token: token.into() })
    }
}

#[tokio::test]
async fn a_refused_token_is_re_read_once_and_the_call_retried() {
    // Its own fake: the token is rotated.
    let fake = FakeSlack::start().unwrap();
    let secret =
        Arc::new(RotatingSecret { token: std::sync::Mutex::new(BOT_TOKEN.to_string()), reads: Default::default() });
    let slack = client(&fake).with_token_source(secret.clone(), Duration::from_secs(3600));
    let reads = || secret.reads.load(std::sync::atomic::Ordering::SeqCst);
    slack.post_message("CROT", "1.000001", "before").await.unwrap();
    assert_eq!(reads(), 0, "the token is read at init, not per call");

    // A reinstall: Slack refuses the old token, the secret holds the new one.
    fake.rotate_token("xoxb-rotated");
    *secret.token.lock().unwrap() = "xoxb-rotated".into();
    slack.post_message("CROT", "1.000001", "after").await.unwrap();
    assert_eq!(reads(), 1);
    let calls = fake.calls_for("CROT");
    assert_eq!(calls.len(), 3);
    assert!(!calls[1].authorized && calls[2].authorized, "refused once, then sent with the new token");
    assert_eq!(fake.posted_texts("CROT"), vec!["before", "after"]);

    // Revoked for good: re-read at most once per interval, the error comes back.
    fake.rotate_token("xoxb-elsewhere");
    let err = slack.post_message("CROT", "1.000001", "again").await.unwrap_err();
    assert_eq!(err.error, "invalid_auth");
    assert!(err.is_permanent());
    let err = slack.add_reaction("CROT", "1.000001", "eyes").await.unwrap_err();
    assert_eq!(err.error, "invalid_auth");
    assert_eq!(reads(), 1, "rate limited: no second read within the interval");
    assert_eq!(fake.calls_for("CROT").len(), 5, "no retry without a new token");
}

#[tokio::test]
async fn gives_up_after_repeated_server_errors() {
    let fake = fake();
    let slack = client(fake);
    for _ in 0..5 {
        fake.fail_next("conversations.replies", Some("C5XXALL"), Fault::ServerError);
    }
    let err = slack.thread_replies("C5XXALL", "1.000001", 10).await.unwrap_err();
    assert_eq!((err.method, err.error.as_str()), ("conversations.replies", "http_500"));
    assert_eq!(fake.calls_for("C5XXALL").len(), 4, "max_attempts of the backoff");
}

#[tokio::test]
async fn surfaces_slack_errors_without_retrying() {
    let fake = fake();
    let slack = client(fake);
    fake.fail_next("chat.postMessage", Some("CERR"), Fault::SlackError("channel_not_found".into()));
    let err = slack.post_message("CERR", "1.000001", "hi").await.unwrap_err();
    assert_eq!(err.method, "chat.postMessage");
    assert_eq!(err.error, "channel_not_found");
    assert_eq!(err.to_string(), "slack chat.postMessage: channel_not_found");
    assert_eq!(fake.calls_for("CERR").len(), 1);
}

#[tokio::test]
async fn a_wrong_token_is_refused() {
    let fake = fake();
    let slack = client_with_token(fake, "xoxb-wrong-token");
    let err = slack.post_message("CBADAUTH", "1.000001", "hi").await.unwrap_err();
    assert_eq!(err.error, "invalid_auth");
    let calls = fake.calls_for("CBADAUTH");
    assert_eq!(calls.len(), 1);
    assert!(!calls[0].authorized);
}

#[tokio::test]
async fn the_token_only_travels_in_the_authorization_header() {
    let fake = fake();
    let slack = client(fake);
    slack.post_message("CLEAK", "1.000001", "hi").await.unwrap();
    slack.add_reaction("CLEAK", "1.000001", "eyes").await.unwrap();
    slack.thread_replies("CLEAK", "1.000001", 5).await.unwrap();
    fake.fail_next("chat.postMessage", Some("CLEAK"), Fault::SlackError("not_in_channel".into()));
    let slack_error = slack.post_message("CLEAK", "1.000001", "hi").await.unwrap_err();
    for _ in 0..4 {
        fake.fail_next("chat.update", Some("CLEAK"), Fault::ServerError);
    }
    let server_error = slack.update_message("CLEAK", "1.000001", "x").await.unwrap_err();

    let calls = fake.calls_for("CLEAK");
    assert_eq!(calls.len(), 8);
    for call in fake.calls() {
        assert!(call.authorized || call.params["channel"] == "CBADAUTH", "{call:?}");
        let everything_but_authorization =
            format!("{} {} {} {:?} {}", call.raw_query, call.raw_body, call.params, call.headers, call.method);
        assert!(!everything_but_authorization.contains(BOT_TOKEN), "{everything_but_authorization}");
        assert!(!everything_but_authorization.contains("xoxb-"), "{everything_but_authorization}");
    }
    for err in [slack_error, server_error] {
        let text = format!("{err} {err:?}");
        assert!(!text.contains(BOT_TOKEN), "{text}");
    }
    assert!(!format!("{slack:?}").contains(BOT_TOKEN));
}

#[tokio::test]
async fn sets_suggested_prompts_and_titles_and_publishes_home_views() {
    use shared::ports::SuggestedPrompt;
    let fake = fake();
    let slack = client(fake);
    let prompt = |n: usize| SuggestedPrompt { title: format!("Title {n}"), message: format!("Message {n}") };
    let four: Vec<SuggestedPrompt> = (1..=4).map(prompt).collect();
    slack.set_suggested_prompts("DPROMPTS", "1.000100", "Try asking", &four).await.unwrap();
    // Slack takes at most four: a fifth is refused, and not recorded as set.
    let five: Vec<SuggestedPrompt> = (1..=5).map(prompt).collect();
    let refused = slack.set_suggested_prompts("DPROMPTS", "1.000200", "Try asking", &five).await.unwrap_err();
    assert_eq!(refused.error, "invalid_arguments");
    let set = fake.suggested_prompts("DPROMPTS");
    assert_eq!(set.len(), 1, "{set:?}");
    assert_eq!(set[0].0, "1.000100");
    assert_eq!(set[0].1, "Try asking");
    assert_eq!(set[0].2[3], json!({"title": "Title 4", "message": "Message 4"}));

    slack.set_assistant_title("DPROMPTS", "1.000100", "VPN keeps dropping").await.unwrap();
    assert_eq!(fake.assistant_titles("DPROMPTS"), vec![("1.000100".to_string(), "VPN keeps dropping".to_string())]);

    let blocks = vec![json!({"type": "section", "text": {"type": "mrkdwn", "text": "*Your usage*"}})];
    slack.publish_home("UHOMECLIENT", &blocks).await.unwrap();
    let views = fake.published_views("UHOMECLIENT");
    assert_eq!(views, vec![json!({"type": "home", "blocks": blocks})]);
}
