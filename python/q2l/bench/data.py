"""Images per second: the q2l-rs loader against the official Query2Label pipeline and torchvision's.

Three image sets, written to a temporary folder: photograph-like JPEGs (``q2l.bench.photos``,
640x480 and 1024x768, 4:2:0, quality 85-95, a quarter progressive), and JPEGs (quality 90,
640x480) of Fashion-MNIST scenes when Debian's ``dataset-fashion-mnist`` is installed, else of
the generated scenes. Three recipes: validation at 448 (resize, normalise), Query2Label's
training recipe at 448 (resize, Cutout, RandAugment, normalise) and training at 224
(RandomResizedCrop, flip, normalise). Three pipelines read the same files with the same number
of workers (q2l threads vs DataLoader worker processes):

- official: PIL decoding and ``torchvision.transforms`` on PIL images (Query2Label's code);
- torchvision tensors: ``torchvision.io.decode_jpeg`` and ``transforms.v2`` on uint8 tensors;
- q2l-rs, handing over float32 batches, and uint8 batches normalised later on the device
  (``q2l.data.transforms.normalize_on_device``), 4x fewer bytes.

Each loader is warmed up with one epoch, then three rounds time one epoch of each of the four
loaders in turn (the machine's speed drifts between minutes); rates are medians over rounds and
ratios medians of each round's ratio. The one-thread decode rates of PIL, ``decode_jpeg`` and
q2l come first. The 640x480 photographs are then also read from WebDataset tar shards
(``q2l.data.write_shards``) and compared with the folder loader, rounds interleaved.
"""

import os
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

from .. import data
from ._measure import one_torch_thread, threads_line
from .photos import write_photos


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


