//! The `Engine` operations of the redb engine, each in its own transaction.

use super::{export, run, RedbEngine};
use crate::convert::detail;
use crate::engine::TableUsage;
use crate::engine::{Engine, EnginePage, Query, Resume, WholeTrace};
use crate::error::{Error, FieldError, Result};
use crate::limits::RETENTION_BATCH;
use crate::model::{IngestSummary, TraceDetail};
use crate::pending;
use crate::query::{Explain, PlanKind, Position};
use crate::schema::ApiKeyRecord;
use crate::schema::*;
use crate::time::Timestamp;
use crate::validate::ValidTrace;
use crate::verify::Violation;
use crate::write::Upserted;
use redb::ReadableTable;

impl Engine for RedbEngine {
    fn name(&self) -> &'static str {
        "redb"
    }

    fn cursor_secret(&self) -> &[u8] {
        &self.secret
    }

    fn check_usable(&self) -> Result<()> {
        self.check_poisoned()
    }

    fn ingest(&self, project: &str, valid: Vec<ValidTrace>) -> Result<IngestSummary> {
        let now = Timestamp::now().as_millis();
        // A few new traces go to the write buffer: two small tables instead of every index.
        if valid.len() <= self.write_buffer_traces as usize {
            let buffered = self.transact(|txn| {
                let mut t = BufferTables::open(txn)?;
                pending::try_buffer(&mut t, project, &valid, now, self.write_buffer_traces)
            })?;
            if let Some(summary) = buffered {
                return Ok(summary);
            }
        }
        self.write(|w| {
            let p = w.project_id(project)?;
            let mut summary = IngestSummary::default();
            let mut errors: Vec<FieldError> = Vec::new();
            for (i, v) in valid.into_iter().enumerate() {
                summary.spans += v.spans.len();
                summary.scores += v.scores.len();
                match w.upsert(p, v, now, &format!("traces[{i}]"), &mut errors)? {
                    Upserted::Created => summary.created += 1,
                    Upserted::Updated => summary.updated += 1,
                }
            }
            if !errors.is_empty() {
                return Err(Error::validation(errors));
            }
            Ok(summary)
        })
    }

    #[cfg(feature = "otlp")]
    fn ingest_otlp(&self, project: &str, traces: Vec<crate::otlp::OtlpTrace>) -> Result<u64> {
        // Concurrent requests share one transaction and its fsync (see `group`).
        self.otlp_group
            .submit((project.to_string(), traces), &|jobs: Vec<
                super::OtlpJob,
            >| {
                self.write(|w| {
                    jobs.into_iter()
                        .map(|(project, traces)| ingest_otlp_into(w, &project, traces))
                        .collect()
                })
            })
    }

    fn check_stored(
        &self,
        project: &str,
        items: &[(usize, &ValidTrace)],
    ) -> Result<Vec<FieldError>> {
        let mut errors = Vec::new();
        // A write transaction, aborted: pending traces are folded first, exactly as the write
        // would have folded them, so a pending trace counts as stored.
        self.transact(|txn| {
            let mut w = crate::write::Writer::open(txn)?;
            let p = w.existing_project_id(project)?;
            if let Some(p) = p {
                w.fold_pending(p)?;
            }
            for (i, v) in items {
                errors.extend(w.check(p, v, &format!("traces[{i}]"))?);
            }
            Ok(None::<()>)
        })?;
        Ok(errors)
    }

    fn delete_trace(&self, project: &str, id: &str) -> Result<bool> {
        self.write(|w| match w.existing_project_id(project)? {
            Some(p) => w.delete(p, id),
            None => Ok(false),
        })
    }

    fn delete_before(
        &self,
        project: &str,
        cutoff_ms: i64,
        progress: &mut dyn FnMut(u64),
    ) -> Result<u64> {
        let mut total = 0u64;
        loop {
            let n = self.write(|w| {
                let Some(p) = w.existing_project_id(project)? else {
                    return Ok(0);
                };
                w.fold_pending(p)?;
                let ids = w.ids_before(p, cutoff_ms, RETENTION_BATCH)?;
                for id in &ids {
                    w.delete(p, id)?;
                }
                Ok(ids.len())
            })?;
            total += n as u64;
            if n == 0 {
                return Ok(total);
            }
            progress(total);
        }
    }

    fn get_trace(&self, project: &str, id: &str, payloads: bool) -> Result<Option<TraceDetail>> {
        let t = self.read()?;
        match read_whole(&t, project, id, payloads)? {
            Some(w) => {
                let trace = crate::convert::trace_of_body(w.start_ms, id, w.status, w.body)?;
                let pl = payloads.then_some(w.payloads);
                Ok(Some(detail(trace, w.spans, w.scores, pl)?))
            }
            None => Ok(None),
        }
    }

    #[cfg(feature = "clickhouse")]
    fn whole_trace(&self, project: &str, id: &str) -> Result<Option<WholeTrace>> {
        read_whole(&self.read()?, project, id, true)
    }

    fn projects(&self) -> Result<Vec<String>> {
        let t = self.read()?;
        let mut out = Vec::new();
        for e in t.projects()?.iter()? {
            out.push(e?.0.value().to_string());
        }
        out.sort();
        Ok(out)
    }

    fn query(
        &self,
        project: &str,
        q: Query<'_>,
        resume: Option<Resume<'_>>,
        force: Option<PlanKind>,
    ) -> Result<EnginePage> {
        run::run(self.read()?, &self.caches, project, q, resume, force)
    }

    fn export(
        &self,
        project: &str,
        q: Query<'_>,
        sink: &mut dyn FnMut(&crate::model::Trace) -> Result<()>,
    ) -> Result<u64> {
        export::export(self.read()?, &self.caches, project, q, sink)
    }

    fn explain(&self, project: &str, q: Query<'_>, _after: Option<&Position>) -> Result<Explain> {
        // A cursor changes where the walk starts, not the plan.
        run::explain(self.read()?, &self.caches, project, q)
    }

    fn verify(&self) -> Result<Vec<Violation>> {
        crate::verify::verify(&self.read()?)
    }

    fn storage_stats(&self) -> Result<Vec<TableUsage>> {
        let t = self.read()?;
        Ok(t.table_stats()?
            .into_iter()
            .map(|(table, s)| TableUsage {
                table,
                entries_bytes: s.stored_bytes(),
                metadata_bytes: s.metadata_bytes(),
                fragmented_bytes: s.fragmented_bytes(),
            })
            .collect())
    }

    fn check_integrity(&mut self) -> Result<bool> {
        Ok(self.writable()?.check_integrity()?)
    }

    fn compact(&mut self) -> Result<bool> {
        Ok(self.writable()?.compact()?)
    }

    fn put_api_key(&self, hash: &str, rec: &ApiKeyRecord) -> Result<()> {
        self.write(|w| {
            w.t.api_keys.insert(hash, encode_api_key(rec).as_slice())?;
            Ok(())
        })
    }

    fn api_key(&self, hash: &str) -> Result<Option<ApiKeyRecord>> {
        let t = self.read()?;
        let found = t.api_keys()?.get(hash)?;
        found.map(|v| decode_api_key(v.value())).transpose()
    }

    fn api_keys(&self) -> Result<Vec<ApiKeyRecord>> {
        let t = self.read()?;
        let mut out = Vec::new();
        for e in t.api_keys()?.iter()? {
            out.push(decode_api_key(e?.1.value())?);
        }
        Ok(out)
    }

    fn revoke_api_keys(&self, prefix: &str, now_ms: i64) -> Result<usize> {
        self.write(|w| {
            let mut hits = Vec::new();
            for e in w.t.api_keys.iter()? {
                let (k, v) = e?;
                let r = decode_api_key(v.value())?;
                if r.prefix == prefix && r.revoked_ms.is_none() {
                    hits.push((k.value().to_string(), r));
                }
            }
            for (k, mut r) in hits.iter().cloned() {
                r.revoked_ms = Some(now_ms);
                w.t.api_keys
                    .insert(k.as_str(), encode_api_key(&r).as_slice())?;
            }
            Ok(hits.len())
        })
    }
}

