//! The embedded store: SQLite in WAL mode with `synchronous = FULL`, so a committed decision or
//! feedback survives a crash of the process or the machine. [`Durability::Process`]
//! (`synchronous = NORMAL`) drops the `fsync` from each commit: a committed event then survives
//! the process being killed (the WAL is in the operating system's cache) but not a power cut
//! before the next checkpoint. The schema's version is SQLite's `user_version`;
//! [`SqliteStore::open`] migrates older files in place (every table is created if missing, so a
//! version-1 file gains `items`).
//!
//! The log is bounded: [`Store::log_bytes`] tells the writer how much the write-ahead log holds
//! since it last started from its beginning, [`Store::restart_log`] copies it into the database
//! file so that the next commit writes from the beginning again, and [`Store::truncate_log`] also
//! empties the file. Under a constant stream of writers a passive checkpoint never catches up
//! (new frames arrive while it copies), so only a checkpoint taken by the writer itself, between
//! two of its transactions, can reset the log. Restarting rather than truncating keeps the file's
//! blocks: the next commits overwrite them instead of allocating (and, on a file system that
//! discards freed blocks, discarding) tens of megabytes, which stalled the whole machine for
//! tens of milliseconds. Deleted rows are overwritten with zeros (`secure_delete`), so once the
//! log is truncated after a [`Store::forget`], neither file holds the forgotten rows.

use super::{Counts, DecisionRow, FeedbackRow, LogCheckpoint, Replay, Store};
use crate::error::StoreError;
use metarec_core::Interaction;
use rusqlite::{Connection, OptionalExtension, params};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{RecvTimeoutError, Sender};
use std::thread::JoinHandle;
use std::time::Duration;

/// What a commit survives: the trade between acknowledgement latency and durability.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// `synchronous = FULL`: every commit waits for an `fsync` of the WAL, so an acknowledged
    /// event survives a crash of the machine or a power cut.
    #[default]
    Machine,
    /// `synchronous = NORMAL`: commits reach the WAL without an `fsync` (it happens at
    /// checkpoints), so an acknowledged event survives the process being killed but may be lost
    /// with the machine's power.
    Process,
}

impl Durability {
    /// The SQLite `synchronous` level (`PRAGMA synchronous` reads it back as 2 or 1).
    pub fn synchronous(self) -> i64 {
        match self {
            Durability::Machine => 2,
            Durability::Process => 1,
        }
    }
}

/// The embedded store: one SQLite file in WAL mode, synchronous FULL (or NORMAL, see
/// [`Durability`]).
pub struct SqliteStore {
    conn: Connection,
    path: PathBuf,
    durability: Durability,
    /// Bytes of one log frame (a page and its 24-byte header).
    frame_bytes: u64,
    /// Whether this connection's commits report their log size (see [`WAL_PAGES`]).
    counted: bool,
    /// Held by the background checkpoint while it runs and by this connection's own
    /// checkpoints, so that a restart waits exactly as long as a passive checkpoint takes
    /// instead of sleeping through SQLite's busy handler (1, 2, 5, 10, ... ms at a time, which
    /// added up to tens of milliseconds under load).
    checkpoint_turn: Arc<std::sync::Mutex<()>>,
}

