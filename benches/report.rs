//! The comparison report: loads tracestore and the SQLite peer with the same data, verifies that
//! every shape returns the same page on both (and the same total and facets for a counting
//! shape), times every shape (median over many runs, `std::time::Instant`), measures
//! single-trace durable commits and disk use, and prints a markdown table with the plans of
//! both engines. The same figures go to `target/bench-report.json`:
//!
//! ```text
//! {"rows": [{"shape": "Q1", "engine": "tracestore", "us": 9.7, "label": "Q1 no filter",
//!            "ratio": 2.5, "plan": "..."},
//!           {"shape": "Q1", "engine": "sqlite", "us": 24.4, "label": "Q1 no filter", "plan": "..."},
//!           {"shape": "ingest_batched", "engine": "tracestore", "per_s": 61234.0, ...},
//!           {"shape": "commit", "engine": "sqlite", "p50_us": 180.2, "p99_us": 410.7, "mean_us": 201.3, ...},
//!           {"shape": "disk", "engine": "tracestore", "bytes_per_trace": 1342.0, ...}, ...],
//!  "traces": 1000000}
//! ```
//!
//! One row per shape and engine (`tracestore`, `sqlite`): a query shape's key (`Q1`, `Q9p100`,
//! `Q18t`, ...) with its median in `us`; `ingest_batched` (traces per second, `per_s`);
//! `commit` (single-trace durable commits: `p50_us`, `p99_us`, `mean_us`); `file_len`, `disk`
//! and `disk_compacted` (`bytes_per_trace`). `ratio` (on the tracestore row) is the table's
//! ratio, >1 when tracestore is better. The payload (`payload.*`) and OTLP (`otlp.*`) rows
//! compare tracestore with itself: both the value and its `baseline` are tracestore rows.
//!
//! ```text
//! cargo bench --bench report -- --traces 1000000
//! ```
//!
//! Options: `--traces N` (default 100000), `--deferred-load` (bulk load with tracestore
//! `Durability::Deferred` and SQLite `synchronous=OFF` instead of durable commits on both; the
//! single-trace commits are durable on both either way), `--json PATH`, `--commits N`
//! (single-trace commits timed per engine, default 200), `--max-secs S` (time cap per shape
//! and engine, default 4), `--only Q1,Q4` (some shapes), `--profile KEY [--profile-secs S]`
//! (after the load, loop tracestore's side of one shape for `perf record -D`), `--no-compact`
//! (skip the diagnostic compaction and VACUUM at the end, which take long at 10M traces),
//! `--payload-traces N` (size of the payload pair below, default the smaller of `--traces` and
//! 20000; 0 skips it), `--otlp-requests N` (OTLP requests of 512 spans per encoding, default
//! 100; 0 skips them), `--sql KEY` (print the peer's SQL of one shape after the load, then
//! continue). With `--only`, the payload rows run only when the list names `payload`, the OTLP
//! rows only when it names `otlp`. Unknown arguments (cargo passes `--bench`) are ignored.
//!
//! The SQLite peer (schema and reasons in the module doc of `common`) picks each query's
//! driving index from its planner statistics, gathered with `ANALYZE` after the load (not
//! timed in the load; printed). Its plan column shows the driver it picked and SQLite's
//! `EXPLAIN QUERY PLAN` of the page and, for a counting shape, of the counting statement.
//!
//! Two sections compare tracestore with itself rather than with SQLite:
//! - payloads: the same demo traces in two stores, without payloads and with about 20 KiB of
//!   LLM-prompt-like JSON each (trace input and output, span inputs, outputs and attributes).
//!   Q1 on both shows that listing never reads payloads; bytes per trace on both and the raw
//!   payload JSON against the `payloads` table's stored bytes show what compression saves;
//! - OTLP ingest: spans per second of `ExportTraceServiceRequest`s of 512 spans (protobuf, JSON,
//!   gzip-compressed protobuf; decompression, `OtlpRequest::decode` and `Store::ingest_otlp`
//!   timed) into fresh file-backed stores with default (durable) settings, beside tracestore's
//!   own JSON ingest (`Store::ingest_json`) of the same traces; and the protobuf requests sent
//!   by 8 concurrent clients into one store (wall clock), where requests share commits.

/// The report runs on the allocator the `tracestore` server binary uses (mimalloc), so its
/// figures are the server's. Both engines of a comparison share it, SQLite included.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod common;

use common::*;
use serde_json::json;
use std::time::{Duration, Instant};

struct Args {
    traces: usize,
    deferred: bool,
    json: Option<String>,
    commits: usize,
    max_secs: f64,
    only: Option<String>,
    profile: Option<String>,
    profile_secs: f64,
    /// Skip the diagnostic compaction at the end (slow at 10M traces).
    no_compact: bool,
    /// Traces of the payload pair (None: the smaller of `traces` and 20000).
    payload_traces: Option<usize>,
    /// OTLP requests of 512 spans per encoding.
    otlp_requests: usize,
    /// Print the peer's SQL of these shapes after the load.
    sql: Option<String>,
}

