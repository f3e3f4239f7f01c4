//! Plots as hand-written SVG: [`LinePlot`] (lines with optional shaded 95% bands) and
//! [`IntervalPlot`] (one row per label: a point estimate with its interval as an error bar).
//!
//! Every plot has a title, axes with "nice" tick values (1, 2, 2.5 or 5 times a power of ten),
//! axis labels that carry their unit, light grid lines, and a legend to the right of the plot
//! area so that long policy names never cover the data. Text is XML-escaped; points that are not
//! finite are left out (a line is broken there) rather than drawn at a wrong place.

use std::fmt::Write as _;

/// Colours of successive series (a colour-blind-safe categorical palette); series beyond its
/// length reuse colours with a dashed line.
pub const PALETTE: [&str; 10] = [
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
    "#bcbd22", "#17becf",
];

/// An axis: its label, its unit and optional fixed bounds.
#[derive(Debug, Clone, Default)]
pub struct Axis {
    /// What the axis shows ("reward at interaction t").
    pub label: String,
    /// The unit, shown in brackets after the label ("reward units", "GBP"); empty for none.
    pub unit: String,
    /// Force the axis to include this lower value (such as 0).
    pub include: Option<f64>,
    /// Ticks at whole numbers only (counts, steps, iterations).
    pub integer: bool,
}

impl Axis {
    /// An axis with a label and a unit.
    pub fn new(label: impl Into<String>, unit: impl Into<String>) -> Axis {
        Axis {
            label: label.into(),
            unit: unit.into(),
            include: None,
            integer: false,
        }
    }

    /// The same axis, forced to include `value`.
    pub fn including(mut self, value: f64) -> Axis {
        self.include = Some(value);
        self
    }

    /// The same axis, with whole-number ticks.
    pub fn integer(mut self) -> Axis {
        self.integer = true;
        self
    }

    fn title(&self) -> String {
        if self.unit.is_empty() {
            self.label.clone()
        } else {
            format!("{} ({})", self.label, self.unit)
        }
    }
}

/// One point of a line, with an optional band (such as a 95% interval) around it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Point {
    /// Horizontal position.
    pub x: f64,
    /// Vertical position.
    pub y: f64,
    /// Lower and upper ends of the band at `x`.
    pub band: Option<(f64, f64)>,
}

/// A named line.
#[derive(Debug, Clone, Default)]
pub struct Series {
    /// The legend entry.
    pub name: String,
    /// The points, in drawing order.
    pub points: Vec<Point>,
    /// Draw a marker at every point (for short series).
    pub markers: bool,
    /// A thin, light line (raw values behind a smoothed one).
    pub faint: bool,
}

impl Series {
    /// A series from `(x, y)` pairs.
    pub fn xy(name: impl Into<String>, points: impl IntoIterator<Item = (f64, f64)>) -> Series {
        Series {
            name: name.into(),
            points: points
                .into_iter()
                .map(|(x, y)| Point { x, y, band: None })
                .collect(),
            markers: false,
            faint: false,
        }
    }

    /// A series from `(x, y, low, high)`: a line with a shaded band.
    pub fn with_band(
        name: impl Into<String>,
        points: impl IntoIterator<Item = (f64, f64, f64, f64)>,
    ) -> Series {
        Series {
            name: name.into(),
            points: points
                .into_iter()
                .map(|(x, y, lo, hi)| Point {
                    x,
                    y,
                    band: Some((lo, hi)),
                })
                .collect(),
            markers: false,
            faint: false,
        }
    }
}

/// A line plot.
#[derive(Debug, Clone)]
pub struct LinePlot {
    /// The title above the plot.
    pub title: String,
    /// The horizontal axis.
    pub x: Axis,
    /// The vertical axis.
    pub y: Axis,
    /// The lines, drawn in order (bands first, then lines, so no band hides a line).
    pub series: Vec<Series>,
}

