//! The two-tower network, on candle for training and as plain Rust for serving.
//!
//! ```text
//! item tower:  h_i  = W2 relu(W1 [x_i, id_i] + b1) + b2            (id_i: learned id embedding)
//!              c_i  = bias_id[i] + w_b . x_i + b_b                  (item bias)
//! user tower:  a    = relu(W3 u + b3);  V(u) = w_v . a + b_v
//!              g    = W4 a + b4 + Wc mean(h_j: j clicked) + Wi mean(h_j: j ignored)
//!                     [+ rho([sum phi_c(h_j): clicked, sum phi_i(h_j): ignored,
//!                             log1p n_clicked, log1p n_ignored, a])]       (encoder = set)
//! score:       s_ui = <g, h_i> + c_i + f_ign ignored_i + f_clk clicked_i
//! click:       P(click) = sigmoid(s_ui);  purchase | click: sigmoid(p_a s_ui + p_b)
//! policy:      Plackett-Luce over s_ui / temperature
//! ```
//!
//! The user vector sums learned item vectors of the session's clicked and ignored items, so the
//! network learns item-to-item relations end to end (`h_j^T Wc^T h_i`), beyond what the shop's
//! observable embedding tells. [`TwoTower`] holds the candle variables; [`Frozen`] is the same network copied out into plain
//! vectors, with the item tower precomputed, so a decision costs a small matrix-vector product
//! and one dot product per candidate (microseconds, no allocation once warm).

mod dense;

use crate::error::NeuralError;
use crate::features::Features;
use candle_core::{DType, Device, Tensor, Var};
use candle_nn::{Linear, Module, VarBuilder, VarMap};
use dense::Dense;
use rand_distr::{Distribution, Normal};
use serde::{Deserialize, Serialize};

/// Sizes of the network.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ModelConfig {
    /// Width of the item id embedding.
    pub id_dim: usize,
    /// Width of each tower's hidden layer.
    pub hidden: usize,
    /// Width of the tower outputs (the dot-product space).
    pub embed: usize,
    /// Plackett-Luce temperature of the policy.
    pub temperature: f64,
    /// Whether the user tower sees the user's feedback (which shown items were clicked). False
    /// builds the non-adaptive ablation: the network still knows what it showed, so it can
    /// avoid repeats, but every past item reads as shown-and-ignored, so it cannot adapt to
    /// what this user likes.
    pub feedback: bool,
    /// How the user tower reads the session's clicked and ignored items. Absent in manifests
    /// written before it existed, which read as [`Encoder::Mean`]; a mean network's manifest
    /// leaves it out, so it stays byte-identical to one written before.
    #[serde(skip_serializing_if = "Encoder::is_mean")]
    pub encoder: Encoder,
    /// Width of the set encoder's per-item features and of its MLP's hidden layer; 0 (the
    /// default, left out of manifests) means [`ModelConfig::hidden`].
    #[serde(skip_serializing_if = "is_zero")]
    pub set_width: usize,
    /// The user tower's recent window, in history events: with `w > 0` the last `w` events are
    /// the session the tower reads as before (means, counts, flags), and the events before them
    /// enter through a long-run channel of their own, `Mc mean(h_older_clicked) + Mi
    /// mean(h_older_ignored)`. A context carries only what the scenario's `history_length`
    /// keeps, so the memory reads only what the window leaves of it. 0 (the default, left out
    /// of manifests): no long-run channel, the whole history is the session.
    #[serde(skip_serializing_if = "is_zero")]
    pub memory: usize,
}

/// The recent window of a new network's long-run memory, as `metarec train` and the Python
/// `Trainer` build it ([`ModelConfig::memory`]; a manifest without the field reads as 0): the
/// last 20 shown items, about four slates of five, are the session; the default scenario's
/// contexts carry 100, so the memory reads up to 80 before them.
pub const DEFAULT_MEMORY: usize = 20;

fn is_zero(v: &usize) -> bool {
    *v == 0
}

/// The user tower's encoder of the session's clicked and ignored items.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Encoder {
    /// Linear in the means of the clicked and of the ignored items' vectors: `Wc mean(h_j)`
    /// and `Wi mean(h_j)`. It cannot tell one click from ten alike, nor combine evidence
    /// nonlinearly.
    #[default]
    Mean,
    /// The mean encoder plus a DeepSets term: per-item features `phi_c(h_j)`, `phi_i(h_j)`
    /// summed (not averaged) over the clicked and ignored items, with the log counts and the
    /// user tower's hidden layer, through a small MLP `rho` whose output is added to the user
    /// vector. The sums grow with the evidence, as a posterior's sufficient statistics do, so
    /// the network can tell how sure it may be.
    Set,
}

impl Encoder {
    /// Whether this is [`Encoder::Mean`] (the manifest leaves the default out).
    pub fn is_mean(&self) -> bool {
        *self == Encoder::Mean
    }

    /// The name used on the command line and in manifests.
    pub fn name(&self) -> &'static str {
        match self {
            Encoder::Mean => "mean",
            Encoder::Set => "set",
        }
    }

    /// Parses a name.
    pub fn parse(name: &str) -> Result<Encoder, NeuralError> {
        match name {
            "mean" => Ok(Encoder::Mean),
            "set" => Ok(Encoder::Set),
            other => Err(NeuralError::Config(format!(
                "unknown encoder `{other}`; expected mean or set"
            ))),
        }
    }
}

/// The set encoder's sums enter `rho` divided by this, so that sessions of tens of items give
/// first-layer inputs of order one: Adam moves each weight by about the learning rate per
/// step, and inputs in the hundreds would turn that into jumps of the user vector. A constant
/// rather than the count keeps them sums, which grow with the evidence.
const SET_SUM_SCALE: f32 = 0.1;

