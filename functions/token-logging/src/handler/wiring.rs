//! token-logging over the real ledger, built from its config and an SDK config: the one
//! constructor its main and the end-to-end tests (the SDK pointed at moto) use.

use std::sync::Arc;
use std::time::Duration;

use aws_config::SdkConfig;
use aws_sdk_dynamodb::config::retry::RetryConfig;
use aws_sdk_dynamodb::config::timeout::TimeoutConfig;
use shared::aws::ledger::DynamoDbLedger;
use shared::pricing::PriceTable;
use shared::telemetry::Metrics;

use super::{Config, TokenLogger};
use crate::writer::WriterSettings;

impl TokenLogger {
    /// The logger over the DynamoDB ledger of `config.usage_table`.
    pub fn from_config(
        config: &Config,
        sdk: &SdkConfig,
        prices: PriceTable,
        metrics: Metrics,
        settings: WriterSettings,
    ) -> TokenLogger {
        // The writer retries (and counts throttles for DynamoDBThrottles and the circuit breaker)
        // itself, so the SDK makes one attempt per call, each bounded in time.
        let dynamodb = aws_sdk_dynamodb::Client::from_conf(
            aws_sdk_dynamodb::config::Builder::from(sdk)
                .retry_config(RetryConfig::standard().with_max_attempts(1))
                .timeout_config(TimeoutConfig::builder().operation_attempt_timeout(Duration::from_secs(5)).build())
                .build(),
        );
        TokenLogger::new(
            Arc::new(DynamoDbLedger::new(dynamodb, &config.usage_table)),
            prices,
            metrics,
            &config.usage_table,
            settings,
        )
    }
}
