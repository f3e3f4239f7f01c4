//! The arena: every contestant plays the same simulated new users, and the results come back
//! with 95% confidence intervals.
//!
//! For each seed, the users `0..users` of the scenario (drawn with that seed) arrive one after
//! the other; a contestant keeps what it learned from earlier users (a shop learning over its
//! customers) while each user is new to it (cold start). User `n` under seed `s` is the same
//! person with the same luck for every contestant (common random numbers), so differences come
//! from the policies. Jobs (contestant x seed) run on all cores; results do not depend on the
//! thread count.

mod play;
mod report;

use crate::policies::{PolicyError, PolicySpec};
use crate::summary::Summary;
use metarec_core::{Interaction, RewardFn, VocabError};
use metarec_sim::Scenario;
pub use play::JobResult;
use play::{UserOutcome, play_job};
use serde::Serialize;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use thiserror::Error;

/// Why the arena cannot run.
#[derive(Debug, Error)]
pub enum ArenaError {
    /// A policy cannot be named, loaded or built.
    #[error(transparent)]
    Policy(Box<PolicyError>),
    /// A policy produced a decision that breaks the vocabulary's invariants.
    #[error("policy `{name}` made an invalid decision: {source}")]
    InvalidDecision {
        /// The policy.
        name: String,
        /// The broken invariant.
        source: VocabError,
    },
    /// No users or no seeds to play.
    #[error("--users and --seeds must be at least 1")]
    NothingToPlay,
    /// A job outside the arena's contestants and seeds.
    #[error("there is no arena job for contestant {contestant} on seed {seed}")]
    NoSuchJob {
        /// The contestant's index.
        contestant: usize,
        /// The seed's index.
        seed: usize,
    },
    /// Job results that are not the arena's (their number, a user count, or their encoding).
    #[error("arena job results do not fit the arena: {reason}")]
    Results {
        /// What does not fit.
        reason: String,
    },
}

impl From<PolicyError> for ArenaError {
    fn from(e: PolicyError) -> Self {
        ArenaError::Policy(Box::new(e))
    }
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
    contestants: &[PolicySpec],
    config: &ArenaConfig,
    progress: &(dyn Fn(&str) + Sync),
) -> Result<ArenaReport, ArenaError> {
    let specs = prepare_contestants(scenario, contestants, config)?;
    let contestants = &specs[..];
    let jobs = arena_jobs(contestants.len(), config);
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
                    let result = play_arena_job(scenario, contestants, c, s, config);
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
    let results = results
        .into_inner()
        .unwrap_or_else(|e| e.into_inner())
        .into_iter()
        .map(|r| r.expect("every job ran"))
        .collect::<Result<Vec<_>, _>>()?;
    assemble_arena(scenario, contestants, config, results)
}

/// The arena's jobs, `(contestant, seed)` pairs, in the order [`assemble_arena`] takes their
/// results. Jobs are independent: each plays one contestant on one seed's users from a fresh
/// policy, so they may run anywhere (threads here, other processes or machines elsewhere) and
/// give the same numbers.
pub fn arena_jobs(contestants: usize, config: &ArenaConfig) -> Vec<(usize, usize)> {
    (0..contestants)
        .flat_map(|c| (0..config.seeds).map(move |s| (c, s)))
        .collect()
}

/// Loads every contestant's model once and checks that it fits the scenario: what
/// [`play_arena_job`] needs of the contestants.
pub fn prepare_contestants(
    scenario: &Scenario,
    contestants: &[PolicySpec],
    config: &ArenaConfig,
) -> Result<Vec<PolicySpec>, ArenaError> {
    if config.users == 0 || config.seeds == 0 {
        return Err(ArenaError::NothingToPlay);
    }
    // The jobs build their policies from the bundles in memory.
    let mut loaded = Vec::new();
    let mut specs = contestants.to_vec();
    for spec in &mut specs {
        spec.load(&mut loaded)?;
        spec.check_fits(scenario)?;
    }
    Ok(specs)
}

/// Plays job `(c, s)` of [`arena_jobs`]: contestant `c` (of contestants prepared by
/// [`prepare_contestants`]) on the users of seed `s`.
pub fn play_arena_job(
    scenario: &Scenario,
    contestants: &[PolicySpec],
    c: usize,
    s: usize,
    config: &ArenaConfig,
) -> Result<JobResult, ArenaError> {
    let reward = config.reward.unwrap_or(scenario.config.reward);
    let contestant = contestants.get(c).ok_or(ArenaError::NoSuchJob {
        contestant: c,
        seed: s,
    })?;
    if s >= config.seeds {
        return Err(ArenaError::NoSuchJob {
            contestant: c,
            seed: s,
        });
    }
    play_job(scenario, contestant, s, config, &reward)
}

/// The report from every job's result, in [`arena_jobs`] order.
pub fn assemble_arena(
    scenario: &Scenario,
    contestants: &[PolicySpec],
    config: &ArenaConfig,
    results: Vec<JobResult>,
) -> Result<ArenaReport, ArenaError> {
    let jobs = arena_jobs(contestants.len(), config);
    if results.len() != jobs.len() {
        return Err(ArenaError::Results {
            reason: format!("{} results for {} jobs", results.len(), jobs.len()),
        });
    }
    if let Some(j) = results
        .iter()
        .position(|r| r.outcomes.len() != config.users)
    {
        return Err(ArenaError::Results {
            reason: format!(
                "job {j} played {} users, not {}",
                results[j].outcomes.len(),
                config.users
            ),
        });
    }
    let reward = config.reward.unwrap_or(scenario.config.reward);
    let mut results: Vec<Option<JobResult>> = results.into_iter().map(Some).collect();
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
            let Some(r) = results[j].take() else { continue };
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
