//! The event archive's SQL, for real: every Athena named query in template.yaml and the seed's
//! three queries run with DuckDB over Parquet objects converted (with the Glue table's schema)
//! from the exact NDJSON bytes the worker's Firehose sink sends; results are checked against
//! figures computed here from the generated events. Plus the template's archive wiring.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::OnceLock;

use chrono::{Duration, NaiveDate};
use serde_json::{json, Value};
use serde_yaml::Value as Yaml;
use shared::domain::{AnalyticsEvent, Outcome};
use tests::sql::{
    generate_events, to_duckdb, write_archive, Archive, DuckDb, Layout, Rows, Template, SEED_QUERIES, TRINO_MACROS,
};

/// "Today" for the named queries' `current_date`.
fn today() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 4, 20).unwrap()
}

struct Fixture {
    events: Vec<AnalyticsEvent>,
    parquet: Archive,
    seed_json: Archive,
}

/// 51 days (2026-03-01 to today) of 60 turns a day, archived as the template's Firehose stream
/// writes them, and in the seed's layout for comparison.
fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let template = Template::load().expect("template");
        let columns = template.glue_columns("EventsTable", false).expect("events columns");
        let compression =
            template.firehose_parquet_compression("EventsStream").expect("EventsStream converts records to Parquet");
        let events = generate_events(NaiveDate::from_ymd_opt(2026, 3, 1).unwrap(), 51, 60, 7);
        let base = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("athena_sql");
        let _ = std::fs::remove_dir_all(&base);
        let parquet = write_archive(&base.join("parquet"), &events, Layout::Parquet { compression }, 900, &columns)
            .expect("parquet archive");
        let seed_json =
            write_archive(&base.join("seed"), &events, Layout::SeedJson, 3600, &columns).expect("seed-layout archive");
        Fixture { events, parquet, seed_json }
    })
}

fn run(archive: &Archive, queries: &[(String, String)]) -> Vec<Rows> {
    let setup = archive.setup().expect("setup");
    let results = DuckDb::locate().expect("duckdb").query(&setup, queries).expect("duckdb runner");
    results.into_iter().map(|r| r.unwrap_or_else(|e| panic!("query failed: {e}"))).collect()
}

// ------------------------------------------------------------------------------------------
// Comparing rows

fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_i64(), y.as_i64()) {
            (Some(x), Some(y)) => x == y,
            _ => {
                let (x, y) = (x.as_f64().unwrap(), y.as_f64().unwrap());
                (x - y).abs() <= 1e-9 * x.abs().max(y.abs()).max(1e-9)
            }
        },
        (Value::Array(x), Value::Array(y)) => x.len() == y.len() && x.iter().zip(y).all(|(x, y)| same(x, y)),
        _ => a == b,
    }
}

fn assert_rows(what: &str, got: &Rows, columns: &[&str], want: &[Vec<Value>]) {
    assert_eq!(got.columns, columns, "{what}: columns");
    assert!(!want.is_empty(), "{what}: the generated events must give this query something to return");
    assert_eq!(got.rows.len(), want.len(), "{what}: row count\n got: {:?}\nwant: {:?}", got.rows, want);
    for (i, (g, w)) in got.rows.iter().zip(want).enumerate() {
        let row_ok = g.len() == w.len() && g.iter().zip(w).all(|(g, w)| same(g, w));
        assert!(row_ok, "{what}: row {i}\n got: {g:?}\nwant: {w:?}");
    }
}

// ------------------------------------------------------------------------------------------
// Expectations, computed from the events

fn day(e: &AnalyticsEvent) -> &str {
    &e.timestamp[..10]
}

fn since(days: i64) -> String {
    (today() - Duration::days(days)).to_string()
}

fn within(days: i64) -> impl Iterator<Item = &'static AnalyticsEvent> {
    let from = since(days);
    fixture().events.iter().filter(move |e| day(e) >= from.as_str())
}

fn cost(e: &AnalyticsEvent) -> f64 {
    e.estimated_cost_usd.unwrap_or(0.0)
}

fn unpriced(e: &AnalyticsEvent) -> u64 {
    u64::from(e.estimated_cost_usd.is_none())
}

