//! Calibration: fitting the click and purchase biases to target rates, and the report that
//! compares the simulator's purchases with the real ones.
//!
//! Online Retail records purchases, not impressions, so click-through and conversion levels
//! cannot be read off the data; they are targets of the scenario (`[calibration]`), met under
//! uniformly random slates, a policy-independent yardstick. A shop that logs impressions sets
//! those targets itself (its CTR by position and purchases per click; see
//! [`crate::Scenario::build_from_shop`]), and the report then compares them too. The shape of purchases is compared
//! with the data under *organic browsing*: slates drawn by Plackett-Luce over each user's own
//! click probabilities, the simulator's stand-in for customers finding what they like.

use crate::config::ScenarioConfig;
use crate::shop::{PlannerConfig, ShopEnv};
use crate::world::World;
pub use crate::yardstick::Yardstick;
use crate::yardstick::YardstickAgent;
use metarec_core::{
    Context, Decision, Environment, EventIds, Interaction, ItemId, Observer, RewardFn, rng_for,
    rollout,
};
use serde::Serialize;
use std::collections::HashMap;
use std::sync::Arc;

/// Aggregate behaviour of simulated users under one policy.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Behaviour {
    /// Users simulated.
    pub users: usize,
    /// Slates shown.
    pub slates: u64,
    /// Items shown.
    pub impressions: u64,
    /// Clicks.
    pub clicks: u64,
    /// Purchases.
    pub purchases: u64,
    /// Revenue.
    pub revenue: f64,
    /// Total reward (the scenario's reward function, undiscounted).
    pub reward: f64,
    /// Visits (sessions), over all users.
    pub sessions: u64,
    /// Purchases per catalog item.
    pub purchases_per_item: Vec<f64>,
    /// Unit prices of purchased items.
    pub purchase_prices: Vec<f64>,
    /// Distinct purchased items per user with any purchase.
    pub items_per_buyer: Vec<f64>,
    /// Share of (user, item) pairs bought in two or more visits.
    pub repeat_purchase_rate: f64,
    /// Items shown per display position.
    pub impressions_by_position: Vec<u64>,
    /// Clicks per display position.
    pub clicks_by_position: Vec<u64>,
}

impl Behaviour {
    /// Clicks per impression.
    pub fn ctr(&self) -> f64 {
        self.clicks as f64 / self.impressions.max(1) as f64
    }

    /// Purchases per click.
    pub fn cvr(&self) -> f64 {
        self.purchases as f64 / self.clicks.max(1) as f64
    }

    /// Slates per visit.
    pub fn session_length(&self) -> f64 {
        self.slates as f64 / self.sessions.max(1) as f64
    }

    /// Clicks per impression at each display position.
    pub fn ctr_by_position(&self) -> Vec<f64> {
        self.clicks_by_position
            .iter()
            .zip(&self.impressions_by_position)
            .map(|(&c, &n)| c as f64 / n.max(1) as f64)
            .collect()
    }
}

/// Simulates `users` users (numbers `first..first + users`) under a yardstick policy.
pub fn simulate(
    env: &mut ShopEnv,
    policy: Yardstick,
    first: u64,
    users: usize,
    seed: u64,
) -> Behaviour {
    let reward = env.config().reward;
    let mut agent = YardstickAgent::new(policy, env.world(), reward, PlannerConfig::default());
    let mut rng = rng_for(seed, 0xca1);
    let mut watch = Watch {
        prices: env.world().prices.clone(),
        reward,
        b: Behaviour {
            users,
            purchases_per_item: vec![0.0; env.catalog().len()],
            ..Behaviour::default()
        },
        pair_visits: HashMap::new(),
        bought: Vec::new(),
        session: 0,
        user_number: 0,
    };
    let range = first..first + users as u64;
    rollout(env, &mut agent, range, &mut rng, &mut watch, EventIds::None)
        .expect("yardstick slates are distinct and certain");
    let mut b = watch.b;
    let repeat = watch.pair_visits.values().filter(|(_, n)| *n >= 2).count();
    b.repeat_purchase_rate = repeat as f64 / watch.pair_visits.len().max(1) as f64;
    b
}

/// Counts what simulated users do under a yardstick.
struct Watch {
    prices: Vec<f64>,
    reward: RewardFn,
    b: Behaviour,
    /// Per (user, item) bought: the last visit it was bought in, and in how many visits.
    pair_visits: HashMap<(u64, u32), (u32, u32)>,
    bought: Vec<ItemId>,
    session: u32,
    user_number: u64,
}

