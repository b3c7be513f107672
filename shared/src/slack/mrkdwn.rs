//! The agent's Markdown as Slack mrkdwn, split into messages Slack will not truncate.
//!
//! Rendering walks pulldown-cmark events (never regexes), so emphasis, links and code are
//! recognised exactly as CommonMark defines them.
//!
//! Tables: in the mrkdwn text a table is a fixed-width code block (mrkdwn has no tables). A
//! message part whose text holds a top-level table that fits Slack's `table` block also gets
//! Block Kit blocks: the text around it as mrkdwn sections and the table as a `table` block
//! (one per message, Slack's rule). The text stays the whole answer: it is the notification,
//! and the message Slack shows when it refuses the blocks.

use pulldown_cmark::{Alignment, Event, LinkType, Options, Parser, Tag, TagEnd};
use serde_json::{json, Value};

/// The most characters [`render_reply`] puts in one message (Slack truncates text over 4,000).
pub const MAX_MESSAGE_CHARS: usize = 3_900;
/// Slack's limits on a `table` block: rows (the header included) and cells per row.
pub const MAX_TABLE_ROWS: usize = 100;
pub const MAX_TABLE_COLUMNS: usize = 20;
/// Slack's limit on the text of one section block.
const MAX_SECTION_CHARS: usize = 3_000;
/// Slack's limit on the blocks of one message.
const MAX_BLOCKS: usize = 50;

/// [`split_message`] never splits into parts smaller than this, whatever it is asked.
const MIN_SPLIT_CHARS: usize = 64;

/// The most messages [`render_reply`] makes of one answer; the rest is cut, and the last
/// message says so ([`CUT_NOTICE`]).
pub const MAX_REPLY_PARTS: usize = 10;
/// Ends the last message of an answer cut at [`MAX_REPLY_PARTS`] messages.
pub const CUT_NOTICE: &str = "_The answer was cut here: it is too long for Slack._";
/// The most bytes of mrkdwn rendered from one answer. More than [`MAX_REPLY_PARTS`] messages
/// hold (a character is at most 4 bytes), so the cut never shows; it bounds the work and memory
/// of hostile input, where nested quotes or a wide table make the text grow much faster than
/// the Markdown.
const MAX_RENDER_BYTES: usize = MAX_REPLY_PARTS * MAX_MESSAGE_CHARS * 4;

const BULLET: &str = "•";
const RULE: &str = "──────────";

/// Escapes the three characters Slack treats as markup: `&`, `<`, `>`.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            _ => out.push(c),
        }
    }
    out
}

/// Converts Markdown to Slack mrkdwn (at most about 156 kB of it: more than Slack is ever sent).
pub fn to_mrkdwn(markdown: &str) -> String {
    render(markdown).text
}

/// Markdown rendered as mrkdwn.
struct Rendered {
    text: String,
    /// The top-level tables written into the text as code blocks.
    tables: Vec<RenderedTable>,
    /// Whether the text stops at [`MAX_RENDER_BYTES`] before the end of the Markdown.
    cut: bool,
}

fn render(markdown: &str) -> Rendered {
    let mut options = Options::empty();
    options.insert(Options::ENABLE_STRIKETHROUGH);
    options.insert(Options::ENABLE_TABLES);
    let mut renderer = Renderer::default();
    for event in Parser::new_ext(markdown, options) {
        renderer.event(event);
        if renderer.cut {
            break;
        }
    }
    let tables = std::mem::take(&mut renderer.tables);
    let cut = renderer.cut;
    Rendered { text: renderer.finish(), tables, cut }
}

/// One Slack message of a rendered answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    /// The whole part as mrkdwn, tables as fixed-width code blocks: the message's `text`.
    pub text: String,
    /// The same part as Block Kit (mrkdwn sections around one `table` block), when it holds a
    /// table Slack can show as one; None means a text-only message.
    pub blocks: Option<Vec<Value>>,
}

impl Reply {
    /// A text-only message.
    pub fn plain(text: impl Into<String>) -> Reply {
        Reply { text: text.into(), blocks: None }
    }

    /// Appends a paragraph of mrkdwn (e.g. a notice) to the text and to the blocks.
    pub fn push_paragraph(&mut self, mrkdwn: &str) {
        if !self.text.is_empty() {
            self.text.push_str("\n\n");
        }
        self.text.push_str(mrkdwn);
        if let Some(blocks) = &mut self.blocks {
            blocks.extend(sections(mrkdwn));
        }
        if self.blocks.as_ref().is_some_and(|b| b.len() > MAX_BLOCKS) {
            self.blocks = None;
        }
    }

