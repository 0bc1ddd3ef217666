//! What the ClickHouse tests share: their random numbers, the hostile texts, an env var a test
//! needs, and random list queries over every filter and order with values that match the
//! tests' datasets.

#![allow(dead_code)] // each test file uses a part

use tracestore::demo::{DemoConfig, Generator, NAMES, TAGS};
use tracestore::{ScoreInput, ScoreValue, SpanInput, SpanKind, Status, Timestamp, TraceInput};

/// The projects of the datasets.
pub const PROJECTS: [&str; 2] = ["demo", "other-team"];

/// Texts that must reach ClickHouse as values, never as SQL.
pub const HOSTILE: [&str; 10] = [
    "it's",
    "back\\slash",
    "quote\"d",
    "x' OR '1'='1",
    "'; DROP TABLE traces; --",
    "SELECT * FROM traces FINAL",
    "semi;colon\\'mix%_",
    "tab\\t\\n\\0 escapes",
    "naïve ÄÖÜ ß",
    "why? {p:String} ?",
];

pub fn ts(ms: i64) -> Timestamp {
    Timestamp::from_millis(ms).unwrap()
}

/// A hostile text usable as an id or a user id (printable, no whitespace).
pub fn no_space(text: &str) -> String {
    text.replace(' ', "_")
}

/// An env var's value, or None (with a note, or a panic under
/// `TRACESTORE_REQUIRE_CLICKHOUSE=1`) when it is unset.
pub fn required_env(name: &str) -> Option<String> {
    match std::env::var(name) {
        Ok(v) if !v.is_empty() => Some(v),
        _ => {
            assert!(
                std::env::var("TRACESTORE_REQUIRE_CLICKHOUSE").as_deref() != Ok("1"),
                "TRACESTORE_REQUIRE_CLICKHOUSE=1 but {name} is not set"
            );
            eprintln!("{name} is not set: this ClickHouse test did not run");
            None
        }
    }
}

/// A dataset's stored traces, before any upsert: `traces` demo traces over `PROJECTS` (some
/// with a session), then one trace in `demo` per hostile text, carrying it as its name, a tag,
/// a metadata value, its user and session ids and its first span's name and model.
pub fn base_traces(rng: &mut Rng, seed: u64, traces: usize) -> Vec<(String, TraceInput)> {
    let cfg = DemoConfig {
        seed,
        traces,
        projects: PROJECTS.iter().map(|p| p.to_string()).collect(),
        spans: (0, 5),
        error_share: 0.15,
        ..DemoConfig::default()
    };
    let mut all: Vec<(String, TraceInput)> = Vec::new();
    for (p, mut t) in Generator::new(cfg) {
        tracestore::demo::enrich(&mut t);
        if rng.chance(20) {
            t.session_id = Some(format!("sess-{}", rng.below(8)));
        }
        all.push((p, t));
    }
    for (i, text) in HOSTILE.iter().enumerate() {
        let mut t = all[i].1.clone();
        t.id = Some(format!("hostile-{i}-{}", no_space(text)));
        t.name = Some(text.to_string());
        t.tags = Some(vec![text.to_string(), "hostile".into()]);
        let mut m = t.metadata.clone().unwrap_or_default();
        m.insert("note".into(), text.to_string().into());
        t.metadata = Some(m);
        t.user_id = Some(no_space(text));
        t.session_id = Some(no_space(text));
        if let Some(s) = t.spans.first_mut() {
            s.name = Some(text.to_string());
            s.model = Some(text.to_string());
        }
        all.push(("demo".into(), t));
    }
    all
}

/// `all` in ingest batches: each chunk of `size` traces split by project, in `PROJECTS` order,
/// empty batches left out.
pub fn project_batches(
    all: &[(String, TraceInput)],
    size: usize,
) -> Vec<(String, Vec<TraceInput>)> {
    let mut out = Vec::new();
    for chunk in all.chunks(size) {
        for p in PROJECTS {
            let batch: Vec<TraceInput> = chunk
                .iter()
                .filter(|(q, _)| q == p)
                .map(|(_, t)| t.clone())
                .collect();
            if !batch.is_empty() {
                out.push((p.to_string(), batch));
            }
        }
    }
    out
}

