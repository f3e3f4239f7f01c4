//! MeLU-style gradient-based meta-learning (Lee et al. 2019), first-order, in plain Rust.
//!
//! A small network rates a (user, item) pair from content: the input is the user's demographics,
//! the item's genres and year, and the item's MF bias and factors (from the factorisation fitted on
//! the training users). One embedding layer `h1 = relu(W1 x + c1)` is shared by everyone; the
//! decision layers `h2 = relu(W2 h1 + c2)`, `y = mu + w3 . h2 + c3` are adapted to each user by a
//! few gradient steps on the squared error of their support set (MeLU's local update).
//! Meta-training ([`train_melu`]) samples an episode per training user (a query set of ten
//! ratings and a support set of a random budget from the rest), adapts locally, and moves every
//! parameter along the gradient of the query loss taken at the adapted decision layers (the
//! first-order approximation of MAML), with Adam.

use crate::data::{Obs, RatingData};
use crate::error::ColdStartError;
use crate::mf::MfModel;
use crate::split::QUERY_SIZE;
use metarec_core::{Rng, rng_for};
use rand::Rng as _;
use rand::seq::SliceRandom;
use serde::Serialize;

/// Settings of [`train_melu`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct MeluConfig {
    /// Width of the embedding layer.
    pub hidden1: usize,
    /// Width of the decision layer.
    pub hidden2: usize,
    /// Passes over the training users.
    pub epochs: usize,
    /// Users per meta-update.
    pub batch: usize,
    /// Adam step size of the meta-update.
    pub meta_lr: f64,
    /// Local (inner) step size during meta-training.
    pub local_lr: f64,
    /// Local steps during meta-training.
    pub local_steps: usize,
}

impl Default for MeluConfig {
    fn default() -> Self {
        MeluConfig {
            hidden1: 32,
            hidden2: 16,
            epochs: 30,
            batch: 16,
            meta_lr: 0.003,
            local_lr: 0.05,
            local_steps: 3,
        }
    }
}

impl MeluConfig {
    /// Checks the settings.
    pub fn check(&self) -> Result<(), ColdStartError> {
        if self.hidden1 == 0 || self.hidden2 == 0 || self.batch == 0 {
            return Err(ColdStartError::Config(
                "MeLU needs non-empty layers and batches".into(),
            ));
        }
        let meta_ok = self.meta_lr.is_finite() && self.meta_lr > 0.0;
        let local_ok = self.local_lr.is_finite() && self.local_lr >= 0.0;
        if !meta_ok || !local_ok {
            return Err(ColdStartError::Config(
                "MeLU's step sizes must be finite, the meta step positive".into(),
            ));
        }
        Ok(())
    }
}

/// The decision layers: `W2` (`h2 x h1`), `c2`, `w3`, `c3`, in one flat vector.
#[derive(Debug, Clone, PartialEq)]
struct Decision {
    h1: usize,
    h2: usize,
    p: Vec<f64>,
}

impl Decision {
    fn len(h1: usize, h2: usize) -> usize {
        h2 * h1 + h2 + h2 + 1
    }

    /// Output and, when `grad` is given, accumulates `d(output)/d(params) * scale` into it and
    /// returns `d(output)/d(h1)` in `dh1` if given.
    fn forward(
        &self,
        a1: &[f64],
        h2buf: &mut [f64],
        grad: Option<(&mut [f64], f64)>,
        dh1: Option<&mut [f64]>,
    ) -> f64 {
        let (h1, h2) = (self.h1, self.h2);
        let w2 = &self.p[..h2 * h1];
        let c2 = &self.p[h2 * h1..h2 * h1 + h2];
        let w3 = &self.p[h2 * h1 + h2..h2 * h1 + 2 * h2];
        let c3 = self.p[h2 * h1 + 2 * h2];
        let mut y = c3;
        for j in 0..h2 {
            let z = c2[j] + metarec_core::linalg::dot(&w2[j * h1..(j + 1) * h1], a1);
            h2buf[j] = z.max(0.0);
            y += w3[j] * h2buf[j];
        }
        if let Some((g, scale)) = grad {
            let (gw2, rest) = g.split_at_mut(h2 * h1);
            let (gc2, rest) = rest.split_at_mut(h2);
            let (gw3, gc3) = rest.split_at_mut(h2);
            gc3[0] += scale;
            for j in 0..h2 {
                gw3[j] += scale * h2buf[j];
                if h2buf[j] > 0.0 {
                    let s = scale * w3[j];
                    gc2[j] += s;
                    for (gw, a) in gw2[j * h1..(j + 1) * h1].iter_mut().zip(a1) {
                        *gw += s * a;
                    }
                }
            }
        }
        if let Some(dh1) = dh1 {
            dh1.fill(0.0);
            for j in 0..h2 {
                if h2buf[j] > 0.0 {
                    for (d, w) in dh1.iter_mut().zip(&w2[j * h1..(j + 1) * h1]) {
                        *d += w3[j] * w;
                    }
                }
            }
        }
        y
    }

