#!/usr/bin/env bash
# Runs every test: the Rust core's unit tests (no Python) and the Python suite.
# CUDA variants run when torch sees a GPU and are skipped otherwise.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck disable=SC1091
. .venv/bin/activate
LIBTORCH_USE_PYTORCH=1 cargo test --release --lib
python -m pytest tests -q -p no:cacheprovider
