//! Model prices: a versioned table of Amazon Bedrock on-demand prices (USD per million tokens),
//! shipped as data (`shared/pricing/bedrock-on-demand.json`) and overridable at deploy time
//! ([`overrides`], loaded by [`crate::aws::prices`]). A model that is not in the table is **unpriced**: never a default price.
//!
//! Model ids are normalised before lookup, so every form Bedrock reports resolves to one entry:
//!
//! | reported id                                                                  | looked up as               |
//! |------------------------------------------------------------------------------|----------------------------|
//! | `anthropic.claude-3-5-sonnet-20241022-v2:0`                                  | `anthropic.claude-3-5-sonnet-20241022` |
//! | `us.` / `eu.` / `apac.` ... `anthropic.claude-sonnet-4-5-20250929-v1:0`      | same, regional price       |
//! | `global.anthropic.claude-sonnet-4-5-20250929-v1:0`                           | same, global price         |
//! | `arn:aws:bedrock:us-east-1::foundation-model/amazon.nova-pro-v1:0`           | `amazon.nova-pro`          |
//! | `arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.meta.llama3-...`| `meta.llama3-...`          |
//! | `arn:aws:bedrock:...:application-inference-profile/abc123` (or `abc123`)     | its configured base model  |
//!
//! Lookup tries the id as reported (after prefix and ARN removal), then without the `:N` suffix,
//! then without a trailing `-vN`, so keys such as `amazon.titan-embed-text-v2` (where the version
//! is part of the model) and `anthropic.claude-3-haiku-20240307` both work.

mod ids;
pub mod overrides;
mod usd;

pub use usd::Usd;

use std::collections::{BTreeMap, HashMap};
use std::sync::OnceLock;

use chrono::NaiveDate;
use serde::Deserialize;
use serde_json::Value;

use crate::domain::ModelCall;
use crate::{Error, Result};
use ids::{application_profile_id, is_application_profile};

/// The table shipped with this build.
const EMBEDDED: &str = include_str!("../../pricing/bedrock-on-demand.json");

/// Prices above this (USD per million tokens) are taken for a unit mistake (per token, per billion).
const MAX_PRICE_PER_MILLION: f64 = 1_000.0;

/// Which price of a model applies: in-Region and geographic profiles, or the global profile.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scope {
    /// In-Region calls and geographic cross-Region profiles (`us.`, `eu.`, `apac.`, ...).
    Regional,
    /// The `global.` cross-Region inference profile.
    Global,
}

/// The price of one model in one scope, USD per million tokens.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelPrice {
    /// The table key: the base model id without prefix or version suffix.
    pub model: String,
    /// A display name (e.g. "Claude Sonnet 4.5").
    pub name: String,
    pub scope: Scope,
    /// When this price took effect.
    pub effective_date: NaiveDate,
    pub input: f64,
    pub output: f64,
    /// None: the model has no cache-read price, so cache-read tokens cannot be priced.
    pub cache_read: Option<f64>,
    /// None: the model has no cache-write price, so cache-write tokens cannot be priced.
    pub cache_write: Option<f64>,
}

impl ModelPrice {
    /// The USD cost of `call` at this price; None when it has cache tokens this model has no price for.
    pub fn cost(&self, call: &ModelCall) -> Option<f64> {
        let cached = |tokens: u64, price: Option<f64>| match (tokens, price) {
            (0, _) => Some(0.0),
            (n, Some(p)) => Some(n as f64 * p),
            (_, None) => None,
        };
        // Token counts times per-million prices first, one division last: 1,000 x 3 + 500 x 15
        // = 10,500 -> 0.0105 without accumulating rounding from each term.
        let per_million = call.input_tokens as f64 * self.input
            + call.output_tokens as f64 * self.output
            + cached(call.cache_read_tokens, self.cache_read)?
            + cached(call.cache_write_tokens, self.cache_write)?;
        Some(per_million / 1_000_000.0)
    }
}

/// All tokens of a call (input, output, cache read, cache write).
pub fn call_tokens(call: &ModelCall) -> u64 {
    call.input_tokens + call.output_tokens + call.cache_read_tokens + call.cache_write_tokens
}

#[derive(Debug, Clone)]
struct Entry {
    regional: ModelPrice,
    global: Option<ModelPrice>,
}

/// A versioned price table with model-id normalisation and application-profile mappings.
#[derive(Debug, Clone)]
pub struct PriceTable {
    version: String,
    entries: HashMap<String, Entry>,
    regional_prefixes: Vec<String>,
    /// Application inference profile (ARN or id) -> the model id it runs.
    app_profiles: HashMap<String, String>,
}

impl PriceTable {
    /// The table shipped in this build (validated by this module's tests; if it ever failed to
    /// parse, every model would be unpriced and the error logged, never priced at a default).
    pub fn embedded() -> PriceTable {
        static TABLE: OnceLock<PriceTable> = OnceLock::new();
        TABLE
            .get_or_init(|| {
                PriceTable::from_json(EMBEDDED).unwrap_or_else(|e| {
                    tracing::error!(error = %e, "the embedded price table is invalid; every model is unpriced");
                    PriceTable::empty("invalid-embedded")
                })
            })
            .clone()
    }

