use super::split::fence_prefix;
use super::*;

fn fences(part: &str) -> usize {
    part.lines().filter(|l| fence_prefix(l).is_some()).count()
}

#[test]
fn inline_formatting() {
    assert_eq!(to_mrkdwn("**bold** and __also__"), "*bold* and *also*");
    assert_eq!(to_mrkdwn("*it* and _it_"), "_it_ and _it_");
    assert_eq!(to_mrkdwn("~~gone~~"), "~gone~");
    assert_eq!(to_mrkdwn("***both***"), "_*both*_");
    assert_eq!(to_mrkdwn("use `cargo build` now"), "use `cargo build` now");
}

#[test]
fn escapes_text_but_not_link_urls() {
    assert_eq!(to_mrkdwn("a < b && c > d"), "a &lt; b &amp;&amp; c &gt; d");
    assert_eq!(to_mrkdwn("AT&amp;T"), "AT&amp;T", "an entity is decoded once and re-escaped once");
    assert_eq!(
        to_mrkdwn("[Q&A <1>](https://example.com/search?q=a&b=c)"),
        "<https://example.com/search?q=a&b=c|Q&amp;A &lt;1&gt;>"
    );
    assert_eq!(to_mrkdwn("`if a < b && c`"), "`if a &lt; b &amp;&amp; c`");
    // Characters that would break the link syntax are percent-encoded in the URL.
    assert_eq!(to_mrkdwn("[x](<https://e.com/a|b c>)"), "<https://e.com/a%7Cb%20c|x>");
    assert_eq!(to_mrkdwn("[x](https://e.com/a\u{a0}b\u{2028}c)"), "<https://e.com/a%C2%A0b%E2%80%A8c|x>");
}

#[test]
fn links_autolinks_and_images() {
    assert_eq!(to_mrkdwn("see [the docs](https://docs.example.com)"), "see <https://docs.example.com|the docs>");
    assert_eq!(to_mrkdwn("<https://example.com>"), "<https://example.com>");
    assert_eq!(to_mrkdwn("[https://x.io](https://x.io)"), "<https://x.io>");
    assert_eq!(to_mrkdwn("<ops@example.com>"), "<mailto:ops@example.com|ops@example.com>");
    assert_eq!(to_mrkdwn("![a chart](https://img.example.com/c.png)"), "<https://img.example.com/c.png|a chart>");
    assert_eq!(to_mrkdwn("![](https://img.example.com/c.png)"), "<https://img.example.com/c.png>");
    assert_eq!(to_mrkdwn("[**bold** label](https://e.com)"), "<https://e.com|bold label>");
    assert_eq!(to_mrkdwn("[rel](/docs/a)"), "rel (/docs/a)");
}

#[test]
fn headings_stand_on_their_own_lines() {
    assert_eq!(to_mrkdwn("# Title\nbody text"), "*Title*\n\nbody text");
    assert_eq!(to_mrkdwn("intro\n\n## Sub **bold** _it_\n\nmore"), "intro\n\n*Sub bold _it_*\n\nmore");
}

#[test]
fn nested_lists_are_indented() {
    let md = "- one\n- two\n  - two a\n  - two b\n    1. deep\n- three\n\n1. first\n2. second\n\n3. third";
    let expected = "• one\n• two\n    • two a\n    • two b\n        1. deep\n• three\n\n1. first\n2. second\n3. third";
    assert_eq!(to_mrkdwn(md), expected);
    assert_eq!(to_mrkdwn("7. seven\n8. eight"), "7. seven\n8. eight");
    assert_eq!(to_mrkdwn("para\n\n- a\n- b\n\nafter"), "para\n\n• a\n• b\n\nafter");
}

#[test]
fn code_blocks_keep_their_content_and_drop_the_language() {
    let md = "Run:\n\n```rust\nfn main() { if a < b && c > d { println!(\"**x**\"); } }\n\n// end\n```\n\ndone";
    let expected =
        "Run:\n\n```\nfn main() { if a &lt; b &amp;&amp; c &gt; d { println!(\"**x**\"); } }\n\n// end\n```\n\ndone";
    assert_eq!(to_mrkdwn(md), expected);
    // Already-escaped-looking text in code is shown literally, so it is escaped once more.
    assert_eq!(to_mrkdwn("```\n&lt;\n```"), "```\n&amp;lt;\n```");
    // A code block in a list item keeps the item's indentation.
    assert_eq!(to_mrkdwn("- step:\n\n  ```\n  ls\n  ```"), "• step:\n    ```\n    ls\n    ```");
}

