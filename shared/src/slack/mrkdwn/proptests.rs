//! Property tests of rendering and splitting over generated Markdown (issue 13): no panic, a
//! bounded number of parts each within Slack's limit, every word kept once and in order, and no
//! raw `<`, `>` or `&` outside the links the renderer writes.
//!
//! CI runs [`CI_CASES`] cases per property (fewer for huge inputs); the long run:
//! `PROPTEST_CASES=100000 cargo test --workspace --lib slack::mrkdwn::proptests`.

use proptest::prelude::*;

use super::links::is_link_target;
use super::split::{fence_margin_cap, open_fence_after};
use super::*;

/// Cases per property in CI (PROPTEST_CASES overrides).
const CI_CASES: u32 = 256;

fn config(ci_cases: u32) -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(ci_cases);
    ProptestConfig { cases, failure_persistence: None, ..ProptestConfig::default() }
}

/// Stands for a word in generated Markdown until [`number_words`] numbers it `qz<n>`. Nothing
/// else generated holds a `q` or a `z`, so the words of any output can be found and counted.
const WORD: &str = "\u{E000}";

/// Replaces each [`WORD`] with the next numbered word; the words in order.
fn number_words(markdown: &str) -> (String, Vec<String>) {
    let mut words = Vec::new();
    let mut out = String::with_capacity(markdown.len() + 8 * markdown.matches(WORD).count());
    for (i, piece) in markdown.split(WORD).enumerate() {
        if i > 0 {
            let word = format!("qz{i}");
            out.push_str(&word);
            words.push(word);
        }
        out.push_str(piece);
    }
    (out, words)
}

/// The numbered words of a text, in order.
fn words_of(text: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find("qz") {
        let digits: String = rest[at + 2..].chars().take_while(char::is_ascii_digit).collect();
        words.push(format!("qz{digits}"));
        rest = &rest[at + 2 + digits.len()..];
    }
    words
}

/// A word of filler text: letters, digits and other scripts, never `q`, `z`, `:`, `@` or `|`.
fn filler() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => "[a-pr-y0-9]{1,12}",
        2 => "[éüñßøåçœ日本語中文한국어ا𝔘🙂👍🏽]{1,8}",
        1 => "[a-p]{1,3}\u{301}",
    ]
}

/// Text that means something to Markdown or to Slack.
fn hostile() -> impl Strategy<Value = String> {
    prop::sample::select(vec![
        "<",
        ">",
        "&",
        "&amp;",
        "&lt;",
        "&#60;!channel&#62;",
        "<!channel>",
        "<!here|here>",
        "<@U123>",
        "<#C1|general>",
        "<https://evil.example|click>",
        "<javascript:alert(1)>",
        "*",
        "**",
        "_",
        "~~",
        "`",
        "``",
        "\\",
        "[",
        "]",
        "(",
        ")",
        "#",
        "<b>",
        "</div>",
        "<!-- c -->",
        "```",
        "~~~",
        "%3E",
        "&&",
        "<<>>",
        "!",
        "\t",
    ])
    .prop_map(str::to_string)
}

/// A run of one character with no space in it, now and then longer than a message.
fn long_run() -> impl Strategy<Value = String> {
    let length = prop_oneof![6 => 1usize..300, 1 => 300usize..6_000];
    (prop::sample::select(vec!["x", "&<", "é", "日", "-", "*"]), length).prop_map(|(s, n)| s.repeat(n))
}

/// A link or image target: web, mail, and what must not become a link.
fn target() -> impl Strategy<Value = String> {
    prop_oneof![
        "https://e\\.com/[a-p0-9/._-]{0,40}".prop_map(|s| s.to_string()),
        "http://E\\.com/a\\?b=[0-9]&c=[<>|]".prop_map(|s| s.to_string()),
        "HTTPS://e\\.com/[a-p]{0,300}".prop_map(|s| s.to_string()),
        prop::sample::select(vec![
            "mailto:ops@e.com",
            "javascript:alert(1)",
            "JavaScript:alert(1)",
            "slack://open?team=T1",
            "!channel",
            "@U123",
            "<!channel>",
            "<https://e.com/a b>",
            "/relative/path",
            "",
            "ftp://e.com/f",
            "data:text/html,<b>x</b>",
            "https://e.com/<!here>",
            "https://e.com/a\u{a0}b\u{2028}c\u{85}d",
            "<https://e.com/a\u{7}b>",
            "<https://e.com/a\tb>",
        ])
        .prop_map(str::to_string),
    ]
}

