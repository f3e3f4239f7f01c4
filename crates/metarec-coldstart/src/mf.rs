//! Biased matrix factorisation by alternating least squares, and the closed-form ridge fold-in of
//! a new user's support set.
//!
//! The model is `r_ui = mu + b_i + b_u + <p_u, q_i>`. A user's unknowns `w_u = [b_u, p_u]` enter
//! linearly with design `z_i = [1, q_i]` and target `r_ui - mu - b_i`, so both the training
//! user step and the fold-in of a new user solve the same ridge problem
//! `min_w sum (y - z.w)^2 + lambda |w|^2`, i.e. `(Z^T Z + lambda I) w = Z^T y` ([`fold_in`]).
//! [`MfModel`] keeps the item side; [`train_mf`] fits it on the training users only.

use crate::data::{Obs, RatingData};
use metarec_core::linalg::{dot, solve_spd};
use metarec_core::rng_for;
use rand::Rng as _;
use serde::Serialize;

/// Settings of [`train_mf`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct MfConfig {
    /// Latent dimension.
    pub dim: usize,
    /// Ridge weight on each training user's `[b_u, p_u]`.
    pub lambda_user: f64,
    /// Ridge weight on each item's `[b_i, q_i]`.
    pub lambda_item: f64,
    /// ALS sweeps (users then items).
    pub sweeps: usize,
}

impl Default for MfConfig {
    fn default() -> Self {
        MfConfig {
            dim: 10,
            lambda_user: 5.0,
            lambda_item: 5.0,
            sweeps: 12,
        }
    }
}

/// The item side of a factorisation, shared by MF fold-in and the Bayesian adjuster.
#[derive(Debug, Clone, PartialEq)]
pub struct MfModel {
    /// Global mean rating of the training ratings.
    pub mu: f64,
    /// Latent dimension `d`.
    pub dim: usize,
    /// Item biases `b_i`.
    pub item_bias: Vec<f64>,
    /// Item factors `q_i`, `items x d`, row-major.
    pub item_factors: Vec<f64>,
    /// Training users' `[b_u, p_u]`, `train users x (d + 1)`, in the order they were given.
    pub user_vectors: Vec<f64>,
}

impl MfModel {
    /// The design row `z_i = [1, q_i]` of item `i`.
    pub fn design(&self, i: usize, z: &mut [f64]) {
        z[0] = 1.0;
        z[1..].copy_from_slice(&self.item_factors[i * self.dim..(i + 1) * self.dim]);
    }

    /// The fold-in target `r - mu - b_i` of an observation.
    pub fn target(&self, o: &Obs) -> f64 {
        o.rating - self.mu - self.item_bias[o.item as usize]
    }

    /// Predicted ratings of every item for a user vector `w = [b_u, p_u]`.
    pub fn predict_all(&self, w: &[f64], out: &mut Vec<f64>) {
        let d = self.dim;
        out.clear();
        out.extend((0..self.item_bias.len()).map(|i| {
            self.mu
                + self.item_bias[i]
                + w[0]
                + dot(&w[1..], &self.item_factors[i * d..(i + 1) * d])
        }));
    }
}

/// Solves the ridge problem `(Z^T Z + lambda I) w = Z^T y` of a user with observations `obs`
/// against the item side of `model`: the closed-form fold-in. With no observations it returns
/// zeros (the average user).
pub fn fold_in(model: &MfModel, obs: &[Obs], lambda: f64) -> Vec<f64> {
    let n = model.dim + 1;
    let mut gram = vec![0.0; n * n];
    let mut rhs = vec![0.0; n];
    let mut z = vec![0.0; n];
    for o in obs {
        model.design(o.item as usize, &mut z);
        let y = model.target(o);
        accumulate(&mut gram, &mut rhs, &z, y, 1.0);
    }
    ridge_solve(gram, rhs, lambda)
}

/// `gram += w z z^T`, `rhs += w z y`.
pub(crate) fn accumulate(gram: &mut [f64], rhs: &mut [f64], z: &[f64], y: f64, w: f64) {
    let n = z.len();
    for a in 0..n {
        let wa = w * z[a];
        for b in 0..n {
            gram[a * n + b] += wa * z[b];
        }
        rhs[a] += wa * y;
    }
}

/// `(gram + lambda I)^{-1} rhs`; zeros if the system is singular (only possible for
/// `lambda <= 0`).
fn ridge_solve(mut gram: Vec<f64>, mut rhs: Vec<f64>, lambda: f64) -> Vec<f64> {
    let n = rhs.len();
    for k in 0..n {
        gram[k * n + k] += lambda;
    }
    if solve_spd(&mut gram, n, &mut rhs) {
        rhs
    } else {
        vec![0.0; n]
    }
}

