//! [`FieldMap`]: which column of a shop's files holds each field the import reads
//! (`metarec shop import --map ...`).
//!
//! The syntax (also in `docs/shop.md`): comma-separated entries, later entries overriding
//! earlier ones (the option may be repeated):
//! - `FIELD=COLUMN`: the column holding a field, in every file that has the field
//!   (`item_id=StockCode` names the item in the catalog and in the events);
//! - `catalog.FIELD=COLUMN`, `events.FIELD=COLUMN`, `users.FIELD=COLUMN`: in one file only;
//! - `FIELD=const:VALUE`: every record has this value (`type=const:purchase` for a file of
//!   purchases without a type column);
//! - `FIELD=@row`: the record's line number (`ranking_id=@row`: each line is its own ranking);
//! - `FIELD=A+B+C`: the values of several columns joined by `:` (Open Bandit identifies users by
//!   four hashed feature columns);
//! - `type.KIND=VALUE|VALUE...`: source values that mean an event kind (`type.view=impression`);
//! - `flag.KIND=COLUMN`: a true value (`1`, `true`, `yes`) in COLUMN adds a KIND event for the same
//!   user, item, time and ranking (`flag.click=click` for a log of impressions with a click column);
//! - `position.base=1`: positions in the file count from 1 (the shop stores them from 0);
//! - `category.split=SEP`: the separator of category lists in delimited files (`|` unless given;
//!   a character, or `space`, `tab`, `pipe`, `comma`, `semicolon`, `none`);
//! - `context=A|B|...`: exactly these columns of the events file become context tokens, mapped or
//!   not (`context=` for none; by default every column that is not mapped does).
//!
//! A field that is not mapped is read from the column of its own name when there is one.

use crate::shop::EventKind;
use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

/// One of the three files an import reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    /// The catalog (`--catalog`).
    Catalog,
    /// The events (`--events`).
    Events,
    /// The users (`--users`).
    Users,
}

impl Role {
    /// Every role.
    pub const ALL: [Role; 3] = [Role::Catalog, Role::Events, Role::Users];

    /// The role's name, as in `catalog.title=...` and in `shop.json`'s sources.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Catalog => "catalog",
            Role::Events => "events",
            Role::Users => "users",
        }
    }

    /// The canonical fields a file of this role has.
    pub fn fields(self) -> &'static [&'static str] {
        match self {
            Role::Catalog => CATALOG_FIELDS,
            Role::Events => EVENT_FIELDS,
            Role::Users => USER_FIELDS,
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The catalog's canonical fields.
pub const CATALOG_FIELDS: &[&str] = &[
    "item_id",
    "title",
    "category",
    "price",
    "brand",
    "available",
];

/// The events' canonical fields. `title`, `category`, `price` and `brand` describe the item of
/// an event in denormalised exports: they build the catalog when no catalog file is given, and
/// `price` gives a purchase's revenue when it has none of its own.
pub const EVENT_FIELDS: &[&str] = &[
    "user_id",
    "item_id",
    "timestamp",
    "type",
    "session_id",
    "quantity",
    "revenue",
    "ranking_id",
    "position",
    "propensity",
    "title",
    "category",
    "price",
    "brand",
];

/// The users file's canonical fields (every other column is an attribute).
pub const USER_FIELDS: &[&str] = &["user_id"];

/// Where the value of a field comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FieldSource {
    /// A column (a JSON Lines key).
    Column(String),
    /// Several columns, their values joined by `:`.
    Joined(Vec<String>),
    /// The same value on every record.
    Const(String),
    /// The record's 1-based line number.
    Row,
}

impl FieldSource {
    /// The columns this source reads.
    pub fn columns(&self) -> Vec<&str> {
        match self {
            FieldSource::Column(c) => vec![c.as_str()],
            FieldSource::Joined(cs) => cs.iter().map(String::as_str).collect(),
            FieldSource::Const(_) | FieldSource::Row => Vec::new(),
        }
    }
}

/// A `--map` entry that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("--map entry `{entry}`: {reason}")]
pub struct MapError {
    /// The entry as written.
    pub entry: String,
    /// What is wrong with it.
    pub reason: String,
}

/// The column mapping of an import: see the module documentation for the syntax.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldMap {
    /// `(role or None for every file, field) -> source`.
    fields: BTreeMap<(Option<Role>, String), FieldSource>,
    /// Source values of the type column that mean each kind.
    type_values: BTreeMap<String, EventKind>,
    /// Flag columns that add an event of a kind.
    flags: BTreeMap<EventKind, String>,
    position_base: u32,
    category_split: Option<CategorySplit>,
    context: Option<Vec<String>>,
    /// The entries as given (key -> value), for the shop's manifest.
    entries: BTreeMap<String, String>,
}

