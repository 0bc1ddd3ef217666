//! The query shapes (Q1–Q10, the counting shapes Q13, Q14, Q19, the cost order Q17 and the
//! filters Q15, Q16, Q18 with their counting variants): the engine-independent [`Filter`], the
//! shapes themselves, and preparing and running a shape on either engine.

use super::load::Loaded;
use super::{PAGE, PROJECT};
use rust_decimal::Decimal;
use std::hint::black_box;
use tracestore::demo::{BUSY_NAME, RARE_NAME, TAGS};
use tracestore::{QueryRequest, Status, Timestamp};

/// A query's filters, independent of the engine.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Filter {
    pub status: Option<Status>,
    pub name: Option<String>,
    pub tags: Vec<String>,
    pub start: Option<Timestamp>,
    pub end: Option<Timestamp>,
    /// `userId`: exact match.
    pub user_id: Option<String>,
    /// `metadata.KEY=VALUE` pairs, all of which must hold.
    pub metadata: Vec<(String, String)>,
    /// `minDurationMs` / `maxDurationMs`, inclusive; a running trace never matches.
    pub min_duration_ms: Option<u64>,
    pub max_duration_ms: Option<u64>,
    /// `minCost` / `maxCost`, inclusive, exact decimals.
    pub min_cost: Option<Decimal>,
    pub max_cost: Option<Decimal>,
    /// `spanModel` and `spanStatus`: both must hold on one span.
    pub span_model: Option<String>,
    pub span_status: Option<Status>,
    /// What the page also counts over the whole matching set (`include`).
    pub counts: Counts,
    /// `orderBy`, when not the default; the peer knows `totalCost.desc`.
    pub order: Option<&'static str>,
}

/// A keyset position of the peer: (start_ms, id, total cost in 10^-12 USD).
pub type Keyset = (i64, String, i64);

/// A cost as the peer's exact integer (10^-12 USD; the demo's costs have at most 12 digits).
pub fn cost_pico(c: rust_decimal::Decimal) -> i64 {
    (c * rust_decimal::Decimal::from(1_000_000_000_000i64))
        .trunc()
        .try_into()
        .expect("cost fits in i64 picodollars")
}

/// `include` of a shape: nothing, the total, or the total and the facets.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Counts {
    #[default]
    None,
    Total,
    TotalAndFacets,
}

impl Filter {
    /// The tracestore request for this filter (first page, `limit` rows).
    pub fn request(&self, limit: usize) -> QueryRequest {
        let mut params: Vec<(&str, String)> = vec![("limit", limit.to_string())];
        if let Some(s) = self.status {
            params.push(("status", s.as_str().to_string()));
        }
        if let Some(n) = &self.name {
            params.push(("name", n.clone()));
        }
        if !self.tags.is_empty() {
            params.push(("tags", self.tags.join(",")));
        }
        if let Some(s) = self.start {
            params.push(("startDate", s.to_string()));
        }
        if let Some(e) = self.end {
            params.push(("endDate", e.to_string()));
        }
        let meta: Vec<(String, String)> = self
            .metadata
            .iter()
            .map(|(k, v)| (format!("metadata.{k}"), v.clone()))
            .collect();
        if let Some(u) = &self.user_id {
            params.push(("userId", u.clone()));
        }
        if let Some(d) = self.min_duration_ms {
            params.push(("minDurationMs", d.to_string()));
        }
        if let Some(d) = self.max_duration_ms {
            params.push(("maxDurationMs", d.to_string()));
        }
        if let Some(c) = self.min_cost {
            params.push(("minCost", c.normalize().to_string()));
        }
        if let Some(c) = self.max_cost {
            params.push(("maxCost", c.normalize().to_string()));
        }
        if let Some(m) = &self.span_model {
            params.push(("spanModel", m.clone()));
        }
        if let Some(s) = self.span_status {
            params.push(("spanStatus", s.as_str().to_string()));
        }
        match self.counts {
            Counts::None => {}
            Counts::Total => params.push(("include", "total".into())),
            Counts::TotalAndFacets => params.push(("include", "total,facets".into())),
        }
        if let Some(o) = self.order {
            params.push(("orderBy", o.into()));
        }
        QueryRequest::from_params(
            params
                .iter()
                .map(|(k, v)| (*k, v.as_str()))
                .chain(meta.iter().map(|(k, v)| (k.as_str(), v.as_str()))),
        )
        .expect("valid request")
    }
}

