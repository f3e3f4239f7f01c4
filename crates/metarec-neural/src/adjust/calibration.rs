//! [`Calibration`]: how the network's scores (ranking logits) and the slate position read as click
//! log-odds, fitted by [`fit_calibration`] on the [`ClickSample`]s that [`calibration_samples`]
//! extracts;
//! [`click_log_likelihood`] scores an interaction's clicks under the calibrated network with a
//! user's correction (how offline meta-training judges an adjuster on logged users).

use super::{HeadInput, shown_items, sigmoid};
use crate::features::Features;
use crate::model::Frozen;
use metarec_core::Interaction;
use serde::{Deserialize, Serialize};

/// How the network's score of an item shown at a position maps to the log-odds of a click:
/// `offset + scale * score + position * ln(1 + k)` at 0-based position `k`.
///
/// The network is trained as a ranking policy (Plackett-Luce logits), so its scores are not click
/// log-odds; the adjusters' click likelihoods need them calibrated, or every ignored item would
/// push the correction by the network's overconfidence rather than by the user's taste. The
/// position term is there for the same reason: visitors examine the top of a slate more than its
/// bottom, so an item passed over at the fifth position says less about the user's taste than one
/// passed over at the first. Without it every ignored item counts as a rejection at full weight.
/// `ln(1 + k)` is the discount of DCG and, for rare clicks, the log of a `1 / (1 + k)`
/// examination curve; its weight is fitted, so a flatter or steeper curve is matched too. The
/// calibration is meta-learned on training users ([`fit_calibration`]).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Calibration {
    /// Log-odds at score 0 in the first position.
    pub offset: f64,
    /// Log-odds per unit of score (positive).
    pub scale: f64,
    /// Log-odds per unit of `ln(1 + position)`: negative when lower positions are clicked less.
    /// Files written before the term existed read as 0, the calibration they were fitted with.
    #[serde(default)]
    pub position: f64,
}

impl Default for Calibration {
    fn default() -> Self {
        Calibration {
            offset: 0.0,
            scale: 1.0,
            position: 0.0,
        }
    }
}

impl Calibration {
    /// The click log-odds of a network score in the first position (what a ranking compares:
    /// the position term is the same for every candidate of one position).
    pub fn logit(&self, score: f64) -> f64 {
        self.offset + self.scale * score
    }

    /// The click log-odds of a network score shown at 0-based `position`.
    pub fn logit_at(&self, score: f64, position: u32) -> f64 {
        self.logit(score) + self.position * position_feature(position)
    }
}

/// The position's regressor in the calibration: `ln(1 + position)`, 0 at the top.
fn position_feature(position: u32) -> f64 {
    f64::from(position).ln_1p()
}

/// One shown item as the calibration sees it: the network's score, where it was shown and
/// whether it was clicked.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ClickSample {
    /// The network's score in the context the item was shown in.
    pub score: f64,
    /// The 0-based position it was shown at.
    pub position: u32,
    /// Whether it was clicked.
    pub clicked: bool,
}

/// Fits a [`Calibration`] to [`ClickSample`]s by Newton's method on the logistic log-likelihood
/// of `offset + scale * score + position * ln(1 + k)` (with a tiny ridge so a separable sample
/// stays finite). The scale is kept positive so the calibrated ranking is the network's. A sample
/// shown at one position only (every item first) leaves the position weight at 0.
pub fn fit_calibration(samples: &[ClickSample]) -> Calibration {
    if samples.is_empty() {
        return Calibration::default();
    }
    // IRLS from the intercept-only fit (the other weights 0), the standard start: far-off
    // starts with large scores saturate the sigmoid and make the Newton steps explode.
    let rate = samples.iter().filter(|s| s.clicked).count() as f64 / samples.len() as f64;
    let rate = rate.clamp(1e-6, 1.0 - 1e-6);
    let mut w = [(rate / (1.0 - rate)).ln(), 0.0, 0.0];
    for _ in 0..50 {
        let mut g = [0.0f64; 3];
        // The ridge keeps the position's row nonsingular when every item was shown first.
        let mut h = [[1e-6, 0.0, 0.0], [0.0, 1e-6, 0.0], [0.0, 0.0, 1e-6]];
        for s in samples {
            let x = [1.0, s.score, position_feature(s.position)];
            let p = sigmoid(w[0] + w[1] * x[1] + w[2] * x[2]);
            let r = f64::from(u8::from(s.clicked)) - p;
            let q = p * (1.0 - p);
            for a in 0..3 {
                g[a] += r * x[a];
                for b in 0..3 {
                    h[a][b] += q * x[a] * x[b];
                }
            }
        }
        let Some(mut d) = solve3(h, g) else {
            break;
        };
        // A trust region keeps a nearly separable sample from throwing the fit far away.
        let norm = d.iter().map(|v| v * v).sum::<f64>().sqrt();
        if norm > 2.0 {
            d.iter_mut().for_each(|v| *v *= 2.0 / norm);
        }
        for (wa, da) in w.iter_mut().zip(&d) {
            *wa += da;
        }
        if d.iter().map(|v| v.abs()).sum::<f64>() < 1e-10 {
            break;
        }
    }
    Calibration {
        offset: w[0],
        scale: w[1].max(1e-3),
        position: w[2],
    }
}

