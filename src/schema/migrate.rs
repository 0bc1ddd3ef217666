//! The format check at open, and in-place upgrades of older formats. Each upgrade runs inside
//! the open transaction, so a crash midway leaves the old format whole.

use super::records::{decode, encode_project_state, ProjectState};
use super::tables::WriteTables;
use super::{FORMAT_VERSION, FORMAT_VERSION_V1, META_FORMAT_VERSION};
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
    t.meta
        .insert(META_FORMAT_VERSION, [FORMAT_VERSION].as_slice())?;
    Ok(())
}

/// Checks the stored format version at open: the current one passes, format 1 is upgraded in
/// place, a new file gets the current version, and any other version is refused, never misread.
pub(crate) fn check_format(t: &mut WriteTables<'_>) -> Result<()> {
    let version = t.meta.get(META_FORMAT_VERSION)?.map(|v| v.value().to_vec());
    match version {
        Some(v) if v == [FORMAT_VERSION] => Ok(()),
        Some(v) if v == [FORMAT_VERSION_V1] => migrate_from_v1(t),
        Some(v) => Err(Error::storage(format!(
            "unsupported tracestore format version {v:?} (this build reads {FORMAT_VERSION})"
        ))),
        None => {
            t.meta
                .insert(META_FORMAT_VERSION, [FORMAT_VERSION].as_slice())?;
            Ok(())
        }
    }
}
