//! Evaluation of policies.
//!
//! - [`summary`]: means with 95% confidence intervals, for plain and ratio metrics;
//! - [`arena`]: runs policies on the same simulated new users (common random numbers) and
//!   reports reward, CTR, CVR, revenue, visit length, regret against the oracle and the cold-start
//!   curve, each with its interval;
//! - [`policies`]: [`PolicySpec`], every policy by name (baselines, yardsticks, the informed
//!   yardstick, model bundles alone or adjusted), built from parts in memory;
//! - [`meta`]: meta-training of the strategy adjuster on simulated training users, or offline
//!   on a shop's logged users ([`meta::shop`]);
//! - [`shop`]: the neural policy on a shop's own logs: the training data (split by time,
//!   importance weights, organic slates), the held-out click AUC, users' histories, and the
//!   check that a model was trained on a shop;
//! - [`newitems`]: the new-item cold-start benchmark on Online Retail (id-only against text
//!   features for products never seen sold).
#![deny(missing_docs)]

pub mod arena;
pub mod meta;
pub mod newitems;
pub mod policies;
pub mod shop;
pub mod summary;

pub use arena::{
    ArenaConfig, ArenaReport, JobResult, arena_jobs, assemble_arena, play_arena_job,
    prepare_contestants, run_arena,
};
pub use policies::{ModelRef, PolicyError, PolicySpec};
pub use summary::Summary;
