"""Network Slimming (Liu et al., ICCV 2017): L1 on BN scales, then one global |γ| threshold.

Every group that has a BN takes part: "out" groups through their own BN, "select"
groups (PreResNet/DenseNet) through the full-width BN in front of the selection.
Unlike the reference, no group is left with fewer than `min_channels`: such a
group keeps its largest-|γ| channels and is listed in ``info["guarded_layers"]``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from prunebench.errors import ConfigError
from prunebench.models.spec import ModelSpec, attached_spec
from prunebench.prune.base import PruneMethod, PruneResult
from prunebench.prune.depgraph import is_user_model, prune_global
from prunebench.prune.importance import bn_abs_gamma, exact_fraction, floor_count, top_k
from prunebench.prune.registry import register
from prunebench.prune.surgery import prune_channels
from prunebench.train import BNL1Callback, Callback

HISTOGRAM_BINS = 50


@dataclass(frozen=True)
class SlimmingOptions:
    """ratio: fraction of all BN channels removed by the global threshold (the reference's --percent).
    lam: sparsity strength λ on |γ| during large training (None: the reference's default for the family).
    min_channels: the fewest channels any group keeps.
    """

    ratio: float | None = None
    lam: float | None = None
    min_channels: int = 1

    def validate(self) -> None:
        if self.ratio is None or not 0 <= exact_fraction(self.ratio) < 1:
            raise ConfigError(f"method 'slimming': ratio must be given and lie in [0, 1), got {self.ratio}")
        if self.lam is not None and self.lam < 0:
            raise ConfigError(f"method 'slimming': lam must be >= 0, got {self.lam}")
        if self.min_channels < 1:
            raise ConfigError(f"method 'slimming': min_channels must be >= 1, got {self.min_channels}")


def default_lambda(spec: ModelSpec) -> float:
    """docs/methods.md §5.2: 1e-4 for CIFAR VGGs; 1e-5 for PreResNet, DenseNet, ImageNet VGG-11 and the rest."""
    return 1e-4 if "vgg" in spec.family and spec.input_size < 64 else 1e-5


def global_threshold(gammas: torch.Tensor, ratio: float) -> float:
    """The reference rule: sort all |γ| ascending and take the entry at ``int(total * ratio)``."""
    ordered = torch.sort(gammas).values
    return float(ordered[floor_count(ordered.numel(), ratio)])


def gamma_histogram(gammas: torch.Tensor, bins: int = HISTOGRAM_BINS) -> dict[str, list[float]]:
    """Counts and edges of |γ| over [0, max] (what §10's guided designs and plots read)."""
    top = float(gammas.max())
    top = top if top > 0 else 1.0  # all-zero scales still get a valid range
    counts = torch.histc(gammas.float(), bins=bins, min=0.0, max=top)
    edges = torch.linspace(0.0, top, bins + 1)
    return {"counts": [int(c) for c in counts.tolist()], "edges": edges.tolist()}


@register
class Slimming(PruneMethod):
    name = "slimming"
    description = "Network Slimming (Liu et al. 2017): L1 on BN scales, global |gamma| threshold"
    Options = SlimmingOptions
    large_training_kind = "sparsity"
    style = "physical"
    training_options = frozenset({"lam"})

    def large_training(self, opts: SlimmingOptions, spec: ModelSpec) -> list[Callback]:
        lam = opts.lam if opts.lam is not None else default_lambda(spec)
        # BN1d scales are pruned (and so penalised) only where hidden FCs are groups: the slimming VGG-11 head.
        return [BNL1Callback(lam, include_bn1d=getattr(spec, "head", None) == "slim-fc")]

    def prune(self, model: nn.Module, splits: Any, opts: SlimmingOptions, *, seed: int = 0) -> PruneResult:
        assert opts.ratio is not None
        if is_user_model(model):  # a user's model: coupled groups from Torch-Pruning's DepGraph
            res = prune_global(model, opts.ratio, "bn", min_channels=opts.min_channels)
            info = {"ratio": opts.ratio, "lam": opts.lam if opts.lam is not None else default_lambda(attached_spec(model)),
                    "min_channels": opts.min_channels, "sizes": res.sizes, "graph": "depgraph",
                    "kept_counts": {n: len(k) for n, k in res.kept.items()}}  # fmt: skip
            return PruneResult(model=res.model, kept=res.kept, info=info)
        groups = [g for g in attached_spec(model).groups() if g.bn is not None]
        if not groups:
            raise ConfigError(f"method 'slimming': {attached_spec(model).family} has no BN-scaled channel groups")
        scores = {g.name: bn_abs_gamma(model, g).cpu() for g in groups}
        everything = torch.cat(list(scores.values()))
        thr = global_threshold(everything, opts.ratio)
        kept: dict[str, list[int]] = {}
        guarded: list[str] = []
        for g in groups:
            survivors = (scores[g.name] > thr).nonzero().flatten().tolist()
            floor = min(opts.min_channels, g.size)
            if len(survivors) < floor:
                survivors = top_k(scores[g.name], floor)
                guarded.append(g.name)
            kept[g.name] = survivors
        info = {
            "ratio": opts.ratio,
            "lam": opts.lam if opts.lam is not None else default_lambda(attached_spec(model)),
            "threshold": thr,
            "min_channels": opts.min_channels,
            "guarded_layers": guarded,
            "sizes": {g.name: g.size for g in groups},
            "kept_counts": {n: len(k) for n, k in kept.items()},
            "removed_fraction": 1 - sum(len(k) for k in kept.values()) / everything.numel(),
            "gamma_histogram": gamma_histogram(everything),
        }
        return PruneResult(model=prune_channels(model, kept), kept=kept, info=info)