impl Default for ModelConfig {
    fn default() -> Self {
        ModelConfig {
            id_dim: 8,
            hidden: 32,
            embed: 16,
            temperature: 1.0,
            feedback: true,
            encoder: Encoder::Mean,
            set_width: 0,
            memory: 0,
        }
    }
}

impl ModelConfig {
    /// The set encoder's width: [`ModelConfig::set_width`], or the hidden width when it is 0.
    pub fn set_features(&self) -> usize {
        if self.set_width == 0 {
            self.hidden
        } else {
            self.set_width
        }
    }

    /// Checks the sizes.
    pub fn validate(&self) -> Result<(), NeuralError> {
        for (name, v) in [
            ("id_dim", self.id_dim),
            ("hidden", self.hidden),
            ("embed", self.embed),
        ] {
            if v == 0 || v > 4096 {
                return Err(NeuralError::Config(format!(
                    "model.{name} = {v}: must be 1 to 4096"
                )));
            }
        }
        if self.set_width > 4096 {
            return Err(NeuralError::Config(format!(
                "model.set_width = {}: must be 0 (the hidden width) to 4096",
                self.set_width
            )));
        }
        if !(self.temperature.is_finite() && self.temperature > 0.0) {
            return Err(NeuralError::Config(format!(
                "model.temperature = {}: must be positive",
                self.temperature
            )));
        }
        Ok(())
    }
}

/// The network's variables (candle).
pub struct TwoTower {
    /// The sizes.
    pub config: ModelConfig,
    id_emb: Tensor,
    item_l1: Linear,
    item_l2: Linear,
    bias_id: Tensor,
    bias_lin: Linear,
    user_l1: Linear,
    user_l2: Linear,
    user_click: Linear,
    user_ignore: Linear,
    value: Linear,
    flags: Tensor,
    purchase: Tensor,
    set: Option<SetLayers>,
    /// The long-run channel's maps of the older clicked and ignored items' mean vectors (see
    /// [`ModelConfig::memory`]).
    memory: Option<(Linear, Linear)>,
}

/// The set encoder's layers (see [`Encoder::Set`]), `p` its width
/// ([`ModelConfig::set_features`]): `phi_c`, `phi_i` read an item vector (`embed -> p`); `rho`
/// reads `[sum phi_c, sum phi_i, log1p n_c, log1p n_i, a]` (`2 p + 2 + hidden -> p -> embed`).
struct SetLayers {
    phi_click: Linear,
    phi_ignore: Linear,
    rho1: Linear,
    rho2: Linear,
}

/// The prefix of the set encoder's variables, which [`init_seeded`] draws from a stream of
/// their own.
const SET_PREFIX: &str = "user.set.";

/// The prefix of the long-run channel's variables, which [`init_seeded`] sets to zero without
/// drawing, so a network with a memory starts as the network of the same seed without one.
const MEMORY_PREFIX: &str = "user.memory.";

/// Outputs of the item tower for every item.
pub struct ItemOut {
    /// `N x embed`.
    pub vectors: Tensor,
    /// `N`.
    pub bias: Tensor,
}

/// Outputs of the user tower for a batch of states.
pub struct UserOut {
    /// `S x embed`.
    pub vectors: Tensor,
    /// `S`: the state-value estimate.
    pub value: Tensor,
}

impl TwoTower {
    /// Declares the variables in `varmap` (values are set by [`init_seeded`]).
    pub fn new(
        varmap: &VarMap,
        dtype: DType,
        config: ModelConfig,
        features: &Features,
    ) -> Result<TwoTower, NeuralError> {
        config.validate()?;
        let vb = VarBuilder::from_varmap(varmap, dtype, &Device::Cpu);
        let n = features.items();
        let f = features.item_dim();
        let u = features.user_dim();
        let zero = candle_nn::Init::Const(0.0);
        let lin = |i: usize, o: usize, name: &str| -> Result<Linear, NeuralError> {
            let p = vb.pp(name);
            let w = p.get_with_hints((o, i), "weight", zero)?;
            let b = p.get_with_hints(o, "bias", zero)?;
            Ok(Linear::new(w, Some(b)))
        };
        Ok(TwoTower {
            config,
            id_emb: vb.get_with_hints((n, config.id_dim), "item.id_emb", zero)?,
            item_l1: lin(f + config.id_dim, config.hidden, "item.l1")?,
            item_l2: lin(config.hidden, config.embed, "item.l2")?,
            bias_id: vb.get_with_hints(n, "item.bias_id", zero)?,
            bias_lin: lin(f, 1, "item.bias_lin")?,
            user_l1: lin(u, config.hidden, "user.l1")?,
            user_l2: lin(config.hidden, config.embed, "user.l2")?,
            user_click: Linear::new(
                vb.pp("user.click")
                    .get_with_hints((config.embed, config.embed), "weight", zero)?,
                None,
            ),
            user_ignore: Linear::new(
                vb.pp("user.ignore").get_with_hints(
                    (config.embed, config.embed),
                    "weight",
                    zero,
                )?,
                None,
            ),
            value: lin(config.hidden, 1, "value")?,
            flags: vb.get_with_hints(2, "flags", zero)?,
            purchase: vb.get_with_hints(2, "purchase", zero)?,
            set: match config.encoder {
                Encoder::Mean => None,
                Encoder::Set => {
                    let (h, e, p) = (config.hidden, config.embed, config.set_features());
                    Some(SetLayers {
                        phi_click: lin(e, p, "user.set.phi_click")?,
                        phi_ignore: lin(e, p, "user.set.phi_ignore")?,
                        rho1: lin(2 * p + 2 + h, p, "user.set.rho1")?,
                        rho2: lin(p, e, "user.set.rho2")?,
                    })
                }
            },
            memory: if config.memory > 0 {
                let map = |name: &str| -> Result<Linear, NeuralError> {
                    Ok(Linear::new(
                        vb.pp(name)
                            .get_with_hints((config.embed, config.embed), "weight", zero)?,
                        None,
                    ))
                };
                Some((map("user.memory.click")?, map("user.memory.ignore")?))
            } else {
                None
            },
        })
    }