    /// A message part: with blocks when it holds the whole code block of a table that fits a
    /// `table` block (the first such table; any other stays a code block).
    fn from_part(text: String, tables: &[RenderedTable]) -> Reply {
        let first = tables
            .iter()
            .filter(|t| t.fits())
            .filter_map(|t| text.find(&t.code).map(|at| (at, t)))
            .min_by_key(|(at, _)| *at);
        let Some((at, table)) = first else { return Reply::plain(text) };
        let mut blocks = sections(&text[..at]);
        blocks.push(table.block());
        blocks.extend(sections(&text[at + table.code.len()..]));
        if blocks.len() > MAX_BLOCKS {
            return Reply::plain(text);
        }
        Reply { text, blocks: Some(blocks) }
    }
}

/// Mrkdwn as section blocks of at most [`MAX_SECTION_CHARS`]; none for blank text.
fn sections(mrkdwn: &str) -> Vec<Value> {
    split_message(mrkdwn, MAX_SECTION_CHARS)
        .into_iter()
        .map(|text| json!({ "type": "section", "text": { "type": "mrkdwn", "text": text } }))
        .collect()
}

/// The answer as mrkdwn, then a `*Sources*` section when there are sources, split into
/// messages of at most [`MAX_MESSAGE_CHARS`] characters, each with its table block when it has
/// a table that fits one. Empty when there is nothing to say. At most [`MAX_REPLY_PARTS`]
/// messages: a longer answer is cut, and its last message ends with [`CUT_NOTICE`].
pub fn render_reply(answer_markdown: &str, sources: &[String]) -> Vec<Reply> {
    let Rendered { mut text, tables, cut } = render(answer_markdown);
    let section = sources_section(sources);
    if !section.is_empty() {
        if !text.is_empty() {
            text.push_str("\n\n");
        }
        text.push_str(&section);
    }
    let mut parts = split(&text, MAX_MESSAGE_CHARS, MAX_REPLY_PARTS + 1);
    if cut || parts.len() > MAX_REPLY_PARTS {
        parts.truncate(MAX_REPLY_PARTS);
        let last = parts.pop().unwrap_or_default();
        parts.push(with_cut_notice(&last));
    }
    parts.into_iter().map(|part| Reply::from_part(part, &tables)).collect()
}

/// The last message of a cut answer: as much of `part` as leaves room for the notice, any
/// code block closed, then [`CUT_NOTICE`].
fn with_cut_notice(part: &str) -> String {
    let closing = 1 + MAX_FENCE_MARGIN + 3;
    let room = MAX_MESSAGE_CHARS - CUT_NOTICE.chars().count() - 2 - closing;
    let mut kept = split_message(part, room).into_iter().next().unwrap_or_default();
    if let Some(open) = open_fence_after("", &kept, MAX_FENCE_MARGIN) {
        kept.push('\n');
        kept.push_str(&open.margin);
        kept.push_str("```");
    }
    if !kept.is_empty() {
        kept.push_str("\n\n");
    }
    kept.push_str(CUT_NOTICE);
    kept
}

/// `*Sources*` then one `• source` line per distinct source; URLs become links.
fn sources_section(sources: &[String]) -> String {
    let mut seen: Vec<&str> = Vec::new();
    for source in sources.iter().map(|s| s.trim()).filter(|s| !s.is_empty()) {
        if !seen.contains(&source) {
            seen.push(source);
        }
    }
    if seen.is_empty() {
        return String::new();
    }
    let mut out = String::from("*Sources*");
    for source in seen {
        out.push('\n');
        out.push_str(BULLET);
        out.push(' ');
        if is_web_url(source) {
            out.push('<');
            out.push_str(&link_target(source));
            out.push('>');
        } else {
            out.push_str(&escape(source));
        }
    }
    out
}

fn is_web_url(text: &str) -> bool {
    (has_scheme(text, "https://") || has_scheme(text, "http://")) && !text.chars().any(char::is_whitespace)
}

/// Whether a link's target may become a live Slack link: http, https and mailto only.
fn is_link_target(url: &str) -> bool {
    ["https://", "http://", "mailto:"].iter().any(|scheme| has_scheme(url, scheme))
}

/// Whether `url` starts with `scheme`, in any case.
fn has_scheme(url: &str, scheme: &str) -> bool {
    url.get(..scheme.len()).is_some_and(|s| s.eq_ignore_ascii_case(scheme))
}

