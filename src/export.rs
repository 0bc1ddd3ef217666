//! Export: every trace a list query matches, in the query's order, as JSON Lines or CSV.
//!
//! This module holds what an export is and how its rows are written: the format, the request
//! (`ExportRequest::from_params`, which takes the list endpoint's filter parameters through the
//! list query's own parser and adds `format`), and the row writers. Walking the matches is the
//! engine's (`Engine::export`, one snapshot, paged internally); `Store::export` joins the two.

use crate::error::{Error, FieldError, Result};
use crate::limits::MAX_PARAMS;
use crate::model::Trace;
use crate::query::{QueryRequest, KNOWN_PARAMS};
use std::io::Write;

/// The format of an export.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ExportFormat {
    /// JSON Lines: one trace object per line, exactly a list page's trace object.
    #[default]
    Jsonl,
    /// CSV (RFC 4180): a header row naming the trace fields, then one row per trace.
    Csv,
}

impl ExportFormat {
    /// Every format, in the order the parameter's message lists them.
    pub const ALL: [ExportFormat; 2] = [ExportFormat::Jsonl, ExportFormat::Csv];

    /// `jsonl` or `csv`, as the `format` parameter spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            ExportFormat::Jsonl => "jsonl",
            ExportFormat::Csv => "csv",
        }
    }
    /// The format the `format` parameter names (`jsonl` or `csv`, exactly).
    pub fn parse(s: &str) -> Option<ExportFormat> {
        Self::ALL.into_iter().find(|f| f.as_str() == s)
    }
    /// The media type of an export in this format.
    pub fn content_type(self) -> &'static str {
        match self {
            ExportFormat::Jsonl => "application/x-ndjson",
            ExportFormat::Csv => "text/csv; charset=utf-8",
        }
    }
    /// The file name an export in this format is offered under (`traces.jsonl`, `traces.csv`).
    pub fn file_name(self) -> &'static str {
        match self {
            ExportFormat::Jsonl => "traces.jsonl",
            ExportFormat::Csv => "traces.csv",
        }
    }
}

/// The CSV header: the fields of a list page's trace object, in the order the JSON object has
/// them.
pub const CSV_COLUMNS: [&str; 15] = [
    "id",
    "name",
    "status",
    "startTime",
    "endTime",
    "durationMs",
    "totalCost",
    "totalTokens",
    "tags",
    "metadata",
    "spanCount",
    "scoreCount",
    "createdAt",
    "userId",
    "sessionId",
];

/// The export's own parameter.
const FORMAT: &str = "format";

/// List parameters an export refuses, and why.
const REFUSED: [(&str, &str); 3] = [
    (
        "limit",
        "an export has no page size: it returns every matching trace",
    ),
    (
        "cursor",
        "an export has no pages to continue: it returns every matching trace from one snapshot",
    ),
    ("include", "an export returns the trace rows only"),
];

/// The parameters an export takes: `format`, then every parameter of the list query except
/// the ones about pages (`limit`, `cursor`, `include`).
pub fn export_params() -> Vec<&'static str> {
    std::iter::once(FORMAT)
        .chain(
            KNOWN_PARAMS
                .iter()
                .copied()
                .filter(|p| !REFUSED.iter().any(|(r, _)| r == p)),
        )
        .collect()
}

/// A validated export: the filters and order of a list query, and a format.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExportRequest {
    pub(crate) query: QueryRequest,
    pub(crate) format: ExportFormat,
}

