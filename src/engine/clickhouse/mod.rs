//! The ClickHouse engine (feature `clickhouse`): the same operations as the embedded engine,
//! served from a ClickHouse server or cluster over HTTP with the official `clickhouse` client.
//!
//! - `schema`: the tables, their rows and the versioned migrations;
//! - `sql`: normalized filters and orders as SQL with bound values;
//! - `write`: ingest as load → pure merge → recomputed aggregates → new row versions.
//!
//! The engine drives the async client on a small tokio runtime of its own, so `Store` keeps
//! its blocking API; like every `Store` call, a call blocks its thread (an async caller runs
//! it on a blocking thread, as the server does). What differs from the embedded engine (no
//! cross-table transactions, reads deduplicated by `FINAL`) is in ARCHITECTURE.md, "The
//! ClickHouse engine".

mod schema;
mod sql;
mod write;

use super::{EnginePage, Query, Resume, TableUsage, WholeTrace};

pub(crate) mod copy;
use crate::error::{Error, FieldError, Result};
use crate::limits::MAX_FACET_VALUES;
use crate::model::{FacetValue, Facets, IngestSummary, Status, StatusCounts, Trace, TraceDetail};
use crate::query::{Explain, PlanKind, Position};
use crate::schema::{decode_trace_body, ApiKeyRecord};
use crate::time::Timestamp;
use crate::validate::ValidTrace;
use crate::verify::Violation;
pub use copy::MigrateProgress;
use schema::*;
use sql::Sql;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// Where and how to reach ClickHouse.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ClickHouseConfig {
    /// The HTTP interface, e.g. `http://127.0.0.1:8123`.
    pub url: String,
    /// The database the engine creates its tables in (`tracestore` by default).
    pub database: String,
    /// A cluster name from the server's `remote_servers`: tables are created as local tables
    /// with a `Distributed` table over them, sharded by trace; `ON CLUSTER` unless
    /// `shard_urls` is given.
    pub cluster: Option<String>,
    /// With `cluster`: the HTTP interface of every server of the cluster, for a cluster without
    /// distributed DDL (no ZooKeeper or Keeper): the engine then creates the tables on each
    /// server itself.
    pub shard_urls: Vec<String>,
    /// The user (the server's `default` user when unset).
    pub user: Option<String>,
    /// The user's password (none when unset).
    pub password: Option<String>,
}

impl ClickHouseConfig {
    /// A configuration for the server at `url`, database `tracestore`.
    pub fn new(url: impl Into<String>) -> Self {
        ClickHouseConfig {
            url: url.into(),
            database: "tracestore".to_string(),
            cluster: None,
            shard_urls: Vec::new(),
            user: None,
            password: None,
        }
    }
    /// The database to use.
    pub fn database(mut self, name: impl Into<String>) -> Self {
        self.database = name.into();
        self
    }
    /// A cluster to create the tables on.
    pub fn cluster(mut self, name: impl Into<String>) -> Self {
        self.cluster = Some(name.into());
        self
    }
    /// Every server of the cluster, for a cluster without distributed DDL.
    pub fn shard_urls(mut self, urls: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.shard_urls = urls.into_iter().map(Into::into).collect();
        self
    }
    /// Credentials.
    pub fn credentials(mut self, user: impl Into<String>, password: impl Into<String>) -> Self {
        self.user = Some(user.into());
        self.password = Some(password.into());
        self
    }
}

/// A database or cluster name goes into DDL as an identifier, so it is held to a safe
/// alphabet instead of being quoted.
fn check_identifier(field: &str, s: &str) -> Result<()> {
    if s.is_empty()
        || s.len() > 64
        || !s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        || s.as_bytes()[0].is_ascii_digit()
    {
        return Err(Error::invalid(
            field,
            "must be 1 to 64 characters of [A-Za-z0-9_], not starting with a digit",
        ));
    }
    Ok(())
}

/// Maps a client error: a server that cannot be reached (or a timeout) is `UNAVAILABLE`, which
/// a caller may retry; anything else is a storage error whose details stay out of responses.
fn ch_error(e: clickhouse::error::Error) -> Error {
    use clickhouse::error::Error as E;
    match e {
        E::Network(_) | E::TimedOut => {
            Error::unavailable("the ClickHouse server cannot be reached; retry later")
        }
        other => Error::storage(other),
    }
}

/// Every version is larger than the last one this process wrote and than the clock's
/// microseconds, so a newer write replaces an older one across restarts.
static LAST_VERSION: AtomicU64 = AtomicU64::new(0);

fn next_version(floor: u64) -> u64 {
    let now = u64::try_from(Timestamp::now().as_millis()).unwrap_or(0) * 1000;
    let mut prev = LAST_VERSION.load(Ordering::Relaxed);
    loop {
        let v = (prev + 1).max(now).max(floor);
        match LAST_VERSION.compare_exchange(prev, v, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => return v,
            Err(p) => prev = p,
        }
    }
}

/// The client and the names the SQL is written with.
pub(crate) struct Inner {
    client: clickhouse::Client,
    /// Where statements on the local tables run (DDL, lightweight deletes).
    ddl: DdlTargets,
    /// What the server (every server of a cluster) has of [`FEATURES`].
    features: Vec<Feature>,
}

/// Where a statement on the tables themselves runs: the one server, a cluster by `ON CLUSTER`,
/// or each server of a cluster given by its URLs; and the names of the local tables there.
pub(crate) struct DdlTargets {
    clients: Vec<clickhouse::Client>,
    db: String,
    /// `_local` on a cluster, else empty.
    local: &'static str,
    /// ` ON CLUSTER name`, or empty.
    on: String,
}

impl DdlTargets {
    fn of(base: &clickhouse::Client, cfg: &ClickHouseConfig) -> DdlTargets {
        let (clients, on) = match &cfg.cluster {
            Some(_) if !cfg.shard_urls.is_empty() => (
                cfg.shard_urls
                    .iter()
                    .map(|u| base.clone().with_url(u.clone()))
                    .collect(),
                String::new(),
            ),
            Some(c) => (vec![base.clone()], format!(" ON CLUSTER {c}")),
            None => (vec![base.clone()], String::new()),
        };
        DdlTargets {
            clients,
            db: cfg.database.clone(),
            local: if cfg.cluster.is_some() { "_local" } else { "" },
            on,
        }
    }

