//! One side of HybridBPR (users or items): its feature table encoded once (categorical
//! columns through vocabularies, continuous ones as floats; with `continuous_bins`, each
//! continuous column's quantile bucket as one more categorical column), on the device, and
//! the `FeatureEmbedder` over it; saved as buffers (codes, values, column names,
//! vocabularies, bucket edges).

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
    /// `continuous_bins`: each continuous column's interior bucket edges (quantiles of the
    /// fit's rows), its bucket a categorical column of its own where it has edges
    /// ([`with_bins`]); empty: off.
    bins: Vec<Vec<f32>>,
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

/// Interior edges cutting each continuous column of `table` into `bins` quantile buckets of
/// its rows (NaN left out): edge k is the sorted values' (k n / bins)-th, repeated edges merged
/// and an edge at the minimum dropped, so every bucket holds a row and a column of few
/// distinct values gets fewer buckets. A column of two distinct values or fewer (a flag: any
/// function of it is affine in its value, which the tower has) gets no edges, and so no
/// bucket column, as one whose values all fall in one bucket. `bins` 0: none (off).
fn bin_edges(table: &FeatureTable, bins: usize) -> Vec<Vec<f32>> {
    let Some(m) = table.continuous.as_ref().filter(|_| bins > 0) else { return Vec::new() };
    (0..m.cols)
        .map(|j| {
            let mut v: Vec<f32> = m.data.iter().skip(j).step_by(m.cols).copied().filter(|x| !x.is_nan()).collect();
            v.sort_by(f32::total_cmp);
            let changes = v.windows(2).filter(|w| matches!(w, &[a, b] if a != b)).count();
            if changes < 2 {
                return Vec::new();
            }
            let mut edges: Vec<f32> = (1..bins).filter_map(|k| v.get(k * v.len() / bins).copied()).collect();
            edges.dedup();
            edges.retain(|&e| v.first().is_some_and(|&lo| e > lo));
            edges
        })
        .collect()
}

/// The bucket of `x` among `edges` as a categorical value: the number of edges `<= x` (values
/// below the first edge or above the last, unseen at fit, fall in the end buckets); NaN has
/// none (`""`, which no bucket vocabulary holds: the unknown code).
fn bucket(edges: &[f32], x: f32) -> String {
    if x.is_nan() {
        String::new()
    } else {
        edges.partition_point(|&e| e <= x).to_string()
    }
}

/// The name of a continuous column's bucket column.
fn bin_column(name: &str) -> String {
    format!("<{name} bin>")
}

/// `table` with one more categorical column per continuous column with edges (zipped with
/// `bins`; [`bin_edges`]): its bucket ([`bucket`]). The continuous block is kept as it is.
fn with_bins(table: &FeatureTable, bins: &[Vec<f32>]) -> FeatureTable {
    let mut t = table.clone();
    if let Some(m) = &table.continuous {
        for (j, (name, edges)) in continuous_names(table).into_iter().zip(bins).enumerate() {
            if edges.is_empty() {
                continue;
            }
            let values = m.data.iter().skip(j).step_by(m.cols.max(1)).map(|&x| bucket(edges, x)).collect();
            t.categorical.push(CategoricalColumn { name: bin_column(&name), values });
        }
    }
    t
}

