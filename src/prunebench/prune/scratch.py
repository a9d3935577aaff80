"""The one builder of scratch arms (Scratch-E, Scratch-B, lottery random init) for every method.

Physical models are simply rebuilt from their spec after seeding: the spec carries
the init conventions (docs/methods.md §1.6) and, for slimming, the channel-selection
indices.  Masked models are a fresh full-size model whose masked conv weights are
redrawn with He fan-out init counted over the *surviving* weights and then masked:

    w ~ N(0, sqrt(2 / n)),  n = nnz(mask) / C_in   ("sparse", the default)
                            n = numel(mask) / C_in  ("dense", the lottery-L1 script)
"""

from __future__ import annotations

import math

import torch
from torch import nn

from prunebench.errors import ConfigError
from prunebench.measure.params import check_masks
from prunebench.models import ChannelSelection, attached_spec, build_model
from prunebench.models.spec import ModelSpec
from prunebench.prune.analysis import Masks
from prunebench.prune.surgery import apply_channel_masks
from prunebench.train import seed_everything

REINIT = ("sparse", "dense")


def reinit_std(mask: torch.Tensor, reinit: str = "sparse") -> float:
    """The He fan-out std of a masked conv weight (C_out x C_in x kh x kw); 0 for an emptied layer."""
    count = int(mask.sum()) if reinit == "sparse" else mask.numel()
    n = count / mask.shape[1]
    return math.sqrt(2.0 / n) if n > 0 else 0.0


def scratch_model(
    spec_or_model: ModelSpec | nn.Module,
    *,
    seed: int,
    masks: Masks | None = None,
    reinit: str = "sparse",
    selection_from: nn.Module | None = None,
) -> tuple[nn.Module, Masks | None]:
    """A freshly initialised scratch model (seeded before it is built) and the masks it trains under.

    Without masks this is the physical Scratch-E/B model: the spec decides widths and
    init conventions.  With masks, masked conv weights are redrawn (`reinit`) and every
    mask (conv, linear, BN) is applied.  `selection_from`: the pruned model whose
    channel-selection indices are copied, the only state a scratch arm inherits
    (slimming's main_E/main_B); a zoo spec already holds them, so this guards against
    a spec that does not.
    """
    if reinit not in REINIT:
        raise ConfigError(f"scratch: reinit must be one of {', '.join(REINIT)}, got {reinit!r}")
    spec = attached_spec(spec_or_model) if isinstance(spec_or_model, nn.Module) else spec_or_model
    seed_everything(seed)
    model = build_model(spec)
    if selection_from is not None:
        _copy_selection(selection_from, model)
    if masks:
        masks = {k: v.to(torch.bool) for k, v in masks.items()}
        check_masks(model, masks)
        params = dict(model.named_parameters())
        with torch.no_grad():
            for name, mask in masks.items():
                if params[name].dim() == 4:  # conv weights get the sparsity-aware redraw
                    params[name].normal_(0.0, reinit_std(mask, reinit))
        apply_channel_masks(model, masks)
    return model, masks or None


def _copy_selection(source: nn.Module, target: nn.Module) -> None:
    sources = {n: m for n, m in source.named_modules() if isinstance(m, ChannelSelection)}
    for name, sel in target.named_modules():
        if isinstance(sel, ChannelSelection):
            if name not in sources or sources[name].indices.shape != sel.indices.shape:
                raise ConfigError(f"scratch: selection_from lacks a channel selection {name!r} of this width")
            sel.indices.copy_(sources[name].indices)
