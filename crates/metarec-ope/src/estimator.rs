//! The estimators behind the [`Estimator`] seam, and [`evaluate`], which computes their estimates
//! with bootstrap intervals and effective sample sizes.
//!
//! Notation, per logged entry `e` (item `a_e` at position `k_e` in round `i`): logging propensity
//! `p_e`, evaluation probability `pi_e = pi(a_e | x_i, k_e)`, importance weight
//! `w_e = pi_e / p_e` (optionally clipped at `c`: `min(w_e, c)`), reward `r_e`, model prediction
//! `q_e = q(x_i, a_e, k_e)`; per round, the direct-method term
//! `dm_i = sum_{e in i} sum_a pi(a | x_i, k_e) q(x_i, a, k_e)`. With `n` rounds and `m` entries:
//!
//! | estimator | estimate |
//! |---|---|
//! | DM | `sum_i dm_i / n` |
//! | IPW | `sum_e w_e r_e / n` |
//! | SNIPW | `(m / n) sum_e w_e r_e / sum_e w_e` |
//! | DR | `(sum_i dm_i + sum_e w_e (r_e - q_e)) / n` |
//! | SNDR | `(sum_i dm_i + (m / sum_e w_e) sum_e w_e (r_e - q_e)) / n` |
//! | switch-DR(tau) | DR with `w_e` replaced by `w_e [w_e <= tau]` |
//! | DR-OS(lambda) | DR with `w_e` replaced by `lambda w_e / (w_e^2 + lambda)` |
//!
//! For logs with one entry per round (Open Bandit) these are Open Bandit Pipeline's formulas.
//! Every estimator is a smooth function of a few per-round sums, so [`evaluate`] resamples all of
//! them in one pass over the rounds: the Poisson bootstrap gives each round an independent
//! Poisson(1) count per resample (the large-sample equivalent of resampling `n` rounds with
//! replacement, and a sequential pass instead of `n` random reads per resample); the interval is
//! the 2.5% and 97.5% percentiles of the resampled estimates. Resample `b` draws from
//! `rng_for(seed, b)` in round order, so results do not depend on the thread count.

use crate::data::LoggedData;
use crate::error::OpeError;
use crate::model::RewardModel;
use crate::policy::EvaluationPolicy;
use metarec_core::rng_for;
use rand::RngCore;
use serde::Serialize;

/// The inputs every estimator needs, computed once per (log, evaluation policy, reward model).
#[derive(Debug, Clone, Default)]
pub struct Prepared {
    /// Start of each round's entries; `n + 1` values.
    pub round_start: Vec<usize>,
    /// Importance weight of each entry, after clipping.
    pub weights: Vec<f64>,
    /// Reward of each entry.
    pub rewards: Vec<f64>,
    /// Model prediction at each entry's logged item and position.
    pub q_logged: Vec<f64>,
    /// Direct-method term of each round.
    pub dm: Vec<f64>,
    /// What clipping did.
    pub clipping: Clipping,
}

/// What weight clipping did to a log.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Clipping {
    /// The clip, when asked for.
    pub clip: Option<f64>,
    /// Entries whose weight exceeded it.
    pub clipped: usize,
    /// The largest weight before clipping.
    pub max_weight: f64,
}

impl Prepared {
    /// Computes weights, predictions and direct-method terms. `clip`, when given, must be
    /// positive.
    pub fn new(
        data: &LoggedData,
        policy: &dyn EvaluationPolicy,
        model: &dyn RewardModel,
        clip: Option<f64>,
    ) -> Result<Self, OpeError> {
        if let Some(c) = clip {
            if !(c.is_finite() && c > 0.0) {
                return Err(OpeError::Config {
                    name: "clip",
                    reason: format!("{c} is not a positive number"),
                });
            }
        }
        if data.rounds() == 0 {
            return Err(OpeError::EmptyLog);
        }
        let n_items = data.n_items();
        let mut out = Prepared {
            round_start: vec![0],
            clipping: Clipping {
                clip,
                ..Clipping::default()
            },
            ..Prepared::default()
        };
        let mut dist = vec![0.0; n_items];
        for round in 0..data.rounds() {
            let mut dm = 0.0;
            for e in data.round(round) {
                let (item, position) = (data.items()[e], data.positions()[e]);
                policy.distribution(data, round, position, &mut dist);
                let raw = dist[item as usize] / data.propensities()[e];
                out.clipping.max_weight = out.clipping.max_weight.max(raw);
                let w = match clip {
                    Some(c) if raw > c => {
                        out.clipping.clipped += 1;
                        c
                    }
                    _ => raw,
                };
                // Items the policy never shows need no prediction.
                for (a, &p) in dist.iter().enumerate() {
                    if p > 0.0 {
                        dm += p * model.predict(data, round, a as u32, position);
                    }
                }
                out.weights.push(w);
                out.rewards.push(data.rewards()[e]);
                out.q_logged
                    .push(model.predict(data, round, item, position));
            }
            out.dm.push(dm);
            out.round_start.push(out.weights.len());
        }
        Ok(out)
    }

