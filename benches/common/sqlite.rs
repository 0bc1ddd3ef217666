//! The SQLite peer: its `synchronous` settings, schema, row types, opening, ingest and planner
//! statistics. The reads (the plan of a [`Filter`](super::Filter), its SQL, pages, counts and
//! `get_trace`) are in [`query`], the driver choice in [`plan`]; the schema and the reason for
//! each choice are in the module doc of `common`.

use super::measure::{file_allocated, file_len};
use rusqlite::config::DbConfig;
use rusqlite::{params, Connection, OptionalExtension, Transaction};
use rust_decimal::Decimal;
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use tracestore::{ScoreValue, Status, Timestamp, TraceInput};

mod plan;
mod query;

pub use plan::Stats;

/// SQLite's `synchronous` setting (always in WAL mode).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Sync {
    /// No fsync at all (bulk loads only, paired with tracestore `Durability::Deferred`).
    Off,
    /// fsync at checkpoints only: a commit is not durable.
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

/// The peer's schema; the module doc of `common` gives the reason for each table and index.
pub const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS projects(id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);
CREATE TABLE IF NOT EXISTS names(id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);
CREATE TABLE IF NOT EXISTS tag_names(id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);
CREATE TABLE IF NOT EXISTS models(id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);
CREATE TABLE IF NOT EXISTS traces(
    project INTEGER NOT NULL,
    start_time INTEGER NOT NULL,
    id TEXT NOT NULL,
    name_id INTEGER NOT NULL,
    status INTEGER NOT NULL,
    end_time INTEGER,
    duration_ms INTEGER,
    user_id TEXT,
    session_id TEXT,
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
CREATE UNIQUE INDEX IF NOT EXISTS traces_id ON traces(project, id);
CREATE INDEX IF NOT EXISTS traces_status ON traces(project, status, start_time, id);
CREATE INDEX IF NOT EXISTS traces_name ON traces(project, name_id, status, start_time);
CREATE INDEX IF NOT EXISTS traces_user ON traces(project, user_id, start_time)
    WHERE user_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS traces_cost ON traces(project, cost_pico, start_time, id, duration_ms);
CREATE INDEX IF NOT EXISTS traces_duration ON traces(project, duration_ms, cost_pico)
    WHERE duration_ms IS NOT NULL;
CREATE TABLE IF NOT EXISTS trace_tags(
    project INTEGER NOT NULL,
    tag_id INTEGER NOT NULL,
    start_time INTEGER NOT NULL,
    id TEXT NOT NULL,
    status INTEGER NOT NULL,
    PRIMARY KEY(project, tag_id, start_time, id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS trace_tags_status ON trace_tags(project, tag_id, status, start_time);
CREATE INDEX IF NOT EXISTS trace_tags_trace ON trace_tags(project, start_time, id);
CREATE TABLE IF NOT EXISTS trace_models(
    project INTEGER NOT NULL,
    model_id INTEGER NOT NULL,
    start_time INTEGER NOT NULL,
    id TEXT NOT NULL,
    status INTEGER NOT NULL,
    PRIMARY KEY(project, model_id, start_time, id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS trace_models_status
    ON trace_models(project, model_id, status, start_time);
CREATE INDEX IF NOT EXISTS trace_models_trace ON trace_models(project, start_time, id);
CREATE TABLE IF NOT EXISTS trace_meta(
    project INTEGER NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    start_time INTEGER NOT NULL,
    id TEXT NOT NULL,
    PRIMARY KEY(project, key, value, start_time, id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS spans(
    project INTEGER NOT NULL,
    trace_id TEXT NOT NULL,
    span_id TEXT NOT NULL,
    trace_start INTEGER NOT NULL,
    name TEXT,
    status INTEGER NOT NULL,
    start_time INTEGER,
    end_time INTEGER,
    model_id INTEGER,
    input_tokens INTEGER,
    output_tokens INTEGER,
    total_tokens INTEGER NOT NULL,
    cost TEXT,
    PRIMARY KEY(project, trace_id, span_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS spans_model ON spans(project, model_id, status, trace_start, trace_id);
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
    /// The writer's caches of the dictionaries (names, tag_names, models): text to id.
    names: HashMap<String, i64>,
    tags: HashMap<String, i64>,
    models: HashMap<String, i64>,
    /// Planner statistics per project id, gathered by [`Sqlite::analyze`].
    stats: HashMap<i64, Stats>,
}

/// A trace row as the SQLite peer returns it (the same fields as `tracestore::Trace`).
#[derive(Clone, Debug, PartialEq)]
pub struct SqlTrace {
    pub id: String,
    pub name: String,
    pub status: Status,
    pub start_ms: i64,
    pub end_ms: Option<i64>,
    pub duration_ms: Option<i64>,
    pub tags: Vec<String>,
    pub metadata: String,
    pub user_id: Option<String>,
    pub session_id: Option<String>,
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
    pub models: Vec<(String, u64)>,
}

/// A span row of the peer.
#[derive(Clone, Debug, PartialEq)]
pub struct SqlSpan {
    pub id: String,
    pub name: Option<String>,
    pub status: Status,
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

/// A status as the peer stores it (0 OK, 1 ERROR).
pub fn status_code(s: Status) -> i64 {
    i64::from(s == Status::Error)
}

/// The `(key, value)` rows of `trace_meta` for a metadata object: a string value as is; a
/// number, `true`, `false` or `null` as its JSON text (the canonical text tracestore compares;
/// serde_json prints a number the way it parsed it); objects and arrays never match, so they get
/// no row.
pub fn meta_pairs(m: &serde_json::Map<String, serde_json::Value>) -> Vec<(String, String)> {
    m.iter()
        .filter_map(|(k, v)| match v {
            serde_json::Value::String(s) => Some((k.clone(), s.clone())),
            serde_json::Value::Object(_) | serde_json::Value::Array(_) => None,
            other => Some((k.clone(), other.to_string())),
        })
        .collect()
}

/// The stored row of a trace being re-sent (what a `None` field keeps).
struct OldTrace {
    start: i64,
    created: i64,
    name_id: i64,
    status: i64,
    end: Option<i64>,
    user_id: Option<String>,
    session_id: Option<String>,
    tags: String,
    metadata: String,
}

/// Looks a dictionary value up (inserting it when new), through the writer's cache.
fn dict_id(tx: &Transaction<'_>, cache: &mut HashMap<String, i64>, table: &str, v: &str) -> i64 {
    if let Some(id) = cache.get(v) {
        return *id;
    }
    tx.prepare_cached(&format!("INSERT OR IGNORE INTO {table}(name) VALUES(?1)"))
        .unwrap()
        .execute([v])
        .unwrap();
    let id: i64 = tx
        .prepare_cached(&format!("SELECT id FROM {table} WHERE name=?1"))
        .unwrap()
        .query_row([v], |r| r.get(0))
        .unwrap();
    cache.insert(v.to_string(), id);
    id
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
        // The query planner stability guarantee: a statement is planned once, without looking at
        // its bound values, so rebinding a cached statement never re-prepares it (with STAT4,
        // which the bundled SQLite enables, every rebind of a value the plan looked at would).
        // The application picks the driving index itself (see `plan`).
        conn.set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)
            .expect("QPSG");
        conn.execute_batch(SCHEMA).expect("schema");
        conn.set_prepared_statement_cache_capacity(256);
        Sqlite {
            conn,
            path: path.to_path_buf(),
            projects: HashMap::new(),
            names: HashMap::new(),
            tags: HashMap::new(),
            models: HashMap::new(),
            stats: HashMap::new(),
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

    /// Upserts `traces` in one transaction. A field sent as `None` keeps the stored value;
    /// spans and scores are upserted by id, and the derived totals (exact decimal cost,
    /// tokens, counts, the trace's models) are computed over all of the trace's spans. The
    /// trace's rows in `trace_tags`, `trace_models` and `trace_meta` (which carry its start time
    /// and status) are replaced.
    pub fn ingest(&mut self, project: &str, traces: &[TraceInput]) {
        let p = self.project_id(project);
        let now = Timestamp::now().as_millis();
        let Sqlite {
            conn,
            names,
            tags: tag_ids,
            models,
            ..
        } = self;
        let tx = conn.transaction().expect("begin");
        for t in traces {
            let id = t.id.as_deref().expect("bench traces carry ids");
            let old: Option<OldTrace> = tx
                .prepare_cached(
                    "SELECT start_time, created_at, name_id, status, end_time, user_id, \
                     session_id, tags, metadata FROM traces WHERE project=?1 AND id=?2",
                )
                .unwrap()
                .query_row(params![p, id], |r| {
                    Ok(OldTrace {
                        start: r.get(0)?,
                        created: r.get(1)?,
                        name_id: r.get(2)?,
                        status: r.get(3)?,
                        end: r.get(4)?,
                        user_id: r.get(5)?,
                        session_id: r.get(6)?,
                        tags: r.get(7)?,
                        metadata: r.get(8)?,
                    })
                })
                .optional()
                .unwrap();
            let start = t
                .start_time
                .map(Timestamp::as_millis)
                .or(old.as_ref().map(|o| o.start))
                .expect("a new trace has a start time");
            let name_id = match &t.name {
                Some(n) => dict_id(&tx, names, "names", n),
                None => old.as_ref().expect("a new trace has a name").name_id,
            };
            let status = t
                .status
                .map(status_code)
                .or(old.as_ref().map(|o| o.status))
                .unwrap_or(0);
            let end = t
                .end_time
                .map(Timestamp::as_millis)
                .or(old.as_ref().and_then(|o| o.end));
            let user_id = t
                .user_id
                .clone()
                .or(old.as_ref().and_then(|o| o.user_id.clone()));
            let session_id = t
                .session_id
                .clone()
                .or(old.as_ref().and_then(|o| o.session_id.clone()));
            let tags: Vec<String> = match &t.tags {
                Some(v) => {
                    let mut out: Vec<String> = Vec::new();
                    for tag in v {
                        if !out.contains(tag) {
                            out.push(tag.clone());
                        }
                    }
                    out
                }
                None => old
                    .as_ref()
                    .map(|o| {
                        o.tags
                            .split(',')
                            .filter(|s| !s.is_empty())
                            .map(str::to_string)
                            .collect()
                    })
                    .unwrap_or_default(),
            };
            let metadata = match &t.metadata {
                Some(m) => serde_json::to_string(m).unwrap(),
                None => old
                    .as_ref()
                    .map_or_else(|| "{}".to_string(), |o| o.metadata.clone()),
            };
            let created = old.as_ref().map_or(now, |o| o.created);
            if let Some(o) = &old {
                for table in ["trace_tags", "trace_models"] {
                    tx.prepare_cached(&format!(
                        "DELETE FROM {table} WHERE project=?1 AND start_time=?2 AND id=?3"
                    ))
                    .unwrap()
                    .execute(params![p, o.start, id])
                    .unwrap();
                }
                let old_meta: serde_json::Map<String, serde_json::Value> =
                    serde_json::from_str(&o.metadata).unwrap_or_default();
                let mut del = tx
                    .prepare_cached(
                        "DELETE FROM trace_meta WHERE project=?1 AND key=?2 AND value=?3 \
                         AND start_time=?4 AND id=?5",
                    )
                    .unwrap();
                for (k, v) in meta_pairs(&old_meta) {
                    del.execute(params![p, k, v, o.start, id]).unwrap();
                }
                tx.prepare_cached(
                    "DELETE FROM traces WHERE project=?1 AND start_time=?2 AND id=?3",
                )
                .unwrap()
                .execute(params![p, o.start, id])
                .unwrap();
                if o.start != start {
                    tx.prepare_cached(
                        "UPDATE spans SET trace_start=?1 WHERE project=?2 AND trace_id=?3",
                    )
                    .unwrap()
                    .execute(params![start, p, id])
                    .unwrap();
                }
            }
            // Spans, and the totals over them (over the stored ones too on a re-send).
            let mut cost = Decimal::ZERO;
            let mut tokens = 0u64;
            let mut model_set: HashSet<i64> = HashSet::new();
            {
                let mut ins_span = tx
                    .prepare_cached(
                        "INSERT OR REPLACE INTO spans(project, trace_id, span_id, trace_start, \
                         name, status, start_time, end_time, model_id, input_tokens, \
                         output_tokens, total_tokens, cost) \
                         VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
                    )
                    .unwrap();
                for s in &t.spans {
                    let tt = s
                        .total_tokens
                        .unwrap_or(s.input_tokens.unwrap_or(0) + s.output_tokens.unwrap_or(0));
                    let model = s
                        .model
                        .as_deref()
                        .map(|m| dict_id(&tx, models, "models", m));
                    if old.is_none() {
                        tokens += tt;
                        if let Some(c) = s.cost {
                            cost += c;
                        }
                        model_set.extend(model);
                    }
                    ins_span
                        .execute(params![
                            p,
                            id,
                            s.id.as_deref().unwrap_or(""),
                            start,
                            s.name,
                            s.status.map_or(0, status_code),
                            s.start_time.map(Timestamp::as_millis),
                            s.end_time.map(Timestamp::as_millis),
                            model,
                            s.input_tokens.map(|v| v as i64),
                            s.output_tokens.map(|v| v as i64),
                            tt as i64,
                            s.cost.map(|c| c.normalize().to_string()),
                        ])
                        .unwrap();
                }
            }
            let mut span_count = t.spans.len() as i64;
            if old.is_some() {
                let mut st = tx
                    .prepare_cached(
                        "SELECT model_id, total_tokens, cost FROM spans \
                         WHERE project=?1 AND trace_id=?2",
                    )
                    .unwrap();
                let mut rows = st.query(params![p, id]).unwrap();
                span_count = 0;
                while let Some(r) = rows.next().unwrap() {
                    span_count += 1;
                    model_set.extend(r.get::<_, Option<i64>>(0).unwrap());
                    tokens += r.get::<_, i64>(1).unwrap() as u64;
                    if let Some(c) = r.get::<_, Option<String>>(2).unwrap() {
                        cost += c.parse::<Decimal>().unwrap();
                    }
                }
            }
            {
                let mut ins_score = tx
                    .prepare_cached(
                        "INSERT OR REPLACE INTO scores(project, trace_id, score_id, name, value, \
                         comment) VALUES(?1, ?2, ?3, ?4, ?5, ?6)",
                    )
                    .unwrap();
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
            }
            let score_count: i64 = if old.is_some() {
                tx.prepare_cached("SELECT count(*) FROM scores WHERE project=?1 AND trace_id=?2")
                    .unwrap()
                    .query_row(params![p, id], |r| r.get(0))
                    .unwrap()
            } else {
                t.scores.len() as i64
            };
            tx.prepare_cached(
                "INSERT INTO traces(project, start_time, id, name_id, status, end_time, \
                 duration_ms, user_id, session_id, tags, metadata, total_cost, cost_pico, \
                 total_tokens, span_count, score_count, created_at) \
                 VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)",
            )
            .unwrap()
            .execute(params![
                p,
                start,
                id,
                name_id,
                status,
                end,
                end.map(|e| e - start),
                user_id,
                session_id,
                tags.join(","),
                metadata,
                cost.normalize().to_string(),
                crate::common::shapes::cost_pico(cost),
                tokens as i64,
                span_count,
                score_count,
                created,
            ])
            .unwrap();
            {
                let mut ins_tag = tx
                    .prepare_cached(
                        "INSERT INTO trace_tags(project, tag_id, start_time, id, status) \
                         VALUES(?1, ?2, ?3, ?4, ?5)",
                    )
                    .unwrap();
                for tag in &tags {
                    let tag_id = dict_id(&tx, tag_ids, "tag_names", tag);
                    ins_tag
                        .execute(params![p, tag_id, start, id, status])
                        .unwrap();
                }
            }
            {
                let mut ins_model = tx
                    .prepare_cached(
                        "INSERT INTO trace_models(project, model_id, start_time, id, status) \
                         VALUES(?1, ?2, ?3, ?4, ?5)",
                    )
                    .unwrap();
                for m in &model_set {
                    ins_model.execute(params![p, m, start, id, status]).unwrap();
                }
            }
            {
                let meta: serde_json::Map<String, serde_json::Value> =
                    serde_json::from_str(&metadata).unwrap_or_default();
                let mut ins_meta = tx
                    .prepare_cached(
                        "INSERT INTO trace_meta(project, key, value, start_time, id) \
                         VALUES(?1, ?2, ?3, ?4, ?5)",
                    )
                    .unwrap();
                for (k, v) in meta_pairs(&meta) {
                    ins_meta.execute(params![p, k, v, start, id]).unwrap();
                }
            }
        }
        tx.commit().expect("commit");
    }

    /// Gathers planner statistics, as an expert would after a bulk load: SQLite's `ANALYZE`
    /// (for the planner's inner choices), then the application's per-value counts and value
    /// samples (see [`Stats`]) that pick the driving index of each query.
    pub fn analyze(&mut self) {
        self.conn.execute_batch("ANALYZE;").expect("analyze");
        self.stats = Stats::gather(&self.conn);
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
