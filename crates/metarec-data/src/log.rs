//! The interaction log: JSON Lines of [`Interaction`], one record per line after a header line,
//! the one format that the simulator, the server and the data exports write and that learners
//! and off-policy estimators read.
//!
//! On disk a log names items by the catalog's keys (the shop's SKUs, as JSON strings) and starts
//! with a [`LogHeader`] that records the catalog's fingerprint and size
//! (`{"metarec_log":2,"catalog":{"fingerprint":"…","items":N}}`); in memory an [`Interaction`]
//! holds dense [`metarec_core::ItemId`]s of one catalog. The reader and the writer convert
//! between the two and therefore take the [`Catalog`]:
//! - every key must resolve: an unknown key is a [`DataError::Malformed`] naming the line and
//!   the field path (`decision.slate[2]`), and, when the header's fingerprint differs from the
//!   catalog's, saying that the log was written against another catalog (both fingerprints and
//!   sizes);
//! - a header whose fingerprint differs while every key resolves is accepted and noted in the
//!   [`LoadReport`] ([`LoadReport::notes`]): a served catalog grows as items are added and a
//!   re-import changes feature values, and neither makes an old record wrong; an unknown key
//!   does;
//! - a log without a header (written before keys, with dense integer ids and no catalog) is
//!   refused with the command that converts it ([`LEGACY_HINT`]); [`ItemKeys::Legacy`] reads
//!   one against the catalog it was written with, for that conversion only;
//! - [`ItemKeys::Unchecked`] reads a log without any catalog (keys get ids in order of first
//!   appearance), for syntax checks.
//!
//! [`LogReader`] streams records with line-numbered errors that name the path of the offending
//! part (for example `decision`, or `decision.propensities[1]` for a mistyped value) and say in
//! the message which field breaks which rule; [`write_log`] writes a whole log atomically, so a
//! crash never leaves a half-written file behind. The schema is documented in
//! `docs/interaction-log.md`.
//!
//! Event ids must be unique within a log: feedback joins its decision by event id, and an
//! off-policy estimate would count a repeated decision twice. The reader therefore treats a
//! record that repeats an earlier record's event id like a malformed line (an error naming both
//! lines, or skipped and counted as `duplicated event id`), and [`check_log`] counts every
//! duplicate and names the first few ([`Duplicates`]).

use crate::error::DataError;
use crate::report::{LoadOptions, LoadReport, OnMalformed};
use metarec_core::{Catalog, Interaction};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

/// The version of the log format this code writes and reads (the header's `metarec_log`).
pub const LOG_VERSION: u32 = 2;

/// How many duplicated event ids [`Duplicates`] names; the rest are only counted.
pub const NAMED_DUPLICATES: usize = 5;

/// The reason under which skipped duplicates are counted in a [`LoadReport`].
pub const DUPLICATE_REASON: &str = "duplicated event id";

/// What a log without a header is told: how to convert it.
pub const LEGACY_HINT: &str = "this log has no header line: it was written by an earlier metarec with dense item indices and no catalog, which cannot be read safely against a catalog; convert it with `metarec log upgrade FILE --out NEW` and the catalog it was written against (`--model DIR`, `--shop DIR` or `--catalog FILE`)";

/// The catalog a log's item keys belong to: its fingerprint ([`Catalog::fingerprint`]) and size.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CatalogStamp {
    /// The catalog's fingerprint (16 hex digits).
    pub fingerprint: String,
    /// Items in the catalog.
    pub items: usize,
}

impl CatalogStamp {
    /// The stamp of a catalog.
    pub fn of(catalog: &Catalog) -> CatalogStamp {
        CatalogStamp {
            fingerprint: catalog.fingerprint(),
            items: catalog.len(),
        }
    }
}

impl std::fmt::Display for CatalogStamp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "fingerprint {}, {} items",
            self.fingerprint.escape_debug(),
            self.items
        )
    }
}

/// The first line of a log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogHeader {
    /// The format version, [`LOG_VERSION`].
    pub metarec_log: u32,
    /// The catalog whose keys the records use.
    pub catalog: CatalogStamp,
}

impl LogHeader {
    /// The header of a log written against `catalog`.
    pub fn of(catalog: &Catalog) -> LogHeader {
        LogHeader {
            metarec_log: LOG_VERSION,
            catalog: CatalogStamp::of(catalog),
        }
    }
}

/// How a reader turns the items of a record into dense ids.
#[derive(Debug, Clone, Copy)]
pub enum ItemKeys<'c> {
    /// Keys of this catalog; every key must resolve.
    Catalog(&'c Catalog),
    /// No catalog: keys get ids in order of first appearance. For syntax checks only: the ids
    /// mean nothing outside the reader.
    Unchecked,
    /// A log without a header, written with dense integer ids against this catalog (every id
    /// must be below its size). For conversion to the keyed format only.
    Legacy(&'c Catalog),
}

/// A record that repeats an earlier record's event id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Duplicate {
    /// The repeated event id.
    pub event_id: String,
    /// The 1-based line of the repeating record.
    pub line: u64,
    /// The 1-based line of the first record with this event id.
    pub first_line: u64,
}

/// The duplicated event ids of a log: how many records repeat an earlier record's event id, and
/// the first [`NAMED_DUPLICATES`] of them in file order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Duplicates {
    /// Records that repeat an earlier event id.
    pub count: u64,
    /// The first few of them.
    pub first: Vec<Duplicate>,
}

impl Duplicates {
    fn note(&mut self, duplicate: Duplicate) {
        self.count += 1;
        if self.first.len() < NAMED_DUPLICATES {
            self.first.push(duplicate);
        }
    }
}

