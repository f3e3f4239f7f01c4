//! A shop directory: one shop's own catalog, users and events, imported once from the files the
//! shop already has (`metarec shop import`) and read by every command that learns from or
//! evaluates on that shop (`train --shop`, `meta-train --shop`, `ope --shop`, `shop stats`).
//!
//! The directory (format [`SHOP_FORMAT`], documented in `docs/shop.md`):
//! - `shop.json`: the [`ShopManifest`]: counts, date range, the import's reports, the source files
//!   with their SHA-256, and the SHA-256 of the two data files below;
//! - `catalog.json`: the [`Catalog`] (item keys, titles, categories, prices and the numeric item
//!   features built from the catalog's columns), the same file a model bundle carries;
//! - `users.jsonl`: one [`UserRecord`] per user (attributes as tokens and numbers);
//! - `events.jsonl`: one [`EventRecord`] per event, sorted by time (stably, so events of equal
//!   time keep the order of the source file), items and users named by their keys.
//!
//! [`import`] reads a shop's own files (`metarec shop import`) and writes the directory;
//! [`Shop::load`] reads and checks a whole directory into dense indices ([`Shop`]);
//! [`ShopFiles::save`] writes one into a staging folder and renames it into place, so a directory
//! either holds a complete shop or does not exist. [`interactions`] turns a shop's events into
//! the [`metarec_core::Interaction`]s that learners and off-policy estimators read, and
//! [`training`] splits them by time into the training and held-out parts every command shares.

pub mod import;
pub mod interactions;
pub mod synth;

use crate::error::DataError;
use crate::report::LoadReport;
use metarec_core::{Catalog, ItemId};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::fs::File;
use std::hash::BuildHasher;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

pub use import::{FieldMap, ImportOutcome, ImportSpec, PreparedShop, import_shop, prepare_shop};
pub use interactions::{InteractionOptions, ShopLog, split_by_time};

pub mod training;

/// The format tag of `shop.json`.
pub const SHOP_FORMAT: &str = "metarec-shop/1";
/// The manifest's file name.
pub const MANIFEST_FILE: &str = "shop.json";
/// The catalog's file name.
pub const CATALOG_FILE: &str = "catalog.json";
/// The users' file name.
pub const USERS_FILE: &str = "users.jsonl";
/// The events' file name.
pub const EVENTS_FILE: &str = "events.jsonl";

/// What a user did with an item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// The item was shown (an impression when it carries a ranking id).
    View,
    /// The user clicked (opened) the item.
    Click,
    /// The user put the item in the cart.
    AddToCart,
    /// The user bought the item.
    Purchase,
}

impl EventKind {
    /// Every kind, in funnel order.
    pub const ALL: [EventKind; 4] = [
        EventKind::View,
        EventKind::Click,
        EventKind::AddToCart,
        EventKind::Purchase,
    ];

    /// The kind's name as written in files (`view`, `click`, `add_to_cart`, `purchase`).
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::View => "view",
            EventKind::Click => "click",
            EventKind::AddToCart => "add_to_cart",
            EventKind::Purchase => "purchase",
        }
    }

    /// Reads a kind's name; `None` for anything else (a `--map` may rename other names to these).
    pub fn parse(name: &str) -> Option<EventKind> {
        EventKind::ALL.into_iter().find(|k| k.as_str() == name)
    }

    /// Whether the event is feedback on a shown item (anything but a view).
    pub fn is_feedback(self) -> bool {
        self != EventKind::View
    }
}

