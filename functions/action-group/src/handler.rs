//! The action-group handler: finds the operation (any event form), runs it, and answers in the
//! form it was asked in. Every failure becomes an answer the agent can relay: REPROMPT (HTTP 4xx
//! in the OpenAPI form) for the user's mistakes, FAILURE (5xx, 429) for outages and
//! misconfiguration, an error result on the AgentCore Gateway ([`gateway`]). Only a Classic
//! event that is not an action-group event at all is a Lambda error.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use lambda_runtime::Diagnostic;
use serde_json::{json, Value};
use shared::ports::{UsageHistory, UsageReader};
use shared::rollups::Spend;
use shared::telemetry::{Metrics, Unit};
use tracing::{info, warn};

use crate::events::gateway::GatewayContext;
use crate::events::{ActionGroupEvent, ActionGroupResponse};
use crate::jira::{cut, JiraClient, JiraCredentialSource, JiraError, JiraSite};
use crate::jql::{self, Projects, TicketQuery};
use crate::my_usage::{self, UsagePeriod};
use crate::outcome::{jira_outcome, search_answer};
pub use crate::outcome::{respond, Outcome};
use crate::routes::{self, Action, Matched};

mod gateway;
mod wiring;

pub use gateway::{Reply, GATEWAY_DRIFT, USAGE_REFUSED};

/// The time budget when the runtime gives no deadline (tests, local runs).
pub const DEFAULT_BUDGET: Duration = Duration::from_secs(25);
/// Kept back from the deadline to build and return the answer.
pub const DEADLINE_RESERVE: Duration = Duration::from_secs(1);
/// One Secrets Manager or DynamoDB read, at most.
const STORE_TIMEOUT: Duration = Duration::from_secs(5);
/// Tickets per search unless the agent asks for another number.
pub const DEFAULT_LIMIT: usize = 10;
/// Tickets per search at most: the answer must stay well inside Bedrock's response size.
pub const MAX_LIMIT: usize = 25;

/// The session attributes the Slack worker sets: the asking user's identity.
pub const USER_ATTRIBUTE: &str = "slack_user_id";
pub const TEAM_ATTRIBUTE: &str = "slack_team_id";

/// The handler and its long-lived dependencies.
pub struct Handler {
    /// Read on every invocation: a rotated token takes effect at once.
    pub jira_credentials: Arc<dyn JiraCredentialSource>,
    pub jira: JiraClient,
    /// JIRA_PROJECTS: every search and lookup is confined to these; `None` = Jira not set up.
    pub projects: Option<Projects>,
    /// Today's and this month's rollups.
    pub usage: Arc<dyn UsageReader>,
    /// Day rollups over a period.
    pub usage_history: Arc<dyn UsageHistory>,
    pub metrics: Metrics,
}

/// The one failure that is a Lambda error: Bedrock sent something that is not an action-group
/// event, so there is no form to answer in.
#[derive(Debug, thiserror::Error)]
pub enum ActionGroupError {
    #[error("malformed action-group event: {0}")]
    MalformedEvent(String),
}

impl From<ActionGroupError> for Diagnostic {
    fn from(e: ActionGroupError) -> Self {
        let error_type = match e {
            ActionGroupError::MalformedEvent(_) => "MalformedEvent",
        };
        Diagnostic { error_type: error_type.into(), error_message: e.to_string() }
    }
}

/// The arguments of one call by name, whatever the form carried them in (trimmed, never empty).
pub(crate) type Arguments = BTreeMap<String, String>;

/// Who is asking, from a source the model cannot write (the Classic session attributes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Asker<'a> {
    pub team: &'a str,
    pub user: &'a str,
}

/// What one call is, for its log line.
pub(crate) struct CallLog<'a> {
    /// `openapi`, `function` or `gateway`.
    pub form: &'static str,
    pub operation: String,
    /// The action group (Classic) or the gateway target id.
    pub group: &'a str,
}

impl Handler {
    /// Handles one invocation in any form: a gateway tool call when the Lambda client context
    /// names a tool (`gateway`), a Classic action-group event otherwise.
    pub async fn handle_invocation(
        &self,
        event: Value,
        gateway: Option<&GatewayContext>,
        deadline: Option<Instant>,
    ) -> Result<Reply, ActionGroupError> {
        match gateway {
            Some(context) => Ok(Reply::Tool(self.handle_tool_call(&event, context, deadline, Utc::now()).await)),
            None => self.handle(event, deadline).await.map(Reply::ActionGroup),
        }
    }

