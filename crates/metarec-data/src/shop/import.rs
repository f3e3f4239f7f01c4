//! `metarec shop import`: a shop's own files (catalog, events, users) into a shop directory.
//!
//! [`import_shop`] reads the files an [`ImportSpec`] names, checks every record, sorts the events
//! stably by time, builds the [`Catalog`] with its item features ([`item_features`]) and writes
//! the directory atomically with [`ShopFiles::save`]. [`prepare_shop`] stops before writing and
//! returns a [`PreparedShop`], so that a caller can add item features (title embeddings) first.
//!
//! The files (CSV, TSV or JSON Lines, optionally gzip-compressed; `docs/shop.md` documents them):
//! - catalog: `item_id` and optionally `title`, `category` (one or a list), `price`, `brand`,
//!   `available`; any other numeric column is a feature, any other text column a categorical
//!   one;
//! - events: `user_id`, `item_id`, `timestamp`, `type` and optionally `session_id`, `quantity`,
//!   `revenue`, `ranking_id`, `position`, `propensity`; any other column is context;
//! - users: `user_id` and attributes (text columns become tokens, numeric ones features).
//!
//! A [`FieldMap`] names the columns when a file calls them otherwise. Without a catalog file the
//! catalog is derived from the events: every item of a kept event, with its most common title,
//! its first category and brand, and the median of its prices (denormalised exports such as
//! Online Retail carry these on every line).
//!
//! Every malformed record is either an error naming file, line and field ([`OnMalformed::Fail`])
//! or skipped and counted by reason ([`OnMalformed::Skip`]); the cleaning rules (an empty user,
//! a non-positive quantity or price, an excluded item) always skip and count. The reasons are the
//! `SKIP_*` constants and `malformed <field>`.

mod map;
mod source;

pub use map::{
    CATALOG_FIELDS, CategorySplit, EVENT_FIELDS, FieldMap, FieldSource, MapError, Role, USER_FIELDS,
};

use super::{EventKind, EventRecord, SHOP_FORMAT, ShopFiles, ShopManifest, SourceFile, UserRecord};
use crate::error::DataError;
use crate::report::{LoadReport, OnMalformed};
use crate::time::{TimeFormat, epoch_ms, parse_timestamp_ms};
use metarec_core::{Catalog, Item};
use source::{Columns, Declared, Input, Reader, Record};
use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};

/// Categories that get a one-hot feature of their own (the most frequent); the rest share
/// `category=other`.
pub const TOP_CATEGORIES: usize = 64;
/// Values of a categorical column that get a one-hot feature of their own; the rest share
/// `NAME=other`.
pub const TOP_VALUES: usize = 32;
/// The longest value kept in a `NAME=VALUE` token, in characters.
pub const MAX_TOKEN_VALUE: usize = 64;

/// Skip reason: an event names an item the catalog does not have.
pub const SKIP_UNKNOWN_ITEM: &str = "unknown item";
/// Skip reason: a catalog lists an item id twice (the first is kept).
pub const SKIP_DUPLICATED_ITEM: &str = "duplicated item id";
/// Skip reason: a users file lists a user id twice (the first is kept).
pub const SKIP_DUPLICATED_USER: &str = "duplicated user id";
/// Skip reason: an event's time cannot be read.
pub const SKIP_BAD_TIME: &str = "unparsable time";
/// Skip reason: an event's type is not a known kind nor mapped to one.
pub const SKIP_UNKNOWN_TYPE: &str = "unknown type";
/// Skip reason: a propensity outside (0, 1].
pub const SKIP_PROPENSITY: &str = "propensity outside (0, 1]";
/// Skip reason: a negative or non-finite revenue.
pub const SKIP_REVENUE: &str = "negative or non-finite revenue";
/// Skip reason (always a skip): an event without a user (a guest checkout).
pub const SKIP_MISSING_USER: &str = "missing user_id";
/// Skip reason (always a skip): an event with a quantity of zero or less (returns,
/// cancellations).
pub const SKIP_QUANTITY: &str = "non-positive quantity";
/// Skip reason (always a skip): an event with a price of zero or less (giveaways, adjustments).
pub const SKIP_PRICE: &str = "non-positive price";
/// Skip reason (always a skip): an event whose item is in the exclusion list.
pub const SKIP_EXCLUDED: &str = "excluded item";

/// What to import, and how.
#[derive(Debug, Clone, Default)]
pub struct ImportSpec {
    /// The catalog file; without one the catalog is derived from the events.
    pub catalog: Option<PathBuf>,
    /// The events file.
    pub events: PathBuf,
    /// The users file, if any.
    pub users: Option<PathBuf>,
    /// Which columns hold which fields.
    pub map: FieldMap,
    /// The layout of times that are neither epoch numbers nor ISO 8601.
    pub time_format: Option<TimeFormat>,
    /// A file of item keys (one per line; blank lines and `#` comments ignored) whose events are
    /// dropped and counted as [`SKIP_EXCLUDED`] (service lines such as postage).
    pub exclude_items: Option<PathBuf>,
    /// What to do with a malformed record.
    pub on_malformed: OnMalformed,
    /// The shop's name (default: the output directory's name).
    pub name: Option<String>,
}

/// A shop read and checked, not yet written: add item features, then [`PreparedShop::save`].
#[derive(Debug, Clone)]
pub struct PreparedShop {
    /// The catalog with its item features.
    pub catalog: Catalog,
    /// Every user: those of the users file in its order, then those only seen in events, in
    /// order of their first event.
    pub users: Vec<UserRecord>,
    /// The events, sorted by time (stably).
    pub events: Vec<EventRecord>,
    /// The manifest; its name and checksums are filled in when saved.
    pub manifest: ShopManifest,
    name: Option<String>,
}

/// What an import wrote.
#[derive(Debug, Clone)]
pub struct ImportOutcome {
    /// The shop directory.
    pub dir: PathBuf,
    /// `shop.json` as written.
    pub manifest: ShopManifest,
    /// What each file's import kept and skipped (also in the manifest): catalog (when given),
    /// events, users (when given).
    pub reports: Vec<LoadReport>,
}

/// Reads, checks and writes a shop directory at `out` (replacing a shop directory there only
/// with `overwrite`). Nothing is written unless every file imports.
pub fn import_shop(
    spec: &ImportSpec,
    out: &Path,
    overwrite: bool,
) -> Result<ImportOutcome, DataError> {
    prepare_shop(spec)?.save(out, overwrite)
}

/// Reads and checks a shop's files without writing anything.
pub fn prepare_shop(spec: &ImportSpec) -> Result<PreparedShop, DataError> {
    prepare_shop_with(spec, &mut |_| {})
}

