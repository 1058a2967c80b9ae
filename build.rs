// Link tweaks for libtorch (through tch). See ../shared/docs/build-notes.md.
//
// 1. rustc links with --as-needed, which would drop libtorch.so (and with it libtorch_cuda.so)
//    from DT_NEEDED because nothing references its symbols directly; CUDA kernels would then
//    never register. Force a NEEDED entry on libtorch.so, as tch's own build.rs does.
// 2. Builds without `extension-module` (`cargo test`) get an absolute rpath to the venv's
//    torch/lib, so test binaries run without LD_LIBRARY_PATH. The wheel gets no rpath:
//    `fashionrec/__init__.py` imports torch first, which loads libtorch.
// 3. The Python bindings are the `python` feature, off for `cargo test`: nothing links
//    libpython there. A build with `python` but not `extension-module` links it, and gets an
//    rpath to the interpreter's libpython too (else the loader could pick the system's).
fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux") {
        println!("cargo:rustc-link-arg=-Wl,--no-as-needed");
        println!("cargo:rustc-link-arg=-ltorch");
        println!("cargo:rustc-link-arg=-Wl,--as-needed");
    }
    if std::env::var_os("CARGO_FEATURE_EXTENSION_MODULE").is_some() {
        return;
    }
    if let Ok(dir) = std::env::var("DEP_TCH_LIBTORCH_LIB") {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{dir}");
    }
    libpython_rpath();
}

#[cfg(feature = "python")]
fn libpython_rpath() {
    if let Some(dir) = &pyo3_build_config::get().lib_dir {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{dir}");
    }
}

#[cfg(not(feature = "python"))]
fn libpython_rpath() {}
