#!/usr/bin/env bash
# Fuzzes q2l's decoders and parsers with libFuzzer (cargo-fuzz) under AddressSanitizer, which
# also instruments the vendored libjpeg-turbo.
#
#   bash .ci/fuzz.sh [SECONDS_PER_TARGET] [TARGET ...]
#
# The short run is a minute per target (the default); before a release, run each for an hour.
# Targets (fuzz/fuzz_targets/harness.rs): jpeg png npy idx list coco voc shards. Each starts from its
# seeds in fuzz/corpus/<target>/ and keeps what it learns in target/fuzz-corpus/<target>/ (not
# committed). A crash leaves its input in fuzz/artifacts/<target>/ and stops the script: once
# fixed, copy the input into fuzz/corpus/<target>/, where `cargo test` runs it every time.
# Needs .ci/setup.sh first (the venv's torch) and a nightly Rust toolchain; installs cargo-fuzz
# if it is missing. The first build takes about 8 minutes on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(jpeg png npy idx list coco voc shards)
# shellcheck disable=SC1091
. .venv/bin/activate
command -v cargo-fuzz >/dev/null || cargo install -q --locked cargo-fuzz
torch_lib=$(python -c "import os, torch; print(os.path.join(os.path.dirname(torch.__file__), 'lib'))")
export LIBTORCH_USE_PYTORCH=1
cargo +nightly fuzz build -O
for target in "${targets[@]}"; do
    mkdir -p "target/fuzz-corpus/$target"
    echo "== $target: $seconds s"
    # -rss_limit_mb: an input that makes the decoder allocate past it is a finding too.
    LD_LIBRARY_PATH="$torch_lib" cargo +nightly fuzz run -O "$target" "target/fuzz-corpus/$target" \
        "fuzz/corpus/$target" -- -max_total_time="$seconds" -rss_limit_mb=4096 -timeout=20 -print_final_stats=1 2>&1 |
        grep -E '^(stat::number_of_executed_units|stat::peak_rss_mb|Done|==[0-9]+==ERROR|SUMMARY|.*Test unit written)' || true
    if [ -n "$(ls -A "fuzz/artifacts/$target" 2>/dev/null)" ]; then
        echo "error: $target found a crash: fuzz/artifacts/$target/" >&2
        exit 1
    fi
done
