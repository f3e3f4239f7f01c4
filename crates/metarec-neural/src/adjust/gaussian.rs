//! [`GaussianPosterior`], the closed-form part of the Bayesian adjuster: a Gaussian in
//! information form with linear-Gaussian updates and draws, and [`prior_shape`], the prior
//! covariance's shape learned from training users' corrections.

use metarec_core::Rng;
use metarec_core::linalg::{cholesky_in_place, cholesky_solve};
use rand_distr::{Distribution, StandardNormal};
use serde::{Deserialize, Serialize};

/// A Gaussian over `R^d` in information form: precision `L` and `h = L mu`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GaussianPosterior {
    /// Dimension.
    pub dim: usize,
    /// The precision matrix `L`, row-major.
    pub precision: Vec<f64>,
    /// `L mu`.
    pub shift: Vec<f64>,
    /// Observations folded in.
    pub observations: u32,
}

impl GaussianPosterior {
    /// `N(mean, variance I)`.
    pub fn isotropic(mean: &[f64], variance: f64) -> Self {
        let d = mean.len();
        let mut precision = vec![0.0; d * d];
        for k in 0..d {
            precision[k * d + k] = 1.0 / variance;
        }
        GaussianPosterior {
            dim: d,
            precision,
            shift: mean.iter().map(|m| m / variance).collect(),
            observations: 0,
        }
    }

    /// Folds in one linear-Gaussian observation `target = x . theta + noise` with weight
    /// `1 / noise variance`: `L += w x x^T`, `h += w x target`.
    pub fn observe(&mut self, x: &[f64], target: f64, weight: f64) {
        fold_in(
            &mut self.precision,
            &mut self.shift,
            self.dim,
            x,
            target,
            weight,
        );
        self.observations += 1;
    }

    /// `N(0, covariance)`, or `None` when `covariance` (d x d, row-major) is not symmetric
    /// positive definite.
    pub fn centred(covariance: &[f64], d: usize) -> Option<Self> {
        if covariance.len() != d * d
            || (0..d).any(|a| (0..a).any(|b| covariance[a * d + b] != covariance[b * d + a]))
        {
            return None;
        }
        let mut factor = covariance.to_vec();
        if !cholesky_in_place(&mut factor, d) {
            return None;
        }
        // The precision is the inverse: solve against each unit vector.
        let mut precision = vec![0.0; d * d];
        for k in 0..d {
            let mut e = vec![0.0; d];
            e[k] = 1.0;
            cholesky_solve(&factor, d, &mut e);
            for (a, v) in e.into_iter().enumerate() {
                precision[a * d + k] = v;
            }
        }
        // Symmetrise away the rounding of the solves.
        for a in 0..d {
            for b in 0..a {
                let m = 0.5 * (precision[a * d + b] + precision[b * d + a]);
                precision[a * d + b] = m;
                precision[b * d + a] = m;
            }
        }
        Some(GaussianPosterior {
            dim: d,
            precision,
            shift: vec![0.0; d],
            observations: 0,
        })
    }

    /// The mean `mu = L^{-1} h`, and the Cholesky factor of `L` (lower, row-major) in `factor`.
    pub fn mean(&self, factor: &mut Vec<f64>) -> Vec<f64> {
        factor.clear();
        factor.extend_from_slice(&self.precision);
        let mut mu = self.shift.clone();
        if cholesky_in_place(factor, self.dim) {
            cholesky_solve(factor, self.dim, &mut mu);
        }
        mu
    }

    /// A draw from the Gaussian: `mu + L^{-T} z`, `z` standard normal, given the factor of `L`.
    pub fn sample(&self, mu: &[f64], factor: &[f64], rng: &mut Rng) -> Vec<f64> {
        let mut out = Vec::with_capacity(self.dim);
        self.sample_into(mu, factor, rng, &mut out);
        out
    }

    /// [`GaussianPosterior::sample`] into `out`, so that the many draws of one Thompson
    /// sampling decision reuse one buffer.
    pub fn sample_into(&self, mu: &[f64], factor: &[f64], rng: &mut Rng, out: &mut Vec<f64>) {
        let d = self.dim;
        out.clear();
        out.extend((0..d).map(|_| -> f64 { StandardNormal.sample(rng) }));
        let z = &mut out[..];
        // Back substitution with L^T: solves L^T v = z, so v ~ N(0, L^{-1}).
        for i in (0..d).rev() {
            let mut s = z[i];
            for k in i + 1..d {
                s -= factor[k * d + i] * z[k];
            }
            z[i] = s / factor[i * d + i];
        }
        for (v, m) in z.iter_mut().zip(mu) {
            *v += m;
        }
    }

