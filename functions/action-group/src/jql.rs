//! Builds the JQL of a ticket search from what the agent passed: free text, a JQL query and a
//! status, each optional. User text only ever lands inside a quoted JQL string, with the
//! characters that have a meaning in Jira's text search removed, so it can neither change the
//! query's structure nor make it fail to parse.

/// Free text beyond this is cut (Jira's text search gains nothing from essays).
pub const MAX_TEXT_CHARS: usize = 200;
/// A JQL query beyond this is refused.
pub const MAX_JQL_CHARS: usize = 2000;
/// The order when the query gives none: most recently updated first.
const DEFAULT_ORDER: &str = "ORDER BY updated DESC";

/// Characters with a meaning in Jira's text search (Lucene syntax), plus the quote and the
/// backslash of JQL strings. Replaced by spaces: searching "VPN-disconnect" for "VPN disconnect"
/// finds what the user meant.
const TEXT_SEARCH_SPECIALS: &[char] =
    &['+', '-', '&', '|', '!', '(', ')', '{', '}', '[', ']', '^', '~', '*', '?', '\\', ':', '"', '/'];

/// Why no JQL could be built: the user's to fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JqlError {
    #[error("Tell me what to search for: some words, a status, or a JQL query.")]
    Empty,
    #[error("That JQL query is too long (at most {MAX_JQL_CHARS} characters).")]
    TooLong,
}

/// A ticket search as the agent asked for it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TicketQuery {
    /// Words to look for in summaries, descriptions and comments.
    pub text: Option<String>,
    /// A JQL query, used as it is (it runs with the bot's Jira permissions, read-only).
    pub jql: Option<String>,
    /// `open`, `in progress`, `done`, ... or an exact status name.
    pub status: Option<String>,
}

/// The JQL for `query`: `(<jql>) AND text ~ "<words>" AND <status>` and an ORDER BY.
pub fn build(query: &TicketQuery) -> Result<String, JqlError> {
    let mut clauses: Vec<String> = Vec::new();
    let mut order: Option<String> = None;

    if let Some(jql) = query.jql.as_deref().map(str::trim).filter(|j| !j.is_empty()) {
        if jql.chars().count() > MAX_JQL_CHARS {
            return Err(JqlError::TooLong);
        }
        let jql: String = jql.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
        let (filter, order_by) = split_order_by(&jql);
        if !filter.trim().is_empty() {
            clauses.push(format!("({})", filter.trim()));
        }
        order = order_by.map(|o| o.trim().to_string());
    }
    if let Some(words) = query.text.as_deref().map(search_words).filter(|w| !w.is_empty()) {
        clauses.push(format!("text ~ {}", quote(&words)));
    }
    if let Some(status) = query.status.as_deref().and_then(status_clause) {
        clauses.push(status);
    }
    if clauses.is_empty() {
        // An unbounded search is refused by Jira, and "everything" is no answer anyway.
        return Err(JqlError::Empty);
    }
    Ok(format!("{} {}", clauses.join(" AND "), order.as_deref().unwrap_or(DEFAULT_ORDER)))
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

/// Splits `... ORDER BY ...` at an ORDER BY outside quoted strings.
fn split_order_by(jql: &str) -> (&str, Option<&str>) {
    let bytes = jql.as_bytes();
    let mut quote_char: Option<u8> = None;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        match quote_char {
            Some(q) => {
                if b == b'\\' {
                    i += 1; // skip the escaped byte
                } else if b == q {
                    quote_char = None;
                }
            }
            None if b == b'"' || b == b'\'' => quote_char = Some(b),
            None if starts_order_by(bytes, i) => return (&jql[..i], Some(&jql[i..])),
            None => {}
        }
        i += 1;
    }
    (jql, None)
}

