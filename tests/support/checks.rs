//! Checks against the model: compare returned traces, pages and whole walks with the model, and
//! run one operation against both the store and the model ([`apply`]).

use super::model::{trace_id, Expect, MTrace, Model, PROJECTS};
use super::ops::{ingest_body, Item, Op};
use super::query::{ts, MQuery};
use rust_decimal::Decimal;
use std::collections::{BTreeMap, BTreeSet};
use tracestore::{ErrorCode, Page, PlanKind, QueryRequest, Store};

fn fail<T>(msg: String) -> Result<T, String> {
    Err(msg)
}

/// Compares one returned trace with the model's.
pub fn check_trace(t: &tracestore::Trace, m: &MTrace) -> Result<(), String> {
    let got = (
        &t.name,
        t.status,
        t.start_time.as_millis(),
        t.end_time.map(|e| e.as_millis()),
        t.duration_ms,
        &t.tags,
        t.metadata.as_json(),
        t.total_cost,
        t.total_tokens,
        t.span_count as usize,
        t.score_count as usize,
    );
    let want = (
        &m.name,
        m.status,
        m.start_ms,
        m.end_ms,
        m.end_ms.map(|e| e - m.start_ms),
        &m.tags,
        m.metadata.as_str(),
        m.total_cost(),
        m.total_tokens(),
        m.spans.len(),
        m.scores.len(),
    );
    if got != want {
        return fail(format!("trace {}: got {got:?}, model {want:?}", t.id));
    }
    Ok(())
}

fn check_page_traces(page: &Page, expected: &[&MTrace], what: &str) -> Result<(), String> {
    let ids: Vec<&str> = page.traces.iter().map(|t| t.id.as_str()).collect();
    let want: Vec<&str> = expected.iter().map(|t| t.id.as_str()).collect();
    if ids != want {
        return fail(format!("{what}: got ids {ids:?}, model {want:?}"));
    }
    for (t, m) in page.traces.iter().zip(expected) {
        check_trace(t, m)?;
    }
    Ok(())
}

pub fn params_ref(p: &[(String, String)]) -> Vec<(&str, &str)> {
    p.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
}

fn run_query(
    store: &Store,
    project: &str,
    req: &QueryRequest,
    plan: Option<PlanKind>,
) -> tracestore::Result<Page> {
    match plan {
        Some(p) => store.query_with_plan(project, req, p),
        None => store.query(project, req),
    }
}

/// Walks every page of `q` and compares the whole walk with the model. `limits` cycles.
pub fn check_walk(
    store: &Store,
    model: &Model,
    project: &str,
    q: &MQuery,
    limits: &[u32],
    plan: Option<PlanKind>,
) -> Result<(), tracestore::Error> {
    let expected = model.answer(project, q);
    let first = QueryRequest::from_params(params_ref(&q.params(limits[0])))?;
    let mut page = run_query(store, project, &first, plan)?;
    let mut pos = 0usize;
    let mut i = 0usize;
    loop {
        let limit = limits[i % limits.len()] as usize;
        let end = (pos + limit).min(expected.len());
        if let Err(m) = check_page_traces(
            &page,
            &expected[pos..end],
            &format!("walk page {i} of {q:?}"),
        ) {
            panic!("{m}");
        }
        pos = end;
        let more = pos < expected.len();
        assert_eq!(
            page.next_cursor.is_some(),
            more,
            "nextCursor must be null exactly at the end (page {i} of {q:?})"
        );
        let Some(c) = page.next_cursor.clone() else {
            return Ok(());
        };
        i += 1;
        let req = QueryRequest::builder()
            .cursor(&c)
            .limit(limits[i % limits.len()])
            .build()?;
        page = run_query(store, project, &req, plan)?;
    }
}

/// Every trace of `project` in query order, walked through cursors in pages of 100.
pub fn all_traces(
    store: &Store,
    project: &str,
) -> Result<Vec<tracestore::Trace>, tracestore::Error> {
    let mut out = Vec::new();
    let mut req = QueryRequest::builder().limit(100).build()?;
    loop {
        let page = store.query(project, &req)?;
        out.extend(page.traces);
        match page.next_cursor {
            Some(c) => req = QueryRequest::builder().cursor(&c).limit(100).build()?,
            None => return Ok(out),
        }
    }
}

/// Compares everything the store holds for the model's projects with the model. Returns a
/// description of the first difference.
pub fn store_matches(store: &Store, model: &Model) -> Result<(), String> {
    for project in PROJECTS {
        let expected = model.answer(project, &MQuery::default());
        let got = all_traces(store, project).map_err(|e| format!("query: {e}"))?;
        let ids: Vec<&str> = got.iter().map(|t| t.id.as_str()).collect();
        let want: Vec<&str> = expected.iter().map(|t| t.id.as_str()).collect();
        if ids != want {
            return fail(format!("project {project}: ids {ids:?}, model {want:?}"));
        }
        for (t, m) in got.iter().zip(&expected) {
            check_trace(t, m)?;
            let d = store
                .get_trace(project, &m.id)
                .map_err(|e| format!("get_trace {}: {e}", m.id))?;
            let spans: BTreeSet<&str> = d.spans.iter().map(|s| s.id.as_str()).collect();
            let want_spans: BTreeSet<&str> = m.spans.keys().map(|s| s.as_str()).collect();
            let scores: BTreeSet<&str> = d.scores.iter().map(|s| s.id.as_str()).collect();
            let want_scores: BTreeSet<&str> = m.scores.iter().map(|s| s.as_str()).collect();
            for sp in &d.spans {
                let want = m.spans.get(&sp.id).and_then(|s| s.input.as_deref());
                if sp.input.as_ref().map(|p| p.as_json()) != want {
                    return fail(format!(
                        "trace {} span {}: input payload differs",
                        m.id, sp.id
                    ));
                }
            }
            if spans != want_spans || scores != want_scores {
                return fail(format!(
                    "trace {}: spans {spans:?} scores {scores:?}, model {want_spans:?} {want_scores:?}",
                    m.id
                ));
            }
        }
    }
    Ok(())
}

