"""Per-image forward FLOPs, by two rules (docs/protocol.md §6).

reference: forward hooks on modules, exactly the rule of the paper's counter,
    which Scratch-B budgets depend on.  Multiplies and adds count separately;
    only modules are seen (functional pooling, residual additions,
    concatenations, BN1d, dropout and channel selection are free), so what
    counts is a property of how the zoo writes each model.
dispatch: `torch.utils.flop_counter.FlopCounterMode`, which sees functional ops
    too but counts only matmuls and convolutions (2 FLOPs per MAC).

`macs` is, in both modes, the multiply-accumulates of conv and linear layers
(what Li et al. 2017 and ShrinkBench call FLOPs / multiply-adds).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from prunebench.errors import ConfigError
from prunebench.models.builder import BuilderSpec
from prunebench.measure.forward import Shape, dummy_batch, eval_mode, input_shape_of
from prunebench.measure.params import PRUNABLE_LAYERS, check_masks

#: Bumped whenever a counting rule changes; recorded with every count.
COUNTER_VERSION = "1"
MODES = ("reference", "dispatch")

_CONV = (nn.Conv1d, nn.Conv2d, nn.Conv3d)


@dataclass(frozen=True)
class FlopCount:
    """FLOPs and conv/linear MACs of one image, with how they were counted."""

    flops: int
    macs: int
    mode: str
    input_shape: Shape
    counter_version: str
    sparse: bool = False


def count_flops(
    model: nn.Module,
    *,
    mode: str | None = None,
    masks: dict[str, torch.Tensor] | None = None,
    sparse: bool = False,
    input_shape: Shape | None = None,
) -> FlopCount:
    """Forward FLOPs of one image of `input_shape` (default: the model spec's shape).

    Sparse counting (on when `masks` are given, or with `sparse=True`, which
    uses the weights' literal non-zeros) charges a conv only for its kept
    weights: (2·nnz(W) + b·C_out)·H_out·W_out; every other layer is dense.  In
    dispatch mode each masked conv/linear is scaled by its weight density.
    """
    mode = mode or model_rule(model)
    if mode not in MODES:
        raise ConfigError(f"unknown FLOPs mode {mode!r}; choose one of: {', '.join(MODES)}")
    shape = input_shape_of(model, input_shape)
    masks = check_masks(model, masks)
    nnz = _weight_nnz(model, masks, sparse)
    count = _reference if mode == "reference" else _dispatch
    with eval_mode(model), torch.inference_mode():
        flops, macs = count(model, dummy_batch(model, shape), nnz)
    version = COUNTER_VERSION if mode == "reference" else f"{COUNTER_VERSION}+torch{torch.__version__}"
    return FlopCount(flops, macs, mode, shape, version, sparse=bool(masks) or sparse)


def model_rule(model: nn.Module) -> str:
    """The counting rule a model is measured by: the reference hooks for zoo models (how the zoo writes
    each layer is what the paper's counter saw); the dispatcher counter for user models, whose
    functional ops (`F.conv2d`, `F.linear`) module hooks would miss."""
    return "dispatch" if isinstance(getattr(model, "spec", None), BuilderSpec) else "reference"


def flops_ratio(
    large: nn.Module,
    pruned: nn.Module,
    masks: dict[str, torch.Tensor] | None = None,
    *,
    input_shape: Shape | None = None,
) -> float:
    """FLOPs(large) / FLOPs(pruned), both by the reference rule (`model_rule`: user models by the
    dispatcher counter); a masked `pruned`
    model is counted sparse (the reference's weight-level scripts measured two
    dense models and always got 1)."""
    big = count_flops(large, input_shape=input_shape)
    small = count_flops(pruned, masks=masks, input_shape=input_shape)
    if big.input_shape != small.input_shape:
        raise ConfigError(f"models measured at different input shapes: {big.input_shape} vs {small.input_shape}")
    if small.flops <= 0:
        raise ConfigError("the pruned model has no FLOPs; cannot form a FLOPs ratio")
    return big.flops / small.flops


# -- helpers -----------------------------------------------------------------------


def _weight_nnz(model: nn.Module, masks: dict[str, torch.Tensor], sparse: bool) -> dict[str, int]:
    """Kept weight entries of each sparsely counted conv/linear, by module name."""
    out: dict[str, int] = {}
    for name, m in model.named_modules():
        if not isinstance(m, PRUNABLE_LAYERS):
            continue
        key = f"{name}.weight" if name else "weight"
        if key in masks:
            out[name] = int(masks[key].sum())
        elif sparse:
            out[name] = int(torch.count_nonzero(m.weight))
    return out


def _reference(model: nn.Module, x: torch.Tensor, nnz: dict[str, int]) -> tuple[int, int]:
    totals = [0, 0]

    def hook_for(name: str) -> Callable[..., None]:
        def hook(m: nn.Module, inputs: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
            flops, macs = _module_cost(m, inputs[0], out, nnz.get(name))
            totals[0] += flops
            totals[1] += macs

        return hook

    handles = [m.register_forward_hook(hook_for(n)) for n, m in model.named_modules()]
    try:
        model(x)
    finally:
        for h in handles:
            h.remove()
    return totals[0], totals[1]


def _module_cost(m: nn.Module, x: torch.Tensor, y: torch.Tensor, nnz: int | None) -> tuple[int, int]:
    """(FLOPs, MACs) of one call of `m` on one image (the batch is one image)."""
    if isinstance(m, _CONV):
        spatial = y.shape[2:].numel()
        kept = m.weight.numel() if nnz is None else nnz
        bias = m.out_channels if m.bias is not None else 0
        return (2 * kept + bias) * spatial, kept * spatial
    if isinstance(m, nn.Linear):
        # Sparse counting is conv-only in reference mode; the bias add counts only if present.
        rows = y.numel() // m.out_features
        bias = m.out_features if m.bias is not None else 0
        return rows * (2 * m.in_features * m.out_features + bias), rows * m.in_features * m.out_features
    if isinstance(m, nn.BatchNorm2d):
        return 2 * x.numel(), 0
    if isinstance(m, nn.ReLU):
        return x.numel(), 0
    if isinstance(m, (nn.MaxPool2d, nn.AvgPool2d)):
        kh, kw = _pair(m.kernel_size)
        return kh * kw * y.numel(), 0
    if isinstance(m, nn.AdaptiveAvgPool2d):
        # An average pool whose kernel covers its input (the whole map when global).
        kh = math.ceil(x.shape[-2] / y.shape[-2])
        kw = math.ceil(x.shape[-1] / y.shape[-1])
        return kh * kw * y.numel(), 0
    if isinstance(m, nn.Upsample):
        return 12 * y.numel(), 0
    return 0, 0


def _pair(k: int | tuple[int, ...]) -> tuple[int, int]:
    return (k, k) if isinstance(k, int) else (int(k[0]), int(k[1]))


def _dispatch(model: nn.Module, x: torch.Tensor, nnz: dict[str, int]) -> tuple[int, int]:
    counter = FlopCounterMode(display=False)
    with counter:
        model(x)
    flops = counter.get_total_flops()
    if nnz:
        # Scale each sparse layer's own count by its weight density (ShrinkBench's rule).
        per_module = counter.get_flop_counts()
        modules = dict(model.named_modules())
        root = type(model).__name__
        for name, kept in nnz.items():
            own = sum(per_module.get(f"{root}.{name}", {}).values())
            flops -= round(own * (1 - kept / modules[name].weight.numel()))
    return flops, flops // 2