/// Like [`prepare_shop`], telling `progress` what it is doing (`reading events ...`).
pub fn prepare_shop_with(
    spec: &ImportSpec,
    progress: &mut dyn FnMut(&str),
) -> Result<PreparedShop, DataError> {
    let mut sources = Vec::new();
    let mut reports = Vec::new();
    let excluded = match &spec.exclude_items {
        Some(path) => {
            let input = Input::read(path)?;
            let keys = read_exclusions(&input)?;
            sources.push(source_file("exclude_items", &input));
            keys
        }
        None => HashSet::new(),
    };
    let mut shared = SharedFields::default();

    let given_catalog = match &spec.catalog {
        Some(path) => {
            progress(&format!("reading the catalog {}", path.display()));
            let input = Input::read(path)?;
            let (table, report) = read_catalog(&input, spec, &mut shared)?;
            sources.push(source_file(Role::Catalog.as_str(), &input));
            reports.push(report);
            Some(table)
        }
        None => None,
    };

    progress(&format!("reading the events {}", spec.events.display()));
    let input = Input::read(&spec.events)?;
    let catalog_keys: Option<HashMap<String, usize>> = given_catalog.as_ref().map(|table| {
        table
            .rows
            .iter()
            .enumerate()
            .map(|(i, r)| (r.key.clone(), i))
            .collect()
    });
    let mut read = read_events(&input, spec, &excluded, catalog_keys.as_ref(), &mut shared)?;
    sources.push(source_file(Role::Events.as_str(), &input));
    shared.check()?;

    let users_file = match &spec.users {
        Some(path) => {
            progress(&format!("reading the users {}", path.display()));
            let input = Input::read(path)?;
            let users = read_users(&input, spec)?;
            sources.push(source_file(Role::Users.as_str(), &input));
            Some(users)
        }
        None => None,
    };

    progress("building the catalog");
    let catalog_path = spec.catalog.clone().unwrap_or_else(|| spec.events.clone());
    let derived = read.derived.take();
    let (table, missing_into) = match (given_catalog, derived) {
        (Some(table), _) => (table, &mut reports[0]),
        (None, derived) => (derived.unwrap_or_default().into_table(), &mut read.report),
    };
    let (catalog, unavailable, missing) = build_catalog(&table, &catalog_path)?;
    for (what, n) in missing {
        *missing_into.missing.entry(what).or_insert(0) += n;
    }

    progress(&format!("sorting {} events by time", read.events.len()));
    let mut events = read.events;
    if !events.is_sorted_by_key(|e| e.timestamp_ms) {
        events.sort_by_key(|e| e.timestamp_ms);
    }
    reports.push(read.report);

    let (mut users, user_features) = match users_file {
        Some((users, features, report)) => {
            reports.push(report);
            (users, features)
        }
        None => (Vec::new(), Vec::new()),
    };
    let mut only_in_events = Vec::new();
    {
        let mut known: HashSet<&str> = users.iter().map(|u| u.user.as_str()).collect();
        for e in &events {
            if known.insert(e.user.as_str()) {
                only_in_events.push(UserRecord {
                    user: e.user.clone(),
                    ..UserRecord::default()
                });
            }
        }
    }
    users.extend(only_in_events);

    let mut events_by_type = BTreeMap::new();
    for e in &events {
        *events_by_type
            .entry(e.kind.as_str().to_owned())
            .or_insert(0u64) += 1;
    }
    let mut map = spec.map.entries().clone();
    if let Some(f) = &spec.time_format {
        map.insert("time_format".into(), f.pattern().to_owned());
    }
    let manifest = ShopManifest {
        format: SHOP_FORMAT.to_owned(),
        name: String::new(),
        metarec_version: env!("CARGO_PKG_VERSION").to_owned(),
        items: catalog.len(),
        users: users.len(),
        events: events.len() as u64,
        events_by_type,
        first_ms: events.first().map(|e| e.timestamp_ms),
        last_ms: events.last().map(|e| e.timestamp_ms),
        user_features,
        unavailable,
        sources,
        map,
        reports,
        catalog_sha256: String::new(),
        users_sha256: String::new(),
        events_sha256: String::new(),
    };
    Ok(PreparedShop {
        catalog,
        users,
        events,
        manifest,
        name: spec.name.clone(),
    })
}

impl PreparedShop {
    /// Appends numeric item features (for instance `text_0`..`text_k` of title embeddings), one
    /// row per item in catalog order. Names must be new.
    pub fn add_item_features(
        &mut self,
        names: Vec<String>,
        rows: &[Vec<f32>],
    ) -> Result<(), DataError> {
        let invalid = |reason: String| DataError::Malformed {
            path: PathBuf::from("<catalog>"),
            line: 0,
            field: "features".into(),
            reason,
        };
        if rows.len() != self.catalog.len() {
            return Err(invalid(format!(
                "{} feature rows for {} items",
                rows.len(),
                self.catalog.len()
            )));
        }
        let old = self.catalog.features().names().to_vec();
        for n in &names {
            if old.contains(n) {
                return Err(invalid(format!("the catalog already has a feature `{n}`")));
            }
        }
        let mut values = Vec::with_capacity(rows.len() * names.len());
        for extra in rows {
            if extra.len() != names.len() {
                return Err(invalid(format!(
                    "a row of {} values for {} names",
                    extra.len(),
                    names.len()
                )));
            }
            values.extend_from_slice(extra);
        }
        self.catalog = self
            .catalog
            .with_features_appended(&names, &values)
            .map_err(|e| invalid(e.to_string()))?;
        Ok(())
    }

    /// Writes the shop directory atomically (see [`ShopFiles::save`]).
    pub fn save(self, out: &Path, overwrite: bool) -> Result<ImportOutcome, DataError> {
        let mut manifest = self.manifest;
        manifest.name = match self.name {
            Some(n) => n,
            None => out
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| "shop".into()),
        };
        let manifest = ShopFiles {
            manifest,
            catalog: &self.catalog,
            users: &self.users,
            events: &self.events,
        }
        .save(out, overwrite)?;
        Ok(ImportOutcome {
            dir: out.to_owned(),
            reports: manifest.reports.clone(),
            manifest,
        })
    }
}

fn source_file(role: &str, input: &Input) -> SourceFile {
    SourceFile {
        role: role.to_owned(),
        path: input.path.display().to_string(),
        sha256: input.sha256.clone(),
    }
}

fn read_exclusions(input: &Input) -> Result<HashSet<String>, DataError> {
    let text = std::str::from_utf8(&input.bytes).map_err(|e| {
        let line = 1 + input.bytes[..e.valid_up_to()]
            .iter()
            .filter(|&&b| b == b'\n')
            .count() as u64;
        DataError::Malformed {
            path: input.path.clone(),
            line,
            field: "<record>".into(),
            reason: "invalid UTF-8".into(),
        }
    })?;
    Ok(text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| normalize_key(l).into_owned())
        .collect())
}

/// Keys written as whole floats (`17850.0`, as pandas writes an integer column with gaps) lose
/// their zero fraction, so that the same id reads the same in every file.
pub fn normalize_key(key: &str) -> Cow<'_, str> {
    if let Some((int, frac)) = key.split_once('.') {
        let digits = int.strip_prefix('-').unwrap_or(int);
        if !digits.is_empty()
            && digits.bytes().all(|b| b.is_ascii_digit())
            && !frac.is_empty()
            && frac.bytes().all(|b| b == b'0')
        {
            return Cow::Borrowed(int);
        }
    }
    Cow::Borrowed(key)
}

/// A `NAME=VALUE` token, the value cut to [`MAX_TOKEN_VALUE`] characters.
fn token(name: &str, value: &str) -> String {
    let cut = match value.char_indices().nth(MAX_TOKEN_VALUE) {
        Some((at, _)) => &value[..at],
        None => value,
    };
    let mut t = String::with_capacity(name.len() + 1 + cut.len());
    t.push_str(name);
    t.push('=');
    t.push_str(cut);
    t
}

// ------------------------------------------------------------------------------------------------
// Resolving fields to columns
// ------------------------------------------------------------------------------------------------

/// Where one field's value is read from in one file.
#[derive(Debug, Clone)]
enum Src {
    Col(usize),
    Cols(Vec<usize>),
    Const(String),
    Row,
    Absent,
}