/// A random upsert of stored trace `t`: a new status, tags or name, an end, a move to another
/// startTime (a new sorting key), a late or re-sent span with another cost, or a score.
pub fn random_patch(rng: &mut Rng, t: &TraceInput) -> TraceInput {
    let end_ms = DemoConfig::default().end.as_millis();
    let kinds = [
        SpanKind::Llm,
        SpanKind::Tool,
        SpanKind::Agent,
        SpanKind::Chain,
    ];
    let mut patch = TraceInput {
        id: t.id.clone(),
        ..TraceInput::default()
    };
    match rng.below(7) {
        0 => {
            patch.status = Some(if rng.chance(50) {
                Status::Error
            } else {
                Status::Ok
            })
        }
        1 => patch.tags = Some(vec![rng.pick(&TAGS).to_string()]),
        2 => patch.name = Some(rng.pick(&NAMES).to_string()),
        3 => {
            let start = t.start_time.unwrap().as_millis();
            patch.end_time = Some(ts(start + rng.below(90_000) as i64));
        }
        4 => {
            let start = end_ms - 1 - rng.below(60 * 86_400_000) as i64;
            patch.start_time = Some(ts(start));
            patch.end_time = Some(ts(start + rng.below(60_000) as i64));
        }
        5 => {
            patch.spans = vec![SpanInput {
                id: Some(format!("s{}", rng.below(7))),
                name: Some(format!("late-{}", rng.pick(&["tool", "llm", "Retriever"]))),
                kind: Some(*rng.pick(&kinds)),
                model: rng.chance(60).then(|| {
                    rng.pick(&["gpt-4o", "o3-mini", "claude-sonnet"])
                        .to_string()
                }),
                cost: Some(rust_decimal::Decimal::new(rng.below(5_000_000) as i64, 9)),
                input_tokens: Some(rng.below(3000)),
                output_tokens: Some(rng.below(900)),
                status: rng.chance(30).then_some(Status::Error),
                input: rng
                    .chance(50)
                    .then(|| serde_json::json!({"prompt": "hello"})),
                ..SpanInput::default()
            }];
        }
        _ => {
            patch.scores = vec![ScoreInput {
                id: Some(format!("q{}", rng.below(3))),
                name: "quality".into(),
                value: ScoreValue::Number(rng.below(100) as f64 / 100.0),
                comment: None,
            }];
        }
    }
    patch
}

/// SplitMix64.
pub struct Rng(pub u64);
impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
    pub fn pick<'a, T>(&mut self, xs: &'a [T]) -> &'a T {
        &xs[self.below(xs.len() as u64) as usize]
    }
}

/// Which ends of a range to give: both, the low one or the high one.
pub fn ends(rng: &mut Rng) -> (bool, bool) {
    match rng.below(3) {
        0 => (true, true),
        1 => (true, false),
        _ => (false, true),
    }
}

pub fn sorted(a: u64, b: u64) -> (u64, u64) {
    (a.min(b), a.max(b))
}

/// What a random query gives beside its filters and order.
#[derive(Clone, Copy)]
pub struct Extras {
    /// A random `limit` (1 to 100), most of the time.
    pub limit: bool,
    /// A random `include` (total, facets, both or neither).
    pub include: bool,
}

