//! Item-to-item collaborative filtering: [`ItemKnn`] recommends the items most similar to what
//! the user clicked or bought in the session history.
//!
//! Similarity is the cosine between items' embedding rows (the catalog columns named
//! `embedding_*`, or every numeric column when there are none). The score of an item is
//!
//! ```text
//! score(i) = sum over recent history events e of w_e cos(i, item_e)  (w = 1 click, 2 purchase)
//!          + popularity_weight * log_popularity_z(i)               (cold users get best sellers)
//!          - repeat_penalty * [i was in the last slate]
//! ```
//!
//! An item's similarity to itself is left out of its own score, so a clicked item recommends its
//! neighbours rather than itself. The history read is the recent one
//! ([`recent_history`](crate::features::recent_history)). The last slate is taken to be the last `k` history entries
//! (environments append one entry per shown position), which keeps the policy free of per-user
//! state. Because cosine is a dot product of unit vectors, the sum over the history collapses into
//! one query vector, so a decision costs `O(n e)` for `n` candidates and `e` embedding columns,
//! and no similarity matrix is stored. The slate is epsilon-greedy on these scores; the policy
//! does not learn from `observe` beyond what the history carries.

use crate::candidates::{Candidates, empty_choice};
use crate::error::{LearnError, check_range};
use crate::features::{check_finite_features, embedding_columns, popularity_prior};
use metarec_core::explore::epsilon_greedy;
use metarec_core::linalg::{axpy, dot};
use metarec_core::{Catalog, Context, ItemId, Policy, Rng, SlateChoice};
use serde::{Deserialize, Serialize};

/// Settings of [`ItemKnn`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ItemKnnConfig {
    /// Probability of a uniformly random slate. In `[0, 1]`.
    pub epsilon: f64,
    /// Weight of a clicked (not bought) history item. Finite and non-negative.
    pub click_weight: f64,
    /// Weight of a bought history item. Finite and non-negative.
    pub purchase_weight: f64,
    /// Weight of the catalog's popularity prior. Finite and non-negative.
    pub popularity_weight: f64,
    /// Subtracted from the score of every item of the last slate, so that the user is not shown
    /// the same items again straight away. Finite and non-negative.
    pub repeat_penalty: f64,
}

impl Default for ItemKnnConfig {
    fn default() -> Self {
        ItemKnnConfig {
            epsilon: 0.05,
            click_weight: 1.0,
            purchase_weight: 2.0,
            popularity_weight: 0.01,
            repeat_penalty: 1.0,
        }
    }
}

impl ItemKnnConfig {
    fn validate(&self) -> Result<(), LearnError> {
        check_range("epsilon", self.epsilon, 0.0, 1.0, "[0, 1]")?;
        let non_negative = "finite and non-negative";
        check_range(
            "click_weight",
            self.click_weight,
            0.0,
            f64::MAX,
            non_negative,
        )?;
        check_range(
            "purchase_weight",
            self.purchase_weight,
            0.0,
            f64::MAX,
            non_negative,
        )?;
        check_range(
            "popularity_weight",
            self.popularity_weight,
            0.0,
            f64::MAX,
            non_negative,
        )?;
        check_range(
            "repeat_penalty",
            self.repeat_penalty,
            0.0,
            f64::MAX,
            non_negative,
        )
    }
}

/// Item-to-item cosine similarity to the session history; see the module documentation.
#[derive(Debug, Clone)]
pub struct ItemKnn {
    config: ItemKnnConfig,
    /// Embedding columns per item.
    dim: usize,
    /// Unit-length embedding rows (zero rows stay zero), row-major.
    unit: Vec<f64>,
    prior: Vec<f64>,
    candidates: Candidates,
    /// The weighted sum of the history items' unit rows.
    query: Vec<f64>,
    /// Per item, the score correction of the current decision (self-similarity and repeat
    /// penalty); zero outside a decision.
    adjust: Vec<f64>,
    /// The items whose `adjust` entry the current decision changed.
    touched: Vec<usize>,
    scores: Vec<f64>,
}

