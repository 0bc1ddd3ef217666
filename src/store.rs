//! The public facade: `Store` validates at the boundary, resolves cursors, and hands validated
//! operations to its engine. It holds no storage logic of its own.

use crate::engine::redb::{RedbEngine, Sync};
use crate::engine::{Engine, Query, Resume, TableUsage};
use crate::error::{Error, FieldError, Result};
use crate::export::{ExportRequest, ExportWriter};
use crate::limits::{EXPORT_PAGE_TRACES, MAX_ID_BYTES, MAX_PENDING_TRACES};
use crate::model::*;
use crate::query::cursor::{self, CursorKey, CursorState};
use crate::query::{Explain, Filters, Include, Order, PlanKind, Position, QueryRequest};
use crate::time::Timestamp;
use crate::validate::{
    check_id, check_project, validate_batch, validate_json_batch, Checked, ValidTrace,
};
use std::path::Path;

/// How a commit reaches the disk.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Durability {
    /// Every commit is fsynced before it returns (the default). An acknowledged write survives
    /// a crash or power loss.
    #[default]
    Immediate,
    /// Commits are not synced; they become durable with the next synced commit or a clean
    /// close. A crash loses them but never corrupts the store. One commit in
    /// [`DEFERRED_COMMITS_PER_SYNC`](crate::limits::DEFERRED_COMMITS_PER_SYNC) is synced anyway,
    /// which keeps a long bulk load from slowing down and bounds what a crash loses. For bulk
    /// loads and tests.
    Deferred,
}

/// Options for opening a [`Store`].
#[derive(Clone, Debug, Default)]
pub struct StoreBuilder {
    cache_size_bytes: Option<usize>,
    durability: Durability,
    write_buffer_traces: Option<u32>,
}

impl StoreBuilder {
    /// redb's page cache size, in bytes (redb's default when unset).
    pub fn cache_size_bytes(mut self, bytes: usize) -> Self {
        self.cache_size_bytes = Some(bytes);
        self
    }
    /// Commit durability; [`Durability::Immediate`] by default.
    pub fn durability(mut self, d: Durability) -> Self {
        self.durability = d;
        self
    }
    /// How many new traces per project the write buffer may hold before the next write folds
    /// them into the indexes: [`MAX_PENDING_TRACES`] (the default and the largest accepted) down
    /// to 0, which turns buffering off so that every ingest is indexed in its own commit. A
    /// smaller buffer makes each fold cheaper and each query test fewer pending traces; a larger
    /// one spreads the folds over more one-trace commits. Opening fails with
    /// `VALIDATION_ERROR` for a value above the maximum.
    pub fn write_buffer_traces(mut self, n: u32) -> Self {
        self.write_buffer_traces = Some(n);
        self
    }
    fn redb_builder(&self) -> redb::Builder {
        let mut b = redb::Database::builder();
        if let Some(c) = self.cache_size_bytes {
            b.set_cache_size(c);
        }
        b
    }
    fn check(&self) -> Result<()> {
        match self.write_buffer_traces {
            Some(n) if n > MAX_PENDING_TRACES => Err(Error::field(
                "write_buffer_traces",
                format!("must be at most {MAX_PENDING_TRACES}"),
            )),
            _ => Ok(()),
        }
    }
    /// Opens the store at `path`, creating it when absent. A new store is made whole beside
    /// the path and renamed into place, so a crash while creating it never leaves a file at
    /// `path` that is not a store.
    pub fn open(self, path: impl AsRef<Path>) -> Result<Store> {
        self.check()?;
        let path = path.as_ref();
        if !path.exists() {
            self.create_whole(path)?;
        }
        let db = self.redb_builder().create(path)?;
        self.engine(db)
    }

