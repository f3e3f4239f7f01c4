//! The writer: one thread owns the [`Store`] and every change of a user's adjuster state.
//!
//! Handlers send [`Job`]s (record a decision, apply a feedback, close expired reward windows,
//! forget a user, add, update or retire an item, swap in a reloaded model) and wait for the
//! answer. The thread takes every job waiting in the queue, runs
//! them in one transaction and commits once, so under load one `fsync` acknowledges a whole group
//! (group commit) while each request still gets its answer only after its rows are durable. The
//! new user states of a group are published to the shared map only after the commit, so a rank
//! never sees a state the database does not hold. Because this thread alone changes states, two
//! feedbacks of one user never race.
//!
//! Items: the writer alone changes the served catalog. A group applies its item changes to a
//! copy of the catalog and makes the next model snapshot (`ServedModel::with_items`) before it
//! commits, then publishes the snapshot after the commit, so every rank reads a catalog whose
//! items its network scores and whose changes are stored. A reload's swap goes through the same
//! path, so the reloaded model gets every item change, including one made while it loaded.
//!
//! Adaptation: a click (or purchase) folds that one shown item into the user's adjuster state (a
//! Bayesian posterior or a gradient-adapted correction, by the served adjuster's kind) as a
//! positive at once; when the event's reward window closes, the shown items that got no click are
//! folded in as negatives and the event's reward is fixed (the configured default when no
//! feedback came). Each shown item is thus observed exactly once, as in the batch update the
//! adjuster was meta-trained with.
//!
//! History and visits: the network reads a user's history as the simulator it was trained in
//! writes it, where every shown item is in the history, as passed over, from the next slate on,
//! and a click marks it. So a slate's items enter the history when it is shown (when the rank is
//! stored, or when a deferred rank is activated), and a click or purchase marks the item's entry.
//! Waiting for the reward window instead (as the server did before) hid a visit's passes from
//! every later slate of the visit: the demo's model, served, earned 4.1 over a simulated new
//! user's first 20 interactions where it earns 8.8 in the arena (`served:DIR`). A
//! new visit begins when a slate is shown more than the visit gap after the user's last one
//! ([`Visit`]); the context says which visit it is, its step within the visit and how many of
//! the history's events the visit showed, as the simulator's contexts do.
//!
//! The log: after each commit the writer looks at how much the store's write-ahead log holds
//! and, past half its limit, checkpoints it itself so that the next commit restarts it from its
//! beginning. This is the only place that can: a background checkpoint runs while this thread
//! keeps appending, so it never reaches the end of the log, and the log can only restart when a
//! checkpoint finished with no transaction in between. After a forget the log is truncated at
//! once, before the answer, so the forgotten rows leave the disk along with the database rows.

use crate::error::ApiError;
use crate::items::{ItemChange, ItemRecord, ServedCatalog};
use crate::metrics::Metrics;
use crate::model::ServedModel;
use crate::store::{DecisionRow, FeedbackKind, FeedbackRow, Store};
use metarec_core::{Decision, Feedback, Interaction, ItemId, PastEvent, Slate};
use metarec_neural::adjust::{GaussianPosterior, GradientState};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, Sender};
use std::sync::{Arc, RwLock};
use tokio::sync::oneshot;

/// A user's adjuster state, of the served adjuster's kind.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum UserState {
    /// The Bayesian adjuster's posterior over the correction of the user's head.
    Bayes(GaussianPosterior),
    /// The gradient-based adjuster's adapted correction of the user's head.
    Gradient(GradientState),
}

impl UserState {
    /// The kind's name, as the adjuster's kind is written: `bayes` or `gradient`.
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            UserState::Bayes(_) => "bayes",
            UserState::Gradient(_) => "gradient",
        }
    }

    /// The width of the correction the state is about.
    pub(crate) fn dim(&self) -> usize {
        match self {
            UserState::Bayes(p) => p.dim,
            UserState::Gradient(g) => g.delta.len(),
        }
    }
}

/// A user's current visit, as the server tells visits apart: a slate shown more than the visit
/// gap after the user's last one begins a new visit (the shop import's rule without a session
/// id), and so does a rank whose `session_id` differs from the visit's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Visit {
    /// Visits before this one: the context's `session`.
    pub index: u32,
    /// Slates shown in this visit: the context's `step`.
    pub step: u32,
    /// History events this visit added: the context's `visit_events` (capped at the history's
    /// length when read, since the history keeps only its limit).
    pub events: u32,
    /// When the visit's last slate was shown, milliseconds since the Unix epoch.
    pub last_ms: i64,
    /// The keyed hash of the shop's session id for the visit
    /// ([`crate::auth::Pseudonymizer::visit`]); `None` while no rank of the visit sent one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<u64>,
}

impl Visit {
    /// Visit number `index` at its start: no slate shown in it yet.
    fn start(index: u32, last_ms: i64, key: Option<u64>) -> Visit {
        Visit {
            index,
            step: 0,
            events: 0,
            last_ms,
            key,
        }
    }
}

/// A user's state: the adjuster state and the recent history the network reads.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct UserRecord {
    /// The adjuster's state of the user's head correction.
    pub state: UserState,
    /// Recent interactions, oldest first, bounded by the history limit.
    pub history: Vec<PastEvent>,
    /// Slates whose reward window has closed. No rank reads it since the context's step counts
    /// the visit's slates ([`Visit`]); it is still stored because servers of earlier versions
    /// require it in a record they read.
    pub slates: u32,
    /// The visit of the last slate shown; `None` before the first one (and in records stored
    /// before visits were kept).
    pub visit: Option<Visit>,
    /// The stored state's version in a shared store (0 in a store without versions, and for a
    /// state never stored): a server that holds this version need not read the state again.
    pub version: i64,
}

/// The stored form of a [`UserRecord`].
///
/// The state's floats are written as `packed`: base64 of their little-endian IEEE-754 bytes,
/// for `bayes` the precision matrix (row-major) then the shift, for `gradient` the correction.
/// That restores the state bit for bit (serde_json's default float parser may miss the last
/// bit) in about half the bytes of the earlier form, arrays of the floats' bit patterns as
/// decimal integers (22 KB for a width-32 posterior, rewritten on every feedback), and in a
/// fraction of its time. The earlier form (`precision`, `shift`, `delta`) is still read.
///
/// `kind` says what the state is: `bayes` (with `observations`) or `gradient` (with
/// `updates`). Records written before the gradient adjuster was served have no `kind` and are
/// Bayesian.
#[derive(Serialize, Deserialize)]
struct StoredRecord {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    kind: Option<String>,
    dim: usize,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    packed: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    precision: Option<Vec<u64>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    shift: Option<Vec<u64>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    observations: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    delta: Option<Vec<u64>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    updates: Option<u32>,
    /// Packed, one integer per event, as in a stored decision (either form reads back).
    #[serde(serialize_with = "metarec_core::packed_history::serialize")]
    history: Vec<PastEvent>,
    slates: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    visit: Option<Visit>,
}

