//! numpy's `.npy` container (magic, version, header dict) and the numpy objects found inside
//! pickles: arrays rebuilt by `_reconstruct`, dtypes and scalars, read as data.

use super::pickle::{Pickle, Value};
use super::pyliteral::{self, Dialect, Literal};

const MAGIC: &[u8] = b"\x93NUMPY";

/// The header of a `.npy` file.
#[derive(Debug, Clone, PartialEq)]
pub struct NpyHeader {
    pub version: (u8, u8),
    /// numpy's type string, e.g. `|O` (objects, i.e. a pickle follows) or `<f4`.
    pub descr: String,
    pub fortran_order: bool,
    pub shape: Vec<usize>,
    /// Where the array data (or the pickle) starts.
    pub data_offset: usize,
}

impl NpyHeader {
    /// True for object arrays, whose data is a pickle.
    pub fn is_object(&self) -> bool {
        matches!(self.descr.as_str(), "|O" | "|O8" | "O" | "O8" | "<O" | ">O")
    }
}

/// Reads the header at the start of `bytes`; the message says what is wrong and where.
pub fn read_header(bytes: &[u8]) -> Result<NpyHeader, String> {
    // Magic (6 bytes), version (2), then the header's length (2 bytes in version 1, else 4).
    let Some(&[_, _, _, _, _, _, major, minor, l0, l1]) = bytes.get(..10).filter(|b| b.starts_with(MAGIC)) else {
        let head: Vec<String> = bytes.iter().take(8).map(|b| format!("{b:02x}")).collect();
        return Err(format!(
            "not a .npy file: it does not start with numpy's magic \\x93NUMPY (first bytes: {})",
            head.join(" ")
        ));
    };
    let version = (major, minor);
    let (len, start) = match (major, bytes.get(8..12)) {
        (1, _) => (u16::from_le_bytes([l0, l1]) as usize, 10usize),
        (2 | 3, Some(len)) => (u32::from_le_bytes(crate::io::byte_array(len)) as usize, 12),
        _ => return Err(format!("unsupported .npy format version {major}.{minor}")),
    };
    let end = start.saturating_add(len);
    let Some(text) = bytes.get(start..end) else {
        return Err(format!(
            "truncated: the .npy header says it is {len} bytes long but the file ends at byte offset {}",
            bytes.len()
        ));
    };
    let dict = pyliteral::parse(text, Dialect::Python)
        .map_err(|e| format!("the .npy header at byte offset {start} is not a Python dict literal: {e}"))?;
    let Literal::Dict(entries) = dict else {
        return Err(format!("the .npy header at byte offset {start} is not a dict"));
    };
    let get = |key: &str| {
        entries.iter().find(|(k, _)| matches!(k, Literal::Str(s) if s == key)).map(|(_, v)| v)
    };
    let bad = |key: &str| format!("the .npy header has no valid '{key}' entry");
    let descr = match get("descr") {
        Some(Literal::Str(s)) => s.clone(),
        Some(_) => return Err("the .npy header's 'descr' is a structured dtype; only plain dtypes are read".into()),
        None => return Err(bad("descr")),
    };
    let fortran_order = match get("fortran_order") {
        Some(Literal::Bool(b)) => *b,
        _ => return Err(bad("fortran_order")),
    };
    let shape = match get("shape") {
        Some(Literal::Tuple(dims)) => dims
            .iter()
            .map(|d| match d {
                Literal::Int(n) if *n >= 0 => Ok(*n as usize),
                _ => Err(bad("shape")),
            })
            .collect::<Result<Vec<_>, _>>()?,
        _ => return Err(bad("shape")),
    };
    Ok(NpyHeader { version, descr, fortran_order, shape, data_offset: end })
}

/// A version 1.0 header for an array of `descr` and `shape`, padded with spaces and a newline
/// so the data starts at a multiple of 64 bytes, as numpy writes it.
pub fn write_header(descr: &str, fortran_order: bool, shape: &[usize]) -> Vec<u8> {
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    let shape = match dims.as_slice() {
        [d] => format!("({d},)"),
        _ => format!("({})", dims.join(", ")),
    };
    let py_bool = if fortran_order { "True" } else { "False" };
    let mut dict = format!("{{'descr': '{descr}', 'fortran_order': {py_bool}, 'shape': {shape}, }}").into_bytes();
    // Magic, version and length (10 bytes), the dict, the newline: padded to 64 bytes.
    let total = dict.len().saturating_add(11);
    dict.resize(dict.len().saturating_add(total.next_multiple_of(64).saturating_sub(total)), b' ');
    dict.push(b'\n');
    let mut out = MAGIC.to_vec();
    out.extend_from_slice(&[1, 0]);
    out.extend_from_slice(&(dict.len() as u16).to_le_bytes());
    out.extend_from_slice(&dict);
    out
}

