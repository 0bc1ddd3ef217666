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

    /// A validation error on several fields at once, listed in the given order, with the
    /// library's message form (`invalid a, b`).
    pub fn fields(details: Vec<Detail>) -> Self {
        let names: Vec<&str> = details
            .iter()
            .map(|d| {
                if d.field.is_empty() {
                    "(empty parameter name)"
                } else {
                    d.field.as_str()
                }
            })
            .collect();
        ApiError {
            code: ErrorCode::Validation,
            message: format!("invalid {}", names.join(", ")),
            details,
        }
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

/// `Retry-After` of a 503 `UNAVAILABLE` (the ClickHouse server cannot be reached), in seconds.
pub const UNAVAILABLE_RETRY_AFTER_SECS: u64 = 5;

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
        ErrorCode::Forbidden => StatusCode::FORBIDDEN,
        ErrorCode::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
        ErrorCode::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
        ErrorCode::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        // A write to a read-only store is the server's own misconfiguration, never the client's.
        ErrorCode::ReadOnly => StatusCode::INTERNAL_SERVER_ERROR,
        ErrorCode::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
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
        match self.code {
            ErrorCode::Unauthorized => {
                res.headers_mut()
                    .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            // The rest of a stalled body may still arrive; the connection cannot be reused.
            ErrorCode::RequestTimeout => {
                res.headers_mut()
                    .insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
            // The engine's server is down or unreachable: the client may retry.
            ErrorCode::Unavailable => {
                res.headers_mut().insert(
                    header::RETRY_AFTER,
                    HeaderValue::from(UNAVAILABLE_RETRY_AFTER_SECS),
                );
            }
            _ => {}
        }
        res
    }
}

/// A success: `{"data": ..., "error": null}` with status 200.
pub fn ok<T: Serialize>(data: &T) -> Response {
    success(StatusCode::OK, data)
}

/// A success that made something: `{"data": ..., "error": null}` with status 201.
pub fn created<T: Serialize>(data: &T) -> Response {
    success(StatusCode::CREATED, data)
}

fn success<T: Serialize>(status: StatusCode, data: &T) -> Response {
    match success_json(data, false) {
        Ok(body) => json_response(status, body),
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
            (ErrorCode::Forbidden, "FORBIDDEN", 403),
            (ErrorCode::MethodNotAllowed, "METHOD_NOT_ALLOWED", 405),
            (ErrorCode::RequestTimeout, "REQUEST_TIMEOUT", 408),
            (
                ErrorCode::UnsupportedMediaType,
                "UNSUPPORTED_MEDIA_TYPE",
                415,
            ),
            (ErrorCode::ReadOnly, "READ_ONLY", 500),
            (ErrorCode::Unavailable, "UNAVAILABLE", 503),
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
        let forbidden: ApiError = tracestore::Error::forbidden("admin only").into();
        assert_eq!(forbidden.status(), StatusCode::FORBIDDEN);
        assert_eq!(forbidden.message(), "admin only");
        let method: ApiError = tracestore::Error::method_not_allowed("GET, POST").into();
        assert_eq!(method.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert!(
            method.message().contains("GET, POST"),
            "{}",
            method.message()
        );
        let media: ApiError = tracestore::Error::unsupported_media_type("send JSON").into();
        assert_eq!(media.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    }

    #[test]
    fn a_request_timeout_is_408_and_closes_the_connection() {
        let e: ApiError = tracestore::Error::request_timeout().into();
        assert_eq!(e.code().as_str(), "REQUEST_TIMEOUT");
        let res = e.into_response();
        assert_eq!(res.status(), StatusCode::REQUEST_TIMEOUT);
        assert_eq!(res.headers()[header::CONNECTION], "close");
        assert!(!res.headers().contains_key(header::WWW_AUTHENTICATE));
    }

    #[test]
    fn several_fields_are_listed_in_order() {
        let e = ApiError::fields(vec![
            Detail {
                field: "name".into(),
                message: "is not valid UTF-8".into(),
            },
            Detail {
                field: String::new(),
                message: "the parameter name is empty".into(),
            },
        ]);
        assert_eq!(e.status(), StatusCode::BAD_REQUEST);
        assert_eq!(e.message(), "invalid name, (empty parameter name)");
        assert_eq!(e.details().len(), 2);
        let env: serde_json::Value = serde_json::from_str(&e.envelope_json(false)).unwrap();
        assert_eq!(env["error"]["details"][1]["field"], "");
    }

    #[test]
    fn created_is_201_in_the_envelope() {
        let res = created(&serde_json::json!({"k": 1}));
        assert_eq!(res.status(), StatusCode::CREATED);
        assert_eq!(res.headers()[header::CONTENT_TYPE], "application/json");
    }
}