/// One row of an [`IntervalPlot`].
#[derive(Debug, Clone, PartialEq)]
pub struct IntervalRow {
    /// The row's label (a policy, an estimator).
    pub label: String,
    /// The series the row belongs to (a legend entry and colour); rows of one label and
    /// several series are drawn side by side.
    pub series: String,
    /// The point estimate.
    pub value: f64,
    /// The interval, if any.
    pub interval: Option<(f64, f64)>,
}

/// Point estimates with intervals (error bars), one row per label, values along the horizontal
/// axis.
#[derive(Debug, Clone)]
pub struct IntervalPlot {
    /// The title.
    pub title: String,
    /// The value axis.
    pub value: Axis,
    /// The rows, top to bottom in order of first appearance of their label.
    pub rows: Vec<IntervalRow>,
    /// A vertical reference line (0 for differences, a baseline's value).
    pub reference: Option<f64>,
    /// Named vertical reference lines (a logging policy's on-policy value, a chance rate), each
    /// dashed in its own colour with its name above the plot, so several can share one plot.
    pub marks: Vec<(String, f64)>,
}

/// Colours of [`IntervalPlot::marks`]: darker than the series palette, so a mark is not read
/// as one of the series.
const MARK_COLORS: [&str; 3] = ["#b22222", "#2e7d32", "#6a1b9a"];

const WIDTH: f64 = 900.0;
const FONT: f64 = 12.0;
/// Approximate width of one character of the 12 px sans-serif font, for layout.
const CHAR_W: f64 = 6.8;
const LEGEND_MAX_CHARS: usize = 34;

/// Escapes text for XML content and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Nice tick positions covering `[lo, hi]`: returns the extended bounds and the ticks.
///
/// The step is the smallest of 1, 2, 2.5, 5 or 10 times a power of ten that gives at most
/// `target` intervals (whole steps only for integer axes); the bounds are rounded out to it.
pub fn nice_ticks(lo: f64, hi: f64, target: usize, integer: bool) -> (f64, f64, Vec<f64>) {
    let (mut lo, mut hi) = if lo <= hi { (lo, hi) } else { (hi, lo) };
    if !lo.is_finite() || !hi.is_finite() {
        return (0.0, 1.0, vec![0.0, 0.5, 1.0]);
    }
    if hi - lo < 1e-12 * lo.abs().max(hi.abs()).max(1e-300) {
        // A flat range: widen it so the single value sits mid-plot.
        let pad = if lo == 0.0 { 1.0 } else { lo.abs() * 0.1 };
        lo -= pad;
        hi += pad;
    }
    let raw = (hi - lo) / target.max(1) as f64;
    let magnitude = 10f64.powf(raw.log10().floor());
    let mut step = [1.0, 2.0, 2.5, 5.0, 10.0]
        .iter()
        .map(|m| m * magnitude)
        .find(|s| *s >= raw * (1.0 - 1e-9))
        .unwrap_or(10.0 * magnitude);
    if integer {
        step = step.max(1.0);
        if step.fract() != 0.0 {
            step = step.ceil();
            if step == 3.0 || step == 4.0 {
                step = 5.0;
            }
        }
    }
    let first = (lo / step + 1e-9).floor();
    let last = (hi / step - 1e-9).ceil();
    // Rounding a bound out to the next tick can waste most of an interval (a band dipping just
    // below 0 would stretch the axis to -1); past a fifth of the range, pad the data instead.
    let range = hi - lo;
    let d0 = if lo - first * step > 0.2 * range {
        lo - 0.03 * range
    } else {
        first * step
    };
    let d1 = if last * step - hi > 0.2 * range {
        hi + 0.03 * range
    } else {
        last * step
    };
    let ticks: Vec<f64> = (0..=((last - first) as usize))
        .map(|i| {
            let v = (first + i as f64) * step;
            // Avoid printing -0.
            if v.abs() < step * 1e-9 { 0.0 } else { v }
        })
        .filter(|v| *v >= d0 - step * 1e-9 && *v <= d1 + step * 1e-9)
        .collect();
    (d0, d1, ticks)
}

