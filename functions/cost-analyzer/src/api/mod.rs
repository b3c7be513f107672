//! The admin analytics API (Lambda Function URL, AWS_IAM auth): routes, parameter parsing, and
//! the answers, all from the rollups except popular queries (Athena). Every call is audited with
//! its IAM caller. Bad parameters get 400 with a message naming the parameter. The routes are
//! named once in [`ROUTES`], which `openapi/admin.json` must match (checked by a test).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use aws_lambda_events::event::lambda_function_urls::{LambdaFunctionUrlRequest, LambdaFunctionUrlResponse};
use aws_lambda_events::http;
use chrono::{DateTime, NaiveDate, Utc};
use futures::stream::{self, StreamExt, TryStreamExt};
use serde_json::{json, Value};

use crate::athena::{EventAnalytics, QueryError};
use crate::audit::{AuditEntry, AuditFilter, AuditLog};
use crate::report::{agent_lines, model_lines, round_usd, user_lines, Satisfaction, SpendView};
use shared::ports::RollupStore;
use shared::rollups::{DayRollups, Feedback, Spend};

mod routes;

pub use routes::*;

/// The API and what it reads.
pub struct AdminApi {
    pub rollups: Arc<dyn RollupStore>,
    pub analytics: Arc<dyn EventAnalytics>,
    pub audit: Arc<dyn AuditLog>,
    pub agent_names: BTreeMap<String, String>,
}

fn response(status: u16, body: &Value) -> LambdaFunctionUrlResponse {
    let mut headers = http::HeaderMap::new();
    headers.insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("application/json"));
    headers.insert(http::header::CACHE_CONTROL, http::HeaderValue::from_static("no-store"));
    let mut r = LambdaFunctionUrlResponse::default();
    r.status_code = i64::from(status);
    r.headers = headers;
    r.body = Some(body.to_string());
    r
}

impl AdminApi {
    /// Answers one Function URL request and audits it.
    pub async fn handle(&self, request: &LambdaFunctionUrlRequest, now: DateTime<Utc>) -> LambdaFunctionUrlResponse {
        let method = request.request_context.http.method.clone().unwrap_or_else(|| "GET".into());
        let path = request.raw_path.clone().or_else(|| request.request_context.http.path.clone()).unwrap_or_default();
        let Some(caller) = Caller::of(request) else {
            // The Function URL's AWS_IAM auth always sets the caller; without one, refuse.
            return response(403, &json!({ "message": "no IAM caller in the request context" }));
        };
        let matched = match_route(&method, &path);
        let (action_type, target) = match &matched {
            Some((route, p)) => (route.action_type, target_of(p)),
            None => ("unknown_route", None),
        };
        let result = match matched {
            None => Err(ApiError::not_found(format!("no operation {method} {path}"))),
            Some((route, path_params)) => {
                let mut values = request.query_string_parameters.clone();
                values.extend(path_params);
                match Params::new(route, &values) {
                    Ok(params) => self.dispatch(route, &params, now).await,
                    Err(e) => Err(e),
                }
            }
        };
        let (status, body) = match result {
            Ok(body) => (200, body),
            Err(e) => (e.status, json!({ "message": e.message })),
        };
        let entry = AuditEntry {
            timestamp: now.timestamp(),
            request_id: request.request_context.request_id.clone().unwrap_or_default(),
            user_id: caller.user_id.clone(),
            caller_arn: caller.arn.clone(),
            account_id: caller.account_id.clone(),
            action_type: action_type.to_string(),
            target,
            path: path.clone(),
            query: request.query_string_parameters.clone(),
            status,
        };
        if let Err(e) = self.audit.record(&entry).await {
            // An admin action that cannot be audited is not answered.
            tracing::error!(error = %e, action_type, "could not write the audit log");
            return response(503, &json!({ "message": "the audit log is unavailable; try again later" }));
        }
        tracing::info!(action_type, caller = %caller.arn, status, "admin API call");
        response(status, &body)
    }