    /// The item tower over all items; `x` is `N x F`.
    pub fn items(&self, x: &Tensor) -> Result<ItemOut, NeuralError> {
        let input = Tensor::cat(&[x, &self.id_emb], 1)?;
        let hidden = self.item_l1.forward(&input)?.relu()?;
        let vectors = self.item_l2.forward(&hidden)?;
        let bias = (self.bias_lin.forward(x)?.squeeze(1)? + &self.bias_id)?;
        Ok(ItemOut { vectors, bias })
    }

    /// The user tower; `u` is `S x U`, `clicked_mean` and `ignored_mean` are `S x N` rows that
    /// average over the session's clicked and ignored items (all zero when there are none).
    /// The set encoder also needs `counts`: the clicked and ignored `S x N` count matrices
    /// (how often each item was clicked or passed over); the mean encoder ignores them. A
    /// network with a memory also needs `older`: the `S x N` mean rows of the clicked and the
    /// ignored items before the recent window.
    pub fn users(
        &self,
        u: &Tensor,
        clicked_mean: &Tensor,
        ignored_mean: &Tensor,
        counts: Option<(&Tensor, &Tensor)>,
        older: Option<(&Tensor, &Tensor)>,
        items: &ItemOut,
    ) -> Result<UserOut, NeuralError> {
        let hidden = self.user_l1.forward(u)?.relu()?;
        let own = self.user_l2.forward(&hidden)?;
        let from_clicks = self
            .user_click
            .forward(&clicked_mean.matmul(&items.vectors)?)?;
        let from_ignores = self
            .user_ignore
            .forward(&ignored_mean.matmul(&items.vectors)?)?;
        let mut vectors = ((own + from_clicks)? + from_ignores)?;
        if let Some(set) = &self.set {
            let (clicked, ignored) = counts.ok_or_else(|| {
                NeuralError::Config("the set encoder needs the session's count matrices".into())
            })?;
            // phi over all N items once; the count matrices then sum it per session.
            let phi_c = set.phi_click.forward(&items.vectors)?.relu()?;
            let phi_i = set.phi_ignore.forward(&items.vectors)?.relu()?;
            let sum_c = (clicked.matmul(&phi_c)? * f64::from(SET_SUM_SCALE))?;
            let sum_i = (ignored.matmul(&phi_i)? * f64::from(SET_SUM_SCALE))?;
            let n_c = (clicked.sum_keepdim(1)? + 1.0)?.log()?;
            let n_i = (ignored.sum_keepdim(1)? + 1.0)?.log()?;
            let input = Tensor::cat(&[&sum_c, &sum_i, &n_c, &n_i, &hidden], 1)?;
            let summary = set.rho2.forward(&set.rho1.forward(&input)?.relu()?)?;
            vectors = (vectors + summary)?;
        }
        if let Some((click, ignore)) = &self.memory {
            let (clicked, ignored) = older.ok_or_else(|| {
                NeuralError::Config("the long-run memory needs the older items' means".into())
            })?;
            let from_clicks = click.forward(&clicked.matmul(&items.vectors)?)?;
            let from_ignores = ignore.forward(&ignored.matmul(&items.vectors)?)?;
            vectors = ((vectors + from_clicks)? + from_ignores)?;
        }
        let value = self.value.forward(&hidden)?.squeeze(1)?;
        Ok(UserOut { vectors, value })
    }

    /// Scores `S x N`; `ignored` and `clicked` are `S x N` indicator matrices.
    pub fn scores(
        &self,
        users: &UserOut,
        items: &ItemOut,
        ignored: &Tensor,
        clicked: &Tensor,
    ) -> Result<Tensor, NeuralError> {
        let dot = users.vectors.matmul(&items.vectors.t()?)?;
        let with_bias = dot.broadcast_add(&items.bias.unsqueeze(0)?)?;
        let f_ign = self.flags.narrow(0, 0, 1)?;
        let f_clk = self.flags.narrow(0, 1, 1)?;
        let flagged = (ignored.broadcast_mul(&f_ign)? + clicked.broadcast_mul(&f_clk)?)?;
        Ok((with_bias + flagged)?)
    }

    /// Purchase-given-click logits from click logits.
    pub fn purchase_logits(&self, click_logits: &Tensor) -> Result<Tensor, NeuralError> {
        let a = self.purchase.narrow(0, 0, 1)?;
        let b = self.purchase.narrow(0, 1, 1)?;
        Ok(click_logits.broadcast_mul(&a)?.broadcast_add(&b)?)
    }
}

