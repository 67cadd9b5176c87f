"""The multi-label data pipeline: datasets, transforms and a threaded loader, run in Rust.

>>> from q2l import data
>>> train = data.Dataset.scenes(n=2000, size=64, split="train")
>>> loader = data.Loader(train, data.transforms.train_transform(64), batch_size=32, shuffle=True)
>>> images, targets = next(iter(loader))
"""

from .. import errors
from . import transforms
from .datasets import (
    DEFAULT_MAX_PIXELS,
    FASHION_CLASSES,
    FASHION_MNIST_ROOT,
    SCENE_CLASSES,
    VOC_CLASSES,
    Dataset,
    RepairedImageWarning,
    decode_image,
    expand_shards,
    write_shards,
)
from .loader import Loader
from .transforms import Compose, eval_transform, train_transform

#: Raised for an image that is truncated, corrupt, too large, not a JPEG/PNG or not a regular
#: file (a :class:`q2l.errors.FileError`, so an ``OSError``). A missing or unreadable file
#: raises :mod:`q2l.errors`' subclasses of ``FileNotFoundError`` / ``PermissionError`` /
#: ``IsADirectoryError``, as ``open`` does; catch ``OSError`` for all of them.
ImageError = errors.ImageError

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "FASHION_CLASSES",
    "FASHION_MNIST_ROOT",
    "SCENE_CLASSES",
    "VOC_CLASSES",
    "Compose",
    "Dataset",
    "ImageError",
    "Loader",
    "RepairedImageWarning",
    "decode_image",
    "eval_transform",
    "expand_shards",
    "train_transform",
    "transforms",
    "write_shards",
]
