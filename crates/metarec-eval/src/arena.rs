//! The arena: every contestant plays the same simulated new users, and the results come back
//! with 95% confidence intervals.
//!
//! For each seed, the users `0..users` of the scenario (drawn with that seed) arrive one after
//! the other; a contestant keeps what it learned from earlier users (a shop learning over its
//! customers) while each user is new to it (cold start). User `n` under seed `s` is the same
//! person with the same luck for every contestant (common random numbers), so differences come
//! from the policies. Jobs (contestant x seed) run on all cores; results do not depend on the
//! thread count.

use crate::summary::Summary;
use metarec_core::{
    Environment, EventId, Interaction, ItemId, Policy, RewardFn, SlateChoice, VocabError,
    decision_from_choice, rng_for,
};
use metarec_learn::registry::{BASELINES, build_policy};
use metarec_sim::Scenario;
use metarec_sim::shop::PlannerConfig;
use metarec_sim::{InformedConfig, InformedPolicy};
use rand::RngCore;
use serde::Serialize;
use std::fmt;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use thiserror::Error;

/// Why the arena cannot run.
#[derive(Debug, Error)]
pub enum ArenaError {
    /// A contestant name that no policy has.
    #[error("unknown policy `{name}`; expected one of: {expected}")]
    UnknownPolicy {
        /// The name given.
        name: String,
        /// The valid names.
        expected: String,
    },
    /// A policy could not be built.
    #[error("policy `{name}`: {message}")]
    Policy {
        /// The policy.
        name: String,
        /// What went wrong.
        message: String,
    },
    /// A policy produced a decision that breaks the vocabulary's invariants.
    #[error("policy `{name}` made an invalid decision: {source}")]
    InvalidDecision {
        /// The policy.
        name: String,
        /// The broken invariant.
        source: VocabError,
    },
    /// A setting is out of range.
    #[error("{0}")]
    Config(String),
}

/// One contestant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Contestant {
    /// A learned or heuristic policy from `metarec-learn`'s registry.
    Baseline(String),
    /// The myopic oracle: the best immediate slate for the user's hidden state.
    Oracle,
    /// The far-sighted planner: the oracle's knowledge plus lookahead at fatigue.
    Planner,
    /// The exact-model Bayesian yardstick: the simulator's model and population prior, but the
    /// user learnt from feedback like any policy ([`metarec_sim::InformedPolicy`]): `informed`
    /// shows the posterior's best slate, `informed-ts` a posterior draw's best (Thompson
    /// sampling); `:N` sets the particles per user.
    Informed {
        /// The name shown in reports.
        name: String,
        /// The policy's settings.
        settings: InformedConfig,
    },
    /// A trained neural policy from a model directory: `neural:DIR` samples its slates
    /// (Plackett-Luce), `neural-greedy:DIR` shows the top scores.
    Neural {
        /// The name shown in reports (`neural:DIR` or `neural-greedy:DIR`).
        name: String,
        /// The model directory.
        dir: std::path::PathBuf,
        /// Top scores instead of sampling.
        greedy: bool,
    },
    /// A trained network with its meta-trained adjuster, Bayesian or gradient-based
    /// (`adjusted:DIR`).
    Adjusted {
        /// The name shown in reports.
        name: String,
        /// The model directory (with `adjuster.json`).
        dir: std::path::PathBuf,
    },
}

