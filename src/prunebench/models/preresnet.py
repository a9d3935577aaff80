"""Pre-activation ResNet with channel selection (docs/protocol.md §3.5-§3.6, docs/methods.md §5.4).

Each block reads its input through BN -> selection -> ReLU, so slimming can
shrink what a block reads while the residual stream keeps its width.
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
    SelectHeadNet,
    bn_members,
    check_selection,
    compose_selections,
    out_width,
    read_selection,
    selection_of,
)
from prunebench.models.resnet_cifar import conv_out
from prunebench.models.spec import ChannelGroup, check_positive, normalize_kept, register_family, scale_staged

EXPANSION = {"bottleneck": 4, "basic": 1}


class PreActBlock(nn.Module):
    """BN -> select -> ReLU -> conv ... ; bottleneck: 1x1, 3x3 (stride), 1x1; basic: 3x3 (stride), 3x3."""

    def __init__(self, cin: int, sel: tuple[int, ...], inner: tuple[int, ...], cout: int, stride: int) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(cin)
        self.select = ChannelSelection(sel)
        self.relu = nn.ReLU(inplace=True)  # shared: one count per call
        if len(inner) == 2:
            self.conv1 = nn.Conv2d(len(sel), inner[0], 1, bias=False)
            self.bn2 = nn.BatchNorm2d(inner[0])
            self.conv2 = nn.Conv2d(inner[0], inner[1], 3, stride, 1, bias=False)
            self.bn3 = nn.BatchNorm2d(inner[1])
            self.conv3 = nn.Conv2d(inner[1], cout, 1, bias=False)
        else:
            self.conv1 = nn.Conv2d(len(sel), inner[0], 3, stride, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(inner[0])
            self.conv2 = nn.Conv2d(inner[0], cout, 3, 1, 1, bias=False)
        self.downsample = nn.Conv2d(cin, cout, 1, stride, bias=False) if stride != 1 or cin != cout else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv1(self.relu(self.select(self.bn1(x))))
        out = self.conv2(self.relu(self.bn2(out)))
        if hasattr(self, "conv3"):
            out = self.conv3(self.relu(self.bn3(out)))
        return out + (x if self.downsample is None else self.downsample(x))


class PreResNet(SelectHeadNet):
    def __init__(self, spec: PreResNetSpec) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(spec.in_channels, spec.stem, 3, 1, 1, bias=False)
        inner, sels = iter(spec.inner), iter(spec.selections)
        cin = spec.stem
        for s, (n, planes) in enumerate(zip(spec.blocks, spec.planes, strict=True)):
            cout = planes * EXPANSION[spec.block]
            blocks = []
            for b in range(n):
                stride = 2 if s > 0 and b == 0 else 1
                blocks.append(PreActBlock(cin, selection_of(next(sels), cin), next(inner), cout, stride))
                cin = cout
            self.add_module(f"layer{s + 1}", nn.Sequential(*blocks))
        self.n_stages = len(spec.blocks)
        self.add_head(cin, next(sels), spec.final_size(), spec.num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv1(x)
        for s in range(self.n_stages):
            x = getattr(self, f"layer{s + 1}")(x)
        return self.head(x)


@register_family
@dataclass(frozen=True, kw_only=True)
class PreResNetSpec(InitSpec):
    """Pre-activation ResNet: `blocks` per stage, `planes`, per-block inner widths and selections.

    inner: per block (conv1 out, conv2 out) for bottleneck, (conv1 out,) for basic.
    selections: per block, then one final entry: the block-input channels read,
      as indices into the full-width input; () means all of them.
    """

    family = "preresnet"
    block: str = "bottleneck"
    blocks: tuple[int, ...] = (18, 18, 18)
    planes: tuple[int, ...] = (16, 32, 64)
    stem: int = 16
    inner: tuple[tuple[int, ...], ...] = ()
    selections: tuple[tuple[int, ...], ...] = ()

    @classmethod
    def uniform(cls, block: str, n: int, **kw: Any) -> PreResNetSpec:
        """Unpruned network with `n` blocks per stage."""
        planes = kw.pop("planes", (16, 32, 64))
        depth = 2 if block == "bottleneck" else 1
        inner = tuple((p,) * depth for p in planes for _ in range(n))
        return cls(block=block, blocks=(n,) * len(planes), planes=planes, inner=inner,
                   selections=((),) * (n * len(planes) + 1), **kw)

    # -- geometry -----------------------------------------------------------------
    def block_inputs(self) -> list[int]:
        """Full input width of each block, then of the final BN."""
        widths, cin = [], self.stem
        for n, planes in zip(self.blocks, self.planes, strict=True):
            for _ in range(n):
                widths.append(cin)
                cin = planes * EXPANSION[self.block]
        return [*widths, cin]

    def block_names(self) -> list[tuple[str, int]]:
        return [(f"layer{s + 1}.{b}", s) for s, n in enumerate(self.blocks) for b in range(n)]

    def final_size(self) -> int:
        size = self.input_size
        for _ in self.blocks[1:]:
            size = conv_out(size, 2)
        return size

    # -- contract ---------------------------------------------------------------------
    def validate(self) -> None:
        super().validate()
        if self.block not in EXPANSION:
            raise SpecError(f"{self.label}: block must be 'bottleneck' or 'basic', got {self.block!r}")
        check_positive(self.label, "blocks per stage", self.blocks)
        check_positive(self.label, "stage widths", self.planes)
        check_positive(self.label, "inner widths", self.inner)
        check_positive(self.label, "the stem width", self.stem)
        if len(self.planes) != len(self.blocks):
            raise SpecError(f"{self.label}: {len(self.blocks)} stages but {len(self.planes)} stage widths")
        n = sum(self.blocks)
        if len(self.inner) != n:
            raise SpecError(f"{self.label}: {n} blocks need {n} inner-width entries, got {len(self.inner)}")
        per = 2 if self.block == "bottleneck" else 1
        if any(len(w) != per for w in self.inner):
            raise SpecError(f"{self.label}: each {self.block} block needs {per} inner width(s)")
        if len(self.selections) != n + 1:
            raise SpecError(
                f"{self.label}: need {n + 1} selection entries (blocks + final), got {len(self.selections)}"
            )
        for k, (sel, full) in enumerate(zip(self.selections, self.block_inputs(), strict=True)):
            check_selection(self.label, k, sel, full)

    def build(self) -> nn.Module:
        return self.finish(PreResNet(self))

    def groups(self) -> list[ChannelGroup]:
        out = []
        fulls = self.block_inputs()
        for k, (blk, stage) in enumerate(self.block_names()):
            sel = selection_of(self.selections[k], fulls[k])
            out.append(ChannelGroup(
                name=f"{blk}.select", kind="select", size=len(sel), producer=None, bn=f"{blk}.bn1",
                consumers=(f"{blk}.conv1",), members=((f"{blk}.conv1.weight", 1, 1),), stage=stage,
            ))
            convs = [("conv1", "bn2", "conv2"), ("conv2", "bn3", "conv3")][: len(self.inner[k])]
            for (conv, bn, nxt), width in zip(convs, self.inner[k], strict=True):
                members = ((f"{blk}.{conv}.weight", 0, 1), *bn_members(f"{blk}.{bn}"), (f"{blk}.{nxt}.weight", 1, 1))
                out.append(ChannelGroup(
                    name=f"{blk}.{conv}", kind="out", size=width, producer=f"{blk}.{conv}", bn=f"{blk}.{bn}",
                    consumers=(f"{blk}.{nxt}",), members=members, stage=stage,
                ))
        final = selection_of(self.selections[-1], fulls[-1])
        out.append(ChannelGroup(
            name="select", kind="select", size=len(final), producer=None, bn="bn", consumers=("fc",),
            members=(("fc.weight", 1, 1),), stage=len(self.blocks) - 1,
        ))
        return out

    def with_kept(self, kept: dict[str, list[int]]) -> PreResNetSpec:
        norm = normalize_kept(self.groups(), kept)
        names = [blk for blk, _ in self.block_names()]
        inner = tuple(
            tuple(len(norm.get(f"{blk}.{conv}", range(w))) for conv, w in zip(("conv1", "conv2"), ws))
            for blk, ws in zip(names, self.inner, strict=True)
        )
        points = [f"{b}.select" for b in names] + ["select"]
        sels = compose_selections(points, self.selections, self.block_inputs(), norm)
        return dataclasses.replace(self, inner=inner, selections=sels)

    def widths(self) -> list[Any]:
        fulls = self.block_inputs()
        sizes = [len(selection_of(s, f)) for s, f in zip(self.selections, fulls, strict=True)]
        return [[sizes[k], *w] for k, w in enumerate(self.inner)] + [sizes[-1]]

    def scaled(self, factor: float, *, inner_only: bool = False) -> PreResNetSpec:
        return scale_staged(self, factor, inner_only=inner_only)

    def from_module(self, module: nn.Module) -> PreResNetSpec:
        blocks = [module.get_submodule(blk) for blk, _ in self.block_names()]
        convs = ("conv1", "conv2")[: 2 if self.block == "bottleneck" else 1]
        inner = tuple(tuple(getattr(b, c).out_channels for c in convs) for b in blocks)
        sels = tuple(read_selection(b.get_submodule("select"), out_width(b.get_submodule("bn1"))) for b in blocks)
        final = read_selection(module.get_submodule("select"), out_width(module.get_submodule("bn")))
        return dataclasses.replace(
            self, inner=inner, selections=(*sels, final), stem=out_width(module.get_submodule("conv1")),
            num_classes=out_width(module.get_submodule("fc")),
        )

