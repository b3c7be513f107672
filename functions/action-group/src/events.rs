//! Bedrock Agent action-group Lambda events and responses, in both forms: an action group defined
//! by an OpenAPI schema (`apiPath`, `httpMethod`, `parameters`, `requestBody`) and one defined by
//! function details (`function`, `parameters`). `aws_lambda_events` models neither the function
//! form nor any response, so both are here, checked against the examples in the Bedrock user guide
//! ("Configure Lambda functions to send information that an Amazon Bedrock agent elicits from the
//! user").

pub mod gateway;

use std::collections::BTreeMap;

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

/// The only message version Bedrock sends and accepts.
pub const MESSAGE_VERSION: &str = "1.0";
/// Content type of an OpenAPI-form response body.
pub const APPLICATION_JSON: &str = "application/json";
/// Content type of a function-form response body.
pub const TEXT: &str = "TEXT";

/// The agent that called the action group.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentInfo {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub id: String,
    #[serde(default)]
    pub alias: String,
    #[serde(default)]
    pub version: String,
}

/// One parameter (or request-body property) the agent elicited.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Parameter {
    pub name: String,
    /// The declared type (`string`, `integer`, `number`, `boolean`, `array`).
    #[serde(rename = "type", default)]
    pub kind: String,
    /// Bedrock sends every value as a string; numbers and booleans are accepted and kept as text.
    #[serde(default, deserialize_with = "scalar_as_string")]
    pub value: String,
}

/// The request body of an OpenAPI-form call: properties per content type.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestBody {
    #[serde(default, deserialize_with = "null_as_default")]
    pub content: BTreeMap<String, BodyContent>,
}

/// The properties sent under one content type.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BodyContent {
    #[serde(default, deserialize_with = "null_as_default")]
    pub properties: Vec<Parameter>,
}

/// The fields both event forms share.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InvocationContext {
    #[serde(default = "message_version")]
    pub message_version: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub agent: AgentInfo,
    #[serde(default, deserialize_with = "null_as_default")]
    pub input_text: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub session_id: String,
    pub action_group: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub parameters: Vec<Parameter>,
    /// Set by the caller of InvokeAgent (the Slack worker: `slack_user_id`, `slack_team_id`);
    /// the model cannot change them, so they are the trusted identity of the asker.
    #[serde(default, deserialize_with = "null_as_default")]
    pub session_attributes: BTreeMap<String, String>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub prompt_session_attributes: BTreeMap<String, String>,
}

/// An event from an action group defined by an OpenAPI schema.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApiEvent {
    #[serde(flatten)]
    pub context: InvocationContext,
    /// The path as written in the schema (e.g. `/tickets/{key}`).
    pub api_path: String,
    pub http_method: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_body: Option<RequestBody>,
}

/// An event from an action group defined by function details.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FunctionEvent {
    #[serde(flatten)]
    pub context: InvocationContext,
    pub function: String,
}

/// An action-group invocation in either form.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum ActionGroupEvent {
    Api(ApiEvent),
    Function(FunctionEvent),
}

impl<'de> Deserialize<'de> for ActionGroupEvent {
    /// Picks the form by its distinguishing field, so a malformed event gets an error that says
    /// what is wrong rather than "did not match any variant".
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(deserializer)?;
        let has = |k: &str| value.get(k).is_some_and(|v| !v.is_null());
        if has("function") {
            FunctionEvent::deserialize(value).map(ActionGroupEvent::Function).map_err(D::Error::custom)
        } else if has("apiPath") {
            ApiEvent::deserialize(value).map(ActionGroupEvent::Api).map_err(D::Error::custom)
        } else {
            Err(D::Error::custom("not a Bedrock action-group event: it has neither `apiPath` nor `function`"))
        }
    }
}

impl ActionGroupEvent {
    /// The fields both forms share.
    pub fn context(&self) -> &InvocationContext {
        match self {
            ActionGroupEvent::Api(e) => &e.context,
            ActionGroupEvent::Function(e) => &e.context,
        }
    }