/// Sets every variable from a seeded generator, in name order, so the same seed always gives
/// the same initial network (candle's own initialisers draw from an unseeded generator).
/// Weights get `N(0, 1 / fan_in)`, the id embedding `N(0, 0.1^2)`, biases and scalars 0, and the
/// purchase head `a = 1`.
///
/// The set encoder's variables draw from a stream of their own, after the others, so a set
/// network shares every other initial weight with the mean network of the same seed; its output
/// layer `rho2` starts at zero, so it starts as exactly that mean network and any difference
/// the two end with is what the encoder learned.
pub fn init_seeded(varmap: &VarMap, seed: u64) -> Result<(), NeuralError> {
    let mut rng = metarec_core::rng_for(seed, 0x6e6e);
    let mut set_rng = metarec_core::rng_for(seed, 0x6e73);
    let data = varmap
        .data()
        .lock()
        .map_err(|_| NeuralError::Config("poisoned variable map".into()))?;
    let mut names: Vec<&String> = data.keys().collect();
    // A stable sort on "is it the set encoder's" keeps name order within each group.
    names.sort();
    names.sort_by_key(|name| name.starts_with(SET_PREFIX));
    for name in names {
        let var = &data[name];
        let dims = var.dims().to_vec();
        let count: usize = dims.iter().product();
        let rng = if name.starts_with(SET_PREFIX) {
            &mut set_rng
        } else {
            &mut rng
        };
        let values: Vec<f64> = if name.starts_with("user.set.rho2")
            || name.starts_with(MEMORY_PREFIX)
        {
            vec![0.0; count]
        } else if name.ends_with("weight") {
            // A catalog without item features (a shop that logs only ids) gives a weight with
            // no inputs and no values; its width of 0 must not make the spread infinite.
            let fan_in = (*dims.last().unwrap_or(&1)).max(1) as f64;
            let normal = Normal::new(0.0, (1.0 / fan_in).sqrt())
                .map_err(|e| NeuralError::Config(e.to_string()))?;
            (0..count).map(|_| normal.sample(&mut *rng)).collect()
        } else if name == "item.id_emb" {
            let normal = Normal::new(0.0, 0.1).map_err(|e| NeuralError::Config(e.to_string()))?;
            (0..count).map(|_| normal.sample(&mut *rng)).collect()
        } else if name == "purchase" {
            vec![1.0, 0.0]
        } else {
            vec![0.0; count]
        };
        let t = Tensor::from_vec(values, dims.as_slice(), &Device::Cpu)?.to_dtype(var.dtype())?;
        var.set(&t)?;
    }
    Ok(())
}

fn to_f32(t: &Tensor) -> Result<Vec<f32>, NeuralError> {
    Ok(t.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?)
}

/// The network copied out of candle for fast decisions, with the item tower precomputed for the
/// catalog and its weights kept, so that items can be scored from their features later
/// ([`Frozen::item_output`], [`Frozen::set_item`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Frozen {
    /// Output width.
    pub embed: usize,
    /// Hidden width.
    pub hidden: usize,
    /// User input width.
    pub user_dim: usize,
    /// Item vectors, `N x embed`.
    pub item_vectors: Vec<f32>,
    /// Item biases.
    pub item_bias: Vec<f32>,
    w3: Dense,
    b3: Vec<f32>,
    w4: Dense,
    b4: Vec<f32>,
    wc: Dense,
    wi: Dense,
    wv: Vec<f32>,
    bv: f32,
    /// Weights of the ignored and clicked flags.
    pub flags: [f32; 2],
    /// The policy's temperature.
    pub temperature: f64,
    /// The item tower's own weights, so that an item the network was not trained with can be
    /// scored from its features ([`Frozen::item_output`]).
    tower: ItemTower,
    /// The set encoder, for a network that has one ([`Encoder::Set`]).
    set: Option<FrozenSet>,
    /// The long-run channel's `Mc` and `Mi`, `embed x embed` each, for a network with a memory
    /// ([`ModelConfig::memory`]).
    memory: Option<(Dense, Dense)>,
}

/// The set encoder in plain vectors, with `phi_c` and `phi_i` precomputed for every item so a
/// decision only adds rows.
#[derive(Debug, Clone, PartialEq)]
struct FrozenSet {
    /// `relu(W_c h_j + b_c)` for every item, `N x hidden`.
    phi_click: Vec<f32>,
    /// `relu(W_i h_j + b_i)` for every item, `N x hidden`.
    phi_ignore: Vec<f32>,
    /// `W_c`, `hidden x embed`, and `b_c`, kept for items set later ([`Frozen::set_item`]).
    wc: Dense,
    bc: Vec<f32>,
    /// `W_i`, `hidden x embed`, and `b_i`.
    wi: Dense,
    bi: Vec<f32>,
    /// `rho`'s first layer, `hidden x (3 hidden + 2)`, and its bias.
    r1: Dense,
    b1: Vec<f32>,
    /// `rho`'s output layer, `embed x hidden`, and its bias.
    r2: Dense,
    b2: Vec<f32>,
}

impl FrozenSet {
    /// `relu(w v + b)` into `out` (one row of `phi`).
    fn phi(w: &Dense, b: &[f32], v: &[f32], out: &mut [f32]) {
        w.apply(v, out);
        for (o, b) in out.iter_mut().zip(b) {
            *o = (b + *o).max(0.0);
        }
    }

    /// Both `phi` rows of an item vector.
    fn rows(&self, v: &[f32]) -> (Vec<f32>, Vec<f32>) {
        let h = self.bc.len();
        let (mut c, mut i) = (vec![0.0; h], vec![0.0; h]);
        FrozenSet::phi(&self.wc, &self.bc, v, &mut c);
        FrozenSet::phi(&self.wi, &self.bi, v, &mut i);
        (c, i)
    }
}

/// The item tower in plain vectors: `h = W2 relu(W1 [x, id] + b1) + b2` and the item bias
/// `c = bias_id + w_b . x + b_b`, with the trained id embeddings and the mean of them that
/// items outside the training catalog use.
#[derive(Debug, Clone, PartialEq)]
struct ItemTower {
    /// Width of an item's feature row.
    item_dim: usize,
    /// Width of the id embedding.
    id_dim: usize,
    /// `hidden x (item_dim + id_dim)`, row-major.
    w1: Vec<f32>,
    b1: Vec<f32>,
    /// `embed x hidden`, row-major.
    w2: Vec<f32>,
    b2: Vec<f32>,
    /// `w_b`, one weight per feature.
    wb: Vec<f32>,
    bb: f32,
    /// The trained id embeddings, `trained items x id_dim`.
    id_emb: Vec<f32>,
    /// The trained per-item bias terms.
    bias_id: Vec<f32>,
    /// The mean trained id embedding and bias term: what a new item is given (see
    /// [`Frozen::item_output`]).
    mean_id: Vec<f32>,
    mean_bias_id: f32,
}

/// One item's outputs of the item tower: its vector `h_i` and its bias `c_i`.
#[derive(Debug, Clone, PartialEq)]
pub struct ItemOutput {
    /// `h_i`, `embed` values.
    pub vector: Vec<f32>,
    /// `c_i`.
    pub bias: f32,
}

