//! The OTLP/HTTP receiver, `POST /v1/traces`, over real HTTP: both encodings, gzip, the limits
//! (after decompression, counted as the body streams in), authentication, the Status bodies of
//! failures, the second listener of `serve --otlp-addr`.
//!
//! Tests named `acceptance_*` assert what was stored; they need the OTLP mapping and storage
//! behind `Store::ingest_otlp` and fail until those are in.

mod common;

use common::{key, memory_store, TestServer};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use prost::Message;
use reqwest::header::HeaderMap;
use serde_json::{json, Value};
use std::io::Write;
use std::time::Duration;
use tracestore::limits::{MAX_OTLP_BYTES, MAX_OTLP_SPANS};
use tracestore_server::ServerConfig;

const PB: &str = "application/x-protobuf";
const JSON: &str = "application/json";
/// 2026-03-14T10:00:00Z in Unix nanoseconds.
const T0: u64 = 1_773_482_400 * 1_000_000_000;
const MS: u64 = 1_000_000;

/// `google.rpc.Status` (code and message; details are never sent).
#[derive(Clone, PartialEq, prost::Message)]
struct RpcStatus {
    #[prost(int32, tag = "1")]
    code: i32,
    #[prost(string, tag = "2")]
    message: String,
}

/// One answer: status, headers and the raw body.
#[derive(Debug)]
struct Answer {
    status: u16,
    headers: HeaderMap,
    body: Vec<u8>,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
    fn content_type(&self) -> &str {
        self.header("content-type").unwrap_or_default()
    }
    fn json(&self) -> Value {
        assert_eq!(self.content_type(), JSON, "{self:?}");
        serde_json::from_slice(&self.body).expect("a JSON body")
    }
    /// The `google.rpc.Status` of a failure, decoded by its content type.
    fn rpc_status(&self) -> (i32, String) {
        match self.content_type() {
            PB => {
                let s = RpcStatus::decode(&self.body[..]).expect("a protobuf Status");
                (s.code, s.message)
            }
            JSON => {
                let v = self.json();
                let code = v["code"].as_i64().expect("code") as i32;
                let message = v["message"].as_str().expect("message").to_string();
                (code, message)
            }
            other => panic!("unexpected content type {other:?}: {self:?}"),
        }
    }
    /// `partialSuccess.rejectedSpans` of a 200 (0 when there is no partialSuccess).
    fn rejected_spans(&self) -> i64 {
        assert_eq!(self.status, 200, "{self:?}");
        match self.content_type() {
            PB => ExportTraceServiceResponse::decode(&self.body[..])
                .expect("an ExportTraceServiceResponse")
                .partial_success
                .map(|p| p.rejected_spans)
                .unwrap_or(0),
            JSON => {
                let v = self.json();
                match &v["partialSuccess"]["rejectedSpans"] {
                    Value::Null => 0,
                    Value::String(s) => s.parse().expect("an int64 string"),
                    n => n.as_i64().expect("a number"),
                }
            }
            other => panic!("unexpected content type {other:?}"),
        }
    }
}

/// POSTs `body` to `/v1/traces` at `base`.
async fn export_to(
    client: &reqwest::Client,
    base: &str,
    key: Option<&str>,
    content_type: Option<&str>,
    content_encoding: Option<&str>,
    body: Vec<u8>,
) -> Answer {
    let mut req = client.post(format!("{base}/v1/traces")).body(body);
    if let Some(k) = key {
        req = req.bearer_auth(k);
    }
    if let Some(t) = content_type {
        req = req.header("content-type", t);
    }
    if let Some(e) = content_encoding {
        req = req.header("content-encoding", e);
    }
    let res = req.send().await.expect("answered");
    Answer {
        status: res.status().as_u16(),
        headers: res.headers().clone(),
        body: res.bytes().await.expect("body").to_vec(),
    }
}

