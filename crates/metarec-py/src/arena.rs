//! The arena from Python: the same contestants, users and seeds as `metarec arena`, the same
//! numbers.

use crate::sim::Simulator;
use crate::value_error;
use metarec_eval::{
    ArenaConfig, JobResult, PolicySpec, arena_jobs, assemble_arena, play_arena_job,
    prepare_contestants, run_arena,
};
use pyo3::prelude::*;
use pyo3::types::PyBytes;

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

/// The arena's settings from the Python arguments.
fn config(users: usize, seeds: usize, horizon: usize, against: Vec<String>) -> ArenaConfig {
    ArenaConfig {
        users,
        seeds,
        horizon,
        threads: 1,
        keep_log: false,
        reward: None,
        paired_against: against,
    }
}

/// Parses and prepares the contestants named in `policies`.
fn contestants(
    simulator: &Simulator,
    policies: &[String],
    config: &ArenaConfig,
) -> PyResult<Vec<PolicySpec>> {
    let specs = PolicySpec::parse_list(&policies.join(",")).map_err(value_error)?;
    prepare_contestants(&simulator.scenario, &specs, config).map_err(value_error)
}

/// The arena's jobs as `(contestant, seed)` pairs, in the order `arena_assemble_json` takes
/// their results.
#[pyfunction]
pub fn arena_job_list(n_policies: usize, seeds: usize) -> Vec<(usize, usize)> {
    arena_jobs(n_policies, &config(1, seeds, 1, Vec::new()))
}

/// Plays one job of the arena (contestant `c` on seed `s`'s users) and returns its result as
/// bytes that carry every number exactly, for `arena_assemble_json`, wherever it runs.
#[pyfunction]
#[pyo3(signature = (simulator, policies, c, s, *, users = 1000, seeds = 3, horizon = 20))]
#[allow(clippy::too_many_arguments)]
pub fn arena_job<'py>(
    py: Python<'py>,
    simulator: &Simulator,
    policies: Vec<String>,
    c: usize,
    s: usize,
    users: usize,
    seeds: usize,
    horizon: usize,
) -> PyResult<Bound<'py, PyBytes>> {
    let config = config(users, seeds, horizon, Vec::new());
    let specs = contestants(simulator, &policies, &config)?;
    let scenario = simulator.scenario.clone();
    let bytes = py
        .detach(move || play_arena_job(&scenario, &specs, c, s, &config).map(|r| r.to_bytes()))
        .map_err(value_error)?;
    Ok(PyBytes::new(py, &bytes))
}

/// The arena's report (as `arena_json` returns it) from the results of every job of
/// `arena_job_list`, in that order.
#[pyfunction]
#[pyo3(signature = (simulator, policies, results, *, users = 1000, seeds = 3, horizon = 20, against = vec!["popularity".to_owned()]))]
#[allow(clippy::too_many_arguments)]
pub fn arena_assemble_json(
    simulator: &Simulator,
    policies: Vec<String>,
    results: Vec<Vec<u8>>,
    users: usize,
    seeds: usize,
    horizon: usize,
    against: Vec<String>,
) -> PyResult<String> {
    let config = config(users, seeds, horizon, against);
    let specs = contestants(simulator, &policies, &config)?;
    let results = results
        .iter()
        .map(|b| JobResult::from_bytes(b))
        .collect::<Result<Vec<_>, _>>()
        .map_err(value_error)?;
    let report =
        assemble_arena(&simulator.scenario, &specs, &config, results).map_err(value_error)?;
    serde_json::to_string(&report).map_err(value_error)
}
