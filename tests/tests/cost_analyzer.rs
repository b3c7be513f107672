//! cost-analyzer end to end: usage records priced by the real token-logging into moto's DynamoDB,
//! then the daily report (S3 in moto, Block Kit post and chart upload recorded by the fake Slack)
//! and every admin API endpoint (Function URL requests, the audit log in moto, Athena in moto
//! with canned rows). Also the figure for the note: items a 30-day report reads at 1,000 and at
//! 100,000 turns a day.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage};
use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, NaiveDate, Utc};
use cost_analyzer::athena::popular_queries_sql;
use cost_analyzer::report::days_needed;
use cost_analyzer::{Config, CostAnalyzer};
use serde_json::{json, Value};
use shared::aws::ledger::DynamoDbLedger;
use shared::aws::usage::{day_rollups_from_items, DynamoDbUsageReader};
use shared::domain::{ModelCall, UsageRecord};
use shared::ledger::{LedgerTurn, RollupUpdate};
use shared::ports::RollupStore;
use shared::pricing::PriceTable;
use shared::rollups::{day_pk, DayRollups, KnownUser, Spend, UserUsage};
use shared::telemetry::Metrics;
use tests::harness::emulators;
use tests::resources::{create_keyed_table, TEST_BOT_TOKEN};
use token_logging::handler::TokenLogger;
use token_logging::plan::{combined_rollups, price_turn};
use token_logging::writer::WriterSettings;

const TEAM: &str = "T0001";
const SONNET: &str = "us.anthropic.claude-3-5-sonnet-20241022-v2:0";
const HAIKU: &str = "anthropic.claude-3-haiku-20240307-v1:0";
const UNPRICED: &str = "x.unreleased-model-v1";
const ADMIN_ARN: &str = "arn:aws:iam::123456789012:user/finance-admin";
const ADMIN_ID: &str = "AIDAFINANCEADMIN";

/// One test's resources and analyzer.
struct Setup {
    sdk: aws_config::SdkConfig,
    usage_table: String,
    audit_table: String,
    bucket: String,
    workgroup: String,
    rollups: Arc<DynamoDbUsageReader>,
    analyzer: CostAnalyzer,
}

impl Setup {
    async fn new(prefix: &str, channel: Option<&str>) -> Setup {
        let emu = emulators();
        let sdk = emu.moto.sdk_config();
        let (usage_table, audit_table) = (format!("{prefix}-usage"), format!("{prefix}-audit"));
        create_keyed_table(&sdk, &usage_table).await.expect("usage table");
        create_keyed_table(&sdk, &audit_table).await.expect("audit table");
        let bucket = format!("{prefix}-analytics");
        aws_sdk_s3::Client::new(&sdk).create_bucket().bucket(&bucket).send().await.expect("bucket");
        let workgroup = format!("{prefix}-wg");
        aws_sdk_athena::Client::new(&sdk)
            .create_work_group()
            .name(&workgroup)
            .configuration(
                aws_sdk_athena::types::WorkGroupConfiguration::builder()
                    .result_configuration(
                        aws_sdk_athena::types::ResultConfiguration::builder()
                            .output_location(format!("s3://{bucket}/athena-results/"))
                            .build(),
                    )
                    .build(),
            )
            .send()
            .await
            .expect("workgroup");
        let rollups = Arc::new(DynamoDbUsageReader::new(aws_sdk_dynamodb::Client::new(&sdk), &usage_table));
        // The report channel's token comes from a Slack secret, as in Lambda.
        let slack_secret_arn = match channel {
            Some(_) => Some(
                aws_sdk_secretsmanager::Client::new(&sdk)
                    .create_secret()
                    .name(format!("{prefix}/slack"))
                    .secret_string(json!({"signing_secret": "unused", "bot_token": TEST_BOT_TOKEN}).to_string())
                    .send()
                    .await
                    .expect("slack secret")
                    .arn
                    .expect("secret arn"),
            ),
            None => None,
        };
        let config = Config {
            usage_table: usage_table.clone(),
            conversations_table: format!("{prefix}-conversations"),
            audit_table: audit_table.clone(),
            analytics_bucket: bucket.clone(),
            athena_workgroup: workgroup.clone(),
            glue_database: "slack_bot_analytics".into(),
            events_table: "events".into(),
            report_channel: channel.map(str::to_owned),
            slack_secret_arn,
            slack_api_base: emu.slack.api_base(),
            agent_names: BTreeMap::from([("AGENTHELP1".to_string(), "Helpdesk".to_string())]),
            athena_max_wait_secs: 10,
            metrics_namespace: "BedrockUsage".into(),
        };
        // The handler as the main builds it.
        let mut analyzer = CostAnalyzer::from_config(&config, &sdk).await.expect("cost-analyzer init");
        // Both read the rollups through this test's reader, which counts its queries.
        analyzer.rollups = rollups.clone();
        analyzer.api.rollups = rollups.clone();
        Setup { sdk, usage_table, audit_table, bucket, workgroup, rollups, analyzer }
    }

