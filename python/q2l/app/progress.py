"""A dependency-free progress bar: redrawn in place on a terminal, a line now and then elsewhere."""

from __future__ import annotations

import sys
import time


class Progress:
    """Counts steps of one phase and shows rate, time left and a running value."""

    def __init__(self, total: int, label: str, enabled: bool = True, every: int = 20) -> None:
        self.total, self.label, self.enabled, self.every = total, label, enabled, max(1, every)
        self.done, self.start = 0, time.perf_counter()
        self.tty = sys.stdout.isatty()

    def step(self, note: str = "") -> None:
        self.done += 1
        if not self.enabled:
            return
        if self.tty or self.done % self.every == 0 or self.done == self.total:
            elapsed = time.perf_counter() - self.start
            rate = self.done / max(elapsed, 1e-9)
            left = (self.total - self.done) / max(rate, 1e-9)
            filled = int(24 * self.done / max(self.total, 1))
            bar = "#" * filled + "." * (24 - filled)
            line = f"{self.label} [{bar}] {self.done}/{self.total} {rate:.1f} it/s, {left:.0f}s left {note}"
            if self.tty:
                end = "\n" if self.done == self.total else ""
                print("\r" + line.ljust(100), end=end, flush=True)
            else:
                print(line, flush=True)
