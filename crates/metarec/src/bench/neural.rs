//! `metarec bench neural`: the neural policy's scoring latency against LinUCB's decision, the
//! strategy adjusters' adaptation latency, and REINFORCE training throughput.

use super::{thousands, warn_debug_build};
use crate::Global;
use crate::args::{MAX_ITERATIONS, count};
use anyhow::Result;
use clap::Args;
use std::time::Instant;

/// The most timed calls per catalog size in `bench neural`: each call's latency is kept (8 bytes),
/// and a few million already pin the p99 down.
const MAX_TIMED_CALLS: u64 = 10_000_000;

#[derive(Args)]
pub struct BenchNeuralArgs {
    /// Timed decisions per catalog size.
    #[arg(long, default_value_t = 20_000, value_parser = count::<usize>(MAX_TIMED_CALLS))]
    calls: usize,
    /// Reinforcement-learning iterations timed for the throughput.
    #[arg(long, default_value_t = 30, value_parser = count::<usize>(MAX_ITERATIONS))]
    iterations: usize,
}

pub fn run(args: BenchNeuralArgs, global: &Global) -> Result<()> {
    warn_debug_build("neural");
    neural_bench(args.calls, args.iterations, global)
}

/// Contexts with realistic histories: users played by the random policy.
fn sample_contexts(env: &mut metarec_sim::ShopEnv, n: usize) -> Result<Vec<metarec_core::Context>> {
    use metarec_core::{Environment, EventIds, Recorder, rng_for, rollout};
    let mut policy = metarec_learn::baselines::RandomPolicy::new(env.catalog());
    let mut rng = rng_for(3, 3);
    let mut recorder = Recorder::default();
    let mut user = 0;
    while recorder.log.len() < n {
        let one = user..user + 1;
        rollout(
            env,
            &mut policy,
            one,
            &mut rng,
            &mut recorder,
            EventIds::None,
        )?;
        user += 1;
    }
    Ok(recorder
        .log
        .into_iter()
        .take(n)
        .map(|interaction| interaction.context)
        .collect())
}

/// p50 and p99 of per-call latencies in microseconds.
fn percentiles(mut micros: Vec<f64>) -> (f64, f64) {
    micros.sort_by(f64::total_cmp);
    let at = |q: f64| micros[((micros.len() - 1) as f64 * q).round() as usize];
    (at(0.5), at(0.99))
}