    /// A template of `MIGRATIONS` or `FEATURES` for these targets; `local = false` names a
    /// cluster's `Distributed` tables instead of its local ones.
    fn fill(&self, template: &str, local: bool) -> String {
        fill(
            template,
            &self.db,
            if local { self.local } else { "" },
            &self.on,
        )
    }
}

/// Fills a DDL template's `{db}`, `{local}` and `{on}`.
fn fill(template: &str, db: &str, local: &str, on: &str) -> String {
    template
        .replace("{db}", db)
        .replace("{local}", local)
        .replace("{on}", on)
}

/// The statements that remove the children of traces `ids` of `project` on a server with
/// lightweight deletes, templated as `MIGRATIONS`, with their bound values (`?`): the project,
/// then the ids.
fn child_delete_sql() -> Vec<String> {
    ["spans", "scores", "payloads"]
        .iter()
        .map(|t| {
            format!("DELETE FROM {{db}}.{t}{{local}}{{on}} WHERE project = ? AND has(?, trace_id)")
        })
        .collect()
}

impl Inner {
    fn query(&self, text: &str) -> clickhouse::query::Query {
        self.client.query(text)
    }

    async fn insert<T>(&self, table: &str, rows: &[T]) -> Result<()>
    where
        T: clickhouse::Row + clickhouse::RowWrite + serde::Serialize,
        for<'a> T: clickhouse::Row<Value<'a> = T>,
    {
        if rows.is_empty() {
            return Ok(());
        }
        let mut ins = self.client.insert::<T>(table).await.map_err(ch_error)?;
        for r in rows {
            ins.write(r).await.map_err(ch_error)?;
        }
        ins.end().await.map_err(ch_error)
    }

    /// Where the live traces among `ids` start.
    async fn locate(&self, project: &str, ids: &[String]) -> Result<Vec<(String, i64)>> {
        #[derive(clickhouse::Row, serde::Deserialize)]
        struct R {
            id: String,
            start_ms: i64,
        }
        let rows: Vec<R> = self
            .query(
                "SELECT id, start_ms FROM trace_ids FINAL WHERE project = ? \
                 AND id IN (SELECT arrayJoin(?)) AND deleted = 0",
            )
            .bind(project)
            .bind(ids)
            .fetch_all()
            .await
            .map_err(ch_error)?;
        Ok(rows.into_iter().map(|r| (r.id, r.start_ms)).collect())
    }

