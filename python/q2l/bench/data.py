"""Images per second: the q2l-rs loader against torchvision + PIL through DataLoader.

The images are JPEGs (quality 90, 640x480) of Fashion-MNIST scenes when Debian's
``dataset-fashion-mnist`` is installed, else of the generated scenes, written to a temporary
folder. The second row of each transform has q2l hand over uint8 batches (4x fewer bytes),
normalised later on the device with ``q2l.data.transforms.normalize_on_device``; torchvision
still produces float32 there. Both loaders read the same files with the same number of workers (q2l threads vs
DataLoader worker processes); each is warmed up with one epoch, then three epochs are timed
and the median rate is reported.
"""

import os
import random
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

from .. import data
from ._measure import threads_line


class CutoutPIL:
    """The official Query2Label CutoutPIL behaviour (one hole, random colour), for the reference."""

    def __init__(self, factor: float = 0.5):
        self.factor = factor

    def __call__(self, img):
        from PIL import ImageDraw

        w, h = img.size
        cw, ch = int(self.factor * w + 0.5), int(self.factor * h + 0.5)
        x, y = random.randint(0, w - 1), random.randint(0, h - 1)
        box = (max(x - cw // 2, 0), max(y - ch // 2, 0), min(x + cw // 2, w), min(y + ch // 2, h))
        ImageDraw.Draw(img).rectangle(box, fill=tuple(random.randint(0, 255) for _ in range(3)))
        return img


class FolderDataset(torch.utils.data.Dataset):
    """The usual PIL dataset: open, convert to RGB, transform."""

    def __init__(self, paths, targets, transform):
        self.paths, self.targets, self.transform = paths, targets, transform

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, i):
        from PIL import Image

        with Image.open(self.paths[i]) as im:
            img = im.convert("RGB")
        return self.transform(img), self.targets[i]


def write_images(folder: Path, n: int) -> tuple[list, torch.Tensor, str]:
    """Renders ``n`` scenes, upscales them to 640x480 and saves JPEG quality 90."""
    from PIL import Image

    try:
        src = data.Dataset.fashion_mnist_scenes(split="test", n=n, size=224, seed=1)
        what = "Fashion-MNIST scenes"
    except (OSError, ValueError):
        src = data.Dataset.scenes(n=n, size=224, seed=1)
        what = "generated scenes"
    paths = []
    for i in range(n):
        img, _ = src[i]
        im = Image.fromarray(img.permute(1, 2, 0).numpy()).resize((640, 480), Image.BILINEAR)
        p = folder / f"{i:05d}.jpg"
        im.save(p, quality=90)
        paths.append(str(p))
    return paths, src.targets, what


def _epoch(loader, device: str) -> int:
    count = 0
    for images, targets in loader:
        if device != "cpu":
            images = images.to(device, non_blocking=True)
            targets = targets.to(device, non_blocking=True)
        count += images.shape[0]
    if device != "cpu":
        torch.cuda.synchronize()
    return count


def _rate(loader, device: str, epochs: int = 3) -> float:
    """Median images per second over ``epochs`` timed epochs, after one warm-up epoch."""
    _epoch(loader, device)
    rates = []
    for _ in range(epochs):
        t0 = time.perf_counter()
        n = _epoch(loader, device)
        rates.append(n / (time.perf_counter() - t0))
    return float(sorted(rates)[len(rates) // 2])


def _decode_rate(paths, fn: Callable[[str], object]) -> float:
    for p in paths[:8]:
        fn(p)
    t0 = time.perf_counter()
    for p in paths:
        fn(p)
    return len(paths) / (time.perf_counter() - t0)


def main(quick: bool = False, device: str = "cpu", workers: int = 0) -> int:
    import torchvision.transforms as T
    from PIL import Image

    n = 48 if quick else 512
    size = 64 if quick else 448
    batch = 16 if quick else 32
    workers = workers or len(os.sched_getaffinity(0))
    pin = device != "cpu"
    with tempfile.TemporaryDirectory(prefix="q2l-bench-data-") as tmp:
        paths, targets, what = write_images(Path(tmp), n)
        listing = Path(tmp) / "list.csv"
        classes = data.FASHION_CLASSES if what.startswith("Fashion") else data.SCENE_CLASSES
        with open(listing, "w") as f:
            f.write("image,labels\n")
            for p, t in zip(paths, targets, strict=False):
                f.write(f"{os.path.basename(p)},{';'.join(classes[j] for j in range(len(classes)) if t[j] == 1)}\n")
        ours_ds = data.Dataset.from_list(listing, classes=classes)
        assert torch.equal(ours_ds.targets, targets)
        print(
            f"{n} JPEGs (640x480, quality 90) of {what}; output {size}x{size}, batch {batch}, "
            f"{workers} workers/threads, device {device}.",
            threads_line(),
        )

        def pil_decode(p):
            with Image.open(p) as im:
                return im.convert("RGB")

        pil = _decode_rate(paths, pil_decode)
        ours = _decode_rate(paths, data.decode_image)
        print(f"\ndecode only, one thread: PIL {pil:.0f} img/s, q2l {ours:.0f} img/s, {ours / pil:.2f}x")
        norm = T.Normalize(data.transforms.IMAGENET_MEAN, data.transforms.IMAGENET_STD)
        recipes = {
            "validation (resize + normalise)": (
                T.Compose([T.Resize((size, size)), T.ToTensor(), norm]),
                data.eval_transform(size),
            ),
            "training (resize + Cutout + RandAugment + normalise)": (
                T.Compose([T.Resize((size, size)), CutoutPIL(0.5), T.RandAugment(), T.ToTensor(), norm]),
                data.train_transform(size),
            ),
        }
        print(f"\n{'transform':<54} {'torchvision img/s':>18} {'q2l img/s':>10} {'speedup':>8}")
        for name, (tv_tf, our_tf) in recipes.items():
            tv_loader = torch.utils.data.DataLoader(
                FolderDataset(paths, targets, tv_tf),
                batch_size=batch,
                shuffle=True,
                num_workers=workers,
                persistent_workers=True,
                pin_memory=pin,
            )
            theirs = _rate(tv_loader, device, 1 if quick else 3)
            del tv_loader
            our_loader = data.Loader(
                ours_ds, our_tf, batch_size=batch, shuffle=True, num_threads=workers, pin_memory=pin
            )
            ours = _rate(our_loader, device, 1 if quick else 3)
            print(f"{name:<54} {theirs:18.0f} {ours:10.0f} {ours / theirs:7.2f}x")
            raw = data.transforms.Compose(our_tf.ops, output="uint8")
            raw_loader = data.Loader(ours_ds, raw, batch_size=batch, shuffle=True, num_threads=workers, pin_memory=pin)
            ours_u8 = _rate(raw_loader, device, 1 if quick else 3)
            print(
                f"{'  same, q2l output uint8 (normalise on the device)':<54} {theirs:18.0f} {ours_u8:10.0f}"
                f" {ours_u8 / theirs:7.2f}x"
            )
    return 0
