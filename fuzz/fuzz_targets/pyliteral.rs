//! The Python-literal / JSON parser on arbitrary bytes: no panic, no stack overflow, every
//! error located inside the input.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[allow(dead_code, unused_imports)]
#[path = "../../src/io/pyliteral/mod.rs"]
mod pyliteral;

use pyliteral::{parse, Dialect};

fuzz_target!(|data: &[u8]| {
    for dialect in [Dialect::Python, Dialect::Json] {
        if let Err(e) = parse(data, dialect) {
            assert!(e.offset <= data.len(), "{e}");
        }
    }
});
