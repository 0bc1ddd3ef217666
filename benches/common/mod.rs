//! Shared code of the benchmarks: the data load, the SQLite peer, the query shapes and the
//! cross-engine verification. Used by `queries.rs`, `ingest.rs` and `report.rs`.
//!
//! # The SQLite peer
//!
//! Built the way a SQLite expert would build it for this workload (exact totals and facets
//! over arbitrary filters, newest-first keyset pages, durable small commits). Schema
//! ([`SCHEMA`]), every table `WITHOUT ROWID` where the key is the access path:
//!
//! ```text
//! projects(id INTEGER PRIMARY KEY, name UNIQUE)         names(id INTEGER PRIMARY KEY, name UNIQUE)
//! tag_names(id INTEGER PRIMARY KEY, name UNIQUE)        models(id INTEGER PRIMARY KEY, name UNIQUE)
//! traces(project, start_time, id, name_id, status, end_time, duration_ms, user_id, session_id,
//!        tags, metadata, total_cost, cost_pico, total_tokens, span_count, score_count,
//!        created_at, PRIMARY KEY(project, start_time, id))
//!   traces_id        UNIQUE (project, id)
//!   traces_status    (project, status, start_time, id)
//!   traces_name      (project, name_id, status, start_time)
//!   traces_user      (project, user_id, start_time)          WHERE user_id IS NOT NULL
//!   traces_cost      (project, cost_pico, start_time, id, duration_ms)
//!   traces_duration  (project, duration_ms, cost_pico)        WHERE duration_ms IS NOT NULL
//! trace_tags(project, tag_id, start_time, id, status, PRIMARY KEY(project, tag_id, start_time, id))
//!   trace_tags_status (project, tag_id, status, start_time);  trace_tags_trace (project, start_time, id)
//! trace_models(project, model_id, start_time, id, status, PRIMARY KEY(project, model_id, start_time, id))
//!   trace_models_status (project, model_id, status, start_time); trace_models_trace (project, start_time, id)
//! trace_meta(project, key, value, start_time, id, PRIMARY KEY(project, key, value, start_time, id))
//! spans(project, trace_id, span_id, trace_start, name, status, start_time, end_time, model_id,
//!       input_tokens, output_tokens, total_tokens, cost, PRIMARY KEY(project, trace_id, span_id))
//!   spans_model (project, model_id, status, trace_start, trace_id)
//! scores(project, trace_id, score_id, name, value, comment, PRIMARY KEY(project, trace_id, score_id))
//! ```
//!
//! Why each choice:
//! - **Settings.** WAL; `synchronous=FULL` for durable commits (tracestore fsyncs every commit
//!   by default); the report's `--deferred-load` uses `OFF` for the bulk load only, paired with
//!   tracestore's `Durability::Deferred`. The load commits the same 1,000-trace batches (one
//!   transaction per project group) as tracestore. A 1 GiB page cache, redb's default, so
//!   neither engine is cache-starved (no `mmap_size`: with the working set in the page cache it
//!   would only move the same pages to the OS cache, outside the parity); `temp_store=MEMORY`
//!   for the top-N and `GROUP BY` sorters; 4 KiB pages, redb's too. `ANALYZE` after the load.
//! - **No re-prepare.** The bundled SQLite has STAT4, which makes a statement whose plan looked
//!   at a bound value re-prepare on every rebind (rusqlite clears bindings when a cached
//!   statement goes back to its cache). `SQLITE_DBCONFIG_ENABLE_QPSG` fixes each statement's
//!   plan at its first prepare, and the page `LIMIT` is a constant in the SQL text; the report
//!   logs each page statement's re-prepare count (0).
//! - **Integer dictionaries** (projects, names, tags, models): every index keys on a small
//!   integer, not the text; a name substring is matched on the dictionary
//!   (`name_id IN (SELECT id FROM names WHERE instr(lower(name), ?) > 0)`, the needle
//!   lowercased like tracestore's; SQLite's `lower` folds ASCII only, which the demo names are),
//!   so it costs one scan of ~50 names instead of a `LIKE` on every row.
//! - **`traces` keyed by (project, start_time, id)**: the default newest-first page is a
//!   backwards range of the table itself, continued by the keyset `(start_time, id) < (?, ?)`;
//!   `traces_id` serves get-by-id and the upsert lookup.
//! - **Covering `(value, status, start_time)` indexes**: `traces_status`, `traces_name`,
//!   `trace_tags_status`, `trace_models_status` give, for one value (and a status), its traces
//!   in time order, so a page stops after 21 matches and a count (or one facet value's count,
//!   a time window included) reads index entries only. That is why `trace_tags` and
//!   `trace_models` carry the trace's status (and the trace key): denormalized, rewritten with
//!   the trace. Their `_trace` indexes go the other way (a trace's tags or models) for the facets
//!   of a matching set, the `EXISTS` checks and the upsert's deletes.
//! - **`trace_models`** (the distinct models of a trace's spans, kept by ingest) answers
//!   `spanModel` alone and the `models` facet (traces with at least one span of the model)
//!   without reading spans; **`spans_model`** answers the same-span condition (`spanModel` +
//!   `spanStatus`: one span with both) as one range, and in trace-time order because the span
//!   rows carry their trace's start time, so it can drive a newest-first page (a trace with two
//!   such spans is grouped once).
//! - **`trace_meta`** (key, value) rows, not a `json_extract` expression index: `metadata.KEY`
//!   takes any key, while an expression index serves one key named in advance (one index per
//!   key, each rewritten on every insert) and compares SQL values, where tracestore compares a
//!   number, `true`, `false` or `null` by its canonical JSON text; the rows hold exactly that
//!   text (a string as is), one ordered range per (key, value).
//! - **`user_id`** with a partial index (most traces of real traffic may lack one);
//!   **`duration_ms`** derived on write (`end_time - start_time`, NULL while running, so a
//!   duration bound never matches a running trace, as in tracestore) with a partial index that
//!   also holds the cost; **`cost_pico`**, the exact total cost as an integer of 10^-12 USD (the
//!   costs have at most 12 decimals: exact range compares and ordering), beside `total_cost`
//!   as text for display; `traces_cost` serves `orderBy=totalCost.desc` (walked backwards) and
//!   holds the duration, so either range index counts both ranges from index entries.
//! - **`tags` as text in the trace row** too: a page shows a trace's tags without a join.
//!
//! How it queries ([`sqlite`]): the application resolves the filter against the dictionaries
//! (an unknown tag or model, or a substring no name contains, matches nothing), then drives the
//! query from its rarest input: it estimates each candidate index from planner statistics it
//! gathers after `ANALYZE` (trace counts per status, name, tag, model, user and metadata pair;
//! samples of start time, duration and cost), the way SQLite's own planner would with STAT4 if
//! QPSG did not stop it from looking at values, and writes the SQL of the cheapest: `INDEXED BY`
//! for an index of `traces`, `CROSS JOIN` (never reordered by SQLite) for `trace_tags`,
//! `trace_models`, `trace_meta` or `spans_model`, unary `+` on the trace columns it does not
//! drive, `EXISTS` key lookups (on the driver's keys, before the trace row is read) for the
//! other tags, metadata pairs and span conditions. A driver whose entries are not in time order
//! (several name ranges, a value range) keeps the newest 21 keys from its index, then reads those
//! rows. The report's plan column shows the driver and SQLite's `EXPLAIN QUERY PLAN`.
//!
//! Counting (`include=total`, `total,facets`) is `COUNT(*)` and `GROUP BY` over the same filter,
//! never a stored count: the total with the cheapest counting driver (covering where it can);
//! the facets of a status and time-window filter as one covering range count per dictionary
//! value; the facets of any other filter over its matching set materialized once
//! (`WITH m AS MATERIALIZED`) and grouped by status, name, and through the `_trace` indexes by
//! tag and model, top 20 by count descending then value. The page and its counts run in one read
//! transaction, so they agree.
//!
//! By concern: [`sqlite`] (the peer: schema, ingest, statistics, plans, queries), [`load`]
//! (both engines loaded with the same, enriched data), [`shapes`] (the query shapes and running
//! them on either engine), [`verify`] (cross-engine checks), [`measure`] (timing and disk use),
//! [`payload`] (LLM-prompt-like payloads and the stores without and with them) and [`otlp`]
//! (OTLP requests and their timed ingest). Everything is re-exported here.

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
    check_stored, encode, fresh_store, ingest_json_bodies, ingest_otlp_bodies,
    ingest_otlp_concurrent, json_bodies, otlp_requests, synth_traces, IngestRun, SynthTrace, Wire,
    OTLP_BATCH_SPANS, OTLP_CLIENTS,
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
