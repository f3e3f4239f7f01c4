//! Training on a toy shop with a known best policy, reproducibility, and checkpoints.

use metarec_core::{
    Catalog, Context, Decision, Environment, Feedback, Item, ItemId, Oracle, PastEvent, RewardFn,
    Step, UserKey, rng_for,
};
use metarec_neural::NeuralError;
use metarec_neural::checkpoint::{self, DataSource, Manifest};
use metarec_neural::features::{Features, UserView};
use metarec_neural::model::ModelConfig;
use metarec_neural::train::{self, Algo, TrainConfig, TrainData, Trainer};
use rand::Rng as _;

/// Six items; user `n` loves item `n % 3` (clicks it 90% of the time when shown first, less
/// lower down) and barely clicks anything else. The context token says which group the user is
/// in, so a good policy can serve each user their item from the first slate; a shop that hides
/// it leaves only the clicks to tell.
struct ToyShop {
    catalog: Catalog,
    hides_group: bool,
    user: u64,
    step: u32,
    history: Vec<PastEvent>,
    rng: metarec_core::Rng,
}

impl ToyShop {
    fn new() -> ToyShop {
        let mut catalog = Catalog::new(vec!["a".into(), "b".into()]);
        for i in 0..6 {
            catalog
                .push(Item {
                    key: format!("i{i}"),
                    features: vec![i as f32 / 6.0, ((i * 5) % 6) as f32 / 6.0],
                    ..Item::default()
                })
                .unwrap();
        }
        ToyShop {
            catalog,
            hides_group: false,
            user: 0,
            step: 0,
            history: Vec::new(),
            rng: rng_for(0, 0),
        }
    }

    fn context(&self) -> Context {
        let mut c = Context::for_user(UserKey(format!("u{}", self.user)));
        if !self.hides_group {
            c.tokens = vec![format!("group={}", self.user % 3)];
        }
        c.session.step = self.step;
        c.session.history = self.history.clone();
        c
    }
}

impl Environment for ToyShop {
    fn catalog(&self) -> &Catalog {
        &self.catalog
    }
    fn slate_size(&self) -> usize {
        2
    }
    fn reset(&mut self, user: u64) -> Context {
        self.user = user;
        self.step = 0;
        self.history.clear();
        self.rng = rng_for(99, user);
        self.context()
    }
    fn step(&mut self, decision: &Decision) -> Step {
        let mut feedback = Feedback::none(decision.slate.len());
        for (k, item) in decision.slate.items().iter().enumerate() {
            let loved = item.0 as u64 == self.user % 3;
            let p = if loved { 0.9 / (k + 1) as f64 } else { 0.02 };
            feedback.clicks[k] = self.rng.random::<f64>() < p;
            self.history.push(PastEvent {
                item: *item,
                click: feedback.clicks[k],
                purchase: false,
            });
        }
        self.step += 1;
        let next = (self.step < 4).then(|| self.context());
        Step { feedback, next }
    }
}

impl ToyShop {
    /// The click probability of `item` at position `k` for the current user.
    fn click_probability(&self, item: ItemId, k: usize) -> f64 {
        if item.0 as u64 == self.user % 3 {
            0.9 / (k + 1) as f64
        } else {
            0.02
        }
    }
}

/// The toy shop's hidden side, with the default [`Oracle::item_values`].
impl Oracle for ToyShop {
    fn expected_reward(&self, slate: &[ItemId], reward: &RewardFn) -> f64 {
        let clicks: f64 = slate
            .iter()
            .enumerate()
            .map(|(k, &item)| self.click_probability(item, k))
            .sum();
        clicks * reward.click_weight()
    }
    fn oracle_slate(&self, _: &RewardFn) -> Vec<ItemId> {
        let loved = (self.user % 3) as u32;
        vec![ItemId(loved), ItemId((loved + 1) % 3)]
    }
}

