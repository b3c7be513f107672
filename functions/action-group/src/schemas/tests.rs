use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use serde_json::Value;

use super::*;

/// How to bring a committed schema file back in step with the definitions.
const REGENERATE: &str = "UPDATE_SCHEMAS=1 cargo test --workspace --locked --lib schemas";

fn crate_file(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(rel)
}

fn updating() -> bool {
    std::env::var("UPDATE_SCHEMAS").is_ok_and(|v| v == "1")
}

/// A committed schema file, parsed. While the files are being regenerated, what is being
/// written (the files on disk are mid-write and the embedded copies stale until a rebuild).
fn committed(rel: &str) -> Value {
    if updating() {
        return if rel == OPENAPI_PATH { openapi_document() } else { gateway_tools() };
    }
    let text = std::fs::read_to_string(crate_file(rel)).unwrap_or_else(|e| panic!("reading {rel}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{rel} is not JSON: {e}"))
}

/// (parameter name, JSON type, required) of every parameter, per operation or tool name.
type Signatures = BTreeMap<String, BTreeSet<(String, String, bool)>>;

/// The operations of an OpenAPI document, each with its parameters and description.
fn openapi_signatures(doc: &Value) -> (Signatures, BTreeMap<String, String>) {
    let mut signatures = Signatures::new();
    let mut descriptions = BTreeMap::new();
    for item in doc["paths"].as_object().expect("paths").values() {
        for op in item.as_object().expect("operations").values() {
            let id = op["operationId"].as_str().expect("operationId").to_string();
            let params = op["parameters"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|p| {
                    let name = p["name"].as_str().expect("name").to_string();
                    let kind = p["schema"]["type"].as_str().expect("type").to_string();
                    (name, kind, p["required"] == true)
                })
                .collect();
            descriptions.insert(id.clone(), op["description"].as_str().expect("description").to_string());
            assert!(signatures.insert(id.clone(), params).is_none(), "operationId {id} appears twice");
        }
    }
    (signatures, descriptions)
}

/// The tools of a Gateway tool schema, each with its arguments and description.
fn tool_signatures(tools: &Value) -> (Signatures, BTreeMap<String, String>) {
    let mut signatures = Signatures::new();
    let mut descriptions = BTreeMap::new();
    for tool in tools.as_array().expect("a JSON array of tool definitions") {
        let name = tool["name"].as_str().expect("name").to_string();
        let input = &tool["inputSchema"];
        assert_eq!(input["type"], "object", "{name}: the Gateway requires an object input schema");
        let required: BTreeSet<&str> =
            input["required"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
        let properties = input["properties"].as_object().expect("properties");
        for r in &required {
            assert!(properties.contains_key(*r), "{name}: required {r} is not a property");
        }
        let params = properties
            .iter()
            .map(|(p, schema)| {
                let kind = schema["type"].as_str().expect("type").to_string();
                (p.clone(), kind, required.contains(p.as_str()))
            })
            .collect();
        descriptions.insert(name.clone(), tool["description"].as_str().expect("description").to_string());
        assert!(signatures.insert(name.clone(), params).is_none(), "tool {name} appears twice");
    }
    (signatures, descriptions)
}

#[test]
fn the_committed_schema_files_are_what_the_definitions_generate() {
    for (rel, generated) in [(OPENAPI_PATH, openapi_document()), (GATEWAY_TOOLS_PATH, gateway_tools())] {
        if updating() {
            std::fs::write(crate_file(rel), render(&generated)).unwrap_or_else(|e| panic!("writing {rel}: {e}"));
            continue;
        }
        assert!(
            committed(rel) == generated,
            "functions/action-group/{rel} differs from the definitions in src/routes.rs and src/schemas.rs; \
             regenerate it with `{REGENERATE}` and commit it"
        );
    }
}

#[test]
fn the_embedded_schemas_are_the_committed_files() {
    if updating() {
        return; // the embedded copies are stale until the next build
    }
    for (rel, embedded) in [(OPENAPI_PATH, crate::OPENAPI_SCHEMA), (GATEWAY_TOOLS_PATH, GATEWAY_TOOLS)] {
        let embedded: Value = serde_json::from_str(embedded).expect("JSON");
        assert_eq!(embedded, committed(rel), "{rel}: rebuild after regenerating");
    }
}

/// Both ways: every OpenAPI operation has exactly one tool of the same name, description and
/// parameters (name, type, required), and every tool is an OpenAPI operation.
#[test]
fn every_operation_is_exactly_one_tool_and_every_tool_an_operation() {
    let (operations, op_descriptions) = openapi_signatures(&committed(OPENAPI_PATH));
    let (tools, tool_descriptions) = tool_signatures(&committed(GATEWAY_TOOLS_PATH));
    for (id, params) in &operations {
        assert_eq!(tools.get(id), Some(params), "operation {id}: no tool with the same parameters");
    }
    for (name, params) in &tools {
        assert_eq!(operations.get(name), Some(params), "tool {name}: no operation with the same parameters");
    }
    assert_eq!(op_descriptions, tool_descriptions, "tools describe themselves as the operations do");
    assert_eq!(operations.len(), ROUTES.len());
}

/// The handler serves exactly what the files declare: the routes' methods, paths, names and
/// parameter names are the OpenAPI document's.
#[test]
fn the_openapi_schema_and_the_routes_name_the_same_operations() {
    let schema = committed(OPENAPI_PATH);
    let mut in_schema = BTreeSet::new();
    for (path, item) in schema["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("operations") {
            let params: BTreeSet<String> = op["parameters"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|p| p["name"].as_str().expect("name").to_string())
                .collect();
            let id = op["operationId"].as_str().expect("operationId").to_string();
            in_schema.insert((method.to_uppercase(), path.clone(), id, params));
        }
    }
    let routes: BTreeSet<_> = ROUTES
        .iter()
        .map(|r| {
            let params = r.parameters.iter().map(|p| p.name.to_string()).collect();
            (r.method.to_string(), r.path.to_string(), r.function().to_string(), params)
        })
        .collect();
    assert_eq!(in_schema, routes);
}

/// The tool definitions fit the Gateway's `ToolDefinition`: a name the target prefix can be put
/// before (letters, digits, `_` and `-`, no `___` of its own), a description, an object input.
#[test]
fn the_tools_fit_the_gateway_tool_definition() {
    let tools = committed(GATEWAY_TOOLS_PATH);
    for tool in tools.as_array().expect("array") {
        let name = tool["name"].as_str().expect("name");
        assert!(!name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-'), "{name}");
        assert!(!name.contains(crate::events::gateway::TARGET_DELIMITER), "{name}");
        assert!(tool["description"].as_str().is_some_and(|d| !d.is_empty()), "{name}: description");
        let keys: BTreeSet<&str> = tool.as_object().expect("object").keys().map(String::as_str).collect();
        assert_eq!(keys, BTreeSet::from(["name", "description", "inputSchema"]), "{name}");
    }
}

#[test]
fn rendering_is_pretty_json_with_a_final_newline() {
    let text = render(&gateway_tools());
    assert!(text.ends_with("]\n"), "{text}");
    assert!(text.contains("\n  {\n    \"name\""), "{text}");
    assert_eq!(serde_json::from_str::<Value>(&text).expect("JSON"), gateway_tools());
}
