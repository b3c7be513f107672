//! The Slack conversation path on every agent backend (issue 15): Classic through InvokeAgent,
//! an AgentCore harness through InvokeHarness and an AgentCore Runtime agent through
//! InvokeAgentRuntime, each answered by the scripted agent (events/agent, events/harness,
//! events/runtime, one endpoint) over the real SDKs, with moto and the fake Slack. Every
//! scenario runs once per backend (`<scenario>::classic`, `::harness`, `::runtime`) and checks
//! what the user saw, what the agent was sent, and the usage record and analytics event with the
//! scripts' own token counts.

use serde_json::{json, Value};
use shared::domain::{AgentBackend, ThreadRef, UsageRecord, AGENTCORE_SESSION_MIN};
use slack_gateway::worker::APOLOGY;
use tests::harness::{emulators, Gateway, AGENTCORE_MODEL_ID, AGENTCORE_QUALIFIER, HARNESS_ARN, RUNTIME_ARN};
use tests::resources::{drain_queue, read_objects, TEST_SIGNING_SECRET};
use tests::slack_events::{body_of, fixture, request, with_body};

const TEAM: &str = "T0001";
const USER: &str = "U024BE7LH";
const THREAD_TS: &str = "1713534720.001234";
/// The models of the Classic scripts' calls.
const CLASSIC_HAIKU: &str = "anthropic.claude-3-haiku-20240307-v1:0";
const CLASSIC_SONNET: &str = "us.anthropic.claude-3-5-sonnet-20241022-v2:0";
/// The model the runtime scripts name in some usage events.
const RUNTIME_HAIKU: &str = "us.anthropic.claude-3-5-haiku-20241022-v1:0";
/// How often the worker asks in all (WorkerSettings' agent backoff).
const MAX_ATTEMPTS: usize = 4;

