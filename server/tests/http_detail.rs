//! `GET /api/v1/traces/{id}`: the whole trace with its payloads, or with `payloads=false` the
//! tree alone (payload fields left out, not null); the one parameter's validation; span order.

mod common;

use common::{key, memory_store, TestServer};
use serde_json::{json, Value};

/// A trace with input/output, an AGENT root, an LLM child with every payload, two tools with
/// the same startTime and a span without a startTime, sent out of order.
fn agent_trace() -> Value {
    json!({"traces": [{
        "id": "run-1",
        "name": "support-agent",
        "status": "ERROR",
        "startTime": "2026-03-14T10:00:00Z",
        "endTime": "2026-03-14T10:00:02.500Z",
        "tags": ["production"],
        "metadata": {"env": "prod"},
        "userId": "user-7",
        "sessionId": "session-3",
        "input": {"question": "where is my order?"},
        "output": "It ships tomorrow.",
        "spans": [
            {"id": "b-tool", "parentId": "root", "name": "lookup", "kind": "TOOL",
             "startTime": "2026-03-14T10:00:00.500Z", "endTime": "2026-03-14T10:00:00.600Z"},
            {"id": "llm-1", "parentId": "root", "name": "chat", "kind": "llm",
             "status": "ERROR", "statusMessage": "rate limited\nretry in 2s",
             "startTime": "2026-03-14T10:00:00.100Z", "endTime": "2026-03-14T10:00:00.900Z",
             "model": "gpt-4o", "inputTokens": 100, "outputTokens": 50, "cost": "0.00340",
             "input": [{"role": "user", "content": "where is my order?"}],
             "output": {"role": "assistant", "content": null},
             "attributes": {"temperature": 0.2, "llm.provider": "openai"}},
            {"id": "nostart", "name": "setup"},
            {"id": "root", "name": "agent", "kind": "AGENT",
             "startTime": "2026-03-14T10:00:00Z", "endTime": "2026-03-14T10:00:02.400Z"},
            {"id": "a-tool", "parentId": "root", "name": "search", "kind": "TOOL",
             "startTime": "2026-03-14T10:00:00.500Z", "endTime": "2026-03-14T10:00:00.700Z",
             "totalTokens": 0}
        ]
    }]})
}

/// The expected `data`, without `createdAt`, with or without payloads.
fn expected(payloads: bool) -> Value {
    let mut trace = json!({
        "id": "run-1", "name": "support-agent", "status": "ERROR",
        "startTime": "2026-03-14T10:00:00.000Z", "endTime": "2026-03-14T10:00:02.500Z",
        "durationMs": 2500, "totalCost": "0.0034", "totalTokens": 150,
        "tags": ["production"], "metadata": {"env": "prod"},
        "spanCount": 5, "scoreCount": 0,
        "userId": "user-7", "sessionId": "session-3",
        "scores": [],
    });
    let span = |id: &str, parent: Value, name: &str, kind: &str, start: Value, end: Value| {
        json!({
            "id": id, "parentId": parent, "name": name, "kind": kind, "status": "OK",
            "startTime": start, "endTime": end, "model": null, "inputTokens": null,
            "outputTokens": null, "totalTokens": 0, "cost": null,
        })
    };
    let mut spans = vec![
        span(
            "nostart",
            Value::Null,
            "setup",
            "UNKNOWN",
            Value::Null,
            Value::Null,
        ),
        span(
            "root",
            Value::Null,
            "agent",
            "AGENT",
            json!("2026-03-14T10:00:00.000Z"),
            json!("2026-03-14T10:00:02.400Z"),
        ),
        json!({
            "id": "llm-1", "parentId": "root", "name": "chat", "kind": "LLM", "status": "ERROR",
            "startTime": "2026-03-14T10:00:00.100Z", "endTime": "2026-03-14T10:00:00.900Z",
            "model": "gpt-4o", "inputTokens": 100, "outputTokens": 50, "totalTokens": 150,
            "cost": "0.0034",
        }),
        span(
            "a-tool",
            json!("root"),
            "search",
            "TOOL",
            json!("2026-03-14T10:00:00.500Z"),
            json!("2026-03-14T10:00:00.700Z"),
        ),
        span(
            "b-tool",
            json!("root"),
            "lookup",
            "TOOL",
            json!("2026-03-14T10:00:00.500Z"),
            json!("2026-03-14T10:00:00.600Z"),
        ),
    ];
    if payloads {
        trace["input"] = json!({"question": "where is my order?"});
        trace["output"] = json!("It ships tomorrow.");
        for s in &mut spans {
            for f in ["statusMessage", "input", "output", "attributes"] {
                s[f] = Value::Null;
            }
        }
        let llm = &mut spans[2];
        llm["statusMessage"] = json!("rate limited\nretry in 2s");
        llm["input"] = json!([{"role": "user", "content": "where is my order?"}]);
        llm["output"] = json!({"role": "assistant", "content": null});
        llm["attributes"] = json!({"temperature": 0.2, "llm.provider": "openai"});
    }
    trace["spans"] = Value::Array(spans);
    trace
}

