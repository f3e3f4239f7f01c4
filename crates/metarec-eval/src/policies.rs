//! [`PolicySpec`]: every policy metarec can play, by name, in one registry.
//!
//! A spec names a policy and says where its parts come from: a baseline of
//! [`metarec_learn::registry`], a yardstick of the simulator ([`Yardstick`]: the oracle, the
//! planner, organic browsing, best sellers), the informed yardstick, or a trained model bundle
//! played alone (`neural:DIR`, `neural-greedy:DIR`; `neural-static:DIR` without its per-user
//! adaptation, an ablation) or with its meta-trained adjuster (`adjusted:DIR`), or served by a
//! `metarec serve` process and played over its HTTP API (`served:DIR`, whose server the caller
//! starts and links, [`ServedLink`]). A model is named by its directory on the command line
//! ([`ModelRef::Dir`]) or handed over already loaded ([`ModelRef::Loaded`], as the demo does with
//! the bundle it has just trained); [`PolicySpec::load`] loads each directory once, and
//! [`PolicySpec::build`] makes a fresh agent from the parts in memory for a scenario, or
//! [`PolicySpec::build_for_catalog`] a plain [`Policy`] for a catalog without any simulator (to
//! judge it on logged data): baselines and model bundles whose catalog has the same item keys in
//! the same order; the yardsticks and the informed policy need the simulator.

use metarec_core::{Agent, Catalog, Policy, RewardFn, stable_hash};
use metarec_learn::LearnError;
use metarec_learn::registry::{BASELINES, build_policy};
use metarec_neural::NeuralError;
use metarec_neural::bundle::ModelBundle;
use metarec_neural::checkpoint::FeatureSchema;
use metarec_sim::shop::PlannerConfig;
use metarec_sim::yardstick::{Yardstick, YardstickAgent};
use metarec_sim::{InformedConfig, InformedPolicy, Scenario, ShopEnv};
use std::path::PathBuf;
use std::sync::Arc;
use thiserror::Error;

/// Why a policy cannot be named or built.
#[derive(Debug, Error)]
pub enum PolicyError {
    /// A name no policy has.
    #[error("unknown policy `{name}`; expected one of: {expected}")]
    Unknown {
        /// The name given.
        name: String,
        /// Every valid name.
        expected: String,
    },
    /// `neural:`, `neural-greedy:`, `neural-static:` or `adjusted:` without a directory.
    #[error("`{prefix}` needs a model directory, as in {prefix}model/")]
    MissingDir {
        /// The prefix given.
        prefix: &'static str,
    },
    /// An `informed:N` whose particle count is not a whole number from 1 to 100000.
    #[error("`{name}`: the particle count after `:` must be a whole number from 1 to 100000")]
    Particles {
        /// The name given.
        name: String,
    },
    /// An empty list.
    #[error("no policies given")]
    Empty,
    /// A distillation teacher other than a greedy informed yardstick.
    #[error(
        "the teacher must be `informed`, `informed-move`, `informed-blind` or `informed-observed`, each with `:N` particles or without, or `informed-network:DIR`"
    )]
    NotATeacher(String),
    /// A model bundle cannot be loaded or has no usable adjuster.
    #[error("policy `{name}`: {source}")]
    Model {
        /// The policy.
        name: String,
        /// Why.
        source: NeuralError,
    },
    /// A model bundle ranks another catalog than the scenario's.
    #[error(
        "policy `{name}`: the model ranks another catalog (fingerprint {model}) than scenario `{scenario}` (fingerprint {here}); play it in the scenario it was trained on (`{trained_on}`)"
    )]
    Catalog {
        /// The policy.
        name: String,
        /// The bundle's catalog fingerprint.
        model: String,
        /// The scenario.
        scenario: String,
        /// The scenario's catalog fingerprint.
        here: String,
        /// The scenario the bundle was trained on.
        trained_on: String,
    },
    /// A policy that needs the simulator (a yardstick or the informed policy) asked for where
    /// there is none (logged data).
    #[error(
        "policy `{name}` needs the simulator (it reads the simulated users' hidden state or the simulator's model), so it cannot be judged on logged data; choose a baseline or a model (neural:DIR, neural-greedy:DIR, neural-static:DIR, adjusted:DIR)"
    )]
    NeedsSimulator {
        /// The policy.
        name: String,
    },
    /// A model bundle's catalog does not have the same item keys in the same order as the
    /// catalog of the logs.
    #[error(
        "policy `{name}`: the model ranks another catalog ({model_items} items) than {here} ({here_items} items): {difference}; its item ids would name other items"
    )]
    Keys {
        /// The policy.
        name: String,
        /// Items in the bundle's catalog.
        model_items: usize,
        /// What the other catalog is (for example `shop shop/`).
        here: String,
        /// Items in the other catalog.
        here_items: usize,
        /// The first difference.
        difference: String,
    },
    /// A model bundle was trained on a shop's logs, so no scenario can play it.
    #[error("policy `{name}`: {message}")]
    ShopModel {
        /// The policy.
        name: String,
        /// What the model was trained on and how to evaluate it instead.
        message: String,
    },
    /// A `served:DIR` spec without a server linked to it.
    #[error(
        "policy `{name}` plays through a `metarec serve` process, which only `metarec arena` and `metarec demo` start; play the model in process with adjusted:DIR"
    )]
    NeedsServer {
        /// The policy.
        name: String,
    },
    /// The server of a `served:DIR` spec cannot play.
    #[error("policy `{name}`: {message}")]
    Served {
        /// The policy.
        name: String,
        /// Why.
        message: String,
    },
    /// A baseline rejected the catalog.
    #[error("policy `{name}`: {source}")]
    Baseline {
        /// The policy.
        name: String,
        /// Why.
        source: LearnError,
    },
}

