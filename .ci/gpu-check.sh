#!/usr/bin/env bash
# The prepared GPU check, run on the device machine (Python 3.12, torch 2.11.0, no network)
# from the repository root with `carry: ["target/torch-2.11.0/wheels"]` after
# `bash .ci/torch-variant.sh` here. Installs that wheel offline (libtorch comes from the
# machine's torch), runs every test with a CUDA variant, then the loss and head benchmarks
# on CUDA, the loader into GPU memory and the metrics from CUDA tensors; logs go to $OUT. Budget: under 8 minutes on an H100.
set -uo pipefail
out=${OUT:-/tmp/q2l-gpu}
mkdir -p "$out"
nvidia-smi --query-gpu=name,memory.total --format=csv | tee "$out/gpu.txt"
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/q2l-site target/torch-2.11.0/wheels/q2l_rs-*.whl || exit 1
export PYTHONPATH=/tmp/q2l-site PYTHONUNBUFFERED=1
python3 -c "import torch, q2l; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), 'q2l built for', q2l._native.TORCH_VERSION)" | tee -a "$out/gpu.txt"
cd tests && timeout 240 python3 -m pytest -q -p no:cacheprovider -rs \
    test_loss_asymmetric.py test_loss_single_label.py test_head.py test_metrics.py test_data_loader.py 2>&1 | tee "$out/tests.log"
cd ..
timeout 150 python3 -m q2l.bench loss --device cuda 2>&1 | tee "$out/bench_loss.txt"
timeout 200 python3 -m q2l.bench head --device cuda 2>&1 | tee "$out/bench_head.txt"
timeout 90 python3 -m q2l.bench data --device cuda --workers 4 2>&1 | tee "$out/bench_data.txt"
timeout 60 python3 -m q2l.bench metrics --device cuda 2>&1 | tee "$out/bench_metrics.txt"
