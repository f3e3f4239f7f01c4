//! [`ColdStartError`], the crate's one error type.

use thiserror::Error;

/// Why a benchmark could not run.
#[derive(Debug, Error)]
pub enum ColdStartError {
    /// A setting is out of range or the settings contradict each other.
    #[error("invalid benchmark settings: {0}")]
    Config(String),
    /// The data do not fit the protocol.
    #[error("data unfit for the cold-start protocol: {0}")]
    Data(String),
    /// A method scored outside this crate failed or gave unusable scores.
    #[error("the external method failed: {0}")]
    Scorer(String),
}
