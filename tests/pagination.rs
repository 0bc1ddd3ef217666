//! Pagination properties against a naive model: concatenated pages equal the model's answer, no
//! trace appears twice, nextCursor is null exactly at the end, and a cursor alone continues.

mod support;

use proptest::prelude::*;
use std::collections::HashSet;
use support::query::SpanFacts;
use support::simple::*;
use tracestore::{QueryRequest, SpanKind, Status, Store};

const PROJECTS: [&str; 3] = ["alpha", "beta", "gamma"];
const NAMES: [&str; 6] = [
    "support-agent",
    "Support-Bot",
    "tool-x",
    "planner",
    "ÄgentÜber",
    "sup",
];
const TAGS: [&str; 5] = ["a", "b", "c", "prod", "v2"];
const NEEDLES: [&str; 8] = ["", "sup", "SUPPORT", "tool", "x", "zzz", "ägent", "t-"];

fn arb_trace() -> impl Strategy<Value = (usize, MTrace)> {
    (
        0..PROJECTS.len(),
        0..40u32,
        0..NAMES.len(),
        prop::bool::weighted(0.3),
        0..30i64,
        prop::collection::vec(0..TAGS.len(), 0..4),
    )
        .prop_map(|(p, id, n, err, t, tags)| {
            let mut tv: Vec<String> = tags.into_iter().map(|i| TAGS[i].to_string()).collect();
            tv.sort();
            tv.dedup();
            (
                p,
                MTrace {
                    id: format!("t{id}"),
                    name: NAMES[n].to_string(),
                    status: if err { Status::Error } else { Status::Ok },
                    // Few distinct start times, so ties on startTime are common.
                    start_ms: BASE_MS + t * 1000,
                    tags: tv,
                },
            )
        })
}

fn arb_query() -> impl Strategy<Value = MQuery> {
    (
        prop::option::of(0..NEEDLES.len()),
        prop::option::of(prop::bool::ANY),
        prop::collection::vec(0..TAGS.len() + 1, 0..3),
        prop::option::of(0..32i64),
        prop::option::of(0..32i64),
        prop::collection::vec(0..TAGS.len() + 1, 0..3),
        prop::collection::vec(0..TAGS.len() + 1, 0..2),
    )
        .prop_map(|(n, st, tags, s, e, any, exclude)| {
            let tag_list = |ix: Vec<usize>| {
                let mut v: Vec<String> = ix
                    .into_iter()
                    .map(|i| TAGS.get(i).copied().unwrap_or("missing").to_string())
                    .collect();
                v.sort();
                v.dedup();
                v
            };
            let tags = tag_list(tags);
            let (s, e) = match (s, e) {
                (Some(a), Some(b)) if b < a => (Some(b * 1000), Some(a * 1000)),
                (a, b) => (a.map(|x| x * 1000), b.map(|x| x * 1000)),
            };
            MQuery {
                name: n.map(|i| NEEDLES[i].to_string()),
                status: st.map(|e| if e { Status::Error } else { Status::Ok }),
                tags,
                start: s.map(|x| x - BASE_MS + BASE_MS),
                end: e,
                any_tags: tag_list(any),
                exclude_tags: tag_list(exclude),
                ..Default::default()
            }
        })
}

fn load(data: &[(usize, MTrace)], batch: usize) -> (Store, Model) {
    let store = Store::in_memory().unwrap();
    let mut model = Model::default();
    for chunk in data.chunks(batch.max(1)) {
        for (p, project) in PROJECTS.iter().enumerate() {
            let items: Vec<_> = chunk
                .iter()
                .filter(|(q, _)| *q == p)
                .map(|(_, t)| input(t))
                .collect();
            if !items.is_empty() {
                store.ingest(project, items).unwrap();
            }
        }
        for (p, t) in chunk {
            model.upsert(PROJECTS[*p], t.clone());
        }
    }
    (store, model)
}