impl std::fmt::Display for Duplicates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let plural = if self.count == 1 { "" } else { "s" };
        write!(
            f,
            "{} record{plural} repeat an earlier event id",
            self.count
        )?;
        let named: Vec<String> = self
            .first
            .iter()
            .map(|d| {
                // Escaped, so that an id with a newline or a quote keeps the message on one line.
                format!(
                    "line {} repeats `{}` of line {}",
                    d.line,
                    d.event_id.escape_debug(),
                    d.first_line
                )
            })
            .collect();
        if !named.is_empty() {
            write!(f, ": {}", named.join(", "))?;
        }
        let rest = self.count.saturating_sub(self.first.len() as u64);
        if rest > 0 {
            write!(f, " and {rest} more")?;
        }
        Ok(())
    }
}

/// The note a report carries when a log's header names another catalog than the one it was read
/// against and every key resolved.
pub fn other_catalog_note(log: &CatalogStamp, catalog: &CatalogStamp) -> String {
    format!(
        "written against another catalog ({log}) than this one ({catalog}); every item key is in this one, so the records were read"
    )
}

/// What [`for_each_item`] calls with each item value and a function that spells its field path.
type ItemVisitor<'a, E> = dyn FnMut(&mut Value, &dyn Fn() -> String) -> Result<(), E> + 'a;

/// Where the items of an interaction (or a context) sit in its JSON form: calls `each` with
/// every item value and its field path (`decision.slate[2]`, `context.candidates[0]`,
/// `context.session.history[1].item`). Parts that are missing or of the wrong shape are left to
/// the typed deserialisation, which reports them with their path.
fn for_each_item<E>(
    value: &mut Value,
    context_only: bool,
    each: &mut ItemVisitor<'_, E>,
) -> Result<(), E> {
    let prefix = if context_only { "" } else { "context." };
    let context = if context_only {
        Some(&mut *value)
    } else {
        value.get_mut("context")
    };
    if let Some(context) = context {
        if let Some(Value::Array(items)) = context.get_mut("candidates") {
            for (k, v) in items.iter_mut().enumerate() {
                each(v, &|| format!("{prefix}candidates[{k}]"))?;
            }
        }
        if let Some(Value::Array(history)) = context
            .get_mut("session")
            .and_then(|s| s.get_mut("history"))
        {
            for (k, event) in history.iter_mut().enumerate() {
                if let Some(v) = event.get_mut("item") {
                    each(v, &|| format!("{prefix}session.history[{k}].item"))?;
                }
            }
        }
    }
    if !context_only {
        if let Some(Value::Array(items)) =
            value.get_mut("decision").and_then(|d| d.get_mut("slate"))
        {
            for (k, v) in items.iter_mut().enumerate() {
                each(v, &|| format!("decision.slate[{k}]"))?;
            }
        }
    }
    Ok(())
}

/// Replaces every dense id of an interaction's JSON form (as serde writes an [`Interaction`]) by
/// the catalog's key; an id the catalog does not have is an error saying which.
pub fn ids_to_keys(value: &mut Value, catalog: &Catalog) -> Result<(), String> {
    for_each_item(value, false, &mut |v, field| id_to_key(v, catalog, field))
}

/// [`ids_to_keys`] for a [`metarec_core::Context`]'s JSON form alone.
pub fn context_ids_to_keys(value: &mut Value, catalog: &Catalog) -> Result<(), String> {
    for_each_item(value, true, &mut |v, field| id_to_key(v, catalog, field))
}

fn id_to_key(v: &mut Value, catalog: &Catalog, field: &dyn Fn() -> String) -> Result<(), String> {
    let key = v
        .as_u64()
        .and_then(|id| u32::try_from(id).ok())
        .and_then(|id| catalog.key(metarec_core::ItemId(id)));
    match key {
        Some(key) => {
            *v = Value::String(key.to_owned());
            Ok(())
        }
        None => Err(format!(
            "{}: item {v} is not in the catalog ({})",
            field(),
            CatalogStamp::of(catalog)
        )),
    }
}

/// Replaces every key of a [`metarec_core::Context`]'s keyed JSON form by its dense id in
/// `catalog`; an unknown key is an error `(field path, reason)`.
pub fn context_keys_to_ids(value: &mut Value, catalog: &Catalog) -> Result<(), (String, String)> {
    for_each_item(value, true, &mut |v, field| {
        key_to_id(v, catalog).map_err(|reason| (field(), reason))
    })
}

/// The dense id of a keyed item value, or why it has none.
fn key_to_id(v: &mut Value, catalog: &Catalog) -> Result<(), String> {
    match v {
        Value::String(key) => match catalog.id_of(key) {
            Some(id) => {
                *v = Value::from(id.0);
                Ok(())
            }
            None => Err(format!(
                "item `{}` is not in the catalog",
                key.escape_debug()
            )),
        },
        other => Err(format!(
            "item {other} is not a key: items are named by the catalog's keys, as JSON strings"
        )),
    }
}

/// Streams [`Interaction`]s from a keyed log (a header line, then JSON Lines), skipping blank
/// lines.
///
/// The header is read when the reader is made: a missing or malformed header is an error then
/// (it concerns the whole file, so it is never skipped). A record that repeats the event id of an
/// earlier record is returned as a [`DataError::Malformed`] on field `decision.event_id` naming
/// the earlier line, and noted in [`LogReader::duplicates`]; the earlier record stays the one
/// with that id. The reader keeps every event id it has seen, so its memory grows with the log.
pub struct LogReader<'c, R> {
    input: R,
    path: PathBuf,
    line: u64,
    buf: Vec<u8>,
    /// The first record of a legacy log, read while looking for a header.
    pending: bool,
    keys: ItemKeys<'c>,
    interned: HashMap<String, u32>,
    header: Option<LogHeader>,
    /// When the header names another catalog than the one read against: (the log's, the
    /// catalog's), computed once with the header (a fingerprint hashes the whole catalog).
    other: Option<(CatalogStamp, CatalogStamp)>,
    seen: HashMap<String, u64>,
    duplicates: Duplicates,
}

