//! Evaluation policies and reward models given as dense arrays, the way Open Bandit Pipeline
//! passes them: `action_dist[round, action, position]`, the probability that the policy shows
//! `action` at `position` in `round`, and `estimated_rewards_by_reg_model[round, action,
//! position]`, a reward model's prediction. Both have shape `(rounds, actions, positions)` in C
//! order.
//!
//! This is how a policy trained outside metarec (in Python, say) is judged by metarec's
//! estimators: its distribution over the logged rounds is computed there and handed over as an
//! array ([`ArrayPolicy`]), optionally with a reward model's predictions ([`ArrayModel`]), in
//! memory or as a NumPy `.npy` file ([`read_npy`]).

use crate::data::LoggedData;
use crate::error::OpeError;
use crate::model::RewardModel;
use crate::policy::EvaluationPolicy;
use std::path::Path;

/// How far a row of an action distribution may sum above one: rounding in the caller's
/// arithmetic (a softmax in float32, say) leaves sums a few ulps off.
const SUM_TOLERANCE: f64 = 1e-6;

/// A dense `(rounds, actions, positions)` array of finite numbers in C order.
#[derive(Debug, Clone, PartialEq)]
pub struct ActionArray {
    rounds: usize,
    actions: usize,
    positions: usize,
    values: Vec<f64>,
}

impl ActionArray {
    /// Wraps `values` of the given shape; `what` names the array in errors. Every value must be
    /// finite and the shape must have no zero dimension.
    pub fn new(what: &'static str, shape: [usize; 3], values: Vec<f64>) -> Result<Self, OpeError> {
        let [rounds, actions, positions] = shape;
        let expected = rounds
            .checked_mul(actions)
            .and_then(|n| n.checked_mul(positions));
        if shape.contains(&0) || expected != Some(values.len()) {
            return Err(OpeError::Config {
                name: what,
                reason: format!(
                    "shape ({rounds}, {actions}, {positions}) does not hold {} values, or has a zero dimension",
                    values.len()
                ),
            });
        }
        if let Some(i) = values.iter().position(|v| !v.is_finite()) {
            let (round, action, position) = (
                i / (actions * positions),
                (i / positions) % actions,
                i % positions,
            );
            return Err(OpeError::Config {
                name: what,
                reason: format!(
                    "[{round}, {action}, {position}] is {}, not a finite number",
                    values[i]
                ),
            });
        }
        Ok(ActionArray {
            rounds,
            actions,
            positions,
            values,
        })
    }

    /// The shape: rounds, actions, positions.
    pub fn shape(&self) -> [usize; 3] {
        [self.rounds, self.actions, self.positions]
    }

    /// The value at `[round, action, position]`.
    #[inline]
    pub fn at(&self, round: usize, action: usize, position: usize) -> f64 {
        self.values[(round * self.actions + action) * self.positions + position]
    }

    /// Checks that the array covers a log of `[rounds, items, positions]`: one row per logged
    /// round, one column per item, and a slot for every logged position.
    fn check_covers(&self, what: &'static str, log: [usize; 3]) -> Result<(), OpeError> {
        let [rounds, items, positions] = log;
        if self.rounds != rounds || self.actions != items || self.positions < positions {
            return Err(OpeError::Config {
                name: what,
                reason: format!(
                    "shape ({}, {}, {}) does not fit the log: it has {rounds} rounds, {items} actions and {positions} positions",
                    self.rounds, self.actions, self.positions,
                ),
            });
        }
        Ok(())
    }
}

/// A log's rounds, items and positions.
fn shape_of(data: &LoggedData) -> [usize; 3] {
    [data.rounds(), data.n_items(), data.n_positions()]
}

/// A policy given by its action distribution over the logged rounds.
#[derive(Debug, Clone, PartialEq)]
pub struct ArrayPolicy {
    name: String,
    dist: ActionArray,
}

impl ArrayPolicy {
    /// A policy from its distribution, which must fit `data` (see [`ActionArray`]): every value
    /// in `[0, 1]`, every `(round, position)` summing to at most one.
    pub fn new(
        name: impl Into<String>,
        dist: ActionArray,
        data: &LoggedData,
    ) -> Result<Self, OpeError> {
        ArrayPolicy::for_shape(name, dist, shape_of(data))
    }

