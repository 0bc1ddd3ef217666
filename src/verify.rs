//! `verify()`: walks one snapshot and checks every invariant between rows and indexes.

use crate::error::Result;
use crate::limits::MAX_METADATA_VALUES_PER_KEY;
use crate::pending::distinct;
use crate::query::filter::{meta_text, metadata_pairs};
use crate::schema::*;
use crate::validate::ends_before_start;
use crate::write::Totals;
use redb::ReadableTable;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;

/// One broken invariant found by [`Store::verify`](crate::Store::verify).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    message: String,
}

impl Violation {
    #[cfg(feature = "clickhouse")]
    pub(crate) fn new(message: String) -> Self {
        Violation { message }
    }
    /// What is wrong, naming the project, trace or index entry.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

struct Report(Vec<Violation>);

impl Report {
    fn fail(&mut self, m: String) {
        self.0.push(Violation { message: m });
    }
}

pub(crate) fn verify(t: &ReadTables) -> Result<Vec<Violation>> {
    let mut r = Report(Vec::new());
    let mut projects = Vec::new();
    for e in t.projects()?.iter()? {
        let (k, v) = e?;
        match decode_u32(v.value()) {
            Ok(p) => projects.push((k.value().to_string(), p)),
            Err(e) => r.fail(format!("project {}: {e}", k.value())),
        }
    }
    let mut live_rows: HashSet<(u32, u32)> = HashSet::new();
    for (name, p) in &projects {
        verify_project(t, name, *p, &mut r, &mut live_rows)?;
    }
    // Pending traces belong to a known project (each project's are checked above).
    let known: HashSet<u32> = projects.iter().map(|(_, p)| *p).collect();
    for e in t.pending()?.iter()? {
        let (k, _) = e?;
        let (p, id) = k.value();
        if !known.contains(&p) {
            r.fail(format!("pending trace {id} of unknown project {p}"));
        }
    }
    // Children must hang off an existing trace.
    for (label, table) in [("span", t.spans()?), ("score", t.scores()?)] {
        for e in table.iter()? {
            let (k, v) = e?;
            match decode_child_key(k.value()) {
                Ok((p, row, cid)) => {
                    if !live_rows.contains(&(p, row)) {
                        r.fail(format!("{label} {cid} of missing row {row} (project {p})"));
                    }
                }
                Err(e) => r.fail(format!("{label} key: {e}")),
            }
            let ok = if label == "span" {
                decode_span(v.value()).is_ok()
            } else {
                decode_score(v.value()).is_ok()
            };
            if !ok {
                r.fail(format!("{label} record does not decode"));
            }
        }
    }
    // Invariant 16: a payload belongs to a live trace (the empty id) or to one of its spans,
    // and decodes, blobs included.
    for e in t.payloads()?.iter()? {
        let (k, v) = e?;
        match decode_child_key(k.value()) {
            Ok((p, row, cid)) => {
                if !live_rows.contains(&(p, row)) {
                    r.fail(format!(
                        "payload {cid:?} of missing row {row} (project {p})"
                    ));
                } else if !cid.is_empty() && t.spans()?.get(k.value())?.is_none() {
                    r.fail(format!(
                        "payload of missing span {cid} (project {p}, row {row})"
                    ));
                }
            }
            Err(e) => r.fail(format!("payload key: {e}")),
        }
        match decode_payload(v.value()) {
            Ok(rec) => {
                for b in [&rec.input, &rec.output, &rec.attributes]
                    .into_iter()
                    .flatten()
                {
                    if let Err(e) = b.text() {
                        r.fail(format!("payload blob: {e}"));
                    }
                }
            }
            Err(e) => r.fail(format!("payload record: {e}")),
        }
    }
    Ok(r.0)
}

fn verify_project(
    t: &ReadTables,
    name: &str,
    p: u32,
    r: &mut Report,
    live_rows: &mut HashSet<(u32, u32)>,
) -> Result<()> {
    let state = match t.project_state()?.get(p)? {
        Some(v) => match decode_project_state(v.value()) {
            Ok(s) => s,
            Err(e) => {
                r.fail(format!("project {name}: state: {e}"));
                return Ok(());
            }
        },
        None => ProjectState::default(),
    };
    // row -> set of (kind, term) it must be indexed under
    let mut expected: HashMap<u32, Vec<(u8, u32)>> = HashMap::new();
    let mut counts: HashMap<(u8, u32), u64> = HashMap::new();
    let mut blocks: BTreeMap<u32, BlockRecord> = BTreeMap::new();
    for e in t.blocks()?.range(blocks_range(p, 0, u32::MAX))? {
        let (k, v) = e?;
        match decode_block(v.value()) {
            Ok(b) => {
                blocks.insert(k.value().1, b);
            }
            Err(e) => r.fail(format!("project {name}: block {}: {e}", k.value().1)),
        }
    }
    let mut prev_prefix = i64::MIN;
    for (b, rec) in &blocks {
        if rec.prefix_max_ms < prev_prefix || rec.prefix_max_ms < rec.max_ms {
            r.fail(format!("project {name}: block {b} prefix max not monotone"));
        }
        prev_prefix = rec.prefix_max_ms;
    }
    let term_text = |kind: TermKind, id: u32| -> Result<Option<String>> {
        Ok(match t.terms()?.get((p, kind.code(), id))? {
            Some(v) => decode_term(v.value()).ok().map(|x| x.text),
            None => None,
        })
    };

    // Invariant 19: the sort index holds exactly one entry per indexed trace and keyed field.
    let field_lo = sort_field_prefix(p, SORT_FIELDS[0]);
    let field_hi = project_key_end(p);
    let sort_entries = t
        .sort_keys()?
        .range::<&[u8]>(field_lo.as_slice()..field_hi.as_slice())?
        .count() as u64;
    let (lo, hi) = project_trace_range(p);
    let mut live = 0u64;
    for e in t.traces()?.range::<&[u8]>(lo.as_slice()..hi.as_slice())? {
        let (k, v) = e?;
        live += 1;
        let (_, start, id) = match decode_trace_key(k.value()) {
            Ok(x) => x,
            Err(e) => {
                r.fail(format!("project {name}: trace key: {e}"));
                continue;
            }
        };
        let what = format!("project {name}: trace {id}");

        let (h, b) = match decode_trace(v.value()) {
            Ok(x) => x,
            Err(e) => {
                r.fail(format!("{what}: {e}"));
                continue;
            }
        };
        match t.ids()?.get((p, id))? {
            Some(g) => match decode_id(g.value()) {
                Ok(idr) if idr.start_ms == start && idr.row == h.row => {}
                _ => r.fail(format!("{what}: id index disagrees with the row")),
            },
            None => r.fail(format!("{what}: missing from the id index")),
        }
        match t.rows()?.get((p, h.row))? {
            Some(g) => match decode_row(g.value()) {
                Ok(row) if row.start_ms == start && row.id == id => {}
                _ => r.fail(format!("{what}: row {} points elsewhere", h.row)),
            },
            None => r.fail(format!("{what}: row {} missing", h.row)),
        }
        // Invariant 19: one sort entry per keyed field, with the trace's value and row.
        let values =
            crate::query::sorted::sort_values(start, b.end_ms, &b.total_cost, b.total_tokens);
        for (i, field) in SORT_FIELDS.into_iter().enumerate() {
            let key = sort_key(p, field, values[i], start, id);
            match t.sort_keys()?.get(key.as_slice())? {
                Some(g) => match decode_sort_entry(g.value()) {
                    Ok(e) if e.row == h.row && e.changed <= state.generation => {}
                    _ => r.fail(format!(
                        "{what}: sort entry {field:?} disagrees with the row"
                    )),
                },
                None => r.fail(format!(
                    "{what}: no sort entry for {field:?} {:?}",
                    values[i]
                )),
            }
        }
        if h.row >= state.next_row {
            r.fail(format!(
                "{what}: row {} beyond next_row {}",
                h.row, state.next_row
            ));
        }
        match blocks.get(&block_of(h.row)) {
            Some(br) if br.min_ms <= start && start <= br.max_ms => {}
            _ => r.fail(format!("{what}: start outside its block's bounds")),
        }
        if term_text(TermKind::Name, h.name_id)?.as_deref() != Some(b.name.as_str()) {
            r.fail(format!(
                "{what}: name id {} does not name {:?}",
                h.name_id, b.name
            ));
        }
        let mut tag_texts = Vec::new();
        for tid in &h.tag_ids {
            tag_texts.push(term_text(TermKind::Tag, *tid)?.unwrap_or_default());
        }
        let mut body_tags = b.tags.clone();
        body_tags.sort();
        tag_texts.sort();
        if body_tags != tag_texts {
            r.fail(format!("{what}: tag ids do not match tags {:?}", b.tags));
        }
        for (kind, term, text) in [
            (TermKind::User, h.user_id, &b.user_id),
            (TermKind::Session, h.session_id, &b.session_id),
        ] {
            let stored = match term {
                Some(id) => Some(term_text(kind, id)?.unwrap_or_default()),
                None => None,
            };
            if stored.as_ref() != text.as_ref() {
                r.fail(format!(
                    "{what}: {} term does not match {text:?}",
                    kind.label()
                ));
            }
        }
        // Every metadata term names a pair of the body; a pair without a term belongs to a key
        // over its distinct-value cap.
        let pairs: Vec<String> = metadata_pairs(&b.metadata)
            .iter()
            .map(|(k, v)| meta_text(k, v))
            .collect();
        let mut meta_texts = Vec::new();
        for id in &h.meta_ids {
            meta_texts.push(term_text(TermKind::Meta, *id)?.unwrap_or_default());
        }
        if meta_texts.iter().any(|m| !pairs.contains(m)) {
            r.fail(format!(
                "{what}: a metadata term is not a pair of its metadata"
            ));
        }
        let mut terms = vec![
            (TermKind::Status.code(), h.status as u32),
            (TermKind::Name.code(), h.name_id),
        ];
        terms.extend(h.tag_ids.iter().map(|t| (TermKind::Tag.code(), *t)));
        terms.extend(h.user_id.map(|t| (TermKind::User.code(), t)));
        terms.extend(h.session_id.map(|t| (TermKind::Session.code(), t)));
        terms.extend(h.meta_ids.iter().map(|t| (TermKind::Meta.code(), *t)));
        // The value buckets of its duration, cost and tokens.
        for (i, field) in SORT_FIELDS.into_iter().enumerate() {
            if let Some((kind, b)) = crate::query::ranges::bucket_term(field, values[i]) {
                terms.push((kind.code(), b));
            }
        }
        for term in &terms {
            *counts.entry(*term).or_default() += 1;
        }
        expected.insert(h.row, terms);
        live_rows.insert((p, h.row));

        // Aggregates equal the sum of the children.
        let (clo, chi) = child_range(p, h.row);
        let mut spans = Vec::new();
        for e in t.spans()?.range::<&[u8]>(clo.as_slice()..chi.as_slice())? {
            let (_, v) = e?;
            // A span that does not decode is reported by the child pass below.
            if let Ok(s) = decode_span(v.value()) {
                spans.push(s);
            }
        }
        let scores = t
            .scores()?
            .range::<&[u8]>(clo.as_slice()..chi.as_slice())?
            .count();
        check_aggregates(&what, &b, &spans, scores, r);
        // The row's span terms are what its stored spans give, and they index it.
        let span_terms = expected_span_terms(t, p, &spans, &what, r)?;
        let stored = match t.span_terms()?.get((p, h.row))? {
            Some(g) => match decode_span_terms(g.value()) {
                Ok(rec) => rec.terms,
                Err(e) => {
                    r.fail(format!("{what}: {e}"));
                    Vec::new()
                }
            },
            None => Vec::new(),
        };
        if stored != span_terms {
            r.fail(format!(
                "{what}: span terms {stored:?} but its spans give {span_terms:?}"
            ));
        }
        let row_terms = expected.get_mut(&h.row).expect("inserted above");
        for (kind, term, _) in span_terms {
            *counts.entry((kind, term)).or_default() += 1;
            row_terms.push((kind, term));
        }
    }
    // A span-terms record belongs to a live row.
    for e in t.span_terms()?.range((p, 0)..=(p, u32::MAX))? {
        let (k, _) = e?;
        if !expected.contains_key(&k.value().1) {
            r.fail(format!(
                "project {name}: span terms of missing row {}",
                k.value().1
            ));
        }
    }
    if live != state.live {
        r.fail(format!(
            "project {name}: live count {} but {live} traces",
            state.live
        ));
    }
    if sort_entries != live * SORT_FIELDS.len() as u64 {
        r.fail(format!(
            "project {name}: {sort_entries} sort entries for {live} indexed traces"
        ));
    }
    verify_pending(t, name, p, &state, r)?;
    let ids = t.ids()?.range(ids_range(p))?.count() as u64;
    let rows = t.rows()?.range(rows_range(p))?.count() as u64;
    if ids != live || rows != live {
        r.fail(format!(
            "project {name}: {live} traces, {ids} id entries, {rows} row entries"
        ));
    }

    // Every bitmap bit has a row carrying that term; cardinalities equal the term counts.
    let mut bits: HashMap<(u8, u32), u64> = HashMap::new();
    for e in t.bitmaps()?.range(bitmaps_range(p))? {
        let (k, v) = e?;
        let (_, kind, term, chunk) = k.value();
        let bm = match decode_bitmap(v.value()) {
            Ok(b) => b,
            Err(e) => {
                r.fail(format!("project {name}: bitmap {kind}/{term}/{chunk}: {e}"));
                continue;
            }
        };
        *bits.entry((kind, term)).or_default() += bm.len();
        for low in bm.iter() {
            let row = chunk_row(chunk, low);
            if !expected
                .get(&row)
                .is_some_and(|ts| ts.contains(&(kind, term)))
            {
                r.fail(format!(
                    "project {name}: bitmap {kind}/{term} has row {row} without that term"
                ));
            }
        }
    }
    for (term, n) in &counts {
        if bits.get(term).copied().unwrap_or(0) != *n {
            r.fail(format!(
                "project {name}: term {term:?} indexes {} rows, expected {n}",
                bits.get(term).copied().unwrap_or(0)
            ));
        }
    }
    for e in t.terms()?.range(terms_range(p))? {
        let (k, v) = e?;
        let (_, kind, term) = k.value();
        // Each term's text maps back to it (statuses, span kinds and span statuses have fixed
        // ids and no text index).
        if !TermKind::from_code(kind).is_some_and(|k| k.fixed_ids()) {
            if let Ok(rec) = decode_term(v.value()) {
                let back = match t.term_ids()?.get((p, kind, rec.text.as_str()))? {
                    Some(g) => decode_u32(g.value()).ok(),
                    None => None,
                };
                if back != Some(term) {
                    r.fail(format!(
                        "project {name}: term {kind}/{term} ({:?}) is not its text's id",
                        rec.text
                    ));
                }
            }
        }
        match decode_term(v.value()) {
            // A metadata key's record counts its distinct values (at most the cap, or the cap
            // plus one once over it), not rows.
            Ok(rec) if kind == TermKind::MetaKey.code() => {
                if rec.count > MAX_METADATA_VALUES_PER_KEY + 1 {
                    r.fail(format!(
                        "project {name}: metadata key {term} count over its cap"
                    ));
                }
            }
            Ok(rec) if rec.count == counts.get(&(kind, term)).copied().unwrap_or(0) => {}
            Ok(rec) => r.fail(format!(
                "project {name}: term {kind}/{term} count {} is wrong",
                rec.count
            )),
            Err(e) => r.fail(format!("project {name}: term {kind}/{term}: {e}")),
        }
    }
    Ok(())
}

/// The pending traces of `p`: one per reserved row `indexed_rows..next_row`, none also indexed,
/// each with a body whose aggregates equal its children.
fn verify_pending(
    t: &ReadTables,
    name: &str,
    p: u32,
    state: &ProjectState,
    r: &mut Report,
) -> Result<()> {
    let mut rows = HashSet::new();
    for e in t.pending()?.range(pending_range(p))? {
        let (k, v) = e?;
        let id = k.value().1;
        let what = format!("project {name}: pending trace {id}");
        let (h, c) = match decode_pending(v.value()) {
            Ok(x) => x,
            Err(e) => {
                r.fail(format!("{what}: {e}"));
                continue;
            }
        };
        if h.row < state.indexed_rows || h.row >= state.next_row || !rows.insert(h.row) {
            r.fail(format!("{what}: row {} is not a free reserved row", h.row));
        }
        if t.ids()?.get((p, id))?.is_some() {
            r.fail(format!("{what}: also indexed"));
        }
        if ends_before_start(Some(h.start_ms), h.body.end_ms) {
            r.fail(format!("{what}: ends before it starts"));
        }
        if !distinct(c.spans.iter().map(|(i, _)| i.as_str()))
            || !distinct(c.scores.iter().map(|(i, _)| i.as_str()))
        {
            r.fail(format!("{what}: repeats a child id"));
        }
        for (pid, _) in &c.payloads {
            if !pid.is_empty() && !c.spans.iter().any(|(i, _)| i == pid) {
                r.fail(format!("{what}: payload of missing span {pid}"));
            }
        }
        let spans: Vec<SpanRecord> = c.spans.into_iter().map(|(_, s)| s).collect();
        check_aggregates(&what, &h.body, &spans, c.scores.len(), r);
    }
    if rows.len() as u64 != u64::from(state.next_row - state.indexed_rows) {
        r.fail(format!(
            "project {name}: {} pending traces for {} reserved rows",
            rows.len(),
            state.next_row - state.indexed_rows
        ));
    }
    Ok(())
}

/// The span terms that `spans` (one trace's stored spans) give: per (kind, term), sorted, how
/// many spans carry it. A name or model without a term is reported.
fn expected_span_terms(
    t: &ReadTables,
    p: u32,
    spans: &[SpanRecord],
    what: &str,
    r: &mut Report,
) -> Result<Vec<(u8, u32, u32)>> {
    let mut counts: BTreeMap<(u8, u32), u32> = BTreeMap::new();
    for s in spans {
        // An ERROR span also carries each of its terms paired with its status.
        let error = s.status == crate::model::Status::Error.code();
        let mut add = |kind: TermKind, id: u32| {
            *counts.entry((kind.code(), id)).or_default() += 1;
            if let Some(pair) = kind.on_error_span().filter(|_| error) {
                *counts.entry((pair.code(), id)).or_default() += 1;
            }
        };
        for (kind, text) in [
            (TermKind::SpanName, &s.name),
            (TermKind::SpanModel, &s.model),
        ] {
            let Some(text) = text else { continue };
            match t.term_ids()?.get((p, kind.code(), text.as_str()))? {
                Some(g) => match decode_u32(g.value()) {
                    Ok(id) => add(kind, id),
                    Err(e) => r.fail(format!("{what}: {} {text:?}: {e}", kind.label())),
                },
                None => r.fail(format!("{what}: {} {text:?} has no term", kind.label())),
            }
        }
        add(TermKind::SpanKind, u32::from(s.kind));
        *counts
            .entry((TermKind::SpanStatus.code(), u32::from(s.status)))
            .or_default() += 1;
    }
    Ok(counts.into_iter().map(|((k, t), n)| (k, t, n)).collect())
}

/// Invariant 7: a body's aggregates equal the sums over its children, computed by the writer's
/// own aggregation.
fn check_aggregates(
    what: &str,
    b: &TraceBody,
    spans: &[SpanRecord],
    scores: usize,
    r: &mut Report,
) {
    match Totals::of_children(spans, scores) {
        Ok(Ok(sum)) => {
            if Totals::of_body(b).ok() != Some(sum) {
                r.fail(format!(
                    "{what}: totalCost/totalTokens/spanCount/scoreCount disagree with children"
                ));
            }
        }
        Ok(Err(m)) => r.fail(format!("{what}: children sum: {m}")),
        Err(e) => r.fail(format!("{what}: children: {e}")),
    }
}
