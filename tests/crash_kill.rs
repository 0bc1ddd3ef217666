//! Crash consistency under SIGKILL. The test re-executes its own binary as a writer child
//! (selected by `TRACESTORE_CRASH_CHILD`), which opens a file store with `Durability::Immediate`,
//! ingests deterministic batches in a loop and prints `@@ack:<n>` after each commit returns. The
//! parent kills it at a random moment (`Child::kill` sends SIGKILL), reopens the file and checks:
//! redb's integrity check passes, `verify()` is clean, every acknowledged batch is present whole
//! with the right aggregates, and no later batch is partly present (only the one in flight may be
//! there, whole).
//!
//! 50 cycles by default; `TRACESTORE_CRASH_CYCLES=1000` for a long run.

mod support;

use rust_decimal::Decimal;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use tracestore::{Durability, ScoreInput, ScoreValue, SpanInput, Store, Timestamp, TraceInput};

const CHILD_ENV: &str = "TRACESTORE_CRASH_CHILD";
const PATH_ENV: &str = "TRACESTORE_CRASH_PATH";
const START_ENV: &str = "TRACESTORE_CRASH_START";
const ACK: &str = "@@ack:";
const TRACES_PER_BATCH: u64 = 6;
/// Cycles per file before starting a fresh one, so that a long run's checks stay cheap.
const CYCLES_PER_FILE: u64 = 25;
const BASE_MS: i64 = 1_772_000_000_000;

fn trace_id(b: u64, i: u64) -> String {
    format!("b{b:06}-{i}")
}

fn span_cost(b: u64, i: u64, s: u64) -> Decimal {
    Decimal::new(((b * 7 + i * 3 + s) % 1000 + 1) as i64, 4)
}

const EXTRA_COST: Decimal = Decimal::from_parts(5, 0, 0, false, 3); // 0.005

/// Batch `b`: new traces b-0..b-5 with two spans and a score each, and an update of the previous
/// batch's first trace (one more span), so that a batch also spans two batches' traces.
/// The input payload of span `s` of trace (b, i): over a KiB, so it is stored compressed.
fn span_input(b: u64, i: u64, s: u64) -> serde_json::Value {
    serde_json::json!({ "prompt": format!("batch {b} trace {i} span {s} ").repeat(60) })
}

fn batch(b: u64) -> Vec<TraceInput> {
    let mut out: Vec<TraceInput> = (0..TRACES_PER_BATCH)
        .map(|i| TraceInput {
            end_time: Some(
                Timestamp::from_millis(BASE_MS + (b * 10 + i) as i64 * 1000 + 500).expect("ts"),
            ),
            tags: Some(vec![format!("batch{}", b % 4), "crash".into()]),
            spans: (0..2)
                .map(|s| SpanInput {
                    id: Some(format!("s{s}")),
                    input_tokens: Some(100 + s),
                    output_tokens: Some(10 * i),
                    cost: Some(span_cost(b, i, s)),
                    input: Some(span_input(b, i, s)),
                    ..Default::default()
                })
                .collect(),
            scores: vec![ScoreInput {
                id: Some("q".into()),
                name: "quality".into(),
                value: ScoreValue::Number(0.5),
                comment: None,
            }],
            ..TraceInput::new(
                trace_id(b, i),
                "crash-agent",
                Timestamp::from_millis(BASE_MS + (b * 10 + i) as i64 * 1000).expect("ts"),
            )
        })
        .collect();
    if b > 0 {
        out.push(TraceInput {
            id: Some(trace_id(b - 1, 0)),
            spans: vec![SpanInput {
                id: Some("extra".into()),
                input_tokens: Some(1),
                cost: Some(EXTRA_COST),
                ..Default::default()
            }],
            ..Default::default()
        });
    }
    out
}

/// The writer child: ingest batches from START on, acknowledging each on stdout.
fn child() -> ! {
    let path = std::env::var(PATH_ENV).expect("path");
    let start: u64 = std::env::var(START_ENV)
        .expect("start")
        .parse()
        .expect("start");
    let store = Store::builder()
        .durability(Durability::Immediate)
        .open(&path)
        .expect("child open");
    let mut out = std::io::stdout().lock();
    for b in start.. {
        store.ingest("crash", batch(b)).expect("child ingest");
        // The acknowledgement leaves only after commit returned: this batch is durable.
        // libtest may have printed "test crash_kill_cycles ... " without a newline, so the
        // marker is searched anywhere in a line.
        writeln!(out, "{ACK}{b}").expect("pipe");
        out.flush().expect("pipe");
    }
    unreachable!()
}

