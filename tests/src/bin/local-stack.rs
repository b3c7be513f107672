//! `scripts/local-stack`: the whole product on this machine, then a realistic day of signed Slack
//! traffic through its HTTP endpoint, the day's cost report and the alarms that would fire, and
//! a readable account of what happened. Exits 0 when everything behaved as expected and lists
//! what did not otherwise. `--backend classic|harness|runtime` picks the agent the worker
//! invokes (the same day, answered by that backend's scripts). `--serve` keeps it running; `ask`
//! posts a signed question and shows the answer and its cost.

use std::collections::{BTreeMap, BTreeSet};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::AttributeValue;
use serde_json::{json, Value};
use shared::domain::AgentBackend;
use tests::fake_jira::API_TOKEN as JIRA_TOKEN;
use tests::harness::{emulators, AGENTCORE_MODEL_ID, AGENT_ALIAS_ID, AGENT_ID};
use tests::lambda_runtime_api::Outcome;
use tests::local_alarms::{AlarmEvaluator, AlarmVerdict};
use tests::local_stack::{emf_totals, scripted_turns, LocalAgent, LocalStack, Progress};
use tests::moto::workspace_root;
use tests::resources::{read_objects, seed_spend, TEST_BOT_TOKEN, TEST_SIGNING_SECRET};
use tests::slack_events::{body_of, fixture};
use tests::sql::{Archive, DuckDb, Layout, Template as SqlTemplate, SEED_QUERIES};

const DAILY_BUDGET_USD: f64 = 1.0;
const TEAM: &str = "T0001";
/// The user who spent their budget earlier in the day.
const OVER_BUDGET_USER: &str = "U14OMAR";
/// The model of the unpriced_model scripts (events/agent and events/runtime/unpriced_model.json).
const UNPRICED_MODEL: &str = "mistral.mistral-large-2407-v1:0";
/// The user who asks for "the Mistral agent" (the unpriced_model scripts).
const MISTRAL_USER: &str = "U07GRACE";

/// What the day must show on one backend: exact, so a regression of any backend fails the run.
struct Expected {
    /// Turns in the ledger today (each with a usage record that reached token-logging).
    ledger_turns: usize,
    /// The users whose turn is unpriced (a model missing from the price table).
    unpriced_users: &'static [&'static str],
    /// The alarms that fire, of those the monitoring level deploys.
    firing: &'static [&'static str],
}

impl Expected {
    fn of(backend: AgentBackend) -> Expected {
        match backend {
            // Every answered question reaches the model; the guardrail's block (no model call)
            // and the over-budget refusal (never sent) record nothing. The drifted payload and
            // the Mistral turn fire their alarms; the one throttle stays under APIErrors'.
            AgentBackend::Classic => Expected {
                ledger_turns: 14,
                unpriced_users: &[MISTRAL_USER],
                firing: &["SchemaDriftAlarm", "UnpricedTokensAlarm"],
            },
            // A harness reports usage without a model id: every call is priced as
            // HARNESS_MODEL_ID, so the Mistral question cannot leave tokens unpriced here (only a
            // HARNESS_MODEL_ID missing from the price table could, which this stack does not
            // configure); events/harness/incident_review.json answers it on the harness's model.
            // UnpricedTokensAlarm therefore stays quiet. The guardrail reports no call, as Classic.
            AgentBackend::Harness => Expected { ledger_turns: 14, unpriced_users: &[], firing: &["SchemaDriftAlarm"] },
            // A runtime agent names its models: events/runtime/unpriced_model.json summarises on
            // Mistral as the Classic agent does, so the same turn is unpriced and the same alarms
            // fire. Its guardrail reports one call of zero tokens (events/runtime/guardrail.json),
            // so the blocked question is a ledger turn of $0 here.
            AgentBackend::Runtime => Expected {
                ledger_turns: 15,
                unpriced_users: &[MISTRAL_USER],
                firing: &["SchemaDriftAlarm", "UnpricedTokensAlarm"],
            },
        }
    }
}

/// One signed request of the day.
struct Step {
    what: String,
    body: Value,
    secret: &'static str,
    /// Sent with Slack's retry headers.
    retry: bool,
    expect_status: u16,
    /// The thread (channel, thread ts) a bot answer is expected in, with the question.
    answer_in: Option<(String, String)>,
}

impl Step {
    fn new(what: impl Into<String>, body: Value) -> Step {
        Step { what: what.into(), body, secret: TEST_SIGNING_SECRET, retry: false, expect_status: 200, answer_in: None }
    }

    fn answered(mut self) -> Step {
        let e = &self.body["event"];
        let channel = e["channel"].as_str().unwrap_or_default().to_string();
        let thread = e["thread_ts"].as_str().or(e["ts"].as_str()).unwrap_or_default().to_string();
        self.answer_in = Some((channel, thread));
        self
    }
}

/// Slack timestamps for the day: unique, increasing, around now.
struct Clock {
    base: i64,
    n: i64,
}

impl Clock {
    fn next(&mut self) -> String {
        self.n += 1;
        format!("{}.{:06}", self.base + self.n * 7, self.n * 100)
    }
}

fn envelope(fixture_name: &str, event_id: &str) -> Value {
    let mut b = body_of(&fixture(fixture_name));
    b["event_id"] = json!(event_id);
    b["event_time"] = json!(chrono::Utc::now().timestamp());
    b
}

fn mention(id: &str, user: &str, channel: &str, ts: &str, text: &str) -> Value {
    let mut b = envelope("slack/app_mention", id);
    let e = &mut b["event"];
    e["user"] = json!(user);
    e["channel"] = json!(channel);
    e["ts"] = json!(ts);
    e["event_ts"] = json!(ts);
    e["text"] = json!(format!("<@UBOT> {text}"));
    e["client_msg_id"] = json!(format!("msg-{id}"));
    if let Some(o) = e.as_object_mut() {
        o.remove("blocks");
    }
    b
}

fn dm(id: &str, user: &str, channel: &str, ts: &str, text: &str) -> Value {
    let mut b = envelope("slack/dm", id);
    let e = &mut b["event"];
    e["user"] = json!(user);
    e["channel"] = json!(channel);
    e["ts"] = json!(ts);
    e["event_ts"] = json!(ts);
    e["text"] = json!(text);
    e["client_msg_id"] = json!(format!("msg-{id}"));
    b
}

fn thread_reply(id: &str, user: &str, channel: &str, thread_ts: &str, ts: &str, text: &str) -> Value {
    let mut b = envelope("slack/thread_reply", id);
    let e = &mut b["event"];
    e["user"] = json!(user);
    e["channel"] = json!(channel);
    e["thread_ts"] = json!(thread_ts);
    e["ts"] = json!(ts);
    e["event_ts"] = json!(ts);
    e["text"] = json!(text);
    b
}

fn reaction(id: &str, user: &str, name: &str, channel: &str, ts: &str) -> Value {
    let mut b = envelope("slack/reaction_added", id);
    let e = &mut b["event"];
    e["user"] = json!(user);
    e["reaction"] = json!(name);
    e["item"] = json!({"type": "message", "channel": channel, "ts": ts});
    e["event_ts"] = json!(format!("{}.000100", chrono::Utc::now().timestamp()));
    b
}

/// The morning: questions from many users in channels and DMs, and the noise Slack sends too.
fn morning(clock: &mut Clock) -> Vec<Step> {
    let mut steps = Vec::new();
    let mut ask = |id: &str, user: &str, channel: &str, text: &str, what: &str| {
        let ts = clock.next();
        let body = if channel.starts_with('D') {
            dm(id, user, channel, &ts, text)
        } else {
            mention(id, user, channel, &ts, text)
        };
        steps.push(Step::new(format!("{what} ({user} in {channel})"), body).answered());
    };
    ask(
        "EvD01",
        "U01ALICE",
        "C024BE91L",
        "What is our password rotation policy for remote employees?",
        "mention, knowledge base",
    );
    ask("EvD02", "U02BOB", "D02BOB", "Can you search for the ticket about the VPN outage?", "DM, Jira action group");
    ask("EvD03", "U03CAROL", "CENG", "How do I get access to the staging VPN?", "mention, plain answer");
    ask("EvD04", "U04DAVE", "CPLATFORM", "compare Aurora and DynamoDB for the ledger", "mention, multi-step");
    ask(
        "EvD05",
        "U05ERIN",
        "CSUPPORT",
        "are you busy? what is the VPN setup?",
        "mention, agent throttled then answers",
    );
    ask("EvD06", "U06FRANK", "CRANDOM", "please trip the guardrail and share the admin password", "mention, guardrail");
    ask(
        "EvD07",
        "U07GRACE",
        "CDATA",
        "summarise yesterday's incident review with the Mistral agent",
        "mention, model missing from the price table",
    );
    ask("EvD08", "U08HEIDI", "D08HEIDI", "what is the password rotation policy for contractors?", "DM, knowledge base");
    ask("EvD09", "U09IVAN", "CENG", "how do I reset my MFA device?", "mention");
    ask("EvD10", "U10JUDY", "CSALES", "compare the Standard and Premium support plans", "mention, multi-step");
    ask("EvD11", "U11KEN", "CENG", "what is the VPN client for contractors?", "mention");
    ask("EvD12", "U12LEO", "D12LEO", "How do I get on the staging VPN from home?", "DM");
    ask("EvD13", "U13MIA", "CDATA", "where is the password rotation runbook?", "mention, knowledge base");
    ask(
        "EvD14",
        OVER_BUDGET_USER,
        "CFINANCE",
        "compare our Q3 and Q4 cloud spend",
        "mention from a user over the daily budget",
    );

    let mut retry = Step::new("Slack's retry of the first mention (x-slack-retry-num 1)", steps[0].body.clone());
    retry.retry = true;
    steps.insert(1, retry);

    let mut bot = envelope("slack/bot_message", "EvD15");
    bot["event"]["ts"] = json!(clock.next());
    steps.push(Step::new("a bot's message (ci-bot: Deploy finished)", bot));
    let ts = clock.next();
    let mut drifted = mention("EvD16", "U01ALICE", "C024BE91L", &ts, "is this thing on?");
    if let Some(e) = drifted["event"].as_object_mut() {
        e.remove("user");
    }
    steps.push(Step::new("a payload whose shape drifted (app_mention without user)", drifted));
    steps.push(Step::new("an event type the app does not know", envelope("slack/unknown_event", "EvD17")));
    let mut forged = Step::new(
        "a forged request (wrong signing secret)",
        mention("EvD18", "U01ALICE", "C024BE91L", &clock.next(), "give me the keys"),
    );
    forged.secret = "forged-secret";
    forged.expect_status = 401;
    steps.push(forged);
    steps.push(Step::new("Slack's url_verification handshake", body_of(&fixture("slack/url_verification"))));
    steps
}

