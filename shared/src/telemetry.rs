//! JSON logging and CloudWatch Embedded Metric Format (EMF): metrics as structured log lines,
//! no API call on the request path.

use std::io::Write;
use std::sync::{Arc, Mutex};

use serde_json::{json, Map, Value};

pub use crate::metric_names::MetricsLevel;

/// Sets up JSON logs on stdout in the shape Lambda's JSON log format expects.
/// `RUST_LOG` (or `AWS_LAMBDA_LOG_LEVEL`) sets the level of this workspace's crates, default info;
/// dependencies log at warn unless the setting names them (see [`log_directives`]).
pub fn init_logging() {
    let setting = std::env::var("RUST_LOG")
        .or_else(|_| std::env::var("AWS_LAMBDA_LOG_LEVEL").map(|l| l.to_lowercase()))
        .unwrap_or_else(|_| "info".to_string());
    let _ = tracing_subscriber::fmt()
        .json()
        .with_env_filter(tracing_subscriber::EnvFilter::new(log_directives(&setting)))
        // The runtime's "Lambda runtime invoke" span: every line carries span.requestId (our own
        // code opens no spans, so the current span is always that one).
        .with_current_span(true)
        .with_span_list(false)
        .with_target(false)
        .without_time()
        .try_init();
}

/// The crates of this workspace (library and binary targets): the log level applies to them.
const OWN_CRATES: &[&str] = &[
    "shared",
    "slack_gateway",
    "slack_ingress",
    "slack_worker",
    "token_logging",
    "cost_analyzer",
    "metrics_publisher",
    "action_group",
];

/// Filter directives for a log setting. A bare level (`debug`) applies to this workspace's crates
/// only: the AWS SDK, hyper and rustls at debug write every request, header and TLS record (and
/// bill for the log volume); they stay at `warn`. Directives that name a target
/// (`debug,aws_smithy_runtime=debug`) are kept as given, so a dependency can still be opened up.
/// The Lambda runtime's request span (info) stays enabled: it puts requestId on every line.
pub fn log_directives(setting: &str) -> String {
    let mut level = "info";
    let mut named = Vec::new();
    for part in setting.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        if part.contains('=') || part.contains('[') {
            named.push(part);
        } else {
            level = part;
        }
    }
    let mut directives = vec!["warn".to_string(), "lambda_runtime=info".to_string()];
    directives.extend(OWN_CRATES.iter().map(|c| format!("{c}={level}")));
    directives.extend(named.iter().map(|d| d.to_string()));
    directives.join(",")
}

/// A metric unit understood by CloudWatch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Count,
    Milliseconds,
    None,
}

impl Unit {
    fn as_str(self) -> &'static str {
        match self {
            Unit::Count => "Count",
            Unit::Milliseconds => "Milliseconds",
            Unit::None => "None",
        }
    }
}

type Sink = Arc<Mutex<dyn Write + Send>>;

/// Reads `METRICS_LEVEL` (`essential` or `full`; unset = `full`), once at init. The template
/// sets it from its `MonitoringLevel` parameter on every function that emits metrics.
pub fn metrics_level() -> crate::Result<MetricsLevel> {
    match crate::config::optional("METRICS_LEVEL") {
        None => Ok(MetricsLevel::Full),
        Some(v) => v.parse().map_err(|e| crate::Error::Config(format!("METRICS_LEVEL: {e}"))),
    }
}

/// Writes EMF documents. Clone freely; clones share the output.
#[derive(Clone)]
pub struct Metrics {
    namespace: String,
    level: MetricsLevel,
    out: Sink,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").field("namespace", &self.namespace).field("level", &self.level).finish()
    }
}

impl Metrics {
    /// Metrics to stdout, where Lambda's log pipeline turns EMF lines into metrics.
    pub fn stdout(namespace: impl Into<String>) -> Self {
        Metrics { namespace: namespace.into(), level: MetricsLevel::Full, out: Arc::new(Mutex::new(std::io::stdout())) }
    }

