//! The OTLP/HTTP trace receiver, `POST /v1/traces`: transport only. The body is read against
//! the limit as it streams in, gunzipped through a capped reader, then handed to the library,
//! which decodes it (`OtlpRequest::decode`) and stores it (`Store::ingest_otlp`). The server
//! never looks inside a request.
//!
//! Every answer on this route follows the OTLP/HTTP spec, in the request's encoding
//! (`application/x-protobuf` or `application/json`; JSON when the type is unknown): a 200 with
//! an `ExportTraceServiceResponse`, or an error status with a `google.rpc.Status` body. The
//! failures that happen before the handler runs (authentication, rate limit, 405, timeout) are
//! the `/api/` layers' own; [`status_errors`] rewrites their envelope into a Status, keeping
//! their headers (`WWW-Authenticate`, `Retry-After`, `RateLimit-*`, `Allow`).
//!
//! Retryable failures are only 429 (the key's rate limit, with `Retry-After`) and 503 (with
//! `Retry-After`): a storage error and a request that ran out of time in the store are 503,
//! because an OTLP export is idempotent (a span sent again replaces itself), so the exporter's
//! retry is safe and may succeed once the store recovers. A read-only store is the server's
//! misconfiguration, which no retry mends: 500.

use crate::api::{Progress, Project};
use crate::input::{self, BodyError};
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Extension;
use std::io::Read;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use tracestore::limits::MAX_OTLP_BYTES;
use tracestore::{otlp_status_body, ErrorCode, OtlpEncoding, OtlpOutcome, OtlpRequest};

use crate::api::AppState;

/// The OTLP/HTTP traces path.
pub const OTLP_TRACES_PATH: &str = "/v1/traces";

/// `Retry-After` of a 503, in seconds.
pub const RETRY_AFTER_SECS: u64 = 5;

/// Longest part of a client's header value quoted back in a message.
const MAX_QUOTED_CHARS: usize = 64;

/// Largest error envelope [`status_errors`] reads back (they are a few hundred bytes).
const MAX_ENVELOPE_BYTES: usize = 64 * 1024;

/// Marks a response that is an OTLP answer already, so that [`status_errors`] passes it on.
#[derive(Copy, Clone, Debug)]
struct OtlpAnswer;

/// The gRPC code of a `google.rpc.Status` for an HTTP status.
pub fn grpc_code(status: StatusCode) -> i32 {
    match status.as_u16() {
        // INVALID_ARGUMENT: a body that does not decode, a type or encoding we do not take.
        400 | 415 => 3,
        401 => 16,      // UNAUTHENTICATED
        403 => 7,       // PERMISSION_DENIED
        404 => 5,       // NOT_FOUND
        405 => 12,      // UNIMPLEMENTED
        408 => 4,       // DEADLINE_EXCEEDED
        413 | 429 => 8, // RESOURCE_EXHAUSTED
        503 => 14,      // UNAVAILABLE
        _ => 13,        // INTERNAL
    }
}

/// The encoding a request declares, or None for a missing or other `Content-Type`.
pub fn request_encoding(headers: &HeaderMap) -> Option<OtlpEncoding> {
    let value = headers.get(header::CONTENT_TYPE)?.to_str().ok()?;
    OtlpEncoding::from_content_type(value)
}

/// A failed OTLP request, on its way to becoming a Status answer.
#[derive(Debug)]
pub(crate) struct Failure {
    status: StatusCode,
    message: String,
    retry_after: Option<u64>,
}

impl Failure {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Failure {
            status,
            message: message.into(),
            retry_after: None,
        }
    }

    /// A 503 the exporter should retry after [`RETRY_AFTER_SECS`].
    pub(crate) fn unavailable(message: impl Into<String>) -> Self {
        Failure {
            retry_after: Some(RETRY_AFTER_SECS),
            ..Failure::new(StatusCode::SERVICE_UNAVAILABLE, message)
        }
    }

    fn too_large() -> Self {
        Failure::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "payload too large: at most {MAX_OTLP_BYTES} bytes per request after decompression"
            ),
        )
    }

    /// The library's verdict: validation 400, limits 413, storage 503 (retryable), the rest
    /// by the server's usual mapping.
    fn from_library(e: tracestore::Error) -> Self {
        if e.is_storage() {
            tracing::error!(error = %e, "storage error during an OTLP export");
            return Failure::unavailable("storage unavailable; retry later");
        }
        if e.code() == ErrorCode::Unavailable {
            return Failure::unavailable(e.public_message());
        }
        let mut message = e.public_message();
        for d in e.details() {
            message.push_str(&format!("; {}: {}", d.field(), d.message()));
        }
        let status = match e.code() {
            ErrorCode::Validation => StatusCode::BAD_REQUEST,
            ErrorCode::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            code => crate::error::status_for(code),
        };
        if status.is_server_error() {
            tracing::error!(error = %e, "OTLP export failed");
        }
        Failure::new(status, message)
    }

    pub(crate) fn into_response(self, encoding: OtlpEncoding) -> Response {
        let body = otlp_status_body(grpc_code(self.status), &self.message, encoding);
        let mut res = answer(self.status, body, encoding);
        if let Some(secs) = self.retry_after {
            res.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        res
    }
}

