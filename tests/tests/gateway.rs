//! The Slack conversation path end to end: signed requests through slack-ingress into the FIFO
//! queue, slack-worker against the scripted agent, replies in the fake Slack, and what lands in
//! S3 (via Firehose), the usage queue and the conversations table — all in moto.

use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use serde_json::{json, Value};
use tests::harness::{emulators, Gateway, AGENT_ID};
use tests::resources::{drain_queue, read_objects, seed_spend, TEST_SIGNING_SECRET};
use tests::slack_events::{body_of, fixture, request, signed, with_body};

fn status(resp: &aws_lambda_events::event::lambda_function_urls::LambdaFunctionUrlResponse) -> i64 {
    resp.status_code
}

async fn work_messages(gw: &Gateway) -> Vec<aws_lambda_events::event::sqs::SqsMessage> {
    drain_queue(&gw.sdk, &gw.resources.work_queue_url).await.expect("drain work queue")
}

/// Sends `fixture` with a question text into `channel` and runs the worker; returns Slack's posts.
async fn ask(gw: &Gateway, tag: &str, channel: &str, text: &str) -> Vec<Value> {
    let event = fixture("slack/app_mention");
    let mut body = body_of(&event);
    body["event_id"] = json!(format!("Ev{tag}"));
    body["event"]["channel"] = json!(channel);
    body["event"]["text"] = json!(format!("<@UBOT> {text}"));
    let req = request(&with_body(event, &body, TEST_SIGNING_SECRET, chrono::Utc::now().timestamp()));
    assert_eq!(status(&gw.ingress.handle(&req).await), 200);
    let resp = gw.run_worker().await;
    assert!(resp.batch_item_failures.is_empty(), "worker failures: {:?}", resp.batch_item_failures);
    posts(channel)
}

fn posts(channel: &str) -> Vec<Value> {
    emulators()
        .slack
        .calls_for(channel)
        .into_iter()
        .filter(|c| c.method == "chat.postMessage")
        .map(|c| c.params)
        .collect()
}

fn analytics_events(objects: &[(String, String)]) -> Vec<Value> {
    objects
        .iter()
        .flat_map(|(_, text)| {
            text.lines().map(|l| serde_json::from_str::<Value>(l).expect("NDJSON line")).collect::<Vec<_>>()
        })
        .collect()
}

#[tokio::test]
async fn url_verification_answers_the_challenge() {
    let gw = Gateway::new("urlverify").await;
    let (req, body) = signed("slack/url_verification", TEST_SIGNING_SECRET, "", "C0");
    let resp = gw.ingress.handle(&req).await;
    assert_eq!(status(&resp), 200);
    let out: Value = serde_json::from_str(resp.body.as_deref().unwrap_or("")).expect("json");
    assert_eq!(out["challenge"], body["challenge"]);
}

#[tokio::test]
async fn bad_signatures_are_refused_and_counted() {
    let gw = Gateway::new("badsig").await;
    let (good, _) = signed("slack/app_mention", TEST_SIGNING_SECRET, "bad", "CBADSIG");

    let mut missing = good.clone();
    missing.headers.remove("x-slack-signature");
    let mut stale = fixture("slack/app_mention");
    let body = body_of(&stale);
    stale = with_body(stale, &body, TEST_SIGNING_SECRET, chrono::Utc::now().timestamp() - 301);
    let (wrong, _) = signed("slack/app_mention", "not-the-secret", "bad2", "CBADSIG");
    let mut tampered = good.clone();
    tampered.body = tampered.body.map(|b| b.replace("password", "passw0rd"));

    for (name, req) in [("missing", missing), ("stale", request(&stale)), ("wrong", wrong), ("tampered", tampered)] {
        let resp = gw.ingress.handle(&req).await;
        assert_eq!(status(&resp), 401, "{name}");
        let reason = resp.body.unwrap_or_default();
        assert!(!reason.is_empty() && !reason.contains(TEST_SIGNING_SECRET), "{name}: {reason}");
    }
    assert_eq!(gw.metric_sum("SignatureFailures", None), 4.0);
    assert!(work_messages(&gw).await.is_empty(), "nothing may be queued from unverified requests");
}

