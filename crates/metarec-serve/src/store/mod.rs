//! Storage of decisions, feedback and per-user adjuster states.
//!
//! [`Store`] is the seam: each server's writer thread is its only caller, and it groups many
//! requests into one transaction (`begin` ... `commit`), so a commit acknowledges a whole group.
//! Two implementations:
//!
//! - [`SqliteStore`] (`sqlite.rs`), the embedded default: one file in WAL mode with synchronous
//!   FULL, written by one server process;
//! - [`PostgresStore`] (`postgres.rs`): a PostgreSQL database that any number of server
//!   replicas share, with synchronous commit, versioned migrations applied at start and a
//!   transaction-level advisory lock that serialises the replicas' write groups.
//!
//! Tables (the same concepts in both): `decisions` (one row per event: pseudonymous user, the
//! pseudonymous API key that ranked it, creation time, the interaction as JSON with its feedback
//! so far, whether the reward window closed and the reward then), `feedback` (one row per
//! event, position and kind: the primary key makes feedback idempotent), `users` (the adjuster
//! state of each pseudonymous user as JSON) and `items` (items added, updated or retired over
//! the API, as JSON, per catalog fingerprint, in the order they were first added, which gives
//! added items their ids).

use crate::error::StoreError;
use metarec_core::Interaction;

mod postgres;
mod sqlite;

pub use postgres::{PG_SCHEMA_VERSION, PgConfig, PostgresStore, UserReader, WRITER_LOCK};
pub use sqlite::{Checkpointer, Durability, SCHEMA_VERSION, SqliteStore};
/// Whether a `--db` value names a PostgreSQL database (`postgres://` or `postgresql://`)
/// rather than a SQLite file.
pub fn is_postgres_url(db: &str) -> bool {
    db.starts_with("postgres://") || db.starts_with("postgresql://")
}

/// A decision's interaction as its stored JSON, written into a buffer sized for a typical row
/// at once (growing a string from empty cost a handful of reallocations on every rank).
///
/// It is the JSON of [`Interaction`] except that the context's history is packed, one integer
/// per event ([`metarec_core::packed_history`]): with the 100 events a server keeps
/// per user, the objects were about 4,400 of a row's 6,000 bytes, and so most of what the
/// database grew by and the writer wrote. Rows of either form read back through `Interaction`
/// itself. The context is borrowed, not copied as `Interaction`'s own serialisation does.
pub(crate) fn interaction_json(interaction: &Interaction) -> Result<String, serde_json::Error> {
    use metarec_core::{Context, ItemId, PastEvent, UserKey};
    use serde::Serialize;
    #[derive(Serialize)]
    struct Stored<'a> {
        context: StoredContext<'a>,
        decision: &'a metarec_core::Decision,
        feedback: &'a metarec_core::Feedback,
    }
    // `Context`'s fields and rules, with the history packed.
    #[derive(Serialize)]
    struct StoredContext<'a> {
        user: &'a UserKey,
        #[serde(skip_serializing_if = "Option::is_none")]
        timestamp_ms: Option<i64>,
        #[serde(skip_serializing_if = "<[f32]>::is_empty")]
        features: &'a [f32],
        #[serde(skip_serializing_if = "<[String]>::is_empty")]
        tokens: &'a [String],
        session: StoredSession<'a>,
        #[serde(skip_serializing_if = "<[ItemId]>::is_empty")]
        candidates: &'a [ItemId],
    }
    #[derive(Serialize)]
    struct StoredSession<'a> {
        session: u32,
        step: u32,
        #[serde(
            skip_serializing_if = "<[PastEvent]>::is_empty",
            serialize_with = "metarec_core::packed_history::serialize"
        )]
        history: &'a [PastEvent],
        #[serde(skip_serializing_if = "Option::is_none")]
        visit_events: Option<u32>,
    }
    // Naming every field (no `..`) makes a field added to `Context` a compile error here
    // rather than a field the store silently drops.
    let Context {
        user,
        timestamp_ms,
        features,
        tokens,
        session,
        candidates,
    } = &interaction.context;
    let metarec_core::SessionState {
        session: visit,
        step,
        history,
        visit_events,
    } = session;
    let stored = Stored {
        context: StoredContext {
            user,
            timestamp_ms: *timestamp_ms,
            features,
            tokens,
            session: StoredSession {
                session: *visit,
                step: *step,
                history,
                visit_events: *visit_events,
            },
            candidates,
        },
        decision: &interaction.decision,
        feedback: &interaction.feedback,
    };
    let mut bytes = Vec::with_capacity(2048);
    serde_json::to_writer(&mut bytes, &stored)?;
    // serde_json writes UTF-8 only, so this cannot fail; it is still an error, not a panic.
    String::from_utf8(bytes).map_err(<serde_json::Error as serde::ser::Error>::custom)
}

