//! [`Yardstick`]: the simulator's own reference policies, and [`YardstickAgent`], which plays
//! them in a [`metarec_core::rollout()`].
//!
//! Each knows something a real policy cannot: the oracle and the planner read the user's hidden
//! state, organic browsing the user's click probabilities, and best sellers the world's true
//! popularity. They bound and anchor what learned policies reach; the calibration report and the
//! arena play the same agents.

use crate::shop::{PlannerConfig, ShopEnv};
use crate::world::World;
use metarec_core::explore::{softmax, top_k, uniform};
use metarec_core::{
    Agent, Context, Environment, Interaction, ItemId, Oracle, RewardFn, Rng, SlateChoice,
};
use rand::Rng as _;
use serde::Serialize;

/// The simulator's reference policies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Yardstick {
    /// Uniformly random slates.
    Random,
    /// The same best sellers (by the world's true popularity) for everyone. Unlike the
    /// `popularity` baseline, which counts clicks and purchases online, it learns nothing.
    Bestsellers,
    /// Plackett-Luce over the user's own click probabilities (organic browsing).
    Browse,
    /// The best slate for the user's current state (hidden knowledge).
    Oracle,
    /// The far-sighted planner (hidden knowledge, looks ahead at fatigue).
    Planner,
}

impl Yardstick {
    /// The yardsticks that read the simulator, by name (`random` is not among them: the
    /// baselines' `random` is the same policy).
    pub const NAMED: [Yardstick; 4] = [
        Yardstick::Bestsellers,
        Yardstick::Browse,
        Yardstick::Oracle,
        Yardstick::Planner,
    ];

    /// The policy's name.
    pub fn name(self) -> &'static str {
        match self {
            Yardstick::Random => "random",
            Yardstick::Bestsellers => "bestsellers",
            Yardstick::Browse => "browse",
            Yardstick::Oracle => "oracle",
            Yardstick::Planner => "planner",
        }
    }

    /// The yardstick of [`Yardstick::NAMED`] called `name`.
    pub fn parse(name: &str) -> Option<Yardstick> {
        Yardstick::NAMED.into_iter().find(|y| y.name() == name)
    }
}

/// A yardstick as an [`Agent`] of the simulated shop.
#[derive(Debug, Clone)]
pub struct YardstickAgent {
    kind: Yardstick,
    reward: RewardFn,
    planner: PlannerConfig,
    candidates: Vec<ItemId>,
    popularity: Vec<f64>,
    bestsellers: Vec<ItemId>,
}

impl YardstickAgent {
    /// The yardstick `kind` in `world`, pricing slates with `reward`; the planner looks ahead
    /// with `planner`.
    pub fn new(kind: Yardstick, world: &World, reward: RewardFn, planner: PlannerConfig) -> Self {
        YardstickAgent {
            kind,
            reward,
            planner,
            candidates: world.catalog.ids().collect(),
            popularity: world.popularity.clone(),
            bestsellers: Vec::new(),
        }
    }
}

/// A deterministic slate (propensity 1 everywhere).
fn certain(items: Vec<ItemId>) -> SlateChoice {
    let n = items.len();
    SlateChoice {
        items,
        propensities: vec![1.0; n],
        slate_propensity: Some(1.0),
    }
}

impl Agent<ShopEnv> for YardstickAgent {
    fn name(&self) -> &str {
        self.kind.name()
    }

    fn start_user(&mut self, _env: &ShopEnv, _context: &Context) {}

    fn decide(&mut self, env: &ShopEnv, context: &Context, k: usize, rng: &mut Rng) -> SlateChoice {
        match self.kind {
            Yardstick::Random => uniform(&self.candidates, k, rng),
            Yardstick::Bestsellers => {
                if self.bestsellers.len() != k.min(self.popularity.len()) {
                    self.bestsellers = top_k(&self.popularity, k)
                        .into_iter()
                        .map(|i| ItemId(i as u32))
                        .collect();
                }
                certain(self.bestsellers.clone())
            }
            Yardstick::Browse => certain(browse(env, context, k, rng)),
            Yardstick::Oracle => certain(env.oracle_slate(&self.reward)),
            Yardstick::Planner => certain(env.planner_slate(&self.reward, &self.planner)),
        }
    }

    fn observe(&mut self, _interaction: &Interaction) {}
}

/// Organic browsing: `k` items drawn without replacement by Gumbel top-k over the user's own
/// click probabilities.
fn browse(env: &ShopEnv, _ctx: &Context, k: usize, rng: &mut Rng) -> Vec<ItemId> {
    let n = env.catalog().len();
    let logits: Vec<f64> = (0..n)
        .map(|i| env.attraction_logit_for_calibration(i))
        .collect();
    let weights = softmax(&logits, 1.0);
    let mut keys: Vec<f64> = weights
        .iter()
        .map(|w| {
            let u: f64 = rng.random::<f64>().max(f64::MIN_POSITIVE);
            w.max(1e-300).ln() - (-u.ln()).ln()
        })
        .collect();
    keys.truncate(n);
    top_k(&keys, k)
        .into_iter()
        .map(|i| ItemId(i as u32))
        .collect()
}
