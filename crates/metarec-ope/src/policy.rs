//! Evaluation policies: what the estimators need of a policy is its action distribution, the
//! probability of each item at each logged position in each logged round
//! ([`EvaluationPolicy`]).
//!
//! - [`StaticPolicy`]: a distribution that does not depend on the context: the uniform random
//!   slate ([`StaticPolicy::uniform`]) and Bernoulli Thompson sampling under a Beta prior
//!   ([`StaticPolicy::bernoulli_ts`]), whose distribution over (item, position) is estimated by
//!   seeded Monte Carlo, as Open Bandit Pipeline's `compute_batch_action_dist` does: draw one
//!   Beta sample per item, show the top of the draws, count.
//! - [`GreedyPolicy`] and [`PlackettLucePolicy`]: rankings by a [`RewardModel`]'s scores, the
//!   policies that offline learning produces.
//! - [`MonteCarloPolicy`]: any metarec [`Policy`], its distribution estimated from seeded
//!   decisions in each round's context, the policy frozen as it is;
//! - [`ReplayPolicy`]: a metarec [`Policy`] that adapts to each user, replayed over the log in
//!   time order: its distribution in a round is counted before it observes that round's logged
//!   interaction.
//!
//! Both count decisions with [`round_distribution`], which stops after one decision when the
//! policy reports every shown position with propensity 1 (a deterministic choice, whose
//! distribution one decision gives exactly), so greedy policies cost one decision per round and
//! sampling policies the number of draws asked for.

use crate::data::LoggedData;
use crate::error::OpeError;
use crate::model::RewardModel;
use crate::prior::BetaPrior;
use metarec_core::explore::top_k;
use metarec_core::{Context, Interaction, Policy, Rng, rng_for};
use rand_distr::{Beta, Distribution};

/// A policy to evaluate, seen through its action distribution.
pub trait EvaluationPolicy {
    /// A short name for tables.
    fn name(&self) -> String;

    /// Writes into `out` (one slot per item, `data.n_items()` long) the probability that the
    /// policy shows each item at display `position` in round `round` of `data`. The values sum to
    /// at most one (exactly one when the policy fills the position).
    fn distribution(&self, data: &LoggedData, round: usize, position: u32, out: &mut [f64]);
}

/// Settings of the Monte Carlo estimate of a Thompson-sampling action distribution.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MonteCarlo {
    /// Number of simulated slates (Open Bandit Pipeline's `n_sim`, 100,000 by default there).
    pub draws: usize,
    /// Seed of the draws.
    pub seed: u64,
    /// Threads to spread the draws over; the result does not depend on it.
    pub threads: usize,
}

/// Draws per independent random stream: chunks of this size each get `rng_for(seed, chunk)`, so
/// the estimate is the same whatever the thread count.
const CHUNK: usize = 4096;

/// A context-free distribution: row `position`, column `item`.
#[derive(Debug, Clone, PartialEq)]
pub struct StaticPolicy {
    name: String,
    n_items: usize,
    dist: Vec<f64>,
}

impl StaticPolicy {
    /// A policy from its distribution, `positions` rows of `n_items` probabilities each; every
    /// value must be in `[0, 1]` and every row sum to at most one (up to rounding).
    pub fn new(name: impl Into<String>, n_items: usize, dist: Vec<f64>) -> Result<Self, OpeError> {
        if n_items == 0 || dist.is_empty() || dist.len() % n_items != 0 {
            return Err(OpeError::Config {
                name: "distribution",
                reason: format!("{} values do not make rows of {n_items} items", dist.len()),
            });
        }
        for (k, row) in dist.chunks(n_items).enumerate() {
            let sum: f64 = row.iter().sum();
            if row.iter().any(|p| !(0.0..=1.0).contains(p)) || sum > 1.0 + 1e-9 {
                return Err(OpeError::Config {
                    name: "distribution",
                    reason: format!("position {k} is not a distribution (sum {sum})"),
                });
            }
        }
        Ok(StaticPolicy {
            name: name.into(),
            n_items,
            dist,
        })
    }