fn arb_limits() -> impl Strategy<Value = Vec<u32>> {
    prop::collection::vec(prop_oneof![4 => 1..=7u32, 1 => 1..=100u32], 1..4)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn pages_equal_the_model(
        data in prop::collection::vec(arb_trace(), 0..120),
        batch in 1..50usize,
        queries in prop::collection::vec((arb_query(), arb_limits(), 0..PROJECTS.len()), 1..6),
    ) {
        let (store, model) = load(&data, batch);
        for (q, limits, p) in &queries {
            let got = walk(&store, PROJECTS[*p], q, limits);
            let want = model.answer(PROJECTS[*p], q);
            let distinct: HashSet<&String> = got.iter().collect();
            prop_assert_eq!(distinct.len(), got.len(), "a trace appeared twice");
            prop_assert_eq!(&got, &want, "query {:?} limits {:?}", q, limits);
        }
        assert_verified(&store);
    }

    #[test]
    fn totals_and_facets_equal_the_model_on_every_page(
        data in prop::collection::vec(arb_trace(), 0..150),
        batch in 1..50usize,
        queries in prop::collection::vec((arb_query(), 1..40u32, 0..PROJECTS.len(), 0..3usize), 1..5),
        deletes in prop::collection::vec((0..PROJECTS.len(), 0..40u32), 0..8),
    ) {
        let (store, mut model) = load(&data, batch);
        for (p, id) in &deletes {
            let id = format!("t{id}");
            prop_assert_eq!(store.delete_trace(PROJECTS[*p], &id).is_ok(), model.delete(PROJECTS[*p], &id));
        }
        for (q, limit, p, inc) in &queries {
            let include = ["total", "facets", "facets,total"][*inc];
            let project = PROJECTS[*p];
            let all = model.projects.get(project).into_iter().flat_map(|m| m.values());
            let want = q.tally(all);
            let mut params = q.params(*limit);
            params.push(("include".into(), include.into()));
            let mut page = store.query_params(project, params_ref(&params)).unwrap();
            loop {
                let want_total = include.contains("total").then_some(want.total);
                prop_assert_eq!(page.total, want_total, "query {:?}", q);
                match &page.facets {
                    None => prop_assert_eq!(include, "total"),
                    Some(f) => {
                        prop_assert_eq!((f.status.ok, f.status.error), (want.ok, want.error));
                        let pairs = |v: &[tracestore::FacetValue]| -> Vec<(String, u64)> {
                            v.iter().map(|x| (x.value.clone(), x.count)).collect()
                        };
                        prop_assert_eq!(pairs(&f.names), want.names.clone(), "names of {:?}", q);
                        prop_assert_eq!(pairs(&f.tags), want.tags.clone(), "tags of {:?}", q);
                    }
                }
                let Some(c) = page.next_cursor.clone() else { break };
                // The cursor with `include` continues, and the counts stay those of the whole set.
                page = store.query_params(project, [("cursor", c.as_str()), ("include", include)]).unwrap();
            }
        }
    }

    #[test]
    fn a_cursor_with_the_same_filters_continues_and_other_filters_are_rejected(
        data in prop::collection::vec(arb_trace(), 1..80),
        q in arb_query(),
        limit in 1..5u32,
    ) {
        let (store, model) = load(&data, 25);
        let params = q.params(limit);
        let first = store.query_params("alpha", params_ref(&params)).unwrap();
        if let Some(c) = first.next_cursor {
            // The full original parameters plus the cursor: the same continuation.
            let mut again = params.clone();
            again.push(("cursor".into(), c.clone()));
            let a = store.query_params("alpha", params_ref(&again)).unwrap();
            let b = store.query_params("alpha", [("cursor", c.as_str()), ("limit", &limit.to_string())]).unwrap();
            prop_assert_eq!(&a, &b);
            let want = model.answer("alpha", &q);
            prop_assert_eq!(a.traces.first().map(|t| t.id.clone()), want.get(limit as usize).cloned());
            // Different filters with this cursor are a validation error on `cursor`.
            let e = store.query_params("alpha", [("cursor", c.as_str()), ("status", "ok"), ("name", "qqq")]).unwrap_err();
            prop_assert_eq!(e.code(), tracestore::ErrorCode::Validation);
            prop_assert!(e.details().iter().any(|d| d.field() == "cursor"));
        }
    }
}

