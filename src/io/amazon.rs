//! Amazon product metadata (`meta_*.json.gz`): the 2014 files of Python dict literals and the
//! later strict JSON lines; categories and `related` edges (also_bought, ...).
//!
//! One record per line. 2014 (McAuley et al.): Python 2 `str(dict)` output, e.g.
//! `{'asin': '0000031852', 'title': 'Girls Ballet Tutu', 'price': 3.17, 'imUrl': '...',
//! 'related': {'also_bought': [...], 'also_viewed': [...], 'bought_together': [...]},
//! 'salesRank': {'Toys & Games': 211836}, 'brand': '...', 'categories': [['Sports', 'Dance']]}`.
//! 2018 (Ni et al.): JSON with `also_buy`, `also_view`, `category` (one flat path), `main_cat`,
//! `price` as text (`"$12.99"`), `imageURL` / `imageURLHighRes` (lists), `rank`.
//!
//! The file (gzip, detected by its magic bytes, multi-member allowed; or plain text) is
//! decompressed on one thread in chunks of whole lines while the lines of earlier chunks are
//! parsed in parallel on the rayon pool, so memory holds the output plus a few chunks, never
//! the whole text. Only the fields in [`Product`] are read; the others are checked (a malformed
//! line is an error wherever it is malformed) but not built.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;
use std::str::FromStr;
use std::sync::mpsc::{sync_channel, SyncSender};

use rayon::prelude::*;
use rustc_hash::FxHashMap;

use super::pyliteral::{Dialect, Field, Literal, Parser};
pub use super::OnError;
use crate::error::{Error, Result};

/// The relations a record lists, in [`Product::related`] order (2014 names; the 2018 files'
/// `also_buy` / `also_view` are read as the first two).
pub const RELATIONS: [&str; 4] = ["also_bought", "also_viewed", "bought_together", "buy_after_viewing"];

/// Index of a relation name in [`RELATIONS`]; the 2018 names are accepted too.
pub fn relation_index(name: &str) -> Option<usize> {
    match name {
        "also_buy" => Some(0),
        "also_view" => Some(1),
        _ => RELATIONS.iter().position(|r| *r == name),
    }
}

/// One metadata record.
#[derive(Debug, Clone, PartialEq)]
pub struct Product {
    /// 1-based line number in the file.
    pub line: u64,
    pub asin: String,
    pub title: Option<String>,
    pub brand: Option<String>,
    /// NaN when absent or not a number: 2018 prices are text, read as `$1,234.56`; anything
    /// else (a range `$10 - $20`, HTML, empty) is NaN.
    pub price: f64,
    /// Category paths, root first. A 2018 `category` (one flat list) is one path.
    pub categories: Vec<Vec<String>>,
    /// ASINs per relation, in [`RELATIONS`] order; empty when absent.
    pub related: [StrList; 4],
    /// (category, rank) pairs: the 2014 `salesRank` dict, or the 2018 `rank` text(s) of the
    /// form `[#]1,234 in Category [(...)]` (a text of another form is not a rank and is left
    /// out, like an unparseable price).
    pub sales_rank: Vec<(String, i64)>,
    /// The 2018 `main_cat`.
    pub main_cat: Option<String>,
    /// 2014 `imUrl`; 2018 the first of `imageURLHighRes`, else of `imageURL`.
    pub image_url: Option<String>,
    /// Only when asked for (it is the bulk of the text): a 2018 list of paragraphs is joined
    /// with newlines.
    pub description: Option<String>,
}

/// Strings stored back to back in one buffer. The related-ASIN lists hold most of a file's
/// strings (tens per record); one allocation per list instead of one per ASIN makes reading
/// and converting them much cheaper.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StrList {
    text: String,
    ends: Vec<u32>,
}

impl StrList {
    pub fn push(&mut self, s: &str) {
        self.text.push_str(s);
        self.ends.push(self.text.len() as u32);
    }

    pub fn len(&self) -> usize {
        self.ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    pub fn iter(&self) -> impl ExactSizeIterator<Item = &str> + '_ {
        // Each string runs from the previous one's end to its own.
        self.ends.iter().enumerate().map(move |(i, &end)| {
            let start = i.checked_sub(1).and_then(|before| self.ends.get(before)).map_or(0, |&e| e as usize);
            self.text.get(start..end as usize).unwrap_or_default()
        })
    }
}

impl<S: AsRef<str>> PartialEq<[S]> for StrList {
    fn eq(&self, other: &[S]) -> bool {
        self.len() == other.len() && self.iter().zip(other).all(|(a, b)| a == b.as_ref())
    }
}

/// `format=` of [`read_metadata`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Decided by the first record (JSON if it parses as JSON, else Python); a later line
    /// that fails in that dialect but parses in the other is read in the other.
    Auto,
    Python,
    Json,
}

