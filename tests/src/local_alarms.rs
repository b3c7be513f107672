//! Which of the template's alarms would fire, judged on this machine: the datapoints the functions
//! produced during a local run (their EMF lines, metrics-publisher's PutMetricData, and the
//! AWS-owned Lambda and SQS figures the local stack observed itself) against each alarm's
//! metric, dimensions, statistic, period, evaluation periods and threshold as template.yaml
//! declares them, for the template's alarms of one monitoring level.
//!
//! CloudWatch semantics kept: a series matches only on its full dimension set; datapoints are
//! aggregated per period aligned to the epoch; an alarm fires when `DatapointsToAlarm` (default
//! `EvaluationPeriods`) of `EvaluationPeriods` consecutive periods breach, a period without data
//! counting as `TreatMissingData` says. Metric-math alarms (anomaly bands) need history a local
//! run does not have: they are listed as not evaluated.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::Value as Json;
use serde_yaml::Value;

use crate::template::{AlarmDef, Template};

/// One value of one metric series at one time.
#[derive(Debug, Clone, PartialEq)]
pub struct Datapoint {
    pub namespace: String,
    pub metric: String,
    /// Sorted by name.
    pub dimensions: Vec<(String, String)>,
    pub at_ms: i64,
    pub value: f64,
}

impl Datapoint {
    /// A datapoint; `dimensions` are sorted here.
    pub fn new(namespace: &str, metric: &str, dimensions: &[(&str, &str)], at_ms: i64, value: f64) -> Self {
        let mut dimensions: Vec<(String, String)> =
            dimensions.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        dimensions.sort();
        Datapoint { namespace: namespace.into(), metric: metric.into(), dimensions, at_ms, value }
    }
}

/// The datapoints of the EMF documents in a function's output: one per metric and dimension set
/// (a document with `[["ErrorCode"], []]` feeds two series, as CloudWatch does).
pub fn emf_datapoints(output: &str) -> Vec<Datapoint> {
    let mut out = Vec::new();
    for doc in shared::telemetry::parse_emf(output.as_bytes()) {
        let at_ms = doc["_aws"]["Timestamp"].as_i64().unwrap_or_default();
        for directive in doc["_aws"]["CloudWatchMetrics"].as_array().into_iter().flatten() {
            let namespace = directive["Namespace"].as_str().unwrap_or_default();
            for set in directive["Dimensions"].as_array().into_iter().flatten() {
                let dims: Vec<(&str, &str)> = set
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(Json::as_str)
                    .map(|k| (k, doc[k].as_str().unwrap_or_default()))
                    .collect();
                for def in directive["Metrics"].as_array().into_iter().flatten() {
                    let Some(name) = def["Name"].as_str() else { continue };
                    let values: Vec<f64> = match &doc[name] {
                        Json::Array(a) => a.iter().filter_map(Json::as_f64).collect(),
                        v => v.as_f64().into_iter().collect(),
                    };
                    out.extend(values.into_iter().map(|v| Datapoint::new(namespace, name, &dims, at_ms, v)));
                }
            }
        }
    }
    out
}

/// The datapoints of one PutMetricData request body in the SDK's RPC-v2 CBOR protocol
/// (`{Namespace, MetricData: [{MetricName, Dimensions: [{Name, Value}], Timestamp, Value}]}`).
pub fn put_metric_data_datapoints(body: &[u8]) -> Result<Vec<Datapoint>, String> {
    let mut reader = Cbor { buf: body, pos: 0 };
    let input = reader.item()?;
    let namespace = input["Namespace"].as_str().ok_or("PutMetricData without Namespace")?;
    let mut out = Vec::new();
    for d in input["MetricData"].as_array().into_iter().flatten() {
        let name = d["MetricName"].as_str().ok_or("a datum without MetricName")?;
        let dims: Vec<(&str, &str)> = d["Dimensions"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|x| (x["Name"].as_str().unwrap_or_default(), x["Value"].as_str().unwrap_or_default()))
            .collect();
        // Timestamps are epoch seconds (CBOR tag 1).
        let at_ms = (d["Timestamp"].as_f64().unwrap_or_default() * 1000.0) as i64;
        let value = d["Value"].as_f64().ok_or_else(|| format!("datum {name} without Value"))?;
        out.push(Datapoint::new(namespace, name, &dims, at_ms, value));
    }
    Ok(out)
}

