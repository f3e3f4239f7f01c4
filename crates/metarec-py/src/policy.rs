//! [`PyPolicy`]: any metarec policy by name (the baselines, and model bundles as `neural:DIR`,
//! `neural-greedy:DIR`, `neural-static:DIR`, `adjusted:DIR`) for a simulator's catalog,
//! deciding and learning from Python one context at a time or a whole [`VecEnv`] at once.

use crate::context::PyContext;
use crate::sim::{Simulator, VecEnv};
use crate::value_error;
use metarec_core::{
    Context, Decision, Feedback, Interaction, ItemId, Policy, Rng, Slate, decision_from_choice,
    rng_for,
};
use metarec_eval::PolicySpec;
use numpy::{PyArray1, PyArrayMethods, PyReadonlyArray2, PyUntypedArrayMethods};
use pyo3::prelude::*;
use std::sync::Arc;

/// A metarec policy. Yardsticks that read the simulator's hidden state (the oracle, the
/// planner, the informed policy) are not policies in this sense; `metarec.arena` plays them.
#[pyclass(module = "metarec._metarec", name = "Policy", unsendable)]
pub struct PyPolicy {
    name: String,
    policy: Box<dyn Policy>,
    rng: Rng,
    slate_size: usize,
    n_items: usize,
    decisions: u64,
    /// The user each slot of the last batch belonged to, to tell the policy when a new user
    /// starts in a slot.
    slot_users: Vec<Option<String>>,
    /// The contexts and decisions of the last [`PyPolicy::decide_batch`], waiting for their
    /// feedback.
    pending: Vec<(Context, Decision)>,
}

impl PyPolicy {
    /// Decides in `context`, as a checked decision.
    fn decide_in(&mut self, context: &Context, k: usize) -> PyResult<Decision> {
        let choice = self.policy.decide(context, k, &mut self.rng);
        self.decisions += 1;
        decision_from_choice(
            choice,
            format!("py-{}", self.decisions).as_str().into(),
            &self.name,
            self.policy.model_version(),
        )
        .map_err(|e| value_error(format!("policy {} decided no valid slate: {e}", self.name)))
    }
}

/// Feedback for a decision from per-position arrays of its length.
fn feedback(clicks: Vec<bool>, purchases: Vec<bool>, revenue: Vec<f64>) -> PyResult<Feedback> {
    let f = Feedback {
        clicks,
        purchases,
        revenue,
    };
    f.validate().map_err(value_error)?;
    Ok(f)
}

#[pymethods]
impl PyPolicy {
    /// The policy `name` (see `metarec.policy_names()`) for `simulator`'s catalog and objective;
    /// `seed` seeds its decisions.
    #[new]
    #[pyo3(signature = (name, simulator, *, seed = 0))]
    fn new(name: &str, simulator: &Simulator, seed: u64) -> PyResult<Self> {
        let scenario = Arc::clone(&simulator.scenario);
        let mut spec = PolicySpec::parse(name).map_err(value_error)?;
        spec.load(&mut Vec::new()).map_err(value_error)?;
        spec.check_fits(&scenario).map_err(value_error)?;
        let catalog = &scenario.world.catalog;
        let policy = spec
            .build_for_catalog(
                catalog,
                &format!("scenario `{}`", scenario.config.name),
                &scenario.config.reward,
                seed,
            )
            .map_err(value_error)?;
        Ok(PyPolicy {
            name: name.to_owned(),
            policy,
            rng: rng_for(seed, 0),
            slate_size: scenario.config.choice.slate_size,
            n_items: catalog.len(),
            decisions: 0,
            slot_users: Vec::new(),
            pending: Vec::new(),
        })
    }

    /// The policy's name.
    #[getter]
    fn name(&self) -> String {
        self.name.clone()
    }

    /// Tells the policy that a new user starts (per-user policies reset what they knew).
    fn start_user(&mut self, context: &PyContext) {
        self.policy.start_user(&context.inner);
    }

    /// A slate of `k` items (default: the scenario's slate size) for `context`: the item ids,
    /// position 0 first, and the probability of each item at its position.
    #[pyo3(signature = (context, k = None))]
    fn decide(&mut self, context: &PyContext, k: Option<usize>) -> PyResult<(Vec<u32>, Vec<f64>)> {
        let d = self.decide_in(&context.inner, k.unwrap_or(self.slate_size))?;
        Ok((
            d.slate.items().iter().map(|i| i.0).collect(),
            d.propensities,
        ))
    }