impl Frozen {
    /// Copies the network out, running the item tower once over all items.
    pub fn from_model(model: &TwoTower, item_inputs: &Tensor) -> Result<Frozen, NeuralError> {
        let items = model.items(item_inputs)?;
        let flags = to_f32(&model.flags)?;
        let wv = to_f32(model.value.weight())?;
        let bv = model
            .value
            .bias()
            .map(to_f32)
            .transpose()?
            .unwrap_or_default();
        let id_emb = to_f32(&model.id_emb)?;
        let bias_id = to_f32(&model.bias_id)?;
        let id_dim = model.config.id_dim;
        let trained = bias_id.len();
        // The mean over the trained items (zero for an empty catalog, which has none to
        // average).
        let mut mean_id = vec![0.0f32; id_dim];
        for row in id_emb.chunks_exact(id_dim.max(1)) {
            for (m, v) in mean_id.iter_mut().zip(row) {
                *m += v;
            }
        }
        if trained > 0 {
            mean_id.iter_mut().for_each(|m| *m /= trained as f32);
        }
        let mean_bias_id = if trained > 0 {
            bias_id.iter().sum::<f32>() / trained as f32
        } else {
            0.0
        };
        let bias_of = |l: &Linear| -> Result<Vec<f32>, NeuralError> {
            Ok(l.bias().map(to_f32).transpose()?.unwrap_or_default())
        };
        let dense = |l: &Linear| -> Result<Dense, NeuralError> {
            let weight = l.weight();
            Ok(Dense::of_rows(&to_f32(weight)?, weight.dims()[1]))
        };
        let tower = ItemTower {
            item_dim: model.bias_lin.weight().dims()[1],
            id_dim,
            w1: to_f32(model.item_l1.weight())?,
            b1: bias_of(&model.item_l1)?,
            w2: to_f32(model.item_l2.weight())?,
            b2: bias_of(&model.item_l2)?,
            wb: to_f32(model.bias_lin.weight())?,
            bb: bias_of(&model.bias_lin)?.first().copied().unwrap_or(0.0),
            id_emb,
            bias_id,
            mean_id,
            mean_bias_id,
        };
        let item_vectors = to_f32(&items.vectors)?;
        let memory = match &model.memory {
            Some((click, ignore)) => Some((dense(click)?, dense(ignore)?)),
            None => None,
        };
        let set = match &model.set {
            None => None,
            Some(layers) => {
                let mut set = FrozenSet {
                    phi_click: Vec::new(),
                    phi_ignore: Vec::new(),
                    wc: dense(&layers.phi_click)?,
                    bc: bias_of(&layers.phi_click)?,
                    wi: dense(&layers.phi_ignore)?,
                    bi: bias_of(&layers.phi_ignore)?,
                    r1: dense(&layers.rho1)?,
                    b1: bias_of(&layers.rho1)?,
                    r2: dense(&layers.rho2)?,
                    b2: bias_of(&layers.rho2)?,
                };
                for v in item_vectors.chunks_exact(model.config.embed) {
                    let (c, i) = set.rows(v);
                    set.phi_click.extend_from_slice(&c);
                    set.phi_ignore.extend_from_slice(&i);
                }
                Some(set)
            }
        };
        Ok(Frozen {
            tower,
            set,
            memory,
            embed: model.config.embed,
            hidden: model.config.hidden,
            user_dim: model.user_l1.weight().dims()[1],
            item_vectors,
            item_bias: to_f32(&items.bias)?,
            w3: dense(&model.user_l1)?,
            b3: model
                .user_l1
                .bias()
                .map(to_f32)
                .transpose()?
                .unwrap_or_default(),
            w4: dense(&model.user_l2)?,
            b4: model
                .user_l2
                .bias()
                .map(to_f32)
                .transpose()?
                .unwrap_or_default(),
            wc: dense(&model.user_click)?,
            wi: dense(&model.user_ignore)?,
            wv,
            bv: bv.first().copied().unwrap_or(0.0),
            flags: [flags[0], flags[1]],
            temperature: model.config.temperature,
        })
    }