/// The vocabulary of a bucket column: every bucket of `edges` (all hold a fit row), whatever
/// the rows; NaN and nothing else gets the unknown code.
fn bin_vocab(edges: &[f32]) -> Vocab {
    Vocab::fit(&CategoricalColumn { name: String::new(), values: (0..=edges.len()).map(|b| b.to_string()).collect() })
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
    /// With `continuous_bins`, each continuous column's buckets are cut at the quantiles of
    /// `table`'s rows and added as categorical columns (before the id column).
    pub(super) fn fit(path: &nn::Path, table: &FeatureTable, cfg: &HybridConfig, trained: Option<&[bool]>) -> Result<Self> {
        let n_categorical = table.categorical.len();
        let bins = bin_edges(table, cfg.continuous_bins);
        let binned;
        let table = if bins.is_empty() {
            table
        } else {
            binned = with_bins(table, &bins);
            &binned
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
        for (vocab, edges) in vocabs.iter_mut().skip(n_categorical).zip(bins.iter().filter(|e| !e.is_empty())) {
            *vocab = bin_vocab(edges);
        }
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
        Ok(Features { cat_names, cont_names, vocabs, bins, codes, cont, embedder })
    }

    pub(super) fn shallow_clone(&self) -> Self {
        Features {
            cat_names: self.cat_names.clone(),
            cont_names: self.cont_names.clone(),
            vocabs: self.vocabs.clone(),
            bins: self.bins.clone(),
            codes: self.codes.shallow_clone(),
            cont: self.cont.shallow_clone(),
            embedder: self.embedder.shallow_clone(),
        }
    }

    /// Tower outputs of new rows (with the id column, as unknown ids).
    pub(super) fn embed_table(&self, table: &FeatureTable, what: &str, train: bool) -> Result<Tensor> {
        let (codes, cont) = self.encode_table(table, what)?;
        self.embedder.check_codes(&codes)?;
        let (codes, cont) = table_tensors(&codes, &cont, table.n_rows, self.vocabs.len(), self.cont_names.len(), self.codes.device())?;
        self.embedder.embed(&codes, Some(&cont), train)
    }

    /// Codes and continuous values of new rows, encoded as the fit's rows were (their buckets
    /// at the saved edges, the id column as unknown ids).
    fn encode_table(&self, table: &FeatureTable, what: &str) -> Result<(Vec<i64>, Vec<f32>)> {
        let binned;
        let table = if self.bins.is_empty() {
            table
        } else {
            binned = with_bins(table, &self.bins);
            &binned
        };
        let with_ids;
        let table = if self.cat_names.last().is_some_and(|n| n == ID_COLUMN) {
            with_ids = with_id_column(table, false);
            &with_ids
        } else {
            table
        };
        encode(table, &self.cat_names, &self.cont_names, &self.vocabs, what)
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
        if !self.bins.is_empty() {
            out.extend(edges_state(&format!("{side}.bin_edges"), &self.bins));
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
        let bins = if state.contains_key(&format!("{side}.bin_edges.offsets")) { edges_from_state(state, &format!("{side}.bin_edges"))? } else { Vec::new() };
        // Every continuous column has its edges when continuous_bins is on, none when off.
        let expected = if cfg.continuous_bins > 0 { cont_names.len() } else { 0 };
        if bins.len() != expected {
            return Err(Error::state(format!(
                "saved {side} features have bucket edges for {} columns; continuous_bins={} with {} continuous columns needs {expected}",
                bins.len(),
                cfg.continuous_bins,
                cont_names.len()
            )));
        }
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
        Ok(Some(Features { cat_names, cont_names, vocabs, bins, codes: codes.f_to_device(device)?, cont: cont.f_to_device(device)?, embedder }))
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

/// Lists of floats as tensors (the values end to end, and offsets), as [`strings_state`].
fn edges_state(name: &str, lists: &[Vec<f32>]) -> Vec<(String, Tensor)> {
    let mut offsets = vec![0i64];
    let mut values = Vec::new();
    for l in lists {
        values.extend_from_slice(l);
        offsets.push(values.len() as i64);
    }
    vec![(format!("{name}.offsets"), Tensor::from_slice(&offsets)), (format!("{name}.values"), Tensor::from_slice(&values))]
}

/// The lists [`edges_state`] saved, each checked to be finite and strictly increasing (bucket
/// edges).
fn edges_from_state(state: &HashMap<String, Tensor>, name: &str) -> Result<Vec<Vec<f32>>> {
    let get = |s: &str| state.get(&format!("{name}.{s}")).ok_or_else(|| Error::state(format!("saved model has no '{name}.{s}'")));
    let offsets = Vec::<i64>::try_from(get("offsets")?.f_to_kind(Kind::Int64)?.f_flatten(0, -1)?)?;
    let values = Vec::<f32>::try_from(get("values")?.f_to_kind(Kind::Float)?.f_flatten(0, -1)?)?;
    let bad = || Error::state(format!("'{name}': offsets {offsets:?} do not cut {} values into increasing edges", values.len()));
    if offsets.first() != Some(&0) || offsets.last().and_then(|&l| usize::try_from(l).ok()) != Some(values.len()) {
        return Err(bad());
    }
    offsets
        .windows(2)
        .map(|w| {
            let edges = match w {
                &[a, b] => usize::try_from(a).ok().zip(usize::try_from(b).ok()).and_then(|(a, b)| values.get(a..b)),
                _ => None,
            }
            .ok_or_else(bad)?;
            if edges.iter().any(|e| !e.is_finite()) || edges.windows(2).any(|p| matches!(p, &[x, y] if x >= y)) {
                return Err(bad());
            }
            Ok(edges.to_vec())
        })
        .collect()
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
    /// items when given, and `bins` (`continuous_bins`) buckets of each continuous column.
    pub(super) fn of_table(table: &FeatureTable, trained: Option<usize>, bins: usize) -> Self {
        let distinct = |c: &CategoricalColumn| c.values.iter().map(String::as_str).collect::<std::collections::HashSet<_>>().len().saturating_add(1);
        // A bucket column codes its buckets (one more than its edges) and the unknown.
        let edges = bin_edges(table, bins);
        let edges: Vec<Vec<f32>> = edges.into_iter().filter(|e| !e.is_empty()).collect();
        let bucket_codes = edges.iter().map(|e| e.len().saturating_add(2));
        let codes = table.categorical.iter().map(distinct).chain(bucket_codes).chain(trained.map(|n| n.saturating_add(1))).fold(0usize, usize::saturating_add);
        let continuous = table.continuous.as_ref().map_or(0, |m| m.cols);
        let categorical = table.categorical.len().saturating_add(edges.len()).saturating_add(usize::from(trained.is_some()));
        Columns { categorical, codes, continuous }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::DenseMatrix;

    /// Ten rows: gender, and age 1..=10 with the last row's NaN; a 0/1 flag beside it.
    fn table() -> FeatureTable {
        let mut data = Vec::new();
        for r in 0..10 {
            data.extend([if r == 9 { f32::NAN } else { (r + 1) as f32 }, (r % 2) as f32]);
        }
        let gender = (0..10).map(|r| if r % 2 == 0 { "F" } else { "M" }.to_string()).collect();
        FeatureTable {
            n_rows: 10,
            categorical: vec![CategoricalColumn { name: "gender".into(), values: gender }],
            continuous: Some(DenseMatrix { rows: 10, cols: 2, data, names: vec!["age".into(), "flag".into()] }),
        }
    }

    fn cfg(bins: usize) -> HybridConfig {
        HybridConfig { continuous_bins: bins, embed_dim: 3, hidden: vec![4], factors: 2, ..Default::default() }
    }

    /// New rows: age 0 (below the fit's values), 4, 5.5, 100 (above them) and NaN.
    fn new_rows() -> FeatureTable {
        let ages = [0.0, 4.0, 5.5, 100.0, f32::NAN];
        FeatureTable {
            n_rows: 5,
            categorical: vec![CategoricalColumn { name: "gender".into(), values: vec!["F".into(); 5] }],
            continuous: Some(DenseMatrix { rows: 5, cols: 2, data: ages.iter().flat_map(|&a| [a, 1.0]).collect(), names: vec!["age".into(), "flag".into()] }),
        }
    }

    #[test]
    fn bin_edges_are_quantiles_of_the_rows_without_nan() {
        // 9 values (the NaN left out), 3 buckets: edges at the 3rd and 6th sorted values; the
        // 0/1 flag has none (no bucket column).
        assert_eq!(bin_edges(&table(), 3), vec![vec![4.0, 7.0], vec![]]);
        assert_eq!(bin_edges(&table(), 0), Vec::<Vec<f32>>::new());
        // More buckets than values: one per distinct value (the minimum starts the first).
        assert_eq!(bin_edges(&table(), 100)[0], (2..=9).map(|v| v as f32).collect::<Vec<_>>());
        // Ties: repeated edges merged, so fewer buckets; all in one bucket: none.
        let mut t = table();
        t.continuous.as_mut().unwrap().data = [1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 2.0, 2.0, 3.0, 3.0].iter().flat_map(|&a| [a, 0.0]).collect();
        assert_eq!(bin_edges(&t, 4)[0], vec![2.0]);
        t.continuous.as_mut().unwrap().data = [1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 2.0, 3.0].iter().flat_map(|&a| [a, 0.0]).collect();
        assert_eq!(bin_edges(&t, 2)[0], Vec::<f32>::new());
        // A table without continuous columns has no buckets.
        assert!(bin_edges(&FeatureTable { n_rows: 3, ..Default::default() }, 4).is_empty());
    }

    #[test]
    fn buckets_are_categorical_columns_with_nan_and_unseen_values_handled() {
        let edges = bin_edges(&table(), 3);
        let t = with_bins(&table(), &edges);
        let names: Vec<&str> = t.categorical.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["gender", "<age bin>"], "the flag has no bucket column");
        assert_eq!(t.categorical[1].values, ["0", "0", "0", "1", "1", "1", "2", "2", "2", ""]);
        assert_eq!(t.continuous.as_ref().unwrap().cols, 2, "the values are kept beside their buckets");
        // Every bucket has a code, NaN the unknown one; values beyond the fit's fall in the end
        // buckets.
        let vocab = bin_vocab(&edges[0]);
        assert_eq!(vocab.size(), 4);
        let new = with_bins(&new_rows(), &edges);
        assert_eq!(new.categorical[1].values, ["0", "1", "1", "2", ""]);
        let (fit, codes) = (vocab.encode(&t.categorical[1]).unwrap(), vocab.encode(&new.categorical[1]).unwrap());
        assert_eq!(codes, [fit[0], fit[3], fit[3], fit[8], 0], "below: the first bucket, above: the last, NaN: unknown");
        assert!(fit[..9].iter().all(|&c| c > 0) && fit[9] == 0);
    }

    #[test]
    fn bins_are_saved_and_restored() {
        let vs = nn::VarStore::new(Device::Cpu);
        let f = Features::fit(&(vs.root() / "user"), &table(), &cfg(3), None).unwrap();
        assert_eq!(f.bins, vec![vec![4.0, 7.0], vec![]]);
        assert_eq!(f.cat_names, ["gender", "<age bin>"]);
        // The fit's rows: the age bucket codes, the NaN row's unknown.
        let codes = Vec::<i64>::try_from(f.codes.f_select(1, 1).unwrap()).unwrap();
        assert_eq!(codes[9], 0);
        assert!(codes[..9].iter().all(|&c| c > 0));
        let state: HashMap<String, Tensor> = f.state("user").into_iter().collect();
        assert!(state.contains_key("user.bin_edges.offsets") && state.contains_key("user.bin_edges.values"));
        let vs2 = nn::VarStore::new(Device::Cpu);
        let g = Features::from_state(&(vs2.root() / "user"), "user", &state, &cfg(3)).unwrap().unwrap();
        assert_eq!(g.bins, f.bins);
        // New rows encode the same way through the restored edges and vocabularies.
        assert_eq!(g.encode_table(&new_rows(), "t").unwrap().0, f.encode_table(&new_rows(), "t").unwrap().0);
        // Off: no bucket columns, nothing saved; a state and a config that disagree are refused.
        let off = Features::fit(&(vs.root() / "off"), &table(), &cfg(0), None).unwrap();
        assert_eq!(off.cat_names, ["gender"]);
        let off_state: HashMap<String, Tensor> = off.state("user").into_iter().collect();
        assert!(!off_state.keys().any(|k| k.contains("bin_edges")));
        let err = Features::from_state(&(vs2.root() / "a"), "user", &off_state, &cfg(3)).err().unwrap().to_string();
        assert!(err.contains("continuous_bins=3"), "{err}");
        assert!(Features::from_state(&(vs2.root() / "b"), "user", &state, &cfg(0)).is_err());
        // Saved edges that do not increase are refused.
        let mut bad: HashMap<String, Tensor> = state.iter().map(|(k, v)| (k.clone(), v.shallow_clone())).collect();
        bad.insert("user.bin_edges.values".into(), Tensor::from_slice(&[7.0f32, 4.0]));
        assert!(Features::from_state(&(vs2.root() / "c"), "user", &bad, &cfg(3)).is_err());
        bad.insert("user.bin_edges.offsets".into(), Tensor::from_slice(&[0i64, 3, 2]));
        assert!(Features::from_state(&(vs2.root() / "d"), "user", &bad, &cfg(3)).is_err());
    }
}
