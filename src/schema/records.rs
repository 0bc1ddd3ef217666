//! Record formats: every stored value is `version u8 | postcard(...)`, and every decoder returns
//! an error, never a panic, on bytes it does not understand.

use super::keys::{decode_child_key, decode_trace_key};
use super::RECORD_V1;
use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};

fn encode<T: Serialize>(v: &T) -> Vec<u8> {
    let mut out = vec![RECORD_V1];
    // postcard only fails on serializer-unsupported types, which no record here contains.
    out.extend(postcard::to_allocvec(v).expect("postcard encodes every record type"));
    out
}

pub(super) fn decode<'a, T: Deserialize<'a>>(bytes: &'a [u8], what: &str) -> Result<T> {
    match bytes.split_first() {
        Some((&RECORD_V1, rest)) => {
            let (v, tail) = postcard::take_from_bytes(rest)
                .map_err(|e| Error::corrupted(format!("{what}: {e}")))?;
            if !tail.is_empty() {
                return Err(Error::corrupted(format!("{what}: trailing bytes")));
            }
            Ok(v)
        }
        Some((v, _)) => Err(Error::corrupted(format!(
            "{what}: unknown record version {v}"
        ))),
        None => Err(Error::corrupted(format!("{what}: empty record"))),
    }
}

/// An exact decimal as (mantissa, scale): a few bytes as postcard varints, where
/// `Decimal::serialize()` would take 16.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Money {
    mantissa: i128,
    scale: u8,
}

impl Money {
    pub(crate) fn from_decimal(d: rust_decimal::Decimal) -> Money {
        let d = d.normalize();
        Money {
            mantissa: d.mantissa(),
            scale: d.scale() as u8,
        }
    }
    /// The amount as (integer part, fraction scaled to 28 digits): comparing two pairs compares
    /// the amounts exactly (amounts are never negative; a negative one counts as zero).
    pub(crate) fn ordered(&self) -> (u128, u128) {
        let m = u128::try_from(self.mantissa).unwrap_or(0);
        let scale = u32::from(self.scale.min(28));
        let unit = 10u128.pow(scale);
        (m / unit, (m % unit) * 10u128.pow(28 - scale))
    }
    /// An error (not a panic) for a mantissa or scale out of Decimal's range.
    pub(crate) fn to_decimal(self) -> Result<rust_decimal::Decimal> {
        rust_decimal::Decimal::try_from_i128_with_scale(self.mantissa, self.scale as u32)
            .map_err(|_| Error::corrupted("money out of range"))
    }
}

/// The fields that filters test, encoded first so a scan can check them without decoding the
/// body (names, tags, metadata).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct TraceHeader {
    pub row: u32,
    pub status: u8,
    pub name_id: u32,
    /// Sorted, distinct.
    pub tag_ids: Vec<u32>,
    /// The `userId` term, when set (format 4).
    pub user_id: Option<u32>,
    /// The `sessionId` term, when set (format 4).
    pub session_id: Option<u32>,
    /// The indexed `key=value` terms of the top-level scalar metadata (format 4). Sorted,
    /// distinct. A pair whose key is over its distinct-value cap has no term.
    pub meta_ids: Vec<u32>,
}

/// What a list query reads of a trace besides its header: never a payload.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct TraceBody {
    pub name: String,
    pub tags: Vec<String>,
    pub end_ms: Option<i64>,
    pub created_ms: i64,
    pub metadata: String,
    pub total_cost: Money,
    pub total_tokens: u64,
    pub span_count: u32,
    pub score_count: u32,
    pub user_id: Option<String>,
    pub session_id: Option<String>,
}

/// A trace body alone as a record (`version u8 | postcard`): what an engine without the
/// embedded header (the ClickHouse engine) stores of a trace's list fields.
#[cfg(feature = "clickhouse")]
pub(crate) fn encode_trace_body(b: &TraceBody) -> Vec<u8> {
    encode(b)
}
#[cfg(feature = "clickhouse")]
pub(crate) fn decode_trace_body(bytes: &[u8]) -> Result<TraceBody> {
    decode(bytes, "trace body record")
}

