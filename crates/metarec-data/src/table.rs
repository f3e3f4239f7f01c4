//! A delimited-text reader shared by the loaders: header lookup, typed field access, and errors
//! that name file, line and field.
//!
//! Loaders read whole files into memory first (the largest, Online Retail, is 48 MB), so the
//! reader works on a byte slice and never copies field contents.

use crate::error::DataError;
use crate::report::{LoadOptions, LoadReport, OnMalformed};
use csv::ByteRecord;
use std::path::Path;
use std::str::FromStr;

/// The dialect of a delimited file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dialect {
    /// Comma-separated with RFC 4180 quoting.
    Csv,
    /// Tab-separated without quoting (RecBole's atomic files, where a title may start with `"`).
    Tsv,
}

impl Dialect {
    fn reader(self, bytes: &[u8]) -> csv::Reader<&[u8]> {
        let (delimiter, quoting) = match self {
            Dialect::Csv => (b',', true),
            Dialect::Tsv => (b'\t', false),
        };
        csv::ReaderBuilder::new()
            .delimiter(delimiter)
            .quoting(quoting)
            .has_headers(false)
            // Field counts are checked per record so that a short or long row can be reported
            // (or skipped) with its line number instead of aborting the whole read.
            .flexible(true)
            .from_reader(bytes)
    }
}

/// A header-first delimited table over a byte slice.
pub(crate) struct Table<'a> {
    path: &'a Path,
    reader: csv::Reader<&'a [u8]>,
    header: Vec<String>,
    record: ByteRecord,
    dialect: Dialect,
    /// Lines before the slice this table reads (non-zero for a chunk of a larger file).
    line_offset: u64,
}

impl<'a> Table<'a> {
    /// Opens a table and reads its header.
    pub(crate) fn new(
        path: &'a Path,
        bytes: &'a [u8],
        dialect: Dialect,
    ) -> Result<Self, DataError> {
        if bytes.iter().all(|b| b.is_ascii_whitespace()) {
            return Err(DataError::Empty {
                path: path.to_owned(),
            });
        }
        let mut reader = dialect.reader(bytes);
        let mut raw = ByteRecord::new();
        let found = reader
            .read_byte_record(&mut raw)
            .map_err(|e| csv_error(path, 1, e))?;
        if !found {
            return Err(DataError::Empty {
                path: path.to_owned(),
            });
        }
        let mut header = Vec::with_capacity(raw.len());
        for (i, field) in raw.iter().enumerate() {
            let mut field = field;
            if i == 0 {
                field = field.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(field);
            }
            let name = std::str::from_utf8(field).map_err(|_| DataError::Malformed {
                path: path.to_owned(),
                line: 1,
                field: format!("header column {}", i + 1),
                reason: "invalid UTF-8".into(),
            })?;
            header.push(name.trim().to_owned());
        }
        Ok(Table {
            path,
            reader,
            header,
            record: ByteRecord::new(),
            dialect,
            line_offset: 0,
        })
    }

    /// A table over a later chunk of the same file: no header of its own, and line numbers
    /// counted from `line_offset` lines before the chunk.
    pub(crate) fn continuation(&self, bytes: &'a [u8], line_offset: u64) -> Table<'a> {
        Table {
            path: self.path,
            reader: self.dialect.reader(bytes),
            header: self.header.clone(),
            record: ByteRecord::new(),
            line_offset,
            dialect: self.dialect,
        }
    }

    /// The byte offset just past the header record, where the data records begin.
    pub(crate) fn data_start(&self) -> usize {
        self.reader.position().byte() as usize
    }

    /// The index of a named column.
    pub(crate) fn column(&self, name: &str) -> Result<usize, DataError> {
        self.header
            .iter()
            .position(|h| h == name)
            .ok_or_else(|| DataError::MissingColumn {
                path: self.path.to_owned(),
                column: name.to_owned(),
                found: self.header.join(", "),
            })
    }

    /// Moves to the next record; `Ok(None)` at the end.
    pub(crate) fn next_row(&mut self) -> Result<Option<Row<'_>>, DataError> {
        let line_guess = self.reader.position().line() + self.line_offset;
        match self.reader.read_byte_record(&mut self.record) {
            Ok(true) => Ok(Some(Row {
                path: self.path,
                line: self
                    .record
                    .position()
                    .map_or(line_guess, |p| p.line() + self.line_offset),
                record: &self.record,
                header: &self.header,
            })),
            Ok(false) => Ok(None),
            Err(e) => Err(csv_error(self.path, line_guess, e)),
        }
    }
}

