//! Differentiable pieces of the training objectives: the Plackett-Luce log-probability of a
//! slate, the first position's entropy, and a numerically stable binary cross-entropy.

use crate::error::NeuralError;
use candle_core::{D, DType, Device, Tensor};

/// Additive masks, one `S x N` tensor per slate position: 0, or a large negative number for the
/// items already placed at earlier positions of that row's slate.
pub fn position_masks(
    chosen: &[Vec<u32>],
    items: usize,
    dtype: DType,
) -> Result<Vec<Tensor>, NeuralError> {
    let s = chosen.len();
    let k = chosen.iter().map(Vec::len).max().unwrap_or(0);
    let mut masks = Vec::with_capacity(k);
    let mut m = vec![0f32; s * items];
    for pos in 0..k {
        if pos > 0 {
            for (row, slate) in chosen.iter().enumerate() {
                if let Some(&prev) = slate.get(pos - 1) {
                    m[row * items + prev as usize] = -1e9;
                }
            }
        }
        masks.push(Tensor::from_vec(m.clone(), (s, items), &Device::Cpu)?.to_dtype(dtype)?);
    }
    Ok(masks)
}

/// `log P(slate)` under Plackett-Luce over `scores / temperature`, one value per row.
/// `chosen[row]` are the row's items, position 0 first; all rows have the same slate length.
pub fn plackett_luce_log_prob(
    scores: &Tensor,
    chosen: &[Vec<u32>],
    masks: &[Tensor],
    temperature: f64,
) -> Result<Tensor, NeuralError> {
    let z = (scores / temperature)?;
    let s = chosen.len();
    let mut total = Tensor::zeros(s, z.dtype(), &Device::Cpu)?;
    for (pos, mask) in masks.iter().enumerate() {
        let idx: Vec<u32> = chosen.iter().map(|c| c[pos]).collect();
        let idx = Tensor::from_vec(idx, (s, 1), &Device::Cpu)?;
        let picked = z.gather(&idx, 1)?.squeeze(1)?;
        let lse = (&z + mask)?.log_sum_exp(1)?;
        total = (total + (picked - lse)?)?;
    }
    Ok(total)
}

/// Entropy of the first position's softmax, one value per row.
pub fn first_position_entropy(scores: &Tensor, temperature: f64) -> Result<Tensor, NeuralError> {
    let z = (scores / temperature)?;
    let log_p = candle_nn::ops::log_softmax(&z, D::Minus1)?;
    let p = log_p.exp()?;
    Ok((p * log_p)?.sum(1)?.neg()?)
}

/// Mean binary cross-entropy of `logits` against 0/1 `targets`, computed as
/// `max(x, 0) - x t + ln(1 + exp(-|x|))` so large logits never overflow.
pub fn bce_with_logits(logits: &Tensor, targets: &Tensor) -> Result<Tensor, NeuralError> {
    let relu = logits.relu()?;
    let xt = (logits * targets)?;
    let soft = (logits.abs()?.neg()?.exp()? + 1.0)?.log()?;
    Ok(((relu - xt)? + soft)?.mean_all()?)
}

