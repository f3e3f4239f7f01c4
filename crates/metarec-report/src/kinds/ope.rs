//! Off-policy evaluation on Open Bandit (`metarec ope --data obd ... --json`): every
//! estimator's estimate with its bootstrap 95% interval, effective sample size and, where the
//! evaluated policy's own logs exist, its relative error; and the estimates as error bars against
//! the logging policy's on-policy value (and the evaluated policy's own, when known).

use super::has_keys;
use crate::html::{Block, Cell, Section, Table};
use crate::results::{Kind, ReportError, number, parse};
use crate::svg::{Axis, IntervalPlot, IntervalRow};
use serde::Deserialize;
use serde_json::Value;

pub(crate) const KIND: Kind = Kind {
    name: "ope",
    written_by: "metarec ope --data obd --json",
    detect: |v| has_keys(v, &["estimates", "logging_value", "clipping"]),
    render,
};

#[derive(Deserialize)]
struct Ope {
    policy: String,
    rounds: usize,
    #[serde(default)]
    train_rounds: usize,
    #[serde(deserialize_with = "number")]
    logging_value: f64,
    #[serde(default, deserialize_with = "optional")]
    on_policy_value: Option<f64>,
    estimates: Vec<Estimate>,
    clipping: Clipping,
    #[serde(default)]
    weighted_rewards: Option<usize>,
}

#[derive(Deserialize)]
struct Estimate {
    estimator: String,
    #[serde(deserialize_with = "number")]
    value: f64,
    #[serde(deserialize_with = "number")]
    low: f64,
    #[serde(deserialize_with = "number")]
    high: f64,
    #[serde(default, deserialize_with = "optional")]
    ess: Option<f64>,
}

#[derive(Deserialize)]
struct Clipping {
    clip: Option<f64>,
    clipped: usize,
    #[serde(deserialize_with = "number")]
    max_weight: f64,
}

/// An optional number; `null` is "absent" (DM has no effective sample size, a learned policy no
/// on-policy value).
fn optional<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    Option::<f64>::deserialize(d)
}

/// `|estimate - truth| / truth` in percent; NaN when either is unknown.
fn relative_error(estimate: f64, truth: Option<f64>) -> f64 {
    truth.map_or(f64::NAN, |t| 100.0 * (estimate - t).abs() / t)
}

fn render(value: &Value, file: &str) -> Result<Section, ReportError> {
    let o: Ope = parse(value, file, KIND.name)?;
    let mut intro = format!(
        "Policy `{}` evaluated on {} logged rounds{}. Intervals are bootstrap 95% intervals; \
         the logging policy's own CTR on these rounds is {:.6}.",
        o.policy,
        o.rounds,
        if o.train_rounds > 0 {
            format!(" after training on the first {}", o.train_rounds)
        } else {
            String::new()
        },
        o.logging_value
    );
    match o.on_policy_value {
        Some(t) => intro.push_str(&format!(
            " The evaluated policy's own CTR from its logs is {t:.6}: relative error is \
             |estimate - {t:.6}| / {t:.6}."
        )),
        None => intro.push_str(" The evaluated policy has no logs, so no relative error."),
    }
    intro.push_str(&match o.clipping.clip {
        Some(c) => format!(
            " Weights capped at {c}: {} entries clipped (largest weight {:.2}).",
            o.clipping.clipped, o.clipping.max_weight
        ),
        None => format!(
            " No clipping (largest weight {:.2}).",
            o.clipping.max_weight
        ),
    });
    if let Some(w) = o.weighted_rewards {
        intro.push_str(&format!(
            " The weighted estimators rest on {w} clicked entries with a non-zero weight."
        ));
    }
    let mut blocks = vec![Block::Paragraph(intro)];
    let mut columns = vec![
        "estimator".to_string(),
        "estimate (CTR) [95% interval]".into(),
        "ESS (entries)".into(),
    ];
    if o.on_policy_value.is_some() {
        columns.push("relative error (%)".into());
    }
    blocks.push(Block::Table(Table {
        columns,
        rows: o
            .estimates
            .iter()
            .map(|e| {
                let mut row = vec![
                    Cell::text(&e.estimator),
                    Cell::Interval {
                        mean: e.value,
                        low: e.low,
                        high: e.high,
                        decimals: 6,
                    },
                    Cell::Number(e.ess.unwrap_or(f64::NAN), 0),
                ];
                if o.on_policy_value.is_some() {
                    row.push(Cell::Number(relative_error(e.value, o.on_policy_value), 1));
                }
                row
            })
            .collect(),
        caption: Some(
            "ESS: Kish's effective sample size of the estimator's weights (n/a without weights)"
                .into(),
        ),
    }));
    let mut marks = vec![("logging policy on-policy CTR".to_string(), o.logging_value)];
    if let Some(t) = o.on_policy_value {
        marks.push((format!("{} on-policy CTR", o.policy), t));
    }
    blocks.push(Block::Svg(
        IntervalPlot {
            title: format!(
                "Estimated CTR of `{}`, with bootstrap 95% intervals",
                o.policy
            ),
            value: Axis::new("estimated click-through rate", "clicks / shown item"),
            rows: o
                .estimates
                .iter()
                .map(|e| IntervalRow {
                    label: e.estimator.clone(),
                    series: String::new(),
                    value: e.value,
                    interval: Some((e.low, e.high)),
                })
                .collect(),
            reference: None,
            marks,
        }
        .to_svg(),
    ));
    Ok(Section {
        title: format!("Off-policy evaluation: `{}`", o.policy),
        source: Some(file.into()),
        blocks,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_error_is_a_percentage_of_the_truth() {
        assert!((relative_error(0.0055, Some(0.005)) - 10.0).abs() < 1e-9);
        assert!((relative_error(0.0045, Some(0.005)) - 10.0).abs() < 1e-9);
        assert!(relative_error(0.0045, None).is_nan());
    }
}