/// Floats from their bit patterns.
fn from_bits(bits: Vec<u64>) -> Vec<f64> {
    bits.into_iter().map(f64::from_bits).collect()
}

/// Floats as base64 of their little-endian bytes, one slice after the other.
fn pack(parts: &[&[f64]]) -> String {
    use base64::Engine as _;
    let mut bytes = Vec::with_capacity(parts.iter().map(|p| p.len() * 8).sum());
    for part in parts {
        for v in *part {
            bytes.extend_from_slice(&v.to_le_bytes());
        }
    }
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// The floats of [`pack`], split into slices of the given lengths, which must account for
/// every byte.
fn unpack(text: &str, lengths: &[usize]) -> Result<Vec<Vec<f64>>, String> {
    use base64::Engine as _;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text)
        .map_err(|e| format!("`packed` is not base64: {e}"))?;
    let want = lengths
        .iter()
        .try_fold(0usize, |sum, n| sum.checked_add(n.checked_mul(8)?));
    if want != Some(bytes.len()) {
        return Err(format!(
            "`packed` holds {} bytes, where {} floats need {}",
            bytes.len(),
            lengths.iter().sum::<usize>(),
            want.map_or_else(|| "more than fit".to_owned(), |w| w.to_string())
        ));
    }
    let mut floats = bytes
        .chunks_exact(8)
        .map(|c| f64::from_le_bytes(c.try_into().expect("chunks of 8 bytes")));
    Ok(lengths
        .iter()
        .map(|&n| floats.by_ref().take(n).collect())
        .collect())
}

/// A field a stored state of `kind` must have.
fn required<T>(value: Option<T>, kind: &str, field: &str) -> Result<T, String> {
    value.ok_or_else(|| format!("a `{kind}` state without `{field}`"))
}

impl UserRecord {
    /// The stored JSON.
    pub(crate) fn to_json(&self) -> Result<String, serde_json::Error> {
        let (packed, observations, updates) = match &self.state {
            UserState::Bayes(p) => (pack(&[&p.precision, &p.shift]), Some(p.observations), None),
            UserState::Gradient(g) => (pack(&[&g.delta]), None, Some(g.updates)),
        };
        serde_json::to_string(&StoredRecord {
            kind: Some(self.state.kind().to_owned()),
            dim: self.state.dim(),
            packed: Some(packed),
            precision: None,
            shift: None,
            observations,
            delta: None,
            updates,
            history: self.history.clone(),
            slates: self.slates,
            visit: self.visit,
        })
    }

    /// Reads the stored JSON, checking the state's kind and sizes. A record without a kind is
    /// a Bayesian one, as every record was before the kind was stored.
    pub(crate) fn from_json(text: &str) -> Result<UserRecord, String> {
        let s: StoredRecord = serde_json::from_str(text).map_err(|e| e.to_string())?;
        let state = match s.kind.as_deref().unwrap_or("bayes") {
            "bayes" => {
                let observations = required(s.observations, "bayes", "observations")?;
                let Some(square) = s.dim.checked_mul(s.dim) else {
                    return Err(format!("posterior of dimension {} is too large", s.dim));
                };
                let (precision, shift) = match s.packed {
                    Some(packed) => {
                        let mut parts = unpack(&packed, &[square, s.dim])?.into_iter();
                        let precision = parts.next().unwrap_or_default();
                        (precision, parts.next().unwrap_or_default())
                    }
                    None => (
                        from_bits(required(s.precision, "bayes", "precision")?),
                        from_bits(required(s.shift, "bayes", "shift")?),
                    ),
                };
                if precision.len() != square || shift.len() != s.dim {
                    return Err(format!(
                        "posterior of dimension {} has {} precision and {} shift entries",
                        s.dim,
                        precision.len(),
                        shift.len()
                    ));
                }
                UserState::Bayes(GaussianPosterior {
                    dim: s.dim,
                    precision,
                    shift,
                    observations,
                })
            }
            "gradient" => {
                let updates = required(s.updates, "gradient", "updates")?;
                let delta = match s.packed {
                    Some(packed) => unpack(&packed, &[s.dim])?.pop().unwrap_or_default(),
                    None => from_bits(required(s.delta, "gradient", "delta")?),
                };
                if delta.len() != s.dim {
                    return Err(format!(
                        "correction of dimension {} has {} entries",
                        s.dim,
                        delta.len()
                    ));
                }
                UserState::Gradient(GradientState { delta, updates })
            }
            other => {
                return Err(format!(
                    "unknown state kind `{other}` (expected bayes or gradient)"
                ));
            }
        };
        Ok(UserRecord {
            state,
            history: s.history,
            slates: s.slates,
            visit: s.visit,
            version: 0,
        })
    }

    pub(crate) fn prior(model: &ServedModel) -> UserRecord {
        UserRecord {
            state: model.adjuster.prior(),
            history: Vec::new(),
            slates: 0,
            visit: None,
            version: 0,
        }
    }

    /// The visit that a slate shown at `now` for the session `key` belongs to, as it stands
    /// before that slate: the last slate's visit, or a new one (step 0, no events) when none
    /// was shown yet, the last was shown more than `gap_ms` before, or `key` and the visit's
    /// are both known and differ. A visit without a key takes the first one sent (a deferred
    /// rank's activation carries none); a clock that went back keeps the visit.
    pub(crate) fn visit_at(&self, now: i64, gap_ms: i64, key: Option<u64>) -> Visit {
        match self.visit {
            Some(v)
                if now.saturating_sub(v.last_ms) <= gap_ms
                    && (key.is_none() || v.key.is_none() || key == v.key) =>
            {
                Visit {
                    key: v.key.or(key),
                    ..v
                }
            }
            Some(v) => Visit::start(v.index.saturating_add(1), v.last_ms, key),
            None => Visit::start(0, now, key),
        }
    }

    /// The session state a rank at `now` for the session `key` gives the network: the
    /// history, the visit's number and step, and how many of the history's last events the
    /// visit showed.
    pub(crate) fn session_at(
        &self,
        now: i64,
        gap_ms: i64,
        key: Option<u64>,
    ) -> metarec_core::SessionState {
        let visit = self.visit_at(now, gap_ms, key);
        let kept = u32::try_from(self.history.len()).unwrap_or(u32::MAX);
        metarec_core::SessionState {
            session: visit.index,
            step: visit.step,
            history: self.history.clone(),
            visit_events: Some(visit.events.min(kept)),
        }
    }