/// A small CBOR reader (RFC 8949), enough for what the SDK sends: maps, arrays (definite or
/// indefinite), text, numbers, floats and tags (the tag is dropped, its content kept).
struct Cbor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl Cbor<'_> {
    fn byte(&mut self) -> Result<u8, String> {
        let b = *self.buf.get(self.pos).ok_or("CBOR ends early")?;
        self.pos += 1;
        Ok(b)
    }

    fn take(&mut self, n: usize) -> Result<&[u8], String> {
        let end = self.pos.checked_add(n).filter(|e| *e <= self.buf.len()).ok_or("CBOR ends early")?;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    /// The argument of an initial byte; None for an indefinite length.
    fn argument(&mut self, info: u8) -> Result<Option<u64>, String> {
        let n = |s: &[u8]| s.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b));
        Ok(Some(match info {
            0..=23 => u64::from(info),
            24 => n(self.take(1)?),
            25 => n(self.take(2)?),
            26 => n(self.take(4)?),
            27 => n(self.take(8)?),
            31 => return Ok(None),
            _ => return Err(format!("CBOR: reserved additional info {info}")),
        }))
    }

    fn at_break(&self) -> bool {
        self.buf.get(self.pos) == Some(&0xff)
    }

    fn item(&mut self) -> Result<Json, String> {
        let initial = self.byte()?;
        let (major, info) = (initial >> 5, initial & 0x1f);
        if major == 7 {
            return Ok(match info {
                20 => Json::Bool(false),
                21 => Json::Bool(true),
                22 | 23 => Json::Null,
                25 => {
                    let h = self.take(2)?;
                    Json::from(half_to_f64(u16::from_be_bytes([h[0], h[1]])))
                }
                26 => {
                    let b = self.take(4)?;
                    Json::from(f64::from(f32::from_be_bytes([b[0], b[1], b[2], b[3]])))
                }
                27 => {
                    let b = self.take(8)?;
                    let mut a = [0u8; 8];
                    a.copy_from_slice(b);
                    Json::from(f64::from_be_bytes(a))
                }
                _ => return Err(format!("CBOR: simple value {info}")),
            });
        }
        let arg = self.argument(info)?;
        match major {
            0 => Ok(Json::from(arg.ok_or("CBOR: indefinite integer")?)),
            1 => Ok(Json::from(-1 - arg.ok_or("CBOR: indefinite integer")? as i64)),
            2 | 3 => {
                let mut bytes = Vec::new();
                match arg {
                    Some(len) => bytes.extend_from_slice(self.take(len as usize)?),
                    None => {
                        while !self.at_break() {
                            let chunk = self.item()?;
                            bytes.extend_from_slice(chunk.as_str().unwrap_or_default().as_bytes());
                        }
                        self.pos += 1;
                    }
                }
                Ok(Json::String(String::from_utf8_lossy(&bytes).into_owned()))
            }
            4 => {
                let mut items = Vec::new();
                match arg {
                    Some(len) => {
                        for _ in 0..len {
                            items.push(self.item()?);
                        }
                    }
                    None => {
                        while !self.at_break() {
                            items.push(self.item()?);
                        }
                        self.pos += 1;
                    }
                }
                Ok(Json::Array(items))
            }
            5 => {
                let mut map = serde_json::Map::new();
                let mut entry = |r: &mut Self| -> Result<(), String> {
                    let k = r.item()?;
                    let v = r.item()?;
                    map.insert(k.as_str().map(str::to_string).unwrap_or_else(|| k.to_string()), v);
                    Ok(())
                };
                match arg {
                    Some(len) => {
                        for _ in 0..len {
                            entry(self)?;
                        }
                    }
                    None => {
                        while !self.at_break() {
                            entry(self)?;
                        }
                        self.pos += 1;
                    }
                }
                Ok(Json::Object(map))
            }
            6 => self.item(),
            _ => Err(format!("CBOR: major type {major}")),
        }
    }
}

fn half_to_f64(h: u16) -> f64 {
    let exp = i32::from((h >> 10) & 0x1f);
    let mant = f64::from(h & 0x3ff);
    let v = match exp {
        0 => mant * 2f64.powi(-24),
        31 => {
            if mant == 0.0 {
                f64::INFINITY
            } else {
                f64::NAN
            }
        }
        _ => (mant + 1024.0) * 2f64.powi(exp - 25),
    };
    if h & 0x8000 != 0 {
        -v
    } else {
        v
    }
}

