//! The interaction log: JSON Lines of [`Interaction`], one record per line, the one format that
//! the simulator and the server write and that learners and off-policy estimators read.
//!
//! [`LogReader`] streams records with line-numbered errors that name the path of the offending
//! part (for example `decision`, or `decision.propensities[1]` for a mistyped value) and say in
//! the message which field breaks which rule; [`write_log`] writes a whole log atomically, so a crash
//! never leaves a half-written file behind. The schema is documented in `docs/interaction-log.md`.
//!
//! Event ids must be unique within a log: feedback joins its decision by event id, and an
//! off-policy estimate would count a repeated decision twice. The reader therefore treats a
//! record that repeats an earlier record's event id like a malformed line (an error naming both
//! lines, or skipped and counted as `duplicated event id`), and [`check_log`] counts every
//! duplicate and names the first few ([`Duplicates`]).

use crate::error::DataError;
use crate::report::{LoadOptions, LoadReport, OnMalformed};
use metarec_core::Interaction;
use serde::Serialize;
use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

/// How many duplicated event ids [`Duplicates`] names; the rest are only counted.
pub const NAMED_DUPLICATES: usize = 5;

/// The reason under which skipped duplicates are counted in a [`LoadReport`].
pub const DUPLICATE_REASON: &str = "duplicated event id";

/// A record whose event id an earlier record of the log already used.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Duplicate {
    /// The repeated event id.
    pub event_id: String,
    /// The 1-based line of the repeating record.
    pub line: u64,
    /// The 1-based line of the first record with this event id.
    pub first_line: u64,
}

/// The duplicated event ids of a log: how many records repeat an earlier record's event id, and
/// the first [`NAMED_DUPLICATES`] of them in file order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Duplicates {
    /// Records that repeat an earlier event id.
    pub count: u64,
    /// The first few of them.
    pub first: Vec<Duplicate>,
}

impl Duplicates {
    fn note(&mut self, duplicate: Duplicate) {
        self.count += 1;
        if self.first.len() < NAMED_DUPLICATES {
            self.first.push(duplicate);
        }
    }
}

impl std::fmt::Display for Duplicates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let plural = if self.count == 1 { "" } else { "s" };
        write!(
            f,
            "{} record{plural} repeat an earlier event id",
            self.count
        )?;
        let named: Vec<String> = self
            .first
            .iter()
            .map(|d| {
                // Escaped, so that an id with a newline or a quote keeps the message on one line.
                format!(
                    "line {} repeats `{}` of line {}",
                    d.line,
                    d.event_id.escape_debug(),
                    d.first_line
                )
            })
            .collect();
        if !named.is_empty() {
            write!(f, ": {}", named.join(", "))?;
        }
        let rest = self.count.saturating_sub(self.first.len() as u64);
        if rest > 0 {
            write!(f, " and {rest} more")?;
        }
        Ok(())
    }
}

/// Streams [`Interaction`]s from JSON Lines, skipping blank lines.
///
/// A record that repeats the event id of an earlier record is returned as a
/// [`DataError::Malformed`] on field `decision.event_id` naming the earlier line, and noted in
/// [`LogReader::duplicates`]; the earlier record stays the one with that id. The reader keeps
/// every event id it has seen, so its memory grows with the log.
pub struct LogReader<R> {
    input: R,
    path: PathBuf,
    line: u64,
    buf: Vec<u8>,
    seen: HashMap<String, u64>,
    duplicates: Duplicates,
}

impl LogReader<BufReader<File>> {
    /// Opens a log file.
    pub fn open(path: &Path) -> Result<Self, DataError> {
        let file = File::open(path).map_err(|e| DataError::io(path, e))?;
        Ok(LogReader::new(BufReader::new(file), path))
    }
}

impl<R: BufRead> LogReader<R> {
    /// Reads from any buffered input; `path` names it in errors.
    pub fn new(input: R, path: &Path) -> Self {
        LogReader {
            input,
            path: path.to_owned(),
            line: 0,
            buf: Vec::new(),
            seen: HashMap::new(),
            duplicates: Duplicates::default(),
        }
    }

