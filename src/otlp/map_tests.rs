//! The mapping rules, row by row: each test maps a request and compares the whole `Mapped` (or
//! the one span) with the expected value, then checks that the result passes the ordinary
//! ingest validation.

use super::*;
use crate::limits::{MAX_TAG_CHARS, TRUNCATED_PREFIX_BYTES};
use crate::model::TraceInput;
use crate::otlp::{OtlpEncoding, OtlpRequest};
use opentelemetry_proto::tonic::common::v1::{AnyValue, ArrayValue, KeyValueList};
use opentelemetry_proto::tonic::trace::v1::span::Event;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Status as OtelStatus};
use serde_json::{json, Map};
use value::{object, to_json};

const TRACE: [u8; 16] = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16];
const TRACE_HEX: &str = "0102030405060708090a0b0c0d0e0f10";
const SPAN: [u8; 8] = [0xa1, 0xb2, 0xc3, 0xd4, 0xe5, 0xf6, 0x07, 0x18];
const SPAN_HEX: &str = "a1b2c3d4e5f60718";
/// 2023-11-14T22:13:20.123Z plus sub-millisecond nanos that are truncated.
const START_NS: u64 = 1_700_000_000_123_456_789;
const START_MS: i64 = 1_700_000_000_123;
const END_NS: u64 = 1_700_000_001_456_999_999;
const END_MS: i64 = 1_700_000_001_456;

// ---- builders ----

fn kv(key: &str, v: Any) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue { value: Some(v) }),
        ..Default::default()
    }
}
fn s(v: &str) -> Any {
    Any::StringValue(v.into())
}
fn int(v: i64) -> Any {
    Any::IntValue(v)
}
fn dbl(v: f64) -> Any {
    Any::DoubleValue(v)
}
fn arr(items: Vec<Any>) -> Any {
    Any::ArrayValue(ArrayValue {
        values: items
            .into_iter()
            .map(|v| AnyValue { value: Some(v) })
            .collect(),
    })
}
fn kvlist(kvs: Vec<KeyValue>) -> Any {
    Any::KvlistValue(KeyValueList { values: kvs })
}
fn llm() -> KeyValue {
    kv("openinference.span.kind", s("LLM"))
}

/// A span with the test ids and times, named "op".
fn otlp_span(attributes: Vec<KeyValue>) -> Span {
    Span {
        trace_id: TRACE.to_vec(),
        span_id: SPAN.to_vec(),
        name: "op".into(),
        start_time_unix_nano: START_NS,
        end_time_unix_nano: END_NS,
        attributes,
        ..Default::default()
    }
}

fn span_ids(trace: u8, span: u8) -> Span {
    Span {
        trace_id: vec![trace; 16],
        span_id: vec![span; 8],
        ..otlp_span(vec![])
    }
}

fn resource_spans(resource: Vec<KeyValue>, spans: Vec<Span>) -> ResourceSpans {
    ResourceSpans {
        resource: Some(Resource {
            attributes: resource,
            ..Default::default()
        }),
        scope_spans: vec![ScopeSpans {
            spans,
            ..Default::default()
        }],
        ..Default::default()
    }
}

fn request(spans: Vec<Span>) -> ExportTraceServiceRequest {
    request_with_resource(vec![], spans)
}

fn request_with_resource(resource: Vec<KeyValue>, spans: Vec<Span>) -> ExportTraceServiceRequest {
    ExportTraceServiceRequest {
        resource_spans: vec![resource_spans(resource, spans)],
    }
}

/// What `otlp_span(vec![])` maps to.
fn base(id: &str) -> MappedSpan {
    MappedSpan {
        span: SpanInput {
            id: Some(id.into()),
            name: Some("op".into()),
            kind: Some(SpanKind::Unknown),
            status: Some(Status::Ok),
            start_time: Some(Timestamp::from_millis_unchecked(START_MS)),
            end_time: Some(Timestamp::from_millis_unchecked(END_MS)),
            ..Default::default()
        },
        payload: PayloadTexts::default(),
        attrs: TraceAttrs::default(),
        tags: vec![],
    }
}

fn object_of(v: Json) -> Option<Map<String, Json>> {
    match v {
        Json::Object(m) => Some(m),
        _ => None,
    }
}

fn dec(s: &str) -> Option<Decimal> {
    Some(s.parse().expect("a decimal literal"))
}

// ---- checks ----

/// Maps `request`, compares with `expected`, and checks the result passes validation. The
/// expected payloads are written as values on `span` (`input`, `output`, `attributes`); the
/// mapping's texts must be exactly `serde_json`'s compact text of them.
fn check(request: ExportTraceServiceRequest, mut expected: Mapped) {
    for m in expected.traces.iter_mut().flat_map(|t| &mut t.spans) {
        as_texts(m);
    }
    let got = map_request(&request);
    assert_eq!(got, expected);
    assert_valid(&got);
}

/// Moves the expected payload values of `m.span` to `m.payload` as compact JSON text.
fn as_texts(m: &mut MappedSpan) {
    let s = &mut m.span;
    let texts = PayloadTexts {
        input: s.input.take().map(|v| compact(&v)),
        output: s.output.take().map(|v| compact(&v)),
        attributes: s.attributes.take().map(|a| compact(&Json::Object(a))),
    };
    if texts != PayloadTexts::default() {
        m.payload = texts;
    }
}

/// A mapped span with its payload texts read back as values, as the JSON ingest would take it.
fn with_values(m: &MappedSpan) -> SpanInput {
    let parse = |t: &Option<String>| -> Option<Json> {
        t.as_deref()
            .map(|t| serde_json::from_str(t).expect("the mapping writes JSON text"))
    };
    SpanInput {
        input: parse(&m.payload.input),
        output: parse(&m.payload.output),
        attributes: parse(&m.payload.attributes).and_then(object_of),
        ..m.span.clone()
    }
}

/// One span from `attributes`; expected is the base span changed by `edit`.
fn check_span(attributes: Vec<KeyValue>, edit: impl FnOnce(&mut MappedSpan)) {
    check_one(otlp_span(attributes), edit);
}

fn check_one(span: Span, edit: impl FnOnce(&mut MappedSpan)) {
    let mut expected = base(SPAN_HEX);
    edit(&mut expected);
    check(request(vec![span]), one_trace(vec![expected]));
}

