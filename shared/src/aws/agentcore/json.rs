//! JSON the AgentCore streams carry: SDK documents as `serde_json` values, and the sources a
//! tool result names.

use aws_smithy_types::{Document, Number};
use serde_json::Value;

/// Metadata keys Bedrock Knowledge Bases put on every retrieved chunk.
const SOURCE_URI_KEY: &str = "x-amz-bedrock-kb-source-uri";
const PAGE_NUMBER_KEY: &str = "x-amz-bedrock-kb-document-page-number";
/// How deep a tool result is searched for sources (it is untrusted input).
const MAX_DEPTH: usize = 12;
/// The most sources one turn lists.
const MAX_SOURCES: usize = 50;

/// An SDK document as a JSON value (non-finite numbers become null).
pub fn document_json(doc: &Document) -> Value {
    match doc {
        Document::Object(map) => Value::Object(map.iter().map(|(k, v)| (k.clone(), document_json(v))).collect()),
        Document::Array(items) => Value::Array(items.iter().map(document_json).collect()),
        Document::Number(Number::PosInt(n)) => Value::from(*n),
        Document::Number(Number::NegInt(n)) => Value::from(*n),
        Document::Number(Number::Float(f)) => serde_json::Number::from_f64(*f).map_or(Value::Null, Value::Number),
        Document::String(s) => Value::String(s.clone()),
        Document::Bool(b) => Value::Bool(*b),
        Document::Null => Value::Null,
    }
}

/// The sources named by tool results, de-duplicated in first-seen order, in the form the
/// Classic path shows them: an S3 object by basename, a URL whole, ` (p. N)` for a page.
#[derive(Debug, Default)]
pub struct SourceNames(Vec<String>);

impl SourceNames {
    /// Adds the sources `value` names: Knowledge Base retrieval results (`location` with an
    /// S3 URI or a URL, or the chunk metadata's source URI, and its page), and `sources` lists
    /// of strings.
    pub fn collect(&mut self, value: &Value) {
        self.walk(value, 0);
    }

    /// The names found.
    pub fn into_names(self) -> Vec<String> {
        self.0
    }

    fn walk(&mut self, value: &Value, depth: usize) {
        if depth > MAX_DEPTH || self.0.len() >= MAX_SOURCES {
            return;
        }
        match value {
            Value::Object(map) => {
                if let Some(name) = chunk_source(map) {
                    self.push(name);
                }
                if let Some(Value::Array(list)) = map.get("sources") {
                    for s in list.iter().filter_map(Value::as_str) {
                        self.push(uri_name(s));
                    }
                }
                for (key, v) in map {
                    if key != "sources" && key != "metadata" && key != "location" {
                        self.walk(v, depth + 1);
                    }
                }
            }
            Value::Array(items) => items.iter().for_each(|v| self.walk(v, depth + 1)),
            // A tool may hand back its JSON as a string.
            Value::String(s) if s.trim_start().starts_with(['{', '[']) => {
                if let Ok(inner) = serde_json::from_str::<Value>(s) {
                    self.walk(&inner, depth + 1);
                }
            }
            _ => {}
        }
    }

    fn push(&mut self, name: String) {
        let name = name.trim().to_owned();
        if !name.is_empty() && !self.0.contains(&name) && self.0.len() < MAX_SOURCES {
            self.0.push(name);
        }
    }
}

/// The source of one retrieved chunk: its location, else its metadata's URI; with the page.
fn chunk_source(map: &serde_json::Map<String, Value>) -> Option<String> {
    let metadata = map.get("metadata").and_then(Value::as_object);
    let base = map
        .get("location")
        .and_then(location_uri)
        .or_else(|| metadata?.get(SOURCE_URI_KEY)?.as_str().map(str::to_owned))
        .map(|uri| uri_name(&uri))
        .filter(|s| !s.is_empty())?;
    let page = metadata.and_then(|m| m.get(PAGE_NUMBER_KEY)).and_then(page_number);
    Some(match page {
        Some(page) => format!("{base} (p. {page})"),
        None => base,
    })
}

/// The first URI or URL inside a retrieval location (`s3Location.uri`, `webLocation.url`...).
fn location_uri(location: &Value) -> Option<String> {
    let object = location.as_object()?;
    object.values().find_map(|inner| {
        let inner = inner.as_object()?;
        ["uri", "url", "id"].iter().find_map(|k| inner.get(*k)?.as_str().map(str::to_owned))
    })
}

fn page_number(value: &Value) -> Option<String> {
    match value {
        Value::Number(n) => match n.as_u64() {
            Some(n) => Some(n.to_string()),
            None => n.as_f64().filter(|f| f.is_finite() && f.fract() == 0.0).map(|f| format!("{}", f as i64)),
        },
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_owned()),
        _ => None,
    }
}

/// An S3 URI names its object by basename; anything else is shown whole.
fn uri_name(uri: &str) -> String {
    let uri = uri.trim();
    if uri.starts_with("s3://") {
        let trimmed = uri.trim_end_matches('/');
        trimmed.rsplit('/').next().unwrap_or(trimmed).to_owned()
    } else {
        uri.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn retrieval_results_name_their_documents_once_with_pages() {
        let mut names = SourceNames::default();
        names.collect(&json!({
            "retrievalResults": [
                {"content": {"text": "..."}, "location": {"type": "S3", "s3Location": {"uri": "s3://kb/docs/handbook.pdf"}},
                 "metadata": {"x-amz-bedrock-kb-document-page-number": 3.0}},
                {"content": {"text": "..."}, "location": {"type": "WEB", "webLocation": {"url": "https://wiki.example.com/vpn"}}},
                {"metadata": {"x-amz-bedrock-kb-source-uri": "s3://kb/docs/faq.md"}},
                {"location": {"type": "S3", "s3Location": {"uri": "s3://kb/docs/handbook.pdf"}},
                 "metadata": {"x-amz-bedrock-kb-document-page-number": 3}}
            ]
        }));
        names.collect(&json!({"sources": ["s3://kb/docs/faq.md", "https://jira.example.com/browse/OPS-1"]}));
        assert_eq!(
            names.into_names(),
            ["handbook.pdf (p. 3)", "https://wiki.example.com/vpn", "faq.md", "https://jira.example.com/browse/OPS-1"]
        );
    }

    #[test]
    fn json_inside_a_string_is_read_and_depth_is_bounded() {
        let mut names = SourceNames::default();
        names.collect(&json!([r#"{"sources": ["s3://b/x.txt"]}"#]));
        let mut deep = json!({"sources": ["s3://b/too-deep.txt"]});
        for _ in 0..40 {
            deep = json!({ "a": deep });
        }
        names.collect(&deep);
        assert_eq!(names.into_names(), ["x.txt"]);
    }

    #[test]
    fn documents_become_json() {
        let doc = Document::Object(
            [
                ("n".to_string(), Document::Number(Number::PosInt(3))),
                ("f".to_string(), Document::Number(Number::Float(f64::NAN))),
                ("l".to_string(), Document::Array(vec![Document::Bool(true), Document::Null])),
            ]
            .into(),
        );
        assert_eq!(document_json(&doc), json!({"n": 3, "f": null, "l": [true, null]}));
    }

    proptest::proptest! {
        #[test]
        fn any_json_is_walked_without_panic(s in "\\PC{0,300}") {
            let value = serde_json::from_str::<Value>(&s).unwrap_or(Value::String(s));
            let mut names = SourceNames::default();
            names.collect(&value);
            proptest::prop_assert!(names.into_names().len() <= MAX_SOURCES);
        }
    }
}
