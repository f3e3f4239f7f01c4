//! `POST /v1/rank`: [`RankRequest`] in; [`RankOut`] out, a slate of [`SlateEntryOut`] (item,
//! score, propensity and an [`ExplanationOut`] of the score's additive parts, [`PartsOut`] and
//! [`TopClickOut`]); [`rank`], the handler, with its helpers [`item_ids`], [`explanation`] and
//! [`new_event_id`].

use super::request::{authorize, check_key, parse_json, read_json_body, submit};
use super::server::AppState;
use crate::auth::Scope;
use crate::engine::{self, DecisionAck, Job, UserRecord};
use crate::error::ApiError;
use crate::model::ServedCatalog;
use crate::store::DecisionRow;
use axum::body::Body;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use metarec_core::{
    Context, EventId, Feedback, Interaction, ItemId, UserKey, decision_from_choice, rng_for,
    stable_hash,
};
use metarec_neural::adjust::Exploration;
use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::collections::HashSet;
use std::sync::Arc;
use utoipa::ToSchema;

/// A rank request: whom to rank for, in what context, from which items, how many.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct RankRequest<'a> {
    /// The shop's user key (pseudonymised with a keyed hash before storage).
    #[schema(min_length = 1, max_length = 256)]
    user: String,
    /// The client's own id for the event. A retry with the same id, user and API key gets the
    /// first answer again, byte for byte, with the header `Idempotent-Replayed: true`, and
    /// stores nothing new; the id used for another user or by another key is a 409
    /// `event_id_taken`. Omitted: the server draws 128 random bits.
    #[serde(default)]
    #[schema(min_length = 1, max_length = 256)]
    event_id: Option<String>,
    /// Context features, any JSON object, flattened to `name=value` tokens: strings and
    /// booleans as they are, integers under 1,000 in magnitude as written, other numbers to two
    /// significant digits (`1.2e3`), nested objects with dotted names (`device.os=ios`), arrays
    /// as one token per element under the array's name, `null` ignored. At most 64 tokens of at
    /// most 512 bytes, nested at most 8 levels.
    #[serde(default)]
    #[schema(value_type = Object)]
    context: serde_json::Map<String, serde_json::Value>,
    /// The items to rank, each an item key or an action described by its features (an item
    /// outside the catalog); omitted: the whole catalog. In apprentice mode (`serve
    /// --apprentice`) required, in the shop's own order: the first `slate_size` after the
    /// exclusions are served.
    #[serde(default, borrow)]
    candidates: Option<Vec<CandidateIn<'a>>>,
    /// How many items to rank (at most the server's `max_slate`).
    #[schema(minimum = 1)]
    slate_size: usize,
    /// Item keys never to show; each must be in the catalog, as for `candidates`.
    #[serde(default)]
    exclude: Vec<String>,
    /// The shop's id of the visit (its session id; at most 256 bytes, stored only as a keyed
    /// hash). A rank with another id than the user's last slate begins a new visit at once;
    /// without one, a new visit begins when the user's last slate was shown more than the
    /// server's `--visit-gap` (30 minutes) before. The network reads which visit it is, its
    /// step and the items the visit showed.
    #[serde(default)]
    #[schema(min_length = 1, max_length = 256)]
    session_id: Option<String>,
    /// Rank now but count the event only when `POST /v1/events/{event_id}/activate` says its
    /// slate was shown: until then it takes no feedback, and if never activated it closes
    /// without touching the user's state and stays out of the exported log.
    #[serde(default)]
    defer_activation: bool,
    /// Whether each slate entry carries its explanation (default true). Splitting the scores
    /// runs the user tower again, so a client that never shows explanations saves that work
    /// with `false`.
    #[serde(default = "yes")]
    #[schema(default = true)]
    explain: bool,
}

/// The default of a flag that is on unless the request turns it off.
fn yes() -> bool {
    true
}

/// One candidate of a rank request: an item key, or an action given by its features.
///
/// A key is borrowed from the request's body where it can be (a JSON string without escapes):
/// a hundred candidates were a hundred allocations per rank.
pub(super) enum CandidateIn<'a> {
    /// An item of the catalog, by key.
    Key(Cow<'a, str>),
    /// An item described in the request.
    Action(ActionIn),
}

impl CandidateIn<'_> {
    fn key(&self) -> &str {
        match self {
            CandidateIn::Key(k) => k,
            CandidateIn::Action(a) => &a.key,
        }
    }
}

