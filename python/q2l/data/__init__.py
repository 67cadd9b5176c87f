"""The multi-label data pipeline: datasets, transforms and a threaded loader, run in Rust.

>>> from q2l import data
>>> train = data.Dataset.scenes(n=2000, size=64, split="train")
>>> loader = data.Loader(train, data.transforms.train_transform(64), batch_size=32, shuffle=True)
>>> images, targets = next(iter(loader))
"""

from .. import _native
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
)
from .loader import Loader
from .transforms import Compose, eval_transform, train_transform

#: Raised for an image that is truncated, corrupt, too large, not a JPEG/PNG or not a regular
#: file (a subclass of ``OSError``). A missing or unreadable file raises the built-in
#: ``FileNotFoundError`` / ``PermissionError`` / ``IsADirectoryError``, as ``open`` does;
#: catch ``OSError`` for all of them.
ImageError = _native.ImageError

__all__ = [
    "Compose",
    "DEFAULT_MAX_PIXELS",
    "Dataset",
    "FASHION_CLASSES",
    "FASHION_MNIST_ROOT",
    "ImageError",
    "Loader",
    "RepairedImageWarning",
    "SCENE_CLASSES",
    "VOC_CLASSES",
    "decode_image",
    "eval_transform",
    "train_transform",
    "transforms",
]