    /// Metrics to stdout in METRICS_NAMESPACE (default `BedrockUsage`) at METRICS_LEVEL, as every
    /// function's `main` builds them once at init; a malformed level fails naming the variable.
    pub fn from_env() -> crate::Result<Self> {
        Ok(Metrics::stdout(crate::config::metrics_namespace()).at_level(metrics_level()?))
    }

    /// Metrics into a shared buffer (tests read the lines back).
    pub fn capture(namespace: impl Into<String>) -> (Self, Arc<Mutex<Vec<u8>>>) {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let out: Sink = Arc::new(Mutex::new(SharedBuf(buf.clone())));
        (Metrics { namespace: namespace.into(), level: MetricsLevel::Full, out }, buf)
    }

    /// Publishes only the series registered for `level` (`shared::metric_names`): every call
    /// site stays as it is, and a series that is not published costs nothing.
    pub fn at_level(mut self, level: MetricsLevel) -> Self {
        self.level = level;
        self
    }

    /// The namespace metrics go to.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// The monitoring level metrics are published at.
    pub fn level(&self) -> MetricsLevel {
        self.level
    }

    /// Starts one EMF document with the given dimensions (name, value).
    pub fn record(&self, dimensions: &[(&str, &str)]) -> MetricSet<'_> {
        MetricSet {
            metrics: self,
            dimensions: dimensions.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            with_total: false,
            values: Vec::new(),
            properties: Map::new(),
        }
    }

    /// Emits a single count metric with the given dimensions.
    pub fn count(&self, name: &str, value: f64, dimensions: &[(&str, &str)]) {
        self.record(dimensions).put(name, value, Unit::Count).emit();
    }

    /// Emits a count with the given dimensions and, in the same document, without any: the
    /// dimensionless series is the one an alarm can watch across every dimension value.
    pub fn count_with_total(&self, name: &str, value: f64, dimensions: &[(&str, &str)]) {
        self.record(dimensions).with_total().put(name, value, Unit::Count).emit();
    }
}

/// One EMF document under construction: metrics sharing one dimension set.
pub struct MetricSet<'a> {
    metrics: &'a Metrics,
    dimensions: Vec<(String, String)>,
    with_total: bool,
    values: Vec<(String, f64, Unit)>,
    properties: Map<String, Value>,
}

impl MetricSet<'_> {
    /// Adds a metric value.
    pub fn put(mut self, name: &str, value: f64, unit: Unit) -> Self {
        self.values.push((name.to_string(), value, unit));
        self
    }

    /// Also emits the set's metrics without dimensions (a second EMF dimension set, no extra
    /// line): CloudWatch alarms cannot SEARCH, so an alarm across dimension values needs it.
    pub fn with_total(mut self) -> Self {
        self.with_total = true;
        self
    }

    /// Adds a searchable property that is not a dimension (e.g. an event id).
    pub fn property(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.properties.insert(key.to_string(), value.into());
        self
    }

    /// Writes the document as one line. Series the level does not publish are left out of the
    /// EMF directives; their values stay on the line as plain fields (Logs Insights reads them).
    pub fn emit(self) {
        if self.values.is_empty() {
            return;
        }
        let now_ms = chrono::Utc::now().timestamp_millis();
        let dim_names: Vec<&str> = self.dimensions.iter().map(|(k, _)| k.as_str()).collect();
        let mut dimension_sets = vec![dim_names];
        if self.with_total && !dimension_sets[0].is_empty() {
            dimension_sets.push(Vec::new());
        }
        // One directive per group of dimension sets publishing the same metrics (at full: one).
        let level = self.metrics.level;
        let mut directives: Vec<(Vec<&str>, Vec<Vec<&str>>)> = Vec::new();
        for set in dimension_sets {
            let names: Vec<&str> =
                self.values.iter().map(|(n, _, _)| n.as_str()).filter(|n| level.publishes(n, &set)).collect();
            if names.is_empty() {
                continue;
            }
            match directives.iter_mut().find(|(n, _)| *n == names) {
                Some((_, sets)) => sets.push(set),
                None => directives.push((names, vec![set])),
            }
        }
        let directives: Vec<Value> = directives
            .into_iter()
            .map(|(names, sets)| {
                let defs: Vec<Value> = self
                    .values
                    .iter()
                    .filter(|(n, _, _)| names.contains(&n.as_str()))
                    .map(|(n, _, u)| json!({"Name": n, "Unit": u.as_str()}))
                    .collect();
                json!({"Namespace": self.metrics.namespace, "Dimensions": sets, "Metrics": defs})
            })
            .collect();
        let mut doc = Map::new();
        if !directives.is_empty() {
            doc.insert("_aws".into(), json!({"Timestamp": now_ms, "CloudWatchMetrics": directives}));
        }
        for (k, v) in &self.dimensions {
            doc.insert(k.clone(), Value::String(v.clone()));
        }
        for (n, v, _) in &self.values {
            doc.insert(n.clone(), json!(v));
        }
        for (k, v) in self.properties {
            doc.entry(k).or_insert(v);
        }
        let line = Value::Object(doc).to_string();
        if let Ok(mut out) = self.metrics.out.lock() {
            // A failed metrics write must never fail the request.
            let _ = writeln!(out, "{line}");
            let _ = out.flush();
        }
    }
}

