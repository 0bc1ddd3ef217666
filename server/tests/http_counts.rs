//! `GET /api/v1/traces` with `include=total,facets`, `anyTags` and `excludeTags`: the shapes of
//! `data` (neither key without `include`), exact counts over the whole matching set on every
//! page, the parameters' 400s, and isolation between projects.

mod common;

use common::{key, memory_store, trace_json, TestServer};
use serde_json::{json, Value};

/// Five traces in `acme` (names, statuses and tags below) and one in `other`.
async fn server() -> (TestServer, String, String) {
    let store = memory_store();
    let server = TestServer::start(store.clone()).await;
    let acme = key(&store, "acme");
    let other = key(&store, "other");
    let items = [
        ("a", "support-agent", "OK", &["production", "v2"][..]),
        ("b", "support-agent", "ERROR", &["production"][..]),
        ("c", "planner", "OK", &["staging"][..]),
        ("d", "planner", "ERROR", &["production", "canary"][..]),
        ("e", "support-agent", "OK", &[][..]),
    ];
    let traces: Vec<Value> = items
        .iter()
        .enumerate()
        .map(|(i, (id, name, status, tags))| {
            let mut t = trace_json(id, name, &format!("2026-03-14T10:0{i}:00Z"), tags);
            t["status"] = json!(status);
            t
        })
        .collect();
    let r = server
        .post(
            "/api/v1/traces",
            &acme,
            json!({ "traces": traces }).to_string(),
        )
        .await;
    assert_eq!(r.status, 200, "{:#}", r.body);
    let r = server
        .post(
            "/api/v1/traces",
            &other,
            json!({"traces": [trace_json("x", "support-agent", "2026-03-14T10:00:00Z", &["production"])]})
                .to_string(),
        )
        .await;
    assert_eq!(r.status, 200, "{:#}", r.body);
    (server, acme, other)
}

fn ids(data: &Value) -> Vec<&str> {
    data["traces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap())
        .collect()
}

#[tokio::test]
async fn include_shapes_and_exact_counts_on_every_page() {
    let (server, acme, _) = server().await;

    let r = server.get("/api/v1/traces?limit=2", Some(&acme)).await;
    let data = r.data();
    assert!(
        data.get("total").is_none() && data.get("facets").is_none(),
        "{data:#}"
    );

    let r = server
        .get("/api/v1/traces?limit=2&include=total", Some(&acme))
        .await;
    assert_eq!(r.data()["total"], 5);
    assert!(r.data().get("facets").is_none());

    let r = server
        .get(
            "/api/v1/traces?limit=2&tags=production&include=facets,total",
            Some(&acme),
        )
        .await;
    let data = r.data().clone();
    assert_eq!(ids(&data), ["d", "b"]);
    let want_facets = json!({
        "status": {"OK": 1, "ERROR": 2},
        "names": [{"value": "support-agent", "count": 2}, {"value": "planner", "count": 1}],
        "tags": [
            {"value": "production", "count": 3},
            {"value": "canary", "count": 1},
            {"value": "v2", "count": 1}
        ]
    });
    assert_eq!(data["total"], 3);
    assert_eq!(data["facets"], want_facets);
    // The next page, from the cursor alone plus include: the same counts of the whole set.
    let cursor = data["nextCursor"].as_str().unwrap();
    let r = server
        .get(
            &format!("/api/v1/traces?cursor={cursor}&include=total,facets"),
            Some(&acme),
        )
        .await;
    assert_eq!(ids(r.data()), ["a"]);
    assert_eq!(r.data()["total"], 3);
    assert_eq!(r.data()["facets"], want_facets);
    assert!(r.data()["nextCursor"].is_null());

    // A query nothing matches still has both keys, with zero counts.
    let r = server
        .get(
            "/api/v1/traces?tags=never&include=total,facets",
            Some(&acme),
        )
        .await;
    assert_eq!(r.data()["total"], 0);
    assert_eq!(
        r.data()["facets"],
        json!({"status": {"OK": 0, "ERROR": 0}, "names": [], "tags": []})
    );
}

#[tokio::test]
async fn any_and_excluded_tags() {
    let (server, acme, other) = server().await;
    let r = server
        .get("/api/v1/traces?anyTags=staging,canary", Some(&acme))
        .await;
    assert_eq!(ids(r.data()), ["d", "c"]);
    let r = server
        .get(
            "/api/v1/traces?excludeTags=production&include=total",
            Some(&acme),
        )
        .await;
    assert_eq!(ids(r.data()), ["e", "c"]);
    assert_eq!(r.data()["total"], 2);
    let r = server
        .get(
            "/api/v1/traces?anyTags=production&excludeTags=canary,v2&status=error",
            Some(&acme),
        )
        .await;
    assert_eq!(ids(r.data()), ["b"]);
    // Empty values mean no filter.
    let r = server
        .get(
            "/api/v1/traces?anyTags=&excludeTags=&include=total",
            Some(&acme),
        )
        .await;
    assert_eq!(r.data()["total"], 5);
    // Another project's traces are never counted.
    let r = server
        .get("/api/v1/traces?include=total,facets", Some(&other))
        .await;
    assert_eq!(r.data()["total"], 1);
    assert_eq!(
        r.data()["facets"]["tags"],
        json!([{"value": "production", "count": 1}])
    );
}

#[tokio::test]
async fn bad_values_are_400s_naming_every_parameter() {
    let (server, acme, _) = server().await;
    let many: Vec<String> = (0..21).map(|i| format!("t{i}")).collect();
    let r = server
        .get(
            &format!(
                "/api/v1/traces?include=count&anyTags={}&excludeTags={}",
                many.join(","),
                "x".repeat(65)
            ),
            Some(&acme),
        )
        .await;
    assert_eq!(r.status, 400);
    assert_eq!(r.error_code(), "VALIDATION_ERROR");
    let mut fields = r.detail_fields();
    fields.sort();
    assert_eq!(fields, ["anyTags", "excludeTags", "include"]);
    for bad in ["", "Total", "total,,x"] {
        let r = server
            .get(&format!("/api/v1/traces?include={bad}"), Some(&acme))
            .await;
        assert_eq!(r.status, 400, "{bad:?}");
        assert_eq!(r.detail_fields(), ["include"], "{bad:?}");
    }
}