/// A trained model: a directory to load, or a bundle already in memory.
#[derive(Clone)]
pub enum ModelRef {
    /// Not loaded yet.
    Dir(PathBuf),
    /// Loaded and verified.
    Loaded(Arc<ModelBundle>),
}

impl PartialEq for ModelRef {
    fn eq(&self, other: &Self) -> bool {
        self.dir() == other.dir()
    }
}

impl std::fmt::Debug for ModelRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.dir().display())
    }
}

impl ModelRef {
    /// The model directory.
    pub fn dir(&self) -> &std::path::Path {
        match self {
            ModelRef::Dir(d) => d,
            ModelRef::Loaded(b) => &b.dir,
        }
    }

    /// The bundle, once loaded.
    pub fn bundle(&self) -> Option<&Arc<ModelBundle>> {
        match self {
            ModelRef::Dir(_) => None,
            ModelRef::Loaded(b) => Some(b),
        }
    }
}

/// Makes a fresh agent for one arena job of a `served:DIR` spec, given the job's seed index: a
/// [`Policy`] that ranks and sends feedback over a server's HTTP API. Its users must be the
/// job's own (the same simulated user of two seeds is two people).
pub type ServedBuilder = dyn Fn(u64) -> Result<Box<dyn Policy>, String> + Send + Sync;

/// The server a `served:DIR` spec plays through, linked by the program that started it.
#[derive(Clone)]
pub struct ServedLink(pub Arc<ServedBuilder>);

impl std::fmt::Debug for ServedLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ServedLink(..)")
    }
}

