//! The ClickHouse engine's tables, their rows, and the versioned migrations that create them.
//!
//! Every table is a `ReplacingMergeTree(version)`: a write never updates a row, it inserts a
//! newer version of it under the same sorting key, and a delete inserts a newer version with
//! `deleted = 1`. Reads use `FINAL`, which keeps the newest version of each key, and then skip
//! deleted rows. Values the filters test are columns; what only the response needs is the same
//! versioned record bytes the embedded engine stores (`schema::records`), in a `String` column.
//!
//! Only SQL that ClickHouse 18.16 and current releases both accept is used: times are `Int64`
//! milliseconds (no `DateTime64`), no skip indexes, no `Map`, no lightweight deletes.

use serde::{Deserialize, Serialize};

/// The schema version this build writes, kept in the `meta` table.
pub(crate) const SCHEMA_VERSION: u32 = 1;

/// The migrations, by the version they bring the schema to. Each statement is idempotent
/// (`IF NOT EXISTS`), so a migration interrupted half-way is simply run again. `{db}` is the
/// database, `{on}` is ` ON CLUSTER name` or empty, `{engine}` the table engine (replicated
/// tables are the operator's choice; see the user docs).
pub(crate) const MIGRATIONS: &[(u32, &[&str])] = &[(
    1,
    &[
        "CREATE TABLE IF NOT EXISTS {db}.meta{local}{on} (
            key String, value String, version UInt64
        ) ENGINE = ReplacingMergeTree(version) ORDER BY key",
        "CREATE TABLE IF NOT EXISTS {db}.traces{local}{on} (
            project String, start_ms Int64, id String, version UInt64, deleted UInt8,
            status UInt8, name String, name_lower String, tags Array(String),
            user_id Nullable(String), session_id Nullable(String), meta Array(String),
            running UInt8, duration_ms UInt64, cost_key String, tokens UInt64,
            span_names Array(String), span_models Array(String), span_kinds Array(UInt8),
            span_statuses Array(UInt8), models Array(String), body String
        ) ENGINE = ReplacingMergeTree(version) ORDER BY (project, start_ms, id)",
        "CREATE TABLE IF NOT EXISTS {db}.trace_ids{local}{on} (
            project String, id String, start_ms Int64, version UInt64, deleted UInt8
        ) ENGINE = ReplacingMergeTree(version) ORDER BY (project, id)",
        "CREATE TABLE IF NOT EXISTS {db}.spans{local}{on} (
            project String, trace_id String, child_id String, version UInt64, deleted UInt8,
            record String
        ) ENGINE = ReplacingMergeTree(version) ORDER BY (project, trace_id, child_id)",
        "CREATE TABLE IF NOT EXISTS {db}.scores{local}{on} (
            project String, trace_id String, child_id String, version UInt64, deleted UInt8,
            record String
        ) ENGINE = ReplacingMergeTree(version) ORDER BY (project, trace_id, child_id)",
        "CREATE TABLE IF NOT EXISTS {db}.payloads{local}{on} (
            project String, trace_id String, child_id String, version UInt64, deleted UInt8,
            record String
        ) ENGINE = ReplacingMergeTree(version) ORDER BY (project, trace_id, child_id)",
        "CREATE TABLE IF NOT EXISTS {db}.api_keys{local}{on} (
            hash String, version UInt64, record String
        ) ENGINE = ReplacingMergeTree(version) ORDER BY hash",
    ],
)];

/// The tables, in creation order (a cluster gets a `Distributed` table over each local one).
pub(crate) const TABLES: &[&str] = &[
    "meta",
    "traces",
    "trace_ids",
    "spans",
    "scores",
    "payloads",
    "api_keys",
];

/// The sharding key of each table on a cluster: a trace and everything under it live on one
/// shard, so a trace's read never merges shards and `FINAL` sees every version of a row.
pub(crate) fn shard_key(table: &str) -> &'static str {
    match table {
        "traces" | "trace_ids" => "cityHash64(project, id)",
        "spans" | "scores" | "payloads" => "cityHash64(project, trace_id)",
        "api_keys" => "cityHash64(hash)",
        _ => "cityHash64(key)",
    }
}

/// A row of `traces`: the columns the filters, orders and facets read, and the body record.
#[derive(Clone, Debug, clickhouse::Row, Serialize, Deserialize)]
pub(crate) struct TraceRow {
    pub project: String,
    pub start_ms: i64,
    pub id: String,
    pub version: u64,
    pub deleted: u8,
    pub status: u8,
    pub name: String,
    /// `name` lowercased as `str::to_lowercase` does: the name filter is a byte substring of it.
    pub name_lower: String,
    pub tags: Vec<String>,
    pub user_id: Option<String>,
    pub session_id: Option<String>,
    /// `key=value` of each metadata pair a filter can match (`query::filter::metadata_pairs`).
    pub meta: Vec<String>,
    /// 1 while the trace has no end time.
    pub running: u8,
    /// `durationMs`, 0 while running.
    pub duration_ms: u64,
    /// The exact total cost as 64 hex digits of (integer part, fraction scaled to 28 digits):
    /// comparing two keys as strings compares the amounts.
    pub cost_key: String,
    pub tokens: u64,
    /// Per span, in parallel: its name lowercased (empty when it has none), `=` and its model
    /// (empty when it has none), its kind code and its status code. The span conditions test
    /// them with one `arrayExists`, so that every condition holds on the same span.
    pub span_names: Vec<String>,
    pub span_models: Vec<String>,
    pub span_kinds: Vec<u8>,
    pub span_statuses: Vec<u8>,
    /// The distinct models of the spans (the models facet).
    pub models: Vec<String>,
    /// `schema::encode_trace_body`.
    #[serde(with = "serde_bytes")]
    pub body: Vec<u8>,
}

/// A row of `trace_ids`: where a trace's row is, by id.
#[derive(Clone, Debug, clickhouse::Row, Serialize, Deserialize)]
pub(crate) struct IdRow {
    pub project: String,
    pub id: String,
    pub start_ms: i64,
    pub version: u64,
    pub deleted: u8,
}

/// A row of `spans`, `scores` or `payloads`: a child record under its trace.
#[derive(Clone, Debug, clickhouse::Row, Serialize, Deserialize)]
pub(crate) struct ChildRow {
    pub project: String,
    pub trace_id: String,
    pub child_id: String,
    pub version: u64,
    pub deleted: u8,
    #[serde(with = "serde_bytes")]
    pub record: Vec<u8>,
}

/// A row of `api_keys`.
#[derive(Clone, Debug, clickhouse::Row, Serialize, Deserialize)]
pub(crate) struct ApiKeyRow {
    pub hash: String,
    pub version: u64,
    #[serde(with = "serde_bytes")]
    pub record: Vec<u8>,
}

/// A row of `meta`.
#[derive(Clone, Debug, clickhouse::Row, Serialize, Deserialize)]
pub(crate) struct MetaRow {
    pub key: String,
    pub value: String,
    pub version: u64,
}

/// What a list query reads of a trace row.
#[derive(Clone, Debug, clickhouse::Row, Deserialize)]
pub(crate) struct ListRow {
    pub start_ms: i64,
    pub id: String,
    pub version: u64,
    pub status: u8,
    #[serde(with = "serde_bytes")]
    pub body: Vec<u8>,
}