#[test]
fn block_quotes_breaks_and_rules() {
    assert_eq!(to_mrkdwn("> quoted\n> more\n\n> again"), "> quoted\n> more\n\n> again");
    assert_eq!(to_mrkdwn("> para one\n>\n> para two"), "> para one\n>\n> para two");
    assert_eq!(to_mrkdwn("line one  \nline two\nline three"), "line one\nline two\nline three");
    assert_eq!(to_mrkdwn("a<br>b"), "a\nb");
    assert_eq!(to_mrkdwn("above\n\n---\n\nbelow"), format!("above\n\n{RULE}\n\nbelow"));
}

#[test]
fn tables_become_aligned_code_blocks() {
    let md = "| Model | Tokens | Cost |\n|:--|--:|:-:|\n| claude & co | 1200 | $1 |\n| `titan` | 5 | $0.10 |";
    let expected = "```\nModel        Tokens  Cost\n-----------  ------  -----\nclaude &amp; co    1200   $1\ntitan             5  $0.10\n```";
    assert_eq!(to_mrkdwn(md), expected);
    let md = "before\n\n| a | b |\n|---|---|\n| [x](https://e.com) | **y** |\n\nafter";
    assert_eq!(
        to_mrkdwn(md),
        "before\n\n```\na                  b\n-----------------  -\nx (https://e.com)  y\n```\n\nafter"
    );
}

#[test]
fn plain_text_passes_through() {
    assert_eq!(to_mrkdwn(""), "");
    assert_eq!(to_mrkdwn("Hello, world."), "Hello, world.");
    assert_eq!(to_mrkdwn("one\n\ntwo"), "one\n\ntwo");
    assert_eq!(to_mrkdwn("héllo — ünïcode 日本"), "héllo — ünïcode 日本");
}

#[test]
fn short_text_is_one_part() {
    assert_eq!(split_message("hello", 100), vec!["hello".to_string()]);
    assert!(split_message("", 100).is_empty());
    assert!(split_message("  \n\n ", 100).is_empty());
}

#[test]
fn splits_at_paragraphs_then_lines_then_words() {
    let para = "word ".repeat(10).trim_end().to_string(); // 49 chars
    let text = format!("{para}\n\n{para}\n\n{para}");
    let parts = split_message(&text, 110);
    assert_eq!(parts, vec![format!("{para}\n\n{para}"), para.clone()]);

    let text = format!("{para}\n{para}\n{para}");
    let parts = split_message(&text, 110);
    assert_eq!(parts, vec![format!("{para}\n{para}"), para.clone()]);

    let text = "word ".repeat(40);
    let parts = split_message(&text, 64);
    assert!(parts.iter().all(|p| p.chars().count() <= 64 && !p.starts_with(' ') && !p.ends_with(' ')));
    assert_eq!(parts.join(" "), text.trim_end());

    // No boundary at all: a hard cut, nothing lost.
    let text = "x".repeat(200);
    let parts = split_message(&text, 64);
    assert_eq!(parts.concat(), text);
    assert!(parts.iter().all(|p| p.chars().count() <= 64));
}

#[test]
fn counts_chars_not_bytes() {
    let text = "日本語 ".repeat(50); // 200 chars, 500 bytes
    let parts = split_message(&text, 100);
    assert_eq!(parts.len(), 2);
    assert!(parts.iter().all(|p| p.chars().count() <= 100), "{parts:?}");
    assert_eq!(parts.join(" "), text.trim_end());
}

#[test]
fn a_split_inside_code_closes_and_reopens_the_fence() {
    let code: String = (0..40).map(|i| format!("let value_{i} = {i};\n")).collect();
    let text = format!("Here is the code:\n```\n{code}```\nThat is all.");
    let parts = split_message(&text, 200);
    assert!(parts.len() > 2, "{parts:?}");
    for part in &parts {
        assert!(part.chars().count() <= 200, "{part}");
        assert_eq!(fences(part) % 2, 0, "unbalanced fences in {part:?}");
    }
    assert!(parts[1].starts_with("```\nlet value_"), "{:?}", parts[1]);
    let rejoined: String = parts.join("\n").replace("```\n```\n", "");
    for i in 0..40 {
        assert!(rejoined.contains(&format!("let value_{i} = {i};")), "{i} lost");
    }
    assert!(parts.last().is_some_and(|p| p.ends_with("That is all.")));
}

