//! The HTTP API: [`Server`] and [`ServerConfig`], the routes they serve and their contract.
//!
//! The parts, one concept each (private modules; what callers use is re-exported here):
//! - `server`: [`ServerConfig`], [`Server`] (open, run, router), the shared `AppState`, the
//!   accept loop with its header timeout and connection limit, [`sweep_interval`] and the
//!   `track` middleware that counts every matched request;
//! - `request`: what every handler does before its own work: `authorize` (the API key and its
//!   scope, giving a `Caller`), `read_json` (content type, body limit and timeout, a JSON object
//!   parsed with the field path in errors), `check_key` ([`MAX_KEY_BYTES`]) and `submit` (a job
//!   to the writer thread and its answer);
//! - `rank`: `POST /v1/rank`, its request and its typed answer (slate, scores, propensities,
//!   explanations);
//! - `context`: the rank request's `context`, any JSON object, flattened to tokens by one
//!   documented rule;
//! - `feedback`: what the shop tells about an event after its rank: `POST /v1/feedback`,
//!   `POST /v1/reward` and `POST /v1/events/{event_id}/activate`;
//! - `items`: `PUT`, `DELETE` and `GET /v1/items/{key}`: add, update, retire and read an item,
//!   with the request checked against the catalog's feature columns;
//! - `admin`: `DELETE /v1/users/{key}`, `POST /v1/admin/reload`, `GET /healthz`, `/metrics`,
//!   `/openapi.json` and the JSON 404 and 405 fallbacks;
//! - `doc`: [`ApiDoc`], the OpenAPI 3.1 document generated from the wire types and the
//!   handlers' attributes, rendered once by [`openapi_document`].
//!
//! [`ApiError`], the JSON error every route answers with, is defined with the crate's other
//! errors, since the writer thread answers with it too.
//!
//! Routes (bodies are JSON; every route but `/healthz` needs `Authorization: Bearer <key>`):
//! - `POST /v1/rank` (scope rank): a user key, a context (any JSON object), candidates (item
//!   keys, or actions described by features, which a new key adds to the catalog; or the whole
//!   catalog), a slate size and exclusions, optionally the client's own event id
//!   (a retry gets the first answer again) and deferred activation -> an event id, the slate
//!   with scores, propensities (exact for the server's explorer, `ServerConfig::explore`) and a
//!   per-item explanation, the slate's propensity when known, and the model version; in
//!   apprentice mode (`ServerConfig::apprentice`) the slate is the shop's own ranking, with the
//!   network's choice beside it;
//! - `POST /v1/feedback` (rank): event id, position or item, kind (`click`, or `purchase` with
//!   revenue); idempotent per (event, position, kind); unknown or expired events are 404;
//! - `POST /v1/reward` (rank): a numeric reward for a whole event, its reward from then on (the
//!   first one counts);
//! - `POST /v1/events/{event_id}/activate` (rank): a deferred event's slate was shown;
//! - `DELETE /v1/users/{key}` (admin): forget a user's state, decisions and feedback;
//! - `PUT /v1/items/{key}` (admin): add an item, or update one, from its features (by name, or
//!   every column in order), title, category, price and availability; a new item is ranked at
//!   once, scored by the network from its features (201 when new, 200 when updated; 409 past
//!   `max_added_items`);
//! - `DELETE /v1/items/{key}` (admin): retire an item: never ranked again (422 as a
//!   candidate), but still known to feedback and histories; `GET /v1/items/{key}` (rank): the
//!   item as served;
//! - `POST /v1/admin/reload` (admin): verify a model directory and swap it in;
//! - `GET /healthz` (open), `GET /metrics` and `GET /openapi.json` (rank).
//!
//! Every error is `{"error": {"code": ..., "message": ...}}` with a 4xx or 5xx status (404, 405,
//! 408, 413 and 415 included); the message names the field or header at fault. The API key is
//! checked before anything else about a request is read. Bodies must be JSON objects sent as
//! `Content-Type: application/json`; they are read as bytes (within the body limit and the body
//! timeout) and parsed by `request` rather than by axum's `Json`, so type errors name the field
//! path (`field `slate_size`: invalid type ...`). Every key (user, event, item) is 1 to
//! [`MAX_KEY_BYTES`] bytes, on every route.
//!
//! Connections: a client that has not sent a complete request head within the header timeout of
//! connecting (or of its previous answer, for a kept-alive connection) is disconnected, a body
//! that does not arrive within the body timeout gets a 408, and at most `max_connections` are
//! served at once (more wait in the listen queue), so a stalled client holds one socket for a
//! few seconds at most. Event ids are 128 random bits, and feedback is accepted only from the
//! API key that ranked the event.

mod admin;
mod context;
mod doc;
mod feedback;
mod items;
mod rank;
mod request;
mod server;

pub use crate::error::ApiError;
pub use request::MAX_KEY_BYTES;
pub use server::{MAX_REWARD_WINDOW, Server, ServerConfig, sweep_interval};

pub use doc::{ApiDoc, document as openapi_document};
