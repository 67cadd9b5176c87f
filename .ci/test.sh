#!/usr/bin/env bash
# Runs every test: the Rust core's unit tests (no Python) and the Python suite against
# torch 2.13.0 (.venv), then the build and the loss/head/metrics tests against torch
# 2.11.0 (.ci/torch-variant.sh), then installs from the sdist and from a wheel into fresh
# environments (.ci/package-test.sh). CUDA variants run when torch sees a GPU, else skip.
set -euo pipefail
cd "$(dirname "$0")/.."
(
    # shellcheck disable=SC1091
    . .venv/bin/activate
    # The unit-test binary has no RUNPATH (build.rs): it finds libtorch here.
    torch_lib=$(python -c "import os, torch; print(os.path.join(os.path.dirname(torch.__file__), 'lib'))")
    LD_LIBRARY_PATH="$torch_lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" LIBTORCH_USE_PYTORCH=1 cargo test --release --lib
    python -m pytest tests -q -p no:cacheprovider
)
bash .ci/torch-variant.sh
bash .ci/package-test.sh