/// Runs one operation against the store and checks its answer against the model (which it
/// updates). `Err` carries a store error (I/O faults); a wrong answer panics.
pub fn apply(store: &Store, model: &mut Model, op: &Op) -> Result<(), tracestore::Error> {
    match op {
        Op::Ingest {
            project,
            items,
            json,
        } => {
            let p = PROJECTS[*project];
            let mut next = model.clone();
            let want = next.apply_write(op);
            let got = if *json {
                store.ingest_json(p, &ingest_body(items))
            } else {
                store.ingest(p, items.iter().map(Item::input).collect())
            };
            match (got, want) {
                (Ok(_), Expect::Ok) => *model = next,
                (Err(e), Expect::Validation) if e.code() == ErrorCode::Validation => {}
                (Err(e), _) if e.is_storage() => return Err(e),
                (got, want) => panic!("ingest {items:?}: got {got:?}, model {want:?}"),
            }
        }
        Op::Delete { project, id } => {
            let p = PROJECTS[*project];
            let mut next = model.clone();
            let want = next.apply_write(op);
            match (store.delete_trace(p, &trace_id(*id)), want) {
                (Ok(()), Expect::Ok) => *model = next,
                (Err(e), Expect::NotFound) if e.code() == ErrorCode::NotFound => {}
                (Err(e), _) if e.is_storage() => return Err(e),
                (got, want) => panic!("delete {p}/{id}: got {got:?}, model {want:?}"),
            }
        }
        Op::Retention { project, cutoff_s } => {
            let p = PROJECTS[*project];
            let mut next = model.clone();
            let want = next.apply_write(op);
            match store.delete_before(p, ts(cutoff_s * 1000), |_| {}) {
                Ok(n) => {
                    assert_eq!(Expect::Deleted(n), want, "delete_before {p} {cutoff_s}s");
                    *model = next;
                }
                Err(e) if e.is_storage() => return Err(e),
                Err(e) => panic!("delete_before: unexpected {e:?}"),
            }
        }
        Op::Query {
            project,
            q,
            limit,
            plan,
        } => {
            let p = PROJECTS[*project];
            let params = q.params(*limit);
            let parsed = QueryRequest::from_params(params_ref(&params));
            if q.invalid() {
                let e = parsed.expect_err("endDate < startDate must be rejected");
                assert_eq!(e.code(), ErrorCode::Validation);
                let e2 = store
                    .query_params(p, params_ref(&params))
                    .expect_err("endDate < startDate must be rejected");
                assert_eq!(e2.code(), ErrorCode::Validation);
                return Ok(());
            }
            let req = parsed.expect("a valid query parses");
            let page = run_query(store, p, &req, *plan)?;
            let expected = model.answer(p, q);
            let n = (*limit as usize).min(expected.len());
            if let Err(m) = check_page_traces(&page, &expected[..n], &format!("query {q:?}")) {
                panic!("{m}");
            }
            assert_eq!(
                page.next_cursor.is_some(),
                expected.len() > n,
                "nextCursor of {q:?}"
            );
            // The same query through the string entry point gives the same page.
            if plan.is_none() {
                let again = store.query_params(p, params_ref(&params))?;
                assert_eq!(again.traces, page.traces, "query_params differs from query");
            }
        }
        Op::Walk {
            project,
            q,
            limits,
            plan,
        } => {
            if q.invalid() {
                return Ok(());
            }
            check_walk(store, model, PROJECTS[*project], q, limits, *plan)?;
        }
        Op::Get { project, id } => {
            let p = PROJECTS[*project];
            match (
                store.get_trace(p, &trace_id(*id)),
                model.get(p, &trace_id(*id)),
            ) {
                (Ok(d), Some(m)) => {
                    if let Err(msg) = check_trace(&d.trace, m) {
                        panic!("get_trace: {msg}");
                    }
                    let spans: BTreeMap<String, (u64, Option<Decimal>)> = d
                        .spans
                        .iter()
                        .map(|s| (s.id.clone(), (s.total_tokens, s.cost)))
                        .collect();
                    let want: BTreeMap<String, (u64, Option<Decimal>)> = m
                        .spans
                        .iter()
                        .map(|(k, s)| (k.clone(), (s.total_tokens, s.cost)))
                        .collect();
                    assert_eq!(spans, want, "spans of {p}/{id}");
                    let scores: BTreeSet<String> = d.scores.iter().map(|s| s.id.clone()).collect();
                    assert_eq!(scores, m.scores, "scores of {p}/{id}");
                }
                (Err(e), None) if e.code() == ErrorCode::NotFound => {}
                (Err(e), _) if e.is_storage() => return Err(e),
                (got, want) => panic!("get_trace {p}/{id}: got {got:?}, model {want:?}"),
            }
        }
        Op::Reopen => {}
    }
    Ok(())
}

pub fn assert_verified(store: &Store) {
    let v = store.verify().expect("verify runs");
    assert!(v.is_empty(), "verify found violations: {v:?}");
}
