//! Every row of docs/api.md's status table, and the RateLimit-* headers on every response.

mod common;

use common::{key, memory_store, trace_json, TestServer};
use std::time::Duration;
use tracestore_server::ServerConfig;

async fn seeded() -> (TestServer, String, std::sync::Arc<tracestore::Store>) {
    let store = memory_store();
    let items: Vec<_> = (0..30)
        .map(|i| {
            let status = if i % 3 == 0 { "ERROR" } else { "OK" };
            let mut t = trace_json(
                &format!("t{i:02}"),
                "support-agent",
                &format!("2026-03-{:02}T10:00:00Z", 1 + i % 28),
                &["production"],
            );
            t["status"] = status.into();
            t
        })
        .collect();
    store
        .ingest_json(
            "acme",
            serde_json::json!({ "traces": items })
                .to_string()
                .as_bytes(),
        )
        .expect("ingest");
    let k = key(&store, "acme");
    (TestServer::start(store.clone()).await, k, store)
}

/// (query string, the fields the 400 must name, in order)
fn validation_cases(cursor: &str) -> Vec<(String, Vec<&'static str>)> {
    let mut tampered = cursor.to_string();
    let flip = if tampered.ends_with('A') { 'B' } else { 'A' };
    tampered.pop();
    tampered.push(flip);
    let long_name = "n".repeat(257);
    let many_tags: Vec<String> = (0..21).map(|i| format!("t{i}")).collect();
    vec![
        ("limit=0".into(), vec!["limit"]),
        ("limit=101".into(), vec!["limit"]),
        ("limit=-1".into(), vec!["limit"]),
        ("limit=abc".into(), vec!["limit"]),
        ("limit=5.0".into(), vec!["limit"]),
        ("limit=".into(), vec!["limit"]),
        ("status=maybe".into(), vec!["status"]),
        ("start_date=2026-03-01".into(), vec!["start_date"]),
        ("limit=10&limit=20".into(), vec!["limit"]),
        (
            "limit=0&status=x&startDate=nope".into(),
            vec!["limit", "status", "startDate"],
        ),
        (
            "startDate=2026-03-15&endDate=2026-03-01".into(),
            vec!["endDate"],
        ),
        (format!("name={long_name}"), vec!["name"]),
        (format!("tags={}", many_tags.join(",")), vec!["tags"]),
        ("cursor=not-a-cursor".into(), vec!["cursor"]),
        (format!("cursor={tampered}"), vec!["cursor"]),
        (
            format!("cursor={}", &cursor[..cursor.len() / 2]),
            vec!["cursor"],
        ),
        (format!("cursor={cursor}&status=OK"), vec!["cursor"]),
        (
            format!("cursor={tampered}&limit=0"),
            vec!["limit", "cursor"],
        ),
    ]
}

#[tokio::test]
async fn status_400_names_every_bad_parameter() {
    let (server, k, _) = seeded().await;
    let first = server
        .get("/api/v1/traces?limit=5&status=ERROR", Some(&k))
        .await;
    let cursor = first.data()["nextCursor"]
        .as_str()
        .expect("a second page")
        .to_string();
    for (query, fields) in validation_cases(&cursor) {
        let r = server
            .get(&format!("/api/v1/traces?{query}"), Some(&k))
            .await;
        assert_eq!(r.status, 400, "{query}: {:#}", r.body);
        assert_eq!(r.error_code(), "VALIDATION_ERROR", "{query}");
        let mut got = r.detail_fields();
        let mut want: Vec<String> = fields.iter().map(|f| f.to_string()).collect();
        got.sort();
        want.sort();
        assert_eq!(got, want, "{query}: {:#}", r.body);
        r.rate();
    }
    // An unknown parameter's message lists the known ones.
    let r = server
        .get("/api/v1/traces?start_date=2026-03-01", Some(&k))
        .await;
    let msg = r.body["error"]["details"][0]["message"].as_str().unwrap();
    assert!(msg.contains("startDate") && msg.contains("cursor"), "{msg}");
    let r = server
        .get("/api/v1/traces?limit=10&limit=20", Some(&k))
        .await;
    assert!(r.body["error"]["details"][0]["message"]
        .as_str()
        .unwrap()
        .contains("more than once"));
}

