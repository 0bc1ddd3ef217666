//! The order of a list query, and a position in it: the one home of every sort order.
//!
//! Every place that compares two traces for a page (the executors' top-k, the merge with
//! pending traces, the pending list, the cursor) asks [`Order`]. An order is its key, then
//! `startTime` descending, then `id` descending, whatever the key's direction (`startTime.asc`
//! alone breaks ties by `id` ascending), so every order is total and keyset pagination exact. A
//! running trace (no `durationMs`) sorts after every finished one in both directions of
//! `durationMs`. See ARCHITECTURE.md, "How to add an order".

use crate::schema::Money;
use serde::{Deserialize, Serialize};
use std::cmp::Ordering;

/// The sort order of a list query (`orderBy`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Order {
    /// `startTime.desc`: newest first, then `id` descending (byte order). The default.
    #[default]
    StartTimeDesc,
    /// `startTime.asc`: oldest first, then `id` ascending.
    StartTimeAsc,
    /// `durationMs.desc`: longest first; running traces last.
    DurationDesc,
    /// `durationMs.asc`: shortest first; running traces last.
    DurationAsc,
    /// `totalCost.desc`: most expensive first.
    TotalCostDesc,
    /// `totalCost.asc`: cheapest first.
    TotalCostAsc,
    /// `totalTokens.desc`: most tokens first.
    TotalTokensDesc,
    /// `totalTokens.asc`: fewest tokens first.
    TotalTokensAsc,
}

/// What an order sorts by.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum SortField {
    StartTime,
    Duration,
    Cost,
    Tokens,
}

impl Order {
    /// Every order, in the order the API documents them.
    pub const ALL: [Order; 8] = [
        Order::StartTimeDesc,
        Order::StartTimeAsc,
        Order::DurationDesc,
        Order::DurationAsc,
        Order::TotalCostDesc,
        Order::TotalCostAsc,
        Order::TotalTokensDesc,
        Order::TotalTokensAsc,
    ];

    /// The `orderBy` value of this order.
    pub fn as_str(self) -> &'static str {
        match self {
            Order::StartTimeDesc => "startTime.desc",
            Order::StartTimeAsc => "startTime.asc",
            Order::DurationDesc => "durationMs.desc",
            Order::DurationAsc => "durationMs.asc",
            Order::TotalCostDesc => "totalCost.desc",
            Order::TotalCostAsc => "totalCost.asc",
            Order::TotalTokensDesc => "totalTokens.desc",
            Order::TotalTokensAsc => "totalTokens.asc",
        }
    }

    /// The order an `orderBy` value names (exact, case-sensitive).
    pub fn parse(value: &str) -> Option<Order> {
        Order::ALL.into_iter().find(|o| o.as_str() == value)
    }

    pub(crate) fn field(self) -> SortField {
        match self {
            Order::StartTimeDesc | Order::StartTimeAsc => SortField::StartTime,
            Order::DurationDesc | Order::DurationAsc => SortField::Duration,
            Order::TotalCostDesc | Order::TotalCostAsc => SortField::Cost,
            Order::TotalTokensDesc | Order::TotalTokensAsc => SortField::Tokens,
        }
    }

    pub(crate) fn descending(self) -> bool {
        matches!(
            self,
            Order::StartTimeDesc
                | Order::DurationDesc
                | Order::TotalCostDesc
                | Order::TotalTokensDesc
        )
    }

    /// How a trace compares with another in this order: `Less` when `a` comes first.
    pub(crate) fn cmp(self, a: Key<'_>, b: Key<'_>) -> Ordering {
        let newest_first = (b.start_ms, b.id).cmp(&(a.start_ms, a.id));
        match self.field() {
            SortField::StartTime if self.descending() => newest_first,
            SortField::StartTime => (a.start_ms, a.id).cmp(&(b.start_ms, b.id)),
            _ => {
                let by_key = match (a.value.rank(), b.value.rank()) {
                    // A running trace (no value) comes after every finished one.
                    (None, None) => Ordering::Equal,
                    (None, Some(_)) => Ordering::Greater,
                    (Some(_), None) => Ordering::Less,
                    (Some(x), Some(y)) if self.descending() => y.cmp(&x),
                    (Some(x), Some(y)) => x.cmp(&y),
                };
                by_key.then(newest_first)
            }
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

    /// The sort value of a trace under this order, from the fields the key is made of.
    pub(crate) fn value_of(
        self,
        start_ms: i64,
        end_ms: Option<i64>,
        total_cost: &Money,
        total_tokens: u64,
    ) -> SortValue {
        match self.field() {
            SortField::StartTime => SortValue::None,
            SortField::Duration => SortValue::Duration(
                end_ms.map(|end| u64::try_from(end.saturating_sub(start_ms)).unwrap_or(0)),
            ),
            SortField::Cost => {
                let (int, frac) = total_cost.ordered();
                SortValue::Cost(int, frac)
            }
            SortField::Tokens => SortValue::Tokens(total_tokens),
        }
    }
}

/// A trace's value of an order's key, comparable within one order. Cost is exact: its integer
/// part and its fraction scaled to 28 digits, so that comparing the pair compares the decimals.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub(crate) enum SortValue {
    /// The `startTime` orders: the key is the start time itself.
    None,
    /// `durationMs`; None for a running trace.
    Duration(Option<u64>),
    Cost(u128, u128),
    Tokens(u64),
}

