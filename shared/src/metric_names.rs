//! The metrics registry: every metric the functions emit (namespace `METRICS_NAMESPACE`, default
//! BedrockUsage), with the exact dimension sets each emitter uses. A CloudWatch alarm matches one
//! dimension set exactly, so the template's alarms and dashboards are checked against this list,
//! RUNBOOKS.md documents it, and a source scan checks it against the emitting code
//! (tests/tests/template_metrics.rs): none of the three can drift from the others.
//!
//! Each emission also says at which monitoring level it is published (`METRICS_LEVEL`, set from
//! the template's `MonitoringLevel`): `essential` publishes only the series its alarms evaluate
//! plus the dimensionless token and cost totals (every series is billed), `full` publishes all.

/// How a metric reaches CloudWatch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    /// Embedded Metric Format log lines (`telemetry::Metrics`), no API call.
    Emf,
    /// The CloudWatch PutMetricData API (the scheduled metrics-publisher).
    PutMetricData,
}

/// How much the functions publish: a CloudWatch custom metric is billed per series per month.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub enum MetricsLevel {
    /// Only the series the essential alarms evaluate, and the dimensionless token/cost totals.
    Essential,
    /// Every registered series (dashboards, per-model and per-agent breakdowns, KPIs).
    #[default]
    Full,
}

impl MetricsLevel {
    /// Both levels, cheapest first.
    pub const ALL: [MetricsLevel; 2] = [MetricsLevel::Essential, MetricsLevel::Full];

    /// The value `METRICS_LEVEL` and the template's `MonitoringLevel` use.
    pub fn as_str(self) -> &'static str {
        match self {
            MetricsLevel::Essential => "essential",
            MetricsLevel::Full => "full",
        }
    }

    /// True when the series `name` with exactly these dimension keys is published at this level
    /// (an unregistered series only at `Full`: the registry check reports it anyway).
    pub fn publishes(self, name: &str, dimensions: &[&str]) -> bool {
        match self {
            MetricsLevel::Full => true,
            MetricsLevel::Essential => find(name).is_some_and(|m| {
                m.emissions.iter().any(|e| e.level == MetricsLevel::Essential && same_keys(e.dimensions, dimensions))
            }),
        }
    }
}

impl std::str::FromStr for MetricsLevel {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        MetricsLevel::ALL
            .into_iter()
            .find(|l| l.as_str() == s)
            .ok_or_else(|| format!("{s:?} is neither \"essential\" nor \"full\""))
    }
}

/// One way a metric is emitted: by which function crate (`functions/<emitter>`), with which
/// dimension keys (`&[]` = none), from which monitoring level on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Emission {
    pub emitter: &'static str,
    pub dimensions: &'static [&'static str],
    /// `Essential`: published at both levels; `Full`: only at full.
    pub level: MetricsLevel,
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

    /// The emissions published at `level`.
    pub fn emissions_at(&self, level: MetricsLevel) -> impl Iterator<Item = &'static Emission> {
        self.emissions.iter().filter(move |e| e.level <= level)
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

/// An emission published only at the full level (the default for a new series: each costs
/// $0.30 a month, so a series joins `essential` only when an essential alarm needs it).
const fn e(emitter: &'static str, dimensions: &'static [&'static str]) -> Emission {
    Emission { emitter, dimensions, level: MetricsLevel::Full }
}

/// An emission published at both levels (tests/tests/costs.rs keeps essential under its budget).
const fn essential(emitter: &'static str, dimensions: &'static [&'static str]) -> Emission {
    Emission { emitter, dimensions, level: MetricsLevel::Essential }
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
        emissions: &[
            e(GW, &["EventType"]),
            e(GW, &[]),
            e(TL, &["EventType"]),
            e(TL, &[]),
            // The sweeper: pending_analytics / pending_usage copies that no longer parse (cleared).
            e(MP, &["EventType"]),
            e(MP, &[]),
            // Action-group invocations of no known shape: a malformed Classic event, or a gateway
            // tool call with an unknown tool or malformed arguments.
            e(AG, &["EventType"]),
            e(AG, &[]),
        ],
        meaning: "payloads of an unexpected shape (Slack events, work items, usage records, pending copies kept on a turn, action-group invocations) that were dropped or parsed partly",
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
        emissions: &[e(TL, &["AgentId", "ModelId"]), essential(TL, &[])],
        meaning: "input + output tokens of logged turns",
    },
    MetricSpec {
        name: "EstimatedCost",
        unit: "None (USD)",
        via: Via::Emf,
        emissions: &[e(TL, &["AgentId", "ModelId"]), essential(TL, &[])],
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
        name: "UnreportedUsage",
        unit: "Count",
        via: Via::Emf,
        emissions: &[e(TL, &["AgentId"]), e(TL, &[])],
        meaning: "turns whose agent worked but reported no token usage (an AgentCore Runtime agent's stream without usage events): their cost is unknown",
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
        emissions: &[essential(MP, &[])],
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
    MetricSpec {
        name: "LoggingQueueDepth",
        unit: "Count",
        via: Via::PutMetricData,
        // Full only: no alarm evaluates it (the usage queue's alarms use the free AWS/SQS metrics).
        emissions: &[e(MP, &[])],
        meaning: "usage records on the usage queue not yet logged: waiting + in flight (ApproximateNumberOfMessages + \
                  ApproximateNumberOfMessagesNotVisible), read every 5 minutes; token-logging's poller takes waiting \
                  records at once, so a failing or slow token-logging shows as records in flight, not waiting",
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

    #[test]
    fn essential_publishes_only_the_series_marked_essential() {
        use MetricsLevel::{Essential, Full};
        assert!(Essential.publishes("EstimatedCost", &[]));
        assert!(!Essential.publishes("EstimatedCost", &["AgentId", "ModelId"]), "no per-model series at essential");
        assert!(!Essential.publishes("APIErrors", &[]));
        assert!(!Essential.publishes("NotRegistered", &[]));
        assert!(!Essential.publishes("LoggingQueueDepth", &[]) && Full.publishes("LoggingQueueDepth", &[]));
        assert!(!Essential.publishes("SchemaDrift", &[]), "drift is alarmed at full only");
        assert!(Full.publishes("EstimatedCost", &["ModelId", "AgentId"]) && Full.publishes("NotRegistered", &[]));
        assert_eq!("essential".parse::<MetricsLevel>(), Ok(Essential));
        assert_eq!(Full.as_str().parse::<MetricsLevel>(), Ok(Full));
        assert!("Full".parse::<MetricsLevel>().is_err());
        assert_eq!(MetricsLevel::default(), Full, "code that sets no level keeps publishing everything");
    }

    #[test]
    fn a_series_emitted_by_two_functions_has_one_level() {
        // The filter looks at name and dimensions only: both emitters must agree.
        for m in METRICS {
            for a in m.emissions {
                for b in m.emissions.iter().filter(|b| same_keys(a.dimensions, b.dimensions)) {
                    assert_eq!(a.level, b.level, "{} {:?}", m.name, a.dimensions);
                }
            }
        }
    }
}