/// An action described by its features, for an item the catalog may not have yet: a new key is
/// added to the catalog (as `PUT /v1/items/{key}` would, within `max_added_items`) and ranked at
/// once, and later requests may name it by key alone; a known key keeps its stored features
/// (change them with `PUT /v1/items/{key}`).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct ActionIn {
    /// The item's key.
    #[schema(min_length = 1, max_length = 256)]
    key: String,
    #[serde(default)]
    features: Option<super::items::FeaturesIn>,
    /// At most 1 KiB.
    #[serde(default)]
    title: Option<String>,
    /// At most 1 KiB.
    #[serde(default)]
    category: Option<String>,
    /// Finite, at least 0.
    #[serde(default)]
    #[schema(minimum = 0)]
    price: Option<f64>,
}

// By hand, so that a string is a key and an object an action, each with its own errors (serde's
// untagged enums say only that nothing matched).
impl<'de: 'a, 'a> Deserialize<'de> for CandidateIn<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Either<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> serde::de::Visitor<'de> for Either<'a> {
            type Value = CandidateIn<'a>;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an item key, or an action object with a `key` and its features")
            }

            fn visit_borrowed_str<E: serde::de::Error>(
                self,
                v: &'de str,
            ) -> Result<CandidateIn<'a>, E> {
                Ok(CandidateIn::Key(Cow::Borrowed(v)))
            }

            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<CandidateIn<'a>, E> {
                Ok(CandidateIn::Key(Cow::Owned(v.to_owned())))
            }

            fn visit_string<E: serde::de::Error>(self, v: String) -> Result<CandidateIn<'a>, E> {
                Ok(CandidateIn::Key(Cow::Owned(v)))
            }

            fn visit_map<M: serde::de::MapAccess<'de>>(
                self,
                map: M,
            ) -> Result<CandidateIn<'a>, M::Error> {
                ActionIn::deserialize(serde::de::value::MapAccessDeserializer::new(map))
                    .map(CandidateIn::Action)
            }
        }
        deserializer.deserialize_any(Either(std::marker::PhantomData))
    }
}

impl utoipa::PartialSchema for CandidateIn<'_> {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ObjectBuilder, OneOfBuilder, Type};
        OneOfBuilder::new()
            .item(
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .description(Some("An item key of the catalog")),
            )
            .item(utoipa::openapi::Ref::from_schema_name("ActionIn"))
            .into()
    }
}

impl ToSchema for CandidateIn<'_> {
    fn schemas(
        schemas: &mut Vec<(
            String,
            utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>,
        )>,
    ) {
        schemas.push((
            "ActionIn".to_owned(),
            <ActionIn as utoipa::PartialSchema>::schema(),
        ));
        <ActionIn as ToSchema>::schemas(schemas);
    }
}

/// Adds the actions of a rank request whose keys the catalog lacks, as `PUT /v1/items/{key}`
/// would, and returns the snapshot that serves them (the given one when none is new).
async fn add_actions(
    state: &AppState,
    candidates: &[CandidateIn<'_>],
    model: Arc<crate::model::ServedModel>,
) -> Result<Arc<crate::model::ServedModel>, ApiError> {
    let mut jobs = Vec::new();
    for (i, candidate) in candidates.iter().enumerate() {
        let CandidateIn::Action(action) = candidate else {
            continue;
        };
        check_key(&format!("candidates[{i}].key"), &action.key)?;
        if model.catalog.id(&action.key).is_some() {
            continue;
        }
        let request = super::items::ItemRequest {
            features: action.features.clone(),
            title: action.title.clone(),
            category: action.category.clone(),
            price: action.price,
            available: None,
        };
        let change = super::items::check(request, &model.catalog, &format!("candidates[{i}]."))?;
        jobs.push(crate::engine::ItemJob {
            key: action.key.clone(),
            change,
        });
    }
    if jobs.is_empty() {
        return Ok(model);
    }
    // Sent together, so the writer adds them in one group.
    let added = jobs
        .into_iter()
        .map(|job| submit(state, move |tx| Job::PutItem(job, tx)));
    futures_util::future::try_join_all(added).await?;
    Ok(state.shared.model())
}

/// Names of the score parts in explanations, in the order of [`ScoreParts`]' fields.
const PART_LABELS: [&str; 6] = [
    "context",
    "past_clicks",
    "past_ignores",
    "adaptation",
    "item",
    "session_flags",
];

/// The additive parts of one item's score: they add up to the score.
#[derive(Serialize, ToSchema)]
pub(super) struct PartsOut {
    /// The user's context and session.
    context: f64,
    /// The items clicked earlier.
    past_clicks: f64,
    /// The items shown earlier and passed over.
    past_ignores: f64,
    /// This user's learned correction (and exploration).
    adaptation: f64,
    /// The item's own appeal (its id, price, popularity and embedding).
    item: f64,
    /// Already shown or clicked in this session.
    session_flags: f64,
}

/// The past click that moved an item's score most.
#[derive(Serialize, ToSchema)]
pub(super) struct TopClickOut<'a> {
    /// The clicked item's key.
    item: &'a str,
    /// Its share of `past_clicks`.
    share: f64,
}

