//! "Test your alerts" (seed 002): for a deployed stack, push each alarm's metric over its
//! threshold with PutMetricData, or set the alarm's state where a metric cannot be forced
//! (AWS-owned metrics, metric math and anomaly bands, a missing heartbeat), then wait (bounded)
//! for ALARM so a team sees every alert reach them. Used by `scripts/alert-test`
//! (tests/src/bin/alert-test.rs).

use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_sdk_cloudwatch::primitives::DateTime;
use aws_sdk_cloudwatch::types::{Dimension, MetricAlarm, MetricDatum, StateValue};

use crate::template::AlarmDef;

/// What the planner needs of an alarm (from DescribeAlarms, or from the template in tests).
#[derive(Debug, Clone, PartialEq)]
pub struct AlarmSpec {
    pub name: String,
    pub namespace: Option<String>,
    pub metric_name: Option<String>,
    pub dimensions: Vec<(String, String)>,
    pub statistic: Option<String>,
    pub extended_statistic: Option<String>,
    pub period: Option<i32>,
    pub evaluation_periods: i32,
    pub datapoints_to_alarm: Option<i32>,
    pub threshold: Option<f64>,
    pub comparison: String,
    pub uses_metric_math: bool,
}

impl From<&AlarmDef> for AlarmSpec {
    fn from(a: &AlarmDef) -> Self {
        AlarmSpec {
            name: a.alarm_name.clone(),
            namespace: a.namespace.clone(),
            metric_name: a.metric_name.clone(),
            dimensions: a.dimensions.clone(),
            statistic: a.statistic.clone(),
            extended_statistic: a.extended_statistic.clone(),
            period: a.period,
            evaluation_periods: a.evaluation_periods,
            datapoints_to_alarm: a.datapoints_to_alarm,
            threshold: a.threshold,
            comparison: a.comparison.clone(),
            uses_metric_math: !a.math_metrics.is_empty() || !a.expressions.is_empty(),
        }
    }
}

impl From<&MetricAlarm> for AlarmSpec {
    fn from(a: &MetricAlarm) -> Self {
        AlarmSpec {
            name: a.alarm_name().unwrap_or_default().to_string(),
            namespace: a.namespace().map(str::to_string),
            metric_name: a.metric_name().map(str::to_string),
            dimensions: a
                .dimensions()
                .iter()
                .map(|d| (d.name().unwrap_or_default().to_string(), d.value().unwrap_or_default().to_string()))
                .collect(),
            statistic: a.statistic().map(|s| s.as_str().to_string()),
            extended_statistic: a.extended_statistic().map(str::to_string),
            period: a.period(),
            evaluation_periods: a.evaluation_periods().unwrap_or(1),
            datapoints_to_alarm: a.datapoints_to_alarm(),
            threshold: a.threshold(),
            comparison: a.comparison_operator().map(|c| c.as_str().to_string()).unwrap_or_default(),
            uses_metric_math: !a.metrics().is_empty(),
        }
    }
}

/// How one alarm is driven into ALARM.
#[derive(Debug, Clone, PartialEq)]
pub enum Method {
    /// PutMetricData: `count` samples of `value` in each of `periods` consecutive periods
    /// (the newest now), with the alarm's exact dimensions.
    Push {
        namespace: String,
        metric: String,
        dimensions: Vec<(String, String)>,
        value: f64,
        count: f64,
        periods: i32,
        period_s: i32,
    },
    /// SetAlarmState ALARM (CloudWatch sets it back at the alarm's next evaluation).
    SetState { why: String },
}

/// The plan for one alarm.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    pub alarm: String,
    pub method: Method,
}

