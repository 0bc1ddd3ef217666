//! The one public error type. It is opaque: a struct around a private kind, with a stable
//! machine-readable [`ErrorCode`]. Adapters map codes to their protocol (the HTTP server maps
//! them to statuses); the library knows nothing of HTTP.

use std::fmt;

/// A stable, machine-readable error code. The string form (`as_str`) never changes meaning.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorCode {
    /// Bad input: a query parameter, a cursor or an ingest item (HTTP 400 in the server).
    Validation,
    /// Missing, malformed, unknown or revoked API key. HTTP 401.
    Unauthorized,
    /// The trace does not exist in this project. HTTP 404.
    NotFound,
    /// The ingest body is over the size limit. HTTP 413.
    PayloadTooLarge,
    /// Over the key's quota. HTTP 429.
    RateLimited,
    /// Storage failure or a broken invariant. HTTP 500.
    Internal,
    /// A valid key that may not do this (a project key on an admin operation). HTTP 403.
    Forbidden,
    /// A known route with a method it does not take. HTTP 405.
    MethodNotAllowed,
    /// The client stalled while sending its request. HTTP 408.
    RequestTimeout,
    /// A request body of a content type the operation does not take. HTTP 415.
    UnsupportedMediaType,
    /// A write to a store opened read-only.
    ReadOnly,
    /// The storage engine's server (ClickHouse) cannot be reached, or the connection to it
    /// failed or timed out: the operation may not have completed (an ingest may be
    /// half-written) and is safe to retry. HTTP 503 with `Retry-After`.
    Unavailable,
}

impl ErrorCode {
    /// The wire form: `VALIDATION_ERROR`, `UNAUTHORIZED`, `NOT_FOUND`, `PAYLOAD_TOO_LARGE`,
    /// `RATE_LIMITED`, `INTERNAL_ERROR`, `FORBIDDEN`, `METHOD_NOT_ALLOWED`, `REQUEST_TIMEOUT`,
    /// `UNSUPPORTED_MEDIA_TYPE`, `READ_ONLY` or `UNAVAILABLE`.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::Validation => "VALIDATION_ERROR",
            ErrorCode::Unauthorized => "UNAUTHORIZED",
            ErrorCode::NotFound => "NOT_FOUND",
            ErrorCode::PayloadTooLarge => "PAYLOAD_TOO_LARGE",
            ErrorCode::RateLimited => "RATE_LIMITED",
            ErrorCode::Internal => "INTERNAL_ERROR",
            ErrorCode::Forbidden => "FORBIDDEN",
            ErrorCode::MethodNotAllowed => "METHOD_NOT_ALLOWED",
            ErrorCode::RequestTimeout => "REQUEST_TIMEOUT",
            ErrorCode::UnsupportedMediaType => "UNSUPPORTED_MEDIA_TYPE",
            ErrorCode::ReadOnly => "READ_ONLY",
            ErrorCode::Unavailable => "UNAVAILABLE",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One offending field of a validation error: `field` names the query parameter
/// (`limit`, `cursor`, …) or the ingest path (`traces[3].spans[1].cost`).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct FieldError {
    field: String,
    message: String,
}

impl FieldError {
    pub(crate) fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        FieldError {
            field: field.into(),
            message: message.into(),
        }
    }
    /// The offending parameter or ingest path.
    pub fn field(&self) -> &str {
        &self.field
    }
    /// What is wrong with it.
    pub fn message(&self) -> &str {
        &self.message
    }
}

#[derive(Debug)]
enum Kind {
    Validation {
        message: String,
        details: Vec<FieldError>,
    },
    NotFound,
    PayloadTooLarge {
        limit_bytes: usize,
    },
    Unauthorized(String),
    RateLimited,
    /// An adapter-level refusal with a public message: forbidden, method not allowed, request
    /// timeout, unsupported media type, read-only store.
    Refused(ErrorCode, String),
    Storage(Box<dyn std::error::Error + Send + Sync>),
    /// Writing an export's rows failed (the reader went away, a full disk).
    Output(std::io::Error),
    Corrupted(String),
    Internal(String),
}

/// The error type of every tracestore operation.
pub struct Error {
    kind: Box<Kind>,
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn validation(details: Vec<FieldError>) -> Self {
        debug_assert!(!details.is_empty());
        let fields: Vec<&str> = details.iter().map(|d| d.field.as_str()).collect();
        let message = format!("invalid {}", fields.join(", "));
        Error {
            kind: Box::new(Kind::Validation { message, details }),
        }
    }
    pub(crate) fn field(field: &str, message: impl Into<String>) -> Self {
        Self::validation(vec![FieldError::new(field, message)])
    }
    pub(crate) fn not_found() -> Self {
        Error {
            kind: Box::new(Kind::NotFound),
        }
    }
    /// A body over `limit_bytes`, for adapters that enforce the ingest size limit themselves.
    pub fn payload_too_large(limit_bytes: usize) -> Self {
        Error {
            kind: Box::new(Kind::PayloadTooLarge { limit_bytes }),
        }
    }
    pub(crate) fn storage(e: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Error {
            kind: Box::new(Kind::Storage(e.into())),
        }
    }
    /// Writing an export's output failed.
    pub(crate) fn output(e: std::io::Error) -> Self {
        Error {
            kind: Box::new(Kind::Output(e)),
        }
    }
    pub(crate) fn corrupted(what: impl Into<String>) -> Self {
        Error {
            kind: Box::new(Kind::Corrupted(what.into())),
        }
    }

    /// A validation error on one field, for adapters that reject input before the library sees
    /// it (an unreadable request body, say).
    pub fn invalid(field: &str, message: impl Into<String>) -> Self {
        Self::field(field, message)
    }
    /// An internal failure (a timeout, a failed worker) for adapters; its public message
    /// reveals nothing.
    pub fn internal(what: impl Into<String>) -> Self {
        Error {
            kind: Box::new(Kind::Internal(what.into())),
        }
    }

