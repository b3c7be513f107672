//! The gateway's AWS resources, created in the emulator with a unique prefix per test so that
//! concurrent tests share one moto without seeing each other's data.

use aws_config::SdkConfig;
use aws_sdk_dynamodb::types::{AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType};
use aws_sdk_firehose::types::{DeliveryStreamType, ExtendedS3DestinationConfiguration};
use aws_sdk_sqs::types::QueueAttributeName;

/// Signing secret and bot token the tests put in the Slack secret.
pub const TEST_SIGNING_SECRET: &str = "8f742231b10e8888abcd99yyyzzz85a5";
pub const TEST_BOT_TOKEN: &str = "xoxb-test-token";

/// Names and URLs of one test's resources.
#[derive(Debug, Clone)]
pub struct GatewayResources {
    pub dedup_table: String,
    pub conversations_table: String,
    pub usage_table: String,
    pub work_queue_url: String,
    pub usage_queue_url: String,
    pub bucket: String,
    pub stream: String,
    /// The feedback Firehose stream (same bucket, prefix `feedback/`).
    pub feedback_stream: String,
    pub secret_arn: String,
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl GatewayResources {
    /// Creates tables, queues, bucket, delivery stream and secret named after `prefix`.
    pub async fn create(sdk: &SdkConfig, prefix: &str) -> Result<Self, BoxError> {
        let prefix = prefix.to_lowercase().replace('_', "-");
        let ddb = aws_sdk_dynamodb::Client::new(sdk);
        let sqs = aws_sdk_sqs::Client::new(sdk);
        let s3 = aws_sdk_s3::Client::new(sdk);
        let firehose = aws_sdk_firehose::Client::new(sdk);
        let secrets = aws_sdk_secretsmanager::Client::new(sdk);

        let dedup_table = format!("{prefix}-dedup");
        create_table(&ddb, &dedup_table, false).await?;
        let conversations_table = format!("{prefix}-conversations");
        create_conversations_table(&ddb, &conversations_table).await?;
        let usage_table = format!("{prefix}-usage");
        create_table(&ddb, &usage_table, true).await?;

        let work_queue_url = sqs
            .create_queue()
            .queue_name(format!("{prefix}-work.fifo"))
            .attributes(QueueAttributeName::FifoQueue, "true")
            .attributes(QueueAttributeName::VisibilityTimeout, "30")
            .send()
            .await?
            .queue_url
            .unwrap_or_default();
        let usage_queue_url =
            sqs.create_queue().queue_name(format!("{prefix}-usage")).send().await?.queue_url.unwrap_or_default();

        let bucket = format!("{prefix}-analytics");
        s3.create_bucket().bucket(&bucket).send().await?;
        let stream = format!("{prefix}-events");
        firehose
            .create_delivery_stream()
            .delivery_stream_name(&stream)
            .delivery_stream_type(DeliveryStreamType::DirectPut)
            .extended_s3_destination_configuration(
                ExtendedS3DestinationConfiguration::builder()
                    .bucket_arn(format!("arn:aws:s3:::{bucket}"))
                    .role_arn("arn:aws:iam::123456789012:role/firehose-delivery")
                    .prefix("events/")
                    .build()?,
            )
            .send()
            .await?;
        let feedback_stream = format!("{prefix}-feedback");
        firehose
            .create_delivery_stream()
            .delivery_stream_name(&feedback_stream)
            .delivery_stream_type(DeliveryStreamType::DirectPut)
            .extended_s3_destination_configuration(
                ExtendedS3DestinationConfiguration::builder()
                    .bucket_arn(format!("arn:aws:s3:::{bucket}"))
                    .role_arn("arn:aws:iam::123456789012:role/firehose-delivery")
                    .prefix("feedback/")
                    .build()?,
            )
            .send()
            .await?;
        let secret_arn = secrets
            .create_secret()
            .name(format!("{prefix}/slack"))
            .secret_string(
                serde_json::json!({"signing_secret": TEST_SIGNING_SECRET, "bot_token": TEST_BOT_TOKEN}).to_string(),
            )
            .send()
            .await?
            .arn
            .unwrap_or_default();
        Ok(GatewayResources {
            dedup_table,
            conversations_table,
            usage_table,
            work_queue_url,
            usage_queue_url,
            bucket,
            stream,
            feedback_stream,
            secret_arn,
        })
    }
}

async fn create_table(ddb: &aws_sdk_dynamodb::Client, name: &str, with_sort_key: bool) -> Result<(), BoxError> {
    let mut req = ddb
        .create_table()
        .table_name(name)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(
            AttributeDefinition::builder().attribute_name("pk").attribute_type(ScalarAttributeType::S).build()?,
        )
        .key_schema(KeySchemaElement::builder().attribute_name("pk").key_type(KeyType::Hash).build()?);
    if with_sort_key {
        req = req
            .attribute_definitions(
                AttributeDefinition::builder().attribute_name("sk").attribute_type(ScalarAttributeType::S).build()?,
            )
            .key_schema(KeySchemaElement::builder().attribute_name("sk").key_type(KeyType::Range).build()?);
    }
    req.send().await?;
    Ok(())
}

/// A table keyed by `pk` and `sk` strings (the usage and admin audit tables' shape).
pub async fn create_keyed_table(sdk: &SdkConfig, name: &str) -> Result<(), BoxError> {
    create_table(&aws_sdk_dynamodb::Client::new(sdk), name, true).await
}

/// The conversations table with its three sparse GSIs, as template.yaml declares it.
pub async fn create_conversations_table(ddb: &aws_sdk_dynamodb::Client, name: &str) -> Result<(), BoxError> {
    use aws_sdk_dynamodb::types::{GlobalSecondaryIndex, Projection, ProjectionType};
    use shared::aws::conversations::{BY_HOUR_INDEX, BY_HOUR_PROJECTION, BY_REPLY_INDEX, OPEN_TURNS_INDEX};
    let attr =
        |n: &str, t: ScalarAttributeType| AttributeDefinition::builder().attribute_name(n).attribute_type(t).build();
    let key = |n: &str, t: KeyType| KeySchemaElement::builder().attribute_name(n).key_type(t).build();
    let keys_only = Projection::builder().projection_type(ProjectionType::KeysOnly).build();
    let by_hour = Projection::builder()
        .projection_type(ProjectionType::Include)
        .set_non_key_attributes(Some(BY_HOUR_PROJECTION.iter().map(|a| a.to_string()).collect()))
        .build();
    ddb.create_table()
        .table_name(name)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(attr("pk", ScalarAttributeType::S)?)
        .attribute_definitions(attr("sk", ScalarAttributeType::S)?)
        .attribute_definitions(attr("open_turn", ScalarAttributeType::S)?)
        .attribute_definitions(attr("received_at_ms", ScalarAttributeType::N)?)
        .attribute_definitions(attr("hour", ScalarAttributeType::S)?)
        .attribute_definitions(attr("at_ms", ScalarAttributeType::N)?)
        .attribute_definitions(attr("reply_key", ScalarAttributeType::S)?)
        .key_schema(key("pk", KeyType::Hash)?)
        .key_schema(key("sk", KeyType::Range)?)
        .global_secondary_indexes(
            GlobalSecondaryIndex::builder()
                .index_name(OPEN_TURNS_INDEX)
                .key_schema(key("open_turn", KeyType::Hash)?)
                .key_schema(key("received_at_ms", KeyType::Range)?)
                .projection(keys_only.clone())
                .build()?,
        )
        .global_secondary_indexes(
            GlobalSecondaryIndex::builder()
                .index_name(BY_HOUR_INDEX)
                .key_schema(key("hour", KeyType::Hash)?)
                .key_schema(key("at_ms", KeyType::Range)?)
                .projection(by_hour)
                .build()?,
        )
        .global_secondary_indexes(
            GlobalSecondaryIndex::builder()
                .index_name(BY_REPLY_INDEX)
                .key_schema(key("reply_key", KeyType::Hash)?)
                .projection(keys_only)
                .build()?,
        )
        .send()
        .await?;
    Ok(())
}

/// Every object under `prefix` in `bucket`, as text.
pub async fn read_objects(sdk: &SdkConfig, bucket: &str, prefix: &str) -> Result<Vec<(String, String)>, BoxError> {
    let s3 = aws_sdk_s3::Client::new(sdk);
    let list = s3.list_objects_v2().bucket(bucket).prefix(prefix).send().await?;
    let mut out = Vec::new();
    for obj in list.contents() {
        let key = obj.key().unwrap_or_default().to_string();
        let body = s3.get_object().bucket(bucket).key(&key).send().await?.body.collect().await?.into_bytes();
        out.push((key, String::from_utf8_lossy(&body).into_owned()));
    }
    Ok(out)
}

/// Receives (and deletes) everything currently in a queue, as SQS Lambda event records.
pub async fn drain_queue(
    sdk: &SdkConfig,
    url: &str,
) -> Result<Vec<aws_lambda_events::event::sqs::SqsMessage>, BoxError> {
    let sqs = aws_sdk_sqs::Client::new(sdk);
    let mut out = Vec::new();
    loop {
        let resp = sqs
            .receive_message()
            .queue_url(url)
            .max_number_of_messages(10)
            .message_system_attribute_names(aws_sdk_sqs::types::MessageSystemAttributeName::All)
            .send()
            .await?;
        let msgs = resp.messages.unwrap_or_default();
        if msgs.is_empty() {
            return Ok(out);
        }
        for m in msgs {
            if let Some(h) = m.receipt_handle() {
                sqs.delete_message().queue_url(url).receipt_handle(h).send().await?;
            }
            let mut rec = aws_lambda_events::event::sqs::SqsMessage::default();
            rec.message_id = m.message_id.clone();
            rec.body = m.body.clone();
            rec.attributes =
                m.attributes.unwrap_or_default().into_iter().map(|(k, v)| (k.as_str().to_string(), v)).collect();
            out.push(rec);
        }
    }
}

/// Puts a user's rollup item (`DAY#...` or `MONTH#...`) with the given cost, as token-logging would.
pub async fn seed_spend(
    sdk: &SdkConfig,
    table: &str,
    team: &str,
    user: &str,
    sk: &str,
    cost_usd: f64,
) -> Result<(), BoxError> {
    use aws_sdk_dynamodb::types::AttributeValue;
    aws_sdk_dynamodb::Client::new(sdk)
        .put_item()
        .table_name(table)
        .item("pk", AttributeValue::S(shared::rollups::user_pk(team, user)))
        .item("sk", AttributeValue::S(sk.to_string()))
        .item("cost_usd", AttributeValue::N(cost_usd.to_string()))
        .item("turns", AttributeValue::N("3".into()))
        .send()
        .await?;
    Ok(())
}
