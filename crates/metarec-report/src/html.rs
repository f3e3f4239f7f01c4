//! A self-contained HTML page: [`Page`] of [`Section`]s, each a list of [`Block`]s
//! (paragraphs, [`Table`]s, inline SVG plots, preformatted text).
//!
//! Everything the page needs is inside the one file: the CSS is inline, the plots are inline
//! SVG, and there are no scripts, fonts or images to fetch, so the page opens offline and can be
//! mailed as it is. All text is HTML-escaped.

use crate::svg::escape;
use std::fmt::Write as _;

/// A table cell.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    /// Text, left-aligned.
    Text(String),
    /// A number, right-aligned, shown with the given decimals.
    Number(f64, usize),
    /// An estimate with its 95% interval: `mean [low, high]`, right-aligned.
    Interval {
        /// The estimate.
        mean: f64,
        /// Lower end.
        low: f64,
        /// Upper end.
        high: f64,
        /// Decimals shown.
        decimals: usize,
    },
    /// A mean with its standard deviation over repeats (seeds): `mean ± sd`, right-aligned.
    MeanSd {
        /// The mean.
        mean: f64,
        /// The standard deviation.
        sd: f64,
        /// Decimals shown.
        decimals: usize,
    },
}

impl Cell {
    /// A text cell.
    pub fn text(s: impl Into<String>) -> Cell {
        Cell::Text(s.into())
    }

    fn render(&self) -> (String, bool) {
        let num = |x: f64, d: usize| {
            if x.is_finite() {
                format!("{x:.d$}")
            } else {
                "n/a".into()
            }
        };
        match self {
            Cell::Text(s) => (escape(s), false),
            Cell::Number(x, d) => (num(*x, *d), true),
            Cell::Interval {
                mean,
                low,
                high,
                decimals,
            } => (
                format!(
                    "{} <span class=\"ci\">[{}, {}]</span>",
                    num(*mean, *decimals),
                    num(*low, *decimals),
                    num(*high, *decimals)
                ),
                true,
            ),
            Cell::MeanSd { mean, sd, decimals } => (
                format!("{} ± {}", num(*mean, *decimals), num(*sd, *decimals)),
                true,
            ),
        }
    }
}

/// A table with a header row.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Table {
    /// Column headers (with units where they have one).
    pub columns: Vec<String>,
    /// Rows of cells.
    pub rows: Vec<Vec<Cell>>,
    /// A caption under the table.
    pub caption: Option<String>,
}

impl Table {
    /// The table as HTML.
    pub fn to_html(&self) -> String {
        let mut out = String::from("<div class=\"table\"><table>");
        out.push_str("<thead><tr>");
        for c in &self.columns {
            let _ = write!(out, "<th>{}</th>", escape(c));
        }
        out.push_str("</tr></thead><tbody>");
        for row in &self.rows {
            out.push_str("<tr>");
            for cell in row {
                let (html, numeric) = cell.render();
                let class = if numeric { " class=\"num\"" } else { "" };
                let _ = write!(out, "<td{class}>{html}</td>");
            }
            out.push_str("</tr>");
        }
        out.push_str("</tbody></table>");
        if let Some(c) = &self.caption {
            let _ = write!(out, "<p class=\"caption\">{}</p>", escape(c));
        }
        out.push_str("</div>");
        out
    }
}

/// One piece of a section.
#[derive(Debug, Clone, PartialEq)]
pub enum Block {
    /// A paragraph of plain text.
    Paragraph(String),
    /// A table.
    Table(Table),
    /// An inline SVG element (from [`crate::svg`]); inserted as it is.
    Svg(String),
    /// Preformatted text (a command's table output).
    Pre(String),
}

/// A section of the page: a heading, where it came from, and its blocks.
#[derive(Debug, Clone, PartialEq)]
pub struct Section {
    /// The heading.
    pub title: String,
    /// Where the numbers came from (a file name), shown under the heading.
    pub source: Option<String>,
    /// The content.
    pub blocks: Vec<Block>,
}

/// A whole page.
#[derive(Debug, Clone, PartialEq)]
pub struct Page {
    /// The page title.
    pub title: String,
    /// A line under the title.
    pub subtitle: Option<String>,
    /// The sections, in order; a table of contents links to each.
    pub sections: Vec<Section>,
}