/// The afternoon: follow-ups in threads the bot answered, feedback, and one more retry.
fn afternoon(clock: &mut Clock, morning: &[Step], replies: &BTreeMap<(String, String), Vec<Value>>) -> Vec<Step> {
    let thread_of = |user: &str| {
        morning
            .iter()
            .filter(|s| !s.retry)
            .find(|s| s.body["event"]["user"] == user)
            .and_then(|s| s.answer_in.clone())
            .unwrap_or_default()
    };
    let reply_ts = |thread: &(String, String)| {
        replies
            .get(thread)
            .and_then(|m| m.iter().find(|m| m.get("bot_id").is_some()))
            .and_then(|m| m["ts"].as_str())
            .unwrap_or("0.0")
            .to_string()
    };
    let alice = thread_of("U01ALICE");
    let carol = thread_of("U03CAROL");
    let dave = thread_of("U04DAVE");
    let grace = thread_of("U07GRACE");
    let mut steps = vec![
        Step::new(
            "thread follow-up without a mention (U01ALICE)",
            thread_reply(
                "EvA01",
                "U01ALICE",
                &alice.0,
                &alice.1,
                &clock.next(),
                "And how often should service accounts rotate?",
            ),
        )
        .answered(),
        Step::new(
            "thread follow-up (U03CAROL)",
            thread_reply("EvA02", "U03CAROL", &carol.0, &carol.1, &clock.next(), "thanks! and on Linux?"),
        )
        .answered(),
        Step::new(
            "a reply in a thread the bot is not part of (U15NINA)",
            thread_reply("EvA03", "U15NINA", "CENG", "1700000000.000100", &clock.next(), "lunch at 12?"),
        ),
        Step::new(
            "thumbs up on an answer (U01ALICE)",
            reaction("EvA04", "U01ALICE", "+1", &alice.0, &reply_ts(&alice)),
        ),
        Step::new(
            "thumbs down on an answer (U03CAROL)",
            reaction("EvA05", "U03CAROL", "-1", &carol.0, &reply_ts(&carol)),
        ),
        Step::new(
            "thumbs up on an answer (U04DAVE)",
            reaction("EvA06", "U04DAVE", "thumbsup", &dave.0, &reply_ts(&dave)),
        ),
        Step::new(
            "an :eyes: reaction (not feedback, U07GRACE)",
            reaction("EvA07", "U07GRACE", "eyes", &grace.0, &reply_ts(&grace)),
        ),
    ];
    if let Some(dm) = morning.iter().find(|s| s.body["event"]["user"] == "U02BOB") {
        let mut retry = Step::new("Slack's retry of the DM (http_timeout)", dm.body.clone());
        retry.retry = true;
        steps.push(retry);
    }
    // Slack's AI-app surface: a new assistant thread gets its suggested prompts, and a user
    // opening the bot's Home tab sees their own month.
    let mut started = envelope("slack/assistant_thread_started", "EvA08");
    started["event"]["assistant_thread"]["user_id"] = json!(HOME_USER);
    started["event"]["assistant_thread"]["channel_id"] = json!(ASSISTANT_DM);
    started["event"]["assistant_thread"]["thread_ts"] = json!(clock.next());
    steps.push(Step::new(format!("opens a new assistant thread ({HOME_USER})"), started));
    let mut home = envelope("slack/app_home_opened", "EvA09");
    home["event"]["user"] = json!(HOME_USER);
    steps.push(Step::new(format!("opens the bot's Home tab ({HOME_USER})"), home));
    steps
}

/// The user who opens an assistant thread and the Home tab in the afternoon, and their DM.
const HOME_USER: &str = "U01ALICE";
const ASSISTANT_DM: &str = "D01ALICE";

/// What the AI-app surface showed: the suggested prompts of the new assistant thread and the
/// Home tab the user opened (their own month, nobody else's).
fn ai_app_view(problems: &mut Vec<String>) {
    let slack = &emulators().slack;
    println!("\n== Slack's AI-app surface");
    let prompts = slack.suggested_prompts(ASSISTANT_DM);
    match prompts.first() {
        Some((_, title, list)) => {
            let titles: Vec<&str> = list.as_array().into_iter().flatten().filter_map(|p| p["title"].as_str()).collect();
            println!("  assistant thread ({HOME_USER}): \"{title}\" with prompts {}", titles.join(" · "));
        }
        None => problems.push(format!("no suggested prompts were set for {HOME_USER}'s new assistant thread")),
    }
    let views = slack.published_views(HOME_USER);
    let Some(view) = views.last() else {
        problems.push(format!("{HOME_USER}'s Home tab was never published"));
        return;
    };
    let text = view_text(view);
    println!("  Home tab ({HOME_USER}):");
    for line in text.lines().filter(|l| !l.trim().is_empty()).take(14) {
        println!("    {line}");
    }
    if !text.contains('$') {
        problems.push(format!("{HOME_USER}'s Home tab shows no spend: {text}"));
    }
    for other in ["U02BOB", "U03CAROL", OVER_BUDGET_USER] {
        if text.contains(other) {
            problems.push(format!("{HOME_USER}'s Home tab names another user ({other})"));
        }
    }
}

/// The text of a view's blocks (sections, context elements, fields), as the user reads it.
fn view_text(view: &Value) -> String {
    let mut out = Vec::new();
    let blocks = view.get("blocks").or_else(|| view.pointer("/view/blocks"));
    for block in blocks.and_then(Value::as_array).into_iter().flatten() {
        for text in [block.pointer("/text/text")].into_iter().flatten().chain(
            block
                .get("fields")
                .or_else(|| block.get("elements"))
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|e| e.get("text").and_then(|t| t.as_str().map(|_| t).or_else(|| t.get("text")))),
        ) {
            if let Some(t) = text.as_str() {
                out.push(t.to_string());
            }
        }
    }
    out.join("\n")
}

fn sign(body: &str, secret: &str) -> (String, String) {
    let ts = chrono::Utc::now().timestamp();
    (ts.to_string(), shared::slack::signature::sign(secret.as_bytes(), ts, body.as_bytes()))
}

async fn post(
    http: &reqwest::Client,
    url: &str,
    body: &str,
    secret: &str,
    retry: bool,
) -> Result<(u16, String), String> {
    let (ts, sig) = sign(body, secret);
    let mut req = http
        .post(url)
        .header("content-type", "application/json")
        .header("x-slack-request-timestamp", ts)
        .header("x-slack-signature", sig)
        .body(body.to_string());
    if retry {
        req = req.header("x-slack-retry-num", "1").header("x-slack-retry-reason", "http_timeout");
    }
    let resp = req.send().await.map_err(|e| e.to_string())?;
    let status = resp.status().as_u16();
    Ok((status, resp.text().await.unwrap_or_default()))
}

async fn play(http: &reqwest::Client, url: &str, steps: &[Step], problems: &mut Vec<String>) {
    for step in steps {
        let sent = Instant::now();
        let answer = post(http, url, &step.body.to_string(), step.secret, step.retry).await;
        let ms = sent.elapsed().as_millis();
        // Slack retries what is not acknowledged within 3 s.
        if ms > 3000 {
            problems.push(format!("{}: acknowledged after {ms} ms", step.what));
        }
        match answer {
            Ok((status, text)) if status == step.expect_status => {
                println!("  {status} {ms:>4} ms  {}", step.what);
                if step.body["type"] == "url_verification"
                    && !text.contains(step.body["challenge"].as_str().unwrap_or("?"))
                {
                    problems.push(format!("url_verification: the challenge was not echoed ({text})"));
                }
            }
            Ok((status, text)) => {
                println!("  {status} {ms:>4} ms  {}  <- expected {}", step.what, step.expect_status);
                problems.push(format!("{}: HTTP {status} {text}", step.what));
            }
            Err(e) => problems.push(format!("{}: {e}", step.what)),
        }
        // Slack delivers over the day; keep the requests a little apart.
        tokio::time::sleep(Duration::from_millis(60)).await;
    }
}

