//! Numbers: Python's (radix prefixes, `_`, Python 2 `L` and `017` octal, floats) and strict
//! JSON's; integers outside i64 are kept in decimal ([`Literal::BigInt`]).

use super::cursor::{is_ident, show_byte, span, Cursor};
use super::{Dialect, Literal, PResult};

impl Cursor<'_, '_> {
    pub(super) fn number(&mut self, keep: bool) -> PResult<Literal> {
        match self.dialect {
            Dialect::Json => self.json_number(keep),
            Dialect::Python => self.python_number(keep),
        }
    }

    /// Digits of `radix` with single `_` between digits (Python); returns how many digits.
    /// `pos` must be at the first digit (or at a `_` when `lead_underscore`).
    fn py_digits(&mut self, radix: u32, lead_underscore: bool) -> PResult<usize> {
        let mut n = 0usize;
        let mut last_underscore = false;
        loop {
            match self.peek() {
                Some(b'_') => {
                    if last_underscore || (n == 0 && !lead_underscore) {
                        return Err(self.error_at(self.pos, "'_' must be between digits"));
                    }
                    last_underscore = true;
                }
                Some(b) if (b as char).is_digit(radix) => {
                    n = n.saturating_add(1);
                    last_underscore = false;
                }
                _ => break,
            }
            self.advance(1);
        }
        if last_underscore {
            return Err(self.error_at(self.pos.saturating_sub(1), "'_' must be between digits"));
        }
        Ok(n)
    }

    fn python_number(&mut self, keep: bool) -> PResult<Literal> {
        let start = self.pos;
        let negative = match self.peek() {
            Some(b'-') => {
                self.advance(1);
                true
            }
            Some(b'+') => {
                self.advance(1);
                false
            }
            _ => false,
        };
        // After a sign, the number may be parenthesised: `-(1)` (not `-(-1)`, not `-(1,)`).
        let mut parens = 0usize;
        if self.pos > start {
            self.skip_ws();
            while self.peek() == Some(b'(') {
                self.advance(1);
                self.enter()?;
                parens = parens.saturating_add(1);
                self.skip_ws();
            }
            if !matches!(self.peek(), Some(b'0'..=b'9' | b'.')) {
                return Err(self.error_expected("a number after the sign"));
            }
        }
        let value = self.python_unsigned(negative, keep)?;
        for _ in 0..parens {
            self.skip_ws();
            if self.peek() != Some(b')') {
                return Err(self.error_expected("')' after the number"));
            }
            self.advance(1);
            self.depth = self.depth.saturating_sub(1);
        }
        Ok(value)
    }

