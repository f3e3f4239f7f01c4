//! The OpenAPI document the server generates from its wire types: valid against the OpenAPI
//! 3.1 schema (the OpenAPI Initiative's, kept in `tests/data`, see its README; checked by
//! `boon`), complete
//! (every route with an `operationId`, request bodies with their required fields), and true:
//! the server's real answers, success and error, validate against the schemas it documents.

use metarec_serve::client::{Client, Response};
use serde_json::{Value, json};

mod common;
use common::*;

/// The document as served.
fn served_document(c: &mut Client) -> Value {
    let r = c.request("GET", "/openapi.json", None).unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()
}

/// A compiled JSON Schema (draft 2020-12, as OpenAPI 3.1 uses). `boon` rather than the
/// `jsonschema` crate: that one turns on serde_json's `float_roundtrip` for the whole workspace's
/// build, which moved parsed floats by a unit in the last place and the pinned numbers with
/// them.
struct Validator {
    schemas: boon::Schemas,
    index: boon::SchemaIndex,
}

impl Validator {
    fn new(schema: &Value) -> Validator {
        let mut schemas = boon::Schemas::new();
        let mut compiler = boon::Compiler::new();
        compiler
            .add_resource("urn:metarec:schema", schema.clone())
            .unwrap();
        let index = compiler
            .compile("urn:metarec:schema", &mut schemas)
            .unwrap_or_else(|e| panic!("{e:#}"));
        Validator { schemas, index }
    }

    /// Why `value` does not fit, or `None`.
    fn errors(&self, value: &Value) -> Option<String> {
        self.schemas
            .validate(value, self.index)
            .err()
            .map(|e| format!("{e:#}"))
    }

    fn is_valid(&self, value: &Value) -> bool {
        self.errors(value).is_none()
    }
}

/// A validator for the schema of `path`'s `method` answer with `status`, its references
/// resolved in the document's components.
fn answer_schema(doc: &Value, path: &str, method: &str, status: u16) -> Validator {
    let op = &doc["paths"][path][method];
    assert!(op.is_object(), "{method} {path} is not documented");
    let response = &op["responses"][status.to_string()];
    assert!(
        response.is_object(),
        "{method} {path} does not document a {status}"
    );
    let schema = &response["content"]["application/json"]["schema"];
    assert!(
        schema.is_object(),
        "{method} {path} {status}: no JSON schema"
    );
    let mut root = schema.clone();
    root["components"] = doc["components"].clone();
    root["$schema"] = json!("https://json-schema.org/draft/2020-12/schema");
    Validator::new(&root)
}

/// Checks a real answer against the documented schema for its status.
fn check(doc: &Value, path: &str, method: &str, r: &Response) {
    let body = r.json();
    assert!(!body.is_null(), "{method} {path}: not JSON: {}", r.text());
    let validator = answer_schema(doc, path, method, r.status);
    if let Some(errors) = validator.errors(&body) {
        panic!(
            "{method} {path} {}: the answer does not fit its schema: {errors}\n{body}",
            r.status
        );
    }
}

#[test]
fn the_generated_document_is_valid_openapi_3_1() {
    let f = fixture(false);
    let server = start(config(&f.model, &f.db));
    let doc = served_document(&mut server.client(Some(RANKER)));
    let meta: Value =
        serde_json::from_str(include_str!("data/oas-3.1-schema-2022-10-07.json")).unwrap();
    let validator = Validator::new(&meta);
    if let Some(errors) = validator.errors(&doc) {
        panic!("the document is not valid OpenAPI 3.1: {errors}");
    }
    // The schema itself must reject what is not OpenAPI, or the check above proves nothing.
    let mut broken = doc.clone();
    broken["paths"]["/v1/rank"]["post"]["responses"] = json!("none");
    assert!(!validator.is_valid(&broken));
    assert!(!validator.is_valid(&json!({"openapi": "3.1.0"})));
}

#[test]
fn every_operation_has_an_id_and_every_request_its_required_fields() {
    let f = fixture(false);
    let server = start(config(&f.model, &f.db));
    let doc = served_document(&mut server.client(Some(RANKER)));
    let mut ids = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let id = op["operationId"].as_str();
            assert!(id.is_some(), "{method} {path} has no operationId");
            ids.push(id.unwrap().to_owned());
            assert!(op["summary"].is_string(), "{method} {path} has no summary");
            // Every route behind the API key answers 401 and 403 as documented errors.
            if path != "/healthz" {
                for status in ["401", "403"] {
                    let schema = &op["responses"][status]["content"]["application/json"]["schema"];
                    assert_eq!(
                        schema["$ref"], "#/components/schemas/ErrorBody",
                        "{method} {path} {status}"
                    );
                }
            }
        }
    }
    let n = ids.len();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), n, "operationIds repeat: {ids:?}");
    assert_eq!(n, 12, "{ids:?}");
    let schemas = &doc["components"]["schemas"];
    for (schema, required) in [
        ("RankRequest", &["user", "slate_size"][..]),
        ("FeedbackRequest", &["event_id", "kind"][..]),
        ("RewardRequest", &["event_id", "value"][..]),
        (
            "RankOut",
            &["event_id", "model_version", "slate", "deferred"][..],
        ),
    ] {
        let listed: Vec<&str> = schemas[schema]["required"]
            .as_array()
            .unwrap_or_else(|| panic!("{schema} has no required list"))
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        for field in required {
            assert!(listed.contains(field), "{schema}: `{field}` not required");
        }
    }
    // Every reference resolves.
    fn refs<'v>(v: &'v Value, out: &mut Vec<&'v str>) {
        match v {
            Value::Object(m) => {
                if let Some(Value::String(r)) = m.get("$ref") {
                    out.push(r);
                }
                m.values().for_each(|x| refs(x, out));
            }
            Value::Array(a) => a.iter().for_each(|x| refs(x, out)),
            _ => {}
        }
    }
    let mut found = Vec::new();
    refs(&doc, &mut found);
    assert!(found.len() > 20, "{found:?}");
    for r in found {
        let pointer = r
            .strip_prefix('#')
            .unwrap_or_else(|| panic!("external ref {r}"));
        assert!(doc.pointer(pointer).is_some(), "{r} does not resolve");
    }
    // Requests refuse unknown fields, and the document says so.
    assert_eq!(schemas["RankRequest"]["additionalProperties"], false);
    assert!(doc["components"]["securitySchemes"]["api_key"].is_object());
}

