"""Multi-label datasets: annotation readers run in Rust, images read on demand.

Every dataset has a label table (:attr:`Dataset.classes`) and a target matrix
(:attr:`Dataset.targets`) with 1 (present), 0 (absent) and -1 (unknown, ignored by
:class:`q2l.AsymmetricLoss` and :mod:`q2l.metrics`).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Union

import numpy as np
import torch

from .. import _native
from .._options import Options
from .._validate import float_arg, int_arg
from ..errors import InvalidArgumentError, InvalidTypeError

PathLike = Union[str, "os.PathLike[str]"]

#: PIL's decompression-bomb limit on ``width * height``, the default of every decoder here.
DEFAULT_MAX_PIXELS: int = _native.DEFAULT_MAX_PIXELS

#: How image files are decoded, declared once in Rust (``DecodeOptions`` in
#: ``src/data/decode.rs``): defaults and checks.
DECODE = Options("decode")


class RepairedImageWarning(UserWarning):
    """A damaged image (a truncated JPEG) decoded anyway because ``strict=False`` asked for it."""


#: Where Debian's ``dataset-fashion-mnist`` package puts the files.
FASHION_MNIST_ROOT = Path("/usr/share/datasets/fashion-mnist")

SCENE_CLASSES: tuple[str, ...] = tuple(_native.SCENE_CLASSES)
FASHION_CLASSES: tuple[str, ...] = tuple(_native.FASHION_CLASSES)
VOC_CLASSES: tuple[str, ...] = tuple(_native.VOC_CLASSES)


class Dataset:
    """A multi-label image dataset; build one with the class methods.

    Indexing gives ``(image, target)``: uint8 ``[3, H, W]`` and float32 ``[C]``.
    """

    def __init__(self, native, description: str):
        self._native = native
        self.description = description
        self._targets: torch.Tensor | None = None

    # Readers -------------------------------------------------------------------------------

    @classmethod
    def coco(cls, annotations: PathLike, image_dir: PathLike, annotated_only: bool = False) -> Dataset:
        """MS-COCO 2014/2017 from an ``instances_*.json`` file.

        Args:
            annotations: the instances JSON.
            image_dir: the folder holding its images (e.g. ``val2014/``).
            annotated_only: ``False`` keeps every image (Query2Label's protocol, 40,504 in
                val2014); ``True`` keeps images with an annotation (ASL's, 40,137).
        """
        return cls(
            _native.dataset_coco(
                annotations=os.fsdecode(annotations), image_dir=os.fsdecode(image_dir), annotated_only=annotated_only
            ),
            f"COCO {annotations}",
        )

    @classmethod
    def voc(cls, root: PathLike, split: str = "trainval", difficult: str = "ignore") -> Dataset:
        """Pascal VOC 2007/2012 from a ``VOC20xx`` folder.

        Args:
            root: the folder holding ``ImageSets/``, ``Annotations/`` and ``JPEGImages/``.
            split: a file of ``ImageSets/Main`` (``train``, ``val``, ``trainval``, ``test``).
            difficult: a class present only as ``difficult`` objects becomes ``"ignore"`` (-1),
                ``"positive"`` (1) or ``"negative"`` (0).
        """
        return cls(_native.dataset_voc(root=os.fsdecode(root), split=split, difficult=difficult), f"VOC {root} {split}")

    @classmethod
    def nus_wide(cls, root: PathLike, split: str = "train", image_dir: PathLike | None = None) -> Dataset:
        """NUS-WIDE's 81 concepts as released (``Concepts81.txt``, ``ImageList/``, ``TrainTestLabels/``).

        Args:
            root: the release folder.
            split: ``"train"`` or ``"test"``.
            image_dir: where the image list's paths live (default ``root/Flickr``).
        """
        images = os.fsdecode(image_dir) if image_dir is not None else os.fsdecode(Path(root) / "Flickr")
        return cls(
            _native.dataset_nus_wide(root=os.fsdecode(root), split=split, image_dir=images), f"NUS-WIDE {root} {split}"
        )

    @classmethod
    def open_images(cls, labels_csv: PathLike, image_dir: PathLike, classes_csv: PathLike | None = None) -> Dataset:
        """Open Images style image-level labels (``ImageID, LabelName, Confidence``).

        Confidence 1 is positive, 0 a verified negative, anything unmentioned unknown (-1).
        With ``classes_csv`` (``LabelName,DisplayName``) the label table is its classes, by
        display name, and other labels are errors.
        """
        cc = os.fsdecode(classes_csv) if classes_csv is not None else None
        return cls(
            _native.dataset_open_images(
                labels_csv=os.fsdecode(labels_csv), image_dir=os.fsdecode(image_dir), classes_csv=cc
            ),
            f"Open Images {labels_csv}",
        )

    @classmethod
    def from_list(
        cls, path: PathLike, image_root: PathLike | None = None, classes: Sequence[str] | None = None, sep: str = ";"
    ) -> Dataset:
        """Your own data from a ``.csv`` or ``.jsonl`` list.

        CSV: a header with an ``image`` (or ``path``) column and a ``labels`` column whose
        names are separated by ``sep``, optionally an ``unknown`` column. JSON Lines:
        ``{"image": "a.jpg", "labels": ["cat"], "unknown": []}``.

        Args:
            path: the list file.
            image_root: folder that relative paths start from (default: the list's folder).
            classes: the label table; names outside it are errors. Default: every name, sorted.
            sep: separator of names inside a CSV field.
        """
        root = os.fsdecode(image_root) if image_root is not None else os.fsdecode(Path(path).parent)
        return cls(
            _native.dataset_list(
                path=os.fsdecode(path),
                image_root=root,
                classes=list(classes) if classes is not None else None,
                sep=sep,
            ),
            f"list {path}",
        )

    @classmethod
    def shards(
        cls,
        urls: PathLike | Sequence[PathLike],
        classes: Sequence[str] | PathLike | None = None,
        on_error: str = "raise",
    ) -> Dataset:
        """WebDataset tar shards, read in place (never unpacked).

        Each sample is a group of members sharing a key: an image (``key.jpg``, ``.jpeg`` or
        ``.png``) and its labels, ``key.cls`` (class indices, separated by spaces or commas)
        or ``key.json`` (a list of labels, or ``{"labels": [...], "unknown": [...]}``, each
        label a class name or index). Opening reads every tar header and label member once;
        :func:`write_shards` makes shards from any dataset. :class:`~q2l.data.Loader` splits
        the shards over ranks and shuffles them with a seeded buffer (``shuffle_buffer``).

        Args:
            urls: shard paths, each may hold brace lists such as ``"train-{000..015}.tar"``
                or ``"{train,extra}.tar"``.
            classes: the label table: a list of names, or a text file of them (one per
                line). Default: ``classes.txt`` beside the first shard (as
                :func:`write_shards` leaves it).
            on_error: ``"raise"``: a sample without an image or labels, a label outside the
                table, or a truncated or damaged shard raises an error naming the shard and
                member. ``"skip"``: those samples (and the rest of a damaged shard) are left
                out and listed in :attr:`skipped`.
        """
        if isinstance(urls, (str, os.PathLike)):
            urls = [urls]
        if not isinstance(urls, Sequence) or not urls or not all(isinstance(u, (str, os.PathLike)) for u in urls):
            raise InvalidTypeError(f"urls must be a path or a non-empty list of paths, got {urls!r}")
        patterns = [os.fsdecode(u) for u in urls]
        if classes is None:
            first = expand_shards(patterns[0])[0]
            classes = Path(first).parent / "classes.txt"
            if not classes.is_file():
                raise InvalidArgumentError(
                    f"no classes given and no {classes} beside the first shard: pass classes= (a list of "
                    "names or a file of them, one per line)"
                )
        if isinstance(classes, (str, os.PathLike)):
            classes = _native.read_class_file(path=os.fsdecode(classes))
        native = _native.dataset_shards(patterns=patterns, classes=list(classes), on_error=on_error)
        return cls(native, f"shards {', '.join(patterns)}")

    @classmethod
    def from_arrays(cls, images, targets, classes: Sequence[str]) -> Dataset:
        """In-memory images: uint8 ``[N, H, W]`` or ``[N, H, W, 3]`` (numpy or torch) and ``[N, C]`` targets."""
        # numpy arrays are read in place (any strides) and tensors from the CPU; anything
        # else (nested lists) becomes a numpy array first.
        images, targets = (a if isinstance(a, (np.ndarray, torch.Tensor)) else np.asarray(a) for a in (images, targets))
        return cls(
            _native.dataset_memory(images=images, targets=targets, classes=list(classes)),
            f"arrays {tuple(images.shape)}",
        )

    @classmethod
    def scenes(
        cls,
        n: int = 2000,
        size: int = 64,
        seed: int = 0,
        split: str = "train",
        min_objects: int = 1,
        max_objects: int = 4,
    ) -> Dataset:
        """Generated scenes: 1-4 textured shapes of :data:`SCENE_CLASSES` on cluttered backgrounds.

        Rendered in Rust on demand, deterministic per ``(seed, split, index)``; ``"train"``
        and ``"val"`` draw from disjoint streams. :meth:`objects` gives each shape's box.
        """
        # Signs and types here; the core checks the ranges (size >= 16, 1 <= min <= max <= 8).
        n, size, lo, hi = (
            int_arg(k, v)
            for k, v in (("n", n), ("size", size), ("min_objects", min_objects), ("max_objects", max_objects))
        )
        seed = int_arg("seed", seed, maximum=2**64 - 1)
        return cls(
            _native.dataset_scenes(n=n, size=size, seed=seed, split=split, min_objects=lo, max_objects=hi),
            f"scenes {split} n={n} size={size} seed={seed}",
        )

    @classmethod
    def fashion_mnist_scenes(
        cls,
        split: str = "train",
        n: int = 10000,
        size: int = 112,
        grid: int = 2,
        min_items: int = 1,
        max_items: int = 4,
        seed: int = 0,
        root: PathLike = FASHION_MNIST_ROOT,
        item_classes: Sequence[str | int] | None = None,
        cell_labels: bool = False,
    ) -> Dataset:
        """Multi-label scenes of real Fashion-MNIST items: 1-4 items in distinct cells of a grid.

        Train scenes use the train split's items, test scenes the test split's. The files
        are Debian's ``dataset-fashion-mnist`` (``apt install dataset-fashion-mnist``).
        :meth:`objects` gives each item's label and cell.

        Args:
            item_classes: The classes (names of :data:`FASHION_CLASSES` or indices) whose
                items may appear; the label table keeps all ten, so the others are always
                absent. For zero-shot experiments: train without some classes, test with all.
            cell_labels: Every (class, cell) pair is a label, named ``"Bag @ r1c2"``
                (``10 * grid**2`` labels, class-major): a many-label set.
        """
        n, size, grid, lo, hi = (
            int_arg(k, v)
            for k, v in (("n", n), ("size", size), ("grid", grid), ("min_items", min_items), ("max_items", max_items))
        )
        seed = int_arg("seed", seed, maximum=2**64 - 1)
        if not isinstance(cell_labels, bool):
            raise InvalidTypeError(f"cell_labels must be a bool, got {cell_labels!r}")
        items = None if item_classes is None else [_fashion_class(c) for c in item_classes]
        return cls(
            _native.dataset_fashion(
                root=os.fsdecode(root),
                split=split,
                n=n,
                size=size,
                grid=grid,
                min_items=lo,
                max_items=hi,
                seed=seed,
                item_classes=items,
                cell_labels=cell_labels,
            ),
            f"Fashion-MNIST scenes {split} n={n} size={size}"
            + ("" if items is None else f" items of {[FASHION_CLASSES[c] for c in items]}")
            + (" cell labels" if cell_labels else ""),
        )

    # Access --------------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._native)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        given = int_arg("index", index, minimum=None)
        index = given + len(self) if given < 0 else given
        if not 0 <= index < len(self):
            raise IndexError(f"index {given} out of range for {len(self)} images")
        image, warning = self._native.image(index)
        if warning is not None:
            warnings.warn(warning, RepairedImageWarning, stacklevel=2)
        return image, self.targets[index]

    @property
    def classes(self) -> list[str]:
        """The label table: class ``j`` is column ``j`` of the targets."""
        return self._native.classes

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def targets(self) -> torch.Tensor:
        """float32 ``[N, C]``: 1 present, 0 absent, -1 unknown."""
        if self._targets is None:
            self._targets = self._native.targets()
        return self._targets

    @property
    def paths(self) -> list[str] | None:
        """Image paths, or ``None`` for generated and in-memory data."""
        return self._native.paths()

    @property
    def skipped(self) -> list[tuple[str, str]]:
        """Samples :meth:`shards` left out with ``on_error="skip"``: ``(shard:member, reason)``."""
        return self._native.skipped

    def objects(self, index: int) -> list[tuple[int, tuple[float, float, float, float]]]:
        """Class and ``(x0, y0, x1, y1)`` box of each object of a generated scene."""
        return [(c, tuple(b)) for c, b in self._native.objects(int(index))]

    def with_decoding(
        self, *, max_pixels: int | None = None, strict: bool | None = None, dct_scaling: bool | None = None
    ) -> Dataset:
        """A copy with other decoding options (``None`` keeps the current one).

        Args:
            max_pixels: Largest ``width * height`` decoded (default: PIL's bomb limit);
                larger images raise :class:`ImageError` without being allocated.
            strict: Refuse truncated JPEGs (default, as PIL's ``LOAD_TRUNCATED_IMAGES =
                False``). With ``False`` they decode with the missing part grey, and each
                one is reported: a :class:`RepairedImageWarning`, and in
                :attr:`Loader.repaired <q2l.data.Loader.repaired>`.
            dct_scaling: Let the loader decode a JPEG at 1/2, 1/4 or 1/8 scale in the DCT
                domain when the first transform's output is at most half the part of the image
                it keeps (default: on). Off, every image is decoded at full size and the
                batches equal PIL's decode followed by the same transforms.
        """
        given = {"max_pixels": max_pixels, "strict": strict, "dct_scaling": dct_scaling}
        # Checked by Rust (DecodeOptions in src/data/decode.rs).
        options = self._native.decode_options() | {k: v for k, v in given.items() if v is not None}
        native = self._native.with_decode_options(options=options)
        return Dataset(native, self.description)

    def with_hidden_annotations(self, fraction: float, seed: int = 0) -> Dataset:
        """A copy with a random ``fraction`` of the known annotations made unknown (-1).

        Simulates partial annotation as CSL's experiments do: ``round(fraction * n)`` of the
        ``n`` known targets, positives and negatives alike, drawn uniformly from ``seed``.
        Losses such as :class:`q2l.loss.PartialAsymmetricLoss` then see them as unannotated.

        Args:
            fraction: Share of the known annotations to hide, in ``[0, 1]``.
            seed: The draw; the same seed hides the same annotations.
        """
        fraction = float_arg("fraction", fraction)
        if not 0.0 <= fraction <= 1.0:
            raise InvalidArgumentError(f"fraction must be in [0, 1], got {fraction}")
        seed = int_arg("seed", seed, maximum=2**64 - 1)
        native = self._native.with_hidden_annotations(fraction=fraction, seed=seed)
        return Dataset(native, f"{self.description}, {fraction:.0%} of annotations hidden (seed {seed})")

    def with_max_pixels(self, max_pixels: int) -> Dataset:
        """A copy whose decoder accepts images up to ``max_pixels`` (see :meth:`with_decoding`)."""
        return self.with_decoding(max_pixels=max_pixels)

    def __repr__(self) -> str:
        return f"Dataset({self.description}: {len(self)} images, {self.num_classes} classes)"


def _fashion_class(c: str | int) -> int:
    if isinstance(c, str):
        if c not in FASHION_CLASSES:
            raise InvalidArgumentError(f"unknown Fashion-MNIST class {c!r}; the classes are {list(FASHION_CLASSES)}")
        return FASHION_CLASSES.index(c)
    return int_arg("item_classes", c, maximum=len(FASHION_CLASSES) - 1)


def decode_image(
    path: PathLike, *, max_pixels: int = DECODE.defaults["max_pixels"], strict: bool = DECODE.defaults["strict"]
) -> torch.Tensor:
    """Decodes a JPEG or PNG file to uint8 ``[3, H, W]`` RGB.

    Args:
        path: The file.
        max_pixels: Largest ``width * height`` decoded (PIL's bomb limit by default).
        strict: Refuse truncated JPEGs; with ``False`` they decode with the missing part
            grey and a :class:`RepairedImageWarning`.

    Raises:
        q2l.data.ImageError: the file is not a readable JPEG/PNG, is truncated (``strict``),
            too large, or not a regular file (an ``OSError``).
        FileNotFoundError, PermissionError, IsADirectoryError: as ``open`` raises them.
    """
    image, warning = _native.decode_image(path=os.fsdecode(path), options={"max_pixels": max_pixels, "strict": strict})
    if warning is not None:
        warnings.warn(warning, RepairedImageWarning, stacklevel=2)
    return image


def expand_shards(pattern: PathLike) -> list[str]:
    """The shard paths a brace pattern stands for: ``"train-{000..002}.tar"`` gives
    ``train-000.tar``, ``train-001.tar``, ``train-002.tar`` (zero-padded as written);
    ``"{a,b}.tar"`` gives ``a.tar``, ``b.tar``."""
    return _native.expand_shards(pattern=os.fsdecode(pattern))


def write_shards(
    dataset: Dataset,
    directory: PathLike,
    prefix: str = "shard",
    samples_per_shard: int = 1000,
    max_shard_bytes: int | None = None,
) -> list[Path]:
    """Writes ``dataset`` as WebDataset tar shards that :meth:`Dataset.shards` reads back.

    Each sample becomes ``KEY.jpg`` or ``KEY.png`` (image files copied byte for byte;
    generated and in-memory images as lossless PNG) and ``KEY.json`` with its labels and
    unknown labels by class name. ``classes.txt`` beside the shards holds the label table.
    Each shard is written under a temporary name and renamed once complete.

    Args:
        dataset: any dataset (COCO, VOC, lists, folders, arrays, generated, shards).
        directory: the output folder (created if missing).
        prefix: shards are ``PREFIX-000000.tar``, ``PREFIX-000001.tar``, ...
        samples_per_shard: samples per shard at most.
        max_shard_bytes: bytes per shard at most (default: no limit).

    Returns:
        The shard paths, in order.
    """
    if not isinstance(dataset, Dataset):
        raise InvalidTypeError(f"dataset must be a q2l.data.Dataset, got {type(dataset).__name__}")
    samples_per_shard = int_arg("samples_per_shard", samples_per_shard, minimum=1)
    limit = 2**64 - 1
    if max_shard_bytes is not None:
        limit = int_arg("max_shard_bytes", max_shard_bytes, minimum=1, maximum=limit)
    if not isinstance(prefix, str):
        raise InvalidTypeError(f"prefix must be a str, got {type(prefix).__name__}")
    paths = _native.write_shards(
        dataset=dataset._native,
        directory=os.fsdecode(directory),
        prefix=prefix,
        samples_per_shard=samples_per_shard,
        max_shard_bytes=limit,
    )
    return [Path(p) for p in paths]
