"""Timing and CPU-memory measurement helpers for the benchmarks."""

import gc
import statistics
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager

import torch


@contextmanager
def one_torch_thread() -> Iterator[None]:
    """torch's intra-op threads set to one for the block (single-image timings), then back."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _sync(device: torch.device | None) -> None:
    if device is not None and device.type == "cuda":
        torch.cuda.synchronize(device)


def median_seconds(
    fn: Callable[[], object],
    min_time: float = 0.5,
    min_runs: int = 5,
    warmup: int = 2,
    device: torch.device | None = None,
) -> float:
    """Median wall time of ``fn()`` over enough runs to last ``min_time`` seconds
    (synchronising a CUDA ``device`` around each run)."""
    for _ in range(warmup):
        fn()
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < min_runs or time.perf_counter() - start < min_time:
        _sync(device)
        t0 = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - t0)
        if len(times) >= 1000:
            break
    return statistics.median(times)


def interleaved_medians(
    fns: list[Callable[[], object]],
    min_time: float = 0.5,
    min_rounds: int = 5,
    warmup: int = 2,
    device: torch.device | None = None,
) -> list[float]:
    """Median wall time of each of ``fns``, run in turns (one call of each per round) for
    at least ``min_time`` seconds: on a machine whose speed drifts from minute to minute,
    their ratios stay fair."""
    for fn in fns:
        for _ in range(warmup):
            fn()
    times: list[list[float]] = [[] for _ in fns]
    start = time.perf_counter()
    while len(times[0]) < min_rounds or time.perf_counter() - start < min_time:
        for fn, out in zip(fns, times, strict=True):
            _sync(device)
            t0 = time.perf_counter()
            fn()
            _sync(device)
            out.append(time.perf_counter() - t0)
        if len(times[0]) >= 1000:
            break
    return [statistics.median(t) for t in times]


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise OSError(f"{field} not in /proc/self/status")


def peak_bytes(fn: Callable[[], object], device: torch.device) -> int | None:
    """Peak memory added while ``fn()`` runs: the CUDA caching allocator's peak on a GPU,
    resident memory (:func:`peak_rss_bytes`) on the CPU."""
    if device.type != "cuda":
        return peak_rss_bytes(fn)
    torch.cuda.synchronize(device)
    base = torch.cuda.memory_allocated(device)
    torch.cuda.reset_peak_memory_stats(device)
    fn()
    torch.cuda.synchronize(device)
    return torch.cuda.max_memory_allocated(device) - base


def peak_rss_bytes(fn: Callable[[], object]) -> int | None:
    """Peak resident memory added while ``fn()`` runs, or None where it cannot be read.

    Resets the kernel's high-water mark (``/proc/self/clear_refs``, Linux) and reads it
    back, so it counts every allocation (torch's, Rust's, the allocator's slack) at page
    granularity; meaningful for buffers of a few MiB and up.
    """
    gc.collect()
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        base = _status_kib("VmRSS")
        fn()
        peak = _status_kib("VmHWM")
    except OSError:
        return None
    return max(peak - base, 0) * 1024


def saved_activation_bytes(fn: Callable[[], torch.Tensor], exclude: Iterable[torch.Tensor] = ()) -> int:
    """Bytes of distinct tensor storages autograd keeps for backward while ``fn()`` runs.

    Counts what a training step holds between forward and backward (the bulk of its peak
    memory beyond parameters and gradients), exactly and independently of the allocator;
    storages of ``exclude`` (the parameters) are not counted. Ops recorded from Rust are
    seen too: the hooks are libtorch's thread-local defaults.
    """
    skip = {t.untyped_storage().data_ptr() for t in exclude}
    seen = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        if storage.data_ptr() not in skip:
            seen[storage.data_ptr()] = storage.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = fn()
    del out
    return sum(seen.values())


def fmt_ms(seconds: float) -> str:
    return f"{seconds * 1e3:9.3f}"


def fmt_mib(nbytes: int | None) -> str:
    return "     n/a" if nbytes is None else f"{nbytes / 2**20:8.2f}"


def cpu_name() -> str:
    """The CPU's model name (Linux), for every figure's caption."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform

    return platform.processor() or "unknown CPU"


def threads_line() -> str:
    import os

    from .. import _native

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return (
        f"{cpu_name()}, {cores} cores available; torch {torch.__version__}, {torch.get_num_threads()} threads,"
        f" q2l kernels: {_native.simd_level()}"
    )