    /// The uniform random slate of distinct items: every item has probability `1 / n_items` at
    /// every position.
    pub fn uniform(n_items: usize, positions: usize) -> Result<Self, OpeError> {
        if positions > n_items {
            return Err(OpeError::Config {
                name: "positions",
                reason: format!("{positions} positions need at least as many items, not {n_items}"),
            });
        }
        Self::new(
            "uniform",
            n_items,
            vec![1.0 / n_items as f64; n_items * positions],
        )
    }

    /// Bernoulli Thompson sampling with no data beyond its prior: every slate ranks the items by
    /// one draw from each item's `Beta(alpha, beta)` and shows the best `positions`. The
    /// probability of item `a` at position `k` is the share of `mc.draws` simulated slates that
    /// put it there.
    pub fn bernoulli_ts(
        prior: &BetaPrior,
        positions: usize,
        mc: &MonteCarlo,
    ) -> Result<Self, OpeError> {
        let n = prior.alpha.len();
        if positions == 0 || positions > n {
            return Err(OpeError::Config {
                name: "positions",
                reason: format!("{positions} positions do not fit {n} items"),
            });
        }
        if mc.draws == 0 {
            return Err(OpeError::Config {
                name: "draws",
                reason: "at least one Monte Carlo draw is needed".into(),
            });
        }
        let betas: Vec<Beta<f64>> = prior
            .alpha
            .iter()
            .zip(&prior.beta)
            .map(|(&a, &b)| {
                Beta::new(a, b).map_err(|e| OpeError::Config {
                    name: "prior",
                    reason: format!("Beta({a}, {b}): {e}"),
                })
            })
            .collect::<Result<_, _>>()?;
        let chunks = mc.draws.div_ceil(CHUNK);
        let count_chunk = |c: usize| {
            let mut counts = vec![0u64; positions * n];
            let mut rng = rng_for(mc.seed, c as u64);
            let mut draws = vec![0.0; n];
            let len = CHUNK.min(mc.draws - c * CHUNK);
            for _ in 0..len {
                for (d, beta) in draws.iter_mut().zip(&betas) {
                    *d = beta.sample(&mut rng);
                }
                for (k, item) in top_k(&draws, positions).into_iter().enumerate() {
                    counts[k * n + item] += 1;
                }
            }
            counts
        };
        let threads = mc.threads.clamp(1, chunks);
        let partial: Vec<Vec<u64>> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..threads)
                .map(|t| {
                    s.spawn(move || {
                        let mut total = vec![0u64; positions * n];
                        for c in (t..chunks).step_by(threads) {
                            for (a, b) in total.iter_mut().zip(count_chunk(c)) {
                                *a += b;
                            }
                        }
                        total
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("a counting thread does not panic"))
                .collect()
        });
        let mut counts = vec![0u64; positions * n];
        for p in partial {
            for (a, b) in counts.iter_mut().zip(p) {
                *a += b;
            }
        }
        let dist = counts
            .into_iter()
            .map(|c| c as f64 / mc.draws as f64)
            .collect();
        Self::new("bts", n, dist)
    }

    /// Renames the policy (for tables).
    pub fn named(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// The probability of `item` at `position` (0 outside the table).
    pub fn probability(&self, item: usize, position: usize) -> f64 {
        if item >= self.n_items {
            return 0.0;
        }
        self.dist
            .get(position * self.n_items + item)
            .copied()
            .unwrap_or(0.0)
    }

    /// Number of positions the policy fills.
    pub fn positions(&self) -> usize {
        self.dist.len() / self.n_items
    }
}

impl EvaluationPolicy for StaticPolicy {
    fn name(&self) -> String {
        self.name.clone()
    }

