//! Fault injection: a probe workload (ingests, an update, a delete, queries) runs over a backend
//! whose operation k fails, for every k the workload performs: once failing only operation k,
//! once failing every operation from k on (a disk that died). In every run:
//!
//! - a failure surfaces as an error with `is_storage()` and code `INTERNAL_ERROR`, never a panic;
//! - any call that succeeds answers as the model of committed transactions says (a write that
//!   failed may or may not have landed, so the model keeps both candidates until a later answer
//!   tells them apart);
//! - after reopening over the underlying bytes without faults, redb's integrity check passes,
//!   `verify()` is clean, and the store holds exactly one candidate: every acknowledged write,
//!   and each failed write whole or not at all.

mod support;

use std::panic::{catch_unwind, AssertUnwindSafe};
use support::*;
use tracestore::{ErrorCode, QueryRequest, Status, Store, TraceDetail};

/// The probe workload, as model operations.
fn probe() -> Vec<Op> {
    let item = |id: u8, start: i64, err: bool, spans: &[(u8, u32)]| Item {
        id,
        name: Some(id % 3),
        status: Some(if err { Status::Error } else { Status::Ok }),
        start_s: Some(start),
        end_s: Some(start + 1),
        tags: Some(vec![id % 2, 2]),
        metadata: Some(id),
        spans: spans
            .iter()
            .map(|&(s, c)| ItemSpan {
                id: s,
                cost_micros: Some(c),
                input_tokens: 100,
                output_tokens: 20,
            })
            .collect(),
        scores: vec![1],
    };
    let q_all = MQuery::default();
    let q_err = MQuery {
        status: Some(Status::Error),
        ..Default::default()
    };
    vec![
        Op::Ingest {
            project: 0,
            items: (0..8)
                .map(|i| item(i, i as i64, i % 3 == 0, &[(0, 1200), (1, 3400)]))
                .collect(),
            json: false,
        },
        Op::Ingest {
            project: 0,
            items: (8..12)
                .map(|i| item(i, i as i64, false, &[(0, 500)]))
                .collect(),
            json: true,
        },
        Op::Query {
            project: 0,
            q: q_err.clone(),
            limit: 3,
            plan: None,
        },
        // An update: a re-sent span replaces, a new one adds, the startTime moves, status flips.
        Op::Ingest {
            project: 0,
            items: vec![Item {
                name: None,
                tags: None,
                metadata: None,
                scores: vec![],
                ..item(2, 30, false, &[(1, 9999), (4, 1)])
            }],
            json: false,
        },
        Op::Delete { project: 0, id: 5 },
        Op::Get { project: 0, id: 2 },
        Op::Query {
            project: 0,
            q: q_all,
            limit: 100,
            plan: None,
        },
        Op::Retention {
            project: 0,
            cutoff_s: 3,
        },
        Op::Query {
            project: 0,
            q: q_err,
            limit: 100,
            plan: Some(tracestore::PlanKind::Bitmap),
        },
    ]
}

/// What one call returned, reduced to what the model can check.
#[derive(Debug)]
enum Outcome {
    Write(Result<u64, ErrorCode>),
    Page(Result<Vec<tracestore::Trace>, ErrorCode>),
    Detail(Result<Box<TraceDetail>, ErrorCode>),
}

fn code(e: tracestore::Error) -> ErrorCode {
    // A storage failure must never masquerade as another kind of error, and vice versa.
    assert_eq!(
        e.is_storage(),
        e.code() == ErrorCode::Internal,
        "is_storage() and INTERNAL_ERROR disagree: {e:?}"
    );
    e.code()
}

fn exec(store: &Store, op: &Op) -> Outcome {
    match op {
        Op::Ingest {
            project,
            items,
            json,
        } => {
            let p = PROJECTS[*project];
            let r = if *json {
                store.ingest_json(p, &ingest_body(items))
            } else {
                store.ingest(p, items.iter().map(Item::input).collect())
            };
            Outcome::Write(r.map(|_| 0).map_err(code))
        }
        Op::Delete { project, id } => Outcome::Write(
            store
                .delete_trace(PROJECTS[*project], &trace_id(*id))
                .map(|()| 0)
                .map_err(code),
        ),
        Op::Retention { project, cutoff_s } => Outcome::Write(
            store
                .delete_before(PROJECTS[*project], ts(cutoff_s * 1000), |_| {})
                .map_err(code),
        ),
        Op::Query {
            project,
            q,
            limit,
            plan,
        } => {
            let params = q.params(*limit);
            let req =
                QueryRequest::from_params(params.iter().map(|(k, v)| (k.as_str(), v.as_str())))
                    .expect("probe queries are valid");
            let r = match plan {
                Some(k) => store.query_with_plan(PROJECTS[*project], &req, *k),
                None => store.query(PROJECTS[*project], &req),
            };
            Outcome::Page(r.map(|p| p.traces).map_err(code))
        }
        Op::Get { project, id } => Outcome::Detail(
            store
                .get_trace(PROJECTS[*project], &trace_id(*id))
                .map(Box::new)
                .map_err(code),
        ),
        Op::Walk { .. } | Op::Reopen => unreachable!("not in the probe"),
    }
}