/// A URL made safe inside `<...>`: characters that would end or split the link (`<`, `>`, `|`,
/// any space or control character) are percent-encoded; tabs and newlines are dropped, as
/// browsers do. `&` stays as is (Slack accepts it inside the angle brackets).
fn link_target(url: &str) -> String {
    let mut out = String::with_capacity(url.len());
    for c in url.trim().chars() {
        match c {
            '\n' | '\r' | '\t' => {}
            '<' | '>' | '|' => out.push_str(&format!("%{:02X}", c as u32)),
            c if c.is_whitespace() || c.is_control() => {
                let mut bytes = [0u8; 4];
                for b in c.encode_utf8(&mut bytes).bytes() {
                    out.push_str(&format!("%{b:02X}"));
                }
            }
            _ => out.push(c),
        }
    }
    out
}

/// Splits `text` into parts of at most `max_chars` characters (not bytes), preferring
/// paragraph, then line, then word boundaries in the last quarter of a part, and never cutting
/// inside a `<link>` or an `&amp;`-style escape when it can help it. A part that ends inside a
/// code block gets a closing fence, and the next part reopens it with a bare fence (quote
/// markers and indentation kept, up to [`MAX_FENCE_MARGIN`] characters). `max_chars` below 64
/// is treated as 64.
///
/// Every part but the last holds at least three quarters of what a part can hold after the
/// fence overhead, so a text of `n` characters makes at most `n / part_floor(max) + 1` parts.
pub fn split_message(text: &str, max_chars: usize) -> Vec<String> {
    split(text, max_chars, usize::MAX)
}

/// [`split_message`] that stops after `max_parts` parts.
fn split(text: &str, max_chars: usize, max_parts: usize) -> Vec<String> {
    let max = max_chars.max(MIN_SPLIT_CHARS);
    let margin_cap = fence_margin_cap(max);
    // Room for "\n" + the longest closing fence this text could need.
    let reserve = closing_reserve(text, margin_cap);

    let mut parts = Vec::new();
    let mut rest = text.trim_end().trim_start_matches(['\n', '\r']);
    let mut reopen: Option<String> = None;
    while parts.len() < max_parts && !rest.trim().is_empty() {
        let head = match reopen.take() {
            Some(margin) => margin + "```\n",
            None => String::new(),
        };
        // The head is at most max/8 + 4 characters: the budget stays most of a part.
        let budget = max.saturating_sub(head.chars().count()).max(1);
        if fits(rest, budget) {
            parts.push(head + rest);
            break;
        }

        let mut cut = find_cut(rest, budget);
        let mut open = open_fence_after(&head, &rest[..cut.at], margin_cap);
        if open.is_some() {
            // Ending inside code: leave room for the closing fence.
            let inner = budget.saturating_sub(reserve).max(1);
            cut = find_cut(rest, inner);
            open = open_fence_after(&head, &rest[..cut.at], margin_cap);
            // Never end a part on a bare opening fence: move it to the next part, unless that
            // would leave this part less than full (see `min_fill`).
            if let Some(start) = open.as_ref().and_then(|f| f.start_in_piece) {
                let bare = rest[start..cut.at].lines().skip(1).all(|l| l.trim().is_empty());
                if bare && start > 0 && rest[..start].chars().count() >= min_fill(inner) {
                    cut = Cut { at: start, skip: 0 };
                    open = open_fence_after(&head, &rest[..cut.at], margin_cap);
                }
            }
        }

        let mut part = head;
        part.push_str(&rest[..cut.at]);
        let mut part = part.trim_end().to_string();
        if let Some(fence) = open {
            part.push('\n');
            part.push_str(&fence.margin);
            part.push_str("```");
            reopen = Some(fence.margin);
        }
        if !part.trim().is_empty() {
            parts.push(part);
        }
        rest = &rest[cut.at + cut.skip..];
        if reopen.is_none() {
            rest = rest.trim_start_matches(['\n', '\r']);
        }
    }
    parts
}

/// Whether `text` has at most `chars` characters (without counting all of a long text).
fn fits(text: &str, chars: usize) -> bool {
    text.len() <= chars || text.chars().nth(chars).is_none()
}

/// The least a part ending at a boundary holds of its `budget`: a boundary earlier than this
/// would leave a stub of a message, and the number of parts could grow past len/max.
fn min_fill(budget: usize) -> usize {
    budget - budget / 4
}

/// The most characters of a fence's margin repeated when a code block is reopened in the next
/// part: deeper nesting reopens at the left edge, so a part's overhead stays small.
pub const MAX_FENCE_MARGIN: usize = 32;

