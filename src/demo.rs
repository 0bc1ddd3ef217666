//! A deterministic, seeded generator of trace data shaped like real agent traffic: ~50 trace
//! names with Zipf-like popularity (a few busy agents, a long tail of tools), about 3% ERROR,
//! 20 tags with 0–3 per trace, 1–12 spans with models, tokens and exact decimal costs, and a few
//! metadata keys. The same seed always yields the same traces, so benchmarks, tests and the demo
//! server all see the same data.
//!
//! ```
//! use tracestore::demo::{DemoConfig, Generator};
//! let mut g = Generator::new(DemoConfig { traces: 10, ..DemoConfig::default() });
//! let (project, trace) = g.next().unwrap();
//! assert!(!project.is_empty() && trace.name.is_some());
//! ```

use crate::model::{ScoreInput, ScoreValue, SpanInput, Status, TraceInput};
use crate::time::Timestamp;
use rust_decimal::Decimal;

/// The busiest agent; the demo's first curl example filters on it.
pub const BUSY_NAME: &str = "support-agent";
/// A tool name that only about 0.4% of traces carry.
pub const RARE_NAME: &str = "tool-pdf-ocr";

/// The 50 trace names, most popular first.
pub const NAMES: [&str; 50] = [
    "support-agent",
    "research-agent",
    "coding-agent",
    "sales-agent",
    "triage-agent",
    "planner-agent",
    "summarizer-agent",
    "qa-agent",
    "router-agent",
    "billing-agent",
    "tool-web-search",
    "tool-sql-query",
    "tool-vector-lookup",
    "tool-email-send",
    "tool-calendar",
    "tool-code-exec",
    "tool-http-fetch",
    "tool-file-read",
    "tool-file-write",
    "tool-translate",
    "tool-classify",
    "tool-extract-entities",
    "tool-sentiment",
    "tool-rerank",
    "tool-embed",
    "tool-crm-update",
    "tool-ticket-create",
    "tool-slack-post",
    "tool-jira-sync",
    "tool-github-pr",
    "tool-image-caption",
    "tool-speech-to-text",
    "tool-text-to-speech",
    "tool-weather",
    "tool-maps",
    "tool-currency",
    "tool-stock-quote",
    "tool-news",
    "tool-wiki",
    "tool-calculator",
    "tool-spellcheck",
    "tool-summarize-url",
    "tool-pdf-ocr",
    "tool-csv-parse",
    "tool-xml-parse",
    "tool-geo-ip",
    "tool-dns-lookup",
    "tool-whois",
    "tool-barcode",
    "tool-qr-decode",
];

/// The 20 tags, most popular first.
pub const TAGS: [&str; 20] = [
    "production",
    "v2",
    "eu",
    "us",
    "v1",
    "staging",
    "beta",
    "mobile",
    "web",
    "api",
    "enterprise",
    "free-tier",
    "canary",
    "v3",
    "experiment-a",
    "experiment-b",
    "apac",
    "internal",
    "load-test",
    "legacy",
];

const MODELS: [(&str, i64, i64); 4] = [
    // (model, USD per 1M input tokens in millionths, per 1M output tokens in millionths)
    ("gpt-4o", 2_500_000, 10_000_000),
    ("gpt-4o-mini", 150_000, 600_000),
    ("claude-sonnet", 3_000_000, 15_000_000),
    ("llama-3-70b", 590_000, 790_000),
];

/// What to generate.
#[derive(Clone, Debug)]
pub struct DemoConfig {
    /// Seed of the deterministic generator.
    pub seed: u64,
    /// How many traces in total.
    pub traces: usize,
    /// Project names; the first receives `main_share` of the traces, the rest share the remainder.
    pub projects: Vec<String>,
    /// Share of traces in the first project.
    pub main_share: f64,
    /// Traces spread over this many days, ending at `end`.
    pub days: u32,
    /// The end of the time range (exclusive).
    pub end: Timestamp,
    /// Share of ERROR traces.
    pub error_share: f64,
    /// Spans per trace, inclusive range.
    pub spans: (u32, u32),
}