/// Why an item got its score.
#[derive(Serialize, ToSchema)]
pub(super) struct ExplanationOut<'a> {
    /// The two largest parts, in words.
    summary: String,
    parts: PartsOut,
    top_past_click: Option<TopClickOut<'a>>,
}

// Typed rather than built as a `serde_json::Value`: the answer is written on every rank, and a
// tree of maps cost about a tenth of the server's time per request.
/// One slate position of a rank answer.
#[derive(Serialize, ToSchema)]
pub(super) struct SlateEntryOut<'a> {
    /// 0 for the first.
    position: usize,
    /// The item's key.
    item: &'a str,
    /// The score it was ranked by.
    score: f64,
    /// The probability that this item was put at this position (1 for a greedy rank).
    propensity: f64,
    /// Absent when the request asked for no explanations.
    #[serde(skip_serializing_if = "Option::is_none")]
    explanation: Option<ExplanationOut<'a>>,
}

/// A rank answer.
#[derive(Serialize, ToSchema)]
pub(super) struct RankOut<'a> {
    /// The client's `event_id` when it sent one, else 32 hex digits (128 random bits): what
    /// feedback, rewards and activation name.
    event_id: &'a str,
    /// The served model's version.
    model_version: &'a str,
    /// Whether the event waits for its activation before it counts.
    deferred: bool,
    /// Apprentice mode only: the slate the network would have chosen; the answer's slate is
    /// the shop's own ranking (logged with propensity 1, policy `baseline`).
    #[serde(skip_serializing_if = "Option::is_none")]
    learned: Option<Vec<&'a str>>,
    /// The probability of the whole ordered slate, when the explorer knows it.
    slate_propensity: Option<f64>,
    slate: Vec<SlateEntryOut<'a>>,
}

/// One item's explanation: its score parts, and a summary naming the two largest.
fn explanation<'a>(
    parts: &metarec_neural::adjust::ScoreParts,
    catalog: &'a ServedCatalog,
) -> ExplanationOut<'a> {
    let values = [
        parts.context,
        parts.past_clicks,
        parts.past_ignores,
        parts.adaptation,
        parts.item,
        parts.session_flags,
    ];
    let mut order: [usize; 6] = [0, 1, 2, 3, 4, 5];
    order.sort_by(|&a, &b| values[b].abs().total_cmp(&values[a].abs()));
    // Written into one string: building a string per part and joining them was a few
    // microseconds per slate entry, on every explained rank.
    let mut summary = String::with_capacity(96);
    for &k in order.iter().take(2).filter(|&&k| values[k] != 0.0) {
        use std::fmt::Write as _;
        if !summary.is_empty() {
            summary.push_str("; ");
        }
        match PART_LABELS[k] {
            "context" => summary.push_str("your context and session"),
            "past_clicks" => match parts.top_click {
                Some((item, _)) => {
                    let _ = write!(summary, "your clicks (most: {})", catalog.key(item));
                }
                None => summary.push_str("your clicks"),
            },
            "past_ignores" => summary.push_str("items you passed over"),
            "adaptation" => summary.push_str("your feedback so far (and exploration)"),
            "item" => summary.push_str("the item's own appeal (popularity, price, id)"),
            _ => summary.push_str("already shown or clicked in this session"),
        }
        let _ = write!(summary, " {:+.3}", values[k]);
    }
    ExplanationOut {
        summary,
        parts: PartsOut {
            context: parts.context,
            past_clicks: parts.past_clicks,
            past_ignores: parts.past_ignores,
            adaptation: parts.adaptation,
            item: parts.item,
            session_flags: parts.session_flags,
        },
        top_past_click: parts.top_click.map(|(item, share)| TopClickOut {
            item: catalog.key(item),
            share,
        }),
    }
}