/// An OTLP answer: the body in the encoding, marked for [`status_errors`].
fn answer(status: StatusCode, body: Vec<u8>, encoding: OtlpEncoding) -> Response {
    let mut res = (status, body).into_response();
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(encoding.content_type()),
    );
    res.extensions_mut().insert(OtlpAnswer);
    res
}

fn quote(s: &str) -> String {
    s.chars().take(MAX_QUOTED_CHARS).collect()
}

/// How the body is compressed.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum Coding {
    Identity,
    Gzip,
}

/// `Content-Encoding`: absent, `identity` or `gzip`; anything else is a 415.
fn content_coding(headers: &HeaderMap) -> Result<Coding, Failure> {
    let Some(value) = headers.get(header::CONTENT_ENCODING) else {
        return Ok(Coding::Identity);
    };
    let unsupported = |shown: &str| {
        Failure::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!(
                "unsupported Content-Encoding {}; send gzip or identity",
                quote(shown)
            ),
        )
    };
    let Ok(text) = value.to_str() else {
        return Err(unsupported("(unreadable)"));
    };
    match text.trim().to_ascii_lowercase().as_str() {
        "" | "identity" => Ok(Coding::Identity),
        "gzip" | "x-gzip" => Ok(Coding::Gzip),
        _ => Err(unsupported(text.trim())),
    }
}

/// The decompressed body, read through a reader capped at the limit + 1 byte: a gzip bomb
/// costs at most that much memory before it is refused.
fn gunzip(compressed: &[u8]) -> Result<Vec<u8>, Failure> {
    let mut out = Vec::new();
    flate2::read::MultiGzDecoder::new(compressed)
        .take(MAX_OTLP_BYTES as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| {
            Failure::new(
                StatusCode::BAD_REQUEST,
                format!("the gzip body does not decompress: {e}"),
            )
        })?;
    if out.len() > MAX_OTLP_BYTES {
        return Err(Failure::too_large());
    }
    Ok(out)
}

/// `POST /v1/traces`: an OTLP/HTTP `ExportTraceServiceRequest` for the key's project.
pub(crate) async fn export_traces(
    State(state): State<AppState>,
    project: Option<Extension<Project>>,
    progress: Option<Extension<Arc<Progress>>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let Some(encoding) = request_encoding(&headers) else {
        let shown = headers
            .get(header::CONTENT_TYPE)
            .map(|v| quote(v.to_str().unwrap_or("(unreadable)").trim()));
        let message = match shown {
            None => {
                "missing Content-Type; send application/x-protobuf or application/json".to_string()
            }
            Some(t) => {
                format!("Content-Type must be application/x-protobuf or application/json, not {t}")
            }
        };
        return Failure::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, message)
            .into_response(OtlpEncoding::Json);
    };
    match export(
        &state,
        project,
        progress.as_deref(),
        &headers,
        body,
        encoding,
    )
    .await
    {
        Ok(outcome) => answer(StatusCode::OK, outcome.response_body(encoding), encoding),
        Err(f) => f.into_response(encoding),
    }
}

async fn export(
    state: &AppState,
    project: Option<Extension<Project>>,
    progress: Option<&Arc<Progress>>,
    headers: &HeaderMap,
    body: Body,
    encoding: OtlpEncoding,
) -> Result<OtlpOutcome, Failure> {
    // The auth layer wraps this route; its absence is a wiring bug.
    let project = project
        .map(|p| p.0 .0.clone())
        .ok_or_else(|| Failure::new(StatusCode::INTERNAL_SERVER_ERROR, "internal error"))?;
    let coding = content_coding(headers)?;
    // The compressed body is held to the same limit: a body over it cannot decompress to less
    // in any useful way, and this bounds what is buffered.
    if input::declared_length(headers).is_some_and(|n| n > MAX_OTLP_BYTES as u64) {
        return Err(Failure::too_large());
    }
    if let Some(p) = progress {
        p.reading_body.store(true, Ordering::SeqCst);
    }
    let read = input::read_body(body, MAX_OTLP_BYTES, state.body_read_timeout).await;
    if let Some(p) = progress {
        p.reading_body.store(false, Ordering::SeqCst);
    }
    let raw = read.map_err(|e| match e {
        BodyError::TooLarge => Failure::too_large(),
        BodyError::TimedOut => Failure::new(
            StatusCode::REQUEST_TIMEOUT,
            "the request body did not arrive in time",
        ),
        BodyError::Read(m) => Failure::new(
            StatusCode::BAD_REQUEST,
            format!("the body could not be read: {m}"),
        ),
    })?;
    let store = Arc::clone(&state.store);
    let work = move || -> Result<OtlpOutcome, Failure> {
        let plain = match coding {
            Coding::Identity => raw,
            Coding::Gzip => gunzip(&raw)?,
        };
        let request = OtlpRequest::decode(&plain, encoding).map_err(Failure::from_library)?;
        drop(plain);
        store
            .ingest_otlp(&project, &request)
            .map_err(Failure::from_library)
    };
    match tokio::task::spawn_blocking(work).await {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(error = %e, "blocking task failed");
            Err(Failure::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal error",
            ))
        }
    }
}

