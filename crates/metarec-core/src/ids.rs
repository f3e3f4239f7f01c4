//! Identifiers: [`ItemId`], [`CategoryId`], [`UserKey`] and [`EventId`].
//!
//! Items and categories are dense indices into a [`crate::Catalog`], so that models can use them
//! directly as embedding rows. Users and events are opaque strings because they come from the
//! outside world (a shop's customer number, a server's event id) and are never used as indices.

use serde::{Deserialize, Serialize};
use std::fmt;

/// A dense index of an item in its [`crate::Catalog`]: `0..catalog.len()`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ItemId(pub u32);

impl ItemId {
    /// The id as a `usize`, for indexing columns.
    #[inline]
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

impl fmt::Display for ItemId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A dense index of an item category in its [`crate::Catalog`]'s category vocabulary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct CategoryId(pub u32);

/// The key of a user as the outside world names them (a customer number, a pseudonym).
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct UserKey(pub String);

impl fmt::Display for UserKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for UserKey {
    fn from(s: &str) -> Self {
        UserKey(s.to_owned())
    }
}

/// The identifier of one decision, used to join later feedback to it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct EventId(pub String);

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for EventId {
    fn from(s: &str) -> Self {
        EventId(s.to_owned())
    }
}