    /// Prices and writes `records` with the real token-logging handler.
    async fn log(&self, records: &[UsageRecord]) {
        let ledger = DynamoDbLedger::new(aws_sdk_dynamodb::Client::new(&self.sdk), &self.usage_table);
        let logger = TokenLogger::new(
            Arc::new(ledger),
            PriceTable::embedded(),
            Metrics::capture("BedrockUsage").0,
            &self.usage_table,
            WriterSettings::default(),
        );
        for chunk in records.chunks(50) {
            let mut event = SqsEvent::default();
            event.records = chunk
                .iter()
                .map(|r| {
                    let mut m = SqsMessage::default();
                    m.message_id = Some(r.record_id.clone());
                    m.body = Some(serde_json::to_string(r).expect("json"));
                    m
                })
                .collect();
            let resp = logger.handle_batch(event, None).await;
            assert!(resp.batch_item_failures.is_empty(), "token-logging failed some records");
        }
    }

    /// Puts a day x agent feedback rollup, as the feedback recorder keeps it.
    async fn feedback(&self, day: &str, agent: &str, positive: u64, negative: u64) {
        aws_sdk_dynamodb::Client::new(&self.sdk)
            .put_item()
            .table_name(&self.usage_table)
            .item("pk", AttributeValue::S(format!("DAY#{day}")))
            .item("sk", AttributeValue::S(shared::rollups::feedback_sk(agent)))
            .item("positive", AttributeValue::N(positive.to_string()))
            .item("negative", AttributeValue::N(negative.to_string()))
            .send()
            .await
            .expect("feedback");
    }

    /// Calls the admin API as the Function URL would, signed by `ADMIN_ARN`.
    async fn get(&self, path: &str, query: &[(&str, &str)]) -> (u16, Value) {
        self.call(path, query, true).await
    }

    async fn call(&self, path: &str, query: &[(&str, &str)], with_iam: bool) -> (u16, Value) {
        let params: serde_json::Map<String, Value> = query.iter().map(|(k, v)| (k.to_string(), json!(v))).collect();
        let raw_query: Vec<String> = query.iter().map(|(k, v)| format!("{k}={v}")).collect();
        static REQUEST: AtomicU64 = AtomicU64::new(0);
        let mut context = json!({
            "accountId": "123456789012",
            "apiId": "abc123",
            "domainName": "abc123.lambda-url.us-east-1.on.aws",
            "domainPrefix": "abc123",
            "requestId": format!("req-{}", REQUEST.fetch_add(1, Ordering::SeqCst)),
            "http": {"method": "GET", "path": path, "protocol": "HTTP/1.1", "sourceIp": "203.0.113.9", "userAgent": "admin-cli"},
            "time": "10/Mar/2026:12:00:00 +0000",
            "timeEpoch": 1_773_144_000_000_i64,
        });
        if with_iam {
            context["authorizer"] = json!({"iam": {
                "accessKey": "AKIAEXAMPLE", "accountId": "123456789012", "callerId": ADMIN_ID,
                "userArn": ADMIN_ARN, "userId": ADMIN_ID,
            }});
        }
        let event = json!({
            "version": "2.0",
            "rawPath": path,
            "rawQueryString": raw_query.join("&"),
            "headers": {"host": "abc123.lambda-url.us-east-1.on.aws"},
            "queryStringParameters": params,
            "requestContext": context,
            "isBase64Encoded": false,
        });
        let out = self.analyzer.handle(event, now()).await.expect("an HTTP answer");
        let status = out["statusCode"].as_u64().expect("status") as u16;
        let body = serde_json::from_str(out["body"].as_str().expect("body")).expect("JSON body");
        (status, body)
    }
}

fn now() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-03-11T12:00:00Z").expect("now").with_timezone(&Utc)
}

fn record(id: &str, user: &str, agent: &str, ts: &str, calls: &[(&str, u64, u64)]) -> UsageRecord {
    UsageRecord {
        record_id: id.into(),
        timestamp: ts.into(),
        user_id: user.into(),
        team_id: TEAM.into(),
        channel_id: "C1".into(),
        thread_id: "1.2".into(),
        agent_id: agent.into(),
        agent_alias_id: "ALIAS1".into(),
        agent_backend: Default::default(),
        tokens_unreported: false,
        calls: calls
            .iter()
            .map(|(m, i, o)| ModelCall {
                model_id: m.to_string(),
                input_tokens: *i,
                output_tokens: *o,
                step: "orchestration".into(),
                ..ModelCall::default()
            })
            .collect(),
    }
}