#[tokio::test]
async fn a_rotated_signing_secret_takes_effect_after_a_failed_verification() {
    let gw = Gateway::new("rotate").await;
    let secrets = aws_sdk_secretsmanager::Client::new(&gw.sdk);
    secrets
        .put_secret_value()
        .secret_id(&gw.resources.secret_arn)
        .secret_string(json!({"signing_secret": "rotated-secret", "bot_token": "xoxb-test-token"}).to_string())
        .send()
        .await
        .expect("rotate");
    let (req, _) = signed("slack/app_mention", "rotated-secret", "rot", "CROTATE");
    // Within a minute of the last read the secret is not re-read: still refused.
    assert_eq!(status(&gw.ingress.handle(&req).await), 401);
    let ingress = gw.ingress.with_refresh_interval(Duration::ZERO);
    assert_eq!(status(&ingress.handle(&req).await), 200);
}

#[tokio::test]
async fn events_are_queued_once_per_message_despite_retries_and_double_delivery() {
    let gw = Gateway::new("dedupe").await;
    let (req, body) = signed("slack/app_mention", TEST_SIGNING_SECRET, "dd1", "CDEDUPE");
    assert_eq!(status(&gw.ingress.handle(&req).await), 200);

    // Slack's retry of the same event.
    let mut retry = req.clone();
    retry.headers.insert("x-slack-retry-num", "1".parse().expect("header"));
    retry.headers.insert("x-slack-retry-reason", "http_timeout".parse().expect("header"));
    assert_eq!(status(&gw.ingress.handle(&retry).await), 200);

    // The same message delivered again under another event id (message.channels + app_mention).
    let event = fixture("slack/app_mention");
    let mut other = body.clone();
    other["event_id"] = json!("EvOTHERID-dd1");
    let again = request(&with_body(event, &other, TEST_SIGNING_SECRET, chrono::Utc::now().timestamp()));
    assert_eq!(status(&gw.ingress.handle(&again).await), 200);

    let queued = work_messages(&gw).await;
    assert_eq!(queued.len(), 1, "one work item per message");
    assert_eq!(queued[0].attributes.get("MessageGroupId").map(String::as_str), Some("T0001:CDEDUPE:1713534720.001234"));
    let item: Value = serde_json::from_str(queued[0].body.as_deref().unwrap_or("")).expect("work item");
    assert_eq!(item["kind"], "message");
    assert_eq!(item["event_id"], body["event_id"]);
    assert_eq!(gw.metric_sum("DuplicateEvents", None), 2.0);
}

#[tokio::test]
async fn bots_edits_and_unknown_events_are_acknowledged_without_work() {
    let gw = Gateway::new("ignored").await;
    for name in ["slack/bot_message", "slack/message_changed", "slack/unknown_event"] {
        let (req, _) = signed(name, TEST_SIGNING_SECRET, "ign", "CIGNORED");
        assert_eq!(status(&gw.ingress.handle(&req).await), 200, "{name}");
    }
    assert!(work_messages(&gw).await.is_empty());
    assert_eq!(gw.metric_sum("SchemaDrift", Some(("EventType", "workflow_step_execute"))), 1.0);
    assert_eq!(gw.metric_sum("SchemaDrift", None), 1.0, "bot messages and edits are expected, not drift");
}

#[tokio::test]
async fn dm_with_base64_body_and_reactions_are_queued() {
    let gw = Gateway::new("dmreact").await;
    let (dm, _) = signed("slack/dm", TEST_SIGNING_SECRET, "dm", "DDMREACT");
    assert!(dm.is_base64_encoded);
    assert_eq!(status(&gw.ingress.handle(&dm).await), 200);
    let (reaction, _) = signed("slack/reaction_added", TEST_SIGNING_SECRET, "re", "CDMREACT");
    assert_eq!(status(&gw.ingress.handle(&reaction).await), 200);
    let kinds: Vec<String> = work_messages(&gw)
        .await
        .iter()
        .map(|m| {
            serde_json::from_str::<Value>(m.body.as_deref().unwrap_or("")).expect("json")["kind"]
                .as_str()
                .unwrap_or("")
                .to_string()
        })
        .collect();
    assert_eq!(kinds.len(), 2);
    assert!(kinds.contains(&"message".to_string()) && kinds.contains(&"reaction".to_string()), "{kinds:?}");
}

