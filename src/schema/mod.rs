//! The one owner of the redb schema: table definitions, key encodings, record formats, the
//! format version and its migrations. No other module names a table or knows a byte layout.
//!
//! - `tables`: the table definitions and the typed handles (`WriteTables`, `ReadTables`,
//!   `BufferTables`) through which every other module reaches storage;
//! - `keys`: key encodings, key ranges, and the row → block / chunk arithmetic;
//! - `records`: every stored value's encoding (a record version byte, then postcard);
//! - `migrate`: the format check at open and the in-place upgrades from older formats.
//!
//! Every stored value starts with a one-byte record version. Decoding checks it, and every
//! decoder returns an error (never a panic) on bytes it does not understand.

mod keys;
mod migrate;
mod records;
mod tables;

pub(crate) use keys::*;
pub(crate) use migrate::*;
pub use records::fuzz_decode_any;
pub(crate) use records::*;
pub(crate) use tables::*;

/// The on-disk format version, stored under `META["format_version"]`. A store written with
/// another version is refused at open.
pub(crate) const FORMAT_VERSION: u8 = 6;
/// Older format versions, upgraded in place at open (see `migrate`).
pub(crate) const FORMAT_VERSION_V1: u8 = 1;
pub(crate) const FORMAT_VERSION_V2: u8 = 2;
pub(crate) const FORMAT_VERSION_V3: u8 = 3;
pub(crate) const FORMAT_VERSION_V4: u8 = 4;
pub(crate) const FORMAT_VERSION_V5: u8 = 5;
/// The record version byte at the start of every stored value.
pub(crate) const RECORD_V1: u8 = 1;

pub(crate) const META_FORMAT_VERSION: &str = "format_version";
pub(crate) const META_CURSOR_SECRET: &str = "cursor_secret";
pub(crate) const META_NEXT_PROJECT: &str = "next_project_id";

/// Index kinds: the second component of a bitmap or term key.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum TermKind {
    Status = 0,
    Name = 1,
    Tag = 2,
    /// A trace's `userId`.
    User = 3,
    /// A trace's `sessionId`.
    Session = 4,
    /// A top-level metadata pair, as the text `key=value` (the value's canonical form).
    Meta = 5,
    /// A metadata key, as its text; its term record counts the key's distinct values (not
    /// rows), and it has no bitmap. See `limits::MAX_METADATA_VALUES_PER_KEY`.
    MetaKey = 6,
    /// A span name, as stored: the bit of a row is set when one of the trace's spans has it.
    SpanName = 7,
    /// A span model, exact.
    SpanModel = 8,
    /// A span kind; the term id is `SpanKind::code` (fixed, no text index).
    SpanKind = 9,
    /// A span status; the term id is `Status::code` (fixed, no text index).
    SpanStatus = 10,
    /// A `durationMs` value bucket (`query::ranges`); the term id is the bucket number.
    DurationBucket = 11,
    /// A `totalCost` value bucket.
    CostBucket = 12,
    /// A `totalTokens` value bucket.
    TokensBucket = 13,
    /// A span name on a span whose status is ERROR: the bit of a row is set when one of the
    /// trace's spans has both. The term id is the `SpanName` term's (no text index of its own).
    SpanNameError = 14,
    /// A span model on an ERROR span; the term id is the `SpanModel` term's.
    SpanModelError = 15,
    /// A span kind on an ERROR span; the term id is `SpanKind::code`.
    SpanKindError = 16,
}

impl TermKind {
    pub(crate) fn code(self) -> u8 {
        self as u8
    }
    pub(crate) fn label(self) -> &'static str {
        match self {
            TermKind::Status => "status",
            TermKind::Name => "name",
            TermKind::Tag => "tag",
            TermKind::User => "userId",
            TermKind::Session => "sessionId",
            TermKind::Meta => "metadata",
            TermKind::MetaKey => "metadata key",
            TermKind::SpanName => "span name",
            TermKind::SpanModel => "span model",
            TermKind::SpanKind => "span kind",
            TermKind::SpanStatus => "span status",
            TermKind::DurationBucket => "durationMs bucket",
            TermKind::CostBucket => "totalCost bucket",
            TermKind::TokensBucket => "totalTokens bucket",
            TermKind::SpanNameError => "span name on an ERROR span",
            TermKind::SpanModelError => "span model on an ERROR span",
            TermKind::SpanKindError => "span kind on an ERROR span",
        }
    }
    /// True for the kinds whose term ids are fixed codes (no `term_ids` entry).
    pub(crate) fn fixed_ids(self) -> bool {
        matches!(
            self,
            TermKind::Status
                | TermKind::SpanKind
                | TermKind::SpanStatus
                | TermKind::DurationBucket
                | TermKind::CostBucket
                | TermKind::TokensBucket
                | TermKind::SpanNameError
                | TermKind::SpanModelError
                | TermKind::SpanKindError
        )
    }
    /// The kind that pairs this span-term kind with status ERROR on the same span.
    pub(crate) fn on_error_span(self) -> Option<TermKind> {
        match self {
            TermKind::SpanName => Some(TermKind::SpanNameError),
            TermKind::SpanModel => Some(TermKind::SpanModelError),
            TermKind::SpanKind => Some(TermKind::SpanKindError),
            _ => None,
        }
    }
    /// The span-term kinds, whose row bits come from the trace's spans (`span_terms`).
    pub(crate) const SPAN_KINDS: [TermKind; 7] = [
        TermKind::SpanName,
        TermKind::SpanModel,
        TermKind::SpanKind,
        TermKind::SpanStatus,
        TermKind::SpanNameError,
        TermKind::SpanModelError,
        TermKind::SpanKindError,
    ];
    /// The kind of a code, if it is one.
    pub(crate) fn from_code(code: u8) -> Option<TermKind> {
        [
            TermKind::Status,
            TermKind::Name,
            TermKind::Tag,
            TermKind::User,
            TermKind::Session,
            TermKind::Meta,
            TermKind::MetaKey,
            TermKind::SpanName,
            TermKind::SpanModel,
            TermKind::SpanKind,
            TermKind::SpanStatus,
            TermKind::DurationBucket,
            TermKind::CostBucket,
            TermKind::TokensBucket,
            TermKind::SpanNameError,
            TermKind::SpanModelError,
            TermKind::SpanKindError,
        ]
        .into_iter()
        .find(|k| k.code() == code)
    }
}
