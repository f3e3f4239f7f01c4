//! `metarec bench ...`: speed measured as a ratio against a baseline run in the same process
//! invocation, printed as a table.

use crate::Global;
use crate::args::{MAX_ITERATIONS, count};
use anyhow::{Context as _, Result, bail};
use clap::Subcommand;
use metarec_data::LoadOptions;
use metarec_data::fetch::Dataset;
use metarec_data::online_retail::load_online_retail;
use std::path::Path;
use std::process::Command;
use std::time::Instant;

/// The most timed calls per catalog size in `bench neural`: each call's latency is kept (8 bytes),
/// and a few million already pin the p99 down.
const MAX_TIMED_CALLS: u64 = 10_000_000;
/// The most slate steps per cell in `bench sim`: about three hours at a million steps per second.
const MAX_SIM_STEPS: u64 = 10_000_000_000;
/// The most rows of `bench ope`'s synthetic log, which is held in memory.
const MAX_OPE_ROWS: u64 = 100_000_000;
/// The most bootstrap resamples of `bench ope`.
const MAX_RESAMPLES: u64 = 100_000;

#[derive(Subcommand)]
pub enum BenchCommand {
    /// Serving: throughput and p50 / p99 / p99.9 latency of `/v1/rank` (100 candidates, users
    /// adapting through feedback) at 1, 8 and 64 keep-alive connections on loopback, against a
    /// `metarec serve` child process.
    Serve(crate::serve::BenchServeArgs),
    /// Soak: minutes of open-loop rank and feedback load against a `metarec serve` child,
    /// printing every interval the request rate, p99, WAL and database size, resident memory
    /// and events past their reward window, then whether each stayed within its bound.
    Soak(crate::serve::BenchSoakArgs),
    /// Text encoder throughput: every distinct Online Retail title embedded from scratch (all
    /// cores), optionally against Python sentence-transformers on the same titles.
    Embed {
        /// Titles per forward pass.
        #[arg(long, default_value_t = 128, value_parser = count::<usize>(crate::embed::MAX_TEXT_BATCH))]
        batch: usize,
        /// A Python with sentence-transformers installed, for the baseline.
        #[arg(long, value_name = "PYTHON")]
        python: Option<String>,
    },
    /// Neural policy: scoring latency for 100 and 1,000 candidates (p50 / p99, one thread)
    /// against LinUCB's decision on the same contexts, and training throughput.
    Neural {
        /// Timed decisions per catalog size.
        #[arg(long, default_value_t = 20_000, value_parser = count::<usize>(MAX_TIMED_CALLS))]
        calls: usize,
        /// Reinforcement-learning iterations timed for the throughput.
        #[arg(long, default_value_t = 30, value_parser = count::<usize>(MAX_ITERATIONS))]
        iterations: usize,
    },
    /// Simulated slate steps per second (decide + step + observe, one thread) for the random
    /// policy and LinUCB on catalogs of 100, 1,000 and 3,656 items (the whole catalog); optionally against RecoGym.
    Sim {
        /// Slate steps timed per cell for the random policy (LinUCB runs a fiftieth of them).
        #[arg(long, default_value_t = 1_000_000, value_parser = count::<u64>(MAX_SIM_STEPS))]
        steps: u64,
        /// A Python with RecoGym installed (`scripts/recogym-venv` makes one) to time RecoGym's
        /// random agent at 100 products in the same run.
        #[arg(long, value_name = "PYTHON")]
        recogym_python: Option<String>,
    },
    /// Off-policy estimators: all seven with bootstrap intervals on a synthetic log of a million
    /// rows (rows per second; target under 10 s on 2 cores).
    Ope {
        /// Logged rows (one entry each).
        #[arg(long, default_value_t = 1_000_000, value_parser = count::<usize>(MAX_OPE_ROWS))]
        rows: usize,
        /// Bootstrap resamples.
        #[arg(long, default_value_t = 1000, value_parser = count::<usize>(MAX_RESAMPLES))]
        resamples: usize,
    },
    /// Online Retail load (parse + clean + index) against pandas.read_csv of the same file.
    Load {
        /// Timed repetitions of each side (the median is compared).
        #[arg(long, default_value_t = 7, value_parser = count::<usize>(1000))]
        repeats: usize,
        /// The Python interpreter with pandas installed.
        #[arg(long, default_value = "python3")]
        python: String,
    },
}

