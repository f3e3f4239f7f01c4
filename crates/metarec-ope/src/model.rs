//! Reward models: `q(x, a, k)`, the expected reward of item `a` at position `k` in the context of a
//! round, which the direct method averages under the evaluation policy and the doubly robust
//! estimators use as their control variate ([`RewardModel`]).
//!
//! - [`MeanModel`]: the mean reward of each (item, position), shrunk towards the position's mean;
//!   context-free.
//! - [`LinearModel`]: ridge regression on sparse features of (context, item, position): position
//!   and item indicators, the context's `name=value` tokens, optionally the context's
//!   user-item affinity for the item (Open Bandit's `user-item_affinity_<item>` columns) and
//!   token x item-group interactions, which let the ranking depend on the user.
//! - [`CrossFitted`]: K models, each fitted without one fold of rounds and used only on that fold,
//!   so the control variate of a round never saw the round's own reward (as Open Bandit
//!   Pipeline's `fit_predict` with `n_folds` does).

use crate::data::LoggedData;
use crate::error::OpeError;
use metarec_core::linalg::solve_spd;
use std::collections::HashMap;

/// A fitted reward model.
pub trait RewardModel: Sync {
    /// The predicted reward of `item` at `position` in round `round` of `data`.
    fn predict(&self, data: &LoggedData, round: usize, item: u32, position: u32) -> f64;
}

impl<M: RewardModel + ?Sized> RewardModel for Box<M> {
    fn predict(&self, data: &LoggedData, round: usize, item: u32, position: u32) -> f64 {
        (**self).predict(data, round, item, position)
    }
}

impl<M: RewardModel + ?Sized> RewardModel for &M {
    fn predict(&self, data: &LoggedData, round: usize, item: u32, position: u32) -> f64 {
        (**self).predict(data, round, item, position)
    }
}

/// Which reward model to fit, with its settings.
#[derive(Debug, Clone, PartialEq)]
pub enum ModelConfig {
    /// [`MeanModel`] with the given prior strength (pseudo-observations at the position's mean).
    Mean {
        /// Pseudo-observations; non-negative.
        prior: f64,
    },
    /// [`LinearModel`].
    Linear(LinearConfig),
}

impl ModelConfig {
    /// Fits the model on the rounds of `data` for which `keep(round)` holds.
    pub fn fit(
        &self,
        data: &LoggedData,
        keep: &dyn Fn(usize) -> bool,
    ) -> Result<Box<dyn RewardModel>, OpeError> {
        Ok(match self {
            ModelConfig::Mean { prior } => Box::new(MeanModel::fit(data, *prior, keep)?),
            ModelConfig::Linear(c) => Box::new(LinearModel::fit(data, c, keep)?),
        })
    }
}

/// Per (item, position) mean reward with shrinkage: `q(a, k) = (sum_r + m mu_k) / (n + m)` where
/// `n` and `sum_r` count the entries of item `a` at position `k`, `mu_k` is position `k`'s mean
/// reward and `m` the prior strength.
#[derive(Debug, Clone, PartialEq)]
pub struct MeanModel {
    n_items: usize,
    q: Vec<f64>,
}

impl MeanModel {
    /// Fits on the rounds `keep` selects.
    pub fn fit(
        data: &LoggedData,
        prior: f64,
        keep: &dyn Fn(usize) -> bool,
    ) -> Result<Self, OpeError> {
        if !(prior.is_finite() && prior >= 0.0) {
            return Err(OpeError::Config {
                name: "prior",
                reason: format!("{prior} is not a non-negative number"),
            });
        }
        let (n, p) = (data.n_items(), data.n_positions());
        let mut count = vec![0.0; n * p];
        let mut sum = vec![0.0; n * p];
        let (mut pos_count, mut pos_sum) = (vec![0.0; p], vec![0.0; p]);
        for round in (0..data.rounds()).filter(|&r| keep(r)) {
            for e in data.round(round) {
                let (a, k) = (data.items()[e] as usize, data.positions()[e] as usize);
                count[k * n + a] += 1.0;
                sum[k * n + a] += data.rewards()[e];
                pos_count[k] += 1.0;
                pos_sum[k] += data.rewards()[e];
            }
        }
        let q = (0..n * p)
            .map(|i| {
                let k = i / n;
                let mu = if pos_count[k] > 0.0 {
                    pos_sum[k] / pos_count[k]
                } else {
                    0.0
                };
                if count[i] + prior > 0.0 {
                    (sum[i] + prior * mu) / (count[i] + prior)
                } else {
                    mu
                }
            })
            .collect();
        Ok(MeanModel { n_items: n, q })
    }
}

