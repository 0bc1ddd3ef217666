//! Every limit tracestore enforces, in one place. The README's Limits table mirrors this file.
//!
//! Limits are enforced at the boundary (ingest validation and query parsing); the storage layer
//! asserts them again when it encodes a record.

/// Longest trace, span or score id, in bytes.
pub const MAX_ID_BYTES: usize = 128;
/// Longest project name, in bytes.
pub const MAX_PROJECT_BYTES: usize = 128;
/// Longest trace or span name, in characters.
pub const MAX_NAME_CHARS: usize = 256;
/// Most distinct tags one trace may carry.
pub const MAX_TAGS_PER_TRACE: usize = 50;
/// Longest tag, in characters.
pub const MAX_TAG_CHARS: usize = 64;
/// Largest metadata object, serialized as compact JSON, in bytes.
pub const MAX_METADATA_BYTES: usize = 16 * 1024;
/// Longest `userId` or `sessionId`, in bytes.
pub const MAX_USER_ID_BYTES: usize = 128;
/// Largest `input` or `output` of a trace or span, serialized as compact JSON, in bytes.
pub const MAX_PAYLOAD_BYTES: usize = 1024 * 1024;
/// Largest span `attributes` object, serialized as compact JSON, in bytes.
pub const MAX_ATTRIBUTES_BYTES: usize = 64 * 1024;
/// Longest span `statusMessage`, in bytes.
pub const MAX_STATUS_MESSAGE_BYTES: usize = 4 * 1024;
/// Payload text (an input, output or attributes) at least this long, in bytes, is stored
/// zstd-compressed; shorter text is stored as is, where compression would save little.
pub const COMPRESS_MIN_BYTES: usize = 1024;
/// Longest JSON-text prefix kept in the marker that replaces an OTLP payload over its limit.
pub const TRUNCATED_PREFIX_BYTES: usize = 4 * 1024;
/// Largest OTLP request body, after decompression, in bytes.
pub const MAX_OTLP_BYTES: usize = 5 * 1024 * 1024;
/// Most spans in one OTLP request.
pub const MAX_OTLP_SPANS: usize = 10_000;
/// Longest span model name, in characters.
pub const MAX_MODEL_CHARS: usize = 128;
/// Longest score string value, in characters.
pub const MAX_SCORE_STRING_CHARS: usize = 1024;
/// Longest score comment, in characters.
pub const MAX_COMMENT_CHARS: usize = 4096;
/// Most spans in one ingested trace item.
pub const MAX_SPANS_PER_ITEM: usize = 10_000;
/// Most scores in one ingested trace item.
pub const MAX_SCORES_PER_ITEM: usize = 1_000;
/// Largest token count on one span.
pub const MAX_TOKENS_PER_SPAN: u64 = 1_000_000_000_000;
/// Largest cost of one span, in USD.
pub const MAX_SPAN_COST_USD: i64 = 1_000_000_000;
/// Most decimal places kept in a span cost.
pub const MAX_COST_SCALE: u32 = 12;
/// Most traces in one ingest batch.
pub const MAX_BATCH_TRACES: usize = 1000;
/// Largest ingest body accepted by `ingest_json`, in bytes.
pub const MAX_BATCH_BYTES: usize = 5 * 1024 * 1024;

/// Smallest page size.
pub const MIN_LIMIT: u32 = 1;
/// Largest page size.
pub const MAX_LIMIT: u32 = 100;
/// Page size when `limit` is absent.
pub const DEFAULT_LIMIT: u32 = 50;
/// Most tags in a query's `tags` filter.
pub const MAX_QUERY_TAGS: usize = 20;
/// Distinct values of one top-level metadata key that get an index term, per project. Past
/// it, new values of that key are stored but not indexed, and a `metadata.KEY` filter on that
/// key tests each candidate trace's stored metadata instead of an index (exact, slower).
pub const MAX_METADATA_VALUES_PER_KEY: u64 = 10_000;
/// Most `metadata.KEY` filters in one query.
pub const MAX_QUERY_METADATA_FILTERS: usize = 10;
/// Longest metadata key a `metadata.KEY` filter names, in characters (of `[A-Za-z0-9_.-]`).
pub const MAX_METADATA_KEY_CHARS: usize = 64;
/// Most values a facet (`names`, `tags`, `models`) lists.
pub const MAX_FACET_VALUES: usize = 20;
/// Longest `name` filter, in characters.
pub const MAX_QUERY_NAME_CHARS: usize = 256;
/// Longest `spanName` filter, in characters.
pub const MAX_QUERY_SPAN_NAME_CHARS: usize = 256;
/// Longest cursor token, in characters.
pub const MAX_CURSOR_CHARS: usize = 12 * 1024;
/// Longest value of any query parameter, in bytes (checked before anything else is parsed).
pub const MAX_PARAM_VALUE_BYTES: usize = 16 * 1024;
/// Most query parameters in one request.
pub const MAX_PARAMS: usize = 32;

