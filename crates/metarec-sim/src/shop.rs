//! [`ShopEnv`]: the simulated shop, an [`Environment`] over a fitted [`World`].
//!
//! Separate models, as in RecSim: the user model (hidden taste vector, patience, boredom,
//! returns), the item model (hidden vectors, popularity, price, quantity) and the choice model
//! (position-based examination, click from affinity, purchase given click with price
//! sensitivity). Every step draws the same number of uniforms in the same order whatever the
//! slate, so two policies facing user `n` face the same luck (common random numbers).

use crate::config::ScenarioConfig;
use crate::world::World;
use metarec_core::linalg::dot;
use metarec_core::{
    Catalog, Context, Decision, Environment, Feedback, ItemId, Oracle, PastEvent, RewardFn, Rng,
    SessionState, Step, UserKey, rng_for,
};
use rand::Rng as _;
use std::collections::VecDeque;
use std::sync::Arc;

/// Milliseconds of simulated time per slate, and between visits.
const STEP_MS: i64 = 30_000;
const VISIT_MS: i64 = 86_400_000;
/// Simulated time starts the day after the real data ends (2011-12-10 00:00 UTC).
const START_MS: i64 = 1_323_475_200_000;

#[inline]
pub(crate) fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// The probability of examining each position: `choice.examination` when given (later
/// positions take its last value), else `1 / (k + 1)^examination_decay`.
pub(crate) fn examination_curve(config: &ScenarioConfig) -> Vec<f64> {
    let given = &config.choice.examination;
    if !given.is_empty() {
        return (0..config.choice.slate_size)
            .map(|k| examined(given, k))
            .collect();
    }
    (0..config.choice.slate_size)
        .map(|k| 1.0 / ((k + 1) as f64).powf(config.choice.examination_decay))
        .collect()
}

/// The examination probability at `position`; positions past the curve get its last value.
pub(crate) fn examined(curve: &[f64], position: usize) -> f64 {
    curve
        .get(position)
        .copied()
        .unwrap_or_else(|| *curve.last().unwrap_or(&1.0))
}

/// Expected units of one purchase of an item whose typical quantity is `mean`, capped at `cap`.
pub(crate) fn expected_quantity(mean: f64, cap: u32) -> f64 {
    let p = 1.0 / mean;
    (1.0 - (1.0 - p).powf(f64::from(cap))) / p
}

/// The hidden state of the current user. Never leaves this module.
struct UserState {
    key: UserKey,
    country_token: String,
    vector: Vec<f64>,
    patience: f64,
    boredom: Vec<f64>,
    shown: Vec<ItemId>,
    session: u32,
    step: u32,
    history: VecDeque<PastEvent>,
    /// Events this visit has shown (the history may keep fewer).
    visit_events: usize,
    session_clicks: u32,
    session_purchases: u32,
}

/// The simulated shop.
pub struct ShopEnv {
    world: Arc<World>,
    config: ScenarioConfig,
    examination: Vec<f64>,
    user: Option<UserState>,
    rng: Rng,
}

impl ShopEnv {
    /// A shop over a fitted world with the scenario's choice, session and return parameters.
    pub fn new(world: Arc<World>, config: &ScenarioConfig) -> Self {
        let examination = examination_curve(config);
        ShopEnv {
            world,
            config: config.clone(),
            examination,
            user: None,
            rng: rng_for(config.seed, 0),
        }
    }

    /// The fitted world.
    pub fn world(&self) -> &World {
        &self.world
    }

    /// The scenario.
    pub fn config(&self) -> &ScenarioConfig {
        &self.config
    }

    /// The current user's hidden vector, boredom and shown items, for the informed policy's
    /// tests to check its replay against.
    #[cfg(test)]
    pub(crate) fn hidden_state(&self) -> (&[f64], &[f64], &[ItemId]) {
        let u = self.user();
        (&u.vector, &u.boredom, &u.shown)
    }

    fn user(&self) -> &UserState {
        self.user
            .as_ref()
            .expect("Environment::reset must be called before the first step")
    }

    /// Probability that the current user finds item `i` attractive (clicks it if examined).
    fn attraction(&self, u: &UserState, i: usize) -> f64 {
        let c = &self.config.choice;
        let s = &self.config.session;
        let mut logit = c.affinity_scale * dot(&u.vector, self.world.item_vector(i))
            + c.popularity_weight * self.world.popularity[i]
            + c.click_bias;
        if s.fatigue {
            let similarity = dot(&u.boredom, self.world.item_direction(i)).max(0.0);
            logit -= s.boredom_weight * similarity;
            if u.shown.contains(&ItemId(i as u32)) {
                logit -= s.repeat_penalty;
            }
        }
        sigmoid(logit)
    }

