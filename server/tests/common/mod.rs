//! Test helpers: a real server on an ephemeral loopback port, a real HTTP client, and the
//! shared demo store.
#![allow(dead_code)]

use reqwest::header::HeaderMap;
use serde_json::Value;
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tracestore::{Durability, Store};
use tracestore_server::{AppState, ServerConfig};

/// A fresh, empty store for one test: in memory with unsynced commits (tests need no
/// durability), or, with `TRACESTORE_TEST_ENGINE=clickhouse`, a new database on the ClickHouse
/// server at `TRACESTORE_CLICKHOUSE_URL`, so that the HTTP suite runs on either engine.
pub fn memory_store() -> Arc<Store> {
    if std::env::var("TRACESTORE_TEST_ENGINE").as_deref() == Ok("clickhouse") {
        static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let url = std::env::var("TRACESTORE_CLICKHOUSE_URL")
            .expect("TRACESTORE_TEST_ENGINE=clickhouse needs TRACESTORE_CLICKHOUSE_URL");
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
            % 1_000_000_000;
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let db = format!("ts_http_{}_{nanos}_{n}", std::process::id());
        return Arc::new(
            Store::builder()
                .open_clickhouse(&tracestore::ClickHouseConfig::new(url).database(db))
                .expect("ClickHouse store"),
        );
    }
    Arc::new(
        Store::builder()
            .durability(Durability::Deferred)
            .in_memory()
            .expect("in-memory store"),
    )
}

/// The demo dataset at its real size, loaded once per test binary. Returns the store and how
/// many traces landed in the demo project.
pub fn demo_store() -> (Arc<Store>, u64) {
    static DEMO: OnceLock<(Arc<Store>, u64)> = OnceLock::new();
    DEMO.get_or_init(|| {
        let store = memory_store();
        let n = tracestore_server::demo::load_demo(
            &store,
            tracestore_server::demo::DEMO_TRACES,
            |_| {},
        )
        .expect("demo data loads");
        (store, n)
    })
    .clone()
}

/// One response: status, headers and the parsed JSON body (Null when the body is not JSON).
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Value,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
    /// The `data` of a 200 envelope, after checking the envelope's shape.
    pub fn data(&self) -> &Value {
        assert_eq!(self.status, 200, "{:#}", self.body);
        assert!(self.body["error"].is_null(), "{:#}", self.body);
        &self.body["data"]
    }
    /// The error code of a failure envelope, after checking its shape.
    pub fn error_code(&self) -> &str {
        assert!(self.body["data"].is_null(), "{:#}", self.body);
        assert!(self.body["error"]["message"].is_string(), "{:#}", self.body);
        assert!(self.body["error"]["details"].is_array(), "{:#}", self.body);
        self.body["error"]["code"].as_str().unwrap_or_default()
    }
    /// The `field`s of the error's details, in order.
    pub fn detail_fields(&self) -> Vec<String> {
        self.body["error"]["details"]
            .as_array()
            .map(|d| {
                d.iter()
                    .map(|x| x["field"].as_str().unwrap_or_default().to_string())
                    .collect()
            })
            .unwrap_or_default()
    }
    /// Asserts that the three RateLimit-* headers are present and numeric; returns
    /// (limit, remaining, reset).
    pub fn rate(&self) -> (u64, u64, u64) {
        let get = |n: &str| -> u64 {
            self.header(n)
                .unwrap_or_else(|| panic!("{n} missing on a {} response", self.status))
                .parse()
                .unwrap_or_else(|_| panic!("{n} is not a number"))
        };
        (
            get("ratelimit-limit"),
            get("ratelimit-remaining"),
            get("ratelimit-reset"),
        )
    }
}

/// A running server; stops (gracefully) when dropped.
pub struct TestServer {
    pub base: String,
    pub addr: std::net::SocketAddr,
    pub client: reqwest::Client,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl TestServer {
    pub async fn start(store: Arc<Store>) -> TestServer {
        Self::start_with(store, ServerConfig::default()).await
    }

    pub async fn start_with(store: Arc<Store>, config: ServerConfig) -> TestServer {
        Self::start_state(AppState::new(store, &config)).await
    }

    pub async fn start_state(state: AppState) -> TestServer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("local addr");
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            tracestore_server::api::serve_state(listener, state, async {
                let _ = rx.await;
            })
            .await
            .expect("server runs");
        });
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .expect("client");
        TestServer {
            base: format!("http://{addr}"),
            addr,
            client,
            stop: Some(tx),
        }
    }

    pub fn url(&self, path_and_query: &str) -> String {
        format!("{}{path_and_query}", self.base)
    }

    pub async fn send(&self, req: reqwest::RequestBuilder) -> Resp {
        let res = req.send().await.expect("request is answered");
        let status = res.status().as_u16();
        let headers = res.headers().clone();
        let bytes = res.bytes().await.expect("body");
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Resp {
            status,
            headers,
            body,
        }
    }

    /// GET with an optional Bearer key.
    pub async fn get(&self, path_and_query: &str, key: Option<&str>) -> Resp {
        let mut req = self.client.get(self.url(path_and_query));
        if let Some(k) = key {
            req = req.bearer_auth(k);
        }
        self.send(req).await
    }

    pub async fn delete(&self, path: &str, key: &str) -> Resp {
        self.send(self.client.delete(self.url(path)).bearer_auth(key))
            .await
    }

    pub async fn post(&self, path: &str, key: &str, body: impl Into<reqwest::Body>) -> Resp {
        let req = self
            .client
            .post(self.url(path))
            .bearer_auth(key)
            .header("content-type", "application/json")
            .body(body);
        self.send(req).await
    }
}