#[tokio::test]
async fn a_knowledge_base_answer_reaches_the_thread_and_every_record_is_written() {
    let gw = Gateway::new("kbturn").await;
    let channel = "CKBTURN";
    let (req, body) = signed("slack/app_mention", TEST_SIGNING_SECRET, "kb", channel);
    assert_eq!(status(&gw.ingress.handle(&req).await), 200);
    let resp = gw.run_worker().await;
    assert!(resp.batch_item_failures.is_empty());

    // Slack: one answer in the thread with the sources; the status reaction added then removed.
    let calls = emulators().slack.calls_for(channel);
    let posts: Vec<&Value> = calls.iter().filter(|c| c.method == "chat.postMessage").map(|c| &c.params).collect();
    assert_eq!(posts.len(), 1, "{calls:?}");
    assert_eq!(posts[0]["thread_ts"], "1713534720.001234");
    let text = posts[0]["text"].as_str().unwrap_or_default();
    assert!(text.contains("*Sources*"), "{text}");
    let methods: Vec<&str> = calls.iter().map(|c| c.method.as_str()).collect();
    let add = methods.iter().position(|m| *m == "reactions.add").expect("status reaction added");
    let remove = methods.iter().position(|m| *m == "reactions.remove").expect("status reaction removed");
    assert!(add < remove);

    // The agent was called with trace enabled and a session id from the thread.
    let invoke = emulators()
        .agent
        .requests()
        .into_iter()
        .find(|r| r.session_id == format!("T0001-{channel}-1713534720.001234"))
        .expect("agent invoked for this thread");
    assert!(invoke.enable_trace);
    assert!(invoke.input_text.contains("password rotation") && !invoke.input_text.contains("<@UBOT>"));

    // Analytics: one NDJSON event in S3, through Firehose.
    let objects = read_objects(&gw.sdk, &gw.resources.bucket, "events/").await.expect("s3");
    let events = analytics_events(&objects);
    assert_eq!(events.len(), 1);
    let ev = &events[0];
    assert_eq!(ev["event_id"], body["event_id"]);
    assert_eq!(ev["outcome"], "answered");
    assert_eq!(ev["agent_id"], AGENT_ID);
    assert_eq!(ev["thread_id"], "1713534720.001234");
    assert!(!ev["knowledge_bases"].as_array().expect("kbs").is_empty());
    assert!(!ev["search_queries"].as_array().expect("queries").is_empty());
    assert_eq!(ev["sources"].as_array().expect("sources").len(), 3, "{ev}");
    assert!(ev["input_tokens"].as_u64().unwrap_or(0) > 0);
    assert!(ev.get("message_text").is_none(), "message text is not stored by default");

    // Usage: one record with the per-call usage.
    let usage = drain_queue(&gw.sdk, &gw.resources.usage_queue_url).await.expect("usage");
    assert_eq!(usage.len(), 1);
    let rec: Value = serde_json::from_str(usage[0].body.as_deref().unwrap_or("")).expect("usage json");
    assert_eq!(rec["user_id"], "U024BE7LH");
    // The analytics cost is the price table's price of exactly the recorded calls.
    let calls: Vec<shared::domain::ModelCall> = serde_json::from_value(rec["calls"].clone()).expect("calls");
    let (expected, _, unpriced) = shared::pricing::PriceTable::embedded().turn_cost(&calls);
    let cost = ev["estimated_cost_usd"].as_f64().expect("the turn's models are priced");
    assert!(cost > 0.0 && Some(cost) == expected && unpriced == 0, "{cost} vs {expected:?}");
    let calls_in = rec["calls"].as_array().expect("calls");
    let total_in: u64 = calls_in.iter().map(|c| c["input_tokens"].as_u64().unwrap_or(0)).sum();
    assert_eq!(total_in, ev["input_tokens"].as_u64().unwrap_or(0));

    // Conversation record: answered, with the reply ts.
    let item = aws_sdk_dynamodb::Client::new(&gw.sdk)
        .get_item()
        .table_name(&gw.resources.conversations_table)
        .key("pk", AttributeValue::S(format!("THREAD#T0001#{channel}#1713534720.001234")))
        .key("sk", AttributeValue::S("TURN#1713534720.001234".into()))
        .send()
        .await
        .expect("get")
        .item
        .expect("turn record");
    assert_eq!(item["status"].as_s().ok().map(String::as_str), Some("answered"));
    assert!(item.contains_key("reply_ts"));
    assert!(
        !item.contains_key("pending_analytics") && !item.contains_key("pending_usage"),
        "delivered records are cleared"
    );

    // EMF: latency per agent; token metrics are token-logging's alone (priced, counted once);
    // never a user id dimension.
    assert!(gw.metric_sum("APILatency", Some(("AgentId", AGENT_ID))) > 0.0);
    assert_eq!(gw.metric_sum("InputTokens", None), 0.0, "the worker does not emit token metrics");
    for doc in gw.metrics() {
        let dims = doc["_aws"]["CloudWatchMetrics"][0]["Dimensions"][0].to_string();
        assert!(!dims.contains("User"), "user ids are never dimensions: {dims}");
    }
}

