"""ThiNet (Luo, Wu & Lin, ICCV 2017): prune a layer's filters by the next layer's reconstruction.

Layer by layer, input to output, on the current partly pruned network:

1. sample the consumer's input windows at random output positions and turn each
   sample into per-channel contributions x̂_c (one random output filter d per sample);
2. greedily move into the removed set T the channel that keeps Σ_i (Σ_{j∈T} x̂_ij)²
   smallest (incremental: with the Gram matrix G = X̂ᵀX̂ every step costs O(C));
3. rescale the kept input channels of the consumer by least squares (float64,
   optional ridge) so Σ_{c∈S} w_c x̂_c reproduces ŷ = Σ_c x̂_c;
4. remove the producer's filters (and BN channels) with the generic surgery,
   multiply the consumer's kernel slices by w, optionally fine-tune briefly.

VGG: every conv whose consumer is a conv (the last conv, whose consumer is the
classifier, only when `prune_last` or a named target asks).  Bottleneck ResNets:
conv1 and conv2 of every block (consumers conv2 and conv3), as the groups say.
"""

from __future__ import annotations

import copy
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from prunebench.errors import ConfigError, SpecError
from prunebench.models import attached_spec
from prunebench.prune.activations import (
    SamplingCache,
    Timer,
    as_channels,
    balanced_images,
    check_sampling_target,
    consumer_weight,
    contributions,
    plan_layers,
    sample_layer,
    solve_normal,
)
from prunebench.prune.base import PruneMethod, PruneResult, removed_from_kept
from prunebench.prune.registry import register
from prunebench.prune.surgery import prune_channels

TARGETS = ("thinet-conv", "thinet-gap", "thinet-tiny", "thinet-30", "thinet-50", "thinet-70")


@dataclass(frozen=True)
class ThiNetOptions:
    """ratio: fraction of channels removed per layer (keeps floor(C·(1 − ratio)), at least 1; old name:
    keep_ratio, the fraction kept, converted); variant: a named target hit exactly.

    images / locations: class-balanced sampling images and output positions per image.
    ridge: Tikhonov term of the rescaling, relative to the mean diagonal of X̂ᵀX̂ (0 = plain least squares).
    prune_last: with a ratio, also prune the last conv (its consumer is the classifier).
    finetune_between / finetune_lr: epochs and constant LR of a brief fine-tune after each layer.
    batch_size: images per forward pass while sampling, and the between-layer fine-tune's batch size.
    """

    ratio: float | None = None
    variant: str | None = None
    images: int = 100
    locations: int = 10
    ridge: float = 0.0
    prune_last: bool = False
    finetune_between: int = 0
    finetune_lr: float = 0.001
    batch_size: int = 128

    def validate(self) -> None:
        check_sampling_target("thinet", self, TARGETS)
        if self.finetune_between < 0:
            raise ConfigError("thinet: finetune_between must be >= 0")


def greedy_remove(xhat: torch.Tensor, count: int) -> list[int]:
    """Channels to remove, in greedy order: each step adds the j minimising ‖s + X̂_j‖².

    ‖s + X̂_j‖² = ‖s‖² + 2 sᵀX̂_j + ‖X̂_j‖²; with G = X̂ᵀX̂ the vector sᵀX̂ is updated by
    one row of G per step, so all candidates are scored at once in O(C).
    """
    xhat = xhat.double()
    gram = xhat.T @ xhat
    diag = gram.diagonal().clone()
    cross = torch.zeros_like(diag)  # sᵀX̂_j for every j
    norm = torch.zeros((), dtype=torch.float64)  # ‖s‖²
    free = torch.ones_like(diag, dtype=torch.bool)
    removed: list[int] = []
    for _ in range(count):
        cost = torch.where(free, norm + 2 * cross + diag, torch.inf)
        j = int(torch.argmin(cost))
        norm = cost[j]
        cross += gram[j]
        free[j] = False
        removed.append(j)
    return removed


def rescale(xhat: torch.Tensor, kept: list[int], ridge: float = 0.0) -> torch.Tensor:
    """Least-squares scales w (float64) with Σ_{c∈kept} w_c x̂_c ≈ ŷ = Σ_c x̂_c."""
    xhat = xhat.double()
    a = xhat[:, kept]
    target = xhat.sum(1)
    return solve_normal(a.T @ a, (a.T @ target)[:, None], ridge)[:, 0]


def relative_error(xhat: torch.Tensor, kept: list[int], scale: torch.Tensor) -> float:
    """‖ŷ − Σ_{c∈kept} w_c x̂_c‖² / ‖ŷ‖² on the samples."""
    xhat = xhat.double()
    target = xhat.sum(1)
    return float(((target - xhat[:, kept] @ scale) ** 2).sum() / (target**2).sum().clamp_min(1e-300))


def scale_inputs(layer: nn.Module, scale: torch.Tensor) -> None:
    """Multiply the consumer's weight slice of input channel c by scale[c] (all output filters)."""
    w = consumer_weight(layer, len(scale))
    with torch.no_grad():
        w.mul_(scale.to(device=w.device, dtype=w.dtype)[None, :, None])


