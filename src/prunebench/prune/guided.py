"""Guided and transferred-guided design (docs/methods.md §10, docs/protocol.md §8 E10): widths.

Guided pruning reads a channel-pruned network (e.g. slimming's) as an architecture
recipe: per *stage* (the zoo's `ChannelGroup.stage`, i.e. the layers sharing a
feature-map size) it averages the kept fraction of the prunable groups, then builds
networks in which every prunable layer of stage s has ``fraction_s * scale`` of
its base width, with `scale` searched by bisection to hit a parameter or FLOPs
budget.  The transferred variant takes the fractions from one network/data set
(VGG-16 on CIFAR-10) and applies them to another (VGG-19 on CIFAR-100).

All inputs and outputs are specs, floats and lists, so the experiment layer can
store them as JSON.  The mask counterpart lives in `guided_sparse.py`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TypeVar

from prunebench.errors import ConfigError, SpecError
from prunebench.models.spec import ModelSpec
from prunebench.prune.uniform import match_size

T = TypeVar("T")


def stage_width_fractions(pruned_spec: ModelSpec, original_spec: ModelSpec) -> list[float]:
    """Per stage, the mean over its channel groups of pruned width / original width.

    Every group is weighted equally (the paper averages the layers' widths). Both
    specs must be the same network, the pruned one obtained by channel pruning.
    """
    pruned = {g.name: g.size for g in pruned_spec.groups()}
    per_stage: dict[int, list[float]] = {}
    for g in original_spec.groups():
        if g.kind not in ("out", "select"):
            continue
        if g.name not in pruned:
            raise SpecError(
                f"{pruned_spec.label} has no channel group {g.name!r}: guided design needs a channel-pruned "
                f"copy of {original_spec.label}"
            )
        per_stage.setdefault(g.stage, []).append(pruned[g.name] / g.size)
    if not per_stage:
        raise SpecError(f"{original_spec.label} has no prunable channel groups")
    if sorted(per_stage) != list(range(len(per_stage))):
        raise SpecError(f"{original_spec.label}: channel-group stages are not numbered 0..n-1")
    return [sum(f) / len(f) for _, f in sorted(per_stage.items())]


def transfer_fractions(fractions: Sequence[T], n_stages_target: int) -> list[T]:
    """Map per-stage values of a source network onto a target network with `n_stages_target` stages.

    Same stage count: unchanged (VGG-16 -> VGG-19 both have 5). Otherwise stages are
    aligned by relative depth: target stage t takes the value of the source stage
    nearest to t * (n_src - 1) / (n_tgt - 1) (halves round up, towards the deeper
    stage); a one-stage network takes the first source stage. Values are copied, never
    averaged, so this works for fractions, densities and 3x3 keep maps alike.
    """
    n_src = len(fractions)
    if n_src == 0:
        raise ConfigError("transfer: no source stages given")
    if n_stages_target < 1:
        raise ConfigError(f"transfer: the target needs at least one stage, got {n_stages_target}")
    if n_src == n_stages_target:
        return list(fractions)
    if n_stages_target == 1:
        return [fractions[0]]
    step = (n_src - 1) / (n_stages_target - 1)
    return [fractions[math.floor(t * step + 0.5)] for t in range(n_stages_target)]


def guided_widths(base_spec: ModelSpec, stage_fractions: Sequence[float], scale: float) -> ModelSpec:
    """`base_spec` with every prunable group of stage s at ``round(size * fraction_s * scale)`` (min 1).

    Widths above the base width come from first widening the prunable layers with
    ``scaled(factor, inner_only=True)`` (residual / concatenation widths stay). A channel
    selection ("select" group) cannot exceed the channels its producer makes, so it
    is capped at them.
    """
    groups = base_spec.groups()
    n_stages = 1 + max((g.stage for g in groups), default=-1)
    if len(stage_fractions) != n_stages:
        raise ConfigError(
            f"guided: {base_spec.label} has {n_stages} stages but {len(stage_fractions)} fractions were given "
            f"(use transfer_fractions to map them)"
        )
    if any(not f > 0 for f in stage_fractions):
        raise ConfigError(f"guided: stage fractions must be positive, got {list(stage_fractions)}")
    want = {g.name: max(1, round(g.size * stage_fractions[g.stage] * scale)) for g in groups}
    widen = max(want[g.name] / g.size for g in groups)
    spec = base_spec.scaled(widen, inner_only=True) if widen > 1 else base_spec
    sizes = {g.name: g.size for g in spec.groups()}
    return spec.with_kept({name: list(range(min(k, sizes[name]))) for name, k in want.items()})


def guided_spec(
    base_spec: ModelSpec,
    stage_fractions: Sequence[float],
    *,
    target_params: int | None = None,
    target_flops: int | None = None,
) -> tuple[ModelSpec, float]:
    """`guided_widths(base_spec, stage_fractions, scale)` at the scale matching the target, and that scale.

    With fractions from the same network, scale ~ 1 reproduces the pruned network's
    size; other targets give the "scaled to several sizes" family of docs/methods.md §10.
    """
    return match_size(
        lambda scale: guided_widths(base_spec, stage_fractions, scale),
        target_params=target_params, target_flops=target_flops, what="guided",
    )