    /// The user vector `g` (into `out`) and the state value for a user input and the session's
    /// clicked and ignored items, reusing `scratch`.
    pub fn user(
        &self,
        input: &[f32],
        clicked: &[metarec_core::ItemId],
        ignored: &[metarec_core::ItemId],
        scratch: &mut Vec<f32>,
        out: &mut Vec<f32>,
    ) -> f32 {
        let (h, e) = (self.hidden, self.embed);
        scratch.clear();
        scratch.resize(h + 5 * e, 0.0);
        let (hidden, rest) = scratch.split_at_mut(h);
        let (means, sums) = rest.split_at_mut(2 * e);
        self.w3.apply(input, hidden);
        for (r, v) in hidden.iter_mut().enumerate() {
            *v = (self.b3[r] + *v).max(0.0);
        }
        let (click_mean, ignore_mean) = means.split_at_mut(e);
        for (mean, set) in [(&mut *click_mean, clicked), (&mut *ignore_mean, ignored)] {
            if set.is_empty() {
                continue;
            }
            for item in set {
                let v = &self.item_vectors[item.index() * e..(item.index() + 1) * e];
                for (m, x) in mean.iter_mut().zip(v) {
                    *m += x;
                }
            }
            let inv = 1.0 / set.len() as f32;
            mean.iter_mut().for_each(|m| *m *= inv);
        }
        let (own, rest) = sums.split_at_mut(e);
        let (from_clicks, from_ignores) = rest.split_at_mut(e);
        self.w4.apply(hidden, own);
        self.wc.apply(click_mean, from_clicks);
        self.wi.apply(ignore_mean, from_ignores);
        out.clear();
        out.extend(self.b4.iter().copied());
        for (r, o) in out.iter_mut().enumerate() {
            *o += own[r] + from_clicks[r] + from_ignores[r];
        }
        if let Some(set) = &self.set {
            // rho's input [sum phi_c, sum phi_i, log1p n_c, log1p n_i, a], then its hidden
            // layer and output, after the mean encoder's buffers.
            let base = scratch.len();
            let p = set.bc.len();
            scratch.resize(base + 3 * p + 2 + h + e, 0.0);
            let (head, tail) = scratch.split_at_mut(base);
            let (input, tail) = tail.split_at_mut(2 * p + 2 + h);
            let (inner, summary) = tail.split_at_mut(p);
            for (block, phi, set_items) in
                [(0, &set.phi_click, clicked), (p, &set.phi_ignore, ignored)]
            {
                let sum = &mut input[block..block + p];
                for item in set_items {
                    let row = &phi[item.index() * p..(item.index() + 1) * p];
                    sum.iter_mut().zip(row).for_each(|(s, x)| *s += x);
                }
                sum.iter_mut().for_each(|s| *s *= SET_SUM_SCALE);
            }
            input[2 * p] = (clicked.len() as f32).ln_1p();
            input[2 * p + 1] = (ignored.len() as f32).ln_1p();
            input[2 * p + 2..].copy_from_slice(&head[..h]);
            set.r1.apply(input, inner);
            for (v, b) in inner.iter_mut().zip(&set.b1) {
                *v = (b + *v).max(0.0);
            }
            set.r2.apply(inner, summary);
            for ((o, s), b) in out.iter_mut().zip(summary.iter()).zip(&set.b2) {
                *o += b + s;
            }
        }
        let hidden = &scratch[..h];
        self.bv
            + self
                .wv
                .iter()
                .zip(hidden.iter())
                .map(|(w, x)| w * x)
                .sum::<f32>()
    }

    /// The user vector `g` (into `out`) and the state value for a [`UserView`](crate::features::UserView): [`Frozen::user`]
    /// on the view's session, plus the long-run channel on the items before the recent window
    /// for a network with a memory ([`ModelConfig::memory`]).
    pub fn user_of(
        &self,
        view: &crate::features::UserView,
        scratch: &mut Vec<f32>,
        out: &mut Vec<f32>,
    ) -> f32 {
        let value = self.user(&view.input, &view.clicked, &view.ignored, scratch, out);
        if let Some((mc, mi)) = &self.memory {
            // `user` is done with `scratch`, so the memory's terms reuse it: a decision makes no
            // allocation for them.
            let e = self.embed;
            scratch.clear();
            scratch.resize(2 * e, 0.0);
            for (weights, set) in [(mc, &view.older_clicked), (mi, &view.older_ignored)] {
                self.mean_part_into(weights, set, scratch);
                out.iter_mut().zip(&scratch[e..]).for_each(|(o, p)| *o += p);
            }
        }
        value
    }

    /// `weights mean(h_j)` over `set` (zero for an empty set): one term of the tower's
    /// linear encoders.
    fn mean_part(&self, weights: &Dense, set: &[metarec_core::ItemId]) -> Vec<f32> {
        let mut buf = vec![0.0f32; 2 * self.embed];
        self.mean_part_into(weights, set, &mut buf);
        buf.split_off(self.embed)
    }

    /// [`Frozen::mean_part`] into the second half of `buf` (`2 embed` values; the first half
    /// holds the mean).
    fn mean_part_into(&self, weights: &Dense, set: &[metarec_core::ItemId], buf: &mut [f32]) {
        let e = self.embed;
        let (mean, out) = buf.split_at_mut(e);
        mean.fill(0.0);
        out.fill(0.0);
        if set.is_empty() {
            return;
        }
        for item in set {
            let v = &self.item_vectors[item.index() * e..(item.index() + 1) * e];
            mean.iter_mut().zip(v).for_each(|(m, x)| *m += x);
        }
        let inv = 1.0 / set.len() as f32;
        mean.iter_mut().for_each(|m| *m *= inv);
        weights.apply(mean, out);
    }

    /// [`Frozen::user_parts`] for a [`UserView`](crate::features::UserView): the long-run channel's terms count with the
    /// clicks and the ignores they read, so the parts still sum to [`Frozen::user_of`].
    pub fn user_parts_of(&self, view: &crate::features::UserView) -> UserParts {
        let mut parts = self.user_parts(&view.input, &view.clicked, &view.ignored);
        if let Some((mc, mi)) = &self.memory {
            for (weights, set, part) in [
                (mc, &view.older_clicked, &mut parts.clicks),
                (mi, &view.older_ignored, &mut parts.ignores),
            ] {
                let extra = self.mean_part(weights, set);
                part.iter_mut().zip(&extra).for_each(|(p, x)| *p += x);
            }
        }
        parts
    }

    /// The user vector split into its additive parts, so a score can be explained: `g = own +
    /// clicks + ignores + set`, with `own = W4 a + b4` (what the context and session counts
    /// say; with the set encoder, also its output for a session without items), `clicks = Wc
    /// mean(h_clicked)`, `ignores = Wi mean(h_ignored)` and `set` what the set encoder adds
    /// for the session's items (zero for the mean encoder). Their sum is what [`Frozen::user`]
    /// returns (up to float rounding).
    pub fn user_parts(
        &self,
        input: &[f32],
        clicked: &[metarec_core::ItemId],
        ignored: &[metarec_core::ItemId],
    ) -> UserParts {
        let mut scratch = Vec::new();
        let mut own = Vec::new();
        // The user tower with no history items gives the `own` part alone.
        self.user(input, &[], &[], &mut scratch, &mut own);
        let e = self.embed;
        // As the tower computes them: the mean item vector first, then one matrix product
        // (rather than one product per history item, which made explanations of a long
        // history cost more than the decision).
        let part = |weights: &Dense, set: &[metarec_core::ItemId]| self.mean_part(weights, set);
        let clicks = part(&self.wc, clicked);
        let ignores = part(&self.wi, ignored);
        // The set encoder's share is the rest: it reads clicks and ignores together, so it
        // does not split into one part for each.
        let set = match self.set {
            None => vec![0.0; e],
            Some(_) => {
                let mut g = Vec::new();
                self.user(input, clicked, ignored, &mut scratch, &mut g);
                (0..e)
                    .map(|k| g[k] - own[k] - clicks[k] - ignores[k])
                    .collect()
            }
        };
        UserParts {
            own,
            clicks,
            ignores,
            set,
        }
    }

