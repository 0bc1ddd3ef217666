//! The storage engine seam. `Store` is a facade over one `Engine`; everything above this trait
//! (validation, the query parser, the filter and order types, the cursor envelope, API-key
//! formats) is shared by every engine, and everything below it is the engine's own.
//!
//! The seam sits at the level of validated operations: an engine receives batches that passed
//! every check that needs no storage, queries whose filters and order are normalized, and the
//! resume state of a cursor it issued itself (opaque to the facade). What a second engine must
//! implement is listed in ARCHITECTURE.md, "What an engine implements".

#[cfg(feature = "clickhouse")]
pub(crate) mod clickhouse;
pub(crate) mod redb;

use crate::error::Result;
use crate::model::{Facets, IngestSummary, Trace, TraceDetail};
use crate::query::{Explain, Filters, Include, Order, PlanKind, Position};
use crate::schema::ApiKeyRecord;
use crate::validate::ValidTrace;
use crate::verify::Violation;

/// A list query as an engine receives it: normalized filters, an order and a page size.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Query<'a> {
    pub filters: &'a Filters,
    pub order: Order,
    pub limit: u32,
    /// Whether the page also carries the total and the facets of the whole matching set.
    pub include: Include,
}

/// Where a continuation starts: the last returned sort key, and the engine's own resume state
/// exactly as the engine returned it with the previous page.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Resume<'a> {
    pub position: &'a Position,
    pub state: &'a [u8],
}

/// One page as an engine returns it: the traces, and when more match, where the next page
/// starts (the position of the page's last trace and the engine's resume state).
#[derive(Debug)]
pub(crate) struct EnginePage {
    pub traces: Vec<Trace>,
    pub next: Option<(Position, Vec<u8>)>,
    /// With `include.total`: the exact number of matches.
    pub total: Option<u64>,
    /// With `include.facets`.
    pub facets: Option<Facets>,
}

/// Everything stored of one trace, as records: what a copy between engines moves, byte for byte
/// (payload blobs stay compressed, `createdAt` and the OTLP first attributes are kept).
#[derive(Clone, Debug)]
pub(crate) struct WholeTrace {
    pub start_ms: i64,
    pub status: u8,
    pub body: crate::schema::TraceBody,
    pub spans: Vec<(String, crate::schema::SpanRecord)>,
    pub scores: Vec<(String, crate::schema::ScoreRecord)>,
    /// The trace's own under the empty id, and its spans' under theirs.
    pub payloads: Vec<(String, crate::schema::PayloadRecord)>,
}

/// What a storage engine provides. On the embedded engine every method is one atomic operation:
/// a write commits whole or not at all, and a read answers from one consistent snapshot. The
/// ClickHouse engine, which has no transactions across tables, documents what it guarantees
/// instead (docs/clickhouse.md, "Guarantees that differ from the embedded engine").
pub(crate) trait Engine: Send + Sync + std::fmt::Debug {
    /// A short stable name, bound into every cursor (its associated data) so that a cursor of one engine is
    /// refused by another.
    fn name(&self) -> &'static str;
    /// The secret cursors are signed with; created with the database and kept in it.
    fn cursor_secret(&self) -> &[u8];
    /// Fails when the engine can no longer answer truthfully (after a failed commit).
    fn check_usable(&self) -> Result<()>;

