"""Parameter counts: total, non-zero and prunable."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from prunebench.errors import ConfigError

#: Layers whose weights pruning methods remove (conv and fully connected).
PrunableLayer = nn.Conv1d | nn.Conv2d | nn.Conv3d | nn.Linear
PRUNABLE_LAYERS: tuple[type[PrunableLayer], ...] = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)


@dataclass(frozen=True)
class ParamCount:
    total: int
    nonzero: int
    prunable: int


def check_masks(model: nn.Module, masks: dict[str, torch.Tensor] | None) -> dict[str, torch.Tensor]:
    """`masks` (parameter name -> bool tensor), validated against the model's parameters."""
    if not masks:
        return {}
    params = dict(model.named_parameters())
    for name, mask in masks.items():
        if name not in params:
            raise ConfigError(f"mask for unknown parameter {name!r}")
        if tuple(mask.shape) != tuple(params[name].shape):
            raise ConfigError(
                f"mask for {name!r} has shape {tuple(mask.shape)}, parameter has {tuple(params[name].shape)}"
            )
    return masks


def count_params(model: nn.Module, masks: dict[str, torch.Tensor] | None = None) -> ParamCount:
    """Count the model's parameters.

    total:    every parameter entry, BN γ/β included.  Buffers (BN running
              statistics, channel-selection indices) are not parameters and are
              not counted.
    nonzero:  with `masks`, a masked parameter contributes its kept entries and
              every other parameter counts in full (the masks describe the
              sparsity); without masks, the literal non-zero entries.
    prunable: entries of conv and linear *weights* (biases and BN excluded),
              the denominator of unstructured pruning ratios.
    """
    masks = check_masks(model, masks)
    total = nonzero = 0
    for name, p in model.named_parameters():
        total += p.numel()
        if masks:
            nonzero += int(masks[name].sum()) if name in masks else p.numel()
        else:
            nonzero += int(torch.count_nonzero(p))
    prunable = sum(m.weight.numel() for m in model.modules() if isinstance(m, PRUNABLE_LAYERS))
    return ParamCount(total=total, nonzero=nonzero, prunable=prunable)
