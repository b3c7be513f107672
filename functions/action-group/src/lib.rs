//! action-group: the Bedrock Agent's tools. Jira ticket search and lookup (credentials read from
//! Secrets Manager on every invocation) and the asking user's own usage from the rollups, served
//! in both action-group forms (OpenAPI schema and function details).
//!
//! The logic starts in [`handler`]; [`events`] holds the request and response shapes of both
//! forms, [`routes`] names the operations once for both forms and for the OpenAPI schema in
//! `openapi/tickets.json`; [`my_usage`] reads the user's usage questions and shapes the answers.

pub mod config;
pub mod events;
pub mod handler;
pub mod jira;
pub mod jql;
pub mod my_usage;
pub mod outcome;
pub mod routes;

pub use config::ActionGroupConfig;
pub use handler::{ActionGroupError, Handler};

/// The OpenAPI schema of the action group (also the file to upload when creating it).
pub const OPENAPI_SCHEMA: &str = include_str!("../openapi/tickets.json");

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use serde_json::Value;

    use crate::routes::ROUTES;

    /// (METHOD, path, operationId, parameter names) of every operation in the schema.
    fn schema_operations() -> BTreeSet<(String, String, String, BTreeSet<String>)> {
        let schema: Value = serde_json::from_str(crate::OPENAPI_SCHEMA).unwrap();
        let mut ops = BTreeSet::new();
        for (path, item) in schema["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                let params = op["parameters"]
                    .as_array()
                    .map(|ps| ps.iter().map(|p| p["name"].as_str().unwrap().to_string()).collect())
                    .unwrap_or_default();
                let id = op["operationId"].as_str().unwrap().to_string();
                ops.insert((method.to_uppercase(), path.clone(), id, params));
            }
        }
        ops
    }

    #[test]
    fn the_openapi_schema_and_the_routes_name_the_same_operations() {
        let routes: BTreeSet<_> = ROUTES
            .iter()
            .map(|r| {
                let params = r.parameters.iter().map(|p| p.to_string()).collect();
                (r.method.to_string(), r.path.to_string(), r.function().to_string(), params)
            })
            .collect();
        assert_eq!(schema_operations(), routes);
    }
}
