//! The files an import reads: CSV, TSV or JSON Lines, optionally gzip-compressed, read record by
//! record with typed access to fields and errors that name file, line and field.
//!
//! Delimited files go through the loaders' shared reader (`table`); JSON Lines records are
//! objects whose keys are the columns. [`Reader`] hides the difference: columns are looked up by
//! name, and each [`Record`] answers text, numbers and lists whatever the format.

use crate::error::DataError;
use crate::table::{Dialect, Row, Table, count_lines, fast_decimal, split_records, truncate};
use serde_json::{Map, Value};
use std::borrow::Cow;
use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use super::map::CategorySplit;

/// The layout of an input file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    /// Comma-separated values with a header.
    Csv,
    /// Tab-separated values with a header.
    Tsv,
    /// One JSON object per line.
    JsonLines,
}

/// One input file, read whole and decompressed.
pub(crate) struct Input {
    /// The path as given.
    pub path: PathBuf,
    /// SHA-256 of the file's bytes as stored (before decompression).
    pub sha256: String,
    /// The content.
    pub bytes: Vec<u8>,
    /// How the content is laid out.
    pub format: Format,
}

impl Input {
    /// Reads a file: gzip is recognised by its magic bytes, the format by the extension (before a
    /// `.gz`): `.jsonl`, `.ndjson` and `.json` are JSON Lines, `.csv` is CSV, `.tsv` and `.tab`
    /// are TSV; anything else is sniffed (a first `{` means JSON Lines, a header with more tabs
    /// than commas TSV, else CSV).
    pub(crate) fn read(path: &Path) -> Result<Input, DataError> {
        let raw = std::fs::read(path).map_err(|e| DataError::io(path, e))?;
        Input::from_bytes(path, raw)
    }

    /// Like [`Input::read`], on bytes already read; `path` names the source in errors.
    pub(crate) fn from_bytes(path: &Path, raw: Vec<u8>) -> Result<Input, DataError> {
        let sha256 = crate::shop::sha256_hex(&raw);
        let bytes = if raw.starts_with(&[0x1f, 0x8b]) {
            let mut out = Vec::with_capacity(raw.len() * 4);
            flate2::read::MultiGzDecoder::new(&raw[..])
                .read_to_end(&mut out)
                .map_err(|e| DataError::Malformed {
                    path: path.to_owned(),
                    line: 0,
                    field: "<file>".into(),
                    reason: format!("not a readable gzip file: {e}"),
                })?;
            out
        } else {
            raw
        };
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().to_ascii_lowercase())
            .unwrap_or_default();
        let name = name.strip_suffix(".gz").unwrap_or(&name);
        let ext = name.rsplit_once('.').map_or("", |(_, e)| e);
        let format = match ext {
            "jsonl" | "ndjson" | "json" => Format::JsonLines,
            "csv" => Format::Csv,
            "tsv" | "tab" => Format::Tsv,
            _ => sniff(&bytes),
        };
        Ok(Input {
            path: path.to_owned(),
            sha256,
            bytes,
            format,
        })
    }
}

fn sniff(bytes: &[u8]) -> Format {
    let text = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let start = text.iter().position(|b| !b.is_ascii_whitespace());
    if start.is_some_and(|s| text[s] == b'{') {
        return Format::JsonLines;
    }
    let line_end = memchr::memchr(b'\n', text).unwrap_or(text.len());
    let line = &text[..line_end];
    let tabs = line.iter().filter(|&&b| b == b'\t').count();
    let commas = line.iter().filter(|&&b| b == b',').count();
    if tabs > commas {
        Format::Tsv
    } else {
        Format::Csv
    }
}

/// What a column's header says about its values (RecBole's atomic files type every column:
/// `rating:float`, `class:token_seq`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Declared {
    /// Nothing: decided from the values.
    Unknown,
    /// Numbers (`:float`, `:float_seq`).
    Numeric,
    /// Tokens (`:token`, `:token_seq`).
    Token,
}

/// The column names of a file, looked up by name.
#[derive(Debug, Default, Clone)]
pub(crate) struct Columns {
    names: Vec<String>,
    declared: Vec<Declared>,
    index: HashMap<String, usize>,
}

impl Columns {
    fn add(&mut self, name: String, declared: Declared) -> usize {
        if let Some(&i) = self.index.get(&name) {
            return i;
        }
        let i = self.names.len();
        self.index.insert(name.clone(), i);
        self.names.push(name);
        self.declared.push(declared);
        i
    }

