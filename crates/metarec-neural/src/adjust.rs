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

/// A decision of the adjusted policy, with what is needed to explain it.
#[derive(Debug, Clone, PartialEq)]
pub struct AdjustedChoice {
    /// The slate and its per-position propensities.
    pub choice: SlateChoice,
    /// The correction of the user head the slate was ranked with: a posterior draw under
    /// Thompson sampling, the posterior mean otherwise.
    pub delta: Vec<f64>,
    /// The score of each chosen item under `delta`, in slate order.
    pub scores: Vec<f64>,
}

/// A score split into additive parts: `total()` is the score the item was ranked by.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScoreParts {
    /// `<W4 a + b4, h_i>`: the user's context (tokens, session counts, history item inputs).
    pub context: f64,
    /// `<Wc mean(h_clicked), h_i>`: the items clicked earlier in the session.
    pub past_clicks: f64,
    /// `<Wi mean(h_ignored), h_i>`: the items shown earlier and passed over.
    pub past_ignores: f64,
    /// `<delta, h_i>`: this user's learned correction (the adjuster state).
    pub adaptation: f64,
    /// `c_i`: the item's own appeal (its id, price, popularity and embedding through the bias).
    pub item: f64,
    /// The session flags' weights when the item was already shown or clicked.
    pub session_flags: f64,
    /// The clicked item whose share of `past_clicks` is largest in magnitude, and that share.
    pub top_click: Option<(ItemId, f64)>,
}

impl ScoreParts {
    /// The score: the sum of the parts.
    pub fn total(&self) -> f64 {
        self.context
            + self.past_clicks
            + self.past_ignores
            + self.adaptation
            + self.item
            + self.session_flags
    }
}

/// Scores `candidates` for a user under the head correction `delta`, into `scores`.
fn fill_scores(
    frozen: &Frozen,
    net: &NetView,
    candidates: &[ItemId],
    delta: &[f64],
    scores: &mut Vec<f64>,
) {
    let e = frozen.embed;
    scores.clear();
    for c in candidates {
        let i = c.index();
        let base = f64::from(frozen.score(
            &net.head,
            i,
            net.view.ignored.contains(c),
            net.view.clicked.contains(c),
        ));
        let v = &frozen.item_vectors[i * e..(i + 1) * e];
        let extra: f64 = v.iter().zip(delta).map(|(a, b)| f64::from(*a) * b).sum();
        scores.push(base + extra);
    }
}

impl BayesianAdjuster {
    /// The frozen network.
    pub fn frozen(&self) -> &Frozen {
        &self.frozen
    }

    /// The feature schema.
    pub fn features(&self) -> &Features {
        &self.features
    }

    /// Decides a slate of `k` for a user in `state`: candidates are the context's (unknown ids
    /// dropped) or the whole catalog; under Thompson sampling the head correction is drawn from
    /// the posterior and the propensities come from `draws` further draws (Monte Carlo),
    /// otherwise the posterior mean ranks greedily. An empty choice when nothing can be shown.
    pub fn decide(
        &self,
        state: &GaussianPosterior,
        context: &Context,
        k: usize,
        rng: &mut Rng,
    ) -> AdjustedChoice {
        let n = self.features.items();
        let candidates: Vec<ItemId> = if context.candidates.is_empty() {
            (0..n as u32).map(ItemId).collect()
        } else {
            context
                .candidates
                .iter()
                .copied()
                .filter(|c| c.index() < n)
                .collect()
        };
        if candidates.is_empty() || k == 0 {
            return AdjustedChoice {
                choice: SlateChoice {
                    items: Vec::new(),
                    propensities: Vec::new(),
                    slate_propensity: None,
                },
                delta: Vec::new(),
                scores: Vec::new(),
            };
        }
        let net = self.net(context);
        let mut factor = Vec::new();
        let mu = state.mean(&mut factor);
        let mut scores = Vec::with_capacity(candidates.len());
        if !self.config.thompson {
            fill_scores(&self.frozen, &net, &candidates, &mu, &mut scores);
            let choice = greedy(&candidates, &scores, k);
            let chosen_scores = chosen_scores(&candidates, &scores, &choice.items);
            return AdjustedChoice {
                choice,
                delta: mu,
                scores: chosen_scores,
            };
        }
        let delta = state.sample(&mu, &factor, rng);
        fill_scores(&self.frozen, &net, &candidates, &delta, &mut scores);
        let chosen = top_k(&scores, k);
        let chosen_scores: Vec<f64> = chosen.iter().map(|&i| scores[i]).collect();
        let mut resampled = Vec::new();
        let propensities = monte_carlo_marginals(&chosen, self.config.draws, rng, |rng| {
            let d = state.sample(&mu, &factor, rng);
            fill_scores(&self.frozen, &net, &candidates, &d, &mut resampled);
            top_k(&resampled, k)
        });
        AdjustedChoice {
            choice: SlateChoice {
                items: chosen.iter().map(|&i| candidates[i]).collect(),
                propensities,
                slate_propensity: None,
            },
            delta,
            scores: chosen_scores,
        }
    }