/// Many blocks and chunks, with arrival order far from time order: the bitmap executor's block
/// walk, its stopping rule and its cursor hints must still give the model's exact answer.
#[test]
fn out_of_order_arrival_across_many_blocks() {
    let store = Store::builder()
        .durability(tracestore::Durability::Deferred)
        .in_memory()
        .unwrap();
    let mut model = Model::default();
    let mut x: u64 = 12345;
    let mut rnd = move |n: u64| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x % n
    };
    let n = 6000;
    let mut batch = Vec::new();
    for i in 0..n {
        // Mostly increasing time, with 10% of traces backfilled far into the past.
        let start = if rnd(10) == 0 {
            rnd(n) as i64 * 1000
        } else {
            i as i64 * 1000
        };
        let t = MTrace {
            id: format!("id{:05}", rnd(100_000)),
            name: NAMES[rnd(NAMES.len() as u64) as usize].into(),
            status: if rnd(20) == 0 {
                Status::Error
            } else {
                Status::Ok
            },
            start_ms: BASE_MS + start,
            tags: if rnd(3) == 0 {
                vec!["prod".into()]
            } else {
                vec![]
            },
        };
        model.upsert("p", t.clone());
        batch.push(input(&t));
        if batch.len() == 500 {
            store.ingest("p", std::mem::take(&mut batch)).unwrap();
        }
    }
    store.ingest("p", batch).unwrap();
    let queries = [
        MQuery {
            status: Some(Status::Error),
            ..Default::default()
        },
        MQuery {
            tags: vec!["prod".into()],
            status: Some(Status::Error),
            ..Default::default()
        },
        MQuery {
            name: Some("tool".into()),
            ..Default::default()
        },
        MQuery {
            name: Some("planner".into()),
            start: Some(1_000_000),
            end: Some(4_000_000),
            ..Default::default()
        },
        MQuery {
            start: Some(500_000),
            end: Some(5_500_000),
            exclude_tags: vec!["prod".into()],
            ..Default::default()
        },
        MQuery {
            start: Some(2_000_000),
            any_tags: vec!["prod".into(), "missing".into()],
            ..Default::default()
        },
        MQuery::default(),
    ];
    for q in &queries {
        // Totals and facets over many blocks: blocks wholly inside a window count whole, cut
        // blocks row by row, and the backfilled rows widen some blocks' bounds.
        let all = model.projects["p"].values();
        let want = q.tally(all);
        let mut params = q.params(5);
        params.push(("include".into(), "total,facets".into()));
        let page = store.query_params("p", params_ref(&params)).unwrap();
        assert_eq!(page.total, Some(want.total), "{q:?}");
        let f = page.facets.unwrap();
        assert_eq!(
            (f.status.ok, f.status.error),
            (want.ok, want.error),
            "{q:?}"
        );
        let names: Vec<(String, u64)> =
            f.names.iter().map(|x| (x.value.clone(), x.count)).collect();
        assert_eq!(names, want.names, "{q:?}");
        let tags: Vec<(String, u64)> = f.tags.iter().map(|x| (x.value.clone(), x.count)).collect();
        assert_eq!(tags, want.tags, "{q:?}");

        let want = model.answer("p", q);
        for limits in [&[1u32][..], &[7, 3], &[100]] {
            for plan in [tracestore::PlanKind::Scan, tracestore::PlanKind::Bitmap] {
                let got = walk_forced(&store, "p", q, limits, plan);
                assert_eq!(got, want, "{q:?} {limits:?} {plan:?}");
            }
            assert_eq!(walk(&store, "p", q, limits), want);
        }
    }
    assert_verified(&store);
}

pub fn walk_forced(
    store: &Store,
    project: &str,
    q: &MQuery,
    limits: &[u32],
    plan: tracestore::PlanKind,
) -> Vec<String> {
    let first = QueryRequest::from_params(params_ref(&q.params(limits[0]))).unwrap();
    let mut page = store.query_with_plan(project, &first, plan).unwrap();
    let mut out = Vec::new();
    let mut i = 1;
    loop {
        out.extend(page.traces.iter().map(|t| t.id.clone()));
        let Some(c) = page.next_cursor.clone() else {
            break;
        };
        let req = QueryRequest::builder()
            .cursor(&c)
            .limit(limits[i % limits.len()])
            .build()
            .unwrap();
        page = store.query_with_plan(project, &req, plan).unwrap();
        assert!(!page.traces.is_empty(), "nextCursor led to an empty page");
        i += 1;
    }
    out
}

