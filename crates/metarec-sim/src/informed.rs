//! [`InformedPolicy`]: the yardstick of what a user's feedback can reveal.
//!
//! The oracle knows each user's hidden taste vector from the first slate, so its reward is not
//! reachable by any policy that has to learn the user from clicks. The informed policy is the
//! fairest upper reference for a learner: it knows everything about the simulator except the
//! user (the click and purchase model, the hidden item vectors, the population prior given the
//! user's country, the fatigue dynamics), keeps an exact-model particle posterior over the user's
//! hidden vector, and shows the slate with the highest posterior expected reward. What it cannot
//! reach after t interactions, no learner can reach by acting myopically on the same feedback.
//!
//! It sees only what a policy sees: contexts, its own decisions and their feedback. Its particles
//! come from its own seeded stream, never from the environment's.

use crate::config::ScenarioConfig;
use crate::shop::{examination_curve, examined, expected_quantity, sigmoid};
use crate::world::World;
use metarec_core::explore::{SlateChoice, top_k};
use metarec_core::linalg::dot;
use metarec_core::{Context, Interaction, ItemId, Policy, RewardFn, Rng, rng_for, stable_hash};
use rand::Rng as _;
use rand_distr::{Distribution, StandardNormal};
use std::sync::Arc;

/// Settings of the informed policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InformedConfig {
    /// Particles drawn from the prior for each user.
    pub particles: usize,
    /// Seed of the particle draws.
    pub seed: u64,
    /// Show the best slate of one posterior draw (Thompson sampling) instead of the slate of
    /// highest posterior expected reward.
    pub thompson: bool,
    /// Resample and move the particles whenever the posterior's effective sample size falls
    /// below half the particles (`informed-move`): each resampled particle takes
    /// Metropolis-Hastings steps that leave the exact posterior invariant, so a few particles
    /// keep describing a posterior that plain importance sampling from the prior would
    /// collapse onto one or two of them.
    pub moves: bool,
    /// Read the feedback as the neural network's user tower does (`informed-blind`): without
    /// the positions the items were shown at (every shown item counts as examined with the
    /// slate's mean probability of examination) and without purchases (a purchase is a
    /// click). A reference, not a policy to ship: what the yardstick loses this way bounds
    /// what giving the network positions and purchases could gain.
    pub blind: bool,
    /// Know the items only as a shop's observable features describe them
    /// (`informed-observed`): the likelihood, the expected rewards and the fatigue replay read
    /// the world of [`World::observed_view`], whose item vectors are their best linear fit
    /// from the catalog's features, while users respond to the hidden vectors. A reference,
    /// not a policy to ship: what the yardstick keeps this way is the lead that better
    /// inference about the user could give a learner, apart from any knowledge of the hidden
    /// item vectors beyond the features.
    pub observed: bool,
}

impl Default for InformedConfig {
    fn default() -> Self {
        InformedConfig {
            particles: 1000,
            seed: 0,
            thompson: false,
            moves: false,
            blind: false,
            observed: false,
        }
    }
}

/// Metropolis-Hastings steps per resampled particle, each a move to another customer of the
/// prior and a move of the noise around the customer.
const MOVE_STEPS: usize = 2;

/// The preconditioned Crank-Nicolson step of the noise: `z' = sqrt(1 - b^2) z + b e` keeps the
/// standard normal prior of `z`, so the acceptance ratio is the likelihood ratio alone.
const NOISE_STEP: f64 = 0.3;

/// The high bits of the stream the moves draw from, apart from the particles' own.
const MOVE_STREAM: u64 = 0x6d6f_7665 << 32;

/// One shown item of the user's history, as the likelihood of a particle reads it.
#[derive(Debug, Clone, Copy)]
struct Seen {
    item: usize,
    /// The probability that its position was examined.
    examined: f64,
    /// The fatigue subtracted from its click logit when it was shown.
    penalty: f64,
    clicked: bool,
    purchased: bool,
}

/// Particles whose log weight falls this far below the best one carry less than e^-30 of the
/// posterior; dropping them keeps every later step cheap without changing any decision.
const PRUNE_LOG_WEIGHT: f64 = 30.0;

/// Posterior weight below which a particle is left out of the expected values.
const NEGLIGIBLE_WEIGHT: f64 = 1e-9;

