//! Meta-training of the strategy adjuster (a model's `adjuster.json` from `metarec meta-train`
//! or `metarec demo`): the reward per training user of every prior scale tried, and the choice.

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
    #[serde(default)]
    users: usize,
}

#[derive(Deserialize)]
struct Config {
    prior_scale: f64,
}

fn render(value: &Value, file: &str) -> Result<Section, ReportError> {
    let a: Adjuster = parse(value, file, KIND.name)?;
    let chosen = a.config.prior_scale;
    let blocks = vec![
        Block::Paragraph(format!(
            "Adjuster `{}`: each prior scale tau played {} training users; the scale with the \
             highest reward per user, tau = {chosen}, was kept.",
            a.kind, a.users
        )),
        Block::Table(Table {
            columns: ["prior scale tau", "reward / training user", ""]
                .map(String::from)
                .to_vec(),
            rows: a
                .grid
                .iter()
                .map(|(tau, r)| {
                    vec![
                        Cell::Number(*tau, 3),
                        Cell::Number(*r, 3),
                        Cell::text(if *tau == chosen { "chosen" } else { "" }),
                    ]
                })
                .collect(),
            caption: None,
        }),
        Block::Svg(
            IntervalPlot {
                title: "Meta-training: reward per training user by prior scale".into(),
                value: Axis::new("reward per training user", "reward units"),
                rows: a
                    .grid
                    .iter()
                    .map(|(tau, r)| IntervalRow {
                        label: format!(
                            "tau = {tau}{}",
                            if *tau == chosen { " (chosen)" } else { "" }
                        ),
                        series: String::new(),
                        value: *r,
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
