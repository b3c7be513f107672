//! The one entry point: an EventBridge scheduled event runs the daily report, a Function URL
//! request is the admin API. The payload's shape decides.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use aws_lambda_events::event::lambda_function_urls::LambdaFunctionUrlRequest;
use chrono::{DateTime, Duration, NaiveDate, Utc};
use futures::stream::{self, StreamExt, TryStreamExt};
use serde_json::{json, Value};
use shared::slack::client::{FileUpload, SlackWebClient};

use crate::api::AdminApi;
use crate::compact::{ArchiveObjects, Compactor, Unloader};
use crate::report::{self, DailyReport};
use shared::ports::RollupStore;
use shared::rollups::DayRollups;

mod wiring;

/// Why an invocation failed (the Lambda error type names the kind).
#[derive(Debug, thiserror::Error)]
pub enum CostAnalyzerError {
    #[error("unrecognised event: {0}")]
    UnrecognisedEvent(String),
    #[error("reading the rollups: {0}")]
    Rollups(shared::Error),
    #[error("writing the report: {0}")]
    ReportStore(shared::Error),
    #[error("posting the report to Slack: {0}")]
    Slack(String),
    #[error("drawing the chart: {0}")]
    Chart(String),
    #[error("compacting the event archive: {0}")]
    Compaction(String),
}

impl From<CostAnalyzerError> for lambda_runtime::Diagnostic {
    fn from(e: CostAnalyzerError) -> Self {
        let error_type = match e {
            CostAnalyzerError::UnrecognisedEvent(_) => "UnrecognisedEvent",
            CostAnalyzerError::Rollups(_) => "RollupsUnavailable",
            CostAnalyzerError::ReportStore(_) => "ReportStoreFailed",
            CostAnalyzerError::Slack(_) => "SlackFailed",
            CostAnalyzerError::Chart(_) => "ChartFailed",
            CostAnalyzerError::Compaction(_) => "CompactionFailed",
        };
        lambda_runtime::Diagnostic { error_type: error_type.into(), error_message: e.to_string() }
    }
}

/// Where report JSON goes (S3).
#[async_trait]
pub trait ReportStore: Send + Sync {
    /// Stores `body` under `key`.
    async fn put(&self, key: &str, body: Vec<u8>) -> shared::Result<()>;
}

/// Where the report is posted (Slack).
#[async_trait]
pub trait ReportChannel: Send + Sync {
    /// Posts the Block Kit summary; returns the message ts.
    async fn post(&self, channel: &str, text: &str, blocks: Value) -> Result<String, String>;
    /// Shares a PNG in the channel; returns the file id.
    async fn upload_png(&self, channel: &str, filename: &str, title: &str, png: &[u8]) -> Result<String, String>;
}

#[async_trait]
impl ReportChannel for SlackWebClient {
    async fn post(&self, channel: &str, text: &str, blocks: Value) -> Result<String, String> {
        self.post_blocks(channel, text, blocks).await.map_err(|e| e.to_string())
    }

    async fn upload_png(&self, channel: &str, filename: &str, title: &str, png: &[u8]) -> Result<String, String> {
        let upload = FileUpload { channel, filename, title, bytes: png, initial_comment: None, thread_ts: None };
        self.upload_file(upload).await.map_err(|e| e.to_string())
    }
}

/// The S3 key of a day's report.
pub fn report_key(date: NaiveDate) -> String {
    format!("reports/daily/{}.json", date.format("%Y-%m-%d"))
}

/// The handler and what it holds across invocations.
pub struct CostAnalyzer {
    pub rollups: Arc<dyn RollupStore>,
    pub reports: Arc<dyn ReportStore>,
    /// The Slack channel and client, when REPORT_CHANNEL_ID is set.
    pub channel: Option<(String, Arc<dyn ReportChannel>)>,
    pub api: AdminApi,
    pub agent_names: BTreeMap<String, String>,
    /// The event archive's daily compaction (`{"task": "compact_events"}`), when configured.
    pub archive: Option<ArchiveCompaction>,
}

/// What the compaction task works on.
pub struct ArchiveCompaction {
    pub objects: Arc<dyn ArchiveObjects>,
    pub unloader: Arc<dyn Unloader>,
    pub bucket: String,
}

/// The task name of the compaction schedule's input.
pub const COMPACT_TASK: &str = "compact_events";

