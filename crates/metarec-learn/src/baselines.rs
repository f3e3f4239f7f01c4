//! The simplest baselines: [`RandomPolicy`] (uniform slates), [`PopularityPolicy`] (the most
//! clicked and bought items, learnt online) and [`EpsilonGreedy`] (the highest empirical click
//! rate, with epsilon exploration).
//!
//! All three keep item-level statistics shared by every user and ignore who is asking; they are
//! the yardsticks a personalised policy has to beat. They read the catalog's
//! [`crate::features::POPULARITY_COLUMN`] as a prior, so they rank sensibly from the first
//! decision, before any feedback arrives.

use crate::candidates::{Candidates, empty_choice};
use crate::error::{LearnError, check_range};
use crate::features::popularity_prior;
use metarec_core::explore::{epsilon_greedy, uniform};
use metarec_core::{Catalog, Context, Interaction, Policy, Rng, SlateChoice};
use serde::{Deserialize, Serialize};

/// Uniformly random slates: every item is at every position with probability `1 / n`.
#[derive(Debug, Clone)]
pub struct RandomPolicy {
    candidates: Candidates,
}

impl RandomPolicy {
    /// A random policy over `catalog`.
    pub fn new(catalog: &Catalog) -> Self {
        RandomPolicy {
            candidates: Candidates::new(catalog.len()),
        }
    }
}

impl Policy for RandomPolicy {
    fn name(&self) -> &str {
        "random"
    }

    fn decide(&mut self, context: &Context, k: usize, rng: &mut Rng) -> SlateChoice {
        let candidates = self.candidates.resolve(context);
        if candidates.is_empty() || k == 0 {
            return empty_choice();
        }
        uniform(candidates, k, rng)
    }
}

/// Settings of [`PopularityPolicy`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PopularityConfig {
    /// Probability of a uniformly random slate instead of the most popular one; 0 is pure
    /// greedy. In `[0, 1]`.
    pub epsilon: f64,
    /// Weight of the catalog's popularity prior in the score, in events per standard deviation
    /// of log popularity. The default 0.1 makes the prior a tie-break: one observed click
    /// outweighs a prior difference of ten standard deviations. Finite and non-negative.
    pub prior_weight: f64,
}

impl Default for PopularityConfig {
    fn default() -> Self {
        PopularityConfig {
            epsilon: 0.0,
            prior_weight: 0.1,
        }
    }
}

impl PopularityConfig {
    fn validate(&self) -> Result<(), LearnError> {
        check_range("epsilon", self.epsilon, 0.0, 1.0, "[0, 1]")?;
        check_range(
            "prior_weight",
            self.prior_weight,
            0.0,
            f64::MAX,
            "finite and non-negative",
        )
    }
}

/// Items ranked by how often they were clicked or bought (one point for a click, one more for a
/// purchase), across all users, plus the catalog's popularity prior.
#[derive(Debug, Clone)]
pub struct PopularityPolicy {
    config: PopularityConfig,
    /// Per item: `prior_weight * log_popularity_z + clicks + purchases`.
    scores: Vec<f64>,
    candidates: Candidates,
    candidate_scores: Vec<f64>,
    observed: u64,
}

impl PopularityPolicy {
    /// A popularity policy over `catalog`; fails on an out-of-range setting.
    pub fn new(catalog: &Catalog, config: PopularityConfig) -> Result<Self, LearnError> {
        config.validate()?;
        let scores = popularity_prior(catalog)
            .into_iter()
            .map(|p| config.prior_weight * p)
            .collect();
        Ok(PopularityPolicy {
            config,
            scores,
            candidates: Candidates::new(catalog.len()),
            candidate_scores: Vec::new(),
            observed: 0,
        })
    }

    /// The current score of every item, in id order.
    pub fn scores(&self) -> &[f64] {
        &self.scores
    }
}

impl Policy for PopularityPolicy {
    fn name(&self) -> &str {
        "popularity"
    }

    fn model_version(&self) -> String {
        self.observed.to_string()
    }

    fn decide(&mut self, context: &Context, k: usize, rng: &mut Rng) -> SlateChoice {
        let candidates = self.candidates.resolve(context);
        if candidates.is_empty() || k == 0 {
            return empty_choice();
        }
        self.candidate_scores.clear();
        self.candidate_scores
            .extend(candidates.iter().map(|c| self.scores[c.index()]));
        epsilon_greedy(
            candidates,
            &self.candidate_scores,
            k,
            self.config.epsilon,
            rng,
        )
    }

