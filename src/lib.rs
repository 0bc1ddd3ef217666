//! tracestore: an embedded storage engine and query layer for LLM-agent traces.
//!
//! Traces live in [redb](https://docs.rs/redb) tables keyed by (project, startTime, id);
//! status, tag and name indexes are roaring bitmaps; a planner picks between a primary-key scan
//! and a bitmap intersection; pages are linked by opaque, signed keyset cursors. The library API
//! has exactly the semantics of `GET /api/v1/traces`.
//!
//! ```
//! use tracestore::{QueryRequest, Status, Store, Timestamp, TraceInput};
//!
//! # fn main() -> Result<(), tracestore::Error> {
//! let store = Store::in_memory()?; // or Store::open("traces.redb")?
//! let t0 = Timestamp::parse("2026-03-14T10:00:00Z")?;
//! let mut batch = Vec::new();
//! for i in 0..5 {
//!     let start = Timestamp::from_millis(t0.as_millis() + i * 1000)?;
//!     batch.push(TraceInput {
//!         status: Some(if i % 2 == 0 { Status::Error } else { Status::Ok }),
//!         tags: Some(vec!["production".into()]),
//!         ..TraceInput::new(format!("t{i}"), "support-agent", start)
//!     });
//! }
//! store.ingest("acme", batch)?;
//!
//! // The same parameters the endpoint takes, as (key, value) pairs...
//! let q = QueryRequest::from_params([("status", "ERROR"), ("limit", "2")])?;
//! let page = store.query("acme", &q)?;
//! assert_eq!(page.traces.len(), 2);
//! assert_eq!(page.traces[0].id, "t4"); // newest first
//!
//! // ...and a cursor alone continues the query.
//! let next = QueryRequest::builder().cursor(page.next_cursor.as_deref().unwrap()).build()?;
//! let page2 = store.query("acme", &next)?;
//! assert_eq!(page2.traces.len(), 1);
//! assert!(page2.next_cursor.is_none());
//! assert!(store.verify()?.is_empty());
//! # Ok(())
//! # }
//! ```
//!
//! What tracestore is not: a general database (one schema, one query shape), a distributed
//! store (one process owns the file), or a full-text engine (names match by substring only).

#![forbid(unsafe_code)]
#![warn(missing_debug_implementations)]
#![warn(missing_docs)]

mod api_keys;
mod cache;
mod convert;
#[cfg(feature = "demo")]
pub mod demo;
mod engine;
mod error;
mod export;
pub mod limits;
mod model;
#[cfg(feature = "otlp")]
mod otlp;
mod pending;
mod query;
mod schema;
mod store;
mod time;
mod validate;
mod verify;
mod write;

pub use api_keys::{ApiKeyInfo, NewApiKey, Principal, MAX_API_KEY_BYTES};
#[cfg(feature = "clickhouse")]
pub use engine::clickhouse::{ClickHouseConfig, MigrateProgress};
/// The ClickHouse engine's SQL, for checking it on other ClickHouse versions. Not a stable API.
#[cfg(feature = "clickhouse")]
#[doc(hidden)]
pub mod clickhouse_sql {
    pub use crate::engine::clickhouse::{delete_sql, query_sql, schema_sql};
}
pub use engine::TableUsage;
pub use error::{Error, ErrorCode, FieldError, Result};
pub use export::{export_params, ExportFormat, ExportRequest, ExportWriter, CSV_COLUMNS};
pub use model::{
    FacetValue, Facets, IngestSummary, Metadata, Page, Payload, Score, ScoreInput, ScoreValue,
    Span, SpanInput, SpanKind, Status, StatusCounts, Trace, TraceDetail, TraceInput,
};
#[cfg(feature = "otlp")]
pub use otlp::{otlp_status_body, OtlpEncoding, OtlpOutcome, OtlpRequest};
pub use query::{
    Explain, ExplainInput, Include, Order, PlanKind, QueryBuilder, QueryRequest, KNOWN_PARAMS,
};
pub use store::{Durability, Store, StoreBuilder};
pub use time::Timestamp;
pub use verify::Violation;

/// Storage backends, re-exported from redb, for crash and fault-injection harnesses (feature
/// `testing`).
#[cfg(feature = "testing")]
pub mod backends {
    pub use redb::backends::{FileBackend, InMemoryBackend};
    pub use redb::StorageBackend;
}

#[doc(hidden)]
pub use schema::fuzz_decode_any;

/// The README's code blocks compile and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