    /// Records a slate shown at `now`: its items enter the history as passed over (a click
    /// marks them later) and the visit counts it. `ranked_in` is the visit number its rank
    /// gave the network: a later one than the rules give now (a deferred rank that began a
    /// visit by its session id) begins that visit, so the visits follow what the ranks saw.
    fn show(&mut self, slate: &[ItemId], now: i64, gap_ms: i64, key: Option<u64>, ranked_in: u32) {
        let mut visit = self.visit_at(now, gap_ms, key);
        if visit.index < ranked_in {
            visit = Visit::start(ranked_in, now, key);
        }
        let n = u32::try_from(slate.len()).unwrap_or(u32::MAX);
        visit.step = visit.step.saturating_add(1);
        visit.events = visit.events.saturating_add(n);
        visit.last_ms = visit.last_ms.max(now);
        self.visit = Some(visit);
        self.history.extend(slate.iter().map(|&item| PastEvent {
            item,
            click: false,
            purchase: false,
        }));
    }
}

/// Whether a stored decision's items entered the user's history when it was shown. Decisions
/// stored before that (whose contexts carry no visit count) still add their passes when their
/// window closes and their clicks when they come, as they did then.
fn shown_into_history(row: &DecisionRow) -> bool {
    row.interaction.context.session.visit_events.is_some()
}

/// Settings of the writer.
#[derive(Debug, Clone, Copy)]
pub(crate) struct EngineConfig {
    pub reward_window_ms: i64,
    pub default_reward: f64,
    pub history_limit: usize,
    /// A slate shown more than this after the user's last begins a new visit.
    pub visit_gap_ms: i64,
    /// The write-ahead log is truncated once it passes half of this.
    pub log_limit_bytes: u64,
    /// Most items that may be added over the API.
    pub max_added_items: usize,
}

/// Most expired events closed by one [`Job::Expire`]: small enough that one sweep step delays
/// the ranks committed in the same group by a millisecond or two (32 took 2 to 9 ms in a release
/// build on 2 cores), while the sweeper repeats steps back to back until nothing is due.
pub(crate) const EXPIRE_BATCH: usize = 8;

/// What the handlers and the writer share.
pub(crate) struct Shared {
    /// The model with the catalog it serves, swapped whole (by the writer alone) when items
    /// change or a model is reloaded, so a handler's snapshot always ranks the items its
    /// catalog names.
    pub model: RwLock<Arc<ServedModel>>,
    pub users: RwLock<HashMap<String, Arc<UserRecord>>>,
    /// Reads user states from a database that other servers write too (PostgreSQL), so that a
    /// rank sees feedback acknowledged by any of them; `None` for a store only this server
    /// writes, whose states `users` holds exactly.
    pub reader: Option<crate::store::UserReader>,
    pub metrics: Metrics,
    pub config: EngineConfig,
}

impl Shared {
    pub(crate) fn model(&self) -> Arc<ServedModel> {
        self.model.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub(crate) fn user(&self, user: &str) -> Option<Arc<UserRecord>> {
        self.users
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(user)
            .cloned()
    }
}

/// Which slate entry a feedback is about.
#[derive(Debug, Clone)]
pub(crate) enum Target {
    Position(u32),
    Item(String),
}

/// A feedback request, checked for types.
#[derive(Debug, Clone)]
pub(crate) struct FeedbackJob {
    pub event_id: String,
    /// The pseudonym of the API key that sent it: it must be the key that ranked the event.
    pub owner: String,
    pub target: Target,
    pub kind: FeedbackKind,
    pub revenue: f64,
}

/// The answer to a feedback.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub(crate) struct FeedbackAck {
    pub event_id: String,
    /// The slate position it was recorded at.
    pub position: u32,
    /// `click` or `purchase` (`reward` inside the server only).
    pub kind: &'static str,
    /// True when the same (event, position, kind) was already recorded: nothing changed.
    pub duplicate: bool,
}

/// What the writer did with a decision.
#[derive(Debug, Clone)]
pub(crate) enum DecisionAck {
    /// Stored as a new event.
    Stored,
    /// The client's event id was ranked before, for the same key and user: the answer it got
    /// then, to send again unchanged.
    Replay(String),
}

/// An activation of an event ranked with deferred activation.
#[derive(Debug, Clone)]
pub(crate) struct ActivateJob {
    pub event_id: String,
    /// The pseudonym of the API key that sent it: it must be the key that ranked the event.
    pub owner: String,
}

/// The answer to an activation.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub(crate) struct ActivateAck {
    pub event_id: String,
    /// Whether the event was already active (activated before, or never deferred).
    pub already_active: bool,
    /// The slate's length, for the impressions metric.
    #[serde(skip)]
    #[schema(ignore)]
    pub slate_len: usize,
}

/// An item change, checked for types and values.
#[derive(Debug, Clone)]
pub(crate) struct ItemJob {
    pub key: String,
    pub change: ItemChange,
}

/// The answer to an item change: the item as stored, its id and whether it is new.
#[derive(Debug, Clone)]
pub(crate) struct ItemAck {
    pub record: ItemRecord,
    pub created: bool,
    /// Whether the item was added over the API (rather than coming with the bundle).
    pub added: bool,
}

/// The answer to a forget.
#[derive(Debug, Clone, Copy, Serialize)]
pub(crate) struct ForgetAck {
    /// Decisions deleted.
    pub events_deleted: u64,
    /// Whether the write-ahead log was truncated after the deletion, so that no file holds the
    /// user's rows any more (false only when another connection held the log; the writer then
    /// retries after each later commit).
    pub purged: bool,
}

type Reply<T> = oneshot::Sender<Result<T, ApiError>>;

/// Work for the writer.
pub(crate) enum Job {
    /// A rank's decision, with the keyed hash of the request's `session_id`, if any.
    Decision(Box<DecisionRow>, Option<u64>, Reply<DecisionAck>),
    Feedback(FeedbackJob, Reply<FeedbackAck>),
    Activate(ActivateJob, Reply<ActivateAck>),
    Expire(Reply<usize>),
    Forget(String, Reply<ForgetAck>),
    /// Add or update an item.
    PutItem(ItemJob, Reply<ItemAck>),
    /// Retire an item by key.
    RetireItem(String, Reply<ItemAck>),
    /// Serve a verified model (a reload), with the item changes made over the API; answered
    /// with the version it replaced.
    Swap(Box<ServedModel>, Reply<String>),
}

/// Starts the writer thread; it ends when every sender is dropped.
pub(crate) fn spawn(
    store: Box<dyn Store>,
    shared: Arc<Shared>,
) -> std::io::Result<(Sender<Job>, std::thread::JoinHandle<()>)> {
    let (tx, rx) = std::sync::mpsc::channel();
    let handle = std::thread::Builder::new()
        .name("metarec-writer".into())
        .spawn(move || run(store, rx, shared))?;
    Ok((tx, handle))
}

/// Most jobs folded into one transaction.
const MAX_GROUP: usize = 512;

fn run(mut store: Box<dyn Store>, rx: Receiver<Job>, shared: Arc<Shared>) {
    // A purge owed to a forget whose truncation could not finish.
    let mut purge_owed = false;
    while let Ok(first) = rx.recv() {
        let mut jobs = vec![first];
        while jobs.len() < MAX_GROUP {
            match rx.try_recv() {
                Ok(job) => jobs.push(job),
                Err(_) => break,
            }
        }
        process(store.as_mut(), &shared, jobs, &mut purge_owed);
    }
}

