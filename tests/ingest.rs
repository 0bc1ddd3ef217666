//! Ingest: atomic batches, idempotent retries, upserts, derived fields, exact money, deletes and
//! retention.

mod support;

use rust_decimal::Decimal;
use std::str::FromStr;
use support::simple::*;
use tracestore::{
    ErrorCode, ScoreInput, ScoreValue, SpanInput, Status, Store, Timestamp, TraceInput,
};

fn span(id: &str, cost: &str, tokens: u64) -> SpanInput {
    SpanInput {
        id: Some(id.into()),
        name: Some("llm".into()),
        model: Some("gpt-4o".into()),
        input_tokens: Some(tokens / 2),
        output_tokens: Some(tokens - tokens / 2),
        cost: Some(Decimal::from_str(cost).unwrap()),
        ..Default::default()
    }
}

fn all(store: &Store, project: &str) -> Vec<tracestore::Trace> {
    support::all_traces(store, project).unwrap()
}

fn batch() -> Vec<TraceInput> {
    (0..50)
        .map(|i| TraceInput {
            status: Some(if i % 5 == 0 {
                Status::Error
            } else {
                Status::Ok
            }),
            end_time: Some(ts(i * 1000 + 2500)),
            tags: Some(vec!["production".into(), format!("v{}", i % 3)]),
            metadata: Some(serde_json::json!({"i": i}).as_object().unwrap().clone()),
            spans: vec![span("s1", "0.0012", 100), span("s2", "0.0022", 150)],
            scores: vec![ScoreInput {
                id: Some("q".into()),
                name: "quality".into(),
                value: ScoreValue::Number(0.9),
                comment: None,
            }],
            ..TraceInput::new(format!("tr-{i}"), "support-agent", ts(i * 1000))
        })
        .collect()
}

#[test]
fn a_retried_batch_leaves_the_store_as_one_delivery_would() {
    let once = Store::in_memory().unwrap();
    once.ingest("p", batch()).unwrap();
    let twice = Store::in_memory().unwrap();
    let first = twice.ingest("p", batch()).unwrap();
    let second = twice.ingest("p", batch()).unwrap();
    assert_eq!((first.created, first.updated), (50, 0));
    assert_eq!((second.created, second.updated), (0, 50));
    let (a, b) = (all(&once, "p"), all(&twice, "p"));
    assert_eq!(a.len(), 50);
    // Everything but createdAt (a wall-clock instant) is identical.
    let strip = |v: Vec<tracestore::Trace>| {
        v.into_iter()
            .map(|mut t| {
                t.created_at = Timestamp::MIN;
                t
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(strip(a.clone()), strip(b.clone()));
    let t = &b[0];
    assert_eq!(t.total_cost.to_string(), "0.0034");
    assert_eq!((t.total_tokens, t.span_count, t.score_count), (250, 2, 1));
    assert_eq!(t.duration_ms, Some(2500));
    assert_verified(&once);
    assert_verified(&twice);
    assert_eq!(once.verify().unwrap(), twice.verify().unwrap());
    // The same page JSON, down to the rendering of money and time.
    let json = serde_json::to_value(&b[0]).unwrap();
    assert_eq!(json["totalCost"], "0.0034");
    assert_eq!(json["startTime"], "2026-02-25T06:14:09.000Z");
    assert_eq!(json["metadata"]["i"], 49);
}

#[test]
fn ten_thousand_spans_of_a_ten_thousandth_sum_to_exactly_one() {
    let s = Store::builder()
        .durability(tracestore::Durability::Deferred)
        .in_memory()
        .unwrap();
    for chunk in 0..10 {
        let spans = (0..1000)
            .map(|i| span(&format!("s{chunk}-{i}"), "0.0001", 1))
            .collect();
        s.ingest(
            "p",
            vec![TraceInput {
                spans,
                ..TraceInput::new("money", "agent", ts(0))
            }],
        )
        .unwrap();
    }
    let t = s.get_trace("p", "money").unwrap();
    assert_eq!(t.trace.span_count, 10_000);
    assert_eq!(t.trace.total_cost.normalize().to_string(), "1");
    assert_eq!(serde_json::to_value(&t.trace).unwrap()["totalCost"], "1");
    assert_eq!(t.trace.total_tokens, 10_000);
    assert_verified(&s);
}

#[test]
fn one_bad_item_writes_nothing_and_every_bad_item_is_listed() {
    let s = Store::in_memory().unwrap();
    let mut b = batch();
    b[3].name = Some(String::new());
    b[7].tags = Some(vec!["has,comma".into()]);
    b[9].spans[1].cost = Some(Decimal::from_str("-0.5").unwrap());
    b[12].id = Some("bad id".into());
    let e = s.ingest("p", b).unwrap_err();
    assert_eq!(e.code(), ErrorCode::Validation);
    let fields: Vec<&str> = e.details().iter().map(|d| d.field()).collect();
    assert_eq!(
        fields,
        [
            "traces[3].name",
            "traces[7].tags[0]",
            "traces[9].spans[1].cost",
            "traces[12].id"
        ]
    );
    assert!(all(&s, "p").is_empty());
    // A new trace without its required fields fails inside the transaction, also atomically.
    let mut b = batch();
    b.push(TraceInput {
        id: Some("no-name".into()),
        ..Default::default()
    });
    let e = s.ingest("p", b).unwrap_err();
    let fields: Vec<&str> = e.details().iter().map(|d| d.field()).collect();
    assert_eq!(fields, ["traces[50].name", "traces[50].startTime"]);
    assert!(all(&s, "p").is_empty());
    assert_verified(&s);
}

#[test]
fn json_ingest_reports_every_bad_item_and_accepts_the_documented_shape() {
    let s = Store::in_memory().unwrap();
    let body = br#"{"traces":[
        {"id":"trace-abc-123","name":"support-agent","status":"ERROR",
         "startTime":"2026-03-14T10:00:00.000Z","endTime":"2026-03-14T10:00:02.500Z",
         "tags":["production","v2"],"metadata":{"version":"2.1","environment":"prod"},
         "spans":[{"id":"a","cost":"0.0034","inputTokens":1000,"outputTokens":250}],
         "scores":[{"id":"s","name":"helpful","value":"yes"}]}
    ]}"#;
    s.ingest_json("p", body).unwrap();
    let d = s.get_trace("p", "trace-abc-123").unwrap();
    let v = serde_json::to_value(&d).unwrap();
    assert_eq!(v["durationMs"], 2500);
    assert_eq!(v["totalCost"], "0.0034");
    assert_eq!(v["totalTokens"], 1250);
    assert_eq!(v["spans"][0]["cost"], "0.0034");
    assert_eq!(v["scores"][0]["value"], "yes");
    assert_eq!(v["endTime"], "2026-03-14T10:00:02.500Z");

    let bad = br#"{"traces":[{"name":"ok","startTime":"2026-03-14T10:00:00Z"},
        {"name":5,"startTime":"x","spans":[{"cost":true}],"extra":1}, 7]}"#;
    let e = s.ingest_json("p", bad).unwrap_err();
    let fields: Vec<&str> = e.details().iter().map(|d| d.field()).collect();
    assert!(
        fields.contains(&"traces[1].name") && fields.contains(&"traces[1].startTime"),
        "{fields:?}"
    );
    assert!(
        fields.contains(&"traces[1].spans[0].cost") && fields.contains(&"traces[1].extra"),
        "{fields:?}"
    );
    assert!(fields.contains(&"traces[2]"), "{fields:?}");
    assert_eq!(all(&s, "p").len(), 1);
    for body in [&b"not json"[..], b"[]", b"{}", b"{\"traces\":{}}"] {
        assert_eq!(
            s.ingest_json("p", body).unwrap_err().code(),
            ErrorCode::Validation
        );
    }
    let huge = vec![b' '; tracestore::limits::MAX_BATCH_BYTES + 1];
    assert_eq!(
        s.ingest_json("p", &huge).unwrap_err().code(),
        ErrorCode::PayloadTooLarge
    );
}

