//! Athena SQL run locally: the template's named queries and events table, executed with DuckDB
//! (the tools venv's python `duckdb`, driven through `tests/sql/duckdb_runner.py`) over objects
//! laid out as Firehose writes them, from the bytes the worker's Firehose sink sends.
//!
//! The SQL stays Athena's (Trino) dialect. DuckDB gets it through [`to_duckdb`], whose whole
//! translation is [`TRINO_MACROS`] plus pinning `current_date` to the test's "today".

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use chrono::{DateTime, Duration, NaiveDate, Utc};
use serde_json::{json, Value};
use serde_yaml::Value as Yaml;
use shared::aws::firehose::encode_event;
use shared::domain::{AgentBackend, AnalyticsEvent, Outcome, ANALYTICS_SCHEMA_VERSION};

use crate::moto::{tools_bin, workspace_root};

fn err(msg: impl Into<String>) -> std::io::Error {
    std::io::Error::other(msg.into())
}

// ------------------------------------------------------------------------------------------
// template.yaml

/// The SAM template, parsed (CloudFormation short-form tags such as `!Ref` become tagged values).
pub struct Template {
    root: Yaml,
}

/// An `AWS::Athena::NamedQuery` of the template.
#[derive(Debug, Clone)]
pub struct NamedQuery {
    pub logical_id: String,
    pub name: String,
    pub sql: String,
}

/// A column of a Glue table: name and Hive type (`string`, `bigint`, `array<string>`...).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GlueColumn {
    pub name: String,
    pub hive_type: String,
}

impl Template {
    /// Reads `template.yaml` at the workspace root.
    pub fn load() -> std::io::Result<Template> {
        let path = workspace_root().join("template.yaml");
        let text = std::fs::read_to_string(&path)?;
        Template::parse(&text).map_err(|e| err(format!("{}: {e}", path.display())))
    }

    /// Parses template text.
    pub fn parse(text: &str) -> Result<Template, String> {
        let root: Yaml = serde_yaml::from_str(text).map_err(|e| format!("not YAML: {e}"))?;
        Ok(Template { root })
    }

    /// A parameter by name.
    pub fn parameter(&self, name: &str) -> Option<&Yaml> {
        self.root.get("Parameters")?.get(name)
    }

    /// A resource by logical id.
    pub fn resource(&self, logical_id: &str) -> Option<&Yaml> {
        self.root.get("Resources")?.get(logical_id)
    }

    /// Logical ids and bodies of the resources of one type, in template order.
    pub fn resources_of_type(&self, ty: &str) -> Vec<(String, &Yaml)> {
        let Some(Yaml::Mapping(resources)) = self.root.get("Resources") else { return Vec::new() };
        resources
            .iter()
            .filter(|(_, r)| r.get("Type").and_then(Yaml::as_str) == Some(ty))
            .filter_map(|(k, r)| Some((k.as_str()?.to_string(), r)))
            .collect()
    }

    /// Every `AWS::Athena::NamedQuery`, with its SQL.
    pub fn named_queries(&self) -> Result<Vec<NamedQuery>, String> {
        self.resources_of_type("AWS::Athena::NamedQuery")
            .into_iter()
            .map(|(id, r)| {
                let props = r.get("Properties").ok_or_else(|| format!("{id}: no Properties"))?;
                let sql = props
                    .get("QueryString")
                    .and_then(Yaml::as_str)
                    .ok_or_else(|| format!("{id}: QueryString is not a plain string"))?;
                let name = props.get("Name").and_then(Yaml::as_str).unwrap_or_default();
                Ok(NamedQuery { logical_id: id, name: name.to_string(), sql: sql.to_string() })
            })
            .collect()
    }

