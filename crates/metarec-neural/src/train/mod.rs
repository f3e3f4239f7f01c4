//! Trainers: the loop is written once ([`Trainer::train`]); the algorithm ([`Algo`]) supplies
//! the loss of a batch.
//!
//! - [`Algo::Reinforce`]: REINFORCE with a learned baseline: `-(G_t - V(s_t)) log pi(slate_t)`,
//!   advantages standardised per batch, plus `(G_t - V(s_t))^2` for the baseline;
//! - [`Algo::ActorCritic`]: one-step actor-critic: the advantage is
//!   `r_t + gamma V(s_{t+1}) - V(s_t)` (no bootstrap past a user's last slate);
//! - [`Algo::Supervised`]: click and purchase cross-entropy on logged interactions, optionally
//!   importance-weighted by the logged propensities ([`weights`]); [`Trainer::train_logged`]
//!   runs it on logged data alone, with no environment (a shop's own log);
//! - [`Algo::Distill`]: imitation of a teacher policy on the network's own visits (DAgger,
//!   Ross, Gordon & Bagnell 2011): `-log pi(teacher's slate_t)`, plus the baseline's loss. The
//!   teacher watches the same users and feedback as the network, so it may be any policy, such
//!   as a Bayesian one that knows the environment's model but must learn each user.
//! - [`Algo::Posterior`]: posterior distillation on the network's own visits in a simulator that
//!   reveals its users ([`Trainer::train_revealed`]): `-sum_i v_i log p_i / sum_i v_i`, where
//!   `v_i` is every item's expected reward for the hidden user ([`Oracle::item_values`]) and
//!   `p_i` the network's first-position probability. Given what the network has seen, the
//!   expected loss is smallest when `p_i` is proportional to the posterior mean of `v_i`, so the
//!   network learns the Bayesian update of every item's value from the history, densely (every
//!   item, every state) and with no particle filter, and its greedy slate is the greedy slate of
//!   the exact posterior; plus the baseline's loss.
//!
//! Episodes are whole simulated users (every visit), discounted per slate by the reward
//! function's `gamma`. Training users come from a seed of their own, so the arena's users are
//! never seen in training.

use crate::error::NeuralError;
use crate::features::{Features, UserView};
use crate::loss::{
    bce_with_logits, first_position_entropy, plackett_luce_log_prob, position_masks,
    weighted_bce_with_logits,
};
use crate::model::{Encoder, Frozen, ModelConfig, TwoTower, build, sorted_vars};
use candle_core::{DType, Device, Tensor};
use candle_nn::{AdamW, Optimizer, ParamsAdamW, VarMap};
use metarec_core::{
    Catalog, Environment, EventIds, Interaction, ItemId, Oracle, Policy, RewardFn, Rng, rng_for,
    rollout,
};
use serde::{Deserialize, Serialize};

mod collect;
mod posterior;
mod split;
pub mod weights;
use collect::Collector;
use posterior::{Reveal, revealed_values};
pub use split::{episodes_from_bytes, episodes_to_bytes};
pub use weights::{EntryWeights, Weighting, ips_weights};

/// The learning algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Algo {
    /// Policy gradient with a learned baseline.
    Reinforce,
    /// One-step actor-critic.
    ActorCritic,
    /// Click and purchase cross-entropy on logged interactions.
    Supervised,
    /// Imitation of a teacher policy on the network's own visits (DAgger).
    Distill,
    /// Learning each state's posterior mean of every item's value, from the values a simulator
    /// reveals (posterior distillation).
    Posterior,
}

impl Algo {
    /// The name used on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Algo::Reinforce => "reinforce",
            Algo::ActorCritic => "actor-critic",
            Algo::Supervised => "supervised",
            Algo::Distill => "distill",
            Algo::Posterior => "posterior",
        }
    }

    /// Parses a name.
    pub fn parse(name: &str) -> Result<Algo, NeuralError> {
        match name {
            "reinforce" => Ok(Algo::Reinforce),
            "actor-critic" => Ok(Algo::ActorCritic),
            "supervised" => Ok(Algo::Supervised),
            "distill" => Ok(Algo::Distill),
            "posterior" => Ok(Algo::Posterior),
            other => Err(NeuralError::Config(format!(
                "unknown algorithm `{other}`; expected reinforce, actor-critic, supervised, distill or posterior"
            ))),
        }
    }
}