    /// Creates a new store at a sibling temporary path (removing one a crash left behind),
    /// formats it in one durable commit, then renames it to `path` and syncs the directory.
    fn create_whole(&self, path: &Path) -> Result<()> {
        let name = path
            .file_name()
            .ok_or_else(|| Error::invalid("path", "must name a file"))?;
        let mut tmp_name = std::ffi::OsString::from(".");
        tmp_name.push(name);
        tmp_name.push(".tracestore-new");
        let tmp = path.with_file_name(tmp_name);
        let _ = std::fs::remove_file(&tmp);
        {
            let db = self.redb_builder().create(&tmp)?;
            RedbEngine::open(db, Sync::Immediate, 0)?;
        }
        if path.exists() {
            // Another process created it meanwhile: theirs stands.
            let _ = std::fs::remove_file(&tmp);
            return Ok(());
        }
        std::fs::rename(&tmp, path).map_err(Error::storage)?;
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    }
    /// Opens an existing store at `path` for reading only: it is never created, formatted,
    /// upgraded or written, so a file you cannot write can still be inspected, and a command
    /// that only reads cannot damage a file that is not a store. Every write fails with
    /// `READ_ONLY`. Another process may not hold the file open for writing at the same time.
    pub fn open_read_only(self, path: impl AsRef<Path>) -> Result<Store> {
        self.check()?;
        let db = self.redb_builder().open_read_only(path)?;
        Ok(Store::over(Box::new(RedbEngine::open_read_only(db)?)))
    }
    /// A store in memory, for tests and examples.
    pub fn in_memory(self) -> Result<Store> {
        self.check()?;
        let db = self
            .redb_builder()
            .create_with_backend(redb::backends::InMemoryBackend::new())?;
        self.engine(db)
    }
    /// A store over a custom redb storage backend (fault injection, crash simulation). Needs
    /// the `testing` feature.
    #[cfg(feature = "testing")]
    pub fn with_backend(self, backend: impl redb::StorageBackend) -> Result<Store> {
        self.check()?;
        let db = self.redb_builder().create_with_backend(backend)?;
        self.engine(db)
    }
    /// A store served from ClickHouse (feature `clickhouse`): the engine creates its database
    /// and tables on first start, or migrates them, and every operation goes to the server.
    /// Fails with `UNAVAILABLE` when the server cannot be reached. The guarantees that differ
    /// from the embedded engine are in the user docs ("The ClickHouse engine").
    #[cfg(feature = "clickhouse")]
    pub fn open_clickhouse(
        self,
        config: &crate::engine::clickhouse::ClickHouseConfig,
    ) -> Result<Store> {
        let engine = crate::engine::clickhouse::ClickHouseEngine::open(config)?;
        Ok(Store::over(Box::new(engine)))
    }
    fn engine(&self, db: redb::Database) -> Result<Store> {
        let sync = match self.durability {
            Durability::Immediate => Sync::Immediate,
            Durability::Deferred => Sync::Deferred,
        };
        let engine = RedbEngine::open(
            db,
            sync,
            self.write_buffer_traces.unwrap_or(MAX_PENDING_TRACES),
        )?;
        Ok(Store::over(Box::new(engine)))
    }
}

/// A cursor's position and the engine's resume bytes.
type Resumed = (Position, Vec<u8>);

/// An embedded trace store. Cheap to share across threads (`&Store` is `Sync`): reads run
/// concurrently on MVCC snapshots, writes are serialized.
pub struct Store {
    engine: Box<dyn Engine>,
    cursor_key: CursorKey,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("engine", &self.engine)
            .finish_non_exhaustive()
    }
}

impl Store {
    /// Opens the store at `path` with default options, creating it when absent.
    pub fn open(path: impl AsRef<Path>) -> Result<Store> {
        StoreBuilder::default().open(path)
    }
    /// An empty in-memory store.
    pub fn in_memory() -> Result<Store> {
        StoreBuilder::default().in_memory()
    }
    /// Options for opening.
    pub fn builder() -> StoreBuilder {
        StoreBuilder::default()
    }

    fn over(engine: Box<dyn Engine>) -> Store {
        let cursor_key = CursorKey::new(engine.cursor_secret());
        Store { engine, cursor_key }
    }

    pub(crate) fn engine(&self) -> &dyn Engine {
        &*self.engine
    }

