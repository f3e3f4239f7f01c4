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
mod fields;
mod map;
mod source;
mod tables;

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
use fields::*;
use metarec_core::{Catalog, Item};
use source::{Columns, Declared, Input, Reader, Record};
use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
pub use tables::{ItemColumns, ItemFeatures, item_features};
use tables::{ItemRow, ItemTable, TypedAttributes, build_catalog, read_catalog, read_users};

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
