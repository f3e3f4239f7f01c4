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
    bytes: &'a [u8],
    /// A byte offset into `bytes` and the 1-based line it lies on (plus `line_offset`); line
    /// numbers are counted from here by scanning newlines, since the csv reader's own count is
    /// off after CRLF endings and blank lines.
    scan_byte: usize,
    scan_line: u64,
    reader: csv::Reader<&'a [u8]>,
    header: Vec<String>,
    record: ByteRecord,
    dialect: Dialect,
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
        let scan_byte = reader.position().byte() as usize;
        Ok(Table {
            path,
            bytes,
            scan_byte,
            scan_line: 1 + count_lines(&bytes[..scan_byte]),
            reader,
            header,
            record: ByteRecord::new(),
            dialect,
        })
    }

    /// A table over a later chunk of the same file: no header of its own, and line numbers
    /// counted from `line_offset` lines before the chunk.
    pub(crate) fn continuation(&self, bytes: &'a [u8], line_offset: u64) -> Table<'a> {
        Table {
            path: self.path,
            bytes,
            scan_byte: 0,
            scan_line: 1 + line_offset,
            reader: self.dialect.reader(bytes),
            header: self.header.clone(),
            record: ByteRecord::new(),
            dialect: self.dialect,
        }
    }

    /// The byte offset just past the header record, where the data records begin.
    pub(crate) fn data_start(&self) -> usize {
        self.reader.position().byte() as usize
    }

    /// The lines from the reading position to the end of the table's bytes.
    pub(crate) fn remaining_lines(&self) -> usize {
        let at = (self.reader.position().byte() as usize).min(self.bytes.len());
        count_lines(&self.bytes[at..]) as usize
    }

    /// The column names of the header, trimmed, in file order.
    pub(crate) fn header(&self) -> &[String] {
        &self.header
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
        let before = self.reader.position().byte() as usize;
        match self.reader.read_byte_record(&mut self.record) {
            Ok(true) => {
                let start = self.record.position().map_or(before, |p| p.byte() as usize);
                let line = self.line_at(start);
                Ok(Some(Row {
                    path: self.path,
                    line,
                    record: &self.record,
                    header: &self.header,
                }))
            }
            Ok(false) => Ok(None),
            Err(e) => {
                let at = e.position().map_or(before, |p| p.byte() as usize);
                let line = self.line_at(at);
                Err(csv_error(self.path, line, e))
            }
        }
    }

    /// The line of the first non-terminator byte at or after `start` (a record's position
    /// includes the line terminators and blank lines before it).
    fn line_at(&mut self, start: usize) -> u64 {
        let mut start = start.min(self.bytes.len());
        while start < self.bytes.len() && matches!(self.bytes[start], b'\r' | b'\n') {
            start += 1;
        }
        if start >= self.scan_byte {
            let span = &self.bytes[self.scan_byte..start];
            // Consecutive records are usually one line apart: a plain loop over a short span
            // is cheaper than setting up a vectorised count.
            self.scan_line += if span.len() < 512 {
                span.iter().filter(|&&b| b == b'\n').count() as u64
            } else {
                count_lines(span)
            };
            self.scan_byte = start;
        }
        self.scan_line
    }
}

fn csv_error(path: &Path, line: u64, e: csv::Error) -> DataError {
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
        if let Some(v) = fast_decimal(self.trimmed(i)) {
            return Ok(v);
        }
        let v: f64 = self.parse(i)?;
        if v.is_finite() {
            Ok(v)
        } else {
            Err(self.malformed(i, format!("{v} is not a finite number")))
        }
    }
}

impl Row<'_> {
    /// Field `i` as a number that fits an `f32` without becoming infinite.
    pub(crate) fn finite_f32(&self, i: usize) -> Result<f32, DataError> {
        let v = self.finite(i)?;
        let narrow = v as f32;
        if narrow.is_finite() {
            Ok(narrow)
        } else {
            Err(self.malformed(i, format!("{v} is too large (beyond 3.4e38)")))
        }
    }
}

