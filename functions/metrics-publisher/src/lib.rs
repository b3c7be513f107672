//! metrics-publisher: every 5 minutes (EventBridge schedule) reads recent activity from the
//! conversations table and publishes computed health and KPI metrics with PutMetricData.
//! [`kpi`] computes the metrics, [`handler`] reads and publishes them, [`cloudwatch`] is the
//! PutMetricData adapter, [`usage_queue`] reads the usage queue's depth, [`sweep`] re-publishes
//! turn records the worker could not deliver.

pub mod cloudwatch;
pub mod handler;
pub mod kpi;
pub mod sweep;
pub mod usage_queue;
