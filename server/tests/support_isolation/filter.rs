//! Random list-query filters, as query-string pairs and as a predicate on the model.

use super::model::{TraceM, TAG_POOL};
use super::rng::Rng;
use super::time::{base_ms, date_param};
use serde_json::Value;
use std::collections::BTreeMap;

pub const NAME_FILTERS: &[&str] = &[
    "support", "SUPPORT", "agent", "Agent-V2", "bot", "planner", "er", "-", "zzz", "coder",
];

/// What a list query asks for, both as query-string pairs and as a predicate on the model.
#[derive(Clone, Debug, Default)]
pub struct Filter {
    pub pairs: Vec<(&'static str, String)>,
    name: Option<String>,
    status: Option<&'static str>,
    tags: Vec<String>,
    start: Option<i64>,
    end: Option<i64>,
}

impl Filter {
    pub fn random(rng: &mut Rng) -> Filter {
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

    pub fn matches(&self, t: &TraceM) -> bool {
        self.name
            .as_ref()
            .is_none_or(|n| t.name.to_ascii_lowercase().contains(n.as_str()))
            && self.status.is_none_or(|s| t.status == s)
            && self.tags.iter().all(|x| t.tags.contains(x))
            && self.start.is_none_or(|s| t.start_ms >= s)
            && self.end.is_none_or(|e| t.start_ms < e)
    }

    pub fn query(&self, limit: u64) -> String {
        let mut q = form_urlencoded::Serializer::new(String::new());
        q.append_pair("limit", &limit.to_string());
        for (k, v) in &self.pairs {
            q.append_pair(k, v);
        }
        q.finish()
    }
}

/// `project`'s traces matching `f`, newest first (startTime, then id bytes, descending).
pub fn expected(model: &BTreeMap<String, TraceM>, f: &Filter) -> Vec<Value> {
    let mut ts: Vec<&TraceM> = model.values().filter(|t| f.matches(t)).collect();
    ts.sort_by(|a, b| (b.start_ms, b.id.as_bytes()).cmp(&(a.start_ms, a.id.as_bytes())));
    ts.into_iter().map(TraceM::expected_summary).collect()
}