fn csv_error(path: &Path, line: u64, e: csv::Error) -> DataError {
    let line = e.position().map_or(line, |p| p.line());
    DataError::Malformed {
        path: path.to_owned(),
        line,
        field: "<record>".into(),
        reason: e.to_string(),
    }
}

/// One record of a [`Table`], with typed access to its fields.
pub(crate) struct Row<'r> {
    path: &'r Path,
    line: u64,
    record: &'r ByteRecord,
    header: &'r [String],
}

impl<'r> Row<'r> {
    /// The 1-based line where the record starts.
    pub(crate) fn line(&self) -> u64 {
        self.line
    }

    /// An error about field `i` of this record.
    pub(crate) fn malformed(&self, i: usize, reason: impl Into<String>) -> DataError {
        DataError::Malformed {
            path: self.path.to_owned(),
            line: self.line,
            field: self
                .header
                .get(i)
                .cloned()
                .unwrap_or_else(|| format!("column {}", i + 1)),
            reason: reason.into(),
        }
    }

    /// Checks that the record has as many fields as the header.
    pub(crate) fn check_width(&self) -> Result<(), DataError> {
        if self.record.len() == self.header.len() {
            Ok(())
        } else {
            Err(DataError::Malformed {
                path: self.path.to_owned(),
                line: self.line,
                field: "<record>".into(),
                reason: format!(
                    "expected {} fields, found {}",
                    self.header.len(),
                    self.record.len()
                ),
            })
        }
    }

    /// The raw bytes of field `i` (empty when the record is short).
    pub(crate) fn bytes(&self, i: usize) -> &'r [u8] {
        self.record.get(i).unwrap_or(b"")
    }

    /// Field `i` as UTF-8 text, trimmed of surrounding whitespace.
    pub(crate) fn str(&self, i: usize) -> Result<&'r str, DataError> {
        std::str::from_utf8(self.bytes(i))
            .map(str::trim)
            .map_err(|_| self.malformed(i, "invalid UTF-8"))
    }

    /// The bytes of field `i` without surrounding ASCII whitespace; for fields that are parsed
    /// as numbers or dates, which need no UTF-8 validation (a hot path on large files).
    pub(crate) fn trimmed(&self, i: usize) -> &'r [u8] {
        self.bytes(i).trim_ascii()
    }

    /// Field `i` as a signed integer, parsed straight from its bytes.
    pub(crate) fn int(&self, i: usize) -> Result<i64, DataError> {
        let b = self.trimmed(i);
        let (negative, digits) = match b {
            [b'-', rest @ ..] => (true, rest),
            [b'+', rest @ ..] => (false, rest),
            _ => (false, b),
        };
        let mut v: i64 = 0;
        let mut ok = !digits.is_empty();
        for &c in digits {
            if !c.is_ascii_digit() {
                ok = false;
                break;
            }
            match v
                .checked_mul(10)
                .and_then(|v| v.checked_add(i64::from(c - b'0')))
            {
                Some(n) => v = n,
                None => {
                    ok = false;
                    break;
                }
            }
        }
        if ok {
            Ok(if negative { -v } else { v })
        } else {
            let shown = String::from_utf8_lossy(b);
            Err(self.malformed(
                i,
                format!("`{}` is not a valid integer", truncate(&shown, 40)),
            ))
        }
    }

    /// Field `i` as non-empty UTF-8 text.
    pub(crate) fn required_str(&self, i: usize) -> Result<&'r str, DataError> {
        let s = self.str(i)?;
        if s.is_empty() {
            Err(self.malformed(i, "empty, but a value is required"))
        } else {
            Ok(s)
        }
    }

    /// Field `i` parsed as a `T`.
    pub(crate) fn parse<T: FromStr>(&self, i: usize) -> Result<T, DataError> {
        let s = self.str(i)?;
        s.parse().map_err(|_| {
            self.malformed(
                i,
                format!(
                    "`{}` is not a valid {}",
                    truncate(s, 40),
                    short_type_name::<T>()
                ),
            )
        })
    }

    /// Field `i` as a finite float.
    pub(crate) fn finite(&self, i: usize) -> Result<f64, DataError> {
        let v: f64 = self.parse(i)?;
        if v.is_finite() {
            Ok(v)
        } else {
            Err(self.malformed(i, format!("{v} is not a finite number")))
        }
    }
}

