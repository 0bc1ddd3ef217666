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
mod support_isolation;

use common::{key, memory_store, TestServer};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::time::Instant;
use support_isolation::filter::{expected, Filter};
use support_isolation::http::{config, seg, Client};
use support_isolation::model::{canonical, random_trace, TraceM, ID_POOL};
use support_isolation::rng::Rng;

const DEFAULT_SEED: u64 = 0x7ace_5709_e15a_7e01;
const DEFAULT_CASES: usize = 128;

const PROJECTS: [&str; 3] = ["alpha", "beta", "gamma"];

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
