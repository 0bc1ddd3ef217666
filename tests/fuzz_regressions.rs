//! Fuzz regressions: every input a fuzz target ever crashed on, replayed through the same checks
//! (`tests/support/targets.rs`), each test citing its input. Also replays the committed seed
//! corpus of every target, so `cargo test` runs what `cargo fuzz` starts from.

mod support;

use std::path::Path;
use support::targets::{self, TARGETS};

/// Replays every file of `fuzz/corpus/<target>/` through the target's checks.
#[test]
fn the_committed_corpus_replays_clean() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus");
    let mut total = 0;
    for (name, run) in TARGETS {
        let dir = root.join(name);
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| e.expect("entry").path())
            .collect();
        files.sort();
        assert!(!files.is_empty(), "no seed corpus for {name}");
        for f in files {
            let data = std::fs::read(&f).expect("read");
            if let Err(p) = std::panic::catch_unwind(|| run(&data)) {
                let msg = p
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                panic!("{name}: corpus file {} fails: {msg}", f.display());
            }
            total += 1;
        }
    }
    println!("replayed {total} corpus files");
}

// Inputs found by the fuzzers (none crashed in the runs so far; each new crash gets a test here
// named after its target and artifact, with the input inline):

/// Cursor edge cases the `cursor` target starts from, kept explicit: empty, padding, the
/// standard (non-URL) alphabet, a huge token.
#[test]
fn cursor_edge_inputs_are_rejected_on_the_cursor_field() {
    for c in [
        "",
        "=",
        "AA==",
        "++//",
        "A",
        &"A".repeat(20_000),
        "\u{0}",
        "é",
    ] {
        let e = targets::try_cursor(c, None).expect_err("not a cursor");
        assert!(
            e.details().iter().any(|d| d.field() == "cursor"),
            "{c:?}: {e:?}"
        );
    }
}

/// Pairs with no `=`, empty keys and non-UTF-8 bytes through `query_params`.
#[test]
fn query_params_edge_inputs() {
    for input in [
        &b""[..],
        b"&&&",
        b"=",
        b"limit",
        b"\xff\xfe=\x00",
        b"cursor=&cursor=",
    ] {
        targets::query_params(input);
    }
}

/// The `ops_model` seeds do exercise operations, surfaced faults and reopens (a seed corpus that
/// decodes to nothing would make the fuzzer start blind).
#[test]
fn the_ops_model_seeds_exercise_faults() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/ops_model");
    let mut total = support::FaultRunStats::default();
    for e in std::fs::read_dir(dir).expect("corpus") {
        let s = support::run_faulty(&std::fs::read(e.expect("entry").path()).expect("read"));
        total.ops += s.ops;
        total.faults_surfaced += s.faults_surfaced;
        total.reopens += s.reopens;
    }
    println!("ops_model seeds: {total:?}");
    assert!(
        total.ops >= 50 && total.faults_surfaced > 0 && total.reopens > 0,
        "{total:?}"
    );
}
