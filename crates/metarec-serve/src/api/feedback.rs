//! What a shop tells about an event after its rank, each checked and handed to the writer
//! thread: `POST /v1/feedback` ([`feedback`]: a [`FeedbackRequest`], an event, a position or
//! item, a [`Kind`] and the revenue of a purchase), `POST /v1/reward` ([`reward`]: a
//! [`RewardRequest`], a numeric reward for the whole event) and `POST
//! /v1/events/{event_id}/activate` ([`activate`]: the slate of a rank with deferred activation
//! was shown).

use super::request::{authorize, check_key, path_key, read_json, submit};
use super::server::AppState;
use crate::auth::Scope;
use crate::engine::{ActivateAck, ActivateJob, FeedbackAck, FeedbackJob, Job, Target};
use crate::error::ApiError;
use crate::store::FeedbackKind;
use axum::body::Body;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use utoipa::ToSchema;

/// What the user did: a click, or a purchase with its revenue.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub(super) enum Kind {
    Click,
    Purchase,
}

/// What a user did with an item of a ranked slate.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct FeedbackRequest {
    /// The event, as the rank answered it.
    #[schema(min_length = 1, max_length = 256)]
    event_id: String,
    /// The slate position (0 for the first); give this or `item`.
    #[serde(default)]
    position: Option<u32>,
    /// The item's key; give this or `position`.
    #[serde(default)]
    #[schema(min_length = 1, max_length = 256)]
    item: Option<String>,
    kind: Kind,
    /// Required for a purchase (finite, at least 0), absent for a click.
    #[serde(default)]
    #[schema(minimum = 0)]
    revenue: Option<f64>,
}

/// A numeric reward for a whole event.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct RewardRequest {
    /// The event, as the rank answered it.
    #[schema(min_length = 1, max_length = 256)]
    event_id: String,
    /// Any finite number: the event's reward (stored as `decisions.reward`), in place of the
    /// one the reward function would compute from its clicks and purchases.
    value: f64,
}

/// The answer to a reward.
#[derive(Serialize, ToSchema)]
pub(super) struct RewardOut {
    event_id: String,
    value: f64,
    /// True when the event already had a reward: the first one counts, this one changed
    /// nothing.
    duplicate: bool,
}

/// Records a numeric reward for an event the caller's key ranked: the event's reward, in place
/// of the one the reward function would compute from its clicks and purchases. The first
/// reward counts; a later one for the same event is acknowledged as a duplicate.
#[utoipa::path(
    post,
    path = "/v1/reward",
    operation_id = "reward",
    tag = "rank",
    summary = "Report a numeric reward for a ranked event (the first one counts)",
    request_body = RewardRequest,
    responses(
        (status = 200, description = "Acknowledged (`duplicate`: the event already had a reward)", body = RewardOut)
    ),
    security(("api_key" = []))
)]
pub(super) async fn reward(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let caller = authorize(&state, &headers, Scope::Rank)?;
    let request: RewardRequest = read_json(&state, &headers, body, false)
        .await?
        .ok_or_else(|| ApiError::bad_request("bad_json", "the body is empty"))?;
    check_key("event_id", &request.event_id)?;
    if !request.value.is_finite() {
        return Err(ApiError::unprocessable(
            "invalid_field",
            format!("field `value`: {} must be finite", request.value),
        ));
    }
    let job = FeedbackJob {
        event_id: request.event_id,
        owner: caller.owner(&state),
        target: Target::Position(0),
        kind: FeedbackKind::Reward,
        revenue: request.value,
    };
    let ack = submit(&state, |tx| Job::Feedback(job, tx)).await?;
    Ok(axum::Json(RewardOut {
        event_id: ack.event_id,
        value: request.value,
        duplicate: ack.duplicate,
    })
    .into_response())
}

/// Activates an event ranked with `defer_activation`: its slate was shown, so from now on it
/// takes feedback, and at the close of its window it counts for the user and the log.
/// Activating an active event again changes nothing.
#[utoipa::path(
    post,
    path = "/v1/events/{event_id}/activate",
    operation_id = "activate",
    tag = "rank",
    summary = "Activate an event ranked with defer_activation: its slate was shown",
    params(("event_id" = String, Path, description = "The event, as the rank answered it")),
    responses(
        (status = 200, description = "Activated, or already active", body = ActivateAck)
    ),
    security(("api_key" = []))
)]
pub(super) async fn activate(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    event_id: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let caller = authorize(&state, &headers, Scope::Rank)?;
    let event_id = path_key("event id", "event_id", event_id)?;
    let job = ActivateJob {
        event_id,
        owner: caller.owner(&state),
    };
    let ack = submit(&state, |tx| Job::Activate(job, tx)).await?;
    Ok(axum::Json(ack).into_response())
}

/// Records a click or purchase on a shown item of an event the caller's key ranked.
#[utoipa::path(
    post,
    path = "/v1/feedback",
    operation_id = "feedback",
    tag = "rank",
    summary = "Report a click or purchase on a ranked slate (idempotent per event, position and kind)",
    request_body = FeedbackRequest,
    responses(
        (status = 200, description = "Acknowledged (`duplicate`: it was already recorded)", body = FeedbackAck)
    ),
    security(("api_key" = []))
)]
pub(super) async fn feedback(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let caller = authorize(&state, &headers, Scope::Rank)?;
    let request: FeedbackRequest = read_json(&state, &headers, body, false)
        .await?
        .ok_or_else(|| ApiError::bad_request("bad_json", "the body is empty"))?;
    check_key("event_id", &request.event_id)?;
    let target = match (request.position, request.item) {
        (Some(p), None) => Target::Position(p),
        (None, Some(item)) => {
            check_key("item", &item)?;
            Target::Item(item)
        }
        _ => {
            return Err(ApiError::unprocessable(
                "invalid_field",
                "give exactly one of the fields `position` and `item`",
            ));
        }
    };
    let (kind, revenue) = match (request.kind, request.revenue) {
        (Kind::Click, None) => (FeedbackKind::Click, 0.0),
        (Kind::Click, Some(_)) => {
            return Err(ApiError::unprocessable(
                "invalid_field",
                "field `revenue`: only a purchase carries revenue",
            ));
        }
        (Kind::Purchase, Some(r)) if r.is_finite() && r >= 0.0 => (FeedbackKind::Purchase, r),
        (Kind::Purchase, Some(r)) => {
            return Err(ApiError::unprocessable(
                "invalid_field",
                format!("field `revenue`: {r} must be finite and non-negative"),
            ));
        }
        (Kind::Purchase, None) => {
            return Err(ApiError::unprocessable(
                "invalid_field",
                "field `revenue`: a purchase needs its revenue",
            ));
        }
    };
    let job = FeedbackJob {
        event_id: request.event_id,
        owner: caller.owner(&state),
        target,
        kind,
        revenue,
    };
    let ack = submit(&state, |tx| Job::Feedback(job, tx)).await?;
    Ok(axum::Json(ack).into_response())
}
