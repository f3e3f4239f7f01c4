//! `/v1/items/{key}`: [`put_item`] (add or update an item from its features, admin),
//! [`retire_item`] (`DELETE`: never rank it again, admin) and [`get_item`] (the item as served,
//! scope rank); the request, [`ItemRequest`] with its [`FeaturesIn`], is checked here into an
//! [`ItemChange`] before anything reaches the writer.

use super::request::{authorize, path_key, read_json, submit};
use super::server::AppState;
use crate::auth::Scope;
use crate::engine::{ItemAck, ItemJob, Job};
use crate::error::ApiError;
use crate::items::{ItemChange, MAX_TEXT_BYTES, ServedCatalog};
use axum::body::Body;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde::de::{Deserializer, MapAccess, SeqAccess, Visitor};
use std::sync::Arc;

/// An item's features as received: by name (`{"price_z": 0.3}`) or every column in the
/// catalog's order (`[0.3, -1.2]`).
enum FeaturesIn {
    ByName(Vec<(String, f64)>),
    InOrder(Vec<f64>),
}

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

/// An item change, as received.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ItemRequest {
    #[serde(default)]
    features: Option<FeaturesIn>,
    #[serde(default)]
    title: Option<String>,
    #[serde(default)]
    category: Option<String>,
    #[serde(default)]
    price: Option<f64>,
    #[serde(default)]
    available: Option<bool>,
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

/// Checks a request against the catalog's feature columns and the value rules.
fn check(request: ItemRequest, catalog: &ServedCatalog) -> Result<ItemChange, ApiError> {
    let names = catalog.feature_names();
    let features = match request.features {
        None => Vec::new(),
        Some(FeaturesIn::ByName(values)) => {
            let mut seen = vec![false; names.len()];
            let mut out = Vec::with_capacity(values.len());
            for (name, value) in values {
                let field = format!("features.{name}");
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
                    "field `features`: {} values, but the catalog has {} features ({}); give every one in order, or name them in an object",
                    values.len(),
                    names.len(),
                    names_for_message(names)
                )));
            }
            values
                .into_iter()
                .enumerate()
                .map(|(column, value)| {
                    Ok((column, finite_f32(&format!("features[{column}]"), value)?))
                })
                .collect::<Result<_, ApiError>>()?
        }
    };
    for (field, text) in [("title", &request.title), ("category", &request.category)] {
        if let Some(t) = text {
            if t.len() > MAX_TEXT_BYTES {
                return Err(invalid(format!(
                    "field `{field}`: {} bytes, at most {MAX_TEXT_BYTES}",
                    t.len()
                )));
            }
        }
    }
    let price = match request.price {
        None => None,
        Some(p) if p >= 0.0 => Some(finite_f32("price", p)?),
        Some(p) => {
            return Err(invalid(format!(
                "field `price`: {p} must be finite and non-negative"
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
    let change = check(request, &state.shared.model().catalog)?;
    let ack = submit(&state, |tx| Job::PutItem(ItemJob { key, change }, tx)).await?;
    Ok(item_answer(&state, &ack))
}

/// Retires an item: it is never ranked again, but stays known, so feedback on earlier events
/// and stored histories still resolve it. Answers with the item as stored.
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
