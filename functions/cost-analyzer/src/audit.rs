//! The audit log of admin actions (AUDIT_TABLE): one item per admin API call, partitioned by UTC
//! day (`DAY#{YYYY-MM-DD}`) and sorted by time (`{epoch_ms}#{request_id}`), so a time window is
//! one Query per day and never a scan.

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;
use shared::{Error, Result};

/// How long audit items are kept (TTL attribute `expires_at`).
const RETENTION_SECS: i64 = 400 * 24 * 3600;

/// One admin action.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AuditEntry {
    /// Epoch seconds.
    pub timestamp: i64,
    pub request_id: String,
    /// The IAM caller's user id (`requestContext.authorizer.iam.userId`).
    pub user_id: String,
    /// The IAM caller's ARN.
    pub caller_arn: String,
    pub account_id: String,
    /// The operation, e.g. `view_user`.
    pub action_type: String,
    /// The user or agent acted on, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    pub path: String,
    pub query: HashMap<String, String>,
    pub status: u16,
}

/// Which audit entries to list.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditFilter {
    pub user_id: Option<String>,
    pub action_type: Option<String>,
    /// Epoch seconds, inclusive.
    pub start_time: i64,
    pub end_time: i64,
    pub limit: usize,
}

/// The audit log (port).
#[async_trait]
pub trait AuditLog: Send + Sync {
    async fn record(&self, entry: &AuditEntry) -> Result<()>;
    /// Matching entries, newest first, at most `filter.limit`.
    async fn list(&self, filter: &AuditFilter) -> Result<Vec<AuditEntry>>;
}

/// [`AuditLog`] in a DynamoDB table with keys `pk` and `sk`.
#[derive(Debug, Clone)]
pub struct DynamoDbAuditLog {
    client: aws_sdk_dynamodb::Client,
    table: String,
}

impl DynamoDbAuditLog {
    pub fn new(client: aws_sdk_dynamodb::Client, table: impl Into<String>) -> Self {
        DynamoDbAuditLog { client, table: table.into() }
    }
}

fn day_of(epoch_secs: i64) -> NaiveDate {
    DateTime::<Utc>::from_timestamp(epoch_secs, 0).unwrap_or_default().date_naive()
}

fn pk(day: NaiveDate) -> String {
    format!("DAY#{}", day.format("%Y-%m-%d"))
}

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn to_item(e: &AuditEntry) -> HashMap<String, AttributeValue> {
    let mut item = HashMap::from([
        ("pk".to_string(), s(pk(day_of(e.timestamp)))),
        ("sk".to_string(), s(format!("{:013}#{}", e.timestamp * 1000, e.request_id))),
        ("timestamp".to_string(), AttributeValue::N(e.timestamp.to_string())),
        ("request_id".to_string(), s(&e.request_id)),
        ("user_id".to_string(), s(&e.user_id)),
        ("caller_arn".to_string(), s(&e.caller_arn)),
        ("account_id".to_string(), s(&e.account_id)),
        ("action_type".to_string(), s(&e.action_type)),
        ("path".to_string(), s(&e.path)),
        ("query".to_string(), AttributeValue::M(e.query.iter().map(|(k, v)| (k.clone(), s(v))).collect())),
        ("status".to_string(), AttributeValue::N(e.status.to_string())),
        ("expires_at".to_string(), AttributeValue::N((e.timestamp + RETENTION_SECS).to_string())),
    ]);
    if let Some(t) = &e.target {
        item.insert("target".into(), s(t));
    }
    item
}

fn from_item(item: &HashMap<String, AttributeValue>) -> AuditEntry {
    let get = |k: &str| item.get(k).and_then(|v| v.as_s().ok()).cloned().unwrap_or_default();
    let num = |k: &str| item.get(k).and_then(|v| v.as_n().ok()).and_then(|n| n.parse::<i64>().ok()).unwrap_or(0);
    AuditEntry {
        timestamp: num("timestamp"),
        request_id: get("request_id"),
        user_id: get("user_id"),
        caller_arn: get("caller_arn"),
        account_id: get("account_id"),
        action_type: get("action_type"),
        target: item.get("target").and_then(|v| v.as_s().ok()).cloned(),
        path: get("path"),
        query: item
            .get("query")
            .and_then(|v| v.as_m().ok())
            .map(|m| m.iter().filter_map(|(k, v)| Some((k.clone(), v.as_s().ok()?.clone()))).collect())
            .unwrap_or_default(),
        status: u16::try_from(num("status")).unwrap_or(0),
    }
}

#[async_trait]
impl AuditLog for DynamoDbAuditLog {
    async fn record(&self, entry: &AuditEntry) -> Result<()> {
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(to_item(entry)))
            .send()
            .await
            .map_err(|e| Error::from_sdk("dynamodb", "PutItem", e))?;
        Ok(())
    }

    async fn list(&self, f: &AuditFilter) -> Result<Vec<AuditEntry>> {
        let mut out = Vec::new();
        let (first, mut day) = (day_of(f.start_time), day_of(f.end_time));
        let from = format!("{:013}", f.start_time * 1000);
        // Through the end second's last millisecond; `~` sorts after the request id.
        let to = format!("{:013}~", f.end_time * 1000 + 999);
        while day >= first && out.len() < f.limit {
            let mut filters = Vec::new();
            let mut q = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("pk = :pk AND sk BETWEEN :from AND :to")
                .expression_attribute_values(":pk", s(pk(day)))
                .expression_attribute_values(":from", s(&from))
                .expression_attribute_values(":to", s(&to))
                .scan_index_forward(false);
            if let Some(u) = &f.user_id {
                filters.push("user_id = :user");
                q = q.expression_attribute_values(":user", s(u));
            }
            if let Some(a) = &f.action_type {
                filters.push("action_type = :action");
                q = q.expression_attribute_values(":action", s(a));
            }
            if !filters.is_empty() {
                q = q.filter_expression(filters.join(" AND "));
            }
            shared::aws::query_pages(q, |items| {
                out.extend(items.iter().map(from_item));
                out.len() < f.limit
            })
            .await?;
            match day.pred_opt() {
                Some(d) => day = d,
                None => break,
            }
        }
        out.truncate(f.limit);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_round_trip_and_sort_by_time() {
        let e = AuditEntry {
            timestamp: 1_767_225_600,
            request_id: "r-1".into(),
            user_id: "AIDAEXAMPLE".into(),
            caller_arn: "arn:aws:iam::123456789012:user/admin".into(),
            account_id: "123456789012".into(),
            action_type: "view_user".into(),
            target: Some("T1/U1".into()),
            path: "/admin/users/T1/U1".into(),
            query: HashMap::from([("start".to_string(), "2026010100".to_string())]),
            status: 200,
        };
        let item = to_item(&e);
        assert_eq!(item["pk"].as_s().unwrap(), "DAY#2026-01-01");
        assert_eq!(item["sk"].as_s().unwrap(), "1767225600000#r-1");
        assert_eq!(from_item(&item), e);
    }
}
