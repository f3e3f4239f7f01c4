//! The one decision path of every adjusted policy, [`decide_with`] (and
//! [`decide_exploring`], the same with an explicit [`Exploration`]), and its explanation,
//! [`explain_with`] / [`explain_slate_with`]: what they return ([`AdjustedChoice`],
//! [`ScoreParts`]) and the [`DecideBuffers`] a policy reuses between decisions.

use super::columns::{corrected_scores, corrected_scores_many, spread_columns};
use super::{HeadAdjuster, HeadInput, Shown, TowerMemo, shown_items_read};
use crate::features::UserView;
use metarec_core::explore::{
    epsilon_greedy, greedy, monte_carlo_marginals_scored, plackett_luce, top_k,
};
use metarec_core::{Context, ItemId, Rng, SlateChoice};
use serde::{Deserialize, Serialize};

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
    /// `<Wc mean(h_clicked), h_i>`: the items clicked earlier in the session. With the set
    /// encoder it also holds that encoder's share (`UserParts::set`): it reads clicks and
    /// ignores together, and clicks are the evidence it mostly turns on.
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
    /// The network's view of the context last read (decided, or updated on by a policy).
    tower: TowerMemo,
    /// The candidates' item vectors by dimension, widened to f64 once per decision rather
    /// than once per draw: row `k` holds coordinate `k` of every candidate, so a score pass
    /// runs over independent candidates (see [`corrected_scores`]).
    columns: Vec<f64>,
    /// The candidates' `<g, h_i>` in f32, as the network scores them.
    dots: Vec<f32>,
    /// Per catalog item: 1 when the session showed it without a click, 2 when it was clicked
    /// (set for the history's items only and cleared after use).
    marks: Vec<u8>,
    /// What the draws of one decision share (the Bayesian adjuster's Cholesky factor).
    cache: Vec<f64>,
    /// The current Monte Carlo draw of the correction.
    draw: Vec<f64>,
    /// Every Monte Carlo draw of one decision, one after the other.
    draws: Vec<f64>,
    /// The candidates' scores under every Monte Carlo draw, one draw after the other.
    draw_scores: Vec<f64>,
    /// The greedy correction of the last decision's state, which a policy hands to the
    /// update of that state ([`HeadAdjuster::update_from_correction`]); `has_correction` says
    /// whether the last decision computed one (the buffer is reused, not reallocated).
    correction: Vec<f64>,
    has_correction: bool,
}

impl DecideBuffers {
    /// The greedy correction ([`HeadAdjuster::correction`]) of the state the last decision was
    /// made on, if it computed one.
    pub(super) fn correction(&self) -> Option<&[f64]> {
        self.has_correction.then_some(&self.correction[..])
    }

    /// Forgets the user tower's output kept from the last context read. Buffers serve one
    /// network: call this after changing the network (or the adjuster) they are used with,
    /// since a context that reads as the same view would otherwise reuse the old network's
    /// head.
    pub fn forget_network(&mut self) {
        self.tower.forget();
    }

    /// The shown items of `interaction` ([`super::shown_items`]), the user tower read through
    /// these buffers' memo.
    pub(super) fn shown_items(
        &mut self,
        frozen: &crate::model::Frozen,
        features: &crate::features::Features,
        interaction: &metarec_core::Interaction,
        input: HeadInput,
    ) -> Vec<Shown> {
        shown_items_read(frozen, features, interaction, input, &mut self.tower)
    }

    /// Keeps `mean` as the last decision's greedy correction.
    fn keep_correction(&mut self, mean: &[f64]) {
        self.correction.clear();
        self.correction.extend_from_slice(mean);
        self.has_correction = true;
    }
}

