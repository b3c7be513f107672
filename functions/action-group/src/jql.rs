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

use std::fmt::Write as _;

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

// ---------------------------------------------------------------------------------------------
// Tokens

/// One JQL token. Strings hold their unescaped value; words only ever hold characters that need
/// no quoting (letters, digits, `_`, `-`, `.`), or a custom field reference `cf[10010]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Token {
    Word(String),
    Str(String),
    /// `=`, `!=`, `~`, `!~`, `<`, `<=`, `>`, `>=`.
    Op(&'static str),
    Open,
    Close,
    Comma,
}

impl Token {
    fn keyword(&self) -> Option<String> {
        match self {
            Token::Word(w) if KEYWORDS.contains(&w.to_ascii_lowercase().as_str()) => Some(w.to_ascii_lowercase()),
            _ => None,
        }
    }

    fn is_keyword(&self, k: &str) -> bool {
        matches!(self, Token::Word(w) if w.eq_ignore_ascii_case(k))
    }

    /// The token as it is sent to Jira.
    fn to_jql(&self) -> String {
        match self {
            Token::Word(w) => match self.keyword() {
                Some(k) => k.to_ascii_uppercase(),
                None => w.clone(),
            },
            Token::Str(s) => quote(s),
            Token::Op(o) => (*o).to_string(),
            Token::Open => "(".into(),
            Token::Close => ")".into(),
            Token::Comma => ",".into(),
        }
    }

    /// The token as the user wrote it, roughly, for error messages.
    fn shown(&self) -> String {
        match self {
            Token::Str(s) => format!("\"{}\"", cut_chars(s, 30)),
            Token::Word(w) => cut_chars(w, 30),
            t => t.to_jql(),
        }
    }
}

fn cut_chars(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((at, _)) => format!("{}…", &s[..at]),
        None => s.to_string(),
    }
}

fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || matches!(c, '_' | '-' | '.')
}

/// Splits JQL into tokens, refusing what Jira would read differently from this tokenizer:
/// characters JQL reserves outside quotes, `&&` / `||` / `!`, unknown escapes, unfinished strings.
pub fn tokenize(jql: &str) -> Result<Vec<Token>, JqlError> {
    let chars: Vec<char> = jql.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            c if c.is_whitespace() || c.is_control() => i += 1,
            '"' | '\'' => {
                let mut value = String::new();
                i += 1;
                loop {
                    match chars.get(i) {
                        None => {
                            return Err(invalid(format!(
                                "the quoted string {c}{} is not closed.",
                                cut_chars(&value, 30)
                            )))
                        }
                        Some('\\') => {
                            match chars.get(i + 1) {
                                Some(e @ ('"' | '\'' | '\\')) => value.push(*e),
                                Some('n' | 't' | 'r') => value.push(' '),
                                Some(other) => {
                                    return Err(invalid(format!(
                                        "the escape \\{other} is not supported in quoted strings (only \\\", \\' and \\\\)."
                                    )))
                                }
                                None => return Err(invalid("a quoted string ends with a lone backslash.")),
                            }
                            i += 2;
                        }
                        Some(q) if *q == c => {
                            i += 1;
                            break;
                        }
                        Some(ch) => {
                            value.push(if ch.is_control() { ' ' } else { *ch });
                            i += 1;
                        }
                    }
                }
                tokens.push(Token::Str(value));
            }
            '(' => {
                tokens.push(Token::Open);
                i += 1;
            }
            ')' => {
                tokens.push(Token::Close);
                i += 1;
            }
            ',' => {
                tokens.push(Token::Comma);
                i += 1;
            }
            '=' | '!' | '~' | '<' | '>' => {
                let start = i;
                while i < chars.len() && matches!(chars[i], '=' | '!' | '~' | '<' | '>') {
                    i += 1;
                }
                let run: String = chars[start..i].iter().collect();
                let op = match run.as_str() {
                    "=" => "=",
                    "!=" => "!=",
                    "~" => "~",
                    "!~" => "!~",
                    "<" => "<",
                    "<=" => "<=",
                    ">" => ">",
                    ">=" => ">=",
                    "!" => return Err(invalid("write NOT instead of `!`.")),
                    other => return Err(invalid(format!("`{other}` is not a JQL operator."))),
                };
                tokens.push(Token::Op(op));
            }
            '&' | '|' => return Err(invalid(format!("write AND / OR instead of `{c}`."))),
            c if is_word_char(c) => {
                let start = i;
                while i < chars.len() && is_word_char(chars[i]) {
                    i += 1;
                }
                let mut word: String = chars[start..i].iter().collect();
                // A custom field by id: cf[10010].
                if word.eq_ignore_ascii_case("cf") && chars.get(i) == Some(&'[') {
                    let digits_start = i + 1;
                    let mut j = digits_start;
                    while j < chars.len() && chars[j].is_ascii_digit() {
                        j += 1;
                    }
                    if j == digits_start || chars.get(j) != Some(&']') || j - digits_start > 18 {
                        return Err(invalid("a custom field is written cf[12345]."));
                    }
                    word = format!("cf[{}]", chars[digits_start..j].iter().collect::<String>());
                    i = j + 1;
                }
                tokens.push(Token::Word(word));
            }
            other => {
                return Err(invalid(format!(
                    "the character `{other}` is reserved in JQL outside quotes; put such values in double quotes."
                )))
            }
        }
    }
    Ok(tokens)
}