/// The margin cap for parts of `max` characters: at most an eighth of a part.
fn fence_margin_cap(max: usize) -> usize {
    (max / 8).min(MAX_FENCE_MARGIN)
}

/// The fewest characters of the text every part but the last takes, for parts of at most
/// `max_chars` characters: three quarters of a part less a reopened and a closing fence.
pub fn part_floor(max_chars: usize) -> usize {
    let max = max_chars.max(MIN_SPLIT_CHARS);
    let cap = fence_margin_cap(max);
    // Head: margin + "```\n"; closing: "\n" + margin + "```".
    min_fill(max - 2 * (cap + 4))
}

/// Where to end a part: `at` bytes of the rest go in it, then `skip` bytes are dropped.
#[derive(Debug, Clone, Copy)]
struct Cut {
    at: usize,
    skip: usize,
}

/// The best place to end a part of at most `budget` characters taken from the start of `rest`.
fn find_cut(rest: &str, budget: usize) -> Cut {
    let limit = rest.char_indices().nth(budget).map_or(rest.len(), |(i, _)| i);
    if limit == rest.len() {
        return Cut { at: limit, skip: 0 };
    }
    // Candidate ends are char boundaries in [floor, limit]; the byte at `limit` starts the next
    // part. Ends before `floor` would leave too little in the part.
    let floor = rest.char_indices().nth(min_fill(budget)).map_or(limit, |(i, _)| i);
    let blocked = inside_markup(rest, limit);
    let candidates = rest[floor..limit]
        .char_indices()
        .map(|(i, _)| floor + i)
        .chain(std::iter::once(limit))
        .filter(|&i| i > 0 && !blocked[i]);
    let newlines_at = |i: usize| rest[i..].bytes().take_while(|b| *b == b'\n' || *b == b'\r').count();
    let (mut paragraph, mut line, mut space, mut any) = (None, None, None, None);
    for i in candidates {
        let after = &rest[i..];
        if after.starts_with("\n\n") || after.starts_with("\r\n\r\n") {
            paragraph = Some(i);
        }
        if after.starts_with('\n') || after.starts_with("\r\n") {
            line = Some(i);
        }
        if after.starts_with([' ', '\t']) {
            space = Some(i);
        }
        any = Some(i);
    }
    if let Some(i) = paragraph.or(line) {
        return Cut { at: i, skip: newlines_at(i) };
    }
    if let Some(i) = space {
        return Cut { at: i, skip: 1 };
    }
    // No boundary: a hard cut, before a link or escape it would split when there is room.
    Cut { at: any.unwrap_or(limit), skip: 0 }
}

/// For each byte position of `text` up to `limit` (included), whether ending a part there
/// would split a `<link>` (from after its `<` through its `>`, or to the end of the line when it
/// is not closed) or an escape (`&amp;`, `&lt;`, `&gt;`).
fn inside_markup(text: &str, limit: usize) -> Vec<bool> {
    let mut blocked = vec![false; limit + 1];
    let bytes = &text.as_bytes()[..limit];
    let mut link_open: Option<usize> = None;
    for (i, b) in bytes.iter().enumerate() {
        match b {
            b'<' if link_open.is_none() => link_open = Some(i),
            b'>' => {
                if let Some(open) = link_open.take() {
                    blocked[open + 1..=i].fill(true);
                }
            }
            b'\n' => {
                if let Some(open) = link_open.take() {
                    blocked[open + 1..i].fill(true);
                }
            }
            b'&' => {
                for entity in ["&amp;", "&lt;", "&gt;"] {
                    if text[i..].starts_with(entity) {
                        let end = (i + entity.len()).min(limit + 1);
                        blocked[i + 1..end].fill(true);
                    }
                }
            }
            _ => {}
        }
    }
    if let Some(open) = link_open {
        blocked[open + 1..].fill(true);
    }
    blocked
}

/// A code fence left open at the end of a piece of text.
struct OpenFence {
    /// What to put before the backticks to close it and reopen it: quote markers and
    /// indentation (see [`margin`]).
    margin: String,
    /// Where the opening line starts in the piece, when it is in the piece and not the head.
    start_in_piece: Option<usize>,
}

