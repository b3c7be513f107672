//! The monthly cost of running the stack, model tokens excluded, computed from template.yaml's
//! actual resources, the metrics registry and measured per-turn figures. COSTS.md shows the
//! result; `tests/tests/costs.rs` fails when the two disagree, so the document follows the
//! template. Regenerate with `cargo run -p tests --bin cost-model` (it rewrites the table between
//! COSTS.md's cost-model markers).
//!
//! Both monitoring levels are computed: the template read at `MonitoringLevel` essential and full
//! (its Conditions decide which alarms, dashboards and keys exist), the registry's series at that
//! level (`shared::metric_names`: what the functions publish there).
//!
//! Prices are us-east-1 list prices without any free tier (the free tier is shown apart: an
//! account's free tier is often used by something else already).

use std::fmt::Write as _;

use shared::metric_names::{MetricsLevel, Via, METRICS};

use crate::template::Template;

/// us-east-1 list prices, USD.
pub mod price {
    pub const LAMBDA_REQUEST: f64 = 0.20 / 1e6;
    pub const LAMBDA_GB_SECOND_X86: f64 = 0.000_016_666_7;
    pub const LAMBDA_GB_SECOND_ARM: f64 = 0.000_013_333_4;
    pub const SQS_STANDARD_REQUEST: f64 = 0.40 / 1e6;
    pub const SQS_FIFO_REQUEST: f64 = 0.50 / 1e6;
    pub const DYNAMODB_WRITE_UNIT: f64 = 0.625 / 1e6;
    pub const DYNAMODB_READ_UNIT: f64 = 0.125 / 1e6;
    pub const DYNAMODB_GB_MONTH: f64 = 0.25;
    pub const DYNAMODB_PITR_GB_MONTH: f64 = 0.20;
    /// Firehose bills each record rounded up to the next 5 KB.
    pub const FIREHOSE_GB: f64 = 0.029;
    pub const FIREHOSE_FORMAT_CONVERSION_GB: f64 = 0.018;
    pub const S3_GB_MONTH: f64 = 0.023;
    pub const S3_PUT: f64 = 0.005 / 1000.0;
    /// Athena bills at least 10 MB per query.
    pub const ATHENA_TB: f64 = 5.0;
    pub const CW_CUSTOM_METRIC_MONTH: f64 = 0.30;
    /// A standard-resolution alarm, per metric it evaluates (metric math: each metric; an anomaly
    /// band counts three).
    pub const CW_ALARM_METRIC_MONTH: f64 = 0.10;
    pub const CW_DASHBOARD_MONTH: f64 = 3.00;
    pub const CW_PUT_METRIC_DATA_REQUEST: f64 = 0.01 / 1000.0;
    pub const CW_LOGS_INGEST_GB: f64 = 0.50;
    pub const CW_LOGS_STORE_GB_MONTH: f64 = 0.03;
    pub const SECRET_MONTH: f64 = 0.40;
    pub const SECRET_API_CALL: f64 = 0.05 / 10_000.0;
    pub const KMS_KEY_MONTH: f64 = 1.00;
}

