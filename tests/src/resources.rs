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

/// The conversations table with its four sparse GSIs, as template.yaml declares it.
pub async fn create_conversations_table(ddb: &aws_sdk_dynamodb::Client, name: &str) -> Result<(), BoxError> {
    use aws_sdk_dynamodb::types::{GlobalSecondaryIndex, Projection, ProjectionType};
    use shared::aws::conversations::{
        BY_HOUR_INDEX, BY_HOUR_PROJECTION, BY_REPLY_INDEX, OPEN_TURNS_INDEX, PENDING_COPIES_INDEX,
    };
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
        .attribute_definitions(attr("pending_copy", ScalarAttributeType::S)?)
        .attribute_definitions(attr("pending_since_ms", ScalarAttributeType::N)?)
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
                .projection(keys_only.clone())
                .build()?,
        )
        .global_secondary_indexes(
            GlobalSecondaryIndex::builder()
                .index_name(PENDING_COPIES_INDEX)
                .key_schema(key("pending_copy", KeyType::Hash)?)
                .key_schema(key("pending_since_ms", KeyType::Range)?)
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

/// The local stack's resources, created in moto from their definitions in template.yaml (tables
/// with their keys and indexes, queues with their FIFO, retention and redrive settings, the
/// bucket, both Firehose streams) rather than from hand-written copies, plus the two secrets.
#[derive(Debug, Clone)]
pub struct TemplateResources {
    /// The names the gateway's functions read (also what the tests' hand-written set has).
    pub gateway: GatewayResources,
    /// Table name by logical id (DedupTable, ConversationsTable, UsageTable, AdminAuditTable...).
    pub tables: std::collections::BTreeMap<String, String>,
    /// Queue URL by logical id (WorkQueue, UsageQueue and the dead-letter queues).
    pub queues: std::collections::BTreeMap<String, String>,
    /// The Jira secret (`{"base_url", "email", "api_token"}`).
    pub jira_secret_arn: String,
    /// What was created, one line per resource, for the progress output.
    pub created: Vec<String>,
}

impl TemplateResources {
    /// Names are the template's with the stack name replaced by `prefix`; the Slack secret holds
    /// the test signing secret and bot token, the Jira secret `jira_secret`.
    pub async fn create(
        sdk: &SdkConfig,
        prefix: &str,
        template_path: &std::path::Path,
        jira_secret: &serde_json::Value,
    ) -> Result<Self, BoxError> {
        use serde_yaml::Value as Y;
        let prefix = prefix.to_lowercase().replace('_', "-");
        let text = std::fs::read_to_string(template_path)?;
        let template = crate::template::Template::parse(&text)?;
        let ddb = aws_sdk_dynamodb::Client::new(sdk);
        let sqs = aws_sdk_sqs::Client::new(sdk);
        let mut created = Vec::new();

        let mut tables = std::collections::BTreeMap::new();
        for (id, r) in template.resources_of_type("AWS::DynamoDB::Table") {
            let name = format!("{prefix}-{}", id.trim_end_matches("Table").to_lowercase());
            let props = r.get("Properties").ok_or_else(|| format!("{id} has no Properties"))?;
            create_table_from(&ddb, &name, props).await.map_err(|e| format!("table {id}: {e}"))?;
            let gsis = props.get("GlobalSecondaryIndexes").and_then(Y::as_sequence).map_or(0, Vec::len);
            created.push(format!("table {id} -> {name} ({gsis} GSIs)"));
            tables.insert(id, name);
        }

        // Dead-letter queues first: the others' redrive policies name their ARNs.
        let mut defs = template.resources_of_type("AWS::SQS::Queue");
        defs.sort_by_key(|(_, r)| r.get("Properties").and_then(|p| p.get("RedrivePolicy")).is_some());
        let mut queues = std::collections::BTreeMap::new();
        let mut arns: std::collections::BTreeMap<String, String> = std::collections::BTreeMap::new();
        for (id, r) in defs {
            let props = r.get("Properties").ok_or_else(|| format!("{id} has no Properties"))?;
            let resolved = match props.get("QueueName") {
                Some(v) => template.resolve(v)?,
                None => format!("stack-{}", id.to_lowercase()),
            };
            let name = format!("{prefix}-{}", resolved.trim_start_matches("stack-"));
            let mut req = sqs.create_queue().queue_name(&name);
            let text_of = |k: &str| props.get(k).and_then(|v| template.resolve(v).ok());
            for (key, attr) in [
                ("FifoQueue", QueueAttributeName::FifoQueue),
                ("ContentBasedDeduplication", QueueAttributeName::ContentBasedDeduplication),
                ("VisibilityTimeout", QueueAttributeName::VisibilityTimeout),
                ("MessageRetentionPeriod", QueueAttributeName::MessageRetentionPeriod),
            ] {
                if let Some(v) = text_of(key) {
                    req = req.attributes(attr, v);
                }
            }
            let mut redrive = String::new();
            if let Some(policy) = props.get("RedrivePolicy") {
                let target = policy.get("deadLetterTargetArn").map(|v| template.resolve(v)).transpose()?;
                let target = target.unwrap_or_default();
                let dlq_id = target.trim_start_matches('<').trim_end_matches(".Arn>").to_string();
                let arn = arns.get(&dlq_id).ok_or_else(|| format!("{id}: dead-letter queue {dlq_id} not created"))?;
                let max = policy.get("maxReceiveCount").and_then(|v| template.resolve(v).ok()).unwrap_or_default();
                req = req.attributes(
                    QueueAttributeName::RedrivePolicy,
                    serde_json::json!({"deadLetterTargetArn": arn, "maxReceiveCount": max}).to_string(),
                );
                redrive = format!(", redrive to {dlq_id} after {max} receives");
            }
            let url = req.send().await?.queue_url.unwrap_or_default();
            let arn = sqs
                .get_queue_attributes()
                .queue_url(&url)
                .attribute_names(QueueAttributeName::QueueArn)
                .send()
                .await?
                .attributes
                .and_then(|a| a.get(&QueueAttributeName::QueueArn).cloned())
                .unwrap_or_default();
            let fifo = if text_of("FifoQueue").as_deref() == Some("true") { " (FIFO)" } else { "" };
            created.push(format!("queue {id} -> {name}{fifo}{redrive}"));
            arns.insert(id.clone(), arn);
            queues.insert(id, url);
        }

        let bucket = format!("{prefix}-analytics");
        let (bucket_id, _) = template
            .resources_of_type("AWS::S3::Bucket")
            .into_iter()
            .find(|(id, _)| id == "AnalyticsBucket")
            .ok_or("template.yaml has no AnalyticsBucket")?;
        aws_sdk_s3::Client::new(sdk).create_bucket().bucket(&bucket).send().await?;
        created.push(format!("bucket {bucket_id} -> {bucket}"));

        let firehose = aws_sdk_firehose::Client::new(sdk);
        let mut streams = std::collections::BTreeMap::new();
        let today = chrono::Utc::now().format("%Y-%m-%d").to_string();
        for (id, r) in template.resources_of_type("AWS::KinesisFirehose::DeliveryStream") {
            let dest = r
                .get("Properties")
                .and_then(|p| p.get("ExtendedS3DestinationConfiguration"))
                .ok_or_else(|| format!("{id} has no ExtendedS3DestinationConfiguration"))?;
            if dest.get("BucketARN").map(|v| template.resolve(v)).transpose()?.as_deref()
                != Some("<AnalyticsBucket.Arn>")
            {
                return Err(format!("{id} does not deliver to AnalyticsBucket").into());
            }
            // moto neither evaluates Firehose's !{timestamp:...} namespaces nor converts to
            // Parquet: the date is rendered here, and the records stay newline-delimited JSON.
            let prefix_expr = dest.get("Prefix").map(|v| template.resolve(v)).transpose()?.unwrap_or_default();
            let s3_prefix = prefix_expr.replace("!{timestamp:yyyy-MM-dd}", &today);
            let name = format!("{prefix}-{}", id.trim_end_matches("Stream").to_lowercase());
            firehose
                .create_delivery_stream()
                .delivery_stream_name(&name)
                .delivery_stream_type(DeliveryStreamType::DirectPut)
                .extended_s3_destination_configuration(
                    ExtendedS3DestinationConfiguration::builder()
                        .bucket_arn(format!("arn:aws:s3:::{bucket}"))
                        .role_arn("arn:aws:iam::123456789012:role/firehose-delivery")
                        .prefix(&s3_prefix)
                        .build()?,
                )
                .send()
                .await?;
            created.push(format!("Firehose {id} -> {name} (s3://{bucket}/{s3_prefix})"));
            streams.insert(id, name);
        }

        let secrets = aws_sdk_secretsmanager::Client::new(sdk);
        let secret = |name: String, value: String| {
            let secrets = secrets.clone();
            async move {
                let out = secrets.create_secret().name(name).secret_string(value).send().await?;
                Ok::<_, BoxError>(out.arn.unwrap_or_default())
            }
        };
        let secret_arn = secret(
            format!("{prefix}/slack"),
            serde_json::json!({"signing_secret": TEST_SIGNING_SECRET, "bot_token": TEST_BOT_TOKEN}).to_string(),
        )
        .await?;
        let jira_secret_arn = secret(format!("{prefix}/jira"), jira_secret.to_string()).await?;
        created.push("secrets SlackSecret and JiraSecret".into());

        let need = |m: &std::collections::BTreeMap<String, String>, id: &str| {
            m.get(id).cloned().ok_or_else(|| format!("template.yaml has no {id}"))
        };
        let gateway = GatewayResources {
            dedup_table: need(&tables, "DedupTable")?,
            conversations_table: need(&tables, "ConversationsTable")?,
            usage_table: need(&tables, "UsageTable")?,
            work_queue_url: need(&queues, "WorkQueue")?,
            usage_queue_url: need(&queues, "UsageQueue")?,
            bucket,
            stream: need(&streams, "EventsStream")?,
            feedback_stream: need(&streams, "FeedbackStream")?,
            secret_arn,
        };
        Ok(TemplateResources { gateway, tables, queues, jira_secret_arn, created })
    }
}

/// One table from its template Properties: attribute definitions, key schema and GSIs.
async fn create_table_from(
    ddb: &aws_sdk_dynamodb::Client,
    name: &str,
    props: &serde_yaml::Value,
) -> Result<(), BoxError> {
    use aws_sdk_dynamodb::types::{GlobalSecondaryIndex, Projection, ProjectionType};
    use serde_yaml::Value as Y;
    let s = |v: &Y, k: &str| v.get(k).and_then(Y::as_str).map(str::to_string).ok_or(format!("{k} missing"));
    let keys = |v: Option<&Y>| -> Result<Vec<KeySchemaElement>, BoxError> {
        v.and_then(Y::as_sequence)
            .ok_or("KeySchema missing")?
            .iter()
            .map(|k| {
                Ok(KeySchemaElement::builder()
                    .attribute_name(s(k, "AttributeName")?)
                    .key_type(KeyType::from(s(k, "KeyType")?.as_str()))
                    .build()?)
            })
            .collect()
    };
    let mut req = ddb.create_table().table_name(name).billing_mode(BillingMode::PayPerRequest);
    for a in props.get("AttributeDefinitions").and_then(Y::as_sequence).ok_or("AttributeDefinitions missing")? {
        req = req.attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name(s(a, "AttributeName")?)
                .attribute_type(ScalarAttributeType::from(s(a, "AttributeType")?.as_str()))
                .build()?,
        );
    }
    req = req.set_key_schema(Some(keys(props.get("KeySchema"))?));
    for g in props.get("GlobalSecondaryIndexes").and_then(Y::as_sequence).into_iter().flatten() {
        let p = g.get("Projection").ok_or("Projection missing")?;
        let non_key: Option<Vec<String>> = p
            .get("NonKeyAttributes")
            .and_then(Y::as_sequence)
            .map(|a| a.iter().filter_map(Y::as_str).map(str::to_string).collect());
        let projection = Projection::builder()
            .projection_type(ProjectionType::from(s(p, "ProjectionType")?.as_str()))
            .set_non_key_attributes(non_key)
            .build();
        req = req.global_secondary_indexes(
            GlobalSecondaryIndex::builder()
                .index_name(s(g, "IndexName")?)
                .set_key_schema(Some(keys(g.get("KeySchema"))?))
                .projection(projection)
                .build()?,
        );
    }
    req.send().await?;
    Ok(())
}