/// Whether `head` + `piece` ends inside a code block, and which fence opened it.
fn open_fence_after(head: &str, piece: &str, margin_cap: usize) -> Option<OpenFence> {
    let mut open: Option<OpenFence> = None;
    let mut scan = |text: &str, in_piece: bool| {
        let mut offset = 0;
        for line in text.split_inclusive('\n') {
            let start = offset;
            offset += line.len();
            let line = line.trim_end_matches(['\n', '\r']);
            let Some(prefix) = fence_prefix(line) else { continue };
            if line[prefix.len()..].matches("```").count() % 2 == 0 {
                continue; // ```inline``` on one line opens and closes
            }
            open = match open.take() {
                Some(_) => None,
                None => {
                    Some(OpenFence { margin: margin(prefix, margin_cap), start_in_piece: in_piece.then_some(start) })
                }
            };
        }
    };
    scan(head, false);
    scan(piece, true);
    open
}

/// For a fence line (optional indentation, `>` quote markers and list markers, then ```), what
/// precedes the backticks.
fn fence_prefix(line: &str) -> Option<&str> {
    let stripped = line.trim_start_matches(is_prefix_char);
    stripped.starts_with("```").then(|| &line[..line.len() - stripped.len()])
}

fn is_prefix_char(c: char) -> bool {
    matches!(c, ' ' | '\t' | '>' | '•' | '.') || c.is_ascii_digit()
}

/// The characters a closing fence may need: "\n", a margin, "```". A part can start anywhere in
/// a line, so any ``` may begin a fence line, with the prefix characters just before it (capped)
/// as its margin.
fn closing_reserve(text: &str, margin_cap: usize) -> usize {
    let longest = text
        .match_indices("```")
        .map(|(i, _)| text[..i].chars().rev().take(margin_cap).take_while(|c| is_prefix_char(*c)).count())
        .max()
        .unwrap_or(0);
    1 + longest + 3
}

/// A fence's prefix as the margin a reopened or closing fence repeats: quote markers kept, list
/// markers as spaces (a reopened fence is no new list item); none when longer than `cap`
/// characters.
fn margin(prefix: &str, cap: usize) -> String {
    if prefix.chars().count() > cap {
        return String::new();
    }
    prefix.chars().map(|c| if matches!(c, '>' | '\t') { c } else { ' ' }).collect()
}

/// A block container the current line sits in.
enum Container {
    Quote,
    /// A list item: its marker until the first line is written, then indentation.
    Item {
        marker: Option<String>,
        indent: usize,
    },
}

/// A link or image whose label is being collected.
struct PendingLink {
    url: String,
    link_type: LinkType,
    /// The label as plain text (unescaped).
    label: String,
}

/// A table being read. Each cell is kept twice: as the code block shows it (a link's URL in
/// brackets after its label) and as plain text for a table block (a link as its label).
#[derive(Default)]
struct Table {
    alignments: Vec<Alignment>,
    rows: Vec<Vec<String>>,
    row: Vec<String>,
    cell: String,
    plain_rows: Vec<Vec<String>>,
    plain_row: Vec<String>,
    plain_cell: String,
}

/// A top-level table, written into the text as a code block.
#[derive(Debug, Clone)]
struct RenderedTable {
    /// Its code block, exactly as written in the text (fences included).
    code: String,
    /// Header row first; cells as plain text.
    rows: Vec<Vec<String>>,
    alignments: Vec<Alignment>,
}

impl RenderedTable {
    fn columns(&self) -> usize {
        self.rows.iter().map(Vec::len).max().unwrap_or(0)
    }

    /// Whether Slack's `table` block can hold it.
    fn fits(&self) -> bool {
        let columns = self.columns();
        !self.rows.is_empty() && self.rows.len() <= MAX_TABLE_ROWS && (1..=MAX_TABLE_COLUMNS).contains(&columns)
    }

    /// The `table` block: raw_text cells, every row as wide as the widest, alignment per column.
    fn block(&self) -> Value {
        let columns = self.columns();
        let rows: Vec<Value> = self
            .rows
            .iter()
            .map(|row| {
                let cells: Vec<Value> = (0..columns)
                    .map(|c| {
                        // An empty text is likely refused: a blank cell is a space.
                        let text = row.get(c).map(String::as_str).filter(|t| !t.is_empty()).unwrap_or(" ");
                        json!({ "type": "raw_text", "text": text })
                    })
                    .collect();
                Value::Array(cells)
            })
            .collect();
        let settings: Vec<Value> = (0..columns)
            .map(|c| {
                let align = match self.alignments.get(c) {
                    Some(Alignment::Center) => "center",
                    Some(Alignment::Right) => "right",
                    _ => "left",
                };
                json!({ "align": align, "is_wrapped": true })
            })
            .collect();
        json!({ "type": "table", "rows": rows, "column_settings": settings })
    }
}