    /// The columns (`Columns`, or `PartitionKeys` when `partition_keys`) of a Glue table resource.
    pub fn glue_columns(&self, table_id: &str, partition_keys: bool) -> Result<Vec<GlueColumn>, String> {
        let input = self
            .resource(table_id)
            .and_then(|r| r.get("Properties")?.get("TableInput"))
            .ok_or_else(|| format!("{table_id}: no Properties.TableInput"))?;
        let list = if partition_keys {
            input.get("PartitionKeys")
        } else {
            input.get("StorageDescriptor").and_then(|s| s.get("Columns"))
        };
        let Some(Yaml::Sequence(list)) = list else { return Err(format!("{table_id}: no column list")) };
        list.iter()
            .map(|c| {
                let field = |k: &str| c.get(k).and_then(Yaml::as_str).map(str::to_string);
                match (field("Name"), field("Type")) {
                    (Some(name), Some(hive_type)) => Ok(GlueColumn { name, hive_type }),
                    _ => Err(format!("{table_id}: column without Name or Type: {c:?}")),
                }
            })
            .collect()
    }

    /// The Parquet compression of a Firehose stream's record format conversion, if it converts.
    pub fn firehose_parquet_compression(&self, stream_id: &str) -> Option<String> {
        let conv = self
            .resource(stream_id)?
            .get("Properties")?
            .get("ExtendedS3DestinationConfiguration")?
            .get("DataFormatConversionConfiguration")?;
        if conv.get("Enabled").and_then(Yaml::as_bool) != Some(true) {
            return None;
        }
        let serde = conv.get("OutputFormatConfiguration")?.get("Serializer")?.get("ParquetSerDe")?;
        // Firehose's default Parquet compression is SNAPPY.
        Some(serde.get("Compression").and_then(Yaml::as_str).unwrap_or("SNAPPY").to_string())
    }
}

/// The DuckDB type of a Hive/Glue column type (the types the events table uses).
pub fn duckdb_type(hive_type: &str) -> Result<String, String> {
    let t = hive_type.trim().to_ascii_lowercase();
    if let Some(inner) = t.strip_prefix("array<").and_then(|r| r.strip_suffix('>')) {
        return Ok(format!("{}[]", duckdb_type(inner)?));
    }
    Ok(match t.as_str() {
        "string" => "VARCHAR",
        "int" => "INTEGER",
        "bigint" => "BIGINT",
        "double" => "DOUBLE",
        "boolean" => "BOOLEAN",
        _ => return Err(format!("Glue type {hive_type:?} has no DuckDB mapping here")),
    }
    .to_string())
}

// ------------------------------------------------------------------------------------------
// Trino -> DuckDB

/// Trino functions the named queries use that DuckDB lacks or defines differently, as DuckDB
/// macros with Trino's meaning. The only other difference handled is `current_date`.
pub const TRINO_MACROS: &[&str] = &[
    // Trino: number of elements of an array. DuckDB: maps only.
    "CREATE OR REPLACE MACRO cardinality(a) AS len(a)",
    // Trino: array_join(array, separator). DuckDB: array_to_string.
    "CREATE OR REPLACE MACRO array_join(a, sep) AS array_to_string(a, sep)",
];

/// The query as DuckDB runs it: `current_date` (outside string literals and quoted names)
/// becomes the literal `DATE 'today'`, so results do not depend on the day the test runs.
pub fn to_duckdb(sql: &str, today: NaiveDate) -> String {
    const WORD: &str = "current_date";
    let mut out = String::with_capacity(sql.len());
    let bytes = sql.as_bytes();
    let mut i = 0;
    let mut quote: Option<u8> = None;
    while i < bytes.len() {
        let c = bytes[i];
        if let Some(q) = quote {
            if c == q {
                quote = None;
            }
        } else if c == b'\'' || c == b'"' {
            quote = Some(c);
        } else if sql.len() >= i + WORD.len()
            && sql.is_char_boundary(i + WORD.len())
            && sql[i..i + WORD.len()].eq_ignore_ascii_case(WORD)
            && (i == 0 || !is_ident(bytes[i - 1]))
            && bytes.get(i + WORD.len()).is_none_or(|&b| !is_ident(b))
        {
            out.push_str(&format!("DATE '{today}'"));
            i += WORD.len();
            continue;
        }
        // Copy one whole UTF-8 character.
        let len = sql[i..].chars().next().map_or(1, char::len_utf8);
        out.push_str(&sql[i..i + len]);
        i += len;
    }
    out
}

