//! [`NeuralPolicy`]: the trained network as a [`Policy`], deciding in plain Rust.

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
    view: UserView,
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
            view: UserView::default(),
            hidden: Vec::new(),
            g: Vec::new(),
            candidates: Vec::new(),
            scores: Vec::new(),
        }
    }

    /// Scores the context's candidates (all items when it lists none) into `self.scores`.
    pub fn score(&mut self, context: &Context) -> &[f64] {
        self.features.user_view(context, &mut self.view);
        self.frozen
            .user_of(&self.view, &mut self.hidden, &mut self.g);
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
            let s = self.frozen.score(
                &self.g,
                c.index(),
                self.view.ignored.contains(c),
                self.view.clicked.contains(c),
            );
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
