//! Tests of the two-tower network: shapes, gradients against finite differences, the frozen
//! copy against candle, and the widened networks.

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
    // Older items (before a memory's recent window): other items than the session's.
    let mut old_c = vec![0f64; s * 5];
    let mut old_i = vec![0f64; s * 5];
    old_c[4] = 0.5;
    old_c[1] = 0.5;
    old_i[5] = 1.0;
    old_c[10] = 1.0;
    let old_c = Tensor::from_vec(old_c, (s, 5), &dev).unwrap();
    let old_i = Tensor::from_vec(old_i, (s, 5), &dev).unwrap();
    let older = (model.config.memory > 0).then_some((&old_c, &old_i));
    let items = model.items(&x).unwrap();
    let users = model
        .users(&u, &clk_t, &ign_t, Some((&clk_t, &ign_t)), older, &items)
        .unwrap();
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
    // 18 variables: id embedding, 2 item layers, 2 bias terms, 2 user layers, the click and
    // ignore aggregations, the value head, the flags and the purchase head (weights and
    // biases); the set encoder adds phi_c, phi_i and rho's two layers, weights and biases.
    gradients_match_finite_differences(Encoder::Mean, 0, 18);
    gradients_match_finite_differences(Encoder::Set, 0, 26);
    // A long-run memory adds its two maps.
    gradients_match_finite_differences(Encoder::Mean, 20, 20);
    gradients_match_finite_differences(Encoder::Set, 20, 28);
}