/// More than two bitmap partitions (65 536 rows each), a tag that is absent from the middle
/// one, and late arrivals: the executor skips candidate-free partitions without losing rows,
/// and continuations keep the exact order.
#[test]
fn several_partitions_with_an_empty_one() {
    let store = Store::builder()
        .durability(tracestore::Durability::Deferred)
        .in_memory()
        .unwrap();
    let mut model = Model::default();
    let n: u64 = 150_000;
    let mut x: u64 = 987_654_321;
    let mut rnd = move |m: u64| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x % m
    };
    let mut batch = Vec::new();
    for i in 0..n {
        // Row numbers follow arrival; the middle partition (rows 65 536..131 071) never gets
        // the "edge" tag, and one of its arrivals in 50 is backfilled into the past. The
        // newest partition has only a few "edge" rows, so a first page crosses the empty one.
        let middle = (65_536..131_072).contains(&i);
        let start = if middle && rnd(50) == 0 {
            rnd(i) as i64 * 100
        } else {
            i as i64 * 100
        };
        let edge_odds = if i >= 131_072 { 5_000 } else { 40 };
        let mut tags = Vec::new();
        if !middle && rnd(edge_odds) == 0 {
            tags.push("edge".to_string());
        }
        if rnd(4) == 0 {
            tags.push("common".to_string());
        }
        let t = MTrace {
            id: format!("r{i:06}"),
            name: if rnd(3) == 0 {
                "alpha".into()
            } else {
                "beta".into()
            },
            status: if rnd(10) == 0 {
                Status::Error
            } else {
                Status::Ok
            },
            start_ms: BASE_MS + start,
            tags,
        };
        model.upsert("p", t.clone());
        batch.push(input(&t));
        if batch.len() == 1000 {
            store.ingest("p", std::mem::take(&mut batch)).unwrap();
        }
    }
    let queries = [
        MQuery {
            tags: vec!["edge".into()],
            ..Default::default()
        },
        MQuery {
            tags: vec!["edge".into()],
            status: Some(Status::Error),
            ..Default::default()
        },
        MQuery {
            tags: vec!["common".into()],
            name: Some("ALPHA".into()),
            ..Default::default()
        },
        MQuery {
            status: Some(Status::Error),
            start: Some(2_000_000),
            end: Some(9_000_000),
            ..Default::default()
        },
    ];
    for q in &queries {
        let want = model.answer("p", q);
        assert!(want.len() > 100, "{q:?} should match many rows");
        for limits in [&[100u32][..], &[37, 100]] {
            let got = walk_forced(&store, "p", q, limits, tracestore::PlanKind::Bitmap);
            assert_eq!(got.len(), want.len(), "{q:?} {limits:?}");
            assert_eq!(got, want, "{q:?} {limits:?}");
        }
    }
    // Between pages, a row of the partition that had no candidate (a late arrival, older than
    // the cursor) gains the tag: the continuation must still find it.
    let first = store
        .query_with_plan(
            "p",
            &QueryRequest::from_params([("tags", "edge"), ("limit", "20")]).unwrap(),
            tracestore::PlanKind::Bitmap,
        )
        .unwrap();
    let cursor_start = first.traces.last().unwrap().start_time.as_millis();
    let late = model.projects["p"]
        .values()
        .find(|t| {
            let row: u64 = t.id[1..].parse().unwrap();
            (65_536..131_072).contains(&row) && t.start_ms < cursor_start
        })
        .expect("a late arrival in the middle partition")
        .clone();
    let mut tagged = late.clone();
    tagged.tags.push("edge".into());
    store.ingest("p", vec![input(&tagged)]).unwrap();
    let mut rest = Vec::new();
    let mut cursor = first.next_cursor;
    while let Some(c) = cursor {
        let req = QueryRequest::builder()
            .cursor(&c)
            .limit(100)
            .build()
            .unwrap();
        let page = store
            .query_with_plan("p", &req, tracestore::PlanKind::Bitmap)
            .unwrap();
        rest.extend(page.traces.into_iter().map(|t| t.id));
        cursor = page.next_cursor;
    }
    assert!(
        rest.contains(&late.id),
        "a row that gained the tag mid-walk was skipped"
    );
    assert_verified(&store);
}

