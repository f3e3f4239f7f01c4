//! `metarec shop import`: a shop's own files (catalog, events, users) into a shop directory.
//!
//! [`import_shop`] reads the files an [`ImportSpec`] names, checks every record, sorts the events
//! stably by time, builds the [`Catalog`] with its item features ([`item_features`]) and writes
//! the directory atomically with [`ShopFiles::save`](super::ShopFiles::save). [`prepare_shop`] stops before writing and
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

mod compact;
mod events;
mod map;
mod source;

pub use map::{
    CATALOG_FIELDS, CategorySplit, EVENT_FIELDS, FieldMap, FieldSource, MapError, Role, USER_FIELDS,
};

use super::Interner;
use super::{EventKind, SHOP_FORMAT, ShopManifest, SourceFile, UserRecord};
use crate::error::DataError;
use crate::report::{LoadReport, OnMalformed};
use crate::time::TimeFormat;
use compact::Events;
use events::read_events;
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
    events: Events,
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
    // The users file is read on a thread of its own beside the catalog and the events; its
    // errors are reported after theirs, as if it were read last.
    std::thread::scope(|scope| {
        let users_job = spec.users.as_ref().map(|path| {
            scope.spawn(move || -> Result<_, DataError> {
                let input = Input::read(path)?;
                let users = read_users(&input, spec)?;
                Ok((source_file(Role::Users.as_str(), &input), users))
            })
        });
        let users_path = match &spec.users {
            Some(path) => format!(" and the users {}", path.display()),
            None => String::new(),
        };
        let given_catalog = match &spec.catalog {
            Some(path) => {
                progress(&format!(
                    "reading the catalog {}{users_path}",
                    path.display()
                ));
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
        // Item keys numbered by catalog row (the rows' keys are distinct).
        let catalog_keys: Option<Interner> = given_catalog.as_ref().map(|table| {
            let mut keys = Interner::default();
            for r in &table.rows {
                keys.id(&r.key);
            }
            keys
        });
        let mut read = read_events(&input, spec, &excluded, catalog_keys.as_ref(), &mut shared)?;
        drop(catalog_keys);
        sources.push(source_file(Role::Events.as_str(), &input));
        drop(input);
        shared.check()?;

        let users_file = match users_job {
            Some(job) => {
                let (source, users) = job.join().expect("the users reader thread panicked")?;
                sources.push(source);
                Some(users)
            }
            None => None,
        };

        // The catalog is built while the events are sorted: neither needs the other.
        progress(&format!(
            "building the catalog and sorting {} events by time",
            read.events.records.len()
        ));
        let catalog_path = spec.catalog.clone().unwrap_or_else(|| spec.events.clone());
        let table = match (given_catalog, read.derived.take()) {
            (Some(table), _) => table,
            (None, derived) => derived.unwrap_or_default().into_table(),
        };
        let mut events = std::mem::take(&mut read.events);
        let build = scope.spawn(move || build_catalog(&table, &catalog_path));
        events.sort_by_time();
        let (catalog, unavailable, missing) =
            build.join().expect("the catalog builder thread panicked")?;
        let missing_into = if spec.catalog.is_some() {
            &mut reports[0]
        } else {
            &mut read.report
        };
        for (what, n) in missing {
            *missing_into.missing.entry(what).or_insert(0) += n;
        }
        reports.push(read.report);
        finish(
            spec,
            catalog,
            events,
            users_file,
            unavailable,
            sources,
            reports,
        )
    })
}

/// The users, counts and manifest of an import whose files are read.
fn finish(
    spec: &ImportSpec,
    catalog: Catalog,
    events: Events,
    users_file: Option<(Vec<UserRecord>, Vec<String>, LoadReport)>,
    unavailable: Vec<String>,
    sources: Vec<SourceFile>,
    mut reports: Vec<LoadReport>,
) -> Result<PreparedShop, DataError> {
    let (mut users, user_features) = match users_file {
        Some((users, features, report)) => {
            reports.push(report);
            (users, features)
        }
        None => (Vec::new(), Vec::new()),
    };
    let mut only_in_events = Vec::new();
    {
        let known: HashSet<&str> = users.iter().map(|u| u.user.as_str()).collect();
        let mut seen = vec![false; events.users.len()];
        for e in &events.records {
            let Some(first) = seen.get_mut(e.user as usize).filter(|s| !**s) else {
                continue;
            };
            *first = true;
            let user = events.users.get(e.user).unwrap_or_default();
            if !known.contains(user) {
                only_in_events.push(UserRecord {
                    user: user.to_owned(),
                    ..UserRecord::default()
                });
            }
        }
    }
    users.extend(only_in_events);

    let mut by_kind: Vec<(EventKind, u64)> = Vec::new();
    for e in &events.records {
        match by_kind.iter_mut().find(|(k, _)| *k == e.kind) {
            Some((_, n)) => *n += 1,
            None => by_kind.push((e.kind, 1)),
        }
    }
    let events_by_type: BTreeMap<String, u64> = by_kind
        .into_iter()
        .map(|(k, n)| (k.as_str().to_owned(), n))
        .collect();
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
        events: events.records.len() as u64,
        events_by_type,
        first_ms: events.records.first().map(|e| e.timestamp_ms),
        last_ms: events.records.last().map(|e| e.timestamp_ms),
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

    /// Writes the shop directory atomically (see [`ShopFiles::save`](super::ShopFiles::save)).
    pub fn save(self, out: &Path, overwrite: bool) -> Result<ImportOutcome, DataError> {
        let mut manifest = self.manifest;
        manifest.name = match self.name {
            Some(n) => n,
            None => out
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| "shop".into()),
        };
        let lines = self
            .events
            .writer(self.catalog.keys().iter().map(String::as_str));
        let manifest = super::save_dir(
            out,
            overwrite,
            manifest,
            &self.catalog,
            &self.users,
            &|path| {
                super::write_blocks(path, lines.len(), |range, block| lines.write(range, block))
            },
        )?;
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

/// Like [`normalize_key`], keeping a borrowed key borrowed.
fn normalize_cow(key: Cow<'_, str>) -> Cow<'_, str> {
    match key {
        Cow::Borrowed(k) => normalize_key(k),
        Cow::Owned(mut k) => {
            // A normalised key is a prefix of the key.
            let len = normalize_key(&k).len();
            k.truncate(len);
            Cow::Owned(k)
        }
    }
}

/// A `NAME=VALUE` token, the value cut to [`MAX_TOKEN_VALUE`] characters.
fn token(name: &str, value: &str) -> String {
    let mut t = String::new();
    token_into(name, value, &mut t);
    t
}

/// Writes a [`token`] into `out` (replacing what it held), to reuse one buffer across rows.
fn token_into(name: &str, value: &str, out: &mut String) {
    let cut = match value.char_indices().nth(MAX_TOKEN_VALUE) {
        Some((at, _)) => &value[..at],
        None => value,
    };
    out.clear();
    out.reserve(name.len() + 1 + cut.len());
    out.push_str(name);
    out.push('=');
    out.push_str(cut);
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
#[derive(Clone)]
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

#[cfg(test)]
mod tests {
    use super::events::median;
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