#[derive(Default)]
struct Renderer {
    out: String,
    containers: Vec<Container>,
    /// One per open list: the next number, or None for bullets.
    lists: Vec<Option<u64>>,
    /// Whether the current output line has been started (its prefix written).
    line_open: bool,
    /// A block ended: the next block is separated by a blank line (outside list items).
    gap_pending: bool,
    heading_depth: usize,
    in_code_block: bool,
    links: Vec<PendingLink>,
    table: Option<Table>,
    /// The top-level tables written so far.
    tables: Vec<RenderedTable>,
    /// The output reached [`MAX_RENDER_BYTES`]: nothing more is written.
    cut: bool,
}

impl Renderer {
    fn event(&mut self, event: Event<'_>) {
        match event {
            Event::Start(tag) => self.start(tag),
            Event::End(tag) => self.end(tag),
            Event::Text(text) => {
                if self.in_code_block {
                    self.write(&escape(&text));
                } else {
                    self.inline_text(&text);
                }
            }
            Event::Code(code) => self.inline_code(&code),
            Event::Html(html) => self.write(&escape(&html)),
            Event::InlineHtml(html) => {
                let tag: String = html.chars().filter(|c| !c.is_whitespace()).collect();
                if matches!(tag.to_ascii_lowercase().as_str(), "<br>" | "<br/>") {
                    self.line_break();
                } else {
                    self.inline_text(&html);
                }
            }
            Event::SoftBreak | Event::HardBreak => self.line_break(),
            Event::Rule => {
                self.start_block();
                self.write(RULE);
                self.end_block();
            }
            Event::TaskListMarker(done) => self.inline_text(if done { "☑ " } else { "☐ " }),
            Event::FootnoteReference(name) => self.inline_text(&format!("[{name}]")),
            Event::InlineMath(math) | Event::DisplayMath(math) => self.inline_code(&math),
        }
    }

    fn start(&mut self, tag: Tag<'_>) {
        match tag {
            Tag::Paragraph | Tag::HtmlBlock => self.start_block(),
            Tag::Heading { .. } => {
                self.start_block();
                self.heading_depth += 1;
                self.write("*");
            }
            Tag::BlockQuote(_) => {
                self.start_block();
                self.containers.push(Container::Quote);
            }
            Tag::CodeBlock(_) => {
                // The language is dropped: Slack shows it as the first line of code.
                self.start_block();
                self.write("```\n");
                self.in_code_block = true;
            }
            Tag::List(start) => {
                self.start_block();
                self.lists.push(start);
            }
            Tag::Item => {
                self.end_line();
                let marker = match self.lists.last_mut() {
                    Some(Some(n)) => {
                        let marker = format!("{n}. ");
                        *n += 1;
                        marker
                    }
                    _ => format!("{BULLET} "),
                };
                let indent = marker.chars().count().max(4);
                self.containers.push(Container::Item { marker: Some(marker), indent });
            }
            Tag::Table(alignments) => {
                self.start_block();
                self.table = Some(Table { alignments, ..Table::default() });
            }
            Tag::TableHead | Tag::TableRow => {
                if let Some(table) = &mut self.table {
                    table.row.clear();
                    table.plain_row.clear();
                }
            }
            Tag::TableCell => {
                if let Some(table) = &mut self.table {
                    table.cell.clear();
                    table.plain_cell.clear();
                }
            }
            Tag::Emphasis => self.marker("_"),
            // A heading is already bold; nested asterisks would end it early.
            Tag::Strong if self.heading_depth == 0 => self.marker("*"),
            Tag::Strikethrough => self.marker("~"),
            Tag::Link { link_type, dest_url, .. } | Tag::Image { link_type, dest_url, .. } => {
                self.links.push(PendingLink { url: dest_url.to_string(), link_type, label: String::new() });
            }
            _ => {}
        }
    }

