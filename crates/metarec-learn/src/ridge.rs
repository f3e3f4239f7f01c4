//! Bayesian ridge regression for the linear bandits: [`RidgeModel`] keeps `A = lambda I + sum x
//! x^T`, its inverse and `b = sum r x`, and [`ScopedModels`] holds one model for everyone or one
//! per user ([`Scope`]).
//!
//! The posterior mean is `theta = A^{-1} b` and its covariance (up to the noise scale) is
//! `A^{-1}`. Each observation updates `A^{-1}` by the Sherman-Morrison formula in `O(d^2)`, so
//! learning from a slate costs a few microseconds at `d ~ 20`. Rank-one downdates slowly lose
//! accuracy, so every [`REFRESH_EVERY`] updates the inverse is recomputed from `A` by Cholesky
//! (`O(d^3)`, amortised to nothing). Thompson sampling needs a Cholesky factor of `A^{-1}`; it is
//! recomputed lazily, only when the model changed since the last draw.

use metarec_core::linalg::{cholesky_in_place, cholesky_solve, dot};
use metarec_core::{Rng, UserKey};
use rand_distr::{Distribution, StandardNormal};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// How many Sherman-Morrison updates a model takes before its inverse is recomputed exactly.
pub const REFRESH_EVERY: u32 = 1024;

/// A ridge-regression posterior over a `d`-dimensional weight vector.
#[derive(Debug, Clone)]
pub struct RidgeModel {
    d: usize,
    /// `A = lambda I + sum x x^T`, row-major; kept so that the inverse can be refreshed exactly.
    a: Vec<f64>,
    /// `A^{-1}`, maintained by Sherman-Morrison.
    a_inv: Vec<f64>,
    /// `b = sum r x`.
    b: Vec<f64>,
    /// `A^{-1} b`, valid when `theta_fresh`.
    theta: Vec<f64>,
    theta_fresh: bool,
    /// Lower Cholesky factor of `A^{-1}`, valid when `factor_fresh`.
    factor: Vec<f64>,
    factor_fresh: bool,
    /// Scratch for `A^{-1} x` and for normal draws.
    tmp: Vec<f64>,
    updates: u64,
    since_refresh: u32,
}

impl RidgeModel {
    /// The prior `A = lambda I`, `b = 0` (so `theta = 0`). `lambda` must be positive and finite;
    /// the policy configurations check it.
    pub fn new(d: usize, lambda: f64) -> Self {
        debug_assert!(lambda > 0.0 && lambda.is_finite());
        let mut a = vec![0.0; d * d];
        let mut a_inv = vec![0.0; d * d];
        let mut factor = vec![0.0; d * d];
        for i in 0..d {
            a[i * d + i] = lambda;
            a_inv[i * d + i] = 1.0 / lambda;
            factor[i * d + i] = 1.0 / lambda.sqrt();
        }
        RidgeModel {
            d,
            a,
            a_inv,
            b: vec![0.0; d],
            theta: vec![0.0; d],
            theta_fresh: true,
            factor,
            factor_fresh: true,
            tmp: vec![0.0; d],
            updates: 0,
            since_refresh: 0,
        }
    }

    /// The dimension `d`.
    pub fn dim(&self) -> usize {
        self.d
    }

    /// Number of observations learnt.
    pub fn updates(&self) -> u64 {
        self.updates
    }

    /// The precision matrix `A`, row-major.
    pub fn precision(&self) -> &[f64] {
        &self.a
    }

    /// The maintained inverse `A^{-1}`, row-major.
    pub fn inverse(&self) -> &[f64] {
        &self.a_inv
    }

