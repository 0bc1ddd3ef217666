//! The query half of the naive model: what a query is, which traces it matches, and the order of
//! its answer. The full model (`model.rs`, and through it the fuzz targets) and the simple model
//! (`simple.rs`) both use this one copy, each with its own trace type.

use tracestore::{SpanKind, Status, Timestamp};

pub const BASE_MS: i64 = 1_772_000_000_000; // 2026-02-25

pub fn ts(offset_ms: i64) -> Timestamp {
    Timestamp::from_millis(BASE_MS + offset_ms).expect("in range")
}

/// What the span conditions test of one span.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpanFacts {
    pub name: Option<String>,
    pub model: Option<String>,
    pub kind: SpanKind,
    pub status: Status,
}

/// What a query can test of a model trace.
pub trait ModelTrace {
    fn id(&self) -> &str;
    fn name(&self) -> &str;
    fn status(&self) -> Status;
    fn start_ms(&self) -> i64;
    fn tags(&self) -> &[String];
    fn user_id(&self) -> Option<&str> {
        None
    }
    fn session_id(&self) -> Option<&str> {
        None
    }
    /// The top-level scalar metadata pairs, values in canonical text.
    fn metadata(&self) -> &[(String, String)] {
        &[]
    }
    /// `durationMs`, None while running.
    fn duration_ms(&self) -> Option<u64> {
        None
    }
    /// `totalCost` in thousandths of a dollar (the models' costs are whole thousandths).
    fn cost_milli(&self) -> u64 {
        0
    }
    fn total_tokens(&self) -> u64 {
        0
    }
    /// The trace's spans, as the span conditions see them.
    fn span_facts(&self) -> &[SpanFacts] {
        &[]
    }
}

/// Implements `ModelTrace` for a struct with the fields `id`, `name`, `status`, `start_ms` and
/// `tags`.
macro_rules! model_trace_fields {
    ($t:ty) => {
        impl ModelTrace for $t {
            fn id(&self) -> &str {
                &self.id
            }
            fn name(&self) -> &str {
                &self.name
            }
            fn status(&self) -> Status {
                self.status
            }
            fn start_ms(&self) -> i64 {
                self.start_ms
            }
            fn tags(&self) -> &[String] {
                &self.tags
            }
        }
    };
}

/// A query as the model sees it (offsets in ms from `BASE_MS`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct MQuery {
    pub name: Option<String>,
    pub status: Option<Status>,
    pub tags: Vec<String>,
    pub start: Option<i64>,
    pub end: Option<i64>,
    pub any_tags: Vec<String>,
    pub exclude_tags: Vec<String>,
    pub user_id: Option<String>,
    pub session_id: Option<String>,
    /// (key, value) pairs, each key once.
    pub metadata: Vec<(String, String)>,
    /// Inclusive bounds, each side optional.
    pub duration: (Option<u64>, Option<u64>),
    /// In thousandths of a dollar.
    pub cost_milli: (Option<u64>, Option<u64>),
    pub tokens: (Option<u64>, Option<u64>),
    /// Span conditions, as sent (`span_kind` in any case; empty name or model: no filter).
    pub span_name: Option<String>,
    pub span_model: Option<String>,
    pub span_kind: Option<String>,
    pub span_status: Option<Status>,
    /// `orderBy`; None is the default (newest first).
    pub order: Option<&'static str>,
}

/// How `a` compares with `b` under `order` (`Less`: `a` first), written out from the rules:
/// the key, then startTime descending, then id descending by bytes (`startTime.asc`: oldest
/// first, then id ascending); running traces after every finished one under `durationMs`.
pub fn order_cmp(order: &str, a: &impl ModelTrace, b: &impl ModelTrace) -> std::cmp::Ordering {
    use std::cmp::Ordering;
    let newest = (b.start_ms(), b.id().as_bytes()).cmp(&(a.start_ms(), a.id().as_bytes()));
    let (field, dir) = order.split_once('.').expect("field.direction");
    let desc = dir == "desc";
    let keyed = |x: Option<u64>, y: Option<u64>| match (x, y) {
        (None, None) => Ordering::Equal,
        (None, Some(_)) => Ordering::Greater,
        (Some(_), None) => Ordering::Less,
        (Some(x), Some(y)) if desc => y.cmp(&x),
        (Some(x), Some(y)) => x.cmp(&y),
    };
    match field {
        "startTime" if desc => newest,
        "startTime" => newest.reverse(),
        "durationMs" => keyed(a.duration_ms(), b.duration_ms()).then(newest),
        "totalCost" => keyed(Some(a.cost_milli()), Some(b.cost_milli())).then(newest),
        "totalTokens" => keyed(Some(a.total_tokens()), Some(b.total_tokens())).then(newest),
        other => panic!("unknown order {other}"),
    }
}

