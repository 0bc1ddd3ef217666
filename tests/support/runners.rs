//! Runners: a sequence of operations against a store without faults ([`run_clean`]), and the
//! `ops_model` fuzz target's faulty run over a failing in-memory disk ([`run_faulty`]).

use super::backends::{FaultMode, FaultPlan, FaultyBackend, SharedMem};
use super::checks::{apply, assert_verified, store_matches};
use super::model::Model;
use super::ops::{ByteGen, Op};
use std::sync::Arc;
use tracestore::{ErrorCode, Store};

/// Runs `ops` against a store opened by `open`, with no faults: every answer must equal the
/// model's, and every step ends with `verify()` clean. `Reopen` drops the store and opens it
/// again, which must preserve every acknowledged write.
pub fn run_clean(ops: &[Op], mut open: impl FnMut() -> Store) -> Model {
    let mut model = Model::default();
    let mut store = Some(open());
    for (i, op) in ops.iter().enumerate() {
        if *op == Op::Reopen {
            drop(store.take());
            let mut s = open();
            assert!(
                s.check_integrity().expect("integrity check runs"),
                "step {i}: redb integrity"
            );
            if let Err(m) = store_matches(&s, &model) {
                panic!("step {i}: after reopen the store differs from the model: {m}");
            }
            store = Some(s);
        } else {
            let s = store.as_ref().expect("open");
            if let Err(e) = apply(s, &mut model, op) {
                panic!("step {i} {op:?}: storage error without any fault: {e:?}");
            }
        }
        assert_verified(store.as_ref().expect("open"));
    }
    model
}

/// What a faulty run exercised.
#[derive(Clone, Copy, Debug, Default)]
pub struct FaultRunStats {
    pub ops: usize,
    pub faults_surfaced: usize,
    pub reopens: usize,
}

/// The `ops_model` fuzz target and its cargo-test twin: random operations over an in-memory
/// disk whose backend starts failing after N operations (N and the failure mode come from the
/// bytes). When a call fails, it must fail with a storage error (never a wrong answer, never a
/// panic); the store is then dropped and reopened over the same bytes without faults, and must
/// hold exactly the acknowledged writes, with the failed write either whole or absent.
pub fn run_faulty(data: &[u8]) -> FaultRunStats {
    let mut g = ByteGen::new(data);
    let mem = SharedMem::default();
    let plan = FaultPlan::new(FaultMode::Never);
    let open = |plan: &Arc<FaultPlan>| {
        Store::builder().with_backend(FaultyBackend::new(mem.backend(), plan.clone()))
    };
    let mut stats = FaultRunStats::default();
    let mut store = Some(open(&plan).expect("open without faults"));
    let mut model = Model::default();
    let arm = |g: &mut ByteGen<'_>| {
        let k = (g.u16() % 160) as u64;
        plan.arm(if g.chance(128) {
            FaultMode::Once(k)
        } else {
            FaultMode::From(k)
        });
    };
    arm(&mut g);
    let mut step = 0usize;
    while !g.exhausted() && step < 40 {
        let op = g.op();
        step += 1;
        stats.ops += 1;
        let mut candidates: Vec<Model> = vec![model.clone()];
        let failed = if op == Op::Reopen {
            true
        } else {
            let s = store.as_ref().expect("open");
            let mut after = model.clone();
            after.apply_write(&op);
            let result = match apply(s, &mut model, &op) {
                Ok(()) => {
                    // Acknowledged: from here on only the new state is acceptable.
                    candidates = vec![model.clone()];
                    s.verify().map(|v| {
                        assert!(v.is_empty(), "step {step} {op:?}: verify: {v:?}");
                    })
                }
                Err(e) => {
                    if after != candidates[0] {
                        candidates.push(after);
                    }
                    Err(e)
                }
            };
            match result {
                Ok(()) => false,
                Err(e) => {
                    assert!(
                        e.is_storage() && e.code() == ErrorCode::Internal,
                        "step {step} {op:?}: a fault must surface as a storage error, got {e:?}"
                    );
                    stats.faults_surfaced += 1;
                    true
                }
            }
        };
        if failed {
            // Power off, then back on without faults over the same bytes.
            drop(store.take());
            plan.arm(FaultMode::Never);
            stats.reopens += 1;
            let mut s = match open(&plan) {
                Ok(s) => s,
                Err(e) => panic!("step {step}: reopen after a fault failed: {e:?}"),
            };
            assert!(
                s.check_integrity().expect("integrity runs"),
                "step {step}: redb integrity"
            );
            assert_verified(&s);
            let diffs: Vec<String> = candidates
                .iter()
                .filter_map(|m| store_matches(&s, m).err())
                .collect();
            if diffs.len() == candidates.len() {
                panic!(
                    "step {step} {op:?}: after reopen the store is neither before nor after the \
                     failed operation: {diffs:?}"
                );
            }
            model = candidates
                .into_iter()
                .find(|m| store_matches(&s, m).is_ok())
                .expect("one matched");
            store = Some(s);
            arm(&mut g);
        }
    }
    stats
}
