//! One side of HybridBPR (users or items): its feature table encoded once (categorical
//! columns through vocabularies, continuous ones as floats), on the device, and the
//! `FeatureEmbedder` over it; saved as buffers (codes, values, column names, vocabularies).

use std::collections::HashMap;

use tch::{nn, Device, Kind, Tensor};

use super::HybridConfig;
use crate::data::{CategoricalColumn, FeatureTable, Vocab};
use crate::error::{Error, Result};
use crate::nets::embedder::{ContinuousStats, EmbedderSpec, FeatureEmbedder};
/// The feature rows of one side and how new rows are encoded.
pub(super) struct Features {
    cat_names: Vec<String>,
    cont_names: Vec<String>,
    vocabs: Vec<Vocab>,
    /// (n, n_categorical) int64 codes and (n, n_continuous) raw values, on the device.
    pub(super) codes: Tensor,
    pub(super) cont: Tensor,
    pub(super) embedder: FeatureEmbedder,
}

/// The item tower's own column of item ids (`item_id_column`): the last categorical column,
/// coded by item index for the items with a training interaction; the other items (cold
/// items, new items embedded later) get the unknown code 0.
pub(super) const ID_COLUMN: &str = "<item id>";

/// `table` with the id column appended (item indices as text; `""` for rows without one,
/// which no vocabulary holds).
fn with_id_column(table: &FeatureTable, ids: bool) -> FeatureTable {
    let values = (0..table.n_rows).map(|i| if ids { i.to_string() } else { String::new() }).collect();
    let mut t = table.clone();
    t.categorical.push(CategoricalColumn { name: ID_COLUMN.into(), values });
    t
}

/// Names of a table's continuous columns (x0, x1, ... for an unnamed numpy block).
fn continuous_names(table: &FeatureTable) -> Vec<String> {
    match &table.continuous {
        Some(m) if m.names.len() == m.cols => m.names.clone(),
        Some(m) => (0..m.cols).map(|j| format!("x{j}")).collect(),
        None => Vec::new(),
    }
}

/// Codes and continuous values of a table, checked against the fitted columns.
fn encode(table: &FeatureTable, cat_names: &[String], cont_names: &[String], vocabs: &[Vocab], what: &str) -> Result<(Vec<i64>, Vec<f32>)> {
    let got_cat: Vec<&str> = table.categorical.iter().map(|c| c.name.as_str()).collect();
    let got_cont = continuous_names(table);
    if got_cat != cat_names || got_cont != cont_names {
        return Err(Error::invalid(format!(
            "{what}: columns {got_cat:?} (categorical) and {got_cont:?} (continuous) differ from fit's {cat_names:?} and {cont_names:?}"
        )));
    }
    let n = table.n_rows;
    let c = vocabs.len();
    let mut codes = crate::limits::try_filled(what, crate::limits::mul(what, n, c)?, 0i64)?;
    for (k, (col, vocab)) in table.categorical.iter().zip(vocabs).enumerate() {
        // Row r's codes are codes[r * c..][..c]: this column's is the k-th of each.
        for (at, code) in codes.iter_mut().skip(k).step_by(c).zip(vocab.encode(col)?) {
            *at = code;
        }
    }
    let cont = table.continuous.as_ref().map(|m| m.data.clone()).unwrap_or_default();
    Ok((codes, cont))
}

fn table_tensors(codes: &[i64], cont: &[f32], n: usize, c: usize, k: usize, device: Device) -> Result<(Tensor, Tensor)> {
    let codes = Tensor::from_slice(codes).f_reshape([n as i64, c as i64])?.f_to_device(device)?;
    let cont = Tensor::from_slice(cont).f_reshape([n as i64, k as i64])?.f_to_device(device)?;
    Ok((codes, cont))
}

