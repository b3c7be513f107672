//! CloudWatch PutMetricData adapter, batching datums within the API's limits.

use async_trait::async_trait;
use aws_sdk_cloudwatch::primitives::DateTime;
use aws_sdk_cloudwatch::types::{Dimension, MetricDatum as CwDatum, StandardUnit};
use shared::metric_names::MetricsLevel;
use shared::{Error, Result};

/// At most this many datums per PutMetricData call (the API allows 1000 and 1 MB; our datums
/// are a few hundred bytes each, so the count is the binding limit).
pub const MAX_DATUMS_PER_CALL: usize = 1000;

/// Units the publisher uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricUnit {
    Count,
    Seconds,
    Percent,
}

/// One computed metric value.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricDatum {
    pub name: &'static str,
    pub value: f64,
    pub unit: MetricUnit,
    /// Never a user id: every distinct dimension value is a billed metric.
    pub dimensions: Vec<(&'static str, &'static str)>,
}

impl MetricDatum {
    /// A datum without dimensions.
    pub fn new(name: &'static str, value: f64, unit: MetricUnit) -> Self {
        MetricDatum { name, value, unit, dimensions: Vec::new() }
    }
}

/// Where computed metrics go.
#[async_trait]
pub trait MetricSink: Send + Sync {
    /// Publishes `datums`, all stamped with `timestamp_ms`.
    async fn put(&self, datums: &[MetricDatum], timestamp_ms: i64) -> Result<()>;
}

/// PutMetricData into one namespace.
#[derive(Debug, Clone)]
pub struct CloudWatchMetrics {
    client: aws_sdk_cloudwatch::Client,
    namespace: String,
    level: MetricsLevel,
}

impl CloudWatchMetrics {
    /// Publishes every datum (the full level).
    pub fn new(client: aws_sdk_cloudwatch::Client, namespace: impl Into<String>) -> Self {
        CloudWatchMetrics { client, namespace: namespace.into(), level: MetricsLevel::Full }
    }

    /// Publishes only the series registered for `level` (METRICS_LEVEL); the rest are computed
    /// (and logged) but never sent, so they are never billed.
    pub fn at_level(mut self, level: MetricsLevel) -> Self {
        self.level = level;
        self
    }
}

fn unit(u: MetricUnit) -> StandardUnit {
    match u {
        MetricUnit::Count => StandardUnit::Count,
        MetricUnit::Seconds => StandardUnit::Seconds,
        MetricUnit::Percent => StandardUnit::Percent,
    }
}

fn to_cloudwatch(d: &MetricDatum, timestamp_ms: i64) -> Result<CwDatum> {
    if !d.value.is_finite() {
        return Err(Error::Malformed {
            what: "metric datum",
            reason: format!("{} is not finite: {}", d.name, d.value),
        });
    }
    let mut b = CwDatum::builder()
        .metric_name(d.name)
        .value(d.value)
        .unit(unit(d.unit))
        .timestamp(DateTime::from_millis(timestamp_ms));
    for (k, v) in &d.dimensions {
        b = b.dimensions(Dimension::builder().name(*k).value(*v).build());
    }
    Ok(b.build())
}

