//! Resolving a file's fields to its columns, and reading a record's typed values with errors
//! that name file, line and field; what a skipped record records.

use super::*;

// ------------------------------------------------------------------------------------------------
// Resolving fields to columns
// ------------------------------------------------------------------------------------------------

/// Where one field's value is read from in one file.
#[derive(Debug, Clone)]
pub(super) enum Src {
    Col(usize),
    Cols(Vec<usize>),
    Const(String),
    Row,
    Absent,
}

impl Src {
    pub(super) fn columns(&self) -> &[usize] {
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
pub(super) struct SharedFields {
    /// `(field, column) -> (found in some file, the first file that lacked it)`.
    pub(super) seen: BTreeMap<(String, String), (bool, Option<PathBuf>)>,
}

impl SharedFields {
    pub(super) fn note(&mut self, field: &str, column: &str, found: bool, path: &Path) {
        let e = self
            .seen
            .entry((field.to_owned(), column.to_owned()))
            .or_insert((false, None));
        e.0 |= found;
        if !found && e.1.is_none() {
            e.1 = Some(path.to_owned());
        }
    }

    pub(super) fn check(&self) -> Result<(), DataError> {
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

pub(super) fn header_error(
    reader: &Reader<'_>,
    field: &str,
    column: &str,
    hint: &str,
) -> DataError {
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
pub(super) fn resolve(
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
pub(super) fn text<'x>(rec: &Record<'x>, src: &'x Src) -> Result<Option<Cow<'x, str>>, DataError> {
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
pub(super) fn field_name(rec: &Record<'_>, src: &Src, field: &str) -> String {
    match src {
        Src::Col(c) => rec.name(*c).into_owned(),
        _ => field.to_owned(),
    }
}

pub(super) fn malformed_at(
    rec: &Record<'_>,
    src: &Src,
    field: &str,
    reason: impl Into<String>,
) -> DataError {
    rec.malformed_field(&field_name(rec, src, field), reason)
}

/// Reads a resolved field's value as a finite number.
pub(super) fn number(rec: &Record<'_>, src: &Src, field: &str) -> Result<Option<f64>, DataError> {
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
pub(super) fn whole(
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
pub(super) fn flag(rec: &Record<'_>, src: &Src, field: &str) -> Result<Option<bool>, DataError> {
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
pub(super) struct Unmapped {
    pub(super) mapped: HashSet<usize>,
    pub(super) allowed: Option<HashSet<String>>,
    pub(super) known: usize,
    pub(super) selected: Vec<usize>,
}

impl Unmapped {
    pub(super) fn new(mapped: HashSet<usize>, allowed: Option<&[String]>) -> Self {
        Unmapped {
            mapped,
            allowed: allowed.map(|a| a.iter().cloned().collect()),
            known: 0,
            selected: Vec::new(),
        }
    }

    pub(super) fn refresh(&mut self, columns: &Columns) -> &[usize] {
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
pub(super) struct Rejected {
    pub(super) error: DataError,
    pub(super) reason: Cow<'static, str>,
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

pub(super) fn rejected(error: DataError, reason: &'static str) -> Rejected {
    Rejected {
        error,
        reason: Cow::Borrowed(reason),
    }
}

/// Applies the malformed-record policy.
pub(super) fn reject(
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
