#!/usr/bin/env bash
# Runs every test: the Rust core's unit tests (no Python) and the Python suite against
# torch 2.13.0 (.venv), then the build and the loss/head/metrics tests against torch
# 2.11.0 (.ci/torch-variant.sh). CUDA variants run when torch sees a GPU, else skip.
set -euo pipefail
cd "$(dirname "$0")/.."
(
    # shellcheck disable=SC1091
    . .venv/bin/activate
    LIBTORCH_USE_PYTORCH=1 cargo test --release --lib
    python -m pytest tests -q -p no:cacheprovider
)
bash .ci/torch-variant.sh
