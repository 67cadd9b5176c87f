"""Official Query2Label checkpoints to q2l-rs modules and back.

The official state dict (``checkpoint.pkl`` / ``.pth``, under ``"state_dict"``, usually
saved from a ``DistributedDataParallel`` model) has keys such as
``module.backbone.0.body.layer1.0.conv1.weight``, ``module.backbone.1.pe``,
``module.transformer.encoder.layers.0.self_attn.in_proj_weight``,
``module.query_embed.weight``, ``module.input_proj.weight``, ``module.fc.W``,
``module.fc.b``. The head's parameters carry the same names without
``module.transformer.`` / ``module.``, so the mapping is by prefix only.
"""

import os
import re
from collections.abc import Mapping

import torch

from .. import _native
from .._files import load_state_checked, read_official_checkpoint
from ..errors import InvalidArgumentError
from ..heads import Query2LabelHead

StateDict = dict[str, torch.Tensor]


def split_official_state_dict(state: Mapping[str, torch.Tensor]) -> tuple[StateDict, StateDict]:
    """Splits an official state dict into (head state dict, backbone state dict).

    Backbone keys lose their ``backbone.0.body.`` prefix; the stored positional encoding
    ``backbone.1.pe`` is dropped (the head computes it for each input size).
    """
    head: StateDict = {}
    backbone: StateDict = {}
    for key, value in state.items():
        key = key[len("module.") :] if key.startswith("module.") else key
        if key.startswith("backbone.0.body."):
            backbone[key[len("backbone.0.body.") :]] = value
        elif key.startswith("backbone.0."):
            backbone[key[len("backbone.0.") :]] = value
        elif key == "backbone.1.pe":
            continue
        elif key.startswith("transformer."):
            head[key[len("transformer.") :]] = value
        elif key.split(".")[0] in ("query_embed", "input_proj", "fc"):
            head[key] = value
        else:
            raise InvalidArgumentError(f"unexpected key {key!r} in a Query2Label checkpoint")
    return head, backbone


def _shape(state: Mapping[str, torch.Tensor], key: str, ndim: int) -> list[int]:
    """The shape of ``state[key]``, which must be a tensor of ``ndim`` dimensions."""
    value = state[key]
    if not isinstance(value, torch.Tensor) or value.dim() != ndim:
        what = f"a {value.dim()}-D tensor" if isinstance(value, torch.Tensor) else f"a {type(value).__name__}"
        raise InvalidArgumentError(f"not a Query2Label head state dict: {key!r} is {what}, expected {ndim}-D")
    return [int(d) for d in value.shape]


def head_config_from_state_dict(head_state: Mapping[str, torch.Tensor], nhead: int = 4) -> dict:
    """The :class:`Query2LabelHead` arguments that a head state dict implies.

    ``nhead`` cannot be read from weights; the official models use 4.
    """
    grouped = "fc.bias" in head_state
    if "query_embed.weight" not in head_state or not ("fc.W" in head_state or grouped):
        raise InvalidArgumentError("not a Query2Label head state dict: query_embed.weight or fc.W is missing")
    queries, d_model = _shape(head_state, "query_embed.weight", 2)
    num_classes = _shape(head_state, "fc.bias", 1)[0] if grouped else queries

    def count(prefix: str) -> int:
        ids = {int(m.group(1)) for k in head_state if (m := re.match(prefix + r"\.layers\.(\d+)\.", k))}
        return max(ids) + 1 if ids else 0

    dec = count("decoder")
    ff_key = "decoder.layers.0.linear1.weight"
    in_proj = "input_proj.weight" in head_state
    return dict(
        num_classes=int(num_classes),
        in_channels=_shape(head_state, "input_proj.weight", 4)[1] if in_proj else int(d_model),
        d_model=int(d_model),
        nhead=nhead,
        num_encoder_layers=count("encoder"),
        num_decoder_layers=dec,
        dim_feedforward=_shape(head_state, ff_key, 2)[0] if ff_key in head_state else 2048,
        pre_norm="encoder.norm.weight" in head_state,
        keep_first_self_attn="decoder.layers.0.self_attn.in_proj_weight" in head_state,
        keep_other_self_attn=dec > 1 and "decoder.layers.1.self_attn.in_proj_weight" in head_state,
        input_proj=in_proj,
        num_groups=int(queries) if grouped else None,
    )


def head_from_official(
    source: str | os.PathLike | Mapping, nhead: int = 4, **overrides
) -> tuple[Query2LabelHead, StateDict]:
    """Builds a :class:`Query2LabelHead` from an official checkpoint.

    Returns:
        ``(head, backbone_state_dict)``; load the second into the matching backbone
        (for torchvision ResNets: ``model.load_state_dict(backbone_state, strict=False)``).
    """
    head_state, backbone = split_official_state_dict(read_official_checkpoint(source))
    head = Query2LabelHead(**{**head_config_from_state_dict(head_state, nhead), **overrides})
    load_state_checked(head, head_state, "official checkpoint (head)")
    return head, backbone


def to_official_state_dict(
    head: Query2LabelHead,
    backbone_state: Mapping[str, torch.Tensor] | None = None,
    img_size: int | None = None,
    downsample: int = 32,
    ddp_prefix: bool = True,
) -> StateDict:
    """The official key layout of a head (and optionally its backbone's weights).

    With ``img_size`` the fixed positional-encoding buffer ``backbone.1.pe`` that the
    official code expects is included, for a feature map of ``img_size // downsample``.
    """
    prefix = "module." if ddp_prefix else ""
    out: StateDict = {}
    for key, value in head.state_dict().items():
        top = key.split(".")[0]
        name = key if top in ("query_embed", "input_proj", "fc") else "transformer." + key
        out[prefix + name] = value.detach().clone()
    for key, value in (backbone_state or {}).items():
        out[prefix + "backbone.0.body." + key] = value.detach().clone()
    if img_size is not None:
        n = img_size // downsample
        pe = _native.sine_encoding(height=n, width=n, d_model=head.d_model, temperature=head.temperature)
        out[prefix + "backbone.1.pe"] = pe.reshape(n, n, head.d_model).permute(2, 0, 1)[None].contiguous()
    return out