/// A month of usage: two agents, four users, three models (one unpriced), heavier on 2026-03-10.
fn month_of_usage() -> Vec<UsageRecord> {
    let mut out = Vec::new();
    let users = ["UALICE", "UBOB", "UCAROL", "UDAVE"];
    for day in 1..=10u32 {
        let turns = if day == 10 { 12 } else { 2 + day % 3 };
        for t in 0..turns {
            let user = users[(t as usize + day as usize) % 3];
            let agent = if t % 3 == 0 { "AGENTOPS01" } else { "AGENTHELP1" };
            let hour = 8 + (t % 6);
            let ts = format!("2026-03-{day:02}T{hour:02}:{:02}:00Z", t % 60);
            let mut calls = vec![(SONNET, 1_000 + u64::from(t) * 100, 200), (HAIKU, 500, 50)];
            if day == 10 && t == 5 {
                calls.push((UNPRICED, 70, 30));
            }
            out.push(record(&format!("r-{day}-{t}"), user, agent, &ts, &calls));
        }
    }
    // UDAVE used the bot only in February: known, but idle in March.
    out.push(record("r-feb", "UDAVE", "AGENTOLD01", "2026-02-03T10:00:00Z", &[(HAIKU, 100, 10)]));
    out
}

fn priced(records: &[UsageRecord]) -> Vec<LedgerTurn> {
    let prices = PriceTable::embedded();
    records
        .iter()
        .map(|r| {
            let at = DateTime::parse_from_rfc3339(&r.timestamp).expect("ts").with_timezone(&Utc);
            price_turn(r.clone(), at, &prices)
        })
        .collect()
}

fn cost_on(turns: &[LedgerTurn], day: &str) -> f64 {
    turns
        .iter()
        .filter(|t| t.record.timestamp.starts_with(day))
        .map(|t| t.priced_cost.to_string().parse::<f64>().unwrap_or(0.0))
        .sum()
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-9
}

#[tokio::test]
async fn the_daily_report_goes_to_s3_and_slack_with_a_chart() {
    let setup = Setup::new("ca-report", Some("CREPORT1")).await;
    let records = month_of_usage();
    setup.log(&records).await;
    setup.feedback("2026-03-10", "AGENTHELP1", 3, 1).await;
    let turns = priced(&records);

    let scheduled = json!({
        "version": "0", "id": "e1", "detail-type": "Scheduled Event", "source": "aws.events",
        "account": "123456789012", "time": "2026-03-11T06:15:00Z", "region": "us-east-1",
        "resources": ["arn:aws:events:us-east-1:123456789012:rule/daily"], "detail": {}
    });
    let out = setup.analyzer.handle(scheduled, now()).await.expect("report");
    assert_eq!(out["report_date"], "2026-03-10");
    assert_eq!(out["s3_key"], "reports/daily/2026-03-10.json");

    // The JSON report in S3.
    let object = aws_sdk_s3::Client::new(&setup.sdk)
        .get_object()
        .bucket(&setup.bucket)
        .key("reports/daily/2026-03-10.json")
        .send()
        .await
        .expect("report object");
    let report: Value = serde_json::from_slice(&object.body.collect().await.expect("body").into_bytes()).expect("json");
    assert_eq!(report["totals"]["turns"], 12);
    let today = cost_on(&turns, "2026-03-10");
    assert!(close(report["totals"]["cost_usd"].as_f64().unwrap(), today), "{} vs {today}", report["totals"]);
    assert_eq!(report["totals"]["unpriced_tokens"], 100);
    assert_eq!(report["unpriced_models"], json!([UNPRICED]));
    let before = cost_on(&turns, "2026-03-09");
    assert!(close(report["vs_previous_day"]["reference_usd"].as_f64().unwrap(), (before * 1e6).round() / 1e6));
    let week: f64 = (3..=9).map(|d| cost_on(&turns, &format!("2026-03-{d:02}"))).sum::<f64>() / 7.0;
    assert!(close(report["vs_7_day_average"]["reference_usd"].as_f64().unwrap(), (week * 1e6).round() / 1e6));
    let mtd: f64 = (1..=10).map(|d| cost_on(&turns, &format!("2026-03-{d:02}"))).sum();
    assert!(close(report["month_to_date"]["cost_usd"].as_f64().unwrap(), (mtd * 1e6).round() / 1e6));
    assert!(close(report["month_to_date"]["forecast_usd"].as_f64().unwrap(), (mtd / 10.0 * 31.0 * 1e6).round() / 1e6));
    let agents: Vec<&str> =
        report["by_agent"].as_array().unwrap().iter().map(|a| a["name"].as_str().unwrap()).collect();
    assert_eq!(agents, vec!["Helpdesk", "AGENTOPS01"], "named, most expensive first");
    assert_eq!(report["by_model"].as_array().unwrap().len(), 3);
    assert_eq!(report["top_users"].as_array().unwrap().len(), 3);
    let hour_turns: u64 = report["by_hour"].as_array().unwrap().iter().map(|h| h["turns"].as_u64().unwrap()).sum();
    assert_eq!(hour_turns, 12);
    assert_eq!(report["satisfaction"]["score"], 0.75);
    assert_eq!(report["daily_cost_by_model"].as_array().unwrap().len(), 30);

    // Slack: the Block Kit post, then the chart through the external upload flow.
    let slack = &emulators().slack;
    let calls: Vec<_> = slack
        .calls()
        .into_iter()
        .filter(|c| {
            c.param("channel") == "CREPORT1"
                || c.param("channel_id") == "CREPORT1"
                || c.method == "upload"
                || c.method == "files.getUploadURLExternal"
        })
        .collect();
    let post = calls.iter().find(|c| c.method == "chat.postMessage").expect("report posted");
    assert!(post.authorized);
    assert!(post.param("text").contains("2026-03-10"), "{}", post.param("text"));
    let blocks = post.params["blocks"].to_string();
    assert!(blocks.contains("Helpdesk") && blocks.contains("Forecast") && blocks.contains("unpriced"), "{blocks}");
    let get_url = calls
        .iter()
        .find(|c| c.method == "files.getUploadURLExternal" && c.param("filename") == "cost-by-model-2026-03-10.png")
        .expect("upload URL asked");
    assert!(get_url.authorized);
    let complete = calls.iter().find(|c| c.method == "files.completeUploadExternal").expect("upload completed");
    let file_id = complete.params["files"][0]["id"].as_str().expect("file id");
    assert_eq!(out["chart_file_id"], file_id);
    let upload = calls.iter().find(|c| c.method == "upload" && c.param("file_id") == file_id).expect("bytes sent");
    assert!(!upload.authorized, "the pre-signed upload URL gets no bot token");
    let (name, png) = slack.uploaded(file_id).expect("uploaded");
    assert_eq!(name, "cost-by-model-2026-03-10.png");
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    assert_eq!(get_url.param("length"), png.len().to_string());

    // Rollups only: one Query per day partition read (31 days at most; March 10 needs 30).
    assert_eq!(setup.rollups.queries(), days_needed(NaiveDate::from_ymd_opt(2026, 3, 10).unwrap()).len() as u64);
}

