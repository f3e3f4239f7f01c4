//! The one decision path of every adjusted policy, [`decide_with`], and its explanation,
//! [`explain_with`] / [`explain_slate_with`]: what they return ([`AdjustedChoice`],
//! [`ScoreParts`]) and the [`DecideBuffers`] a policy reuses between decisions.

use super::{HeadAdjuster, NetView};
use crate::features::UserView;
use crate::model::Frozen;
use metarec_core::explore::{greedy, monte_carlo_marginals, top_k};
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adjust::{BayesConfig, BayesianAdjuster};
    use crate::features::Features;
    use metarec_core::{Adjuster, UserKey};
    use std::sync::Arc;

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
}
