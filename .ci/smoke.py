"""What a user's first minute with an installed q2l-rs does; run by .ci/package-test.sh in a
fresh virtual environment, outside the checkout. Exits non-zero on any failure."""

import os
import sys
import tempfile

import torch

import q2l

here = os.path.dirname(os.path.abspath(q2l.__file__))
assert "site-packages" in here, f"q2l was imported from {here}, not from the installed package"
torch_dir = os.path.dirname(os.path.abspath(torch.__file__))
with open("/proc/self/maps") as f:
    libtorch = {line.split()[-1] for line in f if "libtorch_cpu.so" in line}
assert libtorch and all(p.startswith(torch_dir) for p in libtorch), f"libtorch loaded from {libtorch}, not {torch_dir}"

torch.manual_seed(0)
model = q2l.Query2Label("tiny", num_classes=5, d_model=32, dim_feedforward=64)
images = torch.randn(2, 3, 64, 64)
targets = torch.tensor([[1, 0, 1, 0, 0], [0, 1, -1, 0, 1]], dtype=torch.float32)
loss = q2l.AsymmetricLoss.from_preset("query2label")(model(images), targets)
loss.backward()
assert torch.isfinite(loss) and all(p.grad is not None for p in model.head.parameters())
with tempfile.TemporaryDirectory() as folder:
    model.eval().save_pretrained(folder, classes=list("abcde"), img_size=64)
    again = q2l.Query2Label.from_pretrained(folder)
    torch.testing.assert_close(again(images), model(images))
print(
    f"q2l {q2l.__version__} from {here}: loss {loss.item():.4f}, libtorch from {sorted(libtorch)[0]}; simd "
    f"{q2l._native.simd_level()}"
)
sys.exit(0)
