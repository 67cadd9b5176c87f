#!/usr/bin/env bash
# One environment of .ci/package-test.sh, which sets the Q2L_PKG_* variables: INSTALLER (pip
# or uv) installs q2l-rs by name from the local index into a fresh virtual environment of
# PYTHON, with a PATH free of build tools, and checks that the wheel was taken; then WHAT is
# "tests" (Q2L_PKG_TESTS from the copy of tests/ outside the checkout) or "smoke" (.ci/smoke.py).
# Usage: bash .ci/package-install.sh INSTALLER PYTHON WHAT
set -euo pipefail
installer=$1 py=$2 what=$3
root=$(cd "$(dirname "$0")/.." && pwd)
work=$Q2L_PKG_WORK
uv=$Q2L_PKG_UV
venv=$work/venv-$installer-$("$py" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
export PATH="$venv/bin:$work/bin"
case $installer in
pip)
    "$py" -m venv "$venv"
    python -m pip install -q --extra-index-url "$Q2L_PKG_INDEX" --report "$venv.json" q2l-rs
    python - "$venv.json" "$Q2L_PKG_WHEEL" <<'PY'
import json, os, sys

report, wheel = sys.argv[1:]
(item,) = [i for i in json.load(open(report))["install"] if i["metadata"]["name"] == "q2l-rs"]
url = item["download_info"]["url"]
assert url.startswith("http://127.0.0.1:") and url.endswith("/" + os.path.basename(wheel)), f"pip took {url}"
print(f"pip took {url}")
PY
    install() { python -m pip install -q "$@"; }
    ;;
uv)
    "$uv" venv -q --python "$py" "$venv"
    "$uv" pip install -q --python "$venv/bin/python" --extra-index-url "$Q2L_PKG_INDEX" --refresh-package q2l-rs q2l-rs
    install() { "$uv" pip install -q --python "$venv/bin/python" "$@"; }
    ;;
*)
    echo "usage: $0 pip|uv PYTHON tests|smoke" >&2
    exit 2
    ;;
esac
# The installed files are the wheel's (an sdist build would be tagged linux_x86_64, and could
# not compile here anyway), torch is the pinned one from the normal index, and every version
# string agrees.
(cd "$work" && python - "$Q2L_PKG_WHEEL" "$Q2L_PKG_VERSION" "$Q2L_PKG_TORCH" <<'PY'
import os, sys
from importlib import metadata

wheel, version, torch_pin = sys.argv[1:]
dist = metadata.distribution("q2l-rs")
tags = [line.split(": ", 1)[1] for line in dist.read_text("WHEEL").splitlines() if line.startswith("Tag: ")]
want = os.path.basename(wheel)[: -len(".whl")].split("-", 2)[2]
assert tags == [want], f"installed {tags}, not the wheel's {want}"
assert metadata.version("torch").split("+")[0] == torch_pin.split("==")[1], metadata.version("torch")
import q2l

assert q2l.__file__.startswith(sys.prefix), f"q2l imported from {q2l.__file__}"
assert q2l.__version__ == dist.version == version, (q2l.__version__, dist.version, version)
print(f"installed {dist.version} ({tags[0]}) on Python {sys.version.split()[0]} with torch {metadata.version('torch')}")
PY
)
[ "$(cd "$work" && q2l --version)" = "q2l $Q2L_PKG_VERSION" ]
if [ "$what" = smoke ]; then
    (cd "$work" && python "$root/.ci/smoke.py")
    exit 0
fi
# shellcheck disable=SC2086 # word lists
install "$Q2L_PKG_TORCH" $Q2L_PKG_TEST_DEPS
# torch.compile's default (inductor) needs a C++ compiler, which this PATH lacks on purpose.
no_compiler="not test_the_torch_twin_meta_and_compile and not test_grouped_q2l_gradients_compile_and_config"
# shellcheck disable=SC2086
(cd "$work/tests" && python -m pytest -q -p no:cacheprovider -n 2 -k "$no_compiler" $Q2L_PKG_TESTS)