    /// A table with no prices (everything unpriced).
    pub fn empty(version: &str) -> PriceTable {
        PriceTable {
            version: version.to_string(),
            entries: HashMap::new(),
            regional_prefixes: Vec::new(),
            app_profiles: HashMap::new(),
        }
    }

    /// Parses and validates a price document; errors name the offending entry.
    pub fn from_json(text: &str) -> Result<PriceTable> {
        let raw: RawTable = serde_json::from_str(text).map_err(|e| invalid(format!("not a price document: {e}")))?;
        let version = raw.version.trim().to_string();
        if version.is_empty() {
            return Err(invalid("version is empty".into()));
        }
        if let Some(c) = raw.currency.as_deref().filter(|c| *c != "USD") {
            return Err(invalid(format!("currency {c:?} is not supported (USD only)")));
        }
        if let Some(u) = raw.unit.as_deref().filter(|u| *u != "per_million_tokens") {
            return Err(invalid(format!("unit {u:?} is not supported (prices are per_million_tokens)")));
        }
        let mut regional_prefixes = Vec::new();
        for p in raw.regional_prefixes {
            let p = p.trim().trim_end_matches('.').to_ascii_lowercase();
            if p.is_empty() || p == "global" || !p.chars().all(|c| c.is_ascii_lowercase() || c == '-') {
                return Err(invalid(format!("regional_prefixes: {p:?} is not an inference-profile prefix")));
            }
            regional_prefixes.push(p);
        }
        let mut table =
            PriceTable { version, entries: HashMap::new(), regional_prefixes, app_profiles: HashMap::new() };
        for (i, value) in raw.models.into_iter().enumerate() {
            let label = match value.get("model").and_then(Value::as_str) {
                Some(m) => format!("models[{i}] ({m})"),
                None => format!("models[{i}]"),
            };
            let entry: RawModel = serde_json::from_value(value).map_err(|e| invalid(format!("{label}: {e}")))?;
            let entry = table.validate_entry(entry).map_err(|reason| invalid(format!("{label}: {reason}")))?;
            let key = entry.regional.model.clone();
            if table.entries.insert(key.clone(), entry).is_some() {
                return Err(invalid(format!("{label}: model {key:?} is listed twice")));
            }
        }
        table.add_application_profiles(raw.application_inference_profiles.into_iter().collect())?;
        Ok(table)
    }

    fn validate_entry(&self, raw: RawModel) -> std::result::Result<Entry, String> {
        let model = raw.model.trim().to_ascii_lowercase();
        if model.is_empty() || model.chars().any(char::is_whitespace) {
            return Err("model must be a non-empty id without spaces".into());
        }
        if model.starts_with("arn:") {
            return Err("model must be a base model id, not an ARN".into());
        }
        if let Some((first, _)) = model.split_once('.') {
            if first == "global" || self.regional_prefixes.iter().any(|p| p == first) {
                return Err(format!("model starts with the inference-profile prefix {first:?}; use the base model id"));
            }
        }
        let effective_date = NaiveDate::parse_from_str(raw.effective_date.trim(), "%Y-%m-%d")
            .map_err(|_| format!("effective_date {:?} is not a YYYY-MM-DD date", raw.effective_date))?;
        let name = raw.name.map(|n| n.trim().to_string()).filter(|n| !n.is_empty()).unwrap_or_else(|| model.clone());
        let rates =
            RawRates { input: raw.input, output: raw.output, cache_read: raw.cache_read, cache_write: raw.cache_write };
        let regional = price_of(&model, &name, Scope::Regional, effective_date, &rates)?;
        let global = match raw.global {
            Some(rates) => Some(
                price_of(&model, &name, Scope::Global, effective_date, &rates).map_err(|e| format!("global: {e}"))?,
            ),
            None => None,
        };
        Ok(Entry { regional, global })
    }

    /// Adds application inference profile mappings (profile ARN or id -> model id).
    pub fn add_application_profiles(&mut self, profiles: HashMap<String, String>) -> Result<()> {
        for (profile, model) in profiles {
            let (profile, model) = (profile.trim().to_string(), model.trim().to_string());
            if profile.is_empty() || model.is_empty() {
                return Err(invalid(format!(
                    "application_inference_profiles: {profile:?} -> {model:?} has an empty side"
                )));
            }
            if is_application_profile(&model) || self.app_profiles.contains_key(&model) {
                return Err(invalid(format!(
                    "application_inference_profiles: {profile:?} maps to another application profile ({model:?}); map it to a model id"
                )));
            }
            if let Some(id) = application_profile_id(&profile) {
                self.app_profiles.insert(id.to_string(), model.clone());
            }
            self.app_profiles.insert(profile, model);
        }
        Ok(())
    }

