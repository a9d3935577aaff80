"""Typed, JSON-serialisable architecture specs and the channel-group contract.

A spec fully describes a zoo model: building it gives an `nn.Module`, and
`spec_of(module)` reads the spec back.  Pruning never hand-walks modules: it
asks the spec for its `ChannelGroup`s and slices the tensors each group names.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any, ClassVar

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

    # -- serialisation ------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        d = {f.name: _plain(getattr(self, f.name)) for f in dataclasses.fields(self)}
        d["family"] = self.family
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    def replace(self, **changes: Any) -> "ModelSpec":
        new = dataclasses.replace(self, **changes)
        new.validate()
        return new


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


def spec_from_json(text: str) -> ModelSpec:
    try:
        return spec_from_dict(json.loads(text))
    except json.JSONDecodeError as e:
        raise SpecError(f"spec is not valid JSON: {e}") from None
