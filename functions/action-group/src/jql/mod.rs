//! Builds the JQL of a ticket search from what the agent passed: free text, a JQL query and a
//! status, each optional, always confined to the projects the bot may search (JIRA_PROJECTS).
//!
//! Every query sent to Jira has the form `project IN (A, B) AND (<user JQL>) AND ... ORDER BY ...`.
//! The agent's JQL (so any Slack user's text) is not trusted: it is tokenized and parsed here, a
//! query that is not a well-formed filter is refused, a `project` clause naming a project outside
//! the list is refused, and what Jira receives is re-written from the parsed query (strings
//! re-quoted, only known tokens), so Jira parses exactly what was checked and the confinement is
//! always a top-level AND conjunct that the user part cannot undo. Free text and the status only
//! ever land inside quoted JQL strings.

mod parse;
mod query;
mod tokens;

pub use parse::parse;
pub use query::{Clause, Expr, Query, SortKey};
pub use tokens::{tokenize, Token};

use query::sort_jql;
use tokens::cut_chars;

/// Free text beyond this is cut (Jira's text search gains nothing from essays).
pub const MAX_TEXT_CHARS: usize = 200;
/// A JQL query beyond this is refused.
pub const MAX_JQL_CHARS: usize = 2000;
/// Nesting beyond this is refused (keeps the parser's recursion bounded).
const MAX_DEPTH: usize = 32;
/// The order when the query gives none: most recently updated first.
const DEFAULT_ORDER: &str = "ORDER BY updated DESC";

/// Characters with a meaning in Jira's text search (Lucene syntax), plus the quote and the
/// backslash of JQL strings. Replaced by spaces: searching "VPN-disconnect" for "VPN disconnect"
/// finds what the user meant.
const TEXT_SEARCH_SPECIALS: &[char] =
    &['+', '-', '&', '|', '!', '(', ')', '{', '}', '[', ']', '^', '~', '*', '?', '\\', ':', '"', '/'];

/// Words with a meaning in JQL's structure (never a field name unless quoted).
const KEYWORDS: &[&str] = &[
    "and", "or", "not", "in", "is", "was", "changed", "empty", "null", "order", "by", "asc", "desc", "after", "before",
    "during", "on", "from", "to",
];
/// Words that start a predicate of `WAS` / `CHANGED` (history searches).
const PREDICATES: &[&str] = &["after", "before", "during", "on", "by", "from", "to"];

/// Why no JQL could be built: the user's (the agent's) to fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JqlError {
    #[error("Tell me what to search for: some words, a status, or a JQL query.")]
    Empty,
    #[error("That JQL query is too long (at most {MAX_JQL_CHARS} characters).")]
    TooLong,
    /// The query is not a JQL filter this action group accepts; the message says where.
    #[error("That JQL query can't be used: {0} Write a filter such as `priority = High AND text ~ \"vpn\"`, optionally followed by ORDER BY.")]
    Invalid(String),
    /// A `project` clause names a project outside JIRA_PROJECTS.
    #[error("The bot may only search the Jira projects {allowed}; {named} is not one of them.")]
    ProjectNotAllowed { named: String, allowed: String },
}

impl JqlError {
    /// A short, stable code for metrics and logs.
    pub fn code(&self) -> &'static str {
        match self {
            JqlError::Empty => "EmptySearch",
            JqlError::TooLong => "JqlTooLong",
            JqlError::Invalid(_) => "InvalidJql",
            JqlError::ProjectNotAllowed { .. } => "ProjectNotAllowed",
        }
    }
}

fn invalid(message: impl Into<String>) -> JqlError {
    JqlError::Invalid(message.into())
}

/// The Jira projects the bot may search (JIRA_PROJECTS): validated keys, upper case, in order,
/// never empty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Projects(Vec<String>);

impl Projects {
    /// Parses a comma-separated list of project keys. `Ok(None)` when the list is blank (Jira
    /// search not set up); an error, naming the bad key, when any key is not a Jira project key.
    pub fn parse(list: &str) -> Result<Option<Projects>, String> {
        let mut keys: Vec<String> = Vec::new();
        for raw in list.split(',').map(str::trim).filter(|k| !k.is_empty()) {
            let key = raw.to_ascii_uppercase();
            let mut chars = key.chars();
            let well_formed = chars.next().is_some_and(|c| c.is_ascii_uppercase())
                && chars.all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
                && key.len() <= 64;
            if !well_formed {
                return Err(format!(
                    "{raw:?} is not a Jira project key (a letter, then letters, digits or _, e.g. ITSUP)"
                ));
            }
            if KEYWORDS.contains(&key.to_ascii_lowercase().as_str()) {
                return Err(format!("{raw:?} is a JQL keyword, not a Jira project key"));
            }
            if !keys.contains(&key) {
                keys.push(key);
            }
        }
        Ok((!keys.is_empty()).then_some(Projects(keys)))
    }

    /// The keys, upper case.
    pub fn keys(&self) -> &[String] {
        &self.0
    }

    /// Whether `key` (any case) is one of the projects.
    pub fn contains(&self, key: &str) -> bool {
        self.0.iter().any(|k| k.eq_ignore_ascii_case(key))
    }

    /// Whether the issue `ISSUE-123` belongs to one of the projects.
    pub fn contains_issue(&self, issue_key: &str) -> bool {
        issue_key.rsplit_once('-').is_some_and(|(project, _)| self.contains(project))
    }

    /// The confinement clause every query starts with: `project IN (A, B)`.
    pub fn clause(&self) -> String {
        format!("project IN ({})", self.0.join(", "))
    }

