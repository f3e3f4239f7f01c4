//! Items and the [`Catalog`] that stores them column by column.
//!
//! Models read one feature column for thousands of items at a time, so the catalog keeps each
//! attribute in its own vector ([`FeatureMatrix`] for dense features) instead of a vector of
//! structs. [`Item`] is the row view used to add items and to look one up.

use crate::error::VocabError;
use crate::ids::{CategoryId, ItemId};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// A dense row-major matrix of `f32` features with optional column names.
///
/// Invariant: `values.len() == rows * dim`, and `names` is empty or has `dim` entries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "FeatureMatrixRepr")]
pub struct FeatureMatrix {
    dim: usize,
    names: Vec<String>,
    values: Vec<f32>,
}

#[derive(Deserialize)]
struct FeatureMatrixRepr {
    dim: usize,
    #[serde(default)]
    names: Vec<String>,
    values: Vec<f32>,
}

impl TryFrom<FeatureMatrixRepr> for FeatureMatrix {
    type Error = VocabError;
    fn try_from(r: FeatureMatrixRepr) -> Result<Self, VocabError> {
        FeatureMatrix::from_values(r.dim, r.names, r.values)
    }
}

impl FeatureMatrix {
    /// An empty matrix whose rows will have `names.len()` columns.
    pub fn with_names(names: Vec<String>) -> Self {
        FeatureMatrix {
            dim: names.len(),
            names,
            values: Vec::new(),
        }
    }

    /// An empty matrix of unnamed columns (for example a text embedding).
    pub fn with_dim(dim: usize) -> Self {
        FeatureMatrix {
            dim,
            names: Vec::new(),
            values: Vec::new(),
        }
    }

    /// A matrix from row-major values, checked for shape.
    pub fn from_values(
        dim: usize,
        names: Vec<String>,
        values: Vec<f32>,
    ) -> Result<Self, VocabError> {
        if !names.is_empty() && names.len() != dim {
            return Err(VocabError::LengthMismatch {
                field: "names",
                expected: dim,
                actual: names.len(),
            });
        }
        let whole_rows = if dim == 0 {
            values.is_empty()
        } else {
            values.len() % dim == 0
        };
        if !whole_rows {
            return Err(VocabError::LengthMismatch {
                field: "values",
                expected: values.len().next_multiple_of(dim.max(1)),
                actual: values.len(),
            });
        }
        Ok(FeatureMatrix { dim, names, values })
    }

    /// Number of columns.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Number of rows. A matrix with zero columns reports zero rows.
    pub fn rows(&self) -> usize {
        self.values.len().checked_div(self.dim).unwrap_or(0)
    }

    /// Column names, empty when the columns are unnamed.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// One row.
    ///
    /// # Panics
    /// When `row >= self.rows()`, like slice indexing.
    pub fn row(&self, row: usize) -> &[f32] {
        &self.values[row * self.dim..(row + 1) * self.dim]
    }

    /// All values, row-major.
    pub fn values(&self) -> &[f32] {
        &self.values
    }

    /// Appends a row, checked for width.
    pub fn push_row(&mut self, row: &[f32]) -> Result<(), VocabError> {
        if row.len() != self.dim {
            return Err(VocabError::LengthMismatch {
                field: "features",
                expected: self.dim,
                actual: row.len(),
            });
        }
        self.values.extend_from_slice(row);
        Ok(())
    }
}

/// One item as a row: what a loader adds to a [`Catalog`] and what a lookup returns.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Item {
    /// The item's key in its source (a stock code, a movie id); unique within a catalog.
    pub key: String,
    /// The human-readable title, when the source has one.
    pub title: Option<String>,
    /// The item's (primary) category name, when the source has one.
    pub category: Option<String>,
    /// Unit price in the shop's currency, when known; finite and non-negative.
    pub price: Option<f32>,
    /// Dense numeric features, one per column of the catalog's feature matrix.
    pub features: Vec<f32>,
    /// A text embedding of the title, when one has been computed.
    pub embedding: Option<Vec<f32>>,
}

