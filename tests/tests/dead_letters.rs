//! template.yaml's dead-letter paths of asynchronous invocations: every EventBridge rule that
//! names a dead-letter queue is allowed by that queue's policy to send to it (EventBridge drops
//! the event otherwise, silently), and every function invoked asynchronously that AWS retries
//! has an on-failure destination (otherwise an event that fails every attempt is lost).

use serde_yaml::Value;
use tests::moto::workspace_root;
use tests::template::Template;

fn template() -> Template {
    Template::load(&workspace_root().join("template.yaml")).expect("template.yaml")
}

/// The values of a scalar-or-list policy field, resolved.
fn resolved_list(t: &Template, v: &Value) -> Vec<String> {
    match v.as_sequence() {
        Some(items) => items.iter().filter_map(|i| t.resolve(i).ok()).collect(),
        None => t.resolve(v).ok().into_iter().collect(),
    }
}

/// (queue `<Id.Arn>`, rule ARNs allowed to send to it) from every AWS::SQS::QueuePolicy.
fn allowed_senders(t: &Template) -> Vec<(String, Vec<String>)> {
    let mut out = Vec::new();
    for (_, policy) in t.resources_of_type("AWS::SQS::QueuePolicy") {
        let props = &policy["Properties"];
        let statements = props["PolicyDocument"]["Statement"].as_sequence().cloned().unwrap_or_default();
        for s in statements {
            if s["Effect"].as_str() != Some("Allow")
                || s["Principal"]["Service"].as_str() != Some("events.amazonaws.com")
            {
                continue;
            }
            let Ok(queue) = t.resolve(&s["Resource"]) else { continue };
            let condition = &s["Condition"];
            let source = ["ArnEquals", "ArnLike", "StringEquals"]
                .iter()
                .find_map(|op| condition.get(*op).and_then(|c| c.get("aws:SourceArn")));
            let sources = source.map(|v| resolved_list(t, v)).unwrap_or_default();
            out.push((queue, sources));
        }
    }
    out
}

#[test]
fn every_rule_with_a_dead_letter_queue_may_send_to_it() {
    let t = template();
    let allowed = allowed_senders(&t);
    let mut checked = 0;
    let mut refused = Vec::new();
    for (function, f) in t.resources_of_type("AWS::Serverless::Function") {
        let Some(events) = f["Properties"].get("Events").and_then(Value::as_mapping) else { continue };
        for (name, event) in events {
            let Some(dlq) = event["Properties"].get("DeadLetterConfig").and_then(|d| d.get("Arn")) else { continue };
            let queue = t.resolve(dlq).expect("dead-letter ARN");
            // SAM names an event's rule <function><event>.
            let rule = format!("<{function}{}.Arn>", name.as_str().unwrap_or_default());
            checked += 1;
            let ok = allowed.iter().any(|(q, sources)| *q == queue && sources.contains(&rule));
            if !ok {
                refused.push(format!("{rule} -> {queue}"));
            }
        }
    }
    assert!(checked >= 2, "the cost-analyzer's two scheduled rules have dead-letter queues");
    assert!(refused.is_empty(), "queue policies refuse these rules' dead letters: {refused:?}");
}

#[test]
fn every_retried_asynchronous_function_has_an_on_failure_destination() {
    let t = template();
    let mut missing = Vec::new();
    for (function, f) in t.resources_of_type("AWS::Serverless::Function") {
        let props = &f["Properties"];
        let asynchronous = props
            .get("Events")
            .and_then(Value::as_mapping)
            .is_some_and(|e| e.values().any(|ev| matches!(ev["Type"].as_str(), Some("Schedule" | "ScheduleV2"))));
        if !asynchronous {
            continue;
        }
        let config = props.get("EventInvokeConfig");
        // Lambda retries an asynchronous invocation twice unless told otherwise.
        let retries = config.and_then(|c| c.get("MaximumRetryAttempts")).and_then(Value::as_u64).unwrap_or(2);
        if retries == 0 {
            continue; // documented in the template: the next scheduled run replaces a failed one
        }
        let on_failure = config.and_then(|c| c.get("DestinationConfig")).and_then(|d| d.get("OnFailure"));
        let destination = on_failure.and_then(|o| o.get("Destination")).and_then(|d| t.resolve(d).ok());
        match (on_failure.and_then(|o| o["Type"].as_str()), destination) {
            (Some("SQS" | "SNS" | "Lambda" | "EventBridge"), Some(_)) => {}
            _ => missing.push(function),
        }
    }
    assert!(missing.is_empty(), "asynchronous failures of these functions have no destination: {missing:?}");
    let cost =
        t.resources_of_type("AWS::Serverless::Function").into_iter().find(|(id, _)| id == "CostAnalyzerFunction");
    let (_, cost) = cost.expect("CostAnalyzerFunction");
    let destination = &cost["Properties"]["EventInvokeConfig"]["DestinationConfig"]["OnFailure"]["Destination"];
    assert_eq!(t.resolve(destination).ok().as_deref(), Some("<CostAnalyzerScheduleDeadLetterQueue.Arn>"));
}
