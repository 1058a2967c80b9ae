//! Property tests (proptest). `PROPTEST_CASES` sets the cases per property (default 256, a
//! few seconds for all of them; the long campaign in the report ran with far more).

use super::*;
use proptest::prelude::*;

mod render;
use render::{render_json, render_py, ws, Dice};

fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(256);
    ProptestConfig { cases, failure_persistence: None, ..ProptestConfig::default() }
}

fn big_int() -> impl Strategy<Value = Literal> {
    ("-?", "[1-9][0-9]{19,45}").prop_map(|(sign, digits)| Literal::BigInt(format!("{sign}{digits}")))
}

fn text() -> impl Strategy<Value = String> {
    prop_oneof![any::<String>(), "[a-z '\"\\\\\n\t]{0,12}", "[\\x00-\\x7f]{0,10}", "[\u{80}-\u{7ff}]{0,6}"]
}

fn leaf(json: bool) -> BoxedStrategy<Literal> {
    let float = any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(Literal::Float);
    let common = prop_oneof![
        Just(Literal::None),
        any::<bool>().prop_map(Literal::Bool),
        any::<i64>().prop_map(Literal::Int),
        (-1000i64..1000).prop_map(Literal::Int),
        big_int(),
        float,
        text().prop_map(Literal::Str),
    ];
    if json {
        common.boxed()
    } else {
        prop_oneof![8 => common, 1 => proptest::collection::vec(any::<u8>(), 0..12).prop_map(Literal::Bytes)].boxed()
    }
}

fn tree(json: bool) -> impl Strategy<Value = Literal> {
    leaf(json).prop_recursive(5, 48, 6, move |inner| {
        let list = proptest::collection::vec(inner.clone(), 0..6).prop_map(Literal::List);
        if json {
            let dict = proptest::collection::vec((text().prop_map(Literal::Str), inner), 0..5).prop_map(Literal::Dict);
            prop_oneof![list, dict].boxed()
        } else {
            let dict = proptest::collection::vec((leaf(false), inner.clone()), 0..5).prop_map(Literal::Dict);
            prop_oneof![
                list,
                proptest::collection::vec(inner.clone(), 0..6).prop_map(Literal::Tuple),
                proptest::collection::vec(leaf(false), 0..5).prop_map(Literal::Set),
                dict,
            ]
            .boxed()
        }
    })
}

/// Syntax fragments, so random sequences reach deep into the grammar.
const TOKENS: &[&str] = &[
    "[", "]", "{", "}", "(", ")", ",", ":", "'", "\"", "'''", "\"\"\"", "\\", "\\x", "\\u", "\\U", "\\N", "\\0",
    "u", "b", "r", "ur", "rb", "x", "0", "1", "9", "e", "E", ".", "-", "+", "_", "0x", "0o", "0b", "L", "j",
    "True", "None", "False", "true", "null", "NaN", "Infinity", "set()", "set", " ", "\n", "\r", "\t", "#",
    "\u{e9}", "\u{1f600}", "\\ud83d", "\\udc00", "\u{0}", "ff", "d8",
];

fn token_soup() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(proptest::sample::select(TOKENS), 0..40).prop_map(|t| t.concat().into_bytes())
}

/// Every entry point on `text`: no panic, offsets inside the text, and the fast paths
/// (validate, parse_dict_fields) agree with parse.
fn check_all(text: &[u8]) -> Result<(), TestCaseError> {
    for dialect in [Dialect::Python, Dialect::Json] {
        let full = parse(text, dialect);
        if let Err(e) = &full {
            prop_assert!(e.offset <= text.len(), "offset {} > len {}: {}", e.offset, text.len(), e.message);
            prop_assert!(!e.message.is_empty());
        }
        let checked = Parser::new(dialect).validate(text);
        prop_assert_eq!(checked.clone().err(), full.clone().err());
        let keys = ["asin", "a", ""];
        let fields = Parser::new(dialect).parse_dict_fields(text, &keys);
        match (&full, &fields) {
            (Ok(Literal::Dict(_)), Ok(f)) => {
                let whole = full.as_ref().unwrap();
                for (k, got) in keys.iter().zip(f) {
                    prop_assert_eq!(got.as_ref().map(|x| &x.value), whole.get(k));
                }
            }
            (Ok(Literal::Dict(_)), Err(e)) => prop_assert!(false, "parse_dict_fields failed on a dict: {e}"),
            // Both fail, not always at the same place: `{1, x` is a set to parse (which fails
            // at x) and a dict without ':' to parse_dict_fields (which fails at ',').
            (Err(_), Ok(_)) => prop_assert!(false, "parse_dict_fields accepted what parse rejects"),
            _ => {}
        }
        if let Err(e) = &fields {
            prop_assert!(e.offset <= text.len());
        }
        let mut p = Parser::new(dialect);
        let _ = crate::io::amazon::parse_record(&mut p, text, true);
    }
    Ok(())
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn arbitrary_bytes_never_panic(text in proptest::collection::vec(any::<u8>(), 0..256)) {
        check_all(&text)?;
    }

    #[test]
    fn token_soup_never_panics(text in token_soup()) {
        check_all(&text)?;
    }

    #[test]
    fn python_round_trip(v in tree(false), seed in any::<u64>()) {
        let mut d = Dice(seed | 1);
        let mut s = String::new();
        ws(&mut d, &mut s, Dialect::Python);
        render_py(&v, &mut d, &mut s);
        ws(&mut d, &mut s, Dialect::Python);
        let got = parse(s.as_bytes(), Dialect::Python);
        prop_assert_eq!(got.as_ref().ok(), Some(&v), "text {:?}: {:?}", s, got);
    }

    #[test]
    fn json_round_trip(v in tree(true), seed in any::<u64>()) {
        let mut d = Dice(seed | 1);
        let mut s = String::new();
        render_json(&v, &mut d, &mut s);
        let got = parse(s.as_bytes(), Dialect::Json);
        prop_assert_eq!(got.as_ref().ok(), Some(&v), "text {:?}: {:?}", s, got);
        // JSON is (nearly) Python: only true/false/null and \/ differ.
        if !s.contains("true") && !s.contains("false") && !s.contains("null") && !s.contains("\\/") {
            let py = parse(s.as_bytes(), Dialect::Python);
            prop_assert_eq!(py.as_ref().ok(), Some(&v), "as Python {:?}: {:?}", s, py);
        }
    }

    #[test]
    fn mutated_valid_text_never_panics(
        v in tree(false),
        seed in any::<u64>(),
        edits in proptest::collection::vec((any::<u16>(), any::<u8>(), 0u8..4), 1..6),
    ) {
        let mut d = Dice(seed | 1);
        let mut s = String::new();
        render_py(&v, &mut d, &mut s);
        let mut text = s.into_bytes();
        for (at, byte, op) in edits {
            let at = if text.is_empty() { 0 } else { at as usize % (text.len() + 1) };
            match op {
                0 => text.insert(at, byte),
                1 if at < text.len() => { text.remove(at); }
                2 if at < text.len() => text[at] = byte,
                _ => text.truncate(at),
            }
        }
        check_all(&text)?;
    }
}
