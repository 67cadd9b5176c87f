"""Whole-run checkpoints: written atomically, refused when the architecture differs.

A checkpoint holds tensors and plain Python values only (dicts, lists, tuples, strings,
numbers, None), so it loads with ``torch.load(..., weights_only=True)``: reading one never
runs code from the file. RNG states are stored in that form too.
"""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .._files import CheckpointError, load_torch_file
from .._files import load_state_checked as load_state
from ..errors import InvalidArgumentError

__all__ = [
    "CheckpointError",
    "check_architecture",
    "config_of",
    "load",
    "load_state",
    "rng_state",
    "save",
    "set_rng_state",
]

FORMAT = "q2l-train-checkpoint/1"


def rng_state() -> dict[str, Any]:
    """Every RNG the training draws from, as tensors and plain values."""
    version, mt, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "python": {"version": version, "state": list(mt), "gauss": gauss},
        "numpy": {
            "kind": kind,
            "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached),
        },
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    py = state["python"]
    random.setstate((py["version"], tuple(py["state"]), py["gauss"]))
    n = state["numpy"]
    np.random.set_state(
        (n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached_gaussian"])
    )
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save(path: Path, payload: dict[str, Any]) -> None:
    """Writes to a temporary file, flushes it to disk, then renames: a crash or a full disk
    never leaves a half-written checkpoint, and the previous one stays as it was.

    Raises:
        CheckpointError: the write failed (disk full, file too large, no permission); says
            whether a previous checkpoint at ``path`` is intact.
    """
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    try:
        with open(tmp, "wb") as f:
            torch.save({"format": FORMAT, **payload}, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except (OSError, RuntimeError) as err:  # torch reports a failed write as RuntimeError
        tmp.unlink(missing_ok=True)
        kept = f"the previous checkpoint {os.fspath(path)} is unchanged" if path.exists() else "no checkpoint was kept"
        reason = " ".join(str(err).split())[:200]
        raise CheckpointError(f"could not write checkpoint {os.fspath(path)} ({reason}); {kept}") from None


def load(path: str) -> dict[str, Any]:
    """Reads a checkpoint written by :func:`save`, with clear errors for anything else.

    Raises:
        FileNotFoundError: nothing at ``path``.
        CheckpointError: not a q2l checkpoint, unreadable, or a pickle holding objects other
            than tensors and plain values (it is refused, never run).
    """
    ckpt = load_torch_file(path, "checkpoint")
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise CheckpointError(f"{os.fspath(path)!r} is not a q2l training checkpoint (format {FORMAT})")
    return ckpt


def config_of(ckpt: dict[str, Any], path: str):
    """The checkpoint's :class:`~q2l.app.config.TrainConfig`; errors name the file and key."""
    from .config import TrainConfig, check_values

    for key in ("config", "classes", "best", "model", "ema"):
        if key not in ckpt:
            raise CheckpointError(f"{os.fspath(path)}: missing key {key!r}")
    values = check_values(ckpt["config"], f"{os.fspath(path)}: 'config'")
    classes = ckpt["classes"]
    if not isinstance(classes, list) or not all(isinstance(c, str) for c in classes) or not classes:
        raise CheckpointError(f"{os.fspath(path)}: key 'classes' must be a non-empty list of names")
    return TrainConfig(**values)


def check_architecture(ckpt: dict[str, Any], expected: dict[str, Any], path: str) -> None:
    """Raises naming every setting on which the checkpoint and the model disagree."""
    from .config import canonical_head

    got = dict(ckpt.get("architecture", {}))
    if isinstance(got.get("head"), str):
        got["head"] = canonical_head(got["head"])
    diff = {k: (got.get(k), v) for k, v in expected.items() if got.get(k) != v}
    if diff:
        details = ", ".join(f"{k}: checkpoint {a!r} vs requested {b!r}" for k, (a, b) in diff.items())
        raise InvalidArgumentError(f"checkpoint {path!r} is for a different architecture ({details})")
