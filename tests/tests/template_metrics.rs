//! The template against the code: at each MonitoringLevel, every metric an alarm or a dashboard
//! of that level names is emitted by some function at that level with the same namespace, name
//! and dimension keys (an alarm on any other dimension set, or on a series the level does not
//! publish, never fires); the registry in shared/src/metric_names.rs matches the emitting code (source
//! scan); every registered metric is documented in RUNBOOKS.md and every alarm has a runbook.
//! No emulator: this binary reads files only.

use std::collections::BTreeSet;
use std::path::PathBuf;

use shared::metric_names::{find, MetricsLevel, METRICS};
use tests::metric_scan::{check_registry, read_sources, scan, unlevelled_emitters, Sources};
use tests::template::{MetricRef, Template};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(root().join(rel)).unwrap_or_else(|e| panic!("reading {rel}: {e}"))
}

/// AWS-owned metrics the template may name, with the one dimension key each is used with.
const AWS_METRICS: &[(&str, &[&str], &str)] = &[
    ("AWS/Lambda", &["Errors", "Throttles", "Duration", "Invocations", "ConcurrentExecutions"], "FunctionName"),
    ("AWS/SQS", &["ApproximateNumberOfMessagesVisible", "ApproximateAgeOfOldestMessage"], "QueueName"),
];

/// Problems with the metrics a template names at either level (empty = every one is emitted).
fn check_template_metrics(template_text: &str) -> Vec<String> {
    let t = match Template::parse(template_text) {
        Ok(t) => t,
        Err(e) => return vec![e],
    };
    MetricsLevel::ALL
        .into_iter()
        .flat_map(|level| {
            check_level(&t.clone().at_level(level), level)
                .into_iter()
                .map(move |p| format!("MonitoringLevel {}: {p}", level.as_str()))
        })
        .collect()
}

/// Problems with the metrics the template names at `level`.
fn check_level(t: &Template, level: MetricsLevel) -> Vec<String> {
    let namespace = t.parameter_default("MetricsNamespace").unwrap_or_else(|| "BedrockUsage".into());
    let refs = match t.metric_refs() {
        Ok(r) => r,
        Err(e) => return vec![e],
    };
    let mut problems = Vec::new();
    for MetricRef { namespace: ns, name, dimensions, source } in &refs {
        let keys: Vec<&str> = dimensions.iter().map(String::as_str).collect();
        if *ns == namespace {
            match find(name) {
                None => problems.push(format!("{source}: {ns}/{name} is not emitted by any function")),
                Some(spec) if !spec.has_dimension_set(&keys) => problems.push(format!(
                    "{source}: {ns}/{name} with dimensions {keys:?} is never emitted (emitted: {:?})",
                    spec.emissions.iter().map(|e| e.dimensions).collect::<Vec<_>>()
                )),
                Some(_) if !level.publishes(name, &keys) => problems.push(format!(
                    "{source}: {ns}/{name} with dimensions {keys:?} is not published at this level \
                     (mark it essential in shared/src/metric_names.rs, or give the resource Condition: IsFull)"
                )),
                Some(_) => {}
            }
        } else if let Some((_, names, key)) = AWS_METRICS.iter().find(|(n, _, _)| n == ns) {
            if !names.contains(&name.as_str()) || keys != [*key] {
                problems.push(format!("{source}: {ns}/{name} {keys:?} is not a metric {ns} publishes"));
            }
        } else {
            problems.push(format!("{source}: namespace {ns} is neither {namespace} nor a known AWS one"));
        }
    }
    if refs.is_empty() {
        problems.push("the template names no metric at all".into());
    }
    problems
}

/// GitHub's heading anchors: lower case, spaces to '-', punctuation dropped.
fn anchors(markdown: &str) -> BTreeSet<String> {
    markdown
        .lines()
        .filter(|l| l.starts_with('#'))
        .map(|l| {
            l.trim_start_matches('#')
                .trim()
                .to_lowercase()
                .chars()
                .filter_map(|c| match c {
                    ' ' => Some('-'),
                    c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
                    _ => None,
                })
                .collect()
        })
        .collect()
}

