//! [`BayesianAdjuster`]: each user's state is a [`GaussianPosterior`] over the head's correction,
//! updated per shown item by one Laplace step of logistic regression, with its settings in
//! [`BayesConfig`]. It also carries decide and explain entry points, thin wrappers over the
//! generic [`decide_with`] and [`explain_with`] that every adjuster shares.

use super::{
    AdjustedChoice, Calibration, DecideBuffers, GaussianPosterior, HeadAdjuster, HeadInput,
    ScoreParts, Shown, decide_with, explain_slate_with, explain_with, shown_items, sigmoid,
};
use crate::features::Features;
use crate::model::Frozen;
use metarec_core::linalg::{cholesky_in_place, cholesky_solve};
use metarec_core::{Adjuster, Context, Interaction, ItemId, Rng};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// Settings of the Bayesian adjuster.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct BayesConfig {
    /// Prior standard deviation `tau` of each coordinate of the head's correction.
    pub prior_scale: f64,
    /// Draw the correction from the posterior (Thompson sampling) rather than use its mean.
    pub thompson: bool,
    /// Monte Carlo rankings for the propensities (Thompson sampling only).
    pub draws: usize,
    /// The network's scores as click log-odds.
    #[serde(default)]
    pub calibration: Calibration,
    /// What the user tower reads for the head the adjuster corrects: the history (the default,
    /// left out of adjuster files), or the user as new (the ablation in which the adjuster
    /// alone learns from the user's feedback; `metarec meta-train --head new-user`).
    #[serde(default, skip_serializing_if = "HeadInput::is_history")]
    pub head: HeadInput,
}

impl Default for BayesConfig {
    fn default() -> Self {
        BayesConfig {
            prior_scale: 0.3,
            thompson: true,
            draws: 16,
            calibration: Calibration::default(),
            head: HeadInput::History,
        }
    }
}

/// The Bayesian adjuster over a trained network.
#[derive(Clone)]
pub struct BayesianAdjuster {
    frozen: Arc<Frozen>,
    features: Arc<Features>,
    /// The settings.
    pub config: BayesConfig,
    /// Every new user's state: `N(0, tau^2 I)`, or `N(0, tau^2 S)` with a learned shape `S`.
    prior: GaussianPosterior,
}

impl BayesianAdjuster {
    /// Whether this adjuster samples and `cache` holds the Cholesky factor of the state's
    /// precision the draws need (factorised here when the mean did not leave it).
    fn sampling_factor(&self, state: &GaussianPosterior, cache: &mut Vec<f64>) -> bool {
        if !self.config.thompson {
            return false;
        }
        if cache.is_empty() {
            cache.extend_from_slice(&state.precision);
            if !cholesky_in_place(cache, state.dim) {
                cache.clear();
                return false;
            }
        }
        true
    }

    /// An adjuster over a frozen network.
    pub fn new(frozen: Arc<Frozen>, features: Arc<Features>, config: BayesConfig) -> Self {
        let prior =
            GaussianPosterior::isotropic(&vec![0.0; frozen.embed], config.prior_scale.powi(2));
        BayesianAdjuster {
            frozen,
            features,
            config,
            prior,
        }
    }

    /// The same adjuster with the prior covariance `tau^2 shape`
    /// ([`prior_shape`](super::prior_shape)); an empty shape keeps the identity. Fails when the
    /// shape is not a symmetric positive definite matrix of the head's width.
    pub fn with_prior_shape(mut self, shape: &[f64]) -> Result<Self, String> {
        if shape.is_empty() {
            return Ok(self);
        }
        let d = self.frozen.embed;
        let tau2 = self.config.prior_scale.powi(2);
        let covariance: Vec<f64> = shape.iter().map(|v| tau2 * v).collect();
        self.prior = GaussianPosterior::centred(&covariance, d).ok_or_else(|| {
            format!(
                "the prior shape is not a symmetric positive definite {d} x {d} matrix ({} values)",
                shape.len()
            )
        })?;
        Ok(self)
    }