fn config(iterations: usize) -> TrainConfig {
    TrainConfig {
        algo: Algo::Reinforce,
        model: ModelConfig {
            id_dim: 4,
            hidden: 16,
            embed: 8,
            temperature: 1.0,
            feedback: true,
            ..ModelConfig::default()
        },
        iterations,
        batch: 32,
        learning_rate: 0.02,
        entropy: 0.0,
        value_weight: 0.5,
        seed: 5,
        user_streams: false,
        imitate_depth: 0,
        catalog_softmax: false,
        rollout_temperature: None,
    }
}

fn clicks_only() -> RewardFn {
    RewardFn::new(1.0, 0.0, 0.0, 0.9).unwrap()
}

#[test]
fn reinforce_and_actor_critic_learn_the_toy_shop() {
    for algo in [Algo::Reinforce, Algo::ActorCritic] {
        let mut env = ToyShop::new();
        let mut cfg = config(150);
        cfg.algo = algo;
        let mut trainer = Trainer::new(env.catalog(), clicks_only(), cfg).unwrap();
        let mut rewards = Vec::new();
        trainer
            .train(&mut env, TrainData::default(), |_, s| {
                rewards.push(s.reward_per_user);
                Ok::<(), NeuralError>(())
            })
            .unwrap();
        let first: f64 = rewards[..10].iter().sum::<f64>() / 10.0;
        let last: f64 = rewards[rewards.len() - 10..].iter().sum::<f64>() / 10.0;
        // A uniform policy shows the loved item in about a third of the slates (roughly 1.4
        // clicks per user of 4 slates); the best policy puts it first every time (3.6).
        assert!(first < 2.2, "{algo:?}: started at {first}");
        assert!(last > 2.8, "{algo:?}: reached only {last} (from {first})");
    }
}

/// Shows each user their loved item first: it reads the group token, as the network could.
struct GroupTeacher;

impl metarec_core::Policy for GroupTeacher {
    fn name(&self) -> &str {
        "group-teacher"
    }
    fn decide(
        &mut self,
        context: &Context,
        _: usize,
        _: &mut metarec_core::Rng,
    ) -> metarec_core::SlateChoice {
        certain(vec![ItemId(group_of(context)), ItemId(5)])
    }
}

/// The group a toy shop's context names in its token.
fn group_of(context: &Context) -> u32 {
    context.tokens[0]
        .strip_prefix("group=")
        .unwrap()
        .parse()
        .unwrap()
}

/// A deterministic teacher's slate: every item shown for certain.
fn certain(items: Vec<ItemId>) -> metarec_core::SlateChoice {
    metarec_core::SlateChoice {
        propensities: vec![1.0; items.len()],
        items,
        slate_propensity: Some(1.0),
    }
}

#[test]
fn distillation_imitates_the_teacher_on_the_networks_own_visits() {
    let mut env = ToyShop::new();
    let mut cfg = config(60);
    cfg.algo = Algo::Distill;
    let mut trainer = Trainer::new(env.catalog(), clicks_only(), cfg).unwrap();
    // Without a teacher there is nothing to imitate.
    let err = trainer.rl_iteration(&mut env).unwrap_err().to_string();
    assert!(err.contains("teacher"), "{err}");
    let mut teacher = GroupTeacher;
    let mut rewards = Vec::new();
    for _ in 0..60 {
        let stats = trainer
            .rl_iteration_with(&mut env, Some(&mut teacher))
            .unwrap();
        rewards.push(stats.reward_per_user);
    }
    let first: f64 = rewards[..5].iter().sum::<f64>() / 5.0;
    let last: f64 = rewards[rewards.len() - 5..].iter().sum::<f64>() / 5.0;
    // The network never sees a reward here; it gets there by copying the teacher's slates.
    assert!(first < 2.2, "started at {first}");
    assert!(last > 2.8, "reached only {last} (from {first})");
}