impl Src {
    fn columns(&self) -> &[usize] {
        match self {
            Src::Col(c) => std::slice::from_ref(c),
            Src::Cols(cs) => cs,
            _ => &[],
        }
    }
}

/// Unprefixed entries of fields that the catalog and the events share (`title=Description`):
/// a file without the column ignores them, but one of the files must have it, so that a typo
/// does not pass silently.
#[derive(Default)]
struct SharedFields {
    /// `(field, column) -> (found in some file, the first file that lacked it)`.
    seen: BTreeMap<(String, String), (bool, Option<PathBuf>)>,
}

impl SharedFields {
    fn note(&mut self, field: &str, column: &str, found: bool, path: &Path) {
        let e = self
            .seen
            .entry((field.to_owned(), column.to_owned()))
            .or_insert((false, None));
        e.0 |= found;
        if !found && e.1.is_none() {
            e.1 = Some(path.to_owned());
        }
    }

    fn check(&self) -> Result<(), DataError> {
        for ((field, column), (found, lacking)) in &self.seen {
            if let (false, Some(path)) = (found, lacking) {
                return Err(DataError::Malformed {
                    path: path.clone(),
                    line: 1,
                    field: field.clone(),
                    reason: format!("--map {field}={column}: the header has no column `{column}`"),
                });
            }
        }
        Ok(())
    }
}

fn header_error(reader: &Reader<'_>, field: &str, column: &str, hint: &str) -> DataError {
    let found: Vec<&str> = reader
        .columns()
        .names()
        .iter()
        .filter(|n| !n.starts_with('\u{0}'))
        .map(String::as_str)
        .collect();
    DataError::Malformed {
        path: reader.path().to_owned(),
        line: 1,
        field: field.to_owned(),
        reason: format!(
            "the header has no column `{column}` (found: {}){hint}",
            found.join(", ")
        ),
    }
}

/// Resolves `field` of a file of `role`. A field the map names must exist (except shared fields
/// named for every file, see [`SharedFields`]); an unmapped field is read from the column of its
/// own name when there is one; a required field that has neither is an error with a hint.
fn resolve(
    reader: &mut Reader<'_>,
    map: &FieldMap,
    role: Role,
    field: &str,
    required: bool,
    shared: &mut SharedFields,
) -> Result<Src, DataError> {
    let explicit = map.source(role, field);
    let prefixed = map.entries().contains_key(&format!("{role}.{field}"));
    let shares = Role::ALL
        .iter()
        .filter(|r| r.fields().contains(&field))
        .count()
        > 1;
    match explicit {
        Some(FieldSource::Const(v)) => Ok(Src::Const(v.clone())),
        Some(FieldSource::Row) => Ok(Src::Row),
        Some(source @ (FieldSource::Column(_) | FieldSource::Joined(_))) => {
            let mut cols = Vec::new();
            for name in source.columns() {
                match reader.lookup(name) {
                    Some(c) => cols.push(c),
                    None if shares && !prefixed && !required && reader.has_header() => {
                        shared.note(field, name, false, reader.path());
                        return Ok(Src::Absent);
                    }
                    None => {
                        return Err(header_error(
                            reader,
                            field,
                            name,
                            &format!("; fix --map {field}=..."),
                        ));
                    }
                }
            }
            if shares && !prefixed && !required {
                for name in source.columns() {
                    shared.note(field, name, true, reader.path());
                }
            }
            Ok(match source {
                FieldSource::Column(_) => Src::Col(cols[0]),
                _ => Src::Cols(cols),
            })
        }
        None => match reader.lookup(field) {
            Some(c) => Ok(Src::Col(c)),
            None if required => Err(header_error(
                reader,
                field,
                field,
                &format!("; name the column with --map {field}=COLUMN"),
            )),
            None => Ok(Src::Absent),
        },
    }
}

/// Reads a resolved field's value as text.
fn text<'x>(rec: &Record<'x>, src: &'x Src) -> Result<Option<Cow<'x, str>>, DataError> {
    match src {
        Src::Col(c) => rec.text(*c),
        Src::Cols(cs) => {
            let mut out = String::new();
            let mut any = false;
            for (k, &c) in cs.iter().enumerate() {
                if k > 0 {
                    out.push(':');
                }
                if let Some(t) = rec.text(c)? {
                    out.push_str(&t);
                    any = true;
                }
            }
            Ok(any.then_some(Cow::Owned(out)))
        }
        Src::Const(v) => Ok((!v.is_empty()).then_some(Cow::Borrowed(v.as_str()))),
        Src::Row => Ok(Some(Cow::Owned(rec.line().to_string()))),
        Src::Absent => Ok(None),
    }
}

/// The name of a resolved field in errors: its column, or the field itself.
fn field_name(rec: &Record<'_>, src: &Src, field: &str) -> String {
    match src {
        Src::Col(c) => rec.name(*c).into_owned(),
        _ => field.to_owned(),
    }
}

fn malformed_at(rec: &Record<'_>, src: &Src, field: &str, reason: impl Into<String>) -> DataError {
    rec.malformed_field(&field_name(rec, src, field), reason)
}

/// Reads a resolved field's value as a finite number.
fn number(rec: &Record<'_>, src: &Src, field: &str) -> Result<Option<f64>, DataError> {
    match src {
        Src::Col(c) => rec.number(*c),
        Src::Absent => Ok(None),
        _ => match text(rec, src)? {
            None => Ok(None),
            Some(t) => match t.parse::<f64>() {
                Ok(v) if v.is_finite() => Ok(Some(v)),
                _ => Err(malformed_at(
                    rec,
                    src,
                    field,
                    format!(
                        "`{}` is not a finite number",
                        crate::table::truncate(&t, 40)
                    ),
                )),
            },
        },
    }
}

/// Reads a whole number in `[min, max]` (written as an integer or an integral decimal).
fn whole(
    rec: &Record<'_>,
    src: &Src,
    field: &str,
    min: f64,
    max: f64,
) -> Result<Option<i64>, DataError> {
    match number(rec, src, field)? {
        None => Ok(None),
        Some(v) if v.fract() == 0.0 && v >= min && v <= max => Ok(Some(v as i64)),
        Some(v) => Err(malformed_at(
            rec,
            src,
            field,
            format!("{v} is not a whole number from {min} to {max}"),
        )),
    }
}

/// Reads a yes/no value: `1`, `true`, `yes`, `y`, `t` or any non-zero number is true; `0`,
/// `false`, `no`, `n`, `f` is false (any case); empty is `None`.
fn flag(rec: &Record<'_>, src: &Src, field: &str) -> Result<Option<bool>, DataError> {
    let Some(t) = text(rec, src)? else {
        return Ok(None);
    };
    let t = t.to_ascii_lowercase();
    match t.as_str() {
        "1" | "true" | "yes" | "y" | "t" => Ok(Some(true)),
        "0" | "false" | "no" | "n" | "f" => Ok(Some(false)),
        other => match other.parse::<f64>() {
            Ok(v) if v.is_finite() => Ok(Some(v != 0.0)),
            _ => Err(malformed_at(
                rec,
                src,
                field,
                format!(
                    "`{}` is not a yes/no value (1/0, true/false, yes/no)",
                    crate::table::truncate(other, 40)
                ),
            )),
        },
    }
}

/// Chooses the columns of a file that are not mapped to a field (a catalog's or a users file's
/// attributes, an events file's context), or the columns a `context=` entry names. JSON Lines
/// files reveal columns as they go, so the choice is refreshed when the column count grows.
struct Unmapped {
    mapped: HashSet<usize>,
    allowed: Option<HashSet<String>>,
    known: usize,
    selected: Vec<usize>,
}