    /// Learns one observation: reward `r` for features `x`. Returns `false`, learning nothing,
    /// when `x` has the wrong length or anything is not finite, so one bad record cannot poison
    /// the model.
    pub fn update(&mut self, x: &[f64], r: f64) -> bool {
        let d = self.d;
        if x.len() != d || !r.is_finite() || !x.iter().all(|v| v.is_finite()) {
            return false;
        }
        // Sherman-Morrison: (A + x x^T)^{-1} = A^{-1} - u u^T / (1 + x^T u) with u = A^{-1} x
        // (A^{-1} is symmetric). Writing both triangles from the same product keeps it exactly
        // symmetric.
        for (i, t) in self.tmp.iter_mut().enumerate() {
            *t = dot(&self.a_inv[i * d..(i + 1) * d], x);
        }
        let denom = 1.0 + dot(x, &self.tmp);
        for i in 0..d {
            let ui = self.tmp[i] / denom;
            for j in 0..d {
                self.a_inv[i * d + j] -= ui * self.tmp[j];
                self.a[i * d + j] += x[i] * x[j];
            }
            self.b[i] += r * x[i];
        }
        self.theta_fresh = false;
        self.factor_fresh = false;
        self.updates += 1;
        self.since_refresh += 1;
        if self.since_refresh >= REFRESH_EVERY {
            self.refresh();
        }
        true
    }

    /// Recomputes `A^{-1}` exactly from `A` (Cholesky, `O(d^3)`), wiping the rounding errors that
    /// rank-one updates accumulate. Keeps the maintained inverse if `A` is not numerically
    /// positive definite.
    pub fn refresh(&mut self) {
        let d = self.d;
        self.since_refresh = 0;
        let mut l = self.a.clone();
        if !cholesky_in_place(&mut l, d) {
            return;
        }
        // Column j of A^{-1} solves A c = e_j; A^{-1} is symmetric, so columns are rows.
        for j in 0..d {
            let col = &mut self.tmp;
            col.iter_mut().for_each(|c| *c = 0.0);
            col[j] = 1.0;
            cholesky_solve(&l, d, col);
            self.a_inv[j * d..(j + 1) * d].copy_from_slice(col);
        }
        self.theta_fresh = false;
        self.factor_fresh = false;
    }

    /// The posterior mean `theta = A^{-1} b`.
    pub fn theta(&mut self) -> &[f64] {
        if !self.theta_fresh {
            let d = self.d;
            for i in 0..d {
                self.theta[i] = dot(&self.a_inv[i * d..(i + 1) * d], &self.b);
            }
            self.theta_fresh = true;
        }
        &self.theta
    }

    /// `x^T A^{-1} x`: the posterior variance of `theta^T x` up to the noise scale. Returns 0 for
    /// an `x` of the wrong length.
    pub fn variance(&self, x: &[f64]) -> f64 {
        let d = self.d;
        if x.len() != d {
            return 0.0;
        }
        let v: f64 = (0..d)
            .map(|i| x[i] * dot(&self.a_inv[i * d..(i + 1) * d], x))
            .sum();
        // Rounding can push a tiny variance below zero.
        v.max(0.0)
    }

    /// The UCB score `theta^T x + alpha sqrt(x^T A^{-1} x)`.
    pub fn ucb(&mut self, x: &[f64], alpha: f64) -> f64 {
        let width = alpha * self.variance(x).sqrt();
        dot(self.theta(), x) + width
    }

    /// Draws `theta ~ N(A^{-1} b, v^2 A^{-1})` into `out` (resized to `d`), as `theta + v L z`
    /// with `L L^T = A^{-1}` and `z` standard normal. The factor is recomputed only when the model
    /// changed since the last draw.
    pub fn sample_theta(&mut self, v: f64, rng: &mut Rng, out: &mut Vec<f64>) {
        let d = self.d;
        self.ensure_factor();
        out.clear();
        out.extend_from_slice(self.theta());
        for z in self.tmp.iter_mut() {
            *z = StandardNormal.sample(rng);
        }
        for (i, o) in out.iter_mut().enumerate() {
            let row = &self.factor[i * d..i * d + i + 1];
            *o += v * dot(row, &self.tmp[..=i]);
        }
    }

    fn ensure_factor(&mut self) {
        if self.factor_fresh {
            return;
        }
        let d = self.d;
        self.factor.copy_from_slice(&self.a_inv);
        if !cholesky_in_place(&mut self.factor, d) {
            // The maintained inverse drifted out of positive definiteness: recompute it exactly
            // and try again. If even that fails (A itself is degenerate, which lambda > 0 rules
            // out short of overflow), sample without noise rather than fail the decision.
            self.refresh();
            self.factor.copy_from_slice(&self.a_inv);
            if !cholesky_in_place(&mut self.factor, d) {
                self.factor.iter_mut().for_each(|f| *f = 0.0);
            }
        }
        self.factor_fresh = true;
    }
}

