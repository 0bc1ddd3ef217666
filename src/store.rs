//! The store: opening, the transaction boundaries of every operation, and the glue between the
//! query layer and the schema.

use crate::buffer;
use crate::cache::{Caches, ProjectView};
use crate::error::{Error, FieldError, Result};
use crate::ingest::{check_id, check_project, validate_batch, validate_json_batch, ValidTrace};
use crate::limits::{MAX_ID_BYTES, MAX_PENDING_TRACES, RETENTION_BATCH};
use crate::model::*;
use crate::query::cursor::{self, CursorState};
use crate::query::exec::{self, Hit, Position};
use crate::query::parse::Filters;
use crate::query::plan::{self, Explain, PlanKind};
use crate::query::QueryRequest;
use crate::schema::*;
use crate::time::Timestamp;
use crate::write::{Upserted, Writer};
use redb::{ReadableDatabase, ReadableTable};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

/// How a commit reaches the disk.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Durability {
    /// Every commit is fsynced before it returns (the default). An acknowledged write survives
    /// a crash or power loss.
    #[default]
    Immediate,
    /// Commits are not synced; they become durable with the next `Immediate` commit or a clean
    /// close. A crash loses them but never corrupts the store. For bulk loads and tests.
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
    fn redb(&self) -> redb::Builder {
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
    /// Opens the store at `path`, creating it when absent.
    pub fn open(self, path: impl AsRef<Path>) -> Result<Store> {
        self.check()?;
        let db = self.redb().create(path)?;
        Store::init(db, &self)
    }
    /// A store in memory, for tests and examples.
    pub fn in_memory(self) -> Result<Store> {
        self.check()?;
        let db = self
            .redb()
            .create_with_backend(redb::backends::InMemoryBackend::new())?;
        Store::init(db, &self)
    }
    /// A store over a custom redb storage backend (fault injection, crash simulation).
    pub fn with_backend(self, backend: impl redb::StorageBackend) -> Result<Store> {
        self.check()?;
        let db = self.redb().create_with_backend(backend)?;
        Store::init(db, &self)
    }
}

/// An embedded trace store. Cheap to share across threads (`&Store` is `Sync`): reads run
/// concurrently on MVCC snapshots, writes are serialized by redb.
pub struct Store {
    db: redb::Database,
    cursor_key: cursor::CursorKey,
    durability: Durability,
    /// Most pending traces per project (`StoreBuilder::write_buffer_traces`).
    write_buffer_traces: u32,
    caches: Caches,
    /// Set when a write fails in storage: every later call fails until the store is reopened.
    poisoned: AtomicBool,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("durability", &self.durability)
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

    fn init(db: redb::Database, opts: &StoreBuilder) -> Result<Store> {
        let mut txn = db.begin_write()?;
        txn.set_durability(redb::Durability::Immediate)?;
        let secret = {
            let mut t = WriteTables::open(&txn)?;
            let version = t.meta.get(META_FORMAT_VERSION)?.map(|v| v.value().to_vec());
            match version {
                Some(v) if v == [FORMAT_VERSION] => {}
                Some(v) if v == [FORMAT_VERSION_V1] => migrate_from_v1(&mut t)?,
                Some(v) => {
                    return Err(Error::storage(format!(
                        "unsupported tracestore format version {v:?} (this build reads {FORMAT_VERSION})"
                    )))
                }
                None => {
                    t.meta.insert(META_FORMAT_VERSION, [FORMAT_VERSION].as_slice())?;
                }
            }
            let existing = t.meta.get(META_CURSOR_SECRET)?.map(|v| v.value().to_vec());
            match existing {
                Some(s) if s.len() == 32 => s,
                Some(_) => return Err(Error::corrupted("cursor secret has the wrong length")),
                None => {
                    let mut s = vec![0u8; 32];
                    getrandom::fill(&mut s).map_err(|e| Error::storage(e.to_string()))?;
                    t.meta.insert(META_CURSOR_SECRET, s.as_slice())?;
                    s
                }
            }
        };
        txn.commit()?;
        Ok(Store {
            db,
            cursor_key: cursor::CursorKey::new(&secret),
            durability: opts.durability,
            write_buffer_traces: opts.write_buffer_traces.unwrap_or(MAX_PENDING_TRACES),
            caches: Caches::default(),
            poisoned: AtomicBool::new(false),
        })
    }