/// Cuts a string for an error message, on a character boundary.
pub(crate) fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_owned()
    } else {
        let cut: String = s.chars().take(max).collect();
        format!("{cut}...")
    }
}

fn short_type_name<T>() -> &'static str {
    let full = std::any::type_name::<T>();
    match full {
        "f32" | "f64" => "number",
        "u8" | "u16" | "u32" | "u64" | "usize" => "non-negative integer",
        "i8" | "i16" | "i32" | "i64" | "isize" => "integer",
        other => other.rsplit("::").next().unwrap_or(other),
    }
}

/// Applies the [`OnMalformed`] policy to an error from one record: fails, or counts the record
/// as skipped under a reason naming the field.
pub(crate) fn handle_malformed(
    err: DataError,
    options: &LoadOptions,
    report: &mut LoadReport,
) -> Result<(), DataError> {
    match options.on_malformed {
        OnMalformed::Fail => Err(err),
        OnMalformed::Skip => {
            let reason = match &err {
                DataError::Malformed { field, .. } => format!("malformed {field}"),
                DataError::Invalid { source, .. } => format!("invalid record: {source}"),
                other => format!("malformed: {other}"),
            };
            report.skip(&reason);
            Ok(())
        }
    }
}

/// Reads a whole file, naming it in the error.
pub(crate) fn read_file(path: &Path) -> Result<Vec<u8>, DataError> {
    std::fs::read(path).map_err(|e| DataError::io(path, e))
}

/// Splits `bytes` into up to `parts` chunks that each end at a record boundary: a newline outside
/// quotes. Quote parity decides "outside": in RFC 4180 CSV an escaped quote is doubled, so the
/// count of quote characters before a record boundary is always even.
pub(crate) fn split_records(bytes: &[u8], parts: usize) -> Vec<&[u8]> {
    let mut chunks = Vec::with_capacity(parts);
    let mut start = 0;
    let mut quotes_before_start = 0usize;
    for k in 1..parts {
        let target = bytes.len() * k / parts;
        if target <= start {
            continue;
        }
        let mut quotes = quotes_before_start + count_quotes(&bytes[start..target]);
        let mut cut = None;
        for (i, &b) in bytes[target..].iter().enumerate() {
            match b {
                b'"' => quotes += 1,
                b'\n' if quotes % 2 == 0 => {
                    cut = Some(target + i + 1);
                    break;
                }
                _ => {}
            }
        }
        let Some(cut) = cut else { break };
        chunks.push(&bytes[start..cut]);
        quotes_before_start = quotes;
        start = cut;
    }
    chunks.push(&bytes[start..]);
    chunks
}

fn count_quotes(bytes: &[u8]) -> usize {
    memchr::memchr_iter(b'"', bytes).count()
}

/// Number of newline characters in `bytes` (to carry line numbers across chunks).
pub(crate) fn count_lines(bytes: &[u8]) -> u64 {
    memchr::memchr_iter(b'\n', bytes).count() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_only_at_newlines_outside_quotes() {
        let text = b"a,\"x\ny\"\nb,c\nd,\"\"\"q\n\"\ne,f\n";
        for parts in 1..8 {
            let chunks = split_records(text, parts);
            assert_eq!(chunks.concat(), text.to_vec());
            for c in &chunks[..chunks.len() - 1] {
                assert!(c.ends_with(b"\n"));
                assert_eq!(count_quotes(c) % 2, 0, "{:?}", String::from_utf8_lossy(c));
            }
        }
    }
}
