//! The new-item cold-start benchmark on Online Retail: can a model that never saw a product's
//! sales rank it for the customers who go on to buy it?
//!
//! Protocol ([`NewItemConfig`], documented in `docs/new-items.md`):
//! - The cutoff is the last purchase's time minus `holdout_days`. A *new item* is a product whose
//!   first sale is at or after the cutoff; every other product is *old*.
//! - Training data: purchases before the cutoff (old items only, by construction). Implicit ALS
//!   ([`metarec_sim::mf`]) fits user and item vectors on them.
//! - A *feature map* from what a shop knows about any product on the day it is listed (its
//!   price, its title's text embedding) to the item vector is fitted by ridge regression on the
//!   old items; a new item's vector is the map applied to its features. The ridge strength is
//!   chosen on a seeded fifth of the old items, held out from the fit ([`choose_ridge`]).
//! - Test users: customers with at least one purchase before the cutoff (so they have a vector)
//!   who buy at least one new item after it. For each, every new item is scored by the dot
//!   product of the user's vector and the item's predicted vector; the targets are the new items
//!   the user bought. HR@k is the share of a user's targets in the top `k`; NDCG@k uses binary
//!   gains and the ideal ordering of the user's targets. Ties are broken by a seeded random order,
//!   so a feature set that cannot tell new items apart scores at chance, `k / new items`.
//! - Every metric is a mean over test users with a 95% interval ([`Summary`]); feature sets are
//!   compared to id-only by paired per-user differences.

use crate::summary::Summary;
use metarec_core::linalg::{cholesky_in_place, cholesky_solve};
use metarec_core::{ItemId, rng_for};
use metarec_data::online_retail::OnlineRetail;
use metarec_sim::mf::{MfConfig, fit_implicit};
use rand::seq::SliceRandom;
use serde::Serialize;
use std::collections::HashMap;
use thiserror::Error;

/// Why the benchmark cannot run.
#[derive(Debug, Error)]
pub enum NewItemError {
    /// The settings or the data do not allow the protocol.
    #[error("{0}")]
    Config(String),
}

/// The item features a model may use for a product it has never seen sold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum FeatureSet {
    /// Only the product's id: a new id has no learned vector, so every new item looks the same.
    Id,
    /// Id and log price.
    IdPrice,
    /// Id and the title's text embedding.
    IdText,
    /// Id, log price and the title's text embedding.
    IdPriceText,
}

impl FeatureSet {
    /// Every feature set, id-only first (the reference of the paired comparisons).
    pub const ALL: [FeatureSet; 4] = [
        FeatureSet::Id,
        FeatureSet::IdPrice,
        FeatureSet::IdText,
        FeatureSet::IdPriceText,
    ];

    /// The name printed in tables.
    pub fn name(self) -> &'static str {
        match self {
            FeatureSet::Id => "id",
            FeatureSet::IdPrice => "id+price",
            FeatureSet::IdText => "id+text",
            FeatureSet::IdPriceText => "id+price+text",
        }
    }

    fn uses_text(self) -> bool {
        matches!(self, FeatureSet::IdText | FeatureSet::IdPriceText)
    }

    fn uses_price(self) -> bool {
        matches!(self, FeatureSet::IdPrice | FeatureSet::IdPriceText)
    }
}

/// Settings of the benchmark.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NewItemConfig {
    /// Days before the last purchase where the hold-out window starts (61: two months).
    pub holdout_days: u32,
    /// Cut-off of the ranking metrics.
    pub top_k: usize,
    /// The factorisation fitted on the training purchases.
    pub mf: MfConfig,
    /// Ridge strengths tried for the feature map.
    pub ridge_grid: Vec<f64>,
    /// Seed of the ridge validation split and of tie-breaking.
    pub seed: u64,
}

impl Default for NewItemConfig {
    fn default() -> Self {
        NewItemConfig {
            holdout_days: 61,
            top_k: 10,
            mf: MfConfig {
                dim: 32,
                iterations: 10,
                ..MfConfig::default()
            },
            ridge_grid: vec![0.01, 0.1, 1.0, 10.0, 100.0],
            seed: 7,
        }
    }
}

/// The data split of the protocol.
#[derive(Debug, Clone, PartialEq)]
pub struct NewItemSplit {
    /// Purchases at or after this time are held out.
    pub cutoff_ms: i64,
    /// Products first sold at or after the cutoff.
    pub new_items: Vec<ItemId>,
    /// Products sold before the cutoff.
    pub old_items: Vec<ItemId>,
    /// `(customer, item, purchase count)` before the cutoff.
    pub train: Vec<(u32, u32, f64)>,
    /// `(customer, new items they bought after the cutoff)`, for customers with training data.
    pub test: Vec<(u32, Vec<ItemId>)>,
}