/// What the filters test of a trace body, borrowed from the record: the same layout as
/// [`TraceBody`], decoded without copying its texts (the scan tests many rows' bodies).
#[derive(Debug, Deserialize)]
#[allow(dead_code)] // every field is decoded for the layout; the filters read some of them
pub(crate) struct TraceBodyRef<'a> {
    #[serde(borrow)]
    pub name: &'a str,
    #[serde(borrow)]
    pub tags: Vec<&'a str>,
    pub end_ms: Option<i64>,
    pub created_ms: i64,
    #[serde(borrow)]
    pub metadata: &'a str,
    pub total_cost: Money,
    pub total_tokens: u64,
    pub span_count: u32,
    pub score_count: u32,
    #[serde(borrow)]
    pub user_id: Option<&'a str>,
    #[serde(borrow)]
    pub session_id: Option<&'a str>,
}

/// The fields of a body that the body-only filters (ranges, an over-cap metadata key) test.
pub(crate) trait BodyFacts {
    fn end_ms(&self) -> Option<i64>;
    fn total_cost(&self) -> &Money;
    fn total_tokens(&self) -> u64;
    fn metadata(&self) -> &str;
}

impl BodyFacts for TraceBody {
    fn end_ms(&self) -> Option<i64> {
        self.end_ms
    }
    fn total_cost(&self) -> &Money {
        &self.total_cost
    }
    fn total_tokens(&self) -> u64 {
        self.total_tokens
    }
    fn metadata(&self) -> &str {
        &self.metadata
    }
}

impl BodyFacts for TraceBodyRef<'_> {
    fn end_ms(&self) -> Option<i64> {
        self.end_ms
    }
    fn total_cost(&self) -> &Money {
        &self.total_cost
    }
    fn total_tokens(&self) -> u64 {
        self.total_tokens
    }
    fn metadata(&self) -> &str {
        self.metadata
    }
}

/// Decodes the body after a trace header (`rest`, as `decode_trace_header` returns it)
/// without copying its texts.
pub(crate) fn decode_trace_body_ref(rest: &[u8]) -> Result<TraceBodyRef<'_>> {
    let (b, tail) = postcard::take_from_bytes::<TraceBodyRef<'_>>(rest)
        .map_err(|e| Error::corrupted(format!("trace body: {e}")))?;
    if !tail.is_empty() {
        return Err(Error::corrupted("trace: trailing bytes"));
    }
    Ok(b)
}

/// Trace record: `version u8 | postcard(TraceHeader) | postcard(TraceBody)`.
pub(crate) fn encode_trace(h: &TraceHeader, b: &TraceBody) -> Vec<u8> {
    debug_assert!(
        h.tag_ids.windows(2).all(|w| w[0] < w[1]),
        "tag ids sorted and distinct"
    );
    debug_assert_eq!(h.tag_ids.len(), b.tags.len());
    let mut out = encode(h);
    out.extend(postcard::to_allocvec(b).expect("postcard encodes every record type"));
    out
}

/// Decodes only the header; the scan executor calls this for every row it tests.
pub(crate) fn decode_trace_header(bytes: &[u8]) -> Result<(TraceHeader, &[u8])> {
    match bytes.split_first() {
        Some((&RECORD_V1, rest)) => postcard::take_from_bytes::<TraceHeader>(rest)
            .map_err(|e| Error::corrupted(format!("trace header: {e}"))),
        Some((v, _)) => Err(Error::corrupted(format!(
            "trace: unknown record version {v}"
        ))),
        None => Err(Error::corrupted("trace: empty record")),
    }
}

