//! `/v1/items/{key}`: [`put_item`] (add or update an item from its features, admin),
//! [`retire_item`] (`DELETE`: never rank it again, admin) and [`get_item`] (the item as served,
//! scope rank); the request, [`ItemRequest`] with its [`FeaturesIn`], is checked here into an
//! [`ItemChange`] before anything reaches the writer.

use super::request::{authorize, path_key, read_json, submit};
use super::server::AppState;
use crate::auth::Scope;
use crate::engine::{ItemAck, ItemJob, Job};
use crate::error::ApiError;
use crate::items::{ItemChange, ItemOut, MAX_TEXT_BYTES, ServedCatalog};
use axum::body::Body;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde::de::{Deserializer, MapAccess, SeqAccess, Visitor};
use std::sync::Arc;
use utoipa::ToSchema;

/// An item's features as received: by name (`{"price_z": 0.3}`) or every column in the
/// catalog's order (`[0.3, -1.2]`).
#[derive(Clone)]
pub(super) enum FeaturesIn {
    ByName(Vec<(String, f64)>),
    InOrder(Vec<f64>),
}

// Written by hand, as its `Deserialize` is: either shape is one field.
impl utoipa::PartialSchema for FeaturesIn {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, OneOfBuilder, Type};
        let number = || ObjectBuilder::new().schema_type(Type::Number);
        OneOfBuilder::new()
            .item(
                ObjectBuilder::new()
                    .schema_type(Type::Object)
                    .additional_properties(Some(number())),
            )
            .item(ArrayBuilder::new().items(number()))
            .description(Some(
                "Feature values, finite as 32-bit floats: by column name (`{\"price_z\": 0.3}`), or every column in the catalog's order (`[0.3, -1.2]`).",
            ))
            .into()
    }
}

impl ToSchema for FeaturesIn {}

impl<'de> Deserialize<'de> for FeaturesIn {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Either;
        impl<'de> Visitor<'de> for Either {
            type Value = FeaturesIn;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an object of feature names to numbers, or an array of numbers")
            }

            fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<FeaturesIn, M::Error> {
                let mut values = Vec::new();
                while let Some(name) = map.next_key::<String>()? {
                    let value = map.next_value::<f64>()?;
                    values.push((name, value));
                }
                Ok(FeaturesIn::ByName(values))
            }

            fn visit_seq<S: SeqAccess<'de>>(self, mut seq: S) -> Result<FeaturesIn, S::Error> {
                let mut values = Vec::new();
                while let Some(v) = seq.next_element::<f64>()? {
                    values.push(v);
                }
                Ok(FeaturesIn::InOrder(values))
            }
        }
        deserializer.deserialize_any(Either)
    }
}

/// An item to add, or the fields of an item to change: what is left out keeps its value (a
/// new item takes the catalog's column means for missing features).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct ItemRequest {
    #[serde(default)]
    pub(super) features: Option<FeaturesIn>,
    /// At most 1 KiB.
    #[serde(default)]
    pub(super) title: Option<String>,
    /// At most 1 KiB.
    #[serde(default)]
    pub(super) category: Option<String>,
    /// Finite, at least 0.
    #[serde(default)]
    #[schema(minimum = 0)]
    pub(super) price: Option<f64>,
    /// False retires the item, true brings it back.
    #[serde(default)]
    pub(super) available: Option<bool>,
}

/// 422 for a field.
fn invalid(message: String) -> ApiError {
    ApiError::unprocessable("invalid_field", message)
}

/// A number as the 32-bit float the catalog stores, which must be finite.
fn finite_f32(field: &str, value: f64) -> Result<f32, ApiError> {
    let v = value as f32;
    if v.is_finite() {
        Ok(v)
    } else {
        Err(invalid(format!(
            "field `{field}`: {value} is not a finite 32-bit number"
        )))
    }
}

/// The catalog's feature names for a message, the first twenty of them.
fn names_for_message(names: &[String]) -> String {
    let mut shown: Vec<&str> = names.iter().take(20).map(String::as_str).collect();
    if names.len() > 20 {
        shown.push("...");
    }
    shown.join(", ")
}

