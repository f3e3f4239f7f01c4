//! The candidate set of one decision: [`Candidates`] resolves a context's candidate list against
//! the catalog, reusing its buffers from call to call.
//!
//! A context may list no candidates (meaning the whole catalog), unknown items (a stale client)
//! or the same item twice. A slate built from such a list would fail the [`metarec_core::Slate`]
//! checks, so every policy resolves candidates here: unknown ids and repeats are dropped, and the
//! policy never sees them.

use metarec_core::{Context, ItemId, SlateChoice};

/// Reusable buffers that turn a context into the list of items a policy may show.
#[derive(Debug, Clone)]
pub(crate) struct Candidates {
    ids: Vec<ItemId>,
    seen: Vec<bool>,
    catalog_len: usize,
}

impl Candidates {
    /// Buffers for a catalog of `catalog_len` items.
    pub(crate) fn new(catalog_len: usize) -> Self {
        Candidates {
            ids: Vec::with_capacity(catalog_len),
            seen: vec![false; catalog_len],
            catalog_len,
        }
    }

    /// The distinct known candidates of `context` in the order listed, or every catalog item when
    /// the context lists none.
    pub(crate) fn resolve(&mut self, context: &Context) -> &[ItemId] {
        self.ids.clear();
        if context.candidates.is_empty() {
            self.ids.extend((0..self.catalog_len as u32).map(ItemId));
            return &self.ids;
        }
        for &id in &context.candidates {
            if let Some(seen) = self.seen.get_mut(id.index()) {
                if !*seen {
                    *seen = true;
                    self.ids.push(id);
                }
            }
        }
        // The marks are cleared through the kept ids, so the next call starts clean without
        // touching the whole catalog.
        for id in &self.ids {
            self.seen[id.index()] = false;
        }
        &self.ids
    }
}

/// The choice for a decision with nothing to show (no valid candidates or `k = 0`). Runners turn
/// it into a typed "empty slate" error rather than a panic.
pub(crate) fn empty_choice() -> SlateChoice {
    SlateChoice {
        items: Vec::new(),
        propensities: Vec::new(),
        slate_propensity: Some(1.0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use metarec_core::UserKey;

    #[test]
    fn drops_unknown_and_repeated_candidates_and_defaults_to_the_catalog() {
        let mut c = Candidates::new(4);
        let mut ctx = Context::for_user(UserKey::from("u"));
        assert_eq!(
            c.resolve(&ctx),
            &[ItemId(0), ItemId(1), ItemId(2), ItemId(3)]
        );
        ctx.candidates = vec![ItemId(2), ItemId(9), ItemId(2), ItemId(0)];
        assert_eq!(c.resolve(&ctx), &[ItemId(2), ItemId(0)]);
        // The marks of the previous call must not leak into this one.
        ctx.candidates = vec![ItemId(0), ItemId(2)];
        assert_eq!(c.resolve(&ctx), &[ItemId(0), ItemId(2)]);
    }
}
