//! Biased matrix factorisation by alternating least squares, and the closed-form ridge fold-in of
//! a new user's support set.
//!
//! The model is `r_ui = mu + b_i + b_u + <p_u, q_i>`. A user's unknowns `w_u = [b_u, p_u]` enter
//! linearly with design `z_i = [1, q_i]` and target `r_ui - mu - b_i`, so both the training
//! user step and the fold-in of a new user solve the same ridge problem
//! `min_w sum (y - z.w)^2 + lambda |w|^2`, i.e. `(Z^T Z + lambda I) w = Z^T y` ([`fold_in`]).
//! [`MfModel`] keeps the item side; [`train_mf`] fits it on the training users only.
//!
//! Implicit feedback (purchases, clicks) has no ratings: [`train_implicit`] fits Hu, Koren and
//! Volinsky's weighted ALS, where every item is an observation of preference 0 at confidence 1
//! and an item the user interacted with one of preference 1 at confidence `1 + alpha r`
//! ([`ImplicitModel`]). The fold-in of a new user solves the same ridge problem in closed form
//! from the precomputed Gram matrix of all item factors ([`ImplicitModel::fold_in`]); its normal
//! equations ([`ImplicitModel::support_system`]) are also what the Bayesian adjuster's posterior
//! reads.

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
pub(crate) fn ridge_solve(mut gram: Vec<f64>, mut rhs: Vec<f64>, lambda: f64) -> Vec<f64> {
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
    let mut model = MfModel {
        mu,
        dim: d,
        item_bias: vec![0.0; items],
        item_factors: small_normals(seed, items * d),
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

/// `N(0, 0.1^2)` draws by Box-Muller, which keeps this crate off rand_distr for one normal.
fn small_normals(seed: u64, count: usize) -> Vec<f64> {
    let mut rng = rng_for(seed, 0);
    (0..count)
        .map(|_| {
            let u1: f64 = rng.random::<f64>().max(1e-300);
            let u2: f64 = rng.random();
            0.1 * (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
        })
        .collect()
}

/// Settings of [`train_implicit`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ImplicitConfig {
    /// Latent dimension.
    pub dim: usize,
    /// Ridge weight on user and item factors.
    pub lambda: f64,
    /// Confidence slope: an interaction of strength `r` has confidence `1 + alpha r`.
    pub alpha: f64,
    /// ALS sweeps (users then items).
    pub sweeps: usize,
}

impl Default for ImplicitConfig {
    fn default() -> Self {
        ImplicitConfig {
            dim: 32,
            lambda: 10.0,
            alpha: 10.0,
            sweeps: 10,
        }
    }
}

/// A weighted (implicit-feedback) factorisation: scores `<x_u, y_i>`.
#[derive(Debug, Clone, PartialEq)]
pub struct ImplicitModel {
    /// The settings it was fitted with.
    pub config: ImplicitConfig,
    /// Item factors `y_i`, `items x dim`, row-major (zeros for items nobody interacted with).
    pub item_factors: Vec<f64>,
    /// Training users' factors `x_u`, `users x dim`, in the order of the rows given.
    pub user_factors: Vec<f64>,
    /// `Y^T Y`, the Gram matrix of all item factors, `dim x dim`.
    pub item_gram: Vec<f64>,
}

impl ImplicitModel {
    /// Items in the model.
    pub fn items(&self) -> usize {
        self.item_factors.len() / self.config.dim.max(1)
    }

    /// Item `i`'s factors.
    pub fn item(&self, i: usize) -> &[f64] {
        let d = self.config.dim;
        &self.item_factors[i * d..(i + 1) * d]
    }

    /// The normal equations of a user with interactions `obs` (item, strength), without the
    /// ridge: `gram = Y^T Y + sum (c - 1) y y^T` and `rhs = sum c y`, `c = 1 + alpha r`.
    pub fn support_system(&self, obs: &[(u32, f64)]) -> (Vec<f64>, Vec<f64>) {
        let d = self.config.dim;
        let mut gram = self.item_gram.clone();
        let mut rhs = vec![0.0; d];
        for &(i, r) in obs {
            let y = self.item(i as usize);
            add_interaction(&mut gram, &mut rhs, y, self.config.alpha * r);
        }
        (gram, rhs)
    }

    /// The closed-form fold-in of a new user: `(gram + lambda I)^{-1} rhs` of
    /// [`ImplicitModel::support_system`] (zeros with no interactions).
    pub fn fold_in(&self, obs: &[(u32, f64)], lambda: f64) -> Vec<f64> {
        if obs.is_empty() {
            return vec![0.0; self.config.dim];
        }
        let (gram, rhs) = self.support_system(obs);
        ridge_solve(gram, rhs, lambda)
    }

    /// Every item's score `<w, y_i>` for a user vector `w`.
    pub fn scores(&self, w: &[f64], out: &mut Vec<f64>) {
        out.clear();
        out.extend((0..self.items()).map(|i| dot(w, self.item(i))));
    }
}

/// Adds one interaction of confidence `1 + extra` to the normal equations whose Gram matrix
/// already holds every item at confidence 1: the confidence above 1 on the Gram side
/// (`gram += extra y y^T`), all of it on the right-hand side (preference 1: `rhs += (1 + extra) y`).
fn add_interaction(gram: &mut [f64], rhs: &mut [f64], y: &[f64], extra: f64) {
    let n = y.len();
    for a in 0..n {
        let ea = extra * y[a];
        for b in 0..n {
            gram[a * n + b] += ea * y[b];
        }
        rhs[a] += (1.0 + extra) * y[a];
    }
}

/// The Gram matrix `F^T F` of the rows of `factors` (`dim` columns).
fn gram_of(factors: &[f64], dim: usize) -> Vec<f64> {
    let mut g = vec![0.0; dim * dim];
    for row in factors.chunks_exact(dim) {
        for a in 0..dim {
            let ra = row[a];
            if ra == 0.0 {
                continue;
            }
            for b in 0..dim {
                g[a * dim + b] += ra * row[b];
            }
        }
    }
    g
}

/// One half-sweep of weighted ALS: solves every row of `out` against the fixed `other` factors
/// (`other_gram` their Gram matrix), for rows of (index into `other`, strength).
fn implicit_half_sweep(
    rows: &[Vec<(u32, f64)>],
    other: &[f64],
    other_gram: &[f64],
    config: &ImplicitConfig,
    out: &mut [f64],
) {
    let d = config.dim;
    let mut rhs = vec![0.0; d];
    let mut gram = vec![0.0; d * d];
    for (row, target) in rows.iter().zip(out.chunks_exact_mut(d)) {
        if row.is_empty() {
            target.fill(0.0);
            continue;
        }
        gram.copy_from_slice(other_gram);
        rhs.fill(0.0);
        for &(j, r) in row {
            let y = &other[j as usize * d..(j as usize + 1) * d];
            add_interaction(&mut gram, &mut rhs, y, config.alpha * r);
        }
        let w = ridge_solve(gram.clone(), rhs.clone(), config.lambda);
        target.copy_from_slice(&w);
    }
}

/// Fits weighted ALS to `rows` (per training user: (item, strength) pairs, each item at most
/// once, strengths positive) over a catalogue of `items`. Item factors start as `N(0, 0.1^2)`
/// draws from `rng_for(seed, 0)`; items no row names end with zero factors.
pub fn train_implicit(
    rows: &[Vec<(u32, f64)>],
    items: usize,
    config: &ImplicitConfig,
    seed: u64,
) -> ImplicitModel {
    let d = config.dim;
    let mut by_item: Vec<Vec<(u32, f64)>> = vec![Vec::new(); items];
    for (u, row) in rows.iter().enumerate() {
        for &(i, r) in row {
            if let Some(list) = by_item.get_mut(i as usize) {
                list.push((u as u32, r));
            }
        }
    }
    let mut item_factors = small_normals(seed, items * d);
    for (i, list) in by_item.iter().enumerate() {
        if list.is_empty() {
            item_factors[i * d..(i + 1) * d].fill(0.0);
        }
    }
    let mut user_factors = vec![0.0; rows.len() * d];
    for _ in 0..config.sweeps {
        let g = gram_of(&item_factors, d);
        implicit_half_sweep(rows, &item_factors, &g, config, &mut user_factors);
        let g = gram_of(&user_factors, d);
        implicit_half_sweep(&by_item, &user_factors, &g, config, &mut item_factors);
    }
    let item_gram = gram_of(&item_factors, d);
    ImplicitModel {
        config: *config,
        item_factors,
        user_factors,
        item_gram,
    }
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

    #[test]
    fn implicit_fold_in_zeroes_the_weighted_ridge_gradient() {
        // Three items in two dimensions; the user bought item 1 (strength 2) and item 2
        // (strength 1). The objective sum_i c_i (p_i - x.y_i)^2 + lambda |x|^2 over all items
        // has gradient sum_i c_i (x.y_i - p_i) y_i + lambda x, zero at the fold-in.
        let config = ImplicitConfig {
            dim: 2,
            lambda: 0.5,
            alpha: 3.0,
            sweeps: 1,
        };
        let item_factors = vec![0.3, -0.2, 0.9, 0.4, -0.5, 0.8];
        let model = ImplicitModel {
            config,
            item_gram: gram_of(&item_factors, 2),
            item_factors,
            user_factors: Vec::new(),
        };
        let obs = [(1u32, 2.0), (2u32, 1.0)];
        let x = model.fold_in(&obs, config.lambda);
        let mut grad: Vec<f64> = x.iter().map(|v| config.lambda * v).collect();
        for i in 0..3 {
            let (c, p) = match obs.iter().find(|o| o.0 == i as u32) {
                Some(&(_, r)) => (1.0 + config.alpha * r, 1.0),
                None => (1.0, 0.0),
            };
            let y = model.item(i);
            let e = dot(&x, y) - p;
            for (g, yk) in grad.iter_mut().zip(y) {
                *g += c * e * yk;
            }
        }
        assert!(grad.iter().all(|g| g.abs() < 1e-12), "{grad:?}");
    }

    #[test]
    fn implicit_als_ranks_a_users_own_block_first() {
        // Two blocks of users and items: users 0..10 buy items 0..5, users 10..20 items 5..10.
        let rows: Vec<Vec<(u32, f64)>> = (0..20)
            .map(|u| {
                let base = if u < 10 { 0 } else { 5 };
                (0..5)
                    .filter(|j| (u + j) % 5 != 0)
                    .map(|j| (base + j as u32, 1.0))
                    .collect()
            })
            .collect();
        let config = ImplicitConfig {
            dim: 4,
            lambda: 0.1,
            alpha: 10.0,
            sweeps: 10,
        };
        let a = train_implicit(&rows, 12, &config, 3);
        assert_eq!(a, train_implicit(&rows, 12, &config, 3), "seeded");
        // A new user who bought item 1 scores block 0's other items above block 1's, on average
        // by a wide margin; items 10 and 11, never bought, have zero factors.
        let mut s = Vec::new();
        a.scores(&a.fold_in(&[(1, 1.0)], config.lambda), &mut s);
        let own = (s[0] + s[2] + s[3] + s[4]) / 4.0;
        let other = s[5..10].iter().sum::<f64>() / 5.0;
        assert!(own > other + 0.2, "{s:?}");
        assert!(a.item(10).iter().all(|v| *v == 0.0));
    }
}