    /// Upserts a validated, non-empty batch atomically. Checks that need the stored state (a new
    /// trace must have a name and a start time) fail the whole batch with every problem listed.
    fn ingest(&self, project: &str, batch: Vec<ValidTrace>) -> Result<IngestSummary>;
    /// Writes the mapped spans of one OTLP request in one transaction: each trace's spans are
    /// combined with what is stored of it (`otlp::combine`) and upserted. Returns the spans
    /// stored.
    #[cfg(feature = "otlp")]
    fn ingest_otlp(&self, project: &str, traces: Vec<crate::otlp::OtlpTrace>) -> Result<u64>;
    /// The problems of a batch that need the stored traces (`validate::check_merged` against
    /// each item's stored trace, or none), for a batch refused for other problems too: checked
    /// in the snapshot the batch would have been written in, writing nothing. Field paths are
    /// `traces[INDEX].FIELD`.
    fn check_stored(
        &self,
        project: &str,
        items: &[(usize, &ValidTrace)],
    ) -> Result<Vec<crate::error::FieldError>>;
    /// Deletes one trace with its children and index entries; false when it did not exist.
    fn delete_trace(&self, project: &str, id: &str) -> Result<bool>;
    /// Deletes every trace that started before `cutoff_ms`, in bounded transactions, reporting
    /// the running count after each; returns the total.
    fn delete_before(
        &self,
        project: &str,
        cutoff_ms: i64,
        progress: &mut dyn FnMut(u64),
    ) -> Result<u64>;
    /// One trace with its spans (by startTime, then id) and scores (by id).
    fn get_trace(&self, project: &str, id: &str, payloads: bool) -> Result<Option<TraceDetail>>;
    /// Everything stored of one trace (a trace of the write buffer included): what a copy
    /// into ClickHouse reads.
    #[cfg(feature = "clickhouse")]
    fn whole_trace(&self, project: &str, id: &str) -> Result<Option<WholeTrace>>;
    /// The names of the projects that hold (or held) traces, sorted.
    fn projects(&self) -> Result<Vec<String>>;

    /// One page of a list query, strictly after `resume` when given. `force` makes an engine
    /// that plans use that plan (for tests and benchmarks); others ignore it.
    fn query(
        &self,
        project: &str,
        q: Query<'_>,
        resume: Option<Resume<'_>>,
        force: Option<PlanKind>,
    ) -> Result<EnginePage>;
    /// Every trace `q` matches, in `q.order`, from one consistent snapshot (traces written
    /// meanwhile are not part of it), handed to `sink` one at a time; stops at the first error
    /// `sink` returns. `q.limit` is how many the engine reads per step of its walk, not a cap:
    /// memory stays flat in the number of matches. Returns how many traces `sink` took.
    fn export(
        &self,
        project: &str,
        q: Query<'_>,
        sink: &mut dyn FnMut(&Trace) -> Result<()>,
    ) -> Result<u64>;
    /// The plan a query would run, with its estimates; `after` is where a cursor resumes it.
    fn explain(&self, project: &str, q: Query<'_>, after: Option<&Position>) -> Result<Explain>;

    /// Every invariant the engine can check on one snapshot; empty when sound.
    fn verify(&self) -> Result<Vec<Violation>>;
    /// Space used, per table.
    fn storage_stats(&self) -> Result<Vec<TableUsage>>;
    /// The engine's own integrity check of its files. Needs exclusive access.
    fn check_integrity(&mut self) -> Result<bool>;
    /// Returns free space to the filesystem. Needs exclusive access.
    fn compact(&mut self) -> Result<bool>;

    /// Stores a new API key record under the hash of the key.
    fn put_api_key(&self, hash: &str, rec: &ApiKeyRecord) -> Result<()>;
    /// The record stored under a key's hash.
    fn api_key(&self, hash: &str) -> Result<Option<ApiKeyRecord>>;
    /// Every stored key record.
    fn api_keys(&self) -> Result<Vec<ApiKeyRecord>>;
    /// Marks every unrevoked key with this prefix revoked at `now_ms`; returns how many.
    fn revoke_api_keys(&self, prefix: &str, now_ms: i64) -> Result<usize>;
}

/// Space used by one table.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct TableUsage {
    /// The table's name.
    pub table: &'static str,
    /// Bytes of keys and values.
    pub entries_bytes: u64,
    /// Bytes of page headers and B-tree structure.
    pub metadata_bytes: u64,
    /// Unused bytes inside allocated pages.
    pub fragmented_bytes: u64,
}