/// Problems with RUNBOOKS.md: undocumented metrics, alarms without a runbook.
fn check_runbooks(template_text: &str, runbooks: &str) -> Vec<String> {
    let mut problems = Vec::new();
    let documented: BTreeSet<&str> = runbooks
        .lines()
        .filter(|l| l.starts_with('|'))
        .filter_map(|l| l.split('|').nth(1))
        .map(|c| c.trim().trim_matches('`'))
        .collect();
    for spec in METRICS {
        if !documented.contains(spec.name) {
            problems.push(format!("metric {} is not in RUNBOOKS.md's metrics table", spec.name));
        }
    }
    let anchors = anchors(runbooks);
    let t = match Template::parse(template_text) {
        Ok(t) => t,
        Err(e) => return vec![e],
    };
    let alarms = MetricsLevel::ALL.into_iter().flat_map(|l| t.clone().at_level(l).created_alarms().unwrap_or_default());
    for a in alarms {
        match a.description.split("RUNBOOKS.md#").nth(1).map(|s| s.split_whitespace().next().unwrap_or_default()) {
            None => problems.push(format!("alarm {} does not link its runbook (RUNBOOKS.md#...)", a.logical_id)),
            Some(anchor) if !anchors.contains(anchor) => {
                problems.push(format!("alarm {} links RUNBOOKS.md#{anchor}, which has no heading", a.logical_id))
            }
            Some(_) => {}
        }
    }
    problems
}

fn scan_problems(sources: &Sources) -> Vec<String> {
    let (found, mut problems) = scan(sources);
    problems.extend(check_registry(&found));
    problems
}

#[test]
fn every_alarm_and_dashboard_metric_is_emitted_by_some_function() {
    let problems = check_template_metrics(&read("template.yaml"));
    assert!(problems.is_empty(), "\n{}", problems.join("\n"));
}

#[test]
fn the_registry_matches_every_metric_call_in_the_code() {
    let sources = read_sources(&root()).expect("sources");
    let (found, _) = scan(&sources);
    // The scan sees the functions' emissions (a scan that found nothing would prove nothing).
    for emitter in ["slack-gateway", "token-logging", "action-group", "metrics-publisher"] {
        assert!(found.iter().any(|f| f.emitter == emitter), "no emission found in functions/{emitter}");
    }
    let problems = scan_problems(&sources);
    assert!(problems.is_empty(), "\n{}", problems.join("\n"));
}

#[test]
fn every_emitter_publishes_at_the_configured_level() {
    let sources = read_sources(&root()).expect("sources");
    let constructions: usize = sources
        .iter()
        .map(|(_, _, text)| text.matches("Metrics::stdout(").count() + text.matches("CloudWatchMetrics::new(").count())
        .sum();
    assert!(constructions >= 5, "the scan sees the functions' emitters ({constructions})");
    let problems = unlevelled_emitters(&sources);
    assert!(problems.is_empty(), "\n{}", problems.join("\n"));
}

#[test]
fn every_metric_is_documented_and_every_alarm_has_a_runbook() {
    let problems = check_runbooks(&read("template.yaml"), &read("RUNBOOKS.md"));
    assert!(problems.is_empty(), "\n{}", problems.join("\n"));
}

#[test]
fn every_alarm_notifies_the_topic_and_the_bot_health_dashboard_shows_it() {
    let t = Template::load(&root().join("template.yaml")).expect("template").at_level(MetricsLevel::Full);
    let alarms = t.created_alarms().expect("alarms");
    assert!(alarms.len() >= 20, "{} alarms", alarms.len());
    let dashboards = t.created_dashboards().expect("dashboards");
    let health = &dashboards.iter().find(|(id, _)| id == "BotHealthDashboard").expect("bot-health dashboard").1;
    let shown: BTreeSet<String> = health["widgets"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|w| w["type"] == "alarm")
        .flat_map(|w| w["properties"]["alarms"].as_array().cloned().unwrap_or_default())
        .filter_map(|a| a.as_str().map(str::to_string))
        .collect();
    for a in &alarms {
        assert_eq!(a.alarm_actions, vec!["<AlarmTopic>".to_string()], "alarm {} notifies the topic", a.logical_id);
        assert!(
            a.alarm_name.starts_with("stack-"),
            "alarm {} is named after the stack (alert-test finds it)",
            a.alarm_name
        );
        assert!(shown.contains(&format!("<{}.Arn>", a.logical_id)), "bot-health does not show {}", a.logical_id);
    }
    // Every function of the stack has an Errors alarm (seed 000).
    let watched: BTreeSet<String> = alarms
        .iter()
        .filter(|a| a.namespace.as_deref() == Some("AWS/Lambda"))
        .flat_map(|a| a.dimensions.iter().map(|(_, v)| v.clone()))
        .collect();
    for (id, _) in t.resources_of_type("AWS::Serverless::Function") {
        assert!(watched.contains(&format!("<{id}>")), "no Errors alarm on {id}");
    }
    // Every dead-letter queue has a not-empty alarm.
    for (id, _) in t.resources_of_type("AWS::SQS::Queue").into_iter().filter(|(id, _)| id.contains("DeadLetter")) {
        assert!(
            alarms.iter().any(|a| a.dimensions.iter().any(|(_, v)| *v == format!("<{id}.QueueName>"))),
            "no alarm on {id}"
        );
    }
}

