"""Image transforms, described in Python and run in Rust on the loader's threads.

A :class:`Compose` is a list of operations followed by the output layout. Its first operation
fixes the image size (:class:`Resize`, :class:`RandomResizedCrop` or :class:`MultiScaleCrop`) so that every image of a
batch has one shape. Geometry and colour follow torchvision's PIL-based transforms: the
resize is PIL's antialiased bilinear filter, RandAugment uses torchvision's operation table.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

from .. import _native
from .._arrays import as_tensor
from .._validate import int_arg
from ..errors import InvalidArgumentError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


# Each operation is a frozen dataclass whose class name and fields are those of its Rust
# struct (src/data/transform/ops.rs): the native pipeline reads these objects directly. They
# check the types and signs of their integers when built (Rust takes them unsigned, so a
# negative one would surface as pyo3's OverflowError naming nothing); the core checks every
# range when the Compose is built.


def _pair(size: int | Sequence[int], name: str = "size") -> tuple[int, int]:
    """(height, width) from an int or a pair of them."""
    if isinstance(size, (tuple, list)):
        if len(size) != 2:
            raise InvalidArgumentError(f"{name} must be an int or a (height, width) pair, got {size!r}")
        return int_arg(f"{name}[0]", size[0], minimum=1), int_arg(f"{name}[1]", size[1], minimum=1)
    v = int_arg(name, size, minimum=1)
    return v, v


def _rgb(name: str, fill) -> tuple[int, int, int]:
    if not isinstance(fill, (tuple, list)) or len(fill) != 3:
        raise InvalidArgumentError(f"{name} must be an RGB triple of ints in [0, 255], got {fill!r}")
    r, g, b = (int_arg(f"{name}[{i}]", v, minimum=0, maximum=255) for i, v in enumerate(fill))
    return r, g, b


@dataclass(frozen=True)
class _Sized:
    """An operation with an output ``size``: an int for square, or ``(height, width)``."""

    size: int | tuple[int, int]

    def __post_init__(self) -> None:
        _pair(self.size, f"{type(self).__name__}.size")


@dataclass(frozen=True)
class Resize(_Sized):
    """Squash to ``size`` (an int for square, or ``(height, width)``), PIL bilinear + antialias."""


@dataclass(frozen=True)
class RandomResizedCrop(_Sized):
    """torchvision's ``RandomResizedCrop``: a crop of area fraction ``scale`` and aspect ``ratio``."""

    scale: tuple[float, float] = (0.08, 1.0)
    ratio: tuple[float, float] = (3 / 4, 4 / 3)


@dataclass(frozen=True)
class MultiScaleCrop(_Sized):
    """ML-GCN's multi-scale crop: crop sides of ``scales`` x the shorter image side (the width
    and height scale indices at most ``max_distort`` apart), at one of 13 fixed positions
    (``fix_crop``) or anywhere, then resized to ``size``."""

    scales: tuple[float, ...] = (1.0, 0.875, 0.75, 0.66)
    max_distort: int = 1
    fix_crop: bool = True

    def __post_init__(self) -> None:
        super().__post_init__()
        int_arg("MultiScaleCrop.max_distort", self.max_distort, minimum=0)


@dataclass(frozen=True)
class CenterCrop(_Sized):
    """The central window of ``size`` (after a resize that makes the image at least as large)."""


@dataclass(frozen=True)
class HorizontalFlip:
    """Mirror left-right with probability ``p``."""

    p: float = 0.5


@dataclass(frozen=True)
class Cutout:
    """Cutout (DeVries & Taylor 2017) as Query2Label intends it.

    Args:
        factor: hole side as a fraction of the image side (per axis); Query2Label's 0.5.
        holes: number of holes.
        fill: ``None`` for one random colour per hole (the official choice) or an RGB triple.
        p: probability of applying it to an image.
    """

    factor: float = 0.5
    holes: int = 1
    fill: tuple[int, int, int] | None = None
    p: float = 1.0

    def __post_init__(self) -> None:
        int_arg("Cutout.holes", self.holes, minimum=1)
        if self.fill is not None:
            _rgb("Cutout.fill", self.fill)


@dataclass(frozen=True)
class RandAugment:
    """RandAugment with torchvision's operations: ``num_ops`` ops at ``magnitude`` of ``num_magnitude_bins``."""

    num_ops: int = 2
    magnitude: int = 9
    num_magnitude_bins: int = 31
    fill: tuple[int, int, int] = (0, 0, 0)

    def __post_init__(self) -> None:
        for name in ("num_ops", "magnitude", "num_magnitude_bins"):
            int_arg(f"RandAugment.{name}", getattr(self, name), minimum=0)
        _rgb("RandAugment.fill", self.fill)


Operation = Resize | RandomResizedCrop | MultiScaleCrop | CenterCrop | HorizontalFlip | Cutout | RandAugment


