//! Retries never double-count: an item sent without an id gets one derived from its content, so
//! a batch delivered twice leaves the store exactly as one delivery did (issue: "retries that
//! double-count").

mod support;

use proptest::prelude::*;
use rust_decimal::Decimal;
use tracestore::{
    ScoreInput, ScoreValue, SpanInput, Status, Store, Timestamp, TraceDetail, TraceInput,
};

const BASE_MS: i64 = 1_772_000_000_000;

fn ts(offset_ms: i64) -> Timestamp {
    Timestamp::from_millis(BASE_MS + offset_ms).unwrap()
}

/// Everything a reader can see of a project: the walk and every trace's detail.
fn snapshot(store: &Store) -> (Vec<tracestore::Trace>, Vec<TraceDetail>) {
    let walk = support::all_traces(store, "p").unwrap();
    let details = walk
        .iter()
        .map(|t| store.get_trace("p", &t.id).unwrap())
        .collect();
    assert!(store.verify().unwrap().is_empty());
    (walk, details)
}

fn id_less_batch() -> Vec<TraceInput> {
    vec![TraceInput {
        id: None,
        name: Some("support-agent".into()),
        start_time: Some(ts(0)),
        end_time: Some(ts(2500)),
        spans: vec![
            SpanInput {
                name: Some("llm".into()),
                cost: Some(Decimal::new(34, 4)),
                input_tokens: Some(100),
                ..Default::default()
            },
            SpanInput {
                name: Some("tool".into()),
                cost: Some(Decimal::new(1, 1)),
                ..Default::default()
            },
            SpanInput {
                name: Some("llm".into()),
                cost: Some(Decimal::new(1, 4)),
                ..Default::default()
            },
        ],
        scores: vec![
            ScoreInput {
                id: None,
                name: "quality".into(),
                value: ScoreValue::Number(0.9),
                comment: None,
            },
            ScoreInput {
                id: None,
                name: "label".into(),
                value: ScoreValue::Text("good".into()),
                comment: Some("ok".into()),
            },
        ],
        ..Default::default()
    }]
}

#[test]
fn a_resent_batch_without_ids_changes_nothing() {
    let store = Store::in_memory().unwrap();
    let first = store.ingest("p", id_less_batch()).unwrap();
    assert_eq!(first.ids.len(), 1);
    let once = snapshot(&store);
    assert_eq!(once.0.len(), 1);
    assert_eq!(once.0[0].span_count, 3);
    assert_eq!(once.0[0].score_count, 2);
    assert_eq!(once.0[0].total_cost.to_string(), "0.1035");
    let second = store.ingest("p", id_less_batch()).unwrap();
    assert_eq!(second.ids, first.ids, "the same content gets the same id");
    assert_eq!(snapshot(&store), once);
    // Over the JSON body too, and the derived id is the same as through the typed API.
    let body = br#"{"traces":[{"name":"support-agent","startTime":"2026-02-25T06:13:20.000Z",
        "spans":[{"name":"a","cost":"0.5"},{"name":"a","cost":"0.5"}]}]}"#;
    let a = store.ingest_json("p", body).unwrap();
    let after_json = snapshot(&store);
    let b = store.ingest_json("p", body).unwrap();
    assert_eq!(a.ids, b.ids);
    assert_eq!(snapshot(&store), after_json);
    let t = store.get_trace("p", &a.ids[0]).unwrap();
    assert_eq!(
        t.spans.len(),
        1,
        "two id-less spans with equal content are one span"
    );
    assert_eq!(t.trace.total_cost.to_string(), "0.5");
}

fn span() -> impl Strategy<Value = SpanInput> {
    (
        prop::option::of(0u8..3),
        prop::option::of(0u8..3),
        0u64..500,
        0i64..1000,
        prop::option::of(prop::sample::select(vec!["m1", "m2"])),
    )
        .prop_map(|(id, name, tokens, cost, model)| SpanInput {
            id: id.map(|i| format!("s{i}")),
            name: name.map(|n| format!("step-{n}")),
            input_tokens: Some(tokens),
            cost: Some(Decimal::new(cost, 4)),
            model: model.map(str::to_string),
            ..Default::default()
        })
}

fn trace() -> impl Strategy<Value = TraceInput> {
    (
        prop::option::of(0u8..6),
        0u8..3,
        any::<bool>(),
        0i64..50_000,
        0i64..5_000,
        prop::collection::vec(prop::sample::select(vec!["a", "b", "c"]), 0..3),
        prop::collection::vec(span(), 0..4),
        prop::collection::vec((0u8..3, prop::option::of(0u8..2)), 0..3),
    )
        .prop_map(
            |(id, name, err, start, dur, tags, spans, scores)| TraceInput {
                id: id.map(|i| format!("t{i}")),
                name: Some(format!("agent-{name}")),
                status: Some(if err { Status::Error } else { Status::Ok }),
                start_time: Some(ts(start)),
                // Always ended: a re-sent id with a later start and no end would keep an earlier
                // stored end, which is a (correctly) rejected batch, not a retry.
                end_time: Some(ts(start + dur)),
                tags: Some(tags.into_iter().map(str::to_string).collect()),
                spans,
                scores: scores
                    .into_iter()
                    .map(|(v, id)| ScoreInput {
                        id: id.map(|i| format!("c{i}")),
                        name: "q".into(),
                        value: ScoreValue::Number(f64::from(v)),
                        comment: None,
                    })
                    .collect(),
                ..Default::default()
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Any batch, applied once or twice, on a store that already holds data (so small batches
    /// take the write buffer the first time and fold the second time) or on an empty one: the
    /// second delivery changes no answer and `verify()` stays clean.
    #[test]
    fn a_batch_applied_twice_equals_it_applied_once(
        prior in prop::collection::vec(trace(), 0..4),
        batch in prop::collection::vec(trace(), 1..8),
        buffered in any::<bool>(),
    ) {
        let store = Store::builder()
            .write_buffer_traces(if buffered { 64 } else { 0 })
            .in_memory()
            .unwrap();
        if !prior.is_empty() {
            store.ingest("p", prior).unwrap();
        }
        let first = store.ingest("p", batch.clone()).unwrap();
        prop_assert_eq!(first.ids.len(), batch.len());
        let once = snapshot(&store);
        let second = store.ingest("p", batch).unwrap();
        prop_assert_eq!(&second.ids, &first.ids);
        prop_assert_eq!(snapshot(&store), once);
    }
}

/// Ids derived by format-2 builds stay the same after the upgrade to the v2 fields: a batch
/// retried across the upgrade still replaces what the first delivery wrote. The expected ids
/// were printed by the format-2 build.
#[test]
fn derived_ids_are_stable_across_the_v2_fields() {
    let store = Store::in_memory().unwrap();
    let body = br#"{"traces":[{"name":"agent","startTime":"2026-03-14T10:00:00Z",
        "spans":[{"name":"llm","model":"gpt-4o","inputTokens":3,"cost":"0.01"}],
        "scores":[{"name":"quality","value":0.5}]}]}"#;
    let s = store.ingest_json("p", body).unwrap();
    let t = store.get_trace("p", &s.ids[0]).unwrap();
    let got = (
        s.ids[0].clone(),
        t.spans[0].id.clone(),
        t.scores[0].id.clone(),
    );
    assert_eq!(
        got,
        (
            "1a30080183f04fa2c2a34c04daf3dfe2".to_string(),
            "37cff957d9340457bdf7b68a14c11a5d".to_string(),
            "3d407e4de51e6fd6371a0bfded55f2cf".to_string(),
        )
    );
}
