"""Soft Filter Pruning (He et al., IJCAI 2018): zero the lowest-L2 filters every epoch, let them regrow.

Training: `SoftFilterCallback` zeroes `int(C * ratio)` filters (SFP floors the
*pruned* count) of each selected conv before training, after every epoch and at
the end; only filter weights are zeroed, as in the paper.  `ratio` is the
fraction removed (the reference's ``--rate 0.7`` keeps 0.7: ``keep_rate = 0.7``
is the accepted old name, converted to ``ratio = 0.3``).

Hard pruning: a zeroed filter that produces a prunable group (a block's first conv)
is removed physically together with its BN channel and the next conv's input
slice.  What the code does with the constant that channel still emitted in the
soft-zeroed model (relu(BN(0)) = relu(β − γμ/σ), a per-channel constant): it is
**dropped, not folded**.  γ and β of the removed channels are zeroed first, so the
deployed model computes exactly what the exact channel-masked model computes.  The
constant cannot be folded into the next layer exactly: the next conv pads its input
with zeros, so a constant input channel adds a *position-dependent* map (different on
the border ring), which no bias or BN shift reproduces.  The deployed model therefore
differs from the soft-zeroed one by exactly that contribution; ``info["dropped_constant"]``
records, per removed group, the largest constant dropped (0 = the two models agree), and
the test checks both statements.
Zeroed filters whose output joins a residual sum (stem, a block's second conv) cannot
leave the network and stay as masks, which sparse FLOPs count.

A user model (builder spec) is soft-pruned per DepGraph coupled group instead (`depgraph.zero_lowest_groups`:
the group's summed filter L2 norms, every producing filter of a dropped channel zeroed, so a residual
sum's width is pruned as one), and hard-pruned through DepGraph with a replayable record; no masks remain.

Scratch-B budgets: the reference counts the FLOPs of the *soft-zeroed full model*
(only the zeroed filters' own weights sparse; the next layer's input slices stay
dense) -- the budget policy's ``flops_rule = "soft_zeroed"``, computed from
``info["zeroed_counts"]``; ``"pruned"`` counts this module's hard-pruned model.
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import torch
from torch import nn

from prunebench.errors import ConfigError
from prunebench.models.builder import BuilderSpec
from prunebench.models.spec import ModelSpec, attached_spec
from prunebench.prune.base import PruneMethod, PruneResult, removed_from_kept
from prunebench.prune.depgraph import is_user_model, prune_kept, zero_lowest_groups
from prunebench.prune.importance import bottom_k, exact_fraction, filter_l2, floor_count
from prunebench.prune.recalibrate import recalibrate_bn
from prunebench.prune.registry import register
from prunebench.prune.surgery import apply_channel_masks, channel_masks, prune_channels
from prunebench.train import Callback, Recipe, TrainContext

#: the SFP CIFAR recipe (docs/protocol.md), for the 200-epoch run: warm-up epoch, then x10, then x0.2 three times.
SFP_MILESTONES = (1, 60, 120, 160)
SFP_MULTIPLIERS = (10.0, 0.2, 0.2, 0.2)
SFP_BASE_EPOCHS = 200


def sfp_recipe(epochs: int = SFP_BASE_EPOCHS, *, pretrained: bool = False) -> Recipe:
    """The SFP CIFAR recipe, milestones stretched to `epochs` (the warm-up stays one epoch)."""
    scale = Fraction(epochs, SFP_BASE_EPOCHS)
    milestones = (1, *(max(1, int(m * scale)) for m in SFP_MILESTONES[1:]))
    return Recipe(
        epochs=epochs,
        lr=0.001 if pretrained else 0.01,
        batch_size=128,
        momentum=0.9,
        nesterov=True,
        weight_decay=5e-4,
        milestones=milestones,
        lr_multipliers=SFP_MULTIPLIERS,
    )


def selected_convs(model: nn.Module, layers: str | tuple[str, ...]) -> list[str]:
    """Conv module names SFP acts on: every Conv2d for "all", else the named ones (checked)."""
    convs = [n for n, m in model.named_modules() if isinstance(m, nn.Conv2d)]
    if layers == "all":
        return convs
    names = [layers] if isinstance(layers, str) else list(layers)
    unknown = [n for n in names if n not in convs]
    if unknown:
        raise ConfigError(f"method 'sfp': not conv layers of this model: {', '.join(unknown)}")
    return names


def zeroed_filters(weight: torch.Tensor, keep_rate: float) -> list[int]:
    """The `int(C * (1 - keep_rate))` lowest-L2 filters (ties: the higher index goes).

    (The callback and these helpers keep the keep fraction: it is what a large-training
    fingerprint records, so identities of SFP-trained models stay as they were.)"""
    count = floor_count(weight.shape[0], 1 - exact_fraction(keep_rate))
    return bottom_k(filter_l2(weight), count)


@torch.no_grad()
def zero_lowest_filters(model: nn.Module, layers: list[str], keep_rate: float) -> dict[str, list[int]]:
    """Zero the lowest-L2 filters of each layer in place; returns what was zeroed."""
    zeroed = {}
    for name in layers:
        weight = model.get_parameter(f"{name}.weight")
        zeroed[name] = zeroed_filters(weight, keep_rate)
        weight[zeroed[name]] = 0
    return zeroed


class SoftFilterCallback(Callback):
    """Soft pruning during training: zero at the start, after each epoch (before evaluation) and at the end.

    Stateless (the zeroed set is recomputed from the weights), so a resumed run behaves the same.
    """

    def __init__(self, keep_rate: float, layers: str | tuple[str, ...] = "all") -> None:
        self.keep_rate = keep_rate
        self.layers = layers

    def _apply(self, ctx: TrainContext) -> None:
        if is_user_model(ctx.model):  # coupled groups: a residual sum's filters go together
            zero_lowest_groups(ctx.model, removed_from_kept(self.keep_rate))
        else:
            zero_lowest_filters(ctx.model, selected_convs(ctx.model, self.layers), self.keep_rate)

    def on_train_start(self, ctx: TrainContext) -> None:
        self._apply(ctx)

    def on_epoch_end(self, ctx: TrainContext) -> None:
        self._apply(ctx)

    def on_train_end(self, ctx: TrainContext) -> None:
        self._apply(ctx)


@dataclass(frozen=True)
class SFPOptions:
    """ratio: fraction of filters zeroed (then removed) per layer, int(C·ratio) (old name: keep_rate,
      the reference's --rate 0.7, converted to ratio = 1 - keep_rate = 0.3).
    layers: "all" (every conv: stem and both convs of each block) or a list of conv names.
    pretrained: start SFP from a plainly trained large model (then the recipe's LR is 10x smaller).
    recalibrate_bn: re-estimate BN statistics of the deployed model on training batches. Off by
      default, as the paper evaluates the zeroed model as is; on short schedules the zeroed filters
      regrow within each epoch, so the final zeroing leaves BN statistics stale (near-chance accuracy).
    """

    ratio: float = 0.3
    layers: str | tuple[str, ...] = "all"
    pretrained: bool = False
    recalibrate_bn: bool = False

    @property
    def keep_rate(self) -> float:
        return removed_from_kept(self.ratio)  # 1 - x is its own inverse, computed exactly

    def validate(self) -> None:
        if not 0 <= exact_fraction(self.ratio) < 1:
            raise ConfigError(f"method 'sfp': ratio must be in [0, 1), got {self.ratio}")
        if isinstance(self.layers, list):  # from JSON
            object.__setattr__(self, "layers", tuple(self.layers))


@register
class SoftFilterPruning(PruneMethod):
    name = "sfp"
    description = "Soft Filter Pruning (He et al. 2018): per-epoch lowest-L2 filter zeroing, then hard pruning"
    Options = SFPOptions
    large_training_kind = "soft"
    style = "physical"
    aliases = {"keep_rate": ("ratio", removed_from_kept)}

    def planned_flops_fixed(self, opts: SFPOptions) -> bool:
        return True  # int(C·ratio) per layer: the architecture never depends on the weights

    def planned_prune(self, model: nn.Module, opts: SFPOptions) -> PruneResult:
        return self.prune(model, None, dataclasses.replace(opts, recalibrate_bn=False))  # no data to plan with

    def large_training(self, opts: SFPOptions, spec: ModelSpec) -> list[Callback]:
        if isinstance(spec, BuilderSpec):
            _check_user_options(opts)
        return [SoftFilterCallback(opts.keep_rate, opts.layers)]

    def recipe(self, opts: SFPOptions, epochs: int = SFP_BASE_EPOCHS) -> Recipe:
        """The recipe of the soft-pruning run itself."""
        return sfp_recipe(epochs, pretrained=opts.pretrained)

    def finetune(self, opts: SFPOptions, base: Recipe) -> None:
        return None  # the SFP-trained model is itself the pruned arm

    def prune(self, model: nn.Module, splits: Any, opts: SFPOptions, *, seed: int = 0) -> PruneResult:
        if is_user_model(model):
            return _prune_user_model(model, splits, opts, seed)
        masked = copy.deepcopy(model)
        layers = selected_convs(masked, opts.layers)
        # Idempotent on an SFP-trained model; makes a plainly trained one soft-pruned first.
        zeroed = zero_lowest_filters(masked, layers, opts.keep_rate)
        removable = {g.producer: g for g in attached_spec(masked).groups() if g.kind == "out" and g.producer in zeroed}
        kept = {g.name: sorted(set(range(g.size)) - set(zeroed[producer])) for producer, g in removable.items()}
        dropped = {g.name: _dropped_constant(masked, g.bn, zeroed[producer]) for producer, g in removable.items()}
        apply_channel_masks(masked, channel_masks(masked, kept))  # exact: filter, bias, BN γ and β
        pruned = prune_channels(masked, kept)
        masks = {}
        for name in layers:
            if name in removable or not zeroed[name]:
                continue
            weight = pruned.get_parameter(f"{name}.weight")
            mask = torch.ones_like(weight, dtype=torch.bool)
            mask[zeroed[name]] = False
            masks[f"{name}.weight"] = mask
        info = {
            "ratio": opts.ratio,
            "keep_rate": opts.keep_rate,
            "pretrained": opts.pretrained,
            "zeroed_counts": {n: len(z) for n, z in zeroed.items()},
            "removed_counts": {g.name: g.size - len(kept[g.name]) for g in removable.values()},
            "masked_layers": sorted(k.removesuffix(".weight") for k in masks),
            "kept_counts": {n: len(k) for n, k in kept.items()},
            "dropped_constant": dropped,
            "bn_recalibrated": False,
        }
        if opts.recalibrate_bn:
            if splits is None:
                raise ConfigError("method 'sfp': recalibrate_bn needs the training data (pass a data set)")
            recalibrate_bn(pruned, splits, seed=seed)
            info["bn_recalibrated"] = True
        return PruneResult(model=pruned, masks=masks or None, kept=kept, info=info)


def _check_user_options(opts: SFPOptions) -> None:
    if opts.layers != "all":
        raise ConfigError("method 'sfp': a user model takes layers = 'all' only (every coupled group of its DepGraph)")


def _prune_user_model(model: nn.Module, splits: Any, opts: SFPOptions, seed: int) -> PruneResult:
    """A user model: the soft step per DepGraph coupled group (summed L2 of its producing filters),
    then the hard prune of exactly those channels through DepGraph (`prune_kept`), every
    group removable, residual sums included, so no masks remain.  The constant relu(BN(0)) a zeroed
    channel emitted is dropped with it, as on the zoo path (not measured here)."""
    _check_user_options(opts)
    masked = copy.deepcopy(model)
    zeroed = zero_lowest_groups(masked, opts.ratio)  # idempotent on an SFP-trained model
    sizes = {root: masked.get_parameter(f"{layers[0]}.weight").shape[0] for root, (layers, _) in zeroed.items()}
    res = prune_kept(masked, {root: sorted(set(range(sizes[root])) - set(drop)) for root, (_, drop) in zeroed.items()})
    info = {
        "ratio": opts.ratio,
        "keep_rate": opts.keep_rate,
        "pretrained": opts.pretrained,
        "zeroed_counts": {n: len(drop) for layers, drop in zeroed.values() for n in layers},
        "removed_counts": {n: res.sizes[n] - len(k) for n, k in res.kept.items()},
        "masked_layers": [],
        "kept_counts": {n: len(k) for n, k in res.kept.items()},
        "bn_recalibrated": False,
        "graph": "depgraph",
    }
    if opts.recalibrate_bn:
        if splits is None:
            raise ConfigError("method 'sfp': recalibrate_bn needs the training data (pass a data set)")
        recalibrate_bn(res.model, splits, seed=seed)
        info["bn_recalibrated"] = True
    return PruneResult(model=res.model, kept=res.kept, info=info)


@torch.no_grad()
def _dropped_constant(model: nn.Module, bn_name: str | None, channels: list[int]) -> float:
    """The largest relu(BN(0)) (eval mode) the removed `channels` emitted in the soft-zeroed model."""
    if bn_name is None or not channels:
        return 0.0
    bn = model.get_submodule(bn_name)
    assert isinstance(bn, nn.BatchNorm2d) and bn.running_mean is not None and bn.running_var is not None
    idx = torch.tensor(channels)
    scale = bn.weight[idx] / torch.sqrt(bn.running_var[idx] + bn.eps)
    return float(torch.relu(bn.bias[idx] - scale * bn.running_mean[idx]).max())