impl<'c> LogReader<'c, BufReader<File>> {
    /// Opens a log file and reads its header.
    pub fn open(path: &Path, keys: ItemKeys<'c>) -> Result<Self, DataError> {
        let file = File::open(path).map_err(|e| DataError::io(path, e))?;
        LogReader::new(BufReader::new(file), path, keys)
    }
}

impl<'c, R: BufRead> LogReader<'c, R> {
    /// Reads from any buffered input; `path` names it in errors. Reads the header first (an
    /// input with no line at all is an empty log without one).
    pub fn new(input: R, path: &Path, keys: ItemKeys<'c>) -> Result<Self, DataError> {
        let mut reader = LogReader {
            input,
            path: path.to_owned(),
            line: 0,
            buf: Vec::new(),
            pending: false,
            keys,
            interned: HashMap::new(),
            header: None,
            other: None,
            seen: HashMap::new(),
            duplicates: Duplicates::default(),
        };
        reader.read_header()?;
        Ok(reader)
    }

    /// The log's header (`None` for an empty input or a legacy log).
    pub fn header(&self) -> Option<&LogHeader> {
        self.header.as_ref()
    }

    /// When the header names another catalog than the one the log is read against: (the log's,
    /// the catalog's).
    pub fn other_catalog(&self) -> Option<(CatalogStamp, CatalogStamp)> {
        self.other.clone()
    }

    /// The 1-based line of the record (or error) last returned; 0 before the first.
    pub fn line(&self) -> u64 {
        self.line
    }

    /// The duplicated event ids met so far.
    pub fn duplicates(&self) -> &Duplicates {
        &self.duplicates
    }

    fn malformed(&self, field: impl Into<String>, reason: impl Into<String>) -> DataError {
        DataError::Malformed {
            path: self.path.clone(),
            line: self.line,
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// Reads the next non-blank line into `buf`; `false` at the end of the input.
    fn next_line(&mut self) -> Result<bool, DataError> {
        loop {
            self.buf.clear();
            self.line += 1;
            match self.input.read_until(b'\n', &mut self.buf) {
                Ok(0) => return Ok(false),
                Ok(_) => {}
                Err(e) => return Err(DataError::io(&self.path, e)),
            }
            if !self.buf.iter().all(u8::is_ascii_whitespace) {
                return Ok(true);
            }
        }
    }

    fn read_header(&mut self) -> Result<(), DataError> {
        if !self.next_line()? {
            return Ok(());
        }
        let value: Option<Value> = serde_json::from_slice(&self.buf).ok();
        let is_header = value
            .as_ref()
            .is_some_and(|v| v.get("metarec_log").is_some());
        if let ItemKeys::Legacy(_) = self.keys {
            if is_header {
                return Err(self.malformed(
                    "metarec_log",
                    "the log already has a header: read it with its catalog, it needs no conversion",
                ));
            }
            self.pending = true;
            return Ok(());
        }
        if !is_header {
            let record = value
                .as_ref()
                .is_some_and(|v| v.get("decision").is_some() || v.get("context").is_some());
            return Err(if record {
                self.malformed("<header>", LEGACY_HINT)
            } else {
                self.malformed(
                    "<header>",
                    format!(
                        "the first line is not a log header such as {}",
                        r#"{"metarec_log":2,"catalog":{"fingerprint":"…","items":N}}"#
                    ),
                )
            });
        }
        let mut de = serde_json::Deserializer::from_slice(&self.buf);
        let header: LogHeader = serde_path_to_error::deserialize(&mut de).map_err(|e| {
            let field = e.path().to_string();
            self.malformed(
                if field == "." { "<header>" } else { &field },
                e.into_inner().to_string(),
            )
        })?;
        if header.metarec_log != LOG_VERSION {
            return Err(self.malformed(
                "metarec_log",
                format!(
                    "log format {} is not {LOG_VERSION}, the one this metarec reads",
                    header.metarec_log
                ),
            ));
        }
        if let ItemKeys::Catalog(catalog) = self.keys {
            let here = CatalogStamp::of(catalog);
            if header.catalog != here {
                self.other = Some((header.catalog.clone(), here));
            }
        }
        self.header = Some(header);
        Ok(())
    }

    /// Remembers the record's event id, or, when an earlier record used it, notes the duplicate
    /// and returns the error that reports it.
    fn check_unique(&mut self, record: Interaction) -> Result<Interaction, DataError> {
        let id = &record.decision.event_id.0;
        if let Some(&first_line) = self.seen.get(id) {
            self.duplicates.note(Duplicate {
                event_id: id.clone(),
                line: self.line,
                first_line,
            });
            return Err(DataError::Malformed {
                path: self.path.clone(),
                line: self.line,
                field: "decision.event_id".into(),
                reason: format!(
                    "event id `{}` is already used on line {first_line} (event ids must be unique: feedback joins its decision by event id)",
                    id.escape_debug()
                ),
            });
        }
        self.seen.insert(id.clone(), self.line);
        Ok(record)
    }

    /// Turns the items of a record's JSON form into dense ids, as the reader's [`ItemKeys`]
    /// say.
    fn resolve(&mut self, value: &mut Value) -> Result<(), DataError> {
        let other = &self.other;
        let keys = self.keys;
        let interned = &mut self.interned;
        let result = for_each_item(value, false, &mut |v, field| {
            match keys {
            ItemKeys::Catalog(catalog) => key_to_id(v, catalog).map_err(|mut reason| {
                if let (Some((log, here)), Value::String(_)) = (other, &*v) {
                    reason.push_str(&format!(
                        ": the log was written against another catalog ({log}) than this one ({here})"
                    ));
                }
                (field(), reason)
            }),
            ItemKeys::Unchecked => match v {
                Value::String(key) => {
                    let next = interned.len() as u32;
                    let id = *interned.entry(key.clone()).or_insert(next);
                    *v = Value::from(id);
                    Ok(())
                }
                other => Err((
                    field(),
                    format!(
                        "item {other} is not a key: items are named by the catalog's keys, as JSON strings"
                    ),
                )),
            },
            ItemKeys::Legacy(catalog) => match v.as_u64() {
                Some(id) if id < catalog.len() as u64 => Ok(()),
                Some(id) => Err((
                    field(),
                    format!(
                        "item {id} is not in the catalog of {} items the log is converted with",
                        catalog.len()
                    ),
                )),
                // Anything else is left to the typed deserialisation, which names it.
                None => Ok(()),
            },
        }
        });
        result.map_err(|(field, reason)| self.malformed(field, reason))
    }

    fn parse_line(&mut self) -> Result<Interaction, DataError> {
        let text = std::str::from_utf8(&self.buf).map_err(|_| DataError::Malformed {
            path: self.path.clone(),
            line: self.line,
            field: "<record>".into(),
            reason: "invalid UTF-8".into(),
        })?;
        let path_of = |p: String| if p == "." { "<record>".to_owned() } else { p };
        // Read as JSON first (syntax errors keep the path where they occur), then map the items'
        // keys to ids, then read the typed record from the JSON (type errors and broken
        // invariants keep theirs).
        let mut de = serde_json::Deserializer::from_str(text);
        let mut value: Value =
            serde_path_to_error::deserialize(&mut de).map_err(|e| DataError::Malformed {
                path: self.path.clone(),
                line: self.line,
                field: path_of(e.path().to_string()),
                reason: e.inner().to_string(),
            })?;
        de.end().map_err(|e| DataError::Malformed {
            path: self.path.clone(),
            line: self.line,
            field: "<record>".into(),
            reason: format!("trailing characters after the record: {e}"),
        })?;
        if value.get("metarec_log").is_some() {
            return Err(self.malformed(
                "metarec_log",
                "a second header: only the first line of a log is a header (were two logs joined?)",
            ));
        }
        self.resolve(&mut value)?;
        serde_path_to_error::deserialize(value).map_err(|e| DataError::Malformed {
            path: self.path.clone(),
            line: self.line,
            field: path_of(e.path().to_string()),
            reason: e.inner().to_string(),
        })
    }
}

impl<R: BufRead> Iterator for LogReader<'_, R> {
    type Item = Result<Interaction, DataError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.pending {
            self.pending = false;
        } else {
            match self.next_line() {
                Ok(false) => return None,
                Ok(true) => {}
                Err(e) => return Some(Err(e)),
            }
        }
        Some(self.parse_line().and_then(|r| self.check_unique(r)))
    }
}