// ---------------------------------------------------------------------------------------------
// Parsed JQL

/// A JQL filter, as parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expr {
    /// `a OR b OR ...` (two or more).
    Or(Vec<Expr>),
    /// `a AND b AND ...` (two or more).
    And(Vec<Expr>),
    Not(Box<Expr>),
    /// A parenthesised expression, kept so the query reads as written.
    Group(Box<Expr>),
    Clause(Clause),
}

/// One condition: a field, then its operator and operands as tokens (already checked).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Clause {
    /// A word or a quoted field name.
    pub field: Token,
    /// The operator and its operands, e.g. `[Word(not), Word(in), Open, Word(A), Close]`.
    pub rest: Vec<Token>,
}

impl Clause {
    /// The field name, lower case.
    pub fn field_name(&self) -> String {
        match &self.field {
            Token::Word(w) | Token::Str(w) => w.trim().to_lowercase(),
            _ => String::new(),
        }
    }
}

/// A sort key of ORDER BY: a field and an optional direction (`ASC` / `DESC`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SortKey {
    pub field: Token,
    pub direction: Option<Token>,
}

/// A whole JQL query: an optional filter and an optional ORDER BY.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    pub filter: Option<Expr>,
    pub order_by: Option<Vec<SortKey>>,
}

impl Expr {
    /// The expression as JQL, canonically written (keywords upper case, strings double-quoted).
    pub fn to_jql(&self) -> String {
        let mut out = String::new();
        self.write(&mut out);
        out
    }

    fn write(&self, out: &mut String) {
        match self {
            Expr::Or(items) | Expr::And(items) => {
                let joiner = if matches!(self, Expr::Or(_)) { " OR " } else { " AND " };
                for (n, item) in items.iter().enumerate() {
                    if n > 0 {
                        out.push_str(joiner);
                    }
                    item.write(out);
                }
            }
            Expr::Not(inner) => {
                out.push_str("NOT ");
                inner.write(out);
            }
            Expr::Group(inner) => {
                out.push('(');
                inner.write(out);
                out.push(')');
            }
            Expr::Clause(c) => {
                out.push_str(&c.field.to_jql());
                let mut prev: Option<&Token> = None;
                for t in &c.rest {
                    // `f(x)`, `(a, b)`: no space after `(`, before `)` or `,`, or between a
                    // function name and its `(`.
                    let tight = matches!(t, Token::Close | Token::Comma)
                        || matches!(prev, Some(Token::Open))
                        || (matches!(t, Token::Open)
                            && matches!(prev, Some(Token::Word(_)))
                            && prev.and_then(Token::keyword).is_none());
                    if !tight {
                        out.push(' ');
                    }
                    out.push_str(&t.to_jql());
                    prev = Some(t);
                }
            }
        }
    }

