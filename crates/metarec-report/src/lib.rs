//! Reports people can look at.
//!
//! - [`tfevents`]: a TensorBoard event-file writer (scalars and histograms in crc32c-framed
//!   records) and a reader of the same record format, used by the tests and by anyone who wants
//!   the numbers back;
//! - [`crc32c`]: the Castagnoli CRC the record framing needs;
//! - [`svg`]: line plots (with optional 95% bands) and interval plots as hand-written SVG, with
//!   axes, ticks, axis labels with units and legends;
//! - [`html`]: a self-contained page (inline CSS and SVG, nothing fetched from the network)
//!   made of sections, paragraphs, tables and plots;
//! - [`results`]: the results JSON files the commands write, how their kind is recognised, and
//!   one renderer per kind that turns a file into a section of the page.
//!
//! The crate has no metarec dependencies and does no file IO except in [`tfevents`]: callers
//! read the results files and write the page, so the crate builds in seconds and can be used by
//! every command.
#![deny(missing_docs)]

pub mod crc32c;
pub mod html;
mod kinds;
pub mod results;
pub mod svg;
pub mod tfevents;

pub use results::{ReportError, render_report};