/// The states `c` can move to given what the call returned; empty when the answer is wrong for
/// `c`.
fn next_states(c: &Model, op: &Op, out: &Outcome) -> Vec<Model> {
    let mut after = c.clone();
    let expect = after.apply_write(op);
    match out {
        Outcome::Write(Ok(n)) => match expect {
            Expect::Ok if *n == 0 => vec![after],
            Expect::Deleted(m) if m == *n => vec![after],
            _ => vec![],
        },
        Outcome::Write(Err(ErrorCode::Internal)) => {
            if after == *c {
                vec![after]
            } else {
                vec![c.clone(), after]
            }
        }
        Outcome::Write(Err(ErrorCode::Validation)) if expect == Expect::Validation => {
            vec![c.clone()]
        }
        Outcome::Write(Err(ErrorCode::NotFound)) if expect == Expect::NotFound => vec![c.clone()],
        Outcome::Write(Err(_)) => vec![],
        Outcome::Detail(Err(ErrorCode::NotFound)) => {
            let Op::Get { project, id } = op else {
                unreachable!()
            };
            match c.get(PROJECTS[*project], &trace_id(*id)) {
                None => vec![c.clone()],
                Some(_) => vec![],
            }
        }
        Outcome::Page(Err(e)) | Outcome::Detail(Err(e)) => {
            if *e == ErrorCode::Internal {
                vec![c.clone()]
            } else {
                vec![]
            }
        }
        Outcome::Page(Ok(traces)) => {
            let Op::Query {
                project, q, limit, ..
            } = op
            else {
                unreachable!()
            };
            let want = c.answer(PROJECTS[*project], q);
            let want = &want[..want.len().min(*limit as usize)];
            let ok = traces.len() == want.len()
                && traces
                    .iter()
                    .zip(want)
                    .all(|(t, m)| t.id == m.id && check_trace(t, m).is_ok());
            if ok {
                vec![c.clone()]
            } else {
                vec![]
            }
        }
        Outcome::Detail(Ok(d)) => {
            let Op::Get { project, id } = op else {
                unreachable!()
            };
            match c.get(PROJECTS[*project], &trace_id(*id)) {
                Some(m) if check_trace(&d.trace, m).is_ok() && d.spans.len() == m.spans.len() => {
                    vec![c.clone()]
                }
                _ => vec![],
            }
        }
    }
}

#[derive(Default, Debug)]
struct Tally {
    runs: usize,
    injected_runs: usize,
    errors_surfaced: usize,
    ambiguous_writes_landed: usize,
    ambiguous_writes_lost: usize,
    unopenable_after_failed_create: usize,
}

