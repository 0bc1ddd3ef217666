//! Tenant isolation as a randomized property, over real HTTP.
//!
//! Each case puts random data into three projects whose trace ids, names and tags COLLIDE (the
//! same id strings in several projects, with different content), ingests it through
//! `POST /api/v1/traces` with each project's own key, then sends random requests with project
//! A's key and checks every answer against an independent in-test model of A alone:
//!
//! - list queries with random filters walked page by page (limit 1..=5, changing per page):
//!   the walked traces are exactly A's matching traces, in order, as full objects;
//! - GET by id: A's ids give A's trace (full object with spans and scores); an id only another
//!   project has gives a 404 byte-identical to a nonexistent id's;
//! - another project's cursor used with A's key: 400 `VALIDATION_ERROR` on `cursor` alone;
//! - DELETE with A's key of an id only B has: 404 (byte-identical to a nonexistent id's), and
//!   B's trace is still there afterwards, unchanged.
//!
//! A small seeded xorshift generator drives everything, so no new dependency is needed.
//! `ISOLATION_PROP_SEED` and `ISOLATION_PROP_CASES` override the seed and the case count; a
//! failure names the seed and case that reproduce it.
//!
//! A second test compares the latency of 404s for another project's ids with that of
//! nonexistent ids (medians over 200 interleaved requests each).

mod common;

use common::{key, memory_store, TestServer};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;
use tracestore_server::ServerConfig;

const DEFAULT_SEED: u64 = 0x7ace_5709_e15a_7e01;
const DEFAULT_CASES: usize = 128;

const PROJECTS: [&str; 3] = ["alpha", "beta", "gamma"];

/// Ids shared by all projects: plain ones, ones that need percent-encoding in a path, a pair
/// that differs only in case, and a non-ASCII one.
const ID_POOL: &[&str] = &[
    "t-00", "t-01", "t-02", "t-03", "t-04", "t-05", "t-06", "t-07", "t-08", "t-09", "t-10", "t-11",
    "shared", "Shared", "x:y", "q?z", "s/t", "p%41", "h#1", "a+b", "é-ü", "~dot.",
];
const NAME_POOL: &[&str] = &[
    "support-agent",
    "Support-Bot",
    "research-agent",
    "planner",
    "SUPPORT-agent-v2",
    "coder",
];
const TAG_POOL: &[&str] = &["production", "v2", "eu", "staging", "free-tier", "Beta"];
const NAME_FILTERS: &[&str] = &[
    "support", "SUPPORT", "agent", "Agent-V2", "bot", "planner", "er", "-", "zzz", "coder",
];

// ---------------------------------------------------------------------------------------------
// RNG