/// The days a compaction run works on: `compact_dates` when the event names them, else the two
/// UTC days before `now` (the day before catches objects Firehose delivered late).
pub fn compaction_dates(event: &Value, now: DateTime<Utc>) -> Result<Vec<NaiveDate>, CostAnalyzerError> {
    match event.get("compact_dates") {
        None => Ok(vec![now.date_naive() - Duration::days(1), now.date_naive() - Duration::days(2)]),
        Some(Value::Array(days)) if !days.is_empty() && days.len() <= 31 => days
            .iter()
            .map(|d| {
                d.as_str().and_then(|t| NaiveDate::parse_from_str(t, "%Y-%m-%d").ok()).ok_or_else(|| {
                    CostAnalyzerError::UnrecognisedEvent(format!("compact_dates must hold YYYY-MM-DD days, not {d}"))
                })
            })
            .collect(),
        Some(other) => Err(CostAnalyzerError::UnrecognisedEvent(format!(
            "compact_dates must be a list of 1 to 31 YYYY-MM-DD days, not {other}"
        ))),
    }
}

/// What a report run did.
#[derive(Debug, Clone, PartialEq)]
pub struct ReportOutcome {
    pub date: NaiveDate,
    pub key: String,
    pub message_ts: Option<String>,
    pub file_id: Option<String>,
    pub report: DailyReport,
}

/// The report day of a scheduled event: the day before the event's time (UTC), unless the
/// event names one (`{"report_date": "YYYY-MM-DD"}`, for reruns).
pub fn report_date(event: &Value, now: DateTime<Utc>) -> Result<NaiveDate, CostAnalyzerError> {
    if let Some(d) = event.get("report_date").or_else(|| event.pointer("/detail/report_date")) {
        let text = d.as_str().unwrap_or_default();
        return NaiveDate::parse_from_str(text, "%Y-%m-%d")
            .map_err(|_| CostAnalyzerError::UnrecognisedEvent(format!("report_date must be YYYY-MM-DD, not {d}")));
    }
    let at = event
        .get("time")
        .and_then(Value::as_str)
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map_or(now, |t| t.with_timezone(&Utc));
    Ok(at.date_naive() - Duration::days(1))
}

impl CostAnalyzer {
    /// Dispatches on the payload: a Function URL request (it has `requestContext.http`) is an
    /// API call; a scheduled event (`source` `aws.events`, or a `report_date`) runs the report.
    pub async fn handle(&self, event: Value, now: DateTime<Utc>) -> Result<Value, CostAnalyzerError> {
        if event.pointer("/requestContext/http").is_some() {
            let request: LambdaFunctionUrlRequest = serde_json::from_value(event)
                .map_err(|e| CostAnalyzerError::UnrecognisedEvent(format!("Function URL request: {e}")))?;
            let response = self.api.handle(&request, now).await;
            return serde_json::to_value(response).map_err(|e| CostAnalyzerError::UnrecognisedEvent(e.to_string()));
        }
        if event.get("task").and_then(Value::as_str) == Some(COMPACT_TASK) {
            return self.compact(&event, now).await;
        }
        let scheduled = event.get("source").and_then(Value::as_str) == Some("aws.events")
            || event.get("detail-type").and_then(Value::as_str) == Some("Scheduled Event")
            || event.get("report_date").is_some();
        if !scheduled {
            let keys: Vec<&String> = event.as_object().map(|o| o.keys().collect()).unwrap_or_default();
            return Err(CostAnalyzerError::UnrecognisedEvent(format!(
                "neither a Function URL request nor a scheduled event (top-level keys {keys:?})"
            )));
        }
        let outcome = self.daily_report(report_date(&event, now)?).await?;
        Ok(json!({
            "report_date": outcome.date.format("%Y-%m-%d").to_string(),
            "s3_key": outcome.key,
            "slack_ts": outcome.message_ts,
            "chart_file_id": outcome.file_id,
            "total_cost_usd": outcome.report.totals.cost_usd,
        }))
    }

    /// Compacts the archive's partitions of the event's days; every day is tried, and the run
    /// fails (so Lambda retries it and, past that, its dead-letter queue holds it) if one did.
    async fn compact(&self, event: &Value, now: DateTime<Utc>) -> Result<Value, CostAnalyzerError> {
        let archive = self.archive.as_ref().ok_or_else(|| {
            CostAnalyzerError::Compaction("this function has no analytics bucket and Athena configured".into())
        })?;
        let compactor = Compactor {
            objects: archive.objects.as_ref(),
            unloader: archive.unloader.as_ref(),
            bucket: &archive.bucket,
        };
        let run_id = now.format("%Y%m%dT%H%M%S%3fZ").to_string();
        let mut days = Vec::new();
        let mut failures = Vec::new();
        for date in compaction_dates(event, now)? {
            match compactor.compact(date, &run_id).await {
                Ok(done) => days.push(serde_json::to_value(done).unwrap_or(Value::Null)),
                Err(e) => {
                    tracing::error!(date = %date, error = %e, "could not compact a partition; its objects are kept");
                    failures.push(format!("{date}: {e}"));
                }
            }
        }
        if !failures.is_empty() {
            return Err(CostAnalyzerError::Compaction(failures.join("; ")));
        }
        Ok(json!({"compacted": days}))
    }