    async fn dispatch(&self, route: &Route, p: &Params<'_>, now: DateTime<Utc>) -> Result<Value, ApiError> {
        match route.operation_id {
            "getCostSummary" => self.cost_summary(p.period(now)?).await,
            "listUsers" => {
                let limit = p.number("limit", 100, 1, 1000)? as usize;
                let include_all = p.flag("include_all")?;
                self.users(p.period(now)?, limit, include_all).await
            }
            "getUserCost" => self.user_cost(p.id("team_id")?, p.id("user_id")?, p.period(now)?).await,
            "listAgents" => {
                let include_unused = p.flag("include_unused")?;
                self.agents(p.period(now)?, include_unused).await
            }
            "getAgent" => self.agent(p.id("agent_id")?, p.period(now)?).await,
            "getPopularQueries" => {
                let agent = p.id("agent_id")?;
                let limit = p.number("limit", 20, 1, 100)? as u32;
                self.popular_queries(agent, p.period(now)?, limit).await
            }
            "getSatisfaction" => self.satisfaction(p.period(now)?).await,
            "listAuditLogs" => {
                let end_time = p.number("end_time", now.timestamp(), 0, 32_503_680_000)?;
                let start_time = p.number("start_time", end_time - 7 * 86_400, 0, 32_503_680_000)?;
                if start_time > end_time {
                    return Err(ApiError::bad("start_time must not be after end_time"));
                }
                if end_time - start_time > MAX_AUDIT_DAYS * 86_400 {
                    return Err(ApiError::bad(format!(
                        "start_time to end_time must span at most {MAX_AUDIT_DAYS} days"
                    )));
                }
                let filter = AuditFilter {
                    user_id: p.optional_id("user_id")?.map(str::to_string),
                    action_type: p.optional_id("action_type")?.map(str::to_string),
                    start_time,
                    end_time,
                    limit: p.number("limit", 100, 1, 1000)? as usize,
                };
                let entries = self.audit.list(&filter).await?;
                Ok(json!({ "count": entries.len(), "entries": entries }))
            }
            other => Err(ApiError::not_found(format!("operation {other} is not implemented"))),
        }
    }

    /// The day rollups of a period, read a few days at a time.
    async fn days(&self, period: Period) -> Result<BTreeMap<NaiveDate, DayRollups>, ApiError> {
        let rollups = &self.rollups;
        let days: Vec<(NaiveDate, DayRollups)> = stream::iter(period.days())
            .map(|d| async move { rollups.day(d).await.map(|r| (d, r)) })
            .buffered(READ_CONCURRENCY)
            .try_collect()
            .await?;
        Ok(days.into_iter().collect())
    }

    async fn cost_summary(&self, period: Period) -> Result<Value, ApiError> {
        let days = self.days(period).await?;
        let merged = merge(days.values());
        let by_day: Vec<Value> = days
            .iter()
            .map(|(d, r)| {
                let t = r.total();
                json!({ "date": d.format("%Y-%m-%d").to_string(), "cost_usd": round_usd(t.cost_usd), "turns": t.turns })
            })
            .collect();
        let users: BTreeSet<(&str, &str)> =
            days.values().flat_map(|d| d.users.iter().map(|u| (u.team_id.as_str(), u.user_id.as_str()))).collect();
        Ok(json!({
            "period": period.json(),
            "totals": SpendView::from(merged.total()),
            "unique_users": users.len(),
            "by_agent": agent_lines(&merged, &self.agent_names),
            "by_model": model_lines(&merged),
            "by_day": by_day,
        }))
    }

