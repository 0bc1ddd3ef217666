//! HTTP edges below the contract's rules: the ingest Content-Type (415), a stalled body (408),
//! a known route with another method (405), a declared length over the limit (413, before the
//! body is sent) and query strings that are not UTF-8 (400 naming the parameter).

mod common;

use common::{key, memory_store, read_raw_response, send_partial, trace_json, RawResp, TestServer};
use serde_json::json;
use std::time::{Duration, Instant};
use tracestore_server::{AppState, ServerConfig};

fn one_trace(id: &str) -> String {
    json!({"traces": [trace_json(id, "support-agent", "2026-03-14T10:00:00Z", &[])]}).to_string()
}

#[tokio::test]
async fn ingest_refuses_bodies_not_declared_json_with_415() {
    let store = memory_store();
    let k = key(&store, "acme");
    let server = TestServer::start(store.clone()).await;
    for content_type in [
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
        Some("text/json"),
        Some("application/jsonl"),
        None,
    ] {
        let mut req = server
            .client
            .post(server.url("/api/v1/traces"))
            .bearer_auth(&k)
            .body(one_trace("refused"));
        if let Some(ct) = content_type {
            req = req.header("content-type", ct);
        }
        let r = server.send(req).await;
        assert_eq!(
            (r.status, r.error_code()),
            (415, "UNSUPPORTED_MEDIA_TYPE"),
            "{content_type:?}: {:#}",
            r.body
        );
        let msg = r.body["error"]["message"].as_str().unwrap();
        assert!(msg.contains("application/json"), "{msg}");
        r.rate();
    }
    assert!(
        store.get_trace("acme", "refused").is_err(),
        "nothing written"
    );
    // Parameters and case do not matter.
    for (i, ct) in ["application/json; charset=utf-8", "Application/JSON"]
        .iter()
        .enumerate()
    {
        let id = format!("ok-{i}");
        let req = server
            .client
            .post(server.url("/api/v1/traces"))
            .bearer_auth(&k)
            .header("content-type", *ct)
            .body(one_trace(&id));
        let r = server.send(req).await;
        assert_eq!(r.status, 200, "{ct}: {:#}", r.body);
        assert!(store.get_trace("acme", &id).is_ok());
    }
    // The key is checked first: no key is still a 401.
    let r = server
        .send(
            server
                .client
                .post(server.url("/api/v1/traces"))
                .header("content-type", "text/plain")
                .body("x"),
        )
        .await;
    assert_eq!(r.status, 401);
}

fn post_head(path: &str, k: &str, content_length: usize) -> String {
    format!(
        "POST {path} HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {k}\r\n\
         Content-Type: application/json\r\nContent-Length: {content_length}\r\n\r\n"
    )
}

fn assert_timed_out(r: &RawResp) {
    assert_eq!(r.status, 408, "{:#}", r.body);
    assert_eq!(r.body["error"]["code"], "REQUEST_TIMEOUT", "{:#}", r.body);
    assert!(r.body["data"].is_null());
    assert_eq!(r.header("connection"), Some("close"));
    assert!(r.header("ratelimit-limit").is_some());
}

#[tokio::test]
async fn a_client_that_stalls_mid_body_gets_a_408() {
    let store = memory_store();
    let k = key(&store, "acme");
    let admin = store.create_admin_key().expect("admin").key;
    let state = AppState::new(store.clone(), &ServerConfig::default())
        .with_body_read_timeout(Duration::from_millis(300));
    let server = TestServer::start_state(state).await;
    let body = one_trace("stalled");
    for (path, key) in [("/api/v1/traces", &k), ("/api/v1/admin/keys", &admin)] {
        let started = Instant::now();
        let stream = send_partial(
            &server,
            &post_head(path, key, body.len()),
            &body.as_bytes()[..body.len() / 2],
        );
        let r = read_raw_response(stream, Duration::from_secs(10)).await;
        assert_timed_out(&r);
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{path}: {:?}",
            started.elapsed()
        );
    }
    assert!(store.get_trace("acme", "stalled").is_err());
    // The server still answers, and a whole body is ingested.
    let r = server.post("/api/v1/traces", &k, body).await;
    assert_eq!(r.status, 200, "{:#}", r.body);
}

