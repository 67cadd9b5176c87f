"""The speed claims in one run, each a ratio against the official code in this process.

``python -m q2l.bench speed`` times, rounds interleaved (official, q2l, official, q2l, ...), and
prints the median of the per-round ratios with their range:

- the Query2Label head, COCO configuration (d=2048, FFN 8192, 4 heads, 1 encoder and 2 decoder
  layers, K=80, 14x14 map), batch 8: inference in eval mode and a training step (forward and
  backward), against the official transformer, eager and under ``torch.compile``;
- the asymmetric loss (official ASL formula), forward and backward, at (128, 9605) eager and
  at (1024, 9605) against the compiled official formula;
- mAP (non-interpolated, ASL's definition) over (40137, 80) scores against numpy vectorised
  over classes;
- the ML-Decoder head at K=9605 (G=100 groups), batch 8, inference, against the official module.

``--compile`` picks the backend of the compiled rows (``none`` leaves them out). ``--busy``
keeps one other process spinning on a core for the whole run, as a loader or another job
would; ``--quick`` shrinks every case (for tests).
"""

import multiprocessing
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from ..heads import MLDecoderHead, Query2LabelHead
from ..loss import AsymmetricLoss
from ..metrics import average_precision
from ._measure import threads_line
from .groups import official_ml_decoder_forward
from .head import official_forward
from .loss import reference
from .metrics import numpy_noninterpolated


def _spin() -> None:
    while True:
        pass


def _per_call(fn: Callable[[], object], min_time: float) -> Callable[[], float]:
    """``fn`` repeated enough times to last ``min_time``; returns seconds per call."""
    fn()
    t0 = time.perf_counter()
    fn()
    repeats = max(1, int(min_time / max(time.perf_counter() - t0, 1e-9)))

    def run() -> float:
        t0 = time.perf_counter()
        for _ in range(repeats):
            fn()
        return (time.perf_counter() - t0) / repeats

    return run


def ratio_rounds(ref: Callable[[], object], ours: Callable[[], object], rounds: int, min_time: float) -> list[float]:
    """``ref``'s time over ``ours``' in each of ``rounds`` interleaved rounds."""
    a, b = _per_call(ref, min_time), _per_call(ours, min_time)
    out = []
    for _ in range(rounds):
        ta = a()
        tb = b()
        out.append(ta / tb)
    return out


def _row(name: str, ratios: list[float], goal: float | None) -> None:
    med = statistics.median(ratios)
    goal = goal if _RUN["goals"] else None
    verdict = "" if goal is None else ("  ok" if med >= goal else f"  below {goal}x")
    print(f"  {name:<58} {med:6.2f}x  ({min(ratios):.2f}-{max(ratios):.2f}){verdict}")


#: Set by ``main``: the goals are shown for the real cases only; the compile backend.
_RUN: dict[str, Any] = {"goals": True, "backend": "inductor"}


def _compiled(fn: Any, trial: Callable[[Any], object]) -> Any:
    """``torch.compile(fn)`` if ``trial(compiled)`` runs here, else None (and says so)."""
    if _RUN["backend"] == "none":
        return None
    compiled = torch.compile(fn, backend=_RUN["backend"])
    try:
        trial(compiled)
    except Exception as err:  # no C++ compiler, or Inductor fails on this machine
        print(f"  (torch.compile unavailable here, compiled rows left out: {type(err).__name__})")
        return None
    return compiled


def _head(quick: bool, rounds: int, min_time: float) -> None:
    torch.manual_seed(0)
    if quick:
        head, batch, side = Query2LabelHead(num_classes=10, in_channels=64, d_model=64, dim_feedforward=128), 2, 4
    else:
        head, batch, side = Query2LabelHead(), 8, 14
    x = torch.randn(batch, head.in_channels, side, side)
    head.eval()
    print(f"Query2Label head, batch {batch}, {side}x{side}:")
    with torch.no_grad():
        official_c = _compiled(official_forward, lambda f: f(head, x))
        torch.testing.assert_close(head(x), official_forward(head, x), rtol=1e-4, atol=1e-4)
        _row(
            "inference vs official eager",
            ratio_rounds(lambda: official_forward(head, x), lambda: head(x), rounds, min_time),
            1.06,
        )
        if official_c is not None:
            _row(
                "inference vs official compiled",
                ratio_rounds(lambda: official_c(head, x), lambda: head(x), rounds, min_time),
                None,
            )
    head.train()

    def step(fn: Callable[[], torch.Tensor]) -> Callable[[], None]:
        def run() -> None:
            head.zero_grad(set_to_none=False)
            fn().square().mean().backward()

        return run

    _row(
        "training step vs official eager",
        ratio_rounds(step(lambda: official_forward(head, x)), step(lambda: head(x)), rounds, min_time),
        1.05,
    )