    /// The user tower's encoder.
    pub fn encoder(&self) -> Encoder {
        match self.set {
            None => Encoder::Mean,
            Some(_) => Encoder::Set,
        }
    }

    /// `Wc h_j`: what one clicked item adds to the user vector, before averaging over the
    /// session's clicks.
    pub fn click_transform(&self, item: metarec_core::ItemId) -> Vec<f32> {
        let e = self.embed;
        let v = &self.item_vectors[item.index() * e..(item.index() + 1) * e];
        (0..e)
            .map(|r| self.wc.row(r).zip(v).map(|(w, x)| w * x).sum::<f32>())
            .collect()
    }

    /// Width of an item's feature row (the item tower's input besides the id embedding).
    pub fn item_dim(&self) -> usize {
        self.tower.item_dim
    }

    /// Items the network was trained with (those with an id embedding of their own).
    pub fn trained_items(&self) -> usize {
        self.tower.bias_id.len()
    }

    /// Items with tower outputs: the trained ones and any set since ([`Frozen::set_item`]).
    pub fn items(&self) -> usize {
        self.item_bias.len()
    }

    /// The item tower on one feature row: `h = W2 relu(W1 [x, id] + b1) + b2` and
    /// `c = bias_id + w_b . x + b_b`, exactly what [`TwoTower::items`] computes for a trained
    /// item when `id` is that item.
    ///
    /// An item the network was not trained with (`id` is `None` or past the trained items) has
    /// no id embedding of its own; it gets the mean of the trained ones, and the mean per-item
    /// bias term. The mean rather than zero: the id embeddings are free parameters that absorb,
    /// besides what is particular to each item, whatever shift training gave all of them
    /// alike, and the mean keeps that common part while dropping only the particular one,
    /// which a new item does not have. Zero would place a new item where no trained item's
    /// input ever was, and the tower's ReLU layer is not linear around it.
    pub fn item_output(
        &self,
        x: &[f32],
        id: Option<metarec_core::ItemId>,
    ) -> Result<ItemOutput, NeuralError> {
        let t = &self.tower;
        if x.len() != t.item_dim {
            return Err(NeuralError::Config(format!(
                "an item's feature row has {} values; the network reads {}",
                x.len(),
                t.item_dim
            )));
        }
        if x.iter().any(|v| !v.is_finite()) {
            return Err(NeuralError::Config(
                "an item's feature row holds a value that is not finite".into(),
            ));
        }
        let (emb, bias_id) = match id {
            Some(i) if i.index() < self.trained_items() => (
                &t.id_emb[i.index() * t.id_dim..(i.index() + 1) * t.id_dim],
                t.bias_id[i.index()],
            ),
            _ => (t.mean_id.as_slice(), t.mean_bias_id),
        };
        let width = t.item_dim + t.id_dim;
        let hidden: Vec<f32> =
            t.b1.iter()
                .enumerate()
                .map(|(r, b)| {
                    let row = &t.w1[r * width..(r + 1) * width];
                    let (wx, we) = row.split_at(t.item_dim);
                    let z = b
                        + wx.iter().zip(x).map(|(w, v)| w * v).sum::<f32>()
                        + we.iter().zip(emb).map(|(w, v)| w * v).sum::<f32>();
                    z.max(0.0)
                })
                .collect();
        let h = self.hidden;
        let vector =
            t.b2.iter()
                .enumerate()
                .map(|(r, b)| {
                    b + t.w2[r * h..(r + 1) * h]
                        .iter()
                        .zip(&hidden)
                        .map(|(w, v)| w * v)
                        .sum::<f32>()
                })
                .collect();
        let bias = bias_id + t.bb + t.wb.iter().zip(x).map(|(w, v)| w * v).sum::<f32>();
        Ok(ItemOutput { vector, bias })
    }

    /// Sets the tower outputs of `item`: replaces an item's, or appends a new item when `item`
    /// is the next id ([`Frozen::items`]). Every decision, explanation and adjuster update then
    /// reads them like a trained item's.
    pub fn set_item(
        &mut self,
        item: metarec_core::ItemId,
        output: &ItemOutput,
    ) -> Result<(), NeuralError> {
        let (i, n, e) = (item.index(), self.items(), self.embed);
        if output.vector.len() != e {
            return Err(NeuralError::Config(format!(
                "an item vector has {} values; the network's are {e} wide",
                output.vector.len()
            )));
        }
        if i < n {
            self.item_vectors[i * e..(i + 1) * e].copy_from_slice(&output.vector);
            self.item_bias[i] = output.bias;
            if let Some(set) = &mut self.set {
                let (c, ig) = set.rows(&output.vector);
                let h = c.len();
                set.phi_click[i * h..(i + 1) * h].copy_from_slice(&c);
                set.phi_ignore[i * h..(i + 1) * h].copy_from_slice(&ig);
            }
        } else if i == n {
            self.item_vectors.extend_from_slice(&output.vector);
            self.item_bias.push(output.bias);
            if let Some(set) = &mut self.set {
                let (c, ig) = set.rows(&output.vector);
                set.phi_click.extend_from_slice(&c);
                set.phi_ignore.extend_from_slice(&ig);
            }
        } else {
            return Err(NeuralError::Config(format!(
                "item {i} cannot be set: the network has {n} items, so the next new one is {n}"
            )));
        }
        Ok(())
    }