    /// The names, in order (header order, or first appearance in JSON Lines).
    pub(crate) fn names(&self) -> &[String] {
        &self.names
    }

    /// What the header declares about column `i`.
    pub(crate) fn declared(&self, i: usize) -> Declared {
        self.declared.get(i).copied().unwrap_or(Declared::Unknown)
    }
}

/// Reads the records of one [`Input`].
pub(crate) struct Reader<'a> {
    input: &'a Input,
    table: Option<Table<'a>>,
    columns: Columns,
}

impl<'a> Reader<'a> {
    /// Opens a file: reads a delimited file's header; JSON Lines columns appear as records name
    /// them.
    pub(crate) fn new(input: &'a Input) -> Result<Reader<'a>, DataError> {
        let mut columns = Columns::default();
        let table = match input.format {
            Format::JsonLines => {
                if input.bytes.iter().all(u8::is_ascii_whitespace) {
                    return Err(DataError::Empty {
                        path: input.path.clone(),
                    });
                }
                None
            }
            Format::Csv | Format::Tsv => {
                let dialect = if input.format == Format::Csv {
                    Dialect::Csv
                } else {
                    Dialect::Tsv
                };
                let table = Table::new(&input.path, &input.bytes, dialect)?;
                let header = table.header();
                // RecBole's typed headers (`user_id:token`): every named column carries a type.
                let typed = header.iter().filter(|h| !h.is_empty()).all(|h| {
                    h.rsplit_once(':')
                        .is_some_and(|(_, t)| recbole_type(t) != Declared::Unknown)
                });
                for (i, h) in header.iter().enumerate() {
                    let (name, declared) = match h.rsplit_once(':') {
                        Some((name, t)) if typed => (name.to_owned(), recbole_type(t)),
                        _ => (h.clone(), Declared::Unknown),
                    };
                    let name = if columns.index.contains_key(&name) || name.is_empty() {
                        // A repeated or empty name keeps a unique placeholder, so indices still
                        // follow the header; such columns are never looked up by name.
                        format!("\u{0}column {}", i + 1)
                    } else {
                        name
                    };
                    columns.add(name, declared);
                }
                Some(table)
            }
        };
        Ok(Reader {
            input,
            table,
            columns,
        })
    }

    /// The path of the file.
    pub(crate) fn path(&self) -> &'a Path {
        &self.input.path
    }

    /// The columns known so far.
    pub(crate) fn columns(&self) -> &Columns {
        &self.columns
    }

    /// Whether the columns are fixed by a header (delimited files).
    pub(crate) fn has_header(&self) -> bool {
        self.table.is_some()
    }

    /// The index of a named column: in a delimited file only if the header has it; in JSON Lines
    /// always (a record that lacks the key has the field missing).
    pub(crate) fn lookup(&mut self, name: &str) -> Option<usize> {
        match self.columns.index.get(name) {
            Some(&i) => Some(i),
            None if self.table.is_none() => {
                Some(self.columns.add(name.to_owned(), Declared::Unknown))
            }
            None => None,
        }
    }

    /// The number of lines in the file (an upper bound on its records, for reserving space).
    pub(crate) fn lines(&self) -> usize {
        match &self.table {
            Some(table) => table.remaining_lines(),
            None => count_lines(&self.input.bytes) as usize,
        }
    }

