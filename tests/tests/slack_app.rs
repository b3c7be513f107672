//! The Slack-native AI app end to end (ingress, FIFO queue, worker, fake Slack, moto): suggested
//! prompts when an assistant thread starts, the thread's title from its first question, and the
//! App Home tab with the user's own usage.

use aws_sdk_dynamodb::types::AttributeValue;
use serde_json::{json, Value};
use shared::rollups::{day_sk, month_sk, user_pk, user_usage_sk};
use slack_gateway::worker::Budgets;
use tests::fake_slack::TEAM_ID;
use tests::harness::{emulators, Gateway};
use tests::resources::{drain_queue, TEST_SIGNING_SECRET};
use tests::slack_events::{body_of, fixture, request, with_body};

/// A fixture with its body changed by `edit`, signed now.
fn slack_request(
    name: &str,
    edit: impl FnOnce(&mut Value),
) -> aws_lambda_events::event::lambda_function_urls::LambdaFunctionUrlRequest {
    let event = fixture(name);
    let mut body = body_of(&event);
    edit(&mut body);
    request(&with_body(event, &body, TEST_SIGNING_SECRET, chrono::Utc::now().timestamp()))
}

async fn send(gw: &Gateway, req: &aws_lambda_events::event::lambda_function_urls::LambdaFunctionUrlRequest) {
    let resp = gw.ingress.handle(req).await;
    assert_eq!(resp.status_code, 200, "{:?}", resp.body);
}

async fn run_worker(gw: &Gateway) {
    let resp = gw.run_worker().await;
    assert!(resp.batch_item_failures.is_empty(), "worker failures: {:?}", resp.batch_item_failures);
}

/// `assistant_thread_started` for a thread in `channel`.
fn thread_started(
    tag: &str,
    channel: &str,
    thread_ts: &str,
) -> aws_lambda_events::event::lambda_function_urls::LambdaFunctionUrlRequest {
    slack_request("slack/assistant_thread_started", |b| {
        b["event_id"] = json!(format!("EvStart{tag}"));
        b["event"]["assistant_thread"]["channel_id"] = json!(channel);
        b["event"]["assistant_thread"]["thread_ts"] = json!(thread_ts);
    })
}

#[tokio::test]
async fn a_started_assistant_thread_gets_its_suggested_prompts_once_despite_slacks_retry() {
    let gw = Gateway::new("prompts").await;
    let (channel, thread_ts) = ("DPROMPTS1", "1713534890.000100");
    let first = thread_started("p1", channel, thread_ts);
    send(&gw, &first).await;
    let mut retry = first.clone();
    retry.headers.insert("x-slack-retry-num", "1".parse().expect("header"));
    retry.headers.insert("x-slack-retry-reason", "http_timeout".parse().expect("header"));
    send(&gw, &retry).await;
    run_worker(&gw).await;

    let set = emulators().slack.suggested_prompts(channel);
    assert_eq!(set.len(), 1, "the retry is absorbed by the dedupe: {set:?}");
    let (ts, title, prompts) = &set[0];
    assert_eq!((ts.as_str(), title.as_str()), (thread_ts, slack_gateway::assistant::PROMPTS_TITLE));
    let expected = serde_json::to_value(slack_gateway::assistant::default_prompts()).expect("prompts");
    assert_eq!(prompts, &expected);
    assert_eq!(gw.metric_sum("DuplicateEvents", None), 1.0);
    // No answer, no status: only the prompts.
    let methods: Vec<String> = emulators().slack.timed_calls_in(channel).into_iter().map(|(c, _)| c.method).collect();
    assert_eq!(methods, ["assistant.threads.setSuggestedPrompts"]);
}

