//! What every handler does before its own work: [`authorize`] (the API key and its scope,
//! giving a [`Caller`]), [`read_json`] (the content type, the body limit and timeout, a JSON
//! object parsed with the field path in its errors), [`check_key`] (the one rule for user, event
//! and item keys, [`MAX_KEY_BYTES`]), [`path_key`] (a key from the path) and [`submit`] (a job to the writer thread and its answer).

use super::server::AppState;
use crate::auth::Scope;
use crate::engine::Job;
use crate::error::ApiError;
use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, StatusCode, header};
use serde::de::DeserializeOwned;

/// Longest key (user, event id, item) any route accepts, in bytes.
pub const MAX_KEY_BYTES: usize = 256;

/// Checks one key field against the one key rule: 1 to [`MAX_KEY_BYTES`] bytes.
pub(super) fn check_key(field: &str, value: &str) -> Result<(), ApiError> {
    if value.is_empty() || value.len() > MAX_KEY_BYTES {
        return Err(ApiError::unprocessable(
            "invalid_field",
            format!(
                "field `{field}`: must be 1 to {MAX_KEY_BYTES} bytes, not {}",
                value.len()
            ),
        ));
    }
    Ok(())
}

/// A key from the request path (`what` names it in the message), decoded and checked against
/// the key rule as `field`.
pub(super) fn path_key(
    what: &str,
    field: &str,
    key: Result<axum::extract::Path<String>, axum::extract::rejection::PathRejection>,
) -> Result<String, ApiError> {
    let axum::extract::Path(key) = key.map_err(|e| {
        ApiError::bad_request(
            "bad_path",
            format!("the {what} in the path is not valid percent-encoded UTF-8: {e}"),
        )
    })?;
    check_key(field, &key)?;
    Ok(key)
}

/// The caller a valid API key identifies.
pub(super) struct Caller<'a> {
    token: &'a str,
}

impl Caller<'_> {
    /// The pseudonym of the caller's key, stored with the events it ranks.
    pub(super) fn owner(&self, state: &AppState) -> String {
        state.config.pseudonyms.key_owner(self.token)
    }
}

/// Checks the `Authorization: Bearer <key>` header: a known key (else 401) of at least scope
/// `need` (else 403).
pub(super) fn authorize<'h>(
    state: &AppState,
    headers: &'h HeaderMap,
    need: Scope,
) -> Result<Caller<'h>, ApiError> {
    let unauthorized = |m: &str| ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", m);
    let value = headers.get(header::AUTHORIZATION).ok_or_else(|| {
        unauthorized("missing API key: send the header `Authorization: Bearer <key>`")
    })?;
    let token = value
        .to_str()
        .ok()
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .ok_or_else(|| unauthorized("the Authorization header must be `Bearer <key>`"))?;
    let scope = state
        .config
        .keys
        .scope_of(token)
        .ok_or_else(|| unauthorized("unknown API key"))?;
    if scope < need {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!(
                "this API key has scope `{}`; this route needs scope `{}`",
                scope.name(),
                need.name()
            ),
        ));
    }
    Ok(Caller { token })
}

/// Whether a `Content-Type` is JSON (`application/json`, any parameters, any case).
fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json"))
}

/// Reads a request body within the body limit and the body timeout. A declared length over the
/// limit is refused before anything is read.
async fn read_body(state: &AppState, headers: &HeaderMap, body: Body) -> Result<Bytes, ApiError> {
    let limit = state.config.body_limit;
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            format!("the request body is larger than the limit of {limit} bytes"),
        )
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    let timeout = state.config.body_timeout;
    match tokio::time::timeout(timeout, axum::body::to_bytes(body, limit)).await {
        Err(_) => Err(ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            "body_timeout",
            format!(
                "the request body did not arrive within {} s",
                timeout.as_secs_f64()
            ),
        )),
        Ok(Err(e)) => {
            let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&e);
            while let Some(err) = source {
                if err.is::<http_body_util::LengthLimitError>() {
                    return Err(too_large());
                }
                source = err.source();
            }
            Err(ApiError::bad_request(
                "bad_body",
                format!("the request body could not be read: {e}"),
            ))
        }
        Ok(Ok(bytes)) => Ok(bytes),
    }
}

