//! The Bayesian adjuster for ratings: a meta-learned hierarchical Gaussian prior over the user
//! vector, with closed-form posterior updates from the support set.
//!
//! A user's vector `w_u = [b_u, p_u]` scores item `i` as `mu + b_i + z_i . w_u` with
//! `z_i = [1, q_i]`. The prior is `w_u ~ N(A x_u, Sigma)`, its mean a linear map of the user's
//! demographics `x_u`, and ratings carry noise `N(0, sigma^2)`. Given support ratings the posterior
//! is Gaussian with precision `Sigma^{-1} + Z^T Z / sigma^2` and mean
//! `P^{-1} (Sigma^{-1} A x_u + Z^T y / sigma^2)` ([`HierPrior::posterior`]).
//!
//! The prior is meta-learned across training users by empirical Bayes ([`fit_bayes`]): starting
//! from an ALS factorisation, expectation-maximisation alternates each training user's posterior
//! (mean and covariance, given all their ratings) with closed-form updates of `A` (ridge
//! regression of posterior means on demographics), `Sigma` (scatter of the posterior means about
//! the prior mean plus the posterior covariances) and `sigma^2` (expected squared residuals).
//! Items get the same treatment with a prior `[b_i, q_i] ~ N(B f_i, Sigma_v)` from their genres,
//! year and training popularity, and are re-solved against the users' expected sufficient statistics (variational EM),
//! so a movie with few training ratings is shrunk towards movies like it rather than towards zero.

use crate::data::{Obs, RatingData};
use crate::mf::{MfModel, accumulate};
use metarec_core::linalg::{cholesky_in_place, cholesky_solve, dot};
use serde::Serialize;

/// Settings of [`fit_bayes`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct BayesConfig {
    /// EM iterations.
    pub iterations: usize,
    /// Ridge weight of the regressions of the prior means on features (`A` and `B`).
    pub feature_ridge: f64,
    /// Re-solve the items against the users' posteriors, with their own feature prior.
    pub update_items: bool,
}

impl Default for BayesConfig {
    fn default() -> Self {
        BayesConfig {
            iterations: 15,
            feature_ridge: 1.0,
            update_items: true,
        }
    }
}

/// A Gaussian prior whose mean is a linear map of features: `N(A x, Sigma)`, and the rating
/// noise variance.
#[derive(Debug, Clone, PartialEq)]
pub struct HierPrior {
    /// Dimension of the vector.
    pub dim: usize,
    /// Number of features.
    pub features: usize,
    /// `A`, `dim x features`, row-major.
    pub map: Vec<f64>,
    /// `Sigma^{-1}`, `dim x dim`, row-major.
    pub precision: Vec<f64>,
    /// The rating noise variance `sigma^2`.
    pub noise: f64,
}

/// A Gaussian posterior: mean and covariance.
#[derive(Debug, Clone, PartialEq)]
pub struct Posterior {
    /// The mean.
    pub mean: Vec<f64>,
    /// The covariance, row-major.
    pub cov: Vec<f64>,
}

impl HierPrior {
    /// The prior mean `A x`.
    pub fn mean(&self, x: &[f64]) -> Vec<f64> {
        (0..self.dim)
            .map(|a| dot(&self.map[a * self.features..(a + 1) * self.features], x))
            .collect()
    }

