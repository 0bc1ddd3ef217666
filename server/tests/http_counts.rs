//! `GET /api/v1/traces` with `include=total,facets`, `anyTags`, `excludeTags` and the span
//! conditions: the shapes of `data` (neither key without `include`), exact counts over the
//! whole matching set on every page (the `models` facet included), the parameters' 400s, and
//! isolation between projects.

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
        ],
        "models": [{"value": "gpt-4o", "count": 3}]
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
        json!({"status": {"OK": 0, "ERROR": 0}, "names": [], "tags": [], "models": []})
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

#[tokio::test]
async fn span_conditions_hold_on_one_span_and_models_are_counted() {
    let (server, acme, other) = server().await;
    // `f` has an ERROR span of kind TOOL and an OK LLM span of another model; `g` an ERROR LLM
    // span of that model.
    let extra = json!({"traces": [
        {"id": "f", "name": "planner", "startTime": "2026-03-14T11:00:00Z", "spans": [
            {"id": "s1", "name": "Chat-Completion", "model": "claude-sonnet", "kind": "LLM"},
            {"id": "s2", "name": "search_orders", "kind": "TOOL", "status": "ERROR"}]},
        {"id": "g", "name": "planner", "startTime": "2026-03-14T11:01:00Z", "spans": [
            {"id": "s1", "name": "chat", "model": "claude-sonnet", "kind": "LLM", "status": "ERROR"}]}
    ]});
    let r = server
        .post("/api/v1/traces", &acme, extra.to_string())
        .await;
    assert_eq!(r.status, 200, "{:#}", r.body);
    let get = |q: &'static str| {
        let (server, acme) = (&server, &acme);
        async move {
            let r = server.get(&format!("/api/v1/traces?{q}"), Some(acme)).await;
            assert_eq!(r.status, 200, "{q}: {:#}", r.body);
            r.data().clone()
        }
    };
    let data = get("spanModel=claude-sonnet&include=total,facets").await;
    assert_eq!(ids(&data), ["g", "f"]);
    assert_eq!(data["total"], 2);
    assert_eq!(
        data["facets"]["models"],
        json!([{"value": "claude-sonnet", "count": 2}])
    );
    // The same span: only `g` has an LLM span with status ERROR; `f`'s ERROR span is a tool.
    let data = get("spanKind=llm&spanStatus=error&include=total").await;
    assert_eq!(ids(&data), ["g"]);
    assert_eq!(data["total"], 1);
    assert_eq!(ids(&get("spanKind=TOOL&spanStatus=ERROR").await), ["f"]);
    assert_eq!(
        ids(&get("spanName=CHAT&spanModel=claude-sonnet&spanStatus=OK").await),
        ["f"]
    );
    // The traces of `server()` each have an llm-call span of gpt-4o and a tool span.
    let data = get("spanName=LLM-CALL&limit=2&include=facets").await;
    assert_eq!(ids(&data), ["e", "d"]);
    assert_eq!(
        data["facets"]["models"],
        json!([{"value": "gpt-4o", "count": 5}])
    );
    let cursor = data["nextCursor"].as_str().unwrap().to_string();
    let r = server
        .get(
            &format!("/api/v1/traces?cursor={cursor}&spanName=llm-call&limit=10"),
            Some(&acme),
        )
        .await;
    assert_eq!(ids(r.data()), ["c", "b", "a"]);
    // Every trace counted once per model it has, by count desc, then value asc.
    let data = get("include=facets").await;
    assert_eq!(
        data["facets"]["models"],
        json!([{"value": "gpt-4o", "count": 5}, {"value": "claude-sonnet", "count": 2}])
    );
    // Empty spanName and spanModel mean no filter; another project's spans are not seen.
    assert_eq!(get("spanName=&spanModel=&include=total").await["total"], 7);
    let r = server
        .get(
            "/api/v1/traces?spanModel=claude-sonnet&include=total,facets",
            Some(&other),
        )
        .await;
    assert_eq!(r.data()["total"], 0);
    assert_eq!(r.data()["facets"]["models"], json!([]));
    // Bad values: every one named in one 400.
    let r = server
        .get(
            &format!(
                "/api/v1/traces?spanKind=robot&spanStatus=&spanName={}",
                "n".repeat(257)
            ),
            Some(&acme),
        )
        .await;
    assert_eq!(r.status, 400);
    assert_eq!(r.error_code(), "VALIDATION_ERROR");
    let mut fields = r.detail_fields();
    fields.sort();
    assert_eq!(fields, ["spanKind", "spanName", "spanStatus"]);
    // A cursor refuses other span conditions.
    let r = server
        .get(
            &format!("/api/v1/traces?cursor={cursor}&spanName=tool"),
            Some(&acme),
        )
        .await;
    assert_eq!(r.status, 400);
    assert_eq!(r.detail_fields(), ["cursor"]);
}
