//! The admin API's routes and parameters: the route table (which `openapi/admin.json` must
//! match), path matching with percent-decoding, typed parameters whose errors name themselves,
//! the reporting period, and the IAM caller.

use std::collections::HashMap;

use aws_lambda_events::event::lambda_function_urls::LambdaFunctionUrlRequest;
use chrono::{DateTime, Duration, NaiveDate, NaiveDateTime, Utc};
use serde_json::{json, Value};

/// Longest period one request may cover.
pub const MAX_PERIOD_DAYS: i64 = 366;
/// Longest audit-log window one request may cover.
pub const MAX_AUDIT_DAYS: i64 = 90;
/// Day partitions read concurrently.
pub(super) const READ_CONCURRENCY: usize = 8;

/// One operation of the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    pub method: &'static str,
    /// Path template, `{name}` for a path parameter.
    pub path: &'static str,
    /// The OpenAPI operationId.
    pub operation_id: &'static str,
    /// What the audit log calls it.
    pub action_type: &'static str,
    /// Query and path parameters.
    pub parameters: &'static [&'static str],
}

/// Every operation of the API.
pub const ROUTES: &[Route] = &[
    Route {
        method: "GET",
        path: "/admin/cost-summary",
        operation_id: "getCostSummary",
        action_type: "view_cost_summary",
        parameters: &["start", "end"],
    },
    Route {
        method: "GET",
        path: "/admin/users",
        operation_id: "listUsers",
        action_type: "list_users",
        parameters: &["limit", "start", "end", "include_all"],
    },
    Route {
        method: "GET",
        path: "/admin/users/{team_id}/{user_id}/cost",
        operation_id: "getUserCost",
        action_type: "view_user",
        parameters: &["team_id", "user_id", "start", "end"],
    },
    Route {
        method: "GET",
        path: "/admin/agents",
        operation_id: "listAgents",
        action_type: "list_agents",
        parameters: &["start", "end", "include_unused"],
    },
    Route {
        method: "GET",
        path: "/admin/agents/{agent_id}",
        operation_id: "getAgent",
        action_type: "view_agent",
        parameters: &["agent_id", "start", "end"],
    },
    Route {
        method: "GET",
        path: "/admin/agents/{agent_id}/popular-queries",
        operation_id: "getPopularQueries",
        action_type: "view_popular_queries",
        parameters: &["agent_id", "start", "end", "limit"],
    },
    Route {
        method: "GET",
        path: "/admin/satisfaction",
        operation_id: "getSatisfaction",
        action_type: "view_satisfaction",
        parameters: &["start", "end"],
    },
    Route {
        method: "GET",
        path: "/admin/audit-logs",
        operation_id: "listAuditLogs",
        action_type: "view_audit_log",
        parameters: &["user_id", "action_type", "start_time", "end_time", "limit"],
    },
];

/// An answer other than 200.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    pub status: u16,
    pub message: String,
}

impl ApiError {
    pub(super) fn bad(message: impl Into<String>) -> ApiError {
        ApiError { status: 400, message: message.into() }
    }
    pub(super) fn not_found(message: impl Into<String>) -> ApiError {
        ApiError { status: 404, message: message.into() }
    }
    /// A dependency failed: logged in full, answered without internals.
    pub(super) fn internal(e: &dyn std::fmt::Display) -> ApiError {
        tracing::error!(error = %e, "admin API dependency failed");
        ApiError { status: 502, message: "a data source failed; try again later".into() }
    }
}

impl From<shared::Error> for ApiError {
    fn from(e: shared::Error) -> Self {
        ApiError::internal(&e)
    }
}

/// Finds the route of `method` + `path`, with its path parameters.
pub fn match_route(method: &str, path: &str) -> Option<(&'static Route, HashMap<String, String>)> {
    let segments: Vec<&str> = path.trim_end_matches('/').split('/').collect();
    ROUTES.iter().filter(|r| r.method.eq_ignore_ascii_case(method)).find_map(|r| {
        let template: Vec<&str> = r.path.split('/').collect();
        if template.len() != segments.len() {
            return None;
        }
        let mut params = HashMap::new();
        for (t, s) in template.iter().zip(&segments) {
            match t.strip_prefix('{').and_then(|t| t.strip_suffix('}')) {
                Some(name) if !s.is_empty() => {
                    params.insert(name.to_string(), percent_decode(s));
                }
                Some(_) => return None,
                None if t == s => {}
                None => return None,
            }
        }
        Some((r, params))
    })
}

/// `%XX` (two hex digits) as the byte it names; anything else as is, `+` included (a path
/// and this API's query values keep it); invalid UTF-8 replaced.
pub(super) fn percent_decode(s: &str) -> String {
    shared::encoding::percent_decode_str(s, shared::encoding::Plus::Literal)
}

/// A request's parameters (query and path), checked against the route.
pub struct Params<'a> {
    values: &'a HashMap<String, String>,
}

