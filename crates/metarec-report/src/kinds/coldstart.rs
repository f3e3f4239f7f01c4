//! The MovieLens-100k cold-start benchmark (`metarec coldstart --out F`): every method's metrics
//! at the headline support budget (mean ± sd over seeds), and the sweep over the support budget
//! K as line plots of MAE and P@5 with ± one sd bands.

use super::has_keys;
use crate::html::{Block, Cell, Section, Table};
use crate::results::{Kind, ReportError, number, parse};
use crate::svg::{Axis, LinePlot, Series};
use serde::Deserialize;
use serde_json::Value;

pub(crate) const KIND: Kind = Kind {
    name: "coldstart",
    written_by: "metarec coldstart --out",
    detect: |v| has_keys(v, &["table", "per_seed", "train_only_users"]),
    render,
};

/// Metrics shown, in order, with their column labels; others in the file are left out.
const METRICS: [(&str, &str); 8] = [
    ("mae", "MAE"),
    ("mae_rounded", "MAE rounded"),
    ("rmse", "RMSE"),
    ("ndcg3", "nDCG@3"),
    ("ndcg5", "nDCG@5"),
    ("p5", "P@5"),
    ("hr10", "HR@10"),
    ("ndcg10", "NDCG@10"),
];

#[derive(Deserialize)]
struct ColdStart {
    users: usize,
    train_only_users: usize,
    items: usize,
    table: Vec<Row>,
    #[serde(default)]
    per_seed: Vec<Value>,
}

#[derive(Deserialize)]
struct Row {
    method: String,
    budget: String,
    metrics: Vec<(String, Stat)>,
}

#[derive(Deserialize)]
struct Stat {
    #[serde(deserialize_with = "number")]
    mean: f64,
    #[serde(deserialize_with = "number")]
    sd: f64,
}

impl Row {
    fn stat(&self, metric: &str) -> Option<&Stat> {
        self.metrics
            .iter()
            .find(|(n, _)| n == metric)
            .map(|(_, s)| s)
    }
}

/// Values in order of first appearance.
fn distinct<'a>(values: impl Iterator<Item = &'a str>) -> Vec<&'a str> {
    let mut out: Vec<&str> = Vec::new();
    for v in values {
        if !out.contains(&v) {
            out.push(v);
        }
    }
    out
}

/// One line per method of `metric` against the numeric budgets, with a ± one sd band.
fn sweep(c: &ColdStart, methods: &[&str], metric: &str, label: &str, lower_better: bool) -> String {
    LinePlot {
        title: format!(
            "{label} against the support budget K ({} is better), mean ± one sd over seeds",
            if lower_better { "lower" } else { "higher" }
        ),
        x: Axis::new("support budget K", "rated items revealed per test user").integer(),
        y: Axis::new(label, "over test users, mean over seeds"),
        series: methods
            .iter()
            .map(|m| {
                let mut s = Series::with_band(
                    *m,
                    c.table.iter().filter(|r| r.method == *m).filter_map(|r| {
                        // Budgets that are not a number ("all") have no place on the K axis.
                        let k = r.budget.parse::<f64>().ok()?;
                        let s = r.stat(metric)?;
                        Some((k, s.mean, s.mean - s.sd, s.mean + s.sd))
                    }),
                );
                s.markers = true;
                s
            })
            .collect(),
    }
    .to_svg()
}

fn render(value: &Value, file: &str) -> Result<Section, ReportError> {
    let c: ColdStart = parse(value, file, KIND.name)?;
    let budgets = distinct(c.table.iter().map(|r| r.budget.as_str()));
    let methods = distinct(c.table.iter().map(|r| r.method.as_str()));
    // The headline budget is the last one swept (`all` when swept): MeLU's protocol.
    let head = budgets.last().copied().unwrap_or_default();
    let mut blocks = vec![Block::Paragraph(format!(
        "MovieLens-100k cold start: {} users (+{} training-only), {} items, {} seeds. The table \
         shows support budget K = {head}; every number is mean ± sd over seeds.",
        c.users,
        c.train_only_users,
        c.items,
        c.per_seed.len()
    ))];
    let metrics: Vec<(&str, &str)> = METRICS
        .iter()
        .copied()
        .filter(|(m, _)| c.table.iter().any(|r| r.stat(m).is_some()))
        .collect();
    blocks.push(Block::Table(Table {
        columns: std::iter::once("method".to_string())
            .chain(metrics.iter().map(|(_, l)| l.to_string()))
            .collect(),
        rows: methods
            .iter()
            .filter_map(|m| c.table.iter().find(|r| r.method == *m && r.budget == head))
            .map(|r| {
                std::iter::once(Cell::text(&r.method))
                    .chain(metrics.iter().map(|(m, _)| match r.stat(m) {
                        Some(s) => Cell::MeanSd {
                            mean: s.mean,
                            sd: s.sd,
                            decimals: 4,
                        },
                        None => Cell::Number(f64::NAN, 0),
                    }))
                    .collect()
            })
            .collect(),
        caption: Some(format!(
            "support budget K = {head}; MAE and RMSE: lower is better; the ranking metrics: \
             higher is better"
        )),
    }));
    if budgets.iter().filter(|b| b.parse::<f64>().is_ok()).count() >= 2 {
        blocks.push(Block::Svg(sweep(&c, &methods, "mae", "MAE", true)));
        blocks.push(Block::Svg(sweep(&c, &methods, "p5", "P@5", false)));
        if budgets.iter().any(|b| b.parse::<f64>().is_err()) {
            blocks.push(Block::Paragraph(
                "Budgets that are not a number (\"all\": the whole support pool) are \
                 in the table, not on the K axis."
                    .into(),
            ));
        }
    }
    Ok(Section {
        title: "Cold-start rating prediction: MovieLens-100k".into(),
        source: Some(file.into()),
        blocks,
    })
}