fn one_trace(spans: Vec<MappedSpan>) -> Mapped {
    Mapped {
        traces: vec![MappedTrace {
            trace_id: TRACE_HEX.into(),
            spans,
        }],
        ..Default::default()
    }
}

/// Every mapped span passes the ordinary ingest validation and the payload limits.
fn assert_valid(m: &Mapped) {
    for t in &m.traces {
        let trace = TraceInput {
            spans: t.spans.iter().map(with_values).collect(),
            ..TraceInput::new(t.trace_id.clone(), "t", Timestamp::from_millis_unchecked(0))
        };
        let checked = crate::validate::validate_batch(vec![trace]).expect("one trace");
        assert!(checked.errors.is_empty(), "{:?}", checked.errors);
        let is_hex = |s: &str, n: usize| {
            s.len() == n
                && s.bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        };
        assert!(is_hex(&t.trace_id, 32), "{}", t.trace_id);
        for m in &t.spans {
            assert!(m.tags.iter().all(|tag| check_tag(tag).is_ok()));
            let s = &m.span;
            assert!(s.id.as_deref().is_some_and(|id| is_hex(id, 16)));
            assert!(s.parent_id.as_deref().is_none_or(|id| is_hex(id, 16)));
            assert!(s.status.is_some());
            let usage = matches!(s.kind, Some(SpanKind::Llm | SpanKind::Embedding));
            if !usage {
                assert_eq!(
                    (s.input_tokens, s.output_tokens, s.total_tokens),
                    (None, None, None)
                );
                assert_eq!(s.cost, None);
            }
            assert_eq!((&s.input, &s.output, &s.attributes), (&None, &None, &None));
            for p in [&m.payload.input, &m.payload.output].into_iter().flatten() {
                assert!(p.len() <= MAX_PAYLOAD_BYTES);
            }
            if let Some(a) = &m.payload.attributes {
                assert!(a.len() <= MAX_ATTRIBUTES_BYTES);
                assert!(a.starts_with('{'), "{a}");
            }
            if let Some(msg) = &s.status_message {
                assert!(msg.len() <= MAX_STATUS_MESSAGE_BYTES);
            }
        }
    }
}

// ---- ids, rejection, grouping ----

#[test]
fn base_span_maps_every_plain_field() {
    check_span(vec![], |_| {});
}

#[test]
fn bad_trace_and_span_ids_are_rejected_beside_good_spans() {
    let good = |n: u8| span_ids(7, n);
    let with = |trace: Vec<u8>, span: Vec<u8>| Span {
        trace_id: trace,
        span_id: span,
        ..otlp_span(vec![])
    };
    let spans = vec![
        good(1),
        with(vec![], SPAN.to_vec()),       // empty trace id
        with(vec![0; 16], SPAN.to_vec()),  // all-zero trace id
        with(vec![1; 15], SPAN.to_vec()),  // 15 bytes
        with(vec![1; 17], SPAN.to_vec()),  // 17 bytes
        with(TRACE.to_vec(), vec![]),      // empty span id
        with(TRACE.to_vec(), vec![0; 8]),  // all-zero span id
        with(TRACE.to_vec(), vec![1; 16]), // 16 bytes
        good(2),
    ];
    let hex7 = "07".repeat(16);
    check(
        request(spans),
        Mapped {
            traces: vec![MappedTrace {
                trace_id: hex7,
                spans: vec![base(&"01".repeat(8)), base(&"02".repeat(8))],
            }],
            rejected_spans: 7,
            error_message: Some(
                "7 spans rejected: 4 invalid trace id (must be 16 nonzero bytes), \
                 3 invalid span id (must be 8 nonzero bytes)"
                    .into(),
            ),
        },
    );
}

#[test]
fn rejection_message_names_one_reason() {
    let bad_trace = Span {
        trace_id: vec![0; 16],
        ..otlp_span(vec![])
    };
    let bad_span = Span {
        span_id: vec![9; 7],
        ..otlp_span(vec![])
    };
    check(
        request(vec![bad_trace.clone(), bad_trace]),
        Mapped {
            traces: vec![],
            rejected_spans: 2,
            error_message: Some(
                "2 spans rejected: invalid trace id (must be 16 nonzero bytes)".into(),
            ),
        },
    );
    check(
        request(vec![bad_span]),
        Mapped {
            traces: vec![],
            rejected_spans: 1,
            error_message: Some(
                "1 span rejected: invalid span id (must be 8 nonzero bytes)".into(),
            ),
        },
    );
}

#[test]
fn parent_id_is_lowercase_hex_or_none() {
    let rows: [(Vec<u8>, Option<&str>); 5] = [
        (
            vec![0xAB, 0xCD, 0xEF, 1, 2, 3, 4, 5],
            Some("abcdef0102030405"),
        ),
        (vec![], None),
        (vec![0; 8], None),
        (vec![1; 7], None),
        (vec![1; 9], None),
    ];
    for (parent, expected) in rows {
        let span = Span {
            parent_span_id: parent,
            ..otlp_span(vec![])
        };
        check_one(span, |m| m.span.parent_id = expected.map(String::from));
    }
}

#[test]
fn a_span_sent_twice_keeps_the_later_content_at_the_earlier_place() {
    let first = Span {
        name: "first".into(),
        ..span_ids(7, 1)
    };
    let other = span_ids(7, 2);
    let again = Span {
        name: "again".into(),
        ..span_ids(7, 1)
    };
    // The same span id in another trace is another span.
    let elsewhere = span_ids(8, 1);
    let named = |id: &str, name: &str| {
        let mut m = base(id);
        m.span.name = Some(name.into());
        m
    };
    check(
        request(vec![first, other, again, elsewhere]),
        Mapped {
            traces: vec![
                MappedTrace {
                    trace_id: "07".repeat(16),
                    spans: vec![named(&"01".repeat(8), "again"), base(&"02".repeat(8))],
                },
                MappedTrace {
                    trace_id: "08".repeat(16),
                    spans: vec![base(&"01".repeat(8))],
                },
            ],
            ..Default::default()
        },
    );
}

