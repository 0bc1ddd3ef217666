//! OTLP/HTTP trace ingest (feature `otlp`): an `ExportTraceServiceRequest`, decoded from
//! protobuf or JSON, becomes traces and spans.
//!
//! - `decode`: request bytes (protobuf or JSON) to the request, and the answers (an
//!   `ExportTraceServiceResponse`, a `google.rpc.Status`) to bytes;
//! - `map`: the pure mapping of a request to `MappedTrace`s, one per trace id, with the spans
//!   that could not be stored counted;
//! - `combine`: one trace's mapped spans merged with what is stored of it (the root's takeover,
//!   the stand-in root, first-arrival trace attributes), giving an ordinary `TraceInput`.
//!
//! Nothing here touches storage: the engine reads what `combine` needs inside its write
//! transaction.

mod combine;
mod decode;
mod map;

pub(crate) use combine::*;
pub use decode::{otlp_status_body, OtlpEncoding, OtlpOutcome, OtlpRequest};
pub(crate) use map::map_request;

use crate::model::SpanInput;
use crate::validate::PayloadTexts;

/// One request's spans, mapped: one entry per trace id, in first-seen order.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct Mapped {
    pub traces: Vec<MappedTrace>,
    /// Spans that cannot be stored (a bad trace or span id).
    pub rejected_spans: u64,
    /// Why, for `partialSuccess.errorMessage`; None when nothing was rejected.
    pub error_message: Option<String>,
}

/// The spans of one trace in one request.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct MappedTrace {
    /// 32 lowercase hex characters.
    pub trace_id: String,
    /// In arrival order. A span id seen twice in the request appears once, with the later
    /// span's content at the earlier one's position.
    pub spans: Vec<MappedSpan>,
}

/// One mapped span with the trace-level attributes it carries.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct MappedSpan {
    /// Every field already within the limits (cut or truncated as the mapping rules say):
    /// `id` is 16 lowercase hex characters; `parent_id` is None for a missing, empty, all-zero
    /// or malformed parent id, else 16 lowercase hex characters; `kind` and `status` are Some;
    /// tokens and cost are set only on LLM and EMBEDDING spans; `start_time` <= `end_time`.
    /// Its `input`, `output` and `attributes` are None: they are in `payload`.
    pub span: SpanInput,
    /// The span's input, output and attributes as compact JSON text, each within its limit.
    pub payload: PayloadTexts,
    /// The span's trace-level attributes.
    pub attrs: TraceAttrs,
    /// Tags the span carries that pass the tag rules, distinct, in the order sent (not capped).
    pub tags: Vec<String>,
}

/// Trace-level attributes one span carries (each decided per field: from the root when it
/// carries it, else from the first span to arrive that carries it). The schema's record, since
/// spans keep theirs in their payload record.
pub(crate) use crate::schema::TraceAttrs;
