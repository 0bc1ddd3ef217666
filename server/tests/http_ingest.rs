//! POST / GET / DELETE of traces, and the OpenAPI document against the real routes.

mod common;

use common::{key, memory_store, trace_json, TestServer};
use serde_json::json;

#[tokio::test]
async fn a_batch_with_bad_items_writes_nothing_and_lists_them() {
    let store = memory_store();
    let k = key(&store, "acme");
    let server = TestServer::start(store).await;
    let good = trace_json(
        "good-1",
        "support-agent",
        "2026-03-14T10:00:00Z",
        &["production"],
    );
    let mut bad_cost = trace_json("bad-1", "support-agent", "2026-03-14T10:00:01Z", &[]);
    bad_cost["spans"][1]["cost"] = json!("-1");
    let mut bad_status = trace_json("bad-2", "support-agent", "2026-03-14T10:00:02Z", &[]);
    bad_status["status"] = json!("MAYBE");
    let body = json!({ "traces": [good, bad_cost, bad_status] }).to_string();
    let r = server.post("/api/v1/traces", &k, body).await;
    assert_eq!(r.status, 400, "{:#}", r.body);
    assert_eq!(r.error_code(), "VALIDATION_ERROR");
    let fields = r.detail_fields();
    assert!(
        fields
            .iter()
            .any(|f| f.starts_with("traces[1].spans[1].cost")),
        "{fields:?}"
    );
    assert!(
        fields.iter().any(|f| f.starts_with("traces[2].status")),
        "{fields:?}"
    );
    assert!(
        !fields.iter().any(|f| f.starts_with("traces[0]")),
        "{fields:?}"
    );
    // Nothing was written, not even the good item.
    assert_eq!(
        server.get("/api/v1/traces/good-1", Some(&k)).await.status,
        404
    );
    let r = server.get("/api/v1/traces", Some(&k)).await;
    assert_eq!(r.data()["traces"].as_array().unwrap().len(), 0);
    // Malformed bodies are 400s too.
    for body in ["not json", "[]", "{\"traces\": 3}", "{\"items\": []}"] {
        let r = server.post("/api/v1/traces", &k, body).await;
        assert_eq!(
            (r.status, r.error_code()),
            (400, "VALIDATION_ERROR"),
            "{body}"
        );
    }
}