    /// The live trace rows at these (start, id) keys.
    async fn trace_rows(&self, project: &str, keys: &[(i64, String)]) -> Result<Vec<ListRow>> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let lo = keys.iter().map(|k| k.0).min().unwrap_or(0);
        let hi = keys.iter().map(|k| k.0).max().unwrap_or(0);
        let ids: Vec<&str> = keys.iter().map(|k| k.1.as_str()).collect();
        let rows: Vec<ListRow> = self
            .query(
                "SELECT start_ms, id, version, status, body FROM traces FINAL \
                 WHERE project = ? AND start_ms >= ? AND start_ms <= ? \
                 AND id IN (SELECT arrayJoin(?)) AND deleted = 0",
            )
            .bind(project)
            .bind(lo)
            .bind(hi)
            .bind(ids)
            .fetch_all()
            .await
            .map_err(ch_error)?;
        Ok(rows
            .into_iter()
            .filter(|r| keys.iter().any(|k| k.0 == r.start_ms && k.1 == r.id))
            .collect())
    }

    /// The live children of these traces in one child table.
    async fn children(
        &self,
        table: &'static str,
        project: &str,
        traces: &[String],
    ) -> Result<Vec<ChildRow>> {
        if traces.is_empty() {
            return Ok(Vec::new());
        }
        self.query(&format!(
            "SELECT project, trace_id, child_id, version, deleted, record FROM {table} FINAL \
             WHERE project = ? AND trace_id IN (SELECT arrayJoin(?)) AND deleted = 0"
        ))
        .bind(project)
        .bind(traces)
        .fetch_all()
        .await
        .map_err(ch_error)
    }

    /// The newest value of a meta key.
    async fn meta(&self, key: &str) -> Result<Option<String>> {
        let rows: Vec<MetaRow> = self
            .query("SELECT key, value, version FROM meta FINAL WHERE key = ?")
            .bind(key)
            .fetch_all()
            .await
            .map_err(ch_error)?;
        Ok(rows.into_iter().max_by_key(|r| r.version).map(|r| r.value))
    }

    async fn set_meta(&self, key: &str, value: &str) -> Result<()> {
        self.insert(
            "meta",
            &[MetaRow {
                key: key.to_string(),
                value: value.to_string(),
                version: next_version(0),
            }],
        )
        .await
    }

    /// Writes a batch's rows, children, then traces, then ids, under a version above every
    /// stored one the batch replaces (`floor`), whatever this server's clock says.
    async fn write_rows(&self, mut rows: write::Rows, floor: u64) -> Result<()> {
        rows.stamp(next_version(floor));
        self.insert("spans", &rows.spans).await?;
        self.insert("scores", &rows.scores).await?;
        self.insert("payloads", &rows.payloads).await?;
        self.insert("traces", &rows.traces).await?;
        self.insert("trace_ids", &rows.ids).await
    }

    async fn count(&self, w: &Sql) -> Result<u64> {
        let n: u64 = w
            .bind(self.query(&count_sql(w)))
            .fetch_one()
            .await
            .map_err(ch_error)?;
        Ok(n)
    }

    /// The facets of the matching set: exact counts by `GROUP BY`, cut to the top values in
    /// facet order (count descending, then value) by `FacetValue::top`.
    async fn facets(&self, w: &Sql) -> Result<Facets> {
        #[derive(clickhouse::Row, serde::Deserialize)]
        struct Group {
            facet_value: String,
            facet_n: u64,
        }
        let mut out: Vec<Vec<FacetValue>> = Vec::new();
        for facet in FACETS {
            let groups: Vec<Group> = w
                .bind(self.query(&facet_sql(w, facet)))
                .fetch_all()
                .await
                .map_err(ch_error)?;
            out.push(FacetValue::top(
                groups.into_iter().map(|g| (g.facet_value, g.facet_n)),
            ));
        }
        #[derive(clickhouse::Row, serde::Deserialize)]
        struct Counts {
            facet_ok: u64,
            facet_all: u64,
        }
        let c: Counts = w
            .bind(self.query(&status_sql(w)))
            .fetch_one()
            .await
            .map_err(ch_error)?;
        let models = out.pop().unwrap_or_default();
        let tags = out.pop().unwrap_or_default();
        let names = out.pop().unwrap_or_default();
        Ok(Facets {
            status: StatusCounts {
                ok: c.facet_ok,
                error: c.facet_all - c.facet_ok,
            },
            names,
            tags,
            models,
        })
    }

    /// One page: `limit` traces after `resume` in the query's order. Under a startTime order
    /// it is read in start-time windows from where the page starts (`windowed_page`), so the
    /// primary key skips every part of the project the page does not reach: a first page and a
    /// deep page cost alike, however old the project.
    async fn page(
        &self,
        project: &str,
        q: &Query<'_>,
        after: Option<&Position>,
        limit: u32,
    ) -> Result<Vec<Trace>> {
        let mut w = sql::filters(project, q.filters);
        if let Some(p) = after {
            w.and(sql::after(q.order, p));
        }
        let rows = if sql::key_columns(q.order).is_none() {
            self.windowed_page(project, q, after, &w, limit).await?
        } else {
            self.rows(&w, q.order, limit).await?
        };
        rows.into_iter()
            .map(|r| {
                crate::convert::trace_of_body(
                    r.start_ms,
                    &r.id,
                    r.status,
                    decode_trace_body(&r.body)?,
                )
            })
            .collect()
    }

    async fn rows(&self, w: &Sql, order: crate::query::Order, limit: u32) -> Result<Vec<ListRow>> {
        w.bind(self.query(&page_sql(w, order, limit)))
            .fetch_all()
            .await
            .map_err(ch_error)
    }

    /// A startTime-ordered page, window by window in the order's direction (`next_window`),
    /// until it has `limit` rows or the windows cover the range the filters,
    /// the cursor and the stored rows leave.
    async fn windowed_page(
        &self,
        project: &str,
        q: &Query<'_>,
        after: Option<&Position>,
        w: &Sql,
        limit: u32,
    ) -> Result<Vec<ListRow>> {
        let Some(stored) = self.start_range(project).await? else {
            return Ok(Vec::new());
        };
        let (lo, hi) = q.filters.window();
        let mut range = (lo.max(stored.min), hi.min(stored.max.saturating_add(1)));
        if let Some(p) = after {
            if q.order.descending() {
                range.1 = range.1.min(p.start_ms.saturating_add(1));
            } else {
                range.0 = range.0.max(p.start_ms);
            }
        }
        let mut out: Vec<ListRow> = Vec::new();
        let mut width = Some(first_window(&stored, limit));
        let mut round = 0;
        while range.0 < range.1 {
            let (win, rest) = split(range, width, q.order.descending());
            let mut sql = w.clone();
            sql.and(Sql::window(win.0, win.1));
            let missing = limit - out.len() as u32;
            let rows = self.rows(&sql, q.order, missing).await?;
            let got = rows.len() as u32;
            out.extend(rows);
            if got >= missing {
                break;
            }
            range = rest;
            width = next_window(round, win.1 - win.0, got, missing - got);
            round += 1;
        }
        Ok(out)
    }

    /// The smallest and largest startTime of the project's stored row versions (deleted and
    /// replaced ones included: bounds, not answers) and how many there are; `None` when none.
    /// No `FINAL`: it reads two narrow columns of the project's key range.
    async fn start_range(&self, project: &str) -> Result<Option<StartRange>> {
        let r: StartRange = self
            .query(
                "SELECT min(start_ms) AS min, max(start_ms) AS max, count() AS rows \
                 FROM traces WHERE project = ?",
            )
            .bind(project)
            .fetch_one()
            .await
            .map_err(ch_error)?;
        Ok((r.rows > 0).then_some(r))
    }

    async fn delete(&self, project: &str, ids: &[(String, i64)]) -> Result<()> {
        let trace_ids: Vec<String> = ids.iter().map(|(id, _)| id.clone()).collect();
        let lightweight = self.features.contains(&Feature::LightweightDelete);
        let mut rows = write::Rows::default();
        let tables: &[(&str, u8)] = if lightweight {
            &[]
        } else {
            &[("spans", 0u8), ("scores", 1), ("payloads", 2)]
        };
        for &(table, slot) in tables {
            for mut c in self.children(table, project, &trace_ids).await? {
                c.deleted = 1;
                c.record.clear();
                match slot {
                    0 => rows.spans.push(c),
                    1 => rows.scores.push(c),
                    _ => rows.payloads.push(c),
                }
            }
        }
        for (id, start_ms) in ids {
            rows.traces
                .push(write::trace_tombstone(project, id, *start_ms));
            rows.ids.push(IdRow {
                project: project.to_string(),
                id: id.clone(),
                start_ms: *start_ms,
                version: 0,
                deleted: 1,
            });
        }
        // Ids first: a trace half-deleted is not found by id, and its list row goes next.
        let floor = children_floor(&rows);
        rows.stamp(next_version(floor));
        self.insert("trace_ids", &rows.ids).await?;
        self.insert("traces", &rows.traces).await?;
        if lightweight {
            // Synchronous by default (`lightweight_deletes_sync = 2`): gone when it returns.
            for template in child_delete_sql() {
                for c in &self.ddl.clients {
                    c.query(&self.ddl.fill(&template, true))
                        .bind(project)
                        .bind(trace_ids.as_slice())
                        .execute()
                        .await
                        .map_err(ch_error)?;
                }
            }
            return Ok(());
        }
        self.insert("spans", &rows.spans).await?;
        self.insert("scores", &rows.scores).await?;
        self.insert("payloads", &rows.payloads).await
    }
}

/// The stored startTime range of a project (`Inner::start_range`).
#[derive(Clone, Copy, Debug, clickhouse::Row, serde::Deserialize)]
struct StartRange {
    min: i64,
    max: i64,
    rows: u64,
}