/// What the evaluation says of one alarm.
#[derive(Debug, Clone, PartialEq)]
pub struct AlarmVerdict {
    pub logical_id: String,
    pub alarm_name: String,
    /// False for alarms a local run cannot judge (metric math, anomaly bands).
    pub evaluated: bool,
    pub fires: bool,
    /// Readable: the breaching period and its value, or why not.
    pub why: String,
}

/// The template's alarms at one monitoring level, ready to judge datapoints.
pub struct AlarmEvaluator {
    /// The level evaluated, as printed (`essential`, or `all` when the template has no level).
    pub level: String,
    alarms: Vec<AlarmDef>,
    /// Alarms the level leaves out (logical id, condition name).
    pub excluded: Vec<(String, String)>,
}

/// The template parameter that selects which alarms are deployed.
pub const LEVEL_PARAMETER: &str = "MonitoringLevel";

impl AlarmEvaluator {
    /// Reads the template at `path` with `parameters` overriding defaults (e.g. the AgentId the
    /// local stack runs with). `level` (None = the parameter's default) sets MonitoringLevel when
    /// the template has it; alarms whose `Condition` is false at that level are left out.
    pub fn load(path: &Path, parameters: &[(&str, &str)], level: Option<&str>) -> Result<Self, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("reading {}: {e}", path.display()))?;
        let mut root: Value = serde_yaml::from_str(&text).map_err(|e| format!("template.yaml: {e}"))?;
        let has_level = root.get("Parameters").and_then(|p| p.get(LEVEL_PARAMETER)).is_some();
        let mut overrides: Vec<(String, String)> =
            parameters.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let level = match (has_level, level) {
            (true, Some(l)) => {
                overrides.push((LEVEL_PARAMETER.into(), l.into()));
                l.to_string()
            }
            (true, None) => root
                .get("Parameters")
                .and_then(|p| p.get(LEVEL_PARAMETER))
                .and_then(|p| p.get("Default"))
                .and_then(Value::as_str)
                .unwrap_or("essential")
                .to_string(),
            (false, _) => format!("all (template.yaml has no {LEVEL_PARAMETER} parameter)"),
        };
        for (k, v) in &overrides {
            if let Some(p) = root.get_mut("Parameters").and_then(|p| p.get_mut(k.as_str())) {
                if let Some(m) = p.as_mapping_mut() {
                    m.insert(Value::from("Default"), Value::from(v.as_str()));
                }
            }
        }
        let resolved = serde_yaml::to_string(&root).map_err(|e| e.to_string())?;
        let template = Template::parse(&resolved)?;
        let conditions = Conditions { root: &root };
        let mut alarms = Vec::new();
        let mut excluded = Vec::new();
        let condition_of: BTreeMap<String, String> = template
            .resources_of_type("AWS::CloudWatch::Alarm")
            .into_iter()
            .filter_map(|(id, r)| Some((id, r.get("Condition")?.as_str()?.to_string())))
            .collect();
        for alarm in template.alarms()? {
            match condition_of.get(&alarm.logical_id) {
                Some(c) if !conditions.eval_named(c, 0)? => excluded.push((alarm.logical_id.clone(), c.clone())),
                _ => alarms.push(alarm),
            }
        }
        Ok(AlarmEvaluator { level, alarms, excluded })
    }

    /// The alarms evaluated.
    pub fn alarms(&self) -> &[AlarmDef] {
        &self.alarms
    }

    /// Judges every alarm over `[from_ms, to_ms]`: every window of consecutive periods that
    /// overlaps it.
    pub fn evaluate(&self, points: &[Datapoint], from_ms: i64, to_ms: i64) -> Vec<AlarmVerdict> {
        self.alarms.iter().map(|a| judge(a, points, from_ms, to_ms)).collect()
    }
}

