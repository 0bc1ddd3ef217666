//! The ClickHouse report: the same demo traces in the embedded engine and in the ClickHouse
//! engine (one server, and two shards when given), every shape of the report checked equal on
//! all of them (page, total, facets), then timed: p50 and p99 per shape and engine, through
//! `Store` (so the ClickHouse figures include the HTTP round trips), and the ingest throughput of
//! the load. Not a race: it shows what moving costs per query, and where ClickHouse's scans
//! stand. Markdown on stdout; rows in `target/bench-clickhouse.json`.
//!
//! ```text
//! cargo bench --bench clickhouse -- --traces 1000000 --url http://127.0.0.1:8123 \
//!     [--shards http://127.0.0.1:18124,http://127.0.0.1:18125 --cluster ts_two_shards]
//! ```
//!
//! Options: `--traces N` (default 100000), `--url URL` (default `TRACESTORE_CLICKHOUSE_URL`),
//! `--shards URL,URL --cluster NAME` (a second ClickHouse column on that cluster, created through
//! each server's URL), `--max-secs S` (time cap per shape and engine, default 3), `--only Q1,Q4`,
//! `--json PATH`. Each run loads into new databases (`bench_<pid>`), dropped at the end.

mod common;

use common::*;
use serde_json::json;
use std::time::{Duration, Instant};
use tracestore::{ClickHouseConfig, Durability, QueryRequest, Store};

struct Args {
    traces: usize,
    url: Option<String>,
    shards: Option<(Vec<String>, String)>,
    max_secs: f64,
    only: Option<String>,
    json: String,
}

fn args() -> Args {
    let mut a = Args {
        traces: 100_000,
        url: std::env::var("TRACESTORE_CLICKHOUSE_URL").ok(),
        shards: None,
        max_secs: 3.0,
        only: None,
        json: "target/bench-clickhouse.json".into(),
    };
    let mut it = std::env::args().skip(1);
    let mut shards: Option<Vec<String>> = None;
    let mut cluster: Option<String> = None;
    while let Some(k) = it.next() {
        let mut v = || it.next().unwrap_or_else(|| panic!("{k} needs a value"));
        match k.as_str() {
            "--traces" => a.traces = v().parse().expect("--traces N"),
            "--url" => a.url = Some(v()),
            "--shards" => shards = Some(v().split(',').map(str::to_string).collect()),
            "--cluster" => cluster = Some(v()),
            "--max-secs" => a.max_secs = v().parse().expect("--max-secs S"),
            "--only" => a.only = Some(v()),
            "--json" => a.json = v(),
            _ => {} // cargo passes --bench
        }
    }
    if let (Some(s), Some(c)) = (shards, cluster) {
        a.shards = Some((s, c));
    }
    a
}