#[tokio::test]
async fn every_admin_endpoint_answers_and_refuses_bad_parameters() {
    let setup = Setup::new("ca-admin", None).await;
    let records = month_of_usage();
    setup.log(&records).await;
    setup.feedback("2026-03-09", "AGENTHELP1", 2, 2).await;
    setup.feedback("2026-03-10", "AGENTHELP1", 3, 1).await;
    let turns = priced(&records);
    let march = [("start", "2026030100"), ("end", "2026031023")];
    let march_cost: f64 = (1..=10).map(|d| cost_on(&turns, &format!("2026-03-{d:02}"))).sum();

    // Cost summary.
    let (status, body) = setup.get("/admin/cost-summary", &march).await;
    assert_eq!(status, 200, "{body}");
    assert!(close(body["totals"]["cost_usd"].as_f64().unwrap(), (march_cost * 1e6).round() / 1e6), "{body}");
    assert_eq!(body["totals"]["turns"], records.len() as u64 - 1);
    assert_eq!(body["by_day"].as_array().unwrap().len(), 10);
    assert_eq!(body["unique_users"], 3);
    let (status, body) = setup.get("/admin/cost-summary", &[("start", "2026-03-01")]).await;
    assert_eq!(status, 400);
    assert!(body["message"].as_str().unwrap().contains("start"), "{body}");

    // Users with usage, sorted by cost; limit; include_all.
    let (status, body) = setup.get("/admin/users", &march).await;
    assert_eq!(status, 200, "{body}");
    let users = body["users"].as_array().unwrap();
    assert_eq!(users.len(), 3);
    let costs: Vec<f64> = users.iter().map(|u| u["cost_usd"].as_f64().unwrap()).collect();
    assert!(costs.windows(2).all(|w| w[0] >= w[1]), "{costs:?}");
    assert!(
        close(costs.iter().sum::<f64>(), (march_cost * 1e6).round() / 1e6)
            || (costs.iter().sum::<f64>() - march_cost).abs() < 1e-5
    );
    let (_, body) = setup.get("/admin/users", &[march[0], march[1], ("limit", "1")]).await;
    assert_eq!((body["users"].as_array().unwrap().len(), &body["truncated"]), (1, &json!(true)));
    let (_, body) = setup.get("/admin/users", &[march[0], march[1], ("include_all", "true")]).await;
    let all = body["users"].as_array().unwrap();
    assert_eq!(all.len(), 4);
    assert_eq!((all[3]["user_id"].as_str(), all[3]["cost_usd"].as_f64()), (Some("UDAVE"), Some(0.0)));
    for (bad, name) in [("limit", "limit"), ("include_all", "include_all"), ("end", "end")] {
        let value = match bad {
            "limit" => "1001",
            "include_all" => "maybe",
            _ => "2026023100",
        };
        let (status, body) = setup.get("/admin/users", &[(bad, value)]).await;
        assert_eq!(status, 400, "{bad}: {body}");
        assert!(body["message"].as_str().unwrap().contains(name), "{body}");
    }

    // One user's allocation by agent, model and day.
    let (status, body) = setup.get(&format!("/admin/users/{TEAM}/UBOB/cost"), &march).await;
    assert_eq!(status, 200, "{body}");
    let bob: f64 = turns
        .iter()
        .filter(|t| t.record.user_id == "UBOB" && t.record.timestamp.starts_with("2026-03"))
        .map(|t| t.priced_cost.to_string().parse::<f64>().unwrap())
        .sum();
    let sum = |k: &str| body[k].as_array().unwrap().iter().map(|x| x["cost_usd"].as_f64().unwrap()).sum::<f64>();
    assert!((body["totals"]["cost_usd"].as_f64().unwrap() - bob).abs() < 1e-6, "{body}");
    for k in ["by_agent", "by_model", "by_day"] {
        assert!((sum(k) - bob).abs() < 1e-5, "{k} adds up: {body}");
    }
    assert_eq!(body["by_model"].as_array().unwrap().len(), 2);
    let (status, body) = setup.get("/admin/users/T0001/U$BOB/cost", &march).await;
    assert_eq!(status, 400);
    assert!(body["message"].as_str().unwrap().contains("user_id"), "{body}");

    // Agents with usage; unused ones only when asked.
    let (status, body) = setup.get("/admin/agents", &march).await;
    assert_eq!(status, 200, "{body}");
    let agents = body["agents"].as_array().unwrap();
    assert_eq!(agents.len(), 2);
    assert_eq!((agents[0]["agent_id"].as_str(), agents[0]["name"].as_str()), (Some("AGENTHELP1"), Some("Helpdesk")));
    assert_eq!(agents[0]["unique_users"], 3);
    let listed_turns: u64 = agents.iter().map(|a| a["turns"].as_u64().unwrap()).sum();
    assert_eq!(listed_turns, records.len() as u64 - 1);
    let (_, body) = setup.get("/admin/agents", &[march[0], march[1], ("include_unused", "true")]).await;
    let unused: Vec<&Value> = body["agents"].as_array().unwrap().iter().filter(|a| a["turns"] == 0).collect();
    assert_eq!(unused.len(), 1);
    assert_eq!(unused[0]["agent_id"], "AGENTOLD01");
    let (status, _) = setup.get("/admin/agents", &[("include_unused", "1")]).await;
    assert_eq!(status, 400);

    // One agent's details.
    let (status, body) = setup.get("/admin/agents/AGENTHELP1", &march).await;
    assert_eq!(status, 200, "{body}");
    let help_turns = records.iter().filter(|r| r.agent_id == "AGENTHELP1").count() as u64;
    assert_eq!(body["query_count"], help_turns);
    assert_eq!(body["unique_users"], 3);
    assert_eq!(body["average_satisfaction"], 0.625);
    assert_eq!(body["daily"].as_array().unwrap().len(), 10);
    let daily_queries: u64 = body["daily"].as_array().unwrap().iter().map(|d| d["queries"].as_u64().unwrap()).sum();
    assert_eq!(daily_queries, help_turns);
    assert!(body["daily"][9]["unique_users"].as_u64().unwrap() >= 1);
    let (status, body) = setup.get("/admin/agents/NOSUCHAGENT", &march).await;
    assert_eq!(status, 404, "{body}");

    // Popular queries: Athena in moto returns canned rows; the query it was sent is checked.
    let canned = json!({"results": [{
        "rows": [
            {"Data": [{"VarCharValue": "search_query"}, {"VarCharValue": "searches"}, {"VarCharValue": "users"}]},
            {"Data": [{"VarCharValue": "vpn setup"}, {"VarCharValue": "12"}, {"VarCharValue": "5"}]},
            {"Data": [{"VarCharValue": "reset password"}, {"VarCharValue": "7"}, {"VarCharValue": "4"}]}
        ],
        "column_info": [
            {"Name": "search_query", "Label": "search_query", "Type": "varchar", "CatalogName": "hive", "SchemaName": "", "TableName": "", "Nullable": "UNKNOWN", "Precision": 0, "Scale": 0, "CaseSensitive": true},
            {"Name": "searches", "Label": "searches", "Type": "bigint", "CatalogName": "hive", "SchemaName": "", "TableName": "", "Nullable": "UNKNOWN", "Precision": 0, "Scale": 0, "CaseSensitive": false},
            {"Name": "users", "Label": "users", "Type": "bigint", "CatalogName": "hive", "SchemaName": "", "TableName": "", "Nullable": "UNKNOWN", "Precision": 0, "Scale": 0, "CaseSensitive": false}
        ]
    }]});
    let moto_api = format!("{}/moto-api/static/athena/query-results", emulators().moto.endpoint());
    let answer = reqwest::Client::new().post(&moto_api).json(&canned).send().await.expect("canned rows");
    assert!(answer.status().is_success());
    let (status, body) =
        setup.get("/admin/agents/AGENTHELP1/popular-queries", &[march[0], march[1], ("limit", "10")]).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["queries"],
        json!([
            {"query": "vpn setup", "searches": 12, "users": 5},
            {"query": "reset password", "searches": 7, "users": 4}
        ])
    );
    let athena = aws_sdk_athena::Client::new(&setup.sdk);
    let ids = athena
        .list_query_executions()
        .work_group(&setup.workgroup)
        .send()
        .await
        .expect("executions")
        .query_execution_ids
        .unwrap_or_default();
    assert_eq!(ids.len(), 1);
    let execution = athena
        .get_query_execution()
        .query_execution_id(&ids[0])
        .send()
        .await
        .expect("execution")
        .query_execution
        .expect("execution");
    assert_eq!(execution.query(), Some(popular_queries_sql("events", 10).as_str()));
    assert_eq!(execution.query_execution_context().and_then(|c| c.database()), Some("slack_bot_analytics"));
    assert_eq!(
        execution.execution_parameters(),
        ["'AGENTHELP1'", "'2026-03-01'", "'2026-03-11'", "'2026-03-01'", "'2026-03-10'"].map(String::from)
    );
    let (status, body) = setup.get("/admin/agents/AGENTHELP1/popular-queries", &[("limit", "500")]).await;
    assert_eq!(status, 400);
    assert!(body["message"].as_str().unwrap().contains("limit"), "{body}");

    // Satisfaction.
    let (status, body) = setup.get("/admin/satisfaction", &march).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["totals"], json!({"positive": 5, "negative": 3, "score": 0.625}));
    assert_eq!(body["by_agent"][0]["agent_id"], "AGENTHELP1");
    let (status, _) = setup.get("/admin/satisfaction", &[("start", "2026031100"), ("end", "2026031000")]).await;
    assert_eq!(status, 400);

    // Unknown routes and unsigned requests.
    let (status, _) = setup.get("/admin/secrets", &[]).await;
    assert_eq!(status, 404);
    let (status, _) = setup.call("/admin/cost-summary", &[], false).await;
    assert_eq!(status, 403);

    // The audit log: every call above, with the IAM caller, filterable.
    let window = [("start_time", "1773200000"), ("end_time", "1773300000")];
    let (status, body) = setup
        .get("/admin/audit-logs", &[window[0], window[1], ("user_id", ADMIN_ID), ("action_type", "view_agent")])
        .await;
    assert_eq!(status, 200, "{body}");
    let entries = body["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 2, "two agent views (one unknown agent): {body}");
    assert!(entries.iter().all(|e| e["caller_arn"] == ADMIN_ARN && e["action_type"] == "view_agent"));
    let statuses: Vec<u64> = entries.iter().map(|e| e["status"].as_u64().unwrap()).collect();
    assert!(statuses.contains(&200) && statuses.contains(&404), "{statuses:?}");
    assert!(entries.iter().any(|e| e["target"] == "agent:NOSUCHAGENT"));
    let (_, body) = setup.get("/admin/audit-logs", &[window[0], window[1], ("action_type", "unknown_route")]).await;
    assert_eq!(body["count"], 1);
    let (_, body) = setup.get("/admin/audit-logs", &[window[0], window[1], ("user_id", "AIDASOMEONEELSE")]).await;
    assert_eq!(body["count"], 0);
    let (_, body) = setup.get("/admin/audit-logs", &[("start_time", "1"), ("end_time", "2")]).await;
    assert_eq!(body["count"], 0, "outside the window");
    let (status, body) =
        setup.get("/admin/audit-logs", &[("start_time", "1773300000"), ("end_time", "1773200000")]).await;
    assert_eq!(status, 400);
    assert!(body["message"].as_str().unwrap().contains("start_time"), "{body}");
    let (status, body) = setup.get("/admin/audit-logs", &[("end_time", "soon")]).await;
    assert_eq!(status, 400);
    assert!(body["message"].as_str().unwrap().contains("end_time"), "{body}");
    // The audit table holds every call, including the refused ones and these reads of it.
    let items = aws_sdk_dynamodb::Client::new(&setup.sdk)
        .scan()
        .table_name(&setup.audit_table)
        .send()
        .await
        .expect("scan")
        .items
        .unwrap_or_default();
    assert!(items.len() >= 25, "{}", items.len());
}