    /// Number of rounds.
    pub fn rounds(&self) -> usize {
        self.dm.len()
    }
}

/// How an estimator weighs an entry's reward or residual, given its importance weight.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum WeightRule {
    /// No importance-weighted term (the direct method).
    Zero,
    /// The weight itself.
    Plain,
    /// The weight where it is at most `tau`, else 0 (the entry falls back to the model).
    Switch {
        /// The threshold.
        tau: f64,
    },
    /// Optimistic shrinkage `lambda w / (w^2 + lambda)`.
    Shrink {
        /// The shrinkage strength; `lambda -> infinity` is DR, `lambda -> 0` is DM.
        lambda: f64,
    },
}

impl WeightRule {
    /// The weight applied to an entry with importance weight `w`.
    pub fn apply(self, w: f64) -> f64 {
        match self {
            WeightRule::Zero => 0.0,
            WeightRule::Plain => w,
            WeightRule::Switch { tau } => {
                if w <= tau {
                    w
                } else {
                    0.0
                }
            }
            WeightRule::Shrink { lambda } => lambda * w / (w * w + lambda),
        }
    }
}

/// The sums over (resampled) rounds from which an estimator computes its estimate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sums {
    /// Rounds.
    pub rounds: f64,
    /// Entries.
    pub entries: f64,
    /// Direct-method terms.
    pub dm: f64,
    /// `sum_e g(w_e) (r_e - q_e)` with the model, or `sum_e g(w_e) r_e` without.
    pub correction: f64,
    /// `sum_e g(w_e)`.
    pub weight: f64,
}

/// An off-policy estimator of the expected per-round reward of an evaluation policy.
///
/// Estimators of this family combine a model baseline, an importance-weighted correction with a
/// weight rule, and optional self-normalisation of the correction; that is all [`evaluate`] needs
/// to resample them together.
pub trait Estimator: Sync {
    /// A short name for tables (with its parameters).
    fn name(&self) -> String;
    /// How entries' rewards (or residuals) are weighted.
    fn rule(&self) -> WeightRule;
    /// Whether the reward model is the baseline (the correction then weighs residuals).
    fn uses_model(&self) -> bool;
    /// Whether the correction is divided by the mean weight per entry.
    fn self_normalised(&self) -> bool {
        false
    }
    /// The estimate from the sums.
    fn estimate(&self, s: &Sums) -> f64 {
        if s.rounds <= 0.0 {
            return f64::NAN;
        }
        let correction = if self.self_normalised() {
            if s.weight > 0.0 {
                s.correction * s.entries / s.weight
            } else {
                0.0
            }
        } else {
            s.correction
        };
        let baseline = if self.uses_model() { s.dm } else { 0.0 };
        (baseline + correction) / s.rounds
    }
}

macro_rules! estimator {
    ($(#[$doc:meta])* $name:ident, $label:expr, $rule:expr, $model:expr, $sn:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, Default, PartialEq)]
        pub struct $name;
        impl Estimator for $name {
            fn name(&self) -> String {
                $label.into()
            }
            fn rule(&self) -> WeightRule {
                $rule
            }
            fn uses_model(&self) -> bool {
                $model
            }
            fn self_normalised(&self) -> bool {
                $sn
            }
        }
    };
}

estimator!(
    /// The direct method: the reward model averaged under the evaluation policy.
    Dm, "DM", WeightRule::Zero, true, false
);
estimator!(
    /// Inverse propensity weighting.
    Ipw, "IPW", WeightRule::Plain, false, false
);
estimator!(
    /// Self-normalised inverse propensity weighting.
    SnIpw, "SNIPW", WeightRule::Plain, false, true
);
estimator!(
    /// Doubly robust: the direct method plus importance-weighted residuals.
    Dr, "DR", WeightRule::Plain, true, false
);
estimator!(
    /// Self-normalised doubly robust.
    SnDr, "SNDR", WeightRule::Plain, true, true
);

/// Switch doubly robust: entries with weights above `tau` fall back to the model.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SwitchDr {
    /// The weight threshold.
    pub tau: f64,
}