    /// Handles one raw Classic action-group event. `deadline` is when the function times out.
    pub async fn handle(
        &self,
        event: Value,
        deadline: Option<Instant>,
    ) -> Result<ActionGroupResponse, ActionGroupError> {
        let event: ActionGroupEvent = serde_json::from_value(event).map_err(|e| {
            self.drift("action_group_event", "not a Bedrock action-group event");
            ActionGroupError::MalformedEvent(e.to_string())
        })?;
        Ok(self.handle_event(&event, deadline, Utc::now()).await)
    }

    /// Handles a parsed event as of `now` (dates of "my usage" are taken from it).
    pub async fn handle_event(
        &self,
        event: &ActionGroupEvent,
        deadline: Option<Instant>,
        now: DateTime<Utc>,
    ) -> ActionGroupResponse {
        let started = Instant::now();
        let work_deadline = work_deadline(deadline, started);
        let (action, outcome) = match routes::find(event) {
            Some(matched) => {
                let action = matched.route.action;
                let arguments = matched
                    .route
                    .parameters
                    .iter()
                    .filter_map(|p| parameter(event, &matched, p.name).map(|v| (p.name.to_string(), v.to_string())))
                    .collect();
                let asker = asker(event);
                (action.name(), self.run(action, &arguments, asker, work_deadline, now).await)
            }
            None => (
                "unknown",
                Outcome::failure(
                    404,
                    "UnknownOperation",
                    format!("This action group has no operation {}.", cut(&event.operation(), 80)),
                ),
            ),
        };
        let form = match event {
            ActionGroupEvent::Api(_) => "openapi",
            ActionGroupEvent::Function(_) => "function",
        };
        let call = CallLog { form, operation: event.operation(), group: &event.context().action_group };
        self.record(&call, action, &outcome, started);
        respond(event, outcome)
    }

    /// Runs one operation on its arguments. `asker` is who asks, when a trusted source says so.
    pub(crate) async fn run(
        &self,
        action: Action,
        arguments: &Arguments,
        asker: Option<Asker<'_>>,
        deadline: Instant,
        now: DateTime<Utc>,
    ) -> Outcome {
        let param = |name: &str| arguments.get(name).map(|v| v.trim()).filter(|v| !v.is_empty());
        match action {
            Action::SearchTickets => {
                let query = TicketQuery {
                    text: param("query").map(str::to_owned),
                    jql: param("jql").map(str::to_owned),
                    status: param("status").map(str::to_owned),
                };
                let limit = param("limit")
                    .and_then(|l| l.parse::<f64>().ok())
                    .filter(|l| l.is_finite())
                    .map(|l| (l as i64).clamp(1, MAX_LIMIT as i64) as usize)
                    .unwrap_or(DEFAULT_LIMIT);
                self.search_tickets(&query, limit, deadline).await
            }
            Action::GetTicket => self.get_ticket(param("key"), deadline).await,
            Action::MyUsage => {
                let today = now.date_naive();
                let period =
                    match my_usage::parse_period(param("period"), param("start_date"), param("end_date"), today) {
                        Ok(p) => p,
                        Err(message) => return Outcome::reprompt(400, "BadPeriod", message),
                    };
                self.my_usage(asker, period, now, deadline).await
            }
        }
    }

    /// The projects the bot may search, or the failure that says Jira is not set up.
    fn projects(&self) -> Result<&Projects, Outcome> {
        self.projects.as_ref().ok_or_else(|| {
            Outcome::failure(
                500,
                "JiraProjectsNotConfigured",
                "The bot's Jira search is not set up: an administrator needs to name the Jira projects it may search (the JiraProjects parameter).",
            )
        })
    }

    async fn search_tickets(&self, query: &TicketQuery, limit: usize, deadline: Instant) -> Outcome {
        let projects = match self.projects() {
            Ok(p) => p,
            Err(outcome) => return outcome,
        };
        let jql = match jql::build(query, projects) {
            Ok(jql) => jql,
            Err(e) => {
                let status = if matches!(e, jql::JqlError::ProjectNotAllowed { .. }) { 403 } else { 400 };
                return Outcome::reprompt(status, e.code(), e.to_string());
            }
        };
        let site = match self.site(deadline).await {
            Ok(site) => site,
            Err(outcome) => return outcome,
        };
        match self.jira.search(&site, &jql, limit, deadline).await {
            Ok(mut result) => {
                // The query is confined already; a ticket of another project here means Jira did
                // not apply it, and it is dropped rather than shown.
                let before = result.tickets.len();
                result.tickets.retain(|t| projects.contains_issue(&t.key));
                if result.tickets.len() < before {
                    warn!(dropped = before - result.tickets.len(), "jira returned tickets outside JIRA_PROJECTS");
                }
                Outcome::Answer(search_answer(&jql, result))
            }
            Err(e) => jira_outcome(e, None),
        }
    }