/// Per-turn and per-run figures. Measured ones say where; the rest say what they assume.
pub mod measured {
    /// Slack delivers a channel mention twice (app_mention + message.channels); a DM once; plus
    /// ~5 % retries. Ingress invocations per turn.
    pub const INGRESS_REQUESTS_PER_TURN: f64 = 1.6;
    /// Billed ms per ingress invocation: two DynamoDB conditional puts and one SQS send at
    /// ~10 ms each in-region; the handler itself is 17.6 us p50 (benches/ingress.rs).
    pub const INGRESS_MS: f64 = 35.0;
    /// Billed ms per turn in the worker: dominated by the agent (the scripted turns of events/agent
    /// stream in 1-8 s; a real Haiku agent turn with one knowledge-base lookup takes ~6 s).
    pub const WORKER_MS: f64 = 6_000.0;
    /// token-logging: records per invocation at steady state (batch window) and ms per invocation
    /// (19-38 us per record in benches/token_logging.rs; one TransactWriteItems ~25 ms).
    pub const USAGE_RECORDS_PER_INVOCATION: f64 = 4.0;
    pub const TOKEN_LOGGING_MS: f64 = 60.0;
    /// DynamoDB write units per turn: dedup 2; the conversation record's start and finish, each
    /// also written to its by_hour / open_turns / by_reply indexes, 8; token-logging's one
    /// transaction of ledger + rollups (7 + 2 per model; ~1.3 models a turn), billed double, 20.
    pub const DYNAMODB_WRITES_PER_TURN: f64 = 30.0;
    /// Read units per turn: the budget check (one BatchGetItem of two eventually consistent
    /// items) and the action group's occasional usage lookup.
    pub const DYNAMODB_READS_PER_TURN: f64 = 1.5;
    /// Bytes kept in DynamoDB per turn (conversation record; ledger item) before TTL.
    pub const DYNAMODB_BYTES_PER_TURN: f64 = 2_500.0;
    /// One analytics event as newline-delimited JSON (events/ fixtures: 0.9-1.6 KB); Firehose
    /// rounds each record up to 5 KB.
    pub const EVENT_BYTES: f64 = 1_400.0;
    /// Stored bytes per event after compression (gzip JSON ~5x; see the Athena figures).
    pub const STORED_EVENT_BYTES: f64 = 300.0;
    /// Firehose buffer: one object per 15 minutes at most at low volume.
    pub const FIREHOSE_OBJECTS_PER_DAY_MIN: f64 = 96.0;
    /// CloudWatch Logs bytes per turn over all functions (JSON lines + platform START/END/REPORT).
    pub const LOG_BYTES_PER_TURN: f64 = 4_000.0;
    /// Athena: the named queries run by hand, say 20 a month, each at least 10 MB.
    pub const ATHENA_QUERIES_PER_MONTH: f64 = 20.0;
    /// An idle SQS event source mapping long-polls with 5 pollers, one ReceiveMessage each per
    /// 20 s: ~648,000 requests a month per queue even with no traffic.
    pub const IDLE_POLL_REQUESTS_PER_QUEUE_MONTH: f64 = 5.0 * 3.0 * 60.0 * 24.0 * 30.0;
    /// metrics-publisher: runs per month (every 5 minutes), ms per run, PutMetricData calls per run.
    pub const PUBLISHER_RUNS_PER_MONTH: f64 = 12.0 * 24.0 * 30.0;
    pub const PUBLISHER_MS: f64 = 300.0;
    pub const PUBLISHER_PUTS_PER_RUN: f64 = 1.0;
    /// Assumed distinct values per dimension key (one agent, two models, a few event types);
    /// ErrorCode series exist only in hours with errors.
    pub fn cardinality(key: &str) -> f64 {
        match key {
            "AgentId" => 1.0,
            "ModelId" => 2.0,
            "EventType" => 3.0,
            "Action" => 4.0,
            "ErrorCode" => 0.1,
            _ => 2.0,
        }
    }
}

/// One line of the bill.
#[derive(Debug, Clone)]
pub struct Line {
    pub component: &'static str,
    pub driver: String,
    pub usd: f64,
}

/// Counts read off the template.
#[derive(Debug, Clone, Default)]
pub struct Inventory {
    /// The template's MonitoringLevel (a template without the parameter publishes everything).
    pub level: MetricsLevel,
    /// (logical id, memory MB) of every function.
    pub functions: Vec<(String, f64)>,
    pub arm64: bool,
    pub alarm_metrics: f64,
    pub alarms: usize,
    pub dashboards: usize,
    pub secrets: usize,
    pub kms_keys: usize,
    pub fifo_polled_queues: usize,
    pub standard_polled_queues: usize,
    pub parquet: bool,
}