    /// [`ArrayPolicy::new`] for a log of `[rounds, items, positions]` not loaded yet.
    pub fn for_shape(
        name: impl Into<String>,
        dist: ActionArray,
        log: [usize; 3],
    ) -> Result<Self, OpeError> {
        dist.check_covers("action_dist", log)?;
        let [rounds, actions, positions] = dist.shape();
        for round in 0..rounds {
            for position in 0..positions {
                let mut sum = 0.0;
                for action in 0..actions {
                    let p = dist.at(round, action, position);
                    if !(0.0..=1.0).contains(&p) {
                        return Err(OpeError::Config {
                            name: "action_dist",
                            reason: format!(
                                "[{round}, {action}, {position}] is {p}, not a probability"
                            ),
                        });
                    }
                    sum += p;
                }
                if sum > 1.0 + SUM_TOLERANCE {
                    return Err(OpeError::Config {
                        name: "action_dist",
                        reason: format!(
                            "round {round}, position {position}: the probabilities sum to {sum}, more than one"
                        ),
                    });
                }
            }
        }
        Ok(ArrayPolicy {
            name: name.into(),
            dist,
        })
    }
}

impl EvaluationPolicy for ArrayPolicy {
    fn name(&self) -> String {
        self.name.clone()
    }

    fn distribution(&self, _data: &LoggedData, round: usize, position: u32, out: &mut [f64]) {
        for (action, slot) in out.iter_mut().enumerate() {
            *slot = self.dist.at(round, action, position as usize);
        }
    }
}

/// A reward model given by its predictions over the logged rounds.
#[derive(Debug, Clone, PartialEq)]
pub struct ArrayModel {
    q: ActionArray,
}

impl ArrayModel {
    /// A model from its predictions, which must fit `data` (see [`ActionArray`]).
    pub fn new(q: ActionArray, data: &LoggedData) -> Result<Self, OpeError> {
        q.check_covers("estimated_rewards_by_reg_model", shape_of(data))?;
        Ok(ArrayModel { q })
    }
}

impl RewardModel for ArrayModel {
    fn predict(&self, _data: &LoggedData, round: usize, item: u32, position: u32) -> f64 {
        self.q.at(round, item as usize, position as usize)
    }
}

/// The `.npy` magic string, before the format's major and minor version bytes.
const NPY_MAGIC: &[u8] = b"\x93NUMPY";

/// Reads a three-dimensional array of float64 (`<f8`) or float32 (`<f4`) numbers in C order
/// from a NumPy `.npy` file (format versions 1 to 3), as `np.save` writes it; `what` names the
/// array in later errors. The format is a magic string, a header that is a Python dictionary
/// literal (`descr`, `fortran_order`, `shape`) and the raw values, so the header is parsed here
/// rather than by a general Python-literal parser.
pub fn read_npy(what: &'static str, path: &Path) -> Result<ActionArray, OpeError> {
    let bad = |reason: String| OpeError::Npy {
        path: path.to_owned(),
        reason,
    };
    let bytes = std::fs::read(path).map_err(|e| bad(format!("cannot read it: {e}")))?;
    if bytes.len() < 10 || &bytes[..6] != NPY_MAGIC {
        return Err(bad(
            "not a NumPy .npy file (no \\x93NUMPY magic); write it with np.save".into(),
        ));
    }
    let (header_len, start) = match bytes[6] {
        1 => (
            usize::from(u16::from_le_bytes([bytes[8], bytes[9]])),
            10usize,
        ),
        2 | 3 if bytes.len() >= 12 => (
            u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
            12,
        ),
        v => return Err(bad(format!("format version {v} is not one of 1, 2, 3"))),
    };
    let header = bytes
        .get(start..start.saturating_add(header_len))
        .ok_or_else(|| bad("the header runs past the end of the file".into()))?;
    let header = std::str::from_utf8(header).map_err(|_| bad("the header is not text".into()))?;
    let descr = header_value(header, "descr")
        .ok_or_else(|| bad(format!("the header has no 'descr': {header}")))?;
    let width = match descr.trim_matches(|c| c == '\'' || c == '"') {
        "<f8" => 8,
        "<f4" => 4,
        other => {
            return Err(bad(format!(
                "values of type {other}; expected float64 (<f8) or float32 (<f4)"
            )));
        }
    };
    match header_value(header, "fortran_order") {
        Some("False") => {}
        Some("True") => {
            return Err(bad(
                "the array is in Fortran order; save np.ascontiguousarray(a) instead".into(),
            ));
        }
        _ => return Err(bad(format!("the header has no fortran_order: {header}"))),
    }
    let shape =
        header_shape(header).ok_or_else(|| bad(format!("no readable shape in {header}")))?;
    let shape: [usize; 3] = shape.try_into().map_err(|s: Vec<usize>| {
        bad(format!(
            "shape {s:?} has {} dimensions; expected (rounds, actions, positions)",
            s.len()
        ))
    })?;
    let data = &bytes[start + header_len..];
    let count = shape.iter().try_fold(1usize, |n, &d| n.checked_mul(d));
    if count.and_then(|c| c.checked_mul(width)) != Some(data.len()) {
        return Err(bad(format!(
            "shape {shape:?} of {width}-byte values needs {} bytes of data, the file has {}",
            count.map_or_else(|| "too many".to_owned(), |c| (c * width).to_string()),
            data.len()
        )));
    }
    let values = if width == 8 {
        data.chunks_exact(8)
            .map(|b| f64::from_le_bytes(b.try_into().unwrap_or([0; 8])))
            .collect()
    } else {
        data.chunks_exact(4)
            .map(|b| f64::from(f32::from_le_bytes(b.try_into().unwrap_or([0; 4]))))
            .collect()
    };
    ActionArray::new(what, shape, values)
}

