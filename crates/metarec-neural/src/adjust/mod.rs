//! The strategy adjuster: a per-user correction of the network's user head.
//!
//! The trained network's user tower is the meta-learned prior: from what is known of a new user
//! (their context and session so far) it predicts a head `g(context)`. An adjuster keeps, per
//! user, a state that corrects that head by `delta`, so the user's scores are
//! `scale * network score + <delta, h_i>`, where the network score is `<g, h_i> + c_i + flags`
//! and `scale` is the [`Calibration`] that reads network scores as click log-odds. Everything
//! an adjuster learns across users (the calibration, the prior scale `tau` and shape, the
//! gradient adjuster's initial correction) is meta-learned on training users by meta-training,
//! which lives in `metarec_eval::meta`: that crate depends on this one, so it cannot be linked
//! from here.
//!
//! [`BayesianAdjuster`] keeps a Gaussian posterior over `delta` with the prior
//! `N(0, tau^2 I)`, or `N(0, tau^2 S)` with a learned shape `S` ([`prior_shape`]); each shown item
//! updates the posterior in closed form (one Newton step of Bayesian logistic regression on the
//! click, the Laplace approximation); decisions draw `delta` from the posterior (Thompson
//! sampling), so the policy explores where it is unsure about this user.
//!
//! [`GaussianPosterior`] is the closed-form part, in information form (precision `L` and
//! `L mu`), kept apart so it can be checked against the batch formula.
//!
//! [`GradientAdjuster`] is the gradient-based alternative (first-order MAML / Reptile on the
//! head): the correction starts at a meta-learned initial value shared by all users and takes
//! `steps` gradient steps of the click log-likelihood after each interaction.
//!
//! Both implement [`HeadAdjuster`], so one decision path ([`decide_with`], explained by
//! [`explain_with`]) and one [`AdjustedPolicy`] serve either.
//!
//! The files, one concept each (every public item is re-exported here, so callers name it
//! `adjust::X`):
//! - `gaussian.rs`: [`GaussianPosterior`] and [`prior_shape`];
//! - `calibration.rs`: [`Calibration`], [`fit_calibration`], [`calibration_samples`] and
//!   [`click_log_likelihood`];
//! - `bayes.rs`: [`BayesConfig`] and [`BayesianAdjuster`];
//! - `gradient.rs`: [`GradientConfig`], [`GradientState`] and [`GradientAdjuster`];
//! - `decide.rs`: [`decide_with`], [`decide_exploring`] with its [`Exploration`],
//!   [`explain_with`], [`explain_slate_with`] and what they return ([`AdjustedChoice`],
//!   [`ScoreParts`]), with their [`DecideBuffers`];
//! - `policy.rs`: [`AdjustedPolicy`], the per-user states as a `metarec_core::Policy`;
//! - `manifest.rs`: [`ADJUSTER_FILE`] and its contents, [`AdjusterManifest`] (with the
//!   [`OfflineEvidence`] of meta-training on a shop's logs);
//! - this file: the [`HeadAdjuster`] trait, what the user tower reads for the head
//!   ([`HeadInput`]), and the network's view of a context and of an interaction's shown items,
//!   which the adjusters and the decision path share.

mod bayes;
mod calibration;
mod columns;
mod decide;
mod gaussian;
mod gradient;
mod manifest;
mod policy;

pub use bayes::{BayesConfig, BayesianAdjuster};
pub use calibration::{
    Calibration, ClickSample, calibration_samples, click_log_likelihood, fit_calibration,
};
pub use decide::{
    AdjustedChoice, DecideBuffers, Exploration, ScoreParts, decide_exploring, decide_with,
    explain_slate_with, explain_with,
};
pub use gaussian::{GaussianPosterior, prior_shape};
pub use gradient::{GradientAdjuster, GradientConfig, GradientState};
pub use manifest::{
    ADJUSTER_FILE, AdjusterManifest, AdjusterSpec, OfflineEvidence, OfflineSetting, ValidationGain,
};
pub use policy::AdjustedPolicy;