    /// The current user's click logit for item `i`, for the calibration's organic-browsing
    /// yardstick. Hidden state: policies never get a `ShopEnv`, only contexts.
    pub fn attraction_logit_for_calibration(&self, i: usize) -> f64 {
        let p = self.attraction(self.user(), i).clamp(1e-12, 1.0 - 1e-12);
        (p / (1.0 - p)).ln()
    }

    /// Probability of a purchase given a click on item `i`.
    fn purchase_probability(&self, u: &UserState, i: usize) -> f64 {
        let c = &self.config.choice;
        let price_term = (self.world.prices[i] / self.world.median_price).ln();
        sigmoid(
            c.purchase_bias + c.purchase_affinity * dot(&u.vector, self.world.item_vector(i))
                - c.price_sensitivity * price_term,
        )
    }

    /// Expected units of one purchase: a geometric count with the item's typical quantity as
    /// mean, capped at `max_quantity`: `E[min(G, cap)] = (1 - (1 - p)^cap) / p`, `p = 1 / mean`.
    fn expected_quantity(&self, i: usize) -> f64 {
        expected_quantity(self.world.quantities[i], self.config.choice.max_quantity)
    }

    fn draw_quantity(&self, i: usize, u: f64) -> u32 {
        let mean = self.world.quantities[i];
        let cap = self.config.choice.max_quantity;
        if mean <= 1.0 {
            return 1;
        }
        let q = 1.0 + ((1.0 - u).max(f64::MIN_POSITIVE).ln() / (1.0 - 1.0 / mean).ln()).floor();
        (q as u32).clamp(1, cap)
    }

    /// Expected reward of showing item `i` at examination probability `e`.
    fn item_value(&self, u: &UserState, i: usize, e: f64, reward: &RewardFn) -> f64 {
        let click = e * self.attraction(u, i);
        let buy = self.purchase_probability(u, i);
        let revenue = self.world.prices[i] * self.expected_quantity(i);
        click
            * (reward.click_weight()
                + buy * (reward.purchase_weight() + reward.revenue_weight() * revenue))
    }

    fn context(&self) -> Context {
        let u = self.user();
        Context {
            user: u.key.clone(),
            timestamp_ms: Some(
                START_MS + i64::from(u.session) * VISIT_MS + i64::from(u.step) * STEP_MS,
            ),
            features: Vec::new(),
            tokens: vec![u.country_token.clone()],
            session: SessionState {
                session: u.session,
                step: u.step,
                history: u.history.iter().copied().collect(),
                visit_events: Some(
                    u32::try_from(u.visit_events.min(u.history.len())).unwrap_or(u32::MAX),
                ),
            },
            candidates: Vec::new(),
        }
    }
}

/// Settings of the far-sighted planner ([`ShopEnv::planner_slate`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PlannerConfig {
    /// Slates looked ahead, the current one included.
    pub horizon: usize,
    /// Discount of later slates' expected rewards.
    pub gamma: f64,
    /// Diversity weights tried for the first slate (0 is the myopic slate).
    pub diversity: [f64; 4],
}

impl Default for PlannerConfig {
    fn default() -> Self {
        PlannerConfig {
            horizon: 4,
            gamma: 0.9,
            diversity: [0.0, 0.5, 1.0, 2.0],
        }
    }
}

impl ShopEnv {
    /// The myopic value of every item for a user state with boredom `z` and shown set `shown`.
    fn values_with(
        &self,
        u: &UserState,
        boredom: &[f64],
        shown: &[ItemId],
        reward: &RewardFn,
    ) -> Vec<f64> {
        let c = &self.config.choice;
        let s = &self.config.session;
        (0..self.world.prices.len())
            .map(|i| {
                let mut logit = c.affinity_scale * dot(&u.vector, self.world.item_vector(i))
                    + c.popularity_weight * self.world.popularity[i]
                    + c.click_bias;
                if s.fatigue {
                    logit -= s.boredom_weight * dot(boredom, self.world.item_direction(i)).max(0.0);
                    if shown.contains(&ItemId(i as u32)) {
                        logit -= s.repeat_penalty;
                    }
                }
                let buy = self.purchase_probability(u, i);
                let revenue = self.world.prices[i] * self.expected_quantity(i);
                sigmoid(logit)
                    * (reward.click_weight()
                        + buy * (reward.purchase_weight() + reward.revenue_weight() * revenue))
            })
            .collect()
    }