impl Contestant {
    /// Every known contestant name.
    pub fn names() -> Vec<&'static str> {
        let mut names: Vec<&'static str> = BASELINES.to_vec();
        names.extend(["oracle", "planner", "informed", "informed-ts"]);
        names
    }

    /// Parses one name.
    pub fn parse(name: &str) -> Result<Contestant, ArenaError> {
        if let Some(dir) = name.strip_prefix("adjusted:") {
            if dir.is_empty() {
                return Err(ArenaError::Config(
                    "`adjusted:` needs a model directory, as in adjusted:model/".into(),
                ));
            }
            return Ok(Contestant::Adjusted {
                name: name.to_owned(),
                dir: dir.into(),
            });
        }
        for (prefix, greedy) in [("neural:", false), ("neural-greedy:", true)] {
            if let Some(dir) = name.strip_prefix(prefix) {
                if dir.is_empty() {
                    return Err(ArenaError::Config(format!(
                        "`{prefix}` needs a model directory, as in {prefix}model/"
                    )));
                }
                return Ok(Contestant::Neural {
                    name: name.to_owned(),
                    dir: dir.into(),
                    greedy,
                });
            }
        }
        match name {
            "oracle" => Ok(Contestant::Oracle),
            "planner" => Ok(Contestant::Planner),
            n if n.starts_with("informed") => parse_informed(n),
            n if BASELINES.contains(&n) => Ok(Contestant::Baseline(n.to_owned())),
            n => Err(ArenaError::UnknownPolicy {
                name: n.to_owned(),
                expected: format!(
                    "{}, neural:DIR, neural-greedy:DIR",
                    Contestant::names().join(", ")
                ),
            }),
        }
    }

    /// Parses a comma-separated list; `all` means every contestant.
    pub fn parse_list(list: &str) -> Result<Vec<Contestant>, ArenaError> {
        if list.trim() == "all" {
            return Contestant::names()
                .into_iter()
                .map(Contestant::parse)
                .collect();
        }
        let mut out: Vec<Contestant> = Vec::new();
        for name in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let c = Contestant::parse(name)?;
            if !out.contains(&c) {
                out.push(c);
            }
        }
        if out.is_empty() {
            return Err(ArenaError::Config("no policies given".into()));
        }
        Ok(out)
    }

    /// The contestant's name.
    pub fn name(&self) -> &str {
        match self {
            Contestant::Baseline(n) => n,
            Contestant::Oracle => "oracle",
            Contestant::Planner => "planner",
            Contestant::Neural { name, .. }
            | Contestant::Adjusted { name, .. }
            | Contestant::Informed { name, .. } => name,
        }
    }
}

/// Parses `informed`, `informed-ts` and either with `:PARTICLES`.
fn parse_informed(name: &str) -> Result<Contestant, ArenaError> {
    let (mode, particles) = match name.split_once(':') {
        Some((mode, n)) => (
            mode,
            n.parse::<usize>()
                .ok()
                .filter(|n| (1..=100_000).contains(n))
                .ok_or_else(|| {
                    ArenaError::Config(format!(
                        "`{name}`: the particle count after `:` must be a whole number from 1 to 100000"
                    ))
                })?,
        ),
        None => (name, InformedConfig::default().particles),
    };
    let thompson = match mode {
        "informed" => false,
        "informed-ts" => true,
        _ => {
            return Err(ArenaError::UnknownPolicy {
                name: name.to_owned(),
                expected: "informed, informed-ts, informed:N or informed-ts:N".into(),
            });
        }
    };
    Ok(Contestant::Informed {
        name: name.to_owned(),
        settings: InformedConfig {
            particles,
            thompson,
            ..InformedConfig::default()
        },
    })
}

/// Settings of an arena run.
#[derive(Debug, Clone, PartialEq)]
pub struct ArenaConfig {
    /// New users per seed.
    pub users: usize,
    /// Independent repetitions (user populations and policy randomness).
    pub seeds: usize,
    /// Length of the cold-start curve: reward at interactions 1..=horizon of each user.
    pub horizon: usize,
    /// Worker threads (0: all cores).
    pub threads: usize,
    /// Keep every interaction for the log.
    pub keep_log: bool,
    /// The objective (default: the scenario's).
    pub reward: Option<RewardFn>,
    /// Contestants every other contestant is compared with on the same users (those that ran).
    pub paired_against: Vec<String>,
}

impl Default for ArenaConfig {
    fn default() -> Self {
        ArenaConfig {
            users: 1000,
            seeds: 3,
            horizon: 20,
            threads: 0,
            keep_log: false,
            reward: None,
            paired_against: vec!["popularity".into()],
        }
    }
}

/// What one user did under one contestant.
#[derive(Debug, Clone, Default)]
struct UserOutcome {
    reward: f64,
    discounted: f64,
    clicks: f64,
    impressions: f64,
    purchases: f64,
    revenue: f64,
    slates: f64,
    visits: f64,
    regret: f64,
    curve: Vec<f64>,
    /// The expected reward of this policy's slate at interaction t (0 after leaving).
    expected: Vec<f64>,
    /// The expected reward of the oracle's slate for the same user in the same state.
    best: Vec<f64>,
}

