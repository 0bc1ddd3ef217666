//! Public data types: what callers send (`input`) and what queries return (`output`).

mod input;
mod output;

#[cfg(any(test, feature = "otlp"))]
pub(crate) use input::parse_decimal;
pub use input::{ScoreInput, ScoreValue, SpanInput, SpanKind, Status, TraceInput};
pub use output::{
    FacetValue, Facets, IngestSummary, Metadata, Page, Payload, Score, Span, StatusCounts, Trace,
    TraceDetail,
};
