//! Items over the API: [`ItemRecord`] (one item as the server stores and answers it),
//! [`ItemChange`] (what a `PUT /v1/items/{key}` asks for, checked) and [`ServedCatalog`] (the
//! bundle's catalog with every change made over the API applied: items added, updated and
//! retired).
//!
//! Ids: the bundle's items keep their ids; an item added over the API gets the next id after
//! every item before it, in the order items were first added, and keeps it for good (a retired
//! item stays in the catalog, only never ranked again). The database keeps item changes in that
//! order, so a restart gives every item the id it had, and the item ids in stored decisions and
//! user histories keep naming the same items.

use metarec_core::{Catalog, ItemId};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

/// Longest title or category name an item may have, in bytes.
pub const MAX_TEXT_BYTES: usize = 1024;

/// One item as stored and answered: its key, its feature row (one value per column of the
/// catalog's features), its descriptive fields and whether it may be ranked.
#[derive(Debug, Clone, PartialEq)]
pub struct ItemRecord {
    /// The item's key.
    pub key: String,
    /// The item's numeric features, in the catalog's column order; finite.
    pub features: Vec<f32>,
    /// The title, when there is one.
    pub title: Option<String>,
    /// The category name, when there is one.
    pub category: Option<String>,
    /// The unit price, when known: finite and non-negative.
    pub price: Option<f32>,
    /// False once retired: a retired item is never ranked again but stays known, so feedback
    /// on earlier events and stored histories still resolve it.
    pub available: bool,
}

/// The stored form of an [`ItemRecord`]: floats as their IEEE-754 bit patterns, so a restart
/// restores an item's feature row, and with it its scores, bit for bit (as user states are
/// stored).
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StoredItem {
    key: String,
    features: Vec<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    title: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    category: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    price: Option<u32>,
    available: bool,
}

impl ItemRecord {
    /// The stored JSON.
    pub fn to_json(&self) -> Result<String, serde_json::Error> {
        serde_json::to_string(&StoredItem {
            key: self.key.clone(),
            features: self.features.iter().map(|v| v.to_bits()).collect(),
            title: self.title.clone(),
            category: self.category.clone(),
            price: self.price.map(f32::to_bits),
            available: self.available,
        })
    }

    /// Reads the stored JSON, checking what the API checks before it stores an item: finite
    /// features and a finite, non-negative price.
    pub fn from_json(text: &str) -> Result<ItemRecord, String> {
        let s: StoredItem = serde_json::from_str(text).map_err(|e| e.to_string())?;
        let features: Vec<f32> = s.features.into_iter().map(f32::from_bits).collect();
        if features.iter().any(|v| !v.is_finite()) {
            return Err(format!("item `{}` has a feature that is not finite", s.key));
        }
        let price = s.price.map(f32::from_bits);
        if price.is_some_and(|p| !(p.is_finite() && p >= 0.0)) {
            return Err(format!(
                "item `{}` has a price that is not finite and non-negative",
                s.key
            ));
        }
        Ok(ItemRecord {
            key: s.key,
            features,
            title: s.title,
            category: s.category,
            price,
            available: s.available,
        })
    }

    /// The item as answered: the features by name, the descriptive fields, availability and
    /// whether the item came with the model's bundle or was added over the API.
    pub fn to_answer<'a>(&'a self, names: &'a [String], added: bool) -> ItemOut<'a> {
        ItemOut {
            key: &self.key,
            features: names
                .iter()
                .map(String::as_str)
                .zip(self.features.iter().map(|v| f64::from(*v)))
                .collect(),
            title: self.title.as_deref(),
            category: self.category.as_deref(),
            price: self.price.map(f64::from),
            available: self.available,
            added,
        }
    }
}

/// An item as answered by the item routes.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ItemOut<'a> {
    /// The item's key.
    pub key: &'a str,
    /// Every feature column of the catalog, by name.
    pub features: std::collections::BTreeMap<&'a str, f64>,
    /// The title, when known.
    pub title: Option<&'a str>,
    /// The category, when known.
    pub category: Option<&'a str>,
    /// The price, when known.
    pub price: Option<f64>,
    /// False once retired: a retired item is never ranked again.
    pub available: bool,
    /// Whether the item was added over the API (rather than coming with the model's bundle).
    pub added: bool,
}

/// A checked change of one item, as `PUT /v1/items/{key}` asks for it: every value is already
/// known to be valid (feature columns exist, numbers are finite as 32-bit floats, texts are
/// within [`MAX_TEXT_BYTES`]). What it leaves out keeps its value for an existing item; a new
/// item takes the catalog's column means for the features it leaves out, no title, category or
/// price, and is available.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ItemChange {
    /// Feature values by column index.
    pub features: Vec<(usize, f32)>,
    /// A new title.
    pub title: Option<String>,
    /// A new category name.
    pub category: Option<String>,
    /// A new price.
    pub price: Option<f32>,
    /// Whether the item may be ranked.
    pub available: Option<bool>,
}