/// Where numpy's pickle helpers live (numpy 1.x, then 2.x).
pub const MULTIARRAY: &[&str] = &["numpy.core.multiarray", "numpy._core.multiarray"];

/// A numpy dtype as pickled: kind ('O', 'f', 'i', 'u', 'b', ...) and item size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dtype {
    pub kind: u8,
    pub size: usize,
    pub big_endian: bool,
}

/// The data of a pickled array.
#[derive(Debug, Clone, Copy)]
pub enum ArrayData<'p> {
    /// An object array's elements.
    Objects(&'p [Value]),
    /// The raw bytes of a numeric array.
    Raw(&'p [u8]),
}

/// An ndarray found in a pickle (`_reconstruct` + its BUILD state).
#[derive(Debug, Clone)]
pub struct PickledArray<'p> {
    pub shape: Vec<usize>,
    pub dtype: Dtype,
    pub data: ArrayData<'p>,
}

impl PickledArray<'_> {
    /// The elements of a 1-D numeric array as f64 (bool, int, uint, float of any size).
    pub fn numbers(&self) -> Result<Vec<f64>, String> {
        let ArrayData::Raw(raw) = self.data else {
            return Err("an object array, not a numeric one".into());
        };
        let Dtype { kind, size, big_endian } = self.dtype;
        if !(1..=8).contains(&size) {
            return Err(format!("numeric dtype '{}{size}' is not supported (item size must be 1 to 8 bytes)", kind as char));
        }
        let n = element_count(&self.shape)?;
        if n.checked_mul(size) != Some(raw.len()) {
            return Err(format!("array data has {} bytes for {n} items of {size} bytes", raw.len()));
        }
        // size is 1 to 8 (checked above), c one item of that size.
        let word = |c: &[u8]| {
            let mut b = [0u8; 8];
            if big_endian {
                b.iter_mut().skip(8usize.saturating_sub(size)).zip(c).for_each(|(d, &s)| *d = s);
                u64::from_be_bytes(b)
            } else {
                b.iter_mut().zip(c).for_each(|(d, &s)| *d = s);
                u64::from_le_bytes(b)
            }
        };
        let sign_extend = |w: u64| {
            let shift = 64u32.saturating_sub((size as u32).saturating_mul(8));
            ((w << shift) as i64) >> shift
        };
        raw.chunks_exact(size)
            .map(|c| match (kind, size) {
                (b'b', 1) => Ok(c.iter().any(|&x| x != 0) as u8 as f64),
                (b'u', 1..=8) => Ok(word(c) as f64),
                (b'i', 1..=8) => Ok(sign_extend(word(c)) as f64),
                (b'f', 4) => Ok(f32::from_bits(word(c) as u32) as f64),
                (b'f', 8) => Ok(f64::from_bits(word(c))),
                _ => Err(format!("numeric dtype '{}{size}' is not supported", kind as char)),
            })
            .collect()
    }
}

/// The dtype made by a pickled `numpy.dtype(descr, ...)` call.
pub fn dtype_of(p: &Pickle<'_>, v: Value) -> Result<Dtype, String> {
    let (args, state) = p.call_of(v, &["numpy"], "dtype").ok_or_else(|| format!("expected a numpy dtype, found {}", p.type_name(v)))?;
    let descr = p
        .items(args)
        .and_then(|a| a.first())
        .and_then(|&d| p.bytes(d))
        .and_then(|d| std::str::from_utf8(d).ok())
        .ok_or("a numpy dtype without its type string")?;
    let (&kind, size) = descr.as_bytes().split_first().ok_or("a numpy dtype with an empty type string")?;
    let size = match std::str::from_utf8(size) {
        Ok("") => 0,
        Ok(digits) => digits.parse::<usize>().map_err(|_| format!("dtype {}", crate::error::quote(descr)))?,
        Err(_) => return Err(format!("dtype {}", crate::error::quote(descr))),
    };
    // The BUILD state's second item is the byte order: '<', '>', '|' or '='.
    let big_endian = state
        .and_then(|s| p.items(s))
        .and_then(|s| s.get(1))
        .and_then(|&o| p.bytes(o))
        .is_some_and(|o| o == b">");
    Ok(Dtype { kind, size, big_endian })
}

