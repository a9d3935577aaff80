"""L1-norm filter pruning (Li et al., ICLR 2017): keep each layer's top filters by sum |w|.

Only "out" groups produced by a conv are candidates: every VGG conv, and the
block-internal convs of residual nets (the zoo exposes no group for a width tied
to a residual sum).  Named variants take their per-group kept counts from the
zoo's variant specs, so the pruned widths are exactly the published ones.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from prunebench.errors import ConfigError
from prunebench.models import attached_spec, list_variants, variant
from prunebench.models.spec import ChannelGroup
from prunebench.prune.base import PruneMethod, PruneResult
from prunebench.prune.depgraph import is_user_model, prune_per_group
from prunebench.prune.importance import exact_fraction, filter_l1, keep_count, producer_weight, top_k
from prunebench.prune.registry import register
from prunebench.prune.surgery import apply_channel_masks, channel_masks, prune_channels

#: Li et al.'s named targets (docs/methods.md §2.3-§2.5); their widths live in the zoo.
L1_VARIANTS = ("vgg16-a", "resnet56-a", "resnet56-b", "resnet110-a", "resnet110-b", "resnet34-a", "resnet34-b")
SCORINGS = ("independent", "greedy")


@dataclass(frozen=True)
class L1Options:
    """variant: a named target (exact widths); ratio: prune ratio p applied to every candidate layer.
    skip / skip_stages: groups (by name) or stages (0-based) left whole when `ratio` is used.
    scoring: "independent" scores the trained weights as they are (the reference);
    "greedy" ignores input kernels whose feature map an earlier layer already removed.
    mask_form: return the full model with exact channel masks instead of a smaller model.
    """

    variant: str | None = None
    ratio: float | None = None
    skip: tuple[str, ...] = ()
    skip_stages: tuple[int, ...] = ()
    scoring: str = "independent"
    mask_form: bool = False

    def validate(self) -> None:
        if (self.variant is None) == (self.ratio is None):
            raise ConfigError("method 'l1norm': give exactly one of variant or ratio")
        if self.variant is not None and self.variant not in L1_VARIANTS:
            raise ConfigError(f"method 'l1norm': unknown variant {self.variant!r}; known: {', '.join(L1_VARIANTS)}")
        if self.ratio is not None and not 0 <= exact_fraction(self.ratio) < 1:
            raise ConfigError(f"method 'l1norm': ratio must be in [0, 1), got {self.ratio}")
        if self.variant is not None and (self.skip or self.skip_stages):
            raise ConfigError("method 'l1norm': skip lists are part of a named variant; use them with ratio")
        if self.scoring not in SCORINGS:
            raise ConfigError(f"method 'l1norm': scoring must be one of {', '.join(SCORINGS)}")


def candidate_groups(model: nn.Module) -> list[ChannelGroup]:
    """Groups L1-norm may shrink: conv-produced output channels."""
    return [
        g
        for g in attached_spec(model).groups()
        if g.kind == "out" and g.producer is not None and isinstance(model.get_submodule(g.producer), nn.Conv2d)
    ]


def variant_targets(model: nn.Module, name: str) -> dict[str, int]:
    """Per-group kept counts of a named variant, checked to be a pruning of the model's architecture."""
    spec = attached_spec(model)
    target = variant(name, spec)  # at the checkpoint's classes / channels / input size
    sizes = {g.name: g.size for g in spec.groups()}
    wanted = {g.name: g.size for g in target.groups()}
    fits = target.family == spec.family and set(wanted) == set(sizes) and all(wanted[n] <= sizes[n] for n in sizes)
    if not fits or spec.with_kept({n: list(range(k)) for n, k in wanted.items()}).widths() != target.widths():
        raise ConfigError(f"variant {name!r} is not a pruning of this {spec.label} model (architectures differ)")
    candidates = {g.name for g in candidate_groups(model)}
    if any(wanted[n] < sizes[n] and n not in candidates for n in sizes):
        raise ConfigError(f"variant {name!r} shrinks channels that L1-norm does not prune")
    return {n: wanted[n] for n in candidates}