#[test]
fn upserts_update_mutable_fields_move_rows_and_keep_created_at() {
    let s = Store::in_memory().unwrap();
    s.ingest(
        "p",
        vec![TraceInput {
            tags: Some(vec!["a".into()]),
            ..TraceInput::new("x", "agent", ts(5000))
        }],
    )
    .unwrap();
    let created = s.get_trace("p", "x").unwrap().trace.created_at;
    std::thread::sleep(std::time::Duration::from_millis(5));
    // Partial update: only status, endTime and tags change; the rest is kept.
    s.ingest(
        "p",
        vec![TraceInput {
            id: Some("x".into()),
            status: Some(Status::Error),
            end_time: Some(ts(9000)),
            tags: Some(vec!["b".into(), "b".into()]),
            spans: vec![span("s", "1.5", 10)],
            ..Default::default()
        }],
    )
    .unwrap();
    let t = s.get_trace("p", "x").unwrap().trace;
    assert_eq!(
        (t.name.as_str(), t.status, t.tags.clone(), t.duration_ms),
        ("agent", Status::Error, vec!["b".to_string()], Some(4000))
    );
    assert_eq!(t.created_at, created);
    let q = |params: &[(&str, &str)]| {
        s.query_params("p", params.iter().copied())
            .unwrap()
            .traces
            .len()
    };
    assert_eq!(q(&[("tags", "a")]), 0);
    assert_eq!(q(&[("tags", "b"), ("status", "ERROR")]), 1);
    // Replacing the span changes the aggregates, never double-counts.
    s.ingest(
        "p",
        vec![TraceInput {
            id: Some("x".into()),
            spans: vec![span("s", "0.25", 4)],
            ..Default::default()
        }],
    )
    .unwrap();
    let t = s.get_trace("p", "x").unwrap().trace;
    assert_eq!(
        (t.total_cost.to_string(), t.total_tokens, t.span_count),
        ("0.25".to_string(), 4, 1)
    );
    // A changed startTime moves the trace and its index entries.
    s.ingest(
        "p",
        vec![TraceInput {
            id: Some("x".into()),
            start_time: Some(ts(1000)),
            name: Some("renamed".into()),
            ..Default::default()
        }],
    )
    .unwrap();
    let t = s.get_trace("p", "x").unwrap().trace;
    assert_eq!(
        (t.start_time, t.duration_ms, t.name.as_str()),
        (ts(1000), Some(8000), "renamed")
    );
    assert_eq!(q(&[("name", "agent")]), 0);
    assert_eq!(
        q(&[("name", "RENAMED"), ("endDate", &ts(2000).to_string())]),
        1
    );
    assert_eq!(q(&[("startDate", &ts(2000).to_string())]), 0);
    // endTime before startTime is refused.
    let e = s
        .ingest(
            "p",
            vec![TraceInput {
                id: Some("x".into()),
                start_time: Some(ts(10_000)),
                ..Default::default()
            }],
        )
        .unwrap_err();
    assert_eq!(e.details()[0].field(), "traces[0].endTime");
    assert_verified(&s);
}