/// The exact-model Bayesian policy: a particle posterior over the user's hidden vector and the
/// myopic slate of highest posterior expected reward.
pub struct InformedPolicy {
    world: Arc<World>,
    config: ScenarioConfig,
    reward: RewardFn,
    settings: InformedConfig,
    examination: Vec<f64>,
    /// Per item: `ln(price / median price)` and the revenue of one purchase.
    price_terms: Vec<f64>,
    revenues: Vec<f64>,
    /// The particles' hidden vectors, row-major.
    vectors: Vec<f64>,
    /// Per particle and item (row-major by particle): the click logit before fatigue, the
    /// purchase probability and the reward of a click.
    base_logits: Vec<f64>,
    buys: Vec<f64>,
    gains: Vec<f64>,
    log_weights: Vec<f64>,
    /// Indices of the particles still carrying weight.
    alive: Vec<usize>,
    /// Per particle, the customer it was drawn around and its standard normal noise
    /// (row-major), which the moves change.
    customers: Vec<usize>,
    noise: Vec<f64>,
    /// The customers the current user's prior draws from (`None`: all).
    members: Option<Vec<u32>>,
    /// What the current user was shown and did, for the likelihood of a moved particle (kept
    /// without moves too: a few bytes per shown item, and the tests compare the two).
    seen: Vec<Seen>,
    move_rng: Rng,
    boredom: Vec<f64>,
    shown: Vec<ItemId>,
    session: u32,
}

impl InformedPolicy {
    /// An informed policy for the scenario's world and reward.
    pub fn new(
        world: Arc<World>,
        config: &ScenarioConfig,
        reward: &RewardFn,
        settings: InformedConfig,
    ) -> Self {
        let world = if settings.observed {
            Arc::new(world.observed_view().world)
        } else {
            world
        };
        Self::knowing(world, config, reward, settings)
    }

    /// The observed yardstick over a view of the world made elsewhere, such as the one
    /// [`World::observed_view_with`] fits from a trained network's item vectors: the policy
    /// reads `view` (its item vectors and directions) while the users respond to the
    /// scenario's world, and it is named `informed-observed`.
    pub fn with_view(
        view: Arc<World>,
        config: &ScenarioConfig,
        reward: &RewardFn,
        settings: InformedConfig,
    ) -> Self {
        Self::knowing(
            view,
            config,
            reward,
            InformedConfig {
                observed: true,
                ..settings
            },
        )
    }

    /// The policy reading `world`, which is already the view its settings ask for.
    fn knowing(
        world: Arc<World>,
        config: &ScenarioConfig,
        reward: &RewardFn,
        settings: InformedConfig,
    ) -> Self {
        let examination = examination_curve(config);
        let price_terms = world
            .prices
            .iter()
            .map(|p| (p / world.median_price).ln())
            .collect();
        let revenues = world
            .prices
            .iter()
            .zip(&world.quantities)
            .map(|(p, q)| p * expected_quantity(*q, config.choice.max_quantity))
            .collect();
        let dim = world.dim;
        InformedPolicy {
            world,
            config: config.clone(),
            reward: *reward,
            settings,
            examination,
            price_terms,
            revenues,
            vectors: Vec::new(),
            base_logits: Vec::new(),
            buys: Vec::new(),
            gains: Vec::new(),
            log_weights: Vec::new(),
            alive: Vec::new(),
            customers: Vec::new(),
            noise: Vec::new(),
            members: None,
            seen: Vec::new(),
            move_rng: rng_for(0, 0),
            boredom: vec![0.0; dim],
            shown: Vec::new(),
            session: 0,
        }
    }

    fn items(&self) -> usize {
        self.world.prices.len()
    }

    /// The fatigue subtracted from each item's click logit in the current state, replayed from
    /// the slates this policy showed (the same dynamics as the shop's).
    fn fatigue(&self) -> Vec<f64> {
        let s = &self.config.session;
        if !s.fatigue {
            return vec![0.0; self.items()];
        }
        let mut penalty: Vec<f64> = (0..self.items())
            .map(|i| s.boredom_weight * dot(&self.boredom, self.world.item_direction(i)).max(0.0))
            .collect();
        for item in &self.shown {
            penalty[item.index()] += s.repeat_penalty;
        }
        penalty
    }

    /// Fills particle `p`'s click logits, purchase probabilities and click rewards from its
    /// hidden vector.
    fn derive(&mut self, p: usize) {
        let n = self.items();
        let dim = self.world.dim;
        for i in 0..n {
            let (logit, buy) = self.click_logit_and_buy(&self.vectors[p * dim..(p + 1) * dim], i);
            self.base_logits[p * n + i] = logit;
            self.buys[p * n + i] = buy;
            self.gains[p * n + i] = self.reward.click_weight()
                + buy
                    * (self.reward.purchase_weight()
                        + self.reward.revenue_weight() * self.revenues[i]);
        }
    }

