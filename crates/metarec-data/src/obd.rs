//! The Open Bandit Dataset (ZOZOTOWN fashion e-commerce; CC BY 4.0; Saito et al., NeurIPS 2021).
//!
//! Each round of a log shows one item at one of three positions to a user and records the click
//! and the logging policy's propensity. Two logging policies ([`ObdPolicy`]: uniform random and
//! Bernoulli Thompson sampling) ran on three campaigns ([`ObdCampaign`]). [`load_obd`] reads one
//! policy x campaign log with its item features into an [`ObdLog`].

use crate::error::DataError;
use crate::report::{LoadOptions, LoadReport};
use crate::table::{Dialect, Row, Table, handle_malformed, read_file};
use crate::time::parse_datetime_ms;
use metarec_core::{
    Catalog, Context, Decision, EventId, FeatureMatrix, Feedback, Interaction, Item, ItemId, Slate,
    UserKey,
};
use serde::Serialize;
use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// Number of hashed user-feature columns in every log.
pub const USER_FEATURES: usize = 4;

/// The logging policy that collected a log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ObdPolicy {
    /// Uniform random over items.
    Random,
    /// Bernoulli Thompson sampling.
    Bts,
}

/// The campaign (item subset) of a log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ObdCampaign {
    /// All 80 items.
    All,
    /// The men's campaign (34 items).
    Men,
    /// The women's campaign (46 items).
    Women,
}

impl ObdPolicy {
    /// Every policy.
    pub const ALL: [ObdPolicy; 2] = [ObdPolicy::Random, ObdPolicy::Bts];
    /// The folder name.
    pub fn as_str(self) -> &'static str {
        match self {
            ObdPolicy::Random => "random",
            ObdPolicy::Bts => "bts",
        }
    }
}

impl ObdCampaign {
    /// Every campaign.
    pub const ALL: [ObdCampaign; 3] = [ObdCampaign::All, ObdCampaign::Men, ObdCampaign::Women];
    /// The folder name.
    pub fn as_str(self) -> &'static str {
        match self {
            ObdCampaign::All => "all",
            ObdCampaign::Men => "men",
            ObdCampaign::Women => "women",
        }
    }
}

impl fmt::Display for ObdPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for ObdCampaign {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ObdPolicy {
    type Err = DataError;
    fn from_str(s: &str) -> Result<Self, DataError> {
        ObdPolicy::ALL
            .into_iter()
            .find(|p| p.as_str() == s)
            .ok_or_else(|| DataError::Unknown {
                kind: "Open Bandit policy",
                name: s.to_owned(),
                expected: "random, bts".into(),
            })
    }
}

impl FromStr for ObdCampaign {
    type Err = DataError;
    fn from_str(s: &str) -> Result<Self, DataError> {
        ObdCampaign::ALL
            .into_iter()
            .find(|c| c.as_str() == s)
            .ok_or_else(|| DataError::Unknown {
                kind: "Open Bandit campaign",
                name: s.to_owned(),
                expected: "all, men, women".into(),
            })
    }
}

/// One logged round: one item shown at one position.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Round {
    /// When, in milliseconds since the epoch (UTC).
    pub timestamp_ms: i64,
    /// The item shown.
    pub item: ItemId,
    /// The position, 0-based (the file's 1-based position minus one).
    pub position: u8,
    /// Whether the user clicked.
    pub click: bool,
    /// The logging policy's probability of showing this item at this position.
    pub propensity: f64,
    /// The four hashed user features, as indices into [`ObdLog::user_feature_values`].
    pub user_features: [u32; USER_FEATURES],
}

/// One policy x campaign log of the Open Bandit Dataset.
///
/// Invariants: every round's item indexes `catalog`; `affinities` has one row per round and one
/// column per item; each user-feature index is valid for its column's value list.
#[derive(Debug, Clone)]
pub struct ObdLog {
    /// The logging policy.
    pub policy: ObdPolicy,
    /// The campaign.
    pub campaign: ObdCampaign,
    /// Items keyed by the dataset's item id: feature 0 as a number, features 1-3 one-hot
    /// (`item_feature_k=<hash>` columns, as Open Bandit Pipeline encodes them), feature 1 as the
    /// category.
    pub catalog: Catalog,
    /// The rounds in file order.
    pub rounds: Vec<Round>,
    /// For each user-feature column, the distinct hashed values in order of first appearance.
    pub user_feature_values: [Vec<String>; USER_FEATURES],
    /// User-item affinities: one row per round, one column per item (in catalog order).
    pub affinities: FeatureMatrix,
    /// What was read, kept and skipped of the rounds file.
    pub report: LoadReport,
    /// The same for `item_context.csv`.
    pub item_report: LoadReport,
}

/// The folder of one policy x campaign log under an `obd` data directory.
pub fn log_dir(obd_dir: &Path, policy: ObdPolicy, campaign: ObdCampaign) -> PathBuf {
    obd_dir.join(policy.as_str()).join(campaign.as_str())
}

