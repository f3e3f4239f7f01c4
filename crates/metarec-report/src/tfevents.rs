//! TensorBoard event files: [`EventWriter`] writes them, [`read_events`] reads them back.
//!
//! A run is a directory; TensorBoard (`tensorboard --logdir runs`) shows every directory under the
//! log directory that holds a file whose name contains `tfevents` as one run. The writer names
//! its file `events.out.tfevents.<unix seconds>.<hostname>` as TensorFlow does.
//!
//! The file is a sequence of records, each framed as
//! `u64 length (little-endian) | u32 masked crc32c(length bytes) | data | u32 masked crc32c(data)`,
//! and each record's data is one `tensorflow.Event` protocol buffer. The first event carries
//! `file_version = "brain.Event:2"`; every other event carries a `Summary` of tagged values at a
//! step. The few protocol-buffer fields needed are encoded by hand (field numbers from
//! TensorFlow's `event.proto` and `summary.proto`):
//!
//! - `Event`: `double wall_time = 1`, `int64 step = 2`, `string file_version = 3`,
//!   `Summary summary = 5`;
//! - `Summary`: `repeated Value value = 1`;
//! - `Summary.Value`: `string tag = 1`, `float simple_value = 2`, `HistogramProto histo = 5`;
//! - `HistogramProto`: `double min = 1, max = 2, num = 3, sum = 4, sum_squares = 5`,
//!   `repeated double bucket_limit = 6 [packed]`, `repeated double bucket = 7 [packed]`.
//!
//! The reader is written against that record format with a general protocol-buffer field walker
//! (it skips fields it does not know, as any protobuf reader does); it checks both CRCs of every
//! record and reports the record and byte offset of any damage.
//!
//! Event files are append-only logs that TensorBoard reads while they grow, so they are not
//! written beside and renamed like the project's other outputs: each record is encoded whole in
//! memory and handed to the buffered file in one piece, and a crash can at most cut the last
//! record short, which readers (this one included, with [`ReadOptions::allow_truncated_tail`])
//! treat as the end of the file.

use crate::crc32c::{masked_crc32c, unmask};
use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};
use thiserror::Error;

/// The file version TensorBoard expects in the first event of a file.
pub const FILE_VERSION: &str = "brain.Event:2";

/// Why an event file cannot be written or read.
#[derive(Debug, Error)]
pub enum TfEventsError {
    /// The file system refused.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A record is cut short or its checksums do not match.
    #[error("record {record} at byte {offset}: {message}")]
    Corrupt {
        /// 0-based record number.
        record: usize,
        /// Byte offset of the record's start.
        offset: usize,
        /// What is wrong.
        message: String,
    },
}

/// A summary value as stored.
#[derive(Debug, Clone, PartialEq)]
pub enum ValueData {
    /// A scalar (`simple_value`, a 32-bit float in the format).
    Scalar(f32),
    /// A histogram.
    Histogram(Histogram),
    /// A value of a kind this reader does not decode (images, tensors, audio).
    Other,
}

/// One tagged value of a summary.
#[derive(Debug, Clone, PartialEq)]
pub struct TaggedValue {
    /// The tag (`train/reward_per_user`); slashes group tags in TensorBoard.
    pub tag: String,
    /// The value.
    pub data: ValueData,
}

/// A histogram in TensorBoard's form: bucket `i` counts values in
/// `(bucket_limit[i - 1], bucket_limit[i]]`, the first bucket starting at `min`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Histogram {
    /// Smallest value.
    pub min: f64,
    /// Largest value.
    pub max: f64,
    /// Number of values.
    pub num: f64,
    /// Sum of the values.
    pub sum: f64,
    /// Sum of their squares.
    pub sum_squares: f64,
    /// Right edge of every bucket.
    pub bucket_limit: Vec<f64>,
    /// Count of every bucket.
    pub bucket: Vec<f64>,
}