    async fn get_ticket(&self, key: Option<&str>, deadline: Instant) -> Outcome {
        let Some(raw) = key else {
            return Outcome::reprompt(400, "MissingKey", "Which ticket? Give me its key, like ITSUP-123.");
        };
        let Some(key) = normalize_key(raw) else {
            return Outcome::reprompt(
                400,
                "InvalidKey",
                format!("{:?} is not a Jira ticket key. Keys look like ITSUP-123.", cut(raw, 40)),
            );
        };
        let projects = match self.projects() {
            Ok(p) => p,
            Err(outcome) => return outcome,
        };
        // Refused without asking Jira: the bot's account may see more than its users should.
        if !projects.contains_issue(&key) {
            return Outcome::reprompt(
                403,
                "ProjectNotAllowed",
                format!(
                    "The bot may only look up tickets in the Jira projects {}; {key} is in another project.",
                    projects.listed()
                ),
            );
        }
        let site = match self.site(deadline).await {
            Ok(site) => site,
            Err(outcome) => return outcome,
        };
        match self.jira.issue(&site, &key, deadline).await {
            // Jira follows moved issues to their new key, which may be in another project.
            Ok(ticket) if !projects.contains_issue(&ticket.key) => {
                warn!("jira answered a lookup with a ticket outside JIRA_PROJECTS (a moved issue); not shown");
                jira_outcome(JiraError::NotFound { message: String::new() }, Some(&key))
            }
            Ok(ticket) => Outcome::Answer(json!(ticket)),
            Err(e) => jira_outcome(e, Some(&key)),
        }
    }

    /// The asking user's usage. The identity comes only from `asker` (the session attributes
    /// the Slack worker set, which the model cannot change), never from parameters: nobody can
    /// ask for someone else's spend.
    async fn my_usage(
        &self,
        asker: Option<Asker<'_>>,
        period: UsagePeriod,
        now: DateTime<Utc>,
        deadline: Instant,
    ) -> Outcome {
        let Some(Asker { team, user }) = asker else {
            return Outcome::reprompt(
                400,
                "NoIdentity",
                "I can't tell which Slack user is asking, so I can't look up usage. Usage questions work when asked in Slack.",
            );
        };
        let today = now.date_naive();
        let unavailable = |e: &dyn std::fmt::Display| {
            warn!(error = %e, "reading the usage rollups failed");
            Outcome::failure(
                503,
                "UsageUnavailable",
                "I couldn't read the usage records right now. Try again in a moment.",
            )
        };
        match period {
            UsagePeriod::Range { from, to } => {
                let days = match within(deadline, self.usage_history.days(team, user, from, to)).await {
                    Ok(Ok(days)) => days,
                    Ok(Err(e)) => return unavailable(&e),
                    Err(e) => return unavailable(&e),
                };
                let mut total = Spend::default();
                for (_, spend) in &days {
                    total += *spend;
                }
                let mut answer = my_usage::spend_json(&total);
                answer["from"] = json!(from.format("%Y-%m-%d").to_string());
                answer["to"] = json!(to.format("%Y-%m-%d").to_string());
                answer["days_with_usage"] = json!(days.len());
                answer["notes"] = json!(my_usage::notes(total.unpriced_tokens > 0));
                Outcome::Answer(answer)
            }
            _ => {
                let spend = match within(deadline, self.usage.user_spend(team, user, today)).await {
                    Ok(Ok(spend)) => spend,
                    Ok(Err(e)) => return unavailable(&e),
                    Err(e) => return unavailable(&e),
                };
                let mut answer = json!({ "as_of": now.format("%Y-%m-%dT%H:%M:%SZ").to_string() });
                let mut unpriced = false;
                if period != UsagePeriod::ThisMonth {
                    let mut day = my_usage::spend_json(&spend.day);
                    day["date"] = json!(today.format("%Y-%m-%d").to_string());
                    answer["today"] = day;
                    unpriced |= spend.day.unpriced_tokens > 0;
                }
                if period != UsagePeriod::Today {
                    let mut month = my_usage::spend_json(&spend.month);
                    month["month"] = json!(my_usage::month_label(today));
                    answer["this_month"] = month;
                    unpriced |= spend.month.unpriced_tokens > 0;
                }
                answer["notes"] = json!(my_usage::notes(unpriced));
                Outcome::Answer(answer)
            }
        }
    }

