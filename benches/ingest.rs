//! Criterion benchmarks of ingest on tracestore and on the SQLite peer, both durable
//! (tracestore `Durability::Immediate`, SQLite WAL + `synchronous=FULL`):
//! - batched: 5 transactions of 1000 traces into a fresh store (throughput in traces);
//! - single: one trace per durable transaction into a store holding 10k traces (latency per
//!   commit).
//!
//! ```text
//! cargo bench --bench ingest
//! ```

mod common;

use common::*;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use std::time::{Duration, Instant};
use tracestore::{Durability, Store};

const BATCHES: usize = 5;

fn batched(c: &mut Criterion) {
    let traces = fresh_traces(BATCHES * BATCH, 1);
    let batches: Vec<Vec<_>> = traces.chunks(BATCH).map(<[_]>::to_vec).collect();
    let mut g = c.benchmark_group("ingest batched 1000/txn, durable");
    g.throughput(Throughput::Elements((BATCHES * BATCH) as u64))
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(10));
    g.bench_function("tracestore", |b| {
        b.iter_batched(
            || {
                let dir = temp_dir();
                let store = Store::builder()
                    .durability(Durability::Immediate)
                    .open(dir.path().join("t.redb"))
                    .unwrap();
                (dir, store, batches.clone())
            },
            |(dir, store, batches)| {
                for batch in batches {
                    store.ingest(PROJECT, batch).unwrap();
                }
                (dir, store)
            },
            BatchSize::PerIteration,
        )
    });
    g.bench_function("sqlite", |b| {
        b.iter_batched(
            || {
                let dir = temp_dir();
                let db = Sqlite::open(&dir.path().join("t.sqlite"), Sync::Full);
                (dir, db)
            },
            |(dir, mut db)| {
                for batch in &batches {
                    db.ingest(PROJECT, batch);
                }
                (dir, db)
            },
            BatchSize::PerIteration,
        )
    });
    g.finish();
}

fn single(c: &mut Criterion) {
    const PRELOAD: usize = 10_000;
    let pre = fresh_traces(PRELOAD, 2);
    let dir = temp_dir();
    let store = Store::builder()
        .durability(Durability::Immediate)
        .open(dir.path().join("t.redb"))
        .unwrap();
    let mut db = Sqlite::open(&dir.path().join("t.sqlite"), Sync::Full);
    for batch in pre.chunks(BATCH) {
        store.ingest(PROJECT, batch.to_vec()).unwrap();
        db.ingest(PROJECT, batch);
    }
    let mut g = c.benchmark_group("ingest one trace per durable commit");
    g.throughput(Throughput::Elements(1))
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5));
    let mut seed = 100u64;
    g.bench_function("tracestore", |b| {
        b.iter_custom(|iters| {
            seed += 1;
            let fresh = fresh_traces(iters as usize, seed);
            let t = Instant::now();
            for tr in fresh {
                store.ingest(PROJECT, vec![tr]).unwrap();
            }
            t.elapsed()
        })
    });
    g.bench_function("sqlite", |b| {
        b.iter_custom(|iters| {
            seed += 1;
            let fresh = fresh_traces(iters as usize, seed);
            let t = Instant::now();
            for tr in &fresh {
                db.ingest(PROJECT, std::slice::from_ref(tr));
            }
            t.elapsed()
        })
    });
    g.finish();
}

criterion_group!(benches, batched, single);
criterion_main!(benches);
