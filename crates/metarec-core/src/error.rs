//! The one error type of the vocabulary: a value that breaks an invariant of a type.

use thiserror::Error;

/// A value that would break an invariant of a vocabulary type.
///
/// Every constructor that checks an invariant returns this error, and deserialisation reports it
/// too, so a malformed log record is rejected with the name of the offending field.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum VocabError {
    /// Two parallel collections that must have equal lengths do not.
    #[error("field `{field}` has {actual} entries but {expected} were expected")]
    LengthMismatch {
        /// The field whose length is wrong.
        field: &'static str,
        /// The length implied by the rest of the record.
        expected: usize,
        /// The length found.
        actual: usize,
    },
    /// A number lies outside the range the field allows.
    #[error("field `{field}` is {value}, outside {allowed}")]
    OutOfRange {
        /// The field whose value is wrong.
        field: &'static str,
        /// The offending value.
        value: f64,
        /// The allowed range, in words.
        allowed: &'static str,
    },
    /// An item appears twice where items must be distinct.
    #[error("item {item} appears more than once in `{field}`")]
    Duplicate {
        /// The field with the repeated item.
        field: &'static str,
        /// The repeated item.
        item: u32,
    },
    /// A collection that must not be empty is empty.
    #[error("field `{field}` must not be empty")]
    Empty {
        /// The empty field.
        field: &'static str,
    },
    /// An item key appears twice in a catalog.
    #[error("item key `{key}` appears more than once in the catalog")]
    DuplicateKey {
        /// The repeated external key.
        key: String,
    },
    /// An identifier refers to nothing, for example an item id past the end of the catalog.
    #[error("field `{field}` refers to {id}, but only {len} exist")]
    UnknownId {
        /// The field holding the identifier.
        field: &'static str,
        /// The identifier.
        id: u64,
        /// How many valid identifiers there are.
        len: usize,
    },
}
