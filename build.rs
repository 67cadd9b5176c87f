//! Link flags for libtorch, as tch-rs's Python-extension example sets them.
//!
//! `--no-as-needed -ltorch` keeps libtorch (and with it libtorch_cuda) in the dependency list
//! even though no symbol of it is referenced directly; without it CUDA silently disappears.
//!
//! Where the linked libtorch is found at run time differs by target. The Python extension
//! (the cdylib) gets a RUNPATH relative to itself, `$ORIGIN/../torch/lib`: installed, it
//! sits in `site-packages/q2l/` beside `site-packages/torch/`, as torchvision's extensions
//! do, so a wheel carries no path of the machine that built it (and `import torch`, which
//! q2l does first, has loaded libtorch anyway). The Rust unit-test binary gets no RUNPATH
//! (cargo offers per-target link flags only for targets this package lacks, and a generic
//! one would reach the cdylib too): `.ci/test.sh` runs it with `LD_LIBRARY_PATH` set to the
//! torch it was built against, as tch-rs documents for Rust programs.
//!
//! It compiles src/buffer_pool.cpp (tensors over pooled memory, `at::from_blob` with a
//! deleter) against the headers of the libtorch torch-sys found (`DEP_TCH_LIBTORCH_LIB`). With
//! the `python` feature it also compiles src/python/tensor_bridge.cpp and links
//! libtorch_python, which exports the bridge's `THPVariable_Wrap`.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    if os == "linux" {
        println!("cargo:rustc-link-arg-cdylib=-Wl,-rpath,$ORIGIN/../torch/lib");
        println!("cargo:rustc-link-arg=-Wl,--no-as-needed");
        println!("cargo:rustc-link-arg=-ltorch");
    }
    compile("src/buffer_pool.cpp", "q2l_buffer_pool");
    if std::env::var_os("CARGO_FEATURE_PYTHON").is_some() {
        compile("src/python/tensor_bridge.cpp", "q2l_tensor_bridge");
        println!("cargo:rustc-link-lib=torch_python");
    }
}

/// Compiles `source` against the headers of the libtorch torch-sys found, as library `name`.
fn compile(source: &str, name: &str) {
    println!("cargo:rerun-if-changed={source}");
    let lib = std::path::PathBuf::from(
        std::env::var("DEP_TCH_LIBTORCH_LIB").expect("torch-sys reports its libtorch lib dir"),
    );
    let include = lib
        .parent()
        .expect("libtorch's lib dir has a parent")
        .join("include");
    // -isystem: warnings from torch's headers are torch's; the bridge's own still show.
    let api = include.join("torch/csrc/api/include");
    cc::Build::new()
        .cpp(true)
        .pic(true)
        .flag("-isystem")
        .flag(include.to_str().expect("libtorch's include dir is UTF-8"))
        .flag("-isystem")
        .flag(api.to_str().expect("libtorch's include dir is UTF-8"))
        .flag("-std=c++17")
        .flag("-Wall")
        .flag("-Wextra")
        // Every torch wheel since 2.7 uses the C++11 string ABI.
        .define("_GLIBCXX_USE_CXX11_ABI", "1")
        .file(source)
        .compile(name);
    println!("cargo:rustc-link-search=native={}", lib.display());
}
