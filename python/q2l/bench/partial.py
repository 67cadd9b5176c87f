"""CSL's partial-label loss: q2l-rs against the official ``PartialSelectiveLoss`` formula.

For each logits shape (float32, half the targets unannotated) and each mode it prints the
forward+backward median time of :func:`q2l.loss.partial_asymmetric_loss` and of the official
computation in plain PyTorch autograd, eager and (with a compile backend) the official one
under ``torch.compile``, timed in turns. On the CPU every mode runs the fused
asymmetric-loss kernel with per-element weights (two passes for ``negative`` and
``selective``, whose defaults focus unannotated labels harder than negatives).
"""

from collections.abc import Callable

import torch

from ..loss import PARTIAL_MODES, PartialAsymmetricLoss
from ..loss.partial import PARTIAL_DEFAULTS
from ._measure import fmt_ms, interleaved_medians, threads_line

SHAPES = [(64, 80), (128, 1000), (128, 9605)]
QUICK_SHAPES = [(16, 80)]


def official(mode: str) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """The official forward with its ``train.py`` defaults, op for op (no class priors)."""
    o = PARTIAL_DEFAULTS

    def loss(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        t_pos, t_neg, t_un = (y == 1).float(), (y == 0).float(), (y == -1).float()
        xs_pos = torch.sigmoid(x)
        xs_neg = 1.0 - xs_pos
        if o["clip"] > 0:
            xs_neg = (xs_neg + o["clip"]).clamp(max=1)
        with torch.no_grad():
            w = torch.ones_like(x)
            if mode in ("ignore", "ignore_normalize_classes"):
                w[y == -1] = 0
                if mode == "ignore_normalize_classes":
                    w *= (1 / (1 + (y != -1).sum(1, keepdim=True).float()) + 1).expand_as(w)
            elif mode == "selective":
                cond = torch.where(y.flatten() == -1)[0]
                order = torch.argsort(xs_neg.flatten()[cond])
                w.view(-1)[cond[order[: o["likelihood_topk"] * x.shape[0]]]] = 0
        bce = o["alpha_pos"] * t_pos * torch.log(xs_pos.clamp(min=1e-8))
        bce = bce + o["alpha_neg"] * t_neg * torch.log(xs_neg.clamp(min=1e-8))
        bce = bce + o["alpha_unann"] * t_un * torch.log(xs_neg.clamp(min=1e-8))
        with torch.no_grad():
            gamma = o["gamma_pos"] * t_pos + o["gamma_neg"] * t_neg + o["gamma_unann"] * t_un
            focal = torch.pow(1 - xs_pos * t_pos - xs_neg * (t_neg + t_un), gamma)
        return -(bce * focal * w).sum()

    return loss


def _step(fn, x, y):
    def run():
        x.grad = None
        fn(x, y).backward()

    return run


def main(quick: bool = False, device: str = "cpu", compile_backend: str = "inductor") -> int:
    dev = torch.device(device)
    min_time = 0.05 if quick else 0.5
    print(
        f"\nCSL partial-label loss, forward+backward, float32, {dev}, half the targets unannotated.",
        threads_line(),
    )
    print(
        f"{'shape':>12} {'mode':>24} | {'q2l ms':>9} {'official':>9} {'ratio':>6} | {'official c':>10} {'ratio c':>7}"
    )
    for shape in QUICK_SHAPES if quick else SHAPES:
        g = torch.Generator().manual_seed(0)
        x = (torch.randn(shape, generator=g) * 3).to(dev).requires_grad_()
        y = (torch.rand(shape, generator=g) < 0.1).float()
        y[torch.rand(shape, generator=g) < 0.5] = -1
        y = y.to(dev)
        for mode in PARTIAL_MODES:
            ours, ref = PartialAsymmetricLoss(mode), official(mode)
            # The same computation is timed: float32 sums agree to rounding.
            with torch.no_grad():
                torch.testing.assert_close(ours(x, y), ref(x, y), rtol=1e-4, atol=1e-3)
            fns = [_step(ours, x, y), _step(ref, x, y)]
            if compile_backend != "none":
                fns.append(_step(torch.compile(ref, backend=compile_backend), x, y))
            times = interleaved_medians(fns, min_time, device=dev)
            line = f"{shape!s:>12} {mode:>24} | {fmt_ms(times[0])} {fmt_ms(times[1])} {times[1] / times[0]:5.1f}x"
            if len(times) == 3:
                line += f" | {fmt_ms(times[2]):>10} {times[2] / times[0]:6.1f}x"
            print(line)
    print("ratio: official / q2l (above 1: q2l is faster); c: the official formula under torch.compile.")
    return 0