    async fn users(&self, period: Period, limit: usize, include_all: bool) -> Result<Value, ApiError> {
        let days = self.days(period).await?;
        let mut lines = user_lines(days.values());
        if include_all {
            let seen: BTreeSet<(String, String)> =
                lines.iter().map(|u| (u.team_id.clone(), u.user_id.clone())).collect();
            let mut idle: Vec<_> = self
                .rollups
                .known_users()
                .await?
                .into_iter()
                .filter(|u| !seen.contains(&(u.team_id.clone(), u.user_id.clone())))
                .map(|u| crate::report::UserLine {
                    team_id: u.team_id,
                    user_id: u.user_id,
                    spend: Spend::default().into(),
                })
                .collect();
            idle.sort_by(|a, b| (&a.team_id, &a.user_id).cmp(&(&b.team_id, &b.user_id)));
            lines.extend(idle);
        }
        let total = lines.len();
        lines.truncate(limit);
        Ok(json!({ "period": period.json(), "total_users": total, "truncated": total > limit, "users": lines }))
    }

    async fn user_cost(&self, team: &str, user: &str, period: Period) -> Result<Value, ApiError> {
        let usage = self.rollups.user_usage(team, user, period.from, period.to).await?;
        let days = self.rollups.user_days(team, user, period.from, period.to).await?;
        let mut by_agent: BTreeMap<&str, Spend> = BTreeMap::new();
        let mut by_model: BTreeMap<&str, Spend> = BTreeMap::new();
        for u in &usage {
            *by_agent.entry(&u.agent_id).or_default() += u.spend;
            *by_model.entry(&u.model).or_default() += u.spend;
        }
        let mut total = Spend::default();
        for (_, s) in &days {
            total += *s;
        }
        let sorted = |m: BTreeMap<&str, Spend>, key: &str| {
            let mut v: Vec<(String, SpendView)> = m.into_iter().map(|(k, s)| (k.to_string(), s.into())).collect();
            v.sort_by(|a, b| b.1.cost_usd.total_cmp(&a.1.cost_usd).then_with(|| a.0.cmp(&b.0)));
            v.into_iter()
                .map(|(k, s)| {
                    let mut o = serde_json::to_value(s).unwrap_or_default();
                    o[key] = json!(k);
                    o
                })
                .collect::<Vec<Value>>()
        };
        let by_day: Vec<Value> = days
            .iter()
            .map(|(d, s)| {
                let mut o = serde_json::to_value(SpendView::from(*s)).unwrap_or_default();
                o["date"] = json!(d.format("%Y-%m-%d").to_string());
                o
            })
            .collect();
        Ok(json!({
            "team_id": team,
            "user_id": user,
            "period": period.json(),
            "totals": SpendView::from(total),
            // turns here count the turns that used the agent or model.
            "by_agent": sorted(by_agent, "agent_id"),
            "by_model": sorted(by_model, "model"),
            "by_day": by_day,
        }))
    }

    async fn agents(&self, period: Period, include_unused: bool) -> Result<Value, ApiError> {
        let days = self.days(period).await?;
        let merged = merge(days.values());
        let mut lines = agent_lines(&merged, &self.agent_names);
        if include_unused {
            let mut known: BTreeSet<String> = self.rollups.known_agents().await?.into_iter().collect();
            known.extend(self.agent_names.keys().cloned());
            for agent in known {
                if !lines.iter().any(|l| l.agent_id == agent) {
                    let name = self.agent_names.get(&agent).cloned().unwrap_or_else(|| agent.clone());
                    lines.push(crate::report::AgentLine {
                        agent_id: agent,
                        name,
                        spend: Spend::default().into(),
                        unique_users: 0,
                    });
                }
            }
        }
        let agents: Vec<Value> = lines
            .iter()
            .map(|a| {
                json!({
                    "agent_id": a.agent_id,
                    "name": a.name,
                    "total_cost_usd": a.spend.cost_usd,
                    "turns": a.spend.turns,
                    "unique_users": a.unique_users,
                    "total_tokens": a.spend.total_tokens,
                })
            })
            .collect();
        Ok(json!({ "period": period.json(), "agents": agents }))
    }