pub(crate) fn decode_trace(bytes: &[u8]) -> Result<(TraceHeader, TraceBody)> {
    let (h, rest) = decode_trace_header(bytes)?;
    let (b, tail) = postcard::take_from_bytes::<TraceBody>(rest)
        .map_err(|e| Error::corrupted(format!("trace body: {e}")))?;
    if !tail.is_empty() {
        return Err(Error::corrupted("trace: trailing bytes"));
    }
    if h.tag_ids.len() != b.tags.len() || crate::model::Status::from_code(h.status).is_none() {
        return Err(Error::corrupted("trace: header and body disagree"));
    }
    Ok((h, b))
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct IdRecord {
    pub start_ms: i64,
    pub row: u32,
}
pub(crate) fn encode_id(r: &IdRecord) -> Vec<u8> {
    encode(r)
}
pub(crate) fn decode_id(b: &[u8]) -> Result<IdRecord> {
    decode(b, "id record")
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct RowRecord {
    pub start_ms: i64,
    pub id: String,
}
pub(crate) fn encode_row(r: &RowRecord) -> Vec<u8> {
    encode(r)
}
pub(crate) fn decode_row(b: &[u8]) -> Result<RowRecord> {
    decode(b, "row record")
}

/// A sort-index entry's value: the trace's row, and the generation of the write that last
/// changed this key of a trace that stayed on its row (0 when it never changed). A walk under a
/// keyed order skips entries changed after it began (ARCHITECTURE.md, "Sort orders").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct SortEntry {
    pub row: u32,
    pub changed: u64,
}
pub(crate) fn encode_sort_entry(r: &SortEntry) -> Vec<u8> {
    encode(r)
}
pub(crate) fn decode_sort_entry(b: &[u8]) -> Result<SortEntry> {
    decode(b, "sort entry")
}

/// Time bounds of one block of `BLOCK_ROWS` rows. Only the project's last block ever changes
/// (rows are appended), so `prefix_max` of every earlier block is final.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct BlockRecord {
    pub min_ms: i64,
    pub max_ms: i64,
    /// max(max_ms) over this block and every block before it.
    pub prefix_max_ms: i64,
}
pub(crate) fn encode_block(r: &BlockRecord) -> Vec<u8> {
    debug_assert!(r.min_ms <= r.max_ms && r.max_ms <= r.prefix_max_ms);
    encode(r)
}
pub(crate) fn decode_block(b: &[u8]) -> Result<BlockRecord> {
    let r: BlockRecord = decode(b, "block record")?;
    if r.min_ms > r.max_ms || r.max_ms > r.prefix_max_ms {
        return Err(Error::corrupted("block record: bounds out of order"));
    }
    Ok(r)
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct TermRecord {
    /// Live rows carrying the term.
    pub count: u64,
    pub text: String,
}
pub(crate) fn encode_term(r: &TermRecord) -> Vec<u8> {
    encode(r)
}
pub(crate) fn decode_term(b: &[u8]) -> Result<TermRecord> {
    decode(b, "term record")
}
pub(crate) fn encode_u32(v: u32) -> Vec<u8> {
    encode(&v)
}
pub(crate) fn decode_u32(b: &[u8]) -> Result<u32> {
    decode(b, "u32 record")
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ProjectState {
    /// Next row number to allocate; rows are never reused.
    pub next_row: u32,
    /// Rows below this are in the tables and indexes (or deleted); rows from here to `next_row`
    /// are reserved by the project's pending traces, one each.
    pub indexed_rows: u32,
    /// Live traces.
    pub live: u64,
    pub next_name_id: u32,
    pub next_tag_id: u32,
    /// Bumped by every committed write to the project; read caches are tagged with it.
    pub generation: u64,
}
pub(crate) fn encode_project_state(r: &ProjectState) -> Vec<u8> {
    encode(r)
}
pub(crate) fn decode_project_state(b: &[u8]) -> Result<ProjectState> {
    let s: ProjectState = decode(b, "project state")?;
    if s.indexed_rows > s.next_row {
        return Err(Error::corrupted(
            "project state: indexed rows beyond next row",
        ));
    }
    Ok(s)
}

/// What a query needs of a pending trace; decoded without its children.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct PendingHead {
    /// The row reserved for the trace.
    pub row: u32,
    pub start_ms: i64,
    pub status: u8,
    /// Exactly the body the trace will have once folded (aggregates included).
    pub body: TraceBody,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct PendingChildren {
    /// Distinct ids.
    pub spans: Vec<(String, SpanRecord)>,
    /// Distinct ids.
    pub scores: Vec<(String, ScoreRecord)>,
    /// The payload records of the trace (under the empty id) and of its spans (under theirs).
    pub payloads: Vec<(String, PayloadRecord)>,
}

/// Pending record: `version u8 | postcard(PendingHead) | postcard(PendingChildren)`.
pub(crate) fn encode_pending(h: &PendingHead, c: &PendingChildren) -> Vec<u8> {
    let mut out = encode(h);
    out.extend(postcard::to_allocvec(c).expect("postcard encodes every record type"));
    out
}

fn decode_pending_parts(bytes: &[u8]) -> Result<(PendingHead, &[u8])> {
    let (h, rest) = match bytes.split_first() {
        Some((&RECORD_V1, rest)) => postcard::take_from_bytes::<PendingHead>(rest)
            .map_err(|e| Error::corrupted(format!("pending head: {e}")))?,
        Some((v, _)) => {
            return Err(Error::corrupted(format!(
                "pending: unknown record version {v}"
            )))
        }
        None => return Err(Error::corrupted("pending: empty record")),
    };
    if crate::model::Status::from_code(h.status).is_none() {
        return Err(Error::corrupted("pending: status code"));
    }
    Ok((h, rest))
}

/// Decodes only the head; queries call this for every pending trace of a project.
pub(crate) fn decode_pending_head(bytes: &[u8]) -> Result<PendingHead> {
    Ok(decode_pending_parts(bytes)?.0)
}

pub(crate) fn decode_pending(bytes: &[u8]) -> Result<(PendingHead, PendingChildren)> {
    let (h, rest) = decode_pending_parts(bytes)?;
    let (c, tail) = postcard::take_from_bytes::<PendingChildren>(rest)
        .map_err(|e| Error::corrupted(format!("pending children: {e}")))?;
    if !tail.is_empty() {
        return Err(Error::corrupted("pending: trailing bytes"));
    }
    Ok((h, c))
}

/// What the tree view and the aggregates read of a span; its payloads live apart.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct SpanRecord {
    pub parent_id: Option<String>,
    /// `SpanKind::code`.
    pub kind: u8,
    /// `Status::code`.
    pub status: u8,
    pub name: Option<String>,
    pub start_ms: Option<i64>,
    pub end_ms: Option<i64>,
    pub model: Option<String>,
    pub input_tokens: Option<u64>,
    pub output_tokens: Option<u64>,
    pub total_tokens: u64,
    pub cost: Option<Money>,
}
pub(crate) fn encode_span(r: &SpanRecord) -> Vec<u8> {
    // The same bytes as `encode`, into one buffer sized for a typical span (ids, name, model
    // and a few varints), as a request writes hundreds of them.
    encode_into(r, 96)
}

/// `encode`'s bytes written into one buffer of `capacity` bytes (grown if needed), instead of a
/// postcard vector that grows from empty and is then copied after the version byte.
fn encode_into<T: Serialize>(v: &T, capacity: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(capacity);
    out.push(RECORD_V1);
    // postcard only fails on serializer-unsupported types, which no record here contains.
    postcard::to_extend(v, out).expect("postcard encodes every record type")
}
pub(crate) fn decode_span(b: &[u8]) -> Result<SpanRecord> {
    let r: SpanRecord = decode(b, "span record")?;
    if crate::model::SpanKind::from_code(r.kind).is_none()
        || crate::model::Status::from_code(r.status).is_none()
    {
        return Err(Error::corrupted("span record: kind or status code"));
    }
    Ok(r)
}

/// The span terms of one trace row (`span_terms`): for each (kind code, term) that some span of
/// the trace carries, how many of its spans carry it (at least 1). Sorted by (kind, term),
/// distinct.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct SpanTermsRecord {
    pub terms: Vec<(u8, u32, u32)>,
}
pub(crate) fn encode_span_terms(r: &SpanTermsRecord) -> Vec<u8> {
    debug_assert!(r
        .terms
        .windows(2)
        .all(|w| (w[0].0, w[0].1) < (w[1].0, w[1].1)));
    encode(r)
}
pub(crate) fn decode_span_terms(b: &[u8]) -> Result<SpanTermsRecord> {
    let r: SpanTermsRecord = decode(b, "span terms record")?;
    if !r
        .terms
        .windows(2)
        .all(|w| (w[0].0, w[0].1) < (w[1].0, w[1].1))
        || r.terms.iter().any(|t| t.2 == 0)
    {
        return Err(Error::corrupted(
            "span terms record: unsorted, repeated or zero-count terms",
        ));
    }
    Ok(r)
}

