//! A fake Jira Cloud REST v3 on loopback: the enhanced JQL search (`POST` and `GET
//! /rest/api/3/search/jql`, paged with `nextPageToken`) and `GET /rest/api/3/issue/{key}`, behind
//! basic auth (email + API token). It records every request (path, JQL, body, whether the
//! credentials were right — never the credentials themselves) and injects faults on demand: any
//! status (401, 403, 404, 500, 503...), 429 with `Retry-After`, and slow answers.
//!
//! Its JQL is a small, documented subset, enough to check what the handler sends, evaluated as a
//! boolean expression (AND, OR, NOT, parentheses) so a test sees whether a query is really
//! confined to its projects: `project = K` / `!= K` / `in (K, L)` / `not in (...)`, `key` likewise,
//! `text ~ "words"` (every word must start a word of the summary), `status = / != "Name"`,
//! `statusCategory = / != Done | "To Do" | "In Progress"`; other known fields are accepted and
//! match everything; an unknown field, an unfinished string or unbalanced brackets get Jira's 400
//! answers; a query without any clause gets Jira's "unbounded" 400.
//!
//! The server runs on its own thread and runtime, so one instance ([`FakeJira::shared`]) serves
//! every test of a binary; tests keep apart by using their own project keys.

use crate::fake_slack::percent_decode;
use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use base64::Engine;
use serde_json::{json, Value};
use tokio::sync::oneshot;

/// The bot account's email the fake accepts.
pub const EMAIL: &str = "jira-bot@example.test";
/// The API token the fake accepts unless more are added with [`FakeJira::accept_token`].
pub const API_TOKEN: &str = "ATATT3xFfGF0-fake-jira-token-7c41d";
/// Issues per search page at most, whatever `maxResults` asks (small, so paging is exercised).
pub const PAGE_CAP: usize = 3;

/// A failure to inject into the next matching request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// This HTTP status with a Jira-style error body.
    Status(u16),
    /// HTTP 429 with `Retry-After: <secs>`.
    RateLimited { retry_after_secs: u64 },
    /// Answers normally after this delay.
    Slow { delay_ms: u64 },
}

/// One request the fake received.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedRequest {
    pub method: String,
    pub path: String,
    pub raw_query: String,
    /// The JSON body (`null` when none).
    pub body: Value,
    /// The JQL of a search (body or query string), `""` otherwise.
    pub jql: String,
    /// Whether `Authorization: Basic base64(email:token)` carried accepted credentials.
    pub authorized: bool,
    /// The scheme of the `Authorization` header (`Basic`), if any; never its value.
    pub auth_scheme: Option<String>,
    /// The status the fake answered with.
    pub status: u16,
    pub fault: Option<Fault>,
}

/// An issue the fake knows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeIssue {
    pub key: String,
    pub summary: String,
    pub status: String,
    /// Jira's status category key: `new`, `indeterminate` or `done`.
    pub category: String,
    pub assignee: Option<String>,
    /// ISO-8601, as Jira writes it; searches sort on it, newest first.
    pub updated: String,
    pub priority: String,
}

impl FakeIssue {
    /// An issue with the status category following from the status name.
    pub fn new(key: &str, summary: &str, status: &str, assignee: Option<&str>, updated: &str) -> Self {
        let category = match status.to_lowercase().as_str() {
            "done" | "closed" | "resolved" => "done",
            "to do" | "open" | "new" | "backlog" => "new",
            _ => "indeterminate",
        };
        FakeIssue {
            key: key.to_string(),
            summary: summary.to_string(),
            status: status.to_string(),
            category: category.to_string(),
            assignee: assignee.map(str::to_string),
            updated: updated.to_string(),
            priority: "Medium".to_string(),
        }
    }
}

struct PendingFault {
    pattern: String,
    fault: Fault,
}

#[derive(Default)]
struct Store {
    requests: Vec<RecordedRequest>,
    faults: Vec<PendingFault>,
    issues: Vec<FakeIssue>,
    tokens: HashSet<String>,
}

struct Inner {
    addr: SocketAddr,
    store: Mutex<Store>,
}