/// Results of one contestant over all users and seeds.
#[derive(Debug, Clone, Serialize)]
pub struct ContestantReport {
    /// The contestant.
    pub policy: String,
    /// Users played (users x seeds).
    pub users: usize,
    /// Total reward per user over their lifetime (all visits).
    pub reward: Summary,
    /// Discounted return per user (the reward function's gamma, per slate).
    pub discounted_return: Summary,
    /// Total reward per user over their first `horizon` interactions: the cold-start window.
    pub early_reward: Summary,
    /// Reward per visit (session).
    pub reward_per_visit: Summary,
    /// Clicks per shown item.
    pub ctr: Summary,
    /// Purchases per click.
    pub cvr: Summary,
    /// Revenue per user.
    pub revenue: Summary,
    /// Slates per visit.
    pub visit_length: Summary,
    /// Visits per user.
    pub visits: Summary,
    /// Regret per user: the oracle's expected immediate reward minus this policy's, summed over
    /// the user's slates.
    pub regret: Summary,
    /// Mean reward at interaction t = 1..=horizon (0 once a user has left).
    pub curve: Vec<Summary>,
    /// At interaction t = 1..=horizon, the expected reward of this policy's slates as a share of
    /// the expected reward of the oracle's slates for the same users in the same states (users
    /// still there at t): how well the policy knows each user by then, apart from how many
    /// users stayed.
    pub oracle_share: Vec<Summary>,
    /// Seconds spent (all seeds, summed over threads).
    pub seconds: f64,
}

/// A paired comparison of two contestants on the same users.
#[derive(Debug, Clone, Serialize)]
pub struct PairedDifference {
    /// The contestant compared.
    pub policy: String,
    /// The contestant it is compared against.
    pub against: String,
    /// Mean per-user difference in total reward (`policy - against`) over the same users,
    /// with its 95% interval. Common random numbers make this much tighter than comparing the
    /// two separate intervals.
    pub reward_difference: Summary,
}

/// The arena's results.
#[derive(Debug, Clone, Serialize)]
pub struct ArenaReport {
    /// The scenario's name.
    pub scenario: String,
    /// New users per seed.
    pub users_per_seed: usize,
    /// Seeds.
    pub seeds: usize,
    /// Cold-start curve length.
    pub horizon: usize,
    /// The objective.
    pub reward: RewardFn,
    /// One entry per contestant, in the order given.
    pub contestants: Vec<ContestantReport>,
    /// Paired differences: every contestant against each of `ArenaConfig::paired_against` that
    /// ran (default `popularity`), and the planner against the oracle (when both ran).
    pub paired: Vec<PairedDifference>,
    /// Every interaction, when asked for (contestant order, then seed, then user).
    #[serde(skip)]
    pub log: Vec<Interaction>,
}

struct JobResult {
    outcomes: Vec<UserOutcome>,
    log: Vec<Interaction>,
    seconds: f64,
}

/// Seed of the users of arena seed `s`: distinct from the scenario seed's own streams.
fn user_seed(scenario_seed: u64, s: usize) -> u64 {
    rng_for(scenario_seed, 0xa7e4_0000 + s as u64).next_u64()
}

