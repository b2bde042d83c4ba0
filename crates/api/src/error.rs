//! The one place where failures become AWS error responses.

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use palisade_engine::EngineError;
use palisade_model::errors::{
    CERTIFICATE_CONFLICT_EXCEPTION, CERTIFICATE_STATE_EXCEPTION, CERTIFICATE_VALIDATION_EXCEPTION,
    DELETE_CONFLICT_EXCEPTION, INTERNAL_FAILURE_EXCEPTION, INVALID_REQUEST_EXCEPTION,
    LIMIT_EXCEEDED_EXCEPTION, MALFORMED_POLICY_EXCEPTION, NOT_CONFIGURED_EXCEPTION,
    REGISTRATION_CODE_VALIDATION_EXCEPTION, RESOURCE_ALREADY_EXISTS_EXCEPTION,
    RESOURCE_NOT_FOUND_EXCEPTION, SERVICE_UNAVAILABLE_EXCEPTION, TASK_ALREADY_EXISTS_EXCEPTION,
    VERSIONS_LIMIT_EXCEEDED_EXCEPTION, VERSION_CONFLICT_EXCEPTION,
};
use palisade_model::{ErrorSpec, RequestError};
use palisade_sigv4::SigV4Error;
use serde_json::{Map, Value};

/// An error answered to the client: an AWS code, an HTTP status, a message, and any
/// modelled members of the error shape.
#[derive(Debug)]
pub struct ApiError {
    pub code: &'static str,
    pub status: u16,
    pub message: String,
    pub members: Vec<(&'static str, String)>,
}

impl ApiError {
    pub fn modelled(spec: ErrorSpec, message: impl Into<String>) -> Self {
        Self {
            code: spec.code,
            status: spec.status,
            message: message.into(),
            members: Vec::new(),
        }
    }

    /// Errors outside the IoT model (auth, routing, protocol), shaped the same way.
    pub fn other(code: &'static str, status: u16, message: impl Into<String>) -> Self {
        Self {
            code,
            status,
            message: message.into(),
            members: Vec::new(),
        }
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        Self::modelled(INVALID_REQUEST_EXCEPTION, message)
    }

    pub fn not_implemented(operation: &str) -> Self {
        Self::other(
            "NotImplementedException",
            501,
            format!("Palisade does not implement the AWS IoT operation {operation} yet."),
        )
    }

    pub fn unknown_path(method: &str, path: &str) -> Self {
        Self::other(
            "UnknownOperationException",
            404,
            format!("No AWS IoT operation matches {method} {path}."),
        )
    }

    pub fn too_large(limit: usize) -> Self {
        Self::other(
            "RequestEntityTooLargeException",
            413,
            format!("The request body exceeds the limit of {limit} bytes."),
        )
    }

    pub fn internal() -> Self {
        Self::modelled(
            INTERNAL_FAILURE_EXCEPTION,
            "An internal error occurred. The cause was logged with this request's id.",
        )
    }