    fn observe(&mut self, interaction: &Interaction) {
        self.observed += 1;
        let fb = &interaction.feedback;
        for (k, item) in interaction.decision.slate.items().iter().enumerate() {
            // Items unknown to this catalog (a log from another shop) are skipped.
            if let Some(s) = self.scores.get_mut(item.index()) {
                *s += f64::from(u8::from(fb.clicks[k])) + f64::from(u8::from(fb.purchases[k]));
            }
        }
    }
}

/// Settings of [`EpsilonGreedy`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EpsilonGreedyConfig {
    /// Probability of a uniformly random slate. In `[0, 1]`.
    pub epsilon: f64,
    /// Pseudo-impressions of the prior: an item's click rate starts at the running mean click
    /// rate of all items and moves away from it as its own impressions outnumber these.
    /// Positive and finite.
    pub prior_impressions: f64,
    /// Weight of the catalog's popularity prior as a tie-break, in click rate per standard
    /// deviation of log popularity; small enough that any observed difference wins. Finite and
    /// non-negative.
    pub prior_weight: f64,
}

impl Default for EpsilonGreedyConfig {
    fn default() -> Self {
        EpsilonGreedyConfig {
            epsilon: 0.1,
            prior_impressions: 5.0,
            prior_weight: 1e-4,
        }
    }
}

impl EpsilonGreedyConfig {
    fn validate(&self) -> Result<(), LearnError> {
        check_range("epsilon", self.epsilon, 0.0, 1.0, "[0, 1]")?;
        check_range(
            "prior_impressions",
            self.prior_impressions,
            f64::MIN_POSITIVE,
            f64::MAX,
            "positive and finite",
        )?;
        check_range(
            "prior_weight",
            self.prior_weight,
            0.0,
            f64::MAX,
            "finite and non-negative",
        )
    }
}

/// Epsilon-greedy over a per-item empirical click rate shared by all users:
/// `rate_i = (clicks_i + m * mean_rate) / (impressions_i + m)`, where `m` is
/// [`EpsilonGreedyConfig::prior_impressions`] and `mean_rate` the click rate over all
/// impressions so far (Laplace-smoothed, so 0.5 before any). Every shown position counts as an
/// impression, whatever its position: a deliberately simple estimate that does not correct for
/// position bias.
#[derive(Debug, Clone)]
pub struct EpsilonGreedy {
    config: EpsilonGreedyConfig,
    clicks: Vec<f64>,
    impressions: Vec<f64>,
    total_clicks: f64,
    total_impressions: f64,
    prior: Vec<f64>,
    candidates: Candidates,
    candidate_scores: Vec<f64>,
    observed: u64,
}

impl EpsilonGreedy {
    /// An epsilon-greedy policy over `catalog`; fails on an out-of-range setting.
    pub fn new(catalog: &Catalog, config: EpsilonGreedyConfig) -> Result<Self, LearnError> {
        config.validate()?;
        let n = catalog.len();
        Ok(EpsilonGreedy {
            config,
            clicks: vec![0.0; n],
            impressions: vec![0.0; n],
            total_clicks: 0.0,
            total_impressions: 0.0,
            prior: popularity_prior(catalog),
            candidates: Candidates::new(n),
            candidate_scores: Vec::new(),
            observed: 0,
        })
    }

    /// The estimated click rate of item `index` (without the popularity tie-break).
    ///
    /// # Panics
    /// When `index` is not an item of the catalog.
    pub fn click_rate(&self, index: usize) -> f64 {
        smoothed_rate(
            self.clicks[index],
            self.impressions[index],
            self.config.prior_impressions,
            self.mean_rate(),
        )
    }

    /// The Laplace-smoothed click rate over all impressions, the prior mean of every item.
    fn mean_rate(&self) -> f64 {
        (self.total_clicks + 1.0) / (self.total_impressions + 2.0)
    }
}

/// A click rate shrunk towards `mean` by `m` pseudo-impressions.
fn smoothed_rate(clicks: f64, impressions: f64, m: f64, mean: f64) -> f64 {
    (clicks + m * mean) / (impressions + m)
}

impl Policy for EpsilonGreedy {
    fn name(&self) -> &str {
        "egreedy"
    }

    fn model_version(&self) -> String {
        self.observed.to_string()
    }

    fn decide(&mut self, context: &Context, k: usize, rng: &mut Rng) -> SlateChoice {
        let (m, mean) = (self.config.prior_impressions, self.mean_rate());
        let candidates = self.candidates.resolve(context);
        if candidates.is_empty() || k == 0 {
            return empty_choice();
        }
        self.candidate_scores.clear();
        for c in candidates {
            let i = c.index();
            let rate = smoothed_rate(self.clicks[i], self.impressions[i], m, mean);
            self.candidate_scores
                .push(rate + self.config.prior_weight * self.prior[i]);
        }
        epsilon_greedy(
            candidates,
            &self.candidate_scores,
            k,
            self.config.epsilon,
            rng,
        )
    }

