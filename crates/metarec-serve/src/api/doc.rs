//! The OpenAPI document of every route, generated from the wire types and the handlers'
//! `#[utoipa::path]` attributes by [`ApiDoc`], so that it cannot drift from what the server
//! parses and answers; [`document`] renders it once per process.

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
    modifiers(&ApiKeyScheme),
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