/// All items of a shop, stored column by column and indexed by [`ItemId`].
///
/// Invariants: every column has one entry per item; item keys are unique; every
/// [`CategoryId`] indexes `category_names`; prices are finite and non-negative; the embedding
/// matrix, when present, has one row per item. Deserialisation checks all of them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "CatalogColumns", into = "CatalogColumns")]
pub struct Catalog {
    cols: CatalogColumns,
    index: HashMap<String, ItemId>,
    category_index: HashMap<String, CategoryId>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct CatalogColumns {
    keys: Vec<String>,
    titles: Vec<Option<String>>,
    prices: Vec<Option<f32>>,
    categories: Vec<Option<CategoryId>>,
    category_names: Vec<String>,
    features: FeatureMatrix,
    embeddings: Option<FeatureMatrix>,
}

impl From<Catalog> for CatalogColumns {
    fn from(c: Catalog) -> Self {
        c.cols
    }
}

impl TryFrom<CatalogColumns> for Catalog {
    type Error = VocabError;
    fn try_from(cols: CatalogColumns) -> Result<Self, VocabError> {
        let n = cols.keys.len();
        let check = |field: &'static str, actual: usize| {
            if actual == n {
                Ok(())
            } else {
                Err(VocabError::LengthMismatch {
                    field,
                    expected: n,
                    actual,
                })
            }
        };
        check("titles", cols.titles.len())?;
        check("prices", cols.prices.len())?;
        check("categories", cols.categories.len())?;
        // A matrix without columns holds no values and so cannot tell how many rows it has: a
        // catalog without numeric features (only keys, say) is valid at any length.
        if cols.features.dim() > 0 {
            check("features", cols.features.rows())?;
        }
        if let Some(e) = &cols.embeddings {
            check("embeddings", e.rows())?;
        }
        for price in cols.prices.iter().flatten() {
            check_price(*price)?;
        }
        for cat in cols.categories.iter().flatten() {
            if cat.0 as usize >= cols.category_names.len() {
                return Err(VocabError::UnknownId {
                    field: "categories",
                    id: u64::from(cat.0),
                    len: cols.category_names.len(),
                });
            }
        }
        let mut index = HashMap::with_capacity(n);
        for (i, key) in cols.keys.iter().enumerate() {
            if index.insert(key.clone(), ItemId(i as u32)).is_some() {
                return Err(VocabError::DuplicateKey { key: key.clone() });
            }
        }
        let category_index = cols
            .category_names
            .iter()
            .enumerate()
            .map(|(i, name)| (name.clone(), CategoryId(i as u32)))
            .collect();
        Ok(Catalog {
            cols,
            index,
            category_index,
        })
    }
}

fn check_price(price: f32) -> Result<(), VocabError> {
    if price.is_finite() && price >= 0.0 {
        Ok(())
    } else {
        Err(VocabError::OutOfRange {
            field: "price",
            value: f64::from(price),
            allowed: "finite and non-negative",
        })
    }
}

impl Catalog {
    /// An empty catalog whose items carry the named numeric features.
    pub fn new(feature_names: Vec<String>) -> Self {
        Catalog {
            cols: CatalogColumns {
                keys: Vec::new(),
                titles: Vec::new(),
                prices: Vec::new(),
                categories: Vec::new(),
                category_names: Vec::new(),
                features: FeatureMatrix::with_names(feature_names),
                embeddings: None,
            },
            index: HashMap::new(),
            category_index: HashMap::new(),
        }
    }

    /// Adds an item and returns its id. Embeddings are attached separately with
    /// [`Catalog::set_embeddings`], so `item.embedding` must be `None` here.
    pub fn push(&mut self, item: Item) -> Result<ItemId, VocabError> {
        if self.index.contains_key(&item.key) {
            return Err(VocabError::DuplicateKey { key: item.key });
        }
        if let Some(p) = item.price {
            check_price(p)?;
        }
        if item.embedding.is_some() {
            return Err(VocabError::OutOfRange {
                field: "embedding",
                value: 1.0,
                allowed: "None when pushing; use Catalog::set_embeddings",
            });
        }
        self.cols.features.push_row(&item.features)?;
        let id = ItemId(self.cols.keys.len() as u32);
        let category = item.category.map(|name| self.intern_category(name));
        self.index.insert(item.key.clone(), id);
        self.cols.keys.push(item.key);
        self.cols.titles.push(item.title);
        self.cols.prices.push(item.price);
        self.cols.categories.push(category);
        Ok(id)
    }