#[tokio::test]
async fn configured_prompts_are_the_ones_set_and_none_configured_sets_none() {
    let mut gw = Gateway::new("promptcfg").await;
    gw.worker.settings.assistant.prompts =
        slack_gateway::assistant::parse_prompts(r#"[{"title": "Expenses", "message": "How do I file an expense?"}]"#)
            .expect("prompts");
    send(&gw, &thread_started("c1", "DPROMPTS2", "1713534890.000200")).await;
    run_worker(&gw).await;
    let set = emulators().slack.suggested_prompts("DPROMPTS2");
    assert_eq!(set.len(), 1);
    assert_eq!(set[0].2, json!([{"title": "Expenses", "message": "How do I file an expense?"}]));

    gw.worker.settings.assistant.prompts.clear();
    send(&gw, &thread_started("c2", "DPROMPTS3", "1713534890.000300")).await;
    run_worker(&gw).await;
    assert!(emulators().slack.suggested_prompts("DPROMPTS3").is_empty());
}

#[tokio::test]
async fn the_template_default_prompts_are_valid() {
    let template =
        tests::template::Template::load(&tests::moto::workspace_root().join("template.yaml")).expect("template");
    let default = template.parameter_default("SuggestedPrompts").expect("SuggestedPrompts has a default");
    let prompts = slack_gateway::assistant::parse_prompts(&default).expect("the default parses");
    assert_eq!(prompts, slack_gateway::assistant::default_prompts(), "the template and the code agree");
}

/// A user's message in the assistant thread `thread_ts` of `channel`.
fn thread_message(
    tag: &str,
    channel: &str,
    thread_ts: &str,
    ts: &str,
    text: &str,
) -> aws_lambda_events::event::lambda_function_urls::LambdaFunctionUrlRequest {
    slack_request("slack/assistant_thread_message", |b| {
        b["event_id"] = json!(format!("EvMsg{tag}"));
        b["event"]["channel"] = json!(channel);
        b["event"]["thread_ts"] = json!(thread_ts);
        b["event"]["ts"] = json!(ts);
        b["event"]["text"] = json!(text);
    })
}

#[tokio::test]
async fn the_thread_is_titled_from_its_first_question_only() {
    let gw = Gateway::new("titles").await;
    let (channel, thread_ts) = ("DTITLES1", "1713534890.000100");
    send(&gw, &thread_started("t0", channel, thread_ts)).await;
    send(
        &gw,
        &thread_message(
            "t1",
            channel,
            thread_ts,
            "1713534900.000200",
            "  How do I get   access to the staging VPN?\nThanks!",
        ),
    )
    .await;
    run_worker(&gw).await;
    send(&gw, &thread_message("t2", channel, thread_ts, "1713534960.000300", "And what about production?")).await;
    run_worker(&gw).await;

    let titles = emulators().slack.assistant_titles(channel);
    assert_eq!(titles, vec![(thread_ts.to_string(), "How do I get access to the staging VPN?".to_string())]);
    // Both questions were answered, and the status shown as today.
    assert_eq!(emulators().slack.posted_texts(channel).len(), 2);
    assert!(emulators().slack.assistant_statuses(channel).contains(&"is thinking...".to_string()));
    // The prompts came first: the thread's group orders its start before its questions.
    let methods: Vec<String> = emulators().slack.timed_calls_in(channel).into_iter().map(|(c, _)| c.method).collect();
    assert_eq!(methods.first().map(String::as_str), Some("assistant.threads.setSuggestedPrompts"), "{methods:?}");
}

#[tokio::test]
async fn a_channel_thread_is_never_titled() {
    let gw = Gateway::new("notitle").await;
    let req = slack_request("slack/app_mention", |b| {
        b["event_id"] = json!("EvNoTitle1");
        b["event"]["channel"] = json!("CNOTITLE");
    });
    send(&gw, &req).await;
    run_worker(&gw).await;
    assert_eq!(emulators().slack.posted_texts("CNOTITLE").len(), 1);
    assert!(emulators().slack.assistant_titles("CNOTITLE").is_empty());
}

/// Puts a user rollup item, as token-logging would.
async fn put_rollup(gw: &Gateway, user: &str, sk: String, cost_usd: f64, turns: u64, agent: Option<&str>) {
    let mut put = aws_sdk_dynamodb::Client::new(&gw.sdk)
        .put_item()
        .table_name(&gw.resources.usage_table)
        .item("pk", AttributeValue::S(user_pk(TEAM_ID, user)))
        .item("sk", AttributeValue::S(sk))
        .item("cost_usd", AttributeValue::N(cost_usd.to_string()))
        .item("turns", AttributeValue::N(turns.to_string()))
        .item("input_tokens", AttributeValue::N("1000".into()));
    if let Some(agent) = agent {
        put =
            put.item("agent_id", AttributeValue::S(agent.into())).item("model_id", AttributeValue::S("claude".into()));
    }
    put.send().await.expect("put rollup");
}

/// Seeds `user`'s rollups for today: day, month and one agent's usage item.
async fn seed_user(gw: &Gateway, user: &str, day_usd: f64, month_usd: f64, turns: u64, agent: &str) {
    let today = chrono::Utc::now().date_naive();
    put_rollup(gw, user, day_sk(today), day_usd, turns, None).await;
    put_rollup(gw, user, month_sk(today), month_usd, turns, None).await;
    put_rollup(gw, user, user_usage_sk(today, agent, "claude"), day_usd, turns, Some(agent)).await;
}

fn home_opened(tag: &str, user: &str) -> aws_lambda_events::event::lambda_function_urls::LambdaFunctionUrlRequest {
    slack_request("slack/app_home_opened", |b| {
        b["event_id"] = json!(format!("EvHome{tag}"));
        b["event"]["user"] = json!(user);
    })
}

/// Waits, if needed, until the current minute has at least 10 s left: the Home tab's refresh
/// window is the minute, and a test must not straddle two.
async fn well_inside_a_minute() {
    let into = chrono::Utc::now().timestamp_millis().rem_euclid(slack_gateway::work::HOME_REFRESH_MS);
    if into > slack_gateway::work::HOME_REFRESH_MS - 10_000 {
        tokio::time::sleep(std::time::Duration::from_millis((slack_gateway::work::HOME_REFRESH_MS - into) as u64 + 50))
            .await;
    }
}

fn shown(view: &Value) -> String {
    serde_json::to_string(view).unwrap_or_default()
}

#[tokio::test]
async fn the_home_tab_shows_the_users_own_month_against_the_budget_and_nobody_elses() {
    let mut gw = Gateway::new("homeown").await;
    gw.worker.settings.budgets = Budgets { daily_usd: Some(5.0), monthly_usd: Some(10.0) };
    seed_user(&gw, "UHOMEOWN1", 1.25, 4.2, 7, "AGENTHELP1").await;
    seed_user(&gw, "UHOMEOWN2", 55.55, 987.65, 99, "AGENTOTHER").await;
    send(&gw, &home_opened("own1", "UHOMEOWN1")).await;
    run_worker(&gw).await;

    let views = emulators().slack.published_views("UHOMEOWN1");
    assert_eq!(views.len(), 1, "{views:?}");
    assert_eq!(views[0]["type"], "home");
    let text = shown(&views[0]);
    assert!(text.contains("$4.20 of $10.00 (42%) · 7 turns"), "{text}");
    assert!(text.contains("*Today*: $1.25 of $5.00 (25%) · 7 turns"), "{text}");
    assert!(text.contains("`AGENTHELP1`: 7 turns, $1.25"), "{text}");
    assert!(text.contains("Last 14 days"), "{text}");
    for other in ["987.65", "55.55", "AGENTOTHER", "UHOMEOWN2", "99 turns"] {
        assert!(!text.contains(other), "another user's {other} shows: {text}");
    }
    assert!(emulators().slack.published_views("UHOMEOWN2").is_empty(), "only the user who opened the tab");
}

#[tokio::test]
async fn a_user_with_no_usage_gets_a_friendly_empty_view() {
    let gw = Gateway::new("homeempty").await;
    seed_user(&gw, "UHOMEBUSY", 3.0, 30.0, 12, "AGENTBUSY").await;
    send(&gw, &home_opened("empty1", "UHOMENEW1")).await;
    run_worker(&gw).await;
    let views = emulators().slack.published_views("UHOMENEW1");
    assert_eq!(views.len(), 1);
    let text = shown(&views[0]);
    assert!(text.contains("haven't asked me anything this month yet"), "{text}");
    assert!(text.contains("$0.00 (no limit) · 0 turns"), "{text}");
    assert!(!text.contains("AGENTBUSY") && !text.contains("30.00"), "{text}");
}

#[tokio::test]
async fn the_home_tab_is_published_once_a_minute_however_often_it_is_opened() {
    let gw = Gateway::new("homeonce").await;
    well_inside_a_minute().await;
    let first = home_opened("once1", "UHOMEONCE");
    send(&gw, &first).await;
    let mut retry = first.clone();
    retry.headers.insert("x-slack-retry-num", "1".parse().expect("header"));
    send(&gw, &retry).await;
    send(&gw, &home_opened("once2", "UHOMEONCE")).await;
    send(&gw, &home_opened("once3", "UHOMEONCE")).await;
    let queued = drain_queue(&gw.sdk, &gw.resources.work_queue_url).await.expect("drain");
    assert_eq!(queued.len(), 1, "one refresh queued, however often the tab was opened");
    assert_eq!(queued[0].attributes.get("MessageGroupId").map(String::as_str), Some("home:T0001:UHOMEONCE"));
    let mut event = aws_lambda_events::event::sqs::SqsEvent::default();
    event.records = queued;
    assert!(gw.worker.handle_batch(event, None).await.batch_item_failures.is_empty());
    assert_eq!(emulators().slack.published_views("UHOMEONCE").len(), 1);
}

#[tokio::test]
async fn the_messages_tab_is_ignored_and_unknown_shapes_are_drift() {
    let gw = Gateway::new("homedrift").await;
    send(
        &gw,
        &slack_request("slack/app_home_opened", |b| {
            b["event_id"] = json!("EvHomeMsgTab");
            b["event"]["user"] = json!("UHOMEDRIFT");
            b["event"]["tab"] = json!("messages");
        }),
    )
    .await;
    send(
        &gw,
        &slack_request("slack/app_home_opened", |b| {
            b["event_id"] = json!("EvHomeNoUser");
            b["event"].as_object_mut().map(|e| e.remove("user"));
        }),
    )
    .await;
    send(
        &gw,
        &slack_request("slack/assistant_thread_started", |b| {
            b["event_id"] = json!("EvStartNoThread");
            b["event"].as_object_mut().map(|e| e.remove("assistant_thread"));
        }),
    )
    .await;
    assert!(drain_queue(&gw.sdk, &gw.resources.work_queue_url).await.expect("drain").is_empty());
    assert_eq!(gw.metric_sum("SchemaDrift", Some(("EventType", "app_home_opened"))), 1.0);
    assert_eq!(gw.metric_sum("SchemaDrift", Some(("EventType", "assistant_thread_started"))), 1.0);
    assert!(emulators().slack.published_views("UHOMEDRIFT").is_empty());
}

#[test]
fn the_manifest_enables_what_the_code_handles() {
    let path = tests::moto::workspace_root().join("slack-app-manifest.yaml");
    let text = std::fs::read_to_string(&path).expect("manifest");
    let manifest: serde_yaml::Value = serde_yaml::from_str(&text).expect("manifest parses");
    let features = &manifest["features"];
    assert_eq!(features["app_home"]["home_tab_enabled"], serde_yaml::Value::Bool(true));
    let description = features["assistant_view"]["assistant_description"].as_str().unwrap_or_default();
    assert!(!description.is_empty() && description.len() <= 300, "{description}");
    let prompts: Vec<shared::ports::SuggestedPrompt> =
        serde_yaml::from_value(features["assistant_view"]["suggested_prompts"].clone()).expect("prompts");
    assert_eq!(prompts, slack_gateway::assistant::default_prompts(), "the manifest's and the default prompts agree");
    let list = |v: &serde_yaml::Value| -> Vec<String> {
        v.as_sequence().into_iter().flatten().filter_map(|s| s.as_str().map(String::from)).collect()
    };
    let events = list(&manifest["settings"]["event_subscriptions"]["bot_events"]);
    for event in ["assistant_thread_started", "app_home_opened"] {
        assert!(events.iter().any(|e| e == event), "{event} not subscribed: {events:?}");
    }
    assert!(list(&manifest["oauth_config"]["scopes"]["bot"]).iter().any(|s| s == "assistant:write"));
}