impl Inner {
    fn store(&self) -> MutexGuard<'_, Store> {
        // A panicking test must not take the shared fake down with it.
        self.store.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A running fake Jira. Dropping it stops the server.
pub struct FakeJira {
    inner: Arc<Inner>,
    shutdown: Option<oneshot::Sender<()>>,
}

impl std::fmt::Debug for FakeJira {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeJira").field("addr", &self.inner.addr).finish_non_exhaustive()
    }
}

impl Drop for FakeJira {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

impl FakeJira {
    /// Starts a fake accepting [`EMAIL`] and [`API_TOKEN`] on 127.0.0.1 and an ephemeral port.
    pub fn start() -> std::io::Result<FakeJira> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("fake-jira")
            .enable_all()
            .build()?;
        let store = Store { tokens: HashSet::from([API_TOKEN.to_string()]), ..Store::default() };
        let inner = Arc::new(Inner { addr, store: Mutex::new(store) });
        let app = Router::new().fallback(handle).with_state(Arc::clone(&inner));
        let (shutdown, stopped) = oneshot::channel::<()>();
        std::thread::Builder::new().name("fake-jira".into()).spawn(move || {
            runtime.block_on(async move {
                let listener = match tokio::net::TcpListener::from_std(listener) {
                    Ok(l) => l,
                    Err(e) => {
                        eprintln!("fake Jira: cannot listen: {e}");
                        return;
                    }
                };
                let _ = axum::serve(listener, app)
                    .with_graceful_shutdown(async {
                        let _ = stopped.await;
                    })
                    .await;
            });
        })?;
        Ok(FakeJira { inner, shutdown: Some(shutdown) })
    }

    /// The fake shared by every test of this binary, started on first use.
    pub fn shared() -> std::io::Result<&'static FakeJira> {
        static SHARED: OnceLock<Result<FakeJira, String>> = OnceLock::new();
        SHARED
            .get_or_init(|| FakeJira::start().map_err(|e| e.to_string()))
            .as_ref()
            .map_err(|e| std::io::Error::other(format!("fake Jira did not start: {e}")))
    }

    /// The site URL to put in the Jira secret's `base_url`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.inner.addr)
    }

    /// Adds an issue, replacing one with the same key.
    pub fn add_issue(&self, issue: FakeIssue) {
        let mut store = self.inner.store();
        store.issues.retain(|i| i.key != issue.key);
        store.issues.push(issue);
    }

    /// Also accepts `token` (with [`EMAIL`]) from now on, as after a rotation.
    pub fn accept_token(&self, token: &str) {
        self.inner.store().tokens.insert(token.to_string());
    }

    /// Makes the next request whose path or JQL contains `pattern` fail with `fault`. Faults
    /// queue: several for the same pattern apply to successive requests, in order.
    pub fn fail_next(&self, pattern: &str, fault: Fault) {
        self.inner.store().faults.push(PendingFault { pattern: pattern.to_string(), fault });
    }

    /// Every request received so far, in order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.inner.store().requests.clone()
    }

    /// The requests whose path or JQL contains `pattern`.
    pub fn requests_matching(&self, pattern: &str) -> Vec<RecordedRequest> {
        self.requests().into_iter().filter(|r| r.path.contains(pattern) || r.jql.contains(pattern)).collect()
    }
}

