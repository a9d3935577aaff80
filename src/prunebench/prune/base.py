"""The one interface every pruning method implements.

A method declares (1) how its large model is trained (extra callbacks: none,
a sparsity penalty, soft pruning, ...), (2) how it prunes a trained model into
a `PruneResult`, and (3) its fine-tune recipe.  Adding a method = one file in
this package + one line in `registry.py`.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn

from prunebench.errors import ConfigError
from prunebench.prune.importance import exact_fraction

#: The one name and meaning of a pruning amount: `ratio`, the fraction REMOVED.
RATIO = "ratio"


def removed_from_kept(kept: float) -> float:
    """An old keep fraction as the fraction removed, exactly (keep 0.9 -> 0.1, not 0.09999...)."""
    return float(1 - exact_fraction(kept))


def same_value(value: float) -> float:
    return value


@dataclass(frozen=True)
class NoOptions:
    """For methods without options."""


@dataclass
class PruneResult:
    """What a pruning method returns.

    model: a zoo model (``model.spec`` is the pruned architecture) holding the
        inherited weights.
    masks: parameter name -> bool tensor, for mask-based methods (the model is then
        full size with zeros where the mask is False).
    kept: group name -> kept channel indices, for structured methods.
    info: JSON-able facts (per-layer kept counts/densities, timings, notes).
    """

    model: nn.Module
    masks: dict[str, torch.Tensor] | None = None
    kept: dict[str, list[int]] | None = None
    info: dict[str, Any] = field(default_factory=dict)


class PruneMethod(ABC):
    """Base class of every pruning method."""

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    Options: ClassVar[type] = NoOptions
    #: "plain" | "sparsity" | "soft" | "gated": how the large model is trained.
    large_training_kind: ClassVar[str] = "plain"
    #: "physical" | "mask": the implementation style of the pruned model.
    style: ClassVar[str] = "physical"
    #: old option name -> (its name now, the conversion of its value): accepted, documented aliases
    #: (e.g. magnitude's ``percent`` and SFP's ``keep_rate`` for ``ratio``, the fraction removed).
    aliases: ClassVar[dict[str, tuple[str, Callable[[Any], Any]]]] = {}
    #: options that only decide how fast the method runs, never its result (e.g. how many images
    #: go through one forward pass while sampling); they stay out of stage identities
    execution_options: ClassVar[frozenset[str]] = frozenset()
    #: options read only while the large model trains (slimming's lam): pruning an already trained
    #: checkpoint ignores them, so `prunebench prune` refuses them (`train --method` takes them)
    training_options: ClassVar[frozenset[str]] = frozenset()
    #: How training runs *inside* `prune()` (ThiNet's between-layer fine-tune, magnitude's Han
    #: rounds) are run; not options, because they do not decide what is computed beyond what the
    #: experiment already fixes.  `inner_precision`: the experiment sets its large recipe's precision
    #: (a preset pinned to fp32 must not get bf16 inner training); `work_dir`: where those runs keep
    #: their folders (the experiment: the prune stage's own folder, so they resume; None: a
    #: temporary folder, never a path outside the caller's output).
    inner_precision: str = "auto"
    work_dir: Path | None = None

    def parse_options(self, raw: dict[str, Any] | None) -> Any:
        """Validate a dict of options into this method's `Options` dataclass (aliases converted first)."""
        raw = self._resolve_aliases(dict(raw or {}))
        names = {f.name: f for f in dataclasses.fields(self.Options)}
        unknown = set(raw) - set(names)
        if unknown:
            raise ConfigError(
                f"method {self.name!r}: unknown option(s) {', '.join(sorted(unknown))}; "
                f"known: {', '.join(sorted(names)) or 'none'}"
            )
        hints = typing.get_type_hints(self.Options)
        for key, value in raw.items():
            if not _matches(value, hints[key]):
                raise ConfigError(
                    f"method {self.name!r}: option {key}: expected {_type_name(hints[key])}, got {value!r}"
                )
        try:
            opts = self.Options(**raw)
        except (TypeError, ValueError) as e:
            raise ConfigError(f"method {self.name!r}: {e}") from None
        check = getattr(opts, "validate", None)
        if check:
            check()
        return opts

    def _resolve_aliases(self, raw: dict[str, Any]) -> dict[str, Any]:
        hints = typing.get_type_hints(self.Options)
        for old, (new, convert) in self.aliases.items():
            if old not in raw:
                continue
            if new in raw:
                raise ConfigError(f"method {self.name!r}: give {new} or its old name {old}, not both")
            value = raw.pop(old)
            if value is not None:
                if not _matches(value, hints[new]):
                    raise ConfigError(
                        f"method {self.name!r}: option {old}: expected {_type_name(hints[new])}, got {value!r}"
                    )
                value = convert(value)
            raw[new] = value
        return raw

    def planned_flops_fixed(self, opts: Any) -> bool:
        """Whether the pruned architecture (and so its FLOPs) follows from the options and the large
        architecture alone, so that pruning a freshly built large model plans the Scratch-B budget
        before anything is trained (per-layer fixed counts: L1-norm, SFP). Default: no."""
        return False

    def planned_prune(self, model: nn.Module, opts: Any) -> PruneResult | None:
        """`model` (a freshly built large model) pruned without data, when `planned_flops_fixed(opts)`:
        the dry run's Scratch-B budgets come from it.  None when pruning decides the architecture."""
        return self.prune(model, None, opts) if self.planned_flops_fixed(opts) else None

    def variants(self) -> list[str]:
        """Named targets this method can hit exactly (for `prune --list`)."""
        return []

    def large_training(self, opts: Any, spec: Any) -> list[Any]:
        """Callbacks added while training the large model (default: none)."""
        return []

    def prepare_large(self, spec: Any, opts: Any) -> Any:
        """The spec the large model is built from (e.g. SSS adds gates). Default: unchanged."""
        return spec

    @abstractmethod
    def prune(self, model: nn.Module, splits: Any, opts: Any, *, seed: int = 0) -> PruneResult:
        """Prune a trained large model."""

    def finetune(self, opts: Any, base: Any) -> Any | None:
        """Fine-tune recipe (`base` is the experiment's configured one), or None for no fine-tune stage."""
        return base

    def finetune_callbacks(self, opts: Any, result: PruneResult) -> list[Any]:
        """Callbacks used while fine-tuning (mask methods keep their zeros via the trainer's masks)."""
        return []


def _matches(value: Any, hint: Any) -> bool:
    """Whether a TOML/JSON value fits an Options annotation (ints are accepted for floats)."""
    if hint is Any:
        return True
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_matches(value, h) for h in typing.get_args(hint))
    if origin is typing.Literal:
        return value in typing.get_args(hint)
    if hint is type(None):
        return value is None
    if hint is bool:
        return isinstance(value, bool)
    if hint is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if origin in (tuple, list):
        if not isinstance(value, list | tuple):
            return False
        args = [a for a in typing.get_args(hint) if a is not Ellipsis]
        return not args or all(any(_matches(v, a) for a in args) for v in value)
    if origin is dict:
        return isinstance(value, dict)
    if isinstance(hint, type):
        return isinstance(value, hint)
    return True


def _type_name(hint: Any) -> str:
    return getattr(hint, "__name__", None) or str(hint).replace("typing.", "")