async fn export(
    server: &TestServer,
    key: Option<&str>,
    content_type: Option<&str>,
    content_encoding: Option<&str>,
    body: Vec<u8>,
) -> Answer {
    export_to(
        &server.client,
        &server.base,
        key,
        content_type,
        content_encoding,
        body,
    )
    .await
}

fn s(k: &str, v: &str) -> KeyValue {
    KeyValue {
        key: k.to_string(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(v.to_string())),
        }),
        ..Default::default()
    }
}

fn i(k: &str, v: i64) -> KeyValue {
    KeyValue {
        key: k.to_string(),
        value: Some(AnyValue {
            value: Some(any_value::Value::IntValue(v)),
        }),
        ..Default::default()
    }
}

/// A span of trace `trace`, id `id`, child of `parent`, from `start_ms` to `end_ms` after T0.
fn span(
    trace: u128,
    id: u64,
    parent: Option<u64>,
    name: &str,
    (start_ms, end_ms): (u64, u64),
    attributes: Vec<KeyValue>,
) -> Span {
    Span {
        trace_id: trace.to_be_bytes().to_vec(),
        span_id: id.to_be_bytes().to_vec(),
        parent_span_id: parent.map(|p| p.to_be_bytes().to_vec()).unwrap_or_default(),
        name: name.to_string(),
        kind: 1,
        start_time_unix_nano: T0 + start_ms * MS,
        end_time_unix_nano: T0 + end_ms * MS,
        attributes,
        ..Default::default()
    }
}

/// One resource (`service.name` = `otlp-test`), one scope, these spans.
fn request(spans: Vec<Span>) -> ExportTraceServiceRequest {
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![s("service.name", "otlp-test")],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                scope: Some(InstrumentationScope {
                    name: "tracestore-tests".to_string(),
                    ..Default::default()
                }),
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

fn pb(req: &ExportTraceServiceRequest) -> Vec<u8> {
    req.encode_to_vec()
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).expect("gzip");
    e.finish().expect("gzip")
}

fn hex_trace(t: u128) -> String {
    format!("{t:032x}")
}

fn hex_span(s: u64) -> String {
    format!("{s:016x}")
}

/// An agent root with an LLM child and a tool child.
fn agent_trace(trace: u128) -> ExportTraceServiceRequest {
    request(vec![
        span(
            trace,
            1,
            None,
            "support-agent",
            (0, 900),
            vec![
                s("openinference.span.kind", "AGENT"),
                s("input.value", "where is my order?"),
                s("output.value", "it ships tomorrow"),
                s("user.id", "user-7"),
                s("session.id", "session-3"),
            ],
        ),
        span(
            trace,
            2,
            Some(1),
            "chat gpt-4o",
            (100, 600),
            vec![
                s("openinference.span.kind", "LLM"),
                s("gen_ai.request.model", "gpt-4o"),
                i("gen_ai.usage.input_tokens", 120),
                i("gen_ai.usage.output_tokens", 30),
            ],
        ),
        span(
            trace,
            3,
            Some(1),
            "lookup-order",
            (650, 800),
            vec![s("openinference.span.kind", "TOOL")],
        ),
    ])
}