/// The baseline: pandas' C parser reading the same file, timed inside Python so that interpreter
/// start-up and the import are not counted against it.
const PANDAS_SCRIPT: &str = r#"
import sys, time
import pandas as pd
path, n = sys.argv[1], int(sys.argv[2])
pd.read_csv(path)  # warm the page cache and pandas' lazy imports
times = []
for _ in range(n):
    t = time.perf_counter()
    pd.read_csv(path)
    times.append(time.perf_counter() - t)
print(" ".join(repr(t) for t in times))
"#;

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    let n = xs.len();
    if n % 2 == 1 {
        xs[n / 2]
    } else {
        (xs[n / 2 - 1] + xs[n / 2]) / 2.0
    }
}

fn pandas_times(python: &str, path: &Path, repeats: usize) -> Result<Vec<f64>> {
    let out = Command::new(python)
        .args(["-c", PANDAS_SCRIPT])
        .arg(path)
        .arg(repeats.to_string())
        .output()
        .with_context(|| format!("cannot run `{python}`"))?;
    if !out.status.success() {
        bail!(
            "the pandas baseline failed (is pandas installed? `pip install pandas`):\n{}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .map(|t| {
            t.parse::<f64>()
                .context("unexpected output from the pandas script")
        })
        .collect()
}

/// Times `steps` slate steps of a policy on a fresh environment, single thread.
fn steps_per_second(scenario: &metarec_sim::Scenario, policy: &str, steps: u64) -> Result<f64> {
    use metarec_core::{Environment, EventId, Interaction, decision_from_choice, rng_for};
    let mut env = scenario.env();
    let reward = scenario.config.reward;
    let mut p = metarec_learn::registry::build_policy(policy, env.catalog(), &reward, 7)?;
    let k = env.slate_size();
    let mut rng = rng_for(7, 7);
    let mut done = 0u64;
    let mut user = 0u64;
    let start = Instant::now();
    while done < steps {
        let mut context = Some(env.reset(user));
        if let Some(c) = &context {
            p.start_user(c);
        }
        user += 1;
        while let Some(ctx) = context {
            let choice = p.decide(&ctx, k, &mut rng);
            let decision =
                decision_from_choice(choice, EventId(done.to_string()), policy, String::new())?;
            let step = env.step(&decision);
            let next = step.next;
            p.observe(&Interaction {
                context: ctx,
                decision,
                feedback: step.feedback,
            });
            context = next;
            done += 1;
        }
    }
    Ok(done as f64 / start.elapsed().as_secs_f64())
}

fn recogym_steps(python: &str, products: usize, steps: u64) -> Result<f64> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../bench/recogym_steps.py");
    let out = Command::new(python)
        .arg(script)
        .arg(products.to_string())
        .arg(steps.to_string())
        .output()
        .with_context(|| format!("cannot run `{python}`"))?;
    if !out.status.success() {
        bail!(
            "the RecoGym baseline failed (run scripts/recogym-venv first):\n{}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .lines()
        .last()
        .unwrap_or_default()
        .parse::<f64>()
        .context("unexpected output from the RecoGym script")
}

fn thousands(x: f64) -> String {
    metarec_data::stats::thousands(x.round().max(0.0) as u64)
}

/// Contexts with realistic histories: users played by the random policy.
fn sample_contexts(env: &mut metarec_sim::ShopEnv, n: usize) -> Result<Vec<metarec_core::Context>> {
    use metarec_core::{Environment, EventId, Policy, decision_from_choice, rng_for};
    let mut policy = metarec_learn::baselines::RandomPolicy::new(env.catalog());
    let mut rng = rng_for(3, 3);
    let k = env.slate_size();
    let mut out = Vec::with_capacity(n);
    let mut user = 0;
    while out.len() < n {
        let mut context = Some(env.reset(user));
        user += 1;
        while let Some(ctx) = context {
            let choice = policy.decide(&ctx, k, &mut rng);
            let d = decision_from_choice(choice, EventId(String::new()), "random", String::new())?;
            context = env.step(&d).next;
            out.push(ctx);
        }
    }
    out.truncate(n);
    Ok(out)
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
            adjust_rows = adjust_bench(&trainer, &contexts, calls)?;
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
        "strategy adjuster, 100 items: adapt one user's state to one interaction, then choose a slate of 5 (us, one thread)"
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

/// Latency of one adaptation (the user's last interaction: a slate of 5 with one click) plus one
/// slate decision over the 100-item catalog, for each adjuster.
fn adjust_bench(
    trainer: &metarec_neural::train::Trainer,
    contexts: &[metarec_core::Context],
    calls: usize,
) -> Result<Vec<(String, (f64, f64))>> {
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
    let mut policies: Vec<(String, Box<dyn Policy>)> = vec![
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
                GradientAdjuster::new(frozen, features, GradientConfig::default()),
            )),
        ),
    ];
    let mut rows = Vec::new();
    let mut rng = rng_for(3, 3);
    for (name, policy) in &mut policies {
        let mut micros = Vec::with_capacity(calls);
        for i in 0..calls {
            let it = &interactions[i % interactions.len()];
            // The sampled contexts belong to many users, whose states accumulate over the run
            // as they would in the server.
            let t = Instant::now();
            policy.observe(it);
            std::hint::black_box(policy.decide(&it.context, 5, &mut rng));
            micros.push(t.elapsed().as_secs_f64() * 1e6);
        }
        rows.push((name.clone(), percentiles(micros)));
    }
    Ok(rows)
}