    /// `steps` gradient steps of size `lr` on the mean squared error of `(a1, target)` pairs.
    fn adapt(&mut self, inputs: &[Vec<f64>], targets: &[f64], lr: f64, steps: usize) {
        if inputs.is_empty() || lr == 0.0 {
            return;
        }
        let mut g = vec![0.0; self.p.len()];
        let mut h2buf = vec![0.0; self.h2];
        let n = inputs.len() as f64;
        for _ in 0..steps {
            g.fill(0.0);
            for (a1, t) in inputs.iter().zip(targets) {
                let y = self.forward(a1, &mut h2buf, None, None);
                let scale = 2.0 * (y - t) / n;
                self.forward(a1, &mut h2buf, Some((&mut g, scale)), None);
            }
            for (p, gk) in self.p.iter_mut().zip(&g) {
                *p -= lr * gk;
            }
        }
    }
}

/// A meta-trained MeLU network.
#[derive(Debug, Clone, PartialEq)]
pub struct Melu {
    mu: f64,
    input_user: usize,
    h1: usize,
    /// `W1` split by input block: the user part (`h1 x user features`).
    w1_user: Vec<f64>,
    /// The item part of `W1 x + c1`, precomputed per item (`items x h1`).
    item_pre: Vec<f64>,
    decision: Decision,
}

/// An item's network input: genres, year, MF bias and factors.
fn item_input(data: &RatingData, mf: &MfModel, i: usize, out: &mut Vec<f64>) {
    out.clear();
    out.extend_from_slice(data.item_row(i));
    out.push(mf.item_bias[i]);
    out.extend_from_slice(&mf.item_factors[i * mf.dim..(i + 1) * mf.dim]);
}

impl Melu {
    /// `relu(W1 x + c1)` of a user (given `W1_user x_u`) and an item.
    fn embed(&self, user_pre: &[f64], i: usize, out: &mut Vec<f64>) {
        out.clear();
        out.extend(
            self.item_pre[i * self.h1..(i + 1) * self.h1]
                .iter()
                .zip(user_pre)
                .map(|(a, b)| (a + b).max(0.0)),
        );
    }

    fn user_pre(&self, x: &[f64]) -> Vec<f64> {
        let p = self.input_user;
        (0..self.h1)
            .map(|k| metarec_core::linalg::dot(&self.w1_user[k * p..(k + 1) * p], x))
            .collect()
    }

    /// Predicted ratings of every item for `user` after adapting the decision layers on
    /// `support` with `steps` steps of size `lr`.
    pub fn predict_all(
        &self,
        data: &RatingData,
        user: usize,
        support: &[Obs],
        lr: f64,
        steps: usize,
        out: &mut Vec<f64>,
    ) {
        let up = self.user_pre(&data.users[user].features);
        let mut decision = self.decision.clone();
        let inputs: Vec<Vec<f64>> = support
            .iter()
            .map(|o| {
                let mut a = Vec::new();
                self.embed(&up, o.item as usize, &mut a);
                a
            })
            .collect();
        let targets: Vec<f64> = support.iter().map(|o| o.rating - self.mu).collect();
        decision.adapt(&inputs, &targets, lr, steps);
        let mut a = Vec::new();
        let mut h2buf = vec![0.0; decision.h2];
        out.clear();
        for i in 0..data.items {
            self.embed(&up, i, &mut a);
            out.push(self.mu + decision.forward(&a, &mut h2buf, None, None));
        }
    }
}

/// Adam state for one parameter vector.
struct Adam {
    m: Vec<f64>,
    v: Vec<f64>,
    t: i32,
}

impl Adam {
    fn new(n: usize) -> Self {
        Adam {
            m: vec![0.0; n],
            v: vec![0.0; n],
            t: 0,
        }
    }