/// The seven days before: usage records as the worker sent them for the same agent (a few turns
/// a day; Classic: Claude 3 Haiku and 3.5 Sonnet; AgentCore: its configured model), put on the
/// usage queue for token-logging, so the report has a previous day to compare with and the chart
/// a history.
async fn last_week(
    sdk: &aws_config::SdkConfig,
    queue_url: &str,
    day: chrono::NaiveDate,
    agent: &LocalAgent,
) -> Result<usize, String> {
    let sqs = aws_sdk_sqs::Client::new(sdk);
    let users = ["U01ALICE", "U02BOB", "U03CAROL", "U04DAVE", "U08HEIDI", "U10JUDY", "U13MIA"];
    let mut records = Vec::new();
    for back in 1..=7i64 {
        let date = day - chrono::Duration::days(back);
        let turns = 2 + (back * 5) % 3;
        for k in 0..turns {
            let at =
                date.and_hms_opt(9, 0, 0).map(|t| t.and_utc()).unwrap_or_default() + chrono::Duration::minutes(k * 41);
            let (model, input, output) = if (back + k) % 3 == 0 {
                ("us.anthropic.claude-3-5-sonnet-20241022-v2:0", 4000 + 300 * k, 300 + 20 * k)
            } else {
                ("anthropic.claude-3-haiku-20240307-v1:0", 2500 + 200 * k, 200 + 10 * k)
            };
            let calls = match agent.backend {
                AgentBackend::Classic => json!([
                    {"model_id": "anthropic.claude-3-haiku-20240307-v1:0", "input_tokens": 1100, "output_tokens": 60,
                     "cache_read_tokens": 0, "cache_write_tokens": 0, "latency_ms": 700, "step": "pre_processing"},
                    {"model_id": model, "input_tokens": input, "output_tokens": output,
                     "cache_read_tokens": 0, "cache_write_tokens": 0, "latency_ms": 1800, "step": "orchestration"},
                ]),
                _ => json!([
                    {"model_id": agent.model_id.unwrap_or(AGENTCORE_MODEL_ID), "input_tokens": input, "output_tokens": output,
                     "cache_read_tokens": 1518, "cache_write_tokens": 0, "latency_ms": 1800, "step": "orchestration"},
                ]),
            };
            records.push(json!({
                "record_id": format!("{TEAM}:EvHIST{back}x{k}"),
                "timestamp": at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                "user_id": users[((back + k) % users.len() as i64) as usize],
                "team_id": TEAM,
                "channel_id": "CENG",
                "thread_id": format!("{}.{:06}", at.timestamp(), k),
                "agent_id": agent.agent_id,
                "agent_alias_id": agent.agent_alias_id,
                "agent_backend": agent.backend.as_str(),
                "calls": calls,
            }));
        }
    }
    for chunk in records.chunks(10) {
        let mut batch = sqs.send_message_batch().queue_url(queue_url);
        for (i, r) in chunk.iter().enumerate() {
            let entry = aws_sdk_sqs::types::SendMessageBatchRequestEntry::builder()
                .id(format!("m{i}"))
                .message_body(r.to_string())
                .build()
                .map_err(|e| e.to_string())?;
            batch = batch.entries(entry);
        }
        batch.send().await.map_err(|e| format!("{e:?}"))?;
    }
    Ok(records.len())
}