impl ItemKnn {
    /// An item-kNN policy over `catalog`; fails on an out-of-range setting or a non-finite
    /// feature.
    pub fn new(catalog: &Catalog, config: ItemKnnConfig) -> Result<Self, LearnError> {
        config.validate()?;
        check_finite_features(catalog)?;
        let features = catalog.features();
        let mut columns = embedding_columns(catalog);
        if columns.is_empty() {
            columns = (0..features.dim()).collect();
        }
        let dim = columns.len();
        let n = catalog.len();
        let mut unit = Vec::with_capacity(n * dim);
        for i in 0..n {
            let row = features.row(i);
            let start = unit.len();
            unit.extend(columns.iter().map(|&c| f64::from(row[c])));
            let norm = dot(&unit[start..], &unit[start..]).sqrt();
            if norm > 0.0 {
                unit[start..].iter_mut().for_each(|x| *x /= norm);
            }
        }
        Ok(ItemKnn {
            config,
            dim,
            unit,
            prior: popularity_prior(catalog),
            candidates: Candidates::new(n),
            query: vec![0.0; dim],
            adjust: vec![0.0; n],
            touched: Vec::new(),
            scores: Vec::new(),
        })
    }

    /// The cosine similarity of two items (0 when either has a zero embedding).
    ///
    /// # Panics
    /// When either item is not in the catalog.
    pub fn similarity(&self, a: ItemId, b: ItemId) -> f64 {
        dot(self.row(a.index()), self.row(b.index()))
    }

    fn row(&self, i: usize) -> &[f64] {
        &self.unit[i * self.dim..(i + 1) * self.dim]
    }
}

impl Policy for ItemKnn {
    fn name(&self) -> &str {
        "itemknn"
    }