def _loss(quick: bool, rounds: int, min_time: float) -> None:
    ours, ref = AsymmetricLoss.from_preset("asl"), reference("asl")
    small, large = ((16, 100), (64, 100)) if quick else ((128, 9605), (1024, 9605))
    print("Asymmetric loss (official ASL), forward + backward:")
    probe = torch.zeros(large, requires_grad=True)
    ref_c = _compiled(ref, lambda f: f(probe, torch.zeros(large)).backward())
    for shape, against, goal in ((small, "eager", 10.0), (large, "compiled", 3.0)):
        g = torch.Generator().manual_seed(0)
        x = (torch.randn(shape, generator=g) * 3).requires_grad_()
        y = (torch.rand(shape, generator=g) < 0.04).float()

        def step(fn: Any) -> Callable[[], None]:
            def run() -> None:
                x.grad = None
                fn(x, y).backward()

            return run

        theirs = ref if against == "eager" else ref_c
        if theirs is None:
            continue
        _row(f"{shape} vs official {against}", ratio_rounds(step(theirs), step(ours), rounds, min_time), goal)


def _map(quick: bool, rounds: int, min_time: float) -> None:
    n, c = (2000, 40) if quick else (40137, 80)
    rng = np.random.default_rng(0)
    scores = rng.standard_normal((n, c)).astype(np.float32)
    targets = (rng.random((n, c)) < 0.04).astype(np.int64)
    targets[0] = 1
    ours = lambda: average_precision(scores, targets, definition="noninterpolated")  # noqa: E731
    assert np.allclose(ours().numpy(), numpy_noninterpolated(scores, targets), atol=1e-9)
    print("mAP (non-interpolated):")
    _row(
        f"({n}, {c}) vs numpy vectorised",
        ratio_rounds(lambda: numpy_noninterpolated(scores, targets), ours, rounds, min_time),
        5.0,
    )


def _ml_decoder(quick: bool, rounds: int, min_time: float) -> None:
    torch.manual_seed(0)
    k, batch = (300, 2) if quick else (9605, 8)
    head = MLDecoderHead(num_classes=k, in_channels=64 if quick else 2048).eval()
    x = torch.randn(batch, head.in_channels, 14, 14)
    print(f"ML-Decoder head, K={k}, batch {batch}, inference:")
    with torch.no_grad():
        torch.testing.assert_close(head(x), official_ml_decoder_forward(head, x), rtol=1e-4, atol=1e-4)
        _row(
            "vs the official module",
            ratio_rounds(lambda: official_ml_decoder_forward(head, x), lambda: head(x), rounds, min_time),
            1.2,
        )


def main(quick: bool = False, busy: bool = False, compile_backend: str = "inductor") -> int:
    rounds, min_time = (3, 0.01) if quick else (9, 0.3)
    _RUN.update(goals=not quick, backend=compile_backend)
    spinner = None
    if busy:
        spinner = multiprocessing.get_context("spawn").Process(target=_spin, daemon=True)
        spinner.start()
    try:
        load = "one other process spinning on a core" if busy else "no other load started"
        print(f"Speed against the official code, {rounds} interleaved rounds; {load}.", threads_line())
        print("Each row: median of the per-round ratios (official time / q2l time), (range), and the goal.\n")
        for case in (_head, _loss, _map, _ml_decoder):
            case(quick, rounds, min_time)
    finally:
        if spinner is not None:
            spinner.terminate()
            spinner.join()
    return 0
