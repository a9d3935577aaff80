"""Unstructured magnitude pruning (Han et al. 2015), as the reference runs it (docs/methods.md, magnitude).

One global threshold over the |w| of all Conv2d weights (optionally Linear too, or
one threshold per layer): ``thr = sorted(|w|)[int(n * ratio)]`` and a weight is
kept iff ``|w| > thr``.  The comparison is strict, as in the reference, so ties at
the threshold -- and the weight sitting at the threshold index -- are removed too.

Iterative pruning prunes ``ratio`` of the *surviving* weights each round (the
reference's index #zeros + int(#non-zeros * ratio)), in one of two ways:

- ``iterative = "han"`` (Han et al.): retrain from the *current* weights between rounds
  (``round_epochs`` of ``round_recipe``) through the one trainer with the mask held fixed,
  all inside one `prune()` call;
- ``iterative = "imp"`` (Frankle & Carbin's iterative magnitude pruning): after each round
  the survivors are reset to θ₀ and the ticket trains again with the ticket recipe.  Each
  round is a pair of stages of the experiment (`experiment/graph.py`: a prune stage, then
  the tickets), so every round is resumable; `imp_round` is one such prune step.

The threshold is always taken over the weights the stored mask keeps, never re-derived from zeros.
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
from prunebench.prune.base import PruneMethod, PruneResult, same_value
from prunebench.prune.registry import register
from prunebench.prune.surgery import apply_channel_masks
from prunebench.train import Recipe, train

ITERATIVE = ("han", "imp")
#: the options that decide the rounds; a single round is the one-shot pruning of the other options
ROUND_OPTIONS = ("iterative_rounds", "iterative", "round_epochs", "round_recipe")


@dataclass(frozen=True)
class MagnitudeOptions:
    """ratio: fraction of the (remaining) weights removed per round, in (0, 1) (old name: percent).
    include_linear: prune Linear weights too (the reference prunes convs only).
    scope: "global" (one threshold over all pruned tensors) or "layer" (one per tensor).
    iterative_rounds: pruning rounds; 1 = one-shot.  After k rounds 1 - (1 - ratio)^k is removed.
    iterative: how rounds follow each other: "han" retrains from the current weights
        (needs round_epochs > 0: k rounds without retraining are one-shot pruning); "imp" resets
        the survivors to θ₀ and retrains the ticket (Frankle & Carbin; experiments with ticket arms).
    round_epochs: "han" only: epochs of retraining between rounds.
    round_recipe: "han" only: other `Recipe` fields of that retraining (e.g. the experiment's
        fine-tune recipe); default: constant LR 0.001 at the experiment's precision.
    """

    ratio: float = 0.5
    include_linear: bool = False
    scope: str = "global"
    iterative_rounds: int = 1
    iterative: str = "han"
    round_epochs: int = 0
    round_recipe: dict[str, Any] = field(default_factory=dict)

    def retrain_recipe(self, precision: str = "auto") -> Recipe:
        return Recipe.from_dict({"lr": 0.001, "precision": precision, **self.round_recipe, "epochs": self.round_epochs})

    def validate(self) -> None:
        if not 0.0 < self.ratio < 1.0:
            raise ConfigError(f"magnitude: ratio must be in (0, 1), got {self.ratio}")
        if self.scope not in ("global", "layer"):
            raise ConfigError(f"magnitude: scope must be 'global' or 'layer', got {self.scope!r}")
        if self.iterative_rounds < 1:
            raise ConfigError(f"magnitude: iterative_rounds must be >= 1, got {self.iterative_rounds}")
        if self.iterative not in ITERATIVE:
            raise ConfigError(f"magnitude: iterative must be one of {', '.join(ITERATIVE)}, got {self.iterative!r}")
        if self.round_epochs < 0:
            raise ConfigError(f"magnitude: round_epochs must be >= 0, got {self.round_epochs}")
        if "epochs" in self.round_recipe:
            raise ConfigError("magnitude: give the retraining length as round_epochs, not round_recipe.epochs")
        if self.iterative == "imp":
            if self.iterative_rounds < 2:
                raise ConfigError("magnitude: iterative = 'imp' needs iterative_rounds >= 2 (one round is one-shot)")
            if self.round_epochs or self.round_recipe:
                raise ConfigError("magnitude: round_epochs/round_recipe are Han-style retraining; "
                                  "'imp' rounds train the tickets with the ticket recipe")  # fmt: skip
            return
        if self.iterative_rounds > 1 and not self.round_epochs:
            raise ConfigError(
                f"magnitude: {self.iterative_rounds} rounds without retraining are one-shot pruning at ratio "
                f"1 - (1 - {self.ratio})^{self.iterative_rounds}; set round_epochs > 0 (or iterative = 'imp')"
            )
        if self.iterative_rounds == 1 and (self.round_epochs or self.round_recipe):
            raise ConfigError("magnitude: round_epochs/round_recipe act between rounds; set iterative_rounds > 1")
        if self.round_epochs:
            self.retrain_recipe()  # a bad round_recipe fails here, not after the first round


def _threshold(values: torch.Tensor, ratio: float) -> float:
    """The reference's threshold: the value at sorted index int(n * ratio)."""
    if values.numel() == 0:
        return float("inf")
    k = int(values.numel() * ratio)
    return float(torch.kthvalue(values.float().cpu(), k + 1).values)