/// Reads a whole log against `catalog`, applying `options` to malformed lines and to records
/// that repeat an earlier event id (an error, or skipped and counted as [`DUPLICATE_REASON`]).
/// A header naming another catalog is noted in the report when every key resolves.
pub fn read_log(
    path: &Path,
    catalog: &Catalog,
    options: &LoadOptions,
) -> Result<(Vec<Interaction>, LoadReport), DataError> {
    let mut out = Vec::new();
    let fatal = options.on_malformed == OnMalformed::Fail;
    let read = read_each(path, ItemKeys::Catalog(catalog), options, fatal, |_, i| {
        out.push(i)
    })?;
    Ok((out, read.report))
}

/// [`read_log`], each record with its 1-based line in the file (so that later checks can name
/// the line even where blank lines or skipped records make it differ from the record's rank).
pub fn read_log_lines(
    path: &Path,
    catalog: &Catalog,
    options: &LoadOptions,
) -> Result<(Vec<(u64, Interaction)>, LoadReport), DataError> {
    let mut out = Vec::new();
    let fatal = options.on_malformed == OnMalformed::Fail;
    let read = read_each(
        path,
        ItemKeys::Catalog(catalog),
        options,
        fatal,
        |line, i| out.push((line, i)),
    )?;
    Ok((out, read.report))
}

/// Reads a log written before logs had keys (no header, dense integer ids) against the catalog
/// it was written with, to convert it ([`write_log`] then writes it with keys).
pub fn read_legacy_log(
    path: &Path,
    catalog: &Catalog,
    options: &LoadOptions,
) -> Result<(Vec<Interaction>, LoadReport), DataError> {
    let mut out = Vec::new();
    let fatal = options.on_malformed == OnMalformed::Fail;
    let read = read_each(path, ItemKeys::Legacy(catalog), options, fatal, |_, i| {
        out.push(i)
    })?;
    Ok((out, read.report))
}