#[test]
fn delete_and_retention_remove_everything_that_hangs_off_a_trace() {
    let s = Store::in_memory().unwrap();
    s.ingest("p", batch()).unwrap();
    s.ingest("other", batch()).unwrap();
    s.delete_trace("p", "tr-10").unwrap();
    assert_eq!(
        s.get_trace("p", "tr-10").unwrap_err().code(),
        ErrorCode::NotFound
    );
    assert_eq!(
        s.delete_trace("p", "tr-10").unwrap_err().code(),
        ErrorCode::NotFound
    );
    assert_eq!(all(&s, "p").len(), 49);
    // Re-creating a deleted id starts from zero aggregates.
    s.ingest("p", vec![TraceInput::new("tr-10", "again", ts(10_000))])
        .unwrap();
    let t = s.get_trace("p", "tr-10").unwrap();
    assert_eq!(
        (t.trace.span_count, t.spans.len(), t.scores.len()),
        (0, 0, 0)
    );
    let mut calls = Vec::new();
    let n = s
        .delete_before("p", ts(20_000), |done| calls.push(done))
        .unwrap();
    assert_eq!(n, 20);
    assert_eq!(calls, vec![20]);
    assert_eq!(all(&s, "p").len(), 30);
    assert!(all(&s, "p").iter().all(|t| t.start_time >= ts(20_000)));
    assert_eq!(
        all(&s, "other").len(),
        50,
        "retention stays inside its project"
    );
    assert_eq!(s.delete_before("nobody", ts(0), |_| {}).unwrap(), 0);
    assert_verified(&s);
}

#[test]
fn a_file_store_survives_reopen_with_its_cursor_secret() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.redb");
    let cursor = {
        let s = Store::open(&path).unwrap();
        s.ingest("p", batch()).unwrap();
        s.query_params("p", [("limit", "10")])
            .unwrap()
            .next_cursor
            .unwrap()
    };
    let s = Store::open(&path).unwrap();
    let page = s
        .query_params("p", [("cursor", cursor.as_str()), ("limit", "10")])
        .unwrap();
    assert_eq!(page.traces.len(), 10);
    assert_eq!(page.traces[0].id, "tr-39");
    assert_verified(&s);
}

/// The check against the stored state ("required for a new trace") runs in the same answer as
/// the shape checks, so a batch's every problem is listed at once.
#[test]
fn shape_and_stored_state_errors_come_in_one_answer() {
    let store = Store::in_memory().unwrap();
    let body = br#"{"traces":[
        {"id":"a","name":"x","status":"MAYBE","startTime":"2026-03-14T10:00:00Z"},
        {"id":"b","name":"y"},
        {"id":"c","startTime":"nope"}
    ]}"#;
    let e = store.ingest_json("p", body).unwrap_err();
    let mut fields: Vec<&str> = e.details().iter().map(|d| d.field()).collect();
    fields.sort();
    assert_eq!(
        fields,
        [
            "traces[0].status",
            "traces[1].startTime",
            "traces[2].name",
            "traces[2].startTime"
        ],
        "{e}"
    );
    // A stored trace needs neither field again, even while it is still in the write buffer.
    let t = Timestamp::parse("2026-03-14T10:00:00Z").unwrap();
    store
        .ingest("p", vec![TraceInput::new("seed", "x", t)])
        .unwrap();
    store
        .ingest("p", vec![TraceInput::new("b", "y", t)])
        .unwrap();
    let e = store
        .ingest(
            "p",
            vec![
                TraceInput {
                    id: Some("b".into()),
                    tags: Some(vec!["has,comma".into()]),
                    ..Default::default()
                },
                TraceInput {
                    id: Some("new".into()),
                    ..Default::default()
                },
            ],
        )
        .unwrap_err();
    let mut fields: Vec<&str> = e.details().iter().map(|d| d.field()).collect();
    fields.sort();
    assert_eq!(
        fields,
        ["traces[0].tags[0]", "traces[1].name", "traces[1].startTime"],
        "{e}"
    );
    assert!(store.verify().unwrap().is_empty());
}