fn within(v: u64, (lo, hi): (Option<u64>, Option<u64>)) -> bool {
    lo.is_none_or(|l| v >= l) && hi.is_none_or(|h| v <= h)
}

/// What the model counts over a query's matching set: the total, and the facets as the API
/// lists them (status OK/ERROR, then names and tags by count descending, value ascending, at
/// most 20 each).
#[derive(Clone, Debug, PartialEq)]
pub struct MTally {
    pub total: u64,
    pub ok: u64,
    pub error: u64,
    pub names: Vec<(String, u64)>,
    pub tags: Vec<(String, u64)>,
    pub models: Vec<(String, u64)>,
}

fn top(counts: std::collections::BTreeMap<String, u64>) -> Vec<(String, u64)> {
    let mut v: Vec<(String, u64)> = counts.into_iter().collect();
    v.sort_by(|a, b| {
        b.1.cmp(&a.1)
            .then_with(|| a.0.as_bytes().cmp(b.0.as_bytes()))
    });
    v.truncate(20);
    v
}

impl MQuery {
    /// True when no span condition is given, or one span meets every one given.
    pub fn span_matches(&self, t: &impl ModelTrace) -> bool {
        let name = self.span_name.as_deref().filter(|n| !n.is_empty());
        let model = self.span_model.as_deref().filter(|m| !m.is_empty());
        let kind = self
            .span_kind
            .as_deref()
            .map(|k| SpanKind::parse(k).expect("a kind"));
        if name.is_none() && model.is_none() && kind.is_none() && self.span_status.is_none() {
            return true;
        }
        t.span_facts().iter().any(|s| {
            name.is_none_or(|n| {
                s.name
                    .as_deref()
                    .is_some_and(|sn| sn.to_lowercase().contains(&n.to_lowercase()))
            }) && model.is_none_or(|m| s.model.as_deref() == Some(m))
                && kind.is_none_or(|k| s.kind == k)
                && self.span_status.is_none_or(|st| s.status == st)
        })
    }

    pub fn matches(&self, t: &impl ModelTrace) -> bool {
        self.span_matches(t) && self.matches_trace_fields(t)
    }

