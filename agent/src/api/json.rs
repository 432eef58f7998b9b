//! JSON in and out. Parsing reports the exact field that is wrong
//! (`subject.user_id: invalid type ...`) so callers can fix requests without
//! reading our source.

use super::{ApiError, Response};
use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::StatusCode;
use serde::de::DeserializeOwned;
use serde::Serialize;

/// Parses a request body; errors name the offending field.
///
/// The happy path is a plain `serde_json` parse; only a body that fails is
/// parsed again with path tracking, so well-formed requests do not pay for
/// error reporting.
pub fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    if body.is_empty() {
        return Err(ApiError::bad_request(
            "request body is empty; expected a JSON object",
        ));
    }
    match serde_json::from_slice(body) {
        Ok(value) => Ok(value),
        Err(_) => Err(explain::<T>(body)),
    }
}

/// The error for a body that does not parse, naming the field.
fn explain<T: DeserializeOwned>(body: &[u8]) -> ApiError {
    let de = &mut serde_json::Deserializer::from_slice(body);
    match serde_path_to_error::deserialize::<_, T>(de) {
        Ok(_) => ApiError::bad_request("invalid JSON"),
        Err(e) => {
            let path = e.path().to_string();
            let inner = e.into_inner();
            if path.is_empty() || path == "." {
                ApiError::bad_request(format!("invalid JSON: {inner}"))
            } else {
                ApiError::bad_request(format!("field `{path}`: {inner}"))
            }
        }
    }
}

/// A 200 JSON response.
pub fn ok<T: Serialize + ?Sized>(value: &T) -> Response {
    response(StatusCode::OK, value)
}

/// A JSON response with `status`.
pub fn response<T: Serialize + ?Sized>(status: StatusCode, value: &T) -> Response {
    match serde_json::to_vec(value) {
        Ok(body) => with_type(status, Bytes::from(body), "application/json"),
        Err(e) => {
            tracing::error!(error = %e, "cannot serialise response");
            with_type(
                StatusCode::INTERNAL_SERVER_ERROR,
                Bytes::from_static(
                    br#"{"error":{"code":"internal","message":"internal error; see the agent log"}}"#,
                ),
                "application/json",
            )
        }
    }
}

/// A response with a body of the given content type.
pub fn with_type(status: StatusCode, body: Bytes, content_type: &'static str) -> Response {
    let mut resp = hyper::Response::new(Full::new(body));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp
}