impl Args {
    /// Whether the `--only` list (if any) names `key`.
    fn runs(&self, key: &str) -> bool {
        self.only
            .as_ref()
            .is_none_or(|o| o.split(',').any(|k| k.eq_ignore_ascii_case(key)))
    }
}

fn args() -> Args {
    let mut a = Args {
        traces: 100_000,
        deferred: false,
        json: None,
        commits: 200,
        max_secs: 4.0,
        only: None,
        profile: None,
        profile_secs: 20.0,
        no_compact: false,
        payload_traces: None,
        otlp_requests: 100,
        sql: None,
    };
    let v: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    let num = |s: Option<&String>| s.and_then(|s| s.replace('_', "").parse::<f64>().ok());
    while i < v.len() {
        match v[i].as_str() {
            "--traces" => {
                a.traces = num(v.get(i + 1)).map_or(a.traces, |n| n as usize);
                i += 1;
            }
            "--commits" => {
                a.commits = num(v.get(i + 1)).map_or(a.commits, |n| n as usize);
                i += 1;
            }
            "--max-secs" => {
                a.max_secs = num(v.get(i + 1)).unwrap_or(a.max_secs);
                i += 1;
            }
            "--json" => {
                a.json = v.get(i + 1).cloned();
                i += 1;
            }
            "--only" => {
                a.only = v.get(i + 1).cloned();
                i += 1;
            }
            "--profile" => {
                a.profile = v.get(i + 1).cloned();
                i += 1;
            }
            "--profile-secs" => {
                a.profile_secs = num(v.get(i + 1)).unwrap_or(a.profile_secs);
                i += 1;
            }
            "--payload-traces" => {
                a.payload_traces = num(v.get(i + 1)).map(|n| n as usize);
                i += 1;
            }
            "--otlp-requests" => {
                a.otlp_requests = num(v.get(i + 1)).map_or(a.otlp_requests, |n| n as usize);
                i += 1;
            }
            "--sql" => {
                a.sql = v.get(i + 1).cloned();
                i += 1;
            }
            "--deferred-load" => a.deferred = true,
            "--no-compact" => a.no_compact = true,
            _ => {} // `--bench` and anything else cargo passes
        }
        i += 1;
    }
    a
}

struct Row {
    /// The JSON `shape`: a query key (`Q1`) or a measure (`disk`, `commit`, ...).
    key: String,
    /// The markdown label.
    shape: String,
    ts: f64,
    sq: f64,
    /// >1 means tracestore is better.
    ratio: f64,
    unit: &'static str,
    /// The JSON value field (`us`, `per_s`, `bytes_per_trace`, `p50_us`, ...).
    field: &'static str,
    note: String,
    /// The plans of a query shape: tracestore's, SQLite's.
    plans: Option<(String, String)>,
}

/// A row of the payload and OTLP sections: a tracestore figure beside a baseline that is also
/// tracestore (another store or another ingest path), measured in the same run.
struct Extra {
    section: &'static str,
    /// The JSON `shape` of the value and of the baseline.
    key: &'static str,
    base_key: &'static str,
    shape: String,
    value: f64,
    base: f64,
    /// What the baseline is.
    base_of: &'static str,
    /// As the note says (`value / base` unless stated).
    ratio: f64,
    unit: &'static str,
    note: String,
}

fn fmt_us(v: f64) -> String {
    if v.is_nan() {
        "n/a".into()
    } else if v >= 1000.0 {
        format!("{:.2} ms", v / 1000.0)
    } else {
        format!("{v:.1} µs")
    }
}

fn fmt_val(v: f64, unit: &str) -> String {
    match unit {
        "us" => fmt_us(v),
        "traces/s" => format!("{:.0}k/s", v / 1000.0),
        "spans/s" => format!("{:.1}k spans/s", v / 1000.0),
        "B/trace" => format!("{v:.0} B"),
        _ => format!("{v:.2}"),
    }
}

fn json_path(a: &Args) -> std::path::PathBuf {
    match &a.json {
        Some(p) => p.into(),
        None => std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("target")
            .join("bench-report.json"),
    }
}

