//! The one error type of the learners: [`LearnError`], for policies that cannot be built as
//! asked.

use thiserror::Error;

/// Why a policy could not be built.
///
/// Policies check their configuration and the catalog when they are built, so that a policy that
/// exists can decide on every context without failing.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum LearnError {
    /// The registry does not know the requested policy name.
    #[error("unknown policy `{name}`; valid names: {valid}")]
    UnknownPolicy {
        /// The name asked for.
        name: String,
        /// The names the registry knows, comma-separated.
        valid: String,
    },
    /// A configuration parameter lies outside its allowed range.
    #[error("parameter `{field}` is {value}, outside {allowed}")]
    InvalidConfig {
        /// The offending parameter.
        field: &'static str,
        /// Its value.
        value: f64,
        /// The allowed range, in words.
        allowed: &'static str,
    },
    /// A catalog feature is NaN or infinite, which would poison every model that reads it.
    #[error("feature `{column}` of item {item} is not finite ({value})")]
    NonFiniteFeature {
        /// The item's id.
        item: u32,
        /// The column's name (or its index when the columns are unnamed).
        column: String,
        /// The offending value.
        value: f32,
    },
}

/// Checks that `value` is finite and within `[lo, hi]`.
pub(crate) fn check_range(
    field: &'static str,
    value: f64,
    lo: f64,
    hi: f64,
    allowed: &'static str,
) -> Result<(), LearnError> {
    if value.is_finite() && value >= lo && value <= hi {
        Ok(())
    } else {
        Err(LearnError::InvalidConfig {
            field,
            value,
            allowed,
        })
    }
}