/// The text of `key`'s value in a `.npy` header dictionary, up to the next comma outside
/// parentheses (enough for `descr` and `fortran_order`, which hold no commas).
fn header_value<'h>(header: &'h str, key: &str) -> Option<&'h str> {
    let at = header
        .find(&format!("'{key}'"))
        .or_else(|| header.find(&format!("\"{key}\"")))?;
    let rest = header[at + key.len() + 2..]
        .trim_start()
        .strip_prefix(':')?;
    let end = rest.find([',', '}']).unwrap_or(rest.len());
    Some(rest[..end].trim())
}

/// The `shape` tuple of a `.npy` header: `(10000, 80, 3)`, `(5,)` or `()`.
fn header_shape(header: &str) -> Option<Vec<usize>> {
    let at = header
        .find("'shape'")
        .or_else(|| header.find("\"shape\""))?;
    let rest = &header[at + 7..];
    let open = rest.find('(')?;
    let close = rest[open..].find(')')? + open;
    rest[open + 1..close]
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.trim_end_matches('L').parse().ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::RawEntry;
    use crate::estimator::{Bootstrap, Dr, Estimator, Ipw, Prepared, SnIpw, evaluate};

    /// Three rounds over two actions and one position.
    fn log() -> LoggedData {
        let mut data = LoggedData::new(2, 1);
        for (row, (item, p, r)) in [(0u32, 0.5, 1.0), (1, 0.5, 0.0), (1, 0.25, 1.0)]
            .into_iter()
            .enumerate()
        {
            let entry = RawEntry {
                item,
                position: 0,
                propensity: Some(p),
                reward: r,
            };
            data.push_round(row + 1, None, &[entry]).unwrap();
        }
        data
    }

    #[test]
    fn estimates_follow_the_formulas() {
        let data = log();
        // pi(action 1) = 0.8 in every round.
        let dist = ActionArray::new("action_dist", [3, 2, 1], [0.2, 0.8].repeat(3)).unwrap();
        let policy = ArrayPolicy::new("given", dist, &data).unwrap();
        let q = ActionArray::new("q", [3, 2, 1], [0.5, 0.25].repeat(3)).unwrap();
        let model = ArrayModel::new(q, &data).unwrap();
        let prepared = Prepared::new(&data, &policy, &model, None).unwrap();
        let estimators: [&dyn Estimator; 3] = [&Ipw, &SnIpw, &Dr];
        let bootstrap = Bootstrap {
            resamples: 0,
            seed: 1,
            threads: 1,
        };
        let got = evaluate(&prepared, &estimators, &bootstrap).unwrap();
        // Weights: 0.2 / 0.5, 0.8 / 0.5, 0.8 / 0.25.
        let w = [0.4, 1.6, 3.2];
        let r = [1.0, 0.0, 1.0];
        let ipw = (w[0] * r[0] + w[1] * r[1] + w[2] * r[2]) / 3.0;
        let snipw = (w[0] * r[0] + w[1] * r[1] + w[2] * r[2]) / (w[0] + w[1] + w[2]);
        let dm = 0.2 * 0.5 + 0.8 * 0.25;
        let q_logged = [0.5, 0.25, 0.25];
        let dr = (0..3)
            .map(|i| dm + w[i] * (r[i] - q_logged[i]))
            .sum::<f64>()
            / 3.0;
        for (estimate, want) in got.iter().zip([ipw, snipw, dr]) {
            assert!(
                (estimate.value - want).abs() < 1e-12,
                "{}: {} against {want}",
                estimate.estimator,
                estimate.value
            );
        }
    }

    /// An `.npy` file as `np.save` writes it (format 1.0, header padded to 64 bytes).
    fn npy(descr: &str, fortran: bool, shape: &str, data: &[u8]) -> Vec<u8> {
        let mut header = format!(
            "{{'descr': '{descr}', 'fortran_order': {}, 'shape': {shape}, }}",
            if fortran { "True" } else { "False" }
        );
        while (10 + header.len() + 1) % 64 != 0 {
            header.push(' ');
        }
        header.push('\n');
        let mut out = NPY_MAGIC.to_vec();
        out.extend([1, 0]);
        out.extend((header.len() as u16).to_le_bytes());
        out.extend(header.as_bytes());
        out.extend(data);
        out
    }

    #[test]
    fn npy_files_are_read_or_refused_with_a_reason() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.npy");
        let values = [0.25f64, 0.75, 0.5, 0.5];
        let data: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        std::fs::write(&path, npy("<f8", false, "(2, 2, 1)", &data)).unwrap();
        let a = read_npy("action_dist", &path).unwrap();
        assert_eq!(a.shape(), [2, 2, 1]);
        assert_eq!(a.at(1, 0, 0), 0.5);
        assert_eq!(a.at(0, 1, 0), 0.75);
        let data32: Vec<u8> = values
            .iter()
            .flat_map(|v| (*v as f32).to_le_bytes())
            .collect();
        std::fs::write(&path, npy("<f4", false, "(2, 2, 1)", &data32)).unwrap();
        assert_eq!(read_npy("action_dist", &path).unwrap().at(0, 1, 0), 0.75);
        let cases: [(Vec<u8>, &str); 5] = [
            (npy("<f8", true, "(2, 2, 1)", &data), "Fortran order"),
            (npy("<i8", false, "(2, 2, 1)", &data), "<i8"),
            (npy("<f8", false, "(4,)", &data), "has 1 dimensions"),
            (
                npy("<f8", false, "(2, 2, 2)", &data),
                "needs 64 bytes of data, the file has 32",
            ),
            (b"PK\x03\x04 a zip file".to_vec(), "not a NumPy .npy file"),
        ];
        for (bytes, want) in cases {
            std::fs::write(&path, bytes).unwrap();
            let err = read_npy("action_dist", &path).unwrap_err().to_string();
            assert!(err.contains(want) && err.contains("a.npy"), "{err}");
        }
        let missing = read_npy("action_dist", &dir.path().join("none.npy")).unwrap_err();
        assert!(missing.to_string().contains("none.npy"), "{missing}");
    }

    #[test]
    fn bad_arrays_are_errors_that_say_where() {
        let data = log();
        let wrong_len = ActionArray::new("action_dist", [3, 2, 1], vec![0.5; 5]).unwrap_err();
        assert!(
            wrong_len.to_string().contains("does not hold 5 values"),
            "{wrong_len}"
        );
        let mut nan = vec![0.5; 6];
        nan[3] = f64::NAN;
        let err = ActionArray::new("action_dist", [3, 2, 1], nan).unwrap_err();
        assert!(err.to_string().contains("[1, 1, 0] is NaN"), "{err}");
        let too_much = ActionArray::new("action_dist", [3, 2, 1], vec![0.6; 6]).unwrap();
        let err = ArrayPolicy::new("p", too_much, &data).unwrap_err();
        assert!(err.to_string().contains("round 0, position 0"), "{err}");
        let negative = ActionArray::new("action_dist", [3, 2, 1], vec![-0.1; 6]).unwrap();
        let err = ArrayPolicy::new("p", negative, &data).unwrap_err();
        assert!(err.to_string().contains("not a probability"), "{err}");
        let short = ActionArray::new("action_dist", [2, 2, 1], vec![0.5; 4]).unwrap();
        let err = ArrayPolicy::new("p", short, &data).unwrap_err();
        assert!(err.to_string().contains("it has 3 rounds"), "{err}");
    }
}