    /// For a user of hidden vector `vector`: item `i`'s click logit before fatigue and the
    /// probability of a purchase given a click (the shop's choice model).
    fn click_logit_and_buy(&self, vector: &[f64], i: usize) -> (f64, f64) {
        let c = &self.config.choice;
        let affinity = dot(vector, self.world.item_vector(i));
        let buy = sigmoid(
            c.purchase_bias + c.purchase_affinity * affinity
                - c.price_sensitivity * self.price_terms[i],
        );
        let logit = c.affinity_scale * affinity
            + c.popularity_weight * self.world.popularity[i]
            + c.click_bias;
        (logit, buy)
    }

    /// The log-likelihood of everything the user did so far, were `vector` their hidden vector:
    /// the same terms `observe` adds to a particle's weight.
    fn log_likelihood(&self, vector: &[f64]) -> f64 {
        self.seen
            .iter()
            .map(|s| {
                let (logit, buy) = self.click_logit_and_buy(vector, s.item);
                let click = s.examined * sigmoid(logit - s.penalty);
                let mut term = 0.0;
                self.add_feedback_log_likelihood(&mut term, click, buy, s.clicked, s.purchased);
                term
            })
            .sum()
    }

    /// Adds to `total` the log-likelihood of one shown item's feedback, given the probability
    /// `click` of a click and `buy` of a purchase given a click, term by term in the order
    /// `observe` always added them. The blind yardstick's rule lives here only: it reads no
    /// purchase.
    fn add_feedback_log_likelihood(
        &self,
        total: &mut f64,
        click: f64,
        buy: f64,
        clicked: bool,
        purchased: bool,
    ) {
        if !clicked {
            *total += (1.0 - click).max(1e-300).ln();
            return;
        }
        *total += click.max(1e-300).ln();
        if !self.settings.blind {
            *total += if purchased { buy } else { 1.0 - buy }.max(1e-300).ln();
        }
    }

    /// When the effective sample size has fallen below half the particles: resamples them by
    /// weight (systematic resampling) and moves each by [`MOVE_STEPS`] Metropolis-Hastings
    /// steps whose stationary distribution is the posterior, then weighs them equally.
    fn rejuvenate(&mut self) {
        let m = self.settings.particles.max(1);
        let weights = self.weights();
        let effective = 1.0
            / weights
                .iter()
                .map(|w| w * w)
                .sum::<f64>()
                .max(f64::MIN_POSITIVE);
        if effective >= m as f64 / 2.0 {
            return;
        }
        let dim = self.world.dim;
        let start: f64 = self.move_rng.random::<f64>() / m as f64;
        let mut picks = Vec::with_capacity(m);
        let mut acc = 0.0;
        let mut j = 0;
        for k in 0..m {
            let u = start + k as f64 / m as f64;
            while j + 1 < weights.len() && acc + weights[j] <= u {
                acc += weights[j];
                j += 1;
            }
            picks.push(self.alive[j]);
        }
        let population = &self.world.population;
        let config = &self.config.population;
        let keep = (1.0 - NOISE_STEP * NOISE_STEP).sqrt();
        let mut customers = Vec::with_capacity(m);
        let mut noise = Vec::with_capacity(m * dim);
        let mut vectors = Vec::with_capacity(m * dim);
        for &p in &picks {
            let mut customer = self.customers[p];
            let mut z = self.noise[p * dim..(p + 1) * dim].to_vec();
            let mut vector = self.vectors[p * dim..(p + 1) * dim].to_vec();
            let mut ll = self.log_likelihood(&vector);
            for _ in 0..MOVE_STEPS {
                // Another customer of the prior, the noise kept: the proposal is the prior's
                // own choice of customer, so the likelihood ratio decides.
                let other = match &self.members {
                    Some(members) => members[self.move_rng.random_range(0..members.len())] as usize,
                    None => self.move_rng.random_range(0..population.customers().max(1)),
                };
                let proposed = population.vector_of(other, &z, config);
                let proposed_ll = self.log_likelihood(&proposed);
                if self.move_rng.random::<f64>().ln() < proposed_ll - ll {
                    customer = other;
                    vector = proposed;
                    ll = proposed_ll;
                }
                // The noise, moved around the customer.
                let moved: Vec<f64> = z
                    .iter()
                    .map(|x| {
                        let e: f64 = StandardNormal.sample(&mut self.move_rng);
                        keep * x + NOISE_STEP * e
                    })
                    .collect();
                let proposed = population.vector_of(customer, &moved, config);
                let proposed_ll = self.log_likelihood(&proposed);
                if self.move_rng.random::<f64>().ln() < proposed_ll - ll {
                    z = moved;
                    vector = proposed;
                    ll = proposed_ll;
                }
            }
            customers.push(customer);
            noise.extend(z);
            vectors.extend(vector);
        }
        self.customers = customers;
        self.noise = noise;
        self.vectors = vectors;
        for p in 0..m {
            self.derive(p);
        }
        self.log_weights = vec![0.0; m];
        self.alive = (0..m).collect();
    }