impl PartialEq for ServedLink {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

/// One policy, by name.
#[derive(Debug, Clone, PartialEq)]
pub enum PolicySpec {
    /// A baseline of `metarec-learn`'s registry ([`BASELINES`]).
    Baseline(String),
    /// A yardstick of the simulator: `oracle` (the best immediate slate for the user's hidden
    /// state), `planner` (the oracle plus lookahead at fatigue, at the reward's discount),
    /// `browse` (organic browsing) and `bestsellers` (the same best sellers for everyone).
    Yardstick(Yardstick),
    /// The exact-model Bayesian yardstick: the simulator's model and population prior, but the
    /// user learnt from feedback like any policy ([`InformedPolicy`]): `informed` shows the
    /// posterior's best slate, `informed-ts` a posterior draw's best (Thompson sampling),
    /// `informed-move` the best slate of a posterior whose particles are resampled and moved
    /// (see [`InformedConfig::moves`]), `informed-blind` the yardstick reading feedback as the
    /// network does, without positions or purchases (see [`InformedConfig::blind`]),
    /// `informed-observed` the yardstick knowing items only through their observable features
    /// (see [`InformedConfig::observed`]); `:N` sets the particles per user.
    Informed {
        /// The name shown in reports.
        name: String,
        /// The policy's settings.
        settings: InformedConfig,
    },
    /// A trained network alone: `neural:DIR` samples its slates (Plackett-Luce),
    /// `neural-greedy:DIR` shows the top scores, `neural-static:DIR` shows the top scores
    /// without adapting to the user (see
    /// [`NeuralPolicy::without_adaptation`](metarec_neural::policy::NeuralPolicy::without_adaptation)).
    Neural {
        /// The name shown in reports.
        name: String,
        /// The model.
        model: ModelRef,
        /// Top scores instead of sampling.
        greedy: bool,
        /// Whether the user tower reads the user's history.
        adapts: bool,
    },
    /// A trained network with its meta-trained adjuster, Bayesian or gradient-based
    /// (`adjusted:DIR`).
    Adjusted {
        /// The name shown in reports.
        name: String,
        /// The model.
        model: ModelRef,
    },
    /// The observed yardstick knowing the items as far as the catalog's features and a trained
    /// network's item vectors carry them (`informed-network:DIR`; see
    /// [`World::observed_view_with`](metarec_sim::World::observed_view_with)): exact inference
    /// about each user over what the network knows of the items, the reference for how much a
    /// better inference than the network's could earn.
    InformedNetwork {
        /// The name shown in reports.
        name: String,
        /// The model whose item vectors the yardstick reads.
        model: ModelRef,
    },
    /// A trained model with its adjuster as a `metarec serve` process serves it, played over
    /// the HTTP API (`served:DIR`): what a shop's users get, with the server's visits, history
    /// and feedback timing. The program that starts the server links it ([`ServedLink`]).
    Served {
        /// The name shown in reports.
        name: String,
        /// The model the server serves.
        model: ModelRef,
        /// The server; `None` until linked.
        link: Option<ServedLink>,
    },
}

/// The prefix of [`PolicySpec::Served`].
const SERVED: &str = "served:";

/// The prefix of [`PolicySpec::InformedNetwork`].
const INFORMED_NETWORK: &str = "informed-network:";

/// The prefixes of specs that name a model directory, with whether they are greedy and whether
/// they adapt to the user (`None` for the adjusted policy).
const MODEL_PREFIXES: [(&str, Option<(bool, bool)>); 4] = [
    ("adjusted:", None),
    ("neural:", Some((false, true))),
    ("neural-greedy:", Some((true, true))),
    ("neural-static:", Some((true, false))),
];

impl PolicySpec {
    /// Every name that needs no model directory, in the order reports list them.
    pub fn names() -> Vec<&'static str> {
        let mut names: Vec<&'static str> = BASELINES.to_vec();
        names.extend(["oracle", "planner", "informed", "informed-ts"]);
        names
    }

