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

/// A trace of the span dataset: the simple fields and its spans' facts.
#[derive(Clone, Debug)]
struct SpanTrace {
    base: MTrace,
    spans: Vec<support::query::SpanFacts>,
}

impl ModelTrace for SpanTrace {
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
    fn span_facts(&self) -> &[support::query::SpanFacts] {
        &self.spans
    }
}

/// `n` traces with 1 to 4 spans each: common and rare span names, models, kinds and statuses.
fn span_dataset(n: usize, seed: u64) -> (Store, Vec<SpanTrace>) {
    use tracestore::SpanKind;
    let store = Store::builder()
        .durability(tracestore::Durability::Deferred)
        .in_memory()
        .unwrap();
    let mut x = seed | 1;
    let mut rnd = move |m: u64| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x % m
    };
    let mut all = Vec::new();
    let mut batch = Vec::new();
    for i in 0..n {
        let base = MTrace {
            id: format!("{:x}", rnd(1 << 40)),
            name: ["support-agent", "research-agent"][rnd(2) as usize].into(),
            status: if rnd(10) == 0 {
                Status::Error
            } else {
                Status::Ok
            },
            start_ms: BASE_MS + (i as i64) * 1000 + rnd(5000) as i64,
            tags: if rnd(4) == 0 {
                vec!["production".into()]
            } else {
                vec![]
            },
        };
        let spans: Vec<support::query::SpanFacts> = (0..1 + rnd(4))
            .map(|_| {
                let r = rnd(100);
                support::query::SpanFacts {
                    name: Some(
                        ["chat", "search_web", "Chat-summary", "rerank-docs"][(r % 4) as usize]
                            .into(),
                    ),
                    model: match rnd(100) {
                        0 => Some("o1-rare".into()),
                        1..=50 => Some("gpt-4o".into()),
                        51..=70 => Some("claude-sonnet".into()),
                        _ => None,
                    },
                    kind: match rnd(100) {
                        0..=1 => SpanKind::Reranker,
                        2..=60 => SpanKind::Llm,
                        _ => SpanKind::Tool,
                    },
                    status: if rnd(20) == 0 {
                        Status::Error
                    } else {
                        Status::Ok
                    },
                }
            })
            .collect();
        let t = SpanTrace { base, spans };
        let spans_json: Vec<serde_json::Value> = t
            .spans
            .iter()
            .enumerate()
            .map(|(j, s)| {
                serde_json::json!({"id": format!("s{j}"), "name": s.name, "model": s.model,
                    "kind": s.kind.as_str(), "status": s.status.as_str()})
            })
            .collect();
        batch.push(serde_json::json!({
            "id": t.base.id, "name": t.base.name, "status": t.base.status.as_str(),
            "startTime": tracestore::Timestamp::from_millis(t.base.start_ms).unwrap().to_string(),
            "tags": t.base.tags, "spans": spans_json,
        }));
        all.push(t);
        if batch.len() == 500 {
            let body = serde_json::json!({ "traces": std::mem::take(&mut batch) }).to_string();
            store.ingest_json("p", body.as_bytes()).unwrap();
        }
    }
    if !batch.is_empty() {
        let body = serde_json::json!({ "traces": batch }).to_string();
        store.ingest_json("p", body.as_bytes()).unwrap();
    }
    (store, all)
}

