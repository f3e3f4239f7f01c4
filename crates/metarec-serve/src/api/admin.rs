//! Everything but rank and feedback: [`forget`] (`DELETE /v1/users/{key}`), [`reload`] (`POST
//! /v1/admin/reload`, with its [`ReloadRequest`]), [`health`] (`GET /healthz`), [`metrics`]
//! (`GET /metrics`), [`openapi`] (`GET /openapi.json`) and the JSON fallbacks [`not_found`]
//! (404) and [`method_not_allowed`] (405).

use super::request::{authorize, path_key, read_json, submit};
use super::server::AppState;
use crate::auth::Scope;
use crate::engine::Job;
use crate::error::ApiError;
use crate::model::ServedModel;
use axum::body::Body;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::sync::Arc;
use utoipa::ToSchema;

/// What a forget did.
#[derive(Serialize, ToSchema)]
pub(super) struct ForgetOut {
    forgotten: bool,
    /// The user's decisions deleted (with their feedback).
    events_deleted: u64,
    /// Whether the write-ahead log was truncated too, so no file holds the user's rows.
    purged_from_log: bool,
}

/// A reload's outcome.
#[derive(Serialize, ToSchema)]
pub(super) struct ReloadOut {
    /// The version now served.
    model_version: String,
    /// The version it replaced.
    previous_version: String,
}

/// The server is up.
#[derive(Serialize, ToSchema)]
pub(super) struct HealthOut {
    /// Always `ok`.
    status: &'static str,
    /// The served model's version.
    model_version: String,
}

/// Forgets a user: their state, decisions and feedback, from the database and its log.
#[utoipa::path(
    delete,
    path = "/v1/users/{key}",
    operation_id = "forget_user",
    tag = "admin",
    summary = "Forget a user: state, decisions and feedback, from the database and its log",
    params(("key" = String, Path, description = "The shop's user key")),
    responses(
        (status = 200, description = "Forgotten", body = ForgetOut)
    ),
    security(("api_key" = []))
)]
pub(super) async fn forget(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    key: Result<UrlPath<String>, PathRejection>,
) -> Result<Response, ApiError> {
    authorize(&state, &headers, Scope::Admin)?;
    let key = path_key("user key", "key", key)?;
    let user = state.config.pseudonyms.pseudonym(&key);
    let ack = submit(&state, |tx| Job::Forget(user, tx)).await?;
    Ok(axum::Json(ForgetOut {
        forgotten: true,
        events_deleted: ack.events_deleted,
        purged_from_log: ack.purged,
    })
    .into_response())
}

/// A reload request (the body may be empty).
#[derive(Deserialize, Default, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct ReloadRequest {
    /// The model directory to serve; omitted: the configured one, read again.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    model: Option<PathBuf>,
}