/// One model call as the scripts spell it: model, input, output, cache read, cache write.
type Call = (&'static str, u64, u64, u64, u64);

fn calls_of(record: &UsageRecord) -> Vec<(String, u64, u64, u64, u64)> {
    record
        .calls
        .iter()
        .map(|c| (c.model_id.clone(), c.input_tokens, c.output_tokens, c.cache_read_tokens, c.cache_write_tokens))
        .collect()
}

fn expected(calls: &[Call]) -> Vec<(String, u64, u64, u64, u64)> {
    calls.iter().map(|&(m, i, o, r, w)| (m.to_owned(), i, o, r, w)).collect()
}

/// `calls` once per attempt.
fn repeated(calls: &[Call], attempts: usize) -> Vec<Call> {
    calls.iter().copied().cycle().take(calls.len() * attempts).collect()
}

/// What the worker sent the agent, whichever backend.
#[derive(Debug)]
struct Sent {
    session_id: String,
    user_id: Option<String>,
    prompt: String,
}

fn thread(channel: &str) -> ThreadRef {
    ThreadRef { team_id: TEAM.into(), channel_id: channel.into(), thread_ts: THREAD_TS.into() }
}

/// The session id `backend` uses for the thread.
fn session(backend: AgentBackend, channel: &str) -> String {
    match backend {
        AgentBackend::Classic => thread(channel).session_id(),
        _ => thread(channel).agentcore_session_id(),
    }
}

/// The requests the agent of `backend` received for the thread of `channel`, checking the
/// AgentCore ones named the configured target.
fn sent(backend: AgentBackend, channel: &str) -> Vec<Sent> {
    let session_id = session(backend, channel);
    let agent = &emulators().agent;
    // Only the configured backend was asked about this thread.
    let classic_asked = agent.requests().iter().any(|r| r.session_id.contains(channel));
    assert_eq!(classic_asked, backend == AgentBackend::Classic, "InvokeAgent for {channel}");
    let others: Vec<_> = agent
        .agentcore_requests()
        .into_iter()
        .filter(|r| r.session_id.contains(channel) && r.backend != backend)
        .collect();
    assert!(others.is_empty(), "another AgentCore operation for {channel}: {others:?}");
    if backend == AgentBackend::Classic {
        let requests = agent.requests_for(&session_id);
        return requests
            .into_iter()
            .map(|r| Sent { session_id: r.session_id, user_id: None, prompt: r.input_text })
            .collect();
    }
    let arn = if backend == AgentBackend::Harness { HARNESS_ARN } else { RUNTIME_ARN };
    let requests = agent.agentcore_requests_for(&session_id);
    requests
        .into_iter()
        .map(|r| {
            assert_eq!((r.arn.as_str(), r.qualifier.as_deref()), (arn, Some(AGENTCORE_QUALIFIER)), "{r:?}");
            if backend == AgentBackend::Harness {
                // One user message with the prompt as its one text block.
                let message = &r.body["messages"];
                assert_eq!((message.as_array().map(Vec::len), message[0]["role"].as_str()), (Some(1), Some("user")));
                assert_eq!(message[0]["content"][0]["text"].as_str(), Some(r.prompt.as_str()), "{r:?}");
            } else {
                assert_eq!(r.content_type.as_deref(), Some("application/json"));
                assert!(r.accept.as_deref().unwrap_or_default().contains("text/event-stream"), "{r:?}");
                assert_eq!(
                    (r.body["prompt"].as_str(), r.body["session_id"].as_str(), r.body["user_id"].as_str()),
                    (Some(r.prompt.as_str()), Some(&*session_id), Some(USER))
                );
            }
            Sent { session_id: r.session_id, user_id: r.user_id, prompt: r.prompt }
        })
        .collect()
}

/// A user's mention of the bot in `channel` (a message `ts` in the thread) through the ingress
/// and the worker; returns the bot's posts in the channel so far.
async fn mention(gw: &Gateway, event_id: &str, channel: &str, ts: &str, text: &str) -> Vec<Value> {
    let event = fixture("slack/app_mention");
    let mut body = body_of(&event);
    body["event_id"] = json!(event_id);
    body["event"]["channel"] = json!(channel);
    body["event"]["ts"] = json!(ts);
    body["event"]["thread_ts"] = json!(THREAD_TS);
    body["event"]["text"] = json!(format!("<@UBOT> {text}"));
    let req = request(&with_body(event, &body, TEST_SIGNING_SECRET, chrono::Utc::now().timestamp()));
    assert_eq!(gw.ingress.handle(&req).await.status_code, 200);
    let resp = gw.run_worker().await;
    assert!(resp.batch_item_failures.is_empty(), "worker failures: {:?}", resp.batch_item_failures);
    emulators()
        .slack
        .calls_for(channel)
        .into_iter()
        .filter(|c| c.method == "chat.postMessage")
        .map(|c| c.params)
        .collect()
}

/// One question starting the thread of `channel`.
async fn ask(gw: &Gateway, channel: &str, text: &str) -> Vec<Value> {
    mention(gw, &format!("Ev{channel}"), channel, THREAD_TS, text).await
}

/// A channel name unique to the scenario and backend (so are its thread and agent session).
fn channel(scenario: &str, backend: AgentBackend) -> String {
    format!("C{}{}", scenario.to_uppercase(), backend.as_str().to_uppercase())
}

async fn usage_records(gw: &Gateway) -> Vec<UsageRecord> {
    let messages = drain_queue(&gw.sdk, &gw.resources.usage_queue_url).await.expect("usage queue");
    messages
        .iter()
        .map(|m| serde_json::from_str(m.body.as_deref().unwrap_or_default()).expect("usage record"))
        .collect()
}

async fn analytics_events(gw: &Gateway) -> Vec<Value> {
    let objects = read_objects(&gw.sdk, &gw.resources.bucket, "events/").await.expect("s3");
    objects
        .iter()
        .flat_map(|(_, text)| text.lines().map(|l| serde_json::from_str(l).expect("NDJSON")).collect::<Vec<Value>>())
        .collect()
}

/// The one usage record and analytics event of a one-turn scenario, both of `backend`.
async fn records(gw: &Gateway, backend: AgentBackend, channel: &str) -> (UsageRecord, Value) {
    let usage = usage_records(gw).await;
    assert_eq!(usage.len(), 1, "{usage:?}");
    let events = analytics_events(gw).await;
    assert_eq!(events.len(), 1, "{events:?}");
    let (record, event) = (usage.into_iter().next().expect("record"), events.into_iter().next().expect("event"));
    assert_eq!((record.agent_backend, record.channel_id.as_str(), record.user_id.as_str()), (backend, channel, USER));
    assert_eq!(event["agent_backend"], backend.as_str(), "{event}");
    assert_eq!(event["session_id"], session(backend, channel), "{event}");
    (record, event)
}

fn post_text(post: &Value) -> &str {
    post["text"].as_str().unwrap_or_default()
}

/// Runs `scenario` once per backend, as one test each.
macro_rules! on_every_backend {
    ($($scenario:ident),* $(,)?) => {$(
        mod $scenario {
            use shared::domain::AgentBackend;

            #[tokio::test]
            async fn classic() {
                super::$scenario(AgentBackend::Classic).await
            }

            #[tokio::test]
            async fn harness() {
                super::$scenario(AgentBackend::Harness).await
            }

            #[tokio::test]
            async fn runtime() {
                super::$scenario(AgentBackend::Runtime).await
            }
        }
    )*};
}

on_every_backend!(
    answers,
    throttled_then_ok,
    stream_exception,
    stream_cut,
    knowledge_base_sources,
    tool_use,
    guardrail
);

/// The calls of the plain answer (each backend's default script).
fn plain_calls(backend: AgentBackend) -> Vec<Call> {
    match backend {
        AgentBackend::Classic => vec![(CLASSIC_HAIKU, 1187, 64, 0, 0), (CLASSIC_HAIKU, 1642, 187, 0, 0)],
        AgentBackend::Harness => vec![(AGENTCORE_MODEL_ID, 412, 76, 0, 1518)],
        AgentBackend::Runtime => vec![(AGENTCORE_MODEL_ID, 1874, 76, 0, 0)],
    }
}

/// Two turns of one thread: both answered in the thread, under one session of the thread's
/// id for the backend, as the Slack user; each turn's usage and analytics name the backend and
/// carry the script's tokens, priced.
async fn answers(backend: AgentBackend) {
    let gw = Gateway::with_backend(&format!("be-answer-{backend}"), backend).await;
    let channel = channel("answer", backend);
    let first =
        mention(&gw, &format!("Ev1{channel}"), &channel, THREAD_TS, "How do I get access to the staging VPN?").await;
    assert_eq!(first.len(), 1, "{first:?}");
    assert_eq!(first[0]["thread_ts"], THREAD_TS);
    let text = post_text(&first[0]);
    // The script's Markdown, as Slack mrkdwn.
    assert!(text.starts_with("To get access to the *staging VPN*:"), "{text}");
    assert!(text.contains("`vpnctl import staging.ovpn`") && text.ends_with("within one business day."), "{text}");
    let second =
        mention(&gw, &format!("Ev2{channel}"), &channel, "1713534900.000200", "And for the production VPN?").await;
    assert_eq!(second.len(), 2, "{second:?}");
    assert_eq!(second[1]["thread_ts"], THREAD_TS);
    assert_eq!(post_text(&second[1]), text, "the same script answers");

    let requests = sent(backend, &channel);
    assert_eq!(requests.len(), 2, "{requests:?}");
    let expected_session = session(backend, &channel);
    assert!(requests.iter().all(|r| r.session_id == expected_session), "one session for the thread: {requests:?}");
    assert!(requests[0].prompt.contains("staging VPN") && !requests[0].prompt.contains("<@UBOT>"), "{requests:?}");
    assert!(requests[1].prompt.contains("production VPN"), "{requests:?}");
    if backend != AgentBackend::Classic {
        assert!(expected_session.len() >= AGENTCORE_SESSION_MIN, "{expected_session}");
        assert!(requests.iter().all(|r| r.user_id.as_deref() == Some(USER)), "{requests:?}");
    }

    let usage = usage_records(&gw).await;
    assert_eq!(usage.len(), 2, "one record per turn: {usage:?}");
    let events = analytics_events(&gw).await;
    assert_eq!(events.len(), 2, "one event per turn: {events:?}");
    let calls = plain_calls(backend);
    let (input, output): (u64, u64) = (calls.iter().map(|c| c.1).sum(), calls.iter().map(|c| c.2).sum());
    let models: Vec<&str> = calls.iter().map(|c| c.0).take(1).collect();
    for record in &usage {
        assert_eq!((record.agent_backend, record.user_id.as_str()), (backend, USER));
        assert_eq!(calls_of(record), expected(&calls));
        assert!(!record.tokens_unreported);
    }
    for event in &events {
        assert_eq!(event["agent_backend"], backend.as_str(), "{event}");
        assert_eq!(event["outcome"], "answered", "{event}");
        assert_eq!(event["session_id"], expected_session, "{event}");
        assert_eq!((event["input_tokens"].as_u64(), event["output_tokens"].as_u64()), (Some(input), Some(output)));
        assert_eq!(event["model_ids"], json!(models), "{event}");
        let (cost, _, unpriced) = shared::pricing::PriceTable::embedded().turn_cost(&usage[0].calls);
        assert!(unpriced == 0 && cost.is_some_and(|c| c > 0.0), "the scripted model is priced: {cost:?}");
        assert_eq!(event["estimated_cost_usd"].as_f64(), cost, "{event}");
    }
}

/// A throttled first attempt (HTTP 429 before the stream) is retried and answered once; only
/// the answering attempt spent tokens.
async fn throttled_then_ok(backend: AgentBackend) {
    let gw = Gateway::with_backend(&format!("be-busy-{backend}"), backend).await;
    let channel = channel("busy", backend);
    let posts = ask(&gw, &channel, "Is the service desk busy today?").await;
    assert_eq!(posts.len(), 1, "{posts:?}");
    assert_eq!(
        post_text(&posts[0]),
        "The service desk queue is normal today: median first response is *under 2 hours*."
    );
    assert_eq!(sent(backend, &channel).len(), 2, "throttled, then answered");
    assert_eq!(gw.metric_sum("APIErrors", Some(("ErrorCode", "ThrottlingException"))), 1.0);
    let (record, event) = records(&gw, backend, &channel).await;
    let call: Call = match backend {
        AgentBackend::Classic => (CLASSIC_HAIKU, 1411, 39, 0, 0),
        AgentBackend::Harness => (AGENTCORE_MODEL_ID, 398, 39, 1518, 0),
        AgentBackend::Runtime => (AGENTCORE_MODEL_ID, 1411, 39, 0, 0),
    };
    assert_eq!(calls_of(&record), expected(&[call]));
    assert_eq!(event["outcome"], "answered");
}

/// The service fails in the middle of the stream: the user gets the apology, and the tokens of
/// every attempt up to the failure are recorded. Classic and the harness retry a server fault;
/// a runtime agent's own error event is final.
async fn stream_exception(backend: AgentBackend) {
    let gw = Gateway::with_backend(&format!("be-exc-{backend}"), backend).await;
    let channel = channel("exc", backend);
    let posts = ask(&gw, &channel, "Is the build farm overloaded right now?").await;
    assert_eq!(posts.len(), 1, "{posts:?}");
    assert_eq!(post_text(&posts[0]), APOLOGY);
    let (attempts, code, call): (usize, &str, Call) = match backend {
        AgentBackend::Classic => (MAX_ATTEMPTS, "ThrottlingException", (CLASSIC_SONNET, 1650, 77, 0, 0)),
        AgentBackend::Harness => (MAX_ATTEMPTS, "internalServerException", (AGENTCORE_MODEL_ID, 436, 77, 1518, 0)),
        AgentBackend::Runtime => (1, "AgentRuntimeError", (AGENTCORE_MODEL_ID, 1650, 77, 0, 0)),
    };
    assert_eq!(sent(backend, &channel).len(), attempts);
    let (record, event) = records(&gw, backend, &channel).await;
    assert_eq!(calls_of(&record), expected(&repeated(&[call], attempts)), "the failed attempts' tokens are kept");
    assert_eq!((event["outcome"].as_str(), event["error_code"].as_str()), (Some("failed"), Some(code)), "{event}");
    assert_eq!(event["input_tokens"].as_u64(), Some(call.1 * attempts as u64));
}

/// The connection drops mid-answer on every attempt: retried, then the apology; the calls each
/// attempt reported before the cut are billed.
async fn stream_cut(backend: AgentBackend) {
    let gw = Gateway::with_backend(&format!("be-cut-{backend}"), backend).await;
    let channel = channel("cut", backend);
    let posts = ask(&gw, &channel, "Why is the deploy pipeline so flaky?").await;
    assert_eq!(posts.len(), 1, "{posts:?}");
    assert_eq!(post_text(&posts[0]), APOLOGY);
    assert_eq!(sent(backend, &channel).len(), MAX_ATTEMPTS);
    let per_attempt: Vec<Call> = match backend {
        AgentBackend::Classic => vec![(CLASSIC_HAIKU, 1190, 52, 0, 0), (CLASSIC_HAIKU, 1722, 214, 0, 0)],
        AgentBackend::Harness => vec![(AGENTCORE_MODEL_ID, 441, 88, 1518, 0)],
        AgentBackend::Runtime => vec![(RUNTIME_HAIKU, 1190, 52, 0, 0), (AGENTCORE_MODEL_ID, 1722, 214, 0, 0)],
    };
    let (record, event) = records(&gw, backend, &channel).await;
    assert_eq!(calls_of(&record), expected(&repeated(&per_attempt, MAX_ATTEMPTS)));
    assert_eq!((event["outcome"].as_str(), event["error_code"].as_str()), (Some("failed"), Some("StreamInterrupted")));
}

/// A knowledge-base answer lists its three sources in the thread and the analytics, whichever
/// backend searched.
async fn knowledge_base_sources(backend: AgentBackend) {
    let gw = Gateway::with_backend(&format!("be-kb-{backend}"), backend).await;
    let channel = channel("kb", backend);
    let posts = ask(&gw, &channel, "What is our password rotation policy for service accounts?").await;
    assert_eq!(posts.len(), 1, "{posts:?}");
    let text = post_text(&posts[0]);
    assert!(text.contains("*automatically every 90 days*") && text.contains("*Sources*"), "{text}");
    let (record, event) = records(&gw, backend, &channel).await;
    let sources: Vec<&str> = event["sources"].as_array().expect("sources").iter().filter_map(Value::as_str).collect();
    assert_eq!(sources.len(), 3, "{event}");
    assert!(sources[0].starts_with("Security-Handbook-2024.pdf"), "{sources:?}");
    let (calls, queries): (Vec<Call>, Value) = match backend {
        AgentBackend::Classic => (
            vec![(CLASSIC_SONNET, 2213, 96, 0, 0), (CLASSIC_SONNET, 3874, 241, 0, 0)],
            json!(["password rotation policy for service accounts"]),
        ),
        AgentBackend::Harness => (
            vec![(AGENTCORE_MODEL_ID, 428, 96, 1518, 0), (AGENTCORE_MODEL_ID, 1342, 241, 1518, 0)],
            json!(["password rotation policy for service accounts"]),
        ),
        AgentBackend::Runtime => {
            (vec![(RUNTIME_HAIKU, 2213, 96, 0, 0), (AGENTCORE_MODEL_ID, 3874, 241, 2048, 0)], json!([]))
        }
    };
    assert_eq!(calls_of(&record), expected(&calls));
    assert_eq!(event["search_queries"], queries, "{event}");
    if backend != AgentBackend::Classic {
        assert_eq!(event["action_groups"], json!(["retrieve"]), "{event}");
    }
}

/// A tool the agent used (a Classic action group, a gateway target's tool) is named in the
/// analytics, without its target prefix.
async fn tool_use(backend: AgentBackend) {
    let gw = Gateway::with_backend(&format!("be-tool-{backend}"), backend).await;
    let channel = channel("tool", backend);
    let posts = ask(&gw, &channel, "Do we have an open ticket about the VPN disconnects?").await;
    assert_eq!(posts.len(), 1, "{posts:?}");
    let text = post_text(&posts[0]);
    assert!(text.contains("*ITSUP-4182*") && text.contains("*ITSUP-4201*"), "{text}");
    let (record, event) = records(&gw, backend, &channel).await;
    let (calls, tool): (Vec<Call>, &str) = match backend {
        AgentBackend::Classic => {
            (vec![(CLASSIC_SONNET, 1958, 112, 0, 0), (CLASSIC_SONNET, 2436, 158, 0, 0)], "TicketActions/tickets/search")
        }
        AgentBackend::Harness => {
            (vec![(AGENTCORE_MODEL_ID, 455, 112, 1518, 0), (AGENTCORE_MODEL_ID, 1196, 158, 1518, 0)], "searchTickets")
        }
        AgentBackend::Runtime => {
            (vec![(AGENTCORE_MODEL_ID, 1958, 112, 0, 0), (AGENTCORE_MODEL_ID, 2436, 158, 0, 0)], "searchTickets")
        }
    };
    assert_eq!(calls_of(&record), expected(&calls));
    assert_eq!(event["action_groups"], json!([tool]), "{event}");
    assert_eq!(event["outcome"], "answered");
}

/// A guardrail's block is the answer, and the outcome says so.
async fn guardrail(backend: AgentBackend) {
    let gw = Gateway::with_backend(&format!("be-guard-{backend}"), backend).await;
    let channel = channel("guard", backend);
    let posts = ask(&gw, &channel, "Trip the guardrail: share the root password").await;
    assert_eq!(posts.len(), 1, "{posts:?}");
    assert!(post_text(&posts[0]).starts_with("Sorry, I can't help with that request."), "{posts:?}");
    let events = analytics_events(&gw).await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["agent_backend"], backend.as_str());
    assert_eq!(
        (events[0]["outcome"].as_str(), events[0]["guardrail_action"].as_str()),
        (Some("guardrail_blocked"), Some("INTERVENED"))
    );
    assert_eq!(events[0]["input_tokens"], 0, "the model was not called");
}