#[tokio::test]
async fn status_401_in_every_form_with_www_authenticate() {
    let (server, k, store) = seeded().await;
    let revoked = key(&store, "acme");
    let prefix = revoked[3..11].to_string();
    assert_eq!(store.revoke_api_key(&prefix).expect("revoke"), 1);
    let unknown = format!("{}X", &k[..k.len() - 1]);
    // (Authorization header, what it is)
    let cases: Vec<(Option<String>, &str)> = vec![
        (None, "missing header"),
        (Some("Basic dXNlcjpwYXNz".into()), "another scheme"),
        (Some("Bearer".into()), "Bearer with nothing"),
        (Some("Bearer ".into()), "Bearer with a blank"),
        (Some(k.clone()), "the key without a scheme"),
        (Some("Bearer not-a-key".into()), "malformed key"),
        (Some(format!("Bearer {unknown}")), "unknown key"),
        (
            Some("Bearer ts_00000000_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA".into()),
            "unknown key",
        ),
        (Some(format!("Bearer {revoked}")), "revoked key"),
    ];
    for path in ["/api/v1/traces", "/api/v1/traces/t01"] {
        for (header, what) in &cases {
            let mut req = server.client.get(server.url(path));
            if let Some(h) = header {
                req = req.header("authorization", h);
            }
            let r = server.send(req).await;
            assert_eq!(r.status, 401, "{what} on {path}: {:#}", r.body);
            assert_eq!(r.error_code(), "UNAUTHORIZED", "{what}");
            assert_eq!(r.header("www-authenticate"), Some("Bearer"), "{what}");
            let (limit, remaining, _) = r.rate();
            assert_eq!(
                (limit, remaining),
                (600, 600),
                "unauthenticated: full quota reported"
            );
        }
    }
    // POST and DELETE are guarded as well.
    let r = server
        .send(server.client.post(server.url("/api/v1/traces")).body("{}"))
        .await;
    assert_eq!(r.status, 401);
    let r = server
        .send(server.client.delete(server.url("/api/v1/traces/t01")))
        .await;
    assert_eq!(r.status, 401);
    // The valid key still works, and the scheme is case-insensitive.
    let r = server
        .send(
            server
                .client
                .get(server.url("/api/v1/traces?limit=1"))
                .header("authorization", format!("bearer {k}")),
        )
        .await;
    assert_eq!(r.status, 200);
}

#[tokio::test]
async fn status_404_is_the_same_for_missing_and_foreign_ids() {
    let (server, k, store) = seeded().await;
    store
        .ingest_json("other", serde_json::json!({"traces": [trace_json("foreign-1", "x", "2026-03-01T00:00:00Z", &[])]}).to_string().as_bytes())
        .expect("ingest other");
    let missing = server.get("/api/v1/traces/no-such-trace", Some(&k)).await;
    let foreign = server.get("/api/v1/traces/foreign-1", Some(&k)).await;
    assert_eq!(missing.status, 404);
    assert_eq!(missing.error_code(), "NOT_FOUND");
    assert_eq!(
        (foreign.status, &foreign.body),
        (missing.status, &missing.body)
    );
    let missing = server.delete("/api/v1/traces/no-such-trace", &k).await;
    let foreign = server.delete("/api/v1/traces/foreign-1", &k).await;
    assert_eq!(missing.status, 404);
    assert_eq!(
        (foreign.status, &foreign.body),
        (missing.status, &missing.body)
    );
    // Odd ids are still just "not found".
    for id in ["%20", "a%2Fb", &"x".repeat(300), "%FF"] {
        let r = server.get(&format!("/api/v1/traces/{id}"), Some(&k)).await;
        assert_eq!((r.status, &r.body), (404, &missing.body), "{id}");
    }
    assert!(
        store.get_trace("other", "foreign-1").is_ok(),
        "the foreign trace is untouched"
    );
}

#[tokio::test]
async fn status_413_for_bodies_over_five_mib() {
    let (server, k, store) = seeded().await;
    let limit = tracestore::limits::MAX_BATCH_BYTES;
    // Just over the library's limit (decided by the library), and far over it (refused by the
    // server before buffering): the same answer.
    for size in [limit + 1, limit + 2 * 1024 * 1024] {
        let mut body = String::from("{\"traces\":[");
        body.push_str(&" ".repeat(size - body.len() - 2));
        body.push_str("]}");
        assert_eq!(body.len(), size);
        let r = server.post("/api/v1/traces", &k, body).await;
        assert_eq!(r.status, 413, "{size} bytes: {:#}", r.body);
        assert_eq!(r.error_code(), "PAYLOAD_TOO_LARGE");
        assert!(r.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains(&limit.to_string()));
        r.rate();
    }
    // A body at the limit is the library's to validate: this one is valid JSON with no traces.
    let mut body = String::from("{\"traces\":[");
    body.push_str(&" ".repeat(limit - body.len() - 2));
    body.push_str("]}");
    let r = server.post("/api/v1/traces", &k, body).await;
    assert_eq!(r.status, 200, "{:#}", r.body);
    assert_eq!(
        store
            .query_params("acme", [("limit", "100")])
            .unwrap()
            .traces
            .len(),
        30
    );
}