/// One event as stored in `events.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventRecord {
    /// The user's key.
    pub user: String,
    /// The item's key (a key of the shop's catalog).
    pub item: String,
    /// Milliseconds since 1970-01-01 UTC.
    pub timestamp_ms: i64,
    /// What happened.
    #[serde(rename = "type")]
    pub kind: EventKind,
    /// The visit the event belongs to, when the shop logs visits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<String>,
    /// The ranking (slate) the item was shown in, for impressions and the feedback on them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ranking: Option<String>,
    /// The 0-based display position within the ranking.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub position: Option<u32>,
    /// The probability in (0, 1] that the logging policy showed this item at this position.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub propensity: Option<f64>,
    /// Units bought (purchases).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quantity: Option<u32>,
    /// Revenue of the event in the shop's currency, finite and non-negative.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revenue: Option<f64>,
    /// Other columns of the event as `name=value` tokens (device, page, country...).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub context: Vec<String>,
}

/// The fields of an [`EventRecord`] in the order of an `events.jsonl` line. A line is a JSON
/// array of them (absent values `null`, no context `[]`): the keys of an object would make the
/// file twice as large, and as slow to write and read. Objects with these keys (`type` for the
/// kind) are read as well.
pub const EVENT_LINE_FIELDS: [&str; 11] = [
    "user",
    "item",
    "timestamp_ms",
    "type",
    "session",
    "ranking",
    "position",
    "propensity",
    "quantity",
    "revenue",
    "context",
];

/// An [`EventRecord`] written as an `events.jsonl` line (see [`EVENT_LINE_FIELDS`]).
pub struct EventLine<'a>(pub &'a EventRecord);

impl Serialize for EventLine<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let r = self.0;
        (
            &r.user,
            &r.item,
            r.timestamp_ms,
            r.kind,
            &r.session,
            &r.ranking,
            r.position,
            r.propensity,
            r.quantity,
            r.revenue,
            &r.context,
        )
            .serialize(s)
    }
}

/// One user as stored in `users.jsonl`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserRecord {
    /// The user's key.
    pub user: String,
    /// Categorical attributes as `name=value` tokens.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tokens: Vec<String>,
    /// Numeric attributes, one per name in [`ShopManifest::user_features`] (missing ones are 0).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub features: Vec<f32>,
}

/// A source file the shop was imported from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SourceFile {
    /// `catalog`, `events`, `users`, or `exclude_items` (the list of items whose events were
    /// dropped).
    pub role: String,
    /// The path as given to the import.
    pub path: String,
    /// SHA-256 of the file's bytes (hex).
    pub sha256: String,
}

/// `shop.json`: what a shop directory holds and where it came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShopManifest {
    /// Always [`SHOP_FORMAT`].
    pub format: String,
    /// The shop's name (the directory's name unless given).
    pub name: String,
    /// The metarec version that wrote it.
    pub metarec_version: String,
    /// Items in the catalog.
    pub items: usize,
    /// Users (every user of an event, and every user of the users file).
    pub users: usize,
    /// Events kept.
    pub events: u64,
    /// Events kept, by type name.
    pub events_by_type: BTreeMap<String, u64>,
    /// The first event's time (ms since the epoch), when there are events.
    pub first_ms: Option<i64>,
    /// The last event's time.
    pub last_ms: Option<i64>,
    /// Names of the users' numeric attributes.
    #[serde(default)]
    pub user_features: Vec<String>,
    /// Keys of items the catalog marks unavailable (kept for the events that name them, never
    /// ranked).
    #[serde(default)]
    pub unavailable: Vec<String>,
    /// The files imported.
    pub sources: Vec<SourceFile>,
    /// The column mapping used (`field=column`), as given.
    #[serde(default)]
    pub map: BTreeMap<String, String>,
    /// What each file's import kept and skipped, by reason.
    pub reports: Vec<LoadReport>,
    /// SHA-256 of `catalog.json` (hex).
    pub catalog_sha256: String,
    /// SHA-256 of `users.jsonl` (hex).
    pub users_sha256: String,
    /// SHA-256 of `events.jsonl` (hex).
    pub events_sha256: String,
}

/// One user of a loaded shop.
#[derive(Debug, Clone, PartialEq)]
pub struct ShopUser {
    /// The user's key.
    pub key: String,
    /// Categorical attributes as `name=value` tokens.
    pub tokens: Vec<String>,
    /// Numeric attributes, one per [`ShopManifest::user_features`] name.
    pub features: Vec<f32>,
}

