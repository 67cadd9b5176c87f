"""What a user's first minute with an installed q2l-rs does; run by .ci/package-test.sh in a
fresh virtual environment, outside the checkout. Exits non-zero on any failure."""

import base64
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
    # A 16x16 JPEG of one colour (PIL decodes it to (200, 30, 30)): libjpeg-turbo is linked
    # into the extension, so decoding needs no JPEG library here.
    jpeg = os.path.join(folder, "red.jpg")
    with open(jpeg, "wb") as f:
        f.write(
            base64.b64decode(
                "/9j/4AAQSkZJRgABAQAAAQABAAD/2wBDAAIBAQEBAQIBAQECAgICAgQDAgICAgUEBAMEBgUGBgYFBgYGBwkIBgcJBwYGCAsICQoKCgoKBggLDAsKDAkKCgr/2wBDAQICAgICAgUDAwUKBwYHCgoKCgoKCgoKCgoKCgoKCgoKCgoKCgoKCgoKCgoKCgoKCgoKCgoKCgoKCgoKCgoKCgr/wAARCAAQABADAREAAhEBAxEB/8QAHwAAAQUBAQEBAQEAAAAAAAAAAAECAwQFBgcICQoL/8QAtRAAAgEDAwIEAwUFBAQAAAF9AQIDAAQRBRIhMUEGE1FhByJxFDKBkaEII0KxwRVS0fAkM2JyggkKFhcYGRolJicoKSo0NTY3ODk6Q0RFRkdISUpTVFVWV1hZWmNkZWZnaGlqc3R1dnd4eXqDhIWGh4iJipKTlJWWl5iZmqKjpKWmp6ipqrKztLW2t7i5usLDxMXGx8jJytLT1NXW19jZ2uHi4+Tl5ufo6erx8vP09fb3+Pn6/8QAHwEAAwEBAQEBAQEBAQAAAAAAAAECAwQFBgcICQoL/8QAtREAAgECBAQDBAcFBAQAAQJ3AAECAxEEBSExBhJBUQdhcRMiMoEIFEKRobHBCSMzUvAVYnLRChYkNOEl8RcYGRomJygpKjU2Nzg5OkNERUZHSElKU1RVVldYWVpjZGVmZ2hpanN0dXZ3eHl6goOEhYaHiImKkpOUlZaXmJmaoqOkpaanqKmqsrO0tba3uLm6wsPExcbHyMnK0tPU1dbX2Nna4uPk5ebn6Onq8vP09fb3+Pn6/9oADAMBAAIRAxEAPwD5Dr8LP9VAoAKACgD/2Q=="
            )
        )
    pixels = q2l.data.decode_image(jpeg)
    assert pixels.shape == (3, 16, 16) and pixels[:, 0, 0].tolist() == [200, 30, 30], pixels[:, 0, 0]
print(
    f"q2l {q2l.__version__} from {here}: loss {loss.item():.4f}, libtorch from {sorted(libtorch)[0]}; simd "
    f"{q2l._native.simd_level()}"
)
sys.exit(0)