/// Checks the reopened store against "batches 0..n committed" for some n with
/// `acked <= n <= acked + 1` (the batch in flight may have landed). Returns n.
fn check(path: &std::path::Path, acked: u64, cycle: u64) -> u64 {
    let mut store = Store::open(path).unwrap_or_else(|e| panic!("cycle {cycle}: reopen: {e:?}"));
    assert!(
        store.check_integrity().expect("integrity runs"),
        "cycle {cycle}: redb integrity"
    );
    let v = store.verify().expect("verify runs");
    assert!(v.is_empty(), "cycle {cycle}: verify: {v:?}");
    let traces = support::all_traces(&store, "crash").expect("query");
    assert_eq!(
        traces.len() as u64 % TRACES_PER_BATCH,
        0,
        "cycle {cycle}: a batch is partly present ({} traces)",
        traces.len()
    );
    let n = traces.len() as u64 / TRACES_PER_BATCH;
    assert!(
        n >= acked,
        "cycle {cycle}: lost acknowledged batches: {n} batches present, {acked} acknowledged"
    );
    assert!(
        n <= acked + 1,
        "cycle {cycle}: {n} batches present, only {acked} acknowledged (+1 in flight)"
    );
    // Newest first: batch n-1's last trace first.
    for (k, t) in traces.iter().enumerate() {
        let k = k as u64;
        let (b, i) = (
            n - 1 - k / TRACES_PER_BATCH,
            TRACES_PER_BATCH - 1 - k % TRACES_PER_BATCH,
        );
        assert_eq!(t.id, trace_id(b, i), "cycle {cycle}: order or membership");
        let extra = i == 0 && b + 1 < n;
        let want_cost = span_cost(b, i, 0)
            + span_cost(b, i, 1)
            + if extra { EXTRA_COST } else { Decimal::ZERO };
        let want_tokens = 100 + 101 + 20 * i + u64::from(extra);
        let got = (
            t.span_count,
            t.score_count,
            t.total_cost,
            t.total_tokens,
            t.duration_ms,
        );
        let want = (2 + u32::from(extra), 1, want_cost, want_tokens, Some(500));
        assert_eq!(got, want, "cycle {cycle}: aggregates of {}", t.id);
        if i == 0 {
            // The payloads committed with their spans.
            let d = store.get_trace("crash", &t.id).expect("get_trace");
            for (s, sp) in d.spans.iter().filter(|sp| sp.id != "extra").enumerate() {
                let got = sp.input.as_ref().map(|p| p.to_value());
                assert_eq!(
                    got,
                    Some(span_input(b, i, s as u64)),
                    "cycle {cycle}: payload"
                );
            }
        }
    }
    n
}

fn xorshift(x: &mut u64) -> u64 {
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    *x
}

#[test]
fn crash_kill_cycles() {
    if std::env::var_os(CHILD_ENV).is_some() {
        child();
    }
    let cycles: u64 = std::env::var("TRACESTORE_CRASH_CYCLES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(50);
    let exe = std::env::current_exe().expect("current exe");
    let dir = tempfile::tempdir().expect("tempdir");
    let started = Instant::now();
    let mut rng = 0x9E37_79B9_7F4A_7C15u64;
    let mut committed = 0u64;
    let (mut total_acks, mut in_flight_landed) = (0u64, 0u64);
    let mut path = dir.path().join("crash-0.redb");
    for cycle in 0..cycles {
        if cycle % CYCLES_PER_FILE == 0 {
            path = dir.path().join(format!("crash-{cycle}.redb"));
            committed = 0;
        }
        let mut child = Command::new(&exe)
            .args([
                "--exact",
                "crash_kill_cycles",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, "1")
            .env(PATH_ENV, &path)
            .env(START_ENV, committed.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn child");
        let stdout = child.stdout.take().expect("stdout");
        let reader = std::thread::spawn(move || {
            let mut last: Option<u64> = None;
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(pos) = line.find(ACK) {
                    last = Some(line[pos + ACK.len()..].trim().parse().expect("ack number"));
                }
            }
            last
        });
        // Some kills land while the child starts or opens (and repairs) the file, most while it
        // commits.
        let delay_ms = 5 + xorshift(&mut rng) % 120;
        std::thread::sleep(Duration::from_millis(delay_ms));
        let _ = child.kill();
        let status = child.wait().expect("wait");
        assert!(
            !status.success(),
            "cycle {cycle}: the child must not exit on its own"
        );
        let last = reader.join().expect("reader");
        let acked = last.map_or(committed, |b| b + 1);
        assert!(acked >= committed);
        total_acks += acked - committed;
        let n = check(&path, acked, cycle);
        if n > acked {
            in_flight_landed += 1;
        }
        committed = n;
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "crash_kill: {cycles} SIGKILL cycles in {secs:.1} s; {total_acks} acknowledged batches, \
         all present whole; the in-flight batch had landed in {in_flight_landed} cycles"
    );
}