/// One event of a loaded shop, with dense indices.
#[derive(Debug, Clone, PartialEq)]
pub struct ShopEvent {
    /// Index into [`Shop::users`].
    pub user: u32,
    /// The item.
    pub item: ItemId,
    /// Milliseconds since 1970-01-01 UTC.
    pub timestamp_ms: i64,
    /// What happened.
    pub kind: EventKind,
    /// Index into [`Shop::sessions`].
    pub session: Option<u32>,
    /// Index into [`Shop::rankings`].
    pub ranking: Option<u32>,
    /// The 0-based display position within the ranking.
    pub position: Option<u32>,
    /// The logging policy's probability of this item at this position.
    pub propensity: Option<f64>,
    /// Units bought.
    pub quantity: Option<u32>,
    /// Revenue of the event.
    pub revenue: Option<f64>,
    /// Other columns as `name=value` tokens.
    pub context: Vec<String>,
}

/// A shop loaded from its directory: keys resolved to dense indices, every checksum verified.
#[derive(Debug, Clone)]
pub struct Shop {
    /// The directory it was loaded from (empty for a shop built in memory).
    pub dir: PathBuf,
    /// `shop.json`.
    pub manifest: ShopManifest,
    /// `catalog.json`.
    pub catalog: Catalog,
    /// Users, in the order of `users.jsonl`.
    pub users: Vec<ShopUser>,
    /// Session ids, interned in order of first appearance.
    pub sessions: Vec<String>,
    /// Ranking ids, interned in order of first appearance.
    pub rankings: Vec<String>,
    /// Events sorted by time.
    pub events: Vec<ShopEvent>,
}

/// SHA-256 of some bytes as lower-case hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// Lower-case hex of a digest.
fn hex(digest: &[u8]) -> String {
    let mut s = String::with_capacity(2 * digest.len());
    for b in digest {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

/// SHA-256 of a file's bytes, read in blocks.
pub fn sha256_file(path: &Path) -> Result<String, DataError> {
    let mut file = File::open(path).map_err(|e| DataError::io(path, e))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = std::io::Read::read(&mut file, &mut buf).map_err(|e| DataError::io(path, e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex(&hasher.finalize()))
}

fn malformed(path: &Path, line: u64, field: &str, reason: impl Into<String>) -> DataError {
    DataError::Malformed {
        path: path.to_owned(),
        line,
        field: field.to_owned(),
        reason: reason.into(),
    }
}

/// Distinct texts numbered by first appearance (users, visits, rankings, item keys).
///
/// The texts live end to end in one buffer and the hash table holds only their numbers, so a
/// million lookups touch little memory and a hundred thousand texts cost a few allocations, not
/// one each. Rows often repeat the previous row's text (the items of one ranking share its user,
/// visit and ranking), so the last number returned is checked before the table. The hash is
/// foldhash, seeded at random per table: SipHash, the standard library's default, would be a
/// large share of the work of an import.
#[derive(Clone, Default)]
pub(crate) struct Interner {
    table: hashbrown::HashTable<u32>,
    hasher: foldhash::fast::RandomState,
    text: String,
    /// Where each text ends in `text`.
    ends: Vec<usize>,
    last: u32,
}

impl fmt::Debug for Interner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Interner({} texts)", self.len())
    }
}

impl Interner {
    /// The number of `text`, adding it when new. There are at most `u32::MAX` numbers; later
    /// texts share the last one (four billion distinct texts would not fit in memory as rows
    /// anyway).
    pub(crate) fn id(&mut self, text: &str) -> u32 {
        if self.get(self.last) == Some(text) {
            return self.last;
        }
        let hash = self.hasher.hash_one(text);
        let Interner {
            table,
            hasher,
            text: all,
            ends,
            ..
        } = self;
        let slice = |ends: &[usize], i: u32| -> (usize, usize) {
            let i = i as usize;
            (if i == 0 { 0 } else { ends[i - 1] }, ends[i])
        };
        let found = table
            .find(hash, |&i| {
                let (a, b) = slice(ends, i);
                &all[a..b] == text
            })
            .copied();
        let id = match found {
            Some(id) => id,
            None => {
                let id = u32::try_from(ends.len()).unwrap_or(u32::MAX);
                all.push_str(text);
                ends.push(all.len());
                table.insert_unique(hash, id, |&i| {
                    let (a, b) = slice(ends, i);
                    hasher.hash_one(&all[a..b])
                });
                id
            }
        };
        self.last = id;
        id
    }

    /// The number of `text`, if it has one.
    pub(crate) fn lookup(&self, text: &str) -> Option<u32> {
        let hash = self.hasher.hash_one(text);
        self.table
            .find(hash, |&i| self.get(i) == Some(text))
            .copied()
    }

    /// The text of number `id`.
    pub(crate) fn get(&self, id: u32) -> Option<&str> {
        let i = id as usize;
        let end = *self.ends.get(i)?;
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        self.text.get(start..end)
    }

    /// How many distinct texts there are.
    pub(crate) fn len(&self) -> usize {
        self.ends.len()
    }

    /// The texts in number order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &str> {
        let mut start = 0;
        self.ends.iter().map(move |&end| {
            let t = &self.text[start..end];
            start = end;
            t
        })
    }

    /// The texts in number order, owned.
    pub(crate) fn into_strings(self) -> Vec<String> {
        self.iter().map(str::to_owned).collect()
    }
}