fn play_job(
    scenario: &Scenario,
    contestant: &Contestant,
    seed_index: usize,
    config: &ArenaConfig,
    reward: &RewardFn,
) -> Result<JobResult, ArenaError> {
    let start = std::time::Instant::now();
    let mut env = scenario.env_with_seed(user_seed(scenario.config.seed, seed_index));
    let k = env.slate_size();
    // Seeded by the contestant's name, not its place in the list, so a policy's numbers do not
    // change when other contestants are added or reordered.
    let mut rng = rng_for(
        seed_index as u64,
        metarec_core::stable_hash(contestant.name()),
    );
    let mut policy: Option<Box<dyn Policy>> = match contestant {
        Contestant::Baseline(name) => Some(
            build_policy(name, env.catalog(), reward, seed_index as u64).map_err(|e| {
                ArenaError::Policy {
                    name: name.clone(),
                    message: e.to_string(),
                }
            })?,
        ),
        Contestant::Neural { name, dir, greedy } => {
            Some(load_neural(name, dir, *greedy, env.catalog())?)
        }
        Contestant::Adjusted { name, dir } => Some(
            crate::meta::load_adjusted_policy(name, dir, env.catalog()).map_err(|e| {
                ArenaError::Policy {
                    name: name.clone(),
                    message: e.to_string(),
                }
            })?,
        ),
        Contestant::Informed { settings, .. } => Some(Box::new(InformedPolicy::new(
            scenario.world.clone(),
            &scenario.config,
            reward,
            InformedConfig {
                seed: seed_index as u64,
                ..*settings
            },
        ))),
        _ => None,
    };
    let planner = PlannerConfig {
        gamma: reward.gamma(),
        ..PlannerConfig::default()
    };
    let mut outcomes = Vec::with_capacity(config.users);
    let mut log = Vec::new();
    for user in 0..config.users as u64 {
        let mut context = Some(env.reset(user));
        if let (Some(p), Some(ctx)) = (policy.as_mut(), context.as_ref()) {
            p.start_user(ctx);
        }
        let mut out = UserOutcome {
            curve: vec![0.0; config.horizon],
            expected: vec![0.0; config.horizon],
            best: vec![0.0; config.horizon],
            visits: 1.0,
            ..UserOutcome::default()
        };
        let mut t = 0usize;
        let mut discount = 1.0;
        let mut visit = 0;
        while let Some(ctx) = context {
            if ctx.session.session != visit {
                visit = ctx.session.session;
                out.visits += 1.0;
            }
            let choice = match (&mut policy, contestant) {
                (Some(p), _) => p.decide(&ctx, k, &mut rng),
                (None, Contestant::Planner) => certain(env.planner_slate(reward, &planner)),
                (None, _) => certain(env.oracle_slate(reward)),
            };
            let name = contestant.name();
            let version = policy
                .as_ref()
                .map_or_else(|| "0".to_owned(), |p| p.model_version());
            let event = EventId(format!("{name}-s{seed_index}-u{user}-t{t}"));
            let decision =
                decision_from_choice(choice, event, name, version).map_err(|source| {
                    ArenaError::InvalidDecision {
                        name: name.to_owned(),
                        source,
                    }
                })?;
            let best = env.expected_reward(&env.oracle_slate(reward), reward);
            let mine = env.expected_reward(decision.slate.items(), reward);
            out.regret += best - mine;
            if t < config.horizon {
                out.expected[t] = mine;
                out.best[t] = best;
            }
            let step = env.step(&decision);
            let r = reward.reward(&step.feedback);
            out.reward += r;
            out.discounted += discount * r;
            discount *= reward.gamma();
            if t < config.horizon {
                out.curve[t] = r;
            }
            out.clicks += step.feedback.click_count() as f64;
            out.purchases += step.feedback.purchase_count() as f64;
            out.revenue += step.feedback.total_revenue();
            out.impressions += decision.slate.len() as f64;
            out.slates += 1.0;
            t += 1;
            let next = step.next;
            if let Some(p) = policy.as_mut() {
                let interaction = Interaction {
                    context: ctx,
                    decision,
                    feedback: step.feedback,
                };
                p.observe(&interaction);
                if config.keep_log {
                    log.push(interaction);
                }
            } else if config.keep_log {
                log.push(Interaction {
                    context: ctx,
                    decision,
                    feedback: step.feedback,
                });
            }
            context = next;
        }
        outcomes.push(out);
    }
    Ok(JobResult {
        outcomes,
        log,
        seconds: start.elapsed().as_secs_f64(),
    })
}

