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

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    if os == "linux" {
        println!("cargo:rustc-link-arg-cdylib=-Wl,-rpath,$ORIGIN/../torch/lib");
        println!("cargo:rustc-link-arg=-Wl,--no-as-needed");
        println!("cargo:rustc-link-arg=-ltorch");
    }
}