    /// Expected reward of a slate given item values (examination times value).
    fn slate_value(&self, slate: &[usize], values: &[f64]) -> f64 {
        slate
            .iter()
            .enumerate()
            .map(|(k, &i)| self.examination.get(k).copied().unwrap_or(0.0) * values[i])
            .sum()
    }

    /// A slate chosen greedily by value minus `diversity` times the similarity to items already
    /// placed (maximal marginal relevance); `diversity = 0` is the myopic top-K.
    fn diverse_slate(&self, values: &[f64], diversity: f64) -> Vec<usize> {
        let k = self.slate_size().min(values.len());
        if diversity == 0.0 {
            return metarec_core::explore::top_k(values, k);
        }
        // Only the best few dozen items can enter a slate of a handful; restricting the search
        // keeps the planner fast on large catalogs.
        let pool = metarec_core::explore::top_k(values, (8 * k).max(32));
        let mut slate: Vec<usize> = Vec::with_capacity(k);
        while slate.len() < k {
            let mut best: Option<(usize, f64)> = None;
            for &i in &pool {
                if slate.contains(&i) {
                    continue;
                }
                let redundancy = slate
                    .iter()
                    .map(|&j| {
                        dot(self.world.item_direction(i), self.world.item_direction(j)).max(0.0)
                    })
                    .fold(0.0, f64::max);
                let score = values[i] * (1.0 - diversity * redundancy).max(0.0) + 1e-12 * values[i];
                if best.is_none_or(|(_, b)| score > b) {
                    best = Some((i, score));
                }
            }
            match best {
                Some((i, _)) => slate.push(i),
                None => break,
            }
        }
        slate
    }

    /// Boredom after showing `slate` from state `boredom`.
    fn bored_after(&self, boredom: &[f64], slate: &[usize]) -> Vec<f64> {
        let decay = self.config.session.boredom_decay;
        let w = 1.0 / slate.len().max(1) as f64;
        let mut z: Vec<f64> = boredom.iter().map(|b| b * decay).collect();
        for &i in slate {
            for (zk, d) in z.iter_mut().zip(self.world.item_direction(i)) {
                *zk += w * d;
            }
        }
        z
    }

    /// The far-sighted planner: tries a few first slates (the myopic one and more diverse ones),
    /// rolls each out for `horizon` slates under the expected boredom dynamics with myopic
    /// continuation, and keeps the first slate of the best discounted expected return. Hidden
    /// knowledge, like the oracle: for the arena's comparison of myopic and far-sighted play.
    pub fn planner_slate(&self, reward: &RewardFn, planner: &PlannerConfig) -> Vec<ItemId> {
        let u = self.user();
        let values = self.values_with(u, &u.boredom, &u.shown, reward);
        let mut best: Option<(Vec<usize>, f64)> = None;
        for &diversity in &planner.diversity {
            let first = self.diverse_slate(&values, diversity);
            let mut total = self.slate_value(&first, &values);
            let mut boredom = self.bored_after(&u.boredom, &first);
            let mut shown: Vec<ItemId> = u.shown.clone();
            shown.extend(first.iter().map(|&i| ItemId(i as u32)));
            let mut discount = 1.0;
            for _ in 1..planner.horizon {
                discount *= planner.gamma;
                let v = self.values_with(u, &boredom, &shown, reward);
                let next = metarec_core::explore::top_k(&v, self.slate_size());
                total += discount * self.slate_value(&next, &v);
                boredom = self.bored_after(&boredom, &next);
                shown.extend(next.iter().map(|&i| ItemId(i as u32)));
            }
            if best.as_ref().is_none_or(|(_, b)| total > *b) {
                best = Some((first, total));
            }
        }
        best.map(|(s, _)| s.into_iter().map(|i| ItemId(i as u32)).collect())
            .unwrap_or_default()
    }
}

impl Environment for ShopEnv {
    fn catalog(&self) -> &Catalog {
        &self.world.catalog
    }

    fn slate_size(&self) -> usize {
        self.config.choice.slate_size
    }

