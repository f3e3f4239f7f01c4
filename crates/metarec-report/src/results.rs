//! Results files and how they become a report.
//!
//! Every command that produces numbers can write them as one JSON object (a *results file*).
//! Its kind is named by a top-level [`KIND_FIELD`] (`"results_kind": "arena"`), which writers
//! add with [`tagged`]; files written before that field existed, and files that are not only
//! results (a model's `manifest.json`), are recognised by their shape instead. Each kind has one
//! entry in [`KINDS`]: a name, a shape test and a renderer from the parsed JSON to a
//! [`Section`] of the page. Adding a kind is one renderer function in `kinds/` plus one line in
//! [`KINDS`] (ARCHITECTURE.md describes the pattern).
//!
//! [`render_report`] turns a list of files into a [`Page`]: one section per file, in the order
//! given. Any file that is not JSON, of no known kind, or missing a field its kind needs is an
//! error naming the file (and the field's path), never a half-rendered page.

use crate::html::{Page, Section};
use crate::kinds;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use thiserror::Error;

/// The top-level field that names a results file's kind.
pub const KIND_FIELD: &str = "results_kind";

/// Why a report cannot be rendered.
#[derive(Debug, Error)]
pub enum ReportError {
    /// No files were given.
    #[error("no results files given")]
    NoInputs,
    /// A file is not JSON.
    #[error("{file}: not valid JSON (line {line}, column {column}): {message}")]
    Json {
        /// The file.
        file: String,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// The parser's message.
        message: String,
    },
    /// A file's kind is not known.
    #[error(
        "{file}: not a results file metarec knows; expected one of: {known} \
         (or a top-level \"results_kind\" naming one)"
    )]
    UnknownKind {
        /// The file.
        file: String,
        /// The known kinds and what writes them.
        known: String,
    },
    /// A file names a kind that is not known.
    #[error("{file}: unknown \"results_kind\": \"{kind}\"; expected one of: {known}")]
    UnknownTag {
        /// The file.
        file: String,
        /// The kind it names.
        kind: String,
        /// The known kinds.
        known: String,
    },
    /// A file of a known kind lacks a field or has one of the wrong type.
    #[error("{file} ({kind} results): field `{path}`: {message}")]
    Schema {
        /// The file.
        file: String,
        /// The kind.
        kind: &'static str,
        /// The path of the field (`contestants[2].curve[0].low`).
        path: String,
        /// What is wrong.
        message: String,
    },
}

/// One kind of results file.
pub struct Kind {
    /// Its name, as written in [`KIND_FIELD`].
    pub name: &'static str,
    /// What writes it (shown in errors).
    pub written_by: &'static str,
    /// Whether an untagged JSON value has this kind's shape.
    pub detect: fn(&Value) -> bool,
    /// Renders the file `file` as a section.
    pub render: fn(&Value, &str) -> Result<Section, ReportError>,
}

/// Every kind the report knows, in detection order.
pub const KINDS: &[Kind] = &[
    kinds::arena::KIND,
    kinds::training::KIND,
    kinds::calibration::KIND,
    kinds::meta::KIND,
    kinds::ope::KIND,
    kinds::coldstart::KIND,
    kinds::coldstart_shop::KIND,
    kinds::coldstart_shop::ITEMS_KIND,
    kinds::newitems::KIND,
];

fn known() -> String {
    KINDS
        .iter()
        .map(|k| format!("{} ({})", k.name, k.written_by))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `value` (which must serialise to a JSON object) with [`KIND_FIELD`] set to `kind`.
pub fn tagged<T: Serialize>(kind: &str, value: &T) -> Result<Value, serde_json::Error> {
    let mut v = serde_json::to_value(value)?;
    if let Value::Object(map) = &mut v {
        map.insert(KIND_FIELD.into(), Value::String(kind.into()));
    }
    Ok(v)
}

/// The kind of a results value: the one its [`KIND_FIELD`] names, else the first whose shape
/// matches.
pub fn detect(value: &Value, file: &str) -> Result<&'static Kind, ReportError> {
    if let Some(tag) = value.get(KIND_FIELD) {
        let tag = tag.as_str().unwrap_or_default();
        return KINDS
            .iter()
            .find(|k| k.name == tag)
            .ok_or_else(|| ReportError::UnknownTag {
                file: file.into(),
                kind: tag.into(),
                known: KINDS.iter().map(|k| k.name).collect::<Vec<_>>().join(", "),
            });
    }
    KINDS
        .iter()
        .find(|k| (k.detect)(value))
        .ok_or_else(|| ReportError::UnknownKind {
            file: file.into(),
            known: known(),
        })
}

/// Parses a results value into a kind's view type, naming the path of any bad field.
pub(crate) fn parse<T: DeserializeOwned>(
    value: &Value,
    file: &str,
    kind: &'static str,
) -> Result<T, ReportError> {
    serde_path_to_error::deserialize(value).map_err(|e| ReportError::Schema {
        file: file.into(),
        kind,
        path: e.path().to_string(),
        message: e.inner().to_string(),
    })
}

/// Parses one file's bytes and renders it as a section.
pub fn render_file(file: &str, bytes: &[u8]) -> Result<Section, ReportError> {
    let value: Value = serde_json::from_slice(bytes).map_err(|e| ReportError::Json {
        file: file.into(),
        line: e.line(),
        column: e.column(),
        message: e.to_string(),
    })?;
    let kind = detect(&value, file)?;
    (kind.render)(&value, file)
}

/// Renders a page from `(file name, contents)` pairs, one section per file in the order given.
pub fn render_report(title: &str, files: &[(String, Vec<u8>)]) -> Result<Page, ReportError> {
    if files.is_empty() {
        return Err(ReportError::NoInputs);
    }
    let sections = files
        .iter()
        .map(|(name, bytes)| render_file(name, bytes))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Page {
        title: title.into(),
        subtitle: Some(format!(
            "{} results file{}: {}",
            files.len(),
            if files.len() == 1 { "" } else { "s" },
            files
                .iter()
                .map(|(n, _)| n.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )),
        sections,
    })
}

/// Deserialises a number that may be `null` (how serde_json writes NaN and infinities) as NaN,
/// so that a missing estimate shows as "n/a" instead of failing the whole report.
pub(crate) fn number<'de, D: serde::Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::NAN))
}

use serde::Deserialize as _;

/// A mean with its 95% interval, as `metarec_eval::Summary` writes it.
#[derive(Debug, Clone, Copy, serde::Deserialize)]
pub(crate) struct Estimate {
    #[serde(deserialize_with = "number")]
    pub mean: f64,
    #[serde(deserialize_with = "number")]
    pub low: f64,
    #[serde(deserialize_with = "number")]
    pub high: f64,
}

impl Estimate {
    /// A table cell with the given decimals.
    pub fn cell(&self, decimals: usize) -> crate::html::Cell {
        crate::html::Cell::Interval {
            mean: self.mean,
            low: self.low,
            high: self.high,
            decimals,
        }
    }
}
