//! The `*Sources*` section under an answer: one line per document, its cited pages merged.
//!
//! The agent adapters name a source `name` or `name (p. N)` (one retrieved chunk each), so one
//! document cited on several pages, or with and without a page, arrives as several names. A user
//! wants the document once: `handbook.pdf (pp. 3, 4, 7)`.

use super::links::{is_web_url, link_target};
use super::{escape, BULLET};

/// One document of the sources list, with the pages cited from it (in display order).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CitedSource {
    /// The document's name: a file name, URL or id.
    pub document: String,
    /// Pages cited from it: numbers ascending, then any other labels (`iv`) as first cited.
    pub pages: Vec<String>,
}

impl CitedSource {
    /// `name`, `name (p. 3)` or `name (pp. 3, 4, 7)`, as plain text.
    pub fn label(&self) -> String {
        format!("{}{}", self.document, self.pages_suffix())
    }

    fn pages_suffix(&self) -> String {
        match self.pages.as_slice() {
            [] => String::new(),
            [one] => format!(" (p. {one})"),
            many => format!(" (pp. {})", many.join(", ")),
        }
    }
}

/// Splits a source name into its document and the pages its ` (p. N)` / ` (pp. N, M)` suffix
/// names (none without a suffix).
fn split_pages(source: &str) -> (&str, Vec<&str>) {
    let parsed = source.strip_suffix(')').and_then(|rest| {
        let (document, pages) =
            rest.rsplit_once(" (p. ").or_else(|| rest.rsplit_once(" (pp. ")).filter(|(d, _)| !d.trim().is_empty())?;
        let pages: Vec<&str> = pages.split(',').map(str::trim).collect();
        // Page labels are short tokens; anything else is part of the name, e.g. `notes (p. a, b c)`.
        let labels = pages.iter().all(|p| !p.is_empty() && !p.contains(char::is_whitespace) && !p.contains('('));
        labels.then_some((document.trim_end(), pages))
    });
    parsed.unwrap_or((source, Vec::new()))
}

/// The distinct documents of `sources` in the order first cited, each with every page cited.
/// Blank names are dropped.
pub fn merge_sources(sources: &[String]) -> Vec<CitedSource> {
    let mut merged: Vec<CitedSource> = Vec::new();
    for source in sources.iter().map(|s| s.trim()).filter(|s| !s.is_empty()) {
        let (document, pages) = split_pages(source);
        let at = match merged.iter().position(|m| m.document == document) {
            Some(at) => at,
            None => {
                merged.push(CitedSource { document: document.to_string(), pages: Vec::new() });
                merged.len() - 1
            }
        };
        for page in pages {
            if !merged[at].pages.iter().any(|p| p == page) {
                merged[at].pages.push(page.to_string());
            }
        }
    }
    for m in &mut merged {
        // Numbers in order; other labels keep their citation order after them (stable sort).
        m.pages.sort_by_key(|p| p.parse::<u64>().map_or((1, 0), |n| (0, n)));
    }
    merged
}