    fn intern_category(&mut self, name: String) -> CategoryId {
        if let Some(id) = self.category_index.get(&name) {
            return *id;
        }
        let id = CategoryId(self.cols.category_names.len() as u32);
        self.cols.category_names.push(name.clone());
        self.category_index.insert(name, id);
        id
    }

    /// Attaches text embeddings, one row per item in id order.
    pub fn set_embeddings(&mut self, embeddings: FeatureMatrix) -> Result<(), VocabError> {
        if embeddings.rows() != self.len() {
            return Err(VocabError::LengthMismatch {
                field: "embeddings",
                expected: self.len(),
                actual: embeddings.rows(),
            });
        }
        self.cols.embeddings = Some(embeddings);
        Ok(())
    }

    /// The same catalog with more numeric feature columns: `names` after the existing ones, and
    /// `values` row-major, `names.len()` per item in id order (title embeddings' principal
    /// components added before training, for example). Everything else stays as it is, ids and
    /// category numbers included.
    pub fn with_features_appended(
        &self,
        names: &[String],
        values: &[f32],
    ) -> Result<Catalog, VocabError> {
        let extra = names.len();
        if values.len() != extra * self.len() {
            return Err(VocabError::LengthMismatch {
                field: "features",
                expected: extra * self.len(),
                actual: values.len(),
            });
        }
        let old = &self.cols.features;
        let mut all_names = old.names().to_vec();
        if all_names.len() != old.dim() {
            // Unnamed columns: name them by position so the names stay one per column.
            all_names = (0..old.dim()).map(|k| format!("feature_{k}")).collect();
        }
        all_names.extend_from_slice(names);
        let dim = old.dim() + extra;
        let mut all = Vec::with_capacity(dim * self.len());
        for i in 0..self.len() {
            all.extend_from_slice(old.row(i));
            all.extend_from_slice(&values[i * extra..(i + 1) * extra]);
        }
        let mut out = self.clone();
        out.cols.features = FeatureMatrix::from_values(dim, all_names, all)?;
        Ok(out)
    }

    /// Number of items.
    pub fn len(&self) -> usize {
        self.cols.keys.len()
    }

    /// Whether the catalog has no items.
    pub fn is_empty(&self) -> bool {
        self.cols.keys.is_empty()
    }

    /// All item ids, in order.
    pub fn ids(&self) -> impl ExactSizeIterator<Item = ItemId> + use<> {
        (0..self.len() as u32).map(ItemId)
    }

    /// Whether `id` names an item of this catalog.
    pub fn contains(&self, id: ItemId) -> bool {
        id.index() < self.len()
    }

    /// The id of the item with this external key.
    pub fn id_of(&self, key: &str) -> Option<ItemId> {
        self.index.get(key).copied()
    }

    /// Every item's external key, in id order.
    pub fn keys(&self) -> &[String] {
        &self.cols.keys
    }

