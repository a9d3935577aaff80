"""Unstructured magnitude pruning (Han et al. 2015), as the reference runs it (methods.md §7).

One global threshold over the |w| of all Conv2d weights (optionally Linear too, or
one threshold per layer): ``thr = sorted(|w|)[int(n * percent)]`` and a weight is
kept iff ``|w| > thr``.  The comparison is strict, as in the reference, so ties at
the threshold -- and the weight sitting at the threshold index -- are removed too.

Iterative pruning prunes ``percent`` of the *surviving* weights each round (the
reference's index #zeros + int(#non-zeros * percent)), retraining between rounds
through the one trainer with the mask held fixed.  The threshold is always taken
over the weights the stored mask keeps, never re-derived from zeros.

The result is the full-size model with pruned weights set to zero plus explicit
bool masks; fine-tuning and the scratch arms keep them through the trainer's masks.
"""

from __future__ import annotations

import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from prunebench.errors import ConfigError
from prunebench.measure import count_flops, count_params
from prunebench.prune.analysis import Masks, analyse, weight_layers
from prunebench.prune.base import PruneMethod, PruneResult
from prunebench.prune.registry import register
from prunebench.prune.surgery import apply_channel_masks
from prunebench.train import Recipe, train


@dataclass(frozen=True)
class MagnitudeOptions:
    """percent: fraction of the (remaining) weights removed per round, in (0, 1).
    include_linear: prune Linear weights too (the reference prunes convs only).
    scope: "global" (one threshold over all pruned tensors) or "layer" (one per tensor).
    iterative_rounds: prune/retrain rounds; 1 = one-shot.
    round_epochs: epochs of retraining between rounds (0 = none).
    round_recipe: other `Recipe` fields of that retraining (e.g. the experiment's fine-tune
        recipe); default: the CIFAR fine-tune recipe, constant LR 0.001.
    work_dir: folder for the between-round training runs ("" = a temporary folder).
    """

    percent: float = 0.5
    include_linear: bool = False
    scope: str = "global"
    iterative_rounds: int = 1
    round_epochs: int = 0
    round_recipe: dict[str, Any] = field(default_factory=dict)
    work_dir: str = ""

    def retrain_recipe(self) -> Recipe:
        return Recipe.from_dict({"lr": 0.001, **self.round_recipe, "epochs": self.round_epochs})

    def validate(self) -> None:
        if not 0.0 < self.percent < 1.0:
            raise ConfigError(f"magnitude: percent must be in (0, 1), got {self.percent}")
        if self.scope not in ("global", "layer"):
            raise ConfigError(f"magnitude: scope must be 'global' or 'layer', got {self.scope!r}")
        if self.iterative_rounds < 1:
            raise ConfigError(f"magnitude: iterative_rounds must be >= 1, got {self.iterative_rounds}")
        if self.round_epochs < 0:
            raise ConfigError(f"magnitude: round_epochs must be >= 0, got {self.round_epochs}")
        if "epochs" in self.round_recipe:
            raise ConfigError("magnitude: give the retraining length as round_epochs, not round_recipe.epochs")
        if self.round_epochs:
            self.retrain_recipe()  # a bad round_recipe fails here, not after the first round


def _threshold(values: torch.Tensor, percent: float) -> float:
    """The reference's threshold: the value at sorted index int(n * percent)."""
    if values.numel() == 0:
        return float("inf")
    k = int(values.numel() * percent)
    return float(torch.kthvalue(values.float().cpu(), k + 1).values)


def prune_round(weights: dict[str, torch.Tensor], masks: Masks, percent: float, scope: str) -> Masks:
    """One round: drop `percent` of the weights each mask still keeps (globally or per tensor)."""
    magnitude = {n: w.detach().abs() for n, w in weights.items()}
    alive = {n: masks[n].to(magnitude[n].device) for n in weights}  # training may have moved the model
    if scope == "global":
        thr = _threshold(torch.cat([magnitude[n][alive[n]] for n in weights]), percent)
        return {n: alive[n] & (magnitude[n] > thr) for n in weights}
    return {n: alive[n] & (magnitude[n] > _threshold(magnitude[n][alive[n]], percent)) for n in weights}


@register
class Magnitude(PruneMethod):
    name = "magnitude"
    description = "unstructured weight pruning by |w|, one global threshold over conv weights (Han et al. 2015)"
    Options = MagnitudeOptions
    style = "mask"

    def prune(self, model: nn.Module, splits: Any, opts: MagnitudeOptions, *, seed: int = 0) -> PruneResult:
        """Zero `model`'s smallest weights in place; `splits` is used only by iterative retraining."""
        if opts.iterative_rounds > 1 and opts.round_epochs > 0 and splits is None:
            raise ConfigError("magnitude: retraining between iterative rounds needs the data splits")
        weights = {f"{n}.weight": m.weight for n, m in weight_layers(model, include_linear=opts.include_linear)}
        masks: Masks = {n: torch.ones_like(w, dtype=torch.bool) for n, w in weights.items()}
        with tempfile.TemporaryDirectory(prefix="prunebench-magnitude-") as tmp:
            work = Path(opts.work_dir or tmp)
            for r in range(opts.iterative_rounds):
                if r > 0 and opts.round_epochs > 0:
                    train(model, splits, opts.retrain_recipe(), work / f"round{r}", seed=seed + r, masks=masks,
                          eval_test=False)
                masks = prune_round(weights, masks, opts.percent, opts.scope)
                apply_channel_masks(model, masks)
        return PruneResult(model=model, masks=masks, info=mask_info(model, masks))


def mask_info(model: nn.Module, masks: Masks) -> dict[str, Any]:
    """What methods.md §7.4 asks every unstructured run to report, plus the §10 sparsity patterns.

    layers: every conv/linear layer's density and stage; density: over the pruned tensors;
    compression_ratio: all parameters / non-zero parameters; kernel_maps: per-stage 3x3 keep maps.
    """
    patterns = analyse(model, masks)
    emptied = [r["layer"] for r in patterns["layers"] if r["kept"] == 0]
    if emptied:
        warnings.warn(f"magnitude pruning emptied {len(emptied)} layer(s): {', '.join(emptied)}", stacklevel=3)
    params = count_params(model, masks=masks)
    return {
        "layers": patterns["layers"],
        "density": patterns["masked_density"],
        "compression_ratio": params.total / max(params.nonzero, 1),
        "emptied_layers": emptied,
        "flops_dense": count_flops(model).flops,
        "flops_sparse": count_flops(model, masks=masks).flops,
        "kernel_maps": patterns["kernel_maps"],
    }
