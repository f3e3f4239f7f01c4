//! The simulator's calibration (`metarec sim calibrate --json`, `calibration.json` of
//! `metarec demo`): the fitted biases, rates under each yardstick policy, and plots of the
//! simulator against the real purchases (concentration of purchases over items, price
//! quantiles).

use super::has_keys;
use crate::html::{Block, Cell, Section, Table};
use crate::results::{Kind, ReportError, number, parse};
use crate::svg::{Axis, IntervalPlot, IntervalRow, LinePlot, Series};
use serde::Deserialize;
use serde_json::Value;

pub(crate) const KIND: Kind = Kind {
    name: "calibration",
    written_by: "metarec sim calibrate --json, calibration.json of metarec demo",
    detect: |v| has_keys(v, &["yardsticks", "comparisons"]),
    render,
};

#[derive(Deserialize)]
struct Calibration {
    scenario: String,
    items: usize,
    users: usize,
    fitted: Option<Fitted>,
    targets: (f64, f64),
    yardsticks: Vec<Yardstick>,
    comparisons: Vec<Comparison>,
    /// The shop the simulator was fitted to (absent for Online Retail).
    #[serde(default)]
    shop: Option<String>,
    /// What the shop's real facts count (`purchases`, `clicks`...).
    #[serde(default)]
    signal: String,
    /// A shop's CTR by position and purchases per click, real against simulated.
    #[serde(default)]
    impressions: Vec<Comparison>,
}

#[derive(Deserialize)]
struct Fitted {
    click_bias: f64,
    purchase_bias: f64,
    ctr: f64,
    cvr: f64,
}

#[derive(Deserialize)]
struct Yardstick {
    policy: String,
    #[serde(deserialize_with = "number")]
    ctr: f64,
    #[serde(deserialize_with = "number")]
    cvr: f64,
    #[serde(deserialize_with = "number")]
    visit_length: f64,
    #[serde(deserialize_with = "number")]
    visits_per_user: f64,
    #[serde(deserialize_with = "number")]
    purchases_per_user: f64,
    #[serde(deserialize_with = "number")]
    reward_per_user: f64,
}

#[derive(Deserialize)]
struct Comparison {
    what: String,
    #[serde(deserialize_with = "number")]
    real: f64,
    #[serde(deserialize_with = "number")]
    simulated: f64,
}

/// Comparison rows whose name is `prefix NUMBER suffix`, as `(number, real, simulated)`.
fn numbered<'a>(rows: &'a [Comparison], prefix: &'a str, suffix: &'a str) -> Vec<(f64, f64, f64)> {
    rows.iter()
        .filter_map(|c| {
            let x = c.what.strip_prefix(prefix)?.strip_suffix(suffix)?;
            Some((x.trim().parse::<f64>().ok()?, c.real, c.simulated))
        })
        .collect()
}

fn real_vs_sim(
    title: &str,
    labels: (&str, &str),
    x: Axis,
    y: Axis,
    points: &[(f64, f64, f64)],
) -> String {
    let mut real = Series::xy(labels.0, points.iter().map(|p| (p.0, p.1)));
    let mut sim = Series::xy(labels.1, points.iter().map(|p| (p.0, p.2)));
    real.markers = true;
    sim.markers = true;
    LinePlot {
        title: title.into(),
        x,
        y,
        series: vec![real, sim],
    }
    .to_svg()
}

