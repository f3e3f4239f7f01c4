//! The shared store: a PostgreSQL database that any number of server replicas use at once.
//!
//! Why tokio-postgres: it is the maintained PostgreSQL driver that the rest of the ecosystem
//! builds on (the blocking `postgres` crate and the deadpool and bb8 pools wrap it), it speaks
//! the protocol with prepared statements and pipelining, and it brings nothing the server does
//! not need: no query macros, no compile-time database, no second runtime (sqlx needs both to
//! be useful). The writer thread is synchronous, as the [`Store`] trait is, so
//! [`PostgresStore`] drives its connection on a private current-thread runtime, as the blocking
//! `postgres` crate does; the rank path, which is async, reads user states through
//! [`UserReader`] on the server's own runtime.
//!
//! Durability: every session sets `synchronous_commit = on`, so a commit returns only once
//! PostgreSQL has flushed it to its write-ahead log (and to synchronous standbys where the
//! database has them): an acknowledged decision or feedback survives a crash of the server, of
//! the database process and of its machine.
//!
//! Replicas: [`Store::begin`] takes a transaction-level advisory lock ([`WRITER_LOCK`]) that
//! serialises the write groups of every server on the database. A group therefore reads each
//! user's state and each decision as the last committed group left them, whichever replica
//! committed it, and two replicas can never both fold the same expired event into a state or
//! lose one of two concurrent updates of one user. One lock rather than a lock per user keeps
//! the replicas free of deadlocks by construction (a group touches many users, in the order its
//! requests arrived); what it costs is that only one replica writes at a time, each in groups
//! of up to 512 requests, while the ranking itself (the CPU) runs on every replica at once.
//!
//! Migrations: `metarec_schema` records the versions applied; [`PostgresStore::connect`]
//! applies the missing ones in order, each in its own transaction, under a session-level
//! advisory lock so that replicas starting together migrate once, and refuses a database
//! whose schema is newer than this server's.

use super::{Counts, DecisionRow, FeedbackRow, LogCheckpoint, Replay, Store};
use crate::error::StoreError;
use metarec_core::Interaction;
use std::sync::Arc;
use tokio_postgres::{Client, NoTls, Row, Statement};

/// The advisory lock every write group holds until its commit (the bytes of "metarec" and a
/// 1): the one place where replicas take turns.
pub const WRITER_LOCK: i64 = 0x6d65_7472_6563_0001;

/// The advisory lock held while the schema is migrated, so that replicas starting at the same
/// time apply each migration once.
const MIGRATION_LOCK: i64 = 0x6d65_7472_6563_0002;

/// The migrations, in order; entry `k` brings the schema from version `k` to `k + 1`. Never
/// edit one that has shipped: add the next.
const MIGRATIONS: &[&str] = &[
    "
CREATE TABLE decisions (
    seq BIGSERIAL PRIMARY KEY,
    event_id TEXT NOT NULL UNIQUE,
    user_id TEXT NOT NULL,
    owner TEXT NOT NULL DEFAULT '',
    created_ms BIGINT NOT NULL,
    resolved BOOLEAN NOT NULL DEFAULT FALSE,
    reward DOUBLE PRECISION,
    interaction TEXT NOT NULL
);
CREATE INDEX decisions_user ON decisions (user_id);
CREATE INDEX decisions_open ON decisions (created_ms) WHERE NOT resolved;
CREATE TABLE feedback (
    event_id TEXT NOT NULL,
    position INTEGER NOT NULL,
    kind TEXT NOT NULL,
    user_id TEXT NOT NULL,
    revenue DOUBLE PRECISION NOT NULL,
    received_ms BIGINT NOT NULL,
    PRIMARY KEY (event_id, position, kind)
);
CREATE INDEX feedback_user ON feedback (user_id);
CREATE SEQUENCE user_versions;
CREATE TABLE users (
    user_id TEXT PRIMARY KEY,
    state TEXT NOT NULL,
    updated_ms BIGINT NOT NULL,
    version BIGINT NOT NULL
);
CREATE TABLE items (
    seq BIGSERIAL PRIMARY KEY,
    catalog TEXT NOT NULL,
    key TEXT NOT NULL,
    record TEXT NOT NULL,
    updated_ms BIGINT NOT NULL,
    UNIQUE (catalog, key)
);
",
    "
ALTER TABLE decisions ADD COLUMN active BOOLEAN NOT NULL DEFAULT TRUE;
ALTER TABLE decisions ADD COLUMN answer TEXT;
",
    // A forget deletes feedback through the user's decisions (as the SQLite store's
    // `FORGET_FEEDBACK` says why), so this index only cost a page write per click.
    "
DROP INDEX IF EXISTS feedback_user;
",
];