/// Splits the purchases by the protocol (see the module documentation).
pub fn split(data: &OnlineRetail, holdout_days: u32) -> Result<NewItemSplit, NewItemError> {
    let last = data
        .purchases
        .iter()
        .map(|p| p.timestamp_ms)
        .max()
        .ok_or_else(|| NewItemError::Config("no purchases".into()))?;
    let cutoff_ms = last - i64::from(holdout_days) * 86_400_000;
    let n_items = data.catalog.len();
    let mut first_sale = vec![i64::MAX; n_items];
    for p in &data.purchases {
        let i = p.item.index();
        first_sale[i] = first_sale[i].min(p.timestamp_ms);
    }
    let (mut new_items, mut old_items) = (Vec::new(), Vec::new());
    for (i, &t) in first_sale.iter().enumerate() {
        if t == i64::MAX {
            continue;
        }
        let id = ItemId(i as u32);
        if t >= cutoff_ms {
            new_items.push(id);
        } else {
            old_items.push(id);
        }
    }
    let mut counts: HashMap<(u32, u32), f64> = HashMap::new();
    let mut bought_new: HashMap<u32, Vec<ItemId>> = HashMap::new();
    for p in &data.purchases {
        if p.timestamp_ms < cutoff_ms {
            *counts.entry((p.customer, p.item.0)).or_default() += 1.0;
        } else if first_sale[p.item.index()] >= cutoff_ms {
            bought_new.entry(p.customer).or_default().push(p.item);
        }
    }
    let mut train: Vec<(u32, u32, f64)> = counts.into_iter().map(|((u, i), c)| (u, i, c)).collect();
    train.sort_unstable_by_key(|e| (e.0, e.1));
    let mut has_train = vec![false; data.customers.len()];
    for &(u, _, _) in &train {
        has_train[u as usize] = true;
    }
    let mut test: Vec<(u32, Vec<ItemId>)> = bought_new
        .into_iter()
        .filter(|(u, _)| has_train[*u as usize])
        .map(|(u, mut items)| {
            items.sort_unstable();
            items.dedup();
            (u, items)
        })
        .collect();
    test.sort_unstable_by_key(|(u, _)| *u);
    if new_items.is_empty() || old_items.is_empty() || test.is_empty() {
        return Err(NewItemError::Config(format!(
            "a hold-out of {holdout_days} days leaves {} new items, {} old items and {} test customers; all must be non-zero",
            new_items.len(),
            old_items.len(),
            test.len()
        )));
    }
    Ok(NewItemSplit {
        cutoff_ms,
        new_items,
        old_items,
        train,
        test,
    })
}

/// Item features of one feature set: a leading 1, then standardised log price, then the text
/// embedding; one row per catalog item.
fn item_features(
    data: &OnlineRetail,
    set: FeatureSet,
    text: Option<(&[f32], usize)>,
) -> (Vec<f64>, usize) {
    let n = data.catalog.len();
    let known: Vec<Option<f64>> = data
        .catalog
        .ids()
        .map(|id| {
            data.catalog
                .price(id)
                .map(|p| f64::from(p).max(0.0).ln_1p())
        })
        .collect();
    let priced: Vec<f64> = known.iter().flatten().copied().collect();
    let mean = priced.iter().sum::<f64>() / priced.len().max(1) as f64;
    let sd = (priced.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / priced.len().max(1) as f64)
        .sqrt()
        .max(1e-9);
    // An item without a price gets the mean, so it carries no price signal.
    let logp: Vec<f64> = known.iter().map(|p| p.unwrap_or(mean)).collect();
    let text_dim = if set.uses_text() {
        text.map_or(0, |t| t.1)
    } else {
        0
    };
    let dim = 1 + usize::from(set.uses_price()) + text_dim;
    let mut out = Vec::with_capacity(n * dim);
    for (i, lp) in logp.iter().enumerate() {
        out.push(1.0);
        if set.uses_price() {
            out.push((lp - mean) / sd);
        }
        if let (true, Some((values, d))) = (set.uses_text(), text) {
            out.extend(values[i * d..(i + 1) * d].iter().map(|&x| f64::from(x)));
        }
    }
    (out, dim)
}

