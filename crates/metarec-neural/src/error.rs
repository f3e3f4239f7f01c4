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
    /// A model has no `adjuster.json`: it has not been meta-trained.
    #[error("{path}: no adjuster; run `metarec meta-train --model {dir}` first")]
    NoAdjuster {
        /// The adjuster file.
        path: String,
        /// The model directory.
        dir: String,
    },
    /// A model's adjuster was meta-trained on other weights than the model now holds (it was
    /// trained further since).
    #[error(
        "{path}: the adjuster was fitted to weights with SHA-256 {fitted_to}, but model.safetensors now has {weights}; run `metarec meta-train --model {dir}` again"
    )]
    StaleAdjuster {
        /// The adjuster file.
        path: String,
        /// The model directory.
        dir: String,
        /// The weights the adjuster was fitted to.
        fitted_to: String,
        /// The weights the model holds.
        weights: String,
    },
    /// A policy over a model was built before the model was loaded (a bug in the caller).
    #[error("policy `{0}`: its model was not loaded")]
    NotLoaded(String),
    /// A policy's choice broke a decision's invariants (a bug in the policy).
    #[error("invalid decision: {0}")]
    Decision(#[from] metarec_core::VocabError),
    /// A checkpoint was trained for another catalog or architecture.
    #[error("model in {path} does not fit: {reason}")]
    Mismatch {
        /// The model directory.
        path: String,
        /// What differs.
        reason: String,
    },
}