def ratio_targets(model: nn.Module, opts: L1Options) -> dict[str, int]:
    """Per-group kept counts of `int(C * (1 - p))` for every candidate outside the skip lists."""
    assert opts.ratio is not None
    known = {g.name for g in attached_spec(model).groups()}
    unknown = set(opts.skip) - known
    if unknown:
        raise ConfigError(f"method 'l1norm': skip names unknown groups: {', '.join(sorted(unknown))}")
    return {
        g.name: g.size if g.name in opts.skip or g.stage in opts.skip_stages else keep_count(g.size, opts.ratio)
        for g in candidate_groups(model)
    }


def _input_restricted(weight: torch.Tensor, group: ChannelGroup, kept: dict[str, list[int]], groups: list[ChannelGroup]) -> torch.Tensor:
    """For greedy scoring: drop the input kernels of channels removed by already-decided groups."""
    key = f"{group.producer}.weight"
    for other in groups:
        if other.name not in kept:
            continue
        for member, dim, repeat in other.members:
            if member == key and dim == 1:
                cols = [c * repeat + r for c in kept[other.name] for r in range(repeat)]
                weight = weight.index_select(1, torch.tensor(cols, dtype=torch.long, device=weight.device))
    return weight


def select_filters(model: nn.Module, targets: dict[str, int], scoring: str = "independent") -> dict[str, list[int]]:
    """Keep the top-L1 filters of each targeted group (groups absent from `targets` stay whole)."""
    groups = attached_spec(model).groups()
    kept: dict[str, list[int]] = {}
    for g in groups:  # forward order, which greedy scoring relies on
        if g.name not in targets:
            continue
        weight = producer_weight(model, g)
        if scoring == "greedy":
            weight = _input_restricted(weight, g, kept, groups)
        kept[g.name] = top_k(filter_l1(weight), targets[g.name])
    return kept


@register
class L1Norm(PruneMethod):
    name = "l1norm"
    description = "L1-norm filter pruning (Li et al. 2017): per-layer top filters by sum |w|"
    Options = L1Options
    style = "physical"

    def planned_flops_fixed(self, opts: L1Options) -> bool:
        return True  # a named variant or int(C·(1 - ratio)) per layer: never decided by the weights

    def variants(self) -> list[str]:
        return [v for v in L1_VARIANTS if v in list_variants()]

    def prune(self, model: nn.Module, splits: Any, opts: L1Options, *, seed: int = 0) -> PruneResult:
        if is_user_model(model):  # a user's model: coupled groups from Torch-Pruning's DepGraph
            return _prune_user_model(model, opts)
        if not candidate_groups(model):
            raise ConfigError(f"method 'l1norm': {attached_spec(model).label} has no conv output channels it may prune")
        if opts.variant is not None:
            targets = variant_targets(model, opts.variant)
        else:
            targets = ratio_targets(model, opts)
        kept = select_filters(model, targets, opts.scoring)
        sizes = {g.name: g.size for g in attached_spec(model).groups()}
        info: dict[str, Any] = {
            "scoring": opts.scoring,
            "target": f"variant {opts.variant}" if opts.variant else f"ratio {opts.ratio}",
            "sizes": {n: sizes[n] for n in kept},
            "kept_counts": {n: len(k) for n, k in kept.items()},
        }
        if opts.mask_form:
            masks = channel_masks(model, kept)
            masked = copy.deepcopy(model)
            apply_channel_masks(masked, masks)
            return PruneResult(model=masked, masks=masks, kept=kept, info={**info, "style": "mask"})
        return PruneResult(model=prune_channels(model, kept), kept=kept, info={**info, "style": "physical"})


def _prune_user_model(model: nn.Module, opts: L1Options) -> PruneResult:
    """`ratio` per coupled group, scored by the summed L1 norms of the group's producing filters."""
    if opts.variant is not None or opts.skip_stages or opts.mask_form or opts.scoring != "independent":
        raise ConfigError("method 'l1norm': a user model takes ratio and skip (layer names) only")
    assert opts.ratio is not None
    res = prune_per_group(model, opts.ratio, "l1", skip=opts.skip)
    info = {"scoring": "independent", "target": f"ratio {opts.ratio}", "sizes": res.sizes, "style": "physical",
            "kept_counts": {n: len(k) for n, k in res.kept.items()}, "graph": "depgraph"}  # fmt: skip
    return PruneResult(model=res.model, kept=res.kept, info=info)
