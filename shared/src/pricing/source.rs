//! Deployers' price overrides, read once at init: `PRICE_TABLE_OVERRIDE` names a JSON document of
//! the embedded table's shape in S3 (`s3://bucket/key`) whose entries replace or extend the
//! embedded ones; `APPLICATION_INFERENCE_PROFILES` maps application inference profiles (ARN or
//! id) to the model they run, as a JSON object. Either one malformed fails the init with a
//! message naming the variable.

use std::collections::HashMap;

use aws_sdk_s3::primitives::ByteStream;

use super::PriceTable;
use crate::config::optional;
use crate::{Error, Result};

/// Env var naming the override document.
pub const OVERRIDE_VAR: &str = "PRICE_TABLE_OVERRIDE";
/// Env var with application inference profile mappings (JSON object).
pub const PROFILES_VAR: &str = "APPLICATION_INFERENCE_PROFILES";

/// An override document larger than this is refused (a price table is a few kilobytes).
const MAX_OVERRIDE_BYTES: usize = 1024 * 1024;

/// Where an override document lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OverrideLocation {
    S3 { bucket: String, key: String },
}

impl OverrideLocation {
    /// Parses `s3://bucket/key`; errors name [`OVERRIDE_VAR`].
    pub fn parse(location: &str) -> Result<OverrideLocation> {
        let location = location.trim();
        if let Some(rest) = location.strip_prefix("s3://") {
            return match rest.split_once('/') {
                Some((bucket, key)) if !bucket.is_empty() && !key.is_empty() => {
                    Ok(OverrideLocation::S3 { bucket: bucket.to_string(), key: key.to_string() })
                }
                _ => Err(Error::Config(format!("{OVERRIDE_VAR} {location:?} is not s3://bucket/key"))),
            };
        }
        if location.starts_with("ssm:") {
            return Err(Error::Config(format!(
                "{OVERRIDE_VAR} {location:?}: SSM parameters are not supported; put the document in S3 (s3://bucket/key)"
            )));
        }
        Err(Error::Config(format!("{OVERRIDE_VAR} {location:?} is not an s3://bucket/key location")))
    }
}

/// The embedded table with the configured override and application profiles applied.
pub async fn load_configured(sdk: &aws_config::SdkConfig) -> Result<PriceTable> {
    let mut table = PriceTable::embedded();
    if let Some(location) = optional(OVERRIDE_VAR) {
        let s3 = aws_sdk_s3::Client::new(sdk);
        table = with_override(table, &location, &s3).await?;
    }
    if let Some(json) = optional(PROFILES_VAR) {
        table = with_application_profiles(table, &json)?;
    }
    tracing::info!(version = table.version(), models = table.len(), "price table loaded");
    Ok(table)
}

/// `base` merged with the override document at `location` (read from S3).
pub async fn with_override(base: PriceTable, location: &str, s3: &aws_sdk_s3::Client) -> Result<PriceTable> {
    let OverrideLocation::S3 { bucket, key } = OverrideLocation::parse(location)?;
    let named = |reason: String| Error::Config(format!("{OVERRIDE_VAR} ({location}): {reason}"));
    let object = crate::aws::with_retries(|| async {
        s3.get_object().bucket(&bucket).key(&key).send().await.map_err(|e| Error::from_sdk("s3", "GetObject", e))
    })
    .await
    .map_err(|e| named(e.to_string()))?;
    let text = read_body(object.body).await.map_err(named)?;
    let overrides = PriceTable::from_json(&text).map_err(|e| named(e.to_string()))?;
    tracing::info!(location, version = overrides.version(), models = overrides.len(), "price overrides applied");
    Ok(base.merge(overrides))
}

/// `base` with the application profile mappings of `json` (a JSON object: profile -> model id).
pub fn with_application_profiles(mut base: PriceTable, json: &str) -> Result<PriceTable> {
    let map: HashMap<String, String> = serde_json::from_str(json)
        .map_err(|e| Error::Config(format!("{PROFILES_VAR} is not a JSON object of strings: {e}")))?;
    for (profile, model) in &map {
        if base.price(model).is_none() {
            tracing::warn!(
                profile,
                model,
                "application inference profile maps to a model the price table does not have"
            );
        }
    }
    base.add_application_profiles(map).map_err(|e| Error::Config(format!("{PROFILES_VAR}: {e}")))?;
    Ok(base)
}

async fn read_body(body: ByteStream) -> std::result::Result<String, String> {
    let bytes = body.collect().await.map_err(|e| format!("reading the object: {e}"))?.into_bytes();
    if bytes.len() > MAX_OVERRIDE_BYTES {
        return Err(format!("the document is {} bytes; the limit is {MAX_OVERRIDE_BYTES}", bytes.len()));
    }
    String::from_utf8(bytes.to_vec()).map_err(|_| "the document is not UTF-8".to_string())
}