/// Settings of a training run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrainConfig {
    /// The algorithm.
    pub algo: Algo,
    /// Network sizes.
    pub model: ModelConfig,
    /// Optimiser steps.
    pub iterations: usize,
    /// Simulated users per step (RL) or logged interactions per step (supervised).
    pub batch: usize,
    /// Adam's learning rate.
    pub learning_rate: f64,
    /// Weight of the first position's entropy bonus (RL).
    pub entropy: f64,
    /// Weight of the value loss (RL).
    pub value_weight: f64,
    /// Seed of the initial weights, the policy's sampling and the training users.
    pub seed: u64,
    /// Whether each training user's slates are sampled from a stream of their own (the seed
    /// and the user's number) rather than from one stream that runs through the batch in
    /// order. With their own streams a batch's users can be split over workers (Ray, from
    /// Python) and give the same episodes as one process; off by default, since the shipped
    /// network and earlier runs were trained with the one stream.
    pub user_streams: bool,
    /// How many of the teacher's best items distillation imitates in each state, in its order
    /// (0: as many as the slate shows). A teacher that ranks the catalog (the informed
    /// yardstick) says more than its slate of 5: which items come next, and in what order.
    pub imitate_depth: usize,
    /// Supervised training on logged interactions: learn each clicked (or bought) item as one
    /// choice out of the whole catalog, a softmax over every item's score, instead of a click
    /// cross-entropy over the slate's entries. For a shop that logs no impressions, whose
    /// slates are the bought item and a few random negatives: telling the bought item from
    /// random ones does not teach the network to order the plausible items a top 10 is drawn
    /// from, and the full softmax makes every item a negative. Off (and left out of manifests)
    /// by default, so earlier runs and manifests stay as they were.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub catalog_softmax: bool,
    /// The temperature the network samples its own visits at during distillation (of a teacher
    /// or of the posterior), in place of the model's; the loss still reads the scores at the
    /// model's. A lower one keeps the visits close to the greedy network's, the states it meets
    /// when it serves, where the model's own temperature, which posterior distillation makes
    /// proportional to each item's value, visits states far from them. REINFORCE and
    /// actor-critic keep the model's: their gradient needs slates drawn from the policy it
    /// differentiates. `None` (and left out of manifests) samples at the model's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rollout_temperature: Option<f64>,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            algo: Algo::Reinforce,
            model: ModelConfig::default(),
            iterations: 300,
            batch: 64,
            learning_rate: 3e-3,
            entropy: 0.01,
            value_weight: 0.5,
            seed: 7,
            user_streams: false,
            imitate_depth: 0,
            catalog_softmax: false,
            rollout_temperature: None,
        }
    }
}

impl TrainConfig {
    /// Checks the settings.
    pub fn validate(&self) -> Result<(), NeuralError> {
        self.model.validate()?;
        if self.batch == 0 || self.batch > MAX_BATCH {
            return Err(NeuralError::Config(format!(
                "batch = {}: must be 1 to {MAX_BATCH}",
                self.batch
            )));
        }
        for (name, v) in [
            ("learning_rate", self.learning_rate),
            ("entropy", self.entropy),
            ("value_weight", self.value_weight),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                return Err(NeuralError::Config(format!(
                    "{name} = {v}: must be a non-negative number"
                )));
            }
        }
        if self.learning_rate <= 0.0 {
            return Err(NeuralError::Config("learning_rate must be positive".into()));
        }
        if let Some(t) = self.rollout_temperature {
            if !(t.is_finite() && t > 0.0) {
                return Err(NeuralError::Config(format!(
                    "rollout_temperature = {t}: must be a positive number"
                )));
            }
            if !matches!(self.algo, Algo::Distill | Algo::Posterior) {
                return Err(NeuralError::Config(format!(
                    "a rollout temperature is for distill and posterior: {} learns from slates drawn at the model's own",
                    self.algo.name()
                )));
            }
        }
        if self.imitate_depth > MAX_IMITATE_DEPTH {
            return Err(NeuralError::Config(format!(
                "imitate_depth = {}: must be 0 to {MAX_IMITATE_DEPTH}",
                self.imitate_depth
            )));
        }
        Ok(())
    }
}

/// The user side of a batch, as tensors.
struct UserBatch {
    inputs: Tensor,
    ignored: Tensor,
    clicked: Tensor,
    ignored_mean: Tensor,
    clicked_mean: Tensor,
    /// The clicked and ignored count matrices `S x N`, for the set encoder only.
    counts: Option<(Tensor, Tensor)>,
    /// The clicked and ignored mean rows `S x N` of the items before the recent window, for a
    /// network with a memory only.
    older: Option<(Tensor, Tensor)>,
}

/// One slate of a training episode.
#[derive(Debug, Clone)]
pub struct Transition {
    /// The user tower's input.
    pub input: Vec<f32>,
    /// Items shown earlier without a click.
    pub ignored: Vec<ItemId>,
    /// Items clicked earlier.
    pub clicked: Vec<ItemId>,
    /// Items shown without a click before the recent window (a network with a memory only).
    pub older_ignored: Vec<ItemId>,
    /// Items clicked before the recent window.
    pub older_clicked: Vec<ItemId>,
    /// Items the session flags mark as shown without a click (see
    /// [`UserView::flagged_ignored`](crate::features::UserView::flagged_ignored)).
    pub flagged_ignored: Vec<ItemId>,
    /// Items the session flags mark as clicked.
    pub flagged_clicked: Vec<ItemId>,
    /// The slate shown.
    pub slate: Vec<ItemId>,
    /// Clicks per slate entry.
    pub clicks: Vec<bool>,
    /// Purchases per slate entry.
    pub purchases: Vec<bool>,
    /// The step's reward.
    pub reward: f64,
    /// The discounted return from this step on.
    pub ret: f64,
    /// Whether this was the user's last slate.
    pub last: bool,
    /// The teacher's slate in the same state (distillation only; empty otherwise).
    pub teacher: Vec<ItemId>,
    /// Every item's expected reward for the hidden user in this state, in catalog order, as
    /// the simulator revealed it (posterior distillation only; empty otherwise).
    pub values: Vec<f32>,
}