/// Traces in time order across many blocks, so that a window holds whole blocks (counted from
/// their bounds alone) and cuts one at each end (counted row by row): the total and the facets
/// equal the model's for windows on and off block edges, and with filters besides the window.
#[test]
fn totals_over_whole_and_cut_blocks() {
    let store = Store::builder()
        .durability(tracestore::Durability::Deferred)
        .in_memory()
        .unwrap();
    let mut model = Model::default();
    let n = 5000i64;
    let mut batch = Vec::new();
    for i in 0..n {
        let t = MTrace {
            id: format!("w{i:05}"),
            name: NAMES[(i % 5) as usize].into(),
            status: if i % 7 == 0 {
                Status::Error
            } else {
                Status::Ok
            },
            start_ms: BASE_MS + i * 1000,
            tags: if i % 3 == 0 {
                vec!["prod".into()]
            } else {
                vec![]
            },
        };
        model.upsert("p", t.clone());
        batch.push(input(&t));
        if batch.len() == 700 {
            store.ingest("p", std::mem::take(&mut batch)).unwrap();
        }
    }
    store.ingest("p", batch).unwrap();
    for (start, end) in [
        (0, 5000),
        (1024, 2048),
        (1000, 4100),
        (1023, 1025),
        (4999, 5000),
    ] {
        for q in [
            MQuery::default(),
            MQuery {
                status: Some(Status::Error),
                ..Default::default()
            },
            MQuery {
                exclude_tags: vec!["prod".into()],
                name: Some("sup".into()),
                ..Default::default()
            },
        ] {
            let q = MQuery {
                start: Some(start * 1000),
                end: Some(end * 1000),
                ..q
            };
            let want = q.tally(model.projects["p"].values());
            let mut params = q.params(3);
            params.push(("include".into(), "facets,total".into()));
            let page = store.query_params("p", params_ref(&params)).unwrap();
            assert_eq!(page.total, Some(want.total), "{q:?}");
            let f = page.facets.unwrap();
            assert_eq!(
                (f.status.ok, f.status.error),
                (want.ok, want.error),
                "{q:?}"
            );
            let names: Vec<(String, u64)> =
                f.names.iter().map(|x| (x.value.clone(), x.count)).collect();
            assert_eq!(names, want.names, "{q:?}");
        }
    }
}

/// A trace with the fields of the v2 filters: user, session and typed metadata.
#[derive(Clone, Debug)]
struct RichTrace {
    base: MTrace,
    user: Option<String>,
    session: Option<String>,
    /// The metadata object as sent, and its scalar pairs in canonical text.
    metadata: serde_json::Value,
    pairs: Vec<(String, String)>,
    /// End offset from the start (None: running), and one span's cost (thousandths) and tokens.
    end_after_ms: Option<u64>,
    cost_milli: u64,
    tokens: u64,
    /// The spans as sent, by id (`s` carries the cost and tokens), and, after the model's
    /// merge, every span the trace has (a re-sent span replaces the one with its id; the
    /// others stay).
    spans: std::collections::BTreeMap<String, SpanFacts>,
    span_list: Vec<SpanFacts>,
}

impl ModelTrace for RichTrace {
    fn id(&self) -> &str {
        &self.base.id
    }
    fn name(&self) -> &str {
        &self.base.name
    }
    fn status(&self) -> Status {
        self.base.status
    }
    fn start_ms(&self) -> i64 {
        self.base.start_ms
    }
    fn tags(&self) -> &[String] {
        &self.base.tags
    }
    fn user_id(&self) -> Option<&str> {
        self.user.as_deref()
    }
    fn session_id(&self) -> Option<&str> {
        self.session.as_deref()
    }
    fn metadata(&self) -> &[(String, String)] {
        &self.pairs
    }
    fn duration_ms(&self) -> Option<u64> {
        self.end_after_ms
    }
    fn cost_milli(&self) -> u64 {
        self.cost_milli
    }
    fn total_tokens(&self) -> u64 {
        self.tokens
    }
    fn span_facts(&self) -> &[SpanFacts] {
        &self.span_list
    }
}

const SPAN_NAMES: [&str; 5] = ["chat-0", "Chat-1", "search_orders", "Ägent", "retry"];
const MODELS: [&str; 3] = ["gpt-4o", "gpt-4o-mini", "claude-sonnet"];
const KINDS: [SpanKind; 4] = [
    SpanKind::Llm,
    SpanKind::Tool,
    SpanKind::Agent,
    SpanKind::Unknown,
];

/// One span's facts: a name (rarely none), a model (often none), a kind and a status.
fn arb_span_facts() -> impl Strategy<Value = SpanFacts> {
    (
        prop::option::weighted(0.9, 0..SPAN_NAMES.len()),
        prop::option::weighted(0.6, 0..MODELS.len()),
        0..KINDS.len(),
        prop::bool::weighted(0.3),
    )
        .prop_map(|(n, m, k, err)| SpanFacts {
            name: n.map(|i| SPAN_NAMES[i].to_string()),
            model: m.map(|i| MODELS[i].to_string()),
            kind: KINDS[k],
            status: if err { Status::Error } else { Status::Ok },
        })
}

/// The span `s` (always sent: it carries the cost and tokens) and up to three of `x0`..`x3`.
fn arb_spans() -> impl Strategy<Value = std::collections::BTreeMap<String, SpanFacts>> {
    (
        arb_span_facts(),
        prop::collection::vec((0..4u8, arb_span_facts()), 0..4),
    )
        .prop_map(|(s, extra)| {
            let mut m = std::collections::BTreeMap::new();
            m.insert("s".to_string(), s);
            for (i, f) in extra {
                m.insert(format!("x{i}"), f);
            }
            m
        })
}

