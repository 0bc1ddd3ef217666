//! HTTP helpers of the isolation property: a client that keeps raw bodies (for byte-for-byte
//! comparisons) and counts requests, page walks, and a server config without a rate limit.

use super::filter::Filter;
use super::rng::Rng;
use crate::common::TestServer;
use serde_json::Value;
use tracestore_server::ServerConfig;

/// Percent-encodes a path segment (everything but RFC 3986's unreserved characters).
pub fn seg(id: &str) -> String {
    let mut out = String::new();
    for b in id.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A response with its raw body, for byte-for-byte comparisons.
pub struct Raw {
    pub status: u16,
    pub body: Vec<u8>,
}

impl Raw {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "body is not JSON ({e}): {}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }
    pub fn data(&self) -> Value {
        let v = self.json();
        assert_eq!(self.status, 200, "{v:#}");
        assert!(v["error"].is_null(), "{v:#}");
        v["data"].clone()
    }
}

pub struct Client<'a> {
    pub server: &'a TestServer,
    pub requests: usize,
}

impl Client<'_> {
    pub async fn raw(
        &mut self,
        method: reqwest::Method,
        path: &str,
        key: &str,
        json: Option<String>,
    ) -> Raw {
        self.requests += 1;
        let mut req = self
            .server
            .client
            .request(method, self.server.url(path))
            .bearer_auth(key);
        if let Some(body) = json {
            req = req.header("content-type", "application/json").body(body);
        }
        let res = req.send().await.expect("request is answered");
        let status = res.status().as_u16();
        let body = res.bytes().await.expect("body").to_vec();
        Raw { status, body }
    }
    pub async fn get(&mut self, path: &str, key: &str) -> Raw {
        self.raw(reqwest::Method::GET, path, key, None).await
    }
    pub async fn delete(&mut self, path: &str, key: &str) -> Raw {
        self.raw(reqwest::Method::DELETE, path, key, None).await
    }
    pub async fn post(&mut self, path: &str, key: &str, body: String) -> Raw {
        self.raw(reqwest::Method::POST, path, key, Some(body)).await
    }

    /// Walks every page of `f` with `key`, with a random limit per page; checks the page
    /// invariants and returns the traces and the cursors seen.
    pub async fn walk(
        &mut self,
        rng: &mut Rng,
        key: &str,
        f: &Filter,
    ) -> (Vec<Value>, Vec<String>) {
        let mut traces = Vec::new();
        let mut cursors = Vec::new();
        let mut limit = rng.range(1, 5);
        let mut path = format!("/api/v1/traces?{}", f.query(limit));
        for _page in 0..1000 {
            let r = self.get(&path, key).await;
            let data = r.data();
            let page = data["traces"].as_array().expect("traces").clone();
            assert!(page.len() as u64 <= limit, "page over its limit {limit}");
            match data["nextCursor"].as_str() {
                Some(c) => {
                    assert_eq!(page.len() as u64, limit, "a short page with a nextCursor");
                    traces.extend(page);
                    cursors.push(c.to_string());
                    limit = rng.range(1, 5);
                    let mut q = form_urlencoded::Serializer::new(String::new());
                    // With only the cursor, or with the very same filters again.
                    if rng.chance(25) {
                        for (k, v) in &f.pairs {
                            q.append_pair(k, v);
                        }
                    }
                    q.append_pair("cursor", c);
                    q.append_pair("limit", &limit.to_string());
                    path = format!("/api/v1/traces?{}", q.finish());
                }
                None => {
                    traces.extend(page);
                    return (traces, cursors);
                }
            }
        }
        panic!("the walk did not end");
    }
}

pub fn config() -> ServerConfig {
    ServerConfig {
        rate_limit: 1_000_000,
        ..ServerConfig::default()
    }
}
