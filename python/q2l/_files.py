"""Reading PyTorch files without running code from them."""

import os
import pickle
from collections.abc import Mapping
from typing import Any

from .errors import InvalidArgumentError, MissingFileError


class CheckpointError(InvalidArgumentError):
    """A weights or checkpoint file that cannot be loaded, or that would run code if it were."""


def _reason(err: Exception) -> str:
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    for line in lines:
        if "global" in line.lower():
            return line[:300]
    return (lines[0] if lines else type(err).__name__)[:300]


def read_json(path: str | os.PathLike) -> Any:
    """The JSON value of the text file ``path``; malformed, undecodable or absurdly nested
    text is an :class:`InvalidArgumentError` naming the file (never a ``RecursionError``)."""
    import json

    name = os.fsdecode(path)
    try:
        with open(name, encoding="utf-8") as f:
            return json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise InvalidArgumentError(f"{name}: not valid JSON ({err})") from None
    except RecursionError:
        raise InvalidArgumentError(f"{name}: JSON nested too deeply") from None


def load_torch_file(path: str | os.PathLike, what: str = "checkpoint") -> Any:
    """``torch.load(path, map_location="cpu", weights_only=True)`` with errors that name the file.

    Only tensors and plain Python values are unpickled; a file holding anything else (a
    pickle that would call a function, build an object) is refused before any of it runs.

    Raises:
        FileNotFoundError: nothing at ``path``.
        CheckpointError: not a regular file, not a PyTorch file, or refused as unsafe.
    """
    import torch

    name = os.fsdecode(path)
    if not os.path.exists(name):
        raise MissingFileError(f"no {what} at {name!r}")
    if not os.path.isfile(name):
        raise CheckpointError(f"{what} {name!r} is not a regular file")
    try:
        return torch.load(name, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        if "global" not in str(err).lower():  # not a disallowed object: just not a pickle torch reads
            raise CheckpointError(f"{what} {name!r} is not a readable PyTorch file: {_reason(err)}") from None
        raise CheckpointError(
            f"refusing to load {what} {name!r}: it holds objects other than tensors and plain values, which "
            f"could run code when unpickled ({_reason(err)})"
        ) from None
    except Exception as err:  # torch raises several types for corrupt or foreign files
        raise CheckpointError(f"{what} {name!r} is not a readable PyTorch file: {_reason(err)}") from None


def load_state_checked(model, state: Any, where: str) -> None:
    """``model.load_state_dict(state)`` with errors naming the first missing, unexpected,
    non-tensor or misshaped entry.

    Raises:
        CheckpointError: ``where``, then what does not fit.
    """
    import torch

    if not isinstance(state, dict):
        raise CheckpointError(f"{where}: expected a dict of tensors, got {type(state).__name__}")
    expected = model.state_dict()
    for key in expected:
        if key not in state:
            raise CheckpointError(f"{where}: missing tensor {key!r}")
    for key, value in state.items():
        if key not in expected:
            raise CheckpointError(f"{where}: unexpected tensor {key!r} (not in this architecture)")
        if not isinstance(value, torch.Tensor):
            raise CheckpointError(f"{where}: {key!r} is a {type(value).__name__}, not a tensor")
        if value.shape != expected[key].shape:
            raise CheckpointError(
                f"{where}: tensor {key!r} has shape {list(value.shape)}, the model expects {list(expected[key].shape)}"
            )
        if value.is_floating_point() != expected[key].is_floating_point():
            # load_state_dict would cast an int64 weight to float (or a float counter to int) silently.
            raise CheckpointError(f"{where}: tensor {key!r} is {value.dtype}, the model expects {expected[key].dtype}")
    model.load_state_dict(state)


def read_official_checkpoint(source: str | os.PathLike | Mapping) -> dict[str, Any]:
    """The state dict of an official checkpoint file (or of an already loaded dict)."""
    if isinstance(source, (str, os.PathLike)):
        source = load_torch_file(source, "checkpoint")
    if not isinstance(source, Mapping):
        raise InvalidArgumentError(f"a checkpoint must hold a dict, got {type(source).__name__}")
    state = source.get("state_dict", source.get("model", source))
    if not isinstance(state, Mapping) or not all(isinstance(k, str) for k in state):
        raise InvalidArgumentError("a checkpoint's state dict must map parameter names to tensors")
    return {k[len("module.") :] if k.startswith("module.") else k: v for k, v in state.items()}