fn main() {
    let a = args();
    let mode = if a.deferred {
        LoadMode::Deferred
    } else {
        LoadMode::Durable
    };
    let durability = match mode {
        LoadMode::Durable => {
            "durable: tracestore Durability::Immediate vs SQLite WAL+synchronous=FULL"
        }
        LoadMode::Deferred => {
            "bulk, not durable: tracestore Durability::Deferred vs SQLite WAL+synchronous=OFF"
        }
    };
    eprintln!(
        "tracestore vs SQLite report: {} traces, load {durability}",
        a.traces
    );
    let began = Instant::now();
    let mut l = load(a.traces, mode, true);
    let l_traces = l.traces;
    if a.deferred {
        // A Deferred store writes its pages out at a durable commit or a clean close: close and
        // reopen it so the disk figures below count what it holds (SQLite's WAL is
        // checkpointed below).
        drop(std::mem::replace(
            &mut l.store,
            tracestore::Store::in_memory().expect("placeholder store"),
        ));
        l.store = tracestore::Store::builder()
            .durability(tracestore::Durability::Deferred)
            .open(&l.store_path)
            .expect("reopen store");
    }
    eprintln!(
        "loaded {} traces in {:.1} s: tracestore {:.1} s, SQLite {:.1} s, generator {:.1} s",
        l.traces,
        began.elapsed().as_secs_f64(),
        l.tracestore_secs,
        l.sqlite_secs,
        l.gen_secs
    );

    if let Some(keys) = &a.sql {
        print_sql(&l, keys);
    }

    if let Some(key) = &a.profile {
        profile(&l, key, a.profile_secs);
        return;
    }

    let mut rows: Vec<Row> = Vec::new();
    let mut mismatches: Vec<String> = Vec::new();

    // Disk, before any query or extra write. SQLite: db + wal after a checkpoint.
    l.sqlite.checkpoint();
    let ts_bytes = file_allocated(&l.store_path) as f64 / l.traces as f64;
    let sq_bytes = l.sqlite.disk_allocated() as f64 / l.traces as f64;
    let ts_apparent = file_len(&l.store_path) as f64 / l.traces as f64;
    let sq_apparent = l.sqlite.disk_bytes() as f64 / l.traces as f64;
    rows.push(Row {
        key: "file_len".into(),
        field: "bytes_per_trace",
        plans: None,
        shape: "file length after load (diagnostic)".into(),
        ts: ts_apparent,
        sq: sq_apparent,
        ratio: sq_apparent / ts_apparent,
        unit: "B/trace",
        note: "apparent length; redb's file is sparse past its used pages".into(),
    });

    // Queries.
    let max = Duration::from_secs_f64(a.max_secs);
    let mut plans: Vec<(String, String, String)> = Vec::new();
    for shape in shapes() {
        if a.only
            .as_ref()
            .is_some_and(|o| !o.split(',').any(|k| k == shape.key))
        {
            continue;
        }
        let prepared = match prepare(&l, &shape) {
            Ok(Some(p)) => p,
            Ok(None) => {
                eprintln!(
                    "{}: page does not exist at {} traces, skipped",
                    shape.key, l.traces
                );
                rows.push(Row {
                    key: shape.key.clone(),
                    field: "us",
                    plans: None,
                    shape: format!("{} {}", shape.key, shape.label),
                    ts: f64::NAN,
                    sq: f64::NAN,
                    ratio: f64::NAN,
                    unit: "us",
                    note: "page does not exist at this size".into(),
                });
                continue;
            }
            Err(e) => {
                eprintln!("MISMATCH {e}");
                mismatches.push(e);
                continue;
            }
        };
        let n = match verify(&l, &shape, &prepared) {
            Ok(n) => n,
            Err(e) => {
                eprintln!("MISMATCH {e}");
                mismatches.push(e);
                0
            }
        };
        let plan = plan_of(&l, &prepared);
        let sql_plan = match &prepared {
            Prepared::List { filter, after, .. } => {
                l.sqlite.explain(PROJECT, filter, after.as_ref())
            }
            Prepared::Get { .. } => "traces_id index → primary key; spans, scores by key".into(),
        };
        let (ts, ts_runs) = measure(max, |i| {
            run_tracestore(&l, &prepared, i);
        });
        let (sq, sq_runs) = measure(max, |i| {
            run_sqlite(&l, &prepared, i);
        });
        let reprepares = match &prepared {
            Prepared::List { filter, after, .. } => {
                l.sqlite.reprepares(PROJECT, filter, after.as_ref())
            }
            Prepared::Get { .. } => 0,
        };
        eprintln!(
            "{:<7} tracestore {:>10} ({ts_runs} runs)  SQLite {:>10} ({sq_runs} runs, page statement \
             re-prepared {reprepares} times)  rows {n}  plan: {plan}",
            shape.key,
            fmt_us(ts),
            fmt_us(sq)
        );
        plans.push((shape.key.clone(), plan.clone(), sql_plan.clone()));
        rows.push(Row {
            key: shape.key.clone(),
            field: "us",
            plans: Some((plan.clone(), sql_plan.clone())),
            shape: format!("{} {}", shape.key, shape.label),
            ts,
            sq,
            ratio: sq / ts,
            unit: "us",
            note: format!("{n} rows; {plan}"),
        });
    }

    // Ingest: the batched load above, then single-trace durable commits into the loaded stores.
    let n = l.traces as f64;
    rows.push(Row {
        key: "ingest_batched".into(),
        field: "per_s",
        plans: None,
        shape: format!(
            "ingest batched, load of {} ({})",
            l.traces,
            if a.deferred { "not durable" } else { "durable" }
        ),
        ts: n / l.tracestore_secs,
        sq: n / l.sqlite_secs,
        ratio: l.sqlite_secs / l.tracestore_secs,
        unit: "traces/s",
        note: "1000 traces per transaction (one per project group)".into(),
    });
    let (load_spans, load_secs) = (l.spans, l.tracestore_secs);
    if a.commits > 0 {
        drop_and_time_commits(l, a.commits, a.no_compact, &mut rows, ts_bytes, sq_bytes);
    } else {
        push_disk(&mut rows, ts_bytes, sq_bytes);
        drop(l);
    }

    // tracestore against itself: payloads, then OTLP ingest.
    let mut extras: Vec<Extra> = Vec::new();
    let payload_traces = a.payload_traces.unwrap_or(a.traces.min(20_000));
    if payload_traces > 0 && a.runs("payload") {
        payload_rows(payload_traces, mode, max, &mut extras, &mut mismatches);
    }
    if a.otlp_requests > 0 && a.runs("otlp") {
        otlp_rows(
            a.otlp_requests,
            load_spans as f64 / load_secs,
            &mut extras,
            &mut mismatches,
        );
    }

    // Output.
    println!();
    println!(
        "## tracestore vs SQLite, {} traces ({} load; single-trace commits durable on both: \
         tracestore Immediate, SQLite WAL+synchronous=FULL)",
        a.traces,
        if a.deferred {
            "Deferred/synchronous=OFF"
        } else {
            "durable Immediate/synchronous=FULL"
        }
    );
    println!();
    println!("| shape | tracestore | SQLite | ratio (>1: tracestore better) | note |");
    println!("|---|---:|---:|---:|---|");
    for r in &rows {
        println!(
            "| {} | {} | {} | {} | {} |",
            r.shape,
            fmt_val(r.ts, r.unit),
            fmt_val(r.sq, r.unit),
            if r.ratio.is_nan() {
                "n/a".into()
            } else {
                format!("{:.2}", r.ratio)
            },
            r.note
        );
    }
    println!();
    println!("Query times are medians of a first page of 20 (21 fetched) in project \"demo\"; ratio = SQLite / tracestore.");
    println!(
        "Throughput ratio = tracestore / SQLite; latency and disk ratios = SQLite / tracestore."
    );
    println!();
    let mut sections: Vec<&str> = extras.iter().map(|e| e.section).collect();
    sections.dedup();
    for section in sections {
        println!("### {section}");
        println!();
        println!("| measure | value | compared with | ratio | note |");
        println!("|---|---:|---:|---:|---|");
        for e in extras.iter().filter(|e| e.section == section) {
            println!(
                "| {} | {} | {} ({}) | {:.2} | {} |",
                e.shape,
                fmt_val(e.value, e.unit),
                fmt_val(e.base, e.unit),
                e.base_of,
                e.ratio,
                e.note
            );
        }
        println!();
    }
    println!("### Plans");
    println!();
    println!("| shape | tracestore plan | SQLite plan |");
    println!("|---|---|---|");
    for (k, p, s) in &plans {
        println!("| {k} | {p} | {s} |");
    }
    if mismatches.is_empty() {
        println!("\nAll shapes returned the same page on both engines.");
    } else {
        println!("\n### MISMATCHES\n");
        for m in &mismatches {
            println!("- {m}");
        }
    }

    let doc = json!({ "rows": json_rows(&rows, &extras), "traces": l_traces });
    let path = json_path(&a);
    if let Some(d) = path.parent() {
        let _ = std::fs::create_dir_all(d);
    }
    match std::fs::write(&path, serde_json::to_string_pretty(&doc).unwrap()) {
        Ok(()) => eprintln!("wrote {}", path.display()),
        Err(e) => eprintln!("could not write {}: {e}", path.display()),
    }
    eprintln!("total {:.1} s", began.elapsed().as_secs_f64());
}