    /// This table with `other`'s entries replacing or extending its own (whole entries per model),
    /// its application profiles added, and a combined version (`base+override`).
    pub fn merge(mut self, other: PriceTable) -> PriceTable {
        self.version = format!("{}+{}", self.version, other.version);
        for p in other.regional_prefixes {
            if !self.regional_prefixes.contains(&p) {
                self.regional_prefixes.push(p);
            }
        }
        self.entries.extend(other.entries);
        self.app_profiles.extend(other.app_profiles);
        self
    }

    /// The table's version (stored with every ledger item).
    pub fn version(&self) -> &str {
        &self.version
    }

    /// Number of priced models.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no model is priced.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The highest rate of the table (USD per million tokens, of any kind of token of any
    /// model), or None when nothing is priced. Budgets count an unpriced model's tokens at it;
    /// the ledger never does (an unpriced turn stays unpriced there).
    pub fn highest_rate_per_million(&self) -> Option<f64> {
        self.entries
            .values()
            .flat_map(|e| std::iter::once(&e.regional).chain(e.global.as_ref()))
            .flat_map(|p| [Some(p.input), Some(p.output), p.cache_read, p.cache_write])
            .flatten()
            .filter(|r| r.is_finite())
            .reduce(f64::max)
    }

    /// The price that applies to `model_id` as Bedrock reported it, or None when unpriced.
    pub fn price(&self, model_id: &str) -> Option<&ModelPrice> {
        let (candidates, scope) = self.normalise(model_id, true)?;
        let entry = candidates.iter().find_map(|k| self.entries.get(k))?;
        Some(match scope {
            Scope::Global => entry.global.as_ref().unwrap_or(&entry.regional),
            Scope::Regional => &entry.regional,
        })
    }

    /// The USD cost of one call; None when the call is unpriced.
    pub fn cost(&self, call: &ModelCall) -> Option<f64> {
        self.price(&call.model_id)?.cost(call)
    }

    /// A turn's cost: (total, None if any call is unpriced; cost of the priced calls; tokens of
    /// the unpriced calls).
    pub fn turn_cost(&self, calls: &[ModelCall]) -> (Option<f64>, f64, u64) {
        let (mut priced, mut unpriced_tokens, mut all_priced) = (0.0, 0u64, true);
        for call in calls {
            match self.cost(call) {
                Some(c) => priced += c,
                None => {
                    all_priced = false;
                    unpriced_tokens += call_tokens(call);
                }
            }
        }
        (all_priced.then_some(priced), priced, unpriced_tokens)
    }

    /// A stable, low-cardinality name for `model_id` in metrics and rollups: the table key when
    /// priced, else the id as reported (trimmed), so an operator sees exactly what to add.
    pub fn model_label(&self, model_id: &str) -> String {
        match self.price(model_id) {
            Some(p) => p.model.clone(),
            None => model_id.trim().to_string(),
        }
    }
}

fn price_of(
    model: &str,
    name: &str,
    scope: Scope,
    effective_date: NaiveDate,
    rates: &RawRates,
) -> std::result::Result<ModelPrice, String> {
    let check = |field: &str, v: f64| {
        if !v.is_finite() || v < 0.0 {
            Err(format!("{field} must be a non-negative number, got {v}"))
        } else if v > MAX_PRICE_PER_MILLION {
            Err(format!("{field} = {v} USD per million tokens is implausible (unit mistake?)"))
        } else {
            Ok(v)
        }
    };
    Ok(ModelPrice {
        model: model.to_string(),
        name: name.to_string(),
        scope,
        effective_date,
        input: check("input", rates.input)?,
        output: check("output", rates.output)?,
        cache_read: rates.cache_read.map(|v| check("cache_read", v)).transpose()?,
        cache_write: rates.cache_write.map(|v| check("cache_write", v)).transpose()?,
    })
}

fn invalid(reason: String) -> Error {
    Error::Config(format!("price table: {reason}"))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTable {
    version: String,
    #[serde(default)]
    currency: Option<String>,
    #[serde(default)]
    unit: Option<String>,
    #[serde(default, rename = "source")]
    _source: Option<Value>,
    #[serde(default, rename = "notes")]
    _notes: Option<Value>,
    #[serde(default)]
    regional_prefixes: Vec<String>,
    #[serde(default)]
    models: Vec<Value>,
    #[serde(default)]
    application_inference_profiles: BTreeMap<String, String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawModel {
    model: String,
    #[serde(default)]
    name: Option<String>,
    effective_date: String,
    input: f64,
    output: f64,
    #[serde(default)]
    cache_read: Option<f64>,
    #[serde(default)]
    cache_write: Option<f64>,
    #[serde(default)]
    global: Option<RawRates>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRates {
    input: f64,
    output: f64,
    #[serde(default)]
    cache_read: Option<f64>,
    #[serde(default)]
    cache_write: Option<f64>,
}

#[cfg(test)]
mod tests;
