//! Payload data for the report's payload rows: deterministic LLM-prompt-like JSON (chat
//! `messages` arrays of varied English-ish text from a seeded RNG, never one repeated character,
//! which would compress unrealistically well), added to demo traces; and the pair of stores,
//! the same demo traces without and with payloads, that shows listing never reads payloads.

use super::load::{demo_config, temp_dir};
use super::BATCH;
use serde_json::{json, Value};
use std::path::PathBuf;
use std::time::{Duration, Instant};
use tracestore::demo::Generator;
use tracestore::{Durability, Store, TraceInput};

/// Payload bytes (raw compact JSON) the generator aims at per trace.
pub const PAYLOAD_TARGET_BYTES: usize = 20 * 1024;

/// SplitMix64, as in the demo generator: small, fast and fully determined by its seed.
#[derive(Clone, Debug)]
pub struct Rng(pub u64);

impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
    fn pick<'a>(&mut self, v: &[&'a str]) -> &'a str {
        v[self.below(v.len() as u64) as usize]
    }
}

/// The vocabulary of the generated text: words of support, coding and retrieval conversations.
const WORDS: [&str; 164] = [
    "the",
    "a",
    "to",
    "of",
    "and",
    "in",
    "is",
    "for",
    "that",
    "with",
    "on",
    "you",
    "it",
    "this",
    "be",
    "are",
    "as",
    "can",
    "your",
    "we",
    "please",
    "order",
    "account",
    "refund",
    "invoice",
    "customer",
    "request",
    "support",
    "ticket",
    "issue",
    "problem",
    "error",
    "message",
    "update",
    "payment",
    "subscription",
    "plan",
    "billing",
    "shipping",
    "delivery",
    "address",
    "email",
    "password",
    "reset",
    "login",
    "access",
    "permission",
    "document",
    "file",
    "report",
    "summary",
    "table",
    "query",
    "database",
    "index",
    "search",
    "result",
    "results",
    "page",
    "section",
    "function",
    "method",
    "class",
    "module",
    "library",
    "version",
    "release",
    "deploy",
    "build",
    "test",
    "failing",
    "passing",
    "timeout",
    "latency",
    "retry",
    "network",
    "server",
    "client",
    "response",
    "status",
    "code",
    "value",
    "field",
    "list",
    "item",
    "items",
    "number",
    "date",
    "time",
    "week",
    "month",
    "yesterday",
    "today",
    "tomorrow",
    "after",
    "before",
    "because",
    "however",
    "also",
    "then",
    "when",
    "which",
    "what",
    "where",
    "how",
    "why",
    "would",
    "could",
    "should",
    "will",
    "have",
    "has",
    "had",
    "was",
    "were",
    "been",
    "not",
    "no",
    "yes",
    "more",
    "less",
    "some",
    "any",
    "each",
    "every",
    "all",
    "first",
    "last",
    "next",
    "previous",
    "new",
    "old",
    "correct",
    "wrong",
    "missing",
    "available",
    "unavailable",
    "expected",
    "actual",
    "context",
    "retrieved",
    "passage",
    "source",
    "citation",
    "answer",
    "question",
    "user",
    "assistant",
    "tool",
    "call",
    "step",
    "plan",
    "check",
    "confirm",
    "explain",
    "describe",
    "compare",
    "find",
    "show",
    "send",
    "open",
    "close",
    "cancel",
    "change",
];

/// Words that open a sentence.
const OPENERS: [&str; 16] = [
    "I",
    "We",
    "The customer",
    "Please",
    "Could you",
    "It seems",
    "According to the document",
    "The tool",
    "Let me",
    "Based on the results",
    "Unfortunately",
    "Thanks",
    "Next",
    "Here",
    "The report",
    "Note that",
];

/// One sentence of 6–21 words, sometimes with an identifier or a number in it.
fn sentence(r: &mut Rng, out: &mut String) {
    out.push_str(r.pick(&OPENERS));
    let n = 6 + r.below(16);
    for i in 0..n {
        out.push(' ');
        match r.below(40) {
            0 => out.push_str(&format!("#{}", 10_000 + r.below(90_000))),
            1 => out.push_str(&format!("{}.{}", r.below(100), r.below(100))),
            2 => out.push_str(&format!(
                "src/{}/{}.rs",
                r.pick(&WORDS[20..]),
                r.pick(&WORDS[20..])
            )),
            _ => out.push_str(r.pick(&WORDS)),
        }
        if i + 1 < n && r.below(9) == 0 {
            out.push(',');
        }
    }
    out.push_str(match r.below(8) {
        0 => "?",
        1 => "!",
        _ => ".",
    });
}

/// English-ish text of about `bytes` bytes (whole sentences, some paragraphs).
pub fn text(r: &mut Rng, bytes: usize) -> String {
    let mut s = String::with_capacity(bytes + 160);
    while s.len() < bytes {
        if !s.is_empty() {
            s.push_str(if r.below(6) == 0 { "\n\n" } else { " " });
        }
        sentence(r, &mut s);
    }
    s
}

/// Text of `base` to `base + spread` bytes.
pub fn text_about(r: &mut Rng, base: usize, spread: u64) -> String {
    let n = base + r.below(spread) as usize;
    text(r, n)
}

/// A system prompt, the same for every trace of one name (seeded by the name).
fn system_prompt(name: &str) -> String {
    let seed = name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ b as u64).wrapping_mul(0x100_0000_01b3)
    });
    format!(
        "You are {name}, a helpful assistant. {}",
        text(&mut Rng(seed), 500)
    )
}

