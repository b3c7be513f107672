//! InvokeAgent's answer on the wire, for the scripted fakes, the property tests and the
//! benchmark (feature `test-support`): `application/vnd.amazon.eventstream` frames, and a
//! Bedrock Agent Runtime client whose every request is answered with a given body, over no
//! network, so the real SDK decodes what a test wrote.

use aws_sdk_bedrockagentruntime::config::retry::RetryConfig;
use aws_sdk_bedrockagentruntime::config::{BehaviorVersion, Credentials, Region};
use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, HttpResponse};
use aws_smithy_runtime_api::client::result::ConnectorError;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_runtime_api::http::StatusCode;
use aws_smithy_types::body::SdkBody;
use aws_smithy_types::event_stream::{Header, HeaderValue, Message};

/// One event-stream frame: `message_type` `event` (then `kind` is the event type: `chunk`,
/// `trace`...) or `exception` (then `kind` is the exception type), with a JSON payload.
pub fn frame(message_type: &str, kind: &str, payload: &str) -> Result<Vec<u8>, String> {
    let kind_header = if message_type == "exception" { ":exception-type" } else { ":event-type" };
    let message = Message::new(payload.as_bytes().to_vec())
        .add_header(Header::new(":message-type", HeaderValue::String(message_type.to_string().into())))
        .add_header(Header::new(kind_header, HeaderValue::String(kind.to_string().into())))
        .add_header(Header::new(":content-type", HeaderValue::String("application/json".into())));
    let mut out = Vec::new();
    aws_smithy_eventstream::frame::write_message_to(&message, &mut out).map_err(|e| e.to_string())?;
    Ok(out)
}

/// Answers every request with one body and the given headers.
#[derive(Debug, Clone)]
pub(crate) struct Answering {
    pub(crate) body: Vec<u8>,
    pub(crate) headers: Vec<(&'static str, &'static str)>,
}

impl Answering {
    /// An `application/vnd.amazon.eventstream` body, with InvokeAgent's headers.
    fn event_stream(body: Vec<u8>) -> Self {
        Answering {
            body,
            headers: vec![
                ("content-type", "application/vnd.amazon.eventstream"),
                ("x-amzn-bedrock-agent-content-type", "application/json"),
                ("x-amz-bedrock-agent-session-id", "wire-session"),
            ],
        }
    }
}

impl HttpConnector for Answering {
    fn call(&self, _request: HttpRequest) -> HttpConnectorFuture {
        let status = match StatusCode::try_from(200u16) {
            Ok(status) => status,
            Err(e) => return HttpConnectorFuture::ready(Err(ConnectorError::other(e.into(), None))),
        };
        let mut response = HttpResponse::new(status, SdkBody::from(self.body.clone()));
        let headers = response.headers_mut();
        for (name, value) in &self.headers {
            headers.insert(*name, *value);
        }
        HttpConnectorFuture::ready(Ok(response))
    }
}

impl HttpClient for Answering {
    fn http_connector(&self, _: &HttpConnectorSettings, _: &RuntimeComponents) -> SharedHttpConnector {
        SharedHttpConnector::new(self.clone())
    }
}

/// A client whose every InvokeAgent is answered with `body` (SDK retries off).
pub fn answering_client(body: Vec<u8>) -> aws_sdk_bedrockagentruntime::Client {
    let config = aws_sdk_bedrockagentruntime::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("wire", "wire", None, None, "wire"))
        .retry_config(RetryConfig::disabled())
        .http_client(Answering::event_stream(body))
        .build();
    aws_sdk_bedrockagentruntime::Client::from_conf(config)
}
