//! The DVBPR `*ImgPartitioned.npy` data sets (Kang et al. 2017).
//!
//! Each file is a `.npy` object array saved by Python 2's numpy: a pickle (protocol 2) of
//! `[user_train, user_validation, user_test, items, user_num, item_num]`, where `user_*` map a
//! user index to a list of dicts holding a `productid` (and other review fields), and `items`
//! maps an item index to a dict holding `imgs` (the JPEG bytes) and optionally `c` (a one-hot
//! category) and `asin`. Files are 2-6 GB, nearly all JPEG bytes.
//!
//! [`read`] runs the pickle over a memory map of the file: the JPEGs stay where they are (as
//! spans of the map, handed to the image bank), so reading costs the interactions only and no
//! second copy of the images is ever made. [`write`] produces the same layout, byte for byte
//! the opcodes Python 2's cPickle writes, for tests and for converting other data.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use memmap2::{Mmap, UncheckedAdvice};

use super::npy::{self, ArrayData};
use super::pickle::{write as pk, Pickle, Span, Value};
use crate::data::{Csr, Duplicates, IdMap, IdMaps, Interactions};
use crate::error::{Error, Result};

const PAGE: usize = 4096;

/// Names of the three splits, as the seed code calls them.
pub const SPLITS: [&str; 3] = ["user_train", "user_validation", "user_test"];

/// (user, item) pairs of one split, in file order (repeats kept).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Pairs {
    pub users: Vec<u32>,
    pub items: Vec<u32>,
}

/// What a DVBPR file holds, apart from the image bytes themselves.
#[derive(Debug, Clone, PartialEq)]
pub struct Layout {
    pub n_users: usize,
    pub n_items: usize,
    /// user_train, user_validation, user_test.
    pub splits: [Pairs; 3],
    /// Where each item's image bytes are in the file (None: the item has no `imgs`).
    pub images: Vec<Option<Span>>,
    /// Category index per item (-1: none), when the items carry `c`.
    pub categories: Option<Vec<i64>>,
    /// Each item's ASIN, when every item carries one.
    pub item_asins: Option<Vec<String>>,
}

/// A DVBPR file, read.
#[derive(Debug)]
pub struct DvbprData {
    pub path: PathBuf,
    pub layout: Layout,
    /// The file's memory map (the image spans point into it).
    pub map: Arc<Mmap>,
}

impl Layout {
    /// The three splits as Interactions over one shared id space (ids = the file's indices).
    /// Repeated (user, item) pairs are merged; the second value is how many were merged per split.
    pub fn interactions(&self) -> Result<(Vec<Interactions>, [usize; 3])> {
        let ids = IdMaps::new(IdMap::Range(self.n_users), IdMap::Range(self.n_items));
        let mut merged = [0usize; 3];
        let mut out = Vec::with_capacity(3);
        for (pairs, merged) in self.splits.iter().zip(&mut merged) {
            let csr = Csr::from_coo(self.n_users, &pairs.users, &pairs.items, None, Duplicates::Sum)?;
            // Merging only removes entries.
            *merged = pairs.users.len().saturating_sub(csr.nnz());
            out.push(Interactions::from_csr(csr, ids.clone())?);
        }
        Ok((out, merged))
    }
}

/// Read a DVBPR file. Errors name the file, the byte offset and what was expected there.
pub fn read(path: &Path) -> Result<DvbprData> {
    let map = Arc::new(super::map_file(path)?);
    // Drop the pages behind the parse position as it goes: the JPEGs are only located here,
    // and the resident set stays small however large the file.
    let released = std::cell::Cell::new(0usize);
    let release = |upto: usize| {
        let (lo, hi) = (released.get(), (upto / PAGE).saturating_mul(PAGE));
        if hi > lo {
            // SAFETY: read-only file-backed map: dropped pages read back from the file on access.
            let _ = unsafe { map.unchecked_advise_range(UncheckedAdvice::DontNeed, lo, hi.saturating_sub(lo)) };
            released.set(hi);
        }
    };
    let layout = parse(&map, path, &release)?;
    release(map.len());
    Ok(DvbprData { path: path.to_path_buf(), layout, map })
}

