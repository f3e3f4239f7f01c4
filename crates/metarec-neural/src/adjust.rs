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
//!
//! [`GradientAdjuster`] is the gradient-based alternative (first-order MAML / Reptile on the
//! head): the correction starts at a meta-learned initial value shared by all users and takes
//! `steps` gradient steps of the click log-likelihood after each interaction.
//!
//! Both implement [`HeadAdjuster`], so one [`AdjustedPolicy`] serves either.

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

    /// `N(0, covariance)`, or `None` when `covariance` (d x d, row-major) is not symmetric
    /// positive definite.
    pub fn centred(covariance: &[f64], d: usize) -> Option<Self> {
        if covariance.len() != d * d
            || (0..d).any(|a| (0..a).any(|b| covariance[a * d + b] != covariance[b * d + a]))
        {
            return None;
        }
        let mut factor = covariance.to_vec();
        if !cholesky_in_place(&mut factor, d) {
            return None;
        }
        // The precision is the inverse: solve against each unit vector.
        let mut precision = vec![0.0; d * d];
        for k in 0..d {
            let mut e = vec![0.0; d];
            e[k] = 1.0;
            cholesky_solve(&factor, d, &mut e);
            for (a, v) in e.into_iter().enumerate() {
                precision[a * d + k] = v;
            }
        }
        // Symmetrise away the rounding of the solves.
        for a in 0..d {
            for b in 0..a {
                let m = 0.5 * (precision[a * d + b] + precision[b * d + a]);
                precision[a * d + b] = m;
                precision[b * d + a] = m;
            }
        }
        Some(GaussianPosterior {
            dim: d,
            precision,
            shift: vec![0.0; d],
            observations: 0,
        })
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

/// How the network's score of an item maps to the log-odds of a click: `offset + scale * score`.
///
/// The network is trained as a ranking policy (Plackett-Luce logits), so its scores are not click
/// log-odds; the adjusters' click likelihoods need them calibrated, or every ignored item would
/// push the correction by the network's overconfidence rather than by the user's taste. The
/// calibration is meta-learned on training users ([`fit_calibration`]).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Calibration {
    /// Log-odds at score 0.
    pub offset: f64,
    /// Log-odds per unit of score (positive).
    pub scale: f64,
}

impl Default for Calibration {
    fn default() -> Self {
        Calibration {
            offset: 0.0,
            scale: 1.0,
        }
    }
}

impl Calibration {
    /// The click log-odds of a network score.
    pub fn logit(&self, score: f64) -> f64 {
        self.offset + self.scale * score
    }
}

/// Fits a [`Calibration`] to `(network score, clicked)` pairs by Newton's method on the logistic
/// log-likelihood (with a tiny ridge so a separable sample stays finite). The scale is kept
/// positive so the calibrated ranking is the network's.
pub fn fit_calibration(samples: &[(f64, bool)]) -> Calibration {
    if samples.is_empty() {
        return Calibration::default();
    }
    // IRLS from the intercept-only fit (b = 0), the standard start: far-off starts with large
    // scores saturate the sigmoid and make the Newton steps explode.
    let rate = samples.iter().filter(|s| s.1).count() as f64 / samples.len() as f64;
    let rate = rate.clamp(1e-6, 1.0 - 1e-6);
    let (mut a, mut b) = ((rate / (1.0 - rate)).ln(), 0.0f64);
    for _ in 0..50 {
        let (mut ga, mut gb, mut haa, mut hab, mut hbb) = (0.0, 0.0, 1e-6, 0.0, 1e-6);
        for &(x, y) in samples {
            let p = sigmoid(a + b * x);
            let r = f64::from(u8::from(y)) - p;
            let w = p * (1.0 - p);
            ga += r;
            gb += r * x;
            haa += w;
            hab += w * x;
            hbb += w * x * x;
        }
        let det = haa * hbb - hab * hab;
        if det.abs() < 1e-300 {
            break;
        }
        let mut da = (hbb * ga - hab * gb) / det;
        let mut db = (haa * gb - hab * ga) / det;
        // A trust region keeps a nearly separable sample from throwing the fit far away.
        let norm = (da * da + db * db).sqrt();
        if norm > 2.0 {
            da *= 2.0 / norm;
            db *= 2.0 / norm;
        }
        a += da;
        b += db;
        if da.abs() + db.abs() < 1e-10 {
            break;
        }
    }
    Calibration {
        offset: a,
        scale: b.max(1e-3),
    }
}

