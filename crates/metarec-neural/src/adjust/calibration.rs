//! [`Calibration`]: how the network's scores (ranking logits) read as click log-odds, fitted by
//! [`fit_calibration`] on the `(score, clicked)` pairs that [`calibration_samples`] extracts;
//! [`click_log_likelihood`] scores an interaction's clicks under the calibrated network with a
//! user's correction (how offline meta-training judges an adjuster on logged users).

use super::{shown_items, sigmoid};
use crate::features::Features;
use crate::model::Frozen;
use metarec_core::Interaction;
use serde::{Deserialize, Serialize};

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

/// The log-likelihood of an interaction's clicks under the calibrated network corrected by
/// `delta`: the sum over the shown items the network knows of `log P(clicked)` with click
/// log-odds `offset + scale * network score + x_i . delta` (a zero `delta` is the network
/// alone), and the number of those items. `delta` has the head's width (an empty one reads as
/// zero).
pub fn click_log_likelihood(
    frozen: &Frozen,
    features: &Features,
    calibration: &Calibration,
    delta: &[f64],
    interaction: &Interaction,
) -> (f64, usize) {
    let shown = shown_items(frozen, features, interaction);
    let mut total = 0.0;
    for s in &shown {
        let z = calibration.logit(s.base) + s.x.iter().zip(delta).map(|(a, b)| a * b).sum::<f64>();
        // log sigmoid(z) = -softplus(-z) and log(1 - sigmoid(z)) = -softplus(z), in a form
        // that neither overflows nor loses the tail for large |z|.
        let signed = if s.clicked { -z } else { z };
        total -= signed.max(0.0) + (-signed.abs()).exp().ln_1p();
    }
    (total, shown.len())
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn the_click_log_likelihood_is_the_bernoulli_likelihood_of_the_corrected_logits() {
        let (frozen, features) = crate::adjust::test_support::network();
        let it = crate::adjust::test_support::interaction(&[1, 4, 6], &[false, true, false]);
        let calibration = Calibration {
            offset: -1.0,
            scale: 0.5,
        };
        let e = frozen.embed;
        let delta: Vec<f64> = (0..e).map(|k| 0.1 * k as f64 - 0.3).collect();
        let (ll, n) = click_log_likelihood(&frozen, &features, &calibration, &delta, &it);
        assert_eq!(n, 3);
        let samples = calibration_samples(&frozen, &features, &it);
        let mut expected = 0.0;
        for (&i, (base, clicked)) in [1usize, 4, 6].iter().zip(samples) {
            let x = &frozen.item_vectors[i * e..(i + 1) * e];
            let z = calibration.logit(base)
                + x.iter()
                    .zip(&delta)
                    .map(|(a, b)| f64::from(*a) * b)
                    .sum::<f64>();
            let p = sigmoid(z);
            expected += if clicked { p.ln() } else { (1.0 - p).ln() };
        }
        assert!((ll - expected).abs() < 1e-9, "{ll} vs {expected}");
        // A zero correction is the calibrated network alone.
        let (alone, _) = click_log_likelihood(&frozen, &features, &calibration, &[], &it);
        let (zero, _) = click_log_likelihood(&frozen, &features, &calibration, &vec![0.0; e], &it);
        assert_eq!(alone, zero);
    }
}
