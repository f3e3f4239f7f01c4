//! Meta-training of the strategy adjuster (a model's `adjuster.json` from `metarec meta-train`
//! or `metarec demo`): the reward per training user of every prior scale tried, with Thompson
//! sampling and (when the file has them) with the posterior mean, and the choice.

use super::has_keys;
use crate::html::{Block, Cell, Section, Table};
use crate::results::{Kind, ReportError, parse};
use crate::svg::{Axis, IntervalPlot, IntervalRow};
use serde::Deserialize;
use serde_json::Value;

pub(crate) const KIND: Kind = Kind {
    name: "meta-training",
    written_by: "adjuster.json of a model from metarec meta-train or metarec demo",
    detect: |v| has_keys(v, &["grid", "config"]) && v["config"].get("prior_scale").is_some(),
    render,
};

#[derive(Deserialize)]
struct Adjuster {
    #[serde(default)]
    kind: String,
    config: Config,
    grid: Vec<(f64, f64)>,
    /// Absent from files written before meta-training compared the two ways of deciding.
    #[serde(default)]
    mean_grid: Vec<(f64, f64)>,
    /// Settings tried with the learned prior shape: (prior scale, Thompson sampling, reward).
    #[serde(default)]
    shaped_grid: Vec<(f64, bool, f64)>,
    /// The chosen setting's learned prior shape; empty for the identity.
    #[serde(default)]
    prior_shape: Vec<f64>,
    #[serde(default)]
    users: usize,
}

#[derive(Deserialize)]
struct Config {
    prior_scale: f64,
    #[serde(default = "yes")]
    thompson: bool,
}

fn yes() -> bool {
    true
}

const THOMPSON: &str = "Thompson sampling";
const MEAN: &str = "posterior mean";

fn render(value: &Value, file: &str) -> Result<Section, ReportError> {
    let a: Adjuster = parse(value, file, KIND.name)?;
    let chosen = (
        a.config.prior_scale,
        a.config.thompson,
        !a.prior_shape.is_empty(),
    );
    // Every setting tried: (prior scale, decided by Thompson sampling, learned prior shape,
    // reward per user).
    let tried: Vec<(f64, bool, bool, f64)> = a
        .grid
        .iter()
        .map(|&(tau, r)| (tau, true, false, r))
        .chain(a.mean_grid.iter().map(|&(tau, r)| (tau, false, false, r)))
        .chain(a.shaped_grid.iter().map(|&(tau, t, r)| (tau, t, true, r)))
        .collect();
    let how = |thompson: bool| if thompson { THOMPSON } else { MEAN };
    let shape = |shaped: bool| if shaped { "learned S" } else { "identity" };
    let blocks = vec![
        Block::Paragraph(format!(
            "Adjuster `{}`: each setting played the same {} training users; the one with the \
             highest reward per user, tau = {} with {} and prior covariance tau^2 x {}, was kept. \
             The learned shape S is the second moment of training users' adapted corrections.",
            a.kind,
            a.users,
            chosen.0,
            how(chosen.1),
            shape(chosen.2)
        )),
        Block::Table(Table {
            columns: [
                "prior scale tau",
                "prior covariance",
                "decisions",
                "reward / training user",
                "",
            ]
            .map(String::from)
            .to_vec(),
            rows: tried
                .iter()
                .map(|&(tau, thompson, shaped, r)| {
                    vec![
                        Cell::Number(tau, 3),
                        Cell::text(format!("tau^2 x {}", shape(shaped))),
                        Cell::text(how(thompson)),
                        Cell::Number(r, 3),
                        Cell::text(if (tau, thompson, shaped) == chosen {
                            "chosen"
                        } else {
                            ""
                        }),
                    ]
                })
                .collect(),
            caption: None,
        }),
        Block::Svg(
            IntervalPlot {
                title: "Meta-training: reward per training user by prior scale".into(),
                value: Axis::new("reward per training user", "reward units"),
                rows: tried
                    .iter()
                    .map(|&(tau, thompson, shaped, r)| IntervalRow {
                        label: format!(
                            "tau = {tau}{}",
                            if tau == chosen.0 { " (chosen)" } else { "" }
                        ),
                        series: format!("{}, {}", shape(shaped), how(thompson)),
                        value: r,
                        interval: None,
                    })
                    .collect(),
                reference: None,
                marks: Vec::new(),
            }
            .to_svg(),
        ),
    ];
    Ok(Section {
        title: "Meta-training of the strategy adjuster".into(),
        source: Some(file.into()),
        blocks,
    })
}