    /// `count` draws of [`GaussianPosterior::sample_into`] at once, draw `r` in
    /// `out[r * d..(r + 1) * d]`: the same standard normals in the same order, and each draw's
    /// back substitution the same operations in the same order, so every draw is bit for bit
    /// the one `count` calls would give. Solved together, the draws are the lanes of each step
    /// (one row of the factor against every draw's coordinates), where one draw alone is a
    /// serial chain of dependent operations.
    pub fn samples_into(
        &self,
        mu: &[f64],
        factor: &[f64],
        rng: &mut Rng,
        count: usize,
        out: &mut Vec<f64>,
    ) {
        let d = self.dim;
        // By coordinate: `lanes[i * stride + r]` is coordinate `i` of draw `r`; the lanes past
        // `count` (up to a whole block) stay zero and are solved for nothing.
        let stride = count.div_ceil(LANE_BLOCK) * LANE_BLOCK;
        let mut lanes = vec![0.0; d * stride];
        for r in 0..count {
            for i in 0..d {
                lanes[i * stride + r] = StandardNormal.sample(rng);
            }
        }
        back_substitute(factor, d, &mut lanes, stride);
        out.clear();
        out.resize(d * count, 0.0);
        for (r, draw) in out.chunks_exact_mut(d.max(1)).enumerate().take(count) {
            for (i, (v, m)) in draw.iter_mut().zip(mu).enumerate() {
                *v = lanes[i * stride + r] + m;
            }
        }
    }
}

/// [`GaussianPosterior::observe`]'s arithmetic: `precision += w x x^T`, `shift += w x target`.
///
/// On x86-64 processors with AVX2 the same loop runs compiled for it (four lanes per vector
/// instead of SSE2's two; multiplications and additions stay separate, never fused, so the
/// state is the same bits). The Bayesian adjuster folds in five of these per interaction.
fn fold_in(precision: &mut [f64], shift: &mut [f64], d: usize, x: &[f64], target: f64, w: f64) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the processor supports AVX2, as just checked.
        unsafe { fold_in_avx2(precision, shift, d, x, target, w) };
        return;
    }
    fold_in_portable(precision, shift, d, x, target, w);
}

/// [`fold_in`] compiled for AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn fold_in_avx2(
    precision: &mut [f64],
    shift: &mut [f64],
    d: usize,
    x: &[f64],
    target: f64,
    w: f64,
) {
    fold_in_portable(precision, shift, d, x, target, w);
}

/// [`fold_in`] for any processor; inlined into each compiled variant.
#[inline(always)]
fn fold_in_portable(
    precision: &mut [f64],
    shift: &mut [f64],
    d: usize,
    x: &[f64],
    target: f64,
    weight: f64,
) {
    for (a, xa) in x.iter().enumerate().take(d) {
        let wa = weight * xa;
        for (p, xb) in precision[a * d..(a + 1) * d].iter_mut().zip(x) {
            *p += wa * xb;
        }
        shift[a] += wa * target;
    }
}

/// Lanes [`back_substitute`] solves together.
const LANE_BLOCK: usize = 16;

/// Solves `L^T v = z` for each of `stride` lanes at once, in place: `lanes[i * stride + r]` is
/// coordinate `i` of lane `r`, and `factor` the lower Cholesky factor `L` (`d x d`, row-major);
/// `stride` is a multiple of [`LANE_BLOCK`] (callers pad with lanes they ignore). Every lane
/// gets the operations of a one-lane back substitution in the same order, so each is bit for
/// bit its own solve.
///
/// The lanes go a block at a time, their running sums held in registers across a row's terms
/// (a running sum kept in memory made each term wait for the previous one's store); on x86-64
/// processors with AVX2 the same loop runs compiled for it (multiplications and subtractions
/// stay separate, never fused, so the draws are the same bits).
fn back_substitute(factor: &[f64], d: usize, lanes: &mut [f64], stride: usize) {
    debug_assert_eq!(stride % LANE_BLOCK, 0);
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the processor supports AVX2, as just checked.
        unsafe { back_substitute_avx2(factor, d, lanes, stride) };
        return;
    }
    back_substitute_portable(factor, d, lanes, stride);
}

/// [`back_substitute`] compiled for AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn back_substitute_avx2(factor: &[f64], d: usize, lanes: &mut [f64], stride: usize) {
    back_substitute_portable(factor, d, lanes, stride);
}

/// [`back_substitute`] for any processor; inlined into each compiled variant.
#[inline(always)]
fn back_substitute_portable(factor: &[f64], d: usize, lanes: &mut [f64], stride: usize) {
    for start in (0..stride).step_by(LANE_BLOCK) {
        let block = |i: usize| i * stride + start..i * stride + start + LANE_BLOCK;
        for i in (0..d).rev() {
            let mut acc = [0.0f64; LANE_BLOCK];
            acc.copy_from_slice(&lanes[block(i)]);
            for k in i + 1..d {
                let f = factor[k * d + i];
                for (a, z) in acc.iter_mut().zip(&lanes[block(k)]) {
                    *a -= f * *z;
                }
            }
            let diagonal = factor[i * d + i];
            for (z, a) in lanes[block(i)].iter_mut().zip(&acc) {
                *z = a / diagonal;
            }
        }
    }
}