/// A few words and filler, for a link label or a table cell.
fn short_text() -> impl Strategy<Value = String> {
    prop::collection::vec(prop_oneof![3 => Just(WORD.to_string()), 2 => filler()], 1..5).prop_map(|w| w.join(" "))
}

/// Inline Markdown: words, filler, markup, links, code spans, emphasis.
fn inline() -> impl Strategy<Value = String> {
    let item = prop_oneof![
        6 => Just(WORD.to_string()),
        4 => filler(),
        3 => hostile(),
        1 => long_run(),
        2 => (short_text(), target()).prop_map(|(l, t)| format!("[{l}]({t})")),
        1 => (short_text(), target()).prop_map(|(l, t)| format!("![{l}]({t})")),
        1 => Just(format!("`{WORD} < &`")),
        1 => Just(format!("**{WORD}**")),
        1 => Just(format!("_{WORD}_")),
        1 => Just(format!("~~{WORD}~~")),
        1 => Just("<https://auto.example/a?b=1&c=2>".to_string()),
    ];
    // A line starts with filler: a fence there would take the rest of the line as its info
    // string, which the renderer drops on purpose (it is the language).
    (filler(), prop::collection::vec(item, 0..10)).prop_map(|(first, items)| {
        let mut line = first;
        for item in items {
            line.push(' ');
            line.push_str(&item);
        }
        line
    })
}

/// A fenced code block: either fence, odd and long info strings, lines that look like fences,
/// sometimes never closed.
fn fenced_code() -> impl Strategy<Value = String> {
    let fence = (prop::sample::select(vec!['`', '~']), 3usize..6).prop_map(|(c, n)| c.to_string().repeat(n));
    let info = prop_oneof![
        Just(String::new()),
        Just("rust".to_string()),
        (1usize..300).prop_map(|n| "x".repeat(n)),
        (300usize..5_000).prop_map(|n| "x".repeat(n)),
        Just("py`thon".to_string()),
        Just("~~~ tilde".to_string()),
        Just("```".to_string()),
    ];
    let line = prop_oneof![
        12 => Just(format!("let {WORD} = a < b && c > d;")),
        1 => Just("```".to_string()),
        1 => Just("```python".to_string()),
        1 => (1usize..300).prop_map(|n| format!("```{}", "y".repeat(n))),
        1 => Just("~~~".to_string()),
        1 => Just("    ```".to_string()),
        1 => Just("> ```".to_string()),
        1 => Just(String::new()),
        2 => long_run(),
    ];
    (fence, info, prop::collection::vec(line, 0..30), any::<bool>()).prop_map(|(fence, info, lines, closed)| {
        let mut block = format!("{fence}{info}\n");
        for line in lines {
            block.push_str(&line);
            block.push('\n');
        }
        if closed {
            block.push_str(&fence);
        }
        block
    })
}

/// A table: a header of 1-6 cells, rows no wider than the header (wider cells are dropped by
/// Markdown, words and all).
fn table() -> impl Strategy<Value = String> {
    let cell = prop::collection::vec(
        prop_oneof![3 => Just(WORD.to_string()), 2 => filler(), 1 => Just("&<>".to_string())],
        1..3,
    )
    .prop_map(|w| w.join(" "));
    (1usize..7)
        .prop_flat_map(move |columns| {
            let header = prop::collection::vec(cell.clone(), columns);
            let rows = prop::collection::vec(prop::collection::vec(cell.clone(), 1..=columns), 0..12);
            let align = prop::collection::vec(prop::sample::select(vec!["---", ":--", "--:", ":-:"]), columns);
            (header, align, rows)
        })
        .prop_map(|(header, align, rows)| {
            let line = |cells: &[String]| format!("| {} |", cells.join(" | "));
            let mut table = format!("{}\n| {} |", line(&header), align.join(" | "));
            for row in rows {
                table.push('\n');
                table.push_str(&line(&row));
            }
            table
        })
}