/// JSON text of a payload, stored as is when short and zstd-compressed when at least
/// `COMPRESS_MIN_BYTES` long and compression saves space.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Blob {
    Text(String),
    /// `len` is the text's length in bytes; decompression is bounded by it.
    Zstd {
        len: u32,
        data: Vec<u8>,
    },
}

/// zstd level 1: on JSON prompts it keeps most of level 3's ratio at a fraction of its cost
/// (measured by the bench report's payload rows).
const ZSTD_LEVEL: i32 = 1;

thread_local! {
    /// One zstd compression context per thread, reused: creating a context costs more than
    /// compressing a short payload with it.
    static COMPRESSOR: std::cell::RefCell<Option<zstd::bulk::Compressor<'static>>> =
        const { std::cell::RefCell::new(None) };
    /// One decompression context per thread, likewise.
    static DECOMPRESSOR: std::cell::RefCell<Option<zstd::bulk::Decompressor<'static>>> =
        const { std::cell::RefCell::new(None) };
}

fn compress(text: &[u8]) -> std::io::Result<Vec<u8>> {
    COMPRESSOR.with(|c| {
        let mut c = c.borrow_mut();
        if c.is_none() {
            *c = Some(zstd::bulk::Compressor::new(ZSTD_LEVEL)?);
        }
        c.as_mut().expect("just created").compress(text)
    })
}