/// Verifies a model directory and has the writer swap it in if its catalog (the bundle's, by
/// fingerprint), adjuster kind and head width match the served model's.
#[utoipa::path(
    post,
    path = "/v1/admin/reload",
    operation_id = "reload_model",
    tag = "admin",
    summary = "Verify a model directory (checksums, catalog, adjuster) and serve it; a rejected one leaves the old serving",
    request_body(content = Option<ReloadRequest>, description = "Optional; an empty body reloads the configured directory"),
    responses(
        (status = 200, description = "Swapped in", body = ReloadOut)
    ),
    security(("api_key" = []))
)]
pub(super) async fn reload(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    authorize(&state, &headers, Scope::Admin)?;
    let request: ReloadRequest = read_json(&state, &headers, body, true)
        .await?
        .unwrap_or_default();
    let dir = request
        .model
        .unwrap_or_else(|| state.config.model_dir.clone());
    // One reload at a time, so two swaps cannot interleave their checks.
    let _guard = state.reload.lock().await;
    let loaded = tokio::task::spawn_blocking(move || ServedModel::load(&dir))
        .await
        .map_err(|e| ApiError::internal(format!("model loading panicked: {e}")))?;
    let rejected = |message: String| {
        ApiError::unprocessable(
            "model_rejected",
            format!("{message}; the previous model keeps serving"),
        )
    };
    let model = loaded.map_err(|e| rejected(e.to_string()))?;
    let previous = state.shared.model();
    if model.catalog_fingerprint != previous.catalog_fingerprint {
        return Err(rejected(format!(
            "the model ranks another catalog (fingerprint {}, the served one {}); restart the server to serve another catalog",
            model.catalog_fingerprint, previous.catalog_fingerprint
        )));
    }
    if model.adjuster.kind() != previous.adjuster.kind() {
        return Err(rejected(format!(
            "adjuster kind `{}` differs from the served model's `{}`, so stored user states would not fit; restart the server to serve another kind",
            model.adjuster.kind(),
            previous.adjuster.kind()
        )));
    }
    if model.embed() != previous.embed() {
        return Err(rejected(format!(
            "head width {} differs from the served model's {}, so stored user states would not fit",
            model.embed(),
            previous.embed()
        )));
    }
    let version = model.version.clone();
    // The writer swaps it in, with the item changes made over the API: it alone changes the
    // served catalog, so an item change cannot slip in between this model's items and its
    // swap and be lost from memory.
    let replaced = submit(&state, |tx| Job::Swap(Box::new(model), tx)).await?;
    Ok(axum::Json(ReloadOut {
        model_version: version,
        previous_version: replaced,
    })
    .into_response())
}

/// Answers that the server is up, with the served model's version; needs no key.
#[utoipa::path(
    get,
    path = "/healthz",
    operation_id = "health",
    tag = "admin",
    summary = "Liveness, with the served model's version (no API key needed)",
    responses((status = 200, description = "Up", body = HealthOut)),
    security(())
)]
pub(super) async fn health(State(state): State<Arc<AppState>>) -> Response {
    axum::Json(HealthOut {
        status: "ok",
        model_version: state.shared.model().version.clone(),
    })
    .into_response()
}

/// The Prometheus text of the server's metrics.
#[utoipa::path(
    get,
    path = "/metrics",
    operation_id = "metrics",
    tag = "admin",
    summary = "Prometheus text: request counts and latencies (methods and routes from a closed set), decisions, feedback, rewards, activations, apprentice agreement, CTR, store latency (group commits, shared user reads), write-ahead log size, truncations and checkpoint lag, events past their reward window, and the process's CPU time, memory and open files",
    responses(
        (status = 200, description = "The metrics", body = String, content_type = "text/plain")
    ),
    security(("api_key" = []))
)]
pub(super) async fn metrics(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    authorize(&state, &headers, Scope::Rank)?;
    let users = state
        .shared
        .users
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .len();
    let text = state
        .shared
        .metrics
        .render(&state.shared.model().version, users);
    Ok((
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4"),
        )],
        text,
    )
        .into_response())
}

/// The OpenAPI document.
#[utoipa::path(
    get,
    path = "/openapi.json",
    operation_id = "openapi",
    tag = "admin",
    summary = "This document",
    responses(
        (status = 200, description = "The OpenAPI 3.1 document of every route", body = Object)
    ),
    security(("api_key" = []))
)]
pub(super) async fn openapi(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    authorize(&state, &headers, Scope::Rank)?;
    Ok((
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        super::openapi_document(),
    )
        .into_response())
}

/// The JSON 404 of a path no route matches, counted under the route `unmatched`.
pub(super) async fn not_found(
    State(state): State<Arc<AppState>>,
    method: Method,
    uri: axum::http::Uri,
) -> ApiError {
    state
        .shared
        .metrics
        .request(method.as_str(), "unmatched", 404, 0.0);
    ApiError::not_found(
        "no_route",
        format!("no route {method} {}; see /openapi.json", uri.path()),
    )
}

/// The JSON 405 of a route asked with a method it does not take.
pub(super) async fn method_not_allowed(method: Method, uri: axum::http::Uri) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!(
            "{} does not take {}; see /openapi.json",
            uri.path(),
            crate::metrics::method_label(method.as_str())
        ),
    )
}