/// Loads one policy x campaign log from an `obd` data directory laid out as Open Bandit
/// Pipeline ships it: `<policy>/<campaign>/<campaign>.csv` and `item_context.csv`.
pub fn load_obd(
    obd_dir: &Path,
    policy: ObdPolicy,
    campaign: ObdCampaign,
    options: &LoadOptions,
) -> Result<ObdLog, DataError> {
    let dir = log_dir(obd_dir, policy, campaign);
    let items_path = dir.join("item_context.csv");
    let rounds_path = dir.join(format!("{}.csv", campaign.as_str()));
    let items_bytes = read_file(&items_path)?;
    let rounds_bytes = read_file(&rounds_path)?;
    let (catalog, item_report) = parse_item_context(&items_bytes, &items_path, options)?;
    let parsed = parse_rounds(&rounds_bytes, &rounds_path, &catalog, options)?;
    Ok(ObdLog {
        policy,
        campaign,
        catalog,
        rounds: parsed.rounds,
        user_feature_values: parsed.user_feature_values,
        affinities: parsed.affinities,
        report: parsed.report,
        item_report,
    })
}

/// Parses an `item_context.csv` file into a catalog.
pub fn parse_item_context(
    bytes: &[u8],
    path: &Path,
    options: &LoadOptions,
) -> Result<(Catalog, LoadReport), DataError> {
    let mut table = Table::new(path, bytes, Dialect::Csv)?;
    let id_col = table.column("item_id")?;
    let numeric_col = table.column("item_feature_0")?;
    let cat_cols = [
        table.column("item_feature_1")?,
        table.column("item_feature_2")?,
        table.column("item_feature_3")?,
    ];
    let mut report = LoadReport::new(path.display().to_string());
    let mut rows: Vec<(u32, f32, [String; 3])> = Vec::new();
    while let Some(row) = table.next_row()? {
        let parsed = (|| -> Result<_, DataError> {
            row.check_width()?;
            let id: u32 = row.parse(id_col)?;
            let numeric = row.finite_f32(numeric_col)?;
            let cats = [
                row.required_str(cat_cols[0])?.to_owned(),
                row.required_str(cat_cols[1])?.to_owned(),
                row.required_str(cat_cols[2])?.to_owned(),
            ];
            if rows.iter().any(|(seen, _, _)| *seen == id) {
                return Err(row.malformed(id_col, format!("item {id} appears twice")));
            }
            Ok((id, numeric, cats))
        })();
        match parsed {
            Ok(r) => {
                rows.push(r);
                report.keep();
            }
            Err(e) => handle_malformed(e, options, &mut report)?,
        }
    }
    rows.sort_by_key(|r| r.0);
    // One-hot columns in order of first appearance per categorical feature, as pandas'
    // get_dummies would (up to column order).
    let mut names = vec!["item_feature_0".to_owned()];
    let mut column_of: HashMap<(usize, &str), usize> = HashMap::new();
    for k in 0..3 {
        for (_, _, cats) in &rows {
            let next = names.len();
            column_of.entry((k, cats[k].as_str())).or_insert_with(|| {
                names.push(format!("item_feature_{}={}", k + 1, cats[k]));
                next
            });
        }
    }
    let mut catalog = Catalog::new(names.clone());
    for (id, numeric, cats) in &rows {
        let mut features = vec![0.0; names.len()];
        features[0] = *numeric;
        for k in 0..3 {
            features[column_of[&(k, cats[k].as_str())]] = 1.0;
        }
        catalog
            .push(Item {
                key: id.to_string(),
                title: None,
                category: Some(cats[0].clone()),
                price: None,
                features,
                embedding: None,
            })
            .map_err(|source| DataError::Invalid {
                path: path.to_owned(),
                line: 0,
                source,
            })?;
    }
    Ok((catalog, report))
}

struct ParsedRounds {
    rounds: Vec<Round>,
    user_feature_values: [Vec<String>; USER_FEATURES],
    affinities: FeatureMatrix,
    report: LoadReport,
}

