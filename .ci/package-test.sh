#!/usr/bin/env bash
# Installs q2l-rs from a package index as a user does, and tests what got installed:
#  1. serves DIST (what .ci/release.sh wrote) from pypiserver on 127.0.0.1;
#  2. in fresh environments whose PATH holds no cargo, rustc, C/C++ compiler, cmake or nasm,
#     `pip install q2l-rs` (CPython 3.10) and `uv pip install q2l-rs` (CPython 3.13) by name,
#     with the local index as an extra index and torch from the normal one; each must take the
#     manylinux wheel, never the sdist (pip's --report; the installed WHEEL's tag). Then the
#     tests of the loss, head, ML-Decoder, metrics, data pipeline, model folders and bad input
#     ($TESTS) run from a copy of tests/ outside the checkout, so that nothing missing from
#     the wheel is hidden by the source tree, and `q2l --version`, q2l.__version__ and the
#     wheel's version must agree. CPython 3.11 and 3.12 install the same abi3 wheel with uv
#     and run .ci/smoke.py;
#  3. the sdist on a machine with Rust but without cmake or nasm: pip must fail at once with
#     one line naming them.
# Interpreters: python3.X on PATH, in /usr/bin or pyenv's (the CI image's). uv can download managed
# Pythons only from GitHub, which the CI machines cannot reach, so a missing one is reported
# and skipped. Usage: bash .ci/package-test.sh DIST
set -euo pipefail
[ $# -eq 1 ] || { echo "usage: $0 DIST" >&2; exit 2; }
dist=$(realpath "$1")
cd "$(dirname "$0")/.."
# shellcheck source=.ci/lib.sh
. .ci/lib.sh
root=$PWD
tools=$root/.venv-release/bin # pypi-server (.ci/setup.sh)
TESTS="test_loss_asymmetric.py test_loss_single_label.py test_loss_partial.py test_head.py test_ml_decoder.py
test_metrics.py test_data_loader.py test_data_readers.py test_data_images.py test_pretrained.py test_bad_input.py"
TEST_DEPS="pytest pytest-xdist hypothesis pillow scikit-learn torchvision torchmetrics onnx onnxruntime onnxscript timm matplotlib"
work=$(mktemp -d "${TMPDIR:-/tmp}/q2l-package.XXXXXX")
server=
cleanup() {
    [ -z "$server" ] || kill "$server" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
wheel=$(ls "$dist"/q2l_rs-*-cp310-abi3-manylinux_*_x86_64.whl)
sdist=$(ls "$dist"/q2l_rs-*.tar.gz)
version=$(basename "$wheel" | cut -d- -f2)
torch_pin=$(grep -o '"torch==[^"]*"' pyproject.toml | tr -d '"')

port=$("$tools/python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$tools/pypi-server" run -i 127.0.0.1 -p "$port" --disable-fallback "$dist" >"$work/server.log" 2>&1 &
server=$!
index=http://127.0.0.1:$port/simple/
"$tools/python" - "$index" <<'PY'
import sys, time, urllib.request

for _ in range(100):
    try:
        urllib.request.urlopen(sys.argv[1] + "q2l-rs/", timeout=1).read()
        break
    except OSError:
        time.sleep(0.2)
else:
    sys.exit("error: the local index did not come up")
PY
echo "index: $index serves $(basename "$wheel") and $(basename "$sdist")"

# A PATH without build tools: links to every other program on PATH.
mkdir "$work/bin"
IFS=: read -ra dirs <<<"$PATH"
for d in "${dirs[@]}"; do
    case $d in */.cargo/bin | *rustup* | "$root"/.venv*) continue ;; esac
    for f in "$d"/*; do
        n=${f##*/}
        case $n in
        cargo* | rustc | rustdoc | rustup | rust-* | cmake | ctest | cpack | nasm | ndisasm | yasm) continue ;;
        cc | c++ | cpp | gcc* | g++* | clang* | *-linux-gnu-* | ld | ld.*) continue ;;
        esac
        [ -f "$f" ] && [ -x "$f" ] && [ ! -e "$work/bin/$n" ] && ln -s "$f" "$work/bin/$n"
    done
done
for tool in cargo rustc cmake nasm cc gcc c++; do
    if PATH="$work/bin" command -v "$tool" >/dev/null; then
        echo "error: $tool is still on the test PATH" >&2
        exit 1
    fi
done
cp -r tests "$work/tests"
find "$work/tests" -name __pycache__ -prune -exec rm -rf {} +

interpreter() { # VERSION: the path of a working CPython VERSION, or nothing
    local py
    for py in "$(command -v "python$1" || true)" /usr/bin/"python$1" \
        "${PYENV_ROOT:-$HOME/.pyenv}"/versions/"$1".*/bin/"python$1"; do
        [ -x "$py" ] && "$py" -c 'import sys; print(sys.executable)' 2>/dev/null && return
    done
    return 0
}

export Q2L_PKG_WORK=$work Q2L_PKG_INDEX=$index Q2L_PKG_WHEEL=$wheel Q2L_PKG_VERSION=$version \
    Q2L_PKG_UV="$root/.venv/bin/uv" Q2L_PKG_TORCH=$torch_pin Q2L_PKG_TESTS=$TESTS Q2L_PKG_TEST_DEPS=$TEST_DEPS
for spec in "pip 3.10 tests" "uv 3.13 tests" "uv 3.11 smoke" "uv 3.12 smoke"; do
    read -r installer pyver what <<<"$spec"
    py=$(interpreter "$pyver")
    if [ -z "$py" ]; then
        echo "package: no CPython $pyver on PATH; skipped $installer on $pyver" >&2
        continue
    fi
    step "package: $installer install + $what (CPython $pyver)" bash .ci/package-install.sh "$installer" "$py" "$what"
done

# The sdist where Rust is but cmake and nasm are not: one line, before torch is downloaded.
cargo_dir=$(dirname "$(command -v cargo)")
"$tools/python" -m venv "$work/venv-sdist"
start=$SECONDS
if PATH="$work/venv-sdist/bin:$cargo_dir:$work/bin" "$work/venv-sdist/bin/python" -m pip install \
    --no-cache-dir "$sdist" >"$work/sdist.log" 2>&1; then
    echo "error: the sdist built without cmake and nasm" >&2
    exit 1
fi
if ! line=$(grep -m1 "error: building q2l-rs from source needs cmake and nasm" "$work/sdist.log"); then
    cat "$work/sdist.log" >&2
    echo "error: the sdist's failure does not name cmake and nasm" >&2
    exit 1
fi
echo "sdist without cmake and nasm: failed after $((SECONDS - start)) s with: $(echo "$line" | sed 's/^ *//')"