/// Statistics of one training iteration.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct IterationStats {
    /// The iteration (1-based, counting resumed ones).
    pub iteration: usize,
    /// Mean total reward per user in the batch (RL) or 0 (supervised).
    pub reward_per_user: f64,
    /// Mean discounted return per user (RL).
    pub return_per_user: f64,
    /// Slates per user (RL).
    pub slates_per_user: f64,
    /// The loss minimised.
    pub loss: f64,
    /// Mean first-position entropy (RL).
    pub entropy: f64,
}

/// A network being trained.
pub struct Trainer {
    /// The settings.
    pub config: TrainConfig,
    /// The objective (its `gamma` discounts the returns).
    pub reward: RewardFn,
    /// The input schema.
    pub features: Features,
    /// The variables.
    pub varmap: VarMap,
    model: TwoTower,
    optimizer: AdamW,
    item_inputs: Tensor,
    frozen: Frozen,
    rng: Rng,
    /// Iterations done so far (including those before a resume).
    pub iterations_done: usize,
    /// Per-iteration statistics of this process's run.
    pub history: Vec<IterationStats>,
}

/// The most simulated users (or logged interactions) per optimiser step.
pub const MAX_BATCH: usize = 100_000;

/// The deepest ranking of the teacher's that distillation imitates
/// ([`TrainConfig::imitate_depth`]): each position adds a mask as large as the batch's scores.
pub const MAX_IMITATE_DEPTH: usize = 100;

/// The high bits of a training user's own sampling stream ([`TrainConfig::user_streams`]).
const USER_STREAMS: u64 = 0x7573_6572 << 32;

fn adam(varmap: &VarMap, lr: f64) -> Result<AdamW, NeuralError> {
    // A variable with no values (the item layer's weight over zero features, for a catalog
    // of ids alone) has nothing to learn, and candle cannot step it.
    let vars = sorted_vars(varmap)
        .into_iter()
        .map(|(_, v)| v)
        .filter(|v| v.elem_count() > 0)
        .collect();
    Ok(AdamW::new(
        vars,
        ParamsAdamW {
            lr,
            weight_decay: 0.0,
            ..ParamsAdamW::default()
        },
    )?)
}

impl Trainer {
    /// A fresh network for `catalog`.
    pub fn new(
        catalog: &Catalog,
        reward: RewardFn,
        config: TrainConfig,
    ) -> Result<Trainer, NeuralError> {
        config.validate()?;
        let features = Features::new(catalog).with_feedback(config.model.feedback);
        let (varmap, model) = build(config.model, &features, DType::F32, config.seed)?;
        Trainer::assemble(features, varmap, model, reward, config, 0)
    }

    /// Continues from existing variables (a loaded checkpoint).
    pub fn resume(
        features: Features,
        varmap: VarMap,
        model: TwoTower,
        reward: RewardFn,
        config: TrainConfig,
        iterations_done: usize,
    ) -> Result<Trainer, NeuralError> {
        config.validate()?;
        Trainer::assemble(features, varmap, model, reward, config, iterations_done)
    }

    fn assemble(
        features: Features,
        varmap: VarMap,
        model: TwoTower,
        reward: RewardFn,
        config: TrainConfig,
        iterations_done: usize,
    ) -> Result<Trainer, NeuralError> {
        let item_inputs = crate::item_tensor(&features)?;
        let frozen = Frozen::from_model(&model, &item_inputs)?;
        let optimizer = adam(&varmap, config.learning_rate)?;
        // The sampling stream continues where a resumed run left off, so a run resumed after
        // n iterations draws different users and slates than its first n iterations did.
        let rng = rng_for(config.seed, 0x7472_0000 + iterations_done as u64);
        let features = features.with_memory(config.model.memory);
        Ok(Trainer {
            config,
            reward,
            features,
            varmap,
            model,
            optimizer,
            item_inputs,
            frozen,
            rng,
            iterations_done,
            history: Vec::new(),
        })
    }

    /// The current network, frozen for decisions.
    pub fn frozen(&self) -> &Frozen {
        &self.frozen
    }

    /// The candle model.
    pub fn model(&self) -> &TwoTower {
        &self.model
    }

    /// Plays users `users` on `env` with the current policy (Plackett-Luce sampling).
    pub fn collect<E: Environment>(
        &mut self,
        env: &mut E,
        users: std::ops::Range<u64>,
    ) -> Result<Vec<Vec<Transition>>, NeuralError> {
        self.collect_with(env, users, None)
    }

    /// Like [`Trainer::collect`], with a teacher that watches every user and feedback and
    /// records the slate it would have shown in each state.
    pub fn collect_with<E: Environment>(
        &mut self,
        env: &mut E,
        users: std::ops::Range<u64>,
        teacher: Option<&mut dyn Policy>,
    ) -> Result<Vec<Vec<Transition>>, NeuralError> {
        self.collect_from(env, users, teacher, None)
    }

    /// Like [`Trainer::collect_with`] in a simulator that reveals its users: with
    /// [`Algo::Posterior`] each step also keeps every item's expected reward for the hidden user
    /// ([`Transition::values`]), which it learns from.
    pub fn collect_revealed<E: Oracle>(
        &mut self,
        env: &mut E,
        users: std::ops::Range<u64>,
        teacher: Option<&mut dyn Policy>,
    ) -> Result<Vec<Vec<Transition>>, NeuralError> {
        self.collect_from(env, users, teacher, Some(revealed_values::<E>))
    }

