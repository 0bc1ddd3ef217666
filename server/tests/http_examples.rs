//! The seed document's examples against the demo dataset: its three curl commands with their
//! parameters unchanged, the commands `serve --demo` prints, and its Python pagination loop.

mod common;

use common::{demo_store, key, TestServer};
use serde_json::Value;
use std::collections::HashSet;
use tracestore_server::demo::{self, DEMO_PROJECT, EXAMPLE_DATES_TAGS_QUERY, EXAMPLE_ERRORS_QUERY};

/// Fields every trace of the seed's response example carries.
const TRACE_FIELDS: [&str; 13] = [
    "id",
    "name",
    "status",
    "startTime",
    "endTime",
    "durationMs",
    "totalCost",
    "totalTokens",
    "tags",
    "metadata",
    "spanCount",
    "scoreCount",
    "createdAt",
];

fn traces(data: &Value) -> &Vec<Value> {
    data["traces"].as_array().expect("traces is an array")
}

fn assert_newest_first(list: &[Value]) {
    for w in list.windows(2) {
        let a = (
            w[0]["startTime"].as_str().unwrap(),
            w[0]["id"].as_str().unwrap(),
        );
        let b = (
            w[1]["startTime"].as_str().unwrap(),
            w[1]["id"].as_str().unwrap(),
        );
        assert!(a > b, "not strictly newest first: {a:?} then {b:?}");
    }
}

fn assert_trace_shape(t: &Value) {
    for f in TRACE_FIELDS {
        assert!(t.get(f).is_some(), "trace lacks {f}: {t}");
    }
    assert!(
        t["totalCost"].is_string(),
        "totalCost is a decimal string: {t}"
    );
}

#[tokio::test]
async fn seed_example_1_last_20_errors_of_an_agent() {
    let (store, _) = demo_store();
    let k = key(&store, DEMO_PROJECT);
    let server = TestServer::start(store).await;
    assert_eq!(
        EXAMPLE_ERRORS_QUERY,
        "limit=20&status=ERROR&name=support-agent"
    );
    let r = server
        .get(&format!("/api/v1/traces?{EXAMPLE_ERRORS_QUERY}"), Some(&k))
        .await;
    let data = r.data();
    let list = traces(data);
    assert_eq!(
        list.len(),
        20,
        "the demo has more than 20 ERROR support-agent traces"
    );
    for t in list {
        assert_trace_shape(t);
        assert_eq!(t["status"], "ERROR");
        assert!(t["name"].as_str().unwrap().contains("support-agent"));
    }
    assert_newest_first(list);
    assert!(data["nextCursor"].is_string(), "a next page exists");
}

#[tokio::test]
async fn seed_example_2_paginate_with_the_cursor() {
    let (store, _) = demo_store();
    let k = key(&store, DEMO_PROJECT);
    let server = TestServer::start(store).await;
    let first = server
        .get(&format!("/api/v1/traces?{EXAMPLE_ERRORS_QUERY}"), Some(&k))
        .await;
    let first = first.data().clone();
    let cursor = first["nextCursor"].as_str().expect("cursor");
    // The seed's example: the cursor alone continues the query.
    let r = server
        .get(&format!("/api/v1/traces?cursor={cursor}"), Some(&k))
        .await;
    let second = traces(r.data()).clone();
    assert!(!second.is_empty());
    let seen: HashSet<&str> = traces(&first)
        .iter()
        .map(|t| t["id"].as_str().unwrap())
        .collect();
    for t in &second {
        assert_eq!(t["status"], "ERROR", "the cursor keeps the filters");
        assert!(t["name"].as_str().unwrap().contains("support-agent"));
        assert!(!seen.contains(t["id"].as_str().unwrap()), "no trace twice");
    }
    let mut both = traces(&first).clone();
    both.extend(second);
    assert_newest_first(&both);
}