impl ExportRequest {
    /// Parses query-string pairs (already percent-decoded): `format` (`jsonl`, the default, or
    /// `csv`), and every filter of the list endpoint, which go to
    /// [`QueryRequest::from_params`] unchanged, so an export filters exactly as a list query
    /// does. `limit`, `cursor` and `include` are refused by name. The error lists every bad
    /// parameter at once, the list query's and the export's own, in the order they were given.
    pub fn from_params<K: AsRef<str>, V: AsRef<str>>(
        params: impl IntoIterator<Item = (K, V)>,
    ) -> Result<ExportRequest> {
        let mut errors: Vec<FieldError> = Vec::new();
        let mut keys: Vec<String> = Vec::new();
        let mut rest: Vec<(String, String)> = Vec::new();
        let mut format: Option<ExportFormat> = None;
        let mut format_seen = false;
        let push = |errors: &mut Vec<FieldError>, field: &str, message: String| {
            if !errors.iter().any(|e| e.field() == field) {
                errors.push(FieldError::new(field, message));
            }
        };
        for (count, (k, v)) in params.into_iter().enumerate() {
            let (k, v) = (k.as_ref(), v.as_ref());
            if count >= MAX_PARAMS {
                push(
                    &mut errors,
                    "query",
                    format!("at most {MAX_PARAMS} parameters"),
                );
                break;
            }
            keys.push(k.to_string());
            if k == FORMAT {
                if format_seen {
                    push(&mut errors, FORMAT, "given more than once".to_string());
                    continue;
                }
                format_seen = true;
                match ExportFormat::parse(v) {
                    Some(f) => format = Some(f),
                    None => push(&mut errors, FORMAT, "must be jsonl or csv".to_string()),
                }
            } else if let Some((_, why)) = REFUSED.iter().find(|(r, _)| *r == k) {
                push(&mut errors, k, format!("not taken by an export: {why}"));
            } else {
                rest.push((k.to_string(), v.to_string()));
            }
        }
        let query = match QueryRequest::from_params(rest) {
            Ok(q) => Some(q),
            Err(e) => {
                let known = export_params().join(", ");
                for d in e.into_details() {
                    let message = if !KNOWN_PARAMS.contains(&d.field())
                        && d.message().starts_with("unknown parameter")
                    {
                        // The list query lists its own parameters; an export takes others.
                        format!(
                            "unknown parameter; known parameters are {known}, and {}KEY",
                            crate::query::METADATA_PARAM_PREFIX
                        )
                    } else {
                        d.message().to_string()
                    };
                    push(&mut errors, d.field(), message);
                }
                None
            }
        };
        match query {
            Some(query) if errors.is_empty() => Ok(ExportRequest {
                query,
                format: format.unwrap_or_default(),
            }),
            _ => {
                // In the order the parameters were given; a problem of the whole query last.
                let at = |field: &str| {
                    keys.iter()
                        .position(|k| k == field || k.chars().take(64).eq(field.chars()))
                        .unwrap_or(usize::MAX)
                };
                errors.sort_by_key(|e| at(e.field()));
                Err(Error::validation(errors))
            }
        }
    }

    /// An export of `query`'s filters and order, in JSON Lines. A query that continues a cursor
    /// is refused (`cursor`): an export has no pages. The query's page size does not apply.
    pub fn from_query(query: &QueryRequest) -> Result<ExportRequest> {
        if query.cursor.is_some() {
            return Err(Error::field(
                "cursor",
                format!("not taken by an export: {}", REFUSED[1].1),
            ));
        }
        Ok(ExportRequest {
            query: QueryRequest {
                cursor: None,
                ..query.clone()
            },
            format: ExportFormat::default(),
        })
    }

    /// The same export in another format.
    pub fn with_format(mut self, format: ExportFormat) -> ExportRequest {
        self.format = format;
        self
    }

    /// The format rows are written in.
    pub fn format(&self) -> ExportFormat {
        self.format
    }
}

impl Default for ExportRequest {
    /// Every trace of the project, in JSON Lines.
    fn default() -> Self {
        ExportRequest {
            query: QueryRequest::default(),
            format: ExportFormat::default(),
        }
    }
}

/// Writes export rows in one format to `W`: for CSV a header row (`header`), then one line or
/// record per trace (`write`). Output is buffered for CSV; `flush` or `finish` pushes it out.
pub struct ExportWriter<W: Write> {
    out: Out<W>,
}

enum Out<W: Write> {
    Jsonl(W),
    Csv(Box<csv::Writer<W>>),
}

impl<W: Write> std::fmt::Debug for ExportWriter<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let format = match self.out {
            Out::Jsonl(_) => ExportFormat::Jsonl,
            Out::Csv(_) => ExportFormat::Csv,
        };
        f.debug_struct("ExportWriter")
            .field("format", &format)
            .finish_non_exhaustive()
    }
}

fn csv_error(e: csv::Error) -> Error {
    match e.into_kind() {
        csv::ErrorKind::Io(e) => Error::output(e),
        other => Error::internal(format!("CSV writer: {other:?}")),
    }
}

fn json_text<T: serde::Serialize + ?Sized>(v: &T) -> Result<String> {
    serde_json::to_string(v).map_err(|e| Error::internal(format!("serializing a trace: {e}")))
}

