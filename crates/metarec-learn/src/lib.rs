//! metarec's learners: the baseline recommendation policies behind the
//! [`metarec_core::Policy`] seam.
//!
//! - [`baselines`]: [`RandomPolicy`], [`PopularityPolicy`] and [`EpsilonGreedy`], item-level
//!   statistics shared by all users;
//! - [`linear`]: [`LinUcb`] and [`LinTs`], linear contextual bandits, with one model for
//!   everyone or one per user ([`Scope`]);
//! - [`itemknn`]: [`ItemKnn`], item-to-item cosine similarity to the session history;
//! - [`features`]: [`FeatureMap`], the `phi(context, item)` the linear bandits regress on;
//! - [`ridge`]: [`RidgeModel`] (ridge regression with Sherman-Morrison updates and posterior
//!   draws) and [`ScopedModels`];
//! - [`registry`]: [`build_policy`] and [`BASELINES`], policies by name.
//!
//! Every policy turns scores into slates only through [`metarec_core::explore`], so each decision
//! carries per-position propensities in `(0, 1]`, and draws randomness only from the generator
//! passed to `decide`: the same seed gives the same decisions. Policies are built from config
//! structs and return a typed [`LearnError`] when the settings or the catalog do not fit.
#![deny(missing_docs)]

pub mod baselines;
mod candidates;
mod error;
pub mod features;
pub mod itemknn;
pub mod linear;
pub mod registry;
pub mod ridge;
#[cfg(test)]
mod testkit;

pub use baselines::{
    EpsilonGreedy, EpsilonGreedyConfig, PopularityConfig, PopularityPolicy, RandomPolicy,
};
pub use error::LearnError;
pub use features::FeatureMap;
pub use itemknn::{ItemKnn, ItemKnnConfig};
pub use linear::{LinTs, LinTsConfig, LinUcb, LinUcbConfig};
pub use registry::{BASELINES, build_policy};
pub use ridge::{RidgeModel, Scope, ScopedModels};