/// Day rollups computed in memory by token-logging's own plan, read through the same parsing as
/// the DynamoDB reader, counting the items a reader would be sent.
struct MemoryRollups {
    items: BTreeMap<(String, String), RollupUpdate>,
    read: AtomicU64,
}

impl MemoryRollups {
    fn item(u: &RollupUpdate) -> HashMap<String, AttributeValue> {
        let d = &u.delta;
        let mut item = HashMap::from([
            ("pk".to_string(), AttributeValue::S(u.pk.clone())),
            ("sk".to_string(), AttributeValue::S(u.sk.clone())),
            ("cost_usd".to_string(), AttributeValue::N(d.cost.to_string())),
            ("input_tokens".to_string(), AttributeValue::N(d.input_tokens.to_string())),
            ("output_tokens".to_string(), AttributeValue::N(d.output_tokens.to_string())),
            ("turns".to_string(), AttributeValue::N(d.turns.to_string())),
            ("unpriced_tokens".to_string(), AttributeValue::N(d.unpriced_tokens.to_string())),
        ]);
        for (k, v) in &u.labels {
            item.insert(k.clone(), AttributeValue::S(v.clone()));
        }
        item
    }
}

#[async_trait]
impl RollupStore for MemoryRollups {
    async fn day(&self, day: NaiveDate) -> shared::Result<DayRollups> {
        let pk = day_pk(day);
        let items: Vec<HashMap<String, AttributeValue>> = self
            .items
            .range((pk.clone(), String::new())..)
            .take_while(|((p, _), _)| *p == pk)
            .map(|(_, u)| Self::item(u))
            .collect();
        self.read.fetch_add(items.len() as u64, Ordering::Relaxed);
        Ok(day_rollups_from_items(&items))
    }
    async fn user_usage(&self, _: &str, _: &str, _: NaiveDate, _: NaiveDate) -> shared::Result<Vec<UserUsage>> {
        Ok(vec![])
    }
    async fn user_days(&self, _: &str, _: &str, _: NaiveDate, _: NaiveDate) -> shared::Result<Vec<(NaiveDate, Spend)>> {
        Ok(vec![])
    }
    async fn known_users(&self) -> shared::Result<Vec<KnownUser>> {
        Ok(vec![])
    }
    async fn known_agents(&self) -> shared::Result<Vec<String>> {
        Ok(vec![])
    }
}

