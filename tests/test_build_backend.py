"""The PEP 517 backend (python/q2l_build_backend.py): a missing build tool stops the build at
once with one line, and the build asks for the torch that the package pins."""

import importlib.util
import shutil
from pathlib import Path

import pytest

from q2l import _torch_check

ROOT = Path(__file__).resolve().parents[1]
pytest.importorskip("maturin")


def _backend():
    path = ROOT / "python" / "q2l_build_backend.py"
    if not path.exists():
        pytest.skip("not a source checkout")
    spec = importlib.util.spec_from_file_location("q2l_build_backend", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("missing", [("cmake",), ("nasm",), ("cmake", "nasm"), ("cargo", "cmake", "nasm")])
def test_missing_build_tools_are_named_in_one_line(monkeypatch, missing):
    backend = _backend()
    real_which = shutil.which
    monkeypatch.setattr(backend.shutil, "which", lambda name: None if name in missing else real_which(name))
    with pytest.raises(SystemExit) as stopped:
        backend.get_requires_for_build_wheel()
    message = str(stopped.value.code)
    assert "\n" not in message
    assert f"needs {' and '.join(missing)} on PATH" in message


def test_the_build_asks_for_the_pinned_torch(monkeypatch):
    backend = _backend()
    monkeypatch.setattr(backend.shutil, "which", lambda name: f"/usr/bin/{name}")
    monkeypatch.chdir(ROOT)
    requires = backend.get_requires_for_build_wheel()
    pinned = [r for r in requires if r.startswith("torch")]
    assert pinned == [f"torch=={_torch_check.required_torch()}"]
