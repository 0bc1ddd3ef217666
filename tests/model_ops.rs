//! Random operation sequences (ingest, update, delete, retention, query, page walk, reopen) over
//! a file store, against a naive model: every answer equals the model's and every step ends with
//! `verify()` clean. The cargo-test twin of the `ops_model` fuzz target: both decode operations
//! from bytes with `support::ByteGen`, so a fuzz finding replays here unchanged.

mod support;

use proptest::prelude::*;
use support::*;
use tracestore::{Durability, Store};

fn file_run(bytes: &[u8], durability: Durability) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("model.redb");
    let ops = ByteGen::new(bytes).ops(40);
    run_clean(&ops, || {
        Store::builder()
            .durability(durability)
            .open(&path)
            .expect("open")
    });
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Over a file: Immediate commits, and Deferred ones, which a clean close must persist.
    #[test]
    fn ops_match_the_model_over_a_file(
        bytes in prop::collection::vec(any::<u8>(), 0..700),
        deferred in any::<bool>(),
    ) {
        file_run(&bytes, if deferred { Durability::Deferred } else { Durability::Immediate });
    }

    /// Over a disk that fails after N backend operations: errors surface as storage errors, and
    /// after a reopen the store holds exactly the acknowledged writes.
    #[test]
    fn ops_survive_injected_faults(bytes in prop::collection::vec(any::<u8>(), 0..700)) {
        run_faulty(&bytes);
    }
}

/// A longer deterministic sequence, so that reopen, retention and walks all occur at least once
/// regardless of what proptest draws.
#[test]
fn a_long_fixed_sequence_matches_the_model() {
    let bytes: Vec<u8> = (0..4000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let ops = ByteGen::new(&bytes).ops(200);
    for kind in ["ingest", "delete", "retention", "walk", "reopen"] {
        assert!(
            ops.iter()
                .any(|o| format!("{o:?}").to_lowercase().starts_with(kind)),
            "the fixed sequence has no {kind}"
        );
    }
    let model = run_clean(&ops, {
        let mem = SharedMem::default();
        move || Store::builder().with_backend(mem.backend()).expect("open")
    });
    assert!(
        model.traces("p").len() > 3,
        "the sequence should leave traces behind"
    );
}