impl FromStr for Format {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "auto" => Ok(Format::Auto),
            "python" => Ok(Format::Python),
            "json" => Ok(Format::Json),
            _ => Err(Error::invalid(format!("format must be 'auto', 'python' or 'json', not {}", crate::error::quote(s)))),
        }
    }
}

/// What a malformed line does.
#[derive(Debug, Clone, Copy)]
pub struct ReadOptions {
    pub format: Format,
    pub on_error: OnError,
    pub description: bool,
}

impl Default for ReadOptions {
    fn default() -> Self {
        ReadOptions { format: Format::Auto, on_error: OnError::Raise, description: false }
    }
}

/// A line left out with `OnError::Skip`.
#[derive(Debug, Clone, PartialEq)]
pub struct Skipped {
    pub line: u64,
    /// `byte column C: reason`.
    pub message: String,
}

#[derive(Debug)]
pub struct Metadata {
    pub products: Vec<Product>,
    pub skipped: Vec<Skipped>,
    /// The dialect of the first record (`None` for a file with no records).
    pub dialect: Option<Dialect>,
    /// Lines in the file (blank ones included; they hold no record and are not rows).
    pub lines: u64,
}

/// Why a line is malformed: the byte offset in the line and the reason.
#[derive(Debug, Clone, PartialEq)]
pub struct LineError {
    pub offset: usize,
    pub message: String,
}

impl LineError {
    fn new(offset: usize, message: impl Into<String>) -> Self {
        LineError { offset, message: message.into() }
    }
    /// `byte column C: reason` (columns are 1-based).
    pub fn describe(&self) -> String {
        format!("byte column {}: {}", self.offset.saturating_add(1), self.message)
    }
}

/// The keys read from a record, in this order; `description` last so it can be left out.
const KEYS: [&str; 16] = [
    "asin", "title", "brand", "price", "imUrl", "imageURLHighRes", "imageURL", "related", "also_buy", "also_view",
    "salesRank", "rank", "categories", "category", "main_cat", "description",
];

/// Parse one record line (no line terminator) in `dialect`.
pub fn parse_record(parser: &mut Parser, line: &[u8], description: bool) -> std::result::Result<Product, LineError> {
    // "description" is the last key.
    let keys = match KEYS.split_last() {
        Some((_, without_description)) if !description => without_description,
        _ => &KEYS,
    };
    let fields = parser.parse_dict_fields(line, keys).map_err(|e| LineError::new(e.offset, e.message))?;
    let mut fields = fields.into_iter();
    let mut next = || fields.next().flatten();
    let asin = match next() {
        Some(Field { value: Literal::Str(s), .. }) => s,
        Some(f) => return Err(LineError::new(f.offset, format!("'asin' is {}, expected a str", f.value.type_name()))),
        None => return Err(LineError::new(0, "no 'asin' key (every record needs one)")),
    };
    let title = opt_str(next(), "title")?;
    let brand = opt_str(next(), "brand")?;
    let price = price(next())?;
    let im_url = opt_str(next(), "imUrl")?;
    let high_res = first_url(next(), "imageURLHighRes")?;
    let low_res = first_url(next(), "imageURL")?;
    let mut related: [StrList; 4] = Default::default();
    if let Some(f) = next() {
        read_related(f, &mut related)?;
    }
    if let Some(f) = next() {
        str_list_into(f, "also_buy", &mut related[0])?;
    }
    if let Some(f) = next() {
        str_list_into(f, "also_view", &mut related[1])?;
    }
    let mut sales_rank = Vec::new();
    if let Some(f) = next() {
        read_sales_rank(f, &mut sales_rank)?;
    }
    if let Some(f) = next() {
        read_rank_text(f, &mut sales_rank)?;
    }
    let mut categories = Vec::new();
    if let Some(f) = next() {
        read_categories(f, &mut categories)?;
    }
    if let Some(f) = next() {
        let path = str_list(f, "category")?;
        if !path.is_empty() {
            categories.push(path);
        }
    }
    let main_cat = opt_str(next(), "main_cat")?;
    let description = if description { read_description(next())? } else { None };
    Ok(Product {
        line: 0,
        asin,
        title,
        brand,
        price,
        categories,
        related,
        sales_rank,
        main_cat,
        image_url: im_url.or(high_res).or(low_res),
        description,
    })
}

fn wrong(f: &Field, key: &str, expected: &str) -> LineError {
    LineError::new(f.offset, format!("'{key}' is {}, expected {expected}", f.value.type_name()))
}

/// A str field; `None` (the Python/JSON null) counts as absent.
fn opt_str(f: Option<Field>, key: &str) -> std::result::Result<Option<String>, LineError> {
    match f {
        None | Some(Field { value: Literal::None, .. }) => Ok(None),
        Some(Field { value: Literal::Str(s), .. }) => Ok(Some(s)),
        Some(f) => Err(wrong(&f, key, "a str")),
    }
}

