//! Posterior distillation ([`super::Algo::Posterior`]): how the collector reads the values a
//! simulator reveals, and the loss that learns their posterior mean from them.

use super::{Trainer, Transition};
use crate::error::NeuralError;
use candle_core::{Device, Tensor};
use metarec_core::{Oracle, RewardFn};

/// How a collector asks a simulator for every item's value in the current state.
pub(super) type Reveal<E> = fn(&E, &RewardFn) -> Vec<f64>;

/// [`Oracle::item_values`] as a [`Reveal`], for the collector of a simulator that has it.
pub(super) fn revealed_values<E: Oracle>(env: &E, reward: &RewardFn) -> Vec<f64> {
    env.item_values(reward)
}

impl Trainer {
    /// Posterior distillation's loss: `-sum v_i log p_i / sum v_i` over the batch's states and
    /// items, `p` the first-position softmax of the scores at the network's temperature and `v`
    /// the values the simulator revealed. Given a state's history its expectation is smallest
    /// where `p` is proportional to the posterior mean of `v`, whatever the user turns out to be.
    pub(super) fn posterior_loss(
        &self,
        steps: &[&Transition],
        scores: &Tensor,
    ) -> Result<Tensor, NeuralError> {
        let n = self.features.items();
        let mut values = Vec::with_capacity(steps.len() * n);
        for t in steps {
            if t.values.len() != n {
                return Err(NeuralError::Config(
                    "posterior distillation needs every item's value in every state: train it in a simulator that reveals its users (train_revealed)".into(),
                ));
            }
            values.extend_from_slice(&t.values);
        }
        let total: f64 = values.iter().map(|&v| f64::from(v)).sum();
        if total <= 0.0 {
            return Err(NeuralError::Config(
                "posterior distillation needs a positive value somewhere in the batch".into(),
            ));
        }
        let values = Tensor::from_vec(values, (steps.len(), n), &Device::Cpu)?;
        let temperature = self.model.config.temperature;
        let log_p = candle_nn::ops::log_softmax(&(scores / temperature)?, candle_core::D::Minus1)?;
        Ok(((values * log_p)?.sum_all()? / -total)?)
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{catalog, one_slate};
    use super::super::{Algo, TrainConfig};
    use super::*;
    use crate::features::UserView;
    use crate::model::ModelConfig;
    use metarec_core::{Context, UserKey};

    #[test]
    fn posterior_distillation_learns_the_mean_of_the_values_a_state_could_hide() {
        // One state, two users who could be behind it with different values: the loss's
        // minimiser is the first-position distribution proportional to their mean, not either
        // user's values, so the network learns the posterior mean rather than a guess.
        let n = 6;
        // A temperature other than 1, since the loss reads the scores through it.
        let temperature = 0.5;
        let config = TrainConfig {
            algo: Algo::Posterior,
            learning_rate: 0.03,
            model: ModelConfig {
                temperature,
                ..ModelConfig::default()
            },
            ..TrainConfig::default()
        };
        let mut trainer = Trainer::new(&catalog(n), RewardFn::default(), config).unwrap();
        let mut view = UserView::default();
        trainer
            .features
            .user_view(&Context::for_user(UserKey::from("u")), &mut view);
        let step = |values: Vec<f32>| one_slate(&view, values);
        let a = vec![0.8, 0.0, 0.1, 0.1, 0.0, 0.0];
        let b = vec![0.0, 0.4, 0.1, 0.1, 0.2, 0.2];
        let episodes = vec![vec![step(a.clone())], vec![step(b.clone())]];
        for _ in 0..400 {
            trainer.learn_from(&episodes).unwrap();
        }
        let (mut scratch, mut g) = (Vec::new(), Vec::new());
        trainer
            .frozen
            .user(&view.input, &[], &[], &mut scratch, &mut g);
        let scores: Vec<f64> = (0..n)
            .map(|i| f64::from(trainer.frozen.score(&g, i, false, false)) / temperature)
            .collect();
        let top = scores.iter().cloned().fold(f64::MIN, f64::max);
        let z: f64 = scores.iter().map(|s| (s - top).exp()).sum();
        for i in 0..n {
            let p = (scores[i] - top).exp() / z;
            // Each user's values sum to 1, so the mean is its own distribution.
            let mean = f64::from(a[i] + b[i]) / 2.0;
            assert!(
                (p - mean).abs() < 0.02,
                "item {i}: probability {p:.3}, posterior mean {mean:.3}"
            );
        }
        // Values of the wrong length or sign are refused before any step.
        let before = trainer.iterations_done;
        for bad in [vec![0.5; n - 1], vec![-0.1, 0.0, 0.0, 0.0, 0.0, 1.0]] {
            assert!(trainer.learn_from(&[vec![step(bad)]]).is_err());
        }
        // A state without values cannot teach it.
        let err = trainer.learn_from(&[vec![step(Vec::new())]]).unwrap_err();
        assert!(err.to_string().contains("every item's value"), "{err}");
        assert_eq!(trainer.iterations_done, before);
    }
}
