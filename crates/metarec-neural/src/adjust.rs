//! The strategy adjuster: per-user Bayesian correction of the network's user head.
//!
//! The trained network's user tower is the meta-learned prior: from what is known of a new user
//! (their context and session so far) it predicts a head `g(context)`. The adjuster keeps, per
//! user, a Gaussian posterior over a correction `delta` to that head, so the user's scores are
//! `<g + delta, h_i> + c_i + flags`. The prior is `delta ~ N(0, tau^2 I)`, with the scale `tau`
//! meta-learned across training users ([`meta_train`]); each shown item updates the posterior in
//! closed form (one Newton step of Bayesian logistic regression on the click, the Laplace
//! approximation); decisions draw `delta` from the posterior (Thompson sampling), so the policy
//! explores where it is unsure about this user.
//!
//! [`GaussianPosterior`] is the closed-form part, in information form (precision `L` and
//! `L mu`), kept apart so it can be checked against the batch formula.

use crate::features::{Features, UserView};
use crate::model::Frozen;
use metarec_core::explore::{greedy, monte_carlo_marginals, top_k};
use metarec_core::linalg::{cholesky_in_place, cholesky_solve};
use metarec_core::{Adjuster, Context, Interaction, ItemId, Policy, Rng, SlateChoice, UserKey};
use rand_distr::{Distribution, StandardNormal};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// A Gaussian over `R^d` in information form: precision `L` and `h = L mu`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GaussianPosterior {
    /// Dimension.
    pub dim: usize,
    /// The precision matrix `L`, row-major.
    pub precision: Vec<f64>,
    /// `L mu`.
    pub shift: Vec<f64>,
    /// Observations folded in.
    pub observations: u32,
}

impl GaussianPosterior {
    /// `N(mean, variance I)`.
    pub fn isotropic(mean: &[f64], variance: f64) -> Self {
        let d = mean.len();
        let mut precision = vec![0.0; d * d];
        for k in 0..d {
            precision[k * d + k] = 1.0 / variance;
        }
        GaussianPosterior {
            dim: d,
            precision,
            shift: mean.iter().map(|m| m / variance).collect(),
            observations: 0,
        }
    }

    /// Folds in one linear-Gaussian observation `target = x . theta + noise` with weight
    /// `1 / noise variance`: `L += w x x^T`, `h += w x target`.
    pub fn observe(&mut self, x: &[f64], target: f64, weight: f64) {
        let d = self.dim;
        for (a, xa) in x.iter().enumerate().take(d) {
            let wa = weight * xa;
            for (p, xb) in self.precision[a * d..(a + 1) * d].iter_mut().zip(x) {
                *p += wa * xb;
            }
            self.shift[a] += wa * target;
        }
        self.observations += 1;
    }

    /// The mean `mu = L^{-1} h`, and the Cholesky factor of `L` (lower, row-major) in `factor`.
    pub fn mean(&self, factor: &mut Vec<f64>) -> Vec<f64> {
        factor.clear();
        factor.extend_from_slice(&self.precision);
        let mut mu = self.shift.clone();
        if cholesky_in_place(factor, self.dim) {
            cholesky_solve(factor, self.dim, &mut mu);
        }
        mu
    }

    /// A draw from the Gaussian: `mu + L^{-T} z`, `z` standard normal, given the factor of `L`.
    pub fn sample(&self, mu: &[f64], factor: &[f64], rng: &mut Rng) -> Vec<f64> {
        let d = self.dim;
        let mut z: Vec<f64> = (0..d).map(|_| StandardNormal.sample(rng)).collect();
        // Back substitution with L^T: solves L^T v = z, so v ~ N(0, L^{-1}).
        for i in (0..d).rev() {
            let mut s = z[i];
            for k in i + 1..d {
                s -= factor[k * d + i] * z[k];
            }
            z[i] = s / factor[i * d + i];
        }
        mu.iter().zip(&z).map(|(m, v)| m + v).collect()
    }
}

/// Settings of the Bayesian adjuster.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct BayesConfig {
    /// Prior standard deviation `tau` of each coordinate of the head's correction.
    pub prior_scale: f64,
    /// Draw the correction from the posterior (Thompson sampling) rather than use its mean.
    pub thompson: bool,
    /// Monte Carlo rankings for the propensities (Thompson sampling only).
    pub draws: usize,
}