thread_local! {
    /// Pages in the write-ahead log after this thread's last commit on a connection whose WAL hook
    /// is [`count_wal_pages`]. A thread-local rather than a field because SQLite's hook is a plain
    /// function; the writer thread commits and reads it, so the value is always its own.
    static WAL_PAGES: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// SQLite's WAL hook: called after each commit with the pages the log holds.
fn count_wal_pages(_: &rusqlite::hooks::Wal, pages: std::ffi::c_int) -> rusqlite::Result<()> {
    WAL_PAGES.with(|p| p.set(pages.max(0) as u64));
    Ok(())
}

/// A thread that copies the WAL into the database file in the background (see
/// [`SqliteStore::checkpoint_in_background`]); it stops when dropped.
pub struct Checkpointer {
    stop: Option<Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        // Closing the channel wakes the thread, which then returns.
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS decisions (
    seq INTEGER PRIMARY KEY,
    event_id TEXT NOT NULL UNIQUE,
    user TEXT NOT NULL,
    owner TEXT NOT NULL DEFAULT '',
    created_ms INTEGER NOT NULL,
    resolved INTEGER NOT NULL DEFAULT 0,
    reward REAL,
    interaction TEXT NOT NULL,
    active INTEGER NOT NULL DEFAULT 1,
    answer TEXT
);
CREATE INDEX IF NOT EXISTS decisions_user ON decisions(user);
CREATE INDEX IF NOT EXISTS decisions_open ON decisions(resolved, created_ms);
CREATE TABLE IF NOT EXISTS feedback (
    event_id TEXT NOT NULL,
    position INTEGER NOT NULL,
    kind TEXT NOT NULL,
    user TEXT NOT NULL,
    revenue REAL NOT NULL,
    received_ms INTEGER NOT NULL,
    PRIMARY KEY (event_id, position, kind)
);
CREATE TABLE IF NOT EXISTS users (
    user TEXT PRIMARY KEY,
    state TEXT NOT NULL,
    updated_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS items (
    seq INTEGER PRIMARY KEY,
    catalog TEXT NOT NULL,
    key TEXT NOT NULL,
    record TEXT NOT NULL,
    updated_ms INTEGER NOT NULL,
    UNIQUE (catalog, key)
);
";

/// The schema version this code writes (SQLite's `user_version`): 1 added `decisions.owner`,
/// 2 the `items` table, 3 `decisions.active` (deferred activation) and `decisions.answer` (the
/// answer replayed to a retried rank with a client's event id), 4 dropped the index of
/// feedback by user (a forget deletes a user's feedback through their decisions' event ids).
pub const SCHEMA_VERSION: i64 = 4;

/// Forgetting a user deletes their feedback through their decisions' event ids, the feedback
/// table's key, rather than through an index of feedback by user: every feedback row belongs to
/// a decision of the same user (feedback is only taken for a stored decision, and a forget
/// deletes the feedback before the decisions), and that index was one more randomly placed page
/// written for every click, for the sake of a rare forget.
pub(crate) const FORGET_FEEDBACK: &str =
    "DELETE FROM feedback WHERE event_id IN (SELECT event_id FROM decisions WHERE user = ?1)";

/// A decision row as read, before its interaction JSON is parsed.
type RawDecision = (String, String, String, i64, i64, Option<f64>, String, i64);

fn row_to_decision(row: &rusqlite::Row<'_>) -> rusqlite::Result<RawDecision> {
    Ok((
        row.get(0)?,
        row.get(1)?,
        row.get(2)?,
        row.get(3)?,
        row.get(4)?,
        row.get(5)?,
        row.get(6)?,
        row.get(7)?,
    ))
}

fn parse(raw: RawDecision) -> Result<DecisionRow, StoreError> {
    let (event_id, user, owner, created_ms, resolved, reward, text, active) = raw;
    let interaction = serde_json::from_str(&text).map_err(|e| {
        StoreError::new(format!(
            "decision {event_id}: stored interaction is invalid: {e}"
        ))
    })?;
    Ok(DecisionRow {
        event_id,
        user,
        owner,
        created_ms,
        interaction,
        resolved: resolved != 0,
        reward,
        active: active != 0,
        answer: None,
    })
}

const DECISION_COLUMNS: &str =
    "event_id, user, owner, created_ms, resolved, reward, interaction, active";

/// Creates the database file readable and writable by its owner only (0600) when it does not
/// exist yet, and narrows an existing one to that: it holds pseudonymous histories. SQLite
/// gives the `-wal` and `-shm` files it creates the permissions of the database file.
fn create_private(path: &Path) -> Result<(), StoreError> {
    let io = |e: std::io::Error| StoreError::new(format!("{}: {e}", path.display()));
    let mut options = std::fs::OpenOptions::new();
    options.create(true).append(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        options.mode(0o600);
        options.open(path).map_err(io)?;
        for file in [
            path.to_owned(),
            sidecar(path, "-wal"),
            sidecar(path, "-shm"),
        ] {
            match std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(io(e)),
                _ => {}
            }
        }
    }
    #[cfg(not(unix))]
    options.open(path).map_err(io)?;
    Ok(())
}

/// The path of one of SQLite's files beside the database (`-wal`, `-shm`).
fn sidecar(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// Runs `PRAGMA wal_checkpoint(MODE)`: (whether it was blocked, frames in the log, frames
/// copied).
fn checkpoint(conn: &Connection, mode: &str) -> Result<(bool, u64, u64), StoreError> {
    let (busy, log, copied): (i64, i64, i64) =
        conn.query_row(&format!("PRAGMA wal_checkpoint({mode})"), [], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })?;
    Ok((busy != 0, log.max(0) as u64, copied.max(0) as u64))
}

/// Creates the tables of a new file or brings an older file's schema up to [`SCHEMA_VERSION`],
/// in one transaction; a file from a newer metarec is refused rather than misread.
fn migrate(conn: &Connection, path: &Path) -> Result<(), StoreError> {
    let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    if version > SCHEMA_VERSION {
        return Err(StoreError::new(format!(
            "{}: schema version {version} is newer than this server's {SCHEMA_VERSION}; use a newer metarec",
            path.display()
        )));
    }
    if version == SCHEMA_VERSION {
        return Ok(());
    }
    conn.execute_batch("BEGIN IMMEDIATE")?;
    let outcome = (|| -> Result<(), StoreError> {
        let existing: i64 = conn.query_row(
            "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'decisions'",
            [],
            |r| r.get(0),
        )?;
        if existing == 1 {
            let has_owner: i64 = conn.query_row(
                "SELECT COUNT(*) FROM pragma_table_info('decisions') WHERE name = 'owner'",
                [],
                |r| r.get(0),
            )?;
            if has_owner == 0 {
                conn.execute_batch(
                    "ALTER TABLE decisions ADD COLUMN owner TEXT NOT NULL DEFAULT ''",
                )?;
            }
            if version < 3 {
                conn.execute_batch(
                    "ALTER TABLE decisions ADD COLUMN active INTEGER NOT NULL DEFAULT 1;
                     ALTER TABLE decisions ADD COLUMN answer TEXT;",
                )?;
            }
            conn.execute_batch("DROP INDEX IF EXISTS feedback_user")?;
        }
        conn.execute_batch(SCHEMA)?;
        conn.pragma_update(None, "user_version", SCHEMA_VERSION)?;
        Ok(())
    })();
    match outcome {
        Ok(()) => {
            conn.execute_batch("COMMIT")?;
            Ok(())
        }
        Err(e) => {
            let _ = conn.execute_batch("ROLLBACK");
            Err(e)
        }
    }
}

impl SqliteStore {
    /// Opens (creating if needed) a database file in WAL mode with synchronous FULL.
    pub fn open(path: &Path) -> Result<SqliteStore, StoreError> {
        SqliteStore::open_with(path, Durability::Machine)
    }

    /// Opens (creating if needed) a database file in WAL mode with the given durability.
    pub fn open_with(path: &Path, durability: Durability) -> Result<SqliteStore, StoreError> {
        create_private(path)?;
        let conn = Connection::open(path)
            .map_err(|e| StoreError::new(format!("{}: {e}", path.display())))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", durability.synchronous())?;
        // Deleted rows are overwritten, not just unlinked, so that forgetting a user removes
        // their bytes from the file (together with the log truncation after a forget).
        conn.pragma_update(None, "secure_delete", "ON")?;
        conn.busy_timeout(Duration::from_secs(5))?;
        migrate(&conn, path)?;
        // A log left by a crash is folded in and emptied now, before it can grow further.
        checkpoint(&conn, "TRUNCATE")?;
        let page: i64 = conn.pragma_query_value(None, "page_size", |r| r.get(0))?;
        Ok(SqliteStore {
            conn,
            path: path.to_owned(),
            durability,
            frame_bytes: page.max(512) as u64 + 24,
            counted: false,
            checkpoint_turn: Arc::default(),
        })
    }

    /// Moves WAL checkpoints off this connection: SQLite's automatic checkpoint runs inside the
    /// commit that crosses 1,000 WAL pages, so under load one request in a few hundred waited
    /// milliseconds for it (the server's p99). A thread with its own connection now runs a
    /// passive checkpoint every `every`, which never blocks the writer; a checkpoint that
    /// cannot finish is simply retried at the next tick, and nothing is lost meanwhile, since
    /// committed data is already in the WAL. After each checkpoint `lag` holds the number of
    /// log frames it could not copy yet.
    pub fn checkpoint_in_background(
        &mut self,
        every: Duration,
        lag: Arc<AtomicU64>,
    ) -> Result<Checkpointer, StoreError> {
        let conn = Connection::open(&self.path)
            .map_err(|e| StoreError::new(format!("{}: {e}", self.path.display())))?;
        conn.pragma_update(None, "synchronous", self.durability.synchronous())?;
        conn.busy_timeout(Duration::from_secs(5))?;
        self.conn.pragma_update(None, "wal_autocheckpoint", 0)?;
        // Setting `wal_autocheckpoint` replaces the connection's WAL hook, so this comes after
        // it: from now on every commit of this connection reports the log's size.
        self.conn.wal_hook(Some(count_wal_pages));
        WAL_PAGES.with(|p| p.set(0));
        self.counted = true;
        let (stop, stopped) = std::sync::mpsc::channel::<()>();
        let seen = lag;
        let turn = self.checkpoint_turn.clone();
        let thread = std::thread::Builder::new()
            .name("metarec-checkpoint".into())
            .spawn(move || {
                while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(every) {
                    let _turn = turn.lock().unwrap_or_else(|e| e.into_inner());
                    if let Ok((_, log, copied)) = checkpoint(&conn, "PASSIVE") {
                        seen.store(log.saturating_sub(copied), Ordering::Relaxed);
                    }
                }
            })
            .map_err(|e| StoreError::new(format!("cannot start the checkpoint thread: {e}")))?;
        Ok(Checkpointer {
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// A checkpoint of the writer's own log in `mode` (RESTART or TRUNCATE).
    fn checkpoint_log(&mut self, mode: &str) -> Result<LogCheckpoint, StoreError> {
        let turn = self.checkpoint_turn.clone();
        let _turn = turn.lock().unwrap_or_else(|e| e.into_inner());
        let (busy, frames, copied) = checkpoint(&self.conn, mode)?;
        if !busy {
            // The next commit starts the log from its beginning.
            WAL_PAGES.with(|p| p.set(0));
        }
        Ok(LogCheckpoint {
            complete: !busy,
            frames,
            copied,
        })
    }

    /// The journal mode and synchronous level in force (for tests: `("wal", 2)`).
    pub fn durability(&self) -> Result<(String, i64), StoreError> {
        let mode: String = self
            .conn
            .pragma_query_value(None, "journal_mode", |r| r.get(0))?;
        let sync: i64 = self
            .conn
            .pragma_query_value(None, "synchronous", |r| r.get(0))?;
        Ok((mode, sync))
    }
}

impl Store for SqliteStore {
    fn as_sqlite(&mut self) -> Option<&mut SqliteStore> {
        Some(self)
    }

    fn begin(&mut self) -> Result<(), StoreError> {
        self.conn.execute_batch("BEGIN IMMEDIATE")?;
        Ok(())
    }

    fn commit(&mut self) -> Result<(), StoreError> {
        self.conn.execute_batch("COMMIT")?;
        Ok(())
    }

    fn rollback(&mut self) -> Result<(), StoreError> {
        self.conn.execute_batch("ROLLBACK")?;
        Ok(())
    }

    fn insert_decision(&mut self, row: &DecisionRow) -> Result<(), StoreError> {
        let text = super::interaction_json(&row.interaction)?;
        self.conn
            .prepare_cached(
                "INSERT INTO decisions (event_id, user, owner, created_ms, resolved, reward, interaction, active, answer)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            )?
            .execute(params![
                row.event_id,
                row.user,
                row.owner,
                row.created_ms,
                row.resolved as i64,
                row.reward,
                text,
                row.active as i64,
                row.answer,
            ])?;
        Ok(())
    }

    fn replay(&mut self, event_id: &str) -> Result<Option<Replay>, StoreError> {
        Ok(self
            .conn
            .prepare_cached("SELECT user, owner, answer FROM decisions WHERE event_id = ?1")?
            .query_row([event_id], |r| {
                Ok(Replay {
                    user: r.get(0)?,
                    owner: r.get(1)?,
                    answer: r.get(2)?,
                })
            })
            .optional()?)
    }

    fn decision(&mut self, event_id: &str) -> Result<Option<DecisionRow>, StoreError> {
        let pair = self
            .conn
            .prepare_cached(&format!(
                "SELECT {DECISION_COLUMNS} FROM decisions WHERE event_id = ?1"
            ))?
            .query_row([event_id], row_to_decision)
            .optional()?;
        pair.map(parse).transpose()
    }

    fn update_decision(&mut self, row: &DecisionRow) -> Result<(), StoreError> {
        let text = super::interaction_json(&row.interaction)?;
        self.conn
            .prepare_cached(
                "UPDATE decisions SET interaction = ?2, resolved = ?3, reward = ?4, active = ?5 WHERE event_id = ?1",
            )?
            .execute(params![
                row.event_id,
                text,
                row.resolved as i64,
                row.reward,
                row.active as i64
            ])?;
        Ok(())
    }

    fn insert_feedback(&mut self, row: &FeedbackRow) -> Result<bool, StoreError> {
        let n = self
            .conn
            .prepare_cached(
                "INSERT OR IGNORE INTO feedback (event_id, position, kind, user, revenue, received_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?
            .execute(params![
                row.event_id,
                row.position,
                row.kind.name(),
                row.user,
                row.revenue,
                row.received_ms
            ])?;
        Ok(n == 1)
    }

    fn unresolved_before(
        &mut self,
        created_before_ms: i64,
        limit: usize,
    ) -> Result<Vec<DecisionRow>, StoreError> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT {DECISION_COLUMNS} FROM decisions
             WHERE resolved = 0 AND created_ms < ?1 ORDER BY created_ms LIMIT ?2"
        ))?;
        let rows = stmt
            .query_map(params![created_before_ms, limit as i64], row_to_decision)?
            .collect::<Result<Vec<_>, _>>()?;
        rows.into_iter().map(parse).collect()
    }

    fn put_user(&mut self, user: &str, state: &str, updated_ms: i64) -> Result<i64, StoreError> {
        self.conn
            .prepare_cached(
                "INSERT INTO users (user, state, updated_ms) VALUES (?1, ?2, ?3)
                 ON CONFLICT(user) DO UPDATE SET state = excluded.state, updated_ms = excluded.updated_ms",
            )?
            .execute(params![user, state, updated_ms])?;
        Ok(0)
    }

    fn user(&mut self, user: &str, _: i64) -> Result<Option<(i64, Option<String>)>, StoreError> {
        let state: Option<String> = self
            .conn
            .prepare_cached("SELECT state FROM users WHERE user = ?1")?
            .query_row([user], |r| r.get(0))
            .optional()?;
        Ok(state.map(|s| (0, Some(s))))
    }

    fn users(&mut self) -> Result<Vec<(String, String)>, StoreError> {
        let mut stmt = self.conn.prepare_cached("SELECT user, state FROM users")?;
        let rows = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    fn forget(&mut self, user: &str) -> Result<u64, StoreError> {
        self.conn.prepare_cached(FORGET_FEEDBACK)?.execute([user])?;
        self.conn
            .prepare_cached("DELETE FROM users WHERE user = ?1")?
            .execute([user])?;
        let n = self
            .conn
            .prepare_cached("DELETE FROM decisions WHERE user = ?1")?
            .execute([user])?;
        Ok(n as u64)
    }

    fn put_item(
        &mut self,
        catalog: &str,
        key: &str,
        record: &str,
        updated_ms: i64,
    ) -> Result<(), StoreError> {
        // An update keeps the row, and with it the `seq` that orders items by first addition
        // (rows are never deleted, so `seq` never repeats either).
        self.conn
            .prepare_cached(
                "INSERT INTO items (catalog, key, record, updated_ms) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT(catalog, key) DO UPDATE SET record = excluded.record, updated_ms = excluded.updated_ms",
            )?
            .execute(params![catalog, key, record, updated_ms])?;
        Ok(())
    }

    fn items(&mut self, catalog: &str) -> Result<Vec<(String, String)>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT key, record FROM items WHERE catalog = ?1 ORDER BY seq")?;
        let rows = stmt
            .query_map([catalog], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    fn for_each_interaction(
        &mut self,
        f: &mut dyn FnMut(Interaction) -> Result<(), StoreError>,
    ) -> Result<u64, StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT event_id, interaction FROM decisions WHERE active ORDER BY seq")?;
        let mut rows = stmt.query([])?;
        let mut n = 0;
        while let Some(row) = rows.next()? {
            let event: String = row.get(0)?;
            let text: String = row.get(1)?;
            let interaction: Interaction = serde_json::from_str(&text).map_err(|e| {
                StoreError::new(format!(
                    "decision {event}: stored interaction is invalid: {e}"
                ))
            })?;
            f(interaction)?;
            n += 1;
        }
        Ok(n)
    }

    fn counts(&mut self) -> Result<Counts, StoreError> {
        let count = |conn: &Connection, table: &str| -> Result<u64, StoreError> {
            let n: i64 =
                conn.query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |r| r.get(0))?;
            Ok(n as u64)
        };
        Ok(Counts {
            decisions: count(&self.conn, "decisions")?,
            feedback: count(&self.conn, "feedback")?,
            users: count(&self.conn, "users")?,
            items: count(&self.conn, "items")?,
        })
    }

    fn log_bytes(&self) -> u64 {
        if self.counted {
            WAL_PAGES.with(|p| p.get()) * self.frame_bytes
        } else {
            self.log_file_bytes()
        }
    }

    fn log_file_bytes(&self) -> u64 {
        std::fs::metadata(sidecar(&self.path, "-wal")).map_or(0, |m| m.len())
    }

    fn data_bytes(&self) -> u64 {
        std::fs::metadata(&self.path).map_or(0, |m| m.len())
    }

    fn truncate_log(&mut self) -> Result<LogCheckpoint, StoreError> {
        self.checkpoint_log("TRUNCATE")
    }

    fn restart_log(&mut self) -> Result<LogCheckpoint, StoreError> {
        self.checkpoint_log("RESTART")
    }

    fn unresolved_count(&mut self, created_before_ms: i64) -> Result<u64, StoreError> {
        let n: i64 = self
            .conn
            .prepare_cached(
                "SELECT COUNT(*) FROM decisions WHERE resolved = 0 AND created_ms < ?1",
            )?
            .query_row([created_before_ms], |r| r.get(0))?;
        Ok(n as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_background_checkpointer_moves_the_wal_into_the_database_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.db");
        let mut store = SqliteStore::open(&path).unwrap();
        let checkpointer = store
            .checkpoint_in_background(Duration::from_millis(10), Default::default())
            .unwrap();
        let auto: i64 = store
            .conn
            .pragma_query_value(None, "wal_autocheckpoint", |r| r.get(0))
            .unwrap();
        assert_eq!(auto, 0, "the writer no longer checkpoints itself");
        let empty = std::fs::metadata(&path).unwrap().len();
        for i in 0..200 {
            store.begin().unwrap();
            store
                .put_user(&format!("u{i}"), &"x".repeat(2000), i)
                .unwrap();
            store.commit().unwrap();
        }
        // The rows reach the database file only through a checkpoint; the writer's own
        // automatic checkpoint is off, so the thread must have run.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while std::fs::metadata(&path).unwrap().len() < empty + 200 * 2000
            && std::time::Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(std::fs::metadata(&path).unwrap().len() >= empty + 200 * 2000);
        drop(checkpointer);
        assert_eq!(store.counts().unwrap().users, 200);
    }

    #[test]
    fn durability_sets_the_synchronous_level_and_keeps_wal() {
        let dir = tempfile::tempdir().unwrap();
        for (durability, level) in [(Durability::Machine, 2), (Durability::Process, 1)] {
            let path = dir.path().join(format!("{durability:?}.db"));
            let store = SqliteStore::open_with(&path, durability).unwrap();
            assert_eq!(store.durability().unwrap(), ("wal".to_owned(), level));
        }
    }
}