#[tokio::test]
async fn a_redelivered_message_is_answered_once() {
    let gw = Gateway::new("redeliver").await;
    let channel = "CREDELIVER";
    let (req, _) = signed("slack/app_mention", TEST_SIGNING_SECRET, "rd", channel);
    assert_eq!(status(&gw.ingress.handle(&req).await), 200);
    let records = work_messages(&gw).await;
    let mut event = aws_lambda_events::event::sqs::SqsEvent::default();
    event.records = records.clone();
    assert!(gw.worker.handle_batch(event.clone(), None).await.batch_item_failures.is_empty());
    assert!(gw.worker.handle_batch(event, None).await.batch_item_failures.is_empty());
    assert_eq!(posts(channel).len(), 1, "one answer, not two");
    assert_eq!(gw.metric_sum("DuplicateEvents", None), 1.0);
}

#[tokio::test]
async fn throttling_is_retried_and_answered_once() {
    let gw = Gateway::new("throttle").await;
    let posts = ask(&gw, "busy1", "CTHROTTLE", "are you busy right now?").await;
    assert_eq!(posts.len(), 1);
    assert_ne!(posts[0]["text"], slack_gateway::worker::APOLOGY);
    assert_eq!(gw.metric_sum("APIErrors", Some(("ErrorCode", "ThrottlingException"))), 1.0);
}

#[tokio::test]
async fn a_cut_stream_gets_one_apology_and_its_tokens_are_still_recorded() {
    let gw = Gateway::new("cutstream").await;
    let channel = "CCUTSTREAM";
    let posts = ask(&gw, "cut1", channel, "this flaky question").await;
    assert_eq!(posts.len(), 1);
    assert_eq!(posts[0]["text"], slack_gateway::worker::APOLOGY);
    let events = analytics_events(&read_objects(&gw.sdk, &gw.resources.bucket, "events/").await.expect("s3"));
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["outcome"], "failed");
    assert_eq!(events[0]["error_code"], "StreamInterrupted");
    let usage = drain_queue(&gw.sdk, &gw.resources.usage_queue_url).await.expect("usage");
    assert_eq!(usage.len(), 1, "tokens spent by the broken attempts are billed");
}

#[tokio::test]
async fn guardrail_and_failure_traces_set_the_outcome() {
    let gw = Gateway::new("outcomes").await;
    let guard = ask(&gw, "gr1", "CGUARDRAIL", "trip the guardrail please").await;
    assert_eq!(guard.len(), 1);
    let failed = ask(&gw, "ft1", "CFAILTRACE", "a failing request").await;
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0]["text"], slack_gateway::worker::APOLOGY);
    let events = analytics_events(&read_objects(&gw.sdk, &gw.resources.bucket, "events/").await.expect("s3"));
    let outcome_of = |ch: &str| events.iter().find(|e| e["channel_id"] == ch).map(|e| e["outcome"].clone());
    assert_eq!(outcome_of("CGUARDRAIL"), Some(json!("guardrail_blocked")));
    assert_eq!(outcome_of("CFAILTRACE"), Some(json!("failed")));
    let guard_ev = events.iter().find(|e| e["channel_id"] == "CGUARDRAIL").expect("guardrail event");
    assert_eq!(guard_ev["guardrail_action"], "INTERVENED");
}

