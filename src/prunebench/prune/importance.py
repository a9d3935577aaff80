"""Shared channel-scoring helpers: filter norms, BN scales, exact counts, stable top-k.

Every structured method ranks channels with these, so ties and rounding are
handled one way everywhere: ties keep the lower channel index, and counts use
exact rational arithmetic (``1 - 0.9`` in floating point is below 0.1).
"""

from __future__ import annotations

from fractions import Fraction

import torch
from torch import nn

from prunebench.models.spec import ChannelGroup


def exact_fraction(x: float | str | Fraction) -> Fraction:
    """The decimal the user wrote (``0.1`` -> 1/10), not its binary float approximation."""
    return x if isinstance(x, Fraction) else Fraction(str(x))


def floor_count(n: int, fraction: float | str | Fraction) -> int:
    """``int(n * fraction)`` computed exactly."""
    return int(n * exact_fraction(fraction))


def keep_count(n: int, prune_ratio: float | str | Fraction) -> int:
    """L1-norm keep rule: ``int(n * (1 - p))``, exact."""
    return floor_count(n, 1 - exact_fraction(prune_ratio))


def filter_l1(weight: torch.Tensor) -> torch.Tensor:
    """Sum of |w| over each output filter (dim 0) of a conv or linear weight."""
    return weight.detach().abs().flatten(1).sum(1)


def filter_l2(weight: torch.Tensor) -> torch.Tensor:
    """L2 norm of each output filter (dim 0)."""
    return weight.detach().flatten(1).norm(p=2, dim=1)


def bn_abs_gamma(model: nn.Module, group: ChannelGroup) -> torch.Tensor:
    """|γ| of the BN that scales a group's channels, one per channel of the group: the group's own BN,
    or for a "select" group the full-width BN in front of the selection read at the selected
    positions (after a first slimming pass the selection lets fewer channels through than the BN has)."""
    if group.bn is None:
        raise ValueError(f"group {group.name} has no BN")
    gamma = model.get_parameter(f"{group.bn}.weight").detach().abs()
    if group.kind == "select":
        indices = model.get_buffer(f"{group.name}.indices")
        gamma = gamma[indices.to(gamma.device)]
    return gamma


def producer_weight(model: nn.Module, group: ChannelGroup) -> torch.Tensor:
    """The weight of the conv/linear that produces an "out" group's channels."""
    if group.producer is None:
        raise ValueError(f"group {group.name} has no producer")
    return model.get_parameter(f"{group.producer}.weight")


def top_k(scores: torch.Tensor, k: int) -> list[int]:
    """Indices of the k highest scores, ties to the lower index, returned in ascending order."""
    order = torch.sort(scores.detach().cpu(), descending=True, stable=True).indices
    return sorted(order[:k].tolist())


def bottom_k(scores: torch.Tensor, k: int) -> list[int]:
    """Complement of ``top_k(scores, n - k)``: the k lowest, ties to the higher index."""
    keep = set(top_k(scores, scores.numel() - k))
    return [i for i in range(scores.numel()) if i not in keep]
