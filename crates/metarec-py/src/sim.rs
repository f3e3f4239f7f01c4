//! The simulated shop from Python: [`Simulator`] (a fitted scenario) and [`VecEnv`] (many
//! simulated users stepped at once, the native half of `metarec.ShopEnv` and
//! `metarec.VecShopEnv`).

use crate::context::PyContext;
use crate::value_error;
use metarec_core::{Context, Decision, Environment, EventId, ItemId, RewardFn, Slate};
use metarec_data::LoadOptions;
use metarec_data::fetch::{DataDir, Dataset};
use metarec_data::online_retail::load_online_retail;
use metarec_data::shop::Shop;
use metarec_sim::{Scenario, ScenarioConfig, ShopEnv};
use numpy::{PyArray1, PyArrayMethods, PyReadonlyArray2, PyUntypedArrayMethods};
use pyo3::prelude::*;
use pyo3::types::PyDict;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A scenario fitted to its data: the world simulated users are drawn from.
#[pyclass(module = "metarec._metarec", frozen)]
pub struct Simulator {
    pub(crate) scenario: Arc<Scenario>,
    groups: Vec<String>,
    group_index: HashMap<String, i64>,
}

/// Loads and fits a scenario: a preset name or a TOML file, fitted to Online Retail (unpacked
/// from the module into `data` on first use) or to the shop directory `shop`. A directory given
/// as the scenario is a shop fitted with the default scenario.
fn build(scenario: &str, shop: Option<PathBuf>, data: DataDir) -> Result<Scenario, String> {
    let (name, shop) = match shop {
        Some(dir) => (scenario, Some(dir)),
        None if Path::new(scenario).is_dir() => ("default", Some(PathBuf::from(scenario))),
        None => (scenario, None),
    };
    let mut config = ScenarioConfig::load(name).map_err(|e| e.to_string())?;
    if config.observed.text_dims > 0 {
        return Err(format!(
            "scenario `{name}` has title features (observed.text_dims = {}), which need the text encoder: build and play it with the `metarec` command line for now",
            config.observed.text_dims
        ));
    }
    match shop {
        Some(dir) => {
            config.name = format!("{} on {}", config.name, dir.display());
            config.shop.dir = dir.display().to_string();
            let shop =
                Shop::load(&dir).map_err(|e| format!("cannot load shop {}: {e}", dir.display()))?;
            Scenario::build_from_shop(config, &shop, None).map_err(|e| e.to_string())
        }
        None => {
            data.require(Dataset::OnlineRetail)
                .map_err(|e| e.to_string())?;
            let retail = load_online_retail(&data.online_retail_csv(), &LoadOptions::default())
                .map_err(|e| e.to_string())?;
            Scenario::build(config, &retail).map_err(|e| e.to_string())
        }
    }
}

#[pymethods]
impl Simulator {
    /// Fits `scenario` (a preset such as `"default"`, a TOML file, or a shop directory) to its
    /// data. `seed` replaces the scenario's seed (which users are drawn, and the fit).
    #[new]
    #[pyo3(signature = (scenario = "default", *, shop = None, data_dir = None, seed = None))]
    fn new(
        py: Python<'_>,
        scenario: &str,
        shop: Option<PathBuf>,
        data_dir: Option<PathBuf>,
        seed: Option<u64>,
    ) -> PyResult<Self> {
        let data = DataDir::resolve(data_dir);
        let scenario = scenario.to_owned();
        let built = py.detach(move || {
            let mut built = build(&scenario, shop, data)?;
            if let Some(seed) = seed {
                built.config.seed = seed;
            }
            Ok::<_, String>(built)
        });
        let scenario = built.map_err(value_error)?;
        let groups: Vec<String> = scenario
            .world
            .population
            .countries()
            .map(|(c, _)| c.to_owned())
            .collect();
        let group_index = groups
            .iter()
            .enumerate()
            .map(|(i, g)| (scenario.world.population.token(g), i as i64))
            .collect();
        Ok(Simulator {
            scenario: Arc::new(scenario),
            groups,
            group_index,
        })
    }

