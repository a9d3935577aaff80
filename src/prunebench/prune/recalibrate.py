"""BN recalibration: re-estimate running statistics after pruning changed what each BN sees."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from prunebench.data import batches as data_batches


@torch.no_grad()
def recalibrate_bn(model: nn.Module, splits: Any, *, batches: int = 50, batch_size: int = 64, seed: int = 0) -> nn.Module:
    """Reset every BN's running mean/var and re-estimate them as an exact average over
    `batches` random training batches (no augmentation), then return the model in eval mode.

    Only BN buffers change; weights are untouched.  The sample is drawn with a
    private generator, so the global RNG state is left alone.
    """
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not norms:
        return model.eval()
    saved_momentum = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative moving average: each batch weighs the same
    device = next(model.parameters()).device
    generator = torch.Generator().manual_seed(seed)
    pick = torch.randperm(len(splits.train_y), generator=generator)[: batches * batch_size]
    model.train()
    try:
        for x, _ in data_batches(
            splits.train_x[pick], splits.train_y[pick], info=splits.info, batch_size=batch_size, train=False, device=device
        ):
            if len(x) > 1:  # a single sample has no batch variance (BN1d would raise)
                model(x)
    finally:
        for m, momentum in zip(norms, saved_momentum):
            m.momentum = momentum
        model.eval()
    return model