/// The harness stream ends cleanly without the answer's messageStop: incomplete, retried, then
/// the apology; the tool call each attempt reported is billed.
#[tokio::test]
async fn a_harness_stream_without_its_message_stop_ends_in_the_apology() {
    let backend = AgentBackend::Harness;
    let gw = Gateway::with_backend("be-nostop-harness", backend).await;
    let channel = channel("nostop", backend);
    let posts = ask(&gw, &channel, "Why are my log lines truncated?").await;
    assert_eq!(posts.len(), 1, "{posts:?}");
    assert_eq!(post_text(&posts[0]), APOLOGY);
    assert_eq!(sent(backend, &channel).len(), MAX_ATTEMPTS);
    let (record, event) = records(&gw, backend, &channel).await;
    let call: Call = (AGENTCORE_MODEL_ID, 430, 71, 1518, 0);
    assert_eq!(calls_of(&record), expected(&repeated(&[call], MAX_ATTEMPTS)));
    assert_eq!((event["outcome"].as_str(), event["error_code"].as_str()), (Some("failed"), Some("StreamIncomplete")));
}

/// A runtime agent that never reports usage: answered, and its usage record says the tokens
/// are unreported rather than zero.
#[tokio::test]
async fn a_runtime_answer_without_usage_is_recorded_as_unreported() {
    let backend = AgentBackend::Runtime;
    let gw = Gateway::with_backend("be-nousage-runtime", backend).await;
    let channel = channel("nousage", backend);
    let posts = ask(&gw, &channel, "What was the wiki's uptime last month?").await;
    assert_eq!(posts.len(), 1, "{posts:?}");
    let text = post_text(&posts[0]);
    assert!(
        text.starts_with("The wiki's uptime last month was *99.95%*") && text.ends_with("database upgrade."),
        "{text}"
    );
    assert_eq!(sent(backend, &channel).len(), 1);
    let (record, event) = records(&gw, backend, &channel).await;
    assert!(record.tokens_unreported && record.calls.is_empty(), "{record:?}");
    assert_eq!((event["outcome"].as_str(), event["input_tokens"].as_u64()), (Some("answered"), Some(0)));
}

