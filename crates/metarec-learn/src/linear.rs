//! Linear contextual bandits over the [`FeatureMap`]: [`LinUcb`] (Li et al. 2010) and [`LinTs`],
//! linear Thompson sampling (Agrawal & Goyal 2013), each with one model for everyone or one per
//! user ([`Scope`]).
//!
//! Both regress the per-entry reward `RewardFn::entry_reward(click, purchase, revenue)` on
//! `phi(context, item)` with ridge regression ([`crate::ridge::RidgeModel`]). Every shown entry
//! is one observation, whatever its position: the baselines do not model position bias, so items
//! shown low in a slate look a little worse than they are. LinUCB ranks by the optimistic score
//! `theta^T x + alpha sqrt(x^T A^{-1} x)` and shows the top `k` deterministically (propensity 1).
//! LinTS draws `theta ~ N(theta_hat, v^2 A^{-1})`, shows the top `k` of `theta^T x`, and estimates
//! the per-position propensities of that ranking from further draws
//! ([`metarec_core::explore::monte_carlo_marginals`]).

use crate::candidates::{Candidates, empty_choice};
use crate::error::{LearnError, check_range};
use crate::features::{FeatureMap, SessionView};
use crate::ridge::{RidgeModel, Scope, ScopedModels};
use metarec_core::explore::{greedy, monte_carlo_marginals, top_k};
use metarec_core::linalg::dot;
use metarec_core::{Catalog, Context, Interaction, ItemId, Policy, RewardFn, Rng, SlateChoice};
use serde::{Deserialize, Serialize};

/// Settings of [`LinUcb`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinUcbConfig {
    /// One model for everyone or one per user.
    pub scope: Scope,
    /// Prior precision `lambda` (ridge penalty): `A` starts at `lambda I`. Positive and finite.
    pub lambda: f64,
    /// Width of the confidence bonus in posterior standard deviations. Finite and non-negative;
    /// 0 is greedy on the posterior mean.
    pub alpha: f64,
    /// Most per-user models kept at once (least recently used evicted first). At least 1.
    pub max_users: usize,
}

impl Default for LinUcbConfig {
    fn default() -> Self {
        LinUcbConfig {
            scope: Scope::Shared,
            lambda: 1.0,
            alpha: 1.0,
            max_users: 4096,
        }
    }
}

/// Settings of [`LinTs`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinTsConfig {
    /// One model for everyone or one per user.
    pub scope: Scope,
    /// Prior precision `lambda` (ridge penalty): `A` starts at `lambda I`. Positive and finite.
    pub lambda: f64,
    /// Posterior scale `v`: `theta` is drawn from `N(theta_hat, v^2 A^{-1})`. Finite and
    /// non-negative; 0 is greedy on the posterior mean.
    pub v: f64,
    /// Further posterior draws per decision that estimate its per-position propensities. At
    /// least 1; the estimate's resolution is `1 / (draws + 1)`.
    pub draws: usize,
    /// Most per-user models kept at once (least recently used evicted first). At least 1.
    pub max_users: usize,
}

impl Default for LinTsConfig {
    fn default() -> Self {
        LinTsConfig {
            scope: Scope::Shared,
            lambda: 1.0,
            v: 1.0,
            draws: 16,
            max_users: 4096,
        }
    }
}

fn check_common(lambda: f64, max_users: usize) -> Result<(), LearnError> {
    check_range(
        "lambda",
        lambda,
        f64::MIN_POSITIVE,
        f64::MAX,
        "positive and finite",
    )?;
    check_range("max_users", max_users as f64, 1.0, f64::MAX, "at least 1")
}

/// The parts of a decision in progress, borrowed from a [`LinearCore`].
struct Prepared<'a> {
    candidates: &'a [ItemId],
    model: &'a mut RidgeModel,
    /// `phi` of every candidate, row-major.
    phi: &'a [f64],
    scores: &'a mut Vec<f64>,
}

/// What LinUCB and LinTS share: the feature map, the reward, the models and reusable buffers.
#[derive(Debug, Clone)]
struct LinearCore {
    features: FeatureMap,
    reward: RewardFn,
    models: ScopedModels,
    candidates: Candidates,
    profile: SessionView,
    /// `phi` of every candidate of the current decision, row-major.
    phi: Vec<f64>,
    /// One `phi` row while learning.
    x: Vec<f64>,
    scores: Vec<f64>,
    observed: u64,
}

impl LinearCore {
    fn new(
        catalog: &Catalog,
        reward: &RewardFn,
        scope: Scope,
        lambda: f64,
        max_users: usize,
    ) -> Result<Self, LearnError> {
        let features = FeatureMap::new(catalog)?;
        let d = features.dim();
        Ok(LinearCore {
            models: ScopedModels::new(scope, d, lambda, max_users),
            features,
            reward: *reward,
            candidates: Candidates::new(catalog.len()),
            profile: SessionView::default(),
            phi: Vec::new(),
            x: vec![0.0; d],
            scores: Vec::new(),
            observed: 0,
        })
    }

