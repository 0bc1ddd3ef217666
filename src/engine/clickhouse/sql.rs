//! Normalized filters and orders to ClickHouse SQL. Every value a user gave is a bound
//! parameter (`?`, escaped by the client as a literal); the SQL text holds only this module's
//! own column names, operators and numbers computed here, never user text.
//!
//! The meaning of each predicate is `query::filter`'s; this module only restates it over the
//! columns of `schema::TraceRow`, which the writer derives with the same functions the embedded
//! engine indexes with (`metadata_pairs`, `meta_text`, `str::to_lowercase`, `Money::ordered`).

use crate::query::filter::meta_text;
use crate::query::order::SortValue;
use crate::query::{Filters, Order, Position};
use crate::schema::Money;

/// One bound value.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Value {
    Str(String),
    I64(i64),
    U64(u64),
    U8(u8),
    List(Vec<String>),
}

/// SQL text with its `?` placeholders and their values, in order.
#[derive(Clone, Debug, Default)]
pub(crate) struct Sql {
    pub text: String,
    pub binds: Vec<Value>,
}

impl Sql {
    fn push(&mut self, text: &str, binds: impl IntoIterator<Item = Value>) {
        if !self.text.is_empty() {
            self.text.push_str(" AND ");
        }
        self.text.push_str(text);
        self.binds.extend(binds);
    }

    /// `start_ms` in `[from, to)`.
    pub(crate) fn window(from: i64, to: i64) -> Sql {
        Sql {
            text: "start_ms >= ? AND start_ms < ?".into(),
            binds: vec![Value::I64(from), Value::I64(to)],
        }
    }

    /// `self AND other`.
    pub(crate) fn and(&mut self, other: Sql) {
        self.push(&other.text, other.binds);
    }

    /// Binds every value to `q`, in order.
    pub(crate) fn bind(&self, mut q: clickhouse::query::Query) -> clickhouse::query::Query {
        for b in &self.binds {
            q = match b {
                Value::Str(s) => q.bind(s.as_str()),
                Value::I64(v) => q.bind(*v),
                Value::U64(v) => q.bind(*v),
                Value::U8(v) => q.bind(*v),
                Value::List(l) => q.bind(l.as_slice()),
            };
        }
        q
    }
}