/// The day partitions 30 days of `turns_per_day` turns leave (200 users, 3 agents, 4 models).
/// Every day is generated and planned by token-logging; at 100,000 turns a day a day's shape
/// is planned once per distinct seed and re-dated (the partition's keys do not depend on the
/// date), which keeps the test fast in a debug build.
fn generated_month(turns_per_day: usize, distinct_days: usize) -> BTreeMap<(String, String), RollupUpdate> {
    let prices = PriceTable::embedded();
    let models = [SONNET, HAIKU, "anthropic.claude-sonnet-4-5-20250929-v1:0", "amazon.nova-pro-v1:0"];
    let agents = ["AGENTHELP1", "AGENTOPS01", "AGENTHR001"];
    let mut shapes: Vec<Vec<RollupUpdate>> = Vec::new();
    for seed in 0..distinct_days {
        let mut state = 0x9E37_79B9_7F4A_7C15_u64 ^ (seed as u64 + 1);
        let mut rng = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let turns: Vec<LedgerTurn> = (0..turns_per_day)
            .map(|i| {
                let calls: Vec<(&str, u64, u64)> = (0..1 + rng() % 2)
                    .map(|_| (models[(rng() % 4) as usize], 1_000 + rng() % 1_000, 100 + rng() % 200))
                    .collect();
                let ts = format!("2026-04-01T{:02}:{:02}:00Z", rng() % 24, rng() % 60);
                let r = record(
                    &format!("g{seed}-{i}"),
                    &format!("U{:04}", rng() % 200),
                    agents[(rng() % 3) as usize],
                    &ts,
                    &calls,
                );
                let at = DateTime::parse_from_rfc3339(&r.timestamp).expect("ts").with_timezone(&Utc);
                price_turn(r, at, &prices)
            })
            .collect();
        let refs: Vec<&LedgerTurn> = turns.iter().collect();
        shapes.push(combined_rollups(&refs).into_iter().filter(|u| u.pk.starts_with("DAY#")).collect());
    }
    let mut items = BTreeMap::new();
    let first = NaiveDate::from_ymd_opt(2026, 4, 1).expect("date");
    for (i, day) in first.iter_days().take(30).enumerate() {
        for u in &shapes[i % shapes.len()] {
            let mut u = u.clone();
            u.pk = day_pk(day);
            items.insert((u.pk.clone(), u.sk.clone()), u);
        }
    }
    items
}