    /// The names an error lists: every plain name, the yardsticks that `all` leaves out, and
    /// the model forms.
    fn expected() -> String {
        let mut all = PolicySpec::names();
        all.extend([
            "browse",
            "bestsellers",
            "informed:N",
            "informed-ts:N",
            "informed-move",
            "informed-move:N",
            "informed-blind",
            "informed-blind:N",
            "informed-observed",
            "informed-observed:N",
            "informed-network:DIR",
            "served:DIR",
        ]);
        all.extend(MODEL_PREFIXES.iter().map(|(p, _)| *p));
        all.iter()
            .map(|n| {
                if n.ends_with(':') {
                    format!("{n}DIR")
                } else {
                    (*n).to_owned()
                }
            })
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Parses one name.
    pub fn parse(name: &str) -> Result<PolicySpec, PolicyError> {
        if let Some(dir) = name.strip_prefix(SERVED) {
            if dir.is_empty() {
                return Err(PolicyError::MissingDir { prefix: SERVED });
            }
            return Ok(PolicySpec::Served {
                name: name.to_owned(),
                model: ModelRef::Dir(dir.into()),
                link: None,
            });
        }
        if let Some(dir) = name.strip_prefix(INFORMED_NETWORK) {
            if dir.is_empty() {
                return Err(PolicyError::MissingDir {
                    prefix: INFORMED_NETWORK,
                });
            }
            return Ok(PolicySpec::InformedNetwork {
                name: name.to_owned(),
                model: ModelRef::Dir(dir.into()),
            });
        }
        for (prefix, kind) in MODEL_PREFIXES {
            if let Some(dir) = name.strip_prefix(prefix) {
                if dir.is_empty() {
                    return Err(PolicyError::MissingDir { prefix });
                }
                let model = ModelRef::Dir(dir.into());
                let name = name.to_owned();
                return Ok(match kind {
                    None => PolicySpec::Adjusted { name, model },
                    Some((greedy, adapts)) => PolicySpec::Neural {
                        name,
                        model,
                        greedy,
                        adapts,
                    },
                });
            }
        }
        if let Some(y) = Yardstick::parse(name) {
            return Ok(PolicySpec::Yardstick(y));
        }
        match name {
            n if [
                "informed",
                "informed-ts",
                "informed-move",
                "informed-blind",
                "informed-observed",
            ]
            .iter()
            .any(|mode| n == *mode || n.strip_prefix(mode).is_some_and(|r| r.starts_with(':'))) =>
            {
                parse_informed(n)
            }
            n if BASELINES.contains(&n) => Ok(PolicySpec::Baseline(n.to_owned())),
            n => Err(PolicyError::Unknown {
                name: n.to_owned(),
                expected: PolicySpec::expected(),
            }),
        }
    }

    /// Parses a comma-separated list without repeats; `all` means every name of
    /// [`PolicySpec::names`].
    pub fn parse_list(list: &str) -> Result<Vec<PolicySpec>, PolicyError> {
        if list.trim() == "all" {
            return PolicySpec::names()
                .into_iter()
                .map(PolicySpec::parse)
                .collect();
        }
        let mut out: Vec<PolicySpec> = Vec::new();
        for name in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let spec = PolicySpec::parse(name)?;
            if !out.contains(&spec) {
                out.push(spec);
            }
        }
        if out.is_empty() {
            return Err(PolicyError::Empty);
        }
        Ok(out)
    }

    /// The name shown in reports.
    pub fn name(&self) -> &str {
        match self {
            PolicySpec::Baseline(n) => n,
            PolicySpec::Yardstick(y) => y.name(),
            PolicySpec::Neural { name, .. }
            | PolicySpec::Adjusted { name, .. }
            | PolicySpec::InformedNetwork { name, .. }
            | PolicySpec::Served { name, .. }
            | PolicySpec::Informed { name, .. } => name,
        }
    }

    /// The model the spec plays, if any.
    pub fn model(&self) -> Option<&ModelRef> {
        match self {
            PolicySpec::Neural { model, .. }
            | PolicySpec::Adjusted { model, .. }
            | PolicySpec::InformedNetwork { model, .. }
            | PolicySpec::Served { model, .. } => Some(model),
            _ => None,
        }
    }