async fn handle(
    State(inner): State<Arc<Inner>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_string();
    let raw_query = uri.query().unwrap_or_default().to_string();
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let jql = body
        .get("jql")
        .and_then(Value::as_str)
        .map(str::to_string)
        .or_else(|| query_param(&raw_query, "jql"))
        .unwrap_or_default();

    let authorization = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
    let auth_scheme = authorization.and_then(|a| a.split_whitespace().next()).map(str::to_string);

    let (response, delay) = {
        let mut store = inner.store();
        let authorized = authorization.is_some_and(|a| store.authorized(a));
        let fault_at = store.faults.iter().position(|f| path.contains(&f.pattern) || jql.contains(&f.pattern));
        let fault = fault_at.map(|i| store.faults.remove(i).fault);
        let (response, delay) = match &fault {
            Some(Fault::Status(status)) => (fault_response(*status), None),
            Some(Fault::RateLimited { retry_after_secs }) => {
                let mut r = error_response(StatusCode::TOO_MANY_REQUESTS, "Rate limit exceeded.");
                r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(*retry_after_secs));
                (r, None)
            }
            Some(Fault::Slow { delay_ms }) => {
                (store.answer(&inner.addr, &method, &path, &raw_query, &body, &jql, authorized), Some(*delay_ms))
            }
            None => (store.answer(&inner.addr, &method, &path, &raw_query, &body, &jql, authorized), None),
        };
        let status = response.status().as_u16();
        store.requests.push(RecordedRequest {
            method: method.to_string(),
            path: path.clone(),
            raw_query: raw_query.clone(),
            body: body.clone(),
            jql: jql.clone(),
            authorized,
            auth_scheme,
            status,
            fault,
        });
        (response, delay)
    };
    if let Some(ms) = delay {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    response
}

impl Store {
    fn authorized(&self, authorization: &str) -> bool {
        let Some(encoded) = authorization.strip_prefix("Basic ") else { return false };
        let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(encoded.trim()) else { return false };
        let decoded = String::from_utf8_lossy(&decoded);
        match decoded.split_once(':') {
            Some((email, token)) => email == EMAIL && self.tokens.contains(token),
            None => false,
        }
    }

    /// Jira's answer to a request without an injected failure.
    #[allow(clippy::too_many_arguments)]
    fn answer(
        &self,
        addr: &SocketAddr,
        method: &Method,
        path: &str,
        raw_query: &str,
        body: &Value,
        jql: &str,
        authorized: bool,
    ) -> Response {
        if !authorized {
            return error_response(StatusCode::UNAUTHORIZED, "Client must be authenticated to access this resource.");
        }
        if path == "/rest/api/3/search/jql" && (method == Method::POST || method == Method::GET) {
            let max = body
                .get("maxResults")
                .and_then(Value::as_u64)
                .or_else(|| query_param(raw_query, "maxResults").and_then(|m| m.parse().ok()))
                .unwrap_or(50) as usize;
            let token = body
                .get("nextPageToken")
                .and_then(Value::as_str)
                .map(str::to_string)
                .or_else(|| query_param(raw_query, "nextPageToken"));
            return self.search(addr, jql, max, token.as_deref());
        }
        if let Some(key) = path.strip_prefix("/rest/api/3/issue/").filter(|_| method == Method::GET) {
            return match self.issues.iter().find(|i| i.key.eq_ignore_ascii_case(key)) {
                Some(issue) => Json(issue_json(addr, issue)).into_response(),
                None => error_response(
                    StatusCode::NOT_FOUND,
                    "Issue does not exist or you do not have permission to see it.",
                ),
            };
        }
        error_response(StatusCode::NOT_FOUND, "No resource found at this path.")
    }

    fn search(&self, addr: &SocketAddr, jql: &str, max: usize, token: Option<&str>) -> Response {
        let filter = match parse_jql(jql) {
            Ok(filter) => filter,
            Err(message) => return error_response(StatusCode::BAD_REQUEST, &message),
        };
        let offset = match token {
            None => 0,
            Some(t) => match t.strip_prefix("page-").and_then(|n| n.parse::<usize>().ok()) {
                Some(n) => n,
                None => return error_response(StatusCode::BAD_REQUEST, "The nextPageToken is invalid."),
            },
        };
        let mut matches: Vec<&FakeIssue> = self.issues.iter().filter(|i| filter.matches(i)).collect();
        matches.sort_by(|a, b| b.updated.cmp(&a.updated));
        let page_size = max.clamp(1, PAGE_CAP);
        let page: Vec<Value> = matches.iter().skip(offset).take(page_size).map(|i| issue_json(addr, i)).collect();
        let next = offset + page.len();
        let mut answer = json!({ "issues": page, "isLast": next >= matches.len() });
        if next < matches.len() {
            answer["nextPageToken"] = json!(format!("page-{next}"));
        }
        Json(answer).into_response()
    }
}

