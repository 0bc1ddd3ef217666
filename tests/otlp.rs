//! OTLP ingest through the library (`Store::ingest_otlp`): arrival order, the stand-in root,
//! duplicates, usage counted once, trace-level attributes, and exact aggregates over a trace
//! that grows across many requests. Requests are OTLP/JSON bodies, decoded by the same
//! `OtlpRequest::decode` the server calls.

use rust_decimal::Decimal;
use serde_json::{json, Value};
use std::str::FromStr;
use tracestore::{OtlpEncoding, OtlpRequest, SpanKind, Status, Store, TraceDetail};

const T0_NS: u64 = 1_773_482_400_000_000_000; // 2026-03-14T10:00:00Z

fn trace_hex(n: u64) -> String {
    format!("{n:032x}")
}
fn span_hex(n: u64) -> String {
    format!("{n:016x}")
}

fn kv(key: &str, v: Value) -> Value {
    let value = match v {
        Value::String(s) => json!({ "stringValue": s }),
        Value::Bool(b) => json!({ "boolValue": b }),
        Value::Number(n) if n.is_i64() => json!({ "intValue": n.to_string() }),
        Value::Number(n) => json!({ "doubleValue": n }),
        Value::Array(a) => {
            json!({ "arrayValue": { "values": a.into_iter().map(|s| json!({"stringValue": s})).collect::<Vec<_>>() } })
        }
        other => panic!("no literal for {other}"),
    };
    json!({ "key": key, "value": value })
}

/// One span: (trace, span, parent or 0, name, start and end in ms after T0, status code,
/// attributes).
struct S<'a> {
    trace: u64,
    id: u64,
    parent: u64,
    name: &'a str,
    start_ms: u64,
    end_ms: u64,
    error: bool,
    attrs: Vec<(&'a str, Value)>,
}

fn span(trace: u64, id: u64, parent: u64, name: &str, start_ms: u64, end_ms: u64) -> S<'_> {
    S {
        trace,
        id,
        parent,
        name,
        start_ms,
        end_ms,
        error: false,
        attrs: Vec::new(),
    }
}

impl<'a> S<'a> {
    fn attr(mut self, k: &'a str, v: Value) -> Self {
        self.attrs.push((k, v));
        self
    }
    fn error(mut self) -> Self {
        self.error = true;
        self
    }
    fn json(&self) -> Value {
        let mut s = json!({
            "traceId": trace_hex(self.trace),
            "spanId": span_hex(self.id),
            "name": self.name,
            "startTimeUnixNano": (T0_NS + self.start_ms * 1_000_000).to_string(),
            "endTimeUnixNano": (T0_NS + self.end_ms * 1_000_000).to_string(),
            "attributes": self.attrs.iter().map(|(k, v)| kv(k, v.clone())).collect::<Vec<_>>(),
            "status": { "code": if self.error { 2 } else { 1 }, "message": if self.error { "boom" } else { "" } },
        });
        if self.parent != 0 {
            s["parentSpanId"] = json!(span_hex(self.parent));
        }
        s
    }
}