#[tokio::test]
async fn a_failed_thread_holds_back_its_later_turns_but_not_other_threads() {
    let gw = Gateway::new("fifo").await;
    let bad = "CFIFOBAD";
    let good = "CFIFOGOOD";
    // Two turns in one thread of `bad`, one in `good`.
    for (tag, channel, ts) in
        [("f1", bad, "1713534720.001234"), ("f2", bad, "1713534721.000001"), ("f3", good, "1713534720.001234")]
    {
        let event = fixture("slack/app_mention");
        let mut body = body_of(&event);
        body["event_id"] = json!(format!("Ev{tag}"));
        body["event"]["channel"] = json!(channel);
        body["event"]["ts"] = json!(ts);
        body["event"]["thread_ts"] = json!("1713534720.001234");
        let req = request(&with_body(event, &body, TEST_SIGNING_SECRET, chrono::Utc::now().timestamp()));
        assert_eq!(status(&gw.ingress.handle(&req).await), 200);
    }
    // A transient failure (a permanent one ends the turn instead of returning it).
    emulators().slack.fail_next("chat.postMessage", Some(bad), tests::fake_slack::Fault::ServerError);
    let records = work_messages(&gw).await;
    assert_eq!(records.len(), 3);
    let mut bad_ids: Vec<String> = records
        .iter()
        .filter(|r| r.body.as_deref().unwrap_or("").contains(bad))
        .filter_map(|r| r.message_id.clone())
        .collect();
    assert_eq!(bad_ids.len(), 2);
    let mut event = aws_lambda_events::event::sqs::SqsEvent::default();
    event.records = records;
    let resp = gw.worker.handle_batch(event, None).await;
    let mut failed: Vec<String> = resp.batch_item_failures.iter().map(|f| f.item_identifier.clone()).collect();
    failed.sort();
    bad_ids.sort();
    assert_eq!(failed, bad_ids, "the failed turn and the one after it in its thread");
    // The fake records the refused post; the second turn of that thread never ran.
    assert_eq!(posts(bad).len(), 1, "only the refused answer of the first turn");
    let bad_session = format!("T0001-{bad}-1713534720.001234");
    assert_eq!(emulators().agent.requests().iter().filter(|r| r.session_id == bad_session).count(), 1);
    assert_eq!(posts(good).len(), 1, "the other thread is answered");
}

#[tokio::test]
async fn an_expired_session_gets_the_thread_history_as_context() {
    let mut gw = Gateway::new("history").await;
    gw.worker.settings.session_idle_ttl = Duration::ZERO;
    let channel = "CHISTORY";
    emulators().slack.seed_thread(
        channel,
        "1713534720.001234",
        vec![
            json!({"type": "message", "user": "U024BE7LH", "text": "What is our password rotation policy?", "ts": "1713534720.001234"}),
            json!({"type": "message", "bot_id": "BBOT", "text": "Every 90 days.", "ts": "1713534725.000500"}),
            json!({"type": "message", "user": "U024BE7LH", "text": "And how often should service accounts rotate?", "ts": "1713534900.000200"}),
        ],
    );
    let (req, _) = signed("slack/app_mention", TEST_SIGNING_SECRET, "h1", channel);
    assert_eq!(status(&gw.ingress.handle(&req).await), 200);
    gw.run_worker().await;
    let (reply, _) = signed("slack/thread_reply", TEST_SIGNING_SECRET, "h2", channel);
    assert_eq!(status(&gw.ingress.handle(&reply).await), 200);
    assert!(gw.run_worker().await.batch_item_failures.is_empty());
    let inputs: Vec<String> = emulators()
        .agent
        .requests()
        .into_iter()
        .filter(|r| r.session_id == format!("T0001-{channel}-1713534720.001234"))
        .map(|r| r.input_text)
        .collect();
    assert_eq!(inputs.len(), 2, "{inputs:?}");
    assert!(inputs[1].contains("Every 90 days.") && inputs[1].contains("service accounts"), "{}", inputs[1]);
    assert!(emulators().slack.calls_for(channel).iter().any(|c| c.method == "conversations.replies"));
}

