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

mod links;
mod render;
mod sources;
mod split;
mod table;

use serde_json::{json, Value};

use render::{render, Rendered};
use sources::sources_section;
pub use sources::{merge_sources, CitedSource};
pub use split::{part_floor, split_message, MAX_FENCE_MARGIN};
use split::{split, with_cut_notice};
use table::RenderedTable;

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

    /// Appends a Block Kit block after the part's content (e.g. an answer's feedback buttons); a
    /// text-only part gets its text as mrkdwn sections first, its `text` (the fallback) unchanged.
    /// Left as it is when the block would pass Slack's limit of blocks per message.
    pub fn push_block(&mut self, block: Value) {
        let mut blocks = self.blocks.clone().unwrap_or_else(|| sections(&self.text));
        if blocks.len() < MAX_BLOCKS {
            blocks.push(block);
            self.blocks = Some(blocks);
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

#[cfg(test)]
mod proptests;

#[cfg(test)]
mod tests;
