//! Unit tests of the parser: both dialects, errors and their offsets, the fast paths.

use super::*;
use Literal::*;

fn py(s: &str) -> Literal {
    parse(s.as_bytes(), Dialect::Python).unwrap_or_else(|e| panic!("{s:?}: {e}"))
}
fn js(s: &str) -> Literal {
    parse(s.as_bytes(), Dialect::Json).unwrap_or_else(|e| panic!("{s:?}: {e}"))
}
fn py_err(s: &str) -> LiteralError {
    parse(s.as_bytes(), Dialect::Python).expect_err(s)
}
fn js_err(s: &str) -> LiteralError {
    parse(s.as_bytes(), Dialect::Json).expect_err(s)
}
fn st(s: &str) -> Literal {
    Str(s.to_string())
}

#[test]
fn python_strings_quotes_prefixes_concatenation() {
    assert_eq!(py("'abc'"), st("abc"));
    assert_eq!(py("\"it's\""), st("it's"));
    assert_eq!(py("'''a'b\"c'''"), st("a'b\"c"));
    assert_eq!(py("\"\"\"x\ny\"\"\""), st("x\ny"));
    assert_eq!(py("\"\"\"a\r\nb\rc\"\"\""), st("a\nb\nc"));
    assert_eq!(py("u'x'"), st("x"));
    assert_eq!(py("U\"x\""), st("x"));
    assert_eq!(py("b'x\\x00'"), Bytes(vec![b'x', 0]));
    assert_eq!(py("Rb'\\x'"), Bytes(b"\\x".to_vec()));
    assert_eq!(py("bR'\\x'"), Bytes(b"\\x".to_vec()));
    assert_eq!(py("r'a\\nb'"), st("a\\nb"));
    assert_eq!(py("r'\\''"), st("\\'"));
    assert_eq!(py("'a' \"b\" u'c'"), st("abc"));
    assert_eq!(py("['a'\n  'b']"), List(vec![st("ab")]));
    assert_eq!(py("'' ''"), st(""));
    assert_eq!(py("''"), st(""));
    assert_eq!(py("b'a' b'b'"), Bytes(b"ab".to_vec()));
    assert!(py_err("b'a' 'b'").message.contains("concatenate"));
    assert!(py_err("f'x'").message.contains("name"));
    assert!(py_err("ub'x'").message.contains("name"));
}