#[tokio::test]
async fn analytics_failures_never_block_the_reply_and_are_kept() {
    let mut gw = Gateway::new("sinkdown").await;
    gw.worker.analytics = std::sync::Arc::new(shared::aws::firehose::FirehoseAnalytics::new(
        aws_sdk_firehose::Client::new(&gw.sdk),
        "no-such-stream",
    ));
    let channel = "CSINKDOWN";
    let posts = ask(&gw, "sd1", channel, "plain question").await;
    assert_eq!(posts.len(), 1);
    assert_ne!(posts[0]["text"], slack_gateway::worker::APOLOGY);
    assert_eq!(gw.metric_sum("LoggingErrors", Some(("Sink", "analytics"))), 1.0);
    let item = aws_sdk_dynamodb::Client::new(&gw.sdk)
        .get_item()
        .table_name(&gw.resources.conversations_table)
        .key("pk", AttributeValue::S(format!("THREAD#T0001#{channel}#1713534720.001234")))
        .key("sk", AttributeValue::S("TURN#1713534720.001234".into()))
        .send()
        .await
        .expect("get")
        .item
        .expect("turn");
    let kept: Value =
        serde_json::from_str(item["pending_analytics"].as_s().expect("pending analytics kept")).expect("json");
    assert_eq!(kept["outcome"], "answered");
    assert!(!item.contains_key("pending_usage"), "usage was delivered");
}

async fn budgeted(prefix: &str, daily: f64) -> Gateway {
    let mut gw = Gateway::new(prefix).await;
    gw.worker.settings.budgets = slack_gateway::worker::Budgets { daily_usd: Some(daily), monthly_usd: None };
    gw
}

fn today_sk(days_ago: i64) -> String {
    shared::rollups::day_sk((chrono::Utc::now() - chrono::TimeDelta::days(days_ago)).date_naive())
}

#[tokio::test]
async fn a_user_near_the_budget_gets_a_notice_with_the_answer() {
    let gw = budgeted("budgetsoft", 1.0).await;
    seed_spend(&gw.sdk, &gw.resources.usage_table, "T0001", "U024BE7LH", &today_sk(0), 0.85).await.expect("seed");
    let posts = ask(&gw, "bs1", "CBUDGETSOFT", "plain question").await;
    assert_eq!(posts.len(), 1);
    let text = posts[0]["text"].as_str().unwrap_or_default();
    assert!(text.contains("85% of your daily budget"), "{text}");
    assert_ne!(text, slack_gateway::worker::APOLOGY);
}

#[tokio::test]
async fn a_user_over_the_budget_is_refused_without_calling_the_agent() {
    let gw = budgeted("budgethard", 1.0).await;
    let channel = "CBUDGETHARD";
    seed_spend(&gw.sdk, &gw.resources.usage_table, "T0001", "U024BE7LH", &today_sk(0), 1.2).await.expect("seed");
    let posts = ask(&gw, "bh1", channel, "plain question").await;
    assert_eq!(posts.len(), 1);
    let text = posts[0]["text"].as_str().unwrap_or_default();
    assert!(text.contains("reached your daily budget") && text.contains("resets"), "{text}");
    let session = format!("T0001-{channel}-1713534720.001234");
    assert_eq!(emulators().agent.requests_for(&session).len(), 0, "no Bedrock call for a refused turn");
    let events = analytics_events(&read_objects(&gw.sdk, &gw.resources.bucket, "events/").await.expect("s3"));
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["outcome"], "refused_budget");
    assert_eq!(events[0]["input_tokens"], 0);
    assert!(
        drain_queue(&gw.sdk, &gw.resources.usage_queue_url).await.expect("usage").is_empty(),
        "no tokens, no usage"
    );
}