/// The JSON field of a unit: `us`, `per_s` (traces or spans per second) or `bytes_per_trace`.
fn unit_field(unit: &str) -> &'static str {
    match unit {
        "us" => "us",
        "traces/s" | "spans/s" => "per_s",
        "B/trace" => "bytes_per_trace",
        _ => "value",
    }
}

/// The report's JSON rows: one object per shape and engine (`tracestore`, `sqlite`), its value
/// in `us`, `per_s`, `bytes_per_trace` or (commits) `p50_us`, `p99_us` and `mean_us`, beside a
/// `label`, the `ratio` where the table has one, and the plan of a query shape. The payload and
/// OTLP rows compare tracestore with itself: the value and its baseline are two tracestore rows,
/// the first naming the second in `baseline`. A value that does not exist (a page past the
/// end) is null.
fn json_rows(rows: &[Row], extras: &[Extra]) -> Vec<serde_json::Value> {
    let num = |v: f64| {
        if v.is_finite() {
            json!(v)
        } else {
            serde_json::Value::Null
        }
    };
    let mut out: Vec<serde_json::Map<String, serde_json::Value>> = Vec::new();
    let mut put = |shape: &str,
                   engine: &str,
                   field: &str,
                   value: f64,
                   extra: Vec<(&str, serde_json::Value)>| {
        let i = match out
            .iter()
            .position(|o| o["shape"] == shape && o["engine"] == engine)
        {
            Some(i) => i,
            None => {
                let mut o = serde_json::Map::new();
                o.insert("shape".into(), json!(shape));
                o.insert("engine".into(), json!(engine));
                out.push(o);
                out.len() - 1
            }
        };
        let o = &mut out[i];
        o.entry(field).or_insert(num(value));
        for (k, v) in extra {
            o.entry(k).or_insert(v);
        }
    };
    for r in rows {
        let (ts_plan, sq_plan) = match &r.plans {
            Some((a, b)) => (json!(a), json!(b)),
            None => (serde_json::Value::Null, serde_json::Value::Null),
        };
        let label = json!(r.shape);
        let mut ts_extra = vec![("label", label.clone()), ("ratio", num(r.ratio))];
        let mut sq_extra = vec![("label", label)];
        if r.plans.is_some() {
            ts_extra.push(("plan", ts_plan));
            sq_extra.push(("plan", sq_plan));
        }
        if r.ts.is_nan() {
            ts_extra.push(("note", json!(r.note)));
        }
        put(&r.key, "tracestore", r.field, r.ts, ts_extra);
        put(&r.key, "sqlite", r.field, r.sq, sq_extra);
    }
    for e in extras {
        let field = unit_field(e.unit);
        put(
            e.key,
            "tracestore",
            field,
            e.value,
            vec![
                ("label", json!(e.shape)),
                ("section", json!(e.section)),
                ("baseline", json!(e.base_key)),
                ("ratio", num(e.ratio)),
            ],
        );
        put(
            e.base_key,
            "tracestore",
            field,
            e.base,
            vec![("label", json!(e.base_of)), ("section", json!(e.section))],
        );
    }
    out.into_iter().map(serde_json::Value::Object).collect()
}