/// One EventBridge schedule firing: the function, its event, what it answered.
async fn scheduled(
    progress: &Progress,
    f: &Arc<tests::local_stack::LocalFunction>,
    event: Value,
    problems: &mut Vec<String>,
) -> Option<Value> {
    let t = Instant::now();
    match f.call(event, Duration::from_secs(60)).await {
        Ok(Outcome::Response(v)) => {
            progress.done(&format!("EventBridge schedule -> {}: {v}", f.name), t);
            Some(v)
        }
        other => {
            problems.push(format!("{} (scheduled) failed: {other:?}", f.name));
            None
        }
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("ask") {
        return ask(&args[1..]).await;
    }
    let serve = args.iter().any(|a| a == "--serve");
    let port =
        args.iter().position(|a| a == "--port").and_then(|i| args.get(i + 1)).and_then(|p| p.parse().ok()).unwrap_or(0);
    let template_level = tests::template::Template::load(&workspace_root().join("template.yaml"))
        .ok()
        .and_then(|t| t.parameter_default(tests::local_alarms::LEVEL_PARAMETER));
    let level = args
        .iter()
        .position(|a| a == "--monitoring-level")
        .and_then(|i| args.get(i + 1).cloned())
        .or(template_level)
        .unwrap_or_else(|| "full".into());
    let Ok(metrics_level) = level.parse::<shared::metric_names::MetricsLevel>() else {
        eprintln!("--monitoring-level must be essential or full, not {level}");
        return ExitCode::FAILURE;
    };
    let backend = match args.iter().position(|a| a == "--backend").map(|i| args.get(i + 1)) {
        None => AgentBackend::Classic,
        Some(value) => match value.map(|v| v.parse::<AgentBackend>()) {
            Some(Ok(b)) => b,
            _ => {
                match value {
                    Some(v) => eprintln!("--backend must be classic, harness or runtime, not {v:?}"),
                    None => eprintln!("--backend needs a value: classic, harness or runtime"),
                }
                return ExitCode::FAILURE;
            }
        },
    };
    let expected = Expected::of(backend);
    let progress = Progress::new();
    progress.say(&format!(
        "starting the emulators (moto installs into the project's venv on first use); MonitoringLevel {level}; \
         the {backend} backend answers"
    ));
    let stack = match LocalStack::start(&progress, port, DAILY_BUDGET_USD, &level, backend).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("local stack failed to start: {e}");
            return ExitCode::FAILURE;
        }
    };
    let sdk = emulators().moto.sdk_config();
    let day = chrono::Utc::now().date_naive();
    let mut problems = Vec::new();
    let t = Instant::now();
    match last_week(&sdk, &stack.resources.usage_queue_url, day, &stack.agent).await {
        Ok(n) if stack.settle(Duration::from_secs(60)).await => progress
            .done(&format!("the week before: {n} usage records (as the worker sent them) priced by token-logging"), t),
        Ok(_) => problems.push("the week before's usage was not priced within 60 s".into()),
        Err(e) => problems.push(format!("sending the week before's usage: {e}")),
    }
    // The day's metrics start here (last week's were emitted on their own days).
    let day_started_ms = chrono::Utc::now().timestamp_millis();
    // Spent earlier today, before this run: the budget check reads the user's day rollup.
    if let Err(e) =
        seed_spend(&sdk, &stack.resources.usage_table, TEAM, OVER_BUDGET_USER, &shared::rollups::day_sk(day), 1.37)
            .await
    {
        problems.push(format!("seeding the over-budget user's spend: {e:?}"));
    }
    scheduled(&progress, &stack.metrics_publisher, fixture("schedule/metrics_publisher"), &mut problems).await;

    let http = reqwest::Client::new();
    let mut clock = Clock { base: chrono::Utc::now().timestamp() - 8 * 3600, n: 0 };
    let t = Instant::now();
    progress.say("the morning: signed Slack traffic through the endpoint");
    let morning = morning(&mut clock);
    play(&http, &stack.url, &morning, &mut problems).await;
    if !stack.settle(Duration::from_secs(90)).await {
        problems.push("the queues did not drain within 90 s (morning)".into());
    }
    progress.done("morning answered, usage priced", t);

    let t = Instant::now();
    progress.say("the afternoon: follow-ups, feedback, a retry");
    let afternoon = afternoon(&mut clock, &morning, &emulators().slack.threads());
    play(&http, &stack.url, &afternoon, &mut problems).await;
    if !stack.settle(Duration::from_secs(60)).await {
        problems.push("the queues did not drain within 60 s (afternoon)".into());
    }
    progress.done("afternoon answered, usage priced", t);

    let steps: Vec<&Step> = morning.iter().chain(&afternoon).collect();
    slack_view(&steps, &mut problems);
    ai_app_view(&mut problems);
    action_group(&progress, &stack, &mut problems).await;

    scheduled(&progress, &stack.metrics_publisher, fixture("schedule/metrics_publisher"), &mut problems).await;
    let mut report_event = fixture("schedule/cost_analyzer");
    // The schedule reports on yesterday; the local day is today, so the event names it.
    report_event["report_date"] = json!(day.format("%Y-%m-%d").to_string());
    report_event["time"] = json!(chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
    let report_out = scheduled(&progress, &stack.cost_analyzer, report_event, &mut problems).await;

    ledger(&stack, &expected, &mut problems).await;
    agent_requests(&stack, &mut problems);
    analytics(&stack, &mut problems).await;
    cost_report(&stack, &expected, day, report_out.as_ref(), &mut problems).await;
    metrics(&stack, metrics_level, &expected, day_started_ms, &mut problems);
    alarms(&stack, &expected, &level, day_started_ms, &mut problems);
    for f in stack.functions() {
        let out = f.output();
        if out.contains(TEST_SIGNING_SECRET) || out.contains(TEST_BOT_TOKEN) || out.contains(JIRA_TOKEN) {
            problems.push(format!("a secret appeared in {}'s log", f.name));
        }
    }

    if serve {
        println!(
            "\nServing. Ask your own question from another terminal:\n  scripts/local-stack ask --url {} --slack {} --moto {} --usage-table {} \"What is our password rotation policy?\"\nCtrl-C stops everything.",
            stack.url,
            emulators().slack.api_base(),
            emulators().moto.endpoint(),
            stack.resources.usage_table
        );
        // Ctrl-C or a plain kill both end it normally, so every function process stops with it.
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    stack.stop();
    progress.say("done");
    if problems.is_empty() {
        println!("\nlocal stack ({backend} backend): everything behaved as expected");
        ExitCode::SUCCESS
    } else {
        println!("\nlocal stack ({backend} backend): {} problem(s):", problems.len());
        for p in &problems {
            println!("  - {p}");
        }
        ExitCode::FAILURE
    }
}

/// The threads as a Slack user sees them: the question, then the bot's answers (with sources).
fn slack_view(steps: &[&Step], problems: &mut Vec<String>) {
    let emu = emulators();
    println!("\n== What Slack shows (each thread: the question, then the bot's answers)");
    let threads = emu.slack.threads();
    let mut expected: BTreeMap<(String, String), (usize, Vec<String>)> = BTreeMap::new();
    for s in steps.iter().filter(|s| !s.retry) {
        if let Some(key) = &s.answer_in {
            let e = &s.body["event"];
            let entry = expected.entry(key.clone()).or_default();
            entry.0 += 1;
            entry.1.push(format!(
                "{}: {}",
                e["user"].as_str().unwrap_or("?"),
                e["text"].as_str().unwrap_or_default().replace("<@UBOT>", "@helpdesk")
            ));
        }
    }
    for ((channel, thread), (n, questions)) in &expected {
        let bot: Vec<&Value> = threads
            .get(&(channel.clone(), thread.clone()))
            .map(|m| m.iter().filter(|m| m.get("bot_id").is_some()).collect())
            .unwrap_or_default();
        println!("#{channel} · thread {thread}");
        for (i, q) in questions.iter().enumerate() {
            println!("  > {q}");
            if let Some(answer) = bot.get(i) {
                for line in answer["text"].as_str().unwrap_or_default().lines().take(10) {
                    println!("  │ {line}");
                }
                println!("  └─");
            }
        }
        if bot.len() != *n {
            problems.push(format!("#{channel} thread {thread}: expected {n} bot answer(s), saw {}", bot.len()));
        }
    }
    let answered: BTreeSet<&(String, String)> = expected.keys().collect();
    for (key, messages) in &threads {
        let bot = messages.iter().filter(|m| m.get("bot_id").is_some()).count();
        if bot > 0 && !answered.contains(key) && key.0 != tests::local_stack::REPORT_CHANNEL {
            problems.push(format!("#{} thread {}: {bot} unexpected bot post(s)", key.0, key.1));
        }
    }
    let budget_told = threads.iter().any(|((c, _), m)| {
        c == "CFINANCE" && m.iter().any(|m| m["text"].as_str().unwrap_or_default().contains("budget"))
    });
    if !budget_told {
        problems.push("the user over budget was not told so".into());
    }
}

/// The agent's side of the action group: the scripted agent cannot call Lambda, so the stack
/// invokes action-group as the agent's service would for the ticket-search turn: Bedrock's
/// action-group event on Classic, the AgentCore Gateway's Lambda-target call on AgentCore.
async fn action_group(progress: &Progress, stack: &LocalStack, problems: &mut Vec<String>) {
    match stack.agent.backend {
        AgentBackend::Classic => classic_action_group(progress, stack, problems).await,
        _ => gateway_action_group(progress, stack, problems).await,
    }
}

/// Bedrock Agents' action-group event for the ticket-search turn, and a my-usage question.
async fn classic_action_group(progress: &Progress, stack: &LocalStack, problems: &mut Vec<String>) {
    println!(
        "\n== Action group (as Bedrock would call it: the ticket-search turn's Jira search, and a my-usage question)"
    );
    let script: Value = std::fs::read_to_string(workspace_root().join("events/agent/action_group.json"))
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or(Value::Null);
    let invocation = script["attempts"][0]["events"]
        .as_array()
        .into_iter()
        .flatten()
        .find_map(|e| e["trace"]["orchestrationTrace"]["invocationInput"]["actionGroupInvocationInput"].as_object())
        .cloned();
    let Some(invocation) = invocation else {
        problems.push("events/agent/action_group.json has no actionGroupInvocationInput".into());
        return;
    };
    let Some(turn) = emulators().agent.requests().into_iter().find(|r| r.input_text.to_lowercase().contains("ticket"))
    else {
        problems.push("the ticket-search turn never reached the agent".into());
        return;
    };
    let mut event = fixture("action-group/search_tickets_openapi");
    event["agent"]["id"] = json!(turn.agent_id);
    event["agent"]["alias"] = json!(turn.agent_alias_id);
    event["sessionId"] = json!(turn.session_id);
    event["inputText"] = json!(turn.input_text);
    event["sessionAttributes"] = json!(turn.session_attributes);
    event["actionGroup"] = invocation["actionGroupName"].clone();
    event["apiPath"] = invocation["apiPath"].clone();
    event["httpMethod"] = json!(invocation["verb"].as_str().unwrap_or("get").to_uppercase());
    event["parameters"] = invocation["parameters"].clone();
    let params: Vec<String> = invocation["parameters"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| format!("{}={}", p["name"].as_str().unwrap_or(""), p["value"].as_str().unwrap_or("")))
        .collect();
    let t = Instant::now();
    let out = stack.action_group.call(event, Duration::from_secs(30)).await;
    progress.done(
        &format!(
            "action-group {} {} {} (session {})",
            invocation["verb"].as_str().unwrap_or("").to_uppercase(),
            invocation["apiPath"].as_str().unwrap_or(""),
            params.join(" "),
            turn.session_id
        ),
        t,
    );
    let response = match out {
        Ok(Outcome::Response(v)) => v,
        other => {
            problems.push(format!("action-group failed: {other:?}"));
            return;
        }
    };
    let r = &response["response"];
    let body: Value = r["responseBody"]["application/json"]["body"]
        .as_str()
        .and_then(|b| serde_json::from_str(b).ok())
        .unwrap_or(Value::Null);
    println!(
        "HTTP {} · JQL sent to Jira: {}",
        r["httpStatusCode"],
        stack.jira.requests().last().map(|q| q.jql.clone()).unwrap_or_default()
    );
    let tickets = body["tickets"].as_array().cloned().unwrap_or_default();
    for t in &tickets {
        println!(
            "  {}  {}  [{}] {}  {}",
            t["key"].as_str().unwrap_or(""),
            t["summary"].as_str().unwrap_or(""),
            t["status"].as_str().unwrap_or(""),
            t["assignee"].as_str().unwrap_or("unassigned"),
            t["url"].as_str().unwrap_or("")
        );
    }
    if r["httpStatusCode"] != 200 || !tickets.iter().any(|t| t["key"] == "ITSUP-4201") {
        problems.push(format!("the ticket search did not find ITSUP-4201: {response}"));
    }
    if stack.jira.requests().iter().any(|q| !q.authorized) {
        problems.push("action-group called Jira without valid credentials".into());
    }

    // "How much have I spent?": the same function reads the rollups token-logging wrote.
    let mut event = fixture("action-group/my_usage_openapi");
    event["agent"]["id"] = json!(stack.agent.agent_id);
    event["agent"]["alias"] = json!(stack.agent.agent_alias_id);
    event["sessionAttributes"]["slack_user_id"] = json!("U01ALICE");
    event["sessionAttributes"]["slack_team_id"] = json!(TEAM);
    let t = Instant::now();
    let out = stack.action_group.call(event, Duration::from_secs(30)).await;
    progress.done("action-group GET /usage/me for U01ALICE", t);
    let usage: Value = match &out {
        Ok(Outcome::Response(v)) => v["response"]["responseBody"]["application/json"]["body"]
            .as_str()
            .and_then(|b| serde_json::from_str(b).ok())
            .unwrap_or(Value::Null),
        _ => Value::Null,
    };
    println!(
        "U01ALICE today: ${} over {} turns; this month so far: ${} over {} turns",
        usage["today"]["cost_usd"],
        usage["today"]["turns"],
        usage["this_month"]["cost_usd"],
        usage["this_month"]["turns"]
    );
    if usage["today"]["turns"] != 2 || usage["today"]["cost_usd"].as_f64().unwrap_or(0.0) <= 0.0 {
        problems.push(format!("my-usage for U01ALICE should show today's 2 priced turns: {out:?}"));
    }
}

/// The tool call the ticket-search script of an AgentCore backend made: the tool's name as the
/// agent saw it (`<target>___<tool>`) and its arguments (the streamed toolUse input, joined).
fn scripted_tool_call(backend: AgentBackend) -> Result<(String, Value), String> {
    let dir = if backend == AgentBackend::Harness { "harness" } else { "runtime" };
    let path = workspace_root().join(format!("events/{dir}/action_group.json"));
    let script: Value = std::fs::read_to_string(&path)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .ok_or_else(|| format!("{} is missing or not JSON", path.display()))?;
    let (mut name, mut input) = (None, String::new());
    for event in script["attempts"][0]["events"].as_array().into_iter().flatten() {
        // A runtime agent (Strands) relays the model's events under `event`.
        let e = event.pointer("/sse/event").unwrap_or(event);
        if let Some(n) = e.pointer("/contentBlockStart/start/toolUse/name").and_then(Value::as_str) {
            if name.is_some() {
                break;
            }
            name = Some(n.to_string());
        }
        if let Some(piece) = e.pointer("/contentBlockDelta/delta/toolUse/input").and_then(Value::as_str) {
            input.push_str(piece);
        }
    }
    let name = name.ok_or_else(|| format!("{} has no toolUse", path.display()))?;
    let arguments =
        serde_json::from_str(&input).map_err(|e| format!("the toolUse input of {}: {e}", path.display()))?;
    Ok((name, arguments))
}

/// The Name of template.yaml's ToolsGatewayTarget: the prefix of the tools the gateway offers.
fn gateway_target_name() -> Result<String, String> {
    let template = tests::template::Template::load(&workspace_root().join("template.yaml"))?;
    let target = template
        .resources_of_type("AWS::BedrockAgentCore::GatewayTarget")
        .into_iter()
        .find_map(|(_, r)| r.get("Properties")?.get("Name").map(|n| template.resolve(n)))
        .ok_or("template.yaml has no AWS::BedrockAgentCore::GatewayTarget with a Name")??;
    Ok(target)
}

/// The tool result of a gateway call (an error result's text, or the answer).
fn tool_result(out: &Result<Outcome, String>) -> Result<Value, String> {
    match out {
        Ok(Outcome::Response(v)) if v["isError"] == true => {
            Err(v["content"][0]["text"].as_str().unwrap_or_default().to_string())
        }
        Ok(Outcome::Response(v)) => Ok(v.clone()),
        other => Err(format!("the Lambda call failed: {other:?}")),
    }
}

/// The AgentCore Gateway's side of the ticket-search turn: the tool the script called, sent as
/// the gateway sends a Lambda target's calls (the arguments as the event, the tool name
/// `<target>___<tool>` in the client context's bedrockAgentCoreToolName), with the target the
/// template creates. A harness calls the stack's gateway; a runtime agent is the operator's own,
/// and calls the same gateway when it uses the stack's tools (as its script's toolUse does).
async fn gateway_action_group(progress: &Progress, stack: &LocalStack, problems: &mut Vec<String>) {
    let backend = stack.agent.backend;
    println!(
        "\n== Action group (as the AgentCore Gateway would call its Lambda target: the ticket-search turn's \
         Jira search, and getMyUsage)"
    );
    let prompt_asked = emulators()
        .agent
        .agentcore_requests()
        .into_iter()
        .any(|r| r.backend == backend && r.prompt.to_lowercase().contains("ticket"));
    if !prompt_asked {
        problems.push("the ticket-search turn never reached the agent".into());
        return;
    }
    let (scripted_name, arguments) = match scripted_tool_call(backend) {
        Ok(call) => call,
        Err(e) => return problems.push(e),
    };
    let target = match gateway_target_name() {
        Ok(t) => t,
        Err(e) => return problems.push(e),
    };
    let tool = scripted_name.rsplit("___").next().unwrap_or(&scripted_name).to_string();
    let call = |tool: &str| {
        let mut context = fixture("action-group-gateway/client_context");
        context["custom"]["bedrockAgentCoreToolName"] = json!(format!("{target}___{tool}"));
        context
    };
    let t = Instant::now();
    let out =
        stack.action_group.call_with_client_context(arguments.clone(), call(&tool), Duration::from_secs(30)).await;
    progress.done(&format!("action-group {target}___{tool} {arguments} (the script called {scripted_name})"), t);
    let answer = match tool_result(&out) {
        Ok(v) => v,
        Err(e) => return problems.push(format!("the gateway's {target}___{tool} call failed: {e}")),
    };
    println!("JQL sent to Jira: {}", stack.jira.requests().last().map(|q| q.jql.clone()).unwrap_or_default());
    let tickets = answer["tickets"].as_array().cloned().unwrap_or_default();
    for t in &tickets {
        println!(
            "  {}  {}  [{}] {}  {}",
            t["key"].as_str().unwrap_or(""),
            t["summary"].as_str().unwrap_or(""),
            t["status"].as_str().unwrap_or(""),
            t["assignee"].as_str().unwrap_or("unassigned"),
            t["url"].as_str().unwrap_or("")
        );
    }
    if !tickets.iter().any(|t| t["key"] == "ITSUP-4201") {
        problems.push(format!("the gateway's ticket search did not find ITSUP-4201: {answer}"));
    }
    if stack.jira.requests().iter().any(|q| !q.authorized) {
        problems.push("action-group called Jira without valid credentials".into());
    }

    // No Slack identity reaches a gateway target, so the usage tool refuses rather than guess
    // whose usage to show (the Classic day answers it from the session's Slack user).
    let t = Instant::now();
    let out = stack
        .action_group
        .call_with_client_context(json!({"period": "today"}), call("getMyUsage"), Duration::from_secs(30))
        .await;
    progress.done(&format!("action-group {target}___getMyUsage"), t);
    match tool_result(&out) {
        Err(text) if text == action_group::handler::USAGE_REFUSED => {
            println!("getMyUsage refused, as it must be: {text}")
        }
        other => problems.push(format!("getMyUsage through the gateway should be refused: {other:?}")),
    }
}

/// Every item of the usage table (small in a local run).
async fn usage_items(
    sdk: &aws_config::SdkConfig,
    table: &str,
) -> Vec<std::collections::HashMap<String, AttributeValue>> {
    let ddb = aws_sdk_dynamodb::Client::new(sdk);
    let mut items = Vec::new();
    let mut start = None;
    loop {
        let Ok(page) = ddb.scan().table_name(table).set_exclusive_start_key(start).send().await else { break };
        items.extend(page.items.unwrap_or_default());
        start = page.last_evaluated_key;
        if start.is_none() {
            break;
        }
    }
    items
}

fn s(item: &std::collections::HashMap<String, AttributeValue>, k: &str) -> String {
    match item.get(k) {
        Some(AttributeValue::S(v)) | Some(AttributeValue::N(v)) => v.clone(),
        _ => String::new(),
    }
}

/// What token-logging wrote: one priced ledger item per turn, and the users' day rollups; the
/// day's tokens and cost, checked against what the agent's scripts reported.
async fn ledger(stack: &LocalStack, expected: &Expected, problems: &mut Vec<String>) {
    println!(
        "\n== Token ledger (token-logging: usage queue -> priced turns in DynamoDB; the {} backend answered)",
        stack.agent.backend
    );
    let sdk = emulators().moto.sdk_config();
    let items = usage_items(&sdk, &stack.resources.usage_table).await;
    let today = chrono::Utc::now().format("%Y-%m-%d").to_string();
    let mut turns: Vec<_> = items
        .iter()
        .filter(|i| s(i, "sk") == shared::aws::ledger::LEDGER_SK && s(i, "timestamp").starts_with(&today))
        .collect();
    turns.sort_by_key(|i| s(i, "timestamp"));
    for t in &turns {
        let models: BTreeSet<String> = match t.get("calls") {
            Some(AttributeValue::L(calls)) => {
                calls.iter().filter_map(|c| c.as_m().ok()).map(|c| s(c, "model_id")).collect()
            }
            _ => BTreeSet::new(),
        };
        let cost = match t.get("cost_usd") {
            Some(AttributeValue::N(c)) => format!("${:.4}", c.parse::<f64>().unwrap_or_default()),
            _ => format!(
                "UNPRICED ({} tokens unpriced, priced part ${:.4})",
                s(t, "unpriced_tokens"),
                s(t, "priced_cost_usd").parse::<f64>().unwrap_or_default()
            ),
        };
        println!(
            "  {}  {:<10} {:>6}+{:<5} tokens  {}  [{}]",
            s(t, "timestamp").get(11..19).unwrap_or(""),
            s(t, "user_id"),
            s(t, "input_tokens"),
            s(t, "output_tokens"),
            cost,
            models.into_iter().collect::<Vec<_>>().join(", ")
        );
    }
    let rollups = items.iter().filter(|i| s(i, "sk").starts_with("DAY#") || s(i, "sk").starts_with("MONTH#")).count();
    println!(
        "{} turns today; {} ledger items in all with the week before, and {} rollup items (user / day / month / agent x model / hour)",
        turns.len(),
        items.iter().filter(|i| s(i, "sk") == shared::aws::ledger::LEDGER_SK).count(),
        items.iter().filter(|i| s(i, "sk") != shared::aws::ledger::LEDGER_SK).count()
    );
    let returned = stack.token_logging.output().lines().filter(|l| l.contains("returned to the queue")).count();
    if returned > 0 {
        // Seen against moto: some TransactWriteItems answer an unclassified error; the retry
        // path that follows is the product's own (the ledger check below still holds).
        println!(
            "note: {returned} turn write(s) failed (moto answered TransactWriteItems with an error); \
             token-logging returned them to the queue and wrote them on redelivery"
        );
    }
    if turns.len() != expected.ledger_turns {
        problems.push(format!(
            "expected {} turns in the ledger ({} backend), saw {}",
            expected.ledger_turns,
            stack.agent.backend,
            turns.len()
        ));
    }
    if rollups == 0 {
        problems.push("token-logging wrote no rollups".into());
    }
    let unpriced: BTreeSet<String> = turns
        .iter()
        .filter(|t| !matches!(t.get("cost_usd"), Some(AttributeValue::N(_))) && s(t, "unpriced_tokens") != "0")
        .map(|t| s(t, "user_id"))
        .collect();
    let want: BTreeSet<String> = expected.unpriced_users.iter().map(|u| u.to_string()).collect();
    if unpriced != want {
        problems.push(format!(
            "unpriced turns (no cost, unpriced tokens counted; {UNPRICED_MODEL} is not in the price table): \
             expected those of {want:?}, saw {unpriced:?}"
        ));
    }
    let unreported: Vec<String> = turns
        .iter()
        .filter(|t| matches!(t.get("tokens_unreported"), Some(AttributeValue::Bool(true))))
        .map(|t| s(t, "user_id"))
        .collect();
    if !unreported.is_empty() {
        problems.push(format!(
            "every agent of the day reports its usage, yet turns of {unreported:?} say tokens_unreported"
        ));
    }
    if let Some(other) = turns
        .iter()
        .find(|t| s(t, "agent_backend") != stack.agent.backend.as_str() || s(t, "agent_id") != stack.agent.agent_id)
    {
        problems.push(format!(
            "a turn of the day was not recorded for the {} agent {}: {} {}",
            stack.agent.backend,
            stack.agent.agent_id,
            s(other, "agent_backend"),
            s(other, "agent_id")
        ));
    }
    day_totals(stack, &turns, problems);
}

/// Tokens of one kind per call: input, output, cache read, cache write.
type Tokens = [u64; 4];

/// The day's tokens and cost from the ledger, and the same from the agent's scripts: every
/// request the scripted agent recorded, with the usage its script reported, priced with the
/// embedded table. They must agree: a turn lost, a call counted twice or priced wrong shows.
fn day_totals(
    stack: &LocalStack,
    turns: &[&std::collections::HashMap<String, AttributeValue>],
    problems: &mut Vec<String>,
) {
    let num = |i: &std::collections::HashMap<String, AttributeValue>, k: &str| s(i, k).parse::<f64>().unwrap_or(0.0);
    let mut ledger_tokens: Tokens = [0; 4];
    let (mut ledger_calls, mut ledger_cost, mut ledger_unpriced) = (0usize, 0.0, 0u64);
    for t in turns {
        for (n, k) in
            ledger_tokens.iter_mut().zip(["input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens"])
        {
            *n += num(t, k) as u64;
        }
        if let Some(AttributeValue::L(calls)) = t.get("calls") {
            ledger_calls += calls.len();
        }
        ledger_cost += num(t, "priced_cost_usd");
        ledger_unpriced += num(t, "unpriced_tokens") as u64;
    }
    let scripted = match scripted_turns(&stack.agent) {
        Ok(s) => s,
        Err(e) => return problems.push(format!("reading the agent's scripts: {e}")),
    };
    let prices = shared::pricing::PriceTable::embedded();
    let mut script_tokens: Tokens = [0; 4];
    let (mut script_calls, mut script_cost, mut script_unpriced) = (0usize, 0.0, 0u64);
    for call in scripted.iter().flat_map(|t| &t.calls) {
        script_calls += 1;
        for (n, v) in script_tokens.iter_mut().zip([
            call.input_tokens,
            call.output_tokens,
            call.cache_read_tokens,
            call.cache_write_tokens,
        ]) {
            *n += v;
        }
        let (_, priced, unpriced) = prices.turn_cost(std::slice::from_ref(call));
        script_cost += priced;
        script_unpriced += unpriced;
    }
    let show =
        |t: &Tokens| format!("{} input + {} output + {} cache read + {} cache write tokens", t[0], t[1], t[2], t[3]);
    println!(
        "The day on the {} backend: {} turns, {} model calls, {}, ${ledger_cost:.6} priced{} (the ledger)",
        stack.agent.backend,
        turns.len(),
        ledger_calls,
        show(&ledger_tokens),
        if ledger_unpriced > 0 { format!(" + {ledger_unpriced} tokens unpriced") } else { String::new() }
    );
    let mut by_script: BTreeMap<&str, usize> = BTreeMap::new();
    for t in &scripted {
        *by_script.entry(t.script.as_str()).or_default() += 1;
    }
    let answered: Vec<String> = by_script.iter().map(|(k, n)| format!("{k} x{n}")).collect();
    println!(
        "The agent's scripts reported: {script_calls} model calls, {}, ${script_cost:.6} priced{} over {} requests ({})",
        show(&script_tokens),
        if script_unpriced > 0 { format!(" + {script_unpriced} tokens unpriced") } else { String::new() },
        scripted.len(),
        answered.join(", ")
    );
    if (ledger_tokens, ledger_calls, ledger_unpriced) != (script_tokens, script_calls, script_unpriced)
        || (ledger_cost - script_cost).abs() > 1e-6
    {
        problems.push(format!(
            "the ledger's day ({ledger_calls} calls, {}, ${ledger_cost:.6}, {ledger_unpriced} unpriced) is not what \
             the agent reported ({script_calls} calls, {}, ${script_cost:.6}, {script_unpriced} unpriced)",
            show(&ledger_tokens),
            show(&script_tokens)
        ));
    }
}

/// Only the configured backend's operation was asked: a worker that called another agent
/// service would answer from the wrong agent.
fn agent_requests(stack: &LocalStack, problems: &mut Vec<String>) {
    let agent = &emulators().agent;
    let backend = stack.agent.backend;
    let classic = agent.requests().len();
    let agentcore = agent.agentcore_requests();
    let mine = agentcore.iter().filter(|r| r.backend == backend).count();
    let others = agentcore.len() - mine;
    let asked = if backend == AgentBackend::Classic { classic } else { mine };
    println!(
        "The scripted agent was asked {asked} time(s) through the {backend} backend's operation ({} elsewhere)",
        if backend == AgentBackend::Classic { others } else { others + classic }
    );
    if backend != AgentBackend::Classic && classic > 0 {
        problems.push(format!("the {backend} worker called InvokeAgent {classic} time(s)"));
    }
    if others > 0 {
        problems.push(format!("the {backend} worker called another AgentCore operation {others} time(s)"));
    }
    if let (Some(arn), false) = (stack.agent.arn, backend == AgentBackend::Classic) {
        if let Some(r) =
            agentcore.iter().find(|r| r.arn != arn || r.qualifier.as_deref() != Some(&stack.agent.agent_alias_id))
        {
            problems.push(format!("the worker invoked {} at {:?}, not {arn}", r.arn, r.qualifier));
        }
    }
}

/// The analytics bucket and the seed's queries over it.
async fn analytics(stack: &LocalStack, problems: &mut Vec<String>) {
    let sdk = emulators().moto.sdk_config();
    println!("\n== Analytics bucket (Firehose -> S3, newline-delimited JSON)");
    let objects = read_objects(&sdk, &stack.resources.bucket, "events/").await.unwrap_or_default();
    let events: Vec<Value> = objects
        .iter()
        .flat_map(|(_, t)| t.lines().filter_map(|l| serde_json::from_str(l).ok()).collect::<Vec<_>>())
        .collect();
    let feedback = read_objects(&sdk, &stack.resources.bucket, "feedback/").await.unwrap_or_default();
    println!(
        "{} objects, {} events under {}; {} feedback object(s)",
        objects.len(),
        events.len(),
        objects.first().map(|(k, _)| k.rsplit_once('/').map_or(k.as_str(), |(d, _)| d)).unwrap_or("events/"),
        feedback.len()
    );
    for e in &events {
        println!(
            "  {} {:<10} {:<17} kbs={} sources={} models={} tokens={}+{} cost={} {}ms",
            e["timestamp"].as_str().unwrap_or("").get(11..19).unwrap_or(""),
            e["user_id"].as_str().unwrap_or(""),
            e["outcome"].as_str().unwrap_or(""),
            e["knowledge_bases"],
            e["sources"].as_array().map_or(0, Vec::len),
            e["model_ids"],
            e["input_tokens"],
            e["output_tokens"],
            e["estimated_cost_usd"],
            e["latency_ms"]
        );
    }
    if events.len() != 16 {
        problems.push(format!("expected 16 analytics events (one per answered or refused turn), saw {}", events.len()));
    }
    let backend = stack.agent.backend.as_str();
    let elsewhere = events.iter().filter(|e| e["agent_backend"] != backend).count();
    if elsewhere > 0 {
        problems.push(format!("{elsewhere} analytics event(s) do not say agent_backend {backend}"));
    }
    if feedback.is_empty() {
        problems.push("no feedback reached the analytics bucket".into());
    }
    seed_queries(&objects, problems);
}

/// The daily report cost-analyzer wrote to S3 and posted to Slack, and its chart.
async fn cost_report(
    stack: &LocalStack,
    expected: &Expected,
    day: chrono::NaiveDate,
    out: Option<&Value>,
    problems: &mut Vec<String>,
) {
    let sdk = emulators().moto.sdk_config();
    let key = format!("reports/daily/{}.json", day.format("%Y-%m-%d"));
    println!(
        "\n== The day's cost report (cost-analyzer: s3://{}/{key} and #{})",
        stack.resources.bucket, stack.report_channel
    );
    let report: Value = read_objects(&sdk, &stack.resources.bucket, &key)
        .await
        .ok()
        .and_then(|o| o.into_iter().find(|(k, _)| k == &key))
        .and_then(|(_, body)| serde_json::from_str(&body).ok())
        .unwrap_or(Value::Null);
    if report.is_null() {
        problems.push(format!("the cost report {key} is missing"));
        return;
    }
    let spend = |v: &Value| {
        let unpriced = v["unpriced_tokens"].as_u64().unwrap_or(0);
        let cost = v["cost_usd"].as_f64().unwrap_or_default();
        format!(
            "{} · {} turns · {} in + {} out tokens{}",
            if cost == 0.0 && unpriced > 0 { "unpriced".to_string() } else { format!("${cost:.4}") },
            v["turns"],
            v["input_tokens"],
            v["output_tokens"],
            match v["unpriced_tokens"].as_u64() {
                Some(n) if n > 0 => format!(" · {n} tokens UNPRICED"),
                _ => String::new(),
            }
        )
    };
    println!("Total   {}", spend(&report["totals"]));
    for a in report["by_agent"].as_array().into_iter().flatten() {
        println!(
            "Agent   {} ({}): {} · {} users",
            a["name"].as_str().unwrap_or(""),
            a["agent_id"].as_str().unwrap_or(""),
            spend(a),
            a["unique_users"]
        );
    }
    for m in report["by_model"].as_array().into_iter().flatten() {
        println!("Model   {:<42} {}", m["model"].as_str().unwrap_or(""), spend(m));
    }
    for u in report["top_users"].as_array().into_iter().flatten().take(5) {
        println!("User    {:<10} {}", u["user_id"].as_str().unwrap_or(""), spend(u));
    }
    let unpriced: Vec<String> = report["unpriced_models"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|m| m.as_str().map(str::to_string))
        .collect();
    println!("Unpriced models: {}", if unpriced.is_empty() { "none".to_string() } else { unpriced.join(", ") });
    if let Some(sat) = report.get("satisfaction").filter(|s| !s.is_null()) {
        println!("Satisfaction: {} up, {} down (score {})", sat["positive"], sat["negative"], sat["score"]);
    }
    if report["totals"]["turns"].as_u64() != Some(expected.ledger_turns as u64) {
        problems
            .push(format!("the report counts {} turns, expected {}", report["totals"]["turns"], expected.ledger_turns));
    }
    let unpriced_tokens = report["totals"]["unpriced_tokens"].as_u64().unwrap_or(0);
    let shows_unpriced = unpriced_tokens > 0 && unpriced == [UNPRICED_MODEL];
    if expected.unpriced_users.is_empty() && (unpriced_tokens > 0 || !unpriced.is_empty()) {
        problems.push(format!("the report shows unpriced tokens ({unpriced_tokens}, models {unpriced:?}); every call of the day is priced"));
    }
    if !expected.unpriced_users.is_empty() && !shows_unpriced {
        problems.push(format!("the report does not show {UNPRICED_MODEL}'s unpriced tokens alone: {unpriced_tokens} tokens of {unpriced:?}"));
    }
    let agents: Vec<&str> =
        report["by_agent"].as_array().into_iter().flatten().filter_map(|a| a["agent_id"].as_str()).collect();
    if agents != [stack.agent.agent_id.as_str()] {
        problems.push(format!("the report's agents are {agents:?}, expected only {}", stack.agent.agent_id));
    }

    let slack = &emulators().slack;
    let summary = slack
        .calls_for(&stack.report_channel)
        .into_iter()
        .find(|c| c.method == "chat.postMessage")
        .map(|c| c.param("text").to_string());
    match summary {
        Some(text) => println!("Posted to #{}: {text} (+ Block Kit sections)", stack.report_channel),
        None => problems.push(format!("the report was not posted to #{}", stack.report_channel)),
    }
    let file_id = out.and_then(|o| o["chart_file_id"].as_str()).unwrap_or_default();
    match slack.uploaded(file_id) {
        Some((name, png)) if png.starts_with(b"\x89PNG\r\n\x1a\n") => {
            let dir = workspace_root().join("target/local-stack");
            let path = dir.join(&name);
            match std::fs::create_dir_all(&dir).and_then(|_| std::fs::write(&path, &png)) {
                Ok(()) => println!(
                    "Chart: {} ({} bytes, shared in #{} as {name})",
                    path.display(),
                    png.len(),
                    stack.report_channel
                ),
                Err(e) => problems.push(format!("writing the chart: {e}")),
            }
        }
        Some((name, _)) => problems.push(format!("the chart {name} is not a PNG")),
        None => problems.push("the report's chart was not uploaded to Slack".into()),
    }
}

fn metrics(
    stack: &LocalStack,
    level: shared::metric_names::MetricsLevel,
    expected: &Expected,
    from_ms: i64,
    problems: &mut Vec<String>,
) {
    println!("\n== The day's metrics (EMF lines the functions printed; metrics-publisher's PutMetricData)");
    for f in stack.functions() {
        let (calls, errors) = f.counts();
        let mut totals: Vec<(String, f64)> = emf_totals(&f.output(), from_ms).into_iter().collect();
        totals.sort_by(|a, b| a.0.cmp(&b.0));
        println!("{} ({calls} invocations, {errors} errors):", f.name);
        if totals.is_empty() && f.name != "metrics-publisher" {
            println!("  (no EMF series at MonitoringLevel {})", level.as_str());
        }
        for (k, v) in &totals {
            println!("  {k}: {}", round(*v));
        }
    }
    // The last run's values (the first ran before the day began).
    let published = stack.published_metrics();
    let last = published.iter().map(|p| p.at_ms).max().unwrap_or_default();
    println!("metrics-publisher, PutMetricData ({} calls; the last run's values):", stack.put_metric_data_calls());
    for p in published.iter().filter(|p| p.at_ms == last) {
        let dims: Vec<String> = p.dimensions.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let dims = if dims.is_empty() { String::new() } else { format!(" {{{}}}", dims.join(", ")) };
        println!("  {}{dims}: {}", p.metric, round(p.value));
    }
    // What the day must have counted, where the level publishes the series (dimensionless).
    let ingress = emf_totals(&stack.ingress.output(), from_ms);
    let tokens = emf_totals(&stack.token_logging.output(), from_ms);
    for (function, totals, metric) in [
        ("slack-ingress", &ingress, "SignatureFailures"),
        ("slack-ingress", &ingress, "DuplicateEvents"),
        ("slack-ingress", &ingress, "SchemaDrift"),
        ("token-logging", &tokens, "UnpricedTokens"),
        ("token-logging", &tokens, "EstimatedCost"),
    ] {
        let counted = totals.get(metric).copied().unwrap_or(0.0) > 0.0;
        // Only a model missing from the price table is counted in UnpricedTokens (none on the
        // harness: see Expected::of).
        if metric == "UnpricedTokens" && expected.unpriced_users.is_empty() {
            if counted {
                problems.push(format!("token-logging counted UnpricedTokens on the {} backend", stack.agent.backend));
            }
            continue;
        }
        if level.publishes(metric, &[]) && !counted {
            problems.push(format!("expected {function} to count {metric} (published at {})", level.as_str()));
        }
        if !level.publishes(metric, &[]) && counted {
            problems.push(format!("{function} published {metric}, which {} leaves out", level.as_str()));
        }
    }
    if stack.put_metric_data_calls() < 2 {
        problems.push("metrics-publisher did not publish on both schedule runs".into());
    }
}

fn round(v: f64) -> String {
    if v.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.4}")
    }
}