    /// The shared start of a decision: resolves the candidates, fills `phi` for each of them
    /// and picks the model of the context's user; `None` when there is nothing to choose.
    fn prepare(&mut self, context: &Context, k: usize) -> Option<Prepared<'_>> {
        let candidates = self.candidates.resolve(context);
        if candidates.is_empty() || k == 0 {
            return None;
        }
        self.features.session(context, &mut self.profile);
        self.features.fill(candidates, &self.profile, &mut self.phi);
        Some(Prepared {
            candidates,
            model: self.models.for_decision(&context.user),
            phi: &self.phi,
            scores: &mut self.scores,
        })
    }

    /// Learns every entry of the interaction, skipping items the catalog does not know.
    fn observe(&mut self, interaction: &Interaction) {
        self.observed += 1;
        let fb = &interaction.feedback;
        self.features
            .session(&interaction.context, &mut self.profile);
        let model = self.models.for_update(&interaction.context.user);
        for (k, &item) in interaction.decision.slate.items().iter().enumerate() {
            if !self.features.contains(item) {
                continue;
            }
            self.features.write(item, &self.profile, &mut self.x);
            let r = self
                .reward
                .entry_reward(fb.clicks[k], fb.purchases[k], fb.revenue[k]);
            model.update(&self.x, r);
        }
    }
}

/// `out[i] = theta^T phi_i` for the row-major rows of `phi`.
fn linear_scores(phi: &[f64], theta: &[f64], out: &mut Vec<f64>) {
    out.clear();
    out.extend(phi.chunks_exact(theta.len()).map(|row| dot(row, theta)));
}

/// Linear UCB with a ridge model of the per-entry reward; see the module documentation.
#[derive(Debug, Clone)]
pub struct LinUcb {
    config: LinUcbConfig,
    core: LinearCore,
}

impl LinUcb {
    /// A LinUCB policy over `catalog` learning `reward`; fails on an out-of-range setting or a
    /// non-finite catalog feature.
    pub fn new(
        catalog: &Catalog,
        reward: &RewardFn,
        config: LinUcbConfig,
    ) -> Result<Self, LearnError> {
        check_common(config.lambda, config.max_users)?;
        check_range(
            "alpha",
            config.alpha,
            0.0,
            f64::MAX,
            "finite and non-negative",
        )?;
        Ok(LinUcb {
            config,
            core: LinearCore::new(
                catalog,
                reward,
                config.scope,
                config.lambda,
                config.max_users,
            )?,
        })
    }

    /// The feature map the model reads.
    pub fn features(&self) -> &FeatureMap {
        &self.core.features
    }

    /// The models (shared or per user).
    pub fn models(&mut self) -> &mut ScopedModels {
        &mut self.core.models
    }
}

impl Policy for LinUcb {
    fn name(&self) -> &str {
        match self.config.scope {
            Scope::Shared => "linucb",
            Scope::PerUser => "linucb-user",
        }
    }

    fn model_version(&self) -> String {
        self.core.observed.to_string()
    }

    fn decide(&mut self, context: &Context, k: usize, _rng: &mut Rng) -> SlateChoice {
        let Some(p) = self.core.prepare(context, k) else {
            return empty_choice();
        };
        let d = p.model.dim();
        p.scores.clear();
        for row in p.phi.chunks_exact(d) {
            p.scores.push(p.model.ucb(row, self.config.alpha));
        }
        greedy(p.candidates, p.scores, k)
    }

    fn observe(&mut self, interaction: &Interaction) {
        self.core.observe(interaction);
    }

    fn start_user(&mut self, context: &Context) {
        self.core.models.start_user(&context.user);
    }
}

/// Linear Thompson sampling with a ridge model of the per-entry reward; see the module
/// documentation.
#[derive(Debug, Clone)]
pub struct LinTs {
    config: LinTsConfig,
    core: LinearCore,
    theta: Vec<f64>,
}

impl LinTs {
    /// A linear Thompson sampling policy over `catalog` learning `reward`; fails on an
    /// out-of-range setting or a non-finite catalog feature.
    pub fn new(
        catalog: &Catalog,
        reward: &RewardFn,
        config: LinTsConfig,
    ) -> Result<Self, LearnError> {
        check_common(config.lambda, config.max_users)?;
        check_range("v", config.v, 0.0, f64::MAX, "finite and non-negative")?;
        check_range("draws", config.draws as f64, 1.0, f64::MAX, "at least 1")?;
        Ok(LinTs {
            config,
            core: LinearCore::new(
                catalog,
                reward,
                config.scope,
                config.lambda,
                config.max_users,
            )?,
            theta: Vec::new(),
        })
    }

