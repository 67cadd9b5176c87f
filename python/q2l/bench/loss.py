"""Asymmetric loss: q2l-rs's fused kernel against the official formula in plain PyTorch.

For each logits shape (float32, CPU) it prints the forward+backward median time of q2l-rs
and of the official formula, eager and under ``torch.compile`` (``--compile``: Inductor by
default), their ratios, the peak memory each allocates during an eager step (in MiB and in
logits-sized buffers, the final ``.grad`` included), and the memory-bandwidth bound: the
time of one pass that reads two logits-sized tensors and writes a third
(``torch.add(x, y, out=g)``). Then CSL's partial-label loss in each mode (:mod:`.partial`).
"""

from collections.abc import Callable

import torch

from ..loss import PRESETS, AsymmetricLoss
from . import partial
from ._measure import fmt_mib, fmt_ms, median_seconds, peak_bytes, threads_line

SHAPES = [(64, 80), (256, 80), (128, 1000), (128, 9605), (1024, 9605)]
QUICK_SHAPES = [(64, 80), (128, 1000)]


def reference(preset: str) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """The official computation of a preset, op for op, in plain PyTorch autograd."""
    cfg = PRESETS[preset]
    gn, gp, clip, eps = cfg["gamma_neg"], cfg["gamma_pos"], cfg["clip"], cfg["eps"]
    detach = cfg["disable_torch_grad_focal_loss"]

    def loss(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        p = torch.sigmoid(x)
        p_neg = 1 - p
        if clip > 0:
            p_neg = (p_neg + clip).clamp(max=1)
        ce = y * torch.log(p.clamp(min=eps)) + (1 - y) * torch.log(p_neg.clamp(min=eps))
        with torch.set_grad_enabled(not detach and torch.is_grad_enabled()):
            pt = p * y + p_neg * (1 - y)
            w = torch.pow(1 - pt, gp * y + gn * (1 - y))
        total = -(ce * w).sum()
        if cfg["reduction"] == "mean":
            total = total / x.numel()
        elif cfg["reduction"] == "batchmean":
            total = total / x.shape[0]
        return total * cfg["scale"]

    return loss


def _bufs(nbytes, buf):
    return "     n/a" if nbytes is None else f"{nbytes / buf:8.1f}"


def _step(fn, x, y):
    def run():
        x.grad = None
        fn(x, y).backward()

    return run


def _compiled(fn, backend: str):
    return None if backend == "none" else torch.compile(fn, backend=backend)


def main(quick: bool = False, preset: str = "all", device: str = "cpu", compile_backend: str = "inductor") -> int:
    presets = ["query2label", "asl"] if preset == "all" else [preset]
    shapes = QUICK_SHAPES if quick else SHAPES
    min_time = 0.05 if quick else 0.5
    dev = torch.device(device)
    print(
        f"Asymmetric loss, forward+backward, float32, {dev}.",
        threads_line(),
        f"torch.compile backend: {compile_backend}.",
    )
    for name in presets:
        ours = AsymmetricLoss.from_preset(name)
        ref = reference(name)
        ours_c, ref_c = _compiled(ours, compile_backend), _compiled(ref, compile_backend)
        print(f"\npreset {name!r}: q2l.AsymmetricLoss.from_preset({name!r}) vs the official formula in plain PyTorch")
        print(
            f"{'shape':>12} | {'q2l ms':>9} {'ref ms':>9} {'speedup':>8} | {'q2l c ms':>9} {'ref c ms':>9}"
            f" {'ref c/q2l':>9} {'ref c/q2l c':>11} | {'bw-bound ms':>11} {'q2l/bound':>9}"
            f" | {'q2l MiB':>8} {'ref MiB':>8} {'q2l bufs':>8}"
            f" {'ref bufs':>8}"
        )
        for shape in shapes:
            g = torch.Generator().manual_seed(0)
            x = (torch.randn(shape, generator=g) * 3).to(dev).requires_grad_()
            y = (torch.rand(shape, generator=g) < 0.04).float().to(dev)
            out = torch.empty(shape, device=dev)
            xd = x.detach()
            # Memory first: long timing loops leave the heap in a state that hides growth.
            buf = x.numel() * x.element_size()
            m_ours = peak_bytes(_step(ours, x, y), dev)
            x.grad = None
            m_ref = peak_bytes(_step(ref, x, y), dev)
            x.grad = None
            t_ours = median_seconds(_step(ours, x, y), min_time, device=dev)
            t_ref = median_seconds(_step(ref, x, y), min_time, device=dev)
            t_bw = median_seconds(lambda: torch.add(xd, y, out=out), min_time, device=dev)
            if ref_c is not None:
                t_ours_c = median_seconds(_step(ours_c, x, y), min_time, device=dev)
                t_ref_c = median_seconds(_step(ref_c, x, y), min_time, device=dev)
                compiled = f"{fmt_ms(t_ours_c)} {fmt_ms(t_ref_c)} {t_ref_c / t_ours:8.1f}x {t_ref_c / t_ours_c:10.1f}x"
            else:
                compiled = f"{'-':>9} {'-':>9} {'-':>9} {'-':>11}"
            print(
                f"{shape!s:>12} | {fmt_ms(t_ours)} {fmt_ms(t_ref)} {t_ref / t_ours:7.1f}x | {compiled} |"
                f" {fmt_ms(t_bw):>11} {t_ours / t_bw:8.1f}x | {fmt_mib(m_ours)} {fmt_mib(m_ref)}"
                f" {_bufs(m_ours, buf)} {_bufs(m_ref, buf)}"
            )
    print("\nc: under torch.compile; ref c/q2l: the compiled official formula's time over q2l's eager time,")
    print("ref c/q2l c: over q2l's compiled time (its custom operator in the graph).")
    what = "CUDA allocator peak" if dev.type == "cuda" else "peak resident memory"
    print(f"MiB / bufs: {what} added during one step (MiB, and in logits-sized buffers),")
    print("the final .grad included (one buffer, which any implementation allocates); on the CPU")
    print("page-granular, so only the larger shapes are meaningful.")
    return partial.main(quick=quick, device=device, compile_backend=compile_backend)