impl Unmapped {
    fn new(mapped: HashSet<usize>, allowed: Option<&[String]>) -> Self {
        Unmapped {
            mapped,
            allowed: allowed.map(|a| a.iter().cloned().collect()),
            known: 0,
            selected: Vec::new(),
        }
    }

    fn refresh(&mut self, columns: &Columns) -> &[usize] {
        let names = columns.names();
        for (i, name) in names.iter().enumerate().skip(self.known) {
            let real = !name.is_empty() && !name.starts_with('\u{0}');
            // Named columns are chosen even when mapped (Open Bandit's user features are both
            // the user id and the context); otherwise every unmapped column is.
            let chosen = match &self.allowed {
                Some(a) => a.contains(name),
                None => !self.mapped.contains(&i),
            };
            if real && chosen {
                self.selected.push(i);
            }
        }
        self.known = names.len();
        &self.selected
    }
}

/// A record that is not kept: an error in [`OnMalformed::Fail`] mode, a skip counted under
/// `reason` otherwise.
struct Rejected {
    error: DataError,
    reason: Cow<'static, str>,
}

impl From<DataError> for Rejected {
    fn from(error: DataError) -> Self {
        let reason = match &error {
            DataError::Malformed { field, .. } => Cow::Owned(format!("malformed {field}")),
            DataError::Invalid { source, .. } => Cow::Owned(format!("invalid record: {source}")),
            other => Cow::Owned(format!("malformed: {other}")),
        };
        Rejected { error, reason }
    }
}

fn rejected(error: DataError, reason: &'static str) -> Rejected {
    Rejected {
        error,
        reason: Cow::Borrowed(reason),
    }
}

/// Applies the malformed-record policy.
fn reject(
    r: Rejected,
    on_malformed: OnMalformed,
    report: &mut LoadReport,
) -> Result<(), DataError> {
    match on_malformed {
        OnMalformed::Fail => Err(r.error),
        OnMalformed::Skip => {
            report.skip(&r.reason);
            Ok(())
        }
    }
}

// ------------------------------------------------------------------------------------------------
// Attributes: the unmapped columns of a catalog or users file
// ------------------------------------------------------------------------------------------------

/// The values of a file's unmapped columns, typed once every record is read: a column is numeric
/// when its header declares it so, or when it declares nothing and every non-empty value is a
/// finite number; otherwise it is categorical.
#[derive(Default)]
struct Attributes {
    /// Column index -> slot.
    slot: HashMap<usize, usize>,
    names: Vec<String>,
    declared: Vec<Declared>,
    /// Per kept record: `(slot, text)` of its non-empty values.
    rows: Vec<Vec<(usize, String)>>,
}

/// Attribute columns after typing.
#[derive(Default)]
struct TypedAttributes {
    numeric: Vec<(String, Vec<Option<f64>>)>,
    categorical: Vec<(String, Vec<Option<String>>)>,
}

impl Attributes {
    /// Reads the attribute values of a record; a value in a column declared numeric must be a
    /// number.
    fn read(
        &mut self,
        rec: &Record<'_>,
        columns: &Columns,
        cols: &[usize],
    ) -> Result<Vec<(usize, String)>, DataError> {
        let mut values = Vec::new();
        for &c in cols {
            let Some(t) = rec.text(c)? else {
                continue;
            };
            let slot = match self.slot.get(&c) {
                Some(&s) => s,
                None => {
                    let s = self.names.len();
                    self.slot.insert(c, s);
                    self.names.push(rec.name(c).into_owned());
                    self.declared.push(columns.declared(c));
                    s
                }
            };
            if self.declared[slot] == Declared::Numeric {
                rec.number(c)?;
            }
            values.push((slot, t.into_owned()));
        }
        Ok(values)
    }

    fn keep(&mut self, values: Vec<(usize, String)>) {
        self.rows.push(values);
    }

    fn into_typed(self) -> TypedAttributes {
        let n = self.rows.len();
        let mut columns: Vec<Vec<Option<String>>> = vec![vec![None; n]; self.names.len()];
        for (r, values) in self.rows.into_iter().enumerate() {
            for (slot, v) in values {
                columns[slot][r] = Some(v);
            }
        }
        let mut out = TypedAttributes::default();
        for ((name, declared), values) in self.names.into_iter().zip(self.declared).zip(columns) {
            let parsed: Vec<Option<Option<f64>>> = values
                .iter()
                .map(|v| {
                    v.as_ref()
                        .map(|t| t.parse::<f64>().ok().filter(|x| x.is_finite()))
                })
                .collect();
            let numeric = match declared {
                Declared::Numeric => true,
                Declared::Token => false,
                Declared::Unknown => parsed.iter().flatten().all(Option::is_some),
            };
            if numeric {
                out.numeric
                    .push((name, parsed.into_iter().map(Option::flatten).collect()));
            } else {
                out.categorical.push((name, values));
            }
        }
        out
    }
}

// ------------------------------------------------------------------------------------------------
// The catalog
// ------------------------------------------------------------------------------------------------

/// One catalog item as read.
#[derive(Debug, Clone, Default)]
struct ItemRow {
    key: String,
    title: Option<String>,
    categories: Vec<String>,
    price: Option<f64>,
    brand: Option<String>,
    available: bool,
    line: u64,
}

/// The items of a catalog with their attribute columns.
#[derive(Default)]
struct ItemTable {
    rows: Vec<ItemRow>,
    attributes: TypedAttributes,
}

fn read_catalog(
    input: &Input,
    spec: &ImportSpec,
    shared: &mut SharedFields,
) -> Result<(ItemTable, LoadReport), DataError> {
    let mut reader = Reader::new(input)?;
    let map = &spec.map;
    let role = Role::Catalog;
    let id = resolve(&mut reader, map, role, "item_id", true, shared)?;
    let title = resolve(&mut reader, map, role, "title", false, shared)?;
    let category = resolve(&mut reader, map, role, "category", false, shared)?;
    let price = resolve(&mut reader, map, role, "price", false, shared)?;
    let brand = resolve(&mut reader, map, role, "brand", false, shared)?;
    let available = resolve(&mut reader, map, role, "available", false, shared)?;
    let mapped: HashSet<usize> = [&id, &title, &category, &price, &brand, &available]
        .iter()
        .flat_map(|s| s.columns().iter().copied())
        .collect();
    let mut unmapped = Unmapped::new(mapped, None);
    let split = map.category_split();
    let mut report = LoadReport::new(input.path.display().to_string());
    let mut rows: Vec<ItemRow> = Vec::new();
    let mut first_line: HashMap<String, u64> = HashMap::new();
    let mut attributes = Attributes::default();
    reader.for_each(|columns, rec| {
        let rec = match rec {
            Ok(r) => r,
            Err(e) => return reject(e.into(), spec.on_malformed, &mut report),
        };
        let cols = unmapped.refresh(columns);
        let parsed = (|| -> Result<(ItemRow, Vec<(usize, String)>), Rejected> {
            rec.check_width()?;
            let key = text(&rec, &id)?.ok_or_else(|| {
                malformed_at(&rec, &id, "item_id", "empty, but an item id is required")
            })?;
            let key = normalize_key(&key).into_owned();
            if let Some(first) = first_line.get(&key) {
                return Err(rejected(
                    malformed_at(
                        &rec,
                        &id,
                        "item_id",
                        format!(
                            "item `{}` appears twice (first on line {first})",
                            key.escape_debug()
                        ),
                    ),
                    SKIP_DUPLICATED_ITEM,
                ));
            }
            let title = text(&rec, &title)?.map(Cow::into_owned);
            let categories = match &category {
                Src::Col(c) => rec.list(*c, split)?,
                other => text(&rec, other)?
                    .map(|t| vec![t.into_owned()])
                    .unwrap_or_default(),
            };
            let price = match number(&rec, &price, "price")? {
                Some(p) if !(p >= 0.0 && (p as f32).is_finite()) => {
                    return Err(malformed_at(
                        &rec,
                        &price,
                        "price",
                        format!("{p} is not a price (finite, zero or more)"),
                    )
                    .into());
                }
                p => p,
            };
            let brand = text(&rec, &brand)?.map(Cow::into_owned);
            let available = flag(&rec, &available, "available")?.unwrap_or(true);
            let values = attributes.read(&rec, columns, cols)?;
            Ok((
                ItemRow {
                    key,
                    title,
                    categories,
                    price,
                    brand,
                    available,
                    line: rec.line(),
                },
                values,
            ))
        })();
        match parsed {
            Ok((row, values)) => {
                first_line.insert(row.key.clone(), row.line);
                rows.push(row);
                attributes.keep(values);
                report.keep();
                Ok(())
            }
            Err(r) => reject(r, spec.on_malformed, &mut report),
        }
    })?;
    Ok((
        ItemTable {
            rows,
            attributes: attributes.into_typed(),
        },
        report,
    ))
}

