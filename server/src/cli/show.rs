//! `tracestore show`: one trace of a database file as a header line and its span tree.

use super::{open_read_only, CliError};
use clap::Args;
use std::collections::HashMap;
use std::path::Path;
use tracestore::{ErrorCode, Span, Status, TraceDetail};

#[derive(Debug, Args)]
pub(super) struct ShowArgs {
    /// The id of the trace to show.
    #[arg(value_name = "TRACE_ID")]
    id: String,
    /// The project the trace belongs to.
    #[arg(long)]
    project: String,
    /// Print the exact JSON envelope of GET /api/v1/traces/{id} instead of the tree.
    #[arg(long)]
    json: bool,
}

pub(super) fn run(db: &Path, args: ShowArgs) -> Result<(), CliError> {
    let store = open_read_only(db)?;
    let detail = store
        .get_trace(&args.project, &args.id)
        .map_err(|e| match e.code() {
            ErrorCode::NotFound => CliError::new(format!(
                "no trace {:?} in project {:?} of {}",
                args.id,
                args.project,
                db.display()
            )),
            _ => e.into(),
        })?;
    if args.json {
        let text = crate::error::success_json(&detail, true)
            .map_err(|e| CliError::new(format!("cannot serialize the trace: {e}")))?;
        println!("{text}");
    } else {
        print!("{}", render(&detail));
    }
    Ok(())
}

/// `1234 ms` below a second, else seconds with two decimals (`1.52 s`).
fn duration(ms: i64) -> String {
    if ms < 1000 {
        format!("{ms} ms")
    } else {
        let centis = (ms + 5) / 10;
        format!("{}.{:02} s", centis / 100, centis % 100)
    }
}

/// Longest part of a status message shown on a span's line, in characters.
const MAX_MESSAGE_CHARS: usize = 120;

/// Why a span is drawn as a root although it has a parent.
enum Note<'a> {
    None,
    /// Its parent never arrived.
    Orphan(&'a str),
    /// Its parent is in a cycle of parents (itself, possibly): the cycle is cut above it.
    Cycle(&'a str),
}

/// One span's line, without the tree prefix: kind, name, then what is known of it.
fn span_line(s: &Span, note: &Note<'_>) -> String {
    let mut parts = vec![format!(
        "{} {}",
        s.kind,
        s.name.as_deref().unwrap_or("(unnamed)")
    )];
    if let (Some(a), Some(b)) = (s.start_time, s.end_time) {
        parts.push(duration(b.as_millis() - a.as_millis()));
    }
    if let Some(m) = &s.model {
        parts.push(m.clone());
    }
    if s.total_tokens > 0 || s.input_tokens.is_some() || s.output_tokens.is_some() {
        parts.push(format!("{} tokens", s.total_tokens));
    }
    if let Some(c) = s.cost {
        parts.push(format!("${}", c.normalize()));
    }
    match note {
        Note::None => {}
        Note::Orphan(p) => parts.push(format!("(parent {p} not found)")),
        Note::Cycle(p) => parts.push(format!("(parent cycle cut here: parent {p})")),
    }
    if s.status == Status::Error {
        let first = s
            .status_message
            .as_deref()
            .and_then(|m| m.lines().map(str::trim).find(|l| !l.is_empty()));
        parts.push(match first {
            Some(line) => {
                let mut shown: String = line.chars().take(MAX_MESSAGE_CHARS).collect();
                if line.chars().count() > MAX_MESSAGE_CHARS {
                    shown.push('…');
                }
                format!("✗ ERROR: {shown}")
            }
            None => "✗ ERROR".to_string(),
        });
    }
    parts.join("  ")
}

/// The header line (name, id, status, duration, total tokens, total cost), then the span tree:
/// children under their parent, siblings by startTime then id (a span without a startTime
/// first). A span whose parent never arrived is drawn as a root, and so is the earliest span
/// of a parent cycle that no root leads to, so every span is drawn exactly once.
pub(crate) fn render(detail: &TraceDetail) -> String {
    let t = &detail.trace;
    let mut out = format!(
        "{}  {}  {}  {}  {} tokens  ${}\n",
        t.name,
        t.id,
        t.status,
        t.duration_ms
            .map_or_else(|| "running".to_string(), duration),
        t.total_tokens,
        t.total_cost.normalize()
    );
    let spans = &detail.spans;
    if spans.is_empty() {
        out.push_str("(no spans)\n");
        return out;
    }
    let mut order: Vec<usize> = (0..spans.len()).collect();
    order.sort_by(|&a, &b| {
        (spans[a].start_time, &spans[a].id).cmp(&(spans[b].start_time, &spans[b].id))
    });
    let index: HashMap<&str, usize> = spans
        .iter()
        .enumerate()
        .map(|(i, s)| (s.id.as_str(), i))
        .collect();
    let mut children: Vec<Vec<usize>> = vec![Vec::new(); spans.len()];
    let mut notes: Vec<Note<'_>> = spans.iter().map(|_| Note::None).collect();
    let mut is_root = vec![false; spans.len()];
    for &i in &order {
        match spans[i].parent_id.as_deref() {
            None => is_root[i] = true,
            Some(p) => match index.get(p) {
                Some(&parent) => children[parent].push(i),
                None => {
                    is_root[i] = true;
                    notes[i] = Note::Orphan(p);
                }
            },
        }
    }
    // What the roots reach; a span they do not reach is in (or under) a parent cycle, which is
    // cut above its earliest unreached span.
    let mut reached = vec![false; spans.len()];
    let mark = |from: usize, reached: &mut Vec<bool>, is_root: &[bool]| {
        let mut stack = vec![from];
        while let Some(i) = stack.pop() {
            if reached[i] {
                continue;
            }
            reached[i] = true;
            stack.extend(children[i].iter().copied().filter(|&c| !is_root[c]));
        }
    };
    for &i in &order {
        if is_root[i] {
            mark(i, &mut reached, &is_root);
        }
    }
    for &i in &order {
        if !reached[i] {
            is_root[i] = true;
            if let Some(p) = spans[i].parent_id.as_deref() {
                notes[i] = Note::Cycle(p);
            }
            mark(i, &mut reached, &is_root);
        }
    }
    // Each span other than a root is a child of exactly one span, and no root is drawn as a
    // child, so this walk is over a forest and ends.
    let roots: Vec<usize> = order.iter().copied().filter(|&i| is_root[i]).collect();
    let mut stack: Vec<(usize, String, bool)> = roots
        .iter()
        .enumerate()
        .rev()
        .map(|(n, &i)| (i, String::new(), n + 1 == roots.len()))
        .collect();
    while let Some((i, prefix, last)) = stack.pop() {
        out.push_str(&prefix);
        out.push_str(if last { "└─ " } else { "├─ " });
        out.push_str(&span_line(&spans[i], &notes[i]));
        out.push('\n');
        let kids: Vec<usize> = children[i]
            .iter()
            .copied()
            .filter(|&c| !is_root[c])
            .collect();
        let below = format!("{prefix}{}", if last { "   " } else { "│  " });
        for (n, &c) in kids.iter().enumerate().rev() {
            stack.push((c, below.clone(), n + 1 == kids.len()));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::duration;

    #[test]
    fn durations() {
        assert_eq!(duration(0), "0 ms");
        assert_eq!(duration(999), "999 ms");
        assert_eq!(duration(1000), "1.00 s");
        assert_eq!(duration(1524), "1.52 s");
        assert_eq!(duration(1995), "2.00 s");
        assert_eq!(duration(61_000), "61.00 s");
    }
}