    fn distribution(&self, _data: &LoggedData, _round: usize, position: u32, out: &mut [f64]) {
        let k = position as usize;
        if k < self.positions() && out.len() == self.n_items {
            out.copy_from_slice(&self.dist[k * self.n_items..(k + 1) * self.n_items]);
        } else {
            out.iter_mut().for_each(|p| *p = 0.0);
        }
    }
}

/// Shows, in every round, the items with the highest predicted reward at position 0, best first:
/// a deterministic policy (probability 1 for the chosen item at each position).
pub struct GreedyPolicy<M> {
    name: String,
    model: M,
}

impl<M: RewardModel> GreedyPolicy<M> {
    /// A greedy policy over `model`'s predictions.
    pub fn new(name: impl Into<String>, model: M) -> Self {
        GreedyPolicy {
            name: name.into(),
            model,
        }
    }
}

impl<M: RewardModel> EvaluationPolicy for GreedyPolicy<M> {
    fn name(&self) -> String {
        self.name.clone()
    }

    fn distribution(&self, data: &LoggedData, round: usize, position: u32, out: &mut [f64]) {
        let scores: Vec<f64> = (0..data.n_items())
            .map(|a| self.model.predict(data, round, a as u32, 0))
            .collect();
        out.iter_mut().for_each(|p| *p = 0.0);
        let ranking = top_k(&scores, position as usize + 1);
        if let Some(&best) = ranking.get(position as usize) {
            out[best] = 1.0;
        }
    }
}

/// Plackett-Luce slates over a [`RewardModel`]'s scores: position by position, a softmax over the
/// items not yet shown. The temperature is in units of the round's score standard deviation (so
/// it means the same whatever the reward scale); lower is greedier. The marginals of the first
/// three positions are exact (position 2 in `O(n^2)` for all items at once); the policy fills at
/// most three positions.
pub struct PlackettLucePolicy<M> {
    name: String,
    model: M,
    temperature: f64,
}

impl<M: RewardModel> PlackettLucePolicy<M> {
    /// A stochastic ranking policy; `temperature` must be positive.
    pub fn new(name: impl Into<String>, model: M, temperature: f64) -> Result<Self, OpeError> {
        if !(temperature.is_finite() && temperature > 0.0) {
            return Err(OpeError::Config {
                name: "temperature",
                reason: format!("{temperature} is not positive"),
            });
        }
        Ok(PlackettLucePolicy {
            name: name.into(),
            model,
            temperature,
        })
    }
}

/// Per-item marginals of position `k` (0, 1 or 2) of a Plackett-Luce ranking with first-pick
/// probabilities `p`.
pub fn plackett_luce_marginals(p: &[f64], k: usize, out: &mut [f64]) {
    let rest = |x: f64| (1.0 - x).max(1e-300);
    match k {
        0 => out.copy_from_slice(p),
        1 => {
            // P(c second) = sum_{a != c} p_a p_c / (1 - p_a).
            let total: f64 = p.iter().map(|&a| a / rest(a)).sum();
            for (o, &c) in out.iter_mut().zip(p) {
                *o = c * (total - c / rest(c));
            }
        }
        2 => {
            // P(c third) = p_c sum over ordered pairs (a, b) of distinct items other than c of
            // t(a, b) = p_a p_b / ((1 - p_a)(1 - p_a - p_b)): the sum over all pairs minus the
            // pairs that involve c.
            let n = p.len();
            let mut row = vec![0.0; n];
            let mut col = vec![0.0; n];
            let mut all = 0.0;
            for a in 0..n {
                for b in 0..n {
                    if a != b {
                        let t = p[a] * p[b] / (rest(p[a]) * rest(p[a] + p[b]));
                        row[a] += t;
                        col[b] += t;
                        all += t;
                    }
                }
            }
            for c in 0..n {
                out[c] = p[c] * (all - row[c] - col[c]);
            }
        }
        _ => out.iter_mut().for_each(|o| *o = 0.0),
    }
}

impl<M: RewardModel> EvaluationPolicy for PlackettLucePolicy<M> {
    fn name(&self) -> String {
        self.name.clone()
    }