#[test]
fn posterior_distillation_learns_each_users_item_from_the_values_alone() {
    // No reward and no teacher reach the network: only every item's value for the hidden user
    // in each state. With the group token the network must learn to read it; without it, to
    // infer the group from the clicks, which is what the loss's posterior mean asks for.
    for hides_group in [false, true] {
        let mut env = ToyShop::new();
        env.hides_group = hides_group;
        let mut cfg = config(80);
        cfg.algo = Algo::Posterior;
        let mut trainer = Trainer::new(env.catalog(), clicks_only(), cfg).unwrap();
        let mut rewards = Vec::new();
        trainer
            .train_revealed(&mut env, TrainData::default(), |_, s| {
                rewards.push(s.reward_per_user);
                Ok::<(), NeuralError>(())
            })
            .unwrap();
        let first: f64 = rewards[..5].iter().sum::<f64>() / 5.0;
        let last: f64 = rewards[rewards.len() - 5..].iter().sum::<f64>() / 5.0;
        // With the group in sight the best policy earns 3.6 per user. Without it, the best
        // policy that does not adapt shows the same two items every time and earns 4 x (0.3 +
        // 0.15 + 0.02 x 4/3) = 1.91; beating that clearly takes learning from the clicks.
        let goal = if hides_group { 2.3 } else { 2.8 };
        assert!(first < 2.2, "hides_group {hides_group}: started at {first}");
        assert!(
            last > goal,
            "hides_group {hides_group}: reached only {last} (from {first})"
        );
    }
    // A simulator that does not reveal its users cannot teach it.
    let mut env = ToyShop::new();
    let mut cfg = config(1);
    cfg.algo = Algo::Posterior;
    let mut trainer = Trainer::new(env.catalog(), clicks_only(), cfg).unwrap();
    let err = trainer
        .train(&mut env, TrainData::default(), |_, _| {
            Ok::<(), NeuralError>(())
        })
        .unwrap_err()
        .to_string();
    assert!(err.contains("train_revealed"), "{err}");
    let err = trainer.rl_iteration(&mut env).unwrap_err().to_string();
    assert!(err.contains("rl_iteration_revealed"), "{err}");
    assert_eq!(trainer.iterations_done, 0);
    // Distillation may sample its visits at a temperature of its own; policy gradients may not,
    // and a temperature must be a positive number.
    for (algo, temperature, ok) in [
        (Algo::Posterior, 0.2, true),
        (Algo::Distill, 0.2, true),
        (Algo::Reinforce, 0.2, false),
        (Algo::ActorCritic, 0.2, false),
        (Algo::Posterior, 0.0, false),
        (Algo::Posterior, f64::NAN, false),
    ] {
        let mut cfg = config(1);
        cfg.algo = algo;
        cfg.rollout_temperature = Some(temperature);
        let made = Trainer::new(env.catalog(), clicks_only(), cfg);
        assert_eq!(made.is_ok(), ok, "{algo:?} at {temperature}");
    }
}

/// Ranks each user's loved item first, then items 5, 4 and 3, as deep as it is asked, and
/// remembers the deepest ranking asked of it.
struct RankingTeacher {
    deepest: usize,
}

impl metarec_core::Policy for RankingTeacher {
    fn name(&self) -> &str {
        "ranking-teacher"
    }
    fn decide(
        &mut self,
        context: &Context,
        k: usize,
        _: &mut metarec_core::Rng,
    ) -> metarec_core::SlateChoice {
        self.deepest = self.deepest.max(k);
        let mut items = vec![ItemId(group_of(context)), ItemId(5), ItemId(4), ItemId(3)];
        items.truncate(k);
        certain(items)
    }
}

