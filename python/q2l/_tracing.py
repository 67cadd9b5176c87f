"""When a call must stay in PyTorch ops instead of entering Rust directly."""

import torch


def needs_torch_ops(t: torch.Tensor) -> bool:
    """True under ``torch.compile`` or ``torch.export`` tracing, and for meta or fake tensors.

    Rust reads and writes tensor memory; none of these have any (fake and functional
    tensors are subclasses of ``torch.Tensor`` that only carry metadata), and Dynamo cannot
    trace a native call. Plain tensors and ``nn.Parameter`` take the direct route.
    """
    return torch.compiler.is_compiling() or t.device.type == "meta" or type(t) not in (torch.Tensor, torch.nn.Parameter)