/// A parsed JQL filter of the fake's subset: AND / OR / NOT over clauses, evaluated per issue as
/// Jira does, so a test can see whether a query really is confined to its projects.
#[derive(Debug, Clone)]
enum Filter {
    And(Vec<Filter>),
    Or(Vec<Filter>),
    Not(Box<Filter>),
    /// `project = K`, `project in (K, L)`, negated by `!=` / `not in`.
    Project {
        keys: Vec<String>,
        negated: bool,
    },
    /// `key = K-1`, `key in (...)`, negated likewise.
    Key {
        keys: Vec<String>,
        negated: bool,
    },
    /// `text ~ "words"`: every word must start a word of the summary.
    Words(Vec<String>),
    /// `status = "Name"`, `status != "Name"`.
    Status {
        name: String,
        negated: bool,
    },
    /// `statusCategory = / != ...`, as a category key.
    Category {
        key: String,
        negated: bool,
    },
    /// A known field the fake does not evaluate: true.
    Any,
}

impl Filter {
    fn matches(&self, issue: &FakeIssue) -> bool {
        let project = issue.key.rsplit_once('-').map(|(p, _)| p.to_uppercase()).unwrap_or_default();
        match self {
            Filter::And(items) => items.iter().all(|f| f.matches(issue)),
            Filter::Or(items) => items.iter().any(|f| f.matches(issue)),
            Filter::Not(inner) => !inner.matches(issue),
            Filter::Project { keys, negated } => keys.iter().any(|k| k.eq_ignore_ascii_case(&project)) != *negated,
            Filter::Key { keys, negated } => keys.iter().any(|k| k.eq_ignore_ascii_case(&issue.key)) != *negated,
            Filter::Words(words) => {
                let summary_words: Vec<String> = issue
                    .summary
                    .to_lowercase()
                    .split(|c: char| !c.is_alphanumeric())
                    .filter(|w| !w.is_empty())
                    .map(str::to_string)
                    .collect();
                words.iter().all(|w| summary_words.iter().any(|s| s.starts_with(w.as_str())))
            }
            Filter::Status { name, negated } => issue.status.eq_ignore_ascii_case(name) != *negated,
            Filter::Category { key, negated } => (&issue.category == key) != *negated,
            Filter::Any => true,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Word(String),
    Str(String),
    Op(String),
    Open,
    Close,
    Comma,
}

const KNOWN_FIELDS: &[&str] = &[
    "project",
    "key",
    "issuekey",
    "text",
    "summary",
    "description",
    "comment",
    "status",
    "statuscategory",
    "assignee",
    "reporter",
    "priority",
    "labels",
    "updated",
    "created",
    "resolution",
    "issuetype",
    "type",
    "component",
    "sprint",
];
const KEYWORDS: &[&str] = &["and", "or", "not", "in", "is", "was", "empty", "null", "order", "by", "asc", "desc"];

fn tokenize(jql: &str) -> Result<Vec<Token>, String> {
    let chars: Vec<char> = jql.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c == '"' || c == '\'' {
            let mut value = String::new();
            i += 1;
            loop {
                match chars.get(i) {
                    None => {
                        return Err(format!(
                            "Error in the JQL Query: The quoted string '{value}' has not been completed."
                        ))
                    }
                    Some('\\') => {
                        if let Some(next) = chars.get(i + 1) {
                            value.push(*next);
                        }
                        i += 2;
                    }
                    Some(q) if *q == c => {
                        i += 1;
                        break;
                    }
                    Some(other) => {
                        value.push(*other);
                        i += 1;
                    }
                }
            }
            tokens.push(Token::Str(value));
        } else if c == '(' {
            tokens.push(Token::Open);
            i += 1;
        } else if c == ')' {
            tokens.push(Token::Close);
            i += 1;
        } else if c == ',' {
            tokens.push(Token::Comma);
            i += 1;
        } else if "=!~<>".contains(c) {
            let start = i;
            while i < chars.len() && "=!~<>".contains(chars[i]) {
                i += 1;
            }
            tokens.push(Token::Op(chars[start..i].iter().collect()));
        } else {
            let start = i;
            while i < chars.len() && !chars[i].is_whitespace() && !"\"'(),=!~<>".contains(chars[i]) {
                i += 1;
            }
            tokens.push(Token::Word(chars[start..i].iter().collect()));
        }
    }
    Ok(tokens)
}

fn parse_jql(jql: &str) -> Result<Filter, String> {
    let tokens = tokenize(jql)?;
    let mut depth: i32 = 0;
    for t in &tokens {
        match t {
            Token::Open => depth += 1,
            Token::Close => depth -= 1,
            _ => {}
        }
        if depth < 0 {
            return Err("Error in the JQL Query: Expecting either 'OR' or 'AND' but got ')'.".into());
        }
    }
    if depth != 0 {
        return Err("Error in the JQL Query: Expecting ')' before the end of the query.".into());
    }
    // Clauses end where ORDER BY starts (at the top level).
    let mut depth = 0;
    let mut order_at = tokens.len();
    for (i, w) in tokens.windows(2).enumerate() {
        match &w[0] {
            Token::Open => depth += 1,
            Token::Close => depth -= 1,
            _ => {}
        }
        let is_order = matches!((&w[0], &w[1]), (Token::Word(a), Token::Word(b)) if a.eq_ignore_ascii_case("order") && b.eq_ignore_ascii_case("by"));
        if is_order && depth == 0 {
            order_at = i;
            break;
        }
    }
    let clauses = &tokens[..order_at];
    if clauses.is_empty() {
        return Err("Unbounded JQL queries are not allowed here. Please add a search restriction to your query.".into());
    }
    let mut parser = JqlParser { tokens: clauses, at: 0 };
    let filter = parser.or()?;
    match parser.tokens.get(parser.at) {
        None => Ok(filter),
        Some(t) => Err(format!("Error in the JQL Query: Expecting either 'OR' or 'AND' but got '{}'.", shown(t))),
    }
}

fn shown(t: &Token) -> String {
    match t {
        Token::Word(w) | Token::Str(w) | Token::Op(w) => w.clone(),
        Token::Open => "(".into(),
        Token::Close => ")".into(),
        Token::Comma => ",".into(),
    }
}

/// Recursive descent over the fake's subset: `a AND b OR NOT (c)`, clauses `field op value`,
/// `field [not] in (list)` and `field is [not] empty`; other operands are skipped as Jira would
/// accept them.
struct JqlParser<'a> {
    tokens: &'a [Token],
    at: usize,
}