/// A list (or tuple) of str.
fn str_list(f: Field, key: &str) -> std::result::Result<Vec<String>, LineError> {
    let offset = f.offset;
    match f.value {
        Literal::None => Ok(Vec::new()),
        Literal::List(items) | Literal::Tuple(items) => items
            .into_iter()
            .enumerate()
            .map(|(i, v)| match v {
                Literal::Str(s) => Ok(s),
                other => Err(LineError::new(offset, format!("'{key}' item {i} is {}, expected a str", other.type_name()))),
            })
            .collect(),
        _ => Err(wrong(&f, key, "a list of str")),
    }
}

/// A list (or tuple) of str, appended to `out`.
fn str_list_into(f: Field, key: &str, out: &mut StrList) -> std::result::Result<(), LineError> {
    let offset = f.offset;
    match f.value {
        Literal::None => Ok(()),
        Literal::List(items) | Literal::Tuple(items) => {
            for (i, v) in items.into_iter().enumerate() {
                match v {
                    Literal::Str(s) => out.push(&s),
                    other => {
                        return Err(LineError::new(offset, format!("'{key}' item {i} is {}, expected a str", other.type_name())))
                    }
                }
            }
            Ok(())
        }
        _ => Err(wrong(&f, key, "a list of str")),
    }
}

fn first_url(f: Option<Field>, key: &str) -> std::result::Result<Option<String>, LineError> {
    match f {
        None => Ok(None),
        Some(Field { value: Literal::Str(s), .. }) => Ok(Some(s)),
        Some(f) => Ok(str_list(f, key)?.into_iter().next()),
    }
}

fn price(f: Option<Field>) -> std::result::Result<f64, LineError> {
    Ok(match f.map(|f| (f.offset, f.value)) {
        None | Some((_, Literal::None)) => f64::NAN,
        Some((_, Literal::Float(v))) => v,
        Some((_, Literal::Int(v))) => v as f64,
        Some((_, Literal::BigInt(s))) => s.parse().unwrap_or(f64::NAN),
        Some((_, Literal::Str(s))) => parse_price(&s),
        Some((offset, v)) => {
            return Err(LineError::new(offset, format!("'price' is {}, expected a number or a str", v.type_name())))
        }
    })
}

/// `$1,234.56` (currency sign and thousands separators optional) as a number; NaN for any
/// other text (ranges, HTML, empty).
pub fn parse_price(text: &str) -> f64 {
    let t = text.trim();
    let t = t.strip_prefix('$').unwrap_or(t).trim_start();
    if t.is_empty() || !t.bytes().all(|b| b.is_ascii_digit() || b == b',' || b == b'.') {
        return f64::NAN;
    }
    let digits: String = t.chars().filter(|&c| c != ',').collect();
    match digits.parse::<f64>() {
        Ok(v) if v.is_finite() => v,
        _ => f64::NAN,
    }
}

fn read_related(f: Field, related: &mut [StrList; 4]) -> std::result::Result<(), LineError> {
    let offset = f.offset;
    match f.value {
        Literal::None => Ok(()),
        Literal::Dict(pairs) => {
            for (k, v) in pairs {
                let Literal::Str(name) = k else { continue };
                if let Some((_, list)) = RELATIONS.iter().zip(related.iter_mut()).find(|(x, _)| **x == name) {
                    str_list_into(Field { offset, value: v }, &format!("related.{name}"), list)?;
                }
            }
            Ok(())
        }
        _ => Err(wrong(&f, "related", "a dict")),
    }
}

fn read_sales_rank(f: Field, out: &mut Vec<(String, i64)>) -> std::result::Result<(), LineError> {
    let offset = f.offset;
    match f.value {
        Literal::None => Ok(()),
        Literal::Dict(pairs) => {
            for (k, v) in pairs {
                let Literal::Str(cat) = k else {
                    return Err(LineError::new(offset, format!("'salesRank' has a key that is {}, expected a str", k.type_name())));
                };
                let rank = match v {
                    Literal::Int(r) => r,
                    Literal::Float(r) if r.fract() == 0.0 && r.abs() < 9e15 => r as i64,
                    other => {
                        return Err(LineError::new(offset, format!(
                            "'salesRank' of {cat:?} is {}, expected an int",
                            other.type_name()
                        )))
                    }
                };
                out.push((cat, rank));
            }
            Ok(())
        }
        _ => Err(wrong(&f, "salesRank", "a dict")),
    }
}

/// 2018 `rank`: a text or a list of texts such as `"2,345 in Clothing, Shoes & Jewelry ("`.
fn read_rank_text(f: Field, out: &mut Vec<(String, i64)>) -> std::result::Result<(), LineError> {
    let texts = match f.value {
        Literal::None => return Ok(()),
        Literal::Str(s) => vec![s],
        _ => str_list(f, "rank")?,
    };
    out.extend(texts.iter().filter_map(|t| parse_rank_text(t)));
    Ok(())
}