/// A catalog, the keys of its unavailable items, and the counts of missing numeric values.
type BuiltCatalog = (Catalog, Vec<String>, BTreeMap<String, u64>);

/// Builds the catalog of an item table (see [`BuiltCatalog`]).
fn build_catalog(table: &ItemTable, path: &Path) -> Result<BuiltCatalog, DataError> {
    let n = table.rows.len();
    let mut columns = ItemColumns {
        prices: table.rows.iter().map(|r| r.price).collect(),
        categories: table.rows.iter().map(|r| r.categories.clone()).collect(),
        numeric: table.attributes.numeric.clone(),
        categorical: Vec::new(),
    };
    if table.rows.iter().any(|r| r.brand.is_some()) {
        columns.categorical.push((
            "brand".into(),
            table.rows.iter().map(|r| r.brand.clone()).collect(),
        ));
    }
    columns
        .categorical
        .extend(table.attributes.categorical.iter().cloned());
    let features = item_features(n, &columns);
    let mut catalog = Catalog::new(features.names);
    for (row, values) in table.rows.iter().zip(features.rows) {
        catalog
            .push(Item {
                key: row.key.clone(),
                title: row.title.clone(),
                category: row.categories.first().cloned(),
                price: row.price.map(|p| p as f32),
                features: values,
                embedding: None,
            })
            .map_err(|source| DataError::Invalid {
                path: path.to_owned(),
                line: row.line,
                source,
            })?;
    }
    let unavailable = table
        .rows
        .iter()
        .filter(|r| !r.available)
        .map(|r| r.key.clone())
        .collect();
    Ok((catalog, unavailable, features.missing))
}

/// The catalog columns that become item features, one entry per item in each non-empty column.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ItemColumns {
    /// Prices (empty when the catalog has none).
    pub prices: Vec<Option<f64>>,
    /// Categories, the first being the item's main one (empty when the catalog has none).
    pub categories: Vec<Vec<String>>,
    /// Other numeric columns by name.
    pub numeric: Vec<(String, Vec<Option<f64>>)>,
    /// Categorical columns by name (the brand first, when there is one).
    pub categorical: Vec<(String, Vec<Option<String>>)>,
}

/// Item features built by [`item_features`].
#[derive(Debug, Clone, PartialEq)]
pub struct ItemFeatures {
    /// Feature names, one per column.
    pub names: Vec<String>,
    /// One row per item.
    pub rows: Vec<Vec<f32>>,
    /// Missing numeric values (set to 0 after standardising), by column name.
    pub missing: BTreeMap<String, u64>,
}

/// Builds the numeric item features the neural network reads, in this order:
/// - `log_price`: ln(1 + price), standardised (zero mean, unit variance over the items that
///   have a price);
/// - `num:NAME` for every other numeric column, standardised the same way;
/// - `category=NAME` one-hots for the [`TOP_CATEGORIES`] most frequent categories (by items;
///   ties by name), `category=other` for the rest; an item with several categories sets several;
/// - `NAME=VALUE` one-hots for the [`TOP_VALUES`] most frequent values of each categorical
///   column, `NAME=other` for the rest.
///
/// A missing number is 0 after standardising (the mean) and is counted in `missing`; a column
/// with a single distinct value standardises to 0. `other` columns exist only when used.
pub fn item_features(items: usize, columns: &ItemColumns) -> ItemFeatures {
    let mut names = Vec::new();
    let mut rows = vec![Vec::new(); items];
    let mut missing = BTreeMap::new();
    let mut standardised = |name: String, values: Vec<Option<f64>>, rows: &mut Vec<Vec<f32>>| {
        let present: Vec<f64> = values.iter().flatten().copied().collect();
        if present.is_empty() {
            return;
        }
        let absent = values.len() - present.len();
        if absent > 0 {
            missing.insert(name.clone(), absent as u64);
        }
        let mean = present.iter().sum::<f64>() / present.len() as f64;
        let var =
            present.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / present.len() as f64;
        let sd = var.sqrt();
        for (row, v) in rows.iter_mut().zip(&values) {
            let z = match v {
                Some(x) if sd > 0.0 && sd.is_finite() => ((x - mean) / sd) as f32,
                _ => 0.0,
            };
            row.push(if z.is_finite() { z } else { 0.0 });
        }
        names.push(name);
    };
    if columns.prices.len() == items {
        let logs = columns
            .prices
            .iter()
            .map(|p| p.map(|p| p.max(0.0).ln_1p()))
            .collect();
        standardised("log_price".into(), logs, &mut rows);
    }
    for (name, values) in &columns.numeric {
        if values.len() == items {
            standardised(format!("num:{name}"), values.clone(), &mut rows);
        }
    }
    if columns.categories.len() == items {
        one_hots(
            "category",
            &columns.categories,
            TOP_CATEGORIES,
            &mut names,
            &mut rows,
        );
    }
    for (name, values) in &columns.categorical {
        if values.len() == items {
            let lists: Vec<Vec<String>> =
                values.iter().map(|v| v.iter().cloned().collect()).collect();
            one_hots(name, &lists, TOP_VALUES, &mut names, &mut rows);
        }
    }
    ItemFeatures {
        names,
        rows,
        missing,
    }
}

/// Appends one-hot columns `PREFIX=VALUE` for the `top` most frequent values (by items holding
/// them; ties by value) and `PREFIX=other` for the rest, when any.
fn one_hots(
    prefix: &str,
    lists: &[Vec<String>],
    top: usize,
    names: &mut Vec<String>,
    rows: &mut [Vec<f32>],
) {
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for list in lists {
        let mut seen: Vec<&str> = Vec::with_capacity(list.len());
        for v in list {
            if !seen.contains(&v.as_str()) {
                seen.push(v);
                *counts.entry(v).or_insert(0) += 1;
            }
        }
    }
    if counts.is_empty() {
        return;
    }
    let mut order: Vec<(&str, usize)> = counts.into_iter().collect();
    order.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(b.0)));
    let kept: HashMap<&str, usize> = order
        .iter()
        .take(top)
        .enumerate()
        .map(|(k, (v, _))| (*v, k))
        .collect();
    let other = order.len() > top;
    let base = names.len();
    for (v, _) in order.iter().take(top) {
        names.push(format!("{prefix}={v}"));
    }
    if other {
        names.push(format!("{prefix}=other"));
    }
    let width = kept.len() + usize::from(other);
    for (row, list) in rows.iter_mut().zip(lists) {
        let start = row.len();
        row.resize(start + width, 0.0);
        for v in list {
            match kept.get(v.as_str()) {
                Some(&k) => row[start + k] = 1.0,
                None => row[start + kept.len()] = 1.0,
            }
        }
    }
    debug_assert_eq!(names.len(), base + width);
}

