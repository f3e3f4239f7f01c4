//! metarec's off-policy estimators on numpy arrays in Open Bandit Pipeline's shapes: a policy
//! trained anywhere is judged from its action distribution over the logged rounds.

use crate::value_error;
use metarec_ope::{
    ActionArray, ArrayModel, ArrayPolicy, Bootstrap, Dm, Dr, DrOs, Estimator, Ipw, LoggedData,
    Prepared, PropensityFloor, RawEntry, RewardModel, SnDr, SnIpw, SwitchDr, evaluate,
};
use numpy::{PyReadonlyArray1, PyReadonlyArray3, PyUntypedArrayMethods};
use pyo3::prelude::*;
use pyo3::types::PyDict;

/// A reward model that predicts nothing, for the estimators that use none.
struct NoModel;

impl RewardModel for NoModel {
    fn predict(&self, _: &LoggedData, _: usize, _: u32, _: u32) -> f64 {
        0.0
    }
}

/// An estimator by its Open Bandit Pipeline name.
fn estimator(name: &str, tau: f64, lambda: f64) -> Result<Box<dyn Estimator>, String> {
    Ok(match name {
        "dm" => Box::new(Dm),
        "ipw" => Box::new(Ipw),
        "snipw" => Box::new(SnIpw),
        "dr" => Box::new(Dr),
        "sndr" => Box::new(SnDr),
        "switch-dr" => Box::new(SwitchDr { tau }),
        "dr-os" => Box::new(DrOs { lambda }),
        other => {
            return Err(format!(
                "unknown estimator `{other}`; expected dm, ipw, snipw, dr, sndr, switch-dr or dr-os"
            ));
        }
    })
}

/// The estimates of the named estimators (Open Bandit Pipeline's names: `dm`, `ipw`, `snipw`,
/// `dr`, `sndr`, `switch-dr`, `dr-os`) for the policy whose action distribution is
/// `action_dist`, on one logged entry per round. Returns, per estimator, `{"value", "low",
/// "high", "std_error", "ess"}` (the interval is a Poisson bootstrap with `resamples` draws from
/// `seed`; without resamples it is the value itself).
#[pyfunction]
#[pyo3(signature = (reward, action, position, pscore, action_dist, estimated_rewards_by_reg_model = None, *, estimators, clip = None, tau = 1.0, lambda_ = 1.0, resamples = 0, seed = 1, propensity_floor = 1e-6))]
#[allow(clippy::too_many_arguments)]
pub fn estimate<'py>(
    py: Python<'py>,
    reward: PyReadonlyArray1<'py, f64>,
    action: PyReadonlyArray1<'py, i64>,
    position: PyReadonlyArray1<'py, i64>,
    pscore: PyReadonlyArray1<'py, f64>,
    action_dist: PyReadonlyArray3<'py, f64>,
    estimated_rewards_by_reg_model: Option<PyReadonlyArray3<'py, f64>>,
    estimators: Vec<String>,
    clip: Option<f64>,
    tau: f64,
    lambda_: f64,
    resamples: usize,
    seed: u64,
    propensity_floor: f64,
) -> PyResult<Bound<'py, PyDict>> {
    let n = reward.as_array().len();
    for (what, len) in [
        ("action", action.as_array().len()),
        ("position", position.as_array().len()),
        ("pscore", pscore.as_array().len()),
    ] {
        if len != n {
            return Err(value_error(format!(
                "{what} has {len} rounds, reward has {n}"
            )));
        }
    }
    let dims = action_dist.shape();
    let (rounds, actions, positions) = (dims[0], dims[1], dims[2]);
    let (reward, action, position, pscore) = (
        reward.as_array(),
        action.as_array(),
        position.as_array(),
        pscore.as_array(),
    );
    let floor = PropensityFloor::new(propensity_floor, false).map_err(value_error)?;
    let mut data = LoggedData::with_floor(actions, positions, floor);
    for i in 0..n {
        let (a, k) = (action[i], position[i]);
        if a < 0 || k < 0 {
            return Err(value_error(format!(
                "round {i}: action {a} or position {k} is negative"
            )));
        }
        let entry = RawEntry {
            item: u32::try_from(a).map_err(value_error)?,
            position: u32::try_from(k).map_err(value_error)?,
            propensity: Some(pscore[i]),
            reward: reward[i],
        };
        data.push_round(i + 1, None, &[entry])
            .map_err(|e| value_error(format!("{e} (rows count from 1)")))?;
    }
    if n == 0 {
        return Err(value_error("no rounds"));
    }
    let values = |a: &PyReadonlyArray3<'py, f64>| a.as_array().iter().copied().collect::<Vec<_>>();
    let dist = ActionArray::new(
        "action_dist",
        [rounds, actions, positions],
        values(&action_dist),
    )
    .map_err(value_error)?;
    let policy = ArrayPolicy::new("action_dist", dist, &data).map_err(value_error)?;
    let model: Box<dyn RewardModel> = match &estimated_rewards_by_reg_model {
        Some(q) => {
            let s = q.shape();
            let q = ActionArray::new(
                "estimated_rewards_by_reg_model",
                [s[0], s[1], s[2]],
                values(q),
            )
            .map_err(value_error)?;
            Box::new(ArrayModel::new(q, &data).map_err(value_error)?)
        }
        None => Box::new(NoModel),
    };
    let chosen = estimators
        .iter()
        .map(|name| estimator(name, tau, lambda_))
        .collect::<Result<Vec<_>, _>>()
        .map_err(value_error)?;
    if chosen.is_empty() {
        return Err(value_error("no estimators named"));
    }
    if estimated_rewards_by_reg_model.is_none() {
        if let Some(name) = estimators
            .iter()
            .zip(&chosen)
            .find_map(|(name, e)| e.uses_model().then_some(name))
        {
            return Err(value_error(format!(
                "{name} needs estimated_rewards_by_reg_model"
            )));
        }
    }
    let estimates = py
        .detach(|| {
            let prepared = Prepared::new(&data, &policy, model.as_ref(), clip)?;
            let refs: Vec<&dyn Estimator> = chosen.iter().map(|e| e.as_ref()).collect();
            evaluate(
                &prepared,
                &refs,
                &Bootstrap {
                    resamples,
                    seed,
                    threads: 1,
                },
            )
        })
        .map_err(value_error)?;
    let out = PyDict::new(py);
    for (name, e) in estimators.iter().zip(estimates) {
        let d = PyDict::new(py);
        d.set_item("value", e.value)?;
        d.set_item("low", e.low)?;
        d.set_item("high", e.high)?;
        d.set_item("std_error", e.std_error)?;
        d.set_item("ess", e.ess)?;
        out.set_item(name, d)?;
    }
    Ok(out)
}