/// Loads a trained network as a sampling policy (propensities of later positions from 32
/// Monte Carlo rankings).
fn load_neural(
    name: &str,
    dir: &std::path::Path,
    greedy: bool,
    catalog: &metarec_core::Catalog,
) -> Result<Box<dyn Policy>, ArenaError> {
    let fail = |e: metarec_neural::NeuralError| ArenaError::Policy {
        name: name.to_owned(),
        message: e.to_string(),
    };
    let loaded = metarec_neural::checkpoint::load(dir, catalog).map_err(fail)?;
    let item_inputs = metarec_neural::item_tensor(&loaded.features).map_err(fail)?;
    let frozen =
        metarec_neural::model::Frozen::from_model(&loaded.model, &item_inputs).map_err(fail)?;
    Ok(Box::new(metarec_neural::policy::NeuralPolicy::new(
        name,
        loaded.manifest.iterations.to_string(),
        loaded.features,
        frozen,
        if greedy {
            metarec_neural::policy::Mode::Greedy
        } else {
            metarec_neural::policy::Mode::Sample { draws: 32 }
        },
    )))
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

fn summarise(
    name: &str,
    outcomes: &[UserOutcome],
    horizon: usize,
    seconds: f64,
) -> ContestantReport {
    let col = |f: fn(&UserOutcome) -> f64| outcomes.iter().map(f).collect::<Vec<f64>>();
    ContestantReport {
        policy: name.to_owned(),
        users: outcomes.len(),
        reward: Summary::of(&col(|o| o.reward)),
        discounted_return: Summary::of(&col(|o| o.discounted)),
        // The cold-start window's total is the curve summed over it, user by user.
        early_reward: Summary::of(
            &outcomes
                .iter()
                .map(|o| o.curve.iter().sum())
                .collect::<Vec<f64>>(),
        ),
        reward_per_visit: Summary::ratio(&col(|o| o.reward), &col(|o| o.visits)),
        ctr: Summary::ratio(&col(|o| o.clicks), &col(|o| o.impressions)),
        cvr: Summary::ratio(&col(|o| o.purchases), &col(|o| o.clicks)),
        revenue: Summary::of(&col(|o| o.revenue)),
        visit_length: Summary::ratio(&col(|o| o.slates), &col(|o| o.visits)),
        visits: Summary::of(&col(|o| o.visits)),
        regret: Summary::of(&col(|o| o.regret)),
        curve: (0..horizon)
            .map(|t| Summary::of(&outcomes.iter().map(|o| o.curve[t]).collect::<Vec<_>>()))
            .collect(),
        oracle_share: (0..horizon)
            .map(|t| {
                let at = |f: fn(&UserOutcome) -> &Vec<f64>| -> Vec<f64> {
                    outcomes.iter().map(|o| f(o)[t]).collect()
                };
                Summary::ratio(&at(|o| &o.expected), &at(|o| &o.best))
            })
            .collect(),
        seconds,
    }
}

/// Runs every contestant on `config.users` new users for each of `config.seeds` seeds.
/// `progress` is called after each finished job with a line to show.
pub fn run_arena(
    scenario: &Scenario,
    contestants: &[Contestant],
    config: &ArenaConfig,
    progress: &(dyn Fn(&str) + Sync),
) -> Result<ArenaReport, ArenaError> {
    if config.users == 0 || config.seeds == 0 {
        return Err(ArenaError::Config(
            "--users and --seeds must be at least 1".into(),
        ));
    }
    let reward = config.reward.unwrap_or(scenario.config.reward);
    let jobs: Vec<(usize, usize)> = (0..contestants.len())
        .flat_map(|c| (0..config.seeds).map(move |s| (c, s)))
        .collect();
    let threads = if config.threads == 0 {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    } else {
        config.threads
    }
    .min(jobs.len())
    .max(1);
    let next = AtomicUsize::new(0);
    let done = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<Result<JobResult, ArenaError>>>> =
        Mutex::new((0..jobs.len()).map(|_| None).collect());
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                loop {
                    let j = next.fetch_add(1, Ordering::Relaxed);
                    let Some(&(c, s)) = jobs.get(j) else { break };
                    let result = play_job(scenario, &contestants[c], s, config, &reward);
                    let finished = done.fetch_add(1, Ordering::Relaxed) + 1;
                    progress(&format!(
                        "[{finished}/{}] {} seed {s} done",
                        jobs.len(),
                        contestants[c].name()
                    ));
                    results.lock().unwrap_or_else(|e| e.into_inner())[j] = Some(result);
                }
            });
        }
    });
    let mut results = results.into_inner().unwrap_or_else(|e| e.into_inner());
    let mut reports = Vec::with_capacity(contestants.len());
    let mut per_user: Vec<Vec<f64>> = Vec::with_capacity(contestants.len());
    let mut log = Vec::new();
    for (c, contestant) in contestants.iter().enumerate() {
        let mut outcomes = Vec::new();
        let mut seconds = 0.0;
        for (j, &(jc, _)) in jobs.iter().enumerate() {
            if jc != c {
                continue;
            }
            let r = results[j].take().expect("every job ran")?;
            outcomes.extend(r.outcomes);
            log.extend(r.log);
            seconds += r.seconds;
        }
        per_user.push(outcomes.iter().map(|o| o.reward).collect());
        reports.push(summarise(
            contestant.name(),
            &outcomes,
            config.horizon,
            seconds,
        ));
    }
    let index = |name: &str| contestants.iter().position(|c| c.name() == name);
    let mut pairs: Vec<(usize, usize)> = Vec::new();
    for reference in &config.paired_against {
        if let Some(p) = index(reference) {
            pairs.extend((0..contestants.len()).filter(|&c| c != p).map(|c| (c, p)));
        }
    }
    if let (Some(planner), Some(oracle)) = (index("planner"), index("oracle")) {
        pairs.push((planner, oracle));
    }
    // Outcomes are in (seed, user) order for every contestant, so entry i is the same user.
    let paired = pairs
        .into_iter()
        .map(|(a, b)| PairedDifference {
            policy: contestants[a].name().to_owned(),
            against: contestants[b].name().to_owned(),
            reward_difference: Summary::of(
                &per_user[a]
                    .iter()
                    .zip(&per_user[b])
                    .map(|(x, y)| x - y)
                    .collect::<Vec<_>>(),
            ),
        })
        .collect();
    Ok(ArenaReport {
        scenario: scenario.config.name.clone(),
        users_per_seed: config.users,
        seeds: config.seeds,
        horizon: config.horizon,
        reward,
        contestants: reports,
        paired,
        log,
    })
}

