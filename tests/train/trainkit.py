"""Shared helpers for the trainer tests: a tiny zoo VGG on scikit-learn digits (8×8, offline)."""

from __future__ import annotations

from functools import lru_cache

import torch
from torch import nn

from prunebench.data import Splits, load
from prunebench.models import VGGSpec, build_model
from prunebench.train import Callback, TrainContext, seed_everything

TINY = VGGSpec(cfg=(8, "M", 16), num_classes=10, in_channels=1, input_size=8)


@lru_cache(maxsize=None)
def digits(val_size: int = 200, train_subset: int | None = 500) -> Splits:
    return load("digits", val_size=val_size, train_subset=train_subset)


def tiny_model(seed: int = 0) -> nn.Module:
    seed_everything(seed)
    return build_model(TINY)


def first_conv_mask(model: nn.Module) -> dict[str, torch.Tensor]:
    """Unstructured mask zeroing about half of the first conv's weights and two of its filters' BN γ."""
    w = model.features[0].weight
    mask = torch.rand(w.shape, generator=torch.Generator().manual_seed(1)) < 0.5
    gamma = torch.ones(8, dtype=torch.bool)
    gamma[[1, 5]] = False
    return {"features.0.weight": mask, "features.1.weight": gamma}


class ZeroRandomFilter(Callback):
    """A stateful per-epoch weight-changing hook (like soft filter pruning): zero one filter of the
    first conv, chosen from its own call counter plus the global torch RNG, so a resume that lost
    either the callback state or the RNG state would zero a different filter."""

    def __init__(self) -> None:
        self.calls = 0

    def on_epoch_end(self, ctx: TrainContext) -> None:
        self.calls += 1
        w = ctx.model.features[0].weight
        with torch.no_grad():
            w[(self.calls + int(torch.randint(0, 8, (1,)))) % 8].zero_()

    def state_dict(self) -> dict[str, int]:
        return {"calls": self.calls}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.calls = state["calls"]