    fn reset(&mut self, user: u64) -> Context {
        // The user's traits come from one stream and their reactions from another, so the same
        // user number gives the same person and the same luck under any policy.
        let mut draw_rng = rng_for(self.config.seed, user.wrapping_mul(2).wrapping_add(1));
        let drawn = self
            .world
            .population
            .draw(&self.config.population, &mut draw_rng);
        self.rng = rng_for(self.config.seed, user.wrapping_mul(2).wrapping_add(2));
        self.user = Some(UserState {
            key: UserKey(format!("sim-{user}")),
            country_token: self.world.population.token(&drawn.country),
            vector: drawn.vector,
            patience: self.config.session.patience,
            boredom: vec![0.0; self.world.dim],
            shown: Vec::new(),
            session: 0,
            step: 0,
            history: VecDeque::with_capacity(self.config.session.history_length + 8),
            visit_events: 0,
            session_clicks: 0,
            session_purchases: 0,
        });
        self.context()
    }

    fn step(&mut self, decision: &Decision) -> Step {
        let (feedback, left) = self.step_feedback(decision);
        let next = if left { None } else { Some(self.context()) };
        Step { feedback, next }
    }
}

/// What a policy may observe of the current user, borrowed from the environment: the parts of
/// their [`Context`] that change during a visit, without building one (the Python package's
/// vectorised environment reads these for thousands of users per call).
#[derive(Debug, Clone, Copy)]
pub struct Observed<'a> {
    /// The latest events, oldest first (the context's history).
    pub history: &'a VecDeque<PastEvent>,
    /// Earlier visits.
    pub session: u32,
    /// Slates already shown in this visit.
    pub step: u32,
    /// The user's group token (`country=France`).
    pub group_token: &'a str,
}

impl ShopEnv {
    /// The current user as a policy may see them, or `None` before the first reset.
    pub fn observed(&self) -> Option<Observed<'_>> {
        self.user.as_ref().map(|u| Observed {
            history: &u.history,
            session: u.session,
            step: u.step,
            group_token: &u.country_token,
        })
    }

    /// The current user's context, or `None` before the first reset.
    pub fn current_context(&self) -> Option<Context> {
        self.user.as_ref().map(|_| self.context())
    }

    /// [`Environment::step`] without building the next context: the feedback, and whether the
    /// user left.
    pub fn step_feedback(&mut self, decision: &Decision) -> (Feedback, bool) {
        let n = decision.slate.len();
        let mut feedback = Feedback::none(n);
        let mut user = self.user.take().expect("reset before step");
        for (k, &item) in decision.slate.items().iter().enumerate() {
            let i = item.index();
            // Three uniforms per position, always drawn, to keep streams aligned across policies.
            let (u_click, u_buy, u_qty): (f64, f64, f64) =
                (self.rng.random(), self.rng.random(), self.rng.random());
            let e = examined(&self.examination, decision.position(k) as usize);
            if i >= self.world.prices.len() {
                continue; // An unknown item is never clicked.
            }
            if u_click < e * self.attraction(&user, i) {
                feedback.clicks[k] = true;
                if u_buy < self.purchase_probability(&user, i) {
                    feedback.purchases[k] = true;
                    let q = self.draw_quantity(i, u_qty);
                    feedback.revenue[k] = self.world.prices[i] * f64::from(q);
                }
            }
        }
        let (u_leave, u_return): (f64, f64) = (self.rng.random(), self.rng.random());

        // Boredom: recently shown directions accumulate and decay.
        let s = &self.config.session;
        for b in user.boredom.iter_mut() {
            *b *= s.boredom_decay;
        }
        let weight = 1.0 / n.max(1) as f64;
        for &item in decision.slate.items() {
            if item.index() < self.world.prices.len() {
                for (b, d) in user
                    .boredom
                    .iter_mut()
                    .zip(self.world.item_direction(item.index()))
                {
                    *b += weight * d;
                }
                if !user.shown.contains(&item) {
                    user.shown.push(item);
                }
            }
        }
        for k in 0..n {
            user.history.push_back(PastEvent {
                item: decision.slate.items()[k],
                click: feedback.clicks[k],
                purchase: feedback.purchases[k],
            });
        }
        user.visit_events += n;
        while user.history.len() > s.history_length {
            user.history.pop_front();
        }
        let clicks = feedback.click_count() as u32;
        user.session_clicks += clicks;
        user.session_purchases += feedback.purchase_count() as u32;
        if clicks == 0 {
            user.patience -= s.no_click_cost;
        } else {
            user.patience = (user.patience + s.click_gain * f64::from(clicks)).min(s.patience);
        }
        user.step += 1;
        let session_over =
            user.patience <= 0.0 || u_leave < s.leave_probability || user.step >= s.max_steps;
        let mut gone = false;
        if session_over {
            let r = &self.config.returns;
            let p_return = sigmoid(
                r.base
                    + r.per_click * f64::from(user.session_clicks)
                    + r.per_purchase * f64::from(user.session_purchases),
            );
            if user.session + 1 < r.max_sessions && u_return < p_return {
                user.session += 1;
                user.step = 0;
                user.patience = s.patience;
                user.shown.clear();
                user.visit_events = 0;
                user.session_clicks = 0;
                user.session_purchases = 0;
                for b in user.boredom.iter_mut() {
                    *b *= r.boredom_carryover;
                }
            } else {
                gone = true;
            }
        }
        self.user = Some(user);
        (feedback, gone)
    }
}

