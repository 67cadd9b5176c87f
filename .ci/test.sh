#!/usr/bin/env bash
# Runs every check: the release files (.ci/release.sh, into target/dist); the lint gates
# (rustfmt, clippy, no import circle inside a room (.ci/import_cycles.py), ruff, mypy over
# python/q2l, and stubtest holding python/q2l/_native.pyi to the built module); the Rust
# core's unit tests (no Python) and the Python suite against torch 2.13.0 (.venv); the build
# and the loss/head/metrics/data tests against torch 2.11.0 (.ci/torch-variant.sh); then the
# release files installed from a local package index, with pip and with uv, into fresh
# environments where the tests run against the installed wheel (.ci/package-test.sh). CUDA
# variants run when torch sees a GPU, else skip. Needs .ci/setup.sh first.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=.ci/lib.sh
. .ci/lib.sh
# shellcheck disable=SC1091
. .venv/bin/activate
# The release files first, while target/ holds .ci/setup.sh's build of q2l: clippy re-runs q2l's
# build script, after which the release build would compile q2l again (7 s here, 127 s after).
step "release: sdist and manylinux abi3 wheel" bash .ci/release.sh target/dist
step "lint: rustfmt" cargo fmt --check
step "lint: clippy" env LIBTORCH_USE_PYTORCH=1 cargo clippy --release --all-targets --features python -- -D warnings
step "lint: import circles, ruff, mypy, stubtest" bash -c '
set -euo pipefail
python .ci/import_cycles.py
python .ci/variant_manifest.py .ci/torch-2.11.0
mypy
ruff check python tests .ci notebooks/experiments
ruff format --check python tests .ci notebooks/experiments
python -m mypy.stubtest q2l._native --mypy-config-file pyproject.toml'
# The unit-test binary has no RUNPATH (build.rs): it finds libtorch here.
torch_lib=$(python -c "import os, torch; print(os.path.join(os.path.dirname(torch.__file__), 'lib'))")
step "rust: cargo test" env LD_LIBRARY_PATH="$torch_lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" \
    LIBTORCH_USE_PYTORCH=1 cargo test --release --lib
# Two workers (pytest-xdist): 290 s instead of 336 s on 2 cores.
step "python: pytest (torch 2.13.0, in place)" python -m pytest tests -q -p no:cacheprovider -n 2
deactivate
step "torch 2.11.0 variant" bash .ci/torch-variant.sh
bash .ci/package-test.sh target/dist