    fn matches_trace_fields(&self, t: &impl ModelTrace) -> bool {
        self.name
            .as_ref()
            .is_none_or(|n| n.is_empty() || t.name().to_lowercase().contains(&n.to_lowercase()))
            && self.status.is_none_or(|s| s == t.status())
            && self.tags.iter().all(|tag| t.tags().contains(tag))
            && (self.any_tags.is_empty() || self.any_tags.iter().any(|tag| t.tags().contains(tag)))
            && !self.exclude_tags.iter().any(|tag| t.tags().contains(tag))
            && self
                .user_id
                .as_deref()
                .is_none_or(|u| t.user_id() == Some(u))
            && self
                .session_id
                .as_deref()
                .is_none_or(|u| t.session_id() == Some(u))
            && self.metadata.iter().all(|m| t.metadata().contains(m))
            && (self.duration == (None, None)
                || t.duration_ms().is_some_and(|d| within(d, self.duration)))
            && within(t.cost_milli(), self.cost_milli)
            && within(t.total_tokens(), self.tokens)
            && self.start.is_none_or(|s| t.start_ms() >= BASE_MS + s)
            && self.end.is_none_or(|e| t.start_ms() < BASE_MS + e)
    }
    /// True when the parser must reject it.
    pub fn invalid(&self) -> bool {
        matches!((self.start, self.end), (Some(s), Some(e)) if e < s)
    }
    /// The query as endpoint parameters.
    pub fn params(&self, limit: u32) -> Vec<(String, String)> {
        let mut p = vec![("limit".to_string(), limit.to_string())];
        if let Some(n) = &self.name {
            p.push(("name".into(), n.clone()));
        }
        if let Some(s) = self.status {
            p.push(("status".into(), s.as_str().to_lowercase()));
        }
        if !self.tags.is_empty() {
            p.push(("tags".into(), self.tags.join(",")));
        }
        if !self.any_tags.is_empty() {
            p.push(("anyTags".into(), self.any_tags.join(",")));
        }
        if !self.exclude_tags.is_empty() {
            p.push(("excludeTags".into(), self.exclude_tags.join(",")));
        }
        if let Some(u) = &self.user_id {
            p.push(("userId".into(), u.clone()));
        }
        if let Some(u) = &self.session_id {
            p.push(("sessionId".into(), u.clone()));
        }
        for (k, v) in &self.metadata {
            p.push((format!("metadata.{k}"), v.clone()));
        }
        let milli = |m: u64| format!("{}.{:03}", m / 1000, m % 1000);
        for (name, v) in [
            ("minDurationMs", self.duration.0.map(|d| d.to_string())),
            ("maxDurationMs", self.duration.1.map(|d| d.to_string())),
            ("minCost", self.cost_milli.0.map(milli)),
            ("maxCost", self.cost_milli.1.map(milli)),
            ("minTokens", self.tokens.0.map(|d| d.to_string())),
            ("maxTokens", self.tokens.1.map(|d| d.to_string())),
        ] {
            if let Some(v) = v {
                p.push((name.into(), v));
            }
        }
        for (name, v) in [
            ("spanName", &self.span_name),
            ("spanModel", &self.span_model),
            ("spanKind", &self.span_kind),
        ] {
            if let Some(v) = v {
                p.push((name.into(), v.clone()));
            }
        }
        if let Some(s) = self.span_status {
            p.push(("spanStatus".into(), s.as_str().to_lowercase()));
        }
        if let Some(s) = self.start {
            p.push(("startDate".into(), ts(s).to_string()));
        }
        if let Some(e) = self.end {
            p.push(("endDate".into(), ts(e).to_string()));
        }
        if let Some(o) = self.order {
            p.push(("orderBy".into(), o.to_string()));
        }
        p
    }
    /// The traces of `all` this query matches, in the query's order (by default startTime
    /// desc, id desc by bytes).
    pub fn answer<'a, T: ModelTrace + 'a>(
        &self,
        all: impl IntoIterator<Item = &'a T>,
    ) -> Vec<&'a T> {
        let mut v: Vec<&T> = all.into_iter().filter(|t| self.matches(*t)).collect();
        let order = self.order.unwrap_or("startTime.desc");
        v.sort_by(|a, b| order_cmp(order, *a, *b));
        v
    }

    /// The total and facets of this query over `all`.
    pub fn tally<'a, T: ModelTrace + 'a>(&self, all: impl IntoIterator<Item = &'a T>) -> MTally {
        let (mut names, mut tags) = (Default::default(), std::collections::BTreeMap::new());
        let mut t = MTally {
            total: 0,
            ok: 0,
            error: 0,
            names: vec![],
            tags: vec![],
            models: vec![],
        };
        let mut models = std::collections::BTreeMap::new();
        let names_ref: &mut std::collections::BTreeMap<String, u64> = &mut names;
        for tr in self.answer(all) {
            t.total += 1;
            match tr.status() {
                Status::Ok => t.ok += 1,
                _ => t.error += 1,
            }
            *names_ref.entry(tr.name().to_string()).or_default() += 1;
            for tag in tr.tags() {
                *tags.entry(tag.clone()).or_default() += 1;
            }
            let distinct: std::collections::BTreeSet<&str> = tr
                .span_facts()
                .iter()
                .filter_map(|s| s.model.as_deref())
                .collect();
            for m in distinct {
                *models.entry(m.to_string()).or_default() += 1;
            }
        }
        t.names = top(names);
        t.tags = top(tags);
        t.models = top(models);
        t
    }
}