use crate::features::{Features, UserView};
use crate::model::Frozen;
use metarec_core::{Adjuster, Context, Interaction, ItemId, Rng};
use serde::{Deserialize, Serialize};

/// What the network's user tower reads for the head an adjuster corrects.
///
/// The default is the user's whole context, history included: the tower has already inferred
/// from the user's feedback what it can, and the adjuster corrects what remains. `NewUser` is
/// the ablation that measures what the adjuster can do on its own: the tower reads the user as
/// seen for the first time ([`Context::as_new_user`]: no history, as `neural-static:` does), so
/// the adjuster is the only thing that learns from this user's feedback. The session flags
/// still come from the history either way (items already shown or clicked are marked as the
/// network marks them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum HeadInput {
    /// The tower reads the context with the user's history (the network's own inference).
    #[default]
    History,
    /// The tower reads the user as new; the adjuster alone learns from their feedback.
    NewUser,
}

impl HeadInput {
    /// Whether this is the default, which adjuster files leave out (so files written before
    /// the setting existed, and files with the default, read and write alike).
    pub fn is_history(&self) -> bool {
        *self == HeadInput::History
    }

    /// The view the user tower reads for the head: `full` (the whole context's view, which
    /// the session flags always read) or, for a new user, the view of the context as
    /// [`Context::as_new_user`] gives it, read into `bare`.
    pub fn tower_view<'a>(
        self,
        features: &Features,
        context: &Context,
        full: &'a UserView,
        bare: &'a mut UserView,
    ) -> &'a UserView {
        match self {
            HeadInput::History => full,
            HeadInput::NewUser => {
                features.user_view(&context.as_new_user(), bare);
                bare
            }
        }
    }
}

/// The network's head and scores for a context.
#[derive(Debug, Clone, Default)]
struct NetView {
    view: UserView,
    head: Vec<f32>,
    scratch: Vec<f32>,
}

impl NetView {
    /// The network's view of a context: the user input, the session flags and the head,
    /// computed afresh (the tests' reference path; policies read through a [`TowerMemo`]).
    #[cfg(test)]
    fn of(frozen: &Frozen, features: &Features, context: &Context, input: HeadInput) -> NetView {
        let mut v = NetView::default();
        features.user_view(context, &mut v.view);
        let mut bare = UserView::default();
        let read = input.tower_view(features, context, &v.view, &mut bare);
        frozen.user_of(read, &mut v.scratch, &mut v.head);
        v
    }

    /// The network's score of item `i` (without any correction).
    fn base(&self, frozen: &Frozen, item: ItemId) -> f64 {
        let (ignored, clicked) = self.view.flags(item);
        f64::from(frozen.score(&self.head, item.index(), ignored, clicked))
    }
}

/// The network's view of the last context a policy read, kept between its decisions and
/// updates: the user tower is a pure function of the view, so when the next context reads as
/// the same view (a decision and the update of its own interaction, in either order) the head
/// is reused instead of computed again. The user tower was about a sixth of a Thompson-sampling
/// decision and its update together on the demo's network, computed twice for one context.
///
/// The memo holds one network's output: whoever changes the network under it calls
/// [`TowerMemo::forget`].
#[derive(Debug, Clone, Default)]
struct TowerMemo {
    net: NetView,
    /// The view of the context being read, compared with `net.view`.
    spare: UserView,
    /// The view of the user as new, which the tower reads under [`HeadInput::NewUser`].
    bare: UserView,
    /// What the tower read for `net.head`.
    input: HeadInput,
    /// Whether `net.head` is the tower's output for `net.view` read as `input` says.
    valid: bool,
}

