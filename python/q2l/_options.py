"""Options declared once in Rust, as Python sees them.

Each op's options are one Rust struct (an ``options!`` block: names, types, defaults and a
line of documentation each). :class:`Options` reads that declaration through
``_native.option_schema``; from it come the public functions' and modules' signatures and
the ``Args`` lines of their docstrings (:func:`documented`), the custom operators' schemas
(``q2l.loss._ops``), and every check (``_native.resolve_options``, the same conversion each
Rust call makes). Nothing about an option is written in Python.
"""

import inspect
import textwrap
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple, TypeVar

import torch
from torch import nn

from . import _native
from .errors import InvalidTypeError

_KINDS: dict[str, type] = {"bool": bool, "int": int, "float": float, "str": str}


class Option(NamedTuple):
    """One option: its name, Python kind, default, documentation and choices (for a str)."""

    name: str
    kind: str
    default: Any
    doc: str
    choices: tuple[str, ...] | None


class Options:
    """The options of one native op, by the op's name (``"asymmetric_loss"``, ...)."""

    def __init__(self, op: str) -> None:
        self.op = op
        self.fields: tuple[Option, ...] = tuple(
            Option(d["name"], d["kind"], d["default"], d["doc"], None if d["choices"] is None else tuple(d["choices"]))
            for d in _native.option_schema(op=op)
        )
        self.names: tuple[str, ...] = tuple(f.name for f in self.fields)
        self.defaults: dict[str, Any] = {f.name: f.default for f in self.fields}

    def choices(self, name: str) -> tuple[str, ...]:
        """The names an option of kind ``str`` takes."""
        return next(f.choices or () for f in self.fields if f.name == name)

    def resolve(self, given: Mapping[str, Any]) -> dict[str, Any]:
        """The defaults with ``given`` set, each checked as the Rust call checks it.

        Raises:
            InvalidArgumentError: an unknown option or a value out of range.
            InvalidTypeError: a value of the wrong type (a bool for a number, ...).
        """
        return dict(_native.resolve_options(op=self.op, options=dict(given)))

    def parameters(self, defaults: Mapping[str, Any] | None = None) -> list[inspect.Parameter]:
        """Keyword-only parameters, one per option, with ``defaults`` overriding the declared ones."""
        defaults = {**self.defaults, **(defaults or {})}
        return [
            inspect.Parameter(
                f.name, inspect.Parameter.KEYWORD_ONLY, default=defaults[f.name], annotation=_KINDS[f.kind]
            )
            for f in self.fields
        ]

    def doc(self, indent: int) -> str:
        """Google-style ``Args`` lines, one per option."""
        pad = " " * indent
        lines = (f"{f.name}: {f.doc} Default: ``{f.default!r}``." for f in self.fields)
        return "\n".join(textwrap.fill(line, 96, initial_indent=pad, subsequent_indent=pad + "    ") for line in lines)


_F = TypeVar("_F", bound=Callable[..., Any])


def documented(
    options: Options, positional: tuple[str, ...] = (), defaults: Mapping[str, Any] | None = None
) -> Callable[[_F], _F]:
    """Gives a function (or a class's ``__init__``) taking ``**options`` the signature and the
    ``{options}`` docstring lines of ``options``.

    Args:
        options: The options.
        positional: Options that stand for the function's ``*args``, in order (an official
            positional signature; see :func:`bind_positional`).
        defaults: Defaults that replace the declared ones (a preset class).
    """

    def wrap(fn: _F) -> _F:
        target: Any = fn.__init__ if isinstance(fn, type) else fn  # type: ignore[misc]
        sig = inspect.signature(target)
        given = {**options.defaults, **(defaults or {})}
        params: list[inspect.Parameter] = []
        for p in sig.parameters.values():
            if p.kind is inspect.Parameter.VAR_POSITIONAL:
                kind = inspect.Parameter.POSITIONAL_OR_KEYWORD
                params += [inspect.Parameter(n, kind, default=given[n]) for n in positional]
            elif p.kind is not inspect.Parameter.VAR_KEYWORD:
                params.append(p)
        taken = {p.name for p in params}
        params += [p for p in options.parameters(defaults) if p.name not in taken]
        target.__signature__ = sig.replace(parameters=params)
        if fn.__doc__:
            fn.__doc__ = fn.__doc__.replace("{options}", options.doc(8).lstrip())
        return fn

    return wrap


def bind_positional(names: tuple[str, ...], args: tuple[Any, ...], given: dict[str, Any], owner: str) -> dict[str, Any]:
    """``given`` with ``args`` set to ``names`` in order (an official positional signature)."""
    if len(args) > len(names):
        raise InvalidTypeError(
            f"{owner} takes at most {len(names)} positional options ({', '.join(names)}), got {len(args)}"
        )
    for name, value in zip(names, args, strict=False):
        if name in given:
            raise InvalidTypeError(f"{owner} got {name} both as a positional and as a keyword argument")
        given[name] = value
    return given


class OptionsModule(nn.Module):
    """A module whose options live in ``self.options``, checked by Rust when set.

    Each option reads and writes as an attribute too (``criterion.gamma_neg = 2``), checked
    again on write, so a module can never hold an option the Rust call would refuse.
    """

    schema: Options

    def __init__(self, options: Mapping[str, Any]) -> None:
        super().__init__()
        self.__dict__["options"] = self.schema.resolve(options)

    def __getattr__(self, name: str) -> Any:
        opts = self.__dict__.get("options")
        if opts is not None and name in opts:
            return opts[name]
        return super().__getattr__(name)

    def __setattr__(self, name: str, value: Any) -> None:
        opts = self.__dict__.get("options")
        if opts is not None and name in opts:
            self.__dict__["options"] = self.schema.resolve({**opts, name: value})
        else:
            super().__setattr__(name, value)

    def extra_repr(self) -> str:
        # torch.vmap names the function it maps by its repr, which Dynamo traces; there an
        # option may be a symbolic number that cannot be formatted.
        if torch.compiler.is_compiling():
            return "..."
        return ", ".join(f"{k}={v!r}" for k, v in self.options.items())
