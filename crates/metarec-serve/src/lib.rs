//! metarec's real-time server: rank and feedback over HTTP with per-user adaptation, a durable
//! event log and access control.
//!
//! - [`auth`]: bearer API keys with scopes ([`ApiKeys`](auth::ApiKeys)) and the keyed hash that
//!   pseudonymises user keys before they reach storage ([`Pseudonymizer`](auth::Pseudonymizer));
//! - [`model`]: [`ServedModel`](model::ServedModel), a trained model directory verified
//!   (checksum, schema, shapes, adjuster settings) and ready to decide;
//! - [`items`]: items over the API: [`ServedCatalog`](items::ServedCatalog) (the bundle's
//!   catalog with the items added, updated and retired since) and
//!   [`ItemRecord`](items::ItemRecord), an item as stored;
//! - [`store`]: the [`Store`](store::Store) trait (decisions, feedback, user states) and its
//!   embedded default [`SqliteStore`](store::SqliteStore) (WAL, synchronous FULL);
//! - `engine` (private): the single writer thread that commits decisions and feedback in
//!   groups and owns every change of a user's adjuster state;
//! - [`api`]: the HTTP layer, in private parts: `server` ([`Server`] and [`ServerConfig`]: open,
//!   router and run, the accept loop), `request` (the API key check, JSON body reading, the key
//!   rule, jobs to the writer), and one module per group of routes: `rank`, `feedback`, `items`
//!   and `admin` (forget, reload, health, metrics, the OpenAPI document, the 404 and 405
//!   fallbacks);
//! - `error` (private, re-exported): [`ServeError`], [`StoreError`] and the JSON error of every
//!   route, [`ApiError`](api::ApiError), kept beside the other errors so that the engine, which
//!   answers with it too, does not depend on the handlers;
//! - [`metrics`]: the Prometheus series served at `/metrics` (requests, feedback, store latency
//!   and the process's CPU and memory), kept by the `prometheus` crate;
//! - [`client`]: a small blocking HTTP client for tests and the load benchmark.
//!
//! The OpenAPI document of every route is generated from the wire types (`api::ApiDoc`), served at
//! `/openapi.json`.
#![deny(missing_docs)]

pub mod api;
pub mod auth;
pub mod client;
mod engine;
mod error;
pub mod items;
pub mod metrics;
pub mod model;
pub mod store;

pub use api::{Server, ServerConfig};
pub use error::{ServeError, StoreError};
pub use store::Durability;

/// Writes every interaction of a server database (a SQLite file, or a PostgreSQL URL given as
/// the path) to `out` in the project's interaction-log
/// format (a header naming `catalog`, then JSON Lines, oldest decision first, items named by
/// their keys), atomically; returns the number of records.
///
/// The database stores decisions with the served catalog's dense item ids, so `catalog` must be
/// the bundle catalog the server ranked (the model bundle's `catalog.json`); the items added over
/// the API, stored in the database under that catalog's fingerprint, are appended to it in the
/// order they were first added, as the server numbered them. A decision naming an item that
/// catalog does not have is an error naming its event, never another item's key.
pub fn export_log(
    db: &std::path::Path,
    out: &std::path::Path,
    catalog: &metarec_core::Catalog,
) -> Result<u64, ServeError> {
    use store::Store;
    let mut store: Box<dyn Store> = match db.to_str().filter(|s| store::is_postgres_url(s)) {
        Some(url) => Box::new(store::PostgresStore::connect(&store::PgConfig::parse(
            url,
        )?)?),
        None if !db.is_file() => {
            return Err(ServeError::Config(format!(
                "{}: no such database (start `metarec serve --db {}` first)",
                db.display(),
                db.display()
            )));
        }
        None => Box::new(store::SqliteStore::open(db)?),
    };
    // Items added over the API have ids past the bundle's catalog, in the order they were first
    // added: the served catalog is the bundle's with those appended, and its keys and
    // fingerprint are what the log must carry.
    let mut served = catalog.clone();
    for (key, json) in store.items(&catalog.fingerprint())? {
        if served.id_of(&key).is_some() {
            continue;
        }
        let record = items::ItemRecord::from_json(&json)
            .map_err(|e| ServeError::Config(format!("stored item `{key}`: {e}")))?;
        served
            .push(metarec_core::Item {
                key: record.key,
                title: record.title,
                category: record.category,
                price: record.price,
                features: record.features,
                embedding: None,
            })
            .map_err(|e| ServeError::Config(format!("stored item `{key}`: {e}")))?;
    }
    let catalog = &served;
    let mut count = 0u64;
    metarec_data::log::atomic_write(out, |w| {
        metarec_data::log::write_header(w, catalog)?;
        store
            .for_each_interaction(&mut |i| {
                count += 1;
                metarec_data::log::write_record(w, &i, catalog)
                    .map_err(|e| StoreError(e.to_string()))
            })
            .map_err(|e| std::io::Error::other(e.to_string()))
    })
    .map_err(|e| ServeError::Config(format!("{}: {e}", out.display())))?;
    Ok(count)
}