    /// Ingests a batch atomically: every item is validated first, and one invalid item means
    /// nothing is written; the error lists every bad item by index and field.
    ///
    /// A batch of new traces into an existing project that has room in its write buffer
    /// ([`MAX_PENDING_TRACES`](crate::limits::MAX_PENDING_TRACES)) is committed to the buffer: just
    /// as durable and visible to every read at once, and indexed by the project's next larger
    /// write.
    pub fn ingest(&self, project: &str, traces: Vec<TraceInput>) -> Result<IngestSummary> {
        check_project(project)?;
        let valid = validate_batch(traces)?;
        self.apply(project, valid)
    }

    /// Ingests a JSON body `{"traces": [...]}` (at most 1000 traces and 5 MiB), atomically.
    pub fn ingest_json(&self, project: &str, body: &[u8]) -> Result<IngestSummary> {
        check_project(project)?;
        let valid = validate_json_batch(body)?;
        self.apply(project, valid)
    }

    /// Ingests one OTLP `ExportTraceServiceRequest` (feature `otlp`): each span becomes a span
    /// of the trace its trace id names, by the mapping rules of the OTLP section of the API
    /// document. Spans with a bad trace or span id are counted in `rejected_spans` and the rest
    /// are stored, in one transaction. A span re-sent with the same ids replaces the earlier one.
    #[cfg(feature = "otlp")]
    pub fn ingest_otlp(
        &self,
        project: &str,
        request: &crate::otlp::OtlpRequest,
    ) -> Result<crate::otlp::OtlpOutcome> {
        check_project(project)?;
        let mapped = crate::otlp::map_request(&request.message);
        let (traces, refused, reason) = crate::otlp::check(mapped.traces);
        let mut outcome = crate::otlp::OtlpOutcome {
            rejected_spans: mapped.rejected_spans + refused,
            error_message: mapped.error_message.or(reason),
            ..Default::default()
        };
        if traces.is_empty() {
            self.engine.check_usable()?;
            return Ok(outcome);
        }
        outcome.trace_ids = traces.iter().map(|t| t.trace_id.clone()).collect();
        outcome.accepted_spans = self.engine.ingest_otlp(project, traces)?;
        Ok(outcome)
    }

    /// Writes a checked batch, or refuses it with every problem in one answer: those found
    /// without storage, and those that need the stored traces (a new trace needs a name and a
    /// start time), checked by the engine in the transaction that would have written the batch.
    fn apply(&self, project: &str, checked: Checked) -> Result<IngestSummary> {
        let valid = match checked.into_valid() {
            Ok(valid) => valid,
            Err(checked) => {
                let items: Vec<(usize, &ValidTrace)> =
                    checked.items.iter().map(|i| (i.index, &i.trace)).collect();
                let stored = self.engine.check_stored(project, &items)?;
                return Err(checked.into_error(stored));
            }
        };
        if valid.is_empty() {
            // Nothing to write: no transaction, and no project is created.
            self.engine.check_usable()?;
            return Ok(IngestSummary::default());
        }
        let ids = valid.iter().map(|v| v.id.clone()).collect();
        let mut summary = self.engine.ingest(project, valid)?;
        summary.ids = ids;
        Ok(summary)
    }

    /// Deletes a trace with its spans, scores and index entries. `NOT_FOUND` when absent.
    pub fn delete_trace(&self, project: &str, id: &str) -> Result<()> {
        check_project(project)?;
        if check_id(id, MAX_ID_BYTES).is_err() || !self.engine.delete_trace(project, id)? {
            return Err(Error::not_found());
        }
        Ok(())
    }

    /// Retention: deletes every trace of `project` that started before `cutoff`, in
    /// transactions of `RETENTION_BATCH` traces, calling `progress(deleted_so_far)` after each.
    /// Returns how many were deleted. A crash midway leaves whole batches deleted, never half.
    pub fn delete_before(
        &self,
        project: &str,
        cutoff: Timestamp,
        mut progress: impl FnMut(u64),
    ) -> Result<u64> {
        check_project(project)?;
        self.engine
            .delete_before(project, cutoff.as_millis(), &mut progress)
    }

    /// One trace with its input and output, its spans (each with its payloads) and its scores.
    /// `NOT_FOUND` when this project has no such id.
    pub fn get_trace(&self, project: &str, id: &str) -> Result<TraceDetail> {
        self.read_trace(project, id, true)
    }