impl Features {
    /// Fit vocabularies and scaling on `table` and build the tower under `path`. `trained`
    /// (the item side with `item_id_column`): which rows had a training interaction; the id
    /// column is added, its vocabulary those rows' ids.
    pub(super) fn fit(path: &nn::Path, table: &FeatureTable, cfg: &HybridConfig, trained: Option<&[bool]>) -> Result<Self> {
        let with_ids;
        let table = match trained {
            Some(t) => {
                if t.len() != table.n_rows {
                    return Err(Error::invalid(format!("{} feature rows for {} items", table.n_rows, t.len())));
                }
                with_ids = with_id_column(table, true);
                &with_ids
            }
            None => table,
        };
        let mut vocabs: Vec<Vocab> = table.categorical.iter().map(Vocab::fit).collect();
        if let Some(t) = trained {
            let values = t.iter().enumerate().filter(|&(_, &trained)| trained).map(|(i, _)| i.to_string()).collect();
            if let Some(id) = vocabs.last_mut() {
                *id = Vocab::fit(&CategoricalColumn { name: ID_COLUMN.into(), values });
            }
        }
        let cat_names: Vec<String> = table.categorical.iter().map(|c| c.name.clone()).collect();
        let cont_names = continuous_names(table);
        let stats = match &table.continuous {
            Some(m) => ContinuousStats::fit(&m.data, m.cols, None)?,
            None => ContinuousStats { mean: vec![], std: vec![] },
        };
        Self::build(path, cat_names, cont_names, vocabs, Some(&stats), table, cfg)
    }

    fn build(
        path: &nn::Path,
        cat_names: Vec<String>,
        cont_names: Vec<String>,
        vocabs: Vec<Vocab>,
        stats: Option<&ContinuousStats>,
        table: &FeatureTable,
        cfg: &HybridConfig,
    ) -> Result<Self> {
        let spec = embedder_spec(&vocabs, cont_names.len(), cfg);
        let embedder = FeatureEmbedder::new(path, spec, stats)?;
        let (codes, cont) = encode(table, &cat_names, &cont_names, &vocabs, "features")?;
        embedder.check_codes(&codes)?;
        let (codes, cont) = table_tensors(&codes, &cont, table.n_rows, vocabs.len(), cont_names.len(), path.device())?;
        Ok(Features { cat_names, cont_names, vocabs, codes, cont, embedder })
    }

    pub(super) fn shallow_clone(&self) -> Self {
        Features {
            cat_names: self.cat_names.clone(),
            cont_names: self.cont_names.clone(),
            vocabs: self.vocabs.clone(),
            codes: self.codes.shallow_clone(),
            cont: self.cont.shallow_clone(),
            embedder: self.embedder.shallow_clone(),
        }
    }

    /// Tower outputs of new rows (with the id column, as unknown ids).
    pub(super) fn embed_table(&self, table: &FeatureTable, what: &str, train: bool) -> Result<Tensor> {
        let with_ids;
        let table = if self.cat_names.last().is_some_and(|n| n == ID_COLUMN) {
            with_ids = with_id_column(table, false);
            &with_ids
        } else {
            table
        };
        let (codes, cont) = encode(table, &self.cat_names, &self.cont_names, &self.vocabs, what)?;
        self.embedder.check_codes(&codes)?;
        let (codes, cont) = table_tensors(&codes, &cont, table.n_rows, self.vocabs.len(), self.cont_names.len(), self.codes.device())?;
        self.embedder.embed(&codes, Some(&cont), train)
    }

    pub(super) fn state(&self, side: &str) -> Vec<(String, Tensor)> {
        let mut out = vec![
            (format!("{side}.codes"), self.codes.shallow_clone()),
            (format!("{side}.cont"), self.cont.shallow_clone()),
        ];
        out.extend(strings_state(&format!("{side}.categorical_columns"), &self.cat_names));
        out.extend(strings_state(&format!("{side}.continuous_columns"), &self.cont_names));
        for (k, v) in self.vocabs.iter().enumerate() {
            out.extend(v.state(&format!("{side}.vocab{k}")));
        }
        out
    }

    pub(super) fn from_state(path: &nn::Path, side: &str, state: &HashMap<String, Tensor>, cfg: &HybridConfig) -> Result<Option<Self>> {
        if !state.contains_key(&format!("{side}.codes")) {
            return Ok(None);
        }
        let cat_names = strings_from_state(state, &format!("{side}.categorical_columns"))?;
        let cont_names = strings_from_state(state, &format!("{side}.continuous_columns"))?;
        let vocabs = (0..cat_names.len()).map(|k| Vocab::from_state(state, &format!("{side}.vocab{k}"))).collect::<Result<Vec<_>>>()?;
        let spec = embedder_spec(&vocabs, cont_names.len(), cfg);
        let embedder = FeatureEmbedder::new(path, spec, None)?;
        let get = |n: &str| state.get(&format!("{side}.{n}")).ok_or_else(|| Error::state(format!("saved model has no tensor '{side}.{n}'")));
        let codes = get("codes")?.f_to_kind(Kind::Int64)?;
        let cont = get("cont")?.f_to_kind(Kind::Float)?;
        let shapes_agree = match (codes.size().as_slice(), cont.size().as_slice()) {
            (&[n, c], &[m, k]) => c == vocabs.len() as i64 && k == cont_names.len() as i64 && n == m,
            _ => false,
        };
        if !shapes_agree {
            return Err(Error::state(format!("saved {side} feature rows have shapes {:?} and {:?}", codes.size(), cont.size())));
        }
        embedder.check_codes(&Vec::<i64>::try_from(codes.f_flatten(0, -1)?)?)?;
        let device = path.device();
        Ok(Some(Features { cat_names, cont_names, vocabs, codes: codes.f_to_device(device)?, cont: cont.f_to_device(device)?, embedder }))
    }
}