#[test]
fn distillation_imitates_the_teachers_ranking_as_deep_as_asked() {
    // The deepest ranking the teacher was asked for, and whether the trained network ranks
    // items 5, 4 and 3 in the teacher's order for a new user of every group: only a ranking
    // deeper than the slate of 2 says anything about items 4 and 3.
    let train = |depth: usize| -> (usize, bool) {
        let mut env = ToyShop::new();
        let mut cfg = config(0);
        cfg.algo = Algo::Distill;
        cfg.imitate_depth = depth;
        let mut trainer = Trainer::new(env.catalog(), clicks_only(), cfg).unwrap();
        let mut teacher = RankingTeacher { deepest: 0 };
        for _ in 0..60 {
            trainer
                .rl_iteration_with(&mut env, Some(&mut teacher))
                .unwrap();
        }
        let features = Features::new(env.catalog());
        let frozen = trainer.frozen();
        let (mut view, mut scratch, mut g) = (UserView::default(), Vec::new(), Vec::new());
        let in_order = (0..3).all(|user| {
            features.user_view(&env.reset(user), &mut view);
            frozen.user_of(&view, &mut scratch, &mut g);
            let score = |i: usize| frozen.score(&g, i, false, false);
            score(5) > score(4) && score(4) > score(3)
        });
        (teacher.deepest, in_order)
    };
    assert_eq!(train(4), (4, true));
    assert_eq!(
        train(0).0,
        2,
        "without a depth the teacher is asked for the slate"
    );
    let too_deep = TrainConfig {
        imitate_depth: train::MAX_IMITATE_DEPTH + 1,
        ..config(1)
    };
    assert!(too_deep.validate().is_err());
}

/// A shop that logs no impressions: users of group `g` (0, 1 or 2) buy item `g`, and each
/// purchase becomes a slate of the bought item and one sampled negative, always item 3 or 4.
/// Items 5 to 8 copy the features of items 0 to 2 and 3 but never appear in a slate.
fn organic_slates() -> (Catalog, Vec<metarec_core::Interaction>) {
    let mut catalog = Catalog::new(vec!["a".into(), "b".into()]);
    for i in 0..9usize {
        let f = if i < 5 { i } else { i - 5 };
        catalog
            .push(Item {
                key: format!("i{i}"),
                features: vec![f as f32 / 5.0, ((f * 3) % 5) as f32 / 5.0],
                ..Item::default()
            })
            .unwrap();
    }
    let logged = (0..60u32)
        .map(|u| {
            let mut context = Context::for_user(UserKey(format!("u{u}")));
            context.tokens = vec![format!("group={}", u % 3)];
            let decision = Decision {
                event_id: metarec_core::EventId(format!("e{u}")),
                slate: metarec_core::Slate::new(vec![ItemId(u % 3), ItemId(3 + u % 2)]).unwrap(),
                propensities: vec![1.0; 2],
                slate_propensity: None,
                positions: None,
                policy_id: "organic".into(),
                model_version: String::new(),
            };
            let feedback = Feedback {
                clicks: vec![true, false],
                purchases: vec![true, false],
                revenue: vec![1.0, 0.0],
            };
            metarec_core::Interaction {
                context,
                decision,
                feedback,
            }
        })
        .collect();
    (catalog, logged)
}

