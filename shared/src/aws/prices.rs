//! The price table a function runs with, read once at init: the embedded table, the override
//! document in S3 and the application profiles ([`crate::pricing::overrides`]).

use aws_sdk_s3::primitives::ByteStream;

use crate::config::optional;
use crate::pricing::overrides::{
    with_application_profiles, OverrideLocation, MAX_OVERRIDE_BYTES, OVERRIDE_VAR, PROFILES_VAR,
};
use crate::pricing::PriceTable;
use crate::{Error, Result};

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

async fn read_body(body: ByteStream) -> std::result::Result<String, String> {
    let bytes = body.collect().await.map_err(|e| format!("reading the object: {e}"))?.into_bytes();
    if bytes.len() > MAX_OVERRIDE_BYTES {
        return Err(format!("the document is {} bytes; the limit is {MAX_OVERRIDE_BYTES}", bytes.len()));
    }
    String::from_utf8(bytes.to_vec()).map_err(|_| "the document is not UTF-8".to_string())
}