/// Ridge regression from features to targets: `W = (F^T F + lambda I)^{-1} F^T Y`, without
/// penalising the intercept (column 0). Returns `W` row-major (`f_dim x y_dim`).
pub fn ridge_map(
    features: &[f64],
    f_dim: usize,
    targets: &[f64],
    y_dim: usize,
    rows: &[usize],
    lambda: f64,
) -> Option<Vec<f64>> {
    let mut gram = vec![0.0; f_dim * f_dim];
    let mut rhs = vec![0.0; f_dim * y_dim];
    for &r in rows {
        let f = &features[r * f_dim..(r + 1) * f_dim];
        let y = &targets[r * y_dim..(r + 1) * y_dim];
        for (a, fa) in f.iter().enumerate() {
            if *fa == 0.0 {
                continue;
            }
            for (g, fb) in gram[a * f_dim..(a + 1) * f_dim].iter_mut().zip(f) {
                *g += fa * fb;
            }
            for (h, yb) in rhs[a * y_dim..(a + 1) * y_dim].iter_mut().zip(y) {
                *h += fa * yb;
            }
        }
    }
    for a in 1..f_dim {
        gram[a * f_dim + a] += lambda;
    }
    // A tiny jitter keeps the intercept's pivot positive when no row is given.
    gram[0] += 1e-9;
    if !cholesky_in_place(&mut gram, f_dim) {
        return None;
    }
    let mut w = vec![0.0; f_dim * y_dim];
    let mut col = vec![0.0; f_dim];
    for c in 0..y_dim {
        for a in 0..f_dim {
            col[a] = rhs[a * y_dim + c];
        }
        cholesky_solve(&gram, f_dim, &mut col);
        for a in 0..f_dim {
            w[a * y_dim + c] = col[a];
        }
    }
    Some(w)
}

fn apply_map(f: &[f64], w: &[f64], y_dim: usize, out: &mut [f64]) {
    out.iter_mut().for_each(|o| *o = 0.0);
    for (a, fa) in f.iter().enumerate() {
        for (o, wv) in out.iter_mut().zip(&w[a * y_dim..(a + 1) * y_dim]) {
            *o += fa * wv;
        }
    }
}

/// Chooses the ridge strength whose map best predicts the item vectors of a seeded fifth of the
/// old items from a fit on the rest (squared error); returns it with the validation errors.
pub fn choose_ridge(
    features: &[f64],
    f_dim: usize,
    targets: &[f64],
    y_dim: usize,
    old: &[usize],
    grid: &[f64],
    seed: u64,
) -> (f64, Vec<(f64, f64)>) {
    let mut order = old.to_vec();
    order.shuffle(&mut rng_for(seed, 0x7269));
    let cut = order.len() / 5;
    let (valid, fit) = order.split_at(cut);
    let mut errors = Vec::with_capacity(grid.len());
    let mut pred = vec![0.0; y_dim];
    for &lambda in grid {
        let err = match ridge_map(features, f_dim, targets, y_dim, fit, lambda) {
            Some(w) => {
                let mut e = 0.0;
                for &r in valid {
                    apply_map(&features[r * f_dim..(r + 1) * f_dim], &w, y_dim, &mut pred);
                    e += pred
                        .iter()
                        .zip(&targets[r * y_dim..(r + 1) * y_dim])
                        .map(|(p, t)| (p - t).powi(2))
                        .sum::<f64>();
                }
                e / valid.len().max(1) as f64
            }
            None => f64::INFINITY,
        };
        errors.push((lambda, err));
    }
    let best = errors.iter().copied().fold(
        (grid.first().copied().unwrap_or(1.0), f64::INFINITY),
        |b, e| {
            if e.1 < b.1 { e } else { b }
        },
    );
    (best.0, errors)
}

/// HR@k and NDCG@k of one user's targets given their ranks (0-based) among the candidates.
pub fn hit_rate_and_ndcg(ranks: &[usize], k: usize) -> (f64, f64) {
    if ranks.is_empty() {
        return (0.0, 0.0);
    }
    let hits = ranks.iter().filter(|&&r| r < k).count();
    let dcg: f64 = ranks
        .iter()
        .filter(|&&r| r < k)
        .map(|&r| 1.0 / ((r + 2) as f64).log2())
        .sum();
    let ideal: f64 = (0..ranks.len().min(k))
        .map(|r| 1.0 / ((r + 2) as f64).log2())
        .sum();
    (hits as f64 / ranks.len() as f64, dcg / ideal)
}