fn neural_bench(calls: usize, iterations: usize, global: &Global) -> Result<()> {
    use metarec_core::{Environment, RewardFn, rng_for};
    use metarec_neural::policy::{Mode, NeuralPolicy};
    use metarec_neural::train::{TrainConfig, Trainer};
    let data = crate::sim::load_retail(global)?;
    println!("neural policy: one thread, latency per call in microseconds (p50 / p99)");
    println!(
        "  {:>6}  {:>22}  {:>22}  {:>16}",
        "items", "neural score (p50/p99)", "LinUCB decide (p50/p99)", "p99 ratio"
    );
    let mut met = true;
    let mut adjust_rows = Vec::new();
    let mut reference = None;
    let demo = crate::demo::network_config();
    for items in [100usize, 1000] {
        let mut config = metarec_sim::ScenarioConfig::default();
        config.catalog.items = items;
        config.calibration.fit = false;
        global.progress(format!("fitting a {items}-item world ..."));
        let scenario = metarec_sim::Scenario::build(config, &data)?;
        let mut env = scenario.env();
        let contexts = sample_contexts(&mut env, 2000)?;
        let trainer = Trainer::new(env.catalog(), RewardFn::default(), TrainConfig::default())?;
        let mut neural = NeuralPolicy::new(
            "neural",
            "0".into(),
            trainer.features.clone(),
            trainer.frozen().clone(),
            Mode::Greedy,
        );
        let mut linucb = metarec_learn::registry::build_policy(
            "linucb",
            env.catalog(),
            &RewardFn::default(),
            0,
        )?;
        let mut rng = rng_for(1, 1);
        let time = |f: &mut dyn FnMut(&metarec_core::Context)| {
            let mut micros = Vec::with_capacity(calls);
            for i in 0..calls {
                let ctx = &contexts[i % contexts.len()];
                let t = Instant::now();
                f(ctx);
                micros.push(t.elapsed().as_secs_f64() * 1e6);
            }
            percentiles(micros)
        };
        let n = time(&mut |ctx| {
            std::hint::black_box(neural.score(ctx));
        });
        let l = time(&mut |ctx| {
            std::hint::black_box(linucb.decide(ctx, 5, &mut rng));
        });
        if items == 100 && n.1 >= 20.0 {
            met = false;
        }
        if items == 100 {
            // The adjusters are timed on the demo's architecture (wider than the default's,
            // with the set encoder and the memory), since that is the network they adapt.
            let demo = Trainer::new(
                env.catalog(),
                RewardFn::default(),
                TrainConfig {
                    model: crate::demo::network_config(),
                    ..TrainConfig::default()
                },
            )?;
            (adjust_rows, reference) = adjust_bench(&demo, &contexts, calls)?;
        }
        println!(
            "  {:>6}  {:>22}  {:>22}  {:>15.1}x",
            items,
            format!("{:.1} / {:.1}", n.0, n.1),
            format!("{:.1} / {:.1}", l.0, l.1),
            l.1 / n.1
        );
    }
    println!(
        "  target: scoring 100 candidates under 20 us p99: {}",
        if met { "met" } else { "NOT met" }
    );
    println!(
        "strategy adjuster, 100 items, the demo's network (hidden {}, embed {}, {} encoder, memory {}): adapt one user's state to one interaction, then choose a slate of 5 (us, one thread)",
        demo.hidden,
        demo.embed,
        demo.encoder.name(),
        demo.memory
    );
    println!(
        "  {:<34}  {:>14}  {:>14}  {:>12}",
        "adjuster", "p50", "p99", "p99 < 50 us"
    );
    for (name, (p50, p99)) in &adjust_rows {
        println!(
            "  {name:<34}  {p50:>14.1}  {p99:>14.1}  {:>12}",
            if *p99 < 50.0 { "met" } else { "NOT met" }
        );
    }
    // The machine's own spread, measured at the Thompson row's median in the same moments as
    // that row: what part of its tail no change to the decision path can remove.
    if let Some(((p50, p99), steps)) = reference {
        println!(
            "  {:<34}  {:>14.1}  {:>14.1}  {:>12}",
            "reference: fixed arithmetic", p50, p99, "(machine)"
        );
        println!(
            "  the reference repeats one chain of {} register-only floating-point steps, one call after each call of the Thompson row, timed as the rows are: its p99 over its p50 is this machine's timing jitter (interrupts, frequency changes, other processes) at the Thompson row's median, over the same stretch of time",
            thousands(steps as f64)
        );
    }
    let scenario = crate::sim::build_scenario("default", global)?;
    let mut env = scenario.env_with_seed(12345);
    let mut trainer = Trainer::new(
        env.catalog(),
        scenario.config.reward,
        TrainConfig {
            iterations,
            ..TrainConfig::default()
        },
    )?;
    global.progress(format!(
        "timing {iterations} REINFORCE iterations of 64 users ..."
    ));
    let start = Instant::now();
    let mut slates = 0.0;
    for _ in 0..iterations {
        let s = trainer.rl_iteration(&mut env)?;
        slates += s.slates_per_user * trainer.config.batch as f64;
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "training throughput (default scenario, REINFORCE, batches of 64 users): {} simulated slates/s ({} iterations in {secs:.1} s)",
        thousands(slates / secs),
        iterations
    );
    Ok(())
}

/// A fixed chain of `steps` dependent floating-point operations on registers alone: the same
/// work on every call, touching no memory, so the spread of its latencies is the machine's.
fn fixed_arithmetic(steps: u64) -> f64 {
    let mut x = 1.0f64;
    for i in 0..steps {
        x = x * 1.000_000_1 + i as f64 * 1e-9;
    }
    x
}

/// Microseconds of one timed call of [`fixed_arithmetic`] over `steps` steps.
fn time_fixed_arithmetic(steps: u64) -> f64 {
    let t = Instant::now();
    std::hint::black_box(fixed_arithmetic(std::hint::black_box(steps)));
    t.elapsed().as_secs_f64() * 1e6
}

/// The length of [`fixed_arithmetic`] whose median time is about `target_p50` microseconds,
/// from the median of a short calibration run.
fn reference_steps(target_p50: f64) -> u64 {
    let probe = 10_000u64;
    let (per_probe, _) = percentiles((0..1000).map(|_| time_fixed_arithmetic(probe)).collect());
    ((target_p50 / per_probe.max(1e-3)) * probe as f64).clamp(1.0, 1e9) as u64
}

/// What [`adjust_bench`] measures: each adjuster's p50 and p99, and the fixed-arithmetic
/// reference's with its length.
type AdjustRows = (Vec<(String, (f64, f64))>, Option<((f64, f64), u64)>);