#[test]
fn a_part_never_ends_on_a_bare_opening_fence() {
    let prose = "Some words here. ".repeat(6); // ~100 chars
    let text = format!("{prose}\n```\n{}\n```", "code line\n".repeat(20));
    let parts = split_message(&text, 110);
    for part in &parts {
        assert!(!part.ends_with("```\n```"), "{part:?}");
        assert_eq!(fences(part) % 2, 0, "{part:?}");
    }
    assert_eq!(parts[0], prose.trim_end());
}

#[test]
fn quoted_and_indented_fences_reopen_with_their_prefix() {
    let code: String = (0..30).map(|i| format!("    line {i}\n")).collect();
    let text = format!("• step\n    ```\n{code}    ```");
    let parts = split_message(&text, 120);
    assert!(parts.len() > 1);
    for part in &parts[1..] {
        assert!(part.starts_with("    ```\n"), "{part:?}");
    }
    for part in &parts {
        assert!(part.chars().count() <= 120);
        assert_eq!(fences(part) % 2, 0, "{part:?}");
    }
}

/// Issue 13, defect 3: a line starting with ``` inside a `~~~` block was reopened whole in
/// every following part, so a long one made thousands of messages.
#[test]
fn a_backtick_line_inside_a_tilde_block_does_not_multiply_the_parts() {
    let info = "x".repeat(3_880);
    let code = "let a = 1; // a line of code\n".repeat(300);
    let md = format!("Intro.\n\n~~~\n```\n```{info}\n{code}~~~\n\nThe end.");
    let text = to_mrkdwn(&md);
    let parts = render_reply(&md, &[]);
    let bound = text.chars().count() / MAX_MESSAGE_CHARS + 2;
    assert!(parts.len() <= bound, "{} parts for {} chars", parts.len(), text.chars().count());
    for part in &parts {
        assert!(part.text.chars().count() <= MAX_MESSAGE_CHARS, "{}", part.text.chars().count());
    }
    let xs: usize = parts.iter().map(|p| p.text.matches('x').count()).sum();
    assert_eq!(xs, info.len(), "the line is neither copied nor lost");
}

#[test]
fn a_very_long_answer_is_cut_with_a_notice() {
    let md = format!("```\n{}", "code line that goes on\n".repeat(5_000));
    let parts = render_reply(&md, &["https://e.com/s".to_string()]);
    assert_eq!(parts.len(), MAX_REPLY_PARTS);
    for part in &parts {
        assert!(part.text.chars().count() <= MAX_MESSAGE_CHARS, "{}", part.text.chars().count());
        assert_eq!(fences(&part.text) % 2, 0, "unbalanced: {}", part.text);
    }
    let last = &parts[MAX_REPLY_PARTS - 1].text;
    assert!(last.ends_with(&format!("```\n\n{CUT_NOTICE}")), "{last}");
    assert!(parts[..MAX_REPLY_PARTS - 1].iter().all(|p| !p.text.contains(CUT_NOTICE)));
    // Just under the cap: no notice.
    let md = "A sentence of prose. ".repeat(1_500);
    let parts = render_reply(&md, &[]);
    assert!(parts.len() < MAX_REPLY_PARTS && !parts.iter().any(|p| p.text.contains(CUT_NOTICE)));
}

#[test]
fn nesting_cannot_make_the_text_grow_without_bound() {
    // 300 nested quotes, then 20,000 lazy continuation lines: each would be written with
    // the whole "> > > …" prefix (12 MB).
    let md = format!("{}x\n{}", ">".repeat(300), "y\n".repeat(20_000));
    let text = to_mrkdwn(&md);
    assert!(text.len() <= MAX_RENDER_BYTES, "{}", text.len());
    let parts = render_reply(&md, &[]);
    assert!(parts.len() <= MAX_REPLY_PARTS);
    assert!(parts.last().is_some_and(|p| p.text.ends_with(CUT_NOTICE)));
    // A wide cell pads every row of its table.
    let md = format!("| a | b |\n|---|---|\n| {} | x |\n{}", "w".repeat(5_000), "| 1 | 2 |\n".repeat(5_000));
    assert!(to_mrkdwn(&md).len() <= MAX_RENDER_BYTES);
}

