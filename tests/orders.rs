//! Every `orderBy`: pages against the naive model (with running traces, ties, filters, every
//! plan), and the walk guarantee under concurrent change. Between pages, traces are inserted,
//! re-sent with spans that raise or lower their cost and tokens, ended while running, moved to
//! another startTime, and deleted. The walk never repeats a trace, its order is strict, and
//! every trace that matched when the walk began and was not touched appears exactly once.

mod support;

use proptest::prelude::*;
use std::collections::{BTreeMap, HashMap, HashSet};
use support::checks::params_ref;
use support::query::{order_cmp, ts, MQuery, ModelTrace};
use tracestore::{Order, PlanKind, QueryRequest, Status, Store};

/// A trace with what the orders sort by: spans with cost (thousandths) and tokens, and an end.
#[derive(Clone, Debug)]
struct OTrace {
    id: String,
    status: Status,
    start_ms: i64,
    tags: Vec<String>,
    /// Offset from BASE_MS; None: running.
    end_ms: Option<i64>,
    spans: BTreeMap<u8, (u64, u64)>,
}

impl ModelTrace for OTrace {
    fn id(&self) -> &str {
        &self.id
    }
    fn name(&self) -> &str {
        "agent"
    }
    fn status(&self) -> Status {
        self.status
    }
    fn start_ms(&self) -> i64 {
        self.start_ms
    }
    fn tags(&self) -> &[String] {
        &self.tags
    }
    fn duration_ms(&self) -> Option<u64> {
        self.end_ms.map(|e| (e - self.start_ms) as u64)
    }
    fn cost_milli(&self) -> u64 {
        self.spans.values().map(|s| s.0).sum()
    }
    fn total_tokens(&self) -> u64 {
        self.spans.values().map(|s| s.1).sum()
    }
}

/// A returned list row as the model sees it, with its key at the time of its page.
#[derive(Clone, Debug)]
struct Row {
    id: String,
    start_ms: i64,
    duration: Option<u64>,
    cost_milli: u64,
    tokens: u64,
}

impl ModelTrace for Row {
    fn id(&self) -> &str {
        &self.id
    }
    fn name(&self) -> &str {
        "agent"
    }
    fn status(&self) -> Status {
        Status::Ok
    }
    fn start_ms(&self) -> i64 {
        self.start_ms
    }
    fn tags(&self) -> &[String] {
        &[]
    }
    fn duration_ms(&self) -> Option<u64> {
        self.duration
    }
    fn cost_milli(&self) -> u64 {
        self.cost_milli
    }
    fn total_tokens(&self) -> u64 {
        self.tokens
    }
}

fn row(t: &tracestore::Trace) -> Row {
    let milli = (t.total_cost * rust_decimal::Decimal::from(1000))
        .trunc()
        .to_string()
        .parse()
        .unwrap();
    Row {
        id: t.id.clone(),
        start_ms: t.start_time.as_millis(),
        duration: t.duration_ms.map(|d| d as u64),
        cost_milli: milli,
        tokens: t.total_tokens,
    }
}

fn span_json(n: u8, (cost, tokens): (u64, u64)) -> serde_json::Value {
    serde_json::json!({"id": format!("s{n}"), "name": "llm", "model": "m",
        "cost": format!("{}.{:03}", cost / 1000, cost % 1000),
        "inputTokens": tokens, "outputTokens": 0})
}

/// The whole trace, as its first delivery.
fn full_json(t: &OTrace) -> serde_json::Value {
    let mut v = serde_json::json!({
        "id": t.id, "name": "agent", "status": t.status.as_str(),
        "startTime": tracestore::Timestamp::from_millis(t.start_ms).unwrap().to_string(),
        "tags": t.tags,
        "spans": t.spans.iter().map(|(n, s)| span_json(*n, *s)).collect::<Vec<_>>(),
    });
    if let Some(e) = t.end_ms {
        v["endTime"] =
            serde_json::json!(tracestore::Timestamp::from_millis(e).unwrap().to_string());
    }
    v
}

fn ingest(store: &Store, items: Vec<serde_json::Value>) {
    let body = serde_json::json!({ "traces": items }).to_string();
    store.ingest_json("p", body.as_bytes()).unwrap();
}