#[tokio::test]
async fn status_429_with_reset_and_retry_after() {
    let store = memory_store();
    let (a, b) = (key(&store, "acme"), key(&store, "acme"));
    let config = ServerConfig {
        rate_limit: 3,
        rate_window: Duration::from_secs(60),
        ..ServerConfig::default()
    };
    let server = TestServer::start_with(store, config).await;
    for expected_remaining in [2, 1, 0] {
        let r = server.get("/api/v1/traces", Some(&a)).await;
        assert_eq!(r.status, 200);
        let (limit, remaining, reset) = r.rate();
        assert_eq!((limit, remaining), (3, expected_remaining));
        assert!((1..=60).contains(&reset), "{reset}");
    }
    for path in ["/api/v1/traces", "/api/v1/traces/anything"] {
        let r = server.get(path, Some(&a)).await;
        assert_eq!(r.status, 429, "{:#}", r.body);
        assert_eq!(r.error_code(), "RATE_LIMITED");
        let (limit, remaining, reset) = r.rate();
        assert_eq!((limit, remaining), (3, 0));
        assert!((1..=60).contains(&reset), "{reset}");
        assert_eq!(r.header("retry-after"), Some(reset.to_string().as_str()));
    }
    // Another key has its own quota.
    let r = server.get("/api/v1/traces", Some(&b)).await;
    assert_eq!((r.status, r.rate().1), (200, 2));
}

#[tokio::test]
async fn failed_auth_consumes_no_quota() {
    let store = memory_store();
    let good = key(&store, "acme");
    let config = ServerConfig {
        rate_limit: 2,
        rate_window: Duration::from_secs(60),
        ..ServerConfig::default()
    };
    let server = TestServer::start_with(store, config).await;
    let wrong = format!("{}Z", &good[..good.len() - 1]);
    for _ in 0..5 {
        let r = server.get("/api/v1/traces", Some(&wrong)).await;
        assert_eq!((r.status, r.rate().1), (401, 2));
        let r = server.get("/api/v1/traces", None).await;
        assert_eq!((r.status, r.rate().1), (401, 2));
    }
    for expected_remaining in [1, 0] {
        let r = server.get("/api/v1/traces", Some(&good)).await;
        assert_eq!((r.status, r.rate().1), (200, expected_remaining));
    }
    assert_eq!(server.get("/api/v1/traces", Some(&good)).await.status, 429);
}

#[tokio::test]
async fn every_response_carries_ratelimit_headers() {
    let (server, k, _) = seeded().await;
    let requests = vec![
        ("healthz", server.client.get(server.url("/healthz"))),
        ("openapi", server.client.get(server.url("/openapi.json"))),
        ("no route", server.client.get(server.url("/nope"))),
        (
            "wrong method",
            server.client.put(server.url("/api/v1/traces")),
        ),
        ("401", server.client.get(server.url("/api/v1/traces"))),
        (
            "400",
            server
                .client
                .get(server.url("/api/v1/traces?limit=0"))
                .bearer_auth(&k),
        ),
        (
            "404",
            server
                .client
                .get(server.url("/api/v1/traces/none"))
                .bearer_auth(&k),
        ),
        (
            "200",
            server
                .client
                .get(server.url("/api/v1/traces"))
                .bearer_auth(&k),
        ),
        (
            "400 ingest",
            server
                .client
                .post(server.url("/api/v1/traces"))
                .bearer_auth(&k)
                .body("not json"),
        ),
    ];
    for (what, req) in requests {
        let r = server.send(req).await;
        let (limit, remaining, reset) = r.rate();
        assert_eq!(limit, 600, "{what}");
        assert!(remaining <= limit && reset <= 60, "{what}");
    }
    let r = server.get("/healthz", None).await;
    assert_eq!(r.data()["status"], "ok");
    assert_eq!(r.rate(), (600, 600, 60));
    let r = server.get("/nope", None).await;
    assert_eq!((r.status, r.error_code()), (404, "NOT_FOUND"));
}