fn arb_span_query() -> impl Strategy<Value = MQuery> {
    (
        prop::sample::subsequence(vec![0, 1, 2, 3], 1..=4),
        prop::sample::select(vec!["chat", "SEARCH", "summary", "docs", "zzz"]),
        prop::sample::select(vec!["gpt-4o", "claude-sonnet", "o1-rare", "none"]),
        prop::sample::select(vec!["llm", "TOOL", "reranker", "AGENT"]),
        any::<bool>(),
        prop::option::of(any::<bool>()),
        any::<bool>(),
    )
        .prop_map(|(which, name, model, kind, err, status, prod)| {
            let mut q = MQuery {
                status: status.map(|e| if e { Status::Error } else { Status::Ok }),
                tags: if prod {
                    vec!["production".into()]
                } else {
                    vec![]
                },
                ..Default::default()
            };
            for c in which {
                match c {
                    0 => q.span_name = Some(name.to_string()),
                    1 => q.span_model = Some(model.to_string()),
                    2 => q.span_kind = Some(kind.to_string()),
                    _ => q.span_status = Some(if err { Status::Error } else { Status::Ok }),
                }
            }
            q
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Span conditions (1 to 4, with or without trace filters): the forced scan and the
    /// forced bitmap plan give the same pages, and their concatenation is the model's answer.
    #[test]
    fn forced_plans_agree_on_span_conditions(q in arb_span_query(), limit in 5..40u32) {
        static DATA: std::sync::OnceLock<(Store, Vec<SpanTrace>)> = std::sync::OnceLock::new();
        let (store, all) = DATA.get_or_init(|| span_dataset(2000, 5));
        let scan = pages(store, &q, limit, PlanKind::Scan);
        let bitmap = pages(store, &q, limit, PlanKind::Bitmap);
        prop_assert_eq!(&scan, &bitmap);
        let flat: Vec<String> = scan.into_iter().flatten().collect();
        let want: Vec<String> = q.answer(all.iter()).into_iter().map(|t| t.base.id.clone()).collect();
        prop_assert_eq!(flat, want);
    }
}

#[test]
fn explain_shows_span_inputs_and_picks_the_bitmap_plan_for_rare_ones() {
    let (store, all) = span_dataset(3000, 13);
    assert_eq!(store.verify().unwrap(), vec![]);
    let plan = |params: &[(&str, &str)]| {
        store
            .explain(
                "p",
                &QueryRequest::from_params(params.iter().copied()).unwrap(),
            )
            .unwrap()
    };
    let with = |keep: &dyn Fn(&support::query::SpanFacts) -> bool| {
        all.iter().filter(|t| t.spans.iter().any(keep)).count() as u64
    };
    let e = plan(&[("spanModel", "o1-rare")]);
    assert_eq!(e.plan, PlanKind::Bitmap, "{e}");
    let rare = with(&|s| s.model.as_deref() == Some("o1-rare"));
    assert!(rare > 0 && rare < 100, "{rare}");
    assert_eq!(e.inputs.len(), 1);
    assert_eq!(
        (e.inputs[0].term.as_str(), e.inputs[0].rows),
        ("spanModel=o1-rare", rare)
    );
    assert_eq!(e.estimated_matches, rare, "{e}");
    let e = plan(&[("spanKind", "reranker"), ("spanStatus", "error")]);
    assert_eq!(e.plan, PlanKind::Bitmap, "{e}");
    // With spanStatus=ERROR the kind reads its pair bitmap (RERANKER on an ERROR span), one
    // exact input.
    let failed_rerankers = with(&|s| {
        s.kind == tracestore::SpanKind::Reranker && s.status == tracestore::Status::Error
    });
    assert_eq!(e.inputs.len(), 1, "{e}");
    assert_eq!(
        (e.inputs[0].term.as_str(), e.inputs[0].rows),
        ("spanKind=RERANKER on an ERROR span", failed_rerankers),
        "{e}"
    );
    assert_eq!(e.estimated_matches, failed_rerankers, "{e}");
    // A condition nearly every trace meets is cheaper to scan.
    assert_eq!(plan(&[("spanName", "c")]).plan, PlanKind::Scan);
    let e = plan(&[("spanName", "CHAT")]);
    assert!(
        e.inputs.iter().any(|i| i.term == "spanName~chat (2 names)"),
        "{e}"
    );
    // Unknown terms match nothing.
    assert_eq!(plan(&[("spanModel", "nope")]).plan, PlanKind::Empty);
    assert_eq!(plan(&[("spanName", "zzz")]).plan, PlanKind::Empty);
    assert_eq!(plan(&[("spanKind", "AGENT")]).plan, PlanKind::Empty);
    assert!(plan(&[("spanKind", "LLM")])
        .to_string()
        .contains("spanKind=LLM"));
}