impl Default for BayesConfig {
    fn default() -> Self {
        BayesConfig {
            prior_scale: 0.3,
            thompson: true,
            draws: 16,
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
}

/// The network's head and scores for a context.
struct NetView {
    view: UserView,
    head: Vec<f32>,
    scratch: Vec<f32>,
}

impl BayesianAdjuster {
    /// An adjuster over a frozen network.
    pub fn new(frozen: Arc<Frozen>, features: Arc<Features>, config: BayesConfig) -> Self {
        BayesianAdjuster {
            frozen,
            features,
            config,
        }
    }

    fn net(&self, context: &Context) -> NetView {
        let mut v = NetView {
            view: UserView::default(),
            head: Vec::new(),
            scratch: Vec::new(),
        };
        self.features.user_view(context, &mut v.view);
        self.frozen.user(
            &v.view.input,
            &v.view.clicked,
            &v.view.ignored,
            &mut v.scratch,
            &mut v.head,
        );
        v
    }

    fn item_vector(&self, i: usize) -> Vec<f64> {
        let e = self.frozen.embed;
        self.frozen.item_vectors[i * e..(i + 1) * e]
            .iter()
            .map(|&x| f64::from(x))
            .collect()
    }
}

impl Adjuster for BayesianAdjuster {
    type State = GaussianPosterior;

    fn prior(&self, _context: &Context) -> GaussianPosterior {
        // The head's prior mean is the network's g(context), recomputed at every decision; the
        // state only carries the correction, centred on 0.
        GaussianPosterior::isotropic(
            &vec![0.0; self.frozen.embed],
            self.config.prior_scale.powi(2),
        )
    }

    fn update(&self, state: &mut GaussianPosterior, interaction: &Interaction) {
        let net = self.net(&interaction.context);
        let mut factor = Vec::new();
        let mu = state.mean(&mut factor);
        for (k, item) in interaction.decision.slate.items().iter().enumerate() {
            let i = item.index();
            if i >= self.features.items() {
                continue;
            }
            let x = self.item_vector(i);
            let base = f64::from(self.frozen.score(
                &net.head,
                i,
                net.view.ignored.contains(item),
                net.view.clicked.contains(item),
            ));
            let z = base + x.iter().zip(&mu).map(|(a, b)| a * b).sum::<f64>();
            let p = 1.0 / (1.0 + (-z).exp());
            let w = (p * (1.0 - p)).max(1e-6);
            let y = if interaction.feedback.clicks[k] {
                1.0
            } else {
                0.0
            };
            // The Laplace step of logistic regression as a weighted linear observation of the
            // working response: x . delta ~ x . mu + (y - p) / w, with weight w.
            let working = x.iter().zip(&mu).map(|(a, b)| a * b).sum::<f64>() + (y - p) / w;
            state.observe(&x, working, w);
        }
    }
}

/// A policy that serves each user with the network's head corrected by their adjuster state.
pub struct AdjustedPolicy {
    name: String,
    adjuster: BayesianAdjuster,
    states: std::collections::HashMap<UserKey, GaussianPosterior>,
    candidates: Vec<ItemId>,
    scores: Vec<f64>,
}

impl AdjustedPolicy {
    /// A policy over an adjuster.
    pub fn new(name: &str, adjuster: BayesianAdjuster) -> Self {
        AdjustedPolicy {
            name: name.to_owned(),
            adjuster,
            states: std::collections::HashMap::new(),
            candidates: Vec::new(),
            scores: Vec::new(),
        }
    }

    fn state(&mut self, context: &Context) -> GaussianPosterior {
        self.states
            .entry(context.user.clone())
            .or_insert_with(|| self.adjuster.prior(context))
            .clone()
    }

    fn fill_scores(&mut self, net: &NetView, delta: &[f64]) {
        let f = &self.adjuster.frozen;
        let e = f.embed;
        self.scores.clear();
        for c in &self.candidates {
            let i = c.index();
            let base = f64::from(f.score(
                &net.head,
                i,
                net.view.ignored.contains(c),
                net.view.clicked.contains(c),
            ));
            let v = &f.item_vectors[i * e..(i + 1) * e];
            let extra: f64 = v.iter().zip(delta).map(|(a, b)| f64::from(*a) * b).sum();
            self.scores.push(base + extra);
        }
    }
}

impl Policy for AdjustedPolicy {
    fn name(&self) -> &str {
        &self.name
    }

    fn start_user(&mut self, context: &Context) {
        let prior = self.adjuster.prior(context);
        self.states.insert(context.user.clone(), prior);
    }

    fn decide(&mut self, context: &Context, k: usize, rng: &mut Rng) -> SlateChoice {
        let n = self.adjuster.features.items();
        self.candidates.clear();
        if context.candidates.is_empty() {
            self.candidates.extend((0..n as u32).map(ItemId));
        } else {
            self.candidates
                .extend(context.candidates.iter().filter(|c| c.index() < n));
        }
        if self.candidates.is_empty() || k == 0 {
            return SlateChoice {
                items: Vec::new(),
                propensities: Vec::new(),
                slate_propensity: None,
            };
        }
        let state = self.state(context);
        let net = self.adjuster.net(context);
        let mut factor = Vec::new();
        let mu = state.mean(&mut factor);
        if !self.adjuster.config.thompson {
            self.fill_scores(&net, &mu);
            return greedy(&self.candidates, &self.scores, k);
        }
        let delta = state.sample(&mu, &factor, rng);
        self.fill_scores(&net, &delta);
        let chosen = top_k(&self.scores, k);
        let draws = self.adjuster.config.draws;
        let mut resampled = Vec::new();
        let propensities = monte_carlo_marginals(&chosen, draws, rng, |rng| {
            let d = state.sample(&mu, &factor, rng);
            self.fill_scores(&net, &d);
            resampled.clone_from(&self.scores);
            top_k(&resampled, k)
        });
        SlateChoice {
            items: chosen.iter().map(|&i| self.candidates[i]).collect(),
            propensities,
            slate_propensity: None,
        }
    }

    fn observe(&mut self, interaction: &Interaction) {
        let mut state = self.state(&interaction.context);
        self.adjuster.update(&mut state, interaction);
        self.states.insert(interaction.context.user.clone(), state);
    }
}

/// The adjuster's file in a model directory.
pub const ADJUSTER_FILE: &str = "adjuster.json";

/// What `meta_train` chose and why: reward per user on training users for each prior scale.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AdjusterManifest {
    /// The adjuster kind (`bayes`).
    pub kind: String,
    /// The chosen settings.
    pub config: BayesConfig,
    /// `(prior scale, mean reward per training user)` for every scale tried.
    pub grid: Vec<(f64, f64)>,
    /// Training users per scale.
    pub users: usize,
}

#[cfg(test)]
mod tests {
    use super::*;
    use metarec_core::linalg::solve_spd;

