//! A trace's derived sums: `totalCost` (exact decimal, never floating point), `totalTokens`,
//! `spanCount` and `scoreCount`. The one computation of them, used by the writer (children
//! upserted one by one), the write buffer (a new trace's children) and `verify` (recomputed
//! from the stored children).

use crate::error::Result;
use crate::schema::{Money, SpanRecord, TraceBody};
use rust_decimal::Decimal;

/// Running sums of a trace's children.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Totals {
    cost: Decimal,
    tokens: u64,
    spans: u32,
    scores: u32,
}

fn span_cost(s: &SpanRecord) -> Result<Decimal> {
    Ok(s.cost
        .map(Money::to_decimal)
        .transpose()?
        .unwrap_or_default())
}

impl Totals {
    /// The sums a stored body carries.
    pub(crate) fn of_body(b: &TraceBody) -> Result<Totals> {
        Ok(Totals {
            cost: b.total_cost.to_decimal()?,
            tokens: b.total_tokens,
            spans: b.span_count,
            scores: b.score_count,
        })
    }

    /// The sums over a set of distinct children. The outer error is a corrupt record; the inner
    /// one names the sum that overflows.
    pub(crate) fn of_children<'a>(
        spans: impl IntoIterator<Item = &'a SpanRecord>,
        scores: usize,
    ) -> Result<std::result::Result<Totals, &'static str>> {
        let mut t = Totals::default();
        for s in spans {
            if let Err(m) = t.put_span(None, s)? {
                return Ok(Err(m));
            }
        }
        for _ in 0..scores {
            t.put_score(false);
        }
        Ok(Ok(t))
    }

    /// Accounts for `new` replacing `old` (None: an added span). The outer error is a corrupt
    /// stored record; the inner one is the message for a sum that overflows.
    pub(crate) fn put_span(
        &mut self,
        old: Option<&SpanRecord>,
        new: &SpanRecord,
    ) -> Result<std::result::Result<(), &'static str>> {
        match old {
            Some(o) => {
                self.cost -= span_cost(o)?;
                self.tokens = self.tokens.saturating_sub(o.total_tokens);
            }
            None => self.spans = self.spans.saturating_add(1),
        }
        let Some(cost) = self.cost.checked_add(span_cost(new)?) else {
            return Ok(Err("totalCost overflows"));
        };
        let Some(tokens) = self.tokens.checked_add(new.total_tokens) else {
            return Ok(Err("totalTokens overflows"));
        };
        self.cost = cost;
        self.tokens = tokens;
        Ok(Ok(()))
    }

    /// Accounts for a score written: `replaced` when one with its id existed.
    pub(crate) fn put_score(&mut self, replaced: bool) {
        if !replaced {
            self.scores = self.scores.saturating_add(1);
        }
    }

    /// Stores the sums in a body.
    pub(crate) fn write_to(&self, b: &mut TraceBody) {
        b.total_cost = Money::from_decimal(self.cost);
        b.total_tokens = self.tokens;
        b.span_count = self.spans;
        b.score_count = self.scores;
    }
}
