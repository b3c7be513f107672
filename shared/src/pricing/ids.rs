//! Model id normalisation: every form Bedrock reports (inference profile prefixes, ARNs,
//! version suffixes, application profiles) reduced to the table's keys.

use super::{PriceTable, Scope};

impl PriceTable {
    /// Lookup keys for `model_id`, most specific first, and the price scope it asks for.
    pub(super) fn normalise(&self, model_id: &str, follow_profiles: bool) -> Option<(Vec<String>, Scope)> {
        let id = model_id.trim();
        if id.is_empty() {
            return None;
        }
        if follow_profiles {
            if let Some(target) = self.app_profiles.get(id) {
                return self.normalise(target, false);
            }
        }
        let mut id = id.to_string();
        if id.starts_with("arn:") {
            let resource = id.splitn(6, ':').nth(5)?.to_string();
            let (kind, rest) = resource.split_once('/')?;
            id = match kind {
                "foundation-model" | "inference-profile" => rest.to_string(),
                "application-inference-profile" if follow_profiles => {
                    let target = self.app_profiles.get(rest)?;
                    return self.normalise(target, false);
                }
                // Provisioned throughput and custom models are billed by the hour, not per token.
                _ => return None,
            };
        }
        let mut id = id.to_ascii_lowercase();
        let mut scope = Scope::Regional;
        if let Some((first, rest)) = id.split_once('.') {
            let rest_is_model = rest.split(':').next().is_some_and(|r| r.contains('.'));
            if rest_is_model && first == "global" {
                scope = Scope::Global;
                id = rest.to_string();
            } else if rest_is_model && self.regional_prefixes.iter().any(|p| p == first) {
                id = rest.to_string();
            }
        }
        let mut candidates = vec![id.clone()];
        let unsuffixed = id.split(':').next().unwrap_or(&id).to_string();
        if unsuffixed != id {
            candidates.push(unsuffixed.clone());
        }
        if let Some(base) = strip_version(&unsuffixed) {
            candidates.push(base.to_string());
        }
        Some((candidates, scope))
    }
}

/// `name-v2` -> `name`; None when there is no `-v<digits>` suffix.
pub(super) fn strip_version(id: &str) -> Option<&str> {
    let pos = id.rfind("-v")?;
    let digits = &id[pos + 2..];
    (!digits.is_empty() && digits.chars().all(|c| c.is_ascii_digit())).then(|| &id[..pos])
}

pub(super) fn is_application_profile(id: &str) -> bool {
    application_profile_id(id).is_some()
}

/// The profile id of an application inference profile ARN.
pub(super) fn application_profile_id(arn: &str) -> Option<&str> {
    let resource = arn.strip_prefix("arn:")?.splitn(5, ':').nth(4)?;
    resource.strip_prefix("application-inference-profile/")
}
