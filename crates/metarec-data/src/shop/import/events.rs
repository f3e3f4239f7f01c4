//! Reading an events file into [`EventRecord`]s: every row checked and cleaned, and the catalog
//! derived from the events when no catalog file is given.
//!
//! A large delimited file is read on several threads: it is cut into chunks at record boundaries
//! (`table::split_records`), each chunk is scanned on its own, and the chunks' events, reports and
//! derived items are joined in file order, so the result is the one a single pass gives (the
//! first error in file order is the one reported). JSON Lines files are read in one pass, since
//! their columns appear as records name them and the order of context tokens follows that
//! appearance.

use super::compact::{Compact, Events};
use super::map::{CategorySplit, Role};
use super::source::{Input, Reader, Record};
use super::{
    ImportSpec, ItemRow, ItemTable, Rejected, SKIP_BAD_TIME, SKIP_EXCLUDED, SKIP_MISSING_USER,
    SKIP_PRICE, SKIP_PROPENSITY, SKIP_QUANTITY, SKIP_REVENUE, SKIP_UNKNOWN_ITEM, SKIP_UNKNOWN_TYPE,
    SharedFields, Src, TypedAttributes, Unmapped, flag, header_error, malformed_at, normalize_cow,
    number, reject, rejected, resolve, text, token_into, whole,
};
use crate::error::DataError;
use crate::report::LoadReport;
use crate::shop::{EventKind, Interner};
use crate::table::reader_threads;
use crate::time::{TimeFormat, epoch_ms, parse_timestamp_ms};
use std::borrow::Cow;
use std::collections::HashSet;

pub(super) struct EventsRead {
    pub(super) events: Events,
    pub(super) report: LoadReport,
    /// The catalog built from the events, when no catalog file was given.
    pub(super) derived: Option<Derived>,
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

/// One event row parsed, before the cleaning rules; texts borrow from the row.
struct ParsedEvent<'r> {
    user: Option<Cow<'r, str>>,
    item: Cow<'r, str>,
    timestamp_ms: i64,
    kind: EventKind,
    session: Option<Cow<'r, str>>,
    ranking: Option<Cow<'r, str>>,
    position: Option<u32>,
    propensity: Option<f64>,
    quantity: Option<i64>,
    revenue: Option<f64>,
    price: Option<f64>,
    title: Option<Cow<'r, str>>,
    categories: Vec<String>,
    brand: Option<String>,
    flags: Vec<EventKind>,
}

pub(super) fn read_events(
    input: &Input,
    spec: &ImportSpec,
    excluded: &HashSet<String>,
    catalog_keys: Option<&Interner>,
    shared: &mut SharedFields,
) -> Result<EventsRead, DataError> {
    let parts = reader_threads(input.bytes.len());
    read_events_in(input, spec, excluded, catalog_keys, shared, parts)
}