/// One trace's children in key order (child id byte order), each decoded in place.
fn children<R>(
    table: &redb::ReadOnlyTable<&'static [u8], &'static [u8]>,
    lo: &[u8],
    hi: &[u8],
    decode: impl Fn(&[u8]) -> Result<R>,
) -> Result<Vec<(String, R)>> {
    let mut out = Vec::new();
    for e in table.range::<&[u8]>(lo..hi)? {
        let (k, v) = e?;
        out.push((
            decode_child_key(k.value())?.2.to_string(),
            decode(v.value())?,
        ));
    }
    Ok(out)
}

/// Applies one OTLP request's traces to project `project` inside the writer's transaction: each
/// trace is combined with what is stored of it, then upserted.
#[cfg(feature = "otlp")]
fn ingest_otlp_into(
    w: &mut crate::write::Writer<'_>,
    project: &str,
    traces: Vec<crate::otlp::OtlpTrace>,
) -> Result<u64> {
    let now = Timestamp::now().as_millis();
    let p = w.project_id(project)?;
    w.fold_pending(p)?;
    let mut spans = 0u64;
    let mut errors: Vec<FieldError> = Vec::new();
    for (i, t) in traces.into_iter().enumerate() {
        spans += t.spans.len() as u64;
        let stored = w.otlp_stored(p, &t.trace_id)?;
        let (row, stored) = match stored {
            Some((row, s)) => (Some(row), Some(s)),
            None => (None, None),
        };
        let v = crate::otlp::combine(stored, t, &mut |sid| match row {
            Some(row) => w.payload_of(p, row, sid),
            None => Ok(None),
        })?;
        w.upsert(p, v, now, &format!("traces[{i}]"), &mut errors)?;
    }
    if !errors.is_empty() {
        // The combined trace is valid by construction; a refusal here is a bug.
        return Err(Error::internal(format!(
            "an OTLP trace was refused: {}",
            Error::validation(errors)
        )));
    }
    Ok(spans)
}

