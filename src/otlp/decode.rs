//! The OTLP/HTTP wire: request bytes (protobuf or JSON) to an `OtlpRequest`, and the answers
//! (`ExportTraceServiceResponse`, `google.rpc.Status`) to bytes in the request's encoding.

use crate::error::{Error, Result};
use crate::limits::{MAX_OTLP_BYTES, MAX_OTLP_SPANS};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;

/// The two OTLP/HTTP encodings.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum OtlpEncoding {
    /// `application/x-protobuf`.
    Protobuf,
    /// `application/json`.
    Json,
}

impl OtlpEncoding {
    /// The encoding a `Content-Type` names (parameters such as `; charset=utf-8` ignored), or
    /// None for any other type.
    pub fn from_content_type(content_type: &str) -> Option<OtlpEncoding> {
        let essence = content_type.split(';').next().unwrap_or("").trim();
        if essence.eq_ignore_ascii_case("application/x-protobuf") {
            Some(OtlpEncoding::Protobuf)
        } else if essence.eq_ignore_ascii_case("application/json") {
            Some(OtlpEncoding::Json)
        } else {
            None
        }
    }
    /// The `Content-Type` of an answer in this encoding.
    pub fn content_type(self) -> &'static str {
        match self {
            OtlpEncoding::Protobuf => "application/x-protobuf",
            OtlpEncoding::Json => "application/json",
        }
    }
}

/// A decoded OTLP `ExportTraceServiceRequest`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct OtlpRequest {
    pub(crate) message: ExportTraceServiceRequest,
}

impl OtlpRequest {
    /// Decodes a request body (already decompressed) of at most `MAX_OTLP_BYTES` bytes and
    /// `MAX_OTLP_SPANS` spans. A body that does not decode is a `VALIDATION_ERROR`; one over a
    /// limit is `PAYLOAD_TOO_LARGE`.
    pub fn decode(body: &[u8], encoding: OtlpEncoding) -> Result<OtlpRequest> {
        if body.len() > MAX_OTLP_BYTES {
            return Err(Error::payload_too_large(MAX_OTLP_BYTES));
        }
        let message = match encoding {
            OtlpEncoding::Protobuf => ExportTraceServiceRequest::decode(body)
                .map_err(|e| Error::field("body", format!("not an OTLP protobuf request: {e}")))?,
            OtlpEncoding::Json => serde_json::from_slice(body)
                .map_err(|e| Error::field("body", format!("not an OTLP JSON request: {e}")))?,
        };
        let request = OtlpRequest { message };
        if request.span_count() > MAX_OTLP_SPANS {
            return Err(Error::too_many(format!(
                "payload too large: at most {MAX_OTLP_SPANS} spans per request"
            )));
        }
        Ok(request)
    }

    /// A request built by the caller (an embedding service that holds the message already).
    pub fn from_message(message: ExportTraceServiceRequest) -> OtlpRequest {
        OtlpRequest { message }
    }

    /// The protobuf encoding of the request.
    pub fn to_protobuf(&self) -> Vec<u8> {
        self.message.encode_to_vec()
    }

    /// Spans in the request.
    pub fn span_count(&self) -> usize {
        self.message
            .resource_spans
            .iter()
            .flat_map(|r| &r.scope_spans)
            .map(|s| s.spans.len())
            .sum()
    }
}

/// What an OTLP ingest did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct OtlpOutcome {
    /// Spans stored (added or replaced).
    pub accepted_spans: u64,
    /// Spans that could not be stored: a bad trace or span id.
    pub rejected_spans: u64,
    /// Why spans were rejected; None when none were.
    pub error_message: Option<String>,
    /// The ids of the traces written, in first-seen order.
    pub trace_ids: Vec<String>,
}

impl OtlpOutcome {
    /// The `ExportTraceServiceResponse` to answer with: empty when every span was stored, else
    /// with `partialSuccess`.
    pub fn response_body(&self, encoding: OtlpEncoding) -> Vec<u8> {
        use opentelemetry_proto::tonic::collector::trace::v1::{
            ExportTracePartialSuccess, ExportTraceServiceResponse,
        };
        let partial = (self.rejected_spans > 0).then(|| ExportTracePartialSuccess {
            rejected_spans: self.rejected_spans as i64,
            error_message: self.error_message.clone().unwrap_or_default(),
        });
        match encoding {
            OtlpEncoding::Protobuf => ExportTraceServiceResponse {
                partial_success: partial,
            }
            .encode_to_vec(),
            OtlpEncoding::Json => match partial {
                None => b"{}".to_vec(),
                Some(p) => serde_json::to_vec(&serde_json::json!({
                    "partialSuccess": {
                        "rejectedSpans": p.rejected_spans.to_string(),
                        "errorMessage": p.error_message,
                    }
                }))
                .expect("a JSON value serializes"),
            },
        }
    }
}

/// `google.rpc.Status`, the body of an OTLP error answer.
#[derive(Clone, PartialEq, prost::Message)]
struct RpcStatus {
    #[prost(int32, tag = "1")]
    code: i32,
    #[prost(string, tag = "2")]
    message: String,
}

/// The body of an OTLP error answer: a `google.rpc.Status` with the gRPC `code` (3 invalid
/// argument, 16 unauthenticated, 8 resource exhausted, 14 unavailable, ...) and a message.
pub fn otlp_status_body(code: i32, message: &str, encoding: OtlpEncoding) -> Vec<u8> {
    match encoding {
        OtlpEncoding::Protobuf => RpcStatus {
            code,
            message: message.to_string(),
        }
        .encode_to_vec(),
        OtlpEncoding::Json => serde_json::to_vec(&serde_json::json!({
            "code": code,
            "message": message,
        }))
        .expect("a JSON value serializes"),
    }
}