    /// Splits the score of `item` for `context` under the head correction `delta` into its
    /// additive parts (see [`ScoreParts`]); their sum is the score `decide` ranked by.
    pub fn explain(&self, context: &Context, delta: &[f64], item: ItemId) -> ScoreParts {
        let mut view = UserView::default();
        self.features.user_view(context, &mut view);
        let f = &self.frozen;
        let e = f.embed;
        let i = item.index();
        let h = &f.item_vectors[i * e..(i + 1) * e];
        let dot = |a: &[f32]| -> f64 { a.iter().zip(h).map(|(x, y)| f64::from(x * y)).sum() };
        let parts = f.user_parts(&view.input, &view.clicked, &view.ignored);
        let top_click = view
            .clicked
            .iter()
            .map(|&j| (j, dot(&f.click_transform(j)) / view.clicked.len() as f64))
            .max_by(|a, b| a.1.abs().total_cmp(&b.1.abs()));
        let mut flags = 0.0;
        if view.ignored.contains(&item) {
            flags += f64::from(f.flags[0]);
        }
        if view.clicked.contains(&item) {
            flags += f64::from(f.flags[1]);
        }
        ScoreParts {
            context: dot(&parts.own),
            past_clicks: dot(&parts.clicks),
            past_ignores: dot(&parts.ignores),
            adaptation: h.iter().zip(delta).map(|(a, b)| f64::from(*a) * b).sum(),
            item: f64::from(f.item_bias[i]),
            session_flags: flags,
            top_click,
        }
    }
}

/// The scores of `chosen` items, looked up among `candidates`.
fn chosen_scores(candidates: &[ItemId], scores: &[f64], chosen: &[ItemId]) -> Vec<f64> {
    chosen
        .iter()
        .map(|c| {
            candidates
                .iter()
                .position(|x| x == c)
                .map_or(f64::NAN, |p| scores[p])
        })
        .collect()
}

/// A policy that serves each user with the network's head corrected by their adjuster state.
pub struct AdjustedPolicy {
    name: String,
    adjuster: BayesianAdjuster,
    states: std::collections::HashMap<UserKey, GaussianPosterior>,
}

impl AdjustedPolicy {
    /// A policy over an adjuster.
    pub fn new(name: &str, adjuster: BayesianAdjuster) -> Self {
        AdjustedPolicy {
            name: name.to_owned(),
            adjuster,
            states: std::collections::HashMap::new(),
        }
    }

    fn state(&mut self, context: &Context) -> GaussianPosterior {
        self.states
            .entry(context.user.clone())
            .or_insert_with(|| self.adjuster.prior(context))
            .clone()
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
        let state = self.state(context);
        self.adjuster.decide(&state, context, k, rng).choice
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

    #[test]
    fn explanations_add_up_to_the_scores_the_slate_was_ranked_by() {
        use metarec_core::{Catalog, Item, PastEvent};
        let mut catalog = Catalog::new(vec!["a".into(), "b".into()]);
        for i in 0..12 {
            catalog
                .push(Item {
                    key: format!("i{i}"),
                    features: vec![(i as f32 * 0.7).sin(), i as f32 / 12.0],
                    ..Item::default()
                })
                .unwrap();
        }
        let features = Features::new(&catalog);
        let (_, model) = crate::model::build(
            crate::model::ModelConfig::default(),
            &features,
            candle_core::DType::F32,
            9,
        )
        .unwrap();
        let frozen = Frozen::from_model(&model, &crate::item_tensor(&features).unwrap()).unwrap();
        let adjuster =
            BayesianAdjuster::new(Arc::new(frozen), Arc::new(features), BayesConfig::default());
        let mut context = Context::for_user(UserKey::from("u"));
        context.tokens = vec!["country=France".into()];
        context.session.history = vec![
            PastEvent {
                item: ItemId(2),
                click: true,
                purchase: false,
            },
            PastEvent {
                item: ItemId(5),
                click: false,
                purchase: false,
            },
        ];
        let state = adjuster.prior(&context);
        let mut rng = metarec_core::rng_for(1, 1);
        let decided = adjuster.decide(&state, &context, 4, &mut rng);
        assert_eq!(decided.choice.items.len(), 4);
        for (item, score) in decided.choice.items.iter().zip(&decided.scores) {
            let parts = adjuster.explain(&context, &decided.delta, *item);
            assert!(
                (parts.total() - score).abs() < 1e-4,
                "{item:?}: {parts:?} vs {score}"
            );
            assert_eq!(parts.top_click.map(|t| t.0), Some(ItemId(2)));
            assert!((parts.top_click.unwrap().1 - parts.past_clicks).abs() < 1e-5);
        }
    }
}