#[test]
fn essential_keeps_the_alarms_that_catch_a_broken_product_and_no_dashboard() {
    let t = Template::load(&root().join("template.yaml")).expect("template");
    assert_eq!(t.parameter_default("MonitoringLevel").as_deref(), Some("essential"));
    let essential = t.clone().at_level(MetricsLevel::Essential);
    let alarms = essential.created_alarms().expect("alarms");
    assert!(essential.created_dashboards().expect("dashboards").is_empty(), "dashboards are $3 each: full only");
    for a in &alarms {
        assert_eq!(a.alarm_actions, vec!["<AlarmTopic>".to_string()], "alarm {} notifies the topic", a.logical_id);
    }
    let named = |suffix: &str| alarms.iter().any(|a| a.alarm_name == format!("stack-{suffix}"));
    for suffix in ["SlackIngressErrors", "SlackWorkerErrors", "HeartbeatMissing", "UnansweredConversations"] {
        assert!(
            named(suffix),
            "essential has no {suffix} alarm: {:?}",
            alarms.iter().map(|a| &a.alarm_name).collect::<Vec<_>>()
        );
    }
    assert!(named("HourlyCostSpike") || named("DailyCostHigh"), "essential watches the cost");
    // Every dead-letter queue, at both levels.
    for (id, _) in t.resources_of_type("AWS::SQS::Queue").into_iter().filter(|(id, _)| id.contains("DeadLetter")) {
        assert!(
            alarms.iter().any(|a| a.dimensions.iter().any(|(_, v)| *v == format!("<{id}.QueueName>"))),
            "no essential alarm on {id}"
        );
    }
    // The heartbeat alarms of both levels fire on missing data, and each level has exactly one.
    let full = t.at_level(MetricsLevel::Full).created_alarms().expect("alarms");
    for level_alarms in [&alarms, &full] {
        let heartbeats: Vec<_> = level_alarms.iter().filter(|a| a.alarm_name == "stack-HeartbeatMissing").collect();
        assert_eq!(heartbeats.len(), 1, "{heartbeats:?}");
        assert_eq!(heartbeats[0].treat_missing_data.as_deref(), Some("breaching"));
    }
    assert!(full.len() > alarms.len());
}

#[test]
fn an_alarm_on_a_series_its_level_does_not_publish_fails_the_check() {
    let template = read("template.yaml");
    // APIErrors is full-only; its alarm without the condition would exist at essential too.
    let marker = "  ApiErrorsAlarm:\n    Type: AWS::CloudWatch::Alarm\n    Condition: IsFull\n";
    let mutated = template.replacen(marker, "  ApiErrorsAlarm:\n    Type: AWS::CloudWatch::Alarm\n", 1);
    assert_ne!(mutated, template, "ApiErrorsAlarm is full-only in the template");
    let problems = check_template_metrics(&mutated);
    assert!(
        problems.iter().any(|p| p.contains("essential") && p.contains("ApiErrorsAlarm") && p.contains("not published")),
        "{problems:?}"
    );
    assert!(check_template_metrics(&template).is_empty());
}

#[test]
fn query_definitions_name_log_groups_of_the_stack() {
    let t = Template::load(&root().join("template.yaml")).expect("template");
    let queries = tests::template::query_definitions(&t).expect("queries");
    assert!(queries.len() >= 4, "seed 003's four queries at least: {queries:?}");
    for (id, groups) in queries {
        for g in groups {
            let logical = g.trim_start_matches('<').trim_end_matches('>');
            assert!(
                t.resources_of_type("AWS::Logs::LogGroup").iter().any(|(l, _)| l == logical),
                "query {id} names {g}, not a log group of the stack"
            );
        }
    }
}

// ---- the checks fail when a name drifts on either side

#[test]
fn a_renamed_alarm_metric_fails_the_check() {
    let template = read("template.yaml");
    let mutated = template.replacen("MetricName: APIErrors", "MetricName: APIErrorz", 1);
    assert_ne!(mutated, template);
    let problems = check_template_metrics(&mutated);
    assert!(problems.iter().any(|p| p.contains("APIErrorz") && p.contains("ApiErrorsAlarm")), "{problems:?}");
}

#[test]
fn an_alarm_on_a_dimension_set_nobody_emits_fails_the_check() {
    let template = read("template.yaml");
    let mutated = template.replacen("- Name: Component", "- Name: Subsystem", 1);
    assert_ne!(mutated, template);
    let problems = check_template_metrics(&mutated);
    assert!(problems.iter().any(|p| p.contains("CircuitBreakerTrips") && p.contains("Subsystem")), "{problems:?}");
}

