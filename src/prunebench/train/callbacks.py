"""The callback protocol, the training context it sees, and the method hooks.

The loop only steps; everything else (evaluation, checkpoints, logging, progress,
and the pruning methods' hooks) is a `Callback`. Hook order within a run: the
caller's callbacks, then the trainer's `MaskCallback` (so masks see every other
change), then the trainer's own monitors.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from prunebench.data import Splits
from prunebench.errors import ConfigError
from prunebench.train.checkpoint import Masks, save_model
from prunebench.train.recipe import Recipe
from prunebench.train.speed import SpeedSettings


@dataclass
class TrainContext:
    """What callbacks see. `epoch` is the 0-based epoch being run (in `on_epoch_end`: just finished);
    `step` counts optimizer steps taken so far; `metrics` is the current epoch's row."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    recipe: Recipe
    out_dir: Path
    splits: Splits
    seed: int
    speed: SpeedSettings
    masks: Masks | None = None
    callbacks: list["Callback"] = field(default_factory=list)
    epoch: int = 0
    step: int = 0
    images_seen: int = 0
    loss: float = math.nan
    metrics: dict[str, float] = field(default_factory=dict)
    history: list[dict[str, float]] = field(default_factory=list)
    best_val_acc: float | None = None
    best_epoch: int | None = None
    elapsed_s: float = 0.0
    steps_per_epoch: int = 0

    @property
    def device(self) -> torch.device:
        return self.speed.device


class Callback:
    """Base class: override what you need. States must be tensors and primitives only
    (they are saved in `train_state.pt` and read back with `weights_only=True`)."""

    def on_train_start(self, ctx: TrainContext) -> None: ...

    def before_step(self, ctx: TrainContext) -> None:
        """After backward, before the optimizer step: gradients may be edited here."""

    def after_step(self, ctx: TrainContext) -> None: ...

    def on_epoch_end(self, ctx: TrainContext) -> None:
        """May change the weights (soft filter pruning does); runs before evaluation."""

    def on_train_end(self, ctx: TrainContext) -> None: ...

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


class MaskCallback(Callback):
    """Keep masked-out parameter entries exactly zero.

    Zeroing gradients alone is not enough: weight decay and carried-over momentum
    would revive them, so the parameters are also re-zeroed after every step.
    """

    def __init__(self, masks: Masks) -> None:
        self.masks = masks
        self._pairs: list[tuple[nn.Parameter, torch.Tensor]] = []

    def on_train_start(self, ctx: TrainContext) -> None:
        params = dict(ctx.model.named_parameters())
        unknown = sorted(set(self.masks) - set(params))
        if unknown:
            raise ConfigError(f"masks name unknown parameters: {', '.join(unknown[:3])}")
        self._pairs = []
        for name, mask in self.masks.items():
            if mask.shape != params[name].shape:
                raise ConfigError(
                    f"mask for {name} has shape {list(mask.shape)}, parameter has {list(params[name].shape)}"
                )
            self._pairs.append((params[name], ~mask.to(device=params[name].device, dtype=torch.bool)))
        self._zero_params()

    def _zero_params(self) -> None:
        with torch.no_grad():
            for param, pruned in self._pairs:
                param.masked_fill_(pruned, 0.0)

    def before_step(self, ctx: TrainContext) -> None:
        for param, pruned in self._pairs:
            if param.grad is not None:
                param.grad.masked_fill_(pruned, 0.0)

    def after_step(self, ctx: TrainContext) -> None:
        self._zero_params()


class BNL1Callback(Callback):
    """Network slimming: add `lam * sign(gamma)` to every BatchNorm2d scale gradient
    (BatchNorm1d too with `include_bn1d`, as for ImageNet VGG-11)."""

    def __init__(self, lam: float, include_bn1d: bool = False) -> None:
        if lam < 0:
            raise ConfigError(f"BN L1 penalty must be >= 0, got {lam}")
        self.lam = lam
        self.kinds: tuple[type[nn.BatchNorm1d | nn.BatchNorm2d], ...] = (nn.BatchNorm2d,)
        if include_bn1d:
            self.kinds += (nn.BatchNorm1d,)

    def before_step(self, ctx: TrainContext) -> None:
        for module in ctx.model.modules():
            if isinstance(module, self.kinds) and module.weight is not None and module.weight.grad is not None:
                module.weight.grad.add_(torch.sign(module.weight.detach()), alpha=self.lam)


class SaveInitCallback(Callback):
    """Save the initial weights θ₀ as the checkpoint folder `out_dir/init/` (lottery tickets)."""

    def on_train_start(self, ctx: TrainContext) -> None:
        if ctx.step == 0:  # not on resume: θ₀ was saved by the first session
            save_model(ctx.out_dir / "init", ctx.model, meta={"seed": ctx.seed})