    /// The Jira site with this invocation's credentials, read now.
    async fn site(&self, deadline: Instant) -> Result<JiraSite, Outcome> {
        let credentials = match within(deadline, self.jira_credentials.load()).await {
            Ok(Ok(credentials)) => credentials,
            Ok(Err(e)) => {
                warn!(error = %e, "reading the Jira secret failed");
                return Err(Outcome::failure(
                    503,
                    "JiraSecretUnavailable",
                    "I couldn't read the bot's Jira credentials right now. Try again in a moment.",
                ));
            }
            Err(e) => {
                warn!(error = %e, "reading the Jira secret timed out");
                return Err(Outcome::failure(
                    504,
                    "JiraSecretUnavailable",
                    "I couldn't read the bot's Jira credentials in time. Try again in a moment.",
                ));
            }
        };
        JiraSite::new(&credentials).map_err(|e| jira_outcome(e, None))
    }

    /// A payload of an unexpected shape: counted (`SchemaDrift` by `EventType`) and logged by
    /// the kind of problem only, never with its content.
    pub(crate) fn drift(&self, event_type: &'static str, problem: &'static str) {
        self.metrics.count_with_total("SchemaDrift", 1.0, &[("EventType", event_type)]);
        warn!(event_type, problem, "unexpected invocation (schema drift); its content is not logged");
    }

    /// One log line and the EMF metrics of an invocation.
    fn record(&self, call: &CallLog<'_>, action: &'static str, outcome: &Outcome, started: Instant) {
        let latency_ms = started.elapsed().as_millis() as u64;
        let (status, code) = outcome.status_and_code();
        info!(
            action,
            form = call.form,
            operation = %call.operation,
            action_group = %call.group,
            outcome = outcome.kind(),
            status,
            error_code = code.unwrap_or_default(),
            latency_ms,
            "action group call"
        );
        self.metrics.record(&[("Action", action)]).put("ActionLatency", latency_ms as f64, Unit::Milliseconds).emit();
        if let Some(code) = code {
            self.metrics.count("ActionErrors", 1.0, &[("Action", action), ("ErrorCode", code)]);
        }
    }
}

/// Who asks, from the session attributes the Slack worker sets (`slack_team_id`,
/// `slack_user_id`): blank or missing is nobody.
fn asker(event: &ActionGroupEvent) -> Option<Asker<'_>> {
    let attributes = &event.context().session_attributes;
    let attribute = |k: &str| attributes.get(k).map(|v| v.trim()).filter(|v| !v.is_empty());
    Some(Asker { team: attribute(TEAM_ATTRIBUTE)?, user: attribute(USER_ATTRIBUTE)? })
}

/// When the work must be done: the Lambda deadline (or the default budget) less the reserve.
fn work_deadline(deadline: Option<Instant>, started: Instant) -> Instant {
    let deadline = deadline.unwrap_or(started + DEFAULT_BUDGET);
    deadline.checked_sub(DEADLINE_RESERVE).unwrap_or(deadline)
}

/// A parameter by name: path parameters of a concrete path first, then the event's; trimmed,
/// empty counts as absent.
fn parameter<'a>(event: &'a ActionGroupEvent, matched: &'a Matched, name: &str) -> Option<&'a str> {
    matched
        .path_parameters
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .or_else(|| event.parameter(name))
        .map(str::trim)
        .filter(|v| !v.is_empty())
}

/// A Jira issue key in canonical form (`ITSUP-123`), from a key in any case or a browse link.
pub fn normalize_key(raw: &str) -> Option<String> {
    let raw = raw.trim();
    let tail = raw.rsplit_once("/browse/").map_or(raw, |(_, k)| k);
    let candidate = tail.split(['?', '#', '/']).next()?.trim().to_ascii_uppercase();
    let (project, number) = candidate.split_once('-')?;
    let mut project_chars = project.chars();
    let project_ok = project_chars.next().is_some_and(|c| c.is_ascii_uppercase())
        && project_chars.all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
        && project.len() <= 32;
    let number_ok = !number.is_empty() && number.len() <= 12 && number.chars().all(|c| c.is_ascii_digit());
    (project_ok && number_ok).then_some(candidate)
}

/// `fut`, bounded by the deadline and by [`STORE_TIMEOUT`].
async fn within<F: Future>(deadline: Instant, fut: F) -> Result<F::Output, tokio::time::error::Elapsed> {
    let left = deadline.saturating_duration_since(Instant::now());
    tokio::time::timeout(left.min(STORE_TIMEOUT), fut).await
}

#[cfg(test)]
mod tests;
