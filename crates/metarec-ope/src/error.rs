//! [`OpeError`]: everything that can go wrong while preparing or running an off-policy
//! evaluation.
//!
//! Errors about one logged record name its 1-based row (the record's position in the log, which
//! is its line in a JSON Lines file), so a malformed log is rejected where it breaks and nothing
//! is silently dropped.

use thiserror::Error;

/// An error of off-policy evaluation.
#[derive(Debug, Error)]
pub enum OpeError {
    /// A logged record carries no logging propensity for an entry.
    #[error("row {row}: entry {entry} has no logging propensity")]
    MissingPropensity {
        /// The 1-based record.
        row: usize,
        /// The slate entry (0-based).
        entry: usize,
    },
    /// A logging propensity outside `(0, 1]` (zero, negative, above one or not a number).
    #[error("row {row}: entry {entry}: logging propensity {value} is outside (0, 1]")]
    Propensity {
        /// The 1-based record.
        row: usize,
        /// The slate entry (0-based).
        entry: usize,
        /// The offending value.
        value: f64,
    },
    /// A logging propensity in `(0, 1]` but below the [`crate::PropensityFloor`]: its importance
    /// weight would be so large (or infinite) that no estimate means anything.
    #[error(
        "row {row}: entry {entry}: logging propensity {value:e} is below the floor {floor:e}, so its importance weight would swamp every estimate; clip propensities to the floor or lower the floor"
    )]
    BelowFloor {
        /// The 1-based record.
        row: usize,
        /// The slate entry (0-based).
        entry: usize,
        /// The offending value.
        value: f64,
        /// The floor.
        floor: f64,
    },
    /// An estimator's result that is not a finite number (the importance weights overflow the
    /// sums): reported rather than printed as NaN or infinity.
    #[error(
        "{estimator}: the {quantity} is {value}, not a finite number: the importance weights are too large (largest {max_weight:e}); raise the propensity floor or clip the weights"
    )]
    NonFinite {
        /// The estimator's name.
        estimator: String,
        /// What is not finite (`estimate`, `standard error`, `effective sample size`).
        quantity: &'static str,
        /// The value.
        value: f64,
        /// The largest importance weight before clipping.
        max_weight: f64,
    },
    /// A logged item the catalog does not know.
    #[error("row {row}: entry {entry}: item {item} is not in the catalog of {items} items")]
    UnknownItem {
        /// The 1-based record.
        row: usize,
        /// The slate entry (0-based).
        entry: usize,
        /// The item id (or key) as logged.
        item: String,
        /// Catalog size.
        items: usize,
    },
    /// A display position outside the evaluated slate.
    #[error(
        "row {row}: entry {entry}: position {position} is outside the {positions} evaluated positions"
    )]
    UnknownPosition {
        /// The 1-based record.
        row: usize,
        /// The slate entry (0-based).
        entry: usize,
        /// The logged position (0-based).
        position: u32,
        /// Number of positions evaluated.
        positions: usize,
    },
    /// A reward that is not a finite number.
    #[error("row {row}: entry {entry}: reward {value} is not finite")]
    Reward {
        /// The 1-based record.
        row: usize,
        /// The slate entry (0-based).
        entry: usize,
        /// The offending value.
        value: f64,
    },
    /// A record that does not fit the format being read (DSJSON, a prior file).
    #[error("{source_name}: line {line}: {reason}")]
    Format {
        /// The file or stream.
        source_name: String,
        /// The 1-based line.
        line: usize,
        /// What is wrong, in words.
        reason: String,
    },
    /// The log holds no records.
    #[error("the log is empty: there is nothing to evaluate")]
    EmptyLog,
    /// A setting that cannot work (a clip that is not positive, zero resamples...).
    #[error("invalid setting `{name}`: {reason}")]
    Config {
        /// The setting.
        name: &'static str,
        /// Why it cannot work.
        reason: String,
    },
    /// A file that is not a NumPy array metarec can read (see [`crate::arrays::read_npy`]).
    #[error("{}: {reason}", path.display())]
    Npy {
        /// The file.
        path: std::path::PathBuf,
        /// What is wrong, in words.
        reason: String,
    },
    /// Reading or writing a file failed.
    #[error(transparent)]
    Data(#[from] metarec_data::DataError),
}