/// The layout of a whole DVBPR file held in `bytes` (`path` names it in errors; `release` as
/// for [`Pickle::parse_releasing`]).
pub fn parse(bytes: &[u8], path: &Path, release: &dyn Fn(usize)) -> Result<Layout> {
    let fail = |msg: String| Error::file(path, msg);
    let header = npy::read_header(bytes).map_err(fail)?;
    if !header.is_object() {
        return Err(fail(format!(
            "holds a '{}' array of shape {:?}, not the object array of a DVBPR data set",
            header.descr, header.shape
        )));
    }
    let p = Pickle::parse_releasing(bytes, header.data_offset, release).map_err(|e| fail(e.to_string()))?;
    let at = |v: Value, msg: String| match p.origin(v) {
        Some(o) => fail(format!("byte offset {o}: {msg}")),
        None => fail(msg),
    };
    let elems: &[Value] = match npy::array_of(&p, p.root) {
        Some(Ok(a)) => match a.data {
            ArrayData::Objects(x) => x,
            ArrayData::Raw(_) => return Err(at(p.root, "the pickled array is not an object array".into())),
        },
        Some(Err(m)) => return Err(at(p.root, m)),
        None => p.items(p.root).ok_or_else(|| {
            at(p.root, format!("the data is a {}, not the list of a DVBPR data set", p.type_name(p.root)))
        })?,
    };
    let &[user_train, user_validation, user_test, items, user_num, item_num] = elems else {
        return Err(at(
            p.root,
            format!(
                "expected 6 elements [user_train, user_validation, user_test, items, user_num, item_num], found {}",
                elems.len()
            ),
        ));
    };
    let count = |v: Value, name: &str| -> Result<usize> {
        match npy::int_of(&p, v) {
            Some(n) if (0..=u32::MAX as i64).contains(&n) => Ok(n as usize),
            Some(n) => Err(at(p.root, format!("{name} is {n}, not a count"))),
            None => Err(at(p.root, format!("{name} (element {}) is a {}, not an int", if name == "user_num" { 4 } else { 5 }, p.type_name(v)))),
        }
    };
    let n_users = count(user_num, "user_num")?;
    let n_items = count(item_num, "item_num")?;
    // Size claims, checked against the file before the tables they size are allocated: every
    // user and item of a DVBPR file has an entry (an item its image), so each takes bytes.
    for (name, n) in [("user_num", n_users), ("item_num", n_items)] {
        if n > bytes.len() {
            return Err(at(
                p.root,
                format!("{name} is {n}, more users or items than a {}-byte file can hold entries for", bytes.len()),
            ));
        }
    }
    let per_item = std::mem::size_of::<(Option<Span>, Option<String>, u64)>();
    crate::limits::bytes_for(&format!("{}: item_num={n_items}", path.display()), n_items, per_item)?;
    let reader = Reader { p: &p, path, n_users, n_items, file_len: bytes.len() };
    let [train_name, validation_name, test_name] = SPLITS;
    let splits = [reader.split(user_train, train_name)?, reader.split(user_validation, validation_name)?, reader.split(user_test, test_name)?];
    let (images, categories, item_asins) = reader.items(items)?;
    Ok(Layout { n_users, n_items, splits, images, categories, item_asins })
}

struct Reader<'p, 'a> {
    p: &'p Pickle<'a>,
    path: &'p Path,
    n_users: usize,
    n_items: usize,
    /// The file's size: the most (user, item) pairs it can really hold.
    file_len: usize,
}

impl Reader<'_, '_> {
    fn fail(&self, near: Value, fallback: Value, msg: String) -> Error {
        match self.p.origin(near).or_else(|| self.p.origin(fallback)) {
            Some(o) => Error::file(self.path, format!("byte offset {o}: {msg}")),
            None => Error::file(self.path, msg),
        }
    }

    /// (index, value) entries of a dict keyed by int, or of a list by position.
    fn indexed(&self, v: Value, what: &str, bound: usize, bound_name: &str) -> Result<Vec<(usize, Value)>> {
        let p = self.p;
        let entries: Vec<(usize, Value)> = if let Some(d) = p.dict(v) {
            d.iter()
                .map(|&(k, x)| match npy::int_of(p, k) {
                    Some(i) if i >= 0 && (i as usize) < bound => Ok((i as usize, x)),
                    Some(i) => Err(self.fail(x, v, format!("{what}: key {i} is outside 0..{bound_name} ({bound})"))),
                    None => Err(self.fail(x, v, format!("{what}: a key is a {}, not an int index", p.type_name(k)))),
                })
                .collect::<Result<_>>()?
        } else if let Some(items) = p.items(v) {
            if items.len() > bound {
                return Err(self.fail(v, v, format!("{what}: {} entries for {bound_name} = {bound}", items.len())));
            }
            items.iter().copied().enumerate().collect()
        } else {
            return Err(self.fail(v, v, format!("{what} is a {}, expected a dict or a list", p.type_name(v))));
        };
        let mut seen = vec![false; bound];
        for &(i, x) in &entries {
            // i < bound: checked for a dict's keys, and a list holds at most bound entries.
            if seen.get_mut(i).is_some_and(|s| std::mem::replace(s, true)) {
                return Err(self.fail(x, v, format!("{what}: index {i} appears twice")));
            }
        }
        Ok(entries)
    }

