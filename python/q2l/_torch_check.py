"""The native module is built against one torch release; another one fails with a message."""

from importlib import metadata


def required_torch() -> str | None:
    """The torch version this installation of q2l-rs pins (``torch==X`` in its metadata),
    or ``None`` when q2l runs from a source tree that is not installed."""
    try:
        requirements = metadata.requires("q2l-rs") or []
    except metadata.PackageNotFoundError:
        return None
    for req in requirements:
        name, sep, version = req.partition("==")
        if sep and name.strip() == "torch":
            return version.split(";")[0].strip()
    return None


def check_torch_version(installed: str) -> None:
    """Raises ImportError naming both versions when the installed torch is not the one the
    extension was built against: a mismatched libtorch fails with undefined symbols, or
    worse, loads and misbehaves."""
    want = required_torch()
    have = installed.split("+")[0]
    if want is not None and want != have:
        raise ImportError(
            f"q2l-rs was built for torch {want}, but torch {have} is installed; install torch=={want} "
            f"or a q2l-rs wheel built for torch {have}"
        )