    /// Every clause of the expression, in order.
    pub fn clauses(&self) -> Vec<&Clause> {
        let mut found = Vec::new();
        self.collect(&mut found);
        found
    }

    fn collect<'a>(&'a self, found: &mut Vec<&'a Clause>) {
        match self {
            Expr::Or(items) | Expr::And(items) => items.iter().for_each(|i| i.collect(found)),
            Expr::Not(inner) | Expr::Group(inner) => inner.collect(found),
            Expr::Clause(c) => found.push(c),
        }
    }
}

/// ORDER BY's sort keys as JQL.
fn sort_jql(keys: &[SortKey]) -> String {
    let mut out = String::new();
    for (n, k) in keys.iter().enumerate() {
        if n > 0 {
            out.push_str(", ");
        }
        out.push_str(&k.field.to_jql());
        if let Some(d) = &k.direction {
            let _ = write!(out, " {}", d.to_jql());
        }
    }
    out
}

/// Parses a JQL query (a filter, an ORDER BY, or both).
pub fn parse(jql: &str) -> Result<Query, JqlError> {
    let tokens = tokenize(jql)?;
    let mut p = Parser { tokens: &tokens, at: 0, depth: 0 };
    let filter = if p.at_order_by() || p.peek().is_none() { None } else { Some(p.or()?) };
    let order_by = if p.at_order_by() {
        p.at += 2;
        Some(p.sort_keys()?)
    } else {
        None
    };
    if let Some(t) = p.peek() {
        return Err(match t {
            Token::Close => invalid("there is a `)` without its `(`."),
            t => invalid(format!("unexpected {} (join conditions with AND or OR).", t.shown())),
        });
    }
    if filter.is_none() && order_by.is_none() {
        return Err(invalid("the query is empty."));
    }
    Ok(Query { filter, order_by })
}