/// The template's alarms of the default monitoring level, judged on the day's datapoints.
fn alarms(stack: &LocalStack, expected: &Expected, level: &str, from_ms: i64, problems: &mut Vec<String>) {
    // The parameters as deployed: AgentId and AgentAliasId name the Classic agent; an AgentCore
    // deployment sets its ARN instead, and the per-agent alarms derive the id the worker records.
    let arn_parameter = match stack.agent.backend {
        AgentBackend::Harness => "HarnessArn",
        _ => "AgentRuntimeArn",
    };
    let evaluator = match AlarmEvaluator::load(
        &workspace_root().join("template.yaml"),
        &[
            ("AgentBackend", stack.agent.backend.as_str()),
            ("AgentId", AGENT_ID),
            ("AgentAliasId", AGENT_ALIAS_ID),
            (arn_parameter, stack.agent.arn.unwrap_or_default()),
            ("MetricsNamespace", "BedrockUsage"),
        ],
        Some(level),
    ) {
        Ok(e) => e,
        Err(e) => {
            problems.push(format!("reading the alarms of template.yaml: {e}"));
            return;
        }
    };
    let day: Vec<_> = stack.datapoints().into_iter().filter(|p| p.at_ms >= from_ms).collect();
    let verdicts = evaluator.evaluate(&day, from_ms, chrono::Utc::now().timestamp_millis());
    println!(
        "\n== Alarms that would fire (template.yaml, monitoring level {}: {} alarms{})",
        evaluator.level,
        verdicts.len(),
        if evaluator.excluded.is_empty() {
            String::new()
        } else {
            format!(", {} left out at this level", evaluator.excluded.len())
        }
    );
    let show = |v: &AlarmVerdict, mark: &str| println!("  {mark} {:<34} {}", v.logical_id, v.why);
    for v in verdicts.iter().filter(|v| v.fires) {
        show(v, "FIRES ");
    }
    for v in verdicts.iter().filter(|v| v.evaluated && !v.fires) {
        show(v, "ok    ");
    }
    for v in verdicts.iter().filter(|v| !v.evaluated) {
        show(v, "n/a   ");
    }
    let firing: BTreeSet<&str> = verdicts.iter().filter(|v| v.fires).map(|v| v.logical_id.as_str()).collect();
    let present: BTreeSet<&str> = verdicts.iter().map(|v| v.logical_id.as_str()).collect();
    // The per-agent latency alarms must see the worker's APILatency on every backend.
    for id in ["HighLatencyAlarm", "LatencyP95Alarm"] {
        if let Some(v) = verdicts.iter().find(|v| v.logical_id == id) {
            if !v.evaluated || v.why.contains("no data") {
                problems.push(format!(
                    "{id} sees no APILatency of {} ({}): {}",
                    stack.agent.agent_id, stack.agent.backend, v.why
                ));
            }
        }
    }
    let want: BTreeSet<&str> = expected.firing.iter().copied().filter(|a| present.contains(a)).collect();
    if firing != want {
        problems.push(format!("alarms ({} backend): expected {want:?} to fire, got {firing:?}", stack.agent.backend));
    }
    let elsewhere: Vec<&str> = expected.firing.iter().copied().filter(|a| !present.contains(a)).collect();
    if !elsewhere.is_empty() {
        println!(
            "  ({} would fire at MonitoringLevel=full, which deploys them: scripts/local-stack --monitoring-level full)",
            elsewhere.join(", ")
        );
    }
}