/// Issue 13, list 8: only http(s) and mailto targets become links; anything else (scripts,
/// app deep links, Slack's own `<!channel>` / `<@U…>` syntax) is shown as text.
#[test]
fn only_web_and_mail_targets_become_links() {
    for (md, expected) in [
        ("[x](javascript:alert(1))", "x (javascript:alert(1))"),
        ("[x](JavaScript:alert(1))", "x (JavaScript:alert(1))"),
        ("<javascript:alert(1)>", "javascript:alert(1)"),
        ("[open](slack://open?team=T1)", "open (slack://open?team=T1)"),
        ("[hi](!channel:x)", "hi (!channel:x)"),
        ("[hi](@U123:x)", "hi (@U123:x)"),
        ("[hi](<!channel>)", "hi (!channel)"),
        ("[hi](https://e.com)<!channel>", "<https://e.com|hi>&lt;!channel&gt;"),
        ("[<!channel>](https://e.com)", "<https://e.com|&lt;!channel&gt;>"),
        ("[<@U123>](mailto:a@e.com)", "<mailto:a@e.com|&lt;@U123&gt;>"),
        ("[x](data:text/html,<b>)", "x (data:text/html,&lt;b&gt;)"),
        ("[x](ftp://e.com/f)", "x (ftp://e.com/f)"),
        ("[x](HTTPS://E.COM/a)", "<HTTPS://E.COM/a|x>"),
        ("[x](mailto:ops@e.com)", "<mailto:ops@e.com|x>"),
        ("[x](https://e.com/<!here>|y)", "<https://e.com/%3C!here%3E%7Cy|x>"),
        ("[x]()", "x"),
    ] {
        assert_eq!(to_mrkdwn(md), expected, "{md}");
    }
    let parts = render_reply("a", &["javascript:alert(1)".into(), "<!channel>".into()]);
    assert_eq!(parts[0].text, "a\n\n*Sources*\n• javascript:alert(1)\n• &lt;!channel&gt;");
}

#[test]
fn render_reply_lists_sources() {
    let sources = vec![
        "https://wiki.example.com/runbook?a=1&b=2".to_string(),
        "s3://kb-bucket/policies/leave <2024>.pdf".to_string(),
        "https://wiki.example.com/runbook?a=1&b=2".to_string(),
        " ".to_string(),
    ];
    let parts = render_reply("**Answer**: yes.", &sources);
    assert_eq!(
        parts,
        vec![Reply::plain(
            "*Answer*: yes.\n\n*Sources*\n• <https://wiki.example.com/runbook?a=1&b=2>\n• s3://kb-bucket/policies/leave &lt;2024&gt;.pdf"
        )]
    );
    assert_eq!(render_reply("just this", &[]), vec![Reply::plain("just this")]);
    assert!(render_reply("", &[]).is_empty());
}

#[test]
fn render_reply_splits_a_long_answer() {
    let mut md = String::new();
    let mut i = 0;
    while md.chars().count() < 10_000 {
        md.push_str(&format!("## Section {i}\n\nParagraph {i} with **bold**, a [link](https://e.com/{i}) & text. "));
        md.push_str(&"Filler sentence for length. ".repeat(8));
        md.push_str(&format!("\n\n- item {i}a\n- item {i}b\n\n```\ncode {i} < 1\n"));
        md.push_str(&"more code line\n".repeat(10));
        md.push_str("```\n\n");
        i += 1;
    }
    let sources: Vec<String> = (0..5).map(|n| format!("https://docs.example.com/{n}")).collect();
    let parts: Vec<String> = render_reply(&md, &sources)
        .into_iter()
        .map(|r| {
            assert_eq!(r.blocks, None, "no table, no blocks");
            r.text
        })
        .collect();
    assert!(parts.len() >= 3, "{}", parts.len());
    for part in &parts {
        assert!(part.chars().count() <= MAX_MESSAGE_CHARS, "{}", part.chars().count());
        assert_eq!(fences(part) % 2, 0, "unbalanced: {part}");
        assert!(!part.trim().is_empty());
    }
    let all = parts.join("\n");
    for n in 0..i {
        assert!(all.contains(&format!("*Section {n}*")), "section {n} lost");
        assert!(all.contains(&format!("code {n} &lt; 1")), "code {n} lost");
        assert!(all.contains(&format!("<https://e.com/{n}|link>")), "link {n} lost");
    }
    assert!(parts.last().is_some_and(|p| p.ends_with("• <https://docs.example.com/4>")));
    assert!(!all.contains("**"));
}

/// The table blocks of a reply.
fn table_blocks(reply: &Reply) -> Vec<&Value> {
    reply.blocks.iter().flatten().filter(|b| b["type"] == "table").collect()
}