#[async_trait]
impl MetricSink for CloudWatchMetrics {
    async fn put(&self, datums: &[MetricDatum], timestamp_ms: i64) -> Result<()> {
        let all: Vec<CwDatum> = datums
            .iter()
            .filter(|d| {
                let keys: Vec<&str> = d.dimensions.iter().map(|(k, _)| *k).collect();
                self.level.publishes(d.name, &keys)
            })
            .map(|d| to_cloudwatch(d, timestamp_ms))
            .collect::<Result<_>>()?;
        for chunk in all.chunks(MAX_DATUMS_PER_CALL) {
            self.client
                .put_metric_data()
                .namespace(&self.namespace)
                .set_metric_data(Some(chunk.to_vec()))
                .send()
                .await
                .map_err(|e| Error::from_sdk("cloudwatch", "PutMetricData", e))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use aws_sdk_cloudwatch::operation::put_metric_data::{PutMetricDataError, PutMetricDataOutput};
    use aws_sdk_cloudwatch::types::error::InvalidParameterValueException;
    use aws_sdk_cloudwatch::Client;
    use aws_smithy_mocks::{mock, mock_client, RuleMode};

    use super::*;

    type Sent = Arc<Mutex<Vec<(String, Vec<CwDatum>)>>>;

    fn recording_rule(sent: Sent) -> aws_smithy_mocks::Rule {
        mock!(Client::put_metric_data)
            .match_requests(move |req| {
                sent.lock()
                    .unwrap()
                    .push((req.namespace().unwrap_or_default().to_string(), req.metric_data().to_vec()));
                true
            })
            .then_output(|| PutMetricDataOutput::builder().build())
    }

    #[tokio::test]
    async fn sends_the_exact_datums_with_units_dimensions_and_timestamp() {
        let sent: Sent = Arc::default();
        let rule = recording_rule(sent.clone());
        let client = mock_client!(aws_sdk_cloudwatch, RuleMode::MatchAny, [&rule]);
        let sink = CloudWatchMetrics::new(client, "BedrockUsage");
        let datums = vec![
            MetricDatum::new("Heartbeat", 1.0, MetricUnit::Count),
            MetricDatum::new("OldestUnansweredSeconds", 95.5, MetricUnit::Seconds),
            MetricDatum {
                name: "ActionSuccessRate",
                value: 87.5,
                unit: MetricUnit::Percent,
                dimensions: vec![("Action", "ReplyPosted")],
            },
        ];
        sink.put(&datums, 1_763_913_600_000).await.expect("put");
        assert_eq!(rule.num_calls(), 1);
        let sent = sent.lock().unwrap();
        let (ns, data) = &sent[0];
        assert_eq!(ns, "BedrockUsage");
        let expected: Vec<CwDatum> = vec![
            CwDatum::builder()
                .metric_name("Heartbeat")
                .value(1.0)
                .unit(StandardUnit::Count)
                .timestamp(DateTime::from_millis(1_763_913_600_000))
                .build(),
            CwDatum::builder()
                .metric_name("OldestUnansweredSeconds")
                .value(95.5)
                .unit(StandardUnit::Seconds)
                .timestamp(DateTime::from_millis(1_763_913_600_000))
                .build(),
            CwDatum::builder()
                .metric_name("ActionSuccessRate")
                .value(87.5)
                .unit(StandardUnit::Percent)
                .timestamp(DateTime::from_millis(1_763_913_600_000))
                .dimensions(Dimension::builder().name("Action").value("ReplyPosted").build())
                .build(),
        ];
        assert_eq!(data, &expected);
    }

    #[tokio::test]
    async fn essential_sends_only_the_essential_series() {
        let sent: Sent = Arc::default();
        let rule = recording_rule(sent.clone());
        let client = mock_client!(aws_sdk_cloudwatch, RuleMode::MatchAny, [&rule]);
        let sink = CloudWatchMetrics::new(client, "BedrockUsage").at_level(MetricsLevel::Essential);
        let datums = vec![
            MetricDatum::new("Heartbeat", 1.0, MetricUnit::Count),
            MetricDatum::new("UnansweredConversations", 2.0, MetricUnit::Count),
            MetricDatum::new("SatisfactionScore", 50.0, MetricUnit::Percent),
            MetricDatum {
                name: "ActionSuccessRate",
                value: 87.5,
                unit: MetricUnit::Percent,
                dimensions: vec![("Action", "ReplyPosted")],
            },
        ];
        sink.put(&datums, 0).await.expect("put");
        let names: Vec<String> = sent
            .lock()
            .unwrap()
            .iter()
            .flat_map(|(_, d)| d.iter().filter_map(|d| d.metric_name().map(str::to_string)))
            .collect();
        assert_eq!(names, ["UnansweredConversations"]);
        // Nothing essential in a batch: no request at all.
        sink.put(&[MetricDatum::new("FeedbackCount", 1.0, MetricUnit::Count)], 0).await.expect("put");
        assert_eq!(rule.num_calls(), 1);
    }

    #[tokio::test]
    async fn batches_at_the_api_limit() {
        let sent: Sent = Arc::default();
        let rule = recording_rule(sent.clone());
        let client = mock_client!(aws_sdk_cloudwatch, RuleMode::MatchAny, [&rule]);
        let sink = CloudWatchMetrics::new(client, "Custom/NS");
        let datums: Vec<MetricDatum> = (0..MAX_DATUMS_PER_CALL + 1)
            .map(|i| MetricDatum::new("FeedbackCount", i as f64, MetricUnit::Count))
            .collect();
        sink.put(&datums, 0).await.expect("put");
        assert_eq!(rule.num_calls(), 2);
        let sent = sent.lock().unwrap();
        let sizes: Vec<usize> = sent.iter().map(|(_, d)| d.len()).collect();
        assert_eq!(sizes, vec![MAX_DATUMS_PER_CALL, 1]);
        assert!(sent.iter().all(|(ns, _)| ns == "Custom/NS"));
        assert_eq!(sent[1].1[0].value(), Some(MAX_DATUMS_PER_CALL as f64));
    }

    #[tokio::test]
    async fn rejects_non_finite_values_before_any_call_and_reports_api_errors() {
        let sent: Sent = Arc::default();
        let rule = recording_rule(sent.clone());
        let client = mock_client!(aws_sdk_cloudwatch, RuleMode::MatchAny, [&rule]);
        let sink = CloudWatchMetrics::new(client, "BedrockUsage");
        let e = sink.put(&[MetricDatum::new("SatisfactionScore", f64::NAN, MetricUnit::Percent)], 0).await.unwrap_err();
        assert!(e.to_string().contains("SatisfactionScore"), "{e}");
        assert_eq!(rule.num_calls(), 0);

        let failing = mock!(Client::put_metric_data).then_error(|| {
            PutMetricDataError::InvalidParameterValueException(
                InvalidParameterValueException::builder().message("bad value").build(),
            )
        });
        let client = mock_client!(aws_sdk_cloudwatch, RuleMode::MatchAny, [&failing]);
        let e = CloudWatchMetrics::new(client, "BedrockUsage")
            .put(&[MetricDatum::new("Heartbeat", 1.0, MetricUnit::Count)], 0)
            .await
            .unwrap_err();
        assert!(e.to_string().contains("PutMetricData"), "{e}");
    }
}