    /// The 1-based line of the record (or error) last returned; 0 before the first.
    pub fn line(&self) -> u64 {
        self.line
    }

    /// The duplicated event ids met so far.
    pub fn duplicates(&self) -> &Duplicates {
        &self.duplicates
    }

    /// Remembers the record's event id, or, when an earlier record used it, notes the duplicate
    /// and returns the error that reports it.
    fn check_unique(&mut self, record: Interaction) -> Result<Interaction, DataError> {
        let id = &record.decision.event_id.0;
        if let Some(&first_line) = self.seen.get(id) {
            self.duplicates.note(Duplicate {
                event_id: id.clone(),
                line: self.line,
                first_line,
            });
            return Err(DataError::Malformed {
                path: self.path.clone(),
                line: self.line,
                field: "decision.event_id".into(),
                reason: format!(
                    "event id `{}` is already used on line {first_line} (event ids must be unique: feedback joins its decision by event id)",
                    id.escape_debug()
                ),
            });
        }
        self.seen.insert(id.clone(), self.line);
        Ok(record)
    }

    fn parse_line(&self) -> Result<Interaction, DataError> {
        let text = std::str::from_utf8(&self.buf).map_err(|_| DataError::Malformed {
            path: self.path.clone(),
            line: self.line,
            field: "<record>".into(),
            reason: "invalid UTF-8".into(),
        })?;
        let mut de = serde_json::Deserializer::from_str(text);
        let record: Interaction =
            serde_path_to_error::deserialize(&mut de).map_err(|e| DataError::Malformed {
                path: self.path.clone(),
                line: self.line,
                field: match e.path().to_string() {
                    p if p == "." => "<record>".into(),
                    p => p,
                },
                reason: e.inner().to_string(),
            })?;
        de.end().map_err(|e| DataError::Malformed {
            path: self.path.clone(),
            line: self.line,
            field: "<record>".into(),
            reason: format!("trailing characters after the record: {e}"),
        })?;
        Ok(record)
    }
}

impl<R: BufRead> Iterator for LogReader<R> {
    type Item = Result<Interaction, DataError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            self.buf.clear();
            self.line += 1;
            match self.input.read_until(b'\n', &mut self.buf) {
                Ok(0) => return None,
                Ok(_) => {}
                Err(e) => return Some(Err(DataError::io(&self.path, e))),
            }
            if self.buf.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            return Some(self.parse_line().and_then(|r| self.check_unique(r)));
        }
    }
}

/// Reads a whole log, applying `options` to malformed lines and to records that repeat an earlier
/// event id (an error, or skipped and counted as [`DUPLICATE_REASON`]).
pub fn read_log(
    path: &Path,
    options: &LoadOptions,
) -> Result<(Vec<Interaction>, LoadReport), DataError> {
    let mut out = Vec::new();
    let fatal = options.on_malformed == OnMalformed::Fail;
    let (report, _) = read_each(path, options, fatal, |_, i| out.push(i))?;
    Ok((out, report))
}

/// [`read_log`], each record with its 1-based line in the file (so that later checks can name
/// the line even where blank lines or skipped records make it differ from the record's rank).
pub fn read_log_lines(
    path: &Path,
    options: &LoadOptions,
) -> Result<(Vec<(u64, Interaction)>, LoadReport), DataError> {
    let mut out = Vec::new();
    let fatal = options.on_malformed == OnMalformed::Fail;
    let (report, _) = read_each(path, options, fatal, |line, i| out.push((line, i)))?;
    Ok((out, report))
}

/// What [`check_log`] found.
#[derive(Debug, Clone, PartialEq)]
pub struct LogCheck {
    /// The records kept: the first record of each event id.
    pub records: Vec<Interaction>,
    /// Records read, kept and skipped (duplicates under [`DUPLICATE_REASON`]).
    pub report: LoadReport,
    /// Every record that repeats an earlier event id, counted, the first few named.
    pub duplicates: Duplicates,
}