/// `[#]1,234 in Category [(...)]` -> ("Category", 1234).
pub fn parse_rank_text(text: &str) -> Option<(String, i64)> {
    let t = text.trim();
    let t = t.strip_prefix('#').unwrap_or(t);
    let (num, rest) = t.split_once(" in ")?;
    let rank: i64 = num.trim().replace(',', "").parse().ok()?;
    let cat = rest.split(" (").next().unwrap_or(rest).trim().trim_end_matches('(').trim();
    if cat.is_empty() {
        return None;
    }
    Some((cat.to_string(), rank))
}

fn read_categories(f: Field, out: &mut Vec<Vec<String>>) -> std::result::Result<(), LineError> {
    let offset = f.offset;
    match f.value {
        Literal::None => Ok(()),
        Literal::List(items) | Literal::Tuple(items) => {
            // A list of paths; a flat list of str is one path.
            if items.iter().all(|v| matches!(v, Literal::Str(_))) {
                if !items.is_empty() {
                    out.push(str_list(Field { offset, value: Literal::List(items) }, "categories")?);
                }
                return Ok(());
            }
            for (i, path) in items.into_iter().enumerate() {
                out.push(str_list(Field { offset, value: path }, &format!("categories[{i}]"))?);
            }
            Ok(())
        }
        _ => Err(wrong(&f, "categories", "a list of lists of str")),
    }
}

fn read_description(f: Option<Field>) -> std::result::Result<Option<String>, LineError> {
    match f {
        None | Some(Field { value: Literal::None, .. }) => Ok(None),
        Some(Field { value: Literal::Str(s), .. }) => Ok(Some(s)),
        Some(f) => Ok(Some(str_list(f, "description")?.join("\n"))),
    }
}

// -- reading a file ----------------------------------------------------------------------

/// Text per chunk handed to the parser threads (whole lines; a longer line makes a longer
/// chunk).
const CHUNK_BYTES: usize = 4 << 20;
/// The longest line the reader takes (the longest real metadata line is a few hundred KiB).
const MAX_LINE_BYTES: usize = 64 << 20;

/// Complete lines, and the number of the first.
struct Chunk {
    first_line: u64,
    text: Vec<u8>,
}

/// Counts the compressed bytes the decoder has taken, for the truncation message.
struct Counting<R> {
    inner: R,
    count: u64,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count = self.count.saturating_add(n as u64);
        Ok(n)
    }
}

/// Decompress (or read) `path` and send chunks of whole lines; an error (truncated or corrupt
/// gzip, I/O) is sent as the last message. Stops when the receiver is gone.
fn produce(path: &Path, tx: SyncSender<Result<Chunk>>) {
    let result = (|| -> Result<()> {
        let mut file = File::open(path).map_err(|e| Error::io(path, &e))?;
        let total = file.metadata().map_err(|e| Error::io(path, &e))?.len();
        let mut magic = [0u8; 2];
        let got = read_full(&mut file, &mut magic).map_err(|e| Error::io(path, &e))?;
        file.seek(SeekFrom::Start(0)).map_err(|e| Error::io(path, &e))?;
        let gzip = got == 2 && magic == [0x1f, 0x8b];
        let counting = Counting { inner: file, count: 0 };
        let mut reader: Box<dyn ReadCount> = if gzip {
            Box::new(flate2::read::MultiGzDecoder::new(std::io::BufReader::with_capacity(1 << 16, counting)))
        } else {
            Box::new(counting)
        };
        let mut line = 1u64;
        let mut decompressed = 0u64;
        let mut carry: Vec<u8> = Vec::new();
        let mut block = vec![0u8; 1 << 18];
        loop {
            let mut text = std::mem::take(&mut carry);
            text.reserve(CHUNK_BYTES.saturating_add(block.len()));
            let mut eof = false;
            // The carried partial line holds no newline.
            let mut has_newline = false;
            while text.len() < CHUNK_BYTES || !has_newline {
                let n = match reader.read(&mut block) {
                    Ok(n) => n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(e) => {
                        let complete = text.iter().filter(|&&b| b == b'\n').count() as u64;
                        let what = if gzip { "the gzip stream is truncated or corrupt" } else { "read error" };
                        return Err(Error::file(path, format!(
                            "{what} ({e}) after {} of {total} compressed bytes; {} bytes of text ({} complete \
                             lines) came out before it",
                            reader.compressed(),
                            decompressed.saturating_add(text.len() as u64),
                            line.saturating_sub(1).saturating_add(complete)
                        )));
                    }
                };
                if n == 0 {
                    eof = true;
                    break;
                }
                // n <= block.len(): read never says more than it was given.
                let got = block.get(..n).unwrap_or_default();
                has_newline |= got.contains(&b'\n');
                // Without a line end, `text` is all one line: a gzip bomb (or a file of another
                // kind) must not grow it until memory runs out.
                if !has_newline && text.len().saturating_add(n) > MAX_LINE_BYTES {
                    return Err(Error::file(path, format!(
                        "line {line}: more than {} MiB with no line end; this is not a file of one \
                         record per line (or it is corrupt)",
                        MAX_LINE_BYTES >> 20
                    )));
                }
                text.extend_from_slice(got);
            }
            decompressed = decompressed.saturating_add(text.len() as u64);
            if !eof {
                // Keep the partial last line for the next chunk.
                let cut = text.iter().rposition(|&b| b == b'\n').map_or(0, |p| p.saturating_add(1));
                carry = text.split_off(cut);
                decompressed = decompressed.saturating_sub(carry.len() as u64);
            }
            let lines = (text.iter().filter(|&&b| b == b'\n').count() as u64)
                .saturating_add(u64::from(eof && !text.is_empty() && text.last() != Some(&b'\n')));
            if !text.is_empty() && tx.send(Ok(Chunk { first_line: line, text })).is_err() {
                return Ok(());
            }
            line = line.saturating_add(lines);
            if eof {
                return Ok(());
            }
        }
    })();
    if let Err(e) = result {
        let _ = tx.send(Err(e));
    }
}

