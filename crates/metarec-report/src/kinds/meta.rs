//! Meta-training of the strategy adjuster (a model's `adjuster.json` from `metarec meta-train`
//! or `metarec demo`): the reward per training user of every prior scale tried, with Thompson
//! sampling and (when the file has them) with the posterior mean, and the choice; or, after
//! offline meta-training on a shop's logged users (`meta-train --shop`), every setting's query
//! log-likelihood against the network alone and the chosen setting's gain on validation users.

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
    /// The gradient adjuster's settings (its step size is the chosen setting).
    #[serde(default)]
    gradient: Option<Gradient>,
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
    /// Present after offline meta-training on a shop's logs.
    #[serde(default)]
    offline: Option<Offline>,
}

#[derive(Deserialize)]
struct Gradient {
    step_size: f64,
}

#[derive(Deserialize)]
struct Offline {
    shop: String,
    support: usize,
    selection_users: usize,
    network: f64,
    tried: Vec<OfflineSetting>,
    validation: Validation,
}

#[derive(Deserialize)]
struct OfflineSetting {
    setting: f64,
    shaped: bool,
    query_log_likelihood: f64,
}

#[derive(Deserialize)]
struct Validation {
    users: usize,
    network: f64,
    adjusted: f64,
    gain: f64,
    low: f64,
    high: f64,
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
    if let Some(offline) = &a.offline {
        return Ok(render_offline(&a, offline, file));
    }
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

/// Offline meta-training on a shop: the settings by query log-likelihood, and the validation
/// users' gain.
fn render_offline(a: &Adjuster, o: &Offline, file: &str) -> Section {
    let chosen_shaped = !a.prior_shape.is_empty();
    let prior = |shaped: bool| match (a.kind.as_str(), shaped) {
        ("gradient", _) => "",
        (_, true) => "learned S",
        (_, false) => "identity",
    };
    let setting_name = if a.kind == "gradient" {
        "step size"
    } else {
        "prior scale tau"
    };
    let v = &o.validation;
    let mut rows = vec![vec![
        Cell::text("network alone"),
        Cell::text(""),
        Cell::Number(o.network, 5),
        Cell::text(""),
        Cell::text(""),
    ]];
    rows.extend(o.tried.iter().map(|t| {
        let is_chosen = t.setting == a.chosen_setting() && t.shaped == chosen_shaped;
        vec![
            Cell::Number(t.setting, 3),
            Cell::text(prior(t.shaped)),
            Cell::Number(t.query_log_likelihood, 5),
            Cell::Number(t.query_log_likelihood - o.network, 5),
            Cell::text(if is_chosen { "chosen" } else { "" }),
        ]
    }));
    Section {
        title: "Offline meta-training of the strategy adjuster".into(),
        source: Some(file.into()),
        blocks: vec![
            Block::Paragraph(format!(
                "Adjuster `{}` meta-trained on the logged users of shop `{}`: each user's \
                 history is a task; the adjuster is updated on the first {} interactions and \
                 judged on the rest by the mean log-likelihood of their clicks per shown item, \
                 against the network alone on the same queries ({} selection users). On {} \
                 validation users who took part in no choice, the chosen setting scores {:.5} \
                 against the network's {:.5}: a gain of {:+.5} (95% interval {:+.5} to {:+.5}).",
                a.kind,
                o.shop,
                o.support,
                o.selection_users,
                v.users,
                v.adjusted,
                v.network,
                v.gain,
                v.low,
                v.high
            )),
            Block::Table(Table {
                columns: [
                    setting_name,
                    "prior covariance",
                    "query log-likelihood",
                    "vs network",
                    "",
                ]
                .map(String::from)
                .to_vec(),
                rows,
                caption: None,
            }),
        ],
    }
}

impl Adjuster {
    /// The chosen setting: the prior scale, or the gradient adjuster's step size.
    fn chosen_setting(&self) -> f64 {
        match &self.gradient {
            Some(g) if self.kind == "gradient" => g.step_size,
            _ => self.config.prior_scale,
        }
    }
}