/// Formats a tick value with the decimals its step needs.
fn tick_label(v: f64, step: f64) -> String {
    if v.abs() >= 1e6 || (v != 0.0 && v.abs() < 1e-4) {
        return format!("{v:.1e}");
    }
    let mut decimals = 0usize;
    while decimals < 6
        && ((step * 10f64.powi(decimals as i32)).round() - step * 10f64.powi(decimals as i32)).abs()
            > 1e-6
    {
        decimals += 1;
    }
    format!("{v:.decimals$}")
}

/// A mapping from data values to pixels along one axis.
#[derive(Clone, Copy)]
struct Scale {
    d0: f64,
    d1: f64,
    p0: f64,
    p1: f64,
}

impl Scale {
    fn at(&self, v: f64) -> f64 {
        self.p0 + (v - self.d0) / (self.d1 - self.d0) * (self.p1 - self.p0)
    }
}

fn truncate(name: &str, max: usize) -> String {
    if name.chars().count() <= max {
        name.to_owned()
    } else {
        let head: String = name.chars().take(max - 1).collect();
        format!("{head}…")
    }
}

fn legend_width(names: &[&str]) -> f64 {
    let chars = names
        .iter()
        .map(|n| n.chars().count().min(LEGEND_MAX_CHARS))
        .max()
        .unwrap_or(0);
    if chars == 0 {
        0.0
    } else {
        40.0 + chars as f64 * CHAR_W
    }
}

fn open_svg(out: &mut String, height: f64, title: &str) {
    let _ = write!(
        out,
        r##"<svg xmlns="http://www.w3.org/2000/svg" class="plot" viewBox="0 0 {WIDTH} {height}" width="{WIDTH}" height="{height}" role="img" font-family="sans-serif" font-size="{FONT}"><title>{t}</title><rect x="0" y="0" width="{WIDTH}" height="{height}" fill="#ffffff"/><text x="{cx}" y="22" text-anchor="middle" font-size="15" font-weight="bold">{t}</text>"##,
        t = escape(title),
        cx = WIDTH / 2.0
    );
}

/// A legend entry: name, series index (colour and dash), whether it has a band, whether faint.
type LegendEntry = (String, usize, bool, bool);

fn legend(out: &mut String, x: f64, y: f64, entries: &[LegendEntry]) {
    for (i, (name, index, band, faint)) in entries.iter().enumerate() {
        let cy = y + i as f64 * 20.0;
        let color = PALETTE[index % PALETTE.len()];
        if *band {
            let _ = write!(
                out,
                r#"<rect x="{x}" y="{}" width="24" height="12" fill="{color}" fill-opacity="0.18"/>"#,
                cy - 6.0
            );
        }
        let _ = write!(
            out,
            r#"<line x1="{x}" y1="{cy}" x2="{}" y2="{cy}" stroke="{color}" stroke-width="2.5" stroke-opacity="{}"{}/><text x="{}" y="{}"><title>{full}</title>{short}</text>"#,
            x + 24.0,
            if *faint { 0.35 } else { 1.0 },
            dash(*index),
            x + 30.0,
            cy + 4.0,
            full = escape(name),
            short = escape(&truncate(name, LEGEND_MAX_CHARS))
        );
    }
}

fn dash(index: usize) -> &'static str {
    if index >= PALETTE.len() {
        r#" stroke-dasharray="6 3""#
    } else {
        ""
    }
}