    /// A parameter's value by name: the parameters first, then the request-body properties.
    pub fn parameter(&self, name: &str) -> Option<&str> {
        let from_params = self.context().parameters.iter().find(|p| p.name == name);
        let from_body = || match self {
            ActionGroupEvent::Api(ApiEvent { request_body: Some(body), .. }) => {
                body.content.values().flat_map(|c| c.properties.iter()).find(|p| p.name == name)
            }
            _ => None,
        };
        from_params.or_else(from_body).map(|p| p.value.as_str())
    }

    /// What was called, for logs: `GET /tickets/{key}` or `getTicket`.
    pub fn operation(&self) -> String {
        match self {
            ActionGroupEvent::Api(e) => format!("{} {}", e.http_method.to_uppercase(), e.api_path),
            ActionGroupEvent::Function(e) => e.function.clone(),
        }
    }
}

/// How a function-form call failed. Absent on success.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ResponseState {
    /// The agent fails the turn with a DependencyFailedException (an outage, a misconfiguration).
    Failure,
    /// The body goes back to the model, which re-prompts (the user's mistake: ask again).
    Reprompt,
}

/// A response body under one content type.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContentBody {
    pub body: String,
}

/// The OpenAPI-form result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApiResult {
    pub action_group: String,
    pub api_path: String,
    pub http_method: String,
    pub http_status_code: u16,
    /// `{"application/json": {"body": "<JSON text>"}}`.
    pub response_body: BTreeMap<String, ContentBody>,
}

/// The function-form result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FunctionResult {
    pub action_group: String,
    pub function: String,
    pub function_response: FunctionResponse,
}

/// The function's answer: a TEXT body, and a state when it failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FunctionResponse {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_state: Option<ResponseState>,
    /// `{"TEXT": {"body": "..."}}`.
    pub response_body: BTreeMap<String, ContentBody>,
}

/// The result in either form.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ActionResult {
    Api(ApiResult),
    Function(FunctionResult),
}

/// What the Lambda returns to Bedrock.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ActionGroupResponse {
    pub message_version: String,
    pub response: ActionResult,
    /// Passed through unchanged: returning them keeps the session's state as it was.
    #[serde(default)]
    pub session_attributes: BTreeMap<String, String>,
    #[serde(default)]
    pub prompt_session_attributes: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub knowledge_bases_configuration: Option<Value>,
}

impl ActionGroupResponse {
    fn new(context: &InvocationContext, response: ActionResult) -> Self {
        ActionGroupResponse {
            message_version: MESSAGE_VERSION.to_string(),
            response,
            session_attributes: context.session_attributes.clone(),
            prompt_session_attributes: context.prompt_session_attributes.clone(),
            knowledge_bases_configuration: None,
        }
    }

    /// The OpenAPI-form result, if this is one.
    pub fn api(&self) -> Option<&ApiResult> {
        match &self.response {
            ActionResult::Api(r) => Some(r),
            ActionResult::Function(_) => None,
        }
    }

    /// The function-form result, if this is one.
    pub fn function(&self) -> Option<&FunctionResult> {
        match &self.response {
            ActionResult::Function(r) => Some(r),
            ActionResult::Api(_) => None,
        }
    }

    /// The body text in either form (the JSON text of an OpenAPI body, the TEXT of a function).
    pub fn body(&self) -> &str {
        let (map, key) = match &self.response {
            ActionResult::Api(r) => (&r.response_body, APPLICATION_JSON),
            ActionResult::Function(r) => (&r.function_response.response_body, TEXT),
        };
        map.get(key).map(|c| c.body.as_str()).unwrap_or_default()
    }
}

impl ApiEvent {
    /// Answers with `status` and a JSON body (`body_json` must already be JSON text).
    pub fn respond(&self, status: u16, body_json: String) -> ActionGroupResponse {
        let result = ApiResult {
            action_group: self.context.action_group.clone(),
            api_path: self.api_path.clone(),
            http_method: self.http_method.clone(),
            http_status_code: status,
            response_body: BTreeMap::from([(APPLICATION_JSON.to_string(), ContentBody { body: body_json })]),
        };
        ActionGroupResponse::new(&self.context, ActionResult::Api(result))
    }
}

