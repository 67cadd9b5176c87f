//! Link flags for libtorch, as tch-rs's Python-extension example sets them.
//!
//! `--no-as-needed -ltorch` keeps libtorch (and with it libtorch_cuda) in the dependency list
//! even though no symbol of it is referenced directly; without it CUDA silently disappears.
//! The rpath lets the extension and the test binaries find the libtorch they were built against.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    if os == "linux" {
        if let Some(lib) = std::env::var_os("DEP_TCH_LIBTORCH_LIB") {
            println!("cargo:rustc-link-arg=-Wl,-rpath={}", lib.to_string_lossy());
        }
        println!("cargo:rustc-link-arg=-Wl,--no-as-needed");
        println!("cargo:rustc-link-arg=-ltorch");
    }
}