fn is_ident(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

// ------------------------------------------------------------------------------------------
// The archive on disk

/// How events are laid out in the bucket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Layout {
    /// Seed 000 as the comparison baseline: plain NDJSON objects under `events/`, no partitions.
    SeedJson,
    /// Firehose GZIP objects of NDJSON under `events/dt=YYYY-MM-DD/`.
    JsonGzip,
    /// Firehose record format conversion: Parquet objects (this compression) under `events/dt=.../`.
    Parquet { compression: String },
}

/// The seed's three queries (seed 000), byte for byte.
pub const SEED_MOST_ACTIVE: &str = "SELECT user_id, COUNT(*) as messages
FROM events
WHERE timestamp >= '2026-04-01'
GROUP BY user_id
ORDER BY messages DESC
LIMIT 10;";
pub const SEED_KB_USAGE: &str = "SELECT kb, COUNT(*) as hits
FROM events
CROSS JOIN UNNEST(knowledge_bases) AS t(kb)
WHERE timestamp >= '2026-04-01'
GROUP BY kb
ORDER BY hits DESC;";
pub const SEED_NO_KB: &str = "SELECT timestamp, user_id, rationale
FROM events
WHERE cardinality(knowledge_bases) = 0
  AND timestamp >= '2026-04-01'
ORDER BY timestamp DESC
LIMIT 50;";

/// The seed's three queries with short ids, in the seed's order.
pub const SEED_QUERIES: [(&str, &str); 3] =
    [("most_active", SEED_MOST_ACTIVE), ("kb_usage", SEED_KB_USAGE), ("no_kb", SEED_NO_KB)];

/// An archive written by [`write_archive`].
#[derive(Debug, Clone)]
pub struct Archive {
    pub root: PathBuf,
    pub layout: Layout,
    /// The objects written, as Firehose would deliver them.
    pub objects: Vec<PathBuf>,
    /// The Glue columns the archive was written (Parquet) and is read with.
    pub columns: Vec<GlueColumn>,
}

/// Writes `events` under `root` as Firehose delivers them: one object per `buffer_secs` window
/// of event time, holding the exact bytes `FirehoseAnalytics` puts (`encode_event`), in `layout`.
pub fn write_archive(
    root: &Path,
    events: &[AnalyticsEvent],
    layout: Layout,
    buffer_secs: i64,
    columns: &[GlueColumn],
) -> std::io::Result<Archive> {
    let mut windows: BTreeMap<i64, Vec<u8>> = BTreeMap::new();
    for e in events {
        let t = parse_ts(&e.timestamp).map_err(err)?;
        let bytes = encode_event(e).map_err(|x| err(x.to_string()))?;
        windows.entry(t.timestamp().div_euclid(buffer_secs) * buffer_secs).or_default().extend(bytes);
    }
    let mut objects = Vec::new();
    let mut conversions = Vec::new();
    for (start, body) in windows {
        let start = DateTime::<Utc>::from_timestamp(start, 0).ok_or_else(|| err("window out of range"))?;
        let stamp = start.format("%Y-%m-%d-%H-%M-%S");
        let dt = start.format("%Y-%m-%d");
        let path = match &layout {
            Layout::SeedJson => root.join(format!("events/events-1-{stamp}.json")),
            Layout::JsonGzip => root.join(format!("events/dt={dt}/events-1-{stamp}.gz")),
            Layout::Parquet { .. } => root.join(format!("events/dt={dt}/events-1-{stamp}.parquet")),
        };
        std::fs::create_dir_all(path.parent().unwrap_or(root))?;
        match &layout {
            Layout::SeedJson => std::fs::write(&path, &body)?,
            Layout::JsonGzip => {
                let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
                gz.write_all(&body)?;
                std::fs::write(&path, gz.finish()?)?;
            }
            Layout::Parquet { .. } => {
                let staged = root.join(format!("staging/{stamp}.json"));
                std::fs::create_dir_all(root.join("staging"))?;
                std::fs::write(&staged, &body)?;
                conversions.push(json!([staged, path]));
            }
        }
        objects.push(path);
    }
    if let Layout::Parquet { compression } = &layout {
        let types = duckdb_columns(columns)?;
        let req = json!({"op": "convert", "columns": types, "compression": compression.to_ascii_lowercase(),
                         "files": conversions});
        DuckDb::locate()?.call(&req)?;
        std::fs::remove_dir_all(root.join("staging"))?;
    }
    Ok(Archive { root: root.to_path_buf(), layout, objects, columns: columns.to_vec() })
}

