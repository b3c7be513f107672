//! The renderer: pulldown-cmark events in, mrkdwn out, with containers, links and tables
//! tracked as they open and close.

use pulldown_cmark::{Event, LinkType, Options, Parser, Tag, TagEnd};

use super::links::{is_link_target, link_target};
use super::table::{render_table, RenderedTable, Table};
use super::{escape, BULLET, MAX_RENDER_BYTES, RULE};

/// Markdown rendered as mrkdwn.
pub(super) struct Rendered {
    pub(super) text: String,
    /// The top-level tables written into the text as code blocks.
    pub(super) tables: Vec<RenderedTable>,
    /// Whether the text stops at [`MAX_RENDER_BYTES`] before the end of the Markdown.
    pub(super) cut: bool,
}

pub(super) fn render(markdown: &str) -> Rendered {
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
            TagEnd::TableCell => self.end_table_cell(),
            TagEnd::TableHead | TagEnd::TableRow => self.end_table_row(),
            TagEnd::Table => self.end_table(),
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

    fn end_table_cell(&mut self) {
        if let Some(table) = &mut self.table {
            let cell = std::mem::take(&mut table.cell);
            table.row.push(cell.trim().to_string());
            let plain = std::mem::take(&mut table.plain_cell);
            table.plain_row.push(plain.trim().to_string());
        }
    }

    fn end_table_row(&mut self) {
        if let Some(table) = &mut self.table {
            let row = std::mem::take(&mut table.row);
            table.rows.push(row);
            let plain = std::mem::take(&mut table.plain_row);
            table.plain_rows.push(plain);
        }
    }

    /// Writes the finished table as a code block, and keeps it for a table block when it is top-level.
    fn end_table(&mut self) {
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