/// [`read_events`] on up to `parts` threads.
fn read_events_in(
    input: &Input,
    spec: &ImportSpec,
    excluded: &HashSet<String>,
    catalog_keys: Option<&Interner>,
    shared: &mut SharedFields,
    parts: usize,
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
    let scan = Scan {
        spec,
        cols: &cols,
        excluded,
        catalog_keys,
        derive: catalog_keys.is_none(),
        split: map.category_split(),
        base: f64::from(map.position_base()),
    };
    let context = Unmapped::new(mapped, map.context());
    let path = input.path.display().to_string();
    let chunks = reader.split(parts);
    let results: Vec<Result<EventsRead, DataError>> = if chunks.len() == 1 {
        chunks
            .into_iter()
            .map(|chunk| scan_events(chunk, &scan, context.clone()))
            .collect()
    } else {
        std::thread::scope(|scope| {
            let handles: Vec<_> = chunks
                .into_iter()
                .map(|chunk| {
                    let (scan, context) = (&scan, context.clone());
                    scope.spawn(move || scan_events(chunk, scan, context))
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("an events reader thread panicked"))
                .collect()
        })
    };
    let mut merged: Option<EventsRead> = None;
    for result in results {
        // The first error in file order wins, as in a single pass.
        let chunk = result?;
        let Some(all) = &mut merged else {
            merged = Some(chunk);
            continue;
        };
        all.report.absorb(&chunk.report);
        let items = match (&mut all.derived, chunk.derived) {
            (Some(all), Some(part)) => Some(all.absorb(part)),
            _ => None,
        };
        all.events.absorb(chunk.events, items.as_deref());
    }
    let mut read = merged.unwrap_or_else(|| EventsRead {
        events: Events::default(),
        report: LoadReport::default(),
        derived: scan.derive.then(Derived::default),
    });
    read.report.source = path;
    Ok(read)
}

/// What scanning a chunk of an events file reads and does not change.
struct Scan<'s> {
    spec: &'s ImportSpec,
    cols: &'s EventColumns,
    excluded: &'s HashSet<String>,
    catalog_keys: Option<&'s Interner>,
    /// Whether the catalog is derived from the events (no catalog file).
    derive: bool,
    split: CategorySplit,
    /// The number the file's positions start from.
    base: f64,
}