    /// Posterior weights of the live particles, normalised.
    fn weights(&self) -> Vec<f64> {
        let best = self
            .alive
            .iter()
            .map(|&p| self.log_weights[p])
            .fold(f64::NEG_INFINITY, f64::max);
        let raw: Vec<f64> = self
            .alive
            .iter()
            .map(|&p| (self.log_weights[p] - best).exp())
            .collect();
        let total: f64 = raw.iter().sum();
        raw.into_iter().map(|w| w / total).collect()
    }

    /// The posterior's effective sample size (1 when one particle carries all the weight).
    pub fn effective_particles(&self) -> f64 {
        let w = self.weights();
        1.0 / w.iter().map(|x| x * x).sum::<f64>().max(f64::MIN_POSITIVE)
    }

    /// The posterior mean of the user's hidden vector.
    pub fn posterior_mean(&self) -> Vec<f64> {
        let dim = self.world.dim;
        let mut mean = vec![0.0; dim];
        for (&p, w) in self.alive.iter().zip(self.weights()) {
            for (m, v) in mean.iter_mut().zip(&self.vectors[p * dim..(p + 1) * dim]) {
                *m += w * v;
            }
        }
        mean
    }

    /// Posterior expected reward of showing each item at a fully examined position.
    pub fn item_values(&self) -> Vec<f64> {
        let n = self.items();
        let penalty = self.fatigue();
        let mut values = vec![0.0; n];
        for (&p, w) in self.alive.iter().zip(self.weights()) {
            // A particle this light moves no value by more than a billionth of a click's worth.
            if w < NEGLIGIBLE_WEIGHT {
                continue;
            }
            let row = p * n;
            for (i, v) in values.iter_mut().enumerate() {
                *v += w * sigmoid(self.base_logits[row + i] - penalty[i]) * self.gains[row + i];
            }
        }
        values
    }
}

/// The `k` items of highest value among the context's candidates (or the whole catalog).
fn best_slate(values: &[f64], context: &Context, k: usize) -> Vec<ItemId> {
    if context.candidates.is_empty() {
        return top_k(values, k)
            .into_iter()
            .map(|i| ItemId(i as u32))
            .collect();
    }
    let scores: Vec<f64> = context
        .candidates
        .iter()
        .map(|c| values.get(c.index()).copied().unwrap_or(f64::NEG_INFINITY))
        .collect();
    top_k(&scores, k)
        .into_iter()
        .map(|j| context.candidates[j])
        .collect()
}

impl Policy for InformedPolicy {
    fn name(&self) -> &str {
        if self.settings.blind {
            return "informed-blind";
        }
        if self.settings.observed {
            return "informed-observed";
        }
        match (self.settings.thompson, self.settings.moves) {
            (true, false) => "informed-ts",
            (false, false) => "informed",
            (true, true) => "informed-move-ts",
            (false, true) => "informed-move",
        }
    }

