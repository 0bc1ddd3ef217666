//! A retried POST (the client did not see the first answer) leaves the store exactly as one
//! delivery did, for traces, spans and scores sent without ids; the answer lists the ids.

mod common;

use common::{key, memory_store, TestServer};
use serde_json::{json, Value};

#[tokio::test]
async fn a_retried_post_without_ids_changes_nothing() {
    let store = memory_store();
    let k = key(&store, "acme");
    let server = TestServer::start(store).await;
    let body = json!({"traces": [
        {
            "name": "support-agent",
            "startTime": "2026-03-14T10:00:00Z",
            "endTime": "2026-03-14T10:00:02.500Z",
            "spans": [
                {"name": "llm", "cost": "0.1", "inputTokens": 10},
                {"name": "tool", "cost": "0.0034"},
                {"name": "llm", "cost": "0.001"}
            ],
            "scores": [{"name": "quality", "value": 0.9}, {"name": "label", "value": "ok"}]
        },
        {"id": "given", "name": "other", "startTime": "2026-03-14T10:00:01Z",
         "spans": [{"name": "x", "cost": 1}]}
    ]})
    .to_string();
    let first = server.post("/api/v1/traces", &k, body.clone()).await;
    assert_eq!(first.status, 200, "{:#}", first.body);
    let ids: Vec<Value> = first.data()["ids"].as_array().expect("data.ids").clone();
    assert_eq!(ids.len(), 2);
    assert_eq!(ids[1], "given");
    let list1 = server.get("/api/v1/traces?limit=10", Some(&k)).await.body;
    let id0 = ids[0].as_str().unwrap();
    let detail1 = server
        .get(&format!("/api/v1/traces/{id0}"), Some(&k))
        .await
        .body;
    assert_eq!(list1["data"]["traces"].as_array().unwrap().len(), 2);
    assert_eq!(detail1["data"]["spanCount"], 3);
    assert_eq!(detail1["data"]["scoreCount"], 2);
    assert_eq!(detail1["data"]["totalCost"], "0.1044");

    let again = server.post("/api/v1/traces", &k, body).await;
    assert_eq!(again.status, 200, "{:#}", again.body);
    assert_eq!(again.data()["ids"].as_array().unwrap(), &ids);
    let list2 = server.get("/api/v1/traces?limit=10", Some(&k)).await.body;
    let detail2 = server
        .get(&format!("/api/v1/traces/{id0}"), Some(&k))
        .await
        .body;
    assert_eq!(list2, list1);
    assert_eq!(detail2, detail1);
}
