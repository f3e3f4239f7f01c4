//! [`SimError`]: why a scenario cannot be built or run.

use metarec_data::DataError;
use thiserror::Error;

/// An error from building or configuring the simulator.
#[derive(Debug, Error)]
pub enum SimError {
    /// The scenario file is not valid TOML or has unknown or mistyped keys.
    #[error("scenario `{name}`: {message}")]
    Parse {
        /// The scenario's name or path.
        name: String,
        /// The parser's message, with line and column.
        message: String,
    },
    /// A parameter is outside its allowed range.
    #[error("scenario parameter `{parameter}` = {value}: {rule}")]
    Invalid {
        /// The dotted parameter name, for example `choice.slate_size`.
        parameter: &'static str,
        /// The value given.
        value: String,
        /// The rule it breaks.
        rule: &'static str,
    },
    /// No preset has this name and no file has this path.
    #[error("no scenario `{name}`: not a preset ({presets}) and not a readable file")]
    UnknownScenario {
        /// The name given.
        name: String,
        /// The preset names.
        presets: String,
    },
    /// The real data could not be loaded.
    #[error(transparent)]
    Data(#[from] DataError),
    /// The scenario asks for title-embedding features but none (or the wrong number) were given.
    #[error("scenario needs title embeddings: {0}")]
    Text(String),
    /// A shop has nothing a simulator's hidden tastes could be fitted to.
    #[error("cannot fit a simulator to shop `{shop}`: {reason}")]
    NoSignal {
        /// The shop's name.
        shop: String,
        /// What it lacks.
        reason: String,
    },
    /// The data is too small for the scenario (for example fewer items than a slate).
    #[error("the data cannot support this scenario: {0}")]
    TooSmall(String),
}