/// One decision (event) as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct DecisionRow {
    /// The event id.
    pub event_id: String,
    /// The pseudonymous user.
    pub user: String,
    /// The pseudonym of the API key that ranked it: only that key may send its feedback (empty
    /// for events stored before keys were recorded, which any key may answer).
    pub owner: String,
    /// When it was decided, milliseconds since the Unix epoch.
    pub created_ms: i64,
    /// The context, the decision and the feedback received so far.
    pub interaction: Interaction,
    /// Whether the reward window has closed.
    pub resolved: bool,
    /// The reward: set when the window closes, or earlier by a numeric reward the shop sent
    /// (`POST /v1/reward`), which the close then keeps.
    pub reward: Option<f64>,
    /// Whether the slate was shown: false for a rank with deferred activation until the shop
    /// activates the event. An event never activated is closed without touching the user's
    /// state and is left out of the exported log.
    pub active: bool,
    /// The rank answer as sent, kept only for an event id the client chose, so that a retried
    /// rank gets the same answer; `None` when read back (see [`Store::replay`]).
    pub answer: Option<String>,
}

/// What a retried rank needs of a stored decision: whose it is and the answer it got.
#[derive(Debug, Clone, PartialEq)]
pub struct Replay {
    /// The pseudonymous user.
    pub user: String,
    /// The pseudonym of the API key that ranked it.
    pub owner: String,
    /// The answer as sent, when the event id was the client's.
    pub answer: Option<String>,
}

/// The kind of a feedback event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FeedbackKind {
    /// A click.
    Click,
    /// A purchase (with revenue).
    Purchase,
    /// A numeric reward for the whole event (stored at position 0, its value as revenue).
    Reward,
}

impl FeedbackKind {
    /// The stored name.
    pub fn name(self) -> &'static str {
        match self {
            FeedbackKind::Click => "click",
            FeedbackKind::Purchase => "purchase",
            FeedbackKind::Reward => "reward",
        }
    }
}

/// One feedback event as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct FeedbackRow {
    /// The event it answers.
    pub event_id: String,
    /// The pseudonymous user of the event.
    pub user: String,
    /// The slate position (0-based).
    pub position: u32,
    /// Click or purchase.
    pub kind: FeedbackKind,
    /// Revenue of a purchase (0 for a click).
    pub revenue: f64,
    /// When it arrived, milliseconds since the Unix epoch.
    pub received_ms: i64,
}

/// Row counts, for health checks and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Counts {
    /// Decisions stored.
    pub decisions: u64,
    /// Feedback rows stored.
    pub feedback: u64,
    /// Users with a stored state.
    pub users: u64,
    /// Items changed over the API (under any catalog).
    pub items: u64,
}

/// What a checkpoint of the log did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LogCheckpoint {
    /// Whether the whole log reached the database file and the log was emptied.
    pub complete: bool,
    /// Frames in the log when the checkpoint ran.
    pub frames: u64,
    /// Frames of them copied into the database file.
    pub copied: u64,
}

/// Where decisions, feedback and user states are kept.
pub trait Store: Send {
    /// Starts a transaction; a shared store also takes the lock that serialises the write
    /// groups of every server on the database, held until the commit or rollback.
    fn begin(&mut self) -> Result<(), StoreError>;
    /// Commits it durably.
    fn commit(&mut self) -> Result<(), StoreError>;
    /// Abandons it.
    fn rollback(&mut self) -> Result<(), StoreError>;
    /// Stores a new decision.
    fn insert_decision(&mut self, row: &DecisionRow) -> Result<(), StoreError>;
    /// Who a decision belongs to and its stored answer, by event id: what a retried rank with
    /// the same client event id is checked against and answered with.
    fn replay(&mut self, event_id: &str) -> Result<Option<Replay>, StoreError>;
    /// A decision by event id.
    fn decision(&mut self, event_id: &str) -> Result<Option<DecisionRow>, StoreError>;
    /// Rewrites a decision's interaction, resolution and reward.
    fn update_decision(&mut self, row: &DecisionRow) -> Result<(), StoreError>;
    /// Stores a feedback row; `false` when the same (event, position, kind) is already there.
    fn insert_feedback(&mut self, row: &FeedbackRow) -> Result<bool, StoreError>;
    /// Up to `limit` unresolved decisions created before `created_before_ms`, oldest first.
    fn unresolved_before(
        &mut self,
        created_before_ms: i64,
        limit: usize,
    ) -> Result<Vec<DecisionRow>, StoreError>;
    /// A user's stored state: its version and, unless the version is `known`, the state (JSON);
    /// `None` when no state is stored. The writer reads states here rather than from its
    /// memory when the store is [`Store::shared`], since another server may have changed them;
    /// `known` spares sending and parsing a state the writer already holds. A store without
    /// versions answers version 0 and always sends the state.
    fn user(&mut self, user: &str, known: i64)
    -> Result<Option<(i64, Option<String>)>, StoreError>;
    /// This store as the SQLite one, for what only SQLite has (its background checkpointer).
    fn as_sqlite(&mut self) -> Option<&mut SqliteStore> {
        None
    }
    /// Whether other server processes write the same database (so user states in one server's
    /// memory may be stale, and the writer must read them from the store inside its
    /// transaction). False for a store only this process writes.
    fn shared(&self) -> bool {
        false
    }
    /// Stores a user's state (JSON); returns its new version (0 for a store without versions).
    fn put_user(&mut self, user: &str, state: &str, updated_ms: i64) -> Result<i64, StoreError>;
    /// Every stored user state.
    fn users(&mut self) -> Result<Vec<(String, String)>, StoreError>;
    /// Deletes a user's state, decisions and feedback; returns the decisions deleted.
    fn forget(&mut self, user: &str) -> Result<u64, StoreError>;
    /// Stores an item changed over the API (JSON) for the catalog with fingerprint `catalog`:
    /// a new key is appended after every item stored before it, an existing one keeps its
    /// place, so [`Store::items`] gives items in the order they were first added.
    fn put_item(
        &mut self,
        catalog: &str,
        key: &str,
        record: &str,
        updated_ms: i64,
    ) -> Result<(), StoreError>;
    /// Every item changed over the API for the catalog with fingerprint `catalog`, as (key,
    /// JSON), in the order they were first stored.
    fn items(&mut self, catalog: &str) -> Result<Vec<(String, String)>, StoreError>;
    /// Calls `f` with every interaction that was shown (active), oldest decision first;
    /// returns how many.
    fn for_each_interaction(
        &mut self,
        f: &mut dyn FnMut(Interaction) -> Result<(), StoreError>,
    ) -> Result<u64, StoreError>;
    /// Row counts.
    fn counts(&mut self) -> Result<Counts, StoreError>;
    /// Bytes written to the write-ahead log since it last started from its beginning, as of the
    /// last commit (0 for a store without one).
    fn log_bytes(&self) -> u64;
    /// Bytes of the write-ahead log file on disk (0 for a store without one).
    fn log_file_bytes(&self) -> u64;
    /// Bytes of the database file (0 where that means nothing).
    fn data_bytes(&self) -> u64;
    /// Copies the whole log into the database file and empties it; called outside any
    /// transaction. A checkpoint that could not finish (another connection held the log) says
    /// so in [`LogCheckpoint::complete`]; nothing is lost either way.
    fn truncate_log(&mut self) -> Result<LogCheckpoint, StoreError>;
    /// Copies the whole log into the database file so that the next commit writes the log from
    /// its beginning again, keeping the file; called outside any transaction. As for
    /// [`Store::truncate_log`], an incomplete checkpoint loses nothing.
    fn restart_log(&mut self) -> Result<LogCheckpoint, StoreError>;
    /// Unresolved decisions created before `created_before_ms` (events past their window).
    fn unresolved_count(&mut self, created_before_ms: i64) -> Result<u64, StoreError>;
}