/// Reads `shop.json` of a shop directory; a directory without one is an error saying how to make
/// a shop.
fn read_manifest(dir: &Path) -> Result<(PathBuf, ShopManifest), DataError> {
    let manifest_path = dir.join(MANIFEST_FILE);
    let text = std::fs::read_to_string(&manifest_path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            malformed(
                &manifest_path,
                0,
                "<file>",
                "not a shop directory (no shop.json): make one with `metarec shop import`",
            )
        } else {
            DataError::io(&manifest_path, e)
        }
    })?;
    let manifest: ShopManifest = serde_json::from_str(&text)
        .map_err(|e| malformed(&manifest_path, e.line() as u64, "<record>", e.to_string()))?;
    Ok((manifest_path, manifest))
}

impl Shop {
    /// Loads and checks a shop directory: the manifest's format, the checksums of the three data
    /// files, every record (an error names the file, the line and the field), every event's item
    /// (a key of the catalog) and the order of events (by time).
    pub fn load(dir: &Path) -> Result<Shop, DataError> {
        let (manifest_path, manifest) = read_manifest(dir)?;
        if manifest.format != SHOP_FORMAT {
            return Err(malformed(
                &manifest_path,
                1,
                "format",
                format!(
                    "`{}` is not {SHOP_FORMAT}; import the shop again with this version",
                    manifest.format
                ),
            ));
        }
        let check = |file: &str, expected: &str| -> Result<PathBuf, DataError> {
            let path = dir.join(file);
            let actual = sha256_file(&path)?;
            if actual != expected {
                return Err(malformed(
                    &path,
                    0,
                    "<file>",
                    format!(
                        "SHA-256 {actual} differs from {expected} recorded in shop.json: the file was changed after import; import the shop again"
                    ),
                ));
            }
            Ok(path)
        };
        let catalog_path = check(CATALOG_FILE, &manifest.catalog_sha256)?;
        let users_path = check(USERS_FILE, &manifest.users_sha256)?;
        let events_path = check(EVENTS_FILE, &manifest.events_sha256)?;
        let catalog_text =
            std::fs::read_to_string(&catalog_path).map_err(|e| DataError::io(&catalog_path, e))?;
        let catalog: Catalog = serde_json::from_str(&catalog_text)
            .map_err(|e| malformed(&catalog_path, e.line() as u64, "<record>", e.to_string()))?;

        let mut users = Vec::new();
        let mut user_index: HashMap<String, u32> = HashMap::new();
        for_each_line(&users_path, &[], |line, record: UserRecord| {
            if record.features.len() > manifest.user_features.len() {
                return Err(malformed(
                    &users_path,
                    line,
                    "features",
                    format!(
                        "{} values for {} named user features",
                        record.features.len(),
                        manifest.user_features.len()
                    ),
                ));
            }
            let i = users.len() as u32;
            if user_index.insert(record.user.clone(), i).is_some() {
                return Err(malformed(
                    &users_path,
                    line,
                    "user",
                    format!("user `{}` appears twice", record.user.escape_debug()),
                ));
            }
            let mut features = record.features;
            features.resize(manifest.user_features.len(), 0.0);
            users.push(ShopUser {
                key: record.user,
                tokens: record.tokens,
                features,
            });
            Ok(())
        })?;

        let mut sessions = Interner::default();
        let mut rankings = Interner::default();
        let mut events = Vec::new();
        let mut last_ms = i64::MIN;
        for_each_line(&events_path, &EVENT_LINE_FIELDS, |line, r: EventRecord| {
            let user = match user_index.get(&r.user) {
                Some(&u) => u,
                None => {
                    return Err(malformed(
                        &events_path,
                        line,
                        "user",
                        format!("user `{}` is not in users.jsonl", r.user.escape_debug()),
                    ));
                }
            };
            let item = catalog.id_of(&r.item).ok_or_else(|| {
                malformed(
                    &events_path,
                    line,
                    "item",
                    format!("item `{}` is not in the catalog", r.item.escape_debug()),
                )
            })?;
            if r.timestamp_ms < last_ms {
                return Err(malformed(
                    &events_path,
                    line,
                    "timestamp_ms",
                    "events are not sorted by time",
                ));
            }
            last_ms = r.timestamp_ms;
            if let Some(p) = r.propensity {
                if !(p > 0.0 && p <= 1.0) {
                    return Err(malformed(
                        &events_path,
                        line,
                        "propensity",
                        format!("{p} is outside (0, 1]"),
                    ));
                }
            }
            if let Some(v) = r.revenue {
                if !(v.is_finite() && v >= 0.0) {
                    return Err(malformed(
                        &events_path,
                        line,
                        "revenue",
                        format!("{v} is not finite and non-negative"),
                    ));
                }
            }
            events.push(ShopEvent {
                user,
                item,
                timestamp_ms: r.timestamp_ms,
                kind: r.kind,
                session: r.session.as_deref().map(|s| sessions.id(s)),
                ranking: r.ranking.as_deref().map(|s| rankings.id(s)),
                position: r.position,
                propensity: r.propensity,
                quantity: r.quantity,
                revenue: r.revenue,
                context: r.context,
            });
            Ok(())
        })?;
        Ok(Shop {
            dir: dir.to_owned(),
            manifest,
            catalog,
            users,
            sessions: sessions.into_strings(),
            rankings: rankings.into_strings(),
            events,
        })
    }