impl RewardModel for MeanModel {
    fn predict(&self, _data: &LoggedData, _round: usize, item: u32, position: u32) -> f64 {
        self.q
            .get(position as usize * self.n_items + item as usize)
            .copied()
            .unwrap_or(0.0)
    }
}

/// Settings of [`LinearModel`].
#[derive(Debug, Clone, PartialEq)]
pub struct LinearConfig {
    /// Ridge penalty; positive.
    pub lambda: f64,
    /// Use `context.features[item]` as a feature (the context carries one affinity per item).
    pub item_affinity: bool,
    /// A group per item (for example its category); when present, every context token is crossed
    /// with the item's group.
    pub item_groups: Option<Vec<u32>>,
}

impl Default for LinearConfig {
    fn default() -> Self {
        LinearConfig {
            lambda: 1.0,
            item_affinity: false,
            item_groups: None,
        }
    }
}

/// Ridge regression of the entry reward on sparse features (every coefficient but the intercept
/// penalised); predictions are clipped to the range of the rewards it was fitted on.
#[derive(Debug, Clone)]
pub struct LinearModel {
    config: LinearConfig,
    n_items: usize,
    n_positions: usize,
    n_groups: usize,
    tokens: HashMap<String, usize>,
    theta: Vec<f64>,
    range: (f64, f64),
}

impl LinearModel {
    fn dim(&self) -> usize {
        let base = 1 + self.n_positions + self.n_items + self.tokens.len();
        base + usize::from(self.config.item_affinity) + self.tokens.len() * self.n_groups
    }

    /// Sparse features of (round context, item, position) as `(index, value)` pairs.
    fn features(
        &self,
        data: &LoggedData,
        round: usize,
        item: u32,
        position: u32,
        out: &mut Vec<(usize, f64)>,
    ) {
        out.clear();
        let (p, n, v) = (self.n_positions, self.n_items, self.tokens.len());
        out.push((0, 1.0));
        out.push((1 + position as usize, 1.0));
        out.push((1 + p + item as usize, 1.0));
        let mut next = 1 + p + n + v;
        let context = data.context(round);
        if self.config.item_affinity {
            let x = context
                .and_then(|c| c.features.get(item as usize))
                .map_or(0.0, |&x| f64::from(x));
            out.push((next, x));
            next += 1;
        }
        let group = self
            .config
            .item_groups
            .as_ref()
            .and_then(|g| g.get(item as usize))
            .map(|&g| g as usize);
        if let Some(c) = context {
            for t in &c.tokens {
                if let Some(&j) = self.tokens.get(t) {
                    out.push((1 + p + n + j, 1.0));
                    if let Some(g) = group {
                        out.push((next + j * self.n_groups + g, 1.0));
                    }
                }
            }
        }
    }

