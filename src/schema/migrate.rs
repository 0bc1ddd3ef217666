//! The format check at open, and in-place upgrades of older formats. Each upgrade runs inside
//! the open transaction, so a crash midway leaves the old format whole.

use super::records::*;
use super::tables::WriteTables;
use super::{
    FORMAT_VERSION, FORMAT_VERSION_V1, FORMAT_VERSION_V2, FORMAT_VERSION_V3, FORMAT_VERSION_V4,
    FORMAT_VERSION_V5, META_FORMAT_VERSION, RECORD_V1,
};
use crate::error::{Error, Result};
use redb::ReadableTable;
use serde::Deserialize;

/// Upgrades a format-1 store in place: project states gain `indexed_rows` (equal to `next_row`,
/// since format 1 indexed every row at once). Runs inside the open transaction.
pub(crate) fn migrate_from_v1(t: &mut WriteTables<'_>) -> Result<()> {
    #[derive(Deserialize)]
    struct ProjectStateV1 {
        next_row: u32,
        live: u64,
        next_name_id: u32,
        next_tag_id: u32,
        generation: u64,
    }
    let mut states = Vec::new();
    for e in t.project_state.iter()? {
        let (k, v) = e?;
        let old: ProjectStateV1 = decode(v.value(), "format-1 project state")?;
        states.push((
            k.value(),
            ProjectState {
                next_row: old.next_row,
                indexed_rows: old.next_row,
                live: old.live,
                next_name_id: old.next_name_id,
                next_tag_id: old.next_tag_id,
                generation: old.generation,
            },
        ));
    }
    for (p, st) in states {
        t.project_state
            .insert(p, encode_project_state(&st).as_slice())?;
    }
    Ok(())
}

/// The format-2 trace body: format 3 adds `user_id` and `session_id`.
#[derive(Deserialize)]
struct TraceBodyV2 {
    name: String,
    tags: Vec<String>,
    end_ms: Option<i64>,
    created_ms: i64,
    metadata: String,
    total_cost: Money,
    total_tokens: u64,
    span_count: u32,
    score_count: u32,
}

impl TraceBodyV2 {
    fn upgrade(self) -> TraceBody {
        TraceBody {
            name: self.name,
            tags: self.tags,
            end_ms: self.end_ms,
            created_ms: self.created_ms,
            metadata: self.metadata,
            total_cost: self.total_cost,
            total_tokens: self.total_tokens,
            span_count: self.span_count,
            score_count: self.score_count,
            user_id: None,
            session_id: None,
        }
    }
}

/// The trace header of formats 1 to 3: format 4 adds the `userId`, `sessionId` and metadata
/// terms, which the engine fills in after the upgrade (`Writer::index_format4_terms`).
#[derive(Deserialize)]
struct TraceHeaderV3 {
    row: u32,
    status: u8,
    name_id: u32,
    tag_ids: Vec<u32>,
}

impl TraceHeaderV3 {
    fn upgrade(self) -> TraceHeader {
        TraceHeader {
            row: self.row,
            status: self.status,
            name_id: self.name_id,
            tag_ids: self.tag_ids,
            user_id: None,
            session_id: None,
            meta_ids: Vec::new(),
        }
    }
}

/// The format-2 span record: format 3 adds `parent_id`, `kind` and `status`.
#[derive(Deserialize)]
struct SpanRecordV2 {
    name: Option<String>,
    start_ms: Option<i64>,
    end_ms: Option<i64>,
    model: Option<String>,
    input_tokens: Option<u64>,
    output_tokens: Option<u64>,
    total_tokens: u64,
    cost: Option<Money>,
}

impl SpanRecordV2 {
    /// An old span is a root of kind UNKNOWN with status OK and no payloads.
    fn upgrade(self) -> SpanRecord {
        SpanRecord {
            parent_id: None,
            kind: crate::model::SpanKind::Unknown.code(),
            status: crate::model::Status::Ok.code(),
            name: self.name,
            start_ms: self.start_ms,
            end_ms: self.end_ms,
            model: self.model,
            input_tokens: self.input_tokens,
            output_tokens: self.output_tokens,
            total_tokens: self.total_tokens,
            cost: self.cost,
        }
    }
}

#[derive(Deserialize)]
struct PendingHeadV2 {
    row: u32,
    start_ms: i64,
    status: u8,
    body: TraceBodyV2,
}

#[derive(Deserialize)]
struct PendingChildrenV2 {
    spans: Vec<(String, SpanRecordV2)>,
    scores: Vec<(String, ScoreRecord)>,
}

/// `version u8 | postcard(A) | postcard(B)`, the layout of trace and pending records.
fn decode_two<'a, A: Deserialize<'a>, B: Deserialize<'a>>(
    bytes: &'a [u8],
    what: &str,
) -> Result<(A, B)> {
    let rest = match bytes.split_first() {
        Some((&RECORD_V1, rest)) => rest,
        _ => return Err(Error::corrupted(format!("{what}: record version"))),
    };
    let (a, rest) = postcard::take_from_bytes::<A>(rest)
        .map_err(|e| Error::corrupted(format!("{what}: {e}")))?;
    let (b, tail) = postcard::take_from_bytes::<B>(rest)
        .map_err(|e| Error::corrupted(format!("{what}: {e}")))?;
    if !tail.is_empty() {
        return Err(Error::corrupted(format!("{what}: trailing bytes")));
    }
    Ok((a, b))
}

