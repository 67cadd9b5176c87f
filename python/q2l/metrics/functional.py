"""Multi-label metrics as functions of a whole score matrix.

Every function takes ``scores`` and ``targets`` of shape ``[num_samples, num_classes]`` as
numpy arrays (read in place, any strides) or torch tensors (CPU or CUDA; contiguous CPU
tensors are read without a copy).
Scores may be logits or probabilities in float16/32/64 (ranking metrics do not care;
threshold metrics compare against the scores as given). Targets are 1 (present), 0
(absent) or -1 (ignored: difficult or unannotated), in any integer or floating dtype.
The work runs in Rust on ``torch.get_num_threads()`` threads without the GIL.

Which "mAP"? ``definition`` names it:

* ``"voc"``: all-point interpolated AP, the mean over positives of the best precision at
  any rank at or below theirs. Query2Label's ``voc_mAP`` (its reported numbers) uses it.
* ``"noninterpolated"``: the mean of the precisions at the ranks of the positives. ASL's
  ``average_precision``, ML-Decoder and mmpretrain use it.
* ``"step"``: ``sum_n (R_n - R_{n-1}) P_n`` over distinct thresholds with tied scores
  grouped. scikit-learn's ``average_precision_score`` and torchmetrics'
  ``MultilabelAveragePrecision`` use it.

``"voc"`` and ``"noninterpolated"`` take tied scores in sample order (a stable sort; the
reference codes use numpy's unstable argsort, so their tie order is arbitrary).
"""

from collections.abc import Sequence
from typing import Any

import torch

from .. import _native
from .._arrays import ArrayLike, as_tensor
from .._options import Options, documented
from ..errors import InvalidArgumentError, InvalidTypeError

#: The options of the average precision, declared once in Rust (``ApOptions`` in
#: ``src/metrics/average_precision.rs``).
OPTIONS = Options("average_precision")

#: The AP definitions and the policies for classes without positives.
DEFINITIONS: tuple[str, ...] = OPTIONS.choices("definition")
EMPTY_POLICIES: tuple[str, ...] = OPTIONS.choices("empty")


def _same_device(scores: ArrayLike, targets: ArrayLike) -> tuple[ArrayLike, ArrayLike]:
    """``scores`` and ``targets``, refused when they are tensors on two devices. Rust reads
    them: numpy arrays in place (any strides), tensors from host copies, and it names a
    wrong type, dtype or shape."""
    if isinstance(scores, torch.Tensor) and isinstance(targets, torch.Tensor) and scores.device != targets.device:
        raise InvalidArgumentError(
            f"scores are on {scores.device} but targets are on {targets.device}; move both to the same device"
        )
    return scores, targets


@documented(OPTIONS)
def average_precision(scores: ArrayLike, targets: ArrayLike, **options: Any) -> torch.Tensor:
    """Average precision of each class.

    Args:
        scores: ``[N, C]`` scores.
        targets: ``[N, C]`` targets in {1, 0, -1}.
        {options}

    Returns:
        float64 tensor ``[C]`` of APs in [0, 1].
    """
    return average_precision_and_mean(scores, targets, **options)[0]


@documented(OPTIONS)
def mean_average_precision(scores: ArrayLike, targets: ArrayLike, **options: Any) -> float:
    """The mean of :func:`average_precision` over classes, in [0, 1] (papers print x100).

    With ``empty="nan"`` a class without positives makes the mean NaN, as in the official
    Query2Label code; ``"zero"`` counts such classes as 0; ``"skip"`` leaves them out, and
    raises ``ValueError`` when no class has a positive (there is no mean to report).
    :class:`~q2l.metrics.MultilabelMetrics` follows the same rules.

    Args:
        scores: ``[N, C]`` scores.
        targets: ``[N, C]`` targets in {1, 0, -1}.
        {options}
    """
    return average_precision_and_mean(scores, targets, **options)[1]


@documented(OPTIONS)
def average_precision_and_mean(scores: ArrayLike, targets: ArrayLike, **options: Any) -> tuple[torch.Tensor, float]:
    """:func:`average_precision` and :func:`mean_average_precision` from one ranking."""
    s, t = _same_device(scores, targets)
    aps, mean = _native.average_precision(scores=s, targets=t, options=options)
    return torch.tensor(aps, dtype=torch.float64), mean


def threshold_metrics(
    scores: ArrayLike, targets: ArrayLike, threshold: float | Sequence[float] = 0.5
) -> dict[str, object]:
    """CP, CR, CF1, OP, OR, OF1 with ``score >= threshold`` as the prediction.

    Args:
        scores: ``[N, C]`` scores (probabilities for the default threshold 0.5; for
            logits use threshold 0.0).
        targets: ``[N, C]`` targets in {1, 0, -1}; -1 entries are left out.
        threshold: One threshold, or one per class.

    Returns:
        A dict with the floats ``CP``, ``CR``, ``CF1`` (the F1 of CP and CR, the
        ML-GCN/Query2Label convention), ``OP``, ``OR``, ``OF1``, and per-class lists
        ``precision``, ``recall``, ``f1``, ``tp``, ``fp``, ``fn``, ``support``. A 0/0
        ratio counts as 0.
    """
    s, t = _same_device(scores, targets)
    if isinstance(threshold, (int, float)):
        thresholds = [float(threshold)]
    else:
        thresholds = [float(v) for v in as_tensor(torch.as_tensor(threshold), "threshold").flatten().tolist()]
    return _native.threshold_summary(scores=s, targets=t, thresholds=thresholds)


def topk_metrics(scores: ArrayLike, targets: ArrayLike, k: int = 3) -> dict[str, object]:
    """The metrics of :func:`threshold_metrics` when each sample predicts its ``k``
    highest-scoring classes (k=3 in the literature; ties go to the lower class index)."""
    s, t = _same_device(scores, targets)
    if isinstance(k, bool) or not isinstance(k, int):
        raise InvalidTypeError(f"k must be an int, got {type(k).__name__}")
    if k < 1:
        raise InvalidArgumentError(f"k must be in [1, num_classes], got {k}")
    return _native.threshold_summary(scores=s, targets=t, k=k)


def best_f1_thresholds(scores: ArrayLike, targets: ArrayLike):
    """Per-class thresholds that maximise F1 on these (validation) scores.

    Returns:
        ``(thresholds, f1)``: float64 tensors ``[C]``; predict ``score >= threshold``.
        A class without positives gets ``+inf`` (never predicted) and F1 0.
    """
    s, t = _same_device(scores, targets)
    th, f1 = _native.best_f1_thresholds(scores=s, targets=t)
    return torch.tensor(th, dtype=torch.float64), torch.tensor(f1, dtype=torch.float64)