/// The CSV cells of one trace, in [`CSV_COLUMNS`] order: each is what the JSON object holds
/// for that field, strings without their quotes, `tags` and `metadata` as their JSON text,
/// and an empty cell for null.
fn csv_cells(t: &Trace) -> Result<[String; 15]> {
    // Every field by name, with no `..`: a field added to `Trace` fails to compile here until
    // it has a column.
    let Trace {
        id,
        name,
        status,
        start_time,
        end_time,
        duration_ms,
        total_cost,
        total_tokens,
        tags,
        metadata,
        span_count,
        score_count,
        created_at,
        user_id,
        session_id,
    } = t;
    let opt = |v: Option<String>| v.unwrap_or_default();
    Ok([
        id.clone(),
        name.clone(),
        status.as_str().to_string(),
        start_time.to_string(),
        opt(end_time.map(|e| e.to_string())),
        opt(duration_ms.map(|d| d.to_string())),
        total_cost.normalize().to_string(),
        total_tokens.to_string(),
        json_text(tags)?,
        json_text(metadata)?,
        span_count.to_string(),
        score_count.to_string(),
        created_at.to_string(),
        opt(user_id.clone()),
        opt(session_id.clone()),
    ])
}

impl<W: Write> ExportWriter<W> {
    /// A writer of `format` rows into `out`. Nothing is written yet.
    pub fn new(format: ExportFormat, out: W) -> ExportWriter<W> {
        let out = match format {
            ExportFormat::Jsonl => Out::Jsonl(out),
            ExportFormat::Csv => Out::Csv(Box::new(
                csv::WriterBuilder::new()
                    .terminator(csv::Terminator::CRLF)
                    .from_writer(out),
            )),
        };
        ExportWriter { out }
    }

    /// The CSV header row ([`CSV_COLUMNS`]); nothing for JSON Lines.
    pub fn header(&mut self) -> Result<()> {
        match &mut self.out {
            Out::Jsonl(_) => Ok(()),
            Out::Csv(w) => w.write_record(CSV_COLUMNS).map_err(csv_error),
        }
    }

    /// One trace: a JSON line, or a CSV record.
    pub fn write(&mut self, t: &Trace) -> Result<()> {
        match &mut self.out {
            Out::Jsonl(w) => {
                serde_json::to_writer(&mut *w, t).map_err(|e| match e.io_error_kind() {
                    Some(_) => Error::output(std::io::Error::from(e)),
                    None => Error::internal(format!("serializing a trace: {e}")),
                })?;
                w.write_all(b"\n").map_err(Error::output)
            }
            Out::Csv(w) => w.write_record(csv_cells(t)?).map_err(csv_error),
        }
    }

    /// Pushes buffered rows to the underlying writer and flushes it.
    pub fn flush(&mut self) -> Result<()> {
        match &mut self.out {
            Out::Jsonl(w) => w.flush().map_err(Error::output),
            Out::Csv(w) => w.flush().map_err(Error::output),
        }
    }

    /// Flushes and returns the underlying writer.
    pub fn finish(self) -> Result<W> {
        match self.out {
            Out::Jsonl(mut w) => {
                w.flush().map_err(Error::output)?;
                Ok(w)
            }
            Out::Csv(w) => w.into_inner().map_err(|e| Error::output(e.into_error())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Metadata, Status};
    use crate::time::Timestamp;
    use std::str::FromStr;

    fn sample(user: Option<&str>) -> Trace {
        Trace {
            id: "t,1".into(),
            name: "say \"hi\",\nthen go".into(),
            status: Status::Error,
            start_time: Timestamp::from_millis_unchecked(1_773_482_400_000),
            end_time: None,
            duration_ms: None,
            total_cost: rust_decimal::Decimal::from_str("0.00340").unwrap(),
            total_tokens: 150,
            tags: vec!["a".into(), "b c".into()],
            metadata: Metadata::from_json_unchecked(r#"{"z":1,"a":"x,y"}"#.into()),
            span_count: 2,
            score_count: 0,
            created_at: Timestamp::from_millis_unchecked(1_773_482_401_000),
            user_id: user.map(str::to_string),
            session_id: None,
        }
    }

    /// The keys of a JSON object, in the order the text has them.
    fn keys_in_order(json: &str) -> Vec<String> {
        struct Keys(Vec<String>);
        impl<'de> serde::Deserialize<'de> for Keys {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct V;
                impl<'de> serde::de::Visitor<'de> for V {
                    type Value = Keys;
                    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                        f.write_str("an object")
                    }
                    fn visit_map<A: serde::de::MapAccess<'de>>(
                        self,
                        mut m: A,
                    ) -> Result<Keys, A::Error> {
                        let mut keys = Vec::new();
                        while let Some((k, _)) = m.next_entry::<String, serde::de::IgnoredAny>()? {
                            keys.push(k);
                        }
                        Ok(Keys(keys))
                    }
                }
                d.deserialize_map(V)
            }
        }
        serde_json::from_str::<Keys>(json).unwrap().0
    }

