//! [`NeuralError`]: why a network cannot be built, trained, saved or loaded.

use thiserror::Error;

/// An error of the neural policy or its trainers.
#[derive(Debug, Error)]
pub enum NeuralError {
    /// A tensor operation failed (a shape mismatch is a bug; an allocation failure is not).
    #[error("tensor operation failed: {0}")]
    Tensor(#[from] candle_core::Error),
    /// A setting is out of range.
    #[error("invalid setting: {0}")]
    Config(String),
    /// Reading or writing a checkpoint failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// A checkpoint is damaged or does not belong to this metarec.
    #[error("{path}: not a usable metarec model: {reason}")]
    Corrupt {
        /// The file.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// A checkpoint was trained for another catalog or architecture.
    #[error("model in {path} does not fit: {reason}")]
    Mismatch {
        /// The model directory.
        path: String,
        /// What differs.
        reason: String,
    },
}