    /// The posterior given observations `(z_j, y_j)` summarised as `gram = sum z z^T` and
    /// `rhs = sum z y`: precision `P = Sigma^{-1} + gram / sigma^2`, mean
    /// `P^{-1} (Sigma^{-1} A x + rhs / sigma^2)`, covariance `P^{-1}`.
    pub fn posterior(&self, x: &[f64], gram: &[f64], rhs: &[f64]) -> Posterior {
        let n = self.dim;
        let m0 = self.mean(x);
        let mut p = self.precision.clone();
        let mut h = vec![0.0; n];
        for a in 0..n {
            h[a] = dot(&self.precision[a * n..(a + 1) * n], &m0) + rhs[a] / self.noise;
            for b in 0..n {
                p[a * n + b] += gram[a * n + b] / self.noise;
            }
        }
        // The prior precision is positive definite and the Gram matrix semi-definite, so the
        // factorisation succeeds; the fallback (the prior) guards against rounding trouble.
        if !cholesky_in_place(&mut p, n) {
            return Posterior {
                mean: m0,
                cov: invert(&self.precision, n).unwrap_or_else(|| identity(n)),
            };
        }
        cholesky_solve(&p, n, &mut h);
        let mut cov = identity(n);
        for col in 0..n {
            let mut e: Vec<f64> = (0..n).map(|r| cov[r * n + col]).collect();
            cholesky_solve(&p, n, &mut e);
            for r in 0..n {
                cov[r * n + col] = e[r];
            }
        }
        Posterior { mean: h, cov }
    }
}

fn identity(n: usize) -> Vec<f64> {
    let mut m = vec![0.0; n * n];
    for k in 0..n {
        m[k * n + k] = 1.0;
    }
    m
}

/// The inverse of a symmetric positive-definite matrix, or `None`.
fn invert(a: &[f64], n: usize) -> Option<Vec<f64>> {
    let mut l = a.to_vec();
    if !cholesky_in_place(&mut l, n) {
        return None;
    }
    let mut inv = identity(n);
    for col in 0..n {
        let mut e: Vec<f64> = (0..n).map(|r| inv[r * n + col]).collect();
        cholesky_solve(&l, n, &mut e);
        for r in 0..n {
            inv[r * n + col] = e[r];
        }
    }
    Some(inv)
}

/// Fits `N(A x, Sigma)` to posterior means `means` (rows of `dim`), covariances `covs` and
/// features `xs` (rows of `p`): `A` by ridge regression, `Sigma` as the mean of
/// `(m - A x)(m - A x)^T + S`, with a small jitter for definiteness.
pub(crate) fn fit_prior(
    means: &[f64],
    covs: &[f64],
    xs: &[f64],
    dim: usize,
    p: usize,
    ridge: f64,
    noise: f64,
) -> HierPrior {
    let count = means.len() / dim;
    // A^T = (X^T X + ridge I)^{-1} X^T M, one solve per output coordinate.
    let mut xtx = vec![0.0; p * p];
    for r in 0..count {
        let x = &xs[r * p..(r + 1) * p];
        for a in 0..p {
            for b in 0..p {
                xtx[a * p + b] += x[a] * x[b];
            }
        }
    }
    for k in 0..p {
        xtx[k * p + k] += ridge;
    }
    let mut l = xtx;
    let ok = cholesky_in_place(&mut l, p);
    let mut map = vec![0.0; dim * p];
    if ok {
        for c in 0..dim {
            let mut xtm = vec![0.0; p];
            for r in 0..count {
                let m = means[r * dim + c];
                for (acc, x) in xtm.iter_mut().zip(&xs[r * p..(r + 1) * p]) {
                    *acc += x * m;
                }
            }
            cholesky_solve(&l, p, &mut xtm);
            map[c * p..(c + 1) * p].copy_from_slice(&xtm);
        }
    }
    let mut prior = HierPrior {
        dim,
        features: p,
        map,
        precision: Vec::new(),
        noise,
    };
    let mut sigma = vec![0.0; dim * dim];
    for r in 0..count {
        let m0 = prior.mean(&xs[r * p..(r + 1) * p]);
        let e: Vec<f64> = (0..dim).map(|c| means[r * dim + c] - m0[c]).collect();
        for a in 0..dim {
            for b in 0..dim {
                sigma[a * dim + b] += e[a] * e[b] + covs[r * dim * dim + a * dim + b];
            }
        }
    }
    let denom = count.max(1) as f64;
    for (k, s) in sigma.iter_mut().enumerate() {
        *s /= denom;
        if k % (dim + 1) == 0 {
            *s += 1e-6;
        }
    }
    prior.precision = invert(&sigma, dim).unwrap_or_else(|| identity(dim));
    prior
}