fn read_full(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(buf.get_mut(n..).unwrap_or_default()) {
            Ok(0) => break,
            Ok(k) => n = n.saturating_add(k),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// A reader that knows how many bytes of the file it has taken.
trait ReadCount: Read + Send {
    fn compressed(&self) -> u64;
}

impl ReadCount for Counting<File> {
    fn compressed(&self) -> u64 {
        self.count
    }
}

impl ReadCount for flate2::read::MultiGzDecoder<std::io::BufReader<Counting<File>>> {
    fn compressed(&self) -> u64 {
        self.get_ref().get_ref().count
    }
}

/// The lines of a chunk with their numbers; blank lines (no record) are left out.
fn split_lines(chunk: &Chunk) -> Vec<(u64, &[u8])> {
    let mut out = Vec::new();
    for (i, raw) in chunk.text.split(|&b| b == b'\n').enumerate() {
        let line = raw.strip_suffix(b"\r").unwrap_or(raw);
        if line.iter().all(|b| b.is_ascii_whitespace()) {
            continue;
        }
        out.push((chunk.first_line.saturating_add(i as u64), line));
    }
    out
}

/// The first record's dialect: JSON if it is valid JSON, else Python.
fn sniff(line: &[u8]) -> Dialect {
    if Parser::new(Dialect::Json).validate(line).is_ok() {
        Dialect::Json
    } else {
        Dialect::Python
    }
}

/// Read a metadata file (see the module docs). Every non-blank line is a row, or an error
/// (`OnError::Raise`, naming the file, line, byte column and reason) or a [`Skipped`] entry.
pub fn read_metadata(path: &Path, opts: ReadOptions) -> Result<Metadata> {
    let mut products = Vec::new();
    let mut skipped = Vec::new();
    let mut dialect: Option<Dialect> = match opts.format {
        Format::Python => Some(Dialect::Python),
        Format::Json => Some(Dialect::Json),
        Format::Auto => None,
    };
    let mut lines = 0u64;
    std::thread::scope(|scope| -> Result<()> {
        // Created here so the receiver is dropped (and the producer stops) when this returns.
        let (tx, rx) = sync_channel::<Result<Chunk>>(2);
        scope.spawn(move || produce(path, tx));
        for msg in rx {
            let chunk = msg?;
            let numbered = split_lines(&chunk);
            // The chunk's pieces, less the empty one after a final newline (there is at least one).
            let pieces = chunk.text.split(|&b| b == b'\n').count() as u64;
            lines = chunk.first_line.saturating_sub(1).saturating_add(pieces).saturating_sub(u64::from(chunk.text.last() == Some(&b'\n')));
            let primary = *dialect.get_or_insert_with(|| numbered.first().map_or(Dialect::Python, |(_, l)| sniff(l)));
            let fallback = (opts.format == Format::Auto).then_some(match primary {
                Dialect::Json => Dialect::Python,
                Dialect::Python => Dialect::Json,
            });
            let parsed: Vec<std::result::Result<Product, LineError>> = numbered
                .par_iter()
                .map_init(
                    || (Parser::new(primary), fallback.map(Parser::new)),
                    |(p, f), &(no, line)| {
                        let mut r = parse_record(p, line, opts.description);
                        if let (Err(_), Some(f)) = (&r, f.as_mut()) {
                            if let Ok(other) = parse_record(f, line, opts.description) {
                                r = Ok(other);
                            }
                        }
                        r.map(|mut prod| {
                            prod.line = no;
                            prod
                        })
                    },
                )
                .collect();
            for ((no, _), r) in numbered.iter().zip(parsed) {
                match r {
                    Ok(p) => products.push(p),
                    Err(e) => match opts.on_error {
                        OnError::Raise => {
                            let dialect_name = match primary {
                                Dialect::Python => "Python dict literal",
                                Dialect::Json => "JSON object",
                            };
                            return Err(Error::file(path, format!(
                                "line {no}, {} (reading each line as a {dialect_name})",
                                e.describe()
                            )));
                        }
                        OnError::Skip => skipped.push(Skipped { line: *no, message: e.describe() }),
                    },
                }
            }
        }
        Ok(())
    })?;
    Ok(Metadata { products, skipped, dialect, lines })
}

// -- compatibility pairs -----------------------------------------------------------------

/// Counts of [`CompatibilityPairs::finish`]: every edge seen is in exactly one of `kept`,
/// `missing_source`, `missing_target`, `self_loops`, `duplicates`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PairStats {
    pub edges: u64,
    pub kept: u64,
    /// The record's own ASIN is not in the list (all its edges are dropped).
    pub missing_source: u64,
    /// The related ASIN is not in the list.
    pub missing_target: u64,
    pub self_loops: u64,
    /// Exact repeats of a kept (i, j) edge.
    pub duplicates: u64,
}

/// Edges `record -> related ASIN` as index pairs into an ASIN list (a features file's, say).
pub struct CompatibilityPairs<'a> {
    index: FxHashMap<&'a str, u32>,
    edges: Vec<u64>,
    stats: PairStats,
}