impl Default for DemoConfig {
    fn default() -> Self {
        DemoConfig {
            seed: 42,
            traces: 10_000,
            projects: vec!["demo".into(), "other-team".into(), "sandbox".into()],
            main_share: 0.9,
            days: 60,
            // 60 days ending 2026-03-31: the first half of March 2026 is well covered.
            end: Timestamp::from_millis_unchecked(1_774_915_200_000),
            error_share: 0.03,
            spans: (1, 12),
        }
    }
}

/// SplitMix64: small, fast and fully determined by its seed.
#[derive(Clone, Debug)]
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
}

fn zipf_cdf(n: usize, s: f64) -> Vec<f64> {
    let weights: Vec<f64> = (1..=n).map(|k| 1.0 / (k as f64).powf(s)).collect();
    let total: f64 = weights.iter().sum();
    let mut acc = 0.0;
    weights
        .iter()
        .map(|w| {
            acc += w / total;
            acc
        })
        .collect()
}

fn pick(cdf: &[f64], u: f64) -> usize {
    cdf.partition_point(|c| *c < u).min(cdf.len() - 1)
}

/// An iterator of `(project, trace)` in arrival order (roughly, not exactly, time order).
#[derive(Clone, Debug)]
pub struct Generator {
    cfg: DemoConfig,
    rng: Rng,
    i: usize,
    name_cdf: Vec<f64>,
    tag_cdf: Vec<f64>,
}

impl Generator {
    /// A generator for `cfg`.
    pub fn new(cfg: DemoConfig) -> Self {
        let rng = Rng(cfg.seed ^ 0x7472_6163_6573_746f);
        Generator {
            cfg,
            rng,
            i: 0,
            name_cdf: zipf_cdf(NAMES.len(), 1.1),
            tag_cdf: zipf_cdf(TAGS.len(), 0.9),
        }
    }

    /// The next `n` traces grouped by project, each group in arrival order.
    pub fn next_batch(&mut self, n: usize) -> Vec<(String, Vec<TraceInput>)> {
        let mut groups: Vec<(String, Vec<TraceInput>)> = Vec::new();
        for (p, t) in self.by_ref().take(n) {
            match groups.iter_mut().find(|(q, _)| *q == p) {
                Some((_, v)) => v.push(t),
                None => groups.push((p, vec![t])),
            }
        }
        groups
    }

