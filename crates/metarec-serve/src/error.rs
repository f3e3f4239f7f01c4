//! The crate's errors: [`ServeError`], why a server cannot start or a model cannot be served;
//! [`StoreError`], why storage failed; and [`ApiError`], why a request was refused, as the JSON
//! body and status it is answered with.
//!
//! [`ApiError`] lives here rather than beside the handlers because the writer thread (`engine`)
//! answers requests with it too: with it in this leaf module, the handlers depend on the engine
//! and the engine on nothing of the HTTP layer but this error type.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use thiserror::Error;

/// Storage failed (the database is unreadable, full, locked or corrupt).
#[derive(Debug, Error)]
#[error("storage failed: {0}")]
pub struct StoreError(pub String);

impl StoreError {
    /// An error with this message.
    pub fn new(message: impl Into<String>) -> StoreError {
        StoreError(message.into())
    }
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        StoreError(e.to_string())
    }
}

impl From<serde_json::Error> for StoreError {
    fn from(e: serde_json::Error) -> Self {
        StoreError(format!("stored JSON is invalid: {e}"))
    }
}

/// An error starting the server or loading a model.
#[derive(Debug, Error)]
pub enum ServeError {
    /// The model directory cannot be used.
    #[error(transparent)]
    Neural(#[from] metarec_neural::NeuralError),
    /// The model directory is loadable but unfit to serve (adjuster settings, dimensions).
    #[error("{path}: {reason}")]
    Model {
        /// The file or directory.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A setting is missing or invalid (keys, secret, window, limits).
    #[error("{0}")]
    Config(String),
    /// Reading a file or binding a socket failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// The body of every error answer, as sent: `{"error": {"code": ..., "message": ...}}`.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub(crate) struct ErrorBody<'a> {
    error: ErrorDetail<'a>,
}

/// What went wrong.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub(crate) struct ErrorDetail<'a> {
    /// A stable machine-readable code (`unauthorized`, `invalid_field`, `unknown_event`, ...).
    #[schema(example = "invalid_field")]
    code: &'a str,
    /// What is wrong, for a person: it names the field or header at fault.
    message: &'a str,
}

/// A JSON error response.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// A stable machine-readable code (`unauthorized`, `invalid_field`, `unknown_event`, ...).
    pub code: &'static str,
    /// What is wrong, for a person.
    pub message: String,
}

impl ApiError {
    /// Any status, for the errors without a constructor of their own (401, 403, 405, 408, 413,
    /// 415).
    pub(crate) fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }

    /// 404.
    pub fn not_found(code: &'static str, message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::NOT_FOUND, code, message)
    }

    /// 422: well-formed JSON whose content breaks a rule.
    pub fn unprocessable(code: &'static str, message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, code, message)
    }

    /// 500.
    pub fn internal(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
    }

    /// 503: the database that several servers share cannot be reached; the request may be
    /// retried.
    pub fn unavailable(message: impl Into<String>) -> Self {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "store_unavailable",
            message,
        )
    }

    /// 400: the request itself is malformed (not JSON, a bad path).
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, code, message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code,
                message: &self.message,
            },
        };
        let mut response = (self.status, axum::Json(body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}
