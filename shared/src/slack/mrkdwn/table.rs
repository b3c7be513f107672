//! Markdown tables: as a fixed-width code block in the text, and as Slack's `table` block.

use pulldown_cmark::Alignment;
use serde_json::{json, Value};

use super::{MAX_TABLE_COLUMNS, MAX_TABLE_ROWS};

/// A table being read. Each cell is kept twice: as the code block shows it (a link's URL in
/// brackets after its label) and as plain text for a table block (a link as its label).
#[derive(Default)]
pub(super) struct Table {
    pub(super) alignments: Vec<Alignment>,
    pub(super) rows: Vec<Vec<String>>,
    pub(super) row: Vec<String>,
    pub(super) cell: String,
    pub(super) plain_rows: Vec<Vec<String>>,
    pub(super) plain_row: Vec<String>,
    pub(super) plain_cell: String,
}

/// A top-level table, written into the text as a code block.
#[derive(Debug, Clone)]
pub(super) struct RenderedTable {
    /// Its code block, exactly as written in the text (fences included).
    pub(super) code: String,
    /// Header row first; cells as plain text.
    pub(super) rows: Vec<Vec<String>>,
    pub(super) alignments: Vec<Alignment>,
}

impl RenderedTable {
    pub(super) fn columns(&self) -> usize {
        self.rows.iter().map(Vec::len).max().unwrap_or(0)
    }

    /// Whether Slack's `table` block can hold it.
    pub(super) fn fits(&self) -> bool {
        let columns = self.columns();
        !self.rows.is_empty() && self.rows.len() <= MAX_TABLE_ROWS && (1..=MAX_TABLE_COLUMNS).contains(&columns)
    }

    /// The `table` block: raw_text cells, every row as wide as the widest, alignment per column.
    pub(super) fn block(&self) -> Value {
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

/// A table as aligned plain-text lines: header, a dashed rule, then the rows.
pub(super) fn render_table(table: &Table) -> impl Iterator<Item = String> + '_ {
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