    /// The catalog's fingerprint: FNV-1a (64 bits, as 16 lower-case hex digits) of the item
    /// keys, each followed by a zero byte, then the feature names, each followed by a zero byte,
    /// then every feature value's little-endian bytes, in id order. Titles, prices, categories
    /// and embeddings are left out: a model bundle records this value to check that it ranks the
    /// catalog it was trained on, and interaction logs record it to name the catalog their item
    /// keys belong to.
    pub fn fingerprint(&self) -> String {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        let mut eat = |bytes: &[u8]| {
            for &b in bytes {
                h = (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
            }
        };
        for key in &self.cols.keys {
            eat(key.as_bytes());
            eat(b"\0");
        }
        for name in self.cols.features.names() {
            eat(name.as_bytes());
            eat(b"\0");
        }
        for v in self.cols.features.values() {
            eat(&v.to_le_bytes());
        }
        format!("{h:016x}")
    }

    /// The external key of an item.
    pub fn key(&self, id: ItemId) -> Option<&str> {
        self.cols.keys.get(id.index()).map(String::as_str)
    }

    /// The title of an item, when it has one.
    pub fn title(&self, id: ItemId) -> Option<&str> {
        self.cols.titles.get(id.index())?.as_deref()
    }

    /// The price of an item, when known.
    pub fn price(&self, id: ItemId) -> Option<f32> {
        *self.cols.prices.get(id.index())?
    }

    /// The category of an item, when it has one.
    pub fn category(&self, id: ItemId) -> Option<CategoryId> {
        *self.cols.categories.get(id.index())?
    }

    /// The name of a category.
    pub fn category_name(&self, id: CategoryId) -> Option<&str> {
        self.cols
            .category_names
            .get(id.0 as usize)
            .map(String::as_str)
    }

    /// Number of distinct categories.
    pub fn category_count(&self) -> usize {
        self.cols.category_names.len()
    }

    /// The numeric features of all items.
    pub fn features(&self) -> &FeatureMatrix {
        &self.cols.features
    }

    /// The text embeddings of all items, when attached.
    pub fn embeddings(&self) -> Option<&FeatureMatrix> {
        self.cols.embeddings.as_ref()
    }

    /// All prices, in id order (the price column).
    pub fn prices(&self) -> &[Option<f32>] {
        &self.cols.prices
    }

    /// One item as an owned row.
    pub fn item(&self, id: ItemId) -> Option<Item> {
        let i = id.index();
        if i >= self.len() {
            return None;
        }
        Some(Item {
            key: self.cols.keys[i].clone(),
            title: self.cols.titles[i].clone(),
            category: self.cols.categories[i]
                .and_then(|c| self.category_name(c))
                .map(str::to_owned),
            price: self.cols.prices[i],
            features: self.cols.features.row(i).to_vec(),
            embedding: self.cols.embeddings.as_ref().map(|e| e.row(i).to_vec()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(key: &str, cat: Option<&str>, price: f32, f: f32) -> Item {
        Item {
            key: key.into(),
            title: Some(format!("title {key}")),
            category: cat.map(str::to_owned),
            price: Some(price),
            features: vec![f],
            embedding: None,
        }
    }

    #[test]
    fn push_and_lookup_round_trip() {
        let mut c = Catalog::new(vec!["f".into()]);
        let a = c.push(item("A", Some("x"), 1.5, 0.1)).unwrap();
        let b = c.push(item("B", Some("x"), 2.0, 0.2)).unwrap();
        let d = c.push(item("C", None, 0.0, 0.3)).unwrap();
        assert_eq!((a, b, d), (ItemId(0), ItemId(1), ItemId(2)));
        assert_eq!(c.id_of("B"), Some(b));
        assert_eq!(c.category(a), c.category(b));
        assert_eq!(c.category_count(), 1);
        assert_eq!(c.category(d), None);
        assert_eq!(c.features().row(1), &[0.2]);
        assert_eq!(c.item(b).unwrap(), item("B", Some("x"), 2.0, 0.2));
        assert!(c.item(ItemId(3)).is_none());
    }

    #[test]
    fn the_fingerprint_is_fnv_1a_of_keys_feature_names_and_values() {
        // Reference from a few lines of Python: FNV-1a 64 over b"A\0B\0f\0" and the
        // little-endian f32 bytes of 0.5 and 2.0.
        let mut c = Catalog::new(vec!["f".into()]);
        c.push(item("A", Some("x"), 1.0, 0.5)).unwrap();
        c.push(item("B", None, 3.0, 2.0)).unwrap();
        assert_eq!(c.fingerprint(), "02844733e4dfd8cd");
        assert_eq!(c.keys(), ["A", "B"]);
        // Titles, prices and categories do not count; keys and feature values do.
        let mut same = Catalog::new(vec!["f".into()]);
        same.push(item("A", None, 9.0, 0.5)).unwrap();
        same.push(item("B", Some("y"), 0.0, 2.0)).unwrap();
        assert_eq!(same.fingerprint(), c.fingerprint());
        let mut other = Catalog::new(vec!["f".into()]);
        other.push(item("A", None, 1.0, 0.5)).unwrap();
        other.push(item("B", None, 3.0, 2.5)).unwrap();
        assert_ne!(other.fingerprint(), c.fingerprint());
    }

    #[test]
    fn appended_features_follow_the_old_ones_and_nothing_else_changes() {
        let mut c = Catalog::new(vec!["f".into()]);
        c.push(item("A", Some("y"), 1.5, 0.1)).unwrap();
        c.push(item("B", Some("x"), 2.0, 0.2)).unwrap();
        let names = vec!["text_0".to_string(), "text_1".to_string()];
        let wide = c
            .with_features_appended(&names, &[1.0, 2.0, 3.0, 4.0])
            .unwrap();
        assert_eq!(wide.features().names(), &["f", "text_0", "text_1"]);
        assert_eq!(wide.features().row(1), &[0.2, 3.0, 4.0]);
        assert_eq!(wide.category(ItemId(0)), c.category(ItemId(0)));
        assert_eq!(wide.id_of("B"), Some(ItemId(1)));
        assert_eq!(wide.title(ItemId(1)), c.title(ItemId(1)));
        assert!(matches!(
            c.with_features_appended(&names, &[1.0]),
            Err(VocabError::LengthMismatch { .. })
        ));
    }

    #[test]
    fn rejects_duplicate_keys_bad_prices_and_wrong_widths() {
        let mut c = Catalog::new(vec!["f".into()]);
        c.push(item("A", None, 1.0, 0.0)).unwrap();
        assert!(matches!(
            c.push(item("A", None, 1.0, 0.0)),
            Err(VocabError::DuplicateKey { .. })
        ));
        assert!(matches!(
            c.push(item("B", None, f32::NAN, 0.0)),
            Err(VocabError::OutOfRange { .. })
        ));
        assert!(matches!(
            c.push(item("C", None, -1.0, 0.0)),
            Err(VocabError::OutOfRange { .. })
        ));
        let mut wide = item("D", None, 1.0, 0.0);
        wide.features.push(1.0);
        assert!(matches!(
            c.push(wide),
            Err(VocabError::LengthMismatch { .. })
        ));
        // A failed push leaves the catalog as it was.
        assert_eq!(c.len(), 1);
        assert_eq!(c.features().rows(), 1);
    }

    #[test]
    fn a_catalog_without_features_survives_serde() {
        let mut c = Catalog::new(Vec::new());
        for key in ["A", "B"] {
            c.push(Item {
                key: key.into(),
                ..Item::default()
            })
            .unwrap();
        }
        let back: Catalog = serde_json::from_str(&serde_json::to_string(&c).unwrap()).unwrap();
        assert_eq!(back.len(), 2);
        assert_eq!(back.id_of("B"), Some(ItemId(1)));
    }

    #[test]
    fn serde_round_trip_rebuilds_indices_and_checks_invariants() {
        let mut c = Catalog::new(vec!["f".into()]);
        c.push(item("A", Some("x"), 1.0, 0.5)).unwrap();
        c.push(item("B", Some("y"), 2.0, 0.7)).unwrap();
        c.set_embeddings(FeatureMatrix::from_values(2, vec![], vec![1., 0., 0., 1.]).unwrap())
            .unwrap();
        let json = serde_json::to_string(&c).unwrap();
        let back: Catalog = serde_json::from_str(&json).unwrap();
        assert_eq!(back, c);
        assert_eq!(back.id_of("B"), Some(ItemId(1)));

        let broken = json.replace("\"B\"", "\"A\"");
        let err = serde_json::from_str::<Catalog>(&broken).unwrap_err();
        assert!(err.to_string().contains("appears more than once"), "{err}");
    }

    #[test]
    fn embeddings_must_cover_every_item() {
        let mut c = Catalog::new(vec![]);
        c.push(Item {
            key: "A".into(),
            ..Item::default()
        })
        .unwrap();
        let e = FeatureMatrix::from_values(2, vec![], vec![1., 0., 0., 1.]).unwrap();
        assert!(c.set_embeddings(e).is_err());
    }
}
