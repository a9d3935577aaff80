"""ImageNet-layout ResNet-34/50 (docs/protocol.md §3.9) with per-block inner widths.

Covers the L1 ResNet-34-A/B, the ThiNet ResNet-50s (projection bias), the
regression ResNet-50-2x (block-input channel selection) and SSS (gates, blocks
per stage, and stages whose first block keeps only its projection shortcut).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from prunebench.errors import SpecError
from prunebench.models.init import InitSpec
from prunebench.models.layers import (
    ChannelSelection,
    Gate,
    block_paths,
    bn_members,
    check_selection,
    check_stages,
    compose_selections,
    out_width,
    read_selection,
    selection_of,
)
from prunebench.models.spec import ChannelGroup, check_positive, normalize_kept, register_family, scale_staged

EXPANSION = {"basic": 1, "bottleneck": 4}


def projection(cin: int, cout: int, stride: int, bias: bool) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=bias), nn.BatchNorm2d(cout))


class Block(nn.Module):
    """Basic (3x3, 3x3) or bottleneck (1x1, 3x3, 1x1) residual block, optional input selection and gate."""

    def __init__(
        self, cin: int, inner: tuple[int, ...], cout: int, stride: int, spec: ResNetSpec, sel: tuple[int, ...] | None
    ) -> None:
        super().__init__()
        if sel is not None:
            self.select = ChannelSelection(sel)
        read = cin if sel is None else len(sel)
        self.relu = nn.ReLU(inplace=True)  # shared: one count per call
        if len(inner) == 1:
            self.conv1 = nn.Conv2d(read, inner[0], 3, stride, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(inner[0])
            self.conv2 = nn.Conv2d(inner[0], cout, 3, 1, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(cout)
        else:
            s1, s3 = (1, stride) if spec.stride_in_3x3 else (stride, 1)
            self.conv1 = nn.Conv2d(read, inner[0], 1, s1, bias=False)
            self.bn1 = nn.BatchNorm2d(inner[0])
            self.conv2 = nn.Conv2d(inner[0], inner[1], 3, s3, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(inner[1])
            self.conv3 = nn.Conv2d(inner[1], cout, 1, bias=False)
            self.bn3 = nn.BatchNorm2d(cout)
        if stride != 1 or cin != cout:
            self.downsample = projection(cin, cout, stride, spec.projection_bias)
        if spec.gates:
            self.gate = Gate()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.select(x) if hasattr(self, "select") else x
        out = self.relu(self.bn1(self.conv1(out)))
        out = self.bn2(self.conv2(out))
        if hasattr(self, "conv3"):
            out = self.bn3(self.conv3(self.relu(out)))
        if hasattr(self, "gate"):
            out = self.gate(out)
        sc = self.downsample(x) if hasattr(self, "downsample") else x
        return self.relu(out + sc)


class ProjectionOnly(nn.Module):
    """SSS: a stage's first block whose residual branch was removed; its projection shortcut stays."""

    def __init__(self, cin: int, cout: int, stride: int, bias: bool) -> None:
        super().__init__()
        self.downsample = projection(cin, cout, stride, bias)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.downsample(x))