/// Checks a request against the catalog's feature columns and the value rules; messages name
/// fields under `prefix` (empty for a `PUT` body, `candidates[2].` for an action in a rank).
pub(super) fn check(
    request: ItemRequest,
    catalog: &ServedCatalog,
    prefix: &str,
) -> Result<ItemChange, ApiError> {
    let names = catalog.feature_names();
    let features = match request.features {
        None => Vec::new(),
        Some(FeaturesIn::ByName(values)) => {
            let mut seen = vec![false; names.len()];
            let mut out = Vec::with_capacity(values.len());
            for (name, value) in values {
                let field = format!("{prefix}features.{name}");
                let Some(column) = names.iter().position(|n| *n == name) else {
                    return Err(invalid(format!(
                        "field `{field}`: no feature `{name}` in the catalog; its features are {}",
                        names_for_message(names)
                    )));
                };
                if std::mem::replace(&mut seen[column], true) {
                    return Err(invalid(format!("field `{field}`: given twice")));
                }
                out.push((column, finite_f32(&field, value)?));
            }
            out
        }
        Some(FeaturesIn::InOrder(values)) => {
            if values.len() != names.len() {
                return Err(invalid(format!(
                    "field `{prefix}features`: {} values, but the catalog has {} features ({}); give every one in order, or name them in an object",
                    values.len(),
                    names.len(),
                    names_for_message(names)
                )));
            }
            values
                .into_iter()
                .enumerate()
                .map(|(column, value)| {
                    Ok((
                        column,
                        finite_f32(&format!("{prefix}features[{column}]"), value)?,
                    ))
                })
                .collect::<Result<_, ApiError>>()?
        }
    };
    for (field, text) in [("title", &request.title), ("category", &request.category)] {
        if let Some(t) = text {
            if t.len() > MAX_TEXT_BYTES {
                return Err(invalid(format!(
                    "field `{prefix}{field}`: {} bytes, at most {MAX_TEXT_BYTES}",
                    t.len()
                )));
            }
        }
    }
    let price = match request.price {
        None => None,
        Some(p) if p >= 0.0 => Some(finite_f32(&format!("{prefix}price"), p)?),
        Some(p) => {
            return Err(invalid(format!(
                "field `{prefix}price`: {p} must be finite and non-negative"
            )));
        }
    };
    Ok(ItemChange {
        features,
        title: request.title,
        category: request.category,
        price,
        available: request.available,
    })
}

/// The answer with an item: the item as stored, with 201 when it was created.
fn item_answer(state: &AppState, ack: &ItemAck) -> Response {
    let model = state.shared.model();
    let status = if ack.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let body = ack
        .record
        .to_answer(model.catalog.feature_names(), ack.added);
    (status, axum::Json(body)).into_response()
}

/// Adds an item, or updates one, from the body's features and fields; answers with the item as
/// stored (201 when it is new).
#[utoipa::path(
    put,
    path = "/v1/items/{key}",
    operation_id = "put_item",
    tag = "items",
    summary = "Add an item, or update one, from its features; a new item is ranked at once",
    params(("key" = String, Path, description = "The item's key")),
    request_body = ItemRequest,
    responses(
        (status = 200, description = "Updated", body = ItemOut),
        (status = 201, description = "Added", body = ItemOut)
    ),
    security(("api_key" = []))
)]
pub(super) async fn put_item(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    key: Result<UrlPath<String>, PathRejection>,
    body: Body,
) -> Result<Response, ApiError> {
    authorize(&state, &headers, Scope::Admin)?;
    let key = path_key("item key", "key", key)?;
    let request: ItemRequest = read_json(&state, &headers, body, false)
        .await?
        .ok_or_else(|| ApiError::bad_request("bad_json", "the body is empty"))?;
    let change = check(request, &state.shared.model().catalog, "")?;
    let ack = submit(&state, |tx| Job::PutItem(ItemJob { key, change }, tx)).await?;
    Ok(item_answer(&state, &ack))
}

/// Retires an item: it is never ranked again, but stays known, so feedback on earlier events
/// and stored histories still resolve it. Answers with the item as stored.
#[utoipa::path(
    delete,
    path = "/v1/items/{key}",
    operation_id = "retire_item",
    tag = "items",
    summary = "Retire an item: never ranked again, still known to feedback and histories",
    params(("key" = String, Path, description = "The item's key")),
    responses(
        (status = 200, description = "Retired (or already retired)", body = ItemOut)
    ),
    security(("api_key" = []))
)]
pub(super) async fn retire_item(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    key: Result<UrlPath<String>, PathRejection>,
) -> Result<Response, ApiError> {
    authorize(&state, &headers, Scope::Admin)?;
    let key = path_key("item key", "key", key)?;
    let ack = submit(&state, |tx| Job::RetireItem(key, tx)).await?;
    Ok(item_answer(&state, &ack))
}

/// The item as served.
#[utoipa::path(
    get,
    path = "/v1/items/{key}",
    operation_id = "get_item",
    tag = "items",
    summary = "The item as served",
    params(("key" = String, Path, description = "The item's key")),
    responses(
        (status = 200, description = "The item", body = ItemOut)
    ),
    security(("api_key" = []))
)]
pub(super) async fn get_item(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    key: Result<UrlPath<String>, PathRejection>,
) -> Result<Response, ApiError> {
    authorize(&state, &headers, Scope::Rank)?;
    let key = path_key("item key", "key", key)?;
    let model = state.shared.model();
    let catalog = &model.catalog;
    let found = catalog
        .id(&key)
        .and_then(|id| catalog.record(id).map(|r| (id, r)));
    let Some((id, record)) = found else {
        return Err(ApiError::not_found(
            "unknown_item",
            format!("no item `{key}` in the catalog"),
        ));
    };
    Ok(axum::Json(record.to_answer(catalog.feature_names(), catalog.is_added(id))).into_response())
}
