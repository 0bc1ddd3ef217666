//! `GET /api/v1/export/traces` over HTTP: content types and Content-Disposition, JSON Lines and
//! CSV bodies equal to walking every list page, the 400s (every bad parameter named at once),
//! authentication, and isolation between projects.

mod common;

use common::{key, memory_store, trace_json, TestServer};
use serde_json::{json, Value};

const N: usize = 1_200;

/// `N` traces of `project` with ids shared between projects; every fifth is an ERROR, and the
/// metadata names the owner.
fn batch(project: &str, range: std::ops::Range<usize>) -> String {
    let items: Vec<_> = range
        .map(|i| {
            let mut t = trace_json(
                &format!("shared-{i:04}"),
                if i % 3 == 0 {
                    "support-agent"
                } else {
                    "say \"hi\", agent"
                },
                &format!("2026-03-{:02}T{:02}:{:02}:00Z", 1 + i % 28, i % 24, i % 60),
                if i % 2 == 0 { &["production"] } else { &[] },
            );
            t["metadata"] = json!({ "owner": project, "note": "a,b\n\"c\"" });
            if i % 5 == 0 {
                t["status"] = json!("ERROR");
            }
            t
        })
        .collect();
    json!({ "traces": items }).to_string()
}

struct Text {
    status: u16,
    content_type: Option<String>,
    disposition: Option<String>,
    rate_limited: bool,
    body: String,
}

async fn get_text(server: &TestServer, path_and_query: &str, key: Option<&str>) -> Text {
    let mut req = server.client.get(server.url(path_and_query));
    if let Some(k) = key {
        req = req.bearer_auth(k);
    }
    let res = req.send().await.expect("answered");
    let h = |n: &str| {
        res.headers()
            .get(n)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let (content_type, disposition) = (h("content-type"), h("content-disposition"));
    let rate_limited = res.headers().contains_key("ratelimit-limit");
    let status = res.status().as_u16();
    let body = res.text().await.expect("a whole body");
    Text {
        status,
        content_type,
        disposition,
        rate_limited,
        body,
    }
}

/// Every trace object of every list page of `query`, in order.
async fn all_pages(server: &TestServer, key: &str, query: &str) -> Vec<Value> {
    let mut out = Vec::new();
    let mut q = format!("limit=100&{query}");
    loop {
        let r = server.get(&format!("/api/v1/traces?{q}"), Some(key)).await;
        let data = r.data().clone();
        out.extend(data["traces"].as_array().unwrap().iter().cloned());
        match data["nextCursor"].as_str() {
            Some(c) => q = format!("limit=100&cursor={c}"),
            None => return out,
        }
    }
}

async fn two_projects() -> (TestServer, String, String, String) {
    let store = memory_store();
    for p in ["alpha", "beta"] {
        // Batches larger than the write buffer are indexed at once; the five single traces
        // after them are held pending, and exported too.
        store
            .ingest_json(p, batch(p, 0..600).as_bytes())
            .expect("ingest");
        store
            .ingest_json(p, batch(p, 600..N - 5).as_bytes())
            .expect("ingest");
        for i in N - 5..N {
            store
                .ingest_json(p, batch(p, i..i + 1).as_bytes())
                .expect("ingest");
        }
    }
    let (ka, kb, kc) = (
        key(&store, "alpha"),
        key(&store, "beta"),
        key(&store, "empty"),
    );
    (TestServer::start(store).await, ka, kb, kc)
}

#[tokio::test]
async fn jsonl_is_every_list_row_in_order() {
    let (server, ka, _, _) = two_projects().await;
    for query in [
        "",
        "status=ERROR",
        "tags=production&name=say",
        "startDate=2026-03-05&endDate=2026-03-20",
    ] {
        let r = get_text(
            &server,
            &format!("/api/v1/export/traces?{query}"),
            Some(&ka),
        )
        .await;
        assert_eq!(r.status, 200, "{query}: {}", r.body);
        assert_eq!(r.content_type.as_deref(), Some("application/x-ndjson"));
        assert_eq!(
            r.disposition.as_deref(),
            Some("attachment; filename=\"traces.jsonl\"")
        );
        assert!(r.rate_limited);
        let rows: Vec<Value> = r
            .body
            .lines()
            .map(|l| serde_json::from_str(l).expect("a JSON line"))
            .collect();
        assert_eq!(rows, all_pages(&server, &ka, query).await, "{query}");
        assert!(r.body.is_empty() || r.body.ends_with('\n'));
    }
    let r = get_text(&server, "/api/v1/export/traces?format=jsonl", Some(&ka)).await;
    assert_eq!(r.body.lines().count(), N, "all of them, over many chunks");
    assert!(r.body.len() > 4 * tracestore::limits::EXPORT_CHUNK_BYTES);
}

#[tokio::test]
async fn csv_has_the_header_and_one_row_per_trace() {
    let (server, ka, _, kc) = two_projects().await;
    let r = get_text(
        &server,
        "/api/v1/export/traces?format=csv&status=error",
        Some(&ka),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.content_type.as_deref(), Some("text/csv; charset=utf-8"));
    assert_eq!(
        r.disposition.as_deref(),
        Some("attachment; filename=\"traces.csv\"")
    );
    let mut reader = csv::Reader::from_reader(r.body.as_bytes());
    let header: Vec<String> = reader
        .headers()
        .unwrap()
        .iter()
        .map(str::to_string)
        .collect();
    assert_eq!(header, tracestore::CSV_COLUMNS);
    let rows = all_pages(&server, &ka, "status=ERROR").await;
    let records: Vec<csv::StringRecord> = reader.records().map(|r| r.unwrap()).collect();
    assert_eq!(records.len(), rows.len());
    for (rec, row) in records.iter().zip(&rows) {
        for (col, cell) in header.iter().zip(rec.iter()) {
            let want = match &row[col] {
                Value::Null => String::new(),
                Value::String(s) => s.clone(),
                Value::Number(n) => n.to_string(),
                v => serde_json::to_string(v).unwrap(),
            };
            if col == "metadata" {
                let parsed: Value = serde_json::from_str(cell).unwrap();
                assert_eq!(parsed, row[col]);
            } else {
                assert_eq!(cell, want, "{col}");
            }
        }
    }
    // A project with no traces: the header alone; in JSON Lines, an empty body.
    let r = get_text(&server, "/api/v1/export/traces?format=csv", Some(&kc)).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body, format!("{}\r\n", tracestore::CSV_COLUMNS.join(",")));
    let r = get_text(&server, "/api/v1/export/traces", Some(&kc)).await;
    assert_eq!((r.status, r.body.as_str()), (200, ""));
}

