//! DuckDB as a second benchmark peer of tracestore, for the shapes a user would pick DuckDB for:
//! exact totals and facets over a large matching set, a rare substring of the trace name, a
//! windowed count, two value ranges, and the bytes on disk. Both engines get the same demo
//! traces (the bench report's generator and enrichment), every shape runs on both in one
//! process, and each answer (the page's ids, the total, every facet) must be equal before a
//! timing is reported.
//!
//! Run (the first build compiles DuckDB from source, about 30 minutes on 2 cores):
//!
//! ```text
//! cargo run --release --manifest-path peers/duckdb/Cargo.toml -- --traces 100000
//! ```
//!
//! Arguments: `--traces N` (default 100 000), `--runs N` (timed runs per shape, default 21; the
//! median is reported), `--json PATH` (default `peers/duckdb/report.json` beside this crate).
//!
//! The DuckDB layout is the one a DuckDB user would build for this job:
//! - one wide table, one row per trace, with the list columns a query reads (`tags VARCHAR[]`,
//!   the distinct span models as `models VARCHAR[]`), `total_cost DECIMAL(18,12)` (exact, like
//!   tracestore's decimals), `duration_ms` precomputed, the status as a `UTINYINT` and the
//!   metadata as its JSON text; and a `spans` table sorted by (project, trace, start), so that
//!   both engines hold the same data when their disk is compared;
//! - loaded through the Appender into a staging table, then copied sorted by
//!   `(project, start_ms)` so that zone maps prune a project and a time window, then
//!   `CHECKPOINT`;
//! - no secondary index: DuckDB's ART indexes serve point lookups and constraints, not these
//!   scans, and its own guide advises against them for analytics;
//! - every query bound by parameters and by a time limit (`QUERY_TIME_BOUND`, enforced by a
//!   watchdog that interrupts the connection).

use duckdb::{params, Connection};
use std::collections::{BTreeSet, HashMap};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tracestore::demo::{enrich, DemoConfig, Generator, RARE_NAME, TAGS};
use tracestore::{Durability, ExportRequest, Page, QueryRequest, Status, Store, Timestamp};

/// The queried project (the generator's busiest, about 90% of the traces).
const PROJECT: &str = "demo";
/// Traces per page.
const PAGE: usize = 20;
/// Traces per ingest batch, as in the bench report.
const BATCH: usize = 1000;
/// Longest a DuckDB query may run before the watchdog interrupts it (the run then fails).
const QUERY_TIME_BOUND: Duration = Duration::from_secs(60);

struct Args {
    traces: usize,
    runs: usize,
    json: PathBuf,
}

fn args() -> Args {
    let mut a = Args {
        traces: 100_000,
        runs: 21,
        json: Path::new(env!("CARGO_MANIFEST_DIR")).join("report.json"),
    };
    let v: Vec<String> = std::env::args().collect();
    let mut i = 1;
    while i < v.len() {
        let next = v.get(i + 1).cloned();
        match v[i].as_str() {
            "--traces" => a.traces = number(&v[i], next),
            "--runs" => a.runs = number(&v[i], next).max(1),
            "--json" => a.json = PathBuf::from(next.unwrap_or_else(|| usage("--json"))),
            other => usage(other),
        }
        i += 2;
    }
    a
}

fn number(flag: &str, v: Option<String>) -> usize {
    v.and_then(|s| s.replace('_', "").parse().ok())
        .unwrap_or_else(|| usage(flag))
}

fn usage(bad: &str) -> ! {
    eprintln!("bad argument {bad}; usage: [--traces N] [--runs N] [--json PATH]");
    std::process::exit(2)
}

/// Bytes allocated on disk for `path` (blocks, not the apparent length).
fn allocated(path: &Path) -> u64 {
    std::fs::metadata(path).map_or(0, |m| m.blocks() * 512)
}