    pub fn is_server_error(&self) -> bool {
        self.status >= 500 && self.status != 501
    }
}

impl From<RequestError> for ApiError {
    fn from(e: RequestError) -> Self {
        Self::invalid(e.message)
    }
}

impl From<SigV4Error> for ApiError {
    fn from(e: SigV4Error) -> Self {
        Self::other(e.code(), 403, e.message())
    }
}

impl From<EngineError> for ApiError {
    fn from(e: EngineError) -> Self {
        match e {
            EngineError::InvalidRequest(m) => Self::invalid(m),
            EngineError::NotFound(m) => Self::modelled(RESOURCE_NOT_FOUND_EXCEPTION, m),
            EngineError::AlreadyExists {
                message,
                resource_id,
                resource_arn,
            } => {
                let mut err = Self::modelled(RESOURCE_ALREADY_EXISTS_EXCEPTION, message);
                err.members.extend(resource_id.map(|v| ("resourceId", v)));
                err.members.extend(resource_arn.map(|v| ("resourceArn", v)));
                err
            }
            EngineError::LimitExceeded(m) => Self::modelled(LIMIT_EXCEEDED_EXCEPTION, m),
            EngineError::VersionConflict(m) => Self::modelled(VERSION_CONFLICT_EXCEPTION, m),
            EngineError::DeleteConflict(m) => Self::modelled(DELETE_CONFLICT_EXCEPTION, m),
            EngineError::MalformedPolicy(m) => Self::modelled(MALFORMED_POLICY_EXCEPTION, m),
            EngineError::VersionsLimitExceeded(m) => {
                Self::modelled(VERSIONS_LIMIT_EXCEEDED_EXCEPTION, m)
            }
            EngineError::NotConfigured(m) => Self::modelled(NOT_CONFIGURED_EXCEPTION, m),
            EngineError::CertificateValidation(m) => {
                Self::modelled(CERTIFICATE_VALIDATION_EXCEPTION, m)
            }
            EngineError::CertificateState(m) => Self::modelled(CERTIFICATE_STATE_EXCEPTION, m),
            EngineError::TaskAlreadyExists(m) => Self::modelled(TASK_ALREADY_EXISTS_EXCEPTION, m),
            EngineError::RegistrationCodeValidation(m) => {
                Self::modelled(REGISTRATION_CODE_VALIDATION_EXCEPTION, m)
            }
            EngineError::CertificateConflict(m) => {
                Self::modelled(CERTIFICATE_CONFLICT_EXCEPTION, m)
            }
            EngineError::Unavailable(cause) => {
                tracing::error!(%cause, "storage unavailable");
                Self::modelled(
                    SERVICE_UNAVAILABLE_EXCEPTION,
                    "The service is temporarily unable to reach its storage. Retry the request.",
                )
            }
            EngineError::Internal(cause) => {
                tracing::error!(%cause, "internal failure");
                Self::internal()
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = Map::new();
        body.insert("message".into(), Value::String(self.message));
        for (k, v) in self.members {
            body.insert(k.into(), Value::String(v));
        }
        let bytes = serde_json::to_vec(&Value::Object(body)).unwrap_or_default();
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut resp = (status, bytes).into_response();
        let h = resp.headers_mut();
        h.insert("content-type", HeaderValue::from_static("application/json"));
        h.insert("x-amzn-errortype", HeaderValue::from_static(self.code));
        resp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engine_errors_map_to_modelled_codes() {
        let e = ApiError::from(EngineError::AlreadyExists {
            message: "exists".into(),
            resource_id: Some("id-1".into()),
            resource_arn: Some("arn:x".into()),
        });
        assert_eq!((e.code, e.status), ("ResourceAlreadyExistsException", 409));
        assert_eq!(
            e.members,
            vec![
                ("resourceId", "id-1".to_owned()),
                ("resourceArn", "arn:x".to_owned())
            ]
        );
        let e = ApiError::from(EngineError::LimitExceeded("full".into()));
        assert_eq!((e.code, e.status), ("LimitExceededException", 410));
        let e = ApiError::from(EngineError::NotFound("gone".into()));
        assert_eq!((e.code, e.status), ("ResourceNotFoundException", 404));
        let e = ApiError::from(EngineError::Unavailable("db down".into()));
        assert_eq!((e.code, e.status), ("ServiceUnavailableException", 503));
        let e = ApiError::from(EngineError::Internal("secret detail".into()));
        assert_eq!((e.code, e.status), ("InternalFailureException", 500));
        assert!(!e.message.contains("secret detail"));
    }

    #[test]
    fn error_response_is_aws_shaped() {
        let resp = ApiError::invalid("bad").into_response();
        assert_eq!(resp.status(), 400);
        assert_eq!(
            resp.headers()["x-amzn-errortype"],
            "InvalidRequestException"
        );
        assert_eq!(resp.headers()["content-type"], "application/json");
    }
}