/// Restarts the log when it has passed half its limit, or truncates it when a forget asks for
/// it (`forced`); returns whether the checkpoint it ran completed. A checkpoint that cannot
/// finish is tried again three times (another connection's checkpoint holds the log for a moment
/// at most).
fn bound_log(store: &mut dyn Store, shared: &Shared, forced: bool) -> bool {
    let metrics = &shared.metrics;
    if !forced && store.log_bytes() <= shared.config.log_limit_bytes / 2 {
        metrics
            .store
            .wal_bytes
            .store(store.log_file_bytes(), Ordering::Relaxed);
        return false;
    }
    let mut complete = false;
    for _ in 0..4 {
        let attempt = if forced {
            store.truncate_log()
        } else {
            store.restart_log()
        };
        match attempt {
            Ok(c) if c.complete => {
                complete = true;
                break;
            }
            Ok(_) => std::thread::sleep(std::time::Duration::from_millis(2)),
            Err(_) => break,
        }
    }
    if complete {
        metrics
            .store
            .log_truncations
            .fetch_add(1, Ordering::Relaxed);
    }
    metrics
        .store
        .wal_bytes
        .store(store.log_file_bytes(), Ordering::Relaxed);
    metrics
        .store
        .db_bytes
        .store(store.data_bytes(), Ordering::Relaxed);
    complete
}

pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// One group: runs every job in a transaction, makes the next model snapshot if items changed
/// or a model was swapped in, commits, bounds the log, then publishes states and the snapshot
/// and answers.
fn process(store: &mut dyn Store, shared: &Shared, jobs: Vec<Job>, purge_owed: &mut bool) {
    let model = shared.model();
    let now = now_ms();
    let mut group = Group {
        overlay: HashMap::new(),
        answers: Vec::with_capacity(jobs.len()),
        forgot: false,
        items: None,
        swap: None,
    };
    let outcome = store.begin().and_then(|()| {
        for job in jobs {
            group.run(store, shared, &model, job, now)?;
        }
        // The next snapshot is made before the commit, so that a change the network cannot
        // take (which validation should make impossible) is rolled back rather than stored
        // and then not served.
        let next = group.next_model(&model)?;
        shared
            .metrics
            .time_store(crate::metrics::StoreOp::Commit, || store.commit())?;
        Ok(next)
    });
    match outcome {
        Ok(next) => {
            if let Some(next) = next {
                *shared.model.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(next);
            }
            let forced = group.forgot || *purge_owed;
            let purged = bound_log(store, shared, forced) && forced;
            if forced {
                *purge_owed = !purged;
            }
            let after = After { purged };
            let mut users = shared.users.write().unwrap_or_else(|e| e.into_inner());
            for (user, record) in group.overlay {
                match record {
                    Some(r) => {
                        users.insert(user, Arc::new(r));
                    }
                    None => {
                        users.remove(&user);
                    }
                }
            }
            drop(users);
            for answer in group.answers {
                answer(Ok(&after));
            }
        }
        Err(e) => {
            let _ = store.rollback();
            let error = ApiError::internal(format!("the event could not be stored: {e}"));
            for answer in group.answers {
                answer(Err(&error));
            }
        }
    }
}

/// What the writer did after a group's commit, for answers that report it.
struct After {
    /// Whether a forced truncation emptied the write-ahead log.
    purged: bool,
}

type Answer = Box<dyn FnOnce(Result<&After, &ApiError>) + Send>;

struct Group {
    /// New states of this group's users (`None`: forgotten).
    overlay: HashMap<String, Option<UserRecord>>,
    /// Called after the commit, with the error when it failed.
    answers: Vec<Answer>,
    /// Whether a user was forgotten (the log is then truncated before anyone is answered).
    forgot: bool,
    /// The served catalog with this group's item changes, and the items they changed.
    items: Option<(ServedCatalog, Vec<ItemId>)>,
    /// A model to serve from this group on (a reload).
    swap: Option<Box<ServedModel>>,
}

fn answer<T: Send + 'static>(reply: Reply<T>, result: Result<T, ApiError>) -> Answer {
    Box::new(move |outcome| {
        let _ = reply.send(match outcome {
            Err(e) => Err(e.clone()),
            Ok(_) => result,
        });
    })
}

/// The interaction restricted to some slate positions, all with the same click label: what the
/// adjuster folds in for a click (one position) or at the window's close (the unclicked ones).
fn part(interaction: &Interaction, positions: &[usize], click: bool) -> Option<Interaction> {
    let d = &interaction.decision;
    let items = positions.iter().map(|&p| d.slate.items()[p]).collect();
    let n = positions.len();
    Some(Interaction {
        context: interaction.context.clone(),
        decision: Decision {
            event_id: d.event_id.clone(),
            slate: Slate::new(items).ok()?,
            propensities: positions.iter().map(|&p| d.propensities[p]).collect(),
            slate_propensity: None,
            positions: Some(positions.iter().map(|&p| p as u32).collect()),
            policy_id: d.policy_id.clone(),
            model_version: d.model_version.clone(),
        },
        feedback: Feedback {
            clicks: vec![click; n],
            purchases: vec![false; n],
            revenue: vec![0.0; n],
        },
    })
}

/// A stored event that `owner`'s key ranked and whose reward window is still open; else the
/// 404 to answer. An event ranked by another API key is answered exactly like an unknown one,
/// so a client learns nothing about other clients' events.
fn open_event(
    store: &mut dyn Store,
    shared: &Shared,
    event_id: &str,
    owner: &str,
    now: i64,
) -> Result<Result<DecisionRow, ApiError>, crate::StoreError> {
    let owned = |row: &DecisionRow| row.owner.is_empty() || row.owner == owner;
    let Some(row) = store.decision(event_id)?.filter(owned) else {
        return Ok(Err(ApiError::not_found(
            "unknown_event",
            format!(
                "no event `{event_id}`: it was never ranked with this API key, or its user was forgotten"
            ),
        )));
    };
    let window = shared.config.reward_window_ms;
    if row.resolved || now > row.created_ms + window {
        return Ok(Err(ApiError::not_found(
            "event_expired",
            format!(
                "event `{event_id}` is past its reward window of {} s",
                window as f64 / 1000.0
            ),
        )));
    }
    Ok(Ok(row))
}

/// The refusal of an item change on a shared database: each replica numbers the items added
/// over the API in its own memory, so two replicas could give one id to two items; until the
/// replicas share the numbering, items change with the bundle.
fn items_shared() -> ApiError {
    ApiError::new(
        axum::http::StatusCode::CONFLICT,
        "items_shared",
        "items cannot be changed over the API while several servers share the database; change them in the model bundle's catalog and reload",
    )
}