/// `text` as a `LIKE` pattern matching itself only: `\`, `%` and `_` escaped by `\`.
fn like_escaped(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if matches!(c, '\\' | '%' | '_') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// The exact cost as the `cost_key` column holds it.
pub(crate) fn cost_key(m: &Money) -> String {
    let (int, frac) = m.ordered();
    cost_key_of(int, frac)
}

fn cost_key_of(int: u128, frac: u128) -> String {
    format!("{int:032x}{frac:032x}")
}

/// The `WHERE` conditions of `f` in `project`, live rows only.
pub(crate) fn filters(project: &str, f: &Filters) -> Sql {
    let mut w = Sql::default();
    w.push(
        "project = ? AND deleted = 0",
        [Value::Str(project.to_string())],
    );
    if let Some(st) = f.status {
        w.push("status = ?", [Value::U8(st)]);
    }
    if let Some(n) = &f.name {
        // `LIKE '%…%'` rather than `position`: the same substring test on every version, and
        // the one a server's 3-gram skip index serves.
        w.push(
            "name_lower LIKE ?",
            [Value::Str(format!("%{}%", like_escaped(n)))],
        );
    }
    if !f.tags.is_empty() {
        w.push("hasAll(tags, ?)", [Value::List(f.tags.clone())]);
    }
    if !f.any_tags.is_empty() {
        w.push("hasAny(tags, ?)", [Value::List(f.any_tags.clone())]);
    }
    if !f.exclude_tags.is_empty() {
        w.push("NOT hasAny(tags, ?)", [Value::List(f.exclude_tags.clone())]);
    }
    if let Some(u) = &f.user_id {
        w.push("user_id = ?", [Value::Str(u.clone())]);
    }
    if let Some(s) = &f.session_id {
        w.push("session_id = ?", [Value::Str(s.clone())]);
    }
    for (k, v) in &f.metadata {
        w.push("has(meta, ?)", [Value::Str(meta_text(k, v))]);
    }
    let (lo, hi) = f.window();
    if lo != i64::MIN {
        w.push("start_ms >= ?", [Value::I64(lo)]);
    }
    if hi != i64::MAX {
        w.push("start_ms < ?", [Value::I64(hi)]);
    }
    if let Some((lo, hi)) = f.duration_ms {
        w.push(
            "running = 0 AND duration_ms >= ? AND duration_ms <= ?",
            [Value::U64(lo), Value::U64(hi)],
        );
    }
    if let Some((lo, hi)) = &f.cost {
        if let Some(lo) = lo {
            w.push("cost_key >= ?", [Value::Str(cost_key(lo))]);
        }
        if let Some(hi) = hi {
            w.push("cost_key <= ?", [Value::Str(cost_key(hi))]);
        }
    }
    if let Some((lo, hi)) = f.tokens {
        w.push(
            "tokens >= ? AND tokens <= ?",
            [Value::U64(lo), Value::U64(hi)],
        );
    }
    let sc = &f.spans;
    if !sc.is_empty() {
        let mut conds = Vec::new();
        let mut binds = Vec::new();
        if let Some(n) = &sc.name {
            conds.push("position(span_n, ?) > 0");
            binds.push(Value::Str(n.clone()));
        }
        if let Some(m) = &sc.model {
            conds.push("span_m = ?");
            binds.push(Value::Str(span_model(Some(m))));
        }
        if let Some(k) = sc.kind {
            conds.push("span_k = ?");
            binds.push(Value::U8(k));
        }
        if let Some(s) = sc.status {
            conds.push("span_s = ?");
            binds.push(Value::U8(s));
        }
        w.push(
            &format!(
                "arrayExists((span_n, span_m, span_k, span_s) -> {}, span_names, span_models, span_kinds, \
                 span_statuses)",
                conds.join(" AND ")
            ),
            binds,
        );
    }
    w
}

/// A span's model as the `span_models` column holds it: `=` and the model, or empty for none
/// (so that no model, an empty one included, is mistaken for another).
pub(crate) fn span_model(m: Option<&String>) -> String {
    m.map_or_else(String::new, |m| format!("={m}"))
}

/// The order's key as (finished flag, key expression): the flag puts running traces after every
/// finished one under `durationMs`, and is 1 for every trace under the other keyed orders.
pub(crate) fn key_columns(order: Order) -> Option<(&'static str, &'static str)> {
    use crate::query::order::SortField;
    match order.field() {
        SortField::StartTime => None,
        SortField::Duration => Some(("(1 - running)", "duration_ms")),
        SortField::Cost => Some(("1", "cost_key")),
        SortField::Tokens => Some(("1", "tokens")),
    }
}

/// `ORDER BY` of an order: its key, then `startTime` and `id` descending (`startTime.asc`: both
/// ascending), exactly `Order::cmp`. A constant never appears in it: current ClickHouse reads
/// `ORDER BY 1` as the first column (`enable_positional_arguments`), 18.16 as a constant.
pub(crate) fn order_by(order: Order) -> String {
    let dir = if order.descending() { "DESC" } else { "ASC" };
    match key_columns(order) {
        None => format!("start_ms {dir}, id {dir}"),
        Some(("1", key)) => format!("{key} {dir}, start_ms DESC, id DESC"),
        Some((fin, key)) => format!("{fin} DESC, {key} {dir}, start_ms DESC, id DESC"),
    }
}

/// The condition "strictly after `pos` in `order`" (keyset pagination).
pub(crate) fn after(order: Order, pos: &Position) -> Sql {
    let mut w = Sql::default();
    let start = Value::I64(pos.start_ms);
    let id = Value::Str(pos.id.clone());
    match key_columns(order) {
        None => {
            let op = if order.descending() { "<" } else { ">" };
            w.push(
                &format!("(start_ms {op} ? OR (start_ms = ? AND id {op} ?))"),
                [start.clone(), start, id],
            );
        }
        Some((fin, key)) => {
            let (f, k) = match pos.value {
                SortValue::Duration(Some(d)) => (1, Value::U64(d)),
                SortValue::Duration(None) => (0, Value::U64(0)),
                SortValue::Cost(int, frac) => (1, Value::Str(cost_key_of(int, frac))),
                SortValue::Tokens(t) => (1, Value::U64(t)),
                SortValue::None => (1, Value::U64(0)),
            };
            let op = if order.descending() { "<" } else { ">" };
            w.push(
                &format!(
                    "({fin} < ? OR ({fin} = ? AND ({key} {op} ? OR ({key} = ? AND \
                     (start_ms < ? OR (start_ms = ? AND id < ?))))))"
                ),
                [
                    Value::U8(f),
                    Value::U8(f),
                    k.clone(),
                    k,
                    start.clone(),
                    start,
                    id,
                ],
            );
        }
    }
    w
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal::Decimal;
    use std::str::FromStr;

    #[test]
    fn cost_keys_compare_as_the_amounts() {
        let k = |s: &str| cost_key(&Money::from_decimal(Decimal::from_str(s).unwrap()));
        let amounts = [
            "0",
            "0.000000001",
            "0.1",
            "0.10000001",
            "1",
            "9.99",
            "10",
            "123456",
        ];
        for w in amounts.windows(2) {
            assert!(k(w[0]) < k(w[1]), "{} < {}", w[0], w[1]);
        }
        assert_eq!(k("2.50"), k("2.5"));
        assert_eq!(k("1").len(), 64);
    }

    #[test]
    fn no_order_by_term_is_a_constant() {
        // `ORDER BY 1` sorts by the first column on current ClickHouse.
        for o in Order::ALL {
            let by = order_by(o);
            for term in by.split(", ") {
                let expr = term.trim_end_matches(" DESC").trim_end_matches(" ASC");
                assert!(expr.parse::<i64>().is_err(), "{o:?}: {by}");
            }
        }
    }

    #[test]
    fn user_text_is_never_in_the_sql() {
        let f = Filters {
            name: Some("x' OR 1=1 --".into()),
            tags: vec!["a'b".into()],
            metadata: vec![("k".into(), "v\\'".into())],
            ..Filters::default()
        };
        let w = filters("p'; DROP TABLE traces", &f);
        assert!(!w.text.contains('\''), "{}", w.text);
        assert_eq!(w.text.matches('?').count(), w.binds.len());
        let a = after(
            Order::TotalCostDesc,
            &Position {
                value: SortValue::Cost(1, 2),
                start_ms: 5,
                id: "x'".into(),
            },
        );
        assert_eq!(a.text.matches('?').count(), a.binds.len());
        assert!(!a.text.contains('\''));
    }

    #[test]
    fn a_like_pattern_matches_only_its_text() {
        assert_eq!(like_escaped("plain"), "plain");
        assert_eq!(like_escaped("50%_off\\x"), "50\\%\\_off\\\\x");
        assert_eq!(like_escaped("naïve"), "naïve");
    }
}