/// The schema version this code writes.
pub const PG_SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

const DECISION_COLUMNS: &str =
    "event_id, user_id, owner, created_ms, resolved, reward, interaction, active";

/// The user's state unless the caller already holds this version (`$2`): the state is the
/// largest column by far (a posterior is tens of kilobytes of JSON), so an unchanged one is
/// neither sent nor parsed again.
const USER_QUERY: &str = "SELECT version, CASE WHEN version = $2 THEN NULL ELSE state END
    FROM users WHERE user_id = $1";

fn pg(e: tokio_postgres::Error) -> StoreError {
    // The server's own message (with its SQLSTATE) says far more than the driver's summary.
    match e.as_db_error() {
        Some(db) => StoreError::new(format!(
            "PostgreSQL: {} ({})",
            db.message(),
            db.code().code()
        )),
        None => StoreError::new(format!("PostgreSQL: {e}")),
    }
}

/// A connection string checked and parsed, with the password kept out of every message.
#[derive(Clone)]
pub struct PgConfig {
    config: tokio_postgres::Config,
    shown: String,
}

impl std::fmt::Debug for PgConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.shown)
    }
}

impl std::fmt::Display for PgConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.shown)
    }
}

impl PgConfig {
    /// Parses a `postgres://user[:password]@host[:port]/database[?options]` URL (or a
    /// `key=value` connection string).
    pub fn parse(url: &str) -> Result<PgConfig, StoreError> {
        let mut config: tokio_postgres::Config = url.parse().map_err(|e| {
            StoreError::new(format!("the PostgreSQL connection string is invalid: {e}"))
        })?;
        if config.get_dbname().is_none() {
            return Err(StoreError::new(
                "the PostgreSQL connection string names no database (postgres://user@host:port/DATABASE)",
            ));
        }
        if config.get_application_name().is_none() {
            config.application_name("metarec");
        }
        let hosts: Vec<String> = config
            .get_hosts()
            .iter()
            .map(|h| match h {
                tokio_postgres::config::Host::Tcp(name) => name.clone(),
                #[cfg(unix)]
                tokio_postgres::config::Host::Unix(path) => path.display().to_string(),
            })
            .collect();
        let ports = config.get_ports();
        let shown = format!(
            "postgres://{}@{}{}/{}",
            config.get_user().unwrap_or(""),
            hosts.join(","),
            ports.first().map_or(String::new(), |p| format!(":{p}")),
            config.get_dbname().unwrap_or("")
        );
        Ok(PgConfig { config, shown })
    }

    async fn connect(&self) -> Result<Client, StoreError> {
        let (client, connection) =
            self.config.connect(NoTls).await.map_err(|e| {
                StoreError::new(format!("{}: cannot connect: {}", self.shown, pg(e).0))
            })?;
        // The connection's socket is driven by its own task; it ends when the client is
        // dropped or the server closes it, and the client then reports itself closed.
        tokio::spawn(async move {
            let _ = connection.await;
        });
        client
            .batch_execute("SET synchronous_commit = on")
            .await
            .map_err(pg)?;
        Ok(client)
    }
}

/// The statements the writer runs, prepared once per connection.
struct Prepared {
    insert_decision: Statement,
    replay: Statement,
    decision: Statement,
    update_decision: Statement,
    insert_feedback: Statement,
    unresolved: Statement,
    user: Statement,
    put_user: Statement,
}

