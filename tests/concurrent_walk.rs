//! The pagination guarantee under change: with inserts, updates and deletes between pages, a
//! walk never repeats a trace, its order is strict, and every trace that exists when the walk
//! starts and is untouched until its page is read appears exactly once.

mod support;

use proptest::prelude::*;
use std::collections::{HashMap, HashSet};
use support::simple::*;
use tracestore::{PlanKind, QueryRequest, Status, Store};

#[derive(Clone, Debug)]
enum Op {
    Insert(u32, i64, bool, bool),
    Update(u32, i64, bool, bool),
    Delete(u32),
}

fn arb_op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0..200u32, 0..60i64, any::<bool>(), any::<bool>())
            .prop_map(|(i, t, e, g)| Op::Insert(i, t, e, g)),
        (0..200u32, 0..60i64, any::<bool>(), any::<bool>())
            .prop_map(|(i, t, e, g)| Op::Update(i, t, e, g)),
        (0..200u32).prop_map(Op::Delete),
    ]
}

fn trace(id: u32, t: i64, err: bool, tagged: bool) -> MTrace {
    MTrace {
        id: format!("c{id:03}"),
        name: if id.is_multiple_of(3) {
            "support-agent".into()
        } else {
            "tool".into()
        },
        status: if err { Status::Error } else { Status::Ok },
        start_ms: BASE_MS + t * 1000,
        tags: if tagged { vec!["prod".into()] } else { vec![] },
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn walk_under_concurrent_change(
        initial in prop::collection::vec((0..200u32, 0..60i64, any::<bool>(), any::<bool>()), 0..120),
        ops in prop::collection::vec(prop::collection::vec(arb_op(), 0..6), 0..40),
        q_kind in 0..4usize,
        limit in 1..6u32,
        plan in prop_oneof![Just(None), Just(Some(PlanKind::Scan)), Just(Some(PlanKind::Bitmap))],
    ) {
        let store = Store::in_memory().unwrap();
        let mut model = Model::default();
        for (i, t, e, g) in &initial {
            let tr = trace(*i, *t, *e, *g);
            model.upsert("p", tr.clone());
            store.ingest("p", vec![input(&tr)]).unwrap();
        }
        let q = match q_kind {
            0 => MQuery::default(),
            1 => MQuery { status: Some(Status::Error), ..Default::default() },
            2 => MQuery { tags: vec!["prod".into()], name: Some("SUPPORT".into()), ..Default::default() },
            _ => MQuery { start: Some(10_000), end: Some(50_000), ..Default::default() },
        };
        let at_start: HashSet<String> = model.answer("p", &q).into_iter().collect();
        let mut touched: HashSet<String> = HashSet::new();
        let run = |req: &QueryRequest| match plan {
            Some(p) => store.query_with_plan("p", req, p).unwrap(),
            None => store.query("p", req).unwrap(),
        };
        let mut page = run(&QueryRequest::from_params(params_ref(&q.params(limit))).unwrap());
        let mut seen: Vec<(i64, String)> = Vec::new();
        let mut seen_untouched: HashSet<String> = HashSet::new();
        let mut step = 0;
        loop {
            for t in &page.traces {
                // Each returned trace matches the query as of its page.
                let mt = MTrace { id: t.id.clone(), name: t.name.clone(), status: t.status, start_ms: t.start_time.as_millis(), tags: t.tags.clone() };
                prop_assert!(q.matches(&mt), "returned a non-matching trace {:?}", mt);
                seen.push((t.start_time.as_millis(), t.id.clone()));
                if !touched.contains(&t.id) {
                    seen_untouched.insert(t.id.clone());
                }
            }
            let Some(c) = page.next_cursor.clone() else { break };
            // Change the store between pages.
            if let Some(batch) = ops.get(step) {
                for op in batch {
                    match op {
                        Op::Insert(i, t, e, g) | Op::Update(i, t, e, g) => {
                            let tr = trace(*i, *t, *e, *g);
                            touched.insert(tr.id.clone());
                            model.upsert("p", tr.clone());
                            store.ingest("p", vec![input(&tr)]).unwrap();
                        }
                        Op::Delete(i) => {
                            let id = format!("c{i:03}");
                            touched.insert(id.clone());
                            let existed = model.delete("p", &id);
                            let r = store.delete_trace("p", &id);
                            prop_assert_eq!(existed, r.is_ok());
                        }
                    }
                }
            }
            step += 1;
            page = run(&QueryRequest::builder().cursor(&c).limit(limit).build().unwrap());
        }
        // Strict order, hence no duplicates.
        for w in seen.windows(2) {
            prop_assert!((w[0].0, w[0].1.as_bytes()) > (w[1].0, w[1].1.as_bytes()), "order broken: {:?}", w);
        }
        let counts: HashMap<&String, usize> = seen.iter().fold(HashMap::new(), |mut m, (_, id)| { *m.entry(id).or_default() += 1; m });
        prop_assert!(counts.values().all(|c| *c == 1));
        // Every trace that matched at the start and was never touched appears exactly once.
        for id in at_start.difference(&touched) {
            prop_assert!(seen_untouched.contains(id), "missed untouched trace {}", id);
        }
        assert_verified(&store);
    }
}
