//! The catalog and users files: their unmapped columns typed as attributes, the catalog with its
//! item features, and the users' records.

use super::*;

// ------------------------------------------------------------------------------------------------
// Attributes: the unmapped columns of a catalog or users file
// ------------------------------------------------------------------------------------------------

/// The values of a file's unmapped columns, typed once every record is read: a column is numeric
/// when its header declares it so, or when it declares nothing and every non-empty value is a
/// finite number; otherwise it is categorical.
#[derive(Default)]
pub(super) struct Attributes {
    /// Column index -> slot.
    pub(super) slot: HashMap<usize, usize>,
    pub(super) names: Vec<String>,
    pub(super) declared: Vec<Declared>,
    /// Per kept record: `(slot, text)` of its non-empty values.
    pub(super) rows: Vec<Vec<(usize, String)>>,
}

/// Attribute columns after typing.
#[derive(Default)]
pub(super) struct TypedAttributes {
    pub(super) numeric: Vec<(String, Vec<Option<f64>>)>,
    pub(super) categorical: Vec<(String, Vec<Option<String>>)>,
}

impl Attributes {
    /// Reads the attribute values of a record; a value in a column declared numeric must be a
    /// number.
    pub(super) fn read(
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

    pub(super) fn keep(&mut self, values: Vec<(usize, String)>) {
        self.rows.push(values);
    }

    pub(super) fn into_typed(self) -> TypedAttributes {
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
pub(super) struct ItemRow {
    pub(super) key: String,
    pub(super) title: Option<String>,
    pub(super) categories: Vec<String>,
    pub(super) price: Option<f64>,
    pub(super) brand: Option<String>,
    pub(super) available: bool,
    pub(super) line: u64,
}

/// The items of a catalog with their attribute columns.
#[derive(Default)]
pub(super) struct ItemTable {
    pub(super) rows: Vec<ItemRow>,
    pub(super) attributes: TypedAttributes,
}

pub(super) fn read_catalog(
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
            let key = unique_key(&rec, &id, &ITEM_KEY, &first_line)?;
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
pub(super) type BuiltCatalog = (Catalog, Vec<String>, BTreeMap<String, u64>);

/// Builds the catalog of an item table (see [`BuiltCatalog`]).
pub(super) fn build_catalog(table: &ItemTable, path: &Path) -> Result<BuiltCatalog, DataError> {
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
pub(super) fn one_hots(
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

pub(super) fn read_users(
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
            let key = unique_key(&rec, &id, &USER_KEY, &first_line)?;
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

/// What a file's key is called in its errors and what a duplicate counts as.
struct KeyKind {
    /// The field.
    field: &'static str,
    /// The thing it names, with its article.
    what: &'static str,
    /// The skip reason of a duplicate.
    duplicate: &'static str,
}

const ITEM_KEY: KeyKind = KeyKind {
    field: "item_id",
    what: "an item",
    duplicate: SKIP_DUPLICATED_ITEM,
};

const USER_KEY: KeyKind = KeyKind {
    field: "user_id",
    what: "a user",
    duplicate: SKIP_DUPLICATED_USER,
};

/// A record's key for a file where each key appears once (the catalog's items, the users): the
/// normalised value of `id`, an error when it is empty, and a skippable duplicate naming the line
/// of the first when `first_line` already holds it.
fn unique_key(
    rec: &Record<'_>,
    id: &Src,
    kind: &KeyKind,
    first_line: &HashMap<String, u64>,
) -> Result<String, Rejected> {
    let key = text(rec, id)?.ok_or_else(|| {
        malformed_at(
            rec,
            id,
            kind.field,
            format!("empty, but {} id is required", kind.what),
        )
    })?;
    let key = normalize_key(&key).into_owned();
    if let Some(first) = first_line.get(&key) {
        // "an item" -> "item": the noun the duplicate's message starts with.
        let noun = kind.what.rsplit(' ').next().unwrap_or(kind.what);
        return Err(rejected(
            malformed_at(
                rec,
                id,
                kind.field,
                format!(
                    "{noun} `{}` appears twice (first on line {first})",
                    key.escape_debug()
                ),
            ),
            kind.duplicate,
        ));
    }
    Ok(key)
}
