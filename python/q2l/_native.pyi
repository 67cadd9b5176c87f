"""Type stubs for the Rust extension module ``q2l._native``.

These functions are the stateless core; the public API in :mod:`q2l` wraps them in
``torch.nn.Module`` classes and ``torch.autograd.Function``s.
"""

from typing import Any, Dict, List, Literal, Optional, Tuple

import torch

__version__: str
TORCH_VERSION: str

Reduction = Literal["none", "sum", "mean", "batchmean"]
Backend = Literal["auto", "kernel", "tensor"]

def simd_level() -> Literal["avx512", "avx2", "baseline"]:
    """The instruction set the CPU kernels use on this machine."""

def asymmetric_loss(
    logits: torch.Tensor,
    targets: torch.Tensor,
    class_weight: Optional[torch.Tensor],
    *,
    gamma_pos: float,
    gamma_neg: float,
    clip: float,
    eps: float,
    focal_grad: bool,
    reduction: Reduction,
    scale: float,
    validate: bool,
    backend: Backend,
    need_grad: bool,
) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
    """Asymmetric loss.

    Returns ``(loss, grad)``: the reduced (or per-element) loss and, with ``need_grad``,
    its gradient with respect to ``logits`` (reduction and scale included; for
    ``reduction="none"`` the gradient of the sum), so that the backward pass is
    ``grad * grad_output``.

    Raises:
        ValueError: bad shapes, dtypes, devices, option values, NaN logits or invalid
            targets (the last two only with ``validate``).
        RuntimeError: a libtorch failure.
    """

def asymmetric_loss_single_label(
    logits: torch.Tensor,
    targets: torch.Tensor,
    *,
    gamma_pos: float,
    gamma_neg: float,
    smoothing: float,
    reduction: Reduction,
    scale: float,
    ignore_index: int,
    validate: bool,
    backend: Backend,
    need_grad: bool,
) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
    """Single-label (softmax) asymmetric loss; returns as :func:`asymmetric_loss`."""

def average_precision(
    scores: torch.Tensor, targets: torch.Tensor, *, definition: Literal["voc", "noninterpolated", "step"]
) -> List[Optional[float]]:
    """Per-class AP of ``scores`` [N, C] against ``targets`` [N, C] (1, 0, -1 ignored);
    ``None`` for classes without a positive.

    Raises:
        ValueError: bad shapes or dtypes, empty input, NaN scores, targets outside {-1, 0, 1}.
    """

def threshold_summary(
    scores: torch.Tensor,
    targets: torch.Tensor,
    *,
    thresholds: Optional[List[float]] = None,
    k: Optional[int] = None,
) -> Dict[str, Any]:
    """CP, CR, CF1, OP, OR, OF1 and per-class precision/recall/f1/tp/fp/fn/support, with
    predictions ``score >= threshold`` (one or one per class) or the top ``k`` per sample."""

def best_f1_thresholds(scores: torch.Tensor, targets: torch.Tensor) -> Tuple[List[float], List[float]]:
    """Per-class thresholds maximising F1, and those F1 values."""

def head_forward(
    features: torch.Tensor,
    params: Dict[str, torch.Tensor],
    *,
    d_model: int,
    nhead: int,
    enc_layers: int,
    dec_layers: int,
    dropout: float,
    pre_norm: bool,
    keep_first_self_attn: bool,
    keep_other_self_attn: bool,
    temperature: float,
    train: bool,
    return_attention: bool,
) -> Tuple[torch.Tensor, List[torch.Tensor]]:
    """The Query2Label head forward on named parameters (official names without the
    ``transformer.`` prefix): logits ``[B, K]`` and, with ``return_attention``, one
    head-averaged cross-attention map ``[B, K, H, W]`` per decoder layer.

    Raises:
        ValueError: bad shapes, channel counts, devices, missing parameters.
        RuntimeError: a libtorch failure.
    """

def sine_encoding(h: int, w: int, d: int, temperature: float = 10000.0) -> torch.Tensor:
    """The 2-D sine positional encoding ``[h * w, d]`` (float32, CPU)."""

# Data pipeline ---------------------------------------------------------------------------