/// Compact JSON length of `v`.
fn json_len(v: &Value) -> usize {
    serde_json::to_vec(v).map_or(0, |b| b.len())
}

/// Adds about [`PAYLOAD_TARGET_BYTES`] of payloads to `t`: the trace's input (the user's
/// messages) and output (the final answer), and each span's input (a chat request: system
/// prompt, user message and earlier turns), output (the model's answer) and a few attributes.
/// Returns the raw payload bytes added (compact JSON of every input, output and attributes).
pub fn add_payloads(t: &mut TraceInput, r: &mut Rng) -> usize {
    let name = t.name.clone().unwrap_or_default();
    let system = system_prompt(&name);
    let question = text_about(r, 400, 400);
    let input = json!({
        "messages": [{"role": "user", "content": question}],
        "channel": "web",
    });
    let output = json!({"role": "assistant", "content": text_about(r, 700, 600)});
    let mut raw = json_len(&input) + json_len(&output);
    t.input = Some(input);
    t.output = Some(output);
    let spans = t.spans.len().max(1);
    let per_span = PAYLOAD_TARGET_BYTES.saturating_sub(raw) / spans;
    for s in &mut t.spans {
        // About 4/5 of a span's share is its request, 1/5 the answer.
        let history_bytes = (per_span * 4 / 5).saturating_sub(system.len() + question.len() + 120);
        let mut messages = vec![
            json!({"role": "system", "content": system}),
            json!({"role": "user", "content": question}),
        ];
        let mut left = history_bytes;
        let mut turn = 0;
        while left > 200 {
            let n = (200 + r.below(1200) as usize).min(left);
            let role = if turn % 2 == 0 { "assistant" } else { "tool" };
            messages.push(json!({"role": role, "content": text(r, n)}));
            left -= n;
            turn += 1;
        }
        let input = json!({
            "model": s.model.clone().unwrap_or_default(),
            "messages": messages,
            "temperature": 0.2,
        });
        let output = json!({
            "role": "assistant",
            "content": text(r, (per_span / 5).max(100)),
            "finish_reason": "stop",
        });
        let attributes = serde_json::Map::from_iter([
            ("llm.provider".to_string(), json!("openai")),
            ("llm.max_tokens".to_string(), json!(1024)),
            ("retry".to_string(), json!(r.below(3))),
        ]);
        raw += json_len(&input) + json_len(&output) + json_len(&Value::Object(attributes.clone()));
        s.input = Some(input);
        s.output = Some(output);
        s.attributes = Some(attributes);
    }
    raw
}

/// The same demo traces in two tracestore files: `plain` without payloads, `payload` with
/// about [`PAYLOAD_TARGET_BYTES`] each.
pub struct PayloadPair {
    pub dir: tempfile::TempDir,
    pub plain: Store,
    pub plain_path: PathBuf,
    pub payload: Store,
    pub payload_path: PathBuf,
    pub traces: usize,
    /// Raw payload bytes (compact JSON) ingested into `payload`.
    pub raw_payload_bytes: u64,
    /// Seconds spent ingesting, per store (excluding generation).
    pub plain_secs: f64,
    pub payload_secs: f64,
}

/// Generates `n` demo traces (the report's generator configuration) in batches of 1000 and
/// ingests each batch into both stores, with payloads added for the second.
pub fn load_payload_pair(n: usize, durability: Durability) -> PayloadPair {
    let dir = temp_dir();
    let plain_path = dir.path().join("plain.redb");
    let payload_path = dir.path().join("payload.redb");
    let open = |p: &PathBuf| {
        Store::builder()
            .durability(durability)
            .open(p)
            .expect("open store")
    };
    let (plain, payload) = (open(&plain_path), open(&payload_path));
    let mut g = Generator::new(demo_config(n));
    let mut r = Rng(0x7061_796c_6f61_6473);
    let (mut plain_t, mut payload_t) = (Duration::ZERO, Duration::ZERO);
    let (mut done, mut raw) = (0usize, 0u64);
    while done < n {
        let batch = g.next_batch(BATCH);
        if batch.is_empty() {
            break;
        }
        for (project, traces) in batch {
            done += traces.len();
            let mut with = traces.clone();
            for t in &mut with {
                raw += add_payloads(t, &mut r) as u64;
            }
            let t0 = Instant::now();
            plain.ingest(&project, traces).expect("ingest plain");
            plain_t += t0.elapsed();
            let t1 = Instant::now();
            payload
                .ingest(&project, with)
                .expect("ingest with payloads");
            payload_t += t1.elapsed();
        }
    }
    PayloadPair {
        dir,
        plain,
        plain_path,
        payload,
        payload_path,
        traces: done,
        raw_payload_bytes: raw,
        plain_secs: plain_t.as_secs_f64(),
        payload_secs: payload_t.as_secs_f64(),
    }
}

/// Space use from `Store::storage_stats`: the `payloads` table's entry bytes (stored keys and
/// values, compressed where the store compresses), and the total of every table (entries, B-tree
/// metadata and fragmentation).
pub struct Usage {
    pub payload_entries: u64,
    pub payload_table: u64,
    pub all_tables: u64,
}

pub fn usage(store: &Store) -> Usage {
    let stats = store.storage_stats().expect("storage stats");
    let size = |u: &tracestore::TableUsage| u.entries_bytes + u.metadata_bytes + u.fragmented_bytes;
    let payloads = stats.iter().filter(|u| u.table == "payloads");
    Usage {
        payload_entries: payloads.clone().map(|u| u.entries_bytes).sum(),
        payload_table: payloads.map(size).sum(),
        all_tables: stats.iter().map(size).sum(),
    }
}
