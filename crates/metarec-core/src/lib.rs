//! The shared vocabulary of metarec.
//!
//! Every other crate (data loaders, simulator, learners, off-policy evaluation, server) speaks in
//! these types, so that one logged record, the [`Interaction`], flows unchanged from the simulator
//! or the server into training and evaluation. The crate does no IO and holds no global state.
//!
//! Main types:
//! - identifiers: [`ItemId`], [`UserKey`], [`EventId`], [`CategoryId`];
//! - items: [`Item`] (one row) and [`Catalog`] (columnar storage of all items);
//! - the request side: [`Context`] with its [`SessionState`];
//! - the policy's answer: [`Slate`] and [`Decision`] (with per-position propensities);
//! - the user's answer: [`Feedback`];
//! - the log record: [`Interaction`];
//! - the objective: [`RewardFn`];
//! - the seams: [`Environment`] (what every policy sees) and [`Oracle`] (the hidden state only
//!   yardsticks and regret may read), [`Policy`] and [`Adjuster`], and [`explore`], the pure
//!   functions that turn scores into slates with propensities;
//! - [`rollout`](mod@rollout): the one loop that plays users ([`Agent`], [`Observer`]).
#![deny(missing_docs)]

mod catalog;
mod context;
mod decision;
mod error;
pub mod explore;
mod ids;
pub mod linalg;
mod policy;
mod reward;
pub mod rollout;

pub use catalog::{Catalog, FeatureMatrix, Item};
pub use context::{Context, PastEvent, SessionState, packed_history};
pub use decision::{Decision, Feedback, Interaction, Slate};
pub use error::VocabError;
pub use explore::{Rng, SlateChoice, rng_for, stable_hash};
pub use ids::{CategoryId, EventId, ItemId, UserKey};
pub use policy::{Adjuster, Environment, Oracle, Policy, Step, decision_from_choice};
pub use reward::RewardFn;
pub use rollout::{Agent, EventIds, Observer, Recorder, rollout};