    fn trace(&mut self) -> (String, TraceInput) {
        let cfg = &self.cfg;
        let i = self.i;
        let r = &mut self.rng;
        let project = if cfg.projects.len() <= 1 || r.unit() < cfg.main_share {
            cfg.projects
                .first()
                .cloned()
                .unwrap_or_else(|| "demo".into())
        } else {
            let k = 1 + r.below(cfg.projects.len() as u64 - 1) as usize;
            cfg.projects[k].clone()
        };
        // Arrival order follows time, with up to ±5 minutes of jitter.
        let span_ms = cfg.days as i64 * 86_400_000;
        let begin = cfg.end.as_millis() - span_ms;
        let base = begin + (span_ms as f64 * (i as f64 + 0.5) / cfg.traces.max(1) as f64) as i64;
        let jitter = r.below(600_000) as i64 - 300_000;
        let start = (base + jitter).clamp(begin, cfg.end.as_millis() - 1);
        let name = NAMES[pick(&self.name_cdf, r.unit())];
        let status = if r.unit() < cfg.error_share {
            Status::Error
        } else {
            Status::Ok
        };
        let ntags = r.below(4) as usize;
        let mut tags: Vec<String> = Vec::new();
        for _ in 0..ntags {
            let t = TAGS[pick(&self.tag_cdf, r.unit())].to_string();
            if !tags.contains(&t) {
                tags.push(t);
            }
        }
        let (lo, hi) = cfg.spans;
        let nspans = lo + r.below((hi.saturating_sub(lo) + 1) as u64) as u32;
        let mut spans = Vec::with_capacity(nspans as usize);
        let mut t = start;
        for s in 0..nspans {
            let (model, pin, pout) = MODELS[r.below(MODELS.len() as u64) as usize];
            let input = 50 + r.below(4000);
            let output = 10 + r.below(1000);
            let dur = 50 + r.below(3000) as i64;
            // cost = tokens * price per 1M tokens; prices are in millionths of a USD.
            let cost = Decimal::new(input as i64 * pin + output as i64 * pout, 12).normalize();
            spans.push(SpanInput {
                id: Some(format!("s{s}")),
                name: Some(if s == 0 {
                    "llm-call".into()
                } else {
                    format!("step-{s}")
                }),
                start_time: Some(Timestamp::from_millis_unchecked(t)),
                end_time: Some(Timestamp::from_millis_unchecked(t + dur)),
                model: Some(model.into()),
                input_tokens: Some(input),
                output_tokens: Some(output),
                total_tokens: None,
                cost: Some(cost),
                kind: Some(crate::model::SpanKind::Llm),
                ..Default::default()
            });
            t += dur;
        }
        let end = (r.unit() > 0.02)
            .then(|| Timestamp::from_millis_unchecked(t.min(crate::limits::MAX_TIMESTAMP_MS)));
        let mut metadata = serde_json::Map::new();
        metadata.insert("version".into(), format!("2.{}", r.below(4)).into());
        metadata.insert(
            "environment".into(),
            if tags.iter().any(|t| t == "staging") {
                "staging"
            } else {
                "prod"
            }
            .into(),
        );
        metadata.insert("userId".into(), format!("u{}", r.below(5000)).into());
        let scores = if r.unit() < 0.3 {
            vec![ScoreInput {
                id: Some("quality".into()),
                name: "quality".into(),
                value: ScoreValue::Number((r.below(101) as f64) / 100.0),
                comment: None,
            }]
        } else {
            Vec::new()
        };
        let id = format!("{:016x}{:016x}", r.next_u64(), i as u64);
        let trace = TraceInput {
            id: Some(id),
            name: Some(name.into()),
            status: Some(status),
            start_time: Some(Timestamp::from_millis_unchecked(start)),
            end_time: end,
            tags: Some(tags),
            metadata: Some(metadata),
            spans,
            scores,
            ..Default::default()
        };
        (project, trace)
    }
}

impl Iterator for Generator {
    type Item = (String, TraceInput);
    fn next(&mut self) -> Option<Self::Item> {
        if self.i >= self.cfg.traces {
            return None;
        }
        let out = self.trace();
        self.i += 1;
        Some(out)
    }
}

/// What the demo generator leaves out, filled in deterministically from what it generated (no
/// extra randomness, so the traces are otherwise exactly the generator's): the trace's `userId`
/// is its `metadata.userId` string, and an ERROR trace's last span failed (`status` ERROR, as
/// tracestore stores a span status given on ingest; the other spans keep the default OK).
/// The benchmarks apply it to every trace before it goes into either engine.
pub fn enrich(t: &mut TraceInput) {
    if let Some(u) = t
        .metadata
        .as_ref()
        .and_then(|m| m.get("userId"))
        .and_then(|v| v.as_str())
    {
        t.user_id = Some(u.to_string());
    }
    if t.status == Some(Status::Error) {
        if let Some(last) = t.spans.last_mut() {
            last.status = Some(Status::Error);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_and_shaped() {
        let cfg = DemoConfig {
            traces: 20_000,
            ..DemoConfig::default()
        };
        let a: Vec<_> = Generator::new(cfg.clone()).take(100).collect();
        let b: Vec<_> = Generator::new(cfg.clone()).take(100).collect();
        assert_eq!(a, b);
        let all: Vec<_> = Generator::new(cfg).collect();
        let errors = all
            .iter()
            .filter(|(_, t)| t.status == Some(Status::Error))
            .count();
        assert!((300..900).contains(&errors), "{errors}");
        let busy = all
            .iter()
            .filter(|(_, t)| t.name.as_deref() == Some(BUSY_NAME))
            .count();
        let rare = all
            .iter()
            .filter(|(_, t)| t.name.as_deref() == Some(RARE_NAME))
            .count();
        assert!(
            busy > 2000 && rare < 300 && rare > 0,
            "busy {busy} rare {rare}"
        );
        let main = all.iter().filter(|(p, _)| p == "demo").count();
        assert!(main > 17_000, "{main}");
    }
}
