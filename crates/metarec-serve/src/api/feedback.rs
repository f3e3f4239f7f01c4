//! What a shop tells about an event after its rank, each checked and handed to the writer
//! thread: `POST /v1/feedback` ([`feedback`]: a [`FeedbackRequest`], an event, a position or
//! item, a [`Kind`] and the revenue of a purchase), `POST /v1/reward` ([`reward`]: a
//! [`RewardRequest`], a numeric reward for the whole event) and `POST
//! /v1/events/{event_id}/activate` ([`activate`]: the slate of a rank with deferred activation
//! was shown).

use super::request::{authorize, check_key, path_key, read_json, submit};
use super::server::AppState;
use crate::auth::Scope;
use crate::engine::{ActivateJob, FeedbackJob, Job, Target};
use crate::error::ApiError;
use crate::store::FeedbackKind;
use axum::body::Body;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;
use std::sync::Arc;

/// The kind of a feedback, as received.
#[derive(Deserialize)]
#[serde(rename_all = "lowercase")]
enum Kind {
    Click,
    Purchase,
}

/// A feedback request, as received.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FeedbackRequest {
    event_id: String,
    #[serde(default)]
    position: Option<u32>,
    #[serde(default)]
    item: Option<String>,
    kind: Kind,
    #[serde(default)]
    revenue: Option<f64>,
}

/// A reward request, as received.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RewardRequest {
    event_id: String,
    value: f64,
}

/// Records a numeric reward for an event the caller's key ranked: the event's reward, in place
/// of the one the reward function would compute from its clicks and purchases. The first
/// reward counts; a later one for the same event is acknowledged as a duplicate.
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
    Ok(axum::Json(json!({
        "event_id": ack.event_id,
        "value": request.value,
        "duplicate": ack.duplicate,
    }))
    .into_response())
}

/// Activates an event ranked with `defer_activation`: its slate was shown, so from now on it
/// takes feedback, and at the close of its window it counts for the user and the log.
/// Activating an active event again changes nothing.
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
    Ok(axum::Json(json!({
        "event_id": ack.event_id,
        "position": ack.position,
        "kind": ack.kind,
        "duplicate": ack.duplicate,
    }))
    .into_response())
}