/// Prints the SQLite peer's page SQL, parameters and plan of the shapes `keys` (comma-separated).
fn print_sql(l: &Loaded, keys: &str) {
    for shape in shapes() {
        if !keys.split(',').any(|k| k == shape.key) {
            continue;
        }
        let (ShapeKind::List(f) | ShapeKind::Page(f, _)) = &shape.kind else {
            continue;
        };
        match l.sqlite.page_sql_of(PROJECT, f, None) {
            Some((sql, args)) => eprintln!(
                "{}: {sql}\n  args {args:?}\n  plan {}",
                shape.key,
                l.sqlite.explain(PROJECT, f, None)
            ),
            None => eprintln!("{}: nothing can match", shape.key),
        }
    }
}

/// Runs only tracestore's side of one shape in a loop, for `perf record -D <load ms>`.
fn profile(l: &Loaded, key: &str, secs: f64) {
    let shape = shapes()
        .into_iter()
        .find(|s| s.key == key)
        .expect("unknown shape key");
    let p = prepare(l, &shape).expect("prepare").expect("page exists");
    verify(l, &shape, &p).expect("verify");
    eprintln!("PROFILE START {key}: {}", plan_of(l, &p));
    let t = Instant::now();
    let mut i = 0;
    while t.elapsed().as_secs_f64() < secs {
        run_tracestore(l, &p, i);
        i += 1;
    }
    eprintln!(
        "PROFILE END {key}: {i} runs, {:.1} µs each",
        t.elapsed().as_secs_f64() * 1e6 / i as f64
    );
}

fn push_disk(rows: &mut Vec<Row>, ts_bytes: f64, sq_bytes: f64) {
    rows.push(Row {
        key: "disk".into(),
        field: "bytes_per_trace",
        plans: None,
        shape: "disk after load".into(),
        ts: ts_bytes,
        sq: sq_bytes,
        ratio: sq_bytes / ts_bytes,
        unit: "B/trace",
        note: "allocated bytes on disk (st_blocks x 512): tracestore file; SQLite db + wal after \
               wal_checkpoint(TRUNCATE)"
            .into(),
    });
}

