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

#![allow(dead_code)]

use rusqlite::{params, Connection, OptionalExtension};
use rust_decimal::Decimal;
use std::collections::HashMap;
use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tracestore::demo::{DemoConfig, Generator, BUSY_NAME, RARE_NAME, TAGS};
use tracestore::{
    Durability, QueryRequest, ScoreValue, Status, Store, Timestamp, TraceDetail, TraceInput,
};

/// The queried project (90% of the traces).
pub const PROJECT: &str = "demo";
/// Page size of every shape; both engines fetch `PAGE + 1` rows.
pub const PAGE: usize = 20;
/// Traces per ingest transaction.
pub const BATCH: usize = 1000;

/// Data size from `TRACESTORE_BENCH_TRACES`, else `default`.
pub fn traces_from_env(default: usize) -> usize {
    std::env::var("TRACESTORE_BENCH_TRACES")
        .ok()
        .and_then(|s| s.replace('_', "").parse().ok())
        .unwrap_or(default)
}

/// The generator configuration every benchmark uses for `n` traces.
pub fn demo_config(n: usize) -> DemoConfig {
    DemoConfig {
        traces: n,
        ..Default::default()
    }
}

/// Where temporary databases go (`TRACESTORE_BENCH_DIR`, else the system temp dir).
pub fn temp_dir() -> tempfile::TempDir {
    match std::env::var_os("TRACESTORE_BENCH_DIR") {
        Some(d) => tempfile::Builder::new().prefix("tsbench").tempdir_in(d),
        None => tempfile::Builder::new().prefix("tsbench").tempdir(),
    }
    .expect("temp dir")
}

// ---------------------------------------------------------------------------------------------
// The SQLite peer
// ---------------------------------------------------------------------------------------------

/// SQLite's `synchronous` setting (always in WAL mode).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Sync {
    /// No fsync at all (bulk loads only, paired with tracestore `Durability::Deferred`).
    Off,
    /// fsync at checkpoints only: a commit is not durable (the usual "expert" setting).
    Normal,
    /// fsync of the WAL at every commit: the same durability as tracestore's default.
    Full,
}

