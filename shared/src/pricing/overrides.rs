//! Deployers' price overrides: `PRICE_TABLE_OVERRIDE` names a JSON document of the embedded
//! table's shape (`s3://bucket/key`, read by [`crate::aws::prices`]) whose entries replace or
//! extend the embedded ones; `APPLICATION_INFERENCE_PROFILES` maps application inference profiles
//! (ARN or id) to the model they run, as a JSON object. Either one malformed fails the init with a
//! message naming the variable.

use std::collections::HashMap;

use super::PriceTable;
use crate::{Error, Result};

/// Env var naming the override document.
pub const OVERRIDE_VAR: &str = "PRICE_TABLE_OVERRIDE";
/// Env var with application inference profile mappings (JSON object).
pub const PROFILES_VAR: &str = "APPLICATION_INFERENCE_PROFILES";

/// An override document larger than this is refused (a price table is a few kilobytes).
pub const MAX_OVERRIDE_BYTES: usize = 1024 * 1024;

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