    /// One trace with its spans and scores but without any payload (no input, output,
    /// attributes or status message is read): what a tree view needs.
    pub fn get_trace_tree(&self, project: &str, id: &str) -> Result<TraceDetail> {
        self.read_trace(project, id, false)
    }

    fn read_trace(&self, project: &str, id: &str, payloads: bool) -> Result<TraceDetail> {
        check_project(project)?;
        if check_id(id, MAX_ID_BYTES).is_err() {
            return Err(Error::not_found());
        }
        self.engine
            .get_trace(project, id, payloads)?
            .ok_or_else(Error::not_found)
    }

    /// The names of the projects that hold (or held) traces, sorted.
    pub fn projects(&self) -> Result<Vec<String>> {
        self.engine.projects()
    }

    /// Copies every trace of this store into ClickHouse (feature `clickhouse`), project by
    /// project, in batches, each trace whole (payloads, scores and `createdAt` as stored; a
    /// trace already there is replaced). A checkpoint in the target after each batch makes an
    /// interrupted copy resume where it stopped; `restart` copies everything again. `progress`
    /// is called after each batch. Returns the traces this run copied. Copy a store that no
    /// server is writing: a trace changed after it was copied is not copied again by a resumed
    /// run.
    #[cfg(feature = "clickhouse")]
    pub fn migrate_to_clickhouse(
        &self,
        config: &crate::engine::clickhouse::ClickHouseConfig,
        restart: bool,
        mut progress: impl FnMut(&crate::engine::clickhouse::MigrateProgress),
    ) -> Result<u64> {
        let target = crate::engine::clickhouse::ClickHouseEngine::open(config)?;
        crate::engine::clickhouse::copy::copy(self.engine(), &target, restart, &mut progress)
    }

    /// Runs a list query: one page, newest first, with a cursor to the next page.
    pub fn query(&self, project: &str, req: &QueryRequest) -> Result<Page> {
        self.run(project, req, None)
    }