    fn step(&mut self, p: &mut [f64], g: &[f64], lr: f64) {
        self.t += 1;
        let (b1, b2): (f64, f64) = (0.9, 0.999);
        let c1 = 1.0 - b1.powi(self.t);
        let c2 = 1.0 - b2.powi(self.t);
        for k in 0..p.len() {
            self.m[k] = b1 * self.m[k] + (1.0 - b1) * g[k];
            self.v[k] = b2 * self.v[k] + (1.0 - b2) * g[k] * g[k];
            p[k] -= lr * (self.m[k] / c1) / ((self.v[k] / c2).sqrt() + 1e-8);
        }
    }
}

fn uniform_init(rng: &mut Rng, n: usize, fan_in: usize) -> Vec<f64> {
    let bound = (6.0 / fan_in.max(1) as f64).sqrt();
    (0..n).map(|_| rng.random_range(-bound..bound)).collect()
}

/// Meta-trains MeLU on the training users (first-order MAML), seeded by `seed`.
pub fn train_melu(
    data: &RatingData,
    train: &[usize],
    mf: &MfModel,
    config: &MeluConfig,
    seed: u64,
) -> Melu {
    let mut rng = rng_for(seed, 0x4d65_4c55);
    let pu = data.user_dim();
    let pi = data.item_dim + 1 + mf.dim;
    let (h1, h2) = (config.hidden1, config.hidden2);
    let input = pu + pi;
    // W1 over [x_u, x_i] and c1, kept as one matrix during training.
    let mut w1 = uniform_init(&mut rng, h1 * input, input);
    let mut c1 = vec![0.0; h1];
    let mut decision = Decision {
        h1,
        h2,
        p: uniform_init(&mut rng, Decision::len(h1, h2), h1),
    };
    // The output layer starts near zero so the first predictions are the global mean.
    let out_start = h2 * h1 + h2;
    for p in &mut decision.p[out_start..] {
        *p *= 0.1;
    }
    for p in &mut decision.p[h2 * h1..out_start] {
        *p = 0.0;
    }
    let mut item_inputs = vec![0.0; data.items * pi];
    let mut buf = Vec::new();
    for i in 0..data.items {
        item_input(data, mf, i, &mut buf);
        item_inputs[i * pi..(i + 1) * pi].copy_from_slice(&buf);
    }
    let mut adam_w1 = Adam::new(w1.len());
    let mut adam_c1 = Adam::new(h1);
    let mut adam_d = Adam::new(decision.p.len());
    let mut order: Vec<usize> = train.to_vec();
    let mut x = vec![0.0; input];
    let mut h2buf = vec![0.0; h2];
    let mut dh1 = vec![0.0; h1];
    let embed = |w1: &[f64], c1: &[f64], x: &[f64]| -> Vec<f64> {
        (0..h1)
            .map(|k| {
                (c1[k] + metarec_core::linalg::dot(&w1[k * input..(k + 1) * input], x)).max(0.0)
            })
            .collect()
    };
    for _ in 0..config.epochs {
        order.shuffle(&mut rng);
        for batch in order.chunks(config.batch) {
            let mut gw1 = vec![0.0; w1.len()];
            let mut gc1 = vec![0.0; h1];
            let mut gd = vec![0.0; decision.p.len()];
            for &u in batch {
                let user = &data.users[u];
                let mut ratings = user.ratings.clone();
                ratings.shuffle(&mut rng);
                let pool = ratings.len() - QUERY_SIZE.min(ratings.len() - 1);
                let choices = [1, 3, 5, 10, 20, pool];
                let k = choices[rng.random_range(0..choices.len())].min(pool);
                let (support, rest) = ratings.split_at(k);
                let query = &rest[rest.len().saturating_sub(QUERY_SIZE)..];
                let fill = |o: &Obs, x: &mut [f64]| {
                    x[..pu].copy_from_slice(&user.features);
                    let i = o.item as usize;
                    x[pu..].copy_from_slice(&item_inputs[i * pi..(i + 1) * pi]);
                };
                let inputs: Vec<Vec<f64>> = support
                    .iter()
                    .map(|o| {
                        fill(o, &mut x);
                        embed(&w1, &c1, &x)
                    })
                    .collect();
                let targets: Vec<f64> = support.iter().map(|o| o.rating - mf.mu).collect();
                let mut local = decision.clone();
                local.adapt(&inputs, &targets, config.local_lr, config.local_steps);
                let n = query.len() as f64;
                for o in query {
                    fill(o, &mut x);
                    let a1 = embed(&w1, &c1, &x);
                    let y = local.forward(&a1, &mut h2buf, None, None);
                    let scale = 2.0 * (y - (o.rating - mf.mu)) / n;
                    local.forward(&a1, &mut h2buf, Some((&mut gd, scale)), Some(&mut dh1));
                    for k in 0..h1 {
                        if a1[k] > 0.0 {
                            let s = scale * dh1[k];
                            gc1[k] += s;
                            for (g, xv) in gw1[k * input..(k + 1) * input].iter_mut().zip(&x) {
                                *g += s * xv;
                            }
                        }
                    }
                }
            }
            let b = batch.len() as f64;
            for g in gw1.iter_mut().chain(gc1.iter_mut()).chain(gd.iter_mut()) {
                *g /= b;
            }
            adam_w1.step(&mut w1, &gw1, config.meta_lr);
            adam_c1.step(&mut c1, &gc1, config.meta_lr);
            adam_d.step(&mut decision.p, &gd, config.meta_lr);
        }
    }
    // Split W1 into its user block and precompute each item's contribution plus c1.
    let mut w1_user = vec![0.0; h1 * pu];
    let mut item_pre = vec![0.0; data.items * h1];
    for k in 0..h1 {
        w1_user[k * pu..(k + 1) * pu].copy_from_slice(&w1[k * input..k * input + pu]);
        for i in 0..data.items {
            item_pre[i * h1 + k] = c1[k]
                + metarec_core::linalg::dot(
                    &w1[k * input + pu..(k + 1) * input],
                    &item_inputs[i * pi..(i + 1) * pi],
                );
        }
    }
    Melu {
        mu: mf.mu,
        input_user: pu,
        h1,
        w1_user,
        item_pre,
        decision,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The decision layers' analytic gradient matches central finite differences.
    #[test]
    fn decision_gradient_matches_finite_differences() {
        let mut rng = rng_for(3, 0);
        let d = Decision {
            h1: 4,
            h2: 3,
            p: uniform_init(&mut rng, Decision::len(4, 3), 4),
        };
        let a1 = [0.3, 0.0, 1.2, 0.7];
        let mut h2buf = vec![0.0; 3];
        let mut g = vec![0.0; d.p.len()];
        let mut dh1 = vec![0.0; 4];
        d.forward(&a1, &mut h2buf, Some((&mut g, 1.0)), Some(&mut dh1));
        let eps = 1e-6;
        for (k, gk) in g.iter().enumerate() {
            let mut plus = d.clone();
            plus.p[k] += eps;
            let mut minus = d.clone();
            minus.p[k] -= eps;
            let fd = (plus.forward(&a1, &mut h2buf, None, None)
                - minus.forward(&a1, &mut h2buf, None, None))
                / (2.0 * eps);
            assert!((fd - gk).abs() < 1e-6, "param {k}: {fd} vs {gk}");
        }
        for k in 0..4 {
            let mut a = a1;
            a[k] += eps;
            let mut b = a1;
            b[k] -= eps;
            let fd = (d.forward(&a, &mut h2buf, None, None)
                - d.forward(&b, &mut h2buf, None, None))
                / (2.0 * eps);
            assert!((fd - dh1[k]).abs() < 1e-6, "input {k}: {fd} vs {}", dh1[k]);
        }
    }

    /// Local adaptation lowers the support loss.
    #[test]
    fn local_steps_reduce_the_support_error() {
        let mut rng = rng_for(5, 0);
        let mut d = Decision {
            h1: 3,
            h2: 4,
            p: uniform_init(&mut rng, Decision::len(3, 4), 3),
        };
        let inputs = vec![vec![1.0, 0.5, 0.2], vec![0.1, 0.9, 0.4]];
        let targets = [1.0, -0.5];
        let loss = |d: &Decision| {
            let mut h = vec![0.0; 4];
            inputs
                .iter()
                .zip(targets)
                .map(|(a, t)| (d.forward(a, &mut h, None, None) - t).powi(2))
                .sum::<f64>()
        };
        let before = loss(&d);
        d.adapt(&inputs, &targets, 0.05, 200);
        assert!(loss(&d) < 0.2 * before, "{} -> {}", before, loss(&d));
    }
}