/// What [`check_log`] found.
#[derive(Debug, Clone, PartialEq)]
pub struct LogCheck {
    /// The records kept: the first record of each event id (with ids of the catalog, or, checked
    /// without one, ids in order of first appearance).
    pub records: Vec<Interaction>,
    /// Records read, kept and skipped (duplicates under [`DUPLICATE_REASON`]).
    pub report: LoadReport,
    /// Every record that repeats an earlier event id, counted, the first few named.
    pub duplicates: Duplicates,
    /// The log's header (`None` for an empty file).
    pub header: Option<LogHeader>,
    /// The catalog it was checked against, when one was given.
    pub catalog: Option<CatalogStamp>,
    /// Distinct item keys in the records kept.
    pub distinct_items: usize,
}

impl LogCheck {
    /// Whether the log breaks no rule (no duplicated event ids; malformed lines either stopped
    /// the check with an error or were skipped as asked).
    pub fn is_clean(&self) -> bool {
        self.duplicates.count == 0
    }

    /// Whether the header names the catalog the log was checked against (`None` without a
    /// catalog or a header).
    pub fn same_catalog(&self) -> Option<bool> {
        Some(self.header.as_ref()?.catalog == *self.catalog.as_ref()?)
    }
}

/// Reads a whole log to check it, against `catalog` (every key must resolve) or, without one,
/// for its syntax and invariants alone: malformed lines follow `options` (the first stops the
/// check with its error, or all are skipped and counted), while records that repeat an earlier
/// event id never stop it, so that all of them are counted; they are skipped, and it is for the
/// caller to decide whether they are an error (`metarec log check` fails on them unless told to
/// skip malformed records).
pub fn check_log(
    path: &Path,
    catalog: Option<&Catalog>,
    options: &LoadOptions,
) -> Result<LogCheck, DataError> {
    let mut records = Vec::new();
    let keys = match catalog {
        Some(c) => ItemKeys::Catalog(c),
        None => ItemKeys::Unchecked,
    };
    let read = read_each(path, keys, options, false, |_, i| records.push(i))?;
    let mut items: Vec<u32> = records
        .iter()
        .flat_map(|r: &Interaction| r.decision.slate.items().iter().map(|i| i.0))
        .collect();
    items.sort_unstable();
    items.dedup();
    Ok(LogCheck {
        records,
        report: read.report,
        duplicates: read.duplicates,
        header: read.header,
        catalog: catalog.map(CatalogStamp::of),
        distinct_items: items.len(),
    })
}

/// What [`read_each`] returns besides the records.
struct Read {
    report: LoadReport,
    duplicates: Duplicates,
    header: Option<LogHeader>,
}

/// Reads `path` record by record, passing each kept record and its line to `keep`. Malformed
/// lines follow `options`; a duplicated event id is an error when `duplicates_fatal`, else
/// skipped and counted as [`DUPLICATE_REASON`].
fn read_each(
    path: &Path,
    keys: ItemKeys<'_>,
    options: &LoadOptions,
    duplicates_fatal: bool,
    mut keep: impl FnMut(u64, Interaction),
) -> Result<Read, DataError> {
    let mut report = LoadReport::new(path.display().to_string());
    let mut reader = LogReader::open(path, keys)?;
    loop {
        let before = reader.duplicates().count;
        let Some(record) = reader.next() else { break };
        match record {
            Ok(i) => {
                keep(reader.line(), i);
                report.keep();
            }
            Err(e @ DataError::Io { .. }) => return Err(e),
            Err(e) if reader.duplicates().count > before => {
                if duplicates_fatal {
                    return Err(e);
                }
                report.skip(DUPLICATE_REASON);
            }
            Err(e) => match options.on_malformed {
                OnMalformed::Fail => return Err(e),
                OnMalformed::Skip => {
                    crate::table::handle_malformed(e, options, &mut report)?;
                }
            },
        }
    }
    if let Some((log, here)) = reader.other_catalog() {
        report.notes.push(other_catalog_note(&log, &here));
    }
    Ok(Read {
        report,
        duplicates: reader.duplicates,
        header: reader.header,
    })
}

/// Writes a log's header line for `catalog`.
pub fn write_header<W: Write>(out: &mut W, catalog: &Catalog) -> std::io::Result<()> {
    serde_json::to_writer(&mut *out, &LogHeader::of(catalog))?;
    out.write_all(b"\n")
}

/// Writes one record as a line of JSON, items named by `catalog`'s keys; an item the catalog
/// does not have is an `InvalidData` error naming the event.
pub fn write_record<W: Write>(
    out: &mut W,
    record: &Interaction,
    catalog: &Catalog,
) -> std::io::Result<()> {
    let mut value = serde_json::to_value(record)?;
    ids_to_keys(&mut value, catalog).map_err(|reason| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!(
                "event `{}`: {reason}",
                record.decision.event_id.0.escape_debug()
            ),
        )
    })?;
    serde_json::to_writer(&mut *out, &value)?;
    out.write_all(b"\n")
}

/// Writes a whole log against `catalog` to `path` atomically: the header, then one line per
/// record, into a temporary file beside it, flushed to disk, then renamed over `path`. Returns
/// the number of records written.
pub fn write_log<'a>(
    path: &Path,
    records: impl IntoIterator<Item = &'a Interaction>,
    catalog: &Catalog,
) -> Result<u64, DataError> {
    atomic_write(path, |out| {
        write_header(out, catalog)?;
        let mut n = 0;
        for r in records {
            write_record(out, r, catalog)?;
            n += 1;
        }
        Ok(n)
    })
}

