"""Array arguments of the public API: numpy arrays and torch tensors as torch tensors.

A numpy array becomes a view where torch can take one, and a copy made once where it
cannot (negative strides, as ``np.flip`` leaves, or a foreign byte order), so every array a
user can make works where a tensor does, instead of meeting torch's own error.
"""

import numpy as np
import torch

from .errors import InvalidArgumentError, InvalidTypeError

ArrayLike = np.ndarray | torch.Tensor


def as_tensor(a: ArrayLike, name: str) -> torch.Tensor:
    """A torch tensor of ``a`` (argument ``name``): a detached tensor as is, a numpy array of
    numbers as a view, or a copy where its strides are negative or its byte order foreign."""
    if isinstance(a, torch.Tensor):
        return a.detach()
    if isinstance(a, np.ndarray):
        if a.dtype == np.bool_ or a.dtype.kind in "iuf":
            if not a.dtype.isnative or min(a.strides, default=0) < 0:
                a = a.astype(a.dtype.newbyteorder("="))
            return torch.from_numpy(a)
        raise InvalidArgumentError(f"{name} must hold numbers, got a numpy array of dtype {a.dtype}")
    raise InvalidTypeError(f"{name} must be a numpy array or a torch.Tensor, got {type(a).__name__}")


def tensor_of(a: object, name: str) -> torch.Tensor:
    """:func:`as_tensor`, also for a (nested) sequence of numbers, as ``torch.as_tensor``
    reads it (float32 for floats)."""
    if isinstance(a, (np.ndarray, torch.Tensor)):
        return as_tensor(a, name)
    try:
        return torch.as_tensor(a)
    except (TypeError, ValueError, RuntimeError) as err:
        raise InvalidTypeError(
            f"{name} must be numbers (a tensor, array or sequence), got {type(a).__name__}: {err}"
        ) from None