def prune_round(weights: dict[str, torch.Tensor], masks: Masks, ratio: float, scope: str) -> Masks:
    """One round: drop `ratio` of the weights each mask still keeps (globally or per tensor)."""
    magnitude = {n: w.detach().abs() for n, w in weights.items()}
    alive = {n: masks[n].to(magnitude[n].device) for n in weights}  # training may have moved the model
    if scope == "global":
        thr = _threshold(torch.cat([magnitude[n][alive[n]] for n in weights]), ratio)
        return {n: alive[n] & (magnitude[n] > thr) for n in weights}
    return {n: alive[n] & (magnitude[n] > _threshold(magnitude[n][alive[n]], ratio)) for n in weights}


def pruned_weights(model: nn.Module, opts: MagnitudeOptions) -> dict[str, torch.Tensor]:
    return {f"{n}.weight": m.weight for n, m in weight_layers(model, include_linear=opts.include_linear)}


def imp_round(model: nn.Module, masks: Masks, opts: MagnitudeOptions) -> PruneResult:
    """One round of Frankle & Carbin's IMP: prune `ratio` of what `masks` keep, by the magnitudes of
    `model` (the previous round's trained ticket); the reset to θ₀ is the winning ticket's init."""
    weights = pruned_weights(model, opts)
    missing = sorted(set(weights) - set(masks))
    if missing:
        raise ConfigError(f"magnitude: the previous round's masks lack {', '.join(missing)}")
    new = prune_round(weights, {n: masks[n] for n in weights}, opts.ratio, opts.scope)
    apply_channel_masks(model, new)
    return PruneResult(model=model, masks=new, info=mask_info(model, new))


@register
class Magnitude(PruneMethod):
    name = "magnitude"
    description = "unstructured weight pruning by |w|, one global threshold over conv weights (Han et al. 2015)"
    Options = MagnitudeOptions
    style = "mask"
    aliases = {"percent": ("ratio", same_value)}

    def prune(self, model: nn.Module, splits: Any, opts: MagnitudeOptions, *, seed: int = 0) -> PruneResult:
        """Zero `model`'s smallest weights in place; `splits` is used only by Han-style retraining."""
        if opts.iterative == "imp":
            raise ConfigError(
                "magnitude: iterative = 'imp' resets to θ₀ and retrains the ticket every round, so it runs as an "
                "experiment's stages (a preset with winning_ticket/random_ticket arms), not in one prune call"
            )
        if opts.iterative_rounds > 1 and splits is None:
            raise ConfigError("magnitude: retraining between iterative rounds needs the data splits")
        weights = pruned_weights(model, opts)
        masks: Masks = {n: torch.ones_like(w, dtype=torch.bool) for n, w in weights.items()}
        with tempfile.TemporaryDirectory(prefix="prunebench-magnitude-") as tmp:
            work = self.work_dir or Path(tmp)
            for r in range(opts.iterative_rounds):
                if r > 0:
                    train(model, splits, opts.retrain_recipe(self.inner_precision), work / f"round{r}",
                          seed=seed + r, masks=masks, eval_test=False)  # fmt: skip
                masks = prune_round(weights, masks, opts.ratio, opts.scope)
                apply_channel_masks(model, masks)
        return PruneResult(model=model, masks=masks, info=mask_info(model, masks))


def mask_info(model: nn.Module, masks: Masks) -> dict[str, Any]:
    """What every unstructured run reports, plus the per-stage sparsity patterns of the search arms.

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