/// One span as the DuckDB `spans` table holds it (the same spans tracestore ingests).
struct SpanRow {
    project: String,
    trace_id: String,
    span_id: Option<String>,
    parent_id: Option<String>,
    name: Option<String>,
    kind: Option<&'static str>,
    status: u8,
    start_ms: Option<i64>,
    end_ms: Option<i64>,
    model: Option<String>,
    input_tokens: Option<i64>,
    output_tokens: Option<i64>,
    cost: Option<String>,
}

impl SpanRow {
    fn of(project: &str, trace_id: &str, s: &tracestore::SpanInput) -> SpanRow {
        SpanRow {
            project: project.to_string(),
            trace_id: trace_id.to_string(),
            span_id: s.id.clone(),
            parent_id: s.parent_id.clone(),
            name: s.name.clone(),
            kind: s.kind.map(|k| k.as_str()),
            status: u8::from(s.status == Some(Status::Error)),
            start_ms: s.start_time.map(|t| t.as_millis()),
            end_ms: s.end_time.map(|t| t.as_millis()),
            model: s.model.clone(),
            input_tokens: s.input_tokens.map(|n| n as i64),
            output_tokens: s.output_tokens.map(|n| n as i64),
            cost: s.cost.map(|c| c.to_string()),
        }
    }
}

/// One query shape: the tracestore parameters and the DuckDB `WHERE` conditions (after
/// `project = ?`) with their parameters.
struct Shape {
    key: &'static str,
    label: String,
    params: Vec<(&'static str, String)>,
    sql_where: &'static str,
    sql_params: Vec<duckdb::types::Value>,
    total: bool,
    facets: bool,
}

fn shapes() -> Vec<Shape> {
    use duckdb::types::Value as V;
    let needle = RARE_NAME.trim_start_matches("tool-").to_string(); // pdf-ocr
    let ms = |s: &str| Timestamp::parse(s).unwrap().as_millis();
    let (week_lo, week_hi) = (ms("2026-03-01T00:00:00Z"), ms("2026-03-08T00:00:00Z"));
    vec![
        Shape {
            key: "Q1",
            label: "no filter, first page".into(),
            params: vec![],
            sql_where: "",
            sql_params: vec![],
            total: false,
            facets: false,
        },
        Shape {
            key: "Q4",
            label: format!("name~{needle} (rare substring), first page"),
            params: vec![("name", needle.clone())],
            sql_where: "AND contains(lower(name), ?)",
            sql_params: vec![V::Text(needle.to_lowercase())],
            total: false,
            facets: false,
        },
        Shape {
            key: "Q4t",
            label: format!("name~{needle} + total"),
            params: vec![("name", needle.clone())],
            sql_where: "AND contains(lower(name), ?)",
            sql_params: vec![V::Text(needle.to_lowercase())],
            total: true,
            facets: false,
        },
        Shape {
            key: "Q13",
            label: "status=ERROR + total and facets".into(),
            params: vec![("status", "ERROR".into())],
            sql_where: "AND status = 1",
            sql_params: vec![],
            total: true,
            facets: true,
        },
        Shape {
            key: "Q14",
            label: "no filter + total and facets (the whole project)".into(),
            params: vec![],
            sql_where: "",
            sql_params: vec![],
            total: true,
            facets: true,
        },
        Shape {
            key: "Q16t",
            label: "minDurationMs=10000 + maxCost=0.04 + total".into(),
            params: vec![
                ("minDurationMs", "10000".into()),
                ("maxCost", "0.04".into()),
            ],
            sql_where: "AND duration_ms >= ? AND total_cost <= CAST(? AS DECIMAL(18,12))",
            sql_params: vec![V::BigInt(10_000), V::Text("0.04".into())],
            total: true,
            facets: false,
        },
        Shape {
            key: "Q19",
            label: format!("oldest week + ERROR + tag {} + total", TAGS[0]),
            params: vec![
                ("startDate", "2026-03-01T00:00:00Z".into()),
                ("endDate", "2026-03-08T00:00:00Z".into()),
                ("status", "ERROR".into()),
                ("tags", TAGS[0].into()),
            ],
            sql_where: "AND start_ms >= ? AND start_ms < ? AND status = 1 \
                        AND list_contains(tags, ?)",
            sql_params: vec![
                V::BigInt(week_lo),
                V::BigInt(week_hi),
                V::Text(TAGS[0].into()),
            ],
            total: true,
            facets: false,
        },
    ]
}

/// The tracestore request of a shape: its filters, a page of `PAGE`, and its `include`.
fn request(s: &Shape) -> QueryRequest {
    let mut params = s.params.clone();
    params.push(("limit", PAGE.to_string()));
    match (s.total, s.facets) {
        (true, true) => params.push(("include", "total,facets".into())),
        (true, false) => params.push(("include", "total".into())),
        _ => {}
    }
    QueryRequest::from_params(params.iter().map(|(k, v)| (*k, v.as_str()))).expect("valid request")
}

/// An engine's answer to a shape, compared across engines.
#[derive(Debug, PartialEq)]
struct Answer {
    ids: Vec<String>,
    total: Option<u64>,
    /// (OK, ERROR), names, tags, models: each (value, count), by count descending then value.
    facets: Option<Facets>,
}

type Top = Vec<(String, u64)>;

#[derive(Debug, PartialEq)]
struct Facets {
    status: (u64, u64),
    names: Top,
    tags: Top,
    models: Top,
}

fn tracestore_answer(page: Page) -> Answer {
    Answer {
        ids: page.traces.into_iter().map(|t| t.id).collect(),
        total: page.total,
        facets: page.facets.map(|f| {
            let top = |v: Vec<tracestore::FacetValue>| -> Top {
                v.into_iter().map(|x| (x.value, x.count)).collect()
            };
            Facets {
                status: (f.status.ok, f.status.error),
                names: top(f.names),
                tags: top(f.tags),
                models: top(f.models),
            }
        }),
    }
}

/// The DuckDB side of the shapes, with the watchdog that bounds each query's time.
struct Duck {
    conn: Connection,
    /// Nanoseconds since `epoch` when the running query began; 0 when none runs.
    started: Arc<AtomicU64>,
    epoch: Instant,
}

impl Duck {
    fn open(path: &Path) -> Duck {
        let conn = Connection::open(path).expect("open DuckDB");
        let started = Arc::new(AtomicU64::new(0));
        let epoch = Instant::now();
        let handle = conn.interrupt_handle();
        let watch = started.clone();
        std::thread::spawn(move || loop {
            std::thread::sleep(Duration::from_millis(50));
            let s = watch.load(Ordering::Relaxed);
            if s != 0 && epoch.elapsed().as_nanos() as u64 - s > QUERY_TIME_BOUND.as_nanos() as u64
            {
                handle.interrupt();
            }
        });
        Duck {
            conn,
            started,
            epoch,
        }
    }

