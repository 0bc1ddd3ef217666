//! Operations generated from bytes: [`ByteGen`] decodes a byte string into a sequence of [`Op`]s,
//! so that the proptest twin and the fuzz target run the very same sequences.

use super::model::{metadata_json, score_id, span_id, trace_id, NAMES, NAME_FILTERS, TAGS};
use super::query::{ts, MQuery};
use rust_decimal::Decimal;
use tracestore::{PlanKind, ScoreInput, ScoreValue, SpanInput, Status, TraceInput};

/// One span of an ingest item.
#[derive(Clone, Debug, PartialEq)]
pub struct ItemSpan {
    pub id: u8,
    pub cost_micros: Option<u32>,
    pub input_tokens: u32,
    pub output_tokens: u32,
}

impl ItemSpan {
    /// The span's input payload, derived from its other fields so that generated sequences need
    /// no extra bytes: none for odd token counts, else a prompt of up to 3 KiB (so both the
    /// plain and the compressed payload encodings are exercised).
    pub fn input_payload(&self) -> Option<serde_json::Value> {
        self.input_tokens.is_multiple_of(2).then(|| {
            let words = (self.input_tokens % 300) as usize;
            serde_json::json!({
                "messages": [{"role": "user", "content": "tok ".repeat(words) + &self.output_tokens.to_string()}]
            })
        })
    }
}

/// One ingest item: a new trace, or an update of an existing one (fields left `None` are kept).
#[derive(Clone, Debug, PartialEq)]
pub struct Item {
    pub id: u8,
    pub name: Option<u8>,
    pub status: Option<Status>,
    pub start_s: Option<i64>,
    pub end_s: Option<i64>,
    pub tags: Option<Vec<u8>>,
    pub metadata: Option<u8>,
    pub spans: Vec<ItemSpan>,
    pub scores: Vec<u8>,
}