    fn distribution(&self, data: &LoggedData, round: usize, position: u32, out: &mut [f64]) {
        let scores: Vec<f64> = (0..data.n_items())
            .map(|a| self.model.predict(data, round, a as u32, 0))
            .collect();
        let n = scores.len().max(1) as f64;
        let mean = scores.iter().sum::<f64>() / n;
        let sd = (scores.iter().map(|s| (s - mean).powi(2)).sum::<f64>() / n).sqrt();
        let p = metarec_core::explore::softmax(&scores, self.temperature * sd.max(1e-12));
        plackett_luce_marginals(&p, position as usize, out);
    }
}

/// One round's action distribution as counted from a policy's decisions: per display position,
/// the items with a positive probability.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RoundDistribution {
    positions: Vec<Vec<(u32, f64)>>,
    /// Decisions counted (1 for a deterministic choice).
    pub decisions: usize,
}

impl RoundDistribution {
    /// Writes the probability of every item at `position` into `out` (zeros elsewhere).
    pub fn fill(&self, position: u32, out: &mut [f64]) {
        out.iter_mut().for_each(|p| *p = 0.0);
        if let Some(items) = self.positions.get(position as usize) {
            for &(item, p) in items {
                if let Some(slot) = out.get_mut(item as usize) {
                    *slot = p;
                }
            }
        }
    }

    /// The probability of `item` at `position`.
    pub fn probability(&self, item: u32, position: u32) -> f64 {
        self.positions
            .get(position as usize)
            .and_then(|items| items.iter().find(|(i, _)| *i == item))
            .map_or(0.0, |&(_, p)| p)
    }
}

/// The distribution of `policy`'s slates of `slate_size` items in `context`, counted over up to
/// `draws` decisions drawn from `rng`: the share of decisions that put each item at each
/// position. When the first decision reports propensity 1 at every position it shows, the policy
/// has said that it makes this choice with certainty, so that decision alone is the exact
/// distribution and no more are drawn. Items outside `0..n_items` are left out.
pub fn round_distribution<P: Policy + ?Sized>(
    policy: &mut P,
    context: &Context,
    n_items: usize,
    slate_size: usize,
    draws: usize,
    rng: &mut Rng,
) -> RoundDistribution {
    let mut counts: Vec<std::collections::BTreeMap<u32, u64>> =
        vec![Default::default(); slate_size];
    let mut decisions = 0usize;
    for d in 0..draws.max(1) {
        let choice = policy.decide(context, slate_size, rng);
        decisions += 1;
        for (k, item) in choice.items.iter().enumerate().take(slate_size) {
            if item.index() < n_items {
                *counts[k].entry(item.0).or_insert(0) += 1;
            }
        }
        let certain = !choice.items.is_empty()
            && choice.propensities.len() == choice.items.len()
            && choice.propensities.iter().all(|&p| p == 1.0);
        if d == 0 && certain {
            break;
        }
    }
    let total = decisions as f64;
    RoundDistribution {
        positions: counts
            .into_iter()
            .map(|c| c.into_iter().map(|(i, n)| (i, n as f64 / total)).collect())
            .collect(),
        decisions,
    }
}

/// Any metarec [`Policy`] seen through its action distribution, estimated per round from up to
/// `draws` seeded decisions in the round's context ([`round_distribution`]: one decision when the
/// policy's choice is certain). Round `i` draws from `rng_for(seed, i)`, so the estimate does not
/// depend on the order in which rounds are asked; the last round's distribution is kept, so that
/// the positions of one round share one set of decisions. The policy is used as it is (it does
/// not learn from the log: see [`ReplayPolicy`] for one that does); it sits in a `RefCell`
/// because deciding needs `&mut self`.
pub struct MonteCarloPolicy<P> {
    policy: std::cell::RefCell<P>,
    name: String,
    slate_size: usize,
    draws: usize,
    seed: u64,
    last: std::cell::RefCell<Option<(usize, RoundDistribution)>>,
    decisions: std::cell::Cell<usize>,
}