fn interval(s: &Summary, digits: usize) -> String {
    format!("{:.d$} [{:.d$}, {:.d$}]", s.mean, s.low, s.high, d = digits)
}

impl fmt::Display for ArenaReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "arena: scenario `{}`, {} new users x {} seeds per policy; reward = {} x click + {} x purchase + {} x revenue, gamma {}",
            self.scenario,
            self.users_per_seed,
            self.seeds,
            self.reward.click_weight(),
            self.reward.purchase_weight(),
            self.reward.revenue_weight(),
            self.reward.gamma()
        )?;
        writeln!(f, "each cell: mean [95% confidence interval]")?;
        let rows: Vec<[String; 10]> = self
            .contestants
            .iter()
            .map(|c| {
                [
                    c.policy.clone(),
                    interval(&c.reward, 2),
                    interval(&c.early_reward, 2),
                    interval(&c.reward_per_visit, 2),
                    interval(&c.discounted_return, 2),
                    interval(&c.ctr, 4),
                    interval(&c.cvr, 3),
                    interval(&c.revenue, 1),
                    interval(&c.visit_length, 2),
                    interval(&c.regret, 2),
                ]
            })
            .collect();
        let early = format!("first {} interactions", self.horizon);
        let header = [
            "policy",
            "reward/user",
            &early,
            "reward/visit",
            "discounted return",
            "CTR",
            "CVR",
            "revenue/user",
            "slates/visit",
            "regret/user",
        ];
        let widths: Vec<usize> = (0..header.len())
            .map(|i| {
                rows.iter()
                    .map(|r| r[i].len())
                    .chain([header[i].len()])
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let line = |cells: &[&str]| {
            cells
                .iter()
                .zip(&widths)
                .map(|(c, w)| format!("{c:<w$}"))
                .collect::<Vec<_>>()
                .join("  ")
        };
        writeln!(f, "{}", line(&header))?;
        for r in &rows {
            writeln!(
                f,
                "{}",
                line(&r.iter().map(String::as_str).collect::<Vec<_>>())
            )?;
        }
        let marks: Vec<usize> = [1, 2, 3, 5, 10, 20, 30, 50]
            .into_iter()
            .filter(|&t| t <= self.horizon)
            .collect();
        writeln!(f)?;
        writeln!(
            f,
            "cold-start curve: mean reward at interaction t of each new user (0 after leaving)"
        )?;
        let name_w = self
            .contestants
            .iter()
            .map(|c| c.policy.len())
            .max()
            .unwrap_or(6)
            .max(6);
        let mut head = format!("{:<name_w$}", "policy");
        for t in &marks {
            head.push_str(&format!("  {:>8}", format!("t={t}")));
        }
        writeln!(f, "{head}")?;
        for c in &self.contestants {
            let mut row = format!("{:<name_w$}", c.policy);
            for &t in &marks {
                row.push_str(&format!("  {:>8.3}", c.curve[t - 1].mean));
            }
            writeln!(f, "{row}")?;
        }
        writeln!(f)?;
        writeln!(
            f,
            "expected reward of each slate as a share of the oracle's slate for the same user at the same moment (users still there)"
        )?;
        writeln!(f, "{head}")?;
        for c in &self.contestants {
            let mut row = format!("{:<name_w$}", c.policy);
            for &t in &marks {
                row.push_str(&format!("  {:>7.1}%", 100.0 * c.oracle_share[t - 1].mean));
            }
            writeln!(f, "{row}")?;
        }
        if !self.paired.is_empty() {
            writeln!(f)?;
            writeln!(
                f,
                "paired differences in reward/user on the same users (mean [95% interval]; `*`: interval excludes 0)"
            )?;
            for p in &self.paired {
                let d = &p.reward_difference;
                let mark = if d.low > 0.0 || d.high < 0.0 { "*" } else { "" };
                writeln!(
                    f,
                    "  {:<name_w$} - {:<10} {:>8.3} [{:.3}, {:.3}] {mark}",
                    p.policy, p.against, d.mean, d.low, d.high
                )?;
            }
        }
        Ok(())
    }
}
