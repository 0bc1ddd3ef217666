//! OTLP data for the report's OTLP ingest rows: synthetic agent traces as an OpenInference /
//! GenAI-instrumented service would export them, encoded as `ExportTraceServiceRequest`s of 512
//! spans (the SDK batch processor's default batch) in protobuf, JSON and gzip-compressed
//! protobuf; the same traces as tracestore's own JSON ingest bodies for comparison; and the timed
//! ingest of either into a fresh file-backed store with default (durable) settings.
//!
//! A trace has 6–10 spans: an AGENT root and LLM and TOOL children that alternate, run one after
//! the other, and end with the LLM call that answers. A batch processor exports a span when it
//! ends, so a trace's children come before its root, and the spans of one trace may be split
//! across two requests.

use super::payload::{text_about, Rng};
use super::PROJECT;
use flate2::read::GzDecoder;
use flate2::write::GzEncoder;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as Any;
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind as OtelKind;
use opentelemetry_proto::tonic::trace::v1::status::StatusCode;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};
use prost::Message;
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::path::Path;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tracestore::{OtlpEncoding, OtlpRequest, Store, Timestamp};

/// Spans per request: the OpenTelemetry SDK batch span processor's default export batch.
pub const OTLP_BATCH_SPANS: usize = 512;

/// Concurrent exporters in the report's concurrent OTLP row.
pub const OTLP_CLIENTS: usize = 8;

/// 2026-03-01T00:00:00Z in nanoseconds: where the synthetic traces start.
const BASE_NS: u64 = 1_772_323_200_000_000_000;

const MODELS: [&str; 3] = ["gpt-4o", "gpt-4o-mini", "claude-sonnet"];
const TOOLS: [&str; 4] = ["search_orders", "kb_lookup", "refund_status", "web_search"];

/// What a synthetic span is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Agent,
    Llm,
    Tool,
}

/// One synthetic span, engine-independent.
struct SynthSpan {
    id: [u8; 8],
    parent: Option<[u8; 8]>,
    name: String,
    kind: Kind,
    start_ns: u64,
    end_ns: u64,
    model: Option<&'static str>,
    tokens: Option<(i64, i64)>,
    /// `input.value`: JSON text when `input_json`, else plain text.
    input: String,
    input_json: bool,
    output: String,
    error: Option<String>,
}

/// One synthetic trace; `spans` in export order (children by end time, the root last).
pub struct SynthTrace {
    id: [u8; 16],
    user: String,
    session: String,
    spans: Vec<SynthSpan>,
}

impl SynthTrace {
    /// The trace id as the store names it (lower-case hex).
    pub fn id_hex(&self) -> String {
        hex(&self.id)
    }
    pub fn span_count(&self) -> usize {
        self.spans.len()
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|b| format!("{b:02x}")).collect()
}

/// Deterministic synthetic traces holding at least `spans` spans in all.
pub fn synth_traces(spans: usize, seed: u64) -> Vec<SynthTrace> {
    let mut r = Rng(seed ^ 0x6f74_6c70_7370_616e);
    let mut out = Vec::new();
    let mut total = 0;
    let mut i = 0u64;
    while total < spans {
        let t = synth_trace(&mut r, i);
        total += t.spans.len();
        out.push(t);
        i += 1;
    }
    out
}