/// Reads what costs money from the template at its parameter values (`Template::at_level`):
/// resources whose Condition does not hold there are left out.
pub fn inventory(t: &Template) -> Inventory {
    let unconditional = |r: &serde_yaml::Value| t.is_created(r).unwrap_or(false);
    let mut inv = Inventory {
        level: t.parameter_value("MonitoringLevel").and_then(|l| l.parse().ok()).unwrap_or_default(),
        arm64: t.parameter_value("Architecture").as_deref() == Some("arm64"),
        ..Inventory::default()
    };
    for (id, r) in t.resources_of_type("AWS::Serverless::Function").into_iter().filter(|(_, r)| unconditional(r)) {
        let memory = r
            .get("Properties")
            .and_then(|p| p.get("MemorySize"))
            .and_then(|m| t.resolve(m).ok())
            .and_then(|m| m.parse().ok())
            .unwrap_or(128.0);
        inv.functions.push((id, memory));
    }
    for (_, r) in t.resources_of_type("AWS::CloudWatch::Alarm").into_iter().filter(|(_, r)| unconditional(r)) {
        inv.alarms += 1;
        let props = r.get("Properties");
        let metrics = props.and_then(|p| p.get("Metrics")).and_then(serde_yaml::Value::as_sequence);
        inv.alarm_metrics += match metrics {
            None => 1.0,
            Some(items) => {
                let band = items.iter().any(|m| {
                    m.get("Expression")
                        .and_then(serde_yaml::Value::as_str)
                        .is_some_and(|e| e.contains("ANOMALY_DETECTION_BAND"))
                });
                let stats = items.iter().filter(|m| m.get("MetricStat").is_some()).count() as f64;
                if band {
                    3.0
                } else {
                    stats.max(1.0)
                }
            }
        };
    }
    inv.dashboards =
        t.resources_of_type("AWS::CloudWatch::Dashboard").into_iter().filter(|(_, r)| unconditional(r)).count();
    inv.secrets =
        t.resources_of_type("AWS::SecretsManager::Secret").into_iter().filter(|(_, r)| unconditional(r)).count();
    inv.kms_keys = t.resources_of_type("AWS::KMS::Key").into_iter().filter(|(_, r)| unconditional(r)).count();
    // Queues that a Lambda event source polls (the DLQs are not polled).
    for (_, f) in t.resources_of_type("AWS::Serverless::Function").into_iter().filter(|(_, r)| unconditional(r)) {
        let Some(events) = f.get("Properties").and_then(|p| p.get("Events")).and_then(serde_yaml::Value::as_mapping)
        else {
            continue;
        };
        for (_, e) in events {
            if e.get("Type").and_then(serde_yaml::Value::as_str) != Some("SQS") {
                continue;
            }
            let queue =
                e.get("Properties").and_then(|p| p.get("Queue")).and_then(|q| t.resolve(q).ok()).unwrap_or_default();
            let logical = queue.trim_start_matches('<').split('.').next().unwrap_or_default().to_string();
            let fifo = t
                .resources_of_type("AWS::SQS::Queue")
                .into_iter()
                .find(|(id, _)| *id == logical)
                .and_then(|(_, q)| q.get("Properties")?.get("FifoQueue")?.as_bool())
                .unwrap_or(false);
            if fifo {
                inv.fifo_polled_queues += 1;
            } else {
                inv.standard_polled_queues += 1;
            }
        }
    }
    inv.parquet = t
        .resources_of_type("AWS::KinesisFirehose::DeliveryStream")
        .iter()
        .any(|(_, r)| serde_yaml::to_string(r).unwrap_or_default().contains("DataFormatConversionConfiguration"));
    inv
}

/// Fraction of the month's hours in which a per-turn metric is published, for `turns_per_day`
/// spread over 10 business hours on 22 working days (a busy stack is busy around the clock).
pub fn active_hour_share(turns_per_day: f64) -> f64 {
    let per_business_hour = turns_per_day / 10.0;
    let business = (10.0 / 24.0) * (22.0 / 30.0) * (1.0 - (-per_business_hour).exp());
    let around_the_clock = 1.0 - (-(turns_per_day / 24.0 / 50.0)).exp();
    business.max(around_the_clock).min(1.0)
}

/// Custom metric-months at `level`: each emission published there, its time series x the share of
/// hours it is published (metrics-publisher's are published every 5 minutes, all month).
pub fn custom_metric_months(turns_per_day: f64, level: MetricsLevel) -> (f64, usize) {
    let mut total = 0.0;
    let mut series_shapes = 0;
    for m in METRICS {
        for e in m.emissions_at(level) {
            series_shapes += 1;
            let series: f64 = e.dimensions.iter().map(|k| measured::cardinality(k)).product();
            let share = if m.via == Via::PutMetricData { 1.0 } else { active_hour_share(turns_per_day) };
            total += series * share;
        }
    }
    (total, series_shapes)
}

