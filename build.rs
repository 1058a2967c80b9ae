// Link tweaks for libtorch (through tch). See ../shared/docs/build-notes.md.
//
// 1. rustc links with --as-needed, which would drop libtorch.so (and with it libtorch_cuda.so)
//    from DT_NEEDED because nothing references its symbols directly; CUDA kernels would then
//    never register. Force a NEEDED entry on libtorch.so, as tch's own build.rs does.
// 2. Builds without `extension-module` (`cargo test`) get absolute rpaths to the venv's
//    torch/lib and to libpython, so test binaries run without LD_LIBRARY_PATH. The wheel gets
//    no rpath: `fashionrec/__init__.py` imports torch first, which loads libtorch.
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
    if let Some(dir) = &pyo3_build_config::get().lib_dir {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{dir}");
    }
}
