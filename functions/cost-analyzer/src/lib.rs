//! cost-analyzer: the daily cost report (S3, and Slack with a chart) and the admin analytics API
//! (Function URL, AWS_IAM auth), from the usage rollups, with Athena for popular search queries.
//!
//! The entry point is [`handler`]; [`report`] builds the report and [`chart`] draws it; [`api`]
//! routes and answers the admin API (its OpenAPI document is `openapi/admin.json`). The rollups
//! are read through [`shared::ports::RollupStore`] (adapter: [`shared::aws::usage`]); [`audit`]
//! keeps the audit log, [`athena`] runs queries, [`compact`] rewrites each day of the event
//! archive as one object; [`s3`] holds the bucket's adapters.

pub mod api;
pub mod athena;
pub mod audit;
pub mod chart;
pub mod compact;
pub mod config;
pub mod handler;
pub mod report;
pub mod s3;

pub use config::Config;
pub use handler::{CostAnalyzer, CostAnalyzerError};

/// The OpenAPI document of the admin API.
pub const OPENAPI: &str = include_str!("../openapi/admin.json");

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use serde_json::Value;

    use crate::api::ROUTES;

    /// (METHOD, path, operationId, parameter names) of every operation in the document.
    fn document_operations() -> BTreeSet<(String, String, String, BTreeSet<String>)> {
        let doc: Value = serde_json::from_str(crate::OPENAPI).unwrap();
        let mut ops = BTreeSet::new();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                let params = op["parameters"]
                    .as_array()
                    .map(|ps| {
                        ps.iter()
                            .map(|p| {
                                // Parameters may be shared components.
                                match p.get("$ref").and_then(Value::as_str) {
                                    Some(r) => {
                                        let name = r.rsplit('/').next().unwrap();
                                        doc["components"]["parameters"][name]["name"].as_str().unwrap().to_string()
                                    }
                                    None => p["name"].as_str().unwrap().to_string(),
                                }
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                ops.insert((
                    method.to_uppercase(),
                    path.clone(),
                    op["operationId"].as_str().unwrap().to_string(),
                    params,
                ));
            }
        }
        ops
    }

    #[test]
    fn the_openapi_document_and_the_routes_name_the_same_operations() {
        let routes: BTreeSet<_> = ROUTES
            .iter()
            .map(|r| {
                let params = r.parameters.iter().map(|p| p.to_string()).collect();
                (r.method.to_string(), r.path.to_string(), r.operation_id.to_string(), params)
            })
            .collect();
        assert_eq!(document_operations(), routes);
    }
}
