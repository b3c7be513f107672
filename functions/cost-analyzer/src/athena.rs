//! Athena, for what the rollups cannot answer: the popular search queries of an agent, over the
//! analytics events' `search_queries`. A query runs in the configured workgroup (which enforces
//! the scan limit and the encrypted result location), is polled with a bounded wait (then stopped,
//! with an error that says so), and its result pages are read into rows by column name.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use aws_sdk_athena::types::{QueryExecutionContext, QueryExecutionState, ResultSet};
use chrono::NaiveDate;
use serde::Serialize;

/// One search query and how often the agent ran it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PopularQuery {
    pub query: String,
    pub searches: u64,
    pub users: u64,
}

/// Why an analytics query gave no answer.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    #[error("athena query {execution_id} did not finish within {waited_secs} s; it was stopped")]
    Timeout { execution_id: String, waited_secs: u64 },
    #[error("athena query {execution_id} {state}: {reason}")]
    Failed { execution_id: String, state: String, reason: String },
    #[error(transparent)]
    Aws(#[from] shared::Error),
}

/// Questions over the analytics events (port).
#[async_trait]
pub trait EventAnalytics: Send + Sync {
    /// The agent's most frequent knowledge-base searches between two UTC days (inclusive).
    async fn popular_queries(
        &self,
        agent_id: &str,
        from: NaiveDate,
        to: NaiveDate,
        limit: u32,
    ) -> Result<Vec<PopularQuery>, QueryError>;
}

/// The popular-queries SQL (Athena engine 3), parameters: agent id, first dt, last dt, first
/// day, last day. `dt` is the day Firehose delivered an event, which can be the day after the
/// event's own: the dt range is one day wider and the event's timestamp decides.
pub fn popular_queries_sql(events_table: &str, limit: u32) -> String {
    format!(
        "SELECT lower(trim(q)) AS search_query, count(*) AS searches, count(DISTINCT user_id) AS users \
         FROM {events_table} CROSS JOIN UNNEST(search_queries) AS t(q) \
         WHERE agent_id = ? AND dt BETWEEN ? AND ? AND substr(\"timestamp\", 1, 10) BETWEEN ? AND ? \
         AND trim(q) <> '' \
         GROUP BY lower(trim(q)) ORDER BY searches DESC, search_query LIMIT {limit}"
    )
}