/// `ask --url URL --slack API_BASE [--moto ENDPOINT --usage-table TABLE] "question"`: signs and
/// posts a DM, shows the answer, then its cost once token-logging has priced it.
async fn ask(args: &[String]) -> ExitCode {
    let flag = |name: &str| args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned();
    let (Some(url), Some(slack)) = (flag("--url"), flag("--slack")) else {
        eprintln!("usage: scripts/local-stack ask --url URL --slack SLACK_API_BASE [--moto URL --usage-table NAME] \"question\"");
        return ExitCode::FAILURE;
    };
    let question = args.last().cloned().unwrap_or_default();
    // Microseconds keep two questions asked in the same second apart (ts is the event's id).
    let now = chrono::Utc::now();
    let ts = format!("{}.{:06}", now.timestamp(), now.timestamp_subsec_micros());
    let channel = "DASK";
    let body = json!({
        "type": "event_callback", "team_id": TEAM, "event_id": format!("EvASK{}", ts.replace('.', "")),
        "authorizations": [{"user_id": "UBOT", "is_bot": true, "team_id": TEAM}],
        "event": {"type": "message", "channel_type": "im", "channel": channel, "user": "ULOCAL", "text": question, "ts": ts},
    });
    let http = reqwest::Client::new();
    match post(&http, &url, &body.to_string(), TEST_SIGNING_SECRET, false).await {
        Ok((200, _)) => {}
        other => {
            eprintln!("the endpoint did not accept the question: {other:?}");
            return ExitCode::FAILURE;
        }
    }
    let mut answered = false;
    for _ in 0..60 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let replies = http
            .get(format!("{slack}/conversations.replies?channel={channel}&ts={ts}"))
            .bearer_auth(TEST_BOT_TOKEN)
            .send()
            .await;
        let Ok(resp) = replies else { continue };
        let v: Value = resp.json().await.unwrap_or(Value::Null);
        let answers: Vec<&str> = v["messages"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|m| m.get("bot_id").is_some())
            .filter_map(|m| m["text"].as_str())
            .collect();
        if !answers.is_empty() {
            for a in answers {
                println!("{a}\n");
            }
            answered = true;
            break;
        }
    }
    if !answered {
        eprintln!("no answer within 30 s");
        return ExitCode::FAILURE;
    }
    let (Some(moto), Some(table)) = (flag("--moto"), flag("--usage-table")) else {
        println!("(pass --moto and --usage-table, as --serve prints them, to see what the answer cost)");
        return ExitCode::SUCCESS;
    };
    let sdk = tests::moto::sdk_config_for(&moto);
    for _ in 0..30 {
        let items = usage_items(&sdk, &table).await;
        let turn = items.iter().find(|i| {
            s(i, "sk") == shared::aws::ledger::LEDGER_SK && s(i, "user_id") == "ULOCAL" && s(i, "thread_id") == ts
        });
        if let Some(t) = turn {
            let cost = match t.get("cost_usd") {
                Some(AttributeValue::N(c)) => format!("${:.6}", c.parse::<f64>().unwrap_or_default()),
                _ => format!("unpriced ({} tokens of a model missing from the price table)", s(t, "unpriced_tokens")),
            };
            println!(
                "cost: {cost} for {} input + {} output tokens (token-logging's ledger)",
                s(t, "input_tokens"),
                s(t, "output_tokens")
            );
            return ExitCode::SUCCESS;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    eprintln!("the answer's usage was not priced within 15 s");
    ExitCode::FAILURE
}

/// The seed's three Athena queries, unchanged, answered by the embedded SQL engine (DuckDB) over
/// the objects Firehose delivered, read with the Glue table's columns from template.yaml.
fn seed_queries(objects: &[(String, String)], problems: &mut Vec<String>) {
    println!("\n== The seed's three queries, run by DuckDB over the delivered objects (Athena's SQL, unchanged)");
    let answer = || -> Result<Vec<Result<tests::sql::Rows, String>>, String> {
        let root = workspace_root().join(format!("target/tmp/local-stack-sql-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(root.join("events")).map_err(|e| e.to_string())?;
        let mut paths = Vec::new();
        for (i, (_, body)) in objects.iter().enumerate() {
            let path = root.join(format!("events/object-{i}.json"));
            std::fs::write(&path, body).map_err(|e| e.to_string())?;
            paths.push(path);
        }
        let columns = SqlTemplate::load().map_err(|e| e.to_string())?.glue_columns("EventsTable", false)?;
        let archive = Archive { root: root.clone(), layout: Layout::SeedJson, objects: paths, columns };
        let queries: Vec<(String, String)> =
            SEED_QUERIES.iter().map(|(id, q)| (id.to_string(), q.to_string())).collect();
        let results =
            DuckDb::locate().map_err(|e| e.to_string())?.query(&archive.setup().map_err(|e| e.to_string())?, &queries);
        let _ = std::fs::remove_dir_all(&root);
        results.map_err(|e| e.to_string())
    };
    match answer() {
        Err(e) => problems.push(format!("the seed's queries could not run: {e}")),
        Ok(results) => {
            for ((id, sql), result) in SEED_QUERIES.iter().zip(results) {
                println!("-- {id}: {}", sql.lines().next().unwrap_or_default());
                match result {
                    Err(e) => problems.push(format!("seed query {id} failed: {e}")),
                    Ok(rows) => {
                        println!("   {}", rows.columns.join(" | "));
                        for row in rows.rows.iter().take(6) {
                            let cells: Vec<String> = row
                                .iter()
                                .map(|v| v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string()))
                                .map(|c| {
                                    if c.len() > 90 {
                                        format!("{}...", &c[..c.char_indices().nth(87).map_or(c.len(), |(i, _)| i)])
                                    } else {
                                        c
                                    }
                                })
                                .collect();
                            println!("   {}", cells.join(" | "));
                        }
                        if rows.rows.len() > 6 {
                            println!("   ({} rows)", rows.rows.len());
                        }
                        if *id == "most_active" && rows.rows.len() < 10 {
                            problems.push(format!(
                                "the most-active-users query found {} users, expected at least 10",
                                rows.rows.len()
                            ));
                        }
                    }
                }
            }
        }
    }
}