fn decompress(data: &[u8], len: usize) -> std::io::Result<Vec<u8>> {
    DECOMPRESSOR.with(|d| {
        let mut d = d.borrow_mut();
        if d.is_none() {
            *d = Some(zstd::bulk::Decompressor::new()?);
        }
        d.as_mut().expect("just created").decompress(data, len)
    })
}

impl Blob {
    pub(crate) fn of(text: String) -> Blob {
        if text.len() >= crate::limits::COMPRESS_MIN_BYTES {
            if let Ok(data) = compress(text.as_bytes()) {
                if data.len() < text.len() {
                    return Blob::Zstd {
                        len: text.len() as u32,
                        data,
                    };
                }
            }
        }
        Blob::Text(text)
    }
    /// The JSON text; an error for data that does not decompress to `len` bytes of UTF-8.
    pub(crate) fn text(&self) -> Result<String> {
        match self {
            Blob::Text(t) => Ok(t.clone()),
            Blob::Zstd { len, data } => {
                let len = *len as usize;
                if len > MAX_BLOB_BYTES {
                    return Err(Error::corrupted("payload: length over the limit"));
                }
                let bytes =
                    decompress(data, len).map_err(|e| Error::corrupted(format!("payload: {e}")))?;
                if bytes.len() != len {
                    return Err(Error::corrupted("payload: length mismatch"));
                }
                String::from_utf8(bytes).map_err(|_| Error::corrupted("payload: not UTF-8"))
            }
        }
    }
}

/// The longest text a blob may decode to: the largest payload limit.
const MAX_BLOB_BYTES: usize = crate::limits::MAX_PAYLOAD_BYTES;

/// Trace-level attributes that OTLP spans carry (`user.id`, `session.id`, `metadata`, the
/// resource's service), kept so that the trace can take them from its root or, failing that,
/// from the first span that carried them, whatever order the spans arrive in.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct TraceAttrs {
    pub user_id: Option<String>,
    pub session_id: Option<String>,
    /// Compact JSON object text.
    pub metadata: Option<String>,
    /// `{"service.name": .., "service.version": ..}` as compact JSON object text.
    pub service: Option<String>,
}

impl TraceAttrs {
    #[cfg(feature = "otlp")]
    pub(crate) fn is_empty(&self) -> bool {
        self == &TraceAttrs::default()
    }
}

/// The payloads of a trace (under the empty id) or of a span, in the payload table: what the
/// list path never reads.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct PayloadRecord {
    pub input: Option<Blob>,
    pub output: Option<Blob>,
    /// Spans only: a JSON object.
    pub attributes: Option<Blob>,
    /// Spans only.
    pub status_message: Option<String>,
    /// OTLP: on a span, the trace-level attributes it carried; on a trace, the first value of
    /// each that arrived.
    pub otlp: Option<TraceAttrs>,
}

impl PayloadRecord {
    /// About the encoded size: the blobs' and strings' bytes plus room for the lengths and tags.
    fn encoded_size_hint(&self) -> usize {
        let blob = |b: &Option<Blob>| match b {
            Some(Blob::Text(t)) => t.len(),
            Some(Blob::Zstd { data, .. }) => data.len(),
            None => 0,
        };
        let text = |t: &Option<String>| t.as_ref().map_or(0, String::len);
        let otlp = self.otlp.as_ref().map_or(0, |a| {
            text(&a.user_id) + text(&a.session_id) + text(&a.metadata) + text(&a.service)
        });
        32 + blob(&self.input)
            + blob(&self.output)
            + blob(&self.attributes)
            + text(&self.status_message)
            + otlp
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.input.is_none()
            && self.output.is_none()
            && self.attributes.is_none()
            && self.status_message.is_none()
            && self.otlp.is_none()
    }
}
pub(crate) fn encode_payload(r: &PayloadRecord) -> Vec<u8> {
    encode_into(r, r.encoded_size_hint())
}
pub(crate) fn decode_payload(b: &[u8]) -> Result<PayloadRecord> {
    decode(b, "payload record")
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) enum ScoreValueRecord {
    Number(f64),
    Text(String),
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct ScoreRecord {
    pub name: String,
    pub value: ScoreValueRecord,
    pub comment: Option<String>,
}
pub(crate) fn encode_score(r: &ScoreRecord) -> Vec<u8> {
    encode(r)
}
pub(crate) fn decode_score(b: &[u8]) -> Result<ScoreRecord> {
    decode(b, "score record")
}

/// What is stored of an API key, under the hex SHA-256 of the key: never the key itself. Every
/// engine stores this record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ApiKeyRecord {
    pub prefix: String,
    pub project: String,
    pub created_ms: i64,
    pub revoked_ms: Option<i64>,
}
pub(crate) fn encode_api_key(r: &ApiKeyRecord) -> Vec<u8> {
    encode(r)
}
pub(crate) fn decode_api_key(b: &[u8]) -> Result<ApiKeyRecord> {
    decode(b, "api key record")
}

