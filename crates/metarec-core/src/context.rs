//! What a policy knows when it is asked for a slate: the [`Context`].
//!
//! A context carries only observable information: the user's key and features, the time, the
//! session so far and the candidate items. Simulators keep their hidden user state elsewhere, so
//! nothing hidden can leak to a policy through this type.

use crate::ids::{ItemId, UserKey};
use serde::{Deserialize, Serialize};

/// One earlier interaction of the user with an item, as a policy may see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PastEvent {
    /// The item shown.
    pub item: ItemId,
    /// Whether the user clicked it.
    pub click: bool,
    /// Whether the user bought it.
    pub purchase: bool,
}

/// Where the user stands in their visit.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionState {
    /// How many earlier sessions (visits) this user has had.
    pub session: u32,
    /// How many slates this session has already shown.
    pub step: u32,
    /// The user's recent interactions, oldest first; producers bound its length.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<PastEvent>,
}

/// The observable situation in which a slate is requested.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Context {
    /// Who asks.
    pub user: UserKey,
    /// When, in milliseconds since the Unix epoch (UTC), when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp_ms: Option<i64>,
    /// Dense numeric user features (for example Open Bandit's user-item affinities).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub features: Vec<f32>,
    /// Categorical user features as `name=value` tokens (for example `country=France`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tokens: Vec<String>,
    /// The session so far.
    #[serde(default)]
    pub session: SessionState,
    /// The items the policy may choose from; empty means the whole catalog.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub candidates: Vec<ItemId>,
}

impl Context {
    /// A context for a user with nothing else known.
    pub fn for_user(user: UserKey) -> Self {
        Context {
            user,
            ..Context::default()
        }
    }
}