impl Observer<ShopEnv> for Watch {
    fn start_user(&mut self, user: u64, _context: &Context) {
        self.user_number = user;
        self.bought.clear();
        self.b.sessions += 1;
        self.session = 0;
    }

    fn decided(&mut self, _env: &ShopEnv, _t: usize, context: &Context, _decision: &Decision) {
        if context.session.session != self.session {
            self.session = context.session.session;
            self.b.sessions += 1;
        }
    }

    fn stepped(&mut self, _t: usize, interaction: &Interaction, _last: bool) {
        let (b, feedback) = (&mut self.b, &interaction.feedback);
        b.slates += 1;
        b.impressions += interaction.decision.slate.len() as u64;
        b.clicks += feedback.click_count() as u64;
        b.reward += self.reward.reward(feedback);
        for k in 0..interaction.decision.slate.len() {
            let p = interaction.decision.position(k) as usize;
            if b.impressions_by_position.len() <= p {
                b.impressions_by_position.resize(p + 1, 0);
                b.clicks_by_position.resize(p + 1, 0);
            }
            b.impressions_by_position[p] += 1;
            b.clicks_by_position[p] += u64::from(feedback.clicks[k]);
        }
        for (k, item) in interaction.decision.slate.items().iter().enumerate() {
            if feedback.purchases[k] {
                b.purchases += 1;
                b.revenue += feedback.revenue[k];
                b.purchases_per_item[item.index()] += 1.0;
                b.purchase_prices.push(self.prices[item.index()]);
                if !self.bought.contains(item) {
                    self.bought.push(*item);
                }
                let e = self
                    .pair_visits
                    .entry((self.user_number, item.0))
                    .or_insert((u32::MAX, 0));
                if e.0 != interaction.context.session.session {
                    e.0 = interaction.context.session.session;
                    e.1 += 1;
                }
            }
        }
    }

    fn end_user(&mut self, _user: u64, _slates: usize) {
        if !self.bought.is_empty() {
            self.b.items_per_buyer.push(self.bought.len() as f64);
        }
    }
}

/// The result of fitting the biases.
#[derive(Debug, Clone, Serialize)]
pub struct Fitted {
    /// The fitted click bias.
    pub click_bias: f64,
    /// The fitted purchase bias.
    pub purchase_bias: f64,
    /// Random-policy CTR reached.
    pub ctr: f64,
    /// Random-policy CVR reached.
    pub cvr: f64,
}