/// The catalog the server ranks from: the bundle's catalog with the changes made over the API,
/// and its key index. Cloning it copies the tables of changed items (their records are shared),
/// which the writer does once per group of item changes.
#[derive(Debug, Clone)]
pub struct ServedCatalog {
    /// The bundle's catalog, which the model was trained on.
    base: Arc<Catalog>,
    /// The mean of each feature column over the bundle's items: what a new item's missing
    /// features take.
    means: Arc<Vec<f32>>,
    /// Items added over the API, by key.
    added_index: HashMap<Arc<str>, ItemId>,
    /// Every item changed over the API (bundle items updated and items added), by id.
    records: HashMap<ItemId, Arc<ItemRecord>>,
    /// Retired items.
    retired: BTreeSet<ItemId>,
}

impl ServedCatalog {
    /// The bundle's catalog with no change.
    pub fn new(base: Arc<Catalog>) -> ServedCatalog {
        let m = base.features();
        let mut means = vec![0.0f64; m.dim()];
        for r in 0..m.rows() {
            for (s, v) in means.iter_mut().zip(m.row(r)) {
                *s += f64::from(*v);
            }
        }
        let rows = m.rows().max(1) as f64;
        ServedCatalog {
            means: Arc::new(means.into_iter().map(|s| (s / rows) as f32).collect()),
            base,
            added_index: HashMap::new(),
            records: HashMap::new(),
            retired: BTreeSet::new(),
        }
    }

    /// The bundle's catalog.
    pub fn base(&self) -> &Catalog {
        &self.base
    }

    /// Number of items: the bundle's and those added over the API (retired ones included).
    pub fn len(&self) -> usize {
        self.base.len() + self.added_index.len()
    }

    /// Whether there is no item at all.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Items added over the API, retired ones included.
    pub fn added(&self) -> usize {
        self.added_index.len()
    }

    /// Whether an item was added over the API rather than coming with the bundle.
    pub fn is_added(&self, id: ItemId) -> bool {
        id.index() >= self.base.len()
    }

    /// The names of the feature columns, which `PUT /v1/items/{key}` takes.
    pub fn feature_names(&self) -> &[String] {
        self.base.features().names()
    }

    /// The id of an item key.
    pub fn id(&self, key: &str) -> Option<ItemId> {
        self.base
            .id_of(key)
            .or_else(|| self.added_index.get(key).copied())
    }

    /// The key of an item id (empty for an id past the catalog).
    pub fn key(&self, id: ItemId) -> &str {
        match self.records.get(&id) {
            Some(r) => &r.key,
            None => self.base.key(id).unwrap_or(""),
        }
    }

    /// Whether an item is retired: known, but never ranked.
    pub fn is_retired(&self, id: ItemId) -> bool {
        self.retired.contains(&id)
    }

    /// Whether any item is retired (so a whole-catalog rank must list the others).
    pub fn any_retired(&self) -> bool {
        !self.retired.is_empty()
    }

