//! Measurement: the median, the timing loop, file sizes on disk, and redb's per-table space.

use std::path::Path;
use std::time::{Duration, Instant};

/// Median of `v` (sorted in place).
pub fn median(v: &mut [f64]) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// Times `f` (given the iteration index): warms up, then runs until at least 200 runs and 1 s,
/// or at most `max` time (at least 15 runs); returns the median in microseconds and the runs.
pub fn measure(max: Duration, mut f: impl FnMut(usize)) -> (f64, usize) {
    let warm = Instant::now();
    let mut i = 0;
    while i < 20 && (i < 3 || warm.elapsed() < Duration::from_millis(200)) {
        f(i);
        i += 1;
    }
    let mut samples = Vec::new();
    let began = Instant::now();
    loop {
        let t = Instant::now();
        f(i);
        samples.push(t.elapsed().as_secs_f64() * 1e6);
        i += 1;
        let el = began.elapsed();
        if (samples.len() >= 200 && el >= Duration::from_secs(1))
            || (samples.len() >= 15 && el >= max)
            || samples.len() >= 200_000
        {
            break;
        }
    }
    let n = samples.len();
    (median(&mut samples), n)
}

/// Per-table space of a closed tracestore file, read with redb directly (diagnostic for the
/// disk target): one markdown row per table with entries, pages and stored bytes per trace.
pub fn redb_table_stats(path: &Path, traces: usize) -> Vec<String> {
    use redb::{ReadableDatabase, ReadableTableMetadata, TableHandle};
    let db = redb::Database::open(path).expect("open redb file");
    let txn = db.begin_read().expect("read txn");
    let mut out = Vec::new();
    let n = traces.max(1) as f64;
    let mut rows: Vec<(String, u64, u64, u64, u64, u64)> = Vec::new();
    for h in txn.list_tables().expect("tables") {
        let name = h.name().to_string();
        let t = txn.open_untyped_table(h).expect("table");
        let st = t.stats().expect("stats");
        rows.push((
            name,
            t.len().unwrap_or(0),
            st.leaf_pages() + st.branch_pages(),
            st.stored_bytes(),
            st.metadata_bytes(),
            st.fragmented_bytes(),
        ));
    }
    rows.sort_by_key(|r| std::cmp::Reverse(r.2));
    let mut pages_total = 0;
    for (name, len, pages, stored, meta, frag) in &rows {
        pages_total += pages;
        out.push(format!(
            "| {name} | {len} | {pages} | {:.0} | {:.0} | {:.0} | {:.0} |",
            (*pages as f64 * 4096.0) / n,
            *stored as f64 / n,
            *meta as f64 / n,
            *frag as f64 / n
        ));
    }
    out.push(format!(
        "| all tables | | {pages_total} | {:.0} | | | file {:.0} |",
        pages_total as f64 * 4096.0 / n,
        file_len(path) as f64 / n
    ));
    out
}

pub fn file_len(p: &Path) -> u64 {
    std::fs::metadata(p).map(|m| m.len()).unwrap_or(0)
}

/// Bytes the file occupies on disk (allocated blocks). redb extends its file ahead of use
/// (doubling up to 4 GiB regions) with `set_len`, which leaves the unused tail sparse: apparent
/// length overstates what the disk holds.
pub fn file_allocated(p: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(p).map(|m| m.blocks() * 512).unwrap_or(0)
}