fn synth_trace(r: &mut Rng, i: u64) -> SynthTrace {
    let mut id = [0u8; 16];
    id[..8].copy_from_slice(&r.next_u64().to_be_bytes());
    id[8..].copy_from_slice(&(i + 1).to_be_bytes());
    let mut next_span = {
        let mut n = 0u64;
        move || {
            n += 1;
            let mut s = [0u8; 8];
            s[..4].copy_from_slice(&((i as u32) ^ 0x5eed_0000).to_be_bytes());
            s[4..].copy_from_slice(&(n as u32).to_be_bytes());
            s
        }
    };
    let root_id = next_span();
    let start = BASE_NS + i * 2_000_000_000 + r.below(1_000_000_000);
    let children = 5 + r.below(5) as usize; // 6–10 spans with the root
    let question = text_about(r, 150, 250);
    let mut spans = Vec::with_capacity(children + 1);
    let mut t = start + 1_000_000 + r.below(5_000_000);
    for c in 0..children {
        let kind = if c % 2 == 1 && c + 1 < children {
            Kind::Tool
        } else {
            Kind::Llm
        };
        let dur = match kind {
            Kind::Llm => 300_000_000 + r.below(2_500_000_000),
            _ => 20_000_000 + r.below(400_000_000),
        };
        let span = match kind {
            Kind::Llm => {
                let prompt = text_about(r, 200, 300);
                let input = json!({"messages": [
                    {"role": "system", "content": "You are a support agent."},
                    {"role": "user", "content": prompt},
                ]})
                .to_string();
                SynthSpan {
                    id: next_span(),
                    parent: Some(root_id),
                    name: "ChatCompletion".into(),
                    kind,
                    start_ns: t,
                    end_ns: t + dur,
                    model: Some(MODELS[r.below(MODELS.len() as u64) as usize]),
                    tokens: Some((50 + r.below(4000) as i64, 10 + r.below(800) as i64)),
                    input,
                    input_json: true,
                    output: text_about(r, 150, 300),
                    error: None,
                }
            }
            _ => {
                let tool = TOOLS[r.below(TOOLS.len() as u64) as usize];
                let input = json!({"query": text_about(r, 40, 80), "top_k": 5}).to_string();
                let failed = r.below(50) == 0;
                SynthSpan {
                    id: next_span(),
                    parent: Some(root_id),
                    name: tool.into(),
                    kind,
                    start_ns: t,
                    end_ns: t + dur,
                    model: None,
                    tokens: None,
                    input,
                    input_json: true,
                    output: text_about(r, 150, 350),
                    error: failed.then(|| "tool timed out after 30 s".to_string()),
                }
            }
        };
        spans.push(span);
        t += dur + r.below(20_000_000);
    }
    spans.push(SynthSpan {
        id: root_id,
        parent: None,
        name: "support-agent".into(),
        kind: Kind::Agent,
        start_ns: start,
        end_ns: t + 1_000_000,
        model: None,
        tokens: None,
        input: question,
        input_json: false,
        output: text_about(r, 200, 300),
        error: None,
    });
    SynthTrace {
        id,
        user: format!("u{}", r.below(5000)),
        session: format!("sess-{}", r.below(20_000)),
        spans,
    }
}

fn kv(key: &str, v: Any) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue { value: Some(v) }),
        ..Default::default()
    }
}

fn kv_str(key: &str, v: &str) -> KeyValue {
    kv(key, Any::StringValue(v.into()))
}

fn otlp_span(t: &SynthTrace, s: &SynthSpan) -> Span {
    let kind_name = match s.kind {
        Kind::Agent => "AGENT",
        Kind::Llm => "LLM",
        Kind::Tool => "TOOL",
    };
    let mime = |json| {
        if json {
            "application/json"
        } else {
            "text/plain"
        }
    };
    let mut attributes = vec![
        kv_str("openinference.span.kind", kind_name),
        kv_str("input.value", &s.input),
        kv_str("input.mime_type", mime(s.input_json)),
        kv_str("output.value", &s.output),
        kv_str("output.mime_type", "text/plain"),
    ];
    match s.kind {
        Kind::Agent => {
            attributes.push(kv_str("user.id", &t.user));
            attributes.push(kv_str("session.id", &t.session));
        }
        Kind::Llm => {
            attributes.push(kv_str("gen_ai.system", "openai"));
            attributes.push(kv_str("gen_ai.request.model", s.model.unwrap_or_default()));
            let (i, o) = s.tokens.unwrap_or_default();
            attributes.push(kv("gen_ai.usage.input_tokens", Any::IntValue(i)));
            attributes.push(kv("gen_ai.usage.output_tokens", Any::IntValue(o)));
            attributes.push(kv(
                "llm.invocation_parameters.temperature",
                Any::DoubleValue(0.2),
            ));
        }
        Kind::Tool => attributes.push(kv_str("tool.name", &s.name)),
    }
    let status = match &s.error {
        Some(m) => Status {
            message: m.clone(),
            code: StatusCode::Error as i32,
        },
        None => Status {
            message: String::new(),
            code: StatusCode::Ok as i32,
        },
    };
    Span {
        trace_id: t.id.to_vec(),
        span_id: s.id.to_vec(),
        parent_span_id: s.parent.map_or_else(Vec::new, |p| p.to_vec()),
        name: s.name.clone(),
        kind: match s.kind {
            Kind::Llm => OtelKind::Client,
            _ => OtelKind::Internal,
        } as i32,
        start_time_unix_nano: s.start_ns,
        end_time_unix_nano: s.end_ns,
        attributes,
        status: Some(status),
        ..Default::default()
    }
}