/// The shape `S` of the correction's prior covariance learned from training users' adapted
/// corrections `delta_u`: their second moment `mean(delta_u delta_u^T)`, plus `ridge` times its
/// mean diagonal on the diagonal (so no direction is ruled out), scaled to trace `d` (so `tau`
/// keeps its meaning: the average prior standard deviation per coordinate). `None` without
/// corrections or when they are all zero.
pub fn prior_shape(corrections: &[Vec<f64>], d: usize, ridge: f64) -> Option<Vec<f64>> {
    if corrections.is_empty() || corrections.iter().any(|c| c.len() != d) {
        return None;
    }
    let mut s = vec![0.0; d * d];
    for c in corrections {
        for a in 0..d {
            for b in 0..d {
                s[a * d + b] += c[a] * c[b];
            }
        }
    }
    let n = corrections.len() as f64;
    s.iter_mut().for_each(|v| *v /= n);
    let trace: f64 = (0..d).map(|k| s[k * d + k]).sum();
    if !(trace.is_finite() && trace > 0.0) {
        return None;
    }
    let lift = ridge * trace / d as f64;
    for k in 0..d {
        s[k * d + k] += lift;
    }
    let scale = d as f64 / (trace + lift * d as f64);
    s.iter_mut().for_each(|v| *v *= scale);
    Some(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use metarec_core::linalg::solve_spd;

    #[test]
    fn the_posterior_matches_the_batch_formula_on_a_gaussian_case() {
        // Prior N(m0, s^2 I); observations y_j = x_j . theta + noise (variance r).
        // Batch: L = I / s^2 + X^T X / r; mu = L^{-1} (m0 / s^2 + X^T y / r).
        let m0 = [0.5, -1.0, 0.2];
        let (s2, r) = (0.7, 0.3);
        let xs = [
            [1.0, 0.0, 2.0],
            [0.3, -1.2, 0.5],
            [2.0, 1.0, -1.0],
            [0.0, 0.4, 0.9],
        ];
        let ys = [1.5, -0.2, 0.7, 2.2];
        let mut post = GaussianPosterior::isotropic(&m0, s2);
        for (x, y) in xs.iter().zip(ys) {
            post.observe(x, y, 1.0 / r);
        }
        let mut l = vec![0.0; 9];
        let mut rhs = vec![0.0; 3];
        for a in 0..3 {
            l[a * 3 + a] = 1.0 / s2;
            rhs[a] = m0[a] / s2;
            for (x, y) in xs.iter().zip(ys) {
                rhs[a] += x[a] * y / r;
                for b in 0..3 {
                    l[a * 3 + b] += x[a] * x[b] / r;
                }
            }
        }
        let expected_l = l.clone();
        assert!(solve_spd(&mut l, 3, &mut rhs));
        let mu = post.mean(&mut Vec::new());
        for k in 0..3 {
            assert!((mu[k] - rhs[k]).abs() < 1e-12, "{mu:?} vs {rhs:?}");
        }
        for (a, b) in post.precision.iter().zip(&expected_l) {
            assert!((a - b).abs() < 1e-12);
        }
    }

    #[test]
    fn with_no_interactions_the_posterior_is_the_prior() {
        let post = GaussianPosterior::isotropic(&[1.0, -2.0], 0.25);
        assert_eq!(post.mean(&mut Vec::new()), vec![1.0, -2.0]);
        assert_eq!(post.observations, 0);
    }

    #[test]
    fn a_centred_gaussian_has_the_inverse_covariance_as_precision() {
        let cov = [2.0, 0.5, 0.5, 1.0];
        let g = GaussianPosterior::centred(&cov, 2).unwrap();
        // precision x covariance = I.
        for a in 0..2 {
            for b in 0..2 {
                let v: f64 = (0..2)
                    .map(|k| g.precision[a * 2 + k] * cov[k * 2 + b])
                    .sum();
                assert!(
                    (v - f64::from(u8::from(a == b))).abs() < 1e-12,
                    "{a},{b}: {v}"
                );
            }
        }
        assert_eq!(g.mean(&mut Vec::new()), vec![0.0, 0.0]);
        // Not symmetric, not positive definite, or the wrong size: refused.
        assert!(GaussianPosterior::centred(&[1.0, 0.5, 0.4, 1.0], 2).is_none());
        assert!(GaussianPosterior::centred(&[1.0, 2.0, 2.0, 1.0], 2).is_none());
        assert!(GaussianPosterior::centred(&[1.0, 0.0, 0.0], 2).is_none());
    }

    #[test]
    fn the_learned_prior_shape_follows_the_corrections_and_has_trace_d() {
        // Corrections along the first axis only: the shape puts most variance there, the ridge
        // keeps the second axis possible.
        let corrections = vec![vec![2.0, 0.0], vec![-2.0, 0.0], vec![1.0, 0.0]];
        let s = prior_shape(&corrections, 2, 0.1).unwrap();
        assert!((s[0] + s[3] - 2.0).abs() < 1e-12, "{s:?}");
        assert!(s[0] > 10.0 * s[3] && s[3] > 0.0, "{s:?}");
        assert_eq!(s[1], s[2]);
        assert!(prior_shape(&[vec![0.0, 0.0]], 2, 0.1).is_none());
        assert!(prior_shape(&[], 2, 0.1).is_none());
        assert!(prior_shape(&[vec![1.0]], 2, 0.1).is_none());
    }

    #[test]
    fn draws_made_together_are_bit_for_bit_the_draws_made_one_at_a_time() {
        use rand::Rng as _;
        let mut rng = metarec_core::rng_for(4, 4);
        // Widths around the lane block (16) and the demo's head (32).
        for d in [1, 3, 32] {
            let mut post = GaussianPosterior::isotropic(&vec![0.1; d], 0.5);
            for _ in 0..2 * d {
                let x: Vec<f64> = (0..d).map(|_| rng.random_range(-1.0..1.0)).collect();
                post.observe(&x, rng.random_range(-1.0..1.0), 2.0);
            }
            let mut factor = Vec::new();
            let mu = post.mean(&mut factor);
            for count in [0, 1, 5, 16, 17, 33] {
                let (mut one, mut all) = (metarec_core::rng_for(9, 9), metarec_core::rng_for(9, 9));
                let mut together = Vec::new();
                post.samples_into(&mu, &factor, &mut all, count, &mut together);
                let mut apart = Vec::new();
                for _ in 0..count {
                    apart.extend(post.sample(&mu, &factor, &mut one));
                }
                let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                assert_eq!(bits(&together), bits(&apart), "d {d}, count {count}");
                // The dispatched solve (AVX2 where the processor has it) and the portable one.
                let stride = count.div_ceil(LANE_BLOCK) * LANE_BLOCK;
                let z: Vec<f64> = (0..d * stride)
                    .map(|_| rng.random_range(-2.0..2.0))
                    .collect();
                let (mut fast, mut portable) = (z.clone(), z);
                back_substitute(&factor, d, &mut fast, stride);
                back_substitute_portable(&factor, d, &mut portable, stride);
                assert_eq!(bits(&fast), bits(&portable), "d {d}, count {count}");
            }
        }
    }

    #[test]
    fn the_dispatched_fold_is_bit_for_bit_the_portable_one() {
        use rand::Rng as _;
        let mut rng = metarec_core::rng_for(8, 8);
        for d in [1, 3, 4, 5, 32, 33] {
            let mut fast = GaussianPosterior::isotropic(&vec![0.2; d], 0.3);
            let (mut precision, mut shift) = (fast.precision.clone(), fast.shift.clone());
            for _ in 0..3 * d {
                let x: Vec<f64> = (0..d).map(|_| rng.random_range(-1.0..1.0)).collect();
                let (target, weight) = (rng.random_range(-2.0..2.0), rng.random_range(0.0..1.0));
                fast.observe(&x, target, weight);
                fold_in_portable(&mut precision, &mut shift, d, &x, target, weight);
            }
            let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&fast.precision), bits(&precision), "d {d}");
            assert_eq!(bits(&fast.shift), bits(&shift), "d {d}");
        }
    }

    #[test]
    fn posterior_draws_have_the_posterior_covariance() {
        let mut post = GaussianPosterior::isotropic(&[0.0, 0.0], 1.0);
        post.observe(&[1.0, 1.0], 2.0, 4.0);
        let mut factor = Vec::new();
        let mu = post.mean(&mut factor);
        // Covariance = L^{-1} with L = [[5, 4], [4, 5]]: [[5, -4], [-4, 5]] / 9.
        let mut rng = metarec_core::rng_for(2, 2);
        let n = 200_000;
        let (mut c00, mut c01) = (0.0, 0.0);
        for _ in 0..n {
            let d = post.sample(&mu, &factor, &mut rng);
            c00 += (d[0] - mu[0]).powi(2);
            c01 += (d[0] - mu[0]) * (d[1] - mu[1]);
        }
        assert!((c00 / n as f64 - 5.0 / 9.0).abs() < 0.01);
        assert!((c01 / n as f64 + 4.0 / 9.0).abs() < 0.01);
    }
}