/// The first window of a startTime-ordered page: about twice the span that holds `limit`
/// rows at the project's average density, so that an unfiltered page takes one window.
fn first_window(stored: &StartRange, limit: u32) -> i64 {
    let span = (stored.max as i128 - stored.min as i128 + 1).max(1);
    let w = span * 2 * i128::from(limit.max(1)) / i128::from(stored.rows.max(1));
    w.clamp(1, i64::MAX as i128) as i64
}

/// `[lo, hi)` as the window at its newest end (`desc`) or its oldest, `width` wide (all of it
/// when `None`), and the rest.
fn split((lo, hi): (i64, i64), width: Option<i64>, desc: bool) -> ((i64, i64), (i64, i64)) {
    let Some(width) = width.map(|w| w.max(1)) else {
        return if desc {
            ((lo, hi), (lo, lo))
        } else {
            ((lo, hi), (hi, hi))
        };
    };
    if desc {
        let from = hi.saturating_sub(width).max(lo);
        ((from, hi), (lo, from))
    } else {
        let to = lo.saturating_add(width).min(hi);
        ((lo, to), (to, hi))
    }
}

/// Windows a page reads before it takes the rest of the range in one.
const MAX_SIZED_WINDOWS: u32 = 3;

/// How much wider the window after an empty one is.
const EMPTY_WINDOW_GROWTH: i128 = 64;

/// The width of the next window after window `round` (0 first), `width` wide, gave `got` rows
/// and `missing` more are wanted; `None` takes the rest of the range. Each query pays a round
/// trip and `FINAL`'s fixed cost, so a page takes at most `MAX_SIZED_WINDOWS` sized windows,
/// then the rest: after a window with rows, the next is sized at the density it found to hold
/// twice what is missing (at least twice as wide); after an empty one, `EMPTY_WINDOW_GROWTH`
/// times as wide. A filter rarer than that pays three cheap windows before the full read.
fn next_window(round: u32, width: i64, got: u32, missing: u32) -> Option<i64> {
    if round + 1 >= MAX_SIZED_WINDOWS {
        return None;
    }
    let width = i128::from(width);
    let w = if got == 0 {
        width * EMPTY_WINDOW_GROWTH
    } else {
        (width * 2 * i128::from(missing) / i128::from(got)).max(width * 2)
    };
    Some(w.min(i64::MAX as i128) as i64)
}

/// The facets as (`ARRAY JOIN` clause, grouped expression): names, tags, span models.
const FACETS: [(&str, &str); 3] = [
    ("", "name"),
    ("ARRAY JOIN tags AS tag", "tag"),
    ("ARRAY JOIN models AS model", "model"),
];

/// A page: `limit` rows in `order`.
fn page_sql(w: &Sql, order: crate::query::Order, limit: u32) -> String {
    format!(
        "SELECT start_ms, id, version, status, body FROM traces FINAL WHERE {} ORDER BY {} \
         LIMIT {limit}",
        w.text,
        sql::order_by(order)
    )
}

/// The exact number of matches.
fn count_sql(w: &Sql) -> String {
    format!("SELECT count() FROM traces FINAL WHERE {}", w.text)
}

/// One facet's top values: exact counts, in facet order (count descending, then value).
fn facet_sql(w: &Sql, (from, value): (&str, &str)) -> String {
    format!(
        "SELECT {value} AS facet_value, count() AS facet_n FROM traces FINAL {from} WHERE {} \
         GROUP BY facet_value ORDER BY facet_n DESC, facet_value ASC LIMIT {MAX_FACET_VALUES}",
        w.text
    )
}

/// The status facet: OK among the matches, and all of them.
fn status_sql(w: &Sql) -> String {
    format!(
        "SELECT countIf(status = {}) AS facet_ok, count() AS facet_all FROM traces FINAL \
         WHERE {}",
        Status::Ok.code(),
        w.text
    )
}

/// The SQL a list query's first page, total and facets run, with every bound value inlined as
/// the client escapes it: for checking the engine's SQL on other ClickHouse versions (a test
/// runs these through an embedded modern ClickHouse). Not a stable API.
#[doc(hidden)]
pub fn query_sql(project: &str, params: &[(String, String)]) -> Result<Vec<String>> {
    let req = crate::query::QueryRequest::from_params(
        params.iter().map(|(k, v)| (k.as_str(), v.as_str())),
    )?;
    let w = sql::filters(project, &req.filters);
    let client = clickhouse::Client::default();
    let mut texts = vec![page_sql(&w, req.order(), req.limit() + 1), count_sql(&w)];
    texts.extend(FACETS.iter().map(|f| facet_sql(&w, *f)));
    texts.push(status_sql(&w));
    Ok(texts
        .iter()
        .map(|t| w.bind(client.query(t)).sql_display().to_string())
        .collect())
}

/// The DDL the engine runs for database `db` on one server of `version` (`SELECT version()`'s
/// answer), in order: every migration, then every feature the version has. Not a stable API.
#[doc(hidden)]
pub fn schema_sql(db: &str, version: &str) -> Result<Vec<String>> {
    let features = features_of(server_version(version)?);
    Ok(MIGRATIONS
        .iter()
        .flat_map(|(_, statements)| statements.iter())
        .chain(
            FEATURES
                .iter()
                .filter(|f| features.contains(&f.feature))
                .flat_map(|f| f.ddl.iter()),
        )
        .map(|s| fill(s, db, "", ""))
        .collect())
}

/// The statements a delete of traces `ids` of `project` runs on one server of `version` beyond
/// the tombstone rows every version writes (the lightweight deletes of their children), values
/// inlined as the client escapes them. Not a stable API.
#[doc(hidden)]
pub fn delete_sql(db: &str, version: &str, project: &str, ids: &[String]) -> Result<Vec<String>> {
    if !features_of(server_version(version)?).contains(&Feature::LightweightDelete) {
        return Ok(Vec::new());
    }
    let client = clickhouse::Client::default();
    Ok(child_delete_sql()
        .iter()
        .map(|t| {
            client
                .query(&fill(t, db, "", ""))
                .bind(project)
                .bind(ids)
                .sql_display()
                .to_string()
        })
        .collect())
}

