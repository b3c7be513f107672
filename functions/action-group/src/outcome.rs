//! What an operation came to ([`Outcome`]) and how it is answered in the event's own form: the
//! agent reads an answer, re-prompts on the user's mistakes, and fails the turn on outages; Jira's
//! failures become messages it can relay, and a search answer fits the response size.

use serde_json::{json, Value};
use tracing::warn;

use crate::events::{ActionGroupEvent, ActionGroupResponse, ResponseState};
use crate::jira::{JiraError, SearchResult};

/// Bodies are kept under this many bytes: Bedrock refuses action-group responses over 25 KB, and
/// the body travels as an escaped JSON string inside the response.
pub(crate) const MAX_BODY_BYTES: usize = 18_000;

/// What an operation came to, before it is put in the event's form.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Success: the JSON the agent reads.
    Answer(Value),
    /// The user's mistake: the model re-prompts with `message`.
    Reprompt { status: u16, code: &'static str, message: String },
    /// An outage or misconfiguration: the turn fails, `message` says why.
    Failure { status: u16, code: &'static str, message: String },
}

impl Outcome {
    pub(crate) fn reprompt(status: u16, code: &'static str, message: impl Into<String>) -> Self {
        Outcome::Reprompt { status, code, message: message.into() }
    }

    pub(crate) fn failure(status: u16, code: &'static str, message: impl Into<String>) -> Self {
        Outcome::Failure { status, code, message: message.into() }
    }

    pub(crate) fn kind(&self) -> &'static str {
        match self {
            Outcome::Answer(_) => "answer",
            Outcome::Reprompt { .. } => "reprompt",
            Outcome::Failure { .. } => "failure",
        }
    }

    pub(crate) fn status_and_code(&self) -> (u16, Option<&'static str>) {
        match self {
            Outcome::Answer(_) => (200, None),
            Outcome::Reprompt { status, code, .. } | Outcome::Failure { status, code, .. } => (*status, Some(code)),
        }
    }
}

/// Puts an outcome in the event's form.
pub fn respond(event: &ActionGroupEvent, outcome: Outcome) -> ActionGroupResponse {
    match (event, outcome) {
        (ActionGroupEvent::Api(e), Outcome::Answer(body)) => e.respond(200, body.to_string()),
        (
            ActionGroupEvent::Api(e),
            Outcome::Reprompt { status, message, .. } | Outcome::Failure { status, message, .. },
        ) => e.respond(status, json!({ "error": message }).to_string()),
        (ActionGroupEvent::Function(e), Outcome::Answer(body)) => e.respond(None, body.to_string()),
        (ActionGroupEvent::Function(e), Outcome::Reprompt { message, .. }) => {
            e.respond(Some(ResponseState::Reprompt), message)
        }
        (ActionGroupEvent::Function(e), Outcome::Failure { message, .. }) => {
            e.respond(Some(ResponseState::Failure), message)
        }
    }
}

/// What to tell the agent about a Jira failure. `key` is the ticket asked for, if any.
pub(crate) fn jira_outcome(e: JiraError, key: Option<&str>) -> Outcome {
    warn!(error = %e, code = e.code(), "jira call failed");
    let code = e.code();
    match e {
        JiraError::NotConfigured(_) => Outcome::failure(
            500,
            code,
            "The bot's Jira connection is not set up: an administrator needs to put the Jira site URL, email and API token in the bot's Jira secret.",
        ),
        JiraError::Rejected { status } => Outcome::failure(
            502,
            code,
            format!("Jira rejected the bot's credentials (HTTP {status}). An administrator needs to check the Jira email and API token in the bot's secret."),
        ),
        JiraError::NotFound { message } => match key {
            Some(key) => Outcome::reprompt(
                404,
                code,
                format!("There is no Jira ticket {key}, or the bot is not allowed to see it. Check the key and try again."),
            ),
            None => Outcome::reprompt(404, code, format!("Jira could not find that: {message}")),
        },
        JiraError::BadRequest { message } if message.is_empty() => {
            Outcome::reprompt(400, code, "Jira refused that search. Check the query and try again.")
        }
        JiraError::BadRequest { message } => Outcome::reprompt(
            400,
            code,
            format!("Jira could not run that search: {message} Fix the query and try again."),
        ),
        JiraError::RateLimited { retry_after } => Outcome::failure(
            429,
            code,
            format!(
                "Jira is rate-limiting the bot right now. Try again in about {} seconds.",
                retry_after.as_secs().max(1)
            ),
        ),
        JiraError::Unavailable { status } => Outcome::failure(
            503,
            code,
            format!("Jira is having problems right now (HTTP {status}). Try again in a few minutes."),
        ),
        JiraError::Timeout => Outcome::failure(504, code, "Jira did not answer in time. Try again in a moment."),
        JiraError::Unreachable(_) => {
            Outcome::failure(502, code, "The bot could not reach Jira. Try again in a few minutes.")
        }
        JiraError::Unexpected { status, .. } => Outcome::failure(
            502,
            code,
            format!("Jira sent an answer the bot did not understand (HTTP {status})."),
        ),
    }
}

/// The search answer, cut to fit the response size.
pub(crate) fn search_answer(jql: &str, result: SearchResult) -> Value {
    let SearchResult { mut tickets, mut more } = result;
    loop {
        let mut answer = json!({ "jql": jql, "count": tickets.len(), "more": more, "tickets": tickets });
        if tickets.is_empty() {
            answer["message"] = json!("No tickets match this search.");
        }
        if answer.to_string().len() <= MAX_BODY_BYTES || tickets.len() <= 1 {
            return answer;
        }
        tickets.pop();
        more = true;
    }
}