    /// Fits on the rounds `keep` selects.
    pub fn fit(
        data: &LoggedData,
        config: &LinearConfig,
        keep: &dyn Fn(usize) -> bool,
    ) -> Result<Self, OpeError> {
        if !(config.lambda.is_finite() && config.lambda > 0.0) {
            return Err(OpeError::Config {
                name: "lambda",
                reason: format!("{} is not positive", config.lambda),
            });
        }
        let n_groups = match &config.item_groups {
            Some(g) if g.len() != data.n_items() => {
                return Err(OpeError::Config {
                    name: "item_groups",
                    reason: format!("{} groups for {} items", g.len(), data.n_items()),
                });
            }
            Some(g) => g.iter().max().map_or(0, |&m| m as usize + 1),
            None => 0,
        };
        // The token vocabulary is what the training rounds show, in order of first appearance.
        let mut tokens = HashMap::new();
        let mut range = (f64::INFINITY, f64::NEG_INFINITY);
        for round in (0..data.rounds()).filter(|&r| keep(r)) {
            if let Some(c) = data.context(round) {
                for t in &c.tokens {
                    let next = tokens.len();
                    tokens.entry(t.clone()).or_insert(next);
                }
            }
            for e in data.round(round) {
                range.0 = range.0.min(data.rewards()[e]);
                range.1 = range.1.max(data.rewards()[e]);
            }
        }
        if range.0 > range.1 {
            return Err(OpeError::EmptyLog);
        }
        let mut model = LinearModel {
            config: config.clone(),
            n_items: data.n_items(),
            n_positions: data.n_positions(),
            n_groups,
            tokens,
            theta: Vec::new(),
            range,
        };
        let d = model.dim();
        let mut a = vec![0.0; d * d];
        let mut b = vec![0.0; d];
        let mut phi = Vec::new();
        for round in (0..data.rounds()).filter(|&r| keep(r)) {
            for e in data.round(round) {
                model.features(data, round, data.items()[e], data.positions()[e], &mut phi);
                let r = data.rewards()[e];
                for &(i, xi) in &phi {
                    b[i] += r * xi;
                    for &(j, xj) in &phi {
                        a[i * d + j] += xi * xj;
                    }
                }
            }
        }
        // The intercept (column 0) is not shrunk, so a heavy penalty pulls predictions towards the
        // mean reward rather than towards zero; a tiny ridge keeps the system positive definite.
        for i in 0..d {
            a[i * d + i] += if i == 0 { 1e-9 } else { config.lambda };
        }
        if !solve_spd(&mut a, d, &mut b) {
            return Err(OpeError::Config {
                name: "lambda",
                reason: "the ridge system is not positive definite".into(),
            });
        }
        model.theta = b;
        Ok(model)
    }
}

impl RewardModel for LinearModel {
    fn predict(&self, data: &LoggedData, round: usize, item: u32, position: u32) -> f64 {
        let mut phi = Vec::with_capacity(16);
        self.features(data, round, item, position, &mut phi);
        let s: f64 = phi.iter().map(|&(i, x)| self.theta[i] * x).sum();
        s.clamp(self.range.0, self.range.1)
    }
}

/// K models, model `f` fitted on every round but those with `round % K == f` and used only for
/// them. Only meaningful on the log it was fitted on.
pub struct CrossFitted {
    models: Vec<Box<dyn RewardModel>>,
}

impl CrossFitted {
    /// Fits `folds` models (1 fold: one model fitted on every round and used for all).
    pub fn fit(config: &ModelConfig, data: &LoggedData, folds: usize) -> Result<Self, OpeError> {
        if folds == 0 || folds > data.rounds() {
            return Err(OpeError::Config {
                name: "folds",
                reason: format!("{folds} folds do not fit {} rounds", data.rounds()),
            });
        }
        let models = if folds == 1 {
            vec![config.fit(data, &|_| true)?]
        } else {
            (0..folds)
                .map(|f| config.fit(data, &|r| r % folds != f))
                .collect::<Result<_, _>>()?
        };
        Ok(CrossFitted { models })
    }
}

impl RewardModel for CrossFitted {
    fn predict(&self, data: &LoggedData, round: usize, item: u32, position: u32) -> f64 {
        self.models[round % self.models.len()].predict(data, round, item, position)
    }
}

/// Mean squared error of `model` on every entry of `data` (for a [`CrossFitted`] model fitted on
/// `data`, the out-of-fold error).
pub fn squared_error(model: &dyn RewardModel, data: &LoggedData) -> f64 {
    let mut total = 0.0;
    for round in 0..data.rounds() {
        for e in data.round(round) {
            let q = model.predict(data, round, data.items()[e], data.positions()[e]);
            total += (data.rewards()[e] - q).powi(2);
        }
    }
    total / data.entries().max(1) as f64
}