    async fn agent(&self, agent: &str, period: Period) -> Result<Value, ApiError> {
        let days = self.days(period).await?;
        let mut total = Spend::default();
        let mut users: BTreeSet<(&str, &str)> = BTreeSet::new();
        let mut feedback = Feedback::default();
        let mut daily = Vec::new();
        for (d, r) in &days {
            let mut s = Spend::default();
            for h in r.hours.iter().filter(|h| h.agent_id == agent) {
                s += h.spend;
            }
            let day_users: BTreeSet<(&str, &str)> = r
                .users
                .iter()
                .filter(|u| u.agent_id == agent)
                .map(|u| (u.team_id.as_str(), u.user_id.as_str()))
                .collect();
            for (_, f) in r.feedback.iter().filter(|(a, _)| a == agent) {
                feedback += *f;
            }
            total += s;
            daily.push(json!({
                "date": d.format("%Y-%m-%d").to_string(),
                "queries": s.turns,
                "unique_users": day_users.len(),
                "cost_usd": round_usd(s.cost_usd),
            }));
            users.extend(day_users);
        }
        if total.turns == 0 && !self.agent_names.contains_key(agent) {
            let known = self.rollups.known_agents().await?;
            if !known.iter().any(|a| a == agent) {
                return Err(ApiError::not_found(format!("agent_id {agent:?} has never been used")));
            }
        }
        Ok(json!({
            "agent_id": agent,
            "name": self.agent_names.get(agent).map_or(agent, String::as_str),
            "period": period.json(),
            "query_count": total.turns,
            "unique_users": users.len(),
            "average_satisfaction": feedback.score().map(|s| (s * 1000.0).round() / 1000.0),
            "feedback_count": feedback.positive + feedback.negative,
            "total_cost_usd": round_usd(total.cost_usd),
            "total_tokens": SpendView::from(total).total_tokens,
            "daily": daily,
        }))
    }

    async fn popular_queries(&self, agent: &str, period: Period, limit: u32) -> Result<Value, ApiError> {
        match self.analytics.popular_queries(agent, period.from, period.to, limit).await {
            Ok(queries) => Ok(json!({ "agent_id": agent, "period": period.json(), "queries": queries })),
            Err(e @ QueryError::Timeout { .. }) => {
                tracing::warn!(error = %e, "popular queries timed out");
                Err(ApiError { status: 504, message: e.to_string() })
            }
            Err(e) => Err(ApiError::internal(&e)),
        }
    }

    async fn satisfaction(&self, period: Period) -> Result<Value, ApiError> {
        let days = self.days(period).await?;
        let mut total = Feedback::default();
        let mut by_agent: BTreeMap<&str, Feedback> = BTreeMap::new();
        let mut by_day = Vec::new();
        for (d, r) in &days {
            let mut day = Feedback::default();
            for (agent, f) in &r.feedback {
                day += *f;
                *by_agent.entry(agent).or_default() += *f;
            }
            total += day;
            by_day.push(json!({ "date": d.format("%Y-%m-%d").to_string(), "positive": day.positive, "negative": day.negative, "score": day.score() }));
        }
        let line = |f: Feedback| json!({ "positive": f.positive, "negative": f.negative, "score": Satisfaction::of(f).map(|s| s.score) });
        let agents: Vec<Value> = by_agent
            .into_iter()
            .map(|(a, f)| {
                let mut o = line(f);
                o["agent_id"] = json!(a);
                o
            })
            .collect();
        Ok(json!({ "period": period.json(), "totals": line(total), "by_agent": agents, "by_day": by_day }))
    }
}

/// The user or agent a request is about, for the audit log.
fn target_of(path_params: &HashMap<String, String>) -> Option<String> {
    match (path_params.get("team_id"), path_params.get("user_id"), path_params.get("agent_id")) {
        (Some(t), Some(u), _) => Some(format!("user:{t}/{u}")),
        (_, _, Some(a)) => Some(format!("agent:{a}")),
        _ => None,
    }
}