impl TowerMemo {
    /// The network's view of `context`, its head computed only when the view differs from the
    /// last one read.
    ///
    /// The view always reads the whole context, since the session flags come from it; under
    /// [`HeadInput::NewUser`] the head is the tower's for the user seen for the first time.
    fn read(
        &mut self,
        frozen: &Frozen,
        features: &Features,
        context: &Context,
        input: HeadInput,
    ) -> &NetView {
        features.user_view(context, &mut self.spare);
        if !(self.valid && self.input == input && self.spare == self.net.view) {
            std::mem::swap(&mut self.spare, &mut self.net.view);
            let read = input.tower_view(features, context, &self.net.view, &mut self.bare);
            frozen.user_of(read, &mut self.net.scratch, &mut self.net.head);
            self.input = input;
            self.valid = true;
        }
        &self.net
    }

    /// Drops the memo (the network under it changed).
    fn forget(&mut self) {
        self.valid = false;
    }
}

/// One shown item of an interaction: its tower vector, the network's score, the position it
/// was shown at and the click.
struct Shown {
    x: Vec<f64>,
    base: f64,
    position: u32,
    clicked: bool,
}

/// The shown items of an interaction that the network knows, with their scores in the context
/// the decision was made in (the head read as `input` says).
fn shown_items(
    frozen: &Frozen,
    features: &Features,
    interaction: &Interaction,
    input: HeadInput,
) -> Vec<Shown> {
    shown_items_read(
        frozen,
        features,
        interaction,
        input,
        &mut TowerMemo::default(),
    )
}

/// [`shown_items`] through a policy's [`TowerMemo`].
fn shown_items_read(
    frozen: &Frozen,
    features: &Features,
    interaction: &Interaction,
    input: HeadInput,
    memo: &mut TowerMemo,
) -> Vec<Shown> {
    let net = memo.read(frozen, features, &interaction.context, input);
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
                position: interaction.decision.position(k),
                clicked: interaction.feedback.clicks[k],
            }
        })
        .collect()
}

/// Whether `frozen` and `features` can replace the network `current` under an adjuster: the
/// same head and item widths (the adjuster's states and settings are about them) and one item
/// count between the two.
fn check_network(current: &Frozen, frozen: &Frozen, features: &Features) -> Result<(), String> {
    if frozen.embed != current.embed || frozen.item_dim() != current.item_dim() {
        return Err(format!(
            "the network has head width {} and item width {}; the adjuster's has {} and {}",
            frozen.embed,
            frozen.item_dim(),
            current.embed,
            current.item_dim()
        ));
    }
    if features.item_dim() != frozen.item_dim() || features.items() != frozen.items() {
        return Err(format!(
            "the feature schema has {} items of width {}; the network has {} of width {}",
            features.items(),
            features.item_dim(),
            frozen.items(),
            frozen.item_dim()
        ));
    }
    Ok(())
}

/// The logistic function: the click probability of a log-odds. Both adjusters' click
/// likelihoods and the calibration fit share it.
fn sigmoid(z: f64) -> f64 {
    1.0 / (1.0 + (-z).exp())
}