/// Fits the factorisation by ALS on all ratings of `train` users (indices into `data.users`).
/// Item factors start as `N(0, 0.1^2)` draws from `rng_for(seed, 0)`; items nobody in `train`
/// rated keep zero bias and factors.
pub fn train_mf(data: &RatingData, train: &[usize], config: &MfConfig, seed: u64) -> MfModel {
    let d = config.dim;
    let items = data.items;
    let (sum, count) = train
        .iter()
        .flat_map(|&u| &data.users[u].ratings)
        .fold((0.0, 0usize), |(s, c), o| (s + o.rating, c + 1));
    let mu = if count > 0 { sum / count as f64 } else { 0.0 };
    let mut rng = rng_for(seed, 0);
    let mut model = MfModel {
        mu,
        dim: d,
        item_bias: vec![0.0; items],
        item_factors: (0..items * d)
            .map(|_| {
                // Box-Muller keeps this crate off rand_distr for a single normal draw.
                let u1: f64 = rng.random::<f64>().max(1e-300);
                let u2: f64 = rng.random();
                0.1 * (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
            })
            .collect(),
        user_vectors: vec![0.0; train.len() * (d + 1)],
    };
    // Ratings by item: (training user position, rating).
    let mut by_item: Vec<Vec<(usize, f64)>> = vec![Vec::new(); items];
    for (pos, &u) in train.iter().enumerate() {
        for o in &data.users[u].ratings {
            by_item[o.item as usize].push((pos, o.rating));
        }
    }
    for (i, rated) in by_item.iter().enumerate() {
        if rated.is_empty() {
            model.item_factors[i * d..(i + 1) * d].fill(0.0);
        }
    }
    let n = d + 1;
    for _ in 0..config.sweeps {
        for (pos, &u) in train.iter().enumerate() {
            let w = fold_in(&model, &data.users[u].ratings, config.lambda_user);
            model.user_vectors[pos * n..(pos + 1) * n].copy_from_slice(&w);
        }
        let mut gram = vec![0.0; n * n];
        let mut rhs = vec![0.0; n];
        let mut z = vec![0.0; n];
        for (i, rated) in by_item.iter().enumerate() {
            if rated.is_empty() {
                continue;
            }
            gram.fill(0.0);
            rhs.fill(0.0);
            for &(pos, r) in rated {
                let w = &model.user_vectors[pos * n..(pos + 1) * n];
                z[0] = 1.0;
                z[1..].copy_from_slice(&w[1..]);
                accumulate(&mut gram, &mut rhs, &z, r - mu - w[0], 1.0);
            }
            let v = ridge_solve(gram.clone(), rhs.clone(), config.lambda_item);
            model.item_bias[i] = v[0];
            model.item_factors[i * d..(i + 1) * d].copy_from_slice(&v[1..]);
        }
    }
    model
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toy_model() -> MfModel {
        MfModel {
            mu: 3.5,
            dim: 2,
            item_bias: vec![0.2, -0.4, 0.1],
            item_factors: vec![1.0, 0.5, -0.3, 0.8, 0.6, -1.2],
            user_vectors: Vec::new(),
        }
    }

    #[test]
    fn fold_in_of_one_observation_matches_the_closed_form() {
        // One observation: (z z^T + lambda I) w = z y has the solution w = z y / (|z|^2 + lambda)
        // (Sherman-Morrison), checked here by hand.
        let m = toy_model();
        let obs = [Obs {
            item: 1,
            rating: 5.0,
        }];
        let lambda = 2.0;
        let z = [1.0, -0.3, 0.8];
        let y = 5.0 - 3.5 + 0.4;
        let norm2 = 1.0 + 0.09 + 0.64;
        let w = fold_in(&m, &obs, lambda);
        for (a, b) in w.iter().zip(z) {
            assert!((a - b * y / (norm2 + lambda)).abs() < 1e-12, "{a}");
        }
    }

    #[test]
    fn fold_in_zeroes_the_ridge_gradient() {
        // The solution of min |y - Zw|^2 + lambda |w|^2 has gradient Z^T (Zw - y) + lambda w = 0.
        let m = toy_model();
        let obs = [
            Obs {
                item: 0,
                rating: 4.0,
            },
            Obs {
                item: 1,
                rating: 2.0,
            },
            Obs {
                item: 2,
                rating: 5.0,
            },
        ];
        let lambda = 0.7;
        let w = fold_in(&m, &obs, lambda);
        let mut grad: Vec<f64> = w.iter().map(|x| lambda * x).collect();
        let mut z = [0.0; 3];
        for o in &obs {
            m.design(o.item as usize, &mut z);
            let resid = dot(&z, &w) - m.target(o);
            for (g, zk) in grad.iter_mut().zip(z) {
                *g += zk * resid;
            }
        }
        assert!(grad.iter().all(|g| g.abs() < 1e-10), "{grad:?}");
        // With no observations the fold-in is the average user.
        assert_eq!(fold_in(&m, &[], lambda), vec![0.0; 3]);
    }
}