/// Differences between the tests' hand-written tables ([`GatewayResources::create`]) and the
/// template's (keys, attribute types, GSIs with their keys and projections), as readable lines;
/// empty when they match. Keeps the tests' copies from drifting from what is deployed.
pub async fn hand_written_drift(
    sdk: &SdkConfig,
    hand: &GatewayResources,
    from_template: &TemplateResources,
) -> Result<Vec<String>, BoxError> {
    let ddb = aws_sdk_dynamodb::Client::new(sdk);
    let shape = |t: aws_sdk_dynamodb::types::TableDescription| {
        let key = |k: &[KeySchemaElement]| {
            k.iter().map(|e| format!("{}:{}", e.attribute_name(), e.key_type().as_str())).collect::<Vec<_>>().join(",")
        };
        let mut attrs: Vec<String> = t
            .attribute_definitions()
            .iter()
            .map(|a| format!("{}:{}", a.attribute_name(), a.attribute_type().as_str()))
            .collect();
        attrs.sort();
        let mut gsis: Vec<String> = t
            .global_secondary_indexes()
            .iter()
            .map(|g| {
                let p = g.projection();
                let mut non_key: Vec<String> = p.map(|p| p.non_key_attributes().to_vec()).unwrap_or_default();
                non_key.sort();
                format!(
                    "{}[{}] {} {}",
                    g.index_name().unwrap_or_default(),
                    key(g.key_schema()),
                    p.and_then(|p| p.projection_type()).map(|t| t.as_str().to_string()).unwrap_or_default(),
                    non_key.join(",")
                )
            })
            .collect();
        gsis.sort();
        format!("key [{}] attributes [{}] indexes [{}]", key(t.key_schema()), attrs.join(","), gsis.join("; "))
    };
    let mut drift = Vec::new();
    for (id, hand_name) in [
        ("DedupTable", &hand.dedup_table),
        ("ConversationsTable", &hand.conversations_table),
        ("UsageTable", &hand.usage_table),
    ] {
        let template_name = from_template.tables.get(id).ok_or_else(|| format!("template.yaml has no {id}"))?;
        let mut shapes = Vec::new();
        for name in [hand_name, template_name] {
            let t = ddb.describe_table().table_name(name).send().await?.table.ok_or("no table description")?;
            shapes.push(shape(t));
        }
        if shapes[0] != shapes[1] {
            drift.push(format!("{id}: tests create {}, template.yaml declares {}", shapes[0], shapes[1]));
        }
    }
    let sqs = aws_sdk_sqs::Client::new(sdk);
    for (id, hand_url) in [("WorkQueue", &hand.work_queue_url), ("UsageQueue", &hand.usage_queue_url)] {
        let template_url = from_template.queues.get(id).ok_or_else(|| format!("template.yaml has no {id}"))?;
        let mut fifo = Vec::new();
        for url in [hand_url, template_url] {
            let attrs = sqs
                .get_queue_attributes()
                .queue_url(url)
                .attribute_names(QueueAttributeName::FifoQueue)
                .send()
                .await?
                .attributes
                .unwrap_or_default();
            fifo.push(attrs.get(&QueueAttributeName::FifoQueue).cloned().unwrap_or_else(|| "false".into()));
        }
        if fifo[0] != fifo[1] {
            drift.push(format!("{id}: tests create FifoQueue={}, template.yaml declares {}", fifo[0], fifo[1]));
        }
    }
    Ok(drift)
}

/// The ledger turns (one item per turn: `TURN#{record_id}`) in a usage table.
pub async fn ledger_turns(ddb: &aws_sdk_dynamodb::Client, table: &str) -> Vec<String> {
    use aws_sdk_dynamodb::types::AttributeValue as Av;
    let mut out = Vec::new();
    let mut start = None;
    loop {
        let page = ddb
            .scan()
            .table_name(table)
            .consistent_read(true)
            .set_exclusive_start_key(start.take())
            .send()
            .await
            .unwrap_or_else(|e| panic!("scanning {table}: {e:?}"));
        for item in page.items() {
            if let (Some(Av::S(pk)), Some(Av::S(sk))) = (item.get("pk"), item.get("sk")) {
                if sk == "TURN" {
                    out.push(pk.trim_start_matches("TURN#").to_string());
                }
            }
        }
        match page.last_evaluated_key {
            Some(k) if !k.is_empty() => start = Some(k),
            _ => break,
        }
    }
    out.sort();
    out
}
