//! [`PyContext`]: what a policy knows when asked for a slate, as a Python object.

use crate::value_error;
use metarec_core::{Context, ItemId, PastEvent, SessionState, UserKey};
use pyo3::prelude::*;

/// The observable situation of a slate request: the user's key, group tokens and numeric
/// features, the session so far (the latest `(item, click, purchase)` events, oldest first) and
/// the candidate items (empty: the whole catalog).
#[pyclass(module = "metarec._metarec", name = "Context", frozen, eq)]
#[derive(Clone, PartialEq)]
pub struct PyContext {
    pub(crate) inner: Context,
}

impl From<Context> for PyContext {
    fn from(inner: Context) -> Self {
        PyContext { inner }
    }
}

#[pymethods]
impl PyContext {
    /// A context built by hand, for a shop's own requests: `history` holds `(item, click,
    /// purchase)` triples, oldest first; items are ids of the simulator's (or model's) catalog.
    /// `visit_events`, when given, says how many of the history's last events this visit
    /// showed (the session flags mark those); `None` leaves it to the policy's recent window.
    #[new]
    #[pyo3(signature = (user, *, tokens = Vec::new(), features = Vec::new(), history = Vec::new(), session = 0, step = 0, candidates = Vec::new(), visit_events = None))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        user: String,
        tokens: Vec<String>,
        features: Vec<f32>,
        history: Vec<(u32, bool, bool)>,
        session: u32,
        step: u32,
        candidates: Vec<u32>,
        visit_events: Option<u32>,
    ) -> PyResult<Self> {
        if let Some(i) = features.iter().position(|f| !f.is_finite()) {
            return Err(value_error(format!(
                "features[{i}] is {}, not a finite number",
                features[i]
            )));
        }
        Ok(PyContext {
            inner: Context {
                user: UserKey(user),
                timestamp_ms: None,
                features,
                tokens,
                session: SessionState {
                    session,
                    step,
                    history: history
                        .into_iter()
                        .map(|(item, click, purchase)| PastEvent {
                            item: ItemId(item),
                            click,
                            purchase,
                        })
                        .collect(),
                    visit_events,
                },
                candidates: candidates.into_iter().map(ItemId).collect(),
            },
        })
    }

    /// The user's key.
    #[getter]
    fn user(&self) -> String {
        self.inner.user.0.clone()
    }

    /// Categorical features as `name=value` tokens.
    #[getter]
    fn tokens(&self) -> Vec<String> {
        self.inner.tokens.clone()
    }

    /// Dense numeric user features.
    #[getter]
    fn features(&self) -> Vec<f32> {
        self.inner.features.clone()
    }

    /// Earlier sessions (visits) of this user.
    #[getter]
    fn session(&self) -> u32 {
        self.inner.session.session
    }

    /// Slates already shown in this session.
    #[getter]
    fn step(&self) -> u32 {
        self.inner.session.step
    }

    /// How many of the history's last events this visit showed (`None`: not said).
    #[getter]
    fn visit_events(&self) -> Option<u32> {
        self.inner.session.visit_events
    }

    /// The latest `(item, click, purchase)` events, oldest first.
    #[getter]
    fn history(&self) -> Vec<(u32, bool, bool)> {
        self.inner
            .session
            .history
            .iter()
            .map(|e| (e.item.0, e.click, e.purchase))
            .collect()
    }

    /// The candidate item ids (empty: the whole catalog).
    #[getter]
    fn candidates(&self) -> Vec<u32> {
        self.inner.candidates.iter().map(|i| i.0).collect()
    }

    /// The context as the JSON metarec's logs carry.
    fn to_json(&self) -> PyResult<String> {
        serde_json::to_string(&self.inner).map_err(value_error)
    }

    fn __repr__(&self) -> String {
        format!(
            "Context(user={:?}, tokens={:?}, session={}, step={}, history of {})",
            self.inner.user.0,
            self.inner.tokens,
            self.inner.session.session,
            self.inner.session.step,
            self.inner.session.history.len()
        )
    }
}
