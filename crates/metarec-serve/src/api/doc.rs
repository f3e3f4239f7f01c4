//! The OpenAPI document of every route, generated from the wire types and the handlers'
//! `#[utoipa::path]` attributes by [`ApiDoc`], so that it cannot drift from what the server
//! parses and answers; [`document`] renders it once per process. The error answers, all
//! `ErrorBody`, are added here from one table ([`ERRORS`], by operation id) rather than
//! repeated in every handler's attribute.

use super::{admin, feedback, items, rank};
use crate::engine::{ActivateAck, FeedbackAck};
use crate::error::{ErrorBody, ErrorDetail};
use crate::items::ItemOut;
use std::sync::OnceLock;
use utoipa::OpenApi;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};

/// The generator of the document: the routes, their schemas and the API key scheme.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "metarec serving API",
        version = "1",
        description = "Rank slates with per-user adaptation, take feedback and rewards back, activate deferred events, manage items, forget users. Every route but /healthz needs `Authorization: Bearer <API key>`; scope `rank` may rank, send feedback and rewards, activate and read, scope `admin` may also change items, forget users and reload the model. Every error is `{\"error\": {\"code\", \"message\"}}`; a route asked with a method it does not take answers 405, a path no route matches 404, both in that shape.",
        license(name = "Apache-2.0")
    ),
    paths(
        rank::rank,
        feedback::feedback,
        feedback::reward,
        feedback::activate,
        admin::forget,
        items::put_item,
        items::retire_item,
        items::get_item,
        admin::reload,
        admin::health,
        admin::metrics,
        admin::openapi,
    ),
    components(schemas(ErrorBody, ErrorDetail, FeedbackAck, ActivateAck, ItemOut)),
    modifiers(&ApiKeyScheme, &ErrorAnswers),
    tags(
        (name = "rank", description = "Rank slates and report what users did with them"),
        (name = "items", description = "The served catalog"),
        (name = "admin", description = "Users, the model, health, metrics and this document"),
    )
)]
pub struct ApiDoc;

/// Adds the bearer API key scheme that the operations name.
struct ApiKeyScheme;

impl utoipa::Modify for ApiKeyScheme {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
    }
}

/// The error statuses each operation answers with (besides the 404 and 405 of the fallbacks,
/// which answer for paths and methods, not operations).
pub const ERRORS: &[(&str, &[u16])] = &[
    ("rank", &[400, 401, 403, 408, 409, 413, 415, 422, 500, 503]),
    (
        "feedback",
        &[400, 401, 403, 404, 408, 409, 413, 415, 422, 500, 503],
    ),
    (
        "reward",
        &[400, 401, 403, 404, 408, 409, 413, 415, 422, 500, 503],
    ),
    ("activate", &[400, 401, 403, 404, 500, 503]),
    ("forget_user", &[400, 401, 403, 500, 503]),
    ("put_item", &[400, 401, 403, 408, 409, 413, 415, 422, 500]),
    ("retire_item", &[400, 401, 403, 404, 409, 500]),
    ("get_item", &[400, 401, 403, 404]),
    ("reload_model", &[400, 401, 403, 408, 413, 415, 422, 500]),
    ("health", &[]),
    ("metrics", &[401, 403]),
    ("openapi", &[401, 403]),
];

/// What an error status means on this API.
fn error_meaning(status: u16) -> &'static str {
    match status {
        400 => "Malformed: not JSON, or a bad path",
        401 => "No API key, or an unknown one",
        403 => "The key's scope does not allow this route",
        404 => "No such event or item for this key, or the event's reward window closed",
        408 => "The body did not arrive in time",
        409 => "A conflict; the error's code says which",
        413 => "The body is over the limit",
        415 => "The body is not sent as JSON",
        422 => "A field is invalid; the message names it",
        500 => "The request could not be stored",
        503 => "The shared database cannot be reached; the request may be retried",
        _ => "An error",
    }
}

/// Adds each operation's error answers from [`ERRORS`].
struct ErrorAnswers;

impl utoipa::Modify for ErrorAnswers {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
        for item in openapi.paths.paths.values_mut() {
            let operations = [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
            ];
            for op in operations.into_iter().flatten() {
                let id = op.operation_id.as_deref().unwrap_or_default();
                let statuses = ERRORS
                    .iter()
                    .find(|(name, _)| *name == id)
                    .map_or(&[][..], |(_, s)| *s);
                for &status in statuses {
                    let response = ResponseBuilder::new()
                        .description(error_meaning(status))
                        .content(
                            "application/json",
                            ContentBuilder::new()
                                .schema(Some(Ref::from_schema_name("ErrorBody")))
                                .build(),
                        )
                        .build();
                    op.responses
                        .responses
                        .insert(status.to_string(), response.into());
                }
            }
        }
    }
}

/// The document as JSON, rendered on first use.
pub fn document() -> &'static str {
    static DOCUMENT: OnceLock<String> = OnceLock::new();
    DOCUMENT.get_or_init(|| {
        // Serialising a document of plain maps and strings cannot fail; should it, the answer
        // says so rather than the server panicking.
        ApiDoc::openapi().to_pretty_json().unwrap_or_else(|e| {
            format!("{{\"error\": \"the document could not be rendered: {e}\"}}")
        })
    })
}