impl LogCheck {
    /// Whether the log breaks no rule (no duplicated event ids; malformed lines either stopped
    /// the check with an error or were skipped as asked).
    pub fn is_clean(&self) -> bool {
        self.duplicates.count == 0
    }
}

/// Reads a whole log to check it: malformed lines follow `options` (the first stops the check
/// with its error, or all are skipped and counted), while records that repeat an earlier event
/// id never stop it, so that all of them are counted; they are skipped, and it is for the caller
/// to decide whether they are an error (`metarec log check` fails on them unless told to skip
/// malformed records).
pub fn check_log(path: &Path, options: &LoadOptions) -> Result<LogCheck, DataError> {
    let mut records = Vec::new();
    let (report, duplicates) = read_each(path, options, false, |_, i| records.push(i))?;
    Ok(LogCheck {
        records,
        report,
        duplicates,
    })
}

/// Reads `path` record by record, passing each kept record and its line to `keep`. Malformed
/// lines follow `options`; a duplicated event id is an error when `duplicates_fatal`, else
/// skipped and counted as [`DUPLICATE_REASON`].
fn read_each(
    path: &Path,
    options: &LoadOptions,
    duplicates_fatal: bool,
    mut keep: impl FnMut(u64, Interaction),
) -> Result<(LoadReport, Duplicates), DataError> {
    let mut report = LoadReport::new(path.display().to_string());
    let mut reader = LogReader::open(path)?;
    loop {
        let before = reader.duplicates().count;
        let Some(record) = reader.next() else { break };
        match record {
            Ok(i) => {
                keep(reader.line(), i);
                report.keep();
            }
            Err(e @ DataError::Io { .. }) => return Err(e),
            Err(e) if reader.duplicates().count > before => {
                if duplicates_fatal {
                    return Err(e);
                }
                report.skip(DUPLICATE_REASON);
            }
            Err(e) => match options.on_malformed {
                OnMalformed::Fail => return Err(e),
                OnMalformed::Skip => {
                    crate::table::handle_malformed(e, options, &mut report)?;
                }
            },
        }
    }
    Ok((report, reader.duplicates))
}

/// Writes one record as a line of JSON.
pub fn write_record<W: Write>(out: &mut W, record: &Interaction) -> std::io::Result<()> {
    serde_json::to_writer(&mut *out, record)?;
    out.write_all(b"\n")
}

/// Writes a whole log to `path` atomically: into a temporary file beside it, flushed to disk,
/// then renamed over `path`. Returns the number of records written.
pub fn write_log<'a>(
    path: &Path,
    records: impl IntoIterator<Item = &'a Interaction>,
) -> Result<u64, DataError> {
    atomic_write(path, |out| {
        let mut n = 0;
        for r in records {
            write_record(out, r)?;
            n += 1;
        }
        Ok(n)
    })
}