/// One feature set's results.
#[derive(Debug, Clone, Serialize)]
pub struct FeatureSetResult {
    /// The feature set's name.
    pub features: &'static str,
    /// The chosen ridge strength and the validation error of each one tried.
    pub ridge: f64,
    /// `(lambda, mean squared error of the predicted item vectors)` on held-out old items.
    pub ridge_validation: Vec<(f64, f64)>,
    /// HR@k over test users.
    pub hit_rate: Summary,
    /// NDCG@k over test users.
    pub ndcg: Summary,
    /// Paired per-user difference of HR@k against id-only.
    pub hit_rate_vs_id: Summary,
    /// Paired per-user difference of NDCG@k against id-only.
    pub ndcg_vs_id: Summary,
}

/// The benchmark's report.
#[derive(Debug, Clone, Serialize)]
pub struct NewItemReport {
    /// What this file is, for `metarec report`.
    pub kind: &'static str,
    /// The settings.
    pub config: NewItemConfig,
    /// The cutoff, milliseconds since the epoch.
    pub cutoff_ms: i64,
    /// Products first sold in the hold-out window (the candidates).
    pub new_items: usize,
    /// Products sold before it.
    pub old_items: usize,
    /// Test customers.
    pub test_users: usize,
    /// `(customer, new item)` targets.
    pub targets: usize,
    /// Chance level of HR@k: `k / new items`.
    pub chance_hit_rate: f64,
    /// One row per feature set, id-only first.
    pub results: Vec<FeatureSetResult>,
}