impl<P: Policy> MonteCarloPolicy<P> {
    /// Wraps `policy`, asking for slates of `slate_size` items, up to `draws` times per round.
    pub fn new(policy: P, slate_size: usize, draws: usize, seed: u64) -> Result<Self, OpeError> {
        if draws == 0 || slate_size == 0 {
            return Err(OpeError::Config {
                name: "draws",
                reason: "at least one draw of at least one item is needed".into(),
            });
        }
        Ok(MonteCarloPolicy {
            name: policy.name().to_owned(),
            policy: std::cell::RefCell::new(policy),
            slate_size,
            draws,
            seed,
            last: std::cell::RefCell::new(None),
            decisions: std::cell::Cell::new(0),
        })
    }

    /// Decisions the policy has made so far, over every round counted.
    pub fn decisions(&self) -> usize {
        self.decisions.get()
    }
}

impl<P: Policy> EvaluationPolicy for MonteCarloPolicy<P> {
    fn name(&self) -> String {
        self.name.clone()
    }

    fn distribution(&self, data: &LoggedData, round: usize, position: u32, out: &mut [f64]) {
        let mut last = self.last.borrow_mut();
        if last.as_ref().is_none_or(|(r, _)| *r != round) {
            let fallback = Context::default();
            let context = data.context(round).unwrap_or(&fallback);
            let mut rng = rng_for(self.seed, round as u64);
            let dist = round_distribution(
                &mut *self.policy.borrow_mut(),
                context,
                data.n_items(),
                self.slate_size,
                self.draws,
                &mut rng,
            );
            self.decisions.set(self.decisions.get() + dist.decisions);
            *last = Some((round, dist));
        }
        match last.as_ref() {
            Some((_, dist)) => dist.fill(position, out),
            None => out.iter_mut().for_each(|p| *p = 0.0),
        }
    }
}

/// A policy that adapts to what it observes (the adjusted policy's per-user state, a baseline
/// that learns online), evaluated by replay: the rounds are played in the log's order (which
/// must be time order); in each round the policy's distribution is counted from its decisions
/// in the logged context ([`round_distribution`], round `i` drawing from `rng_for(seed, i)`),
/// and then the policy observes the round's logged interaction, so that its state in a round
/// depends only on the logged feedback of earlier rounds. A user's first round calls
/// [`Policy::start_user`].
///
/// Caveat: the policy adapts to the feedback the logging policy's slates received, not to the
/// feedback its own slates would have received. Importance weighting is unbiased for this
/// replayed policy (its distribution in a round is fixed by the log before the round's outcome),
/// which equals the deployed policy only when what it learns from a slate does not depend on
/// which slate was shown; an adaptive policy's estimate is therefore the value of adapting to the
/// logged feedback, usually a conservative view of adapting to its own.
pub struct ReplayPolicy {
    name: String,
    rounds: Vec<RoundDistribution>,
}