/// Runs `fill` on a buffered temporary file beside `path` and renames it over `path` only when
/// everything succeeded; on failure the temporary file is removed and `path` is untouched.
pub fn atomic_write<T>(
    path: &Path,
    fill: impl FnOnce(&mut BufWriter<File>) -> std::io::Result<T>,
) -> Result<T, DataError> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "out".into());
    let tmp = path.with_file_name(format!(".{name}.{}.tmp", std::process::id()));
    let result = (|| {
        let file = File::create(&tmp)?;
        let mut out = BufWriter::new(file);
        let value = fill(&mut out)?;
        let file = out.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)?;
        Ok(value)
    })();
    result.map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        DataError::io(path, e)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The examples in the schema document must stay valid records.
    #[test]
    fn examples_in_the_schema_document_parse() {
        let doc = include_str!("../../../docs/interaction-log.md");
        let examples: Vec<&str> = doc
            .split("```json\n")
            .skip(1)
            .map(|block| block.split("```").next().unwrap_or_default())
            .collect();
        assert_eq!(examples.len(), 2);
        for example in examples {
            let records: Vec<_> = LogReader::new(example.as_bytes(), Path::new("doc"))
                .collect::<Result<_, _>>()
                .unwrap();
            assert_eq!(records.len(), 1);
        }
    }

    fn record(id: &str) -> String {
        format!(
            r#"{{"context":{{"user":"u"}},"decision":{{"event_id":"{id}","slate":[3],"propensities":[0.5],"policy_id":"p"}},"feedback":{{"clicks":[true]}}}}"#
        )
    }

    /// Lines 1-7: `a`, `b`, a blank line, `a` again, `c`, `b` again, `a` a third time.
    fn log_with_duplicates() -> String {
        ["a", "b", "", "a", "c", "b", "a"]
            .iter()
            .map(|id| if id.is_empty() { String::new() } else { record(id) } + "\n")
            .collect()
    }

    #[test]
    fn the_reader_rejects_a_repeated_event_id_naming_both_lines() {
        let text = log_with_duplicates();
        let mut reader = LogReader::new(text.as_bytes(), Path::new("mem.jsonl"));
        let results: Vec<_> = reader.by_ref().collect();
        assert_eq!(results.len(), 6);
        let ok: Vec<bool> = results.iter().map(Result::is_ok).collect();
        assert_eq!(ok, [true, true, false, true, false, false]);
        let err = results[2].as_ref().unwrap_err().to_string();
        assert!(
            err.starts_with("mem.jsonl: line 4: field `decision.event_id`: event id `a` is already used on line 1"),
            "{err}"
        );
        let d = reader.duplicates();
        assert_eq!(d.count, 3);
        let lines: Vec<(u64, u64)> = d.first.iter().map(|d| (d.line, d.first_line)).collect();
        assert_eq!(lines, [(4, 1), (6, 2), (7, 1)]);
        assert_eq!(
            d.to_string(),
            "3 records repeat an earlier event id: line 4 repeats `a` of line 1, line 6 repeats `b` of line 2, line 7 repeats `a` of line 1"
        );
    }

    #[test]
    fn read_log_fails_on_a_duplicated_event_id_or_skips_and_counts_it() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("log.jsonl");
        std::fs::write(&path, log_with_duplicates()).unwrap();
        let err = read_log(&path, &LoadOptions::default()).unwrap_err();
        assert!(
            matches!(&err, DataError::Malformed { line: 4, field, .. } if field == "decision.event_id"),
            "{err:?}"
        );
        let (records, report) = read_log(&path, &LoadOptions::skipping()).unwrap();
        let ids: Vec<&str> = records
            .iter()
            .map(|r| r.decision.event_id.0.as_str())
            .collect();
        assert_eq!(ids, ["a", "b", "c"]);
        assert_eq!((report.records, report.kept), (6, 3));
        assert_eq!(report.skipped.get(DUPLICATE_REASON), Some(&3), "{report}");
        let (numbered, _) = read_log_lines(&path, &LoadOptions::skipping()).unwrap();
        let lines: Vec<u64> = numbered.iter().map(|(line, _)| *line).collect();
        assert_eq!(lines, [1, 2, 5]);
    }

    #[test]
    fn check_log_counts_every_duplicate_and_names_the_first_few() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("log.jsonl");
        let text: String = (0..9)
            .map(|i| record(&format!("e{}", i % 2)) + "\n")
            .collect();
        std::fs::write(&path, text).unwrap();
        for options in [LoadOptions::default(), LoadOptions::skipping()] {
            let check = check_log(&path, &options).unwrap();
            assert!(!check.is_clean());
            assert_eq!(check.records.len(), 2);
            assert_eq!(check.duplicates.count, 7);
            assert_eq!(check.duplicates.first.len(), NAMED_DUPLICATES);
            assert_eq!(check.duplicates.first[0].line, 3);
            assert_eq!(check.duplicates.first[0].first_line, 1);
            assert!(check.duplicates.to_string().ends_with(" and 2 more"));
            assert_eq!(check.report.skipped.get(DUPLICATE_REASON), Some(&7));
        }
        std::fs::write(&path, record("only") + "\n").unwrap();
        let check = check_log(&path, &LoadOptions::default()).unwrap();
        assert!(check.is_clean());
        assert_eq!(check.duplicates, Duplicates::default());
    }
}