/// The `data` of a 200, with `createdAt` checked and removed.
fn without_created_at(data: &Value) -> Value {
    let mut d = data.clone();
    let created = d
        .as_object_mut()
        .unwrap()
        .remove("createdAt")
        .expect("createdAt");
    assert!(
        created.as_str().is_some_and(|s| s.ends_with('Z')),
        "{created}"
    );
    d
}

fn keys(v: &Value) -> Vec<&str> {
    let mut k: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    k.sort();
    k
}

#[tokio::test]
async fn payloads_false_leaves_every_payload_field_out() {
    let store = memory_store();
    let k = key(&store, "acme");
    let server = TestServer::start(store).await;
    let r = server
        .post("/api/v1/traces", &k, agent_trace().to_string())
        .await;
    assert_eq!(r.data()["spans"], 5, "{:#}", r.body);

    for path in ["/api/v1/traces/run-1", "/api/v1/traces/run-1?payloads=true"] {
        let r = server.get(path, Some(&k)).await;
        let data = without_created_at(r.data());
        assert_eq!(data, expected(true), "{path}: {data:#}");
        // Exactly these fields: payloads present (null when the span has none).
        let llm = &data["spans"][2];
        for f in ["statusMessage", "input", "output", "attributes"] {
            assert!(llm.get(f).is_some_and(|v| !v.is_null()), "{path}: {f}");
            assert!(data["spans"][0].get(f).is_some_and(Value::is_null), "{f}");
        }
    }

    let r = server
        .get("/api/v1/traces/run-1?payloads=false", Some(&k))
        .await;
    let data = without_created_at(r.data());
    assert_eq!(data, expected(false), "{data:#}");
    for f in ["input", "output"] {
        assert!(data.get(f).is_none(), "trace {f} is left out");
    }
    for s in data["spans"].as_array().unwrap() {
        assert_eq!(
            keys(s),
            vec![
                "cost",
                "endTime",
                "id",
                "inputTokens",
                "kind",
                "model",
                "name",
                "outputTokens",
                "parentId",
                "startTime",
                "status",
                "totalTokens"
            ],
            "{s:#}"
        );
    }
}

#[tokio::test]
async fn spans_are_ordered_by_start_time_then_id() {
    let store = memory_store();
    let k = key(&store, "acme");
    let server = TestServer::start(store).await;
    server
        .post("/api/v1/traces", &k, agent_trace().to_string())
        .await
        .data();
    for q in ["", "?payloads=false"] {
        let r = server
            .get(&format!("/api/v1/traces/run-1{q}"), Some(&k))
            .await;
        let ids: Vec<&str> = r.data()["spans"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["id"].as_str().unwrap())
            .collect();
        assert_eq!(
            ids,
            vec!["nostart", "root", "llm-1", "a-tool", "b-tool"],
            "{q}"
        );
    }
}

#[tokio::test]
async fn any_other_value_or_parameter_is_a_400_naming_it() {
    let store = memory_store();
    let k = key(&store, "acme");
    let server = TestServer::start(store).await;
    server
        .post("/api/v1/traces", &k, agent_trace().to_string())
        .await
        .data();
    for (query, fields) in [
        ("payloads=yes", vec!["payloads"]),
        ("payloads=", vec!["payloads"]),
        ("payloads", vec!["payloads"]),
        ("payloads=FALSE", vec!["payloads"]),
        ("payloads=0", vec!["payloads"]),
        ("payloads=false&payloads=false", vec!["payloads"]),
        ("limit=5", vec!["limit"]),
        ("payload=false", vec!["payload"]),
        ("limit=5&payloads=x", vec!["limit", "payloads"]),
        ("payloads=%FF", vec!["payloads"]),
        ("=x&payloads=false", vec![""]),
    ] {
        let r = server
            .get(&format!("/api/v1/traces/run-1?{query}"), Some(&k))
            .await;
        assert_eq!(r.status, 400, "{query}: {:#}", r.body);
        assert_eq!(r.error_code(), "VALIDATION_ERROR", "{query}");
        assert_eq!(r.detail_fields(), fields, "{query}: {:#}", r.body);
    }
    // The parameter is checked before the id is looked up; a good one still 404s a missing id.
    let r = server
        .get("/api/v1/traces/missing?payloads=no", Some(&k))
        .await;
    assert_eq!(r.status, 400);
    let r = server
        .get("/api/v1/traces/missing?payloads=false", Some(&k))
        .await;
    assert_eq!(r.status, 404);
    assert_eq!(r.error_code(), "NOT_FOUND");
}