    fn collect_from<E: Environment>(
        &mut self,
        env: &mut E,
        users: std::ops::Range<u64>,
        teacher: Option<&mut dyn Policy>,
        reveal: Option<Reveal<E>>,
    ) -> Result<Vec<Vec<Transition>>, NeuralError> {
        // Only posterior distillation reads the values; other algorithms skip their cost.
        let reveal = reveal.filter(|_| self.config.algo == Algo::Posterior);
        let n = self.features.items();
        let mut collector = Collector {
            frozen: &self.frozen,
            features: &self.features,
            reward: &self.reward,
            teacher,
            reveal,
            candidates: (0..n as u32).map(ItemId).collect(),
            temperature: self
                .config
                .rollout_temperature
                .unwrap_or(self.frozen.temperature),
            depth: self.config.imitate_depth,
            view: UserView::default(),
            hidden: Vec::new(),
            g: Vec::new(),
            scores: vec![0f64; n],
            pending: None,
            episode: Vec::new(),
        };
        let mut episodes = Vec::with_capacity(users.end.saturating_sub(users.start) as usize);
        for user in users {
            let one = user..user + 1;
            let mut own;
            let rng = if self.config.user_streams {
                own = rng_for(self.config.seed, USER_STREAMS ^ user);
                &mut own
            } else {
                &mut self.rng
            };
            rollout(env, &mut collector, one, rng, &mut (), EventIds::None)?;
            let mut episode = std::mem::take(&mut collector.episode);
            if let Some(last) = episode.last_mut() {
                last.last = true;
            }
            let rewards: Vec<f64> = episode.iter().map(|t| t.reward).collect();
            for (t, r) in episode.iter_mut().zip(self.reward.returns_to_go(&rewards)) {
                t.ret = r;
            }
            episodes.push(episode);
        }
        Ok(episodes)
    }

    /// Batch tensors of the user side: inputs `S x U`, the ignored and clicked indicators
    /// `S x N`, and the same indicators normalised to row means.
    fn user_tensors(&self, steps: &[&Transition]) -> Result<UserBatch, NeuralError> {
        let s = steps.len();
        let n = self.features.items();
        let ud = self.features.user_dim();
        let mut u = Vec::with_capacity(s * ud);
        let mut ign = vec![0f32; s * n];
        let mut clk = vec![0f32; s * n];
        let mut ign_mean = vec![0f32; s * n];
        let mut clk_mean = vec![0f32; s * n];
        // Only the set encoder reads the counts; the mean network does not pay for them.
        let with_counts = self.config.model.encoder == Encoder::Set;
        let size = if with_counts { s * n } else { 0 };
        let (mut ign_count, mut clk_count) = (vec![0f32; size], vec![0f32; size]);
        for (row, t) in steps.iter().enumerate() {
            u.extend_from_slice(&t.input);
            for (flags, set) in [
                (&mut ign, &t.flagged_ignored),
                (&mut clk, &t.flagged_clicked),
            ] {
                for i in set.iter() {
                    flags[row * n + i.index()] = 1.0;
                }
            }
            for (means, counts, set) in [
                (&mut ign_mean, &mut ign_count, &t.ignored),
                (&mut clk_mean, &mut clk_count, &t.clicked),
            ] {
                for i in set.iter() {
                    means[row * n + i.index()] += 1.0 / set.len() as f32;
                    if with_counts {
                        counts[row * n + i.index()] += 1.0;
                    }
                }
            }
        }
        let m = |v: Vec<f32>| Tensor::from_vec(v, (s, n), &Device::Cpu);
        // Only a network with a memory reads the items before the recent window.
        let older = if self.config.model.memory > 0 {
            let (mut clk_old, mut ign_old) = (vec![0f32; s * n], vec![0f32; s * n]);
            for (row, t) in steps.iter().enumerate() {
                for (means, set) in [
                    (&mut clk_old, &t.older_clicked),
                    (&mut ign_old, &t.older_ignored),
                ] {
                    for i in set.iter() {
                        means[row * n + i.index()] += 1.0 / set.len() as f32;
                    }
                }
            }
            Some((m(clk_old)?, m(ign_old)?))
        } else {
            None
        };
        let counts = if with_counts {
            Some((m(clk_count)?, m(ign_count)?))
        } else {
            None
        };
        Ok(UserBatch {
            inputs: Tensor::from_vec(u, (s, ud), &Device::Cpu)?,
            ignored: m(ign)?,
            clicked: m(clk)?,
            ignored_mean: m(ign_mean)?,
            clicked_mean: m(clk_mean)?,
            counts,
            older,
        })
    }

    /// Scores and user-tower outputs of a batch of steps.
    fn forward(
        &self,
        steps: &[&Transition],
    ) -> Result<(Tensor, crate::model::UserOut), NeuralError> {
        let b = self.user_tensors(steps)?;
        let items = self.model.items(&self.item_inputs)?;
        let counts = b.counts.as_ref().map(|(c, i)| (c, i));
        let older = b.older.as_ref().map(|(c, i)| (c, i));
        let users = self.model.users(
            &b.inputs,
            &b.clicked_mean,
            &b.ignored_mean,
            counts,
            older,
            &items,
        )?;
        let scores = self.model.scores(&users, &items, &b.ignored, &b.clicked)?;
        Ok((scores, users))
    }