/// Looks up item keys: each must be in the catalog (one rule for `candidates` and `exclude`),
/// and, where `rankable`, not retired (a retired item may still be excluded).
fn item_ids<'k>(
    catalog: &ServedCatalog,
    field: &str,
    keys: impl Iterator<Item = &'k str>,
    rankable: bool,
) -> Result<Vec<ItemId>, ApiError> {
    keys.enumerate()
        .map(|(i, key)| {
            let id = catalog.id(key).ok_or_else(|| {
                ApiError::unprocessable(
                    "unknown_item",
                    format!("field `{field}[{i}]`: no item `{key}` in the catalog"),
                )
            })?;
            if rankable && catalog.is_retired(id) {
                return Err(ApiError::unprocessable(
                    "retired_item",
                    format!("field `{field}[{i}]`: item `{key}` is retired"),
                ));
            }
            Ok(id)
        })
        .collect()
}

/// Ranks a slate for a user, stores the decision and answers with the slate.
#[utoipa::path(
    post,
    path = "/v1/rank",
    operation_id = "rank",
    tag = "rank",
    summary = "Rank a slate for a user; the decision is stored for its feedback",
    request_body = RankRequest,
    responses(
        (status = 200, description = "The slate, with scores, propensities and explanations (a retry of a client's event id: the first answer again, with `Idempotent-Replayed: true`)", body = RankOut)
    ),
    security(("api_key" = []))
)]
pub(super) async fn rank(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let caller = authorize(&state, &headers, Scope::Rank)?;
    let bytes = read_json_body(&state, &headers, body, false)
        .await?
        .ok_or_else(|| ApiError::bad_request("bad_json", "the body is empty"))?;
    let request: RankRequest<'_> = parse_json(&bytes)?;
    let config = &state.config;
    check_key("user", &request.user)?;
    if request.slate_size == 0 || request.slate_size > config.max_slate {
        return Err(ApiError::unprocessable(
            "invalid_field",
            format!(
                "field `slate_size`: {} is outside 1..={}",
                request.slate_size, config.max_slate
            ),
        ));
    }
    if let Some(id) = &request.session_id {
        check_key("session_id", id)?;
    }
    if let Some(id) = &request.event_id {
        check_key("event_id", id)?;
    }
    let tokens = super::context::tokens(&request.context)?;
    if config.apprentice && request.candidates.is_none() {
        return Err(ApiError::unprocessable(
            "candidates_needed",
            "field `candidates`: the server is in apprentice mode, which serves the shop's own ranking: list the candidates in that order",
        ));
    }
    for (field, len) in [
        (
            "candidates",
            request.candidates.as_ref().map_or(0, Vec::len),
        ),
        ("exclude", request.exclude.len()),
    ] {
        if len > config.max_candidates {
            return Err(ApiError::unprocessable(
                "invalid_field",
                format!(
                    "field `{field}`: {len} items, at most {} allowed",
                    config.max_candidates
                ),
            ));
        }
    }
    // One snapshot for the whole request: its catalog names exactly the items its network
    // scores, whatever item changes are published meanwhile (it is taken after the request's
    // own new actions are added).
    let model = match &request.candidates {
        Some(list) => add_actions(&state, list, state.shared.model()).await?,
        None => state.shared.model(),
    };
    let catalog = &*model.catalog;
    let excluded: HashSet<ItemId> = item_ids(
        catalog,
        "exclude",
        request.exclude.iter().map(String::as_str),
        false,
    )?
    .into_iter()
    .collect();
    let candidates: Vec<ItemId> = match &request.candidates {
        Some(keys) => {
            let mut seen = HashSet::new();
            item_ids(
                catalog,
                "candidates",
                keys.iter().map(CandidateIn::key),
                true,
            )?
            .into_iter()
            .filter(|id| !excluded.contains(id) && seen.insert(*id))
            .collect()
        }
        // An empty list stands for the whole catalog, so it only needs spelling out when
        // something is excluded or retired (the stored decision then lists what could be
        // shown, as off-policy evaluation needs).
        None if excluded.is_empty() && !catalog.any_retired() => Vec::new(),
        None => catalog
            .rankable()
            .filter(|id| !excluded.contains(id))
            .collect(),
    };
    // An empty list from exclusions or retirements means nothing is left, not the whole
    // catalog.
    if candidates.is_empty()
        && (request.candidates.is_some() || !excluded.is_empty() || catalog.any_retired())
    {
        return Err(ApiError::unprocessable(
            "no_candidates",
            "no candidate is left after the exclusions",
        ));
    }
    let user = config.pseudonyms.pseudonym(&request.user);
    let stored = match &state.shared.reader {
        None => state.shared.user(&user),
        Some(reader) => Some(shared_user(&state.shared, reader, &model, &user).await?),
    };
    // Borrowed, not cloned: a Bayesian state of width 32 is 8 KB of precision matrix, and the
    // decision only reads it.
    let prior;
    let record: &UserRecord = match &stored {
        Some(r) => r,
        None => {
            prior = UserRecord::prior(&model);
            &prior
        }
    };
    let now = engine::now_ms();
    let visit_key = request
        .session_id
        .as_deref()
        .map(|id| config.pseudonyms.visit(id));
    let context = Context {
        user: UserKey(user.clone()),
        timestamp_ms: Some(now),
        features: Vec::new(),
        tokens,
        // The visit, its step and its events, as the simulator the network was trained in
        // gives them: without them the network reads a returning user's earlier passes as this
        // visit's and a visit's first slate as its fiftieth.
        session: record.session_at(now, state.shared.config.visit_gap_ms, visit_key),
        candidates,
    };
    // The rank's random stream (Thompson draws, exploration): the seed, the user and where
    // their slates stand (visit and step), so the same requests draw the same slates in any
    // interleaving with other users' and across restarts (the visit and step are stored), a
    // user's next slate draws afresh, and a rank never shown leaves the next one's draw as it
    // was. Without the secret behind the pseudonym nobody can predict a draw.
    let stream = u64::from(context.session.session) << 32 | u64::from(context.session.step);
    let mut rng = rng_for(config.seed ^ stable_hash(&user), stream);
    let decided = model.adjuster.decide(
        &record.state,
        &context,
        request.slate_size,
        config.explore,
        &mut rng,
    );
    if decided.choice.items.is_empty() {
        return Err(ApiError::unprocessable(
            "no_candidates",
            "nothing to rank: the catalog is empty",
        ));
    }
    let client_id = request.event_id.is_some();
    let event_id = match request.event_id {
        Some(id) => id,
        None => new_event_id()?,
    };
    let policy = match config.explore {
        _ if config.apprentice => Cow::Borrowed("baseline"),
        Exploration::Greedy => Cow::Borrowed("adjusted"),
        other => Cow::Owned(format!("adjusted/{other}")),
    };
    // In apprentice mode the shop's own ranking is served (and logged, with the certainty of
    // a deterministic policy) while the network's choice is only reported beside it.
    let (choice, learned) = if config.apprentice {
        let k = request.slate_size.min(context.candidates.len());
        let baseline = metarec_core::SlateChoice {
            items: context.candidates[..k].to_vec(),
            propensities: vec![1.0; k],
            slate_propensity: Some(1.0),
        };
        let agrees = baseline.items.first() == decided.choice.items.first();
        state.shared.metrics.apprentice(agrees);
        (baseline, Some(decided.choice.items))
    } else {
        (decided.choice, None)
    };
    let decision = decision_from_choice(
        choice,
        EventId(event_id.clone()),
        &policy,
        model.version.clone(),
    )
    .map_err(|e| ApiError::internal(format!("invalid decision: {e}")))?;
    // Apprentice mode needs the parts for the scores of the shop's items even unexplained.
    let explained = if request.explain || learned.is_some() {
        model
            .adjuster
            .explain_slate(&context, &decided.delta, decision.slate.items())
    } else {
        Vec::new()
    };
    let scores: Vec<f64> = match learned {
        // The network's scores of the shop's items, as it would have ranked them.
        Some(_) => explained.iter().map(|p| p.total()).collect(),
        None => decided.scores,
    };
    let slate: Vec<SlateEntryOut<'_>> = decision
        .slate
        .items()
        .iter()
        .enumerate()
        .map(|(k, &item)| SlateEntryOut {
            position: k,
            item: catalog.key(item),
            score: scores[k],
            propensity: decision.propensities[k],
            explanation: explained
                .get(k)
                .filter(|_| request.explain)
                .map(|parts| explanation(parts, catalog)),
        })
        .collect();
    // The answer is serialised here, while the slate still borrows the decision that the
    // writer thread is about to take.
    // Sized for the answer at once, rather than grown from empty by doubling.
    let mut body = Vec::with_capacity(256 + slate.len() * if request.explain { 448 } else { 96 });
    serde_json::to_writer(
        &mut body,
        &RankOut {
            event_id: &event_id,
            model_version: &model.version,
            deferred: request.defer_activation,
            learned: learned
                .as_ref()
                .map(|items| items.iter().map(|&i| catalog.key(i)).collect()),
            slate_propensity: decision.slate_propensity,
            slate,
        },
    )
    .map_err(|e| ApiError::internal(format!("cannot encode the answer: {e}")))?;
    let len = decision.slate.len();
    let row = DecisionRow {
        event_id: event_id.clone(),
        user,
        owner: caller.owner(&state),
        created_ms: now,
        interaction: Interaction {
            context,
            decision,
            feedback: Feedback::none(len),
        },
        resolved: false,
        reward: None,
        active: !request.defer_activation,
        // Only an id the client chose can be retried, so only its answer is kept.
        answer: if client_id {
            Some(
                String::from_utf8(body.clone())
                    .map_err(|e| ApiError::internal(format!("the answer is not UTF-8: {e}")))?,
            )
        } else {
            None
        },
    };
    let json = (
        axum::http::header::CONTENT_TYPE,
        axum::http::HeaderValue::from_static("application/json"),
    );
    match submit(&state, |tx| Job::Decision(Box::new(row), visit_key, tx)).await? {
        DecisionAck::Stored => {
            if request.defer_activation {
                state.shared.metrics.deferred();
            } else {
                state.shared.metrics.decision(len);
            }
            Ok(([json], body).into_response())
        }
        // A retry: the first answer again, byte for byte, marked as a replay.
        DecisionAck::Replay(first) => Ok((
            [
                json,
                (
                    axum::http::HeaderName::from_static("idempotent-replayed"),
                    axum::http::HeaderValue::from_static("true"),
                ),
            ],
            first,
        )
            .into_response()),
    }
}

