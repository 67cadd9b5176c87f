#!/usr/bin/env bash
# Runs every check: the lint gates (rustfmt, clippy, ruff, and mypy's stubtest holding
# python/q2l/_native.pyi to the built module), the Rust core's unit tests (no Python) and
# the Python suite against torch 2.13.0 (.venv), then the build and the loss/head/metrics
# tests against torch 2.11.0 (.ci/torch-variant.sh), then installs from the sdist and from
# a wheel into fresh environments (.ci/package-test.sh). CUDA variants run when torch sees
# a GPU, else skip.
set -euo pipefail
cd "$(dirname "$0")/.."
(
    # shellcheck disable=SC1091
    . .venv/bin/activate
    cargo fmt --check
    LIBTORCH_USE_PYTORCH=1 cargo clippy --release --all-targets --features python -- -D warnings
    ruff check python tests .ci
    ruff format --check python tests .ci
    python -m mypy.stubtest q2l._native --mypy-config-file pyproject.toml
    # The unit-test binary has no RUNPATH (build.rs): it finds libtorch here.
    torch_lib=$(python -c "import os, torch; print(os.path.join(os.path.dirname(torch.__file__), 'lib'))")
    LD_LIBRARY_PATH="$torch_lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" LIBTORCH_USE_PYTORCH=1 cargo test --release --lib
    python -m pytest tests -q -p no:cacheprovider
)
bash .ci/torch-variant.sh
bash .ci/package-test.sh