/// Draws axes, grid, ticks and labels for the plot area `[left, right] x [top, bottom]`.
#[allow(clippy::too_many_arguments)]
fn axes(
    out: &mut String,
    xs: &Scale,
    ys: &Scale,
    xticks: &[f64],
    yticks: &[f64],
    x_axis: &Axis,
    y_axis: &Axis,
) {
    let (left, right, top, bottom) = (xs.p0, xs.p1, ys.p1, ys.p0);
    let xstep = if xticks.len() > 1 {
        xticks[1] - xticks[0]
    } else {
        1.0
    };
    let ystep = if yticks.len() > 1 {
        yticks[1] - yticks[0]
    } else {
        1.0
    };
    out.push_str(r##"<g class="grid" stroke="#e3e3e3" stroke-width="1">"##);
    for &t in yticks {
        let y = ys.at(t);
        let _ = write!(
            out,
            r#"<line x1="{left}" y1="{y:.1}" x2="{right}" y2="{y:.1}"/>"#
        );
    }
    for &t in xticks {
        let x = xs.at(t);
        let _ = write!(
            out,
            r#"<line x1="{x:.1}" y1="{top}" x2="{x:.1}" y2="{bottom}"/>"#
        );
    }
    out.push_str("</g>");
    let _ = write!(
        out,
        r##"<g class="axes" stroke="#333" stroke-width="1.2"><line x1="{left}" y1="{bottom}" x2="{right}" y2="{bottom}"/><line x1="{left}" y1="{top}" x2="{left}" y2="{bottom}"/></g><g class="ticks" fill="#333">"##
    );
    for &t in xticks {
        let x = xs.at(t);
        let _ = write!(
            out,
            r##"<line x1="{x:.1}" y1="{bottom}" x2="{x:.1}" y2="{}" stroke="#333"/><text x="{x:.1}" y="{}" text-anchor="middle">{}</text>"##,
            bottom + 5.0,
            bottom + 18.0,
            escape(&tick_label(t, xstep))
        );
    }
    for &t in yticks {
        let y = ys.at(t);
        let _ = write!(
            out,
            r##"<line x1="{}" y1="{y:.1}" x2="{left}" y2="{y:.1}" stroke="#333"/><text x="{}" y="{:.1}" text-anchor="end">{}</text>"##,
            left - 5.0,
            left - 8.0,
            y + 4.0,
            escape(&tick_label(t, ystep))
        );
    }
    out.push_str("</g>");
    let _ = write!(
        out,
        r#"<text class="xlabel" x="{:.1}" y="{}" text-anchor="middle" font-size="13">{}</text>"#,
        (left + right) / 2.0,
        bottom + 40.0,
        escape(&x_axis.title())
    );
    let cy = (top + bottom) / 2.0;
    let _ = write!(
        out,
        r#"<text class="ylabel" x="18" y="{cy:.1}" text-anchor="middle" font-size="13" transform="rotate(-90 18 {cy:.1})">{}</text>"#,
        escape(&y_axis.title())
    );
}

fn extent(values: impl Iterator<Item = f64>, include: Option<f64>) -> (f64, f64) {
    let mut lo = f64::INFINITY;
    let mut hi = f64::NEG_INFINITY;
    for v in values.chain(include).filter(|v| v.is_finite()) {
        lo = lo.min(v);
        hi = hi.max(v);
    }
    if lo > hi { (0.0, 1.0) } else { (lo, hi) }
}

impl LinePlot {
    /// The plot as an SVG element.
    pub fn to_svg(&self) -> String {
        let names: Vec<&str> = self.series.iter().map(|s| s.name.as_str()).collect();
        let legend_w = legend_width(&names);
        let height = 440.0;
        let (left, top, bottom_margin) = (78.0, 40.0, 58.0);
        let right = WIDTH - 20.0 - legend_w;
        let bottom = height - bottom_margin;
        let finite = |p: &&Point| p.x.is_finite() && p.y.is_finite();
        let (x0, x1) = extent(
            self.series
                .iter()
                .flat_map(|s| s.points.iter().filter(finite).map(|p| p.x)),
            self.x.include,
        );
        let (y0, y1) = extent(
            self.series.iter().flat_map(|s| {
                s.points.iter().filter(finite).flat_map(|p| {
                    let (lo, hi) = p.band.unwrap_or((p.y, p.y));
                    [p.y, lo, hi]
                })
            }),
            self.y.include,
        );
        let (x0, x1, xticks) = nice_ticks(x0, x1, 8, self.x.integer);
        let (y0, y1, yticks) = nice_ticks(y0, y1, 6, self.y.integer);
        let xs = Scale {
            d0: x0,
            d1: x1,
            p0: left,
            p1: right,
        };
        let ys = Scale {
            d0: y0,
            d1: y1,
            p0: bottom,
            p1: top,
        };
        let mut out = String::new();
        open_svg(&mut out, height, &self.title);
        axes(&mut out, &xs, &ys, &xticks, &yticks, &self.x, &self.y);
        let _ = write!(
            out,
            r#"<clipPath id="c{id}"><rect x="{left}" y="{top}" width="{}" height="{}"/></clipPath><g clip-path="url(#c{id})">"#,
            right - left,
            bottom - top,
            id = clip_id(&self.title, &names)
        );
        // Bands first, so that no band covers another series' line.
        for (i, s) in self.series.iter().enumerate() {
            let color = PALETTE[i % PALETTE.len()];
            for run in runs(&s.points) {
                let banded: Vec<&Point> = run
                    .iter()
                    .filter(|p| p.band.is_some_and(|(a, b)| a.is_finite() && b.is_finite()))
                    .collect();
                if banded.len() < 2 {
                    continue;
                }
                let mut d = String::new();
                for (j, p) in banded.iter().enumerate() {
                    let (_, hi) = p.band.expect("filtered");
                    let _ = write!(
                        d,
                        "{}{:.1},{:.1}",
                        if j == 0 { "M" } else { "L" },
                        xs.at(p.x),
                        ys.at(hi)
                    );
                }
                for p in banded.iter().rev() {
                    let (lo, _) = p.band.expect("filtered");
                    let _ = write!(d, "L{:.1},{:.1}", xs.at(p.x), ys.at(lo));
                }
                let _ = write!(
                    out,
                    r#"<path class="band" d="{d}Z" fill="{color}" fill-opacity="0.15" stroke="none"/>"#
                );
            }
        }
        for (i, s) in self.series.iter().enumerate() {
            let color = PALETTE[i % PALETTE.len()];
            let (width, opacity) = if s.faint { (1.0, 0.35) } else { (2.0, 1.0) };
            for run in runs(&s.points) {
                let mut d = String::new();
                for (j, p) in run.iter().enumerate() {
                    let _ = write!(
                        d,
                        "{}{:.1},{:.1}",
                        if j == 0 { "M" } else { "L" },
                        xs.at(p.x),
                        ys.at(p.y)
                    );
                }
                let _ = write!(
                    out,
                    r#"<path class="line" d="{d}" fill="none" stroke="{color}" stroke-width="{width}" stroke-opacity="{opacity}"{}/>"#,
                    dash(i)
                );
                if s.markers || run.len() == 1 {
                    for p in run {
                        let _ = write!(
                            out,
                            r#"<circle cx="{:.1}" cy="{:.1}" r="3" fill="{color}"/>"#,
                            xs.at(p.x),
                            ys.at(p.y)
                        );
                    }
                }
            }
        }
        out.push_str("</g>");
        let entries: Vec<LegendEntry> = self
            .series
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let band = s.points.iter().any(|p| p.band.is_some());
                (s.name.clone(), i, band, s.faint)
            })
            .collect();
        legend(&mut out, right + 16.0, top + 10.0, &entries);
        out.push_str("</svg>");
        out
    }
}

