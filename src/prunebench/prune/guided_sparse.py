"""Uniform and guided sparsification (docs/methods.md §10, docs/protocol.md §8 E9/E10): random masks.

Both build fresh masks for a (freshly initialised) model that is then trained from
scratch with the mask held fixed; no weight is ever looked at.

* `uniform_sparse_masks`: every conv weight kept with the same probability; each
  layer keeps exactly ``round(density * numel)`` weights at random positions.
* `guided_sparse_masks`: the per-stage density and the per-position 3x3 keep
  frequencies of a magnitude-pruned model (`prunebench.prune.analysis`), re-sampled.
  Stages are `analysis.conv_stages` (convs sharing an output resolution).

Layers never end up empty: each keeps at least one weight (the guard of docs/methods.md §1.4).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from prunebench.errors import ConfigError
from prunebench.prune.analysis import Masks, conv_layers, conv_stages, weight_layers

KernelMap = Sequence[Sequence[float]]  # 3x3 keep probabilities, as `analysis.kernel_keep_maps` writes them


def _kept_count(density: float, numel: int) -> int:
    return max(1, round(density * numel))


def _check_density(density: float, what: str) -> None:
    if not 0.0 < density <= 1.0:
        raise ConfigError(f"{what}: density must be in (0, 1], got {density}")


def _random_mask(shape: torch.Size, kept: int, generator: torch.Generator) -> torch.Tensor:
    """A bool mask of `shape` with exactly `kept` True entries at uniformly random positions."""
    flat = torch.zeros(shape.numel(), dtype=torch.bool)
    flat[torch.randperm(shape.numel(), generator=generator)[:kept]] = True
    return flat.reshape(shape)


def uniform_sparse_masks(
    model: nn.Module, density: float, *, seed: int, include_linear: bool = False
) -> Masks:
    """Weight masks keeping exactly ``round(density * numel)`` (min 1) random entries of every conv (and Linear).

    One generator seeded with `seed` walks the layers in module order, so the same
    seed and model give the same masks.
    """
    _check_density(density, "uniform sparsification")
    generator = torch.Generator().manual_seed(seed)
    return {
        f"{name}.weight": _random_mask(m.weight.shape, _kept_count(density, m.weight.numel()), generator).to(
            m.weight.device
        )
        for name, m in weight_layers(model, include_linear=include_linear)
    }


def position_keep_probs(kernel_map: KernelMap, density: float) -> list[float]:
    """The 9 per-position keep probabilities: proportional to `kernel_map`, capped at 1, mean = `density`.

    Water-filling: positions whose scaled probability would exceed 1 are kept always
    and the rest is rescaled; if the map's non-zero positions cannot carry the density,
    the remainder is spread evenly over its zero positions.
    """
    weights = [float(v) for row in kernel_map for v in row]
    if len(weights) != 9 or any(v < 0 for v in weights):
        raise ConfigError(f"guided sparsification: a kernel map must be 3x3 and non-negative, got {kernel_map!r}")
    probs = [0.0] * 9
    free = set(range(9))
    mass = 9 * density
    while free:
        total = sum(weights[p] for p in free)
        if total == 0:
            for p in free:
                probs[p] = mass / len(free)
            break
        scale = mass / total
        capped = {p for p in free if weights[p] * scale >= 1}
        if not capped:
            for p in free:
                probs[p] = weights[p] * scale
            break
        for p in capped:
            probs[p] = 1.0
        free -= capped
        mass -= len(capped)
    return probs


def _position_counts(probs: list[float], kernels: int, kept: int) -> list[int]:
    """Integer kept counts per position summing to `kept`: floors plus largest remainders."""
    exact = [p * kernels for p in probs]
    counts = [min(kernels, int(e)) for e in exact]
    by_remainder = sorted(range(9), key=lambda p: (counts[p] - exact[p], p))
    for p in by_remainder[: max(0, kept - sum(counts))]:
        counts[p] += 1
    return counts


def _kernel_mask(shape: torch.Size, probs: list[float], kept: int, generator: torch.Generator) -> torch.Tensor:
    """A 3x3-conv mask with `kept` entries where position p is kept in ~probs[p] of the kernels."""
    kernels = shape.numel() // 9
    mask = torch.zeros(kernels, 9, dtype=torch.bool)
    for p, n in enumerate(_position_counts(probs, kernels, kept)):
        mask[torch.randperm(kernels, generator=generator)[:n], p] = True
    return mask.reshape(shape)


def guided_sparse_masks(
    model: nn.Module,
    stage_density: Sequence[float],
    stage_kernel_maps: Sequence[KernelMap | None],
    *,
    seed: int,
) -> Masks:
    """Conv weight masks following per-stage densities and per-stage 3x3 position keep maps.

    The paper does not say how it sampled (docs/methods.md §10 [UNCONF]); this does:
    every conv of stage s keeps exactly ``round(stage_density[s] * numel)`` (min 1)
    weights.  In a 3x3 conv, position p's keep probability is
    `position_keep_probs(stage_kernel_maps[s], stage_density[s])` (proportional to the
    map, mean = the density); multiplied by the layer's kernel count it gives how many
    kernels keep position p (rounded by largest remainder to the exact total), and that
    many kernels are drawn uniformly without replacement, independently per position.
    Per-position frequencies therefore match the map up to 1/kernels.  Other convs
    (1x1, 7x7) use the density only, with uniformly random positions; Linear layers are
    not masked, as magnitude pruning masks convs only.  One generator seeded with
    `seed` walks the layers in module order.
    """
    stages = conv_stages(model)
    n_stages = 1 + max(stages.values(), default=-1)
    for what, values in (("densities", stage_density), ("kernel maps", stage_kernel_maps)):
        if len(values) != n_stages:
            raise ConfigError(
                f"guided sparsification: the model has {n_stages} stages but {len(values)} {what} were given "
                f"(use transfer_fractions to map them)"
            )
    for d in stage_density:
        _check_density(d, "guided sparsification")
    generator = torch.Generator().manual_seed(seed)
    masks: Masks = {}
    for name, m in conv_layers(model):
        s = stages[name]
        kept = _kept_count(stage_density[s], m.weight.numel())
        if tuple(m.kernel_size) == (3, 3):
            kernel_map = stage_kernel_maps[s]
            if kernel_map is None:
                raise ConfigError(f"guided sparsification: stage {s} has 3x3 convs ({name}) but no kernel map")
            probs = position_keep_probs(kernel_map, stage_density[s])
            mask = _kernel_mask(m.weight.shape, probs, kept, generator)
        else:
            mask = _random_mask(m.weight.shape, kept, generator)
        masks[f"{name}.weight"] = mask.to(m.weight.device)
    return masks


def stage_sparsity(analysis: dict[str, Any]) -> tuple[list[float], list[list[list[float]] | None]]:
    """Per-stage conv density and 3x3 keep map from `analysis.analyse` output (or magnitude's `info`).

    A stage's density is its convs' kept weights over their total; a stage without
    3x3 convs gets no map (None).  The result feeds `guided_sparse_masks` directly, or
    through `transfer_fractions` for another network.
    """
    kept: dict[int, int] = {}
    total: dict[int, int] = {}
    for row in analysis["layers"]:
        if row["kind"] != "conv" or row["stage"] is None:
            continue
        kept[row["stage"]] = kept.get(row["stage"], 0) + row["kept"]
        total[row["stage"]] = total.get(row["stage"], 0) + row["total"]
    n_stages = 1 + max(total, default=-1)
    if sorted(total) != list(range(n_stages)):
        raise ConfigError("guided sparsification: the analysis has gaps in its stage numbers")
    maps: list[list[list[float]] | None] = [None] * n_stages
    for row in analysis["kernel_maps"]:
        maps[row["stage"]] = row["keep_prob"]
    return [kept[s] / total[s] for s in range(n_stages)], maps