/// Group totals used by the cost queries.
#[derive(Default)]
struct Totals {
    turns: u64,
    users: BTreeSet<String>,
    sessions: BTreeSet<String>,
    input: u64,
    output: u64,
    cost: f64,
    unpriced: u64,
}

impl Totals {
    fn add(&mut self, e: &AnalyticsEvent) {
        self.turns += 1;
        self.users.insert(e.user_id.clone());
        self.sessions.insert(e.session_id.clone());
        self.input += e.input_tokens;
        self.output += e.output_tokens;
        self.cost += cost(e);
        self.unpriced += unpriced(e);
    }
}

fn group<K: Ord>(
    events: impl Iterator<Item = &'static AnalyticsEvent>,
    key: impl Fn(&AnalyticsEvent) -> K,
) -> BTreeMap<K, Totals> {
    let mut m: BTreeMap<K, Totals> = BTreeMap::new();
    for e in events {
        m.entry(key(e)).or_default().add(e);
    }
    m
}

fn opt<T: Into<Value>>(v: Option<T>) -> Value {
    v.map_or(Value::Null, Into::into)
}

/// What each named query must return, by logical id: (columns, rows).
fn expected(logical_id: &str) -> (Vec<&'static str>, Vec<Vec<Value>>) {
    match logical_id {
        "MostActiveUsersQuery" => {
            let mut rows: Vec<(String, Totals)> = group(within(30), |e| e.user_id.clone()).into_iter().collect();
            rows.sort_by(|a, b| b.1.turns.cmp(&a.1.turns).then(a.0.cmp(&b.0)));
            let rows = rows
                .into_iter()
                .take(25)
                .map(|(u, t)| {
                    vec![json!(u), json!(t.turns), json!(t.sessions.len()), json!(t.input + t.output), json!(t.cost)]
                })
                .collect();
            (vec!["user_id", "turns", "threads", "tokens", "cost_usd"], rows)
        }
        "KnowledgeBaseUsageQuery" => {
            let mut m: BTreeMap<String, (u64, BTreeSet<String>)> = BTreeMap::new();
            for e in within(30) {
                for kb in &e.knowledge_bases {
                    let s = m.entry(kb.clone()).or_default();
                    s.0 += 1;
                    s.1.insert(e.user_id.clone());
                }
            }
            let mut rows: Vec<_> = m.into_iter().collect();
            rows.sort_by(|a, b| b.1 .0.cmp(&a.1 .0).then(a.0.cmp(&b.0)));
            let rows = rows.into_iter().map(|(kb, (n, u))| vec![json!(kb), json!(n), json!(u.len())]).collect();
            (vec!["knowledge_base", "turns", "users"], rows)
        }
        "ContentGapsQuery" => {
            let mut rows: Vec<&AnalyticsEvent> = within(30)
                .filter(|e| e.outcome == Outcome::Answered && (e.knowledge_bases.is_empty() || e.sources.is_empty()))
                .collect();
            rows.sort_by(|a, b| b.timestamp.cmp(&a.timestamp).then(a.event_id.cmp(&b.event_id)));
            let rows = rows
                .into_iter()
                .take(100)
                .map(|e| {
                    let gap = if e.knowledge_bases.is_empty() { "no_knowledge_base" } else { "no_sources" };
                    vec![
                        json!(e.timestamp),
                        json!(gap),
                        json!(e.user_id),
                        json!(e.agent_id),
                        json!(e.search_queries),
                        opt(e.rationale.clone()),
                        json!(e.event_id),
                    ]
                })
                .collect();
            (vec!["timestamp", "gap", "user_id", "agent_id", "search_queries", "rationale", "event_id"], rows)
        }
        "PopularSearchQueriesQuery" => {
            let mut m: BTreeMap<(String, String), (u64, BTreeSet<String>)> = BTreeMap::new();
            for e in within(30) {
                for q in &e.search_queries {
                    let s = m.entry((e.agent_id.clone(), q.trim().to_lowercase())).or_default();
                    s.0 += 1;
                    s.1.insert(e.user_id.clone());
                }
            }
            let mut rows: Vec<_> = m.into_iter().collect();
            rows.sort_by(|a, b| b.1 .0.cmp(&a.1 .0).then(a.0.cmp(&b.0)));
            let rows = rows
                .into_iter()
                .take(100)
                .map(|((agent, q), (n, u))| vec![json!(agent), json!(q), json!(n), json!(u.len())])
                .collect();
            (vec!["agent_id", "search_query", "searches", "users"], rows)
        }
        "CostByUserPerDayQuery" => {
            let mut rows: Vec<_> = group(within(30), |e| (day(e).to_string(), e.user_id.clone())).into_iter().collect();
            rows.sort_by(|a, b| b.0 .0.cmp(&a.0 .0).then(b.1.cost.total_cmp(&a.1.cost)).then(a.0 .1.cmp(&b.0 .1)));
            let rows = rows
                .into_iter()
                .map(|((d, u), t)| {
                    vec![
                        json!(d),
                        json!(u),
                        json!(t.turns),
                        json!(t.input),
                        json!(t.output),
                        json!(t.cost),
                        json!(t.unpriced),
                    ]
                })
                .collect();
            (vec!["day", "user_id", "turns", "input_tokens", "output_tokens", "cost_usd", "unpriced_turns"], rows)
        }
        "CostByAgentPerDayQuery" => {
            let key = |e: &AnalyticsEvent| (day(e).to_string(), e.agent_id.clone(), e.agent_alias_id.clone());
            let mut rows: Vec<_> = group(within(30), key).into_iter().collect();
            rows.sort_by(|a, b| {
                b.0 .0
                    .cmp(&a.0 .0)
                    .then(b.1.cost.total_cmp(&a.1.cost))
                    .then((&a.0 .1, &a.0 .2).cmp(&(&b.0 .1, &b.0 .2)))
            });
            let rows = rows
                .into_iter()
                .map(|((d, agent, alias), t)| {
                    vec![
                        json!(d),
                        json!(agent),
                        json!(alias),
                        json!(t.turns),
                        json!(t.users.len()),
                        json!(t.input),
                        json!(t.output),
                        json!(t.cost),
                        json!(t.unpriced),
                    ]
                })
                .collect();
            let cols = vec![
                "day",
                "agent_id",
                "agent_alias_id",
                "turns",
                "users",
                "input_tokens",
                "output_tokens",
                "cost_usd",
                "unpriced_turns",
            ];
            (cols, rows)
        }
        "CostByModelPerDayQuery" => {
            let models = |e: &AnalyticsEvent| {
                let mut m = e.model_ids.clone();
                m.sort();
                if m.is_empty() {
                    "(none)".to_string()
                } else {
                    m.join(" + ")
                }
            };
            let mut rows: Vec<_> = group(within(30), |e| (day(e).to_string(), models(e))).into_iter().collect();
            rows.sort_by(|a, b| b.0 .0.cmp(&a.0 .0).then(b.1.cost.total_cmp(&a.1.cost)).then(a.0 .1.cmp(&b.0 .1)));
            let rows = rows
                .into_iter()
                .map(|((d, m), t)| {
                    vec![
                        json!(d),
                        json!(m),
                        json!(t.turns),
                        json!(t.input),
                        json!(t.output),
                        json!(t.cost),
                        json!(t.unpriced),
                    ]
                })
                .collect();
            (vec!["day", "models", "turns", "input_tokens", "output_tokens", "cost_usd", "unpriced_turns"], rows)
        }
        "FailedAndBlockedTurnsQuery" => {
            let mut rows: Vec<&AnalyticsEvent> =
                within(7).filter(|e| matches!(e.outcome, Outcome::Failed | Outcome::GuardrailBlocked)).collect();
            rows.sort_by(|a, b| b.timestamp.cmp(&a.timestamp).then(a.event_id.cmp(&b.event_id)));
            let rows = rows
                .into_iter()
                .take(200)
                .map(|e| {
                    vec![
                        json!(e.timestamp),
                        json!(e.outcome.as_str()),
                        opt(e.error_code.clone()),
                        opt(e.guardrail_action.clone()),
                        json!(e.agent_id),
                        json!(e.user_id),
                        json!(e.channel_id),
                        json!(e.thread_id),
                        json!(e.latency_ms),
                        json!(e.event_id),
                    ]
                })
                .collect();
            let cols = vec![
                "timestamp",
                "outcome",
                "error_code",
                "guardrail_action",
                "agent_id",
                "user_id",
                "channel_id",
                "thread_id",
                "latency_ms",
                "event_id",
            ];
            (cols, rows)
        }
        "SlowestTurnsQuery" => {
            let mut rows: Vec<&AnalyticsEvent> = within(7).collect();
            rows.sort_by(|a, b| b.latency_ms.cmp(&a.latency_ms).then(a.event_id.cmp(&b.event_id)));
            let rows = rows
                .into_iter()
                .take(50)
                .map(|e| {
                    vec![
                        json!(e.timestamp),
                        json!(e.latency_ms),
                        opt(e.first_token_ms),
                        json!(e.outcome.as_str()),
                        json!(e.agent_id),
                        json!(e.user_id),
                        json!(e.model_ids),
                        json!(e.knowledge_bases),
                        json!(e.action_groups),
                        json!(e.input_tokens + e.output_tokens),
                        json!(e.event_id),
                    ]
                })
                .collect();
            let cols = vec![
                "timestamp",
                "latency_ms",
                "first_token_ms",
                "outcome",
                "agent_id",
                "user_id",
                "model_ids",
                "knowledge_bases",
                "action_groups",
                "tokens",
                "event_id",
            ];
            (cols, rows)
        }
        other => panic!("named query {other} has no expectation in tests/tests/athena_sql.rs: add one"),
    }
}

