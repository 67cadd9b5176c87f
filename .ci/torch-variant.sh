#!/usr/bin/env bash
# Builds q2l against a second PyTorch, torch 2.11.0 with tch/torch-sys 0.24, from
# the same source, and runs the loss, head, metrics and data tests there.
#
# Two tch versions cannot share one Cargo graph (both link `torch`), so the variant has its
# own manifests, .ci/torch-2.11.0/{Cargo,pyproject}.toml (tch 0.24, the feature `torch-2-11`,
# the torch pin), checked to differ from the project's in nothing else
# (.ci/variant_manifest.py). This copies the sources with them to target/torch-2.11.0/tree/,
# builds a wheel into target/torch-2.11.0/wheels/ (libtorch not bundled: it comes from the
# installed torch) and installs it into .venv-torch2.11.0.
set -euo pipefail
cd "$(dirname "$0")/.."
torch=${Q2L_TORCH_VARIANT:-2.11.0}
venv=.venv-torch$torch
dir=target/torch-$torch
python=${PYTHON:-python3}
uv=$PWD/.venv/bin/uv # .ci/setup.sh; it hard-links torch from its cache
if [ ! -x "$venv/bin/python" ]; then
    "$uv" venv -q --python "$("$python" -c 'import sys; print(sys.executable)')" "$venv"
fi
# shellcheck disable=SC1090
. "$venv/bin/activate"
"$uv" pip install -q "torch==$torch" numpy pillow pytest hypothesis scikit-learn "maturin>=1.5,<2" pip
# A copy of the sources with the variant's manifest (maturin wants python/ inside the project).
tree="$dir/tree"
rm -rf "$tree"
mkdir -p "$tree"
cp -r src python build.rs README.md LICENSE "$tree/"
find "$tree/python" \( -name '*.so' -o -name __pycache__ \) -prune -exec rm -rf {} +
python .ci/variant_manifest.py ".ci/torch-$torch"
cp ".ci/torch-$torch/Cargo.toml" ".ci/torch-$torch/pyproject.toml" "$tree/"
export LIBTORCH_USE_PYTORCH=1 CARGO_TARGET_DIR="$PWD/$dir/cargo"
rm -rf "$dir/wheels"
maturin build --release -q --auditwheel skip -m "$tree/Cargo.toml" -o "$dir/wheels"
python -m pip install -q --force-reinstall --no-deps "$dir"/wheels/q2l_rs-*.whl
# The Rust unit tests run against tch 0.26 (.ci/test.sh); building them again for tch 0.24
# would compile tch and the core a second time (about 5 minutes) to test the same code.
python -c "import q2l; assert q2l._native.TORCH_VERSION == '$torch', q2l._native.TORCH_VERSION; print('q2l built against torch', q2l._native.TORCH_VERSION)"
# That wheel under torch 2.13.0 (.venv) must fail on import with a message naming both versions.
cross=$(mktemp -d)
python -m pip install -q --no-deps --target "$cross" "$dir"/wheels/q2l_rs-*.whl
root=$PWD
if out=$(cd / && PYTHONPATH="$cross" "$root/.venv/bin/python" -c "import q2l" 2>&1); then
    echo "error: the torch $torch wheel imported under torch 2.13.0" >&2
    exit 1
fi
rm -rf "$cross"
echo "$out" | grep -q "built for torch $torch, but torch 2.13.0 is installed" ||
    { echo "error: unexpected import failure: $out" >&2; exit 1; }
echo "torch $torch wheel under torch 2.13.0: $(echo "$out" | tail -1)"
# From tests/, so that the checkout's python/ is not on the path: the wheel is tested.
cd tests && python -m pytest -q -p no:cacheprovider test_loss_asymmetric.py test_loss_single_label.py test_head.py test_metrics.py test_data_loader.py test_data_readers.py