fn judge(a: &AlarmDef, points: &[Datapoint], from_ms: i64, to_ms: i64) -> AlarmVerdict {
    let verdict = |evaluated: bool, fires: bool, why: String| AlarmVerdict {
        logical_id: a.logical_id.clone(),
        alarm_name: a.alarm_name.clone(),
        evaluated,
        fires,
        why,
    };
    let (Some(namespace), Some(metric), Some(period_s), Some(threshold)) =
        (&a.namespace, &a.metric_name, a.period, a.threshold)
    else {
        return verdict(false, false, "metric math / anomaly band: needs history a local run does not have".into());
    };
    let stat = a.extended_statistic.clone().or_else(|| a.statistic.clone()).unwrap_or_else(|| "Average".into());
    let mut dims = a.dimensions.clone();
    dims.sort();
    let period_ms = i64::from(period_s.max(1)) * 1000;
    let mut buckets: BTreeMap<i64, Vec<f64>> = BTreeMap::new();
    for p in points.iter().filter(|p| &p.namespace == namespace && &p.metric == metric && p.dimensions == dims) {
        buckets.entry(p.at_ms.div_euclid(period_ms)).or_default().push(p.value);
    }
    let n = a.evaluation_periods.max(1) as i64;
    let m = a.datapoints_to_alarm.unwrap_or(a.evaluation_periods).max(1) as usize;
    let missing = a.treat_missing_data.as_deref().unwrap_or("missing");
    let (first, last) = (from_ms.div_euclid(period_ms), to_ms.div_euclid(period_ms));
    let value_of = |k: i64| buckets.get(&k).and_then(|v| statistic(&stat, v));
    let breaches = |v: f64| compare(&a.comparison, v, threshold);
    let when = |k: i64| {
        chrono::DateTime::from_timestamp_millis(k * period_ms)
            .map(|t| t.format("%H:%M").to_string())
            .unwrap_or_default()
    };
    let span = if period_s % 3600 == 0 {
        format!("{} h", period_s / 3600)
    } else if period_s % 60 == 0 {
        format!("{} min", period_s / 60)
    } else {
        format!("{period_s} s")
    };
    let rule = format!(
        "{stat} {} {} per {span}{}",
        symbol(&a.comparison),
        num(threshold),
        if n > 1 { format!(", {m} of {n} periods") } else { String::new() }
    );
    // Each evaluation looks at the N periods ending at `end`; the run's periods are the ends.
    for end in first..=last {
        let mut breaching = Vec::new();
        for k in end - n + 1..=end {
            match value_of(k) {
                Some(v) if breaches(v) => breaching.push(format!("{} at {} UTC", num(v), when(k))),
                Some(_) => {}
                None if missing == "breaching" => breaching.push(format!("no data at {} UTC", when(k))),
                None => {}
            }
        }
        if breaching.len() >= m {
            return verdict(true, true, format!("{rule}: {}", breaching.join(", ")));
        }
    }
    let seen: Vec<String> = buckets
        .iter()
        .filter_map(|(k, v)| statistic(&stat, v).map(|s| format!("{} at {} UTC", num(s), when(*k))))
        .collect();
    let why = if seen.is_empty() {
        format!("{rule}: no data ({missing} when missing)")
    } else {
        format!("{rule}: saw {}", seen.join(", "))
    };
    verdict(true, false, why)
}

/// A value as a person reads it: whole numbers bare, others to four decimals.
fn num(v: f64) -> String {
    if v.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.4}")
    }
}

fn statistic(stat: &str, values: &[f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let sum: f64 = values.iter().sum();
    Some(match stat {
        "Sum" => sum,
        "Average" => sum / values.len() as f64,
        "Maximum" => values.iter().cloned().fold(f64::MIN, f64::max),
        "Minimum" => values.iter().cloned().fold(f64::MAX, f64::min),
        "SampleCount" => values.len() as f64,
        p if p.starts_with('p') => {
            let q: f64 = p[1..].parse().ok()?;
            let mut sorted = values.to_vec();
            sorted.sort_by(|a, b| a.total_cmp(b));
            let rank = ((q / 100.0) * sorted.len() as f64).ceil().max(1.0) as usize;
            sorted[rank.min(sorted.len()) - 1]
        }
        _ => return None,
    })
}

fn compare(op: &str, v: f64, t: f64) -> bool {
    match op {
        "GreaterThanThreshold" => v > t,
        "GreaterThanOrEqualToThreshold" => v >= t,
        "LessThanThreshold" => v < t,
        "LessThanOrEqualToThreshold" => v <= t,
        _ => false,
    }
}

fn symbol(op: &str) -> &'static str {
    match op {
        "GreaterThanThreshold" => ">",
        "GreaterThanOrEqualToThreshold" => ">=",
        "LessThanThreshold" => "<",
        "LessThanOrEqualToThreshold" => "<=",
        _ => "?",
    }
}

/// The template's Conditions, evaluated with parameter defaults (after the overrides).
struct Conditions<'a> {
    root: &'a Value,
}