    /// The loss of a batch of episodes played in the environment: policy gradient (REINFORCE or
    /// actor-critic), imitation of the teacher (distillation) or posterior distillation, plus
    /// the baseline's loss and the entropy bonus.
    pub fn rl_loss(&self, episodes: &[Vec<Transition>]) -> Result<(Tensor, f64), NeuralError> {
        let steps: Vec<&Transition> = episodes.iter().flatten().collect();
        let s = steps.len();
        let (scores, users) = self.forward(&steps)?;
        let imitate = self.config.algo == Algo::Distill;
        let posterior = self.config.algo == Algo::Posterior;
        let temperature = self.model.config.temperature;
        // The log-probability of the slates (or the teacher's) under the network; posterior
        // distillation reads every item's probability instead and skips it.
        let log_prob = if posterior {
            None
        } else {
            let chosen: Vec<Vec<u32>> = steps
                .iter()
                .map(|t| {
                    let slate = if imitate { &t.teacher } else { &t.slate };
                    slate.iter().map(|i| i.0).collect()
                })
                .collect();
            if imitate && chosen.iter().any(Vec::is_empty) {
                return Err(NeuralError::Config(
                    "distillation needs the teacher's slate in every state".into(),
                ));
            }
            let masks = position_masks(&chosen, self.features.items(), DType::F32)?;
            Some(plackett_luce_log_prob(
                &scores,
                &chosen,
                &masks,
                temperature,
            )?)
        };
        let value = &users.value;
        let gamma = self.reward.gamma();
        let targets: Tensor = match self.config.algo {
            Algo::ActorCritic => {
                // r_t + gamma V(s_{t+1}), with no bootstrap after a user's last slate.
                let v: Vec<f32> = value.detach().to_vec1::<f32>()?;
                let t: Vec<f32> = (0..s)
                    .map(|i| {
                        let next = if steps[i].last { 0.0 } else { v[i + 1] };
                        steps[i].reward as f32 + gamma as f32 * next
                    })
                    .collect();
                Tensor::from_vec(t, s, &Device::Cpu)?
            }
            _ => Tensor::from_vec(
                steps.iter().map(|t| t.ret as f32).collect::<Vec<_>>(),
                s,
                &Device::Cpu,
            )?,
        };
        let advantage = (&targets - value.detach())?;
        let adv: Vec<f32> = advantage.to_vec1()?;
        let mean = adv.iter().sum::<f32>() / s.max(1) as f32;
        let sd = (adv.iter().map(|a| (a - mean).powi(2)).sum::<f32>() / s.max(1) as f32)
            .sqrt()
            .max(1e-6);
        let normalised = Tensor::from_vec(
            adv.iter().map(|a| (a - mean) / sd).collect::<Vec<_>>(),
            s,
            &Device::Cpu,
        )?;
        let actor = match &log_prob {
            None => self.posterior_loss(&steps, &scores)?,
            Some(log_prob) if imitate => log_prob.mean_all()?.neg()?,
            Some(log_prob) => (normalised * log_prob)?.mean_all()?.neg()?,
        };
        let critic = (targets - value)?.sqr()?.mean_all()?;
        let entropy = first_position_entropy(&scores, temperature)?.mean_all()?;
        let loss =
            ((actor + (critic * self.config.value_weight)?)? - (&entropy * self.config.entropy)?)?;
        Ok((loss, f64::from(entropy.to_scalar::<f32>()?)))
    }

    /// The supervised loss of logged interactions: click cross-entropy on every shown entry,
    /// purchase cross-entropy on every clicked entry.
    pub fn supervised_loss(&self, logged: &[Interaction]) -> Result<Tensor, NeuralError> {
        self.supervised_loss_weighted(logged, None)
    }