/// Weighted mean binary cross-entropy, `sum_e w_e bce_e / sum_e w_e`: the self-normalised
/// importance-weighted loss of [`bce_with_logits`] (equal weights give exactly its mean up to
/// rounding). `weights` are non-negative with a positive sum.
pub fn weighted_bce_with_logits(
    logits: &Tensor,
    targets: &Tensor,
    weights: &Tensor,
) -> Result<Tensor, NeuralError> {
    let relu = logits.relu()?;
    let xt = (logits * targets)?;
    let soft = (logits.abs()?.neg()?.exp()? + 1.0)?.log()?;
    let per_entry = ((relu - xt)? + soft)?;
    let total = weights.sum_all()?;
    Ok((per_entry * weights)?.sum_all()?.broadcast_div(&total)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plackett_luce_log_prob_matches_the_hand_computed_value() {
        // Scores [0, ln 2, ln 3] give weights 1, 2, 3. Slate (2, 0): 3/6 * 1/3 = 1/6.
        let scores = Tensor::new(&[[0f64, 2f64.ln(), 3f64.ln()]], &Device::Cpu).unwrap();
        let chosen = vec![vec![2u32, 0]];
        let masks = position_masks(&chosen, 3, DType::F64).unwrap();
        let lp = plackett_luce_log_prob(&scores, &chosen, &masks, 1.0).unwrap();
        let v = lp.to_vec1::<f64>().unwrap()[0];
        assert!((v - (1.0f64 / 6.0).ln()).abs() < 1e-9, "{v}");
    }

    #[test]
    fn bce_matches_the_definition_and_survives_large_logits() {
        let x = Tensor::new(&[0.5f64, -2.0, 800.0, -800.0], &Device::Cpu).unwrap();
        let t = Tensor::new(&[1.0f64, 0.0, 1.0, 0.0], &Device::Cpu).unwrap();
        let v = bce_with_logits(&x, &t).unwrap().to_scalar::<f64>().unwrap();
        let sig = |z: f64| 1.0 / (1.0 + (-z).exp());
        let expected = (-(sig(0.5)).ln() - (1.0 - sig(-2.0)).ln()) / 4.0;
        assert!((v - expected).abs() < 1e-9, "{v} vs {expected}");
    }

    #[test]
    fn weighted_bce_is_the_weighted_mean_of_the_entries() {
        let x = Tensor::new(&[0.5f64, -2.0, 3.0], &Device::Cpu).unwrap();
        let t = Tensor::new(&[1.0f64, 0.0, 0.0], &Device::Cpu).unwrap();
        let w = Tensor::new(&[1.0f64, 3.0, 0.5], &Device::Cpu).unwrap();
        let v = weighted_bce_with_logits(&x, &t, &w)
            .unwrap()
            .to_scalar::<f64>()
            .unwrap();
        let sig = |z: f64| 1.0 / (1.0 + (-z).exp());
        let entries = [
            -(sig(0.5)).ln(),
            -(1.0 - sig(-2.0)).ln(),
            -(1.0 - sig(3.0)).ln(),
        ];
        let expected = (entries[0] + 3.0 * entries[1] + 0.5 * entries[2]) / 4.5;
        assert!((v - expected).abs() < 1e-9, "{v} vs {expected}");
        let ones = Tensor::new(&[1.0f64, 1.0, 1.0], &Device::Cpu).unwrap();
        let plain = bce_with_logits(&x, &t).unwrap().to_scalar::<f64>().unwrap();
        let equal = weighted_bce_with_logits(&x, &t, &ones)
            .unwrap()
            .to_scalar::<f64>()
            .unwrap();
        assert!((plain - equal).abs() < 1e-12);
    }

    /// REINFORCE on a two-armed bandit with a known answer: for a softmax policy over logits
    /// `theta`, `dJ/dtheta_a = pi_a (p_a - J)` with `J = sum_a pi_a p_a`. The mean of the
    /// estimator `(r - b) grad log pi(a)` over many draws must match it, with and without a
    /// baseline `b`.
    #[test]
    fn the_reinforce_estimator_is_unbiased_on_a_two_armed_bandit() {
        use candle_core::Var;
        use rand::Rng as _;
        let theta = [0.3f64, -0.4];
        let p = [0.7f64, 0.2];
        let z = theta.iter().map(|t| t.exp()).sum::<f64>();
        let pi = [theta[0].exp() / z, theta[1].exp() / z];
        let j = pi[0] * p[0] + pi[1] * p[1];
        let truth = [pi[0] * (p[0] - j), pi[1] * (p[1] - j)];
        let n = 200_000;
        let mut rng = metarec_core::rng_for(11, 0);
        let mut arms = Vec::with_capacity(n);
        let mut rewards = Vec::with_capacity(n);
        for _ in 0..n {
            let a = usize::from(rng.random::<f64>() >= pi[0]);
            arms.push(vec![a as u32]);
            rewards.push(if rng.random::<f64>() < p[a] { 1.0 } else { 0.0 });
        }
        for baseline in [0.0, 0.5] {
            let var = Var::from_tensor(&Tensor::new(&[theta], &Device::Cpu).unwrap()).unwrap();
            let scores = var.as_tensor().broadcast_as((n, 2)).unwrap();
            let masks = position_masks(&arms, 2, DType::F64).unwrap();
            let lp = plackett_luce_log_prob(&scores, &arms, &masks, 1.0).unwrap();
            let weights: Vec<f64> = rewards.iter().map(|r| r - baseline).collect();
            let w = Tensor::from_vec(weights, n, &Device::Cpu).unwrap();
            let surrogate = (lp * w).unwrap().mean_all().unwrap();
            let grads = surrogate.backward().unwrap();
            let g: Vec<Vec<f64>> = grads.get(var.as_tensor()).unwrap().to_vec2().unwrap();
            for a in 0..2 {
                // The estimator's standard deviation is below 1, so 200,000 draws give a
                // standard error below 0.0023; 0.01 is more than four of them.
                assert!(
                    (g[0][a] - truth[a]).abs() < 0.01,
                    "baseline {baseline}, arm {a}: {} vs {}",
                    g[0][a],
                    truth[a]
                );
            }
        }
    }

    #[test]
    fn entropy_of_a_uniform_row_is_ln_n() {
        let scores = Tensor::zeros((1, 4), DType::F64, &Device::Cpu).unwrap();
        let h = first_position_entropy(&scores, 1.0)
            .unwrap()
            .to_vec1::<f64>()
            .unwrap()[0];
        assert!((h - 4f64.ln()).abs() < 1e-12);
    }
}