/// The ingest body item of a rich trace.
fn rich_json(t: &RichTrace) -> serde_json::Value {
    let b = &t.base;
    let spans: Vec<serde_json::Value> = t
        .spans
        .iter()
        .map(|(id, f)| {
            let mut s =
                serde_json::json!({"id": id, "kind": f.kind.as_str(), "status": f.status.as_str()});
            if let Some(n) = &f.name {
                s["name"] = serde_json::json!(n);
            }
            if let Some(m) = &f.model {
                s["model"] = serde_json::json!(m);
            }
            if id == "s" {
                s["cost"] = serde_json::json!(format!("0.{:03}", t.cost_milli));
                s["inputTokens"] = serde_json::json!(t.tokens);
                s["outputTokens"] = serde_json::json!(0);
            }
            s
        })
        .collect();
    let mut v = serde_json::json!({
        "id": b.id, "name": b.name, "status": b.status.as_str(),
        "startTime": tracestore::Timestamp::from_millis(b.start_ms).unwrap().to_string(),
        "tags": b.tags,
        "spans": spans,
    });
    if let Some(e) = t.end_after_ms {
        v["endTime"] = serde_json::json!(tracestore::Timestamp::from_millis(b.start_ms + e as i64)
            .unwrap()
            .to_string());
    }
    if let Some(u) = &t.user {
        v["userId"] = serde_json::json!(u);
    }
    if let Some(s) = &t.session {
        v["sessionId"] = serde_json::json!(s);
    }
    v["metadata"] = t.metadata.clone();
    v
}

type RichModel = std::collections::BTreeMap<(usize, String), RichTrace>;

/// Ingests `data` in chunks of `batch` (one request per project and chunk: small ones are
/// buffered as pending traces, larger ones fold them), keeping the model in step.
fn load_rich(data: &[(usize, RichTrace)], batch: usize) -> (Store, RichModel) {
    let store = Store::in_memory().unwrap();
    let mut model = RichModel::new();
    for chunk in data.chunks(batch) {
        for (p, project) in PROJECTS.iter().enumerate() {
            let items: Vec<serde_json::Value> = chunk
                .iter()
                .filter(|(q, _)| *q == p)
                .map(|(_, t)| rich_json(t))
                .collect();
            if !items.is_empty() {
                let body = serde_json::json!({"traces": items}).to_string();
                store.ingest_json(project, body.as_bytes()).unwrap();
            }
        }
        for (p, t) in chunk {
            // Re-sending a trace replaces the fields it carries; an id it leaves out stays, and
            // so does a span it does not re-send.
            let mut t = t.clone();
            if let Some(old) = model.get(&(*p, t.base.id.clone())) {
                t.user = t.user.or(old.user.clone());
                t.session = t.session.or(old.session.clone());
                let mut spans = old.spans.clone();
                spans.extend(t.spans.clone());
                t.spans = spans;
            }
            t.span_list = t.spans.values().cloned().collect();
            model.insert((*p, t.base.id.clone()), t);
        }
    }
    (store, model)
}

const USERS: [&str; 3] = ["u1", "u2", "u3"];
/// Metadata values of several JSON types, with the canonical text a filter compares.
fn meta_value(i: usize) -> (serde_json::Value, Option<&'static str>) {
    match i {
        0 => (serde_json::json!("prod"), Some("prod")),
        1 => (serde_json::json!("staging"), Some("staging")),
        2 => (serde_json::json!(2.50), Some("2.5")),
        3 => (serde_json::json!(true), Some("true")),
        4 => (serde_json::json!(null), Some("null")),
        _ => (serde_json::json!({"nested": 1}), None),
    }
}

