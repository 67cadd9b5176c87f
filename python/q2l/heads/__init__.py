"""The heads: Query2Label (:class:`Query2LabelHead`, optionally with ML-Decoder's grouped
queries) and ML-Decoder (:class:`MLDecoderHead`, with its zero-shot mode), each a module on a
backbone's features whose forward is one Rust call; :mod:`q2l.heads.functional` is the same
computation in plain PyTorch for ``torch.compile``, meta tensors and ONNX."""

from . import functional
from .ml_decoder import MLDecoderHead, MLDecoderLayer, load_label_embeddings
from .query2label import GroupFC, GroupWiseLinear, Query2LabelHead, TorchQuery2LabelHead

__all__ = [
    "GroupFC",
    "GroupWiseLinear",
    "MLDecoderHead",
    "MLDecoderLayer",
    "Query2LabelHead",
    "TorchQuery2LabelHead",
    "functional",
    "load_label_embeddings",
]
