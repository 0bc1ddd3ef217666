//! Planner equivalence: forcing the scan plan and the bitmap plan gives identical pages, and
//! `explain()` shows the plan the data calls for.

mod support;

use proptest::prelude::*;
use support::simple::*;
use tracestore::{PlanKind, QueryRequest, Status, Store};

fn dataset(n: usize, seed: u64) -> (Store, Model) {
    let store = Store::builder()
        .durability(tracestore::Durability::Deferred)
        .in_memory()
        .unwrap();
    let mut model = Model::default();
    let mut x = seed | 1;
    let mut rnd = move |m: u64| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x % m
    };
    let names = [
        "support-agent",
        "research-agent",
        "tool-pdf-ocr",
        "tool-web",
    ];
    let tags = ["production", "v2", "eu", "rare"];
    let mut batch = Vec::new();
    for i in 0..n {
        let mut tv: Vec<String> = (0..rnd(3))
            .map(|_| tags[rnd(4) as usize].to_string())
            .collect();
        tv.sort();
        tv.dedup();
        let t = MTrace {
            id: format!("{:x}", rnd(1 << 40)),
            name: names[(rnd(100) as usize * rnd(100) as usize / 2500).min(3)].into(),
            status: if rnd(30) == 0 {
                Status::Error
            } else {
                Status::Ok
            },
            start_ms: BASE_MS + (i as i64) * 1000 + rnd(5000) as i64,
            tags: tv,
        };
        model.upsert("p", t.clone());
        batch.push(input(&t));
        if batch.len() == 1000 {
            store.ingest("p", std::mem::take(&mut batch)).unwrap();
        }
    }
    if !batch.is_empty() {
        store.ingest("p", batch).unwrap();
    }
    (store, model)
}

fn pages(store: &Store, q: &MQuery, limit: u32, plan: PlanKind) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let mut page = store
        .query_with_plan(
            "p",
            &QueryRequest::from_params(params_ref(&q.params(limit))).unwrap(),
            plan,
        )
        .unwrap();
    loop {
        out.push(page.traces.iter().map(|t| t.id.clone()).collect());
        let Some(c) = page.next_cursor else { break };
        page = store
            .query_with_plan(
                "p",
                &QueryRequest::builder()
                    .cursor(&c)
                    .limit(limit)
                    .build()
                    .unwrap(),
                plan,
            )
            .unwrap();
    }
    out
}

fn arb_query() -> impl Strategy<Value = MQuery> {
    (
        prop::option::of(prop::sample::select(vec![
            "support", "AGENT", "pdf", "tool", "nothing",
        ])),
        prop::option::of(any::<bool>()),
        prop::sample::subsequence(vec!["production", "v2", "eu", "rare", "absent"], 0..3),
        prop::option::of((0..3000i64, 1..3000i64)),
        prop::sample::subsequence(vec!["production", "v2", "eu", "rare", "absent"], 0..3),
        prop::sample::subsequence(vec!["production", "eu", "rare", "absent"], 0..2),
    )
        .prop_map(|(n, s, tags, w, any, exclude)| MQuery {
            name: n.map(str::to_string),
            status: s.map(|e| if e { Status::Error } else { Status::Ok }),
            tags: tags.into_iter().map(str::to_string).collect(),
            start: w.map(|(a, _)| a * 1000),
            end: w.map(|(a, b)| (a + b) * 1000),
            any_tags: any.into_iter().map(str::to_string).collect(),
            exclude_tags: exclude.into_iter().map(str::to_string).collect(),
            ..Default::default()
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn forced_plans_give_identical_pages(q in arb_query(), limit in 1..40u32) {
        static DATA: std::sync::OnceLock<(Store, Model)> = std::sync::OnceLock::new();
        let (store, model) = DATA.get_or_init(|| dataset(3000, 7));
        let scan = pages(store, &q, limit, PlanKind::Scan);
        let bitmap = pages(store, &q, limit, PlanKind::Bitmap);
        prop_assert_eq!(&scan, &bitmap);
        let flat: Vec<String> = scan.into_iter().flatten().collect();
        prop_assert_eq!(flat, model.answer("p", &q));
    }
}

#[test]
fn explain_picks_scan_for_broad_filters_and_bitmap_for_selective_ones() {
    let (store, _) = dataset(5000, 11);
    let plan = |params: &[(&str, &str)]| {
        store
            .explain(
                "p",
                &QueryRequest::from_params(params.iter().copied()).unwrap(),
            )
            .unwrap()
    };
    assert_eq!(plan(&[]).plan, PlanKind::Scan);
    assert_eq!(plan(&[("status", "OK")]).plan, PlanKind::Scan);
    let e = plan(&[("status", "ERROR"), ("tags", "rare,eu"), ("name", "pdf")]);
    assert_eq!(e.plan, PlanKind::Bitmap, "{e}");
    // Inputs are intersected cheapest first.
    assert!(e.inputs.windows(2).all(|w| w[0].rows <= w[1].rows), "{e}");
    assert_eq!(plan(&[("tags", "absent")]).plan, PlanKind::Empty);
    assert_eq!(plan(&[("anyTags", "absent,never")]).plan, PlanKind::Empty);
    // An excluded tag no trace carries excludes nothing; one that every trace might carry is
    // no index input (a scan tests it per row, the bitmap plan subtracts it).
    assert_eq!(plan(&[("excludeTags", "absent")]).plan, PlanKind::Scan);
    let any = plan(&[("anyTags", "rare,eu"), ("status", "ERROR")]);
    assert!(
        any.inputs.iter().any(|i| i.term == "anyTags=eu|rare"),
        "{any}"
    );
    assert_eq!(plan(&[("name", "no-such-name")]).plan, PlanKind::Empty);
    let shown = e.to_string();
    assert!(
        shown.contains("Bitmap") && shown.contains("status=ERROR"),
        "{shown}"
    );
}
