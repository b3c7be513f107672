//! `scripts/local-stack`: the whole gateway on this machine, then a realistic day of signed Slack
//! traffic through its HTTP endpoint, and a readable account of what happened. Exits 0 when
//! everything behaved as expected. `--serve` keeps it running; `ask` posts a signed question.

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::time::Duration;

use serde_json::{json, Value};
use tests::harness::emulators;
use tests::local_stack::{emf_totals, LocalStack, Progress};
use tests::resources::{read_objects, seed_spend, TEST_BOT_TOKEN, TEST_SIGNING_SECRET};
use tests::slack_events::{body_of, fixture};
use tests::sql::{Archive, DuckDb, Layout, Template as SqlTemplate, SEED_QUERIES};

const DAILY_BUDGET_USD: f64 = 1.0;

struct Step {
    what: &'static str,
    fixture: &'static str,
    edit: fn(&mut Value),
    retry: bool,
    secret: &'static str,
    expect_status: u16,
}

fn steps() -> Vec<Step> {
    fn none(_: &mut Value) {}
    fn mention(b: &mut Value) {
        b["event_id"] = json!("EvLOCAL01");
    }
    fn follow_up(b: &mut Value) {
        b["event_id"] = json!("EvLOCAL03");
    }
    fn drifted(b: &mut Value) {
        b["event_id"] = json!("EvLOCAL07");
        b["event"]["ts"] = json!("1713536000.000100");
        b["event"].as_object_mut().map(|e| e.remove("user"));
    }
    fn over_budget(b: &mut Value) {
        b["event_id"] = json!("EvLOCAL08");
        b["event"]["user"] = json!("UOVERBUDGET");
        b["event"]["channel"] = json!("CFINANCE");
        b["event"]["text"] = json!("<@UBOT> compare our Q3 and Q4 cloud spend");
    }
    fn throttled(b: &mut Value) {
        b["event_id"] = json!("EvLOCAL09");
        b["event"]["channel"] = json!("CSUPPORT");
        b["event"]["ts"] = json!("1713536100.000100");
        b["event"]["text"] = json!("<@UBOT> are you busy? what is the VPN setup?");
    }
    fn multi(b: &mut Value) {
        b["event_id"] = json!("EvLOCAL10");
        b["event"]["channel"] = json!("CPLATFORM");
        b["event"]["user"] = json!("U0PLATFORM");
        b["event"]["ts"] = json!("1713536200.000100");
        b["event"]["text"] = json!("<@UBOT> compare Aurora and DynamoDB for the ledger");
    }
    fn guardrail(b: &mut Value) {
        b["event_id"] = json!("EvLOCAL11");
        b["event"]["channel"] = json!("CRANDOM");
        b["event"]["ts"] = json!("1713536300.000100");
        b["event"]["text"] = json!("<@UBOT> please trip the guardrail");
    }
    fn reaction(b: &mut Value) {
        b["event_id"] = json!("EvLOCAL05");
    }
    vec![
        Step {
            what: "channel mention (knowledge base)",
            fixture: "slack/app_mention",
            edit: mention,
            retry: false,
            secret: TEST_SIGNING_SECRET,
            expect_status: 200,
        },
        Step {
            what: "Slack's retry of that mention",
            fixture: "slack/app_mention",
            edit: mention,
            retry: true,
            secret: TEST_SIGNING_SECRET,
            expect_status: 200,
        },
        Step {
            what: "direct message (ticket search)",
            fixture: "slack/dm",
            edit: none,
            retry: false,
            secret: TEST_SIGNING_SECRET,
            expect_status: 200,
        },
        Step {
            what: "thread follow-up without a mention",
            fixture: "slack/thread_reply",
            edit: follow_up,
            retry: false,
            secret: TEST_SIGNING_SECRET,
            expect_status: 200,
        },
        Step {
            what: "reaction on an answer",
            fixture: "slack/reaction_added",
            edit: reaction,
            retry: false,
            secret: TEST_SIGNING_SECRET,
            expect_status: 200,
        },
        Step {
            what: "a bot's message",
            fixture: "slack/bot_message",
            edit: none,
            retry: false,
            secret: TEST_SIGNING_SECRET,
            expect_status: 200,
        },
        Step {
            what: "a payload whose shape drifted (no user)",
            fixture: "slack/app_mention",
            edit: drifted,
            retry: false,
            secret: TEST_SIGNING_SECRET,
            expect_status: 200,
        },
        Step {
            what: "a user over the daily budget",
            fixture: "slack/app_mention",
            edit: over_budget,
            retry: false,
            secret: TEST_SIGNING_SECRET,
            expect_status: 200,
        },
        Step {
            what: "agent throttled, then answers",
            fixture: "slack/app_mention",
            edit: throttled,
            retry: false,
            secret: TEST_SIGNING_SECRET,
            expect_status: 200,
        },
        Step {
            what: "multi-step orchestration",
            fixture: "slack/app_mention",
            edit: multi,
            retry: false,
            secret: TEST_SIGNING_SECRET,
            expect_status: 200,
        },
        Step {
            what: "guardrail intervenes",
            fixture: "slack/app_mention",
            edit: guardrail,
            retry: false,
            secret: TEST_SIGNING_SECRET,
            expect_status: 200,
        },
        Step {
            what: "an unknown event type",
            fixture: "slack/unknown_event",
            edit: none,
            retry: false,
            secret: TEST_SIGNING_SECRET,
            expect_status: 200,
        },
        Step {
            what: "a forged request (wrong signing secret)",
            fixture: "slack/app_mention",
            edit: none,
            retry: false,
            secret: "forged",
            expect_status: 401,
        },
    ]
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

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("ask") {
        return ask(&args[1..]).await;
    }
    let serve = args.iter().any(|a| a == "--serve");
    let port =
        args.iter().position(|a| a == "--port").and_then(|i| args.get(i + 1)).and_then(|p| p.parse().ok()).unwrap_or(0);
    let progress = Progress::new();
    progress.say("starting the emulators (moto installs into the project's venv on first use)");
    let stack = match LocalStack::start(&progress, port, DAILY_BUDGET_USD).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("local stack failed to start: {e}");
            return ExitCode::FAILURE;
        }
    };
    let sdk = emulators().moto.sdk_config();
    let _ = seed_spend(
        &sdk,
        &stack.resources.usage_table,
        "T0001",
        "UOVERBUDGET",
        &shared::rollups::day_sk(chrono::Utc::now().date_naive()),
        1.37,
    )
    .await;

    let http = reqwest::Client::new();
    let mut problems = Vec::new();
    progress.say("playing a day of signed Slack traffic through the endpoint");
    for step in steps() {
        let mut body = body_of(&fixture(step.fixture));
        (step.edit)(&mut body);
        match post(&http, &stack.url, &body.to_string(), step.secret, step.retry).await {
            Ok((status, _)) if status == step.expect_status => println!("  {status}  {}", step.what),
            Ok((status, text)) => {
                println!("  {status}  {}  <- expected {}", step.what, step.expect_status);
                problems.push(format!("{}: HTTP {status} {text}", step.what));
            }
            Err(e) => problems.push(format!("{}: {e}", step.what)),
        }
        // Slack delivers over time; the follow-up must land after the first answer exists.
        tokio::time::sleep(Duration::from_millis(if step.fixture == "slack/app_mention" && !step.retry {
            1500
        } else {
            200
        }))
        .await;
    }
    if !stack.settle(Duration::from_secs(90)).await {
        problems.push("the work queue did not drain within 90 s".into());
    }
    progress.say("traffic done");
    report(&stack, &mut problems).await;

    if serve {
        println!("\nServing. Ask your own question from another terminal:\n  scripts/local-stack ask --url {} --slack {} \"What is our password rotation policy?\"\nCtrl-C stops everything.", stack.url, emulators().slack.api_base());
        let _ = tokio::signal::ctrl_c().await;
    }
    stack.stop();
    if problems.is_empty() {
        println!("\nlocal stack: everything behaved as expected");
        ExitCode::SUCCESS
    } else {
        println!("\nlocal stack: {} problem(s):", problems.len());
        for p in &problems {
            println!("  - {p}");
        }
        ExitCode::FAILURE
    }
}