/// Plans how to drive `a` into ALARM. `set_state_only` never publishes data (no fake cost or
/// error figures in the stack's metrics).
pub fn plan(a: &AlarmSpec, set_state_only: bool) -> Step {
    let set = |why: &str| Step { alarm: a.name.clone(), method: Method::SetState { why: why.to_string() } };
    if set_state_only {
        return set("--set-state-only");
    }
    if a.uses_metric_math {
        return set("metric math / anomaly band: no single metric to push");
    }
    let (Some(namespace), Some(metric), Some(threshold), Some(period_s)) =
        (&a.namespace, &a.metric_name, a.threshold, a.period)
    else {
        return set("no metric, threshold or period");
    };
    if namespace.starts_with("AWS/") {
        return set("AWS-owned metric: only AWS publishes it");
    }
    let above = match a.comparison.as_str() {
        "GreaterThanThreshold" | "GreaterThanOrEqualToThreshold" => true,
        "LessThanThreshold" | "LessThanOrEqualToThreshold" => false,
        _ => return set("comparison is not a fixed threshold"),
    };
    if !above {
        return set("fires on low or missing data: cannot be forced by publishing");
    }
    let stat = a.extended_statistic.as_deref().or(a.statistic.as_deref()).unwrap_or_default();
    let (value, count) = match stat {
        // One sample above the threshold makes the period's sum cross it.
        "Sum" => (threshold.max(0.0) + 1.0, 1.0),
        // Many samples well above it dominate the period whatever real traffic adds.
        "Average" | "Maximum" => (threshold.max(0.0) * 2.0 + 1.0, 100.0),
        s if s.starts_with('p') => (threshold.max(0.0) * 2.0 + 1.0, 100.0),
        _ => return set("statistic cannot be forced by publishing (SampleCount / Minimum)"),
    };
    Step {
        alarm: a.name.clone(),
        method: Method::Push {
            namespace: namespace.clone(),
            metric: metric.clone(),
            dimensions: a.dimensions.clone(),
            value,
            count,
            periods: a.datapoints_to_alarm.unwrap_or(a.evaluation_periods).max(1),
            period_s,
        },
    }
}

/// True when one period holding only the pushed samples breaches the alarm.
pub fn pushed_period_breaches(a: &AlarmSpec, value: f64, count: f64) -> bool {
    let stat = a.extended_statistic.as_deref().or(a.statistic.as_deref()).unwrap_or_default();
    let observed = if stat == "Sum" { value * count } else { value };
    let t = a.threshold.unwrap_or(f64::INFINITY);
    match a.comparison.as_str() {
        "GreaterThanThreshold" => observed > t,
        "GreaterThanOrEqualToThreshold" => observed >= t,
        "LessThanThreshold" => observed < t,
        "LessThanOrEqualToThreshold" => observed <= t,
        _ => false,
    }
}

/// Names of the stack's alarms (CloudFormation ListStackResources, all pages).
pub async fn stack_alarm_names(cfn: &aws_sdk_cloudformation::Client, stack: &str) -> Result<Vec<String>, String> {
    stack_physical_ids(cfn, stack, "AWS::CloudWatch::Alarm").await
}

/// Physical ids of the stack's resources of one type, sorted (an alarm's is its name).
pub async fn stack_physical_ids(
    cfn: &aws_sdk_cloudformation::Client,
    stack: &str,
    resource_type: &str,
) -> Result<Vec<String>, String> {
    let mut names = Vec::new();
    let mut pages = cfn.list_stack_resources().stack_name(stack).into_paginator().send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| format!("listing the resources of stack {stack}: {}", sdk_message(&e)))?;
        for r in page.stack_resource_summaries() {
            if r.resource_type() == Some(resource_type) {
                if let Some(id) = r.physical_resource_id() {
                    names.push(id.to_string());
                }
            }
        }
    }
    names.sort();
    Ok(names)
}

fn sdk_message<E: std::error::Error>(e: &E) -> String {
    let mut msg = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        msg = format!("{msg}: {s}");
        src = s.source();
    }
    msg
}

/// The metric alarms of those names (DescribeAlarms, 100 names per call).
pub async fn describe(cw: &aws_sdk_cloudwatch::Client, names: &[String]) -> Result<Vec<MetricAlarm>, String> {
    let mut out = Vec::new();
    for chunk in names.chunks(100) {
        let r = cw
            .describe_alarms()
            .set_alarm_names(Some(chunk.to_vec()))
            .max_records(100)
            .send()
            .await
            .map_err(|e| format!("DescribeAlarms: {}", sdk_message(&e)))?;
        out.extend(r.metric_alarms().iter().cloned());
    }
    Ok(out)
}