impl Histogram {
    /// A histogram of the finite `values` in `buckets` equal-width buckets between their
    /// minimum and maximum (one bucket when they are all equal); non-finite values are left
    /// out, since TensorBoard cannot draw them.
    pub fn of(values: &[f64], buckets: usize) -> Histogram {
        let xs: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
        if xs.is_empty() {
            return Histogram::default();
        }
        let min = xs.iter().copied().fold(f64::INFINITY, f64::min);
        let max = xs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let n = if max > min { buckets.max(1) } else { 1 };
        let width = (max - min) / n as f64;
        let bucket_limit: Vec<f64> = (1..=n)
            .map(|i| if i == n { max } else { min + width * i as f64 })
            .collect();
        let mut bucket = vec![0.0; n];
        for &x in &xs {
            // Buckets are closed on the right, so a value on an edge goes to the lower bucket.
            let i = if width > 0.0 {
                (((x - min) / width).ceil() as usize)
                    .saturating_sub(1)
                    .min(n - 1)
            } else {
                0
            };
            bucket[i] += 1.0;
        }
        Histogram {
            min,
            max,
            num: xs.len() as f64,
            sum: xs.iter().sum(),
            sum_squares: xs.iter().map(|x| x * x).sum(),
            bucket_limit,
            bucket,
        }
    }
}

/// What an event carries.
#[derive(Debug, Clone, PartialEq)]
pub enum What {
    /// The file version (the first event of a file).
    FileVersion(String),
    /// Tagged values at the event's step.
    Summary(Vec<TaggedValue>),
    /// Something else (graphs, session logs); not decoded.
    Other,
}

/// One decoded event.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// Seconds since the Unix epoch.
    pub wall_time: f64,
    /// The step (iteration, interaction number).
    pub step: i64,
    /// The payload.
    pub what: What,
}

/// Writes one run's event file.
pub struct EventWriter {
    out: BufWriter<File>,
    path: PathBuf,
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> TfEventsError + '_ {
    move |source| TfEventsError::Io {
        path: path.to_owned(),
        source,
    }
}

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// This machine's name for event-file names (characters other than letters, digits, `-` and
/// `_` become `_`; `localhost` when it cannot be found).
pub fn hostname() -> String {
    let raw = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .or_else(|| std::env::var("COMPUTERNAME").ok())
        .unwrap_or_default();
    let name = sanitize_component(raw.trim());
    if name.is_empty() {
        "localhost".into()
    } else {
        name
    }
}

/// Turns an arbitrary name (a policy such as `neural:report/model`) into one safe path
/// component: characters other than ASCII letters, digits, `.`, `-` and `_` become `_`, and a
/// name of dots only becomes underscores, so it can never climb out of the log directory.
pub fn sanitize_component(name: &str) -> String {
    let s: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if s.chars().all(|c| c == '.') {
        s.replace('.', "_")
    } else {
        s
    }
}

impl EventWriter {
    /// Creates the run directory (and its parents) and a new event file in it, named
    /// `events.out.tfevents.<seconds>.<hostname>`, and writes the file-version event. An
    /// existing file of the same name is never overwritten: a numbered suffix is added.
    pub fn create(run_dir: &Path) -> Result<EventWriter, TfEventsError> {
        std::fs::create_dir_all(run_dir).map_err(io_error(run_dir))?;
        let wall = now();
        let base = format!("events.out.tfevents.{}.{}", wall as u64, hostname());
        let mut suffix = 0usize;
        let (file, path) = loop {
            let name = if suffix == 0 {
                base.clone()
            } else {
                format!("{base}.{suffix}")
            };
            let path = run_dir.join(name);
            match OpenOptions::new().write(true).create_new(true).open(&path) {
                Ok(f) => break (f, path),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && suffix < 1000 => {
                    suffix += 1;
                }
                Err(e) => return Err(io_error(&path)(e)),
            }
        };
        let mut writer = EventWriter {
            out: BufWriter::new(file),
            path,
        };
        let mut event = Vec::new();
        encode_event_header(&mut event, wall, 0);
        put_bytes(&mut event, 3, FILE_VERSION.as_bytes());
        writer.record(&event)?;
        writer.flush()?;
        Ok(writer)
    }

    /// The file being written.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes one scalar at `step` (stored as a 32-bit float, as TensorBoard's format has it).
    pub fn scalar(&mut self, tag: &str, step: i64, value: f64) -> Result<(), TfEventsError> {
        self.scalars(step, &[(tag, value)])
    }

    /// Writes several scalars at the same `step` in one event.
    pub fn scalars(&mut self, step: i64, values: &[(&str, f64)]) -> Result<(), TfEventsError> {
        let mut summary = Vec::new();
        for (tag, value) in values {
            let mut v = Vec::new();
            put_bytes(&mut v, 1, tag.as_bytes());
            put_key(&mut v, 2, WIRE_FIXED32);
            v.extend_from_slice(&(*value as f32).to_le_bytes());
            put_bytes(&mut summary, 1, &v);
        }
        self.summary(step, &summary)
    }