/// What a shape runs.
#[derive(Clone, Debug)]
pub enum ShapeKind {
    /// A first page of `filter`.
    List(Filter),
    /// Page `page` (1-based) of `filter`, reached by walking real cursors.
    Page(Filter, usize),
    /// `get_trace` of a random existing id.
    GetById,
}

/// One benchmark shape.
#[derive(Clone, Debug)]
pub struct Shape {
    /// Short key, e.g. `Q6`, `Q9p100`.
    pub key: String,
    /// Human label.
    pub label: String,
    pub kind: ShapeKind,
}

/// The substring of the rare name used by Q4 and Q7 (`pdf-ocr`).
pub fn rare_needle() -> String {
    RARE_NAME.trim_start_matches("tool-").to_string()
}

/// The substring of the busy name used by Q3 and Q6 (`support`).
pub fn busy_needle() -> String {
    BUSY_NAME.split('-').next().unwrap().to_string()
}

/// The user of Q15.
pub const Q15_USER: &str = "u42";
/// Q16's `minDurationMs` (a trace lasts the sum of its 1–12 spans of 50–3049 ms).
pub const Q16_MIN_DURATION_MS: u64 = 10_000;
/// Q16's `maxCost` in USD.
pub fn q16_max_cost() -> Decimal {
    Decimal::new(4, 2)
}
/// The span model of Q18 (one of the demo's four).
pub const Q18_MODEL: &str = "claude-sonnet";