impl Item {
    pub fn trace_id(&self) -> String {
        trace_id(self.id)
    }
    pub(super) fn tag_strings(&self, tags: &[u8]) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for t in tags {
            let s = TAGS[*t as usize].to_string();
            if !out.contains(&s) {
                out.push(s);
            }
        }
        out
    }
    pub fn input(&self) -> TraceInput {
        TraceInput {
            id: Some(self.trace_id()),
            name: self.name.map(|n| NAMES[n as usize].to_string()),
            status: self.status,
            start_time: self.start_s.map(|s| ts(s * 1000)),
            end_time: self.end_s.map(|s| ts(s * 1000)),
            tags: self
                .tags
                .as_ref()
                .map(|t| t.iter().map(|i| TAGS[*i as usize].to_string()).collect()),
            metadata: self.metadata.map(|m| {
                serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(&metadata_json(
                    m,
                ))
                .expect("metadata literal")
            }),
            spans: self
                .spans
                .iter()
                .map(|s| SpanInput {
                    id: Some(span_id(s.id)),
                    name: Some("llm".into()),
                    model: Some("gpt-4o".into()),
                    input_tokens: Some(s.input_tokens as u64),
                    output_tokens: Some(s.output_tokens as u64),
                    cost: s.cost_micros.map(|c| Decimal::new(c as i64, 6)),
                    input: s.input_payload(),
                    ..Default::default()
                })
                .collect(),
            scores: self
                .scores
                .iter()
                .map(|s| ScoreInput {
                    id: Some(score_id(*s)),
                    name: "quality".into(),
                    value: if s % 2 == 0 {
                        ScoreValue::Number(*s as f64 / 10.0)
                    } else {
                        ScoreValue::Text(format!("v{s}"))
                    },
                    comment: None,
                })
                .collect(),
            ..Default::default()
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum Op {
    Ingest {
        project: usize,
        items: Vec<Item>,
        json: bool,
    },
    Delete {
        project: usize,
        id: u8,
    },
    Retention {
        project: usize,
        cutoff_s: i64,
    },
    Query {
        project: usize,
        q: MQuery,
        limit: u32,
        plan: Option<PlanKind>,
    },
    Walk {
        project: usize,
        q: MQuery,
        limits: Vec<u32>,
        plan: Option<PlanKind>,
    },
    Get {
        project: usize,
        id: u8,
    },
    Reopen,
}

impl Op {
    /// True for operations that write (one logical transaction each).
    pub fn writes(&self) -> bool {
        matches!(
            self,
            Op::Ingest { .. } | Op::Delete { .. } | Op::Retention { .. }
        )
    }
}

/// Reads choices from a byte string; past its end every choice is 0.
pub struct ByteGen<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> ByteGen<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        ByteGen { data, pos: 0 }
    }
    pub fn exhausted(&self) -> bool {
        self.pos >= self.data.len()
    }
    pub fn byte(&mut self) -> u8 {
        let b = self.data.get(self.pos).copied().unwrap_or(0);
        self.pos += 1;
        b
    }
    pub fn below(&mut self, n: u32) -> u32 {
        self.byte() as u32 % n
    }
    pub fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.byte(), self.byte()])
    }
    pub fn chance(&mut self, in_256: u32) -> bool {
        (self.byte() as u32) < in_256
    }

    const IDS: u32 = 24;
    const TIMES_S: u32 = 40;

    fn item(&mut self) -> Item {
        let id = self.below(Self::IDS) as u8;
        // A third of the items are partial updates: most fields left out.
        let full = self.below(3) != 0;
        let opt = |g: &mut Self, p: u32| full || g.below(4) < p;
        let name = if opt(self, 1) {
            Some(self.below(NAMES.len() as u32) as u8)
        } else {
            None
        };
        let status = if opt(self, 2) {
            Some(if self.chance(100) {
                Status::Error
            } else {
                Status::Ok
            })
        } else {
            None
        };
        let start_s = if opt(self, 1) {
            Some(self.below(Self::TIMES_S) as i64)
        } else {
            None
        };
        let end_s = if self.below(3) == 0 {
            Some(self.below(Self::TIMES_S + 5) as i64)
        } else {
            None
        };
        let tags = if opt(self, 2) {
            let n = self.below(4);
            Some(
                (0..n)
                    .map(|_| self.below(TAGS.len() as u32) as u8)
                    .collect(),
            )
        } else {
            None
        };
        let metadata = if self.below(4) == 0 {
            Some(self.byte())
        } else {
            None
        };
        let spans = (0..self.below(4))
            .map(|_| ItemSpan {
                id: self.below(5) as u8,
                cost_micros: if self.below(5) == 0 {
                    None
                } else {
                    Some(self.u16() as u32 * 37)
                },
                input_tokens: self.u16() as u32,
                output_tokens: self.byte() as u32,
            })
            .collect();
        let scores = (0..self.below(3)).map(|_| self.below(4) as u8).collect();
        Item {
            id,
            name,
            status,
            start_s,
            end_s,
            tags,
            metadata,
            spans,
            scores,
        }
    }

    pub fn query(&mut self) -> MQuery {
        let mut q = MQuery::default();
        if self.below(3) == 0 {
            q.name = Some(NAME_FILTERS[self.below(NAME_FILTERS.len() as u32) as usize].into());
        }
        if self.below(3) == 0 {
            q.status = Some(if self.chance(128) {
                Status::Error
            } else {
                Status::Ok
            });
        }
        if self.below(3) == 0 {
            let mut tags: Vec<String> = (0..1 + self.below(2))
                .map(|_| TAGS[self.below(TAGS.len() as u32) as usize].to_string())
                .collect();
            tags.sort();
            tags.dedup();
            q.tags = tags;
        }
        if self.below(3) == 0 {
            q.start = Some(self.below(Self::TIMES_S) as i64 * 1000);
        }
        if self.below(3) == 0 {
            // Usually a valid window; sometimes endDate < startDate (a 400).
            q.end = Some(self.below(Self::TIMES_S + 2) as i64 * 1000);
        }
        q
    }

    fn plan(&mut self) -> Option<PlanKind> {
        match self.below(3) {
            0 => None,
            1 => Some(PlanKind::Scan),
            _ => Some(PlanKind::Bitmap),
        }
    }

    pub fn op(&mut self) -> Op {
        // Mostly project "p"; "q" is there to catch leaks between projects.
        let project = if self.below(4) == 0 { 1 } else { 0 };
        match self.below(20) {
            0..=6 => {
                let n = 1 + self.below(4);
                Op::Ingest {
                    project,
                    items: (0..n).map(|_| self.item()).collect(),
                    json: self.below(4) == 0,
                }
            }
            7..=8 => Op::Delete {
                project,
                id: self.below(Self::IDS) as u8,
            },
            9 => Op::Retention {
                project,
                cutoff_s: self.below(Self::TIMES_S + 5) as i64,
            },
            10..=12 => Op::Query {
                project,
                q: self.query(),
                limit: 1 + self.below(6),
                plan: self.plan(),
            },
            13..=15 => Op::Walk {
                project,
                q: self.query(),
                limits: (0..1 + self.below(3)).map(|_| 1 + self.below(7)).collect(),
                plan: self.plan(),
            },
            16..=17 => Op::Get {
                project,
                id: self.below(Self::IDS) as u8,
            },
            _ => Op::Reopen,
        }
    }

    /// Decodes operations until the bytes run out (at most `max`).
    pub fn ops(&mut self, max: usize) -> Vec<Op> {
        let mut out = Vec::new();
        while !self.exhausted() && out.len() < max {
            out.push(self.op());
        }
        out
    }
}