fn server_version(version: &str) -> Result<ServerVersion> {
    ServerVersion::parse(version)
        .ok_or_else(|| Error::invalid("version", format!("{version:?} is not MAJOR.MINOR[...]")))
}

/// One above the newest version among rows read back for a delete.
fn children_floor(rows: &write::Rows) -> u64 {
    rows.spans
        .iter()
        .chain(&rows.scores)
        .chain(&rows.payloads)
        .map(|c| c.version + 1)
        .max()
        .unwrap_or(0)
}

/// The ClickHouse engine.
pub(crate) struct ClickHouseEngine {
    inner: Inner,
    rt: tokio::runtime::Runtime,
    secret: Vec<u8>,
    /// Writes of this process are serialized: a write reads the stored traces it changes, and
    /// two concurrent writes of one trace would each miss the other's children.
    write_lock: Mutex<()>,
    label: String,
}

impl std::fmt::Debug for ClickHouseEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClickHouseEngine")
            .field("at", &self.label)
            .finish_non_exhaustive()
    }
}

impl ClickHouseEngine {
    /// Connects, creates the database and tables (or migrates them), and reads the cursor
    /// secret (created on first start).
    pub(crate) fn open(cfg: &ClickHouseConfig) -> Result<ClickHouseEngine> {
        check_identifier("database", &cfg.database)?;
        if let Some(c) = &cfg.cluster {
            check_identifier("cluster", c)?;
        }
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("tracestore-clickhouse")
            .enable_all()
            .build()
            .map_err(Error::storage)?;
        let mut base = clickhouse::Client::default()
            .with_url(cfg.url.clone())
            .with_validation(false);
        if let Some(u) = &cfg.user {
            base = base.with_user(u.clone());
        }
        if let Some(p) = &cfg.password {
            base = base.with_password(p.clone());
        }
        if cfg.cluster.is_some() {
            base = base.with_setting("insert_distributed_sync", "1");
        }
        let client = base.clone().with_database(cfg.database.clone());
        let mut inner = Inner {
            client,
            ddl: DdlTargets::of(&base, cfg),
            features: Vec::new(),
        };
        let secret = run_blocking(&rt, async {
            migrate(&base, &mut inner, cfg).await?;
            match inner.meta("cursor_secret").await? {
                Some(hex) => decode_hex(&hex),
                None => {
                    let mut s = [0u8; 32];
                    getrandom::fill(&mut s).map_err(|e| Error::internal(e.to_string()))?;
                    inner.set_meta("cursor_secret", &encode_hex(&s)).await?;
                    // Two servers starting at once: the newest version wins for both.
                    let hex = inner
                        .meta("cursor_secret")
                        .await?
                        .ok_or_else(|| Error::corrupted("cursor secret not kept"))?;
                    decode_hex(&hex)
                }
            }
        })?;
        Ok(ClickHouseEngine {
            inner,
            rt,
            secret,
            write_lock: Mutex::new(()),
            label: format!("{} database {}", cfg.url, cfg.database),
        })
    }

    fn block<F>(&self, f: F) -> F::Output
    where
        F: std::future::Future + Send,
        F::Output: Send,
    {
        run_blocking(&self.rt, f)
    }
}

/// Runs `f` to completion on the engine's runtime. A caller inside another tokio runtime (an
/// async test, a service calling `Store` from a task) cannot block on a second runtime on its
/// own thread, so there the future runs on a scoped thread.
fn run_blocking<F>(rt: &tokio::runtime::Runtime, f: F) -> F::Output
where
    F: std::future::Future + Send,
    F::Output: Send,
{
    if tokio::runtime::Handle::try_current().is_ok() {
        std::thread::scope(|s| {
            s.spawn(|| rt.block_on(f))
                .join()
                .unwrap_or_else(|p| std::panic::resume_unwind(p))
        })
    } else {
        rt.block_on(f)
    }
}

fn encode_hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn decode_hex(s: &str) -> Result<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return Err(Error::corrupted("cursor secret: odd hex length"));
    }
    (0..s.len())
        .step_by(2)
        .map(|i| {
            u8::from_str_radix(&s[i..i + 2], 16)
                .map_err(|_| Error::corrupted("cursor secret: not hex"))
        })
        .collect()
}

/// Creates the database, runs every migration newer than the stored schema version, then
/// applies every feature of `FEATURES` the servers' version has and `meta` does not record.
async fn migrate(
    base: &clickhouse::Client,
    inner: &mut Inner,
    cfg: &ClickHouseConfig,
) -> Result<()> {
    let db = &cfg.database;
    let on = inner.ddl.on.clone();
    for t in &inner.ddl.clients {
        t.query(&format!("CREATE DATABASE IF NOT EXISTS {db}{on}"))
            .execute()
            .await
            .map_err(ch_error)?;
    }
    #[derive(clickhouse::Row, serde::Deserialize)]
    struct Exists {
        n: u64,
    }
    let has_meta: Exists = base
        .query("SELECT count() AS n FROM system.tables WHERE database = ? AND name = 'meta'")
        .bind(db.as_str())
        .fetch_one()
        .await
        .map_err(ch_error)?;
    let current: u32 = if has_meta.n == 0 {
        0
    } else {
        match inner.meta("schema_version").await? {
            Some(v) => v
                .parse()
                .map_err(|_| Error::corrupted("schema_version is not a number"))?,
            None => 0,
        }
    };
    if current > SCHEMA_VERSION {
        return Err(Error::invalid(
            "database",
            format!(
                "holds tracestore ClickHouse schema {current}; this build knows up to \
                 {SCHEMA_VERSION}: upgrade tracestore"
            ),
        ));
    }
    for (version, statements) in MIGRATIONS {
        if *version <= current {
            continue;
        }
        for t in &inner.ddl.clients {
            for s in *statements {
                t.query(&inner.ddl.fill(s, true))
                    .execute()
                    .await
                    .map_err(ch_error)?;
            }
            if let Some(cluster) = &cfg.cluster {
                for table in TABLES {
                    t.query(&format!(
                        "CREATE TABLE IF NOT EXISTS {db}.{table}{on} AS {db}.{table}_local \
                         ENGINE = Distributed({cluster}, {db}, {table}_local, {})",
                        shard_key(table)
                    ))
                    .execute()
                    .await
                    .map_err(ch_error)?;
                }
            }
        }
        inner
            .set_meta("schema_version", &version.to_string())
            .await?;
    }
    // The oldest server of a cluster decides.
    let mut oldest: Option<ServerVersion> = None;
    for t in &inner.ddl.clients {
        let text: String = t
            .query("SELECT version()")
            .fetch_one()
            .await
            .map_err(ch_error)?;
        let v = ServerVersion::parse(&text).ok_or_else(|| {
            Error::internal(format!("ClickHouse answered version() with {text:?}"))
        })?;
        oldest = Some(oldest.map_or(v, |o| o.min(v)));
    }
    inner.features = oldest.map(features_of).unwrap_or_default();
    for def in FEATURES {
        if !inner.features.contains(&def.feature) {
            continue;
        }
        let key = format!("feature.{}", def.name);
        if inner.meta(&key).await?.is_some() {
            continue;
        }
        for t in &inner.ddl.clients {
            for s in def.ddl {
                t.query(&inner.ddl.fill(s, true))
                    .execute()
                    .await
                    .map_err(ch_error)?;
                if def.distributed_too && cfg.cluster.is_some() {
                    t.query(&inner.ddl.fill(s, false))
                        .execute()
                        .await
                        .map_err(ch_error)?;
                }
            }
        }
        inner.set_meta(&key, "1").await?;
    }
    Ok(())
}

