//! The HTTP error envelope. Every failure leaves the server as
//! `{"data": null, "error": {"code", "message", "details": [{field, message}]}}`, with the
//! status chosen here from the library's [`ErrorCode`] by [`status_for`]: HTTP belongs to the
//! server, so the one mapping from error code to status lives in this module.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use tracestore::ErrorCode;

/// One offending field, as the envelope shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Detail {
    pub field: String,
    pub message: String,
}

/// An error on its way to the client. Built from a [`tracestore::Error`] (the usual case) or,
/// for failures that happen before the library is called (a body over the limit, a timeout),
/// from a library code and a message in the library's words.
#[derive(Debug)]
pub struct ApiError {
    code: ErrorCode,
    message: String,
    details: Vec<Detail>,
}

impl ApiError {
    /// An error with a code, a client-safe message and no details.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ApiError {
            code,
            message: message.into(),
            details: Vec::new(),
        }
    }

    /// A validation error on one field, in the library's words.
    pub fn field(field: &str, message: impl Into<String>) -> Self {
        tracestore::Error::invalid(field, message).into()
    }

    /// The library's answer to a body over [`tracestore::limits::MAX_BATCH_BYTES`].
    pub fn payload_too_large() -> Self {
        tracestore::Error::payload_too_large(tracestore::limits::MAX_BATCH_BYTES).into()
    }

    /// A failure the client cannot act on; the message reveals nothing internal.
    pub fn internal(message: &str) -> Self {
        ApiError::new(ErrorCode::Internal, message)
    }

    pub fn code(&self) -> ErrorCode {
        self.code
    }

    pub fn message(&self) -> &str {
        &self.message
    }

    pub fn details(&self) -> &[Detail] {
        &self.details
    }

    pub fn status(&self) -> StatusCode {
        status_for(self.code)
    }

    /// The failure envelope, `{"data": null, "error": {"code", "message", "details"}}`, as
    /// JSON text (pretty-printed for people when `pretty`).
    pub fn envelope_json(&self, pretty: bool) -> String {
        let body = ErrorBody {
            code: self.code.as_str(),
            message: &self.message,
            details: &self.details,
        };
        let env = Envelope::<()> {
            data: None,
            error: Some(body),
        };
        // Serializing strings and integers cannot fail.
        if pretty {
            serde_json::to_string_pretty(&env).unwrap_or_default()
        } else {
            serde_json::to_string(&env).unwrap_or_default()
        }
    }
}

/// The HTTP status of a library error code. [`ErrorCode`] is `#[non_exhaustive]`, so a code
/// added to the library later answers 500 until it is given a status here.
pub fn status_for(code: ErrorCode) -> StatusCode {
    match code {
        ErrorCode::Validation => StatusCode::BAD_REQUEST,
        ErrorCode::Unauthorized => StatusCode::UNAUTHORIZED,
        ErrorCode::NotFound => StatusCode::NOT_FOUND,
        ErrorCode::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        ErrorCode::RateLimited => StatusCode::TOO_MANY_REQUESTS,
        ErrorCode::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    code: &'static str,
    message: &'a str,
    details: &'a [Detail],
}

/// The one envelope of every response: exactly one of `data` and `error` is non-null.
#[derive(Serialize)]
struct Envelope<'a, T> {
    data: Option<&'a T>,
    error: Option<ErrorBody<'a>>,
}

/// The success envelope, `{"data": ..., "error": null}`, as JSON text.
pub fn success_json<T: Serialize>(data: &T, pretty: bool) -> serde_json::Result<String> {
    let env = Envelope {
        data: Some(data),
        error: None,
    };
    if pretty {
        serde_json::to_string_pretty(&env)
    } else {
        serde_json::to_string(&env)
    }
}

impl From<tracestore::Error> for ApiError {
    fn from(e: tracestore::Error) -> Self {
        if e.is_storage() {
            // The full error (with its source) goes to the log, never to the client.
            tracing::error!(error = %e, "storage error");
        }
        ApiError {
            code: e.code(),
            message: e.public_message(),
            details: e
                .details()
                .iter()
                .map(|d| Detail {
                    field: d.field().to_string(),
                    message: d.message().to_string(),
                })
                .collect(),
        }
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code.as_str(), self.message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut res = json_response(self.status(), self.envelope_json(false));
        if self.code == ErrorCode::Unauthorized {
            res.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        res
    }
}

/// A success: `{"data": ..., "error": null}` with status 200.
pub fn ok<T: Serialize>(data: &T) -> Response {
    match success_json(data, false) {
        Ok(body) => json_response(StatusCode::OK, body),
        Err(e) => {
            tracing::error!(error = %e, "response serialization failed");
            ApiError::internal("internal error").into_response()
        }
    }
}

fn json_response(status: StatusCode, body: String) -> Response {
    let mut res = (status, body).into_response();
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_error_code_maps_to_its_status() {
        let cases = [
            (ErrorCode::Validation, "VALIDATION_ERROR", 400),
            (ErrorCode::Unauthorized, "UNAUTHORIZED", 401),
            (ErrorCode::NotFound, "NOT_FOUND", 404),
            (ErrorCode::PayloadTooLarge, "PAYLOAD_TOO_LARGE", 413),
            (ErrorCode::RateLimited, "RATE_LIMITED", 429),
            (ErrorCode::Internal, "INTERNAL_ERROR", 500),
        ];
        for (code, wire, status) in cases {
            assert_eq!(code.as_str(), wire);
            assert_eq!(status_for(code).as_u16(), status, "{wire}");
            assert_eq!(ApiError::new(code, "m").status().as_u16(), status, "{wire}");
        }
    }

    #[test]
    fn a_validation_error_is_400() {
        let e = ApiError::field("limit", "must be between 1 and 100");
        assert_eq!(e.code(), ErrorCode::Validation);
        assert_eq!(e.code().as_str(), "VALIDATION_ERROR");
        assert_eq!(e.status(), StatusCode::BAD_REQUEST);
        assert_eq!(e.into_response().status(), StatusCode::BAD_REQUEST);
    }

    #[test]
    fn library_errors_keep_their_status() {
        let payload: ApiError = tracestore::Error::payload_too_large(10).into();
        assert_eq!(payload.status(), StatusCode::PAYLOAD_TOO_LARGE);
        let unauthorized: ApiError = tracestore::Error::unauthorized("no key").into();
        assert_eq!(unauthorized.status(), StatusCode::UNAUTHORIZED);
        let limited: ApiError = tracestore::Error::rate_limited().into();
        assert_eq!(limited.status(), StatusCode::TOO_MANY_REQUESTS);
        let internal: ApiError = tracestore::Error::internal("worker died").into();
        assert_eq!(internal.status(), StatusCode::INTERNAL_SERVER_ERROR);
    }
}