class Compose:
    """A transform pipeline run by the Rust loader.

    Args:
        ops: the operations, in order; the first must be :class:`Resize`,
            :class:`RandomResizedCrop` or :class:`MultiScaleCrop`.
        normalize: ``"imagenet"`` (torchvision's mean/std), ``None`` for plain ``x / 255``
            (TResNet-style models), or a ``(mean, std)`` pair of RGB triples.
        output: ``"float32"`` (normalised) or ``"uint8"`` (raw, to normalise on the GPU with
            :func:`normalize_on_device`; ``normalize`` must then be left at its default).

    Raises:
        ValueError: an unknown or badly placed operation, or bad parameters.
    """

    def __init__(
        self,
        ops: Sequence[Operation],
        normalize: str | tuple[Sequence[float], Sequence[float]] | None = "imagenet",
        output: str = "float32",
    ):
        self.ops = list(ops)
        if output not in ("float32", "uint8"):
            raise InvalidArgumentError(f"output must be 'float32' or 'uint8', got {output!r}")
        if output == "uint8" and not (isinstance(normalize, str) and normalize == "imagenet"):
            raise InvalidArgumentError(
                f"normalize={normalize!r} would be ignored: output='uint8' gives raw bytes, normalised on the "
                "device with normalize_on_device(images, mean, std); leave normalize out or use output='float32'"
            )
        mean: Sequence[float]
        std: Sequence[float]
        if normalize == "imagenet":
            mean, std = IMAGENET_MEAN, IMAGENET_STD
        elif normalize is None:
            mean, std = (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)
        elif isinstance(normalize, str):
            raise InvalidArgumentError(f"normalize must be 'imagenet', None or (mean, std), got {normalize!r}")
        else:
            try:
                mean, std = normalize
            except (TypeError, ValueError):
                raise InvalidArgumentError(
                    f"normalize must be 'imagenet', None or a (mean, std) pair, got {normalize!r}"
                ) from None
            for name, triple in (("mean", mean), ("std", std)):
                if not isinstance(triple, (tuple, list)) or len(triple) != 3:
                    raise InvalidArgumentError(
                        f"normalize: {name} must be 3 numbers (one per RGB channel), got {triple!r}"
                    )
        self.mean = (float(mean[0]), float(mean[1]), float(mean[2]))
        self.std = (float(std[0]), float(std[1]), float(std[2]))
        self.output = output
        for op in self.ops:
            if not isinstance(op, Operation):
                raise InvalidArgumentError(f"{op!r} is not a q2l.data.transforms operation")
        self._native = _native.NativePipeline(ops=self.ops, output=output, mean=self.mean, std=self.std)

    @property
    def shape(self) -> tuple[int, int, int]:
        """Output ``(channels, height, width)``."""
        return self._native.shape()

    def augment(self, image, seed: int = 0, *, dct_scaling: bool = True):
        """Applies the operations (not the normalisation) to one image.

        Args:
            image: uint8 ``[H, W, 3]`` tensor or numpy array (any strides: ``np.flip``
                output is copied once), or the path of a JPEG or PNG file, decoded as
                the :class:`~q2l.data.Loader` decodes it: only the part the first operation
                keeps, in the DCT domain at 1/2, 1/4 or 1/8 scale where its output is at most
                half that part's size (unless ``dct_scaling`` is off).
            seed: seeds the random operations.
            dct_scaling: for a file, as :meth:`q2l.data.Dataset.with_decoding` says.

        Returns:
            uint8 ``[3, H', W']``, deterministic for a given ``seed`` (a file and its decoded
            tensor get the same crop).
        """
        seed = int_arg("seed", seed, minimum=0, maximum=2**64 - 1)
        if isinstance(image, (str, bytes, os.PathLike)):
            path = os.fsdecode(image)
            out, _ = self._native.augment_file(path=path, seed=seed, options={"dct_scaling": dct_scaling})
            return out
        return self._native.augment(as_tensor(image, "image"), seed=seed)

    def __repr__(self) -> str:
        inner = ", ".join(repr(op) for op in self.ops)
        return f"Compose([{inner}], mean={self.mean}, std={self.std}, output={self.output!r})"


def train_transform(
    size: int = 448,
    cutout: float | None = 0.5,
    randaugment: bool = True,
    flip: bool = False,
    normalize="imagenet",
    output: str = "float32",
) -> Compose:
    """Query2Label's training transform: resize, Cutout, RandAugment, normalise.

    Args:
        size: output side.
        cutout: Cutout's hole factor, or ``None`` for no Cutout.
        randaugment: add RandAugment (2 ops, magnitude 9).
        flip: add a random horizontal flip.
        normalize: see :class:`Compose`.
        output: see :class:`Compose`.
    """
    ops: list = [Resize(size)]
    if flip:
        ops.append(HorizontalFlip())
    if cutout:
        ops.append(Cutout(factor=cutout))
    if randaugment:
        ops.append(RandAugment())
    return Compose(ops, normalize=normalize, output=output)


def eval_transform(size: int = 448, normalize="imagenet", output: str = "float32") -> Compose:
    """The validation transform: resize to ``size x size`` and normalise."""
    return Compose([Resize(size)], normalize=normalize, output=output)


def normalize_on_device(images, mean=IMAGENET_MEAN, std=IMAGENET_STD):
    """Turns a uint8 ``[B, 3, H, W]`` batch (``output="uint8"``) into normalised float32 on its device."""
    import torch

    m = torch.tensor(mean, device=images.device).view(1, 3, 1, 1)
    s = torch.tensor(std, device=images.device).view(1, 3, 1, 1)
    return (images.float() / 255.0 - m) / s