/// The catalog an events file builds when no catalog file is given.
#[derive(Default)]
struct Derived {
    index: HashMap<String, usize>,
    items: Vec<DerivedItem>,
}

#[derive(Default)]
struct DerivedItem {
    key: String,
    /// Distinct titles with their counts (most items have one or two, so a list is cheaper
    /// than a map).
    titles: Vec<(Box<str>, u32)>,
    prices: Vec<f64>,
    categories: Vec<String>,
    brand: Option<String>,
    line: u64,
}

impl Derived {
    fn add(
        &mut self,
        key: &str,
        line: u64,
        title: Option<&str>,
        price: Option<f64>,
        categories: Vec<String>,
        brand: Option<String>,
    ) {
        let i = match self.index.get(key) {
            Some(&i) => i,
            None => {
                let i = self.items.len();
                self.index.insert(key.to_owned(), i);
                self.items.push(DerivedItem {
                    key: key.to_owned(),
                    line,
                    ..DerivedItem::default()
                });
                i
            }
        };
        let item = &mut self.items[i];
        if let Some(t) = title {
            match item.titles.iter_mut().find(|(s, _)| &**s == t) {
                Some((_, n)) => *n += 1,
                None => item.titles.push((t.into(), 1)),
            }
        }
        if let Some(p) = price {
            item.prices.push(p);
        }
        if item.categories.is_empty() {
            item.categories = categories;
        }
        if item.brand.is_none() {
            item.brand = brand;
        }
    }

    fn into_table(self) -> ItemTable {
        let rows = self
            .items
            .into_iter()
            .map(|mut it| {
                // The most common title; ties go to the alphabetically first, so the result
                // does not depend on file order.
                let title = it
                    .titles
                    .iter()
                    .max_by(|(a, na), (b, nb)| na.cmp(nb).then_with(|| b.cmp(a)))
                    .map(|(t, _)| t.to_string());
                ItemRow {
                    key: it.key,
                    title,
                    categories: it.categories,
                    price: median(&mut it.prices),
                    brand: it.brand,
                    available: true,
                    line: it.line,
                }
            })
            .collect();
        ItemTable {
            rows,
            attributes: TypedAttributes::default(),
        }
    }
}

/// The median (the mean of the middle two for an even count); `None` for no values.
fn median(values: &mut [f64]) -> Option<f64> {
    let n = values.len();
    if n == 0 {
        return None;
    }
    let mid = n / 2;
    let (lower, m, _) = values.select_nth_unstable_by(mid, f64::total_cmp);
    let m = *m;
    Some(if n % 2 == 1 {
        m
    } else {
        let below = lower.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        (below + m) / 2.0
    })
}

// ------------------------------------------------------------------------------------------------
// Users
// ------------------------------------------------------------------------------------------------

fn read_users(
    input: &Input,
    spec: &ImportSpec,
) -> Result<(Vec<UserRecord>, Vec<String>, LoadReport), DataError> {
    let mut reader = Reader::new(input)?;
    let mut shared = SharedFields::default();
    let id = resolve(
        &mut reader,
        &spec.map,
        Role::Users,
        "user_id",
        true,
        &mut shared,
    )?;
    let mut unmapped = Unmapped::new(id.columns().iter().copied().collect(), None);
    let mut report = LoadReport::new(input.path.display().to_string());
    let mut keys: Vec<String> = Vec::new();
    let mut first_line: HashMap<String, u64> = HashMap::new();
    let mut attributes = Attributes::default();
    reader.for_each(|columns, rec| {
        let rec = match rec {
            Ok(r) => r,
            Err(e) => return reject(e.into(), spec.on_malformed, &mut report),
        };
        let cols = unmapped.refresh(columns);
        let parsed = (|| -> Result<(String, Vec<(usize, String)>), Rejected> {
            rec.check_width()?;
            let key = text(&rec, &id)?.ok_or_else(|| {
                malformed_at(&rec, &id, "user_id", "empty, but a user id is required")
            })?;
            let key = normalize_key(&key).into_owned();
            if let Some(first) = first_line.get(&key) {
                return Err(rejected(
                    malformed_at(
                        &rec,
                        &id,
                        "user_id",
                        format!(
                            "user `{}` appears twice (first on line {first})",
                            key.escape_debug()
                        ),
                    ),
                    SKIP_DUPLICATED_USER,
                ));
            }
            Ok((key, attributes.read(&rec, columns, cols)?))
        })();
        match parsed {
            Ok((key, values)) => {
                first_line.insert(key.clone(), rec.line());
                keys.push(key);
                attributes.keep(values);
                report.keep();
                Ok(())
            }
            Err(r) => reject(r, spec.on_malformed, &mut report),
        }
    })?;
    let typed = attributes.into_typed();
    let mut users: Vec<UserRecord> = keys
        .into_iter()
        .map(|user| UserRecord {
            user,
            ..UserRecord::default()
        })
        .collect();
    let mut names = Vec::new();
    for (name, values) in &typed.numeric {
        let columns = ItemColumns {
            numeric: vec![(name.clone(), values.clone())],
            ..ItemColumns::default()
        };
        let f = item_features(users.len(), &columns);
        for (what, n) in f.missing {
            *report
                .missing
                .entry(what.trim_start_matches("num:").to_owned())
                .or_insert(0) += n;
        }
        if f.names.is_empty() {
            continue;
        }
        names.push(name.clone());
        for (u, row) in users.iter_mut().zip(f.rows) {
            u.features.extend(row);
        }
    }
    for (name, values) in &typed.categorical {
        for (u, v) in users.iter_mut().zip(values) {
            if let Some(v) = v {
                u.tokens.push(token(name, v));
            }
        }
    }
    Ok((users, names, report))
}

// ------------------------------------------------------------------------------------------------
// Events
// ------------------------------------------------------------------------------------------------

struct EventsRead {
    events: Vec<EventRecord>,
    report: LoadReport,
    /// The catalog built from the events, when no catalog file was given.
    derived: Option<Derived>,
}

/// The resolved fields of an events file.
struct EventColumns {
    user: Src,
    item: Src,
    time: Src,
    kind: Src,
    session: Src,
    ranking: Src,
    position: Src,
    propensity: Src,
    quantity: Src,
    revenue: Src,
    title: Src,
    category: Src,
    price: Src,
    brand: Src,
    flags: Vec<(EventKind, Src)>,
}

/// One event row parsed, before the cleaning rules.
struct ParsedEvent {
    user: Option<String>,
    item: String,
    timestamp_ms: i64,
    kind: EventKind,
    session: Option<String>,
    ranking: Option<String>,
    position: Option<u32>,
    propensity: Option<f64>,
    quantity: Option<i64>,
    revenue: Option<f64>,
    price: Option<f64>,
    title: Option<String>,
    categories: Vec<String>,
    brand: Option<String>,
    flags: Vec<EventKind>,
}