/// Every shape: Q1–Q10 (Q9 at pages 1, 10, 100 and 1000), then the counting shapes Q13, Q14
/// (a first page with `include`; the SQLite peer runs the page, then `COUNT(*)` and `GROUP BY`
/// over the same filter), Q15 (metadata + userId), Q16 (duration and cost ranges), Q17
/// (`orderBy=totalCost.desc` at pages 1 and 100; the peer walks its index on (project, cost,
/// start_time, id) backwards), Q18 (span model and status on one span) and Q19 (a week, ERROR
/// and a tag, with the total); Q15t, Q16t and Q18t are Q15, Q16 and Q18 with `include`.
pub fn shapes() -> Vec<Shape> {
    let err = || Filter {
        status: Some(Status::Error),
        ..Default::default()
    };
    let tags2 = || vec![TAGS[0].to_string(), TAGS[1].to_string()]; // production, v2
    let rare_tags = || vec![TAGS[18].to_string(), TAGS[19].to_string()]; // load-test, legacy
    let day = Timestamp::parse("2026-03-01T00:00:00Z").unwrap();
    let next_day = Timestamp::parse("2026-03-02T00:00:00Z").unwrap();
    let mut v = vec![
        Shape {
            key: "Q1".into(),
            label: "no filter".into(),
            kind: ShapeKind::List(Filter::default()),
        },
        Shape {
            key: "Q2".into(),
            label: "status=ERROR".into(),
            kind: ShapeKind::List(err()),
        },
        Shape {
            key: "Q3".into(),
            label: format!("name~{} (busy)", busy_needle()),
            kind: ShapeKind::List(Filter {
                name: Some(busy_needle()),
                ..Default::default()
            }),
        },
        Shape {
            key: "Q4".into(),
            label: format!("name~{} (rare)", rare_needle()),
            kind: ShapeKind::List(Filter {
                name: Some(rare_needle()),
                ..Default::default()
            }),
        },
        Shape {
            key: "Q5".into(),
            label: format!("tags={}", tags2().join(",")),
            kind: ShapeKind::List(Filter {
                tags: tags2(),
                ..Default::default()
            }),
        },
        Shape {
            key: "Q6".into(),
            label: format!(
                "ERROR + tags={} + name~{}",
                tags2().join(","),
                busy_needle()
            ),
            kind: ShapeKind::List(Filter {
                tags: tags2(),
                name: Some(busy_needle()),
                ..err()
            }),
        },
        Shape {
            key: "Q7".into(),
            label: format!(
                "ERROR + name~{} + tags={}",
                rare_needle(),
                rare_tags().join(",")
            ),
            kind: ShapeKind::List(Filter {
                tags: rare_tags(),
                name: Some(rare_needle()),
                ..err()
            }),
        },
        Shape {
            key: "Q8".into(),
            label: "one day 2026-03-01".into(),
            kind: ShapeKind::List(Filter {
                start: Some(day),
                end: Some(next_day),
                ..Default::default()
            }),
        },
    ];
    for page in [1, 10, 100, 1000] {
        v.push(Shape {
            key: format!("Q9p{page}"),
            label: format!("status=ERROR page {page}"),
            kind: ShapeKind::Page(err(), page),
        });
    }
    v.push(Shape {
        key: "Q10".into(),
        label: "get by id (random)".into(),
        kind: ShapeKind::GetById,
    });
    v.push(Shape {
        key: "Q13".into(),
        label: "status=ERROR + include=total,facets".into(),
        kind: ShapeKind::List(Filter {
            counts: Counts::TotalAndFacets,
            ..err()
        }),
    });
    v.push(Shape {
        key: "Q14".into(),
        label: "no filter + include=total,facets".into(),
        kind: ShapeKind::List(Filter {
            counts: Counts::TotalAndFacets,
            ..Default::default()
        }),
    });
    // Q15: a metadata key=value (`environment=prod`, about 95% of traces) with one user (the
    // demo's 5000 users are equally busy: about 0.02% of traces each).
    let user_env = |counts| Filter {
        metadata: vec![("environment".into(), "prod".into())],
        user_id: Some(Q15_USER.into()),
        counts,
        ..Default::default()
    };
    v.push(Shape {
        key: "Q15".into(),
        label: format!("metadata.environment=prod + userId={Q15_USER}"),
        kind: ShapeKind::List(user_env(Counts::None)),
    });
    v.push(Shape {
        key: "Q15t".into(),
        label: format!("metadata.environment=prod + userId={Q15_USER} + include=total"),
        kind: ShapeKind::List(user_env(Counts::Total)),
    });
    // Q16: two ranges that each keep about half of the traces and together about 9% (duration
    // and cost both grow with the span count, so they work against each other).
    let ranges = |counts| Filter {
        min_duration_ms: Some(Q16_MIN_DURATION_MS),
        max_cost: Some(q16_max_cost()),
        counts,
        ..Default::default()
    };
    v.push(Shape {
        key: "Q16".into(),
        label: format!(
            "minDurationMs={Q16_MIN_DURATION_MS} + maxCost={}",
            q16_max_cost()
        ),
        kind: ShapeKind::List(ranges(Counts::None)),
    });
    v.push(Shape {
        key: "Q16t".into(),
        label: format!(
            "minDurationMs={Q16_MIN_DURATION_MS} + maxCost={} + include=total",
            q16_max_cost()
        ),
        kind: ShapeKind::List(ranges(Counts::Total)),
    });
    let by_cost = || Filter {
        order: Some("totalCost.desc"),
        ..Default::default()
    };
    for page in [1, 100] {
        v.push(Shape {
            key: format!("Q17p{page}"),
            label: format!("orderBy=totalCost.desc page {page}"),
            kind: ShapeKind::Page(by_cost(), page),
        });
    }
    // Q18: one span with both the model and ERROR (the load marks the last span of each ERROR
    // trace failed: about 0.75% of traces).
    let failed_model = |counts| Filter {
        span_model: Some(Q18_MODEL.into()),
        span_status: Some(Status::Error),
        counts,
        ..Default::default()
    };
    v.push(Shape {
        key: "Q18".into(),
        label: format!("spanModel={Q18_MODEL} + spanStatus=ERROR (same span)"),
        kind: ShapeKind::List(failed_model(Counts::None)),
    });
    v.push(Shape {
        key: "Q18t".into(),
        label: format!("spanModel={Q18_MODEL} + spanStatus=ERROR + include=total,facets"),
        kind: ShapeKind::List(failed_model(Counts::TotalAndFacets)),
    });
    // The demo's oldest week (its data starts on 2026-03-01).
    let week_end = Timestamp::parse("2026-03-08T00:00:00Z").unwrap();
    v.push(Shape {
        key: "Q19".into(),
        label: format!("oldest week + ERROR + tag {} + include=total", TAGS[0]),
        kind: ShapeKind::List(Filter {
            start: Some(day),
            end: Some(week_end),
            tags: vec![TAGS[0].to_string()],
            counts: Counts::Total,
            ..err()
        }),
    });
    v
}