    fn split(&self, v: Value, name: &str) -> Result<Pairs> {
        let p = self.p;
        let mut out = Pairs::default();
        for (user, seq) in self.indexed(v, name, self.n_users, "user_num")? {
            let entries = p.items(seq).ok_or_else(|| {
                self.fail(seq, v, format!("{name}[{user}] is a {}, expected a list of dicts", p.type_name(seq)))
            })?;
            // One list can be referenced many times through the pickle memo; each pair of a
            // real file has its own bytes, so more pairs than bytes is a file built to expand.
            if out.users.len().saturating_add(entries.len()) > self.file_len {
                return Err(self.fail(seq, v, format!(
                    "{name}[{user}]: the lists so far hold more (user, item) pairs than the file has bytes \
                     ({}): lists shared through pickle memo references expand to more data than the file holds",
                    self.file_len
                )));
            }
            for (pos, &e) in entries.iter().enumerate() {
                // A dict with 'productid' (the real files), or the item index itself.
                let item = match p.dict(e) {
                    Some(_) => p.get(e, "productid").ok_or_else(|| {
                        self.fail(e, seq, format!("{name}[{user}][{pos}] has no 'productid'"))
                    })?,
                    None => e,
                };
                let i = npy::int_of(p, item).ok_or_else(|| {
                    self.fail(e, seq, format!("{name}[{user}][{pos}]: productid is a {}, not an int", p.type_name(item)))
                })?;
                if i < 0 || i as usize >= self.n_items {
                    return Err(self.fail(
                        e,
                        seq,
                        format!("{name}[{user}][{pos}]: productid {i} is outside 0..item_num ({})", self.n_items),
                    ));
                }
                out.users.push(user as u32);
                out.items.push(i as u32);
            }
        }
        Ok(out)
    }

    #[allow(clippy::type_complexity)]
    fn items(&self, v: Value) -> Result<(Vec<Option<Span>>, Option<Vec<i64>>, Option<Vec<String>>)> {
        let p = self.p;
        let mut images = vec![None; self.n_items];
        let mut categories: Option<Vec<i64>> = None;
        let mut asins: Vec<Option<String>> = vec![None; self.n_items];
        for (i, d) in self.indexed(v, "items", self.n_items, "item_num")? {
            if p.dict(d).is_none() {
                return Err(self.fail(d, v, format!("items[{i}] is a {}, expected a dict", p.type_name(d))));
            }
            if let Some(img) = p.get(d, "imgs") {
                // i < n_items, the tables' length (indexed's bound).
                let span = match img {
                    Value::Bytes(s) | Value::Text(s) => s,
                    _ => {
                        return Err(self.fail(
                            d,
                            v,
                            format!(
                                "items[{i}]['imgs'] is a {} that is not stored verbatim (a Python 3 protocol-2 \
                                 pickle?); save the file with protocol 3 or later",
                                p.type_name(img)
                            ),
                        ))
                    }
                };
                if let Some(slot) = images.get_mut(i) {
                    *slot = Some(span);
                }
            }
            if let Some(c) = p.get(d, "c") {
                let cat = category(p, c).map_err(|m| self.fail(d, v, format!("items[{i}]['c']: {m}")))?;
                if let Some(slot) = categories.get_or_insert_with(|| vec![-1; self.n_items]).get_mut(i) {
                    *slot = cat;
                }
            }
            if let Some(a) = p.get(d, "asin") {
                let asin = match p.bytes(a).map(std::str::from_utf8) {
                    Some(Ok(s)) => Some(s.to_owned()),
                    Some(Err(_)) => return Err(self.fail(a, d, format!("items[{i}]['asin'] is not UTF-8 text"))),
                    None => None,
                };
                if let Some(slot) = asins.get_mut(i) {
                    *slot = asin;
                }
            }
        }
        let asins = asins.iter().all(Option::is_some).then(|| asins.into_iter().flatten().collect());
        Ok((images, categories, asins))
    }
}

