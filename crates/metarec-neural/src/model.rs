//! The two-tower network, on candle for training and as plain Rust for serving.
//!
//! ```text
//! item tower:  h_i  = W2 relu(W1 [x_i, id_i] + b1) + b2            (id_i: learned id embedding)
//!              c_i  = bias_id[i] + w_b . x_i + b_b                  (item bias)
//! user tower:  a    = relu(W3 u + b3);  V(u) = w_v . a + b_v
//!              g    = W4 a + b4 + Wc mean(h_j: j clicked) + Wi mean(h_j: j ignored)
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

use crate::error::NeuralError;
use crate::features::Features;
use candle_core::{DType, Device, Tensor, Var};
use candle_nn::{Linear, Module, VarBuilder, VarMap};
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
}

impl Default for ModelConfig {
    fn default() -> Self {
        ModelConfig {
            id_dim: 8,
            hidden: 32,
            embed: 16,
            temperature: 1.0,
            feedback: true,
        }
    }
}

impl ModelConfig {
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
}

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
    pub fn users(
        &self,
        u: &Tensor,
        clicked_mean: &Tensor,
        ignored_mean: &Tensor,
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
        let vectors = ((own + from_clicks)? + from_ignores)?;
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
pub fn init_seeded(varmap: &VarMap, seed: u64) -> Result<(), NeuralError> {
    let mut rng = metarec_core::rng_for(seed, 0x6e6e);
    let data = varmap
        .data()
        .lock()
        .map_err(|_| NeuralError::Config("poisoned variable map".into()))?;
    let mut names: Vec<&String> = data.keys().collect();
    names.sort();
    for name in names {
        let var = &data[name];
        let dims = var.dims().to_vec();
        let count: usize = dims.iter().product();
        let values: Vec<f64> = if name.ends_with("weight") {
            let fan_in = *dims.last().unwrap_or(&1) as f64;
            let normal = Normal::new(0.0, (1.0 / fan_in).sqrt())
                .map_err(|e| NeuralError::Config(e.to_string()))?;
            (0..count).map(|_| normal.sample(&mut rng)).collect()
        } else if name == "item.id_emb" {
            let normal = Normal::new(0.0, 0.1).map_err(|e| NeuralError::Config(e.to_string()))?;
            (0..count).map(|_| normal.sample(&mut rng)).collect()
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
    w3: Vec<f32>,
    b3: Vec<f32>,
    w4: Vec<f32>,
    b4: Vec<f32>,
    wc: Vec<f32>,
    wi: Vec<f32>,
    wv: Vec<f32>,
    bv: f32,
    /// Weights of the ignored and clicked flags.
    pub flags: [f32; 2],
    /// The policy's temperature.
    pub temperature: f64,
    /// The item tower's own weights, so that an item the network was not trained with can be
    /// scored from its features ([`Frozen::item_output`]).
    tower: ItemTower,
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
        Ok(Frozen {
            tower,
            embed: model.config.embed,
            hidden: model.config.hidden,
            user_dim: model.user_l1.weight().dims()[1],
            item_vectors: to_f32(&items.vectors)?,
            item_bias: to_f32(&items.bias)?,
            w3: to_f32(model.user_l1.weight())?,
            b3: model
                .user_l1
                .bias()
                .map(to_f32)
                .transpose()?
                .unwrap_or_default(),
            w4: to_f32(model.user_l2.weight())?,
            b4: model
                .user_l2
                .bias()
                .map(to_f32)
                .transpose()?
                .unwrap_or_default(),
            wc: to_f32(model.user_click.weight())?,
            wi: to_f32(model.user_ignore.weight())?,
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
        row_dots(&self.w3, self.user_dim, input, hidden);
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
        row_dots(&self.w4, h, hidden, own);
        row_dots(&self.wc, e, click_mean, from_clicks);
        row_dots(&self.wi, e, ignore_mean, from_ignores);
        out.clear();
        out.extend(self.b4.iter().copied());
        for (r, o) in out.iter_mut().enumerate() {
            *o += own[r] + from_clicks[r] + from_ignores[r];
        }
        self.bv
            + self
                .wv
                .iter()
                .zip(hidden.iter())
                .map(|(w, x)| w * x)
                .sum::<f32>()
    }

    /// The user vector split into its three additive parts, so a score can be explained: `g =
    /// own + clicks + ignores`, with `own = W4 a + b4` (what the context and session counts
    /// say), `clicks = Wc mean(h_clicked)` and `ignores = Wi mean(h_ignored)`. Their sum is what
    /// [`Frozen::user`] returns (up to float rounding).
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
        let mut clicks = vec![0.0; self.embed];
        for item in clicked {
            let t = self.click_transform(*item);
            let inv = 1.0 / clicked.len() as f32;
            clicks.iter_mut().zip(&t).for_each(|(c, x)| *c += x * inv);
        }
        let mut ignores = vec![0.0; self.embed];
        let e = self.embed;
        for item in ignored {
            let v = &self.item_vectors[item.index() * e..(item.index() + 1) * e];
            let inv = 1.0 / ignored.len() as f32;
            for (r, o) in ignores.iter_mut().enumerate() {
                let wi = &self.wi[r * e..(r + 1) * e];
                *o += inv * wi.iter().zip(v).map(|(w, x)| w * x).sum::<f32>();
            }
        }
        UserParts {
            own,
            clicks,
            ignores,
        }
    }

    /// `Wc h_j`: what one clicked item adds to the user vector, before averaging over the
    /// session's clicks.
    pub fn click_transform(&self, item: metarec_core::ItemId) -> Vec<f32> {
        let e = self.embed;
        let v = &self.item_vectors[item.index() * e..(item.index() + 1) * e];
        (0..e)
            .map(|r| {
                self.wc[r * e..(r + 1) * e]
                    .iter()
                    .zip(v)
                    .map(|(w, x)| w * x)
                    .sum::<f32>()
            })
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
        } else if i == n {
            self.item_vectors.extend_from_slice(&output.vector);
            self.item_bias.push(output.bias);
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

/// `out[r]` = row `r` of the row-major `w` (`cols` wide) dotted with `x`, for each row `r` of
/// `out`: the f32 products summed in column order from -0.0, exactly as `Iterator::sum` sums
/// one row, so the results are bit-identical to a row at a time. Four rows go together so the
/// processor has four independent chains of additions to overlap instead of one.
fn row_dots(w: &[f32], cols: usize, x: &[f32], out: &mut [f32]) {
    let m = cols.min(x.len());
    let x = &x[..m];
    for (q, o) in out.chunks_exact_mut(4).enumerate() {
        let rows = &w[4 * q * cols..(4 * q + 4) * cols];
        let (r0, rest) = rows.split_at(cols);
        let (r1, rest) = rest.split_at(cols);
        let (r2, r3) = rest.split_at(cols);
        let (r0, r1, r2, r3) = (&r0[..m], &r1[..m], &r2[..m], &r3[..m]);
        let mut acc = [-0.0f32; 4];
        for c in 0..m {
            acc[0] += r0[c] * x[c];
            acc[1] += r1[c] * x[c];
            acc[2] += r2[c] * x[c];
            acc[3] += r3[c] * x[c];
        }
        o.copy_from_slice(&acc);
    }
    let done = out.len() / 4 * 4;
    for (r, o) in out.iter_mut().enumerate().skip(done) {
        let row = &w[r * cols..(r + 1) * cols];
        *o = row.iter().zip(x).map(|(a, b)| a * b).sum::<f32>();
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

/// All variables of a map, sorted by name (the optimiser's and the checkpoint's order).
pub fn sorted_vars(varmap: &VarMap) -> Vec<(String, Var)> {
    let data = varmap.data().lock().unwrap_or_else(|e| e.into_inner());
    let mut vars: Vec<(String, Var)> = data.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    vars
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::loss::{
        bce_with_logits, first_position_entropy, plackett_luce_log_prob, position_masks,
    };
    use metarec_core::{Catalog, Item};

    fn catalog() -> Catalog {
        let mut c = Catalog::new(vec!["a".into(), "b".into()]);
        for i in 0..5 {
            c.push(Item {
                key: format!("i{i}"),
                features: vec![(i as f32 * 0.7).sin(), i as f32 / 5.0],
                ..Item::default()
            })
            .unwrap();
        }
        c
    }

    /// A scalar loss touching every variable: Plackett-Luce log-probabilities weighted by fixed
    /// advantages, the value, the entropy and both cross-entropies.
    fn loss(model: &TwoTower, f: &Features) -> Tensor {
        let dev = Device::Cpu;
        let x = Tensor::from_vec(
            f.item_inputs()
                .iter()
                .map(|&v| f64::from(v))
                .collect::<Vec<_>>(),
            (f.items(), f.item_dim()),
            &dev,
        )
        .unwrap();
        let s = 3;
        let u: Vec<f64> = (0..s * f.user_dim())
            .map(|i| ((i * 7 % 11) as f64 - 5.0) / 7.0)
            .collect();
        let u = Tensor::from_vec(u, (s, f.user_dim()), &dev).unwrap();
        let mut ign = vec![0f64; s * 5];
        let mut clk = vec![0f64; s * 5];
        ign[1] = 1.0;
        clk[5 + 3] = 1.0;
        clk[10 + 2] = 1.0;
        ign[10 + 4] = 1.0;
        let ign_t = Tensor::from_vec(ign.clone(), (s, 5), &dev).unwrap();
        let clk_t = Tensor::from_vec(clk.clone(), (s, 5), &dev).unwrap();
        let items = model.items(&x).unwrap();
        let users = model.users(&u, &clk_t, &ign_t, &items).unwrap();
        let scores = model.scores(&users, &items, &ign_t, &clk_t).unwrap();
        let chosen = vec![vec![0u32, 2], vec![4, 1], vec![3, 0]];
        let masks = position_masks(&chosen, 5, DType::F64).unwrap();
        let lp = plackett_luce_log_prob(&scores, &chosen, &masks, 0.7).unwrap();
        let adv = Tensor::new(&[1.5f64, -0.5, 0.8], &dev).unwrap();
        let actor = (lp * adv).unwrap().sum_all().unwrap();
        let critic = users.value.sqr().unwrap().sum_all().unwrap();
        let ent = first_position_entropy(&scores, 0.7)
            .unwrap()
            .sum_all()
            .unwrap();
        let flat = scores.flatten_all().unwrap();
        let picked = flat
            .index_select(&Tensor::new(&[0u32, 7, 13], &dev).unwrap(), 0)
            .unwrap();
        let targets = Tensor::new(&[1f64, 0.0, 1.0], &dev).unwrap();
        let click = bce_with_logits(&picked, &targets).unwrap();
        let buy = bce_with_logits(&model.purchase_logits(&picked).unwrap(), &targets).unwrap();
        let total = (((actor + critic).unwrap() + ent).unwrap() + click).unwrap();
        (total + buy).unwrap()
    }

    #[test]
    fn every_layer_gradient_matches_finite_differences() {
        let c = catalog();
        let f = Features::new(&c);
        let config = ModelConfig {
            id_dim: 3,
            hidden: 4,
            embed: 3,
            temperature: 0.7,
            feedback: true,
        };
        let (varmap, model) = build(config, &f, DType::F64, 3).unwrap();
        // Non-zero biases and flags, so their gradients are exercised away from 0.
        for (name, var) in sorted_vars(&varmap) {
            if !name.ends_with("weight") && name != "item.id_emb" {
                let t = var.as_tensor();
                let n = t.elem_count();
                let v: Vec<f64> = (0..n).map(|i| 0.1 + 0.05 * i as f64).collect();
                var.set(&Tensor::from_vec(v, t.dims(), &Device::Cpu).unwrap())
                    .unwrap();
            }
        }
        let grads = loss(&model, &f).backward().unwrap();
        let eps = 1e-6;
        let mut checked = 0;
        for (name, var) in sorted_vars(&varmap) {
            let g = grads
                .get(var.as_tensor())
                .unwrap_or_else(|| panic!("no gradient for {name}"));
            let g: Vec<f64> = g.flatten_all().unwrap().to_vec1().unwrap();
            let base: Vec<f64> = var.as_tensor().flatten_all().unwrap().to_vec1().unwrap();
            let dims = var.dims().to_vec();
            // A few entries per variable: first, middle, last.
            for &j in &[0, base.len() / 2, base.len() - 1] {
                let mut plus = base.clone();
                plus[j] += eps;
                var.set(&Tensor::from_vec(plus, dims.as_slice(), &Device::Cpu).unwrap())
                    .unwrap();
                let lp = loss(&model, &f).to_scalar::<f64>().unwrap();
                let mut minus = base.clone();
                minus[j] -= eps;
                var.set(&Tensor::from_vec(minus, dims.as_slice(), &Device::Cpu).unwrap())
                    .unwrap();
                let lm = loss(&model, &f).to_scalar::<f64>().unwrap();
                var.set(&Tensor::from_vec(base.clone(), dims.as_slice(), &Device::Cpu).unwrap())
                    .unwrap();
                let numeric = (lp - lm) / (2.0 * eps);
                let tolerance = 1e-5 * (1.0 + numeric.abs().max(g[j].abs()));
                assert!(
                    (numeric - g[j]).abs() < tolerance,
                    "{name}[{j}]: autograd {} vs numeric {numeric}",
                    g[j]
                );
                checked += 1;
            }
        }
        // 18 variables: id embedding, 2 item layers, 2 bias terms, 2 user layers, the click and
        // ignore aggregations, the value head, the flags and the purchase head (weights and biases).
        assert_eq!(checked, 3 * 18, "every variable is checked");
    }

    #[test]
    fn the_same_seed_gives_the_same_network() {
        let f = Features::new(&catalog());
        let values = |seed| {
            let (varmap, _) = build(ModelConfig::default(), &f, DType::F32, seed).unwrap();
            sorted_vars(&varmap)
                .into_iter()
                .flat_map(|(_, v)| {
                    v.as_tensor()
                        .flatten_all()
                        .unwrap()
                        .to_vec1::<f32>()
                        .unwrap()
                })
                .collect::<Vec<f32>>()
        };
        assert_eq!(values(5), values(5));
        assert_ne!(values(5), values(6));
    }

    #[test]
    fn the_item_tower_on_a_feature_row_is_the_candle_tower() {
        let c = catalog();
        let f = Features::new(&c);
        let (_, model) = build(ModelConfig::default(), &f, DType::F32, 4).unwrap();
        let items = crate::item_tensor(&f).unwrap();
        let mut frozen = Frozen::from_model(&model, &items).unwrap();
        assert_eq!((frozen.trained_items(), frozen.items()), (5, 5));
        let e = frozen.embed;
        // A trained item with its own id embedding gives the precomputed outputs.
        for i in 0..5 {
            let id = metarec_core::ItemId(i as u32);
            let out = frozen.item_output(f.item_input(id), Some(id)).unwrap();
            for (a, b) in out
                .vector
                .iter()
                .zip(&frozen.item_vectors[i * e..(i + 1) * e])
            {
                assert!((a - b).abs() < 1e-5, "item {i}: {a} vs {b}");
            }
            assert!((out.bias - frozen.item_bias[i]).abs() < 1e-5);
        }
        // A new item: the candle tower on [x, mean id embedding], bias with the mean bias term.
        let x = [0.25f32, -1.5];
        let out = frozen.item_output(&x, None).unwrap();
        let ids = model.id_emb.mean(0).unwrap().unsqueeze(0).unwrap();
        let xt = Tensor::new(&x, &Device::Cpu).unwrap().unsqueeze(0).unwrap();
        let input = Tensor::cat(&[&xt, &ids], 1).unwrap();
        let hidden = model.item_l1.forward(&input).unwrap().relu().unwrap();
        let expected = to_f32(&model.item_l2.forward(&hidden).unwrap()).unwrap();
        for (a, b) in out.vector.iter().zip(&expected) {
            assert!((a - b).abs() < 1e-5, "{a} vs {b}");
        }
        let bias = to_f32(&model.bias_id.mean(0).unwrap()).unwrap()[0]
            + to_f32(&model.bias_lin.forward(&xt).unwrap()).unwrap()[0];
        assert!((out.bias - bias).abs() < 1e-5);
        // Set as item 5, it scores like any other item.
        frozen.set_item(metarec_core::ItemId(5), &out).unwrap();
        assert_eq!(frozen.items(), 6);
        let g = vec![0.5f32; e];
        let dot: f32 = g.iter().zip(&out.vector).map(|(a, b)| a * b).sum();
        assert!((frozen.score(&g, 5, false, false) - (dot + out.bias)).abs() < 1e-5);
        // Bad rows and gaps are errors, not panics.
        assert!(frozen.item_output(&[1.0], None).is_err());
        assert!(frozen.item_output(&[f32::NAN, 0.0], None).is_err());
        assert!(frozen.set_item(metarec_core::ItemId(9), &out).is_err());
    }

    #[test]
    fn the_user_vector_parts_add_up_to_the_user_vector() {
        let c = catalog();
        let f = Features::new(&c);
        let (_, model) = build(ModelConfig::default(), &f, DType::F32, 3).unwrap();
        let items = crate::item_tensor(&f).unwrap();
        let frozen = Frozen::from_model(&model, &items).unwrap();
        let input: Vec<f32> = (0..f.user_dim()).map(|i| (i as f32 * 0.37).cos()).collect();
        let clicked = [metarec_core::ItemId(1), metarec_core::ItemId(3)];
        let ignored = [metarec_core::ItemId(0)];
        let (mut scratch, mut g) = (Vec::new(), Vec::new());
        frozen.user(&input, &clicked, &ignored, &mut scratch, &mut g);
        let parts = frozen.user_parts(&input, &clicked, &ignored);
        for (k, gk) in g.iter().enumerate() {
            let sum = parts.own[k] + parts.clicks[k] + parts.ignores[k];
            assert!((sum - gk).abs() < 1e-5, "{k}: {sum} vs {gk}");
        }
        // Each clicked item's share is its own transform over the number of clicks.
        let t1 = frozen.click_transform(clicked[0]);
        let t3 = frozen.click_transform(clicked[1]);
        for (k, c) in parts.clicks.iter().enumerate() {
            assert!((c - (t1[k] + t3[k]) / 2.0).abs() < 1e-6);
        }
        assert!(parts.clicks.iter().any(|v| v.abs() > 1e-6));
    }
}