    /// Runs `f` in one write transaction; commits if it returns Ok, aborts otherwise.
    pub(crate) fn write<T>(&self, f: impl FnOnce(&mut Writer<'_>) -> Result<T>) -> Result<T> {
        let out = self.transact(|txn| {
            let mut w = Writer::open(txn)?;
            let out = f(&mut w)?;
            w.flush()?;
            Ok(Some(out))
        })?;
        Ok(out.expect("the closure always commits"))
    }

    /// Runs `f` in one write transaction: commits when it returns `Ok(Some)`, aborts when it
    /// returns `Ok(None)` or an error.
    fn transact<T>(
        &self,
        f: impl FnOnce(&redb::WriteTransaction) -> Result<Option<T>>,
    ) -> Result<Option<T>> {
        self.check_poisoned()?;
        let result: Result<Option<T>> = (|| {
            let mut txn = self.db.begin_write()?;
            txn.set_durability(match self.durability {
                Durability::Immediate => redb::Durability::Immediate,
                Durability::Deferred => redb::Durability::None,
            })?;
            match f(&txn)? {
                Some(out) => {
                    txn.commit()?;
                    Ok(Some(out))
                }
                None => {
                    txn.abort()?;
                    Ok(None)
                }
            }
        })();
        if let Err(e) = &result {
            if e.is_storage() {
                // A failed commit may or may not have reached the disk; until the store is
                // reopened, no answer (read or write) could be trusted to match what survives.
                self.poisoned.store(true, Ordering::SeqCst);
            }
        }
        result
    }

    fn check_poisoned(&self) -> Result<()> {
        if self.poisoned.load(Ordering::SeqCst) {
            return Err(Error::storage(
                "a write failed in storage; reopen the store before using it again",
            ));
        }
        Ok(())
    }

    pub(crate) fn read(&self) -> Result<ReadTables> {
        self.check_poisoned()?;
        Ok(ReadTables::new(self.db.begin_read()?))
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

    fn apply(&self, project: &str, valid: Vec<ValidTrace>) -> Result<IngestSummary> {
        if valid.is_empty() {
            // Nothing to write: no transaction, and no project is created.
            self.check_poisoned()?;
            return Ok(IngestSummary::default());
        }
        let now = Timestamp::now().as_millis();
        // A few new traces go to the write buffer: two small tables instead of every index.
        if valid.len() <= self.write_buffer_traces as usize {
            let buffered = self.transact(|txn| {
                let mut t = BufferTables::open(txn)?;
                buffer::try_buffer(&mut t, project, &valid, now, self.write_buffer_traces)
            })?;
            if let Some(summary) = buffered {
                return Ok(summary);
            }
        }
        self.write(|w| {
            let p = w.project_id(project)?;
            let mut summary = IngestSummary::default();
            let mut errors: Vec<FieldError> = Vec::new();
            for (i, v) in valid.into_iter().enumerate() {
                summary.spans += v.spans.len();
                summary.scores += v.scores.len();
                match w.upsert(p, v, now, &format!("traces[{i}]"), &mut errors)? {
                    Upserted::Created => summary.created += 1,
                    Upserted::Updated => summary.updated += 1,
                }
            }
            if !errors.is_empty() {
                return Err(Error::validation(errors));
            }
            Ok(summary)
        })
    }

    /// Deletes a trace with its spans, scores and index entries. `NOT_FOUND` when absent.
    pub fn delete_trace(&self, project: &str, id: &str) -> Result<()> {
        check_project(project)?;
        if check_id(id, MAX_ID_BYTES).is_err() {
            return Err(Error::not_found());
        }
        let deleted = self.write(|w| match w.existing_project_id(project)? {
            Some(p) => w.delete(p, id),
            None => Ok(false),
        })?;
        if deleted {
            Ok(())
        } else {
            Err(Error::not_found())
        }
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
        let mut total = 0u64;
        loop {
            let n = self.write(|w| {
                let Some(p) = w.existing_project_id(project)? else {
                    return Ok(0);
                };
                w.fold_pending(p)?;
                let ids = w.ids_before(p, cutoff.as_millis(), RETENTION_BATCH)?;
                for id in &ids {
                    w.delete(p, id)?;
                }
                Ok(ids.len())
            })?;
            total += n as u64;
            if n == 0 {
                return Ok(total);
            }
            progress(total);
        }
    }

    /// One trace with its spans and scores. `NOT_FOUND` when this project has no such id.
    pub fn get_trace(&self, project: &str, id: &str) -> Result<TraceDetail> {
        check_project(project)?;
        if check_id(id, MAX_ID_BYTES).is_err() {
            return Err(Error::not_found());
        }
        let t = self.read()?;
        let Some(p) = project_id(&t, project)? else {
            return Err(Error::not_found());
        };
        let idr = match t.ids()?.get((p, id))? {
            Some(v) => decode_id(v.value())?,
            None => {
                return match buffer::detail(&t, p, id)? {
                    Some((head, children)) => Ok(pending_detail(id, head, children)?),
                    None => Err(Error::not_found()),
                }
            }
        };
        let rec = t
            .traces()?
            .get(trace_key(p, idr.start_ms, id).as_slice())?
            .ok_or_else(|| Error::corrupted("id index points at a missing trace"))?
            .value()
            .to_vec();
        let trace = to_trace(&Hit {
            start_ms: idr.start_ms,
            id: id.to_string(),
            record: rec,
        })?;
        // `pending_detail` returns the same order: spans by (startTime, id), scores by id.
        let prefix = child_prefix(p, idr.row);
        let end = prefix_end(&prefix).expect("a child prefix has an end");
        let mut spans = Vec::new();
        for e in t
            .spans()?
            .range::<&[u8]>(prefix.as_slice()..end.as_slice())?
        {
            let (k, v) = e?;
            let sid = decode_child_key(k.value())?.2.to_string();
            spans.push(to_span(sid, decode_span(v.value())?)?);
        }
        spans.sort_by(|a, b| (a.start_time, &a.id).cmp(&(b.start_time, &b.id)));
        let mut scores = Vec::new();
        for e in t
            .scores()?
            .range::<&[u8]>(prefix.as_slice()..end.as_slice())?
        {
            let (k, v) = e?;
            let sid = decode_child_key(k.value())?.2.to_string();
            scores.push(to_score(sid, decode_score(v.value())?));
        }
        Ok(TraceDetail {
            trace,
            spans,
            scores,
        })
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
                        if let Err(m) = cursor::decode(&self.cursor_key, project, c) {
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
        Ok(self.prepare(project, req, None)?.plan.explain)
    }

    fn resolve_cursor(
        &self,
        project: &str,
        req: &QueryRequest,
    ) -> Result<(Filters, Option<CursorState>)> {
        let Some(token) = &req.cursor else {
            return Ok((req.filters.clone(), None));
        };
        let state = cursor::decode(&self.cursor_key, project, token)
            .map_err(|m| Error::field("cursor", m))?;
        if !req.filters.is_empty() && req.filters != state.filters {
            return Err(Error::field(
                "cursor",
                "filters differ from the query this cursor continues",
            ));
        }
        Ok((state.filters.clone(), Some(state)))
    }

    fn prepare(
        &self,
        project: &str,
        req: &QueryRequest,
        force: Option<PlanKind>,
    ) -> Result<Prepared> {
        check_project(project)?;
        let (filters, cursor) = self.resolve_cursor(project, req)?;
        let tables = self.read()?;
        let need = req.limit as usize + 1;
        let mut state = None;
        if let Some(p) = project_id(&tables, project)? {
            if let Some(v) = tables.project_state()?.get(p)? {
                state = Some((p, decode_project_state(v.value())?));
            }
        }
        let (live, next_row) = state.as_ref().map_or((0, 0), |(_, s)| (s.live, s.next_row));
        let plan = {
            let view = state
                .as_ref()
                .map(|(p, s)| ProjectView::new(&tables, &self.caches, *p, s.generation));
            plan::plan(view.as_ref(), live, next_row, &filters, need, force)?
        };
        let project = state.map(|(p, s)| (p, s.next_row, s.indexed_rows, s.generation));
        Ok(Prepared {
            tables,
            plan,
            project,
            filters,
            cursor,
        })
    }

    fn run(&self, project: &str, req: &QueryRequest, force: Option<PlanKind>) -> Result<Page> {
        let Prepared {
            tables,
            plan,
            project: pstate,
            filters,
            cursor: state,
        } = self.prepare(project, req, force)?;
        let Some((p, next_row, indexed_rows, generation)) = pstate else {
            return Ok(Page {
                traces: Vec::new(),
                next_cursor: None,
            });
        };
        let need = req.limit as usize + 1;
        let after = state.as_ref().map(|s| Position {
            start_ms: s.start_ms,
            id: &s.id,
        });
        let row_limit = state
            .as_ref()
            .map_or(next_row, |s| s.row_limit.min(next_row));
        let hint = state.as_ref().and_then(|s| s.hint);
        let view = ProjectView::new(&tables, &self.caches, p, generation);
        // The executor sees indexed rows only; pending traces (reserved rows from
        // `indexed_rows` on) are tested directly and merged in order.
        let found = exec::execute(&view, row_limit.min(indexed_rows), &plan, after, hint, need)?;
        let pending = if indexed_rows < row_limit {
            let list = self.caches.pending(&tables, p, next_row, indexed_rows)?;
            buffer::matches(&list, &filters, row_limit, after.as_ref(), need)
        } else {
            Vec::new()
        };
        let (items, hint) = merge(found, pending, need);
        let more = items.len() >= need;
        let mut traces = Vec::with_capacity(req.limit as usize);
        for item in items.iter().take(req.limit as usize) {
            traces.push(match item {
                Item::Indexed(h) => to_trace(h)?,
                Item::Pending(h) => {
                    trace_from(h.head.start_ms, &h.id, h.head.status, h.head.body.clone())?
                }
            });
        }
        let next_cursor = if more {
            let (start_ms, id) = items[req.limit as usize - 1].position();
            let next = CursorState {
                filters,
                start_ms,
                id: id.to_string(),
                row_limit,
                hint,
            };
            Some(cursor::encode(&self.cursor_key, project, &next))
        } else {
            None
        };
        Ok(Page {
            traces,
            next_cursor,
        })
    }

    /// Checks every invariant of the store and returns the violations found (empty when sound).
    pub fn verify(&self) -> Result<Vec<crate::verify::Violation>> {
        crate::verify::verify(&self.read()?)
    }

    /// Space used by each table, for capacity planning and compaction decisions.
    pub fn storage_stats(&self) -> Result<Vec<TableUsage>> {
        let t = self.read()?;
        Ok(t.table_stats()?
            .into_iter()
            .map(|(table, s)| TableUsage {
                table,
                entries_bytes: s.stored_bytes(),
                metadata_bytes: s.metadata_bytes(),
                fragmented_bytes: s.fragmented_bytes(),
            })
            .collect())
    }

    /// redb's own integrity check of the file (page checksums and tree structure). Needs
    /// exclusive access.
    pub fn check_integrity(&mut self) -> Result<bool> {
        Ok(self.db.check_integrity()?)
    }

    /// Compacts the file, returning free pages to the filesystem. Needs exclusive access.
    pub fn compact(&mut self) -> Result<bool> {
        Ok(self.db.compact()?)
    }

    pub(crate) fn write_tables<T>(
        &self,
        f: impl FnOnce(&mut WriteTables<'_>) -> Result<T>,
    ) -> Result<T> {
        self.write(|w| f(&mut w.t))
    }
}

/// Space used by one table.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TableUsage {
    pub table: &'static str,
    /// Bytes of keys and values.
    pub entries_bytes: u64,
    /// Bytes of page headers and B-tree structure.
    pub metadata_bytes: u64,
    /// Unused bytes inside allocated pages.
    pub fragmented_bytes: u64,
}

/// A query resolved against one snapshot, ready to execute.
struct Prepared {
    tables: ReadTables,
    plan: plan::Plan,
    /// The project's (id, next row, indexed rows, generation), when it exists.
    project: Option<(u32, u32, u32, u64)>,
    filters: Filters,
    cursor: Option<CursorState>,
}

pub(crate) fn project_id(t: &ReadTables, name: &str) -> Result<Option<u32>> {
    match t.projects()?.get(name)? {
        Some(v) => Ok(Some(decode_u32(v.value())?)),
        None => Ok(None),
    }
}

fn ts(ms: i64) -> Timestamp {
    Timestamp::from_millis_unchecked(ms)
}

/// One page entry before conversion: an executor hit or a pending trace.
enum Item {
    Indexed(Hit),
    Pending(buffer::PendingHit),
}

impl Item {
    fn position(&self) -> (i64, &str) {
        match self {
            Item::Indexed(h) => (h.start_ms, &h.id),
            Item::Pending(h) => (h.head.start_ms, &h.id),
        }
    }
}

/// Merges the executor's hits and the pending matches (both in query order) into the first
/// `need` entries. The executor's block hint describes a continuation after its own hits, so it
/// is kept only when no pending trace is on the page.
fn merge(
    found: exec::Found,
    pending: Vec<buffer::PendingHit>,
    need: usize,
) -> (Vec<Item>, Option<cursor::BlockHint>) {
    if pending.is_empty() {
        return (
            found.hits.into_iter().map(Item::Indexed).collect(),
            found.hint,
        );
    }
    let mut items: Vec<Item> = found
        .hits
        .into_iter()
        .map(Item::Indexed)
        .chain(pending.into_iter().map(Item::Pending))
        .collect();
    items.sort_by(|a, b| b.position().cmp(&a.position()));
    items.truncate(need);
    let page = need.saturating_sub(1);
    let hint = if items
        .iter()
        .take(page)
        .all(|i| matches!(i, Item::Indexed(_)))
    {
        found.hint
    } else {
        None
    };
    (items, hint)
}

/// A pending trace as `get_trace` returns it: the same detail it will have once folded.
fn pending_detail(id: &str, head: PendingHead, children: PendingChildren) -> Result<TraceDetail> {
    let trace = trace_from(head.start_ms, id, head.status, head.body)?;
    let mut spans = children
        .spans
        .into_iter()
        .map(|(sid, r)| to_span(sid, r))
        .collect::<Result<Vec<_>>>()?;
    spans.sort_by(|a, b| (a.start_time, &a.id).cmp(&(b.start_time, &b.id)));
    let mut scores: Vec<Score> = children
        .scores
        .into_iter()
        .map(|(sid, r)| to_score(sid, r))
        .collect();
    // Stored scores come back in child-key order, which is the id's byte order.
    scores.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(TraceDetail {
        trace,
        spans,
        scores,
    })
}

pub(crate) fn to_trace(h: &Hit) -> Result<Trace> {
    let (hd, b) = decode_trace(&h.record)?;
    trace_from(h.start_ms, &h.id, hd.status, b)
}

fn trace_from(start_ms: i64, id: &str, status: u8, b: TraceBody) -> Result<Trace> {
    let status = Status::from_code(status).ok_or_else(|| Error::corrupted("status code"))?;
    Ok(Trace {
        id: id.to_string(),
        name: b.name,
        status,
        start_time: ts(start_ms),
        end_time: b.end_ms.map(ts),
        duration_ms: b.end_ms.map(|e| e - start_ms),
        total_cost: b.total_cost.to_decimal()?,
        total_tokens: b.total_tokens,
        tags: b.tags,
        metadata: Metadata::from_json_unchecked(b.metadata),
        span_count: b.span_count,
        score_count: b.score_count,
        created_at: ts(b.created_ms),
    })
}

fn to_span(id: String, r: SpanRecord) -> Result<Span> {
    Ok(Span {
        id,
        name: r.name,
        start_time: r.start_ms.map(ts),
        end_time: r.end_ms.map(ts),
        model: r.model,
        input_tokens: r.input_tokens,
        output_tokens: r.output_tokens,
        total_tokens: r.total_tokens,
        cost: r.cost.map(Money::to_decimal).transpose()?,
    })
}

fn to_score(id: String, r: ScoreRecord) -> Score {
    Score {
        id,
        name: r.name,
        value: match r.value {
            ScoreValueRecord::Number(n) => ScoreValue::Number(n),
            ScoreValueRecord::Text(t) => ScoreValue::Text(t),
        },
        comment: r.comment,
    }
}
