//! The write buffer: small ingests of new traces commit to the pending table and are folded into
//! the indexes by the next larger write. Every answer must be the same before and after a fold.

use std::collections::HashSet;
use tracestore::demo::{DemoConfig, Generator};
use tracestore::limits::MAX_PENDING_TRACES;
use tracestore::{ErrorCode, Page, QueryRequest, Status, Store, Timestamp, TraceInput};

fn demo(n: usize, seed: u64) -> Vec<TraceInput> {
    let cfg = DemoConfig {
        traces: n,
        seed,
        projects: vec!["p".into()],
        ..Default::default()
    };
    Generator::new(cfg).map(|(_, t)| t).collect()
}

fn pending_bytes(store: &Store) -> u64 {
    store
        .storage_stats()
        .unwrap()
        .iter()
        .find(|u| u.table == "pending")
        .map_or(0, |u| u.entries_bytes)
}

/// Every page of a query, walked with cursors.
fn walk(store: &Store, params: &[(&str, &str)], limit: u32) -> Vec<Page> {
    let mut pages = Vec::new();
    let mut p: Vec<(String, String)> = params
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    p.push(("limit".into(), limit.to_string()));
    loop {
        let page = store.query_params("p", p.clone()).unwrap();
        let next = page.next_cursor.clone();
        pages.push(page);
        match next {
            Some(c) => p = vec![("cursor".into(), c), ("limit".into(), limit.to_string())],
            None => return pages,
        }
    }
}

const QUERIES: &[&[(&str, &str)]] = &[
    &[],
    &[("status", "ERROR")],
    &[("name", "SUPPORT")],
    &[("tags", "production")],
    &[("tags", "production,v2"), ("status", "OK")],
    &[
        ("startDate", "2026-01-01T00:00:00Z"),
        ("endDate", "2026-12-01T00:00:00Z"),
    ],
    &[("name", "no-such-agent")],
];

fn snapshot(store: &Store, ids: &[String]) -> (Vec<Vec<tracestore::Trace>>, Vec<String>) {
    let mut lists = Vec::new();
    for q in QUERIES {
        for limit in [1, 7, 100] {
            let traces: Vec<_> = walk(store, q, limit)
                .into_iter()
                .flat_map(|p| p.traces)
                .collect();
            let distinct: HashSet<_> = traces.iter().map(|t| t.id.clone()).collect();
            assert_eq!(distinct.len(), traces.len(), "a trace appeared twice");
            lists.push(traces);
        }
    }
    let details = ids
        .iter()
        .map(|id| format!("{:?}", store.get_trace("p", id).unwrap()))
        .collect();
    (lists, details)
}

#[test]
fn pending_traces_read_the_same_before_and_after_a_fold() {
    let store = Store::in_memory().unwrap();
    store.ingest("p", demo(300, 1)).unwrap();
    assert_eq!(pending_bytes(&store), 0, "a large batch is indexed at once");
    let singles = demo(MAX_PENDING_TRACES as usize, 2);
    let ids: Vec<String> = singles.iter().map(|t| t.id.clone().unwrap()).collect();
    for t in singles {
        let s = store.ingest("p", vec![t]).unwrap();
        assert_eq!(s.created, 1);
    }
    assert!(
        pending_bytes(&store) > 0,
        "single-trace ingests are buffered"
    );
    assert!(store.verify().unwrap().is_empty());
    let before = snapshot(&store, &ids);
    let total: usize = before.0[0].len();
    assert_eq!(total, 300 + MAX_PENDING_TRACES as usize);

    // Retention with a cutoff before every trace deletes nothing but folds the pending traces.
    let deleted = store
        .delete_before("p", Timestamp::from_millis(0).unwrap(), |_| {})
        .unwrap();
    assert_eq!(deleted, 0);
    assert_eq!(
        pending_bytes(&store),
        0,
        "the write folded the pending traces"
    );
    assert!(store.verify().unwrap().is_empty());
    let after = snapshot(&store, &ids);
    assert_eq!(before.0, after.0, "query results changed with the fold");
    assert_eq!(before.1, after.1, "trace details changed with the fold");
}

#[test]
fn the_write_past_the_pending_limit_folds_and_nothing_is_lost() {
    let store = Store::in_memory().unwrap();
    store.ingest("p", demo(10, 3)).unwrap();
    let singles = demo(3 * MAX_PENDING_TRACES as usize + 5, 4);
    let n = singles.len();
    for (i, t) in singles.into_iter().enumerate() {
        store.ingest("p", vec![t]).unwrap();
        if i % 37 == 0 {
            assert!(store.verify().unwrap().is_empty(), "after {i} singles");
        }
    }
    assert!(store.verify().unwrap().is_empty());
    let all: Vec<_> = walk(&store, &[], 100)
        .into_iter()
        .flat_map(|p| p.traces)
        .collect();
    assert_eq!(all.len(), 10 + n);
}