    fn end(&mut self, tag: TagEnd) {
        match tag {
            TagEnd::Paragraph | TagEnd::HtmlBlock => self.end_block(),
            TagEnd::Heading(_) => {
                self.write("*");
                self.heading_depth = self.heading_depth.saturating_sub(1);
                self.end_block();
            }
            TagEnd::BlockQuote(_) => {
                self.end_line();
                self.containers.pop();
                self.end_block();
            }
            TagEnd::CodeBlock => {
                self.end_line();
                self.write("```");
                self.in_code_block = false;
                self.end_block();
            }
            TagEnd::List(_) => {
                self.lists.pop();
                self.end_block();
            }
            TagEnd::Item => {
                // An empty item still shows its marker.
                if matches!(self.containers.last(), Some(Container::Item { marker: Some(_), .. })) {
                    self.open_line();
                }
                self.end_line();
                self.containers.pop();
            }
            TagEnd::TableCell => {
                if let Some(table) = &mut self.table {
                    let cell = std::mem::take(&mut table.cell);
                    table.row.push(cell.trim().to_string());
                    let plain = std::mem::take(&mut table.plain_cell);
                    table.plain_row.push(plain.trim().to_string());
                }
            }
            TagEnd::TableHead | TagEnd::TableRow => {
                if let Some(table) = &mut self.table {
                    let row = std::mem::take(&mut table.row);
                    table.rows.push(row);
                    let plain = std::mem::take(&mut table.plain_row);
                    table.plain_rows.push(plain);
                }
            }
            TagEnd::Table => {
                if let Some(table) = self.table.take() {
                    let start = self.out.len();
                    self.write("```\n");
                    // Line by line: a wide table pads every row, so its text can be far longer
                    // than its Markdown.
                    for line in render_table(&table) {
                        self.write(&escape(&line));
                        self.newline();
                        if self.cut {
                            break;
                        }
                    }
                    self.write("```");
                    // A table block cannot sit inside a quote or a list item: those stay code.
                    if self.containers.is_empty() && !self.cut {
                        self.tables.push(RenderedTable {
                            code: self.out[start..].to_string(),
                            rows: table.plain_rows,
                            alignments: table.alignments,
                        });
                    }
                }
                self.end_block();
            }
            TagEnd::Emphasis => self.marker("_"),
            TagEnd::Strong if self.heading_depth == 0 => self.marker("*"),
            TagEnd::Strikethrough => self.marker("~"),
            TagEnd::Link | TagEnd::Image => {
                if let Some(link) = self.links.pop() {
                    self.finish_link(link);
                }
            }
            _ => {}
        }
    }

    fn finish_link(&mut self, link: PendingLink) {
        let label = link.label.trim().to_string();
        let url = match link.link_type {
            LinkType::Email if !link.url.starts_with("mailto:") => format!("mailto:{}", link.url),
            _ => link.url.trim().to_string(),
        };
        if let Some(parent) = self.links.last_mut() {
            // An image inside a link label contributes its alt text.
            parent.label.push_str(&label);
            return;
        }
        // Only web and mail targets become links: any other scheme (javascript:, slack://) or
        // Slack's own syntax (`!channel`, `@U…`) smuggled into a target is shown as text, and
        // so is a relative URL (Slack links only absolute ones).
        let linkable = is_link_target(&url);
        let same = label.is_empty() || label == url;
        if let Some(table) = &mut self.table {
            // Inside a code block a link cannot be clickable: show both parts. A table block
            // cell is raw text: the label alone.
            table.plain_cell.push_str(if label.is_empty() { &url } else { &label });
            let text = if same { url } else { format!("{label} ({url})") };
            table.cell.push_str(&text);
            return;
        }
        if url.is_empty() {
            self.write(&escape(&label));
            return;
        }
        let rendered = match (linkable, same) {
            (true, true) => format!("<{}>", link_target(&url)),
            (true, false) => format!("<{}|{}>", link_target(&url), escape(&label)),
            (false, true) => escape(&url),
            (false, false) => format!("{} ({})", escape(&label), escape(&url)),
        };
        self.write(&rendered);
    }

    /// Plain inline text: into a pending link label, a table cell, or the output (escaped).
    fn inline_text(&mut self, text: &str) {
        if let Some(link) = self.links.last_mut() {
            link.label.push_str(text);
        } else if let Some(table) = &mut self.table {
            table.cell.push_str(text);
            table.plain_cell.push_str(text);
        } else {
            self.write(&escape(text));
        }
    }

    fn inline_code(&mut self, code: &str) {
        if let Some(link) = self.links.last_mut() {
            link.label.push_str(code);
        } else if let Some(table) = &mut self.table {
            table.cell.push_str(code);
            table.plain_cell.push_str(code);
        } else {
            self.write(&format!("`{}`", escape(code)));
        }
    }

    /// Formatting marks are dropped where Slack would not render them (labels, tables).
    fn marker(&mut self, mark: &str) {
        if self.links.is_empty() && self.table.is_none() {
            self.write(mark);
        }
    }