fn render(value: &Value, file: &str) -> Result<Section, ReportError> {
    let c: Calibration = parse(value, file, KIND.name)?;
    let mut blocks = vec![Block::Paragraph(match &c.fitted {
        Some(f) => format!(
            "Scenario `{}` ({} items, {} simulated users per policy). Fitted click bias {:.4} and \
             purchase bias {:.4}: random slates reach CTR {:.4} (target {}) and CVR {:.4} \
             (target {}).",
            c.scenario,
            c.items,
            c.users,
            f.click_bias,
            f.purchase_bias,
            f.ctr,
            c.targets.0,
            f.cvr,
            c.targets.1
        ),
        None => format!(
            "Scenario `{}` ({} items, {} simulated users per policy); biases as configured.",
            c.scenario, c.items, c.users
        ),
    })];
    blocks.push(Block::Table(Table {
        columns: [
            "yardstick policy",
            "CTR (clicks / shown item)",
            "CVR (purchases / click)",
            "slates / visit",
            "visits / user",
            "purchases / user",
            "reward / user",
        ]
        .map(String::from)
        .to_vec(),
        rows: c
            .yardsticks
            .iter()
            .map(|y| {
                vec![
                    Cell::text(&y.policy),
                    Cell::Number(y.ctr, 4),
                    Cell::Number(y.cvr, 4),
                    Cell::Number(y.visit_length, 2),
                    Cell::Number(y.visits_per_user, 2),
                    Cell::Number(y.purchases_per_user, 3),
                    Cell::Number(y.reward_per_user, 3),
                ]
            })
            .collect(),
        caption: None,
    }));
    blocks.push(Block::Svg(
        IntervalPlot {
            title: "Reward per simulated user under the yardstick policies".into(),
            value: Axis::new("reward per user", "reward units").including(0.0),
            rows: c
                .yardsticks
                .iter()
                .map(|y| IntervalRow {
                    label: y.policy.clone(),
                    series: String::new(),
                    value: y.reward_per_user,
                    interval: None,
                })
                .collect(),
            reference: None,
            marks: Vec::new(),
        }
        .to_svg(),
    ));
    let real_label = match &c.shop {
        Some(shop) => format!("real {} ({shop})", c.signal),
        None => "real purchases (Online Retail)".to_owned(),
    };
    let labels = (real_label.as_str(), "simulated organic browsing");
    let shares = numbered(
        &c.comparisons,
        "share of purchases in the top ",
        "% of items",
    );
    if shares.len() >= 2 {
        blocks.push(Block::Svg(real_vs_sim(
            "Concentration: share of purchases going to the most-bought items",
            labels,
            Axis::new("top items by purchases", "% of catalog").including(0.0),
            Axis::new("share of all purchases", "fraction").including(0.0),
            &shares,
        )));
    }
    // Online Retail's prices are in pounds; a shop's carry no currency.
    let (mut prices, mut unit) = (
        numbered(&c.comparisons, "purchase price p", " (GBP)"),
        "GBP",
    );
    if prices.is_empty() {
        (prices, unit) = (numbered(&c.comparisons, "purchase price p", ""), "price");
    }
    if prices.len() >= 2 {
        blocks.push(Block::Svg(real_vs_sim(
            "Prices of purchased items: quantiles, real against simulated",
            labels,
            Axis::new("quantile", "percent"),
            Axis::new("price of a purchased item", unit).including(0.0),
            &prices,
        )));
    }
    let ctr = numbered(&c.impressions, "CTR at position", "");
    if ctr.len() >= 2 {
        blocks.push(Block::Svg(real_vs_sim(
            "Click-through rate by position: the shop's logged rankings against random slates",
            (
                "real (the shop's logged rankings)",
                "simulated (random slates)",
            ),
            Axis::new("position", "1 = top"),
            Axis::new("CTR", "clicks / shown item").including(0.0),
            &ctr,
        )));
    }
    blocks.push(Block::Table(Table {
        columns: ["statistic", "real", "simulated"]
            .map(String::from)
            .to_vec(),
        rows: c
            .comparisons
            .iter()
            .map(|r| {
                vec![
                    Cell::text(&r.what),
                    Cell::Number(r.real, 3),
                    Cell::Number(r.simulated, 3),
                ]
            })
            .collect(),
        caption: Some(format!(
            "{real_label} against organic browsing in the simulator"
        )),
    }));
    if !c.impressions.is_empty() {
        blocks.push(Block::Table(Table {
            columns: ["clicks on shown items", "real", "simulated"]
                .map(String::from)
                .to_vec(),
            rows: c
                .impressions
                .iter()
                .map(|r| {
                    vec![
                        Cell::text(&r.what),
                        Cell::Number(r.real, 4),
                        Cell::Number(r.simulated, 4),
                    ]
                })
                .collect(),
            caption: Some(
                "the shop's logged rankings against random slates in the simulator".into(),
            ),
        }));
    }
    Ok(Section {
        title: format!("Simulator calibration: scenario `{}`", c.scenario),
        source: Some(file.into()),
        blocks,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbered_rows_are_found_by_prefix_and_suffix() {
        let rows = vec![
            Comparison {
                what: "share of purchases in the top 1% of items".into(),
                real: 0.2,
                simulated: 0.1,
            },
            Comparison {
                what: "purchase price p50 (GBP)".into(),
                real: 2.0,
                simulated: 3.0,
            },
            Comparison {
                what: "share of purchases in the top 0.5% of items".into(),
                real: 0.1,
                simulated: 0.05,
            },
        ];
        let s = numbered(&rows, "share of purchases in the top ", "% of items");
        assert_eq!(s, vec![(1.0, 0.2, 0.1), (0.5, 0.1, 0.05)]);
        assert_eq!(
            numbered(&rows, "purchase price p", " (GBP)"),
            vec![(50.0, 2.0, 3.0)]
        );
    }
}
