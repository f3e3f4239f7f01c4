//! metarec's e-commerce user simulator, fitted to real purchases (Online Retail's, or any shop's).
//!
//! - [`config`]: [`ScenarioConfig`], every parameter, with TOML presets;
//! - [`mf`]: implicit ALS, the ground truth's factorisation;
//! - [`evidence`]: what a world is fitted on, from Online Retail or any shop directory, and a
//!   shop's logged impressions ([`evidence::ImpressionFacts`]);
//! - [`world`]: [`World`], the fitted items and the population new users are drawn from;
//! - [`shop`]: [`ShopEnv`], the [`metarec_core::Environment`] itself, with the oracle and the
//!   far-sighted planner;
//! - [`informed`]: [`InformedPolicy`], the exact-model Bayesian yardstick: everything the
//!   simulator knows except the user, learnt from the same feedback a policy gets;
//! - [`Scenario`]: a configuration with its fitted world and calibrated biases;
//! - [`yardstick`]: [`yardstick::Yardstick`], the simulator's reference policies (oracle, planner,
//!   organic browsing, best sellers) and the agent that plays them;
//! - [`calibrate`]: fitting the click and purchase biases to target rates, and the report that
//!   compares simulated and real purchases.
//!
//! The simulator does no IO: callers load the data and hand it over.
#![deny(missing_docs)]

pub mod calibrate;
pub mod config;
mod error;
pub mod evidence;
pub mod informed;
pub mod mf;
mod scenario;
pub mod shop;
pub mod world;
pub mod yardstick;

pub use config::ScenarioConfig;
pub use error::SimError;
pub use informed::{InformedConfig, InformedPolicy};
pub use scenario::{Scenario, ShopStamp};
pub use shop::ShopEnv;
pub use world::{ObservedView, World};