/// A category: an int, or the position of the one nonzero entry of a one-hot vector (a list
/// or a numpy array); -1 for an all-zero vector.
fn category(p: &Pickle<'_>, v: Value) -> std::result::Result<i64, String> {
    if let Some(i) = npy::int_of(p, v) {
        return Ok(i);
    }
    let numbers: Vec<f64> = if let Some(items) = p.items(v) {
        items
            .iter()
            .map(|&x| match x {
                Value::Int(i) => Ok(i as f64),
                Value::Float(f) => Ok(f),
                Value::Bool(b) => Ok(b as u8 as f64),
                _ => Err(format!("a one-hot vector holding a {}", p.type_name(x))),
            })
            .collect::<std::result::Result<_, _>>()?
    } else if let Some(a) = npy::array_of(p, v) {
        a?.numbers()?
    } else {
        return Err(format!("a {}, expected an int or a one-hot vector", p.type_name(v)));
    };
    let hot: Vec<usize> = numbers.iter().enumerate().filter(|(_, &x)| x != 0.0).map(|(k, _)| k).collect();
    match hot[..] {
        [] => Ok(-1),
        [k] => Ok(k as i64),
        _ => Err(format!("{} nonzero entries; expected a one-hot vector", hot.len())),
    }
}

/// What [`write`] writes: the splits (interactions over the same users and items), one
/// encoded image per item, optional category indices (written one-hot) and ASINs.
pub struct WriteInput<'a> {
    pub splits: [&'a Interactions; 3],
    pub images: &'a [&'a [u8]],
    pub categories: Option<&'a [i64]>,
    pub item_asins: Option<&'a [String]>,
}

/// A write that ran past the end of one of its inputs (their lengths are checked by [`write`]).
fn past_end(what: &str) -> std::io::Error {
    std::io::Error::other(format!("DVBPR writer: an index past the end of {what}"))
}

/// Write a DVBPR file in the real layout (npy header + Python 2 cPickle protocol 2 stream).
/// Every user of the id space gets an entry in each split (an empty list when it has none).
/// Returns the number of bytes written.
pub fn write(path: &Path, input: &WriteInput<'_>) -> Result<u64> {
    let train = input.splits[0];
    for (s, name) in input.splits.iter().zip(SPLITS).skip(1) {
        train.check_same_ids(s, name)?;
    }
    let (n_users, n_items) = (train.n_users(), train.n_items());
    if input.images.len() != n_items {
        return Err(Error::invalid(format!("jpeg_bytes: {} images for {n_items} items", input.images.len())));
    }
    let n_categories = match input.categories {
        Some(c) if c.len() != n_items => {
            return Err(Error::invalid(format!("{} categories for {n_items} items", c.len())))
        }
        Some(c) => {
            if let Some((k, x)) = c.iter().enumerate().find(|&(_, &x)| x < -1) {
                return Err(Error::invalid(format!("categories[{k}] is {x}; use -1 for none")));
            }
            c.iter().copied().max().unwrap_or(-1).saturating_add(1)
        }
        None => 0,
    };
    if let Some(a) = input.item_asins {
        if a.len() != n_items {
            return Err(Error::invalid(format!("item_asins: {} ASINs for {n_items} items", a.len())));
        }
    }
    super::write_replacing(path, |out| {
        let mut w = Py2Writer { w: out, memo: 0, keys: Default::default() };
        w.w.write_all(&npy::write_header("|O", false, &[6]))?;
        w.array_prefix()?;
        w.op(pk::EMPTY_LIST)?;
        w.put()?;
        w.op(pk::MARK)?;
        for split in input.splits {
            w.split(split, n_users, input.item_asins)?;
        }
        w.items(input, n_categories as usize)?;
        pk::int(&mut w.w, n_users as i64)?;
        pk::int(&mut w.w, n_items as i64)?;
        w.op(pk::APPENDS)?;
        w.array_suffix()?;
        w.w.flush()?;
        Ok(w.w.get_ref().metadata()?.len())
    })
}

/// A writer of the opcodes Python 2's cPickle emits: every container and string memoized
/// (BINPUT), repeated dict keys fetched from the memo (BINGET), batches of 1000.
struct Py2Writer<W: Write> {
    w: W,
    memo: u32,
    keys: std::collections::HashMap<&'static str, u32>,
}

