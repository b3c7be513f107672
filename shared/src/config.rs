//! Typed configuration read once at init from env vars; errors name the variable.

use std::str::FromStr;

use crate::{Error, Result};

/// Reads a required, non-empty env var.
pub fn required(name: &str) -> Result<String> {
    match std::env::var(name) {
        Ok(v) if !v.trim().is_empty() => Ok(v.trim().to_string()),
        Ok(_) => Err(Error::Config(format!("{name} is set but empty"))),
        Err(_) => Err(Error::Config(format!("{name} is not set"))),
    }
}

/// Reads an optional env var; empty counts as unset.
pub fn optional(name: &str) -> Option<String> {
    std::env::var(name).ok().map(|v| v.trim().to_string()).filter(|v| !v.is_empty())
}

/// Reads and parses an optional env var, with `default` when unset.
pub fn parsed<T: FromStr>(name: &str, default: T) -> Result<T> {
    match optional(name) {
        None => Ok(default),
        Some(v) => {
            v.parse().map_err(|_| Error::Config(format!("{name} is not a valid {}: {v:?}", std::any::type_name::<T>())))
        }
    }
}

/// The CloudWatch namespace for this product's metrics.
pub fn metrics_namespace() -> String {
    optional("METRICS_NAMESPACE").unwrap_or_else(|| "BedrockUsage".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_the_variable() {
        // Unique names: tests in this binary run in parallel.
        std::env::set_var("CFG_TEST_EMPTY", " ");
        std::env::set_var("CFG_TEST_BAD_NUM", "ten");
        let e = required("CFG_TEST_MISSING_X").unwrap_err().to_string();
        assert!(e.contains("CFG_TEST_MISSING_X is not set"), "{e}");
        let e = required("CFG_TEST_EMPTY").unwrap_err().to_string();
        assert!(e.contains("CFG_TEST_EMPTY is set but empty"), "{e}");
        let e = parsed::<f64>("CFG_TEST_BAD_NUM", 0.0).unwrap_err().to_string();
        assert!(e.contains("CFG_TEST_BAD_NUM") && e.contains("ten"), "{e}");
        assert_eq!(parsed::<u32>("CFG_TEST_UNSET_NUM", 7).unwrap(), 7);
    }
}