#[cfg(test)]
mod tests {
    use super::*;
    use metarec_core::{
        Context, Decision, Feedback, ItemId, PastEvent, SessionState, Slate, UserKey,
    };

    /// An interaction with every context field set and the 100 history events a server keeps.
    fn full() -> Interaction {
        let context = Context {
            user: UserKey::from("u-7"),
            timestamp_ms: Some(1_700_000_000_123),
            features: vec![0.5, -1.25],
            tokens: vec!["country=France".into(), "device=phone".into()],
            session: SessionState {
                session: 3,
                step: 11,
                history: (0..100)
                    .map(|k| PastEvent {
                        item: ItemId(k * 37 % 500),
                        click: k % 4 == 0,
                        purchase: k % 12 == 0,
                    })
                    .collect(),
                visit_events: Some(15),
            },
            candidates: (0..100).map(ItemId).collect(),
        };
        let decision = Decision {
            event_id: "e-1".into(),
            slate: Slate::new(vec![ItemId(4), ItemId(9), ItemId(2)]).unwrap(),
            propensities: vec![0.5, 0.25, 0.125],
            slate_propensity: None,
            positions: None,
            policy_id: "adjusted".into(),
            model_version: "v1".into(),
        };
        let mut feedback = Feedback::none(3);
        feedback.clicks[1] = true;
        Interaction::new(context, decision, feedback).unwrap()
    }

    #[test]
    fn a_stored_interaction_packs_its_history_and_reads_back_whole() {
        let interaction = full();
        let stored = interaction_json(&interaction).unwrap();
        let plain = serde_json::to_string(&interaction).unwrap();
        // The same JSON but for the history: one integer per event.
        // (event 0: item 0 clicked and bought, 4 x 0 + 2 + 1; event 1: item 37, 4 x 37.)
        assert!(stored.contains(r#""history":[3,148,296,"#), "{stored}");
        assert!(!stored.contains(r#""click""#), "{stored}");
        let back: Interaction = serde_json::from_str(&stored).unwrap();
        assert_eq!(back, interaction);
        // A row written before the history was packed still reads.
        let old: Interaction = serde_json::from_str(&plain).unwrap();
        assert_eq!(old, interaction);
        // The row is less than half its former size.
        assert!(
            stored.len() * 2 < plain.len(),
            "{} against {} bytes",
            stored.len(),
            plain.len()
        );
        // An empty history and context are left out, as `Context` leaves them out.
        let mut bare = interaction.clone();
        bare.context = Context::for_user(UserKey::from("u"));
        let stored = interaction_json(&bare).unwrap();
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&stored).unwrap()["context"],
            serde_json::to_value(&bare.context).unwrap()
        );
    }
}
