//! Criterion benchmarks of every query shape (see `common::shapes`) on tracestore and on the
//! SQLite peer, loaded with the same data. Size from `TRACESTORE_BENCH_TRACES` (default 100000).
//!
//! ```text
//! TRACESTORE_BENCH_TRACES=100000 cargo bench --bench queries
//! ```
//!
//! The load is durable on both engines (tracestore `Durability::Immediate`, SQLite WAL +
//! `synchronous=FULL`). Every shape is verified equal on both engines before it is timed.

mod common;

use common::*;
use criterion::{criterion_group, criterion_main, Criterion};
use std::time::Duration;

fn queries(c: &mut Criterion) {
    let n = traces_from_env(100_000);
    eprintln!("loading {n} traces into tracestore and SQLite...");
    let l = load(n, LoadMode::Durable, true);
    l.sqlite.checkpoint();
    for shape in shapes() {
        let prepared = match prepare(&l, &shape) {
            Ok(Some(p)) => p,
            Ok(None) => {
                eprintln!("{}: page does not exist at {n} traces, skipped", shape.key);
                continue;
            }
            Err(e) => panic!("engines disagree: {e}"),
        };
        if let Err(e) = verify(&l, &shape, &prepared) {
            panic!("engines disagree: {e}");
        }
        eprintln!(
            "{} {}: tracestore plan {}",
            shape.key,
            shape.label,
            plan_of(&l, &prepared)
        );
        let mut g = c.benchmark_group(format!("{} {}", shape.key, shape.label));
        g.warm_up_time(Duration::from_millis(500))
            .measurement_time(Duration::from_secs(2))
            .sample_size(30);
        let mut i = 0usize;
        g.bench_function("tracestore", |b| {
            b.iter(|| {
                i += 1;
                run_tracestore(&l, &prepared, i)
            })
        });
        let mut i = 0usize;
        g.bench_function("sqlite", |b| {
            b.iter(|| {
                i += 1;
                run_sqlite(&l, &prepared, i)
            })
        });
        g.finish();
    }
}

criterion_group!(benches, queries);
criterion_main!(benches);