    /// Loads the spec's model directory, once; `loaded` holds bundles already loaded (by
    /// directory), so several specs over one model share it. An adjusted spec also checks that
    /// the bundle has a usable adjuster.
    pub fn load(&mut self, loaded: &mut Vec<Arc<ModelBundle>>) -> Result<(), PolicyError> {
        let name = self.name().to_owned();
        let adjusted = matches!(
            self,
            PolicySpec::Adjusted { .. } | PolicySpec::Served { .. }
        );
        let (PolicySpec::Neural { model, .. }
        | PolicySpec::Adjusted { model, .. }
        | PolicySpec::InformedNetwork { model, .. }
        | PolicySpec::Served { model, .. }) = self
        else {
            return Ok(());
        };
        let bundle = match model {
            ModelRef::Loaded(b) => b.clone(),
            ModelRef::Dir(dir) => match loaded.iter().find(|b| b.dir == *dir) {
                Some(b) => b.clone(),
                None => {
                    let b =
                        Arc::new(ModelBundle::load(dir).map_err(|source| PolicyError::Model {
                            name: name.clone(),
                            source,
                        })?);
                    loaded.push(b.clone());
                    b
                }
            },
        };
        if adjusted {
            bundle.adjuster().map_err(|source| PolicyError::Model {
                name: name.clone(),
                source,
            })?;
        }
        *model = ModelRef::Loaded(bundle);
        Ok(())
    }

    /// Checks that the spec's model (loaded) ranks the scenario's catalog.
    pub fn check_fits(&self, scenario: &Scenario) -> Result<(), PolicyError> {
        match self.model().and_then(ModelRef::bundle) {
            Some(bundle) => check_catalog(self.name(), bundle, scenario),
            None => Ok(()),
        }
    }

    /// A fresh agent for one run: `seed` seeds the policies that draw their own randomness
    /// (the informed yardstick's particles); everything else draws from the rollout's generator.
    /// A model spec must have been [`PolicySpec::load`]ed.
    pub fn build(
        &self,
        scenario: &Scenario,
        reward: &RewardFn,
        seed: u64,
    ) -> Result<Box<dyn Agent<ShopEnv>>, PolicyError> {
        let name = self.name();
        let model_err = |source| PolicyError::Model {
            name: name.to_owned(),
            source,
        };
        let bundle = || {
            self.model()
                .and_then(ModelRef::bundle)
                .ok_or_else(|| model_err(NeuralError::NotLoaded(name.to_owned())))
        };
        Ok(match self {
            PolicySpec::Baseline(n) => Box::new(
                build_policy(n, &scenario.world.catalog, reward, seed).map_err(|source| {
                    PolicyError::Baseline {
                        name: n.clone(),
                        source,
                    }
                })?,
            ),
            PolicySpec::Yardstick(y) => Box::new(YardstickAgent::new(
                *y,
                &scenario.world,
                *reward,
                PlannerConfig {
                    gamma: reward.gamma(),
                    ..PlannerConfig::default()
                },
            )),
            PolicySpec::Informed { settings, .. } => Box::new(InformedPolicy::new(
                scenario.world.clone(),
                &scenario.config,
                reward,
                InformedConfig { seed, ..*settings },
            )),
            PolicySpec::Neural { greedy, adapts, .. } => {
                Box::new(neural_policy(bundle()?, name, *greedy, *adapts))
            }
            PolicySpec::Adjusted { .. } => {
                Box::new(bundle()?.adjusted_policy(name).map_err(model_err)?)
            }
            PolicySpec::Served { link: None, .. } => {
                return Err(PolicyError::NeedsServer {
                    name: name.to_owned(),
                });
            }
            PolicySpec::Served {
                link: Some(link), ..
            } => Box::new((link.0)(seed).map_err(|message| PolicyError::Served {
                name: name.to_owned(),
                message,
            })?),
            PolicySpec::InformedNetwork { .. } => {
                let view = network_view(&scenario.world, bundle()?);
                Box::new(InformedPolicy::with_view(
                    Arc::new(view.world),
                    &scenario.config,
                    reward,
                    InformedConfig {
                        seed,
                        ..InformedConfig::default()
                    },
                ))
            }
        })
    }