#[tokio::test]
async fn another_project_sees_no_trace_with_or_without_payloads() {
    let store = memory_store();
    let k = key(&store, "acme");
    let other = key(&store, "other");
    let server = TestServer::start(store).await;
    server
        .post("/api/v1/traces", &k, agent_trace().to_string())
        .await
        .data();
    for q in ["", "?payloads=true", "?payloads=false"] {
        let r = server
            .get(&format!("/api/v1/traces/run-1{q}"), Some(&other))
            .await;
        assert_eq!(r.status, 404, "{q}");
        assert_eq!(r.error_code(), "NOT_FOUND");
    }
}

/// The `url` and the `-H`/`-d` arguments of a printed curl command.
fn curl_parts(cmd: &str) -> (String, Vec<(String, String)>, Option<String>) {
    let url = cmd.split('"').nth(1).expect("a quoted URL").to_string();
    let headers = cmd
        .split("-H \"")
        .skip(1)
        .map(|h| {
            let h = h.split('"').next().unwrap();
            let (k, v) = h.split_once(": ").expect("Name: value");
            (k.to_string(), v.to_string())
        })
        .collect();
    let body = cmd
        .split_once("-d '")
        .map(|(_, b)| b.strip_suffix('\'').expect("a quoted body").to_string());
    (url, headers, body)
}

/// The extra commands `serve --demo` prints answer as they should: the span tree without
/// payloads of a real trace, and an OTLP/JSON export taken (200, nothing rejected). With curl
/// installed, each is also run as printed, through `sh`.
#[tokio::test]
async fn printed_demo_extras_work_as_printed() {
    use tracestore_server::demo;
    let store = memory_store();
    demo::load_demo(&store, 2000, |_| {}).expect("demo loads");
    let k = key(&store, demo::DEMO_PROJECT);
    let server = TestServer::start(store.clone()).await;
    let ex = demo::examples(&store, &server.base, &k).expect("examples");
    assert_eq!(ex.more.len(), 4, "{:?}", ex.more);
    assert!(demo::EXAMPLE_OTLP_BODY.contains(demo::EXAMPLE_OTLP_TRACE_ID));
    let have_curl = std::process::Command::new("curl")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    for (i, (comment, cmd)) in ex.more.iter().enumerate() {
        assert!(
            !comment.starts_with('#') && !comment.contains('\n'),
            "{comment}"
        );
        let (url, headers, body) = curl_parts(cmd);
        assert!(headers.contains(&("Authorization".into(), format!("Bearer {k}"))));
        let answer: Value = if i == 0 {
            assert!(url.ends_with("?payloads=false"), "{url}");
            assert!(body.is_none());
            let r = server.send(server.client.get(&url).bearer_auth(&k)).await;
            let data = r.data();
            assert_eq!(data["status"], "ERROR", "{data:#}");
            assert!(data.get("input").is_none(), "{data:#}");
            let spans = data["spans"].as_array().unwrap();
            assert!(!spans.is_empty());
            assert!(spans.iter().all(|s| s.get("attributes").is_none()));
            r.body
        } else if i == 1 {
            assert!(url.ends_with(demo::EXAMPLE_COUNTS_QUERY), "{url}");
            let r = server.send(server.client.get(&url).bearer_auth(&k)).await;
            let data = r.data();
            let total = data["total"].as_u64().unwrap();
            assert!(total > 1, "{data:#}");
            assert_eq!(data["facets"]["status"]["ERROR"], total);
            assert_eq!(data["facets"]["status"]["OK"], 0);
            assert!(!data["facets"]["names"].as_array().unwrap().is_empty());
            r.body
        } else if i == 2 {
            assert!(url.contains("/api/v1/export/traces?"), "{url}");
            let r = server
                .client
                .get(&url)
                .bearer_auth(&k)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
            let text = r.text().await.unwrap();
            let mut lines = text.lines();
            assert!(lines.next().unwrap().starts_with("id,name,status,"));
            assert!(lines.count() > 1, "{text}");
            Value::Null
        } else {
            assert_eq!(url, format!("{}/v1/traces", server.base));
            let mut req = server.client.post(&url).body(body.expect("a body"));
            for (name, value) in &headers {
                req = req.header(name, value);
            }
            let r = server.send(req).await;
            assert_eq!(r.status, 200, "{:#}", r.body);
            assert!(r.body.get("partialSuccess").is_none(), "{:#}", r.body);
            r.body
        };
        if have_curl {
            let script = format!("{cmd} -s");
            let out = tokio::task::spawn_blocking(move || {
                std::process::Command::new("sh")
                    .arg("-c")
                    .arg(script)
                    .output()
                    .expect("sh runs")
            })
            .await
            .unwrap();
            assert!(out.status.success(), "{cmd}");
            if answer.is_null() {
                // The export: CSV, not JSON.
                let text = String::from_utf8(out.stdout).unwrap();
                assert!(text.starts_with("id,name,status,"), "{cmd}");
                continue;
            }
            let got: Value = serde_json::from_slice(&out.stdout).expect("JSON");
            assert_eq!(got, answer, "{cmd}");
        }
    }
}