impl<'a> CompatibilityPairs<'a> {
    /// `asins[k]` gets index k; a repeated ASIN keeps its first index.
    pub fn new(asins: &[&'a str]) -> Result<Self> {
        if asins.len() > u32::MAX as usize {
            return Err(Error::invalid("more than 2^32 - 1 ASINs"));
        }
        let mut index = FxHashMap::with_capacity_and_hasher(asins.len(), Default::default());
        for (k, a) in asins.iter().enumerate() {
            index.entry(*a).or_insert(k as u32);
        }
        Ok(CompatibilityPairs { index, edges: Vec::new(), stats: PairStats::default() })
    }

    /// The index of a record's ASIN (`None`: not in the list).
    pub fn source(&self, asin: &str) -> Option<u32> {
        self.index.get(asin).copied()
    }

    /// One edge from a record (its [`Self::source`]) to a related ASIN.
    pub fn add(&mut self, source: Option<u32>, target: &str) {
        self.stats.edges = self.stats.edges.saturating_add(1);
        let Some(i) = source else {
            self.stats.missing_source = self.stats.missing_source.saturating_add(1);
            return;
        };
        match self.index.get(target) {
            None => self.stats.missing_target = self.stats.missing_target.saturating_add(1),
            Some(&j) if j == i => self.stats.self_loops = self.stats.self_loops.saturating_add(1),
            Some(&j) => self.edges.push((u64::from(i) << 32) | u64::from(j)),
        }
    }

    /// The distinct edges sorted by (i, j), and the counts.
    pub fn finish(mut self) -> (Vec<i64>, Vec<i64>, PairStats) {
        self.edges.par_sort_unstable();
        let before = self.edges.len();
        self.edges.dedup();
        self.stats.duplicates = before.saturating_sub(self.edges.len()) as u64;
        self.stats.kept = self.edges.len() as u64;
        let i = self.edges.iter().map(|&e| (e >> 32) as i64).collect();
        let j = self.edges.iter().map(|&e| (e & 0xffff_ffff) as i64).collect();
        (i, j, self.stats)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    const LINE_2014: &str = r#"{'asin': '0000031852', 'title': 'Girls Ballet Tutu Zebra Hot Pink', 'price': 3.17, 'imUrl': 'http://ecx.images-amazon.com/images/I/51fAmVkTbyL._SY300_.jpg', 'related': {'also_bought': ['B00JHONN1S', 'B002BZX8Z6'], 'also_viewed': ['B002BZX8Z6'], 'bought_together': ['B002BZX8Z6']}, 'salesRank': {'Toys & Games': 211836}, 'brand': 'Coxlure', 'categories': [['Sports & Outdoors', 'Other Sports', 'Dance']], 'description': "Don\xe2\x80\x99t"}"#;
    const LINE_2018: &str = r#"{"category": ["Clothing, Shoes & Jewelry", "Women"], "tech1": "", "description": ["A", "B"], "title": "Tee", "also_buy": ["B1", "B2"], "brand": "Acme", "rank": "2,345 in Clothing, Shoes & Jewelry (", "also_view": ["B3"], "main_cat": "Fashion", "price": "$1,012.99", "asin": "B000000001", "imageURL": ["http://a/1.jpg", "http://a/2.jpg"], "imageURLHighRes": ["http://a/1H.jpg"]}"#;

    fn write_file(dir: &Path, name: &str, bytes: &[u8]) -> std::path::PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, bytes).unwrap();
        p
    }