/// How a decision explores around the corrected scores: the server's `--explore`.
///
/// Every variant logs exact propensities where the explorer has a closed form: the
/// probability, given the context and the user's state, that the decision puts that item at
/// that position.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum Exploration {
    /// No exploration beyond the adjuster's own ([`decide_with`]): greedy on the corrected
    /// scores, with propensity 1 per position; a Bayesian adjuster meta-trained to sample
    /// explores by Thompson sampling, with Monte Carlo propensities.
    #[default]
    Greedy,
    /// Epsilon-greedy on whole slates (`metarec_core::explore::epsilon_greedy`): with
    /// probability `epsilon` a uniformly random ordered slate, otherwise the greedy one. The
    /// marginal of the item at position `j` is `(1 - epsilon) [it is greedy's j-th] +
    /// epsilon / n` over `n` candidates, exact at every position.
    Epsilon(f64),
    /// Plackett-Luce on the corrected scores divided by `temperature`
    /// (`metarec_core::explore::plackett_luce`): the slate propensity is exact, and so are the
    /// marginals of positions 0 and 1, and of position 2 over at most
    /// `metarec_core::explore::EXACT_POSITION_2_MAX` candidates; later positions' marginals
    /// are estimated from `draws` further rankings.
    Softmax {
        /// The temperature: finite and positive.
        temperature: f64,
        /// Monte Carlo rankings for the positions without a closed form (at least 1).
        draws: usize,
    },
}

impl Exploration {
    /// Checks the settings: epsilon in (0, 1], a finite positive temperature, at least one
    /// Monte Carlo draw.
    pub fn check(&self) -> Result<(), String> {
        match *self {
            Exploration::Greedy => Ok(()),
            Exploration::Epsilon(e) if e > 0.0 && e <= 1.0 => Ok(()),
            Exploration::Epsilon(e) => Err(format!("epsilon {e} is outside (0, 1]")),
            Exploration::Softmax { temperature, draws } => {
                if !(temperature.is_finite() && temperature > 0.0) {
                    Err(format!(
                        "temperature {temperature} is not a finite positive number"
                    ))
                } else if draws == 0 {
                    Err("the softmax explorer needs at least one Monte Carlo draw".into())
                } else {
                    Ok(())
                }
            }
        }
    }
}

impl std::fmt::Display for Exploration {
    /// The form `--explore` takes: `greedy`, `epsilon:E` or `softmax:T`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Exploration::Greedy => write!(f, "greedy"),
            Exploration::Epsilon(e) => write!(f, "epsilon:{e}"),
            Exploration::Softmax { temperature, .. } => write!(f, "softmax:{temperature}"),
        }
    }
}

/// An empty decision: nothing can be shown.
fn nothing() -> AdjustedChoice {
    AdjustedChoice {
        choice: SlateChoice {
            items: Vec::new(),
            propensities: Vec::new(),
            slate_propensity: None,
        },
        delta: Vec::new(),
        scores: Vec::new(),
    }
}

/// Fills `buf.candidates` (the context's, unknown ids dropped, or the whole catalog),
/// `buf.columns` (their item vectors by dimension) and `buf.base` (their calibrated network
/// scores); false when there is no candidate.
fn candidates_and_base<A: HeadAdjuster>(
    adjuster: &A,
    context: &Context,
    buf: &mut DecideBuffers,
) -> bool {
    let (frozen, features) = adjuster.network();
    let n = features.items().min(frozen.items());
    buf.candidates.clear();
    if context.candidates.is_empty() {
        buf.candidates.extend((0..n as u32).map(ItemId));
    } else {
        buf.candidates
            .extend(context.candidates.iter().filter(|c| c.index() < n));
    }
    if buf.candidates.is_empty() {
        return false;
    }
    let net = buf
        .tower
        .read(frozen, features, context, adjuster.head_input());
    let (e, m) = (frozen.embed, buf.candidates.len());
    // Every value is written by `spread_columns`: resizing without clearing zeroes only
    // what a longer list adds.
    buf.columns.resize(e * m, 0.0);
    buf.dots.resize(m, 0.0);
    spread_columns(
        &frozen.item_vectors,
        e,
        &buf.candidates,
        &net.head,
        &mut buf.columns,
        &mut buf.dots,
    );
    // The session flags by item, set from the history once rather than searched for in it per
    // candidate, and cleared again so the buffer stays all zeros between decisions.
    let view = &net.view;
    let marked = view.flagged_ignored.iter().chain(&view.flagged_clicked);
    let size = marked.clone().map(|i| i.index() + 1).max().unwrap_or(0);
    if buf.marks.len() < size {
        buf.marks.resize(size, 0);
    }
    for item in &view.flagged_ignored {
        buf.marks[item.index()] |= 1;
    }
    for item in &view.flagged_clicked {
        buf.marks[item.index()] |= 2;
    }
    let scale = adjuster.calibration().scale;
    buf.base.clear();
    for (c, dot) in buf.candidates.iter().zip(&buf.dots) {
        let i = c.index();
        let mut s = frozen.item_bias[i] + dot;
        let mark = buf.marks.get(i).copied().unwrap_or(0);
        if mark & 1 != 0 {
            s += frozen.flags[0];
        }
        if mark & 2 != 0 {
            s += frozen.flags[1];
        }
        buf.base.push(scale * f64::from(s));
    }
    for item in marked {
        buf.marks[item.index()] = 0;
    }
    true
}