    /// The teacher of distillation named `name`: `informed`, `informed-move`,
    /// `informed-blind` or `informed-observed` (each with `:N` or without), or
    /// `informed-network:DIR` (its model loaded here), the exact-model Bayesian yardstick
    /// showing its posterior's best slate, its particles seeded by `seed`.
    /// The CLI's `train --teacher` and the Python trainer build it here.
    pub fn teacher(
        name: &str,
        scenario: &Scenario,
        reward: &RewardFn,
        seed: u64,
    ) -> Result<InformedPolicy, PolicyError> {
        match PolicySpec::parse(name)? {
            PolicySpec::Informed { settings, .. } if !settings.thompson => Ok(InformedPolicy::new(
                scenario.world.clone(),
                &scenario.config,
                reward,
                InformedConfig { seed, ..settings },
            )),
            mut spec @ PolicySpec::InformedNetwork { .. } => {
                spec.load(&mut Vec::new())?;
                spec.check_fits(scenario)?;
                let bundle =
                    spec.model()
                        .and_then(ModelRef::bundle)
                        .ok_or_else(|| PolicyError::Model {
                            name: name.to_owned(),
                            source: NeuralError::NotLoaded(name.to_owned()),
                        })?;
                Ok(InformedPolicy::with_view(
                    Arc::new(network_view(&scenario.world, bundle).world),
                    &scenario.config,
                    reward,
                    InformedConfig {
                        seed,
                        ..InformedConfig::default()
                    },
                ))
            }
            _ => Err(PolicyError::NotATeacher(name.to_owned())),
        }
    }

    /// Whether the policy adapts to each user from that user's feedback (the adjusted policy),
    /// so that judging it on logs means replaying each user's rounds in time order.
    pub fn adapts_to_users(&self) -> bool {
        matches!(
            self,
            PolicySpec::Adjusted { .. } | PolicySpec::Served { .. }
        )
    }

    /// A fresh plain policy for `catalog`, without a scenario, to judge on logged data: a
    /// baseline built for the catalog, or a model bundle's policy when the bundle's catalog has
    /// the same item keys in the same order (so that their dense ids name the same items; the
    /// features may differ, a bundle trained with extra text columns keeps its own and its
    /// network reads them). `here` names the catalog in errors (for example `shop shop/`).
    /// Yardsticks and the informed policy are a [`PolicyError::NeedsSimulator`]. A model spec
    /// must have been [`PolicySpec::load`]ed.
    pub fn build_for_catalog(
        &self,
        catalog: &Catalog,
        here: &str,
        reward: &RewardFn,
        seed: u64,
    ) -> Result<Box<dyn Policy>, PolicyError> {
        let name = self.name();
        let model_err = |source| PolicyError::Model {
            name: name.to_owned(),
            source,
        };
        let bundle = || {
            let bundle = self
                .model()
                .and_then(ModelRef::bundle)
                .ok_or_else(|| model_err(NeuralError::NotLoaded(name.to_owned())))?;
            check_keys(name, &bundle.catalog, catalog, here)?;
            Ok::<_, PolicyError>(bundle)
        };
        Ok(match self {
            PolicySpec::Baseline(n) => {
                build_policy(n, catalog, reward, seed).map_err(|source| PolicyError::Baseline {
                    name: n.clone(),
                    source,
                })?
            }
            PolicySpec::Yardstick(_)
            | PolicySpec::Informed { .. }
            | PolicySpec::InformedNetwork { .. } => {
                return Err(PolicyError::NeedsSimulator {
                    name: name.to_owned(),
                });
            }
            PolicySpec::Neural { greedy, adapts, .. } => {
                Box::new(neural_policy(bundle()?, name, *greedy, *adapts))
            }
            PolicySpec::Adjusted { .. } => bundle()?.adjusted_policy(name).map_err(model_err)?,
            PolicySpec::Served { .. } => {
                return Err(PolicyError::NeedsServer {
                    name: name.to_owned(),
                });
            }
        })
    }