    fn gz(text: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(text).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn record_2014_python() {
        let mut p = Parser::new(Dialect::Python);
        let r = parse_record(&mut p, LINE_2014.as_bytes(), true).unwrap();
        assert_eq!(r.asin, "0000031852");
        assert_eq!(r.title.as_deref(), Some("Girls Ballet Tutu Zebra Hot Pink"));
        assert_eq!(r.price, 3.17);
        assert_eq!(r.related[0], ["B00JHONN1S", "B002BZX8Z6"][..]);
        assert_eq!(r.related[2], ["B002BZX8Z6"][..]);
        assert!(r.related[3].is_empty());
        assert_eq!(r.sales_rank, vec![("Toys & Games".to_string(), 211836)]);
        assert_eq!(r.categories, vec![vec!["Sports & Outdoors", "Other Sports", "Dance"]]);
        assert_eq!(r.brand.as_deref(), Some("Coxlure"));
        assert!(r.image_url.unwrap().ends_with("_SY300_.jpg"));
        assert_eq!(r.description.as_deref(), Some("Don’t"));
        assert!(parse_record(&mut p, LINE_2014.as_bytes(), false).unwrap().description.is_none());
    }

    #[test]
    fn record_2018_json() {
        let mut p = Parser::new(Dialect::Json);
        let r = parse_record(&mut p, LINE_2018.as_bytes(), true).unwrap();
        assert_eq!(r.asin, "B000000001");
        assert_eq!(r.price, 1012.99);
        assert_eq!(r.related[0], ["B1", "B2"][..]);
        assert_eq!(r.related[1], ["B3"][..]);
        assert_eq!(r.categories, vec![vec!["Clothing, Shoes & Jewelry", "Women"]]);
        assert_eq!(r.sales_rank, vec![("Clothing, Shoes & Jewelry".to_string(), 2345)]);
        assert_eq!(r.main_cat.as_deref(), Some("Fashion"));
        assert_eq!(r.image_url.as_deref(), Some("http://a/1H.jpg"));
        assert_eq!(r.description.as_deref(), Some("A\nB"));
    }

    #[test]
    fn field_errors_name_the_key_and_column() {
        let mut p = Parser::new(Dialect::Python);
        let e = parse_record(&mut p, b"{'title': 'x'}", false).unwrap_err();
        assert!(e.message.contains("no 'asin'"));
        let line = b"{'asin': 'A', 'price': [1]}";
        let e = parse_record(&mut p, line, false).unwrap_err();
        assert_eq!(e.offset, 23);
        assert!(e.message.contains("'price' is a list"), "{e:?}");
        let e = parse_record(&mut p, b"{'asin': 'A', 'related': {'also_bought': ['B', 3]}}", false).unwrap_err();
        assert!(e.message.contains("'related.also_bought' item 1 is an int"), "{e:?}");
        let e = parse_record(&mut p, b"{'asin': 5}", false).unwrap_err();
        assert!(e.message.contains("'asin' is an int"));
        let e = parse_record(&mut p, b"{'asin': 'A', 'title': 'unbalanced}", false).unwrap_err();
        assert!(e.message.contains("unterminated"));
    }

    #[test]
    fn prices_and_ranks() {
        assert_eq!(parse_price("$12.99"), 12.99);
        assert_eq!(parse_price(" $1,234 "), 1234.0);
        assert_eq!(parse_price("7"), 7.0);
        for bad in ["", "$", "$10.00 - $15.00", "<span>", "free", "1.2.3"] {
            assert!(parse_price(bad).is_nan(), "{bad}");
        }
        assert_eq!(parse_rank_text("#12 in Toys (See Top 100)"), Some(("Toys".into(), 12)));
        assert_eq!(parse_rank_text("1,000 in Books ("), Some(("Books".into(), 1000)));
        assert_eq!(parse_rank_text("[]"), None);
    }

    #[test]
    fn reads_gzip_multi_member_and_plain_with_line_numbers() {
        let dir = tempfile::tempdir().unwrap();
        let mut text = String::new();
        for k in 0..3000 {
            text.push_str(&format!("{{'asin': 'A{k:09}', 'related': {{'also_bought': ['A{:09}']}}}}\n", (k + 1) % 3000));
            if k == 10 {
                text.push_str("\n  \r\n");
            }
        }
        // Two gzip members, the cut in the middle of a line.
        let (a, b) = text.split_at(text.len() / 2 + 7);
        let mut two = gz(a.as_bytes());
        two.extend(gz(b.as_bytes()));
        for (name, bytes) in [("m.json.gz", two), ("p.json", text.clone().into_bytes())] {
            let p = write_file(dir.path(), name, &bytes);
            let m = read_metadata(&p, ReadOptions::default()).unwrap();
            assert_eq!(m.products.len(), 3000, "{name}");
            assert_eq!(m.dialect, Some(Dialect::Python));
            assert_eq!(m.lines, 3002);
            assert_eq!(m.products[11].line, 14);
            assert_eq!(m.products[11].asin, "A000000011");
            assert_eq!(m.products[2999].related[0], ["A000000000"][..]);
        }
    }

    #[test]
    fn malformed_line_is_an_error_or_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let text = b"{'asin': 'A'}\n{'asin': 'B', 'title': 'oops}\n{'asin': 'C'}\n{'title': 'no asin'}\n";
        let p = write_file(dir.path(), "meta.json", text);
        let e = read_metadata(&p, ReadOptions::default()).unwrap_err().to_string();
        assert!(e.contains("meta.json") && e.contains("line 2, byte column 24") && e.contains("unterminated"), "{e}");
        let m = read_metadata(&p, ReadOptions { on_error: OnError::Skip, ..Default::default() }).unwrap();
        assert_eq!(m.products.iter().map(|p| p.asin.as_str()).collect::<Vec<_>>(), ["A", "C"]);
        assert_eq!(m.skipped.len(), 2);
        assert_eq!(m.skipped[0].line, 2);
        assert_eq!(m.skipped[1].line, 4);
        assert!(m.skipped[1].message.contains("no 'asin'"));
    }

