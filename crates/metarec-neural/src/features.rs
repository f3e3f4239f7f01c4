//! Inputs of the two towers, computed from the observable catalog and a [`Context`] only.
//!
//! - Item input `x_i`: the catalog's numeric features (standardised log price and popularity,
//!   the shop's embedding); the item id enters the tower separately as a learned embedding.
//! - User input `u`: the mean item input of the items clicked in the session history and of the
//!   items shown but ignored, log counts of clicks, ignores, the visit and the step, and the
//!   observable tokens (country) hashed into a few one-hot buckets.
//! - Session flags per item: shown-and-ignored, clicked; they enter the score directly so the
//!   policy can learn not to repeat what a user passes over.

use crate::error::NeuralError;
use metarec_core::{Catalog, Context, ItemId};

/// Buckets of the hashed context tokens.
pub const TOKEN_BUCKETS: usize = 16;
/// Scalar user features: log1p clicks, log1p ignores, log1p visit, step / 10.
pub const COUNT_FEATURES: usize = 4;

/// The feature schema: sizes and the catalog the model was built on.
#[derive(Debug, Clone, PartialEq)]
pub struct Features {
    item_inputs: Vec<f32>,
    item_dim: usize,
    items: usize,
    feedback: bool,
    /// The recent window: with `w > 0`, only the last `w` events of a context's history form
    /// the session the tower reads as before; older ones go to the view's long-run memory.
    memory: usize,
}

/// What the policy reads from a context: the user input and the per-item flags.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct UserView {
    /// The user tower's input.
    pub input: Vec<f32>,
    /// Items shown earlier without a click.
    pub ignored: Vec<ItemId>,
    /// Items clicked earlier.
    pub clicked: Vec<ItemId>,
    /// Items shown without a click before the recent window (empty without a memory: see
    /// [`Features::with_memory`]).
    pub older_ignored: Vec<ItemId>,
    /// Items clicked before the recent window.
    pub older_clicked: Vec<ItemId>,
    /// The items the session flags mark as shown without a click: this visit's, when the
    /// context says which events the visit showed
    /// ([`SessionState::visit_events`](metarec_core::SessionState::visit_events)), else those
    /// of the recent window (`ignored`). A visitor tires of what this visit showed, not of what
    /// an earlier visit did, so a window reaching back into earlier visits marked items they
    /// might want again.
    pub flagged_ignored: Vec<ItemId>,
    /// The items the session flags mark as clicked, by the same rule.
    pub flagged_clicked: Vec<ItemId>,
}

impl UserView {
    /// The session flags of `item`: (shown without a click, clicked).
    pub fn flags(&self, item: ItemId) -> (bool, bool) {
        (
            self.flagged_ignored.contains(&item),
            self.flagged_clicked.contains(&item),
        )
    }
}

impl Features {
    /// The schema for a catalog.
    pub fn new(catalog: &Catalog) -> Self {
        let m = catalog.features();
        let item_dim = m.dim();
        let item_inputs = m.values().to_vec();
        Features {
            item_inputs,
            item_dim,
            items: catalog.len(),
            feedback: true,
            memory: 0,
        }
    }

    /// The same schema with a recent window of `window` history events (see
    /// [`ModelConfig::memory`](crate::model::ModelConfig::memory)); 0 reads the whole history
    /// as the session.
    pub fn with_memory(mut self, window: usize) -> Self {
        self.memory = window;
        self
    }

    /// The recent window (0: none).
    pub fn memory(&self) -> usize {
        self.memory
    }

    /// The same schema, blind to feedback when `feedback` is false (see
    /// [`ModelConfig::feedback`](crate::model::ModelConfig::feedback)).
    pub fn with_feedback(mut self, feedback: bool) -> Self {
        self.feedback = feedback;
        self
    }

    /// Whether user views carry the clicks.
    pub fn feedback(&self) -> bool {
        self.feedback
    }

    /// Length of an item input.
    pub fn item_dim(&self) -> usize {
        self.item_dim
    }

    /// Length of a user input.
    pub fn user_dim(&self) -> usize {
        2 * self.item_dim + COUNT_FEATURES + TOKEN_BUCKETS
    }

    /// Number of items.
    pub fn items(&self) -> usize {
        self.items
    }

    /// All item inputs, row-major.
    pub fn item_inputs(&self) -> &[f32] {
        &self.item_inputs
    }

    /// One item's input.
    pub fn item_input(&self, item: ItemId) -> &[f32] {
        let i = item.index();
        &self.item_inputs[i * self.item_dim..(i + 1) * self.item_dim]
    }