    fn bounded<T>(&self, f: impl FnOnce(&Connection) -> duckdb::Result<T>) -> T {
        self.started.store(
            self.epoch.elapsed().as_nanos() as u64 | 1,
            Ordering::Relaxed,
        );
        let r = f(&self.conn);
        self.started.store(0, Ordering::Relaxed);
        r.unwrap_or_else(|e| panic!("DuckDB query failed or passed {QUERY_TIME_BOUND:?}: {e}"))
    }

    fn answer(&self, s: &Shape) -> Answer {
        let mut p: Vec<duckdb::types::Value> = vec![duckdb::types::Value::Text(PROJECT.into())];
        p.extend(s.sql_params.iter().cloned());
        let w = format!("WHERE project = ? {}", s.sql_where);
        let ids: Vec<String> = self.bounded(|c| {
            let mut st = c.prepare_cached(&format!(
                "SELECT id FROM traces {w} ORDER BY start_ms DESC, id DESC LIMIT {PAGE}"
            ))?;
            let rows = st.query_map(duckdb::params_from_iter(p.iter()), |r| r.get(0))?;
            rows.collect()
        });
        let total = s.total.then(|| {
            self.bounded(|c| {
                c.prepare_cached(&format!("SELECT count(*) FROM traces {w}"))?
                    .query_row(duckdb::params_from_iter(p.iter()), |r| r.get::<_, i64>(0))
            }) as u64
        });
        let facets = s.facets.then(|| {
            let status: (i64, i64) = self.bounded(|c| {
                c.prepare_cached(&format!(
                    "SELECT count(*) FILTER (WHERE status = 0), \
                     count(*) FILTER (WHERE status = 1) FROM traces {w}"
                ))?
                .query_row(duckdb::params_from_iter(p.iter()), |r| {
                    Ok((r.get(0)?, r.get(1)?))
                })
            });
            let top = |sql: String| -> Top {
                self.bounded(|c| {
                    let mut st = c.prepare_cached(&sql)?;
                    let rows = st.query_map(duckdb::params_from_iter(p.iter()), |r| {
                        Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)? as u64))
                    })?;
                    rows.collect()
                })
            };
            let listed = |col: &str| {
                format!(
                    "SELECT v, count(*) AS n FROM (SELECT unnest({col}) AS v FROM traces {w}) \
                     GROUP BY v ORDER BY n DESC, v LIMIT 20"
                )
            };
            Facets {
                status: (status.0 as u64, status.1 as u64),
                names: top(format!(
                    "SELECT name, count(*) AS n FROM traces {w} GROUP BY name \
                     ORDER BY n DESC, name LIMIT 20"
                )),
                tags: top(listed("tags")),
                models: top(listed("models")),
            }
        });
        Answer { ids, total, facets }
    }
}