    /// An authentication failure, for adapters (such as the HTTP server) that check API keys.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Error {
            kind: Box::new(Kind::Unauthorized(message.into())),
        }
    }
    /// A quota failure, for adapters that rate-limit.
    pub fn rate_limited() -> Self {
        Error {
            kind: Box::new(Kind::RateLimited),
        }
    }

    /// A valid key that may not do this (a project key on an admin operation, an admin key on a
    /// project operation).
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::refused(ErrorCode::Forbidden, message)
    }
    /// A known route with a method it does not take, for adapters; `allowed` lists the methods.
    pub fn method_not_allowed(allowed: &str) -> Self {
        Self::refused(
            ErrorCode::MethodNotAllowed,
            format!("method not allowed; allowed: {allowed}"),
        )
    }
    /// A request over a count limit (spans per OTLP request), with the limit in the message.
    pub fn too_many(message: impl Into<String>) -> Self {
        Self::refused(ErrorCode::PayloadTooLarge, message)
    }
    /// The client stalled while sending its request, for adapters.
    pub fn request_timeout() -> Self {
        Self::refused(
            ErrorCode::RequestTimeout,
            "the request body did not arrive in time",
        )
    }
    /// A body of a content type the operation does not take, for adapters.
    pub fn unsupported_media_type(message: impl Into<String>) -> Self {
        Self::refused(ErrorCode::UnsupportedMediaType, message)
    }
    pub(crate) fn read_only() -> Self {
        Self::refused(
            ErrorCode::ReadOnly,
            "the store is open read-only; open it read-write to change it",
        )
    }
    /// The engine's server could not be reached; `message` is safe to show a client.
    #[cfg(feature = "clickhouse")]
    pub(crate) fn unavailable(message: impl Into<String>) -> Self {
        Self::refused(ErrorCode::Unavailable, message)
    }
    fn refused(code: ErrorCode, message: impl Into<String>) -> Self {
        Error {
            kind: Box::new(Kind::Refused(code, message.into())),
        }
    }

    /// True when opening failed because another process (or another handle in this one) holds
    /// the database file open: the one case where "is a server using it?" is the right hint.
    pub fn is_database_in_use(&self) -> bool {
        match &*self.kind {
            Kind::Storage(e) => e
                .downcast_ref::<redb::DatabaseError>()
                .is_some_and(|d| matches!(d, redb::DatabaseError::DatabaseAlreadyOpen)),
            _ => false,
        }
    }

    /// The stable machine-readable code.
    pub fn code(&self) -> ErrorCode {
        match &*self.kind {
            Kind::Validation { .. } => ErrorCode::Validation,
            Kind::NotFound => ErrorCode::NotFound,
            Kind::PayloadTooLarge { .. } => ErrorCode::PayloadTooLarge,
            Kind::Unauthorized(_) => ErrorCode::Unauthorized,
            Kind::RateLimited => ErrorCode::RateLimited,
            Kind::Refused(code, _) => *code,
            Kind::Storage(_) | Kind::Output(_) | Kind::Corrupted(_) | Kind::Internal(_) => {
                ErrorCode::Internal
            }
        }
    }

    /// The offending fields of a validation error; empty for every other code.
    pub fn details(&self) -> &[FieldError] {
        match &*self.kind {
            Kind::Validation { details, .. } => details,
            _ => &[],
        }
    }

    /// A message that is safe to show a client: it never reveals storage internals.
    pub fn public_message(&self) -> String {
        match &*self.kind {
            Kind::Storage(_) | Kind::Corrupted(_) => "internal storage error".to_string(),
            Kind::Internal(_) | Kind::Output(_) => "internal error".to_string(),
            Kind::Validation { message, .. } => message.clone(),
            _ => self.to_string(),
        }
    }

    /// True when the error came from the storage layer (I/O, redb, or a corrupt record).
    pub fn is_storage(&self) -> bool {
        matches!(&*self.kind, Kind::Storage(_) | Kind::Corrupted(_))
    }

    pub(crate) fn into_details(self) -> Vec<FieldError> {
        match *self.kind {
            Kind::Validation { details, .. } => details,
            _ => Vec::new(),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &*self.kind {
            Kind::Validation { message, details } => {
                write!(f, "{message}")?;
                for d in details {
                    write!(f, "; {}: {}", d.field, d.message)?;
                }
                Ok(())
            }
            Kind::NotFound => f.write_str("trace not found"),
            Kind::PayloadTooLarge { limit_bytes } => {
                write!(f, "payload too large: the limit is {limit_bytes} bytes")
            }
            Kind::Unauthorized(m) => write!(f, "unauthorized: {m}"),
            Kind::RateLimited => f.write_str("rate limit exceeded"),
            Kind::Refused(_, m) => f.write_str(m),
            Kind::Storage(e) => write!(f, "storage error: {e}"),
            Kind::Output(e) => write!(f, "cannot write the export: {e}"),
            Kind::Corrupted(w) => write!(f, "corrupted record: {w}"),
            Kind::Internal(w) => write!(f, "internal error: {w}"),
        }
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Error({}: {})", self.code(), self)
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &*self.kind {
            Kind::Storage(e) => Some(&**e),
            Kind::Output(e) => Some(e),
            _ => None,
        }
    }
}

macro_rules! from_redb {
    ($($t:ty),*) => {$(
        impl From<$t> for Error {
            fn from(e: $t) -> Self {
                Error::storage(e)
            }
        }
    )*};
}
from_redb!(
    redb::Error,
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError,
    redb::SetDurabilityError,
    redb::CompactionError
);
