"""Uniform-width baseline (docs/methods.md §10): every prunable layer scaled by one factor.

Not a pruning of weights: the factor is searched by bisection so that the scaled
architecture matches a target parameter or reference-mode FLOPs count, and the
result is a freshly initialised model that is only ever trained from scratch.

Rounding (recorded in the result):
  "floor" (default, the L1 rule): every prunable "out" channel group keeps
      int(C·f) >= 1 channels; residual-sum and concatenation widths stay.
  "nearest": the zoo's `ModelSpec.scaled(f)`, which scales every width (residual
      and concatenation widths too, unless `inner_only`) to the nearest integer.
A user model (builder spec) takes "floor" over its DepGraph coupled groups (`depgraph.uniform_widths`):
a residual sum's width is one group there, so it is narrowed by the same factor as the rest.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

from torch import nn

from prunebench.errors import ConfigError
from prunebench.measure import count_flops, count_params
from prunebench.models import attached_spec, build_model
from prunebench.models.builder import BuilderSpec
from prunebench.models.spec import ModelSpec, spec_from_dict
from prunebench.prune.base import PruneMethod, PruneResult
from prunebench.prune.depgraph import uniform_widths
from prunebench.prune.registry import register
from prunebench.prune.scratch import scratch_model

TARGETS = ("params", "flops")
ROUNDINGS = ("floor", "nearest")
BISECTION_STEPS = 40
MAX_FACTOR = 64.0


def model_size(spec: ModelSpec, target: str) -> int:
    """Total parameters, or reference-mode FLOPs per image, of the model `spec` builds."""
    model = build_model(spec)
    return count_params(model).total if target == "params" else count_flops(model, mode="reference").flops


def floor_scaled(spec: ModelSpec, factor: float) -> ModelSpec:
    """`spec` with every prunable "out" group cut to int(C·factor) channels (at least 1)."""
    groups = [g for g in spec.groups() if g.kind == "out"]
    if not groups:
        raise ConfigError(f"uniform: {spec.label} has no prunable output channels; use rounding='nearest'")
    return spec.with_kept({g.name: list(range(max(1, int(g.size * factor)))) for g in groups})


def match_size(
    make: Callable[[float], ModelSpec],
    *,
    target_params: int | None,
    target_flops: int | None,
    what: str,
    max_scale: float = MAX_FACTOR,
) -> tuple[ModelSpec, float]:
    """The `make(scale)` (scale in [0, max_scale]) whose size is closest to the target (ties: the smaller).

    `make` must grow monotonically with the scale; sizes are total parameters or
    reference-mode FLOPs per image (`model_size`).  Shared by the uniform and the
    guided (`guided.py`) baselines.
    """
    if (target_params is None) == (target_flops is None):
        raise ConfigError(f"{what}: give exactly one of target_params or target_flops")
    kind, goal = ("params", target_params) if target_params is not None else ("flops", target_flops)
    assert goal is not None
    sizes: dict[str, int] = {}  # many scales round to the same widths: measure each architecture once

    def size_at(scale: float) -> tuple[ModelSpec, int]:
        spec = make(scale)
        key = spec.to_json()
        if key not in sizes:
            sizes[key] = model_size(spec, kind)
        return spec, sizes[key]

    if size_at(0.0)[1] > goal:
        raise ConfigError(f"{what}: {goal} {kind} is below the smallest model of this family (every width 1)")
    hi = 1.0
    while size_at(hi)[1] < goal:
        hi *= 2
        if hi > max_scale:
            raise ConfigError(f"{what}: {goal} {kind} needs widths more than {max_scale:g}x the model's")
    lo = 0.0
    for _ in range(BISECTION_STEPS):  # invariant: size(lo) <= goal < size(hi), or size(hi) == goal
        mid = (lo + hi) / 2
        if size_at(mid)[1] <= goal:
            lo = mid
        else:
            hi = mid
    below, above = size_at(lo), size_at(hi)
    if abs(above[1] - goal) < abs(goal - below[1]):
        return above[0], hi
    return below[0], lo


def uniform_spec(
    spec: ModelSpec,
    *,
    target_params: int | None = None,
    target_flops: int | None = None,
    rounding: str = "floor",
    inner_only: bool = False,
) -> tuple[ModelSpec, float]:
    """The spec scaled by the one factor f whose size is closest to the target (ties: the smaller)."""
    if (target_params is None) == (target_flops is None):
        raise ConfigError("uniform: give exactly one of target_params or target_flops")
    if rounding not in ROUNDINGS:
        raise ConfigError(f"uniform: rounding must be one of {', '.join(ROUNDINGS)}, got {rounding!r}")
    if inner_only and rounding == "floor":
        raise ConfigError("uniform: inner_only applies to rounding='nearest' (floor never scales residual widths)")
    if isinstance(spec, BuilderSpec):  # a user model: the same factor on every DepGraph group of a fresh build
        if rounding != "floor":
            raise ConfigError("uniform: a user model (builder) takes only rounding='floor'")
        make: Callable[[float], ModelSpec] = uniform_widths(spec)
    elif rounding == "floor":
        make = partial(floor_scaled, spec)
    else:
        make = partial(spec.scaled, inner_only=inner_only)
    return match_size(
        make,
        target_params=target_params,
        target_flops=target_flops,
        what="uniform",
        max_scale=1.0 if rounding == "floor" else MAX_FACTOR,  # floor keeps channels: it cannot widen
    )


@dataclass(frozen=True)
class UniformOptions:
    """target: match "params" or (reference-mode) "flops".
    match: the target as a fraction of the large model's size.
    reference_spec: or the size of this architecture (a spec dict or JSON, e.g. another method's pruned spec).
    rounding: "floor" (prunable groups, the L1 rule) or "nearest" (the zoo's width scaling; see the module doc).
    inner_only: with "nearest", keep residual-sum / concatenation widths.
    """

    target: str = "params"
    match: float | None = None
    reference_spec: dict[str, Any] | str | None = None
    rounding: str = "floor"
    inner_only: bool = False

    def validate(self) -> None:
        if self.target not in TARGETS:
            raise ConfigError(f"method 'uniform': target must be one of {', '.join(TARGETS)}, got {self.target!r}")
        if (self.match is None) == (self.reference_spec is None):
            raise ConfigError("method 'uniform': give exactly one of match or reference_spec")
        if self.match is not None and not self.match > 0:
            raise ConfigError(f"method 'uniform': match must be positive, got {self.match}")
        if self.rounding not in ROUNDINGS:
            raise ConfigError(f"method 'uniform': rounding must be one of {', '.join(ROUNDINGS)}, got {self.rounding!r}")

    def reference(self) -> ModelSpec:
        raw = self.reference_spec
        if isinstance(raw, str):
            try:
                raw = json.loads(raw)
            except json.JSONDecodeError as e:
                raise ConfigError(f"method 'uniform': reference_spec is not valid JSON: {e}") from None
        assert isinstance(raw, dict)
        return spec_from_dict(raw)


@register
class Uniform(PruneMethod):
    name = "uniform"
    description = "Uniform-width baseline: one width factor matching a params/FLOPs target (scratch only)"
    Options = UniformOptions
    style = "physical"

    def prune(self, model: nn.Module, splits: Any, opts: UniformOptions, *, seed: int = 0) -> PruneResult:
        base = attached_spec(model) if opts.match is not None else opts.reference()
        goal = model_size(base, opts.target)
        if opts.match is not None:
            goal = int(opts.match * goal)
        spec, factor = uniform_spec(
            attached_spec(model), rounding=opts.rounding, inner_only=opts.inner_only, **{f"target_{opts.target}": goal}
        )
        fresh, _ = scratch_model(spec, seed=seed)
        info = {
            "scratch_only": True,
            "factor": factor,
            "rounding": opts.rounding,
            "target": opts.target,
            "goal": goal,
            "achieved": model_size(spec, opts.target),
            "widths": spec.widths(),
        }
        return PruneResult(model=fresh, info=info)