/// Carries out one step.
pub async fn execute(cw: &aws_sdk_cloudwatch::Client, step: &Step, now: SystemTime) -> Result<(), String> {
    match &step.method {
        Method::SetState { why } => cw
            .set_alarm_state()
            .alarm_name(&step.alarm)
            .state_value(StateValue::Alarm)
            .state_reason(format!("alert-test: testing that this alarm reaches its subscribers ({why})"))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| format!("SetAlarmState {}: {}", step.alarm, sdk_message(&e))),
        Method::Push { namespace, metric, dimensions, value, count, periods, period_s } => {
            let now_s = now.duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or_default();
            let dims: Vec<Dimension> =
                dimensions.iter().map(|(k, v)| Dimension::builder().name(k).value(v).build()).collect();
            let data: Vec<MetricDatum> = (0..*periods)
                .map(|i| {
                    MetricDatum::builder()
                        .metric_name(metric)
                        .set_dimensions(Some(dims.clone()))
                        .timestamp(DateTime::from_secs(now_s - i64::from(i) * i64::from(*period_s)))
                        .values(*value)
                        .counts(*count)
                        .build()
                })
                .collect();
            cw.put_metric_data()
                .namespace(namespace)
                .set_metric_data(Some(data))
                .send()
                .await
                .map(|_| ())
                .map_err(|e| format!("PutMetricData {namespace}/{metric}: {}", sdk_message(&e)))
        }
    }
}

/// How one alarm's test ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Reached ALARM this long after the test started.
    Alarm(Duration),
    /// Was in ALARM before the test: the notification was not re-sent.
    AlreadyAlarm,
    /// Did not reach ALARM in time; its last state.
    TimedOut(String),
    Failed(String),
}

/// Options of one run.
#[derive(Debug, Clone)]
pub struct RunOptions {
    pub timeout: Duration,
    pub poll: Duration,
}

/// Drives every planned alarm, then polls DescribeAlarms until each is in ALARM or the time is up.
pub async fn run(cw: &aws_sdk_cloudwatch::Client, steps: &[Step], opts: &RunOptions) -> BTreeMap<String, Outcome> {
    let started = Instant::now();
    let names: Vec<String> = steps.iter().map(|s| s.alarm.clone()).collect();
    let mut outcomes = BTreeMap::new();
    let before = match describe(cw, &names).await {
        Ok(a) => states(&a),
        Err(e) => return names.into_iter().map(|n| (n, Outcome::Failed(e.clone()))).collect(),
    };
    for s in steps {
        if before.get(&s.alarm).map(String::as_str) == Some("ALARM") {
            outcomes.insert(s.alarm.clone(), Outcome::AlreadyAlarm);
            continue;
        }
        if let Err(e) = execute(cw, s, SystemTime::now()).await {
            outcomes.insert(s.alarm.clone(), Outcome::Failed(e));
        }
    }
    loop {
        let waiting: Vec<String> = names.iter().filter(|n| !outcomes.contains_key(*n)).cloned().collect();
        if waiting.is_empty() {
            break;
        }
        let now = match describe(cw, &waiting).await {
            Ok(a) => states(&a),
            Err(e) => {
                for n in waiting {
                    outcomes.insert(n, Outcome::Failed(e.clone()));
                }
                break;
            }
        };
        for n in &waiting {
            if now.get(n).map(String::as_str) == Some("ALARM") {
                outcomes.insert(n.clone(), Outcome::Alarm(started.elapsed()));
            }
        }
        if started.elapsed() >= opts.timeout {
            for n in waiting {
                let last = now.get(&n).cloned().unwrap_or_else(|| "not found".into());
                outcomes.entry(n).or_insert(Outcome::TimedOut(last));
            }
            break;
        }
        tokio::time::sleep(opts.poll).await;
    }
    outcomes
}

fn states(alarms: &[MetricAlarm]) -> BTreeMap<String, String> {
    alarms
        .iter()
        .map(|a| {
            let state = a.state_value().map(|s| s.as_str().to_string()).unwrap_or_default();
            (a.alarm_name().unwrap_or_default().to_string(), state)
        })
        .collect()
}

/// The plan as a table (`--dry-run`).
pub fn plan_table(steps: &[Step]) -> String {
    let rows: Vec<[String; 3]> = steps
        .iter()
        .map(|s| match &s.method {
            Method::Push { namespace, metric, dimensions, value, count, periods, period_s } => {
                let dims = dimensions.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(",");
                [
                    s.alarm.clone(),
                    "PutMetricData".into(),
                    format!("{namespace}/{metric}{{{dims}}} = {value} x{count} in {periods} period(s) of {period_s} s"),
                ]
            }
            Method::SetState { why } => [s.alarm.clone(), "SetAlarmState".into(), why.clone()],
        })
        .collect();
    table(["alarm", "method", "what"], &rows)
}

