//! `coldstart --shop --model BUNDLE`: the trained network as one more method of the shop
//! cold-start benchmark. A new user's support enters the network's user tower as their history of
//! clicked items, and the network scores every catalogue item.
//!
//! The bundle must have been trained on this shop (`train --shop`, checked by the catalog's and
//! the events' SHA-256 as `ope --shop` checks them) and, because it has no hyperparameters that
//! the benchmark could choose before the cutoff, on nothing on or after the cutoff: the command
//! rebuilds the training part that `--holdout` left it and refuses the bundle when any event on
//! or after the cutoff could have reached it, naming the share that would be safe.

use anyhow::{Context as _, Result, bail};
use metarec_coldstart::ColdStartError;
use metarec_coldstart::shop::{ColdUser, ExternalScorer, ShopData};
use metarec_core::{Context, ItemId, PastEvent, UserKey};
use metarec_data::shop::Shop;
use metarec_data::shop::interactions::{InteractionOptions, ShopLog, shop_log, split_by_time};
use metarec_eval::shop::check_bundle;
use metarec_neural::bundle::ModelBundle;
use metarec_neural::policy::NeuralPolicy;
use std::path::Path;

/// The network's row name in the report.
pub const NETWORK: &str = "network";

/// The trained network scoring a new user from their support.
pub struct NetworkScorer {
    policy: NeuralPolicy,
    /// Per user: the key the network's context carries.
    keys: Vec<String>,
    /// Per user: the categorical attributes known when the user is new (the benchmark's own).
    tokens: Vec<Vec<String>>,
    context: Context,
}

impl ExternalScorer for NetworkScorer {
    fn name(&self) -> &str {
        NETWORK
    }

    fn score(&mut self, user: &ColdUser, out: &mut Vec<f64>) -> Result<(), ColdStartError> {
        let u = user.user as usize;
        let (Some(key), Some(tokens)) = (self.keys.get(u), self.tokens.get(u)) else {
            return Err(ColdStartError::Scorer(format!(
                "user {u} is not in the shop the network was loaded for"
            )));
        };
        // A new user: no earlier visit, nothing shown yet, the support as the history of what
        // they clicked (the user tower reads clicks, not purchases), oldest first.
        self.context.user = UserKey(key.clone());
        self.context.tokens.clone_from(tokens);
        self.context.session.history.clear();
        self.context
            .session
            .history
            .extend(user.support.iter().map(|&i| PastEvent {
                item: ItemId(i),
                click: true,
                purchase: false,
            }));
        out.clear();
        out.extend_from_slice(self.policy.score(&self.context));
        Ok(())
    }
}

/// Loads the bundle at `model`, checks that it was trained on `shop` and on nothing on or after
/// `cutoff_ms`, and returns its network as a scorer over `data` (read from the same shop).
pub fn network_scorer(
    model: &Path,
    shop: &Shop,
    data: &ShopData,
    cutoff_ms: i64,
) -> Result<NetworkScorer> {
    let bundle = ModelBundle::load(model)
        .with_context(|| format!("loading the model {}", model.display()))?;
    let holdout = check_bundle(&bundle, shop)?;
    let (trained, safe) = trained_part(shop, holdout, cutoff_ms);
    if trained > safe.prefix {
        let when = metarec_data::time::format_ms(cutoff_ms);
        let hint = match safe.smallest_holdout {
            Some(h) => format!(
                "train it with `metarec train --shop {} --holdout {h}` (or more)",
                shop.dir.display()
            ),
            None => "no --holdout share leaves a training part before it; choose a later cutoff"
                .to_owned(),
        };
        bail!(
            "{} was trained on shop `{}` with --holdout {holdout}: {} of its {trained} training {} are not wholly before the cutoff {when} (they hold events on or after it), so it may have learned from the very users the benchmark tests it on; {hint}",
            model.display(),
            shop.manifest.name,
            trained - safe.prefix,
            safe.unit,
        );
    }
    Ok(NetworkScorer {
        policy: bundle.neural_policy(NETWORK, true),
        keys: shop.users.iter().map(|u| u.key.clone()).collect(),
        tokens: data.tokens.clone(),
        context: Context::default(),
    })
}

/// How much of a shop's training material lies wholly before a cutoff.
struct SafePart {
    /// `rankings` or `events` (the organic events of a shop without impressions).
    unit: &'static str,
    /// The longest prefix of the training records (in the order training reads them) that no
    /// event on or after the cutoff reaches.
    prefix: usize,
    /// The smallest `--holdout` (in hundredths) whose training part is within that prefix.
    smallest_holdout: Option<f64>,
}

/// The number of records `train --shop --holdout holdout` trained on, and the safe part: the
/// records, in training's order, that are the same whether or not the shop's events on or after
/// `cutoff_ms` exist. A ranking whose feedback came after the cutoff differs between the two, so
/// it is not safe even when it was shown before.
fn trained_part(shop: &Shop, holdout: f64, cutoff_ms: i64) -> (usize, SafePart) {
    let options = InteractionOptions::default();
    let full = shop_log(shop, &options);
    let mut before = shop.clone();
    before.events.retain(|e| e.timestamp_ms < cutoff_ms);
    let past = shop_log(&before, &options);
    let (unit, prefix) = if full.has_impressions() {
        let same = full
            .interactions
            .iter()
            .zip(&past.interactions)
            .take_while(|(a, b)| a == b)
            .count();
        ("rankings", same)
    } else {
        let same = full
            .organic
            .iter()
            .take_while(|o| {
                shop.events
                    .get(o.event)
                    .is_some_and(|e| e.timestamp_ms < cutoff_ms)
            })
            .count();
        ("events", same)
    };
    let trained = training_end(&full, holdout);
    let smallest_holdout = (1..=100)
        .map(|p| f64::from(p) / 100.0)
        .find(|&h| training_end(&full, h) <= prefix && training_end(&full, h) > 0);
    (
        trained,
        SafePart {
            unit,
            prefix,
            smallest_holdout,
        },
    )
}

/// Where `train --shop --holdout holdout` stops reading the log: the end of the training
/// rankings, or of the training organic events for a shop without impressions (the split
/// `metarec_eval::shop::training_data` uses).
fn training_end(log: &ShopLog, holdout: f64) -> usize {
    if log.has_impressions() {
        split_by_time(log, holdout).0.end
    } else {
        log.organic_split(holdout).0.end
    }
}
