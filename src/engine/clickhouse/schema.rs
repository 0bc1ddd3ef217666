//! The ClickHouse engine's tables, their rows, and the versioned migrations that create them.
//!
//! Every table is a `ReplacingMergeTree(version)`: a write never updates a row, it inserts a
//! newer version of it under the same sorting key, and a delete inserts a newer version with
//! `deleted = 1`. Reads use `FINAL`, which keeps the newest version of each key, and then skip
//! deleted rows. Values the filters test are columns; what only the response needs is the same
//! versioned record bytes the embedded engine stores (`schema::records`), in a `String` column.
//!
//! The base schema and every query are SQL that ClickHouse 18.16 and current releases both
//! accept: times are `Int64` milliseconds, no `Map`. What only newer servers have comes as
//! [`FEATURES`], each applied when the server's version allows it and recorded in `meta`, so a
//! server upgraded later gains it on the next start: skip indexes, a `DateTime64` column and
//! lightweight deletes.

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

/// A ClickHouse server's version, as (major, minor).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct ServerVersion(pub u32, pub u32);

impl ServerVersion {
    /// Reads `SELECT version()`'s answer (`18.16.1`, `26.9.2.1`); `None` when it is not one.
    pub(crate) fn parse(text: &str) -> Option<ServerVersion> {
        let mut parts = text.trim().split('.');
        let major = parts.next()?.parse().ok()?;
        let minor = parts.next()?.parse().ok()?;
        Some(ServerVersion(major, minor))
    }
}

/// A feature of newer ClickHouse servers the engine uses where the server has it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Feature {
    /// Skip indexes on `traces`: bloom filters on the id, the user and session ids, the tags and
    /// the metadata pairs, and 3-gram bloom filters on the lowercased name (the name filter is a
    /// `LIKE '%…%'`, which they serve). They skip granules under `FINAL` only where the server's
    /// `use_skip_indexes_if_final_exact_mode` keeps the answer exact (on by default from 25.x);
    /// elsewhere they are kept and unused, never trusted inexactly.
    SkipIndexes,
    /// `traces.start_time`, `DateTime64(3, 'UTC')`, an `ALIAS` of `start_ms` (no storage): for
    /// dashboards, `TTL` and SQL by hand. The engine's own SQL reads `start_ms` on every server.
    DateTime64,
    /// A trace's spans, scores and payloads are removed by a lightweight `DELETE` when the trace
    /// is deleted, instead of being read back and overwritten by tombstone rows: no payload is
    /// read to delete it, and its bytes are gone from the next query on.
    LightweightDelete,
}

/// A feature's name in `meta` (`feature.NAME`), its first server version, its DDL (templated as
/// `MIGRATIONS`'), and whether the DDL also runs on a cluster's `Distributed` tables (for a
/// column, which they must show too).
pub(crate) struct FeatureDef {
    pub feature: Feature,
    pub name: &'static str,
    pub since: ServerVersion,
    pub ddl: &'static [&'static str],
    pub distributed_too: bool,
}

/// The features, in the order they are applied.
pub(crate) const FEATURES: &[FeatureDef] = &[
    FeatureDef {
        feature: Feature::SkipIndexes,
        name: "skip_indexes",
        since: ServerVersion(22, 8),
        ddl: &[
            "ALTER TABLE {db}.traces{local}{on} ADD INDEX IF NOT EXISTS id_bloom id \
             TYPE bloom_filter(0.01) GRANULARITY 1",
            "ALTER TABLE {db}.traces{local}{on} ADD INDEX IF NOT EXISTS user_bloom user_id \
             TYPE bloom_filter(0.01) GRANULARITY 1",
            "ALTER TABLE {db}.traces{local}{on} ADD INDEX IF NOT EXISTS session_bloom session_id \
             TYPE bloom_filter(0.01) GRANULARITY 1",
            "ALTER TABLE {db}.traces{local}{on} ADD INDEX IF NOT EXISTS tags_bloom tags \
             TYPE bloom_filter(0.01) GRANULARITY 1",
            "ALTER TABLE {db}.traces{local}{on} ADD INDEX IF NOT EXISTS meta_bloom meta \
             TYPE bloom_filter(0.01) GRANULARITY 1",
            "ALTER TABLE {db}.traces{local}{on} ADD INDEX IF NOT EXISTS name_ngrams name_lower \
             TYPE ngrambf_v1(3, 8192, 3, 0) GRANULARITY 1",
            // Builds the indexes for rows written before they existed (a background mutation).
            "ALTER TABLE {db}.traces{local}{on} MATERIALIZE INDEX id_bloom",
            "ALTER TABLE {db}.traces{local}{on} MATERIALIZE INDEX user_bloom",
            "ALTER TABLE {db}.traces{local}{on} MATERIALIZE INDEX session_bloom",
            "ALTER TABLE {db}.traces{local}{on} MATERIALIZE INDEX tags_bloom",
            "ALTER TABLE {db}.traces{local}{on} MATERIALIZE INDEX meta_bloom",
            "ALTER TABLE {db}.traces{local}{on} MATERIALIZE INDEX name_ngrams",
        ],
        distributed_too: false,
    },
    FeatureDef {
        feature: Feature::DateTime64,
        name: "datetime64",
        since: ServerVersion(22, 8),
        ddl: &[
            "ALTER TABLE {db}.traces{local}{on} ADD COLUMN IF NOT EXISTS start_time \
                DateTime64(3, 'UTC') ALIAS fromUnixTimestamp64Milli(start_ms, 'UTC')",
        ],
        distributed_too: true,
    },
    FeatureDef {
        feature: Feature::LightweightDelete,
        name: "lightweight_delete",
        since: ServerVersion(23, 3),
        ddl: &[],
        distributed_too: false,
    },
];

/// The features a server of `version` has.
pub(crate) fn features_of(version: ServerVersion) -> Vec<Feature> {
    FEATURES
        .iter()
        .filter(|f| version >= f.since)
        .map(|f| f.feature)
        .collect()
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_parse_and_gate_the_features() {
        assert_eq!(ServerVersion::parse("18.16.1"), Some(ServerVersion(18, 16)));
        assert_eq!(
            ServerVersion::parse("26.9.2.1\n"),
            Some(ServerVersion(26, 9))
        );
        assert_eq!(ServerVersion::parse("24"), None);
        assert_eq!(ServerVersion::parse("x.y"), None);
        assert!(features_of(ServerVersion(18, 16)).is_empty());
        assert_eq!(
            features_of(ServerVersion(22, 8)),
            [Feature::SkipIndexes, Feature::DateTime64]
        );
        assert_eq!(
            features_of(ServerVersion(24, 8)),
            [
                Feature::SkipIndexes,
                Feature::DateTime64,
                Feature::LightweightDelete
            ]
        );
        // Minor versions compare as numbers: 22.10 is after 22.8.
        assert!(ServerVersion(22, 10) > ServerVersion(22, 8));
    }
}