fn embed_bench(batch: usize, python: Option<String>, global: &Global) -> Result<()> {
    let (_, titles) = crate::embed::retail_titles(global)?;
    let mut distinct: Vec<&str> = titles.iter().map(String::as_str).collect();
    distinct.sort_unstable();
    distinct.dedup();
    let encoder = crate::embed::load_encoder(None, global)?;
    encoder.embed(&distinct[..batch.min(distinct.len())])?;
    global.progress(format!("embedding {} distinct titles ...", distinct.len()));
    let start = Instant::now();
    for chunk in distinct.chunks(batch) {
        std::hint::black_box(encoder.embed(chunk)?);
    }
    let ours = distinct.len() as f64 / start.elapsed().as_secs_f64();
    println!(
        "text encoder (all-MiniLM-L6-v2, batches of {batch}, {} threads): {} titles/s over {} Online Retail titles",
        std::env::var("RAYON_NUM_THREADS").unwrap_or_else(|_| "all".into()),
        thousands(ours),
        distinct.len()
    );
    println!(
        "  target: at least 300 titles/s: {}",
        if ours >= 300.0 { "met" } else { "NOT met" }
    );
    if let Some(python) = python {
        let list = std::env::temp_dir().join(format!("metarec-titles-{}.txt", std::process::id()));
        std::fs::write(&list, distinct.join("\n"))?;
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../bench/st_embed.py");
        let model = global.data.path(Dataset::MiniLm);
        global.progress("Python sentence-transformers baseline ...");
        let out = Command::new(&python)
            .env("HF_HUB_OFFLINE", "1")
            .arg(script)
            .arg(&model)
            .arg(&list)
            .arg(batch.to_string())
            .output()
            .with_context(|| format!("cannot run `{python}`"))?;
        let _ = std::fs::remove_file(&list);
        if !out.status.success() {
            bail!(
                "the sentence-transformers baseline failed:\n{}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        let theirs: f64 = String::from_utf8_lossy(&out.stdout)
            .trim()
            .lines()
            .last()
            .unwrap_or_default()
            .parse()
            .context("unexpected output from the sentence-transformers script")?;
        println!(
            "  sentence-transformers (same titles and batch, same run): {} titles/s; ratio metarec / Python: {:.2}x",
            thousands(theirs),
            ours / theirs
        );
    }
    Ok(())
}

pub fn run(command: BenchCommand, global: &Global) -> Result<()> {
    match command {
        BenchCommand::Ope { rows, resamples } => crate::ope::bench(rows, resamples, global),
        BenchCommand::Serve(args) => crate::serve::bench(args, global),
        BenchCommand::Soak(args) => crate::serve::soak(args, global),
        BenchCommand::Embed { batch, python } => embed_bench(batch, python, global),
        BenchCommand::Neural { calls, iterations } => {
            if cfg!(debug_assertions) {
                eprintln!(
                    "warning: this is a debug build; run `cargo run --release -p metarec -- bench neural`"
                );
            }
            neural_bench(calls, iterations, global)
        }
        BenchCommand::Sim {
            steps,
            recogym_python,
        } => {
            if cfg!(debug_assertions) {
                eprintln!(
                    "warning: this is a debug build; run `cargo run --release -p metarec -- bench sim`"
                );
            }
            let data = crate::sim::load_retail(global)?;
            let mut rows = Vec::new();
            for items in [100usize, 1000, data.catalog.len()] {
                let mut config = metarec_sim::ScenarioConfig::default();
                config.catalog.items = items;
                // Throughput does not depend on the exact biases; skipping calibration keeps the
                // benchmark's set-up short.
                config.calibration.fit = false;
                global.progress(format!("fitting a {items}-item world ..."));
                let scenario = metarec_sim::Scenario::build(config, &data)?;
                global.progress(format!("{items} items: random ..."));
                let random = steps_per_second(&scenario, "random", steps)?;
                global.progress(format!("{items} items: linucb ..."));
                let linucb = steps_per_second(&scenario, "linucb", (steps / 50).max(1))?;
                rows.push((items, random, linucb));
            }
            println!(
                "simulated slate steps per second (slates of 5; decide + step + observe; one thread)"
            );
            println!("  {:>6}  {:>14}  {:>14}", "items", "random", "linucb");
            for (items, random, linucb) in &rows {
                println!(
                    "  {:>6}  {:>14}  {:>14}",
                    items,
                    thousands(*random),
                    thousands(*linucb)
                );
            }
            let target = 1_000_000.0;
            println!(
                "  target: at least 1,000,000 steps/s for random at 100 items: {}",
                if rows[0].1 >= target {
                    "met"
                } else {
                    "NOT met"
                }
            );
            match recogym_python {
                Some(python) => {
                    global.progress("RecoGym baseline (random agent, 100 products) ...");
                    let theirs = recogym_steps(&python, 100, 20_000)?;
                    println!(
                        "  RecoGym reco-gym-v1, random agent, 100 products: {} steps/s (one item per step); ratio metarec / RecoGym: {:.0}x",
                        thousands(theirs),
                        rows[0].1 / theirs
                    );
                }
                None => println!(
                    "  RecoGym baseline not run: `scripts/recogym-venv`, then add `--recogym-python .venv-recogym/bin/python`"
                ),
            }
            Ok(())
        }
        BenchCommand::Load { repeats, python } => {
            if cfg!(debug_assertions) {
                eprintln!(
                    "warning: this is a debug build; run `cargo run --release -p metarec -- bench load`"
                );
            }
            global.data.require(Dataset::OnlineRetail)?;
            let path = global.data.online_retail_csv();
            let size_mb = std::fs::metadata(&path)?.len() as f64 / 1e6;
            let options = LoadOptions::default();
            // One untimed load warms the page cache, as the pandas side does.
            let first = load_online_retail(&path, &options)?;
            let mut ours = Vec::with_capacity(repeats);
            for i in 0..repeats {
                global.progress(format!("metarec load {}/{repeats}", i + 1));
                let t = Instant::now();
                let d = load_online_retail(&path, &options)?;
                ours.push(t.elapsed().as_secs_f64());
                std::hint::black_box(d);
            }
            global.progress("pandas.read_csv ...");
            let theirs = pandas_times(&python, &path, repeats)?;
            let (m_ours, m_theirs) = (median(ours.clone()), median(theirs.clone()));
            let min = |xs: &[f64]| xs.iter().copied().fold(f64::INFINITY, f64::min);
            println!(
                "Online Retail load: {} records, {size_mb:.1} MB, median of {repeats} runs, {} threads available",
                first.report.records,
                std::thread::available_parallelism().map_or(1, |n| n.get())
            );
            println!(
                "  {:<44} {:>10} {:>10}",
                "implementation", "median s", "min s"
            );
            println!(
                "  {:<44} {:>10.4} {:>10.4}",
                "metarec (parse + clean + catalog + index)",
                m_ours,
                min(&ours)
            );
            println!(
                "  {:<44} {:>10.4} {:>10.4}",
                "pandas.read_csv (parse only)",
                m_theirs,
                min(&theirs)
            );
            let ratio = m_theirs / m_ours;
            println!(
                "  speed ratio (pandas median / metarec median): {ratio:.2}x ({})",
                if ratio >= 1.0 {
                    "metarec is at least as fast"
                } else {
                    "metarec is SLOWER"
                }
            );
            Ok(())
        }
    }
}