/// A shape made ready to run: requests and keyset positions precomputed.
#[allow(clippy::large_enum_variant)] // built once per shape
pub enum Prepared {
    List {
        filter: Filter,
        req: QueryRequest,
        after: Option<Keyset>,
    },
    Get {
        ids: Vec<String>,
    },
}

/// Precomputes a shape's requests; for a page shape, walks the pages before it with real
/// cursors (tracestore) and the equivalent keyset positions (SQLite). None when the page does
/// not exist at this data size. Errors describe a cross-engine mismatch met on the walk.
pub fn prepare(l: &Loaded, shape: &Shape) -> Result<Option<Prepared>, String> {
    match &shape.kind {
        ShapeKind::List(f) => Ok(Some(Prepared::List {
            filter: f.clone(),
            req: f.request(PAGE),
            after: None,
        })),
        ShapeKind::GetById => Ok(Some(Prepared::Get {
            ids: l.sample_ids.clone(),
        })),
        ShapeKind::Page(f, page) => {
            let mut req = f.request(PAGE);
            let mut after: Option<Keyset> = None;
            for p in 1..*page {
                let ts = l.store.query(PROJECT, &req).map_err(|e| e.to_string())?;
                let Some(c) = ts.next_cursor else {
                    return Ok(None);
                };
                let last = ts.traces.last().unwrap();
                let sq = l.sqlite.query(PROJECT, f, after.as_ref(), PAGE + 1);
                let sq_ids: Vec<&str> = sq.iter().take(PAGE).map(|t| t.id.as_str()).collect();
                let ts_ids: Vec<&str> = ts.traces.iter().map(|t| t.id.as_str()).collect();
                if sq_ids != ts_ids {
                    return Err(format!("{}: page {p} differs on the walk", shape.key));
                }
                after = Some((
                    last.start_time.as_millis(),
                    last.id.clone(),
                    cost_pico(last.total_cost),
                ));
                req = QueryRequest::builder()
                    .cursor(&c)
                    .limit(PAGE as u32)
                    .build()
                    .map_err(|e| e.to_string())?;
            }
            Ok(Some(Prepared::List {
                filter: f.clone(),
                req,
                after,
            }))
        }
    }
}

/// Runs the tracestore side once (`i` selects the id for get-by-id); returns rows returned.
pub fn run_tracestore(l: &Loaded, p: &Prepared, i: usize) -> usize {
    match p {
        Prepared::List { req, .. } => black_box(l.store.query(PROJECT, req).unwrap()).traces.len(),
        Prepared::Get { ids } => {
            let d = l.store.get_trace(PROJECT, &ids[i % ids.len()]).unwrap();
            black_box(d).spans.len()
        }
    }
}

/// Runs the SQLite side once; returns rows returned.
pub fn run_sqlite(l: &Loaded, p: &Prepared, i: usize) -> usize {
    match p {
        Prepared::List { filter, after, .. } => {
            let (page, counts) = l.sqlite.list(PROJECT, filter, after.as_ref(), PAGE + 1);
            black_box(counts);
            black_box(page).len().min(PAGE)
        }
        Prepared::Get { ids } => {
            black_box(l.sqlite.get_trace(PROJECT, &ids[i % ids.len()]).unwrap())
                .spans
                .len()
        }
    }
}
