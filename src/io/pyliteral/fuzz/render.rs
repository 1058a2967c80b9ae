//! Renderers for the round-trip properties: a literal as Python or JSON text, with random
//! but equivalent spellings (quotes, prefixes, escapes, spacing, underscores in numbers).

use super::super::{Dialect, Literal};

/// A small deterministic generator for the renderer's choices (quotes, escapes, spaces).
pub(super) struct Dice(pub(super) u64);
impl Dice {
    fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn pick(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn chance(&mut self, one_in: u64) -> bool {
        self.pick(one_in) == 0
    }
}

pub(super) fn ws(d: &mut Dice, out: &mut String, dialect: Dialect) {
    match d.pick(8) {
        0 => out.push(' '),
        1 => out.push_str("  \t"),
        2 => out.push('\n'),
        3 if dialect == Dialect::Python => out.push_str(" # note, ] } ' \"\n"),
        4 if dialect == Dialect::Json => out.push_str("\r\n "),
        _ => {}
    }
}

fn digits_with_underscores(d: &mut Dice, digits: &str) -> String {
    let mut s = String::new();
    for (k, c) in digits.chars().enumerate() {
        if k > 0 && d.chance(6) {
            s.push('_');
        }
        s.push(c);
    }
    s
}

/// Python source for `v`, with random but equivalent spellings.
pub(super) fn render_py(v: &Literal, d: &mut Dice, out: &mut String) {
    match v {
        Literal::None => out.push_str("None"),
        Literal::Bool(b) => out.push_str(if *b { "True" } else { "False" }),
        Literal::Int(i) => {
            let neg = *i < 0;
            let mag = i.unsigned_abs();
            if neg {
                out.push('-');
                if d.chance(4) {
                    out.push(' ');
                }
            } else if d.chance(8) {
                out.push('+');
            }
            match d.pick(6) {
                0 => out.push_str(&format!("0x{}", digits_with_underscores(d, &format!("{mag:x}")))),
                1 => out.push_str(&format!("0O{}", digits_with_underscores(d, &format!("{mag:o}")))),
                2 => out.push_str(&format!("0b{}", digits_with_underscores(d, &format!("{mag:b}")))),
                _ => out.push_str(&digits_with_underscores(d, &mag.to_string())),
            }
            if d.chance(8) {
                out.push(if d.chance(2) { 'L' } else { 'l' });
            }
        }
        Literal::BigInt(s) => {
            let (sign, digits) = s.strip_prefix('-').map_or(("", s.as_str()), |r| ("-", r));
            out.push_str(sign);
            out.push_str(&digits_with_underscores(d, digits));
        }
        Literal::Float(f) => {
            let s = if d.chance(2) { format!("{f:?}") } else { format!("{f:e}") };
            // `{:e}` of an integral value has no '.', still a float thanks to the exponent.
            out.push_str(&s);
        }
        Literal::Str(s) => render_py_str(s, d, out),
        Literal::Bytes(b) => {
            out.push_str(["b", "B"][d.pick(2) as usize]);
            let q = if d.chance(2) { '\'' } else { '"' };
            out.push(q);
            for &c in b {
                match c {
                    b'\\' => out.push_str("\\\\"),
                    b'\n' => out.push_str("\\n"),
                    c if c == q as u8 => {
                        out.push('\\');
                        out.push(q);
                    }
                    0x20..=0x7e if !d.chance(10) => out.push(c as char),
                    // Three octal digits: a shorter escape would swallow a following digit.
                    _ if d.chance(3) => out.push_str(&format!("\\{c:03o}")),
                    _ => out.push_str(&format!("\\x{c:02x}")),
                }
            }
            out.push(q);
        }
        Literal::List(items) => seq_py(items, "[", "]", false, d, out),
        Literal::Tuple(items) => seq_py(items, "(", ")", items.len() == 1, d, out),
        Literal::Set(items) if items.is_empty() => out.push_str("set()"),
        Literal::Set(items) => seq_py(items, "{", "}", false, d, out),
        Literal::Dict(pairs) => {
            out.push('{');
            entries(pairs, Dialect::Python, render_py, d, out);
            if !pairs.is_empty() && d.chance(3) {
                out.push(',');
            }
            ws(d, out, Dialect::Python);
            out.push('}');
        }
    }
}

/// [`render_py`] or [`render_json`]: a literal in one dialect.
type Render = fn(&Literal, &mut Dice, &mut String);

/// The elements of a sequence, comma-separated, with `dialect`'s white space around each.
fn elements(items: &[Literal], dialect: Dialect, render: Render, d: &mut Dice, out: &mut String) {
    for (k, item) in items.iter().enumerate() {
        if k > 0 {
            out.push(',');
        }
        ws(d, out, dialect);
        render(item, d, out);
        ws(d, out, dialect);
    }
}

/// The `key: value` entries of a dict, comma-separated, with `dialect`'s white space around
/// each part.
fn entries(pairs: &[(Literal, Literal)], dialect: Dialect, render: Render, d: &mut Dice, out: &mut String) {
    for (k, (key, val)) in pairs.iter().enumerate() {
        if k > 0 {
            out.push(',');
        }
        ws(d, out, dialect);
        render(key, d, out);
        ws(d, out, dialect);
        out.push(':');
        ws(d, out, dialect);
        render(val, d, out);
    }
}

fn seq_py(items: &[Literal], open: &str, close: &str, force_comma: bool, d: &mut Dice, out: &mut String) {
    out.push_str(open);
    elements(items, Dialect::Python, render_py, d, out);
    if force_comma || (!items.is_empty() && d.chance(3)) {
        out.push(',');
    }
    ws(d, out, Dialect::Python);
    out.push_str(close);
}

/// A text string as one or more adjacent literals, in Python 2 byte-string (`'...'`) or
/// unicode (`u'...'`) form, with every kind of escape.
fn render_py_str(s: &str, d: &mut Dice, out: &mut String) {
    let chars: Vec<char> = s.chars().collect();
    let pieces = if chars.len() > 1 && d.chance(4) { 2 } else { 1 };
    let cut = if pieces == 2 { 1 + d.pick(chars.len() as u64 - 1) as usize } else { chars.len() };
    for (k, part) in [&chars[..cut], &chars[cut..]].iter().enumerate().take(pieces) {
        if k > 0 {
            ws(d, out, Dialect::Python);
        }
        let unicode = d.chance(2);
        let plain = part.iter().all(|&c| c != '\\' && c != '\'' && c != '"' && c >= ' ' && c != '\u{7f}');
        let raw = plain && d.chance(4);
        let prefix = match (unicode, raw) {
            (true, true) => ["ur", "UR", "uR"][d.pick(3) as usize],
            (true, false) => ["u", "U"][d.pick(2) as usize],
            (false, true) => ["r", "R"][d.pick(2) as usize],
            (false, false) => "",
        };
        out.push_str(prefix);
        let quote = ["'", "\"", "'''", "\"\"\""][d.pick(4) as usize];
        out.push_str(quote);
        let qc = quote.chars().next().unwrap_or('\'');
        for &c in part.iter() {
            if raw {
                out.push(c);
                continue;
            }
            let cp = c as u32;
            match c {
                '\\' => out.push_str("\\\\"),
                _ if c == qc => {
                    out.push('\\');
                    out.push(c);
                }
                '\n' if quote.len() == 3 && d.chance(2) => out.push('\n'),
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                '\t' if d.chance(2) => out.push_str("\\t"),
                _ if cp < 0x20 || cp == 0x7f || (c.is_ascii() && d.chance(12)) => match d.pick(4) {
                    0 => out.push_str(&format!("\\x{cp:02x}")),
                    1 => out.push_str(&format!("\\{cp:03o}")),
                    2 => out.push_str(&format!("\\u{cp:04x}")),
                    _ => out.push_str(&format!("\\U{cp:08X}")),
                },
                _ if c.is_ascii() => out.push(c),
                _ => match d.pick(4) {
                    // Python 2 byte string: the UTF-8 bytes as \x escapes.
                    0 if !unicode => {
                        let mut b = [0u8; 4];
                        for byte in c.encode_utf8(&mut b).bytes() {
                            out.push_str(&format!("\\x{byte:02x}"));
                        }
                    }
                    // A lone byte escape is unambiguous only for continuation-range values
                    // in byte strings (see the module docs); any value < 0x100 in u''.
                    0 if unicode && cp < 0x100 => out.push_str(&format!("\\x{cp:02x}")),
                    1 if cp <= 0xffff => out.push_str(&format!("\\u{cp:04x}")),
                    1 => {
                        let v = cp - 0x10000;
                        out.push_str(&format!("\\u{:04x}\\u{:04x}", 0xd800 + (v >> 10), 0xdc00 + (v & 0x3ff)));
                    }
                    2 => out.push_str(&format!("\\U{cp:08x}")),
                    3 if !unicode && (0x80..0xc0).contains(&cp) => out.push_str(&format!("\\x{cp:02x}")),
                    3 if unicode && cp <= 0o777 => out.push_str(&format!("\\{cp:03o}")),
                    _ => out.push(c),
                },
            }
        }
        out.push_str(quote);
    }
}

pub(super) fn render_json(v: &Literal, d: &mut Dice, out: &mut String) {
    match v {
        Literal::None => out.push_str("null"),
        Literal::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Literal::Int(i) => out.push_str(&i.to_string()),
        Literal::BigInt(s) => out.push_str(s),
        Literal::Float(f) => {
            let s = format!("{f:?}");
            out.push_str(&s);
        }
        Literal::Str(s) => {
            out.push('"');
            for c in s.chars() {
                let cp = c as u32;
                match c {
                    '"' => out.push_str("\\\""),
                    '\\' => out.push_str("\\\\"),
                    '/' if d.chance(2) => out.push_str("\\/"),
                    '\n' if d.chance(2) => out.push_str("\\n"),
                    '\u{8}' if d.chance(2) => out.push_str("\\b"),
                    _ if cp < 0x20 || d.chance(10) => {
                        if cp <= 0xffff {
                            out.push_str(&format!("\\u{cp:04X}"));
                        } else {
                            let v = cp - 0x10000;
                            out.push_str(&format!("\\u{:04x}\\u{:04x}", 0xd800 + (v >> 10), 0xdc00 + (v & 0x3ff)));
                        }
                    }
                    _ => out.push(c),
                }
            }
            out.push('"');
        }
        Literal::List(items) => {
            out.push('[');
            elements(items, Dialect::Json, render_json, d, out);
            out.push(']');
        }
        Literal::Dict(pairs) => {
            out.push('{');
            entries(pairs, Dialect::Json, render_json, d, out);
            out.push('}');
        }
        Literal::Bytes(_) | Literal::Tuple(_) | Literal::Set(_) => unreachable!("not JSON"),
    }
}