#[test]
fn a_renamed_dashboard_metric_fails_the_check() {
    let template = read("template.yaml");
    for (from, to, renamed) in [
        ("\"LoggingLatency\"", "\"LoggingLatencyMs\"", "LoggingLatencyMs"),
        ("MetricName=\\\"UnpricedTokens\\\"", "MetricName=\\\"UnpricedTokenz\\\"", "UnpricedTokenz"),
    ] {
        let mutated = template.replacen(from, to, 1);
        assert_ne!(mutated, template, "{from} is in the template");
        let problems = check_template_metrics(&mutated);
        assert!(problems.iter().any(|p| p.contains(renamed) && p.contains("dashboard")), "{to}: {problems:?}");
    }
}

#[test]
fn a_metric_renamed_in_the_code_fails_the_scan() {
    let sources = read_sources(&root()).expect("sources");
    let rename = |from: &str, to: &str| -> Sources {
        let mut changed = false;
        let out = sources
            .iter()
            .map(|(e, p, text)| {
                let t = if !changed && text.contains(from) {
                    changed = true;
                    text.replacen(from, to, 1)
                } else {
                    text.clone()
                };
                (e.clone(), p.clone(), t)
            })
            .collect();
        assert!(changed, "{from} is in the code");
        out
    };
    assert!(scan_problems(&sources).is_empty(), "the unmutated code passes");
    // A new name the registry does not know.
    let problems = scan_problems(&rename("count_with_total(\"APIErrors\"", "count_with_total(\"ApiErrors\""));
    assert!(problems.iter().any(|p| p.contains("ApiErrors") && p.contains("does not register")), "{problems:?}");
    // A dimension dropped from an emission: the alarm's dimension set would never be emitted.
    let problems = scan_problems(&rename(".record(&[(\"AgentId\", agent)])", ".record(&[])"));
    assert!(problems.iter().any(|p| p.contains("APILatency")), "{problems:?}");
    // A metric the registry lists disappears from the code.
    let problems = scan_problems(&rename("\"SignatureFailures\"", "\"SignatureFailure\""));
    assert!(
        problems.iter().any(|p| p.contains("registers SignatureFailures") && p.contains("no code there emits it")),
        "{problems:?}"
    );
}

#[test]
fn an_undocumented_metric_or_a_missing_runbook_fails_the_check() {
    let template = read("template.yaml");
    let runbooks = read("RUNBOOKS.md");
    let undocumented = runbooks.replace("| `Heartbeat` |", "| `Heartbeet` |");
    assert_ne!(undocumented, runbooks);
    assert!(check_runbooks(&template, &undocumented).iter().any(|p| p.contains("Heartbeat")));
    let no_runbook = runbooks.replace("### SchemaDrift", "### Schema drift of payloads");
    assert_ne!(no_runbook, runbooks);
    assert!(check_runbooks(&template, &no_runbook).iter().any(|p| p.contains("SchemaDriftAlarm")));
}

/// The per-agent alarms watch the agent id the worker records, on every backend: AgentId for
/// Classic, else the resource name in the harness's or runtime's ARN (what the worker's AGENT_ID
/// defaults to), or the created harness's id.
#[test]
fn the_per_agent_alarms_watch_the_agent_the_worker_records_on_every_backend() {
    use shared::aws::agentcore::arn_resource_id;
    let harness = "arn:aws:bedrock-agentcore:us-east-1:111122223333:harness/support-a1b2c3d4e5";
    let runtime = "arn:aws:bedrock-agentcore:us-east-1:111122223333:runtime/support_agent-a1b2c3d4e5";
    let base = Template::parse(&read("template.yaml")).expect("template").with_parameter("MonitoringLevel", "full");
    let cases = [
        (base.clone().with_parameter("AgentId", "AGENT12345"), "AGENT12345".to_string()),
        (
            base.clone().with_parameter("AgentBackend", "harness").with_parameter("HarnessArn", harness),
            arn_resource_id(harness).expect("harness id").to_string(),
        ),
        (
            base.clone().with_parameter("AgentBackend", "runtime").with_parameter("AgentRuntimeArn", runtime),
            arn_resource_id(runtime).expect("runtime id").to_string(),
        ),
        (
            base.clone().with_parameter("AgentBackend", "harness").with_parameter("CreateHarness", "true"),
            "<AgentCoreHarness.HarnessId>".to_string(),
        ),
    ];
    for (t, want) in cases {
        let alarms = t.created_alarms().expect("alarms");
        let per_agent: Vec<_> = alarms.iter().filter(|a| a.dimensions.iter().any(|(k, _)| k == "AgentId")).collect();
        assert!(per_agent.len() >= 2, "the latency alarms are per agent: {per_agent:?}");
        for a in per_agent {
            assert_eq!(a.dimensions, vec![("AgentId".to_string(), want.clone())], "{}", a.alarm_name);
        }
    }
}