/// How [`BayesModel::rank_all`] turns the posterior into a ranking of the whole catalogue.
///
/// Predicting a rating and choosing what to show pull apart on a large catalogue: the posterior
/// mean of a movie few people rated can be high while the chance that the user would pick it out
/// of 1,600 is small. The ranking score therefore subtracts a multiple of the prediction's
/// standard deviation (a lower quantile, so a well-known good movie beats an uncertain one) and
/// adds a multiple of the item's training popularity `log(1 + n_i)` (how likely a user is to
/// watch and rate it at all). Both weights are chosen on validation users by the ranking metric;
/// the rating predictions do not change.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize)]
pub struct CatalogueRanking {
    /// Standard deviations of the predicted rating subtracted from its mean.
    pub caution: f64,
    /// Weight of `log(1 + training ratings of the item)`.
    pub popularity: f64,
}

/// The Bayesian adjuster: the item side and the meta-learned user prior.
#[derive(Debug, Clone, PartialEq)]
pub struct BayesModel {
    /// The item side (global mean, item biases and factors).
    pub items: MfModel,
    /// The user prior `N(A x_u, Sigma)` and the noise.
    pub prior: HierPrior,
    /// Each item's posterior covariance of `[b_i, q_i]`, `items x (d + 1) x (d + 1)` (zeros when
    /// the items were not re-solved).
    pub item_cov: Vec<f64>,
    /// Each item's `log(1 + ratings by training users)`.
    pub item_log_count: Vec<f64>,
}

impl BayesModel {
    /// The posterior of a user with features `x` after the support ratings.
    pub fn posterior(&self, x: &[f64], support: &[Obs]) -> Posterior {
        let n = self.items.dim + 1;
        let mut gram = vec![0.0; n * n];
        let mut rhs = vec![0.0; n];
        let mut z = vec![0.0; n];
        for o in support {
            self.items.design(o.item as usize, &mut z);
            accumulate(&mut gram, &mut rhs, &z, self.items.target(o), 1.0);
        }
        self.prior.posterior(x, &gram, &rhs)
    }

    /// Predicted ratings of every item: the posterior mean's scores.
    pub fn predict_all(&self, x: &[f64], support: &[Obs], out: &mut Vec<f64>) {
        let w = self.posterior(x, support).mean;
        self.items.predict_all(&w, out);
    }

    /// Scores that rank every item for a user (see [`CatalogueRanking`]): the predicted rating,
    /// less `caution` times its standard deviation under the user's and the item's posteriors,
    /// plus `popularity` times the item's `log(1 + n_i)`. With both weights 0 these are the
    /// predicted ratings.
    pub fn rank_all(
        &self,
        x: &[f64],
        support: &[Obs],
        ranking: CatalogueRanking,
        out: &mut Vec<f64>,
    ) {
        let mut sd = Vec::new();
        self.rank_parts(x, support, out, &mut sd);
        for ((score, sd), log_count) in out.iter_mut().zip(&sd).zip(&self.item_log_count) {
            *score += ranking.score(*sd, *log_count);
        }
    }

    /// What [`BayesModel::rank_all`] combines: every item's predicted rating (into `mean`) and
    /// its standard deviation (into `sd`), so a grid of rankings can be scored without solving
    /// the posterior again.
    pub fn rank_parts(&self, x: &[f64], support: &[Obs], mean: &mut Vec<f64>, sd: &mut Vec<f64>) {
        let post = self.posterior(x, support);
        self.items.predict_all(&post.mean, mean);
        let n = self.items.dim + 1;
        // The item's rating is linear in its vector `[b_i, q_i]` with coefficients `[1, p_u]`,
        // and in the user's `[b_u, p_u]` with coefficients `z_i = [1, q_i]`; the two posteriors
        // are independent, so their variances add.
        let mut user_side = post.mean.clone();
        user_side[0] = 1.0;
        let mut z = vec![0.0; n];
        sd.clear();
        sd.extend((0..mean.len()).map(|i| {
            self.items.design(i, &mut z);
            let mut var = quadratic(&post.cov, &z, n);
            if let Some(c) = self.item_cov.get(i * n * n..(i + 1) * n * n) {
                var += quadratic(c, &user_side, n);
            }
            var.max(0.0).sqrt()
        }));
    }
}