#[tokio::test]
async fn seed_example_3_date_range_and_tags() {
    let (store, _) = demo_store();
    let k = key(&store, DEMO_PROJECT);
    let server = TestServer::start(store).await;
    assert_eq!(
        EXAMPLE_DATES_TAGS_QUERY,
        "startDate=2026-03-01T00:00:00Z&endDate=2026-03-15T00:00:00Z&tags=production,v2"
    );
    let r = server
        .get(
            &format!("/api/v1/traces?{EXAMPLE_DATES_TAGS_QUERY}"),
            Some(&k),
        )
        .await;
    let list = traces(r.data());
    assert!(
        !list.is_empty(),
        "the demo has production,v2 traces in early March 2026"
    );
    for t in list {
        assert_trace_shape(t);
        let start = t["startTime"].as_str().unwrap();
        assert!(
            ("2026-03-01T00:00:00.000Z".."2026-03-15T00:00:00.000Z").contains(&start),
            "{start}"
        );
        let tags: Vec<&str> = t["tags"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_str().unwrap())
            .collect();
        assert!(
            tags.contains(&"production") && tags.contains(&"v2"),
            "{tags:?}"
        );
    }
    assert_newest_first(list);
}

/// The commands `serve --demo` prints are runnable: their URLs, with the real cursor, answer
/// with real results.
#[tokio::test]
async fn printed_demo_commands_return_results() {
    let (store, _) = demo_store();
    let k = key(&store, DEMO_PROJECT);
    let server = TestServer::start(store.clone()).await;
    let ex = demo::examples(&store, &server.base, &k).expect("examples");
    let cursor = ex.cursor.clone().expect("example 1 has a second page");
    for (i, cmd) in ex.commands.iter().enumerate() {
        // curl "URL" \
        //   -H "Authorization: Bearer KEY"
        let url = cmd.split('"').nth(1).expect("a quoted URL");
        assert!(
            cmd.contains(&format!("-H \"Authorization: Bearer {k}\"")),
            "{cmd}"
        );
        let expected_query = [
            EXAMPLE_ERRORS_QUERY.to_string(),
            format!("cursor={cursor}"),
            EXAMPLE_DATES_TAGS_QUERY.into(),
        ];
        assert_eq!(
            url,
            format!("{}/api/v1/traces?{}", server.base, expected_query[i])
        );
        let r = server.send(server.client.get(url).bearer_auth(&k)).await;
        assert!(
            !traces(r.data()).is_empty(),
            "command {i} returns traces: {cmd}"
        );
    }
}

/// The seed's Python loop, ported: pages of 100 until nextCursor is null.
#[tokio::test]
async fn seed_python_pagination_loop_sees_every_trace_once() {
    let (store, in_demo) = demo_store();
    let k = key(&store, DEMO_PROJECT);
    let server = TestServer::start(store).await;
    let mut cursor: Option<String> = None;
    let mut ids: Vec<String> = Vec::new();
    let mut last: Option<(String, String)> = None;
    loop {
        let mut params = vec![("limit", "100".to_string())];
        if let Some(c) = &cursor {
            params.push(("cursor", c.clone()));
        }
        let r = server
            .send(
                server
                    .client
                    .get(server.url("/api/v1/traces"))
                    .query(&params)
                    .bearer_auth(&k),
            )
            .await;
        let data = r.data();
        for t in traces(data) {
            let pos = (
                t["startTime"].as_str().unwrap().to_string(),
                t["id"].as_str().unwrap().to_string(),
            );
            if let Some(prev) = &last {
                assert!(*prev > pos, "strict order across pages");
            }
            assert!(t["durationMs"].is_i64() || t["durationMs"].is_null());
            last = Some(pos);
            ids.push(t["id"].as_str().unwrap().to_string());
        }
        cursor = data["nextCursor"].as_str().map(str::to_string);
        if cursor.is_none() {
            break;
        }
    }
    let distinct: HashSet<&String> = ids.iter().collect();
    assert_eq!(distinct.len(), ids.len(), "no trace twice");
    assert_eq!(
        ids.len() as u64,
        in_demo,
        "every trace of the demo project exactly once"
    );
}
