"""The Lottery Ticket comparison (Frankle & Carbin 2019) as the paper runs it (docs/methods.md §9).

Pipeline (the experiment layer drives it):

1. train the large model with `lottery_callbacks(rewind_epoch)`: θ₀ goes to
   ``out_dir/init/`` (the trainer's `SaveInitCallback`), and with a rewind epoch k
   the weights after k epochs go to ``out_dir/epoch_k/``;
2. prune it: `magnitude` for the unstructured comparison -- one-shot, Han-style iterative
   (retraining from the current weights), or Frankle & Carbin's iterative magnitude pruning
   (`iterative = "imp"`: each round prunes the previous round's *trained winning ticket* and
   resets the survivors to θ₀; the experiment runs one stage per round, `magnitude.imp_round`)
   -- or `structured_masks` (one-shot L1-norm in exact mask form) for the structured one;
3. winning ticket = `winning_ticket(ticket_dir(out_dir, k), masks)`; random init =
   `random_ticket(spec, masks, seed, reinit)`; both train with
   `lottery_recipe(base, lr)` at lr = 0.1 and 0.01 and the trainer's `masks=`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from torch import nn

from prunebench.errors import CheckpointError, ConfigError
from prunebench.measure.params import check_masks
from prunebench.models.spec import ModelSpec
from prunebench.prune.analysis import Masks
from prunebench.prune.registry import get_method
from prunebench.prune.scratch import scratch_model
from prunebench.prune.surgery import apply_channel_masks
from prunebench.train import Callback, Recipe, SaveInitCallback, TrainContext, load_model, save_model


class SaveEpochCallback(Callback):
    """Saves the weights after `epoch` completed epochs into ``out_dir/epoch_<epoch>/`` (for rewinding)."""

    def __init__(self, epoch: int) -> None:
        if epoch < 1:
            raise ConfigError(f"rewind epoch must be >= 1, got {epoch}")
        self.epoch = epoch

    def on_epoch_end(self, ctx: TrainContext) -> None:
        if ctx.epoch + 1 == self.epoch:
            save_model(ctx.out_dir / f"epoch_{self.epoch}", ctx.model)


def lottery_callbacks(rewind_epoch: int = 0) -> list[Callback]:
    """Callbacks for the large run: always θ₀, plus the rewind epoch's weights when k > 0."""
    return [SaveInitCallback()] + ([SaveEpochCallback(rewind_epoch)] if rewind_epoch else [])


def ticket_dir(large_out_dir: str | os.PathLike[str], rewind_epoch: int = 0) -> Path:
    """Where the large run saved the weights a ticket starts from (θ₀, or epoch k's)."""
    return Path(large_out_dir) / ("init" if rewind_epoch == 0 else f"epoch_{rewind_epoch}")


def winning_ticket(init_dir: str | os.PathLike[str], masks: Masks) -> nn.Module:
    """The saved weights (θ₀ or the rewind epoch's), with `masks` applied."""
    if not Path(init_dir).is_dir():
        raise CheckpointError(f"{init_dir}: no saved initial weights (train the large model with lottery_callbacks())")
    model, _, _ = load_model(Path(init_dir))
    check_masks(model, masks)
    apply_channel_masks(model, masks)
    return model


def random_ticket(spec: ModelSpec | nn.Module, masks: Masks, seed: int, reinit: str = "sparse") -> nn.Module:
    """The control: a fresh sparsity-aware (or dense fan-out) init under the same mask."""
    model, _ = scratch_model(spec, seed=seed, masks=masks, reinit=reinit)
    return model


def lottery_recipe(base: Recipe, lr: float) -> Recipe:
    """`base` at initial LR `lr` (0.1 or 0.01 in the paper), ÷10 at 50% and 75% of its epochs."""
    milestones = tuple(sorted({m for m in (int(0.5 * base.epochs), int(0.75 * base.epochs)) if m > 0}))
    return base.replace(lr=lr, milestones=milestones, gamma=0.1, lr_multipliers=None)


def structured_masks(model: nn.Module, splits: Any, options: dict[str, Any], *, seed: int = 0) -> Masks:
    """One-shot L1-norm filter pruning of the trained `model` (`options` as for `l1norm`), in exact mask form
    (filter, bias, BN γ and β: docs/methods.md §1.3), ready for `winning_ticket`."""
    method = get_method("l1norm")
    result = method.prune(model, splits, method.parse_options({**options, "mask_form": True}), seed=seed)
    return result.masks or {}