    /// The score of item `i` for user vector `g` with its session flags.
    #[inline]
    pub fn score(&self, g: &[f32], i: usize, ignored: bool, clicked: bool) -> f32 {
        let v = &self.item_vectors[i * self.embed..(i + 1) * self.embed];
        let mut s = self.item_bias[i] + g.iter().zip(v).map(|(a, b)| a * b).sum::<f32>();
        if ignored {
            s += self.flags[0];
        }
        if clicked {
            s += self.flags[1];
        }
        s
    }
}

/// Columns `c..c + 4` of four rows, transposed in SSE registers (part of every x86-64
/// processor): vector `i` holds column `c + i` of the four rows, row 0 in the lowest lane.
/// Each row has at least `c + 4` values.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
pub(crate) fn columns_of_four(rows: [&[f32]; 4], c: usize) -> [std::arch::x86_64::__m128; 4] {
    use std::arch::x86_64::{_MM_TRANSPOSE4_PS, _mm_loadu_ps};
    let quads = rows.map(|r| &r[c..c + 4]);
    // SAFETY: SSE is enabled on every x86-64 target, and each load reads the four values of a
    // slice of length 4.
    unsafe {
        let [mut v0, mut v1, mut v2, mut v3] = quads.map(|q| _mm_loadu_ps(q.as_ptr()));
        _MM_TRANSPOSE4_PS(&mut v0, &mut v1, &mut v2, &mut v3);
        [v0, v1, v2, v3]
    }
}

/// The user vector of [`Frozen::user`] in additive parts (see [`Frozen::user_parts`]).
#[derive(Debug, Clone, PartialEq)]
pub struct UserParts {
    /// `W4 a + b4`: the context, the session counts and the history's mean item inputs.
    pub own: Vec<f32>,
    /// `Wc mean(h_clicked)`: the items clicked in the session.
    pub clicks: Vec<f32>,
    /// `Wi mean(h_ignored)`: the items shown and passed over.
    pub ignores: Vec<f32>,
    /// What the set encoder adds for the session's clicked and ignored items together (zero
    /// for the mean encoder, [`Encoder::Mean`]).
    pub set: Vec<f32>,
}

/// The variables of a network in a fresh map, seeded.
pub fn build(
    config: ModelConfig,
    features: &Features,
    dtype: DType,
    seed: u64,
) -> Result<(VarMap, TwoTower), NeuralError> {
    let varmap = VarMap::new();
    let model = TwoTower::new(&varmap, dtype, config, features)?;
    init_seeded(&varmap, seed)?;
    Ok((varmap, model))
}

/// A set-encoder network that starts as the mean-encoder network in `varmap` (built with
/// `config` for `features`): every variable of the mean network is copied, and the set
/// encoder's own variables start as [`build`] seeds them, its output layer at zero, so the two
/// networks score every state alike until training moves them apart. This is how the demo
/// fine-tunes the shipped mean network with a set encoder, from the same start as its encoder
/// ablation (the mean network fine-tuned alike).
pub fn widen_to_set(
    varmap: &VarMap,
    config: ModelConfig,
    features: &Features,
    seed: u64,
) -> Result<(VarMap, TwoTower, ModelConfig), NeuralError> {
    if config.encoder != Encoder::Mean {
        return Err(NeuralError::Config(
            "only a mean-encoder network can be widened to a set encoder".into(),
        ));
    }
    let wide = ModelConfig {
        encoder: Encoder::Set,
        ..config
    };
    widen(varmap, features, seed, wide)
}

/// A network with a long-run memory of `window` recent events ([`ModelConfig::memory`]) that
/// starts as the network in `varmap` (built with `config`, without a memory): its memory maps
/// start at zero, so it scores every state as the network without a memory does until training
/// moves them. This is how a trained network learns to use a longer history (`metarec train
/// --resume --memory`).
pub fn widen_to_memory(
    varmap: &VarMap,
    config: ModelConfig,
    features: &Features,
    seed: u64,
    window: usize,
) -> Result<(VarMap, TwoTower, ModelConfig), NeuralError> {
    if config.memory != 0 {
        return Err(NeuralError::Config(format!(
            "the network already has a memory (a recent window of {} events)",
            config.memory
        )));
    }
    if window == 0 {
        return Err(NeuralError::Config(
            "a memory needs a recent window of at least one event".into(),
        ));
    }
    widen(
        varmap,
        features,
        seed,
        ModelConfig {
            memory: window,
            ..config
        },
    )
}

/// A network built as `wide` that holds every variable of `varmap` (which must all have a
/// place of the same shape in it); its other variables start as [`build`] seeds them.
fn widen(
    varmap: &VarMap,
    features: &Features,
    seed: u64,
    wide: ModelConfig,
) -> Result<(VarMap, TwoTower, ModelConfig), NeuralError> {
    let (widened, model) = build(wide, features, DType::F32, seed)?;
    let targets: std::collections::HashMap<String, Var> =
        sorted_vars(&widened).into_iter().collect();
    for (name, var) in sorted_vars(varmap) {
        let target = targets.get(&name).ok_or_else(|| {
            NeuralError::Config(format!(
                "variable `{name}` has no place in the wider network"
            ))
        })?;
        if target.dims() != var.dims() {
            return Err(NeuralError::Config(format!(
                "variable `{name}` is {:?} in the network but {:?} in the wider one",
                var.dims(),
                target.dims()
            )));
        }
        target.set(var.as_tensor())?;
    }
    Ok((widened, model, wide))
}

/// All variables of a map, sorted by name (the optimiser's and the checkpoint's order).
pub fn sorted_vars(varmap: &VarMap) -> Vec<(String, Var)> {
    let data = varmap.data().lock().unwrap_or_else(|e| e.into_inner());
    let mut vars: Vec<(String, Var)> = data.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    vars
}

#[cfg(test)]
pub(crate) mod tests;