fn duckdb_columns(columns: &[GlueColumn]) -> std::io::Result<serde_json::Map<String, Value>> {
    columns.iter().map(|c| Ok((c.name.clone(), Value::String(duckdb_type(&c.hive_type).map_err(err)?)))).collect()
}

impl Archive {
    /// DuckDB statements defining the `events` table over this archive (with the `dt` partition
    /// column as a string, as the Glue table declares it) and the Trino macros.
    pub fn setup(&self) -> std::io::Result<Vec<String>> {
        let root = self.root.display().to_string().replace('\'', "''");
        let columns = duckdb_columns(&self.columns)?
            .into_iter()
            .map(|(k, v)| format!("'{k}': '{}'", v.as_str().unwrap_or_default()))
            .collect::<Vec<_>>()
            .join(", ");
        let source = match &self.layout {
            Layout::SeedJson => format!(
                "read_json('{root}/events/*.json', format = 'newline_delimited', columns = {{{columns}}})"
            ),
            Layout::JsonGzip => format!(
                "read_json('{root}/events/dt=*/*.gz', format = 'newline_delimited', columns = {{{columns}}}, \
                 hive_partitioning = true, hive_types = {{'dt': 'VARCHAR'}})"
            ),
            Layout::Parquet { .. } => format!(
                "read_parquet('{root}/events/dt=*/*.parquet', hive_partitioning = true, hive_types = {{'dt': 'VARCHAR'}})"
            ),
        };
        let mut setup: Vec<String> = TRINO_MACROS.iter().map(|m| m.to_string()).collect();
        setup.push(format!("CREATE VIEW events AS SELECT * FROM {source}"));
        Ok(setup)
    }
}

/// Rows returned by one query.
#[derive(Debug, Clone, PartialEq)]
pub struct Rows {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<Value>>,
}

/// The python DuckDB runner of the tools venv.
pub struct DuckDb {
    python: PathBuf,
    script: PathBuf,
}

impl DuckDb {
    /// Finds the venv's python (`SLACKBR_TOOLS_BIN` or `scripts/tools.sh`) and the runner script.
    pub fn locate() -> std::io::Result<DuckDb> {
        Ok(DuckDb { python: tools_bin()?.join("python"), script: workspace_root().join("tests/sql/duckdb_runner.py") })
    }

