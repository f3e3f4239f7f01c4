//! The cold-start benchmarks: MovieLens-100k ratings under the MeLU episode protocol, and a
//! shop's own history split at a cutoff date ([`shop`]), each with the strong simple baselines
//! the meta-learning papers omit and metarec's strategy adjusters.
//!
//! The protocol (documented in `docs/coldstart.md`): users with 13 to 100 ratings are split by
//! seed into disjoint training, validation and test users ([`split`]); each held-out user gives a
//! query set of ten rated items and support sets of `K` of the rest. Methods are fitted on the
//! training users only, choose their hyperparameters on the validation users and are scored on
//! the test users' query sets ([`metrics`]).
//!
//! Modules:
//! - [`data`]: [`RatingData`], users with ratings and demographics, items with content features;
//! - [`split`]: [`Split`] and [`Episode`], the seeded protocol;
//! - [`metrics`]: MAE, RMSE, graded nDCG, precision and full-catalogue hit rate and NDCG;
//! - [`mf`]: biased matrix factorisation by ALS, implicit (weighted) ALS, and their closed-form
//!   fold-ins;
//! - [`bayes`]: the Bayesian adjuster (hierarchical Gaussian prior, empirical Bayes);
//! - [`melu`]: MeLU-style first-order MAML on a small network;
//! - [`bench`](mod@bench): [`run_benchmark`], the whole run and its [`Report`];
//! - [`shop`]: the shop protocol (new users after a cutoff, support = their first `K` items),
//!   popularity, item-kNN, ALS fold-in and the adjusters over implicit feedback, and
//!   [`run_shop_benchmark`] with its [`ShopReport`] ([`run_shop_benchmark_with`] adds a method
//!   scored outside the crate, an [`ExternalScorer`]);
//! - [`shop_items`]: the item cold-start variant (new items after a cutoff, ranked from their
//!   titles, categories and prices), [`run_item_benchmark`] with its [`ItemReport`].
//!
//! Plain Rust math on small dense matrices ([`metarec_core::linalg`]); no IO.
#![deny(missing_docs)]

pub mod bayes;
pub mod bench;
pub mod data;
mod error;
pub mod melu;
pub mod metrics;
pub mod mf;
mod ranking;
pub mod shop;
pub mod shop_items;
pub mod split;

pub use bench::{BenchConfig, Report, run_benchmark};
pub use data::{RatingData, UserFilter};
pub use error::ColdStartError;
pub use shop::{
    ExternalScorer, ShopBenchConfig, ShopData, ShopReport, run_shop_benchmark,
    run_shop_benchmark_with,
};
pub use shop_items::{ItemBenchConfig, ItemFeatures, ItemReport, run_item_benchmark};
pub use split::{Episode, Split};