    /// [`Trainer::supervised_loss`] with per-entry weights (one per slate entry of each
    /// interaction, as [`ips_weights`] gives them): each cross-entropy is the weighted mean
    /// over its entries, self-normalised by the batch's sum of weights. `None` is the
    /// unweighted loss, computed exactly as [`Trainer::supervised_loss`] always has.
    pub fn supervised_loss_weighted(
        &self,
        logged: &[Interaction],
        weights: Option<&[Vec<f32>]>,
    ) -> Result<Tensor, NeuralError> {
        if self.config.catalog_softmax && weights.is_some() {
            return Err(NeuralError::Config(
                "the catalog softmax takes no per-entry weights: it learns from the clicked entries alone".into(),
            ));
        }
        if let Some(w) = weights {
            let fits = w.len() == logged.len()
                && w.iter()
                    .zip(logged)
                    .all(|(w, i)| w.len() == i.decision.slate.len());
            if !fits {
                return Err(NeuralError::Config(
                    "the weights do not have one entry per shown item of each interaction".into(),
                ));
            }
        }
        let mut steps = Vec::with_capacity(logged.len());
        let mut step_weights: Vec<&[f32]> = Vec::new();
        let mut view = UserView::default();
        for (row, i) in logged.iter().enumerate() {
            self.features.user_view(&i.context, &mut view);
            let slate: Vec<ItemId> = i
                .decision
                .slate
                .items()
                .iter()
                .copied()
                .filter(|x| x.index() < self.features.items())
                .collect();
            if slate.len() != i.decision.slate.len() {
                continue;
            }
            if let Some(w) = weights {
                step_weights.push(&w[row]);
            }
            steps.push(Transition {
                input: view.input.clone(),
                ignored: view.ignored.clone(),
                clicked: view.clicked.clone(),
                older_ignored: view.older_ignored.clone(),
                older_clicked: view.older_clicked.clone(),
                flagged_ignored: view.flagged_ignored.clone(),
                flagged_clicked: view.flagged_clicked.clone(),
                slate,
                clicks: i.feedback.clicks.clone(),
                purchases: i.feedback.purchases.clone(),
                reward: 0.0,
                ret: 0.0,
                last: false,
                teacher: Vec::new(),
                values: Vec::new(),
            });
        }
        if steps.is_empty() {
            return Err(NeuralError::Config(
                "no logged interaction fits this catalog".into(),
            ));
        }
        let refs: Vec<&Transition> = steps.iter().collect();
        let (scores, _) = self.forward(&refs)?;
        let n = self.features.items();
        let (mut idx, mut click_t, mut buy_idx, mut buy_t) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let (mut click_w, mut buy_w) = (Vec::new(), Vec::new());
        for (row, t) in steps.iter().enumerate() {
            for (k, item) in t.slate.iter().enumerate() {
                let flat = (row * n + item.index()) as u32;
                let w = step_weights.get(row).map_or(1.0, |w| w[k]);
                idx.push(flat);
                click_t.push(if t.clicks[k] { 1f32 } else { 0.0 });
                click_w.push(w);
                if t.clicks[k] {
                    buy_idx.push(flat);
                    buy_t.push(if t.purchases[k] { 1f32 } else { 0.0 });
                    buy_w.push(w);
                }
            }
        }
        let weighted = weights.is_some();
        let bce = |logits: &Tensor,
                   targets: Vec<f32>,
                   w: Vec<f32>|
         -> Result<Tensor, NeuralError> {
            let m = targets.len();
            let targets = Tensor::from_vec(targets, m, &Device::Cpu)?;
            if weighted {
                weighted_bce_with_logits(logits, &targets, &Tensor::from_vec(w, m, &Device::Cpu)?)
            } else {
                bce_with_logits(logits, &targets)
            }
        };
        let flat = scores.flatten_all()?;
        let mut loss = if self.config.catalog_softmax {
            // Each clicked entry is one choice out of the catalog: its log-probability under
            // the softmax of the row's scores over every item.
            let chosen: Vec<u32> = idx
                .iter()
                .zip(&click_t)
                .filter(|(_, c)| **c > 0.5)
                .map(|(i, _)| *i)
                .collect();
            if chosen.is_empty() {
                return Err(NeuralError::Config(
                    "the catalog softmax needs a clicked entry in the batch".into(),
                ));
            }
            let c = chosen.len();
            let log_p =
                candle_nn::ops::log_softmax(&scores, candle_core::D::Minus1)?.flatten_all()?;
            log_p
                .index_select(&Tensor::from_vec(chosen, c, &Device::Cpu)?, 0)?
                .mean_all()?
                .neg()?
        } else {
            let m = idx.len();
            let click_logits = flat.index_select(&Tensor::from_vec(idx, m, &Device::Cpu)?, 0)?;
            bce(&click_logits, click_t, click_w)?
        };
        if !buy_idx.is_empty() {
            let b = buy_idx.len();
            let logits = flat.index_select(&Tensor::from_vec(buy_idx, b, &Device::Cpu)?, 0)?;
            let purchase = self.model.purchase_logits(&logits)?;
            loss = (loss + bce(&purchase, buy_t, buy_w)?)?;
        }
        Ok(loss)
    }

    fn apply(&mut self, loss: &Tensor) -> Result<f64, NeuralError> {
        self.optimizer.backward_step(loss)?;
        self.frozen = Frozen::from_model(&self.model, &self.item_inputs)?;
        Ok(f64::from(loss.to_dtype(DType::F32)?.to_scalar::<f32>()?))
    }

    /// One reinforcement-learning iteration: a batch of new training users, then one step.
    pub fn rl_iteration<E: Environment>(
        &mut self,
        env: &mut E,
    ) -> Result<IterationStats, NeuralError> {
        self.rl_iteration_with(env, None)
    }

    /// One iteration of reinforcement learning or, with [`Algo::Distill`], of imitating
    /// `teacher` on a batch of new training users.
    pub fn rl_iteration_with<E: Environment>(
        &mut self,
        env: &mut E,
        teacher: Option<&mut dyn Policy>,
    ) -> Result<IterationStats, NeuralError> {
        if self.config.algo == Algo::Posterior {
            return Err(NeuralError::Config(
                "posterior distillation learns from the values a simulator reveals: use rl_iteration_revealed or train_revealed".into(),
            ));
        }
        self.iteration_from(env, teacher, None)
    }

    /// One iteration in a simulator that reveals its users: like
    /// [`Trainer::rl_iteration_with`], and the only way to run [`Algo::Posterior`].
    pub fn rl_iteration_revealed<E: Oracle>(
        &mut self,
        env: &mut E,
        teacher: Option<&mut dyn Policy>,
    ) -> Result<IterationStats, NeuralError> {
        self.iteration_from(env, teacher, Some(revealed_values::<E>))
    }

    fn iteration_from<E: Environment>(
        &mut self,
        env: &mut E,
        teacher: Option<&mut dyn Policy>,
        reveal: Option<Reveal<E>>,
    ) -> Result<IterationStats, NeuralError> {
        if self.config.algo == Algo::Distill && teacher.is_none() {
            return Err(NeuralError::Config(
                "distillation needs a teacher policy".into(),
            ));
        }
        let episodes = self.collect_from(env, self.batch_users(), teacher, reveal)?;
        self.learn_from(&episodes)
    }