/// The results as a table.
pub fn result_table(steps: &[Step], outcomes: &BTreeMap<String, Outcome>) -> String {
    let rows: Vec<[String; 3]> = steps
        .iter()
        .map(|s| {
            let method = match s.method {
                Method::Push { .. } => "PutMetricData",
                Method::SetState { .. } => "SetAlarmState",
            };
            let result = match outcomes.get(&s.alarm) {
                Some(Outcome::Alarm(d)) => format!("ALARM after {} s", d.as_secs()),
                Some(Outcome::AlreadyAlarm) => "already in ALARM before the test (not re-sent)".into(),
                Some(Outcome::TimedOut(state)) => format!("TIMED OUT (still {state})"),
                Some(Outcome::Failed(e)) => format!("FAILED: {e}"),
                None => "not run".into(),
            };
            [s.alarm.clone(), method.to_string(), result]
        })
        .collect();
    table(["alarm", "method", "result"], &rows)
}

fn table(header: [&str; 3], rows: &[[String; 3]]) -> String {
    let mut widths = header.map(str::len);
    for r in rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cells: [&str; 3]| {
        format!("{:<w0$}  {:<w1$}  {}", cells[0], cells[1], cells[2], w0 = widths[0], w1 = widths[1])
            .trim_end()
            .to_string()
    };
    let mut out = vec![line(header)];
    out.extend(rows.iter().map(|r| line([&r[0], &r[1], &r[2]])));
    out.join("\n") + "\n"
}

