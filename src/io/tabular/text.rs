//! Small helpers on the bytes of a text file: BOM, binary sniffing, trimming, integers, and
//! fields quoted for messages.

use std::path::Path;

use memchr::memchr;

use crate::error::{Error, Result};

pub(super) fn strip_bom(data: &[u8]) -> &[u8] {
    data.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(data)
}

/// A clear error for a file that is not text (a Parquet file or an image passed by mistake).
pub(super) fn sniff(path: &Path, data: &[u8]) -> Result<()> {
    const MAGIC: &[(&[u8], &str)] = &[
        (b"PAR1", "a Parquet file (read it with pyarrow or pandas.read_parquet)"),
        (b"\xFF\xD8\xFF", "a JPEG image"),
        (b"\x89PNG", "a PNG image"),
        (b"GIF8", "a GIF image"),
        (b"\x1F\x8B", "gzip-compressed (decompress it first)"),
        (b"PK\x03\x04", "a zip archive (extract it first)"),
        (b"\x93NUMPY", "a numpy .npy file"),
        (b"\xFF\xFE", "UTF-16 text (save it as UTF-8)"),
        (b"\xFE\xFF", "UTF-16 text (save it as UTF-8)"),
    ];
    if let Some((_, what)) = MAGIC.iter().find(|(m, _)| data.starts_with(m)) {
        return Err(Error::file(path, format!("this is {what}, not delimited text")));
    }
    if let Some(off) = memchr(0, data.get(..1 << 16).unwrap_or(data)) {
        return Err(Error::file(path, format!("binary data (a NUL byte at offset {off}), not delimited text")));
    }
    Ok(())
}

pub(super) fn trim(b: &[u8]) -> &[u8] {
    b.trim_ascii()
}

/// A decimal integer with an optional sign; None when it is not one or does not fit in i64.
#[inline]
pub(super) fn parse_i64(b: &[u8]) -> Option<i64> {
    let (neg, digits) = match b {
        [b'-', rest @ ..] => (true, rest),
        [b'+', rest @ ..] => (false, rest),
        _ => (false, b),
    };
    if digits.is_empty() || digits.len() > 19 {
        return None;
    }
    let mut v: u64 = 0;
    for &c in digits {
        let d = c.wrapping_sub(b'0');
        if d > 9 {
            return None;
        }
        // At most 19 digits: below u64::MAX, never None.
        v = v.checked_mul(10)?.checked_add(u64::from(d))?;
    }
    if neg {
        (v <= i64::MIN.unsigned_abs()).then(|| (v as i64).wrapping_neg())
    } else {
        i64::try_from(v).ok()
    }
}

/// A field for a message: quoted, escaped, cut at 40 characters.
pub(super) fn show(b: &[u8]) -> String {
    let s = String::from_utf8_lossy(b);
    let mut t: String = s.chars().take(40).collect::<String>().escape_debug().to_string();
    if s.chars().count() > 40 {
        t.push_str("...");
    }
    format!("'{t}'")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_i64_bounds() {
        assert_eq!(parse_i64(b"-9223372036854775808"), Some(i64::MIN));
        assert_eq!(parse_i64(b"9223372036854775807"), Some(i64::MAX));
        assert_eq!(parse_i64(b"9223372036854775808"), None);
        assert_eq!(parse_i64(b"+12"), Some(12));
        assert_eq!(parse_i64(b"1.0"), None);
        assert_eq!(parse_i64(b"-"), None);
    }
}