/// A table block's cells as strings, row by row.
fn cells(table: &Value) -> Vec<Vec<String>> {
    table["rows"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|row| {
            row.as_array()
                .into_iter()
                .flatten()
                .map(|c| {
                    assert_eq!(c["type"], "raw_text", "{c}");
                    c["text"].as_str().unwrap_or_default().to_string()
                })
                .collect()
        })
        .collect()
}

fn section(text: &str) -> Value {
    json!({ "type": "section", "text": { "type": "mrkdwn", "text": text } })
}

/// A Markdown table of `rows` rows (the header included) and `columns` columns.
fn markdown_table(rows: usize, columns: usize) -> String {
    let line = |cells: Vec<String>| format!("| {} |\n", cells.join(" | "));
    let mut md = line((0..columns).map(|c| format!("h{c}")).collect());
    md.push_str(&line((0..columns).map(|_| "---".to_string()).collect()));
    for r in 1..rows {
        md.push_str(&line((0..columns).map(|c| format!("r{r}c{c}")).collect()));
    }
    md
}

#[test]
fn a_table_becomes_a_table_block_between_sections() {
    let md = "Costs by model:\n\n| Model | Calls | Cost |\n|:--|--:|:-:|\n| **Haiku** | 1,204 | $4.12 |\n| `sonnet` & co | 310 | [report](https://e.com/r) |\n\nSonnet is *most* of it.";
    let parts = render_reply(md, &["https://wiki.example.com/costs".to_string()]);
    assert_eq!(parts.len(), 1);
    let reply = &parts[0];
    // The text is the code-block rendering, as before: the notification and the fallback.
    let code = "```\nModel        Calls            Cost\n-----------  -----  ------------------------\nHaiku        1,204           $4.12\nsonnet &amp; co    310  report (https://e.com/r)\n```";
    assert_eq!(
        reply.text,
        format!(
            "Costs by model:\n\n{code}\n\nSonnet is _most_ of it.\n\n*Sources*\n• <https://wiki.example.com/costs>"
        )
    );
    let blocks = reply.blocks.as_ref().expect("blocks");
    assert_eq!(blocks.len(), 3, "{blocks:#?}");
    assert_eq!(blocks[0], section("Costs by model:"));
    assert_eq!(
        blocks[1],
        json!({
            "type": "table",
            "rows": [
                [{"type": "raw_text", "text": "Model"}, {"type": "raw_text", "text": "Calls"}, {"type": "raw_text", "text": "Cost"}],
                [{"type": "raw_text", "text": "Haiku"}, {"type": "raw_text", "text": "1,204"}, {"type": "raw_text", "text": "$4.12"}],
                [{"type": "raw_text", "text": "sonnet & co"}, {"type": "raw_text", "text": "310"}, {"type": "raw_text", "text": "report"}]
            ],
            "column_settings": [
                {"align": "left", "is_wrapped": true},
                {"align": "right", "is_wrapped": true},
                {"align": "center", "is_wrapped": true}
            ]
        })
    );
    assert_eq!(blocks[2], section("Sonnet is _most_ of it.\n\n*Sources*\n• <https://wiki.example.com/costs>"));
}

#[test]
fn cells_are_plain_text_and_rows_are_padded_to_the_widest() {
    let md = "| A | B | C |\n|---|---|---|\n| ~~old~~ _new_ **bold** | [x](https://e.com) `y` | <https://auto.example> |\n| only one |";
    let parts = render_reply(md, &[]);
    let tables = table_blocks(&parts[0]);
    assert_eq!(tables.len(), 1);
    assert_eq!(
        cells(tables[0]),
        vec![
            vec!["A", "B", "C"],
            vec!["old new bold", "x y", "https://auto.example"],
            // A missing cell is a space: every row has the same number of cells.
            vec!["only one", " ", " "],
        ]
    );
    let settings = tables[0]["column_settings"].as_array().expect("settings");
    assert!(settings.iter().all(|s| s["align"] == "left"), "no alignment given: left");
    // A table alone: no section blocks around it.
    assert_eq!(parts[0].blocks.as_ref().map(Vec::len), Some(1));
    assert!(!parts[0].text.contains("**") && !parts[0].text.contains('|'), "{}", parts[0].text);
}