/// True when every alarm reached (or was already in) ALARM.
pub fn all_alarmed(outcomes: &BTreeMap<String, Outcome>) -> bool {
    outcomes.values().all(|o| matches!(o, Outcome::Alarm(_) | Outcome::AlreadyAlarm))
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};

    use aws_sdk_cloudwatch::operation::describe_alarms::DescribeAlarmsOutput;
    use aws_sdk_cloudwatch::operation::put_metric_data::PutMetricDataOutput;
    use aws_sdk_cloudwatch::operation::set_alarm_state::{SetAlarmStateError, SetAlarmStateOutput};
    use aws_sdk_cloudwatch::types::error::ResourceNotFound;
    use aws_sdk_cloudwatch::types::{ComparisonOperator, Statistic};
    use aws_sdk_cloudwatch::Client;
    use aws_smithy_mocks::{mock, mock_client, RuleMode};

    use super::*;
    use crate::moto::workspace_root;
    use crate::template::Template;

    fn template_specs() -> Vec<AlarmSpec> {
        // Every alarm the template can create: MonitoringLevel full.
        let t = Template::load(&workspace_root().join("template.yaml"))
            .expect("template")
            .at_level(shared::metric_names::MetricsLevel::Full);
        t.created_alarms().expect("alarms").iter().map(AlarmSpec::from).collect()
    }

    fn by_suffix<'a>(specs: &'a [AlarmSpec], suffix: &str) -> &'a AlarmSpec {
        specs.iter().find(|s| s.name.ends_with(&format!("-{suffix}"))).unwrap_or_else(|| panic!("no alarm {suffix}"))
    }

    #[test]
    fn every_template_alarm_gets_a_plan_that_fires_it() {
        let specs = template_specs();
        assert!(specs.len() >= 20);
        for a in &specs {
            let step = plan(a, false);
            match &step.method {
                Method::Push { namespace, metric, dimensions, value, count, periods, period_s } => {
                    assert_eq!(Some(namespace), a.namespace.as_ref());
                    assert!(!namespace.starts_with("AWS/"), "{}: AWS metrics cannot be pushed", a.name);
                    assert_eq!(Some(metric), a.metric_name.as_ref());
                    assert_eq!(dimensions, &a.dimensions, "{}: the alarm's exact dimensions", a.name);
                    assert!(pushed_period_breaches(a, *value, *count), "{}: {value} x{count} does not breach", a.name);
                    assert!(*periods >= a.datapoints_to_alarm.unwrap_or(a.evaluation_periods), "{}", a.name);
                    assert_eq!(Some(*period_s), a.period);
                }
                Method::SetState { .. } => {
                    let forced = a.uses_metric_math
                        || a.namespace.as_deref().is_some_and(|n| n.starts_with("AWS/"))
                        || a.comparison.starts_with("LessThan");
                    assert!(forced, "{} could be pushed but is only set", a.name);
                }
            }
        }
        // The ones that cannot be forced by data.
        for name in ["CostAnomaly", "HeartbeatMissing", "WorkDLQNotEmpty", "WorkQueueBacklog", "SlackWorkerErrors"] {
            assert!(matches!(plan(by_suffix(&specs, name), false).method, Method::SetState { .. }), "{name}");
        }
        // Seed 003's thresholds, pushed just over: 6 errors in each of 2 periods, $101 in a day.
        let api = plan(by_suffix(&specs, "APIErrorsHigh"), false);
        assert!(matches!(api.method, Method::Push { value, periods: 2, period_s: 300, .. } if value == 6.0), "{api:?}");
        let daily = plan(by_suffix(&specs, "DailyCostHigh"), false);
        assert!(matches!(daily.method, Method::Push { value, periods: 1, period_s: 86400, .. } if value == 101.0));
        let p95 = plan(by_suffix(&specs, "LatencyP95High"), false);
        assert!(matches!(&p95.method, Method::Push { dimensions, .. } if dimensions[0].0 == "AgentId"), "{p95:?}");
        // --set-state-only publishes nothing.
        assert!(specs.iter().all(|a| matches!(plan(a, true).method, Method::SetState { .. })));
        let table = plan_table(&specs.iter().map(|a| plan(a, false)).collect::<Vec<_>>());
        assert!(specs.iter().all(|a| table.contains(&a.name)), "{table}");
    }

    fn alarm(name: &str, ns: &str, metric: &str, state: StateValue) -> MetricAlarm {
        MetricAlarm::builder()
            .alarm_name(name)
            .namespace(ns)
            .metric_name(metric)
            .dimensions(Dimension::builder().name("QueueName").value("q").build())
            .statistic(Statistic::Sum)
            .period(300)
            .evaluation_periods(2)
            .threshold(5.0)
            .comparison_operator(ComparisonOperator::GreaterThanThreshold)
            .state_value(state)
            .build()
    }

    #[tokio::test]
    async fn pushes_or_sets_then_waits_for_alarm() {
        let described = Arc::new(AtomicUsize::new(0));
        let d = described.clone();
        // Before the test both are OK; the second poll sees both in ALARM.
        let polls = mock!(Client::describe_alarms).then_compute_output(move |_| {
            let state = if d.fetch_add(1, Ordering::SeqCst) < 2 { StateValue::Ok } else { StateValue::Alarm };
            DescribeAlarmsOutput::builder()
                .metric_alarms(alarm("s-APIErrorsHigh", "BedrockUsage", "APIErrors", state.clone()))
                .metric_alarms(alarm("s-WorkDLQNotEmpty", "AWS/SQS", "ApproximateNumberOfMessagesVisible", state))
                .build()
        });
        let pushed = Arc::new(Mutex::new(Vec::new()));
        let p = pushed.clone();
        let put = mock!(Client::put_metric_data)
            .match_requests(move |r| {
                p.lock().unwrap().push((r.namespace().unwrap_or_default().to_string(), r.metric_data().to_vec()));
                true
            })
            .then_output(|| PutMetricDataOutput::builder().build());
        let set = mock!(Client::set_alarm_state)
            .match_requests(|r| {
                r.alarm_name() == Some("s-WorkDLQNotEmpty") && r.state_value() == Some(&StateValue::Alarm)
            })
            .then_output(|| SetAlarmStateOutput::builder().build());
        let cw = mock_client!(aws_sdk_cloudwatch, RuleMode::MatchAny, [&polls, &put, &set]);

        let alarms = describe_for_test(&cw).await;
        let steps: Vec<Step> = alarms.iter().map(|a| plan(&AlarmSpec::from(a), false)).collect();
        let outcomes = run(&cw, &steps, &RunOptions { timeout: Duration::from_secs(600), poll: Duration::ZERO }).await;

        assert!(all_alarmed(&outcomes), "{outcomes:?}");
        assert_eq!(set.num_calls(), 1);
        let pushed = pushed.lock().unwrap();
        assert_eq!(pushed.len(), 1);
        let (ns, data) = &pushed[0];
        assert_eq!(ns, "BedrockUsage");
        assert_eq!(data.len(), 2, "one datum in each of the 2 evaluation periods");
        assert!(data
            .iter()
            .all(|d| d.metric_name() == Some("APIErrors") && d.values() == [6.0] && d.counts() == [1.0]));
        assert_eq!(data[0].dimensions()[0].name(), Some("QueueName"));
        let t: Vec<i64> = data.iter().map(|d| d.timestamp().unwrap().secs()).collect();
        assert_eq!(t[0] - t[1], 300);
        let table = result_table(&steps, &outcomes);
        let row = |alarm: &str, method: &str| {
            table.lines().any(|l| l.starts_with(alarm) && l.contains(method) && l.contains("ALARM after"))
        };
        assert!(row("s-APIErrorsHigh", "PutMetricData") && row("s-WorkDLQNotEmpty", "SetAlarmState"), "{table}");
    }

    async fn describe_for_test(cw: &Client) -> Vec<MetricAlarm> {
        describe(cw, &["s-APIErrorsHigh".to_string(), "s-WorkDLQNotEmpty".to_string()]).await.expect("describe")
    }

    #[tokio::test]
    async fn reports_a_timeout_an_error_and_an_alarm_already_firing() {
        let described = mock!(Client::describe_alarms).then_output(|| {
            DescribeAlarmsOutput::builder()
                .metric_alarms(alarm("s-A", "BedrockUsage", "APIErrors", StateValue::Ok))
                .metric_alarms(alarm("s-B", "BedrockUsage", "LoggingErrors", StateValue::Alarm))
                .metric_alarms(alarm("s-C", "AWS/SQS", "ApproximateNumberOfMessagesVisible", StateValue::Ok))
                .build()
        });
        let put = mock!(Client::put_metric_data).then_output(|| PutMetricDataOutput::builder().build());
        let set = mock!(Client::set_alarm_state)
            .then_error(|| SetAlarmStateError::ResourceNotFound(ResourceNotFound::builder().message("gone").build()));
        let cw = mock_client!(aws_sdk_cloudwatch, RuleMode::MatchAny, [&described, &put, &set]);
        let alarms = describe(&cw, &["s-A".into(), "s-B".into(), "s-C".into()]).await.unwrap();
        let steps: Vec<Step> = alarms.iter().map(|a| plan(&AlarmSpec::from(a), false)).collect();
        let outcomes = run(&cw, &steps, &RunOptions { timeout: Duration::ZERO, poll: Duration::ZERO }).await;
        assert_eq!(outcomes["s-A"], Outcome::TimedOut("OK".into()));
        assert_eq!(outcomes["s-B"], Outcome::AlreadyAlarm);
        assert!(matches!(&outcomes["s-C"], Outcome::Failed(e) if e.contains("SetAlarmState s-C")), "{outcomes:?}");
        assert!(!all_alarmed(&outcomes));
        assert_eq!(put.num_calls(), 1, "an alarm already firing is not pushed again");
    }

    /// CloudFormation against moto. moto's CloudFormation does not create AWS::CloudWatch::Alarm
    /// resources (it skips them with a warning), so this proves the ListStackResources call, the
    /// type filter and the error on the stack's queues, through the function alarms use.
    #[tokio::test]
    async fn lists_the_resources_of_a_stack_by_type() {
        let moto = crate::moto::Moto::start().expect("moto");
        let cfn = aws_sdk_cloudformation::Client::new(&moto.sdk_config());
        let body = r#"{"Resources": {
            "Q2": {"Type": "AWS::SQS::Queue", "Properties": {"QueueName": "alert-test-q2"}},
            "Q1": {"Type": "AWS::SQS::Queue", "Properties": {"QueueName": "alert-test-q1"}},
            "T": {"Type": "AWS::SNS::Topic", "Properties": {"TopicName": "alert-test-t"}}}}"#;
        cfn.create_stack().stack_name("st").template_body(body).send().await.expect("create stack");
        let queues = stack_physical_ids(&cfn, "st", "AWS::SQS::Queue").await.expect("list");
        assert_eq!(queues.len(), 2, "{queues:?}");
        assert!(queues[0].ends_with("/alert-test-q1") && queues[1].ends_with("/alert-test-q2"), "{queues:?}");
        let e = stack_alarm_names(&cfn, "no-such-stack").await.unwrap_err();
        assert!(e.contains("no-such-stack"), "{e}");
    }
}