    /// Sets the input of `item`: replaces an item's row, or appends a new item when `item` is
    /// the next id ([`Features::items`]), so that items added after training are read like
    /// the others (in candidates and in a user's history).
    pub fn set_item_input(&mut self, item: ItemId, x: &[f32]) -> Result<(), NeuralError> {
        let (i, n, f) = (item.index(), self.items, self.item_dim);
        if x.len() != f {
            return Err(NeuralError::Config(format!(
                "an item's feature row has {} values; the schema has {f}",
                x.len()
            )));
        }
        if i < n {
            self.item_inputs[i * f..(i + 1) * f].copy_from_slice(x);
        } else if i == n {
            self.item_inputs.extend_from_slice(x);
            self.items += 1;
        } else {
            return Err(NeuralError::Config(format!(
                "item {i} cannot be set: the schema has {n} items, so the next new one is {n}"
            )));
        }
        Ok(())
    }

    /// Reads a context into `out`.
    pub fn user_view(&self, context: &Context, out: &mut UserView) {
        let f = self.item_dim;
        out.input.clear();
        out.input.resize(self.user_dim(), 0.0);
        out.ignored.clear();
        out.clicked.clear();
        out.older_ignored.clear();
        out.older_clicked.clear();
        out.flagged_ignored.clear();
        out.flagged_clicked.clear();
        let history = &context.session.history;
        // Events before the recent window form the long-run memory; the window itself is read
        // exactly as a network without a memory reads its whole (short) history.
        let split = if self.memory > 0 {
            history.len().saturating_sub(self.memory)
        } else {
            0
        };
        for (k, event) in history.iter().enumerate() {
            if event.item.index() >= self.items {
                continue;
            }
            if k < split {
                if event.click && self.feedback {
                    out.older_clicked.push(event.item);
                } else {
                    out.older_ignored.push(event.item);
                }
                continue;
            }
            let offset = if event.click && self.feedback {
                out.clicked.push(event.item);
                0
            } else {
                out.ignored.push(event.item);
                f
            };
            let x = self.item_input(event.item);
            for (o, v) in out.input[offset..offset + f].iter_mut().zip(x) {
                *o += v;
            }
        }
        match context.session.visit_history() {
            Some(visit) => {
                for event in visit.iter().filter(|e| e.item.index() < self.items) {
                    if event.click && self.feedback {
                        out.flagged_clicked.push(event.item);
                    } else {
                        out.flagged_ignored.push(event.item);
                    }
                }
            }
            None => {
                out.flagged_ignored.extend_from_slice(&out.ignored);
                out.flagged_clicked.extend_from_slice(&out.clicked);
            }
        }
        for (block, n) in [(0, out.clicked.len()), (f, out.ignored.len())] {
            if n > 0 {
                let inv = 1.0 / n as f32;
                out.input[block..block + f]
                    .iter_mut()
                    .for_each(|v| *v *= inv);
            }
        }
        let c = 2 * f;
        out.input[c] = (out.clicked.len() as f32).ln_1p();
        out.input[c + 1] = (out.ignored.len() as f32).ln_1p();
        out.input[c + 2] = (context.session.session as f32).ln_1p();
        out.input[c + 3] = context.session.step as f32 / 10.0;
        for token in &context.tokens {
            let bucket = (metarec_core::stable_hash(token) % TOKEN_BUCKETS as u64) as usize;
            out.input[c + COUNT_FEATURES + bucket] = 1.0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use metarec_core::{Item, PastEvent, UserKey};

    fn catalog() -> Catalog {
        let mut c = Catalog::new(vec!["a".into(), "b".into()]);
        for (k, f) in [("x", [1.0, 0.0]), ("y", [0.0, 2.0]), ("z", [4.0, 4.0])] {
            c.push(Item {
                key: k.into(),
                features: f.to_vec(),
                ..Item::default()
            })
            .unwrap();
        }
        c
    }

    #[test]
    fn an_item_set_after_the_schema_was_built_is_read_like_the_others() {
        let mut f = Features::new(&catalog());
        f.set_item_input(ItemId(3), &[2.0, 2.0]).unwrap();
        f.set_item_input(ItemId(0), &[-1.0, 0.5]).unwrap();
        assert_eq!(f.items(), 4);
        assert_eq!(f.item_input(ItemId(3)), &[2.0, 2.0]);
        assert_eq!(f.item_input(ItemId(0)), &[-1.0, 0.5]);
        assert!(f.set_item_input(ItemId(9), &[0.0, 0.0]).is_err());
        assert!(f.set_item_input(ItemId(4), &[0.0]).is_err());
        let mut ctx = Context::for_user(UserKey::from("u"));
        ctx.session.history = vec![PastEvent {
            item: ItemId(3),
            click: true,
            purchase: false,
        }];
        let mut v = UserView::default();
        f.user_view(&ctx, &mut v);
        assert_eq!(v.clicked, vec![ItemId(3)]);
        assert_eq!(&v.input[..2], &[2.0, 2.0]);
    }

    #[test]
    fn user_input_has_the_documented_layout() {
        let f = Features::new(&catalog());
        assert_eq!((f.item_dim(), f.user_dim()), (2, 4 + 4 + 16));
        let mut ctx = Context::for_user(UserKey::from("u"));
        ctx.tokens = vec!["country=France".into()];
        ctx.session.session = 1;
        ctx.session.step = 5;
        ctx.session.history = vec![
            PastEvent {
                item: ItemId(0),
                click: true,
                purchase: false,
            },
            PastEvent {
                item: ItemId(1),
                click: true,
                purchase: true,
            },
            PastEvent {
                item: ItemId(2),
                click: false,
                purchase: false,
            },
            PastEvent {
                item: ItemId(9),
                click: true,
                purchase: false,
            },
        ];
        let mut v = UserView::default();
        f.user_view(&ctx, &mut v);
        assert_eq!(&v.input[..4], &[0.5, 1.0, 4.0, 4.0]);
        assert_eq!(v.input[4], 2f32.ln_1p());
        assert_eq!(v.input[5], 1f32.ln_1p());
        assert_eq!(v.input[6], 1f32.ln_1p());
        assert_eq!(v.input[7], 0.5);
        assert_eq!(v.input[8..].iter().sum::<f32>(), 1.0);
        assert_eq!(v.clicked, vec![ItemId(0), ItemId(1)]);
        assert_eq!(v.ignored, vec![ItemId(2)]);
    }

    /// A history event of item `i`, clicked or not, never bought.
    fn event(i: u32, click: bool) -> PastEvent {
        PastEvent {
            item: ItemId(i),
            click,
            purchase: false,
        }
    }

    #[test]
    fn a_memory_splits_the_history_at_its_recent_window() {
        let mut ctx = Context::for_user(UserKey::from("u"));
        ctx.session.history = vec![
            event(0, true),
            event(1, false),
            event(9, true),
            event(2, true),
            event(1, false),
        ];
        let plain = Features::new(&catalog());
        let remembering = Features::new(&catalog()).with_memory(2);
        assert_eq!((plain.memory(), remembering.memory()), (0, 2));
        let (mut whole, mut split) = (UserView::default(), UserView::default());
        plain.user_view(&ctx, &mut whole);
        remembering.user_view(&ctx, &mut split);
        assert!(whole.older_clicked.is_empty() && whole.older_ignored.is_empty());
        assert_eq!(whole.clicked, vec![ItemId(0), ItemId(2)]);
        // The last two events are the session, read exactly as a context holding only them;
        // the three before go to the memory (item 9 is not in the catalog and is skipped).
        assert_eq!(split.clicked, vec![ItemId(2)]);
        assert_eq!(split.ignored, vec![ItemId(1)]);
        assert_eq!(split.older_clicked, vec![ItemId(0)]);
        assert_eq!(split.older_ignored, vec![ItemId(1)]);
        let mut recent = ctx.clone();
        recent.session.history.drain(..3);
        let mut only = UserView::default();
        plain.user_view(&recent, &mut only);
        assert_eq!(split.input, only.input);
        // A history no longer than the window leaves the memory empty.
        remembering.user_view(&recent, &mut split);
        assert_eq!(split.input, only.input);
        assert!(split.older_clicked.is_empty() && split.older_ignored.is_empty());
    }

    #[test]
    fn the_session_flags_mark_this_visits_items_when_the_context_says_which() {
        let mut ctx = Context::for_user(UserKey::from("u"));
        ctx.session.history = vec![
            event(0, true),
            event(1, false),
            event(9, false),
            event(2, true),
            event(0, false),
        ];
        let remembering = Features::new(&catalog()).with_memory(2);
        let mut view = UserView::default();
        // Unknown visit: the flags are the recent window's.
        remembering.user_view(&ctx, &mut view);
        assert_eq!(
            (view.flagged_ignored.clone(), view.flagged_clicked.clone()),
            (vec![ItemId(0)], vec![ItemId(2)])
        );
        assert_eq!(view.flags(ItemId(0)), (true, false));
        assert_eq!(view.flags(ItemId(1)), (false, false));
        // A visit of four events reaches past the window (item 9 is not in the catalog); the
        // tower's inputs do not change, only the flags.
        let window_input = view.input.clone();
        ctx.session.visit_events = Some(4);
        remembering.user_view(&ctx, &mut view);
        assert_eq!(view.flagged_ignored, vec![ItemId(1), ItemId(0)]);
        assert_eq!(view.flagged_clicked, vec![ItemId(2)]);
        assert_eq!(view.input, window_input);
        // A visit that has shown nothing yet flags nothing, and a count past the history's
        // length flags all of it.
        ctx.session.visit_events = Some(0);
        remembering.user_view(&ctx, &mut view);
        assert!(view.flagged_ignored.is_empty() && view.flagged_clicked.is_empty());
        ctx.session.visit_events = Some(u32::MAX);
        remembering.user_view(&ctx, &mut view);
        assert_eq!(view.flagged_clicked, vec![ItemId(0), ItemId(2)]);
        // Blind to feedback, every flagged item reads as passed over.
        let blind = Features::new(&catalog()).with_feedback(false);
        blind.user_view(&ctx, &mut view);
        assert!(view.flagged_clicked.is_empty());
        assert_eq!(view.flagged_ignored.len(), 4);
    }
}