/// xorshift64* (Vigna): small, seedable, good enough for test data.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        // splitmix64 of the seed, so that nearby seeds give unrelated streams and 0 is fine.
        let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        Rng((z ^ (z >> 31)) | 1)
    }
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// Uniform in lo..=hi.
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo + 1)
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
    fn pick<'a, T>(&mut self, xs: &'a [T]) -> &'a T {
        &xs[self.next() as usize % xs.len()]
    }
    fn shuffle<T>(&mut self, xs: &mut [T]) {
        for i in (1..xs.len()).rev() {
            let j = self.next() as usize % (i + 1);
            xs.swap(i, j);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Time, independent of the library: civil date <-> days (Howard Hinnant's algorithms).

fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// The contract's rendering: RFC 3339 UTC with exactly three fraction digits.
fn fmt_ms(ms: i64) -> String {
    let (days, rem) = (ms.div_euclid(86_400_000), ms.rem_euclid(86_400_000));
    let (y, mo, d) = civil_from_days(days);
    let (h, mi, s, f) = (
        rem / 3_600_000,
        rem / 60_000 % 60,
        rem / 1000 % 60,
        rem % 1000,
    );
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{f:03}Z")
}

/// 2026-03-14T00:00:00Z; the data spans the three days from there.
fn base_ms() -> i64 {
    days_from_civil(2026, 3, 14) * 86_400_000
}

/// A date filter value for the instant `ms`, in one of the accepted spellings; returns the
/// text and the instant it means.
fn date_param(rng: &mut Rng, ms: i64) -> (String, i64) {
    match rng.range(0, 3) {
        0 => {
            // Bare date: midnight UTC.
            let day = ms.div_euclid(86_400_000);
            let (y, m, d) = civil_from_days(day);
            (format!("{y:04}-{m:02}-{d:02}"), day * 86_400_000)
        }
        1 => {
            // Whole seconds, `Z`.
            let s = ms.div_euclid(1000) * 1000;
            (fmt_ms(s).replace(".000Z", "Z"), s)
        }
        2 => (fmt_ms(ms), ms),
        _ => {
            // The same instant written with a +02:00 offset.
            let local = fmt_ms(ms + 2 * 3_600_000);
            (local.replace('Z', "+02:00"), ms)
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The model

#[derive(Clone, Debug)]
struct SpanM {
    id: String,
    name: String,
    model: Option<String>,
    input: u64,
    output: u64,
    /// Cost in units of 1e-6 USD.
    cost_micros: u64,
}

#[derive(Clone, Debug)]
struct ScoreM {
    id: String,
    name: String,
    value: Value,
    comment: Option<String>,
}

#[derive(Clone, Debug)]
struct TraceM {
    id: String,
    name: String,
    status: &'static str,
    start_ms: i64,
    end_ms: Option<i64>,
    tags: Vec<String>,
    metadata: Value,
    spans: Vec<SpanM>,
    scores: Vec<ScoreM>,
}

fn micros_to_decimal(m: u64) -> String {
    let s = format!("{}.{:06}", m / 1_000_000, m % 1_000_000);
    normalize_decimal(&s)
}

/// A plain decimal string without trailing fraction zeros (`"0.0010"` -> `"0.001"`, `"2.0"` ->
/// `"2"`), for comparing exact decimals as text.
fn normalize_decimal(s: &str) -> String {
    if s.contains('.') {
        let t = s.trim_end_matches('0').trim_end_matches('.');
        if t.is_empty() {
            "0".into()
        } else {
            t.to_string()
        }
    } else {
        s.to_string()
    }
}

impl TraceM {
    fn input_json(&self) -> Value {
        let spans: Vec<Value> = self
            .spans
            .iter()
            .map(|s| {
                let mut v = json!({
                    "id": s.id, "name": s.name,
                    "inputTokens": s.input, "outputTokens": s.output,
                    "cost": micros_to_decimal(s.cost_micros),
                });
                if let Some(m) = &s.model {
                    v["model"] = json!(m);
                }
                v
            })
            .collect();
        let scores: Vec<Value> = self
            .scores
            .iter()
            .map(|s| {
                let mut v = json!({"id": s.id, "name": s.name, "value": s.value});
                if let Some(c) = &s.comment {
                    v["comment"] = json!(c);
                }
                v
            })
            .collect();
        json!({
            "id": self.id,
            "name": self.name,
            "status": self.status,
            "startTime": fmt_ms(self.start_ms),
            "endTime": self.end_ms.map(fmt_ms),
            "tags": self.tags,
            "metadata": self.metadata,
            "spans": spans,
            "scores": scores,
        })
    }

    /// The list endpoint's object, except `createdAt` (set by the store), with tags as a set.
    fn expected_summary(&self) -> Value {
        let total_cost: u64 = self.spans.iter().map(|s| s.cost_micros).sum();
        let total_tokens: u64 = self.spans.iter().map(|s| s.input + s.output).sum();
        json!({
            "id": self.id,
            "name": self.name,
            "status": self.status,
            "startTime": fmt_ms(self.start_ms),
            "endTime": self.end_ms.map(fmt_ms),
            "durationMs": self.end_ms.map(|e| e - self.start_ms),
            "totalCost": micros_to_decimal(total_cost),
            "totalTokens": total_tokens,
            "tags": sorted_set(self.tags.iter().cloned()),
            "metadata": self.metadata,
            "spanCount": self.spans.len(),
            "scoreCount": self.scores.len(),
        })
    }

    fn expected_detail(&self) -> Value {
        let mut v = self.expected_summary();
        let spans: BTreeMap<String, Value> = self
            .spans
            .iter()
            .map(|s| {
                (
                    s.id.clone(),
                    json!({
                        "id": s.id, "name": s.name, "startTime": null, "endTime": null,
                        "model": s.model, "inputTokens": s.input, "outputTokens": s.output,
                        "totalTokens": s.input + s.output,
                        "cost": micros_to_decimal(s.cost_micros),
                    }),
                )
            })
            .collect();
        let scores: BTreeMap<String, Value> = self
            .scores
            .iter()
            .map(|s| {
                (
                    s.id.clone(),
                    json!({"id": s.id, "name": s.name, "value": s.value, "comment": s.comment}),
                )
            })
            .collect();
        v["spans"] = json!(spans);
        v["scores"] = json!(scores);
        v
    }
}

fn sorted_set(it: impl Iterator<Item = String>) -> Vec<String> {
    it.collect::<BTreeSet<_>>().into_iter().collect()
}

/// A served trace object, made comparable with the model: `createdAt` checked for shape and
/// removed, tags as a sorted set, decimals normalized, spans and scores keyed by id.
fn canonical(served: &Value) -> Value {
    let mut v = served.clone();
    let obj = v.as_object_mut().expect("trace object");
    let created = obj.remove("createdAt").expect("createdAt");
    let created = created.as_str().expect("createdAt is a string");
    assert!(
        created.len() == 24 && created.ends_with('Z') && created.as_bytes()[19] == b'.',
        "createdAt {created:?} is not RFC 3339 with three fraction digits"
    );
    if let Some(tags) = obj.get_mut("tags") {
        let set = sorted_set(
            tags.as_array()
                .expect("tags array")
                .iter()
                .map(|t| t.as_str().expect("tag string").to_string()),
        );
        *tags = json!(set);
    }
    if let Some(c) = obj.get_mut("totalCost") {
        let s = c.as_str().expect("totalCost is a string");
        assert!(!s.contains(['e', 'E']), "totalCost {s:?} has an exponent");
        *c = json!(normalize_decimal(s));
    }
    for (field, key) in [("spans", "id"), ("scores", "id")] {
        if let Some(list) = obj.get_mut(field) {
            let mut map = BTreeMap::new();
            for mut item in list.as_array().expect("array").iter().cloned() {
                if let Some(c) = item.get_mut("cost") {
                    if let Some(s) = c.as_str() {
                        *c = json!(normalize_decimal(s));
                    }
                }
                let k = item[key].as_str().expect("id").to_string();
                assert!(map.insert(k, item).is_none(), "duplicate {field} id");
            }
            *list = json!(map);
        }
    }
    v
}

/// What a list query asks for, both as query-string pairs and as a predicate on the model.
#[derive(Clone, Debug, Default)]
struct Filter {
    pairs: Vec<(&'static str, String)>,
    name: Option<String>,
    status: Option<&'static str>,
    tags: Vec<String>,
    start: Option<i64>,
    end: Option<i64>,
}

impl Filter {
    fn random(rng: &mut Rng) -> Filter {
        let mut f = Filter::default();
        if rng.chance(40) {
            let n = *rng.pick(NAME_FILTERS);
            f.pairs.push(("name", n.to_string()));
            f.name = Some(n.to_ascii_lowercase());
        } else if rng.chance(10) {
            f.pairs.push(("name", String::new())); // empty: no filter
        }
        if rng.chance(40) {
            let (text, st) = *rng.pick(&[
                ("OK", "OK"),
                ("ok", "OK"),
                ("ERROR", "ERROR"),
                ("Error", "ERROR"),
            ]);
            f.pairs.push(("status", text.to_string()));
            f.status = Some(st);
        }
        if rng.chance(40) {
            let mut items = Vec::new();
            for _ in 0..rng.range(1, 3) {
                let t = *rng.pick(TAG_POOL);
                let pad = |rng: &mut Rng| if rng.chance(30) { " " } else { "" };
                items.push(format!("{}{t}{}", pad(rng), pad(rng)));
                f.tags.push(t.to_string());
            }
            if rng.chance(20) {
                items.push(String::new()); // an empty item is dropped
            }
            f.pairs.push(("tags", items.join(",")));
        }
        let span = 3 * 86_400_000;
        let mut start = None;
        if rng.chance(30) {
            let ms = base_ms() - 3_600_000 + rng.range(0, span) as i64;
            start = Some(date_param(rng, ms));
        }
        let mut end = None;
        if rng.chance(30) {
            let ms = base_ms() + rng.range(0, span + 3_600_000) as i64;
            end = Some(date_param(rng, ms));
        }
        if let (Some(s), Some(e)) = (&start, &end) {
            if e.1 < s.1 {
                std::mem::swap(&mut start, &mut end);
            }
        }
        if let Some((text, ms)) = start {
            f.pairs.push(("startDate", text));
            f.start = Some(ms);
        }
        if let Some((text, ms)) = end {
            f.pairs.push(("endDate", text));
            f.end = Some(ms);
        }
        rng.shuffle(&mut f.pairs);
        f
    }

    fn matches(&self, t: &TraceM) -> bool {
        self.name
            .as_ref()
            .is_none_or(|n| t.name.to_ascii_lowercase().contains(n.as_str()))
            && self.status.is_none_or(|s| t.status == s)
            && self.tags.iter().all(|x| t.tags.contains(x))
            && self.start.is_none_or(|s| t.start_ms >= s)
            && self.end.is_none_or(|e| t.start_ms < e)
    }

    fn query(&self, limit: u64) -> String {
        let mut q = form_urlencoded::Serializer::new(String::new());
        q.append_pair("limit", &limit.to_string());
        for (k, v) in &self.pairs {
            q.append_pair(k, v);
        }
        q.finish()
    }
}

/// `project`'s traces matching `f`, newest first (startTime, then id bytes, descending).
fn expected(model: &BTreeMap<String, TraceM>, f: &Filter) -> Vec<Value> {
    let mut ts: Vec<&TraceM> = model.values().filter(|t| f.matches(t)).collect();
    ts.sort_by(|a, b| (b.start_ms, b.id.as_bytes()).cmp(&(a.start_ms, a.id.as_bytes())));
    ts.into_iter().map(TraceM::expected_summary).collect()
}

fn random_trace(rng: &mut Rng, project: &str, id: &str, serial: u64) -> TraceM {
    // Start times: a few fixed slots shared by all projects (so equal startTimes force the id
    // tie-break), or anywhere in the three days.
    let start_ms = if rng.chance(40) {
        base_ms() + rng.range(0, 4) as i64 * 36_000_000
    } else {
        base_ms() + rng.range(0, 3 * 86_400_000 - 1) as i64
    };
    let end_ms = rng
        .chance(80)
        .then(|| start_ms + rng.range(0, 120_000) as i64);
    let mut tags: Vec<String> = Vec::new();
    for _ in 0..rng.range(0, 4) {
        let t = rng.pick(TAG_POOL).to_string();
        if !tags.contains(&t) {
            tags.push(t);
        }
    }
    let spans = (0..rng.range(0, 3))
        .map(|i| SpanM {
            id: format!("s{i}"),
            name: rng.pick(&["llm-call", "tool", "retrieval"]).to_string(),
            model: rng.chance(50).then(|| "gpt-4o".to_string()),
            input: rng.range(0, 5000),
            output: rng.range(0, 2000),
            cost_micros: rng.range(0, 90_000),
        })
        .collect();
    let scores = (0..rng.range(0, 2))
        .map(|i| ScoreM {
            id: format!("q{i}"),
            name: "quality".to_string(),
            value: if rng.chance(50) {
                json!(rng.range(0, 10) as f64 / 10.0)
            } else {
                json!(rng.pick(&["good", "bad"]))
            },
            comment: rng.chance(50).then(|| format!("by {project}")),
        })
        .collect();
    TraceM {
        id: id.to_string(),
        name: rng.pick(NAME_POOL).to_string(),
        status: if rng.chance(30) { "ERROR" } else { "OK" },
        start_ms,
        end_ms,
        tags,
        // The owner makes every trace distinguishable from another project's of the same id.
        metadata: json!({ "owner": project, "serial": serial }),
        spans,
        scores,
    }
}

// ---------------------------------------------------------------------------------------------
// HTTP helpers

/// Percent-encodes a path segment (everything but RFC 3986's unreserved characters).
fn seg(id: &str) -> String {
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
struct Raw {
    status: u16,
    body: Vec<u8>,
}

impl Raw {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "body is not JSON ({e}): {}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }
    fn data(&self) -> Value {
        let v = self.json();
        assert_eq!(self.status, 200, "{v:#}");
        assert!(v["error"].is_null(), "{v:#}");
        v["data"].clone()
    }
}

struct Client<'a> {
    server: &'a TestServer,
    requests: usize,
}

impl Client<'_> {
    async fn raw(
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
    async fn get(&mut self, path: &str, key: &str) -> Raw {
        self.raw(reqwest::Method::GET, path, key, None).await
    }
    async fn delete(&mut self, path: &str, key: &str) -> Raw {
        self.raw(reqwest::Method::DELETE, path, key, None).await
    }
    async fn post(&mut self, path: &str, key: &str, body: String) -> Raw {
        self.raw(reqwest::Method::POST, path, key, Some(body)).await
    }

    /// Walks every page of `f` with `key`, with a random limit per page; checks the page
    /// invariants and returns the traces and the cursors seen.
    async fn walk(&mut self, rng: &mut Rng, key: &str, f: &Filter) -> (Vec<Value>, Vec<String>) {
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

fn config() -> ServerConfig {
    ServerConfig {
        rate_limit: 1_000_000,
        ..ServerConfig::default()
    }
}

// ---------------------------------------------------------------------------------------------
// The property

#[derive(Default)]
struct Stats {
    cases: usize,
    requests: usize,
    walks: usize,
    pages_traces: usize,
    foreign_gets: usize,
    foreign_cursors: usize,
    foreign_deletes: usize,
}

async fn run_case(seed: u64, case: usize, stats: &mut Stats) {
    let mut rng = Rng::new(seed ^ (case as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let store = memory_store();
    let keys: Vec<String> = PROJECTS.iter().map(|p| key(&store, p)).collect();
    let server = TestServer::start_with(store, config()).await;
    let mut http = Client {
        server: &server,
        requests: 0,
    };

    // Random data: each project takes a random subset of the shared id pool.
    let mut models: Vec<BTreeMap<String, TraceM>> = Vec::new();
    let mut serial = 0;
    for (p, project) in PROJECTS.iter().enumerate() {
        let mut ids: Vec<&str> = ID_POOL.to_vec();
        rng.shuffle(&mut ids);
        let n = match rng.range(0, 9) {
            0 => 0,
            1 => ID_POOL.len(),
            _ => rng.range(1, ID_POOL.len() as u64 * 2 / 3) as usize,
        };
        let model: BTreeMap<String, TraceM> = ids[..n]
            .iter()
            .map(|id| {
                serial += 1;
                (id.to_string(), random_trace(&mut rng, project, id, serial))
            })
            .collect();
        // Ingest in one or two batches; sometimes deliver a batch twice (a retry must leave
        // the store as one delivery would).
        let items: Vec<Value> = model.values().map(TraceM::input_json).collect();
        let cut = rng.range(0, items.len() as u64) as usize;
        for batch in [&items[..cut], &items[cut..]] {
            if batch.is_empty() {
                continue;
            }
            let body = json!({ "traces": batch }).to_string();
            let deliveries = if rng.chance(25) { 2 } else { 1 };
            for d in 0..deliveries {
                let r = http.post("/api/v1/traces", &keys[p], body.clone()).await;
                let data = r.data();
                let (created, updated) = if d == 0 {
                    (batch.len(), 0)
                } else {
                    (0, batch.len())
                };
                assert_eq!(data["created"], created, "seed {seed:#x} case {case}");
                assert_eq!(data["updated"], updated, "seed {seed:#x} case {case}");
            }
        }
        models.push(model);
    }
    let (ka, kb) = (keys[0].clone(), keys[1].clone());
    let ctx = format!("seed {seed:#x} case {case}");

    // List queries with random filters, walked page by page with A's key.
    for _ in 0..rng.range(3, 6) {
        let f = Filter::random(&mut rng);
        let (got, _) = http.walk(&mut rng, &ka, &f).await;
        let want = expected(&models[0], &f);
        assert_eq!(got.len(), want.len(), "{ctx}: count for {:?}", f.pairs);
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            assert_eq!(&canonical(g), w, "{ctx}: trace {i} of {:?}", f.pairs);
        }
        stats.walks += 1;
        stats.pages_traces += got.len();

        // B's cursor for the same filters: useless to A, alone or with the filters.
        let fb = f.clone();
        let r = http
            .get(&format!("/api/v1/traces?{}", fb.query(1)), &kb)
            .await;
        if let Some(c) = r.data()["nextCursor"].as_str() {
            let mut alone = form_urlencoded::Serializer::new(String::new());
            alone.append_pair("cursor", c);
            let mut with = form_urlencoded::Serializer::new(String::new());
            for (k, v) in &f.pairs {
                with.append_pair(k, v);
            }
            with.append_pair("cursor", c);
            for q in [alone.finish(), with.finish()] {
                let r = http.get(&format!("/api/v1/traces?{q}"), &ka).await;
                let v = r.json();
                assert_eq!(r.status, 400, "{ctx}: B's cursor with A's key: {v:#}");
                assert!(v["data"].is_null(), "{ctx}: {v:#}");
                assert_eq!(v["error"]["code"], "VALIDATION_ERROR", "{ctx}: {v:#}");
                let fields: Vec<&str> = v["error"]["details"]
                    .as_array()
                    .expect("details")
                    .iter()
                    .map(|d| d["field"].as_str().unwrap_or_default())
                    .collect();
                assert_eq!(fields, ["cursor"], "{ctx}: {v:#}");
                stats.foreign_cursors += 1;
            }
        }
    }

    // GET by id: A's own ids, ids only B (or C) has, and ids nobody has.
    let nowhere = format!("nope-{}", rng.next() % 1_000_000);
    let missing = http
        .get(&format!("/api/v1/traces/{}", seg(&nowhere)), &ka)
        .await;
    assert_eq!(missing.status, 404, "{ctx}");
    assert_eq!(missing.json()["error"]["code"], "NOT_FOUND", "{ctx}");
    let missing_delete = http
        .delete(&format!("/api/v1/traces/{}", seg(&nowhere)), &ka)
        .await;
    assert_eq!(missing_delete.status, 404, "{ctx}");
    let mut probe: Vec<&str> = ID_POOL.to_vec();
    rng.shuffle(&mut probe);
    for id in probe {
        let r = http.get(&format!("/api/v1/traces/{}", seg(id)), &ka).await;
        match models[0].get(id) {
            Some(t) => {
                assert_eq!(
                    canonical(&r.data()),
                    t.expected_detail(),
                    "{ctx}: GET {id:?}"
                );
            }
            None => {
                assert_eq!(
                    (r.status, &r.body),
                    (missing.status, &missing.body),
                    "{ctx}: GET {id:?} (A lacks it; B has it: {}) differs from a nonexistent id",
                    models[1].contains_key(id)
                );
                if models[1].contains_key(id) || models[2].contains_key(id) {
                    stats.foreign_gets += 1;
                }
            }
        }
    }

    // DELETE with A's key of ids only B has: 404 like a nonexistent id, and B keeps them.
    let b_only: Vec<String> = models[1]
        .keys()
        .filter(|id| !models[0].contains_key(*id))
        .cloned()
        .collect();
    for id in b_only.iter().take(3) {
        let r = http
            .delete(&format!("/api/v1/traces/{}", seg(id)), &ka)
            .await;
        assert_eq!(
            (r.status, &r.body),
            (missing_delete.status, &missing_delete.body),
            "{ctx}: DELETE {id:?} with A's key"
        );
        let r = http.get(&format!("/api/v1/traces/{}", seg(id)), &kb).await;
        assert_eq!(
            canonical(&r.data()),
            models[1][id].expected_detail(),
            "{ctx}: B's {id:?} after A's DELETE"
        );
        stats.foreign_deletes += 1;
    }

    // Sometimes A deletes one of its own ids that B also has: A loses it, B does not.
    let shared: Vec<String> = models[0]
        .keys()
        .filter(|id| models[1].contains_key(*id))
        .cloned()
        .collect();
    if !shared.is_empty() && rng.chance(50) {
        let id = rng.pick(&shared).clone();
        let r = http
            .delete(&format!("/api/v1/traces/{}", seg(&id)), &ka)
            .await;
        assert_eq!(r.data(), json!({"id": id, "deleted": true}), "{ctx}");
        models[0].remove(&id);
        let r = http.get(&format!("/api/v1/traces/{}", seg(&id)), &ka).await;
        assert_eq!(
            (r.status, &r.body),
            (missing.status, &missing.body),
            "{ctx}"
        );
        let r = http.get(&format!("/api/v1/traces/{}", seg(&id)), &kb).await;
        assert_eq!(
            canonical(&r.data()),
            models[1][&id].expected_detail(),
            "{ctx}"
        );
    }

    // Finally every project still walks exactly its own model.
    for (p, k) in keys.iter().enumerate() {
        let f = Filter::default();
        let (got, _) = http.walk(&mut rng, k, &f).await;
        let want = expected(&models[p], &f);
        let got: Vec<Value> = got.iter().map(canonical).collect();
        assert_eq!(got, want, "{ctx}: final walk of {}", PROJECTS[p]);
        stats.walks += 1;
        stats.pages_traces += want.len();
    }
    stats.cases += 1;
    stats.requests += http.requests;
}

#[tokio::test]
async fn random_requests_with_one_key_never_see_another_project() {
    let seed = std::env::var("ISOLATION_PROP_SEED")
        .ok()
        .map(|s| {
            let s = s.trim_start_matches("0x");
            u64::from_str_radix(s, 16).expect("ISOLATION_PROP_SEED is hex")
        })
        .unwrap_or(DEFAULT_SEED);
    let cases = std::env::var("ISOLATION_PROP_CASES")
        .ok()
        .map(|s| s.parse().expect("ISOLATION_PROP_CASES is a number"))
        .unwrap_or(DEFAULT_CASES);
    let started = Instant::now();
    let mut stats = Stats::default();
    for case in 0..cases {
        run_case(seed, case, &mut stats).await;
    }
    assert_eq!(stats.cases, cases);
    // The generator must actually exercise the interesting paths.
    assert!(stats.foreign_gets >= cases, "too few foreign GETs");
    assert!(stats.foreign_cursors >= cases, "too few foreign cursors");
    assert!(stats.foreign_deletes >= cases, "too few foreign DELETEs");
    println!(
        "isolation property: seed {seed:#x}, {} cases, {} requests ({} walks over {} traces, \
         {} foreign-id GETs, {} foreign cursors, {} foreign DELETEs) in {:.1}s",
        stats.cases,
        stats.requests,
        stats.walks,
        stats.pages_traces,
        stats.foreign_gets,
        stats.foreign_cursors,
        stats.foreign_deletes,
        started.elapsed().as_secs_f64()
    );
}

// ---------------------------------------------------------------------------------------------
// Timing of 404s

fn median(xs: &mut [f64]) -> f64 {
    xs.sort_by(|a, b| a.partial_cmp(b).expect("no NaN"));
    let n = xs.len();
    if n % 2 == 1 {
        xs[n / 2]
    } else {
        (xs[n / 2 - 1] + xs[n / 2]) / 2.0
    }
}

#[tokio::test]
async fn a_foreign_id_404_takes_as_long_as_a_nonexistent_id_404() {
    const N: usize = 200;
    let store = memory_store();
    // B holds N ids that A does not; A holds other ids so that its own tables are not empty.
    let b_items: Vec<Value> = (0..N)
        .map(|i| {
            common::trace_json(
                &format!("b-{i:04}"),
                "support-agent",
                "2026-03-14T10:00:00Z",
                &["production"],
            )
        })
        .collect();
    let a_items: Vec<Value> = (0..N)
        .map(|i| {
            common::trace_json(
                &format!("a-{i:04}"),
                "support-agent",
                "2026-03-14T10:00:00Z",
                &["production"],
            )
        })
        .collect();
    let (ka, kb) = (key(&store, "alpha"), key(&store, "beta"));
    let server = TestServer::start_with(store, config()).await;
    let mut http = Client {
        server: &server,
        requests: 0,
    };
    for (k, items) in [(&ka, a_items), (&kb, b_items)] {
        http.post("/api/v1/traces", k, json!({ "traces": items }).to_string())
            .await
            .data();
    }
    // Warm up connections and caches on both paths.
    for i in 0..20 {
        http.get(&format!("/api/v1/traces/b-{:04}", i % N), &ka)
            .await;
        http.get(&format!("/api/v1/traces/z-{:04}", i % N), &ka)
            .await;
    }
    let mut foreign = Vec::with_capacity(N);
    let mut nowhere = Vec::with_capacity(N);
    let mut reference: Option<Vec<u8>> = None;
    let mut rng = Rng::new(DEFAULT_SEED);
    for i in 0..N {
        // Interleave, in random order, so that drift affects both equally. Nonexistent ids
        // have the same length and shape as B's ids.
        let pair = [format!("b-{i:04}"), format!("z-{i:04}")];
        let first = rng.range(0, 1) as usize;
        for j in [first, 1 - first] {
            let t = Instant::now();
            let r = http.get(&format!("/api/v1/traces/{}", pair[j]), &ka).await;
            let ms = t.elapsed().as_secs_f64() * 1000.0;
            assert_eq!(r.status, 404);
            let body = reference.get_or_insert_with(|| r.body.clone());
            assert_eq!(&r.body, body, "404 bodies differ");
            if j == 0 {
                foreign.push(ms);
            } else {
                nowhere.push(ms);
            }
        }
    }
    let (mf, mn) = (median(&mut foreign), median(&mut nowhere));
    let ratio = mf.max(mn) / mf.min(mn).max(1e-6);
    println!(
        "404 timing over {N} requests each: median {mf:.3} ms for another project's ids, \
         {mn:.3} ms for nonexistent ids (ratio {ratio:.2}, difference {:.3} ms)",
        (mf - mn).abs()
    );
    assert!(
        ratio < 3.0 && (mf - mn).abs() < 2.0,
        "404 latency differs: foreign {mf:.3} ms vs nonexistent {mn:.3} ms"
    );
}
