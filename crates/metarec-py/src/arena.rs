//! The arena from Python: the same contestants, users and seeds as `metarec arena`, the same
//! numbers.

use crate::sim::Simulator;
use crate::value_error;
use metarec_eval::{ArenaConfig, PolicySpec, run_arena};
use pyo3::prelude::*;

/// Plays `policies` (names as `metarec arena --policies` takes them) on `users` new users for
/// each of `seeds` seeds of `simulator`'s scenario and returns the report as JSON (what
/// `metarec arena --json` writes under `results`).
#[pyfunction]
#[pyo3(signature = (simulator, policies, *, users = 1000, seeds = 3, horizon = 20, threads = 0, against = vec!["popularity".to_owned()]))]
#[allow(clippy::too_many_arguments)]
pub fn arena_json(
    py: Python<'_>,
    simulator: &Simulator,
    policies: Vec<String>,
    users: usize,
    seeds: usize,
    horizon: usize,
    threads: usize,
    against: Vec<String>,
) -> PyResult<String> {
    let mut contestants = PolicySpec::parse_list(&policies.join(",")).map_err(value_error)?;
    let mut bundles = Vec::new();
    for spec in &mut contestants {
        spec.load(&mut bundles).map_err(value_error)?;
    }
    let config = ArenaConfig {
        users,
        seeds,
        horizon,
        threads,
        keep_log: false,
        reward: None,
        paired_against: against,
    };
    let scenario = simulator.scenario.clone();
    let report = py
        .detach(move || run_arena(&scenario, &contestants, &config, &|_| {}))
        .map_err(value_error)?;
    serde_json::to_string(&report).map_err(value_error)
}