    /// The scenario's name.
    #[getter]
    fn name(&self) -> String {
        self.scenario.config.name.clone()
    }

    /// The scenario's seed.
    #[getter]
    fn seed(&self) -> u64 {
        self.scenario.config.seed
    }

    /// Items in the catalog.
    #[getter]
    fn n_items(&self) -> usize {
        self.scenario.world.catalog.len()
    }

    /// Positions per slate.
    #[getter]
    fn slate_size(&self) -> usize {
        self.scenario.config.choice.slate_size
    }

    /// How many of a user's latest (item, click, purchase) events a context carries.
    #[getter]
    fn history_length(&self) -> usize {
        self.scenario.config.session.history_length
    }

    /// The observable user groups (countries for Online Retail), most users first; a context's
    /// group token is `ATTRIBUTE=GROUP`.
    #[getter]
    fn groups(&self) -> Vec<String> {
        self.groups.clone()
    }

    /// The item keys, in item id order.
    #[getter]
    fn item_keys(&self) -> Vec<String> {
        self.scenario.world.catalog.keys().to_vec()
    }

    /// The names of the item feature columns.
    #[getter]
    fn feature_names(&self) -> Vec<String> {
        self.scenario.world.catalog.features().names().to_vec()
    }

    /// The items' observable features, shape `(n_items, n_features)`, float32.
    fn item_features<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let f = self.scenario.world.catalog.features();
        let flat = PyArray1::from_slice(py, f.values());
        Ok(flat.reshape([f.rows(), f.dim()])?.into_any())
    }

    /// The scenario's objective: `{"click", "purchase", "revenue", "gamma"}`.
    fn reward<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        reward_dict(py, &self.scenario.config.reward)
    }
}

/// A reward function as a Python dictionary.
fn reward_dict<'py>(py: Python<'py>, r: &RewardFn) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("click", r.click_weight())?;
    d.set_item("purchase", r.purchase_weight())?;
    d.set_item("revenue", r.revenue_weight())?;
    d.set_item("gamma", r.gamma())?;
    Ok(d)
}

/// `n` simulated users played side by side. Slot `i` plays one user at a time; user number `u`
/// of a seed is the same person with the same luck whichever slot plays them and whatever the
/// batch size (common random numbers), so runs are reproducible and comparable across policies.
#[pyclass(module = "metarec._metarec")]
pub struct VecEnv {
    scenario: Arc<Scenario>,
    group_index: HashMap<String, i64>,
    envs: Vec<ShopEnv>,
    /// Whether each slot has a user: false before the first reset, and once its user has left
    /// (without autoreset).
    active: Vec<bool>,
    users: Vec<u64>,
    next_user: u64,
    autoreset: bool,
    reward: RewardFn,
    steps: u64,
}

impl VecEnv {
    /// The current context of slot `i`, or an error when it has no user.
    pub(crate) fn slot_context(&self, i: usize) -> PyResult<Context> {
        self.active
            .get(i)
            .copied()
            .unwrap_or(false)
            .then(|| self.envs[i].current_context())
            .flatten()
            .ok_or_else(|| value_error(format!("slot {i} has no user: call reset first")))
    }

    /// Slots.
    pub(crate) fn len(&self) -> usize {
        self.envs.len()
    }

    /// The catalog size.
    pub(crate) fn n_items(&self) -> usize {
        self.scenario.world.catalog.len()
    }

    /// Starts user `user` in slot `i`.
    fn start(&mut self, i: usize, user: u64) {
        // The context is built when a policy asks for it; the observation reads the user's
        // state in place.
        self.envs[i].reset(user);
        self.active[i] = true;
        self.users[i] = user;
    }