impl CatalogueRanking {
    /// What the ranking adds to a predicted rating with standard deviation `sd` for an item
    /// with `log(1 + n_i) = log_count`.
    pub fn score(&self, sd: f64, log_count: f64) -> f64 {
        self.popularity * log_count - self.caution * sd
    }
}

/// `v^T M v` for a row-major `n x n` matrix `M`.
fn quadratic(m: &[f64], v: &[f64], n: usize) -> f64 {
    (0..n).map(|a| v[a] * dot(&m[a * n..(a + 1) * n], v)).sum()
}

/// Meta-learns the Bayesian adjuster on the training users, starting from the ALS model `mf`
/// fitted on the same users.
pub fn fit_bayes(
    data: &RatingData,
    train: &[usize],
    mf: &MfModel,
    config: &BayesConfig,
) -> BayesModel {
    let d = mf.dim;
    let n = d + 1;
    let p = data.user_dim();
    let f = data.item_dim + 2;
    let mut items = mf.clone();
    let xs: Vec<f64> = train
        .iter()
        .flat_map(|&u| data.users[u].features.iter().copied())
        .collect();
    let mut by_item: Vec<Vec<(usize, f64)>> = vec![Vec::new(); data.items];
    let mut ratings = 0usize;
    for (pos, &u) in train.iter().enumerate() {
        for o in &data.users[u].ratings {
            by_item[o.item as usize].push((pos, o.rating));
            ratings += 1;
        }
    }
    // The item prior's mean reads a constant, the content features and the item's training
    // popularity `log(1 + ratings)`: rarely rated movies are rated lower on average, so a movie
    // with few ratings is shrunk towards its like, not towards the average movie.
    let item_x: Vec<f64> = (0..data.items)
        .flat_map(|i| {
            std::iter::once(1.0)
                .chain(data.item_row(i).iter().copied())
                .chain(std::iter::once((by_item[i].len() as f64).ln_1p()))
        })
        .collect();
    // Start: the prior fitted to the ALS user vectors with no posterior spread, noise from the
    // ALS residuals.
    let mut sq = 0.0;
    for (pos, &u) in train.iter().enumerate() {
        let w = &mf.user_vectors[pos * n..(pos + 1) * n];
        let mut z = vec![0.0; n];
        for o in &data.users[u].ratings {
            mf.design(o.item as usize, &mut z);
            sq += (mf.target(o) - dot(&z, w)).powi(2);
        }
    }
    let noise0 = (sq / ratings.max(1) as f64).max(1e-3);
    let zero_covs = vec![0.0; train.len() * n * n];
    let mut prior = fit_prior(
        &mf.user_vectors,
        &zero_covs,
        &xs,
        n,
        p,
        config.feature_ridge,
        noise0,
    );
    let mut item_prior: Option<HierPrior> = None;
    let mut item_cov = vec![0.0; data.items * n * n];
    let mut means = vec![0.0; train.len() * n];
    let mut covs = vec![0.0; train.len() * n * n];
    let mut gram = vec![0.0; n * n];
    let mut rhs = vec![0.0; n];
    let mut z = vec![0.0; n];
    for _ in 0..config.iterations {
        // E-step over users.
        let mut sq = 0.0;
        for (pos, &u) in train.iter().enumerate() {
            gram.fill(0.0);
            rhs.fill(0.0);
            for o in &data.users[u].ratings {
                items.design(o.item as usize, &mut z);
                accumulate(&mut gram, &mut rhs, &z, items.target(o), 1.0);
            }
            let post = prior.posterior(&data.users[u].features, &gram, &rhs);
            for o in &data.users[u].ratings {
                items.design(o.item as usize, &mut z);
                let mut zsz = 0.0;
                for a in 0..n {
                    zsz += z[a] * dot(&post.cov[a * n..(a + 1) * n], &z);
                }
                sq += (items.target(o) - dot(&z, &post.mean)).powi(2) + zsz;
            }
            means[pos * n..(pos + 1) * n].copy_from_slice(&post.mean);
            covs[pos * n * n..(pos + 1) * n * n].copy_from_slice(&post.cov);
        }
        let noise = (sq / ratings.max(1) as f64).max(1e-3);
        prior = fit_prior(&means, &covs, &xs, n, p, config.feature_ridge, noise);
        if !config.update_items {
            continue;
        }
        // Items: each `[b_i, q_i]` against the users' expected sufficient statistics. With the
        // user's `w = [b, p]` uncertain, the item design is `[1, p]` and the target `r - mu - b`:
        // E[[1,p][1,p]^T] adds the covariance of `p`, and E[[1,p](r - mu - b)] subtracts
        // Cov(p, b).
        let ip = match &item_prior {
            Some(ip) => ip.clone(),
            None => {
                let v: Vec<f64> = (0..data.items)
                    .flat_map(|i| {
                        std::iter::once(items.item_bias[i])
                            .chain(items.item_factors[i * d..(i + 1) * d].iter().copied())
                    })
                    .collect();
                let rated: Vec<usize> = (0..data.items)
                    .filter(|&i| !by_item[i].is_empty())
                    .collect();
                let vm: Vec<f64> = rated
                    .iter()
                    .flat_map(|&i| v[i * n..(i + 1) * n].iter().copied())
                    .collect();
                let xm: Vec<f64> = rated
                    .iter()
                    .flat_map(|&i| item_x[i * f..(i + 1) * f].iter().copied())
                    .collect();
                let zc = vec![0.0; rated.len() * n * n];
                fit_prior(&vm, &zc, &xm, n, f, config.feature_ridge, prior.noise)
            }
        };
        let mut ip = ip;
        ip.noise = prior.noise;
        let mut item_means = vec![0.0; data.items * n];
        let mut item_covs = vec![0.0; data.items * n * n];
        for (i, rated) in by_item.iter().enumerate() {
            gram.fill(0.0);
            rhs.fill(0.0);
            for &(pos, r) in rated {
                let m = &means[pos * n..(pos + 1) * n];
                let s = &covs[pos * n * n..(pos + 1) * n * n];
                z[0] = 1.0;
                z[1..].copy_from_slice(&m[1..]);
                let y = r - items.mu - m[0];
                accumulate(&mut gram, &mut rhs, &z, y, 1.0);
                for a in 1..n {
                    for b in 1..n {
                        gram[a * n + b] += s[a * n + b];
                    }
                    rhs[a] -= s[a * n];
                }
            }
            let post = ip.posterior(&item_x[i * f..(i + 1) * f], &gram, &rhs);
            items.item_bias[i] = post.mean[0];
            items.item_factors[i * d..(i + 1) * d].copy_from_slice(&post.mean[1..]);
            item_means[i * n..(i + 1) * n].copy_from_slice(&post.mean);
            item_covs[i * n * n..(i + 1) * n * n].copy_from_slice(&post.cov);
        }
        item_cov.copy_from_slice(&item_covs);
        item_prior = Some(fit_prior(
            &item_means,
            &item_covs,
            &item_x,
            n,
            f,
            config.feature_ridge,
            prior.noise,
        ));
    }
    let item_log_count = by_item.iter().map(|r| (r.len() as f64).ln_1p()).collect();
    BayesModel {
        items,
        prior,
        item_cov,
        item_log_count,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The posterior mean in covariance form, computed independently of the information form:
    /// `m = m0 + Sigma Z^T (Z Sigma Z^T + sigma^2 I)^{-1} (y - Z m0)`.
    #[test]
    fn posterior_mean_matches_the_covariance_form() {
        let dim = 2;
        // Sigma = [[2, 0.5], [0.5, 1]]; its inverse is [[1, -0.5], [-0.5, 2]] / 1.75.
        let sigma = [2.0, 0.5, 0.5, 1.0];
        let det = 2.0 - 0.25;
        let precision = vec![1.0 / det, -0.5 / det, -0.5 / det, 2.0 / det];
        // A maps x = [1, 3] to m0 = [0.2 + 0.3, -0.1 + 0.6] = [0.5, 0.5].
        let prior = HierPrior {
            dim,
            features: 2,
            map: vec![0.2, 0.1, -0.1, 0.2],
            precision,
            noise: 0.5,
        };
        let x = [1.0, 3.0];
        let zs = [[1.0, 0.4], [1.0, -0.7]];
        let ys = [1.0, -0.5];
        let mut gram = vec![0.0; 4];
        let mut rhs = vec![0.0; 2];
        for (z, y) in zs.iter().zip(ys) {
            accumulate(&mut gram, &mut rhs, z, y, 1.0);
        }
        let post = prior.posterior(&x, &gram, &rhs);

        let m0 = [0.5, 0.5];
        // K = Z Sigma Z^T + sigma^2 I (2 x 2), solved by Cramer's rule.
        let sz = |z: &[f64; 2]| {
            [
                sigma[0] * z[0] + sigma[1] * z[1],
                sigma[2] * z[0] + sigma[3] * z[1],
            ]
        };
        let s0 = sz(&zs[0]);
        let s1 = sz(&zs[1]);
        let k = [
            zs[0][0] * s0[0] + zs[0][1] * s0[1] + 0.5,
            zs[0][0] * s1[0] + zs[0][1] * s1[1],
            zs[1][0] * s0[0] + zs[1][1] * s0[1],
            zs[1][0] * s1[0] + zs[1][1] * s1[1] + 0.5,
        ];
        let r = [
            ys[0] - (zs[0][0] * m0[0] + zs[0][1] * m0[1]),
            ys[1] - (zs[1][0] * m0[0] + zs[1][1] * m0[1]),
        ];
        let kd = k[0] * k[3] - k[1] * k[2];
        let alpha = [
            (k[3] * r[0] - k[1] * r[1]) / kd,
            (k[0] * r[1] - k[2] * r[0]) / kd,
        ];
        let expected = [
            m0[0] + s0[0] * alpha[0] + s1[0] * alpha[1],
            m0[1] + s0[1] * alpha[0] + s1[1] * alpha[1],
        ];
        for (a, b) in post.mean.iter().zip(expected) {
            assert!((a - b).abs() < 1e-12, "{a} vs {b}");
        }
        // Covariance form: S = Sigma - Sigma Z^T K^{-1} Z Sigma; check entry (0, 0).
        let kinv = [k[3] / kd, -k[1] / kd, -k[2] / kd, k[0] / kd];
        let col0 = [s0[0], s1[0]];
        let s00 = sigma[0]
            - (col0[0] * (kinv[0] * col0[0] + kinv[1] * col0[1])
                + col0[1] * (kinv[2] * col0[0] + kinv[3] * col0[1]));
        assert!(
            (post.cov[0] - s00).abs() < 1e-12,
            "{} vs {s00}",
            post.cov[0]
        );
    }

    /// A one-factor model of three items: 0 and 1 identical but for item 1's larger posterior
    /// covariance, 2 identical to 0 but rated by more training users.
    fn three_items() -> BayesModel {
        let items = MfModel {
            mu: 3.5,
            dim: 1,
            item_bias: vec![0.2, 0.2, 0.2],
            item_factors: vec![0.5, 0.5, 0.5],
            user_vectors: Vec::new(),
        };
        let prior = HierPrior {
            dim: 2,
            features: 1,
            map: vec![0.1, 0.3],
            precision: vec![2.0, 0.0, 0.0, 2.0],
            noise: 0.8,
        };
        let small = [0.01, 0.0, 0.0, 0.01];
        let large = [0.5, 0.1, 0.1, 0.4];
        BayesModel {
            items,
            prior,
            item_cov: [small, large, small].concat(),
            item_log_count: vec![1.0, 1.0, 3.0],
        }
    }

    #[test]
    fn catalogue_ranking_without_weights_is_the_rating_prediction() {
        let model = three_items();
        let support = [Obs {
            item: 0,
            rating: 5.0,
        }];
        let mut predicted = Vec::new();
        let mut ranked = Vec::new();
        model.predict_all(&[1.0], &support, &mut predicted);
        model.rank_all(&[1.0], &support, CatalogueRanking::default(), &mut ranked);
        assert_eq!(predicted, ranked);
    }

    #[test]
    fn caution_ranks_the_uncertain_item_lower_and_popularity_the_popular_higher() {
        let model = three_items();
        let mut predicted = Vec::new();
        model.predict_all(&[1.0], &[], &mut predicted);
        // The three predictions are equal: only the ranking weights separate them.
        assert!((predicted[0] - predicted[1]).abs() < 1e-12);
        assert!((predicted[0] - predicted[2]).abs() < 1e-12);
        let mut ranked = Vec::new();
        let cautious = CatalogueRanking {
            caution: 1.0,
            popularity: 0.0,
        };
        model.rank_all(&[1.0], &[], cautious, &mut ranked);
        assert!(ranked[1] < ranked[0], "{ranked:?}");
        assert!((ranked[0] - ranked[2]).abs() < 1e-12, "{ranked:?}");
        // Item 0's deduction by hand: the user's prior covariance is I / 2 and its mean
        // [0.1, 0.3]; z = [1, 0.5]; the item-side coefficients are [1, 0.3].
        let user_var: f64 = 0.5 * (1.0 + 0.25);
        let item_var = 0.01 * (1.0 + 0.09);
        let expected = predicted[0] - (user_var + item_var).sqrt();
        assert!(
            (ranked[0] - expected).abs() < 1e-12,
            "{} vs {expected}",
            ranked[0]
        );
        let popular = CatalogueRanking {
            caution: 0.0,
            popularity: 0.5,
        };
        model.rank_all(&[1.0], &[], popular, &mut ranked);
        assert!(
            (ranked[2] - ranked[0] - 0.5 * 2.0).abs() < 1e-12,
            "{ranked:?}"
        );
    }

    #[test]
    fn no_observations_give_the_prior() {
        let prior = HierPrior {
            dim: 2,
            features: 1,
            map: vec![0.3, -0.2],
            precision: vec![4.0, 0.0, 0.0, 2.0],
            noise: 1.0,
        };
        let post = prior.posterior(&[2.0], &[0.0; 4], &[0.0; 2]);
        assert!((post.mean[0] - 0.6).abs() < 1e-15 && (post.mean[1] + 0.4).abs() < 1e-15);
        assert!((post.cov[0] - 0.25).abs() < 1e-15 && (post.cov[3] - 0.5).abs() < 1e-15);
    }

    #[test]
    fn fitted_prior_recovers_a_linear_mean_and_the_scatter() {
        // Means m_r = 2 x_r exactly: A = 2 (up to the ridge), Sigma = the posterior covariances.
        let xs: Vec<f64> = (1..=50).map(f64::from).collect();
        let means: Vec<f64> = xs.iter().map(|x| 2.0 * x).collect();
        let covs = vec![0.25; 50];
        let prior = fit_prior(&means, &covs, &xs, 1, 1, 1e-9, 1.0);
        assert!((prior.map[0] - 2.0).abs() < 1e-6, "{}", prior.map[0]);
        assert!((1.0 / prior.precision[0] - 0.25).abs() < 1e-5);
    }
}