/// The median of `runs` timed calls of `f` (after two untimed ones), in microseconds.
fn median_us(runs: usize, mut f: impl FnMut()) -> f64 {
    f();
    f();
    let mut t: Vec<f64> = (0..runs)
        .map(|_| {
            let s = Instant::now();
            f();
            s.elapsed().as_secs_f64() * 1e6
        })
        .collect();
    t.sort_by(f64::total_cmp);
    t[t.len() / 2]
}

fn main() {
    let a = args();
    let dir = tempfile::tempdir().expect("temp dir");
    let store_path = dir.path().join("traces.redb");
    let duck_path = dir.path().join("traces.duckdb");

    // 1. tracestore: the bench report's load (batches of 1000, Deferred durability, as its
    //    bulk-load row).
    let store = Store::builder()
        .durability(Durability::Deferred)
        .open(&store_path)
        .expect("open store");
    let mut g = Generator::new(DemoConfig {
        traces: a.traces,
        ..Default::default()
    });
    let mut models: HashMap<(String, String), Vec<String>> = HashMap::new();
    let mut spans: Vec<SpanRow> = Vec::new();
    let mut projects: BTreeSet<String> = BTreeSet::new();
    let mut ts_load = Duration::ZERO;
    let mut done = 0usize;
    let began = Instant::now();
    loop {
        let mut batch = g.next_batch(BATCH);
        if batch.is_empty() {
            break;
        }
        for (project, traces) in &mut batch {
            traces.iter_mut().for_each(enrich);
            for t in traces.iter() {
                let trace_id = t.id.clone().expect("demo ids");
                spans.extend(t.spans.iter().map(|s| SpanRow::of(project, &trace_id, s)));
                let set: BTreeSet<String> =
                    t.spans.iter().filter_map(|s| s.model.clone()).collect();
                models.insert(
                    (project.clone(), t.id.clone().expect("demo ids")),
                    set.into_iter().collect(),
                );
            }
            projects.insert(project.clone());
        }
        for (project, traces) in batch {
            done += traces.len();
            let t = Instant::now();
            store.ingest(&project, traces).expect("tracestore ingest");
            ts_load += t.elapsed();
        }
        if done % 100_000 < BATCH {
            eprintln!(
                "  tracestore: {done}/{} traces in {:.0} s",
                a.traces,
                began.elapsed().as_secs_f64()
            );
        }
    }

    // Each engine is timed alone: tracestore's shapes now, before DuckDB holds any memory or
    // threads; the answers are compared once DuckDB has its own.
    let ours: Vec<(Answer, f64)> = shapes()
        .iter()
        .map(|s| {
            let req = request(s);
            let answer = tracestore_answer(store.query(PROJECT, &req).expect("query"));
            let us = median_us(a.runs, || {
                std::hint::black_box(store.query(PROJECT, &req).expect("query"));
            });
            (answer, us)
        })
        .collect();

    // 2. DuckDB: the same traces as tracestore stored them (its totals, its tags), through the
    //    Appender into a staging table, then sorted into the queried table and checkpointed.
    let duck = Duck::open(&duck_path);
    duck.conn
        .execute_batch(
            "CREATE TABLE staging (project VARCHAR, start_ms BIGINT, id VARCHAR, name VARCHAR, \
             status UTINYINT, tags VARCHAR, models VARCHAR, end_ms BIGINT, duration_ms BIGINT, \
             total_cost VARCHAR, total_tokens BIGINT, user_id VARCHAR, session_id VARCHAR, \
             metadata VARCHAR); \
             CREATE TABLE staging_spans (project VARCHAR, trace_id VARCHAR, span_id VARCHAR, \
             parent_id VARCHAR, name VARCHAR, kind VARCHAR, status UTINYINT, start_ms BIGINT, \
             end_ms BIGINT, model VARCHAR, input_tokens BIGINT, output_tokens BIGINT, \
             cost VARCHAR);",
        )
        .expect("staging table");
    // List values go through the Appender as text joined by the unit separator (no tag or
    // model contains it) and are split in the sorted copy.
    const SEP: &str = "\u{1f}";
    let mut rows = Vec::with_capacity(a.traces);
    for p in &projects {
        let req = ExportRequest::from_params(Vec::<(&str, &str)>::new()).expect("export request");
        store
            .export(p, &req, |t| {
                rows.push((p.clone(), t.clone()));
                Ok(())
            })
            .expect("export");
    }
    let duck_began = Instant::now();
    {
        let mut app = duck.conn.appender("staging").expect("appender");
        for (p, t) in &rows {
            let m = models
                .get(&(p.clone(), t.id.clone()))
                .map(|m| m.join(SEP))
                .unwrap_or_default();
            app.append_row(params![
                p,
                t.start_time.as_millis(),
                t.id,
                t.name,
                u8::from(t.status == Status::Error),
                t.tags.join(SEP),
                m,
                t.end_time.map(|e| e.as_millis()),
                t.duration_ms,
                t.total_cost.to_string(),
                t.total_tokens as i64,
                t.user_id,
                t.session_id,
                t.metadata.as_json(),
            ])
            .expect("append");
        }
        app.flush().expect("appender flush");
        let mut app = duck.conn.appender("staging_spans").expect("appender");
        for r in &spans {
            app.append_row(params![
                r.project,
                r.trace_id,
                r.span_id,
                r.parent_id,
                r.name,
                r.kind,
                r.status,
                r.start_ms,
                r.end_ms,
                r.model,
                r.input_tokens,
                r.output_tokens,
                r.cost,
            ])
            .expect("append span");
        }
        app.flush().expect("appender flush");
    }
    duck.conn
        .execute_batch(
            "CREATE TABLE traces AS SELECT project, start_ms, id, name, status, \
               CASE WHEN tags = '' THEN []::VARCHAR[] ELSE string_split(tags, chr(31)) END AS tags, \
               CASE WHEN models = '' THEN []::VARCHAR[] ELSE string_split(models, chr(31)) END \
                 AS models, \
               end_ms, duration_ms, CAST(total_cost AS DECIMAL(18,12)) AS total_cost, \
               total_tokens, user_id, session_id, metadata \
             FROM staging ORDER BY project, start_ms; \
             CREATE TABLE spans AS SELECT project, trace_id, span_id, parent_id, name, kind, \
               status, start_ms, end_ms, model, input_tokens, output_tokens, \
               CAST(cost AS DECIMAL(18,12)) AS cost \
             FROM staging_spans ORDER BY project, trace_id, start_ms, span_id; \
             DROP TABLE staging; DROP TABLE staging_spans; CHECKPOINT;",
        )
        .expect("sorted copy");
    let duck_load = duck_began.elapsed();
    drop(rows);
    let span_count = spans.len();
    drop(spans);
    eprintln!(
        "loaded {done} traces ({span_count} spans): tracestore {:.1} s, DuckDB {:.1} s (Appender, sort, checkpoint)",
        ts_load.as_secs_f64(),
        duck_load.as_secs_f64()
    );

    // 3. The shapes: equal answers first, then the timings.
    let mut json_rows = Vec::new();
    let mut table = Vec::new();
    let mut mismatches = 0;
    for (s, (ours, t_us)) in shapes().into_iter().zip(ours) {
        let theirs = duck.answer(&s);
        if ours != theirs {
            mismatches += 1;
            eprintln!(
                "MISMATCH {}: tracestore {ours:?}\n  DuckDB {theirs:?}",
                s.key
            );
            continue;
        }
        let d_us = median_us(a.runs, || {
            std::hint::black_box(duck.answer(&s));
        });
        eprintln!(
            "{} {}: tracestore {t_us:.1} µs, DuckDB {d_us:.1} µs",
            s.key, s.label
        );
        table.push(format!(
            "| {} {} | {} | {} | {:.2} |",
            s.key,
            s.label,
            fmt_us(t_us),
            fmt_us(d_us),
            d_us / t_us
        ));
        for (engine, us) in [("tracestore", t_us), ("duckdb", d_us)] {
            json_rows.push(
                serde_json::json!({"shape": s.key, "engine": engine, "us": us,
                "label": s.label}),
            );
        }
    }

    // 4. Disk and load rate.
    drop(store);
    duck.conn.execute_batch("CHECKPOINT;").expect("checkpoint");
    let ts_bytes = allocated(&store_path) as f64 / done as f64;
    let duck_bytes = (allocated(&duck_path) + allocated(&duck_path.with_extension("duckdb.wal")))
        as f64
        / done as f64;
    table.push(format!(
        "| disk after load (allocated bytes; DuckDB checkpointed, tracestore as loaded) | {ts_bytes:.0} B/trace | {duck_bytes:.0} B/trace | \
         {:.2} |",
        duck_bytes / ts_bytes
    ));
    let (ts_rate, duck_rate) = (
        done as f64 / ts_load.as_secs_f64(),
        done as f64 / duck_load.as_secs_f64(),
    );
    table.push(format!(
        "| bulk load (tracestore: batches of 1000, not durable; DuckDB: Appender, sort, \
         checkpoint) | {:.0} traces/s | {:.0} traces/s | {:.2} |",
        ts_rate,
        duck_rate,
        ts_rate / duck_rate
    ));
    for (engine, b, r) in [
        ("tracestore", ts_bytes, ts_rate),
        ("duckdb", duck_bytes, duck_rate),
    ] {
        json_rows.push(serde_json::json!({"shape": "disk", "engine": engine,
            "bytes_per_trace": b}));
        json_rows.push(serde_json::json!({"shape": "bulk_load", "engine": engine, "per_s": r}));
    }

    println!(
        "{done} traces, medians of {} runs; ratio = DuckDB ÷ tracestore (above 1: tracestore \
         is faster or smaller)\n",
        a.runs
    );
    println!("| shape | tracestore | DuckDB | ratio |\n|---|---:|---:|---:|");
    for r in &table {
        println!("{r}");
    }
    let report = serde_json::json!({"traces": done, "runs": a.runs, "rows": json_rows,
        "duckdb": duckdb_version(&duck.conn)});
    std::fs::write(&a.json, serde_json::to_vec_pretty(&report).unwrap()).expect("write JSON");
    eprintln!("wrote {}", a.json.display());
    if mismatches > 0 {
        eprintln!("{mismatches} shapes gave different answers: no timing reported for them");
        std::process::exit(1);
    }
}

fn duckdb_version(c: &Connection) -> String {
    c.query_row("SELECT version()", [], |r| r.get(0))
        .unwrap_or_default()
}

fn fmt_us(v: f64) -> String {
    if v >= 1000.0 {
        format!("{:.2} ms", v / 1000.0)
    } else {
        format!("{v:.1} µs")
    }
}