class ResNet(nn.Module):
    def __init__(self, spec: ResNetSpec) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(spec.in_channels, spec.stem, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(spec.stem)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        inner = iter(spec.inner)
        sels = iter(spec.selections) if spec.selections else None
        cin = spec.stem
        for s, (n, planes, first) in enumerate(zip(spec.blocks, spec.planes, spec.first_residual, strict=True)):
            cout = planes * EXPANSION[spec.block]
            stride = 1 if s == 0 else 2
            units: list[nn.Module] = []
            if not first:
                units.append(ProjectionOnly(cin, cout, stride, spec.projection_bias))
                cin, stride = cout, 1
            for _ in range(n):
                sel = selection_of(next(sels), cin) if sels else None
                units.append(Block(cin, next(inner), cout, stride, spec, sel))
                cin, stride = cout, 1
            self.add_module(f"layer{s + 1}", nn.Sequential(*units))
        self.n_stages = len(spec.blocks)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(cin, spec.num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        for s in range(self.n_stages):
            x = getattr(self, f"layer{s + 1}")(x)
        return self.fc(torch.flatten(self.avgpool(x), 1))


@register_family
@dataclass(frozen=True, kw_only=True)
class ResNetSpec(InitSpec):
    """ImageNet ResNet.

    blocks: residual blocks per stage; first_residual[s] False means the stage
      starts with a projection-only unit (SSS removed its first residual branch)
      followed by `blocks[s]` identity blocks.
    inner: per residual block (conv1 out,) for basic, (conv1 out, conv2 out) for bottleneck.
    selections: () for no block-input selection, else one entry per residual block
      (indices into the block input; () = all), as ResNet-50-2x.
    projection_bias: bias on the projection convs (the reference ThiNet models).
    stride_in_3x3: torchvision puts a bottleneck's stride on the 3x3 conv, Caffe on the first 1x1.
    gates: an SSS scale factor on every residual branch.
    """

    family = "resnet"
    block: str = "bottleneck"
    blocks: tuple[int, ...] = (3, 4, 6, 3)
    planes: tuple[int, ...] = (64, 128, 256, 512)
    stem: int = 64
    inner: tuple[tuple[int, ...], ...] = ()
    first_residual: tuple[bool, ...] = (True, True, True, True)
    selections: tuple[tuple[int, ...], ...] = ()
    projection_bias: bool = False
    stride_in_3x3: bool = True
    gates: bool = False

    @classmethod
    def uniform(cls, block: str, blocks: tuple[int, ...], **kw: Any) -> ResNetSpec:
        """Unpruned network: inner widths equal the stage planes."""
        planes = kw.pop("planes", (64, 128, 256, 512))
        per = 1 if block == "basic" else 2
        inner = tuple((p,) * per for p, n in zip(planes, blocks) for _ in range(n))
        first = kw.pop("first_residual", (True,) * len(blocks))
        return cls(block=block, blocks=blocks, planes=planes, inner=inner, first_residual=first, **kw)

    # -- geometry -------------------------------------------------------------------
    def block_names(self) -> list[tuple[str, int]]:
        """(module path, stage) of every residual block."""
        return block_paths(self.blocks, self.first_residual)

    def block_inputs(self) -> list[int]:
        widths, cin = [], self.stem
        for n, planes, first in zip(self.blocks, self.planes, self.first_residual, strict=True):
            cout = planes * EXPANSION[self.block]
            if not first:
                cin = cout
            for _ in range(n):
                widths.append(cin)
                cin = cout
        return widths

    # -- contract ---------------------------------------------------------------------
    def validate(self) -> None:
        super().validate()
        if self.block not in EXPANSION:
            raise SpecError(f"{self.label}: block must be 'basic' or 'bottleneck', got {self.block!r}")
        check_positive(self.label, "stage widths", self.planes)
        check_positive(self.label, "the stem width", self.stem)
        check_positive(self.label, "inner widths", self.inner)
        # later stages are strided; stage 1 has a projection only if the stem width differs
        reshapes = [s > 0 or self.stem != p * EXPANSION[self.block] for s, p in enumerate(self.planes)]
        check_stages(self.label, self.blocks, self.first_residual, reshapes)
        n = sum(self.blocks)
        per = 1 if self.block == "basic" else 2
        if len(self.inner) != n or any(len(w) != per for w in self.inner):
            raise SpecError(f"{self.label}: {n} {self.block} blocks need {n} inner entries of {per} width(s)")
        if self.selections:
            if len(self.selections) != n:
                raise SpecError(f"{self.label}: {n} blocks need {n} selection entries, got {len(self.selections)}")
            for k, (sel, full) in enumerate(zip(self.selections, self.block_inputs(), strict=True)):
                check_selection(self.label, k, sel, full)

    def build(self) -> nn.Module:
        return self.finish(ResNet(self))

    def groups(self) -> list[ChannelGroup]:
        out = []
        fulls = self.block_inputs()
        convs = [("conv1", "bn1", "conv2"), ("conv2", "bn2", "conv3")]
        for k, (blk, stage) in enumerate(self.block_names()):
            if self.selections:
                out.append(ChannelGroup(
                    name=f"{blk}.select", kind="select", size=len(selection_of(self.selections[k], fulls[k])),
                    producer=None, bn=None, consumers=(f"{blk}.conv1",), members=((f"{blk}.conv1.weight", 1, 1),),
                    stage=stage,
                ))
            for (conv, bn, nxt), width in zip(convs, self.inner[k]):
                members = ((f"{blk}.{conv}.weight", 0, 1), *bn_members(f"{blk}.{bn}"), (f"{blk}.{nxt}.weight", 1, 1))
                out.append(ChannelGroup(
                    name=f"{blk}.{conv}", kind="out", size=width, producer=f"{blk}.{conv}", bn=f"{blk}.{bn}",
                    consumers=(f"{blk}.{nxt}",), members=members, stage=stage,
                ))
        return out

    def with_kept(self, kept: dict[str, list[int]]) -> ResNetSpec:
        norm = normalize_kept(self.groups(), kept)
        names = [blk for blk, _ in self.block_names()]
        inner = tuple(
            tuple(len(norm.get(f"{blk}.{conv}", range(w))) for conv, w in zip(("conv1", "conv2"), ws))
            for blk, ws in zip(names, self.inner, strict=True)
        )
        sels = self.selections
        if sels:
            sels = compose_selections([f"{b}.select" for b in names], sels, self.block_inputs(), norm)
        return dataclasses.replace(self, inner=inner, selections=sels)

    def widths(self) -> list[Any]:
        fulls = self.block_inputs()
        reads = [len(selection_of(s, f)) for s, f in zip(self.selections, fulls)] if self.selections else fulls
        return [[r, *w] for r, w in zip(reads, self.inner, strict=True)]

    def scaled(self, factor: float, *, inner_only: bool = False) -> ResNetSpec:
        return scale_staged(self, factor, inner_only=inner_only)

    def from_module(self, module: nn.Module) -> ResNetSpec:
        blocks = [module.get_submodule(blk) for blk, _ in self.block_names()]
        convs = ("conv1", "conv2")[: 1 if self.block == "basic" else 2]
        inner = tuple(tuple(getattr(b, c).out_channels for c in convs) for b in blocks)
        fulls = self.block_inputs()
        sels = (
            tuple(read_selection(b.get_submodule("select"), f) for b, f in zip(blocks, fulls)) if self.selections else ()
        )
        return dataclasses.replace(
            self, inner=inner, selections=sels, stem=out_width(module.get_submodule("conv1")),
            num_classes=out_width(module.get_submodule("fc")),
            gates=any(hasattr(b, "gate") for b in blocks) if blocks else self.gates,
        )
