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
    /// `user_crosses`: each continuous column's bucket edges (quantiles of the fit's rows);
    /// every pair of the table's columns is then crossed into one more categorical column
    /// ([`with_crosses`]). None: no crosses.
    cross_edges: Option<Vec<Vec<f32>>>,
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

/// Interior quantile edges cutting each continuous column of `table` into `buckets` buckets
/// of about equal counts (NaN left out; repeated edges merged, so a column with few distinct
/// values gets fewer buckets).
fn quantile_edges(table: &FeatureTable, buckets: usize) -> Vec<Vec<f32>> {
    let Some(m) = &table.continuous else { return Vec::new() };
    (0..m.cols)
        .map(|j| {
            let mut v: Vec<f32> = (0..m.rows).map(|r| m.data[r * m.cols + j]).filter(|x| !x.is_nan()).collect();
            v.sort_by(f32::total_cmp);
            let mut edges: Vec<f32> = (1..buckets).filter_map(|k| v.get(k * v.len() / buckets).copied()).collect();
            edges.dedup();
            // An edge at the minimum would leave its bucket below empty.
            edges.retain(|&e| v.first().is_some_and(|&lo| e > lo));
            edges
        })
        .collect()
}

/// `table` with one more categorical column per pair of its columns: the pair's values joined
/// (continuous columns first cut into buckets at `edges`, NaN its own bucket), so the tower
/// embeds each combination (e.g. gender x age group) on its own. Combinations not in the
/// fit's rows get the unknown code, as any unseen value.
fn with_crosses(table: &FeatureTable, edges: &[Vec<f32>]) -> FeatureTable {
    let n = table.n_rows;
    let mut cols: Vec<(String, Vec<String>)> = table.categorical.iter().map(|c| (c.name.clone(), c.values.clone())).collect();
    if let Some(m) = &table.continuous {
        for (j, name) in continuous_names(table).into_iter().enumerate() {
            let bucket = |x: f32| if x.is_nan() { "nan".to_string() } else { edges[j].iter().filter(|&&e| x >= e).count().to_string() };
            cols.push((name, (0..n).map(|r| bucket(m.data[r * m.cols + j])).collect()));
        }
    }
    let mut t = table.clone();
    for a in 0..cols.len() {
        for b in a + 1..cols.len() {
            let values = (0..n).map(|r| format!("{}\u{1f}{}", cols[a].1[r], cols[b].1[r])).collect();
            t.categorical.push(CategoricalColumn { name: format!("{} x {}", cols[a].0, cols[b].0), values });
        }
    }
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
    let mut codes = vec![0i64; n * c];
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
    /// `crosses` > 0 (`user_crosses`): every pair of columns crossed, continuous columns cut
    /// into `crosses` quantile buckets of `table`'s rows.
    pub(super) fn fit(path: &nn::Path, table: &FeatureTable, cfg: &HybridConfig, trained: Option<&[bool]>, crosses: usize) -> Result<Self> {
        let (crossed, cross_edges);
        let table = if crosses > 0 {
            let edges = quantile_edges(table, crosses);
            crossed = with_crosses(table, &edges);
            cross_edges = Some(edges);
            &crossed
        } else {
            cross_edges = None;
            table
        };
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
        let spec = embedder_spec(&vocabs, cont_names.len(), cfg);
        let embedder = FeatureEmbedder::new(path, spec, Some(&stats))?;
        let (codes, cont) = encode(table, &cat_names, &cont_names, &vocabs, "features")?;
        embedder.check_codes(&codes)?;
        let (codes, cont) = table_tensors(&codes, &cont, table.n_rows, vocabs.len(), cont_names.len(), path.device())?;
        Ok(Features { cat_names, cont_names, vocabs, cross_edges, codes, cont, embedder })
    }

    pub(super) fn shallow_clone(&self) -> Self {
        Features {
            cat_names: self.cat_names.clone(),
            cont_names: self.cont_names.clone(),
            vocabs: self.vocabs.clone(),
            cross_edges: self.cross_edges.clone(),
            codes: self.codes.shallow_clone(),
            cont: self.cont.shallow_clone(),
            embedder: self.embedder.shallow_clone(),
        }
    }

    /// Tower outputs of new rows (with the id column, as unknown ids).
    pub(super) fn embed_table(&self, table: &FeatureTable, what: &str, train: bool) -> Result<Tensor> {
        let crossed;
        let table = match &self.cross_edges {
            Some(edges) => {
                if continuous_names(table).len() != edges.len() {
                    return Err(Error::invalid(format!("{what}: {} continuous columns, fit had {}", continuous_names(table).len(), edges.len())));
                }
                crossed = with_crosses(table, edges);
                &crossed
            }
            None => table,
        };
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
        if let Some(edges) = &self.cross_edges {
            let mut offsets = vec![0i64];
            for e in edges {
                offsets.push(offsets[offsets.len() - 1] + e.len() as i64);
            }
            out.push((format!("{side}.cross_edges.offsets"), Tensor::from_slice(&offsets)));
            out.push((format!("{side}.cross_edges.values"), Tensor::from_slice(&edges.concat())));
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
        let cross_edges = match (state.get(&format!("{side}.cross_edges.offsets")), state.get(&format!("{side}.cross_edges.values"))) {
            (Some(o), Some(v)) => {
                let offsets = Vec::<i64>::try_from(o.f_to_kind(Kind::Int64)?.f_flatten(0, -1)?)?;
                let values = Vec::<f32>::try_from(v.f_to_kind(Kind::Float)?.f_flatten(0, -1)?)?;
                let bad = offsets.first() != Some(&0) || offsets.windows(2).any(|w| w[0] > w[1]) || offsets.last().map(|&l| l as usize) != Some(values.len()) || offsets.len() != cont_names.len() + 1;
                if bad {
                    return Err(Error::state(format!("saved {side} cross edges do not match the {} continuous columns", cont_names.len())));
                }
                Some(offsets.windows(2).map(|w| values[w[0] as usize..w[1] as usize].to_vec()).collect())
            }
            _ => None,
        };
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
        Ok(Some(Features { cat_names, cont_names, vocabs, cross_edges, codes: codes.f_to_device(device)?, cont: cont.f_to_device(device)?, embedder }))
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::DenseMatrix;

    fn table() -> FeatureTable {
        let age: Vec<f32> = vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0];
        let mut data = age.clone();
        data[9] = f32::NAN;
        let gender = (0..10).map(|r| if r % 2 == 0 { "F" } else { "M" }.to_string()).collect();
        FeatureTable {
            n_rows: 10,
            categorical: vec![CategoricalColumn { name: "gender".into(), values: gender }],
            continuous: Some(DenseMatrix { rows: 10, cols: 1, data, names: vec!["age".into()] }),
        }
    }

    #[test]
    fn quantile_edges_cut_equal_counts_and_skip_nan() {
        // 9 values (the NaN left out), 3 buckets: edges at the 3rd and 6th sorted values.
        assert_eq!(quantile_edges(&table(), 3), vec![vec![4.0, 7.0]]);
        // One bucket: no edges; few distinct values: merged edges.
        assert_eq!(quantile_edges(&table(), 1), vec![Vec::<f32>::new()]);
        let mut t = table();
        t.continuous.as_mut().unwrap().data = vec![1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 2.0, 2.0, 2.0];
        assert_eq!(quantile_edges(&t, 4), vec![vec![2.0]]);
    }

    #[test]
    fn crosses_join_every_pair_with_continuous_columns_bucketed() {
        let t = with_crosses(&table(), &[vec![4.0, 7.0]]);
        assert_eq!(t.categorical.len(), 2);
        let cross = &t.categorical[1];
        assert_eq!(cross.name, "gender x age");
        let want: Vec<String> = ["F\u{1f}0", "M\u{1f}0", "F\u{1f}0", "M\u{1f}1", "F\u{1f}1", "M\u{1f}1", "F\u{1f}2", "M\u{1f}2", "F\u{1f}2", "M\u{1f}nan"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(cross.values, want);
        // The continuous block itself is kept as it was.
        assert_eq!(t.continuous.as_ref().unwrap().cols, 1);
        // Three columns: three crosses.
        let mut three = table();
        three.categorical.push(CategoricalColumn { name: "job".into(), values: vec!["x".into(); 10] });
        let names: Vec<String> = with_crosses(&three, &[vec![4.0]]).categorical.iter().map(|c| c.name.clone()).collect();
        assert_eq!(names, ["gender", "job", "gender x job", "gender x age", "job x age"]);
    }
}
