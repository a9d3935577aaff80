"""A user's own model as a spec: an importable `module:function` + JSON kwargs + a pruning record.

`BuilderSpec` is the "builder spec" of a model outside the zoo.  It names the function
that builds the model (a zero-argument call once its keyword arguments are applied),
and the structural pruning applied since: an ordered list of
`(layer, "out" | "in", channel indices)` operations, each removing those channels of
that layer's current width.  Replaying the record on a freshly built model gives the
pruned architecture, so a checkpoint stores only this JSON and the weights, never a
pickled module; Scratch-E/B build the model under their own seed and replay the record.
That, rather than calling each pruned layer's `reset_parameters()`, is the scratch init: it is the
user's own initialisation (custom inits in `__init__` that `reset_parameters()` would skip) and the
same rebuild path a checkpoint load takes, so the scratch architecture cannot drift from the record.

Building imports and calls the named function: load a checkpoint only if you trust the
code it names (functions of the standard library and builtins are refused).
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import json
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from torch import nn

from prunebench.errors import SpecError
from prunebench.models.spec import ModelSpec, register_family

FAMILY = "builder"
_REF = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")
KINDS = ("out", "in")

#: one pruning operation: (layer name, "out"|"in", removed channel indices of the layer's current width)
PruneOp = tuple[str, str, tuple[int, ...]]


def builder_ref(fn: Callable[..., Any]) -> str:
    """The `module:function` reference of a module-level function (checked to resolve back to it)."""
    module, qual = getattr(fn, "__module__", None), getattr(fn, "__qualname__", "")
    if not module or "<" in qual:
        raise SpecError(
            f"build_model {getattr(fn, '__name__', fn)!r} must be a module-level function (not a lambda or a "
            "nested function): scratch arms and checkpoints rebuild the model by importing it"
        )
    ref = f"{module}:{qual}"
    if resolve_builder(ref) is not fn:
        raise SpecError(f"build_model: {ref} does not import back to the function given")
    return ref


def resolve_builder(ref: str) -> Callable[..., Any]:
    """Import `module:function` (dotted attributes allowed after the colon)."""
    if not isinstance(ref, str) or not _REF.match(ref):
        raise SpecError(f"builder {ref!r} must look like 'package.module:function'")
    module_name, attr = ref.split(":")
    top = module_name.split(".")[0]
    if top in sys.builtin_module_names or top in sys.stdlib_module_names:
        raise SpecError(f"builder {ref!r}: functions of the standard library are not model builders")
    try:
        obj: Any = importlib.import_module(module_name)
    except Exception as e:  # ImportError, or any error the user's module raises on import
        raise SpecError(f"builder {ref!r}: cannot import {module_name} ({type(e).__name__}: {e})") from None
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise SpecError(f"builder {ref!r}: {module_name} has no attribute {attr!r}")
        obj = getattr(obj, part)
    if not (inspect.isfunction(obj) or (inspect.isclass(obj) and issubclass(obj, nn.Module))):
        raise SpecError(f"builder {ref!r} is not a Python function or nn.Module class")
    return obj


def _freeze_json(v: Any) -> Any:
    if isinstance(v, dict):
        return tuple(sorted((str(k), _freeze_json(x)) for k, x in v.items()))
    if isinstance(v, list | tuple):
        return tuple(_freeze_json(x) for x in v)
    return v


def _kwargs_dict(pairs: Any) -> dict[str, Any]:
    return {k: v for k, v in pairs}


@register_family
@dataclass(frozen=True, kw_only=True)
class BuilderSpec(ModelSpec):
    """A user model: `builder` ("pkg.mod:function"), its JSON `kwargs`, and the `pruning` record.

    `in_channels`/`input_size` give the (square) example input, which tracing, FLOPs and latency use.
    """

    family = FAMILY
    builder: str = ""
    kwargs: Any = ()  # a dict on input; held as sorted (key, value) pairs so the spec stays hashable
    pruning: tuple[PruneOp, ...] = ()

    def __post_init__(self) -> None:
        kwargs = self.kwargs
        if isinstance(kwargs, dict):
            kwargs = _freeze_json(kwargs)
        elif isinstance(kwargs, list | tuple) and all(isinstance(p, list | tuple) and len(p) == 2 for p in kwargs):
            kwargs = tuple(sorted((str(k), _freeze_json(v)) for k, v in kwargs))
        else:
            raise SpecError(f"builder {self.builder!r}: kwargs must be a JSON object, got {self.kwargs!r}")
        object.__setattr__(self, "kwargs", kwargs)
        ops = []
        for op in self.pruning:
            if not (isinstance(op, list | tuple) and len(op) == 3 and isinstance(op[0], str) and op[1] in KINDS):
                raise SpecError(f"builder {self.builder!r}: bad pruning record entry {op!r} (want [layer, 'out'|'in', [indices]])")
            idx = op[2]
            if not isinstance(idx, list | tuple) or not all(isinstance(i, int) and not isinstance(i, bool) and i >= 0 for i in idx):
                raise SpecError(f"builder {self.builder!r}: pruning record of {op[0]!r}: indices must be non-negative integers")
            ops.append((op[0], op[1], tuple(idx)))
        object.__setattr__(self, "pruning", tuple(ops))
        super().__post_init__()

    def validate(self) -> None:
        super().validate()
        if not isinstance(self.builder, str) or not _REF.match(self.builder):
            raise SpecError(f"builder {self.builder!r} must look like 'package.module:function'")
        try:
            json.dumps(self.kwargs_dict())
        except (TypeError, ValueError):
            raise SpecError(f"builder {self.builder!r}: kwargs must be plain JSON values") from None

    def kwargs_dict(self) -> dict[str, Any]:
        def thaw(v: Any) -> Any:
            if isinstance(v, tuple) and v and all(isinstance(p, tuple) and len(p) == 2 and isinstance(p[0], str) for p in v):
                return {k: thaw(x) for k, x in v}
            return [thaw(x) for x in v] if isinstance(v, tuple) else v

        return {k: thaw(v) for k, v in self.kwargs}

    def to_dict(self) -> dict[str, Any]:
        d = super().to_dict()
        d["kwargs"] = self.kwargs_dict()
        d["pruning"] = [[layer, kind, list(idx)] for layer, kind, idx in self.pruning]
        return d

    @property
    def label(self) -> str:
        return self.name or self.builder

    def build_unpruned(self) -> nn.Module:
        """The model as the builder returns it (no pruning replayed)."""
        fn = resolve_builder(self.builder)
        try:
            model = fn(**self.kwargs_dict())
        except Exception as e:  # the user's code: one line naming it
            raise SpecError(f"builder {self.builder}: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}") from None
        if not isinstance(model, nn.Module):
            raise SpecError(f"builder {self.builder} returned {type(model).__name__}, not an nn.Module")
        return model

    def build(self) -> nn.Module:
        model = self.build_unpruned()
        replay(model, self.pruning, self.builder)
        model.spec = self  # type: ignore[assignment]  # as every zoo model carries its spec
        return model

    def with_pruning(self, ops: list[PruneOp]) -> "BuilderSpec":
        """This spec with `ops` appended to its pruning record."""
        return dataclasses.replace(self, pruning=self.pruning + tuple(ops))

    def from_module(self, module: nn.Module) -> "BuilderSpec":
        return self  # the record, not the layers, is the architecture

    def widths(self) -> list[Any]:
        return [[layer, kind, len(idx)] for layer, kind, idx in self.pruning]


def _pruners() -> Any:
    import torch_pruning as tp  # lazily: heavy, and only user models need it

    return tp


def replay(model: nn.Module, ops: tuple[PruneOp, ...], label: str = "model") -> None:
    """Apply a pruning record to `model` in place (Torch-Pruning's per-layer pruners, no tracing)."""
    if not ops:
        return
    tp = _pruners()
    for layer, kind, idx in ops:
        try:
            module = model.get_submodule(layer)
        except AttributeError:
            raise SpecError(f"{label}: pruning record names layer {layer!r}, which the model does not have") from None
        pruner = tp.pruner.function.PrunerBox.get(tp.ops.module2type(module))
        if pruner is None:
            raise SpecError(f"{label}: pruning record names {layer!r}, a {type(module).__name__} it cannot prune")
        width = pruner.get_out_channels(module) if kind == "out" else pruner.get_in_channels(module)
        if width is not None and idx and max(idx) >= width:
            raise SpecError(f"{label}: pruning record of {layer!r}: index {max(idx)} out of range 0..{width - 1}")
        if width is not None and len(set(idx)) >= width:
            raise SpecError(f"{label}: pruning record would empty layer {layer!r}")
        getattr(pruner, f"prune_{kind}_channels")(module, list(idx))