impl<'a> Params<'a> {
    /// Refuses parameters the route does not have.
    pub fn new(route: &Route, values: &'a HashMap<String, String>) -> Result<Params<'a>, ApiError> {
        let mut unknown: Vec<&String> = values.keys().filter(|k| !route.parameters.contains(&k.as_str())).collect();
        unknown.sort();
        if let Some(k) = unknown.first() {
            return Err(ApiError::bad(format!(
                "unknown parameter {k:?}; {} takes {}",
                route.path,
                route.parameters.join(", ")
            )));
        }
        Ok(Params { values })
    }

    pub(super) fn get(&self, name: &str) -> Option<&'a str> {
        self.values.get(name).map(|v| v.trim())
    }

    pub(super) fn text(&self, name: &str) -> Result<&'a str, ApiError> {
        self.get(name).filter(|v| !v.is_empty()).ok_or_else(|| ApiError::bad(format!("{name} is required")))
    }

    /// An id: 1-128 of letters, digits, `-`, `_`, `.`, `:`, `@`.
    pub(super) fn id(&self, name: &str) -> Result<&'a str, ApiError> {
        let v = self.text(name)?;
        let ok = v.len() <= 128 && v.chars().all(|c| c.is_ascii_alphanumeric() || "-_.:@".contains(c));
        if ok {
            Ok(v)
        } else {
            Err(ApiError::bad(format!("{name} must be 1-128 letters, digits or -_.:@")))
        }
    }

    pub(super) fn optional_id(&self, name: &str) -> Result<Option<&'a str>, ApiError> {
        match self.get(name) {
            None | Some("") => Ok(None),
            Some(_) => self.id(name).map(Some),
        }
    }

    pub(super) fn flag(&self, name: &str) -> Result<bool, ApiError> {
        match self.get(name).map(str::to_ascii_lowercase).as_deref() {
            None | Some("") | Some("false") => Ok(false),
            Some("true") => Ok(true),
            Some(_) => Err(ApiError::bad(format!("{name} must be true or false"))),
        }
    }

    pub(super) fn number(&self, name: &str, default: i64, min: i64, max: i64) -> Result<i64, ApiError> {
        match self.get(name) {
            None | Some("") => Ok(default),
            Some(v) => v
                .parse::<i64>()
                .ok()
                .filter(|n| (min..=max).contains(n))
                .ok_or_else(|| ApiError::bad(format!("{name} must be an integer from {min} to {max}, not {v:?}"))),
        }
    }

    /// `start` and `end` as YYYYMMDDHH (UTC); default the last 7 days through now. The rollups
    /// are daily: the days the hours fall on are read whole.
    pub(super) fn period(&self, now: DateTime<Utc>) -> Result<Period, ApiError> {
        let hour = |name: &str| -> Result<Option<NaiveDateTime>, ApiError> {
            match self.get(name) {
                None | Some("") => Ok(None),
                Some(v) => {
                    let parsed = (v.len() == 10 && v.bytes().all(|b| b.is_ascii_digit()))
                        .then(|| NaiveDateTime::parse_from_str(&format!("{v}0000"), "%Y%m%d%H%M%S").ok())
                        .flatten();
                    parsed.map(Some).ok_or_else(|| ApiError::bad(format!("{name} must be YYYYMMDDHH (UTC), not {v:?}")))
                }
            }
        };
        let end = hour("end")?.unwrap_or_else(|| now.naive_utc());
        let start = hour("start")?.unwrap_or(end - Duration::days(6));
        if start > end {
            return Err(ApiError::bad("start must not be after end"));
        }
        let (from, to) = (start.date(), end.date());
        if (to - from).num_days() >= MAX_PERIOD_DAYS {
            return Err(ApiError::bad(format!("start to end must span at most {MAX_PERIOD_DAYS} days")));
        }
        Ok(Period { from, to })
    }
}

/// Whole UTC days, inclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Period {
    pub from: NaiveDate,
    pub to: NaiveDate,
}

impl Period {
    pub(super) fn days(&self) -> Vec<NaiveDate> {
        self.from.iter_days().take_while(|d| *d <= self.to).collect()
    }

    pub(super) fn json(&self) -> Value {
        json!({ "start": self.from.format("%Y-%m-%d").to_string(), "end": self.to.format("%Y-%m-%d").to_string() })
    }
}

/// The IAM caller of a request (`requestContext.authorizer.iam`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub user_id: String,
    pub arn: String,
    pub account_id: String,
}

impl Caller {
    pub fn of(request: &LambdaFunctionUrlRequest) -> Option<Caller> {
        let iam = request.request_context.authorizer.as_ref()?.iam.as_ref()?;
        let arn = iam.user_arn.clone().unwrap_or_default();
        let user_id = iam.user_id.clone().or_else(|| iam.caller_id.clone()).unwrap_or_default();
        if arn.is_empty() && user_id.is_empty() {
            return None;
        }
        Some(Caller { user_id, arn, account_id: iam.account_id.clone().unwrap_or_default() })
    }
}
