"""Shared fixtures: every device-aware test runs on CPU and, when present, on CUDA."""

import os

# onnxruntime's telemetry resolves its collector's host when the module is imported (the
# tests import it to skip without it); the tests reach no network.
os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")

import pytest
import torch

import q2l  # noqa: F401  (imports torch first, then the native module)

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.fixture(params=DEVICES)
def device(request) -> str:
    return request.param


requires_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


# Text the default Rust panic hook writes to stderr. A panic is caught at the boundary and
# raised as InternalError, but its message still reaches the user's terminal: none may
# appear in any test (pytest captures each test's stderr at the file descriptor).
_PANIC_TEXT = ("panicked at", "RUST_BACKTRACE")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    stderr = report.capstderr  # the setup's and the call's, in the call's report
    if report.when == "call" and report.passed and any(text in stderr for text in _PANIC_TEXT):
        report.outcome = "failed"
        report.longrepr = f"a Rust panic reached stderr:\n{stderr}"