/// The corrected score of each chosen item, in slate order (`scores` are the candidates').
fn chosen_scores(candidates: &[ItemId], scores: &[f64], items: &[ItemId]) -> Vec<f64> {
    items
        .iter()
        .map(|c| {
            candidates
                .iter()
                .position(|x| x == c)
                .map_or(f64::NAN, |p| scores[p])
        })
        .collect()
}

/// A decision that explores as `exploration` says: [`decide_with`] for
/// [`Exploration::Greedy`]; otherwise the candidates' scores under the greedy correction (the
/// posterior mean, or the adapted value) go to the explorer, whose propensities are logged.
/// A Bayesian adjuster meta-trained to sample does not also draw its correction here:
/// Thompson sampling's propensities are Monte Carlo estimates, and the point of an explicit
/// explorer is propensities that are exact.
pub fn decide_exploring<A: HeadAdjuster>(
    adjuster: &A,
    state: &A::State,
    context: &Context,
    k: usize,
    exploration: Exploration,
    rng: &mut Rng,
    buf: &mut DecideBuffers,
) -> AdjustedChoice {
    if exploration == Exploration::Greedy {
        return decide_with(adjuster, state, context, k, rng, buf);
    }
    buf.has_correction = false;
    if k == 0 || !candidates_and_base(adjuster, context, buf) {
        return nothing();
    }
    let mean = adjuster.correction(state);
    buf.keep_correction(&mean);
    corrected_scores(&buf.columns, &buf.base, &mean, &mut buf.scores);
    let choice = match exploration {
        Exploration::Epsilon(epsilon) => {
            epsilon_greedy(&buf.candidates, &buf.scores, k, epsilon, rng)
        }
        Exploration::Softmax { temperature, draws } => {
            plackett_luce(&buf.candidates, &buf.scores, k, temperature, draws, rng)
        }
        Exploration::Greedy => greedy(&buf.candidates, &buf.scores, k),
    };
    let scores = chosen_scores(&buf.candidates, &buf.scores, &choice.items);
    AdjustedChoice {
        choice,
        delta: mean,
        scores,
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
    buf.has_correction = false;
    if k == 0 || !candidates_and_base(adjuster, context, buf) {
        return nothing();
    }
    let mean = adjuster.correction_caching(state, &mut buf.cache);
    buf.keep_correction(&mean);
    if !adjuster.draw_into(state, &mean, &mut buf.cache, rng, &mut buf.draw) {
        corrected_scores(&buf.columns, &buf.base, &mean, &mut buf.scores);
        let chosen = top_k(&buf.scores, k);
        return AdjustedChoice {
            choice: SlateChoice {
                items: chosen.iter().map(|&i| buf.candidates[i]).collect(),
                propensities: vec![1.0; chosen.len()],
                slate_propensity: Some(1.0),
            },
            delta: mean,
            scores: chosen.iter().map(|&i| buf.scores[i]).collect(),
        };
    }
    let delta = buf.draw.clone();
    corrected_scores(&buf.columns, &buf.base, &delta, &mut buf.scores);
    let chosen = top_k(&buf.scores, k);
    let scores: Vec<f64> = chosen.iter().map(|&i| buf.scores[i]).collect();
    let DecideBuffers {
        columns,
        base,
        resampled,
        cache,
        draws,
        draw_scores,
        ..
    } = buf;
    // The Monte Carlo draws are made together (the same random numbers in the same order as
    // one at a time), then each ranks the candidates; a draw that cannot be made is the mean,
    // as for a single draw.
    let count = adjuster.draws();
    let d = mean.len();
    if !adjuster.draws_into(state, &mean, cache, rng, count, draws) || draws.len() != count * d {
        draws.clear();
        for _ in 0..count {
            draws.extend_from_slice(&mean);
        }
    }
    // Every draw's scores in one pass over the candidates (the same bits as scoring each draw
    // alone), handed to the estimate one draw at a time.
    corrected_scores_many(columns, base, draws, d, draw_scores);
    let mut next = draw_scores.chunks_exact(base.len().max(1));
    let propensities = monte_carlo_marginals_scored(&chosen, count, rng, resampled, |_, scores| {
        match next.next() {
            Some(scored) => {
                scores.clear();
                scores.extend_from_slice(scored);
            }
            None => corrected_scores(columns, base, &mean, scores),
        }
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
    // The head's parts are those of what the tower read: the user as new, when the adjuster
    // is the ablation that reads no history (no click then moves the head). The session flags
    // read the whole context either way.
    let mut bare = UserView::default();
    let head_view = adjuster
        .head_input()
        .tower_view(features, context, &view, &mut bare);
    let parts = f.user_parts_of(head_view);
    // Each click's `Wc h_j` once for the whole slate, not once per explained item: with a long
    // history these matrix-vector products were most of an explanation's cost.
    let transforms: Vec<(ItemId, Vec<f32>)> = head_view
        .clicked
        .iter()
        .map(|&j| (j, f.click_transform(j)))
        .collect();
    items
        .iter()
        .map(|&item| {
            let i = item.index();
            let h = &f.item_vectors[i * e..(i + 1) * e];
            let dot = |a: &[f32]| -> f64 {
                scale * a.iter().zip(h).map(|(x, y)| f64::from(x * y)).sum::<f64>()
            };
            let top_click = transforms
                .iter()
                .map(|(j, t)| (*j, dot(t) / head_view.clicked.len() as f64))
                .max_by(|a, b| a.1.abs().total_cmp(&b.1.abs()));
            let (ignored, clicked) = view.flags(item);
            let mut flags = 0.0;
            if ignored {
                flags += f64::from(f.flags[0]);
            }
            if clicked {
                flags += f64::from(f.flags[1]);
            }
            ScoreParts {
                context: dot(&parts.own),
                past_clicks: match f.encoder() {
                    crate::model::Encoder::Mean => dot(&parts.clicks),
                    crate::model::Encoder::Set => dot(&parts.clicks) + dot(&parts.set),
                },
                past_ignores: dot(&parts.ignores),
                adaptation: h.iter().zip(delta).map(|(a, b)| f64::from(*a) * b).sum(),
                item: scale * f64::from(f.item_bias[i]),
                session_flags: scale * flags,
                top_click,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adjust::NetView;
    use crate::adjust::{
        BayesConfig, BayesianAdjuster, GaussianPosterior, GradientAdjuster, GradientConfig,
    };
    use crate::features::Features;
    use crate::model::Frozen;
    use metarec_core::explore::{monte_carlo_marginals, top_k};
    use metarec_core::{Adjuster, PastEvent, UserKey};
    use rand::RngCore;
    use rand_distr::{Distribution, StandardNormal};
    use std::sync::Arc;

    /// The decision path as it was before [`DecideBuffers`] kept the candidates' columns, the
    /// draws and the rankings: one candidate at a time, the session flags searched for in the
    /// history, a fresh vector per draw and per ranking, the chosen scores found by position.
    /// `draw` is the adjuster's sampler written the same plain way (`None`: greedy).
    fn reference_decide<A: HeadAdjuster>(
        adjuster: &A,
        state: &A::State,
        context: &Context,
        k: usize,
        rng: &mut Rng,
        draw: &dyn Fn(&mut Rng) -> Option<Vec<f64>>,
    ) -> AdjustedChoice {
        let (frozen, features) = adjuster.network();
        let n = features.items().min(frozen.items());
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
        if k == 0 || candidates.is_empty() {
            return nothing();
        }
        let net = NetView::of(frozen, features, context, adjuster.head_input());
        let scale = adjuster.calibration().scale;
        let base: Vec<f64> = candidates
            .iter()
            .map(|c| scale * net.base(frozen, *c))
            .collect();
        let e = frozen.embed;
        let score = |delta: &[f64]| -> Vec<f64> {
            candidates
                .iter()
                .zip(&base)
                .map(|(c, b)| {
                    let v = &frozen.item_vectors[c.index() * e..(c.index() + 1) * e];
                    b + v
                        .iter()
                        .zip(delta)
                        .map(|(a, d)| f64::from(*a) * d)
                        .sum::<f64>()
                })
                .collect()
        };
        let mean = adjuster.correction(state);
        let Some(delta) = draw(rng) else {
            let scores = score(&mean);
            let choice = greedy(&candidates, &scores, k);
            let chosen: Vec<f64> = choice
                .items
                .iter()
                .map(|c| scores[candidates.iter().position(|x| x == c).unwrap()])
                .collect();
            return AdjustedChoice {
                choice,
                delta: mean,
                scores: chosen,
            };
        };
        let scores = score(&delta);
        let chosen = top_k(&scores, k);
        let propensities = monte_carlo_marginals(&chosen, adjuster.draws(), rng, |rng| {
            top_k(&score(&draw(rng).unwrap()), k)
        });
        AdjustedChoice {
            choice: SlateChoice {
                items: chosen.iter().map(|&i| candidates[i]).collect(),
                propensities,
                slate_propensity: None,
            },
            delta,
            scores: chosen.iter().map(|&i| scores[i]).collect(),
        }
    }

    /// Thompson sampling's draw written plainly: `mu + L^{-T} z` with a fresh factor.
    fn plain_draw(state: &GaussianPosterior, rng: &mut Rng) -> Vec<f64> {
        let d = state.dim;
        let mut factor = state.precision.clone();
        assert!(metarec_core::linalg::cholesky_in_place(&mut factor, d));
        let mu = state.mean(&mut Vec::new());
        let mut z: Vec<f64> = (0..d).map(|_| StandardNormal.sample(rng)).collect();
        for i in (0..d).rev() {
            let mut s = z[i];
            for k in i + 1..d {
                s -= factor[k * d + i] * z[k];
            }
            z[i] = s / factor[i * d + i];
        }
        mu.iter().zip(&z).map(|(m, v)| m + v).collect()
    }

    #[test]
    fn the_buffered_decision_is_bit_identical_to_the_plain_one() {
        use crate::train::{TrainConfig, Trainer};
        let cat = crate::train::tests::catalog(37);
        let trainer = Trainer::new(
            &cat,
            metarec_core::RewardFn::default(),
            TrainConfig::default(),
        )
        .unwrap();
        // Session flags and item biases away from their zero start, so both count.
        let mut frozen: Frozen = trainer.frozen().clone();
        frozen.flags = [0.4, -0.9];
        for (i, b) in frozen.item_bias.iter_mut().enumerate() {
            *b = (i as f32 * 0.7).sin();
        }
        let (frozen, features) = (Arc::new(frozen), Arc::new(trainer.features.clone()));
        let config = BayesConfig {
            prior_scale: 0.8,
            ..BayesConfig::default()
        };
        let thompson = BayesianAdjuster::new(frozen.clone(), features.clone(), config);
        let mean = BayesianAdjuster::new(
            frozen.clone(),
            features.clone(),
            BayesConfig {
                thompson: false,
                ..config
            },
        );
        let gradient = GradientAdjuster::new(frozen, features, GradientConfig::default());
        // One set of buffers across every decision, as a policy keeps them.
        let mut buf = DecideBuffers::default();
        for seed in 0..6u64 {
            let mut rng = metarec_core::rng_for(seed, 9);
            let mut posterior = thompson.prior();
            let mut adapted = gradient.prior();
            for round in 0..8u32 {
                let mut context = Context::for_user(UserKey::from("u"));
                context.tokens = vec![format!("country=c{}", (seed + u64::from(round)) % 3)];
                context.session.step = round;
                context.session.history = (0..round * 3)
                    .map(|j| PastEvent {
                        item: ItemId((rng.next_u32() % 40) % (7 + 5 * round)),
                        click: j % 4 == 1,
                        purchase: false,
                    })
                    .collect();
                if round % 3 == 1 {
                    // Candidates with a repeat and ids beyond the catalog, which are dropped.
                    context.candidates = (0..12).map(|j| ItemId((j * 5 + round) % 41)).collect();
                    context.candidates.push(context.candidates[2]);
                }
                let k = [5, 3, 1, 8][round as usize % 4];
                let plain_thompson = |rng: &mut Rng| Some(plain_draw(&posterior, rng));
                let mut a = rng.clone();
                let mut b = rng.clone();
                let want =
                    reference_decide(&thompson, &posterior, &context, k, &mut a, &plain_thompson);
                let got = decide_with(&thompson, &posterior, &context, k, &mut b, &mut buf);
                assert_eq!(got, want, "seed {seed}, round {round}");
                assert_eq!(a.next_u64(), b.next_u64());
                let want = reference_decide(&mean, &posterior, &context, k, &mut a, &|_| None);
                let got = decide_with(&mean, &posterior, &context, k, &mut b, &mut buf);
                assert_eq!(got, want, "seed {seed}, round {round}");
                let want = reference_decide(&gradient, &adapted, &context, k, &mut a, &|_| None);
                let got = decide_with(&gradient, &adapted, &context, k, &mut b, &mut buf);
                assert_eq!(got, want, "seed {seed}, round {round}");
                assert!(buf.marks.iter().all(|&m| m == 0));
                // The user reacts to the slate: a click on one item adapts both states.
                let mut shown: Vec<u32> = got.choice.items.iter().map(|i| i.0).collect();
                // A slate shows an item once; the repeated candidate may be chosen twice.
                shown.dedup();
                let clicks: Vec<bool> = (0..shown.len()).map(|j| j == round as usize % 3).collect();
                let mut it = crate::adjust::test_support::interaction(&shown, &clicks);
                it.context = context;
                thompson.update(&mut posterior, &it);
                gradient.update(&mut adapted, &it);
                rng = b;
            }
        }
    }

    #[test]
    fn explicit_exploration_logs_the_explorers_exact_propensities_around_the_greedy_slate() {
        let (frozen, features) = crate::adjust::test_support::network();
        let adjuster = BayesianAdjuster::new(frozen, features, BayesConfig::default());
        let state = adjuster.prior();
        let mut context = Context::for_user(UserKey::from("u"));
        context.candidates = (0..6).map(ItemId).collect();
        let mut buf = DecideBuffers::default();
        let mut rng = metarec_core::rng_for(4, 4);
        // The default configuration samples (Thompson); the explicit explorers rank around the
        // posterior mean instead, whose greedy slate is fixed.
        let mean = BayesianAdjuster::new(
            Arc::new(adjuster.frozen().clone()),
            Arc::new(adjuster.features().clone()),
            BayesConfig {
                thompson: false,
                ..BayesConfig::default()
            },
        );
        let greedy = decide_with(&mean, &state, &context, 3, &mut rng, &mut buf);
        assert_eq!(greedy.choice.propensities, vec![1.0; 3]);
        for _ in 0..50 {
            let d = decide_exploring(
                &adjuster,
                &state,
                &context,
                3,
                Exploration::Epsilon(0.3),
                &mut rng,
                &mut buf,
            );
            for (j, (item, p)) in d
                .choice
                .items
                .iter()
                .zip(&d.choice.propensities)
                .enumerate()
            {
                let on_greedy = greedy.choice.items[j] == *item;
                let exact = 0.7 * f64::from(u8::from(on_greedy)) + 0.3 / 6.0;
                assert!((p - exact).abs() < 1e-15, "{j}: {p} vs {exact}");
            }
            assert_eq!(d.delta, greedy.delta);
            let s = decide_exploring(
                &adjuster,
                &state,
                &context,
                3,
                Exploration::Softmax {
                    temperature: 0.5,
                    draws: 1,
                },
                &mut rng,
                &mut buf,
            );
            // Position 0's marginal is the softmax probability of the first item.
            let scores: Vec<f64> = context
                .candidates
                .iter()
                .map(|&i| adjuster.explain(&context, &greedy.delta, i).total())
                .collect();
            let p = metarec_core::explore::softmax(&scores, 0.5);
            let first = context
                .candidates
                .iter()
                .position(|&c| c == s.choice.items[0])
                .unwrap();
            assert!((s.choice.propensities[0] - p[first]).abs() < 1e-4);
            assert!((s.scores[0] - scores[first]).abs() < 1e-4);
        }
        assert_eq!(Exploration::Epsilon(0.05).to_string(), "epsilon:0.05");
        assert!(Exploration::Epsilon(0.0).check().is_err());
        assert!(
            Exploration::Softmax {
                temperature: f64::INFINITY,
                draws: 1
            }
            .check()
            .is_err()
        );
    }

    /// A catalog of twelve items with two numeric features each.
    fn twelve_items() -> metarec_core::Catalog {
        let mut catalog = metarec_core::Catalog::new(vec!["a".into(), "b".into()]);
        for i in 0..12 {
            catalog
                .push(metarec_core::Item {
                    key: format!("i{i}"),
                    features: vec![(i as f32 * 0.7).sin(), i as f32 / 12.0],
                    ..metarec_core::Item::default()
                })
                .unwrap();
        }
        catalog
    }

    #[test]
    fn explanations_add_up_on_the_demos_architecture_with_every_part_at_work() {
        use crate::model::{Encoder, ModelConfig};
        use metarec_core::PastEvent;
        let catalog = twelve_items();
        // The set encoder and a memory of 3 events, every weight random (the set encoder's
        // output layer and the memory's maps start at zero otherwise, and would add nothing).
        let features = Features::new(&catalog).with_memory(3);
        let config = ModelConfig {
            hidden: 8,
            embed: 6,
            encoder: Encoder::Set,
            memory: 3,
            ..ModelConfig::default()
        };
        let (varmap, model) =
            crate::model::build(config, &features, candle_core::DType::F32, 4).unwrap();
        crate::model::tests::randomise(&varmap, 4);
        let frozen = Frozen::from_model(&model, &crate::item_tensor(&features).unwrap()).unwrap();
        let adjuster =
            BayesianAdjuster::new(Arc::new(frozen), Arc::new(features), BayesConfig::default());
        let mut context = Context::for_user(UserKey::from("u"));
        context.tokens = vec!["country=France".into()];
        // Six events: the first three are the memory's, the last three the session's.
        context.session.history = [
            (1, true),
            (7, false),
            (3, true),
            (2, true),
            (5, false),
            (9, false),
        ]
        .into_iter()
        .map(|(i, click)| PastEvent {
            item: ItemId(i),
            click,
            purchase: false,
        })
        .collect();
        let mut state = adjuster.prior();
        // A correction away from zero, so its part counts too.
        state
            .shift
            .iter_mut()
            .enumerate()
            .for_each(|(k, h)| *h = (k as f64 * 0.9).sin());
        let mut rng = metarec_core::rng_for(2, 2);
        let decided = adjuster.decide(&state, &context, 5, &mut rng);
        assert_eq!(decided.choice.items.len(), 5);
        assert!(decided.delta.iter().any(|d| d.abs() > 1e-6));
        let parts = adjuster.explain_slate(&context, &decided.delta, &decided.choice.items);
        for ((item, score), part) in decided.choice.items.iter().zip(&decided.scores).zip(&parts) {
            assert!(
                (part.total() - score).abs() < 1e-4 * (1.0 + score.abs()),
                "{item:?}: {part:?} vs {score}"
            );
            assert!(part.past_clicks.abs() > 1e-6, "{part:?}");
        }
    }

    #[test]
    fn explanations_add_up_to_the_scores_the_slate_was_ranked_by() {
        use metarec_core::PastEvent;
        let catalog = twelve_items();
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
        let state = adjuster.prior();
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

    /// The ablation `HeadInput::NewUser`: the adjuster corrects the head the tower gives the
    /// user seen for the first time, so with no correction it ranks exactly as the network
    /// without adaptation (`neural-static`) does, learns from the shown items scored that way,
    /// and explains no part of the head by the history; by default it ranks as the network
    /// reading the history does.
    #[test]
    fn a_new_user_head_ranks_as_the_network_without_adaptation_until_the_adjuster_learns() {
        use crate::adjust::{HeadInput, calibration_samples, test_support};
        use crate::policy::{Mode, NeuralPolicy};
        use metarec_core::{PastEvent, Policy};
        let (frozen, features) = test_support::network();
        let event = |item: u32, click: bool| PastEvent {
            item: ItemId(item),
            click,
            purchase: false,
        };
        let mut context = Context::for_user(UserKey::from("u"));
        context.tokens = vec!["country=France".into()];
        context.session.step = 3;
        context.session.history = vec![event(1, true), event(2, false), event(3, false)];
        let adjuster = |head: HeadInput| {
            BayesianAdjuster::new(
                frozen.clone(),
                features.clone(),
                BayesConfig {
                    prior_scale: 1e-9,
                    thompson: false,
                    head,
                    ..BayesConfig::default()
                },
            )
        };
        let network = |adapts: bool| {
            let p = NeuralPolicy::new(
                "n",
                String::new(),
                (*features).clone(),
                (*frozen).clone(),
                Mode::Greedy,
            );
            if adapts { p } else { p.without_adaptation() }
        };
        let mut ranked = Vec::new();
        for (head, adapts) in [(HeadInput::NewUser, false), (HeadInput::History, true)] {
            let a = adjuster(head);
            assert_eq!(a.head_input(), head);
            let mut rng = metarec_core::rng_for(1, 1);
            let decided = a.decide(&a.prior(), &context, 10, &mut rng);
            let mut net = network(adapts);
            let scores = net.score(&context).to_vec();
            // The default calibration reads a score as it is, and the prior allows no
            // correction to speak of: every candidate's score is the network's.
            for (item, score) in decided.choice.items.iter().zip(&decided.scores) {
                let want = scores[item.index()];
                assert!(
                    (score - want).abs() < 1e-6,
                    "{head:?} {item:?}: {score} vs {want}"
                );
            }
            let mut rng = metarec_core::rng_for(1, 1);
            let choice = net.decide(&context, 10, &mut rng);
            assert_eq!(decided.choice.items, choice.items, "{head:?}");
            // What the adjuster learns from: the shown items scored by the same head.
            let shown = test_support::interaction(&[4, 5, 6], &[false, true, false]);
            let mut shown = shown;
            shown.context = context.clone();
            let samples = calibration_samples(&frozen, &features, &shown, head);
            for (s, item) in samples.iter().zip([4, 5, 6]) {
                assert!(
                    (s.score - scores[item]).abs() < 1e-6,
                    "{head:?} item {item}"
                );
            }
            // The explanation's parts of the head: the history's click is one only when the
            // tower read it.
            let parts = a.explain(&context, &decided.delta, ItemId(0));
            assert!(
                (parts.total() - scores[0]).abs() < 1e-5,
                "{head:?}: {parts:?}"
            );
            match head {
                HeadInput::NewUser => {
                    assert_eq!(parts.top_click, None);
                    assert_eq!(parts.past_clicks, 0.0);
                }
                HeadInput::History => assert_eq!(parts.top_click.map(|t| t.0), Some(ItemId(1))),
            }
            ranked.push(scores);
        }
        // The history moves the network's scores, so the two heads are told apart.
        assert_ne!(ranked[0], ranked[1]);
        // A click teaches the new-user adjuster what the tower would have read: with a real
        // prior its correction moves.
        let a = BayesianAdjuster::new(
            frozen.clone(),
            features.clone(),
            BayesConfig {
                prior_scale: 1.0,
                thompson: false,
                head: HeadInput::NewUser,
                ..BayesConfig::default()
            },
        );
        let mut state = a.prior();
        let mut clicked = test_support::interaction(&[4, 5, 6], &[false, true, false]);
        clicked.context = context.clone();
        a.update(&mut state, &clicked);
        assert!(a.correction(&state).iter().any(|v| v.abs() > 1e-6));
    }
}