#[tokio::test]
async fn bad_parameters_are_named_at_once() {
    let (server, ka, _, _) = two_projects().await;
    let r = server
        .get(
            "/api/v1/export/traces?limit=5&cursor=abc&include=totals&format=xml&bogus=1&status=meh",
            Some(&ka),
        )
        .await;
    assert_eq!(r.status, 400, "{:#}", r.body);
    assert_eq!(r.error_code(), "VALIDATION_ERROR");
    assert_eq!(
        r.detail_fields(),
        vec!["limit", "cursor", "include", "format", "bogus", "status"]
    );
    for q in [
        "limit=10",
        "cursor=abc",
        "include=totals",
        "format=xml",
        "format=CSV",
    ] {
        let r = server
            .get(&format!("/api/v1/export/traces?{q}"), Some(&ka))
            .await;
        assert_eq!(r.status, 400, "{q}");
        assert_eq!(r.detail_fields().len(), 1, "{q}");
    }
    let r = server
        .get("/api/v1/export/traces?start_date=2026-03-01", Some(&ka))
        .await;
    assert_eq!(r.status, 400);
    let message = r.body["error"]["details"][0]["message"].as_str().unwrap();
    assert!(
        message.contains("format") && message.contains("startDate") && !message.contains("limit"),
        "the export's own parameters are listed: {message}"
    );
    let r = server
        .get("/api/v1/export/traces?format=csv&format=csv", Some(&ka))
        .await;
    assert_eq!(r.detail_fields(), vec!["format"]);
    // Bytes that are not UTF-8 are named together with the rest.
    let r = server
        .get("/api/v1/export/traces?name=%FF&limit=1", Some(&ka))
        .await;
    assert_eq!(r.status, 400);
    assert_eq!(r.detail_fields(), vec!["name", "limit"]);
}

#[tokio::test]
async fn keys_and_isolation() {
    let (server, ka, kb, _) = two_projects().await;
    let r = server.get("/api/v1/export/traces", None).await;
    assert_eq!(r.status, 401);
    assert_eq!(r.error_code(), "UNAUTHORIZED");
    let r = server
        .get("/api/v1/export/traces", Some("ts_not-a-real-key"))
        .await;
    assert_eq!(r.status, 401);
    let r = server
        .send(
            server
                .client
                .post(server.url("/api/v1/export/traces"))
                .bearer_auth(&ka),
        )
        .await;
    assert_eq!(r.status, 405);

    // Both projects hold the same ids; each key sees its own rows only.
    for (k, owner) in [(&ka, "alpha"), (&kb, "beta")] {
        let r = get_text(&server, "/api/v1/export/traces", Some(k)).await;
        assert_eq!(r.status, 200);
        let rows: Vec<Value> = r
            .body
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(rows.len(), N);
        assert!(rows.iter().all(|t| t["metadata"]["owner"] == owner));
    }
}

#[tokio::test]
async fn the_document_lists_the_exports_parameters_and_content_types() {
    let server = TestServer::start(memory_store()).await;
    let doc = server.get("/openapi.json", None).await.body;
    let op = &doc["paths"]["/api/v1/export/traces"]["get"];
    let params: Vec<&str> = op["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        params,
        tracestore::export_params(),
        "the library's parameters"
    );
    let content = op["responses"]["200"]["content"].as_object().unwrap();
    let mut types: Vec<&str> = content.keys().map(String::as_str).collect();
    types.sort();
    assert_eq!(types, ["application/x-ndjson", "text/csv"]);
}