/// The traces' spans in export order, `per_request` spans per request, under one resource and
/// one instrumentation scope.
pub fn otlp_requests(traces: &[SynthTrace], per_request: usize) -> Vec<ExportTraceServiceRequest> {
    let spans: Vec<Span> = traces
        .iter()
        .flat_map(|t| t.spans.iter().map(move |s| otlp_span(t, s)))
        .collect();
    let resource = Resource {
        attributes: vec![
            kv_str("service.name", "support-agent"),
            kv_str("service.version", "1.4.2"),
            kv_str("deployment.environment", "prod"),
            kv_str("telemetry.sdk.name", "opentelemetry"),
            kv_str("telemetry.sdk.language", "python"),
            kv_str("telemetry.sdk.version", "1.27.0"),
        ],
        ..Default::default()
    };
    spans
        .chunks(per_request)
        .map(|chunk| ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                resource: Some(resource.clone()),
                scope_spans: vec![ScopeSpans {
                    scope: Some(InstrumentationScope {
                        name: "openinference.instrumentation.openai".into(),
                        version: "0.1.18".into(),
                        ..Default::default()
                    }),
                    spans: chunk.to_vec(),
                    ..Default::default()
                }],
                ..Default::default()
            }],
        })
        .collect()
}

/// How a body is encoded on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wire {
    Protobuf,
    Json,
    /// Protobuf with `Content-Encoding: gzip`.
    GzipProtobuf,
}

impl Wire {
    pub fn label(self) -> &'static str {
        match self {
            Wire::Protobuf => "protobuf",
            Wire::Json => "JSON",
            Wire::GzipProtobuf => "gzip protobuf",
        }
    }
    /// The report's JSON key of this encoding's ingest row.
    pub fn key(self) -> &'static str {
        match self {
            Wire::Protobuf => "otlp.protobuf",
            Wire::Json => "otlp.json",
            Wire::GzipProtobuf => "otlp.gzip_protobuf",
        }
    }
}

/// Encodes every request for `wire` (gzip at flate2's default level, as SDK exporters do).
pub fn encode(requests: &[ExportTraceServiceRequest], wire: Wire) -> Vec<Vec<u8>> {
    requests
        .iter()
        .map(|r| match wire {
            Wire::Protobuf => r.encode_to_vec(),
            Wire::Json => serde_json::to_vec(r).expect("OTLP JSON"),
            Wire::GzipProtobuf => {
                let mut e = GzEncoder::new(Vec::new(), flate2::Compression::default());
                e.write_all(&r.encode_to_vec()).expect("gzip");
                e.finish().expect("gzip")
            }
        })
        .collect()
}

fn ts(ns: u64) -> String {
    Timestamp::from_millis((ns / 1_000_000) as i64)
        .expect("timestamp")
        .to_string()
}

/// The same traces as tracestore's own ingest bodies (`{"traces": [...]}`), whole traces of about
/// `spans_per_body` spans each: roughly the fields the OTLP mapping fills.
pub fn json_bodies(traces: &[SynthTrace], spans_per_body: usize) -> Vec<Vec<u8>> {
    let mut bodies = Vec::new();
    let mut items: Vec<Value> = Vec::new();
    let mut spans_in = 0;
    for t in traces {
        let root = t.spans.last().expect("root");
        let spans: Vec<Value> = t
            .spans
            .iter()
            .map(|s| {
                let input: Value = if s.input_json {
                    serde_json::from_str(&s.input).expect("json input")
                } else {
                    Value::String(s.input.clone())
                };
                let mut v = json!({
                    "id": hex(&s.id),
                    "name": s.name,
                    "kind": match s.kind { Kind::Agent => "AGENT", Kind::Llm => "LLM", Kind::Tool => "TOOL" },
                    "status": if s.error.is_some() { "ERROR" } else { "OK" },
                    "startTime": ts(s.start_ns),
                    "endTime": ts(s.end_ns),
                    "input": input,
                    "output": s.output,
                });
                let o = v.as_object_mut().unwrap();
                if let Some(p) = s.parent {
                    o.insert("parentId".into(), json!(hex(&p)));
                }
                if let Some(m) = &s.error {
                    o.insert("statusMessage".into(), json!(m));
                }
                if let (Some(m), Some((i, out))) = (s.model, s.tokens) {
                    o.insert("model".into(), json!(m));
                    o.insert("inputTokens".into(), json!(i));
                    o.insert("outputTokens".into(), json!(out));
                    o.insert(
                        "attributes".into(),
                        json!({"gen_ai.system": "openai", "llm.invocation_parameters.temperature": 0.2}),
                    );
                }
                v
            })
            .collect();
        items.push(json!({
            "id": t.id_hex(),
            "name": root.name,
            "startTime": ts(root.start_ns),
            "endTime": ts(root.end_ns),
            "userId": t.user,
            "sessionId": t.session,
            "input": root.input,
            "output": root.output,
            "spans": spans,
        }));
        spans_in += t.spans.len();
        if spans_in >= spans_per_body {
            bodies.push(serde_json::to_vec(&json!({ "traces": items })).unwrap());
            items = Vec::new();
            spans_in = 0;
        }
    }
    if !items.is_empty() {
        bodies.push(serde_json::to_vec(&json!({ "traces": items })).unwrap());
    }
    bodies
}