    /// The observation arrays of every slot.
    fn observation<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let n = self.len();
        let h = self.scenario.config.session.history_length;
        let pad = self.n_items() as i64;
        let mut items = vec![pad; n * h];
        let mut clicks = vec![0i8; n * h];
        let mut purchases = vec![0i8; n * h];
        let mut lengths = vec![0i64; n];
        let mut session = vec![0i64; n];
        let mut step = vec![0i64; n];
        let mut group = vec![-1i64; n];
        let mut active = vec![false; n];
        for (i, env) in self.envs.iter().enumerate() {
            let Some(o) = env.observed().filter(|_| self.active[i]) else {
                continue;
            };
            active[i] = true;
            // The newest events are kept when a history is longer than the observation.
            let skip = o.history.len().saturating_sub(h);
            for (j, e) in o.history.iter().skip(skip).enumerate() {
                items[i * h + j] = i64::from(e.item.0);
                clicks[i * h + j] = i8::from(e.click);
                purchases[i * h + j] = i8::from(e.purchase);
            }
            lengths[i] = (o.history.len() - skip) as i64;
            session[i] = i64::from(o.session);
            step[i] = i64::from(o.step);
            group[i] = self.group_index.get(o.group_token).copied().unwrap_or(-1);
        }
        let d = PyDict::new(py);
        d.set_item(
            "history_items",
            PyArray1::from_vec(py, items).reshape([n, h])?,
        )?;
        d.set_item(
            "history_clicks",
            PyArray1::from_vec(py, clicks).reshape([n, h])?,
        )?;
        d.set_item(
            "history_purchases",
            PyArray1::from_vec(py, purchases).reshape([n, h])?,
        )?;
        d.set_item("history_length", PyArray1::from_vec(py, lengths))?;
        d.set_item("session", PyArray1::from_vec(py, session))?;
        d.set_item("step", PyArray1::from_vec(py, step))?;
        d.set_item("group", PyArray1::from_vec(py, group))?;
        d.set_item("user", PyArray1::from_slice(py, &self.users))?;
        d.set_item("active", PyArray1::from_vec(py, active))?;
        Ok(d)
    }
}

/// What a batch of steps returns, one row per slot (`k` entries per row for the feedback).
struct Outcomes {
    clicks: Vec<bool>,
    purchases: Vec<bool>,
    revenue: Vec<f64>,
    rewards: Vec<f64>,
    left: Vec<bool>,
}

/// One block of [`Outcomes`]' rows, written in place by the thread that steps them.
struct Block<'a> {
    clicks: &'a mut [bool],
    purchases: &'a mut [bool],
    revenue: &'a mut [f64],
    rewards: &'a mut [f64],
    left: &'a mut [bool],
}

/// Shows `row` (item ids by position, checked against the catalog) to the user of `env` and
/// writes the feedback per entry into `clicks`, `purchases` and `revenue`; returns the reward
/// and whether the user left. An item repeated in a slate is shown once, at its first position;
/// its later entries get no feedback. The environment reads only the items and their positions,
/// so the propensities are placeholders and the labels empty (which costs no allocation).
fn step_one(
    env: &mut ShopEnv,
    row: &[i64],
    reward: &RewardFn,
    clicks: &mut [bool],
    purchases: &mut [bool],
    revenue: &mut [f64],
) -> (f64, bool) {
    let k = row.len();
    let mut items = Vec::with_capacity(k);
    let mut positions = Vec::with_capacity(k);
    for (pos, &item) in row.iter().enumerate() {
        let id = ItemId(item as u32);
        if !items.contains(&id) {
            items.push(id);
            positions.push(pos as u32);
        }
    }
    let m = items.len();
    // A non-empty slate without repeats is a valid slate, so this never fails.
    let Ok(slate) = Slate::new(items) else {
        return (0.0, false);
    };
    let decision = Decision {
        event_id: EventId(String::new()),
        slate,
        propensities: vec![1.0; m],
        slate_propensity: None,
        positions: Some(positions),
        policy_id: String::new(),
        model_version: String::new(),
    };
    let (f, left) = env.step_feedback(&decision);
    clicks.fill(false);
    purchases.fill(false);
    revenue.fill(0.0);
    let shown = decision.positions.as_deref().unwrap_or_default();
    for (e, &pos) in shown.iter().enumerate() {
        let pos = pos as usize;
        clicks[pos] = f.clicks[e];
        purchases[pos] = f.purchases[e];
        revenue[pos] = f.revenue[e];
    }
    (reward.reward(&f), left)
}

