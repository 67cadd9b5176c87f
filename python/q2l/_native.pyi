"""Type stubs for the Rust extension module ``q2l._native``.

These functions are the stateless core; the public API in :mod:`q2l` wraps them in
``torch.nn.Module`` classes and ``torch.autograd.Function``s. Every function takes keyword
arguments named as in the public API. Errors are the classes of :mod:`q2l.errors`: bad
input an ``InvalidArgumentError`` (a ``ValueError``), a libtorch failure a ``LibtorchError``
and a bug an ``InternalError`` (both ``RuntimeError``), files ``FileError`` and its
``OSError`` subclasses. The stub is checked against the built module by
``python -m mypy.stubtest q2l._native`` in the test command.
"""

import os
from collections.abc import Sequence
from typing import Any, Literal, final

import numpy as np
import torch

from .data.transforms import Operation

#: Where the core reads values on the CPU: numpy arrays in place (any strides), tensors
#: from host copies (none for contiguous CPU tensors).
_Array = np.ndarray | torch.Tensor

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "FASHION_CLASSES",
    "SCENE_CLASSES",
    "TORCH_VERSION",
    "VOC_CLASSES",
    "NativeBatchIter",
    "NativeDataset",
    "NativeLoader",
    "NativePipeline",
    "__version__",
    "asymmetric_loss",
    "asymmetric_loss_single_label",
    "average_precision",
    "best_f1_thresholds",
    "check_metric_batch",
    "class_priors",
    "data_profile",
    "dataset_coco",
    "dataset_fashion",
    "dataset_list",
    "dataset_memory",
    "dataset_nus_wide",
    "dataset_open_images",
    "dataset_scenes",
    "dataset_shards",
    "dataset_voc",
    "decode_image",
    "expand_shards",
    "head_forward",
    "ml_decoder_forward",
    "option_schema",
    "partial_asymmetric_loss",
    "randaugment_op",
    "read_class_file",
    "read_npy",
    "resize_image",
    "resolve_options",
    "simd_level",
    "sine_encoding",
    "threshold_summary",
    "write_shards",
]

__version__: str
TORCH_VERSION: str

def simd_level() -> Literal["avx512", "avx2", "baseline"]:
    """The instruction set the CPU kernels use on this machine."""

# Options -----------------------------------------------------------------------------------

_Options = dict[str, bool | int | float | str]

def option_schema(*, op: str) -> list[dict[str, Any]]:
    """The options of ``op``, one dict each: ``name``, ``kind`` (``"bool"``, ``"int"``,
    ``"float"`` or ``"str"``), ``default``, ``doc`` and ``choices`` (the names a ``str``
    option takes, else ``None``)."""

def resolve_options(*, op: str, options: _Options) -> dict[str, Any]:
    """The options of ``op`` with ``options`` set, each checked as every call checks them."""

# Losses ------------------------------------------------------------------------------------

