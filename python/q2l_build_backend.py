"""PEP 517 build backend of q2l-rs: maturin's, pointed at the torch of the build environment.

``pip install .`` (or of the sdist) builds in an isolated environment that holds maturin
(``[build-system] requires``) and the torch that ``[project] dependencies`` pins, which
``get_requires_for_build_wheel`` asks for only after checking that the build tools are on
``PATH``: a machine without them fails at once with one line naming what to install, before
pip downloads torch (4.7 GB) into the build environment. tch-rs's build script finds libtorch
by running ``python`` (``python3`` outside a virtualenv) from ``PATH``, which need not be
the interpreter pip runs this backend with: a different Python, or one without torch. So
every hook that compiles puts ``python`` and ``python3`` shims for ``sys.executable`` first
on ``PATH``, asks for ``LIBTORCH_USE_PYTORCH``, and, unless ``CARGO_TARGET_DIR`` is set,
compiles in a temporary target directory: tch-rs's build script does not notice that the
torch it linked moved, and the next isolated build's torch lives elsewhere.
"""

import contextlib
import os
import re
import shutil
import sys
import tempfile

import maturin
from maturin import (  # noqa: F401
    build_sdist,
    get_requires_for_build_sdist,
    prepare_metadata_for_build_editable,
    prepare_metadata_for_build_wheel,
)

# What compiling needs besides Python: Rust, and cmake and nasm for the libjpeg-turbo that
# turbojpeg-sys vendors (its SIMD code is assembly; without nasm it would build a slow decoder).
_TOOLS = ("cargo", "cmake", "nasm")


def _require_tools():
    missing = [tool for tool in _TOOLS if shutil.which(tool) is None]
    if missing:
        sys.exit(
            f"error: building q2l-rs from source needs {' and '.join(missing)} on PATH "
            "(Rust from https://rustup.rs; `apt install cmake nasm`), or install a q2l-rs wheel"
        )


def _torch_requirement():
    """The ``torch==X`` of ``[project] dependencies``: one pin for building and running."""
    with open("pyproject.toml", encoding="utf-8") as f:
        found = re.search(r'"(torch==[0-9][^"]*)"', f.read())
    if found is None:
        sys.exit("error: pyproject.toml pins no torch==X among the dependencies")
    return found.group(1)


def get_requires_for_build_wheel(config_settings=None):
    _require_tools()
    return [*maturin.get_requires_for_build_wheel(config_settings), _torch_requirement()]


def get_requires_for_build_editable(config_settings=None):
    _require_tools()
    return [*maturin.get_requires_for_build_editable(config_settings), _torch_requirement()]


@contextlib.contextmanager
def _torch_build_env():
    saved = dict(os.environ)
    scratch = tempfile.mkdtemp(prefix="q2l-build-")
    try:
        shims = os.path.join(scratch, "bin")
        os.mkdir(shims)
        for name in ("python", "python3"):
            path = os.path.join(shims, name)
            with open(path, "w") as f:
                f.write(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
            os.chmod(path, 0o755)
        os.environ["PATH"] = shims + os.pathsep + os.environ.get("PATH", "")
        os.environ["LIBTORCH_USE_PYTORCH"] = "1"
        os.environ.setdefault("CARGO_TARGET_DIR", os.path.join(scratch, "target"))
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)
        shutil.rmtree(scratch, ignore_errors=True)


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    with _torch_build_env():
        return maturin.build_wheel(wheel_directory, config_settings, metadata_directory)


def build_editable(wheel_directory, config_settings=None, metadata_directory=None):
    with _torch_build_env():
        return maturin.build_editable(wheel_directory, config_settings, metadata_directory)