/// The array `v` if it is a pickled ndarray (None when it is something else).
pub fn array_of<'p>(p: &'p Pickle<'_>, v: Value) -> Option<Result<PickledArray<'p>, String>> {
    let (_, state) = p.call_of(v, MULTIARRAY, "_reconstruct")?;
    Some((|| {
        let state = state.ok_or("an ndarray without its state")?;
        // (version, shape, dtype, is_fortran, data)
        let Some(&[_, shape, dtype, _, data]) = p.items(state) else {
            return Err("an ndarray state that is not a 5-tuple".to_string());
        };
        let shape = p
            .items(shape)
            .ok_or("an ndarray shape that is not a tuple")?
            .iter()
            .map(|&d| match d {
                Value::Int(n) if n >= 0 => Ok(n as usize),
                _ => Err("an ndarray shape with a non-integer dimension".to_string()),
            })
            .collect::<Result<Vec<_>, _>>()?;
        let dtype = dtype_of(p, dtype)?;
        let data = if dtype.kind == b'O' {
            ArrayData::Objects(p.items(data).ok_or("an object array whose data is not a list")?)
        } else {
            ArrayData::Raw(p.any_bytes(data).ok_or("a numeric array whose data is not bytes")?)
        };
        if let ArrayData::Objects(items) = data {
            let n = element_count(&shape)?;
            if items.len() != n {
                return Err(format!("an object array of shape {shape:?} holds {} items", items.len()));
            }
        }
        Ok(PickledArray { shape, dtype, data })
    })())
}

/// The number of elements of `shape`, or an error when the product overflows.
fn element_count(shape: &[usize]) -> Result<usize, String> {
    shape.iter().try_fold(1usize, |n, &d| n.checked_mul(d)).ok_or_else(|| format!("an ndarray of shape {shape:?} (too many elements)"))
}

/// An integer: a Python int or bool, or a numpy integer scalar.
pub fn int_of(p: &Pickle<'_>, v: Value) -> Option<i64> {
    match v {
        Value::Int(i) => Some(i),
        Value::Bool(b) => Some(b as i64),
        _ => {
            let (args, _) = p.call_of(v, MULTIARRAY, "scalar")?;
            let a = p.items(args)?;
            let dtype = dtype_of(p, *a.first()?).ok()?;
            let raw = p.any_bytes(*a.get(1)?)?;
            let arr = PickledArray { shape: vec![1], dtype, data: ArrayData::Raw(raw) };
            match dtype.kind {
                b'i' | b'u' | b'b' => arr.numbers().ok()?.first().map(|&x| x as i64),
                _ => None,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_size_and_odd_dtypes_are_errors() {
        for size in [0, 9, 16] {
            let arr = PickledArray { shape: vec![3], dtype: Dtype { kind: b'i', size, big_endian: true }, data: ArrayData::Raw(&[]) };
            assert!(arr.numbers().unwrap_err().contains("not supported"));
        }
        let arr = PickledArray { shape: vec![usize::MAX, 2], dtype: Dtype { kind: b'u', size: 1, big_endian: false }, data: ArrayData::Raw(&[]) };
        assert!(arr.numbers().unwrap_err().contains("too many elements"));
    }

    #[test]
    fn header_round_trip_and_alignment() {
        let h = write_header("|O", false, &[6]);
        assert_eq!(h.len() % 64, 0);
        let prefix: &[u8] = b"\x93NUMPY\x01\x00v\x00{'descr': '|O', 'fortran_order': False, 'shape': (6,), }";
        assert!(h.starts_with(prefix) && h.ends_with(b" \n"));
        let r = read_header(&h).unwrap();
        assert_eq!(r, NpyHeader { version: (1, 0), descr: "|O".into(), fortran_order: false, shape: vec![6], data_offset: h.len() });
        assert!(r.is_object());
        let r = read_header(&write_header("<f4", true, &[3, 4])).unwrap();
        assert_eq!((r.descr.as_str(), r.fortran_order, r.shape), ("<f4", true, vec![3, 4]));
    }

    #[test]
    fn bad_headers_say_why() {
        assert!(read_header(b"\xff\xd8\xff\xe0 JFIF....").unwrap_err().contains("not a .npy file"));
        let mut h = write_header("|O", false, &[6]);
        h.truncate(40);
        assert!(read_header(&h).unwrap_err().contains("truncated"));
        let mut h = write_header("|O", false, &[6]);
        h[11] = b'('; // breaks the dict literal
        assert!(read_header(&h).unwrap_err().contains("not a Python dict literal"));
    }
}