def partial_asymmetric_loss(
    *,
    logits: torch.Tensor,
    targets: torch.Tensor,
    priors: torch.Tensor | None,
    options: _Options,
    need_grad: bool,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """CSL's partial-label loss of ``logits`` ``[B, K]`` against targets in {1, 0, -1},
    summed, and its gradient when ``need_grad``; ``priors`` ``[K]`` for the selective mode."""

def class_priors(*, probabilities: torch.Tensor) -> torch.Tensor:
    """The mean of ``probabilities`` ``[N, K]`` over samples: CSL's class priors."""

def asymmetric_loss(
    *,
    logits: torch.Tensor,
    targets: torch.Tensor,
    class_weight: torch.Tensor | None,
    options: _Options,
    need_grad: bool,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Asymmetric loss.

    Returns ``(loss, grad)``: the reduced (or per-element) loss and, with ``need_grad``,
    its gradient with respect to ``logits`` (reduction and scale included; for
    ``reduction="none"`` the gradient of the sum), so that the backward pass is
    ``grad * grad_output``.
    """

def asymmetric_loss_single_label(
    *,
    logits: torch.Tensor,
    targets: torch.Tensor,
    options: _Options,
    need_grad: bool,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Single-label asymmetric loss of ``logits`` ``[N, C]`` against class indices, and its
    gradient when ``need_grad``."""

# Metrics -----------------------------------------------------------------------------------

def average_precision(*, scores: _Array, targets: _Array, options: _Options) -> tuple[list[float], float]:
    """Per-class AP of ``scores`` [N, C] against ``targets`` [N, C] (1, 0, -1 ignored), a
    class without a positive given NaN (``empty`` "nan" or "skip") or 0 ("zero"), and their
    mean; with "skip" the mean leaves such classes out, and no class with a positive is an
    error."""

def threshold_summary(
    *,
    scores: _Array,
    targets: _Array,
    thresholds: list[float] | None = None,
    k: int | None = None,
) -> dict[str, Any]:
    """CP, CR, CF1, OP, OR, OF1 and per-class precision/recall/f1/tp/fp/fn/support, with
    predictions ``score >= threshold`` (one or one per class) or the top ``k`` per sample."""

def check_metric_batch(*, scores: torch.Tensor, targets: torch.Tensor) -> None:
    """Raises ValueError naming the first non-finite score or target outside {1, 0, -1}."""

def best_f1_thresholds(*, scores: _Array, targets: _Array) -> tuple[list[float], list[float]]:
    """Per-class thresholds maximising F1, and those F1 values."""

# Head --------------------------------------------------------------------------------------

def head_forward(
    *,
    features: torch.Tensor,
    params: dict[str, torch.Tensor],
    config: _Options,
    train: bool,
    return_attention: bool,
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """The Query2Label head forward on named parameters (``Query2LabelHead``'s names, the
    official ones without the ``transformer.`` prefix): logits ``[B, K]`` and, with
    ``return_attention``, one head-averaged cross-attention map ``[B, K, H, W]`` per decoder
    layer. A missing, misshaped or unexpected parameter is named in the error."""

def ml_decoder_forward(
    *,
    features: torch.Tensor,
    params: dict[str, torch.Tensor],
    label_embeddings: torch.Tensor | None,
    config: _Options,
    train: bool,
) -> torch.Tensor:
    """The ML-Decoder forward on named parameters (the official ``MLDecoder``'s names):
    logits ``[B, K]``; ``label_embeddings`` ``[K, D]`` for a zero-shot head. A missing,
    misshaped or unexpected parameter is named in the error."""

def sine_encoding(*, height: int, width: int, d_model: int, temperature: float = 10000.0) -> torch.Tensor:
    """The 2-D sine positional encoding ``[height * width, d_model]`` (float32, CPU)."""

# Data pipeline -----------------------------------------------------------------------------

SCENE_CLASSES: list[str]
FASHION_CLASSES: list[str]
VOC_CLASSES: list[str]
DEFAULT_MAX_PIXELS: int

@final
class NativeDataset:
    """Labels in memory, images read or rendered on demand."""

    @property
    def classes(self) -> list[str]: ...
    def __len__(self) -> int: ...
    def targets(self) -> torch.Tensor:
        """float32 ``[N, C]`` of 1, 0 and -1."""
    def paths(self) -> list[str] | None: ...
    def image(self, i: int) -> tuple[torch.Tensor, str | None]:
        """uint8 ``[3, H, W]`` and the warning of a lenient decode."""
    def objects(self, i: int) -> list[tuple[int, list[float]]]: ...
    @property
    def skipped(self) -> list[tuple[str, str]]:
        """Samples a shard reader left out (``on_error="skip"``): name and reason."""
    def with_decode_options(self, *, options: _Options) -> NativeDataset: ...
    def with_hidden_annotations(self, *, fraction: float, seed: int) -> NativeDataset: ...
    def decode_options(self) -> dict[str, Any]:
        """The decoding options (``option_schema(op="decode")``), by name."""

def dataset_coco(*, annotations: str, image_dir: str, annotated_only: bool) -> NativeDataset: ...
def dataset_voc(*, root: str, split: str, difficult: str) -> NativeDataset: ...
def dataset_nus_wide(*, root: str, split: str, image_dir: str) -> NativeDataset: ...
def dataset_open_images(*, labels_csv: str, image_dir: str, classes_csv: str | None = None) -> NativeDataset: ...
def dataset_list(*, path: str, image_root: str, classes: list[str] | None = None, sep: str = ";") -> NativeDataset: ...
def dataset_shards(*, patterns: list[str], classes: list[str], on_error: str) -> NativeDataset: ...
def expand_shards(*, pattern: str) -> list[str]: ...
def read_class_file(*, path: str) -> list[str]: ...
def write_shards(
    *, dataset: NativeDataset, directory: str, prefix: str, samples_per_shard: int, max_shard_bytes: int
) -> list[str]: ...
def dataset_memory(*, images: _Array, targets: _Array, classes: list[str]) -> NativeDataset: ...
def dataset_scenes(
    *, n: int, size: int, seed: int, split: str, min_objects: int, max_objects: int
) -> NativeDataset: ...
def dataset_fashion(
    *,
    root: str,
    split: str,
    n: int,
    size: int,
    grid: int,
    min_items: int,
    max_items: int,
    seed: int,
    item_classes: list[int] | None,
    cell_labels: bool,
) -> NativeDataset: ...

@final
class NativePipeline:
    """A validated transform. ``ops`` are the ``q2l.data.transforms`` dataclasses themselves:
    Rust reads each into the struct of the same name and fields (src/data/transform/ops.rs)."""

    def __new__(
        cls,
        *,
        ops: Sequence[Operation],
        output: str,
        mean: tuple[float, float, float] | None = None,
        std: tuple[float, float, float] | None = None,
    ) -> NativePipeline: ...
    def shape(self) -> tuple[int, int, int]: ...
    def augment(self, image: torch.Tensor, *, seed: int) -> torch.Tensor:
        """uint8 ``[H, W, 3]`` in, uint8 ``[3, H', W']`` out (operations only, no normalisation)."""

    def augment_file(
        self, *, path: str | os.PathLike[str], seed: int, options: _Options
    ) -> tuple[torch.Tensor, str | None]:
        """An image file through the pipeline as the loader decodes it: ``([3, H', W'], warning)``."""

def data_profile(*, on: bool) -> list[tuple[str, float]]:
    """Seconds per data-pipeline stage since the last call; profiling on or off as ``on`` says."""

def read_npy(*, path: str | os.PathLike[str]) -> torch.Tensor:
    """A ``.npy`` file of floats as a CPU tensor of its dtype (any byte order; no pickle)."""

def decode_image(*, path: str, options: _Options) -> tuple[torch.Tensor, str | None]:
    """JPEG/PNG file to uint8 ``[3, H, W]`` RGB and the warning of a lenient decode."""

def resize_image(*, image: torch.Tensor, width: int, height: int) -> torch.Tensor:
    """PIL-compatible antialiased bilinear resize; uint8 ``[H, W, 3]`` in, ``[3, h, w]`` out."""

def randaugment_op(*, image: torch.Tensor, name: str, magnitude: float, fill: Sequence[int]) -> torch.Tensor:
    """One torchvision RandAugment operation with a signed magnitude; ``[H, W, 3]`` in, ``[3, H, W]`` out."""

@final
class NativeLoader:
    def __new__(
        cls,
        *,
        dataset: NativeDataset,
        pipeline: NativePipeline,
        options: _Options,
        pin_memory: int | None,
    ) -> NativeLoader: ...
    def __len__(self) -> int: ...
    def order(self, epoch: int) -> list[int]: ...
    def iter(self, epoch: int, *, start: int) -> NativeBatchIter: ...

@final
class NativeBatchIter:
    def __iter__(self) -> NativeBatchIter: ...
    def __next__(
        self,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, list[tuple[int, str]], list[tuple[int, str]]]:
        """images, targets, indices, skipped ``(index, reason)``, repaired ``(index, warning)``."""
    def close(self) -> None: ...
