//! Loaders for metarec's real data sets, the interaction log, data-set statistics and fetching.
//!
//! Every loader reads a whole file, never panics on bad input, and returns its data together
//! with a [`LoadReport`]: a malformed record is either a [`DataError`] naming file, line and
//! field, or (with [`OnMalformed::Skip`]) a skipped record counted by reason.
//!
//! Modules by data set:
//! - [`online_retail`]: UCI Online Retail purchases -> catalog, customers, purchase lines;
//! - [`obd`]: the Open Bandit Dataset's logged slates with propensities;
//! - [`movielens`]: MovieLens-100k ratings in RecBole's atomic format;
//! - [`log`]: the interaction log (JSON Lines of [`metarec_core::Interaction`]);
//! - [`shop`]: a shop's own catalog, users and events (a shop directory), and its interactions;
//! - [`stats`]: the first numbers a practitioner checks on each data set;
//! - [`fetch`]: putting each data set into the data directory from where it ships.
#![deny(missing_docs)]

mod error;
pub mod fetch;
pub mod log;
pub mod movielens;
pub mod obd;
pub mod online_retail;
mod report;
pub mod shop;
pub mod stats;
mod table;
pub mod time;

pub use error::DataError;
pub use report::{LoadOptions, LoadReport, OnMalformed};
