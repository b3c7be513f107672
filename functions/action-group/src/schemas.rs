//! The two schema files, generated from the one definition of the operations in
//! [`crate::routes::ROUTES`]: the OpenAPI document of a Bedrock Agents (Classic) action group
//! (`openapi/tickets.json`) and the tool definitions of an AgentCore Gateway Lambda target
//! (`tools/agentcore-tools.json`, the Gateway `ToolDefinition` shape: `name`, `description`,
//! `inputSchema`). Both files are committed; a test fails when either differs from what is
//! generated here, and `UPDATE_SCHEMAS=1 cargo test --workspace --locked --lib schemas` rewrites them.

use serde_json::{json, Map, Value};

use crate::routes::{Action, Route, ROUTES};

/// The committed OpenAPI document, relative to the crate (`functions/action-group/`).
pub const OPENAPI_PATH: &str = "openapi/tickets.json";
/// The committed AgentCore Gateway tool schema, relative to the crate.
pub const GATEWAY_TOOLS_PATH: &str = "tools/agentcore-tools.json";

/// The committed AgentCore Gateway tool schema (the JSON array of tool definitions to inline in
/// a `AWS::BedrockAgentCore::GatewayTarget`'s `ToolSchema.InlinePayload`).
pub const GATEWAY_TOOLS: &str = include_str!("../tools/agentcore-tools.json");

/// The OpenAPI document of the action group.
pub fn openapi_document() -> Value {
    let mut paths = Map::new();
    for route in ROUTES {
        let item = paths.entry(route.path).or_insert_with(|| json!({}));
        item[route.method.to_lowercase()] = openapi_operation(route);
    }
    json!({
        "openapi": "3.0.0",
        "info": {
            "title": "TicketActions",
            "version": "1.0.0",
            "description": "Look up Jira tickets and the asking user's own Bedrock usage. Served by the action-group Lambda."
        },
        "paths": paths,
        "components": components(),
    })
}

/// The AgentCore Gateway tool definitions: one tool per operation, named as the function form
/// names it, its arguments the operation's parameters.
pub fn gateway_tools() -> Value {
    Value::Array(ROUTES.iter().map(gateway_tool).collect())
}

/// A schema document as the committed files hold it: pretty JSON and a final newline.
pub fn render(document: &Value) -> String {
    let mut text = serde_json::to_string_pretty(document).unwrap_or_default();
    text.push('\n');
    text
}

fn openapi_operation(route: &Route) -> Value {
    let parameters: Vec<Value> = route
        .parameters
        .iter()
        .map(|p| {
            json!({
                "name": p.name,
                "in": p.location.as_str(),
                "description": p.description,
                "required": p.required,
                "schema": { "type": p.kind.as_str() },
            })
        })
        .collect();
    json!({
        "operationId": route.function(),
        "summary": route.summary,
        "description": route.description,
        "parameters": parameters,
        "responses": responses(route.action),
    })
}

fn gateway_tool(route: &Route) -> Value {
    let properties: Map<String, Value> = route
        .parameters
        .iter()
        .map(|p| (p.name.to_string(), json!({ "type": p.kind.as_str(), "description": p.description })))
        .collect();
    let required: Vec<&str> = route.parameters.iter().filter(|p| p.required).map(|p| p.name).collect();
    json!({
        "name": route.function(),
        "description": route.description,
        "inputSchema": { "type": "object", "properties": properties, "required": required },
    })
}

/// What each operation answers (OpenAPI form only: a gateway tool's answer is its JSON).
fn responses(action: Action) -> Value {
    let error = json!({ "$ref": "#/components/responses/Error" });
    match action {
        Action::SearchTickets => json!({
            "200": {
                "description": "The matching tickets.",
                "content": { "application/json": { "schema": {
                    "type": "object",
                    "properties": {
                        "jql": { "type": "string", "description": "The JQL that was run." },
                        "count": { "type": "integer", "description": "How many tickets are listed." },
                        "more": { "type": "boolean", "description": "Whether Jira has more matches than listed." },
                        "tickets": { "type": "array", "items": { "$ref": "#/components/schemas/Ticket" } }
                    }
                } } }
            },
            "400": error,
        }),
        Action::GetTicket => json!({
            "200": {
                "description": "The ticket.",
                "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Ticket" } } }
            },
            "404": error,
        }),
        Action::MyUsage => json!({
            "200": {
                "description": "Spend and tokens: 'today' and 'this_month' objects, or one object for a period with 'from' and 'to'.",
                "content": { "application/json": { "schema": {
                    "type": "object",
                    "properties": {
                        "today": { "$ref": "#/components/schemas/Spend" },
                        "this_month": { "$ref": "#/components/schemas/Spend" },
                        "from": { "type": "string" },
                        "to": { "type": "string" },
                        "cost_usd": { "type": "number" },
                        "total_tokens": { "type": "integer" },
                        "notes": { "type": "array", "items": { "type": "string" } }
                    }
                } } }
            },
            "400": error,
        }),
    }
}

fn components() -> Value {
    json!({
        "schemas": {
            "Ticket": {
                "type": "object",
                "properties": {
                    "key": { "type": "string" },
                    "summary": { "type": "string" },
                    "status": { "type": "string" },
                    "assignee": { "type": "string", "nullable": true, "description": "Display name; null when unassigned." },
                    "updated": { "type": "string", "description": "Last update, ISO-8601." },
                    "priority": { "type": "string", "nullable": true },
                    "url": { "type": "string", "description": "Link to the ticket in Jira." }
                }
            },
            "Spend": {
                "type": "object",
                "properties": {
                    "cost_usd": { "type": "number", "description": "Estimated spend in USD." },
                    "input_tokens": { "type": "integer" },
                    "output_tokens": { "type": "integer" },
                    "total_tokens": { "type": "integer" },
                    "turns": { "type": "integer", "description": "Questions answered." },
                    "unpriced_tokens": { "type": "integer", "description": "Tokens from models without a price (not in cost_usd)." }
                }
            },
            "Error": {
                "type": "object",
                "properties": {
                    "error": { "type": "string", "description": "What went wrong, to tell the user." }
                }
            }
        },
        "responses": {
            "Error": {
                "description": "The request could not be answered; 'error' says why.",
                "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } }
            }
        }
    })
}

#[cfg(test)]
mod tests;