impl FunctionEvent {
    /// Answers with a TEXT body; `state` is `None` on success.
    pub fn respond(&self, state: Option<ResponseState>, text: String) -> ActionGroupResponse {
        let result = FunctionResult {
            action_group: self.context.action_group.clone(),
            function: self.function.clone(),
            function_response: FunctionResponse {
                response_state: state,
                response_body: BTreeMap::from([(TEXT.to_string(), ContentBody { body: text })]),
            },
        };
        ActionGroupResponse::new(&self.context, ActionResult::Function(result))
    }
}

fn message_version() -> String {
    MESSAGE_VERSION.to_string()
}

/// `null` counts as absent.
fn null_as_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

/// A string, or a number or boolean as its text; `null` is empty.
fn scalar_as_string<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    match Value::deserialize(deserializer)? {
        Value::String(s) => Ok(s),
        Value::Null => Ok(String::new()),
        v @ (Value::Number(_) | Value::Bool(_)) => Ok(v.to_string()),
        _ => Err(D::Error::custom("a parameter value must be a string, number or boolean")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    // The general formats documented in the Bedrock user guide, "Configure Lambda functions to
    // send information that an Amazon Bedrock agent elicits from the user"
    // (https://docs.aws.amazon.com/bedrock/latest/userguide/agents-lambda.html), quoted with only
    // what makes them invalid JSON taken out: the `...` elisions, trailing commas, and the
    // `number` placeholder of httpStatusCode (here 200).

    /// "Lambda input event from Amazon Bedrock", API schema.
    const DOC_API_EVENT: &str = r#"{
        "messageVersion": "1.0",
        "agent": {
            "name": "string",
            "id": "string",
            "alias": "string",
            "version": "string"
        },
        "inputText": "string",
        "sessionId": "string",
        "actionGroup": "string",
        "apiPath": "string",
        "httpMethod": "string",
        "parameters": [
            {
                "name": "string",
                "type": "string",
                "value": "string"
            }
        ],
        "requestBody": {
            "content": {
                "<content_type>": {
                    "properties": [
                       {
                           "name": "string",
                           "type": "string",
                           "value": "string"
                        }
                    ]
                }
            }
        },
        "sessionAttributes": {
            "string": "string"
        },
        "promptSessionAttributes": {
            "string": "string"
        }
    }"#;

    /// "Lambda response event to Amazon Bedrock", API schema.
    const DOC_API_RESPONSE: &str = r#"{
        "messageVersion": "1.0",
        "response": {
            "actionGroup": "string",
            "apiPath": "string",
            "httpMethod": "string",
            "httpStatusCode": 200,
            "responseBody": {
                "<contentType>": {
                    "body": "JSON-formatted string"
                }
            }
        },
        "sessionAttributes": {
            "string": "string"
        },
        "promptSessionAttributes": {
            "string": "string"
        }
    }"#;

    /// "Lambda input event from Amazon Bedrock", function details.
    const DOC_FUNCTION_EVENT: &str = r#"{
        "messageVersion": "1.0",
        "agent": {
            "name": "string",
            "id": "string",
            "alias": "string",
            "version": "string"
        },
        "inputText": "string",
        "sessionId": "string",
        "actionGroup": "string",
        "function": "string",
        "parameters": [
            {
                "name": "string",
                "type": "string",
                "value": "string"
            }
        ],
        "sessionAttributes": {
            "string": "string"
        },
        "promptSessionAttributes": {
            "string": "string"
        }
    }"#;

    /// "Lambda response event to Amazon Bedrock", function details.
    const DOC_FUNCTION_RESPONSE: &str = r#"{
        "messageVersion": "1.0",
        "response": {
            "actionGroup": "string",
            "function": "string",
            "functionResponse": {
                "responseState": "FAILURE | REPROMPT",
                "responseBody": {
                    "<functionContentType>": {
                        "body": "JSON-formatted string"
                    }
                }
            }
        },
        "sessionAttributes": {
            "string": "string"
        },
        "promptSessionAttributes": {
            "string": "string"
        }
    }"#;

    /// The documented example event of `aws_lambda_events`
    /// (`src/fixtures/example-bedrock-agent-runtime-event.json`), an OpenAPI-form call.
    const LAMBDA_EVENTS_API_EVENT: &str = r#"{
      "messageVersion": "1.0",
      "agent": {
        "name": "AgentName",
        "id": "AgentID",
        "alias": "AgentAlias",
        "version": "AgentVersion"
      },
      "inputText": "InputText",
      "sessionId": "SessionID",
      "actionGroup": "ActionGroup",
      "apiPath": "/api/path",
      "httpMethod": "POST",
      "parameters": [
        {
          "name": "param1",
          "type": "string",
          "value": "value1"
        }
      ],
      "requestBody": {
        "content": {
          "application/json": {
            "properties": [
              {
                "name": "prop1",
                "type": "string",
                "value": "value1"
              }
            ]
          }
        }
      },
      "sessionAttributes": {
        "attr1": "value1"
      },
      "promptSessionAttributes": {
        "promptAttr1": "value1"
      }
    }"#;

    fn parse(text: &str) -> ActionGroupEvent {
        serde_json::from_str(text).unwrap()
    }

    /// A documented response with its placeholders filled in as the user guide describes them.
    fn documented(text: &str, replacements: &[(&str, &str)]) -> Value {
        let mut text = text.to_string();
        for (from, to) in replacements {
            text = text.replace(from, to);
        }
        serde_json::from_str(&text).unwrap()
    }

    #[test]
    fn action_group_api_event_of_the_user_guide_parses() {
        let ActionGroupEvent::Api(event) = parse(DOC_API_EVENT) else { panic!("not the API form") };
        assert_eq!(event.context.message_version, "1.0");
        assert_eq!(event.context.agent.alias, "string");
        assert_eq!(event.api_path, "string");
        assert_eq!(event.http_method, "string");
        assert_eq!(
            event.context.parameters,
            vec![Parameter { name: "string".into(), kind: "string".into(), value: "string".into() }]
        );
        let body = event.request_body.as_ref().unwrap();
        assert_eq!(body.content["<content_type>"].properties.len(), 1);
        assert_eq!(event.context.session_attributes["string"], "string");
        assert_eq!(event.context.prompt_session_attributes["string"], "string");
    }

    #[test]
    fn action_group_api_response_has_the_documented_shape() {
        let ActionGroupEvent::Api(event) = parse(DOC_API_EVENT) else { panic!("not the API form") };
        let ours = serde_json::to_value(event.respond(200, "JSON-formatted string".into())).unwrap();
        let doc = documented(DOC_API_RESPONSE, &[("<contentType>", APPLICATION_JSON)]);
        assert_eq!(ours, doc);
        let back: ActionGroupResponse = serde_json::from_value(doc).unwrap();
        assert_eq!(back.api().unwrap().http_status_code, 200);
        assert_eq!(back.body(), "JSON-formatted string");
    }

    #[test]
    fn action_group_function_event_of_the_user_guide_parses() {
        let ActionGroupEvent::Function(event) = parse(DOC_FUNCTION_EVENT) else { panic!("not the function form") };
        assert_eq!(event.function, "string");
        assert_eq!(event.context.action_group, "string");
        assert_eq!(event.context.input_text, "string");
        assert_eq!(event.context.session_id, "string");
        assert_eq!(event.context.parameters[0].value, "string");
    }

    #[test]
    fn action_group_function_responses_have_the_documented_shape() {
        let ActionGroupEvent::Function(event) = parse(DOC_FUNCTION_EVENT) else { panic!("not the function form") };
        for (state, name) in [(ResponseState::Failure, "FAILURE"), (ResponseState::Reprompt, "REPROMPT")] {
            let ours = serde_json::to_value(event.respond(Some(state), "JSON-formatted string".into())).unwrap();
            let doc =
                documented(DOC_FUNCTION_RESPONSE, &[("<functionContentType>", TEXT), ("FAILURE | REPROMPT", name)]);
            assert_eq!(ours, doc);
        }
        // Success: the user guide's example function omits responseState
        // (`'functionResponse': {'responseBody': responseBody}`).
        let ok =
            serde_json::to_value(event.respond(None, "The function string was called successfully!".into())).unwrap();
        assert_eq!(
            ok["response"]["functionResponse"],
            json!({"responseBody": {"TEXT": {"body": "The function string was called successfully!"}}})
        );
        let back: ActionGroupResponse = serde_json::from_value(ok).unwrap();
        assert_eq!(back.function().unwrap().function_response.response_state, None);
    }

    #[test]
    fn action_group_aws_lambda_events_example_parses_with_its_request_body() {
        let event = parse(LAMBDA_EVENTS_API_EVENT);
        assert_eq!(event.operation(), "POST /api/path");
        assert_eq!(event.parameter("param1"), Some("value1"));
        assert_eq!(event.parameter("prop1"), Some("value1"), "request-body properties are parameters too");
        assert_eq!(event.parameter("missing"), None);
        assert_eq!(event.context().session_attributes["attr1"], "value1");
        // Round trip: what we parse is what we would send.
        let again: ActionGroupEvent = serde_json::from_value(serde_json::to_value(&event).unwrap()).unwrap();
        assert_eq!(again, event);
    }

    #[test]
    fn action_group_events_tolerate_nulls_and_scalars_and_reject_other_shapes() {
        let event = parse(
            r#"{"messageVersion":"1.0","actionGroup":"A","function":"f","parameters":[
                {"name":"limit","type":"integer","value":5},{"name":"open","type":"boolean","value":true}],
                "sessionAttributes":null}"#,
        );
        assert_eq!(event.parameter("limit"), Some("5"));
        assert_eq!(event.parameter("open"), Some("true"));
        assert!(event.context().session_attributes.is_empty());
        assert!(event.context().prompt_session_attributes.is_empty());
        let with_null_params = parse(r#"{"actionGroup":"A","apiPath":"/x","httpMethod":"get","parameters":null}"#);
        assert!(with_null_params.context().parameters.is_empty());
        assert_eq!(with_null_params.operation(), "GET /x");

        let e = serde_json::from_str::<ActionGroupEvent>(r#"{"actionGroup":"A"}"#).unwrap_err().to_string();
        assert!(e.contains("neither `apiPath` nor `function`"), "{e}");
        let e = serde_json::from_str::<ActionGroupEvent>(r#"{"function":"f"}"#).unwrap_err().to_string();
        assert!(e.contains("actionGroup"), "{e}");
        let e =
            serde_json::from_str::<ActionGroupEvent>(r#"{"actionGroup":"A","apiPath":"/x"}"#).unwrap_err().to_string();
        assert!(e.contains("httpMethod"), "{e}");
    }

    #[test]
    fn action_group_responses_pass_session_attributes_through() {
        let ActionGroupEvent::Function(event) = parse(
            r#"{"actionGroup":"A","function":"f","sessionAttributes":{"slack_user_id":"U1"},
                "promptSessionAttributes":{"today":"2026-04-19"}}"#,
        ) else {
            panic!("not the function form")
        };
        let response = event.respond(Some(ResponseState::Reprompt), "which ticket?".into());
        let v = serde_json::to_value(&response).unwrap();
        assert_eq!(v["sessionAttributes"], json!({"slack_user_id": "U1"}));
        assert_eq!(v["promptSessionAttributes"], json!({"today": "2026-04-19"}));
        assert!(v.get("knowledgeBasesConfiguration").is_none());
        assert_eq!(v["response"]["functionResponse"]["responseState"], "REPROMPT");
        assert_eq!(response.body(), "which ticket?");
    }
}