/// A string literal for Athena's execution parameters.
pub fn sql_string(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

/// Runs queries with the Athena API.
#[derive(Debug, Clone)]
pub struct AthenaAnalytics {
    client: aws_sdk_athena::Client,
    workgroup: String,
    database: String,
    events_table: String,
    max_wait: Duration,
}

impl AthenaAnalytics {
    pub fn new(
        client: aws_sdk_athena::Client,
        workgroup: impl Into<String>,
        database: impl Into<String>,
        events_table: impl Into<String>,
        max_wait: Duration,
    ) -> Self {
        AthenaAnalytics {
            client,
            workgroup: workgroup.into(),
            database: database.into(),
            events_table: events_table.into(),
            max_wait,
        }
    }

    /// Runs `sql` with `parameters` and returns its rows by column name.
    pub async fn run(&self, sql: &str, parameters: Vec<String>) -> Result<Vec<HashMap<String, String>>, QueryError> {
        let id = self.start(sql, Some(parameters)).await?;
        self.wait(&id, self.max_wait).await?;
        let mut rows = Vec::new();
        let mut token: Option<String> = None;
        let mut first_page = true;
        loop {
            let page = self
                .client
                .get_query_results()
                .query_execution_id(&id)
                .set_next_token(token.take())
                .send()
                .await
                .map_err(|e| shared::Error::from_sdk("athena", "GetQueryResults", e))?;
            if let Some(set) = &page.result_set {
                rows.extend(rows_of(set, first_page));
            }
            first_page = false;
            match page.next_token {
                Some(t) if !t.is_empty() => token = Some(t),
                _ => return Ok(rows),
            }
        }
    }

    /// Runs a statement that returns no rows (`UNLOAD`), waiting at most `max_wait` for it;
    /// returns its execution id.
    pub async fn execute(&self, sql: &str, max_wait: Duration) -> Result<String, QueryError> {
        let id = self.start(sql, None).await?;
        self.wait(&id, max_wait).await?;
        Ok(id)
    }

    /// Starts `sql` in the workgroup and database; returns its execution id.
    async fn start(&self, sql: &str, parameters: Option<Vec<String>>) -> Result<String, QueryError> {
        let started = self
            .client
            .start_query_execution()
            .query_string(sql)
            .work_group(&self.workgroup)
            .query_execution_context(QueryExecutionContext::builder().database(&self.database).build())
            .set_execution_parameters(parameters)
            .send()
            .await
            .map_err(|e| shared::Error::from_sdk("athena", "StartQueryExecution", e))?;
        Ok(started.query_execution_id.unwrap_or_default())
    }

    /// The Glue database and the events table, as a qualified Athena name.
    pub fn qualified_events_table(&self) -> String {
        format!("\"{}\".\"{}\"", self.database.replace('"', "\"\""), self.events_table.replace('"', "\"\""))
    }

    /// Polls until the query finished, at most `max_wait`; a query still running is stopped.
    async fn wait(&self, id: &str, max_wait: Duration) -> Result<(), QueryError> {
        let started = Instant::now();
        let mut delay = Duration::from_millis(100);
        loop {
            let out = self
                .client
                .get_query_execution()
                .query_execution_id(id)
                .send()
                .await
                .map_err(|e| shared::Error::from_sdk("athena", "GetQueryExecution", e))?;
            let status = out.query_execution.and_then(|q| q.status);
            let state = status.as_ref().and_then(|s| s.state.clone());
            match state {
                Some(QueryExecutionState::Succeeded) => return Ok(()),
                Some(s @ (QueryExecutionState::Failed | QueryExecutionState::Cancelled)) => {
                    let reason = status.and_then(|s| s.state_change_reason).unwrap_or_default();
                    return Err(QueryError::Failed {
                        execution_id: id.into(),
                        state: s.as_str().to_lowercase(),
                        reason,
                    });
                }
                _ => {}
            }
            if started.elapsed() + delay > max_wait {
                if let Err(e) = self.client.stop_query_execution().query_execution_id(id).send().await {
                    tracing::warn!(execution_id = %id, error = %shared::Error::from_sdk("athena", "StopQueryExecution", e), "could not stop a query past its wait");
                }
                return Err(QueryError::Timeout { execution_id: id.into(), waited_secs: max_wait.as_secs() });
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(1));
        }
    }
}

/// The rows of a result page by column name. The first page of a SELECT starts with a row of
/// the column names, which is dropped.
pub fn rows_of(set: &ResultSet, first_page: bool) -> Vec<HashMap<String, String>> {
    let columns: Vec<String> = set
        .result_set_metadata
        .as_ref()
        .map(|m| m.column_info().iter().map(|c| c.name().to_string()).collect())
        .unwrap_or_default();
    let values = |row: &aws_sdk_athena::types::Row| -> Vec<Option<String>> {
        row.data().iter().map(|d| d.var_char_value.clone()).collect()
    };
    let mut rows = set.rows();
    if first_page {
        if let Some(first) = rows.first() {
            let header: Vec<Option<String>> = columns.iter().cloned().map(Some).collect();
            if values(first) == header {
                rows = &rows[1..];
            }
        }
    }
    rows.iter()
        .map(|row| {
            columns
                .iter()
                .zip(values(row))
                .filter_map(|(c, v)| v.map(|v| (c.clone(), v)))
                .collect::<HashMap<String, String>>()
        })
        .collect()
}

#[async_trait]
impl EventAnalytics for AthenaAnalytics {
    async fn popular_queries(
        &self,
        agent_id: &str,
        from: NaiveDate,
        to: NaiveDate,
        limit: u32,
    ) -> Result<Vec<PopularQuery>, QueryError> {
        let day = |d: NaiveDate| sql_string(&d.format("%Y-%m-%d").to_string());
        let last_dt = to.succ_opt().unwrap_or(to);
        let parameters = vec![sql_string(agent_id), day(from), day(last_dt), day(from), day(to)];
        let rows = self.run(&popular_queries_sql(&self.events_table, limit), parameters).await?;
        Ok(rows
            .into_iter()
            .filter_map(|r| {
                let num = |k: &str| r.get(k).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
                Some(PopularQuery {
                    query: r.get("search_query")?.clone(),
                    searches: num("searches"),
                    users: num("users"),
                })
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use aws_sdk_athena::types::{ColumnInfo, Datum, ResultSetMetadata, Row};

    use super::*;

    fn row(values: &[Option<&str>]) -> Row {
        Row::builder()
            .set_data(Some(
                values.iter().map(|v| Datum::builder().set_var_char_value(v.map(str::to_string)).build()).collect(),
            ))
            .build()
    }

    fn page(rows: Vec<Row>) -> ResultSet {
        let column = |n: &str| ColumnInfo::builder().name(n).r#type("varchar").build().unwrap();
        ResultSet::builder()
            .result_set_metadata(
                ResultSetMetadata::builder()
                    .column_info(column("search_query"))
                    .column_info(column("searches"))
                    .column_info(column("users"))
                    .build(),
            )
            .set_rows(Some(rows))
            .build()
    }

    #[test]
    fn result_pages_are_read_by_column_and_the_header_row_dropped() {
        let first = page(vec![
            row(&[Some("search_query"), Some("searches"), Some("users")]),
            row(&[Some("vpn setup"), Some("12"), Some("5")]),
            row(&[Some("reset password"), Some("7"), None]),
        ]);
        let rows = rows_of(&first, true);
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0]["search_query"], "vpn setup");
        assert_eq!(rows[0]["searches"], "12");
        assert!(!rows[1].contains_key("users"), "NULL stays absent");
        // A later page has no header row, even when a value looks like one.
        let next = page(vec![row(&[Some("search_query"), Some("1"), Some("1")])]);
        assert_eq!(rows_of(&next, false).len(), 1);
        assert!(rows_of(&page(vec![]), true).is_empty());
    }

    #[test]
    fn parameters_are_quoted_literals() {
        assert_eq!(sql_string("AGENT1"), "'AGENT1'");
        assert_eq!(sql_string("o'hara"), "'o''hara'");
        let sql = popular_queries_sql("events", 25);
        assert!(sql.contains("FROM events CROSS JOIN UNNEST(search_queries)"), "{sql}");
        assert!(sql.ends_with("LIMIT 25"), "{sql}");
        assert_eq!(sql.matches('?').count(), 5);
    }
}