fn request(spans: &[S<'_>]) -> OtlpRequest {
    let body = json!({
        "resourceSpans": [{
            "resource": { "attributes": [kv("service.name", json!("checkout")), kv("host.name", json!("h1"))] },
            "scopeSpans": [{ "scope": { "name": "test" }, "spans": spans.iter().map(S::json).collect::<Vec<_>>() }]
        }]
    });
    OtlpRequest::decode(body.to_string().as_bytes(), OtlpEncoding::Json).unwrap()
}

fn send(store: &Store, spans: &[S<'_>]) -> tracestore::OtlpOutcome {
    let out = store.ingest_otlp("p", &request(spans)).unwrap();
    assert_eq!(store.verify().unwrap(), vec![]);
    out
}

fn get(store: &Store, trace: u64) -> TraceDetail {
    store.get_trace("p", &trace_hex(trace)).unwrap()
}

fn llm(trace: u64, id: u64, parent: u64, start: u64, input: i64, output: i64) -> S<'static> {
    span(trace, id, parent, "chat", start, start + 100)
        .attr("openinference.span.kind", json!("LLM"))
        .attr("llm.model_name", json!("gpt-4o"))
        .attr("llm.token_count.prompt", json!(input))
        .attr("llm.token_count.completion", json!(output))
        .attr("llm.cost.total", json!(0.001))
}

#[test]
fn children_before_the_root_then_the_root_takes_over() {
    let store = Store::in_memory().unwrap();
    // The batch processor exports the children first: an ERROR tool call and an LLM call.
    let out = send(
        &store,
        &[
            span(1, 2, 1, "lookup", 300, 900)
                .attr("openinference.span.kind", json!("TOOL"))
                .attr("user.id", json!("u-child"))
                .attr("session.id", json!("s-child"))
                .error(),
            llm(1, 3, 1, 100, 10, 5),
        ],
    );
    assert_eq!((out.accepted_spans, out.rejected_spans), (2, 0));
    let t = get(&store, 1);
    // The earliest span whose parent is missing stands in for the root.
    assert_eq!(t.trace.name, "chat");
    assert_eq!(t.trace.start_time.to_string(), "2026-03-14T10:00:00.100Z");
    assert_eq!(
        t.trace.end_time.unwrap().to_string(),
        "2026-03-14T10:00:00.900Z"
    );
    assert_eq!(
        t.trace.status,
        Status::Error,
        "any ERROR span before the root"
    );
    assert_eq!(t.trace.user_id.as_deref(), Some("u-child"));

    // The root arrives: it gives the name, times, status, input and output, and its userId;
    // the sessionId stays the first child's, since the root carries none.
    send(
        &store,
        &[span(1, 1, 0, "support-agent", 0, 1000)
            .attr("openinference.span.kind", json!("AGENT"))
            .attr("input.value", json!("where is my order?"))
            .attr("output.value", json!("tomorrow"))
            .attr("user.id", json!("u-root"))],
    );
    let t = get(&store, 1);
    assert_eq!(t.trace.name, "support-agent");
    assert_eq!(t.trace.start_time.to_string(), "2026-03-14T10:00:00.000Z");
    assert_eq!(t.trace.duration_ms, Some(1000));
    assert_eq!(t.trace.status, Status::Ok, "the real root's status");
    assert_eq!(t.input.unwrap().as_json(), r#""where is my order?""#);
    assert_eq!(t.output.unwrap().as_json(), r#""tomorrow""#);
    assert_eq!(t.trace.user_id.as_deref(), Some("u-root"));
    assert_eq!(t.trace.session_id.as_deref(), Some("s-child"));
    assert_eq!(t.trace.metadata.as_json(), r#"{"service.name":"checkout"}"#);
    assert_eq!(t.trace.span_count, 3);
    assert_eq!(t.trace.total_tokens, 15);
    let kinds: Vec<(String, SpanKind, Option<String>)> = t
        .spans
        .iter()
        .map(|s| (s.id.clone(), s.kind, s.parent_id.clone()))
        .collect();
    assert_eq!(
        kinds,
        vec![
            (span_hex(1), SpanKind::Agent, None),
            (span_hex(3), SpanKind::Llm, Some(span_hex(1))),
            (span_hex(2), SpanKind::Tool, Some(span_hex(1))),
        ]
    );
    let tool = &t.spans[2];
    assert_eq!(tool.status, Status::Error);
    assert_eq!(tool.status_message.as_deref(), Some("boom"));
    // Resource attributes other than the service's go to the root's attributes.
    let root_attrs = t.spans[0].attributes.as_ref().unwrap().to_value();
    assert_eq!(root_attrs["resource"], json!({"host.name": "h1"}));
}

#[test]
fn a_root_that_never_arrives_leaves_a_stand_in_and_the_parent_id_as_sent() {
    let store = Store::in_memory().unwrap();
    // A service whose top span has a remote parent (span 99, in another service's export).
    send(
        &store,
        &[
            span(2, 5, 99, "handle-request", 50, 500),
            span(2, 6, 5, "db-query", 60, 90),
        ],
    );
    let t = get(&store, 2);
    assert_eq!(t.trace.name, "handle-request");
    assert_eq!(t.spans[0].parent_id.as_deref(), Some(span_hex(99).as_str()));
    assert_eq!(t.trace.duration_ms, Some(450));
    // A later, earlier-starting orphan takes over as the stand-in.
    send(&store, &[span(2, 7, 98, "early", 10, 20)]);
    let t = get(&store, 2);
    assert_eq!(t.trace.name, "early");
    assert_eq!(t.trace.start_time.to_string(), "2026-03-14T10:00:00.010Z");
    assert_eq!(t.trace.duration_ms, Some(490));
}

#[test]
fn duplicates_within_and_across_requests_never_double_count() {
    let store = Store::in_memory().unwrap();
    let batch = || vec![llm(3, 1, 0, 0, 100, 50), llm(3, 2, 1, 10, 7, 3)];
    // The same span twice in one request: one span, the later content.
    let mut twice = batch();
    twice.push(llm(3, 2, 1, 10, 8, 3));
    send(&store, &twice);
    let t = get(&store, 3);
    assert_eq!((t.trace.span_count, t.trace.total_tokens), (2, 161));
    // The exporter retries the whole request, twice.
    send(&store, &batch());
    send(&store, &batch());
    let t = get(&store, 3);
    assert_eq!((t.trace.span_count, t.trace.total_tokens), (2, 160));
    assert_eq!(t.trace.total_cost, Decimal::from_str("0.002").unwrap());
}

#[test]
fn usage_is_counted_on_llm_and_embedding_spans_only() {
    let store = Store::in_memory().unwrap();
    send(
        &store,
        &[
            span(4, 1, 0, "invoke_agent", 0, 100)
                .attr("gen_ai.operation.name", json!("invoke_agent"))
                .attr("gen_ai.usage.input_tokens", json!(40))
                .attr("gen_ai.usage.output_tokens", json!(2)),
            span(4, 2, 1, "chat", 10, 50)
                .attr("gen_ai.operation.name", json!("chat"))
                .attr("gen_ai.request.model", json!("gpt-4o-mini"))
                .attr("gen_ai.usage.input_tokens", json!(40))
                .attr("gen_ai.usage.output_tokens", json!(2))
                .attr("gen_ai.usage.cost", json!(0.1)),
            span(4, 3, 1, "embed", 50, 60)
                .attr("gen_ai.operation.name", json!("embeddings"))
                .attr("gen_ai.usage.input_tokens", json!(8)),
        ],
    );
    let t = get(&store, 4);
    assert_eq!(t.trace.total_tokens, 50);
    assert_eq!(t.trace.total_cost.to_string(), "0.1");
    let agent = &t.spans[0];
    assert_eq!(agent.kind, SpanKind::Agent);
    assert_eq!(agent.total_tokens, 0);
    let attrs = agent.attributes.as_ref().unwrap().to_value();
    assert_eq!(
        attrs["gen_ai.usage.input_tokens"],
        json!(40),
        "kept as an attribute"
    );
    assert_eq!(t.spans[1].model.as_deref(), Some("gpt-4o-mini"));
    assert_eq!(t.spans[2].kind, SpanKind::Embedding);
}

#[test]
fn a_trace_that_grows_over_many_requests_keeps_exact_aggregates() {
    let path = tempfile::tempdir().unwrap();
    let file = path.path().join("t.redb");
    let store = Store::open(&file).unwrap();
    let mut next = 2u64;
    for round in 0..25u64 {
        let mut spans = Vec::new();
        for j in 0..8u64 {
            let (i, o) = ((round * 7 + j) as i64, (j * 3) as i64);
            // The first span of each later round re-sends one of the round before with new
            // counts: replaced, not added.
            let id = if j == 0 && round > 0 { next - 8 } else { next };
            if !(j == 0 && round > 0) {
                next += 1;
            }
            spans.push(
                llm(5, id, 1, round * 100 + j, i, o)
                    .attr("tag.tags", json!([format!("round-{}", round % 3)])),
            );
        }
        send(&store, &spans);
    }
    let t = get(&store, 5);
    let sum: u64 = t.spans.iter().map(|s| s.total_tokens).sum();
    assert_eq!(t.trace.total_tokens, sum);
    assert_eq!(t.trace.span_count as usize, t.spans.len());
    assert_eq!(t.spans.len(), 8 + 24 * 7);
    assert_eq!(
        t.trace.total_cost,
        t.spans.iter().map(|s| s.cost.unwrap()).sum::<Decimal>()
    );
    assert_eq!(t.trace.tags, vec!["round-0", "round-1", "round-2"]);
    drop(store);
    let store = Store::open(&file).unwrap();
    assert_eq!(store.verify().unwrap(), vec![]);
}

#[test]
fn bad_ids_are_rejected_beside_good_spans_and_empty_requests_write_nothing() {
    let store = Store::in_memory().unwrap();
    let body = json!({ "resourceSpans": [{ "scopeSpans": [{ "spans": [
        span(6, 1, 0, "good", 0, 10).json(),
        { "traceId": "00000000000000000000000000000000", "spanId": span_hex(2), "name": "zero trace" },
        { "traceId": trace_hex(6), "spanId": "", "name": "no span id" },
        { "traceId": trace_hex(6), "spanId": "0102", "name": "short span id" },
    ]}]}]});
    let req = OtlpRequest::decode(body.to_string().as_bytes(), OtlpEncoding::Json).unwrap();
    let out = store.ingest_otlp("p", &req).unwrap();
    assert_eq!((out.accepted_spans, out.rejected_spans), (1, 3));
    assert!(out.error_message.unwrap().contains("3 spans rejected"));
    assert_eq!(get(&store, 6).trace.span_count, 1);

    for empty in [
        "{}",
        r#"{"resourceSpans":[]}"#,
        r#"{"resourceSpans":[{"scopeSpans":[]}]}"#,
    ] {
        let req = OtlpRequest::decode(empty.as_bytes(), OtlpEncoding::Json).unwrap();
        let out = store.ingest_otlp("empty", &req).unwrap();
        assert_eq!((out.accepted_spans, out.rejected_spans), (0, 0));
    }
    assert_eq!(
        store.get_trace("empty", &trace_hex(6)).unwrap_err().code(),
        tracestore::ErrorCode::NotFound
    );
    assert_eq!(store.verify().unwrap(), vec![]);
}

#[test]
fn otlp_spans_join_a_trace_still_in_the_write_buffer() {
    let store = Store::in_memory().unwrap();
    store
        .ingest_json(
            "p",
            br#"{"traces":[{"id":"seed","name":"x","startTime":"2026-01-01T00:00:00Z"}]}"#,
        )
        .unwrap();
    // A single new trace into an existing project is buffered.
    let id = trace_hex(7);
    let body = format!(
        r#"{{"traces":[{{"id":"{id}","name":"from-json","startTime":"2026-03-14T10:00:00Z","tags":["json"]}}]}}"#
    );
    store.ingest_json("p", body.as_bytes()).unwrap();
    send(
        &store,
        &[llm(7, 1, 42, 5, 1, 1).attr("tag.tags", json!(["otlp"]))],
    );
    let t = get(&store, 7);
    assert_eq!(t.trace.span_count, 1);
    assert_eq!(t.trace.tags, vec!["json", "otlp"]);
    assert_eq!(t.trace.name, "chat", "the stand-in root names the trace");
}

#[test]
fn a_tree_read_without_payloads_leaves_them_out() {
    let store = Store::in_memory().unwrap();
    send(
        &store,
        &[span(8, 1, 0, "agent", 0, 10)
            .attr("input.value", json!("{\"q\":1}"))
            .attr("input.mime_type", json!("application/json"))],
    );
    let full = serde_json::to_value(get(&store, 8)).unwrap();
    assert_eq!(full["input"], json!({"q": 1}));
    assert_eq!(full["spans"][0]["input"], json!({"q": 1}));
    let tree = serde_json::to_value(store.get_trace_tree("p", &trace_hex(8)).unwrap()).unwrap();
    for k in ["input", "output"] {
        assert!(tree.get(k).is_none(), "{k} left out");
    }
    for k in ["input", "output", "attributes", "statusMessage"] {
        assert!(tree["spans"][0].get(k).is_none(), "span {k} left out");
    }
    assert_eq!(tree["spans"][0]["kind"], json!("UNKNOWN"));
}

#[test]
fn concurrent_requests_store_what_the_same_requests_one_by_one_store() {
    // Four clients send 12 requests each; their spans share five traces (disjoint span ids, so
    // the stored result does not depend on arrival order). Concurrent requests share
    // transactions (group commit); the store must equal one fed the same requests in turn.
    let requests = |client: u64| -> Vec<Vec<S<'static>>> {
        (0..12u64)
            .map(|r| {
                let mut spans: Vec<S<'static>> = (0..6u64)
                    .map(|j| {
                        let id = 1000 + client * 100 + r * 6 + j;
                        llm(100 + (r + j) % 5, id, 1, r * 50 + j, (client + j) as i64, 3)
                            .attr("tag.tags", json!([format!("c{client}")]))
                    })
                    .collect();
                if client == 2 && r == 5 {
                    spans.push(span(103, 1, 0, "agent", 0, 10_000));
                }
                spans
            })
            .collect()
    };
    let dir = tempfile::tempdir().unwrap();
    let together = Store::open(dir.path().join("together.redb")).unwrap();
    std::thread::scope(|sc| {
        for client in 0..4u64 {
            let store = &together;
            sc.spawn(move || {
                for spans in requests(client) {
                    let out = store.ingest_otlp("p", &request(&spans)).unwrap();
                    assert_eq!(out.accepted_spans as usize, spans.len());
                }
            });
        }
    });
    let one_by_one = Store::open(dir.path().join("one-by-one.redb")).unwrap();
    for client in 0..4u64 {
        for spans in requests(client) {
            send(&one_by_one, &spans);
        }
    }
    assert_eq!(together.verify().unwrap(), vec![]);
    for trace in 100..105u64 {
        let (a, b) = (get(&together, trace), get(&one_by_one, trace));
        let sent = (0..4u64)
            .flat_map(requests)
            .flatten()
            .filter(|s| s.trace == trace)
            .count();
        assert_eq!(a.spans.len(), sent);
        assert_eq!(a.spans, b.spans);
        // Tags keep their arrival order, which differs; the set is the same.
        let sorted = |t: &TraceDetail| {
            let mut tags = t.trace.tags.clone();
            tags.sort();
            tags
        };
        assert_eq!(sorted(&a), sorted(&b));
        assert_eq!(
            (
                a.trace.total_tokens,
                a.trace.span_count,
                &a.trace.name,
                a.trace.start_time
            ),
            (
                b.trace.total_tokens,
                b.trace.span_count,
                &b.trace.name,
                b.trace.start_time
            )
        );
        assert_eq!((&a.input, &a.output), (&b.input, &b.output));
    }
}