fn arb_trace() -> impl Strategy<Value = OTrace> {
    (
        0..60u32,
        0..40i64,
        any::<bool>(),
        any::<bool>(),
        prop::option::of(0..6i64),
        prop::collection::btree_map(0..3u8, (0..4u64, 0..4u64), 0..3),
    )
        .prop_map(|(i, t, err, tagged, end, spans)| {
            let start_ms = support::query::BASE_MS + t * 1000;
            OTrace {
                id: format!("o{i:02}"),
                status: if err { Status::Error } else { Status::Ok },
                start_ms,
                tags: if tagged { vec!["prod".into()] } else { vec![] },
                end_ms: end.map(|e| start_ms + e * 500),
                // Few distinct values, so that ties are common.
                spans: spans
                    .into_iter()
                    .map(|(n, (c, k))| (n, (c * 5, k * 10)))
                    .collect(),
            }
        })
}

fn arb_filter() -> impl Strategy<Value = MQuery> {
    prop_oneof![
        Just(MQuery::default()),
        Just(MQuery {
            status: Some(Status::Error),
            ..Default::default()
        }),
        Just(MQuery {
            tags: vec!["prod".into()],
            ..Default::default()
        }),
        Just(MQuery {
            cost_milli: (Some(5), None),
            ..Default::default()
        }),
        Just(MQuery {
            start: Some(5_000),
            end: Some(30_000),
            ..Default::default()
        }),
    ]
}

fn plans() -> impl Strategy<Value = Option<PlanKind>> {
    prop_oneof![
        Just(None),
        Just(Some(PlanKind::Scan)),
        Just(Some(PlanKind::Bitmap)),
        Just(Some(PlanKind::Sorted)),
    ]
}

fn run(store: &Store, req: &QueryRequest, plan: Option<PlanKind>) -> tracestore::Page {
    match plan {
        Some(p) => store.query_with_plan("p", req, p).unwrap(),
        None => store.query("p", req).unwrap(),
    }
}

/// A write between pages.
#[derive(Clone, Debug)]
enum Op {
    /// A new trace (or, for an id that exists, its spans re-sent).
    Insert(OTrace),
    /// A span added or replaced: the cost and tokens rise or fall.
    Span(u32, u8, u64, u64),
    /// A running trace ends (or a finished one gets a later end).
    End(u32, i64),
    /// The trace starts earlier: its row moves.
    Move(u32, i64),
    Delete(u32),
}

fn arb_op() -> impl Strategy<Value = Op> {
    prop_oneof![
        arb_trace().prop_map(Op::Insert),
        (0..60u32, 0..4u8, 0..6u64, 0..6u64).prop_map(|(i, n, c, k)| Op::Span(i, n, c * 5, k * 10)),
        (0..60u32, 0..8i64).prop_map(|(i, e)| Op::End(i, e)),
        (0..60u32, 1..5i64).prop_map(|(i, d)| Op::Move(i, d)),
        (0..60u32).prop_map(Op::Delete),
    ]
}

/// Applies `op` to the store and the model; returns the id it touched.
fn apply(store: &Store, model: &mut BTreeMap<String, OTrace>, op: &Op) -> String {
    let id_of = |i: &u32| format!("o{i:02}");
    match op {
        Op::Insert(t) => {
            match model.get_mut(&t.id) {
                Some(old) => {
                    // A known id: only its spans are re-sent, replacing by span id.
                    let spans: Vec<_> = t.spans.iter().map(|(n, s)| span_json(*n, *s)).collect();
                    ingest(store, vec![serde_json::json!({"id": t.id, "spans": spans})]);
                    old.spans.extend(t.spans.iter().map(|(n, s)| (*n, *s)));
                }
                None => {
                    ingest(store, vec![full_json(t)]);
                    model.insert(t.id.clone(), t.clone());
                }
            }
            t.id.clone()
        }
        Op::Span(i, n, c, k) => {
            let id = id_of(i);
            if let Some(old) = model.get_mut(&id) {
                ingest(
                    store,
                    vec![serde_json::json!({"id": id, "spans": [span_json(*n, (*c, *k))]})],
                );
                old.spans.insert(*n, (*c, *k));
            }
            id
        }
        Op::End(i, e) => {
            let id = id_of(i);
            if let Some(old) = model.get_mut(&id) {
                let end = old.start_ms + e * 700;
                let at = tracestore::Timestamp::from_millis(end).unwrap().to_string();
                ingest(store, vec![serde_json::json!({"id": id, "endTime": at})]);
                old.end_ms = Some(end);
            }
            id
        }
        Op::Move(i, d) => {
            let id = id_of(i);
            if let Some(old) = model.get_mut(&id) {
                // Earlier, so that a stored end stays after the start.
                let start = old.start_ms - d * 1000;
                let at = tracestore::Timestamp::from_millis(start)
                    .unwrap()
                    .to_string();
                ingest(store, vec![serde_json::json!({"id": id, "startTime": at})]);
                old.start_ms = start;
            }
            id
        }
        Op::Delete(i) => {
            let id = id_of(i);
            let existed = model.remove(&id).is_some();
            assert_eq!(store.delete_trace("p", &id).is_ok(), existed);
            id
        }
    }
}