/// Who shares a linear model.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Scope {
    /// One model learns from every user's feedback.
    #[default]
    Shared,
    /// Each user has a model of their own, starting from the prior when the user starts.
    PerUser,
}

/// One ridge model per [`Scope`]: a single shared model, or one per user key.
///
/// Per-user models are created on a user's first observation (a user with none is served by the
/// prior), dropped when the user starts again, and bounded in number: past `max_users` models
/// the least recently used is evicted (a returning evicted user starts from the prior again), so
/// a long-running server cannot grow without bound. Each model holds about `5 d^2` numbers
/// (about 14 KiB at `d = 19`).
#[derive(Debug, Clone)]
pub struct ScopedModels {
    scope: Scope,
    /// The shared model in [`Scope::Shared`]; the untouched prior in [`Scope::PerUser`].
    base: RidgeModel,
    users: HashMap<UserKey, (RidgeModel, u64)>,
    tick: u64,
    max_users: usize,
}

impl ScopedModels {
    /// Models of dimension `d` with prior precision `lambda`, keeping at most `max_users`
    /// per-user models (at least one).
    pub fn new(scope: Scope, d: usize, lambda: f64, max_users: usize) -> Self {
        ScopedModels {
            scope,
            base: RidgeModel::new(d, lambda),
            users: HashMap::new(),
            tick: 0,
            max_users: max_users.max(1),
        }
    }

    /// The scope.
    pub fn scope(&self) -> Scope {
        self.scope
    }

    /// Number of per-user models held.
    pub fn user_models(&self) -> usize {
        self.users.len()
    }

    /// The model that decides for `user`: the shared one, the user's own, or the prior for a
    /// user without one. Deciding never creates a model; only the caches of the returned model
    /// change.
    pub fn for_decision(&mut self, user: &UserKey) -> &mut RidgeModel {
        self.tick += 1;
        match self.scope {
            Scope::Shared => &mut self.base,
            Scope::PerUser => match self.users.get_mut(user) {
                Some((model, used)) => {
                    *used = self.tick;
                    model
                }
                None => &mut self.base,
            },
        }
    }

    /// The model that learns from `user`'s feedback, created from the prior when missing.
    pub fn for_update(&mut self, user: &UserKey) -> &mut RidgeModel {
        self.tick += 1;
        let tick = self.tick;
        match self.scope {
            Scope::Shared => &mut self.base,
            Scope::PerUser => {
                if !self.users.contains_key(user) && self.users.len() >= self.max_users {
                    self.evict_least_recent();
                }
                let base = &self.base;
                let entry = self
                    .users
                    .entry(user.clone())
                    .or_insert_with(|| (base.clone(), tick));
                entry.1 = tick;
                &mut entry.0
            }
        }
    }

    /// Forgets `user`'s model, so that they start again from the prior (no effect when shared).
    pub fn start_user(&mut self, user: &UserKey) {
        if self.scope == Scope::PerUser {
            self.users.remove(user);
        }
    }