/// Upgrades a format-2 store in place: trace bodies gain `user_id` and `session_id` (unset),
/// spans gain `parent_id` (none), `kind` (UNKNOWN) and `status` (OK), and pending records
/// gain an empty payload list. The payload table starts empty. Runs inside the open
/// transaction, so a crash midway leaves format 2 whole.
pub(crate) fn migrate_from_v2(t: &mut WriteTables<'_>) -> Result<()> {
    let mut traces = Vec::new();
    for e in t.traces.iter()? {
        let (k, v) = e?;
        let (h, b): (TraceHeaderV3, TraceBodyV2) = decode_two(v.value(), "format-2 trace")?;
        traces.push((k.value().to_vec(), encode_trace(&h.upgrade(), &b.upgrade())));
    }
    for (k, v) in traces {
        t.traces.insert(k.as_slice(), v.as_slice())?;
    }
    let mut spans = Vec::new();
    for e in t.spans.iter()? {
        let (k, v) = e?;
        let old: SpanRecordV2 = decode(v.value(), "format-2 span")?;
        spans.push((k.value().to_vec(), encode_span(&old.upgrade())));
    }
    for (k, v) in spans {
        t.spans.insert(k.as_slice(), v.as_slice())?;
    }
    let mut pending = Vec::new();
    for e in t.pending.iter()? {
        let (k, v) = e?;
        let (p, id) = k.value();
        let (h, c): (PendingHeadV2, PendingChildrenV2) =
            decode_two(v.value(), "format-2 pending trace")?;
        let head = PendingHead {
            row: h.row,
            start_ms: h.start_ms,
            status: h.status,
            body: h.body.upgrade(),
        };
        let children = PendingChildren {
            spans: c
                .spans
                .into_iter()
                .map(|(id, s)| (id, s.upgrade()))
                .collect(),
            scores: c.scores,
            payloads: Vec::new(),
        };
        pending.push(((p, id.to_string()), encode_pending(&head, &children)));
    }
    for ((p, id), v) in pending {
        t.pending.insert((p, id.as_str()), v.as_slice())?;
    }
    Ok(())
}

/// Upgrades a format-3 store in place: trace headers gain the `userId`, `sessionId` and
/// metadata terms, empty here; the caller then indexes them from the bodies in the same
/// transaction. Pending records do not change (they hold bodies, not headers).
pub(crate) fn migrate_from_v3(t: &mut WriteTables<'_>) -> Result<()> {
    let mut traces = Vec::new();
    for e in t.traces.iter()? {
        let (k, v) = e?;
        let (h, b): (TraceHeaderV3, TraceBody) = decode_two(v.value(), "format-3 trace")?;
        traces.push((k.value().to_vec(), encode_trace(&h.upgrade(), &b)));
    }
    for (k, v) in traces {
        t.traces.insert(k.as_slice(), v.as_slice())?;
    }
    Ok(())
}

/// Checks the stored format version at open: the current one passes, older formats are
/// upgraded in place, a new file gets the current version, and any other version is refused,
/// never misread. Returns the format the file had when it was upgraded: the caller must then
/// build, before it commits, the indexes that format lacks (`Writer::index_format4_terms` for
/// formats 1 to 3, `Writer::index_format5` for formats 1 to 4, `Writer::index_format6` for
/// format 5).
pub(crate) fn check_format(t: &mut WriteTables<'_>) -> Result<Option<u8>> {
    let version = t.meta.get(META_FORMAT_VERSION)?.map(|v| v.value().to_vec());
    match version {
        Some(v) if v == [FORMAT_VERSION] => Ok(None),
        Some(v)
            if v.len() == 1
                && [
                    FORMAT_VERSION_V1,
                    FORMAT_VERSION_V2,
                    FORMAT_VERSION_V3,
                    FORMAT_VERSION_V4,
                    FORMAT_VERSION_V5,
                ]
                .contains(&v[0]) =>
        {
            let from = v[0];
            if from == FORMAT_VERSION_V1 {
                migrate_from_v1(t)?;
            }
            if from <= FORMAT_VERSION_V2 {
                migrate_from_v2(t)?;
            } else if from == FORMAT_VERSION_V3 {
                migrate_from_v3(t)?;
            }
            // Formats 5 and 6 add tables and term kinds only; their contents are built by the
            // caller.
            t.meta
                .insert(META_FORMAT_VERSION, [FORMAT_VERSION].as_slice())?;
            Ok(Some(from))
        }
        Some(v) => Err(Error::storage(format!(
            "unsupported tracestore format version {v:?} (this build reads {FORMAT_VERSION})"
        ))),
        None => {
            t.meta
                .insert(META_FORMAT_VERSION, [FORMAT_VERSION].as_slice())?;
            Ok(None)
        }
    }
}