    fn call(&self, request: &Value) -> std::io::Result<Value> {
        let mut child = Command::new(&self.python)
            .arg(&self.script)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| err(format!("{}: {e}", self.python.display())))?;
        if let Some(mut stdin) = child.stdin.take() {
            stdin.write_all(&serde_json::to_vec(request)?)?;
        }
        let out = child.wait_with_output()?;
        let resp: Value = serde_json::from_slice(&out.stdout).map_err(|e| {
            err(format!("duckdb runner gave no JSON ({e}); stderr: {}", String::from_utf8_lossy(&out.stderr)))
        })?;
        if resp["ok"] != Value::Bool(true) {
            return Err(err(format!("duckdb runner: {}", resp["error"])));
        }
        Ok(resp)
    }

    /// Runs `setup`, then each `(id, sql)` as given; one result per query, in order.
    pub fn query(&self, setup: &[String], queries: &[(String, String)]) -> std::io::Result<Vec<Result<Rows, String>>> {
        let qs: Vec<Value> = queries.iter().map(|(id, sql)| json!({"id": id, "sql": sql})).collect();
        let resp = self.call(&json!({"op": "query", "setup": setup, "queries": qs}))?;
        let results = resp["results"].as_array().ok_or_else(|| err("duckdb runner: no results"))?;
        Ok(results
            .iter()
            .map(|r| {
                if let Some(e) = r.get("error") {
                    return Err(format!("{}: {}", r["id"], e.as_str().unwrap_or_default()));
                }
                let columns = r["columns"].as_array().into_iter().flatten();
                let rows = r["rows"].as_array().into_iter().flatten();
                Ok(Rows {
                    columns: columns.filter_map(|c| c.as_str().map(str::to_string)).collect(),
                    rows: rows.map(|row| row.as_array().cloned().unwrap_or_default()).collect(),
                })
            })
            .collect())
    }
}

// ------------------------------------------------------------------------------------------
// Generated events

/// SplitMix64: a small deterministic generator, so generated archives are reproducible.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

const WORDS: &[&str] = &[
    "password",
    "rotation",
    "policy",
    "remote",
    "employees",
    "vpn",
    "laptop",
    "onboarding",
    "access",
    "request",
    "jira",
    "ticket",
    "escalation",
    "incident",
    "outage",
    "database",
    "backup",
    "restore",
    "expense",
    "travel",
    "reimbursement",
    "holiday",
    "leave",
    "entitlement",
    "benefits",
    "payroll",
    "security",
    "compliance",
    "audit",
    "training",
    "mfa",
    "token",
    "account",
    "locked",
    "printer",
    "wifi",
    "office",
    "badge",
    "contractor",
    "procurement",
    "license",
    "software",
    "install",
    "update",
    "deployment",
    "pipeline",
    "kubernetes",
    "cluster",
    "latency",
    "alert",
    "runbook",
    "oncall",
    "sla",
    "customer",
    "refund",
    "invoice",
    "quota",
    "budget",
    "forecast",
    "report",
    "dashboard",
    "metrics",
];
const RATIONALE_OPENERS: &[&str] = &[
    "The user is asking about",
    "User wants to know how to handle",
    "This is a question regarding",
    "The request concerns",
    "User reports a problem with",
    "Looking for documentation on",
];
const RATIONALE_PLANS: &[&str] = &[
    "I should search the knowledge base for",
    "Searching the policies knowledge base with",
    "I will look up tickets mentioning",
    "No tool is needed; answering directly about",
    "Checking the runbooks for",
];
const KNOWLEDGE_BASES: &[&str] = &["KBSECPOL01", "KBHRHANDB2", "KBRUNBOOK3", "KBFINANCE4", "KBENGWIKI5"];
const AGENTS: &[(&str, &str)] =
    &[("AGENTHELP1", "LIVEALIAS1"), ("AGENTHELP1", "TSTALIASID"), ("AGENTOPS02", "LIVEALIAS2")];
const MODELS: &[&str] = &[
    "anthropic.claude-3-haiku-20240307-v1:0",
    "us.anthropic.claude-3-5-sonnet-20241022-v2:0",
    "amazon.nova-lite-v1:0",
    "custom.unpriced-model-v1",
];
const ACTION_GROUPS: &[&str] = &["TicketActions/searchTickets", "TicketActions/getTicket", "TicketActions/getMyUsage"];

/// `min` to `min + extra - 1` words of the vocabulary.
fn words(rng: &mut Rng, min: u64, extra: u64) -> String {
    let n = min + rng.below(extra);
    (0..n).map(|_| rng.pick(WORDS).to_string()).collect::<Vec<_>>().join(" ")
}

