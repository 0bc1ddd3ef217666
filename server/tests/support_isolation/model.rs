//! The independent in-test model of one project's traces: what was ingested, what the list and
//! detail endpoints must answer for it, and a random generator of such traces.

use super::rng::Rng;
use super::time::{base_ms, fmt_ms};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};

/// Ids shared by all projects: plain ones, ones that need percent-encoding in a path, a pair
/// that differs only in case, and a non-ASCII one.
pub const ID_POOL: &[&str] = &[
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
pub const TAG_POOL: &[&str] = &["production", "v2", "eu", "staging", "free-tier", "Beta"];

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
pub struct TraceM {
    pub id: String,
    pub name: String,
    pub status: &'static str,
    pub start_ms: i64,
    end_ms: Option<i64>,
    pub tags: Vec<String>,
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
    pub fn input_json(&self) -> Value {
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
    pub fn expected_summary(&self) -> Value {
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
            "userId": null,
            "sessionId": null,
        })
    }

    pub fn expected_detail(&self) -> Value {
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
                        "parentId": null, "kind": "UNKNOWN", "status": "OK",
                        "statusMessage": null, "input": null, "output": null,
                        "attributes": null,
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
        v["input"] = Value::Null;
        v["output"] = Value::Null;
        v
    }
}

fn sorted_set(it: impl Iterator<Item = String>) -> Vec<String> {
    it.collect::<BTreeSet<_>>().into_iter().collect()
}

/// A served trace object, made comparable with the model: `createdAt` checked for shape and
/// removed, tags as a sorted set, decimals normalized, spans and scores keyed by id.
pub fn canonical(served: &Value) -> Value {
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

pub fn random_trace(rng: &mut Rng, project: &str, id: &str, serial: u64) -> TraceM {
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
