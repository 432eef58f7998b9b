//! Every error the socket answers with, as one status and one stable
//! `snake_case` code. Domain errors map here in exactly one place each
//! (`impl From<capability::Error> for ApiError`), so codes never drift and
//! internals never leak into messages.

use super::json;
use super::Response;
use hyper::StatusCode;

/// An error answer: `{"error": {"code": ..., "message": ...}}`.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    pub fn method_not_allowed(allowed: &str) -> ApiError {
        ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            format!("this path accepts {allowed} only"),
        )
    }

    pub fn caller_not_allowed(op: &str) -> ApiError {
        ApiError::new(
            StatusCode::FORBIDDEN,
            "caller_not_allowed",
            format!("the calling OS user is not allowed operation class {op:?}"),
        )
    }

    pub fn payload_too_large(limit: u64) -> ApiError {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("request body exceeds {limit} bytes"),
        )
    }

    pub fn request_timeout() -> ApiError {
        ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            "request_timeout",
            "request body was not received in time",
        )
    }

    pub fn unsupported_media_type() -> ApiError {
        ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "request body must be JSON (content-type: application/json)",
        )
    }

    pub fn not_ready(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "not_ready", message)
    }

    /// A failure on our side. The message stays generic; the detail goes to
    /// the log with the request id.
    pub fn internal(detail: impl std::fmt::Display) -> ApiError {
        tracing::error!(error = %detail, "internal error");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error; see the agent log",
        )
    }

    pub fn into_response(self) -> Response {
        json::response(
            self.status,
            &serde_json::json!({"error": {"code": self.code, "message": self.message}}),
        )
    }
}

impl From<crate::store::Error> for ApiError {
    fn from(e: crate::store::Error) -> ApiError {
        ApiError::internal(e)
    }
}

impl From<crate::audit::Error> for ApiError {
    fn from(e: crate::audit::Error) -> ApiError {
        use crate::audit::Error as E;
        match e {
            E::InvalidEvent { field, reason } => {
                ApiError::bad_request(format!("field `{field}`: {reason}"))
            }
            E::Backpressure { .. } => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "audit_backpressure",
                e.to_string(),
            ),
            E::Write(_) | E::Stopped => {
                tracing::error!(error = %e, "audit append failed");
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "audit_unavailable",
                    "the audit log cannot record right now; nothing was recorded",
                )
            }
            E::Proof(why) => ApiError::new(StatusCode::NOT_FOUND, "audit_proof_unavailable", why),
            E::Store(_) | E::Sink { .. } | E::Signing(_) => ApiError::internal(e),
        }
    }
}
impl From<crate::tokens::Error> for ApiError {
    fn from(e: crate::tokens::Error) -> ApiError {
        use crate::tokens::Error as E;
        let unauthorized = |code: &'static str, e: &E| {
            ApiError::new(StatusCode::UNAUTHORIZED, code, e.to_string())
        };
        match e {
            E::InvalidInput { field, reason } => {
                ApiError::bad_request(format!("field `{field}`: {reason}"))
            }
            E::UnknownSubject => {
                ApiError::new(StatusCode::NOT_FOUND, "unknown_subject", e.to_string())
            }
            E::RefreshInvalid => unauthorized("refresh_invalid", &e),
            E::RefreshExpired => unauthorized("refresh_expired", &e),
            E::RefreshReused => unauthorized("refresh_reused", &e),
            E::SessionRevoked => unauthorized("session_revoked", &e),
            E::TokenInvalid(reason) => ApiError::new(
                StatusCode::UNAUTHORIZED,
                "token_invalid",
                format!("subject token is not valid: {}", reason.code()),
            ),
            E::Keys(k) => ApiError::from(k),
            E::Store(_) | E::Encode(_) => ApiError::internal(e),
        }
    }
}

impl From<crate::keys::Error> for ApiError {
    fn from(e: crate::keys::Error) -> ApiError {
        use crate::keys::Error as E;
        let (status, code) = match &e {
            E::BadPurpose(_) | E::BadAlgorithm(_) | E::AlgorithmNotAllowed { .. } => {
                (StatusCode::BAD_REQUEST, "bad_request")
            }
            E::UnknownKey(_) => (StatusCode::NOT_FOUND, "unknown_key"),
            E::RotationPending { .. } => (StatusCode::CONFLICT, "rotation_pending"),
            E::NothingToRollBack(_) => (StatusCode::CONFLICT, "nothing_to_roll_back"),
            E::RetireActive(_) => (StatusCode::CONFLICT, "key_active"),
            E::NoActiveKey(_) => (StatusCode::SERVICE_UNAVAILABLE, "no_active_key"),
            _ => return ApiError::internal(e),
        };
        ApiError::new(status, code, e.to_string())
    }
}
