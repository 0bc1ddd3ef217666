//! The comparison report: loads tracestore and the SQLite peer with the same data, verifies that
//! every shape returns the same page on both, times every shape (median over many runs,
//! `std::time::Instant`), measures single-trace durable commits and disk use, and prints a
//! markdown table. The same figures go to `target/bench-report.json`.
//!
//! ```text
//! cargo bench --bench report -- --traces 1000000
//! ```
//!
//! Options: `--traces N` (default 100000), `--deferred-load` (bulk load with tracestore
//! `Durability::Deferred` and SQLite `synchronous=OFF` instead of durable commits on both),
//! `--json PATH`, `--commits N` (single-trace commits timed per engine, default 200),
//! `--max-secs S` (time cap per shape and engine, default 4), `--only Q1,Q4` (some shapes),
//! `--profile KEY [--profile-secs S]` (after the load, loop tracestore's side of one shape for
//! `perf record -D`), `--no-compact` (skip the diagnostic compaction and VACUUM at the end, which
//! take long at 10M traces). Unknown arguments (cargo passes `--bench`) are ignored.

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
            "--deferred-load" => a.deferred = true,
            "--no-compact" => a.no_compact = true,
            _ => {} // `--bench` and anything else cargo passes
        }
        i += 1;
    }
    a
}

struct Row {
    shape: String,
    ts: f64,
    sq: f64,
    /// >1 means tracestore is better.
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
    let l = load(a.traces, mode, true);
    eprintln!(
        "loaded {} traces in {:.1} s: tracestore {:.1} s, SQLite {:.1} s, generator {:.1} s",
        l.traces,
        began.elapsed().as_secs_f64(),
        l.tracestore_secs,
        l.sqlite_secs,
        l.gen_secs
    );

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
        eprintln!(
            "{:<7} tracestore {:>10} ({ts_runs} runs)  SQLite {:>10} ({sq_runs} runs)  rows {n}  plan: {plan}",
            shape.key,
            fmt_us(ts),
            fmt_us(sq)
        );
        plans.push((shape.key.clone(), plan.clone(), sql_plan));
        rows.push(Row {
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
    if a.commits > 0 {
        drop_and_time_commits(l, a.commits, a.no_compact, &mut rows, ts_bytes, sq_bytes);
    } else {
        push_disk(&mut rows, ts_bytes, sq_bytes);
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

    let arr: Vec<serde_json::Value> = rows
        .iter()
        .map(|r| {
            let unit = if r.unit == "us" {
                String::new()
            } else {
                format!(" ({})", r.unit)
            };
            let num = |v: f64| {
                if v.is_nan() {
                    serde_json::Value::Null
                } else {
                    json!(v)
                }
            };
            json!({
                "shape": format!("{}{}", r.shape, unit),
                "tracestore_us": num(r.ts),
                "sqlite_us": num(r.sq),
                "ratio": num(r.ratio),
            })
        })
        .collect();
    let path = json_path(&a);
    if let Some(d) = path.parent() {
        let _ = std::fs::create_dir_all(d);
    }
    match std::fs::write(&path, serde_json::to_string_pretty(&arr).unwrap()) {
        Ok(()) => eprintln!("wrote {}", path.display()),
        Err(e) => eprintln!("could not write {}: {e}", path.display()),
    }
    eprintln!("total {:.1} s", began.elapsed().as_secs_f64());
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
        shape: "ingest one trace per durable commit (latency)".into(),
        ts: ts_med,
        sq: sq_med,
        ratio: sq_med / ts_med,
        unit: "us",
        note: format!("median of {commits} commits into the loaded stores"),
    });
    rows.push(Row {
        shape: "ingest one trace per durable commit (p99 latency)".into(),
        ts: ts_p99,
        sq: sq_p99,
        ratio: sq_p99 / ts_p99,
        unit: "us",
        note: "diagnostic: includes the commits that fold the write buffer".into(),
    });
    rows.push(Row {
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
        shape: "disk after tracestore compact / SQLite VACUUM (diagnostic)".into(),
        ts: after as f64 / traces,
        sq: sq_after as f64 / traces,
        ratio: sq_after as f64 / after as f64,
        unit: "B/trace",
        note: format!("after the {commits}+20 extra single-trace commits"),
    });
    drop(dir);
}