/// `*Sources*` then one `• document (pages)` line per distinct document; URLs become links.
/// Empty without sources.
pub(super) fn sources_section(sources: &[String]) -> String {
    let merged = merge_sources(sources);
    if merged.is_empty() {
        return String::new();
    }
    let mut out = String::from("*Sources*");
    for source in merged {
        out.push('\n');
        out.push_str(BULLET);
        out.push(' ');
        if is_web_url(&source.document) {
            out.push('<');
            out.push_str(&link_target(&source.document));
            out.push('>');
        } else {
            out.push_str(&escape(&source.document));
        }
        out.push_str(&escape(&source.pages_suffix()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn a_document_cited_on_several_pages_is_one_line_with_its_pages() {
        let cited = names(&[
            "handbook.pdf (p. 7)",
            "https://wiki.example.com/vpn",
            "handbook.pdf (p. 3)",
            "handbook.pdf",
            "handbook.pdf (p. 4)",
            "handbook.pdf (p. 3)",
            "https://wiki.example.com/vpn (p. iv)",
        ]);
        let merged = merge_sources(&cited);
        let labels: Vec<String> = merged.iter().map(CitedSource::label).collect();
        assert_eq!(labels, ["handbook.pdf (pp. 3, 4, 7)", "https://wiki.example.com/vpn (p. iv)"]);
        assert_eq!(
            sources_section(&cited),
            "*Sources*\n• handbook.pdf (pp. 3, 4, 7)\n• <https://wiki.example.com/vpn> (p. iv)"
        );
    }

    #[test]
    fn names_that_only_look_like_pages_stay_whole() {
        let cited =
            names(&["notes (p. a b)", "(p. 3)", "report (draft)", "policy.pdf (pp. 2, 10)", "policy.pdf (p. 9)"]);
        let labels: Vec<String> = merge_sources(&cited).iter().map(CitedSource::label).collect();
        assert_eq!(labels, ["notes (p. a b)", "(p. 3)", "report (draft)", "policy.pdf (pp. 2, 9, 10)"]);
        assert_eq!(sources_section(&names(&[" ", ""])), "");
        assert_eq!(sources_section(&names(&["a <b> (p. 1)"])), "*Sources*\n• a &lt;b&gt; (p. 1)");
    }

    #[test]
    fn the_merged_line_is_in_the_text_and_in_the_blocks_of_a_reply() {
        let cited = names(&["handbook.pdf (p. 4)", "handbook.pdf (p. 3)", "handbook.pdf"]);
        let parts = crate::slack::render_reply("Costs:\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\nDone.", &cited);
        assert_eq!(parts.len(), 1);
        assert!(parts[0].text.ends_with("*Sources*\n• handbook.pdf (pp. 3, 4)"), "{}", parts[0].text);
        let blocks = serde_json::to_string(parts[0].blocks.as_ref().expect("a table block")).unwrap_or_default();
        assert_eq!(blocks.matches("handbook.pdf").count(), 1, "{blocks}");
        assert!(blocks.contains("handbook.pdf (pp. 3, 4)"), "{blocks}");
    }

    /// A citation: one of a few documents, with or without one of a few page labels.
    fn citation() -> impl Strategy<Value = (usize, Option<String>)> {
        let page = prop_oneof![(1u32..40).prop_map(|n| n.to_string()), Just("iv".to_string())];
        (0usize..4, prop::option::of(page))
    }

    const DOCUMENTS: [&str; 4] = ["handbook.pdf", "https://wiki.example.com/a?b=1", "s3 guide.docx", "doc-7781"];

    proptest! {
        #[test]
        fn every_document_appears_once_with_every_page_cited(cited in prop::collection::vec(citation(), 0..30)) {
            let sources: Vec<String> = cited
                .iter()
                .map(|(d, p)| match p {
                    Some(p) => format!("{} (p. {p})", DOCUMENTS[*d]),
                    None => DOCUMENTS[*d].to_string(),
                })
                .collect();
            let merged = merge_sources(&sources);
            for (d, document) in DOCUMENTS.iter().enumerate() {
                let lines: Vec<&CitedSource> = merged.iter().filter(|m| m.document == *document).collect();
                let cited_here = cited.iter().any(|(c, _)| *c == d);
                prop_assert_eq!(lines.len(), usize::from(cited_here), "{} listed {} times", document, lines.len());
                for (_, page) in cited.iter().filter(|(c, _)| *c == d) {
                    if let Some(page) = page {
                        prop_assert!(lines[0].pages.contains(page), "{} lost page {}", document, page);
                    }
                }
                if let Some(line) = lines.first() {
                    let mut unique = line.pages.clone();
                    unique.dedup();
                    prop_assert_eq!(&unique, &line.pages, "a page listed twice");
                }
            }
            // Rendered: one bullet per document, each document's name once.
            let section = sources_section(&sources);
            prop_assert_eq!(section.matches(BULLET).count(), merged.len());
            for m in &merged {
                prop_assert_eq!(section.matches(m.document.as_str()).count(), 1, "{}", section);
                prop_assert!(section.contains(&escape(&m.label()).replace(&m.document, "")), "{}", section);
            }
        }
    }
}