#[test]
fn tables_over_slacks_limits_stay_code_blocks() {
    for (rows, columns, block) in [(100, 3, true), (101, 3, false), (3, 20, true), (3, 21, false)] {
        let md = format!("Intro\n\n{}\nOutro", markdown_table(rows, columns));
        let parts = render_reply(&md, &[]);
        assert_eq!(parts.len(), 1, "{rows}x{columns}");
        let reply = &parts[0];
        assert!(reply.text.starts_with("Intro\n\n```\nh0"), "{rows}x{columns}: {}", reply.text);
        let tables = table_blocks(reply);
        if block {
            assert_eq!(tables.len(), 1, "{rows}x{columns}");
            let cells = cells(tables[0]);
            assert_eq!(cells.len(), rows);
            assert!(cells.iter().all(|r| r.len() == columns));
            assert_eq!(cells[rows - 1][columns - 1], format!("r{}c{}", rows - 1, columns - 1));
        } else {
            assert!(tables.is_empty(), "{rows}x{columns}");
            assert_eq!(reply.blocks, None, "{rows}x{columns}: text only");
        }
    }
}

#[test]
fn only_the_first_table_of_a_message_is_a_block() {
    let md = "First:\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\nSecond:\n\n| c | d |\n|---|--:|\n| 3 | 4 |\n\nEnd.";
    let parts = render_reply(md, &[]);
    assert_eq!(parts.len(), 1);
    let blocks = parts[0].blocks.as_ref().expect("blocks");
    assert_eq!(blocks.len(), 3, "{blocks:#?}");
    assert_eq!(blocks[0], section("First:"));
    assert_eq!(cells(&blocks[1]), vec![vec!["a", "b"], vec!["1", "2"]]);
    assert_eq!(blocks[2], section("Second:\n\n```\nc  d\n-  -\n3  4\n```\n\nEnd."));
    assert_eq!(table_blocks(&parts[0]).len(), 1, "Slack allows one table per message");
}

#[test]
fn answers_without_a_top_level_table_have_no_blocks() {
    assert_eq!(render_reply("Plain **answer** with `code`.", &[]), vec![Reply::plain("Plain *answer* with `code`.")]);
    // A table block cannot be quoted or sit in a list item: that table stays a code block.
    let quoted = render_reply("> | a | b |\n> |---|---|\n> | 1 | 2 |", &[]);
    assert_eq!(quoted.len(), 1);
    assert_eq!(quoted[0].blocks, None);
    assert!(quoted[0].text.starts_with("> ```"), "{}", quoted[0].text);
}

#[test]
fn a_paragraph_appended_to_a_reply_goes_into_its_text_and_blocks() {
    let mut reply = render_reply("| a |\n|---|\n| 1 |", &[]).remove(0);
    reply.push_paragraph("_notice_");
    assert!(reply.text.ends_with("```\n\n_notice_"), "{}", reply.text);
    let blocks = reply.blocks.as_ref().expect("blocks");
    assert_eq!(blocks.last(), Some(&section("_notice_")));
    let mut plain = Reply::plain("text");
    plain.push_paragraph("_notice_");
    assert_eq!(plain, Reply::plain("text\n\n_notice_"));
}

#[test]
fn a_pushed_block_follows_the_content_and_keeps_the_fallback_text() {
    let buttons = json!({"type": "context_actions", "elements": []});
    let mut plain = Reply::plain("Hello *world*");
    plain.push_block(buttons.clone());
    assert_eq!(plain.text, "Hello *world*");
    let blocks = plain.blocks.as_ref().expect("blocks");
    assert_eq!(blocks.len(), 2);
    assert_eq!(blocks[0], json!({"type": "section", "text": {"type": "mrkdwn", "text": "Hello *world*"}}));
    assert_eq!(blocks[1], buttons);

    let mut table = render_reply("Costs:\n\n| A | B |\n|---|---|\n| 1 | 2 |", &[]).remove(0);
    let before = table.blocks.clone().expect("a table block");
    table.push_block(buttons.clone());
    let after = table.blocks.expect("blocks");
    assert_eq!(&after[..before.len()], &before[..]);
    assert_eq!(after.last(), Some(&buttons));

    // A long part becomes several sections, none over Slack's section limit.
    let mut long = Reply::plain("word ".repeat(700).trim_end());
    long.push_block(buttons);
    let blocks = long.blocks.expect("blocks");
    assert_eq!(blocks.len(), 3);
    assert!(blocks[..2].iter().all(|b| b["text"]["text"].as_str().is_some_and(|t| t.chars().count() <= 3000)));
}
