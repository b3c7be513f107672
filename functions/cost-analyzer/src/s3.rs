//! The analytics bucket in S3: the daily reports ([`S3ReportStore`]) and the event archive that
//! compaction rewrites ([`S3Archive`]).

use async_trait::async_trait;

use crate::compact::ArchiveObjects;
use crate::handler::ReportStore;

/// The report in S3.
#[derive(Debug, Clone)]
pub struct S3ReportStore {
    client: aws_sdk_s3::Client,
    bucket: String,
}

impl S3ReportStore {
    pub fn new(client: aws_sdk_s3::Client, bucket: impl Into<String>) -> Self {
        S3ReportStore { client, bucket: bucket.into() }
    }
}

#[async_trait]
impl ReportStore for S3ReportStore {
    async fn put(&self, key: &str, body: Vec<u8>) -> shared::Result<()> {
        put_json(&self.client, &self.bucket, key, body).await
    }
}

/// Writes one JSON object (a report, a compaction plan) to the analytics bucket.
async fn put_json(client: &aws_sdk_s3::Client, bucket: &str, key: &str, body: Vec<u8>) -> shared::Result<()> {
    client
        .put_object()
        .bucket(bucket)
        .key(key)
        .content_type("application/json")
        .body(body.into())
        .send()
        .await
        .map_err(|e| shared::Error::from_sdk("s3", "PutObject", e))?;
    Ok(())
}

/// The analytics bucket in S3.
#[derive(Debug, Clone)]
pub struct S3Archive {
    client: aws_sdk_s3::Client,
    bucket: String,
}

impl S3Archive {
    pub fn new(client: aws_sdk_s3::Client, bucket: impl Into<String>) -> Self {
        S3Archive { client, bucket: bucket.into() }
    }
}

#[async_trait]
impl ArchiveObjects for S3Archive {
    async fn list(&self, prefix: &str) -> shared::Result<Vec<String>> {
        let mut keys = Vec::new();
        let mut pages = self.client.list_objects_v2().bucket(&self.bucket).prefix(prefix).into_paginator().send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| shared::Error::from_sdk("s3", "ListObjectsV2", e))?;
            keys.extend(page.contents().iter().filter_map(|o| o.key().map(str::to_string)));
        }
        keys.sort();
        Ok(keys)
    }

    async fn get(&self, key: &str) -> shared::Result<Option<Vec<u8>>> {
        match self.client.get_object().bucket(&self.bucket).key(key).send().await {
            Ok(out) => {
                let bytes = out
                    .body
                    .collect()
                    .await
                    .map_err(|e| shared::Error::Malformed { what: "S3 object body", reason: e.to_string() })?;
                Ok(Some(bytes.into_bytes().to_vec()))
            }
            Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) => Ok(None),
            Err(e) => Err(shared::Error::from_sdk("s3", "GetObject", e)),
        }
    }

    async fn put(&self, key: &str, body: Vec<u8>) -> shared::Result<()> {
        put_json(&self.client, &self.bucket, key, body).await
    }

    async fn copy(&self, from: &str, to: &str) -> shared::Result<()> {
        self.client
            .copy_object()
            .bucket(&self.bucket)
            .key(to)
            .copy_source(format!("{}/{}", self.bucket, urlencode_key(from)))
            .send()
            .await
            .map_err(|e| shared::Error::from_sdk("s3", "CopyObject", e))?;
        Ok(())
    }

    async fn delete(&self, keys: &[String]) -> shared::Result<()> {
        use aws_sdk_s3::types::{Delete, ObjectIdentifier};
        for chunk in keys.chunks(1000) {
            let objects = chunk
                .iter()
                .map(|k| ObjectIdentifier::builder().key(k).build())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| shared::Error::Malformed { what: "S3 delete request", reason: e.to_string() })?;
            let delete = Delete::builder()
                .set_objects(Some(objects))
                .quiet(true)
                .build()
                .map_err(|e| shared::Error::Malformed { what: "S3 delete request", reason: e.to_string() })?;
            let out = self
                .client
                .delete_objects()
                .bucket(&self.bucket)
                .delete(delete)
                .send()
                .await
                .map_err(|e| shared::Error::from_sdk("s3", "DeleteObjects", e))?;
            if let Some(first) = out.errors().first() {
                return Err(shared::Error::Malformed {
                    what: "S3 DeleteObjects answer",
                    reason: format!(
                        "{} of {} keys not deleted, first {:?}: {:?}",
                        out.errors().len(),
                        chunk.len(),
                        first.key(),
                        first.code()
                    ),
                });
            }
        }
        Ok(())
    }
}

/// A key as CopyObject's `x-amz-copy-source` wants it (path segments percent-encoded).
fn urlencode_key(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    for b in key.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => out.push(b as char),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_sources_are_percent_encoded() {
        assert_eq!(urlencode_key("events/dt=2026-11-22/a b+c.parquet"), "events/dt%3D2026-11-22/a%20b%2Bc.parquet");
    }
}