struct Parser<'a> {
    tokens: &'a [Token],
    at: usize,
    depth: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.at)
    }

    fn peek_at(&self, ahead: usize) -> Option<&Token> {
        self.tokens.get(self.at + ahead)
    }

    fn next(&mut self) -> Option<&Token> {
        let t = self.tokens.get(self.at);
        self.at += 1;
        t
    }

    fn peek_keyword(&self, k: &str) -> bool {
        self.peek().is_some_and(|t| t.is_keyword(k))
    }

    fn at_order_by(&self) -> bool {
        self.peek_keyword("order") && self.peek_at(1).is_some_and(|t| t.is_keyword("by"))
    }

    fn or(&mut self) -> Result<Expr, JqlError> {
        let mut items = vec![self.and()?];
        while self.peek_keyword("or") {
            self.at += 1;
            items.push(self.and()?);
        }
        Ok(if items.len() == 1 { items.remove(0) } else { Expr::Or(items) })
    }

    fn and(&mut self) -> Result<Expr, JqlError> {
        let mut items = vec![self.unary()?];
        while self.peek_keyword("and") {
            self.at += 1;
            items.push(self.unary()?);
        }
        Ok(if items.len() == 1 { items.remove(0) } else { Expr::And(items) })
    }

    fn unary(&mut self) -> Result<Expr, JqlError> {
        if self.peek_keyword("not") {
            self.at += 1;
            self.descend()?;
            let inner = self.unary();
            self.depth -= 1;
            return Ok(Expr::Not(Box::new(inner?)));
        }
        self.primary()
    }

    fn descend(&mut self) -> Result<(), JqlError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(invalid(format!("it nests deeper than {MAX_DEPTH} levels.")));
        }
        Ok(())
    }

    fn primary(&mut self) -> Result<Expr, JqlError> {
        match self.peek() {
            Some(Token::Open) => {
                self.at += 1;
                self.descend()?;
                let inner = self.or();
                self.depth -= 1;
                let inner = inner?;
                match self.next() {
                    Some(Token::Close) => Ok(Expr::Group(Box::new(inner))),
                    None => Err(invalid("a `(` is not closed.")),
                    Some(t) if t.is_keyword("order") => {
                        Err(invalid("ORDER BY can only end the query, outside parentheses."))
                    }
                    Some(t) => Err(invalid(format!("expected `)` but got {}.", t.shown()))),
                }
            }
            Some(t @ (Token::Word(_) | Token::Str(_))) if t.keyword().is_none() => {
                let field = t.clone();
                self.at += 1;
                let rest = self.operation(&field)?;
                Ok(Expr::Clause(Clause { field, rest }))
            }
            Some(Token::Word(w)) if w.eq_ignore_ascii_case("order") => {
                Err(invalid("ORDER BY can only end the query, outside parentheses."))
            }
            Some(t) => Err(invalid(format!("expected a field name but got {}.", t.shown()))),
            None => Err(invalid("the query ends where a condition was expected.")),
        }
    }

    /// The operator and operands after a field.
    fn operation(&mut self, field: &Token) -> Result<Vec<Token>, JqlError> {
        let start = self.at;
        let op = self.next().cloned();
        match op {
            Some(Token::Op(_)) => self.operand()?,
            Some(t) if t.is_keyword("is") => {
                if self.peek_keyword("not") {
                    self.at += 1;
                }
                match self.next() {
                    Some(t) if t.is_keyword("empty") || t.is_keyword("null") => {}
                    _ => return Err(invalid(format!("{} IS must be followed by EMPTY or NULL.", field.shown()))),
                }
            }
            Some(t) if t.is_keyword("in") => self.list_or_function()?,
            Some(t) if t.is_keyword("not") => {
                if !self.peek_keyword("in") {
                    return Err(invalid(format!("after {} NOT, only IN can follow.", field.shown())));
                }
                self.at += 1;
                self.list_or_function()?;
            }
            Some(t) if t.is_keyword("was") => {
                if self.peek_keyword("not") {
                    self.at += 1;
                }
                if self.peek_keyword("in") {
                    self.at += 1;
                    self.list_or_function()?;
                } else {
                    self.operand()?;
                }
                self.predicates()?;
            }
            Some(t) if t.is_keyword("changed") => self.predicates()?,
            Some(t) => {
                return Err(invalid(format!("expected an operator after {} but got {}.", field.shown(), t.shown())))
            }
            None => return Err(invalid(format!("the condition on {} has no operator.", field.shown()))),
        }
        Ok(self.tokens[start..self.at].to_vec())
    }

    /// History predicates after WAS / CHANGED: `AFTER x`, `DURING (x, y)`, `BY x`...
    fn predicates(&mut self) -> Result<(), JqlError> {
        while let Some(k) = self.peek().and_then(Token::keyword).filter(|k| PREDICATES.contains(&k.as_str())) {
            self.at += 1;
            if k == "during" {
                self.list()?;
            } else {
                self.operand()?;
            }
        }
        Ok(())
    }

    /// A value or a list of values.
    fn operand(&mut self) -> Result<(), JqlError> {
        if matches!(self.peek(), Some(Token::Open)) {
            self.list()
        } else {
            self.value()
        }
    }

    fn list_or_function(&mut self) -> Result<(), JqlError> {
        if matches!(self.peek(), Some(Token::Open)) {
            self.list()
        } else {
            self.value()
        }
    }

    /// `(v, v, ...)`.
    fn list(&mut self) -> Result<(), JqlError> {
        match self.next() {
            Some(Token::Open) => {}
            _ => return Err(invalid("expected a list in parentheses, like (A, B).")),
        }
        self.values_until_close()
    }

    /// Values separated by commas, then `)`; the `(` is already read.
    fn values_until_close(&mut self) -> Result<(), JqlError> {
        self.descend()?;
        let result = (|| {
            if matches!(self.peek(), Some(Token::Close)) {
                self.at += 1;
                return Ok(());
            }
            loop {
                self.value()?;
                match self.next() {
                    Some(Token::Comma) => continue,
                    Some(Token::Close) => return Ok(()),
                    None => return Err(invalid("a `(` is not closed.")),
                    Some(t) => return Err(invalid(format!("expected `,` or `)` in a list but got {}.", t.shown()))),
                }
            }
        })();
        self.depth -= 1;
        result
    }

    /// A word, a string, EMPTY / NULL, or a function call `name(args)`.
    fn value(&mut self) -> Result<(), JqlError> {
        match self.next().cloned() {
            Some(Token::Str(_)) => Ok(()),
            Some(t @ Token::Word(_)) => match t.keyword() {
                Some(k) if k == "empty" || k == "null" => Ok(()),
                Some(_) => Err(invalid(format!("expected a value but got {}.", t.shown()))),
                None => {
                    if matches!(self.peek(), Some(Token::Open)) {
                        self.at += 1;
                        self.values_until_close()?;
                    }
                    Ok(())
                }
            },
            Some(t) => Err(invalid(format!("expected a value but got {}.", t.shown()))),
            None => Err(invalid("the query ends where a value was expected.")),
        }
    }

    fn sort_keys(&mut self) -> Result<Vec<SortKey>, JqlError> {
        let mut keys = Vec::new();
        loop {
            let field = match self.next() {
                Some(t @ (Token::Word(_) | Token::Str(_))) if t.keyword().is_none() => t.clone(),
                Some(t) => return Err(invalid(format!("ORDER BY expects field names but got {}.", t.shown()))),
                None => return Err(invalid("ORDER BY names no field.")),
            };
            let direction = match self.peek() {
                Some(t) if t.is_keyword("asc") || t.is_keyword("desc") => {
                    let d = t.clone();
                    self.at += 1;
                    Some(d)
                }
                _ => None,
            };
            keys.push(SortKey { field, direction });
            if matches!(self.peek(), Some(Token::Comma)) {
                self.at += 1;
            } else {
                return Ok(keys);
            }
        }
    }
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
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn q(text: Option<&str>, jql: Option<&str>, status: Option<&str>) -> TicketQuery {
        TicketQuery { text: text.map(Into::into), jql: jql.map(Into::into), status: status.map(Into::into) }
    }

    fn projects(list: &str) -> Projects {
        Projects::parse(list).unwrap().unwrap()
    }

    fn itsup() -> Projects {
        projects("ITSUP, OPS")
    }

    #[test]
    fn builds_from_text_status_and_jql_within_the_projects() {
        let p = itsup();
        assert_eq!(
            build(&q(Some("VPN disconnect"), None, Some("open")), &p).unwrap(),
            r#"project IN (ITSUP, OPS) AND text ~ "VPN disconnect" AND statusCategory != Done ORDER BY updated DESC"#
        );
        assert_eq!(
            build(&q(None, Some("project = ITSUP ORDER BY created ASC"), Some("In Review")), &p).unwrap(),
            r#"project IN (ITSUP, OPS) AND (project = ITSUP) AND status = "In Review" ORDER BY created ASC"#
        );
        assert_eq!(
            build(&q(Some("printer"), Some("project = OPS or labels = hw"), None), &p).unwrap(),
            r#"project IN (ITSUP, OPS) AND (project = OPS OR labels = hw) AND text ~ "printer" ORDER BY updated DESC"#
        );
        assert_eq!(
            build(&q(None, None, Some("done")), &p).unwrap(),
            "project IN (ITSUP, OPS) AND statusCategory = Done ORDER BY updated DESC"
        );
        assert_eq!(
            build(&q(None, Some("ORDER BY priority DESC, cf[10010]"), Some("in-progress")), &p).unwrap(),
            r#"project IN (ITSUP, OPS) AND statusCategory = "In Progress" ORDER BY priority DESC, cf[10010]"#
        );
    }

    #[test]
    fn real_world_jql_is_rewritten_faithfully() {
        let p = itsup();
        for (input, sent) in [
            ("assignee = currentUser() AND resolution is EMPTY", "assignee = currentUser() AND resolution IS EMPTY"),
            ("status not in (Done, 'Won\\'t Do')", "status NOT IN (Done, \"Won't Do\")"),
            (
                "labels in (vpn, \"network ops\") and updated >= -7d",
                "labels IN (vpn, \"network ops\") AND updated >= -7d",
            ),
            (
                "status was \"In Progress\" during (startOfWeek(), now())",
                "status WAS \"In Progress\" DURING (startOfWeek(), now())",
            ),
            ("assignee changed after -2w by currentUser()", "assignee CHANGED AFTER -2w BY currentUser()"),
            ("not (priority = High or priority = Highest)", "NOT (priority = High OR priority = Highest)"),
            ("summary ~ 'it\\'s broken' AND key = ITSUP-12", "summary ~ \"it's broken\" AND key = ITSUP-12"),
            ("\"Epic Link\" = ITSUP-1 and project != SECRET", "\"Epic Link\" = ITSUP-1 AND project != SECRET"),
            ("sprint in openSprints()", "sprint IN openSprints()"),
        ] {
            let jql = build(&q(None, Some(input), None), &p).unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(jql, format!("project IN (ITSUP, OPS) AND ({sent}) ORDER BY updated DESC"), "{input}");
        }
    }

    #[test]
    fn hostile_jql_cannot_leave_the_projects() {
        let p = itsup();
        let refused = |jql: &str| build(&q(Some("vpn"), Some(jql), None), &p).unwrap_err();
        for (jql, says) in [
            ("x) OR project = SECRET OR (x", "expected an operator after x"),
            ("x = 1) OR (project = SECRET", "without its `(`"),
            ("priority = High OR project = SECRET", "SECRET is not one of them"),
            ("project in (ITSUP, SECRET)", "SECRET is not one of them"),
            ("project = \"SECRET\"", "SECRET is not one of them"),
            ("project was SECRET", "SECRET is not one of them"),
            ("project in projectsLeadByUser()", "not by a function"),
            ("project ~ ITS", "=, !=, IN or NOT IN only"),
            ("priority = High ORDER BY updated) OR (project = SECRET", "without its `(`"),
            ("priority = High ORDER BY , project", "expects field names"),
            ("(priority = High ORDER BY key) OR project = SECRET", "ORDER BY can only end"),
            ("priority = High || project = SECRET", "write AND / OR"),
            ("priority = High & project = SECRET", "write AND / OR"),
            ("! project = ITSUP", "write NOT"),
            ("summary ~ \"unfinished", "not closed"),
            ("summary ~ \"a\\\" OR project = SECRET", "not closed"),
            ("summary ~ \"bad \\u0022 escape\"", "escape"),
            ("priority = High; project = SECRET", "reserved in JQL"),
            ("priority = High OR", "ends where a condition"),
            ("(((priority = High)", "not closed"),
            ("AND project = ITSUP", "expected a field name"),
            ("priority = High project = SECRET", "unexpected"),
        ] {
            let e = refused(jql);
            assert!(e.to_string().contains(says), "{jql:?}: {e}");
        }
        let deep = format!("{}a = 1{}", "(".repeat(40), ")".repeat(40));
        assert!(refused(&deep).to_string().contains("nests deeper"));
        // Narrowing within the projects, or excluding others, is fine.
        assert!(build(&q(None, Some("project not in (SECRET) AND project = ops"), None), &p).is_ok());
    }

    #[test]
    fn refuses_empty_and_oversized_searches() {
        let p = itsup();
        assert_eq!(build(&q(None, None, None), &p), Err(JqlError::Empty));
        assert_eq!(build(&q(Some("  ?* -- "), Some("  "), Some("any")), &p), Err(JqlError::Empty));
        assert_eq!(build(&q(None, Some("ORDER BY updated"), None), &p), Err(JqlError::Empty));
        assert_eq!(build(&q(None, Some(&"x".repeat(MAX_JQL_CHARS + 1)), None), &p), Err(JqlError::TooLong));
    }

    #[test]
    fn user_text_cannot_escape_its_string() {
        let jql = build(&q(Some(r#"foo" OR project = SECRET OR text ~ "x\"#), None, None), &itsup()).unwrap();
        assert_eq!(
            jql,
            r#"project IN (ITSUP, OPS) AND text ~ "foo or project = SECRET or text x" ORDER BY updated DESC"#
        );
        // Exactly two quotes: the string opens and closes once.
        assert_eq!(jql.matches('"').count(), 2);

        let status = status_clause(r#"Done" OR project = "SECRET"#).unwrap();
        assert_eq!(status, r#"status = "Done\" OR project = \"SECRET""#);
        assert_eq!(quote("a\\b\"c\nd"), r#""a\\b\"c d""#);
    }

    #[test]
    fn search_words_drop_operators_and_cap_length() {
        assert_eq!(search_words("VPN-disconnect (macOS) [urgent]!"), "VPN disconnect macOS urgent");
        assert_eq!(search_words("tab\there\r\nnewline"), "tab here newline");
        assert_eq!(search_words("R AND D NOT done OR"), "R and D not done or");
        assert_eq!(search_words("Android ORDER"), "Android ORDER");
        assert_eq!(search_words("naïve café ✓"), "naïve café ✓");
        let long = "é".repeat(MAX_TEXT_CHARS + 50);
        assert_eq!(search_words(&long).chars().count(), MAX_TEXT_CHARS);
    }

    #[test]
    fn statuses_map_to_categories_or_names() {
        assert_eq!(status_clause("Open").as_deref(), Some("statusCategory != Done"));
        assert_eq!(status_clause(" closed ").as_deref(), Some("statusCategory = Done"));
        assert_eq!(status_clause("To_Do").as_deref(), Some("statusCategory = \"To Do\""));
        assert_eq!(status_clause("Waiting for customer").as_deref(), Some("status = \"Waiting for customer\""));
        assert_eq!(status_clause("ALL"), None);
    }

    #[test]
    fn project_lists_are_validated() {
        let p = projects(" itsup ,OPS,, ops, HR_2 ");
        assert_eq!(p.keys(), ["ITSUP", "OPS", "HR_2"]);
        assert_eq!(p.clause(), "project IN (ITSUP, OPS, HR_2)");
        assert_eq!(p.listed(), "ITSUP, OPS and HR_2");
        assert!(p.contains("ops") && p.contains_issue("itsup-12") && !p.contains_issue("SECRET-1"));
        assert!(!p.contains_issue("ITSUP"));
        assert_eq!(Projects::parse(" , "), Ok(None));
        assert_eq!(Projects::parse(""), Ok(None));
        for bad in ["IT SUP", "1TSUP", "ITSUP) OR (X", "A-B", "\"A\"", "OR", "ÄB"] {
            assert!(Projects::parse(bad).is_err(), "{bad:?}");
        }
    }

    /// Fragments an attacker (or a confused model) might combine: structure, quotes, escapes,
    /// keywords, project clauses, ORDER BY, reserved characters.
    fn fragment() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("(".to_string()),
            Just(")".to_string()),
            Just(" OR ".to_string()),
            Just(" AND ".to_string()),
            Just(" NOT ".to_string()),
            Just(" or ".to_string()),
            Just("\"".to_string()),
            Just("'".to_string()),
            Just("\\".to_string()),
            Just("\\\"".to_string()),
            Just(",".to_string()),
            Just(" ORDER BY ".to_string()),
            Just(" order by updated desc".to_string()),
            Just("project = SECRET".to_string()),
            Just("project = ITSUP".to_string()),
            Just("project in (ITSUP, SECRET)".to_string()),
            Just("project != SECRET".to_string()),
            Just("project".to_string()),
            Just("key = SECRET-1".to_string()),
            Just("priority = High".to_string()),
            Just("summary ~ \"vpn\"".to_string()),
            Just("status in (Done, \"To Do\")".to_string()),
            Just("assignee = currentUser()".to_string()),
            Just("resolution is EMPTY".to_string()),
            Just("status was Open during (-1w, now())".to_string()),
            Just(" = ".to_string()),
            Just(" != ".to_string()),
            Just(" ~ ".to_string()),
            Just(" in ".to_string()),
            Just("&&".to_string()),
            Just("||".to_string()),
            Just(";".to_string()),
            Just("cf[10010]".to_string()),
            "[a-zA-Z0-9_. -]{1,8}",
            "\\PC{1,4}",
        ]
    }

    fn cases() -> u32 {
        std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(256)
    }

    /// A scanner independent of the parser: the top-level (depth 0, outside strings) words of a
    /// query, up to ORDER BY, and whether its brackets and quotes balance.
    fn top_level_words(jql: &str) -> Option<Vec<String>> {
        let mut depth: i64 = 0;
        let mut words = Vec::new();
        let mut current = String::new();
        let mut chars = jql.chars().peekable();
        let flush = |current: &mut String, words: &mut Vec<String>, depth: i64| {
            if depth == 0 && !current.is_empty() {
                words.push(std::mem::take(current));
            }
            current.clear();
        };
        while let Some(c) = chars.next() {
            match c {
                '"' | '\'' => {
                    flush(&mut current, &mut words, depth);
                    loop {
                        match chars.next()? {
                            '\\' => {
                                chars.next()?;
                            }
                            q if q == c => break,
                            _ => {}
                        }
                    }
                    if depth == 0 {
                        words.push("<string>".into());
                    }
                }
                '(' | ')' => {
                    flush(&mut current, &mut words, depth);
                    depth += if c == '(' { 1 } else { -1 };
                    if depth < 0 {
                        return None;
                    }
                    if depth == 0 && c == ')' {
                        words.push("<group>".into());
                    }
                }
                c if c.is_whitespace() || c == ',' => flush(&mut current, &mut words, depth),
                c => current.push(c),
            }
        }
        flush(&mut current, &mut words, depth);
        (depth == 0).then_some(words)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(cases()))]

        /// Whatever the agent sends as JQL (and text and status), the query either is refused or
        /// starts with the confinement as a top-level AND conjunct: reparsed, the top level is
        /// an AND whose first operand is exactly `project IN (ITSUP, OPS)`; scanned without the
        /// parser, no OR stands at the top level and brackets and quotes balance.
        #[test]
        fn no_generated_jql_leaves_the_projects(
            parts in proptest::collection::vec(fragment(), 0..14),
            text in proptest::option::of("\\PC{0,20}"),
            status in proptest::option::of(prop_oneof![Just("open".to_string()), "\\PC{0,12}"]),
        ) {
            let p = itsup();
            let query = TicketQuery { text, jql: Some(parts.concat()), status };
            let Ok(sent) = build(&query, &p) else { return Ok(()) };
            let prefix = "project IN (ITSUP, OPS) AND ";
            prop_assert!(sent.starts_with(prefix), "{}", sent);

            let reparsed = parse(&sent).map_err(|e| TestCaseError::fail(format!("{sent}: {e}")))?;
            let Some(Expr::And(conjuncts)) = reparsed.filter else {
                return Err(TestCaseError::fail(format!("top level is not an AND: {sent}")));
            };
            prop_assert_eq!(conjuncts[0].to_jql(), p.clause());
            // Every project the query names positively is one of the allowed ones.
            check_projects(&Expr::And(conjuncts), &p).map_err(|e| TestCaseError::fail(format!("{sent}: {e}")))?;

            let words = top_level_words(&sent).ok_or_else(|| TestCaseError::fail(format!("unbalanced: {sent}")))?;
            let end = words.iter().position(|w| w.eq_ignore_ascii_case("order")).unwrap_or(words.len());
            prop_assert!(
                !words[..end].iter().any(|w| w.eq_ignore_ascii_case("or")),
                "an OR at the top level: {}", sent
            );
            prop_assert_eq!(&words[..4], &["project", "IN", "<group>", "AND"]);
        }

        /// Any accepted JQL is rewritten to a fixed point: what Jira gets parses to the same query.
        #[test]
        fn rewritten_jql_reads_back_the_same(parts in proptest::collection::vec(fragment(), 1..10)) {
            let jql = parts.concat();
            if let Ok(parsed) = parse(&jql) {
                if let Some(filter) = &parsed.filter {
                    let again = parse(&filter.to_jql()).map_err(|e| TestCaseError::fail(format!("{jql}: {e}")))?;
                    prop_assert_eq!(again.filter.as_ref().map(Expr::to_jql), Some(filter.to_jql()));
                }
            }
        }
    }
}
