"""Random pruning at a method's layer-wise amounts (the selection sanity check).

Su et al. 2020 and Frankle et al. 2021 ask whether a pruning criterion chooses *which*
channels or weights survive any better than chance once its per-layer amounts are fixed.
This keeps exactly the method's count per channel group (structured, physical or in mask
form) or per masked tensor (unstructured), draws the survivors uniformly at random with a
seeded generator, and keeps the large model's weights for them (inherited, as fine-tuning).
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from prunebench.errors import PrunebenchError
from prunebench.models import attached_spec
from prunebench.prune.analysis import Masks
from prunebench.prune.surgery import apply_channel_masks, channel_masks, prune_channels


def random_kept(sizes: dict[str, int], kept: dict[str, list[int]], *, seed: int) -> dict[str, list[int]]:
    """Per channel group as many channels as `kept` keeps, chosen at random among `sizes[group]`."""
    gen = torch.Generator().manual_seed(seed)
    out = {}
    for name in sorted(kept):  # a fixed order: the draw depends on the seed only
        if name not in sizes:
            raise PrunebenchError(f"random layer-wise pruning: the large model has no channel group {name!r}")
        perm = torch.randperm(sizes[name], generator=gen)
        out[name] = sorted(perm[: len(kept[name])].tolist())
    return out


def random_masks(masks: Masks, *, seed: int) -> Masks:
    """Per tensor a mask with the same number of kept entries as `masks[name]`, at random places."""
    gen = torch.Generator().manual_seed(seed)
    out = {}
    for name in sorted(masks):
        m = masks[name].bool()
        flat = torch.zeros(m.numel(), dtype=torch.bool)
        flat[torch.randperm(m.numel(), generator=gen)[: int(m.sum())]] = True
        out[name] = flat.view(m.shape)
    return out


def random_layerwise(
    large: nn.Module, masks: Masks | None, kept: dict[str, list[int]] | None, *, seed: int
) -> tuple[nn.Module, Masks | None, dict[str, list[int]] | None]:
    """The large model pruned at random with the method's amounts: (model, masks, kept).

    `kept` (per-group channel indices) means a structured method: random channels per group,
    physically sliced, or as channel masks when the method gave masks (exact mask form).
    Masks alone mean an unstructured method: random weights per tensor.
    """
    if kept:
        chosen = random_kept({g.name: g.size for g in attached_spec(large).groups()}, kept, seed=seed)
        if not masks:
            return prune_channels(large, chosen), None, chosen
        new = channel_masks(large, chosen)
    elif masks:
        new, chosen = random_masks(masks, seed=seed), None
    else:
        raise PrunebenchError("random layer-wise pruning needs the method's kept channels or its masks; this method records neither")
    model = copy.deepcopy(large)
    apply_channel_masks(model, new)
    return model, new, chosen
