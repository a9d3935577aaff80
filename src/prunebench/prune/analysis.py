"""Where a mask keeps its weights: per-layer density and per-stage 3x3 kernel keep maps.

The data behind the paper's sparsity-pattern figures and guided sparsification
(docs/methods.md §10), saved as JSON for the report to plot.

Stage definition: convs whose *outputs* share a spatial resolution form one stage
("the layers sharing a feature-map size", docs/methods.md §10), numbered 0, 1, ... from
the largest resolution down.  It is found with one forward pass at the spec's input
shape, so it works for every family without hand-kept layer lists; the stem conv
joins the first stage.  Linear layers have no stage (``None``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from prunebench.measure.forward import dummy_batch, eval_mode, input_shape_of
from prunebench.train.checkpoint import atomic_write_text

Masks = dict[str, torch.Tensor]


def weight_layers(model: nn.Module, *, include_linear: bool = True) -> list[tuple[str, nn.Conv2d | nn.Linear]]:
    """The (name, module) of every Conv2d (and Linear) layer, in module order."""
    kinds: tuple[type[nn.Conv2d | nn.Linear], ...] = (nn.Conv2d, nn.Linear) if include_linear else (nn.Conv2d,)
    return [(name, m) for name, m in model.named_modules() if isinstance(m, kinds)]


def conv_layers(model: nn.Module) -> list[tuple[str, nn.Conv2d]]:
    """The (name, module) of every Conv2d layer, in module order (`weight_layers` typed for convs)."""
    return [(name, m) for name, m in model.named_modules() if isinstance(m, nn.Conv2d)]


def conv_resolutions(model: nn.Module) -> dict[str, tuple[int, int]]:
    """Conv name -> output (H, W) at the spec's input shape, from one forward pass."""
    x = dummy_batch(model, input_shape_of(model))
    sizes: dict[str, tuple[int, int]] = {}
    hooks = [
        m.register_forward_hook(lambda _m, _i, out, name=name: sizes.__setitem__(name, tuple(out.shape[-2:])))
        for name, m in conv_layers(model)
    ]
    try:
        with eval_mode(model), torch.no_grad():
            model(x)
    finally:
        for h in hooks:
            h.remove()
    return sizes


def conv_stages(model: nn.Module) -> dict[str, int]:
    """Conv name -> stage index (shared output resolution, largest first)."""
    sizes = conv_resolutions(model)
    order = sorted(set(sizes.values()), key=lambda hw: (-hw[0] * hw[1], hw))
    return {name: order.index(hw) for name, hw in sizes.items()}


def _mask_of(module: nn.Conv2d | nn.Linear, name: str, masks: Masks) -> torch.Tensor:
    """The weight's mask; an unmasked layer keeps everything."""
    key = f"{name}.weight" if name else "weight"
    m = masks.get(key)
    return torch.ones_like(module.weight, dtype=torch.bool) if m is None else m.to(torch.bool)


def layer_densities(model: nn.Module, masks: Masks, stages: dict[str, int] | None = None) -> list[dict[str, Any]]:
    """One JSON-able row per Conv2d/Linear layer: layer, kind, shape, kept, total, density, stage."""
    stages = conv_stages(model) if stages is None else stages
    rows = []
    for name, module in weight_layers(model):
        mask = _mask_of(module, name, masks)
        kept, total = int(mask.sum()), mask.numel()
        rows.append(
            {
                "layer": name,
                "kind": "conv" if isinstance(module, nn.Conv2d) else "linear",
                "shape": list(mask.shape),
                "kept": kept,
                "total": total,
                "density": kept / total,
                "stage": stages.get(name),
            }
        )
    return rows


def kernel_keep_maps(model: nn.Module, masks: Masks, stages: dict[str, int] | None = None) -> list[dict[str, Any]]:
    """Per stage: the average mask over all 3x3 kernels of its 3x3 convs (keep probability per position)."""
    stages = conv_stages(model) if stages is None else stages
    sums: dict[int, torch.Tensor] = {}
    counts: dict[int, int] = {}
    for name, module in conv_layers(model):
        if tuple(module.kernel_size) != (3, 3):
            continue
        mask = _mask_of(module, name, masks).detach().float().cpu().reshape(-1, 3, 3)
        s = stages[name]
        sums[s] = sums.get(s, torch.zeros(3, 3)) + mask.sum(0)
        counts[s] = counts.get(s, 0) + mask.shape[0]
    return [
        {"stage": s, "kernels": counts[s], "keep_prob": (sums[s] / counts[s]).tolist()} for s in sorted(sums)
    ]


def analyse(model: nn.Module, masks: Masks) -> dict[str, Any]:
    """Per-layer densities, overall density of the masked tensors and the per-stage kernel maps."""
    stages = conv_stages(model)
    layers = layer_densities(model, masks, stages)
    masked = [r for r in layers if f"{r['layer']}.weight" in masks]
    total = sum(r["total"] for r in masked)
    return {
        "layers": layers,
        "masked_density": sum(r["kept"] for r in masked) / total if total else 1.0,
        "kernel_maps": kernel_keep_maps(model, masks, stages),
    }


def save_analysis(path: str | os.PathLike[str], masks: Masks, model: nn.Module) -> dict[str, Any]:
    """Write `analyse(model, masks)` as JSON to `path` (atomically) and return it."""
    data = analyse(model, masks)
    atomic_write_text(Path(path), json.dumps(data, indent=1))
    return data