/// Solves the 3 x 3 system `h d = g` by Cramer's rule; `None` when `h` is singular.
fn solve3(h: [[f64; 3]; 3], g: [f64; 3]) -> Option<[f64; 3]> {
    let det = |m: [[f64; 3]; 3]| {
        m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1])
            - m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0])
            + m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0])
    };
    let full = det(h);
    if !full.is_finite() || full.abs() < 1e-300 {
        return None;
    }
    let mut d = [0.0; 3];
    for (c, dc) in d.iter_mut().enumerate() {
        let mut m = h;
        for r in 0..3 {
            m[r][c] = g[r];
        }
        *dc = det(m) / full;
    }
    Some(d)
}

/// A [`ClickSample`] for every shown item of an interaction the network knows, scored with the
/// head the tower reads as `input` says: the samples [`fit_calibration`] takes.
pub fn calibration_samples(
    frozen: &Frozen,
    features: &Features,
    interaction: &Interaction,
    input: HeadInput,
) -> Vec<ClickSample> {
    shown_items(frozen, features, interaction, input)
        .into_iter()
        .map(|s| ClickSample {
            score: s.base,
            position: s.position,
            clicked: s.clicked,
        })
        .collect()
}

/// The log-likelihood of an interaction's clicks under the calibrated network corrected by
/// `delta`: the sum over the shown items the network knows of `log P(clicked)` with click
/// log-odds `calibration.logit_at(network score, position) + x_i . delta` (a zero `delta` is the network
/// alone), and the number of those items. `delta` has the head's width (an empty one reads as
/// zero).
pub fn click_log_likelihood(
    frozen: &Frozen,
    features: &Features,
    calibration: &Calibration,
    delta: &[f64],
    interaction: &Interaction,
) -> (f64, usize) {
    let shown = shown_items(frozen, features, interaction, HeadInput::History);
    let mut total = 0.0;
    for s in &shown {
        let z = calibration.logit_at(s.base, s.position)
            + s.x.iter().zip(delta).map(|(a, b)| a * b).sum::<f64>();
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
        // Clicks drawn with log-odds -2.5 + 0.7 x - 0.9 ln(1 + k) for scores x in [-3, 3] shown
        // at positions k = 0..5.
        let mut rng = metarec_core::rng_for(9, 9);
        let samples: Vec<ClickSample> = (0..60_000)
            .map(|j| {
                let x = -3.0 + 6.0 * (j as f64 / 60_000.0);
                let position = (j % 5) as u32;
                let p = sigmoid(-2.5 + 0.7 * x - 0.9 * f64::from(position).ln_1p());
                ClickSample {
                    score: x,
                    position,
                    clicked: rand::Rng::random::<f64>(&mut rng) < p,
                }
            })
            .collect();
        let c = fit_calibration(&samples);
        assert!((c.offset + 2.5).abs() < 0.1, "{c:?}");
        assert!((c.scale - 0.7).abs() < 0.05, "{c:?}");
        assert!((c.position + 0.9).abs() < 0.1, "{c:?}");
        assert_eq!(fit_calibration(&[]), Calibration::default());
        // Every item in the first position: nothing to learn about positions, and the rest of
        // the fit is the two-parameter one.
        let top: Vec<ClickSample> = samples
            .iter()
            .map(|s| ClickSample { position: 0, ..*s })
            .collect();
        let c = fit_calibration(&top);
        assert_eq!(c.position, 0.0, "{c:?}");
        assert!(c.scale > 0.3, "{c:?}");
    }

    #[test]
    fn a_file_without_the_position_term_reads_as_the_calibration_it_was_fitted_with() {
        let old: Calibration = serde_json::from_str(r#"{"offset": -2.0, "scale": 0.5}"#).unwrap();
        assert_eq!(
            old,
            Calibration {
                offset: -2.0,
                scale: 0.5,
                position: 0.0
            }
        );
        assert_eq!(old.logit_at(1.0, 4), old.logit(1.0));
    }

    #[test]
    fn the_click_log_likelihood_is_the_bernoulli_likelihood_of_the_corrected_logits() {
        let (frozen, features) = crate::adjust::test_support::network();
        let it = crate::adjust::test_support::interaction(&[1, 4, 6], &[false, true, false]);
        let calibration = Calibration {
            offset: -1.0,
            scale: 0.5,
            position: -0.8,
        };
        let e = frozen.embed;
        let delta: Vec<f64> = (0..e).map(|k| 0.1 * k as f64 - 0.3).collect();
        let (ll, n) = click_log_likelihood(&frozen, &features, &calibration, &delta, &it);
        assert_eq!(n, 3);
        let samples = calibration_samples(&frozen, &features, &it, HeadInput::History);
        let mut expected = 0.0;
        for (k, (&i, sample)) in [1usize, 4, 6].iter().zip(samples).enumerate() {
            assert_eq!(sample.position, k as u32);
            let clicked = sample.clicked;
            let x = &frozen.item_vectors[i * e..(i + 1) * e];
            let z = -1.0 + 0.5 * sample.score - 0.8 * (k as f64).ln_1p()
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