    /// The same adjuster (settings and prior) over another copy of its network, such as one
    /// with items set after training ([`Frozen::set_item`], [`Features::set_item_input`]).
    /// Fails when the copy's head or item rows are of another width, or when the two disagree
    /// on the number of items.
    pub fn with_network(
        &self,
        frozen: Arc<Frozen>,
        features: Arc<Features>,
    ) -> Result<Self, String> {
        super::check_network(&self.frozen, &frozen, &features)?;
        Ok(Self {
            frozen,
            features,
            ..self.clone()
        })
    }

    /// The frozen network.
    pub fn frozen(&self) -> &Frozen {
        &self.frozen
    }

    /// The feature schema.
    pub fn features(&self) -> &Features {
        &self.features
    }

    /// Decides a slate of `k` for a user in `state` ([`decide_with`]).
    pub fn decide(
        &self,
        state: &GaussianPosterior,
        context: &Context,
        k: usize,
        rng: &mut Rng,
    ) -> AdjustedChoice {
        decide_with(self, state, context, k, rng, &mut DecideBuffers::default())
    }

    /// The additive parts of an item's score under `delta` ([`explain_with`]).
    pub fn explain(&self, context: &Context, delta: &[f64], item: ItemId) -> ScoreParts {
        explain_with(self, context, delta, item)
    }

    /// The additive parts of each item's score under `delta` ([`explain_slate_with`]).
    pub fn explain_slate(
        &self,
        context: &Context,
        delta: &[f64],
        items: &[ItemId],
    ) -> Vec<ScoreParts> {
        explain_slate_with(self, context, delta, items)
    }
}

impl Adjuster for BayesianAdjuster {
    type State = GaussianPosterior;

    fn prior(&self) -> GaussianPosterior {
        // The head's prior mean is the network's g(context), recomputed at every decision; the
        // state only carries the correction, centred on 0.
        self.prior.clone()
    }

    fn update(&self, state: &mut GaussianPosterior, interaction: &Interaction) {
        let mu = state.mean(&mut Vec::new());
        let shown = shown_items(&self.frozen, &self.features, interaction, self.config.head);
        self.update_at(state, &shown, &mu);
    }
}

impl BayesianAdjuster {
    /// [`Adjuster::update`] on an interaction's shown items from the posterior mean `mu` of
    /// `state` as it is.
    fn update_at(&self, state: &mut GaussianPosterior, shown: &[Shown], mu: &[f64]) {
        for shown in shown {
            let xm = shown.x.iter().zip(mu).map(|(a, b)| a * b).sum::<f64>();
            let p = sigmoid(self.config.calibration.logit_at(shown.base, shown.position) + xm);
            let w = (p * (1.0 - p)).max(1e-6);
            let y = if shown.clicked { 1.0 } else { 0.0 };
            // The Laplace step of logistic regression as a weighted linear observation of the
            // working response: x . delta ~ x . mu + (y - p) / w, with weight w.
            state.observe(&shown.x, xm + (y - p) / w, w);
        }
    }
}

impl HeadAdjuster for BayesianAdjuster {
    fn network(&self) -> (&Frozen, &Features) {
        (&self.frozen, &self.features)
    }

    fn head_input(&self) -> HeadInput {
        self.config.head
    }

    fn correction(&self, state: &GaussianPosterior) -> Vec<f64> {
        state.mean(&mut Vec::new())
    }

    fn update_buffered(
        &self,
        state: &mut GaussianPosterior,
        interaction: &Interaction,
        correction: Option<&[f64]>,
        buffers: &mut DecideBuffers,
    ) {
        let shown =
            buffers.shown_items(&self.frozen, &self.features, interaction, self.config.head);
        // The known correction is this state's posterior mean, bit for bit what `update`
        // would compute.
        match correction {
            Some(mu) if mu.len() == state.dim => self.update_at(state, &shown, mu),
            _ => {
                let mu = state.mean(&mut Vec::new());
                self.update_at(state, &shown, &mu);
            }
        }
    }