    /// Splits a delimited file's records into up to `parts` chunks at record boundaries (see
    /// [`crate::table::reader_threads`] for how many suit a file), one reader per chunk, each
    /// numbering lines as the whole file does. A JSON Lines file stays whole. Call it before
    /// reading any record.
    pub(crate) fn split(self, parts: usize) -> Vec<Reader<'a>> {
        let Some(table) = &self.table else {
            return vec![self];
        };
        let input = self.input;
        let start = table.data_start();
        let body = &input.bytes[start..];
        let chunks = split_records(body, parts);
        if chunks.len() < 2 {
            return vec![self];
        }
        let mut line = count_lines(&input.bytes[..start]);
        chunks
            .into_iter()
            .map(|chunk| {
                let reader = Reader {
                    input,
                    table: Some(table.continuation(chunk, line)),
                    columns: self.columns.clone(),
                };
                line += count_lines(chunk);
                reader
            })
            .collect()
    }

    /// Calls `each` on every record in file order. A record that cannot be read at all (a JSON
    /// line that does not parse) is passed as an error, so the caller's policy decides; an
    /// unreadable file stops the reading.
    pub(crate) fn for_each(
        &mut self,
        mut each: impl FnMut(&Columns, Result<Record<'_>, DataError>) -> Result<(), DataError>,
    ) -> Result<(), DataError> {
        let path = &self.input.path;
        if let Some(table) = &mut self.table {
            while let Some(row) = table.next_row()? {
                let record = Record {
                    path,
                    line: row.line(),
                    names: &self.columns.names,
                    cells: Cells::Delimited(&row),
                };
                each(&self.columns, Ok(record))?;
            }
            return Ok(());
        }
        let bytes = &self.input.bytes;
        let mut start = 0;
        let mut line = 0u64;
        while start < bytes.len() {
            let end = memchr::memchr(b'\n', &bytes[start..]).map_or(bytes.len(), |e| start + e);
            let mut text = &bytes[start..end];
            start = end + 1;
            line += 1;
            if line == 1 {
                text = text.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(text);
            }
            if text.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let object: Map<String, Value> = match serde_json::from_slice(text) {
                Ok(o) => o,
                Err(e) => {
                    let reason = json_reason(&e);
                    each(
                        &self.columns,
                        Err(DataError::Malformed {
                            path: path.clone(),
                            line,
                            field: "<record>".into(),
                            reason,
                        }),
                    )?;
                    continue;
                }
            };
            let mut cells: Vec<Option<&Value>> = vec![None; self.columns.names.len()];
            for (key, value) in &object {
                let i = match self.columns.index.get(key.as_str()) {
                    Some(&i) => i,
                    None => self.columns.add(key.clone(), Declared::Unknown),
                };
                if i >= cells.len() {
                    cells.resize(i + 1, None);
                }
                cells[i] = Some(value);
            }
            let record = Record {
                path,
                line,
                names: &self.columns.names,
                cells: Cells::Json(&cells),
            };
            each(&self.columns, Ok(record))?;
        }
        Ok(())
    }
}

/// serde_json's message without its position inside the line (the error names the file's line).
fn json_reason(e: &serde_json::Error) -> String {
    let text = e.to_string();
    match text.rfind(" at line ") {
        Some(at) => format!("{} (column {})", &text[..at], e.column()),
        None => text,
    }
}

fn recbole_type(t: &str) -> Declared {
    match t {
        "float" | "float_seq" => Declared::Numeric,
        "token" | "token_seq" => Declared::Token,
        _ => Declared::Unknown,
    }
}

enum Cells<'a> {
    Delimited(&'a Row<'a>),
    Json(&'a [Option<&'a Value>]),
}

/// One record of a file.
pub(crate) struct Record<'a> {
    path: &'a Path,
    line: u64,
    names: &'a [String],
    cells: Cells<'a>,
}

/// The longest value shown in an error message.
const SHOWN: usize = 40;

impl<'a> Record<'a> {
    /// The 1-based line the record starts on.
    pub(crate) fn line(&self) -> u64 {
        self.line
    }