#[test]
fn the_catalog_softmax_makes_every_item_a_negative() {
    let (catalog, logged) = organic_slates();
    // Each network's mean probability, over the groups, of the group's item under a softmax of
    // its scores over the whole catalog, and whether that item scores highest for every group.
    let train = |catalog_softmax: bool| {
        let config = TrainConfig {
            algo: Algo::Supervised,
            batch: 60,
            catalog_softmax,
            ..config(150)
        };
        let mut trainer = Trainer::new(&catalog, clicks_only(), config).unwrap();
        for _ in 0..150 {
            trainer.supervised_iteration(&logged).unwrap();
        }
        let (mut view, mut hidden, mut g) = (UserView::default(), Vec::new(), Vec::new());
        let (mut mass, mut top) = (0.0, true);
        for group in 0..3u32 {
            trainer
                .features
                .user_view(&logged[group as usize].context, &mut view);
            trainer.frozen().user_of(&view, &mut hidden, &mut g);
            let scores: Vec<f64> = (0..catalog.len())
                .map(|i| f64::from(trainer.frozen().score(&g, i, false, false)))
                .collect();
            let best = scores.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let total: f64 = scores.iter().map(|s| (s - best).exp()).sum();
            mass += (scores[group as usize] - best).exp() / total / 3.0;
            top &= scores[group as usize] == best;
        }
        (mass, top)
    };
    let (softmax_mass, softmax_top) = train(true);
    let (slate_mass, _) = train(false);
    // Items 5 to 8 were never a negative in any slate: only the softmax over the catalog
    // pushes them below each group's item.
    assert!(
        softmax_top,
        "the catalog softmax ranks each group's item first"
    );
    assert!(
        softmax_mass > 0.5 && softmax_mass > slate_mass,
        "catalog softmax {softmax_mass:.3} against slate cross-entropy {slate_mass:.3}"
    );
    // Per-entry weights mean nothing to it: refused, not ignored.
    let trainer = Trainer::new(
        &catalog,
        clicks_only(),
        TrainConfig {
            algo: Algo::Supervised,
            catalog_softmax: true,
            ..config(1)
        },
    )
    .unwrap();
    let weights = vec![vec![1.0f32; 2]; logged.len()];
    assert!(
        trainer
            .supervised_loss_weighted(&logged, Some(&weights))
            .is_err()
    );
}

#[test]
fn seeded_training_is_reproducible() {
    let run = || {
        let mut env = ToyShop::new();
        let mut trainer = Trainer::new(env.catalog(), clicks_only(), config(5)).unwrap();
        trainer
            .train(&mut env, TrainData::default(), |_, _| {
                Ok::<(), NeuralError>(())
            })
            .unwrap();
        trainer.frozen().clone()
    };
    assert_eq!(run(), run());
}

#[test]
fn a_batch_split_over_workers_trains_as_one_process_with_user_streams() {
    let cfg = TrainConfig {
        user_streams: true,
        ..config(3)
    };
    let mut env = ToyShop::new();
    let mut alone = Trainer::new(env.catalog(), clicks_only(), cfg.clone()).unwrap();
    alone
        .train(&mut env, TrainData::default(), |_, _| {
            Ok::<(), NeuralError>(())
        })
        .unwrap();

    // A learner and two workers, each with its own environment, passing bytes as processes do.
    let mut learner = Trainer::new(env.catalog(), clicks_only(), cfg.clone()).unwrap();
    let mut workers: Vec<(Trainer, ToyShop)> = (0..2)
        .map(|_| {
            let env = ToyShop::new();
            (
                Trainer::new(env.catalog(), clicks_only(), cfg.clone()).unwrap(),
                env,
            )
        })
        .collect();
    for _ in 0..cfg.iterations {
        let weights = learner.weights_bytes().unwrap();
        let users = learner.batch_users();
        let middle = users.start + 13;
        let mut episodes = Vec::new();
        for ((worker, env), part) in workers
            .iter_mut()
            .zip([users.start..middle, middle..users.end])
        {
            worker.set_weights_bytes(&weights).unwrap();
            let bytes = train::episodes_to_bytes(&worker.collect(env, part).unwrap());
            episodes.extend(train::episodes_from_bytes(&bytes).unwrap());
        }
        learner.learn_from(&episodes).unwrap();
    }
    assert_eq!(
        learner.weights_bytes().unwrap(),
        alone.weights_bytes().unwrap()
    );
    assert_eq!(learner.history, alone.history);
    assert_eq!(learner.iterations_done, 3);

    // With the one shared stream the same split would not reproduce the run: the second
    // worker's users would draw from the start of the stream.
    let shared = Trainer::new(env.catalog(), clicks_only(), config(1)).unwrap();
    let streams = Trainer::new(env.catalog(), clicks_only(), cfg).unwrap();
    let slates = |mut t: Trainer| {
        let users = t.batch_users();
        let part = users.start + 16..users.end;
        let episodes = t.collect(&mut ToyShop::new(), part).unwrap();
        episodes
            .iter()
            .flatten()
            .map(|s| s.slate.clone())
            .collect::<Vec<_>>()
    };
    assert_ne!(slates(shared), slates(streams));
}

