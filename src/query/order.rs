//! The order of a list query, and a position in it: the one home of "newest first".
//!
//! Every place that compares two traces for a page (the executors' top-k, the merge with
//! pending traces, the pending list, the cursor) asks `Order`. Only the default order exists
//! today; another order adds a variant here, its sort key to [`Key`], and an executor that walks
//! it (see ARCHITECTURE.md, "How to add an order").

use serde::{Deserialize, Serialize};
use std::cmp::Ordering;

/// The sort order of a walk. The order is total (the id breaks ties), so keyset pagination is
/// exact.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub(crate) enum Order {
    /// `startTime` descending, then `id` descending (byte order).
    #[default]
    StartTimeDesc,
}

impl Order {
    /// How a trace compares with another in this order: `Less` when `a` comes first.
    pub(crate) fn cmp(self, a: Key<'_>, b: Key<'_>) -> Ordering {
        match self {
            Order::StartTimeDesc => (b.start_ms, b.id).cmp(&(a.start_ms, a.id)),
        }
    }

    /// True when `k` comes strictly after `pos`, so that a continuation from `pos` shows it.
    pub(crate) fn is_after(self, k: Key<'_>, pos: Option<&Position>) -> bool {
        pos.is_none_or(|p| self.cmp(k, p.key()) == Ordering::Greater)
    }

    /// Sorts `items` into this order by their key.
    pub(crate) fn sort<T>(self, items: &mut [T], key: impl Fn(&T) -> Key<'_>) {
        items.sort_by(|a, b| self.cmp(key(a), key(b)));
    }
}

/// The sort key of one trace under an order, borrowed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Key<'a> {
    pub start_ms: i64,
    pub id: &'a str,
}

/// Where a walk stands: the sort key of the last trace a page returned. A cursor carries it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Position {
    pub start_ms: i64,
    pub id: String,
}

impl Position {
    pub(crate) fn key(&self) -> Key<'_> {
        Key {
            start_ms: self.start_ms,
            id: &self.id,
        }
    }
    pub(crate) fn of(k: Key<'_>) -> Position {
        Position {
            start_ms: k.start_ms,
            id: k.id.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newest_first_then_id_descending() {
        let o = Order::StartTimeDesc;
        let k = |start_ms, id| Key { start_ms, id };
        assert_eq!(o.cmp(k(2, "a"), k(1, "z")), Ordering::Less);
        assert_eq!(o.cmp(k(1, "b"), k(1, "a")), Ordering::Less);
        assert_eq!(o.cmp(k(1, "a"), k(1, "a")), Ordering::Equal);
        let pos = Position::of(k(1, "b"));
        assert!(o.is_after(k(1, "a"), Some(&pos)));
        assert!(!o.is_after(k(1, "b"), Some(&pos)));
        assert!(!o.is_after(k(2, "a"), Some(&pos)));
        assert!(o.is_after(k(2, "a"), None));
    }
}