    #[test]
    fn csv_columns_are_the_trace_objects_fields_in_order() {
        let json = serde_json::to_string(&sample(Some("u"))).unwrap();
        assert_eq!(keys_in_order(&json), CSV_COLUMNS);
    }

    #[test]
    fn csv_cells_are_the_json_values() {
        for t in [sample(None), sample(Some("u-1"))] {
            let v = serde_json::to_value(&t).unwrap();
            let cells = csv_cells(&t).unwrap();
            for (col, cell) in CSV_COLUMNS.iter().zip(&cells) {
                let want = match &v[col] {
                    serde_json::Value::Null => String::new(),
                    serde_json::Value::String(s) => s.clone(),
                    serde_json::Value::Number(n) => n.to_string(),
                    _ => cell.clone(), // tags and metadata: checked as JSON text below
                };
                assert_eq!(cell, &want, "{col}");
            }
            assert_eq!(cells[8], r#"["a","b c"]"#);
            assert_eq!(cells[9], r#"{"z":1,"a":"x,y"}"#, "metadata text as stored");
        }
    }

    #[test]
    fn writers() {
        let mut w = ExportWriter::new(ExportFormat::Csv, Vec::new());
        w.header().unwrap();
        w.write(&sample(None)).unwrap();
        let text = String::from_utf8(w.finish().unwrap()).unwrap();
        assert_eq!(
            text,
            "id,name,status,startTime,endTime,durationMs,totalCost,totalTokens,tags,metadata,\
             spanCount,scoreCount,createdAt,userId,sessionId\r\n\
             \"t,1\",\"say \"\"hi\"\",\nthen go\",ERROR,2026-03-14T10:00:00.000Z,,,0.0034,150,\
             \"[\"\"a\"\",\"\"b c\"\"]\",\"{\"\"z\"\":1,\"\"a\"\":\"\"x,y\"\"}\",2,0,\
             2026-03-14T10:00:01.000Z,,\r\n"
        );
        let mut w = ExportWriter::new(ExportFormat::Jsonl, Vec::new());
        w.header().unwrap();
        w.write(&sample(None)).unwrap();
        w.write(&sample(Some("u"))).unwrap();
        let text = String::from_utf8(w.finish().unwrap()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0], serde_json::to_string(&sample(None)).unwrap());
    }

    fn fields(params: &[(&str, &str)]) -> Vec<String> {
        match ExportRequest::from_params(params.iter().copied()) {
            Ok(_) => vec![],
            Err(e) => e.details().iter().map(|d| d.field().to_string()).collect(),
        }
    }

    #[test]
    fn params() {
        let r = ExportRequest::from_params([("status", "error"), ("format", "csv")]).unwrap();
        assert_eq!(r.format(), ExportFormat::Csv);
        assert_eq!(r.query.filters.status, Some(Status::Error.code()));
        assert_eq!(
            ExportRequest::from_params::<&str, &str>([]).unwrap(),
            ExportRequest::default()
        );
        assert_eq!(
            fields(&[
                ("limit", "5"),
                ("status", "meh"),
                ("cursor", "abc"),
                ("include", "x"),
                ("format", "xml"),
                ("start_date", "x"),
            ]),
            vec![
                "limit",
                "status",
                "cursor",
                "include",
                "format",
                "start_date"
            ]
        );
        assert_eq!(
            fields(&[("format", "csv"), ("format", "csv")]),
            vec!["format"]
        );
        assert_eq!(fields(&[("format", "CSV")]), vec!["format"]);
        let e = ExportRequest::from_params([("bogus", "1")]).unwrap_err();
        let m = e.details()[0].message();
        assert!(m.contains("format") && !m.contains("limit"), "{m}");
        let many: Vec<(String, &str)> = (0..40).map(|i| (format!("p{i}"), "")).collect();
        let f = fields(
            &many
                .iter()
                .map(|(k, v)| (k.as_str(), *v))
                .collect::<Vec<_>>(),
        );
        assert!(f.contains(&"query".to_string()), "{f:?}");
        assert_eq!(export_params()[0], "format");
        assert!(!export_params().contains(&"limit"));
    }
}