// ------------------------------------------------------------------------------------------
// Tests

#[test]
fn every_named_query_returns_what_the_events_say() {
    let template = Template::load().expect("template");
    let queries = template.named_queries().expect("named queries");
    let ids: BTreeSet<&str> = queries.iter().map(|q| q.logical_id.as_str()).collect();
    // The list: most active users, knowledge-base usage, content gaps, popular search
    // queries, cost by user / agent / model per day, failed and guardrail-blocked, slowest.
    let required = [
        "MostActiveUsersQuery",
        "KnowledgeBaseUsageQuery",
        "ContentGapsQuery",
        "PopularSearchQueriesQuery",
        "CostByUserPerDayQuery",
        "CostByAgentPerDayQuery",
        "CostByModelPerDayQuery",
        "FailedAndBlockedTurnsQuery",
        "SlowestTurnsQuery",
    ];
    for r in required {
        assert!(ids.contains(r), "template.yaml has no named query {r}");
    }
    let sql: Vec<(String, String)> =
        queries.iter().map(|q| (q.logical_id.clone(), to_duckdb(&q.sql, today()))).collect();
    let results = run(&fixture().parquet, &sql);
    for (q, got) in queries.iter().zip(&results) {
        let (columns, want) = expected(&q.logical_id);
        assert_rows(&q.logical_id, got, &columns, &want);
    }
}