    /// The name of column `col` as errors and tokens show it (borrowed: it is read for every
    /// context token of every event).
    pub(crate) fn name(&self, col: usize) -> Cow<'a, str> {
        match self.names.get(col) {
            Some(n) if !n.starts_with('\u{0}') => Cow::Borrowed(n.as_str()),
            Some(n) => Cow::Borrowed(n.trim_start_matches('\u{0}')),
            None => Cow::Owned(format!("column {}", col + 1)),
        }
    }

    /// An error about column `col` of this record.
    pub(crate) fn malformed(&self, col: usize, reason: impl Into<String>) -> DataError {
        self.malformed_field(&self.name(col), reason)
    }

    /// An error about a named field of this record.
    pub(crate) fn malformed_field(&self, field: &str, reason: impl Into<String>) -> DataError {
        DataError::Malformed {
            path: self.path.to_owned(),
            line: self.line,
            field: field.to_owned(),
            reason: reason.into(),
        }
    }

    /// Checks that a delimited record has as many fields as the header.
    pub(crate) fn check_width(&self) -> Result<(), DataError> {
        match &self.cells {
            Cells::Delimited(row) => row.check_width(),
            Cells::Json(_) => Ok(()),
        }
    }

    fn json(&self, col: usize) -> Option<&'a Value> {
        match self.cells {
            Cells::Json(cells) => cells.get(col).copied().flatten(),
            Cells::Delimited(_) => None,
        }
    }

    /// Column `col` as trimmed text; `None` when missing, null or empty. JSON numbers and
    /// booleans give their JSON spelling, arrays and objects their compact JSON.
    pub(crate) fn text(&self, col: usize) -> Result<Option<Cow<'a, str>>, DataError> {
        match &self.cells {
            Cells::Delimited(row) => {
                let s = row.str(col)?;
                Ok((!s.is_empty()).then_some(Cow::Borrowed(s)))
            }
            Cells::Json(_) => Ok(match self.json(col) {
                None | Some(Value::Null) => None,
                Some(Value::String(s)) => {
                    let s = s.trim();
                    (!s.is_empty()).then_some(Cow::Borrowed(s))
                }
                Some(Value::Number(n)) => Some(Cow::Owned(n.to_string())),
                Some(Value::Bool(b)) => Some(Cow::Borrowed(if *b { "true" } else { "false" })),
                Some(other) => Some(Cow::Owned(other.to_string())),
            }),
        }
    }

    /// The raw bytes of a delimited field (trimmed), or `None` for JSON Lines; the hot path for
    /// numbers and times, which need no UTF-8 check.
    pub(crate) fn raw(&self, col: usize) -> Option<&'a [u8]> {
        match &self.cells {
            Cells::Delimited(row) => Some(row.trimmed(col)),
            Cells::Json(_) => None,
        }
    }

    /// A JSON number of column `col`, if the record is JSON and the value is one.
    pub(crate) fn json_number(&self, col: usize) -> Option<f64> {
        self.json(col).and_then(Value::as_f64)
    }

    /// Column `col` as a finite number; `None` when missing or empty.
    pub(crate) fn number(&self, col: usize) -> Result<Option<f64>, DataError> {
        let text: Cow<'a, str> = match &self.cells {
            Cells::Delimited(row) => {
                let b = row.trimmed(col);
                if b.is_empty() {
                    return Ok(None);
                }
                if let Some(v) = fast_decimal(b) {
                    return Ok(Some(v));
                }
                Cow::Borrowed(row.str(col)?)
            }
            Cells::Json(_) => match self.json(col) {
                None | Some(Value::Null) => return Ok(None),
                Some(Value::Number(n)) => {
                    return n
                        .as_f64()
                        .filter(|v| v.is_finite())
                        .map(Some)
                        .ok_or_else(|| self.malformed(col, format!("{n} is not a finite number")));
                }
                Some(Value::String(s)) => {
                    let s = s.trim();
                    if s.is_empty() {
                        return Ok(None);
                    }
                    Cow::Borrowed(s)
                }
                Some(other) => {
                    return Err(self.malformed(
                        col,
                        format!("`{}` is not a number", truncate(&other.to_string(), SHOWN)),
                    ));
                }
            },
        };
        match text.parse::<f64>() {
            Ok(v) if v.is_finite() => Ok(Some(v)),
            _ => Err(self.malformed(
                col,
                format!("`{}` is not a finite number", truncate(&text, SHOWN)),
            )),
        }
    }

    /// Column `col` as a list: a JSON array's elements, or the text split at `split`; empty
    /// elements are dropped.
    pub(crate) fn list(&self, col: usize, split: CategorySplit) -> Result<Vec<String>, DataError> {
        if let Some(Value::Array(values)) = self.json(col) {
            let mut out = Vec::with_capacity(values.len());
            for v in values {
                let s = match v {
                    Value::String(s) => s.trim().to_owned(),
                    Value::Number(n) => n.to_string(),
                    Value::Null => continue,
                    other => {
                        return Err(self.malformed(
                            col,
                            format!(
                                "`{}` is not a string in a list",
                                truncate(&other.to_string(), SHOWN)
                            ),
                        ));
                    }
                };
                if !s.is_empty() {
                    out.push(s);
                }
            }
            return Ok(out);
        }
        let Some(text) = self.text(col)? else {
            return Ok(Vec::new());
        };
        let parts: Vec<String> = match split {
            CategorySplit::None => vec![text.into_owned()],
            CategorySplit::Whitespace => text.split_whitespace().map(str::to_owned).collect(),
            CategorySplit::Char(c) => text
                .split(c)
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect(),
        };
        Ok(parts)
    }
}
