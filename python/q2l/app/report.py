"""What a run leaves behind besides checkpoints: the metrics log, curves and attention overlays."""

from __future__ import annotations

import atexit
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F


def append_log(path: Path, row: dict) -> None:
    """One JSON object per epoch (JSON Lines), flushed at once."""
    with open(path, "a") as f:
        f.write(json.dumps(row) + "\n")


def _pyplot():
    """matplotlib's pyplot on the Agg backend, imported so that a run writes nothing outside
    its output folder.

    matplotlib creates ``~/.config/matplotlib`` and ``~/.cache/matplotlib`` when it is
    imported, and writes its font list into the latter. Where the user has neither folder
    (a fresh HOME, a sandbox) and ``MPLCONFIGDIR`` is unset, they go to a temporary folder
    removed at exit instead; a user's existing matplotlib folders are used as they are.
    """
    if "matplotlib" not in sys.modules and "MPLCONFIGDIR" not in os.environ:
        home = Path.home()
        config = Path(os.environ.get("XDG_CONFIG_HOME") or home / ".config") / "matplotlib"
        cache = Path(os.environ.get("XDG_CACHE_HOME") or home / ".cache") / "matplotlib"
        if not config.is_dir() and not cache.is_dir():
            folder = tempfile.mkdtemp(prefix="q2l-matplotlib-")
            atexit.register(shutil.rmtree, folder, True)
            os.environ["MPLCONFIGDIR"] = folder
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_curves(history: list[dict], path: Path) -> None:
    """Training loss and validation mAP (raw and EMA) per epoch, as a PNG."""
    plt = _pyplot()

    epochs = [h["epoch"] for h in history]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.6))
    ax1.plot(epochs, [h["train_loss"] for h in history], marker="o")
    ax1.set_xlabel("epoch")
    ax1.set_ylabel("training loss")
    ax1.set_yscale("log")
    ax2.plot(epochs, [100 * h["mAP"] for h in history], marker="o", label="model")
    ax2.plot(epochs, [100 * h["mAP_ema"] for h in history], marker="s", label="EMA")
    ax2.set_xlabel("epoch")
    ax2.set_ylabel("validation mAP (%)")
    ax2.legend()
    for ax in (ax1, ax2):
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _heat(map_: torch.Tensor, size) -> np.ndarray:
    m = F.interpolate(map_[None, None].float(), size=size, mode="bilinear", align_corners=False)[0, 0]
    m = (m - m.min()) / (m.max() - m.min() + 1e-12)
    return m.numpy()


def attention_figure(
    image: torch.Tensor,
    maps: torch.Tensor,
    scores: torch.Tensor,
    classes: Sequence[str],
    path: Path,
    targets: torch.Tensor | None = None,
    max_labels: int = 4,
) -> list[int]:
    """Saves the image next to each top label's attention map overlaid on it.

    Args:
        image: uint8 ``[3, H, W]``.
        maps: ``[K, h, w]`` cross-attention of the last decoder layer.
        scores: ``[K]`` probabilities.
        classes: label names.
        path: PNG to write.
        targets: optional ``[K]`` ground truth, marked in the titles.
        max_labels: how many labels (highest scores) to show.

    Returns:
        The labels shown.
    """
    plt = _pyplot()
    shown = torch.argsort(scores, descending=True)[:max_labels].tolist()
    img = image.permute(1, 2, 0).numpy()
    fig, axes = plt.subplots(1, len(shown) + 1, figsize=(2.6 * (len(shown) + 1), 2.8))
    axes[0].imshow(img)
    axes[0].set_title("image")
    for ax, k in zip(axes[1:], shown, strict=False):
        ax.imshow(img)
        ax.imshow(_heat(maps[k], img.shape[:2]), cmap="jet", alpha=0.45)
        mark = "" if targets is None else (" (true)" if targets[k] == 1 else " (false)")
        ax.set_title(f"{classes[k]} {scores[k]:.2f}{mark}", fontsize=8)
    for ax in axes:
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return shown