#[test]
fn named_queries_read_only_the_days_they_ask_for() {
    // Each named query filters the dt partition with a constant, so Athena prunes partitions.
    let template = Template::load().expect("template");
    for q in template.named_queries().expect("named queries") {
        let sql = q.sql.to_ascii_lowercase();
        assert!(
            sql.contains("where dt >= cast(cast(current_date - interval '"),
            "{}: no partition filter on dt:\n{}",
            q.logical_id,
            q.sql
        );
        let (_, r) = template
            .resources_of_type("AWS::Athena::NamedQuery")
            .into_iter()
            .find(|(id, _)| *id == q.logical_id)
            .unwrap();
        let props = &r["Properties"];
        assert_eq!(ref_target(&props["Database"]), Some("GlueDatabase"), "{}: Database", q.logical_id);
        assert_eq!(ref_target(&props["WorkGroup"]), Some("AthenaWorkGroup"), "{}: WorkGroup", q.logical_id);
        assert!(!q.name.is_empty() && props["Description"].as_str().is_some_and(|d| !d.is_empty()), "{}", q.logical_id);
    }
}

fn ref_target(v: &Yaml) -> Option<&str> {
    match v {
        Yaml::Tagged(t) if t.tag == "!Ref" => t.value.as_str(),
        _ => None,
    }
}