/// A block with no blocks inside.
fn leaf_block() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => prop::collection::vec(inline(), 1..4).prop_map(|lines| lines.join("\n")),
        1 => (1usize..7, inline()).prop_map(|(n, text)| format!("{} {text}", "#".repeat(n))),
        3 => fenced_code(),
        1 => prop::collection::vec(Just(format!("    code {WORD} <x>")), 1..5).prop_map(|l| l.join("\n")),
        2 => table(),
        1 => inline().prop_map(|text| format!("<div>\n{text}\n</div>")),
        1 => prop::sample::select(vec!["---", "***", "- - -"]).prop_map(str::to_string),
        1 => long_run(),
    ]
}

/// Indents every line but the first by `width` spaces, after `marker` on the first.
fn item(marker: &str, body: &str) -> String {
    let pad = " ".repeat(marker.chars().count());
    let mut out = String::new();
    for (i, line) in body.lines().enumerate() {
        if i == 0 {
            out.push_str(marker);
        } else {
            out.push('\n');
            if !line.is_empty() {
                out.push_str(&pad);
            }
        }
        out.push_str(line);
    }
    out
}

/// A block: a leaf, or lists and quotes of blocks, nested a few deep.
fn block() -> impl Strategy<Value = String> {
    leaf_block().prop_recursive(3, 16, 4, |inner| {
        let blocks = prop::collection::vec(inner, 1..4).prop_map(|b| b.join("\n\n"));
        prop_oneof![
            (any::<bool>(), prop::collection::vec(blocks.clone(), 1..5)).prop_map(|(ordered, items)| {
                let items: Vec<String> = items
                    .iter()
                    .enumerate()
                    .map(|(n, body)| item(&if ordered { format!("{}. ", n + 1) } else { "- ".to_string() }, body))
                    .collect();
                items.join("\n")
            }),
            blocks.prop_map(|body| {
                body.lines()
                    .map(|l| if l.is_empty() { ">".to_string() } else { format!("> {l}") })
                    .collect::<Vec<_>>()
                    .join("\n")
            }),
        ]
    })
}

/// A Markdown answer of up to `max_blocks` blocks, words still [`WORD`].
fn raw_markdown(max_blocks: usize) -> impl Strategy<Value = String> {
    prop::collection::vec(block(), 0..max_blocks).prop_map(|blocks| blocks.join("\n\n"))
}

/// A Markdown answer of up to `max_blocks` blocks, its words numbered.
fn markdown(max_blocks: usize) -> impl Strategy<Value = (String, Vec<String>)> {
    raw_markdown(max_blocks).prop_map(|md| number_words(&md))
}

/// Sources as the agent cites them: URLs, S3 keys, hostile text (no `q` or `z`).
fn sources() -> impl Strategy<Value = Vec<String>> {
    let source = prop_oneof![
        "https://docs\\.example\\.com/[a-p0-9]{1,20}".prop_map(|s| s.to_string()),
        Just("s3://kb-bucket/policies/leave <2024>.pdf".to_string()),
        Just("<!channel>".to_string()),
        Just("https://e.com/a b".to_string()),
        Just("javascript:alert(1)".to_string()),
        Just("  ".to_string()),
    ];
    prop::collection::vec(source, 0..6)
}

/// The line prefix the renderer writes for quotes and list items.
fn strip_line_prefix(mut line: &str) -> &str {
    loop {
        let digits = line.bytes().take_while(u8::is_ascii_digit).count();
        line = if let Some(rest) = line.strip_prefix("> ") {
            rest
        } else if line == ">" {
            ""
        } else if let Some(rest) = line.strip_prefix(['>', ' ', '\t']) {
            rest
        } else if let Some(rest) = line.strip_prefix("• ") {
            rest
        } else if digits > 0 && line[digits..].starts_with(". ") {
            &line[digits + 2..]
        } else {
            return line;
        };
    }
}

/// Whether `&` at the start of `text` is one of the three escapes.
fn is_escape(text: &str) -> bool {
    ["&amp;", "&lt;", "&gt;"].iter().any(|e| text.starts_with(e))
}