#[tokio::test]
async fn ingest_get_retry_delete() {
    let store = memory_store();
    let k = key(&store, "acme");
    let server = TestServer::start(store).await;
    let body = json!({ "traces": [
        trace_json("t-1", "support-agent", "2026-03-14T10:00:00Z", &["production", "v2"]),
        trace_json("t-2", "research-agent", "2026-03-14T11:00:00Z", &[]),
    ]})
    .to_string();
    let r = server.post("/api/v1/traces", &k, body.clone()).await;
    assert_eq!(
        r.data(),
        &json!({"created": 2, "updated": 0, "spans": 4, "scores": 2, "ids": ["t-1", "t-2"]})
    );

    let r = server.get("/api/v1/traces/t-1", Some(&k)).await;
    let t = r.data();
    assert_eq!(t["id"], "t-1");
    assert_eq!(t["totalCost"], "0.0034");
    assert_eq!(t["totalTokens"], 130);
    assert_eq!(
        (t["spanCount"].clone(), t["scoreCount"].clone()),
        (json!(2), json!(1))
    );
    let span_ids: Vec<&str> = t["spans"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    assert_eq!(span_ids.len(), 2);
    assert!(span_ids.contains(&"s1") && span_ids.contains(&"s2"));
    assert_eq!(
        t["spans"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["id"] == "s1")
            .unwrap()["cost"],
        "0.0012"
    );
    assert_eq!(t["scores"][0]["value"], 0.9);

    // A retried batch changes nothing.
    let r = server.post("/api/v1/traces", &k, body).await;
    assert_eq!(
        r.data(),
        &json!({"created": 0, "updated": 2, "spans": 4, "scores": 2, "ids": ["t-1", "t-2"]})
    );
    let again = server.get("/api/v1/traces/t-1", Some(&k)).await;
    assert_eq!(again.data()["totalCost"], "0.0034");
    assert_eq!(again.data()["spanCount"], 2);

    let r = server.delete("/api/v1/traces/t-1", &k).await;
    assert_eq!(r.data(), &json!({"id": "t-1", "deleted": true}));
    let r = server.get("/api/v1/traces/t-1", Some(&k)).await;
    assert_eq!((r.status, r.error_code()), (404, "NOT_FOUND"));
    let r = server.delete("/api/v1/traces/t-1", &k).await;
    assert_eq!(r.status, 404);
    let r = server.get("/api/v1/traces", Some(&k)).await;
    let ids: Vec<&str> = r.data()["traces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec!["t-2"]);
}

#[tokio::test]
async fn openapi_lists_every_route_and_each_answers() {
    let store = memory_store();
    let k = key(&store, "acme");
    let admin = store.create_admin_key().expect("admin key").key;
    let revocable = store.create_api_key("acme").expect("key");
    let server = TestServer::start(store).await;
    let doc = server.get("/openapi.json", None).await;
    assert_eq!(doc.status, 200);
    let doc = doc.body;
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3.1."),
        "{}",
        doc["openapi"]
    );
    let paths = doc["paths"].as_object().expect("paths");
    let mut listed: Vec<(String, String)> = Vec::new();
    for (path, item) in paths {
        for method in ["get", "post", "delete", "put", "patch"] {
            if item.get(method).is_some() {
                listed.push((method.to_string(), path.clone()));
            }
        }
    }
    listed.sort();
    let expected = [
        ("delete", "/api/v1/admin/keys/{prefix}"),
        ("delete", "/api/v1/traces"),
        ("delete", "/api/v1/traces/{id}"),
        ("get", "/api/v1/admin/keys"),
        ("get", "/api/v1/export/traces"),
        ("get", "/api/v1/traces"),
        ("get", "/api/v1/traces/{id}"),
        ("get", "/healthz"),
        ("get", "/openapi.json"),
        ("post", "/api/v1/admin/keys"),
        ("post", "/api/v1/traces"),
        ("post", "/v1/traces"),
    ];
    assert_eq!(
        listed,
        expected
            .map(|(m, p)| (m.to_string(), p.to_string()))
            .to_vec()
    );
    // Every operation documents the rate-limit headers on its responses.
    for (method, path) in &listed {
        let responses = doc["paths"][path][method]["responses"].as_object().unwrap();
        assert!(
            responses.contains_key("200") || responses.contains_key("201"),
            "{method} {path}"
        );
        if path.starts_with("/api/") {
            for code in ["401", "403", "429", "500"] {
                assert!(
                    responses.contains_key(code),
                    "{method} {path} documents {code}"
                );
            }
        }
    }
    for name in [
        "RateLimit-Limit",
        "RateLimit-Remaining",
        "RateLimit-Reset",
        "Retry-After",
        "WWW-Authenticate",
    ] {
        assert!(doc["components"]["headers"].get(name).is_some(), "{name}");
    }
    let params: Vec<&str> = doc["paths"]["/api/v1/traces"]["get"]["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        params,
        tracestore::KNOWN_PARAMS.to_vec(),
        "the documented parameters are the library's"
    );

    // Each listed operation answers (not 404/405) with a valid key of its kind, in an order
    // that leaves a trace to get and delete and a key to revoke.
    let ingest =
        json!({"traces": [trace_json("doc-1", "support-agent", "2026-03-14T10:00:00Z", &[])]})
            .to_string();
    let mut answered = Vec::new();
    for (method, path, body, status) in [
        ("post", "/api/v1/traces", ingest.as_str(), 200),
        ("get", "/api/v1/traces", "", 200),
        ("get", "/api/v1/export/traces", "", 200),
        ("get", "/api/v1/traces/{id}", "", 200),
        ("delete", "/api/v1/traces/{id}", "", 200),
        ("delete", "/api/v1/traces?before=2026-03-15", "", 200),
        ("post", "/api/v1/admin/keys", r#"{"project": "acme"}"#, 201),
        ("get", "/api/v1/admin/keys", "", 200),
        ("delete", "/api/v1/admin/keys/{prefix}", "", 200),
        ("get", "/healthz", "", 200),
        ("get", "/openapi.json", "", 200),
        ("post", "/v1/traces", "{}", 200),
    ] {
        let url = server.url(
            &path
                .replace("{id}", "doc-1")
                .replace("{prefix}", &revocable.prefix),
        );
        let req = match method {
            "get" => server.client.get(url),
            "post" => server
                .client
                .post(url)
                .header("content-type", "application/json")
                .body(body.to_string()),
            _ => server.client.delete(url),
        };
        let k = if path.starts_with("/api/v1/admin/") {
            &admin
        } else {
            &k
        };
        let r = server.send(req.bearer_auth(k)).await;
        assert_eq!(r.status, status, "{method} {path}: {:#}", r.body);
        assert!(r.body.is_object() && r.body["error"].is_null());
        answered.push((
            method.to_string(),
            path.split('?').next().unwrap().to_string(),
        ));
    }
    answered.sort();
    assert_eq!(answered, listed, "every documented operation was tried");
}