    /// The generator seed of a run of this policy: by its name, not its place in a list, so a
    /// policy's numbers do not change when others are added or reordered. A model's policy is
    /// named by its kind and the last component of its directory only (`neural:runs/a/model`
    /// draws as `neural:model`), so where the model lies does not change its numbers either:
    /// `metarec demo --out X` printed other numbers for its sampling contestants with every X.
    pub fn stream(&self) -> u64 {
        match self {
            PolicySpec::Neural { name, .. }
            | PolicySpec::Adjusted { name, .. }
            | PolicySpec::InformedNetwork { name, .. }
            | PolicySpec::Served { name, .. } => stable_hash(&stream_name(name)),
            _ => stable_hash(self.name()),
        }
    }
}

/// The world as the catalog's features and `bundle`'s item vectors describe its items
/// ([`PolicySpec::InformedNetwork`]).
pub fn network_view(world: &metarec_sim::World, bundle: &ModelBundle) -> metarec_sim::ObservedView {
    let frozen = &bundle.network.frozen;
    let columns: Vec<f64> = frozen.item_vectors.iter().map(|&v| f64::from(v)).collect();
    world.observed_view_with(&columns, frozen.embed)
}

/// A bundle's network alone as a policy, adapting to each user or not.
fn neural_policy(
    bundle: &ModelBundle,
    name: &str,
    greedy: bool,
    adapts: bool,
) -> metarec_neural::policy::NeuralPolicy {
    let policy = bundle.neural_policy(name, greedy);
    if adapts {
        policy
    } else {
        policy.without_adaptation()
    }
}

/// A model policy's name with its directory cut to the directory's last component
/// ([`PolicySpec::stream`]); a name without a directory, or one whose directory has no last
/// component (`neural:.`), is kept whole.
fn stream_name(name: &str) -> String {
    let Some((kind, dir)) = name.split_once(':') else {
        return name.to_owned();
    };
    match std::path::Path::new(dir).file_name() {
        Some(last) => format!("{kind}:{}", last.to_string_lossy()),
        None => name.to_owned(),
    }
}

/// Checks that a bundle ranks the scenario's catalog (a policy called `name` would play it), and
/// that it was trained in a scenario at all: a model trained on a shop's logs is refused with a
/// message saying how to evaluate it.
pub fn check_catalog(
    name: &str,
    bundle: &ModelBundle,
    scenario: &Scenario,
) -> Result<(), PolicyError> {
    if let Some(message) = bundle.manifest.source.no_simulator(&bundle.dir) {
        return Err(PolicyError::ShopModel {
            name: name.to_owned(),
            message,
        });
    }
    let here = FeatureSchema::of(&scenario.world.catalog).catalog_fingerprint;
    let model = &bundle.manifest.features.catalog_fingerprint;
    if *model != here {
        return Err(PolicyError::Catalog {
            name: name.to_owned(),
            model: model.clone(),
            scenario: scenario.config.name.clone(),
            here,
            trained_on: bundle.manifest.scenario.clone(),
        });
    }
    Ok(())
}

/// Checks that a bundle's catalog has the same item keys in the same order as `catalog` (which
/// `here` names), so that a policy called `name` built from it names the same items by the same
/// dense ids.
pub fn check_keys(
    name: &str,
    model: &Catalog,
    catalog: &Catalog,
    here: &str,
) -> Result<(), PolicyError> {
    let difference = if model.len() != catalog.len() {
        Some(format!(
            "the model's catalog has {} items, this one {}",
            model.len(),
            catalog.len()
        ))
    } else {
        model
            .keys()
            .iter()
            .zip(catalog.keys())
            .enumerate()
            .find(|(_, (a, b))| a != b)
            .map(|(i, (a, b))| {
                format!(
                    "item {i} is `{}` in the model's catalog and `{}` here",
                    a.escape_debug(),
                    b.escape_debug()
                )
            })
    };
    match difference {
        None => Ok(()),
        Some(difference) => Err(PolicyError::Keys {
            name: name.to_owned(),
            model_items: model.len(),
            here: here.to_owned(),
            here_items: catalog.len(),
            difference,
        }),
    }
}