fn read_events(
    input: &Input,
    spec: &ImportSpec,
    excluded: &HashSet<String>,
    catalog_keys: Option<&HashMap<String, usize>>,
    shared: &mut SharedFields,
) -> Result<EventsRead, DataError> {
    let mut reader = Reader::new(input)?;
    let map = &spec.map;
    let role = Role::Events;
    let mut r =
        |field: &str, required: bool| resolve(&mut reader, map, role, field, required, shared);
    let mut cols = EventColumns {
        user: r("user_id", true)?,
        item: r("item_id", true)?,
        time: r("timestamp", true)?,
        kind: Src::Absent,
        session: r("session_id", false)?,
        ranking: r("ranking_id", false)?,
        position: r("position", false)?,
        propensity: r("propensity", false)?,
        quantity: r("quantity", false)?,
        revenue: r("revenue", false)?,
        title: r("title", false)?,
        category: r("category", false)?,
        price: r("price", false)?,
        brand: r("brand", false)?,
        flags: Vec::new(),
    };
    cols.kind = match resolve(&mut reader, map, role, "type", false, shared)? {
        Src::Absent => {
            return Err(header_error(
                &reader,
                "type",
                "type",
                "; name the column with --map type=COLUMN, or give every event one type with --map type=const:purchase",
            ));
        }
        src => src,
    };
    for (kind, column) in map.flags() {
        match reader.lookup(column) {
            Some(c) => cols.flags.push((kind, Src::Col(c))),
            None => {
                return Err(header_error(
                    &reader,
                    &format!("flag.{}", kind.as_str()),
                    column,
                    "; fix --map flag.KIND=COLUMN",
                ));
            }
        }
    }
    let mut mapped: HashSet<usize> = HashSet::new();
    for src in [
        &cols.user,
        &cols.item,
        &cols.time,
        &cols.kind,
        &cols.session,
        &cols.ranking,
        &cols.position,
        &cols.propensity,
        &cols.quantity,
        &cols.revenue,
        &cols.title,
        &cols.category,
        &cols.price,
        &cols.brand,
    ]
    .into_iter()
    .chain(cols.flags.iter().map(|(_, s)| s))
    {
        mapped.extend(src.columns().iter().copied());
    }
    let mut context = Unmapped::new(mapped, map.context());
    let mut derived = catalog_keys.is_none().then(Derived::default);
    let derive = derived.is_some();
    let split = map.category_split();
    let base = f64::from(map.position_base());
    let mut report = LoadReport::new(input.path.display().to_string());
    // One event per line is the common case: reserving for it saves copying a million records
    // as the vector grows.
    let lines = memchr::memchr_iter(b'\n', &input.bytes).count();
    let mut events: Vec<EventRecord> = Vec::with_capacity(lines + 1);
    let time_format = spec.time_format.as_ref();

    reader.for_each(|columns, rec| {
        let rec = match rec {
            Ok(r) => r,
            Err(e) => return reject(e.into(), spec.on_malformed, &mut report),
        };
        let context_cols = context.refresh(columns);
        let parsed = (|| -> Result<ParsedEvent, Rejected> {
            rec.check_width()?;
            let user = text(&rec, &cols.user)?.map(|u| normalize_key(&u).into_owned());
            let item = text(&rec, &cols.item)?.ok_or_else(|| {
                malformed_at(
                    &rec,
                    &cols.item,
                    "item_id",
                    "empty, but an item id is required",
                )
            })?;
            let item = normalize_key(&item).into_owned();
            let timestamp_ms = read_time(&rec, &cols.time, time_format)?;
            let kind = match text(&rec, &cols.kind)? {
                None => {
                    return Err(rejected(
                        malformed_at(
                            &rec,
                            &cols.kind,
                            "type",
                            format!("empty; {}", map.type_hint()),
                        ),
                        SKIP_UNKNOWN_TYPE,
                    ));
                }
                Some(t) => map.kind_of(&t).ok_or_else(|| {
                    rejected(
                        malformed_at(
                            &rec,
                            &cols.kind,
                            "type",
                            format!(
                                "`{}` is not an event type; {}",
                                crate::table::truncate(&t, 40),
                                map.type_hint()
                            ),
                        ),
                        SKIP_UNKNOWN_TYPE,
                    )
                })?,
            };
            let session = text(&rec, &cols.session)?.map(Cow::into_owned);
            let ranking = text(&rec, &cols.ranking)?.map(Cow::into_owned);
            let position = match whole(&rec, &cols.position, "position", 0.0, f64::from(u32::MAX))?
            {
                Some(p) if (p as f64) < base => {
                    return Err(malformed_at(
                        &rec,
                        &cols.position,
                        "position",
                        format!("{p}: positions count from {base} here (position.base)"),
                    )
                    .into());
                }
                p => p.map(|p| (p - base as i64) as u32),
            };
            let propensity = match number(&rec, &cols.propensity, "propensity")? {
                Some(p) if !(p > 0.0 && p <= 1.0) => {
                    return Err(rejected(
                        malformed_at(
                            &rec,
                            &cols.propensity,
                            "propensity",
                            format!("{p} is outside (0, 1]"),
                        ),
                        SKIP_PROPENSITY,
                    ));
                }
                p => p,
            };
            let quantity = whole(
                &rec,
                &cols.quantity,
                "quantity",
                -9.0e15,
                f64::from(u32::MAX),
            )?;
            let revenue = match number(&rec, &cols.revenue, "revenue")? {
                Some(v) if v < 0.0 => {
                    return Err(rejected(
                        malformed_at(&rec, &cols.revenue, "revenue", format!("{v} is negative")),
                        SKIP_REVENUE,
                    ));
                }
                v => v,
            };
            let price = match number(&rec, &cols.price, "price")? {
                Some(p) if !(p as f32).is_finite() => {
                    return Err(malformed_at(
                        &rec,
                        &cols.price,
                        "price",
                        format!("{p} is too large for a price"),
                    )
                    .into());
                }
                p => p,
            };
            let (title, categories, brand) = if derive {
                (
                    text(&rec, &cols.title)?.map(Cow::into_owned),
                    match &cols.category {
                        Src::Col(c) => rec.list(*c, split)?,
                        other => text(&rec, other)?
                            .map(|t| vec![t.into_owned()])
                            .unwrap_or_default(),
                    },
                    text(&rec, &cols.brand)?.map(Cow::into_owned),
                )
            } else {
                (None, Vec::new(), None)
            };
            let mut flags = Vec::new();
            for (kind, src) in &cols.flags {
                if flag(&rec, src, &format!("flag.{}", kind.as_str()))? == Some(true) {
                    flags.push(*kind);
                }
            }
            Ok(ParsedEvent {
                user,
                item,
                timestamp_ms,
                kind,
                session,
                ranking,
                position,
                propensity,
                quantity,
                revenue,
                price,
                title,
                categories,
                brand,
                flags,
            })
        })();
        let e = match parsed {
            Ok(e) => e,
            Err(r) => return reject(r, spec.on_malformed, &mut report),
        };
        // The cleaning rules, first that applies. An excluded item is checked first, since the
        // item says what a line is about (a service line is one whatever else holds for it).
        if excluded.contains(&e.item) {
            report.skip(SKIP_EXCLUDED);
            return Ok(());
        }
        if let Some(index) = catalog_keys {
            if !index.contains_key(&e.item) {
                let error = malformed_at(
                    &rec,
                    &cols.item,
                    "item_id",
                    format!("item `{}` is not in the catalog", e.item.escape_debug()),
                );
                return reject(
                    rejected(error, SKIP_UNKNOWN_ITEM),
                    spec.on_malformed,
                    &mut report,
                );
            }
        }
        let Some(user) = e.user else {
            report.skip(SKIP_MISSING_USER);
            return Ok(());
        };
        if e.quantity.is_some_and(|q| q <= 0) {
            report.skip(SKIP_QUANTITY);
            return Ok(());
        }
        if e.price.is_some_and(|p| p <= 0.0) {
            report.skip(SKIP_PRICE);
            return Ok(());
        }
        let quantity = e.quantity.map(|q| q as u32);
        let revenue_of = |kind: EventKind| -> Option<f64> {
            if kind != EventKind::Purchase {
                return e.revenue;
            }
            e.revenue.or_else(|| {
                e.price
                    .map(|p| p * f64::from(quantity.unwrap_or(1)))
                    .filter(|v| v.is_finite())
            })
        };
        let mut tokens = Vec::new();
        for &c in context_cols {
            if let Ok(Some(v)) = rec.text(c) {
                tokens.push(token(&rec.name(c), &v));
            }
        }
        if let Some(derived) = &mut derived {
            derived.add(
                &e.item,
                rec.line(),
                e.title.as_deref(),
                e.price,
                e.categories,
                e.brand,
            );
        }
        let record = EventRecord {
            user,
            item: e.item,
            timestamp_ms: e.timestamp_ms,
            kind: e.kind,
            session: e.session,
            ranking: e.ranking,
            position: e.position,
            propensity: e.propensity,
            quantity,
            revenue: revenue_of(e.kind),
            context: tokens,
        };
        // A flag adds feedback on the same shown item, after the row's own event: same user,
        // item, time, visit, ranking and position; the logging propensity stays with the
        // impression.
        for &kind in &e.flags {
            let mut copy = record.clone();
            copy.kind = kind;
            copy.propensity = None;
            copy.revenue = revenue_of(kind);
            if kind != EventKind::Purchase {
                copy.quantity = None;
            }
            events.push(copy);
        }
        let at = events.len() - e.flags.len();
        events.insert(at, record);
        report.keep();
        Ok(())
    })?;
    Ok(EventsRead {
        events,
        report,
        derived,
    })
}