    /// The feature map the model reads.
    pub fn features(&self) -> &FeatureMap {
        &self.core.features
    }

    /// The models (shared or per user).
    pub fn models(&mut self) -> &mut ScopedModels {
        &mut self.core.models
    }
}

impl Policy for LinTs {
    fn name(&self) -> &str {
        match self.config.scope {
            Scope::Shared => "lints",
            Scope::PerUser => "lints-user",
        }
    }

    fn model_version(&self) -> String {
        self.core.observed.to_string()
    }

    fn decide(&mut self, context: &Context, k: usize, rng: &mut Rng) -> SlateChoice {
        let Some(Prepared {
            candidates,
            model,
            phi,
            scores,
        }) = self.core.prepare(context, k)
        else {
            return empty_choice();
        };
        let (v, theta) = (self.config.v, &mut self.theta);
        model.sample_theta(v, rng, theta);
        linear_scores(phi, theta, scores);
        let chosen = top_k(scores, k);
        // Each further draw re-samples theta, so the estimate is the marginal of the ranking
        // under the posterior, not under the one draw that was realised.
        let propensities = monte_carlo_marginals(&chosen, self.config.draws, rng, |rng| {
            model.sample_theta(v, rng, theta);
            linear_scores(phi, theta, scores);
            top_k(scores, k)
        });
        SlateChoice {
            items: chosen
                .iter()
                .map(|&i| candidates[i])
                .collect::<Vec<ItemId>>(),
            propensities,
            slate_propensity: None,
        }
    }

    fn observe(&mut self, interaction: &Interaction) {
        self.core.observe(interaction);
    }