SCENE_CLASSES: List[str]
FASHION_CLASSES: List[str]
VOC_CLASSES: List[str]
DEFAULT_MAX_PIXELS: int

class ImageError(OSError):
    """An image file that is truncated, corrupt, too large, not a JPEG/PNG or not a regular file."""

class NativeDataset:
    """Labels in memory, images read or rendered on demand."""

    classes: List[str]
    def __len__(self) -> int: ...
    def targets(self) -> torch.Tensor:
        """float32 ``[N, C]`` of 1, 0 and -1."""
    def paths(self) -> Optional[List[str]]: ...
    def image(self, i: int) -> Tuple[torch.Tensor, Optional[str]]:
        """uint8 ``[3, H, W]`` and the warning of a lenient decode. Raises ImageError, OSError, ValueError."""
    def objects(self, i: int) -> List[Tuple[int, Tuple[float, float, float, float]]]: ...
    def with_decode_options(self, *, max_pixels: int, strict: bool) -> "NativeDataset": ...
    def decode_options(self) -> Tuple[int, bool]:
        """``(max_pixels, strict)``."""

def dataset_coco(annotations: str, image_dir: str, annotated_only: bool) -> NativeDataset: ...
def dataset_voc(root: str, split: str, difficult: str) -> NativeDataset: ...
def dataset_nus_wide(root: str, split: str, image_dir: str) -> NativeDataset: ...
def dataset_open_images(labels_csv: str, image_dir: str, classes_csv: Optional[str] = None) -> NativeDataset: ...
def dataset_list(path: str, image_root: str, classes: Optional[List[str]] = None, sep: str = ";") -> NativeDataset: ...
def dataset_memory(images: torch.Tensor, targets: torch.Tensor, classes: List[str]) -> NativeDataset: ...
def dataset_scenes(len: int, size: int, seed: int, split: str, min_objects: int, max_objects: int) -> NativeDataset: ...
def dataset_fashion(root: str, split: str, len: int, size: int, grid: int, min_items: int, max_items: int, seed: int) -> NativeDataset: ...

class NativePipeline:
    """A validated transform: ``ops`` are dicts with an ``"op"`` key (see q2l.data.transforms)."""

    def __init__(self, ops: List[Dict[str, Any]], output: str, mean: Optional[Tuple[float, float, float]] = None, std: Optional[Tuple[float, float, float]] = None) -> None: ...
    def shape(self) -> Tuple[int, int, int]: ...
    def augment(self, image: torch.Tensor, seed: int) -> torch.Tensor:
        """uint8 ``[H, W, 3]`` in, uint8 ``[3, H', W']`` out (operations only, no normalisation)."""

def decode_image(path: str, *, max_pixels: int, strict: bool) -> Tuple[torch.Tensor, Optional[str]]:
    """JPEG/PNG file to uint8 ``[3, H, W]`` RGB and the warning of a lenient decode.
    Raises ImageError, FileNotFoundError, PermissionError, IsADirectoryError."""

def resize_image(image: torch.Tensor, width: int, height: int) -> torch.Tensor:
    """PIL-compatible antialiased bilinear resize; uint8 ``[H, W, 3]`` in, ``[3, h, w]`` out."""

def randaugment_op(image: torch.Tensor, name: str, magnitude: float, fill: Tuple[int, int, int]) -> torch.Tensor:
    """One torchvision RandAugment operation with a signed magnitude; ``[H, W, 3]`` in, ``[3, H, W]`` out."""

class NativeLoader:
    def __init__(self, dataset: NativeDataset, pipeline: NativePipeline, batch_size: int, shuffle: bool, drop_last: bool, seed: int, threads: int, prefetch: int, rank: int, world_size: int, on_error: str, pin_device: Optional[int]) -> None: ...
    def __len__(self) -> int: ...
    def order(self, epoch: int) -> List[int]: ...
    def iter(self, epoch: int) -> "NativeBatchIter": ...

class NativeBatchIter:
    def __iter__(self) -> "NativeBatchIter": ...
    def __next__(
        self,
    ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor, List[Tuple[int, str]], List[Tuple[int, str]]]:
        """images, targets, indices, skipped ``(index, reason)``, repaired ``(index, warning)``."""
    def close(self) -> None: ...
