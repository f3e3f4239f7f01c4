//! [`NeuralPolicy`]: the trained network as a [`Policy`], deciding in plain Rust.

use crate::adjust::HeadInput;
use crate::features::{Features, UserView};
use crate::model::Frozen;
use metarec_core::explore::{greedy, plackett_luce};
use metarec_core::{Context, ItemId, Policy, Rng, SlateChoice};

/// How the policy turns scores into a slate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Mode {
    /// Plackett-Luce sampling at the model's temperature; later positions' propensities from
    /// this many Monte Carlo rankings (0: position 0 and the slate propensity only).
    Sample {
        /// Monte Carlo rankings for the propensities of positions after the first.
        draws: usize,
    },
    /// The top-k scores (propensity 1).
    Greedy,
}

/// A trained two-tower network as a policy.
pub struct NeuralPolicy {
    name: String,
    version: String,
    features: Features,
    frozen: Frozen,
    mode: Mode,
    /// Whether the user tower reads the user's history (see [`NeuralPolicy::without_adaptation`]).
    adapts: bool,
    view: UserView,
    /// The view of the user as a new one, when the policy does not adapt.
    bare: UserView,
    hidden: Vec<f32>,
    g: Vec<f32>,
    candidates: Vec<ItemId>,
    scores: Vec<f64>,
}

impl NeuralPolicy {
    /// A policy over a frozen network.
    pub fn new(
        name: &str,
        version: String,
        features: Features,
        frozen: Frozen,
        mode: Mode,
    ) -> Self {
        NeuralPolicy {
            name: name.to_owned(),
            version,
            features,
            frozen,
            mode,
            adapts: true,
            view: UserView::default(),
            bare: UserView::default(),
            hidden: Vec::new(),
            g: Vec::new(),
            candidates: Vec::new(),
            scores: Vec::new(),
        }
    }

    /// The same policy with its per-user adaptation turned off, the ablation that measures what
    /// the user tower's reading of a user's feedback is worth: the head is always the one the
    /// tower gives a new user with the same observable tokens (their country), as at their
    /// first interaction (no history, visit 0, step 0). The session flags still come from the
    /// history, so items already shown or clicked are marked as the trained network marks
    /// them; without them the policy would show the same slate at every step, which measures
    /// the flags rather than the adaptation.
    pub fn without_adaptation(mut self) -> Self {
        self.adapts = false;
        self
    }

    /// Scores the context's candidates (all items when it lists none) into `self.scores`.
    pub fn score(&mut self, context: &Context) -> &[f64] {
        self.features.user_view(context, &mut self.view);
        let input = if self.adapts {
            HeadInput::History
        } else {
            HeadInput::NewUser
        };
        let read = input.tower_view(&self.features, context, &self.view, &mut self.bare);
        self.frozen.user_of(read, &mut self.hidden, &mut self.g);
        self.candidates.clear();
        if context.candidates.is_empty() {
            self.candidates
                .extend((0..self.features.items() as u32).map(ItemId));
        } else {
            self.candidates.extend(
                context
                    .candidates
                    .iter()
                    .filter(|c| c.index() < self.features.items()),
            );
        }
        self.scores.clear();
        for c in &self.candidates {
            let (ignored, clicked) = self.view.flags(*c);
            let s = self.frozen.score(&self.g, c.index(), ignored, clicked);
            self.scores.push(f64::from(s));
        }
        &self.scores
    }

    /// The frozen network.
    pub fn frozen(&self) -> &Frozen {
        &self.frozen
    }
}

impl Policy for NeuralPolicy {
    fn name(&self) -> &str {
        &self.name
    }

    fn model_version(&self) -> String {
        self.version.clone()
    }

    fn decide(&mut self, context: &Context, k: usize, rng: &mut Rng) -> SlateChoice {
        self.score(context);
        if self.candidates.is_empty() || k == 0 {
            return SlateChoice {
                items: Vec::new(),
                propensities: Vec::new(),
                slate_propensity: None,
            };
        }
        match self.mode {
            Mode::Greedy => greedy(&self.candidates, &self.scores, k),
            Mode::Sample { draws } => plackett_luce(
                &self.candidates,
                &self.scores,
                k,
                self.frozen.temperature,
                draws,
                rng,
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use metarec_core::{PastEvent, SessionState, UserKey};

    #[test]
    fn without_adaptation_the_head_is_a_new_users_and_the_flags_are_the_sessions() {
        let (frozen, features) = crate::adjust::test_support::network();
        let (frozen, features) = ((*frozen).clone(), (*features).clone());
        let policy = |adapts: bool| {
            let p = NeuralPolicy::new(
                "n",
                String::new(),
                features.clone(),
                frozen.clone(),
                Mode::Greedy,
            );
            if adapts { p } else { p.without_adaptation() }
        };
        let event = |item: u32, click: bool| PastEvent {
            item: ItemId(item),
            click,
            purchase: false,
        };
        let tokens = vec!["country=France".to_owned()];
        let seen = Context {
            user: UserKey::from("u"),
            tokens: tokens.clone(),
            session: SessionState {
                session: 2,
                step: 3,
                history: vec![event(1, true), event(2, false), event(3, false)],
                visit_events: None,
            },
            ..Context::default()
        };
        let new_user = Context {
            user: UserKey::from("u"),
            tokens,
            ..Context::default()
        };
        // The head is the tower's for the same user seen for the first time.
        let mut view = UserView::default();
        features.user_view(&new_user, &mut view);
        let (mut scratch, mut g) = (Vec::new(), Vec::new());
        frozen.user_of(&view, &mut scratch, &mut g);
        let static_scores = policy(false).score(&seen).to_vec();
        for (i, s) in static_scores.iter().enumerate() {
            // Items 1 (clicked) and 2, 3 (passed over) keep their session flags.
            let want = frozen.score(&g, i, i == 2 || i == 3, i == 1);
            assert_eq!(*s, f64::from(want), "item {i}");
        }
        // For a user with no history the two policies agree; with one they do not.
        assert_eq!(
            policy(false).score(&new_user).to_vec(),
            policy(true).score(&new_user).to_vec()
        );
        assert_ne!(static_scores, policy(true).score(&seen).to_vec());
        // When the context says the visit showed only the last two events, the click on item
        // 1 was an earlier visit's and loses its flag; the head does not change.
        let mut this_visit = seen.clone();
        this_visit.session.visit_events = Some(2);
        let scores = policy(false).score(&this_visit).to_vec();
        for (i, s) in scores.iter().enumerate() {
            let want = frozen.score(&g, i, i == 2 || i == 3, false);
            assert_eq!(*s, f64::from(want), "item {i}");
        }
    }
}
