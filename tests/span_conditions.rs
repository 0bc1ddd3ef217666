//! Span conditions (`spanName`, `spanModel`, `spanKind`, `spanStatus`) and the `models` facet
//! through every write that changes a trace's spans: a span re-sent with another model and
//! status, a moved startTime (a new row), a pending trace and its fold, and a delete. After
//! each step every query answers the same under the chosen plan and both forced plans, the
//! totals and the models facet agree, and `verify()` finds nothing.

use serde_json::{json, Value};
use tracestore::{PlanKind, QueryRequest, Store};

fn storage_pending_bytes(store: &Store) -> u64 {
    store
        .storage_stats()
        .unwrap()
        .iter()
        .find(|u| u.table == "pending")
        .map_or(0, |u| u.entries_bytes)
}

fn ingest(store: &Store, traces: Value) {
    store
        .ingest_json("p", json!({ "traces": traces }).to_string().as_bytes())
        .unwrap();
}

/// Every id of `params` (walking pages of 1), under `plan` (None: the planner's choice).
fn ids(store: &Store, params: &[(&str, &str)], plan: Option<PlanKind>) -> Vec<String> {
    let mut p: Vec<(&str, &str)> = params.to_vec();
    p.push(("limit", "1"));
    let mut req = QueryRequest::from_params(p.iter().copied()).unwrap();
    let mut out = Vec::new();
    loop {
        let page = match plan {
            Some(plan) => store.query_with_plan("p", &req, plan).unwrap(),
            None => store.query("p", &req).unwrap(),
        };
        out.extend(page.traces.iter().map(|t| t.id.clone()));
        match page.next_cursor {
            Some(c) => req = QueryRequest::builder().cursor(&c).limit(1).build().unwrap(),
            None => return out,
        }
    }
}

/// Checks one query's answer under every plan and as an export, its total, and its models
/// facet.
fn check(store: &Store, params: &[(&str, &str)], want: &[&str], models: &[(&str, u64)]) {
    for plan in [None, Some(PlanKind::Scan), Some(PlanKind::Bitmap)] {
        assert_eq!(ids(store, params, plan), want, "{params:?} under {plan:?}");
    }
    let mut exported = Vec::new();
    let req = tracestore::ExportRequest::from_params(params.iter().copied()).unwrap();
    store
        .export("p", &req, |t| {
            exported.push(t.id.clone());
            Ok(())
        })
        .unwrap();
    assert_eq!(exported, want, "{params:?} exported");
    let mut p = params.to_vec();
    p.push(("include", "total,facets"));
    let page = store.query_params("p", p.iter().copied()).unwrap();
    assert_eq!(page.total, Some(want.len() as u64), "{params:?}");
    let got: Vec<(String, u64)> = page
        .facets
        .unwrap()
        .models
        .iter()
        .map(|m| (m.value.clone(), m.count))
        .collect();
    let models: Vec<(String, u64)> = models.iter().map(|(m, c)| (m.to_string(), *c)).collect();
    assert_eq!(got, models, "{params:?}");
}

fn verified(store: &Store) {
    assert_eq!(store.verify().unwrap(), vec![]);
}