impl super::Engine for ClickHouseEngine {
    fn name(&self) -> &'static str {
        "clickhouse"
    }

    fn cursor_secret(&self) -> &[u8] {
        &self.secret
    }

    fn check_usable(&self) -> Result<()> {
        Ok(())
    }

    fn ingest(&self, project: &str, batch: Vec<ValidTrace>) -> Result<IngestSummary> {
        let _guard = self.write_lock.lock().expect("write lock");
        let now = Timestamp::now().as_millis();
        self.block(async {
            let ids: Vec<String> = batch.iter().map(|v| v.id.clone()).collect();
            let mut states = write::load(&self.inner, project, &ids).await?;
            let floor = write::version_floor(&states);
            let (summary, rows) = write::apply(project, batch, &mut states, now)?;
            self.inner.write_rows(rows, floor).await?;
            Ok(summary)
        })
    }

    #[cfg(feature = "otlp")]
    fn ingest_otlp(&self, project: &str, traces: Vec<crate::otlp::OtlpTrace>) -> Result<u64> {
        let _guard = self.write_lock.lock().expect("write lock");
        let now = Timestamp::now().as_millis();
        self.block(async {
            let ids: Vec<String> = traces.iter().map(|t| t.trace_id.clone()).collect();
            let mut states = write::load(&self.inner, project, &ids).await?;
            let mut spans = 0u64;
            let mut batch = Vec::with_capacity(traces.len());
            for t in traces {
                spans += t.spans.len() as u64;
                let stored = states.get(&t.trace_id).map(|s| crate::otlp::StoredTrace {
                    tags: s.body.tags.clone(),
                    spans: s
                        .spans
                        .iter()
                        .map(|(id, r)| (id.clone(), r.clone()))
                        .collect(),
                    first: s
                        .payloads
                        .get("")
                        .and_then(|p| p.otlp.clone())
                        .unwrap_or_default(),
                });
                let payloads = states
                    .get(&t.trace_id)
                    .map(|s| s.payloads.clone())
                    .unwrap_or_default();
                let v = crate::otlp::combine(stored, t, &mut |sid| Ok(payloads.get(sid).cloned()))?;
                batch.push(v);
            }
            let floor = write::version_floor(&states);
            let (_, rows) = write::apply(project, batch, &mut states, now)
                .map_err(|e| Error::internal(format!("an OTLP trace was refused: {e}")))?;
            self.inner.write_rows(rows, floor).await?;
            Ok(spans)
        })
    }

    fn check_stored(
        &self,
        project: &str,
        items: &[(usize, &ValidTrace)],
    ) -> Result<Vec<FieldError>> {
        let now = Timestamp::now().as_millis();
        self.block(async {
            let ids: Vec<String> = items.iter().map(|(_, v)| v.id.clone()).collect();
            let states = write::load(&self.inner, project, &ids).await?;
            let mut errors = Vec::new();
            for (i, v) in items {
                let stored = states.get(&v.id).map(|s| crate::write::merge::Stored {
                    start_ms: s.start_ms,
                    status: Status::from_code(s.status),
                    body: s.body.clone(),
                });
                if let Err(es) = crate::write::merge(stored, v, now) {
                    errors.extend(crate::write::prefixed(&format!("traces[{i}]"), es));
                }
            }
            Ok(errors)
        })
    }

    fn delete_trace(&self, project: &str, id: &str) -> Result<bool> {
        let _guard = self.write_lock.lock().expect("write lock");
        self.block(async {
            let found = self.inner.locate(project, &[id.to_string()]).await?;
            if found.is_empty() {
                return Ok(false);
            }
            self.inner.delete(project, &found).await?;
            Ok(true)
        })
    }

    fn delete_before(
        &self,
        project: &str,
        cutoff_ms: i64,
        progress: &mut dyn FnMut(u64),
    ) -> Result<u64> {
        #[derive(clickhouse::Row, serde::Deserialize)]
        struct R {
            id: String,
            start_ms: i64,
        }
        let mut total = 0u64;
        loop {
            let _guard = self.write_lock.lock().expect("write lock");
            let n = self.block(async {
                let rows: Vec<R> = self
                    .inner
                    .query(&format!(
                        "SELECT id, start_ms FROM traces FINAL WHERE project = ? \
                         AND start_ms < ? AND deleted = 0 ORDER BY start_ms, id LIMIT {}",
                        crate::limits::RETENTION_BATCH
                    ))
                    .bind(project)
                    .bind(cutoff_ms)
                    .fetch_all()
                    .await
                    .map_err(ch_error)?;
                let ids: Vec<(String, i64)> =
                    rows.into_iter().map(|r| (r.id, r.start_ms)).collect();
                if !ids.is_empty() {
                    self.inner.delete(project, &ids).await?;
                }
                Ok::<_, Error>(ids.len() as u64)
            })?;
            if n == 0 {
                return Ok(total);
            }
            total += n;
            progress(total);
        }
    }

    fn get_trace(&self, project: &str, id: &str, payloads: bool) -> Result<Option<TraceDetail>> {
        let ids = [id.to_string()];
        let Some(s) = self
            .block(write::load_with(&self.inner, project, &ids, payloads))?
            .remove(id)
        else {
            return Ok(None);
        };
        let trace = crate::convert::trace_of_body(s.start_ms, id, s.status, s.body)?;
        let pl = payloads.then(|| s.payloads.into_iter().collect());
        crate::convert::detail(trace, s.spans, s.scores, pl).map(Some)
    }

    fn whole_trace(&self, project: &str, id: &str) -> Result<Option<WholeTrace>> {
        let ids = [id.to_string()];
        Ok(self
            .block(write::load(&self.inner, project, &ids))?
            .remove(id)
            .map(write::State::into_whole))
    }

    fn projects(&self) -> Result<Vec<String>> {
        #[derive(clickhouse::Row, serde::Deserialize)]
        struct R {
            project: String,
        }
        let rows: Vec<R> = self.block(async {
            self.inner
                .query("SELECT DISTINCT project FROM trace_ids ORDER BY project")
                .fetch_all()
                .await
                .map_err(ch_error)
        })?;
        Ok(rows.into_iter().map(|r| r.project).collect())
    }

    fn query(
        &self,
        project: &str,
        q: Query<'_>,
        resume: Option<Resume<'_>>,
        _force: Option<PlanKind>,
    ) -> Result<EnginePage> {
        self.block(async {
            // One more than the page tells whether another page follows.
            let mut traces = self
                .inner
                .page(project, &q, resume.map(|r| r.position), q.limit + 1)
                .await?;
            let next = if traces.len() > q.limit as usize {
                traces.truncate(q.limit as usize);
                traces.last().map(|t| (position_of(q.order, t), Vec::new()))
            } else {
                None
            };
            let w = sql::filters(project, q.filters);
            let total = if q.include.total {
                Some(self.inner.count(&w).await?)
            } else {
                None
            };
            let facets = if q.include.facets {
                Some(self.inner.facets(&w).await?)
            } else {
                None
            };
            Ok(EnginePage {
                traces,
                next,
                total,
                facets,
            })
        })
    }

    fn export(
        &self,
        project: &str,
        q: Query<'_>,
        sink: &mut dyn FnMut(&Trace) -> Result<()>,
    ) -> Result<u64> {
        let mut after: Option<Position> = None;
        let mut n = 0u64;
        loop {
            let page = self.block(self.inner.page(project, &q, after.as_ref(), q.limit))?;
            for t in &page {
                sink(t)?;
                n += 1;
            }
            match page.last() {
                Some(t) if page.len() == q.limit as usize => {
                    after = Some(position_of(q.order, t));
                }
                _ => return Ok(n),
            }
        }
    }

    fn explain(&self, project: &str, q: Query<'_>, after: Option<&Position>) -> Result<Explain> {
        let w = sql::filters(project, q.filters);
        let mut page = w.clone();
        if let Some(p) = after {
            page.and(sql::after(q.order, p));
        }
        let text = page
            .bind(self.inner.query(&page_sql(&page, q.order, q.limit + 1)))
            .sql_display()
            .to_string();
        let live = self.block(
            self.inner
                .count(&sql::filters(project, &crate::query::Filters::default())),
        )?;
        let matches = self.block(self.inner.count(&w))?;
        Ok(Explain::sql(q.order.as_str(), live, matches, text))
    }

    fn verify(&self) -> Result<Vec<Violation>> {
        self.block(verify(&self.inner))
    }

    fn storage_stats(&self) -> Result<Vec<TableUsage>> {
        #[derive(clickhouse::Row, serde::Deserialize)]
        struct R {
            table: String,
            bytes: u64,
        }
        let rows: Vec<R> = self.block(async {
            self.inner
                .query(
                    "SELECT table, sum(bytes_on_disk) AS bytes FROM system.parts \
                     WHERE database = currentDatabase() AND active GROUP BY table ORDER BY table",
                )
                .fetch_all()
                .await
                .map_err(ch_error)
        })?;
        Ok(TABLES
            .iter()
            .map(|t| TableUsage {
                table: t,
                entries_bytes: rows
                    .iter()
                    .filter(|r| r.table == *t || r.table == format!("{t}_local"))
                    .map(|r| r.bytes)
                    .sum(),
                metadata_bytes: 0,
                fragmented_bytes: 0,
            })
            .collect())
    }

    fn check_integrity(&mut self) -> Result<bool> {
        #[derive(clickhouse::Row, serde::Deserialize)]
        struct R {
            ok: u8,
        }
        self.block(async {
            let mut all = true;
            for t in TABLES {
                let rows: Vec<R> = self
                    .inner
                    .query(&format!("CHECK TABLE {t}"))
                    .fetch_all()
                    .await
                    .unwrap_or_default();
                all &= rows.iter().all(|r| r.ok == 1);
            }
            Ok(all)
        })
    }

    fn compact(&mut self) -> Result<bool> {
        self.block(async {
            for t in TABLES {
                self.inner
                    .query(&format!("OPTIMIZE TABLE {t} FINAL"))
                    .execute()
                    .await
                    .map_err(ch_error)?;
            }
            Ok(true)
        })
    }

    fn put_api_key(&self, hash: &str, rec: &ApiKeyRecord) -> Result<()> {
        self.block(self.inner.insert(
            "api_keys",
            &[ApiKeyRow {
                hash: hash.to_string(),
                version: next_version(0),
                record: crate::schema::encode_api_key(rec),
            }],
        ))
    }

    fn api_key(&self, hash: &str) -> Result<Option<ApiKeyRecord>> {
        let rows: Vec<ApiKeyRow> = self.block(async {
            self.inner
                .query("SELECT hash, version, record FROM api_keys FINAL WHERE hash = ?")
                .bind(hash)
                .fetch_all()
                .await
                .map_err(ch_error)
        })?;
        rows.into_iter()
            .next()
            .map(|r| crate::schema::decode_api_key(&r.record))
            .transpose()
    }

    fn api_keys(&self) -> Result<Vec<ApiKeyRecord>> {
        let rows: Vec<ApiKeyRow> = self.block(async {
            self.inner
                .query("SELECT hash, version, record FROM api_keys FINAL ORDER BY hash")
                .fetch_all()
                .await
                .map_err(ch_error)
        })?;
        rows.into_iter()
            .map(|r| crate::schema::decode_api_key(&r.record))
            .collect()
    }

    fn revoke_api_keys(&self, prefix: &str, now_ms: i64) -> Result<usize> {
        let _guard = self.write_lock.lock().expect("write lock");
        let rows: Vec<ApiKeyRow> = self.block(async {
            self.inner
                .query("SELECT hash, version, record FROM api_keys FINAL")
                .fetch_all()
                .await
                .map_err(ch_error)
        })?;
        let mut changed = Vec::new();
        for r in rows {
            let mut rec = crate::schema::decode_api_key(&r.record)?;
            if rec.prefix == prefix && rec.revoked_ms.is_none() {
                rec.revoked_ms = Some(now_ms);
                changed.push(ApiKeyRow {
                    hash: r.hash,
                    version: next_version(r.version + 1),
                    record: crate::schema::encode_api_key(&rec),
                });
            }
        }
        self.block(self.inner.insert("api_keys", &changed))?;
        Ok(changed.len())
    }
}