fn manifest(trainer: &Trainer, catalog: &Catalog) -> Manifest {
    Manifest::for_trainer(
        trainer,
        catalog,
        DataSource::Scenario {
            name: "toy".into(),
            toml: String::new(),
        },
        vec!["reinforce".into()],
        trainer.history.clone(),
    )
}

#[test]
fn checkpoints_round_trip_and_bad_ones_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model");
    let mut env = ToyShop::new();
    let mut trainer = Trainer::new(env.catalog(), clicks_only(), config(3)).unwrap();
    trainer
        .train(&mut env, TrainData::default(), |_, _| {
            Ok::<(), NeuralError>(())
        })
        .unwrap();
    checkpoint::save(
        &path,
        &trainer.varmap,
        &manifest(&trainer, env.catalog()),
        env.catalog(),
    )
    .unwrap();

    let loaded = checkpoint::load(&path, env.catalog()).unwrap();
    assert_eq!(loaded.manifest.iterations, 3);
    let items = metarec_neural::item_tensor(&loaded.features).unwrap();
    let frozen = metarec_neural::model::Frozen::from_model(&loaded.model, &items).unwrap();
    assert_eq!(&frozen, trainer.frozen());

    // Another catalog: a mismatch that names what differs.
    let mut other = env.catalog().clone();
    other
        .push(Item {
            key: "extra".into(),
            features: vec![0.0, 0.0],
            ..Item::default()
        })
        .unwrap();
    let err = checkpoint::load(&path, &other).err().unwrap();
    assert!(matches!(err, NeuralError::Mismatch { .. }), "{err}");
    assert!(err.to_string().contains("7 items"), "{err}");

    // A truncated weights file.
    let weights = path.join(checkpoint::WEIGHTS);
    let bytes = std::fs::read(&weights).unwrap();
    std::fs::write(&weights, &bytes[..bytes.len() / 2]).unwrap();
    let err = checkpoint::load(&path, env.catalog()).err().unwrap();
    assert!(matches!(err, NeuralError::Corrupt { .. }), "{err}");

    // One changed byte in the last tensor's values: still a readable safetensors file of the
    // right shapes, caught by the manifest's checksum.
    let mut flipped = bytes.clone();
    let last = flipped.len() - 1;
    flipped[last] ^= 0x01;
    std::fs::write(&weights, &flipped).unwrap();
    let err = checkpoint::load(&path, env.catalog()).err().unwrap();
    assert!(err.to_string().contains("checksum mismatch"), "{err}");

    // A manifest that is not JSON, and one of another format.
    std::fs::write(&weights, &bytes).unwrap();
    let manifest_path = path.join(checkpoint::MANIFEST);
    let text = std::fs::read_to_string(&manifest_path).unwrap();
    std::fs::write(&manifest_path, "{ not json").unwrap();
    let err = checkpoint::load(&path, env.catalog()).err().unwrap();
    assert!(err.to_string().contains("invalid manifest"), "{err}");
    std::fs::write(
        &manifest_path,
        text.replace(checkpoint::FORMAT, "metarec-neural/0"),
    )
    .unwrap();
    let err = checkpoint::load(&path, env.catalog()).err().unwrap();
    assert!(err.to_string().contains("metarec-neural/0"), "{err}");

    // No model there at all.
    let err = checkpoint::load(&dir.path().join("nothing"), env.catalog())
        .err()
        .unwrap();
    assert!(matches!(err, NeuralError::Io { .. }), "{err}");
}