/// Parses `informed`, `informed-ts`, `informed-move`, `informed-blind`, `informed-observed`
/// and each with `:PARTICLES`.
fn parse_informed(name: &str) -> Result<PolicySpec, PolicyError> {
    let (mode, particles) = match name.split_once(':') {
        Some((mode, n)) => (
            mode,
            n.parse::<usize>()
                .ok()
                .filter(|n| (1..=100_000).contains(n))
                .ok_or_else(|| PolicyError::Particles {
                    name: name.to_owned(),
                })?,
        ),
        None => (name, InformedConfig::default().particles),
    };
    Ok(PolicySpec::Informed {
        name: name.to_owned(),
        settings: InformedConfig {
            particles,
            thompson: mode == "informed-ts",
            moves: mode == "informed-move",
            blind: mode == "informed-blind",
            observed: mode == "informed-observed",
            ..InformedConfig::default()
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_models_stream_does_not_depend_on_where_the_model_lies() {
        let stream = |name: &str| PolicySpec::parse(name).unwrap().stream();
        // The same kind over directories with the same last component draws the same numbers,
        // however the directory is written.
        for other in [
            "neural:report/model",
            "neural:/tmp/x/model/",
            "neural:./model",
        ] {
            assert_eq!(stream("neural:model"), stream(other), "{other}");
        }
        assert_eq!(stream("adjusted:a/b/m"), stream("adjusted:m"));
        assert_eq!(stream("informed-network:a/m"), stream("informed-network:m"));
        // Another kind, another last component or another baseline draws others.
        assert_ne!(stream("neural:model"), stream("neural-greedy:model"));
        assert_ne!(stream("neural-greedy:model"), stream("neural-static:model"));
        assert_ne!(stream("neural:model"), stream("adjusted:model"));
        assert_ne!(
            stream("adjusted:report/model"),
            stream("adjusted:report/model-unfitted")
        );
        assert_ne!(stream("linucb"), stream("lints"));
        assert_eq!(stream_name("neural:."), "neural:.");
        assert_eq!(stream_name("lints"), "lints");
    }

    #[test]
    fn a_served_spec_names_its_model_and_needs_a_linked_server_to_play() {
        let spec = PolicySpec::parse("served:report/model").unwrap();
        assert_eq!(spec.name(), "served:report/model");
        assert_eq!(
            spec.model().map(ModelRef::dir),
            Some(std::path::Path::new("report/model"))
        );
        assert!(spec.adapts_to_users());
        let err = PolicySpec::parse("served:").unwrap_err().to_string();
        assert!(err.contains("served:model/"), "{err}");
        let err = PolicySpec::parse("servd:m").unwrap_err().to_string();
        assert!(err.contains("served:DIR"), "{err}");
        // Without a server, building it is an error that says who starts one, not a panic.
        let catalog = Catalog::new(vec!["x".into()]);
        let reward = RewardFn::default();
        match spec.build_for_catalog(&catalog, "logs", &reward, 0) {
            Err(PolicyError::NeedsServer { name }) => assert_eq!(name, "served:report/model"),
            Err(e) => panic!("{e}"),
            Ok(_) => panic!("a served spec without a server built a policy"),
        }
        // Two links are equal only when they are the same server's.
        let link = ServedLink(Arc::new(|_| Err("down".to_owned())));
        assert_eq!(link, link.clone());
        assert_ne!(link, ServedLink(Arc::new(|_| Err("down".to_owned()))));
    }
}
