//! `GET /api/v1/traces?orderBy=…` and the export in that order: every order over HTTP, cursors
//! that keep their order, the 400s of a bad value and of a cursor given another order.

mod common;

use common::{key, memory_store, trace_json, TestServer};
use serde_json::{json, Value};

/// Six traces with distinct costs and tokens, two of them running.
async fn server() -> (TestServer, String) {
    let store = memory_store();
    let server = TestServer::start(store.clone()).await;
    let acme = key(&store, "acme");
    let traces: Vec<Value> = (0..6)
        .map(|i| {
            let mut t = trace_json(
                &format!("t{i}"),
                "agent",
                &format!("2026-03-14T10:0{i}:00Z"),
                &[],
            );
            t["spans"] = json!([{"id": "s", "name": "llm", "cost": format!("0.{}", (i * 7) % 6),
                "inputTokens": (i * 5) % 6, "outputTokens": 0}]);
            if i % 3 != 0 {
                t["endTime"] = json!(format!("2026-03-14T10:0{i}:0{}Z", i));
            } else {
                t.as_object_mut().unwrap().remove("endTime");
            }
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
    (server, acme)
}

/// Every id of a walk, two per page, continuing with the cursor alone.
async fn walk(server: &TestServer, key: &str, order: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut q = format!("limit=2&orderBy={order}");
    loop {
        let r = server.get(&format!("/api/v1/traces?{q}"), Some(key)).await;
        assert_eq!(r.status, 200, "{:#}", r.body);
        let data = r.data().clone();
        out.extend(
            data["traces"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t["id"].as_str().unwrap().to_string()),
        );
        match data["nextCursor"].as_str() {
            Some(c) => q = format!("limit=2&cursor={c}"),
            None => return out,
        }
    }
}

#[tokio::test]
async fn every_order_over_http() {
    let (server, acme) = server().await;
    let ids = |v: &[usize]| v.iter().map(|i| format!("t{i}")).collect::<Vec<_>>();
    // costs: t0 0.0, t1 0.1, t2 0.2, t3 0.3, t4 0.4, t5 0.5; tokens: 0 5 4 3 2 1;
    // durations: t1 1 s, t2 2 s, t4 4 s, t5 5 s; t0 and t3 are running.
    assert_eq!(
        walk(&server, &acme, "startTime.desc").await,
        ids(&[5, 4, 3, 2, 1, 0])
    );
    assert_eq!(
        walk(&server, &acme, "startTime.asc").await,
        ids(&[0, 1, 2, 3, 4, 5])
    );
    assert_eq!(
        walk(&server, &acme, "totalCost.desc").await,
        ids(&[5, 4, 3, 2, 1, 0])
    );
    assert_eq!(
        walk(&server, &acme, "totalCost.asc").await,
        ids(&[0, 1, 2, 3, 4, 5])
    );
    assert_eq!(
        walk(&server, &acme, "totalTokens.desc").await,
        ids(&[1, 2, 3, 4, 5, 0])
    );
    assert_eq!(
        walk(&server, &acme, "totalTokens.asc").await,
        ids(&[0, 5, 4, 3, 2, 1])
    );
    assert_eq!(
        walk(&server, &acme, "durationMs.desc").await,
        ids(&[5, 4, 2, 1, 3, 0])
    );
    assert_eq!(
        walk(&server, &acme, "durationMs.asc").await,
        ids(&[1, 2, 4, 5, 3, 0])
    );

    // The export streams the same order.
    let res = server
        .client
        .get(server.url("/api/v1/export/traces?orderBy=totalTokens.asc"))
        .bearer_auth(&acme)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let body = res.text().await.unwrap();
    let exported: Vec<String> = body
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["id"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(exported, ids(&[0, 5, 4, 3, 2, 1]));
}

#[tokio::test]
async fn bad_orders_and_a_cursor_of_another_order_are_400() {
    let (server, acme) = server().await;
    for bad in ["", "cost", "totalCost", "totalcost.desc", "startTime.DESC"] {
        let r = server
            .get(&format!("/api/v1/traces?orderBy={bad}"), Some(&acme))
            .await;
        assert_eq!(r.status, 400, "{bad}");
        assert_eq!(
            r.body["error"]["details"][0]["field"], "orderBy",
            "{:#}",
            r.body
        );
    }
    let r = server
        .get("/api/v1/traces?limit=2&orderBy=totalCost.desc", Some(&acme))
        .await;
    let c = r.data()["nextCursor"].as_str().unwrap().to_string();
    let r = server
        .get(
            &format!("/api/v1/traces?cursor={c}&orderBy=totalCost.asc"),
            Some(&acme),
        )
        .await;
    assert_eq!(r.status, 400);
    assert_eq!(
        r.body["error"]["details"][0]["field"], "cursor",
        "{:#}",
        r.body
    );
    let r = server
        .get(
            &format!("/api/v1/traces?cursor={c}&orderBy=totalCost.desc"),
            Some(&acme),
        )
        .await;
    assert_eq!(r.status, 200, "{:#}", r.body);
}