#[tokio::test]
async fn a_body_still_arriving_at_the_request_timeout_is_a_408_not_a_500() {
    let store = memory_store();
    let k = key(&store, "acme");
    let config = ServerConfig {
        request_timeout: Duration::from_millis(400),
        ..ServerConfig::default()
    };
    let server = TestServer::start_with(store, config).await;
    let body = one_trace("stalled");
    let stream = send_partial(&server, &post_head("/api/v1/traces", &k, body.len()), b"{");
    let r = read_raw_response(stream, Duration::from_secs(10)).await;
    assert_timed_out(&r);
}

#[tokio::test]
async fn other_methods_on_known_routes_are_405_in_the_envelope_with_allow() {
    let store = memory_store();
    let k = key(&store, "acme");
    let config = ServerConfig {
        rate_limit: 2,
        rate_window: Duration::from_secs(60),
        ..ServerConfig::default()
    };
    let server = TestServer::start_with(store, config).await;
    let c = &server.client;
    let cases = vec![
        (
            c.put(server.url("/api/v1/traces")),
            "/api/v1/traces",
            vec!["GET", "POST", "DELETE"],
        ),
        (
            c.patch(server.url("/api/v1/traces/t1")),
            "/api/v1/traces/{id}",
            vec!["GET", "DELETE"],
        ),
        (
            c.post(server.url("/api/v1/traces/t1")),
            "/api/v1/traces/{id}",
            vec!["GET", "DELETE"],
        ),
        (
            c.put(server.url("/api/v1/admin/keys")),
            "/api/v1/admin/keys",
            vec!["GET", "POST"],
        ),
        (
            c.get(server.url("/api/v1/admin/keys/abc")),
            "/api/v1/admin/keys/{prefix}",
            vec!["DELETE"],
        ),
        (c.post(server.url("/healthz")), "/healthz", vec!["GET"]),
        (
            c.delete(server.url("/openapi.json")),
            "/openapi.json",
            vec!["GET"],
        ),
        (
            c.request(reqwest::Method::OPTIONS, server.url("/api/v1/traces")),
            "/api/v1/traces",
            vec!["GET"],
        ),
    ];
    for (with_key, (req, path, allowed)) in
        cases.into_iter().enumerate().map(|(i, c)| (i % 2 == 0, c))
    {
        let req = if with_key { req.bearer_auth(&k) } else { req };
        let r = server.send(req).await;
        assert_eq!(
            (r.status, r.error_code()),
            (405, "METHOD_NOT_ALLOWED"),
            "{path}: {:#}",
            r.body
        );
        assert_eq!(r.header("content-type"), Some("application/json"));
        let allow = r
            .header("allow")
            .unwrap_or_else(|| panic!("Allow on {path}"));
        let listed: Vec<&str> = allow.split(',').map(str::trim).collect();
        for m in &allowed {
            assert!(listed.contains(m), "{m} in Allow: {allow} on {path}");
            let msg = r.body["error"]["message"].as_str().unwrap();
            assert!(msg.contains(m), "{m} in {msg:?} on {path}");
        }
        // Not counted: the whole quota is left.
        assert_eq!(r.rate().1, 2, "{path} {with_key} {:?}", r.headers);
    }
    for remaining in [1, 0] {
        let r = server.get("/api/v1/traces", Some(&k)).await;
        assert_eq!((r.status, r.rate().1), (200, remaining));
    }
    // Even over quota, a wrong method is a 405.
    let r = server
        .send(c.put(server.url("/api/v1/traces")).bearer_auth(&k))
        .await;
    assert_eq!(r.status, 405);
    assert_eq!(server.get("/api/v1/traces", Some(&k)).await.status, 429);
}