    /// The user's key of an event.
    pub fn user_key(&self, event: &ShopEvent) -> &str {
        &self.users[event.user as usize].key
    }
}

/// Reads a JSON Lines file record by record (blank lines skipped), naming file and line in
/// errors.
fn for_each_line<T: for<'de> Deserialize<'de>>(
    path: &Path,
    positions: &[&str],
    mut each: impl FnMut(u64, T) -> Result<(), DataError>,
) -> Result<(), DataError> {
    let file = File::open(path).map_err(|e| DataError::io(path, e))?;
    let mut input = BufReader::with_capacity(1 << 16, file);
    let mut buf = Vec::new();
    let mut line = 0u64;
    loop {
        buf.clear();
        let n = input
            .read_until(b'\n', &mut buf)
            .map_err(|e| DataError::io(path, e))?;
        if n == 0 {
            return Ok(());
        }
        line += 1;
        if buf.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let mut de = serde_json::Deserializer::from_slice(&buf);
        let record: T = serde_path_to_error::deserialize(&mut de).map_err(|e| {
            let mut field = e.path().to_string();
            // A line written as an array names a field by its position (`[3]`).
            if let Some(name) = field
                .strip_prefix('[')
                .and_then(|f| f.split_once(']'))
                .and_then(|(i, _)| i.parse::<usize>().ok())
                .and_then(|i| positions.get(i))
            {
                field = (*name).to_owned();
            }
            malformed(
                path,
                line,
                if field == "." { "<record>" } else { &field },
                e.into_inner().to_string(),
            )
        })?;
        each(line, record)?;
    }
}