const CSS: &str = "\
body{font-family:-apple-system,'Segoe UI',Helvetica,Arial,sans-serif;margin:0;color:#222;background:#f6f7f9}\
main{max-width:1100px;margin:0 auto;padding:24px}\
h1{font-size:26px;margin:8px 0}\
h2{font-size:20px;margin:0 0 4px 0;border-bottom:2px solid #dde;padding-bottom:4px}\
section{background:#fff;border:1px solid #e2e4e8;border-radius:6px;padding:16px 20px;margin:18px 0}\
.source{color:#667;font-size:13px;margin:0 0 10px 0}\
nav ol{margin:4px 0;padding-left:22px}nav a{color:#1f5fa8}\
.subtitle{color:#556;margin-top:0}\
.table{overflow-x:auto;margin:10px 0}\
table{border-collapse:collapse;font-size:13px}\
th,td{padding:4px 8px;border-bottom:1px solid #e6e6e6;white-space:nowrap}\
th{background:#f0f2f5;text-align:left;white-space:normal;vertical-align:bottom;min-width:60px}\
td.num{text-align:right;font-variant-numeric:tabular-nums}\
.ci{color:#778;font-size:11px;display:block}\
.caption{color:#667;font-size:12px;margin:4px 0}\
svg.plot{max-width:100%;height:auto;display:block;margin:12px 0}\
pre{background:#f6f6f6;padding:10px;overflow-x:auto;font-size:12px}\
footer{color:#889;font-size:12px;text-align:center;margin:20px}";

impl Page {
    /// The page as one self-contained HTML document.
    pub fn to_html(&self) -> String {
        let mut out = String::new();
        let _ = write!(
            out,
            "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
             <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
             <title>{t}</title><style>{CSS}</style></head><body><main><h1>{t}</h1>",
            t = escape(&self.title)
        );
        if let Some(s) = &self.subtitle {
            let _ = write!(out, "<p class=\"subtitle\">{}</p>", escape(s));
        }
        if self.sections.len() > 1 {
            out.push_str("<nav><ol>");
            for (i, s) in self.sections.iter().enumerate() {
                let _ = write!(
                    out,
                    "<li><a href=\"#s{}\">{}</a></li>",
                    i + 1,
                    escape(&s.title)
                );
            }
            out.push_str("</ol></nav>");
        }
        for (i, s) in self.sections.iter().enumerate() {
            let _ = write!(
                out,
                "<section id=\"s{}\"><h2>{}</h2>",
                i + 1,
                escape(&s.title)
            );
            if let Some(src) = &s.source {
                let _ = write!(out, "<p class=\"source\">from {}</p>", escape(src));
            }
            for b in &s.blocks {
                match b {
                    Block::Paragraph(p) => {
                        let _ = write!(out, "<p>{}</p>", escape(p));
                    }
                    Block::Table(t) => out.push_str(&t.to_html()),
                    Block::Svg(svg) => out.push_str(svg),
                    Block::Pre(p) => {
                        let _ = write!(out, "<pre>{}</pre>", escape(p));
                    }
                }
            }
            out.push_str("</section>");
        }
        out.push_str(
            "<footer>written by metarec report; self-contained: no network needed</footer>\
             </main></body></html>\n",
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_is_self_contained_and_escaped() {
        let page = Page {
            title: "a <b> & c".into(),
            subtitle: None,
            sections: vec![
                Section {
                    title: "one".into(),
                    source: Some("x.json".into()),
                    blocks: vec![
                        Block::Paragraph("1 < 2".into()),
                        Block::Table(Table {
                            columns: vec!["policy".into(), "reward".into()],
                            rows: vec![vec![
                                Cell::text("<script>"),
                                Cell::Interval {
                                    mean: 1.0,
                                    low: 0.5,
                                    high: f64::NAN,
                                    decimals: 2,
                                },
                            ]],
                            caption: None,
                        }),
                    ],
                },
                Section {
                    title: "two".into(),
                    source: None,
                    blocks: vec![],
                },
            ],
        };
        let html = page.to_html();
        assert!(html.contains("<title>a &lt;b&gt; &amp; c</title>"));
        assert!(html.contains("&lt;script&gt;"));
        assert!(!html.contains("<script"));
        assert!(html.contains("1.00 <span class=\"ci\">[0.50, n/a]</span>"));
        assert!(html.contains("href=\"#s2\""));
        // Nothing is fetched: no external references at all.
        for needle in ["http://", "https://", "src=", "<link"] {
            assert!(!html.contains(needle), "{needle}");
        }
    }
}