    #[test]
    fn the_posterior_matches_the_batch_formula_on_a_gaussian_case() {
        // Prior N(m0, s^2 I); observations y_j = x_j . theta + noise (variance r).
        // Batch: L = I / s^2 + X^T X / r; mu = L^{-1} (m0 / s^2 + X^T y / r).
        let m0 = [0.5, -1.0, 0.2];
        let (s2, r) = (0.7, 0.3);
        let xs = [
            [1.0, 0.0, 2.0],
            [0.3, -1.2, 0.5],
            [2.0, 1.0, -1.0],
            [0.0, 0.4, 0.9],
        ];
        let ys = [1.5, -0.2, 0.7, 2.2];
        let mut post = GaussianPosterior::isotropic(&m0, s2);
        for (x, y) in xs.iter().zip(ys) {
            post.observe(x, y, 1.0 / r);
        }
        let mut l = vec![0.0; 9];
        let mut rhs = vec![0.0; 3];
        for a in 0..3 {
            l[a * 3 + a] = 1.0 / s2;
            rhs[a] = m0[a] / s2;
            for (x, y) in xs.iter().zip(ys) {
                rhs[a] += x[a] * y / r;
                for b in 0..3 {
                    l[a * 3 + b] += x[a] * x[b] / r;
                }
            }
        }
        let expected_l = l.clone();
        assert!(solve_spd(&mut l, 3, &mut rhs));
        let mu = post.mean(&mut Vec::new());
        for k in 0..3 {
            assert!((mu[k] - rhs[k]).abs() < 1e-12, "{mu:?} vs {rhs:?}");
        }
        for (a, b) in post.precision.iter().zip(&expected_l) {
            assert!((a - b).abs() < 1e-12);
        }
    }

    #[test]
    fn with_no_interactions_the_posterior_is_the_prior() {
        let post = GaussianPosterior::isotropic(&[1.0, -2.0], 0.25);
        assert_eq!(post.mean(&mut Vec::new()), vec![1.0, -2.0]);
        assert_eq!(post.observations, 0);
    }

    #[test]
    fn posterior_draws_have_the_posterior_covariance() {
        let mut post = GaussianPosterior::isotropic(&[0.0, 0.0], 1.0);
        post.observe(&[1.0, 1.0], 2.0, 4.0);
        let mut factor = Vec::new();
        let mu = post.mean(&mut factor);
        // Covariance = L^{-1} with L = [[5, 4], [4, 5]]: [[5, -4], [-4, 5]] / 9.
        let mut rng = metarec_core::rng_for(2, 2);
        let n = 200_000;
        let (mut c00, mut c01) = (0.0, 0.0);
        for _ in 0..n {
            let d = post.sample(&mu, &factor, &mut rng);
            c00 += (d[0] - mu[0]).powi(2);
            c01 += (d[0] - mu[0]) * (d[1] - mu[1]);
        }
        assert!((c00 / n as f64 - 5.0 / 9.0).abs() < 0.01);
        assert!((c01 / n as f64 + 4.0 / 9.0).abs() < 0.01);
    }
}