#[test]
fn traces_are_grouped_in_first_seen_order_across_resources_and_scopes() {
    let req = ExportTraceServiceRequest {
        resource_spans: vec![
            ResourceSpans {
                scope_spans: vec![
                    ScopeSpans {
                        spans: vec![span_ids(3, 1), span_ids(1, 1)],
                        ..Default::default()
                    },
                    ScopeSpans {
                        spans: vec![span_ids(3, 2)],
                        ..Default::default()
                    },
                ],
                ..Default::default()
            },
            resource_spans(vec![], vec![span_ids(2, 1), span_ids(1, 2)]),
        ],
    };
    let trace = |t: &str, spans: &[&str]| MappedTrace {
        trace_id: t.repeat(16),
        spans: spans.iter().map(|s| base(&s.repeat(8))).collect(),
    };
    check(
        req,
        Mapped {
            traces: vec![
                trace("03", &["01", "02"]),
                trace("01", &["01", "02"]),
                trace("02", &["01"]),
            ],
            ..Default::default()
        },
    );
}

// ---- name, times, status ----

#[test]
fn names_are_cleaned_cut_or_defaulted() {
    let rows: [(String, String); 4] = [
        (String::new(), "unnamed".into()),
        ("a\tb\nc\u{7f}d".into(), "a b c d".into()),
        ("é".repeat(300), "é".repeat(256)),
        ("x".repeat(256), "x".repeat(256)),
    ];
    for (name, expected) in rows {
        let span = Span {
            name,
            ..otlp_span(vec![])
        };
        check_one(span, |m| m.span.name = Some(expected));
    }
}

#[test]
fn times_are_truncated_to_millis_and_ordered() {
    let rows = [
        // (start ns, end ns, start ms, end ms)
        (START_NS, END_NS, START_MS, Some(END_MS)),
        (START_NS, 0, START_MS, None),
        (START_NS, START_NS - 5_000_000, START_MS, Some(START_MS)),
        (0, 999_999, 0, Some(0)),
    ];
    for (start, end, start_ms, end_ms) in rows {
        let span = Span {
            start_time_unix_nano: start,
            end_time_unix_nano: end,
            ..otlp_span(vec![])
        };
        check_one(span, |m| {
            m.span.start_time = Some(Timestamp::from_millis_unchecked(start_ms));
            m.span.end_time = end_ms.map(Timestamp::from_millis_unchecked);
        });
    }
}

#[test]
fn status_code_error_is_error_and_the_rest_ok() {
    for (code, expected) in [
        (0, Status::Ok),
        (1, Status::Ok),
        (2, Status::Error),
        (7, Status::Ok),
    ] {
        let span = Span {
            status: Some(OtelStatus {
                code,
                message: String::new(),
            }),
            ..otlp_span(vec![])
        };
        check_one(span, |m| m.span.status = Some(expected));
    }
}

#[test]
fn status_message_from_status_else_from_the_first_exception_event() {
    let exception = |msg: &str| Event {
        name: "exception".into(),
        time_unix_nano: START_NS,
        attributes: vec![
            kv("exception.type", s("ValueError")),
            kv("exception.message", s(msg)),
        ],
        ..Default::default()
    };
    let event_json = |msg: &str| {
        json!({
            "name": "exception",
            "time": "2023-11-14T22:13:20.123Z",
            "attributes": {"exception.type": "ValueError", "exception.message": msg}
        })
    };
    // From the status.
    let span = Span {
        status: Some(OtelStatus {
            code: 2,
            message: "boom".into(),
        }),
        events: vec![exception("from event")],
        ..otlp_span(vec![])
    };
    check_one(span, |m| {
        m.span.status = Some(Status::Error);
        m.span.status_message = Some("boom".into());
        m.span.attributes = object_of(json!({"events": [event_json("from event")]}));
    });
    // From the first exception event, which stays whole in events.
    let span = Span {
        status: Some(OtelStatus {
            code: 2,
            message: String::new(),
        }),
        events: vec![
            Event {
                name: "log".into(),
                time_unix_nano: START_NS,
                attributes: vec![kv("exception.message", s("not an exception"))],
                ..Default::default()
            },
            exception("first"),
            exception("second"),
        ],
        ..otlp_span(vec![])
    };
    check_one(span, |m| {
        m.span.status = Some(Status::Error);
        m.span.status_message = Some("first".into());
        m.span.attributes = object_of(json!({"events": [
            {"name": "log", "time": "2023-11-14T22:13:20.123Z",
             "attributes": {"exception.message": "not an exception"}},
            event_json("first"),
            event_json("second"),
        ]}));
    });
}

#[test]
fn a_long_status_message_is_cut_at_a_char_boundary() {
    // 1 + 2 * 2048 = 4097 bytes; byte 4096 falls inside the last 'é', so 4095 bytes are kept.
    let msg = format!("a{}", "é".repeat(2048));
    let span = Span {
        status: Some(OtelStatus {
            code: 2,
            message: msg,
        }),
        ..otlp_span(vec![])
    };
    check_one(span, |m| {
        m.span.status = Some(Status::Error);
        m.span.status_message = Some(format!("a{}", "é".repeat(2047)));
    });
}

// ---- kind ----

#[test]
fn kind_from_openinference_span_kind_any_case() {
    for kind in SpanKind::ALL {
        for name in [kind.as_str().to_string(), kind.as_str().to_lowercase()] {
            check_span(vec![kv("openinference.span.kind", s(&name))], |m| {
                m.span.kind = Some(kind)
            });
        }
    }
}

#[test]
fn kind_from_gen_ai_operation_name() {
    let rows = [
        ("chat", SpanKind::Llm),
        ("text_completion", SpanKind::Llm),
        ("generate_content", SpanKind::Llm),
        ("embeddings", SpanKind::Embedding),
        ("execute_tool", SpanKind::Tool),
        ("invoke_agent", SpanKind::Agent),
        ("create_agent", SpanKind::Agent),
    ];
    for (op, kind) in rows {
        check_span(vec![kv("gen_ai.operation.name", s(op))], |m| {
            m.span.kind = Some(kind)
        });
    }
}