/// The parts of a shop directory as written by an import: records with keys.
pub struct ShopFiles<'a> {
    /// The manifest; its checksums are filled in by [`ShopFiles::save`].
    pub manifest: ShopManifest,
    /// The catalog.
    pub catalog: &'a Catalog,
    /// The users.
    pub users: &'a [UserRecord],
    /// The events, sorted by time.
    pub events: &'a [EventRecord],
}

impl ShopFiles<'_> {
    /// Writes the shop into a staging folder beside `dir` and renames it to `dir`, so `dir` is
    /// either a complete shop or untouched. An existing `dir` is replaced only with `overwrite`
    /// (and only if it is a shop directory); the old one is removed after the rename succeeds.
    /// Returns the manifest as written.
    pub fn save(self, dir: &Path, overwrite: bool) -> Result<ShopManifest, DataError> {
        let events = self.events;
        save_dir(
            dir,
            overwrite,
            self.manifest,
            self.catalog,
            self.users,
            &|path| write_lines(path, events, EventLine),
        )
    }
}

/// Writes a shop directory as [`ShopFiles::save`] describes; `write_events` writes
/// `events.jsonl` at the path it is given and returns its SHA-256.
pub(crate) fn save_dir(
    dir: &Path,
    overwrite: bool,
    mut manifest: ShopManifest,
    catalog: &Catalog,
    users: &[UserRecord],
    write_events: &dyn Fn(&Path) -> Result<String, DataError>,
) -> Result<ShopManifest, DataError> {
    {
        if dir.exists() {
            if !overwrite {
                return Err(malformed(
                    dir,
                    0,
                    "<dir>",
                    "already exists; choose another --out or pass --force to replace it",
                ));
            }
            if !dir.join(MANIFEST_FILE).exists() {
                return Err(malformed(
                    dir,
                    0,
                    "<dir>",
                    "exists and is not a shop directory; refusing to replace it",
                ));
            }
        }
        let parent = match dir.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
            _ => PathBuf::from("."),
        };
        std::fs::create_dir_all(&parent).map_err(|e| DataError::io(&parent, e))?;
        let name = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "shop".into());
        let stage = parent.join(format!(".{name}.{}.staging", std::process::id()));
        let _ = std::fs::remove_dir_all(&stage);
        let result = (|| -> Result<ShopManifest, DataError> {
            std::fs::create_dir(&stage).map_err(|e| DataError::io(&stage, e))?;
            // The catalog and the users are written beside the events, whose writing waits on
            // hashing and the disk more than on the processor.
            let (catalog_sha256, users_sha256, events_sha256) = std::thread::scope(|scope| {
                let others = scope.spawn(|| -> Result<(String, String), DataError> {
                    let path = stage.join(CATALOG_FILE);
                    let text = serde_json::to_vec(catalog)
                        .map_err(|e| DataError::io(&path, std::io::Error::other(e)))?;
                    write_file(&path, |out| out.write_all(&text))?;
                    let users = write_lines(&stage.join(USERS_FILE), users, |u| u)?;
                    Ok((sha256_hex(&text), users))
                });
                let events = write_events(&stage.join(EVENTS_FILE));
                let others = others.join().expect("the catalog writer thread panicked");
                let (catalog, users) = others?;
                Ok::<_, DataError>((catalog, users, events?))
            })?;
            manifest.catalog_sha256 = catalog_sha256;
            manifest.users_sha256 = users_sha256;
            manifest.events_sha256 = events_sha256;
            let manifest_text = serde_json::to_vec_pretty(&manifest)
                .map_err(|e| DataError::io(stage.join(MANIFEST_FILE), std::io::Error::other(e)))?;
            write_file(&stage.join(MANIFEST_FILE), |out| {
                out.write_all(&manifest_text)?;
                out.write_all(b"\n")
            })?;
            Ok(manifest)
        })();
        let manifest = match result {
            Ok(m) => m,
            Err(e) => {
                let _ = std::fs::remove_dir_all(&stage);
                return Err(e);
            }
        };
        let old = parent.join(format!(".{name}.{}.old", std::process::id()));
        if dir.exists() {
            std::fs::rename(dir, &old).map_err(|e| DataError::io(dir, e))?;
        }
        if let Err(e) = std::fs::rename(&stage, dir) {
            // Put the old shop back, so a failed rename loses nothing.
            let _ = std::fs::rename(&old, dir);
            let _ = std::fs::remove_dir_all(&stage);
            return Err(DataError::io(dir, e));
        }
        let _ = std::fs::remove_dir_all(&old);
        Ok(manifest)
    }
}

