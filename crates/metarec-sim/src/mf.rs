//! Implicit-feedback matrix factorisation by alternating least squares (Hu, Koren & Volinsky,
//! "Collaborative Filtering for Implicit Feedback Datasets", ICDM 2008).
//!
//! The simulator's ground truth: user and item vectors whose dot product is a user's preference
//! for an item, fitted on who bought what. Every user-item cell is an observation: a preference
//! of 1 with confidence `1 + alpha ln(1 + count)` where the user bought the item, 0 with
//! confidence 1 elsewhere; the cost of the dense part is folded into one `Y^T Y` per sweep.

use metarec_core::linalg::{cholesky_in_place, cholesky_solve};
use metarec_core::rng_for;
use rand_distr::{Distribution, Normal};
use serde::{Deserialize, Serialize};

/// Settings of the factorisation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MfConfig {
    /// Latent dimension.
    pub dim: usize,
    /// Alternating sweeps (users then items).
    pub iterations: usize,
    /// L2 regularisation `lambda`.
    pub regularization: f64,
    /// Confidence growth `alpha` per log purchase count.
    pub alpha: f64,
    /// Seed of the initial item vectors.
    pub seed: u64,
}

impl Default for MfConfig {
    fn default() -> Self {
        MfConfig {
            dim: 16,
            iterations: 8,
            regularization: 0.1,
            alpha: 20.0,
            seed: 17,
        }
    }
}

/// Fitted vectors, row-major.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Factors {
    /// Latent dimension.
    pub dim: usize,
    /// One row of `dim` values per user.
    pub users: Vec<f64>,
    /// One row of `dim` values per item.
    pub items: Vec<f64>,
}

impl Factors {
    /// User `u`'s vector.
    pub fn user(&self, u: usize) -> &[f64] {
        &self.users[u * self.dim..(u + 1) * self.dim]
    }

    /// Item `i`'s vector.
    pub fn item(&self, i: usize) -> &[f64] {
        &self.items[i * self.dim..(i + 1) * self.dim]
    }
}

/// A sparse matrix in compressed rows: `rows[r]..rows[r+1]` index `cols` and `vals`.
struct Csr {
    rows: Vec<usize>,
    cols: Vec<u32>,
    vals: Vec<f64>,
}

fn csr(n_rows: usize, entries: &[(u32, u32, f64)], transpose: bool) -> Csr {
    let mut counts = vec![0usize; n_rows + 1];
    for &(u, i, _) in entries {
        let r = if transpose { i } else { u } as usize;
        counts[r + 1] += 1;
    }
    for r in 0..n_rows {
        counts[r + 1] += counts[r];
    }
    let mut fill = counts.clone();
    let mut cols = vec![0u32; entries.len()];
    let mut vals = vec![0.0; entries.len()];
    for &(u, i, v) in entries {
        let (r, c) = if transpose { (i, u) } else { (u, i) };
        let at = fill[r as usize];
        cols[at] = c;
        vals[at] = v;
        fill[r as usize] += 1;
    }
    Csr {
        rows: counts,
        cols,
        vals,
    }
}

/// Fits user and item vectors to `(user, item, count)` entries (each pair at most once, counts
/// positive). Indices must be below `n_users` and `n_items`.
pub fn fit_implicit(
    n_users: usize,
    n_items: usize,
    entries: &[(u32, u32, f64)],
    config: &MfConfig,
) -> Factors {
    let d = config.dim;
    let mut rng = rng_for(config.seed, 0x6d66);
    let normal = Normal::new(0.0, 0.1).expect("a valid standard deviation");
    let mut users = vec![0.0; n_users * d];
    let mut items: Vec<f64> = (0..n_items * d).map(|_| normal.sample(&mut rng)).collect();
    let by_user = csr(n_users, entries, false);
    let by_item = csr(n_items, entries, true);
    for _ in 0..config.iterations {
        sweep(&by_user, &items, &mut users, d, config);
        sweep(&by_item, &users, &mut items, d, config);
    }
    Factors {
        dim: d,
        users,
        items,
    }
}

/// Solves every row of `out` given the fixed vectors `fixed` of the other side.
fn sweep(m: &Csr, fixed: &[f64], out: &mut [f64], d: usize, config: &MfConfig) {
    // G = Y^T Y over all fixed vectors: the contribution of every unobserved cell.
    let mut gram = vec![0.0; d * d];
    for y in fixed.chunks_exact(d) {
        for a in 0..d {
            for b in 0..=a {
                gram[a * d + b] += y[a] * y[b];
            }
        }
    }
    for a in 0..d {
        for b in 0..a {
            gram[b * d + a] = gram[a * d + b];
        }
    }
    let mut a_mat = vec![0.0; d * d];
    let mut rhs = vec![0.0; d];
    for (r, x) in out.chunks_exact_mut(d).enumerate() {
        a_mat.copy_from_slice(&gram);
        for k in 0..d {
            a_mat[k * d + k] += config.regularization;
        }
        rhs.iter_mut().for_each(|v| *v = 0.0);
        for idx in m.rows[r]..m.rows[r + 1] {
            let c = 1.0 + config.alpha * (1.0 + m.vals[idx]).ln();
            let y = &fixed[m.cols[idx] as usize * d..(m.cols[idx] as usize + 1) * d];
            for a in 0..d {
                let ca = (c - 1.0) * y[a];
                for b in 0..d {
                    a_mat[a * d + b] += ca * y[b];
                }
                rhs[a] += c * y[a];
            }
        }
        if cholesky_in_place(&mut a_mat, d) {
            cholesky_solve(&a_mat, d, &mut rhs);
            x.copy_from_slice(&rhs);
        }
        // A non-positive-definite system cannot occur with regularisation > 0; if it did, the
        // row would keep its previous value rather than become NaN.
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use metarec_core::linalg::dot;

    /// Two groups of users buying from two disjoint groups of items.
    fn blocks() -> (usize, usize, Vec<(u32, u32, f64)>) {
        let mut e = Vec::new();
        for u in 0..20u32 {
            for i in 0..10u32 {
                let same_block = (u < 10) == (i < 5);
                // Each user bought most, but not all, of their block's items.
                if same_block && (u + i) % 4 != 0 {
                    e.push((u, i, 1.0 + f64::from(i % 3)));
                }
            }
        }
        (20, 10, e)
    }

    #[test]
    fn recovers_block_structure_including_held_out_cells() {
        let (nu, ni, e) = blocks();
        let f = fit_implicit(
            nu,
            ni,
            &e,
            &MfConfig {
                dim: 2,
                regularization: 1.0,
                ..MfConfig::default()
            },
        );
        // A user's unbought item in their own block must score above every other-block item.
        for u in 0..20usize {
            for i in 0..10usize {
                let same = (u < 10) == (i < 5);
                if same && (u + i) % 4 == 0 {
                    let held_out = dot(f.user(u), f.item(i));
                    for j in 0..10usize {
                        if (u < 10) != (j < 5) {
                            assert!(
                                held_out > dot(f.user(u), f.item(j)),
                                "user {u} item {i} vs {j}"
                            );
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn same_seed_gives_identical_factors() {
        let (nu, ni, e) = blocks();
        let c = MfConfig {
            dim: 3,
            iterations: 3,
            ..MfConfig::default()
        };
        assert_eq!(fit_implicit(nu, ni, &e, &c), fit_implicit(nu, ni, &e, &c));
        let other = MfConfig {
            seed: 99,
            ..c.clone()
        };
        assert_ne!(
            fit_implicit(nu, ni, &e, &c),
            fit_implicit(nu, ni, &e, &other)
        );
    }
}
