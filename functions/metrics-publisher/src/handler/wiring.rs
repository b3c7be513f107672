//! metrics-publisher over the real adapters, built from its config and an SDK config: the one
//! constructor its main and the end-to-end tests (the SDK pointed at moto) use.

use std::sync::Arc;

use aws_config::SdkConfig;
use shared::aws::conversations::DynamoDbConversations;
use shared::aws::firehose::FirehoseAnalytics;
use shared::aws::sqs::SqsUsageSink;
use shared::telemetry::Metrics;

use super::{Config, MetricsPublisher};
use crate::cloudwatch::CloudWatchMetrics;
use crate::sweep::{Sweeper, MAX_TURNS_PER_RUN, SWEEP_TIME_BUDGET};
use crate::usage_queue::{QueueDepth, SqsQueueDepth};

impl MetricsPublisher {
    /// The publisher: the conversations table, CloudWatch at `metrics`' level (the emitter's
    /// level is the one PutMetricData must honour too), the sweeper and the queue depth when
    /// their targets are configured.
    pub fn from_config(config: &Config, sdk: &SdkConfig, metrics: Metrics) -> MetricsPublisher {
        let conversations =
            || DynamoDbConversations::new(aws_sdk_dynamodb::Client::new(sdk), &config.conversations_table);
        let level = metrics.level();
        MetricsPublisher {
            conversations: Arc::new(conversations()),
            sink: Arc::new(
                CloudWatchMetrics::new(aws_sdk_cloudwatch::Client::new(sdk), &config.metrics_namespace).at_level(level),
            ),
            settings: config.kpi,
            sweeper: config.sweep_targets.as_ref().map(|(stream, queue)| Sweeper {
                turns: Arc::new(conversations()),
                analytics: Arc::new(FirehoseAnalytics::new(aws_sdk_firehose::Client::new(sdk), stream)),
                usage: Arc::new(SqsUsageSink::new(aws_sdk_sqs::Client::new(sdk), queue)),
                after_ms: config.sweep_after_ms,
                max_turns: MAX_TURNS_PER_RUN,
                time_budget: SWEEP_TIME_BUDGET,
                metrics: metrics.clone(),
            }),
            usage_queue: config
                .usage_queue_url()
                .map(|queue| Arc::new(SqsQueueDepth::new(aws_sdk_sqs::Client::new(sdk), queue)) as Arc<dyn QueueDepth>),
        }
    }
}