    /// The user numbers of the next iteration's batch. Training users live far from the
    /// arena's numbers (which start at 0).
    pub fn batch_users(&self) -> std::ops::Range<u64> {
        let first = (1u64 << 40) + (self.iterations_done * self.config.batch) as u64;
        first..first + self.config.batch as u64
    }

    /// The learning half of an iteration: one optimiser step on `episodes`, the batch's users
    /// in order (collected here or, with [`TrainConfig::user_streams`], by workers that each
    /// played part of [`Trainer::batch_users`] with the same weights).
    pub fn learn_from(
        &mut self,
        episodes: &[Vec<Transition>],
    ) -> Result<IterationStats, NeuralError> {
        if episodes.iter().all(Vec::is_empty) {
            return Err(NeuralError::Config(
                "no slates to learn from: the batch's episodes are empty".into(),
            ));
        }
        self.check_episodes(episodes)?;
        let users = episodes.len().max(1) as f64;
        let reward_per_user = episodes.iter().flatten().map(|t| t.reward).sum::<f64>() / users;
        let return_per_user = episodes
            .iter()
            .filter_map(|e| e.first())
            .map(|t| t.ret)
            .sum::<f64>()
            / users;
        let slates_per_user = episodes.iter().map(Vec::len).sum::<usize>() as f64 / users;
        let (loss, entropy) = self.rl_loss(episodes)?;
        let loss = self.apply(&loss)?;
        self.iterations_done += 1;
        let stats = IterationStats {
            iteration: self.iterations_done,
            reward_per_user,
            return_per_user,
            slates_per_user,
            loss,
            entropy,
        };
        self.history.push(stats.clone());
        Ok(stats)
    }

    /// One supervised iteration on a batch of logged interactions.
    pub fn supervised_iteration(
        &mut self,
        logged: &[Interaction],
    ) -> Result<IterationStats, NeuralError> {
        self.supervised_iteration_weighted(logged, None)
    }

    /// One supervised iteration with per-entry weights ([`Trainer::supervised_loss_weighted`]).
    /// Batches take the interactions in turn, wrapping around, so callers shuffle them first
    /// when their order carries meaning (a shop's log is in time order).
    pub fn supervised_iteration_weighted(
        &mut self,
        logged: &[Interaction],
        weights: Option<&[Vec<f32>]>,
    ) -> Result<IterationStats, NeuralError> {
        if logged.is_empty() {
            return Err(NeuralError::Config(
                "supervised training needs logged interactions".into(),
            ));
        }
        let b = self.config.batch.min(logged.len());
        let start = (self.iterations_done * b) % logged.len();
        let batch: Vec<Interaction> = (0..b)
            .map(|j| logged[(start + j) % logged.len()].clone())
            .collect();
        let batch_weights: Option<Vec<Vec<f32>>> = match weights {
            Some(w) if w.len() != logged.len() => {
                return Err(NeuralError::Config(format!(
                    "{} weight rows for {} logged interactions",
                    w.len(),
                    logged.len()
                )));
            }
            Some(w) => Some(
                (0..b)
                    .map(|j| w[(start + j) % logged.len()].clone())
                    .collect(),
            ),
            None => None,
        };
        let loss = self.supervised_loss_weighted(&batch, batch_weights.as_deref())?;
        let loss = self.apply(&loss)?;
        self.iterations_done += 1;
        let stats = IterationStats {
            iteration: self.iterations_done,
            loss,
            ..IterationStats::default()
        };
        self.history.push(stats.clone());
        Ok(stats)
    }

    /// The training loop, for every algorithm: `config.iterations` iterations, each followed by
    /// `hook` (progress, TensorBoard, checkpoints: whatever the caller does between steps).
    /// Reinforcement learning plays `env`, distillation imitates `data.teacher` there, and
    /// supervised learning reads `data.logged`. Posterior distillation needs a simulator that
    /// reveals its users ([`Trainer::train_revealed`]); here it is an error before any step.
    pub fn train<E: Environment, X: From<NeuralError>>(
        &mut self,
        env: &mut E,
        data: TrainData<'_>,
        hook: impl FnMut(&Trainer, &IterationStats) -> Result<(), X>,
    ) -> Result<(), X> {
        self.train_from(env, data, hook, None)
    }

    /// [`Trainer::train`] in a simulator that reveals its users, which every algorithm runs in
    /// and [`Algo::Posterior`] needs.
    pub fn train_revealed<E: Oracle, X: From<NeuralError>>(
        &mut self,
        env: &mut E,
        data: TrainData<'_>,
        hook: impl FnMut(&Trainer, &IterationStats) -> Result<(), X>,
    ) -> Result<(), X> {
        self.train_from(env, data, hook, Some(revealed_values::<E>))
    }

    fn train_from<E: Environment, X: From<NeuralError>>(
        &mut self,
        env: &mut E,
        mut data: TrainData<'_>,
        mut hook: impl FnMut(&Trainer, &IterationStats) -> Result<(), X>,
        reveal: Option<Reveal<E>>,
    ) -> Result<(), X> {
        if self.config.algo == Algo::Posterior && reveal.is_none() {
            return Err(NeuralError::Config(
                "posterior distillation learns from the values a simulator reveals: use train_revealed".into(),
            )
            .into());
        }
        for _ in 0..self.config.iterations {
            let stats = match self.config.algo {
                Algo::Supervised => self.supervised_iteration(data.logged)?,
                Algo::Reinforce | Algo::ActorCritic | Algo::Distill | Algo::Posterior => {
                    let teacher = data.teacher.as_mut().map(|t| &mut **t as &mut dyn Policy);
                    self.iteration_from(env, teacher, reveal)?
                }
            };
            hook(self, &stats)?;
        }
        Ok(())
    }