struct Connected {
    client: Client,
    prepared: Prepared,
}

/// A parameter of a deferred statement, owned until the statement is sent.
type Param = Box<dyn tokio_postgres::types::ToSql + Sync + Send>;

/// A write whose answer the writer does not need before the commit: a prepared statement with
/// its parameters.
struct Deferred(Statement, Vec<Param>);

/// The shared store (see the module documentation).
///
/// Round trips: writes whose answer nothing waits for (new decisions, rewritten decisions) are
/// deferred and sent together, pipelined on the one connection, before the next read or with
/// the `COMMIT`. A group of ranks thus costs two round trips (the lock, then its inserts with
/// the `COMMIT`) and one flush of PostgreSQL's log, however many ranks it holds, instead of a
/// round trip per statement; a read still sees every write before it, since the deferred ones
/// go first.
pub struct PostgresStore {
    config: PgConfig,
    runtime: tokio::runtime::Runtime,
    /// `None` after the connection was lost; the next [`Store::begin`] reconnects.
    conn: Option<Connected>,
    /// Writes not sent yet, in order.
    deferred: Vec<Deferred>,
}

impl PostgresStore {
    /// Connects, applies the missing migrations and prepares the writer's statements.
    pub fn connect(config: &PgConfig) -> Result<PostgresStore, StoreError> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| StoreError::new(format!("cannot start the PostgreSQL runtime: {e}")))?;
        let mut store = PostgresStore {
            config: config.clone(),
            runtime,
            conn: None,
            deferred: Vec::new(),
        };
        store.reconnect()?;
        Ok(store)
    }

    /// Runs `f` on this store's runtime. The writer is a plain thread; calling this from inside
    /// an async task would block that task's executor, so it is refused rather than done.
    fn block<T>(
        &self,
        f: impl std::future::Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        if tokio::runtime::Handle::try_current().is_ok() {
            return Err(StoreError::new(
                "the PostgreSQL store is blocking and cannot be used inside an async task",
            ));
        }
        self.runtime.block_on(f)
    }

    fn reconnect(&mut self) -> Result<(), StoreError> {
        self.conn = None;
        self.deferred.clear();
        let config = self.config.clone();
        let connected = self.block(async move {
            let client = config.connect().await?;
            migrate(&client, &config).await?;
            let p = |sql: String| {
                let client = &client;
                async move { client.prepare(&sql).await.map_err(pg) }
            };
            let prepared = Prepared {
                insert_decision: p("INSERT INTO decisions (event_id, user_id, owner, created_ms, resolved, reward, interaction, active, answer)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)".into()).await?,
                replay: p("SELECT user_id, owner, answer FROM decisions WHERE event_id = $1".into()).await?,
                decision: p(format!("SELECT {DECISION_COLUMNS} FROM decisions WHERE event_id = $1")).await?,
                update_decision: p("UPDATE decisions SET interaction = $2, resolved = $3, reward = $4, active = $5 WHERE event_id = $1".into()).await?,
                insert_feedback: p("INSERT INTO feedback (event_id, position, kind, user_id, revenue, received_ms)
                     VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING".into()).await?,
                unresolved: p(format!("SELECT {DECISION_COLUMNS} FROM decisions
                     WHERE NOT resolved AND created_ms < $1 ORDER BY created_ms LIMIT $2")).await?,
                user: p(USER_QUERY.into()).await?,
                // Versions come from one sequence, so a state written after a forget never takes
                // a version that a server may still hold for the forgotten one.
                put_user: p("INSERT INTO users (user_id, state, updated_ms, version)
                     VALUES ($1, $2, $3, nextval('user_versions'))
                     ON CONFLICT (user_id) DO UPDATE SET state = EXCLUDED.state,
                         updated_ms = EXCLUDED.updated_ms, version = EXCLUDED.version
                     RETURNING version".into()).await?,
            };
            Ok(Connected { client, prepared })
        })?;
        self.conn = Some(connected);
        Ok(())
    }

    fn conn(&self) -> Result<&Connected, StoreError> {
        match &self.conn {
            Some(c) if !c.client.is_closed() => Ok(c),
            _ => Err(StoreError::new(format!(
                "{}: the connection to PostgreSQL was lost",
                self.config
            ))),
        }
    }

    /// Sends every deferred write, pipelined, followed by `then` when given (the `COMMIT`);
    /// the first error of any of them is the result.
    fn flush(&mut self, then: Option<&str>) -> Result<(), StoreError> {
        if self.deferred.is_empty() && then.is_none() {
            return Ok(());
        }
        let deferred = std::mem::take(&mut self.deferred);
        let c = self.conn()?;
        self.block(async {
            let writes = send_deferred(&c.client, &deferred);
            match then {
                Some(sql) => {
                    let (w, t) =
                        futures_util::future::join(writes, c.client.batch_execute(sql)).await;
                    w?;
                    t.map_err(pg)
                }
                None => writes.await,
            }
        })
    }

    fn defer(
        &mut self,
        statement: impl Fn(&Prepared) -> &Statement,
        params: Vec<Param>,
    ) -> Result<(), StoreError> {
        let statement = statement(&self.conn()?.prepared).clone();
        self.deferred.push(Deferred(statement, params));
        Ok(())
    }

    /// Runs a statement that returns a count, after the deferred writes (pipelined with them,
    /// so that it sees them).
    fn execute(
        &mut self,
        statement: impl Fn(&Prepared) -> &Statement,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<u64, StoreError> {
        let deferred = std::mem::take(&mut self.deferred);
        let c = self.conn()?;
        self.block(async {
            let (w, n) = futures_util::future::join(
                send_deferred(&c.client, &deferred),
                c.client.execute(statement(&c.prepared), params),
            )
            .await;
            w?;
            n.map_err(pg)
        })
    }

    /// Runs a statement that returns rows, after the deferred writes (pipelined with them, so
    /// that a read in a group sees what the group wrote before it: two feedbacks on one event
    /// in one group, or two ranks with one client event id).
    fn query(
        &mut self,
        statement: impl Fn(&Prepared) -> &Statement,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<Vec<Row>, StoreError> {
        let deferred = std::mem::take(&mut self.deferred);
        let c = self.conn()?;
        self.block(async {
            let (w, rows) = futures_util::future::join(
                send_deferred(&c.client, &deferred),
                c.client.query(statement(&c.prepared), params),
            )
            .await;
            w?;
            rows.map_err(pg)
        })
    }

    fn batch(&self, sql: &str) -> Result<(), StoreError> {
        let c = self.conn()?;
        self.block(async { c.client.batch_execute(sql).await.map_err(pg) })
    }

    fn query_sql(
        &mut self,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<Vec<Row>, StoreError> {
        self.flush(None)?;
        let c = self.conn()?;
        self.block(async { c.client.query(sql, params).await.map_err(pg) })
    }

    /// The schema version of the connected database (for tests and health checks).
    pub fn schema_version(&mut self) -> Result<i64, StoreError> {
        let rows = self.query_sql("SELECT COALESCE(MAX(version), 0) FROM metarec_schema", &[])?;
        Ok(rows[0].get(0))
    }
}

/// Applies the missing migrations (see the module documentation).
async fn migrate(client: &Client, config: &PgConfig) -> Result<(), StoreError> {
    client
        .batch_execute(&format!("SELECT pg_advisory_lock({MIGRATION_LOCK})"))
        .await
        .map_err(pg)?;
    let outcome = async {
        client
            .batch_execute(
                "CREATE TABLE IF NOT EXISTS metarec_schema (
                     version BIGINT PRIMARY KEY,
                     applied_ms BIGINT NOT NULL
                 )",
            )
            .await
            .map_err(pg)?;
        let row = client
            .query_one("SELECT COALESCE(MAX(version), 0) FROM metarec_schema", &[])
            .await
            .map_err(pg)?;
        let version: i64 = row.get(0);
        if version > PG_SCHEMA_VERSION {
            return Err(StoreError::new(format!(
                "{config}: schema version {version} is newer than this server's {PG_SCHEMA_VERSION}; use a newer metarec"
            )));
        }
        for (k, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
            let next = k as i64 + 1;
            let script = format!(
                "BEGIN; {sql}; INSERT INTO metarec_schema (version, applied_ms) VALUES ({next}, {}); COMMIT;",
                crate::engine::now_ms()
            );
            if let Err(e) = client.batch_execute(&script).await {
                let _ = client.batch_execute("ROLLBACK").await;
                return Err(StoreError::new(format!(
                    "{config}: migration to schema version {next} failed: {}",
                    pg(e).0
                )));
            }
        }
        Ok(())
    }
    .await;
    let unlocked = client
        .batch_execute(&format!("SELECT pg_advisory_unlock({MIGRATION_LOCK})"))
        .await
        .map_err(pg);
    outcome.and(unlocked)
}

/// Sends the deferred writes in order and waits for them all; the first error is the result.
/// Joined rather than awaited in turn: the client writes each request as its future is first
/// polled, in this order (and a future joined after this one is polled after it), so they
/// travel together and PostgreSQL answers them in order.
async fn send_deferred(client: &Client, deferred: &[Deferred]) -> Result<(), StoreError> {
    if deferred.is_empty() {
        return Ok(());
    }
    let sends = deferred
        .iter()
        .map(|Deferred(statement, params)| async move {
            let refs: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = params
                .iter()
                .map(|p| p.as_ref() as &(dyn tokio_postgres::types::ToSql + Sync))
                .collect();
            client.execute(statement, &refs).await.map(|_| ())
        });
    for result in futures_util::future::join_all(sends).await {
        result.map_err(pg)?;
    }
    Ok(())
}

fn decision_from_row(row: &Row) -> Result<DecisionRow, StoreError> {
    let event_id: String = row.get(0);
    let text: String = row.get(6);
    let interaction = serde_json::from_str(&text).map_err(|e| {
        StoreError::new(format!(
            "decision {event_id}: stored interaction is invalid: {e}"
        ))
    })?;
    Ok(DecisionRow {
        user: row.get(1),
        owner: row.get(2),
        created_ms: row.get(3),
        resolved: row.get(4),
        reward: row.get(5),
        active: row.get(7),
        answer: None,
        interaction,
        event_id,
    })
}

fn count(rows: Vec<Row>) -> u64 {
    rows.first().map_or(0, |r| r.get::<_, i64>(0).max(0) as u64)
}

impl Store for PostgresStore {
    fn begin(&mut self) -> Result<(), StoreError> {
        if self.conn().is_err() {
            self.reconnect()?;
        }
        // Sent alone and awaited, not deferred like the writes: pipelined with the group's
        // first statement, the two-replica concurrency test lost clicks (not explained yet), so
        // nothing else is sent before this group holds the lock.
        self.batch(&format!(
            "BEGIN; SELECT pg_advisory_xact_lock({WRITER_LOCK})"
        ))
    }

    fn commit(&mut self) -> Result<(), StoreError> {
        self.flush(Some("COMMIT"))
    }

    fn rollback(&mut self) -> Result<(), StoreError> {
        // What was never sent needs no undoing; the rest is rolled back (a `ROLLBACK` outside
        // a transaction, after a failed flush, is only a warning).
        self.deferred.clear();
        self.batch("ROLLBACK")
    }

    fn insert_decision(&mut self, row: &DecisionRow) -> Result<(), StoreError> {
        let text = super::interaction_json(&row.interaction)?;
        self.defer(
            |p| &p.insert_decision,
            vec![
                Box::new(row.event_id.clone()),
                Box::new(row.user.clone()),
                Box::new(row.owner.clone()),
                Box::new(row.created_ms),
                Box::new(row.resolved),
                Box::new(row.reward),
                Box::new(text),
                Box::new(row.active),
                Box::new(row.answer.clone()),
            ],
        )
    }

    fn replay(&mut self, event_id: &str) -> Result<Option<Replay>, StoreError> {
        Ok(self
            .query(|p| &p.replay, &[&event_id])?
            .first()
            .map(|r| Replay {
                user: r.get(0),
                owner: r.get(1),
                answer: r.get(2),
            }))
    }

    fn decision(&mut self, event_id: &str) -> Result<Option<DecisionRow>, StoreError> {
        self.query(|p| &p.decision, &[&event_id])?
            .first()
            .map(decision_from_row)
            .transpose()
    }

    fn update_decision(&mut self, row: &DecisionRow) -> Result<(), StoreError> {
        let text = super::interaction_json(&row.interaction)?;
        self.defer(
            |p| &p.update_decision,
            vec![
                Box::new(row.event_id.clone()),
                Box::new(text),
                Box::new(row.resolved),
                Box::new(row.reward),
                Box::new(row.active),
            ],
        )
    }

    fn insert_feedback(&mut self, row: &FeedbackRow) -> Result<bool, StoreError> {
        let position = row.position as i32;
        let n = self.execute(
            |p| &p.insert_feedback,
            &[
                &row.event_id,
                &position,
                &row.kind.name(),
                &row.user,
                &row.revenue,
                &row.received_ms,
            ],
        )?;
        Ok(n == 1)
    }

    fn unresolved_before(
        &mut self,
        created_before_ms: i64,
        limit: usize,
    ) -> Result<Vec<DecisionRow>, StoreError> {
        let limit = limit as i64;
        self.query(|p| &p.unresolved, &[&created_before_ms, &limit])?
            .iter()
            .map(decision_from_row)
            .collect()
    }

    fn user(
        &mut self,
        user: &str,
        known: i64,
    ) -> Result<Option<(i64, Option<String>)>, StoreError> {
        Ok(self
            .query(|p| &p.user, &[&user, &known])?
            .first()
            .map(|r| (r.get(0), r.get(1))))
    }

    fn shared(&self) -> bool {
        true
    }

    fn put_user(&mut self, user: &str, state: &str, updated_ms: i64) -> Result<i64, StoreError> {
        let rows = self.query(|p| &p.put_user, &[&user, &state, &updated_ms])?;
        Ok(rows.first().map_or(0, |r| r.get(0)))
    }

    fn users(&mut self) -> Result<Vec<(String, String)>, StoreError> {
        Ok(self
            .query_sql("SELECT user_id, state FROM users", &[])?
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect())
    }

    fn forget(&mut self, user: &str) -> Result<u64, StoreError> {
        self.query_sql(
            "DELETE FROM feedback WHERE event_id IN (SELECT event_id FROM decisions WHERE user_id = $1)",
            &[&user],
        )?;
        self.query_sql("DELETE FROM users WHERE user_id = $1", &[&user])?;
        self.flush(None)?;
        let c = self.conn()?;
        self.block(async {
            c.client
                .execute("DELETE FROM decisions WHERE user_id = $1", &[&user])
                .await
                .map_err(pg)
        })
    }

    fn put_item(
        &mut self,
        catalog: &str,
        key: &str,
        record: &str,
        updated_ms: i64,
    ) -> Result<(), StoreError> {
        self.query_sql(
            "INSERT INTO items (catalog, key, record, updated_ms) VALUES ($1, $2, $3, $4)
             ON CONFLICT (catalog, key) DO UPDATE SET record = EXCLUDED.record, updated_ms = EXCLUDED.updated_ms",
            &[&catalog, &key, &record, &updated_ms],
        )?;
        Ok(())
    }

    fn items(&mut self, catalog: &str) -> Result<Vec<(String, String)>, StoreError> {
        Ok(self
            .query_sql(
                "SELECT key, record FROM items WHERE catalog = $1 ORDER BY seq",
                &[&catalog],
            )?
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect())
    }

    fn for_each_interaction(
        &mut self,
        f: &mut dyn FnMut(Interaction) -> Result<(), StoreError>,
    ) -> Result<u64, StoreError> {
        // In pages by `seq`, so that a large log is never held in memory whole.
        let mut after = 0i64;
        let mut n = 0u64;
        loop {
            let rows = self.query_sql(
                "SELECT seq, event_id, interaction FROM decisions WHERE seq > $1 AND active ORDER BY seq LIMIT 1000",
                &[&after],
            )?;
            if rows.is_empty() {
                return Ok(n);
            }
            for row in &rows {
                after = row.get(0);
                let event: String = row.get(1);
                let text: String = row.get(2);
                let interaction: Interaction = serde_json::from_str(&text).map_err(|e| {
                    StoreError::new(format!(
                        "decision {event}: stored interaction is invalid: {e}"
                    ))
                })?;
                f(interaction)?;
                n += 1;
            }
        }
    }

    fn counts(&mut self) -> Result<Counts, StoreError> {
        let mut n = |table: &str| -> Result<u64, StoreError> {
            Ok(count(self.query_sql(
                &format!("SELECT COUNT(*) FROM {table}"),
                &[],
            )?))
        };
        Ok(Counts {
            decisions: n("decisions")?,
            feedback: n("feedback")?,
            users: n("users")?,
            items: n("items")?,
        })
    }

    fn log_bytes(&self) -> u64 {
        0
    }

    fn log_file_bytes(&self) -> u64 {
        0
    }

    fn data_bytes(&self) -> u64 {
        0
    }

    fn truncate_log(&mut self) -> Result<LogCheckpoint, StoreError> {
        // After a forget: VACUUM makes the deleted rows' space reusable at once, rather than
        // whenever autovacuum comes by. PostgreSQL's own write-ahead log and backups are the
        // database operator's to retain or purge (docs/serving.md says so).
        self.batch("VACUUM decisions, feedback, users")?;
        Ok(LogCheckpoint {
            complete: true,
            frames: 0,
            copied: 0,
        })
    }

    fn restart_log(&mut self) -> Result<LogCheckpoint, StoreError> {
        Ok(LogCheckpoint {
            complete: true,
            frames: 0,
            copied: 0,
        })
    }

    fn unresolved_count(&mut self, created_before_ms: i64) -> Result<u64, StoreError> {
        Ok(count(self.query_sql(
            "SELECT COUNT(*) FROM decisions WHERE NOT resolved AND created_ms < $1",
            &[&created_before_ms],
        )?))
    }
}

/// Reads user states for the rank path, on the server's runtime, through one pipelined
/// connection (reconnected after a loss), so that a rank on this replica sees what any
/// replica's feedback made of the user.
pub struct UserReader {
    config: PgConfig,
    conn: tokio::sync::Mutex<Option<Arc<(Client, Statement)>>>,
}

impl UserReader {
    /// A reader that connects on first use.
    pub fn new(config: &PgConfig) -> UserReader {
        UserReader {
            config: config.clone(),
            conn: tokio::sync::Mutex::new(None),
        }
    }

    async fn connection(&self) -> Result<Arc<(Client, Statement)>, StoreError> {
        let mut guard = self.conn.lock().await;
        if let Some(c) = guard.as_ref().filter(|c| !c.0.is_closed()) {
            return Ok(c.clone());
        }
        let client = self.config.connect().await?;
        let statement = client.prepare(USER_QUERY).await.map_err(pg)?;
        let c = Arc::new((client, statement));
        *guard = Some(c.clone());
        Ok(c)
    }

    /// The user's state version and, unless it is `known`, the state itself; `None` when the
    /// database holds no state for the user.
    pub async fn user(
        &self,
        user: &str,
        known: i64,
    ) -> Result<Option<(i64, Option<String>)>, StoreError> {
        let c = self.connection().await?;
        let rows = c.0.query(&c.1, &[&user, &known]).await.map_err(pg)?;
        Ok(rows.first().map(|r| (r.get(0), r.get(1))))
    }
}