/// [`agent_trace`] as an exporter writes OTLP/JSON by hand: hex ids, int64 as strings.
fn agent_trace_json(trace: u128) -> Vec<u8> {
    let t = hex_trace(trace);
    let ns = |ms: u64| (T0 + ms * MS).to_string();
    let sv = |k: &str, v: &str| json!({"key": k, "value": {"stringValue": v}});
    let iv = |k: &str, v: i64| json!({"key": k, "value": {"intValue": v.to_string()}});
    json!({
        "resourceSpans": [{
            "resource": {"attributes": [sv("service.name", "otlp-test")]},
            "scopeSpans": [{
                "scope": {"name": "tracestore-tests"},
                "spans": [
                    {
                        "traceId": t, "spanId": hex_span(1), "name": "support-agent", "kind": 1,
                        "startTimeUnixNano": ns(0), "endTimeUnixNano": ns(900),
                        "attributes": [
                            sv("openinference.span.kind", "AGENT"),
                            sv("input.value", "where is my order?"),
                            sv("output.value", "it ships tomorrow"),
                            sv("user.id", "user-7"),
                            sv("session.id", "session-3"),
                        ]
                    },
                    {
                        "traceId": t, "spanId": hex_span(2), "parentSpanId": hex_span(1),
                        "name": "chat gpt-4o", "kind": 1,
                        "startTimeUnixNano": ns(100), "endTimeUnixNano": ns(600),
                        "attributes": [
                            sv("openinference.span.kind", "LLM"),
                            sv("gen_ai.request.model", "gpt-4o"),
                            iv("gen_ai.usage.input_tokens", 120),
                            iv("gen_ai.usage.output_tokens", 30),
                        ]
                    },
                    {
                        "traceId": t, "spanId": hex_span(3), "parentSpanId": hex_span(1),
                        "name": "lookup-order", "kind": 1,
                        "startTimeUnixNano": ns(650), "endTimeUnixNano": ns(800),
                        "attributes": [sv("openinference.span.kind", "TOOL")]
                    }
                ]
            }]
        }]
    })
    .to_string()
    .into_bytes()
}

async fn start() -> (TestServer, String, std::sync::Arc<tracestore::Store>) {
    let store = memory_store();
    let k = key(&store, "acme");
    (TestServer::start(store.clone()).await, k, store)
}

/// The stored trace's `data`, via `GET /api/v1/traces/{id}`.
async fn stored(server: &TestServer, key: &str, trace: u128) -> Value {
    let r = server
        .get(&format!("/api/v1/traces/{}", hex_trace(trace)), Some(key))
        .await;
    r.data().clone()
}

fn span_by_id(trace: &Value, id: u64) -> &Value {
    let want = hex_span(id);
    trace["spans"]
        .as_array()
        .expect("spans")
        .iter()
        .find(|s| s["id"] == want.as_str())
        .unwrap_or_else(|| panic!("span {want} in {trace:#}"))
}

// ---- transport: these pass on the transport layer alone ----

#[tokio::test]
async fn protobuf_and_json_requests_are_answered_in_their_encoding() {
    let (server, k, _) = start().await;
    let r = export(&server, Some(&k), Some(PB), None, pb(&agent_trace(1))).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.content_type(), PB);
    assert_eq!(r.rejected_spans(), 0);
    // Every OTLP answer carries the rate-limit headers, counted against the key.
    let limit: u64 = r.header("ratelimit-limit").expect("limit").parse().unwrap();
    let remaining: u64 = r.header("ratelimit-remaining").unwrap().parse().unwrap();
    assert_eq!(remaining, limit - 1);
    assert!(r.header("ratelimit-reset").is_some());

    let r = export(
        &server,
        Some(&k),
        Some("application/json; charset=utf-8"),
        None,
        agent_trace_json(2),
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.content_type(), JSON);
    assert_eq!(r.rejected_spans(), 0);
    // The hand-written JSON is the same request as the protobuf one.
    let from_json =
        tracestore::OtlpRequest::decode(&agent_trace_json(2), tracestore::OtlpEncoding::Json)
            .expect("decodes");
    assert_eq!(
        from_json,
        tracestore::OtlpRequest::from_message(agent_trace(2))
    );
}

#[tokio::test]
async fn empty_requests_get_an_empty_response() {
    let (server, k, _) = start().await;
    let r = export(&server, Some(&k), Some(JSON), None, b"{}".to_vec()).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.json(), json!({}));
    let r = export(&server, Some(&k), Some(PB), None, Vec::new()).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.content_type(), PB);
    assert!(r.body.is_empty(), "{r:?}");
    let r = export(&server, Some(&k), Some(PB), Some("gzip"), gzip(&[])).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert!(r.body.is_empty());
}