fn write_file(
    path: &Path,
    fill: impl FnOnce(&mut BufWriter<File>) -> std::io::Result<()>,
) -> Result<(), DataError> {
    let run = || -> std::io::Result<()> {
        let mut out = BufWriter::with_capacity(1 << 16, File::create(path)?);
        fill(&mut out)?;
        out.into_inner().map_err(|e| e.into_error())?.sync_all()
    };
    run().map_err(|e| DataError::io(path, e))
}

/// Writes records as JSON Lines and returns the SHA-256 of the bytes written.
/// Records serialised into one block for the writer thread.
const BLOCK_RECORDS: usize = 8192;
/// Bytes written between syncs of a large file, so that the disk writes while later blocks are
/// serialised and the final sync waits for little.
const SYNC_EVERY: u64 = 32 << 20;

/// Writes records as JSON lines, durably, and returns the SHA-256 of the file.
/// `line` gives what each record is written as.
fn write_lines<'r, T, L: Serialize>(
    path: &Path,
    records: &'r [T],
    line: impl Fn(&'r T) -> L,
) -> Result<String, DataError> {
    write_blocks(path, records.len(), |range, out| {
        for r in &records[range] {
            serde_json::to_writer(&mut *out, &line(r))
                .map_err(|e| DataError::io(path, std::io::Error::other(e)))?;
            out.push(b'\n');
        }
        Ok(())
    })
}