impl Conditions<'_> {
    fn eval_named(&self, name: &str, depth: usize) -> Result<bool, String> {
        let c = self
            .root
            .get("Conditions")
            .and_then(|c| c.get(name))
            .ok_or_else(|| format!("condition {name} is not declared"))?;
        self.eval(c, depth + 1)
    }

    fn eval(&self, v: &Value, depth: usize) -> Result<bool, String> {
        if depth > 32 {
            return Err("conditions nest too deep".into());
        }
        let (tag, arg) = tagged(v).ok_or_else(|| format!("not a condition function: {v:?}"))?;
        let list = || arg.as_sequence().ok_or_else(|| format!("!{tag} needs a list"));
        match tag.as_str() {
            "Equals" => {
                let items = list()?;
                if items.len() != 2 {
                    return Err("!Equals needs two values".into());
                }
                Ok(self.value(&items[0])? == self.value(&items[1])?)
            }
            "Not" => Ok(!self.eval(list()?.first().ok_or("!Not of nothing")?, depth + 1)?),
            "And" => list()?.iter().try_fold(true, |acc, c| Ok(acc && self.eval(c, depth + 1)?)),
            "Or" => list()?.iter().try_fold(false, |acc, c| Ok(acc || self.eval(c, depth + 1)?)),
            "Condition" => self.eval_named(arg.as_str().ok_or("!Condition of a non-string")?, depth),
            other => Err(format!("unsupported condition function !{other}")),
        }
    }

    fn value(&self, v: &Value) -> Result<String, String> {
        match v {
            Value::String(s) => Ok(s.clone()),
            Value::Number(n) => Ok(n.to_string()),
            Value::Bool(b) => Ok(b.to_string()),
            _ => match tagged(v) {
                Some((t, arg)) if t == "Ref" => {
                    let name = arg.as_str().ok_or("!Ref of a non-string")?;
                    let d = self
                        .root
                        .get("Parameters")
                        .and_then(|p| p.get(name))
                        .and_then(|p| p.get("Default"))
                        .ok_or_else(|| format!("parameter {name} has no default"))?;
                    self.value(d)
                }
                _ => Err(format!("cannot compare {v:?}")),
            },
        }
    }
}