/// Reads and parses a JSON object body: `Content-Type: application/json` (else 415), within
/// the limit and timeout, an object at the top (never an array or a scalar, which serde would
/// otherwise accept for a struct), nothing after it. `Ok(None)` for an empty body where
/// `allow_empty`.
pub(super) async fn read_json<T: DeserializeOwned>(
    state: &AppState,
    headers: &HeaderMap,
    body: Body,
    allow_empty: bool,
) -> Result<Option<T>, ApiError> {
    match read_json_body(state, headers, body, allow_empty).await? {
        Some(bytes) => parse_json(&bytes).map(Some),
        None => Ok(None),
    }
}

/// [`read_json`] up to the parse: the body's bytes, checked to hold a JSON object, for a
/// handler whose request borrows strings from them (then parsed with [`parse_json`]).
pub(super) async fn read_json_body(
    state: &AppState,
    headers: &HeaderMap,
    body: Body,
    allow_empty: bool,
) -> Result<Option<axum::body::Bytes>, ApiError> {
    let json = is_json(headers);
    let not_json = || {
        ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send the body as JSON with the header `Content-Type: application/json`",
        )
    };
    let declared_empty = headers
        .get(header::CONTENT_LENGTH)
        .is_some_and(|v| v.as_bytes() == b"0");
    // Refused before the body is read, unless an empty body is allowed and declared.
    if !(json || allow_empty && declared_empty) {
        return Err(not_json());
    }
    let bytes = read_body(state, headers, body).await?;
    let start = bytes.iter().position(|b| !b.is_ascii_whitespace());
    let Some(start) = start else {
        if allow_empty {
            return Ok(None);
        }
        return Err(ApiError::bad_request(
            "bad_json",
            "the body is empty; send a JSON object",
        ));
    };
    if !json {
        return Err(not_json());
    }
    if bytes[start] != b'{' {
        return Err(
            if serde_json::from_slice::<serde::de::IgnoredAny>(&bytes).is_ok() {
                ApiError::unprocessable("invalid_body", "the body must be a JSON object `{...}`")
            } else {
                ApiError::bad_request("bad_json", "the body is not valid JSON")
            },
        );
    }
    Ok(Some(bytes))
}

/// Parses a JSON body into `T`, naming the field path of a type error.
///
/// A body is parsed plainly first: tracking the path of every value cost about a tenth of a
/// rank's server time (100 candidate keys), and only a body that fails needs the path. Parsing
/// is deterministic, so the tracked second pass fails where the first did and names where.
pub(super) fn parse_json<'de, T: serde::Deserialize<'de>>(bytes: &'de [u8]) -> Result<T, ApiError> {
    if let Ok(value) = serde_json::from_slice(bytes) {
        return Ok(value);
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let field = |message: String| {
            ApiError::unprocessable(
                "invalid_field",
                if path == "." {
                    message
                } else {
                    format!("field `{path}`: {message}")
                },
            )
        };
        match inner.classify() {
            serde_json::error::Category::Data => field(inner.to_string()),
            // serde_json reports some type errors (a `null` where an enum belongs) as syntax
            // errors; when the body is valid JSON it is a type error all the same.
            _ if serde_json::from_slice::<serde::de::IgnoredAny>(bytes).is_ok() => {
                field(format!("invalid value ({inner})"))
            }
            _ => ApiError::bad_request("bad_json", format!("the body is not valid JSON: {inner}")),
        }
    })?;
    de.end().map_err(|e| {
        ApiError::bad_request(
            "bad_json",
            format!("trailing characters after the JSON body: {e}"),
        )
    })?;
    Ok(value)
}

/// Sends a job to the writer thread and waits for its answer (500 if the writer has stopped).
pub(super) async fn submit<T>(
    state: &AppState,
    job: impl FnOnce(tokio::sync::oneshot::Sender<Result<T, ApiError>>) -> Job,
) -> Result<T, ApiError> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    state
        .jobs
        .send(job(tx))
        .map_err(|_| ApiError::internal("the storage writer has stopped"))?;
    rx.await
        .map_err(|_| ApiError::internal("the storage writer has stopped"))?
}