fn arb_rich() -> impl Strategy<Value = (usize, RichTrace)> {
    (
        arb_trace(),
        prop::option::of(0..USERS.len()),
        prop::option::of(0..2usize),
        prop::option::of(0..6usize),
        prop::option::of(0..3usize),
        // Always finished: a re-sent trace keeps a stored endTime it does not carry, which a
        // moved startTime could put before it; running traces are tested in validation.rs.
        ((0..5u64).prop_map(Some), 0..4u64, 0..4u64),
        arb_spans(),
    )
        .prop_map(|((p, base), u, s, env, tier, (end, cost, tokens), spans)| {
            let mut obj = serde_json::Map::new();
            let mut pairs = Vec::new();
            if let Some(e) = env {
                let (v, text) = meta_value(e);
                obj.insert("env".into(), v);
                pairs.extend(text.map(|t| ("env".to_string(), t.to_string())));
            }
            if let Some(t) = tier {
                obj.insert("tier".into(), serde_json::json!(t));
                pairs.push(("tier".into(), t.to_string()));
            }
            (
                p,
                RichTrace {
                    base,
                    user: u.map(|i| USERS[i].to_string()),
                    session: s.map(|i| format!("s{i}")),
                    metadata: serde_json::Value::Object(obj),
                    pairs,
                    end_after_ms: end.map(|e| e * 1000),
                    cost_milli: cost * 5,
                    tokens: tokens * 100,
                    span_list: spans.values().cloned().collect(),
                    spans,
                },
            )
        })
}