/// Runs the benchmark. `text` is the title embeddings, row-major per catalog item, with their
/// dimension; without it only the feature sets without text run.
pub fn run(
    data: &OnlineRetail,
    text: Option<(&[f32], usize)>,
    config: &NewItemConfig,
    progress: &dyn Fn(&str),
) -> Result<NewItemReport, NewItemError> {
    if config.top_k == 0 {
        return Err(NewItemError::Config("top_k must be at least 1".into()));
    }
    if let Some((values, d)) = text
        && (d == 0 || values.len() != d * data.catalog.len())
    {
        return Err(NewItemError::Config(format!(
            "text embeddings have {} values; expected {} items x {d} dimensions",
            values.len(),
            data.catalog.len()
        )));
    }
    let sp = split(data, config.holdout_days)?;
    progress(&format!(
        "{} old items, {} new items, {} test customers; fitting ALS ({} dims) on {} training pairs",
        sp.old_items.len(),
        sp.new_items.len(),
        sp.test.len(),
        config.mf.dim,
        sp.train.len()
    ));
    let factors = fit_implicit(
        data.customers.len(),
        data.catalog.len(),
        &sp.train,
        &config.mf,
    );
    let d = factors.dim;
    let old: Vec<usize> = sp.old_items.iter().map(|i| i.index()).collect();
    let mut results: Vec<FeatureSetResult> = Vec::new();
    let mut per_user: Vec<(Vec<f64>, Vec<f64>)> = Vec::new();
    for set in FeatureSet::ALL {
        if set.uses_text() && text.is_none() {
            continue;
        }
        let (features, f_dim) = item_features(data, set, text);
        let (lambda, validation) = choose_ridge(
            &features,
            f_dim,
            &factors.items,
            d,
            &old,
            &config.ridge_grid,
            config.seed,
        );
        let w = ridge_map(&features, f_dim, &factors.items, d, &old, lambda).ok_or_else(|| {
            NewItemError::Config(format!("the ridge system of {} is singular", set.name()))
        })?;
        // Predicted vectors of the new items (the candidates).
        let mut vectors = vec![0.0; sp.new_items.len() * d];
        for (j, item) in sp.new_items.iter().enumerate() {
            let r = item.index();
            apply_map(
                &features[r * f_dim..(r + 1) * f_dim],
                &w,
                d,
                &mut vectors[j * d..(j + 1) * d],
            );
        }
        let position: HashMap<ItemId, usize> = sp
            .new_items
            .iter()
            .enumerate()
            .map(|(j, i)| (*i, j))
            .collect();
        let (mut hrs, mut ndcgs) = (Vec::new(), Vec::new());
        let mut scores = vec![0.0; sp.new_items.len()];
        let mut order: Vec<usize> = (0..sp.new_items.len()).collect();
        let mut rank_of = vec![0usize; sp.new_items.len()];
        for (u, targets) in &sp.test {
            let uv = factors.user(*u as usize);
            for (j, s) in scores.iter_mut().enumerate() {
                *s = vectors[j * d..(j + 1) * d]
                    .iter()
                    .zip(uv)
                    .map(|(a, b)| a * b)
                    .sum();
            }
            // A seeded shuffle before a stable sort breaks ties at random, the same way for
            // every feature set.
            for (j, o) in order.iter_mut().enumerate() {
                *o = j;
            }
            order.shuffle(&mut rng_for(config.seed, 0x1000_0000 + u64::from(*u)));
            order.sort_by(|a, b| scores[*b].total_cmp(&scores[*a]));
            for (r, &j) in order.iter().enumerate() {
                rank_of[j] = r;
            }
            let ranks: Vec<usize> = targets.iter().map(|t| rank_of[position[t]]).collect();
            let (hr, ndcg) = hit_rate_and_ndcg(&ranks, config.top_k);
            hrs.push(hr);
            ndcgs.push(ndcg);
        }
        let (hit_rate_vs_id, ndcg_vs_id) = match per_user.first() {
            Some((hr0, nd0)) => (
                Summary::of(&hrs.iter().zip(hr0).map(|(a, b)| a - b).collect::<Vec<_>>()),
                Summary::of(
                    &ndcgs
                        .iter()
                        .zip(nd0)
                        .map(|(a, b)| a - b)
                        .collect::<Vec<_>>(),
                ),
            ),
            None => (
                Summary::of(&vec![0.0; hrs.len()]),
                Summary::of(&vec![0.0; hrs.len()]),
            ),
        };
        let row = FeatureSetResult {
            features: set.name(),
            ridge: lambda,
            ridge_validation: validation,
            hit_rate: Summary::of(&hrs),
            ndcg: Summary::of(&ndcgs),
            hit_rate_vs_id,
            ndcg_vs_id,
        };
        progress(&format!(
            "{}: HR@{} {:.4}, NDCG@{} {:.4} (ridge {lambda})",
            set.name(),
            config.top_k,
            row.hit_rate.mean,
            config.top_k,
            row.ndcg.mean
        ));
        results.push(row);
        per_user.push((hrs, ndcgs));
    }
    Ok(NewItemReport {
        kind: "new-items",
        config: config.clone(),
        cutoff_ms: sp.cutoff_ms,
        new_items: sp.new_items.len(),
        old_items: sp.old_items.len(),
        test_users: sp.test.len(),
        targets: sp.test.iter().map(|(_, t)| t.len()).sum(),
        chance_hit_rate: (config.top_k as f64 / sp.new_items.len() as f64).min(1.0),
        results,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hit_rate_and_ndcg_match_hand_computed_values() {
        // Targets at ranks 0 and 3 with k = 2: one hit of two; DCG = 1, ideal = 1 + 1/log2(3).
        let (hr, ndcg) = hit_rate_and_ndcg(&[0, 3], 2);
        assert_eq!(hr, 0.5);
        assert!((ndcg - 1.0 / (1.0 + 1.0 / 3f64.log2())).abs() < 1e-12);
        // A single target at rank 1: DCG = 1/log2(3), ideal 1.
        let (hr, ndcg) = hit_rate_and_ndcg(&[1], 10);
        assert_eq!(hr, 1.0);
        assert!((ndcg - 1.0 / 3f64.log2()).abs() < 1e-12);
        assert_eq!(hit_rate_and_ndcg(&[10], 10), (0.0, 0.0));
    }

    #[test]
    fn the_ridge_map_recovers_a_linear_relation() {
        // y = 2 + 3 f (one feature plus intercept, two outputs: y and -y): with lambda ~ 0 the
        // fit is exact.
        let xs = [0.0, 1.0, 2.0, -1.5, 4.0];
        let features: Vec<f64> = xs.iter().flat_map(|&x| [1.0, x]).collect();
        let targets: Vec<f64> = xs
            .iter()
            .flat_map(|&x| [2.0 + 3.0 * x, -(2.0 + 3.0 * x)])
            .collect();
        let rows: Vec<usize> = (0..xs.len()).collect();
        let w = ridge_map(&features, 2, &targets, 2, &rows, 1e-12).unwrap();
        for (got, want) in w.iter().zip([2.0, -2.0, 3.0, -3.0]) {
            assert!((got - want).abs() < 1e-6, "{w:?}");
        }
        // A large penalty shrinks the slope but not the intercept (the mean of y at mean f).
        let w = ridge_map(&features, 2, &targets, 2, &rows, 1e9).unwrap();
        assert!(w[2].abs() < 1e-6);
        let mean_y = xs.iter().map(|x| 2.0 + 3.0 * x).sum::<f64>() / xs.len() as f64;
        assert!((w[0] - mean_y).abs() < 1e-3, "{w:?}");
    }
}