    /// Learns from the feedback to a slate shown in `context`: per position, whether it was
    /// clicked, bought, and the revenue.
    #[pyo3(signature = (context, slate, propensities, clicks, purchases, revenue))]
    fn observe(
        &mut self,
        context: &PyContext,
        slate: Vec<u32>,
        propensities: Vec<f64>,
        clicks: Vec<bool>,
        purchases: Vec<bool>,
        revenue: Vec<f64>,
    ) -> PyResult<()> {
        if let Some(&bad) = slate.iter().find(|&&i| i as usize >= self.n_items) {
            return Err(value_error(format!(
                "slate: item {bad} is not an item id (0 to {})",
                self.n_items - 1
            )));
        }
        let decision = Decision {
            event_id: "py".into(),
            slate: Slate::new(slate.into_iter().map(ItemId).collect()).map_err(value_error)?,
            propensities,
            slate_propensity: None,
            positions: None,
            policy_id: self.name.clone(),
            model_version: self.policy.model_version(),
        };
        let f = feedback(clicks, purchases, revenue)?;
        let interaction =
            Interaction::new(context.inner.clone(), decision, f).map_err(value_error)?;
        self.policy.observe(&interaction);
        Ok(())
    }

    /// Decides for every slot of `env`: returns `(slates, propensities)`, each of shape
    /// `(len(env), k)`. A slot whose user changed since the last batch starts a new user first.
    /// The decisions wait for [`PyPolicy::observe_batch`].
    #[pyo3(signature = (env, k = None))]
    fn decide_batch<'py>(
        &mut self,
        py: Python<'py>,
        env: &VecEnv,
        k: Option<usize>,
    ) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyAny>)> {
        let k = k.unwrap_or(self.slate_size);
        if k == 0 || k > self.n_items {
            return Err(value_error(format!(
                "k is {k}; it must be 1 to {}",
                self.n_items
            )));
        }
        let n = env.len();
        self.slot_users.resize(n, None);
        self.pending.clear();
        let mut slates = Vec::with_capacity(n * k);
        let mut props = Vec::with_capacity(n * k);
        for i in 0..n {
            let context = env.slot_context(i)?;
            if self.slot_users[i].as_deref() != Some(context.user.0.as_str()) {
                self.policy.start_user(&context);
                self.slot_users[i] = Some(context.user.0.clone());
            }
            let d = self.decide_in(&context, k)?;
            if d.slate.len() != k {
                return Err(value_error(format!(
                    "policy {} chose {} items for a slate of {k}",
                    self.name,
                    d.slate.len()
                )));
            }
            slates.extend(d.slate.items().iter().map(|i| i64::from(i.0)));
            props.extend(d.propensities.iter().copied());
            self.pending.push((context, d));
        }
        Ok((
            PyArray1::from_vec(py, slates).reshape([n, k])?.into_any(),
            PyArray1::from_vec(py, props).reshape([n, k])?.into_any(),
        ))
    }

    /// Learns from the feedback to the last [`PyPolicy::decide_batch`]'s slates (the arrays
    /// `VecEnv.step` returned).
    fn observe_batch(
        &mut self,
        clicks: PyReadonlyArray2<'_, bool>,
        purchases: PyReadonlyArray2<'_, bool>,
        revenue: PyReadonlyArray2<'_, f64>,
    ) -> PyResult<()> {
        let pending = std::mem::take(&mut self.pending);
        let shape = clicks.shape().to_vec();
        if pending.is_empty() || shape[0] != pending.len() {
            return Err(value_error(format!(
                "feedback for {} slates, but {} decisions wait for it (call decide_batch first)",
                shape[0],
                pending.len()
            )));
        }
        if purchases.shape() != shape || revenue.shape() != shape {
            return Err(value_error(
                "clicks, purchases and revenue must have the same shape",
            ));
        }
        let (c, p, r) = (clicks.as_array(), purchases.as_array(), revenue.as_array());
        for (i, (context, decision)) in pending.into_iter().enumerate() {
            let k = decision.slate.len();
            if shape[1] != k {
                return Err(value_error(format!(
                    "feedback has {} positions for slates of {k}",
                    shape[1]
                )));
            }
            let f = feedback(
                (0..k).map(|j| c[[i, j]]).collect(),
                (0..k).map(|j| p[[i, j]]).collect(),
                (0..k).map(|j| r[[i, j]]).collect(),
            )?;
            let interaction = Interaction::new(context, decision, f).map_err(value_error)?;
            self.policy.observe(&interaction);
        }
        Ok(())
    }
}