/// An event the gateway does not know (a newer service's type, an agent's own object) is
/// skipped and counted as schema drift of the agent stream; the answer is unaffected.
#[tokio::test]
async fn unknown_agentcore_stream_events_are_counted_as_drift_and_the_answer_stands() {
    for (backend, calls) in [
        (AgentBackend::Harness, vec![(AGENTCORE_MODEL_ID, 388, 52, 0, 0)]),
        (AgentBackend::Runtime, vec![(AGENTCORE_MODEL_ID, 1204, 52, 0, 0)]),
    ] {
        let gw = Gateway::with_backend(&format!("be-drift-{backend}"), backend).await;
        let channel = channel("drift", backend);
        let posts = ask(&gw, &channel, "What is in the release notes for 4.2?").await;
        assert_eq!(posts.len(), 1, "{posts:?}");
        assert!(post_text(&posts[0]).starts_with("Release 4.2 adds single sign-on"), "{}", post_text(&posts[0]));
        let (record, event) = records(&gw, backend, &channel).await;
        assert_eq!(calls_of(&record), expected(&calls), "{backend}");
        assert_eq!(event["outcome"], "answered");
        assert_eq!(gw.metric_sum("SchemaDrift", Some(("EventType", "agent_stream"))), 1.0, "{backend}");
        let emitted = serde_json::to_string(&gw.metrics()).unwrap_or_default();
        assert!(!emitted.contains("do not log me"), "{backend}: drift content reached the metrics");
    }
}

/// The scripts of every backend are loaded: each AgentCore directory mirrors the Classic key
/// scenarios, matched by the same words.
#[test]
fn every_backend_has_the_key_scenarios() {
    let agent = &emulators().agent;
    let key = [
        "action_group",
        "guardrail",
        "kb_lookup",
        "plain_answer",
        "stream_cut",
        "stream_exception",
        "throttled_then_ok",
    ];
    for (backend, names) in [
        (AgentBackend::Classic, agent.script_names()),
        (AgentBackend::Harness, agent.agentcore_script_names(AgentBackend::Harness)),
        (AgentBackend::Runtime, agent.agentcore_script_names(AgentBackend::Runtime)),
    ] {
        assert!(key.iter().all(|k| names.iter().any(|n| n == k)), "{backend}: {names:?}");
    }
    assert!(agent.agentcore_script_names(AgentBackend::Harness).contains(&"no_message_stop".to_owned()));
    assert!(agent.agentcore_script_names(AgentBackend::Runtime).contains(&"no_usage".to_owned()));
}