#[tokio::test]
async fn a_declared_length_over_the_limit_is_413_before_the_body_is_sent() {
    let store = memory_store();
    let k = key(&store, "acme");
    let admin = store.create_admin_key().expect("admin").key;
    let server = TestServer::start(store.clone()).await;
    let limit = tracestore::limits::MAX_BATCH_BYTES;
    for (path, key, declared, limit) in [
        ("/api/v1/traces", &k, limit + 1, limit),
        ("/api/v1/traces", &k, 1 << 30, limit),
        (
            "/api/v1/admin/keys",
            &admin,
            1 << 20,
            tracestore_server::api::MAX_ADMIN_BODY_BYTES,
        ),
    ] {
        // Headers only: not one byte of the body is sent.
        let started = Instant::now();
        let stream = send_partial(&server, &post_head(path, key, declared), b"");
        let r = read_raw_response(stream, Duration::from_secs(5)).await;
        assert_eq!(r.status, 413, "{path} {declared}: {:#}", r.body);
        assert_eq!(r.body["error"]["code"], "PAYLOAD_TOO_LARGE");
        assert!(r.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains(&limit.to_string()));
        assert!(r.header("ratelimit-limit").is_some());
        assert!(started.elapsed() < Duration::from_secs(3));
    }
    // With `Expect: 100-continue` the client is told before it sends anything.
    let head = post_head("/api/v1/traces", &k, 1 << 30)
        .replace("\r\n\r\n", "\r\nExpect: 100-continue\r\n\r\n");
    let stream = send_partial(&server, &head, b"");
    let r = read_raw_response(stream, Duration::from_secs(5)).await;
    assert_eq!(r.status, 413);
    // A declared length within the limit is read as usual.
    let r = server.post("/api/v1/traces", &k, one_trace("fits")).await;
    assert_eq!(r.status, 200);
}

#[tokio::test]
async fn query_bytes_that_are_not_utf8_are_a_400_naming_the_parameter() {
    let store = memory_store();
    let k = key(&store, "acme");
    store
        .ingest_json("acme", one_trace("t1").as_bytes())
        .expect("ingest");
    let server = TestServer::start(store).await;
    for (query, fields) in [
        ("name=%FF%FE", vec!["name"]),
        ("tags=%C3", vec!["tags"]),
        ("cursor=%80abc", vec!["cursor"]),
        ("%FF=1", vec!["%FF"]),
        ("na%FFme=x", vec!["na%FFme"]),
        ("=x", vec![""]),
        ("=", vec![""]),
        // With other problems, every one is named.
        ("name=%FF&limit=0", vec!["name", "limit"]),
        ("=x&status=maybe", vec!["", "status"]),
        ("name=%FF&name=ok", vec!["name"]),
    ] {
        let r = server
            .get(&format!("/api/v1/traces?{query}"), Some(&k))
            .await;
        assert_eq!(
            (r.status, r.error_code()),
            (400, "VALIDATION_ERROR"),
            "{query}: {:#}",
            r.body
        );
        assert_eq!(r.detail_fields(), fields, "{query}: {:#}", r.body);
        let msg = r.body["error"]["details"][0]["message"].as_str().unwrap();
        if fields[0].is_empty() {
            assert!(msg.contains("parameter name is empty"), "{query}: {msg}");
        } else {
            assert!(msg.contains("not valid UTF-8"), "{query}: {msg}");
        }
    }
    // Percent-encoded UTF-8 is just text.
    let r = server
        .get("/api/v1/traces?name=%E2%9C%93&limit=5", Some(&k))
        .await;
    assert_eq!(r.data()["traces"], json!([]));
    let r = server
        .get("/api/v1/traces?name=support%2Dagent", Some(&k))
        .await;
    assert_eq!(r.data()["traces"].as_array().unwrap().len(), 1);
}