#[test]
fn span_terms_follow_every_write() {
    let store = Store::in_memory().unwrap();
    ingest(
        &store,
        json!([
            {"id": "a", "name": "agent", "startTime": "2026-03-01T10:00:00Z", "spans": [
                {"id": "s1", "name": "Chat-Completion", "model": "gpt-4o", "kind": "LLM"},
                {"id": "s2", "name": "search_orders", "kind": "TOOL"}]},
            {"id": "b", "name": "agent", "startTime": "2026-03-01T09:00:00Z", "spans": [
                {"id": "s1", "name": "chat", "model": "gpt-4o-mini", "kind": "LLM",
                 "status": "ERROR"}]},
        ]),
    );
    verified(&store);
    check(
        &store,
        &[],
        &["a", "b"],
        &[("gpt-4o", 1), ("gpt-4o-mini", 1)],
    );
    check(&store, &[("spanModel", "gpt-4o")], &["a"], &[("gpt-4o", 1)]);
    check(
        &store,
        &[("spanName", "CHAT")],
        &["a", "b"],
        &[("gpt-4o", 1), ("gpt-4o-mini", 1)],
    );
    check(&store, &[("spanKind", "tool")], &["a"], &[("gpt-4o", 1)]);
    check(
        &store,
        &[("spanStatus", "ERROR")],
        &["b"],
        &[("gpt-4o-mini", 1)],
    );
    check(
        &store,
        &[("spanModel", "gpt-4o"), ("spanStatus", "ERROR")],
        &[],
        &[],
    );

    // s1 of `a` re-sent: another model, status ERROR. The old model leaves `a`.
    ingest(
        &store,
        json!([{"id": "a", "spans": [{"id": "s1", "name": "Chat-Completion",
            "model": "claude-sonnet", "kind": "LLM", "status": "ERROR"}]}]),
    );
    verified(&store);
    check(&store, &[("spanModel", "gpt-4o")], &[], &[]);
    check(
        &store,
        &[("spanModel", "claude-sonnet"), ("spanStatus", "error")],
        &["a"],
        &[("claude-sonnet", 1)],
    );
    // The same span: `a` has an ERROR span and a TOOL span, but no ERROR TOOL span.
    check(
        &store,
        &[("spanKind", "TOOL"), ("spanStatus", "ERROR")],
        &[],
        &[],
    );
    check(
        &store,
        &[("spanStatus", "ERROR")],
        &["a", "b"],
        &[("claude-sonnet", 1), ("gpt-4o-mini", 1)],
    );
    check(
        &store,
        &[
            ("spanName", "orders"),
            ("spanKind", "TOOL"),
            ("spanStatus", "OK"),
        ],
        &["a"],
        &[("claude-sonnet", 1)],
    );

    // Back to OK: `a` has no ERROR span any more.
    ingest(
        &store,
        json!([{"id": "a", "spans": [{"id": "s1", "name": "Chat-Completion",
            "model": "claude-sonnet", "kind": "LLM", "status": "OK"}]}]),
    );
    verified(&store);
    check(
        &store,
        &[("spanStatus", "ERROR")],
        &["b"],
        &[("gpt-4o-mini", 1)],
    );
    check(
        &store,
        &[
            ("spanModel", "claude-sonnet"),
            ("spanStatus", "OK"),
            ("spanKind", "LLM"),
        ],
        &["a"],
        &[("claude-sonnet", 1)],
    );

    // `a` moves before `b` (a new row): its span terms move along.
    ingest(
        &store,
        json!([{"id": "a", "startTime": "2026-03-01T08:00:00Z"}]),
    );
    verified(&store);
    check(
        &store,
        &[],
        &["b", "a"],
        &[("claude-sonnet", 1), ("gpt-4o-mini", 1)],
    );
    check(
        &store,
        &[("spanName", "chat"), ("spanKind", "LLM")],
        &["b", "a"],
        &[("claude-sonnet", 1), ("gpt-4o-mini", 1)],
    );
    check(
        &store,
        &[("spanKind", "TOOL"), ("spanName", "search")],
        &["a"],
        &[("claude-sonnet", 1)],
    );

    // A small ingest of a new trace is pending: tested on its own spans, counted in `models`.
    ingest(
        &store,
        json!([{"id": "c", "name": "agent", "startTime": "2026-03-01T11:00:00Z", "spans": [
            {"id": "x", "name": "chat", "model": "gpt-4o-mini", "kind": "LLM"},
            {"id": "y", "name": "guard", "kind": "GUARDRAIL", "status": "ERROR"}]}]),
    );
    assert!(storage_pending_bytes(&store) > 0, "c is pending");
    verified(&store);
    let pending_answers = |store: &Store| {
        check(
            store,
            &[("spanModel", "gpt-4o-mini")],
            &["c", "b"],
            &[("gpt-4o-mini", 2)],
        );
        check(
            store,
            &[("spanStatus", "ERROR"), ("spanKind", "LLM")],
            &["b"],
            &[("gpt-4o-mini", 1)],
        );
        check(
            store,
            &[("spanStatus", "ERROR"), ("spanKind", "guardrail")],
            &["c"],
            &[("gpt-4o-mini", 1)],
        );
        check(
            store,
            &[("spanStatus", "ERROR")],
            &["c", "b"],
            &[("gpt-4o-mini", 2)],
        );
    };
    pending_answers(&store);
    // Deleting `a` folds `c` first, through the ordinary upsert; `a`'s terms leave.
    store.delete_trace("p", "a").unwrap();
    assert_eq!(storage_pending_bytes(&store), 0, "c is folded");
    verified(&store);
    pending_answers(&store);
    check(&store, &[("spanModel", "claude-sonnet")], &[], &[]);
    check(&store, &[("spanKind", "TOOL")], &[], &[]);
    check(&store, &[], &["c", "b"], &[("gpt-4o-mini", 2)]);

    // explain() shows the span inputs with their row counts, sorted (and the plan, for the
    // message), for the four conditions with the given span status.
    let inputs_with = |status: tracestore::Status| {
        let e = store
            .explain(
                "p",
                &QueryRequest::builder()
                    .span_model("gpt-4o-mini")
                    .span_kind(tracestore::SpanKind::Llm)
                    .span_status(status)
                    .span_name("CHAT")
                    .build()
                    .unwrap(),
            )
            .unwrap();
        let mut inputs: Vec<(String, u64)> =
            e.inputs.iter().map(|i| (i.term.clone(), i.rows)).collect();
        inputs.sort();
        (inputs, e.to_string())
    };
    // With spanStatus=ERROR, each other condition reads its pair bitmap (its term on an ERROR
    // span), and the status needs no input of its own.
    let errors = store
        .query_params("p", [("spanStatus", "ERROR"), ("spanModel", "gpt-4o-mini")])
        .unwrap()
        .traces
        .len() as u64;
    let (inputs, e) = inputs_with(tracestore::Status::Error);
    assert_eq!(
        inputs,
        vec![
            ("spanKind=LLM on an ERROR span".to_string(), errors),
            ("spanModel=gpt-4o-mini on an ERROR span".to_string(), errors),
            (
                "spanName~chat (1 names) on an ERROR span".to_string(),
                errors
            ),
        ],
        "{e}"
    );
    let (inputs, e) = inputs_with(tracestore::Status::Ok);
    assert_eq!(
        inputs,
        vec![
            ("spanKind=LLM".to_string(), 2),
            ("spanModel=gpt-4o-mini".to_string(), 2),
            ("spanName~chat (1 names)".to_string(), 2),
            ("spanStatus=OK".to_string(), 1),
        ],
        "{e}"
    );
}