fn parse_rounds(
    bytes: &[u8],
    path: &Path,
    catalog: &Catalog,
    options: &LoadOptions,
) -> Result<ParsedRounds, DataError> {
    let mut table = Table::new(path, bytes, Dialect::Csv)?;
    let c_time = table.column("timestamp")?;
    let c_item = table.column("item_id")?;
    let c_pos = table.column("position")?;
    let c_click = table.column("click")?;
    let c_prop = table.column("propensity_score")?;
    let mut c_user = [0; USER_FEATURES];
    for (k, c) in c_user.iter_mut().enumerate() {
        *c = table.column(&format!("user_feature_{k}"))?;
    }
    // The affinity columns are named after the catalog's item ids; every item must have one.
    let mut c_aff = Vec::with_capacity(catalog.len());
    for id in catalog.ids() {
        let key = catalog.key(id).unwrap_or_default();
        c_aff.push(table.column(&format!("user-item_affinity_{key}"))?);
    }
    let mut report = LoadReport::new(path.display().to_string());
    let mut rounds = Vec::with_capacity(bytes.len() / 500);
    let mut values: [Vec<String>; USER_FEATURES] = Default::default();
    let mut index: [HashMap<String, u32>; USER_FEATURES] = Default::default();
    let mut affinities = FeatureMatrix::with_dim(catalog.len());
    let mut aff_row = vec![0.0f32; catalog.len()];
    while let Some(row) = table.next_row()? {
        let parsed = (|| -> Result<_, DataError> {
            row.check_width()?;
            let time = row.required_str(c_time)?;
            let timestamp_ms = parse_datetime_ms(time)
                .ok_or_else(|| row.malformed(c_time, format!("`{time}` is not a date-time")))?;
            let item_key = row.required_str(c_item)?;
            let item = catalog.id_of(item_key).ok_or_else(|| {
                row.malformed(
                    c_item,
                    format!("item `{item_key}` is not in item_context.csv"),
                )
            })?;
            let position: u8 = row.parse(c_pos)?;
            if position == 0 {
                return Err(row.malformed(c_pos, "positions are 1-based; found 0"));
            }
            let click = match row.str(c_click)? {
                "0" => false,
                "1" => true,
                other => {
                    return Err(row.malformed(c_click, format!("`{other}` is not 0 or 1")));
                }
            };
            let propensity = row.finite(c_prop)?;
            if !(propensity > 0.0 && propensity <= 1.0) {
                return Err(row.malformed(c_prop, format!("{propensity} is outside (0, 1]")));
            }
            let mut user = [""; USER_FEATURES];
            for (k, u) in user.iter_mut().enumerate() {
                *u = row.required_str(c_user[k])?;
            }
            for (k, &c) in c_aff.iter().enumerate() {
                aff_row[k] = row.finite_f32(c)?;
            }
            Ok((timestamp_ms, item, position - 1, click, propensity, user))
        })();
        let (timestamp_ms, item, position, click, propensity, user) = match parsed {
            Ok(p) => p,
            Err(e) => {
                handle_malformed(e, options, &mut report)?;
                continue;
            }
        };
        let mut user_features = [0u32; USER_FEATURES];
        for k in 0..USER_FEATURES {
            user_features[k] = intern(&mut index[k], &mut values[k], user[k]);
        }
        affinities
            .push_row(&aff_row)
            .map_err(|source| invalid(&row, path, source))?;
        rounds.push(Round {
            timestamp_ms,
            item,
            position,
            click,
            propensity,
            user_features,
        });
        report.keep();
    }
    Ok(ParsedRounds {
        rounds,
        user_feature_values: values,
        affinities,
        report,
    })
}

fn invalid(row: &Row<'_>, path: &Path, source: metarec_core::VocabError) -> DataError {
    DataError::Invalid {
        path: path.to_owned(),
        line: row.line(),
        source,
    }
}

fn intern(index: &mut HashMap<String, u32>, values: &mut Vec<String>, v: &str) -> u32 {
    if let Some(&i) = index.get(v) {
        return i;
    }
    let i = values.len() as u32;
    index.insert(v.to_owned(), i);
    values.push(v.to_owned());
    i
}

impl ObdLog {
    /// Number of distinct positions seen.
    pub fn positions(&self) -> usize {
        let mut seen = [false; 256];
        for r in &self.rounds {
            seen[r.position as usize] = true;
        }
        seen.iter().filter(|&&s| s).count()
    }

    /// The identifier used as `policy_id` when rounds become [`Interaction`]s.
    pub fn policy_id(&self) -> String {
        format!("obd-{}", self.policy)
    }

    /// Round `i` as the project's log record: the hashed user features become `tokens`, the
    /// affinities `features`, and the single shown item a one-entry slate at its position.
    /// Open Bandit has no user ids, so the user key is the tuple of hashed features.
    pub fn interaction(&self, i: usize) -> Option<Interaction> {
        let r = self.rounds.get(i)?;
        let tokens: Vec<String> = (0..USER_FEATURES)
            .map(|k| {
                format!(
                    "user_feature_{k}={}",
                    self.user_feature_values[k][r.user_features[k] as usize]
                )
            })
            .collect();
        let user = UserKey(
            (0..USER_FEATURES)
                .map(|k| self.user_feature_values[k][r.user_features[k] as usize].as_str())
                .collect::<Vec<_>>()
                .join(":"),
        );
        let context = Context {
            user,
            timestamp_ms: Some(r.timestamp_ms),
            features: self.affinities.row(i).to_vec(),
            tokens,
            ..Context::default()
        };
        let decision = Decision {
            event_id: EventId(format!("obd-{}-{}-{i}", self.policy, self.campaign)),
            slate: Slate::new(vec![r.item]).ok()?,
            propensities: vec![r.propensity],
            slate_propensity: None,
            positions: Some(vec![u32::from(r.position)]),
            policy_id: self.policy_id(),
            model_version: "obd-small".into(),
        };
        let feedback = Feedback {
            clicks: vec![r.click],
            purchases: vec![false],
            revenue: vec![0.0],
        };
        Interaction::new(context, decision, feedback).ok()
    }
}