    /// A number without its sign at `pos` (`negative`: a '-' came before it).
    fn python_unsigned(&mut self, negative: bool, keep: bool) -> PResult<Literal> {
        let num_start = self.pos;
        // Radix prefixes.
        if self.peek() == Some(b'0') {
            let radix = match self.peek_at(1) {
                Some(b'x' | b'X') => 16,
                Some(b'o' | b'O') => 8,
                Some(b'b' | b'B') => 2,
                _ => 0,
            };
            if radix != 0 {
                self.advance(2);
                let n = self.py_digits(radix, true)?;
                if n == 0 {
                    return Err(self.error_expected(&format!("base-{radix} digits")));
                }
                let digits_end = self.pos;
                if matches!(self.peek(), Some(b'l' | b'L')) {
                    self.advance(1);
                }
                self.check_number_end()?;
                return Ok(if keep {
                    int_from_digits(span(self.text, num_start.saturating_add(2), digits_end), radix, negative)
                } else {
                    Literal::None
                });
            }
        }
        let int_digits = if self.peek() == Some(b'.') { 0 } else { self.py_digits(10, false)? };
        let mut is_float = false;
        if self.peek() == Some(b'.') {
            // `1.` and `.5` are floats; `.` alone is not.
            self.advance(1);
            is_float = true;
            let frac = if self.peek().is_some_and(|b| b.is_ascii_digit()) { self.py_digits(10, false)? } else { 0 };
            if int_digits == 0 && frac == 0 {
                return Err(self.error_at(self.pos.saturating_sub(1), "expected digits around '.'"));
            }
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            let save = self.pos;
            self.advance(1);
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.advance(1);
            }
            if !self.peek().is_some_and(|b| b.is_ascii_digit()) {
                return Err(self.error_at(save, "expected digits after the exponent 'e'"));
            }
            self.py_digits(10, false)?;
            is_float = true;
        }
        let end = self.pos;
        if matches!(self.peek(), Some(b'j' | b'J')) {
            return Err(self.error_at(self.pos, "complex numbers are not supported"));
        }
        if is_float {
            self.check_number_end()?;
            if !keep {
                return Ok(Literal::None);
            }
            self.scratch.clear();
            if negative {
                self.scratch.push(b'-');
            }
            self.scratch.extend(span(self.text, num_start, end).iter().filter(|&&b| b != b'_'));
            let s = std::str::from_utf8(self.scratch).unwrap_or("");
            return match s.parse::<f64>() {
                Ok(f) => Ok(Literal::Float(f)),
                Err(_) => Err(self.error_at(num_start, "malformed float")),
            };
        }
        if matches!(self.peek(), Some(b'l' | b'L')) {
            self.advance(1);
        }
        self.check_number_end()?;
        let digits = span(self.text, num_start, end);
        // `0`, `00`, `0_0` are zero; other leading zeros are Python 2 octal (`017` == 15).
        if let Some(after_zero) = digits.strip_prefix(b"0").filter(|rest| !rest.is_empty()) {
            if digits.iter().all(|&b| b == b'0' || b == b'_') {
                return Ok(if keep { Literal::Int(0) } else { Literal::None });
            }
            if let Some(bad) = digits.iter().position(|&b| !(b'0'..=b'7').contains(&b) && b != b'_') {
                return Err(self.error_at(
                    num_start.saturating_add(bad),
                    "a decimal integer may not start with 0 (Python 2 octal like 017 takes only digits 0-7)",
                ));
            }
            return Ok(if keep { int_from_digits(after_zero, 8, negative) } else { Literal::None });
        }
        Ok(if keep { int_from_digits(digits, 10, negative) } else { Literal::None })
    }

    /// A number must not run straight into a name or another number (`1abc`, `1.2.3`).
    fn check_number_end(&self) -> PResult<()> {
        match self.peek() {
            Some(b) if is_ident(b) || b == b'.' => {
                Err(self.error_at(self.pos, format!("malformed number: unexpected {} in it", show_byte(Some(b)))))
            }
            _ => Ok(()),
        }
    }

    /// One or more digits of a JSON number's fraction or exponent; `what` is expected when
    /// there is none.
    fn json_digits(&mut self, what: &str) -> PResult<()> {
        if !self.peek().is_some_and(|b| b.is_ascii_digit()) {
            return Err(self.error_expected(what));
        }
        while self.peek().is_some_and(|b| b.is_ascii_digit()) {
            self.advance(1);
        }
        Ok(())
    }

    fn json_number(&mut self, keep: bool) -> PResult<Literal> {
        let start = self.pos;
        if self.peek() == Some(b'-') {
            self.advance(1);
        }
        match self.peek() {
            Some(b'0') => {
                self.advance(1);
                if self.peek().is_some_and(|b| b.is_ascii_digit()) {
                    return Err(self.error_at(self.pos, "leading zeros are not allowed in JSON numbers"));
                }
            }
            Some(b'1'..=b'9') => {
                while self.peek().is_some_and(|b| b.is_ascii_digit()) {
                    self.advance(1);
                }
            }
            Some(b'I') => return Err(self.error_at(start, "NaN and Infinity are not JSON numbers (this reader is strict RFC 8259 JSON)")),
            _ => return Err(self.error_expected("a digit (JSON number)")),
        }
        let int_end = self.pos;
        let mut is_float = false;
        if self.peek() == Some(b'.') {
            self.advance(1);
            self.json_digits("a digit after '.' (JSON number)")?;
            is_float = true;
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.advance(1);
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.advance(1);
            }
            self.json_digits("a digit in the exponent (JSON number)")?;
            is_float = true;
        }
        if let Some(b) = self.peek() {
            if is_ident(b) || b == b'.' || b == b'+' || b == b'-' {
                return Err(self.error_at(self.pos, format!("malformed number: unexpected {} in it", show_byte(Some(b)))));
            }
        }
        if !keep {
            return Ok(Literal::None);
        }
        let text = span(self.text, start, self.pos);
        if is_float {
            let s = std::str::from_utf8(text).unwrap_or("");
            return s.parse::<f64>().map(Literal::Float).map_err(|_| self.error_at(start, "malformed number"));
        }
        let negative = text.first() == Some(&b'-');
        let digits = span(self.text, if negative { start.saturating_add(1) } else { start }, int_end);
        Ok(int_from_digits(digits, 10, negative))
    }
}

/// An integer from digits of `radix` (underscores skipped): `Int` when it fits i64, else
/// `BigInt` in decimal.
fn int_from_digits(digits: &[u8], radix: u32, negative: bool) -> Literal {
    let mut v: u64 = 0;
    let mut fits = true;
    for &b in digits {
        if b == b'_' {
            continue;
        }
        let d = (b as char).to_digit(radix).unwrap_or(0) as u64;
        match v.checked_mul(u64::from(radix)).and_then(|x| x.checked_add(d)) {
            Some(x) => v = x,
            None => {
                fits = false;
                break;
            }
        }
    }
    if fits {
        if negative {
            if v <= 1u64 << 63 {
                return Literal::Int((v as i64).wrapping_neg());
            }
        } else if v <= i64::MAX as u64 {
            return Literal::Int(v as i64);
        }
    }
    Literal::BigInt(big_decimal(digits, radix, negative))
}

/// Decimal digits of an arbitrarily long integer given in `radix` (limbs of 10^9).
fn big_decimal(digits: &[u8], radix: u32, negative: bool) -> String {
    const BASE: u64 = 1_000_000_000;
    let mut limbs: Vec<u64> = vec![0]; // little-endian base 10^9
    for &b in digits {
        if b == b'_' {
            continue;
        }
        let mut carry = (b as char).to_digit(radix).unwrap_or(0) as u64;
        for limb in limbs.iter_mut() {
            // limb < 10^9, radix <= 36, carry < 36 x 10^9: far below u64::MAX.
            let x = limb.saturating_mul(u64::from(radix)).saturating_add(carry);
            *limb = x % BASE;
            carry = x / BASE;
        }
        while carry > 0 {
            limbs.push(carry % BASE);
            carry /= BASE;
        }
    }
    while limbs.len() > 1 && limbs.last() == Some(&0) {
        limbs.pop();
    }
    let mut s = String::new();
    if negative && limbs != [0] {
        s.push('-');
    }
    let mut iter = limbs.iter().rev();
    if let Some(top) = iter.next() {
        s.push_str(&top.to_string());
    }
    for limb in iter {
        s.push_str(&format!("{limb:09}"));
    }
    s
}