#[tokio::test]
async fn a_30_day_report_reads_about_as_many_items_at_100x_the_turns() {
    let mut read = Vec::new();
    for (turns_per_day, distinct_days) in [(1_000, 30), (100_000, 2)] {
        let store =
            Arc::new(MemoryRollups { items: generated_month(turns_per_day, distinct_days), read: AtomicU64::new(0) });
        let setup_names = BTreeMap::new();
        let days = days_needed(NaiveDate::from_ymd_opt(2026, 4, 30).expect("date"));
        let mut map = BTreeMap::new();
        for d in days {
            map.insert(d, store.day(d).await.expect("day"));
        }
        let report =
            cost_analyzer::report::build(NaiveDate::from_ymd_opt(2026, 4, 30).expect("date"), &map, &setup_names);
        assert_eq!(report.totals.turns, turns_per_day as u64);
        read.push(store.read.load(Ordering::Relaxed));
    }
    println!("items read by a 30-day report: {} at 1,000 turns/day, {} at 100,000 turns/day", read[0], read[1]);
    // Bounded by users x agents + hours x agents + agents x models per day, not by turns.
    assert!(read[1] as f64 <= read[0] as f64 * 1.25, "{read:?}");
    assert!(read[1] <= 30 * (200 * 3 + 24 * 3 + 3 * 4), "{read:?}");
}

