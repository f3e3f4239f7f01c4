//! One arena job: a contestant plays every user of one seed through [`metarec_core::rollout()`],
//! and an observer keeps what each user did and what the oracle would have earned in their place.

use super::{ArenaConfig, ArenaError};
use crate::policies::PolicySpec;
use metarec_core::{
    Context, Decision, EventIds, Interaction, Observer, Oracle, RewardFn, rng_for, rollout,
};
use metarec_sim::{Scenario, ShopEnv};
use rand::RngCore;

/// What one user did under one contestant.
#[derive(Debug, Clone, Default)]
pub(super) struct UserOutcome {
    pub(super) reward: f64,
    pub(super) discounted: f64,
    pub(super) clicks: f64,
    pub(super) impressions: f64,
    pub(super) purchases: f64,
    pub(super) revenue: f64,
    pub(super) slates: f64,
    pub(super) visits: f64,
    pub(super) regret: f64,
    pub(super) curve: Vec<f64>,
    /// The expected reward of this policy's slate at interaction t (0 after leaving).
    pub(super) expected: Vec<f64>,
    /// The expected reward of the oracle's slate for the same user in the same state.
    pub(super) best: Vec<f64>,
}

/// What a job hands back: every user's outcome in user order, and the log when asked for.
pub struct JobResult {
    pub(super) outcomes: Vec<UserOutcome>,
    pub(super) log: Vec<Interaction>,
    pub(super) seconds: f64,
}

/// The first bytes of an encoded [`JobResult`] (version 1).
const JOB_MAGIC: &[u8; 8] = b"MRARENA1";

impl JobResult {
    /// The result as bytes that [`JobResult::from_bytes`] reads back exactly (every number by
    /// its bits), so that a job played in another process gives the same report. The log, when
    /// one was kept, is not carried.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = JOB_MAGIC.to_vec();
        let mut put = |x: f64| out.extend(x.to_le_bytes());
        put(self.seconds);
        put(self.outcomes.len() as f64);
        for o in &self.outcomes {
            for x in [
                o.reward,
                o.discounted,
                o.clicks,
                o.impressions,
                o.purchases,
                o.revenue,
                o.slates,
                o.visits,
                o.regret,
            ] {
                put(x);
            }
            for v in [&o.curve, &o.expected, &o.best] {
                put(v.len() as f64);
                v.iter().for_each(|&x| put(x));
            }
        }
        out
    }

    /// Reads what [`JobResult::to_bytes`] wrote.
    pub fn from_bytes(bytes: &[u8]) -> Result<JobResult, ArenaError> {
        let bad = |reason: &str| ArenaError::Results {
            reason: format!("encoded job result: {reason}"),
        };
        let body = bytes
            .strip_prefix(JOB_MAGIC.as_slice())
            .ok_or_else(|| bad("not an arena job result (wrong magic)"))?;
        if body.len() % 8 != 0 {
            return Err(bad("a truncated number"));
        }
        let mut numbers = body
            .chunks_exact(8)
            .map(|b| f64::from_le_bytes(b.try_into().unwrap_or([0; 8])));
        let mut next = || numbers.next().ok_or_else(|| bad("it ends early"));
        // Counts are written as floats, exact for any count a job can have (below 2^53).
        let count = |next: &mut dyn FnMut() -> Result<f64, ArenaError>| {
            let n = next()?;
            if (0.0..9.0e15).contains(&n) && n.fract() == 0.0 {
                Ok(n as usize)
            } else {
                Err(bad("a count that is not a whole number"))
            }
        };
        let seconds = next()?;
        let users = count(&mut next)?;
        let mut outcomes = Vec::with_capacity(users.min(1 << 20));
        for _ in 0..users {
            let mut o = UserOutcome {
                reward: next()?,
                discounted: next()?,
                clicks: next()?,
                impressions: next()?,
                purchases: next()?,
                revenue: next()?,
                slates: next()?,
                visits: next()?,
                regret: next()?,
                curve: Vec::new(),
                expected: Vec::new(),
                best: Vec::new(),
            };
            for v in [&mut o.curve, &mut o.expected, &mut o.best] {
                let n = count(&mut next)?;
                for _ in 0..n {
                    v.push(next()?);
                }
            }
            outcomes.push(o);
        }
        if next().is_ok() {
            return Err(bad("bytes after the last user"));
        }
        Ok(JobResult {
            outcomes,
            log: Vec::new(),
            seconds,
        })
    }
}