/// Several days' rollups as one (for period totals).
fn merge<'a>(days: impl IntoIterator<Item = &'a DayRollups>) -> DayRollups {
    let mut out = DayRollups::default();
    for d in days {
        out.models.extend(d.models.iter().cloned());
        out.hours.extend(d.hours.iter().cloned());
        out.users.extend(d.users.iter().cloned());
        out.feedback.extend(d.feedback.iter().cloned());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn routes_match_paths_and_decode_parameters() {
        let (r, p) = match_route("GET", "/admin/users/T1/U%201/cost").unwrap();
        assert_eq!(r.operation_id, "getUserCost");
        assert_eq!((p["team_id"].as_str(), p["user_id"].as_str()), ("T1", "U 1"));
        assert_eq!(match_route("GET", "/admin/agents/A1/").unwrap().0.operation_id, "getAgent");
        assert_eq!(match_route("GET", "/admin/agents/A1/popular-queries").unwrap().0.operation_id, "getPopularQueries");
        assert!(match_route("POST", "/admin/agents").is_none());
        assert!(match_route("GET", "/admin/users//cost").is_none());
        assert!(match_route("GET", "/admin/nothing").is_none());
        assert_eq!(percent_decode("a%2Fb%zz%4"), "a/b%zz%4");
        assert_eq!(percent_decode("%+1%-1%+f"), "%+1%-1%+f", "a sign is no hex digit");
    }

    #[test]
    fn bad_parameters_name_themselves() {
        let now = DateTime::parse_from_rfc3339("2026-05-10T12:00:00Z").unwrap().with_timezone(&Utc);
        let route = match_route("GET", "/admin/users").unwrap().0;
        let check = |pairs: &[(&str, &str)], needle: &str| {
            let v = params(pairs);
            let err = Params::new(route, &v).and_then(|p| {
                p.period(now)?;
                p.number("limit", 100, 1, 1000)?;
                p.flag("include_all")?;
                Ok(())
            });
            let e = err.expect_err("refused");
            assert_eq!(e.status, 400);
            assert!(e.message.contains(needle), "{} does not name {needle}", e.message);
        };
        check(&[("start", "2026-05-01")], "start");
        check(&[("end", "2026051099")], "end");
        check(&[("start", "2026051000"), ("end", "2026050100")], "start must not be after end");
        check(&[("start", "2024010100"), ("end", "2026010100")], "366 days");
        check(&[("limit", "1001")], "limit");
        check(&[("limit", "ten")], "limit");
        check(&[("include_all", "yes")], "include_all");
        check(&[("colour", "red")], "colour");
        let v = params(&[("start", "2026050123"), ("end", "2026050200")]);
        let period = Params::new(route, &v).unwrap().period(now).unwrap();
        assert_eq!(period.days().len(), 2);
        let v = params(&[]);
        let period = Params::new(route, &v).unwrap().period(now).unwrap();
        assert_eq!((period.from.to_string(), period.to.to_string()), ("2026-05-04".into(), "2026-05-10".into()));
    }
}

/// Property tests of routing, percent-decoding and parameter checks over generated requests
/// (issue 13). CI runs 256 cases per property; the long run:
/// `PROPTEST_CASES=100000 cargo test --workspace --lib api::properties`.
#[cfg(test)]
mod properties {
    use std::sync::Mutex;

    use async_trait::async_trait;
    use aws_lambda_events::event::lambda_function_urls::{
        LambdaFunctionUrlRequestContext, LambdaFunctionUrlRequestContextAuthorizerDescription,
        LambdaFunctionUrlRequestContextAuthorizerIamDescription, LambdaFunctionUrlRequestContextHttpDescription,
    };
    use proptest::prelude::*;

    use super::*;
    use crate::athena::PopularQuery;
    use shared::rollups::{KnownUser, UserUsage};

    fn config() -> ProptestConfig {
        let cases = std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(256);
        ProptestConfig { cases, failure_persistence: None, ..ProptestConfig::default() }
    }

    /// `s` percent-encoded: every byte but unreserved ones (or every byte), hex in either case.
    fn encode(s: &str, all: bool, lower: bool) -> String {
        s.bytes()
            .map(|b| {
                if !all && (b.is_ascii_alphanumeric() || b"-._~".contains(&b)) {
                    (b as char).to_string()
                } else if lower {
                    format!("%{b:02x}")
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect()
    }

    /// Text with many `%`, some hex digits and signs after them, and other scripts.
    fn percent_text() -> impl Strategy<Value = String> {
        prop::collection::vec(
            prop_oneof![
                "[%+\\-0-9a-fA-FgG/ ]",
                "[a-z0-9._~]{1,4}",
                "[é日🙂\u{0}\u{7f}]",
                "%[0-9a-fA-F]{2}",
                "%[+\\-][0-9a-fA-F]",
            ],
            0..24,
        )
        .prop_map(|pieces| pieces.concat())
    }

    /// Whether `s` holds a `%` followed by two hex digits.
    fn has_escape(s: &str) -> bool {
        s.as_bytes().windows(3).any(|w| w[0] == b'%' && w[1].is_ascii_hexdigit() && w[2].is_ascii_hexdigit())
    }

    /// A path segment: route words, ids, empty, dot segments, encoded slashes, unicode.
    fn segment() -> impl Strategy<Value = String> {
        prop_oneof![
            prop::sample::select(vec![
                "admin",
                "users",
                "agents",
                "cost",
                "popular-queries",
                "satisfaction",
                "audit-logs",
                "cost-summary",
                "",
                ".",
                "..",
                "%2F",
                "%2e%2e",
                "ADMIN",
                "Users",
                "admin%2Fusers",
                "{agent_id}",
                "%",
                "%zz",
            ])
            .prop_map(str::to_string),
            "[A-Za-z0-9_.:@-]{1,12}",
            "[^/?#]{1,8}",
        ]
    }

    fn path() -> impl Strategy<Value = String> {
        (prop::collection::vec(segment(), 0..7), any::<bool>(), any::<bool>()).prop_map(|(segments, lead, trail)| {
            let mut path = format!("{}{}", if lead { "/" } else { "" }, segments.join("/"));
            if trail {
                path.push('/');
            }
            path
        })
    }

    fn method() -> impl Strategy<Value = String> {
        prop_oneof![
            4 => Just("GET".to_string()),
            1 => prop::sample::select(vec!["get", "Get", "POST", "PUT", "DELETE", "HEAD", "OPTIONS", "PATCH", "", "G ET", "GET\n"]).prop_map(str::to_string),
        ]
    }

    /// Every parameter name any route takes.
    fn known_parameters() -> Vec<&'static str> {
        let mut names: Vec<&str> = ROUTES.iter().flat_map(|r| r.parameters.iter().copied()).collect();
        names.sort_unstable();
        names.dedup();
        names
    }

    fn parameter_name() -> impl Strategy<Value = String> {
        prop_oneof![
            4 => prop::sample::select(known_parameters()).prop_map(str::to_string),
            1 => prop::sample::select(vec!["colour", "START", "limit ", "", "team_id%20", "é"]).prop_map(str::to_string),
        ]
    }

    fn parameter_value() -> impl Strategy<Value = String> {
        prop_oneof![
            "20[0-9]{2}(0[1-9]|1[0-2])(0[1-9]|[12][0-9])([01][0-9]|2[0-3])",
            "[0-9]{10}",
            "-?[0-9]{1,4}",
            prop::sample::select(vec![
                "",
                " ",
                "true",
                "TRUE",
                "false",
                "yes",
                "0",
                "1000",
                "1001",
                "99999999999999999999",
                "+5",
                "ten",
                "2026-05-01",
                "0000010100",
                "9999123123",
                "2026022923",
                "2026013124",
                "U1",
                "A-1.b:c@d",
                "a/b",
                "x y",
                "日本",
                "%2F",
                "1e3",
                "32503680001",
            ])
            .prop_map(str::to_string),
            "[A-Za-z0-9_.:@-]{1,140}",
            ".{0,20}",
        ]
    }

    fn query() -> impl Strategy<Value = HashMap<String, String>> {
        prop::collection::hash_map(parameter_name(), parameter_value(), 0..5)
    }

    /// Rollups, analytics and an audit log with nothing in them; the audit log keeps what it is
    /// given.
    #[derive(Default)]
    struct Empty {
        audited: Mutex<Vec<AuditEntry>>,
    }

    #[async_trait]
    impl RollupStore for Empty {
        async fn day(&self, _: NaiveDate) -> shared::Result<DayRollups> {
            Ok(DayRollups::default())
        }
        async fn user_usage(&self, _: &str, _: &str, _: NaiveDate, _: NaiveDate) -> shared::Result<Vec<UserUsage>> {
            Ok(Vec::new())
        }
        async fn user_days(
            &self,
            _: &str,
            _: &str,
            _: NaiveDate,
            _: NaiveDate,
        ) -> shared::Result<Vec<(NaiveDate, Spend)>> {
            Ok(Vec::new())
        }
        async fn known_users(&self) -> shared::Result<Vec<KnownUser>> {
            Ok(Vec::new())
        }
        async fn known_agents(&self) -> shared::Result<Vec<String>> {
            Ok(Vec::new())
        }
    }

    #[async_trait]
    impl EventAnalytics for Empty {
        async fn popular_queries(
            &self,
            _: &str,
            _: NaiveDate,
            _: NaiveDate,
            _: u32,
        ) -> Result<Vec<PopularQuery>, QueryError> {
            Ok(Vec::new())
        }
    }

    #[async_trait]
    impl AuditLog for Empty {
        async fn record(&self, entry: &AuditEntry) -> shared::Result<()> {
            self.audited.lock().unwrap().push(entry.clone());
            Ok(())
        }
        async fn list(&self, _: &AuditFilter) -> shared::Result<Vec<AuditEntry>> {
            Ok(Vec::new())
        }
    }

    fn request(method: &str, path: &str, query: HashMap<String, String>) -> LambdaFunctionUrlRequest {
        let mut http = LambdaFunctionUrlRequestContextHttpDescription::default();
        http.method = Some(method.to_string());
        let mut iam = LambdaFunctionUrlRequestContextAuthorizerIamDescription::default();
        iam.user_arn = Some("arn:aws:iam::123456789012:user/admin".into());
        iam.user_id = Some("AIDAADMIN".into());
        let mut authorizer = LambdaFunctionUrlRequestContextAuthorizerDescription::default();
        authorizer.iam = Some(iam);
        let mut context = LambdaFunctionUrlRequestContext::default();
        context.http = http;
        context.authorizer = Some(authorizer);
        context.request_id = Some("req-1".into());
        let mut request = LambdaFunctionUrlRequest::default();
        request.raw_path = Some(path.to_string());
        request.query_string_parameters = query;
        request.request_context = context;
        request
    }

    /// Whether `path` fits `route`'s template as the router reads paths: trailing slashes
    /// dropped, literal segments equal, parameter segments not empty.
    fn fits(route: &Route, path: &str) -> bool {
        let segments: Vec<&str> = path.trim_end_matches('/').split('/').collect();
        let template: Vec<&str> = route.path.split('/').collect();
        segments.len() == template.len()
            && template.iter().zip(&segments).all(|(t, s)| if t.starts_with('{') { !s.is_empty() } else { t == s })
    }

    proptest! {
        #![proptest_config(config())]

        #[test]
        fn decoding_round_trips_encoded_text(s in any::<String>(), all in any::<bool>(), lower in any::<bool>()) {
            prop_assert_eq!(percent_decode(&encode(&s, all, lower)), s);
        }

        #[test]
        fn decoding_leaves_text_without_escapes_alone(s in percent_text()) {
            let decoded = percent_decode(&s);
            if !has_escape(&s) {
                prop_assert_eq!(&decoded, &s);
            }
            // Decoding never grows the text; text with no `%` is left alone.
            prop_assert!(decoded.len() <= s.len() * 3);
            if !s.contains('%') {
                prop_assert_eq!(decoded, s);
            }
        }

        #[test]
        fn a_path_routes_only_to_the_operation_it_names(method in method(), path in path()) {
            match match_route(&method, &path) {
                Some((route, params)) => {
                    prop_assert!(route.method.eq_ignore_ascii_case(&method));
                    prop_assert!(fits(route, &path), "{path} routed to {}", route.path);
                    // The path parameters, decoded, and nothing else.
                    let segments: Vec<&str> = path.trim_end_matches('/').split('/').collect();
                    let mut expected = HashMap::new();
                    for (t, s) in route.path.split('/').zip(&segments) {
                        if let Some(name) = t.strip_prefix('{').and_then(|t| t.strip_suffix('}')) {
                            expected.insert(name.to_string(), percent_decode(s));
                        }
                    }
                    prop_assert_eq!(params, expected);
                }
                None => {
                    let routes: Vec<&str> = ROUTES
                        .iter()
                        .filter(|r| r.method.eq_ignore_ascii_case(&method) && fits(r, &path))
                        .map(|r| r.operation_id)
                        .collect();
                    prop_assert!(routes.is_empty(), "{method} {path} fits {routes:?} but did not route");
                }
            }
        }

        #[test]
        fn every_route_takes_any_encoded_parameter(
            index in 0..ROUTES.len(),
            values in prop::collection::vec(".{1,40}", 3),
            all in any::<bool>(),
            trail in any::<bool>(),
        ) {
            let route = &ROUTES[index];
            let mut names = Vec::new();
            let mut path: String = route
                .path
                .split('/')
                .map(|t| match t.strip_prefix('{').and_then(|t| t.strip_suffix('}')) {
                    Some(name) => {
                        names.push(name);
                        encode(&values[names.len() - 1], all, false)
                    }
                    None => t.to_string(),
                })
                .collect::<Vec<_>>()
                .join("/");
            if trail {
                path.push('/');
            }
            let (matched, params) = match_route("GET", &path).expect("routes");
            prop_assert_eq!(matched.operation_id, route.operation_id);
            for (i, name) in names.iter().enumerate() {
                prop_assert_eq!(&params[*name], &values[i]);
            }
        }

        #[test]
        fn any_request_gets_an_answer_that_names_what_is_wrong(method in method(), path in path(), query in query(), valid in any::<bool>(), index in 0..ROUTES.len()) {
            // Half the requests go to a real route, so parameters get checked.
            let path = if valid { ROUTES[index].path.replace("{team_id}", "T1").replace("{user_id}", "U1").replace("{agent_id}", "A1") } else { path };
            let store = Arc::new(Empty::default());
            let api = AdminApi {
                rollups: store.clone(),
                analytics: store.clone(),
                audit: store.clone(),
                agent_names: BTreeMap::from([("A1".to_string(), "Agent one".to_string())]),
            };
            let now = DateTime::parse_from_rfc3339("2026-05-10T12:00:00Z").unwrap().with_timezone(&Utc);
            let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
            let response = runtime.block_on(api.handle(&request(&method, &path, query.clone()), now));
            let status = response.status_code;
            let body: Value = serde_json::from_str(response.body.as_deref().unwrap_or_default()).unwrap();
            let message = body["message"].as_str().unwrap_or_default().to_string();
            let matched = match_route(&method, &path);
            match &matched {
                None => prop_assert_eq!(status, 404, "{} {}: {}", method, path, message),
                Some((route, _)) => {
                    prop_assert!([200, 400, 404].contains(&status), "{status}: {message}");
                    if status == 400 {
                        let names: Vec<&str> = route.parameters.iter().copied().chain(query.keys().map(String::as_str)).collect();
                        prop_assert!(names.iter().any(|n| !n.is_empty() && message.contains(n)), "{message} names no parameter");
                    }
                    if status == 404 {
                        prop_assert!(message.contains("agent_id"), "{message}");
                    }
                }
            }
            // Every request is audited once, with its answer.
            let audited = store.audited.lock().unwrap();
            prop_assert_eq!(audited.len(), 1);
            prop_assert_eq!(i64::from(audited[0].status), status);
            let action = matched.map_or("unknown_route", |(r, _)| r.action_type);
            prop_assert_eq!(audited[0].action_type.as_str(), action);
        }
    }
}