#[tokio::test]
async fn gzip_bodies_are_accepted_in_both_encodings() {
    let (server, k, _) = start().await;
    for encoding in ["gzip", "GZIP"] {
        let r = export(
            &server,
            Some(&k),
            Some(PB),
            Some(encoding),
            gzip(&pb(&agent_trace(3))),
        )
        .await;
        assert_eq!(r.status, 200, "{r:?}");
        assert_eq!(r.rejected_spans(), 0);
    }
    let r = export(
        &server,
        Some(&k),
        Some(JSON),
        Some("gzip"),
        gzip(&agent_trace_json(4)),
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.json(), json!({}));
    let r = export(
        &server,
        Some(&k),
        Some(PB),
        Some("identity"),
        pb(&agent_trace(5)),
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");
}

#[tokio::test]
async fn a_corrupt_gzip_or_undecodable_body_is_400_with_a_status() {
    let (server, k, _) = start().await;
    let mut truncated = gzip(&pb(&agent_trace(6)));
    truncated.truncate(truncated.len() / 2);
    for (ct, body) in [
        (PB, b"definitely not gzip".to_vec()),
        (JSON, b"definitely not gzip".to_vec()),
        (PB, truncated),
    ] {
        let r = export(&server, Some(&k), Some(ct), Some("gzip"), body).await;
        assert_eq!(r.status, 400, "{r:?}");
        assert_eq!(r.content_type(), ct);
        let (code, message) = r.rpc_status();
        assert_eq!(code, 3, "{message}");
        assert!(message.contains("gzip"), "{message}");
    }
    // Not OTLP at all, uncompressed.
    let r = export(
        &server,
        Some(&k),
        Some(JSON),
        None,
        b"{\"resourceSpans\": 7}".to_vec(),
    )
    .await;
    assert_eq!(r.status, 400, "{r:?}");
    assert_eq!(r.rpc_status().0, 3);
    let r = export(&server, Some(&k), Some(PB), None, vec![0xff; 32]).await;
    assert_eq!(r.status, 400, "{r:?}");
    assert_eq!(r.content_type(), PB);
    assert_eq!(r.rpc_status().0, 3);
}

#[tokio::test]
async fn a_gzip_bomb_over_the_limit_after_decompression_is_413() {
    let (server, k, _) = start().await;
    // 6 MiB of zeros is a few KiB of gzip: small on the wire, over the limit inflated.
    let bomb = gzip(&vec![0u8; 6 * 1024 * 1024]);
    assert!(bomb.len() < 64 * 1024, "{}", bomb.len());
    for ct in [PB, JSON] {
        let r = export(&server, Some(&k), Some(ct), Some("gzip"), bomb.clone()).await;
        assert_eq!(r.status, 413, "{r:?}");
        let (code, message) = r.rpc_status();
        assert_eq!(code, 8, "{message}");
        assert!(message.contains(&MAX_OTLP_BYTES.to_string()), "{message}");
    }
    // Exactly at the limit inflated passes the cap (and then fails to decode: zeros are not
    // a request), so the cap is the limit and not less.
    let at_limit = gzip(&vec![0u8; MAX_OTLP_BYTES]);
    let r = export(&server, Some(&k), Some(JSON), Some("gzip"), at_limit).await;
    assert_eq!(r.status, 400, "{r:?}");
}

#[tokio::test]
async fn an_uncompressed_body_over_the_limit_is_413() {
    let (server, k, _) = start().await;
    let r = export(
        &server,
        Some(&k),
        Some(PB),
        None,
        vec![0u8; MAX_OTLP_BYTES + 1],
    )
    .await;
    assert_eq!(r.status, 413, "{r:?}");
    assert_eq!(r.rpc_status().0, 8);
}

/// A chunked body (no Content-Length) over the limit, sent on a raw connection: 413 once more
/// than the limit has arrived.
#[tokio::test]
async fn a_chunked_body_over_the_limit_is_413() {
    let (server, k, _) = start().await;
    let addr = server.addr;
    let head = format!(
        "POST /v1/traces HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {k}\r\n\
         Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    );
    let stream = std::net::TcpStream::connect(addr).expect("connect");
    let mut writer = stream.try_clone().expect("clone");
    let sender = std::thread::spawn(move || {
        // The server stops reading past the limit; writes after that may fail.
        let chunk = vec![b' '; 64 * 1024];
        let _ = writer.write_all(head.as_bytes());
        let mut sent = 0;
        while sent <= MAX_OTLP_BYTES {
            let n = chunk.len().min(MAX_OTLP_BYTES + 1 - sent);
            let framed = [format!("{n:x}\r\n").as_bytes(), &chunk[..n], b"\r\n"].concat();
            if writer.write_all(&framed).is_err() {
                return;
            }
            sent += n;
        }
        let _ = writer.write_all(b"0\r\n\r\n");
    });
    let r = common::read_raw_response(stream, Duration::from_secs(20)).await;
    let _ = sender.join();
    assert_eq!(r.status, 413, "{:#}", r.body);
    assert_eq!(r.body["code"], 8, "{:#}", r.body);
    assert!(r.header("ratelimit-limit").is_some());
    // The server still answers on a new connection.
    let r = export(&server, Some(&k), Some(JSON), None, b"{}".to_vec()).await;
    assert_eq!(r.status, 200);
}

#[tokio::test]
async fn more_than_the_span_limit_is_413() {
    let (server, k, _) = start().await;
    let spans: Vec<Span> = (0..=MAX_OTLP_SPANS as u64)
        .map(|n| span(7, n + 1, None, "s", (0, 1), vec![]))
        .collect();
    let body = pb(&request(spans));
    assert!(body.len() < MAX_OTLP_BYTES);
    let r = export(&server, Some(&k), Some(PB), None, body.clone()).await;
    assert_eq!(r.status, 413, "{r:?}");
    let (code, message) = r.rpc_status();
    assert_eq!(code, 8);
    assert!(message.contains(&MAX_OTLP_SPANS.to_string()), "{message}");
    let r = export(&server, Some(&k), Some(PB), Some("gzip"), gzip(&body)).await;
    assert_eq!(r.status, 413, "{r:?}");
}

#[tokio::test]
async fn other_content_types_are_415_with_a_json_status() {
    let (server, k, _) = start().await;
    for ct in [
        Some("text/plain"),
        Some("application/grpc"),
        Some("application/jsonx"),
        None,
    ] {
        let r = export(&server, Some(&k), ct, None, b"{}".to_vec()).await;
        assert_eq!(r.status, 415, "{ct:?}: {r:?}");
        assert_eq!(r.content_type(), JSON, "{ct:?}");
        let (code, message) = r.rpc_status();
        assert_eq!(code, 3, "{message}");
        assert!(message.contains("application/x-protobuf"), "{message}");
    }
}

#[tokio::test]
async fn other_content_encodings_are_415_in_the_request_encoding() {
    let (server, k, _) = start().await;
    for (ct, enc) in [(PB, "br"), (JSON, "deflate"), (PB, "zstd")] {
        let r = export(&server, Some(&k), Some(ct), Some(enc), b"{}".to_vec()).await;
        assert_eq!(r.status, 415, "{enc}: {r:?}");
        assert_eq!(r.content_type(), ct);
        let (code, message) = r.rpc_status();
        assert_eq!(code, 3);
        assert!(message.contains(enc), "{message}");
    }
}

#[tokio::test]
async fn no_key_or_a_bad_key_is_401_with_a_status() {
    let (server, _, _) = start().await;
    for (key, ct) in [(None, PB), (Some("ts_not_a_real_key"), JSON), (None, JSON)] {
        let r = export(&server, key, Some(ct), None, b"{}".to_vec()).await;
        assert_eq!(r.status, 401, "{r:?}");
        assert_eq!(r.header("www-authenticate"), Some("Bearer"));
        assert_eq!(r.content_type(), ct);
        let (code, message) = r.rpc_status();
        assert_eq!(code, 16, "{message}");
        assert!(!message.is_empty());
        assert!(r.header("ratelimit-limit").is_some());
    }
}

#[tokio::test]
async fn an_admin_key_is_403_with_a_status() {
    let (server, _, store) = start().await;
    let admin = store.create_admin_key().expect("admin").key;
    let r = export(&server, Some(&admin), Some(PB), None, pb(&agent_trace(8))).await;
    assert_eq!(r.status, 403, "{r:?}");
    assert_eq!(r.content_type(), PB);
    assert_eq!(r.rpc_status().0, 7);
}

#[tokio::test]
async fn the_rate_limit_is_429_with_retry_after_and_a_status() {
    let store = memory_store();
    let k = key(&store, "acme");
    let config = ServerConfig {
        rate_limit: 1,
        ..ServerConfig::default()
    };
    let server = TestServer::start_with(store, config).await;
    let r = export(&server, Some(&k), Some(JSON), None, b"{}".to_vec()).await;
    assert_eq!(r.status, 200);
    let r = export(&server, Some(&k), Some(PB), None, Vec::new()).await;
    assert_eq!(r.status, 429, "{r:?}");
    assert!(r.header("retry-after").is_some());
    assert_eq!(r.header("ratelimit-remaining"), Some("0"));
    assert_eq!(r.content_type(), PB);
    assert_eq!(r.rpc_status().0, 8);
}

#[tokio::test]
async fn other_methods_are_405_with_allow_and_a_status() {
    let (server, k, _) = start().await;
    for method in [
        reqwest::Method::GET,
        reqwest::Method::PUT,
        reqwest::Method::DELETE,
    ] {
        let res = server
            .client
            .request(method.clone(), server.url("/v1/traces"))
            .bearer_auth(&k)
            .send()
            .await
            .expect("answered");
        assert_eq!(res.status().as_u16(), 405, "{method}");
        assert_eq!(res.headers()["allow"], "POST", "{method}");
        assert_eq!(res.headers()["content-type"], JSON);
        let v: Value = res.json().await.expect("json");
        assert_eq!(v["code"], 12, "{v}");
        assert!(v.get("error").is_none(), "not the envelope: {v}");
    }
}

/// `serve --otlp-addr` serves the receiver (and only it) on a second listener, with the same
/// store and keys; the main address serves it too.
#[tokio::test]
async fn serve_otlp_addr_is_a_second_listener() {
    use std::io::BufRead;
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("t.redb");
    let k = {
        let store = tracestore::Store::open(&db).expect("store");
        store.create_api_key("acme").expect("key").key
    };
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_tracestore"))
        .arg("--db")
        .arg(&db)
        .args([
            "serve",
            "--addr",
            "127.0.0.1:0",
            "--otlp-addr",
            "127.0.0.1:0",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("serve starts");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            let _ = tx.send(line);
        }
    });
    let (mut main, mut otlp) = (None, None);
    while main.is_none() || otlp.is_none() {
        let line = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("serve prints its addresses");
        if let Some(a) = line.strip_prefix("listening on ") {
            main = Some(a.to_string());
        }
        if let Some(a) = line.strip_prefix("OTLP/HTTP receiver on ") {
            otlp = Some(a.trim_end_matches("/v1/traces").to_string());
        }
    }
    let (main, otlp) = (main.unwrap(), otlp.unwrap());
    let client = reqwest::Client::new();
    let outcome = async {
        let r = export_to(
            &client,
            &otlp,
            Some(&k),
            Some(PB),
            None,
            pb(&agent_trace(9)),
        )
        .await;
        assert_eq!(r.status, 200, "{r:?}");
        assert_eq!(r.rejected_spans(), 0);
        let r = export_to(&client, &otlp, None, Some(PB), None, Vec::new()).await;
        assert_eq!(r.status, 401);
        assert_eq!(r.rpc_status().0, 16);
        let r = export_to(
            &client,
            &main,
            Some(&k),
            Some(JSON),
            Some("gzip"),
            gzip(b"{}"),
        )
        .await;
        assert_eq!(r.status, 200, "{r:?}");
        // Only the receiver on the OTLP listener.
        let r = client
            .get(format!("{otlp}/api/v1/traces"))
            .bearer_auth(&k)
            .send()
            .await
            .expect("answered");
        assert_eq!(r.status().as_u16(), 404);
    };
    let result = tokio::time::timeout(Duration::from_secs(60), outcome).await;
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let exit = child.wait().expect("exits");
    result.expect("in time");
    assert!(exit.success(), "{exit:?}");
}

// ---- acceptance: need the mapping and storage behind Store::ingest_otlp ----

#[tokio::test]
async fn acceptance_a_stored_agent_trace_has_its_tree_kinds_and_tokens() {
    let (server, k, _) = start().await;
    let trace = 0x0af7651916cd43dd8448eb211c80319c;
    let r = export(&server, Some(&k), Some(PB), None, pb(&agent_trace(trace))).await;
    assert_eq!(r.rejected_spans(), 0);
    let t = stored(&server, &k, trace).await;
    assert_eq!(t["name"], "support-agent", "{t:#}");
    assert_eq!(t["spanCount"], 3);
    assert_eq!(t["status"], "OK");
    assert_eq!(t["startTime"], "2026-03-14T10:00:00.000Z");
    assert_eq!(t["endTime"], "2026-03-14T10:00:00.900Z");
    assert_eq!(t["totalTokens"], 150);
    assert_eq!(t["userId"], "user-7");
    assert_eq!(t["sessionId"], "session-3");
    let root = span_by_id(&t, 1);
    assert!(root["parentId"].is_null(), "{root:#}");
    assert_eq!(root["kind"], "AGENT");
    let llm = span_by_id(&t, 2);
    assert_eq!(llm["parentId"], hex_span(1));
    assert_eq!(llm["kind"], "LLM");
    assert_eq!(llm["model"], "gpt-4o");
    assert_eq!(llm["inputTokens"], 120);
    assert_eq!(llm["outputTokens"], 30);
    assert_eq!(llm["totalTokens"], 150);
    let tool = span_by_id(&t, 3);
    assert_eq!(tool["parentId"], hex_span(1));
    assert_eq!(tool["kind"], "TOOL");
    assert_eq!(tool["name"], "lookup-order");
}

#[tokio::test]
async fn acceptance_an_all_zero_trace_id_is_rejected_beside_good_spans() {
    let (server, k, _) = start().await;
    let trace = 0x11;
    let mut bad = span(0, 9, None, "bad", (0, 1), vec![]);
    bad.trace_id = vec![0; 16];
    let good = span(trace, 1, None, "good", (0, 1), vec![]);
    let req = request(vec![good.clone(), bad.clone()]);
    let r = export(&server, Some(&k), Some(PB), None, pb(&req)).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.rejected_spans(), 1);
    let partial = ExportTraceServiceResponse::decode(&r.body[..])
        .unwrap()
        .partial_success
        .unwrap();
    assert!(!partial.error_message.is_empty());
    // The same in JSON.
    let json_req = serde_json::to_vec(&request(vec![
        span(0x12, 1, None, "good", (0, 1), vec![]),
        bad,
    ]))
    .expect("json");
    let r = export(&server, Some(&k), Some(JSON), None, json_req).await;
    assert_eq!(
        r.rejected_spans(),
        1,
        "{:?}",
        String::from_utf8_lossy(&r.body)
    );
    assert!(r.json()["partialSuccess"]["errorMessage"].is_string());
    assert_eq!(stored(&server, &k, trace).await["spanCount"], 1);
    assert_eq!(stored(&server, &k, 0x12).await["spanCount"], 1);
}

