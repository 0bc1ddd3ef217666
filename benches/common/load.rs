//! Loading both engines with the same data: the data size and generator configuration, the
//! enrichment of the generated traces (userId, failed spans), the temporary directory, the
//! timed load, and fresh traces for the ingest benchmarks.

use super::sqlite::{Sqlite, Sync};
use super::{BATCH, PROJECT};
use std::path::PathBuf;
use std::time::{Duration, Instant};
pub use tracestore::demo::enrich;
use tracestore::demo::{DemoConfig, Generator};
use tracestore::{Durability, Store, TraceInput};

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

/// Both engines loaded with the same batches.
pub struct Loaded {
    pub dir: tempfile::TempDir,
    pub store: Store,
    pub store_path: PathBuf,
    pub sqlite: Sqlite,
    pub traces: usize,
    /// Spans of the loaded traces.
    pub spans: usize,
    /// Ids of the main project, sampled evenly (for get-by-id).
    pub sample_ids: Vec<String>,
    /// Seconds spent ingesting (excluding generation), per engine.
    pub tracestore_secs: f64,
    pub sqlite_secs: f64,
    pub gen_secs: f64,
    /// Seconds of SQLite's `ANALYZE` and the peer's planner statistics after the load (not in
    /// `sqlite_secs`).
    pub analyze_secs: f64,
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
    let mut spans = 0usize;
    let mut demo_seen = 0usize;
    let mut sample_ids = Vec::new();
    let every = (n / 2000).max(1);
    let began = Instant::now();
    let mut next_report = 100_000;
    while done < n {
        let t0 = Instant::now();
        let mut batch = g.next_batch(BATCH);
        for (_, traces) in &mut batch {
            traces.iter_mut().for_each(enrich);
        }
        gen += t0.elapsed();
        if batch.is_empty() {
            break;
        }
        for (project, traces) in batch {
            done += traces.len();
            spans += traces.iter().map(|t| t.spans.len()).sum::<usize>();
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
    let mut analyze_secs = 0.0;
    if std::env::var("TRACESTORE_BENCH_SQLITE_ANALYZE").map_or(true, |v| v != "0") {
        let t = Instant::now();
        sqlite.analyze();
        analyze_secs = t.elapsed().as_secs_f64();
        if progress {
            eprintln!("  SQLite ANALYZE and planner statistics: {analyze_secs:.1} s");
        }
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
        spans,
        sample_ids,
        tracestore_secs: ts.as_secs_f64(),
        sqlite_secs: sq.as_secs_f64(),
        gen_secs: gen.as_secs_f64(),
        analyze_secs,
        durable: mode == LoadMode::Durable,
    }
}

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
            enrich(&mut t);
            t
        })
        .collect()
}
