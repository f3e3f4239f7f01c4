//! One renderer per kind of results file (see [`crate::results::KINDS`]).
//!
//! Each module parses the JSON into a small view type of its own (only the fields it shows, so
//! files from older or newer versions with extra fields still render) and builds a section of
//! tables and plots. A new kind is a new module here with a `KIND` constant, listed in `KINDS`.

pub(crate) mod arena;
pub(crate) mod calibration;
pub(crate) mod coldstart;
pub(crate) mod coldstart_shop;
pub(crate) mod meta;
pub(crate) mod newitems;
pub(crate) mod ope;
pub(crate) mod training;

use serde_json::Value;

/// Whether `value` is an object with every one of `keys`.
pub(crate) fn has_keys(value: &Value, keys: &[&str]) -> bool {
    value
        .as_object()
        .is_some_and(|m| keys.iter().all(|k| m.contains_key(*k)))
}
