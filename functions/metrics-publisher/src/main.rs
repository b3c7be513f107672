//! Lambda entry point of metrics-publisher (EventBridge schedule, every 5 minutes).

use std::sync::Arc;

use lambda_runtime::{run, service_fn, Error, LambdaEvent};
use metrics_publisher::cloudwatch::CloudWatchMetrics;
use metrics_publisher::handler::{Config, MetricsPublisher};
use metrics_publisher::sweep::Sweeper;
use metrics_publisher::usage_queue::{QueueDepth, SqsQueueDepth};
use shared::aws::conversations::DynamoDbConversations;
use shared::aws::firehose::FirehoseAnalytics;
use shared::aws::sqs::SqsUsageSink;
use shared::telemetry::{init_logging, Metrics};

#[tokio::main]
async fn main() -> Result<(), Error> {
    init_logging();
    let config = Config::from_env()?;
    let sdk = shared::aws::sdk_config().await;
    // Built once: its level is the one CloudWatch publishing must honour too.
    let metrics = Metrics::from_env()?;
    let level = metrics.level();
    let publisher = MetricsPublisher {
        conversations: Arc::new(DynamoDbConversations::new(
            aws_sdk_dynamodb::Client::new(&sdk),
            &config.conversations_table,
        )),
        sink: Arc::new(
            CloudWatchMetrics::new(aws_sdk_cloudwatch::Client::new(&sdk), &config.metrics_namespace).at_level(level),
        ),
        settings: config.kpi,
        sweeper: config.sweep_targets.as_ref().map(|(stream, queue)| Sweeper {
            turns: Arc::new(DynamoDbConversations::new(
                aws_sdk_dynamodb::Client::new(&sdk),
                &config.conversations_table,
            )),
            analytics: Arc::new(FirehoseAnalytics::new(aws_sdk_firehose::Client::new(&sdk), stream)),
            usage: Arc::new(SqsUsageSink::new(aws_sdk_sqs::Client::new(&sdk), queue)),
            after_ms: config.sweep_after_ms,
            max_turns: metrics_publisher::sweep::MAX_TURNS_PER_RUN,
            time_budget: metrics_publisher::sweep::SWEEP_TIME_BUDGET,
            metrics: metrics.clone(),
        }),
        usage_queue: config
            .usage_queue_url()
            .map(|queue| Arc::new(SqsQueueDepth::new(aws_sdk_sqs::Client::new(&sdk), queue)) as Arc<dyn QueueDepth>),
    };
    let publisher = &publisher;
    // The scheduled event carries nothing the run needs: it reads the clock.
    run(service_fn(move |_event: LambdaEvent<serde_json::Value>| async move {
        let datums = publisher.run(chrono::Utc::now().timestamp_millis()).await?;
        Ok::<_, Error>(serde_json::json!({ "published": datums.len() }))
    }))
    .await
}
