"""Shared fixtures: every device-aware test runs on CPU and, when present, on CUDA."""

import pytest
import torch

import q2l  # noqa: F401  (imports torch first, then the native module)

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.fixture(params=DEVICES)
def device(request) -> str:
    return request.param


requires_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