#[tokio::test]
async fn the_binary_reports_and_answers_the_api_and_names_missing_config() {
    use tests::function_process::{binary_path, FunctionProcess};
    use tests::lambda_runtime_api::Outcome;
    let bin = binary_path("cost-analyzer", "debug");
    assert!(bin.exists(), "{} is missing: run `cargo build --workspace --bins` first", bin.display());
    let setup = Setup::new("ca-binary", None).await;
    setup.log(&month_of_usage()).await;
    let emu = emulators();
    let secret_arn = aws_sdk_secretsmanager::Client::new(&setup.sdk)
        .create_secret()
        .name("ca-binary/slack")
        .secret_string(json!({"signing_secret": "s", "bot_token": TEST_BOT_TOKEN}).to_string())
        .send()
        .await
        .expect("secret")
        .arn
        .unwrap_or_default();
    let env = |skip: &str| -> Vec<(String, String)> {
        [
            ("AWS_ENDPOINT_URL", emu.moto.endpoint()),
            ("USAGE_TABLE", setup.usage_table.clone()),
            ("CONVERSATIONS_TABLE", "ca-binary-conversations".into()),
            ("AUDIT_TABLE", setup.audit_table.clone()),
            ("ANALYTICS_BUCKET", setup.bucket.clone()),
            ("ATHENA_WORKGROUP", setup.workgroup.clone()),
            ("GLUE_DATABASE", "slack_bot_analytics".into()),
            ("SLACK_SECRET_ARN", secret_arn.clone()),
            ("SLACK_API_BASE", emu.slack.api_base()),
            ("REPORT_CHANNEL_ID", "CBINARY1".into()),
        ]
        .into_iter()
        .filter(|(k, _)| *k != skip)
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    };
    let logs = std::env::temp_dir();
    let f = FunctionProcess::start(&bin, &env(""), 256, &logs.join("cost-analyzer-binary.log")).expect("start");
    let fixture = |name: &str| -> Value {
        let path = tests::moto::workspace_root().join("events").join(name);
        serde_json::from_str(&std::fs::read_to_string(&path).expect("fixture")).expect("fixture JSON")
    };
    let scheduled = fixture("schedule/cost_analyzer.json");
    let (outcome, f) =
        tokio::task::spawn_blocking(move || (f.invoke(scheduled, Duration::from_secs(60)), f)).await.expect("join");
    match outcome {
        Ok(Outcome::Response(v)) => {
            assert_eq!(v["s3_key"], "reports/daily/2026-03-10.json", "{v}");
            assert!(v["slack_ts"].is_string() && v["chart_file_id"].is_string(), "{v}");
        }
        other => panic!("{other:?}\n{}", f.output()),
    }
    assert!(emu
        .slack
        .calls()
        .iter()
        .any(|c| c.method == "files.completeUploadExternal" && c.param("channel_id") == "CBINARY1"));
    let request = fixture("admin/list_agents.json");
    let (outcome, f) =
        tokio::task::spawn_blocking(move || (f.invoke(request, Duration::from_secs(30)), f)).await.expect("join");
    match outcome {
        Ok(Outcome::Response(v)) => {
            assert_eq!(v["statusCode"], 200, "{v}");
            let body: Value = serde_json::from_str(v["body"].as_str().unwrap_or_default()).expect("body");
            assert_eq!(body["agents"].as_array().map(Vec::len), Some(2), "{body}");
        }
        other => panic!("{other:?}\n{}", f.output()),
    }
    assert!(!f.output().contains(TEST_BOT_TOKEN), "the bot token never reaches the logs");

    let mut f =
        FunctionProcess::start(&bin, &env("AUDIT_TABLE"), 256, &logs.join("cost-analyzer-bad.log")).expect("start");
    let status = f.wait_exit(Duration::from_secs(20)).expect("exits at init");
    assert!(!status.success());
    assert!(f.output().contains("AUDIT_TABLE is not set"), "{}", f.output());
}
