//! The SQLite peer: its `synchronous` settings, schema, row types, opening and ingest. The
//! filtered page queries and `get_trace` are in [`query`]; the schema choices are described in
//! the module doc of `common`.

use super::measure::{file_allocated, file_len};
use rusqlite::{params, Connection, OptionalExtension};
use rust_decimal::Decimal;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use tracestore::{ScoreValue, Status, Timestamp, TraceInput};

mod query;

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
    cost_pico INTEGER NOT NULL,
    total_tokens INTEGER NOT NULL,
    span_count INTEGER NOT NULL,
    score_count INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY(project, start_time, id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS traces_status ON traces(project, status, start_time);
CREATE UNIQUE INDEX IF NOT EXISTS traces_id ON traces(project, id);
CREATE INDEX IF NOT EXISTS traces_cost ON traces(project, cost_pico, start_time, id);
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

/// The peer's total and facets of a filter.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SqlCounts {
    pub total: u64,
    pub error: u64,
    pub names: Vec<(String, u64)>,
    pub tags: Vec<(String, u64)>,
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
                     total_cost, total_tokens, span_count, score_count, created_at, cost_pico) \
                     VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
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
                        crate::common::shapes::cost_pico(cost),
                    ])
                    .unwrap();
                for tag in &tags {
                    ins_tag.execute(params![p, tag, start, id]).unwrap();
                }
            }
        }
        tx.commit().expect("commit");
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
