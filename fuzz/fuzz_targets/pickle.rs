//! The pickle machine and the numpy interpretation on arbitrary bytes: no panic, no hang,
//! every error located inside the input.
#![no_main]

use libfuzzer_sys::fuzz_target;

// The parsers' own files; they refer to each other as `super::pickle` etc.
#[allow(dead_code)]
#[path = "../../src/io/npy.rs"]
mod npy;
#[allow(dead_code)]
#[path = "../../src/io/pickle.rs"]
mod pickle;
#[allow(dead_code, unused_imports)]
#[path = "../../src/io/pyliteral/mod.rs"]
mod pyliteral;

use pickle::Pickle;

fuzz_target!(|data: &[u8]| {
    // As a whole .npy file, then as a bare pickle.
    if let Ok(h) = npy::read_header(data) {
        assert!(h.data_offset <= data.len());
    }
    match Pickle::parse(data, 0) {
        Ok(p) => {
            assert!(p.end as usize <= data.len());
            // What the DVBPR reader asks of a parsed pickle.
            if let Some(Ok(a)) = npy::array_of(&p, p.root) {
                let _ = a.numbers();
            }
            let _ = npy::int_of(&p, p.root);
            let _ = p.type_name(p.root);
            if let Some(items) = p.items(p.root) {
                for &v in items.iter().take(64) {
                    let _ = p.get(v, "productid");
                    let _ = p.bytes(v);
                    let _ = npy::int_of(&p, v);
                    let _ = npy::array_of(&p, v).map(|a| a.map(|a| a.numbers()));
                }
            }
        }
        Err(e) => assert!(e.offset as usize <= data.len(), "{e}"),
    }
});