/// Latency of one adaptation (the user's last interaction: a slate of 5 with one click) plus one
/// slate decision over the 100-item catalog, for each adjuster; and the reference: a call of
/// [`fixed_arithmetic`] as long as the first row's median, timed after each of that row's calls,
/// so that both see the same interrupts and the same state of the machine.
fn adjust_bench(
    trainer: &metarec_neural::train::Trainer,
    contexts: &[metarec_core::Context],
    calls: usize,
) -> Result<AdjustRows> {
    use metarec_core::{Decision, Feedback, Interaction, ItemId, Policy, Slate, rng_for};
    use metarec_neural::adjust::{
        AdjustedPolicy, BayesConfig, BayesianAdjuster, GradientAdjuster, GradientConfig,
    };
    use std::sync::Arc;
    let frozen = Arc::new(trainer.frozen().clone());
    let features = Arc::new(trainer.features.clone());
    let interactions: Vec<Interaction> = contexts
        .iter()
        .enumerate()
        .map(|(j, ctx)| {
            let items: Vec<ItemId> = (0..5)
                .map(|k| ItemId(((j * 7 + k * 13) % 100) as u32))
                .collect();
            Ok(Interaction {
                context: ctx.clone(),
                decision: Decision {
                    event_id: "bench".into(),
                    slate: Slate::new(items)?,
                    propensities: vec![1.0; 5],
                    slate_propensity: None,
                    positions: None,
                    policy_id: "bench".into(),
                    model_version: String::new(),
                },
                feedback: Feedback {
                    clicks: (0..5).map(|k| k == j % 5).collect(),
                    purchases: vec![false; 5],
                    revenue: vec![0.0; 5],
                },
            })
        })
        .collect::<Result<_, metarec_core::VocabError>>()?;
    let policies = || -> Vec<(String, Box<dyn Policy>)> {
        vec![
            (
                "bayes, Thompson (16 draws)".into(),
                Box::new(AdjustedPolicy::new(
                    "bayes",
                    BayesianAdjuster::new(frozen.clone(), features.clone(), BayesConfig::default()),
                )),
            ),
            (
                "bayes, posterior mean".into(),
                Box::new(AdjustedPolicy::new(
                    "bayes-mean",
                    BayesianAdjuster::new(
                        frozen.clone(),
                        features.clone(),
                        BayesConfig {
                            thompson: false,
                            ..BayesConfig::default()
                        },
                    ),
                )),
            ),
            (
                "gradient (1 step)".into(),
                Box::new(AdjustedPolicy::new(
                    "gradient",
                    GradientAdjuster::new(
                        frozen.clone(),
                        features.clone(),
                        GradientConfig::default(),
                    ),
                )),
            ),
        ]
    };
    // One row's calls, each timed (microseconds), with `between` run untimed after each. The
    // sampled contexts belong to many users, whose states accumulate over the run as they
    // would in the server.
    let time_row = |policy: &mut dyn Policy, rng: &mut _, between: &mut dyn FnMut()| {
        let mut micros = Vec::with_capacity(calls);
        for i in 0..calls {
            let it = &interactions[i % interactions.len()];
            let t = Instant::now();
            policy.observe(it);
            std::hint::black_box(policy.decide(&it.context, 5, rng));
            micros.push(t.elapsed().as_secs_f64() * 1e6);
            between();
        }
        micros
    };
    // The reference's length comes from a first run of the first row, the same calls on a
    // policy of its own: its median is the measured run's (a shorter run would see mostly
    // users' first visits, which are slower).
    let (probe_p50, _) = match policies().into_iter().next() {
        Some((_, mut policy)) => {
            percentiles(time_row(policy.as_mut(), &mut rng_for(3, 3), &mut || {}))
        }
        None => (0.0, 0.0),
    };
    let steps = reference_steps(probe_p50);
    let mut rows = Vec::new();
    let mut reference = None;
    let mut rng = rng_for(3, 3);
    for (row, (name, mut policy)) in policies().into_iter().enumerate() {
        if row == 0 {
            let mut fixed = Vec::with_capacity(calls);
            let micros = time_row(policy.as_mut(), &mut rng, &mut || {
                fixed.push(time_fixed_arithmetic(steps));
            });
            rows.push((name, percentiles(micros)));
            reference = Some((percentiles(fixed), steps));
        } else {
            rows.push((
                name,
                percentiles(time_row(policy.as_mut(), &mut rng, &mut || {})),
            ));
        }
    }
    Ok((rows, reference))
}