/// Picks the ridge penalty of `base` from `grid` by the out-of-fold squared error of
/// `folds`-fold cross-fitting on `data`; returns the penalty and every candidate's error.
pub fn select_lambda(
    data: &LoggedData,
    base: &LinearConfig,
    grid: &[f64],
    folds: usize,
) -> Result<(f64, Vec<(f64, f64)>), OpeError> {
    let mut errors = Vec::with_capacity(grid.len());
    for &lambda in grid {
        let config = ModelConfig::Linear(LinearConfig {
            lambda,
            ..base.clone()
        });
        let model = CrossFitted::fit(&config, data, folds.max(2))?;
        errors.push((lambda, squared_error(&model, data)));
    }
    let best = errors
        .iter()
        .min_by(|a, b| a.1.total_cmp(&b.1))
        .map(|e| e.0)
        .ok_or(OpeError::Config {
            name: "lambda",
            reason: "the grid of penalties is empty".into(),
        })?;
    Ok((best, errors))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::RawEntry;
    use metarec_core::Context;

    fn entry(item: u32, position: u32, reward: f64) -> RawEntry {
        RawEntry {
            item,
            position,
            propensity: Some(0.5),
            reward,
        }
    }

    #[test]
    fn mean_model_shrinks_towards_the_position_mean() {
        let mut d = LoggedData::new(2, 1);
        for (i, (item, r)) in [(0, 1.0), (0, 0.0), (0, 1.0), (1, 0.0)]
            .into_iter()
            .enumerate()
        {
            d.push_round(i + 1, None, &[entry(item, 0, r)]).unwrap();
        }
        let m = MeanModel::fit(&d, 2.0, &|_| true).unwrap();
        // mu = 2/4; item 0: (2 + 2 * 0.5) / (3 + 2) = 0.6; item 1: (0 + 1) / (1 + 2) = 1/3.
        assert!((m.predict(&d, 0, 0, 0) - 0.6).abs() < 1e-12);
        assert!((m.predict(&d, 0, 1, 0) - 1.0 / 3.0).abs() < 1e-12);
    }

    #[test]
    fn linear_model_recovers_a_noiseless_linear_reward() {
        // Reward = 0.1 + 0.2 [position 1] + 0.3 [item 1] + 0.25 [token a] + 0.5 affinity: exactly
        // linear in the features, so a tiny ridge penalty recovers it.
        let mut d = LoggedData::new(2, 2);
        let mut row = 0;
        for item in 0..2u32 {
            for pos in 0..2u32 {
                for tok in ["u=a", "u=b"] {
                    for aff in [0.0f32, 1.0, 2.0] {
                        let r = 0.1
                            + 0.2 * f64::from(pos)
                            + 0.3 * f64::from(item)
                            + if tok == "u=a" { 0.25 } else { 0.0 }
                            + 0.5 * f64::from(aff);
                        let mut features = vec![0.0; 2];
                        features[item as usize] = aff;
                        let c = Context {
                            tokens: vec![tok.into()],
                            features,
                            ..Context::default()
                        };
                        row += 1;
                        d.push_round(row, Some(c), &[entry(item, pos, r)]).unwrap();
                    }
                }
            }
        }
        let config = LinearConfig {
            lambda: 1e-8,
            item_affinity: true,
            item_groups: None,
        };
        let m = LinearModel::fit(&d, &config, &|_| true).unwrap();
        for round in 0..d.rounds() {
            let e = d.round(round).start;
            let got = m.predict(&d, round, d.items()[e], d.positions()[e]);
            assert!((got - d.rewards()[e]).abs() < 1e-5, "round {round}: {got}");
        }
        // The smallest penalty of a grid wins on a noiseless target (out-of-fold predictions are
        // clipped to the training fold's reward range, so they are not exact).
        let (best, errors) = select_lambda(&d, &config, &[1e-8, 10.0], 2).unwrap();
        assert_eq!(best, 1e-8);
        assert!(errors[0].1 * 5.0 < errors[1].1, "{errors:?}");
        // Cross-fitting with 2 folds still predicts an exactly linear reward closely.
        let cf = CrossFitted::fit(&ModelConfig::Linear(config), &d, 2).unwrap();
        assert!((cf.predict(&d, 5, d.items()[5], d.positions()[5]) - d.rewards()[5]).abs() < 1e-4);
    }
}
