//! Lambda entry point of slack-worker (SQS FIFO event source, partial batch failures).

use std::sync::Arc;

use aws_lambda_events::event::sqs::SqsEvent;
use lambda_runtime::{run, service_fn, Error, LambdaEvent};
use shared::aws::agent::BedrockAgent;
use shared::aws::conversations::DynamoDbConversations;
use shared::aws::firehose::{FirehoseAnalytics, FirehoseFeedback};
use shared::aws::secrets::JsonSecret;
use shared::aws::sqs::SqsUsageSink;
use shared::aws::usage::DynamoDbUsageReader;
use shared::ports::SlackSecretSource;
use shared::slack::client::SlackWebClient;
use shared::slack::files::{SlackFileFetcher, SlackFiles};
use shared::telemetry::{init_logging, Metrics};
use slack_gateway::feedback::{FeedbackRecorder, FeedbackSink};
use slack_gateway::worker::{Worker, WorkerConfig};

#[tokio::main]
async fn main() -> Result<(), Error> {
    init_logging();
    let config = WorkerConfig::from_env()?;
    let sdk = shared::aws::sdk_config().await;
    let secrets: Arc<dyn SlackSecretSource> =
        Arc::new(JsonSecret::new(aws_sdk_secretsmanager::Client::new(&sdk), &config.slack_secret_arn));
    let secret = secrets.load().await?;
    let dynamodb = aws_sdk_dynamodb::Client::new(&sdk);
    let fetcher = SlackFileFetcher::new(&secret.bot_token, config.file_hosts.clone())?;
    // A rotated or reinstalled token is re-read when Slack refuses the one loaded here.
    let slack = Arc::new(
        SlackWebClient::new(&config.slack_api_base, secret.bot_token)?
            .with_token_source(secrets, shared::slack::client::TOKEN_REFRESH_INTERVAL),
    );
    let worker = Worker {
        agent: Arc::new(BedrockAgent::new(
            shared::aws::agent::agent_client(&sdk),
            &config.agent_id,
            &config.agent_alias_id,
        )),
        chat: slack.clone(),
        files: Arc::new(SlackFiles::new(fetcher, slack)),
        analytics: Arc::new(FirehoseAnalytics::new(aws_sdk_firehose::Client::new(&sdk), &config.events_stream_name)),
        usage: Arc::new(SqsUsageSink::new(aws_sdk_sqs::Client::new(&sdk), &config.usage_queue_url)),
        conversations: Arc::new(DynamoDbConversations::new(dynamodb.clone(), &config.conversations_table)),
        feedback: Arc::new(FeedbackRecorder {
            store: Arc::new(
                DynamoDbConversations::new(dynamodb.clone(), &config.conversations_table)
                    .with_feedback_rollup(&config.usage_table, &config.agent_id),
            ),
            sink: config.feedback_stream_name.as_ref().map(|s| {
                Arc::new(FirehoseFeedback::new(aws_sdk_firehose::Client::new(&sdk), s)) as Arc<dyn FeedbackSink>
            }),
            settings: config.feedback.clone(),
            agent_id: config.agent_id.clone(),
            agent_alias_id: config.agent_alias_id.clone(),
        }),
        spend: Arc::new(DynamoDbUsageReader::new(dynamodb, &config.usage_table)),
        prices: Arc::new(shared::aws::prices::load_configured(&sdk).await?),
        metrics: Metrics::from_env()?,
        settings: config.settings,
    };
    let worker = &worker;
    run(service_fn(move |event: LambdaEvent<SqsEvent>| async move {
        let deadline = shared::deadline::from_epoch_ms(event.context.deadline);
        Ok::<_, Error>(worker.handle_batch(event.payload, deadline).await)
    }))
    .await
}