    fn start_user(&mut self, context: &Context) {
        let prefix = format!("{}=", self.world.population.attribute());
        let country = context
            .tokens
            .iter()
            .find_map(|t| t.strip_prefix(&prefix))
            .unwrap_or("");
        // The particles of a user depend on the seed and the user's key only, so a user's
        // posterior is the same whichever users came before.
        let mut rng: Rng = rng_for(self.settings.seed, stable_hash(&context.user.0));
        let n = self.items();
        let m = self.settings.particles.max(1);
        let population = &self.world.population;
        let config = &self.config.population;
        self.vectors = Vec::with_capacity(m * self.world.dim);
        self.customers = Vec::with_capacity(m);
        self.noise = Vec::with_capacity(m * self.world.dim);
        for _ in 0..m {
            let (customer, noise) = population.draw_parts_in_country(country, config, &mut rng);
            self.vectors
                .extend(population.vector_of(customer, &noise, config));
            self.customers.push(customer);
            self.noise.extend(noise);
        }
        self.members = population
            .prior_members(country, config)
            .map(<[u32]>::to_vec);
        self.base_logits = vec![0.0; m * n];
        self.buys = vec![0.0; m * n];
        self.gains = vec![0.0; m * n];
        for p in 0..m {
            self.derive(p);
        }
        self.seen.clear();
        self.move_rng = rng_for(
            self.settings.seed ^ MOVE_STREAM,
            stable_hash(&context.user.0),
        );
        self.log_weights = vec![0.0; m];
        self.alive = (0..m).collect();
        self.boredom = vec![0.0; self.world.dim];
        self.shown.clear();
        self.session = context.session.session;
    }

    fn decide(&mut self, context: &Context, k: usize, rng: &mut Rng) -> SlateChoice {
        // A caller that skipped `start_user` gets the prior of this context's user.
        if self.alive.is_empty() {
            self.start_user(context);
        }
        if context.session.session != self.session {
            // A new visit: the shop forgets what it showed and keeps part of the boredom.
            self.session = context.session.session;
            self.shown.clear();
            let carry = self.config.returns.boredom_carryover;
            self.boredom.iter_mut().for_each(|b| *b *= carry);
        }
        if !self.settings.thompson {
            let items = best_slate(&self.item_values(), context, k);
            let len = items.len();
            return SlateChoice {
                items,
                propensities: vec![1.0; len],
                slate_propensity: Some(1.0),
            };
        }
        // Thompson sampling: one particle drawn by posterior weight, and its best slate. The
        // propensities are exact: the posterior weight of the particles whose best slate puts
        // the same item at the same position (and the same slate, for the whole slate).
        let weights = self.weights();
        let penalty = self.fatigue();
        let n = self.items();
        let slates: Vec<Vec<ItemId>> = self
            .alive
            .iter()
            .map(|&p| {
                let values: Vec<f64> = (0..n)
                    .map(|i| {
                        sigmoid(self.base_logits[p * n + i] - penalty[i]) * self.gains[p * n + i]
                    })
                    .collect();
                best_slate(&values, context, k)
            })
            .collect();
        let u: f64 = rng.random();
        let mut acc = 0.0;
        let mut chosen = slates.len() - 1;
        for (j, w) in weights.iter().enumerate() {
            acc += w;
            if u < acc {
                chosen = j;
                break;
            }
        }
        let items = slates[chosen].clone();
        let propensities = items
            .iter()
            .enumerate()
            .map(|(pos, item)| {
                slates
                    .iter()
                    .zip(&weights)
                    .filter(|(s, _)| s.get(pos) == Some(item))
                    .map(|(_, w)| w)
                    .sum::<f64>()
                    .clamp(f64::MIN_POSITIVE, 1.0)
            })
            .collect();
        let slate_propensity = slates
            .iter()
            .zip(&weights)
            .filter(|(s, _)| **s == items)
            .map(|(_, w)| w)
            .sum::<f64>()
            .clamp(f64::MIN_POSITIVE, 1.0);
        SlateChoice {
            items,
            propensities,
            slate_propensity: Some(slate_propensity),
        }
    }