fn seed_queries() -> Vec<(String, String)> {
    SEED_QUERIES.iter().map(|(id, sql)| (id.to_string(), sql.to_string())).collect()
}

fn check_seed_results(layout: &str, got: &[Rows]) {
    let recent: Vec<&AnalyticsEvent> =
        fixture().events.iter().filter(|e| e.timestamp.as_str() >= "2026-04-01").collect();
    assert!(recent.len() > 500 && recent.len() < fixture().events.len(), "the seed's date filter must cut");

    // Most active users: ORDER BY messages DESC has ties, so check counts, not tie order.
    let mut counts: BTreeMap<&str, u64> = BTreeMap::new();
    for e in &recent {
        *counts.entry(e.user_id.as_str()).or_default() += 1;
    }
    let mut top: Vec<u64> = counts.values().copied().collect();
    top.sort_unstable_by(|a, b| b.cmp(a));
    top.truncate(10);
    let rows = &got[0];
    assert_eq!(rows.columns, ["user_id", "messages"], "{layout}");
    let got_counts: Vec<u64> = rows.rows.iter().map(|r| r[1].as_u64().unwrap()).collect();
    assert_eq!(got_counts, top, "{layout}: most active users' counts");
    for r in &rows.rows {
        assert_eq!(counts.get(r[0].as_str().unwrap()), r[1].as_u64().as_ref(), "{layout}: {r:?}");
    }

    // Knowledge-base usage: every knowledge base with its hits, most first.
    let mut hits: BTreeMap<String, u64> = BTreeMap::new();
    for e in &recent {
        for kb in &e.knowledge_bases {
            *hits.entry(kb.clone()).or_default() += 1;
        }
    }
    let rows = &got[1];
    assert_eq!(rows.columns, ["kb", "hits"], "{layout}");
    let got_hits: BTreeMap<String, u64> =
        rows.rows.iter().map(|r| (r[0].as_str().unwrap().to_string(), r[1].as_u64().unwrap())).collect();
    assert_eq!(got_hits, hits, "{layout}: knowledge-base hits");
    assert!(rows.rows.windows(2).all(|w| w[0][1].as_u64() >= w[1][1].as_u64()), "{layout}: hits order");

    // No knowledge base: the 50 newest such turns.
    let mut gaps: Vec<&&AnalyticsEvent> = recent.iter().filter(|e| e.knowledge_bases.is_empty()).collect();
    gaps.sort_by(|a, b| b.timestamp.cmp(&a.timestamp));
    let want: Vec<Vec<Value>> = gaps
        .into_iter()
        .take(50)
        .map(|e| vec![json!(e.timestamp), json!(e.user_id), opt(e.rationale.clone())])
        .collect();
    assert_rows(&format!("{layout}: no knowledge base"), &got[2], &["timestamp", "user_id", "rationale"], &want);
}

#[test]
fn the_seeds_three_queries_run_unchanged_on_the_table() {
    // Only the Trino functions DuckDB lacks are defined (macros); the SQL text is the seed's.
    let f = fixture();
    check_seed_results("parquet archive", &run(&f.parquet, &seed_queries()));
    check_seed_results("seed layout", &run(&f.seed_json, &seed_queries()));
}