/// Seed of the users of arena seed `s`: distinct from the scenario seed's own streams.
fn user_seed(scenario_seed: u64, s: usize) -> u64 {
    rng_for(scenario_seed, 0xa7e4_0000 + s as u64).next_u64()
}

/// Keeps each user's outcome: rewards as they come, and before each step the expected reward of
/// the slate shown against the oracle's in the same state (regret and the oracle share).
struct Scorer<'a> {
    reward: &'a RewardFn,
    config: &'a ArenaConfig,
    out: UserOutcome,
    outcomes: Vec<UserOutcome>,
    log: Vec<Interaction>,
    discount: f64,
    visit: u32,
}

impl Observer<ShopEnv> for Scorer<'_> {
    fn start_user(&mut self, _user: u64, _context: &Context) {
        let h = self.config.horizon;
        self.out = UserOutcome {
            curve: vec![0.0; h],
            expected: vec![0.0; h],
            best: vec![0.0; h],
            visits: 1.0,
            ..UserOutcome::default()
        };
        self.discount = 1.0;
        self.visit = 0;
    }

    fn decided(&mut self, env: &ShopEnv, t: usize, context: &Context, decision: &Decision) {
        if context.session.session != self.visit {
            self.visit = context.session.session;
            self.out.visits += 1.0;
        }
        let best = env.expected_reward(&env.oracle_slate(self.reward), self.reward);
        let mine = env.expected_reward(decision.slate.items(), self.reward);
        self.out.regret += best - mine;
        if t < self.config.horizon {
            self.out.expected[t] = mine;
            self.out.best[t] = best;
        }
    }

    fn stepped(&mut self, t: usize, interaction: &Interaction, _last: bool) {
        let (out, feedback) = (&mut self.out, &interaction.feedback);
        let r = self.reward.reward(feedback);
        out.reward += r;
        out.discounted += self.discount * r;
        self.discount *= self.reward.gamma();
        if t < self.config.horizon {
            out.curve[t] = r;
        }
        out.clicks += feedback.click_count() as f64;
        out.purchases += feedback.purchase_count() as f64;
        out.revenue += feedback.total_revenue();
        out.impressions += interaction.decision.slate.len() as f64;
        out.slates += 1.0;
        if self.config.keep_log {
            self.log.push(interaction.clone());
        }
    }

    fn end_user(&mut self, _user: u64, _slates: usize) {
        self.outcomes.push(std::mem::take(&mut self.out));
    }
}

/// Plays users `0..config.users` of seed `seed_index` with a fresh agent of `contestant`.
pub(super) fn play_job(
    scenario: &Scenario,
    contestant: &PolicySpec,
    seed_index: usize,
    config: &ArenaConfig,
    reward: &RewardFn,
) -> Result<JobResult, ArenaError> {
    let start = std::time::Instant::now();
    let mut env = scenario.env_with_seed(user_seed(scenario.config.seed, seed_index));
    // Seeded by the contestant's name, not its place in the list, so a policy's numbers do not
    // change when other contestants are added or reordered.
    let mut rng = rng_for(seed_index as u64, contestant.stream());
    let mut agent = contestant.build(scenario, reward, seed_index as u64)?;
    let mut scorer = Scorer {
        reward,
        config,
        out: UserOutcome::default(),
        outcomes: Vec::with_capacity(config.users),
        log: Vec::new(),
        discount: 1.0,
        visit: 0,
    };
    let name = contestant.name();
    let prefix = format!("{name}-s{seed_index}");
    rollout(
        &mut env,
        &mut *agent,
        0..config.users as u64,
        &mut rng,
        &mut scorer,
        EventIds::Prefixed(&prefix),
    )
    .map_err(|source| ArenaError::InvalidDecision {
        name: name.to_owned(),
        source,
    })?;
    Ok(JobResult {
        outcomes: scorer.outcomes,
        log: scorer.log,
        seconds: start.elapsed().as_secs_f64(),
    })
}