impl Oracle for ShopEnv {
    fn expected_reward(&self, slate: &[ItemId], reward: &RewardFn) -> f64 {
        let u = self.user();
        slate
            .iter()
            .enumerate()
            .filter(|(_, item)| item.index() < self.world.prices.len())
            .map(|(k, item)| {
                let e = self.examination.get(k).copied().unwrap_or(0.0);
                self.item_value(u, item.index(), e, reward)
            })
            .sum()
    }

    fn item_values(&self, reward: &RewardFn) -> Vec<f64> {
        // The same values as the default's one-item slates, with the user looked up once.
        let u = self.user();
        let e = self.examination.first().copied().unwrap_or(0.0);
        (0..self.world.prices.len())
            .map(|i| self.item_value(u, i, e, reward))
            .collect()
    }

    fn oracle_slate(&self, reward: &RewardFn) -> Vec<ItemId> {
        // Examination falls with position and every item's value is linear in it, so the best
        // slate puts the K most valuable items in decreasing order (rearrangement inequality).
        let u = self.user();
        let values: Vec<f64> = (0..self.world.prices.len())
            .map(|i| self.item_value(u, i, 1.0, reward))
            .collect();
        metarec_core::explore::top_k(&values, self.slate_size())
            .into_iter()
            .map(|i| ItemId(i as u32))
            .collect()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::world::World;
    use metarec_core::{Catalog, Item, Slate};
    use metarec_data::LoadReport;
    use metarec_data::online_retail::{Customer, OnlineRetail, Purchase};

    /// A shop of 6 products and 40 customers in two taste groups and two countries.
    pub(crate) fn tiny_data() -> OnlineRetail {
        let mut catalog = Catalog::new(Vec::new());
        for i in 0..6 {
            catalog
                .push(Item {
                    key: format!("P{i}"),
                    title: Some(format!("product {i}")),
                    price: Some(1.0 + i as f32),
                    ..Item::default()
                })
                .unwrap();
        }
        let mut customers = Vec::new();
        let mut purchases = Vec::new();
        for c in 0..40u32 {
            customers.push(Customer {
                key: UserKey(format!("{c}")),
                country: if c % 4 == 0 {
                    "France"
                } else {
                    "United Kingdom"
                }
                .into(),
            });
            let group = c % 2;
            for i in 0..6u32 {
                if i % 2 == group && (c + i) % 5 != 0 {
                    purchases.push(Purchase {
                        customer: c,
                        item: ItemId(i),
                        invoice: c * 10 + i,
                        timestamp_ms: 0,
                        quantity: 1 + i,
                        unit_price: 1.0 + i as f32,
                    });
                }
            }
        }
        OnlineRetail {
            catalog,
            customers,
            purchases,
            report: LoadReport::default(),
        }
    }

    /// The scenario of [`tiny`]: the six products, slates of 2, 2 latent dimensions.
    pub(crate) fn tiny_config(fatigue: bool) -> ScenarioConfig {
        let mut config = ScenarioConfig::default();
        config.catalog.items = 6;
        config.choice.slate_size = 2;
        config.fit.dim = 2;
        config.observed.dim = 2;
        config.population.min_country_customers = 5;
        config.session.fatigue = fatigue;
        config.calibration.fit = false;
        config
    }

    pub(crate) fn tiny(fatigue: bool) -> (ShopEnv, ScenarioConfig) {
        let config = tiny_config(fatigue);
        let world = Arc::new(World::build(&tiny_data(), &config).unwrap());
        (ShopEnv::new(world, &config), config)
    }

    #[test]
    fn title_embeddings_become_principal_component_features() {
        let mut config = ScenarioConfig::default();
        config.catalog.items = 6;
        config.choice.slate_size = 2;
        config.fit.dim = 2;
        config.observed.dim = 2;
        config.observed.text_dims = 2;
        config.population.min_country_customers = 5;
        config.calibration.fit = false;
        let data = tiny_data();
        // Without embeddings the scenario is refused with a reason.
        let err = World::build(&data, &config).unwrap_err().to_string();
        assert!(err.contains("text_dims"), "{err}");
        // Wrong length: refused too.
        let short = vec![0.0f32; 5];
        assert!(World::build_with_text(&data, &config, Some((&short, 3))).is_err());
        // Three-dimensional "embeddings" where item i points along i % 3.
        let values: Vec<f32> = (0..6)
            .flat_map(|i| (0..3).map(move |k| if k == i % 3 { 1.0 } else { 0.0 }))
            .collect();
        let world = World::build_with_text(&data, &config, Some((&values, 3))).unwrap();
        let names = world.catalog.features().names().to_vec();
        assert_eq!(&names[names.len() - 2..], ["text_0", "text_1"]);
        // Items with the same embedding get the same text features; others differ.
        let text = |id: u32| {
            let row = world.catalog.features().row(id as usize).to_vec();
            row[row.len() - 2..].to_vec()
        };
        let key_of = |id: u32| world.catalog.key(ItemId(id)).unwrap().to_owned();
        for a in 0..6u32 {
            for b in 0..6u32 {
                let (ka, kb) = (key_of(a), key_of(b));
                let same =
                    ka[1..].parse::<u32>().unwrap() % 3 == kb[1..].parse::<u32>().unwrap() % 3;
                let close = text(a)
                    .iter()
                    .zip(text(b))
                    .all(|(x, y)| (x - y).abs() < 1e-4);
                assert_eq!(same, close, "{ka} {kb}: {:?} {:?}", text(a), text(b));
            }
        }
    }

    fn decision(items: &[u32]) -> Decision {
        Decision {
            event_id: "e".into(),
            slate: Slate::new(items.iter().copied().map(ItemId).collect()).unwrap(),
            propensities: vec![1.0; items.len()],
            slate_propensity: None,
            positions: None,
            policy_id: "test".into(),
            model_version: String::new(),
        }
    }

    #[test]
    fn the_same_user_number_is_the_same_person_with_the_same_luck() {
        let (mut a, _) = tiny(true);
        let (mut b, _) = tiny(true);
        for user in [0, 7, 123] {
            assert_eq!(a.reset(user), b.reset(user));
            for slate in [[0, 1], [2, 3], [4, 5], [0, 2]] {
                let (sa, sb) = (a.step(&decision(&slate)), b.step(&decision(&slate)));
                assert_eq!(sa, sb);
                if sa.next.is_none() {
                    break;
                }
            }
        }
        assert_ne!(a.reset(1).user, a.reset(2).user);
    }

    #[test]
    fn contexts_carry_only_observable_information() {
        let (mut env, _) = tiny(true);
        let ctx = env.reset(3);
        assert!(ctx.features.is_empty());
        assert_eq!(ctx.tokens.len(), 1);
        assert!(ctx.tokens[0].starts_with("country="));
        assert!(ctx.session.history.is_empty());
        let next = env.step(&decision(&[0, 1])).next.unwrap();
        assert_eq!(next.session.history.len(), 2);
        assert_eq!(next.session.history[0].item, ItemId(0));
    }

    #[test]
    fn contexts_say_how_many_of_their_events_this_visit_showed() {
        let mut config = tiny_config(true);
        config.session.history_length = 5;
        let world = Arc::new(World::build(&tiny_data(), &config).unwrap());
        let mut env = ShopEnv::new(world, &config);
        let mut returned = false;
        for user in 0..200 {
            let mut ctx = env.reset(user);
            let mut visit = 0;
            for t in 0..30u32 {
                let shown = (0..2).map(|k| (2 * t + k) % 6).collect::<Vec<_>>();
                // Slates of 2: the visit showed 2 events per step, of which the history keeps
                // at most its length.
                assert_eq!(ctx.session.step, visit);
                assert_eq!(
                    ctx.session.visit_events,
                    Some((2 * visit).min(ctx.session.history.len() as u32)),
                    "user {user} step {t}"
                );
                let Some(next) = env.step(&decision(&shown)).next else {
                    break;
                };
                if next.session.session > ctx.session.session {
                    returned = true;
                    visit = 0;
                } else {
                    visit += 1;
                }
                ctx = next;
            }
        }
        assert!(
            returned,
            "no user came back, so no visit began after the first"
        );
    }

    #[test]
    fn the_oracle_slate_is_the_best_of_all_slates() {
        let (mut env, config) = tiny(true);
        for user in 0..20 {
            env.reset(user);
            let best = env.oracle_slate(&config.reward);
            let best_value = env.expected_reward(&best, &config.reward);
            for a in 0..6u32 {
                for b in 0..6u32 {
                    if a != b {
                        let v = env.expected_reward(&[ItemId(a), ItemId(b)], &config.reward);
                        assert!(
                            v <= best_value + 1e-12,
                            "user {user}: {a},{b} beats the oracle"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn item_values_are_the_expected_rewards_of_one_item_slates() {
        // The shop's own `item_values` must say what the trait's default says, in every state,
        // fatigue included: posterior distillation learns from them.
        let (mut env, config) = tiny(true);
        for user in 0..10 {
            env.reset(user);
            for _ in 0..3 {
                let values = env.item_values(&config.reward);
                assert_eq!(values.len(), 6);
                for (i, v) in values.iter().enumerate() {
                    let alone = env.expected_reward(&[ItemId(i as u32)], &config.reward);
                    assert!(
                        (v - alone).abs() < 1e-12,
                        "user {user}, item {i}: {v} vs {alone}"
                    );
                }
                let slate = env.oracle_slate(&config.reward);
                let items: Vec<u32> = slate.iter().map(|i| i.0).collect();
                if env.step(&decision(&items)).next.is_none() {
                    break;
                }
            }
        }
    }

    #[test]
    fn realised_rewards_average_to_the_expected_reward() {
        // The first slate of a user: its known expected value against the Monte Carlo mean over
        // many independent users.
        let (mut env, config) = tiny(false);
        let (mut expected, mut realised) = (0.0, 0.0);
        let n = 20_000;
        for user in 0..n {
            env.reset(user);
            let slate = env.oracle_slate(&config.reward);
            expected += env.expected_reward(&slate, &config.reward);
            let items: Vec<u32> = slate.iter().map(|i| i.0).collect();
            realised += config.reward.reward(&env.step(&decision(&items)).feedback);
        }
        let (expected, realised) = (expected / n as f64, realised / n as f64);
        // The per-slate reward has a standard deviation below 5 here, so the standard error of
        // the mean is below 0.04.
        assert!(
            (expected - realised).abs() < 0.12,
            "{expected} vs {realised}"
        );
    }

    #[test]
    fn fatigue_lowers_the_value_of_a_repeated_slate_only_when_on() {
        for fatigue in [true, false] {
            let (mut env, config) = tiny(fatigue);
            env.reset(5);
            let slate = env.oracle_slate(&config.reward);
            let before = env.expected_reward(&slate, &config.reward);
            let items: Vec<u32> = slate.iter().map(|i| i.0).collect();
            if env.step(&decision(&items)).next.is_none() {
                continue;
            }
            let after = env.expected_reward(&slate, &config.reward);
            if fatigue {
                assert!(after < before, "{after} !< {before}");
            } else {
                assert!((after - before).abs() < 1e-12);
            }
        }
    }

    #[test]
    fn the_planner_equals_the_oracle_without_fatigue() {
        let (mut env, config) = tiny(false);
        for user in 0..10 {
            env.reset(user);
            assert_eq!(
                env.planner_slate(&config.reward, &PlannerConfig::default()),
                env.oracle_slate(&config.reward)
            );
        }
    }

    #[test]
    fn bias_calibration_reaches_the_target_rates() {
        let (env, mut config) = tiny(true);
        config.calibration.users = 3000;
        let world = Arc::new(env.world().clone());
        let fitted = crate::calibrate::fit_biases(&world, &config);
        assert!(
            (fitted.ctr - config.calibration.ctr).abs() < 0.01,
            "{fitted:?}"
        );
        assert!(
            (fitted.cvr - config.calibration.cvr).abs() < 0.03,
            "{fitted:?}"
        );
    }
}