#[test]
fn kind_falls_through_and_unused_sources_stay_attributes() {
    // An unknown OpenInference kind falls through to the operation name and stays.
    check_span(
        vec![
            kv("openinference.span.kind", s("WORKFLOW")),
            kv("gen_ai.operation.name", s("chat")),
        ],
        |m| {
            m.span.kind = Some(SpanKind::Llm);
            m.span.attributes = object_of(json!({"openinference.span.kind": "WORKFLOW"}));
        },
    );
    // OpenInference wins; the operation name is then an ordinary attribute.
    check_span(
        vec![
            kv("gen_ai.operation.name", s("chat")),
            kv("openinference.span.kind", s("tool")),
        ],
        |m| {
            m.span.kind = Some(SpanKind::Tool);
            m.span.attributes = object_of(json!({"gen_ai.operation.name": "chat"}));
        },
    );
    // An unknown operation is UNKNOWN and stays.
    check_span(vec![kv("gen_ai.operation.name", s("rerank_things"))], |m| {
        m.span.attributes = object_of(json!({"gen_ai.operation.name": "rerank_things"}));
    });
    // A non-string kind stays.
    check_span(vec![kv("openinference.span.kind", int(1))], |m| {
        m.span.attributes = object_of(json!({"openinference.span.kind": 1}));
    });
}

#[test]
fn otel_span_kind_goes_to_attributes() {
    for (code, name) in [
        (1, Some("INTERNAL")),
        (2, Some("SERVER")),
        (3, Some("CLIENT")),
        (4, Some("PRODUCER")),
        (5, Some("CONSUMER")),
        (0, None),
        (99, None),
    ] {
        let span = Span {
            kind: code,
            ..otlp_span(vec![])
        };
        check_one(span, |m| {
            m.span.attributes = name.and_then(|n| object_of(json!({"otel.span_kind": n})))
        });
    }
}

// ---- model, tokens, cost ----

#[test]
fn model_aliases_in_order_on_any_kind() {
    for key in MODEL_KEYS {
        check_span(vec![kv(key, s("gpt-4o"))], |m| {
            m.span.model = Some("gpt-4o".into())
        });
    }
    check_span(
        vec![
            kv("llm.model_name", s("c")),
            kv("gen_ai.request.model", s("b")),
            kv("gen_ai.response.model", s("a")),
        ],
        |m| {
            m.span.model = Some("a".into());
            m.span.attributes =
                object_of(json!({"llm.model_name": "c", "gen_ai.request.model": "b"}));
        },
    );
    check_span(
        vec![
            kv("openinference.span.kind", s("TOOL")),
            kv("gen_ai.request.model", s("b")),
        ],
        |m| {
            m.span.kind = Some(SpanKind::Tool);
            m.span.model = Some("b".into());
        },
    );
}

#[test]
fn model_is_cleaned_and_cut_or_left_in_attributes() {
    check_span(vec![kv("gen_ai.request.model", s(&"m".repeat(200)))], |m| {
        m.span.model = Some("m".repeat(128))
    });
    check_span(vec![kv("gen_ai.request.model", s("gpt\n4"))], |m| {
        m.span.model = Some("gpt 4".into())
    });
    // Unusable first alias: the next one wins and the first stays.
    check_span(
        vec![
            kv("gen_ai.response.model", s("")),
            kv("gen_ai.request.model", s("b")),
        ],
        |m| {
            m.span.model = Some("b".into());
            m.span.attributes = object_of(json!({"gen_ai.response.model": ""}));
        },
    );
    check_span(vec![kv("llm.model_name", int(4))], |m| {
        m.span.attributes = object_of(json!({"llm.model_name": 4}));
    });
}

#[test]
fn input_token_aliases() {
    for key in INPUT_TOKEN_KEYS {
        check_span(vec![llm(), kv(key, int(12))], |m| {
            m.span.kind = Some(SpanKind::Llm);
            m.span.input_tokens = Some(12);
            m.span.total_tokens = Some(12);
        });
    }
}

#[test]
fn output_token_aliases() {
    for key in OUTPUT_TOKEN_KEYS {
        check_span(vec![llm(), kv(key, int(30))], |m| {
            m.span.kind = Some(SpanKind::Llm);
            m.span.output_tokens = Some(30);
            m.span.total_tokens = Some(30);
        });
    }
}

#[test]
fn total_tokens_sent_or_summed_and_breakdowns_never_added() {
    check_span(
        vec![
            llm(),
            kv("llm.token_count.prompt", int(10)),
            kv("llm.token_count.completion", int(5)),
            kv("llm.token_count.total", int(16)),
        ],
        |m| {
            m.span.kind = Some(SpanKind::Llm);
            m.span.input_tokens = Some(10);
            m.span.output_tokens = Some(5);
            m.span.total_tokens = Some(16);
        },
    );
    check_span(
        vec![
            llm(),
            kv("gen_ai.usage.input_tokens", int(100)),
            kv("gen_ai.usage.output_tokens", int(20)),
            kv("gen_ai.usage.cache_read_input_tokens", int(80)),
            kv("llm.token_count.prompt_details.cache_read", int(80)),
            kv("llm.token_count.completion_details.reasoning", int(7)),
        ],
        |m| {
            m.span.kind = Some(SpanKind::Llm);
            m.span.input_tokens = Some(100);
            m.span.output_tokens = Some(20);
            m.span.total_tokens = Some(120);
            m.span.attributes = object_of(json!({
                "gen_ai.usage.cache_read_input_tokens": 80,
                "llm.token_count.prompt_details.cache_read": 80,
                "llm.token_count.completion_details.reasoning": 7,
            }));
        },
    );
}

#[test]
fn token_values_int_integral_double_or_digits_and_clamped() {
    let rows: [(Any, Option<u64>); 9] = [
        (int(7), Some(7)),
        (dbl(7.0), Some(7)),
        (s("7"), Some(7)),
        (int(0), Some(0)),
        (
            int(MAX_TOKENS_PER_SPAN as i64 + 1),
            Some(MAX_TOKENS_PER_SPAN),
        ),
        (dbl(1e30), Some(MAX_TOKENS_PER_SPAN)),
        (int(-1), None),
        (dbl(7.5), None),
        (dbl(f64::NAN), None),
    ];
    for (v, expected) in rows {
        let left = to_json(Some(&v));
        check_span(vec![llm(), kv("gen_ai.usage.input_tokens", v)], |m| {
            m.span.kind = Some(SpanKind::Llm);
            m.span.input_tokens = expected;
            m.span.total_tokens = expected;
            if expected.is_none() {
                m.span.attributes = object_of(json!({ "gen_ai.usage.input_tokens": left }));
            }
        });
    }
    // A bad first alias gives way to the next.
    check_span(
        vec![
            llm(),
            kv("gen_ai.usage.input_tokens", int(-3)),
            kv("llm.token_count.prompt", int(3)),
        ],
        |m| {
            m.span.kind = Some(SpanKind::Llm);
            m.span.input_tokens = Some(3);
            m.span.total_tokens = Some(3);
            m.span.attributes = object_of(json!({"gen_ai.usage.input_tokens": -3}));
        },
    );
    // The sum is clamped too.
    let max = MAX_TOKENS_PER_SPAN as i64;
    check_span(
        vec![
            llm(),
            kv("gen_ai.usage.input_tokens", int(max)),
            kv("gen_ai.usage.output_tokens", int(max)),
        ],
        |m| {
            m.span.kind = Some(SpanKind::Llm);
            m.span.input_tokens = Some(MAX_TOKENS_PER_SPAN);
            m.span.output_tokens = Some(MAX_TOKENS_PER_SPAN);
            m.span.total_tokens = Some(MAX_TOKENS_PER_SPAN);
        },
    );
}