/// A new event id: 128 random bits from the operating system, in hex. Nothing in it tells the
/// boot time, the request count or any other event's id.
fn new_event_id() -> Result<String, ApiError> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes)
        .map_err(|e| ApiError::internal(format!("no randomness for an event id: {e}")))?;
    let mut id = String::with_capacity(32);
    for b in bytes {
        use std::fmt::Write as _;
        let _ = write!(id, "{b:02x}");
    }
    Ok(id)
}

/// The user's state in a database that several servers share: the copy in this server's memory
/// when the database holds the same version, else the database's (which another server's
/// feedback changed), kept in memory for the next rank.
async fn shared_user(
    shared: &crate::engine::Shared,
    reader: &crate::store::UserReader,
    model: &crate::model::ServedModel,
    user: &str,
) -> Result<Arc<UserRecord>, ApiError> {
    let cached = shared.user(user);
    let known = cached.as_ref().map_or(0, |r| r.version);
    let stored = shared
        .metrics
        .time_store_async(crate::metrics::StoreOp::ReadUser, reader.user(user, known))
        .await
        .map_err(|e| ApiError::unavailable(format!("the user's state could not be read: {e}")))?;
    let record = match (stored, cached) {
        (None, _) => return Ok(Arc::new(UserRecord::prior(model))),
        (Some((version, None)), Some(r)) if r.version == version => return Ok(r),
        (Some((version, Some(text))), _) => Arc::new(crate::engine::parsed(model, version, &text)),
        // Unchanged from a version this server no longer holds (its writer replaced the
        // entry meanwhile): read it whole.
        (Some(_), _) => match reader.user(user, 0).await.map_err(|e| {
            ApiError::unavailable(format!("the user's state could not be read: {e}"))
        })? {
            Some((version, Some(text))) => Arc::new(crate::engine::parsed(model, version, &text)),
            _ => return Ok(Arc::new(UserRecord::prior(model))),
        },
    };
    let mut users = shared.users.write().unwrap_or_else(|e| e.into_inner());
    // A newer version published meanwhile by this server's writer is kept.
    match users.get(user) {
        Some(r) if r.version >= record.version => {}
        _ => {
            users.insert(user.to_owned(), record.clone());
        }
    }
    Ok(record)
}