/// Checks that mrkdwn has no raw `<`, `>` or `&` but in the links the renderer writes:
/// `<target>` or `<target|label>`, the target http, https or mailto with nothing that would
/// end or split it, the label escaped.
fn check_escaped(text: &str) -> Result<(), String> {
    for line in text.lines() {
        let body = strip_line_prefix(line);
        let mut i = 0;
        while i < body.len() {
            let rest = &body[i..];
            match rest.as_bytes()[0] {
                b'<' => {
                    let end = rest.find('>').ok_or_else(|| format!("unclosed < in {line:?}"))?;
                    let inner = &rest[1..end];
                    let (target, label) = inner.split_once('|').unwrap_or((inner, ""));
                    if !is_link_target(target) {
                        return Err(format!("link to {target:?} in {line:?}"));
                    }
                    if target.chars().any(|c| c.is_whitespace() || c.is_control() || c == '<') {
                        return Err(format!("broken link target {target:?} in {line:?}"));
                    }
                    if label.contains('<') || label.match_indices('&').any(|(j, _)| !is_escape(&label[j..])) {
                        return Err(format!("raw markup in the label {label:?} in {line:?}"));
                    }
                    i += end + 1;
                }
                b'>' => return Err(format!("raw > in {line:?}")),
                b'&' if !is_escape(rest) => return Err(format!("raw & in {line:?}")),
                _ => i += rest.chars().next().map_or(1, char::len_utf8),
            }
        }
    }
    Ok(())
}

/// Whether `needle`'s characters appear in `haystack` in order.
fn is_subsequence(needle: &str, haystack: &str) -> bool {
    let mut hay = haystack.chars();
    needle.chars().all(|c| hay.any(|h| h == c))
}

fn non_space(text: &str) -> String {
    text.chars().filter(|c| !c.is_whitespace()).collect()
}

/// The properties of one reply, for any answer and sources.
fn check_reply(markdown: &str, words: &[String], sources: &[String]) -> Result<(), TestCaseError> {
    let parts = render_reply(markdown, sources);
    let rendered = to_mrkdwn(markdown);
    let mut full = rendered.clone();
    let section = sources_section(sources);
    if !section.is_empty() && !full.is_empty() {
        full.push_str("\n\n");
    }
    full.push_str(&section);

    // Bounded: the cap, and the floor each part takes of the text.
    let bound = full.chars().count() / part_floor(MAX_MESSAGE_CHARS) + 1;
    prop_assert!(parts.len() <= MAX_REPLY_PARTS, "{} parts", parts.len());
    prop_assert!(parts.len() <= bound, "{} parts for {} chars", parts.len(), full.chars().count());
    // Cut exactly when the text needs more messages than the cap (or its rendering stopped).
    let cut = parts.last().is_some_and(|p| p.text.ends_with(CUT_NOTICE));
    let whole = split_message(&full, MAX_MESSAGE_CHARS);
    if cut {
        prop_assert!(whole.len() > MAX_REPLY_PARTS || render(markdown).cut, "cut at {} parts", whole.len());
        prop_assert_eq!(parts.len(), MAX_REPLY_PARTS.min(whole.len()));
    } else {
        let texts: Vec<&str> = parts.iter().map(|p| p.text.as_str()).collect();
        prop_assert_eq!(texts, whole.iter().map(String::as_str).collect::<Vec<_>>());
    }

    for (n, part) in parts.iter().enumerate() {
        let chars = part.text.chars().count();
        prop_assert!(chars <= MAX_MESSAGE_CHARS, "part {n}: {chars} chars");
        prop_assert!(!part.text.trim().is_empty(), "part {n} is blank");
        if let Err(e) = check_escaped(&part.text) {
            return Err(TestCaseError::fail(format!("part {n}: {e}")));
        }
        if n + 1 < parts.len() {
            prop_assert!(open_fence_after("", &part.text, MAX_FENCE_MARGIN).is_none(), "part {n} ends in code");
        }
        if let Some(blocks) = &part.blocks {
            prop_assert!(blocks.len() <= MAX_BLOCKS);
            for b in blocks.iter().filter(|b| b["type"] == "section") {
                let text = b["text"]["text"].as_str().unwrap_or_default();
                prop_assert!(text.chars().count() <= MAX_SECTION_CHARS);
            }
        }
    }

    // Content: every word once, in order; a cut answer keeps a prefix of them.
    let all: String = parts.iter().map(|p| p.text.as_str()).collect::<Vec<_>>().join("\n");
    let out_words = words_of(&all);
    if cut {
        prop_assert!(words.starts_with(&out_words), "cut answer: words lost or reordered");
    } else {
        prop_assert_eq!(&out_words, &words.to_vec(), "words lost, copied or reordered");
    }
    Ok(())
}