/// Earliest timestamp a trace may carry: 1970-01-01T00:00:00.000Z.
pub const MIN_TIMESTAMP_MS: i64 = 0;
/// Latest timestamp a trace may carry: 9999-12-31T23:59:59.999Z.
pub const MAX_TIMESTAMP_MS: i64 = 253_402_300_799_999;

/// Rows per time block: the unit in which the bitmap executor visits rows newest-first.
pub const BLOCK_ROWS: u32 = 1024;
/// Rows per bitmap partition: one stored roaring bitmap covers this many row numbers, so an
/// insert rewrites at most one partition per index term.
pub const CHUNK_ROWS: u32 = 65_536;
/// Most rows a project can ever allocate (row numbers are `u32`, never reused).
pub const MAX_ROWS_PER_PROJECT: u32 = u32::MAX - 1;
/// Most pending traces per project: new traces committed by small ingests and not yet folded
/// into the indexes. Queries test each pending trace directly, so this bounds their extra work;
/// the write that would exceed it folds them all.
pub const MAX_PENDING_TRACES: u32 = 64;
/// Largest encoded trace (with its spans and scores) the write buffer takes; a larger one is
/// indexed at once. Bounds what a query reads for one pending trace.
pub const MAX_PENDING_RECORD_BYTES: usize = 64 * 1024;
/// Under `Durability::Deferred`, every this-many-th commit is made durable anyway. redb cannot
/// reuse a page of the last durable state until the next durable commit, so a long run of
/// unsynced commits only grows the file and slows every write; one fsync in this many keeps a
/// bulk load's cost flat, and also bounds what a crash can lose to the last this-many commits.
pub const DEFERRED_COMMITS_PER_SYNC: u32 = 64;
/// Most concurrent write requests (OTLP exports) applied in one group commit: one transaction
/// and one fsync for all of them. Bounds the transaction a leader builds (each request holds at
/// most `MAX_OTLP_SPANS` spans) and how long the first of them waits.
pub const MAX_GROUP_COMMIT_JOBS: usize = 16;
/// Traces deleted per write transaction by `delete_before`.
pub const RETENTION_BATCH: usize = 10_000;

/// Blocks of row identities (row number → start time and id, `BLOCK_ROWS` slots of 32 bytes each)
/// kept in memory by the read cache, over all projects: at most 32 MiB. They never change once
/// committed; the cache is emptied when it reaches this size.
pub const ROW_CACHE_BLOCKS: usize = 1024;
/// Bytes of pending-trace records whose decoded heads the read cache holds, over all projects.
pub const PENDING_CACHE_BYTES: usize = 16 * 1024 * 1024;
/// Bytes of decoded bitmap partitions the read cache holds, over all projects.
pub const BITMAP_CACHE_BYTES: usize = 64 * 1024 * 1024;

/// Traces an export reads per step of its walk: it pages through the matches this many at a
/// time inside its one snapshot, so its memory does not grow with the number of matches.
pub const EXPORT_PAGE_TRACES: u32 = 500;
/// Bytes of formatted rows the HTTP server gathers into one chunk of an export's body.
pub const EXPORT_CHUNK_BYTES: usize = 64 * 1024;
/// Chunks of an export's body the HTTP server holds for a client that reads slower than the
/// export produces; the export waits when they are full (so a slow client costs at most
/// `EXPORT_CHANNEL_CHUNKS * EXPORT_CHUNK_BYTES` of buffered body).
pub const EXPORT_CHANNEL_CHUNKS: usize = 4;
