//! The metrics registry: every metric the functions emit (namespace `METRICS_NAMESPACE`, default
//! BedrockUsage), with the exact dimension sets each emitter uses. A CloudWatch alarm matches one
//! dimension set exactly, so the template's alarms and dashboards are checked against this list,
//! RUNBOOKS.md documents it, and a source scan checks it against the emitting code
//! (tests/tests/template_metrics.rs): none of the three can drift from the others.

/// How a metric reaches CloudWatch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    /// Embedded Metric Format log lines (`telemetry::Metrics`), no API call.
    Emf,
    /// The CloudWatch PutMetricData API (the scheduled metrics-publisher).
    PutMetricData,
}

/// One way a metric is emitted: by which function crate (`functions/<emitter>`), with which
/// dimension keys (`&[]` = none).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Emission {
    pub emitter: &'static str,
    pub dimensions: &'static [&'static str],
}

/// A registered metric.
#[derive(Debug, Clone, Copy)]
pub struct MetricSpec {
    pub name: &'static str,
    pub unit: &'static str,
    pub via: Via,
    pub emissions: &'static [Emission],
    pub meaning: &'static str,
}

impl MetricSpec {
    /// True when some emitter emits the metric with exactly these dimension keys (any order).
    pub fn has_dimension_set(&self, keys: &[&str]) -> bool {
        self.emissions.iter().any(|e| same_keys(e.dimensions, keys))
    }
}

/// Two dimension key lists name the same set.
pub fn same_keys(a: &[&str], b: &[&str]) -> bool {
    let mut a: Vec<&str> = a.to_vec();
    let mut b: Vec<&str> = b.to_vec();
    a.sort_unstable();
    b.sort_unstable();
    a == b
}