proptest! {
    #![proptest_config(config(CI_CASES))]

    #[test]
    fn replies_are_bounded_complete_and_escaped((markdown, words) in markdown(8), sources in sources()) {
        check_reply(&markdown, &words, &sources)?;
    }

    #[test]
    fn split_parts_are_bounded_and_keep_the_text(text in mrkdwn_like(), max in prop_oneof![64usize..400, 400usize..5_000, Just(MAX_MESSAGE_CHARS)]) {
        let parts = split_message(&text, max);
        let chars = text.chars().count();
        prop_assert!(parts.len() <= chars / part_floor(max) + 1, "{} parts for {chars} chars, max {max}", parts.len());
        let margin_cap = fence_margin_cap(max);
        for (n, part) in parts.iter().enumerate() {
            prop_assert!(part.chars().count() <= max, "part {n}: {} chars: {part:?}", part.chars().count());
            prop_assert!(!part.trim().is_empty(), "part {n} is blank");
            if n + 1 < parts.len() {
                prop_assert!(open_fence_after("", part, margin_cap).is_none(), "part {n} ends in code");
            }
        }
        // Nothing lost: the text's characters (but whitespace) in order; nothing added but the
        // fences that close and reopen a code block across parts.
        let input = non_space(&text);
        let output = non_space(&parts.concat());
        prop_assert!(is_subsequence(&input, &output), "text lost or reordered");
        let added = output.chars().count() - input.chars().count();
        prop_assert!(added <= parts.len().saturating_sub(1) * 2 * (margin_cap + 3), "{added} characters added");
        let extra: String = {
            let mut hay = input.chars().peekable();
            output.chars().filter(|c| if hay.peek() == Some(c) { hay.next(); false } else { true }).collect()
        };
        prop_assert!(extra.chars().all(|c| c == '`' || c == '>'), "added {extra:?}");
    }
}

proptest! {
    #![proptest_config(config(8))]

    /// Answers of up to a few hundred thousand characters: still at most the cap.
    #[test]
    fn huge_replies_are_cut_not_multiplied(markdown in raw_markdown(16), repeat in 1usize..80) {
        let (markdown, words) = number_words(&vec![markdown; repeat].join("\n\n"));
        check_reply(&markdown, &words, &[])?;
    }
}

/// Text shaped like mrkdwn, and worse: fences of both kinds behind quotes, list markers and
/// long indentation, long lines, links, escapes, unicode, CRLF.
fn mrkdwn_like() -> impl Strategy<Value = String> {
    let line = prop_oneof![
        6 => prop::collection::vec(prop_oneof![filler(), hostile()], 1..12).prop_map(|w| w.join(" ")),
        3 => prop::sample::select(vec![
            "```", "```rust", "~~~", "> ```", "    ```", "• ```", "1. ```", "> > ```x", "``` ```", "````", "```\r",
        ]).prop_map(str::to_string),
        1 => (1usize..400).prop_map(|n| format!("{}```", " ".repeat(n))),
        1 => (1usize..200).prop_map(|n| format!("{}```", "> ".repeat(n))),
        1 => (1usize..6_000).prop_map(|n| format!("```{}", "i".repeat(n))),
        2 => long_run(),
        2 => ("[a-p ]{0,40}", "[a-p]{0,300}").prop_map(|(label, path)| format!("see <https://e.com/{path}|{label}> &amp; &lt;")),
        2 => Just(String::new()),
        1 => Just("\r".to_string()),
    ];
    prop::collection::vec(line, 0..120).prop_map(|lines| lines.join("\n"))
}
