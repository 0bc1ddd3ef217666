//! What the ClickHouse tests share: their random numbers, the hostile texts, an env var a test
//! needs, and random list queries over every filter and order with values that match the
//! tests' datasets.

#![allow(dead_code)] // each test file uses a part

use tracestore::demo::{DemoConfig, NAMES, TAGS};
use tracestore::Timestamp;

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
