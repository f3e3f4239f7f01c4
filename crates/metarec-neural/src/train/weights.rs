//! Importance weights of logged entries for supervised training ([`ips_weights`]).
//!
//! The click cross-entropy of logged slates averages over what the logging policy chose to
//! show, so items it showed often dominate the fit and items it rarely showed hardly count,
//! although a new policy will rank every item. Weighting each shown entry by the inverse of its
//! logged propensity (the probability that the logging policy put that item at that position in
//! that context) makes the weighted loss an estimate of the loss as if every item had been
//! shown equally often to the same users (inverse propensity scoring, as in Schnabel et al.
//! 2016, "Recommendations as Treatments", and Joachims et al. 2017, "Unbiased Learning-to-Rank
//! with Biased Feedback"). Two standard devices keep its variance in check:
//! - self-normalisation: the trainer divides each batch's weighted loss by the batch's sum of
//!   weights (the SNIPS form, Swaminathan & Joachims 2015), so the loss keeps its scale and the
//!   noise of the normaliser cancels;
//! - clipping: a weight is at most `max_weight` times the mean weight over the whole training
//!   set, so an entry the logging policy almost never showed cannot dominate a batch (a bias
//!   towards the unweighted loss traded for variance).
//!
//! Weights are relative to their mean, because the raw inverse propensities scale with the
//! catalog's size and the slate's length: under uniformly random slates every entry has the
//! same propensity and every weight is exactly 1, the unweighted loss.

use crate::error::NeuralError;
use metarec_core::Interaction;
use serde::{Deserialize, Serialize};

/// How supervised training weighs the logged entries.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum Weighting {
    /// Every entry counts the same.
    None,
    /// Self-normalised inverse propensity weights, clipped at `max_weight` times their mean.
    Ips {
        /// The largest weight, as a multiple of the mean weight.
        max_weight: f64,
    },
}

/// Per-entry weights of a set of logged interactions, with what they did.
#[derive(Debug, Clone, PartialEq)]
pub struct EntryWeights {
    /// One weight per slate entry of each interaction, in order.
    pub weights: Vec<Vec<f32>>,
    /// Entries whose weight was clipped.
    pub clipped: usize,
    /// Entries in all.
    pub entries: usize,
    /// Kish's effective sample size of the weights, `(sum w)^2 / sum w^2`: how many equally
    /// weighted entries the weighted sample is worth.
    pub effective: f64,
}

/// The inverse propensity weights of every entry of `logged`: `1 / p` over its mean, clipped at
/// `max_weight` (see the module documentation). `max_weight` must be at least 1; propensities
/// are in (0, 1] by the `Decision` invariant.
pub fn ips_weights(logged: &[Interaction], max_weight: f64) -> Result<EntryWeights, NeuralError> {
    if !(max_weight.is_finite() && max_weight >= 1.0) {
        return Err(NeuralError::Config(format!(
            "max_weight = {max_weight}: must be a number of at least 1 (a multiple of the mean weight)"
        )));
    }
    let entries: usize = logged.iter().map(|i| i.decision.propensities.len()).sum();
    if entries == 0 {
        return Err(NeuralError::Config(
            "importance weights need logged entries".into(),
        ));
    }
    let mean = logged
        .iter()
        .flat_map(|i| &i.decision.propensities)
        .map(|p| 1.0 / p.max(f64::MIN_POSITIVE))
        .sum::<f64>()
        / entries as f64;
    let mut clipped = 0;
    let (mut sum, mut sum_sq) = (0.0f64, 0.0f64);
    let weights = logged
        .iter()
        .map(|i| {
            i.decision
                .propensities
                .iter()
                .map(|p| {
                    let mut w = 1.0 / p.max(f64::MIN_POSITIVE) / mean;
                    if !w.is_finite() || w > max_weight {
                        w = max_weight;
                        clipped += 1;
                    }
                    sum += w;
                    sum_sq += w * w;
                    w as f32
                })
                .collect()
        })
        .collect();
    Ok(EntryWeights {
        weights,
        clipped,
        entries,
        effective: sum * sum / sum_sq,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use metarec_core::{Context, Decision, Feedback, ItemId, Slate, UserKey};

    fn logged(propensities: &[f64]) -> Interaction {
        let n = propensities.len();
        Interaction::new(
            Context::for_user(UserKey::from("u")),
            Decision {
                event_id: "e".into(),
                slate: Slate::new((0..n as u32).map(ItemId).collect()).unwrap(),
                propensities: propensities.to_vec(),
                slate_propensity: None,
                positions: None,
                policy_id: "logged".into(),
                model_version: String::new(),
            },
            Feedback {
                clicks: vec![false; n],
                purchases: vec![false; n],
                revenue: vec![0.0; n],
            },
        )
        .unwrap()
    }

    #[test]
    fn uniform_logging_gives_unit_weights() {
        let log = vec![logged(&[0.01, 0.01]), logged(&[0.01, 0.01, 0.01])];
        let w = ips_weights(&log, 10.0).unwrap();
        assert_eq!(w.weights, vec![vec![1.0; 2], vec![1.0; 3]]);
        assert_eq!((w.clipped, w.entries), (0, 5));
        assert!((w.effective - 5.0).abs() < 1e-12);
    }

    #[test]
    fn weights_are_inverse_propensities_over_their_mean_clipped() {
        // Inverse propensities 1, 2, 4, 1000: mean 251.75.
        let log = vec![logged(&[1.0, 0.5]), logged(&[0.25, 0.001])];
        let w = ips_weights(&log, 2.0).unwrap();
        let mean = (1.0 + 2.0 + 4.0 + 1000.0) / 4.0;
        let expected = [1.0 / mean, 2.0 / mean, 4.0 / mean, 2.0];
        let got: Vec<f32> = w.weights.concat();
        for (g, e) in got.iter().zip(expected) {
            assert!((f64::from(*g) - e).abs() < 1e-6, "{got:?}");
        }
        assert_eq!(w.clipped, 1);
        // Kish's effective size by its definition.
        let s: f64 = expected.iter().sum();
        let s2: f64 = expected.iter().map(|x| x * x).sum();
        assert!((w.effective - s * s / s2).abs() < 1e-9);
        // A cap below the mean, and no entries at all, are refused.
        assert!(ips_weights(&log, 0.5).is_err());
        assert!(ips_weights(&log, f64::NAN).is_err());
        assert!(ips_weights(&[], 10.0).is_err());
    }
}