impl SortValue {
    /// The value as one comparable number pair; None for a running trace's duration.
    fn rank(self) -> Option<(u128, u128)> {
        match self {
            SortValue::None => Some((0, 0)),
            SortValue::Duration(d) => d.map(|d| (d as u128, 0)),
            SortValue::Cost(i, f) => Some((i, f)),
            SortValue::Tokens(t) => Some((t as u128, 0)),
        }
    }
}

/// The sort key of one trace under an order, borrowed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Key<'a> {
    pub value: SortValue,
    pub start_ms: i64,
    pub id: &'a str,
}

/// Where a walk stands: the sort key of the last trace a page returned. A cursor carries it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Position {
    pub value: SortValue,
    pub start_ms: i64,
    pub id: String,
}

impl Position {
    pub(crate) fn key(&self) -> Key<'_> {
        Key {
            value: self.value,
            start_ms: self.start_ms,
            id: &self.id,
        }
    }
    pub(crate) fn of(k: Key<'_>) -> Position {
        Position {
            value: k.value,
            start_ms: k.start_ms,
            id: k.id.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn k(start_ms: i64, id: &str) -> Key<'_> {
        Key {
            value: SortValue::None,
            start_ms,
            id,
        }
    }

    #[test]
    fn newest_first_then_id_descending() {
        let o = Order::StartTimeDesc;
        assert_eq!(o.cmp(k(2, "a"), k(1, "z")), Ordering::Less);
        assert_eq!(o.cmp(k(1, "b"), k(1, "a")), Ordering::Less);
        assert_eq!(o.cmp(k(1, "a"), k(1, "a")), Ordering::Equal);
        let pos = Position::of(k(1, "b"));
        assert!(o.is_after(k(1, "a"), Some(&pos)));
        assert!(!o.is_after(k(1, "b"), Some(&pos)));
        assert!(!o.is_after(k(2, "a"), Some(&pos)));
        assert!(o.is_after(k(2, "a"), None));
    }

    #[test]
    fn oldest_first_then_id_ascending() {
        let o = Order::StartTimeAsc;
        assert_eq!(o.cmp(k(1, "z"), k(2, "a")), Ordering::Less);
        assert_eq!(o.cmp(k(1, "a"), k(1, "b")), Ordering::Less);
    }

    #[test]
    fn keyed_orders_break_ties_newest_first_and_put_running_traces_last() {
        let d = |v: Option<u64>, start_ms, id| Key {
            value: SortValue::Duration(v),
            start_ms,
            id,
        };
        for o in [Order::DurationDesc, Order::DurationAsc] {
            // Ties: startTime descending, then id descending, in both directions.
            assert_eq!(
                o.cmp(d(Some(5), 2, "a"), d(Some(5), 1, "z")),
                Ordering::Less
            );
            assert_eq!(
                o.cmp(d(Some(5), 1, "b"), d(Some(5), 1, "a")),
                Ordering::Less
            );
            // Running traces after every finished one.
            assert_eq!(o.cmp(d(Some(0), 1, "a"), d(None, 9, "z")), Ordering::Less);
            assert_eq!(o.cmp(d(Some(999), 1, "a"), d(None, 9, "z")), Ordering::Less);
            assert_eq!(o.cmp(d(None, 2, "a"), d(None, 1, "z")), Ordering::Less);
        }
        assert_eq!(
            Order::DurationDesc.cmp(d(Some(9), 1, "a"), d(Some(5), 2, "a")),
            Ordering::Less
        );
        assert_eq!(
            Order::DurationAsc.cmp(d(Some(5), 1, "a"), d(Some(9), 2, "a")),
            Ordering::Less
        );
    }

    #[test]
    fn every_order_value_round_trips() {
        for o in Order::ALL {
            assert_eq!(Order::parse(o.as_str()), Some(o));
        }
        assert_eq!(Order::parse("totalcost.desc"), None);
        assert_eq!(Order::parse("startTime"), None);
    }
}