/// Runs `fill` on a buffered temporary file beside `path` and renames it over `path` only when
/// everything succeeded; on failure the temporary file is removed and `path` is untouched.
///
/// A `path` that exists and is neither a regular file nor a directory (a device such as
/// `/dev/null` or `/dev/stdout`, a named pipe) is written in place instead: renaming a file over
/// it would replace the device node itself (run as root, `--out /dev/null` once left a regular
/// file at `/dev/null` and broke every program that wrote there), and a stream has nothing to
/// keep whole on failure.
pub fn atomic_write<T>(
    path: &Path,
    fill: impl FnOnce(&mut BufWriter<File>) -> std::io::Result<T>,
) -> Result<T, DataError> {
    if writes_in_place(path) {
        let result = (|| {
            let file = std::fs::OpenOptions::new().write(true).open(path)?;
            let mut out = BufWriter::new(file);
            let value = fill(&mut out)?;
            out.flush()?;
            Ok(value)
        })();
        return result.map_err(|e| DataError::io(path, e));
    }
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "out".into());
    let tmp = path.with_file_name(format!(".{name}.{}.tmp", std::process::id()));
    let result = (|| {
        let file = File::create(&tmp)?;
        let mut out = BufWriter::new(file);
        let value = fill(&mut out)?;
        let file = out.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)?;
        Ok(value)
    })();
    result.map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        DataError::io(path, e)
    })
}

/// Whether [`atomic_write`] writes `path` in place: it exists (following links) and is neither
/// a regular file nor a directory.
fn writes_in_place(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| !m.is_file() && !m.is_dir())
}

#[cfg(test)]
mod tests {
    use super::*;
    use metarec_core::{Item, ItemId};