    #[test]
    fn truncated_gzip_says_how_far_it_got() {
        let dir = tempfile::tempdir().unwrap();
        let text: String = (0..20000).map(|k| format!("{{'asin': 'A{k:09}', 'title': 'item {k}'}}\n")).collect();
        let full = gz(text.as_bytes());
        let p = write_file(dir.path(), "cut.json.gz", &full[..full.len() / 2]);
        let e = read_metadata(&p, ReadOptions::default()).unwrap_err().to_string();
        assert!(e.contains("cut.json.gz") && e.contains("truncated"), "{e}");
        assert!(e.contains(&format!("of {} compressed bytes", full.len() / 2)), "{e}");
        // Only the 8-byte trailer missing.
        let p = write_file(dir.path(), "trailer.json.gz", &full[..full.len() - 4]);
        assert!(read_metadata(&p, ReadOptions::default()).is_err());
    }

    #[test]
    fn formats_auto_json_and_mixed() {
        let dir = tempfile::tempdir().unwrap();
        let text = format!("{LINE_2018}\n{LINE_2014}\n");
        let p = write_file(dir.path(), "mixed.json", text.as_bytes());
        let m = read_metadata(&p, ReadOptions::default()).unwrap();
        assert_eq!(m.dialect, Some(Dialect::Json));
        assert_eq!(m.products.len(), 2);
        let e = read_metadata(&p, ReadOptions { format: Format::Json, ..Default::default() }).unwrap_err().to_string();
        assert!(e.contains("line 2, byte column 2") && e.contains("JSON"), "{e}");
        // Python literal syntax is nearly a superset of JSON: not for true/false/null.
        assert_eq!(read_metadata(&p, ReadOptions { format: Format::Python, ..Default::default() }).unwrap().products.len(), 2);
        let p = write_file(dir.path(), "flags.json", format!("{LINE_2014}\n{{\"asin\": \"J\", \"x\": true}}\n").as_bytes());
        let m = read_metadata(&p, ReadOptions::default()).unwrap();
        assert_eq!((m.dialect, m.products[1].asin.as_str()), (Some(Dialect::Python), "J"));
        let e = read_metadata(&p, ReadOptions { format: Format::Python, ..Default::default() }).unwrap_err().to_string();
        assert!(e.contains("line 2, byte column 20") && e.contains("'true'"), "{e}");
        let bin = write_file(dir.path(), "photo.jpg", &[0xff, 0xd8, 0xff, 0xe0, 0, 0x10, b'J', b'F', b'I', b'F', b'\n']);
        let e = read_metadata(&bin, ReadOptions::default()).unwrap_err().to_string();
        assert!(e.contains("line 1, byte column 1") && e.contains("expected a dict"), "{e}");
        let empty = write_file(dir.path(), "empty.json", b"");
        let m = read_metadata(&empty, ReadOptions::default()).unwrap();
        assert!(m.products.is_empty() && m.dialect.is_none());
        assert!(read_metadata(&dir.path().join("missing.json.gz"), ReadOptions::default()).is_err());
    }

    #[test]
    fn pairs_count_every_dropped_edge() {
        let asins = ["A", "B", "C", "A"];
        let mut c = CompatibilityPairs::new(&asins).unwrap();
        let a = c.source("A");
        for t in ["B", "B", "A", "Z", "C"] {
            c.add(a, t);
        }
        let b = c.source("B");
        c.add(b, "A");
        c.add(c.source("Q"), "A");
        let (i, j, s) = c.finish();
        assert_eq!((i, j), (vec![0, 0, 1], vec![1, 2, 0]));
        assert_eq!(s, PairStats { edges: 7, kept: 3, missing_source: 1, missing_target: 1, self_loops: 1, duplicates: 1 });
    }
}