const fn e(emitter: &'static str, dimensions: &'static [&'static str]) -> Emission {
    Emission { emitter, dimensions }
}

const GW: &str = "slack-gateway";
const TL: &str = "token-logging";
const AG: &str = "action-group";
const MP: &str = "metrics-publisher";

/// Every metric the functions emit. Emitters that call `with_total()` / `count_with_total` list
/// the dimensionless set as well.
pub const METRICS: &[MetricSpec] = &[
    // ---- slack-gateway: ingress and worker (EMF)
    MetricSpec {
        name: "SignatureFailures",
        unit: "Count",
        via: Via::Emf,
        emissions: &[e(GW, &[])],
        meaning: "Slack requests rejected by the signature check (stale timestamp, bad or missing signature)",
    },
    MetricSpec {
        name: "SchemaDrift",
        unit: "Count",
        via: Via::Emf,
        emissions: &[e(GW, &["EventType"]), e(GW, &[]), e(TL, &["EventType"]), e(TL, &[])],
        meaning: "payloads of an unexpected shape (Slack events, work items, usage records) that were dropped or parsed partly",
    },
    MetricSpec {
        name: "DuplicateEvents",
        unit: "Count",
        via: Via::Emf,
        emissions: &[e(GW, &[]), e(TL, &["Source"])],
        meaning: "Slack retries and redelivered work items or usage records recognised and skipped",
    },
    MetricSpec {
        name: "APIErrors",
        unit: "Count",
        via: Via::Emf,
        emissions: &[e(GW, &["ErrorCode"]), e(GW, &[])],
        meaning: "failed calls to Bedrock, Slack, SQS or DynamoDB on the conversation path, by error code",
    },
    MetricSpec {
        name: "APILatency",
        unit: "Milliseconds",
        via: Via::Emf,
        emissions: &[e(GW, &["AgentId"])],
        meaning: "duration of one agent turn (InvokeAgent to the end of the event stream)",
    },
    MetricSpec {
        name: "LoggingErrors",
        unit: "Count",
        via: Via::Emf,
        emissions: &[e(GW, &["Sink"]), e(GW, &[]), e(TL, &["Sink"]), e(TL, &[])],
        meaning: "analytics, usage or conversation records that could not be written (by sink)",
    },
    // ---- token-logging (EMF)
    MetricSpec {
        name: "InputTokens",
        unit: "Count",
        via: Via::Emf,
        emissions: &[e(TL, &["AgentId", "ModelId"]), e(TL, &[])],
        meaning: "input tokens of logged turns",
    },
    MetricSpec {
        name: "OutputTokens",
        unit: "Count",
        via: Via::Emf,
        emissions: &[e(TL, &["AgentId", "ModelId"]), e(TL, &[])],
        meaning: "output tokens of logged turns",
    },
    MetricSpec {
        name: "TotalTokens",
        unit: "Count",
        via: Via::Emf,
        emissions: &[e(TL, &["AgentId", "ModelId"]), e(TL, &[])],
        meaning: "input + output tokens of logged turns",
    },
    MetricSpec {
        name: "EstimatedCost",
        unit: "None (USD)",
        via: Via::Emf,
        emissions: &[e(TL, &["AgentId", "ModelId"]), e(TL, &[])],
        meaning: "estimated USD cost of priced tokens (unpriced models add nothing here)",
    },
    MetricSpec {
        name: "UnpricedTokens",
        unit: "Count",
        via: Via::Emf,
        emissions: &[e(TL, &["ModelId"]), e(TL, &[])],
        meaning: "tokens of models missing from the price table",
    },
    MetricSpec {
        name: "LoggingLatency",
        unit: "Milliseconds",
        via: Via::Emf,
        emissions: &[e(TL, &[])],
        meaning: "from the end of a turn to its usage being in the ledger",
    },
    MetricSpec {
        name: "CircuitBreakerTrips",
        unit: "Count",
        via: Via::Emf,
        emissions: &[e(TL, &["Component"])],
        meaning: "times token-logging stopped writing to a failing component for a while",
    },
    MetricSpec {
        name: "DynamoDBThrottles",
        unit: "Count",
        via: Via::Emf,
        emissions: &[e(TL, &["TableName"])],
        meaning: "throttled DynamoDB writes (retried)",
    },
    MetricSpec {
        name: "BatchProcessingTime",
        unit: "Milliseconds",
        via: Via::Emf,
        emissions: &[e(TL, &[])],
        meaning: "time to process one batch of usage records",
    },
    // ---- action-group (EMF)
    MetricSpec {
        name: "ActionLatency",
        unit: "Milliseconds",
        via: Via::Emf,
        emissions: &[e(AG, &["Action"])],
        meaning: "duration of one action-group call (Jira search, ticket lookup, my-usage)",
    },
    MetricSpec {
        name: "ActionErrors",
        unit: "Count",
        via: Via::Emf,
        emissions: &[e(AG, &["Action", "ErrorCode"])],
        meaning: "action-group calls that returned an error to the agent",
    },
    // ---- metrics-publisher (PutMetricData, every 5 minutes)
    MetricSpec {
        name: "Heartbeat",
        unit: "Count",
        via: Via::PutMetricData,
        emissions: &[e(MP, &[])],
        meaning: "1 per metrics-publisher run: its absence means the scheduled checks stopped",
    },
    MetricSpec {
        name: "UnansweredConversations",
        unit: "Count",
        via: Via::PutMetricData,
        emissions: &[e(MP, &[])],
        meaning: "turns received but neither answered nor failed within the SLA",
    },
    MetricSpec {
        name: "OldestUnansweredSeconds",
        unit: "Seconds",
        via: Via::PutMetricData,
        emissions: &[e(MP, &[])],
        meaning: "age of the oldest unanswered turn",
    },
    MetricSpec {
        name: "SatisfactionScore",
        unit: "Percent",
        via: Via::PutMetricData,
        emissions: &[e(MP, &[])],
        meaning: "thumbs up / all thumbs on bot answers over the last hour",
    },
    MetricSpec {
        name: "FeedbackCount",
        unit: "Count",
        via: Via::PutMetricData,
        emissions: &[e(MP, &[])],
        meaning: "feedback reactions counted into SatisfactionScore",
    },
    MetricSpec {
        name: "KnowledgeBaseGapRate",
        unit: "Percent",
        via: Via::PutMetricData,
        emissions: &[e(MP, &[])],
        meaning: "turns that consulted no knowledge base / all turns",
    },
    MetricSpec {
        name: "ActionSuccessRate",
        unit: "Percent",
        via: Via::PutMetricData,
        emissions: &[e(MP, &["Action"])],
        meaning: "per bot action (AgentInvoke, ReplyPosted, AnalyticsPublished, UsagePublished): successes / attempts",
    },
];

/// The registered metric of that name.
pub fn find(name: &str) -> Option<&'static MetricSpec> {
    METRICS.iter().find(|m| m.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_every_metric_has_an_emitter() {
        let mut names: Vec<&str> = METRICS.iter().map(|m| m.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), METRICS.len(), "a metric is registered twice");
        assert!(METRICS.iter().all(|m| !m.emissions.is_empty()));
    }

    #[test]
    fn dimension_sets_match_in_any_order_and_only_exactly() {
        let cost = find("EstimatedCost").expect("registered");
        assert!(cost.has_dimension_set(&["ModelId", "AgentId"]));
        assert!(cost.has_dimension_set(&[]));
        assert!(!cost.has_dimension_set(&["AgentId"]), "a subset of a dimension set is another metric");
        assert!(find("APIErrorz").is_none());
    }
}
