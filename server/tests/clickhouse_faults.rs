//! The server on the ClickHouse engine while ClickHouse goes away: every route answers 503
//! `UNAVAILABLE` with `Retry-After` (never a 500, never an internal detail), and everything
//! works again, with nothing lost, once ClickHouse is back. Starts a private ClickHouse server
//! (`scripts/clickhouse-server.sh`); without `clickhouse-server` installed it says so and does
//! not run, unless `TRACESTORE_REQUIRE_CLICKHOUSE=1`.

mod common;

#[path = "../../tests/support/clickhouse_server.rs"]
mod clickhouse_server;

use common::{key, trace_json, TestServer};
use serde_json::json;
use std::sync::Arc;
use tracestore::{ClickHouseConfig, Store};

#[tokio::test]
async fn clickhouse_down_is_503_with_retry_after_and_the_server_recovers() {
    let Some(ch) = clickhouse_server::PrivateClickHouse::start() else {
        return;
    };
    let url = ch.url();
    let store = tokio::task::spawn_blocking(move || {
        Store::builder()
            .open_clickhouse(&ClickHouseConfig::new(url).database("faults"))
            .unwrap()
    })
    .await
    .unwrap();
    let store = Arc::new(store);
    let k = key(&store, "acme");
    let server = TestServer::start(store).await;
    let body =
        json!({ "traces": [trace_json("t1", "support-agent", "2026-03-14T10:00:00Z", &["a"])] });
    let r = server.post("/api/v1/traces", &k, body.to_string()).await;
    assert_eq!(r.status, 200, "{:#}", r.body);

    ch.kill();
    let body2 =
        json!({ "traces": [trace_json("t2", "support-agent", "2026-03-14T10:00:01Z", &[])] });
    let reqs = [
        server.get("/api/v1/traces", Some(&k)).await,
        server
            .get("/api/v1/traces?include=total,facets", Some(&k))
            .await,
        server.get("/api/v1/traces/t1", Some(&k)).await,
        server.post("/api/v1/traces", &k, body2.to_string()).await,
        server.delete("/api/v1/traces/t1", &k).await,
        server.get("/api/v1/export/traces", Some(&k)).await,
    ];
    for (i, r) in reqs.iter().enumerate() {
        assert_eq!(r.status, 503, "request {i}: {:#}", r.body);
        assert_eq!(r.header("retry-after"), Some("5"), "request {i}");
        assert_eq!(r.error_code(), "UNAVAILABLE", "request {i}");
        let text = r.body.to_string();
        for leak in ["127.0.0.1", "Connection refused", "hyper", "clickhouse::"] {
            assert!(!text.contains(leak), "request {i} leaks {leak:?}: {text}");
        }
    }

    ch.restart();
    let r = server.get("/api/v1/traces", Some(&k)).await;
    assert_eq!(r.status, 200, "{:#}", r.body);
    let ids: Vec<&str> = r.data()["traces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        ["t1"],
        "what was acknowledged survives; what was refused is not there"
    );
    let r = server.post("/api/v1/traces", &k, body2.to_string()).await;
    assert_eq!(r.status, 200, "the retried ingest lands: {:#}", r.body);
    assert_eq!(server.get("/api/v1/traces/t2", Some(&k)).await.status, 200);
}