/// A user's state read from a shared store, whole.
fn fresh(
    store: &mut dyn Store,
    model: &ServedModel,
    user: &str,
) -> Result<UserRecord, crate::StoreError> {
    Ok(match store.user(user, 0)? {
        Some((version, Some(text))) => parsed(model, version, &text),
        _ => UserRecord::prior(model),
    })
}

/// A stored state, or the prior when it cannot be read or belongs to another model (as at a
/// server's start: that user starts again from the prior).
pub(crate) fn parsed(model: &ServedModel, version: i64, text: &str) -> UserRecord {
    match UserRecord::from_json(text) {
        Ok(mut r) if model.adjuster.fits(&r.state) => {
            r.version = version;
            r
        }
        _ => UserRecord {
            version,
            ..UserRecord::prior(model)
        },
    }
}

impl Group {
    /// The snapshot to serve after this group, when its item changes or a swap call for one:
    /// the swapped-in model (or the current one) with the group's catalog. A swapped-in model
    /// recomputes every item changed over the API; otherwise only the group's items are.
    fn next_model(
        &mut self,
        model: &ServedModel,
    ) -> Result<Option<ServedModel>, crate::StoreError> {
        let (catalog, changed) = match (self.items.take(), &self.swap) {
            (None, None) => return Ok(None),
            (Some((catalog, _)), Some(_)) => {
                let changed = catalog.changed();
                (catalog, changed)
            }
            (Some((catalog, mut changed)), None) => {
                changed.sort_unstable();
                changed.dedup();
                (catalog, changed)
            }
            (None, Some(_)) => {
                let catalog = (*model.catalog).clone();
                let changed = catalog.changed();
                (catalog, changed)
            }
        };
        let base = self.swap.as_deref().unwrap_or(model);
        base.with_items(Arc::new(catalog), &changed)
            .map(Some)
            .map_err(|e| crate::StoreError(format!("the item changes cannot be served: {e}")))
    }

