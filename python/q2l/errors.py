"""The exceptions q2l raises.

Every error q2l raises on purpose is a :class:`Q2LError`, so ``except q2l.Q2LError`` catches
them all. Each is also the built-in exception that the same failure raised before
(``ValueError``, ``TypeError``, ``RuntimeError``, ``MemoryError``, ``OSError`` and its subclasses), so code
that catches those keeps working. The Rust core's errors arrive as these classes too
(``src/python/errors.rs`` maps each variant of its error type to one of them).
"""


class Q2LError(Exception):
    """Base class of every exception q2l raises on purpose."""


class InvalidArgumentError(Q2LError, ValueError):
    """A bad value, shape, dtype, device or option given by the caller, or a bad annotation."""


class InvalidTypeError(Q2LError, TypeError):
    """An argument of the wrong type."""


class LibtorchError(Q2LError, RuntimeError):
    """A libtorch operation failed (for example, out of memory)."""


class InternalError(Q2LError, RuntimeError):
    """A bug in q2l: a worker thread panicked or could not be started. Please report it."""


class OutOfMemoryError(Q2LError, MemoryError):
    """A buffer or tensor whose size came from the input (an image, a transform's size, a
    batch, a model configuration) could not be allocated; the message names it and its size."""


class FileError(Q2LError, OSError):
    """A file could not be read or written."""


class MissingFileError(FileError, FileNotFoundError):
    """A file that does not exist."""


class FilePermissionError(FileError, PermissionError):
    """A file q2l may not read or write."""


class DirectoryGivenError(FileError, IsADirectoryError):
    """A directory where a file was expected."""


class ImageError(FileError):
    """An image file that is truncated, corrupt, too large, not a JPEG/PNG or not a regular file."""


__all__ = [
    "DirectoryGivenError",
    "FileError",
    "FilePermissionError",
    "ImageError",
    "InternalError",
    "InvalidArgumentError",
    "InvalidTypeError",
    "LibtorchError",
    "MissingFileError",
    "OutOfMemoryError",
    "Q2LError",
]
