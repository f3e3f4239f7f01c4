//! [`GradientAdjuster`], the gradient-based alternative to the Bayesian adjuster (first-order
//! MAML / Reptile on the head): each user's [`GradientState`] is the correction itself, moved by
//! gradient steps of the click log-likelihood, with its settings in [`GradientConfig`].

use super::{Calibration, DecideBuffers, HeadAdjuster, HeadInput, Shown, shown_items, sigmoid};
use crate::features::Features;
use crate::model::Frozen;
use metarec_core::{Adjuster, Interaction};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

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
}

impl Adjuster for GradientAdjuster {
    type State = GradientState;

    fn prior(&self) -> GradientState {
        let e = self.frozen.embed;
        let delta = if self.config.init.len() == e {
            self.config.init.clone()
        } else {
            vec![0.0; e]
        };
        GradientState { delta, updates: 0 }
    }

    fn update(&self, state: &mut GradientState, interaction: &Interaction) {
        let shown = shown_items(
            &self.frozen,
            &self.features,
            interaction,
            HeadInput::History,
        );
        self.step(state, &shown);
    }
}

impl GradientAdjuster {
    /// [`Adjuster::update`] on an interaction's shown items.
    fn step(&self, state: &mut GradientState, shown: &[Shown]) {
        let mut grad = vec![0.0; state.delta.len()];
        for _ in 0..self.config.steps {
            grad.iter_mut().for_each(|g| *g = 0.0);
            for s in shown {
                let z = self.config.calibration.logit_at(s.base, s.position)
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

    fn update_buffered(
        &self,
        state: &mut GradientState,
        interaction: &Interaction,
        correction: Option<&[f64]>,
        buffers: &mut DecideBuffers,
    ) {
        // The steps start from the state itself, so only the tower's output is reused.
        let _ = correction;
        let shown = buffers.shown_items(
            &self.frozen,
            &self.features,
            interaction,
            HeadInput::History,
        );
        self.step(state, &shown);
    }

    fn calibration(&self) -> Calibration {
        self.config.calibration
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adjust::test_support::{interaction, network};
    use crate::features::UserView;

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
        let mut state = adj.prior();
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
}