#[test]
fn python_escapes() {
    assert_eq!(py(r#"'\\ \' \" \n \r \t \a \b \f \v'"#), st("\\ ' \" \n \r \t \x07 \x08 \x0c \x0b"));
    assert_eq!(py(r"'\101\0\7'"), st("A\0\x07"));
    assert_eq!(py(r"u'\777'"), st("\u{1ff}"));
    assert_eq!(py(r"b'\777'"), Bytes(vec![0xff]));
    assert_eq!(py(r"'\x41\u00e9\U0001F600'"), st("Aé😀"));
    assert_eq!(py("'a\\\nb'"), st("ab"));
    assert_eq!(py("'a\\\r\nb'"), st("ab"));
    // Unknown escapes are kept, as Python does.
    assert_eq!(py(r"'\q\8'"), st("\\q\\8"));
    assert_eq!(py(r"b'\N'"), Bytes(b"\\N".to_vec()));
    // Regression (differential fuzzing): \N in a text string was kept as written, where
    // Python reads a named escape; now an error rather than a different string.
    assert!(py_err(r"'\N'").message.contains("\\N"));
    assert_eq!(py(r"b'\u1234'"), Bytes(b"\\u1234".to_vec()));
    // Surrogate pairs are combined; lone surrogates are an error.
    assert_eq!(py(r"u'\ud83d\ude00'"), st("😀"));
    assert!(py_err(r"u'\ud83d'").message.contains("surrogate"));
    assert!(py_err(r"u'\udc00'").message.contains("surrogate"));
    assert!(py_err(r"'\U00110000'").message.contains("U+110000"));
    assert!(py_err(r"u'\N{DASH}'").message.contains("\\N"));
    let e = py_err(r"'ab\x4'");
    assert_eq!(e.offset, 3);
    assert!(e.message.contains("hex digits"), "{e}");
    // Python 2 ur'' strings: \u is an escape, the rest is raw.
    assert_eq!(py(r"ur'\u00e9\n'"), st("é\\n"));
    assert_eq!(py(r"ur'\\u00e9'"), st("\\\\u00e9"));
}

#[test]
fn python2_byte_strings_decode_utf8_then_latin1() {
    // What the 2014 Amazon files hold: UTF-8 bytes as \x escapes in a byte string.
    assert_eq!(py(r"'Don\xe2\x80\x99t'"), st("Don’t"));
    // Not valid UTF-8: each bad byte is its Latin-1 character.
    assert_eq!(py(r"'caf\xe9'"), st("café"));
    assert_eq!(py(r"'\xe2\x80\x99 and \xff'"), st("’ and ÿ"));
    // In u'' strings, \xhh is the code point.
    assert_eq!(py(r"u'\xe2\x80\x99'"), st("\u{e2}\u{80}\u{99}"));
    // Raw bytes in the text (not escaped) must be UTF-8: never silently reread as Latin-1.
    let e = parse(b"'caf\xe9'", Dialect::Python).unwrap_err();
    assert!(e.message.contains("invalid UTF-8") && e.offset == 4, "{e}");
    assert!(parse(b"{'a': '\xff\xfe'}", Dialect::Python).unwrap_err().message.contains("UTF-8"));
    assert_eq!(py("'café'"), st("café"));
    assert_eq!(py(r"r'\é'"), st(r"\é"));
    assert!(py_err("b'café'").message.contains("ASCII"));
    // Concatenated pieces are decoded together (one byte string in Python 2).
    assert_eq!(py(r"'\xe2\x80' '\x99'"), st("’"));
}

#[test]
fn python_string_errors_have_offsets() {
    // Unterminated strings point at their opening quote.
    let e = py_err("['abc");
    assert_eq!(e.offset, 1);
    assert!(e.message.contains("unterminated"), "{e}");
    let e = py_err("[1, u'ab\ncd']");
    assert_eq!(e.offset, 4);
    assert!(e.message.contains("line break"));
    assert!(py_err("'abc\\").message.contains("backslash"));
    assert!(py_err("r'\\'").message.contains("unterminated"));
}

#[test]
fn python_numbers() {
    assert_eq!(py("0"), Int(0));
    assert_eq!(py("-17"), Int(-17));
    assert_eq!(py("+ 5"), Int(5));
    // Regression (differential fuzzing): a sign before a parenthesised number.
    assert_eq!(py("-(1)"), Int(-1));
    assert_eq!(py("+ ( (2.5) )"), Float(2.5));
    assert_eq!(py("-(9223372036854775808)"), Int(i64::MIN));
    for bad in ["-(-1)", "-(1,)", "-(1", "-()", "-(True)"] {
        assert!(parse(bad.as_bytes(), Dialect::Python).is_err(), "{bad}");
    }
    assert_eq!(py("1_000"), Int(1000));
    assert_eq!(py("0x_ff"), Int(255));
    assert_eq!(py("0XFFL"), Int(255));
    assert_eq!(py("0o17"), Int(15));
    assert_eq!(py("017"), Int(15));
    assert_eq!(py("0_0"), Int(0));
    assert_eq!(py("0b1_01"), Int(5));
    assert_eq!(py("123L"), Int(123));
    assert_eq!(py("-9223372036854775808"), Int(i64::MIN));
    assert_eq!(py("9223372036854775807"), Int(i64::MAX));
    assert_eq!(py("9223372036854775808"), BigInt("9223372036854775808".into()));
    assert_eq!(py("-0x10000000000000000"), BigInt("-18446744073709551616".into()));
    assert_eq!(py("123456789012345678901234567890"), BigInt("123456789012345678901234567890".into()));
    assert_eq!(py("1."), Float(1.0));
    assert_eq!(py(".5"), Float(0.5));
    assert_eq!(py("-1.5e-3"), Float(-1.5e-3));
    assert_eq!(py("1_0.2_5E1_0"), Float(10.25e10));
    assert_eq!(py("1e400"), Float(f64::INFINITY));
    assert_eq!(py("00.5"), Float(0.5));
    assert!(matches!(py("-0.0"), Float(f) if f == 0.0 && f.is_sign_negative()));
    for bad in ["1__0", "1_", "0x", "09", "1e", "1.5L", "1abc", "1.2.3", "--1", "-", ".", "1j", "0b2", "nan", "inf", "-True"] {
        let e = py_err(bad);
        assert!(e.offset <= bad.len(), "{bad}: {e}");
    }
    assert!(py_err("1j").message.contains("complex"));
    assert_eq!(py_err("1__0").offset, 2);
}

#[test]
fn python_containers() {
    assert_eq!(py("[]"), List(vec![]));
    assert_eq!(py("()"), Tuple(vec![]));
    assert_eq!(py("(1,)"), Tuple(vec![Int(1)]));
    assert_eq!(py("(1)"), Int(1));
    assert_eq!(py("((1,))"), Tuple(vec![Int(1)]));
    assert_eq!(py("(1, 2, )"), Tuple(vec![Int(1), Int(2)]));
    assert_eq!(py("[1, [2, (3,)],]"), List(vec![Int(1), List(vec![Int(2), Tuple(vec![Int(3)])])]));
    assert_eq!(py("{}"), Dict(vec![]));
    assert_eq!(py("{1, 2,}"), Set(vec![Int(1), Int(2)]));
    assert_eq!(py("set( )"), Set(vec![]));
    assert_eq!(py("{'a': None, 'b': True, (1, 2): False,}"), Dict(vec![
        (st("a"), None),
        (st("b"), Bool(true)),
        (Tuple(vec![Int(1), Int(2)]), Bool(false)),
    ]));
    assert_eq!(py(" [1, # comment\n 2] # end"), List(vec![Int(1), Int(2)]));
    let d = py("{'a': 1, 'a': 2}");
    assert_eq!(d.get("a"), Some(&Int(2)));
    assert_eq!(d.get("b"), Option::None);
    for bad in ["[1,,]", "[,]", "{1: 2, 3}", "{'a' 1}", "(1 2)", "[1", "{", "set(1)", "[1] 2", "{**{}}", "x"] {
        let e = py_err(bad);
        assert!(e.offset <= bad.len(), "{bad}: {e}");
    }
    let e = py_err("[1 2]");
    assert_eq!(e.offset, 3);
    assert!(e.message.contains("expected ',' or ']'"), "{e}");
    assert!(py_err("[1] 2").message.contains("after the end"));
    // Regression (differential fuzzing against ast.literal_eval): a top-level tuple
    // without parentheses.
    assert_eq!(py("1, 'a'"), Tuple(vec![Int(1), st("a")]));
    assert_eq!(py(" 1 ,\n"), Tuple(vec![Int(1)]));
    assert_eq!(py("b'\\x41'b'a','\\x41'"), Tuple(vec![Bytes(b"Aa".to_vec()), st("A")]));
    assert!(py_err("1,,").offset == 2);
    assert!(js_err("1, 2").message.contains("after the end"));
}

#[test]
fn npy_header() {
    let mut h = b"{'descr': '|O', 'fortran_order': False, 'shape': (6,), }".to_vec();
    h.extend(std::iter::repeat_n(b' ', 60));
    h.push(b'\n');
    let v = parse(&h, Dialect::Python).unwrap();
    assert_eq!(v.get("descr"), Some(&st("|O")));
    assert_eq!(v.get("fortran_order"), Some(&Bool(false)));
    assert_eq!(v.get("shape"), Some(&Tuple(vec![Int(6)])));
    let v = py("{'descr': '<f4', 'fortran_order': True, 'shape': (3, 4096), }");
    assert_eq!(v.get("shape"), Some(&Tuple(vec![Int(3), Int(4096)])));
}

#[test]
fn depth_limit_is_an_error() {
    let ok = "[".repeat(MAX_DEPTH) + &"]".repeat(MAX_DEPTH);
    assert!(parse(ok.as_bytes(), Dialect::Python).is_ok());
    assert!(parse(ok.as_bytes(), Dialect::Json).is_ok());
    for open in ["[", "(", "{1:", "{"] {
        let deep = open.repeat(100_000);
        let e = parse(deep.as_bytes(), Dialect::Python).unwrap_err();
        assert!(e.message.contains("nested deeper"), "{open}: {e}");
    }
    let e = parse("[".repeat(MAX_DEPTH + 1).as_bytes(), Dialect::Json).unwrap_err();
    assert!(e.message.contains("nested deeper"));
}

#[test]
fn json_strict() {
    assert_eq!(js(r#"{"a": [1, -0.5e2, true, false, null, "x\/\u00e9\ud83d\ude00\n"]}"#), Dict(vec![(
        st("a"),
        List(vec![Int(1), Float(-50.0), Bool(true), Bool(false), None, st("x/é😀\n")])
    )]));
    assert_eq!(js(" \t\r\n\"\" "), st(""));
    assert_eq!(js("-0"), Int(0));
    assert_eq!(js("18446744073709551616"), BigInt("18446744073709551616".into()));
    let bad = [
        "'a'", "[1,]", "{\"a\":1,}", "01", "1.", ".5", "+1", "0x10", "NaN", "Infinity", "-Infinity", "True",
        "None", "(1)", "{1: 2}", "\"\\x41\"", "\"\\'\"", "\"\t\"", "\"\\ud800\"", "\"\\udc00\"", "[1 2]",
        "1e", "--1", "\"a\" \"b\"", "{\"a\" 1}", "[1] x", "u\"a\"", "\"\\u12\"",
    ];
    for b in bad {
        let e = js_err(b);
        assert!(e.offset <= b.len(), "{b}: {e}");
    }
    assert!(js_err("NaN").message.contains("NaN"));
    assert!(js_err("-Infinity").message.contains("Infinity"));
    assert!(js_err("[1,]").message.contains("trailing comma"));
    let e = parse(b"[\"ab\xff\"]", Dialect::Json).unwrap_err();
    assert_eq!(e.offset, 4);
    assert!(e.message.contains("UTF-8"));
}