fn tagged(v: &Value) -> Option<(String, &Value)> {
    match v {
        Value::Tagged(t) => Some((t.tag.to_string().trim_start_matches('!').to_string(), &t.value)),
        Value::Mapping(m) if m.len() == 1 => {
            let (k, arg) = m.iter().next()?;
            let k = k.as_str()?;
            let tag = if k == "Ref" || k == "Condition" { k } else { k.strip_prefix("Fn::")? };
            Some((tag.to_string(), arg))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEMPLATE: &str = r#"
Parameters:
  MonitoringLevel: {Type: String, Default: essential}
  Limit: {Type: Number, Default: 5}
Conditions:
  FullMonitoring: !Equals [!Ref MonitoringLevel, full]
Resources:
  Errors:
    Type: AWS::CloudWatch::Alarm
    Properties:
      AlarmName: errors
      Namespace: NS
      MetricName: APIErrors
      Statistic: Sum
      Period: 300
      EvaluationPeriods: 2
      Threshold: !Ref Limit
      ComparisonOperator: GreaterThanThreshold
      TreatMissingData: notBreaching
  Drift:
    Type: AWS::CloudWatch::Alarm
    Condition: FullMonitoring
    Properties:
      AlarmName: drift
      Namespace: NS
      MetricName: SchemaDrift
      Statistic: Sum
      Period: 300
      EvaluationPeriods: 1
      Threshold: 0
      ComparisonOperator: GreaterThanThreshold
  Beat:
    Type: AWS::CloudWatch::Alarm
    Properties:
      AlarmName: beat
      Namespace: NS
      MetricName: Heartbeat
      Statistic: Sum
      Period: 600
      EvaluationPeriods: 1
      Threshold: 1
      ComparisonOperator: LessThanThreshold
      TreatMissingData: breaching
"#;

    fn evaluator(level: Option<&str>) -> AlarmEvaluator {
        let path = std::env::temp_dir().join(format!("local-alarms-{}-{level:?}.yaml", std::process::id()));
        std::fs::write(&path, TEMPLATE).unwrap();
        let e = AlarmEvaluator::load(&path, &[], level).unwrap();
        let _ = std::fs::remove_file(&path);
        e
    }

    #[test]
    fn the_level_selects_alarms_and_thresholds_periods_and_missing_data_decide() {
        let essential = evaluator(None);
        assert_eq!(essential.level, "essential");
        assert_eq!(essential.excluded, vec![("Drift".to_string(), "FullMonitoring".to_string())]);
        let full = evaluator(Some("full"));
        assert_eq!(full.alarms().len(), 3);

        // 10 s into a 10-minute period (1_800_000_000_000 is a multiple of 600_000).
        let t0 = 1_800_000_010_000;
        let dp = |m: &str, dims: &[(&str, &str)], v: f64| Datapoint::new("NS", m, dims, t0 + 1000, v);
        // Six errors in one period: above 5, but two periods in a row are needed.
        let mut points: Vec<Datapoint> = (0..6).map(|_| dp("APIErrors", &[], 1.0)).collect();
        points.push(dp("SchemaDrift", &[("EventType", "x")], 1.0)); // another series: no match
        points.push(dp("Heartbeat", &[], 1.0));
        let v = full.evaluate(&points, t0, t0 + 60_000);
        let by = |id: &str| v.iter().find(|x| x.logical_id == id).unwrap().clone();
        assert!(!by("Errors").fires, "{:?}", by("Errors"));
        assert!(by("Errors").why.contains("saw 6"), "{:?}", by("Errors"));
        assert!(!by("Drift").fires);
        assert!(!by("Beat").fires, "{:?}", by("Beat"));

        points.push(dp("SchemaDrift", &[], 1.0));
        points.extend((0..6).map(|_| Datapoint::new("NS", "APIErrors", &[], t0 + 300_000, 1.0)));
        let v = full.evaluate(&points, t0, t0 + 300_000);
        let by = |id: &str| v.iter().find(|x| x.logical_id == id).unwrap().clone();
        assert!(by("Drift").fires && by("Errors").fires, "{v:?}");
        // No heartbeat at all: missing data breaches.
        let v = full.evaluate(&[], t0, t0 + 1000);
        assert!(v.iter().find(|x| x.logical_id == "Beat").unwrap().fires);
    }

    #[test]
    fn emf_documents_feed_every_dimension_set() {
        let (m, buf) = shared::telemetry::Metrics::capture("BedrockUsage");
        m.count_with_total("APIErrors", 1.0, &[("ErrorCode", "ThrottlingException")]);
        let out = String::from_utf8(buf.lock().unwrap().clone()).unwrap();
        let points = emf_datapoints(&out);
        assert_eq!(points.len(), 2, "{points:?}");
        assert!(points.iter().any(|p| p.dimensions.is_empty()));
        assert!(points.iter().any(|p| p.dimensions == vec![("ErrorCode".into(), "ThrottlingException".into())]));
    }

    #[test]
    fn cbor_put_metric_data_is_read() {
        // {"Namespace": "NS", "MetricData": [{"MetricName": "Heartbeat", "Timestamp": 1(1800000000.5),
        //   "Value": 1.0, "Dimensions": [{"Name": "A", "Value": "b"}]}]} with an indefinite map inside.
        let mut b = vec![0xa2, 0x69];
        b.extend_from_slice(b"Namespace");
        b.extend_from_slice(&[0x62, b'N', b'S', 0x6a]);
        b.extend_from_slice(b"MetricData");
        b.extend_from_slice(&[0x81, 0xbf, 0x6a]);
        b.extend_from_slice(b"MetricName");
        b.push(0x69);
        b.extend_from_slice(b"Heartbeat");
        b.push(0x69);
        b.extend_from_slice(b"Timestamp");
        b.extend_from_slice(&[0xc1, 0xfb]);
        b.extend_from_slice(&1_800_000_000.5f64.to_be_bytes());
        b.push(0x65);
        b.extend_from_slice(b"Value");
        b.extend_from_slice(&[0xf9, 0x3c, 0x00]); // half-precision 1.0
        b.push(0x6a);
        b.extend_from_slice(b"Dimensions");
        b.extend_from_slice(&[0x81, 0xa2, 0x64]);
        b.extend_from_slice(b"Name");
        b.extend_from_slice(&[0x61, b'A', 0x65]);
        b.extend_from_slice(b"Value");
        b.extend_from_slice(&[0x61, b'b', 0xff]);
        let points = put_metric_data_datapoints(&b).unwrap();
        assert_eq!(points, vec![Datapoint::new("NS", "Heartbeat", &[("A", "b")], 1_800_000_000_500, 1.0)]);
    }
}