impl ReplayPolicy {
    /// Replays `policy` over the rounds of `data`; `interactions[i]` is round `i`'s logged
    /// interaction (the one `data` was built from, in the same order). Rounds of one user must
    /// be in time order where they carry timestamps.
    pub fn replay<P: Policy>(
        mut policy: P,
        data: &LoggedData,
        interactions: &[&Interaction],
        slate_size: usize,
        draws: usize,
        seed: u64,
    ) -> Result<Self, OpeError> {
        if draws == 0 || slate_size == 0 {
            return Err(OpeError::Config {
                name: "draws",
                reason: "at least one draw of at least one item is needed".into(),
            });
        }
        if interactions.len() != data.rounds() {
            return Err(OpeError::Config {
                name: "interactions",
                reason: format!(
                    "{} interactions for a log of {} rounds: the replay needs each round's",
                    interactions.len(),
                    data.rounds()
                ),
            });
        }
        let mut last_seen: std::collections::HashMap<&str, i64> = std::collections::HashMap::new();
        let mut started: std::collections::HashSet<&str> = std::collections::HashSet::new();
        let mut rounds = Vec::with_capacity(interactions.len());
        for (round, interaction) in interactions.iter().enumerate() {
            let context = &interaction.context;
            let user = context.user.0.as_str();
            if let Some(ms) = context.timestamp_ms {
                if let Some(&before) = last_seen.get(user) {
                    if ms < before {
                        return Err(OpeError::Config {
                            name: "interactions",
                            reason: format!(
                                "round {}: user `{}`'s rounds are not in time order, which a replay needs",
                                round + 1,
                                user.escape_debug()
                            ),
                        });
                    }
                }
                last_seen.insert(user, ms);
            }
            if started.insert(user) {
                policy.start_user(context);
            }
            let mut rng = rng_for(seed, round as u64);
            rounds.push(round_distribution(
                &mut policy,
                context,
                data.n_items(),
                slate_size,
                draws,
                &mut rng,
            ));
            policy.observe(interaction);
        }
        Ok(ReplayPolicy {
            name: policy.name().to_owned(),
            rounds,
        })
    }

    /// The distribution counted in round `round`.
    pub fn round(&self, round: usize) -> Option<&RoundDistribution> {
        self.rounds.get(round)
    }
}

impl EvaluationPolicy for ReplayPolicy {
    fn name(&self) -> String {
        self.name.clone()
    }

