//! The interaction log: JSON Lines of [`Interaction`], one record per line, the one format that
//! the simulator and the server write and that learners and off-policy estimators read.
//!
//! [`LogReader`] streams records with line-numbered errors that name the path of the offending
//! part (for example `decision`, or `decision.propensities[1]` for a mistyped value) and say in
//! the message which field breaks which rule; [`write_log`] writes a whole log atomically, so a crash
//! never leaves a half-written file behind. The schema is documented in `docs/interaction-log.md`.

use crate::error::DataError;
use crate::report::{LoadOptions, LoadReport, OnMalformed};
use metarec_core::Interaction;
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

/// Streams [`Interaction`]s from JSON Lines, skipping blank lines.
pub struct LogReader<R> {
    input: R,
    path: PathBuf,
    line: u64,
    buf: Vec<u8>,
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
        }
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
            return Some(self.parse_line());
        }
    }
}

/// Reads a whole log, applying `options` to malformed lines.
pub fn read_log(
    path: &Path,
    options: &LoadOptions,
) -> Result<(Vec<Interaction>, LoadReport), DataError> {
    let mut report = LoadReport::new(path.display().to_string());
    let mut out = Vec::new();
    for record in LogReader::open(path)? {
        match record {
            Ok(i) => {
                out.push(i);
                report.keep();
            }
            Err(e @ DataError::Io { .. }) => return Err(e),
            Err(e) => match options.on_malformed {
                OnMalformed::Fail => return Err(e),
                OnMalformed::Skip => {
                    crate::table::handle_malformed(e, options, &mut report)?;
                }
            },
        }
    }
    Ok((out, report))
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
}