/// A stable id for a plot's clip path, unique enough within one page.
fn clip_id(title: &str, names: &[&str]) -> u32 {
    let mut h: u32 = 0x811C_9DC5;
    for b in title.bytes().chain(names.iter().flat_map(|n| n.bytes())) {
        h = (h ^ b as u32).wrapping_mul(0x0100_0193);
    }
    h
}

/// Splits points into runs of finite ones (a non-finite point breaks the line).
fn runs(points: &[Point]) -> Vec<Vec<Point>> {
    let mut out = vec![Vec::new()];
    for p in points {
        if p.x.is_finite() && p.y.is_finite() {
            out.last_mut().expect("non-empty").push(*p);
        } else if !out.last().expect("non-empty").is_empty() {
            out.push(Vec::new());
        }
    }
    out.retain(|r| !r.is_empty());
    out
}

impl IntervalPlot {
    /// The plot as an SVG element.
    pub fn to_svg(&self) -> String {
        let mut labels: Vec<&str> = Vec::new();
        let mut series: Vec<&str> = Vec::new();
        for r in &self.rows {
            if !labels.contains(&r.label.as_str()) {
                labels.push(&r.label);
            }
            if !series.contains(&r.series.as_str()) {
                series.push(&r.series);
            }
        }
        let per_label = series.len().max(1) as f64;
        let row_h = 10.0 + 12.0 * per_label;
        let label_chars = labels
            .iter()
            .map(|l| l.chars().count().min(LEGEND_MAX_CHARS))
            .max()
            .unwrap_or(4);
        let left = 20.0 + label_chars as f64 * CHAR_W;
        let legend_w = if series.len() > 1 || series.first().is_some_and(|s| !s.is_empty()) {
            legend_width(&series)
        } else {
            0.0
        };
        let right = WIDTH - 20.0 - legend_w;
        // Each named mark gets a line of text above the plot area.
        let top = 40.0 + 14.0 * self.marks.len() as f64;
        let bottom = top + row_h * labels.len().max(1) as f64;
        let height = bottom + 58.0;
        let (v0, v1) = extent(
            self.rows.iter().flat_map(|r| {
                let (lo, hi) = r.interval.unwrap_or((r.value, r.value));
                [r.value, lo, hi]
            }),
            self.value.include.or(self.reference),
        );
        // Marks widen the axis too, so a reference far from every estimate is still drawn.
        let (v0, v1) = self
            .marks
            .iter()
            .map(|m| m.1)
            .filter(|m| m.is_finite())
            .fold((v0, v1), |(a, b), m| (a.min(m), b.max(m)));
        let (v0, v1, ticks) = nice_ticks(v0, v1, 8, self.value.integer);
        let xs = Scale {
            d0: v0,
            d1: v1,
            p0: left,
            p1: right,
        };
        let mut out = String::new();
        open_svg(&mut out, height, &self.title);
        let step = if ticks.len() > 1 {
            ticks[1] - ticks[0]
        } else {
            1.0
        };
        out.push_str(r##"<g class="grid" stroke="#e3e3e3">"##);
        for &t in &ticks {
            let x = xs.at(t);
            let _ = write!(
                out,
                r#"<line x1="{x:.1}" y1="{top}" x2="{x:.1}" y2="{bottom}"/>"#
            );
        }
        out.push_str("</g>");
        let _ = write!(
            out,
            r##"<g class="axes" stroke="#333" stroke-width="1.2"><line x1="{left}" y1="{bottom}" x2="{right}" y2="{bottom}"/><line x1="{left}" y1="{top}" x2="{left}" y2="{bottom}"/></g>"##
        );
        for &t in &ticks {
            let x = xs.at(t);
            let _ = write!(
                out,
                r##"<line x1="{x:.1}" y1="{bottom}" x2="{x:.1}" y2="{}" stroke="#333"/><text x="{x:.1}" y="{}" text-anchor="middle">{}</text>"##,
                bottom + 5.0,
                bottom + 18.0,
                escape(&tick_label(t, step))
            );
        }
        let _ = write!(
            out,
            r#"<text class="xlabel" x="{:.1}" y="{}" text-anchor="middle" font-size="13">{}</text>"#,
            (left + right) / 2.0,
            bottom + 40.0,
            escape(&self.value.title())
        );
        if let Some(r) = self.reference.filter(|r| r.is_finite()) {
            let x = xs.at(r);
            let _ = write!(
                out,
                r##"<line class="reference" x1="{x:.1}" y1="{top}" x2="{x:.1}" y2="{bottom}" stroke="#555" stroke-dasharray="4 3"/>"##
            );
        }
        for (i, (name, value)) in self.marks.iter().enumerate() {
            if !value.is_finite() {
                continue;
            }
            let x = xs.at(*value);
            let color = MARK_COLORS[i % MARK_COLORS.len()];
            // The label sits on its own line above the plot, anchored towards the plot's middle
            // so that a mark near either edge keeps its text inside the image.
            let anchor = if x > (left + right) / 2.0 {
                "end"
            } else {
                "start"
            };
            let _ = write!(
                out,
                r#"<g class="mark"><line x1="{x:.1}" y1="{:.1}" x2="{x:.1}" y2="{bottom}" stroke="{color}" stroke-width="1.5" stroke-dasharray="6 3"/><text x="{x:.1}" y="{:.1}" text-anchor="{anchor}" fill="{color}">{}</text></g>"#,
                40.0 + 14.0 * i as f64 - 2.0,
                40.0 + 14.0 * i as f64 - 6.0,
                escape(&format!("{name} = {}", tick_label(*value, step / 100.0)))
            );
        }
        for (li, label) in labels.iter().enumerate() {
            let y0 = top + row_h * li as f64;
            let _ = write!(
                out,
                r#"<text x="{}" y="{:.1}" text-anchor="end"><title>{full}</title>{short}</text>"#,
                left - 8.0,
                y0 + row_h / 2.0 + 4.0,
                full = escape(label),
                short = escape(&truncate(label, LEGEND_MAX_CHARS))
            );
            for r in self.rows.iter().filter(|r| r.label == *label) {
                let si = series.iter().position(|s| *s == r.series).unwrap_or(0);
                let y = y0 + 5.0 + 12.0 * si as f64 + 6.0;
                let color = PALETTE[si % PALETTE.len()];
                if let Some((lo, hi)) = r.interval.filter(|(a, b)| a.is_finite() && b.is_finite()) {
                    let (a, b) = (xs.at(lo), xs.at(hi));
                    let _ = write!(
                        out,
                        r#"<g class="errorbar" stroke="{color}" stroke-width="2"><line x1="{a:.1}" y1="{y:.1}" x2="{b:.1}" y2="{y:.1}"/><line x1="{a:.1}" y1="{:.1}" x2="{a:.1}" y2="{:.1}"/><line x1="{b:.1}" y1="{:.1}" x2="{b:.1}" y2="{:.1}"/></g>"#,
                        y - 4.0,
                        y + 4.0,
                        y - 4.0,
                        y + 4.0
                    );
                }
                if r.value.is_finite() {
                    let _ = write!(
                        out,
                        r#"<circle cx="{:.1}" cy="{y:.1}" r="4" fill="{color}"/>"#,
                        xs.at(r.value)
                    );
                }
            }
        }
        if legend_w > 0.0 {
            let entries: Vec<LegendEntry> = series
                .iter()
                .enumerate()
                .map(|(i, s)| (s.to_string(), i, false, false))
                .collect();
            legend(&mut out, right + 16.0, top + 10.0, &entries);
        }
        out.push_str("</svg>");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nice_ticks_cover_the_range_with_round_steps() {
        let (lo, hi, ticks) = nice_ticks(0.13, 0.87, 6, false);
        assert_eq!((lo, hi), (0.0, 1.0));
        assert_eq!(ticks.len(), 6);
        assert!((ticks[1] - 0.2).abs() < 1e-12);
        let (lo, hi, ticks) = nice_ticks(1.0, 20.0, 8, true);
        assert_eq!((lo, hi), (0.0, 20.0));
        // The raw step 19/8 rounds to 2.5, which an integer axis turns into 5.
        assert_eq!(ticks, vec![0.0, 5.0, 10.0, 15.0, 20.0]);
        assert!(ticks.iter().all(|t| t.fract() == 0.0), "{ticks:?}");
        // A flat range is widened around its value.
        let (lo, hi, _) = nice_ticks(3.0, 3.0, 5, false);
        assert!(lo < 3.0 && hi > 3.0);
        let (lo, hi, ticks) = nice_ticks(-7.3, 412.0, 6, false);
        assert!(lo <= -7.3 && hi >= 412.0);
        assert!(ticks.iter().all(|t| (lo..=hi).contains(t)), "{ticks:?}");
        // A band just below 0 does not stretch the axis down to the next whole tick (-1).
        let (lo, hi, ticks) = nice_ticks(-0.0034, 3.78, 6, false);
        assert!(lo > -0.2 && lo < -0.0034 && hi == 4.0, "{lo} {hi}");
        assert_eq!(ticks, vec![0.0, 1.0, 2.0, 3.0, 4.0]);
    }

    #[test]
    fn tick_labels_use_the_decimals_of_the_step() {
        assert_eq!(tick_label(0.25, 0.05), "0.25");
        assert_eq!(tick_label(1.0, 0.5), "1.0");
        assert_eq!(tick_label(1200.0, 200.0), "1200");
        assert_eq!(tick_label(2.5, 2.5), "2.5");
    }

    #[test]
    fn a_line_plot_has_axes_labels_with_units_a_legend_and_bands() {
        let plot = LinePlot {
            title: "cold start <test>".into(),
            x: Axis::new("interaction", "t").integer(),
            y: Axis::new("reward", "reward units"),
            series: vec![
                Series::with_band("a&b", (1..=5).map(|t| (t as f64, 1.0, 0.5, 1.5))),
                Series::xy("plain", [(1.0, 2.0), (f64::NAN, 3.0), (3.0, 2.5)]),
            ],
        };
        let svg = plot.to_svg();
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
        assert!(svg.contains("cold start &lt;test&gt;"));
        assert!(svg.contains("interaction (t)"));
        assert!(svg.contains("reward (reward units)"));
        assert!(svg.contains(">a&amp;b</text>"));
        assert_eq!(svg.matches(r#"class="band""#).count(), 1);
        // The non-finite point splits the second series into two runs.
        assert_eq!(svg.matches(r#"class="line""#).count(), 3);
        assert!(!svg.contains("NaN"));
    }

    #[test]
    fn an_interval_plot_draws_one_error_bar_per_interval() {
        let plot = IntervalPlot {
            title: "reward".into(),
            value: Axis::new("reward per user", "reward units"),
            rows: vec![
                IntervalRow {
                    label: "random".into(),
                    series: String::new(),
                    value: 1.0,
                    interval: Some((0.8, 1.2)),
                },
                IntervalRow {
                    label: "oracle".into(),
                    series: String::new(),
                    value: 3.0,
                    interval: None,
                },
            ],
            reference: Some(0.0),
            marks: vec![("chance".into(), 5.0)],
        };
        let svg = plot.to_svg();
        assert_eq!(svg.matches(r#"class="errorbar""#).count(), 1);
        assert_eq!(svg.matches("<circle").count(), 2);
        assert!(svg.contains(r#"class="reference""#));
        assert!(svg.contains("reward per user (reward units)"));
        // The mark outside every interval is drawn and labelled, so the axis reaches it.
        assert_eq!(svg.matches(r#"class="mark""#).count(), 1);
        assert!(svg.contains(">chance = 5"), "{svg}");
    }
}
