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
//! - the objective: [`RewardFn`].
#![deny(missing_docs)]

mod catalog;
mod context;
mod decision;
mod error;
mod ids;
mod reward;

pub use catalog::{Catalog, FeatureMatrix, Item};
pub use context::{Context, PastEvent, SessionState};
pub use decision::{Decision, Feedback, Interaction, Slate};
pub use error::VocabError;
pub use ids::{CategoryId, EventId, ItemId, UserKey};
pub use reward::RewardFn;
