"""Small layers and helpers shared by the families: channel selection, the SSS block gate and stage layout."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from prunebench.errors import SpecError


class ChannelSelection(nn.Module):
    """Forwards only the listed channels of a full-width tensor.

    The indices are a buffer (saved with the weights, never trained, not counted
    as parameters), unlike the reference's trainable 0/1 vector.
    """

    indices: torch.Tensor

    def __init__(self, indices: Sequence[int]) -> None:
        super().__init__()
        # the indices come from the spec, so they stay real when the model is built on the
        # meta device (surgery builds there and loads the weights after)
        device = torch.get_default_device()
        device = torch.device("cpu") if device.type == "meta" else device
        self.register_buffer("indices", torch.tensor(list(indices), dtype=torch.long, device=device))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.index_select(1, self.indices)

    def extra_repr(self) -> str:
        return f"{self.indices.numel()} channels"


class Gate(nn.Module):
    """SSS: one scalar scale factor multiplying a residual branch."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.weight


class SelectHeadNet(nn.Module):
    """Base of the pre-activation nets (PreResNet, DenseNet): BN → selection → ReLU → pool → Linear.

    The final BN keeps the full width; the selection decides what the classifier reads.
    """

    def add_head(self, width: int, selection: Sequence[int], final_size: int, num_classes: int) -> None:
        self.bn = nn.BatchNorm2d(width)
        self.select = ChannelSelection(selection_of(selection, width))
        self.relu = nn.ReLU(inplace=True)
        self.avgpool = nn.AvgPool2d(final_size)  # a module: the reference FLOPs rule counts it
        self.fc = nn.Linear(len(self.select.indices), num_classes)

    def head(self, x: torch.Tensor) -> torch.Tensor:
        x = self.avgpool(self.relu(self.select(self.bn(x))))
        return self.fc(torch.flatten(x, 1))


def block_paths(blocks: Sequence[int], first_residual: Sequence[bool]) -> list[tuple[str, int]]:
    """(module path, stage) of every residual block; a stage without its first residual
    branch starts with a shortcut-only unit at index 0, so its blocks start at 1."""
    out = []
    for s, (n, first) in enumerate(zip(blocks, first_residual, strict=True)):
        offset = 0 if first else 1
        out += [(f"layer{s + 1}.{b + offset}", s) for b in range(n)]
    return out


def check_stages(label: str, blocks: Sequence[int], first_residual: Sequence[bool], reshapes: Sequence[bool]) -> None:
    """Validate the SSS stage layout: `reshapes[s]` says whether stage s's shortcut changes the tensor."""
    if any(isinstance(n, bool) or not isinstance(n, int) or n < 0 for n in blocks):
        raise SpecError(f"{label}: blocks per stage must be integers >= 0, got {list(blocks)}")
    if not len(blocks) == len(first_residual) == len(reshapes):
        raise SpecError(f"{label}: blocks, planes and first_residual need one entry per stage")
    for s, (n, first, reshape) in enumerate(zip(blocks, first_residual, reshapes)):
        if first and n == 0:
            raise SpecError(f"{label}: stage {s + 1} has no blocks (set first_residual false to keep its shortcut)")
        if not first and not reshape:
            raise SpecError(f"{label}: stage {s + 1} has no shortcut to keep; drop its block instead")


def bn_members(bn: str) -> list[tuple[str, int, int]]:
    """The per-channel tensors of a BatchNorm, as group members."""
    return [(f"{bn}.{t}", 0, 1) for t in ("weight", "bias", "running_mean", "running_var")]


def selection_of(selection: Sequence[int], full: int) -> tuple[int, ...]:
    """Explicit indices of a selection spec entry; () means all `full` channels."""
    return tuple(selection) if selection else tuple(range(full))


def read_selection(module: nn.Module, full: int) -> tuple[int, ...]:
    """Inverse of `selection_of`: () when a selection layer passes every channel in order."""
    assert isinstance(module, ChannelSelection)
    idx = tuple(int(i) for i in module.indices.tolist())
    return () if idx == tuple(range(full)) else idx


def out_width(layer: nn.Module) -> int:
    """Output width of a conv, linear or BN layer (what `from_module` reads a spec back from)."""
    if isinstance(layer, nn.Conv2d):
        return layer.out_channels
    if isinstance(layer, nn.Linear):
        return layer.out_features
    if isinstance(layer, nn.BatchNorm2d | nn.BatchNorm1d):
        return layer.num_features
    raise SpecError(f"{type(layer).__name__} has no output width")


def check_selection(label: str, k: int, sel: tuple[int, ...], full: int) -> None:
    """A selection must be strictly increasing indices below the full width."""
    if sel and (any(b <= a for a, b in zip(sel, sel[1:])) or sel[0] < 0 or sel[-1] >= full):
        raise SpecError(f"{label}: selection {k} must be increasing indices in 0..{full - 1}")


def compose_selections(
    names: list[str], selections: tuple[tuple[int, ...], ...], fulls: list[int], norm: dict[str, tuple[int, ...]]
) -> tuple[tuple[int, ...], ...]:
    """Apply kept positions (within the current selection) to each selection entry."""
    out = []
    for name, sel, full in zip(names, selections, fulls, strict=True):
        if name not in norm:
            out.append(sel)
            continue
        cur = selection_of(sel, full)
        new = tuple(cur[i] for i in norm[name])
        out.append(() if new == tuple(range(full)) else new)
    return tuple(out)