impl JqlParser<'_> {
    fn peek_word(&self, word: &str) -> bool {
        matches!(self.tokens.get(self.at), Some(Token::Word(w)) if w.eq_ignore_ascii_case(word))
    }

    fn or(&mut self) -> Result<Filter, String> {
        let mut items = vec![self.and()?];
        while self.peek_word("or") {
            self.at += 1;
            items.push(self.and()?);
        }
        Ok(if items.len() == 1 { items.remove(0) } else { Filter::Or(items) })
    }

    fn and(&mut self) -> Result<Filter, String> {
        let mut items = vec![self.unary()?];
        while self.peek_word("and") {
            self.at += 1;
            items.push(self.unary()?);
        }
        Ok(if items.len() == 1 { items.remove(0) } else { Filter::And(items) })
    }

    fn unary(&mut self) -> Result<Filter, String> {
        if self.peek_word("not") {
            self.at += 1;
            return Ok(Filter::Not(Box::new(self.unary()?)));
        }
        match self.tokens.get(self.at) {
            Some(Token::Open) => {
                self.at += 1;
                let inner = self.or()?;
                match self.tokens.get(self.at) {
                    Some(Token::Close) => {
                        self.at += 1;
                        Ok(inner)
                    }
                    _ => Err("Error in the JQL Query: Expecting ')' before the end of the query.".into()),
                }
            }
            Some(Token::Word(field) | Token::Str(field)) => {
                let field = field.clone();
                self.at += 1;
                self.clause(&field)
            }
            Some(t) => Err(format!("Error in the JQL Query: Expecting a field name but got '{}'.", shown(t))),
            None => Err("Error in the JQL Query: Expecting a field name before the end of the query.".into()),
        }
    }

    fn clause(&mut self, field: &str) -> Result<Filter, String> {
        let lower = field.to_lowercase();
        if KEYWORDS.contains(&lower.as_str()) {
            return Err(format!("Error in the JQL Query: '{field}' is a reserved JQL word."));
        }
        if !KNOWN_FIELDS.contains(&lower.as_str()) {
            return Err(format!("Field '{field}' does not exist or you do not have permission to view it."));
        }
        let op = match self.tokens.get(self.at) {
            Some(Token::Op(o)) => o.clone(),
            Some(Token::Word(w)) if ["in", "is", "was", "not", "changed"].contains(&w.to_lowercase().as_str()) => {
                w.to_lowercase()
            }
            _ => return Err(format!("Error in the JQL Query: Expecting an operator after '{field}'.")),
        };
        self.at += 1;
        let op = if op == "not" || op == "is" {
            match self.tokens.get(self.at) {
                Some(Token::Word(w)) if w.eq_ignore_ascii_case("in") && op == "not" => {
                    self.at += 1;
                    "not in".to_string()
                }
                Some(Token::Word(w)) if w.eq_ignore_ascii_case("not") && op == "is" => {
                    self.at += 1;
                    "is not".to_string()
                }
                _ if op == "is" => op,
                _ => return Err("Error in the JQL Query: Expecting 'IN' after 'NOT'.".into()),
            }
        } else {
            op
        };
        let values = self.operand()?;
        // History predicates (WAS / CHANGED ... AFTER x BY y): skipped, not evaluated.
        while ["after", "before", "during", "on", "by", "from", "to"].iter().any(|p| self.peek_word(p)) {
            self.at += 1;
            self.operand()?;
        }
        let negated = matches!(op.as_str(), "!=" | "not in" | "is not");
        let first = values.first().cloned().unwrap_or_default();
        Ok(match (lower.as_str(), op.as_str()) {
            ("project", "=" | "!=" | "in" | "not in") => Filter::Project { keys: values, negated },
            ("key" | "issuekey", "=" | "!=" | "in" | "not in") => Filter::Key { keys: values, negated },
            ("text" | "summary", "~") => Filter::Words(
                first
                    .to_lowercase()
                    .split(|c: char| !c.is_alphanumeric())
                    .filter(|w| !w.is_empty())
                    .map(str::to_string)
                    .collect(),
            ),
            ("status", "=" | "!=") => Filter::Status { name: first, negated },
            ("statuscategory", "=" | "!=") => Filter::Category { key: category_key(&first), negated },
            _ => Filter::Any,
        })
    }

    /// A value, a function call or a list; the plain values (words and strings) it names.
    fn operand(&mut self) -> Result<Vec<String>, String> {
        match self.tokens.get(self.at).cloned() {
            Some(Token::Open) => {
                self.at += 1;
                let mut values = Vec::new();
                loop {
                    match self.tokens.get(self.at).cloned() {
                        Some(Token::Close) => {
                            self.at += 1;
                            return Ok(values);
                        }
                        Some(Token::Comma) => self.at += 1,
                        Some(Token::Word(_) | Token::Str(_)) => values.extend(self.operand()?),
                        _ => return Err("Error in the JQL Query: Expecting ')' to close the list.".into()),
                    }
                }
            }
            Some(Token::Word(v) | Token::Str(v)) => {
                self.at += 1;
                if matches!(self.tokens.get(self.at), Some(Token::Open)) {
                    self.operand()?; // a function's arguments
                    return Ok(Vec::new());
                }
                Ok(vec![v])
            }
            _ => Err("Error in the JQL Query: Expecting a value.".into()),
        }
    }
}