/// What a timed ingest run did.
pub struct IngestRun {
    pub spans: u64,
    pub rejected: u64,
    pub secs: f64,
    pub requests: usize,
    pub body_bytes: u64,
}

impl IngestRun {
    pub fn spans_per_sec(&self) -> f64 {
        self.spans as f64 / self.secs
    }
}

/// Opens a fresh store at `path` with default settings (durable: `Durability::Immediate`).
pub fn fresh_store(path: &Path) -> Store {
    Store::open(path).expect("open store")
}

/// Ingests every OTLP body into `store` as the server would: gunzip (for gzip), decode and
/// `ingest_otlp`, all timed, one durable transaction per request. `spans` counts the spans
/// the store accepted.
pub fn ingest_otlp_bodies(store: &Store, bodies: &[Vec<u8>], wire: Wire) -> IngestRun {
    let encoding = match wire {
        Wire::Json => OtlpEncoding::Json,
        _ => OtlpEncoding::Protobuf,
    };
    let mut took = Duration::ZERO;
    let (mut spans, mut rejected, mut bytes) = (0u64, 0u64, 0u64);
    let mut inflated = Vec::new();
    for body in bodies {
        bytes += body.len() as u64;
        let t = Instant::now();
        let raw: &[u8] = if wire == Wire::GzipProtobuf {
            inflated.clear();
            GzDecoder::new(body.as_slice())
                .read_to_end(&mut inflated)
                .expect("gunzip");
            &inflated
        } else {
            body
        };
        let request = OtlpRequest::decode(raw, encoding).expect("decode OTLP");
        let outcome = store.ingest_otlp(PROJECT, &request).expect("ingest_otlp");
        took += t.elapsed();
        spans += outcome.accepted_spans;
        rejected += outcome.rejected_spans;
    }
    IngestRun {
        spans,
        rejected,
        secs: took.as_secs_f64(),
        requests: bodies.len(),
        body_bytes: bytes,
    }
}

/// Ingests every protobuf body as `clients` concurrent exporters would (a server that many
/// instrumented processes export to): each client thread takes the next body, decodes it and
/// calls `ingest_otlp`, durable. Timed on the wall clock from the start to the last answer;
/// concurrent requests share commits (group commit), which one client never does.
pub fn ingest_otlp_concurrent(store: &Store, bodies: &[Vec<u8>], clients: usize) -> IngestRun {
    let next = AtomicUsize::new(0);
    let spans = AtomicU64::new(0);
    let rejected = AtomicU64::new(0);
    let t = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..clients {
            s.spawn(|| {
                while let Some(body) = bodies.get(next.fetch_add(1, Ordering::Relaxed)) {
                    let request =
                        OtlpRequest::decode(body, OtlpEncoding::Protobuf).expect("decode OTLP");
                    let outcome = store.ingest_otlp(PROJECT, &request).expect("ingest_otlp");
                    spans.fetch_add(outcome.accepted_spans, Ordering::Relaxed);
                    rejected.fetch_add(outcome.rejected_spans, Ordering::Relaxed);
                }
            });
        }
    });
    IngestRun {
        spans: spans.into_inner(),
        rejected: rejected.into_inner(),
        secs: t.elapsed().as_secs_f64(),
        requests: bodies.len(),
        body_bytes: bodies.iter().map(|b| b.len() as u64).sum(),
    }
}

/// Ingests every tracestore JSON body with `ingest_json`, timed, one durable transaction each.
pub fn ingest_json_bodies(store: &Store, bodies: &[Vec<u8>]) -> IngestRun {
    let mut took = Duration::ZERO;
    let (mut spans, mut bytes) = (0u64, 0u64);
    for body in bodies {
        bytes += body.len() as u64;
        let t = Instant::now();
        let s = store.ingest_json(PROJECT, body).expect("ingest_json");
        took += t.elapsed();
        spans += s.spans as u64;
    }
    IngestRun {
        spans,
        rejected: 0,
        secs: took.as_secs_f64(),
        requests: bodies.len(),
        body_bytes: bytes,
    }
}

/// Checks that the store holds `traces` as sent: every sampled trace with all its spans (reads
/// the tree, no payloads). Returns a description of the first difference.
pub fn check_stored(store: &Store, traces: &[SynthTrace]) -> Result<(), String> {
    let step = (traces.len() / 50).max(1);
    for t in traces.iter().step_by(step) {
        let d = store
            .get_trace_tree(PROJECT, &t.id_hex())
            .map_err(|e| format!("trace {} not readable after ingest: {e}", t.id_hex()))?;
        if d.spans.len() != t.spans.len() {
            return Err(format!(
                "trace {} has {} spans stored, {} sent",
                t.id_hex(),
                d.spans.len(),
                t.spans.len()
            ));
        }
    }
    Ok(())
}
