//! Shared code of the benchmarks: the data load, the SQLite peer, the query shapes and the
//! cross-engine verification. Used by `queries.rs`, `ingest.rs` and `report.rs`.
//!
//! The SQLite peer is built the way an expert would build it for this workload:
//! - WAL journal; `synchronous=FULL` for durable commits (tracestore fsyncs every commit by
//!   default), `NORMAL` or `OFF` only when stated;
//! - a `WITHOUT ROWID` traces table keyed by (project, start_time, id) with the same columns
//!   tracestore stores (name, status, end_time, tags text, metadata JSON text, exact total cost
//!   as TEXT, totals and counts, created_at), projects as small integers;
//! - an index on (project, status, start_time), a unique index on (project, id) for get-by-id
//!   and upserts;
//! - a tags table keyed by (project, tag, start_time, id), spans and scores tables keyed by
//!   (project, trace_id, child_id);
//! - keyset pagination `(start_time, id) < (?, ?)` ordered `start_time DESC, id DESC`, names by
//!   `instr(lower(name), ?)`, tags (all-of) by `EXISTS` on the tags table.
//!
//! By concern: [`sqlite`] (the peer: schema, ingest, queries), [`load`] (both engines loaded with
//! the same data), [`shapes`] (the query shapes and running them on either engine), [`verify`]
//! (cross-engine checks), [`measure`] (timing and disk use), [`payload`] (LLM-prompt-like
//! payloads and the stores without and with them) and [`otlp`] (OTLP requests and their timed
//! ingest). Everything is re-exported here.

#![allow(dead_code)]

mod load;
mod measure;
mod otlp;
mod payload;
mod shapes;
mod sqlite;
mod verify;

// Each benchmark uses a different part of these re-exports: the rest is unused in its crate.
#[allow(unused_imports)]
pub use load::{
    demo_config, enrich, fresh_traces, load, temp_dir, traces_from_env, LoadMode, Loaded,
};
#[allow(unused_imports)]
pub use measure::{file_allocated, file_len, measure, median, redb_table_stats};
#[allow(unused_imports)]
pub use otlp::{
    check_stored, encode, fresh_store, ingest_json_bodies, ingest_otlp_bodies, json_bodies,
    otlp_requests, synth_traces, IngestRun, SynthTrace, Wire, OTLP_BATCH_SPANS,
};
#[allow(unused_imports)]
pub use payload::{
    add_payloads, load_payload_pair, usage, PayloadPair, Usage, PAYLOAD_TARGET_BYTES,
};
#[allow(unused_imports)]
pub use shapes::{
    busy_needle, cost_pico, prepare, q16_max_cost, rare_needle, run_sqlite, run_tracestore, shapes,
    Counts, Filter, Keyset, Prepared, Shape, ShapeKind, Q15_USER, Q16_MIN_DURATION_MS, Q18_MODEL,
};
#[allow(unused_imports)]
pub use sqlite::{SqlCounts, SqlDetail, SqlScore, SqlSpan, SqlTrace, Sqlite, Stats, Sync, SCHEMA};
#[allow(unused_imports)]
pub use verify::{plan_of, verify};

/// The queried project (90% of the traces).
pub const PROJECT: &str = "demo";
/// Page size of every shape; both engines fetch `PAGE + 1` rows.
pub const PAGE: usize = 20;
/// Traces per ingest transaction.
pub const BATCH: usize = 1000;