/// A response read off a raw connection: status, lower-cased headers and the body text.
#[derive(Debug)]
pub struct RawResp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Value,
}

impl RawResp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Connects to `server`, sends `head` (the request line and headers, up to and including the
/// blank line) and then `body_part`, and keeps the connection open without sending the rest.
/// Plain blocking sockets: the test's tokio has no io-util.
pub fn send_partial(server: &TestServer, head: &str, body_part: &[u8]) -> std::net::TcpStream {
    use std::io::Write;
    let mut stream = std::net::TcpStream::connect(server.addr).expect("connect");
    stream.write_all(head.as_bytes()).expect("write head");
    stream.write_all(body_part).expect("write body");
    stream.flush().expect("flush");
    stream
}

/// Reads one HTTP/1.1 response (headers, then a Content-Length body) from `stream` on the
/// blocking pool, within `within`.
pub async fn read_raw_response(stream: std::net::TcpStream, within: Duration) -> RawResp {
    tokio::task::spawn_blocking(move || read_raw_blocking(stream, within))
        .await
        .expect("reader")
}

fn read_raw_blocking(mut stream: std::net::TcpStream, within: Duration) -> RawResp {
    use std::io::Read;
    stream.set_read_timeout(Some(within)).expect("timeout");
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let mut read = |buf: &mut Vec<u8>| {
        let n = stream.read(&mut chunk).expect("a response in time");
        assert!(
            n > 0,
            "connection closed early: {:?}",
            String::from_utf8_lossy(buf)
        );
        buf.extend_from_slice(&chunk[..n]);
    };
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_string();
            let mut lines = head.split("\r\n");
            let status: u16 = lines
                .next()
                .and_then(|l| l.split(' ').nth(1))
                .and_then(|s| s.parse().ok())
                .expect("a status line");
            let headers: Vec<(String, String)> = lines
                .filter_map(|l| l.split_once(':'))
                .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
                .collect();
            let len: usize = headers
                .iter()
                .find(|(k, _)| k == "content-length")
                .and_then(|(_, v)| v.parse().ok())
                .unwrap_or(0);
            while buf.len() < end + 4 + len {
                read(&mut buf);
            }
            let body = serde_json::from_slice(&buf[end + 4..end + 4 + len]).unwrap_or(Value::Null);
            return RawResp {
                status,
                headers,
                body,
            };
        }
        read(&mut buf);
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }
}

/// A key for `project`.
pub fn key(store: &Store, project: &str) -> String {
    store.create_api_key(project).expect("key").key
}

/// A small valid trace item as JSON.
pub fn trace_json(id: &str, name: &str, start: &str, tags: &[&str]) -> Value {
    serde_json::json!({
        "id": id,
        "name": name,
        "status": "OK",
        "startTime": start,
        "endTime": start,
        "tags": tags,
        "metadata": {"source": "test"},
        "spans": [
            {"id": "s1", "name": "llm-call", "model": "gpt-4o", "inputTokens": 100, "outputTokens": 20, "cost": "0.0012"},
            {"id": "s2", "name": "tool", "inputTokens": 5, "outputTokens": 5, "cost": "0.0022"}
        ],
        "scores": [{"id": "quality", "name": "quality", "value": 0.9}]
    })
}

/// Every id of a project, newest first, walking pages of 100 with the given key.
pub async fn walk_ids(server: &TestServer, key: &str, first_query: &str) -> Vec<String> {
    let mut ids = Vec::new();
    let mut query = first_query.to_string();
    loop {
        let r = server
            .get(&format!("/api/v1/traces?{query}"), Some(key))
            .await;
        let data = r.data();
        for t in data["traces"].as_array().expect("traces") {
            ids.push(t["id"].as_str().expect("id").to_string());
        }
        match data["nextCursor"].as_str() {
            Some(c) => query = format!("limit=100&cursor={c}"),
            None => return ids,
        }
    }
}