    fn line_break(&mut self) {
        if let Some(link) = self.links.last_mut() {
            link.label.push(' ');
        } else if let Some(table) = &mut self.table {
            table.cell.push(' ');
            table.plain_cell.push(' ');
        } else {
            self.newline();
        }
    }

    /// Writes already-escaped text, starting each line with the containers' prefix. Once the
    /// output would pass [`MAX_RENDER_BYTES`], writes nothing more: a segment (a link, an
    /// escape) is written whole or not at all.
    fn write(&mut self, text: &str) {
        for (i, segment) in text.split('\n').enumerate() {
            if i > 0 {
                self.newline();
            }
            if !segment.is_empty() {
                self.open_line();
                self.push(segment);
            }
        }
    }

    /// Appends to the output, or marks it cut when `text` would take it past the limit.
    fn push(&mut self, text: &str) {
        if self.out.len() + text.len() > MAX_RENDER_BYTES {
            self.cut = true;
        }
        if !self.cut {
            self.out.push_str(text);
        }
    }

    fn open_line(&mut self) {
        if !self.line_open {
            let prefix = self.prefix(true);
            self.push(&prefix);
            self.line_open = true;
        }
    }

    fn newline(&mut self) {
        if !self.line_open {
            let prefix = self.prefix(false);
            self.push(prefix.trim_end());
        }
        self.push("\n");
        self.line_open = false;
    }

    fn end_line(&mut self) {
        if self.line_open {
            self.push("\n");
            self.line_open = false;
        }
    }

    /// The start of a line inside the current containers; `first` consumes pending list markers.
    fn prefix(&mut self, first: bool) -> String {
        let mut prefix = String::new();
        for container in &mut self.containers {
            match container {
                Container::Quote => prefix.push_str("> "),
                Container::Item { marker, indent } => match marker.take_if(|_| first) {
                    Some(marker) => prefix.push_str(&marker),
                    None => prefix.extend(std::iter::repeat_n(' ', *indent)),
                },
            }
        }
        prefix
    }

    fn in_item(&self) -> bool {
        self.containers.iter().any(|c| matches!(c, Container::Item { .. }))
    }

    fn start_block(&mut self) {
        self.end_line();
        if self.gap_pending && !self.out.is_empty() && !self.in_item() {
            self.newline();
        }
        self.gap_pending = false;
    }

    fn end_block(&mut self) {
        self.end_line();
        self.gap_pending = true;
    }

    fn finish(self) -> String {
        self.out.trim_end().trim_start_matches('\n').to_string()
    }
}

/// A table as aligned plain-text lines: header, a dashed rule, then the rows.
fn render_table(table: &Table) -> impl Iterator<Item = String> + '_ {
    let columns = table.rows.iter().map(Vec::len).max().unwrap_or(0);
    let mut widths = vec![1usize; columns];
    for row in &table.rows {
        for (c, cell) in row.iter().enumerate() {
            widths[c] = widths[c].max(cell.chars().count());
        }
    }
    let rule = widths.iter().map(|w| "-".repeat(*w)).collect::<Vec<String>>().join("  ");
    table.rows.iter().enumerate().flat_map(move |(r, row)| {
        let cells: Vec<String> = (0..columns)
            .map(|c| {
                let cell = row.get(c).map_or("", String::as_str);
                let alignment = table.alignments.get(c).copied().unwrap_or(Alignment::None);
                pad(cell, widths[c], alignment)
            })
            .collect();
        let line = cells.join("  ").trim_end().to_string();
        std::iter::once(line).chain((r == 0).then(|| rule.clone()))
    })
}

fn pad(cell: &str, width: usize, alignment: Alignment) -> String {
    let fill = width.saturating_sub(cell.chars().count());
    let (left, right) = match alignment {
        Alignment::Right => (fill, 0),
        Alignment::Center => (fill / 2, fill - fill / 2),
        Alignment::Left | Alignment::None => (0, fill),
    };
    format!("{}{cell}{}", " ".repeat(left), " ".repeat(right))
}

#[cfg(test)]
mod proptests;

#[cfg(test)]
mod tests {
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
        let expected =
            "• one\n• two\n    • two a\n    • two b\n        1. deep\n• three\n\n1. first\n2. second\n3. third";
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
            md.push_str(&format!(
                "## Section {i}\n\nParagraph {i} with **bold**, a [link](https://e.com/{i}) & text. "
            ));
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
        assert_eq!(
            render_reply("Plain **answer** with `code`.", &[]),
            vec![Reply::plain("Plain *answer* with `code`.")]
        );
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
}