    /// The served catalog as this group has changed it so far.
    fn catalog<'a>(&'a mut self, model: &ServedModel) -> &'a mut (ServedCatalog, Vec<ItemId>) {
        self.items
            .get_or_insert_with(|| ((*model.catalog).clone(), Vec::new()))
    }

    /// Stores an item's new record and applies it to the group's catalog.
    fn store_item(
        &mut self,
        store: &mut dyn Store,
        model: &ServedModel,
        record: ItemRecord,
        now: i64,
    ) -> Result<Result<ItemAck, ApiError>, crate::StoreError> {
        store.put_item(
            &model.catalog_fingerprint,
            &record.key,
            &record.to_json()?,
            now,
        )?;
        let (catalog, changed) = self.catalog(model);
        match catalog.apply(record.clone()) {
            Ok((id, created)) => {
                changed.push(id);
                Ok(Ok(ItemAck {
                    added: catalog.is_added(id),
                    record,
                    created,
                }))
            }
            // The record was merged from the catalog's own row, so its width fits; should it
            // not, the whole group is rolled back rather than a row stored that cannot serve.
            Err(e) => Err(crate::StoreError(e)),
        }
    }

    fn put_item(
        &mut self,
        store: &mut dyn Store,
        shared: &Shared,
        model: &ServedModel,
        job: ItemJob,
        now: i64,
    ) -> Result<Result<ItemAck, ApiError>, crate::StoreError> {
        let limit = shared.config.max_added_items;
        let (catalog, _) = self.catalog(model);
        let Some(record) = catalog.merge(&job.key, &job.change, limit) else {
            return Ok(Err(ApiError::new(
                axum::http::StatusCode::CONFLICT,
                "item_limit",
                format!(
                    "item `{}` is new, and the {limit} items that may be added over the API are all added (retired items count); update or re-activate an existing item instead",
                    job.key
                ),
            )));
        };
        self.store_item(store, model, record, now)
    }

    fn retire_item(
        &mut self,
        store: &mut dyn Store,
        model: &ServedModel,
        key: String,
        now: i64,
    ) -> Result<Result<ItemAck, ApiError>, crate::StoreError> {
        let (catalog, _) = self.catalog(model);
        let Some(id) = catalog.id(&key) else {
            return Ok(Err(ApiError::not_found(
                "unknown_item",
                format!("no item `{key}` in the catalog"),
            )));
        };
        let Some(mut record) = catalog.record(id) else {
            return Ok(Err(ApiError::not_found(
                "unknown_item",
                format!("no item `{key}` in the catalog"),
            )));
        };
        if !record.available {
            // Already retired: nothing to store, the same answer.
            return Ok(Ok(ItemAck {
                added: catalog.is_added(id),
                record,
                created: false,
            }));
        }
        record.available = false;
        self.store_item(store, model, record, now)
    }

    /// The user's state as of this point of the group: the group's own change, else, in a
    /// shared store, what the database holds (another server may have changed it; the group's
    /// lock keeps it so until the commit), else this server's memory.
    fn current(
        &self,
        store: &mut dyn Store,
        shared: &Shared,
        model: &ServedModel,
        user: &str,
    ) -> Result<UserRecord, crate::StoreError> {
        match self.overlay.get(user) {
            Some(Some(r)) => return Ok(r.clone()),
            Some(None) => return Ok(UserRecord::prior(model)),
            None => {}
        }
        let cached = shared.user(user);
        if !store.shared() {
            return Ok(cached.map_or_else(|| UserRecord::prior(model), |r| (*r).clone()));
        }
        let known = cached.as_ref().map_or(0, |r| r.version);
        let stored = shared
            .metrics
            .time_store(crate::metrics::StoreOp::ReadUser, || {
                store.user(user, known)
            })?;
        Ok(match stored {
            None => UserRecord::prior(model),
            Some((version, None)) => match cached {
                Some(r) if r.version == version => (*r).clone(),
                // The database said the state is unchanged from the version this server
                // holds, so a missing or different cache entry cannot happen; read it whole.
                _ => fresh(store, model, user)?,
            },
            Some((version, Some(text))) => parsed(model, version, &text),
        })
    }

    fn save(
        &mut self,
        store: &mut dyn Store,
        shared: &Shared,
        user: &str,
        mut record: UserRecord,
        now: i64,
    ) -> Result<(), crate::StoreError> {
        let limit = shared.config.history_limit;
        if record.history.len() > limit {
            record.history.drain(..record.history.len() - limit);
        }
        record.version = store.put_user(user, &record.to_json()?, now)?;
        self.overlay.insert(user.to_owned(), Some(record));
        Ok(())
    }

    fn run(
        &mut self,
        store: &mut dyn Store,
        shared: &Shared,
        model: &ServedModel,
        job: Job,
        now: i64,
    ) -> Result<(), crate::StoreError> {
        match job {
            Job::Decision(row, key, reply) => {
                let result = self.decision(store, shared, model, &row, key, now)?;
                self.answers.push(answer(reply, result));
            }
            Job::Activate(job, reply) => {
                let result = self.activate(store, shared, model, job, now)?;
                if let Ok(ack) = &result {
                    if !ack.already_active {
                        shared.metrics.activated(ack.slate_len);
                    }
                }
                self.answers.push(answer(reply, result));
            }
            Job::Feedback(fb, reply) => {
                let result = self.feedback(store, shared, model, fb, now)?;
                if let Ok(ack) = &result {
                    let (kind, duplicate) = (ack.kind, ack.duplicate);
                    let metrics = &shared.metrics;
                    metrics.feedback(kind, duplicate);
                }
                self.answers.push(answer(reply, result));
            }
            Job::Expire(reply) => {
                let n = self.expire(store, shared, model, now)?;
                shared.metrics.expired(n as u64);
                // Counted once per sweep, after its last (short) step, not after every step.
                if n < EXPIRE_BATCH {
                    let overdue = store.unresolved_count(now - shared.config.reward_window_ms)?;
                    shared
                        .metrics
                        .store
                        .overdue_events
                        .store(overdue, Ordering::Relaxed);
                }
                self.answers.push(answer(reply, Ok(n)));
            }
            Job::PutItem(_, reply) | Job::RetireItem(_, reply) if store.shared() => {
                self.answers.push(answer(reply, Err(items_shared())));
            }
            Job::PutItem(item, reply) => {
                let result = self.put_item(store, shared, model, item, now)?;
                self.answers.push(answer(reply, result));
            }
            Job::RetireItem(key, reply) => {
                let result = self.retire_item(store, model, key, now)?;
                self.answers.push(answer(reply, result));
            }
            Job::Swap(next, reply) => {
                let previous = model.version.clone();
                self.swap = Some(next);
                self.answers.push(answer(reply, Ok(previous)));
            }
            Job::Forget(user, reply) => {
                let events_deleted = store.forget(&user)?;
                self.overlay.insert(user, None);
                self.forgot = true;
                self.answers.push(Box::new(move |outcome| {
                    let _ = reply.send(match outcome {
                        Err(e) => Err(e.clone()),
                        Ok(after) => Ok(ForgetAck {
                            events_deleted,
                            purged: after.purged,
                        }),
                    });
                }));
            }
        }
        Ok(())
    }

    /// Stores a decision, unless its event id is the client's and was ranked before: the same
    /// key and user get the stored answer again, anyone else a conflict.
    fn decision(
        &mut self,
        store: &mut dyn Store,
        shared: &Shared,
        model: &ServedModel,
        row: &DecisionRow,
        key: Option<u64>,
        now: i64,
    ) -> Result<Result<DecisionAck, ApiError>, crate::StoreError> {
        // Only a client's event id can come twice; the server's are 128 random bits.
        if row.answer.is_some() {
            if let Some(before) = store.replay(&row.event_id)? {
                return Ok(match before.answer {
                    Some(a) if before.owner == row.owner && before.user == row.user => {
                        Ok(DecisionAck::Replay(a))
                    }
                    _ => Err(ApiError::new(
                        axum::http::StatusCode::CONFLICT,
                        "event_id_taken",
                        format!(
                            "event id `{}` was already used for another user or by another API key; choose a new one",
                            row.event_id
                        ),
                    )),
                });
            }
        }
        store.insert_decision(row)?;
        if row.active {
            self.shown(store, shared, model, row, key, now)?;
        }
        Ok(Ok(DecisionAck::Stored))
    }

    /// Puts a shown slate's items into its user's history.
    fn shown(
        &mut self,
        store: &mut dyn Store,
        shared: &Shared,
        model: &ServedModel,
        row: &DecisionRow,
        key: Option<u64>,
        now: i64,
    ) -> Result<(), crate::StoreError> {
        let mut record = self.current(store, shared, model, &row.user)?;
        record.show(
            row.interaction.decision.slate.items(),
            now,
            shared.config.visit_gap_ms,
            key,
            row.interaction.context.session.session,
        );
        self.save(store, shared, &row.user, record, now)
    }

    /// Marks an event ranked with deferred activation as shown.
    fn activate(
        &mut self,
        store: &mut dyn Store,
        shared: &Shared,
        model: &ServedModel,
        job: ActivateJob,
        now: i64,
    ) -> Result<Result<ActivateAck, ApiError>, crate::StoreError> {
        let mut row = match open_event(store, shared, &job.event_id, &job.owner, now)? {
            Ok(row) => row,
            Err(e) => return Ok(Err(e)),
        };
        let already_active = row.active;
        if !already_active {
            row.active = true;
            store.update_decision(&row)?;
            if shown_into_history(&row) {
                self.shown(store, shared, model, &row, None, now)?;
            }
        }
        Ok(Ok(ActivateAck {
            event_id: job.event_id,
            already_active,
            slate_len: row.interaction.decision.slate.len(),
        }))
    }

    fn feedback(
        &mut self,
        store: &mut dyn Store,
        shared: &Shared,
        model: &ServedModel,
        job: FeedbackJob,
        now: i64,
    ) -> Result<Result<FeedbackAck, ApiError>, crate::StoreError> {
        let mut row = match open_event(store, shared, &job.event_id, &job.owner, now)? {
            Ok(row) => row,
            Err(e) => return Ok(Err(e)),
        };
        if !row.active {
            return Ok(Err(ApiError::new(
                axum::http::StatusCode::CONFLICT,
                "event_not_activated",
                format!(
                    "event `{}` was ranked with deferred activation and not activated yet: activate it (POST /v1/events/{{event_id}}/activate) once its slate is shown",
                    job.event_id
                ),
            )));
        }
        if job.kind == FeedbackKind::Reward {
            // The event's reward: the first one sent counts, later ones are duplicates.
            let fresh = store.insert_feedback(&FeedbackRow {
                event_id: job.event_id.clone(),
                user: row.user.clone(),
                position: 0,
                kind: job.kind,
                revenue: job.revenue,
                received_ms: now,
            })?;
            if fresh {
                row.reward = Some(job.revenue);
                store.update_decision(&row)?;
            }
            return Ok(Ok(FeedbackAck {
                event_id: job.event_id,
                position: 0,
                kind: job.kind.name(),
                duplicate: !fresh,
            }));
        }
        let slate = row.interaction.decision.slate.items().to_vec();
        let position = match &job.target {
            Target::Position(p) if (*p as usize) < slate.len() => *p as usize,
            Target::Position(p) => {
                return Ok(Err(ApiError::unprocessable(
                    "invalid_field",
                    format!(
                        "field `position`: {p} is outside the slate of {} items (positions start at 0)",
                        slate.len()
                    ),
                )));
            }
            Target::Item(key) => {
                match model
                    .catalog
                    .id(key)
                    .and_then(|id| slate.iter().position(|s| *s == id))
                {
                    Some(p) => p,
                    None => {
                        return Ok(Err(ApiError::unprocessable(
                            "invalid_field",
                            format!(
                                "field `item`: `{key}` is not in the slate of event `{}`",
                                job.event_id
                            ),
                        )));
                    }
                }
            }
        };
        let ack = FeedbackAck {
            event_id: job.event_id.clone(),
            position: position as u32,
            kind: job.kind.name(),
            duplicate: false,
        };
        let fresh = store.insert_feedback(&FeedbackRow {
            event_id: job.event_id.clone(),
            user: row.user.clone(),
            position: position as u32,
            kind: job.kind,
            revenue: job.revenue,
            received_ms: now,
        })?;
        if !fresh {
            return Ok(Ok(FeedbackAck {
                duplicate: true,
                ..ack
            }));
        }
        let purchase = job.kind == FeedbackKind::Purchase;
        let fb = &mut row.interaction.feedback;
        let was_clicked = fb.clicks[position];
        // A purchase implies the click that led to it.
        fb.clicks[position] = true;
        if purchase {
            fb.purchases[position] = true;
            fb.revenue[position] += job.revenue;
        }
        store.update_decision(&row)?;
        let mut record = self.current(store, shared, model, &row.user)?;
        let item = slate[position];
        if !was_clicked {
            if let Some(one) = part(&row.interaction, &[position], true) {
                model.adjuster.update(&mut record.state, &one);
            }
            // The slate's items entered the history as passes when it was shown: the latest
            // pass of this item is its entry (unless the history has dropped it since).
            let entry = if shown_into_history(&row) {
                record
                    .history
                    .iter_mut()
                    .rev()
                    .find(|e| e.item == item && !e.click)
            } else {
                None
            };
            match entry {
                Some(e) => {
                    e.click = true;
                    e.purchase = purchase;
                }
                None => record.history.push(PastEvent {
                    item,
                    click: true,
                    purchase,
                }),
            }
        } else if purchase {
            if let Some(e) = record
                .history
                .iter_mut()
                .rev()
                .find(|e| e.item == item && e.click)
            {
                e.purchase = true;
            }
        }
        self.save(store, shared, &row.user, record, now)?;
        Ok(Ok(ack))
    }

    fn expire(
        &mut self,
        store: &mut dyn Store,
        shared: &Shared,
        model: &ServedModel,
        now: i64,
    ) -> Result<usize, crate::StoreError> {
        let rows = store.unresolved_before(now - shared.config.reward_window_ms, EXPIRE_BATCH)?;
        let n = rows.len();
        for mut row in rows {
            if !row.active {
                // Never shown: closed without a reward, and the user's state is left as it is.
                row.resolved = true;
                store.update_decision(&row)?;
                continue;
            }
            let fb = &row.interaction.feedback;
            let unclicked: Vec<usize> = (0..fb.len()).filter(|&p| !fb.clicks[p]).collect();
            let any = fb.clicks.iter().any(|&c| c) || fb.purchases.iter().any(|&p| p);
            let mut record = self.current(store, shared, model, &row.user)?;
            if let Some(negatives) = part(&row.interaction, &unclicked, false) {
                model.adjuster.update(&mut record.state, &negatives);
                // Only a decision stored before shown items entered the history at once
                // still owes it its passes.
                for &p in unclicked.iter().filter(|_| !shown_into_history(&row)) {
                    record.history.push(PastEvent {
                        item: row.interaction.decision.slate.items()[p],
                        click: false,
                        purchase: false,
                    });
                }
            }
            record.slates = record.slates.saturating_add(1);
            row.resolved = true;
            // A numeric reward the shop sent is the event's reward; otherwise the reward
            // function turns the feedback into one.
            if row.reward.is_none() {
                row.reward = Some(if any {
                    model.reward.reward(&row.interaction.feedback)
                } else {
                    shared.config.default_reward
                });
            }
            store.update_decision(&row)?;
            let user = row.user.clone();
            self.save(store, shared, &user, record, now)?;
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use metarec_core::ItemId;

    /// A record of either kind, with floats whose shortest decimal form is long.
    fn record(state: UserState) -> UserRecord {
        UserRecord {
            state,
            history: vec![PastEvent {
                item: ItemId(3),
                click: true,
                purchase: false,
            }],
            slates: 2,
            visit: Some(Visit {
                index: 1,
                step: 3,
                events: 7,
                last_ms: 1_700_000_000_123,
                key: Some(u64::MAX - 5),
            }),
            version: 0,
        }
    }

    /// A user with no history and no visit yet.
    fn new_user() -> UserRecord {
        UserRecord {
            history: Vec::new(),
            visit: None,
            ..record(UserState::Gradient(GradientState {
                delta: vec![0.0],
                updates: 0,
            }))
        }
    }

    #[test]
    fn shown_slates_enter_the_history_and_a_gap_begins_a_new_visit() {
        let gap = 30 * 60 * 1000;
        let t0 = 1_700_000_000_000;
        let mut r = new_user();
        // Before any slate: the first visit, at its start.
        let s = r.session_at(t0, gap, None);
        assert_eq!((s.session, s.step, s.visit_events), (0, 0, Some(0)));
        r.show(&[ItemId(1), ItemId(2)], t0, gap, None, 0);
        r.show(&[ItemId(3)], t0 + 60_000, gap, None, 0);
        // Both slates are in the history as passes, and the visit counts them.
        assert_eq!(
            r.history
                .iter()
                .map(|e| (e.item.0, e.click))
                .collect::<Vec<_>>(),
            [(1, false), (2, false), (3, false)]
        );
        let s = r.session_at(t0 + 120_000, gap, None);
        assert_eq!((s.session, s.step, s.visit_events), (0, 2, Some(3)));
        assert_eq!(s.visit_history().map(<[_]>::len), Some(3));
        // At exactly the gap after the last slate the visit goes on; a millisecond later a new
        // one begins, with no events of its own, while the history keeps the earlier visit's.
        let last = t0 + 60_000;
        assert_eq!(r.session_at(last + gap, gap, None).session, 0);
        let s = r.session_at(last + gap + 1, gap, None);
        assert_eq!((s.session, s.step, s.visit_events), (1, 0, Some(0)));
        assert_eq!(s.history.len(), 3);
        r.show(&[ItemId(4)], last + gap + 1, gap, None, 0);
        let s = r.session_at(last + gap + 2, gap, None);
        assert_eq!((s.session, s.step, s.visit_events), (1, 1, Some(1)));
        // A clock that went back keeps the visit.
        assert_eq!(r.session_at(t0, gap, None).session, 1);
        // The count is capped at what the history keeps.
        r.history.drain(..3);
        r.visit = Some(Visit {
            events: 50,
            ..r.visit.unwrap()
        });
        assert_eq!(
            r.session_at(last + gap + 2, gap, None).visit_events,
            Some(1)
        );
    }

    #[test]
    fn a_new_session_id_begins_a_new_visit_and_a_visit_without_one_adopts_the_first() {
        let gap = 30 * 60 * 1000;
        let t = 1_700_000_000_000;
        let mut r = new_user();
        // A visit begun without an id takes the first id sent, and keeps it.
        r.show(&[ItemId(1)], t, gap, None, 0);
        assert_eq!(r.session_at(t + 1, gap, Some(7)).session, 0);
        r.show(&[ItemId(2)], t + 1, gap, Some(7), 0);
        assert_eq!(r.visit.unwrap().key, Some(7));
        // No id: the same visit; the same id: the same visit; another id: a new one, at once.
        assert_eq!(r.session_at(t + 2, gap, None).step, 2);
        assert_eq!(r.session_at(t + 2, gap, Some(7)).step, 2);
        let s = r.session_at(t + 2, gap, Some(8));
        assert_eq!((s.session, s.step, s.visit_events), (1, 0, Some(0)));
        r.show(&[ItemId(3)], t + 2, gap, Some(8), 1);
        assert_eq!(r.visit.unwrap().key, Some(8));
        // The same id after the gap is still a new visit.
        assert_eq!(r.session_at(t + 3 + gap, gap, Some(8)).session, 2);
        // A deferred rank that began visit 2 by its id, activated without one, begins it.
        r.show(&[ItemId(4)], t + 4, gap, None, 2);
        let v = r.visit.unwrap();
        assert_eq!((v.index, v.step, v.events, v.key), (2, 1, 1, None));
        assert_eq!(r.history.len(), 4);
    }

    #[test]
    fn an_old_record_without_a_kind_reads_as_a_bayesian_state() {
        // The form every record had before the kind was stored.
        let precision = [1.0f64 / 3.0, 0.1, 0.1, 2.0 / 7.0];
        let shift = [0.1f64 + 0.2, -1e-300];
        let bits = |v: &[f64]| {
            v.iter()
                .map(|x| x.to_bits().to_string())
                .collect::<Vec<_>>()
                .join(",")
        };
        let old = format!(
            r#"{{"dim":2,"precision":[{}],"shift":[{}],"observations":5,"history":[],"slates":4}}"#,
            bits(&precision),
            bits(&shift)
        );
        let read = UserRecord::from_json(&old).unwrap();
        assert_eq!(
            read,
            UserRecord {
                state: UserState::Bayes(GaussianPosterior {
                    dim: 2,
                    precision: precision.to_vec(),
                    shift: shift.to_vec(),
                    observations: 5,
                }),
                history: Vec::new(),
                slates: 4,
                visit: None,
                version: 0,
            }
        );
        // Written again, it carries its kind and reads back the same.
        let written = read.to_json().unwrap();
        assert!(written.contains(r#""kind":"bayes""#), "{written}");
        assert_eq!(UserRecord::from_json(&written).unwrap(), read);
    }

    #[test]
    fn both_kinds_of_state_round_trip_bit_for_bit() {
        let bayes = record(UserState::Bayes(GaussianPosterior {
            dim: 2,
            precision: vec![1.0 / 3.0, 0.1, 0.1, 2.0 / 7.0],
            shift: vec![0.1 + 0.2, f64::MIN_POSITIVE],
            observations: 7,
        }));
        let gradient = record(UserState::Gradient(GradientState {
            delta: vec![0.1 + 0.2, -1.0 / 3.0, 5e-324],
            updates: 3,
        }));
        for r in [bayes, gradient] {
            let text = r.to_json().unwrap();
            let back = UserRecord::from_json(&text).unwrap();
            assert_eq!(back, r, "{text}");
            // The history is packed (item 3, clicked: 4 x 3 + 1), and a record written before
            // it was packed reads the same.
            assert!(text.contains(r#""history":[13]"#), "{text}");
            let old = text.replace(
                r#""history":[13]"#,
                r#""history":[{"item":3,"click":true,"purchase":false}]"#,
            );
            assert_eq!(UserRecord::from_json(&old).unwrap(), r, "{old}");
            let to_bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            let bits = |s: &UserState| match s {
                UserState::Bayes(p) => to_bits(&p.precision)
                    .into_iter()
                    .chain(to_bits(&p.shift))
                    .collect::<Vec<_>>(),
                UserState::Gradient(g) => to_bits(&g.delta),
            };
            assert_eq!(bits(&back.state), bits(&r.state));
        }
    }

    #[test]
    fn a_width_32_posterior_is_stored_in_about_half_the_bytes_of_the_bit_pattern_form() {
        let d = 32;
        let mut posterior = GaussianPosterior::isotropic(&vec![0.01; d], 0.3);
        for k in 0..5 {
            let x: Vec<f64> = (0..d).map(|i| ((i * 7 + k) as f64).sin()).collect();
            posterior.observe(&x, 1.0, 0.7);
        }
        let r = record(UserState::Bayes(posterior.clone()));
        let packed = r.to_json().unwrap();
        let decimal: Vec<u64> = posterior.precision.iter().map(|v| v.to_bits()).collect();
        let old = serde_json::json!({
            "kind": "bayes", "dim": d, "precision": decimal,
            "shift": posterior.shift.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            "observations": 5, "history": [], "slates": 0,
        })
        .to_string();
        assert!(
            packed.len() * 10 < old.len() * 6,
            "{} vs {}",
            packed.len(),
            old.len()
        );
        // Both forms read as the same state.
        let (a, b) = (
            UserRecord::from_json(&packed).unwrap(),
            UserRecord::from_json(&old).unwrap(),
        );
        assert_eq!(a.state, b.state);
        assert_eq!(a.state, r.state);
    }

    #[test]
    fn bad_stored_states_are_errors_not_panics() {
        for (text, needle) in [
            (
                r#"{"kind":"gradient","dim":2,"delta":[0],"updates":1,"history":[],"slates":0}"#,
                "dimension 2 has 1",
            ),
            (
                r#"{"kind":"gradient","dim":1,"delta":[0],"history":[],"slates":0}"#,
                "without `updates`",
            ),
            (
                r#"{"dim":1,"shift":[0],"observations":0,"history":[],"slates":0}"#,
                "without `precision`",
            ),
            (
                r#"{"dim":4294967296,"precision":[],"shift":[],"observations":0,"history":[],"slates":0}"#,
                "dimension 4294967296",
            ),
            (
                r#"{"kind":"newton","dim":1,"history":[],"slates":0}"#,
                "unknown state kind `newton`",
            ),
            (
                r#"{"kind":"gradient","dim":1,"packed":"not base64!","updates":1,"history":[],"slates":0}"#,
                "not base64",
            ),
            // One float (8 bytes) where a posterior of dimension 1 needs two.
            (
                r#"{"kind":"bayes","dim":1,"packed":"AAAAAAAA8D8=","observations":0,"history":[],"slates":0}"#,
                "holds 8 bytes, where 2 floats need 16",
            ),
            (
                r#"{"kind":"bayes","dim":4294967296,"packed":"","observations":0,"history":[],"slates":0}"#,
                "is too large",
            ),
        ] {
            let e = UserRecord::from_json(text).unwrap_err();
            assert!(e.contains(needle), "`{needle}` not in `{e}`");
        }
    }
}