#[test]
fn cost_aliases_and_exact_values() {
    let rows: [(&str, Any, &str); 7] = [
        ("llm.cost.total", dbl(0.1), "0.1"),
        ("gen_ai.usage.cost", dbl(0.1), "0.1"),
        ("llm.cost.total", dbl(1e-7), "0.0000001"),
        ("llm.cost.total", int(3), "3"),
        ("llm.cost.total", s("0.0034"), "0.0034"),
        ("llm.cost.total", s("3.4e-3"), "0.0034"),
        ("llm.cost.total", s("0.1234567890125"), "0.123456789013"),
    ];
    for (key, v, expected) in rows {
        check_span(vec![llm(), kv(key, v)], |m| {
            m.span.kind = Some(SpanKind::Llm);
            m.span.cost = dec(expected);
        });
    }
    // The text is exact too (no binary noise such as 0.1000000000000000055).
    let got = map_request(&request(vec![otlp_span(vec![
        llm(),
        kv("llm.cost.total", dbl(0.1)),
    ])]));
    let cost = got.traces[0].spans[0].span.cost.map(|c| c.to_string());
    assert_eq!(cost.as_deref(), Some("0.1"));
    // llm.cost.total wins over gen_ai.usage.cost.
    check_span(
        vec![
            llm(),
            kv("gen_ai.usage.cost", s("2")),
            kv("llm.cost.total", s("1")),
        ],
        |m| {
            m.span.kind = Some(SpanKind::Llm);
            m.span.cost = dec("1");
            m.span.attributes = object_of(json!({"gen_ai.usage.cost": "2"}));
        },
    );
}

#[test]
fn unusable_costs_stay_in_attributes() {
    let rows: [(Any, Json); 4] = [
        (dbl(-0.5), json!(-0.5)),
        (s("lots"), json!("lots")),
        (int(MAX_SPAN_COST_USD + 1), json!(MAX_SPAN_COST_USD + 1)),
        (dbl(f64::INFINITY), json!("Infinity")),
    ];
    for (v, left) in rows {
        check_span(vec![llm(), kv("llm.cost.total", v)], |m| {
            m.span.kind = Some(SpanKind::Llm);
            m.span.attributes = object_of(json!({ "llm.cost.total": left }));
        });
    }
}

#[test]
fn usage_is_counted_only_on_llm_and_embedding_spans() {
    let usage = || {
        vec![
            kv("gen_ai.usage.input_tokens", int(10)),
            kv("gen_ai.usage.output_tokens", int(5)),
            kv("llm.cost.total", s("0.5")),
        ]
    };
    for kind in [SpanKind::Llm, SpanKind::Embedding] {
        let mut attrs = usage();
        attrs.push(kv("openinference.span.kind", s(kind.as_str())));
        check_span(attrs, |m| {
            m.span.kind = Some(kind);
            m.span.input_tokens = Some(10);
            m.span.output_tokens = Some(5);
            m.span.total_tokens = Some(15);
            m.span.cost = dec("0.5");
        });
    }
    for kind in [
        SpanKind::Chain,
        SpanKind::Agent,
        SpanKind::Tool,
        SpanKind::Unknown,
    ] {
        let mut attrs = usage();
        attrs.push(kv("openinference.span.kind", s(kind.as_str())));
        check_span(attrs, |m| {
            m.span.kind = Some(kind);
            m.span.attributes = object_of(json!({
                "gen_ai.usage.input_tokens": 10,
                "gen_ai.usage.output_tokens": 5,
                "llm.cost.total": "0.5",
            }));
        });
    }
}

// ---- trace attributes and tags ----

#[test]
fn user_and_session_aliases() {
    check_span(vec![kv("user.id", s("u-1"))], |m| {
        m.attrs.user_id = Some("u-1".into())
    });
    check_span(vec![kv("session.id", s("s-1"))], |m| {
        m.attrs.session_id = Some("s-1".into())
    });
    check_span(vec![kv("gen_ai.conversation.id", s("c-1"))], |m| {
        m.attrs.session_id = Some("c-1".into())
    });
    check_span(
        vec![
            kv("gen_ai.conversation.id", s("c-1")),
            kv("session.id", s("s-1")),
        ],
        |m| {
            m.attrs.session_id = Some("s-1".into());
            m.span.attributes = object_of(json!({"gen_ai.conversation.id": "c-1"}));
        },
    );
}

#[test]
fn invalid_user_and_session_ids_stay_in_attributes() {
    check_span(
        vec![
            kv("user.id", s("has space")),
            kv("session.id", s(&"x".repeat(129))),
            kv("gen_ai.conversation.id", s("c-2")),
        ],
        |m| {
            m.attrs.session_id = Some("c-2".into());
            m.span.attributes =
                object_of(json!({"user.id": "has space", "session.id": "x".repeat(129)}));
        },
    );
    check_span(vec![kv("user.id", int(42))], |m| {
        m.span.attributes = object_of(json!({"user.id": 42}));
    });
}