def finetune_briefly(
    model: nn.Module, splits: Any, epochs: int, lr: float, batch_size: int, seed: int, precision: str = "auto"
) -> None:
    """A short constant-LR fine-tune between layers, through the one trainer."""
    from prunebench.train import Recipe, train

    with tempfile.TemporaryDirectory() as d:
        recipe = Recipe(epochs=epochs, lr=lr, batch_size=batch_size, precision=precision)  # the experiment's
        train(model, splits, recipe, Path(d), seed=seed, progress=False, eval_test=False)


def adopt_target(model: nn.Module, target: Any) -> tuple[nn.Module, list[str]]:
    """Build the named target and copy every tensor whose name and shape match (the conv stack).

    Returns the new model and the state keys left at their fresh initialisation (a
    changed head such as ThiNet-GAP/Tiny's global-pool classifier).
    """
    if attached_spec(model) == target:
        return model, []
    new = target.build()
    old = model.state_dict()
    state = new.state_dict()
    fresh = []
    for key, value in state.items():
        if key in old and old[key].shape == value.shape:
            state[key] = old[key]
        else:
            if value.dim() == 4:
                label = target.name or target.family
                raise SpecError(f"target {label}: conv tensor {key} does not match the pruned model")
            fresh.append(key)
    new.load_state_dict(state)
    return new, fresh


def is_last_conv(modules: dict[str, nn.Module], group: Any) -> bool:
    return any(isinstance(modules[c], nn.Linear) for c in group.consumers)


@register
class ThiNet(PruneMethod):
    name = "thinet"
    description = "ThiNet: greedy channel selection by next-layer reconstruction, least-squares rescaling"
    Options = ThiNetOptions
    aliases = {"keep_ratio": ("ratio", removed_from_kept)}
    # start each layer's sampling from cached activations (same samples, about 4x faster on VGG-16);
    # off only to measure or test it against the plain passes from the images
    resume_sampling: bool = True

    def variants(self) -> list[str]:
        return list(TARGETS)

    def prune(self, model: nn.Module, splits: Any, opts: ThiNetOptions, *, seed: int = 0) -> PruneResult:
        model = copy.deepcopy(model)
        modules = dict(model.named_modules())
        plan = plan_layers(
            attached_spec(model),
            ratio=None if opts.ratio is None else removed_from_kept(opts.ratio),  # plan_layers takes the kept share
            target_name=opts.variant,
            eligible=lambda g: g.kind == "out" and len(g.consumers) == 1,
            allowed=TARGETS,
            default_skip=None if opts.prune_last else (lambda g: is_last_conv(modules, g)),
        )
        timer = Timer()
        with timer.phase("all", "images"):
            images = balanced_images(splits, opts.images, seed)
        layers: dict[str, dict[str, Any]] = {}
        sampling: dict[str, int] = {}
        kept_all: dict[str, list[int]] = {}
        # Each layer's pass starts from the input of the module holding the previous layer's
        # producer (unchanged since); a fine-tune between layers changes everything, so no cache.
        cache = None if opts.finetune_between or not self.resume_sampling else SamplingCache()
        for index, name in enumerate(g.name for g in attached_spec(model).groups() if g.name in plan.keep):
            group = next(g for g in attached_spec(model).groups() if g.name == name)
            consumer = group.consumers[0]
            with timer.phase(name, "sampling"):
                sample = sample_layer(
                    model, consumer, images, locations=opts.locations, seed=seed + index, batch_size=opts.batch_size,
                    cache=cache, cache_at=group.producer,
                )  # fmt: skip
                weight = consumer_weight(model.get_submodule(consumer), group.size)
                xhat = contributions(as_channels(sample, group.size), weight, seed + index)
            with timer.phase(name, "selection"):
                removed = set(greedy_remove(xhat, group.size - plan.keep[name]))
                kept = [c for c in range(group.size) if c not in removed]
            with timer.phase(name, "reconstruction"):
                scale = rescale(xhat, kept, opts.ridge)
                err = relative_error(xhat, kept, scale)
            with timer.phase(name, "surgery"):
                model = prune_channels(model, {name: kept})
                scale_inputs(model.get_submodule(consumer), scale)
            if opts.finetune_between:
                with timer.phase(name, "finetune"):
                    finetune_briefly(
                        model, splits, opts.finetune_between, opts.finetune_lr, opts.batch_size, seed + index,
                        self.inner_precision,
                    )
            kept_all[name] = kept
            sampling = sample.record()
            layers[name] = {"size": group.size, "kept": len(kept), "relative_error": err}
        notes = ["per-layer sampling: class-balanced training images, no augmentation; positions seeded per layer"]
        fresh: list[str] = []
        if plan.target is not None:
            model, fresh = adopt_target(model, plan.target)
            if fresh:
                notes.append(
                    f"{opts.variant} differs from the base beyond widths (e.g. its head): {', '.join(fresh)} "
                    "re-initialised; fine-tune before use"
                )
        info = {
            "method": self.name,
            "target": opts.variant,
            "ratio": opts.ratio,
            "ridge": opts.ridge,
            "sampling": sampling,
            "layers": layers,
            "reinitialised": fresh,
            "timings": timer.record(),
            "notes": notes,
        }
        return PruneResult(model=model, kept=kept_all, info=info)