/// Reads an event's time: with a format, by it; otherwise an epoch number or ISO 8601.
fn read_time(rec: &Record<'_>, src: &Src, format: Option<&TimeFormat>) -> Result<i64, Rejected> {
    let bad = |shown: &str| {
        let expected = match format {
            Some(f) => format!("a time like --time-format {}", f.pattern()),
            None => "epoch seconds or milliseconds, or ISO 8601 like 2011-12-09T12:50:00Z (use --time-format for other layouts)".to_owned(),
        };
        rejected(
            malformed_at(
                rec,
                src,
                "timestamp",
                format!("`{}` is not {expected}", crate::table::truncate(shown, 40)),
            ),
            SKIP_BAD_TIME,
        )
    };
    if format.is_none() {
        if let Src::Col(c) = src {
            if let Some(v) = rec.json_number(*c) {
                return epoch_ms(v).ok_or_else(|| bad(&v.to_string()));
            }
            if let Some(raw) = rec.raw(*c) {
                if let Some(ms) = parse_timestamp_ms(raw) {
                    return Ok(ms);
                }
            }
        }
    }
    let t = text(rec, src)?.ok_or_else(|| {
        rejected(
            malformed_at(rec, src, "timestamp", "empty, but a time is required"),
            SKIP_BAD_TIME,
        )
    })?;
    let ms = match format {
        Some(f) => f.parse_ms(t.as_bytes()),
        None => parse_timestamp_ms(t.as_bytes()),
    };
    ms.ok_or_else(|| bad(&t))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: &[f32], b: &[f32]) -> bool {
        a.len() == b.len() && a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-5)
    }

    #[test]
    fn item_features_standardise_numbers_and_one_hot_the_top_values() {
        // Prices 0, e - 1 and (missing): log prices 0 and 1, mean 0.5, sd 0.5 -> -1, 1, 0.
        let e1 = std::f64::consts::E - 1.0;
        let columns = ItemColumns {
            prices: vec![Some(0.0), Some(e1), None],
            categories: vec![
                vec!["toys".into()],
                vec!["books".into(), "toys".into()],
                vec![],
            ],
            numeric: vec![("weight".into(), vec![Some(2.0), Some(2.0), Some(2.0)])],
            categorical: vec![(
                "brand".into(),
                vec![Some("acme".into()), None, Some("acme".into())],
            )],
        };
        let f = item_features(3, &columns);
        assert_eq!(
            f.names,
            [
                "log_price",
                "num:weight",
                "category=toys",
                "category=books",
                "brand=acme"
            ]
        );
        assert!(
            close(&f.rows[0], &[-1.0, 0.0, 1.0, 0.0, 1.0]),
            "{:?}",
            f.rows[0]
        );
        assert!(
            close(&f.rows[1], &[1.0, 0.0, 1.0, 1.0, 0.0]),
            "{:?}",
            f.rows[1]
        );
        assert!(
            close(&f.rows[2], &[0.0, 0.0, 0.0, 0.0, 1.0]),
            "{:?}",
            f.rows[2]
        );
        assert_eq!(f.missing, BTreeMap::from([("log_price".to_owned(), 1)]));
    }

    #[test]
    fn rare_values_share_an_other_column() {
        // 40 values: v00 on 3 items, v01 on 2, the rest on 1; the top 32 by count, then by name.
        let mut values = Vec::new();
        for k in 0..40 {
            let n = match k {
                0 => 3,
                1 => 2,
                _ => 1,
            };
            for _ in 0..n {
                values.push(Some(format!("v{k:02}")));
            }
        }
        let n = values.len();
        let columns = ItemColumns {
            categorical: vec![("colour".into(), values)],
            ..ItemColumns::default()
        };
        let f = item_features(n, &columns);
        assert_eq!(f.names.len(), TOP_VALUES + 1);
        assert_eq!(f.names[0], "colour=v00");
        assert_eq!(f.names[1], "colour=v01");
        assert_eq!(f.names[31], "colour=v31");
        assert_eq!(f.names[32], "colour=other");
        // The last item holds v39: only the `other` column is set.
        let last = &f.rows[n - 1];
        assert_eq!(last.iter().sum::<f32>(), 1.0);
        assert_eq!(last[32], 1.0);
        assert!(f.rows.iter().all(|r| r.iter().sum::<f32>() == 1.0));
    }

    #[test]
    fn a_catalog_without_feature_columns_has_no_features() {
        let f = item_features(2, &ItemColumns::default());
        assert!(f.names.is_empty());
        assert_eq!(f.rows, vec![Vec::<f32>::new(); 2]);
    }

    #[test]
    fn whole_float_keys_lose_their_zero_fraction() {
        assert_eq!(normalize_key("17850.0"), "17850");
        assert_eq!(normalize_key("-3.00"), "-3");
        assert_eq!(normalize_key("17850.5"), "17850.5");
        assert_eq!(normalize_key("85123A"), "85123A");
        assert_eq!(normalize_key(".0"), ".0");
        assert_eq!(normalize_key("1."), "1.");
        assert_eq!(
            token("country", &"x".repeat(100)).len(),
            8 + MAX_TOKEN_VALUE
        );
    }

    #[test]
    fn medians_take_the_middle_pair_mean() {
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&mut [0.42, 1.45]), Some((0.42 + 1.45) / 2.0));
        assert_eq!(median(&mut []), None);
    }
}
