"""The losses as PyTorch custom operators (``torch.ops.q2l.*``), for compiled and fake tensors.

Eager calls go straight to Rust through :class:`~q2l.loss._function._FusedLoss`, which lets
``loss.backward()`` adopt the kernel's gradient buffer as ``.grad`` without a copy. Under
``torch.compile``/``torch.export`` and on meta or fake tensors (see
:func:`q2l._tracing.needs_torch_ops`) the same Rust call runs as a custom operator instead:
a schema Dynamo can put in a graph (one argument per option, built from the options'
declaration), a fake implementation that gives shapes and dtypes without computing, the
analytic gradient as its autograd (backward and forward-mode) kernel, and a batching rule
for ``torch.vmap``. ``torch.func`` transforms of eager calls use the operator too.

Each operator returns ``(loss, grad)``; ``grad`` is ``d loss / d logits`` (the reduction and
scale included) when ``need_grad`` is true and an empty tensor otherwise, since an operator
cannot return ``None``.
"""

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor
from torch._functorch.utils import enable_single_level_autograd_function
from torch.autograd.function import _SingleLevelFunction

from .._options import Options
from ..errors import InternalError, InvalidArgumentError

_TORCH_TYPES = {"bool": "bool", "int": "int", "float": "float", "str": "str"}

#: Given logits and the options, the shape targets must have and the loss's shape.
Shapes = Callable[[Tensor, dict[str, Any]], tuple[Sequence[int], Sequence[int]]]


def _loss_dtype(logits: Tensor) -> torch.dtype:
    return torch.float64 if logits.dtype == torch.float64 else torch.float32


def _check_fake(logits: Tensor, target_shape: Sequence[int], tensors: dict[str, Tensor | None]) -> None:
    # What the Rust checks would refuse, refused at trace time too (they never run on fakes).
    for name, t in tensors.items():
        if t is not None and t.device != logits.device:
            raise InvalidArgumentError(
                f"{name} is on {t.device} but logits is on {logits.device}; move both to the same device"
            )
    targets = tensors["targets"]
    assert targets is not None
    if tuple(targets.shape) != tuple(target_shape):
        raise InvalidArgumentError(f"targets must have shape {list(target_shape)}, got {list(targets.shape)}")
    if not logits.dtype.is_floating_point:
        raise InvalidArgumentError(f"logits must be a floating tensor, got {logits.dtype}")


def scaled_by(grad: Tensor, grad_loss: Tensor) -> Tensor:
    """The chain rule: the kernel's ``grad`` times the loss's upstream gradient."""
    # The kernel's gradient is that of the (reduced) loss; for reduction="none" it is the
    # gradient of the sum, so each element scales by its own upstream gradient.
    while grad_loss.dim() < grad.dim() and grad_loss.dim() > 0:
        grad_loss = grad_loss.unsqueeze(-1)
    return grad * grad_loss.to(grad.dtype)


class _OpAutograd(_SingleLevelFunction):
    """The operators' autograd kernel: the kernel's own gradient gives the backward and the
    forward-mode derivative (``jvp``); ``torch.vmap`` goes to the batching rule registered
    with the operator.

    Registered to the ``Autograd`` key directly rather than through
    ``torch.library.register_autograd``, whose generated ``autograd.Function`` fails under
    every ``torch.func`` transform (pytorch/pytorch#168393, #170834; torch 2.13). A
    kernel at that key runs once per transform level, on that level's tensors, so it is a
    single-level Function, as functorch's own are.
    """

    @staticmethod
    def forward(op: Any, keyset: Any, *args: Any) -> tuple[Tensor, Tensor]:
        with torch._C._AutoDispatchBelowAutograd():
            return op.redispatch(keyset & torch._C._after_autograd_keyset, *args)

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Any, ...], output: tuple[Tensor, Tensor]) -> None:
        loss, grad = output
        ctx.mark_non_differentiable(grad)
        ctx.set_materialize_grads(False)  # no logits-sized zeros for the gradient output
        ctx.save_for_backward(grad)
        ctx.save_for_forward(grad)
        ctx.n_inputs, ctx.loss_dim, ctx.op_name = len(inputs), loss.dim(), inputs[0].name()

    @staticmethod
    def backward(ctx: Any, grad_loss: Tensor | None, _grad_of_grad: Any) -> tuple[Tensor | None, ...]:
        (grad,) = ctx.saved_tensors
        if grad_loss is None:
            return (None,) * ctx.n_inputs
        if grad.numel() == 0 and grad_loss.numel() != 0:
            raise InternalError("q2l loss: backward through a call made with need_grad=False")
        return (None, None, scaled_by(grad, grad_loss)) + (None,) * (ctx.n_inputs - 3)

    @staticmethod
    def jvp(ctx: Any, _op: Any, _keyset: Any, logits_tangent: Tensor | None, *_rest: Any) -> tuple[Any, None]:
        (grad,) = ctx.saved_tensors
        if logits_tangent is None:
            return None, None
        if grad.numel() == 0 and logits_tangent.numel() != 0:
            # Only a traced call under torch.no_grad() is made without the gradient.
            raise NotImplementedError(
                f"{ctx.op_name}: forward-mode AD (torch.func.jvp, forward_ad) of a loss traced by "
                "torch.compile under torch.no_grad() is not supported; trace it with grad mode on"
            )
        tangent = grad * logits_tangent.to(grad.dtype)
        dims = tuple(range(ctx.loss_dim, grad.dim()))
        return (tangent.sum(dims) if dims else tangent), None