#[tokio::test]
async fn acceptance_json_and_protobuf_store_the_same_trace() {
    let store = memory_store();
    let a = key(&store, "by-protobuf");
    let b = key(&store, "by-json");
    let server = TestServer::start(store).await;
    let trace = 0x5b8efff798038103d269b633813fc60c;
    let r = export(
        &server,
        Some(&a),
        Some(PB),
        Some("gzip"),
        gzip(&pb(&agent_trace(trace))),
    )
    .await;
    assert_eq!(r.rejected_spans(), 0);
    let r = export(&server, Some(&b), Some(JSON), None, agent_trace_json(trace)).await;
    assert_eq!(r.rejected_spans(), 0);
    let mut from_pb = stored(&server, &a, trace).await;
    let mut from_json = stored(&server, &b, trace).await;
    assert_eq!(from_pb["spanCount"], 3, "{from_pb:#}");
    // Everything but the time each store first saw the trace.
    from_pb.as_object_mut().unwrap().remove("createdAt");
    from_json.as_object_mut().unwrap().remove("createdAt");
    assert_eq!(from_pb, from_json);
}

#[tokio::test]
async fn acceptance_children_before_the_root_across_two_requests() {
    let (server, k, _) = start().await;
    let trace = 0x77;
    let all = agent_trace(trace).resource_spans[0].scope_spans[0]
        .spans
        .clone();
    let (root, children) = (all[0].clone(), all[1..].to_vec());
    let r = export(&server, Some(&k), Some(PB), None, pb(&request(children))).await;
    assert_eq!(r.rejected_spans(), 0);
    let early = stored(&server, &k, trace).await;
    assert!(early["spanCount"].as_u64().unwrap() >= 2, "{early:#}");
    let r = export(&server, Some(&k), Some(PB), None, pb(&request(vec![root]))).await;
    assert_eq!(r.rejected_spans(), 0);
    let t = stored(&server, &k, trace).await;
    assert_eq!(t["name"], "support-agent", "{t:#}");
    assert_eq!(t["startTime"], "2026-03-14T10:00:00.000Z");
    assert_eq!(t["endTime"], "2026-03-14T10:00:00.900Z");
    assert_eq!(t["spanCount"], 3);
    assert_eq!(t["totalTokens"], 150);
    assert_eq!(span_by_id(&t, 2)["parentId"], hex_span(1));
    assert!(span_by_id(&t, 1)["parentId"].is_null());
}

#[tokio::test]
async fn acceptance_duplicate_delivery_changes_nothing() {
    let (server, k, _) = start().await;
    let trace = 0x99;
    let mut doubled = agent_trace(trace);
    let llm = doubled.resource_spans[0].scope_spans[0].spans[1].clone();
    doubled.resource_spans[0].scope_spans[0].spans.push(llm);
    let r = export(&server, Some(&k), Some(PB), None, pb(&doubled)).await;
    assert_eq!(r.rejected_spans(), 0);
    let once = stored(&server, &k, trace).await;
    assert_eq!(once["spanCount"], 3, "{once:#}");
    assert_eq!(once["totalTokens"], 150);
    // The exporter retries the whole request, then sends it once more as JSON.
    let r = export(&server, Some(&k), Some(PB), None, pb(&doubled)).await;
    assert_eq!(r.rejected_spans(), 0);
    let r = export(&server, Some(&k), Some(JSON), None, agent_trace_json(trace)).await;
    assert_eq!(r.rejected_spans(), 0);
    let again = stored(&server, &k, trace).await;
    assert_eq!(again["spanCount"], 3);
    assert_eq!(again["totalTokens"], 150);
    assert_eq!(again["spans"].as_array().unwrap().len(), 3);
}