    fn correction_caching(&self, state: &GaussianPosterior, cache: &mut Vec<f64>) -> Vec<f64> {
        // The mean's Cholesky factor of the precision is the one the draws need: keep it for
        // them instead of factorising the same matrix again. A failed factorisation leaves the
        // cache empty, so the draws try again and fail as they would have.
        cache.clear();
        cache.extend_from_slice(&state.precision);
        let mut mu = state.shift.clone();
        if cholesky_in_place(cache, state.dim) {
            cholesky_solve(cache, state.dim, &mut mu);
        } else {
            cache.clear();
        }
        mu
    }

    fn draw(
        &self,
        state: &GaussianPosterior,
        mean: &[f64],
        cache: &mut Vec<f64>,
        rng: &mut Rng,
    ) -> Option<Vec<f64>> {
        let mut out = Vec::with_capacity(state.dim);
        self.draw_into(state, mean, cache, rng, &mut out)
            .then_some(out)
    }

    fn draw_into(
        &self,
        state: &GaussianPosterior,
        mean: &[f64],
        cache: &mut Vec<f64>,
        rng: &mut Rng,
        out: &mut Vec<f64>,
    ) -> bool {
        if !self.sampling_factor(state, cache) {
            return false;
        }
        state.sample_into(mean, cache, rng, out);
        true
    }

    fn draws_into(
        &self,
        state: &GaussianPosterior,
        mean: &[f64],
        cache: &mut Vec<f64>,
        rng: &mut Rng,
        count: usize,
        out: &mut Vec<f64>,
    ) -> bool {
        if !self.sampling_factor(state, cache) {
            return false;
        }
        state.samples_into(mean, cache, rng, count, out);
        true
    }

    fn draws(&self) -> usize {
        self.config.draws
    }

    fn calibration(&self) -> Calibration {
        self.config.calibration
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adjust::test_support::network;

    /// Adjuster files written before the head setting existed read as the default, files with
    /// the default are written as before (without the field), and the ablation's setting
    /// round-trips by its command-line name.
    #[test]
    fn the_head_setting_is_left_out_of_files_at_its_default_and_read_back_otherwise() {
        let plain = serde_json::to_value(BayesConfig::default()).unwrap();
        assert!(plain.get("head").is_none(), "{plain}");
        let old: BayesConfig = serde_json::from_value(plain).unwrap();
        assert_eq!(old.head, HeadInput::History);
        let alone = BayesConfig {
            head: HeadInput::NewUser,
            ..BayesConfig::default()
        };
        let text = serde_json::to_value(alone).unwrap();
        assert_eq!(text["head"], "new-user");
        assert_eq!(serde_json::from_value::<BayesConfig>(text).unwrap(), alone);
        let mut bad = serde_json::to_value(alone).unwrap();
        bad["head"] = "newuser".into();
        assert!(serde_json::from_value::<BayesConfig>(bad).is_err());
    }

    #[test]
    fn a_shaped_prior_is_every_new_users_state() {
        let (frozen, features) = network();
        let d = frozen.embed;
        let mut shape = vec![0.0; d * d];
        for k in 0..d {
            shape[k * d + k] = if k == 0 {
                1.0 + d as f64 - 1.0
            } else {
                1.0 / 2.0
            };
        }
        let config = BayesConfig {
            prior_scale: 0.5,
            ..BayesConfig::default()
        };
        let adj = BayesianAdjuster::new(frozen.clone(), features.clone(), config)
            .with_prior_shape(&shape)
            .unwrap();
        let prior = adj.prior();
        assert_eq!(prior.observations, 0);
        assert_eq!(prior.mean(&mut Vec::new()), vec![0.0; d]);
        // Precision = (tau^2 shape)^-1 on this diagonal shape.
        for k in 0..d {
            let want = 1.0 / (0.25 * shape[k * d + k]);
            assert!((prior.precision[k * d + k] - want).abs() < 1e-9);
        }
        // An empty shape keeps the identity; a bad one is refused.
        let plain = BayesianAdjuster::new(frozen.clone(), features.clone(), config);
        assert_eq!(
            plain.prior(),
            GaussianPosterior::isotropic(&vec![0.0; d], 0.25)
        );
        assert!(
            BayesianAdjuster::new(frozen, features, config)
                .with_prior_shape(&[1.0])
                .is_err()
        );
    }
}
