//! token-logging: usage records from the SQS usage queue -> priced ledger items and rollups in
//! DynamoDB (USAGE_TABLE) -> EMF metrics. The handler is in [`handler`]; [`plan`] prices and
//! groups turns, [`writer`] writes them with retries behind a [`breaker`].

pub mod breaker;
#[cfg(any(test, feature = "test-support"))]
pub mod faults;
pub mod handler;
pub mod memory;
pub mod plan;
pub mod writer;