impl<W: Write> Py2Writer<W> {
    fn op(&mut self, op: u8) -> std::io::Result<()> {
        self.w.write_all(&[op])
    }

    fn put(&mut self) -> std::io::Result<()> {
        pk::put(&mut self.w, self.memo)?;
        self.memo = self.memo.checked_add(1).ok_or_else(|| std::io::Error::other("more pickle memo entries than a u32 holds"))?;
        Ok(())
    }

    fn string(&mut self, s: &[u8]) -> std::io::Result<()> {
        pk::str(&mut self.w, s)?;
        self.put()
    }

    /// An interned key: written once, then fetched from the memo.
    fn key(&mut self, k: &'static str) -> std::io::Result<()> {
        match self.keys.get(k) {
            Some(&id) => pk::get(&mut self.w, id),
            None => {
                self.keys.insert(k, self.memo);
                self.string(k.as_bytes())
            }
        }
    }

    /// `numpy.core.multiarray._reconstruct(numpy.ndarray, (0,), 'b')` and the start of its
    /// state tuple `(1, (6,), dtype('O'), False, ...`.
    fn array_prefix(&mut self) -> std::io::Result<()> {
        self.w.write_all(&[pk::PROTO, 2])?;
        pk::global(&mut self.w, "numpy.core.multiarray", "_reconstruct")?;
        self.put()?;
        pk::global(&mut self.w, "numpy", "ndarray")?;
        self.put()?;
        pk::int(&mut self.w, 0)?;
        self.op(pk::TUPLE1)?;
        self.put()?;
        self.string(b"b")?;
        self.op(pk::TUPLE3)?;
        self.put()?;
        self.op(pk::REDUCE)?;
        self.put()?;
        self.op(pk::MARK)?;
        pk::int(&mut self.w, 1)?;
        pk::int(&mut self.w, 6)?;
        self.op(pk::TUPLE1)?;
        self.put()?;
        pk::global(&mut self.w, "numpy", "dtype")?;
        self.put()?;
        self.string(b"O8")?;
        pk::int(&mut self.w, 0)?;
        pk::int(&mut self.w, 1)?;
        self.op(pk::TUPLE3)?;
        self.put()?;
        self.op(pk::REDUCE)?;
        self.put()?;
        self.op(pk::MARK)?;
        pk::int(&mut self.w, 3)?;
        self.string(b"|")?;
        self.w.write_all(&[pk::NONE, pk::NONE, pk::NONE])?;
        pk::int(&mut self.w, -1)?;
        pk::int(&mut self.w, -1)?;
        pk::int(&mut self.w, 63)?;
        self.op(pk::TUPLE)?;
        self.put()?;
        self.op(pk::BUILD)?;
        self.op(pk::NEWFALSE)
    }

    /// Closes the state tuple, BUILDs the array, STOPs.
    fn array_suffix(&mut self) -> std::io::Result<()> {
        self.op(pk::TUPLE)?;
        self.put()?;
        self.op(pk::BUILD)?;
        self.op(pk::STOP)
    }

    /// A dict of `n` entries, written by `entry(self, k)` (key then value), batched.
    fn dict(&mut self, n: usize, mut entry: impl FnMut(&mut Self, usize) -> std::io::Result<()>) -> std::io::Result<()> {
        self.op(pk::EMPTY_DICT)?;
        self.put()?;
        self.batches(n, pk::SETITEM, pk::SETITEMS, &mut entry)
    }

    fn list(&mut self, n: usize, mut item: impl FnMut(&mut Self, usize) -> std::io::Result<()>) -> std::io::Result<()> {
        self.op(pk::EMPTY_LIST)?;
        self.put()?;
        self.batches(n, pk::APPEND, pk::APPENDS, &mut item)
    }

    fn batches(
        &mut self,
        n: usize,
        one: u8,
        many: u8,
        f: &mut impl FnMut(&mut Self, usize) -> std::io::Result<()>,
    ) -> std::io::Result<()> {
        let mut start = 0;
        while start < n {
            let end = start.saturating_add(pk::BATCH).min(n);
            let many_here = end.saturating_sub(start) > 1;
            if many_here {
                self.op(pk::MARK)?;
            }
            for k in start..end {
                f(self, k)?;
            }
            self.op(if many_here { many } else { one })?;
            start = end;
        }
        Ok(())
    }