/// One run of the probe under `mode`. Panics (with context) on any violation.
///
/// `strict`: a successful read after a failed write also decides that write's fate (the store
/// must not show a state that a reopen then contradicts). Without it, a read only has to agree
/// with one of the candidate states.
fn run(mode: FaultMode, strict: bool, cache: Option<usize>, tally: &mut Tally) -> u64 {
    let mem = SharedMem::default();
    let plan = FaultPlan::new(mode);
    let ops = probe();
    let mut candidates = vec![Model::default()];
    let builder = match cache {
        Some(bytes) => Store::builder().cache_size_bytes(bytes),
        None => Store::builder(),
    };
    let opened = builder.with_backend(FaultyBackend::new(mem.backend(), plan.clone()));
    let first_open_failed = opened.is_err();
    match opened {
        Ok(store) => {
            for (i, op) in ops.iter().enumerate() {
                let out = exec(&store, op);
                if std::env::var_os("FAULT_DEBUG").is_some() {
                    eprintln!("{mode:?} ({:?}) step {i}: {out:?}", plan.first_injected());
                }
                if matches!(
                    out,
                    Outcome::Write(Err(_)) | Outcome::Page(Err(_)) | Outcome::Detail(Err(_))
                ) {
                    tally.errors_surfaced += 1;
                }
                let mut next: Vec<Model> = Vec::new();
                for c in &candidates {
                    for m in next_states(c, op, &out) {
                        if !next.contains(&m) {
                            next.push(m);
                        }
                    }
                }
                assert!(
                    !next.is_empty(),
                    "{mode:?}: step {i} {op:?} answered {out:?}, which no committed state explains"
                );
                if strict || op.writes() {
                    candidates = next;
                }
            }
            // A verify() that runs must be clean; it may fail with a storage error.
            if let Ok(v) = store.verify() {
                assert!(v.is_empty(), "{mode:?}: verify before reopen: {v:?}");
            }
            drop(store);
        }
        Err(e) => assert!(e.is_storage(), "{mode:?}: open failed with {e:?}"),
    }
    let total = plan.ops();
    if plan.injected() > 0 {
        tally.injected_runs += 1;
    }
    tally.runs += 1;
    // Back on without faults, over the same bytes.
    let mut store = match Store::builder().with_backend(mem.backend()) {
        Ok(s) => s,
        // redb writes a new file's header non-atomically: when its very first open failed, the
        // half-written file may be refused (with an error, never a panic). Nothing was
        // acknowledged, so nothing is lost.
        Err(e) if first_open_failed && e.is_storage() => {
            tally.unopenable_after_failed_create += 1;
            return total;
        }
        Err(e) => panic!("{mode:?}: reopen without faults failed: {e:?}"),
    };
    assert!(
        store.check_integrity().expect("integrity runs"),
        "{mode:?}: redb integrity"
    );
    let v = store.verify().expect("verify runs");
    assert!(v.is_empty(), "{mode:?}: verify after reopen: {v:?}");
    let matching: Vec<&Model> = candidates
        .iter()
        .filter(|m| store_matches(&store, m).is_ok())
        .collect();
    assert!(
        !matching.is_empty(),
        "{mode:?}: after reopen the store matches no committed state: {:?}",
        candidates
            .iter()
            .map(|m| store_matches(&store, m).unwrap_err())
            .collect::<Vec<_>>()
    );
    if candidates.len() > 1 {
        if std::ptr::eq(matching[0], candidates.last().expect("nonempty")) {
            tally.ambiguous_writes_landed += 1;
        } else {
            tally.ambiguous_writes_lost += 1;
        }
    }
    total
}

fn run_caught(mode: FaultMode, strict: bool, cache: Option<usize>, tally: &mut Tally) -> u64 {
    match catch_unwind(AssertUnwindSafe(|| run(mode, strict, cache, tally))) {
        Ok(n) => n,
        Err(p) => {
            let msg = p
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            panic!("fault injection {mode:?} (cache {cache:?}) failed or panicked: {msg}");
        }
    }
}

fn sweep(strict: bool) {
    let mut points = 0;
    // redb's default cache: faults land on the writes and syncs of commits and on the reads of
    // opening and repair. (With no cache every page read is a fault point too, but a probe then
    // takes tens of thousands of operations: too many to try each.)
    points += sweep_cache(strict, None);
    println!("fault injection: {points} fault points exercised in all");
}

fn sweep_cache(strict: bool, cache: Option<usize>) -> usize {
    let mut tally = Tally::default();
    let total = run_caught(FaultMode::Never, strict, cache, &mut tally);
    assert!(
        total > 20,
        "the probe should touch the backend ({total} operations)"
    );
    let mut tally = Tally::default();
    for k in 0..total {
        run_caught(FaultMode::Once(k), strict, cache, &mut tally);
    }
    let once = std::mem::take(&mut tally);
    for k in 0..total {
        run_caught(FaultMode::From(k), strict, cache, &mut tally);
    }
    let from = tally;
    println!(
        "fault injection (cache {cache:?}): {total} backend operations in the probe; {} fault \
         points exercised (once: {once:?}; from-k-on: {from:?})",
        once.runs + from.runs
    );
    assert_eq!(once.injected_runs as u64, total);
    assert!(once.errors_surfaced > 0 && from.errors_surfaced > 0);
    once.runs + from.runs
}

#[test]
fn every_fault_point_of_the_probe_is_an_error_not_a_wrong_answer() {
    sweep(false);
}

/// After a commit fails at its final sync, redb has written the new header, so the batch
/// survives a reopen; but until then the live store keeps answering reads from the state
/// before the batch (and refuses writes). A client sees "ingest failed", then "no such trace",
/// then, after a restart, the trace. The store should refuse reads too after a failed commit,
/// until it is reopened.
#[test]
fn reads_after_a_failed_commit_agree_with_what_survives_a_reopen() {
    sweep(true);
}
