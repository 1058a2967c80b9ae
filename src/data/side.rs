//! Side data a model may train on beside the interactions: item images, item and user feature
//! tables, item categories. One struct for every model ([`SideInfo`]); each model says which
//! parts it needs ([`SideNeeds`]), checked before training.
//!
//! Rows are aligned to the interaction indices once, in the Python glue: row r of the item
//! parts is item index r, row r of `user_features` is user index r. A model's catalogue may
//! be larger than its training items (the glue extends the item ids with the side data's
//! other ids): those items have no interaction and are scored from their side data.

use std::collections::HashMap;
use std::sync::Arc;

use tch::Tensor;

use crate::data::IdMap;
use crate::error::{Error, Result};
use crate::images::ImageBank;

/// A row-major f32 matrix (one row per item or user).
#[derive(Debug, Clone, Default)]
pub struct DenseMatrix {
    pub rows: usize,
    pub cols: usize,
    pub data: Vec<f32>,
    /// Column names (may be empty for unnamed features).
    pub names: Vec<String>,
}

impl DenseMatrix {
    pub fn new(rows: usize, cols: usize, data: Vec<f32>, names: Vec<String>) -> Result<Self> {
        if rows.checked_mul(cols) != Some(data.len()) {
            return Err(Error::invalid(format!("feature matrix: {} values for {rows} x {cols}", data.len())));
        }
        if let Some(p) = data.iter().position(|v| !v.is_finite()) {
            return Err(Error::invalid(format!("feature matrix: row {}, column {} is not finite", p.checked_div(cols).unwrap_or(p), p.checked_rem(cols).unwrap_or(0))));
        }
        Ok(DenseMatrix { rows, cols, data, names })
    }

    /// Row `r` (None past the last row).
    pub fn row(&self, r: usize) -> Option<&[f32]> {
        let at = r.checked_mul(self.cols)?;
        self.data.get(at..at.checked_add(self.cols)?)
    }

    /// The rows scaled to unit length (zero rows stay zero), for cosine similarity.
    pub fn unit_rows(&self) -> Vec<f32> {
        let mut out = self.data.clone();
        for row in out.chunks_mut(self.cols.max(1)) {
            let norm = row.iter().map(|x| x * x).sum::<f32>().sqrt();
            if norm > 0.0 {
                row.iter_mut().for_each(|x| *x /= norm);
            }
        }
        out
    }

    /// A CPU tensor holding a copy.
    pub fn to_tensor(&self) -> Tensor {
        Tensor::from_slice(&self.data).reshape([self.rows as i64, self.cols as i64])
    }
}

/// One categorical column: a raw value per row (as text; the glue converts).
#[derive(Debug, Clone, Default)]
pub struct CategoricalColumn {
    pub name: String,
    pub values: Vec<String>,
}

/// A feature table: categorical columns and a block of continuous columns, `n_rows` rows.
#[derive(Debug, Clone, Default)]
pub struct FeatureTable {
    pub n_rows: usize,
    pub categorical: Vec<CategoricalColumn>,
    pub continuous: Option<DenseMatrix>,
}

impl FeatureTable {
    pub fn new(n_rows: usize, categorical: Vec<CategoricalColumn>, continuous: Option<DenseMatrix>) -> Result<Self> {
        for c in &categorical {
            if c.values.len() != n_rows {
                return Err(Error::invalid(format!("feature column {:?} has {} rows, expected {n_rows}", c.name, c.values.len())));
            }
        }
        if let Some(m) = &continuous {
            if m.rows != n_rows {
                return Err(Error::invalid(format!("continuous features have {} rows, expected {n_rows}", m.rows)));
            }
        }
        Ok(FeatureTable { n_rows, categorical, continuous })
    }

    /// Only continuous features (a numpy matrix, image features).
    pub fn dense(m: DenseMatrix) -> Self {
        FeatureTable { n_rows: m.rows, categorical: Vec::new(), continuous: Some(m) }
    }

    pub fn n_continuous(&self) -> usize {
        self.continuous.as_ref().map_or(0, |m| m.cols)
    }

    /// Column names: categorical first, then continuous.
    pub fn column_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.categorical.iter().map(|c| c.name.clone()).collect();
        if let Some(m) = &self.continuous {
            names.extend(m.names.iter().cloned());
        }
        names
    }
}

/// The image of each item: a bank and, per item index, its bank row (the bank keeps its own
/// order; nothing is copied to align it).
#[derive(Clone)]
pub struct ItemImages {
    pub bank: Arc<ImageBank>,
    /// Bank row of each item index; None when item index = bank row.
    pub rows: Option<Arc<Vec<i64>>>,
}

impl ItemImages {
    pub fn new(bank: Arc<ImageBank>, rows: Option<Vec<i64>>) -> Result<Self> {
        if let Some(r) = &rows {
            if let Some(&bad) = r.iter().find(|&&x| x < 0 || x as usize >= bank.len()) {
                return Err(Error::invalid(format!("image row {bad} out of range for a bank of {} images", bank.len())));
            }
        }
        Ok(ItemImages { bank, rows: rows.map(Arc::new) })
    }