/// Bisection for the value of `set` at which `measure` reaches `target`, assuming `measure`
/// increases with the parameter.
fn bisect(mut lo: f64, mut hi: f64, target: f64, mut measure: impl FnMut(f64) -> f64) -> f64 {
    for _ in 0..30 {
        let mid = 0.5 * (lo + hi);
        if measure(mid) < target {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    0.5 * (lo + hi)
}

/// Fits `choice.click_bias` and then `choice.purchase_bias` so that uniformly random slates
/// reach the scenario's target CTR and CVR. Users are the same at every trial (common random
/// numbers), which makes the rates monotone enough in each bias for bisection.
pub fn fit_biases(world: &Arc<World>, config: &ScenarioConfig) -> Fitted {
    let users = config.calibration.users;
    let mut cfg = config.clone();
    let click_bias = bisect(-20.0, 10.0, config.calibration.ctr, |b| {
        cfg.choice.click_bias = b;
        simulate(
            &mut ShopEnv::new(world.clone(), &cfg),
            Yardstick::Random,
            0,
            users,
            cfg.seed,
        )
        .ctr()
    });
    cfg.choice.click_bias = click_bias;
    let purchase_bias = bisect(-20.0, 10.0, config.calibration.cvr, |b| {
        cfg.choice.purchase_bias = b;
        simulate(
            &mut ShopEnv::new(world.clone(), &cfg),
            Yardstick::Random,
            0,
            users,
            cfg.seed,
        )
        .cvr()
    });
    cfg.choice.purchase_bias = purchase_bias;
    let check = simulate(
        &mut ShopEnv::new(world.clone(), &cfg),
        Yardstick::Random,
        0,
        users,
        cfg.seed,
    );
    Fitted {
        click_bias,
        purchase_bias,
        ctr: check.ctr(),
        cvr: check.cvr(),
    }
}

/// One yardstick's rates in the calibration report.
#[derive(Debug, Clone, Serialize)]
pub struct YardstickRow {
    /// The policy.
    pub policy: Yardstick,
    /// Clicks per shown item.
    pub ctr: f64,
    /// Purchases per click.
    pub cvr: f64,
    /// Slates per visit.
    pub visit_length: f64,
    /// Visits per user.
    pub visits_per_user: f64,
    /// Purchases per user.
    pub purchases_per_user: f64,
    /// Reward per user (the scenario's reward function).
    pub reward_per_user: f64,
}

/// Simulated against real: one comparison.
#[derive(Debug, Clone, Serialize)]
pub struct Comparison {
    /// What is compared.
    pub what: String,
    /// The value in the real data.
    pub real: f64,
    /// The value in the simulation (organic browsing).
    pub simulated: f64,
}

/// Everything `metarec sim calibrate` prints.
#[derive(Debug, Clone, Serialize)]
pub struct CalibrationReport {
    /// The scenario.
    pub scenario: String,
    /// Items in the catalog.
    pub items: usize,
    /// Users simulated per yardstick.
    pub users: usize,
    /// The fitted biases, when calibration ran.
    pub fitted: Option<Fitted>,
    /// Target CTR and CVR.
    pub targets: (f64, f64),
    /// Rates under each yardstick.
    pub yardsticks: Vec<YardstickRow>,
    /// Real against simulated purchases.
    pub comparisons: Vec<Comparison>,
    /// The shop the world was fitted to (absent for Online Retail).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shop: Option<String>,
    /// What the real facts of a shop count (`purchases`, `clicks`...; empty for Online Retail).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub signal: String,
    /// Real against simulated clicks on shown items, for a shop that logged impressions: the
    /// shop's logged rankings against random slates, the calibration's yardstick.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub impressions: Vec<Comparison>,
}

fn share_of_top(counts: &[f64], fraction: f64) -> f64 {
    let mut sorted = counts.to_vec();
    sorted.sort_by(|a, b| b.total_cmp(a));
    let total: f64 = sorted.iter().sum();
    let k = ((sorted.len() as f64 * fraction).ceil() as usize).max(1);
    sorted[..k.min(sorted.len())].iter().sum::<f64>() / total.max(1e-12)
}

/// Simulates the yardsticks on users the calibration did not use and compares organic browsing
/// with the real purchases.
pub fn report(scenario: &crate::Scenario, users: usize) -> CalibrationReport {
    use metarec_data::stats::{gini, quantiles};
    // Users numbered from one million on: disjoint from the users the biases were fitted on.
    let first = 1_000_000;
    let mut rows = Vec::new();
    let mut browse_behaviour = None;
    let mut random_behaviour = None;
    for y in [
        Yardstick::Random,
        Yardstick::Bestsellers,
        Yardstick::Browse,
        Yardstick::Oracle,
        Yardstick::Planner,
    ] {
        let b = simulate(&mut scenario.env(), y, first, users, scenario.config.seed);
        rows.push(YardstickRow {
            policy: y,
            ctr: b.ctr(),
            cvr: b.cvr(),
            visit_length: b.session_length(),
            visits_per_user: b.sessions as f64 / users.max(1) as f64,
            purchases_per_user: b.purchases as f64 / users.max(1) as f64,
            reward_per_user: b.reward / users.max(1) as f64,
        });
        if y == Yardstick::Browse {
            browse_behaviour = Some(b);
        } else if y == Yardstick::Random {
            random_behaviour = Some(b);
        }
    }
    let sim = browse_behaviour.unwrap_or_default();
    let real = &scenario.world.real;
    let mut comparisons = Vec::new();
    let mut push = |what: String, real: f64, simulated: f64| {
        comparisons.push(Comparison {
            what,
            real,
            simulated,
        })
    };
    for f in [0.01, 0.05, 0.1, 0.2, 0.5] {
        push(
            format!("share of purchases in the top {}% of items", f * 100.0),
            share_of_top(&real.purchases_per_item, f),
            share_of_top(&sim.purchases_per_item, f),
        );
    }
    push(
        "popularity Gini over items".into(),
        gini(&real.purchases_per_item),
        gini(&sim.purchases_per_item),
    );
    let probs = [0.1, 0.25, 0.5, 0.75, 0.9];
    let rq = quantiles(&real.purchase_prices, &probs);
    let sq = quantiles(&sim.purchase_prices, &probs);
    for ((p, r), (_, s)) in rq.iter().zip(&sq) {
        let what = if real.currency.is_empty() {
            format!("purchase price p{}", p * 100.0)
        } else {
            format!("purchase price p{} ({})", p * 100.0, real.currency)
        };
        push(what, *r, *s);
    }
    let ri = quantiles(&real.items_per_customer, &[0.5, 0.9]);
    let si = quantiles(&sim.items_per_buyer, &[0.5, 0.9]);
    for ((p, r), (_, s)) in ri.iter().zip(&si) {
        push(format!("distinct items per buyer p{}", p * 100.0), *r, *s);
    }
    push(
        "repeat-purchase rate (pairs bought on 2+ occasions)".into(),
        real.repeat_purchase_rate,
        sim.repeat_purchase_rate,
    );
    let mut impressions = Vec::new();
    if let (Some(facts), Some(sim)) = (&real.impressions, &random_behaviour) {
        let real_ctr = facts.ctr_by_position();
        let sim_ctr = sim.ctr_by_position();
        for (k, r) in real_ctr
            .iter()
            .enumerate()
            .take(scenario.config.choice.slate_size)
        {
            impressions.push(Comparison {
                what: format!("CTR at position {}", k + 1),
                real: *r,
                simulated: sim_ctr.get(k).copied().unwrap_or(0.0),
            });
        }
        impressions.push(Comparison {
            what: "purchases per click".into(),
            real: facts.cvr(),
            simulated: sim.cvr(),
        });
    }
    // Online Retail's facts keep their own wording, so its report reads as it always did.
    let shop = real.data.starts_with("shop").then(|| real.data.clone());
    CalibrationReport {
        signal: if shop.is_some() {
            real.signal.clone()
        } else {
            String::new()
        },
        shop,
        impressions,
        scenario: scenario.config.name.clone(),
        items: scenario.world.catalog.len(),
        users,
        fitted: scenario.calibration.clone(),
        targets: (
            scenario.config.calibration.ctr,
            scenario.config.calibration.cvr,
        ),
        yardsticks: rows,
        comparisons,
    }
}

impl std::fmt::Display for CalibrationReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "calibration of scenario `{}` ({} items, {} simulated users per policy)",
            self.scenario, self.items, self.users
        )?;
        match &self.fitted {
            Some(fit) => writeln!(
                f,
                "fitted click_bias {:.4}, purchase_bias {:.4}: random slates reach CTR {:.4} (target {}) and CVR {:.4} (target {})",
                fit.click_bias, fit.purchase_bias, fit.ctr, self.targets.0, fit.cvr, self.targets.1
            )?,
            None => writeln!(f, "biases as configured (calibration.fit = false)")?,
        }
        writeln!(f)?;
        writeln!(
            f,
            "{:<12} {:>8} {:>8} {:>13} {:>12} {:>15} {:>12}",
            "policy", "CTR", "CVR", "slates/visit", "visits/user", "purchases/user", "reward/user"
        )?;
        for r in &self.yardsticks {
            let name = r.policy.name();
            writeln!(
                f,
                "{:<12} {:>8.4} {:>8.4} {:>13.2} {:>12.2} {:>15.3} {:>12.3}",
                name,
                r.ctr,
                r.cvr,
                r.visit_length,
                r.visits_per_user,
                r.purchases_per_user,
                r.reward_per_user
            )?;
        }
        writeln!(f)?;
        match &self.shop {
            None => writeln!(
                f,
                "real purchases (Online Retail, this catalog) against organic browsing in the simulator"
            )?,
            Some(shop) => writeln!(
                f,
                "real {} ({shop}, this catalog) against organic browsing in the simulator",
                self.signal
            )?,
        }
        let w = self
            .comparisons
            .iter()
            .chain(&self.impressions)
            .map(|c| c.what.len())
            .max()
            .unwrap_or(10);
        writeln!(f, "{:<w$} {:>10} {:>10}", "", "real", "simulated")?;
        for c in &self.comparisons {
            writeln!(f, "{:<w$} {:>10.3} {:>10.3}", c.what, c.real, c.simulated)?;
        }
        if !self.impressions.is_empty() {
            writeln!(f)?;
            writeln!(
                f,
                "clicks on shown items: the shop's logged rankings against random slates in the simulator"
            )?;
            writeln!(f, "{:<w$} {:>10} {:>10}", "", "real", "simulated")?;
            for c in &self.impressions {
                writeln!(f, "{:<w$} {:>10.4} {:>10.4}", c.what, c.real, c.simulated)?;
            }
        }
        Ok(())
    }
}