#[test]
fn trino_translation_is_only_the_listed_macros_and_keeps_trinos_meaning() {
    assert_eq!(TRINO_MACROS.len(), 2, "keep the translation tiny; each entry needs a case below");
    let setup: Vec<String> = TRINO_MACROS.iter().map(|m| m.to_string()).collect();
    let q = |id: &str, sql: &str| (id.to_string(), to_duckdb(sql, today()));
    let results = DuckDb::locate()
        .expect("duckdb")
        .query(
            &setup,
            &[
                q("cardinality", "SELECT cardinality(ARRAY['a', 'b']), cardinality(CAST(ARRAY[] AS array(varchar)))"),
                q("cardinality_null", "SELECT cardinality(CAST(NULL AS varchar[]))"),
                q(
                    "array_join",
                    "SELECT array_join(ARRAY['x', 'y', 'z'], ' + '), array_join(CAST(ARRAY[] AS varchar[]), ',')",
                ),
                q("current_date", "SELECT cast(cast(current_date - interval '30' day AS date) AS varchar)"),
            ],
        )
        .expect("runner");
    let rows: Vec<Vec<Value>> = results
        .into_iter()
        .map(|r| match r {
            Ok(rows) => rows.rows.into_iter().next().unwrap(),
            Err(e) => vec![json!(format!("error: {e}"))],
        })
        .collect();
    // Trino's `array(varchar)` type syntax is not DuckDB's: that one statement fails, the
    // named queries never use it (the `varchar[]` forms below are what they could use).
    assert!(rows[0][0].as_str().is_some_and(|e| e.starts_with("error")), "{:?}", rows[0]);
    assert_eq!(rows[1], vec![Value::Null]);
    assert_eq!(rows[2], vec![json!("x + y + z"), json!("")]);
    assert_eq!(rows[3], vec![json!("2026-03-21")]);
}

/// The Hive type an AnalyticsEvent field's Rust type is stored as.
trait HiveType {
    fn hive() -> String;
}
impl HiveType for String {
    fn hive() -> String {
        "string".into()
    }
}
impl HiveType for shared::domain::AgentBackend {
    fn hive() -> String {
        "string".into()
    }
}
impl HiveType for Outcome {
    fn hive() -> String {
        "string".into()
    }
}
impl HiveType for u64 {
    fn hive() -> String {
        "bigint".into()
    }
}
// Hive's int is signed 32-bit: an unsigned 32-bit value needs bigint.
impl HiveType for u32 {
    fn hive() -> String {
        "bigint".into()
    }
}
impl HiveType for f64 {
    fn hive() -> String {
        "double".into()
    }
}
impl<T: HiveType> HiveType for Option<T> {
    fn hive() -> String {
        T::hive()
    }
}
impl<T: HiveType> HiveType for Vec<T> {
    fn hive() -> String {
        format!("array<{}>", T::hive())
    }
}
fn hive_of<T: HiveType>(_: &T) -> String {
    T::hive()
}

/// (name, Hive type) of every AnalyticsEvent field, in declaration order. Destructured field by
/// field: a new field fails to compile here until it is listed.
macro_rules! event_fields {
    ($e:expr; $($f:ident),* $(,)?) => {{
        let AnalyticsEvent { $($f,)* } = $e;
        vec![$((stringify!($f).to_string(), hive_of(&$f))),*]
    }};
}

#[test]
fn glue_table_columns_are_exactly_the_analytics_event_fields() {
    // The opt-in message text is serialised only when present.
    let e = AnalyticsEvent { message_text: Some("question".into()), ..fixture().events[0].clone() };
    let serialized: Vec<String> = serde_json::to_value(&e).unwrap().as_object().unwrap().keys().cloned().collect();
    let fields = event_fields!(e;
        timestamp, user_id, thread_id, message_length, response_length, knowledge_bases, search_queries,
        rationale, event_id, team_id, channel_id, agent_id, agent_alias_id, session_id, action_groups,
        sources, model_ids, input_tokens, output_tokens, estimated_cost_usd, latency_ms, first_token_ms,
        outcome, error_code, guardrail_action, schema_version, agent_backend, message_text,
    );
    let names: BTreeSet<&String> = fields.iter().map(|(n, _)| n).collect();
    assert_eq!(names, serialized.iter().collect(), "serde names are the field names");
    let template = Template::load().expect("template");
    let columns: Vec<(String, String)> = template
        .glue_columns("EventsTable", false)
        .expect("columns")
        .into_iter()
        .map(|c| (c.name, c.hive_type))
        .collect();
    assert_eq!(columns, fields);
    let partitions = template.glue_columns("EventsTable", true).expect("partition keys");
    assert_eq!(partitions.len(), 1);
    assert_eq!((partitions[0].name.as_str(), partitions[0].hive_type.as_str()), ("dt", "string"));
}