impl Estimator for SwitchDr {
    fn name(&self) -> String {
        format!("switch-DR({})", self.tau)
    }
    fn rule(&self) -> WeightRule {
        WeightRule::Switch { tau: self.tau }
    }
    fn uses_model(&self) -> bool {
        true
    }
}

/// Doubly robust with optimistic shrinkage of the weights.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DrOs {
    /// The shrinkage strength.
    pub lambda: f64,
}

impl Estimator for DrOs {
    fn name(&self) -> String {
        format!("DR-OS({})", self.lambda)
    }
    fn rule(&self) -> WeightRule {
        WeightRule::Shrink {
            lambda: self.lambda,
        }
    }
    fn uses_model(&self) -> bool {
        true
    }
}

/// The seven estimators with the given switch threshold and shrinkage strength.
pub fn all_estimators(tau: f64, lambda: f64) -> Vec<Box<dyn Estimator>> {
    vec![
        Box::new(Dm),
        Box::new(Ipw),
        Box::new(SnIpw),
        Box::new(Dr),
        Box::new(SnDr),
        Box::new(SwitchDr { tau }),
        Box::new(DrOs { lambda }),
    ]
}

/// The logging policy itself as an estimator's target: every weight is one, so the "estimate"
/// is the log's mean per-round reward, the logging policy's on-policy value
/// ([`on_policy_estimate`]).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct OnPolicy;

impl Estimator for OnPolicy {
    fn name(&self) -> String {
        "logging (on-policy)".into()
    }
    fn rule(&self) -> WeightRule {
        WeightRule::Plain
    }
    fn uses_model(&self) -> bool {
        false
    }
}

/// The logging policy's on-policy value (the mean per-round reward of the log) with the same
/// Poisson bootstrap interval as [`evaluate`] gives the estimators under the same settings, so
/// that a table can show it as the reference row beside them.
pub fn on_policy_estimate(data: &LoggedData, bootstrap: &Bootstrap) -> Result<Estimate, OpeError> {
    let entries = data.entries();
    let prepared = Prepared {
        round_start: (0..=data.rounds())
            .map(|i| {
                if i == data.rounds() {
                    entries
                } else {
                    data.round(i).start
                }
            })
            .collect(),
        weights: vec![1.0; entries],
        rewards: data.rewards().to_vec(),
        q_logged: vec![0.0; entries],
        dm: vec![0.0; data.rounds()],
        clipping: Clipping {
            clip: None,
            clipped: 0,
            max_weight: 1.0,
        },
    };
    let mut estimates = evaluate(&prepared, &[&OnPolicy], bootstrap)?;
    Ok(estimates.remove(0))
}

/// Bootstrap settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bootstrap {
    /// Number of resamples (0: no interval).
    pub resamples: usize,
    /// Seed of the resampling.
    pub seed: u64,
    /// Threads to spread the resamples over; the result does not depend on it.
    pub threads: usize,
}

/// One estimator's result.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Estimate {
    /// The estimator's name.
    pub estimator: String,
    /// The point estimate on the whole log.
    pub value: f64,
    /// Lower end of the bootstrap 95% interval (the value itself without resamples).
    pub low: f64,
    /// Upper end of the bootstrap 95% interval.
    pub high: f64,
    /// Standard deviation of the resampled estimates.
    pub std_error: f64,
    /// Kish's effective sample size of the estimator's entry weights, `(sum g)^2 / sum g^2`;
    /// `None` for estimators without weights (DM).
    pub ess: Option<f64>,
}

/// The per-round columns the resampling accumulates, shared by estimators that need the same.
struct Columns {
    width: usize,
    /// Round-major values, `width` per round.
    values: Vec<f64>,
    /// Per estimator: the columns of its correction and weight sums, when it has them.
    slots: Vec<Slot>,
}