/// Writes the lines of `count` records, durably, and returns the SHA-256 of the file; `fill`
/// appends the lines of the records in a range.
///
/// Making the lines is the work; hashing and writing keep up with it on a second thread that
/// takes blocks of lines in order, so the two overlap, and the syncs along the way let the disk
/// work meanwhile instead of all at the end.
pub(crate) fn write_blocks(
    path: &Path,
    count: usize,
    fill: impl Fn(std::ops::Range<usize>, &mut Vec<u8>) -> Result<(), DataError>,
) -> Result<String, DataError> {
    let file = File::create(path).map_err(|e| DataError::io(path, e))?;
    let (blocks, written) = std::sync::mpsc::sync_channel::<Vec<u8>>(4);
    let (spare, reuse) = std::sync::mpsc::channel::<Vec<u8>>();
    std::thread::scope(|scope| {
        let writer = scope.spawn(move || -> std::io::Result<String> {
            let mut file = file;
            let mut hasher = Sha256::new();
            let mut unsynced = 0u64;
            for block in written {
                hasher.update(&block);
                file.write_all(&block)?;
                unsynced += block.len() as u64;
                if unsynced >= SYNC_EVERY {
                    file.sync_data()?;
                    unsynced = 0;
                }
                // The making side may have finished; then the block is simply dropped.
                let _ = spare.send(block);
            }
            file.sync_all()?;
            Ok(hex(&hasher.finalize()))
        });
        let mut failed = None;
        let mut start = 0;
        while start < count {
            let end = count.min(start + BLOCK_RECORDS);
            let mut block = reuse.try_recv().unwrap_or_default();
            block.clear();
            if let Err(e) = fill(start..end, &mut block) {
                failed = Some(e);
                break;
            }
            // A closed channel means the writer stopped on an error, which its result carries.
            if blocks.send(block).is_err() {
                break;
            }
            start = end;
        }
        drop(blocks);
        let result = writer.join().expect("the file writer thread panicked");
        match failed {
            Some(e) => Err(e),
            None => result.map_err(|e| DataError::io(path, e)),
        }
    })
}

impl Shop {
    /// Reads a shop directory's catalog alone (for commands that need only the catalog, such as
    /// resolving the item keys of an interaction log): the manifest's format, then `catalog.json`
    /// checked against the SHA-256 the manifest records.
    pub fn read_catalog(dir: &Path) -> Result<Catalog, DataError> {
        let (_, manifest) = read_manifest(dir)?;
        let path = dir.join(CATALOG_FILE);
        let bytes = std::fs::read(&path).map_err(|e| DataError::io(&path, e))?;
        let actual = sha256_hex(&bytes);
        if actual != manifest.catalog_sha256 {
            return Err(malformed(
                &path,
                0,
                "<file>",
                format!(
                    "SHA-256 {actual} differs from {} recorded in shop.json: the file was changed after import; import the shop again",
                    manifest.catalog_sha256
                ),
            ));
        }
        serde_json::from_slice(&bytes)
            .map_err(|e| malformed(&path, e.line() as u64, "<record>", e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_events(text: &str) -> Result<Vec<EventRecord>, DataError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(EVENTS_FILE);
        std::fs::write(&path, text).unwrap();
        let mut out = Vec::new();
        for_each_line(&path, &EVENT_LINE_FIELDS, |_, r: EventRecord| {
            out.push(r);
            Ok(())
        })?;
        Ok(out)
    }

    #[test]
    fn event_lines_are_arrays_and_objects_are_read_too() {
        let record = EventRecord {
            user: "u1".into(),
            item: "i\"1".into(),
            timestamp_ms: 1_700_000_000_000,
            kind: EventKind::Purchase,
            session: Some("s1".into()),
            ranking: None,
            position: None,
            propensity: None,
            quantity: Some(2),
            revenue: Some(3.5),
            context: vec!["device=mobile".into()],
        };
        let line = serde_json::to_string(&EventLine(&record)).unwrap();
        assert_eq!(
            line,
            r#"["u1","i\"1",1700000000000,"purchase","s1",null,null,null,2,3.5,["device=mobile"]]"#
        );
        let object = serde_json::to_string(&record).unwrap();
        let read = read_events(&format!("{line}\n\n{object}\n")).unwrap();
        assert_eq!(read, vec![record.clone(), record]);
    }

    #[test]
    fn a_bad_array_line_names_its_field() {
        let good = r#"["u1","i1",1,"view",null,null,null,null,null,null,[]]"#;
        let bad = r#"["u1","i1",1,"bogus",null,null,null,null,null,null,[]]"#;
        let error = read_events(&format!("{good}\n{bad}\n"))
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("line 2") && error.contains("`type`"),
            "{error}"
        );
        let short = r#"["u1","i1"]"#;
        let error = read_events(short).unwrap_err().to_string();
        assert!(error.contains("line 1"), "{error}");
    }
}