/// How a category list is split in a delimited file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CategorySplit {
    /// At this character.
    Char(char),
    /// At runs of whitespace.
    Whitespace,
    /// Not at all: the value is one category.
    None,
}

impl FromStr for FieldMap {
    type Err = MapError;

    fn from_str(text: &str) -> Result<Self, MapError> {
        let mut map = FieldMap::default();
        map.extend(text)?;
        Ok(map)
    }
}

fn err(entry: &str, reason: impl Into<String>) -> MapError {
    MapError {
        entry: entry.to_owned(),
        reason: reason.into(),
    }
}

fn kind_names() -> String {
    EventKind::ALL
        .iter()
        .map(|k| k.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

impl FieldMap {
    /// Adds the entries of one `--map` value; later entries override earlier ones.
    pub fn extend(&mut self, text: &str) -> Result<(), MapError> {
        for entry in text.split(',') {
            let entry = entry.trim();
            if entry.is_empty() {
                continue;
            }
            self.add(entry)?;
        }
        Ok(())
    }

    fn add(&mut self, entry: &str) -> Result<(), MapError> {
        let Some((key, value)) = entry.split_once('=') else {
            return Err(err(entry, "expected FIELD=COLUMN"));
        };
        let (key, value) = (key.trim(), value.trim());
        if key.is_empty() {
            return Err(err(entry, "the field name is empty"));
        }
        if key == "context" {
            self.context = Some(match value {
                "" | "none" => Vec::new(),
                "*" => {
                    self.context = None;
                    self.entries.insert(key.to_owned(), value.to_owned());
                    return Ok(());
                }
                list => list
                    .split('|')
                    .map(str::trim)
                    .filter(|c| !c.is_empty())
                    .map(str::to_owned)
                    .collect(),
            });
        } else if let Some(kind) = key.strip_prefix("type.") {
            let kind = EventKind::parse(kind).ok_or_else(|| {
                err(
                    entry,
                    format!("`{kind}` is not an event type; use one of {}", kind_names()),
                )
            })?;
            if value.is_empty() {
                return Err(err(entry, "no source value given"));
            }
            for v in value.split('|').map(str::trim).filter(|v| !v.is_empty()) {
                self.type_values.insert(v.to_owned(), kind);
            }
        } else if let Some(kind) = key.strip_prefix("flag.") {
            let kind = EventKind::parse(kind).ok_or_else(|| {
                err(
                    entry,
                    format!("`{kind}` is not an event type; use one of {}", kind_names()),
                )
            })?;
            if value.is_empty() {
                return Err(err(entry, "no column given"));
            }
            self.flags.insert(kind, value.to_owned());
        } else if key == "position.base" {
            self.position_base = match value {
                "0" => 0,
                "1" => 1,
                _ => return Err(err(entry, "the position base is 0 or 1")),
            };
        } else if key == "category.split" {
            self.category_split = Some(match value {
                "space" | "whitespace" => CategorySplit::Whitespace,
                "tab" => CategorySplit::Char('\t'),
                "pipe" => CategorySplit::Char('|'),
                "comma" => CategorySplit::Char(','),
                "semicolon" => CategorySplit::Char(';'),
                "none" => CategorySplit::None,
                other => {
                    let mut chars = other.chars();
                    match (chars.next(), chars.next()) {
                        (Some(c), None) => CategorySplit::Char(c),
                        _ => {
                            return Err(err(
                                entry,
                                "the separator is one character or space, tab, pipe, comma, semicolon, none",
                            ));
                        }
                    }
                }
            });
        } else {
            let (role, field) = match key.split_once('.') {
                Some((role, field)) => {
                    let role = Role::ALL
                        .into_iter()
                        .find(|r| r.as_str() == role)
                        .ok_or_else(|| {
                            err(
                                entry,
                                format!(
                                    "`{role}` is not a file (catalog, events, users) nor type, flag, position or category"
                                ),
                            )
                        })?;
                    if !role.fields().contains(&field) {
                        return Err(err(
                            entry,
                            format!(
                                "the {role} file has no field `{field}`; its fields are {}",
                                role.fields().join(", ")
                            ),
                        ));
                    }
                    (Some(role), field)
                }
                None => {
                    if !Role::ALL.iter().any(|r| r.fields().contains(&key)) {
                        let mut all: Vec<&str> =
                            Role::ALL.iter().flat_map(|r| r.fields()).copied().collect();
                        all.sort_unstable();
                        all.dedup();
                        return Err(err(
                            entry,
                            format!(
                                "`{key}` is not a field; the fields are {}, and type.KIND, flag.KIND, position.base, category.split, context",
                                all.join(", ")
                            ),
                        ));
                    }
                    (None, key)
                }
            };
            let source = parse_source(entry, field, value)?;
            self.fields.insert((role, field.to_owned()), source);
        }
        self.entries.insert(key.to_owned(), value.to_owned());
        Ok(())
    }

    /// The source of `field` in a file of `role`: its own entry, else an entry for every file,
    /// else `None` (the caller looks for a column of the field's own name).
    pub fn source(&self, role: Role, field: &str) -> Option<&FieldSource> {
        self.fields
            .get(&(Some(role), field.to_owned()))
            .or_else(|| self.fields.get(&(None, field.to_owned())))
    }

    /// The event kind a value of the type column means: a mapped value, else a kind's own name
    /// (any case).
    pub fn kind_of(&self, value: &str) -> Option<EventKind> {
        if let Some(&k) = self.type_values.get(value) {
            return Some(k);
        }
        EventKind::ALL
            .into_iter()
            .find(|k| k.as_str().eq_ignore_ascii_case(value))
    }

    /// The flag columns, with the kind of event each adds.
    pub fn flags(&self) -> impl Iterator<Item = (EventKind, &str)> + '_ {
        self.flags.iter().map(|(k, c)| (*k, c.as_str()))
    }

    /// What the first position of a ranking is numbered in the files (0 or 1).
    pub fn position_base(&self) -> u32 {
        self.position_base
    }

    /// How category lists are split in delimited files (`|` unless set).
    pub fn category_split(&self) -> CategorySplit {
        self.category_split.unwrap_or(CategorySplit::Char('|'))
    }

    /// The columns that become context tokens; `None` for every unmapped column.
    pub fn context(&self) -> Option<&[String]> {
        self.context.as_deref()
    }

    /// The entries as given (key -> value).
    pub fn entries(&self) -> &BTreeMap<String, String> {
        &self.entries
    }

    /// A hint for an unknown type value: the names accepted and how to map others.
    pub fn type_hint(&self) -> String {
        let mut accepted: Vec<String> = EventKind::ALL
            .iter()
            .map(|k| k.as_str().to_owned())
            .collect();
        accepted.extend(self.type_values.keys().cloned());
        format!(
            "the type is one of {}; map other names with --map type.KIND=NAME (for instance type.view=impression)",
            accepted.join(", ")
        )
    }
}

fn parse_source(entry: &str, field: &str, value: &str) -> Result<FieldSource, MapError> {
    if let Some(c) = value.strip_prefix("const:") {
        if field == "type" && EventKind::parse(c).is_none() {
            return Err(err(
                entry,
                format!("`{c}` is not an event type; use one of {}", kind_names()),
            ));
        }
        return Ok(FieldSource::Const(c.to_owned()));
    }
    if value == "@row" {
        if !matches!(field, "ranking_id" | "session_id") {
            return Err(err(entry, "@row numbers rankings or sessions only"));
        }
        return Ok(FieldSource::Row);
    }
    if value.is_empty() {
        return Err(err(entry, "no column given"));
    }
    if value.contains('+') {
        let parts: Vec<String> = value.split('+').map(|p| p.trim().to_owned()).collect();
        if parts.iter().any(String::is_empty) {
            return Err(err(entry, "an empty column name in A+B"));
        }
        return Ok(FieldSource::Joined(parts));
    }
    Ok(FieldSource::Column(value.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_forms_parse() {
        let mut m: FieldMap = "user_id=CustomerID, item_id=StockCode,timestamp=InvoiceDate,type=const:purchase,ranking_id=@row,catalog.title=name,users.user_id=uid,type.view=impression|shown,flag.click=click,position.base=1,category.split=space,context=a|b,"
            .parse()
            .unwrap();
        assert_eq!(
            m.source(Role::Events, "user_id"),
            Some(&FieldSource::Column("CustomerID".into()))
        );
        assert_eq!(
            m.source(Role::Users, "user_id"),
            Some(&FieldSource::Column("uid".into()))
        );
        assert_eq!(
            m.source(Role::Catalog, "item_id"),
            Some(&FieldSource::Column("StockCode".into()))
        );
        assert_eq!(
            m.source(Role::Catalog, "title"),
            Some(&FieldSource::Column("name".into()))
        );
        assert_eq!(m.source(Role::Events, "title"), None);
        assert_eq!(
            m.source(Role::Events, "type"),
            Some(&FieldSource::Const("purchase".into()))
        );
        assert_eq!(
            m.source(Role::Events, "ranking_id"),
            Some(&FieldSource::Row)
        );
        assert_eq!(m.kind_of("shown"), Some(EventKind::View));
        assert_eq!(m.kind_of("Add_To_Cart"), Some(EventKind::AddToCart));
        assert_eq!(m.kind_of("buy"), None);
        assert_eq!(
            m.flags().collect::<Vec<_>>(),
            vec![(EventKind::Click, "click")]
        );
        assert_eq!(m.position_base(), 1);
        assert_eq!(m.category_split(), CategorySplit::Whitespace);
        assert_eq!(m.context(), Some(&["a".to_owned(), "b".to_owned()][..]));
        assert_eq!(m.entries().len(), 12);

        // Later entries override earlier ones.
        m.extend("user_id=uf0+uf1,context=*").unwrap();
        assert_eq!(
            m.source(Role::Events, "user_id"),
            Some(&FieldSource::Joined(vec!["uf0".into(), "uf1".into()]))
        );
        assert_eq!(m.context(), None);
        assert_eq!(
            FieldMap::default().category_split(),
            CategorySplit::Char('|')
        );
    }

    #[test]
    fn bad_entries_say_what_is_wrong() {
        for (text, says) in [
            ("user_id", "expected FIELD=COLUMN"),
            ("=x", "field name is empty"),
            ("colour=x", "is not a field"),
            ("shop.title=x", "is not a file"),
            ("users.title=x", "has no field `title`"),
            ("type.like=x", "not an event type"),
            ("type=const:like", "not an event type"),
            ("flag.purchase=", "no column"),
            ("position.base=2", "0 or 1"),
            ("category.split=ab", "one character"),
            ("user_id=@row", "@row numbers"),
            ("user_id=a++b", "empty column"),
            ("item_id=", "no column"),
        ] {
            let e = text.parse::<FieldMap>().unwrap_err();
            assert!(e.to_string().contains(says), "{text}: {e}");
            assert!(e.to_string().contains(text), "{text}: {e}");
        }
    }
}