    /// Builds, stores and posts the report on `date`.
    pub async fn daily_report(&self, date: NaiveDate) -> Result<ReportOutcome, CostAnalyzerError> {
        let rollups = &self.rollups;
        let days: Vec<(NaiveDate, DayRollups)> = stream::iter(report::days_needed(date))
            .map(|d| async move { rollups.day(d).await.map(|r| (d, r)) })
            .buffered(8)
            .try_collect()
            .await
            .map_err(CostAnalyzerError::Rollups)?;
        let days: BTreeMap<NaiveDate, DayRollups> = days.into_iter().collect();
        let report = report::build(date, &days, &self.agent_names);
        let key = report_key(date);
        let body = serde_json::to_vec_pretty(&report).map_err(|e| {
            CostAnalyzerError::ReportStore(shared::Error::Malformed { what: "report", reason: e.to_string() })
        })?;
        self.reports.put(&key, body).await.map_err(CostAnalyzerError::ReportStore)?;
        tracing::info!(date = %report.date, cost_usd = report.totals.cost_usd, turns = report.totals.turns, key = %key, "daily report written");
        let (mut message_ts, mut file_id) = (None, None);
        if let Some((channel, slack)) = &self.channel {
            let ts = slack
                .post(channel, &report::summary_text(&report), report::blocks(&report))
                .await
                .map_err(CostAnalyzerError::Slack)?;
            message_ts = Some(ts);
            let title = format!("Cost by model, last 30 days to {}", report.date);
            let png = crate::chart::render(&title, &report.daily_cost_by_model)
                .map_err(|e| CostAnalyzerError::Chart(e.to_string()))?;
            let filename = format!("cost-by-model-{}.png", report.date);
            file_id = Some(slack.upload_png(channel, &filename, &title, &png).await.map_err(CostAnalyzerError::Slack)?);
        }
        Ok(ReportOutcome { date, key, message_ts, file_id, report })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_report_day_is_the_day_before_the_schedule_fired() {
        let now = DateTime::parse_from_rfc3339("2026-06-02T09:00:00Z").unwrap().with_timezone(&Utc);
        let scheduled = json!({"source": "aws.events", "detail-type": "Scheduled Event", "time": "2026-03-01T01:00:00Z", "detail": {}});
        assert_eq!(report_date(&scheduled, now).unwrap().to_string(), "2026-02-28");
        assert_eq!(report_date(&json!({"source": "aws.events"}), now).unwrap().to_string(), "2026-06-01");
        assert_eq!(report_date(&json!({"report_date": "2026-01-05"}), now).unwrap().to_string(), "2026-01-05");
        let e = report_date(&json!({"report_date": "yesterday"}), now).unwrap_err().to_string();
        assert!(e.contains("report_date"), "{e}");
        assert_eq!(report_key(NaiveDate::from_ymd_opt(2026, 1, 5).unwrap()), "reports/daily/2026-01-05.json");
    }

    #[test]
    fn compaction_takes_the_two_days_before_unless_told() {
        let now = DateTime::parse_from_rfc3339("2026-06-02T01:30:00Z").unwrap().with_timezone(&Utc);
        let days = |e: Value| compaction_dates(&e, now).map(|d| d.iter().map(ToString::to_string).collect::<Vec<_>>());
        assert_eq!(days(json!({"task": "compact_events"})).unwrap(), ["2026-06-01", "2026-05-31"]);
        assert_eq!(days(json!({"task": "compact_events", "compact_dates": ["2026-01-05"]})).unwrap(), ["2026-01-05"]);
        for bad in
            [json!({"compact_dates": []}), json!({"compact_dates": "2026-01-05"}), json!({"compact_dates": ["Jan 5"]})]
        {
            let e = days(bad).unwrap_err().to_string();
            assert!(e.contains("compact_dates"), "{e}");
        }
    }
}