/// Times `commits` single-trace durable transactions per engine, alternating engines, into the
/// loaded stores (reopened with durable settings). Consumes the loaded stores.
fn drop_and_time_commits(
    l: Loaded,
    commits: usize,
    no_compact: bool,
    rows: &mut Vec<Row>,
    ts_bytes: f64,
    sq_bytes: f64,
) {
    let Loaded {
        dir,
        store,
        store_path,
        sqlite,
        ..
    } = l;
    drop(store);
    let store = tracestore::Store::open(&store_path).expect("reopen store (Immediate)");
    sqlite.set_sync(Sync::Full);
    let mut sqlite = sqlite;
    let fresh = fresh_traces(commits + 20, 7);
    let (mut ts, mut sq) = (Vec::new(), Vec::new());
    for (i, t) in fresh.into_iter().enumerate() {
        let one = vec![t];
        let t0 = Instant::now();
        sqlite.ingest(PROJECT, &one);
        let d_sq = t0.elapsed();
        let t1 = Instant::now();
        store.ingest(PROJECT, one).expect("ingest");
        let d_ts = t1.elapsed();
        if i >= 20 {
            // the first 20 warm up
            sq.push(d_sq.as_secs_f64() * 1e6);
            ts.push(d_ts.as_secs_f64() * 1e6);
        }
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
    let (ts_mean, sq_mean) = (mean(&ts), mean(&sq));
    let (ts_med, sq_med) = (median(&mut ts), median(&mut sq));
    // `median` sorted both vectors.
    let p99 = |v: &[f64]| {
        v[((v.len() * 99).div_ceil(100))
            .saturating_sub(1)
            .min(v.len() - 1)]
    };
    let (ts_p99, sq_p99) = (p99(&ts), p99(&sq));
    eprintln!(
        "single-trace durable commit: tracestore {} SQLite {} (p99 {} vs {}, mean {} vs {})",
        fmt_us(ts_med),
        fmt_us(sq_med),
        fmt_us(ts_p99),
        fmt_us(sq_p99),
        fmt_us(ts_mean),
        fmt_us(sq_mean)
    );
    rows.push(Row {
        key: "commit".into(),
        field: "p50_us",
        plans: None,
        shape: "ingest one trace per durable commit (latency)".into(),
        ts: ts_med,
        sq: sq_med,
        ratio: sq_med / ts_med,
        unit: "us",
        note: format!("median of {commits} commits into the loaded stores"),
    });
    rows.push(Row {
        key: "commit".into(),
        field: "p99_us",
        plans: None,
        shape: "ingest one trace per durable commit (p99 latency)".into(),
        ts: ts_p99,
        sq: sq_p99,
        ratio: sq_p99 / ts_p99,
        unit: "us",
        note: "diagnostic: includes the commits that fold the write buffer".into(),
    });
    rows.push(Row {
        key: "commit".into(),
        field: "mean_us",
        plans: None,
        shape: "ingest one trace per durable commit (mean latency)".into(),
        ts: ts_mean,
        sq: sq_mean,
        ratio: sq_mean / ts_mean,
        unit: "us",
        note: "diagnostic: mean of the same commits".into(),
    });
    push_disk(rows, ts_bytes, sq_bytes);
    drop(store);
    if no_compact {
        return;
    }
    // Diagnostic: how much of tracestore's file is free pages (compaction returns them).
    let mut store = tracestore::Store::open(&store_path).expect("reopen store");
    let t = Instant::now();
    let before = file_len(&store_path);
    store.compact().expect("compact");
    drop(store);
    let after = file_len(&store_path);
    sqlite.checkpoint();
    sqlite.conn.execute_batch("VACUUM;").expect("vacuum");
    sqlite.checkpoint();
    sqlite.checkpoint();
    let sq_after = sqlite.disk_bytes();
    let traces = before as f64 / ts_bytes; // the loaded trace count
    eprintln!(
        "compact: tracestore {before} -> {after} bytes in {:.1} s; SQLite after VACUUM {sq_after} bytes",
        t.elapsed().as_secs_f64()
    );
    let stats = redb_table_stats(&store_path, traces.round() as usize);
    eprintln!("\ntracestore tables after compact, bytes per trace (4 KiB pages):");
    eprintln!("| table | entries | pages | page B/trace | stored B/trace | metadata B/trace | fragmented B/trace |");
    eprintln!("|---|---:|---:|---:|---:|---:|---:|");
    for r in &stats {
        eprintln!("{r}");
    }
    rows.push(Row {
        key: "disk_compacted".into(),
        field: "bytes_per_trace",
        plans: None,
        shape: "disk after tracestore compact / SQLite VACUUM (diagnostic)".into(),
        ts: after as f64 / traces,
        sq: sq_after as f64 / traces,
        ratio: sq_after as f64 / after as f64,
        unit: "B/trace",
        note: format!("after the {commits}+20 extra single-trace commits"),
    });
    drop(dir);
}

/// The payload rows: the same `n` demo traces without and with about 20 KiB of payloads each,
/// loaded like the main stores (`mode`). Q1 on both (listing must not read payloads), ingest
/// throughput, bytes per trace, and the raw payload JSON against the `payloads` table.
fn payload_rows(
    n: usize,
    mode: LoadMode,
    max: Duration,
    extras: &mut Vec<Extra>,
    mismatches: &mut Vec<String>,
) {
    let durability = match mode {
        LoadMode::Durable => tracestore::Durability::Immediate,
        LoadMode::Deferred => tracestore::Durability::Deferred,
    };
    let t = Instant::now();
    let p = load_payload_pair(n, durability);
    let raw_per_trace = p.raw_payload_bytes as f64 / p.traces as f64;
    eprintln!(
        "payload pair: {} traces, {raw_per_trace:.0} B of raw payload JSON per trace, built in {:.1} s \
         (ingest: without {:.1} s, with {:.1} s)",
        p.traces,
        t.elapsed().as_secs_f64(),
        p.plain_secs,
        p.payload_secs
    );
    let section = "Payloads: the same demo traces without and with ~20 KiB of payloads each";
    let n = p.traces as f64;

    // Q1 on both: the same page, timed in the same run.
    let req = Filter::default().request(PAGE);
    let ids = |s: &tracestore::Store| -> Vec<String> {
        let page = s.query(PROJECT, &req).expect("query");
        page.traces.into_iter().map(|t| t.id).collect()
    };
    if ids(&p.plain) != ids(&p.payload) {
        mismatches.push("payload pair: Q1 pages differ between the two stores".into());
    }
    let (plain_us, plain_runs) = measure(max, |_| {
        std::hint::black_box(p.plain.query(PROJECT, &req).unwrap());
    });
    let (payload_us, payload_runs) = measure(max, |_| {
        std::hint::black_box(p.payload.query(PROJECT, &req).unwrap());
    });
    eprintln!(
        "payload Q1: with payloads {} ({payload_runs} runs), without {} ({plain_runs} runs)",
        fmt_us(payload_us),
        fmt_us(plain_us)
    );
    extras.push(Extra {
        section,
        key: "payload.Q1",
        base_key: "payload.Q1.plain",
        shape: "Q1 no filter, with payloads".into(),
        value: payload_us,
        base: plain_us,
        base_of: "without payloads",
        ratio: payload_us / plain_us,
        unit: "us",
        note: format!(
            "{} traces per store; ratio = with / without (target ≤ 1.2: listing reads no payload)",
            p.traces
        ),
    });
    extras.push(Extra {
        section,
        key: "payload.ingest",
        base_key: "payload.ingest.plain",
        shape: format!("ingest batched, load of {}, with payloads", p.traces),
        value: n / p.payload_secs,
        base: n / p.plain_secs,
        base_of: "without payloads",
        ratio: p.plain_secs / p.payload_secs,
        unit: "traces/s",
        note: format!(
            "{}; ratio = with / without",
            if mode == LoadMode::Durable {
                "durable"
            } else {
                "not durable"
            }
        ),
    });

    // Space: the file on disk and storage_stats, per trace.
    let (plain_use, payload_use) = (usage(&p.plain), usage(&p.payload));
    let plain_disk = file_allocated(&p.plain_path) as f64 / n;
    let payload_disk = file_allocated(&p.payload_path) as f64 / n;
    extras.push(Extra {
        section,
        key: "payload.disk",
        base_key: "payload.disk.plain",
        shape: "disk after load, with payloads".into(),
        value: payload_disk,
        base: plain_disk,
        base_of: "without payloads",
        ratio: payload_disk / plain_disk,
        unit: "B/trace",
        note: "allocated bytes of the file (st_blocks x 512); ratio = with / without".into(),
    });
    extras.push(Extra {
        section,
        key: "payload.tables",
        base_key: "payload.tables.plain",
        shape: "all tables (storage_stats), with payloads".into(),
        value: payload_use.all_tables as f64 / n,
        base: plain_use.all_tables as f64 / n,
        base_of: "without payloads",
        ratio: payload_use.all_tables as f64 / plain_use.all_tables as f64,
        unit: "B/trace",
        note: "entries + B-tree metadata + fragmentation of every table; ratio = with / without"
            .into(),
    });
    let stored = payload_use.payload_entries as f64 / n;
    extras.push(Extra {
        section,
        key: "payload.entries",
        base_key: "payload.raw",
        shape: "payloads table entries (stored, zstd from 1 KiB)".into(),
        value: stored,
        base: raw_per_trace,
        base_of: "raw payload JSON",
        ratio: raw_per_trace / stored,
        unit: "B/trace",
        note: format!(
            "ratio = raw / stored, the compression ratio (>1: compression pays); the whole \
             payloads table with B-tree pages is {:.0} B/trace",
            payload_use.payload_table as f64 / n
        ),
    });
    // What the table really occupies: redb stores a value larger than a page on whole pages of
    // its own, so the page rounding can take back part of what compression saved.
    let table = payload_use.payload_table as f64 / n;
    extras.push(Extra {
        section,
        key: "payload.table",
        base_key: "payload.raw",
        shape: "payloads table with its pages (entries + metadata + fragmentation)".into(),
        value: table,
        base: raw_per_trace,
        base_of: "raw payload JSON",
        ratio: raw_per_trace / table,
        unit: "B/trace",
        note: "ratio = raw / table: what compression saves in the file once pages are counted"
            .into(),
    });
    drop(p);
}

/// The OTLP rows: `requests` requests of 512 spans per encoding, each into a fresh file-backed
/// store with default settings (durable), beside tracestore's own JSON ingest of the same
/// traces. `load_spans_per_sec` is the main load's figure (`Store::ingest` of demo traces).
fn otlp_rows(
    requests: usize,
    load_spans_per_sec: f64,
    extras: &mut Vec<Extra>,
    mismatches: &mut Vec<String>,
) {
    let section = "OTLP ingest: requests of 512 spans, fresh file-backed store, default (durable)";
    let traces = synth_traces(requests * OTLP_BATCH_SPANS, 11);
    let spans: usize = traces.iter().map(SynthTrace::span_count).sum();
    let messages = otlp_requests(&traces, OTLP_BATCH_SPANS);
    eprintln!(
        "OTLP: {} traces, {spans} spans, {} requests of at most {OTLP_BATCH_SPANS} spans",
        traces.len(),
        messages.len()
    );

    // tracestore's own JSON ingest of the same traces: the baseline of the OTLP rows.
    let dir = temp_dir();
    let bodies = json_bodies(&traces, OTLP_BATCH_SPANS);
    let store = fresh_store(&dir.path().join("json.redb"));
    let native = ingest_json_bodies(&store, &bodies);
    if let Err(e) = check_stored(&store, &traces) {
        mismatches.push(format!("ingest_json: {e}"));
    }
    drop(store);
    eprintln!(
        "ingest_json: {} spans in {:.2} s, {:.0} spans/s ({} bodies, {:.0} KiB each)",
        native.spans,
        native.secs,
        native.spans_per_sec(),
        native.requests,
        native.body_bytes as f64 / native.requests as f64 / 1024.0
    );
    extras.push(Extra {
        section,
        key: "otlp.ingest_json",
        base_key: "ingest_batched.spans",
        shape: "tracestore JSON ingest_json, whole traces of ~512 spans per body".into(),
        value: native.spans_per_sec(),
        base: load_spans_per_sec,
        base_of: "main load, Store::ingest",
        ratio: native.spans_per_sec() / load_spans_per_sec,
        unit: "spans/s",
        note: format!(
            "{} bodies of {:.0} KiB; these spans carry inputs and outputs of a few hundred \
             bytes, the main load's none; baseline: the batched load above in spans/s",
            native.requests,
            native.body_bytes as f64 / native.requests as f64 / 1024.0
        ),
    });

    let mut one_client = f64::NAN;
    for wire in [Wire::Protobuf, Wire::Json, Wire::GzipProtobuf] {
        let bodies = encode(&messages, wire);
        let store = fresh_store(&dir.path().join(format!("otlp-{wire:?}.redb")));
        let run = ingest_otlp_bodies(&store, &bodies, wire);
        if run.rejected > 0 || run.spans != spans as u64 {
            mismatches.push(format!(
                "OTLP {}: {} spans accepted, {} rejected, {spans} sent",
                wire.label(),
                run.spans,
                run.rejected
            ));
        }
        let stored = check_stored(&store, &traces);
        if let Err(e) = &stored {
            mismatches.push(format!("OTLP {}: {e}", wire.label()));
        }
        drop(store);
        // Counted by what was sent, so a run that stores nothing is not reported as fast.
        let per_sec = spans as f64 / run.secs;
        if wire == Wire::Protobuf {
            one_client = per_sec;
        }
        eprintln!(
            "OTLP {}: {spans} spans in {:.2} s, {per_sec:.0} spans/s ({} requests, {:.0} KiB each)",
            wire.label(),
            run.secs,
            run.requests,
            run.body_bytes as f64 / run.requests as f64 / 1024.0
        );
        extras.push(Extra {
            section,
            key: wire.key(),
            base_key: "otlp.ingest_json",
            shape: format!("OTLP {}, decode + ingest_otlp", wire.label()),
            value: per_sec,
            base: native.spans_per_sec(),
            base_of: "ingest_json",
            ratio: per_sec / native.spans_per_sec(),
            unit: "spans/s",
            note: format!(
                "{} requests of {:.0} KiB{}{}; target ≥ 50k spans/s (protobuf)",
                run.requests,
                run.body_bytes as f64 / run.requests as f64 / 1024.0,
                if wire == Wire::GzipProtobuf {
                    ", gunzip timed"
                } else {
                    ""
                },
                if stored.is_err() {
                    "; NOT STORED (see mismatches)"
                } else {
                    ""
                }
            ),
        });
    }

    // The same protobuf requests from several exporters at once, as a server sees them.
    let bodies = encode(&messages, Wire::Protobuf);
    let store = fresh_store(&dir.path().join("otlp-concurrent.redb"));
    let run = ingest_otlp_concurrent(&store, &bodies, OTLP_CLIENTS);
    if run.rejected > 0 || run.spans != spans as u64 {
        mismatches.push(format!(
            "OTLP protobuf, {OTLP_CLIENTS} clients: {} spans accepted, {} rejected, {spans} sent",
            run.spans, run.rejected
        ));
    }
    let stored = check_stored(&store, &traces);
    if let Err(e) = &stored {
        mismatches.push(format!("OTLP protobuf, {OTLP_CLIENTS} clients: {e}"));
    }
    drop(store);
    let per_sec = spans as f64 / run.secs;
    eprintln!(
        "OTLP protobuf, {OTLP_CLIENTS} clients: {spans} spans in {:.2} s, {per_sec:.0} spans/s",
        run.secs
    );
    extras.push(Extra {
        section,
        key: "otlp.protobuf_concurrent",
        base_key: Wire::Protobuf.key(),
        shape: format!("OTLP protobuf, {OTLP_CLIENTS} concurrent clients, decode + ingest_otlp"),
        value: per_sec,
        base: one_client,
        base_of: "one client",
        ratio: per_sec / one_client,
        unit: "spans/s",
        note: format!(
            "the same {} requests, {OTLP_CLIENTS} threads each sending the next one; wall clock; \
             concurrent requests share commits and fsyncs; target ≥ 50k spans/s{}",
            run.requests,
            if stored.is_err() {
                "; NOT STORED (see mismatches)"
            } else {
                ""
            }
        ),
    });
    drop(dir);
}