    /// `A, B and C`, for messages.
    pub fn listed(&self) -> String {
        match self.0.as_slice() {
            [] => String::new(),
            [one] => one.clone(),
            [rest @ .., last] => format!("{} and {last}", rest.join(", ")),
        }
    }
}

/// A ticket search as the agent asked for it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TicketQuery {
    /// Words to look for in summaries, descriptions and comments.
    pub text: Option<String>,
    /// A JQL filter (and ORDER BY), validated and confined to the projects.
    pub jql: Option<String>,
    /// `open`, `in progress`, `done`, ... or an exact status name.
    pub status: Option<String>,
}

/// The JQL for `query`, confined to `projects`:
/// `project IN (..) AND (<jql>) AND text ~ "<words>" AND <status> ORDER BY ...`.
pub fn build(query: &TicketQuery, projects: &Projects) -> Result<String, JqlError> {
    let mut clauses: Vec<String> = Vec::new();
    let mut order: Option<String> = None;

    if let Some(jql) = query.jql.as_deref().map(str::trim).filter(|j| !j.is_empty()) {
        if jql.chars().count() > MAX_JQL_CHARS {
            return Err(JqlError::TooLong);
        }
        let parsed = parse(jql)?;
        if let Some(filter) = &parsed.filter {
            check_projects(filter, projects)?;
            clauses.push(format!("({})", filter.to_jql()));
        }
        order = parsed.order_by.as_ref().map(|o| format!("ORDER BY {}", sort_jql(o)));
    }
    if let Some(words) = query.text.as_deref().map(search_words).filter(|w| !w.is_empty()) {
        clauses.push(format!("text ~ {}", quote(&words)));
    }
    if let Some(status) = query.status.as_deref().and_then(status_clause) {
        clauses.push(status);
    }
    if clauses.is_empty() {
        // "Everything in the projects" is no answer, and Jira refuses unbounded searches anyway.
        return Err(JqlError::Empty);
    }
    Ok(format!("{} AND {} {}", projects.clause(), clauses.join(" AND "), order.as_deref().unwrap_or(DEFAULT_ORDER)))
}

/// A JQL string literal: double-quoted, with `\` and `"` escaped and control characters blanked.
pub fn quote(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Free text reduced to plain search words: text-search operators and control characters
/// become spaces, whitespace collapses, and the length is capped.
pub fn search_words(text: &str) -> String {
    let cleaned: String =
        text.chars().map(|c| if c.is_control() || TEXT_SEARCH_SPECIALS.contains(&c) { ' ' } else { c }).collect();
    // Upper-case AND/OR/NOT are operators of the text search (a trailing one is a syntax error);
    // in lower case they are plain words, and the search ignores case anyway.
    let words = cleaned
        .split_whitespace()
        .map(|w| if matches!(w, "AND" | "OR" | "NOT") { w.to_lowercase() } else { w.to_string() })
        .collect::<Vec<_>>()
        .join(" ");
    match words.char_indices().nth(MAX_TEXT_CHARS) {
        Some((cut, _)) => words[..cut].trim_end().to_string(),
        None => words,
    }
}

/// The clause for a status filter. Everyday words map to Jira's status categories (which every
/// project shares); anything else is an exact status name. `any`/`all` mean no filter.
pub fn status_clause(status: &str) -> Option<String> {
    let normalized = status.trim().to_lowercase().replace(['-', '_'], " ");
    let normalized = normalized.split_whitespace().collect::<Vec<_>>().join(" ");
    let clause = match normalized.as_str() {
        "" | "any" | "all" => return None,
        "open" | "opened" | "unresolved" | "active" | "not done" | "pending" => "statusCategory != Done".to_string(),
        "done" | "closed" | "resolved" | "complete" | "completed" | "fixed" => "statusCategory = Done".to_string(),
        "in progress" | "inprogress" | "ongoing" | "started" => "statusCategory = \"In Progress\"".to_string(),
        "to do" | "todo" | "new" => "statusCategory = \"To Do\"".to_string(),
        _ => format!("status = {}", quote(status.trim())),
    };
    Some(clause)
}

/// Refuses `project` clauses the confinement would contradict: an unknown operator on projects,
/// a project given by a function, or a project outside the list under `=`, `IN`, `WAS`. (`!=` and
/// `NOT IN` only narrow further, so any key is fine there.)
fn check_projects(filter: &Expr, projects: &Projects) -> Result<(), JqlError> {
    let not_allowed =
        |named: &str| JqlError::ProjectNotAllowed { named: cut_chars(named, 40), allowed: projects.listed() };
    for clause in filter.clauses() {
        if !matches!(clause.field_name().as_str(), "project" | "projects") {
            continue;
        }
        let rest = &clause.rest;
        let negative = match rest.first() {
            Some(Token::Op("!=")) => true,
            Some(t) if t.is_keyword("not") => true,
            Some(Token::Op("=")) => false,
            Some(t) if t.is_keyword("in") || t.is_keyword("is") || t.is_keyword("was") => false,
            _ => {
                return Err(invalid(format!(
                    "project conditions can use =, !=, IN or NOT IN only (the bot searches {}).",
                    projects.listed()
                )))
            }
        };
        for (i, t) in rest.iter().enumerate().skip(1) {
            let (Token::Word(v) | Token::Str(v)) = t else { continue };
            if t.keyword().is_some() {
                continue;
            }
            if matches!(t, Token::Word(_)) && matches!(rest.get(i + 1), Some(Token::Open)) {
                return Err(invalid("projects must be named by key, not by a function."));
            }
            if !negative && !projects.contains(v.trim()) {
                return Err(not_allowed(v));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
