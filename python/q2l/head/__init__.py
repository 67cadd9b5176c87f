"""The import path of the heads and models before they became :mod:`q2l.heads` and
:mod:`q2l.models`; it names the same objects, so code written against it keeps working."""

from ..heads import *  # noqa: F403
from ..heads import __all__ as _heads
from ..heads import functional as functional
from ..models import *  # noqa: F403
from ..models import __all__ as _models

__all__ = sorted({*_heads, *_models, "functional"})