    fn observe(&mut self, interaction: &Interaction) {
        let n = self.items();
        let decision = &interaction.decision;
        let feedback = &interaction.feedback;
        let s = &self.config.session;
        // The likelihood of the feedback is taken in the state the slate was shown in.
        let penalty = self.fatigue();
        // The probability that each entry of the slate was examined: by its position, or, for
        // a blind yardstick, the same for all of them (the slate's mean).
        let mut examination: Vec<f64> = (0..decision.slate.len())
            .map(|k| examined(&self.examination, decision.position(k) as usize))
            .collect();
        if self.settings.blind && !examination.is_empty() {
            let mean = examination.iter().sum::<f64>() / examination.len() as f64;
            examination.iter_mut().for_each(|e| *e = mean);
        }
        {
            for (k, item) in decision.slate.items().iter().enumerate() {
                let i = item.index();
                if i >= n {
                    continue;
                }
                let clicked = feedback.clicks.get(k).copied().unwrap_or(false);
                self.seen.push(Seen {
                    item: i,
                    examined: examination[k],
                    penalty: penalty[i],
                    clicked,
                    purchased: clicked && feedback.purchases.get(k).copied().unwrap_or(false),
                });
            }
        }
        for &p in &self.alive {
            let mut log_likelihood = 0.0;
            for (k, item) in decision.slate.items().iter().enumerate() {
                let i = item.index();
                if i >= n {
                    continue;
                }
                let click = examination[k] * sigmoid(self.base_logits[p * n + i] - penalty[i]);
                self.add_feedback_log_likelihood(
                    &mut log_likelihood,
                    click,
                    self.buys[p * n + i],
                    feedback.clicks.get(k).copied().unwrap_or(false),
                    feedback.purchases.get(k).copied().unwrap_or(false),
                );
            }
            self.log_weights[p] += log_likelihood;
        }
        let best = self
            .alive
            .iter()
            .map(|&p| self.log_weights[p])
            .fold(f64::NEG_INFINITY, f64::max);
        let weights = &self.log_weights;
        self.alive
            .retain(|&p| weights[p] >= best - PRUNE_LOG_WEIGHT);

        // The shop's fatigue dynamics, replayed from the slate.
        let known: Vec<ItemId> = decision
            .slate
            .items()
            .iter()
            .copied()
            .filter(|i| i.index() < n)
            .collect();
        self.boredom.iter_mut().for_each(|b| *b *= s.boredom_decay);
        let weight = 1.0 / decision.slate.len().max(1) as f64;
        for item in &known {
            for (b, d) in self
                .boredom
                .iter_mut()
                .zip(self.world.item_direction(item.index()))
            {
                *b += weight * d;
            }
            if !self.shown.contains(item) {
                self.shown.push(*item);
            }
        }
        if self.settings.moves {
            self.rejuvenate();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shop::ShopEnv;
    use crate::shop::tests::tiny;
    use metarec_core::{Environment, EventId, decision_from_choice};

    fn policy(env: &ShopEnv, config: &ScenarioConfig, settings: InformedConfig) -> InformedPolicy {
        InformedPolicy::new(
            Arc::new(env.world().clone()),
            config,
            &config.reward,
            settings,
        )
    }

    /// Plays one user to the end (or `steps` slates), calling `check` before each step.
    fn play(
        env: &mut ShopEnv,
        policy: &mut InformedPolicy,
        user: u64,
        steps: usize,
        mut check: impl FnMut(&ShopEnv, &InformedPolicy),
    ) -> Vec<Vec<ItemId>> {
        let mut rng = rng_for(3, user);
        let mut context = Some(env.reset(user));
        policy.start_user(context.as_ref().unwrap());
        let mut slates = Vec::new();
        while let Some(ctx) = context {
            if slates.len() == steps {
                break;
            }
            let choice = policy.decide(&ctx, env.slate_size(), &mut rng);
            check(env, policy);
            slates.push(choice.items.clone());
            let decision =
                decision_from_choice(choice, EventId(format!("u{user}")), "informed", "0".into())
                    .unwrap();
            let step = env.step(&decision);
            policy.observe(&Interaction {
                context: ctx,
                decision,
                feedback: step.feedback,
            });
            context = step.next;
        }
        slates
    }

    #[test]
    fn the_replayed_fatigue_is_the_shops() {
        let (mut env, config) = tiny(true);
        let mut informed = policy(&env, &config, InformedConfig::default());
        let mut checked = 0;
        for user in 0..20 {
            play(&mut env, &mut informed, user, usize::MAX, |env, p| {
                let (_, boredom, shown) = env.hidden_state();
                for (a, b) in p.boredom.iter().zip(boredom) {
                    assert!((a - b).abs() < 1e-12, "boredom {a} against the shop's {b}");
                }
                assert_eq!(p.shown, shown);
                checked += 1;
            });
        }
        assert!(checked > 40, "only {checked} states checked");
    }

    #[test]
    fn feedback_moves_the_posterior_towards_the_user() {
        let (mut env, config) = tiny(false);
        let mut informed = policy(&env, &config, InformedConfig::default());
        let distance = |a: &[f64], b: &[f64]| -> f64 {
            a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum::<f64>()
        };
        let (mut prior, mut posterior) = (0.0, 0.0);
        for user in 0..60 {
            let context = env.reset(user);
            informed.start_user(&context);
            let before = informed.posterior_mean();
            play(&mut env, &mut informed, user, 40, |_, _| {});
            let truth = env.hidden_state().0.to_vec();
            prior += distance(&before, &truth);
            posterior += distance(&informed.posterior_mean(), &truth);
        }
        assert!(
            posterior < 0.8 * prior,
            "posterior error {posterior} against the prior's {prior}"
        );
    }

    #[test]
    fn thompson_sampling_with_one_particle_is_the_greedy_choice() {
        let (mut env, config) = tiny(true);
        let one = |thompson| InformedConfig {
            particles: 1,
            thompson,
            ..InformedConfig::default()
        };
        let mut greedy = policy(&env, &config, one(false));
        let mut sampled = policy(&env, &config, one(true));
        for user in 0..5 {
            let a = play(&mut env, &mut greedy, user, 10, |_, _| {});
            let b = play(&mut env, &mut sampled, user, 10, |_, _| {});
            assert_eq!(a, b);
        }
    }

    #[test]
    fn thompson_propensities_are_probabilities_of_the_choice() {
        let (mut env, config) = tiny(false);
        let settings = InformedConfig {
            thompson: true,
            ..InformedConfig::default()
        };
        let mut informed = policy(&env, &config, settings);
        let context = env.reset(4);
        informed.start_user(&context);
        let mut rng = rng_for(9, 0);
        let draws = 4000;
        let mut first = std::collections::HashMap::new();
        let mut said = std::collections::HashMap::new();
        for _ in 0..draws {
            let choice = informed.decide(&context, 2, &mut rng);
            *first.entry(choice.items[0]).or_insert(0.0) += 1.0 / f64::from(draws);
            said.insert(choice.items[0], choice.propensities[0]);
            assert!(choice.propensities.iter().all(|p| *p > 0.0 && *p <= 1.0));
        }
        for (item, share) in first {
            let p = said[&item];
            assert!(
                (share - p).abs() < 0.03,
                "{item:?}: shown {share}, propensity {p}"
            );
        }
    }

    #[test]
    fn the_same_seed_gives_the_same_slates_whatever_came_before() {
        let (mut env, config) = tiny(true);
        let mut a = policy(&env, &config, InformedConfig::default());
        let mut b = policy(&env, &config, InformedConfig::default());
        play(&mut env, &mut a, 0, 10, |_, _| {});
        let after_another = play(&mut env, &mut a, 1, 10, |_, _| {});
        let alone = play(&mut env, &mut b, 1, 10, |_, _| {});
        assert_eq!(after_another, alone);
        let reseeded = InformedConfig {
            seed: 1,
            particles: 3,
            ..InformedConfig::default()
        };
        let mut c = policy(&env, &config, reseeded);
        c.start_user(&env.reset(1));
        let mut d = policy(
            &env,
            &config,
            InformedConfig {
                particles: 3,
                ..InformedConfig::default()
            },
        );
        d.start_user(&env.reset(1));
        assert_ne!(c.vectors, d.vectors, "the seed must change the particles");
    }

    #[test]
    fn the_likelihood_the_moves_read_is_the_weight_observe_gave() {
        let (mut env, config) = tiny(true);
        // The blind yardstick's likelihood too: the moves must read what its weights read.
        for blind in [false, true] {
            let settings = InformedConfig {
                particles: 50,
                blind,
                ..InformedConfig::default()
            };
            let mut informed = policy(&env, &config, settings);
            for user in 0..5 {
                play(&mut env, &mut informed, user, 8, |_, _| {});
                assert!(!informed.seen.is_empty());
                let dim = informed.world.dim;
                for &p in &informed.alive {
                    let ll = informed.log_likelihood(&informed.vectors[p * dim..(p + 1) * dim]);
                    let w = informed.log_weights[p];
                    assert!((ll - w).abs() < 1e-9 * (1.0 + w.abs()), "{ll} against {w}");
                }
            }
        }
    }

    #[test]
    fn moved_particles_know_the_user_better_than_as_many_unmoved() {
        let (mut env, config) = tiny(false);
        let error = |env: &mut ShopEnv, moves: bool| -> f64 {
            let mut informed = policy(
                env,
                &config,
                InformedConfig {
                    particles: 20,
                    moves,
                    ..InformedConfig::default()
                },
            );
            let mut total = 0.0;
            for user in 0..60 {
                play(env, &mut informed, user, 40, |_, _| {});
                let truth = env.hidden_state().0.to_vec();
                total += informed
                    .posterior_mean()
                    .iter()
                    .zip(&truth)
                    .map(|(x, y)| (x - y) * (x - y))
                    .sum::<f64>();
            }
            total
        };
        let plain = error(&mut env, false);
        let moved = error(&mut env, true);
        assert!(
            moved < 0.9 * plain,
            "posterior error {moved} with moves against {plain} without"
        );
    }

    #[test]
    fn the_blind_yardstick_reads_neither_positions_nor_purchases() {
        let (mut env, config) = tiny(true);
        let settings = InformedConfig {
            particles: 50,
            ..InformedConfig::default()
        };
        // One slate of a user who clicked something, as the shop played it.
        let mut rng = rng_for(3, 0);
        let interaction = (0..50)
            .find_map(|user| {
                let context = env.reset(user);
                let mut informed = policy(&env, &config, settings);
                informed.start_user(&context);
                let choice = informed.decide(&context, env.slate_size(), &mut rng);
                let decision = decision_from_choice(
                    choice,
                    EventId(format!("u{user}")),
                    "informed",
                    "0".into(),
                )
                .unwrap();
                let feedback = env.step(&decision).feedback;
                feedback.clicks.contains(&true).then_some(Interaction {
                    context,
                    decision,
                    feedback,
                })
            })
            .expect("a click in 50 users");
        // The same entries shown at other positions, and the clicks read as other purchases.
        let mut moved = interaction.clone();
        let k = moved.decision.slate.len() as u32;
        moved.decision.positions = Some((0..k).rev().collect());
        let mut bought = interaction.clone();
        for (b, &c) in bought
            .feedback
            .purchases
            .iter_mut()
            .zip(&interaction.feedback.clicks)
        {
            *b = c && !*b;
        }
        let weights = |blind: bool, seen: &Interaction| -> Vec<f64> {
            let mut informed = policy(&env, &config, InformedConfig { blind, ..settings });
            informed.start_user(&seen.context);
            informed.observe(seen);
            informed.log_weights.clone()
        };
        for variant in [&moved, &bought] {
            assert_eq!(weights(true, &interaction), weights(true, variant));
            assert_ne!(weights(false, &interaction), weights(false, variant));
        }
        let informed = policy(
            &env,
            &config,
            InformedConfig {
                blind: true,
                ..settings
            },
        );
        assert_eq!(informed.name(), "informed-blind");
    }

    #[test]
    fn the_observed_yardstick_knows_the_items_through_their_features_only() {
        let (mut env, config) = tiny(true);
        let settings = InformedConfig {
            particles: 50,
            ..InformedConfig::default()
        };
        let observed = InformedConfig {
            observed: true,
            ..settings
        };
        // The observed yardstick in the real world plays as the plain one would in a world
        // whose items are the observed view's, while the users respond to the hidden vectors;
        // so does the yardstick handed that view ready-made (as views with more columns are).
        let view = Arc::new(env.world().observed_view().world);
        let mut in_view = InformedPolicy::new(view.clone(), &config, &config.reward, settings);
        let mut handed = InformedPolicy::with_view(view, &config, &config.reward, settings);
        let mut informed = policy(&env, &config, observed);
        let mut plain = policy(&env, &config, settings);
        assert_eq!(informed.name(), "informed-observed");
        assert_eq!(handed.name(), "informed-observed");
        let (mut third, _) = tiny(true);
        let (mut twin, _) = tiny(true);
        let mut differ = false;
        for user in 0..8 {
            let a = play(&mut env, &mut informed, user, 6, |_, _| {});
            let b = play(&mut twin, &mut in_view, user, 6, |_, _| {});
            let c = play(&mut third, &mut handed, user, 6, |_, _| {});
            assert_eq!(a, b, "user {user}");
            assert_eq!(a, c, "user {user}");
            assert!(!a.is_empty());
            assert_eq!(informed.item_values(), in_view.item_values());
            let context = env.reset(user);
            plain.start_user(&context);
            informed.start_user(&context);
            differ |= plain.item_values() != informed.item_values();
        }
        assert!(differ, "the hidden vectors are not linear in the features");
    }

    #[test]
    fn the_moves_depend_on_the_seed_and_the_user_only() {
        let (mut env, config) = tiny(true);
        let settings = InformedConfig {
            particles: 20,
            moves: true,
            ..InformedConfig::default()
        };
        let mut a = policy(&env, &config, settings);
        let mut b = policy(&env, &config, settings);
        play(&mut env, &mut a, 0, 10, |_, _| {});
        let after_another = play(&mut env, &mut a, 1, 10, |_, _| {});
        let alone = play(&mut env, &mut b, 1, 10, |_, _| {});
        assert_eq!(after_another, alone);
        assert_eq!(a.vectors, b.vectors);
        assert_eq!(a.name(), "informed-move");
    }
}
