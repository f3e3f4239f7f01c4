//! [`LoadReport`] (what a load kept and skipped) and [`LoadOptions`] (what to do with malformed
//! records).

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// What a loader does with a record it cannot parse.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum OnMalformed {
    /// Stop at the first malformed record with an error naming file, line and field.
    #[default]
    Fail,
    /// Skip malformed records and count them in the [`LoadReport`] by reason.
    Skip,
}

/// Options common to every loader.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LoadOptions {
    /// What to do with a malformed record.
    pub on_malformed: OnMalformed,
}

impl LoadOptions {
    /// Options that skip malformed records instead of failing.
    pub fn skipping() -> Self {
        LoadOptions {
            on_malformed: OnMalformed::Skip,
        }
    }
}

/// The account of one load: records read, kept, and skipped by reason.
///
/// Invariant: `kept + sum(skipped) == records`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoadReport {
    /// What was loaded (a file path or a data set name).
    pub source: String,
    /// Data records read (header excluded).
    pub records: u64,
    /// Records kept.
    pub kept: u64,
    /// Records skipped, by reason.
    pub skipped: BTreeMap<String, u64>,
    /// Kept records with an optional field that could not be read and was treated as missing,
    /// by field and reason.
    pub missing: BTreeMap<String, u64>,
    /// Remarks about the file as a whole that did not stop the load (for example a log written
    /// against another catalog whose keys all resolved).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

impl LoadReport {
    /// An empty report for `source`.
    pub fn new(source: impl Into<String>) -> Self {
        LoadReport {
            source: source.into(),
            ..LoadReport::default()
        }
    }

    /// Counts one skipped record.
    pub fn skip(&mut self, reason: &str) {
        self.records += 1;
        match self.skipped.get_mut(reason) {
            Some(n) => *n += 1,
            None => {
                self.skipped.insert(reason.to_owned(), 1);
            }
        }
    }

    /// Counts one kept record.
    pub fn keep(&mut self) {
        self.records += 1;
        self.kept += 1;
    }

    /// Counts an optional field of a kept record that was treated as missing.
    pub fn note_missing(&mut self, what: &str) {
        *self.missing.entry(what.to_owned()).or_insert(0) += 1;
    }

    /// Total records skipped.
    pub fn skipped_total(&self) -> u64 {
        self.skipped.values().sum()
    }

    /// Adds another report's counts into this one (for data sets made of several files).
    pub fn absorb(&mut self, other: &LoadReport) {
        self.records += other.records;
        self.kept += other.kept;
        for (k, v) in &other.skipped {
            *self.skipped.entry(k.clone()).or_insert(0) += v;
        }
        for (k, v) in &other.missing {
            *self.missing.entry(k.clone()).or_insert(0) += v;
        }
        self.notes.extend(other.notes.iter().cloned());
    }
}

impl fmt::Display for LoadReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {} records read, {} kept, {} skipped",
            self.source,
            self.records,
            self.kept,
            self.skipped_total()
        )?;
        if !self.skipped.is_empty() {
            let parts: Vec<String> = self
                .skipped
                .iter()
                .map(|(k, v)| format!("{k}: {v}"))
                .collect();
            write!(f, " ({})", parts.join(", "))?;
        }
        if !self.missing.is_empty() {
            let parts: Vec<String> = self
                .missing
                .iter()
                .map(|(k, v)| format!("{k}: {v}"))
                .collect();
            write!(f, "; treated as missing: {}", parts.join(", "))?;
        }
        for note in &self.notes {
            write!(f, "; note: {note}")?;
        }
        Ok(())
    }
}