/// A trace's position in `order`, from its output fields.
fn position_of(order: crate::query::Order, t: &Trace) -> Position {
    let start = t.start_time.as_millis();
    Position {
        value: order.value_of(
            start,
            t.end_time.map(|e| e.as_millis()),
            &crate::schema::Money::from_decimal(t.total_cost),
            t.total_tokens,
        ),
        start_ms: start,
        id: t.id.clone(),
    }
}

/// The engine's invariants over the whole database: every live trace's aggregates equal the
/// sums of its stored children, its span columns match its spans, and its id row points at
/// it. Reads every live row: for tests and operators, not for a hot path.
async fn verify(e: &Inner) -> Result<Vec<Violation>> {
    let rows: Vec<TraceRow> = e
        .query(
            "SELECT project, start_ms, id, version, deleted, status, name, name_lower, tags, \
             user_id, session_id, meta, running, duration_ms, cost_key, tokens, span_names, \
             span_models, span_kinds, span_statuses, models, body FROM traces FINAL \
             WHERE deleted = 0",
        )
        .fetch_all()
        .await
        .map_err(ch_error)?;
    let mut by_project: HashMap<String, Vec<TraceRow>> = HashMap::new();
    for r in rows {
        by_project.entry(r.project.clone()).or_default().push(r);
    }
    let mut out = Vec::new();
    for (project, rows) in by_project {
        let ids: Vec<String> = rows.iter().map(|r| r.id.clone()).collect();
        let states = write::load(e, &project, &ids).await?;
        for r in rows {
            let Some(s) = states.get(&r.id) else {
                out.push(Violation::new(format!(
                    "project {project}: trace {} has no live id row at its start",
                    r.id
                )));
                continue;
            };
            let mut want = s.body.clone();
            match crate::write::Totals::of_children(s.spans.values(), s.scores.len())? {
                Ok(t) => t.write_to(&mut want),
                Err(m) => {
                    out.push(Violation::new(format!(
                        "project {project}: trace {}: {m}",
                        r.id
                    )));
                    continue;
                }
            }
            if want != s.body {
                out.push(Violation::new(format!(
                    "project {project}: trace {}: aggregates differ from its children",
                    r.id
                )));
            }
            let derived = write::trace_row(&project, &r.id, s);
            if derived.span_names != r.span_names
                || derived.span_models != r.span_models
                || derived.span_kinds != r.span_kinds
                || derived.span_statuses != r.span_statuses
                || derived.models != r.models
                || derived.meta != r.meta
                || derived.cost_key != r.cost_key
            {
                out.push(Violation::new(format!(
                    "project {project}: trace {}: derived columns differ from its record",
                    r.id
                )));
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_split_the_range_at_its_end_in_the_order() {
        assert_eq!(split((0, 100), Some(30), true), ((70, 100), (0, 70)));
        assert_eq!(split((0, 100), Some(30), false), ((0, 30), (30, 100)));
        assert_eq!(split((0, 100), Some(500), true), ((0, 100), (0, 0)));
        assert_eq!(split((0, 100), None, false), ((0, 100), (100, 100)));
        // The widest range there is, without overflow.
        assert_eq!(
            split((i64::MIN, i64::MAX), Some(i64::MAX), true),
            ((0, i64::MAX), (i64::MIN, 0))
        );
        assert_eq!(
            split((i64::MIN, i64::MAX), None, true),
            ((i64::MIN, i64::MAX), (i64::MIN, i64::MIN))
        );
    }

    #[test]
    fn a_page_takes_at_most_three_sized_windows_then_the_rest() {
        // An empty window: 64 times wider.
        assert_eq!(next_window(0, 1000, 0, 21), Some(64_000));
        assert_eq!(next_window(1, 1000, 0, 21), Some(64_000));
        // Rows at a tenth of the density wanted: ten times wider, twice over.
        assert_eq!(next_window(0, 1000, 2, 18), Some(18_000));
        // Never narrower than twice the last.
        assert_eq!(next_window(1, 1000, 20, 1), Some(2000));
        assert_eq!(next_window(0, i64::MAX / 2, 1, 99), Some(i64::MAX));
        // After the third: the rest.
        assert_eq!(next_window(2, 1000, 5, 5), None);
        assert_eq!(next_window(2, 1000, 0, 5), None);
    }

    #[test]
    fn the_first_window_holds_about_two_pages_at_average_density() {
        let stored = StartRange {
            min: 0,
            max: 999_999,
            rows: 1_000,
        };
        assert_eq!(first_window(&stored, 20), 40_000);
        let one = StartRange {
            min: 5,
            max: 5,
            rows: 1,
        };
        assert_eq!(first_window(&one, 20), 40);
        let wide = StartRange {
            min: i64::MIN,
            max: i64::MAX,
            rows: 1,
        };
        assert_eq!(first_window(&wide, 100), i64::MAX);
    }
}