    /// Parses raw query-string pairs and runs them: the one call an HTTP adapter needs. Every
    /// bad parameter is reported at once, a tampered cursor included.
    pub fn query_params<K: AsRef<str>, V: AsRef<str>>(
        &self,
        project: &str,
        params: impl IntoIterator<Item = (K, V)>,
    ) -> Result<Page> {
        let pairs: Vec<(String, String)> = params
            .into_iter()
            .map(|(k, v)| (k.as_ref().to_string(), v.as_ref().to_string()))
            .collect();
        match QueryRequest::from_params(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str()))) {
            Ok(req) => self.query(project, &req),
            Err(e) => {
                // Also verify a well-formed cursor, so that its error is listed with the rest.
                let mut details = e.into_details();
                let cursor = pairs.iter().find(|(k, _)| k == "cursor").map(|(_, v)| v);
                if let Some(c) = cursor {
                    if !details.iter().any(|d| d.field() == "cursor") {
                        if let Err(m) = self.decode_cursor(project, c) {
                            details.push(FieldError::new("cursor", m));
                        }
                    }
                }
                Err(Error::validation(details))
            }
        }
    }

    /// Like [`query`](Self::query) with the executor forced, for tests and benchmarks that
    /// compare plans. An empty plan stays empty.
    pub fn query_with_plan(
        &self,
        project: &str,
        req: &QueryRequest,
        plan: PlanKind,
    ) -> Result<Page> {
        self.run(project, req, Some(plan))
    }

    /// The plan a query would run, with its estimates.
    pub fn explain(&self, project: &str, req: &QueryRequest) -> Result<Explain> {
        check_project(project)?;
        let (filters, order, resume) = self.resolve_cursor(project, req)?;
        let q = Query {
            filters: &filters,
            order,
            limit: req.limit,
            include: Include::default(),
        };
        let after = resume.as_ref().map(|(position, _)| position);
        self.engine.explain(project, q, after)
    }

    fn decode_cursor(&self, project: &str, token: &str) -> Result<CursorState, String> {
        cursor::decode(&self.cursor_key, self.engine.name(), project, token)
    }

    /// The filters and order a request runs with, and where it resumes: a cursor carries its
    /// query, and filters given beside it must mean the same (compared after normalization).
    fn resolve_cursor(
        &self,
        project: &str,
        req: &QueryRequest,
    ) -> Result<(Filters, Order, Option<Resumed>)> {
        let Some(token) = &req.cursor else {
            return Ok((req.filters.clone(), req.order.unwrap_or_default(), None));
        };
        let state = self
            .decode_cursor(project, token)
            .map_err(|m| Error::field("cursor", m))?;
        if !req.filters.agrees_with(&state.filters) {
            return Err(Error::field(
                "cursor",
                "filters differ from the query this cursor continues",
            ));
        }
        if req.order.is_some_and(|o| o != state.order) {
            return Err(Error::field(
                "cursor",
                "orderBy differs from the order this cursor continues",
            ));
        }
        Ok((
            state.filters,
            state.order,
            Some((state.position, state.resume)),
        ))
    }

    fn run(&self, project: &str, req: &QueryRequest, force: Option<PlanKind>) -> Result<Page> {
        check_project(project)?;
        let (filters, order, resume) = self.resolve_cursor(project, req)?;
        let q = Query {
            filters: &filters,
            order,
            limit: req.limit,
            include: req.include,
        };
        let resume = resume
            .as_ref()
            .map(|(position, state)| Resume { position, state });
        let out = self.engine.query(project, q, resume, force)?;
        let next_cursor = out.next.map(|(position, resume)| {
            let state = CursorState {
                filters: filters.clone(),
                order,
                position,
                resume,
            };
            cursor::encode(&self.cursor_key, self.engine.name(), project, &state)
        });
        Ok(Page {
            traces: out.traces,
            next_cursor,
            total: out.total,
            facets: out.facets,
        })
    }

    /// Export: every trace `req` matches, with no page limit, in the query's order (`orderBy`;
    /// newest first by default), handed to `sink` one at a time; returns how many. The traces come from one
    /// consistent snapshot, taken when the call begins: a trace written during the export is
    /// not in it, and none appears twice. Memory is flat in the number of matches: the
    /// engine pages through them ([`EXPORT_PAGE_TRACES`] at a time) within the snapshot and
    /// keeps none. The first error `sink` returns stops the export and is returned. A slow
    /// sink holds the snapshot open; writers are not blocked meanwhile.
    pub fn export(
        &self,
        project: &str,
        req: &ExportRequest,
        mut sink: impl FnMut(&Trace) -> Result<()>,
    ) -> Result<u64> {
        check_project(project)?;
        let q = Query {
            filters: &req.query.filters,
            order: req.query.order(),
            limit: EXPORT_PAGE_TRACES,
            include: Include::default(),
        };
        self.engine.export(project, q, &mut sink)
    }

    /// [`export`](Self::export) written to `out` in the request's format
    /// ([`ExportWriter`]): for CSV the header row first, then one row per trace; flushed at the
    /// end. Returns how many traces were written.
    pub fn export_to<W: std::io::Write>(
        &self,
        project: &str,
        req: &ExportRequest,
        out: W,
    ) -> Result<u64> {
        check_project(project)?;
        let mut w = ExportWriter::new(req.format(), out);
        w.header()?;
        let n = self.export(project, req, |t| w.write(t))?;
        w.finish()?;
        Ok(n)
    }

    /// Checks every invariant of the store and returns the violations found (empty when sound).
    pub fn verify(&self) -> Result<Vec<crate::verify::Violation>> {
        self.engine.verify()
    }

    /// Space used by each table, for capacity planning and compaction decisions.
    pub fn storage_stats(&self) -> Result<Vec<TableUsage>> {
        self.engine.storage_stats()
    }

    /// redb's own integrity check of the file (page checksums and tree structure). Needs
    /// exclusive access.
    pub fn check_integrity(&mut self) -> Result<bool> {
        self.engine.check_integrity()
    }

    /// Compacts the file, returning free pages to the filesystem. Needs exclusive access.
    pub fn compact(&mut self) -> Result<bool> {
        self.engine.compact()
    }
}