/// Parses plain decimals such as `2.55` or `-12` exactly, or returns `None` for anything else
/// (exponents, more than 15 digits, empty input), which the general parser then handles.
///
/// With at most 15 significant digits the digits form an integer below 2^53 and the scale is a
/// power of ten below 10^22, both exact in `f64`; IEEE division then rounds once, so the result
/// is the correctly rounded value, the same as `str::parse` gives (Clinger's fast path).
pub(crate) fn fast_decimal(b: &[u8]) -> Option<f64> {
    let (negative, digits) = match b {
        [b'-', rest @ ..] => (true, rest),
        [b'+', rest @ ..] => (false, rest),
        _ => (false, b),
    };
    let mut mantissa: u64 = 0;
    let mut count = 0u32;
    let mut scale = 0i32;
    let mut seen_dot = false;
    for &c in digits {
        match c {
            b'0'..=b'9' => {
                mantissa = mantissa * 10 + u64::from(c - b'0');
                count += 1;
                if seen_dot {
                    scale += 1;
                }
                if count > 15 {
                    return None;
                }
            }
            b'.' if !seen_dot => seen_dot = true,
            _ => return None,
        }
    }
    if count == 0 {
        return None;
    }
    let v = mantissa as f64 / 10f64.powi(scale);
    Some(if negative { -v } else { v })
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

/// How many threads read a file body of `len` bytes: one below a few megabytes, where starting
/// threads costs more than it saves, else one per core (at most eight).
pub(crate) fn reader_threads(len: usize) -> usize {
    if len < (4 << 20) {
        1
    } else {
        std::thread::available_parallelism().map_or(1, |n| n.get().min(8))
    }
}

/// Splits CSV `bytes` into up to `parts` chunks that each end at a record boundary: a newline
/// outside quoted fields.
///
/// Only quote characters are visited (found with `memchr`), following the csv reader's rules: a
/// quote opens a quoted field only at the start of a field (after a comma, a line break, or at
/// the start), so a literal quote inside an unquoted field (`12" RULER`) changes nothing; inside
/// a quoted field a doubled quote is an escaped quote and a single one closes the field.
pub(crate) fn split_records(bytes: &[u8], parts: usize) -> Vec<&[u8]> {
    let mut quotes = memchr::memchr_iter(b'"', bytes).peekable();
    let mut inside = false;
    // Applies every quote before `to` to the quoted/unquoted state.
    let mut advance = |to: usize, inside: &mut bool| {
        while let Some(&q) = quotes.peek() {
            if q >= to {
                break;
            }
            quotes.next();
            if *inside {
                if bytes.get(q + 1) == Some(&b'"') {
                    quotes.next();
                } else {
                    *inside = false;
                }
            } else if q == 0 || matches!(bytes[q - 1], b',' | b'\n' | b'\r') {
                *inside = true;
            }
        }
    };
    let mut chunks = Vec::with_capacity(parts);
    let mut start = 0;
    for k in 1..parts {
        let mut pos = (bytes.len() * k / parts).max(start);
        let mut cut = None;
        while let Some(n) = memchr::memchr(b'\n', &bytes[pos..]).map(|i| pos + i) {
            advance(n, &mut inside);
            if !inside {
                cut = Some(n + 1);
                break;
            }
            pos = n + 1;
        }
        let Some(cut) = cut else { break };
        if cut >= bytes.len() {
            break;
        }
        chunks.push(&bytes[start..cut]);
        start = cut;
    }
    chunks.push(&bytes[start..]);
    chunks
}

/// Number of newline characters in `bytes` (to carry line numbers across chunks).
pub(crate) fn count_lines(bytes: &[u8]) -> u64 {
    memchr::memchr_iter(b'\n', bytes).count() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fast_decimals_agree_with_the_standard_parser() {
        for text in [
            "2.55",
            "0.001",
            "8142.75",
            "-11062.06",
            "1",
            "+3.5",
            "0.1",
            "123456789012345",
            "0.00000000000001",
            "99999.99999",
        ] {
            let expected: f64 = text.parse().unwrap();
            assert_eq!(fast_decimal(text.as_bytes()), Some(expected), "{text}");
        }
        // More than 15 digits (leading zeros included) go to the general parser.
        for text in [
            "",
            "-",
            ".",
            "0.000000000000001",
            "1e5",
            "1.2.3",
            "1234567890123456",
            "inf",
            "NaN",
            "1,5",
        ] {
            assert_eq!(fast_decimal(text.as_bytes()), None, "{text}");
        }
    }

    #[test]
    fn literal_quotes_in_unquoted_fields_do_not_flip_the_state() {
        // Line 1 has a literal quote; line 2 a quoted field with a newline inside.
        let text = b"a,12\" RULER,x\nb,\"multi\nline\",y\nc,z,w\n";
        for parts in 2..12 {
            for c in split_records(text, parts) {
                assert!(
                    !c.starts_with(b"line"),
                    "split inside a quoted field: {parts}"
                );
            }
        }
    }

    #[test]
    fn splits_only_at_newlines_outside_quotes() {
        let text = b"a,\"x\ny\"\nb,c\nd,\"\"\"q\n\"\ne,f\n";
        for parts in 1..8 {
            let chunks = split_records(text, parts);
            assert_eq!(chunks.concat(), text.to_vec());
            for c in &chunks[..chunks.len() - 1] {
                assert!(c.ends_with(b"\n"));
                let quotes = c.iter().filter(|&&b| b == b'"').count();
                assert_eq!(quotes % 2, 0, "{:?}", String::from_utf8_lossy(c));
            }
        }
    }
}