/// The monthly bill for `turns_per_day` conversations a day.
pub fn monthly(inv: &Inventory, turns_per_day: f64) -> Vec<Line> {
    use measured as m;
    use price as p;
    let turns = turns_per_day * 30.0;
    let gbs_price = if inv.arm64 { p::LAMBDA_GB_SECOND_ARM } else { p::LAMBDA_GB_SECOND_X86 };
    let memory_of = |id: &str| inv.functions.iter().find(|(f, _)| f == id).map(|(_, mb)| mb / 1024.0).unwrap_or(0.125);
    let mut lines = Vec::new();

    let ingress_calls = turns * m::INGRESS_REQUESTS_PER_TURN;
    let token_calls = turns / m::USAGE_RECORDS_PER_INVOCATION;
    let publisher_calls = if inv.functions.iter().any(|(f, _)| f.contains("MetricsPublisher")) {
        m::PUBLISHER_RUNS_PER_MONTH
    } else {
        0.0
    };
    let gb_seconds = ingress_calls * m::INGRESS_MS / 1000.0 * memory_of("SlackIngressFunction")
        + turns * m::WORKER_MS / 1000.0 * memory_of("SlackWorkerFunction")
        + token_calls * m::TOKEN_LOGGING_MS / 1000.0 * memory_of("TokenLoggingFunction")
        + publisher_calls * m::PUBLISHER_MS / 1000.0 * memory_of("MetricsPublisherFunction");
    let requests = ingress_calls + turns + token_calls + publisher_calls + 30.0;
    lines.push(Line {
        component: "Lambda",
        driver: format!("{:.0} invocations, {:.0} GB-s ({} functions)", requests, gb_seconds, inv.functions.len()),
        usd: requests * p::LAMBDA_REQUEST + gb_seconds * gbs_price,
    });

    let idle_fifo = inv.fifo_polled_queues as f64 * m::IDLE_POLL_REQUESTS_PER_QUEUE_MONTH;
    let idle_std = inv.standard_polled_queues as f64 * m::IDLE_POLL_REQUESTS_PER_QUEUE_MONTH;
    // Per turn: send + receive + delete on the work queue (FIFO) and the usage queue.
    lines.push(Line {
        component: "SQS",
        driver: format!(
            "{} polled queues idle-polling ({:.2} M requests) + 3 requests/turn/queue",
            inv.fifo_polled_queues + inv.standard_polled_queues,
            (idle_fifo + idle_std) / 1e6
        ),
        usd: (idle_fifo + turns * 3.0) * p::SQS_FIFO_REQUEST + (idle_std + turns * 3.0) * p::SQS_STANDARD_REQUEST,
    });

    let stored_gb = turns * m::DYNAMODB_BYTES_PER_TURN / 1e9;
    lines.push(Line {
        component: "DynamoDB",
        driver: format!(
            "{:.0} WRU + {:.0} RRU on demand, {:.3} GB + PITR",
            turns * m::DYNAMODB_WRITES_PER_TURN,
            turns * m::DYNAMODB_READS_PER_TURN,
            stored_gb
        ),
        usd: turns
            * (m::DYNAMODB_WRITES_PER_TURN * p::DYNAMODB_WRITE_UNIT
                + m::DYNAMODB_READS_PER_TURN * p::DYNAMODB_READ_UNIT)
            + stored_gb * (p::DYNAMODB_GB_MONTH + p::DYNAMODB_PITR_GB_MONTH),
    });

    let firehose_gb = turns * m::EVENT_BYTES.max(5_000.0) / 1e9;
    let conversion = if inv.parquet { turns * m::EVENT_BYTES / 1e9 * p::FIREHOSE_FORMAT_CONVERSION_GB } else { 0.0 };
    lines.push(Line {
        component: "Firehose",
        driver: format!(
            "{turns:.0} records billed at 5 KB each{}",
            if inv.parquet { " + Parquet conversion" } else { "" }
        ),
        usd: firehose_gb * p::FIREHOSE_GB + conversion,
    });

    // A year of events kept on average (lifecycle moves and expires them; STANDARD price used).
    let s3_gb = turns * 12.0 * m::STORED_EVENT_BYTES / 1e9;
    let objects = (m::FIREHOSE_OBJECTS_PER_DAY_MIN.max(turns_per_day / 500.0)) * 30.0 + 30.0;
    lines.push(Line {
        component: "S3",
        driver: format!("{s3_gb:.3} GB stored (a year of events), {objects:.0} PUTs"),
        usd: s3_gb * p::S3_GB_MONTH + objects * p::S3_PUT,
    });

    let scanned_tb = m::ATHENA_QUERIES_PER_MONTH * (s3_gb * 1e9).max(10e6) / 1e12;
    lines.push(Line {
        component: "Athena",
        driver: format!(
            "{} named queries/month over the whole archive (10 MB minimum each)",
            m::ATHENA_QUERIES_PER_MONTH
        ),
        usd: scanned_tb * p::ATHENA_TB,
    });

    let (metric_months, shapes) = custom_metric_months(turns_per_day, inv.level);
    lines.push(Line {
        component: "CloudWatch metrics",
        driver: format!(
            "{metric_months:.1} custom metric-months ({shapes} series shapes published), {:.0} PutMetricData",
            publisher_calls * m::PUBLISHER_PUTS_PER_RUN
        ),
        usd: metric_months * p::CW_CUSTOM_METRIC_MONTH
            + publisher_calls * m::PUBLISHER_PUTS_PER_RUN * p::CW_PUT_METRIC_DATA_REQUEST,
    });
    lines.push(Line {
        component: "CloudWatch alarms",
        driver: format!("{} alarms evaluating {:.0} metrics", inv.alarms, inv.alarm_metrics),
        usd: inv.alarm_metrics * p::CW_ALARM_METRIC_MONTH,
    });
    lines.push(Line {
        component: "CloudWatch dashboards",
        driver: format!("{} dashboards", inv.dashboards),
        usd: inv.dashboards as f64 * p::CW_DASHBOARD_MONTH,
    });
    let log_gb = turns * m::LOG_BYTES_PER_TURN / 1e9 + publisher_calls * 600.0 / 1e9;
    lines.push(Line {
        component: "CloudWatch Logs",
        driver: format!("{log_gb:.3} GB ingested"),
        usd: log_gb * (p::CW_LOGS_INGEST_GB + p::CW_LOGS_STORE_GB_MONTH),
    });
    lines.push(Line {
        component: "Secrets Manager",
        driver: format!("{} secrets", inv.secrets),
        usd: inv.secrets as f64 * p::SECRET_MONTH + (turns * 0.2 + 1000.0) * p::SECRET_API_CALL,
    });
    lines.push(Line {
        component: "KMS",
        driver: format!("{} customer managed keys", inv.kms_keys),
        usd: inv.kms_keys as f64 * p::KMS_KEY_MONTH,
    });
    lines
}