fn sub_text(v: &Yaml) -> Option<&str> {
    match v {
        Yaml::Tagged(t) if t.tag == "!Sub" => t.value.as_str(),
        _ => None,
    }
}

#[test]
fn firehose_partitions_and_converts_as_the_glue_table_projects() {
    let template = Template::load().expect("template");
    let dest =
        &template.resource("EventsStream").expect("EventsStream")["Properties"]["ExtendedS3DestinationConfiguration"];
    let prefix = dest["Prefix"].as_str().expect("Prefix");
    assert_eq!(prefix, "events/dt=!{timestamp:yyyy-MM-dd}/");
    let errors = dest["ErrorOutputPrefix"].as_str().expect("ErrorOutputPrefix");
    assert!(errors.starts_with("errors/") && errors.contains("!{firehose:error-output-type}"), "{errors}");
    assert!(!errors.starts_with("events/"), "failed records must not land inside the table's location");

    let conv = &dest["DataFormatConversionConfiguration"];
    assert_eq!(conv["Enabled"].as_bool(), Some(true));
    assert!(conv["InputFormatConfiguration"]["Deserializer"].get("OpenXJsonSerDe").is_some());
    let schema = &conv["SchemaConfiguration"];
    assert_eq!(ref_target(&schema["DatabaseName"]), Some("GlueDatabase"));
    assert_eq!(ref_target(&schema["TableName"]), Some("EventsTable"));
    assert_eq!(schema["VersionId"].as_str(), Some("LATEST"));
    // Parquet compresses per column; Firehose rejects whole-object compression with conversion.
    assert_eq!(dest["CompressionFormat"].as_str(), Some("UNCOMPRESSED"));
    assert!(dest["BufferingHints"]["SizeInMBs"].as_u64().unwrap() >= 64, "conversion needs >= 64 MB buffers");

    let input = &template.resource("EventsTable").unwrap()["Properties"]["TableInput"];
    let params = &input["Parameters"];
    assert_eq!(params["projection.enabled"].as_str(), Some("true"));
    assert_eq!(params["projection.dt.type"].as_str(), Some("date"));
    assert_eq!(params["projection.dt.format"].as_str(), Some("yyyy-MM-dd"));
    let location = sub_text(&params["storage.location.template"]).expect("storage.location.template is a !Sub");
    // The projected location is exactly where Firehose's prefix puts each day.
    assert_eq!(location, format!("s3://${{AnalyticsBucket}}/{}", prefix.replace("!{timestamp:yyyy-MM-dd}", "${!dt}")));
    let serde = input["StorageDescriptor"]["SerdeInfo"]["SerializationLibrary"].as_str();
    assert_eq!(serde, Some("org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe"));
    assert!(template.resources_of_type("AWS::Glue::Crawler").is_empty(), "partition projection needs no crawler");
}

#[test]
fn athena_workgroup_limits_scans_and_encrypts_results() {
    let template = Template::load().expect("template");
    let wg = &template.resource("AthenaWorkGroup").expect("AthenaWorkGroup")["Properties"];
    let conf = &wg["WorkGroupConfiguration"];
    assert_eq!(conf["EnforceWorkGroupConfiguration"].as_bool(), Some(true));
    assert_eq!(ref_target(&conf["BytesScannedCutoffPerQuery"]), Some("AthenaBytesScannedCutoffPerQuery"));
    let param = template.parameter("AthenaBytesScannedCutoffPerQuery").expect("cutoff parameter");
    assert!(param["MinValue"].as_u64().unwrap() >= 10_485_760, "Athena's minimum cutoff is 10 MB");
    let result = &conf["ResultConfiguration"];
    assert!(matches!(
        result["EncryptionConfiguration"]["EncryptionOption"].as_str(),
        Some("SSE_S3" | "SSE_KMS" | "CSE_KMS")
    ));
    let out = sub_text(&result["OutputLocation"]).expect("OutputLocation is a !Sub");
    assert_eq!(out, "s3://${AnalyticsBucket}/athena-results/");
}