    /// Writes a histogram of `values` (30 equal-width buckets) at `step`.
    pub fn histogram(&mut self, tag: &str, step: i64, values: &[f64]) -> Result<(), TfEventsError> {
        let h = Histogram::of(values, 30);
        let mut histo = Vec::new();
        for (field, x) in [
            (1, h.min),
            (2, h.max),
            (3, h.num),
            (4, h.sum),
            (5, h.sum_squares),
        ] {
            put_key(&mut histo, field, WIRE_FIXED64);
            histo.extend_from_slice(&x.to_le_bytes());
        }
        for (field, xs) in [(6, &h.bucket_limit), (7, &h.bucket)] {
            let packed: Vec<u8> = xs.iter().flat_map(|x| x.to_le_bytes()).collect();
            put_bytes(&mut histo, field, &packed);
        }
        let mut v = Vec::new();
        put_bytes(&mut v, 1, tag.as_bytes());
        put_bytes(&mut v, 5, &histo);
        let mut summary = Vec::new();
        put_bytes(&mut summary, 1, &v);
        self.summary(step, &summary)
    }

    /// Pushes buffered records to the file, so TensorBoard sees them.
    pub fn flush(&mut self) -> Result<(), TfEventsError> {
        self.out.flush().map_err(io_error(&self.path))
    }

    fn summary(&mut self, step: i64, summary: &[u8]) -> Result<(), TfEventsError> {
        let mut event = Vec::new();
        encode_event_header(&mut event, now(), step);
        put_bytes(&mut event, 5, summary);
        self.record(&event)
    }

    fn record(&mut self, data: &[u8]) -> Result<(), TfEventsError> {
        let mut framed = Vec::with_capacity(data.len() + 16);
        let len = (data.len() as u64).to_le_bytes();
        framed.extend_from_slice(&len);
        framed.extend_from_slice(&masked_crc32c(&len).to_le_bytes());
        framed.extend_from_slice(data);
        framed.extend_from_slice(&masked_crc32c(data).to_le_bytes());
        self.out.write_all(&framed).map_err(io_error(&self.path))
    }
}

impl Drop for EventWriter {
    fn drop(&mut self) {
        // A writer dropped without an explicit flush still leaves its records on disk; an error
        // here has no one to go to, and the records already flushed stay readable.
        let _ = self.out.flush();
    }
}

const WIRE_VARINT: u8 = 0;
const WIRE_FIXED64: u8 = 1;
const WIRE_LEN: u8 = 2;
const WIRE_FIXED32: u8 = 5;

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn put_key(out: &mut Vec<u8>, field: u32, wire: u8) {
    put_varint(out, ((field as u64) << 3) | wire as u64);
}

fn put_bytes(out: &mut Vec<u8>, field: u32, bytes: &[u8]) {
    put_key(out, field, WIRE_LEN);
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

fn encode_event_header(out: &mut Vec<u8>, wall_time: f64, step: i64) {
    put_key(out, 1, WIRE_FIXED64);
    out.extend_from_slice(&wall_time.to_le_bytes());
    if step != 0 {
        // int64 is a plain varint of the two's-complement value (negative steps take 10 bytes).
        put_key(out, 2, WIRE_VARINT);
        put_varint(out, step as u64);
    }
}

/// How strictly [`read_events`] treats the end of a file.
#[derive(Debug, Clone, Copy, Default)]
pub struct ReadOptions {
    /// Treat a last record that is cut short as the end of the file (a writer may still be
    /// appending, or crashed mid-record) instead of an error.
    pub allow_truncated_tail: bool,
}

/// Decodes every event of an event file's bytes, checking both CRCs of every record.
pub fn read_events(bytes: &[u8], options: ReadOptions) -> Result<Vec<Event>, TfEventsError> {
    let mut events = Vec::new();
    let mut pos = 0usize;
    let mut record = 0usize;
    while pos < bytes.len() {
        let corrupt = |message: String| TfEventsError::Corrupt {
            record,
            offset: pos,
            message,
        };
        let rest = &bytes[pos..];
        if rest.len() < 12 {
            if options.allow_truncated_tail {
                break;
            }
            return Err(corrupt(format!(
                "cut short: {} bytes where a 12-byte header starts",
                rest.len()
            )));
        }
        let len_bytes = &rest[..8];
        let stored = u32::from_le_bytes(rest[8..12].try_into().expect("4 bytes"));
        if masked_crc32c(len_bytes) != stored {
            return Err(corrupt(format!(
                "length checksum {stored:#010x} (unmasked {:#010x}) does not match the length bytes",
                unmask(stored)
            )));
        }
        let len = u64::from_le_bytes(len_bytes.try_into().expect("8 bytes"));
        let available = (rest.len() - 12) as u64;
        if len > available || available - len < 4 {
            if options.allow_truncated_tail {
                break;
            }
            return Err(corrupt(format!(
                "cut short: the record says {len} data bytes, {available} bytes remain"
            )));
        }
        let len = len as usize;
        let data = &rest[12..12 + len];
        let stored = u32::from_le_bytes(rest[12 + len..16 + len].try_into().expect("4 bytes"));
        if masked_crc32c(data) != stored {
            return Err(corrupt(format!(
                "data checksum {stored:#010x} does not match the {len} data bytes"
            )));
        }
        events.push(decode_event(data).map_err(|m| corrupt(format!("bad event: {m}")))?);
        pos += 16 + len;
        record += 1;
    }
    Ok(events)
}

/// Reads and decodes an event file.
pub fn read_event_file(path: &Path, options: ReadOptions) -> Result<Vec<Event>, TfEventsError> {
    let bytes = std::fs::read(path).map_err(io_error(path))?;
    read_events(&bytes, options)
}

/// The event files of a run directory (names containing `tfevents`), sorted by name.
pub fn event_files(run_dir: &Path) -> Result<Vec<PathBuf>, TfEventsError> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(run_dir).map_err(io_error(run_dir))? {
        let entry = entry.map_err(io_error(run_dir))?;
        if entry.file_name().to_string_lossy().contains("tfevents") {
            files.push(entry.path());
        }
    }
    files.sort();
    Ok(files)
}