fn load(data: &[OTrace], batch: usize, store: &Store) -> BTreeMap<String, OTrace> {
    let mut model = BTreeMap::new();
    let mut first: Vec<OTrace> = Vec::new();
    for t in data {
        if !model.contains_key(&t.id) && !first.iter().any(|f| f.id == t.id) {
            first.push(t.clone());
        }
        if first.len() >= batch {
            ingest(store, first.iter().map(full_json).collect());
            for f in first.drain(..) {
                model.insert(f.id.clone(), f);
            }
        }
    }
    if !first.is_empty() {
        ingest(store, first.iter().map(full_json).collect());
        for f in first.drain(..) {
            model.insert(f.id.clone(), f);
        }
    }
    model
}

fn with_order(mut q: MQuery, order: usize) -> MQuery {
    q.order = Some(Order::ALL[order].as_str());
    q
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Every order, every plan, with filters: the concatenated pages equal the model, the
    /// cursor alone continues, and `nextCursor` is null exactly at the end.
    #[test]
    fn every_order_pages_equal_the_model(
        data in prop::collection::vec(arb_trace(), 0..80),
        batch in 1..30usize,
        filter in arb_filter(),
        order in 0..Order::ALL.len(),
        limit in 1..7u32,
        plan in plans(),
    ) {
        let store = Store::in_memory().unwrap();
        let model = load(&data, batch, &store);
        let q = with_order(filter, order);
        let want: Vec<String> = q.answer(model.values()).into_iter().map(|t| t.id.clone()).collect();
        let mut page = run(&store, &QueryRequest::from_params(params_ref(&q.params(limit))).unwrap(), plan);
        let mut got = Vec::new();
        loop {
            got.extend(page.traces.iter().map(|t| t.id.clone()));
            let Some(c) = page.next_cursor.clone() else { break };
            prop_assert!(got.len() < want.len(), "a cursor after the last match");
            page = run(&store, &QueryRequest::builder().cursor(&c).limit(limit).build().unwrap(), plan);
            prop_assert!(!page.traces.is_empty(), "nextCursor led to an empty page");
        }
        prop_assert_eq!(&got, &want, "{:?} {:?}", q, plan);
        prop_assert!(store.verify().unwrap().is_empty());
    }

    /// The walk guarantee for every order under inserts, cost and token changes, ends, moves
    /// and deletes between pages.
    #[test]
    fn every_order_walks_under_concurrent_change(
        data in prop::collection::vec(arb_trace(), 0..80),
        ops in prop::collection::vec(prop::collection::vec(arb_op(), 0..5), 0..30),
        filter in arb_filter(),
        order in 0..Order::ALL.len(),
        limit in 1..6u32,
        plan in plans(),
    ) {
        let store = Store::in_memory().unwrap();
        let mut model = load(&data, 25, &store);
        let q = with_order(filter, order);
        let at_start: HashSet<String> = q.answer(model.values()).into_iter().map(|t| t.id.clone()).collect();
        let mut touched: HashSet<String> = HashSet::new();
        let mut page = run(&store, &QueryRequest::from_params(params_ref(&q.params(limit))).unwrap(), plan);
        let mut seen: Vec<Row> = Vec::new();
        let mut step = 0;
        loop {
            for t in &page.traces {
                // Each returned trace matches the query as of its page.
                let m = model.get(&t.id).expect("a returned trace exists");
                prop_assert!(q.matches(m), "returned a non-matching trace {:?}", m);
                seen.push(row(t));
            }
            let Some(c) = page.next_cursor.clone() else { break };
            if let Some(batch) = ops.get(step) {
                for op in batch {
                    touched.insert(apply(&store, &mut model, op));
                }
            }
            step += 1;
            page = run(&store, &QueryRequest::builder().cursor(&c).limit(limit).build().unwrap(), plan);
        }
        // Strict order (by the keys each row had on its page), hence no duplicates.
        for w in seen.windows(2) {
            prop_assert!(order_cmp(Order::ALL[order].as_str(), &w[0], &w[1]).is_lt(), "order broken: {:?}", w);
        }
        let mut counts: HashMap<&str, usize> = HashMap::new();
        for r in &seen {
            *counts.entry(r.id.as_str()).or_default() += 1;
        }
        prop_assert!(counts.values().all(|c| *c == 1), "a trace appeared twice: {:?}", counts);
        for id in at_start.difference(&touched) {
            prop_assert!(counts.contains_key(id.as_str()), "missed untouched trace {}", id);
        }
        prop_assert!(store.verify().unwrap().is_empty());
    }
}