/// The month's total.
pub fn total(lines: &[Line]) -> f64 {
    lines.iter().map(|l| l.usd).sum()
}

/// The three volumes COSTS.md reports.
pub const VOLUMES: [f64; 3] = [50.0, 5_000.0, 500_000.0];

/// The table COSTS.md carries (generated; compared by tests/tests/costs.rs): the essential
/// level (the default), then the full level beside it.
pub fn table(essential: &Inventory, full: &Inventory) -> String {
    let bills: Vec<Vec<Line>> =
        [essential, full].iter().flat_map(|inv| VOLUMES.iter().map(|v| monthly(inv, *v))).collect();
    let mut out = String::new();
    let _ = writeln!(
        out,
        "| component | essential 50 / day | 5,000 / day | 500,000 / day | full 50 / day | 5,000 / day | 500,000 / day | driver at 50 / day (essential; full where it differs) |"
    );
    let _ = writeln!(out, "|---|---:|---:|---:|---:|---:|---:|---|");
    for (i, line) in bills[0].iter().enumerate() {
        let cells: Vec<String> = bills.iter().map(|b| usd(b.get(i).map(|l| l.usd).unwrap_or(0.0))).collect();
        let full_driver = &bills[VOLUMES.len()][i].driver;
        let driver = if *full_driver == line.driver {
            line.driver.clone()
        } else {
            format!("{}; full: {full_driver}", line.driver)
        };
        let _ = writeln!(out, "| {} | {} | {driver} |", line.component, cells.join(" | "));
    }
    let totals: Vec<String> = bills.iter().map(|b| format!("**{}**", usd(total(b)))).collect();
    let _ = writeln!(out, "| **total** | {} | |", totals.join(" | "));
    out
}

/// COSTS.md with the text between its cost-model markers replaced by `table`.
pub fn with_table(doc: &str, table: &str) -> Result<String, String> {
    let start = doc.find(BEGIN).ok_or("COSTS.md has no cost-model:begin marker")? + BEGIN.len();
    let end = doc[start..].find(END).ok_or("COSTS.md has no cost-model:end marker")? + start;
    Ok(format!("{}{table}{}", &doc[..start], &doc[end..]))
}

/// The markers around the generated table in COSTS.md.
pub const BEGIN: &str = "<!-- cost-model:begin -->\n";
pub const END: &str = "<!-- cost-model:end -->";

/// The template at both levels: (essential, full) inventories.
pub fn inventories(t: &Template) -> (Inventory, Inventory) {
    (inventory(&t.clone().at_level(MetricsLevel::Essential)), inventory(&t.clone().at_level(MetricsLevel::Full)))
}

fn usd(v: f64) -> String {
    if v < 0.005 {
        "$0.00".into()
    } else if v < 100.0 {
        format!("${v:.2}")
    } else {
        format!("${v:.0}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn essential_publishes_fewer_series_than_full() {
        let (essential, _) = custom_metric_months(50.0, MetricsLevel::Essential);
        let (full, _) = custom_metric_months(50.0, MetricsLevel::Full);
        assert!(essential > 0.0 && essential < full, "{essential} vs {full}");
    }

    #[test]
    fn the_hours_a_per_turn_metric_is_billed_grow_with_traffic() {
        assert!(active_hour_share(50.0) < active_hour_share(5_000.0));
        assert!(active_hour_share(500_000.0) > 0.99);
        assert!(active_hour_share(0.0) == 0.0);
    }
}