/// One field of a protocol buffer message.
enum Field<'a> {
    Varint(u64),
    Fixed64([u8; 8]),
    Bytes(&'a [u8]),
    Fixed32([u8; 4]),
}

/// Walks the fields of a message; unknown fields are returned too and skipped by callers.
fn fields(mut buf: &[u8]) -> Result<Vec<(u32, Field<'_>)>, String> {
    fn varint(buf: &mut &[u8]) -> Result<u64, String> {
        let mut v = 0u64;
        for shift in (0..70).step_by(7) {
            let (&b, rest) = buf.split_first().ok_or("varint cut short")?;
            *buf = rest;
            if shift == 63 && b > 1 {
                return Err("varint longer than 64 bits".into());
            }
            v |= ((b & 0x7F) as u64) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err("varint longer than 10 bytes".into())
    }
    fn take<'a>(buf: &mut &'a [u8], n: usize) -> Result<&'a [u8], String> {
        if buf.len() < n {
            return Err(format!("field needs {n} bytes, {} remain", buf.len()));
        }
        let (head, rest) = buf.split_at(n);
        *buf = rest;
        Ok(head)
    }
    let mut out = Vec::new();
    while !buf.is_empty() {
        let key = varint(&mut buf)?;
        let field = (key >> 3) as u32;
        let value = match key & 7 {
            0 => Field::Varint(varint(&mut buf)?),
            1 => Field::Fixed64(take(&mut buf, 8)?.try_into().expect("8 bytes")),
            2 => {
                let n = varint(&mut buf)?;
                let n = usize::try_from(n).map_err(|_| "length too large".to_string())?;
                Field::Bytes(take(&mut buf, n)?)
            }
            5 => Field::Fixed32(take(&mut buf, 4)?.try_into().expect("4 bytes")),
            w => return Err(format!("field {field}: unsupported wire type {w}")),
        };
        out.push((field, value));
    }
    Ok(out)
}

fn decode_event(data: &[u8]) -> Result<Event, String> {
    let mut event = Event {
        wall_time: 0.0,
        step: 0,
        what: What::Other,
    };
    for (field, value) in fields(data)? {
        match (field, value) {
            (1, Field::Fixed64(b)) => event.wall_time = f64::from_le_bytes(b),
            (2, Field::Varint(v)) => event.step = v as i64,
            (3, Field::Bytes(b)) => {
                event.what = What::FileVersion(
                    String::from_utf8(b.to_vec()).map_err(|_| "file_version is not UTF-8")?,
                )
            }
            (5, Field::Bytes(b)) => event.what = What::Summary(decode_summary(b)?),
            _ => {}
        }
    }
    Ok(event)
}