#[derive(Clone, Copy)]
struct Slot {
    correction: Option<usize>,
    weight: Option<usize>,
}

/// Columns are accumulated in blocks of this many.
const LANES: usize = 4;
const ROUNDS: usize = 0;
const ENTRIES: usize = 1;
const DM: usize = 2;

fn columns(prepared: &Prepared, estimators: &[&dyn Estimator]) -> Columns {
    // Corrections are keyed by (rule, weighs residuals); weight sums by rule, and only
    // self-normalised estimators need them. The direct method needs neither.
    let correction_key =
        |e: &&dyn Estimator| (e.rule() != WeightRule::Zero).then(|| (e.rule(), e.uses_model()));
    let weight_key = |e: &&dyn Estimator| {
        (e.rule() != WeightRule::Zero && e.self_normalised()).then(|| e.rule())
    };
    let mut correction_keys: Vec<(WeightRule, bool)> = Vec::new();
    let mut weight_keys: Vec<WeightRule> = Vec::new();
    for e in estimators {
        if let Some(k) = correction_key(e).filter(|k| !correction_keys.contains(k)) {
            correction_keys.push(k);
        }
        if let Some(k) = weight_key(e).filter(|k| !weight_keys.contains(k)) {
            weight_keys.push(k);
        }
    }
    let nc = correction_keys.len();
    // Padded with zero columns to whole blocks of lanes for the resampling loop.
    let width = (3 + nc + weight_keys.len()).div_ceil(LANES) * LANES;
    let slots = estimators
        .iter()
        .map(|e| Slot {
            correction: correction_key(e)
                .and_then(|k| correction_keys.iter().position(|c| *c == k))
                .map(|j| 3 + j),
            weight: weight_key(e)
                .and_then(|k| weight_keys.iter().position(|c| *c == k))
                .map(|j| 3 + nc + j),
        })
        .collect();
    let n = prepared.rounds();
    let mut values = vec![0.0; n * width];
    for i in 0..n {
        let row = &mut values[i * width..(i + 1) * width];
        let entries = prepared.round_start[i]..prepared.round_start[i + 1];
        row[ROUNDS] = 1.0;
        row[ENTRIES] = entries.len() as f64;
        row[DM] = prepared.dm[i];
        for e in entries {
            let (w, r, q) = (
                prepared.weights[e],
                prepared.rewards[e],
                prepared.q_logged[e],
            );
            for (j, &(rule, model)) in correction_keys.iter().enumerate() {
                row[3 + j] += rule.apply(w) * if model { r - q } else { r };
            }
            for (j, &rule) in weight_keys.iter().enumerate() {
                row[3 + nc + j] += rule.apply(w);
            }
        }
    }
    Columns {
        width,
        values,
        slots,
    }
}

fn sums_of(acc: &[f64], slot: Slot) -> Sums {
    Sums {
        rounds: acc[ROUNDS],
        entries: acc[ENTRIES],
        dm: acc[DM],
        correction: slot.correction.map_or(0.0, |j| acc[j]),
        weight: slot.weight.map_or(0.0, |j| acc[j]),
    }
}

/// Draws Poisson(1) counts from uniform 32-bit numbers by inversion: the count is the number of
/// thresholds `P(X <= j) 2^32` that the number reaches (capped at 12; `P(X > 12) < 1e-10`). A
/// table on the top 12 bits answers at once for every bin that no threshold cuts (all but at most
/// 12 of 4,096); the rest compare against the thresholds.
struct Poisson1 {
    thresholds: [u64; 12],
    table: Vec<u8>,
}

/// Marks a table bin that a threshold cuts.
const CUT: u8 = u8::MAX;
const TABLE_BITS: u32 = 12;

impl Poisson1 {
    fn new() -> Self {
        let mut thresholds = [0u64; 12];
        let (mut p, mut cdf) = ((-1.0f64).exp(), 0.0);
        for (j, slot) in thresholds.iter_mut().enumerate() {
            cdf += p;
            p /= (j + 1) as f64;
            *slot = ((cdf * 4_294_967_296.0) as u64).min(1 << 32);
        }
        let shift = 32 - TABLE_BITS;
        let table = (0..1u64 << TABLE_BITS)
            .map(|bin| {
                let (lo, hi) = (bin << shift, ((bin + 1) << shift) - 1);
                let (a, b) = (Self::count(&thresholds, lo), Self::count(&thresholds, hi));
                if a == b { a as u8 } else { CUT }
            })
            .collect();
        Poisson1 { thresholds, table }
    }