/// Random list query parameters over every filter and order (and `Extras`), with values that
/// match the datasets (and hostile ones).
pub fn random_query(rng: &mut Rng, extras: Extras) -> Vec<(String, String)> {
    let mut q: Vec<(String, String)> = Vec::new();
    // Each parameter at most once (a repeated one is a validation error).
    let mut add = |k: &str, v: String| {
        if !q.iter().any(|(have, _)| have == k) {
            q.push((k.to_string(), v));
        }
    };
    let end_ms = DemoConfig::default().end.as_millis();
    let day = 86_400_000i64;
    let mut ranges: Vec<u64> = Vec::new();
    for _ in 0..rng.below(5) {
        match rng.below(19) {
            0 => add("status", rng.pick(&["OK", "ERROR"]).to_string()),
            1 => {
                let n = rng.pick(&NAMES);
                let at = rng.below(n.len() as u64 - 2) as usize;
                let sub = &n[at..(at + 3).min(n.len())];
                add(
                    "name",
                    if rng.chance(30) {
                        sub.to_uppercase()
                    } else {
                        sub.to_string()
                    },
                );
            }
            2 => add("tags", rng.pick(&TAGS).to_string()),
            3 => add(
                "anyTags",
                format!("{},{}", rng.pick(&TAGS), rng.pick(&TAGS)),
            ),
            4 => add("excludeTags", rng.pick(&TAGS).to_string()),
            5 => add("userId", format!("u{}", rng.below(5000))),
            6 => add("sessionId", format!("sess-{}", rng.below(8))),
            7 => add(
                "metadata.environment",
                rng.pick(&["prod", "staging"]).to_string(),
            ),
            8 => add("metadata.version", format!("2.{}", rng.below(4))),
            // Each range once, with one end or both (low <= high: others are refused).
            9 if !ranges.contains(&9) => {
                ranges.push(9);
                let from = end_ms - rng.below(60) as i64 * day;
                let to = from + (1 + rng.below(20) as i64) * day;
                let (lo, hi) = ends(rng);
                if lo {
                    add("startDate", ts(from).to_string());
                }
                if hi {
                    add("endDate", ts(to).to_string());
                }
            }
            10 if !ranges.contains(&10) => {
                ranges.push(10);
                let (a, b) = sorted(rng.below(20) * 1000, rng.below(30) * 1000);
                let (lo, hi) = ends(rng);
                if lo {
                    add("minDurationMs", a.to_string());
                }
                if hi {
                    add("maxDurationMs", b.to_string());
                }
            }
            11 if !ranges.contains(&11) => {
                ranges.push(11);
                let (a, b) = sorted(rng.below(30), rng.below(60));
                let (lo, hi) = ends(rng);
                if lo {
                    add("minCost", format!("0.{a:03}"));
                }
                if hi {
                    add("maxCost", format!("0.{b:03}"));
                }
            }
            12 if !ranges.contains(&12) => {
                ranges.push(12);
                let (a, b) = sorted(rng.below(10) * 1000, rng.below(20) * 1000);
                let (lo, hi) = ends(rng);
                if lo {
                    add("minTokens", a.to_string());
                }
                if hi {
                    add("maxTokens", b.to_string());
                }
            }
            13 => add(
                "spanName",
                rng.pick(&["llm", "STEP-2", "late", "tool"]).to_string(),
            ),
            14 => add(
                "spanModel",
                rng.pick(&["gpt-4o", "gpt-4o-mini", "o3-mini", "claude-sonnet"])
                    .to_string(),
            ),
            15 => add("spanKind", rng.pick(&["LLM", "TOOL", "AGENT"]).to_string()),
            16 => add("spanStatus", rng.pick(&["OK", "ERROR"]).to_string()),
            17 => {
                // A hostile text as a value: of the name, a tag, a user, a metadata value or
                // a span's name or model.
                let text = *rng.pick(&HOSTILE);
                match rng.below(6) {
                    0 => add("name", text.to_string()),
                    1 => add("tags", text.to_string()),
                    2 => add("userId", no_space(text)),
                    3 => add("metadata.note", text.to_string()),
                    4 => add("spanName", text.to_string()),
                    _ => add("spanModel", text.to_string()),
                }
            }
            _ => add("tags", "hostile".to_string()),
        }
    }
    if rng.chance(80) {
        add(
            "orderBy",
            rng.pick(&tracestore::Order::ALL).as_str().to_string(),
        );
    }
    if extras.limit && rng.chance(80) {
        add("limit", (1 + rng.below(MAX_LIMIT)).to_string());
    }
    if extras.include {
        match rng.below(4) {
            0 => add("include", "total".into()),
            1 => add("include", "facets".into()),
            2 => add("include", "total,facets".into()),
            _ => {}
        }
    }
    q
}

/// The largest page size the API allows.
const MAX_LIMIT: u64 = 100;