    fn decide(&mut self, context: &Context, k: usize, rng: &mut Rng) -> SlateChoice {
        let n = self.adjust.len();
        self.query.iter_mut().for_each(|q| *q = 0.0);
        self.touched.clear();
        let history = crate::features::recent_history(context);
        for event in history {
            let i = event.item.index();
            let w = if event.purchase {
                self.config.purchase_weight
            } else if event.click {
                self.config.click_weight
            } else {
                0.0
            };
            if w == 0.0 || i >= n {
                continue;
            }
            let row = &self.unit[i * self.dim..(i + 1) * self.dim];
            axpy(w, row, &mut self.query);
            // The item's own term in the query is w |u_i|^2; taking it back out leaves only its
            // similarity to the other history items.
            self.adjust[i] -= w * dot(row, row);
            self.touched.push(i);
        }
        for event in &history[history.len().saturating_sub(k)..] {
            let i = event.item.index();
            if i < n {
                self.adjust[i] -= self.config.repeat_penalty;
                self.touched.push(i);
            }
        }
        let candidates = self.candidates.resolve(context);
        self.scores.clear();
        for c in candidates {
            let i = c.index();
            let row = &self.unit[i * self.dim..(i + 1) * self.dim];
            self.scores.push(
                dot(row, &self.query)
                    + self.config.popularity_weight * self.prior[i]
                    + self.adjust[i],
            );
        }
        for &i in &self.touched {
            self.adjust[i] = 0.0;
        }
        if candidates.is_empty() || k == 0 {
            return empty_choice();
        }
        epsilon_greedy(candidates, &self.scores, k, self.config.epsilon, rng)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use metarec_core::{Item, PastEvent, UserKey, rng_for};

    /// Six items in two tight clusters around the axes of a 2-d embedding, with popularity
    /// highest for item 5.
    fn clustered() -> Catalog {
        let names = [
            "log_price_z",
            "log_popularity_z",
            "embedding_0",
            "embedding_1",
        ];
        let rows = [
            [0.0, 0.0, 1.0, 0.0],
            [0.0, 0.1, 0.9, 0.1],
            [0.0, 0.2, 0.8, 0.3],
            [0.0, 0.0, 0.0, 1.0],
            [0.0, 0.3, 0.1, 0.9],
            [0.0, 2.0, -1.0, -1.0],
        ];
        let mut c = Catalog::new(names.iter().map(|s| s.to_string()).collect());
        for (k, f) in rows.iter().enumerate() {
            c.push(Item {
                key: format!("i{k}"),
                features: f.to_vec(),
                ..Item::default()
            })
            .unwrap();
        }
        c
    }

    fn greedy_knn() -> ItemKnn {
        let config = ItemKnnConfig {
            epsilon: 0.0,
            ..ItemKnnConfig::default()
        };
        ItemKnn::new(&clustered(), config).unwrap()
    }

    fn event(item: u32, click: bool, purchase: bool) -> PastEvent {
        PastEvent {
            item: ItemId(item),
            click,
            purchase,
        }
    }

    #[test]
    fn ranks_the_neighbours_of_a_clicked_item_first() {
        let mut p = greedy_knn();
        let mut ctx = Context::for_user(UserKey::from("u"));
        // Item 0 was clicked two slates ago (so it is not penalised as a repeat, and not
        // recommended by its similarity to itself); the last slate showed items 3 and 5.
        ctx.session.history = vec![
            event(0, true, false),
            event(4, false, false),
            event(3, false, false),
            event(5, false, false),
        ];
        let choice = p.decide(&ctx, 2, &mut rng_for(0, 0));
        assert_eq!(choice.items, vec![ItemId(1), ItemId(2)]);
        assert_eq!(choice.propensities, vec![1.0, 1.0]);
        assert!(p.similarity(ItemId(0), ItemId(1)) > p.similarity(ItemId(0), ItemId(2)));
        // A purchase of item 3 outweighs the click on item 0: its neighbour 4 comes first.
        ctx.session.history.push(event(3, true, true));
        ctx.session.history.push(event(1, false, false));
        let choice = p.decide(&ctx, 2, &mut rng_for(0, 0));
        assert_eq!(choice.items[0], ItemId(4));
    }

    #[test]
    fn penalises_the_last_slate_and_serves_cold_users_by_popularity() {
        let mut p = greedy_knn();
        let mut ctx = Context::for_user(UserKey::from("u"));
        // No history: the popularity prior decides (item 5, then item 4).
        let choice = p.decide(&ctx, 2, &mut rng_for(0, 0));
        assert_eq!(choice.items, vec![ItemId(5), ItemId(4)]);
        // Items 5 and 4 were the last slate (no clicks): they drop to the bottom.
        ctx.session.history = vec![event(5, false, false), event(4, false, false)];
        let choice = p.decide(&ctx, 2, &mut rng_for(0, 0));
        assert_eq!(choice.items, vec![ItemId(2), ItemId(1)]);
        // The scratch corrections were cleared: the cold user's answer has not changed.
        ctx.session.history.clear();
        assert_eq!(
            p.decide(&ctx, 2, &mut rng_for(0, 0)).items,
            vec![ItemId(5), ItemId(4)]
        );
    }

    #[test]
    fn falls_back_to_all_numeric_features_without_embedding_columns() {
        let mut c = Catalog::new(vec!["a".into(), "b".into()]);
        for (k, f) in [[1.0, 0.0], [0.0, 1.0], [0.9, 0.1]].iter().enumerate() {
            c.push(Item {
                key: format!("i{k}"),
                features: f.to_vec(),
                ..Item::default()
            })
            .unwrap();
        }
        let p = ItemKnn::new(&c, ItemKnnConfig::default()).unwrap();
        assert!(p.similarity(ItemId(0), ItemId(2)) > 0.9);
        assert!(p.similarity(ItemId(0), ItemId(1)).abs() < 1e-12);
    }
}
