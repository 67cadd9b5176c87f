"""A streaming accumulator: ``update`` per batch, ``compute`` at the end, across ranks."""

from typing import Dict, Optional

import torch

from .._validate import float_arg, int_arg
from .functional import (
    DEFINITIONS,
    EMPTY_POLICIES,
    ArrayLike,
    as_tensor,
    average_precision,
    threshold_metrics,
    topk_metrics,
)


class _Growing:
    """A row buffer that doubles its capacity, so appends never hold two full copies."""

    def __init__(self, dtype: torch.dtype) -> None:
        self.dtype = dtype
        self.data: Optional[torch.Tensor] = None
        self.rows = 0

    def append(self, block: torch.Tensor) -> None:
        n = block.shape[0]
        if self.data is None:
            self.data = torch.empty((max(n, 1024), block.shape[1]), dtype=self.dtype)
        elif self.rows + n > self.data.shape[0]:
            bigger = torch.empty((max(2 * self.data.shape[0], self.rows + n), self.data.shape[1]), dtype=self.dtype)
            bigger[: self.rows] = self.data[: self.rows]
            self.data = bigger
        self.data[self.rows : self.rows + n] = block
        self.rows += n

    def view(self) -> torch.Tensor:
        assert self.data is not None
        return self.data[: self.rows]


def _gather_rows(t: torch.Tensor) -> torch.Tensor:
    """Concatenates ``t`` from every rank (rows in rank order), when distributed."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return t
    device = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")
    local = t.to(device)
    sizes = [torch.zeros(1, dtype=torch.int64, device=device) for _ in range(dist.get_world_size())]
    dist.all_gather(sizes, torch.tensor([t.shape[0]], dtype=torch.int64, device=device))
    longest = int(max(s.item() for s in sizes))
    padded = torch.zeros((longest, t.shape[1]), dtype=t.dtype, device=device)
    padded[: t.shape[0]] = local
    parts = [torch.empty_like(padded) for _ in sizes]
    dist.all_gather(parts, padded)
    return torch.cat([p[: int(s.item())] for p, s in zip(parts, sizes)]).cpu()


class MultilabelMetrics:
    """Accumulates scores and targets batch by batch and computes every metric at the end.

    Memory is 5 bytes per (sample, class) entry (float32 score, int8 target; 9 for
    float64 scores), in buffers that grow by doubling; nothing else is kept. Under
    ``torch.distributed``, :meth:`compute` gathers every rank's entries first (all ranks
    must call it), so each rank returns the metrics of the whole evaluation set.

    Args:
        definition: AP definition, see :mod:`q2l.metrics.functional`.
        empty: Policy for classes without positives (``"nan"``, ``"zero"``, ``"skip"``).
        threshold: Threshold for CP/CR/CF1/OP/OR/OF1 (scores as given: use 0.0 for logits).
        k: k of the top-k metrics.

    Example:
        >>> metrics = MultilabelMetrics()
        >>> for images, targets in loader:
        ...     metrics.update(model(images).sigmoid(), targets)
        >>> report = metrics.compute()
        >>> report["mAP"], report["OF1"], report["top3"]["CF1"]
    """

    def __init__(self, definition: str = "voc", empty: str = "nan", threshold: float = 0.5, k: int = 3) -> None:
        if definition not in DEFINITIONS:
            raise ValueError(f"definition must be one of {DEFINITIONS}, got {definition!r}")
        if empty not in EMPTY_POLICIES:
            raise ValueError(f"empty must be one of {EMPTY_POLICIES}, got {empty!r}")
        self.definition = definition
        self.empty = empty
        self.threshold = float_arg("threshold", threshold)
        self.k = int_arg("k", k, minimum=1)
        self.reset()

    def reset(self) -> None:
        """Forgets everything accumulated."""
        self._scores: Optional[_Growing] = None
        self._targets = _Growing(torch.int8)
        self._classes: Optional[int] = None

    def update(self, scores: ArrayLike, targets: ArrayLike) -> None:
        """Adds a batch.

        Args:
            scores: ``[B, C]`` scores of any floating dtype, on any device.
            targets: ``[B, C]`` targets in {1, 0, -1}.
        """
        s = as_tensor(scores, "scores")
        t = as_tensor(targets, "targets")
        if s.dim() != 2 or t.shape != s.shape:
            raise ValueError(
                f"scores and targets must both have shape [batch, num_classes], got {tuple(s.shape)} and {tuple(t.shape)}"
            )
        if not s.is_floating_point():
            raise ValueError(f"scores must be a floating tensor, got {s.dtype}")
        if self._classes is not None and s.shape[1] != self._classes:
            raise ValueError(f"this accumulator holds {self._classes} classes, the batch has {s.shape[1]}")
        if torch.isnan(s).any():
            raise ValueError("scores contain NaN")
        t = t.cpu()
        valid = (t == 1) | (t == 0) | (t == -1)
        if not bool(valid.all()):
            bad = t[~valid][0].item()
            raise ValueError(f"targets must be 1, 0 or -1 (ignored); found {bad}")
        if self._scores is None:
            self._scores = _Growing(torch.float64 if s.dtype == torch.float64 else torch.float32)
        self._classes = s.shape[1]
        self._scores.append(s.detach().cpu().to(self._scores.dtype))
        self._targets.append(t.to(torch.int8))

    @property
    def num_samples(self) -> int:
        """Samples accumulated on this rank."""
        return self._targets.rows

    def compute(self) -> Dict[str, object]:
        """Every metric over what was accumulated (on all ranks, when distributed).

        Returns:
            A dict: ``mAP`` (float in [0, 1]), ``AP`` (float64 tensor ``[C]``),
            ``definition``, the threshold metrics at ``threshold`` (``CP`` ... ``OF1`` and
            per-class lists, see :func:`threshold_metrics`), and ``f"top{k}"`` with the
            same metrics for top-k predictions.
        """
        if self._scores is None:
            raise ValueError("nothing to compute: update() was never called")
        scores = _gather_rows(self._scores.view())
        targets = _gather_rows(self._targets.view())
        aps = average_precision(scores, targets, definition=self.definition, empty=self.empty)
        used = aps[~torch.isnan(aps)] if self.empty == "skip" else aps
        report: Dict[str, object] = {
            "mAP": float(used.mean()) if used.numel() else float("nan"),
            "AP": aps,
            "definition": self.definition,
        }
        report.update(threshold_metrics(scores, targets, self.threshold))
        report[f"top{self.k}"] = topk_metrics(scores, targets, self.k)
        return report