    /// The training loop on logged data alone, with no environment (a shop's own log):
    /// `config.iterations` supervised iterations, each followed by `hook`. Only
    /// [`Algo::Supervised`] learns from logs without playing users; any other algorithm is a
    /// [`NeuralError::Config`].
    pub fn train_logged<X: From<NeuralError>>(
        &mut self,
        data: LoggedData<'_>,
        mut hook: impl FnMut(&Trainer, &IterationStats) -> Result<(), X>,
    ) -> Result<(), X> {
        if self.config.algo != Algo::Supervised {
            return Err(NeuralError::Config(format!(
                "`{}` plays simulated users; logged data alone trains only `supervised`",
                self.config.algo.name()
            ))
            .into());
        }
        for _ in 0..self.config.iterations {
            let stats = self.supervised_iteration_weighted(data.interactions, data.weights)?;
            hook(self, &stats)?;
        }
        Ok(())
    }
}

/// Logged data for [`Trainer::train_logged`].
#[derive(Debug, Clone, Copy)]
pub struct LoggedData<'a> {
    /// The interactions, in the order batches take them.
    pub interactions: &'a [Interaction],
    /// One weight per slate entry of each interaction ([`ips_weights`]), or `None` for equal
    /// weights.
    pub weights: Option<&'a [Vec<f32>]>,
}

/// What training reads besides the environment.
#[derive(Default)]
pub struct TrainData<'a> {
    /// Logged interactions (supervised learning).
    pub logged: &'a [Interaction],
    /// The policy to imitate (distillation).
    pub teacher: Option<&'a mut dyn Policy>,
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use metarec_core::{Context, Item, PastEvent, UserKey};

    /// A catalog of `n` items with two numeric features.
    pub(crate) fn catalog(n: usize) -> Catalog {
        let mut c = Catalog::new(vec!["a".into(), "embedding_0".into()]);
        for i in 0..n {
            c.push(Item {
                key: format!("i{i}"),
                features: vec![(i as f32 * 0.37).sin(), (i as f32 * 0.11).cos()],
                ..Item::default()
            })
            .unwrap();
        }
        c
    }

    /// A user's last step in the state `view`: item 0 shown and ignored, with `values`.
    pub(crate) fn one_slate(view: &UserView, values: Vec<f32>) -> Transition {
        Transition {
            input: view.input.clone(),
            ignored: view.ignored.clone(),
            clicked: view.clicked.clone(),
            older_ignored: Vec::new(),
            older_clicked: Vec::new(),
            flagged_ignored: view.flagged_ignored.clone(),
            flagged_clicked: view.flagged_clicked.clone(),
            slate: vec![ItemId(0)],
            clicks: vec![false],
            purchases: vec![false],
            reward: 0.0,
            ret: 0.0,
            last: true,
            teacher: Vec::new(),
            values,
        }
    }

    #[test]
    fn frozen_scores_equal_the_candle_scores() {
        let cat = catalog(12);
        let mut trainer = Trainer::new(&cat, RewardFn::default(), TrainConfig::default()).unwrap();
        // Move the weights off their initial zeros so every block matters.
        for (_, var) in sorted_vars(&trainer.varmap) {
            let t = var.as_tensor();
            let noise = Tensor::randn(0f32, 0.3, t.dims(), &Device::Cpu).unwrap();
            var.set(&(t + noise).unwrap()).unwrap();
        }
        trainer.frozen = Frozen::from_model(&trainer.model, &trainer.item_inputs).unwrap();
        let mut ctx = Context::for_user(UserKey::from("u"));
        ctx.tokens = vec!["country=France".into()];
        ctx.session.history = vec![
            PastEvent {
                item: ItemId(3),
                click: true,
                purchase: false,
            },
            PastEvent {
                item: ItemId(5),
                click: false,
                purchase: false,
            },
            PastEvent {
                item: ItemId(7),
                click: true,
                purchase: true,
            },
        ];
        let mut view = UserView::default();
        trainer.features.user_view(&ctx, &mut view);
        let step = one_slate(&view, Vec::new());
        let (scores, users) = trainer.forward(&[&step]).unwrap();
        let candle: Vec<f32> = scores.flatten_all().unwrap().to_vec1().unwrap();
        let (mut scratch, mut g) = (Vec::new(), Vec::new());
        let value = trainer.frozen.user(
            &view.input,
            &view.clicked,
            &view.ignored,
            &mut scratch,
            &mut g,
        );
        for (i, c) in candle.iter().enumerate() {
            let (ignored, clicked) = view.flags(ItemId(i as u32));
            let plain = trainer.frozen.score(&g, i, ignored, clicked);
            assert!((plain - c).abs() < 1e-4, "item {i}: {plain} vs {c}");
        }
        assert_eq!(candle.len(), 12);
        let v: f32 = users.value.to_vec1::<f32>().unwrap()[0];
        assert!((value - v).abs() < 1e-4, "{value} vs {v}");
    }
}