/// What a policy needs from an adjuster whose state corrects the network's user head.
pub trait HeadAdjuster: Adjuster {
    /// The network and its feature schema.
    fn network(&self) -> (&Frozen, &Features);
    /// What the user tower reads for the head this adjuster corrects (the history, unless the
    /// adjuster is the ablation that learns on its own).
    fn head_input(&self) -> HeadInput {
        HeadInput::History
    }
    /// The correction to use greedily: the posterior mean, or the adapted value.
    fn correction(&self, state: &Self::State) -> Vec<f64>;
    /// A random correction for Thompson sampling given the mean, or `None` for a greedy
    /// decision. `cache` starts each decision as [`HeadAdjuster::correction_caching`] left it
    /// (empty, or the Bayesian adjuster's Cholesky factor) and keeps whatever the draws of that
    /// decision can share. Adjusters that do not sample (the gradient-based one) keep this
    /// default and always decide greedily.
    fn draw(
        &self,
        state: &Self::State,
        mean: &[f64],
        cache: &mut Vec<f64>,
        rng: &mut Rng,
    ) -> Option<Vec<f64>> {
        let _ = (state, mean, cache, rng);
        None
    }
    /// [`HeadAdjuster::correction`], leaving in `cache` what the draws of the same decision can
    /// share (the Bayesian adjuster's mean already needs the Cholesky factor its draws use), or
    /// leaving it empty. The default shares nothing.
    fn correction_caching(&self, state: &Self::State, cache: &mut Vec<f64>) -> Vec<f64> {
        cache.clear();
        self.correction(state)
    }
    /// [`HeadAdjuster::draw`] into `out`, so the many draws of one decision reuse one buffer:
    /// true with a draw in `out`, false (`out` unspecified) for a greedy decision. The default
    /// goes through [`HeadAdjuster::draw`]; the Bayesian adjuster overrides it.
    fn draw_into(
        &self,
        state: &Self::State,
        mean: &[f64],
        cache: &mut Vec<f64>,
        rng: &mut Rng,
        out: &mut Vec<f64>,
    ) -> bool {
        match self.draw(state, mean, cache, rng) {
            Some(d) => {
                *out = d;
                true
            }
            None => false,
        }
    }
    /// `count` draws made as `count` calls of [`HeadAdjuster::draw_into`] would make them, from
    /// the same random numbers in the same order, written one after the other into `out`
    /// (draw `r` is `out[r * d..(r + 1) * d]`, `d` the mean's width): true with the draws in
    /// `out`, false (`out` unspecified) for a greedy decision. The default calls
    /// [`HeadAdjuster::draw_into`] in turn; the Bayesian adjuster solves all of them together.
    fn draws_into(
        &self,
        state: &Self::State,
        mean: &[f64],
        cache: &mut Vec<f64>,
        rng: &mut Rng,
        count: usize,
        out: &mut Vec<f64>,
    ) -> bool {
        out.clear();
        let mut one = Vec::new();
        for _ in 0..count {
            if !self.draw_into(state, mean, cache, rng, &mut one) {
                return false;
            }
            out.extend_from_slice(&one);
        }
        true
    }
    /// [`Adjuster::update`] given what a policy kept from its decisions: the same new state,
    /// computing less of it again. `correction` is what [`HeadAdjuster::correction`] gives for
    /// `state` as it is, when the caller knows it from a decision made on the same state (the
    /// Bayesian adjuster's Laplace step starts from the posterior mean, a factorisation and a
    /// solve); and the user tower's output for the interaction's context is reused when
    /// `buffers` read the same view last (see [`DecideBuffers::forget_network`]). The default
    /// is the plain update.
    fn update_buffered(
        &self,
        state: &mut Self::State,
        interaction: &Interaction,
        correction: Option<&[f64]>,
        buffers: &mut DecideBuffers,
    ) {
        let _ = (correction, buffers);
        self.update(state, interaction);
    }
    /// Monte Carlo rankings for the propensities of Thompson sampling (unused when
    /// [`HeadAdjuster::draw`] never samples).
    fn draws(&self) -> usize {
        0
    }
    /// How the network's scores map to click log-odds (the corrected score is
    /// `scale * network score + x . delta`).
    fn calibration(&self) -> Calibration;
}

/// The fixtures the adjusters' tests share, kept here so that every file's tests build the same
/// network and the same interactions (the plain policy's tests build their network here too).
#[cfg(test)]
pub(crate) mod test_support {
    use crate::features::Features;
    use crate::model::Frozen;
    use metarec_core::{Context, Interaction, ItemId, UserKey};
    use std::sync::Arc;

    /// A trained-shape network over a small catalog, with weights moved off their zero start.
    pub(crate) fn network() -> (Arc<Frozen>, Arc<Features>) {
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

    /// An interaction of user `u` with the slate `items` and the given clicks.
    pub(super) fn interaction(items: &[u32], clicks: &[bool]) -> Interaction {
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
}