    fn distribution(&self, _data: &LoggedData, round: usize, position: u32, out: &mut [f64]) {
        match self.rounds.get(round) {
            Some(dist) => dist.fill(position, out),
            None => out.iter_mut().for_each(|p| *p = 0.0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plackett_luce_marginals_match_the_core_closed_forms_and_sum_to_one() {
        let p = [0.4, 0.3, 0.2, 0.1];
        let mut out = [0.0; 4];
        for k in 0..3 {
            plackett_luce_marginals(&p, k, &mut out);
            for (c, &m) in out.iter().enumerate() {
                let reference = metarec_core::explore::plackett_luce_marginal(&p, c, k).unwrap();
                assert!(
                    (m - reference).abs() < 1e-12,
                    "position {k} item {c}: {m} vs {reference}"
                );
            }
            assert!((out.iter().sum::<f64>() - 1.0).abs() < 1e-12);
        }
    }

    /// Shows item 0 first with probability 0.75, else item 1, then the other.
    struct Coin;

    impl Policy for Coin {
        fn name(&self) -> &str {
            "coin"
        }
        fn decide(
            &mut self,
            _: &Context,
            _: usize,
            rng: &mut metarec_core::Rng,
        ) -> metarec_core::SlateChoice {
            use rand::Rng as _;
            let first = u32::from(rng.random::<f64>() >= 0.75);
            metarec_core::SlateChoice {
                items: vec![metarec_core::ItemId(first), metarec_core::ItemId(1 - first)],
                propensities: vec![0.75, 0.75],
                slate_propensity: None,
            }
        }
    }

    #[test]
    fn any_policy_is_evaluated_through_its_decision_frequencies() {
        let mut data = LoggedData::new(3, 2);
        let entry = crate::data::RawEntry {
            item: 0,
            position: 0,
            propensity: Some(0.5),
            reward: 1.0,
        };
        data.push_round(1, None, &[entry]).unwrap();
        let p = MonteCarloPolicy::new(Coin, 2, 20_000, 5).unwrap();
        assert_eq!(p.name(), "coin");
        let mut out = vec![0.0; 3];
        p.distribution(&data, 0, 0, &mut out);
        // Binomial standard error sqrt(0.75 * 0.25 / 20000) = 0.003.
        assert!((out[0] - 0.75).abs() < 0.015, "{out:?}");
        assert!((out[0] + out[1] - 1.0).abs() < 1e-9 && out[2] == 0.0);
        let mut again = vec![0.0; 3];
        p.distribution(&data, 0, 0, &mut again);
        assert_eq!(out, again);
        p.distribution(&data, 0, 1, &mut out);
        assert!((out[1] - 0.75).abs() < 0.015, "{out:?}");
    }

    /// Shows `[2, 0]` with certainty and counts its decisions.
    struct Fixed {
        calls: std::rc::Rc<std::cell::Cell<usize>>,
    }

    impl Policy for Fixed {
        fn name(&self) -> &str {
            "fixed"
        }
        fn decide(
            &mut self,
            _: &Context,
            _: usize,
            _: &mut metarec_core::Rng,
        ) -> metarec_core::SlateChoice {
            self.calls.set(self.calls.get() + 1);
            metarec_core::SlateChoice {
                items: vec![metarec_core::ItemId(2), metarec_core::ItemId(0)],
                propensities: vec![1.0, 1.0],
                slate_propensity: Some(1.0),
            }
        }
    }

    fn two_rounds() -> LoggedData {
        let mut data = LoggedData::new(3, 2);
        for (row, item) in [(1, 0), (2, 2)] {
            let entries = [
                crate::data::RawEntry {
                    item,
                    position: 0,
                    propensity: Some(0.5),
                    reward: 1.0,
                },
                crate::data::RawEntry {
                    item: 1,
                    position: 1,
                    propensity: Some(0.5),
                    reward: 0.0,
                },
            ];
            data.push_round(row, Some(Context::default()), &entries)
                .unwrap();
        }
        data
    }

    #[test]
    fn a_certain_choice_costs_one_decision_per_round_and_is_exact() {
        let calls = std::rc::Rc::new(std::cell::Cell::new(0));
        let p = MonteCarloPolicy::new(
            Fixed {
                calls: calls.clone(),
            },
            2,
            1000,
            3,
        )
        .unwrap();
        let data = two_rounds();
        let mut out = vec![0.0; 3];
        p.distribution(&data, 0, 0, &mut out);
        assert_eq!(out, [0.0, 0.0, 1.0]);
        p.distribution(&data, 0, 1, &mut out);
        assert_eq!(out, [1.0, 0.0, 0.0]);
        assert_eq!(
            calls.get(),
            1,
            "both positions of a round share its decision"
        );
        p.distribution(&data, 1, 0, &mut out);
        assert_eq!(calls.get(), 2);
        // A sampling policy draws as often as asked.
        let mut rng = rng_for(1, 1);
        let dist = round_distribution(&mut Coin, &Context::default(), 3, 2, 64, &mut rng);
        assert_eq!(dist.decisions, 64);
        assert!((dist.probability(0, 0) + dist.probability(1, 0) - 1.0).abs() < 1e-12);
    }

    /// Shows first the item its user last clicked (item 0 before any click), with certainty.
    #[derive(Default)]
    struct Echo {
        last: std::collections::HashMap<String, u32>,
    }

    impl Policy for Echo {
        fn name(&self) -> &str {
            "echo"
        }
        fn decide(
            &mut self,
            context: &Context,
            _: usize,
            _: &mut metarec_core::Rng,
        ) -> metarec_core::SlateChoice {
            let first = self.last.get(&context.user.0).copied().unwrap_or(0);
            metarec_core::SlateChoice {
                items: vec![metarec_core::ItemId(first)],
                propensities: vec![1.0],
                slate_propensity: None,
            }
        }
        fn observe(&mut self, interaction: &Interaction) {
            let d = &interaction.decision;
            for (k, item) in d.slate.items().iter().enumerate() {
                if interaction.feedback.clicks[k] {
                    self.last.insert(interaction.context.user.0.clone(), item.0);
                }
            }
        }
    }

    fn logged(user: &str, ms: i64, item: u32, click: bool) -> Interaction {
        let mut context = Context::for_user(metarec_core::UserKey(user.into()));
        context.timestamp_ms = Some(ms);
        Interaction::new(
            context,
            metarec_core::Decision {
                event_id: metarec_core::EventId(format!("{user}{ms}")),
                slate: metarec_core::Slate::new(vec![metarec_core::ItemId(item)]).unwrap(),
                propensities: vec![0.25],
                slate_propensity: None,
                positions: None,
                policy_id: "logged".into(),
                model_version: String::new(),
            },
            metarec_core::Feedback {
                clicks: vec![click],
                purchases: vec![false],
                revenue: vec![0.0],
            },
        )
        .unwrap()
    }

    #[test]
    fn the_replay_counts_each_round_before_observing_it() {
        let log = [
            logged("u", 1, 2, true),
            logged("v", 2, 3, true),
            logged("u", 3, 1, true),
            logged("u", 4, 3, false),
        ];
        let data = LoggedData::from_interactions(
            &log,
            4,
            1,
            &metarec_core::RewardFn::default(),
            Default::default(),
        )
        .unwrap();
        let refs: Vec<&Interaction> = log.iter().collect();
        let replay = ReplayPolicy::replay(Echo::default(), &data, &refs, 1, 10, 7).unwrap();
        let firsts: Vec<u32> = (0..4)
            .map(|r| {
                (0..4)
                    .find(|&i| replay.round(r).unwrap().probability(i, 0) == 1.0)
                    .unwrap()
            })
            .collect();
        // u: nothing seen, then its click on 2 (not v's on 3), then its click on 1.
        assert_eq!(firsts, [0, 0, 2, 1]);
        assert_eq!(replay.round(0).unwrap().decisions, 1);
        // Rounds of one user out of time order cannot be replayed.
        let late = [logged("u", 5, 2, true), logged("u", 4, 1, true)];
        let data = LoggedData::from_interactions(
            &late,
            4,
            1,
            &metarec_core::RewardFn::default(),
            Default::default(),
        )
        .unwrap();
        let refs: Vec<&Interaction> = late.iter().collect();
        let err = ReplayPolicy::replay(Echo::default(), &data, &refs, 1, 10, 7)
            .err()
            .unwrap();
        assert!(err.to_string().contains("not in time order"), "{err}");
        let err = ReplayPolicy::replay(Echo::default(), &data, &refs[..1], 1, 10, 7)
            .err()
            .unwrap();
        assert!(
            err.to_string().contains("1 interactions for a log of 2"),
            "{err}"
        );
    }

    #[test]
    fn uniform_gives_one_over_n_everywhere() {
        let p = StaticPolicy::uniform(80, 3).unwrap();
        assert_eq!(p.probability(5, 2), 1.0 / 80.0);
        assert!(StaticPolicy::uniform(2, 3).is_err());
    }

    #[test]
    fn thompson_sampling_matches_the_two_item_closed_form_and_is_seeded() {
        // With two items, item 0 is on top when its draw is larger: for Beta(2, 1) against
        // Beta(1, 1), P(X > Y) = E[X] = 2/3 (Y uniform).
        let prior = BetaPrior {
            alpha: vec![2.0, 1.0],
            beta: vec![1.0, 1.0],
        };
        let mc = MonteCarlo {
            draws: 40_000,
            seed: 7,
            threads: 2,
        };
        let p = StaticPolicy::bernoulli_ts(&prior, 2, &mc).unwrap();
        let top = p.probability(0, 0);
        // Binomial standard error sqrt(2/9 / 40000) = 0.0024; 4 of them.
        assert!((top - 2.0 / 3.0).abs() < 0.01, "{top}");
        assert!((p.probability(1, 1) - top).abs() < 1e-12);
        assert!((p.probability(0, 1) + top - 1.0).abs() < 1e-12);
        let one_thread =
            StaticPolicy::bernoulli_ts(&prior, 2, &MonteCarlo { threads: 1, ..mc }).unwrap();
        assert_eq!(one_thread, p);
        let other_seed =
            StaticPolicy::bernoulli_ts(&prior, 2, &MonteCarlo { seed: 8, ..mc }).unwrap();
        assert_ne!(other_seed, p);
    }
}
