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
        ("labels in (vpn, \"network ops\") and updated >= -7d", "labels IN (vpn, \"network ops\") AND updated >= -7d"),
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
    assert_eq!(jql, r#"project IN (ITSUP, OPS) AND text ~ "foo or project = SECRET or text x" ORDER BY updated DESC"#);
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