async fn report(stack: &LocalStack, problems: &mut Vec<String>) {
    let emu = emulators();
    println!("\n== What Slack shows (bot replies by channel and thread)");
    let mut threads: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
    for call in emu.slack.calls().into_iter().filter(|c| c.method == "chat.postMessage" && c.fault.is_none()) {
        let key = (call.param("channel").to_string(), call.param("thread_ts").to_string());
        threads.entry(key).or_default().push(call.param("text").to_string());
    }
    for ((channel, thread), posts) in &threads {
        println!("#{channel} thread {thread}");
        for p in posts {
            for line in p.lines().take(12) {
                println!("  │ {line}");
            }
            println!("  └─");
        }
    }
    let expect_posts = |channel: &str, n: usize, problems: &mut Vec<String>| {
        let got: usize = threads.iter().filter(|((c, _), _)| c == channel).map(|(_, p)| p.len()).sum();
        if got != n {
            problems.push(format!("#{channel}: expected {n} bot posts, saw {got}"));
        }
    };
    expect_posts("C024BE91L", 2, problems);
    expect_posts("D024BFF1M", 1, problems);
    expect_posts("CFINANCE", 1, problems);
    expect_posts("CSUPPORT", 1, problems);
    expect_posts("CPLATFORM", 1, problems);
    expect_posts("CRANDOM", 1, problems);
    if !threads.iter().any(|((c, _), p)| c == "CFINANCE" && p.iter().any(|t| t.contains("budget"))) {
        problems.push("the user over budget was not told so".into());
    }

    let sdk = emu.moto.sdk_config();
    println!("\n== Analytics bucket (Firehose -> S3, newline-delimited JSON)");
    let objects = read_objects(&sdk, &stack.resources.bucket, "events/").await.unwrap_or_default();
    let events: Vec<Value> = objects
        .iter()
        .flat_map(|(_, t)| t.lines().filter_map(|l| serde_json::from_str(l).ok()).collect::<Vec<_>>())
        .collect();
    println!("{} objects, {} events", objects.len(), events.len());
    for e in &events {
        println!(
            "  {} user={} outcome={} kbs={} sources={} models={} tokens={}+{} latency={}ms",
            e["timestamp"].as_str().unwrap_or(""),
            e["user_id"].as_str().unwrap_or(""),
            e["outcome"].as_str().unwrap_or(""),
            e["knowledge_bases"],
            e["sources"].as_array().map_or(0, Vec::len),
            e["model_ids"],
            e["input_tokens"],
            e["output_tokens"],
            e["latency_ms"]
        );
    }
    if events.len() != 7 {
        problems.push(format!("expected 7 analytics events (one per answered or refused turn), saw {}", events.len()));
    }

    seed_queries(&objects, problems);

    println!("\n== Metrics (EMF lines the functions printed; CloudWatch would build these)");
    for (name, out) in [("slack-ingress", stack.ingress.output()), ("slack-worker", stack.worker.output())] {
        let mut totals: Vec<(String, f64)> = emf_totals(&out).into_iter().collect();
        totals.sort_by(|a, b| a.0.cmp(&b.0));
        println!("{name}:");
        for (k, v) in totals {
            println!("  {k}: {v}");
        }
    }
    let ingress_totals = emf_totals(&stack.ingress.output());
    for (metric, min) in [("SignatureFailures", 1.0), ("DuplicateEvents", 1.0)] {
        if ingress_totals.get(metric).copied().unwrap_or(0.0) < min {
            problems.push(format!("expected {metric} to be counted"));
        }
    }
    if !ingress_totals.keys().any(|k| k.starts_with("SchemaDrift")) {
        problems.push("expected SchemaDrift to be counted".into());
    }
    for out in [stack.ingress.output(), stack.worker.output()] {
        if out.contains(TEST_SIGNING_SECRET) || out.contains(TEST_BOT_TOKEN) {
            problems.push("a secret appeared in a function's log".into());
        }
    }
}