/// A list of strings as tensors (UTF-8 bytes and offsets), as [`Vocab::state`] stores values.
fn strings_state(name: &str, values: &[String]) -> Vec<(String, Tensor)> {
    let mut offsets = vec![0i64];
    let mut bytes = Vec::new();
    for s in values {
        bytes.extend_from_slice(s.as_bytes());
        offsets.push(bytes.len() as i64);
    }
    vec![(format!("{name}.offsets"), Tensor::from_slice(&offsets)), (format!("{name}.bytes"), Tensor::from_slice(&bytes))]
}

fn strings_from_state(state: &HashMap<String, Tensor>, name: &str) -> Result<Vec<String>> {
    let get = |s: &str| state.get(&format!("{name}.{s}")).ok_or_else(|| Error::state(format!("saved model has no '{name}'")));
    let offsets = Vec::<i64>::try_from(get("offsets")?.f_to_kind(Kind::Int64)?.f_flatten(0, -1)?)?;
    let bytes = Vec::<u8>::try_from(get("bytes")?.f_to_kind(Kind::Uint8)?.f_flatten(0, -1)?)?;
    crate::io::strings_at_offsets(&offsets, &bytes).map_err(|e| Error::state(format!("'{name}': {e}")))
}

/// The embedder of a side with these vocabularies and continuous columns, sized by `cfg`.
fn embedder_spec(vocabs: &[Vocab], n_continuous: usize, cfg: &HybridConfig) -> EmbedderSpec {
    EmbedderSpec {
        cardinalities: vocabs.iter().map(|v| v.size() as i64).collect(),
        n_continuous: n_continuous as i64,
        embed_dim: cfg.embed_dim as i64,
        hidden: cfg.hidden.iter().map(|&h| h as i64).collect(),
        out_dim: cfg.factors as i64,
        dropout: cfg.dropout,
    }
}

/// The columns of one side's tower, for counting its parameters without building it
/// (`Spec::param_count`).
pub(super) struct Columns {
    /// Categorical columns (the item-id column included).
    pub(super) categorical: usize,
    /// Their codes, summed over the columns (each column's distinct values and the unknown).
    pub(super) codes: usize,
    pub(super) continuous: usize,
}

impl Columns {
    /// The tower [`Features::fit`] builds on `table`, with the item-id column coding `trained`
    /// items when given.
    pub(super) fn of_table(table: &FeatureTable, trained: Option<usize>) -> Self {
        let distinct = |c: &CategoricalColumn| c.values.iter().map(String::as_str).collect::<std::collections::HashSet<_>>().len().saturating_add(1);
        let codes = table.categorical.iter().map(distinct).chain(trained.map(|n| n.saturating_add(1))).fold(0usize, usize::saturating_add);
        let continuous = table.continuous.as_ref().map_or(0, |m| m.cols);
        Columns { categorical: table.categorical.len().saturating_add(usize::from(trained.is_some())), codes, continuous }
    }

    /// The tower [`Features::from_state`] restores on `side` (None: the state has none), from
    /// the lengths of the saved column names and vocabularies.
    pub(super) fn saved(side: &str, from: crate::models::core::SizesFrom<'_>) -> Option<Self> {
        from.saved_shape(&format!("{side}.codes"))?;
        let strings = |name: &str| from.saved_numel(&format!("{side}.{name}.offsets")).saturating_sub(1);
        let categorical = strings("categorical_columns");
        // A vocabulary's offsets: one more than its values, as its codes (the unknown 0).
        let codes = (0..categorical).map(|k| from.saved_numel(&format!("{side}.vocab{k}.offsets"))).fold(0usize, usize::saturating_add);
        Some(Columns { categorical, codes, continuous: strings("continuous_columns") })
    }
}
