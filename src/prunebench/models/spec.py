"""Typed, JSON-serialisable architecture specs and the channel-group contract.

A spec fully describes a zoo model: building it gives an `nn.Module`, and
`spec_of(module)` reads the spec back.  Pruning never hand-walks modules: it
asks the spec for its `ChannelGroup`s and slices the tensors each group names.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any, ClassVar, Self

from torch import nn

from prunebench.errors import SpecError

_FAMILIES: dict[str, type["ModelSpec"]] = {}


def register_family(cls: type["ModelSpec"]) -> type["ModelSpec"]:
    """Class decorator: make a spec family loadable by `spec_from_dict`."""
    _FAMILIES[cls.family] = cls
    return cls


@dataclass(frozen=True)
class ChannelGroup:
    """A set of channels that must be kept or removed together.

    kind:
      "out"    -- output channels of `producer` (a conv/linear module name); removing
                  them shrinks the producer, its BN and every consumer's input.
      "select" -- channels a channel-selection layer lets through to `consumers`
                  (PreResNet/DenseNet/ResNet-50-2x); the producing tensor keeps its width.
    members: (state-dict key, dim, repeat) triples to `index_select` with the kept
      indices; `repeat` > 1 marks a flatten into a Linear, where each channel owns
      `repeat` consecutive input columns.
    """

    name: str
    kind: str
    size: int
    producer: str | None
    bn: str | None
    consumers: tuple[str, ...]
    members: tuple[tuple[str, int, int], ...]
    stage: int = 0


@dataclass(frozen=True, kw_only=True)
class ModelSpec:
    """Base of every family's spec. Subclasses are frozen dataclasses."""

    family: ClassVar[str] = ""
    num_classes: int = 10
    in_channels: int = 3
    input_size: int = 32
    name: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        # An invalid spec cannot exist: every construction path validates.
        self.validate()

    # -- the contract every family implements -------------------------------------
    def validate(self) -> None:
        if self.num_classes < 1 or self.in_channels < 1 or self.input_size < 1:
            raise SpecError(f"{self.family}: num_classes, in_channels and input_size must be positive")

    def build(self) -> nn.Module:  # pragma: no cover - abstract
        raise NotImplementedError

    def groups(self) -> list[ChannelGroup]:
        """Prunable channel groups, in forward order."""
        return []

    def with_kept(self, kept: dict[str, list[int]]) -> "ModelSpec":
        """The spec after keeping `kept[group]` channels of each named group."""
        raise SpecError(f"{self.family} does not support channel pruning")

    def widths(self) -> list[Any]:
        """Per-layer widths for reports and plots."""
        return []

    def scaled(self, factor: float, *, inner_only: bool = False) -> "ModelSpec":
        """Every prunable width times `factor` (nearest, min 1); `inner_only` keeps residual/concat widths."""
        raise SpecError(f"{self.family} does not support width scaling")

    def from_module(self, module: nn.Module) -> "ModelSpec":
        """This spec with the widths re-read from `module`'s layers (see `spec_of`)."""
        raise SpecError(f"{self.family} cannot read its spec back from a module")

    @property
    def label(self) -> str:
        """The name used in error messages."""
        return self.name or self.family

    # -- serialisation ------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        d = {f.name: _plain(getattr(self, f.name)) for f in dataclasses.fields(self)}
        d["family"] = self.family
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    def replace(self, **changes: Any) -> Self:
        new = dataclasses.replace(self, **changes)
        new.validate()
        return new


def normalize_kept(groups: list[ChannelGroup], kept: dict[str, Any]) -> dict[str, tuple[int, ...]]:
    """Check `kept` against `groups` and return sorted, duplicate-free index tuples.

    Sorting keeps the channel order of the original model, so the spec and the
    weight slicing (which both use this function) always agree.
    """
    by_name = {g.name: g for g in groups}
    out: dict[str, tuple[int, ...]] = {}
    for name, idx in kept.items():
        if name not in by_name:
            raise SpecError(f"unknown channel group {name!r}")
        size = by_name[name].size
        vals = sorted({int(i) for i in idx})
        if not vals:
            raise SpecError(f"channel group {name!r} would keep 0 channels")
        if vals[0] < 0 or vals[-1] >= size:
            bad = vals[0] if vals[0] < 0 else vals[-1]
            raise SpecError(f"channel group {name!r}: index {bad} out of range 0..{size - 1}")
        out[name] = tuple(vals)
    return out


def check_positive(label: str, what: str, values: Any) -> None:
    """Raise SpecError unless every entry of `values` (nested tuples allowed) is an int >= 1."""
    for v in values if isinstance(values, tuple | list) else (values,):
        if isinstance(v, tuple | list):
            check_positive(label, what, v)
        elif isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise SpecError(f"{label}: {what} must be positive integers, got {v!r}")


def scale_width(width: int, factor: float) -> int:
    """A width times `factor`, rounded to nearest, at least 1."""
    return max(1, int(round(width * factor)))


def scale_staged(spec: Any, factor: float, *, inner_only: bool) -> Any:
    """`scaled()` of the staged ResNet families (fields `inner`, `stem`, `planes`, `selections`)."""
    inner = tuple(tuple(scale_width(w, factor) for w in ws) for ws in spec.inner)
    if inner_only:
        return dataclasses.replace(spec, inner=inner)
    return dataclasses.replace(  # new full widths: selections reset to "all"
        spec, inner=inner, stem=scale_width(spec.stem, factor),
        planes=tuple(scale_width(p, factor) for p in spec.planes), selections=((),) * len(spec.selections),
    )


def _plain(v: Any) -> Any:
    if isinstance(v, tuple | list):
        return [_plain(x) for x in v]
    if isinstance(v, dict):
        return {k: _plain(x) for k, x in v.items()}
    return v


def _freeze(v: Any) -> Any:
    if isinstance(v, list | tuple):
        return tuple(_freeze(x) for x in v)
    return v


def spec_from_dict(d: dict[str, Any]) -> ModelSpec:
    """Inverse of `ModelSpec.to_dict`, validating as it goes."""
    if not isinstance(d, dict) or "family" not in d:
        raise SpecError("spec must be a JSON object with a 'family' key")
    fam = d["family"]
    if fam not in _FAMILIES:
        raise SpecError(f"unknown model family {fam!r}; known: {', '.join(sorted(_FAMILIES))}")
    cls = _FAMILIES[fam]
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(d) - names - {"family"}
    if unknown:
        raise SpecError(f"{fam} spec has unknown keys: {', '.join(sorted(unknown))}")
    kwargs = {k: _freeze(v) for k, v in d.items() if k != "family"}
    try:
        spec = cls(**kwargs)
    except TypeError as e:
        raise SpecError(f"bad {fam} spec: {e}") from None
    spec.validate()
    return spec


def attached_spec(module: nn.Module) -> ModelSpec:
    """The spec a zoo model carries as `module.spec`, typed (`nn.Module.__getattr__` is not)."""
    spec = getattr(module, "spec", None)
    if not isinstance(spec, ModelSpec):
        raise SpecError("module is not a prunebench zoo model (no .spec)")
    return spec


def spec_of(module: nn.Module) -> ModelSpec:
    """Re-read a zoo model's spec from its layers (widths and selections as they are now)."""
    return attached_spec(module).from_module(module)


def spec_from_json(text: str) -> ModelSpec:
    try:
        return spec_from_dict(json.loads(text))
    except json.JSONDecodeError as e:
        raise SpecError(f"spec is not valid JSON: {e}") from None