#[test]
fn dict_fields_fast_path() {
    let line = br#"{'asin': '0000031852', 'title': 'Girls\x27 Tutu', 'price': 3.17, 'skip': [1, {2: (3,)}], 'related': {'also_bought': ['B1', 'B2']}, 'asin': 'X'}"#;
    let mut p = Parser::new(Dialect::Python);
    let f = p.parse_dict_fields(line, &["asin", "title", "related", "missing"]).unwrap();
    assert_eq!(f[0].as_ref().unwrap().value, st("X"));
    assert_eq!(f[1].as_ref().unwrap().value, st("Girls' Tutu"));
    let rel = &f[2].as_ref().unwrap().value;
    assert_eq!(rel.get("also_bought"), Some(&List(vec![st("B1"), st("B2")])));
    assert!(f[3].is_none());
    let title_at = f[1].as_ref().unwrap().offset;
    assert_eq!(&line[title_at..title_at + 6], b"'Girls");
    // A malformed skipped value is still an error, at the same place parse reports.
    let bad = b"{'asin': 'A', 'skip': [1, 2 3]}";
    let e1 = p.parse_dict_fields(bad, &["asin"]).unwrap_err();
    let e2 = parse(bad, Dialect::Python).unwrap_err();
    assert_eq!(e1, e2);
    assert!(p.parse_dict_fields(b"[1]", &["asin"]).unwrap_err().message.contains("a dict"));
    // Regression (proptest campaign): a parenthesised dict is a dict to parse, so to this.
    let f = p.parse_dict_fields(b" ( ({'asin': 'P'}) ) ", &["asin"]).unwrap();
    assert_eq!(f[0].as_ref().unwrap().value, st("P"));
    assert_eq!(p.parse_dict_fields(b"({})", &["asin"]).unwrap(), vec![Option::None]);
    assert!(p.parse_dict_fields(b"({'asin': 'P'},)", &["asin"]).is_err());
    assert!(p.parse_dict_fields(b"({'asin': 'P'}", &["asin"]).is_err());
    assert!(p.parse_dict_fields(b"{} x", &["asin"]).is_err());
    let mut j = Parser::new(Dialect::Json);
    let f = j.parse_dict_fields(br#"{"asin": "A\u0042", "n": [1, 2]}"#, &["asin"]).unwrap();
    assert_eq!(f[0].as_ref().unwrap().value, st("AB"));
    assert!(j.parse_dict_fields(br#"{"asin": "A",}"#, &["asin"]).is_err());
}

#[test]
fn decode_fallback_keeps_every_byte() {
    assert_eq!(decode_utf8_or_latin1(b"a\xc3\xa9b"), "aéb");
    assert_eq!(decode_utf8_or_latin1(b"\xe2\x80"), "\u{e2}\u{80}");
    assert_eq!(decode_utf8_or_latin1(b"\xff\xc3\xa9\x80"), "ÿé\u{80}");
}