/// Slots below which a stepping thread costs more than it saves.
const MIN_SLOTS_PER_THREAD: usize = 256;

/// Steps one block of slots (`envs`, with their slates `rows`, `k` per slot).
fn step_block(envs: &mut [ShopEnv], rows: &[i64], k: usize, reward: &RewardFn, out: Block<'_>) {
    for (i, env) in envs.iter_mut().enumerate() {
        let entries = i * k..(i + 1) * k;
        let (r, left) = step_one(
            env,
            &rows[entries.clone()],
            reward,
            &mut out.clicks[entries.clone()],
            &mut out.purchases[entries.clone()],
            &mut out.revenue[entries],
        );
        out.rewards[i] = r;
        out.left[i] = left;
    }
}

/// Steps every slot, spread over the cores in contiguous blocks. Each slot's user draws from
/// their own random streams, so the outcome does not depend on the number of threads.
fn step_all(envs: &mut [ShopEnv], rows: &[i64], k: usize, reward: &RewardFn) -> Outcomes {
    let n = envs.len();
    let mut out = Outcomes {
        clicks: vec![false; n * k],
        purchases: vec![false; n * k],
        revenue: vec![0.0; n * k],
        rewards: vec![0.0; n],
        left: vec![false; n],
    };
    let threads = std::thread::available_parallelism()
        .map_or(1, |t| t.get())
        .min(n / MIN_SLOTS_PER_THREAD)
        .max(1);
    let block = n.div_ceil(threads);
    let blocks = out
        .clicks
        .chunks_mut(block * k)
        .zip(out.purchases.chunks_mut(block * k))
        .zip(out.revenue.chunks_mut(block * k))
        .zip(out.rewards.chunks_mut(block))
        .zip(out.left.chunks_mut(block))
        .map(|((((clicks, purchases), revenue), rewards), left)| Block {
            clicks,
            purchases,
            revenue,
            rewards,
            left,
        });
    let work = envs
        .chunks_mut(block)
        .zip(rows.chunks(block * k))
        .zip(blocks);
    if threads == 1 {
        for ((envs, rows), b) in work {
            step_block(envs, rows, k, reward, b);
        }
    } else {
        std::thread::scope(|scope| {
            for ((envs, rows), b) in work {
                scope.spawn(move || step_block(envs, rows, k, reward, b));
            }
        });
    }
    out
}

#[pymethods]
impl VecEnv {
    /// `n` slots over `simulator`'s world, drawing users with `seed` (default: the scenario's).
    /// With `autoreset`, a slot whose user leaves starts the next user number in the same step.
    #[new]
    #[pyo3(signature = (simulator, n = 1, *, seed = None, autoreset = true))]
    fn new(simulator: &Simulator, n: usize, seed: Option<u64>, autoreset: bool) -> PyResult<Self> {
        if n == 0 || n > 1_000_000 {
            return Err(value_error(format!("n is {n}; it must be 1 to 1000000")));
        }
        let scenario = simulator.scenario.clone();
        let seed = seed.unwrap_or(scenario.config.seed);
        Ok(VecEnv {
            envs: (0..n).map(|_| scenario.env_with_seed(seed)).collect(),
            active: vec![false; n],
            users: vec![0; n],
            next_user: 0,
            autoreset,
            reward: scenario.config.reward,
            group_index: simulator.group_index.clone(),
            scenario,
            steps: 0,
        })
    }

    /// Slots.
    fn __len__(&self) -> usize {
        self.len()
    }

    /// Slates shown so far, over all slots.
    #[getter]
    fn steps(&self) -> u64 {
        self.steps
    }

    /// The user number the next reset or autoreset starts.
    #[getter]
    fn next_user(&self) -> u64 {
        self.next_user
    }