/// An ingest body for the JSON path, equivalent to `items`.
pub fn ingest_body(items: &[Item]) -> Vec<u8> {
    let traces: Vec<serde_json::Value> = items
        .iter()
        .map(|it| {
            let mut o = serde_json::Map::new();
            o.insert("id".into(), it.trace_id().into());
            if let Some(n) = it.name {
                o.insert("name".into(), NAMES[n as usize].into());
            }
            if let Some(s) = it.status {
                o.insert("status".into(), s.as_str().into());
            }
            if let Some(s) = it.start_s {
                o.insert("startTime".into(), ts(s * 1000).to_string().into());
            }
            if let Some(s) = it.end_s {
                o.insert("endTime".into(), ts(s * 1000).to_string().into());
            }
            if let Some(t) = &it.tags {
                let v: Vec<serde_json::Value> =
                    t.iter().map(|i| TAGS[*i as usize].into()).collect();
                o.insert("tags".into(), v.into());
            }
            if let Some(m) = it.metadata {
                o.insert(
                    "metadata".into(),
                    serde_json::from_str(&metadata_json(m)).expect("literal"),
                );
            }
            let spans: Vec<serde_json::Value> = it
                .spans
                .iter()
                .map(|s| {
                    let mut so = serde_json::json!({
                        "id": span_id(s.id),
                        "name": "llm",
                        "model": "gpt-4o",
                        "inputTokens": s.input_tokens,
                        "outputTokens": s.output_tokens,
                    });
                    if let Some(c) = s.cost_micros {
                        so["cost"] = Decimal::new(c as i64, 6).to_string().into();
                    }
                    if let Some(p) = s.input_payload() {
                        so["input"] = p;
                    }
                    so
                })
                .collect();
            o.insert("spans".into(), spans.into());
            let scores: Vec<serde_json::Value> = it
                .scores
                .iter()
                .map(|s| serde_json::json!({"id": score_id(*s), "name": "quality", "value": *s as f64 / 10.0}))
                .collect();
            o.insert("scores".into(), scores.into());
            serde_json::Value::Object(o)
        })
        .collect();
    serde_json::to_vec(&serde_json::json!({ "traces": traces })).expect("serializes")
}