    fn evict_least_recent(&mut self) {
        // Ticks are unique, so the minimum is unique and eviction does not depend on the hash
        // map's iteration order.
        if let Some(key) = self
            .users
            .iter()
            .min_by_key(|(_, (_, used))| *used)
            .map(|(k, _)| k.clone())
        {
            self.users.remove(&key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use metarec_core::linalg::solve_spd;
    use metarec_core::rng_for;
    use rand::Rng as _;

    fn random_x(d: usize, rng: &mut Rng) -> Vec<f64> {
        (0..d).map(|_| rng.random_range(-1.0..1.0)).collect()
    }

    #[test]
    fn sherman_morrison_inverse_matches_a_direct_solve_after_many_updates() {
        let d = 19;
        let mut rng = rng_for(11, 0);
        let mut m = RidgeModel::new(d, 0.5);
        // Fewer updates than REFRESH_EVERY, so this checks the rank-one updates themselves.
        let n = (REFRESH_EVERY - 1) as usize;
        for _ in 0..n {
            let x = random_x(d, &mut rng);
            let r = rng.random_range(0.0..2.0);
            assert!(m.update(&x, r));
        }
        assert_eq!(m.since_refresh as usize, n);
        // Each column of A^{-1} solves A c = e_j.
        for j in 0..d {
            let mut a = m.precision().to_vec();
            let mut e = vec![0.0; d];
            e[j] = 1.0;
            assert!(solve_spd(&mut a, d, &mut e));
            for (i, want) in e.iter().enumerate() {
                let got = m.inverse()[i * d + j];
                assert!((got - want).abs() < 1e-9, "({i}, {j}): {got} vs {want}");
            }
        }
        // And theta solves A theta = b.
        let mut a = m.precision().to_vec();
        let mut b = m.b.clone();
        assert!(solve_spd(&mut a, d, &mut b));
        for (t, e) in m.theta().iter().zip(&b) {
            assert!((t - e).abs() < 1e-9, "{t} vs {e}");
        }
    }

    #[test]
    fn refresh_keeps_the_inverse_and_non_finite_input_is_ignored() {
        let d = 4;
        let mut rng = rng_for(12, 0);
        let mut m = RidgeModel::new(d, 1.0);
        for _ in 0..50 {
            m.update(&random_x(d, &mut rng), 1.0);
        }
        let before = m.inverse().to_vec();
        m.refresh();
        for (a, b) in before.iter().zip(m.inverse()) {
            assert!((a - b).abs() < 1e-12);
        }
        assert!(!m.update(&[f64::NAN, 0.0, 0.0, 0.0], 1.0));
        assert!(!m.update(&[1.0, 0.0, 0.0, 0.0], f64::INFINITY));
        assert!(!m.update(&[1.0, 0.0], 1.0));
        assert_eq!(m.updates(), 50);
    }

    #[test]
    fn thompson_draws_have_the_posterior_mean_and_covariance() {
        // Posterior after two observations in d = 2: A = I + x1 x1^T + x2 x2^T.
        let mut m = RidgeModel::new(2, 1.0);
        m.update(&[1.0, 0.0], 1.0);
        m.update(&[1.0, 1.0], 0.0);
        let theta = m.theta().to_vec();
        let cov = m.inverse().to_vec();
        let v = 0.7;
        let mut rng = rng_for(13, 0);
        let n = 40_000;
        let (mut mean, mut second) = ([0.0; 2], [0.0; 4]);
        let mut s = Vec::new();
        for _ in 0..n {
            m.sample_theta(v, &mut rng, &mut s);
            for i in 0..2 {
                mean[i] += s[i] / n as f64;
                for j in 0..2 {
                    second[i * 2 + j] += (s[i] - theta[i]) * (s[j] - theta[j]) / n as f64;
                }
            }
        }
        for i in 0..2 {
            assert!((mean[i] - theta[i]).abs() < 0.02, "{mean:?} vs {theta:?}");
        }
        for (e, c) in second.iter().zip(&cov) {
            assert!((e - v * v * c).abs() < 0.02, "{second:?} vs {cov:?}");
        }
    }

    #[test]
    fn per_user_models_start_from_the_prior_and_are_bounded() {
        let mut s = ScopedModels::new(Scope::PerUser, 2, 1.0, 2);
        let (a, b, c) = (UserKey::from("a"), UserKey::from("b"), UserKey::from("c"));
        s.for_update(&a).update(&[1.0, 0.0], 1.0);
        assert_eq!(s.for_decision(&a).updates(), 1);
        assert_eq!(s.for_decision(&b).updates(), 0, "b is served by the prior");
        s.for_update(&b).update(&[0.0, 1.0], 1.0);
        // b's update is more recent than a's last use, so adding c evicts a.
        s.for_update(&c).update(&[1.0, 1.0], 1.0);
        assert_eq!(s.user_models(), 2);
        assert_eq!(s.for_decision(&a).updates(), 0, "a was evicted");
        assert_eq!(s.for_decision(&b).updates(), 1);
        s.start_user(&b);
        assert_eq!(
            s.for_decision(&b).updates(),
            0,
            "b restarted from the prior"
        );
        // Theta of c after reward 1 at x = [1, 1] with A = I + x x^T: A^{-1} x = x / 3.
        let theta_c = s.for_decision(&c).theta().to_vec();
        assert!(
            theta_c.iter().all(|t| (t - 1.0 / 3.0).abs() < 1e-12),
            "{theta_c:?}"
        );
    }
}