/// The encoding of an OTLP answer to this request: the request's, JSON when it is unknown.
pub(crate) fn answer_encoding(headers: &HeaderMap) -> OtlpEncoding {
    request_encoding(headers).unwrap_or(OtlpEncoding::Json)
}

/// The answer to an OTLP request that ran out of time after its body arrived (its store call
/// may still finish): a 503 to retry, since a repeated export is idempotent.
pub(crate) fn timed_out(encoding: OtlpEncoding) -> Response {
    Failure::unavailable("the request timed out; retry later").into_response(encoding)
}

/// Outermost layer: on the OTLP path, any answer that is not an OTLP answer already (the
/// error envelope of authentication, the rate limit, a 405, a timeout) is rewritten into a
/// `google.rpc.Status` in the request's encoding, with the envelope's message and every
/// header kept.
pub(crate) async fn status_errors(req: Request, next: Next) -> Response {
    if req.uri().path() != OTLP_TRACES_PATH {
        return next.run(req).await;
    }
    let encoding = answer_encoding(req.headers());
    let res = next.run(req).await;
    if res.extensions().get::<OtlpAnswer>().is_some() || res.status().is_success() {
        return res;
    }
    let (mut parts, body) = res.into_parts();
    let message = axum::body::to_bytes(body, MAX_ENVELOPE_BYTES)
        .await
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .and_then(|v| v["error"]["message"].as_str().map(str::to_string))
        .unwrap_or_else(|| {
            parts
                .status
                .canonical_reason()
                .unwrap_or("error")
                .to_string()
        });
    let body = otlp_status_body(grpc_code(parts.status), &message, encoding);
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(encoding.content_type()),
    );
    parts.extensions.insert(OtlpAnswer);
    Response::from_parts(parts, Body::from(body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codings() {
        let with = |v: &'static str| {
            let mut h = HeaderMap::new();
            h.insert(header::CONTENT_ENCODING, HeaderValue::from_static(v));
            content_coding(&h).map_err(|f| f.status)
        };
        assert_eq!(
            content_coding(&HeaderMap::new()).ok(),
            Some(Coding::Identity)
        );
        assert_eq!(with("identity").ok(), Some(Coding::Identity));
        assert_eq!(with("GZIP").ok(), Some(Coding::Gzip));
        assert_eq!(with(" gzip ").ok(), Some(Coding::Gzip));
        assert_eq!(with("br").err(), Some(StatusCode::UNSUPPORTED_MEDIA_TYPE));
        assert_eq!(
            with("deflate").err(),
            Some(StatusCode::UNSUPPORTED_MEDIA_TYPE)
        );
    }

    #[test]
    fn gunzip_is_capped() {
        use std::io::Write;
        let gz = |data: &[u8]| {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(data).unwrap();
            e.finish().unwrap()
        };
        assert_eq!(gunzip(&gz(b"hello")).unwrap(), b"hello");
        let exact = vec![b'a'; MAX_OTLP_BYTES];
        assert_eq!(gunzip(&gz(&exact)).unwrap().len(), MAX_OTLP_BYTES);
        let over = vec![b'a'; MAX_OTLP_BYTES + 1];
        let f = gunzip(&gz(&over)).unwrap_err();
        assert_eq!(f.status, StatusCode::PAYLOAD_TOO_LARGE);
        let f = gunzip(b"not gzip at all").unwrap_err();
        assert_eq!(f.status, StatusCode::BAD_REQUEST);
    }

    #[test]
    fn a_timeout_is_a_503_to_retry_in_the_request_encoding() {
        for encoding in [OtlpEncoding::Protobuf, OtlpEncoding::Json] {
            let res = timed_out(encoding);
            assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
            assert_eq!(
                res.headers()[header::RETRY_AFTER],
                RETRY_AFTER_SECS.to_string()
            );
            assert_eq!(res.headers()[header::CONTENT_TYPE], encoding.content_type());
            assert!(res.extensions().get::<OtlpAnswer>().is_some());
        }
    }

    #[test]
    fn grpc_codes() {
        for (http, grpc) in [
            (400, 3),
            (401, 16),
            (403, 7),
            (413, 8),
            (415, 3),
            (429, 8),
            (500, 13),
            (503, 14),
        ] {
            assert_eq!(
                grpc_code(StatusCode::from_u16(http).unwrap()),
                grpc,
                "{http}"
            );
        }
    }
}