    fn start_user(&mut self, context: &Context) {
        self.core.models.start_user(&context.user);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::{bandit_catalog, decide_empty, simulate, simulate_users};
    use metarec_core::{UserKey, rng_for};

    fn clicks_only() -> RewardFn {
        RewardFn::new(1.0, 0.0, 0.0, 0.0).unwrap()
    }

    fn linucb(scope: Scope) -> LinUcb {
        let config = LinUcbConfig {
            scope,
            ..LinUcbConfig::default()
        };
        LinUcb::new(&bandit_catalog(), &clicks_only(), config).unwrap()
    }

    fn lints(scope: Scope, draws: usize) -> LinTs {
        let config = LinTsConfig {
            scope,
            draws,
            ..LinTsConfig::default()
        };
        LinTs::new(&bandit_catalog(), &clicks_only(), config).unwrap()
    }

    /// The posterior mean reward of each bandit item for a user with an empty history.
    fn mean_rewards(models: &mut ScopedModels, features: &FeatureMap) -> Vec<f64> {
        let profile = SessionView::empty(features.embedding_dim());
        let mut x = vec![0.0; features.dim()];
        let model = models.for_decision(&UserKey::from("u"));
        (0..5)
            .map(|i| {
                features.write(ItemId(i), &profile, &mut x);
                dot(model.theta(), &x)
            })
            .collect()
    }

    #[test]
    fn linucb_learns_to_put_the_best_item_first() {
        let mut p = linucb(Scope::Shared);
        // A new user every slate, so every context has an empty history and a zero profile: the
        // model is then exactly linear in the item features and its optimum is known.
        simulate_users(&mut p, 300, 2, 7, 1);
        let choice = decide_empty(&mut p, 2, &mut rng_for(0, 0));
        assert_eq!(choice.items[0], ItemId(2));
        assert_eq!(choice.propensities, vec![1.0, 1.0]);
        let features = p.features().clone();
        let means = mean_rewards(p.models(), &features);
        assert!((means[2] - 0.7).abs() < 0.1, "{means:?}");
    }

    #[test]
    fn lints_learns_to_put_the_best_item_first() {
        let mut p = lints(Scope::Shared, 16);
        simulate_users(&mut p, 300, 2, 8, 1);
        let features = p.features().clone();
        let means = mean_rewards(p.models(), &features);
        assert!((means[2] - 0.7).abs() < 0.1, "{means:?}");
        let best = (0..5).max_by(|&a, &b| means[a].total_cmp(&means[b]));
        assert_eq!(best, Some(2), "{means:?}");
        // Thompson sampling keeps exploring the rarely shown items, whose posteriors are still
        // wide, but most draws rank item 2 first by now.
        let mut rng = rng_for(9, 0);
        let first = (0..200)
            .filter(|_| decide_empty(&mut p, 2, &mut rng).items[0] == ItemId(2))
            .count();
        assert!(first >= 160, "{first}");
    }

    fn per_user_scope_resets_in_start_user(mut p: Box<dyn Policy>, mut fresh: Box<dyn Policy>) {
        // One user for all 300 slates.
        simulate_users(p.as_mut(), 300, 2, 10, 300);
        let me = Context::for_user(UserKey::from("u0"));
        let other = Context::for_user(UserKey::from("someone-else"));
        let decide = |p: &mut dyn Policy, c: &Context| p.decide(c, 2, &mut rng_for(11, 0));
        assert_eq!(decide(p.as_mut(), &me).items[0], ItemId(2));
        // Another user has learnt nothing: they get what an untrained policy shows.
        assert_eq!(decide(p.as_mut(), &other), decide(fresh.as_mut(), &other));
        assert_ne!(decide(p.as_mut(), &me), decide(fresh.as_mut(), &me));
        p.start_user(&me);
        assert_eq!(decide(p.as_mut(), &me), decide(fresh.as_mut(), &me));
    }

    #[test]
    fn per_user_linucb_resets_in_start_user() {
        per_user_scope_resets_in_start_user(
            Box::new(linucb(Scope::PerUser)),
            Box::new(linucb(Scope::PerUser)),
        );
    }

    #[test]
    fn per_user_lints_resets_in_start_user() {
        per_user_scope_resets_in_start_user(
            Box::new(lints(Scope::PerUser, 16)),
            Box::new(lints(Scope::PerUser, 16)),
        );
    }

    #[test]
    fn shared_scope_keeps_learning_across_users() {
        let mut p = linucb(Scope::Shared);
        simulate(&mut p, 100, 2, 12);
        let features = p.features().clone();
        let before = mean_rewards(p.models(), &features);
        p.start_user(&Context::for_user(UserKey::from("u")));
        let after = mean_rewards(p.models(), &features);
        assert!(before.iter().any(|&m| m != 0.0), "{before:?}");
        assert_eq!(before, after);
    }

    #[test]
    fn lints_marginals_match_the_frequencies_of_its_own_decisions() {
        // A posterior that is still uncertain, so rankings vary from draw to draw.
        // 2000 draws put the Monte Carlo error of each propensity near 0.01.
        let mut p = lints(Scope::Shared, 2000);
        simulate(&mut p, 15, 2, 13);
        let mut sampler = p.clone();
        let n = 4000;
        let mut freq = [[0.0; 5]; 2];
        let mut rng = rng_for(14, 0);
        for _ in 0..n {
            let c = decide_empty(&mut sampler, 2, &mut rng);
            for (j, item) in c.items.iter().enumerate() {
                freq[j][item.index()] += 1.0 / n as f64;
            }
        }
        let mut rng = rng_for(15, 0);
        let mut varied = false;
        for _ in 0..30 {
            let c = decide_empty(&mut p, 2, &mut rng);
            assert_eq!(c.propensities.len(), 2);
            for (j, (item, &prop)) in c.items.iter().zip(&c.propensities).enumerate() {
                assert!(prop > 0.0 && prop <= 1.0);
                let f = freq[j][item.index()];
                assert!(
                    (prop - f).abs() < 0.05,
                    "position {j} item {item}: {prop} vs {f}"
                );
                varied |= prop < 0.9;
            }
        }
        assert!(varied, "the posterior should still be uncertain");
    }

    #[test]
    fn observe_skips_items_the_catalog_does_not_know() {
        use metarec_core::{Feedback, Slate};
        let mut p = linucb(Scope::Shared);
        let d = metarec_core::Decision {
            event_id: "e".into(),
            slate: Slate::new(vec![ItemId(99), ItemId(2)]).unwrap(),
            propensities: vec![1.0, 1.0],
            slate_propensity: None,
            positions: None,
            policy_id: "x".into(),
            model_version: "0".into(),
        };
        let mut fb = Feedback::none(2);
        fb.clicks = vec![true, true];
        let i = Interaction::new(Context::for_user(UserKey::from("u")), d, fb).unwrap();
        p.observe(&i);
        assert_eq!(p.models().for_decision(&UserKey::from("u")).updates(), 1);
    }

    #[test]
    fn out_of_range_settings_are_typed_errors() {
        let c = bandit_catalog();
        let r = clicks_only();
        let bad = LinUcbConfig {
            lambda: 0.0,
            ..LinUcbConfig::default()
        };
        assert!(matches!(
            LinUcb::new(&c, &r, bad),
            Err(LearnError::InvalidConfig {
                field: "lambda",
                ..
            })
        ));
        let bad = LinTsConfig {
            draws: 0,
            ..LinTsConfig::default()
        };
        assert!(matches!(
            LinTs::new(&c, &r, bad),
            Err(LearnError::InvalidConfig { field: "draws", .. })
        ));
    }
}