/// Time samples of `f` in µs: a few warm-up runs, then at least 15 runs and at most `max`
/// (or 2000 runs).
fn samples(max: Duration, mut f: impl FnMut(usize)) -> Vec<f64> {
    for i in 0..3 {
        f(i);
    }
    let mut out = Vec::new();
    let began = Instant::now();
    let mut i = 3;
    while out.len() < 15 || (began.elapsed() < max && out.len() < 2000) {
        let t = Instant::now();
        f(i);
        out.push(t.elapsed().as_secs_f64() * 1e6);
        i += 1;
    }
    out.sort_by(f64::total_cmp);
    out
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn fmt(us: f64) -> String {
    if us >= 1000.0 {
        format!("{:.2} ms", us / 1000.0)
    } else {
        format!("{us:.1} µs")
    }
}

/// A page as the engines must agree on it (no `createdAt`, cursor as a flag).
fn comparable(page: &tracestore::Page) -> serde_json::Value {
    let mut v = serde_json::to_value(page).unwrap();
    for t in v["traces"].as_array_mut().unwrap() {
        t.as_object_mut().unwrap().remove("createdAt");
    }
    v["nextCursor"] = json!(!v["nextCursor"].is_null());
    v
}

/// The request that reaches a shape's page: the first page's, or a cursor walked to page `n`.
fn request_of(s: &Store, shape: &Shape) -> Option<QueryRequest> {
    match &shape.kind {
        ShapeKind::List(f) => Some(f.request(PAGE)),
        ShapeKind::Page(f, n) => {
            let mut req = f.request(PAGE);
            for _ in 1..*n {
                let c = s.query(PROJECT, &req).unwrap().next_cursor?;
                req = QueryRequest::builder()
                    .cursor(&c)
                    .limit(PAGE as u32)
                    .build()
                    .unwrap();
            }
            Some(req)
        }
        ShapeKind::GetById => None,
    }
}

fn main() {
    let a = args();
    let Some(url) = a.url.clone() else {
        eprintln!("no ClickHouse: pass --url or set TRACESTORE_CLICKHOUSE_URL");
        std::process::exit(2);
    };
    let db = format!("bench_{}", std::process::id());
    let dir = temp_dir();
    let embedded = Store::builder()
        .durability(Durability::Deferred)
        .open(dir.path().join("traces.redb"))
        .unwrap();
    let mut engines: Vec<(String, Store)> = vec![("tracestore".into(), embedded)];
    engines.push((
        "clickhouse".into(),
        Store::builder()
            .open_clickhouse(&ClickHouseConfig::new(url.clone()).database(db.clone()))
            .expect("open ClickHouse"),
    ));
    if let Some((urls, cluster)) = &a.shards {
        engines.push((
            format!("clickhouse, {} shards", urls.len()),
            Store::builder()
                .open_clickhouse(
                    &ClickHouseConfig::new(urls[0].clone())
                        .database(db.clone())
                        .cluster(cluster.clone())
                        .shard_urls(urls.clone()),
                )
                .expect("open the cluster"),
        ));
    }

    // Load: the same batches into every engine, each timed alone.
    let mut g = tracestore::demo::Generator::new(demo_config(a.traces));
    let mut secs = vec![0.0f64; engines.len()];
    let mut ids: Vec<String> = Vec::new();
    let mut done = 0usize;
    let began = Instant::now();
    while done < a.traces {
        let mut batch = g.next_batch(BATCH);
        if batch.is_empty() {
            break;
        }
        for (p, traces) in &mut batch {
            traces.iter_mut().for_each(tracestore::demo::enrich);
            done += traces.len();
            if p == PROJECT && ids.len() < 2000 {
                ids.extend(traces.iter().step_by(50).map(|t| t.id.clone().unwrap()));
            }
        }
        for (i, (_, s)) in engines.iter().enumerate() {
            let t = Instant::now();
            for (p, traces) in &batch {
                s.ingest(p, traces.clone()).expect("ingest");
            }
            secs[i] += t.elapsed().as_secs_f64();
        }
        if done % 100_000 < BATCH {
            eprintln!("loaded {done} ({:.0} s)", began.elapsed().as_secs_f64());
        }
    }

    let max = Duration::from_secs_f64(a.max_secs);
    let mut rows = Vec::new();
    let mut table = Vec::new();
    let mut mismatches = 0;
    for shape in shapes() {
        if a.only
            .as_ref()
            .is_some_and(|o| !o.split(',').any(|k| k == shape.key))
        {
            continue;
        }
        let reqs: Vec<Option<QueryRequest>> =
            engines.iter().map(|(_, s)| request_of(s, &shape)).collect();
        if matches!(shape.kind, ShapeKind::Page(..)) && reqs.iter().any(Option::is_none) {
            continue;
        }
        // Every engine's answer equal to the embedded one's before anything is timed.
        let answers: Vec<serde_json::Value> = engines
            .iter()
            .zip(&reqs)
            .map(|((_, s), r)| match r {
                Some(r) => comparable(&s.query(PROJECT, r).unwrap()),
                None => json!(ids
                    .iter()
                    .take(20)
                    .map(|id| {
                        let mut v =
                            serde_json::to_value(s.get_trace(PROJECT, id).unwrap()).unwrap();
                        v.as_object_mut().unwrap().remove("createdAt");
                        v
                    })
                    .collect::<Vec<_>>()),
            })
            .collect();
        for (i, ans) in answers.iter().enumerate().skip(1) {
            if *ans != answers[0] {
                eprintln!("MISMATCH {} on {}", shape.key, engines[i].0);
                mismatches += 1;
            }
        }
        let mut cells = Vec::new();
        for ((name, s), r) in engines.iter().zip(&reqs) {
            let t = samples(max, |i| match r {
                Some(r) => {
                    s.query(PROJECT, r).unwrap();
                }
                None => {
                    s.get_trace(PROJECT, &ids[i % ids.len()]).unwrap();
                }
            });
            let (p50, p99) = (pct(&t, 0.5), pct(&t, 0.99));
            eprintln!(
                "{:<7} {name:<22} p50 {:>10} p99 {:>10} ({} runs)",
                shape.key,
                fmt(p50),
                fmt(p99),
                t.len()
            );
            rows.push(json!({"shape": shape.key, "engine": name, "p50_us": p50,
                             "p99_us": p99, "runs": t.len()}));
            cells.push(format!("{} / {}", fmt(p50), fmt(p99)));
        }
        table.push((format!("{} {}", shape.key, shape.label), cells));
    }
    let mut ingest = Vec::new();
    for ((name, _), s) in engines.iter().zip(&secs) {
        let per_s = done as f64 / s;
        rows.push(json!({"shape": "ingest_batched", "engine": name, "per_s": per_s}));
        ingest.push(format!("{:.1}k traces/s", per_s / 1000.0));
    }

    let names: Vec<&str> = engines.iter().map(|(n, _)| n.as_str()).collect();
    println!("\n{} traces; p50 / p99 per shape, through `Store`\n", done);
    println!("| shape | {} |", names.join(" | "));
    println!(
        "|---|{}|",
        names.iter().map(|_| "---:").collect::<Vec<_>>().join("|")
    );
    for (label, cells) in &table {
        println!("| {label} | {} |", cells.join(" | "));
    }
    println!(
        "| ingest, {BATCH}-trace batches (embedded: not durable) | {} |",
        ingest.join(" | ")
    );
    let out = json!({"traces": done, "rows": rows, "mismatches": mismatches});
    std::fs::write(&a.json, serde_json::to_string_pretty(&out).unwrap()).unwrap();
    eprintln!("wrote {}", a.json);

    // Drop the bench databases.
    let mut urls = vec![url];
    if let Some((s, _)) = &a.shards {
        urls.extend(s.iter().cloned());
    }
    for u in urls {
        let _ = std::process::Command::new("curl")
            .args([
                "-sf",
                &u,
                "--data-binary",
                &format!("DROP DATABASE IF EXISTS {db}"),
            ])
            .output();
    }
    if mismatches > 0 {
        eprintln!("{mismatches} mismatches");
        std::process::exit(1);
    }
}