/// Reads the records of one chunk (or of the whole file) into events.
fn scan_events(
    mut reader: Reader<'_>,
    scan: &Scan<'_>,
    mut context: Unmapped,
) -> Result<EventsRead, DataError> {
    let Scan {
        spec,
        cols,
        excluded,
        catalog_keys,
        derive,
        split,
        base,
    } = *scan;
    let map = &spec.map;
    let time_format = spec.time_format.as_ref();
    let mut report = LoadReport::new("");
    let mut derived = derive.then(Derived::default);
    // One event per line is the common case: reserving for it saves copying a million records
    // as the vector grows.
    let mut events = Events::with_capacity(reader.lines() + 1);
    // The context of the row being read, as the JSON array `events.jsonl` stores.
    let mut token = String::new();
    let mut tokens: Vec<u8> = Vec::new();
    reader.for_each(|columns, rec| {
        let rec = match rec {
            Ok(r) => r,
            Err(e) => return reject(e.into(), spec.on_malformed, &mut report),
        };
        let context_cols = context.refresh(columns);
        let parsed = (|| -> Result<ParsedEvent, Rejected> {
            rec.check_width()?;
            let user = text(&rec, &cols.user)?.map(normalize_cow);
            let item = text(&rec, &cols.item)?.ok_or_else(|| {
                malformed_at(
                    &rec,
                    &cols.item,
                    "item_id",
                    "empty, but an item id is required",
                )
            })?;
            let item = normalize_cow(item);
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
            let session = text(&rec, &cols.session)?;
            let ranking = text(&rec, &cols.ranking)?;
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
                    text(&rec, &cols.title)?,
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
        if excluded.contains(&*e.item) {
            report.skip(SKIP_EXCLUDED);
            return Ok(());
        }
        let known = match catalog_keys {
            Some(index) => match index.lookup(&e.item) {
                Some(row) => Some(row),
                None => {
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
            },
            None => None,
        };
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
        tokens.clear();
        for &c in context_cols {
            if let Ok(Some(v)) = rec.text(c) {
                token_into(&rec.name(c), &v, &mut token);
                tokens.push(if tokens.is_empty() { b'[' } else { b',' });
                // Writing a string into a vector cannot fail.
                let _ = serde_json::to_writer(&mut tokens, token.as_str());
            }
        }
        let context = if tokens.is_empty() {
            None
        } else {
            tokens.push(b']');
            std::str::from_utf8(&tokens).ok()
        };
        let item = match (&mut derived, known) {
            (_, Some(row)) => row,
            (Some(derived), None) => derived.add(
                &e.item,
                rec.line(),
                e.title.as_deref(),
                e.price,
                e.categories,
                e.brand,
            ),
            // Without a catalog the items are always derived.
            (None, None) => return Ok(()),
        };
        let record = Compact {
            timestamp_ms: e.timestamp_ms,
            propensity: e.propensity,
            revenue: revenue_of(e.kind),
            item,
            user: events.users.id(&user),
            session: Events::optional(&mut events.sessions, e.session.as_deref()),
            ranking: Events::optional(&mut events.rankings, e.ranking.as_deref()),
            context: Events::optional(&mut events.contexts, context),
            position: e.position,
            quantity,
            kind: e.kind,
        };
        events.records.push(record);
        // A flag adds feedback on the same shown item, after the row's own event: same user,
        // item, time, visit, ranking and position; the logging propensity stays with the
        // impression.
        for &kind in &e.flags {
            events.records.push(Compact {
                kind,
                propensity: None,
                revenue: revenue_of(kind),
                quantity: if kind == EventKind::Purchase {
                    quantity
                } else {
                    None
                },
                ..record
            });
        }
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

/// The catalog an events file builds when no catalog file is given.
#[derive(Default)]
pub(super) struct Derived {
    /// The item keys, numbered as `items`.
    keys: Interner,
    items: Vec<DerivedItem>,
}

#[derive(Default)]
struct DerivedItem {
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
    ) -> u32 {
        let i = self.keys.id(key);
        if i as usize == self.items.len() {
            self.items.push(DerivedItem {
                line,
                ..DerivedItem::default()
            });
        }
        let Some(item) = self.items.get_mut(i as usize) else {
            // Only past four billion items, where numbers run out.
            return i;
        };
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
        i
    }

    /// Adds the items of a later chunk of the file: what a single pass would have built from
    /// both. Titles are counted, prices pooled, and the first category list and brand in file
    /// order kept. Returns where each of the later chunk's items went.
    fn absorb(&mut self, later: Derived) -> Vec<u32> {
        let mut moved = Vec::with_capacity(later.items.len());
        for (key, it) in later.keys.iter().zip(later.items) {
            let i = self.keys.id(key);
            moved.push(i);
            if i as usize == self.items.len() {
                self.items.push(it);
                continue;
            }
            let Some(item) = self.items.get_mut(i as usize) else {
                continue;
            };
            for (t, n) in it.titles {
                match item.titles.iter_mut().find(|(s, _)| *s == t) {
                    Some((_, m)) => *m += n,
                    None => item.titles.push((t, n)),
                }
            }
            item.prices.extend(it.prices);
            if item.categories.is_empty() {
                item.categories = it.categories;
            }
            if item.brand.is_none() {
                item.brand = it.brand;
            }
        }
        moved
    }

    pub(super) fn into_table(self) -> ItemTable {
        let rows = self
            .keys
            .iter()
            .zip(self.items)
            .map(|(key, mut it)| {
                // The most common title; ties go to the alphabetically first, so the result
                // does not depend on file order.
                let title = it
                    .titles
                    .iter()
                    .max_by(|(a, na), (b, nb)| na.cmp(nb).then_with(|| b.cmp(a)))
                    .map(|(t, _)| t.to_string());
                ItemRow {
                    key: key.to_owned(),
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
pub(super) fn median(values: &mut [f64]) -> Option<f64> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::OnMalformed;
    use std::fmt::Write as _;
    use std::path::Path;

    /// A file whose records cross chunk boundaries in every way a split could get wrong: quoted
    /// fields with commas, quotes and line breaks, malformed rows, flags and context columns.
    fn file(bad_from: u32) -> Vec<u8> {
        let mut text = String::from(
            "user_id,item_id,timestamp,type,ranking_id,position,title,price,clicked,device\n",
        );
        for i in 0..400u32 {
            let user = format!("U{}", i / 7);
            let item = format!("I{}", (i * 13) % 37);
            let time = 1_700_000_000 + i64::from((i * 7919) % 500);
            let title = match i % 5 {
                0 => format!("\"Lamp, \"\"tall\"\"\n{}\"", i % 3),
                1 => String::new(),
                _ => format!("Title {}", i % 4),
            };
            let price = if i % 11 == 0 {
                "-1".to_owned()
            } else {
                format!("{}.5", i % 9)
            };
            let kind = if i % 53 == 52 && i >= bad_from {
                "bogus"
            } else {
                "view"
            };
            let time = if i % 61 == 60 && i >= bad_from {
                "later".to_owned()
            } else {
                time.to_string()
            };
            let clicked = if i % 3 == 0 { "1" } else { "0" };
            let device = ["desktop", "mobile", ""][(i % 3) as usize];
            writeln!(
                text,
                "{user},{item},{time},{kind},R{},{},{title},{price},{clicked},{device}",
                i / 4,
                i % 4
            )
            .unwrap();
        }
        text.into_bytes()
    }

    fn spec(on_malformed: OnMalformed) -> ImportSpec {
        ImportSpec {
            events: "events.csv".into(),
            map: "flag.click=clicked".parse().unwrap(),
            on_malformed,
            ..ImportSpec::default()
        }
    }

    fn read(
        input: &Input,
        spec: &ImportSpec,
        catalog: Option<&Interner>,
        parts: usize,
    ) -> Result<EventsRead, DataError> {
        read_events_in(
            input,
            spec,
            &HashSet::new(),
            catalog,
            &mut SharedFields::default(),
            parts,
        )
    }

    #[test]
    fn a_split_file_reads_as_one_pass_does() {
        let input = Input::from_bytes(Path::new("events.csv"), file(0)).unwrap();
        let spec = spec(OnMalformed::Skip);
        let catalog_keys: Vec<String> = (0..37).rev().map(|i| format!("I{i}")).collect();
        let mut catalog = Interner::default();
        for k in &catalog_keys {
            catalog.id(k);
        }
        for given in [None, Some(&catalog)] {
            let whole = read(&input, &spec, given, 1).unwrap();
            let derived_keys = |r: &EventsRead| -> Vec<String> {
                match &r.derived {
                    Some(d) => d.keys.iter().map(str::to_owned).collect(),
                    None => catalog_keys.clone(),
                }
            };
            let table = |r: EventsRead| {
                r.derived.map(|d| {
                    d.into_table()
                        .rows
                        .into_iter()
                        .map(|row| format!("{row:?}"))
                        .collect::<Vec<_>>()
                })
            };
            let keys = derived_keys(&whole);
            let expected = whole.events.to_records(&keys);
            assert!(expected.len() > 300, "{} events", expected.len());
            assert!(
                whole.report.skipped.len() >= 3,
                "{:?}",
                whole.report.skipped
            );
            for parts in [2, 3, 7] {
                let split = read(&input, &spec, given, parts).unwrap();
                assert_eq!(
                    split.events.to_records(&derived_keys(&split)),
                    expected,
                    "{parts} parts"
                );
                assert_eq!(split.report.kept, whole.report.kept);
                assert_eq!(split.report.records, whole.report.records);
                assert_eq!(split.report.skipped, whole.report.skipped);
                assert_eq!(split.report.missing, whole.report.missing);
                assert_eq!(split.report.source, whole.report.source);
                let whole = read(&input, &spec, given, 1).unwrap();
                assert_eq!(
                    table(split),
                    table(whole),
                    "derived catalog with {parts} parts"
                );
            }
        }
    }

    #[test]
    fn a_split_file_reports_the_first_error_in_file_order() {
        // The first malformed row lies past the middle of the file, in a later chunk.
        let input = Input::from_bytes(Path::new("events.csv"), file(250)).unwrap();
        let spec = spec(OnMalformed::Fail);
        let first = read(&input, &spec, None, 1).err().unwrap().to_string();
        assert!(first.contains("line 319: field `type`"), "{first}");
        for parts in [2, 3, 7] {
            let error = read(&input, &spec, None, parts).err().unwrap().to_string();
            assert_eq!(error, first, "{parts} parts");
        }
    }
}
