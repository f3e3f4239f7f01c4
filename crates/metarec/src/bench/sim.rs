//! `metarec bench sim`: simulated slate steps per second for the random policy and LinUCB,
//! optionally against RecoGym's random agent run from `bench/recogym_steps.py`.

use super::{thousands, warn_debug_build};
use crate::Global;
use crate::args::count;
use anyhow::{Context as _, Result, bail};
use clap::Args;
use std::process::Command;
use std::time::Instant;

/// The most slate steps per cell in `bench sim`: about three hours at a million steps per second.
const MAX_SIM_STEPS: u64 = 10_000_000_000;

#[derive(Args)]
pub struct BenchSimArgs {
    /// Slate steps timed per cell for the random policy (LinUCB runs a fiftieth of them).
    #[arg(long, default_value_t = 1_000_000, value_parser = count::<u64>(MAX_SIM_STEPS))]
    steps: u64,
    /// A Python with RecoGym installed (`scripts/peers-venv` makes one) to time RecoGym's
    /// random agent at 100 products in the same run.
    #[arg(long, value_name = "PYTHON")]
    recogym_python: Option<String>,
}

/// Times `steps` slate steps of a policy on a fresh environment, single thread.
fn steps_per_second(scenario: &metarec_sim::Scenario, policy: &str, steps: u64) -> Result<f64> {
    use metarec_core::{Environment, EventIds, rng_for, rollout};
    let mut env = scenario.env();
    let reward = scenario.config.reward;
    let mut p = metarec_learn::registry::build_policy(policy, env.catalog(), &reward, 7)?;
    let mut rng = rng_for(7, 7);
    let (mut done, mut user) = (0u64, 0u64);
    let start = Instant::now();
    while done < steps {
        let one = user..user + 1;
        done += rollout(&mut env, &mut p, one, &mut rng, &mut (), EventIds::None)? as u64;
        user += 1;
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
            "the RecoGym baseline failed (run scripts/peers-venv first):\n{}",
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

pub fn run(args: BenchSimArgs, global: &Global) -> Result<()> {
    let BenchSimArgs {
        steps,
        recogym_python,
    } = args;
    warn_debug_build("sim");
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
    println!("simulated slate steps per second (slates of 5; decide + step + observe; one thread)");
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
            "  RecoGym baseline not run: `scripts/peers-venv`, then add `--recogym-python .venv-peers/bin/python`"
        ),
    }
    Ok(())
}
