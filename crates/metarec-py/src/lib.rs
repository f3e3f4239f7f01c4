//! The native half of metarec's Python package (`python/metarec`), built by maturin as the
//! extension module `metarec._metarec`:
//!
//! - [`sim`]: `Simulator` (a scenario fitted to Online Retail or a shop directory) and `VecEnv`
//!   (many simulated users stepped at once, under common random numbers), behind the
//!   gymnasium environments `metarec.ShopEnv` and `metarec.VecShopEnv`;
//! - [`context`]: `Context`, what a policy sees;
//! - [`policy`]: `Policy`, every metarec policy by name (baselines and model bundles), one
//!   context at a time or a whole `VecEnv` at once;
//! - [`arena`]: the arena, the same numbers as `metarec arena` for the same seeds, whole or one
//!   job at a time with exact results as bytes (what `metarec.ray` spreads over a cluster);
//! - [`ope`]: the off-policy estimators on numpy arrays in Open Bandit Pipeline's shapes;
//! - [`train`]: `Trainer`, the network's training on a simulator, whole iterations or a batch
//!   split over workers with exact bytes (what `metarec.ray.train` spreads over a cluster).
//!
//! Errors in what Python passes are `ValueError`s that say which argument and where.
#![deny(missing_docs)]

pub mod arena;
pub mod context;
pub mod ope;
pub mod policy;
pub mod sim;
pub mod train;

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

/// A `ValueError` with the message of `e`.
pub(crate) fn value_error(e: impl std::fmt::Display) -> PyErr {
    PyValueError::new_err(e.to_string())
}

/// The names `Policy` and `arena` take (model bundles as `neural:DIR`, `neural-greedy:DIR`,
/// `neural-static:DIR`, `adjusted:DIR`).
#[pyfunction]
fn policy_names() -> Vec<&'static str> {
    metarec_eval::PolicySpec::names()
}

/// The module `metarec._metarec`.
#[pymodule]
fn _metarec(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add_class::<sim::Simulator>()?;
    m.add_class::<sim::VecEnv>()?;
    m.add_class::<context::PyContext>()?;
    m.add_class::<policy::PyPolicy>()?;
    m.add_class::<train::PyTrainer>()?;
    m.add_function(wrap_pyfunction!(policy_names, m)?)?;
    m.add_function(wrap_pyfunction!(arena::arena_json, m)?)?;
    m.add_function(wrap_pyfunction!(arena::arena_job_list, m)?)?;
    m.add_function(wrap_pyfunction!(arena::arena_job, m)?)?;
    m.add_function(wrap_pyfunction!(arena::arena_assemble_json, m)?)?;
    m.add_function(wrap_pyfunction!(ope::estimate, m)?)?;
    Ok(())
}
