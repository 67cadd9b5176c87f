"""mAP: q2l-rs against scikit-learn, torchmetrics and vectorised numpy, same process.

Scores are random normals with about 4% positives. Each competitor is timed with the
definition it implements, and q2l with the same one: scikit-learn's per-class loop and
torchmetrics' ``MultilabelAveragePrecision`` (step AP), and a numpy implementation of the
non-interpolated AP vectorised over classes (ASL's formula, all classes at once).
"""

import time
from collections.abc import Callable

import numpy as np
import torch

from ..metrics import average_precision
from ._measure import threads_line

SHAPES = [(5000, 80), (40137, 80), (20000, 9605)]
QUICK_SHAPES = [(2000, 40)]


def numpy_noninterpolated(scores: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """ASL's non-interpolated AP, vectorised over classes."""
    order = np.argsort(-scores, axis=0, kind="stable")
    ranked = np.take_along_axis(targets, order, axis=0).astype(np.float64)
    tp = np.cumsum(ranked, axis=0)
    ranks = np.arange(1, scores.shape[0] + 1, dtype=np.float64)[:, None]
    return (tp / ranks * ranked).sum(0) / np.maximum(ranked.sum(0), 1e-8)


def sklearn_loop(scores: np.ndarray, targets: np.ndarray) -> np.ndarray:
    from sklearn.metrics import average_precision_score

    return np.array([average_precision_score(targets[:, c], scores[:, c]) for c in range(scores.shape[1])])


def torchmetrics_ap(scores, targets) -> np.ndarray:
    from torchmetrics.functional.classification import multilabel_average_precision

    s, t = torch.as_tensor(scores), torch.as_tensor(targets)
    return multilabel_average_precision(s, t, num_labels=s.shape[1], average=None).cpu().numpy()


def _time(fn: Callable[[], object], repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def main(quick: bool = False, device: str = "cpu") -> int:
    print(
        f"mAP on random scores (about 4% positives), float32 scores, q2l and torchmetrics inputs on {device}.",
        threads_line(),
    )
    print("Times are the best of several runs (one run for competitors over 5 s).")
    shapes = QUICK_SHAPES if quick else SHAPES
    for n, c in shapes:
        rng = np.random.default_rng(0)
        scores = rng.standard_normal((n, c)).astype(np.float32)
        targets = (rng.random((n, c)) < 0.04).astype(np.int64)
        targets[0] = 1
        rows: list[tuple[str, str, float, float, float]] = []
        # On CUDA the inputs live on the device: q2l's time includes the copy to the host.
        s_in, t_in = (
            (scores, targets)
            if device == "cpu"
            else (torch.from_numpy(scores).to(device), torch.from_numpy(targets).to(device))
        )
        ours_step = _time(lambda: average_precision(s_in, t_in, definition="step"), 3)
        ours_ni = _time(lambda: average_precision(s_in, t_in, definition="noninterpolated"), 3)
        competitors = [("numpy (vectorised)", "noninterpolated", numpy_noninterpolated, ours_ni)]
        try:
            import torchmetrics  # noqa: F401

            def tm(_s, _t):
                out = torchmetrics_ap(s_in, t_in)
                if device != "cpu":
                    torch.cuda.synchronize()
                return out

            competitors.append(("torchmetrics", "step", tm, ours_step))
        except ImportError:
            print("  (torchmetrics not installed: skipped)")
        try:
            import sklearn  # noqa: F401

            competitors.append(("scikit-learn loop", "step", sklearn_loop, ours_step))
        except ImportError:
            print("  (scikit-learn not installed: skipped)")
        for name, definition, fn, ours in competitors:
            first = _time(lambda: fn(scores, targets), 1)
            theirs = first if first > 5 else min(first, _time(lambda: fn(scores, targets), 2))
            rows.append((name, definition, theirs, ours, theirs / ours))
        # The definitions agree with their competitors (a check, not a timing).
        ni = average_precision(scores, targets, definition="noninterpolated").numpy()
        assert np.allclose(ni, numpy_noninterpolated(scores, targets), atol=1e-9)
        print(f"\nshape ({n}, {c}): q2l step {ours_step * 1e3:.1f} ms, q2l noninterpolated {ours_ni * 1e3:.1f} ms")
        print(f"  {'competitor':<20} {'definition':<16} {'theirs s':>9} {'q2l s':>9} {'speedup':>8}")
        for name, definition, theirs, ours, ratio in rows:
            print(f"  {name:<20} {definition:<16} {theirs:9.3f} {ours:9.4f} {ratio:7.1f}x")
        fastest = min(rows, key=lambda r: r[2])
        print(f"  against the fastest competitor ({fastest[0]}): {fastest[4]:.1f}x")
    return 0
