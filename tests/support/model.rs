//! The naive model of the contract, with spans and scores: per project, id -> trace, and what
//! each write operation must return.

use super::ops::{Item, Op};
use super::query::{MQuery, ModelTrace, BASE_MS};
use rust_decimal::Decimal;
use std::collections::{BTreeMap, BTreeSet};
use tracestore::Status;

pub const PROJECTS: [&str; 2] = ["p", "q"];
pub const NAMES: [&str; 5] = [
    "support-agent",
    "Support-Bot",
    "tool",
    "planner",
    "RAG-search",
];
pub const TAGS: [&str; 5] = ["prod", "dev", "v1", "v2", "Prod"];
pub const NAME_FILTERS: [&str; 6] = ["", "support", "SUPPORT", "agent", "t", "zzz"];

/// A span as the model keeps it: only what feeds the aggregates.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MSpan {
    pub cost: Option<Decimal>,
    pub total_tokens: u64,
    /// The compact JSON text of the span's input payload.
    pub input: Option<String>,
}

/// One trace as the model sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MTrace {
    pub id: String,
    pub name: String,
    pub status: Status,
    pub start_ms: i64,
    pub end_ms: Option<i64>,
    pub tags: Vec<String>,
    pub metadata: String,
    pub spans: BTreeMap<String, MSpan>,
    pub scores: BTreeSet<String>,
}

model_trace_fields!(MTrace);

impl MTrace {
    pub fn total_cost(&self) -> Decimal {
        self.spans.values().filter_map(|s| s.cost).sum()
    }
    pub fn total_tokens(&self) -> u64 {
        self.spans.values().map(|s| s.total_tokens).sum()
    }
}

/// A naive model: per project, id -> trace; queries filter and sort a Vec.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Model {
    pub projects: BTreeMap<String, BTreeMap<String, MTrace>>,
}

/// What the model says an operation returns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Expect {
    Ok,
    Validation,
    NotFound,
    Deleted(u64),
}

impl Model {
    pub fn traces(&self, project: &str) -> Vec<&MTrace> {
        self.projects
            .get(project)
            .map(|m| m.values().collect())
            .unwrap_or_default()
    }
    pub fn get(&self, project: &str, id: &str) -> Option<&MTrace> {
        self.projects.get(project).and_then(|m| m.get(id))
    }
    pub fn answer(&self, project: &str, q: &MQuery) -> Vec<&MTrace> {
        q.answer(self.traces(project))
    }

    /// Applies an ingest batch: all items or none.
    pub fn ingest(&mut self, project: &str, items: &[Item]) -> Expect {
        let mut next = self.projects.get(project).cloned().unwrap_or_default();
        let mut ok = true;
        for it in items {
            let id = it.trace_id();
            let existing = next.get(&id).cloned();
            let mut t = match existing {
                Some(t) => t,
                None => {
                    let (Some(n), Some(s)) = (it.name, it.start_s) else {
                        ok = false;
                        continue;
                    };
                    MTrace {
                        id: id.clone(),
                        name: NAMES[n as usize].to_string(),
                        status: Status::Ok,
                        start_ms: BASE_MS + s * 1000,
                        end_ms: None,
                        tags: Vec::new(),
                        metadata: "{}".into(),
                        spans: BTreeMap::new(),
                        scores: BTreeSet::new(),
                    }
                }
            };
            if let Some(n) = it.name {
                t.name = NAMES[n as usize].to_string();
            }
            if let Some(s) = it.status {
                t.status = s;
            }
            if let Some(s) = it.start_s {
                t.start_ms = BASE_MS + s * 1000;
            }
            if let Some(e) = it.end_s {
                t.end_ms = Some(BASE_MS + e * 1000);
            }
            if let Some(tags) = &it.tags {
                t.tags = it.tag_strings(tags);
            }
            if let Some(m) = it.metadata {
                t.metadata = metadata_json(m);
            }
            if t.end_ms.is_some_and(|e| e < t.start_ms) {
                ok = false;
                continue;
            }
            for sp in &it.spans {
                t.spans.insert(
                    span_id(sp.id),
                    MSpan {
                        cost: sp.cost_micros.map(|c| Decimal::new(c as i64, 6)),
                        total_tokens: sp.input_tokens as u64 + sp.output_tokens as u64,
                        input: sp.input_payload().map(|v| v.to_string()),
                    },
                );
            }
            for sc in &it.scores {
                t.scores.insert(score_id(*sc));
            }
            next.insert(id, t);
        }
        if !ok {
            return Expect::Validation;
        }
        self.projects.insert(project.to_string(), next);
        Expect::Ok
    }

    pub fn delete(&mut self, project: &str, id: &str) -> Expect {
        match self.projects.get_mut(project).and_then(|m| m.remove(id)) {
            Some(_) => Expect::Ok,
            None => Expect::NotFound,
        }
    }

    pub fn retention(&mut self, project: &str, cutoff_ms: i64) -> Expect {
        let Some(m) = self.projects.get_mut(project) else {
            return Expect::Deleted(0);
        };
        let before = m.len();
        m.retain(|_, t| t.start_ms >= cutoff_ms);
        Expect::Deleted((before - m.len()) as u64)
    }
}

impl Model {
    /// Applies a write operation as the contract says it must behave; reads change nothing.
    pub fn apply_write(&mut self, op: &Op) -> Expect {
        match op {
            Op::Ingest { project, items, .. } => self.ingest(PROJECTS[*project], items),
            Op::Delete { project, id } => self.delete(PROJECTS[*project], &trace_id(*id)),
            Op::Retention { project, cutoff_s } => {
                self.retention(PROJECTS[*project], BASE_MS + cutoff_s * 1000)
            }
            _ => Expect::Ok,
        }
    }
}

pub fn metadata_json(m: u8) -> String {
    format!("{{\"k\":{m}}}")
}
pub fn trace_id(n: u8) -> String {
    format!("t{n:02}")
}
pub fn span_id(n: u8) -> String {
    format!("s{n}")
}
pub fn score_id(n: u8) -> String {
    format!("q{n}")
}