fn arb_rich_query() -> impl Strategy<Value = MQuery> {
    (
        arb_query(),
        prop::option::of(0..USERS.len() + 1),
        prop::option::of(0..3usize),
        prop::option::of(prop::sample::select(vec![
            "prod", "staging", "2.5", "2.50", "true", "null", "x",
        ])),
        prop::option::of(0..4usize),
        (
            prop::option::of(0..6u64),
            prop::option::of(0..6u64),
            prop::option::of(0..20u64),
            prop::option::of(0..400u64),
        ),
    )
        .prop_map(|(mut q, u, s, env, tier, (dlo, dhi, clo, thi))| {
            // Bounds in order; an empty range is the parser's business (tested elsewhere).
            q.duration = match (dlo, dhi) {
                (Some(a), Some(b)) => (Some(a.min(b) * 1000), Some(a.max(b) * 1000)),
                (a, b) => (a.map(|x| x * 1000), b.map(|x| x * 1000)),
            };
            q.cost_milli = (clo, None);
            q.tokens = (None, thi);
            q.user_id = u.map(|i| USERS.get(i).copied().unwrap_or("nobody").to_string());
            q.session_id = s.map(|i| format!("s{i}"));
            q.metadata = env
                .map(|e| ("env".to_string(), e.to_string()))
                .into_iter()
                .chain(tier.map(|t| ("tier".to_string(), t.to_string())))
                .collect();
            q
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// userId, sessionId and metadata.KEY with every other filter: pages, totals and facets
    /// equal the model, over indexed and pending traces, with updates that change the fields.
    #[test]
    fn user_session_and_metadata_filters_equal_the_model(
        data in prop::collection::vec(arb_rich(), 0..120),
        batch in 1..40usize,
        queries in prop::collection::vec((arb_rich_query(), arb_limits(), 0..PROJECTS.len()), 1..5),
    ) {
        let (store, model) = load_rich(&data, batch);
        for (q, limits, p) in &queries {
            let all: Vec<&RichTrace> = model.iter().filter(|((mp, _), _)| mp == p).map(|(_, t)| t).collect();
            let want: Vec<String> = q.answer(all.iter().copied()).into_iter().map(|t| t.base.id.clone()).collect();
            let tally = q.tally(all.iter().copied());
            let mut params = q.params(limits[0]);
            params.push(("include".into(), "total,facets".into()));
            let mut page = store.query_params(PROJECTS[*p], params_ref(&params)).unwrap();
            let mut got = Vec::new();
            let mut i = 1;
            loop {
                prop_assert_eq!(page.total, (i == 1).then_some(tally.total), "{:?}", q);
                let f = page.facets.clone().unwrap();
                prop_assert_eq!((f.status.ok, f.status.error), (tally.ok, tally.error));
                let names: Vec<(String, u64)> = f.names.iter().map(|x| (x.value.clone(), x.count)).collect();
                prop_assert_eq!(names, tally.names.clone());
                let models: Vec<(String, u64)> = f.models.iter().map(|x| (x.value.clone(), x.count)).collect();
                prop_assert_eq!(models, tally.models.clone(), "{:?}", q);
                got.extend(page.traces.iter().map(|t| t.id.clone()));
                let Some(c) = page.next_cursor.clone() else { break };
                let limit = limits[i % limits.len()].to_string();
                page = store.query_params(PROJECTS[*p], [("cursor", c.as_str()), ("limit", limit.as_str()), ("include", "facets")]).unwrap();
                i += 1;
            }
            prop_assert_eq!(&got, &want, "{:?}", q);
            // Both executors, forced, test the record-only filters (ranges) the same way.
            for plan in [tracestore::PlanKind::Scan, tracestore::PlanKind::Bitmap] {
                let forced = walk_forced(&store, PROJECTS[*p], q, limits, plan);
                prop_assert_eq!(&forced, &want, "{:?} {:?}", q, plan);
            }
        }
        assert_verified(&store);
    }
}

const SPAN_NEEDLES: [&str; 7] = ["chat", "CHAT-1", "orders", "ägent", "zzz", "", "r"];
const MODEL_VALUES: [&str; 5] = ["gpt-4o", "gpt-4o-mini", "claude-sonnet", "GPT-4o", "nope"];
const KIND_VALUES: [&str; 5] = ["llm", "Tool", "AGENT", "unknown", "CHAIN"];

/// A query with 1 to 4 span conditions, and sometimes the other filters too.
fn arb_span_query() -> impl Strategy<Value = MQuery> {
    (
        prop_oneof![3 => Just(MQuery::default()), 1 => arb_query(), 1 => arb_rich_query()],
        prop::sample::subsequence(vec![0, 1, 2, 3], 1..=4),
        (
            0..SPAN_NEEDLES.len(),
            0..MODEL_VALUES.len(),
            0..KIND_VALUES.len(),
            prop::bool::ANY,
        ),
    )
        .prop_map(|(mut q, which, (n, m, k, err))| {
            for c in which {
                match c {
                    0 => q.span_name = Some(SPAN_NEEDLES[n].to_string()),
                    1 => q.span_model = Some(MODEL_VALUES[m].to_string()),
                    2 => q.span_kind = Some(KIND_VALUES[k].to_string()),
                    _ => q.span_status = Some(if err { Status::Error } else { Status::Ok }),
                }
            }
            q
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Span conditions (1 to 4 at once, with or without other filters) hold on one span of the
    /// trace: pages (chosen plan, forced scan, forced bitmap), totals and every facet, `models`
    /// included, equal the model, over indexed and pending traces, with re-sent spans that
    /// change their name, model, kind and status and moved start times.
    #[test]
    fn span_conditions_equal_the_model(
        data in prop::collection::vec(arb_rich(), 0..120),
        batch in 1..40usize,
        queries in prop::collection::vec((arb_span_query(), arb_limits(), 0..PROJECTS.len()), 1..5),
    ) {
        let (store, model) = load_rich(&data, batch);
        for (q, limits, p) in &queries {
            let all: Vec<&RichTrace> = model.iter().filter(|((mp, _), _)| mp == p).map(|(_, t)| t).collect();
            let want: Vec<String> = q.answer(all.iter().copied()).into_iter().map(|t| t.base.id.clone()).collect();
            let tally = q.tally(all.iter().copied());
            let mut params = q.params(limits[0]);
            params.push(("include".into(), "total,facets".into()));
            let mut page = store.query_params(PROJECTS[*p], params_ref(&params)).unwrap();
            let mut got = Vec::new();
            let mut i = 1;
            loop {
                prop_assert_eq!(page.total, (i == 1).then_some(tally.total), "{:?}", q);
                let f = page.facets.clone().unwrap();
                prop_assert_eq!((f.status.ok, f.status.error), (tally.ok, tally.error), "{:?}", q);
                let pairs = |v: &[tracestore::FacetValue]| -> Vec<(String, u64)> {
                    v.iter().map(|x| (x.value.clone(), x.count)).collect()
                };
                prop_assert_eq!(pairs(&f.names), tally.names.clone(), "{:?}", q);
                prop_assert_eq!(pairs(&f.tags), tally.tags.clone(), "{:?}", q);
                prop_assert_eq!(pairs(&f.models), tally.models.clone(), "{:?}", q);
                got.extend(page.traces.iter().map(|t| t.id.clone()));
                let Some(c) = page.next_cursor.clone() else { break };
                let limit = limits[i % limits.len()].to_string();
                page = store.query_params(PROJECTS[*p], [("cursor", c.as_str()), ("limit", limit.as_str()), ("include", "facets")]).unwrap();
                i += 1;
            }
            prop_assert_eq!(&got, &want, "{:?}", q);
            for plan in [tracestore::PlanKind::Scan, tracestore::PlanKind::Bitmap] {
                let forced = walk_forced(&store, PROJECTS[*p], q, limits, plan);
                prop_assert_eq!(&forced, &want, "{:?} {:?}", q, plan);
            }
        }
        assert_verified(&store);
    }
}
