//! Naming a retrieved reference for the "sources" list a user sees under an answer.

use std::collections::HashMap;

use aws_sdk_bedrockagentruntime::types::{RetrievalResultLocation, RetrievalResultLocationType, RetrievedReference};
use aws_smithy_types::{Document, Number};

/// Metadata key Bedrock Knowledge Bases set on chunks parsed from paged documents (PDF).
pub(crate) const PAGE_NUMBER_KEY: &str = "x-amz-bedrock-kb-document-page-number";
/// Metadata key holding the document's URI, present even when `location` is not.
const SOURCE_URI_KEY: &str = "x-amz-bedrock-kb-source-uri";

/// The name a user recognises: S3 object basename, web/Confluence/Salesforce/SharePoint URL,
/// Kendra URI, custom document id, else the location type; with ` (p. N)` when the chunk
/// came from page N. None when the reference says nothing about where it came from.
pub(crate) fn source_name(reference: &RetrievedReference) -> Option<String> {
    let metadata = reference.metadata.as_ref();
    let base = match &reference.location {
        Some(location) => location_name(location),
        None => metadata
            .and_then(|m| m.get(SOURCE_URI_KEY))
            .and_then(Document::as_string)
            .map(uri_name)
            .filter(|s| !s.is_empty())?,
    };
    Some(match metadata.and_then(page_number) {
        Some(page) => format!("{base} (p. {page})"),
        None => base,
    })
}

fn location_name(location: &RetrievalResultLocation) -> String {
    use RetrievalResultLocationType as T;
    let named = match &location.r#type {
        T::S3 => location.s3_location.as_ref().and_then(|l| l.uri.as_deref()).map(basename),
        T::Web => location.web_location.as_ref().and_then(|l| l.url.clone()),
        T::Confluence => location.confluence_location.as_ref().and_then(|l| l.url.clone()),
        T::Salesforce => location.salesforce_location.as_ref().and_then(|l| l.url.clone()),
        T::Sharepoint => location.share_point_location.as_ref().and_then(|l| l.url.clone()),
        // Not in the brief's list, but these carry a URL just like SharePoint does.
        T::Onedrive => location.one_drive_location.as_ref().and_then(|l| l.url.clone()),
        T::Googledrive => location.google_drive_location.as_ref().and_then(|l| l.url.clone()),
        T::Kendra => location.kendra_document_location.as_ref().and_then(|l| l.uri.clone()),
        T::Custom => location.custom_document_location.as_ref().and_then(|l| l.id.clone()),
        _ => None,
    };
    named.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()).unwrap_or_else(|| location.r#type.as_str().to_owned())
}

/// An S3 URI names its object by basename; anything else is shown whole.
fn uri_name(uri: &str) -> String {
    if uri.starts_with("s3://") {
        basename(uri)
    } else {
        uri.trim().to_owned()
    }
}

fn basename(uri: &str) -> String {
    let trimmed = uri.trim().trim_end_matches('/');
    trimmed.rsplit('/').next().unwrap_or(trimmed).to_owned()
}

/// The page number, whether Bedrock sent it as a number (usually `3.0`) or a string.
fn page_number(metadata: &HashMap<String, Document>) -> Option<String> {
    match metadata.get(PAGE_NUMBER_KEY)? {
        Document::Number(Number::PosInt(n)) => Some(n.to_string()),
        Document::Number(Number::NegInt(n)) => Some(n.to_string()),
        Document::Number(Number::Float(f)) if f.is_finite() => {
            if f.fract() == 0.0 && f.abs() < 1e15 {
                Some(format!("{}", *f as i64))
            } else {
                Some(f.to_string())
            }
        }
        Document::String(s) if !s.trim().is_empty() => Some(s.trim().to_owned()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_bedrockagentruntime::types::{
        RetrievalResultCustomDocumentLocation, RetrievalResultKendraDocumentLocation, RetrievalResultS3Location,
        RetrievalResultSqlLocation,
    };

    fn located(location: RetrievalResultLocation) -> RetrievedReference {
        RetrievedReference::builder().location(location).build()
    }

    #[test]
    fn names_each_location_type() {
        let s3 = RetrievalResultLocation::builder()
            .r#type(RetrievalResultLocationType::S3)
            .s3_location(
                RetrievalResultS3Location::builder().uri("s3://kb-docs/policies/Security Handbook.pdf").build(),
            )
            .build()
            .unwrap();
        assert_eq!(source_name(&located(s3)).as_deref(), Some("Security Handbook.pdf"));

        let kendra = RetrievalResultLocation::builder()
            .r#type(RetrievalResultLocationType::Kendra)
            .kendra_document_location(
                RetrievalResultKendraDocumentLocation::builder().uri("https://wiki.example.com/doc/42").build(),
            )
            .build()
            .unwrap();
        assert_eq!(source_name(&located(kendra)).as_deref(), Some("https://wiki.example.com/doc/42"));

        let custom = RetrievalResultLocation::builder()
            .r#type(RetrievalResultLocationType::Custom)
            .custom_document_location(RetrievalResultCustomDocumentLocation::builder().id("doc-7781").build())
            .build()
            .unwrap();
        assert_eq!(source_name(&located(custom)).as_deref(), Some("doc-7781"));

        let sql = RetrievalResultLocation::builder()
            .r#type(RetrievalResultLocationType::Sql)
            .sql_location(RetrievalResultSqlLocation::builder().query("SELECT 1").build())
            .build()
            .unwrap();
        assert_eq!(source_name(&located(sql)).as_deref(), Some("SQL"));

        // A web location without its URL still says what kind of source it was.
        let bare = RetrievalResultLocation::builder().r#type(RetrievalResultLocationType::Web).build().unwrap();
        assert_eq!(source_name(&located(bare)).as_deref(), Some("WEB"));
    }

    #[test]
    fn page_numbers_and_metadata_fallback() {
        let reference = RetrievedReference::builder()
            .metadata(SOURCE_URI_KEY, Document::String("s3://kb-docs/runbook.pdf".into()))
            .metadata(PAGE_NUMBER_KEY, Document::Number(Number::Float(12.0)))
            .build();
        assert_eq!(source_name(&reference).as_deref(), Some("runbook.pdf (p. 12)"));

        let string_page = RetrievedReference::builder()
            .metadata(SOURCE_URI_KEY, Document::String("https://example.com/a".into()))
            .metadata(PAGE_NUMBER_KEY, Document::String("iv".into()))
            .build();
        assert_eq!(source_name(&string_page).as_deref(), Some("https://example.com/a (p. iv)"));

        assert_eq!(source_name(&RetrievedReference::builder().build()), None);
    }
}
