#!/usr/bin/env bash
# Installs q2l-rs as users do and checks that it works there, each in a fresh virtual
# environment that is deleted afterwards (about 4.7 GB each with torch; pip's cache is reused):
#  1. the sdist (`maturin sdist`) with pip's default build isolation into a venv holding only
#     Python: the build gets torch==2.13.0 itself from [build-system] requires (a full release
#     build, several minutes on 2 cores);
#  2. a wheel (`maturin build --release` in .venv) into another venv with no cargo on PATH:
#     the extension's RUNPATH must not name the build machine, and libtorch must come from
#     that venv's own torch.
# Each runs .ci/smoke.py (loss + head forward/backward, a model folder round trip) and
# `q2l --help` from outside the checkout. Needs .ci/setup.sh first (for maturin and target/).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
python=${PYTHON:-python3}
work=$(mktemp -d "${TMPDIR:-/tmp}/q2l-package.XXXXXX")
trap 'rm -rf "$work"' EXIT

# shellcheck disable=SC1091
. .venv/bin/activate
maturin sdist -o "$work/dist" 2>&1 | tail -1
LIBTORCH_USE_PYTORCH=1 maturin build --release -q --auditwheel skip -o "$work/dist"
deactivate
sdist=$(ls "$work"/dist/q2l_rs-*.tar.gz)
wheel=$(ls "$work"/dist/q2l_rs-*.whl)

# The wheel's extension: no absolute RUNPATH, only one relative to the installed torch.
"$python" -m zipfile -e "$wheel" "$work/unpacked"
runpath=$(readelf -d "$work"/unpacked/q2l/_native*.so | grep -E 'RPATH|RUNPATH' || true)
echo "wheel RUNPATH: ${runpath:-none}"
if echo "$runpath" | grep -q '\[/'; then
    echo "error: the wheel's extension carries an absolute RUNPATH" >&2
    exit 1
fi
# libjpeg-turbo is linked in statically: no JPEG library among the extension's dependencies.
if readelf -d "$work"/unpacked/q2l/_native*.so | grep NEEDED | grep -Ei 'jpeg'; then
    echo "error: the wheel's extension needs a system JPEG library" >&2
    exit 1
fi

check() {  # venv label
    (cd "$work" && "$1/bin/python" "$root/.ci/smoke.py")
    "$1/bin/q2l" --help >/dev/null
    echo "$2: ok"
}

echo "sdist: pip install $(basename "$sdist") (isolated build)"
"$python" -m venv "$work/venv-sdist"
start=$SECONDS
"$work/venv-sdist/bin/python" -m pip install -q "$sdist"
echo "sdist: built and installed in $((SECONDS - start)) s"
check "$work/venv-sdist" sdist
rm -rf "$work/venv-sdist"

echo "wheel: pip install $(basename "$wheel") with no cargo on PATH"
"$python" -m venv "$work/venv-wheel"
nocargo=$(echo "$PATH" | tr ':' '\n' | grep -v -e '\.cargo' -e 'rustup' | paste -sd: -)
(
    export PATH="$work/venv-wheel/bin:$nocargo"
    if command -v cargo >/dev/null; then
        echo "error: cargo is still on PATH" >&2
        exit 1
    fi
    python -m pip install -q "$wheel"
    check "$work/venv-wheel" wheel
)