fn category_key(name: &str) -> String {
    match name.to_lowercase().as_str() {
        "done" => "done",
        "to do" | "new" => "new",
        _ => "indeterminate",
    }
    .to_string()
}

fn issue_json(addr: &SocketAddr, issue: &FakeIssue) -> Value {
    let id = issue.key.bytes().fold(10_000u64, |acc, b| acc.wrapping_mul(31).wrapping_add(b as u64) % 1_000_000);
    json!({
        "expand": "renderedFields,names,schema,operations,editmeta,changelog,versionedRepresentations",
        "id": id.to_string(),
        "self": format!("http://{addr}/rest/api/3/issue/{id}"),
        "key": issue.key,
        "fields": {
            "summary": issue.summary,
            "status": {
                "name": issue.status,
                "statusCategory": { "key": issue.category },
            },
            "assignee": issue.assignee.as_ref().map(|name| json!({ "displayName": name, "active": true })),
            "updated": issue.updated,
            "priority": { "name": issue.priority },
        }
    })
}

fn error_response(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({ "errorMessages": [message], "errors": {} }))).into_response()
}

fn fault_response(status: u16) -> Response {
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    match status {
        401 => error_response(code, "Client must be authenticated to access this resource."),
        403 => error_response(code, "You do not have permission to access this resource."),
        404 => error_response(code, "Issue does not exist or you do not have permission to see it."),
        500..=599 => (code, [(header::CONTENT_TYPE, "text/html")], "<html><body>Service Unavailable</body></html>")
            .into_response(),
        _ => error_response(code, "Request failed."),
    }
}