    fn observe(&mut self, interaction: &Interaction) {
        self.observed += 1;
        let fb = &interaction.feedback;
        for (k, item) in interaction.decision.slate.items().iter().enumerate() {
            let i = item.index();
            if i < self.clicks.len() {
                let click = f64::from(u8::from(fb.clicks[k]));
                self.clicks[i] += click;
                self.impressions[i] += 1.0;
                self.total_clicks += click;
                self.total_impressions += 1.0;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::{bandit_catalog, decide_empty, simulate};
    use metarec_core::{ItemId, rng_for};

    #[test]
    fn random_propensities_are_one_over_n() {
        let catalog = bandit_catalog();
        let mut p = RandomPolicy::new(&catalog);
        let choice = decide_empty(&mut p, 3, &mut rng_for(1, 0));
        assert_eq!(choice.items.len(), 3);
        assert_eq!(choice.propensities, vec![1.0 / 5.0; 3]);
    }

    #[test]
    fn popularity_starts_from_the_prior_and_learns_from_clicks() {
        let catalog = bandit_catalog();
        let mut p = PopularityPolicy::new(&catalog, PopularityConfig::default()).unwrap();
        // Before any feedback the prior ranks item 0 (log_popularity_z = 1) first.
        let first = decide_empty(&mut p, 2, &mut rng_for(2, 0));
        assert_eq!(first.items[0], ItemId(0));
        assert_eq!(first.propensities, vec![1.0, 1.0]);
        // Clicks and purchases count: two clicks on item 4, one of them a purchase, make it
        // the most popular (3 events against a prior of at most 0.1).
        simulate_feedback(
            &mut p,
            &[(4, true, true), (4, true, false), (1, false, false)],
        );
        assert_eq!(p.scores()[4], 3.0 + 0.1 * -0.5);
        assert_eq!(
            decide_empty(&mut p, 1, &mut rng_for(2, 0)).items,
            vec![ItemId(4)]
        );
        // Under uniform exposure (epsilon = 1) the counts find the best item, 2.
        let config = PopularityConfig {
            epsilon: 1.0,
            ..PopularityConfig::default()
        };
        let mut p = PopularityPolicy::new(&catalog, config).unwrap();
        simulate(&mut p, 400, 2, 3);
        let best = (0..5)
            .max_by(|&a, &b| p.scores()[a].total_cmp(&p.scores()[b]))
            .unwrap();
        assert_eq!(best, 2, "{:?}", p.scores());
    }

    /// Observes one single-item slate per `(item, click, purchase)`.
    fn simulate_feedback(p: &mut dyn Policy, events: &[(u32, bool, bool)]) {
        for &(item, click, purchase) in events {
            let d = metarec_core::decision_from_choice(
                SlateChoice {
                    items: vec![ItemId(item)],
                    propensities: vec![1.0],
                    slate_propensity: None,
                },
                "e".into(),
                "test",
                "0".into(),
            )
            .unwrap();
            let mut fb = metarec_core::Feedback::none(1);
            fb.clicks[0] = click;
            fb.purchases[0] = purchase;
            let ctx = Context::default();
            p.observe(&Interaction::new(ctx, d, fb).unwrap());
        }
    }

    #[test]
    fn egreedy_ranks_the_highest_click_rate_first() {
        let catalog = bandit_catalog();
        let mut p = EpsilonGreedy::new(&catalog, EpsilonGreedyConfig::default()).unwrap();
        simulate(&mut p, 600, 2, 4);
        let rates: Vec<f64> = (0..5).map(|i| p.click_rate(i)).collect();
        assert!((rates[2] - 0.7).abs() < 0.1, "{rates:?}");
        let greedy = EpsilonGreedyConfig {
            epsilon: 0.0,
            ..EpsilonGreedyConfig::default()
        };
        p.config = greedy;
        assert_eq!(
            decide_empty(&mut p, 1, &mut rng_for(5, 0)).items,
            vec![ItemId(2)]
        );
    }

    #[test]
    fn out_of_range_settings_are_typed_errors() {
        let catalog = bandit_catalog();
        let bad = PopularityConfig {
            epsilon: 1.5,
            ..PopularityConfig::default()
        };
        assert!(matches!(
            PopularityPolicy::new(&catalog, bad),
            Err(LearnError::InvalidConfig {
                field: "epsilon",
                ..
            })
        ));
        let bad = EpsilonGreedyConfig {
            prior_impressions: 0.0,
            ..EpsilonGreedyConfig::default()
        };
        assert!(matches!(
            EpsilonGreedy::new(&catalog, bad),
            Err(LearnError::InvalidConfig {
                field: "prior_impressions",
                ..
            })
        ));
    }
}