    fn split(&mut self, split: &Interactions, n_users: usize, asins: Option<&[String]>) -> std::io::Result<()> {
        self.dict(n_users, |w, u| {
            pk::int(&mut w.w, u as i64)?;
            let items = split.user_items(u);
            w.list(items.len(), |w, k| {
                let i = *items.get(k).ok_or_else(|| past_end("a user's items"))? as usize;
                let n_keys = if asins.is_some() { 2 } else { 1 };
                w.dict(n_keys, |w, key| match key {
                    0 => {
                        w.key("productid")?;
                        pk::int(&mut w.w, i as i64)
                    }
                    _ => {
                        w.key("asin")?;
                        w.string(asins.map_or(Ok(&[][..]), |a| a.get(i).map(|s| s.as_bytes()).ok_or_else(|| past_end("the asins")))?)
                    }
                })
            })
        })
    }

    fn items(&mut self, input: &WriteInput<'_>, n_categories: usize) -> std::io::Result<()> {
        let n_items = input.images.len();
        self.dict(n_items, |w, i| {
            pk::int(&mut w.w, i as i64)?;
            let mut keys = vec!["imgs"];
            if input.categories.is_some() {
                keys.push("c");
            }
            if input.item_asins.is_some() {
                keys.push("asin");
            }
            // write() checked one image, category and asin per item.
            w.dict(keys.len(), |w, k| match keys.get(k).copied() {
                Some("imgs") => {
                    w.key("imgs")?;
                    w.string(input.images.get(i).ok_or_else(|| past_end("the images"))?)
                }
                Some("c") => {
                    w.key("c")?;
                    let c = input.categories.map_or(Ok(-1), |c| c.get(i).copied().ok_or_else(|| past_end("the categories")))?;
                    w.list(n_categories, |w, j| pk::int(&mut w.w, (j as i64 == c) as i64))
                }
                Some(_) => {
                    w.key("asin")?;
                    w.string(input.item_asins.map_or(Ok(&[][..]), |a| a.get(i).map(|s| s.as_bytes()).ok_or_else(|| past_end("the asins")))?)
                }
                None => Err(past_end("the item's keys")),
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::Columns;

    fn splits() -> Vec<Interactions> {
        let ids = IdMaps::new(IdMap::Range(4), IdMap::Range(5));
        let make = |u: &[u32], i: &[u32]| {
            Interactions::from_csr(Csr::from_coo(4, u, i, None, Duplicates::Sum).unwrap(), ids.clone()).unwrap()
        };
        vec![make(&[0, 0, 1, 3, 3], &[1, 2, 0, 4, 3]), make(&[0, 1], &[3, 4]), make(&[0, 3], &[4, 0])]
    }

    #[test]
    fn write_then_read_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tiny.npy");
        let s = splits();
        let jpegs: Vec<Vec<u8>> = (0..5).map(|i| vec![0xff, 0xd8, i as u8, 1, 2, 3]).collect();
        let refs: Vec<&[u8]> = jpegs.iter().map(|j| j.as_slice()).collect();
        let cats = [2i64, 0, -1, 1, 2];
        let asins: Vec<String> = (0..5).map(|i| format!("B00000000{i}")).collect();
        let input = WriteInput { splits: [&s[0], &s[1], &s[2]], images: &refs, categories: Some(&cats), item_asins: Some(&asins) };
        let n = write(&path, &input).unwrap();
        assert_eq!(n, std::fs::metadata(&path).unwrap().len());
        let data = read(&path).unwrap();
        let d = &data.layout;
        assert_eq!((d.n_users, d.n_items), (4, 5));
        assert_eq!(d.splits[0].users, vec![0, 0, 1, 3, 3]);
        assert_eq!(d.splits[0].items, vec![1, 2, 0, 3, 4]);
        assert_eq!(d.splits[2], Pairs { users: vec![0, 3], items: vec![4, 0] });
        for (i, span) in d.images.iter().enumerate() {
            let s = span.unwrap();
            assert_eq!(&data.map[s.start as usize..s.end() as usize], &jpegs[i][..]);
        }
        assert_eq!(d.categories.as_deref(), Some(&cats[..]));
        assert_eq!(d.item_asins.as_deref(), Some(&asins[..]));
        let (x, merged) = d.interactions().unwrap();
        assert_eq!(merged, [0, 0, 0]);
        assert_eq!(x[0].by_user(), s[0].by_user());
        assert!(x[1].check_same_ids(&x[0], "validation").is_ok());
    }

    #[test]
    fn truncated_and_wrong_files_are_located() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tiny.npy");
        let s = splits();
        let big: Vec<Vec<u8>> = (0..5).map(|i| vec![i as u8; 5000]).collect();
        let refs: Vec<&[u8]> = big.iter().map(|j| j.as_slice()).collect();
        let input = WriteInput { splits: [&s[0], &s[1], &s[2]], images: &refs, categories: None, item_asins: None };
        write(&path, &input).unwrap();
        let full = std::fs::read(&path).unwrap();
        let cut = dir.path().join("cut.npy");
        std::fs::write(&cut, &full[..full.len() - 7000]).unwrap();
        let e = read(&cut).unwrap_err().to_string();
        assert!(e.contains("cut.npy") && e.contains("truncated") && e.contains("byte offset"), "{e}");
        let jpeg = dir.path().join("img.npy");
        std::fs::write(&jpeg, b"\xff\xd8\xff\xe0\x00\x10JFIF\x00").unwrap();
        let e = read(&jpeg).unwrap_err().to_string();
        assert!(e.contains("img.npy") && e.contains("not a .npy file"), "{e}");
        let floats = dir.path().join("floats.npy");
        let mut f = npy::write_header("<f4", false, &[2]);
        f.extend_from_slice(&[0u8; 8]);
        std::fs::write(&floats, f).unwrap();
        assert!(read(&floats).unwrap_err().to_string().contains("not the object array"));
        let _ = Columns::default();
    }

    #[test]
    fn out_of_range_product_is_named() {
        // A hand-made pickle: [ {0: [{'productid': 9}]}, {}, {}, {}, 1, 2 ] as a plain list.
        let mut b = npy::write_header("|O", false, &[6]);
        let start = b.len();
        b.extend_from_slice(&[0x80, 2, b']', b'(', b'}', b'K', 0, b']', b'}', b'U', 9]);
        b.extend_from_slice(b"productid");
        b.extend_from_slice(&[b'K', 9, b's', b'a', b's', b'}', b'}', b'}', b'K', 1, b'K', 2, b'e', b'.']);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.npy");
        std::fs::write(&path, &b).unwrap();
        let e = read(&path).unwrap_err().to_string();
        assert!(e.contains("user_train[0][0]: productid 9 is outside 0..item_num (2)"), "{e}");
        assert!(e.contains(&format!("byte offset {}", start + 8)), "{e}");
    }
}

/// Property tests: the reader never panics on damaged files (every error names the file),
/// and what the writer writes reads back the same. `PROPTEST_CASES` raises the case count
/// for a long fuzzing run (`benches/README` has the command).
#[cfg(test)]
mod fuzz {
    use proptest::prelude::*;

    use super::*;

    fn splits(n_users: usize, n_items: usize, pairs: &[(usize, usize, u8)]) -> Vec<Interactions> {
        let ids = IdMaps::new(IdMap::Range(n_users), IdMap::Range(n_items));
        (0..3u8)
            .map(|k| {
                let (u, i): (Vec<u32>, Vec<u32>) = pairs
                    .iter()
                    .filter(|p| p.2 % 3 == k)
                    .map(|&(u, i, _)| ((u % n_users) as u32, (i % n_items) as u32))
                    .unzip();
                let csr = Csr::from_coo(n_users, &u, &i, None, Duplicates::Sum).unwrap();
                Interactions::from_csr(csr, ids.clone()).unwrap()
            })
            .collect()
    }

    /// A valid file's bytes (written once).
    fn sample_file() -> Vec<u8> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.npy");
        let pairs: Vec<(usize, usize, u8)> = (0..40).map(|k| (k * 7, k * 13, (k % 5) as u8)).collect();
        let s = splits(9, 11, &pairs);
        let imgs: Vec<Vec<u8>> = (0..11).map(|i| vec![i as u8; 30 + 60 * i]).collect();
        let refs: Vec<&[u8]> = imgs.iter().map(|v| v.as_slice()).collect();
        let cats: Vec<i64> = (0..11).map(|i| i % 3 - 1).collect();
        let asins: Vec<String> = (0..11).map(|i| format!("A{i}")).collect();
        let input = WriteInput { splits: [&s[0], &s[1], &s[2]], images: &refs, categories: Some(&cats), item_asins: Some(&asins) };
        write(&path, &input).unwrap();
        std::fs::read(&path).unwrap()
    }

    /// Byte-level damage: overwrite, insert, delete, truncate.
    #[derive(Debug, Clone)]
    enum Edit {
        Set(usize, u8),
        Insert(usize, Vec<u8>),
        Delete(usize, usize),
        Truncate(usize),
    }

    fn edit() -> impl Strategy<Value = Edit> {
        prop_oneof![
            4 => (any::<usize>(), any::<u8>()).prop_map(|(p, b)| Edit::Set(p, b)),
            1 => (any::<usize>(), proptest::collection::vec(any::<u8>(), 1..9)).prop_map(|(p, b)| Edit::Insert(p, b)),
            1 => (any::<usize>(), 1usize..40).prop_map(|(p, n)| Edit::Delete(p, n)),
            1 => any::<usize>().prop_map(Edit::Truncate),
        ]
    }

    fn apply(mut b: Vec<u8>, edits: &[Edit]) -> Vec<u8> {
        for e in edits {
            if b.is_empty() {
                break;
            }
            match e {
                Edit::Set(p, v) => {
                    let n = b.len();
                    b[p % n] = *v;
                }
                Edit::Insert(p, v) => {
                    let at = p % b.len();
                    b.splice(at..at, v.iter().copied());
                }
                Edit::Delete(p, n) => {
                    let at = p % b.len();
                    let end = (at + n).min(b.len());
                    b.drain(at..end);
                }
                Edit::Truncate(p) => {
                    let n = b.len();
                    b.truncate(p % n);
                }
            }
        }
        b
    }

    fn check(bytes: &[u8]) {
        let path = Path::new("fuzz.npy");
        match parse(bytes, path, &|_| {}) {
            Ok(layout) => {
                let _ = layout.interactions();
                assert!(layout.images.iter().flatten().all(|s| s.end() <= bytes.len() as u64));
            }
            Err(e) => assert!(e.to_string().starts_with("fuzz.npy: "), "{e}"),
        }
    }

    thread_local! {
        static SAMPLE: Vec<u8> = sample_file();
    }

    proptest! {
        #[test]
        fn damaged_files_never_panic(edits in proptest::collection::vec(edit(), 1..6)) {
            let bytes = SAMPLE.with(|s| apply(s.clone(), &edits));
            check(&bytes);
        }

        #[test]
        fn arbitrary_pickles_never_panic(tail in proptest::collection::vec(any::<u8>(), 0..300)) {
            let mut bytes = npy::write_header("|O", false, &[6]);
            bytes.extend_from_slice(&[0x80, 2]);
            bytes.extend_from_slice(&tail);
            check(&bytes);
            if let Err(e) = Pickle::parse(&tail, 0) {
                prop_assert!(e.offset <= tail.len() as u64);
            }
        }

        #[test]
        fn written_files_read_back(
            n_users in 1usize..12,
            n_items in 1usize..15,
            pairs in proptest::collection::vec((any::<usize>(), any::<usize>(), any::<u8>()), 0..60),
            sizes in proptest::collection::vec(0usize..700, 15),
            with_cats in any::<bool>(),
        ) {
            let s = splits(n_users, n_items, &pairs);
            let imgs: Vec<Vec<u8>> = (0..n_items).map(|i| vec![(i * 31) as u8; sizes[i]]).collect();
            let refs: Vec<&[u8]> = imgs.iter().map(|v| v.as_slice()).collect();
            let cats: Vec<i64> = (0..n_items as i64).map(|i| (i * 7) % 4 - 1).collect();
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("r.npy");
            let input = WriteInput { splits: [&s[0], &s[1], &s[2]], images: &refs, categories: with_cats.then_some(&cats[..]), item_asins: None };
            write(&path, &input).unwrap();
            let d = read(&path).unwrap();
            let (parts, merged) = d.layout.interactions().unwrap();
            prop_assert_eq!(merged, [0, 0, 0]);
            for k in 0..3 {
                prop_assert_eq!(parts[k].by_user(), s[k].by_user());
            }
            for (i, span) in d.layout.images.iter().enumerate() {
                let sp = span.unwrap();
                prop_assert_eq!(&d.map[sp.start as usize..sp.end() as usize], &imgs[i][..]);
            }
            let expect_cats = with_cats.then(|| if cats.iter().all(|&c| c < 0) { vec![-1; n_items] } else { cats.clone() });
            prop_assert_eq!(d.layout.categories, expect_cats);
        }
    }
}