/// `turns_per_day` events per UTC day for `days` days from `first_day`, in time order, with
/// the spread of a real deployment: skewed users, several agents and models, knowledge bases,
/// search queries, failures, guardrail blocks, refusals and unpriced models.
pub fn generate_events(first_day: NaiveDate, days: u32, turns_per_day: u32, seed: u64) -> Vec<AnalyticsEvent> {
    let mut rng = Rng::new(seed);
    let mut out = Vec::with_capacity(days as usize * turns_per_day as usize);
    let users: Vec<String> = (0..60).map(|i| format!("U{:08X}", 0x5A00_0000u64 + i * 7919)).collect();
    let channels: Vec<String> = (0..12).map(|i| format!("C{:08X}", 0xC100_0000u64 + i * 104_729)).collect();
    let mut threads: std::collections::HashMap<String, (String, String)> = std::collections::HashMap::new();
    for d in 0..days {
        let day = first_day + Duration::days(i64::from(d));
        let midnight = day.and_hms_opt(0, 0, 0).map(|t| t.and_utc()).unwrap_or_default();
        let mut seconds: Vec<u64> = (0..turns_per_day).map(|_| rng.below(86_400_000)).collect();
        seconds.sort_unstable();
        for (n, ms) in seconds.into_iter().enumerate() {
            let at = midnight + Duration::milliseconds(ms as i64);
            // Skewed activity: a few heavy users.
            let user = users[(rng.below(60) * rng.below(60) / 60) as usize].clone();
            // Follow-ups continue the user's last thread (same channel and session).
            let (channel, thread_ts) = match threads.get(&user) {
                Some(t) if rng.chance(40) => t.clone(),
                _ => (rng.pick(&channels).clone(), format!("{}.{:06}", at.timestamp(), rng.below(1_000_000))),
            };
            threads.insert(user.clone(), (channel.clone(), thread_ts.clone()));
            let (agent_id, alias) = *rng.pick(AGENTS);
            let roll = rng.below(100);
            let outcome = match roll {
                0..=3 => Outcome::Failed,
                4..=6 => Outcome::GuardrailBlocked,
                7..=8 => Outcome::RefusedBudget,
                _ => Outcome::Answered,
            };
            let invoked = outcome != Outcome::RefusedBudget;
            let kb_count = if invoked { [0, 0, 1, 1, 1, 2][rng.below(6) as usize] } else { 0 };
            let mut knowledge_bases: Vec<String> = Vec::new();
            while knowledge_bases.len() < kb_count {
                let kb = rng.pick(KNOWLEDGE_BASES).to_string();
                if !knowledge_bases.contains(&kb) {
                    knowledge_bases.push(kb);
                }
            }
            let search_queries: Vec<String> = (0..kb_count)
                .map(|_| {
                    let q = words(&mut rng, 2, 4);
                    // Agents vary case and spacing; the popular-queries SQL folds them.
                    if rng.chance(10) {
                        format!(" {}", q.to_uppercase())
                    } else {
                        q
                    }
                })
                .collect();
            let sources: Vec<String> = if kb_count > 0 && rng.chance(80) {
                (0..1 + rng.below(3)).map(|_| format!("s3://docs/{}-{}.pdf", rng.pick(WORDS), rng.below(500))).collect()
            } else {
                Vec::new()
            };
            let action_groups: Vec<String> =
                if invoked && rng.chance(25) { vec![rng.pick(ACTION_GROUPS).to_string()] } else { Vec::new() };
            let mut model_ids: Vec<String> = Vec::new();
            if invoked {
                let main = if agent_id == "AGENTOPS02" { MODELS[1 + rng.below(3) as usize] } else { MODELS[0] };
                model_ids.push(main.to_string());
                if rng.chance(20) {
                    let other = rng.pick(MODELS).to_string();
                    if !model_ids.contains(&other) {
                        model_ids.push(other);
                    }
                }
            }
            let (input_tokens, output_tokens) =
                if invoked { (400 + rng.below(6000), 20 + rng.below(1500)) } else { (0, 0) };
            let unpriced = model_ids.iter().any(|m| m.starts_with("custom."));
            let estimated_cost_usd = if unpriced {
                None
            } else {
                Some((input_tokens as f64 * 0.25 + output_tokens as f64 * 1.25) / 1_000_000.0)
            };
            let rationale = invoked.then(|| {
                format!(
                    "{} {} for {} ({}-{}). {} \"{}\".",
                    rng.pick(RATIONALE_OPENERS),
                    words(&mut rng, 3, 6),
                    words(&mut rng, 1, 3),
                    rng.pick(&["ITSUP", "OPS", "HR", "FIN"]),
                    rng.below(9000),
                    rng.pick(RATIONALE_PLANS),
                    words(&mut rng, 2, 5),
                )
            });
            let latency_ms =
                if invoked { 800 + rng.below(20_000) + kb_count as u64 * 1500 } else { 40 + rng.below(200) };
            let answered = outcome == Outcome::Answered;
            out.push(AnalyticsEvent {
                timestamp: at.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string(),
                user_id: user,
                thread_id: thread_ts.clone(),
                message_length: 10 + rng.below(600),
                response_length: if answered { 80 + rng.below(3000) } else { 60 + rng.below(100) },
                knowledge_bases,
                search_queries,
                rationale,
                event_id: format!("Ev{:010X}{:04}", at.timestamp(), n),
                team_id: "T0A1B2C3D".to_string(),
                channel_id: channel.clone(),
                agent_id: agent_id.to_string(),
                agent_alias_id: alias.to_string(),
                session_id: format!("T0A1B2C3D-{channel}-{thread_ts}"),
                action_groups,
                sources,
                model_ids,
                input_tokens,
                output_tokens,
                estimated_cost_usd,
                latency_ms,
                first_token_ms: answered.then_some(latency_ms / 3),
                outcome,
                error_code: match outcome {
                    Outcome::Failed => {
                        Some(rng.pick(&["throttlingException", "dependencyFailedException", "timeout"]).to_string())
                    }
                    Outcome::RefusedBudget => Some("budget_exceeded".to_string()),
                    _ => None,
                },
                guardrail_action: (outcome == Outcome::GuardrailBlocked).then(|| "INTERVENED".to_string()),
                schema_version: ANALYTICS_SCHEMA_VERSION,
                // A team part-way through moving to AgentCore: one turn in four on a harness.
                agent_backend: if n % 4 == 0 { AgentBackend::Harness } else { AgentBackend::Classic },
                message_text: None,
            });
        }
    }
    out
}

/// Parses an event's ISO-8601 UTC timestamp.
pub fn parse_ts(ts: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(ts).map(|t| t.with_timezone(&Utc)).map_err(|e| format!("timestamp {ts:?}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn current_date_is_pinned_outside_literals_only() {
        let today = NaiveDate::from_ymd_opt(2026, 4, 20).unwrap();
        assert_eq!(
            to_duckdb("SELECT CURRENT_DATE, 'current_date', \"current_date\", my_current_date, current_date_x", today),
            "SELECT DATE '2026-04-20', 'current_date', \"current_date\", my_current_date, current_date_x"
        );
        assert_eq!(
            to_duckdb("WHERE dt >= cast(current_date - interval '30' day AS date) -- é", today),
            "WHERE dt >= cast(DATE '2026-04-20' - interval '30' day AS date) -- é"
        );
    }

    #[test]
    fn glue_types_map_to_duckdb() {
        assert_eq!(duckdb_type("array<string>").unwrap(), "VARCHAR[]");
        assert_eq!(duckdb_type("bigint").unwrap(), "BIGINT");
        assert!(duckdb_type("map<string,int>").unwrap_err().contains("map<string,int>"));
    }
}