/// `ask --url URL --slack API_BASE "question"`: signs and posts a DM, then shows the answer.
async fn ask(args: &[String]) -> ExitCode {
    let flag = |name: &str| args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned();
    let (Some(url), Some(slack)) = (flag("--url"), flag("--slack")) else {
        eprintln!("usage: scripts/local-stack ask --url URL --slack SLACK_API_BASE \"question\"");
        return ExitCode::FAILURE;
    };
    let question = args.last().cloned().unwrap_or_default();
    let ts = format!("{}.000100", chrono::Utc::now().timestamp());
    let channel = "DASK";
    let body = json!({
        "type": "event_callback", "team_id": "T0001", "event_id": format!("EvASK{}", ts.replace('.', "")),
        "authorizations": [{"user_id": "UBOT", "is_bot": true, "team_id": "T0001"}],
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
            return ExitCode::SUCCESS;
        }
    }
    eprintln!("no answer within 30 s");
    ExitCode::FAILURE
}

/// The seed's three Athena queries, unchanged, answered by the embedded SQL engine (DuckDB) over
/// the objects Firehose delivered, read with the Glue table's columns from template.yaml.
fn seed_queries(objects: &[(String, String)], problems: &mut Vec<String>) {
    println!("\n== The seed's three queries, run by DuckDB over the delivered objects (Athena's SQL, unchanged)");
    let answer = || -> Result<Vec<Result<tests::sql::Rows, String>>, String> {
        let root = tests::moto::workspace_root().join(format!("target/tmp/local-stack-sql-{}", std::process::id()));
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
                        for row in rows.rows.iter().take(5) {
                            let cells: Vec<String> = row
                                .iter()
                                .map(|v| v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string()))
                                .collect();
                            println!("   {}", cells.join(" | "));
                        }
                        if *id == "most_active" && rows.rows.is_empty() {
                            problems.push("the most-active-users query found no one".into());
                        }
                    }
                }
            }
        }
    }
}
