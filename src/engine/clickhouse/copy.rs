//! Copying a store into ClickHouse (`tracestore migrate --to-clickhouse`): every trace of every
//! project, as its stored records (payload blobs as stored, `createdAt` kept), in batches, with
//! a checkpoint in the target after each batch so that an interrupted copy resumes where it
//! stopped.
//!
//! The copy walks each project in `startTime.asc` order from one snapshot of the source and
//! replaces each trace in the target whole (its children the source lacks are removed). The
//! checkpoint is the last copied (project, startTime, id), kept in the target's `meta` table
//! under a key naming the source store (a hash of its cursor secret), so a second source never
//! resumes from another's checkpoint. A trace changed in the source after it was copied is not
//! copied again by a resumed run; run the copy with `restart` to copy everything again.

use super::schema::MetaRow;
use super::write::{self, State};
use super::{next_version, run_blocking, ClickHouseEngine};
use crate::engine::{Engine, Query};
use crate::error::{Error, Result};
use crate::limits::EXPORT_PAGE_TRACES;
use crate::query::{Filters, Include, Order};
use sha2::Digest;

/// Traces per batch: one load of the target's stored state and one insert per table.
pub(crate) const COPY_BATCH_TRACES: usize = 500;

/// How far a copy is, after each batch.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct MigrateProgress {
    /// Traces copied so far, by this run and by the run it resumed.
    pub copied: u64,
    /// Traces in the source when the copy began.
    pub total: u64,
    /// Traces a resumed run found copied already.
    pub resumed: u64,
}

fn checkpoint_key(source: &dyn Engine) -> String {
    let digest = sha2::Sha256::digest(source.cursor_secret());
    let hex: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
    format!("copy_from:{hex}")
}

/// (project, start_ms, id) of the last trace copied.
type Checkpoint = (String, i64, String);

fn parse_checkpoint(s: &str) -> Result<Checkpoint> {
    let mut parts = s.splitn(3, '\n');
    let (Some(p), Some(t), Some(id)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(Error::corrupted("copy checkpoint"));
    };
    let t = t
        .parse()
        .map_err(|_| Error::corrupted("copy checkpoint time"))?;
    Ok((p.to_string(), t, id.to_string()))
}

/// The walk of a project, oldest first; with `count`, one row and the total.
fn walk(filters: &Filters, count: bool) -> Query<'_> {
    Query {
        filters,
        order: Order::StartTimeAsc,
        limit: if count { 1 } else { EXPORT_PAGE_TRACES },
        include: Include {
            total: count,
            facets: false,
        },
    }
}

/// Copies every trace of `source` into `target`, resuming from the target's checkpoint of this
/// source unless `restart`. Returns the traces copied by this run.
pub(crate) fn copy(
    source: &dyn Engine,
    target: &ClickHouseEngine,
    restart: bool,
    progress: &mut dyn FnMut(&MigrateProgress),
) -> Result<u64> {
    let key = checkpoint_key(source);
    let from: Option<Checkpoint> = if restart {
        None
    } else {
        match target.block(target.inner.meta(&key))? {
            Some(s) if !s.is_empty() => Some(parse_checkpoint(&s)?),
            _ => None,
        }
    };
    let all = Filters::default();
    // Each project with its number of traces, counted once.
    let mut projects = Vec::new();
    for p in source.projects()? {
        let n = source
            .query(&p, walk(&all, true), None, None)?
            .total
            .unwrap_or(0);
        projects.push((p, n));
    }
    let mut state = MigrateProgress {
        copied: 0,
        total: projects.iter().map(|(_, n)| n).sum(),
        resumed: 0,
    };
    let mut copied_now = 0u64;
    for (p, traces) in &projects {
        // Projects before the checkpoint's were copied whole; in its project, the traces up to
        // it were.
        let mut filters = Filters::default();
        let mut after: Option<(i64, String)> = None;
        if let Some((cp, start, id)) = &from {
            if p < cp {
                state.copied += traces;
                state.resumed += traces;
                continue;
            }
            if p == cp {
                filters.start_ms = Some(*start);
                let before = Filters {
                    end_ms: Some(*start),
                    ..Filters::default()
                };
                let n = source
                    .query(p, walk(&before, true), None, None)?
                    .total
                    .unwrap_or(0);
                state.copied += n;
                state.resumed += n;
                after = Some((*start, id.clone()));
            }
        }
        let mut batch: Vec<String> = Vec::with_capacity(COPY_BATCH_TRACES);
        let mut last: Option<(i64, String)> = None;
        let mut flush = |batch: &mut Vec<String>,
                         last: &Option<(i64, String)>,
                         state: &mut MigrateProgress|
         -> Result<()> {
            if batch.is_empty() {
                return Ok(());
            }
            let mut new = Vec::with_capacity(batch.len());
            for id in batch.iter() {
                // A trace deleted since the walk's snapshot is skipped.
                if let Some(w) = source.whole_trace(p, id)? {
                    new.push((id.clone(), State::of_whole(w)));
                }
            }
            let (lt, lid) = last.clone().expect("a batch has a last trace");
            run_blocking(&target.rt, async {
                let old = write::load(&target.inner, p, batch).await?;
                let floor = write::version_floor(&old);
                target
                    .inner
                    .write_rows(write::replace(p, &new, &old), floor)
                    .await?;
                target
                    .inner
                    .insert(
                        "meta",
                        &[MetaRow {
                            key: key.clone(),
                            value: format!("{p}\n{lt}\n{lid}"),
                            version: next_version(0),
                        }],
                    )
                    .await
            })?;
            state.copied += batch.len() as u64;
            copied_now += batch.len() as u64;
            batch.clear();
            progress(state);
            Ok(())
        };
        let _guard = target.write_lock.lock().expect("write lock");
        source.export(p, walk(&filters, false), &mut |t| {
            let start = t.start_time.as_millis();
            if let Some((s, id)) = &after {
                if (start, t.id.as_str()) <= (*s, id.as_str()) {
                    state.copied += 1;
                    state.resumed += 1;
                    return Ok(());
                }
            }
            batch.push(t.id.clone());
            last = Some((start, t.id.clone()));
            if batch.len() >= COPY_BATCH_TRACES {
                flush(&mut batch, &last, &mut state)?;
            }
            Ok(())
        })?;
        flush(&mut batch, &last, &mut state)?;
    }
    progress(&state);
    Ok(copied_now)
}
