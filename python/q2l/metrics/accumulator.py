"""A streaming accumulator: ``update`` per batch, ``compute`` at the end, across ranks."""

from typing import Any

import torch

from .. import _native
from .._arrays import as_tensor
from .._options import bind_positional, documented
from .._validate import float_arg, int_arg
from ..errors import InvalidArgumentError
from .functional import (
    OPTIONS,
    ArrayLike,
    _same_device,
    average_precision_and_mean,
    threshold_metrics,
    topk_metrics,
)


class _Growing:
    """A host row buffer that doubles its capacity, so appends never hold two full copies.

    Blocks from an accelerator are converted there and copied without waiting (into pinned
    memory); :meth:`view` waits for the copies.
    """

    def __init__(self, dtype: torch.dtype) -> None:
        self.dtype = dtype
        self.data: torch.Tensor | None = None
        self.rows = 0
        self.pending = False

    def _alloc(self, rows: int, cols: int, pinned: bool) -> torch.Tensor:
        return torch.empty((rows, cols), dtype=self.dtype, pin_memory=pinned)

    def append(self, block: torch.Tensor) -> None:
        n = block.shape[0]
        on_device = block.device.type != "cpu"
        if self.data is None:
            self.data = self._alloc(max(n, 1024), block.shape[1], on_device and torch.cuda.is_available())
        elif self.rows + n > self.data.shape[0]:
            self.wait()
            rows = max(2 * self.data.shape[0], self.rows + n)
            bigger = self._alloc(rows, self.data.shape[1], self.data.is_pinned())
            bigger[: self.rows] = self.data[: self.rows]
            self.data = bigger
        # On an accelerator the dtype conversion runs there, before the copy.
        source = block.to(self.dtype) if on_device else block
        self.data[self.rows : self.rows + n].copy_(source, non_blocking=on_device)
        self.pending |= on_device
        self.rows += n

    def wait(self) -> None:
        if self.pending:
            torch.cuda.synchronize()
            self.pending = False

    def view(self) -> torch.Tensor:
        assert self.data is not None
        self.wait()
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
    return torch.cat([p[: int(s.item())] for p, s in zip(parts, sizes, strict=False)]).cpu()


@documented(OPTIONS, ("definition", "empty"))
class MultilabelMetrics:
    """Accumulates scores and targets batch by batch and computes every metric at the end.

    Memory is 5 bytes per (sample, class) entry (float32 score, int8 target; 9 for
    float64 scores), in buffers that grow by doubling; nothing else is kept. Under
    ``torch.distributed``, :meth:`compute` gathers every rank's entries first (all ranks
    must call it), so each rank returns the metrics of the whole evaluation set.

    Args:
        {options}
        threshold: Threshold for CP/CR/CF1/OP/OR/OF1 (scores as given: use 0.0 for logits).
        k: k of the top-k metrics.

    Example:
        >>> metrics = MultilabelMetrics()
        >>> for images, targets in loader:
        ...     metrics.update(model(images).sigmoid(), targets)
        >>> report = metrics.compute()
        >>> report["mAP"], report["OF1"], report["top3"]["CF1"]
    """

    def __init__(self, *args: Any, threshold: float = 0.5, k: int = 3, **options: Any) -> None:
        # Checked here (by Rust), not at compute() after a whole evaluation.
        self.options = OPTIONS.resolve(bind_positional(("definition", "empty"), args, options, "MultilabelMetrics"))
        self.definition: str = self.options["definition"]
        self.empty: str = self.options["empty"]
        self.threshold = float_arg("threshold", threshold)
        self.k = int_arg("k", k, minimum=1)
        self.reset()

    def reset(self) -> None:
        """Forgets everything accumulated."""
        self._scores: _Growing | None = None
        self._targets = _Growing(torch.int8)
        self._classes: int | None = None

    def update(self, scores: ArrayLike, targets: ArrayLike) -> None:
        """Adds a batch.

        Args:
            scores: ``[B, C]`` finite scores of any floating dtype, on any device.
            targets: ``[B, C]`` targets in {1, 0, -1}, on the scores' device.

        Raises:
            ValueError: a wrong shape, a NaN or infinite score, or a target outside
                {1, 0, -1}, naming the argument and the first bad index. The batch is
                then not kept; the batches given before are.
        """
        s = as_tensor(scores, "scores")
        t = as_tensor(targets, "targets")
        if s.dim() != 2 or t.shape != s.shape:
            raise InvalidArgumentError(
                "scores and targets must both have shape [batch, num_classes],"
                f" got {tuple(s.shape)} and {tuple(t.shape)}"
            )
        if not s.is_floating_point():
            raise InvalidArgumentError(f"scores must be a floating tensor, got {s.dtype}")
        if self._classes is not None and s.shape[1] != self._classes:
            raise InvalidArgumentError(f"this accumulator holds {self._classes} classes, the batch has {s.shape[1]}")
        _same_device(s, t)
        # Checked before anything is kept, so a refused batch leaves the others intact (on
        # an accelerator this reads one flag back: one synchronisation per batch).
        _native.check_metric_batch(scores=s, targets=t)
        if self._scores is None:
            self._scores = _Growing(torch.float64 if s.dtype == torch.float64 else torch.float32)
        self._classes = s.shape[1]
        self._scores.append(s.detach())
        self._targets.append(t.detach())

    @property
    def num_samples(self) -> int:
        """Samples accumulated on this rank."""
        return self._targets.rows

    def compute(self) -> dict[str, object]:
        """Every metric over what was accumulated (on all ranks, when distributed).

        Returns:
            A dict: ``mAP`` (float in [0, 1]), ``AP`` (float64 tensor ``[C]``),
            ``definition``, the threshold metrics at ``threshold`` (``CP`` ... ``OF1`` and
            per-class lists, see :func:`threshold_metrics`), and ``f"top{k}"`` with the
            same metrics for top-k predictions.
        """
        if self._scores is None:
            raise InvalidArgumentError("nothing to compute: update() was never called")
        scores = _gather_rows(self._scores.view())
        targets = _gather_rows(self._targets.view())
        aps, mean = average_precision_and_mean(scores, targets, **self.options)
        report: dict[str, object] = {
            "mAP": mean,
            "AP": aps,
            "definition": self.definition,
        }
        report.update(threshold_metrics(scores, targets, self.threshold))
        report[f"top{self.k}"] = topk_metrics(scores, targets, self.k)
        return report