#[test]
fn updates_and_deletes_reach_pending_traces() {
    let store = Store::in_memory().unwrap();
    store.ingest("p", demo(20, 5)).unwrap();
    let mut t = demo(1, 6).remove(0);
    t.id = Some("fresh".into());
    t.status = Some(Status::Ok);
    store.ingest("p", vec![t.clone()]).unwrap();
    assert!(pending_bytes(&store) > 0);

    // A retry of the same trace is an update, not a second copy.
    let s = store.ingest("p", vec![t.clone()]).unwrap();
    assert_eq!((s.created, s.updated), (0, 1));
    let mut patch = TraceInput {
        id: Some("fresh".into()),
        status: Some(Status::Error),
        ..Default::default()
    };
    patch.tags = Some(vec!["patched".into()]);
    store.ingest("p", vec![patch]).unwrap();
    let got = store.get_trace("p", "fresh").unwrap();
    assert_eq!(got.trace.status, Status::Error);
    assert_eq!(got.trace.tags, vec!["patched".to_string()]);
    assert_eq!(got.trace.name, t.name.clone().unwrap());
    let errors = walk(&store, &[("tags", "patched")], 10);
    assert_eq!(errors[0].traces.len(), 1);

    // A buffered trace can be deleted, and a batch with a duplicate id is not buffered.
    let mut u = demo(1, 7).remove(0);
    u.id = Some("gone".into());
    store.ingest("p", vec![u.clone()]).unwrap();
    store.delete_trace("p", "gone").unwrap();
    assert_eq!(
        store.get_trace("p", "gone").unwrap_err().code(),
        ErrorCode::NotFound
    );
    let s = store.ingest("p", vec![u.clone(), u]).unwrap();
    assert_eq!((s.created, s.updated), (1, 1));
    assert!(store.verify().unwrap().is_empty());
}

#[test]
fn a_walk_sees_each_pending_trace_once_across_a_fold() {
    let store = Store::in_memory().unwrap();
    store.ingest("p", demo(200, 8)).unwrap();
    for t in demo(40, 9) {
        store.ingest("p", vec![t]).unwrap();
    }
    let mut seen = Vec::new();
    let mut page = store
        .query("p", &QueryRequest::builder().limit(9).build().unwrap())
        .unwrap();
    let mut step = 0;
    loop {
        seen.extend(page.traces.iter().map(|t| t.id.clone()));
        step += 1;
        if step == 3 {
            // Fold mid-walk, and add traces the walk must not show (they are newer than it).
            store.ingest("p", demo(100, 10)).unwrap();
            assert_eq!(pending_bytes(&store), 0);
        }
        let Some(c) = page.next_cursor else { break };
        page = store
            .query(
                "p",
                &QueryRequest::builder().cursor(&c).limit(9).build().unwrap(),
            )
            .unwrap();
    }
    let distinct: HashSet<_> = seen.iter().collect();
    assert_eq!(distinct.len(), seen.len(), "a trace appeared twice");
    assert_eq!(
        seen.len(),
        240,
        "every trace that existed at the start, once"
    );
}

#[test]
fn the_write_buffer_size_is_an_option() {
    let err = Store::builder()
        .write_buffer_traces(MAX_PENDING_TRACES + 1)
        .in_memory()
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::Validation);
    assert!(err.to_string().contains("write_buffer_traces"), "{err}");

    // 0 turns buffering off: every ingest is indexed in its own commit.
    let off = Store::builder().write_buffer_traces(0).in_memory().unwrap();
    off.ingest("p", demo(5, 13)).unwrap();
    for t in demo(10, 14) {
        off.ingest("p", vec![t]).unwrap();
        assert_eq!(pending_bytes(&off), 0);
    }
    assert!(off.verify().unwrap().is_empty());

    // A small buffer folds every few commits.
    let small = Store::builder().write_buffer_traces(3).in_memory().unwrap();
    small.ingest("p", demo(5, 15)).unwrap();
    let mut folds = 0;
    for t in demo(12, 16) {
        let before = pending_bytes(&small);
        small.ingest("p", vec![t]).unwrap();
        if pending_bytes(&small) < before {
            folds += 1;
        }
        assert!(small.verify().unwrap().is_empty());
    }
    assert_eq!(
        folds, 3,
        "12 single commits with room for 3: a fold every 4th"
    );
    let all: Vec<_> = walk(&small, &[], 100)
        .into_iter()
        .flat_map(|p| p.traces)
        .collect();
    assert_eq!(all.len(), 17);
}

#[test]
fn a_very_large_trace_is_indexed_at_once() {
    let store = Store::in_memory().unwrap();
    store.ingest("p", demo(5, 17)).unwrap();
    let mut big = demo(1, 18).remove(0);
    big.spans = (0..2000)
        .map(|i| tracestore::SpanInput {
            id: Some(format!("span-{i}")),
            name: Some("a span with a name long enough to add up".into()),
            ..Default::default()
        })
        .collect();
    store.ingest("p", vec![big.clone()]).unwrap();
    assert_eq!(
        pending_bytes(&store),
        0,
        "over 64 KiB encoded: not buffered"
    );
    let got = store.get_trace("p", big.id.as_deref().unwrap()).unwrap();
    assert_eq!(got.spans.len(), 2000);
    assert!(store.verify().unwrap().is_empty());
}