/// `(network score, clicked)` for every shown item of an interaction the network knows: the
/// samples [`fit_calibration`] takes.
pub fn calibration_samples(
    frozen: &Frozen,
    features: &Features,
    interaction: &Interaction,
) -> Vec<(f64, bool)> {
    shown_items(frozen, features, interaction)
        .into_iter()
        .map(|s| (s.base, s.clicked))
        .collect()
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
    /// The network's scores as click log-odds.
    #[serde(default)]
    pub calibration: Calibration,
}

impl Default for BayesConfig {
    fn default() -> Self {
        BayesConfig {
            prior_scale: 0.3,
            thompson: true,
            draws: 16,
            calibration: Calibration::default(),
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

/// The shape `S` of the correction's prior covariance learned from training users' adapted
/// corrections `delta_u`: their second moment `mean(delta_u delta_u^T)`, plus `ridge` times its
/// mean diagonal on the diagonal (so no direction is ruled out), scaled to trace `d` (so `tau`
/// keeps its meaning: the average prior standard deviation per coordinate). `None` without
/// corrections or when they are all zero.
pub fn prior_shape(corrections: &[Vec<f64>], d: usize, ridge: f64) -> Option<Vec<f64>> {
    if corrections.is_empty() || corrections.iter().any(|c| c.len() != d) {
        return None;
    }
    let mut s = vec![0.0; d * d];
    for c in corrections {
        for a in 0..d {
            for b in 0..d {
                s[a * d + b] += c[a] * c[b];
            }
        }
    }
    let n = corrections.len() as f64;
    s.iter_mut().for_each(|v| *v /= n);
    let trace: f64 = (0..d).map(|k| s[k * d + k]).sum();
    if !(trace.is_finite() && trace > 0.0) {
        return None;
    }
    let lift = ridge * trace / d as f64;
    for k in 0..d {
        s[k * d + k] += lift;
    }
    let scale = d as f64 / (trace + lift * d as f64);
    s.iter_mut().for_each(|v| *v *= scale);
    Some(s)
}

/// The network's head and scores for a context.
struct NetView {
    view: UserView,
    head: Vec<f32>,
    scratch: Vec<f32>,
}

impl NetView {
    /// The network's view of a context: the user input, the session flags and the head.
    fn of(frozen: &Frozen, features: &Features, context: &Context) -> NetView {
        let mut v = NetView {
            view: UserView::default(),
            head: Vec::new(),
            scratch: Vec::new(),
        };
        features.user_view(context, &mut v.view);
        frozen.user(
            &v.view.input,
            &v.view.clicked,
            &v.view.ignored,
            &mut v.scratch,
            &mut v.head,
        );
        v
    }

    /// The network's score of item `i` (without any correction).
    fn base(&self, frozen: &Frozen, item: ItemId) -> f64 {
        f64::from(frozen.score(
            &self.head,
            item.index(),
            self.view.ignored.contains(&item),
            self.view.clicked.contains(&item),
        ))
    }
}

/// One shown item of an interaction: its tower vector, the network's score and the click.
struct Shown {
    x: Vec<f64>,
    base: f64,
    clicked: bool,
}

/// The shown items of an interaction that the network knows, with their scores in the context
/// the decision was made in.
fn shown_items(frozen: &Frozen, features: &Features, interaction: &Interaction) -> Vec<Shown> {
    let net = NetView::of(frozen, features, &interaction.context);
    let e = frozen.embed;
    interaction
        .decision
        .slate
        .items()
        .iter()
        .enumerate()
        .filter(|(_, item)| item.index() < features.items())
        .map(|(k, item)| {
            let i = item.index();
            Shown {
                x: frozen.item_vectors[i * e..(i + 1) * e]
                    .iter()
                    .map(|&v| f64::from(v))
                    .collect(),
                base: net.base(frozen, *item),
                clicked: interaction.feedback.clicks[k],
            }
        })
        .collect()
}

fn sigmoid(z: f64) -> f64 {
    1.0 / (1.0 + (-z).exp())
}

/// What a policy needs from an adjuster whose state corrects the network's user head.
pub trait HeadAdjuster: Adjuster {
    /// The network and its feature schema.
    fn network(&self) -> (&Frozen, &Features);
    /// The correction to use greedily: the posterior mean, or the adapted value.
    fn correction(&self, state: &Self::State) -> Vec<f64>;
    /// A random correction for Thompson sampling given the mean, or `None` for greedy decisions.
    /// `cache` starts empty for each decision and keeps whatever the draws of that decision can
    /// share (the Bayesian adjuster's Cholesky factor).
    fn draw(
        &self,
        state: &Self::State,
        mean: &[f64],
        cache: &mut Vec<f64>,
        rng: &mut Rng,
    ) -> Option<Vec<f64>>;
    /// Monte Carlo rankings for the propensities of Thompson sampling.
    fn draws(&self) -> usize;
    /// How the network's scores map to click log-odds (the corrected score is
    /// `scale * network score + x . delta`).
    fn calibration(&self) -> Calibration;
}

impl BayesianAdjuster {
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

    /// The same adjuster with the prior covariance `tau^2 shape` ([`prior_shape`]); an empty
    /// shape keeps the identity. Fails when the shape is not a symmetric positive definite
    /// matrix of the head's width.
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
}

impl Adjuster for BayesianAdjuster {
    type State = GaussianPosterior;

    fn prior(&self, _context: &Context) -> GaussianPosterior {
        // The head's prior mean is the network's g(context), recomputed at every decision; the
        // state only carries the correction, centred on 0.
        self.prior.clone()
    }

    fn update(&self, state: &mut GaussianPosterior, interaction: &Interaction) {
        let mut factor = Vec::new();
        let mu = state.mean(&mut factor);
        for shown in shown_items(&self.frozen, &self.features, interaction) {
            let xm = shown.x.iter().zip(&mu).map(|(a, b)| a * b).sum::<f64>();
            let p = sigmoid(self.config.calibration.logit(shown.base) + xm);
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

    fn correction(&self, state: &GaussianPosterior) -> Vec<f64> {
        state.mean(&mut Vec::new())
    }

    fn draw(
        &self,
        state: &GaussianPosterior,
        mean: &[f64],
        cache: &mut Vec<f64>,
        rng: &mut Rng,
    ) -> Option<Vec<f64>> {
        if !self.config.thompson {
            return None;
        }
        if cache.is_empty() {
            cache.extend_from_slice(&state.precision);
            if !cholesky_in_place(cache, state.dim) {
                cache.clear();
                return None;
            }
        }
        Some(state.sample(mean, cache, rng))
    }

    fn draws(&self) -> usize {
        self.config.draws
    }

    fn calibration(&self) -> Calibration {
        self.config.calibration
    }
}

/// Settings of the gradient-based adjuster.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GradientConfig {
    /// Step size of each inner gradient step.
    pub step_size: f64,
    /// Inner gradient steps after each interaction.
    pub steps: usize,
    /// The meta-learned initial correction every new user starts from (Reptile's outer
    /// parameters); empty means zero.
    pub init: Vec<f64>,
    /// The network's scores as click log-odds.
    #[serde(default)]
    pub calibration: Calibration,
}

impl Default for GradientConfig {
    fn default() -> Self {
        GradientConfig {
            step_size: 0.1,
            steps: 1,
            init: Vec::new(),
            calibration: Calibration::default(),
        }
    }
}

/// A user's state under the gradient-based adjuster: the adapted correction.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GradientState {
    /// The correction to the head.
    pub delta: Vec<f64>,
    /// Interactions folded in.
    pub updates: u32,
}

/// First-order MAML / Reptile on the head: each interaction takes `steps` gradient-ascent steps
/// on the click log-likelihood of the shown items, from the meta-learned initial correction.
#[derive(Clone)]
pub struct GradientAdjuster {
    frozen: Arc<Frozen>,
    features: Arc<Features>,
    /// The settings.
    pub config: GradientConfig,
}

impl GradientAdjuster {
    /// An adjuster over a frozen network.
    pub fn new(frozen: Arc<Frozen>, features: Arc<Features>, config: GradientConfig) -> Self {
        GradientAdjuster {
            frozen,
            features,
            config,
        }
    }
}

impl Adjuster for GradientAdjuster {
    type State = GradientState;

    fn prior(&self, _context: &Context) -> GradientState {
        let e = self.frozen.embed;
        let delta = if self.config.init.len() == e {
            self.config.init.clone()
        } else {
            vec![0.0; e]
        };
        GradientState { delta, updates: 0 }
    }

    fn update(&self, state: &mut GradientState, interaction: &Interaction) {
        let shown = shown_items(&self.frozen, &self.features, interaction);
        let mut grad = vec![0.0; state.delta.len()];
        for _ in 0..self.config.steps {
            grad.iter_mut().for_each(|g| *g = 0.0);
            for s in &shown {
                let z = self.config.calibration.logit(s.base)
                    + s.x
                        .iter()
                        .zip(&state.delta)
                        .map(|(a, b)| a * b)
                        .sum::<f64>();
                let y = if s.clicked { 1.0 } else { 0.0 };
                let r = y - sigmoid(z);
                for (g, x) in grad.iter_mut().zip(&s.x) {
                    *g += r * x;
                }
            }
            for (d, g) in state.delta.iter_mut().zip(&grad) {
                *d += self.config.step_size * g;
            }
        }
        state.updates += 1;
    }
}

impl HeadAdjuster for GradientAdjuster {
    fn network(&self) -> (&Frozen, &Features) {
        (&self.frozen, &self.features)
    }

    fn correction(&self, state: &GradientState) -> Vec<f64> {
        state.delta.clone()
    }

    fn draw(
        &self,
        _: &GradientState,
        _: &[f64],
        _: &mut Vec<f64>,
        _: &mut Rng,
    ) -> Option<Vec<f64>> {
        None
    }

    fn draws(&self) -> usize {
        0
    }

    fn calibration(&self) -> Calibration {
        self.config.calibration
    }
}

/// A decision of an adjusted policy, with what is needed to explain it.
#[derive(Debug, Clone, PartialEq)]
pub struct AdjustedChoice {
    /// The slate and its per-position propensities.
    pub choice: SlateChoice,
    /// The correction of the user head the slate was ranked with: a posterior draw under
    /// Thompson sampling, the mean (or the adapted value) otherwise.
    pub delta: Vec<f64>,
    /// The score of each chosen item under `delta`, in slate order.
    pub scores: Vec<f64>,
}

/// A score split into additive parts: `total()` is the score the item was ranked by. The
/// network's parts are multiplied by the adjuster's calibration scale, as in the ranking.
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

/// Reusable buffers of [`decide_with`], so a policy deciding many times allocates once.
#[derive(Debug, Clone, Default)]
pub struct DecideBuffers {
    candidates: Vec<ItemId>,
    base: Vec<f64>,
    scores: Vec<f64>,
    resampled: Vec<f64>,
}

/// Corrected scores of the candidates: the calibrated network score (`base`) plus `<h_i, delta>`.
fn corrected_scores(
    frozen: &Frozen,
    candidates: &[ItemId],
    base: &[f64],
    delta: &[f64],
    out: &mut Vec<f64>,
) {
    let e = frozen.embed;
    out.clear();
    for (c, b) in candidates.iter().zip(base) {
        let v = &frozen.item_vectors[c.index() * e..(c.index() + 1) * e];
        let extra: f64 = v.iter().zip(delta).map(|(a, d)| f64::from(*a) * d).sum();
        out.push(b + extra);
    }
}

/// The one decision path of every adjusted policy (the arena's and the server's): candidates
/// are the context's (unknown ids dropped) or the whole catalog; the calibrated network scores
/// are computed once; under Thompson sampling the correction is drawn from the adjuster's
/// posterior and the propensities come from further draws (Monte Carlo), otherwise the mean
/// (or adapted) correction ranks greedily. An empty choice when nothing can be shown.
pub fn decide_with<A: HeadAdjuster>(
    adjuster: &A,
    state: &A::State,
    context: &Context,
    k: usize,
    rng: &mut Rng,
    buf: &mut DecideBuffers,
) -> AdjustedChoice {
    let (frozen, features) = adjuster.network();
    let n = features.items();
    buf.candidates.clear();
    if context.candidates.is_empty() {
        buf.candidates.extend((0..n as u32).map(ItemId));
    } else {
        buf.candidates
            .extend(context.candidates.iter().filter(|c| c.index() < n));
    }
    if buf.candidates.is_empty() || k == 0 {
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
    let net = NetView::of(frozen, features, context);
    let scale = adjuster.calibration().scale;
    buf.base.clear();
    for c in &buf.candidates {
        buf.base.push(scale * net.base(frozen, *c));
    }
    let mean = adjuster.correction(state);
    let mut cache = Vec::new();
    let Some(delta) = adjuster.draw(state, &mean, &mut cache, rng) else {
        corrected_scores(frozen, &buf.candidates, &buf.base, &mean, &mut buf.scores);
        let choice = greedy(&buf.candidates, &buf.scores, k);
        let scores = choice
            .items
            .iter()
            .map(|c| {
                buf.candidates
                    .iter()
                    .position(|x| x == c)
                    .map_or(f64::NAN, |p| buf.scores[p])
            })
            .collect();
        return AdjustedChoice {
            choice,
            delta: mean,
            scores,
        };
    };
    corrected_scores(frozen, &buf.candidates, &buf.base, &delta, &mut buf.scores);
    let chosen = top_k(&buf.scores, k);
    let scores: Vec<f64> = chosen.iter().map(|&i| buf.scores[i]).collect();
    let (candidates, base, resampled) = (&buf.candidates, &buf.base, &mut buf.resampled);
    let propensities = monte_carlo_marginals(&chosen, adjuster.draws(), rng, |rng| {
        let d = adjuster
            .draw(state, &mean, &mut cache, rng)
            .unwrap_or_else(|| mean.clone());
        corrected_scores(frozen, candidates, base, &d, resampled);
        top_k(resampled, k)
    });
    AdjustedChoice {
        choice: SlateChoice {
            items: chosen.iter().map(|&i| buf.candidates[i]).collect(),
            propensities,
            slate_propensity: None,
        },
        delta,
        scores,
    }
}

/// Splits the score of `item` for `context` under the correction `delta` into its additive
/// parts (see [`ScoreParts`]); their sum is the score [`decide_with`] ranked by.
pub fn explain_with<A: HeadAdjuster>(
    adjuster: &A,
    context: &Context,
    delta: &[f64],
    item: ItemId,
) -> ScoreParts {
    explain_slate_with(adjuster, context, delta, &[item])
        .pop()
        .expect("one part per item")
}

/// [`explain_with`] for several items of one decision: the user tower runs once for all of
/// them, which is what a server explaining a whole slate needs.
pub fn explain_slate_with<A: HeadAdjuster>(
    adjuster: &A,
    context: &Context,
    delta: &[f64],
    items: &[ItemId],
) -> Vec<ScoreParts> {
    let (f, features) = adjuster.network();
    let scale = adjuster.calibration().scale;
    let mut view = UserView::default();
    features.user_view(context, &mut view);
    let e = f.embed;
    let parts = f.user_parts(&view.input, &view.clicked, &view.ignored);
    items
        .iter()
        .map(|&item| {
            let i = item.index();
            let h = &f.item_vectors[i * e..(i + 1) * e];
            let dot = |a: &[f32]| -> f64 {
                scale * a.iter().zip(h).map(|(x, y)| f64::from(x * y)).sum::<f64>()
            };
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
                item: scale * f64::from(f.item_bias[i]),
                session_flags: scale * flags,
                top_click,
            }
        })
        .collect()
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

/// A policy that serves each user with the network's head corrected by their adjuster state.
pub struct AdjustedPolicy<A: HeadAdjuster = BayesianAdjuster> {
    name: String,
    adjuster: A,
    states: std::collections::HashMap<UserKey, A::State>,
    buffers: DecideBuffers,
}

impl<A: HeadAdjuster> AdjustedPolicy<A> {
    /// A policy over an adjuster.
    pub fn new(name: &str, adjuster: A) -> Self {
        AdjustedPolicy {
            name: name.to_owned(),
            adjuster,
            states: std::collections::HashMap::new(),
            buffers: DecideBuffers::default(),
        }
    }

    /// The adjuster.
    pub fn adjuster(&self) -> &A {
        &self.adjuster
    }

    /// The adjuster, to change its settings between users (meta-training does).
    pub fn adjuster_mut(&mut self) -> &mut A {
        &mut self.adjuster
    }

    /// Removes and returns every user's state (meta-training reads each user's adapted state).
    pub fn drain_states(&mut self) -> Vec<(UserKey, A::State)> {
        self.states.drain().collect()
    }

    /// A user's current state, if they have been seen.
    pub fn user_state(&self, user: &UserKey) -> Option<&A::State> {
        self.states.get(user)
    }

    fn state(&mut self, context: &Context) -> A::State {
        self.states
            .entry(context.user.clone())
            .or_insert_with(|| self.adjuster.prior(context))
            .clone()
    }
}

impl<A: HeadAdjuster> Policy for AdjustedPolicy<A> {
    fn name(&self) -> &str {
        &self.name
    }

    fn start_user(&mut self, context: &Context) {
        let prior = self.adjuster.prior(context);
        self.states.insert(context.user.clone(), prior);
    }

    fn decide(&mut self, context: &Context, k: usize, rng: &mut Rng) -> SlateChoice {
        let state = self.state(context);
        decide_with(&self.adjuster, &state, context, k, rng, &mut self.buffers).choice
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
    /// The adjuster kind: `bayes` or `gradient`.
    pub kind: String,
    /// The Bayesian adjuster's chosen settings (used when `kind` is `bayes`).
    pub config: BayesConfig,
    /// The gradient-based adjuster's settings, with its meta-learned initial correction (used
    /// when `kind` is `gradient`).
    #[serde(default)]
    pub gradient: Option<GradientConfig>,
    /// `(setting, mean reward per training user)` for every setting tried: the prior scale of
    /// `bayes` (with Thompson sampling), the step size of `gradient`.
    pub grid: Vec<(f64, f64)>,
    /// `(prior scale, mean reward per training user)` of `bayes` deciding with the posterior
    /// mean instead of a Thompson draw. Empty for `gradient` and in manifests written before
    /// meta-training compared the two.
    #[serde(default)]
    pub mean_grid: Vec<(f64, f64)>,
    /// The learned shape of `bayes`'s prior covariance ([`prior_shape`]), when the chosen
    /// setting uses it; empty for the identity.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub prior_shape: Vec<f64>,
    /// Like `grid` and `mean_grid`, with the learned prior shape: `(prior scale, Thompson
    /// sampling, mean reward per training user)`. Empty when no shape was learned.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub shaped_grid: Vec<(f64, bool, f64)>,
    /// Training users per setting.
    pub users: usize,
    /// SHA-256 of the weights the adjuster was fitted to (hex): a model trained further since
    /// is refused until meta-trained again. Absent in files written before it was recorded,
    /// which are refused likewise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weights_sha256: Option<String>,
}

/// The adjuster a model was meta-trained with, by kind: what a bundle serves.
#[derive(Debug, Clone, PartialEq)]
pub enum AdjusterSpec {
    /// The Bayesian correction of the head.
    Bayes {
        /// Its settings.
        config: BayesConfig,
        /// The learned shape of the prior covariance; empty for the identity.
        prior_shape: Vec<f64>,
    },
    /// The gradient-based (Reptile) correction.
    Gradient {
        /// Its settings, with the meta-learned initial correction.
        config: GradientConfig,
    },
}

impl AdjusterSpec {
    /// The kind's name, as `adjuster.json` writes it.
    pub fn kind(&self) -> &'static str {
        match self {
            AdjusterSpec::Bayes { .. } => "bayes",
            AdjusterSpec::Gradient { .. } => "gradient",
        }
    }
}

impl AdjusterManifest {
    /// The typed adjuster this file describes, with its settings checked; the error says what
    /// is wrong with the file.
    pub fn spec(&self) -> Result<AdjusterSpec, String> {
        match self.kind.as_str() {
            "bayes" => {
                let c = self.config;
                if !(c.prior_scale.is_finite() && c.prior_scale > 0.0) {
                    return Err(format!("prior_scale {} must be positive", c.prior_scale));
                }
                if c.thompson && !(1..=1024).contains(&c.draws) {
                    return Err(format!("draws {} must be 1 to 1024", c.draws));
                }
                Ok(AdjusterSpec::Bayes {
                    config: c,
                    prior_shape: self.prior_shape.clone(),
                })
            }
            "gradient" => {
                let config = self
                    .gradient
                    .clone()
                    .ok_or("kind `gradient` without `gradient` settings")?;
                if !(config.step_size.is_finite() && config.step_size > 0.0) {
                    return Err(format!("step_size {} must be positive", config.step_size));
                }
                Ok(AdjusterSpec::Gradient { config })
            }
            other => Err(format!(
                "unknown adjuster kind `{other}` (expected bayes or gradient)"
            )),
        }
    }
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
    fn a_centred_gaussian_has_the_inverse_covariance_as_precision() {
        let cov = [2.0, 0.5, 0.5, 1.0];
        let g = GaussianPosterior::centred(&cov, 2).unwrap();
        // precision x covariance = I.
        for a in 0..2 {
            for b in 0..2 {
                let v: f64 = (0..2)
                    .map(|k| g.precision[a * 2 + k] * cov[k * 2 + b])
                    .sum();
                assert!(
                    (v - f64::from(u8::from(a == b))).abs() < 1e-12,
                    "{a},{b}: {v}"
                );
            }
        }
        assert_eq!(g.mean(&mut Vec::new()), vec![0.0, 0.0]);
        // Not symmetric, not positive definite, or the wrong size: refused.
        assert!(GaussianPosterior::centred(&[1.0, 0.5, 0.4, 1.0], 2).is_none());
        assert!(GaussianPosterior::centred(&[1.0, 2.0, 2.0, 1.0], 2).is_none());
        assert!(GaussianPosterior::centred(&[1.0, 0.0, 0.0], 2).is_none());
    }

    #[test]
    fn the_learned_prior_shape_follows_the_corrections_and_has_trace_d() {
        // Corrections along the first axis only: the shape puts most variance there, the ridge
        // keeps the second axis possible.
        let corrections = vec![vec![2.0, 0.0], vec![-2.0, 0.0], vec![1.0, 0.0]];
        let s = prior_shape(&corrections, 2, 0.1).unwrap();
        assert!((s[0] + s[3] - 2.0).abs() < 1e-12, "{s:?}");
        assert!(s[0] > 10.0 * s[3] && s[3] > 0.0, "{s:?}");
        assert_eq!(s[1], s[2]);
        assert!(prior_shape(&[vec![0.0, 0.0]], 2, 0.1).is_none());
        assert!(prior_shape(&[], 2, 0.1).is_none());
        assert!(prior_shape(&[vec![1.0]], 2, 0.1).is_none());
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
        let prior = adj.prior(&Context::default());
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
            plain.prior(&Context::default()),
            GaussianPosterior::isotropic(&vec![0.0; d], 0.25)
        );
        assert!(
            BayesianAdjuster::new(frozen, features, config)
                .with_prior_shape(&[1.0])
                .is_err()
        );
    }

    /// A trained-shape network over a small catalog, with weights moved off their zero start.
    fn network() -> (Arc<Frozen>, Arc<Features>) {
        use crate::train::{TrainConfig, Trainer};
        let cat = crate::train::tests::catalog(10);
        let trainer = Trainer::new(
            &cat,
            metarec_core::RewardFn::default(),
            TrainConfig::default(),
        )
        .unwrap();
        (
            Arc::new(trainer.frozen().clone()),
            Arc::new(trainer.features.clone()),
        )
    }

    fn interaction(items: &[u32], clicks: &[bool]) -> Interaction {
        let context = Context::for_user(UserKey::from("u"));
        let decision = metarec_core::Decision {
            event_id: "e".into(),
            slate: metarec_core::Slate::new(items.iter().copied().map(ItemId).collect()).unwrap(),
            propensities: vec![1.0; items.len()],
            slate_propensity: None,
            positions: None,
            policy_id: "p".into(),
            model_version: String::new(),
        };
        let feedback = metarec_core::Feedback {
            clicks: clicks.to_vec(),
            purchases: vec![false; clicks.len()],
            revenue: vec![0.0; clicks.len()],
        };
        Interaction {
            context,
            decision,
            feedback,
        }
    }

    #[test]
    fn the_gradient_adjuster_starts_at_its_meta_learned_init_and_takes_exact_steps() {
        let (frozen, features) = network();
        let e = frozen.embed;
        let init: Vec<f64> = (0..e).map(|k| 0.05 * k as f64 - 0.2).collect();
        let config = GradientConfig {
            step_size: 0.3,
            steps: 1,
            init: init.clone(),
            calibration: Calibration::default(),
        };
        let adj = GradientAdjuster::new(frozen.clone(), features.clone(), config);
        let ctx = Context::for_user(UserKey::from("u"));
        let mut state = adj.prior(&ctx);
        // With zero interactions the state is the prior.
        assert_eq!(state.delta, init);
        assert_eq!(state.updates, 0);
        let it = interaction(&[2, 5, 7], &[true, false, false]);
        adj.update(&mut state, &it);
        // One step of gradient ascent on sum_k y_k log p_k + (1 - y_k) log(1 - p_k), computed
        // here from the network's own scores.
        let (mut scratch, mut g) = (Vec::new(), Vec::new());
        let mut view = UserView::default();
        features.user_view(&it.context, &mut view);
        frozen.user(
            &view.input,
            &view.clicked,
            &view.ignored,
            &mut scratch,
            &mut g,
        );
        let mut expected = init.clone();
        for (&i, y) in [2usize, 5, 7].iter().zip([1.0, 0.0, 0.0]) {
            let x: Vec<f64> = frozen.item_vectors[i * e..(i + 1) * e]
                .iter()
                .map(|&v| f64::from(v))
                .collect();
            let z = f64::from(frozen.score(&g, i, false, false))
                + x.iter().zip(&init).map(|(a, b)| a * b).sum::<f64>();
            let p = 1.0 / (1.0 + (-z).exp());
            for (d, xv) in expected.iter_mut().zip(&x) {
                *d += 0.3 * (y - p) * xv;
            }
        }
        for (a, b) in state.delta.iter().zip(&expected) {
            assert!((a - b).abs() < 1e-9, "{:?} vs {expected:?}", state.delta);
        }
        assert_eq!(state.updates, 1);
    }

    #[test]
    fn a_greedy_policy_with_a_zero_correction_ranks_by_the_network() {
        let (frozen, features) = network();
        let adj = BayesianAdjuster::new(
            frozen.clone(),
            features.clone(),
            BayesConfig {
                thompson: false,
                ..BayesConfig::default()
            },
        );
        let mut policy = AdjustedPolicy::new("adjusted", adj);
        let ctx = Context::for_user(UserKey::from("u"));
        let mut rng = metarec_core::rng_for(1, 1);
        let choice = policy.decide(&ctx, 3, &mut rng);
        let mut view = UserView::default();
        features.user_view(&ctx, &mut view);
        let (mut scratch, mut g) = (Vec::new(), Vec::new());
        frozen.user(
            &view.input,
            &view.clicked,
            &view.ignored,
            &mut scratch,
            &mut g,
        );
        let scores: Vec<f64> = (0..10)
            .map(|i| f64::from(frozen.score(&g, i, false, false)))
            .collect();
        let best: Vec<ItemId> = top_k(&scores, 3)
            .into_iter()
            .map(|i| ItemId(i as u32))
            .collect();
        assert_eq!(choice.items, best);
        assert_eq!(choice.propensities, vec![1.0; 3]);
        // A click moves the posterior and with it the user's scores.
        policy.observe(&interaction(&[0, 1, 2], &[false, true, false]));
        let state = policy.user_state(&UserKey::from("u")).unwrap();
        assert_eq!(state.observations, 3);
        assert!(
            policy
                .adjuster()
                .correction(state)
                .iter()
                .any(|d| d.abs() > 1e-6)
        );
    }

    #[test]
    fn calibration_recovers_the_click_model_that_generated_the_sample() {
        // Clicks drawn with log-odds -2.5 + 0.7 x for scores x in [-3, 3].
        let mut rng = metarec_core::rng_for(9, 9);
        let samples: Vec<(f64, bool)> = (0..40_000)
            .map(|j| {
                let x = -3.0 + 6.0 * (j as f64 / 40_000.0);
                let p = sigmoid(-2.5 + 0.7 * x);
                (x, rand::Rng::random::<f64>(&mut rng) < p)
            })
            .collect();
        let c = fit_calibration(&samples);
        assert!((c.offset + 2.5).abs() < 0.1, "{c:?}");
        assert!((c.scale - 0.7).abs() < 0.05, "{c:?}");
        assert_eq!(fit_calibration(&[]), Calibration::default());
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