    /// Number of items (not bank rows).
    pub fn len(&self) -> usize {
        self.rows.as_ref().map_or(self.bank.len(), |r| r.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bank rows of item indices.
    pub fn bank_rows(&self, items: &[i64]) -> Result<Vec<i64>> {
        let n = self.len() as i64;
        if let Some(&bad) = items.iter().find(|&&i| i < 0 || i >= n) {
            return Err(Error::invalid(format!("item index {bad} out of range for {n} items with images")));
        }
        Ok(match &self.rows {
            // In range: checked above against len(), the length of `r`.
            Some(r) => items.iter().filter_map(|&i| r.get(i as usize).copied()).collect(),
            None => items.to_vec(),
        })
    }

    /// uint8 pixels (N, H, W, 3) of item indices, on `device` (normalisation is the network's).
    pub fn pixels(&self, items: &[i64], device: tch::Device) -> Result<Tensor> {
        let rows = self.bank_rows(items)?;
        let spec = self.bank.spec();
        let what = "a batch of images";
        let mut buf = crate::limits::try_filled(what, crate::limits::mul(what, rows.len(), spec.image_bytes())?, 0u8)?;
        self.bank.gather(&rows, &mut buf)?;
        let t = Tensor::from_slice(&buf).reshape([rows.len() as i64, spec.height as i64, spec.width as i64, 3]);
        Ok(t.f_to_device(device)?)
    }
}

/// Everything beside the interactions, each part shared (`Arc`) and aligned by index.
#[derive(Clone, Default)]
pub struct SideInfo {
    /// The image of each item index.
    pub images: Option<ItemImages>,
    /// Row = item index: a numpy matrix or `.b` features (continuous only), or a table.
    pub item_features: Option<Arc<FeatureTable>>,
    /// Row = user index.
    pub user_features: Option<Arc<FeatureTable>>,
    /// Per item index: a category code, -1 for none.
    pub categories: Option<Arc<Vec<i64>>>,
}

impl SideInfo {
    /// Checks each present part has one row per user / item.
    pub fn check_rows(&self, n_users: usize, n_items: usize) -> Result<()> {
        let check = |what: &str, rows: usize, want: usize| {
            if rows != want {
                return Err(Error::invalid(format!("{what} has {rows} rows for {want} {}", if what == "user_features" { "users" } else { "items" })));
            }
            Ok(())
        };
        if let Some(b) = &self.images {
            check("images", b.len(), n_items)?;
        }
        if let Some(t) = &self.item_features {
            check("item_features", t.n_rows, n_items)?;
        }
        if let Some(t) = &self.user_features {
            check("user_features", t.n_rows, n_users)?;
        }
        if let Some(c) = &self.categories {
            check("categories", c.len(), n_items)?;
        }
        Ok(())
    }

    pub fn names_present(&self) -> Vec<&'static str> {
        let mut v = Vec::new();
        if self.images.is_some() {
            v.push("images");
        }
        if self.item_features.is_some() {
            v.push("item_features");
        }
        if self.user_features.is_some() {
            v.push("user_features");
        }
        if self.categories.is_some() {
            v.push("categories");
        }
        v
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Need {
    #[default]
    Unused,
    Optional,
    Required,
}

/// Which parts of [`SideInfo`] a model uses.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SideNeeds {
    pub images: Need,
    pub item_features: Need,
    pub user_features: Need,
    pub categories: Need,
    /// Whether the model encodes categorical feature columns (strings, categories, booleans).
    /// When false it reads its features as numbers only, and a categorical column is refused
    /// by name: the one column policy, so no column is ever dropped without a word.
    pub categorical_features: bool,
}

impl SideNeeds {
    /// Error naming what `model` requires and was not given, or was given and cannot use.
    pub fn check(&self, model: &str, side: &SideInfo) -> Result<()> {
        let parts = [
            ("images", self.images, side.images.is_some()),
            ("item_features", self.item_features, side.item_features.is_some()),
            ("user_features", self.user_features, side.user_features.is_some()),
            ("categories", self.categories, side.categories.is_some()),
        ];
        for (name, need, given) in parts {
            match (need, given) {
                (Need::Required, false) => {
                    return Err(Error::invalid(format!("{model} needs {name}=: pass it to fit")));
                }
                (Need::Unused, true) => {
                    return Err(Error::invalid(format!("{model} does not use {name}= (it would be ignored)")));
                }
                _ => {}
            }
        }
        if !self.categorical_features {
            for (name, table) in [("item_features", &side.item_features), ("user_features", &side.user_features)] {
                if let Some(column) = table.as_ref().and_then(|t| t.categorical.first()) {
                    return Err(Error::invalid(format!(
                        "{model} reads {name} as numbers: column {:?} holds strings, categories or booleans; \
                         drop it or encode it as numbers (e.g. pandas.get_dummies, or .astype(float) for booleans)",
                        column.name
                    )));
                }
            }
        }
        Ok(())
    }
}

/// Codes of a categorical column's values: 1..=n for the values seen when fitting, 0 for
/// any other (unknown) value. Kept in the model's state so new rows encode the same way.
#[derive(Debug, Clone)]
pub struct Vocab {
    map: IdMap,
}

impl Vocab {
    /// The sorted distinct values of `col`.
    pub fn fit(col: &CategoricalColumn) -> Self {
        let refs: Vec<&str> = col.values.iter().map(String::as_str).collect();
        Vocab { map: IdMap::build(crate::data::RawIds::Str(&refs)) }
    }

    /// Number of codes, the unknown code 0 included.
    pub fn size(&self) -> usize {
        self.map.len().saturating_add(1)
    }

    pub fn encode(&self, col: &CategoricalColumn) -> Result<Vec<i64>> {
        let refs: Vec<&str> = col.values.iter().map(String::as_str).collect();
        let idx = self.map.lookup(crate::data::RawIds::Str(&refs))?;
        Ok(idx.into_iter().map(|i| if i == crate::data::idmap::UNKNOWN { 0 } else { (i as i64).saturating_add(1) }).collect())
    }

    /// Tensors to save under `name` (values as UTF-8 bytes with offsets).
    pub fn state(&self, name: &str) -> Vec<(String, Tensor)> {
        let ids = self.map.str_ids().unwrap_or(&[]);
        let mut offsets = vec![0i64];
        let mut bytes = Vec::new();
        for s in ids {
            bytes.extend_from_slice(s.as_bytes());
            offsets.push(bytes.len() as i64);
        }
        vec![
            (format!("{name}.offsets"), Tensor::from_slice(&offsets)),
            (format!("{name}.bytes"), Tensor::from_slice(&bytes)),
        ]
    }

    pub fn from_state(state: &HashMap<String, Tensor>, name: &str) -> Result<Self> {
        let get = |s: &str| state.get(&format!("{name}.{s}")).ok_or_else(|| Error::state(format!("saved model has no vocabulary '{name}'")));
        let offsets = Vec::<i64>::try_from(get("offsets")?.to_kind(tch::Kind::Int64).flatten(0, -1))?;
        let bytes = Vec::<u8>::try_from(get("bytes")?.to_kind(tch::Kind::Uint8).flatten(0, -1))?;
        let values = crate::io::strings_at_offsets(&offsets, &bytes)
            .map_err(|e| Error::state(format!("vocabulary '{name}': {e}")))?;
        Ok(Vocab { map: IdMap::from_str_ids(values, name)? })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn col(v: &[&str]) -> CategoricalColumn {
        CategoricalColumn { name: "g".into(), values: v.iter().map(|s| s.to_string()).collect() }
    }

    #[test]
    fn vocab_codes_unknown_as_zero_and_round_trips() {
        let v = Vocab::fit(&col(&["M", "F", "M"]));
        assert_eq!(v.size(), 3);
        assert_eq!(v.encode(&col(&["F", "M", "X"])).unwrap(), vec![1, 2, 0]);
        let state: HashMap<String, Tensor> = v.state("user.gender").into_iter().collect();
        let back = Vocab::from_state(&state, "user.gender").unwrap();
        assert_eq!(back.encode(&col(&["F", "M", "X"])).unwrap(), vec![1, 2, 0]);
    }

    #[test]
    fn needs_name_what_is_missing_or_unused() {
        let needs = SideNeeds { images: Need::Required, ..Default::default() };
        let e = needs.check("DVBPR", &SideInfo::default()).unwrap_err().to_string();
        assert!(e.contains("DVBPR needs images="), "{e}");
        let side = SideInfo { categories: Some(Arc::new(vec![0])), ..Default::default() };
        let e = SideNeeds::default().check("BPR", &side).unwrap_err().to_string();
        assert!(e.contains("does not use categories="), "{e}");
    }

    /// The column policy: a model that reads features as numbers refuses a categorical column
    /// by name instead of dropping it; one that encodes them takes it.
    #[test]
    fn categorical_columns_are_refused_by_name_where_only_numbers_are_read() {
        let table = FeatureTable::new(3, vec![CategoricalColumn { name: "brand".into(), values: vec!["a".into(); 3] }], None).unwrap();
        let side = SideInfo { item_features: Some(Arc::new(table)), ..Default::default() };
        let numbers = SideNeeds { item_features: Need::Required, ..Default::default() };
        let e = numbers.check("VBPR", &side).unwrap_err().to_string();
        assert!(e.contains("VBPR reads item_features as numbers") && e.contains("\"brand\""), "{e}");
        assert!(SideNeeds { categorical_features: true, ..numbers }.check("HybridBPR", &side).is_ok());
    }

    #[test]
    fn matrix_checks_shape_and_finiteness() {
        assert!(DenseMatrix::new(2, 2, vec![0.0; 3], vec![]).is_err());
        let e = DenseMatrix::new(2, 2, vec![0.0, 1.0, f32::NAN, 0.0], vec![]).unwrap_err().to_string();
        assert!(e.contains("row 1, column 0"), "{e}");
        let m = DenseMatrix::new(2, 2, vec![3.0, 4.0, 0.0, 0.0], vec![]).unwrap();
        assert_eq!(m.unit_rows(), vec![0.6, 0.8, 0.0, 0.0]);
    }
}