/// Bitmap value: `version u8 | roaring portable serialization`.
pub(crate) fn encode_bitmap(bm: &roaring::RoaringBitmap) -> Vec<u8> {
    let mut out = Vec::with_capacity(1 + bm.serialized_size());
    out.push(RECORD_V1);
    bm.serialize_into(&mut out)
        .expect("writing to a Vec cannot fail");
    out
}

/// Checked deserialization: malformed bytes are an error, never a panic.
pub(crate) fn decode_bitmap(b: &[u8]) -> Result<roaring::RoaringBitmap> {
    match b.split_first() {
        Some((&RECORD_V1, rest)) => roaring::RoaringBitmap::deserialize_from(rest)
            .map_err(|e| Error::corrupted(format!("bitmap: {e}"))),
        Some((v, _)) => Err(Error::corrupted(format!(
            "bitmap: unknown record version {v}"
        ))),
        None => Err(Error::corrupted("bitmap: empty record")),
    }
}

/// Decodes any stored value by table name; used by the `record_decode` fuzz target so that every
/// decoder is exercised on arbitrary bytes.
#[doc(hidden)]
pub fn fuzz_decode_any(bytes: &[u8]) {
    let _ = decode_trace(bytes);
    if let Ok((_, rest)) = decode_trace_header(bytes) {
        let _ = decode_trace_body_ref(rest);
    }
    let _ = decode_id(bytes);
    let _ = decode_row(bytes);
    let _ = decode_block(bytes);
    let _ = decode_term(bytes);
    let _ = decode_u32(bytes);
    let _ = decode_project_state(bytes);
    let _ = decode_span(bytes);
    let _ = decode_span_terms(bytes);
    if let Ok(p) = decode_payload(bytes) {
        for b in [p.input, p.output, p.attributes].into_iter().flatten() {
            let _ = b.text();
        }
    }
    let _ = decode_score(bytes);
    let _ = decode_api_key(bytes);
    let _ = decode_bitmap(bytes);
    let _ = decode_pending(bytes);
    let _ = decode_trace_key(bytes);
    let _ = decode_child_key(bytes);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_reject_garbage() {
        let h = TraceHeader {
            row: 7,
            status: 1,
            name_id: 3,
            tag_ids: vec![1, 4],
            user_id: Some(9),
            session_id: None,
            meta_ids: vec![2, 5],
        };
        let b = TraceBody {
            name: "n".into(),
            tags: vec!["x".into(), "y".into()],
            end_ms: Some(5),
            created_ms: 9,
            metadata: "{}".into(),
            total_cost: Money::from_decimal(rust_decimal::Decimal::new(34, 4)),
            total_tokens: 10,
            span_count: 1,
            score_count: 0,
            user_id: Some("u".into()),
            session_id: None,
        };
        let bytes = encode_trace(&h, &b);
        // The borrowed body reads the same fields from the same bytes.
        let r = decode_trace_body_ref(decode_trace_header(&bytes).unwrap().1).unwrap();
        assert_eq!(
            (
                r.name,
                r.tags.clone(),
                r.end_ms,
                r.metadata,
                r.total_tokens,
                r.user_id
            ),
            ("n", vec!["x", "y"], Some(5), "{}", 10, Some("u"))
        );
        assert_eq!(
            (r.total_cost, r.created_ms, r.span_count, r.session_id),
            (b.total_cost, 9, 1, None)
        );
        assert_eq!(decode_trace(&bytes).unwrap(), (h.clone(), b));
        assert_eq!(decode_trace_header(&bytes).unwrap().0, h);
        assert!(decode_trace(&bytes[..bytes.len() - 1]).is_err());
        let mut v2 = bytes.clone();
        v2[0] = 2;
        assert!(decode_trace(&v2).is_err());
        assert!(decode_bitmap(&[1, 0xFF, 0xFF]).is_err());
        fuzz_decode_any(&[]);
    }
}