/// A trace whose spans are replaced many times in one batch keeps exact counts, and a trace
/// created and moved in the same request takes its span terms to the new row.
#[test]
fn span_terms_within_one_transaction() {
    let store = Store::in_memory().unwrap();
    ingest(
        &store,
        json!([
            {"id": "a", "name": "n", "startTime": "2026-03-01T10:00:00Z", "spans": [
                {"id": "s", "name": "one", "model": "m1", "kind": "LLM"}]},
            {"id": "a", "startTime": "2026-03-01T12:00:00Z", "spans": [
                {"id": "s", "name": "two", "model": "m2", "kind": "TOOL", "status": "ERROR"},
                {"id": "t", "name": "one", "model": "m1", "kind": "LLM"}]},
            {"id": "z", "name": "n", "startTime": "2026-03-01T09:00:00Z"},
        ]),
    );
    verified(&store);
    check(
        &store,
        &[("spanModel", "m2"), ("spanKind", "TOOL")],
        &["a"],
        &[("m1", 1), ("m2", 1)],
    );
    check(
        &store,
        &[("spanModel", "m1"), ("spanKind", "TOOL")],
        &[],
        &[],
    );
    check(
        &store,
        &[("spanName", "one"), ("spanStatus", "OK")],
        &["a"],
        &[("m1", 1), ("m2", 1)],
    );
    check(&store, &[("spanKind", "UNKNOWN")], &[], &[]);
    // Retention deletes through the same path.
    assert_eq!(
        store
            .delete_before(
                "p",
                tracestore::Timestamp::parse("2026-03-02T00:00:00Z").unwrap(),
                |_| {}
            )
            .unwrap(),
        2
    );
    verified(&store);
    check(&store, &[("spanModel", "m1")], &[], &[]);
}