/// Whether `ORDER <whitespace> BY` (any case) starts at `i` as whole words.
fn starts_order_by(bytes: &[u8], i: usize) -> bool {
    let word_start = i == 0 || !is_word(bytes[i - 1]);
    let rest = &bytes[i..];
    if !word_start || rest.len() < 8 || !rest[..5].eq_ignore_ascii_case(b"order") {
        return false;
    }
    let spaces = rest[5..].iter().take_while(|b| b.is_ascii_whitespace()).count();
    if spaces == 0 {
        return false;
    }
    let after = &rest[5 + spaces..];
    after.len() >= 2 && after[..2].eq_ignore_ascii_case(b"by") && after.get(2).is_none_or(|b| !is_word(*b))
}

fn is_word(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(text: Option<&str>, jql: Option<&str>, status: Option<&str>) -> TicketQuery {
        TicketQuery { text: text.map(Into::into), jql: jql.map(Into::into), status: status.map(Into::into) }
    }

    #[test]
    fn builds_from_text_status_and_jql() {
        assert_eq!(
            build(&q(Some("VPN disconnect"), None, Some("open"))).unwrap(),
            r#"text ~ "VPN disconnect" AND statusCategory != Done ORDER BY updated DESC"#
        );
        assert_eq!(
            build(&q(None, Some("project = ITSUP ORDER BY created ASC"), Some("In Review"))).unwrap(),
            r#"(project = ITSUP) AND status = "In Review" ORDER BY created ASC"#
        );
        assert_eq!(
            build(&q(Some("printer"), Some("project = OPS or labels = hw"), None)).unwrap(),
            r#"(project = OPS or labels = hw) AND text ~ "printer" ORDER BY updated DESC"#
        );
        assert_eq!(build(&q(None, None, Some("done"))).unwrap(), "statusCategory = Done ORDER BY updated DESC");
        assert_eq!(
            build(&q(None, Some("ORDER BY priority DESC"), Some("in-progress"))).unwrap(),
            r#"statusCategory = "In Progress" ORDER BY priority DESC"#
        );
    }

    #[test]
    fn refuses_empty_and_oversized_searches() {
        assert_eq!(build(&q(None, None, None)), Err(JqlError::Empty));
        assert_eq!(build(&q(Some("  ?* -- "), Some("  "), Some("any"))), Err(JqlError::Empty));
        assert_eq!(build(&q(None, Some("ORDER BY updated"), None)), Err(JqlError::Empty));
        assert_eq!(build(&q(None, Some(&"x".repeat(MAX_JQL_CHARS + 1)), None)), Err(JqlError::TooLong));
    }

    #[test]
    fn user_text_cannot_escape_its_string() {
        let jql = build(&q(Some(r#"foo" OR project = SECRET OR text ~ "x\"#), None, None)).unwrap();
        assert_eq!(jql, r#"text ~ "foo or project = SECRET or text x" ORDER BY updated DESC"#);
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
    fn order_by_is_found_only_outside_strings() {
        assert_eq!(split_order_by("a = 1 order   by b"), ("a = 1 ", Some("order   by b")));
        assert_eq!(
            split_order_by(r#"summary ~ "order by" ORDER BY x"#),
            (r#"summary ~ "order by" "#, Some("ORDER BY x"))
        );
        assert_eq!(split_order_by(r#"summary ~ 'it\'s order by' "#), (r#"summary ~ 'it\'s order by' "#, None));
        assert_eq!(split_order_by("reorder by = 1"), ("reorder by = 1", None));
        assert_eq!(split_order_by("orderby x"), ("orderby x", None));
        assert_eq!(split_order_by("ORDER BY"), ("", Some("ORDER BY")));
    }

    #[test]
    fn statuses_map_to_categories_or_names() {
        assert_eq!(status_clause("Open").as_deref(), Some("statusCategory != Done"));
        assert_eq!(status_clause(" closed ").as_deref(), Some("statusCategory = Done"));
        assert_eq!(status_clause("To_Do").as_deref(), Some("statusCategory = \"To Do\""));
        assert_eq!(status_clause("Waiting for customer").as_deref(), Some("status = \"Waiting for customer\""));
        assert_eq!(status_clause("ALL"), None);
    }
}