    /// A device is written in place, never replaced; a regular file is replaced whole, and a
    /// failed write leaves it as it was.
    #[test]
    fn a_device_is_written_in_place_and_a_file_replaced_whole() {
        use std::os::unix::fs::FileTypeExt;
        let null = Path::new("/dev/null");
        // Checked before anything is written, so a regression fails here rather than replace
        // the machine's /dev/null (tests may run as root).
        assert!(writes_in_place(null));
        let n = atomic_write(null, |out| out.write_all(b"nothing").map(|()| 7)).unwrap();
        assert_eq!(n, 7);
        assert!(
            std::fs::metadata(null)
                .unwrap()
                .file_type()
                .is_char_device()
        );
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("out.json");
        assert!(
            !writes_in_place(&file),
            "a missing path is created by a rename"
        );
        atomic_write(&file, |out| out.write_all(b"first")).unwrap();
        assert!(!writes_in_place(&file));
        assert!(!writes_in_place(dir.path()));
        let failed = atomic_write(&file, |out| {
            out.write_all(b"half")?;
            Err::<(), _>(std::io::Error::other("stopped"))
        });
        assert!(failed.is_err());
        assert_eq!(std::fs::read(&file).unwrap(), b"first");
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            1,
            "no temporary file left"
        );
    }

    /// A catalog of the given keys with no numeric features.
    fn catalog(keys: &[&str]) -> Catalog {
        let mut c = Catalog::new(Vec::new());
        for k in keys {
            c.push(Item {
                key: (*k).into(),
                title: None,
                category: None,
                price: None,
                features: Vec::new(),
                embedding: None,
            })
            .unwrap();
        }
        c
    }

    /// The examples in the schema document must stay valid logs of the catalogs it describes,
    /// with the fingerprints it shows.
    #[test]
    fn examples_in_the_schema_document_parse() {
        let doc = include_str!("../../../docs/interaction-log.md");
        let examples: Vec<&str> = doc
            .split("```json\n")
            .skip(1)
            .map(|block| block.split("```").next().unwrap_or_default())
            .collect();
        assert_eq!(examples.len(), 2);
        let obd: Vec<String> = (0..80).map(|i| i.to_string()).collect();
        let obd: Vec<&str> = obd.iter().map(String::as_str).collect();
        let catalogs = [catalog(&["85123A", "71053", "22752"]), catalog(&obd)];
        for (example, catalog) in examples.iter().zip(&catalogs) {
            let mut reader = LogReader::new(
                example.as_bytes(),
                Path::new("doc"),
                ItemKeys::Catalog(catalog),
            )
            .unwrap();
            let records: Vec<_> = reader.by_ref().collect::<Result<_, _>>().unwrap();
            assert_eq!(records.len(), 1);
            assert_eq!(
                reader.other_catalog(),
                None,
                "the fingerprint in the document"
            );
        }
    }

    fn keys() -> Catalog {
        catalog(&["a", "b", "c", "d"])
    }

    fn header() -> String {
        serde_json::to_string(&LogHeader::of(&keys())).unwrap()
    }

    fn record(id: &str) -> String {
        format!(
            r#"{{"context":{{"user":"u"}},"decision":{{"event_id":"{id}","slate":["d"],"propensities":[0.5],"policy_id":"p"}},"feedback":{{"clicks":[true]}}}}"#
        )
    }

    /// Line 1 the header, lines 2-8: `a`, `b`, a blank line, `a` again, `c`, `b` again, `a` a
    /// third time.
    fn log_with_duplicates() -> String {
        let body: String = ["a", "b", "", "a", "c", "b", "a"]
            .iter()
            .map(|id| if id.is_empty() { String::new() } else { record(id) } + "\n")
            .collect();
        format!("{}\n{body}", header())
    }

    #[test]
    fn the_reader_rejects_a_repeated_event_id_naming_both_lines() {
        let text = log_with_duplicates();
        let catalog = keys();
        let mut reader = LogReader::new(
            text.as_bytes(),
            Path::new("mem.jsonl"),
            ItemKeys::Catalog(&catalog),
        )
        .unwrap();
        let results: Vec<_> = reader.by_ref().collect();
        assert_eq!(results.len(), 6);
        let ok: Vec<bool> = results.iter().map(Result::is_ok).collect();
        assert_eq!(ok, [true, true, false, true, false, false]);
        let err = results[2].as_ref().unwrap_err().to_string();
        assert!(
            err.starts_with("mem.jsonl: line 5: field `decision.event_id`: event id `a` is already used on line 2"),
            "{err}"
        );
        let d = reader.duplicates();
        assert_eq!(d.count, 3);
        let lines: Vec<(u64, u64)> = d.first.iter().map(|d| (d.line, d.first_line)).collect();
        assert_eq!(lines, [(5, 2), (7, 3), (8, 2)]);
        assert_eq!(
            d.to_string(),
            "3 records repeat an earlier event id: line 5 repeats `a` of line 2, line 7 repeats `b` of line 3, line 8 repeats `a` of line 2"
        );
    }

    #[test]
    fn read_log_fails_on_a_duplicated_event_id_or_skips_and_counts_it() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("log.jsonl");
        std::fs::write(&path, log_with_duplicates()).unwrap();
        let catalog = keys();
        let err = read_log(&path, &catalog, &LoadOptions::default()).unwrap_err();
        assert!(
            matches!(&err, DataError::Malformed { line: 5, field, .. } if field == "decision.event_id"),
            "{err:?}"
        );
        let (records, report) = read_log(&path, &catalog, &LoadOptions::skipping()).unwrap();
        let ids: Vec<&str> = records
            .iter()
            .map(|r| r.decision.event_id.0.as_str())
            .collect();
        assert_eq!(ids, ["a", "b", "c"]);
        assert_eq!(records[0].decision.slate.items(), [ItemId(3)]);
        assert_eq!((report.records, report.kept), (6, 3));
        assert_eq!(report.skipped.get(DUPLICATE_REASON), Some(&3), "{report}");
        assert!(report.notes.is_empty(), "{report}");
        let (numbered, _) = read_log_lines(&path, &catalog, &LoadOptions::skipping()).unwrap();
        let lines: Vec<u64> = numbered.iter().map(|(line, _)| *line).collect();
        assert_eq!(lines, [2, 3, 6]);
    }

    #[test]
    fn check_log_counts_every_duplicate_and_names_the_first_few() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("log.jsonl");
        let text: String = (0..9)
            .map(|i| record(&format!("e{}", i % 2)) + "\n")
            .collect();
        std::fs::write(&path, format!("{}\n{text}", header())).unwrap();
        let catalog = keys();
        for options in [LoadOptions::default(), LoadOptions::skipping()] {
            for with in [Some(&catalog), None] {
                let check = check_log(&path, with, &options).unwrap();
                assert!(!check.is_clean());
                assert_eq!(check.records.len(), 2);
                assert_eq!(check.duplicates.count, 7);
                assert_eq!(check.duplicates.first.len(), NAMED_DUPLICATES);
                assert_eq!(check.duplicates.first[0].line, 4);
                assert_eq!(check.duplicates.first[0].first_line, 2);
                assert!(check.duplicates.to_string().ends_with(" and 2 more"));
                assert_eq!(check.report.skipped.get(DUPLICATE_REASON), Some(&7));
                assert_eq!(check.header, Some(LogHeader::of(&catalog)));
                assert_eq!(check.same_catalog(), with.map(|_| true));
                assert_eq!(check.distinct_items, 1);
            }
        }
        std::fs::write(&path, format!("{}\n{}\n", header(), record("only"))).unwrap();
        let check = check_log(&path, Some(&catalog), &LoadOptions::default()).unwrap();
        assert!(check.is_clean());
        assert_eq!(check.duplicates, Duplicates::default());
    }

    #[test]
    fn an_unknown_key_names_its_line_and_field() {
        let catalog = keys();
        let bad = record("x").replace(r#""slate":["d"]"#, r#""slate":["a","b","zz"]"#);
        let bad = bad
            .replace("[0.5]", "[0.5,0.5,0.5]")
            .replace("[true]", "[true,false,false]");
        let text = format!("{}\n{}\n{bad}\n", header(), record("a"));
        let results: Vec<_> = LogReader::new(
            text.as_bytes(),
            Path::new("m.jsonl"),
            ItemKeys::Catalog(&catalog),
        )
        .unwrap()
        .collect();
        assert!(results[0].is_ok());
        let err = results[1].as_ref().unwrap_err().to_string();
        assert_eq!(
            err,
            "m.jsonl: line 3: field `decision.slate[2]`: item `zz` is not in the catalog"
        );
        // Candidates and history are keys too; a number where a key belongs is named as such.
        let history = record("h").replace(
            r#"{"user":"u"}"#,
            r#"{"user":"u","session":{"session":0,"step":0,"history":[{"item":"a","click":true,"purchase":false},{"item":3,"click":false,"purchase":false}]}}"#,
        );
        let candidates =
            record("c").replace(r#"{"user":"u"}"#, r#"{"user":"u","candidates":["d","q"]}"#);
        for (line, field, reason) in [
            (
                history,
                "context.session.history[1].item",
                "item 3 is not a key",
            ),
            (
                candidates,
                "context.candidates[1]",
                "item `q` is not in the catalog",
            ),
        ] {
            let text = format!("{}\n{line}\n", header());
            let err = LogReader::new(text.as_bytes(), Path::new("m"), ItemKeys::Catalog(&catalog))
                .unwrap()
                .next()
                .unwrap()
                .unwrap_err();
            assert!(
                matches!(&err, DataError::Malformed { line: 2, field: f, reason: r, .. } if f == field && r.starts_with(reason)),
                "{err}"
            );
        }
    }

    #[test]
    fn a_log_of_another_catalog_is_an_error_naming_both_or_a_note_when_every_key_resolves() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("log.jsonl");
        // Written against a catalog that has `e` as well.
        let bigger = catalog(&["a", "b", "c", "d", "e"]);
        let header = serde_json::to_string(&LogHeader::of(&bigger)).unwrap();
        let with_e = record("2").replace(r#"["d"]"#, r#"["e"]"#);
        std::fs::write(&path, format!("{header}\n{}\n{with_e}\n", record("1"))).unwrap();
        let catalog = keys();
        let err = read_log(&path, &catalog, &LoadOptions::default())
            .unwrap_err()
            .to_string();
        let expected = format!(
            "line 3: field `decision.slate[0]`: item `e` is not in the catalog: the log was written against another catalog (fingerprint {}, 5 items) than this one (fingerprint {}, 4 items)",
            bigger.fingerprint(),
            catalog.fingerprint()
        );
        assert!(err.ends_with(&expected), "{err}");
        // Every key of the first record resolves: read, with a note in the report.
        std::fs::write(&path, format!("{header}\n{}\n", record("1"))).unwrap();
        let (records, report) = read_log(&path, &catalog, &LoadOptions::default()).unwrap();
        assert_eq!(records.len(), 1);
        assert_eq!(report.notes.len(), 1, "{report}");
        assert!(
            report
                .to_string()
                .contains("note: written against another catalog"),
            "{report}"
        );
        let check = check_log(&path, Some(&catalog), &LoadOptions::default()).unwrap();
        assert_eq!(check.same_catalog(), Some(false));
    }

    #[test]
    fn a_log_without_a_header_is_refused_with_the_way_to_convert_it() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("old.jsonl");
        let legacy = record("a").replace(r#"["d"]"#, "[3]");
        std::fs::write(&path, format!("\n{legacy}\n")).unwrap();
        let catalog = keys();
        for options in [LoadOptions::default(), LoadOptions::skipping()] {
            let err = read_log(&path, &catalog, &options).unwrap_err();
            assert!(
                matches!(&err, DataError::Malformed { line: 2, field, .. } if field == "<header>"),
                "{err:?}"
            );
            assert!(err.to_string().contains("metarec log upgrade"), "{err}");
            assert!(check_log(&path, None, &options).is_err());
        }
        // The explicit legacy path reads it against the catalog it was written with, and the
        // keyed log written from it reads back the same.
        let (records, _) = read_legacy_log(&path, &catalog, &LoadOptions::default()).unwrap();
        assert_eq!(records[0].decision.slate.items(), [ItemId(3)]);
        let out = tmp.path().join("new.jsonl");
        write_log(&out, &records, &catalog).unwrap();
        let text = std::fs::read_to_string(&out).unwrap();
        assert!(text.starts_with(&header()), "{text}");
        assert!(text.contains(r#""slate":["d"]"#), "{text}");
        assert_eq!(
            read_log(&out, &catalog, &LoadOptions::default()).unwrap().0,
            records
        );
        // A legacy id outside the catalog, and a keyed log given to the legacy path, are errors.
        std::fs::write(&path, record("a").replace(r#"["d"]"#, "[4]") + "\n").unwrap();
        let err = read_legacy_log(&path, &catalog, &LoadOptions::default()).unwrap_err();
        assert!(err.to_string().contains("decision.slate[0]"), "{err}");
        assert!(read_legacy_log(&out, &catalog, &LoadOptions::default()).is_err());
    }

    #[test]
    fn a_bad_header_stops_the_read_whatever_the_options() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("log.jsonl");
        let catalog = keys();
        for (first, field) in [
            ("not json", "<header>"),
            (
                r#"{"metarec_log":3,"catalog":{"fingerprint":"x","items":1}}"#,
                "metarec_log",
            ),
            (r#"{"metarec_log":2,"catalog":{"items":1}}"#, "catalog"),
        ] {
            std::fs::write(&path, format!("{first}\n{}\n", record("a"))).unwrap();
            for options in [LoadOptions::default(), LoadOptions::skipping()] {
                let err = read_log(&path, &catalog, &options).unwrap_err();
                assert!(
                    matches!(&err, DataError::Malformed { line: 1, field: f, .. } if f == field),
                    "{first}: {err:?}"
                );
            }
        }
        // A second header later on is a malformed record.
        std::fs::write(
            &path,
            format!("{}\n{}\n{}\n", header(), header(), record("a")),
        )
        .unwrap();
        let (records, report) = read_log(&path, &catalog, &LoadOptions::skipping()).unwrap();
        assert_eq!(records.len(), 1);
        assert_eq!(
            report.skipped.get("malformed metarec_log"),
            Some(&1),
            "{report}"
        );
    }

    #[test]
    fn writing_an_item_the_catalog_lacks_is_an_error_naming_the_event() {
        let catalog = keys();
        let text = format!("{}\n{}\n", header(), record("e1"));
        let record: Interaction =
            LogReader::new(text.as_bytes(), Path::new("m"), ItemKeys::Catalog(&catalog))
                .unwrap()
                .next()
                .unwrap()
                .unwrap();
        let small = catalog_of_first(&catalog, 2);
        let mut out = Vec::new();
        let err = write_record(&mut out, &record, &small).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("event `e1`: decision.slate[0]: item 3 is not in the catalog"),
            "{err}"
        );
    }

    fn catalog_of_first(c: &Catalog, n: usize) -> Catalog {
        let keys: Vec<&str> = c.keys().iter().take(n).map(String::as_str).collect();
        catalog(&keys)
    }
}