fn decode_summary(data: &[u8]) -> Result<Vec<TaggedValue>, String> {
    let mut values = Vec::new();
    for (field, value) in fields(data)? {
        if let (1, Field::Bytes(b)) = (field, value) {
            let mut tag = String::new();
            let mut data = ValueData::Other;
            for (f, v) in fields(b)? {
                match (f, v) {
                    (1, Field::Bytes(t)) => {
                        tag = String::from_utf8(t.to_vec()).map_err(|_| "tag is not UTF-8")?
                    }
                    (2, Field::Fixed32(x)) => data = ValueData::Scalar(f32::from_le_bytes(x)),
                    (5, Field::Bytes(h)) => data = ValueData::Histogram(decode_histogram(h)?),
                    _ => {}
                }
            }
            values.push(TaggedValue { tag, data });
        }
    }
    Ok(values)
}

fn decode_histogram(data: &[u8]) -> Result<Histogram, String> {
    let mut h = Histogram::default();
    for (field, value) in fields(data)? {
        match (field, value) {
            (1..=5, Field::Fixed64(b)) => {
                let x = f64::from_le_bytes(b);
                match field {
                    1 => h.min = x,
                    2 => h.max = x,
                    3 => h.num = x,
                    4 => h.sum = x,
                    _ => h.sum_squares = x,
                }
            }
            (6 | 7, Field::Bytes(packed)) => {
                if packed.len() % 8 != 0 {
                    return Err(format!("packed doubles of {} bytes", packed.len()));
                }
                let xs = packed
                    .chunks_exact(8)
                    .map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes")));
                if field == 6 {
                    h.bucket_limit.extend(xs);
                } else {
                    h.bucket.extend(xs);
                }
            }
            // An unpacked repeated double, which a reader must also accept.
            (6 | 7, Field::Fixed64(b)) => {
                let x = f64::from_le_bytes(b);
                if field == 6 {
                    h.bucket_limit.push(x);
                } else {
                    h.bucket.push(x);
                }
            }
            _ => {}
        }
    }
    Ok(h)
}

/// Every scalar of a list of events as `(tag, step, value)`, in file order.
pub fn scalars(events: &[Event]) -> Vec<(String, i64, f32)> {
    let mut out = Vec::new();
    for e in events {
        if let What::Summary(values) = &e.what {
            for v in values {
                if let ValueData::Scalar(x) = v.data {
                    out.push((v.tag.clone(), e.step, x));
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_encode_as_the_protobuf_spec_examples() {
        // The protobuf encoding guide's examples: 1 -> 01, 150 -> 96 01, 300 -> ac 02.
        for (v, bytes) in [
            (1u64, vec![0x01]),
            (150, vec![0x96, 0x01]),
            (300, vec![0xAC, 0x02]),
        ] {
            let mut out = Vec::new();
            put_varint(&mut out, v);
            assert_eq!(out, bytes);
        }
    }

    #[test]
    fn the_file_version_record_has_the_exact_expected_bytes() {
        // Event { wall_time: 0.0, file_version: "brain.Event:2" }, encoded by hand from the
        // field numbers: key 0x09 + 8 zero bytes, key 0x1a + length 13 + the string.
        let mut event = Vec::new();
        encode_event_header(&mut event, 0.0, 0);
        put_bytes(&mut event, 3, FILE_VERSION.as_bytes());
        let mut expected = vec![0x09, 0, 0, 0, 0, 0, 0, 0, 0, 0x1A, 13];
        expected.extend_from_slice(b"brain.Event:2");
        assert_eq!(event, expected);
    }

    #[test]
    fn histogram_buckets_count_every_value_once_with_right_closed_edges() {
        let h = Histogram::of(&[0.0, 1.0, 2.0, 3.0, 4.0, f64::NAN], 4);
        assert_eq!(h.num, 5.0);
        assert_eq!(h.bucket_limit, vec![1.0, 2.0, 3.0, 4.0]);
        // 0 and 1 fall in (min, 1]; 2 in (1, 2]; 3 in (2, 3]; 4 in (3, 4].
        assert_eq!(h.bucket, vec![2.0, 1.0, 1.0, 1.0]);
        assert_eq!(h.sum, 10.0);
        assert_eq!(h.sum_squares, 30.0);
        let flat = Histogram::of(&[2.0, 2.0], 10);
        assert_eq!((flat.bucket_limit, flat.bucket), (vec![2.0], vec![2.0]));
    }

    #[test]
    fn sanitized_components_cannot_leave_the_directory() {
        assert_eq!(
            sanitize_component("neural:report/model"),
            "neural_report_model"
        );
        assert_eq!(sanitize_component(".."), "__");
        assert_eq!(sanitize_component("lints-user"), "lints-user");
    }
}