impl Sync {
    pub fn pragma(self) -> &'static str {
        match self {
            Sync::Off => "OFF",
            Sync::Normal => "NORMAL",
            Sync::Full => "FULL",
        }
    }
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS projects(
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE
);
CREATE TABLE IF NOT EXISTS traces(
    project INTEGER NOT NULL,
    start_time INTEGER NOT NULL,
    id TEXT NOT NULL,
    name TEXT NOT NULL,
    status INTEGER NOT NULL,
    end_time INTEGER,
    tags TEXT NOT NULL,
    metadata TEXT NOT NULL,
    total_cost TEXT NOT NULL,
    total_tokens INTEGER NOT NULL,
    span_count INTEGER NOT NULL,
    score_count INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY(project, start_time, id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS traces_status ON traces(project, status, start_time);
CREATE UNIQUE INDEX IF NOT EXISTS traces_id ON traces(project, id);
CREATE TABLE IF NOT EXISTS trace_tags(
    project INTEGER NOT NULL,
    tag TEXT NOT NULL,
    start_time INTEGER NOT NULL,
    id TEXT NOT NULL,
    PRIMARY KEY(project, tag, start_time, id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS spans(
    project INTEGER NOT NULL,
    trace_id TEXT NOT NULL,
    span_id TEXT NOT NULL,
    name TEXT,
    start_time INTEGER,
    end_time INTEGER,
    model TEXT,
    input_tokens INTEGER,
    output_tokens INTEGER,
    total_tokens INTEGER NOT NULL,
    cost TEXT,
    PRIMARY KEY(project, trace_id, span_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS scores(
    project INTEGER NOT NULL,
    trace_id TEXT NOT NULL,
    score_id TEXT NOT NULL,
    name TEXT NOT NULL,
    value ANY,
    comment TEXT,
    PRIMARY KEY(project, trace_id, score_id)
) WITHOUT ROWID;
";

/// The SQLite peer.
pub struct Sqlite {
    pub conn: Connection,
    pub path: PathBuf,
    projects: HashMap<String, i64>,
}

/// A trace row as the SQLite peer returns it (the same fields as `tracestore::Trace`).
#[derive(Clone, Debug, PartialEq)]
pub struct SqlTrace {
    pub id: String,
    pub name: String,
    pub status: Status,
    pub start_ms: i64,
    pub end_ms: Option<i64>,
    pub tags: Vec<String>,
    pub metadata: String,
    pub total_cost: Decimal,
    pub total_tokens: u64,
    pub span_count: u32,
    pub score_count: u32,
    pub created_ms: i64,
}

/// A span row of the peer.
#[derive(Clone, Debug, PartialEq)]
pub struct SqlSpan {
    pub id: String,
    pub name: Option<String>,
    pub start_ms: Option<i64>,
    pub end_ms: Option<i64>,
    pub model: Option<String>,
    pub input_tokens: Option<u64>,
    pub output_tokens: Option<u64>,
    pub total_tokens: u64,
    pub cost: Option<Decimal>,
}

/// A score row of the peer.
#[derive(Clone, Debug, PartialEq)]
pub struct SqlScore {
    pub id: String,
    pub name: String,
    pub value: ScoreValue,
    pub comment: Option<String>,
}

/// `get_trace` of the peer.
#[derive(Clone, Debug, PartialEq)]
pub struct SqlDetail {
    pub trace: SqlTrace,
    pub spans: Vec<SqlSpan>,
    pub scores: Vec<SqlScore>,
}

const TRACE_COLS: &str = "t.start_time, t.id, t.name, t.status, t.end_time, t.tags, t.metadata, \
                          t.total_cost, t.total_tokens, t.span_count, t.score_count, t.created_at";

fn row_to_trace(r: &rusqlite::Row<'_>) -> rusqlite::Result<SqlTrace> {
    let tags: String = r.get(5)?;
    let cost: String = r.get(7)?;
    Ok(SqlTrace {
        start_ms: r.get(0)?,
        id: r.get(1)?,
        name: r.get(2)?,
        status: if r.get::<_, i64>(3)? == 1 {
            Status::Error
        } else {
            Status::Ok
        },
        end_ms: r.get(4)?,
        tags: if tags.is_empty() {
            Vec::new()
        } else {
            tags.split(',').map(str::to_string).collect()
        },
        metadata: r.get(6)?,
        total_cost: cost.parse().unwrap_or_default(),
        total_tokens: r.get::<_, i64>(8)? as u64,
        span_count: r.get::<_, i64>(9)? as u32,
        score_count: r.get::<_, i64>(10)? as u32,
        created_ms: r.get(11)?,
    })
}

impl Sqlite {
    /// Opens (creating) the peer at `path` in WAL mode with the given `synchronous`.
    pub fn open(path: &Path, sync: Sync) -> Sqlite {
        let conn = Connection::open(path).expect("open sqlite");
        // A page cache the size of redb's default (1 GiB), so neither engine is cache-starved.
        conn.execute_batch(&format!(
            "PRAGMA journal_mode=WAL; PRAGMA synchronous={}; PRAGMA cache_size=-1048576; \
             PRAGMA temp_store=MEMORY;",
            sync.pragma()
        ))
        .expect("pragmas");
        conn.execute_batch(SCHEMA).expect("schema");
        conn.set_prepared_statement_cache_capacity(64);
        Sqlite {
            conn,
            path: path.to_path_buf(),
            projects: HashMap::new(),
        }
    }

    pub fn set_sync(&self, sync: Sync) {
        self.conn
            .execute_batch(&format!("PRAGMA synchronous={};", sync.pragma()))
            .expect("pragma");
    }

    fn project_id(&mut self, project: &str) -> i64 {
        if let Some(p) = self.projects.get(project) {
            return *p;
        }
        self.conn
            .execute("INSERT OR IGNORE INTO projects(name) VALUES(?1)", [project])
            .expect("project");
        let id: i64 = self
            .conn
            .query_row("SELECT id FROM projects WHERE name=?1", [project], |r| {
                r.get(0)
            })
            .expect("project id");
        self.projects.insert(project.to_string(), id);
        id
    }

    /// The project id, looked up like a fresh request would (no cache), None when unknown.
    fn lookup_project(&self, project: &str) -> Option<i64> {
        let mut st = self
            .conn
            .prepare_cached("SELECT id FROM projects WHERE name=?1")
            .unwrap();
        st.query_row([project], |r| r.get(0)).optional().unwrap()
    }

    /// Upserts `traces` in one transaction: computes the derived totals (exact decimal cost sum,
    /// token sum, counts), keeps `created_at` of an existing trace, replaces its tag entries,
    /// and upserts spans and scores by id.
    pub fn ingest(&mut self, project: &str, traces: &[TraceInput]) {
        let p = self.project_id(project);
        let now = Timestamp::now().as_millis();
        let tx = self.conn.transaction().expect("begin");
        {
            let mut find = tx
                .prepare_cached(
                    "SELECT start_time, created_at, tags FROM traces WHERE project=?1 AND id=?2",
                )
                .unwrap();
            let mut del_trace = tx
                .prepare_cached("DELETE FROM traces WHERE project=?1 AND start_time=?2 AND id=?3")
                .unwrap();
            let mut del_tag = tx
                .prepare_cached("DELETE FROM trace_tags WHERE project=?1 AND tag=?2 AND start_time=?3 AND id=?4")
                .unwrap();
            let mut ins_trace = tx
                .prepare_cached(
                    "INSERT INTO traces(project, start_time, id, name, status, end_time, tags, metadata, \
                     total_cost, total_tokens, span_count, score_count, created_at) \
                     VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
                )
                .unwrap();
            let mut ins_tag = tx
                .prepare_cached("INSERT OR IGNORE INTO trace_tags(project, tag, start_time, id) VALUES(?1, ?2, ?3, ?4)")
                .unwrap();
            let mut ins_span = tx
                .prepare_cached(
                    "INSERT OR REPLACE INTO spans(project, trace_id, span_id, name, start_time, end_time, \
                     model, input_tokens, output_tokens, total_tokens, cost) \
                     VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
                )
                .unwrap();
            let mut ins_score = tx
                .prepare_cached(
                    "INSERT OR REPLACE INTO scores(project, trace_id, score_id, name, value, comment) \
                     VALUES(?1, ?2, ?3, ?4, ?5, ?6)",
                )
                .unwrap();
            for t in traces {
                let id = t.id.as_deref().expect("bench traces carry ids");
                let start = t.start_time.expect("start").as_millis();
                let old: Option<(i64, i64, String)> = find
                    .query_row(params![p, id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                    .optional()
                    .unwrap();
                let created = match &old {
                    Some((ost, created, otags)) => {
                        for tag in otags.split(',').filter(|s| !s.is_empty()) {
                            del_tag.execute(params![p, tag, ost, id]).unwrap();
                        }
                        del_trace.execute(params![p, ost, id]).unwrap();
                        *created
                    }
                    None => now,
                };
                let mut tags: Vec<&str> = Vec::new();
                for tag in t.tags.iter().flatten() {
                    if !tags.contains(&tag.as_str()) {
                        tags.push(tag);
                    }
                }
                let metadata = match &t.metadata {
                    Some(m) => serde_json::to_string(m).unwrap(),
                    None => "{}".to_string(),
                };
                let mut cost = Decimal::ZERO;
                let mut tokens = 0u64;
                for s in &t.spans {
                    let tt = s
                        .total_tokens
                        .unwrap_or(s.input_tokens.unwrap_or(0) + s.output_tokens.unwrap_or(0));
                    tokens += tt;
                    if let Some(c) = s.cost {
                        cost += c;
                    }
                    ins_span
                        .execute(params![
                            p,
                            id,
                            s.id.as_deref().unwrap_or(""),
                            s.name,
                            s.start_time.map(Timestamp::as_millis),
                            s.end_time.map(Timestamp::as_millis),
                            s.model,
                            s.input_tokens.map(|v| v as i64),
                            s.output_tokens.map(|v| v as i64),
                            tt as i64,
                            s.cost.map(|c| c.normalize().to_string()),
                        ])
                        .unwrap();
                }
                for sc in &t.scores {
                    let value: rusqlite::types::Value = match &sc.value {
                        ScoreValue::Number(n) => rusqlite::types::Value::Real(*n),
                        ScoreValue::Text(s) => rusqlite::types::Value::Text(s.clone()),
                    };
                    ins_score
                        .execute(params![
                            p,
                            id,
                            sc.id.as_deref().unwrap_or(""),
                            sc.name,
                            value,
                            sc.comment
                        ])
                        .unwrap();
                }
                ins_trace
                    .execute(params![
                        p,
                        start,
                        id,
                        t.name.as_deref().unwrap_or(""),
                        i64::from(t.status == Some(Status::Error)),
                        t.end_time.map(Timestamp::as_millis),
                        tags.join(","),
                        metadata,
                        cost.normalize().to_string(),
                        tokens as i64,
                        t.spans.len() as i64,
                        t.scores.len() as i64,
                        created,
                    ])
                    .unwrap();
                for tag in &tags {
                    ins_tag.execute(params![p, tag, start, id]).unwrap();
                }
            }
        }
        tx.commit().expect("commit");
    }

    /// The SQL of a filter; parameters are numbered as bound by [`Sqlite::query`].
    pub fn sql(f: &Filter, keyset: bool) -> String {
        let mut sql = format!("SELECT {TRACE_COLS} FROM traces t WHERE t.project=?1");
        if f.status.is_some() {
            sql.push_str(" AND t.status=?2");
        }
        if f.name.is_some() {
            sql.push_str(" AND instr(lower(t.name), ?3) > 0");
        }
        if f.start.is_some() {
            sql.push_str(" AND t.start_time >= ?4");
        }
        if f.end.is_some() {
            sql.push_str(" AND t.start_time < ?5");
        }
        if keyset {
            sql.push_str(" AND (t.start_time, t.id) < (?6, ?7)");
        }
        let join = std::env::var("TRACESTORE_BENCH_SQLITE_TAGS").is_ok_and(|v| v == "join");
        for i in 0..f.tags.len() {
            if join {
                sql = sql.replacen(
                    " WHERE ",
                    &format!(
                        " JOIN trace_tags g{i} ON g{i}.project=t.project AND g{i}.tag=?{} \
                         AND g{i}.start_time=t.start_time AND g{i}.id=t.id WHERE ",
                        9 + i
                    ),
                    1,
                );
            } else {
                sql.push_str(&format!(
                    " AND EXISTS (SELECT 1 FROM trace_tags g WHERE g.project=t.project AND g.tag=?{} \
                     AND g.start_time=t.start_time AND g.id=t.id)",
                    9 + i
                ));
            }
        }
        sql.push_str(" ORDER BY t.start_time DESC, t.id DESC LIMIT ?8");
        sql
    }

    /// Binds a filter's parameters, numbered as in [`Sqlite::sql`].
    fn bind(
        st: &mut rusqlite::Statement<'_>,
        p: i64,
        f: &Filter,
        after: Option<&(i64, String)>,
        fetch: usize,
    ) {
        let mut args: Vec<(usize, rusqlite::types::Value)> =
            vec![(1, p.into()), (8, (fetch as i64).into())];
        if let Some(s) = f.status {
            args.push((2, i64::from(s == Status::Error).into()));
        }
        if let Some(n) = &f.name {
            args.push((3, n.to_lowercase().into()));
        }
        if let Some(s) = f.start {
            args.push((4, s.as_millis().into()));
        }
        if let Some(e) = f.end {
            args.push((5, e.as_millis().into()));
        }
        if let Some((st_ms, id)) = after {
            args.push((6, (*st_ms).into()));
            args.push((7, id.clone().into()));
        }
        let mut tags = f.tags.clone();
        tags.sort();
        tags.dedup();
        for (i, t) in tags.into_iter().enumerate() {
            args.push((9 + i, t.into()));
        }
        for (i, v) in args {
            st.raw_bind_parameter(i, v).expect("bind");
        }
    }

    /// One page: up to `fetch` rows strictly after `after`, newest first.
    pub fn query(
        &self,
        project: &str,
        f: &Filter,
        after: Option<&(i64, String)>,
        fetch: usize,
    ) -> Vec<SqlTrace> {
        let Some(p) = self.lookup_project(project) else {
            return Vec::new();
        };
        let sql = Sqlite::sql(f, after.is_some());
        let mut st = self.conn.prepare_cached(&sql).expect("prepare");
        Sqlite::bind(&mut st, p, f, after, fetch);
        let mut rows = st.raw_query();
        let mut out = Vec::with_capacity(fetch);
        while let Some(r) = rows.next().expect("step") {
            out.push(row_to_trace(r).expect("row"));
        }
        out
    }

    /// The peer's `EXPLAIN QUERY PLAN` for a query, with its real parameters bound, one line.
    pub fn explain(&self, project: &str, f: &Filter, after: Option<&(i64, String)>) -> String {
        let p = self.lookup_project(project).unwrap_or(0);
        let sql = format!("EXPLAIN QUERY PLAN {}", Sqlite::sql(f, after.is_some()));
        let mut st = self.conn.prepare(&sql).unwrap();
        Sqlite::bind(&mut st, p, f, after, PAGE + 1);
        let mut rows = st.raw_query();
        let mut out = Vec::new();
        while let Some(r) = rows.next().unwrap() {
            out.push(r.get::<_, String>(3).unwrap());
        }
        out.join("; ")
    }

    /// One trace with spans and scores, None when absent.
    pub fn get_trace(&self, project: &str, id: &str) -> Option<SqlDetail> {
        let p = self.lookup_project(project)?;
        let mut st = self
            .conn
            .prepare_cached(&format!(
                "SELECT {TRACE_COLS} FROM traces t WHERE t.project=?1 AND t.id=?2"
            ))
            .unwrap();
        let trace = st
            .query_row(params![p, id], row_to_trace)
            .optional()
            .unwrap()?;
        let mut st = self
            .conn
            .prepare_cached(
                "SELECT span_id, name, start_time, end_time, model, input_tokens, output_tokens, \
                 total_tokens, cost FROM spans WHERE project=?1 AND trace_id=?2",
            )
            .unwrap();
        let mut spans: Vec<SqlSpan> = st
            .query_map(params![p, id], |r| {
                Ok(SqlSpan {
                    id: r.get(0)?,
                    name: r.get(1)?,
                    start_ms: r.get(2)?,
                    end_ms: r.get(3)?,
                    model: r.get(4)?,
                    input_tokens: r.get::<_, Option<i64>>(5)?.map(|v| v as u64),
                    output_tokens: r.get::<_, Option<i64>>(6)?.map(|v| v as u64),
                    total_tokens: r.get::<_, i64>(7)? as u64,
                    cost: r.get::<_, Option<String>>(8)?.and_then(|c| c.parse().ok()),
                })
            })
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        spans.sort_by(|a, b| (a.start_ms, &a.id).cmp(&(b.start_ms, &b.id)));
        let mut st = self
            .conn
            .prepare_cached("SELECT score_id, name, value, comment FROM scores WHERE project=?1 AND trace_id=?2")
            .unwrap();
        let scores: Vec<SqlScore> = st
            .query_map(params![p, id], |r| {
                let value = match r.get::<_, rusqlite::types::Value>(2)? {
                    rusqlite::types::Value::Real(n) => ScoreValue::Number(n),
                    rusqlite::types::Value::Integer(n) => ScoreValue::Number(n as f64),
                    rusqlite::types::Value::Text(s) => ScoreValue::Text(s),
                    _ => ScoreValue::Text(String::new()),
                };
                Ok(SqlScore {
                    id: r.get(0)?,
                    name: r.get(1)?,
                    value,
                    comment: r.get(3)?,
                })
            })
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        Some(SqlDetail {
            trace,
            spans,
            scores,
        })
    }

    /// Gathers planner statistics (`ANALYZE`), as an expert would after a bulk load.
    pub fn analyze(&self) {
        self.conn.execute_batch("ANALYZE;").expect("analyze");
    }

    /// Checkpoints and truncates the WAL.
    pub fn checkpoint(&self) {
        self.conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
            .expect("checkpoint");
    }

    /// Bytes of the database file plus its WAL.
    pub fn disk_bytes(&self) -> u64 {
        let wal = PathBuf::from(format!("{}-wal", self.path.display()));
        file_len(&self.path) + file_len(&wal)
    }

    /// Allocated bytes of the database file plus its WAL.
    pub fn disk_allocated(&self) -> u64 {
        let wal = PathBuf::from(format!("{}-wal", self.path.display()));
        file_allocated(&self.path) + file_allocated(&wal)
    }
}

pub fn file_len(p: &Path) -> u64 {
    std::fs::metadata(p).map(|m| m.len()).unwrap_or(0)
}

/// Bytes the file occupies on disk (allocated blocks). redb extends its file ahead of use
/// (doubling up to 4 GiB regions) with `set_len`, which leaves the unused tail sparse: apparent
/// length overstates what the disk holds.
pub fn file_allocated(p: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(p).map(|m| m.blocks() * 512).unwrap_or(0)
}

// ---------------------------------------------------------------------------------------------
// Loading both engines
// ---------------------------------------------------------------------------------------------

/// Both engines loaded with the same batches.
pub struct Loaded {
    pub dir: tempfile::TempDir,
    pub store: Store,
    pub store_path: PathBuf,
    pub sqlite: Sqlite,
    pub traces: usize,
    /// Ids of the main project, sampled evenly (for get-by-id).
    pub sample_ids: Vec<String>,
    /// Seconds spent ingesting (excluding generation), per engine.
    pub tracestore_secs: f64,
    pub sqlite_secs: f64,
    pub gen_secs: f64,
    pub durable: bool,
}

/// How the load commits.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum LoadMode {
    /// tracestore `Durability::Immediate`, SQLite WAL + `synchronous=FULL`.
    Durable,
    /// tracestore `Durability::Deferred`, SQLite WAL + `synchronous=OFF`.
    Deferred,
}

/// Generates `n` traces in batches of 1000 and ingests every batch (one transaction per
/// project group) into both engines, timing each engine separately. Prints progress every
/// 100k traces when `progress`.
pub fn load(n: usize, mode: LoadMode, progress: bool) -> Loaded {
    let dir = temp_dir();
    let store_path = dir.path().join("traces.redb");
    let sqlite_path = dir.path().join("traces.sqlite");
    let (dur, sync) = match mode {
        LoadMode::Durable => (Durability::Immediate, Sync::Full),
        LoadMode::Deferred => (Durability::Deferred, Sync::Off),
    };
    let store = Store::builder()
        .durability(dur)
        .open(&store_path)
        .expect("open store");
    let mut sqlite = Sqlite::open(&sqlite_path, sync);
    let mut g = Generator::new(demo_config(n));
    let (mut ts, mut sq, mut gen) = (Duration::ZERO, Duration::ZERO, Duration::ZERO);
    let mut done = 0usize;
    let mut demo_seen = 0usize;
    let mut sample_ids = Vec::new();
    let every = (n / 2000).max(1);
    let began = Instant::now();
    let mut next_report = 100_000;
    while done < n {
        let t0 = Instant::now();
        let batch = g.next_batch(BATCH);
        gen += t0.elapsed();
        if batch.is_empty() {
            break;
        }
        for (project, traces) in batch {
            done += traces.len();
            if project == PROJECT {
                for t in &traces {
                    if demo_seen.is_multiple_of(every) {
                        sample_ids.push(t.id.clone().unwrap());
                    }
                    demo_seen += 1;
                }
            }
            let t1 = Instant::now();
            sqlite.ingest(&project, &traces);
            sq += t1.elapsed();
            let t2 = Instant::now();
            store.ingest(&project, traces).expect("tracestore ingest");
            ts += t2.elapsed();
        }
        if progress && done >= next_report {
            eprintln!(
                "  loaded {done}/{n} traces in {:.1} s (tracestore {:.1} s, SQLite {:.1} s, generator {:.1} s)",
                began.elapsed().as_secs_f64(),
                ts.as_secs_f64(),
                sq.as_secs_f64(),
                gen.as_secs_f64()
            );
            next_report += 100_000;
        }
    }
    // Planner statistics, as an expert would gather after a bulk load (off with
    // TRACESTORE_BENCH_SQLITE_ANALYZE=0, to see the planner's guesses).
    if std::env::var("TRACESTORE_BENCH_SQLITE_ANALYZE").map_or(true, |v| v != "0") {
        sqlite.analyze();
    }
    // Shuffle the sample deterministically so get-by-id visits ids in random order.
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    for i in (1..sample_ids.len()).rev() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        sample_ids.swap(i, (x % (i as u64 + 1)) as usize);
    }
    Loaded {
        dir,
        store,
        store_path,
        sqlite,
        traces: done,
        sample_ids,
        tracestore_secs: ts.as_secs_f64(),
        sqlite_secs: sq.as_secs_f64(),
        gen_secs: gen.as_secs_f64(),
        durable: mode == LoadMode::Durable,
    }
}

// ---------------------------------------------------------------------------------------------
// Shapes
// ---------------------------------------------------------------------------------------------

/// A query's filters, independent of the engine.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Filter {
    pub status: Option<Status>,
    pub name: Option<String>,
    pub tags: Vec<String>,
    pub start: Option<Timestamp>,
    pub end: Option<Timestamp>,
}

impl Filter {
    /// The tracestore request for this filter (first page, `limit` rows).
    pub fn request(&self, limit: usize) -> QueryRequest {
        let mut params: Vec<(&str, String)> = vec![("limit", limit.to_string())];
        if let Some(s) = self.status {
            params.push(("status", s.as_str().to_string()));
        }
        if let Some(n) = &self.name {
            params.push(("name", n.clone()));
        }
        if !self.tags.is_empty() {
            params.push(("tags", self.tags.join(",")));
        }
        if let Some(s) = self.start {
            params.push(("startDate", s.to_string()));
        }
        if let Some(e) = self.end {
            params.push(("endDate", e.to_string()));
        }
        QueryRequest::from_params(params.iter().map(|(k, v)| (*k, v.as_str())))
            .expect("valid request")
    }
}

/// What a shape runs.
#[derive(Clone, Debug)]
pub enum ShapeKind {
    /// A first page of `filter`.
    List(Filter),
    /// Page `page` (1-based) of `filter`, reached by walking real cursors.
    Page(Filter, usize),
    /// `get_trace` of a random existing id.
    GetById,
}

/// One benchmark shape.
#[derive(Clone, Debug)]
pub struct Shape {
    /// Short key, e.g. `Q6`, `Q9p100`.
    pub key: String,
    /// Human label.
    pub label: String,
    pub kind: ShapeKind,
}

/// The substring of the rare name used by Q4 and Q7 (`pdf-ocr`).
pub fn rare_needle() -> String {
    RARE_NAME.trim_start_matches("tool-").to_string()
}

/// The substring of the busy name used by Q3 and Q6 (`support`).
pub fn busy_needle() -> String {
    BUSY_NAME.split('-').next().unwrap().to_string()
}

/// Every shape of the issue, Q1–Q10 (Q9 at pages 1, 10, 100 and 1000).
pub fn shapes() -> Vec<Shape> {
    let err = || Filter {
        status: Some(Status::Error),
        ..Default::default()
    };
    let tags2 = || vec![TAGS[0].to_string(), TAGS[1].to_string()]; // production, v2
    let rare_tags = || vec![TAGS[18].to_string(), TAGS[19].to_string()]; // load-test, legacy
    let day = Timestamp::parse("2026-03-01T00:00:00Z").unwrap();
    let next_day = Timestamp::parse("2026-03-02T00:00:00Z").unwrap();
    let mut v = vec![
        Shape {
            key: "Q1".into(),
            label: "no filter".into(),
            kind: ShapeKind::List(Filter::default()),
        },
        Shape {
            key: "Q2".into(),
            label: "status=ERROR".into(),
            kind: ShapeKind::List(err()),
        },
        Shape {
            key: "Q3".into(),
            label: format!("name~{} (busy)", busy_needle()),
            kind: ShapeKind::List(Filter {
                name: Some(busy_needle()),
                ..Default::default()
            }),
        },
        Shape {
            key: "Q4".into(),
            label: format!("name~{} (rare)", rare_needle()),
            kind: ShapeKind::List(Filter {
                name: Some(rare_needle()),
                ..Default::default()
            }),
        },
        Shape {
            key: "Q5".into(),
            label: format!("tags={}", tags2().join(",")),
            kind: ShapeKind::List(Filter {
                tags: tags2(),
                ..Default::default()
            }),
        },
        Shape {
            key: "Q6".into(),
            label: format!(
                "ERROR + tags={} + name~{}",
                tags2().join(","),
                busy_needle()
            ),
            kind: ShapeKind::List(Filter {
                tags: tags2(),
                name: Some(busy_needle()),
                ..err()
            }),
        },
        Shape {
            key: "Q7".into(),
            label: format!(
                "ERROR + name~{} + tags={}",
                rare_needle(),
                rare_tags().join(",")
            ),
            kind: ShapeKind::List(Filter {
                tags: rare_tags(),
                name: Some(rare_needle()),
                ..err()
            }),
        },
        Shape {
            key: "Q8".into(),
            label: "one day 2026-03-01".into(),
            kind: ShapeKind::List(Filter {
                start: Some(day),
                end: Some(next_day),
                ..Default::default()
            }),
        },
    ];
    for page in [1, 10, 100, 1000] {
        v.push(Shape {
            key: format!("Q9p{page}"),
            label: format!("status=ERROR page {page}"),
            kind: ShapeKind::Page(err(), page),
        });
    }
    v.push(Shape {
        key: "Q10".into(),
        label: "get by id (random)".into(),
        kind: ShapeKind::GetById,
    });
    v
}

/// A shape made ready to run: requests and keyset positions precomputed.
#[allow(clippy::large_enum_variant)] // built once per shape
pub enum Prepared {
    List {
        filter: Filter,
        req: QueryRequest,
        after: Option<(i64, String)>,
    },
    Get {
        ids: Vec<String>,
    },
}

/// Precomputes a shape's requests; for a page shape, walks the pages before it with real
/// cursors (tracestore) and the equivalent keyset positions (SQLite). None when the page does
/// not exist at this data size. Errors describe a cross-engine mismatch met on the walk.
pub fn prepare(l: &Loaded, shape: &Shape) -> Result<Option<Prepared>, String> {
    match &shape.kind {
        ShapeKind::List(f) => Ok(Some(Prepared::List {
            filter: f.clone(),
            req: f.request(PAGE),
            after: None,
        })),
        ShapeKind::GetById => Ok(Some(Prepared::Get {
            ids: l.sample_ids.clone(),
        })),
        ShapeKind::Page(f, page) => {
            let mut req = f.request(PAGE);
            let mut after: Option<(i64, String)> = None;
            for p in 1..*page {
                let ts = l.store.query(PROJECT, &req).map_err(|e| e.to_string())?;
                let Some(c) = ts.next_cursor else {
                    return Ok(None);
                };
                let last = ts.traces.last().unwrap();
                let sq = l.sqlite.query(PROJECT, f, after.as_ref(), PAGE + 1);
                let sq_ids: Vec<&str> = sq.iter().take(PAGE).map(|t| t.id.as_str()).collect();
                let ts_ids: Vec<&str> = ts.traces.iter().map(|t| t.id.as_str()).collect();
                if sq_ids != ts_ids {
                    return Err(format!("{}: page {p} differs on the walk", shape.key));
                }
                after = Some((last.start_time.as_millis(), last.id.clone()));
                req = QueryRequest::builder()
                    .cursor(&c)
                    .limit(PAGE as u32)
                    .build()
                    .map_err(|e| e.to_string())?;
            }
            Ok(Some(Prepared::List {
                filter: f.clone(),
                req,
                after,
            }))
        }
    }
}

/// Runs the tracestore side once (`i` selects the id for get-by-id); returns rows returned.
pub fn run_tracestore(l: &Loaded, p: &Prepared, i: usize) -> usize {
    match p {
        Prepared::List { req, .. } => black_box(l.store.query(PROJECT, req).unwrap()).traces.len(),
        Prepared::Get { ids } => {
            let d = l.store.get_trace(PROJECT, &ids[i % ids.len()]).unwrap();
            black_box(d).spans.len()
        }
    }
}

/// Runs the SQLite side once; returns rows returned.
pub fn run_sqlite(l: &Loaded, p: &Prepared, i: usize) -> usize {
    match p {
        Prepared::List { filter, after, .. } => {
            black_box(l.sqlite.query(PROJECT, filter, after.as_ref(), PAGE + 1))
                .len()
                .min(PAGE)
        }
        Prepared::Get { ids } => {
            black_box(l.sqlite.get_trace(PROJECT, &ids[i % ids.len()]).unwrap())
                .spans
                .len()
        }
    }
}

fn same_trace(a: &tracestore::Trace, b: &SqlTrace) -> Result<(), String> {
    let ta = (
        &a.id,
        &a.name,
        a.status,
        a.start_time.as_millis(),
        a.end_time.map(Timestamp::as_millis),
        &a.tags,
        a.total_cost.normalize(),
        a.total_tokens,
        a.span_count,
        a.score_count,
    );
    let tb = (
        &b.id,
        &b.name,
        b.status,
        b.start_ms,
        b.end_ms,
        &b.tags,
        b.total_cost.normalize(),
        b.total_tokens,
        b.span_count,
        b.score_count,
    );
    if ta != tb {
        return Err(format!(
            "trace {} differs: tracestore {ta:?} vs SQLite {tb:?}",
            a.id
        ));
    }
    let ma: serde_json::Value = serde_json::from_str(a.metadata.as_json()).unwrap_or_default();
    let mb: serde_json::Value = serde_json::from_str(&b.metadata).unwrap_or_default();
    if ma != mb {
        return Err(format!("trace {} metadata differs: {ma} vs {mb}", a.id));
    }
    Ok(())
}

fn same_detail(a: &TraceDetail, b: &SqlDetail) -> Result<(), String> {
    same_trace(&a.trace, &b.trace)?;
    let sa: Vec<_> = a
        .spans
        .iter()
        .map(|s| {
            (
                s.id.clone(),
                s.name.clone(),
                s.start_time.map(Timestamp::as_millis),
                s.end_time.map(Timestamp::as_millis),
                s.model.clone(),
                s.input_tokens,
                s.output_tokens,
                s.total_tokens,
                s.cost.map(|c| c.normalize()),
            )
        })
        .collect();
    let sb: Vec<_> = b
        .spans
        .iter()
        .map(|s| {
            (
                s.id.clone(),
                s.name.clone(),
                s.start_ms,
                s.end_ms,
                s.model.clone(),
                s.input_tokens,
                s.output_tokens,
                s.total_tokens,
                s.cost.map(|c| c.normalize()),
            )
        })
        .collect();
    if sa != sb {
        return Err(format!(
            "trace {} spans differ: {sa:?} vs {sb:?}",
            a.trace.id
        ));
    }
    let ca: Vec<_> = a
        .scores
        .iter()
        .map(|s| (&s.id, &s.name, &s.value, &s.comment))
        .collect();
    let cb: Vec<_> = b
        .scores
        .iter()
        .map(|s| (&s.id, &s.name, &s.value, &s.comment))
        .collect();
    if ca != cb {
        return Err(format!(
            "trace {} scores differ: {ca:?} vs {cb:?}",
            a.trace.id
        ));
    }
    Ok(())
}

/// Checks that both engines return the same page (ids, order, every field but createdAt, and
/// whether a next page exists); for get-by-id, the same detail for the first 50 sampled ids.
/// Returns the number of rows on the page.
pub fn verify(l: &Loaded, shape: &Shape, p: &Prepared) -> Result<usize, String> {
    match p {
        Prepared::List { filter, req, after } => {
            let ts = l
                .store
                .query(PROJECT, req)
                .map_err(|e| format!("{}: tracestore error {e}", shape.key))?;
            let sq = l.sqlite.query(PROJECT, filter, after.as_ref(), PAGE + 1);
            let ts_ids: Vec<&str> = ts.traces.iter().map(|t| t.id.as_str()).collect();
            let sq_ids: Vec<&str> = sq.iter().take(PAGE).map(|t| t.id.as_str()).collect();
            if ts_ids != sq_ids {
                return Err(format!(
                    "{}: page ids differ\n  tracestore {ts_ids:?}\n  SQLite     {sq_ids:?}",
                    shape.key
                ));
            }
            if ts.next_cursor.is_some() != (sq.len() > PAGE) {
                return Err(format!(
                    "{}: has-more differs (tracestore next_cursor {}, SQLite {} rows fetched)",
                    shape.key,
                    ts.next_cursor.is_some(),
                    sq.len()
                ));
            }
            for (a, b) in ts.traces.iter().zip(&sq) {
                same_trace(a, b).map_err(|e| format!("{}: {e}", shape.key))?;
            }
            Ok(ts.traces.len())
        }
        Prepared::Get { ids } => {
            for id in ids.iter().take(50) {
                let a = l
                    .store
                    .get_trace(PROJECT, id)
                    .map_err(|e| format!("Q10 {id}: {e}"))?;
                let b = l
                    .sqlite
                    .get_trace(PROJECT, id)
                    .ok_or_else(|| format!("Q10 {id}: missing in SQLite"))?;
                same_detail(&a, &b).map_err(|e| format!("Q10: {e}"))?;
            }
            Ok(1)
        }
    }
}

/// tracestore's plan for a shape (`Explain` display), or a note for get-by-id.
pub fn plan_of(l: &Loaded, p: &Prepared) -> String {
    match p {
        Prepared::List { req, .. } => match l.store.explain(PROJECT, req) {
            Ok(e) => e.to_string(),
            Err(e) => format!("explain failed: {e}"),
        },
        Prepared::Get { .. } => "id index → primary key, spans/scores range".into(),
    }
}

// ---------------------------------------------------------------------------------------------
// Ingest helpers
// ---------------------------------------------------------------------------------------------

/// `n` fresh traces for ingest benchmarks (one project, ids unique to `seed`).
pub fn fresh_traces(n: usize, seed: u64) -> Vec<TraceInput> {
    let cfg = DemoConfig {
        seed,
        traces: n,
        projects: vec![PROJECT.to_string()],
        ..Default::default()
    };
    Generator::new(cfg)
        .map(|(_, mut t)| {
            let id = t.id.take().unwrap();
            t.id = Some(format!("{id}-{seed}"));
            t
        })
        .collect()
}

/// Median of `v` (sorted in place).
pub fn median(v: &mut [f64]) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// Times `f` (given the iteration index): warms up, then runs until at least 200 runs and 1 s,
/// or at most `max` time (at least 15 runs); returns the median in microseconds and the runs.
pub fn measure(max: Duration, mut f: impl FnMut(usize)) -> (f64, usize) {
    let warm = Instant::now();
    let mut i = 0;
    while i < 20 && (i < 3 || warm.elapsed() < Duration::from_millis(200)) {
        f(i);
        i += 1;
    }
    let mut samples = Vec::new();
    let began = Instant::now();
    loop {
        let t = Instant::now();
        f(i);
        samples.push(t.elapsed().as_secs_f64() * 1e6);
        i += 1;
        let el = began.elapsed();
        if (samples.len() >= 200 && el >= Duration::from_secs(1))
            || (samples.len() >= 15 && el >= max)
            || samples.len() >= 200_000
        {
            break;
        }
    }
    let n = samples.len();
    (median(&mut samples), n)
}

/// Per-table space of a closed tracestore file, read with redb directly (diagnostic for the
/// disk target): one markdown row per table with entries, pages and stored bytes per trace.
pub fn redb_table_stats(path: &Path, traces: usize) -> Vec<String> {
    use redb::{ReadableDatabase, ReadableTableMetadata, TableHandle};
    let db = redb::Database::open(path).expect("open redb file");
    let txn = db.begin_read().expect("read txn");
    let mut out = Vec::new();
    let n = traces.max(1) as f64;
    let mut rows: Vec<(String, u64, u64, u64, u64, u64)> = Vec::new();
    for h in txn.list_tables().expect("tables") {
        let name = h.name().to_string();
        let t = txn.open_untyped_table(h).expect("table");
        let st = t.stats().expect("stats");
        rows.push((
            name,
            t.len().unwrap_or(0),
            st.leaf_pages() + st.branch_pages(),
            st.stored_bytes(),
            st.metadata_bytes(),
            st.fragmented_bytes(),
        ));
    }
    rows.sort_by_key(|r| std::cmp::Reverse(r.2));
    let mut pages_total = 0;
    for (name, len, pages, stored, meta, frag) in &rows {
        pages_total += pages;
        out.push(format!(
            "| {name} | {len} | {pages} | {:.0} | {:.0} | {:.0} | {:.0} |",
            (*pages as f64 * 4096.0) / n,
            *stored as f64 / n,
            *meta as f64 / n,
            *frag as f64 / n
        ));
    }
    out.push(format!(
        "| all tables | | {pages_total} | {:.0} | | | file {:.0} |",
        pages_total as f64 * 4096.0 / n,
        file_len(path) as f64 / n
    ));
    out
}
