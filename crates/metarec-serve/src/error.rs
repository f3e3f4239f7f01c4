//! [`ServeError`]: why a server cannot start or a model cannot be served; [`StoreError`]: why
//! storage failed.

use thiserror::Error;

/// Storage failed (the database is unreadable, full, locked or corrupt).
#[derive(Debug, Error)]
#[error("storage failed: {0}")]
pub struct StoreError(pub String);

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        StoreError(e.to_string())
    }
}

impl From<serde_json::Error> for StoreError {
    fn from(e: serde_json::Error) -> Self {
        StoreError(format!("stored JSON is invalid: {e}"))
    }
}

/// An error starting the server or loading a model.
#[derive(Debug, Error)]
pub enum ServeError {
    /// The model directory cannot be used.
    #[error(transparent)]
    Neural(#[from] metarec_neural::NeuralError),
    /// The model directory is loadable but unfit to serve (adjuster settings, dimensions).
    #[error("{path}: {reason}")]
    Model {
        /// The file or directory.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A setting is missing or invalid (keys, secret, window, limits).
    #[error("{0}")]
    Config(String),
    /// Reading a file or binding a socket failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}