#[test]
fn real_answers_fit_the_documented_schemas() {
    let f = fixture(false);
    let server = start(config(&f.model, &f.db));
    let mut c = server.client(Some(RANKER));
    let mut admin = server.client(Some(ADMIN));
    let doc = served_document(&mut c);
    let body = json!({"user": "uma", "event_id": "doc-1", "context": {"age": 30, "device": {"os": "ios"}}, "candidates": candidates(), "slate_size": 3, "defer_activation": true});
    let ranked = post(&mut c, "/v1/rank", &body);
    check(&doc, "/v1/rank", "post", &ranked);
    // The check can fail: a rank answer is not a feedback answer.
    assert!(!answer_schema(&doc, "/v1/feedback", "post", 200).is_valid(&ranked.json()));
    check(&doc, "/v1/rank", "post", &post(&mut c, "/v1/rank", &body));
    let r = c
        .request("POST", "/v1/events/doc-1/activate", None)
        .unwrap();
    check(&doc, "/v1/events/{event_id}/activate", "post", &r);
    let r = post(
        &mut c,
        "/v1/feedback",
        &json!({"event_id": "doc-1", "position": 0, "kind": "purchase", "revenue": 4.0}),
    );
    check(&doc, "/v1/feedback", "post", &r);
    let r = post(
        &mut c,
        "/v1/reward",
        &json!({"event_id": "doc-1", "value": 0.5}),
    );
    check(&doc, "/v1/reward", "post", &r);
    let r = admin
        .request(
            "PUT",
            "/v1/items/doc-item",
            Some(br#"{"title": "t", "price": 2.5}"#),
        )
        .unwrap();
    assert_eq!(r.status, 201, "{}", r.text());
    check(&doc, "/v1/items/{key}", "put", &r);
    check(
        &doc,
        "/v1/items/{key}",
        "get",
        &c.request("GET", "/v1/items/doc-item", None).unwrap(),
    );
    check(
        &doc,
        "/v1/items/{key}",
        "delete",
        &admin.request("DELETE", "/v1/items/doc-item", None).unwrap(),
    );
    check(
        &doc,
        "/v1/users/{key}",
        "delete",
        &admin.request("DELETE", "/v1/users/uma", None).unwrap(),
    );
    check(
        &doc,
        "/v1/admin/reload",
        "post",
        &admin.request("POST", "/v1/admin/reload", None).unwrap(),
    );
    check(
        &doc,
        "/healthz",
        "get",
        &server
            .client(None)
            .request("GET", "/healthz", None)
            .unwrap(),
    );
    // Errors, each with its documented status.
    let taken = json!({"user": "wes", "event_id": "doc-2", "slate_size": 3});
    assert_eq!(post(&mut c, "/v1/rank", &taken).status, 200);
    let errors = [
        (
            "/v1/rank",
            post(&mut c, "/v1/rank", &json!({"user": "uma"})),
        ),
        ("/v1/rank", post(&mut admin, "/v1/rank", &taken)),
        (
            "/v1/feedback",
            post(
                &mut c,
                "/v1/feedback",
                &json!({"event_id": "nope", "position": 0, "kind": "click"}),
            ),
        ),
        (
            "/v1/rank",
            server
                .client(None)
                .request("POST", "/v1/rank", Some(b"{}"))
                .unwrap(),
        ),
    ];
    let statuses: Vec<u16> = errors.iter().map(|(_, r)| r.status).collect();
    assert_eq!(statuses, [422, 409, 404, 401]);
    for (path, r) in &errors {
        check(&doc, path, "post", r);
    }
}

/// Writes the generated document to `$METAREC_OPENAPI_OUT` when set, for reading it without a
/// server (`METAREC_OPENAPI_OUT=openapi.json cargo test -p metarec-serve --test openapi`).
#[test]
fn the_document_can_be_written_out() {
    let doc: Value = serde_json::from_str(metarec_serve::api::openapi_document()).unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    if let Ok(path) = std::env::var("METAREC_OPENAPI_OUT") {
        std::fs::write(path, metarec_serve::api::openapi_document()).unwrap();
    }
}