/// Running traces sort after every finished one in both directions of `durationMs`; ties on a
/// key come newest first, then by id descending, in both directions; deep pages continue
/// exactly.
#[test]
fn running_traces_last_and_ties_newest_first() {
    let store = Store::in_memory().unwrap();
    let mut items = Vec::new();
    for i in 0..40i64 {
        let start = ts(i * 1000);
        let mut t = serde_json::json!({"id": format!("t{i:02}"), "name": "agent",
            "startTime": start.to_string(),
            "spans": [{"id": "s", "name": "llm", "cost": if i % 3 == 0 { "0" } else { "0.5" },
                       "inputTokens": i % 4, "outputTokens": 0}]});
        if i % 5 != 0 {
            t["endTime"] = serde_json::json!(ts(i * 1000 + (i % 4) * 100).to_string());
        }
        items.push(t);
    }
    ingest(&store, items);
    let ids = |order: &str, limit: &str| -> Vec<String> {
        let mut out = Vec::new();
        let mut page = store
            .query_params("p", [("orderBy", order), ("limit", limit)])
            .unwrap();
        loop {
            out.extend(page.traces.iter().map(|t| t.id.clone()));
            let Some(c) = page.next_cursor.clone() else {
                return out;
            };
            page = store
                .query_params("p", [("cursor", c.as_str()), ("limit", limit)])
                .unwrap();
        }
    };
    for order in ["durationMs.desc", "durationMs.asc"] {
        let all = ids(order, "7");
        assert_eq!(all.len(), 40);
        let running: Vec<&String> = all.iter().skip(32).collect();
        // The 8 running traces (every fifth) come last, newest first.
        let want: Vec<String> = [35, 30, 25, 20, 15, 10, 5, 0]
            .iter()
            .map(|i| format!("t{i:02}"))
            .collect();
        assert_eq!(running, want.iter().collect::<Vec<_>>(), "{order}");
        assert_eq!(ids(order, "100"), all, "page size changes nothing");
    }
    // Ties: cost 0 for every third trace; within the tie, newest first in both directions.
    let asc = ids("totalCost.asc", "5");
    let zero: Vec<String> = (0..40)
        .rev()
        .filter(|i| i % 3 == 0)
        .map(|i| format!("t{i:02}"))
        .collect();
    assert_eq!(asc[..zero.len()], zero[..]);
    let desc = ids("totalCost.desc", "5");
    assert_eq!(desc[desc.len() - zero.len()..], zero[..]);
    // startTime.asc is the exact reverse of the default order (ids are distinct starts).
    let mut newest = ids("startTime.desc", "9");
    newest.reverse();
    assert_eq!(ids("startTime.asc", "3"), newest);
}

/// A cursor continues its own order: a different `orderBy` beside it is refused on `cursor`,
/// the same one (or none) continues, and the default given explicitly equals none.
#[test]
fn a_cursor_keeps_its_order() {
    let store = Store::in_memory().unwrap();
    let items: Vec<_> = (0..5)
        .map(|i| serde_json::json!({"id": format!("t{i}"), "name": "a", "startTime": ts(i * 1000).to_string()}))
        .collect();
    ingest(&store, items);
    let page = store
        .query_params("p", [("orderBy", "totalTokens.asc"), ("limit", "2")])
        .unwrap();
    let c = page.next_cursor.unwrap();
    let err = store
        .query_params(
            "p",
            [("cursor", c.as_str()), ("orderBy", "totalTokens.desc")],
        )
        .unwrap_err();
    assert_eq!(err.details()[0].field(), "cursor", "{err}");
    assert!(store
        .query_params(
            "p",
            [("cursor", c.as_str()), ("orderBy", "totalTokens.asc")]
        )
        .is_ok());
    let page = store.query_params("p", [("limit", "2")]).unwrap();
    let c = page.next_cursor.unwrap();
    assert!(store
        .query_params("p", [("cursor", c.as_str()), ("orderBy", "startTime.desc")])
        .is_ok());
    let err = store
        .query_params("p", [("cursor", c.as_str()), ("orderBy", "startTime.asc")])
        .unwrap_err();
    assert_eq!(err.details()[0].field(), "cursor");
}