    fn count(thresholds: &[u64; 12], x: u64) -> u32 {
        thresholds.iter().map(|&t| u32::from(x >= t)).sum()
    }

    #[inline]
    fn draw(&self, x: u32) -> u32 {
        match self.table[(x >> (32 - TABLE_BITS)) as usize] {
            CUT => Self::count(&self.thresholds, u64::from(x)),
            c => u32::from(c),
        }
    }
}

/// Runs every estimator on `prepared`: point estimates on the whole log, bootstrap intervals and
/// effective sample sizes. Every number returned is finite: an estimator whose estimate, interval,
/// standard error or effective sample size is not (importance weights so large that the sums
/// overflow) is an [`OpeError::NonFinite`] naming it. Resamples whose estimate is not finite (no
/// rounds drawn) are left out of the interval.
pub fn evaluate(
    prepared: &Prepared,
    estimators: &[&dyn Estimator],
    bootstrap: &Bootstrap,
) -> Result<Vec<Estimate>, OpeError> {
    if prepared.rounds() == 0 {
        return Err(OpeError::EmptyLog);
    }
    let cols = columns(prepared, estimators);
    let width = cols.width;
    let mut full = vec![0.0; width];
    for row in cols.values.chunks(width) {
        for (a, v) in full.iter_mut().zip(row) {
            *a += v;
        }
    }
    let resampled = resample(&cols, bootstrap);
    let b = bootstrap.resamples;
    let mut out = Vec::with_capacity(estimators.len());
    for (e, &slot) in estimators.iter().zip(&cols.slots) {
        // Every number reported must be finite; one that is not is an error saying why, never a
        // NaN or an infinity in a table.
        let finite = |quantity: &'static str, value: f64| {
            if value.is_finite() {
                Ok(value)
            } else {
                Err(OpeError::NonFinite {
                    estimator: e.name(),
                    quantity,
                    value,
                    max_weight: prepared.clipping.max_weight,
                })
            }
        };
        let value = finite("estimate", e.estimate(&sums_of(&full, slot)))?;
        let mut values: Vec<f64> = (0..b)
            .map(|r| e.estimate(&sums_of(&resampled[r * width..(r + 1) * width], slot)))
            .filter(|v| v.is_finite())
            .collect();
        values.sort_by(f64::total_cmp);
        let (low, high, std_error) = if values.is_empty() {
            (value, value, 0.0)
        } else {
            (
                percentile(&values, 0.025),
                percentile(&values, 0.975),
                std_dev(&values),
            )
        };
        let ess = match e.rule() {
            WeightRule::Zero => None,
            rule => Some(finite(
                "effective sample size",
                kish(prepared.weights.iter().map(|&w| rule.apply(w))),
            )?),
        };
        out.push(Estimate {
            estimator: e.name(),
            value,
            low: finite("interval's lower end", low)?,
            high: finite("interval's upper end", high)?,
            std_error: finite("standard error", std_error)?,
            ess,
        });
    }
    Ok(out)
}

/// A power of two near `1 / largest`, for scaling numbers of magnitude up to `largest` (finite,
/// positive) into `[1, 2)` before summing their squares. Multiplying by a power of two is exact,
/// so sums of scaled numbers are the plain sums scaled, wherever the plain ones do not overflow.
fn scale_for(largest: f64) -> f64 {
    // Exponents are kept within the normal range so that the scale itself is finite.
    2f64.powi(-(largest.log2().floor() as i32).clamp(-1000, 1000))
}

/// Kish's effective sample size `(sum g)^2 / sum g^2` of the weights `g` (0 when all are 0),
/// computed on scaled weights so that large but finite weights cannot overflow the sum of
/// squares into `inf / inf`; NaN when a weight is not finite.
fn kish(g: impl Iterator<Item = f64> + Clone) -> f64 {
    let largest = g.clone().fold(0.0, |m: f64, w| m.max(w.abs()));
    if !largest.is_finite() {
        return f64::NAN;
    }
    if largest == 0.0 {
        return 0.0;
    }
    let scale = scale_for(largest);
    let (mut s, mut s2) = (0.0, 0.0);
    for w in g {
        let w = w * scale;
        s += w;
        s2 += w * w;
    }
    if s2 > 0.0 { s * s / s2 } else { 0.0 }
}

