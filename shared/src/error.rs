//! The shared crate's error type. Messages never carry secret values.

/// Errors raised by shared adapters and configuration.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An env var is missing or malformed; the message names the variable.
    #[error("configuration: {0}")]
    Config(String),
    /// A secret could not be read or does not have the expected shape.
    #[error("secret {arn}: {reason}")]
    Secret { arn: String, reason: String },
    /// An AWS call failed; `code` is the service's error code when it sent one.
    #[error("{service} {operation} failed ({code}): {message}")]
    Aws { service: &'static str, operation: &'static str, code: String, message: String, retryable: bool },
    /// A payload did not have the expected shape.
    #[error("malformed {what}: {reason}")]
    Malformed { what: &'static str, reason: String },
}

impl Error {
    /// Whether retrying the same call may succeed (throttling, 5xx, timeouts).
    pub fn is_retryable(&self) -> bool {
        matches!(self, Error::Aws { retryable: true, .. })
    }

    /// A short, stable code for metrics dimensions and analytics (`error_code`).
    pub fn code(&self) -> String {
        match self {
            Error::Config(_) => "Config".into(),
            Error::Secret { .. } => "Secret".into(),
            Error::Aws { code, .. } => code.clone(),
            Error::Malformed { .. } => "Malformed".into(),
        }
    }
}

/// Error codes AWS documents as transient.
pub fn is_retryable_code(code: &str) -> bool {
    matches!(
        code,
        "ThrottlingException"
            | "Throttling"
            | "ThrottledException"
            | "ProvisionedThroughputExceededException"
            | "RequestLimitExceeded"
            | "TooManyRequestsException"
            | "ServiceUnavailable"
            | "ServiceUnavailableException"
            | "InternalServerError"
            | "InternalServerException"
            | "InternalFailure"
            | "InternalError"
            | "BadGatewayException"
            | "DependencyFailedException"
            | "ModelNotReadyException"
            | "SlowDown"
    )
}

/// Result with the shared [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