class LossOp:
    """A native loss as a custom operator ``q2l::<name>``.

    Args:
        native: The ``_native`` function (``logits``, the tensors, ``options``, ``need_grad``).
        options: The loss's options.
        tensors: The other tensor arguments in order; a name ending in ``?`` is optional.
        shapes: The targets' and the loss's shapes for given logits and options.
    """

    def __init__(self, native: Callable[..., Any], options: Options, tensors: Sequence[str], shapes: Shapes) -> None:
        self.native, self.options, self.shapes = native, options, shapes
        self.tensors = tuple(t.rstrip("?") for t in tensors)
        args = ["Tensor logits"] + [f"Tensor{'?' if t.endswith('?') else ''} {t.rstrip('?')}" for t in tensors]
        args += [f"{_TORCH_TYPES[f.kind]} {f.name}" for f in options.fields] + ["bool need_grad"]
        schema = f"({', '.join(args)}) -> (Tensor, Tensor)"
        name = options.op
        self._lib = torch.library.Library("q2l", "FRAGMENT")
        self._lib.define(name + schema, tags=(torch.Tag.pt2_compliant_tag,))
        self._lib.impl(name, self._run, "CompositeExplicitAutograd")
        self._lib.impl(name, self._autograd, "Autograd", with_keyset=True)
        torch.library.register_fake(f"q2l::{name}", self._fake, lib=self._lib)
        torch.library.register_vmap(f"q2l::{name}", self._vmap, lib=self._lib)
        self.op = getattr(torch.ops.q2l, name).default

    def _autograd(self, keyset: Any, *args: Any) -> tuple[Tensor, Tensor]:
        with enable_single_level_autograd_function():
            return _OpAutograd.apply(self.op, keyset, *args)  # type: ignore[attr-defined]  # set in C

    def _vmap(self, info: Any, in_dims: tuple[int | None, ...], *args: Any) -> tuple[Any, tuple[int, int]]:
        # Once per slice of the mapped dimension, so that every check and the fused
        # kernel see plain tensors.
        def part(a: Any, dim: int | None, i: int) -> Any:
            return a if dim is None or a is None else a.select(dim, i)

        outs = [self.op(*(part(a, d, i) for a, d in zip(args, in_dims, strict=True))) for i in range(info.batch_size)]
        return (torch.stack([o[0] for o in outs]), torch.stack([o[1] for o in outs])), (0, 0)

    def _split(self, args: tuple[Any, ...]) -> tuple[Tensor, dict[str, Tensor | None], dict[str, Any], bool]:
        logits, rest = args[0], args[1:]
        n = len(self.tensors)
        tensors = dict(zip(self.tensors, rest[:n], strict=True))
        opts = dict(zip(self.options.names, rest[n:-1], strict=True))
        return logits, tensors, opts, rest[-1]

    def _run(self, *args: Any) -> tuple[Tensor, Tensor]:
        logits, tensors, opts, need_grad = self._split(args)
        loss, grad = self.native(logits=logits, **tensors, options=opts, need_grad=need_grad)
        return loss, grad if grad is not None else logits.new_empty(0)

    def _fake(self, *args: Any) -> tuple[Tensor, Tensor]:
        logits, tensors, opts, need_grad = self._split(args)
        target_shape, out_shape = self.shapes(logits, opts)
        _check_fake(logits, target_shape, tensors)
        grad = torch.empty_like(logits, memory_format=torch.contiguous_format) if need_grad else logits.new_empty(0)
        return logits.new_empty(out_shape, dtype=_loss_dtype(logits)), grad

    def __call__(
        self, logits: Tensor, tensors: dict[str, Tensor | None], options: dict[str, Any], need_grad: bool
    ) -> tuple[Tensor, Tensor]:
        if not options.keys() <= set(self.options.names):
            self.options.resolve(options)  # raises, naming the unknown option
        merged = {**self.options.defaults, **options}
        values = [merged[name] for name in self.options.names]
        return self.op(logits, *(tensors[t] for t in self.tensors), *values, need_grad)