/// Everything stored of one trace in one snapshot: its indexed records, or the write buffer's
/// record of a pending trace. Payloads are read only when asked for.
fn read_whole(
    t: &ReadTables,
    project: &str,
    id: &str,
    payloads: bool,
) -> Result<Option<WholeTrace>> {
    let Some(p) = run::project_id(t, project)? else {
        return Ok(None);
    };
    let idr = match t.ids()?.get((p, id))? {
        Some(v) => decode_id(v.value())?,
        None => {
            return Ok(
                pending::detail(t, p, id)?.map(|(head, children)| WholeTrace {
                    start_ms: head.start_ms,
                    status: head.status,
                    body: head.body,
                    spans: children.spans,
                    scores: children.scores,
                    payloads: if payloads {
                        children.payloads
                    } else {
                        Vec::new()
                    },
                }),
            )
        }
    };
    let rec = t
        .traces()?
        .get(trace_key(p, idr.start_ms, id).as_slice())?
        .ok_or_else(|| Error::corrupted("id index points at a missing trace"))?;
    let (header, body) = decode_trace(rec.value())?;
    let (lo, hi) = child_range(p, idr.row);
    Ok(Some(WholeTrace {
        start_ms: idr.start_ms,
        status: header.status,
        body,
        spans: children(t.spans()?, &lo, &hi, decode_span)?,
        scores: children(t.scores()?, &lo, &hi, decode_score)?,
        payloads: if payloads {
            children(t.payloads()?, &lo, &hi, decode_payload)?
        } else {
            Vec::new()
        },
    }))
}