#[tokio::test]
async fn yesterdays_spend_does_not_count_against_today() {
    let gw = budgeted("budgetreset", 1.0).await;
    let channel = "CBUDGETRESET";
    seed_spend(&gw.sdk, &gw.resources.usage_table, "T0001", "U024BE7LH", &today_sk(1), 5.0).await.expect("seed");
    let posts = ask(&gw, "br1", channel, "plain question").await;
    assert_eq!(posts.len(), 1);
    let text = posts[0]["text"].as_str().unwrap_or_default();
    assert!(!text.contains("budget"), "{text}");
    assert_eq!(emulators().agent.requests_for(&format!("T0001-{channel}-1713534720.001234")).len(), 1);
}

/// Asks as `user`, with the event's `user_team` when given (a Slack Connect user's message).
async fn ask_as(gw: &Gateway, tag: &str, channel: &str, user: &str, user_team: Option<&str>) -> Vec<Value> {
    let event = fixture("slack/app_mention");
    let mut body = body_of(&event);
    body["event_id"] = json!(format!("Ev{tag}"));
    body["event"]["channel"] = json!(channel);
    body["event"]["user"] = json!(user);
    if let Some(team) = user_team {
        body["event"]["user_team"] = json!(team);
        body["event"]["source_team"] = json!(team);
    }
    body["event"]["text"] = json!("<@UBOT> plain question");
    let req = request(&with_body(event, &body, TEST_SIGNING_SECRET, chrono::Utc::now().timestamp()));
    assert_eq!(status(&gw.ingress.handle(&req).await), 200);
    let resp = gw.run_worker().await;
    assert!(resp.batch_item_failures.is_empty(), "worker failures: {:?}", resp.batch_item_failures);
    posts(channel)
}

/// Issue 13, defect 4: guests and Slack Connect users get a short refusal, the agent is not
/// invoked and no tokens are used, unless ALLOW_GUESTS / ALLOW_EXTERNAL_USERS let them in.
#[tokio::test]
async fn guests_and_slack_connect_users_are_refused_unless_allowed() {
    emulators().slack.set_user("UGUESTAC", json!({"is_restricted": true}));
    emulators().slack.set_user("USINGLEAC", json!({"is_ultra_restricted": true}));
    let mut gw = Gateway::new("access").await;
    let session = |channel: &str| format!("T0001-{channel}-1713534720.001234");
    for (tag, channel, user, team) in [
        ("ac1", "CACCESSG", "UGUESTAC", None),
        ("ac2", "CACCESSS", "USINGLEAC", None),
        ("ac3", "CACCESSX", "UEXTAC", Some("T0THEM")),
    ] {
        let posts = ask_as(&gw, tag, channel, user, team).await;
        assert_eq!(posts.len(), 1, "{user}");
        assert_eq!(posts[0]["text"], slack_gateway::access::REFUSAL, "{user}");
        assert_eq!(emulators().agent.requests_for(&session(channel)).len(), 0, "{user}: the agent was invoked");
    }
    let lookups: Vec<_> = emulators().slack.calls().into_iter().filter(|c| c.method == "users.info").collect();
    assert!(!lookups.iter().any(|c| c.param("user") == "UEXTAC"), "the payload alone says external");
    let events = analytics_events(&read_objects(&gw.sdk, &gw.resources.bucket, "events/").await.expect("s3"));
    assert_eq!(events.len(), 3);
    assert!(events.iter().all(|e| e["outcome"] == "refused_access" && e["input_tokens"] == 0), "{events:?}");
    assert!(drain_queue(&gw.sdk, &gw.resources.usage_queue_url).await.expect("usage").is_empty());

    // Allowed by the parameters: answered.
    gw.worker.settings.access = slack_gateway::access::AccessPolicy { allow_guests: true, allow_external_users: true };
    for (tag, channel, user, team) in
        [("ac4", "CACCESSG2", "UGUESTAC", None), ("ac5", "CACCESSX2", "UEXTAC", Some("T0THEM"))]
    {
        let posts = ask_as(&gw, tag, channel, user, team).await;
        assert_eq!(posts.len(), 1, "{user}");
        assert_ne!(posts[0]["text"], slack_gateway::access::REFUSAL, "{user}");
        assert_eq!(emulators().agent.requests_for(&session(channel)).len(), 1, "{user}");
    }
}