class CutoutTensor(CutoutPIL):
    """The same hole on a uint8 ``[3, H, W]`` tensor, for the torchvision tensor pipeline."""

    def __call__(self, img):
        _, h, w = img.shape
        cw, ch = int(self.factor * w + 0.5), int(self.factor * h + 0.5)
        x, y = random.randint(0, w - 1), random.randint(0, h - 1)
        img = img.clone()
        fill = torch.tensor([random.randint(0, 255) for _ in range(3)], dtype=img.dtype)
        img[:, max(y - ch // 2, 0) : min(y + ch // 2, h), max(x - cw // 2, 0) : min(x + cw // 2, w)] = fill[
            :, None, None
        ]
        return img


class TensorFolderDataset(FolderDataset):
    """torchvision's tensor route: read the file, ``decode_jpeg`` to uint8, transform."""

    def __getitem__(self, i):
        from torchvision.io import ImageReadMode, decode_jpeg, read_file

        return self.transform(decode_jpeg(read_file(self.paths[i]), mode=ImageReadMode.RGB)), self.targets[i]


def write_scenes(folder: Path, n: int) -> tuple[list, torch.Tensor, str]:
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
        im = Image.fromarray(img.permute(1, 2, 0).numpy()).resize((640, 480), Image.Resampling.BILINEAR)
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


def _rate(loader, device: str, epochs: int = 3, warm_up: bool = True) -> float:
    """Median images per second over ``epochs`` timed epochs, after one warm-up epoch."""
    if warm_up:
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


def _recipes(size: int, crop: int):
    """Per recipe: (official transform, torchvision tensor transform, q2l transform)."""
    import torchvision.transforms as T
    from torchvision.transforms import v2

    mean, std = data.transforms.IMAGENET_MEAN, data.transforms.IMAGENET_STD
    norm = T.Normalize(mean, std)
    to_float = [v2.ToDtype(torch.float32, scale=True), v2.Normalize(mean, std)]
    square = (size, size)
    Q = data.transforms
    return {
        f"validation {size} (resize, normalise)": (
            T.Compose([T.Resize(square), T.ToTensor(), norm]),
            v2.Compose([v2.Resize(square, antialias=True), *to_float]),
            data.eval_transform(size),
        ),
        f"training {size} (resize, Cutout, RandAugment)": (
            T.Compose([T.Resize(square), CutoutPIL(0.5), T.RandAugment(), T.ToTensor(), norm]),
            v2.Compose([v2.Resize(square, antialias=True), CutoutTensor(0.5), v2.RandAugment(), *to_float]),
            data.train_transform(size),
        ),
        f"training {crop} (RandomResizedCrop, flip)": (
            T.Compose([T.RandomResizedCrop(crop), T.RandomHorizontalFlip(), T.ToTensor(), norm]),
            v2.Compose([v2.RandomResizedCrop(crop, antialias=True), v2.RandomHorizontalFlip(), *to_float]),
            Q.Compose([Q.RandomResizedCrop(crop), Q.HorizontalFlip()]),
        ),
    }


def _dataset(folder: Path, paths: list, targets: torch.Tensor, classes: list) -> data.Dataset:
    listing = folder / f"list-{len(list(folder.glob('list-*')))}.csv"
    with open(listing, "w") as f:
        f.write("image,labels\n")
        for p, t in zip(paths, targets, strict=True):
            f.write(f"{os.path.basename(p)},{';'.join(classes[j] for j in range(len(classes)) if t[j] == 1)}\n")
    ds = data.Dataset.from_list(listing, classes=classes)
    assert torch.equal(ds.targets, targets)
    return ds


def _bench_set(name, paths, targets, classes, folder, recipes, opts) -> None:
    from PIL import Image
    from torchvision.io import decode_jpeg, read_file

    batch, workers, device, epochs = opts["batch"], opts["workers"], opts["device"], opts["epochs"]
    pin = device != "cpu"
    ours_ds = _dataset(folder, paths, targets, classes)
    kb = sum(os.path.getsize(p) for p in paths) / len(paths) / 1024
    print(f"\n== {name}: {len(paths)} JPEGs, {kb:.0f} KB on average")

    def pil_decode(p):
        with Image.open(p) as im:
            return im.convert("RGB")

    with one_torch_thread():
        rates = [_decode_rate(paths, f) for f in (pil_decode, lambda p: decode_jpeg(read_file(p)), data.decode_image)]
    pil, tv, ours = rates
    print(
        f"decode only, one thread: PIL {pil:.0f} img/s, torchvision decode_jpeg {tv:.0f} img/s, q2l {ours:.0f} img/s"
        f" ({ours / pil:.2f}x PIL, {ours / tv:.2f}x decode_jpeg)"
    )
    print(
        f"{'transform':<46} {'official':>9} {'tv tensor':>9} {'q2l':>7} {'q2l u8':>7}"
        f" {'q2l/official':>12} {'q2l/tv':>7} {'u8/tv':>6}"
    )
    for recipe, (official_tf, tensor_tf, our_tf) in recipes.items():
        loaders: list[torch.utils.data.DataLoader | data.Loader] = [
            torch.utils.data.DataLoader(
                cls(paths, targets, tf),
                batch_size=batch,
                shuffle=True,
                num_workers=workers,
                persistent_workers=True,
                pin_memory=pin,
            )
            for cls, tf in ((FolderDataset, official_tf), (TensorFolderDataset, tensor_tf))
        ]
        for output in ("float32", "uint8"):
            tf = data.transforms.Compose(our_tf.ops, output=output)
            loaders.append(
                data.Loader(ours_ds, tf, batch_size=batch, shuffle=True, num_threads=workers, pin_memory=pin)
            )
        # Rounds of one epoch each, the four loaders in turn: this machine's speed drifts
        # between minutes, and a ratio is only as good as the two rates it compares.
        for loader in loaders:
            _epoch(loader, device)
        rounds = [[_rate(loader, device, 1, warm_up=False) for loader in loaders] for _ in range(max(3, epochs))]
        del loaders
        official, tensor, ours, ours_u8 = (statistics.median([r[k] for r in rounds]) for k in range(4))
        vs_official, vs_tv, u8_vs_tv = (
            statistics.median([r[a] / r[b] for r in rounds]) for a, b in ((2, 0), (2, 1), (3, 1))
        )
        print(
            f"{recipe:<46} {official:9.0f} {tensor:9.0f} {ours:7.0f} {ours_u8:7.0f}"
            f" {vs_official:11.2f}x {vs_tv:6.2f}x {u8_vs_tv:5.2f}x"
        )


def _bench_shards(paths, targets, classes, folder, recipes, opts) -> None:
    """The same images read from tar shards and from a folder, rounds interleaved."""
    folder_ds = _dataset(folder, paths, targets, classes)
    shard_paths = data.write_shards(folder_ds, folder / "shards", samples_per_shard=64)
    shards_ds = data.Dataset.shards(shard_paths)
    assert torch.equal(shards_ds.targets, folder_ds.targets)
    print(f"\n== the same {len(paths)} photographs from {len(shard_paths)} tar shard(s) vs the folder")
    print(f"{'transform':<46} {'folder':>7} {'shards':>7} {'shards/folder (median, range)':>30}")
    for recipe in list(recipes)[::2]:
        tf = recipes[recipe][2]
        loaders = [
            data.Loader(d, tf, batch_size=opts["batch"], shuffle=True, num_threads=opts["workers"])
            for d in (folder_ds, shards_ds)
        ]
        rounds = [[_rate(loader, opts["device"], 1) for loader in loaders] for _ in range(max(3, opts["epochs"]))]
        ratios = sorted(b / a for a, b in rounds)
        a, b = (sorted(r[k] for r in rounds)[len(rounds) // 2] for k in (0, 1))
        print(f"{recipe:<46} {a:7.0f} {b:7.0f} {ratios[len(ratios) // 2]:>14.2f}x ({ratios[0]:.2f}-{ratios[-1]:.2f})")


def main(quick: bool = False, device: str = "cpu", workers: int = 0) -> int:
    n = 24 if quick else 256
    size, crop = (64, 32) if quick else (448, 224)
    opts = {
        "batch": 8 if quick else 32,
        "workers": workers or len(os.sched_getaffinity(0)),
        "device": device,
        "epochs": 1 if quick else 3,
    }
    print(
        f"Loader benchmark: batch {opts['batch']}, {opts['workers']} workers/threads, device {device}.",
        threads_line(),
    )
    recipes = _recipes(size, crop)
    with tempfile.TemporaryDirectory(prefix="q2l-bench-data-") as tmp:
        folder = Path(tmp)
        photo_classes = ["photo"]
        for width, height in ((640, 480), (1024, 768)):
            paths = write_photos(folder, n, width, height)
            targets = torch.ones(n, 1)
            _bench_set(f"photographs {width}x{height}", paths, targets, photo_classes, folder, recipes, opts)
            if width == 640:
                _bench_shards(paths, targets, photo_classes, folder, recipes, opts)
        paths, targets, what = write_scenes(folder, n)
        classes = data.FASHION_CLASSES if what.startswith("Fashion") else data.SCENE_CLASSES
        _bench_set(f"{what} 640x480, quality 90", paths, targets, classes, folder, recipes, opts)
    return 0