fn gradients_match_finite_differences(encoder: Encoder, memory: usize, variables: usize) {
    let c = catalog();
    let f = Features::new(&c);
    let config = ModelConfig {
        id_dim: 3,
        hidden: 4,
        embed: 3,
        temperature: 0.7,
        feedback: true,
        encoder,
        // A set width other than the hidden width, so no shape is right by accident.
        set_width: 5,
        memory,
    };
    let (varmap, model) = build(config, &f, DType::F64, 3).unwrap();
    // Non-zero biases and flags, so their gradients are exercised away from 0, and a
    // non-zero output layer of the set encoder (it starts at zero, which would leave the
    // layers before it without a gradient).
    for (name, var) in sorted_vars(&varmap) {
        if (!name.ends_with("weight") && name != "item.id_emb")
            || name == "user.set.rho2.weight"
            || name.starts_with(MEMORY_PREFIX)
        {
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
    assert_eq!(checked, 3 * variables, "every variable is checked");
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
        assert_eq!(parts.set[k], 0.0, "the mean encoder has no set part");
    }
    // Each clicked item's share is its own transform over the number of clicks.
    let t1 = frozen.click_transform(clicked[0]);
    let t3 = frozen.click_transform(clicked[1]);
    for (k, c) in parts.clicks.iter().enumerate() {
        assert!((c - (t1[k] + t3[k]) / 2.0).abs() < 1e-6);
    }
    assert!(parts.clicks.iter().any(|v| v.abs() > 1e-6));
}

/// A network whose every variable is random (the set encoder's output layer included,
/// which otherwise starts at zero), so no part of the forward pass reads as zero.
fn randomised(encoder: Encoder, set_width: usize, seed: u64) -> (Features, TwoTower) {
    randomised_with_memory(encoder, set_width, 0, seed)
}

fn randomised_with_memory(
    encoder: Encoder,
    set_width: usize,
    memory: usize,
    seed: u64,
) -> (Features, TwoTower) {
    let f = Features::new(&catalog());
    let config = ModelConfig {
        id_dim: 3,
        hidden: 6,
        embed: 5,
        encoder,
        set_width,
        memory,
        ..ModelConfig::default()
    };
    let (varmap, model) = build(config, &f, DType::F32, seed).unwrap();
    randomise(&varmap, seed);
    (f, model)
}

/// Sets every variable of `varmap` to seeded normal noise.
pub(crate) fn randomise(varmap: &VarMap, seed: u64) {
    let mut rng = metarec_core::rng_for(seed, 1);
    let normal = Normal::new(0.0, 0.5).unwrap();
    for (_, var) in sorted_vars(varmap) {
        let t = var.as_tensor();
        let v: Vec<f32> = (0..t.elem_count())
            .map(|_| normal.sample(&mut rng) as f32)
            .collect();
        var.set(&Tensor::from_vec(v, t.dims(), &Device::Cpu).unwrap())
            .unwrap();
    }
}

/// Scores of random states from candle and from [`Frozen`]: `(candle, frozen)`, `S x N`.
fn both_scores(f: &Features, model: &TwoTower, seed: u64) -> (Vec<f32>, Vec<f32>) {
    use rand::Rng;
    let dev = Device::Cpu;
    let (n, ud, s) = (f.items(), f.user_dim(), 12);
    let mut rng = metarec_core::rng_for(seed, 2);
    let mut inputs = Vec::new();
    let mut sessions = Vec::new();
    for row in 0..s {
        inputs.extend((0..ud).map(|_| rng.random_range(-1.0f32..1.0)));
        // Sessions from empty to long, with repeats, as a long visit gives.
        let len = row * 3;
        let clicked: Vec<metarec_core::ItemId> = (0..len / 3)
            .map(|_| metarec_core::ItemId(rng.random_range(0..n as u32)))
            .collect();
        let ignored: Vec<metarec_core::ItemId> = (0..len)
            .map(|_| metarec_core::ItemId(rng.random_range(0..n as u32)))
            .collect();
        sessions.push((clicked, ignored));
    }
    // What came before a memory's recent window: none in the first rows, then more.
    let older: Vec<[Vec<metarec_core::ItemId>; 2]> = (0..s)
        .map(|row| {
            [row / 2, row].map(|len| {
                (0..len)
                    .map(|_| metarec_core::ItemId(rng.random_range(0..n as u32)))
                    .collect()
            })
        })
        .collect();
    let mut flags = [vec![0f32; s * n], vec![0f32; s * n]];
    let mut means = [vec![0f32; s * n], vec![0f32; s * n]];
    let mut counts = [vec![0f32; s * n], vec![0f32; s * n]];
    let mut older_means = [vec![0f32; s * n], vec![0f32; s * n]];
    for (row, (clicked, ignored)) in sessions.iter().enumerate() {
        for (k, set) in [clicked, ignored].into_iter().enumerate() {
            for i in set {
                flags[k][row * n + i.index()] = 1.0;
                means[k][row * n + i.index()] += 1.0 / set.len() as f32;
                counts[k][row * n + i.index()] += 1.0;
            }
        }
        for (k, set) in older[row].iter().enumerate() {
            for i in set {
                older_means[k][row * n + i.index()] += 1.0 / set.len() as f32;
            }
        }
    }
    let m = |v: &Vec<f32>| Tensor::from_vec(v.clone(), (s, n), &dev).unwrap();
    let x = crate::item_tensor(f).unwrap();
    let items = model.items(&x).unwrap();
    let u = Tensor::from_vec(inputs.clone(), (s, ud), &dev).unwrap();
    let (cc, ic) = (m(&counts[0]), m(&counts[1]));
    let (oc, oi) = (m(&older_means[0]), m(&older_means[1]));
    let with_memory = (model.config.memory > 0).then_some((&oc, &oi));
    let users = model
        .users(
            &u,
            &m(&means[0]),
            &m(&means[1]),
            Some((&cc, &ic)),
            with_memory,
            &items,
        )
        .unwrap();
    let candle = to_f32(
        &model
            .scores(&users, &items, &m(&flags[1]), &m(&flags[0]))
            .unwrap(),
    )
    .unwrap();
    let frozen = Frozen::from_model(model, &x).unwrap();
    let (mut scratch, mut g) = (Vec::new(), Vec::new());
    let mut fast = Vec::new();
    for (row, (clicked, ignored)) in sessions.iter().enumerate() {
        let [older_clicked, older_ignored] = older[row].clone();
        let view = crate::features::UserView {
            input: inputs[row * ud..(row + 1) * ud].to_vec(),
            clicked: clicked.clone(),
            ignored: ignored.clone(),
            older_clicked,
            older_ignored,
            ..Default::default()
        };
        frozen.user_of(&view, &mut scratch, &mut g);
        for i in 0..n {
            fast.push(frozen.score(
                &g,
                i,
                flags[1][row * n + i] > 0.0,
                flags[0][row * n + i] > 0.0,
            ));
        }
    }
    (candle, fast)
}

#[test]
fn frozen_scores_equal_the_candle_scores_for_both_encoders() {
    for (encoder, set_width, memory) in [
        (Encoder::Mean, 0, 0),
        (Encoder::Set, 0, 0),
        (Encoder::Set, 9, 0),
        (Encoder::Mean, 0, 20),
        (Encoder::Set, 0, 20),
    ] {
        for seed in [1, 2, 3] {
            let (f, model) = randomised_with_memory(encoder, set_width, memory, seed);
            let (candle, frozen) = both_scores(&f, &model, seed);
            assert_eq!(candle.len(), frozen.len());
            for (k, (a, b)) in candle.iter().zip(&frozen).enumerate() {
                assert!(
                    (a - b).abs() < 1e-5 * (1.0 + a.abs()),
                    "{encoder:?} ({set_width}) seed {seed}, score {k}: candle {a} vs frozen {b}"
                );
            }
        }
    }
}

#[test]
fn a_widened_network_scores_as_the_mean_network_it_came_from() {
    let (f, config, varmap, mean) = random_mean_network();
    let (widened, set, wide) = widen_to_set(&varmap, config, &f, 9).unwrap();
    assert_eq!(wide.encoder, Encoder::Set);
    assert!(sorted_vars(&widened).len() > sorted_vars(&varmap).len());
    let (_, before) = both_scores(&f, &mean, 3);
    let (candle, after) = both_scores(&f, &set, 3);
    assert_eq!(before.len(), after.len());
    for (k, ((a, b), c)) in before.iter().zip(&after).zip(&candle).enumerate() {
        assert!(
            (a - b).abs() < 1e-5 * (1.0 + a.abs()),
            "score {k}: {a} vs {b}"
        );
        assert!(
            (b - c).abs() < 1e-5 * (1.0 + b.abs()),
            "score {k}: {b} vs {c}"
        );
    }
    // A set network cannot be widened again.
    assert!(widen_to_set(&widened, wide, &f, 9).is_err());
}

#[test]
fn a_network_given_a_memory_scores_as_before_until_its_memory_is_trained() {
    let (f, config, varmap, plain) = random_mean_network();
    let (widened, remembering, wide) = widen_to_memory(&varmap, config, &f, 9, 20).unwrap();
    assert_eq!(wide.memory, 20);
    assert_eq!(
        sorted_vars(&widened).len(),
        sorted_vars(&varmap).len() + 2,
        "the memory adds its two maps"
    );
    // The states have older items; the new maps are zero, so they change nothing yet.
    let (_, before) = both_scores(&f, &plain, 3);
    let (_, after) = both_scores(&f, &remembering, 3);
    assert_eq!(before, after);
    // Once the maps are not zero, the older items move the scores (and the frozen copy
    // still computes what candle does).
    randomise(&widened, 6);
    let (candle, moved) = both_scores(&f, &remembering, 3);
    let (_, without) = both_scores(&f, &plain_of(&widened, &f, wide), 3);
    assert!(
        moved
            .iter()
            .zip(&without)
            .any(|(a, b)| (a - b).abs() > 1e-3)
    );
    for (a, b) in candle.iter().zip(&moved) {
        assert!((a - b).abs() < 1e-5 * (1.0 + a.abs()), "{a} vs {b}");
    }
    // An explanation's parts still add up to the user vector, the memory's terms counted
    // with the clicks and the ignores.
    let x = crate::item_tensor(&f).unwrap();
    let frozen = Frozen::from_model(&remembering, &x).unwrap();
    let id = metarec_core::ItemId;
    let view = crate::features::UserView {
        input: (0..f.user_dim()).map(|i| (i as f32 * 0.37).cos()).collect(),
        clicked: vec![id(1)],
        ignored: vec![id(0)],
        older_clicked: vec![id(2), id(3)],
        older_ignored: vec![id(4)],
        ..Default::default()
    };
    let (mut scratch, mut g) = (Vec::new(), Vec::new());
    frozen.user_of(&view, &mut scratch, &mut g);
    let parts = frozen.user_parts_of(&view);
    let recent = frozen.user_parts(&view.input, &view.clicked, &view.ignored);
    assert!(
        parts
            .clicks
            .iter()
            .zip(&recent.clicks)
            .any(|(a, b)| (a - b).abs() > 1e-4)
    );
    for (k, gk) in g.iter().enumerate() {
        let sum = parts.own[k] + parts.clicks[k] + parts.ignores[k] + parts.set[k];
        assert!((sum - gk).abs() < 1e-4, "{k}: {sum} vs {gk}");
    }
    // A network cannot gain a second memory, nor an empty one.
    assert!(widen_to_memory(&widened, wide, &f, 9, 20).is_err());
    assert!(widen_to_memory(&varmap, config, &f, 9, 0).is_err());
}

/// A small mean network with random weights everywhere (so a copy of it cannot pass by the
/// seeding alone), and what it was built from.
fn random_mean_network() -> (Features, ModelConfig, VarMap, TwoTower) {
    let f = Features::new(&catalog());
    let config = ModelConfig {
        id_dim: 3,
        hidden: 6,
        embed: 5,
        ..ModelConfig::default()
    };
    let (varmap, model) = build(config, &f, DType::F32, 5).unwrap();
    randomise(&varmap, 5);
    (f, config, varmap, model)
}

/// The network in `varmap` (built with `config`, which has a memory) read without its
/// memory: the same weights, the long-run channel left out.
fn plain_of(varmap: &VarMap, f: &Features, config: ModelConfig) -> TwoTower {
    let plain = ModelConfig {
        memory: 0,
        ..config
    };
    let (copy, model) = build(plain, f, DType::F32, 1).unwrap();
    let source: std::collections::HashMap<String, Var> = sorted_vars(varmap).into_iter().collect();
    for (name, var) in sorted_vars(&copy) {
        var.set(source[&name].as_tensor()).unwrap();
    }
    model
}

#[test]
fn the_set_encoder_changes_scores_and_its_parts_add_up() {
    let (f, model) = randomised(Encoder::Set, 0, 4);
    let x = crate::item_tensor(&f).unwrap();
    let frozen = Frozen::from_model(&model, &x).unwrap();
    assert_eq!(frozen.encoder(), Encoder::Set);
    let input: Vec<f32> = (0..f.user_dim()).map(|i| (i as f32 * 0.37).cos()).collect();
    let one = [metarec_core::ItemId(1)];
    let ten = [metarec_core::ItemId(1); 10];
    let ignored = [metarec_core::ItemId(0), metarec_core::ItemId(2)];
    let (mut scratch, mut g1, mut g10) = (Vec::new(), Vec::new(), Vec::new());
    frozen.user(&input, &one, &ignored, &mut scratch, &mut g1);
    frozen.user(&input, &ten, &ignored, &mut scratch, &mut g10);
    // One click and ten clicks of the same item have the same mean; only the set
    // encoder's sums tell them apart.
    assert!(g1.iter().zip(&g10).any(|(a, b)| (a - b).abs() > 1e-4));
    let parts = frozen.user_parts(&input, &ten, &ignored);
    assert!(parts.set.iter().any(|v| v.abs() > 1e-6));
    for (k, gk) in g10.iter().enumerate() {
        let sum = parts.own[k] + parts.clicks[k] + parts.ignores[k] + parts.set[k];
        assert!((sum - gk).abs() < 1e-4, "{k}: {sum} vs {gk}");
    }
    // An item set later gets its phi rows, like one precomputed.
    let mut moved = frozen.clone();
    let out = moved
        .item_output(
            f.item_input(metarec_core::ItemId(3)),
            Some(metarec_core::ItemId(3)),
        )
        .unwrap();
    moved.set_item(metarec_core::ItemId(5), &out).unwrap();
    let (mut a, mut b) = (Vec::new(), Vec::new());
    frozen.user(
        &input,
        &[metarec_core::ItemId(3)],
        &[],
        &mut scratch,
        &mut a,
    );
    moved.user(
        &input,
        &[metarec_core::ItemId(5)],
        &[],
        &mut scratch,
        &mut b,
    );
    for (x, y) in a.iter().zip(&b) {
        assert!((x - y).abs() < 1e-5, "{x} vs {y}");
    }
}

#[test]
fn a_set_network_starts_as_the_mean_network_of_its_seed() {
    let f = Features::new(&catalog());
    let config = |encoder| ModelConfig {
        encoder,
        ..ModelConfig::default()
    };
    let x = crate::item_tensor(&f).unwrap();
    let frozen = |encoder| {
        let (varmap, model) = build(config(encoder), &f, DType::F32, 9).unwrap();
        (varmap, Frozen::from_model(&model, &x).unwrap())
    };
    let (mean_vars, mean) = frozen(Encoder::Mean);
    let (set_vars, set) = frozen(Encoder::Set);
    // Every shared variable is drawn alike, and the set encoder adds only its own.
    let shared: Vec<(String, Vec<f32>)> = sorted_vars(&set_vars)
        .into_iter()
        .filter(|(name, _)| !name.starts_with(SET_PREFIX))
        .map(|(name, v)| (name, to_f32(v.as_tensor()).unwrap()))
        .collect();
    let before: Vec<(String, Vec<f32>)> = sorted_vars(&mean_vars)
        .into_iter()
        .map(|(name, v)| (name, to_f32(v.as_tensor()).unwrap()))
        .collect();
    assert_eq!(shared, before);
    let input: Vec<f32> = (0..f.user_dim()).map(|i| (i as f32 * 0.11).sin()).collect();
    let clicked = [metarec_core::ItemId(2), metarec_core::ItemId(2)];
    let ignored = [metarec_core::ItemId(4)];
    let (mut scratch, mut a, mut b) = (Vec::new(), Vec::new(), Vec::new());
    let va = mean.user(&input, &clicked, &ignored, &mut scratch, &mut a);
    let vb = set.user(&input, &clicked, &ignored, &mut scratch, &mut b);
    assert_eq!((a, va), (b, vb));
}

#[test]
fn a_manifest_without_an_encoder_reads_as_the_mean_encoder() {
    // The shipped network's manifest was written before the encoder existed.
    let dir =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../metarec/pretrained/default");
    let text = std::fs::read_to_string(dir.join("manifest.json")).unwrap();
    assert!(!text.contains("encoder"));
    let manifest = crate::checkpoint::read_manifest(&dir).unwrap();
    assert_eq!(manifest.model.encoder, Encoder::Mean);
    assert_eq!(manifest.train.model.encoder, Encoder::Mean);
    // A mean network's manifest still leaves the field out; a set network's records it.
    let json = serde_json::to_string(&ModelConfig::default()).unwrap();
    assert!(!json.contains("encoder"), "{json}");
    let set = ModelConfig {
        encoder: Encoder::Set,
        ..ModelConfig::default()
    };
    let json = serde_json::to_string(&set).unwrap();
    assert!(json.contains(r#""encoder":"set""#), "{json}");
    assert_eq!(serde_json::from_str::<ModelConfig>(&json).unwrap(), set);
    assert!(serde_json::from_str::<ModelConfig>(r#"{"encoder":"deep"}"#).is_err());
    assert_eq!(Encoder::parse("set").unwrap(), Encoder::Set);
    assert!(Encoder::parse("sum").is_err());
}
