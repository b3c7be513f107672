//! Splitting mrkdwn into messages: boundaries that keep links, escapes and code blocks whole.

use super::{CUT_NOTICE, MAX_MESSAGE_CHARS, MIN_SPLIT_CHARS};

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
pub(super) fn split(text: &str, max_chars: usize, max_parts: usize) -> Vec<String> {
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
pub(super) fn fence_margin_cap(max: usize) -> usize {
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
pub(super) struct OpenFence {
    /// What to put before the backticks to close it and reopen it: quote markers and
    /// indentation (see [`margin`]).
    margin: String,
    /// Where the opening line starts in the piece, when it is in the piece and not the head.
    start_in_piece: Option<usize>,
}

/// Whether `head` + `piece` ends inside a code block, and which fence opened it.
pub(super) fn open_fence_after(head: &str, piece: &str, margin_cap: usize) -> Option<OpenFence> {
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
pub(super) fn fence_prefix(line: &str) -> Option<&str> {
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

/// The last message of a cut answer: as much of `part` as leaves room for the notice, any
/// code block closed, then [`CUT_NOTICE`].
pub(super) fn with_cut_notice(part: &str) -> String {
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
