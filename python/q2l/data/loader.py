"""The batch loader: a drop-in for ``torch.utils.data.DataLoader`` over q2l datasets."""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator, Mapping
from types import MappingProxyType
from typing import Any

import torch

from .. import _native
from .._options import Options
from .._validate import int_arg
from ..errors import InvalidTypeError
from .datasets import Dataset, RepairedImageWarning
from .transforms import Compose


def _default_threads() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


#: The loader's options, declared once in Rust (``LoaderOptions`` in ``src/data/loader.rs``):
#: their defaults and checks. ``num_threads``, ``rank`` and ``world_size`` default to this
#: machine and ``torch.distributed`` here.
OPTIONS = Options("loader")


def _option(name: str) -> property:
    return property(lambda self: self._options[name], doc=f"The ``{name}`` option (read-only).")


class Loader:
    """Batches of a :class:`Dataset` through a :class:`~q2l.data.transforms.Compose`, prepared
    on Rust threads while the model trains.

    Iterating yields ``(images, targets)`` (or ``(images, targets, indices)``): float32 (or
    uint8) ``[B, 3, H, W]``, float32 ``[B, C]`` with -1 for unknown labels, int64 ``[B]``.
    For a given ``seed`` and epoch the order and every augmentation are the same whatever
    the thread count.

    Args:
        dataset: the data.
        transform: the pipeline (e.g. :func:`~q2l.data.transforms.train_transform`).
        batch_size: images per batch.
        shuffle: a new order each epoch.
        drop_last: drop the last incomplete batch.
        seed: seeds orders and augmentations (the same on every rank).
        num_threads: decoding/augmenting threads (default: the CPUs this process may use).
        prefetch: finished batches kept ready ahead of the consumer.
        rank, world_size: shard like ``DistributedSampler`` (padding included); default
            from ``torch.distributed`` when it is initialised, else one process.
        return_indices: also yield each row's dataset index.
        pin_memory: page-lock batches for faster ``.to("cuda", non_blocking=True)``.
        on_error: ``"raise"`` stops at an unreadable image with an exception naming it;
            ``"skip"`` leaves it out of its batch, warns and counts it in :attr:`skipped`;
            a batch left with no image is not yielded and is counted in
            :attr:`dropped_batches` (so ``len(loader)`` counts batches before skipping).
            Images a lenient decode repaired (``dataset.with_decoding(strict=False)``) stay
            in their batch, with a :class:`~q2l.data.RepairedImageWarning`, and are counted in
            :attr:`repaired`.
        shuffle_buffer: tar shards (:meth:`Dataset.shards`) only: with ``shuffle``, the
            samples held in WebDataset's seeded shuffle buffer. Shards are shuffled whole,
            each rank reads a contiguous run of them, and the buffer mixes samples across
            about that many neighbours. Other datasets are shuffled whole.

    Like ``DistributedSampler``, call :meth:`set_epoch` before each epoch; without it, each
    new iteration moves to the next epoch by itself. :meth:`state_dict` and
    :meth:`load_state_dict` resume an epoch at the first batch not yet seen.
    """

    def __init__(
        self,
        dataset: Dataset,
        transform: Compose,
        batch_size: int = OPTIONS.defaults["batch_size"],
        shuffle: bool = OPTIONS.defaults["shuffle"],
        drop_last: bool = OPTIONS.defaults["drop_last"],
        seed: int = OPTIONS.defaults["seed"],
        num_threads: int | None = None,
        prefetch: int = OPTIONS.defaults["prefetch"],
        rank: int | None = None,
        world_size: int | None = None,
        return_indices: bool = False,
        pin_memory: bool = False,
        on_error: str = OPTIONS.defaults["on_error"],
        shuffle_buffer: int = OPTIONS.defaults["shuffle_buffer"],
    ):
        if not isinstance(dataset, Dataset):
            raise InvalidTypeError(f"dataset must be a q2l.data.Dataset, got {type(dataset).__name__}")
        if not isinstance(transform, Compose):
            raise InvalidTypeError(f"transform must be a q2l.data.transforms.Compose, got {type(transform).__name__}")
        if rank is None or world_size is None:
            dist = torch.distributed.is_available() and torch.distributed.is_initialized()
            rank = rank if rank is not None else (torch.distributed.get_rank() if dist else 0)
            world_size = world_size if world_size is not None else (torch.distributed.get_world_size() if dist else 1)
        # Checked by Rust (LoaderOptions), as the native loader checks them again.
        self._options = OPTIONS.resolve(
            dict(
                batch_size=batch_size,
                shuffle=shuffle,
                drop_last=drop_last,
                seed=seed,
                num_threads=_default_threads() if num_threads is None else num_threads,
                prefetch=prefetch,
                rank=rank,
                world_size=world_size,
                on_error=on_error,
                shuffle_buffer=shuffle_buffer,
            )
        )
        pin_device = None
        if pin_memory:
            if torch.cuda.is_available():
                pin_device = torch.cuda.current_device()
            else:
                warnings.warn("pin_memory=True but no CUDA device is available: batches are not pinned", stacklevel=2)
        self.dataset = dataset
        self.transform = transform
        self.return_indices = return_indices
        #: Images left out under ``on_error="skip"``: ``(index, reason)``.
        self.skipped: list[tuple[int, str]] = []
        #: Images a lenient decode repaired (``strict=False``): ``(index, what it forgave)``.
        self.repaired: list[tuple[int, str]] = []
        #: Batches left out because every image in them was skipped.
        self.dropped_batches = 0
        self._native = _native.NativeLoader(
            dataset=dataset._native, pipeline=transform._native, options=self._options, pin_memory=pin_device
        )
        self._epoch: int | None = None
        self._next_epoch = 0
        # Where the last iteration stands, and where a loaded state resumes.
        self._position = (0, 0)
        self._resume: tuple[int, int] | None = None

    # Read-only: the native loader holds the options, so assigning one would change nothing.
    @property
    def options(self) -> Mapping[str, Any]:
        """Every option, resolved (defaults filled in), as the native loader runs with them."""
        return MappingProxyType(self._options)

    batch_size = _option("batch_size")
    shuffle = _option("shuffle")
    drop_last = _option("drop_last")
    seed = _option("seed")
    num_threads = _option("num_threads")
    prefetch = _option("prefetch")
    rank = _option("rank")
    world_size = _option("world_size")
    on_error = _option("on_error")
    shuffle_buffer = _option("shuffle_buffer")

    def set_epoch(self, epoch: int) -> None:
        """Selects the epoch whose order and augmentations the next iteration uses."""
        self._epoch = int_arg("epoch", epoch, minimum=0)

    def __len__(self) -> int:
        return len(self._native)

    def indices(self, epoch: int = 0) -> list[int]:
        """This rank's dataset indices for ``epoch``, in order, padding included."""
        return self._native.order(int_arg("epoch", epoch, minimum=0))

    def state_dict(self) -> dict[str, int]:
        """Where iteration stands: ``{"epoch": e, "step": s}``, ``s`` batches of epoch ``e`` yielded."""
        epoch, step = self._position
        return {"epoch": epoch, "step": step}

    def load_state_dict(self, state: Mapping[str, int]) -> None:
        """Makes the next iteration resume epoch ``state["epoch"]`` at batch ``state["step"]``:
        the same order and augmentations, from the first batch not yet seen. Later
        iterations go on with the following epochs."""
        if not isinstance(state, Mapping) or set(state) != {"epoch", "step"}:
            raise InvalidTypeError(f"state must be a mapping with the keys 'epoch' and 'step', got {state!r}")
        epoch = int_arg("state['epoch']", state["epoch"])
        step = int_arg("state['step']", state["step"], maximum=len(self))
        self._resume = (epoch, step)

    def __iter__(self) -> Iterator:
        start = 0
        if self._resume is not None:
            (epoch, start), self._resume = self._resume, None
            self._epoch, self._next_epoch = None, epoch + 1
        elif self._epoch is not None:
            epoch = self._epoch
        else:
            epoch = self._next_epoch
            self._next_epoch += 1
        return self._iterate(epoch, start)

    def _iterate(self, epoch: int, start: int):
        self._position = (epoch, start)
        it = self._native.iter(epoch, start=start)
        try:
            for images, targets, indices, skipped, repaired in it:
                if skipped:
                    self.skipped.extend(skipped)
                    for index, reason in skipped:
                        warnings.warn(f"skipped image {index}: {reason}", stacklevel=3)
                if repaired:
                    self.repaired.extend(repaired)
                    for index, reason in repaired:
                        warnings.warn(f"image {index}: {reason}", RepairedImageWarning, stacklevel=3)
                self._position = (epoch, self._position[1] + 1)
                if images.shape[0] == 0:
                    # Every image of the batch was skipped: a model cannot take an empty batch.
                    self.dropped_batches += 1
                    warnings.warn(f"dropped batch {self._position[1] - 1}: every image in it was skipped", stacklevel=3)
                    continue
                yield (images, targets, indices) if self.return_indices else (images, targets)
        finally:
            it.close()

    def __repr__(self) -> str:
        return (
            f"Loader({self.dataset!r}, batch_size={self.batch_size}, shuffle={self.shuffle}, "
            f"threads={self.num_threads}, rank={self.rank}/{self.world_size})"
        )