/// One query-string parameter, percent-decoded.
fn query_param(query: &str, name: &str) -> Option<String> {
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (k == name).then(|| percent_decode(v))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn issue(key: &str, summary: &str, status: &str) -> FakeIssue {
        FakeIssue::new(key, summary, status, None, "2026-01-01T00:00:00.000+0000")
    }

    #[test]
    fn the_jql_subset_filters_like_jira() {
        let vpn = issue("ITSUP-1", "Staging VPN disconnects during uploads", "Open");
        let done = issue("ITSUP-2", "VPN certificate renewed", "Done");
        let other = issue("OPS-1", "VPN appliance firmware", "In Progress");
        let f = parse_jql(
            r#"(project = ITSUP) AND text ~ "vpn disconnect" AND statusCategory != Done ORDER BY updated DESC"#,
        )
        .unwrap();
        assert!(f.matches(&vpn) && !f.matches(&done) && !f.matches(&other));
        let f = parse_jql(r#"statusCategory = "In Progress""#).unwrap();
        assert!(f.matches(&other) && !f.matches(&vpn));
        let f = parse_jql(r#"status = "done" and key = itsup-2"#).unwrap();
        assert!(f.matches(&done) && !f.matches(&vpn));
        assert!(parse_jql("priority = High").is_ok(), "known fields are accepted");
        // Evaluated as Jira does: OR, NOT, lists, precedence of AND over OR.
        let f = parse_jql("project in (ITSUP) AND (priority = High OR project = OPS)").unwrap();
        assert!(f.matches(&vpn) && f.matches(&done) && !f.matches(&other));
        let f = parse_jql("project = OPS OR project = ITSUP AND key = ITSUP-2").unwrap();
        assert!(f.matches(&other) && f.matches(&done) && !f.matches(&vpn));
        let f = parse_jql("NOT project not in (OPS) AND assignee = currentUser()").unwrap();
        assert!(f.matches(&other) && !f.matches(&vpn));
    }

    #[test]
    fn bad_jql_gets_jiras_errors() {
        assert!(parse_jql("nosuchfield = 1").unwrap_err().contains("Field 'nosuchfield' does not exist"));
        assert!(parse_jql(r#"summary ~ "unfinished"#).unwrap_err().contains("has not been completed"));
        assert!(parse_jql("(project = A").unwrap_err().contains("Expecting ')'"));
        assert!(parse_jql("project = A)").unwrap_err().contains("Expecting either"));
        assert!(parse_jql("ORDER BY updated DESC").unwrap_err().contains("Unbounded"));
        assert!(parse_jql("").unwrap_err().contains("Unbounded"));
    }

    #[test]
    fn decodes_query_parameters() {
        assert_eq!(query_param("jql=project%20%3D%20A&maxResults=5", "jql").as_deref(), Some("project = A"));
        assert_eq!(query_param("a=1", "jql"), None);
        assert_eq!(crate::fake_slack::percent_decode("%zz%4"), "%zz%4");
    }
}