/// The sample standard deviation of finite `values` (0 for one value), computed on scaled values
/// so that the squares of large but finite estimates cannot overflow.
fn std_dev(values: &[f64]) -> f64 {
    let largest = values.iter().fold(0.0, |m: f64, v| m.max(v.abs()));
    if largest == 0.0 {
        return 0.0;
    }
    if !largest.is_finite() {
        return f64::NAN;
    }
    let scale = scale_for(largest);
    let n = values.len() as f64;
    let mean = values.iter().map(|v| v * scale).sum::<f64>() / n;
    let var = values
        .iter()
        .map(|v| (v * scale - mean).powi(2))
        .sum::<f64>()
        / (values.len().max(2) - 1) as f64;
    var.sqrt() / scale
}

/// Linear interpolation between order statistics (NumPy's default percentile).
fn percentile(sorted: &[f64], q: f64) -> f64 {
    let pos = q * (sorted.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64)
}

/// Resamples per random stream: resamples `2g` and `2g + 1` take the low and high halves of
/// stream `g`'s numbers.
const PER_STREAM: usize = 2;

/// The column sums of every resample, `width` per resample.
fn resample(cols: &Columns, bootstrap: &Bootstrap) -> Vec<f64> {
    let width = cols.width;
    let streams = bootstrap.resamples.div_ceil(PER_STREAM);
    let mut out = vec![0.0; streams * PER_STREAM * width];
    if streams == 0 {
        return out;
    }
    let poisson = Poisson1::new();
    let threads = bootstrap.threads.clamp(1, streams);
    let per_thread = streams.div_ceil(threads);
    std::thread::scope(|s| {
        for (t, chunk) in out.chunks_mut(per_thread * PER_STREAM * width).enumerate() {
            let poisson = &poisson;
            s.spawn(move || {
                let first = t * per_thread;
                let count = chunk.len() / (PER_STREAM * width);
                let mut rngs: Vec<_> = (0..count)
                    .map(|g| rng_for(bootstrap.seed, (first + g) as u64))
                    .collect();
                for row in cols.values.chunks_exact(width) {
                    for (acc, rng) in chunk
                        .chunks_exact_mut(PER_STREAM * width)
                        .zip(rngs.iter_mut())
                    {
                        let u = rng.next_u64();
                        let (a, b) = acc.split_at_mut(width);
                        let ca = f64::from(poisson.draw(u as u32));
                        let cb = f64::from(poisson.draw((u >> 32) as u32));
                        // Fixed blocks of four let the compiler use vector instructions.
                        let blocks = a.chunks_exact_mut(LANES).zip(b.chunks_exact_mut(LANES));
                        for ((x, y), v) in blocks.zip(row.chunks_exact(LANES)) {
                            for l in 0..LANES {
                                x[l] += ca * v[l];
                                y[l] += cb * v[l];
                            }
                        }
                    }
                }
            });
        }
    });
    out.truncate(bootstrap.resamples * width);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn poisson_counts_have_poisson_one_frequencies() {
        let p = Poisson1::new();
        // The table agrees with plain inversion everywhere it answers.
        let mut rng = rng_for(1, 2);
        let n = 400_000;
        let mut freq = [0usize; 13];
        for _ in 0..n {
            let x = rng.next_u64() as u32;
            let c = p.draw(x);
            assert_eq!(c, Poisson1::count(&p.thresholds, u64::from(x)));
            freq[c as usize] += 1;
        }
        let e1 = (-1.0f64).exp();
        for (j, expected) in [e1, e1, e1 / 2.0, e1 / 6.0, e1 / 24.0]
            .into_iter()
            .enumerate()
        {
            let got = freq[j] as f64 / n as f64;
            assert!(
                (got - expected).abs() < 0.004,
                "P({j}) = {got}, want {expected}"
            );
        }
        // Exact at the cut points: just below and at each threshold.
        for (j, &t) in p.thresholds.iter().enumerate().take(8) {
            assert_eq!(p.draw((t - 1) as u32), j as u32);
            if t < 1 << 32 {
                assert_eq!(p.draw(t as u32), j as u32 + 1);
            }
        }
    }
}