    /// The ids of every item that may be ranked, in id order.
    pub fn rankable(&self) -> impl Iterator<Item = ItemId> + '_ {
        (0..self.len() as u32)
            .map(ItemId)
            .filter(|id| !self.retired.contains(id))
    }

    /// Every item changed over the API, in id order: the rows a network must recompute.
    pub fn changed(&self) -> Vec<ItemId> {
        let mut ids: Vec<ItemId> = self.records.keys().copied().collect();
        ids.sort_unstable();
        ids
    }

    /// An item's feature row as served.
    pub fn features_of(&self, id: ItemId) -> Option<&[f32]> {
        match self.records.get(&id) {
            Some(r) => Some(&r.features),
            None if id.index() < self.base.len() => Some(self.base.features().row(id.index())),
            None => None,
        }
    }

    /// An item as served, for answers and updates.
    pub fn record(&self, id: ItemId) -> Option<ItemRecord> {
        if let Some(r) = self.records.get(&id) {
            return Some((**r).clone());
        }
        let item = self.base.item(id)?;
        Some(ItemRecord {
            key: item.key,
            features: item.features,
            title: item.title,
            category: item.category,
            price: item.price,
            available: true,
        })
    }

    /// The record `change` makes of item `key`: the item as served with the change applied, or
    /// a new item (the column means for the features the change leaves out). `None` for a new
    /// item when `max_added` items were already added.
    pub fn merge(&self, key: &str, change: &ItemChange, max_added: usize) -> Option<ItemRecord> {
        let mut record = match self.id(key).and_then(|id| self.record(id)) {
            Some(r) => r,
            None if self.added() >= max_added => return None,
            None => ItemRecord {
                key: key.to_owned(),
                features: self.means.to_vec(),
                title: None,
                category: None,
                price: None,
                available: true,
            },
        };
        for &(column, value) in &change.features {
            if let Some(v) = record.features.get_mut(column) {
                *v = value;
            }
        }
        if let Some(t) = &change.title {
            record.title = Some(t.clone());
        }
        if let Some(c) = &change.category {
            record.category = Some(c.clone());
        }
        if let Some(p) = change.price {
            record.price = Some(p);
        }
        if let Some(a) = change.available {
            record.available = a;
        }
        Some(record)
    }

    /// Applies a record: replaces the item of its key, or adds it with the next id. Returns the
    /// id and whether the item is new. A record whose feature row is not as wide as the
    /// catalog's is refused.
    pub fn apply(&mut self, record: ItemRecord) -> Result<(ItemId, bool), String> {
        let dim = self.base.features().dim();
        if record.features.len() != dim {
            return Err(format!(
                "item `{}` has {} feature values; the catalog has {dim} columns",
                record.key,
                record.features.len()
            ));
        }
        let (id, created) = match self.id(&record.key) {
            Some(id) => (id, false),
            None => {
                let id = u32::try_from(self.len())
                    .map(ItemId)
                    .map_err(|_| "the catalog has no room for another item id".to_owned())?;
                self.added_index.insert(Arc::from(record.key.as_str()), id);
                (id, true)
            }
        };
        if record.available {
            self.retired.remove(&id);
        } else {
            self.retired.insert(id);
        }
        self.records.insert(id, Arc::new(record));
        Ok((id, created))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use metarec_core::Item;

    fn base() -> Arc<Catalog> {
        let mut c = Catalog::new(vec!["a".into(), "b".into()]);
        for (k, f) in [("x", [1.0, 0.0]), ("y", [3.0, 2.0])] {
            c.push(Item {
                key: k.into(),
                title: Some(format!("title {k}")),
                features: f.to_vec(),
                ..Item::default()
            })
            .unwrap();
        }
        Arc::new(c)
    }

    #[test]
    fn new_items_take_the_next_ids_and_the_column_means_they_leave_out() {
        let mut c = ServedCatalog::new(base());
        let change = ItemChange {
            features: vec![(1, 5.0)],
            price: Some(2.5),
            ..ItemChange::default()
        };
        let r = c.merge("z", &change, 10).unwrap();
        assert_eq!(r.features, vec![2.0, 5.0]);
        assert!(r.available);
        assert_eq!(c.apply(r).unwrap(), (ItemId(2), true));
        assert_eq!((c.len(), c.added(), c.id("z")), (3, 1, Some(ItemId(2))));
        assert_eq!(c.key(ItemId(2)), "z");
        assert_eq!(c.features_of(ItemId(2)), Some(&[2.0f32, 5.0][..]));
        // An update keeps what it leaves out; a bundle item can be updated too.
        let r = c
            .merge("y", &ItemChange::default(), 10)
            .map(|mut r| {
                r.available = false;
                r
            })
            .unwrap();
        assert_eq!(r.title.as_deref(), Some("title y"));
        assert_eq!(c.apply(r).unwrap(), (ItemId(1), false));
        assert!(c.is_retired(ItemId(1)));
        assert_eq!(c.rankable().collect::<Vec<_>>(), vec![ItemId(0), ItemId(2)]);
        assert_eq!(c.changed(), vec![ItemId(1), ItemId(2)]);
        // The limit counts added items only.
        assert!(c.merge("w", &ItemChange::default(), 1).is_none());
        assert!(c.merge("x", &ItemChange::default(), 1).is_some());
    }

    #[test]
    fn stored_records_round_trip_bit_for_bit_and_bad_ones_are_errors() {
        let r = ItemRecord {
            key: "k".into(),
            features: vec![0.1 + 0.2, f32::MIN_POSITIVE, -1.0 / 3.0],
            title: Some("t".into()),
            category: None,
            price: Some(0.1),
            available: false,
        };
        let back = ItemRecord::from_json(&r.to_json().unwrap()).unwrap();
        assert_eq!(back, r);
        let nan = format!(
            r#"{{"key":"k","features":[{}],"available":true}}"#,
            f32::NAN.to_bits()
        );
        assert!(ItemRecord::from_json(&nan).unwrap_err().contains("finite"));
        let negative = format!(
            r#"{{"key":"k","features":[],"price":{},"available":true}}"#,
            (-1.0f32).to_bits()
        );
        assert!(
            ItemRecord::from_json(&negative)
                .unwrap_err()
                .contains("price")
        );
        let mut c = ServedCatalog::new(base());
        assert!(c.apply(r).unwrap_err().contains("3 feature values"));
    }
}
