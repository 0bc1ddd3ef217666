//! Tenant isolation: two projects hold identical trace ids; a key sees only its own project's
//! traces, ids and cursors.

mod common;

use common::{key, memory_store, trace_json, walk_ids, TestServer};
use serde_json::json;

const N: usize = 250;

fn batch(project: &str) -> String {
    let items: Vec<_> = (0..N)
        .map(|i| {
            let mut t = trace_json(
                &format!("shared-{i:03}"),
                "support-agent",
                &format!("2026-03-{:02}T{:02}:00:00Z", 1 + i % 28, i % 24),
                &["production"],
            );
            t["metadata"] = json!({ "owner": project });
            t
        })
        .collect();
    json!({ "traces": items }).to_string()
}

#[tokio::test]
async fn a_key_sees_only_its_own_project() {
    let store = memory_store();
    for p in ["alpha", "beta"] {
        store.ingest_json(p, batch(p).as_bytes()).expect("ingest");
    }
    let (ka, kb, kc) = (
        key(&store, "alpha"),
        key(&store, "beta"),
        key(&store, "empty"),
    );
    let server = TestServer::start(store).await;

    // Listing: each key walks exactly its N traces, all of them its own.
    for (k, owner) in [(&ka, "alpha"), (&kb, "beta")] {
        let ids = walk_ids(&server, k, "limit=100").await;
        assert_eq!(ids.len(), N, "{owner}");
        let r = server
            .get("/api/v1/traces?limit=100&name=support", Some(k))
            .await;
        for t in r.data()["traces"].as_array().unwrap() {
            assert_eq!(t["metadata"]["owner"], owner);
        }
    }
    // The same id resolves to each project's own trace.
    for (k, owner) in [(&ka, "alpha"), (&kb, "beta")] {
        let r = server.get("/api/v1/traces/shared-007", Some(k)).await;
        assert_eq!(r.data()["metadata"]["owner"], owner);
    }
    // A project with no data sees nothing, and ids of others are "not found".
    let r = server.get("/api/v1/traces", Some(&kc)).await;
    assert_eq!(r.data()["traces"].as_array().unwrap().len(), 0);
    assert!(r.data()["nextCursor"].is_null());
    let foreign = server.get("/api/v1/traces/shared-007", Some(&kc)).await;
    let missing = server.get("/api/v1/traces/never-existed", Some(&kc)).await;
    assert_eq!((foreign.status, &foreign.body), (404, &missing.body));

    // Deleting through one key leaves the other project's trace of the same id alone.
    assert_eq!(
        server.delete("/api/v1/traces/shared-007", &ka).await.status,
        200
    );
    assert_eq!(
        server
            .get("/api/v1/traces/shared-007", Some(&ka))
            .await
            .status,
        404
    );
    let r = server.get("/api/v1/traces/shared-007", Some(&kb)).await;
    assert_eq!(r.data()["metadata"]["owner"], "beta");
    assert_eq!(walk_ids(&server, &kb, "limit=100").await.len(), N);
    assert_eq!(walk_ids(&server, &ka, "limit=100").await.len(), N - 1);
}

#[tokio::test]
async fn a_cursor_from_another_project_is_a_400() {
    let store = memory_store();
    for p in ["alpha", "beta"] {
        store.ingest_json(p, batch(p).as_bytes()).expect("ingest");
    }
    let (ka, kb) = (key(&store, "alpha"), key(&store, "beta"));
    let server = TestServer::start(store).await;
    for query in ["limit=10", "limit=10&status=OK&tags=production"] {
        let r = server
            .get(&format!("/api/v1/traces?{query}"), Some(&ka))
            .await;
        let cursor = r.data()["nextCursor"].as_str().expect("cursor").to_string();
        // The owner may continue...
        assert_eq!(
            server
                .get(&format!("/api/v1/traces?cursor={cursor}"), Some(&ka))
                .await
                .status,
            200
        );
        // ...the other project may not, even though it has the very same ids and positions.
        let r = server
            .get(&format!("/api/v1/traces?cursor={cursor}"), Some(&kb))
            .await;
        assert_eq!(r.status, 400, "{:#}", r.body);
        assert_eq!(r.error_code(), "VALIDATION_ERROR");
        assert_eq!(r.detail_fields(), vec!["cursor"]);
        assert!(r.body["data"].is_null());
    }
}
