"""Where a loader's time goes: per-stage CPU time per image for q2l-rs, torchvision's
``decode_jpeg`` + ``transforms.v2`` and the official PIL pipeline, on the same photographs.

``python -m q2l.bench data --profile``. For q2l-rs the stages are timed inside the loader
(:func:`q2l._native.data_profile`, summed over its threads) during a timed epoch. For the two
references each stage is timed image by image in this process (one thread), and their loaders'
rates come from a ``DataLoader`` with the same number of workers. "hand-over" is the rest of a
worker's time per image (``workers x wall time / images`` minus the stages): collating,
queues, inter-process copies, idle threads. The decode-bound limit is the rate the workers
would reach doing nothing but q2l-rs's full-image decode. For RandomResizedCrop, the column
"q2l, whole" is q2l-rs with ``dct_scaling=False``, which decodes every image at full size
instead of only the crop's rows and columns at the coarsest DCT scale that keeps its resolution.
"""

import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

from .. import _native, data
from ._measure import one_torch_thread, threads_line
from .data import FolderDataset, TensorFolderDataset, _dataset, _decode_rate, _rate, _recipes
from .photos import write_photos

ROWS = ("read", "decode", "crop + resize", "augment", "normalise + layout", "hand-over")


def _reference_stages(paths: list[str], transform, tensors: bool) -> dict[str, float]:
    """Seconds per image of each stage of a reference pipeline, one image at a time: the
    first transform crops and resizes, the last two normalise, the rest augment."""
    from io import BytesIO

    from PIL import Image
    from torchvision.io import ImageReadMode, decode_jpeg

    ops = transform.transforms
    first, middle, tail = ops[0], ops[1:-2], ops[-2:]

    def read(p: str):
        with open(p, "rb") as f:
            raw = f.read()
        return torch.frombuffer(bytearray(raw), dtype=torch.uint8) if tensors else BytesIO(raw)

    def decode(raw):
        if tensors:
            return decode_jpeg(raw, mode=ImageReadMode.RGB)
        with Image.open(raw) as im:
            return im.convert("RGB")

    def run(fns: list[Callable], x):
        for fn in fns:
            x = fn(x)
        return x

    stages: list[tuple[str, Callable]] = [
        ("read", read),
        ("decode", decode),
        ("crop + resize", first),
        ("augment", lambda x: run(middle, x)),
        ("normalise + layout", lambda x: run(tail, x)),
    ]
    total = dict.fromkeys(ROWS, 0.0)
    for i, p in enumerate([*paths[:4], *paths]):  # the first four warm up
        x = p
        for name, fn in stages:
            t0 = time.perf_counter()
            x = fn(x)
            if i >= 4:
                total[name] += time.perf_counter() - t0
    return {k: v / len(paths) for k, v in total.items()}


def _q2l_stages(loader: data.Loader, images: int, workers: int) -> tuple[dict[str, float], float]:
    """Seconds per image of each stage inside the q2l loader, and its rate, over one epoch."""
    sum(b[0].shape[0] for b in loader)  # warm-up
    _native.data_profile(on=True)
    t0 = time.perf_counter()
    count = sum(b[0].shape[0] for b in loader)
    wall = time.perf_counter() - t0
    got = dict(_native.data_profile(on=False))
    assert count == images
    stages = {
        "read": got["read"],
        "decode": got["decode"],
        "crop + resize": got["crop"] + got["resize"],
        "augment": got["augment"],
        "normalise + layout": got["layout"],
    }
    out = {k: v / images for k, v in stages.items()}
    out["hand-over"] = max(0.0, workers * wall / images - sum(out.values()))
    return out, images / wall


def main(quick: bool = False, workers: int = 0) -> int:
    n = 16 if quick else 128
    size, crop = (64, 32) if quick else (448, 224)
    workers = workers or len(os.sched_getaffinity(0))
    batch = 8 if quick else 32
    print(f"Loader profile: {n} photographs 640x480, batch {batch}, {workers} workers/threads.", threads_line())
    print("ms of CPU per image by stage (q2l-rs: summed over its threads; references: one image at a time).")
    with tempfile.TemporaryDirectory(prefix="q2l-bench-profile-") as tmp:
        paths = write_photos(Path(tmp), n, 640, 480)
        targets = torch.ones(n, 1)
        ours_ds = _dataset(Path(tmp), paths, targets, ["photo"])
        with one_torch_thread():
            decode = 1 / _decode_rate(paths, data.decode_image)  # q2l-rs's full decode
        limit = workers / decode
        print(f"q2l-rs full decode: {decode * 1e3:.2f} ms per image; decode-bound limit {limit:.0f} img/s")
        for recipe, (official_tf, tensor_tf, our_tf) in _recipes(size, crop).items():
            columns = {}
            for name, cls, tf, tensors in (
                ("official", FolderDataset, official_tf, False),
                ("torchvision", TensorFolderDataset, tensor_tf, True),
            ):
                with one_torch_thread():
                    stages = _reference_stages(paths, tf, tensors)
                loader = torch.utils.data.DataLoader(
                    cls(paths, targets, tf), batch_size=batch, num_workers=workers, persistent_workers=True
                )
                rate = _rate(loader, "cpu", 1 if quick else 2)
                del loader
                stages["hand-over"] = max(0.0, workers * 1 / rate - sum(stages.values()))
                columns[name] = (stages, rate)
            if "RandomResizedCrop" in recipe:
                # What decoding only the crop, at a DCT scale, saves: the same loader decoding whole.
                whole = ours_ds.with_decoding(dct_scaling=False)
                full = data.Loader(whole, our_tf, batch_size=batch, num_threads=workers)
                columns["q2l, whole"] = _q2l_stages(full, n, workers)
            ours = data.Loader(ours_ds, our_tf, batch_size=batch, num_threads=workers)
            columns["q2l-rs"] = _q2l_stages(ours, n, workers)
            print(f"\n{recipe}")
            print(f"{'stage':<20}" + "".join(f"{name:>13}" for name in columns))
            for row in ROWS:
                print(f"{row:<20}" + "".join(f"{stages[row] * 1e3:13.2f}" for stages, _ in columns.values()))
            print(f"{'total':<20}" + "".join(f"{sum(s.values()) * 1e3:13.2f}" for s, _ in columns.values()))
            print(f"{'img/s':<20}" + "".join(f"{rate:13.0f}" for _, rate in columns.values()))
            rate = columns["q2l-rs"][1]
            print(
                f"q2l-rs: {rate / columns['torchvision'][1]:.2f}x torchvision, "
                f"{rate / columns['official'][1]:.2f}x official, {rate / limit:.0%} of the decode-bound limit"
            )
    return 0
