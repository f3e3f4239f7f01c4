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
    Catalog, Context, Decision, Environment, Feedback, ItemId, PastEvent, RewardFn, Rng,
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
fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
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
        let examination = (0..config.choice.slate_size)
            .map(|k| 1.0 / ((k + 1) as f64).powf(config.choice.examination_decay))
            .collect();
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
        let p = 1.0 / self.world.quantities[i];
        let cap = f64::from(self.config.choice.max_quantity);
        (1.0 - (1.0 - p).powf(cap)) / p
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
            },
            candidates: Vec::new(),
        }
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
            country_token: format!("country={}", drawn.country),
            vector: drawn.vector,
            patience: self.config.session.patience,
            boredom: vec![0.0; self.world.dim],
            shown: Vec::new(),
            session: 0,
            step: 0,
            history: VecDeque::with_capacity(self.config.session.history_length + 8),
            session_clicks: 0,
            session_purchases: 0,
        });
        self.context()
    }

    fn step(&mut self, decision: &Decision) -> Step {
        let n = decision.slate.len();
        let mut feedback = Feedback::none(n);
        let mut user = self.user.take().expect("reset before step");
        for (k, &item) in decision.slate.items().iter().enumerate() {
            let i = item.index();
            // Three uniforms per position, always drawn, to keep streams aligned across policies.
            let (u_click, u_buy, u_qty): (f64, f64, f64) =
                (self.rng.random(), self.rng.random(), self.rng.random());
            let position = decision.position(k) as usize;
            let e = self
                .examination
                .get(position)
                .copied()
                .unwrap_or_else(|| *self.examination.last().unwrap_or(&1.0));
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
        let next = if gone { None } else { Some(self.context()) };
        Step { feedback, next }
    }

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