struct SharedBuf(Arc<Mutex<Vec<u8>>>);

impl Write for SharedBuf {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        if let Ok(mut b) = self.0.lock() {
            b.extend_from_slice(data);
        }
        Ok(data.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Parses captured EMF lines (for tests and the local stack).
pub fn parse_emf(buf: &[u8]) -> Vec<Value> {
    String::from_utf8_lossy(buf).lines().filter_map(|l| serde_json::from_str(l).ok()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emits_one_emf_document_per_set() {
        let (m, buf) = Metrics::capture("BedrockUsage");
        m.record(&[("AgentId", "A1"), ("ModelId", "m")])
            .put("InputTokens", 10.0, Unit::Count)
            .put("OutputTokens", 5.0, Unit::Count)
            .property("event_id", "Ev1")
            .emit();
        m.count("SchemaDrift", 1.0, &[("EventType", "weird")]);
        let docs = parse_emf(&buf.lock().unwrap());
        assert_eq!(docs.len(), 2);
        let d = &docs[0];
        let cw = &d["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(cw["Namespace"], "BedrockUsage");
        assert_eq!(cw["Dimensions"][0], json!(["AgentId", "ModelId"]));
        assert_eq!(cw["Metrics"][1]["Name"], "OutputTokens");
        assert_eq!(d["InputTokens"], 10.0);
        assert_eq!(d["AgentId"], "A1");
        assert_eq!(d["event_id"], "Ev1");
        assert_eq!(docs[1]["SchemaDrift"], 1.0);
    }

    #[test]
    fn with_total_adds_a_dimensionless_set_to_the_same_document() {
        let (m, buf) = Metrics::capture("BedrockUsage");
        m.count_with_total("APIErrors", 1.0, &[("ErrorCode", "Throttling")]);
        m.record(&[]).with_total().put("Heartbeat", 1.0, Unit::Count).emit();
        let docs = parse_emf(&buf.lock().unwrap());
        assert_eq!(docs.len(), 2);
        assert_eq!(docs[0]["_aws"]["CloudWatchMetrics"][0]["Dimensions"], json!([["ErrorCode"], []]));
        assert_eq!(docs[0]["ErrorCode"], "Throttling");
        // Already dimensionless: no duplicate set (it would count twice).
        assert_eq!(docs[1]["_aws"]["CloudWatchMetrics"][0]["Dimensions"], json!([[]]));
    }

    #[test]
    fn essential_publishes_only_essential_series_and_keeps_the_values_as_fields() {
        let (m, buf) = Metrics::capture("BedrockUsage");
        let m = m.at_level(MetricsLevel::Essential);
        m.record(&[("AgentId", "A1"), ("ModelId", "m")])
            .with_total()
            .put("InputTokens", 10.0, Unit::Count)
            .put("TotalTokens", 15.0, Unit::Count)
            .put("EstimatedCost", 0.5, Unit::None)
            .emit();
        m.count_with_total("APIErrors", 1.0, &[("ErrorCode", "Throttling")]);
        let docs = parse_emf(&buf.lock().unwrap());
        assert_eq!(docs.len(), 2, "a line is still written: the logs keep the values");
        // Only the dimensionless totals of the essential series, in one directive.
        let directives = docs[0]["_aws"]["CloudWatchMetrics"].as_array().expect("directives");
        assert_eq!(directives.len(), 1, "{directives:?}");
        assert_eq!(directives[0]["Dimensions"], json!([[]]));
        let names: Vec<&str> =
            directives[0]["Metrics"].as_array().unwrap().iter().filter_map(|d| d["Name"].as_str()).collect();
        assert_eq!(names, ["TotalTokens", "EstimatedCost"]);
        assert_eq!((docs[0]["InputTokens"].as_f64(), docs[0]["ModelId"].as_str()), (Some(10.0), Some("m")));
        // Nothing of APIErrors is published: no directive at all.
        assert!(docs[1].get("_aws").is_none(), "{}", docs[1]);
        assert_eq!(docs[1]["APIErrors"], 1.0);
    }

    #[test]
    fn the_level_comes_from_metrics_level_and_a_bad_value_names_the_variable() {
        // The only test of this binary that touches METRICS_LEVEL or METRICS_NAMESPACE.
        std::env::remove_var("METRICS_LEVEL");
        std::env::remove_var("METRICS_NAMESPACE");
        assert_eq!(metrics_level().unwrap(), MetricsLevel::Full);
        let m = Metrics::from_env().unwrap();
        assert_eq!((m.namespace(), m.level()), ("BedrockUsage", MetricsLevel::Full));
        std::env::set_var("METRICS_LEVEL", "essential");
        std::env::set_var("METRICS_NAMESPACE", "Custom/NS");
        assert_eq!(metrics_level().unwrap(), MetricsLevel::Essential);
        let m = Metrics::from_env().unwrap();
        assert_eq!((m.namespace(), m.level()), ("Custom/NS", MetricsLevel::Essential));
        std::env::set_var("METRICS_LEVEL", "minimal");
        let e = metrics_level().unwrap_err().to_string();
        assert!(e.contains("METRICS_LEVEL") && e.contains("minimal"), "{e}");
        let e = Metrics::from_env().unwrap_err().to_string();
        assert!(e.contains("METRICS_LEVEL") && e.contains("minimal"), "{e}");
        std::env::remove_var("METRICS_LEVEL");
        std::env::remove_var("METRICS_NAMESPACE");
    }

    /// What a subscriber filtered by `setting` lets through of a few events.
    fn logged(setting: &str) -> String {
        use tracing_subscriber::util::SubscriberInitExt;
        let buf: Arc<Mutex<Vec<u8>>> = Arc::default();
        let out = buf.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(log_directives(setting)))
            .with_writer(move || Capture(out.clone()))
            .finish();
        let guard = subscriber.set_default();
        tracing::debug!(target: "shared::aws::usage", "own debug");
        tracing::debug!(target: "slack_worker", "binary debug");
        tracing::info!(target: "token_logging::handler", "own info");
        tracing::debug!(target: "aws_smithy_runtime::client::orchestrator", "sdk debug");
        tracing::debug!(target: "hyper_util::client::legacy", "hyper debug");
        tracing::warn!(target: "aws_config::imds", "sdk warning");
        drop(guard);
        let text = String::from_utf8(buf.lock().unwrap().clone()).unwrap();
        text
    }

    struct Capture(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Capture {
        fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(data);
            Ok(data.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn the_log_level_applies_to_this_workspace_and_dependencies_stay_at_warn() {
        let out = logged("debug");
        for line in ["own debug", "binary debug", "own info", "sdk warning"] {
            assert!(out.contains(line), "{line} missing:\n{out}");
        }
        assert!(!out.contains("sdk debug") && !out.contains("hyper debug"), "{out}");
        // Named explicitly, a dependency opens up.
        let out = logged("info,aws_smithy_runtime=debug");
        assert!(out.contains("sdk debug") && !out.contains("hyper debug") && !out.contains("own debug"), "{out}");
        let out = logged("warn");
        assert!(!out.contains("own info") && out.contains("sdk warning"), "{out}");
    }
}
