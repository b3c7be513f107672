//! Shared by every function: domain types, ports (traits), their AWS and Slack adapters,
//! typed configuration, JSON logging and the EMF metrics emitter.

pub mod aws;
pub mod config;
pub mod deadline;
pub mod domain;
pub mod encoding;
pub mod error;
pub mod http;
pub mod ledger;
#[cfg(any(test, feature = "test-support"))]
pub mod memory;
pub mod metric_names;
pub mod outbox;
pub mod ports;
pub mod pricing;
pub mod retry;
pub mod rollups;
pub mod slack;
pub mod telemetry;
pub mod utf8;

pub use error::{Error, Result};