#[test]
fn tags_from_an_array_or_a_json_string() {
    check_span(
        vec![kv("tag.tags", arr(vec![s("a"), s("b"), s("a"), int(3)]))],
        |m| m.tags = vec!["a".into(), "b".into()],
    );
    check_span(vec![kv("tag.tags", s(r#"["x","y"]"#))], |m| {
        m.tags = vec!["x".into(), "y".into()]
    });
    check_span(
        vec![kv("langfuse.trace.tags", arr(vec![s("prod"), s("beta")]))],
        |m| m.tags = vec!["prod".into(), "beta".into()],
    );
    check_span(vec![kv("langfuse.trace.tags", s(r#"["prod"]"#))], |m| {
        m.tags = vec!["prod".into()]
    });
}

#[test]
fn bad_tags_are_dropped_and_non_lists_stay() {
    let long = "t".repeat(MAX_TAG_CHARS + 1);
    check_span(
        vec![kv(
            "tag.tags",
            arr(vec![s(""), s("a,b"), s("c\nd"), s(&long), s("ok")]),
        )],
        |m| m.tags = vec!["ok".into()],
    );
    check_span(vec![kv("tag.tags", s("a,b"))], |m| {
        m.span.attributes = object_of(json!({"tag.tags": "a,b"}));
    });
}

#[test]
fn metadata_from_a_json_object_string() {
    check_span(vec![kv("metadata", s(r#"{ "a": 1, "b": [true] }"#))], |m| {
        m.attrs.metadata = Some(r#"{"a":1,"b":[true]}"#.into())
    });
    for v in [s("[1]"), s("not json"), int(1)] {
        let left = to_json(Some(&v));
        check_span(vec![kv("metadata", v)], |m| {
            m.span.attributes = object_of(json!({ "metadata": left }));
        });
    }
    let big = format!(r#"{{"k":"{}"}}"#, "v".repeat(MAX_METADATA_BYTES));
    check_span(vec![kv("metadata", s(&big))], |m| {
        m.span.attributes = object_of(json!({ "metadata": big }));
    });
}

#[test]
fn service_from_the_resource_and_other_resource_attributes_on_roots_only() {
    let resource = vec![
        kv("service.name", s("chat-api")),
        kv("host.name", s("h1")),
        kv("service.version", s("1.2")),
    ];
    let child = Span {
        span_id: vec![2; 8],
        parent_span_id: SPAN.to_vec(),
        ..otlp_span(vec![])
    };
    let service = Some(r#"{"service.name":"chat-api","service.version":"1.2"}"#.to_string());
    let mut root_m = base(SPAN_HEX);
    root_m.attrs.service = service.clone();
    root_m.span.attributes = object_of(json!({"resource": {"host.name": "h1"}}));
    let mut child_m = base(&"02".repeat(8));
    child_m.span.parent_id = Some(SPAN_HEX.into());
    child_m.attrs.service = service;
    check(
        request_with_resource(resource, vec![otlp_span(vec![]), child]),
        one_trace(vec![root_m, child_m]),
    );
    // Only the name.
    let mut m = base(SPAN_HEX);
    m.attrs.service = Some(r#"{"service.name":"x"}"#.into());
    check(
        request_with_resource(vec![kv("service.name", s("x"))], vec![otlp_span(vec![])]),
        one_trace(vec![m]),
    );
}

// ---- input and output ----

#[test]
fn openinference_values_with_and_without_mime_type() {
    // No mime type: kept as a string even when it is JSON text.
    check_span(
        vec![
            kv("input.value", s(r#"{"q":1}"#)),
            kv("output.value", s("hi")),
        ],
        |m| {
            m.span.input = Some(json!(r#"{"q":1}"#));
            m.span.output = Some(json!("hi"));
        },
    );
    // JSON mime type: parsed, and the mime type is used up.
    check_span(
        vec![
            kv("input.value", s(r#"{"q":1}"#)),
            kv("input.mime_type", s("application/json")),
            kv("output.value", s("[1,2]")),
            kv("output.mime_type", s("Application/JSON; charset=utf-8")),
        ],
        |m| {
            m.span.input = Some(json!({"q": 1}));
            m.span.output = Some(json!([1, 2]));
        },
    );
    // A JSON mime type on text that does not parse, and a text mime type: strings, and the
    // mime types stay.
    check_span(
        vec![
            kv("input.value", s("{oops")),
            kv("input.mime_type", s("application/json")),
            kv("output.value", s("[1]")),
            kv("output.mime_type", s("text/plain")),
        ],
        |m| {
            m.span.input = Some(json!("{oops"));
            m.span.output = Some(json!("[1]"));
            m.span.attributes = object_of(json!({
                "input.mime_type": "application/json",
                "output.mime_type": "text/plain",
            }));
        },
    );
}

#[test]
fn gen_ai_messages_as_any_value_or_json_string() {
    let message = kvlist(vec![kv("role", s("user")), kv("content", s("hi"))]);
    check_span(
        vec![
            kv("gen_ai.input.messages", arr(vec![message])),
            kv("gen_ai.output.messages", s(r#"[{"role":"assistant"}]"#)),
        ],
        |m| {
            m.span.input = Some(json!([{"role": "user", "content": "hi"}]));
            m.span.output = Some(json!([{"role": "assistant"}]));
        },
    );
    check_span(vec![kv("gen_ai.output.messages", s("plain text"))], |m| {
        m.span.output = Some(json!("plain text"))
    });
    // input.value wins; the messages then stay.
    check_span(
        vec![
            kv("gen_ai.input.messages", s("[]")),
            kv("input.value", s("q")),
        ],
        |m| {
            m.span.input = Some(json!("q"));
            m.span.attributes = object_of(json!({"gen_ai.input.messages": "[]"}));
        },
    );
}

#[test]
fn a_payload_over_its_limit_becomes_the_truncation_marker() {
    let big = "é".repeat(MAX_PAYLOAD_BYTES / 2);
    let text = compact(&json!(big));
    assert_eq!(text.len(), MAX_PAYLOAD_BYTES + 2);
    check_span(vec![kv("input.value", s(&big))], |m| {
        m.span.input = Some(json!({
            "truncated": true,
            "bytes": MAX_PAYLOAD_BYTES + 2,
            // The opening quote and 2047 'é' (4095 bytes): the next 'é' would split at 4096.
            "prefix": format!("\"{}", "é".repeat(2047)),
        }));
    });
    // Exactly at the limit it is kept.
    let fits = "x".repeat(MAX_PAYLOAD_BYTES - 2);
    check_span(vec![kv("output.value", s(&fits))], |m| {
        m.span.output = Some(json!(fits))
    });
}

#[test]
fn attributes_over_their_limit_become_the_truncation_marker() {
    let big = "v".repeat(MAX_ATTRIBUTES_BYTES);
    let text = compact(&json!({ "k": big }));
    check_span(vec![kv("k", s(&big))], |m| {
        m.span.attributes = object_of(json!({
            "truncated": true,
            "bytes": text.len(),
            "prefix": text[..TRUNCATED_PREFIX_BYTES],
        }));
    });
}

// ---- attribute values ----

#[test]
fn attribute_values_convert_to_json() {
    let max_exact = 1i64 << 53;
    check_span(
        vec![
            kv("str", s("x")),
            kv("bool", Any::BoolValue(true)),
            kv("double", dbl(1.5)),
            kv("nan", dbl(f64::NAN)),
            kv("inf", dbl(f64::INFINITY)),
            kv("-inf", dbl(f64::NEG_INFINITY)),
            kv("int", int(-42)),
            kv("int.max_exact", int(max_exact)),
            kv("int.big", int(max_exact + 1)),
            kv("int.big_negative", int(-max_exact - 1)),
            kv("int.max", int(i64::MAX)),
            kv("bytes", Any::BytesValue(vec![0xde, 0xad, 0xbe, 0xef, 0x01])),
            kv(
                "nested",
                arr(vec![
                    int(1),
                    arr(vec![s("a")]),
                    kvlist(vec![kv(
                        "k",
                        kvlist(vec![kv("deep", Any::BoolValue(false))]),
                    )]),
                ]),
            ),
            KeyValue {
                key: "empty".into(),
                value: Some(AnyValue { value: None }),
                ..Default::default()
            },
            KeyValue {
                key: "absent".into(),
                value: None,
                ..Default::default()
            },
            kv("str", s("a repeated key: the first wins")),
        ],
        |m| {
            m.span.attributes = object_of(json!({
                "str": "x",
                "bool": true,
                "double": 1.5,
                "nan": "NaN",
                "inf": "Infinity",
                "-inf": "-Infinity",
                "int": -42,
                "int.max_exact": 9007199254740992i64,
                "int.big": "9007199254740993",
                "int.big_negative": "-9007199254740993",
                "int.max": "9223372036854775807",
                "bytes": "3q2+7wE=",
                "nested": [1, ["a"], {"k": {"deep": false}}],
                "empty": null,
                "absent": null,
            }));
        },
    );
}

#[test]
fn events_render_name_time_and_attributes() {
    let span = Span {
        events: vec![
            Event {
                name: "first token".into(),
                time_unix_nano: 1_700_000_000_999_999_999,
                attributes: vec![kv("n", int(1)), kv("b", Any::BytesValue(vec![1, 2]))],
                ..Default::default()
            },
            Event {
                name: String::new(),
                time_unix_nano: 0,
                ..Default::default()
            },
        ],
        ..otlp_span(vec![kv("x", s("y"))])
    };
    check_one(span, |m| {
        m.span.attributes = object_of(json!({
            "x": "y",
            "events": [
                {"name": "first token", "time": "2023-11-14T22:13:20.999Z",
                 "attributes": {"n": 1, "b": "AQI="}},
                {"name": "", "time": "1970-01-01T00:00:00.000Z", "attributes": {}},
            ],
        }));
    });
}

// ---- the JSON encoding ----

/// The same request as `json_request_body`, built as messages.
fn json_equivalent() -> ExportTraceServiceRequest {
    let span = Span {
        trace_id: TRACE.to_vec(),
        span_id: SPAN.to_vec(),
        parent_span_id: vec![0xab; 8],
        name: "chat gpt-4o".into(),
        kind: 3,
        start_time_unix_nano: START_NS,
        end_time_unix_nano: END_NS,
        attributes: vec![
            kv("gen_ai.operation.name", s("chat")),
            kv("gen_ai.usage.input_tokens", int(42)),
            kv("gen_ai.usage.output_tokens", int(7)),
            kv("big", int(9_007_199_254_740_993)),
            kv("llm.cost.total", dbl(0.1)),
        ],
        status: Some(OtelStatus {
            code: 2,
            message: "bad".into(),
        }),
        ..Default::default()
    };
    request_with_resource(vec![kv("service.name", s("svc"))], vec![span])
}

const JSON_BODY: &str = r#"{"resourceSpans":[{
  "resource":{"attributes":[{"key":"service.name","value":{"stringValue":"svc"}}]},
  "scopeSpans":[{"scope":{"name":"s"},"spans":[{
    "traceId":"0102030405060708090A0B0C0D0E0F10",
    "spanId":"A1B2C3D4E5F60718",
    "parentSpanId":"ABABABABABABABAB",
    "name":"chat gpt-4o","kind":3,
    "startTimeUnixNano":"1700000000123456789","endTimeUnixNano":1700000001456999999,
    "attributes":[
      {"key":"gen_ai.operation.name","value":{"stringValue":"chat"}},
      {"key":"gen_ai.usage.input_tokens","value":{"intValue":"42"}},
      {"key":"gen_ai.usage.output_tokens","value":{"intValue":7}},
      {"key":"big","value":{"intValue":"9007199254740993"}},
      {"key":"llm.cost.total","value":{"doubleValue":0.1}}
    ],
    "status":{"code":2,"message":"bad"}
  }]}]
}]}"#;

#[test]
fn a_json_request_maps_like_the_same_protobuf_request() {
    let decoded = OtlpRequest::decode(JSON_BODY.as_bytes(), OtlpEncoding::Json).expect("decodes");
    let mut expected = base(SPAN_HEX);
    expected.span.parent_id = Some("abababababababab".into());
    expected.span.name = Some("chat gpt-4o".into());
    expected.span.kind = Some(SpanKind::Llm);
    expected.span.status = Some(Status::Error);
    expected.span.status_message = Some("bad".into());
    expected.span.input_tokens = Some(42);
    expected.span.output_tokens = Some(7);
    expected.span.total_tokens = Some(49);
    expected.span.cost = dec("0.1");
    expected.span.attributes =
        object_of(json!({"big": "9007199254740993", "otel.span_kind": "CLIENT"}));
    expected.attrs.service = Some(r#"{"service.name":"svc"}"#.into());
    let expected = one_trace(vec![expected]);
    check(decoded.message.clone(), expected.clone());
    check(json_equivalent(), expected);
    // And through the protobuf wire.
    let proto = OtlpRequest::from_message(json_equivalent()).to_protobuf();
    let decoded = OtlpRequest::decode(&proto, OtlpEncoding::Protobuf).expect("decodes");
    assert_eq!(
        map_request(&decoded.message),
        map_request(&json_equivalent())
    );
}

/// What opentelemetry-proto's JSON reader does with odd ids: a string that is not hex (or has
/// an odd length) fails the whole body; valid hex of the wrong length, or an empty string,
/// decodes and the span is rejected here.
#[test]
fn json_ids_that_decode_wrong_are_rejected_spans_and_bad_hex_fails_the_body() {
    let body = |trace: &str, span: &str| {
        format!(
            r#"{{"resourceSpans":[{{"scopeSpans":[{{"spans":[
                {{"traceId":"{trace}","spanId":"{span}","name":"x","startTimeUnixNano":"1"}},
                {{"traceId":"{TRACE_HEX}","spanId":"{SPAN_HEX}","name":"ok"}}]}}]}}]}}"#
        )
    };
    let mapped = |trace: &str, span: &str| {
        OtlpRequest::decode(body(trace, span).as_bytes(), OtlpEncoding::Json)
            .map(|r| {
                let m = map_request(&r.message);
                (m.rejected_spans, m.traces.len())
            })
            .ok()
    };
    assert_eq!(mapped("", SPAN_HEX), Some((1, 1)));
    assert_eq!(mapped(&"00".repeat(16), SPAN_HEX), Some((1, 1)));
    assert_eq!(mapped(&"ab".repeat(15), SPAN_HEX), Some((1, 1)));
    assert_eq!(mapped(TRACE_HEX, ""), Some((1, 1)));
    assert_eq!(mapped(TRACE_HEX, &"ab".repeat(9)), Some((1, 1)));
    // The same ids as the good span, in upper case: one span, sent twice.
    assert_eq!(
        mapped(&TRACE_HEX.to_uppercase(), &SPAN_HEX.to_uppercase()),
        Some((0, 1))
    );
    assert_eq!(mapped("zz".repeat(16).as_str(), SPAN_HEX), None);
    assert_eq!(mapped(&"a".repeat(31), SPAN_HEX), None);
    assert_eq!(mapped(TRACE_HEX, "a1b2c3d4e5f6071"), None);
}

/// The fuzz seeds are valid requests: the first byte picks the encoding (even: protobuf, odd:
/// JSON), the rest is the body.
#[test]
fn fuzz_seeds_decode_and_map() {
    let seeds: [&[u8]; 2] = [
        include_bytes!("../../fuzz/corpus/otlp/protobuf"),
        include_bytes!("../../fuzz/corpus/otlp/json"),
    ];
    for seed in seeds {
        let (first, body) = seed.split_first().expect("a seed has an encoding byte");
        let encoding = if first % 2 == 0 {
            OtlpEncoding::Protobuf
        } else {
            OtlpEncoding::Json
        };
        let r = OtlpRequest::decode(body, encoding).expect("a seed decodes");
        let m = map_request(&r.message);
        assert_eq!((m.rejected_spans, m.traces.len()), (0, 1));
        assert_eq!(m.traces[0].spans.len(), 1);
    }
}

/// Random byte changes to the protobuf seed: whatever still decodes maps to spans that pass
/// validation and the limits (and nothing panics).
#[test]
fn mutated_requests_map_to_valid_spans() {
    let seed = include_bytes!("../../fuzz/corpus/otlp/protobuf");
    let body = &seed[1..];
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut decoded = 0;
    for _ in 0..3000 {
        let mut bytes = body.to_vec();
        for _ in 0..(next() % 4 + 1) {
            let i = (next() % bytes.len() as u64) as usize;
            bytes[i] = next() as u8;
        }
        if let Ok(r) = OtlpRequest::decode(&bytes, OtlpEncoding::Protobuf) {
            decoded += 1;
            assert_valid(&map_request(&r.message));
        }
    }
    assert!(decoded > 100, "only {decoded} mutations decoded");
}

/// The attribute writer gives the text `serde_json` gives for the `Value` that `object` builds,
/// byte for byte, on random values: nested arrays and kvlists, repeated keys, escapes and
/// non-ASCII text, doubles of every kind, ints on both sides of 2^53, bytes, empty values.
#[test]
fn attribute_text_is_serde_json_text_of_the_value() {
    let mut state: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    const KEYS: [&str; 7] = ["a", "b", "é", "a.b", "\"q\"", "", "Z"];
    const STRS: [&str; 6] = ["x", "line\nbreak", "tab\t\u{1}", "ünï", "\\", ""];
    const DOUBLES: [f64; 9] = [
        0.0,
        -0.0,
        1.5,
        1e300,
        -2.5e-8,
        f64::NAN,
        f64::INFINITY,
        f64::NEG_INFINITY,
        0.1,
    ];
    fn value(next: &mut impl FnMut() -> u64, depth: u32) -> Option<Any> {
        let pick = |n: u64, next: &mut dyn FnMut() -> u64| (next() % n) as usize;
        Some(match next() % if depth > 2 { 6 } else { 8 } {
            0 => return None,
            1 => s(STRS[pick(STRS.len() as u64, next)]),
            2 => Any::BoolValue(next().is_multiple_of(2)),
            3 => dbl(DOUBLES[pick(DOUBLES.len() as u64, next)]),
            4 => int([
                0,
                -1,
                1 << 53,
                (1 << 53) + 1,
                -(1 << 53) - 1,
                i64::MIN,
                i64::MAX,
            ][pick(7, next)]),
            5 => Any::BytesValue((0..next() % 5).map(|b| b as u8 * 61).collect()),
            6 => Any::ArrayValue(ArrayValue {
                values: (0..next() % 4)
                    .map(|_| AnyValue {
                        value: value(next, depth + 1),
                    })
                    .collect(),
            }),
            _ => kvlist(kvs(next, depth + 1)),
        })
    }
    fn kvs(next: &mut impl FnMut() -> u64, depth: u32) -> Vec<KeyValue> {
        (0..next() % 6)
            .map(|_| KeyValue {
                key: KEYS[(next() % KEYS.len() as u64) as usize].into(),
                value: (!next().is_multiple_of(5)).then(|| AnyValue {
                    value: value(next, depth),
                }),
                ..Default::default()
            })
            .collect()
    }
    for _ in 0..2000 {
        let kvs = kvs(&mut next, 0);
        let want = compact(&Json::Object(object(&kvs)));
        assert_eq!(compact_of(&Object::of_kvs(&kvs), 0), want);
        for kv in &kvs {
            let v = inner(kv);
            assert_eq!(compact_of(&AnyJson(v), 0), compact(&to_json(v)));
        }
    }
}