    /// Starts a user in every slot: `users[i]` in slot `i`, or, by default, the next `n` user
    /// numbers in slot order (from 0 after `seed` is given). `seed` restarts the user numbering
    /// with that seed. Returns the observation.
    #[pyo3(signature = (users = None, *, seed = None))]
    fn reset<'py>(
        &mut self,
        py: Python<'py>,
        users: Option<Vec<u64>>,
        seed: Option<u64>,
    ) -> PyResult<Bound<'py, PyDict>> {
        if let Some(seed) = seed {
            let scenario = self.scenario.clone();
            for env in &mut self.envs {
                *env = scenario.env_with_seed(seed);
            }
            self.next_user = 0;
        }
        let users = match users {
            Some(u) if u.len() != self.len() => {
                return Err(value_error(format!(
                    "users has {} numbers for {} slots",
                    u.len(),
                    self.len()
                )));
            }
            Some(u) => u,
            None => {
                let first = self.next_user;
                self.next_user += self.len() as u64;
                (first..self.next_user).collect()
            }
        };
        for (i, u) in users.into_iter().enumerate() {
            self.start(i, u);
        }
        self.observation(py)
    }

    /// Shows `slates[i]` (item ids, one row per slot, position 0 first) to slot `i`'s user.
    /// Returns `(observation, reward, done, clicks, purchases, revenue, users)`: the reward of
    /// each slate under the scenario's objective, whether its user left (with autoreset the
    /// observation is then the next user's first), the feedback per entry, and which user
    /// number each slate was shown to.
    #[allow(clippy::type_complexity)]
    fn step<'py>(
        &mut self,
        py: Python<'py>,
        slates: PyReadonlyArray2<'py, i64>,
    ) -> PyResult<(
        Bound<'py, PyDict>,
        Bound<'py, PyAny>,
        Bound<'py, PyAny>,
        Bound<'py, PyAny>,
        Bound<'py, PyAny>,
        Bound<'py, PyAny>,
        Bound<'py, PyAny>,
    )> {
        let shape = slates.shape().to_vec();
        let (n, k) = (shape[0], shape[1]);
        if n != self.len() || k == 0 {
            return Err(value_error(format!(
                "slates has shape ({n}, {k}); expected ({}, slate size) with a slate size of at least 1",
                self.len()
            )));
        }
        if let Some(i) = self.active.iter().position(|a| !a) {
            return Err(value_error(format!(
                "slot {i} has no user (it left and autoreset is off): call reset first"
            )));
        }
        let rows = slates.as_array();
        let rows: Vec<i64> = rows.iter().copied().collect();
        let n_items = self.n_items();
        // Every slate is checked before any user sees one, so a bad batch changes nothing.
        for (i, row) in rows.chunks(k).enumerate() {
            if let Some(pos) = row.iter().position(|&x| x < 0 || x as usize >= n_items) {
                return Err(value_error(format!(
                    "slates[{i}]: position {pos}: item {} is not an item id (0 to {})",
                    row[pos],
                    n_items - 1
                )));
            }
        }
        let reward = self.reward;
        let envs = &mut self.envs;
        let out = py.detach(move || step_all(envs, &rows, k, &reward));
        let acted = self.users.clone();
        self.steps += n as u64;
        for (i, &left) in out.left.iter().enumerate() {
            if left {
                if self.autoreset {
                    let user = self.next_user;
                    self.next_user += 1;
                    self.start(i, user);
                } else {
                    self.active[i] = false;
                }
            }
        }
        Ok((
            self.observation(py)?,
            PyArray1::from_vec(py, out.rewards).into_any(),
            PyArray1::from_vec(py, out.left).into_any(),
            PyArray1::from_vec(py, out.clicks)
                .reshape([n, k])?
                .into_any(),
            PyArray1::from_vec(py, out.purchases)
                .reshape([n, k])?
                .into_any(),
            PyArray1::from_vec(py, out.revenue)
                .reshape([n, k])?
                .into_any(),
            PyArray1::from_vec(py, acted).into_any(),
        ))
    }

    /// The context of slot `i`'s user, as policies see it.
    fn context(&self, i: usize) -> PyResult<PyContext> {
        Ok(PyContext::from(self.slot_context(i)?))
    }

    /// The scenario's objective: `{"click", "purchase", "revenue", "gamma"}`.
    fn reward<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        reward_dict(py, &self.reward)
    }
}
